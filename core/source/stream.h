/*
 * stream.h -- one resource read through a transport, the way STAGE reads
 * everything it stages: hashed (SHA-256) as it arrives, its declared size
 * enforced while it streams, resumed from the byte reached after a
 * retryable failure.  The image file of an archive, each blob of an OCI
 * image, a file-system image fetched before it is opened: all are read
 * through here, so every source gets the same integrity checks.
 */
#ifndef REIMAGE_STREAM_H
#define REIMAGE_STREAM_H

#include "digest.h"
#include "progress.h"
#include "registry.h"

#include <stdint.h>
#include <sys/types.h>

struct stream_request {
	struct plugin *transport;       /* started */
	const char *url;
	const char *what;               /* "image", "layer 2 of 3": names it in messages */
	const char *declared_by;        /* "the job", "the manifest": whose size and digest */
	const char *sha256;             /* expected digest (64 hex digits), or NULL */
	int64_t size;                   /* expected bytes, -1 if unknown */
	int retries;                    /* resumes after a retryable failure */
	int64_t retry_delay_ms;         /* first delay, doubled each time */
	struct reimage_open_opts *opts; /* request options (open_ex), or NULL */
	struct progress *progress;      /* may be NULL; begun by the caller */
	uint64_t progress_base;         /* bytes of earlier streams in the same progress */
	/* Instead of a transport: bytes pulled from the caller (a member of
	 * an archive), hashed and checked the same way; never resumed.
	 * Returns the count, 0 at the end, or < 0 with err filled. */
	ssize_t (*pull)(void *arg, void *buf, size_t len, struct reimage_error *err);
	void *pull_arg;
	/* The caller checks every byte itself (a rebuilt tar: each file
	 * against the TOC): no digest of the whole, and sha256 must be NULL. */
	int unhashed;
};

struct stream;

/* Open the resource.  A retryable failure to open is retried by the first
 * read; any other is returned here. */
int stream_open(const struct stream_request *req, struct stream **ret_stream,
		struct reimage_error *err);
/* The next block of the resource (valid until the next call): its length,
 * 0 at the end, or a negative code with stream_error() filled.  -ESTALE:
 * the resource cannot be resumed where it stopped (it changed, or named
 * no version to resume): the caller must read it again from byte 0. */
ssize_t stream_read(struct stream *s, const void **ret_buf);
/* Read what is left (the digest covers the whole resource), then check
 * the size and the digest.  ret_sha256 may be NULL ("" if unhashed). */
int stream_finish(struct stream *s, char ret_sha256[DIGEST_HEX_SHA256],
		  struct reimage_error *err);
/* While another thread reads the stream (decompress.c), progress is the
 * caller's: stream_read stops reporting it, and the caller reports the
 * offset a block reached with stream_progress() (-ECANCELED on a stop). */
void stream_progress_elsewhere(struct stream *s, int elsewhere);
int stream_progress(const struct stream *s, uint64_t offset, struct reimage_error *err);
/* The first error of the stream (transport, size, digest), or NULL. */
const struct reimage_error *stream_error(const struct stream *s);
/* Bytes read and hashed so far; times the stream was reopened. */
uint64_t stream_offset(const struct stream *s);
int stream_resumes(const struct stream *s);
/* The size the transport announced, else the declared one, else
 * REIMAGE_SIZE_UNKNOWN. */
uint64_t stream_size(const struct stream *s);
void stream_close(struct stream *s);

struct archive;
/* Feed the stream to a libarchive reader (format and filters set up by
 * the caller).  Read errors become libarchive errors whose reason is in
 * stream_error(). */
int stream_archive_open(struct archive *a, struct stream *s);

#endif
