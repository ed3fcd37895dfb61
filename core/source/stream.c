/*
 * stream.c -- a transport's resource, hashed and size-checked as it is
 * read, resumed after retryable failures (see stream.h).  Nothing is
 * buffered beyond one read block: the digest is computed on the bytes
 * exactly as they are handed on.
 *
 * A resume never splices two versions of the resource: it asks for the
 * rest of the version the first answer named (its validator, see struct
 * reimage_open_opts), and a resource without a validator, or one that
 * changed, is not resumed: the stream fails with -ESTALE and the reader
 * starts again from byte 0 (stage_image()).
 */
#define _GNU_SOURCE
#include "stream.h"
#include "error.h"
#include "log.h"

#include <archive.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_BLOCK (256 * 1024)

struct stream {
	struct stream_request req;
	const struct reimage_transport_ops *ops;
	struct reimage_stream *rs;
	EVP_MD_CTX *md;
	uint64_t offset;           /* bytes read and hashed so far */
	uint64_t total;            /* size the transport announced */
	int resumes;
	int eof;
	int progress_elsewhere;    /* another thread reads: the caller reports */
	struct reimage_error err;  /* the transport's, the size or digest check's */
	struct reimage_open_opts own_opts;  /* when the caller gives none */
	struct reimage_open_opts *opts;     /* the caller's or own_opts; NULL without open_ex */
	char validator[REIMAGE_ETAG_MAX];   /* the first answer's, "" if none */
	unsigned char buf[STREAM_BLOCK];
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int stream_reopen(struct stream *s)
{
	uint64_t size = REIMAGE_SIZE_UNKNOWN;
	int ret;

	if (s->req.pull)
		return 0;
	if (s->opts) {
		/* Past byte 0, only the version the first answer named will do. */
		snprintf(s->opts->validator, sizeof(s->opts->validator), "%s",
			 s->offset ? s->validator : "");
		ret = s->ops->open_ex(s->req.transport->ctx, s->req.url, s->offset, s->opts,
				      &s->rs, &size, &s->err);
	} else {
		ret = s->ops->open(s->req.transport->ctx, s->req.url, s->offset, &s->rs, &size,
				   &s->err);
	}
	if (ret < 0)
		return ret;
	if (!s->offset)
		snprintf(s->validator, sizeof(s->validator), "%s", s->opts ? s->opts->validator : "");
	if (size != REIMAGE_SIZE_UNKNOWN) {
		s->total = size;
		if (s->req.size >= 0 && size != (uint64_t)s->req.size) {
			err_set(&s->err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"%s is %llu bytes, %s declares %lld", s->req.what,
				(unsigned long long)size, s->req.declared_by, (long long)s->req.size);
			return -EBADMSG;
		}
	}
	return 0;
}

int stream_open(const struct stream_request *req, struct stream **ret_stream,
		struct reimage_error *err)
{
	const struct reimage_transport_ops *ops = req->pull ? NULL : req->transport->transport;
	struct stream *s;

	if (req->opts && !req->pull && !OPS_HAS(ops, struct reimage_transport_ops, open_ex)) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"%s: transport %s cannot send request options (it lacks open_ex); "
			"update the plugin", req->url, req->transport->name);
		return -ENOTSUP;
	}
	s = calloc(1, sizeof(*s));
	if (!s || (!req->unhashed && (!(s->md = EVP_MD_CTX_new()) ||
				      !EVP_DigestInit_ex(s->md, EVP_sha256(), NULL)))) {
		if (s)
			EVP_MD_CTX_free(s->md);
		free(s);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	s->req = *req;
	s->ops = ops;
	/* Request options carry the validator: every transport that takes
	 * them gets them (an OCI registry's also the caller's own). */
	s->own_opts.struct_size = sizeof(s->own_opts);
	if (!req->pull && OPS_HAS(ops, struct reimage_transport_ops, open_ex))
		s->opts = req->opts ? req->opts : &s->own_opts;
	s->total = req->size >= 0 ? (uint64_t)req->size : REIMAGE_SIZE_UNKNOWN;
	if (stream_reopen(s) < 0 && s->err.cls != REIMAGE_EC_RETRYABLE) {
		*err = s->err;
		err_prefix_about(err, "open", req->url);
		stream_close(s);
		return err->code;
	}
	*ret_stream = s;
	return 0;
}

/* One read from the transport; a retryable failure closes the stream and
 * opens it again at the byte reached, a bounded number of times with a
 * doubling delay and jitter. */
