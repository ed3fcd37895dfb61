/*
 * stream.c -- transport-http's image stream: open(), read(), close().
 *
 * The engine pulls bytes (read) while libcurl pushes them (its write
 * callback).  Between the two sits one bounded buffer: the callback fills
 * it and pauses the transfer when it is full; read() drains it and resumes
 * the transfer when it is empty.  The body is never held whole, never
 * written to a file.  A transfer runs on its own multi handle so that
 * read() can drive it a step at a time.
 *
 * open_ex() adds what the caller asks of one request: an Accept header,
 * a bearer token of its own, and the answer's Content-Type back (an OCI
 * registry's manifests need all three).
 *
 * Resume: open() at an offset asks for "Range: bytes=OFFSET-".  Whatever
 * the server answers (206 from some start, or 200 from byte 0), the
 * callback drops the bytes before offset itself, so the caller always gets
 * the resource from exactly offset.  Retrying is the core's decision: a
 * failed read() is RETRYABLE, the core closes and opens again at the
 * offset it reached -- with the validator of the first answer (a strong
 * ETag, else Last-Modified), which goes out as If-Range.  The answer must
 * carry the same validator, or the resource changed between the two
 * requests: the open fails with -ESTALE and the core starts again from
 * byte 0 rather than splice two versions (RFC 9110, 13.1.5).
 *
 * Ranges: open_range() asks for "Range: bytes=FIRST-LAST" and takes only a
 * 206 answer holding exactly those bytes.  A server that ignores Range (200,
 * the whole resource) is refused at the headers, before its body is read:
 * the caller, which wanted a few frames of an image, falls back to reading
 * it whole rather than paying for the whole resource once per range.
 */
#define _GNU_SOURCE
#include "http.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Big enough for any write callback call (libcurl passes at most
 * CURL_MAX_WRITE_SIZE), small enough to hold nothing of the image. */
#define STREAM_BUFFER (256 * 1024)
_Static_assert(STREAM_BUFFER >= CURL_MAX_WRITE_SIZE, "a callback's chunk must fit");

/* How long one wait for the socket lasts: libcurl's own timeouts
 * (connect, low speed) end a transfer that makes no progress, and between
 * two waits a stop request is seen. */
#define STREAM_POLL_MS 250

/* Why the body was refused at its start. */
enum stream_refusal {
	REFUSED_NONE = 0,
	REFUSED_STATUS,  /* not 200 or 206: http_fail() names the status */
	REFUSED_RANGE,   /* the answer does not cover the offset asked */
	REFUSED_IGNORED, /* open_range(): the server sent the whole resource */
	REFUSED_CHANGED, /* the answer is of another version than the caller's */
};

struct reimage_stream {
	struct http_ctx *ctx;
	struct http_request rq;
	CURLM *multi;
	uint64_t offset;       /* where the caller asked to start */
	uint64_t length;       /* open_range(): the bytes asked; 0: to the end */
	uint64_t size;         /* the whole resource, or REIMAGE_SIZE_UNKNOWN */
	uint64_t skip;         /* bytes still to drop before offset */
	char want[REIMAGE_ETAG_MAX];  /* the version asked for (If-Range), "" for any */
	char got[REIMAGE_ETAG_MAX];   /* the answer's validator, "" if none */
	int begun;             /* the answer's status and headers were checked */
	enum stream_refusal refusal;
	int paused;            /* the callback paused the transfer: buffer full */
	int done;              /* the transfer ended; result says how */
	CURLcode result;
	size_t start, end;     /* unread bytes are buf[start, end) */
	unsigned char buf[STREAM_BUFFER];
};

/* "bytes FIRST-LAST/TOTAL" (TOTAL may be "*"). */
static int parse_content_range(const char *value, uint64_t *ret_first, uint64_t *ret_last,
			       uint64_t *ret_total)
{
	uint64_t first, last;
	char total[32];

	if (!value || sscanf(value, "bytes %" SCNu64 "-%" SCNu64 "/%31s", &first, &last, total) != 3 ||
	    last < first)
		return -EINVAL;
	*ret_first = first;
	*ret_last = last;
	if (strcmp(total, "*") == 0)
		*ret_total = REIMAGE_SIZE_UNKNOWN;
	else if (sscanf(total, "%" SCNu64, ret_total) != 1 || *ret_total <= last)
		return -EINVAL;
	return 0;
}

/* The answer's validator: a strong ETag (a weak one may not be used with
 * If-Range), else Last-Modified, else "". */
