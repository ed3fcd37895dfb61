/*
 * stage.h -- STAGE: the new image, whatever its source (an archive, a
 * tree, a file-system image, an OCI image: see source.h), is written in
 * one pass into <root>/.reimage/new through ONE writer, the sink below.
 * The sink is reimage's checks in front of a disk writer (reimage's own,
 * writer_at.h, where the kernel allows; else libarchive's with reimage's
 * flags): every path is relative and free of "..", rooted at the
 * staging directory's real path (no chdir), hard-link targets likewise,
 * nothing written through a symlink, and any refused entry fails the
 * whole stage.  The image is hostile until its digest matches.
 */
#ifndef REIMAGE_STAGE_H
#define REIMAGE_STAGE_H

#include "digest.h"
#include "progress.h"
#include "registry.h"

#include <stdint.h>

struct stage_request {
	struct plugin *transport;  /* started; serves the source's location */
	const char *url;           /* image.url */
	const char *kind;          /* image.kind, or NULL: from the URL (source.h) */
	const char *sha256;        /* expected, 64 hex digits, or NULL */
	const char *toc_sha256;    /* chunked: the TOC's digest (image.toc_sha256), or NULL */
	const char *root;          /* the running root (files a chunked image reuses), or NULL */
	int64_t size;              /* expected bytes, -1 if unknown */
	const char *token_file;    /* image.token_file (OCI registry), or NULL */
	const char *staging;       /* absolute, real path of the staging directory */
	const char *workdir;       /* <root>/.reimage: room for a mount point or a fetched file */
	struct plugin *backend;    /* started; opens file-system images (may be NULL) */
	int retries;               /* resumes after a retryable failure */
	int64_t retry_delay_ms;    /* first delay, doubled each time */
	struct progress *progress; /* may be NULL */
	uint64_t free_floor;       /* bytes that must stay free on staging's volume
				    * (preflight.free_margin_mb); 0: not watched */
	int64_t unpacked_size;     /* image.unpacked_size: most file data bytes staging
				    * writes; -1 (or 0): no limit but the margin */
	/* image.devices: directories (relative, "." for anywhere) below which
	 * the image may create device nodes; NULL: "dev" only (stage.c). */
	const char *const *devices;
};

struct stage_result {
	uint64_t bytes_in;         /* bytes of the image read and hashed */
	uint64_t entries;          /* entries written */
	uint64_t bytes_out;        /* file data written */
	char sha256[DIGEST_HEX_SHA256];  /* digest of what the job's sha256 checks ("" if none) */
	int resumes;               /* times a stream was reopened */
};


/* ------------------------------------------------------------ the sink */

struct archive;
struct archive_entry;
struct stage_dir_time;
struct writer_at;

struct stage_sink {
	const char *staging;       /* real path of the staging directory */
	int dry;                   /* check and count only: `reimage plan` */
	int layered;               /* OCI layers: an entry replaces what an earlier
				    * layer left at its path, even a directory */
	struct archive *out;       /* libarchive's disk writer between begin and end */
	struct writer_at *at;      /* or reimage's (writer_at.h), where the kernel allows */
	uint64_t entries, bytes;   /* entries written (or seen), file data bytes */
	char **top;                /* dry run: top-level names, NULL-terminated */
	size_t n_top;
	struct stage_dir_time *times;  /* directories that existed: times set at end */
	size_t n_times;
	uint64_t free_floor;       /* see stage_request; 0: not watched */
	uint64_t next_space_check; /* bytes + entries * 4 KiB at which to look again */
	uint64_t limit;            /* file data bytes that may be written; 0: none */
	const char *const *devices;  /* see stage_request */
	/* A kind whose regular file's content lies verified in a file on
	 * staging's volume (chunked: a snapshot of the root's file) offers
	 * it, and reimage's writer clones it (a reflink) instead of writing
	 * the data, which is still read: 1 with *ret_fd (which the sink
	 * closes), 0 if none, or < 0.  NULL: never. */
	int (*clone_from)(void *arg, const char *rel, uint64_t size, int *ret_fd,
			  struct reimage_error *err);
	void *clone_arg;
	uint64_t cloned, cloned_bytes;  /* files cloned, and their bytes */
};

/* Where a source's file data comes from: one block per call, at its
 * offset in the file (offsets skipped are holes); returns 1 with a
 * block, 0 at the end of the file, or < 0 with err filled. */
typedef int (*stage_data_fn)(void *arg, const void **ret_buf, size_t *ret_len,
			     int64_t *ret_offset, struct reimage_error *err);
/* A stage_data_fn for a libarchive reader (arg: the struct archive). */
int stage_archive_data(void *arg, const void **ret_buf, size_t *ret_len, int64_t *ret_offset,
		       struct reimage_error *err);

void stage_sink_init(struct stage_sink *k, const char *staging, int dry);
/* Open the disk writer; every entry between begin and end shares its
 * deferred directory fixups (modes, times), applied at end. */
int stage_sink_begin(struct stage_sink *k, struct reimage_error *err);
/* Write one entry (its path relative to the image's root) and its data. */
int stage_sink_entry(struct stage_sink *k, struct archive_entry *e, stage_data_fn data,
		     void *arg, struct reimage_error *err);
/* Remove what an earlier layer put at rel (an OCI whiteout), never
 * through a symlink; a missing path is no error. */
int stage_sink_remove(struct stage_sink *k, const char *rel, struct reimage_error *err);
int stage_sink_end(struct stage_sink *k, struct reimage_error *err);
/* Release the writer and the names (after end, or on failure). */
void stage_sink_fini(struct stage_sink *k);

/* libarchive's disk writer with reimage's flags: numeric owners, all
 * metadata, no writes through symlinks, no "..". */
struct archive *stage_disk_writer(void);
/* libarchive's writer's lookups of owners by name (an ACL entry's):
 * the id if known, a numeric name, else this machine's accounts. */
int64_t stage_lookup_uid(void *data, const char *name, int64_t id);
int64_t stage_lookup_gid(void *data, const char *name, int64_t id);
/* libarchive's disk reader as every tree walk uses it: symlinks read as
 * links (never followed), mount points inside the tree not entered. */
struct archive *stage_disk_reader(void);
/* Copy the current entry's data blocks (holes stay holes). */
int stage_copy_data(struct archive *in, struct archive *out, uint64_t *bytes, const char *name,
		    struct reimage_error *err);
/* After ARCHIVE_WARN from a reader's header or the writer: 0 if the
 * warning is on the short list of harmless ones (stage.c), else a
 * refusal "WHAT 'NAME': MESSAGE" in err. */
int stage_warning(struct archive *a, const char *what, const char *name,
		  struct reimage_error *err);
/* Check that an archive member's path stays inside staging: relative,
 * no "..", not empty.  Returns the path without leading "./" or NULL. */
const char *stage_safe_path(const char *path);

#endif
