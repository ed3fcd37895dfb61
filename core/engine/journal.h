/*
 * journal.h -- the swap's journal, <root>/.reimage/journal.  A text file
 * of records "R <length> <crc32> <payload>\n"; a reader acts only on
 * whole records whose length and checksum match, so a record torn by a
 * power cut is ignored, never guessed at.  Names are percent-encoded.
 */
#ifndef REIMAGE_JOURNAL_H
#define REIMAGE_JOURNAL_H

#include <reimage/plugin.h>
#include <stddef.h>

struct journal_reader {
	char *data;
	size_t len, pos;
};

/* Append records (payloads) and make them durable: write, fsync the
 * file, fsync its directory (the first time the file is created). */
int journal_append(const char *path, const char *const *payloads, size_t n,
		   struct reimage_error *err);
/* Create the files at paths (all in one directory), each holding exactly
 * the records payloads: each written to "<path>.tmp" and fsynced, then
 * renamed over paths[i] in order, then the directory fsynced once.  A
 * crash leaves each path with its earlier content or the new one, whole. */
int journal_create(const char *const *paths, size_t n_paths, const char *const *payloads,
		   size_t n, struct reimage_error *err);
/* Load a journal; -ENOENT if there is none. */
int journal_open(struct journal_reader *jr, const char *path, struct reimage_error *err);
/* Next whole valid record's payload (NUL-terminated, in place), or NULL
 * at the end or at the first torn or corrupt record. */
const char *journal_next(struct journal_reader *jr);
void journal_close(struct journal_reader *jr);
/* Percent-encoding of a name for a payload: bytes <= ' ', '%' and >= 0x7f. */
void journal_encode(char *out, size_t len, const char *name);
int journal_decode(char *out, size_t len, const char *in);

#endif
