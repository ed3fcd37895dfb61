/*
 * chunked.h -- the zstd:chunked image format (containers/storage's, see
 * README "Chunked images"): a tar compressed with zstd where every
 * regular file's content is a zstd frame of its own, followed by three
 * zstd skippable frames: the table of contents (JSON, zstd-compressed),
 * the tar-split (the tar's headers and padding, JSON lines,
 * zstd-compressed), and a 64-byte footer saying where both are.  Any zstd
 * decoder skips the skippable frames, so `tar --zstd -x` extracts it from
 * start to end; a reader that knows the layout fetches the footer, the
 * TOC and the tar-split, and then only the frames of the files it lacks.
 *
 * This file holds what the writer (`reimagectl image chunk`) and the
 * reader (source_chunked.c) share: the footer, the TOC's files, the
 * tar-split's records.
 */
#ifndef REIMAGE_CHUNKED_H
#define REIMAGE_CHUNKED_H

#include "digest.h"

#include <reimage/plugin.h>
#include <stddef.h>
#include <stdint.h>

/* The footer: the last 64 bytes of the file (the data of a skippable
 * frame), seven little-endian 64-bit numbers and the magic "GNUlInUx". */
#define CHUNKED_FOOTER_SIZE 64
/* A skippable frame's header: magic 0x184D2A50 and the data's length. */
#define CHUNKED_SKIPPABLE_HEADER 8
/* The TOC's and tar-split's size limits, compressed and not: a TOC of a
 * few hundred thousand files stays far below. */
#define CHUNKED_META_MAX (256u << 20)

struct chunked_footer {
	uint64_t toc_offset, toc_length, toc_ulength, toc_type;
	uint64_t ts_offset, ts_length, ts_ulength;
};

/* Parse the footer of a file of file_size bytes; -EBADMSG if it is not
 * one (no magic: not a chunked image), or its frames lie outside. */
int chunked_footer_parse(const unsigned char b[CHUNKED_FOOTER_SIZE], uint64_t file_size,
			 struct chunked_footer *ret, struct reimage_error *err);

/* One chunk of a file's content: containers/storage cuts a file's
 * content where a rolling checksum says (chunked_split_point), each piece
 * its own zstd frame, so that a changed file costs only its changed
 * chunks.  A file the TOC does not cut is one chunk, its digest the
 * file's. */
struct chunked_chunk {
	uint64_t at, size;          /* its bytes of the file's content */
	uint64_t offset, end;       /* its frame in the image: [offset, end) */
	unsigned char digest[32];   /* SHA-256 of its bytes */
	char *local;                /* reader: a root file holding these bytes, */
	uint64_t local_at;          /* from here */
	uint64_t fetched;           /* reader: where its frame lies in the fetched file */
	size_t request;             /* reader: the range request that fetches it */
};

/* One regular file of the TOC with content. */
struct chunked_file {
	char *name;                 /* as the tar names it */
	uint64_t size;              /* bytes of its content in the tar */
	uint64_t offset, end;       /* its frame(s) in the image: [offset, end) */
	unsigned char digest[32];   /* SHA-256 of its content */
	int64_t mtime;              /* its modtime: seconds (INT64_MIN if none), */
	long mtime_nsec;            /* and nanoseconds */
	struct chunked_chunk *chunks;  /* in order, covering [0, size) */
	size_t n_chunks;
	/* reimage's extension (docs/usage.md "Delta frames"): a zstd frame of
	 * the content compressed with the base's content (base_size bytes
	 * hashing to base) as its prefix, at [delta_offset, + delta_size). */
	int has_delta;
	unsigned char delta_base[32];
	uint64_t delta_base_size, delta_offset, delta_size;
	char *delta_from;           /* reader: a root path that seems to hold the base */
};

struct chunked_toc {
	struct chunked_file *files;  /* in the TOC's order */
	size_t n;
	unsigned char tarsplit_digest[32];  /* of the compressed tar-split */
	int has_tarsplit_digest;
};

