/*
 * stage.h -- STAGE: the transport's stream goes through SHA-256 and
 * libarchive in one pass into <root>/.reimage/new.  The archive is
 * hostile until the end-of-stream hash matches: every path is checked,
 * writes through symlinks refused, the declared size enforced while
 * streaming, and any refused entry fails the whole stage.
 */
#ifndef REIMAGE_STAGE_H
#define REIMAGE_STAGE_H

#include "progress.h"
#include "registry.h"

#include <stdint.h>

struct stage_request {
	struct plugin *transport;  /* started */
	const char *url;
	const char *sha256;        /* expected, 64 hex digits, or NULL */
	int64_t size;              /* expected bytes, -1 if unknown */
	const char *staging;       /* absolute, real path of the staging directory */
	int retries;               /* resumes after a retryable failure */
	int64_t retry_delay_ms;    /* first delay, doubled each time */
	struct progress *progress; /* may be NULL */
};

struct stage_result {
	uint64_t bytes_in;         /* bytes of the image read and hashed */
	uint64_t entries;          /* archive entries written */
	uint64_t bytes_out;        /* file data written */
	char sha256[65];           /* digest of what was read */
	int resumes;               /* times the stream was reopened */
};

/* Extract the image into req->staging (which must exist and be empty).
 * On failure the staging directory is left for the caller to remove. */
int stage_image(const struct stage_request *req, struct stage_result *res,
		struct reimage_error *err);
struct archive;
/* libarchive's disk writer with reimage's flags: numeric owners, all
 * metadata, no writes through symlinks, no "..". */
struct archive *stage_disk_writer(void);
/* Copy the current entry's data blocks (holes stay holes). */
int stage_copy_data(struct archive *in, struct archive *out, uint64_t *bytes, const char *name,
		    struct reimage_error *err);
/* Check that an archive member's path stays inside staging: relative,
 * no "..", not empty.  Returns the path without leading "./" or NULL. */
const char *stage_safe_path(const char *path);

#endif
