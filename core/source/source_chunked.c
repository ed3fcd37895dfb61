/*
 * source_chunked.c -- kind "chunked": a zstd:chunked image (chunked.h),
 * staged from the files the root already has plus the frames of the
 * others, fetched by range.
 *
 *   1. The footer, then the TOC: its compressed bytes must hash to the
 *      job's image.toc_sha256 (signed with the job) before a byte of it
 *      is parsed; then (after step 2, unless the image is read whole)
 *      the tar-split, whose digest the TOC holds.
 *   2. Each file with content is looked for on the root: the same path,
 *      else a path that held the same digest in the TOC of the last image
 *      staged from a chunked one (<root>/.reimage/chunked.toc, a hint
 *      only).  A candidate of the TOC's size and modification time is
 *      taken (hashed in step 4); one of the right size only is read and
 *      hashed first, and taken only if its SHA-256 is the TOC's.  A file
 *      found nowhere whole, cut in chunks by the image (chunked.h), is
 *      looked for chunk by chunk: the root's file of the same path is cut
 *      by the same rolling checksum and its chunks hashed, and a chunk
 *      the last TOC placed in a root file is read there and hashed; a
 *      chunk whose SHA-256 is the TOC's is taken from there.  Paths
 *      resolve inside the root (openat2 RESOLVE_IN_ROOT): a symlink of
 *      the running system never leads outside it.
 *   3. The frames of the other chunks are fetched with range reads
 *      (open_range), neighbours merged into one request when the gap
 *      between them is small (CHUNKED_GAP), each request at most
 *      CHUNKED_REQUEST_MAX bytes, into an unnamed file on the root's
 *      volume -- by a thread of their own with up to CHUNKED_IN_FLIGHT
 *      requests open at once (each waits for its answer's headers only,
 *      so their round trips overlap), while step 4 runs behind it.
 *   4. The tar is rebuilt from the tar-split -- its headers and padding
 *      byte for byte, each file's content from the root or from its
 *      decompressed frames (each waited for until its request is in),
 *      hashed again as it is produced and checked against the TOC -- and
 *      read by the same reader and the same disk writer as a full
 *      extraction (source_archive_read): the staged tree is what the full
 *      image gives, entry by entry, by construction.

 * When more than half of the image's frames are to be fetched (a first
 * image), the image is read whole: as many bytes, and faster.
 *
 * Any failure -- no footer, a TOC or tar-split digest that does not match,
 * a range the server does not honour, a frame or a file that does not
 * hash to its digest (a root file changed between the two reads) -- wipes
 * what was staged and reads the whole image as an archive (image.sha256
 * and size checked as for kind "archive"): never a partial tree.  Only a
 * stop on request and a full volume end the stage instead.
 *
 * Content is copied, never hard-linked: the running root's files stay
 * exactly as they were, for rollback.
 */
#define _GNU_SOURCE
#include "chunked.h"
#include "error.h"
#include "fsutil.h"
#include "log.h"
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zstd.h>

/* Frames closer than this are fetched in one request, the gap with them:
 * a round trip costs more than a few KiB on most links, and bytes are
 * what a fleet's shared uplink pays for.  On a Debian point release
 * (tests/bench/chunked.py) 16 KiB turns 938 files into 164 requests for
 * 8% more than their frames; 64 KiB gives 94 requests for 26% more. */
#define CHUNKED_GAP (16u << 10)
/* A request carries at most this much (unless one frame is larger). */
#define CHUNKED_REQUEST_MAX (16u << 20)
/* Range requests open at once: enough that a round trip hides behind
 * the answers already coming, few enough for any server's per-client
 * limit (browsers hold 6 connections a host). */
#define CHUNKED_IN_FLIGHT 4
#define IO_BLOCK (256u << 10)
/* The TOC of the last image staged from a chunked one, under workdir. */
#define INDEX_NAME "chunked.toc"

struct chunked {
	const struct source *src;
	const struct stage_request *req;
	const struct reimage_transport_ops *ops;
	uint64_t size;                /* of the image file */
	struct chunked_footer foot;
	struct chunked_toc toc;
	struct chunked_split ts;
	void *toc_z;                  /* the TOC's compressed bytes (its digest checked) */
	size_t toc_z_len;
	int root_fd;                  /* the running root, for candidates; -1 if none */
	int fetch_fd;                 /* the fetched frames (an unnamed file) */
	uint64_t fetch_len;
	uint64_t bytes_in, requests, reused, reused_bytes, fetched;
	uint64_t chunks_reused, chunks_reused_bytes;  /* of files not reused whole */
	uint64_t fetch_total;         /* bytes of the frames of chunks not on the root */
	uint64_t looked;              /* files looked for on the root */
	int delta_fd;                 /* the contents decoded from delta frames (unnamed) */
	uint64_t delta_len, deltas, delta_bytes;
	int whole;                    /* too little to reuse: read the image whole */
	int toc_ok;                   /* toc_z hashes to the job's toc_sha256 */
	/* The range requests (step 3), and the thread that makes them. */
	struct request *req_list;
	size_t n_req;
	pthread_t fetcher;
	int fetcher_running;
	pthread_mutex_t lock;         /* guards the four below */
	pthread_cond_t moved;
	size_t req_done;              /* requests whose bytes are all in fetch_fd */
	int fetch_r;                  /* the fetcher's failure, 0 if none */
	struct reimage_error fetch_err;
	int fetch_stop;               /* the rebuild ended: make no more requests */
	/* Rebuilding the tar (pull): where it is. */
	size_t rec, rec_off, next_file;
	struct chunked_file *cur;     /* the file whose content is produced */
	uint64_t left;                /* of its content */
	size_t chunk;                 /* its chunk being produced (not from a whole file) */
	uint64_t chunk_left;          /* of that chunk's bytes */
	int cur_fd;                   /* its root file, or -1: from its frame */
	uint64_t cur_at;              /* next byte of its root file or its frame */
	uint64_t frame_left;          /* compressed bytes of its frame not read yet */
	int frame_done;               /* the decoder reached its frame's end */
	ZSTD_DCtx *dz;
	ZSTD_inBuffer zin;
	EVP_MD_CTX *md;
	unsigned char *io;            /* IO_BLOCK bytes */
};

/* ------------------------------------------------------------ ranges */

/* One range request: [start, end) of the image into the fetched file at at. */
struct request {
	uint64_t start, end, at;
};

