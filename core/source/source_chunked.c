/*
 * source_chunked.c -- kind "chunked": a zstd:chunked image (chunked.h),
 * staged from the files the root already has plus the frames of the
 * others, fetched by range.
 *
 *   1. The footer, then the TOC: its compressed bytes must hash to the
 *      job's image.toc_sha256 (signed with the job) before a byte of it
 *      is parsed; then the tar-split, whose digest the TOC holds.
 *   2. Each file with content is looked for on the root: the same path,
 *      else a path that held the same digest in the TOC of the last image
 *      staged from a chunked one (<root>/.reimage/chunked.toc, a hint
 *      only).  A candidate of the TOC's size and modification time is
 *      taken (hashed in step 4); one of the right size only is read and
 *      hashed first, and taken only if its SHA-256 is the TOC's.  Paths resolve inside the
 *      root (openat2 RESOLVE_IN_ROOT): a symlink of the running system
 *      never leads outside it.
 *   3. The frames of the other files are fetched with range reads
 *      (open_range), neighbours merged into one request when the gap
 *      between them is small (CHUNKED_GAP), each request at most
 *      CHUNKED_REQUEST_MAX bytes, into an unnamed file on the root's
 *      volume.
 *   4. The tar is rebuilt from the tar-split -- its headers and padding
 *      byte for byte, each file's content from the root or from its
 *      decompressed frame, hashed again as it is produced and checked
 *      against the TOC -- and read by the same reader and the same disk
 *      writer as a full extraction (source_archive_read): the staged tree
 *      is what the full image gives, entry by entry, by construction.
 *
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
	uint64_t fetch_total;         /* bytes of the frames of files not on the root */
	int whole;                    /* too little to reuse: read the image whole */
	int toc_ok;                   /* toc_z hashes to the job's toc_sha256 */
	/* Rebuilding the tar (pull): where it is. */
	size_t rec, rec_off, next_file;
	struct chunked_file *cur;     /* the file whose content is produced */
	uint64_t left;                /* of its content */
	int cur_fd;                   /* its root file, or -1: from its frame */
	uint64_t cur_at;              /* next byte of its root file or its frame */
	uint64_t frame_left;          /* compressed bytes of its frame not read yet */
	ZSTD_DCtx *dz;
	ZSTD_inBuffer zin;
	EVP_MD_CTX *md;
	unsigned char *io;            /* IO_BLOCK bytes */
};

/* ------------------------------------------------------------ ranges */

/* Read [offset, offset + length) of the image into mem, or into fd at
 * fd_at when mem is NULL. */
static int read_range(struct chunked *c, uint64_t offset, uint64_t length, void *mem, int fd,
		      uint64_t fd_at, struct reimage_error *err)
{
	struct plugin *t = c->req->transport;
	struct reimage_stream *rs;
	uint64_t size = REIMAGE_SIZE_UNKNOWN, done = 0;
	int r;

	if ((r = c->ops->open_range(t->ctx, c->src->location, offset, length, &rs, &size, err)) < 0)
		return r;
	c->requests++;
	while (done < length) {
		size_t want = length - done < IO_BLOCK ? (size_t)(length - done) : IO_BLOCK;
		unsigned char *to = mem ? (unsigned char *)mem + done : c->io;
		ssize_t n = c->ops->read(rs, to, want, err);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (n == 0) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"image: bytes %llu-%llu ended after %llu", (unsigned long long)offset,
				(unsigned long long)(offset + length - 1), (unsigned long long)done);
			r = -EBADMSG;
			break;
		}
		if (!mem && pwrite(fd, to, (size_t)n, (off_t)(fd_at + done)) != n) {
			err_sys(err, errno ? -errno : -EIO, "write the fetched frames");
			r = err->code;
			break;
		}
		done += (uint64_t)n;
		c->bytes_in += (uint64_t)n;
	}
	c->ops->close(rs);
	if (r == 0 && size != REIMAGE_SIZE_UNKNOWN && size != c->size) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "image: %llu bytes, was %llu",
			(unsigned long long)size, (unsigned long long)c->size);
		r = -EBADMSG;
	}
	return r;
}

