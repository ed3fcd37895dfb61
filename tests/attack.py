#!/usr/bin/env python3
"""Write hostile tar archives for the staging tests.

usage: attack.py KIND OUT
  dotdot     a member "../escape" (and "a/../../escape")
  absolute   a member "/tmp/.../escape" (an absolute path)
  symlink    a symlink "link" -> OUTSIDE, then a file "link/escape"
  hardlink   a hard link to "../../etc/passwd"
  bomb       a member declaring more data than the image holds
  plant      only a symlink "link" -> OUTSIDE (an OCI layer an attack builds on)
  whiteout   an OCI whiteout "link/.wh.secret" (through the planted link)
  through    a hard link "stolen" to "link/secret" (through the planted link)
  replace    directories "a" and "a/b", then "a" again as a symlink -> OUTSIDE:
             what is pending for "a/b" must not land in OUTSIDE/b
  retarget   an empty directory "a" (mode 0700, an old time), then "a" again as
             a symlink -> OUTSIDE: the directory's mode and time, applied at
             the end, must not land on OUTSIDE
  relink     a file "victim", a hard link "x" to it, then "x" again as a file:
             the new "x" must not write through the link into "victim"
OUTSIDE: the directory the attack aims at (argv[3]).
"""
import io
import sys
import tarfile


def add_file(tar, name, data=b"pwned\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main():
    kind, out, outside = sys.argv[1], sys.argv[2], sys.argv[3]
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "etc/hostname", b"fine\n")
        if kind == "dotdot":
            add_file(tar, "a/../../escape")
        elif kind == "absolute":
            add_file(tar, outside + "/escape")
        elif kind == "symlink":
            link = tarfile.TarInfo("link")
            link.type = tarfile.SYMTYPE
            link.linkname = outside
            tar.addfile(link)
            add_file(tar, "link/escape")
        elif kind == "hardlink":
            hl = tarfile.TarInfo("stolen")
            hl.type = tarfile.LNKTYPE
            hl.linkname = "../../" + outside.lstrip("/") + "/secret"
            tar.addfile(hl)
        elif kind == "plant":
            link = tarfile.TarInfo("link")
            link.type = tarfile.SYMTYPE
            link.linkname = outside
            tar.addfile(link)
        elif kind == "replace":
            for name, mode in (("a", 0o755), ("a/b", 0o700)):
                d = tarfile.TarInfo(name)
                d.type = tarfile.DIRTYPE
                d.mode = mode
                d.mtime = 981173106
                tar.addfile(d)
            link = tarfile.TarInfo("a")
            link.type = tarfile.SYMTYPE
            link.linkname = outside
            tar.addfile(link)
        elif kind == "retarget":
            d = tarfile.TarInfo("a")
            d.type = tarfile.DIRTYPE
            d.mode = 0o700
            d.mtime = 981173106
            tar.addfile(d)
            link = tarfile.TarInfo("a")
            link.type = tarfile.SYMTYPE
            link.linkname = outside
            tar.addfile(link)
        elif kind == "relink":
            add_file(tar, "victim", b"fine\n")
            hl = tarfile.TarInfo("x")
            hl.type = tarfile.LNKTYPE
            hl.linkname = "victim"
            tar.addfile(hl)
            add_file(tar, "x")
        elif kind == "whiteout":
            add_file(tar, "link/.wh.secret", b"")
        elif kind == "through":
            hl = tarfile.TarInfo("stolen")
            hl.type = tarfile.LNKTYPE
            hl.linkname = "link/secret"
            tar.addfile(hl)
        else:
            raise SystemExit("unknown kind " + kind)


main()
