/*
 * fuzz.h -- what the fuzz targets share: a scratch directory of their
 * own, a manifest of a tree (to prove a sentinel untouched), and a check
 * that aborts -- a crash both libFuzzer and the corpus replay report.
 */
#ifndef REIMAGE_FUZZ_H
#define REIMAGE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A new directory $FUZZ_SCRATCH (else /dev/shm, else /tmp)/reimage-fuzz-NAME-XXXXXX
 * (its real path), removed when the process exits normally. */
const char *fz_scratch(const char *name);
/* Every object below dir (not following symlinks): path, type, mode,
 * owner, links, size, link target, content digest; one line each. */
char *fz_manifest(const char *dir);
/* Entries of a directory (without "." and ".."). */
int fz_count_entries(const char *dir);
/* Remove a tree; a missing one is fine; aborts if it cannot. */
void fz_remove(const char *path);
/* Clear immutable and append-only flags and open up directories below
 * path (not following symlinks), so that fz_remove() can remove it. */
void fz_unlock(const char *path);
/* mkdir -p of one directory (mode), aborting on failure. */
void fz_mkdir(const char *path, unsigned mode);
void fz_write(const char *path, const char *text);
/* Abort with a message unless ok. */
#define FZ_CHECK(ok, ...) \
	do { \
		if (!(ok)) \
			fz_fail(__FILE__, __LINE__, __VA_ARGS__); \
	} while (0)
void fz_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

#endif