static int digest_is(const void *data, size_t len, const unsigned char want[32])
{
	unsigned char md[32];
	EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
	return memcmp(md, want, 32) == 0;
}

/* The footer, the TOC (checked against the job) and the tar-split
 * (checked against the TOC). */
static int read_metadata(struct chunked *c, struct reimage_error *err)
{
	unsigned char foot[CHUNKED_FOOTER_SIZE], want[32];
	void *ts_z = NULL;
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
	if ((r = read_range(c, c->size - CHUNKED_FOOTER_SIZE, CHUNKED_FOOTER_SIZE, foot, -1, 0,
			    err)) < 0 ||
	    (r = chunked_footer_parse(foot, c->size, &c->foot, err)) < 0)
		return r;
	if (!(c->toc_z = malloc(c->foot.toc_length)) || !(ts_z = malloc(c->foot.ts_length))) {
		free(ts_z);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	c->toc_z_len = c->foot.toc_length;
	if ((r = read_range(c, c->foot.toc_offset, c->foot.toc_length, c->toc_z, -1, 0, err)) < 0)
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
	if ((r = chunked_unzstd(c->toc_z, c->toc_z_len, CHUNKED_META_MAX, &text, &len, "TOC",
				err)) < 0 ||
	    (r = chunked_toc_parse(text, len, "TOC", &c->toc, err)) < 0)
		goto out;
	free(text);
	text = NULL;
	if (!c->toc.has_tarsplit_digest) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "TOC: no tarSplitDigest");
		r = -EBADMSG;
		goto out;
	}
	if ((r = read_range(c, c->foot.ts_offset, c->foot.ts_length, ts_z, -1, 0, err)) < 0)
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

/* digest -> name of the last chunked image staged (a hint: every
 * candidate is hashed before it is used). */
struct index {
	struct chunked_toc toc;
	struct chunked_file **slot;
	size_t cap;
};

static size_t digest_slot(const unsigned char d[32], size_t cap)
{
	size_t h;
	memcpy(&h, d, sizeof(h));
	return h & (cap - 1);
}

static void index_load(struct chunked *c, struct index *ix)
{
	struct reimage_error ignored = { 0 };
	char path[PATH_MAX], *z = NULL, *text = NULL;
	size_t zlen, len;

	memset(ix, 0, sizeof(*ix));
	if (fs_join(path, sizeof(path), c->req->workdir, INDEX_NAME) < 0 || !fs_exists(path) ||
	    fs_read_small(path, CHUNKED_META_MAX, &z, &zlen, &ignored) < 0)
		return;
	if (chunked_unzstd(z, zlen, CHUNKED_META_MAX, &text, &len, "index", &ignored) == 0 &&
	    chunked_toc_parse(text, len, "index", &ix->toc, &ignored) == 0) {
		for (ix->cap = 1; ix->cap < 2 * ix->toc.n + 2; ix->cap *= 2)
			;
		if ((ix->slot = calloc(ix->cap, sizeof(*ix->slot))))
			for (size_t i = 0; i < ix->toc.n; i++) {
				size_t j = digest_slot(ix->toc.files[i].digest, ix->cap);
				while (ix->slot[j])
					j = (j + 1) & (ix->cap - 1);
				ix->slot[j] = &ix->toc.files[i];
			}
	}
	free(z);
	free(text);
}

static const char *index_find(const struct index *ix, const unsigned char d[32])
{
	if (!ix->slot)
		return NULL;
	for (size_t j = digest_slot(d, ix->cap); ix->slot[j]; j = (j + 1) & (ix->cap - 1))
		if (memcmp(ix->slot[j]->digest, d, 32) == 0)
			return ix->slot[j]->name;
	return NULL;
}

/* Decide, file by file, where its content comes from (nothing found
 * is no error: the frame is fetched). */