static void answer_validator(struct reimage_stream *s)
{
	const char *etag = http_header(&s->rq, "ETag");
	const char *modified = http_header(&s->rq, "Last-Modified");

	if (etag && strncmp(etag, "W/", 2) != 0)
		snprintf(s->got, sizeof(s->got), "%s", etag);
	else
		snprintf(s->got, sizeof(s->got), "%s", modified ? modified : "");
}

/*
 * At the start of the body (or at the end of a transfer without one):
 * check the status, learn the resource's size and where the body starts,
 * and so how many bytes to drop.  Returns 0 or -1 with s->refusal set.
 */
static int stream_begin(struct reimage_stream *s)
{
	long status = http_status(&s->rq);
	curl_off_t length = -1;
	uint64_t first = 0, last = 0;

	s->begun = 1;
	answer_validator(s);
	if (status == 206) {
		if (parse_content_range(http_header(&s->rq, "Content-Range"), &first, &last,
					&s->size) < 0 ||
		    (s->length && (first != s->offset || last != s->offset + s->length - 1))) {
			s->refusal = REFUSED_RANGE;
			return -1;
		}
	} else if (status == 200 && s->length) {
		s->refusal = REFUSED_IGNORED;
		return -1;
	} else if (status == 200) {
		/* A server that ignores Range sends the whole resource. */
		curl_easy_getinfo(s->rq.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
		s->size = length >= 0 ? (uint64_t)length : REIMAGE_SIZE_UNKNOWN;
	} else {
		s->refusal = REFUSED_STATUS;
		return -1;
	}
	/* A 200 to an If-Range is the new version whole; a 206 of another
	 * version is a server that ignored If-Range.  Either way, not the
	 * bytes the caller holds the start of. */
	if (s->want[0] && s->offset > 0 && strcmp(s->got, s->want) != 0) {
		s->refusal = REFUSED_CHANGED;
		return -1;
	}
	if (first > s->offset || (s->size != REIMAGE_SIZE_UNKNOWN && s->offset > s->size)) {
		s->refusal = REFUSED_RANGE;
		return -1;
	}
	s->skip = s->offset - first;
	return 0;
}

/* Make room for len more bytes at buf + end, moving unread bytes down. */
static int stream_room(struct reimage_stream *s, size_t len)
{
	size_t unread = s->end - s->start;

	if (len <= sizeof(s->buf) - s->end)
		return 1;
	if (len > sizeof(s->buf) - unread)
		return 0;
	memmove(s->buf, s->buf + s->start, unread);
	s->start = 0;
	s->end = unread;
	return 1;
}

static size_t stream_write(char *data, size_t size, size_t n, void *userdata)
{
	struct reimage_stream *s = userdata;
	size_t len = size * n;
	size_t drop, keep;

	if (!s->begun && stream_begin(s) < 0)
		return 0;
	drop = s->skip < len ? (size_t)s->skip : len;
	keep = len - drop;
	if (keep > sizeof(s->buf))
		return 0;  /* libcurl broke its CURL_MAX_WRITE_SIZE promise */
	if (keep && !stream_room(s, keep)) {
		/* libcurl hands the same chunk again after the unpause, so
		 * nothing of it (not even the dropping) is done now. */
		s->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	s->skip -= drop;
	memcpy(s->buf + s->end, data + drop, keep);
	s->end += keep;
	return len;
}

/* Drive the transfer one step. */
static void stream_pump(struct reimage_stream *s)
{
	int running = 0, left = 0;
	CURLMcode mc = curl_multi_perform(s->multi, &running);
	CURLMsg *msg;

	while ((msg = curl_multi_info_read(s->multi, &left)))
		if (msg->msg == CURLMSG_DONE) {
			s->done = 1;
			s->result = msg->data.result;
		}
	if (mc != CURLM_OK && !s->done) {
		s->done = 1;
		s->result = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_RECV_ERROR;
	}
	/* Asked to stop: end now, whatever the transfer waits for. */
	if (!s->done && http_stopping(s->ctx)) {
		s->done = 1;
		s->result = CURLE_ABORTED_BY_CALLBACK;
	}
	/* Wait only while what open() (the headers) or read() (bytes, or a
	 * full buffer) needs has not arrived. */
	if (!s->done && (!s->begun || (s->start == s->end && !s->paused)))
		curl_multi_poll(s->multi, NULL, 0, STREAM_POLL_MS, NULL);
}

/* A resume exactly at the end: 416 with "bytes * /SIZE" and SIZE == offset. */
static int stream_at_end(struct reimage_stream *s)
{
	const char *range = http_header(&s->rq, "Content-Range");
	uint64_t total;

	if (s->length || http_status(&s->rq) != 416 || !range ||
	    sscanf(range, "bytes */%" SCNu64, &total) != 1 || total != s->offset)
		return 0;
	s->size = total;
	s->refusal = REFUSED_NONE;
	s->done = 1;
	s->result = CURLE_OK;
	return 1;
}

/* Record why the stream cannot go on. */
static int stream_fail(struct reimage_stream *s, struct reimage_error *err)
{
	if (s->refusal == REFUSED_CHANGED) {
		s->ctx->host->error(err, -ESTALE, REIMAGE_EC_INTEGRITY,
				    "GET %s: the resource changed since it was first read "
				    "(validator %s, now %s%s)", s->rq.shown_url, s->want,
				    s->got[0] ? s->got : "none", http_status(&s->rq) == 200 ?
				    ", the whole new version sent" : "");
		return -ESTALE;
	}
	if (s->refusal == REFUSED_RANGE) {
		s->ctx->host->error(err, -ERANGE, REIMAGE_EC_INTEGRITY,
				    "GET %s: the answer (HTTP status %ld) does not hold the "
				    "resource from byte %" PRIu64, s->rq.shown_url,
				    http_status(&s->rq), s->offset);
		return -ERANGE;
	}
	if (s->refusal == REFUSED_IGNORED) {
		s->ctx->host->error(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
				    "GET %s: the server ignored the range asked (HTTP status %ld, "
				    "the whole resource)", s->rq.shown_url, http_status(&s->rq));
		return -ENOTSUP;
	}
	return http_fail(s->ctx, &s->rq, s->refusal == REFUSED_STATUS ? CURLE_OK : s->result, err);
}

void http_close(struct reimage_stream *s)
{
	if (s->multi && s->rq.easy)
		curl_multi_remove_handle(s->multi, s->rq.easy);
	http_request_fini(&s->rq);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	free(s);
}

/* A member of the caller's struct reimage_open_opts, if its size holds it. */
#define OPTS_HAS(o, m) \
	((o) && (o)->struct_size >= offsetof(struct reimage_open_opts, m) + sizeof((o)->m))

/* "Accept: a, b, c" from the caller's media types ("" if none). */
static int accept_header(const struct reimage_open_opts *opts, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (!OPTS_HAS(opts, accept) || !opts->accept || !opts->accept[0])
		return 0;
	for (size_t i = 0; opts->accept[i]; i++) {
		int w = snprintf(buf + n, len - n, "%s%s", i ? ", " : "Accept: ", opts->accept[i]);
		if (w < 0 || (size_t)w >= len - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	return 0;
}

static int stream_setup(struct reimage_stream *s, const char *url,
			const struct reimage_open_opts *opts, struct reimage_error *err)
{
	char range[64], accept[1024], if_range[REIMAGE_ETAG_MAX + 16];
	const char *extra[3] = { NULL };
	size_t n_extra = 0;
	CURLcode rc;
	int r;

	if (accept_header(opts, accept, sizeof(accept)) < 0) {
		s->ctx->host->error(err, -EINVAL, REIMAGE_EC_CONFIG, "GET %s: too many media types",
				    url);
		return -EINVAL;
	}
	if (accept[0])
		extra[n_extra++] = accept;
	if (s->want[0] && s->offset) {
		snprintf(if_range, sizeof(if_range), "If-Range: %s", s->want);
		extra[n_extra++] = if_range;
	}
	if ((r = http_request_init(s->ctx, &s->rq, "GET", url, n_extra ? extra : NULL, err)) < 0)
		return r;
	if (s->length)
		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, s->offset,
			 s->offset + s->length - 1);
	else
		snprintf(range, sizeof(range), "%" PRIu64 "-", s->offset);
	rc = curl_easy_setopt(s->rq.easy, CURLOPT_WRITEFUNCTION, stream_write);
	/* This request's own credential replaces the configured one; like
	 * it, libcurl sends it to the first host only, never after a
	 * redirect to another (a registry's storage). */
	if (rc == CURLE_OK && OPTS_HAS(opts, bearer_token) && opts->bearer_token) {
		rc = curl_easy_setopt(s->rq.easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(s->rq.easy, CURLOPT_XOAUTH2_BEARER, opts->bearer_token);
	}
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(s->rq.easy, CURLOPT_WRITEDATA, s);
	if (rc == CURLE_OK && (s->offset || s->length))
		rc = curl_easy_setopt(s->rq.easy, CURLOPT_RANGE, range);
	s->multi = curl_multi_init();
	if (rc != CURLE_OK || !s->multi || curl_multi_add_handle(s->multi, s->rq.easy) != CURLM_OK) {
		s->ctx->host->error(err, -ENOMEM, REIMAGE_EC_IO, "GET %s: cannot set up the transfer",
				    s->rq.shown_url);
		return -ENOMEM;
	}
	return 0;
}

int http_open(void *ctx, const char *url, uint64_t offset, struct reimage_stream **ret_stream,
	      uint64_t *ret_size, struct reimage_error *err)
{
	return http_open_ex(ctx, url, offset, NULL, ret_stream, ret_size, err);
}

static int stream_open(struct http_ctx *c, const char *url, uint64_t offset, uint64_t length,
		       struct reimage_open_opts *opts, struct reimage_stream **ret_stream,
		       uint64_t *ret_size, struct reimage_error *err);

int http_open_ex(void *ctx, const char *url, uint64_t offset, struct reimage_open_opts *opts,
		 struct reimage_stream **ret_stream, uint64_t *ret_size, struct reimage_error *err)
{
	return stream_open(ctx, url, offset, 0, opts, ret_stream, ret_size, err);
}

int http_open_range(void *ctx, const char *url, uint64_t offset, uint64_t length,
		    struct reimage_stream **ret_stream, uint64_t *ret_size,
		    struct reimage_error *err)
{
	struct http_ctx *c = ctx;

	if (!length) {
		c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG, "GET %s: an empty range", url);
		return -EINVAL;
	}
	return stream_open(c, url, offset, length, NULL, ret_stream, ret_size, err);
}

static int stream_open(struct http_ctx *c, const char *url, uint64_t offset, uint64_t length,
		       struct reimage_open_opts *opts, struct reimage_stream **ret_stream,
		       uint64_t *ret_size, struct reimage_error *err)
{
	struct reimage_stream *s = calloc(1, sizeof(*s));
	int r;

	if (!s) {
		c->host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	s->ctx = c;
	s->offset = offset;
	s->length = length;
	s->size = REIMAGE_SIZE_UNKNOWN;
	if (OPTS_HAS(opts, validator))
		snprintf(s->want, sizeof(s->want), "%s", opts->validator);
	if ((r = stream_setup(s, url, opts, err)) < 0) {
		http_close(s);
		return r;
	}
	/* Run until the answer's headers are in: the status and size are
	 * known, and a failure to connect or a refusal is reported here. */
	while (!s->done && !s->begun)
		stream_pump(s);
	if (s->done && s->result == CURLE_OK && !s->begun)
		stream_begin(s);  /* an answer without a body */
	/* A resume exactly at the end is refused with 416 yet is no failure:
	 * stream_at_end() turns it into an empty stream. */
	if ((s->refusal != REFUSED_NONE && !stream_at_end(s)) || (s->done && s->result != CURLE_OK)) {
		r = stream_fail(s, err);
		http_close(s);
		return r;
	}
	if (OPTS_HAS(opts, content_type)) {
		char *type = NULL;
		curl_easy_getinfo(s->rq.easy, CURLINFO_CONTENT_TYPE, &type);
		snprintf(opts->content_type, sizeof(opts->content_type), "%s", type ? type : "");
	}
	if (OPTS_HAS(opts, validator))
		snprintf(opts->validator, sizeof(opts->validator), "%s", s->got);
	*ret_size = s->size;
	*ret_stream = s;
	return 0;
}

ssize_t http_read(struct reimage_stream *s, void *buf, size_t len, struct reimage_error *err)
{
	size_t n;

	while (s->start == s->end) {
		if (s->done)
			return s->result == CURLE_OK ? 0 : stream_fail(s, err);
		if (s->paused) {
			CURLcode rc;

			/* The callback may run inside the unpause and refill. */
			s->paused = 0;
			if ((rc = curl_easy_pause(s->rq.easy, CURLPAUSE_CONT)) != CURLE_OK) {
				s->done = 1;
				s->result = rc;
			}
			continue;
		}
		stream_pump(s);
	}
	n = s->end - s->start < len ? s->end - s->start : len;
	memcpy(buf, s->buf + s->start, n);
	s->start += n;
	return (ssize_t)n;
}
