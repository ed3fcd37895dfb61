/*
 * source_chunked.c -- kind "chunked": a zstd:chunked image (chunked.h),
 * staged from the files the root already has plus the frames of the
 * others, fetched by range.
 *
 *   1. The footer, then the TOC: its compressed bytes must hash to the
 *      job's image.toc_sha256 (signed with the job) before a byte of it
 *      is parsed.
 *   2. Whether to read the image whole: when more than half of its
 *      frames are to be fetched (a first image), the whole stream costs
 *      as many bytes and less time.  Told from the stat of the biggest
 *      files alone (estimate()), in a few milliseconds.
 *   3. Three threads then work at once, so that staging takes about the
 *      time of its slowest part, not of their sum:
 *      - the finder decides, file by file in the tar's order, where each
 *        file's content comes from: the same path, else a path that held
 *        the same digest in the TOC of the last image staged from a
 *        chunked one (<root>/.reimage/chunked.toc, a hint only), else its
 *        delta frame against the root's file (chunked.h), else chunk by
 *        chunk -- the root's file of the same path cut by the image's
 *        rolling checksum, or a chunk the last TOC placed in a root file,
 *        each hashed.  A root file of the right size is read and hashed:
 *        its content held in a ring (RING_BYTES) for the rebuild, or, if
 *        too big for it, handed over open (taken unread when its time is
 *        the TOC's, to be hashed by the rebuild).  Paths resolve inside
 *        the root (openat2 RESOLVE_IN_ROOT): a symlink of the running
 *        system never leads outside it.  The frames it does not find are
 *        planned as range requests as it goes, neighbours merged when the
 *        gap between them is small (CHUNKED_GAP), at most
 *        CHUNKED_REQUEST_MAX bytes each.
 *      - the fetcher makes those requests (open_range) as they are
 *        planned (the tar-split and the delta frames first), up to
 *        CHUNKED_IN_FLIGHT open at once (each waits for its answer's
 *        headers only, so their round trips overlap), into an unnamed
 *        file on the root's volume.
 *      - this thread reads the tar-split (its digest is in the TOC; the
 *        fetcher's first request: a transport is called from one thread
 *        at a time), then rebuilds the tar from it -- its headers and
 *        padding byte for byte, each file's content held, read from the
 *        root or decoded from its frames (each waited for until it is
 *        decided or in), hashed unless the finder hashed the very bytes,
 *        and checked against the TOC -- and reads it with the same reader
 *        and the same disk writer as a full extraction
 *        (source_archive_read): the staged tree is what the full image
 *        gives, entry by entry, by construction.
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
#include <linux/fs.h>
#include <sys/ioctl.h>
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
/* The finder runs ahead of the rebuild by at most a ring of this much
 * content held in memory and this many root files held open: the agent's
 * memory stays bounded while the user works, whatever the image.  Once
 * either is full, it waits until the rebuild let go of a quarter of the
 * ring or half of the files: a wake-up per file would cost more than the
 * files. */
#define RING_BYTES (32u << 20)
#define AHEAD_FDS 32
/* A root file up to this size is read whole by the finder, hashed once,
 * and handed to the rebuild in the ring; a bigger one is read (and
 * hashed) again by the rebuild.  A Debian root has 3 files over 4 MiB. */
#define HELD_MAX (8u << 20)
#define IO_BLOCK (256u << 10)
/* Where the file system has reflinks, a root file from this size is
 * taken as a clone of it on staging's volume (a snapshot): that is what
 * the finder or the rebuild hashes, and what the writer clones in turn
 * (stage.h), whatever becomes of the root's file meanwhile.  Its bytes
 * are still read, never written again: the staged file shares the old
 * image's blocks. */
#define CLONE_MIN (64u << 10)
/* Snapshots the rebuild is done with whose entries the writer has not
 * reached yet (it lags by the decoder's blocks, about 1 MiB): past this
 * many, the oldest is closed and its file written instead. */
#define CLONES_WAITING 64
/* The TOC of the last image staged from a chunked one, under workdir. */
#define INDEX_NAME "chunked.toc"

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

/* One range request: [start, end) of the image into the fetched file at at. */
struct request {
	uint64_t start, end, at;
};

/* What the finder decided for one file of the TOC, for the rebuild: its
 * content held in memory, or a root file to read, or else its chunks
 * (each from the root or from its fetched frame). */
