#!/usr/bin/env python3
"""Print every piece of metadata of a tree, one sorted line per entry, so
that two trees compare file by file: type, mode, owner, link count, link
target, modification time, device numbers, size, content digest,
sparseness and extended attributes (ACLs and file capabilities are
xattrs: system.posix_acl_*, security.capability).

usage: manifest.py DIR [--no-acl] [--no-xattr] [--no-sparse] [--no-links] [--no-mtime]
                   [--exact] [--no-dir-times]
  --no-acl     leave out system.posix_acl_* (a source kind without ACLs)
  --no-xattr   leave out every xattr (and so ACLs and capabilities)
  --no-sparse  do not say whether a file is sparse
  --no-links   leave out link counts (a source kind without hard links)
  --no-mtime   leave out times (trees compared across renames and copies)
  --exact      two extractions of one archive: times in nanoseconds (symlinks'
               too), each hard link's group (the first name of its inode),
               and where a file's data and holes lie
  --no-dir-times  leave out directories' times (GNU tar's own extraction of an
               archive not in depth-first order, as bsdtar writes them, leaves
               each directory it comes back to with the time of the extraction)
The staging area (.reimage) is never listed.
"""
import hashlib
import os
import stat
import sys


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def layout(path, size):
    """A file's data extents as offset+length, by SEEK_DATA/SEEK_HOLE."""
    out, pos = [], 0
    with open(path, "rb") as f:
        fd = f.fileno()
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            out.append("%d+%d" % (data, hole - data))
            pos = hole
    return ",".join(out)


def line(top, rel, opts, first_name):
    path = os.path.join(top, rel)
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    parts = [rel, "type=%o" % kind, "mode=%o" % stat.S_IMODE(st.st_mode),
             "owner=%d:%d" % (st.st_uid, st.st_gid)]
    if "--no-links" not in opts and not stat.S_ISDIR(st.st_mode):
        parts.append("links=%d" % st.st_nlink)
    exact = "--exact" in opts
    if exact and not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        parts.append("group=" + first_name[(st.st_dev, st.st_ino)])
    if stat.S_ISDIR(st.st_mode) and "--no-dir-times" in opts:
        pass
    elif "--no-mtime" in opts:
        pass
    elif exact:
        parts.append("mtime=%d.%09d" % divmod(st.st_mtime_ns, 10**9))
    # A symlink's own time is not what every archive format keeps.
    elif not stat.S_ISLNK(st.st_mode):
        parts.append("mtime=%d" % int(st.st_mtime))
    if stat.S_ISLNK(st.st_mode):
        parts.append("target=" + os.readlink(path))
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        parts.append("dev=%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)))
    if stat.S_ISREG(st.st_mode):
        parts.append("size=%d" % st.st_size)
        parts.append("sha=" + digest(path))
        if "--no-sparse" not in opts:
            parts.append("sparse=%d" % (st.st_blocks * 512 < st.st_size))
        if exact:
            parts.append("data=" + layout(path, st.st_size))
    if "--no-xattr" not in opts:
        names = sorted(os.listxattr(path, follow_symlinks=False))
        for name in names:
            if "--no-acl" in opts and name.startswith("system.posix_acl_"):
                continue
            # XFS shows root its own copy of the ACLs: system.posix_acl_*
            # already says the same.
            if name.startswith("trusted.SGI_ACL_"):
                continue
            value = os.getxattr(path, name, follow_symlinks=False)
            parts.append("xattr:%s=%s" % (name, value.hex()))
    return " ".join(parts)


def main():
    top, opts = sys.argv[1], sys.argv[2:]
    rels = []
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not (root == top and d == ".reimage")]
        for name in dirs + files:
            rels.append(os.path.relpath(os.path.join(root, name), top))
    rels.sort()
    first_name = {}
    for rel in rels:
        st = os.lstat(os.path.join(top, rel))
        first_name.setdefault((st.st_dev, st.st_ino), rel)
    for rel in rels:
        print(line(top, rel, opts, first_name))


main()
