#!/usr/bin/env python3
"""Print every piece of metadata of a tree, one sorted line per entry, so
that two trees compare file by file: type, mode, owner, link count, link
target, modification time, device numbers, size, content digest,
sparseness and extended attributes (ACLs and file capabilities are
xattrs: system.posix_acl_*, security.capability).

usage: manifest.py DIR [--no-acl] [--no-xattr] [--no-sparse] [--no-links] [--no-mtime]
  --no-acl     leave out system.posix_acl_* (a source kind without ACLs)
  --no-xattr   leave out every xattr (and so ACLs and capabilities)
  --no-sparse  do not say whether a file is sparse
  --no-links   leave out link counts (a source kind without hard links)
  --no-mtime   leave out times (trees compared across renames and copies)
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


def line(top, rel, opts):
    path = os.path.join(top, rel)
    st = os.lstat(path)
    kind = stat.S_IFMT(st.st_mode)
    parts = [rel, "type=%o" % kind, "mode=%o" % stat.S_IMODE(st.st_mode),
             "owner=%d:%d" % (st.st_uid, st.st_gid)]
    if "--no-links" not in opts and not stat.S_ISDIR(st.st_mode):
        parts.append("links=%d" % st.st_nlink)
    # A symlink's own time is not what any archive format keeps.
    if not stat.S_ISLNK(st.st_mode) and "--no-mtime" not in opts:
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
    if "--no-xattr" not in opts:
        names = sorted(os.listxattr(path, follow_symlinks=False))
        for name in names:
            if "--no-acl" in opts and name.startswith("system.posix_acl_"):
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
    for rel in sorted(rels):
        print(line(top, rel, opts))


main()
