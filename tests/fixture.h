/*
 * fixture.h -- sandbox roots and images for the engine's tests: an "old"
 * root with users, network settings, a kept entry and hard links, a
 * "new" image tree, archives of it, and manifests that compare trees
 * file by file (type, mode, owner, size, content, link target, links).
 */
#ifndef REIMAGE_TEST_FIXTURE_H
#define REIMAGE_TEST_FIXTURE_H

/* Populate dir as a running system's root (the old image). */
void fixture_old_root(const char *dir);
/* Populate dir as the new image's tree. */
void fixture_new_tree(const char *dir);
/* Pack dir into archive (tar; compressor "", "zstd", "gzip", "xz"). */
void fixture_pack(const char *dir, const char *archive, const char *compressor);
/* SHA-256 of a file, 64 hex digits (static buffer). */
const char *fixture_sha256(const char *path);
/* Size of a file. */
long long fixture_size(const char *path);
/* Manifest of a tree, without .reimage (malloc'ed, sorted lines). */
char *fixture_manifest(const char *dir);
/* Run the reimage binary with args; its exit status, output in *out
 * (also copied to stderr for the test's log). */
int fixture_reimage(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for reimagectl. */
int fixture_reimagectl(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write a job file for the sandbox backend: image_extra goes inside the
 * image group, extra after it (either may be NULL).  The boot guard is
 * off (trial.guard = false) unless extra has a trial group. */
void fixture_job(const char *path, const char *image, const char *image_extra, const char *extra);
/* tests/manifest.py's lines without times (type, mode, owner, links,
 * link target, device numbers, size, content CRC, xattrs), made
 * in-process: for sweeps that take hundreds, where a Python or find
 * start-up costs more than the point itself.  .reimage is left out. */
char *fixture_tree_manifest(const char *dir);
/* Compare two manifests; on a difference print a diff and return 0. */
int fixture_same(const char *a, const char *b, const char *what);

/* The metadata fixture every image source is checked against: the new
 * image's tree plus device nodes, a sparse file, an xattr, an ACL, a file
 * capability, an owner and a time (needs root). */
void fixture_meta_tree(const char *dir);
/* What a source kind cannot carry, left out of fixture_meta_manifest(). */
#define FIXTURE_NO_ACL 1u     /* POSIX ACLs */
#define FIXTURE_NO_XATTR 2u   /* every xattr: ACLs and capabilities too */
#define FIXTURE_NO_SPARSE 4u  /* holes */
#define FIXTURE_NO_MTIME 8u   /* times (a tree renamed about, or copied) */
/* Every piece of metadata of a tree, one sorted line per entry
 * (tests/manifest.py): type, mode, owner, links, link target, time,
 * device numbers, size, content, sparseness, xattrs.  malloc'ed. */
char *fixture_meta_manifest(const char *dir, unsigned drop);

/* Stage with one writer in this case's reimage runs: "at" (writer_at.c;
 * the case is skipped where the kernel has no openat2) or "libarchive". */
void fixture_writer(const char *name);

#endif
