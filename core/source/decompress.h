/*
 * decompress.h -- a stream's transport reads, hashing and decompression
 * in a thread of their own, feeding the extractor through a few bounded
 * blocks: on two cores, unpacking an image overlaps writing it, as
 * `curl | zstd -d | tar -x` does with three processes.  The thread only
 * reads; progress, stops and every file written stay with the caller.
 */
#ifndef REIMAGE_DECOMPRESS_H
#define REIMAGE_DECOMPRESS_H

#include "stream.h"

struct archive;
struct decompress;

/* Start the thread reading s: filters are all libarchive decodes (gzip,
 * xz, zstd, bzip2, uu, rpm...; none when the stream is not compressed).
 * Until decompress_stop, only the thread reads s (the caller reports
 * progress through the read callback, with stream_progress). */
int decompress_start(struct stream *s, struct decompress **ret, struct reimage_error *err);
/* Feed the decoded bytes to the reader a, whose formats the caller chose
 * (its filters are not needed).  Returns archive_read_open's status. */
int decompress_archive_open(struct archive *a, struct decompress *d);
/* Stop the thread and wait for it; the stream is the caller's again,
 * positioned where the thread stopped (stream_finish hashes the rest).
 * Returns the first error that is not the decoder's own -- the stream's
 * (transport, size, digest) or a stop on request -- or NULL: a decoding
 * error is the reader's (archive_error_string).  Idempotent. */
const struct reimage_error *decompress_stop(struct decompress *d);
/* Stop, and free.  NULL is fine. */
void decompress_free(struct decompress *d);

#endif
