/*
 * http.h -- what the two halves of transport-http share: the plugin's
 * settings (http.c reads them once in init()), one request's libcurl
 * handle set up from them, and the mapping of libcurl and HTTP failures to
 * reimage's neutral error classes.  stream.c builds the image stream on
 * top of these.
 */
#ifndef REIMAGE_HTTP_H
#define REIMAGE_HTTP_H

#include "s3.h"

#include <curl/curl.h>
#include <reimage/plugin.h>

/* The settings of one configured plugin, read and checked in init(). */
struct http_ctx {
	const struct reimage_host *host;
	CURLSH *share;                 /* DNS, TLS sessions and connections */
	struct curl_slist *headers;    /* the `headers` setting, sent with every request */
	char *proxy;                   /* "" disables the environment's proxies */
	char *user_agent;
	char *pinned_key;              /* "sha256//...", or NULL */
	char *bearer;                  /* a secret: never logged, wiped at fini */
	/* Files read in init(), so that no request needs a file of the root
	 * once the swap has moved the running image aside. */
	struct curl_blob ca, client_cert, client_key;
	long connect_timeout;
	long low_speed_limit, low_speed_time;
	curl_off_t max_bandwidth;      /* 0: unlimited */
	struct s3_settings s3;         /* s3:// URLs */
};

/* A setting's error, naming its file and line when it has them. */
int http_bad_setting(const struct http_ctx *c, const struct reimage_optval *v,
		     const char *name, int code, struct reimage_error *err,
		     const char *fmt, ...) REIMAGE_PRINTF(6, 7);
/* Read the file a setting names into blob (NUL-terminated); nothing if
 * the setting is not set. */
int http_setting_file(const struct http_ctx *c, const struct reimage_optval *v,
		      const char *name, struct curl_blob *blob, struct reimage_error *err);
/* A secret (a token, a key) read from the file a setting names: one
 * line, a trailing newline dropped; *ret is malloc'ed, to be wiped. */
int http_setting_secret(const struct http_ctx *c, const struct reimage_optval *v,
			const char *name, char **ret, struct reimage_error *err);

/* Longest URL shown in a message (credentials removed, query elided). */
#define HTTP_SHOWN_URL_MAX 512

/* One request: its handle, headers and the names its errors use. */
struct http_request {
	CURL *easy;
	struct curl_slist *headers;  /* owned: the custom headers plus this request's own */
	const char *method;
	char shown_url[HTTP_SHOWN_URL_MAX];
	char errbuf[CURL_ERROR_SIZE];
};

/*
 * Set up rq for method on url with every setting of c applied and the
 * NULL-terminated extra header lines (may be NULL) added; an s3:// URL is
 * sent to its service, signed (a body's hex SHA-256 in payload_sha256,
 * else NULL).  The caller sets the callbacks of its own transfer.  On
 * failure rq needs no fini.
 */
int http_request_init_body(struct http_ctx *c, struct http_request *rq, const char *method,
			   const char *url, const char *const *extra_headers,
			   const char *payload_sha256, struct reimage_error *err);
/* The same for a request without a body. */
int http_request_init(struct http_ctx *c, struct http_request *rq, const char *method,
		      const char *url, const char *const *extra_headers,
		      struct reimage_error *err);
void http_request_fini(struct http_request *rq);

/* The answer's HTTP status, 0 if none arrived. */
long http_status(const struct http_request *rq);
/* 1 for 2xx: write callbacks refuse the bodies of other answers. */
int http_status_is_success(long status);

/*
 * Record the failure of rq: rc is libcurl's result; with CURLE_OK, or
 * once an error status (400 and up) arrived, the status decides the class.
 * Returns the negative code recorded.
 */
/* 1 once the host was asked to stop (reimage_host.stopping). */
int http_stopping(const struct http_ctx *c);
int http_fail(const struct http_ctx *c, const struct http_request *rq, CURLcode rc,
	      struct reimage_error *err);

/* A response header's value of the last answer, NULL if absent. */
const char *http_header(const struct http_request *rq, const char *name);

/* The fetch hook: a small document, with validators (see plugin.h). */
int http_fetch(void *ctx, const char *url, void *buf, size_t cap, size_t *ret_len,
	       char etag[REIMAGE_ETAG_MAX], int64_t *ret_date, struct reimage_error *err);

/* The image stream (stream.c): the open, open_ex, open_range, read and
 * close hooks. */
int http_open(void *ctx, const char *url, uint64_t offset, struct reimage_stream **ret_stream,
	      uint64_t *ret_size, struct reimage_error *err);
int http_open_ex(void *ctx, const char *url, uint64_t offset, struct reimage_open_opts *opts,
		 struct reimage_stream **ret_stream, uint64_t *ret_size, struct reimage_error *err);
int http_open_range(void *ctx, const char *url, uint64_t offset, uint64_t length,
		    struct reimage_stream **ret_stream, uint64_t *ret_size,
		    struct reimage_error *err);
ssize_t http_read(struct reimage_stream *s, void *buf, size_t len, struct reimage_error *err);
void http_close(struct reimage_stream *s);

#endif