struct found {
	unsigned char *held;          /* its content, hashed to the TOC's digest: */
	int held_own;                 /* malloc'd (a big delta's), else in the ring */
	int from_delta;               /* held was decoded from its delta frame */
	int fd;                       /* a root file of its size to read and hash, or -1 */
	int clone;                    /* fd is a snapshot, for the writer to clone */
	int delta_planned;            /* its delta frame is fetched: by this request, */
	size_t delta_request;
	uint64_t delta_fetched;       /* to here in the fetched file */
};

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
	struct index ix;              /* the last chunked image's TOC */
	struct found *found;          /* per file of the TOC */
	size_t ts_request;            /* the tar-split's request, */
	uint64_t ts_at;               /* and where it lies in the fetched file */
	int fetch_fd;                 /* the fetched frames (an unnamed file) */
	int whole;                    /* too little to reuse: read the image whole */
	int toc_ok;                   /* toc_z hashes to the job's toc_sha256 */
	/* The estimate that decides c->whole, from the biggest files. */
	uint64_t looked, seen_here, seen_here_bytes, seen_fetch;
	/* The finder's figures (read once it is joined). */
	uint64_t reused, reused_bytes, fetched, chunks_reused, chunks_reused_bytes;
	uint64_t deltas, delta_bytes;
	/* The range requests, planned by the finder in the tar's order (the
	 * last one grown while the next frames lie close after it), each
	 * published for the fetcher once complete. */
	struct request *req_list;     /* room for every request there can be */
	struct request open_req;      /* the one growing, if req_open */
	int req_open;
	uint64_t fetch_len;           /* bytes of the fetched file planned */
	pthread_t fetcher, finder;
	int fetcher_running, finder_running;
	pthread_mutex_t lock;         /* guards what follows */
	pthread_cond_t planned;       /* for the fetcher: a request published, the plan's end */
	pthread_cond_t arrived;       /* a request in, or the fetcher failed */
	pthread_cond_t decided_cv;    /* for the rebuild: want_file decided, or the finder ended */
	pthread_cond_t room;          /* for the finder: what it waits for let go (finder_waits) */
	uint64_t bytes_in, requests;  /* of every thread */
	size_t n_req;                 /* requests published */
	int plan_done;                /* the finder ended: no more requests */
	size_t req_done;              /* requests whose bytes are all in fetch_fd */
	int fetch_r;                  /* the fetcher's failure, 0 if none */
	struct reimage_error fetch_err;
	size_t decided;               /* files of the TOC the finder decided, */
	size_t consumed;              /* and the rebuild is done with */
	size_t want_file;             /* the rebuild waits for it to be decided; SIZE_MAX if not */
	enum { WAITS_NOT, WAITS_RING, WAITS_FDS, WAITS_DRAINED } finder_waits;
	uint64_t want_room;           /* bytes of the ring the finder waits for */
	unsigned char *ring;          /* RING_BYTES, for content held (made at first use) */
	uint64_t ring_head, ring_tail;  /* the next content goes at head; the oldest is at tail */
	size_t ring_items;            /* contents held in it */
	size_t ahead_fds;             /* root files open for files decided, not consumed */
	int find_r;                   /* the finder's failure, 0 if none */
	struct reimage_error find_err;
	int stop;                     /* the rebuild ended: find and fetch no more */
	int no_clones;                /* the finder's: staging's volume has no reflinks */
	/* Snapshots for the writer (clone_of), the lock held: the writer's
	 * next file of the TOC, and the snapshots whose content the rebuild
	 * is done with, oldest first. */
	size_t clone_next;
	size_t clone_q[CLONES_WAITING], clone_q_head, clone_q_n;
	/* Rebuilding the tar (pull): where it is. */
	size_t rec, rec_off, next_file;
	struct chunked_file *cur;     /* the file whose content is produced */
	struct found *cur_found;
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

/* 1 if the root's rel is a regular file, its stat in *st. */
static int root_stat(const struct chunked *c, const char *rel, struct stat *st)
{
	int fd, yes;

	if (!rel || !*rel || (fd = open_in_root(c->root_fd, rel)) < 0)
		return 0;
	yes = fstat(fd, st) == 0 && S_ISREG(st->st_mode);
	close(fd);
	return yes;
}

/* 1 if the root's rel is a regular file of size bytes (its stat alone). */
static int has_file_of(const struct chunked *c, const char *rel, uint64_t size)
{
	struct stat st;
	return root_stat(c, rel, &st) && (uint64_t)st.st_size == size;
}

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

static void index_load(struct chunked *c)
{
	struct reimage_error ignored = { 0 };
	struct index *ix = &c->ix;
	char path[PATH_MAX], *z = NULL, *text = NULL;
	size_t zlen, len, n = 0;

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

/* Where the last TOC held the whole content of digest d (size bytes),
 * as a path inside the root, or NULL. */
static const char *index_path(const struct chunked *c, const unsigned char d[32], uint64_t size)
{
	const struct spot *sp = index_find(&c->ix, d);
	const char *rel = sp && sp->at == 0 && sp->size == size ? stage_safe_path(sp->name) : NULL;
	return rel && *rel ? rel : NULL;
}

/* ------------------------------------------------------------ the plan */

/* Publish the request growing (the lock held): the fetcher may make it. */
static void plan_publish_locked(struct chunked *c)
{
	if (!c->req_open)
		return;
	c->req_list[c->n_req++] = c->open_req;
	c->req_open = 0;
	pthread_cond_signal(&c->planned);
}

static void plan_publish(struct chunked *c)
{
	pthread_mutex_lock(&c->lock);
	plan_publish_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* Plan the fetch of [start, end) of the image: into the request growing
 * when it lies close after its start (CHUNKED_GAP), else into a new one,
 * the other published.  Where its bytes will be: *request, and *at in
 * the fetched file.  Only the planning thread writes n_req. */
static void plan_range(struct chunked *c, uint64_t start, uint64_t end, size_t *request,
		       uint64_t *at)
{
	struct request *q = &c->open_req;

	if (c->req_open && start >= q->start && start <= q->end + CHUNKED_GAP &&
	    (end > q->end ? end : q->end) - q->start <= CHUNKED_REQUEST_MAX) {
		if (end > q->end) {
			c->fetch_len += end - q->end;
			q->end = end;
		}
	} else {
		plan_publish(c);
		*q = (struct request){ start, end, c->fetch_len };
		c->fetch_len += end - start;
		c->req_open = 1;
	}
	*request = c->n_req;
	*at = q->at + (start - q->start);
}

/* The frames of f's chunks the root lacks, planned; 0, or -EBADMSG for
 * a frame outside the image. */
static int plan_file(struct chunked *c, struct chunked_file *f, struct reimage_error *err)
{
	int any = 0;

	for (size_t k = 0; k < f->n_chunks; k++) {
		struct chunked_chunk *ch = &f->chunks[k];
		if (ch->local)
			continue;
		if (ch->end > c->foot.toc_offset || ch->offset > ch->end) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"TOC: the frame of '%s' lies outside the image", f->name);
			return -EBADMSG;
		}
		plan_range(c, ch->offset, ch->end, &ch->request, &ch->fetched);
		any = 1;
	}
	c->fetched += any;
	return 0;
}

static int by_delta_offset(const void *a, const void *b)
{
	const struct chunked_file *x = *(struct chunked_file *const *)a;
	const struct chunked_file *y = *(struct chunked_file *const *)b;
	return x->delta_offset < y->delta_offset ? -1 : x->delta_offset > y->delta_offset;
}

/* The delta frames worth fetching (chunked.h): of each file whose base
 * the root seems to hold -- a file of the base's size at the same path,
 * else where the last TOC put the base's digest -- unless the same path
 * seems to hold the file itself (its size and time).  They lie side by
 * side after the tar, so they make a few requests, the fetcher's first
 * after the tar-split's: the finder has them when it reaches their
 * files.  A base that turns out other (the finder hashes it) costs its
 * frame's bytes, no more. */
