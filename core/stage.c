/*
 * stage.c -- STAGE (see stage.h).  One pass: transport read -> SHA-256
 * (OpenSSL EVP, which uses the CPU's SHA instructions) -> libarchive
 * reader -> libarchive disk writer with the secure flags.  Nothing is
 * buffered beyond one read block; no chdir: every member path is checked
 * and then rooted at the staging directory's real path, and hard-link
 * targets likewise, so nothing resolves against the working directory.
 */
#define _GNU_SOURCE
#include "stage.h"
#include "error.h"
#include "log.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STAGE_BLOCK (256 * 1024)

struct reader {
	const struct stage_request *req;
	const struct reimage_transport_ops *ops;
	struct reimage_stream *stream;
	EVP_MD_CTX *md;
	uint64_t offset;        /* bytes read and hashed so far */
	uint64_t total;         /* size the transport announced */
	int resumes;
	int eof;
	struct reimage_error err;  /* the transport's or the size check's error */
	unsigned char buf[STAGE_BLOCK];
};

const char *stage_safe_path(const char *path)
{
	const char *p = path;

	if (!p || *p == '/')
		return NULL;
	while (p[0] == '.' && p[1] == '/') {
		p += 2;
		while (*p == '/')
			p++;
	}
	if (!*p || strcmp(p, ".") == 0)
		return p;  /* the archive's own root: the caller skips it */
	for (const char *c = p; *c;) {
		const char *end = strchr(c, '/');
		size_t len = end ? (size_t)(end - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return NULL;
		c += len;
		while (*c == '/')
			c++;
	}
	return p;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int reader_open(struct reader *r)
{
	uint64_t size = REIMAGE_SIZE_UNKNOWN;
	int ret = r->ops->open(r->req->transport->ctx, r->req->url, r->offset, &r->stream, &size,
			       &r->err);
	if (ret < 0)
		return ret;
	if (size != REIMAGE_SIZE_UNKNOWN) {
		r->total = size;
		if (r->req->size >= 0 && size != (uint64_t)r->req->size) {
			err_set(&r->err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"image is %llu bytes, the job declares %lld",
				(unsigned long long)size, (long long)r->req->size);
			return -EBADMSG;
		}
	}
	return 0;
}

/* One read from the stream; a retryable failure closes the stream and
 * opens it again at the byte reached, a bounded number of times with a
 * doubling delay and jitter. */
static ssize_t reader_pull(struct reader *r)
{
	for (;;) {
		ssize_t n;
		if (!r->stream && reader_open(r) < 0) {
			if (r->err.cls != REIMAGE_EC_RETRYABLE || r->resumes >= r->req->retries)
				return -1;
		} else {
			n = r->ops->read(r->stream, r->buf, sizeof(r->buf), &r->err);
			if (n >= 0)
				return n;
			r->ops->close(r->stream);
			r->stream = NULL;
			if (r->err.cls != REIMAGE_EC_RETRYABLE || r->resumes >= r->req->retries)
				return -1;
		}
		int64_t delay = r->req->retry_delay_ms << (r->resumes < 16 ? r->resumes : 16);
		delay += delay > 0 ? random() % (delay / 4 + 1) : 0;
		log_warn("stage: %s; resuming at byte %llu in %lld ms (attempt %d of %d)", r->err.msg,
			 (unsigned long long)r->offset, (long long)delay, r->resumes + 1,
			 r->req->retries);
		err_clear(&r->err);
		r->resumes++;
		sleep_ms(delay);
	}
}

static la_ssize_t read_cb(struct archive *a, void *client, const void **ret_buf)
{
	struct reader *r = client;
	ssize_t n;

	if (r->eof)
		return 0;
	n = reader_pull(r);
	if (n < 0) {
		archive_set_error(a, EIO, "%s", r->err.msg);
		return -1;
	}
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	if (r->req->size >= 0 && r->offset + (uint64_t)n > (uint64_t)r->req->size) {
		err_set(&r->err, -EFBIG, REIMAGE_EC_INTEGRITY,
			"image is larger than the %lld bytes the job declares", (long long)r->req->size);
		archive_set_error(a, EFBIG, "%s", r->err.msg);
		return -1;
	}
	EVP_DigestUpdate(r->md, r->buf, (size_t)n);
	r->offset += (uint64_t)n;
	if (r->req->progress)
		progress_update(r->req->progress, r->offset);
	*ret_buf = r->buf;
	return n;
}

/* Hash the bytes after the archive's end marker too: the digest covers
 * the whole file. */
static int reader_drain(struct reader *r, struct archive *a)
{
	const void *buf;
	while (!r->eof)
		if (read_cb(a, r, &buf) < 0)
			return -1;
	return 0;
}

/* A disk writer's error: its message, and the system's reason. */
static int writer_error(struct reimage_error *err, struct archive *out, const char *what,
			const char *name)
{
	int known = archive_errno(out) > 0, en = known ? archive_errno(out) : EIO;
	const char *msg = archive_error_string(out) ? archive_error_string(out) : "failed";
	if (!known || strstr(msg, strerror(en)))
		err_set(err, -en, en == ENOSPC ? REIMAGE_EC_IO : REIMAGE_EC_INTEGRITY, "%s '%s': %s",
			what, name, msg);
	else
		err_set(err, -en, en == ENOSPC ? REIMAGE_EC_IO : REIMAGE_EC_INTEGRITY,
			"%s '%s': %s: %s", what, name, msg, strerror(en));
	return -en;
}

static int root_path(char *buf, size_t len, const char *staging, const char *rel)
{
	int n = snprintf(buf, len, "%s/%s", staging, rel);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int stage_copy_data(struct archive *in, struct archive *out, uint64_t *bytes, const char *name,
		    struct reimage_error *err)
{
	const void *buf;
	size_t size;
	la_int64_t offset;

	for (;;) {
		int r = archive_read_data_block(in, &buf, &size, &offset);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r < ARCHIVE_OK) {
			err_set(err, -EIO, REIMAGE_EC_INTEGRITY, "read '%s': %s", name,
				archive_error_string(in));
			return -EIO;
		}
		if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_OK)
			return writer_error(err, out, "extract", name);
		*bytes += size;
	}
}

static int extract_entry(struct archive *in, struct archive *out, struct archive_entry *e,
			 const char *staging, struct stage_result *res, struct reimage_error *err)
{
	char path[PATH_MAX], link[PATH_MAX], rel[PATH_MAX];
	const char *orig = archive_entry_pathname(e);
	const char *safe = stage_safe_path(orig);
	const char *hard = archive_entry_hardlink(e);
	int r;

	if (!safe) {
		err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
			"refused member '%s': absolute or with '..'", orig ? orig : "(no name)");
		return -EPERM;
	}
	/* The entry's own name is replaced below: keep a copy for messages. */
	snprintf(rel, sizeof(rel), "%s", safe);
	if (!*rel || strcmp(rel, ".") == 0)
		return 0;  /* the image's root directory: staging itself stands for it */
	if (root_path(path, sizeof(path), staging, rel) < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_INTEGRITY, "member '%s': path too long", rel);
		return -ENAMETOOLONG;
	}
	archive_entry_copy_pathname(e, path);
	if (hard) {
		const char *hrel = stage_safe_path(hard);
		if (!hrel || !*hrel || root_path(link, sizeof(link), staging, hrel) < 0) {
			err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
				"refused member '%s': hard link to '%s' outside the image", rel, hard);
			return -EPERM;
		}
		archive_entry_copy_hardlink(e, link);
	}
	r = archive_write_header(out, e);
	if (r < ARCHIVE_WARN)
		return writer_error(err, out, "extract", rel);
	if (archive_entry_size(e) > 0 && (r = stage_copy_data(in, out, &res->bytes_out, rel, err)) < 0)
		return r;
	if (archive_write_finish_entry(out) < ARCHIVE_WARN)
		return writer_error(err, out, "extract", rel);
	res->entries++;
	return 0;
}

