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
/* Write a job file for the sandbox backend: image_extra goes inside the
 * image group, extra after it (either may be NULL). */
void fixture_job(const char *path, const char *image, const char *image_extra, const char *extra);
/* Compare two manifests; on a difference print a diff and return 0. */
int fixture_same(const char *a, const char *b, const char *what);

#endif
