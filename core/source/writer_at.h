/*
 * writer_at.h -- STAGE's own disk writer (Linux): each entry written with
 * openat2/mkdirat/symlinkat/linkat/mknodat and f*() calls relative to
 * cached descriptors of staging's directories, the kernel keeping every
 * lookup beneath staging (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS).  stage.c calls it per entry (header, data,
 * finish) where it would call libarchive's archive_write_disk, which stays
 * the fallback where the kernel lacks openat2, and elsewhere; what is
 * written is stage.c's to decide (its checks run before, for either writer).
 */
#ifndef REIMAGE_WRITER_AT_H
#define REIMAGE_WRITER_AT_H

#include "error.h"

#include <stddef.h>
#include <stdint.h>

struct archive_entry;
struct writer_at;

/* The variable that forces a writer (tests): "at" (this one, failing
 * where the kernel lacks it) or "libarchive". */
#define WRITER_AT_ENV "REIMAGE_STAGE_WRITER"

/* Open the writer on staging (its absolute real path).  *ret is left NULL
 * when libarchive's writer is to serve instead: WRITER_AT_ENV says so, or
 * the kernel has no openat2 (ENOSYS); the choice is logged once. */
int writer_at_open(const char *staging, struct writer_at **ret, struct reimage_error *err);
/* Create entry e at rel (relative to staging, checked by stage.c: no
 * "..", not absolute), or the hard link rel -> hard (relative too; NULL
 * if e is no hard link), replacing what an earlier entry left there.
 * Missing parent directories are made (mode 0777 less the umask). */
int writer_at_header(struct writer_at *w, struct archive_entry *e, const char *rel,
		     const char *hard, struct reimage_error *err);
/* A block of the entry's data at offset; what lies between blocks stays
 * a hole. */
int writer_at_data(struct writer_at *w, const void *buf, size_t len, int64_t offset,
		   struct reimage_error *err);
/* The entry's content as a clone of src_fd's (a reflink: no byte
 * copied), which holds exactly the entry's size: 1 cloned, 0 where the
 * file system cannot (the caller writes the data then), or < 0. */
int writer_at_clone(struct writer_at *w, int src_fd, struct reimage_error *err);
/* The entry's owner, mode, extended attributes, ACLs, times and flags
 * (a directory's mode, times, ACLs and flags wait for writer_at_close). */
int writer_at_finish(struct writer_at *w, struct reimage_error *err);
/* Before the caller removes rel's tree (relative to staging): the cached
 * descriptors that may lie in it are closed, and the deferred metadata of
 * its directories dropped (a directory made there again is another). */
void writer_at_forget(struct writer_at *w, const char *rel);
/* Apply the directories' deferred metadata, through descriptors opened
 * beneath staging (a directory since replaced by a link is left alone),
 * and close every descriptor. */
int writer_at_close(struct writer_at *w, struct reimage_error *err);
/* Close without applying (after a failure); NULL is fine. */
void writer_at_free(struct writer_at *w);

#endif