static void hex(char *out, const unsigned char *md, unsigned len)
{
	static const char digits[] = "0123456789abcdef";
	for (unsigned i = 0; i < len; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * len] = '\0';
}

/* Owners are the image's numeric ids, never this machine's names (no
 * lookup for the entry's own owner, which libarchive takes by number).
 * ACL entries are another matter: GNU tar writes them as text with a name
 * and no id ("user:alice:rw-"), or with the id as the name when it has
 * none.  A numeric name is the id; a real name can only be resolved
 * against this machine's accounts, as bsdtar does. */
static int numeric_name(const char *name, la_int64_t *ret)
{
	char *end;
	long long n;
	if (!name || !*name)
		return 0;
	n = strtoll(name, &end, 10);
	if (*end != '\0' || n < 0)
		return 0;
	*ret = n;
	return 1;
}

static la_int64_t lookup_uid(void *data, const char *name, la_int64_t id)
{
	char buf[4096];
	struct passwd pw, *found = NULL;
	(void)data;
	if (id >= 0 || numeric_name(name, &id))
		return id;
	if (name && getpwnam_r(name, &pw, buf, sizeof(buf), &found) == 0 && found)
		return found->pw_uid;
	return id;
}

static la_int64_t lookup_gid(void *data, const char *name, la_int64_t id)
{
	char buf[4096];
	struct group gr, *found = NULL;
	(void)data;
	if (id >= 0 || numeric_name(name, &id))
		return id;
	if (name && getgrnam_r(name, &gr, buf, sizeof(buf), &found) == 0 && found)
		return found->gr_gid;
	return id;
}