/* Open [offset, offset + length) of the image; *requests counts it. */
static int range_open(struct chunked *c, uint64_t offset, uint64_t length,
		      struct reimage_stream **rs, uint64_t *requests, struct reimage_error *err)
{
	uint64_t size = REIMAGE_SIZE_UNKNOWN;
	int r;

	if ((r = c->ops->open_range(c->req->transport->ctx, c->src->location, offset, length, rs,
				    &size, err)) < 0)
		return r;
	(*requests)++;
	if (size != REIMAGE_SIZE_UNKNOWN && size != c->size) {
		c->ops->close(*rs);
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "image: %llu bytes, was %llu",
			(unsigned long long)size, (unsigned long long)c->size);
		return -EBADMSG;
	}
	return 0;
}

/* Read the length bytes of the opened range rs (from offset) into mem,
 * or into fd at fd_at through buf (IO_BLOCK bytes) when mem is NULL;
 * *bytes_in counts them. */
static int range_drain(struct chunked *c, struct reimage_stream *rs, uint64_t offset,
		       uint64_t length, void *mem, int fd, uint64_t fd_at, unsigned char *buf,
		       uint64_t *bytes_in, struct reimage_error *err)
{
	for (uint64_t done = 0; done < length;) {
		size_t want = length - done < IO_BLOCK ? (size_t)(length - done) : IO_BLOCK;
		unsigned char *to = mem ? (unsigned char *)mem + done : buf;
		ssize_t n = c->ops->read(rs, to, want, err);
		if (n < 0)
			return (int)n;
		if (n == 0) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"image: bytes %llu-%llu ended after %llu", (unsigned long long)offset,
				(unsigned long long)(offset + length - 1), (unsigned long long)done);
			return -EBADMSG;
		}
		if (!mem && pwrite(fd, to, (size_t)n, (off_t)(fd_at + done)) != n) {
			err_sys(err, errno ? -errno : -EIO, "write the fetched frames");
			return err->code;
		}
		done += (uint64_t)n;
		*bytes_in += (uint64_t)n;
	}
	return 0;
}

/* Read [offset, offset + length) of the image into mem (the metadata). */
static int read_range(struct chunked *c, uint64_t offset, uint64_t length, void *mem,
		      struct reimage_error *err)
{
	struct reimage_stream *rs;
	int r;

	if ((r = range_open(c, offset, length, &rs, &c->requests, err)) < 0)
		return r;
	r = range_drain(c, rs, offset, length, mem, -1, 0, NULL, &c->bytes_in, err);
	c->ops->close(rs);
	return r;
}

static int digest_is(const void *data, size_t len, const unsigned char want[32])
{
	unsigned char md[32];
	EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
	return memcmp(md, want, 32) == 0;
}

/* A root that cannot hold a match of the image: no TOC kept from a last
 * image (reuse then goes by path alone), and nothing at the path of any
 * of the first PROBE_FILES files of the TOC.  A first image, told from
 * the head of the TOC: decompressing and reading all of a Debian root's
 * 4 MB took 17 ms, 3% of its full stream's staging on a tmpfs. */
#define PROBE_FILES 256
#define PROBE_TEXT (256u << 10)
static int open_in_root(int root_fd, const char *rel);
static int nothing_here(struct chunked *c)
{
	struct reimage_error ignored = { 0 };
	struct chunked_toc head;
	char path[PATH_MAX], *text = malloc(PROBE_TEXT);
	ZSTD_DCtx *d = ZSTD_createDCtx();
	ZSTD_inBuffer in = { c->toc_z, c->toc_z_len, 0 };
	ZSTD_outBuffer out = { text, PROBE_TEXT, 0 };
	int empty = 0;

	if (c->root_fd < 0 || !text || !d ||
	    fs_join(path, sizeof(path), c->req->workdir, INDEX_NAME) < 0 || fs_exists(path))
		goto out;
	for (size_t z = 1; z && out.pos < out.size && in.pos < in.size;)
		if (ZSTD_isError(z = ZSTD_decompressStream(d, &out, &in)))
			goto out;
	if (chunked_toc_head(text, out.pos, PROBE_FILES, &head, &ignored) < 0)
		goto out;
	empty = 1;
	for (size_t i = 0; i < head.n && empty; i++) {
		const char *rel = stage_safe_path(head.files[i].name);
		int fd = rel && *rel ? open_in_root(c->root_fd, rel) : -1;
		empty = fd < 0;
		if (fd >= 0)
			close(fd);
	}
	chunked_toc_free(&head);
out:
	ZSTD_freeDCtx(d);
	free(text);
	return empty;
}

/* The footer and the TOC (checked against the job); not the TOC's files
 * when the root cannot hold any (c->whole). */
static int read_toc(struct chunked *c, struct reimage_error *err)
{
	unsigned char foot[CHUNKED_FOOTER_SIZE], want[32];
	char *text = NULL;
	size_t len;
	int r;

	if (c->req->size < 0) {
		/* One byte tells the size (and that ranges work at all). */
		struct reimage_stream *rs;
		if ((r = c->ops->open_range(c->req->transport->ctx, c->src->location, 0, 1, &rs,
					    &c->size, err)) < 0)
			return r;
		c->ops->close(rs);
		c->requests++;
		if (c->size == REIMAGE_SIZE_UNKNOWN) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "image: its size is unknown");
			return -EBADMSG;
		}
	} else {
		c->size = (uint64_t)c->req->size;
	}
	if (c->size < CHUNKED_FOOTER_SIZE) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "image: too short for a chunked image");
		return -EBADMSG;
	}
	if ((r = read_range(c, c->size - CHUNKED_FOOTER_SIZE, CHUNKED_FOOTER_SIZE, foot, err)) < 0 ||
	    (r = chunked_footer_parse(foot, c->size, &c->foot, err)) < 0)
		return r;
	if (!(c->toc_z = malloc(c->foot.toc_length))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	c->toc_z_len = c->foot.toc_length;
	if ((r = read_range(c, c->foot.toc_offset, c->foot.toc_length, c->toc_z, err)) < 0)
		goto out;
	if (chunked_hex_digest(c->req->toc_sha256, want) < 0 || !digest_is(c->toc_z, c->toc_z_len, want)) {
		char got[DIGEST_HEX_SHA256];
		digest_sha256(c->toc_z, c->toc_z_len, got);
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"image: the TOC's SHA-256 is %s, the job declares %s", got,
			c->req->toc_sha256);
		r = -EBADMSG;
		goto out;
	}
	c->toc_ok = 1;
	if ((c->whole = nothing_here(c)))
		goto out;
	if ((r = chunked_unzstd(c->toc_z, c->toc_z_len, CHUNKED_META_MAX, &text, &len, "TOC",
				err)) < 0 ||
	    (r = chunked_toc_parse(text, len, "TOC", &c->toc, err)) < 0)
		goto out;
	free(text);
	text = NULL;
	if (!c->toc.has_tarsplit_digest) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "TOC: no tarSplitDigest");
		r = -EBADMSG;
	}
