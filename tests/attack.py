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
  badpax     a member whose pax record is malformed (its length is wrong):
             libarchive skips the record with a warning
  xattr      a member with an xattr no file system takes ("bogus.name")
  selflink   a file, then a hard link to its own name (GNU tar's way
             with a file given twice): a harmless warning
  utf8       members with non-ASCII names (UTF-8 in pax records): in a C
             locale, a harmless warning
  devoutside a character device etc/mem (1:1) outside dev/
  devopen    a block device dev/sda (8:0) writable by all
  devsetuid  dev/null (1:3) with the setuid bit
  devlink    dev/sda (8:0, 0660), then a hard link etc/sda to it
  devok      dev/null (1:3, 0666), dev/console (5:1, 0666, as mmdebstrap makes
             it), dev/sda (8:0, 0660) and etc/mem (1:1, 0640): fine when
             image.devices allows etc too
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


def add_device(tar, name, kind, major, minor, mode):
    dev = tarfile.TarInfo(name)
    dev.type = kind
    dev.devmajor, dev.devminor, dev.mode = major, minor, mode
    tar.addfile(dev)


def bad_pax(out):
    """A pax record "path=etc/evil" whose length field says 99."""
    with open(out, "rb") as f:
        data = bytearray(f.read())
    at = data.find(b"17 path=etc/evil\n")
    assert at >= 0
    data[at:at + 2] = b"99"
    with open(out, "wb") as f:
        f.write(data)


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
        elif kind == "badpax":
            info = tarfile.TarInfo("etc/x")
            info.pax_headers = {"path": "etc/evil"}
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
        elif kind == "xattr":
            info = tarfile.TarInfo("etc/x")
            info.pax_headers = {"SCHILY.xattr.bogus.name": "1"}
            info.size = 2
            tar.addfile(info, io.BytesIO(b"x\n"))
        elif kind == "selflink":
            add_file(tar, "etc/twice", b"twice\n")
            hl = tarfile.TarInfo("etc/twice")
            hl.type = tarfile.LNKTYPE
            hl.linkname = "etc/twice"
            tar.addfile(hl)
        elif kind == "utf8":
            d = tarfile.TarInfo("\u00fc")
            d.type = tarfile.DIRTYPE
            d.mode = 0o755
            tar.addfile(d)
            add_file(tar, "\u00fc/\u00df", b"umlaut\n")
        elif kind == "devoutside":
            add_device(tar, "etc/mem", tarfile.CHRTYPE, 1, 1, 0o640)
        elif kind == "devopen":
            add_device(tar, "dev/sda", tarfile.BLKTYPE, 8, 0, 0o666)
        elif kind == "devsetuid":
            add_device(tar, "dev/null", tarfile.CHRTYPE, 1, 3, 0o4666)
        elif kind == "devlink":
            add_device(tar, "dev/sda", tarfile.BLKTYPE, 8, 0, 0o660)
            hl = tarfile.TarInfo("etc/sda")
            hl.type = tarfile.LNKTYPE
            hl.linkname = "dev/sda"
            tar.addfile(hl)
        elif kind == "devok":
            add_device(tar, "dev/null", tarfile.CHRTYPE, 1, 3, 0o666)
            add_device(tar, "dev/console", tarfile.CHRTYPE, 5, 1, 0o666)
            add_device(tar, "dev/sda", tarfile.BLKTYPE, 8, 0, 0o660)
            add_device(tar, "etc/mem", tarfile.CHRTYPE, 1, 1, 0o640)
        else:
            raise SystemExit("unknown kind " + kind)
    if kind == "badpax":
        bad_pax(out)


main()