struct archive *stage_disk_writer(void)
{
	struct archive *out = archive_write_disk_new();
	if (!out)
		return NULL;
	archive_write_disk_set_user_lookup(out, NULL, lookup_uid, NULL);
	archive_write_disk_set_group_lookup(out, NULL, lookup_gid, NULL);
	/* Numeric owners (the image's ids, not this machine's names), every
	 * piece of metadata, and libarchive's refusal to write through a
	 * symlink or to a path with "..". */
	archive_write_disk_set_options(out,
		ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
		ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS |
		ARCHIVE_EXTRACT_MAC_METADATA | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		ARCHIVE_EXTRACT_SECURE_NODOTDOT);
	return out;
}

int stage_image(const struct stage_request *req, struct stage_result *res,
		struct reimage_error *err)
{
	struct archive *in = NULL, *out = NULL;
	struct archive_entry *entry;
	struct reader *r;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	r = calloc(1, sizeof(*r));
	if (!r || !(r->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(r->md, EVP_sha256(), NULL)) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	r->req = req;
	r->ops = req->transport->desc->transport;
	r->total = req->size >= 0 ? (uint64_t)req->size : REIMAGE_SIZE_UNKNOWN;
	in = archive_read_new();
	out = stage_disk_writer();
	if (!in || !out) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	archive_read_support_filter_all(in);
	archive_read_support_format_all(in);
	if (reader_open(r) < 0 && r->err.cls != REIMAGE_EC_RETRYABLE) {
		*err = r->err;
		err_prefix(err, "open %s", req->url);
		ret = err->code;
		goto out;
	}
	if (req->progress)
		progress_begin(req->progress, "staging", r->total);
	if (archive_read_open(in, r, NULL, read_cb, NULL) != ARCHIVE_OK) {
		ret = -EIO;
		goto fail_read;
	}
	for (;;) {
		int st = archive_read_next_header(in, &entry);
		if (st == ARCHIVE_EOF)
			break;
		if (st < ARCHIVE_WARN) {
			ret = -EIO;
			goto fail_read;
		}
		if ((ret = extract_entry(in, out, entry, req->staging, res, err)) < 0) {
			/* A read failure inside the data is the stream's error. */
			if (r->err.code)
				goto fail_read;
			goto out;
		}
	}
	if (reader_drain(r, in) < 0) {
		ret = -EIO;
		goto fail_read;
	}
	if (archive_write_close(out) != ARCHIVE_OK) {
		int en = archive_errno(out) ? archive_errno(out) : EIO;
		err_set(err, -en, REIMAGE_EC_IO, "finish extraction: %s", archive_error_string(out));
		ret = -en;
		goto out;
	}
	EVP_DigestFinal_ex(r->md, md, &mdlen);
	hex(res->sha256, md, mdlen);
	res->bytes_in = r->offset;
	res->resumes = r->resumes;
	if (req->progress)
		progress_end(req->progress);
	if (req->size >= 0 && r->offset != (uint64_t)req->size) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"image ended after %llu bytes, the job declares %lld (truncated?)",
			(unsigned long long)r->offset, (long long)req->size);
		ret = -EBADMSG;
	} else if (req->sha256 && strcmp(req->sha256, res->sha256) != 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"image SHA-256 is %s, the job declares %s", res->sha256, req->sha256);
		ret = -EBADMSG;
	}
	goto out;
fail_read:
	/* The first error wins: the transport's or size check's, else libarchive's. */
	if (r->err.code) {
		*err = r->err;
	} else {
		err_set(err, -EIO, REIMAGE_EC_INTEGRITY, "read image: %s",
			archive_error_string(in) ? archive_error_string(in) : "unreadable archive");
	}
	ret = err->code;
out:
	if (in)
		archive_read_free(in);
	if (out)
		archive_write_free(out);
	if (r) {
		if (r->stream)
			r->ops->close(r->stream);
		if (r->md)
			EVP_MD_CTX_free(r->md);
		free(r);
	}
	return ret;
}