out:
	free(text);
	return r;
}

/* The tar-split (checked against the TOC), once the image is to be
 * rebuilt: a first image, read whole, needs none of it. */
static int read_tarsplit(struct chunked *c, struct reimage_error *err)
{
	void *ts_z = malloc(c->foot.ts_length);
	char *text = NULL;
	size_t len;
	int r;

	if (!ts_z) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = read_range(c, c->foot.ts_offset, c->foot.ts_length, ts_z, err)) < 0)
		goto out;
	if (!digest_is(ts_z, c->foot.ts_length, c->toc.tarsplit_digest)) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"image: the tar-split does not match the TOC's tarSplitDigest");
		r = -EBADMSG;
		goto out;
	}
	if ((r = chunked_unzstd(ts_z, c->foot.ts_length, CHUNKED_META_MAX, &text, &len,
				"tar-split", err)) == 0)
		r = chunked_split_parse(text, len, &c->ts, err);
out:
	free(text);
	free(ts_z);
	return r;
}

/* ------------------------------------------------------------ reuse */

/* A root file, resolved inside the root: never a symlink's way out.
 * Non-blocking: a FIFO where the image has a file must not hang the
 * open (only regular files are read). */
static int open_in_root(int root_fd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
}

/* 1 if the root's rel is a regular file of f's size and content.  A
 * file of the TOC's size and modification time (to the nanosecond the
 * TOC gives) is taken unread (a
 * package's file the update left alone): its content is hashed as it is
 * copied all the same, and one that differs fails the stage over to the
 * full stream.  Any other of the right size is read and hashed now, so
 * that a changed file is fetched rather than failing the stage. */
static int matches(struct chunked *c, const char *rel, const struct chunked_file *f)
{
	unsigned char md[32];
	struct stat st;
	uint64_t at = 0;
	int fd, same = 0;

	if ((fd = open_in_root(c->root_fd, rel)) < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
		same = 0;
	} else if (f->mtime == (int64_t)st.st_mtim.tv_sec && f->mtime_nsec == st.st_mtim.tv_nsec) {
		same = 1;
	} else {
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
		for (ssize_t n; at < f->size && (n = pread(fd, c->io, IO_BLOCK, (off_t)at)) > 0;
		     at += (uint64_t)n)
			EVP_DigestUpdate(c->md, c->io, (size_t)n);
		EVP_DigestFinal_ex(c->md, md, NULL);
		same = at == f->size && memcmp(md, f->digest, 32) == 0;
	}
	close(fd);
	return same;
}

/* digest -> where the last chunked image staged held those bytes: each
 * file's content, and each chunk of a file cut in chunks (a hint: every
 * candidate is hashed before it is used). */
struct spot {
	const unsigned char *digest;
	const char *name;
	uint64_t at, size;
};

struct index {
	struct chunked_toc toc;
	struct spot *slot;
	size_t cap;
};

static size_t digest_slot(const unsigned char d[32], size_t cap)
{
	size_t h;
	memcpy(&h, d, sizeof(h));
	return h & (cap - 1);
}

static void index_add(struct index *ix, const unsigned char *d, const char *name, uint64_t at,
		      uint64_t size)
{
	size_t j = digest_slot(d, ix->cap);
	while (ix->slot[j].digest) {
		if (memcmp(ix->slot[j].digest, d, 32) == 0)
			return;
		j = (j + 1) & (ix->cap - 1);
	}
	ix->slot[j] = (struct spot){ d, name, at, size };
}

static void index_load(struct chunked *c, struct index *ix)
{
	struct reimage_error ignored = { 0 };
	char path[PATH_MAX], *z = NULL, *text = NULL;
	size_t zlen, len, n = 0;

	memset(ix, 0, sizeof(*ix));
	if (fs_join(path, sizeof(path), c->req->workdir, INDEX_NAME) < 0 || !fs_exists(path) ||
	    fs_read_small(path, CHUNKED_META_MAX, &z, &zlen, &ignored) < 0)
		return;
	if (chunked_unzstd(z, zlen, CHUNKED_META_MAX, &text, &len, "index", &ignored) == 0 &&
	    chunked_toc_parse(text, len, "index", &ix->toc, &ignored) == 0) {
		for (size_t i = 0; i < ix->toc.n; i++)
			n += 1 + ix->toc.files[i].n_chunks;
		for (ix->cap = 1; ix->cap < 2 * n + 2; ix->cap *= 2)
			;
		if ((ix->slot = calloc(ix->cap, sizeof(*ix->slot))))
			for (size_t i = 0; i < ix->toc.n; i++) {
				const struct chunked_file *f = &ix->toc.files[i];
				index_add(ix, f->digest, f->name, 0, f->size);
				for (size_t k = 0; f->n_chunks > 1 && k < f->n_chunks; k++)
					index_add(ix, f->chunks[k].digest, f->name, f->chunks[k].at,
						  f->chunks[k].size);
			}
	}
	free(z);
	free(text);
}

static const struct spot *index_find(const struct index *ix, const unsigned char d[32])
{
	if (!ix->slot)
		return NULL;
	for (size_t j = digest_slot(d, ix->cap); ix->slot[j].digest; j = (j + 1) & (ix->cap - 1))
		if (memcmp(ix->slot[j].digest, d, 32) == 0)
			return &ix->slot[j];
	return NULL;
}

/* The chunk ch of a file the root lacks is taken from the root's rel at
 * at. */
static int chunk_found(struct chunked *c, struct chunked_chunk *ch, const char *rel, uint64_t at)
{
	if (!(ch->local = strdup(rel)))
		return -ENOMEM;
	ch->local_at = at;
	c->chunks_reused++;
	c->chunks_reused_bytes += ch->size;
	return 0;
}

/* Cut the root's rel as the image cuts files, and take every chunk of f
 * whose bytes are one of its chunks. */