static int plan_deltas(struct chunked *c)
{
	struct chunked_file **todo = calloc(c->toc.n + 1, sizeof(*todo));
	size_t n = 0;

	if (!todo)
		return -ENOMEM;
	for (size_t i = 0; c->root_fd >= 0 && i < c->toc.n; i++) {
		struct chunked_file *f = &c->toc.files[i];
		const char *rel = stage_safe_path(f->name), *base = NULL;
		struct stat st;
		if (!f->has_delta || f->delta_offset > c->foot.toc_offset ||
		    f->delta_size > c->foot.toc_offset - f->delta_offset)
			continue;
		if (root_stat(c, rel, &st)) {
			if ((uint64_t)st.st_size == f->size && f->mtime == st.st_mtim.tv_sec &&
			    f->mtime_nsec == st.st_mtim.tv_nsec)
				continue;
			if ((uint64_t)st.st_size == f->delta_base_size)
				base = rel;
		}
		if (!base && (base = index_path(c, f->delta_base, f->delta_base_size)) &&
		    !has_file_of(c, base, f->delta_base_size))
			base = NULL;
		if (base && !(f->delta_from = strdup(base))) {
			free(todo);
			return -ENOMEM;
		}
		if (base)
			todo[n++] = f;
	}
	qsort(todo, n, sizeof(*todo), by_delta_offset);
	for (size_t i = 0; i < n; i++) {
		struct found *d = &c->found[todo[i] - c->toc.files];
		d->delta_planned = 1;
		plan_range(c, todo[i]->delta_offset, todo[i]->delta_offset + todo[i]->delta_size,
			   &d->delta_request, &d->delta_fetched);
	}
	plan_publish(c);
	free(todo);
	return 0;
}

static int by_frames_desc(const void *a, const void *b)
{
	const struct chunked_file *x = *(struct chunked_file *const *)a;
	const struct chunked_file *y = *(struct chunked_file *const *)b;
	uint64_t fx = x->end - x->offset, fy = y->end - y->offset;
	return fx > fy ? -1 : fx < fy;
}

/* Whether to read the image whole (c->whole): when more than half of its
 * frames are to be fetched, the whole stream costs about the same bytes,
 * writes no frames aside, and is the faster way.  Told from the biggest
 * files first, by their stat alone (the finder checks every byte it
 * takes), until the others cannot change the answer: on a root that
 * holds nothing of the image, after a few dozen.  A file counts as on
 * the root when a file of its size is at its path or where the last TOC
 * put its digest; a file with a delta frame planned, as its delta; a
 * file cut in chunks, by the chunks the last TOC placed on the root. */
static int estimate(struct chunked *c)
{
	struct chunked_file **order = calloc(c->toc.n + 1, sizeof(*order));
	uint64_t undecided = 0, half = c->foot.toc_offset / 2;

	if (!order)
		return -ENOMEM;
	for (size_t i = 0; i < c->toc.n; i++) {
		order[i] = &c->toc.files[i];
		undecided += order[i]->end - order[i]->offset;
	}
	qsort(order, c->toc.n, sizeof(*order), by_frames_desc);
	for (size_t i = 0; i < c->toc.n; i++) {
		const struct chunked_file *f = order[i];
		const struct spot *sp;
		c->looked++;
		if (has_file_of(c, stage_safe_path(f->name), f->size) ||
		    has_file_of(c, index_path(c, f->digest, f->size), f->size)) {
			c->seen_here++;
			c->seen_here_bytes += f->size;
		} else if (c->found[f - c->toc.files].delta_planned) {
			c->seen_fetch += f->delta_size;
		} else {
			for (size_t k = 0; k < f->n_chunks; k++)
				if (f->n_chunks < 2 || !(sp = index_find(&c->ix, f->chunks[k].digest)) ||
				    sp->size != f->chunks[k].size)
					c->seen_fetch += f->chunks[k].end - f->chunks[k].offset;
		}
		undecided -= f->end - f->offset;
		if ((c->whole = c->seen_fetch > half) || c->seen_fetch + undecided <= half)
			break;
	}
	free(order);
	return 0;
}