static void find_local(struct chunked *c)
{
	struct index ix;

	if (!c->req->root || (c->root_fd = open(c->req->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return;
	index_load(c, &ix);
	for (size_t i = 0; i < c->toc.n; i++) {
		struct chunked_file *f = &c->toc.files[i];
		const char *rel = stage_safe_path(f->name), *other;
		if (rel && *rel && matches(c, rel, f))
			f->local = strdup(rel);
		else if ((other = index_find(&ix, f->digest)) && (other = stage_safe_path(other)) &&
			 *other && matches(c, other, f))
			f->local = strdup(other);
		if (f->local) {
			c->reused++;
			c->reused_bytes += f->size;
		} else {
			c->fetch_total += f->end - f->offset;
		}
	}
	free(ix.slot);
	chunked_toc_free(&ix.toc);
}

static int inside_image(const struct chunked *c, const struct chunked_file *f)
{
	return f->end > f->offset && f->end <= c->foot.toc_offset;
}

static int by_offset(const void *a, const void *b)
{
	const struct chunked_file *x = *(struct chunked_file *const *)a;
	const struct chunked_file *y = *(struct chunked_file *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Fetch the frames of every file not found on the root, neighbours in
 * one request. */
static int fetch_missing(struct chunked *c, struct reimage_error *err)
{
	struct chunked_file **todo = calloc(c->toc.n + 1, sizeof(*todo));
	size_t n = 0;
	int r = 0;

	if (!todo) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->toc.n; i++) {
		struct chunked_file *f = &c->toc.files[i];
		if (f->local)
			continue;
		if (!inside_image(c, f)) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"TOC: the frame of '%s' lies outside the image", f->name);
			free(todo);
			return -EBADMSG;
		}
		todo[n++] = f;
	}
	qsort(todo, n, sizeof(*todo), by_offset);
	if (c->req->progress && n)
		progress_begin(c->req->progress, "fetching", c->fetch_total);
	if (n && (c->fetch_fd = open(c->req->workdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0) {
		err_sys(err, -errno, "create a file in %s", c->req->workdir);
		free(todo);
		return err->code;
	}
	for (size_t i = 0; i < n && r == 0;) {
		uint64_t start = todo[i]->offset, end = todo[i]->end;
		size_t j = i + 1;
		for (; j < n && todo[j]->offset <= end + CHUNKED_GAP &&
		       (todo[j]->end > end ? todo[j]->end : end) - start <= CHUNKED_REQUEST_MAX; j++)
			end = todo[j]->end > end ? todo[j]->end : end;
		for (size_t k = i; k < j; k++)
			todo[k]->fetched = c->fetch_len + (todo[k]->offset - start);
		r = read_range(c, start, end - start, NULL, c->fetch_fd, c->fetch_len, err);
		c->fetch_len += end - start;
		c->fetched += j - i;
		if (c->req->progress && r == 0)
			r = progress_step(c->req->progress, c->fetch_len, err);
		i = j;
	}
	if (c->req->progress && n && r == 0)
		progress_end(c->req->progress);
	free(todo);
	return r;
}

/* ------------------------------------------------------- the rebuilt tar */

static int content_failed(struct chunked *c, struct reimage_error *err, const char *why)
{
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "'%s' (%s): %s", c->cur->name,
		c->cur->local ? "from the root" : "fetched", why);
	return -EBADMSG;
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
	c->cur_at = f->local ? 0 : f->fetched;
	c->frame_left = f->end - f->offset;
	c->zin.size = c->zin.pos = 0;
	EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
	if (f->local && (c->cur_fd = open_in_root(c->root_fd, f->local)) < 0)
		return content_failed(c, err, "cannot be opened again");
	if (!f->local)
		ZSTD_DCtx_reset(c->dz, ZSTD_reset_session_only);
	return 0;
}

/* The current file's content is whole: its digest decides. */
static int content_end(struct chunked *c, struct reimage_error *err)
{
	unsigned char md[32];
	int r = 0;

	EVP_DigestFinal_ex(c->md, md, NULL);
	if (memcmp(md, c->cur->digest, 32) != 0)
		r = content_failed(c, err, "its SHA-256 is not the TOC's");
	else if (!c->cur->local && (c->frame_left || c->zin.pos < c->zin.size))
		r = content_failed(c, err, "its frame holds more than its content");
	if (c->cur_fd >= 0)
		close(c->cur_fd);
	c->cur_fd = -1;
	c->cur = NULL;
	return r;
}

/* Up to len bytes of the current content from its decompressed frame. */
static ssize_t from_frame(struct chunked *c, void *buf, size_t len, struct reimage_error *err)
{
	ZSTD_outBuffer out = { buf, len, 0 };

	while (out.pos == 0) {
		if (c->zin.pos == c->zin.size && c->frame_left) {
			size_t want = c->frame_left < IO_BLOCK ? (size_t)c->frame_left : IO_BLOCK;
			ssize_t n = pread(c->fetch_fd, c->io, want, (off_t)c->cur_at);
			if (n <= 0)
				return content_failed(c, err, "the fetched frame cannot be read back");
			c->zin.src = c->io;
			c->zin.size = (size_t)n;
			c->zin.pos = 0;
			c->cur_at += (uint64_t)n;
			c->frame_left -= (uint64_t)n;
		}
		size_t z = ZSTD_decompressStream(c->dz, &out, &c->zin);
		if (ZSTD_isError(z))
			return content_failed(c, err, ZSTD_getErrorName(z));
		if (out.pos == 0 && c->zin.pos == c->zin.size && !c->frame_left)
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
			ssize_t n;
			if (!c->left) {
				int r = content_end(c, err);
				if (r < 0)
					return r;
				c->rec++;
				continue;
			}
			if (len > c->left)
				len = (size_t)c->left;
			n = c->cur->local ? pread(c->cur_fd, buf, len, (off_t)c->cur_at)
					  : from_frame(c, buf, len, err);
			if (n < 0 && c->cur->local)
				return content_failed(c, err, strerror(errno));
			if (n < 0)
				return n;
			if (n == 0)
				return content_failed(c, err, "it is shorter than the TOC says");
			if (c->cur->local)
				c->cur_at += (uint64_t)n;
			EVP_DigestUpdate(c->md, buf, (size_t)n);
			c->left -= (uint64_t)n;
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
	struct stream *s;
	int r;

	if (!(c->md = EVP_MD_CTX_new()) || !(c->dz = ZSTD_createDCtx()) || !(c->io = malloc(IO_BLOCK))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = read_metadata(c, err)) < 0)
		return r;
	find_local(c);
	/* Little to reuse (a first image): the whole stream costs about the
	 * same bytes, and writes no frames aside -- it is the faster way. */
	if (c->fetch_total > c->foot.toc_offset / 2) {
		c->whole = 1;
		err_set(err, -EAGAIN, REIMAGE_EC_NONE, "%llu of %zu files (%llu bytes) are on the "
			"root, more than half of the image is to be fetched",
			(unsigned long long)c->reused, c->toc.n, (unsigned long long)c->reused_bytes);
		return -EAGAIN;
	}
	if ((r = fetch_missing(c, err)) < 0)
		return r;
	if ((r = stream_open(&sr, &s, err)) < 0)
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
	if (r < 0)
		return r;
	log_notice("stage: chunked image: %llu of %zu files (%llu bytes) taken from the root, "
		   "%llu fetched in %llu requests; %llu bytes read of the %llu-byte image",
		   (unsigned long long)c->reused, c->toc.n, (unsigned long long)c->reused_bytes,
		   (unsigned long long)c->fetched, (unsigned long long)c->requests,
		   (unsigned long long)c->bytes_in, (unsigned long long)c->size);
	return 0;
}

static void chunked_free(struct chunked *c)
{
	if (c->cur_fd >= 0)
		close(c->cur_fd);
	if (c->root_fd >= 0)
		close(c->root_fd);
	if (c->fetch_fd >= 0)
		close(c->fetch_fd);
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
			     .cur_fd = -1 };
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