static void chunks_from_same_path(struct chunked *c, const char *rel, struct chunked_file *f)
{
	struct chunked_roll roll;
	unsigned char md[32];
	uint64_t at = 0, start = 0;
	struct stat st;
	int fd;

	if ((fd = open_in_root(c->root_fd, rel)) < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	chunked_roll_init(&roll);
	EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
	for (ssize_t n; (n = pread(fd, c->io, IO_BLOCK, (off_t)at)) > 0;) {
		for (size_t off = 0; off < (size_t)n;) {
			size_t cut = chunked_roll_split(&roll, c->io + off, (size_t)n - off);
			size_t len = cut ? cut : (size_t)n - off;
			EVP_DigestUpdate(c->md, c->io + off, len);
			off += len;
			/* A chunk ends at a cut, and the last at the file's end. */
			int last = !cut && at + (uint64_t)n == (uint64_t)st.st_size && off == (size_t)n;
			if (!cut && !last)
				continue;
			EVP_DigestFinal_ex(c->md, md, NULL);
			for (size_t k = 0; k < f->n_chunks; k++) {
				struct chunked_chunk *ch = &f->chunks[k];
				if (!ch->local && ch->size == at + off - start &&
				    memcmp(ch->digest, md, 32) == 0 && chunk_found(c, ch, rel, start) < 0)
					break;
			}
			start = at + off;
			EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
		}
		at += (uint64_t)n;
	}
	close(fd);
}

/* 1 if the root's rel holds, from at, the size bytes that hash to d. */
static int holds(struct chunked *c, const char *rel, uint64_t at, uint64_t size,
		 const unsigned char d[32])
{
	unsigned char md[32];
	uint64_t done = 0;
	int fd;

	if ((fd = open_in_root(c->root_fd, rel)) < 0)
		return 0;
	EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
	for (ssize_t n; done < size && (n = pread(fd, c->io, size - done < IO_BLOCK ?
						      (size_t)(size - done) : IO_BLOCK,
						      (off_t)(at + done))) > 0;
	     done += (uint64_t)n)
		EVP_DigestUpdate(c->md, c->io, (size_t)n);
	EVP_DigestFinal_ex(c->md, md, NULL);
	close(fd);
	return done == size && memcmp(md, d, 32) == 0;
}

/* The chunks of f (not on the root whole) that the root holds. */
static void find_chunks(struct chunked *c, const char *rel, struct chunked_file *f,
			const struct index *ix)
{
	const struct spot *sp;
	const char *other;

	if (f->n_chunks < 2)
		return;
	if (rel && *rel)
		chunks_from_same_path(c, rel, f);
	for (size_t k = 0; k < f->n_chunks; k++) {
		struct chunked_chunk *ch = &f->chunks[k];
		if (!ch->local && (sp = index_find(ix, ch->digest)) && sp->size == ch->size &&
		    (other = stage_safe_path(sp->name)) && *other &&
		    holds(c, other, sp->at, ch->size, ch->digest) && chunk_found(c, ch, other, sp->at) < 0)
			return;
	}
}

/* A file with a delta frame (chunked.h) whose base the root holds: the
 * same path, else where the last TOC put the base's digest, hashed
 * there.  1 if found (its delta is to be fetched, not its frames). */
static int find_delta_base(struct chunked *c, const char *rel, struct chunked_file *f,
			   const struct index *ix)
{
	const struct spot *sp;
	const char *other = NULL;

	if (!f->has_delta || f->delta_offset > c->foot.toc_offset ||
	    f->delta_size > c->foot.toc_offset - f->delta_offset)
		return 0;
	if (rel && *rel && holds(c, rel, 0, f->delta_base_size, f->delta_base))
		other = rel;
	if (!other && (sp = index_find(ix, f->delta_base)) && sp->at == 0 &&
	    sp->size == f->delta_base_size && (other = stage_safe_path(sp->name)) && *other &&
	    !holds(c, other, 0, f->delta_base_size, f->delta_base))
		other = NULL;
	return other && *other && (f->delta_from = strdup(other)) != NULL;
}

static int by_frames_desc(const void *a, const void *b)
{
	const struct chunked_file *x = *(struct chunked_file *const *)a;
	const struct chunked_file *y = *(struct chunked_file *const *)b;
	uint64_t fx = x->end - x->offset, fy = y->end - y->offset;
	return fx > fy ? -1 : fx < fy;
}

/* The tar-split read by a thread of its own while find_local() reads the
 * root on this one: both are needed before the rebuild, and neither
 * touches what the other does (the split thread: the transport, c->ts
 * and the request counters; find_local(): root files, c->io, c->md).
 * find_local() starts it once SPLIT_AFTER files are looked at and the
 * image is not to be read whole: a root holding too little of the image
 * is told from the biggest few, and then no tar-split is fetched. */
#define SPLIT_AFTER 64

struct split_read {
	struct chunked *c;
	pthread_t thread;
	int wanted;    /* split_read_start() was called */
	int started;   /* its thread runs (else it is read when finished) */
	int r;
	struct reimage_error err;
};

static void *split_read_run(void *arg)
{
	struct split_read *s = arg;
	s->r = read_tarsplit(s->c, &s->err);
	return NULL;
}

static void split_read_start(struct split_read *s, struct chunked *c)
{
	s->c = c;
	s->wanted = 1;
	s->started = pthread_create(&s->thread, NULL, split_read_run, s) == 0;
}

/* Its outcome: from the thread, or read now if no thread could start; 0
 * if it was never wanted. */
static int split_read_finish(struct split_read *s, struct reimage_error *err)
{
	if (!s->wanted)
		return 0;
	s->wanted = 0;
	if (!s->started)
		return read_tarsplit(s->c, err);
	pthread_join(s->thread, NULL);
	s->started = 0;
	if (s->r < 0)
		*err = s->err;
	return s->r;
}

/* The tar-split is not needed after all: its thread, if any, joined. */
static void split_read_abandon(struct split_read *s)
{
	if (s->started)
		pthread_join(s->thread, NULL);
	s->started = s->wanted = 0;
}

/* Decide, file by file and chunk by chunk, where its content comes from
 * (nothing found is no error: the frames are fetched).  The biggest
 * frames are looked for first, and the search ends as soon as more than
 * half of the image's frames are to be fetched (c->whole: the image is
 * then read whole): on a root that holds nothing of the image (a first
 * image) that is after a few dozen lookups, not one per file. */
static int find_local(struct chunked *c, struct split_read *split)
{
	struct chunked_file **order = calloc(c->toc.n + 1, sizeof(*order));
	struct index ix = { 0 };

	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < c->toc.n; i++)
		order[i] = &c->toc.files[i];
	qsort(order, c->toc.n, sizeof(*order), by_frames_desc);
	if (c->root_fd >= 0)
		index_load(c, &ix);
	for (size_t i = 0; i < c->toc.n && !c->whole; i++) {
		struct chunked_file *f = order[i];
		const char *rel = stage_safe_path(f->name), *other;
		const struct spot *sp;
		c->looked++;
		if (i == SPLIT_AFTER)
			split_read_start(split, c);
		if (rel && *rel && matches(c, rel, f))
			f->local = strdup(rel);
		else if ((sp = index_find(&ix, f->digest)) && sp->size == f->size && sp->at == 0 &&
			 (other = stage_safe_path(sp->name)) && *other && matches(c, other, f))
			f->local = strdup(other);
		else if (!find_delta_base(c, rel, f, &ix))
			find_chunks(c, rel, f, &ix);
		if (f->local) {
			c->reused++;
			c->reused_bytes += f->size;
		} else if (f->delta_from) {
			c->fetch_total += f->delta_size;
		} else {
			for (size_t k = 0; k < f->n_chunks; k++)
				if (!f->chunks[k].local)
					c->fetch_total += f->chunks[k].end - f->chunks[k].offset;
		}
		/* Little to reuse: the whole stream costs about the same bytes,
		 * and writes no frames aside -- it is the faster way. */
		c->whole = c->fetch_total > c->foot.toc_offset / 2;
	}
	if (!c->whole && !split->wanted)
		split_read_start(split, c);
	free(order);
	free(ix.slot);
	chunked_toc_free(&ix.toc);
	return 0;
}