/* The rolling checksum that cuts a file's content in chunks: bup's (an
 * Adler-32-like sum over the last 64 bytes), a cut after each byte where
 * the low CHUNKED_ROLL_BITS bits of its second half are all ones -- the
 * rule of containers/storage's compressor, about 64 KiB a chunk. */
#define CHUNKED_ROLL_WINDOW 64
#define CHUNKED_ROLL_BITS 16
struct chunked_roll {
	uint32_t s1, s2;
	unsigned char window[CHUNKED_ROLL_WINDOW];
	unsigned wofs;
};
void chunked_roll_init(struct chunked_roll *r);
/* Roll len bytes of p in; the count of bytes up to and including the
 * first cut point among them, or 0 if none. */
size_t chunked_roll_split(struct chunked_roll *r, const unsigned char *p, size_t len);

/* Parse a TOC (its JSON, decompressed); what names it in messages. */
int chunked_toc_parse(const char *json, size_t len, const char *what, struct chunked_toc *ret,
		      struct reimage_error *err);
void chunked_toc_free(struct chunked_toc *toc);
/* The first max files of a TOC (json: its beginning, perhaps cut short),
 * their chunks perhaps incomplete; -EBADMSG if it holds fewer. */
int chunked_toc_head(const char *json, size_t len, size_t max, struct chunked_toc *ret,
		     struct reimage_error *err);

/* One record of the tar-split: raw bytes of the tar (headers, padding,
 * the end blocks), or a file's content that the TOC describes. */
struct chunked_record {
	int is_file;
	unsigned char *bytes;  /* a segment's bytes */
	size_t len;            /* a segment's length */
	char *name;            /* a file's name */
	uint64_t size;         /* a file's content bytes */
};

struct chunked_split {
	struct chunked_record *rec;
	size_t n;
	uint64_t tar_size;     /* bytes of the whole tar the records make */
};

int chunked_split_parse(const char *lines, size_t len, struct chunked_split *ret,
			struct reimage_error *err);
void chunked_split_free(struct chunked_split *ts);

/* 64 lowercase hex digits into 32 bytes; -1 if they are not. */
int chunked_hex_digest(const char *hex, unsigned char out[32]);

/* Decompress one zstd frame of at most cap bytes (a TOC, a tar-split). */
int chunked_unzstd(const void *in, size_t len, size_t cap, char **ret, size_t *ret_len,
		   const char *what, struct reimage_error *err);

/* What chunked_write made: the job's image.sha256, size and toc_sha256. */
struct chunked_made {
	char sha256[DIGEST_HEX_SHA256];
	char toc_sha256[DIGEST_HEX_SHA256];
	uint64_t size;
	uint64_t files, entries;
	uint64_t deltas;            /* delta frames written (--base) */
};

/* Write the chunked image of src -- a directory (its tree, with every
 * piece of metadata the disk reader reads) or an image file libarchive
 * reads (tar of any compression, ...) -- to out, replaced atomically.
 * base: the chunked image before it, or NULL: each file base holds at
 * the same path with other content (up to CHUNKED_DELTA_MAX bytes each)
 * also gets a delta frame when that is smaller than its frames.
 * level: zstd's compression level. */
int chunked_write(const char *src, const char *out, const char *base, int level,
		  struct chunked_made *ret, struct reimage_error *err);

/* A delta frame's base and content are at most this big: their sum fits
 * the window any zstd decoder accepts by default (2^27). */
#define CHUNKED_DELTA_MAX (64u << 20)
/* The TOC key of a file's delta frame (an object: base, baseSize,
 * offset, size); readers of containers/storage's TOC ignore it. */
#define CHUNKED_DELTA_KEY "reimage.delta"

/* Decode a delta frame (its len bytes) against prefix (the base's
 * prefix_len bytes) into out (exactly out_len bytes); -1 if it is not
 * one or does not decode to out_len bytes. */
int chunked_delta_decode(const void *frame, size_t len, const void *prefix, size_t prefix_len,
			 void *out, size_t out_len);

#endif