/* Wait until request k is in fetch_fd; its failure, if it failed. */
static int fetch_wait(struct chunked *c, size_t k, struct reimage_error *err)
{
	int r;

	pthread_mutex_lock(&c->lock);
	while (c->req_done <= k && !c->fetch_r && !c->stop)
		pthread_cond_wait(&c->arrived, &c->lock);
	r = c->req_done > k ? 0 : c->fetch_r ? c->fetch_r : -ECANCELED;
	if (r < 0 && c->fetch_r)
		*err = c->fetch_err;
	else if (r < 0)
		err_set(err, r, REIMAGE_EC_NONE, "the rebuild ended");
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* The tar-split (checked against the TOC), fetched by the fetcher's
 * first request: a transport is called from one thread at a time. */
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
	if ((r = fetch_wait(c, c->ts_request, err)) < 0)
		goto out;
	if (pread(c->fetch_fd, ts_z, c->foot.ts_length, (off_t)c->ts_at) != (ssize_t)c->foot.ts_length) {
		err_sys(err, errno ? -errno : -EIO, "read the fetched tar-split back");
		r = err->code;
		goto out;
	}
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

/* The finder's own hashing state (the rebuild has its own). */
struct finder {
	struct chunked *c;
	EVP_MD_CTX *md;
	unsigned char *io;            /* IO_BLOCK bytes */
	struct reimage_error err;
};

/* 1 if the root's rel holds, from at, the size bytes that hash to d. */
static int holds(struct finder *fi, const char *rel, uint64_t at, uint64_t size,
		 const unsigned char d[32])
{
	unsigned char md[32];
	uint64_t done = 0;
	int fd;

	if ((fd = open_in_root(fi->c->root_fd, rel)) < 0)
		return 0;
	EVP_DigestInit_ex(fi->md, EVP_sha256(), NULL);
	for (ssize_t n; done < size && (n = pread(fd, fi->io, size - done < IO_BLOCK ?
						      (size_t)(size - done) : IO_BLOCK,
						      (off_t)(at + done))) > 0;
	     done += (uint64_t)n)
		EVP_DigestUpdate(fi->md, fi->io, (size_t)n);
	EVP_DigestFinal_ex(fi->md, md, NULL);
	close(fd);
	return done == size && memcmp(md, d, 32) == 0;
}

/* ------------------------------------------------------------ the ring */

/* Where size bytes (> 0) fit in the ring, or UINT64_MAX (the lock held).
 * Contents lie in the tar's order from tail to head, wrapping to the
 * start when the end is reached; head stays short of tail, so that they
 * meet only when the ring is empty. */
static uint64_t ring_fit(const struct chunked *c, uint64_t size)
{
	if (!c->ring_items)
		return 0;
	if (c->ring_head > c->ring_tail)
		return RING_BYTES - c->ring_head >= size ? c->ring_head
		       : c->ring_tail > size	  ? 0
						  : UINT64_MAX;
	return c->ring_tail - c->ring_head > size ? c->ring_head : UINT64_MAX;
}

/* What the finder waits for is there (the lock held). */
static int finder_may_go(const struct chunked *c)
{
	switch (c->finder_waits) {
	case WAITS_RING: return ring_fit(c, c->want_room) != UINT64_MAX;
	case WAITS_FDS: return c->ahead_fds <= AHEAD_FDS / 2;
	case WAITS_DRAINED: return c->consumed == c->decided;
	default: return 1;
	}
}

/* The finder waits until what it needs is let go (the lock held), the
 * request growing published first: the rebuild may be waiting for it.
 * -ECANCELED once the rebuild ended. */
static int finder_wait(struct chunked *c, int what, uint64_t room)
{
	c->finder_waits = what;
	c->want_room = room;
	while (!c->stop && !finder_may_go(c)) {
		plan_publish_locked(c);
		pthread_cond_wait(&c->room, &c->lock);
	}
	c->finder_waits = WAITS_NOT;
	return c->stop ? -ECANCELED : 0;
}

/* size bytes (> 0, at most HELD_MAX) of the ring for the content of the
 * file the finder decides, once the rebuild left room: NULL on a stop. */
static unsigned char *ring_take(struct chunked *c, uint64_t size)
{
	unsigned char *p = NULL;
	uint64_t at;

	pthread_mutex_lock(&c->lock);
	if (!c->ring)
		c->ring = malloc(RING_BYTES);
	if (c->ring && ((at = ring_fit(c, size)) != UINT64_MAX ||
			(finder_wait(c, WAITS_RING, size > RING_BYTES / 4 ? size : RING_BYTES / 4) == 0 &&
			 (at = ring_fit(c, size)) != UINT64_MAX))) {
		if (!c->ring_items)
			c->ring_tail = at;
		c->ring_head = at + size;
		c->ring_items++;
		p = c->ring + at;
	}
	pthread_mutex_unlock(&c->lock);
	return p;
}

/* The last content taken from the ring (at p) is not held after all:
 * its room is free again (the finder's). */
static void ring_untake(struct chunked *c, unsigned char *p)
{
	pthread_mutex_lock(&c->lock);
	c->ring_head = (uint64_t)(p - c->ring);
	if (!--c->ring_items)
		c->ring_head = c->ring_tail = 0;
	pthread_mutex_unlock(&c->lock);
}

/* The rebuild is done with the oldest content held, size bytes at p
 * (the lock held). */
static void ring_give(struct chunked *c, const unsigned char *p, uint64_t size)
{
	c->ring_tail = (uint64_t)(p - c->ring) + size;
	if (!--c->ring_items)
		c->ring_head = c->ring_tail = 0;
}

/* A clone of the root's file fd on staging's volume, or -1: the first
 * refusal that is the file system's (not another volume's) ends them. */
static int snapshot(struct chunked *c, int fd)
{
	int snap, e;

	if (c->no_clones)
		return -1;
	if ((snap = open(c->req->workdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) >= 0 &&
	    ioctl(snap, FICLONE, fd) == 0)
		return snap;
	e = errno;
	if (snap >= 0)
		close(snap);
	if (e != EXDEV) {
		c->no_clones = 1;
		log_info("stage: chunked image: no reflinks in %s (%s): the files taken from the "
			 "root are copied", c->req->workdir, strerror(e));
	}
	return -1;
}

/* f's content from the root's rel, if rel is a regular file of f's size
 * whose bytes hash to f's digest: held in memory (up to HELD_MAX: read
 * once, hashed once), else its file handed to the rebuild -- taken
 * unread when its modification time is the TOC's to the nanosecond (a
 * package's file the update left alone: the rebuild's hash still checks
 * it, and one that differs fails the stage over to the full stream),
 * hashed now otherwise, so that a changed file is fetched rather than
 * failing the stage.  Where it can, the root's file is cloned first, and
 * the snapshot is what is hashed and kept for the writer.  1 taken, 0
 * not, -ENOMEM. */
static int take_whole(struct finder *fi, const char *rel, const struct chunked_file *f,
		      struct found *d)
{
	struct chunked *c = fi->c;
	unsigned char md[32], *held = NULL;
	struct stat st;
	uint64_t at = 0;
	int fd, same, snap = -1;

	if (!rel || !*rel || (fd = open_in_root(c->root_fd, rel)) < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->size) {
		close(fd);
		return 0;
	}
	if (f->size >= CLONE_MIN && (snap = snapshot(c, fd)) >= 0) {
		close(fd);
		fd = snap;
	}
	if (f->size > HELD_MAX && f->mtime == (int64_t)st.st_mtim.tv_sec &&
	    f->mtime_nsec == st.st_mtim.tv_nsec) {
		d->fd = fd;
		d->clone = snap >= 0;
		return 1;
	}
	if (f->size <= HELD_MAX && !(held = ring_take(c, f->size))) {
		close(fd);
		return c->ring ? -ECANCELED : -ENOMEM;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	EVP_DigestInit_ex(fi->md, EVP_sha256(), NULL);
	for (ssize_t n; at < f->size; at += (uint64_t)n) {
		size_t want = f->size - at < IO_BLOCK ? (size_t)(f->size - at) : IO_BLOCK;
		unsigned char *to = held ? held + at : fi->io;
		if ((n = pread(fd, to, want, (off_t)at)) <= 0)
			break;
		EVP_DigestUpdate(fi->md, to, (size_t)n);
	}
	EVP_DigestFinal_ex(fi->md, md, NULL);
	same = at == f->size && memcmp(md, f->digest, 32) == 0;
	if (same && held && snap < 0) {
		d->held = held;
		close(fd);
	} else if (same) {
		d->held = held;
		d->fd = fd;
		d->clone = snap >= 0;
	} else {
		if (held)
			ring_untake(c, held);
		close(fd);
	}
	return same;
}

/* f's content from its delta frame (fetched, request d->delta_request):
 * the base read from the root's f->delta_from and hashed (the bytes used
 * are the bytes checked), the frame decoded against it, the content
 * hashed and held (in the ring, or malloc'd when bigger than HELD_MAX).
 * 1 taken, 0 not (its frames are fetched instead), or < 0: the fetcher's
 * failure, a stop, -ENOMEM. */
static int take_delta(struct finder *fi, const struct chunked_file *f, struct found *d)
{
	struct chunked *c = fi->c;
	unsigned char *frame = malloc(f->delta_size ? f->delta_size : 1);
	unsigned char *base = malloc(f->delta_base_size ? f->delta_base_size : 1);
	unsigned char *out = NULL;
	int own = f->size > HELD_MAX, fd = -1, r, taken = 0;
	uint64_t done = 0;

	if ((r = fetch_wait(c, d->delta_request, &fi->err)) < 0)
		goto out;
	if (!frame || !base) {
		r = -ENOMEM;
		goto out;
	}
	if ((fd = open_in_root(c->root_fd, f->delta_from)) >= 0)
		for (ssize_t n; done < f->delta_base_size &&
		     (n = pread(fd, base + done, f->delta_base_size - done, (off_t)done)) > 0;)
			done += (uint64_t)n;
	if (done != f->delta_base_size || !digest_is(base, f->delta_base_size, f->delta_base)) {
		log_info("stage: the root's '%s' is not the base of the delta frame of '%s'; its "
			 "frames are fetched", f->delta_from, f->name);
		goto out;
	}
	if (!(out = own ? malloc(f->size) : ring_take(c, f->size))) {
		r = own || !c->ring ? -ENOMEM : -ECANCELED;
		goto out;
	}
	if (pread(c->fetch_fd, frame, f->delta_size, (off_t)d->delta_fetched) ==
		    (ssize_t)f->delta_size &&
	    chunked_delta_decode(frame, f->delta_size, base, f->delta_base_size, out, f->size) == 0 &&
	    digest_is(out, f->size, f->digest)) {
		d->held = out;
		d->held_own = own;
		d->from_delta = 1;
		out = NULL;
		taken = 1;
		c->deltas++;
		c->delta_bytes += f->delta_size;
	} else {
		log_notice("stage: the delta frame of '%s' against the root's '%s' does not give its "
			   "content; its frames are fetched", f->name, f->delta_from);
	}
out:
	if (fd >= 0)
		close(fd);
	if (out && !own)
		ring_untake(c, out);
	else
		free(out);
	free(frame);
	free(base);
	return r < 0 ? r : taken;
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
static int chunks_from_same_path(struct finder *fi, const char *rel, struct chunked_file *f)
{
	struct chunked_roll roll;
	unsigned char md[32];
	uint64_t at = 0, start = 0;
	struct stat st;
	int fd, r = 0;

	if ((fd = open_in_root(fi->c->root_fd, rel)) < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	chunked_roll_init(&roll);
	EVP_DigestInit_ex(fi->md, EVP_sha256(), NULL);
	for (ssize_t n; r == 0 && (n = pread(fd, fi->io, IO_BLOCK, (off_t)at)) > 0;) {
		for (size_t off = 0; r == 0 && off < (size_t)n;) {
			size_t cut = chunked_roll_split(&roll, fi->io + off, (size_t)n - off);
			size_t len = cut ? cut : (size_t)n - off;
			EVP_DigestUpdate(fi->md, fi->io + off, len);
			off += len;
			/* A chunk ends at a cut, and the last at the file's end. */
			int last = !cut && at + (uint64_t)n == (uint64_t)st.st_size && off == (size_t)n;
			if (!cut && !last)
				continue;
			EVP_DigestFinal_ex(fi->md, md, NULL);
			for (size_t k = 0; r == 0 && k < f->n_chunks; k++) {
				struct chunked_chunk *ch = &f->chunks[k];
				if (!ch->local && ch->size == at + off - start &&
				    memcmp(ch->digest, md, 32) == 0)
					r = chunk_found(fi->c, ch, rel, start);
			}
			start = at + off;
			EVP_DigestInit_ex(fi->md, EVP_sha256(), NULL);
		}
		at += (uint64_t)n;
	}
	close(fd);
	return r;
}

/* The chunks of f (not on the root whole) that the root holds. */
static int find_chunks(struct finder *fi, const char *rel, struct chunked_file *f)
{
	const struct spot *sp;
	const char *other;
	int r = 0;

	if (f->n_chunks < 2)
		return 0;
	if (rel && *rel && (r = chunks_from_same_path(fi, rel, f)) < 0)
		return r;
	for (size_t k = 0; r == 0 && k < f->n_chunks; k++) {
		struct chunked_chunk *ch = &f->chunks[k];
		if (!ch->local && (sp = index_find(&fi->c->ix, ch->digest)) && sp->size == ch->size &&
		    (other = stage_safe_path(sp->name)) && *other &&
		    holds(fi, other, sp->at, ch->size, ch->digest))
			r = chunk_found(fi->c, ch, other, sp->at);
	}
	return r;
}

/* Decide where f's content comes from: the same path, else where the
 * last TOC put its digest, else its delta frame, else chunk by chunk
 * (from the root where it holds them, the others' frames planned).
 * Paths resolve inside the root (openat2 RESOLVE_IN_ROOT). */
static int decide(struct finder *fi, struct chunked_file *f, struct found *d)
{
	struct chunked *c = fi->c;
	const char *rel = stage_safe_path(f->name);
	int r;

	if ((r = take_whole(fi, rel, f, d)) == 0 &&
	    (r = take_whole(fi, index_path(c, f->digest, f->size), f, d)) == 0 && d->delta_planned)
		r = take_delta(fi, f, d);
	if (r == 1 && !d->from_delta) {
		c->reused++;
		c->reused_bytes += f->size;
	}
	if (r != 0)
		return r < 0 ? r : 0;
	if ((r = find_chunks(fi, rel, f)) < 0)
		return r;
	return plan_file(c, f, &fi->err);
}

/* Before the next file: wait until the rebuild took the big content the
 * finder held last (drain), and until it let go of half of the root
 * files held open once all AHEAD_FDS are; -ECANCELED once it ended. */
static int find_room(struct chunked *c, int drain)
{
	int r = 0;

	pthread_mutex_lock(&c->lock);
	if (drain)
		r = finder_wait(c, WAITS_DRAINED, 0);
	if (r == 0 && c->ahead_fds >= AHEAD_FDS)
		r = finder_wait(c, WAITS_FDS, 0);
	if (r == 0 && c->stop)
		r = -ECANCELED;
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* The finder: every file of the TOC decided in the tar's order, each
 * announced to the rebuild at once, the requests published as they are
 * complete -- the request growing as soon as the next file's frames lie
 * beyond its reach. */
static void *find_all(void *arg)
{
	struct chunked *c = arg;
	struct finder fi = { .c = c, .md = EVP_MD_CTX_new(), .io = malloc(IO_BLOCK) };
	int r = fi.md && fi.io ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < c->toc.n; i++) {
		struct chunked_file *f = &c->toc.files[i];
		struct found *d = &c->found[i];
		if ((r = find_room(c, i && d[-1].held_own)) < 0 || (r = decide(&fi, f, d)) < 0)
			break;
		if (c->req_open && (i + 1 == c->toc.n ||
				    f[1].offset > c->open_req.end + CHUNKED_GAP))
			plan_publish(c);
		pthread_mutex_lock(&c->lock);
		c->decided = i + 1;
		c->ahead_fds += d->fd >= 0;
		if (c->want_file < c->decided)
			pthread_cond_signal(&c->decided_cv);
		pthread_mutex_unlock(&c->lock);
	}
	if (r == -ENOMEM)
		err_set(&fi.err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
	pthread_mutex_lock(&c->lock);
	plan_publish_locked(c);
	c->plan_done = 1;
	if (r < 0) {
		c->find_r = r;
		c->find_err = fi.err;
	}
	pthread_cond_signal(&c->planned);
	pthread_cond_signal(&c->decided_cv);
	pthread_mutex_unlock(&c->lock);
	EVP_MD_CTX_free(fi.md);
	free(fi.io);
	return NULL;
}

/* ------------------------------------------------------------ fetching */

/* The fetcher: the requests in order as they are published, up to
 * CHUNKED_IN_FLIGHT open at once, each read whole in its turn: while it
 * runs, the transport is called from this thread alone.  Each request
 * done is announced. */
static void *fetch_all(void *arg)
{
	struct chunked *c = arg;
	struct reimage_stream *open_rs[CHUNKED_IN_FLIGHT];
	struct reimage_error err = { 0 };
	uint64_t requests = 0, bytes_in = 0;
	unsigned char *buf = malloc(IO_BLOCK);
	size_t opened = 0, done = 0, published;
	int r = buf ? 0 : -ENOMEM, stop, last;

	if (r < 0)
		err_set(&err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
	while (r == 0) {
		pthread_mutex_lock(&c->lock);
		while (!c->stop && done == opened && opened == c->n_req && !c->plan_done)
			pthread_cond_wait(&c->planned, &c->lock);
		stop = c->stop;
		published = c->n_req;
		last = c->plan_done;
		pthread_mutex_unlock(&c->lock);
		if (stop || (done == published && last))
			break;
		for (; r == 0 && opened < published && opened - done < CHUNKED_IN_FLIGHT; opened++) {
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
		pthread_cond_broadcast(&c->arrived);
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
	pthread_cond_broadcast(&c->arrived);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Wait until the finder decided file i; its failure, if it failed. */
static int find_wait(struct chunked *c, size_t i, struct reimage_error *err)
{
	int r;

	pthread_mutex_lock(&c->lock);
	while (c->decided <= i && !c->plan_done) {
		c->want_file = i;
		pthread_cond_wait(&c->decided_cv, &c->lock);
	}
	c->want_file = SIZE_MAX;
	r = c->decided > i ? 0 : c->find_r ? c->find_r : -EIO;
	if (r < 0 && c->find_r)
		*err = c->find_err;
	else if (r < 0)
		err_set(err, r, REIMAGE_EC_IO, "the search of the root ended early");
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* Start the fetcher and the finder. */
static int workers_start(struct chunked *c, struct reimage_error *err)
{
	int e;

	if ((c->fetch_fd = open(c->req->workdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0) {
		err_sys(err, -errno, "create a file in %s", c->req->workdir);
		return err->code;
	}
	if ((e = pthread_create(&c->fetcher, NULL, fetch_all, c)) != 0) {
		err_sys(err, -e, "start the range requests");
		return -e;
	}
	c->fetcher_running = 1;
	if ((e = pthread_create(&c->finder, NULL, find_all, c)) != 0) {
		err_sys(err, -e, "start the search of the root");
		return -e;
	}
	c->finder_running = 1;
	return 0;
}

/* Stop the finder and the fetcher (after the file and the request under
 * way) and wait for them. */
static void workers_stop(struct chunked *c)
{
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_broadcast(&c->planned);
	pthread_cond_broadcast(&c->arrived);
	pthread_cond_broadcast(&c->decided_cv);
	pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->lock);
	if (c->finder_running)
		pthread_join(c->finder, NULL);
	if (c->fetcher_running)
		pthread_join(c->fetcher, NULL);
	c->finder_running = c->fetcher_running = 0;
}

/* ------------------------------------------------------- the rebuilt tar */

static int content_failed(struct chunked *c, struct reimage_error *err, const char *why)
{
	const struct chunked_file *f = c->cur;
	const struct found *d = c->cur_found;
	int from_root = d->held || c->cur_fd >= 0 ||
			(c->chunk < f->n_chunks && f->chunks[c->chunk].local);
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "'%s' (%s): %s", f->name,
		d->from_delta ? "from its delta frame" : from_root ? "from the root" : "fetched", why);
	return -EBADMSG;
}

/* The current file's content is one piece (held, or a root file), not
 * chunks. */
static int cur_whole(const struct chunked *c)
{
	return c->cur_found->held || c->cur_found->fd >= 0;
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
 * record rec announces, once the finder decided it. */
static int content_begin(struct chunked *c, const struct chunked_record *rec,
			 struct reimage_error *err)
{
	size_t i = c->next_file;
	struct chunked_file *f = i < c->toc.n ? &c->toc.files[i] : NULL;
	int r;

	if (!f || strcmp(f->name, rec->name) != 0 || f->size != rec->size) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"tar-split: '%s' (%llu bytes) is not the TOC's next file", rec->name,
			(unsigned long long)rec->size);
		return -EBADMSG;
	}
	if ((r = find_wait(c, i, err)) < 0)
		return r;
	c->next_file++;
	c->cur = f;
	c->cur_found = &c->found[i];
	c->left = f->size;
	c->chunk = 0;
	EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
	if (cur_whole(c)) {
		c->cur_at = 0;
		c->chunk_left = f->size;
		c->cur_fd = c->cur_found->fd;
		return 0;
	}
	return chunk_begin(c, err);
}

/* Close the snapshot of file i (the lock held). */
static void clone_close(struct chunked *c, size_t i)
{
	if (c->found[i].fd >= 0)
		close(c->found[i].fd);
	c->found[i].fd = -1;
}

/* Close the oldest snapshot waiting for the writer (the lock held). */
static void clone_drop_oldest(struct chunked *c)
{
	clone_close(c, c->clone_q[c->clone_q_head]);
	c->clone_q_head = (c->clone_q_head + 1) % CLONES_WAITING;
	c->clone_q_n--;
}

/* The rebuild is done with file i's snapshot: closed if the writer is
 * past its entry, else kept for it (the lock held). */
static void clone_wait_writer(struct chunked *c, size_t i)
{
	if (c->clone_next > i) {
		clone_close(c, i);
		return;
	}
	if (c->clone_q_n == CLONES_WAITING)
		clone_drop_oldest(c);
	c->clone_q[(c->clone_q_head + c->clone_q_n++) % CLONES_WAITING] = i;
}

/* The TOC's file the writer's entry rel is, from the writer's next one
 * (the lock held): the writer meets the TOC's files in order, but not
 * every one (a sparse file's entry is not its TOC's size); SIZE_MAX if
 * not among the next few. */
static size_t clone_find(const struct chunked *c, const char *rel)
{
	for (size_t i = c->clone_next; i < c->toc.n && i < c->clone_next + CLONES_WAITING; i++) {
		const char *name = stage_safe_path(c->toc.files[i].name);
		if (name && !strcmp(name, rel))
			return i;
	}
	return SIZE_MAX;
}

/* The sink's clone_from (the writer's thread).  A file the finder has
 * not decided yet is written (a wait here could miss the finder's
 * signal, which wakes one waiter: the rebuild's).  The writer gets its
 * own descriptor, so that the rebuild may close the snapshot meanwhile. */
static int clone_of(void *arg, const char *rel, uint64_t size, int *ret_fd,
		    struct reimage_error *err)
{
	struct chunked *c = arg;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	size_t i = clone_find(c, rel);
	if (i != SIZE_MAX) {
		c->clone_next = i + 1;
		while (c->clone_q_n && c->clone_q[c->clone_q_head] < i)
			clone_drop_oldest(c);
		if (c->decided > i && c->found[i].clone && c->found[i].fd >= 0 &&
		    c->toc.files[i].size == size) {
			if ((*ret_fd = fcntl(c->found[i].fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
				r = 1;
			} else {
				err_sys(err, -errno, "clone '%s'", rel);
				r = err->code;
			}
		}
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* The current file's content is whole: its digest decides (held content
 * was checked by the finder), and what the finder held for it is let go
 * (its snapshot kept for the writer). */
static int content_end(struct chunked *c, struct reimage_error *err)
{
	struct found *d = c->cur_found;
	size_t i = (size_t)(c->cur - c->toc.files);
	unsigned char md[32];
	int r = 0;

	EVP_DigestFinal_ex(c->md, md, NULL);
	if (!d->held && memcmp(md, c->cur->digest, 32) != 0)
		r = content_failed(c, err, "its SHA-256 is not the TOC's");
	if (c->cur_fd >= 0 && !d->clone)
		close(c->cur_fd);
	pthread_mutex_lock(&c->lock);
	c->consumed++;
	if (d->held && !d->held_own)
		ring_give(c, d->held, c->cur->size);
	c->ahead_fds -= d->fd >= 0;
	if (d->clone)
		clone_wait_writer(c, i);
	else
		d->fd = -1;
	if (c->finder_waits && finder_may_go(c))
		pthread_cond_signal(&c->room);
	pthread_mutex_unlock(&c->lock);
	if (d->held_own)
		free(d->held);
	d->held = NULL;
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

/* Up to len bytes of the current file's content: held, read from the
 * root, or decoded from a frame; hashed unless held (checked already). */
static ssize_t content_some(struct chunked *c, void *buf, size_t len, struct reimage_error *err)
{
	const unsigned char *held = c->cur_found->held;
	int from_root = cur_whole(c) || c->cur->chunks[c->chunk].local;
	ssize_t n;

	if (len > c->chunk_left)
		len = (size_t)c->chunk_left;
	if (held) {
		memcpy(buf, held + (c->cur->size - c->left), len);
		return (ssize_t)len;
	}
	n = from_root ? pread(c->cur_fd, buf, len, (off_t)c->cur_at) : from_frame(c, buf, len, err);
	if (n < 0 && from_root)
		return content_failed(c, err, strerror(errno));
	if (n < 0)
		return n;
	if (n == 0)
		return content_failed(c, err, "it is shorter than the TOC says");
	if (from_root)
		c->cur_at += (uint64_t)n;
	EVP_DigestUpdate(c->md, buf, (size_t)n);
	return n;
}

/* The next piece of the tar, rebuilt record by record: a record's
 * bytes or a file's content, up to len. */
static ssize_t pull_some(void *arg, void *buf, size_t len, struct reimage_error *err)
{
	struct chunked *c = arg;

	for (;;) {
		if (c->cur) {
			ssize_t n;
			int r;
			if (!c->left) {
				if ((!cur_whole(c) && (r = chunk_end(c, err)) < 0) ||
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
			if ((n = content_some(c, buf, len, err)) < 0)
				return n;
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

/* Room for every file's decision and every request there can be: one
 * per chunk, one per delta frame, and the tar-split's. */
static int plan_alloc(struct chunked *c, struct reimage_error *err)
{
	size_t cap = 2;

	for (size_t i = 0; i < c->toc.n; i++)
		cap += c->toc.files[i].n_chunks + 1;
	if (!(c->found = calloc(c->toc.n + 1, sizeof(*c->found))) ||
	    !(c->req_list = calloc(cap, sizeof(*c->req_list)))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->toc.n; i++)
		c->found[i].fd = -1;
	return 0;
}

/* Stage from the root and the fetched frames; any failure is the
 * caller's to fall back from. */
static int stage_chunked(struct chunked *c, struct stage_sink *k, struct reimage_error *err)
{
	struct stream_request sr = {
		.what = "image", .declared_by = "the TOC", .size = -1, .pull = pull, .pull_arg = c,
		.progress = c->req->progress, .unhashed = 1,
	};
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
	if (c->root_fd >= 0)
		index_load(c);
	if ((r = plan_alloc(c, err)) < 0)
		return r;
	plan_range(c, c->foot.ts_offset, c->foot.ts_offset + c->foot.ts_length, &c->ts_request,
		   &c->ts_at);
	if ((r = plan_deltas(c)) < 0 || (r = estimate(c)) < 0) {
		err_set(err, r, REIMAGE_EC_IO, "out of memory");
		return r;
	}
	if (c->whole) {
		err_set(err, -EAGAIN, REIMAGE_EC_NONE, "%llu of the %llu biggest of %zu files "
			"(%llu bytes) are on the root, more than half of the image is to be fetched",
			(unsigned long long)c->seen_here, (unsigned long long)c->looked, c->toc.n,
			(unsigned long long)c->seen_here_bytes);
		return -EAGAIN;
	}
	/* The root searched and the frames fetched behind this thread, which
	 * reads the tar-split (the fetcher's first request), then rebuilds
	 * the tar. */
	if ((r = workers_start(c, err)) < 0 || (r = read_tarsplit(c, err)) < 0 ||
	    (r = stream_open(&sr, &s, err)) < 0)
		return r;
	if (c->req->progress)
		progress_begin(c->req->progress, "staging", c->ts.tar_size);
	k->clone_from = clone_of;
	k->clone_arg = c;
	r = source_archive_read(s, k, 0, "image", err);
	k->clone_from = NULL;
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
	workers_stop(c);
	if (r < 0)
		return r;
	log_notice("stage: chunked image: %llu of %zu files (%llu bytes) taken from the root, "
		   "%llu fetched in %llu requests; %llu bytes read of the %llu-byte image; "
		   "%llu chunks (%llu bytes) of the files fetched taken from the root; "
		   "%llu files from delta frames (%llu bytes); %llu files cloned (%llu bytes)",
		   (unsigned long long)c->reused, c->toc.n, (unsigned long long)c->reused_bytes,
		   (unsigned long long)c->fetched, (unsigned long long)c->requests,
		   (unsigned long long)c->bytes_in, (unsigned long long)c->size,
		   (unsigned long long)c->chunks_reused, (unsigned long long)c->chunks_reused_bytes,
		   (unsigned long long)c->deltas, (unsigned long long)c->delta_bytes,
		   (unsigned long long)k->cloned, (unsigned long long)k->cloned_bytes);
	return 0;
}

static void chunked_free(struct chunked *c)
{
	workers_stop(c);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->planned);
	pthread_cond_destroy(&c->arrived);
	pthread_cond_destroy(&c->decided_cv);
	pthread_cond_destroy(&c->room);
	free(c->req_list);
	for (size_t i = 0; c->found && i < c->toc.n; i++) {
		if (c->found[i].held_own)
			free(c->found[i].held);
		if (c->found[i].fd >= 0 && c->found[i].fd != c->cur_fd)
			close(c->found[i].fd);
	}
	free(c->found);
	free(c->ring);
	if (c->cur_fd >= 0)
		close(c->cur_fd);
	if (c->root_fd >= 0)
		close(c->root_fd);
	if (c->fetch_fd >= 0)
		close(c->fetch_fd);
	free(c->ix.slot);
	chunked_toc_free(&c->ix.toc);
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
	const struct reimage_transport_ops *ops = req->transport ? req->transport->transport
								   : NULL;
	struct chunked c = { .src = src, .req = req, .ops = ops, .root_fd = -1, .fetch_fd = -1,
			     .cur_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
			     .planned = PTHREAD_COND_INITIALIZER, .arrived = PTHREAD_COND_INITIALIZER,
			     .decided_cv = PTHREAD_COND_INITIALIZER, .room = PTHREAD_COND_INITIALIZER,
			     .want_file = SIZE_MAX };
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
	workers_stop(&c);
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