static int by_offset(const void *a, const void *b)
{
	const struct chunked_chunk *x = *(struct chunked_chunk *const *)a;
	const struct chunked_chunk *y = *(struct chunked_chunk *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The range requests for every chunk the root lacks, neighbours in one
 * request. */
static int plan_requests(struct chunked *c, struct reimage_error *err)
{
	struct chunked_chunk **todo;
	size_t n = 0, all = 0;

	for (size_t i = 0; i < c->toc.n; i++)
		all += c->toc.files[i].local || c->toc.files[i].delta_ok ? 0 : c->toc.files[i].n_chunks;
	if (!(todo = calloc(all + 1, sizeof(*todo))) ||
	    !(c->req_list = calloc(all + 1, sizeof(*c->req_list)))) {
		free(todo);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->toc.n; i++) {
		struct chunked_file *f = &c->toc.files[i];
		int any = 0;
		for (size_t k = 0; !f->local && !f->delta_ok && k < f->n_chunks; k++) {
			struct chunked_chunk *ch = &f->chunks[k];
			if (ch->local)
				continue;
			if (ch->end > c->foot.toc_offset) {
				err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
					"TOC: the frame of '%s' lies outside the image", f->name);
				free(todo);
				return -EBADMSG;
			}
			todo[n++] = ch;
			any = 1;
		}
		c->fetched += any;
	}
	qsort(todo, n, sizeof(*todo), by_offset);
	for (size_t i = 0; i < n;) {
		uint64_t start = todo[i]->offset, end = todo[i]->end;
		size_t j = i + 1;
		for (; j < n && todo[j]->offset <= end + CHUNKED_GAP &&
		       (todo[j]->end > end ? todo[j]->end : end) - start <= CHUNKED_REQUEST_MAX; j++)
			end = todo[j]->end > end ? todo[j]->end : end;
		for (size_t k = i; k < j; k++) {
			todo[k]->fetched = c->fetch_len + (todo[k]->offset - start);
			todo[k]->request = c->n_req;
		}
		c->req_list[c->n_req++] = (struct request){ start, end, c->fetch_len };
		c->fetch_len += end - start;
		i = j;
	}
	free(todo);
	return 0;
}

static int fetch_stopped(struct chunked *c)
{
	return __atomic_load_n(&c->fetch_stop, __ATOMIC_RELAXED);
}

/* The fetcher: the requests in order, up to CHUNKED_IN_FLIGHT open at
 * once, each read whole in its turn (the transport is called from this
 * thread alone).  Each request done is announced to the rebuild. */
static void *fetch_all(void *arg)
{
	struct chunked *c = arg;
	struct reimage_stream *open_rs[CHUNKED_IN_FLIGHT];
	struct reimage_error err = { 0 };
	uint64_t requests = 0, bytes_in = 0;
	unsigned char *buf = malloc(IO_BLOCK);
	size_t opened = 0, done = 0;
	int r = buf ? 0 : -ENOMEM;

	if (r < 0)
		err_set(&err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
	while (r == 0 && done < c->n_req && !fetch_stopped(c)) {
		for (; r == 0 && opened < c->n_req && opened - done < CHUNKED_IN_FLIGHT; opened++) {
			const struct request *q = &c->req_list[opened];
			r = range_open(c, q->start, q->end - q->start,
				       &open_rs[opened % CHUNKED_IN_FLIGHT], &requests, &err);
		}
		if (r < 0)
			break;
		const struct request *q = &c->req_list[done];
		r = range_drain(c, open_rs[done % CHUNKED_IN_FLIGHT], q->start, q->end - q->start,
				NULL, c->fetch_fd, q->at, buf, &bytes_in, &err);
		c->ops->close(open_rs[done % CHUNKED_IN_FLIGHT]);
		done++;
		pthread_mutex_lock(&c->lock);
		c->req_done = r == 0 ? done : c->req_done;
		pthread_cond_broadcast(&c->moved);
		pthread_mutex_unlock(&c->lock);
	}
	for (; done < opened; done++)
		c->ops->close(open_rs[done % CHUNKED_IN_FLIGHT]);
	free(buf);
	pthread_mutex_lock(&c->lock);
	c->requests += requests;
	c->bytes_in += bytes_in;
	if (r < 0) {
		c->fetch_r = r;
		c->fetch_err = err;
	}
	pthread_cond_broadcast(&c->moved);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Start the fetcher on the planned requests. */
static int fetch_start(struct chunked *c, struct reimage_error *err)
{
	int e;

	if (!c->n_req)
		return 0;
	if ((c->fetch_fd = open(c->req->workdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0) {
		err_sys(err, -errno, "create a file in %s", c->req->workdir);
		return err->code;
	}
	if ((e = pthread_create(&c->fetcher, NULL, fetch_all, c)) != 0) {
		err_sys(err, -e, "start the range requests");
		return -e;
	}
	c->fetcher_running = 1;
	return 0;
}

/* Stop the fetcher (after the request under way) and wait for it. */
static void fetch_finish(struct chunked *c)
{
	if (!c->fetcher_running)
		return;
	__atomic_store_n(&c->fetch_stop, 1, __ATOMIC_RELAXED);
	pthread_join(c->fetcher, NULL);
	c->fetcher_running = 0;
}

/* Wait until request k is in fetch_fd; its failure, if it failed. */
static int fetch_wait(struct chunked *c, size_t k, struct reimage_error *err)
{
	int r;

	pthread_mutex_lock(&c->lock);
	while (c->req_done <= k && !c->fetch_r)
		pthread_cond_wait(&c->moved, &c->lock);
	r = c->req_done > k ? 0 : c->fetch_r;
	if (r < 0)
		*err = c->fetch_err;
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int by_delta_offset(const void *a, const void *b)
{
	const struct chunked_file *x = *(struct chunked_file *const *)a;
	const struct chunked_file *y = *(struct chunked_file *const *)b;
	return x->delta_offset < y->delta_offset ? -1 : x->delta_offset > y->delta_offset;
}

/* f's content from its delta frame (frame): the base read again from the
 * root and hashed (the bytes used are the bytes checked), the frame
 * decoded against it, the content hashed, kept in delta_fd.  Anything
 * wrong leaves f to its frames. */
static void delta_one(struct chunked *c, struct chunked_file *f, const unsigned char *frame)
{
	unsigned char *base = malloc(f->delta_base_size), *out = malloc(f->size);
	uint64_t done = 0;
	int fd = open_in_root(c->root_fd, f->delta_from);

	for (ssize_t n; fd >= 0 && base && done < f->delta_base_size &&
	     (n = pread(fd, base + done, f->delta_base_size - done, (off_t)done)) > 0;)
		done += (uint64_t)n;
	if (fd >= 0)
		close(fd);
	if (base && out && done == f->delta_base_size &&
	    digest_is(base, f->delta_base_size, f->delta_base) &&
	    chunked_delta_decode(frame, f->delta_size, base, f->delta_base_size, out, f->size) == 0 &&
	    digest_is(out, f->size, f->digest) &&
	    pwrite(c->delta_fd, out, f->size, (off_t)c->delta_len) == (ssize_t)f->size) {
		f->delta_ok = 1;
		f->delta_at = c->delta_len;
		c->delta_len += f->size;
		c->deltas++;
		c->delta_bytes += f->delta_size;
	} else {
		log_notice("stage: the delta frame of '%s' against the root's '%s' does not give its "
			   "content; its frames are fetched", f->name, f->delta_from);
	}
	free(base);
	free(out);
}

/* The delta frames of the files whose base the root holds, fetched
 * before the other frames (they lie side by side after the tar: one
 * request, or a few), each decoded now so that one that fails leaves
 * its file to its frames, planned after it. */
static int deltas_apply(struct chunked *c, struct reimage_error *err)
{
	struct chunked_file **todo = calloc(c->toc.n + 1, sizeof(*todo));
	size_t n = 0;
	int r = 0;

	if (!todo) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->toc.n; i++)
		if (c->toc.files[i].delta_from)
			todo[n++] = &c->toc.files[i];
	if (n && (c->delta_fd = open(c->req->workdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0) {
		err_sys(err, -errno, "create a file in %s", c->req->workdir);
		free(todo);
		return err->code;
	}
	qsort(todo, n, sizeof(*todo), by_delta_offset);
	for (size_t i = 0; i < n && r == 0;) {
		uint64_t start = todo[i]->delta_offset, end = start + todo[i]->delta_size;
		unsigned char *buf;
		size_t j = i + 1;
		for (; j < n && todo[j]->delta_offset >= start && todo[j]->delta_offset <= end + CHUNKED_GAP &&
		       todo[j]->delta_offset + todo[j]->delta_size - start <= CHUNKED_REQUEST_MAX; j++)
			end = todo[j]->delta_offset + todo[j]->delta_size > end
				      ? todo[j]->delta_offset + todo[j]->delta_size : end;
		if (!(buf = malloc(end - start))) {
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			r = -ENOMEM;
			break;
		}
		if ((r = read_range(c, start, end - start, buf, err)) == 0)
			for (size_t k = i; k < j; k++)
				delta_one(c, todo[k], buf + (todo[k]->delta_offset - start));
		free(buf);
		i = j;
	}
	free(todo);
	return r;
}

/* ------------------------------------------------------- the rebuilt tar */

static int content_failed(struct chunked *c, struct reimage_error *err, const char *why)
{
	const struct chunked_file *f = c->cur;
	int from_root = f->local || (c->chunk < f->n_chunks && f->chunks[c->chunk].local);
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "'%s' (%s): %s", f->name,
		f->delta_ok ? "from its delta frame" : from_root ? "from the root" : "fetched", why);
	return -EBADMSG;
}

/* Start the current file's chunk c->chunk: from the root, or from its
 * frame once its request is in. */
static int chunk_begin(struct chunked *c, struct reimage_error *err)
{
	const struct chunked_chunk *ch = &c->cur->chunks[c->chunk];
	int r;

	c->chunk_left = ch->size;
	if (c->cur_fd >= 0)
		close(c->cur_fd);
	c->cur_fd = -1;
	if (ch->local) {
		c->cur_at = ch->local_at;
		if ((c->cur_fd = open_in_root(c->root_fd, ch->local)) < 0)
			return content_failed(c, err, "cannot be opened again");
		return 0;
	}
	if ((r = fetch_wait(c, ch->request, err)) < 0)
		return r;
	c->cur_at = ch->fetched;
	c->frame_left = ch->end - ch->offset;
	c->zin.size = c->zin.pos = 0;
	c->frame_done = 0;
	ZSTD_DCtx_reset(c->dz, ZSTD_reset_session_only);
	return 0;
}

/* Feed the decoder the next bytes of the current frame (none left: 0). */
static int frame_refill(struct chunked *c, struct reimage_error *err)
{
	size_t want = c->frame_left < IO_BLOCK ? (size_t)c->frame_left : IO_BLOCK;
	ssize_t n;

	if (c->zin.pos < c->zin.size || !c->frame_left)
		return 0;
	if ((n = pread(c->fetch_fd, c->io, want, (off_t)c->cur_at)) <= 0)
		return content_failed(c, err, "the fetched frame cannot be read back");
	c->zin.src = c->io;
	c->zin.size = (size_t)n;
	c->zin.pos = 0;
	c->cur_at += (uint64_t)n;
	c->frame_left -= (uint64_t)n;
	return 0;
}

/* Decode the current frame into out, fed from the fetched file. */
static int frame_step(struct chunked *c, ZSTD_outBuffer *out, struct reimage_error *err)
{
	int r = frame_refill(c, err);
	if (r < 0)
		return r;
	size_t z = ZSTD_decompressStream(c->dz, out, &c->zin);
	if (ZSTD_isError(z))
		return content_failed(c, err, ZSTD_getErrorName(z));
	c->frame_done = z == 0;
	return 0;
}

/* The current chunk's bytes are all out: a fetched one's frame must end
 * there, its checksum read, nothing after it. */
static int chunk_end(struct chunked *c, struct reimage_error *err)
{
	const struct chunked_chunk *ch = &c->cur->chunks[c->chunk];
	unsigned char extra;

	/* The decoder may stop at the last byte out, before the frame's
	 * checksum: it must read that and produce nothing more. */
	while (!ch->local && !c->frame_done) {
		ZSTD_outBuffer out = { &extra, 1, 0 };
		int r = frame_step(c, &out, err);
		if (r < 0)
			return r;
		if (out.pos || (!c->frame_done && c->zin.pos == c->zin.size && !c->frame_left))
			return content_failed(c, err, "its frame does not end with its chunk");
	}
	if (!ch->local && (c->frame_left || c->zin.pos < c->zin.size))
		return content_failed(c, err, "its frame holds more than its content");
	c->chunk++;
	return 0;
}

/* Start the content of the next file of the TOC, which the tar-split's
 * record rec announces. */
static int content_begin(struct chunked *c, const struct chunked_record *rec,
			 struct reimage_error *err)
{
	struct chunked_file *f = c->next_file < c->toc.n ? &c->toc.files[c->next_file++] : NULL;

	if (!f || strcmp(f->name, rec->name) != 0 || f->size != rec->size) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"tar-split: '%s' (%llu bytes) is not the TOC's next file", rec->name,
			(unsigned long long)rec->size);
		return -EBADMSG;
	}
	c->cur = f;
	c->left = f->size;
	c->chunk = 0;
	EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
	if (f->local || f->delta_ok) {
		c->cur_at = f->local ? 0 : f->delta_at;
		c->chunk_left = f->size;
		if ((c->cur_fd = f->local ? open_in_root(c->root_fd, f->local) : dup(c->delta_fd)) < 0)
			return content_failed(c, err, "cannot be opened again");
		return 0;
	}
	return chunk_begin(c, err);
}

/* The current file's content is whole: its digest decides. */
static int content_end(struct chunked *c, struct reimage_error *err)
{
	unsigned char md[32];
	int r = 0;

	EVP_DigestFinal_ex(c->md, md, NULL);
	if (memcmp(md, c->cur->digest, 32) != 0)
		r = content_failed(c, err, "its SHA-256 is not the TOC's");
	if (c->cur_fd >= 0)
		close(c->cur_fd);
	c->cur_fd = -1;
	c->cur = NULL;
	return r;
}

/* Up to len bytes of the current chunk from its decompressed frame. */
static ssize_t from_frame(struct chunked *c, void *buf, size_t len, struct reimage_error *err)
{
	ZSTD_outBuffer out = { buf, len, 0 };

	while (out.pos == 0) {
		int r = frame_step(c, &out, err);
		if (r < 0)
			return r;
		if (out.pos == 0 && (c->frame_done || (c->zin.pos == c->zin.size && !c->frame_left)))
			return content_failed(c, err, "its frame ends before its content");
	}
	return (ssize_t)out.pos;
}

/* The next piece of the tar, rebuilt record by record: a record's
 * bytes or a file's content, up to len. */
static ssize_t pull_some(void *arg, void *buf, size_t len, struct reimage_error *err)
{
	struct chunked *c = arg;

	for (;;) {
		if (c->cur) {
			int from_root = c->cur->local || c->cur->delta_ok ||
					c->cur->chunks[c->chunk].local;
			ssize_t n;
			int r;
			if (!c->left) {
				if ((!c->cur->local && !c->cur->delta_ok && (r = chunk_end(c, err)) < 0) ||
				    (r = content_end(c, err)) < 0)
					return r;
				c->rec++;
				continue;
			}
			if (!c->chunk_left) {
				if ((r = chunk_end(c, err)) < 0 || (r = chunk_begin(c, err)) < 0)
					return r;
				continue;
			}
			if (len > c->chunk_left)
				len = (size_t)c->chunk_left;
			n = from_root ? pread(c->cur_fd, buf, len, (off_t)c->cur_at)
				      : from_frame(c, buf, len, err);
			if (n < 0 && from_root)
				return content_failed(c, err, strerror(errno));
			if (n < 0)
				return n;
			if (n == 0)
				return content_failed(c, err, "it is shorter than the TOC says");
			if (from_root)
				c->cur_at += (uint64_t)n;
			EVP_DigestUpdate(c->md, buf, (size_t)n);
			c->left -= (uint64_t)n;
			c->chunk_left -= (uint64_t)n;
			return n;
		}
		if (c->rec == c->ts.n)
			return 0;
		const struct chunked_record *rec = &c->ts.rec[c->rec];
		if (rec->is_file && rec->size) {
			int r = content_begin(c, rec, err);
			if (r < 0)
				return r;
			continue;
		}
		if (rec->is_file || c->rec_off == rec->len) {
			c->rec++;
			c->rec_off = 0;
			continue;
		}
		size_t n = rec->len - c->rec_off < len ? rec->len - c->rec_off : len;
		memcpy(buf, rec->bytes + c->rec_off, n);
		c->rec_off += n;
		return (ssize_t)n;
	}
}

/* The stream's pull: whole blocks, however small the records and files
 * -- each block crosses to the writer's thread (decompress.c), and a
 * crossing per header or per small file would cost more than the bytes. */
static ssize_t pull(void *arg, void *buf, size_t len, struct reimage_error *err)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pull_some(arg, (char *)buf + done, len - done, err);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* Stage from the root and the fetched frames; any failure is the
 * caller's to fall back from. */
static int stage_chunked(struct chunked *c, struct stage_sink *k, struct reimage_error *err)
{
	struct stream_request sr = {
		.what = "image", .declared_by = "the TOC", .size = -1, .pull = pull, .pull_arg = c,
		.progress = c->req->progress,
	};
	struct split_read split = { 0 };
	struct stream *s;
	int r;

	if (!(c->md = EVP_MD_CTX_new()) || !(c->dz = ZSTD_createDCtx()) || !(c->io = malloc(IO_BLOCK))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	/* Without a root, nothing matches (every open fails). */
	if (c->req->root)
		c->root_fd = open(c->req->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if ((r = read_toc(c, err)) < 0)
		return r;
	if (c->whole) {
		err_set(err, -EAGAIN, REIMAGE_EC_NONE, "none of the first %d files of the TOC is "
			"on the root, which keeps no TOC of a last image", PROBE_FILES);
		return -EAGAIN;
	}
	if ((r = find_local(c, &split)) < 0) {
		split_read_abandon(&split);
		err_set(err, r, REIMAGE_EC_IO, "out of memory");
		return r;
	}
	if (c->whole) {
		split_read_abandon(&split);
		err_set(err, -EAGAIN, REIMAGE_EC_NONE, "%llu of the %llu biggest of %zu files "
			"(%llu bytes) are on the root, more than half of the image is to be fetched",
			(unsigned long long)c->reused, (unsigned long long)c->looked, c->toc.n,
			(unsigned long long)c->reused_bytes);
		return -EAGAIN;
	}
	if ((r = split_read_finish(&split, err)) < 0 || (r = deltas_apply(c, err)) < 0 ||
	    (r = plan_requests(c, err)) < 0 ||
	    (r = fetch_start(c, err)) < 0 ||
	    (r = stream_open(&sr, &s, err)) < 0)
		return r;
	if (c->req->progress)
		progress_begin(c->req->progress, "staging", c->ts.tar_size);
	r = source_archive_read(s, k, 0, "image", err);
	if (r == 0 && c->cur)
		r = content_failed(c, err, "the tar ended inside it");
	if (r == 0 && (c->rec != c->ts.n || c->next_file != c->toc.n)) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"image: the tar ended before the tar-split and the TOC");
		r = -EBADMSG;
	}
	if (r == 0 && c->req->progress)
		progress_end(c->req->progress);
	stream_close(s);
	fetch_finish(c);
	if (r < 0)
		return r;
	log_notice("stage: chunked image: %llu of %zu files (%llu bytes) taken from the root, "
		   "%llu fetched in %llu requests; %llu bytes read of the %llu-byte image; "
		   "%llu chunks (%llu bytes) of the files fetched taken from the root; "
		   "%llu files from delta frames (%llu bytes)",
		   (unsigned long long)c->reused, c->toc.n, (unsigned long long)c->reused_bytes,
		   (unsigned long long)c->fetched, (unsigned long long)c->requests,
		   (unsigned long long)c->bytes_in, (unsigned long long)c->size,
		   (unsigned long long)c->chunks_reused, (unsigned long long)c->chunks_reused_bytes,
		   (unsigned long long)c->deltas, (unsigned long long)c->delta_bytes);
	return 0;
}

static void chunked_free(struct chunked *c)
{
	fetch_finish(c);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->moved);
	free(c->req_list);
	if (c->cur_fd >= 0)
		close(c->cur_fd);
	if (c->root_fd >= 0)
		close(c->root_fd);
	if (c->fetch_fd >= 0)
		close(c->fetch_fd);
	if (c->delta_fd >= 0)
		close(c->delta_fd);
	chunked_toc_free(&c->toc);
	chunked_split_free(&c->ts);
	free(c->toc_z);
	free(c->io);
	ZSTD_freeDCtx(c->dz);
	EVP_MD_CTX_free(c->md);
}

static void keep_index(const struct chunked *c)
{
	struct reimage_error ignored = { 0 };
	char path[PATH_MAX];

	if (fs_join(path, sizeof(path), c->req->workdir, INDEX_NAME) == 0 &&
	    fs_write_atomic(path, c->toc_z, c->toc_z_len, NULL, &ignored) < 0)
		log_warn("stage: chunked image: cannot keep its TOC as %s: %s", path, ignored.msg);
}

/* Empty staging again for the full read: nothing of the failed attempt
 * may stay in the tree. */
static int wipe_staging(struct stage_sink *k, struct reimage_error *err)
{
	const char *staging = k->staging;
	uint64_t floor = k->free_floor;
	int r;

	stage_sink_fini(k);
	if ((r = fs_remove_tree(staging, err)) < 0)
		return r;
	if (mkdir(staging, 0700) < 0) {
		err_sys(err, -errno, "create %s", staging);
		return err->code;
	}
	stage_sink_init(k, staging, 0);
	k->free_floor = floor;
	return 0;
}

static int chunked_stage_kind(const struct source *src, const struct stage_request *req,
			      const char *path, struct stage_sink *k, struct stage_result *res,
			      struct reimage_error *err)
{
	const struct reimage_transport_ops *ops = req->transport ? req->transport->desc->transport
								   : NULL;
	struct chunked c = { .src = src, .req = req, .ops = ops, .root_fd = -1, .fetch_fd = -1,
			     .cur_fd = -1, .delta_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
			     .moved = PTHREAD_COND_INITIALIZER };
	struct reimage_error why = { 0 };
	uint64_t partial;
	int r;

	/* A dry run (plan) and a job without the TOC's digest read it whole. */
	if (k->dry || !req->toc_sha256 || !ops || !OPS_HAS(ops, struct reimage_transport_ops, open_range)) {
		if (!k->dry)
			log_notice("stage: chunked image read whole: %s",
				   !req->toc_sha256 ? "the job gives no image.toc_sha256"
						    : "its transport cannot read ranges");
		return source_archive_ops.stage(src, req, path, k, res, err);
	}
	r = stage_chunked(&c, k, &why);
	fetch_finish(&c);
	res->bytes_in = c.bytes_in;
	/* A stop on request, a full volume: reading it whole would not help. */
	if (r == -ECANCELED || r == -ENOSPC) {
		*err = why;
	} else if (r < 0) {
		log_msg(c.whole ? REIMAGE_LOG_NOTICE : REIMAGE_LOG_WARNING,
			"stage: chunked image: %s; reading the whole image instead", why.msg);
		partial = c.bytes_in;
		if ((r = wipe_staging(k, err)) == 0) {
			r = source_archive_ops.stage(src, req, path, k, res, err);
			res->bytes_in += partial;
		}
	}
	/* The next image's hint: what this one holds where, however it was
	 * read (a failure to keep it only costs the next stage some reuse). */
	if (r == 0 && c.toc_ok)
		keep_index(&c);
	chunked_free(&c);
	return r;
}

const struct source_ops source_chunked_ops = {
	.name = "chunked",
	.doc = "a zstd:chunked tar (reimagectl image chunk): files the root has are reused, "
	       "the others fetched by range",
	.stage = chunked_stage_kind,
};
