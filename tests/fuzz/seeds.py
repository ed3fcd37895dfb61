#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/seed-*).

Crash reproducers found by tests/fuzz/run.sh are added beside them by
hand (crash-<what>), never regenerated.  usage: seeds.py [CORPUS_DIR]
"""
import io
import os
import subprocess
import sys
import tarfile

here = os.path.dirname(os.path.abspath(__file__))
corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")


def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------- journal
# byte 0: flags (1 undo, 2 atomic exchange, 4 deferred moves); then lines.
plan = [b"Vplan 1 3", b"Vstep exchange @0 @2 a", b"Vstep retire @1 @5 b",
        b"Vstep add @5 @3 c"]
put("journal", "complete", b"\x00" + b"\n".join(plan) + b"\n")
put("journal", "undo-after-swapped", b"\x01" + b"\n".join(plan + [b"Vswapped"]) + b"\n")
put("journal", "exchange-atomic", b"\x02" + b"\n".join(plan) + b"\n")
put("journal", "deferred", b"\x04" + b"\n".join(plan + [b"Vdeferred 1"]) + b"\n")
put("journal", "torn-step", b"\x00" + b"\n".join(plan[:2] + [b"Tstep retire @1 @5 b"]) + b"\n")
put("journal", "bad-crc", b"\x00" + b"\n".join([plan[0], b"Cstep exchange @0 @2 a"] + plan[2:]) + b"\n")
put("journal", "final-and-preserves", b"\x00" + b"\n".join([
    b"Vplan 1 4", b"Vstep final @4 @5 -", b"Vstep pmove @5 @5 home/alice",
    b"Vstep pexchange @5 @5 etc%2Fhostname", b"Vstep mount @5 @5 a"]) + b"\n")
put("journal", "undone-then-redo", b"\x00" + b"\n".join(plan + [b"Vundone", b"Vredo"]) + b"\n")
put("journal", "raw-garbage", b"\x00R 5 0000000 plan\nR 18446744073709551615 00000000 x\n"
    b"R -1 00000000 \nR 9 0x123456 plan 1 0\n")
put("journal", "empty-plan", b"\x00Vplan 1 0\nVswapped\n")

# ------------------------------------------------------------ envelope
job = open(os.path.join(here, "..", "..", "conf", "job.conf"), "rb").read()
put("envelope", "signed-sample-job", b"S" + job)
put("envelope", "signed-small-job", b"S" + b'id = "j1";\nserial = 3;\n'
    b'image: { url = "https://example.com/i.tar"; sha256 = "' + b"0" * 64 + b'"; };\n')
put("envelope", "signed-include", b"S@include \"/etc/passwd\"\nid = \"x\";\n")
put("envelope", "signed-duplicate-keys", b'Sid = "a";\nid = "b";\nserial = 1;\n')
put("envelope", "unsigned-envelope", b"reimage-signed-job 1\nkey: 3f1c0a9be27d4c55\n"
    b"signature: " + b"A" * 86 + b"==\nlength: 9\n\nid = \"x\"\n")
put("envelope", "envelope-long-signature", b"reimage-signed-job 1\nkey: 3f1c0a9be27d4c55\n"
    b"signature: " + b"A" * 200 + b"\nlength: 0\n\n")
put("envelope", "envelope-huge-length", b"reimage-signed-job 1\nkey: 3f1c0a9be27d4c55\n"
    b"signature: " + b"A" * 86 + b"==\nlength: 99999999999999999999\n\n")
put("envelope", "envelope-truncated", b"reimage-signed-job 1\nkey: 3f1c")

# ------------------------------------------------------------- extract
# byte 0: flags (1 raw archive, 2 OCI layer, 4 dry run); then entries
# [type, path shape, target shape, mode, string length] + string.
def entry(kind, path, target=0, mode=0, s=b""):
    return bytes([kind, path, target, mode, len(s)]) + s

FILE, DIR, SYM, HARD, CHR, BLK, FIFO = range(7)
put("extract", "tree", b"\x00" + entry(DIR, 0) + entry(DIR, 1) + entry(FILE, 2) +
    entry(SYM, 3, 0) + entry(FILE, 27))
put("extract", "symlink-then-write", b"\x00" + entry(SYM, 3, 13) + entry(FILE, 4) +
    entry(FILE, 6) + entry(DIR, 5))
put("extract", "dotdot", b"\x00" + entry(FILE, 7) + entry(FILE, 8) + entry(FILE, 10) +
    entry(FILE, 21) + entry(FILE, 20))
put("extract", "absolute", b"\x00" + entry(FILE, 11) + entry(FILE, 12) + entry(DIR, 13) +
    entry(FILE, 23))
put("extract", "hardlinks", b"\x00" + entry(HARD, 0, 14) + entry(HARD, 1, 15) +
    entry(SYM, 3, 13) + entry(HARD, 2, 4) + entry(HARD, 0, 4))
put("extract", "devices", b"\x00" + entry(CHR, 24, 0, 3) + entry(BLK, 25, 0, 0o20) +
    entry(CHR, 27, 0, 2) + entry(HARD, 0, 24) + entry(FIFO, 1))
put("extract", "replace-dir-with-link", b"\x00" + entry(DIR, 0, 0, 0) + entry(DIR, 1, 0, 7) +
    entry(SYM, 0, 13))
put("extract", "whiteouts", b"\x02" + entry(SYM, 3, 13) + entry(FILE, 33) + entry(FILE, 32) +
    entry(FILE, 31) + entry(FILE, 28) + entry(FILE, 34) + entry(FILE, 35))
put("extract", "dry-run", b"\x04" + entry(DIR, 0) + entry(FILE, 1) + entry(FILE, 7))
put("extract", "strings", b"\x00" + entry(FILE, 200, 0, 0, b"plain") +
    entry(SYM, 200, 200, 0, b"..") + entry(FILE, 37, 0, 0, b"x/../../..") +
    entry(DIR, 42))
attack = os.path.join(here, "..", "attack.py")
for kind in ("dotdot", "absolute", "symlink", "hardlink", "replace", "badpax", "xattr",
             "devlink", "devsetuid", "selflink", "utf8"):
    out = os.path.join(corpus, "attack.tar")
    subprocess.run([sys.executable, attack, kind, out, "/tmp/reimage-fuzz-outside"], check=True)
    put("extract", "attack-" + kind, b"\x01" + open(out, "rb").read())
    os.unlink(out)

# ------------------------------------------------------------- toc
# byte 0: 0 a whole TOC, 1 its head (byte 1: files asked for), 2 a
# tar-split.  seed-image-* were cut from `reimagectl image chunk` of a
# small tree (a chunked file, a hard link, a symlink, a fifo, an xattr);
# these add the edges of the grammar by hand.
put("toc", "chunks", b"\x00\x00" + b'{"version":1,"entries":[{"type":"reg","name":"a",'
    b'"size":3,"digest":"sha256:' + b"0" * 64 + b'","offset":10,"endOffset":20,'
    b'"chunkSize":2,"chunkDigest":"sha256:' + b"1" * 64 + b'"},{"type":"chunk","name":"a",'
    b'"offset":20,"chunkOffset":2,"chunkSize":1,"chunkDigest":"sha256:' + b"2" * 64 +
    b'"}],"tarSplitDigest":"sha256:' + b"3" * 64 + b'"}')
put("toc", "escapes", b"\x00\x00" + b'{"version":1,"entries":[{"type":"dir","name":'
    b'"\\u00e9t\\u00E9\\/\\"q\\"\\\\","mode":493,"x":[1,-2.5e3,true,false,null,{}]}]}')
put("toc", "split-file", b"\x02\x00" + b'{"type":1,"name":"a","size":3}\n'
    b'{"type":2,"payload":"AAAA"}\n')