static ssize_t stream_pull(struct stream *s)
{
	if (s->req.pull)
		return s->req.pull(s->req.pull_arg, s->buf, sizeof(s->buf), &s->err);
	for (;;) {
		ssize_t n;
		if (!s->rs && stream_reopen(s) < 0) {
			if (s->err.cls != REIMAGE_EC_RETRYABLE || s->resumes >= s->req.retries)
				return -1;
		} else {
			n = s->ops->read(s->rs, s->buf, sizeof(s->buf), &s->err);
			if (n >= 0)
				return n;
			s->ops->close(s->rs);
			s->rs = NULL;
			if (s->err.cls != REIMAGE_EC_RETRYABLE || s->resumes >= s->req.retries)
				return -1;
			if (s->offset && !s->validator[0]) {
				err_prefix(&s->err, "the %s cannot be resumed at byte %llu: its first "
					   "answer named no version (no ETag or Last-Modified)",
					   s->req.what, (unsigned long long)s->offset);
				s->err.code = -ESTALE;
				s->err.cls = REIMAGE_EC_INTEGRITY;
				return -1;
			}
		}
		int64_t delay = s->req.retry_delay_ms << (s->resumes < 16 ? s->resumes : 16);
		delay += delay > 0 ? random() % (delay / 4 + 1) : 0;
		log_warn("stage: %s; resuming at byte %llu of the %s in %lld ms (attempt %d of %d)",
			 s->err.msg, (unsigned long long)s->offset, s->req.what, (long long)delay,
			 s->resumes + 1, s->req.retries);
		err_clear(&s->err);
		s->resumes++;
		sleep_ms(delay);
	}
}

ssize_t stream_read(struct stream *s, const void **ret_buf)
{
	ssize_t n;

	if (s->err.code)
		return s->err.code;
	if (s->eof)
		return 0;
	n = stream_pull(s);
	if (n < 0)
		return s->err.code ? s->err.code : -EIO;
	if (n == 0) {
		s->eof = 1;
		return 0;
	}
	if (s->req.size >= 0 && s->offset + (uint64_t)n > (uint64_t)s->req.size) {
		err_set(&s->err, -EFBIG, REIMAGE_EC_INTEGRITY,
			"%s is larger than the %lld bytes %s declares", s->req.what,
			(long long)s->req.size, s->req.declared_by);
		return -EFBIG;
	}
	if (s->md)
		EVP_DigestUpdate(s->md, s->buf, (size_t)n);
	s->offset += (uint64_t)n;
	if (!s->progress_elsewhere && stream_progress(s, s->offset, &s->err) < 0)
		return -ECANCELED;
	*ret_buf = s->buf;
	return n;
}

int stream_finish(struct stream *s, char ret_sha256[DIGEST_HEX_SHA256], struct reimage_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hex[DIGEST_HEX_SHA256];
	unsigned mdlen = 0;
	const void *buf;
	ssize_t n;

	while ((n = stream_read(s, &buf)) > 0)
		;
	if (n < 0) {
		*err = s->err;
		return n;
	}
	if (s->md)
		EVP_DigestFinal_ex(s->md, md, &mdlen);
	digest_hex(hex, md, mdlen);
	if (ret_sha256)
		memcpy(ret_sha256, hex, DIGEST_HEX_SHA256);
	if (s->req.size >= 0 && s->offset != (uint64_t)s->req.size) {
		err_set(&s->err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"%s ended after %llu bytes, %s declares %lld (truncated?)", s->req.what,
			(unsigned long long)s->offset, s->req.declared_by, (long long)s->req.size);
	} else if (s->req.sha256 && strcmp(s->req.sha256, hex) != 0) {
		err_set(&s->err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s SHA-256 is %s, %s declares %s",
			s->req.what, hex, s->req.declared_by, s->req.sha256);
	}
	if (s->err.code) {
		*err = s->err;
		return s->err.code;
	}
	return 0;
}

void stream_progress_elsewhere(struct stream *s, int elsewhere)
{
	s->progress_elsewhere = elsewhere;
}

int stream_progress(const struct stream *s, uint64_t offset, struct reimage_error *err)
{
	return progress_step(s->req.progress, s->req.progress_base + offset, err);
}

const struct reimage_error *stream_error(const struct stream *s)
{
	return s->err.code ? &s->err : NULL;
}

uint64_t stream_offset(const struct stream *s)
{
	return s->offset;
}

int stream_resumes(const struct stream *s)
{
	return s->resumes;
}

uint64_t stream_size(const struct stream *s)
{
	return s->total;
}

void stream_close(struct stream *s)
{
	if (!s)
		return;
	if (s->rs)
		s->ops->close(s->rs);
	EVP_MD_CTX_free(s->md);
	free(s);
}

static la_ssize_t archive_read_cb(struct archive *a, void *client, const void **ret_buf)
{
	struct stream *s = client;
	ssize_t n = stream_read(s, ret_buf);
	if (n < 0) {
		archive_set_error(a, -(int)n, "%s", s->err.msg);
		return -1;
	}
	return n;
}

int stream_archive_open(struct archive *a, struct stream *s)
{
	return archive_read_open(a, s, NULL, archive_read_cb, NULL);
}
