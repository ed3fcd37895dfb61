/*
 * http.c -- the transport-http plugin: http and https over libcurl.
 *
 * This half holds the plugin's settings (read once in init(), files
 * included, so no request needs a file of the root after the swap), the
 * setup every request shares (TLS verification always on, redirects kept
 * on the same protocol or upgraded, proxies only from the configuration),
 * the mapping of libcurl and HTTP failures to reimage's neutral classes,
 * and the small-document hooks the job store and the reports use: fetch
 * (with validators and a size cap), put and remove.  The image stream is
 * in stream.c.
 */
#define _GNU_SOURCE
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Indices into the values init() receives: the order of http_options. */
enum {
	OPT_CA_FILE,
	OPT_PINNED_KEY,
	OPT_CLIENT_CERT,
	OPT_CLIENT_KEY,
	OPT_PROXY,
	OPT_CONNECT_TIMEOUT,
	OPT_LOW_SPEED_LIMIT,
	OPT_LOW_SPEED_TIME,
	OPT_MAX_BANDWIDTH,
	OPT_HEADERS,
	OPT_BEARER_TOKEN_FILE,
	OPT_USER_AGENT,
	OPT_S3,  /* the s3_* settings, in s3.h's order */
};

static const struct reimage_option http_options[] = {
	[OPT_CA_FILE] = { "ca_file", REIMAGE_OPT_STRING, NULL, 0, 0,
		"PEM file of the CAs trusted for https, instead of the system's (read at start)" },
	[OPT_PINNED_KEY] = { "pinned_public_key", REIMAGE_OPT_STRING, NULL, 0, 0,
		"accept only servers whose public key hashes to this: \"sha256//BASE64[;sha256//...]\"" },
	[OPT_CLIENT_CERT] = { "client_cert", REIMAGE_OPT_STRING, NULL, 0, 0,
		"PEM client certificate for mutual TLS (read at start; needs client_key)" },
	[OPT_CLIENT_KEY] = { "client_key", REIMAGE_OPT_STRING, NULL, 0, 0,
		"PEM private key of client_cert, unencrypted (read at start)" },
	[OPT_PROXY] = { "proxy", REIMAGE_OPT_STRING, NULL, 0, 0,
		"proxy URL; the environment's http_proxy and the like are ignored" },
	[OPT_CONNECT_TIMEOUT] = { "connect_timeout", REIMAGE_OPT_INT, "30", 1, 3600,
		"seconds allowed to connect (TCP and TLS handshake)" },
	[OPT_LOW_SPEED_LIMIT] = { "low_speed_limit", REIMAGE_OPT_INT, "1", 1, 1LL << 40,
		"bytes per second under which a transfer counts as stalled" },
	[OPT_LOW_SPEED_TIME] = { "low_speed_time", REIMAGE_OPT_INT, "60", 1, 86400,
		"seconds a transfer may stay under low_speed_limit before it is abandoned (retryable)" },
	[OPT_MAX_BANDWIDTH] = { "max_bandwidth", REIMAGE_OPT_INT, "0", 0, 1LL << 40,
		"download rate limit in bytes per second, 0 for none" },
	[OPT_HEADERS] = { "headers", REIMAGE_OPT_STRINGS, "", 0, 0,
		"extra request headers, each \"Name: value\"" },
	[OPT_BEARER_TOKEN_FILE] = { "bearer_token_file", REIMAGE_OPT_STRING, NULL, 0, 0,
		"file holding a bearer token sent as Authorization (read at start, never logged)" },
	[OPT_USER_AGENT] = { "user_agent", REIMAGE_OPT_STRING, "reimage", 0, 0,
		"User-Agent header" },
	[OPT_S3 + S3_OPT_ENDPOINT] = { "s3_endpoint", REIMAGE_OPT_STRING, NULL, 0, 0,
		"s3:// URLs: the service, \"https://HOST[:PORT]\" (default: AWS S3 in s3_region)" },
	[OPT_S3 + S3_OPT_REGION] = { "s3_region", REIMAGE_OPT_STRING, "us-east-1", 0, 0,
		"s3:// URLs: the region requests are signed for" },
	[OPT_S3 + S3_OPT_ACCESS_KEY_ID] = { "s3_access_key_id", REIMAGE_OPT_STRING, NULL, 0, 0,
		"s3:// URLs: the access key id requests are signed with (none: unsigned requests)" },
	[OPT_S3 + S3_OPT_SECRET_KEY_FILE] = { "s3_secret_key_file", REIMAGE_OPT_STRING, NULL, 0, 0,
		"s3:// URLs: file holding the secret access key (read at start, never logged)" },
	[OPT_S3 + S3_OPT_ADDRESSING] = { "s3_addressing", REIMAGE_OPT_STRING, "auto", 0, 0,
		"s3:// URLs: \"path\" (HOST/BUCKET/KEY), \"virtual\" (BUCKET.HOST/KEY) or \"auto\" "
		"(virtual for AWS, path for an s3_endpoint)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

/* Certificates, keys and tokens are small; a bigger file is a mistake. */
#define SETTING_FILE_MAX (1024 * 1024)

/* ------------------------------------------------------------ settings */

int http_bad_setting(const struct http_ctx *c, const struct reimage_optval *v,
		     const char *name, int code, struct reimage_error *err,
		     const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (v->file)
		c->host->error(err, code, REIMAGE_EC_CONFIG, "%s:%d: setting '%s': %s",
			       v->file, v->line, name, what);
	else
		c->host->error(err, code, REIMAGE_EC_CONFIG, "setting '%s': %s", name, what);
	return code;
}

int http_setting_file(const struct http_ctx *c, const struct reimage_optval *v,
			     const char *name, struct curl_blob *blob, struct reimage_error *err)
{
	unsigned char *data;
	const char *problem;
	size_t len;
	FILE *f;

	if (!v->set)
		return 0;
	f = fopen(v->s, "re");
	if (!f) {
		int e = errno;
		return http_bad_setting(c, v, name, -e, err, "cannot read '%s': %s", v->s, strerror(e));
	}
	data = malloc(SETTING_FILE_MAX + 1);
	if (!data) {
		fclose(f);
		return http_bad_setting(c, v, name, -ENOMEM, err, "out of memory");
	}
	len = fread(data, 1, SETTING_FILE_MAX + 1, f);
	problem = ferror(f) ? "read error" : len == 0 ? "empty file"
		: len > SETTING_FILE_MAX ? "larger than 1 MiB" : NULL;
	fclose(f);
	if (problem) {
		free(data);
		return http_bad_setting(c, v, name, -EINVAL, err, "cannot read '%s': %s", v->s, problem);
	}
	data[len] = '\0';
	blob->data = data;
	blob->len = len;
	blob->flags = CURL_BLOB_NOCOPY;
	return 0;
}

int http_setting_secret(const struct http_ctx *c, const struct reimage_optval *v,
			const char *name, char **ret, struct reimage_error *err)
{
	struct curl_blob blob = { 0 };
	char *secret;
	size_t len;
	int r;

	if ((r = http_setting_file(c, v, name, &blob, err)) < 0 || !v->set)
		return r;
	secret = blob.data;
	len = blob.len;
	while (len > 0 && isspace((unsigned char)secret[len - 1]))
		secret[--len] = '\0';
	*ret = secret;
	for (size_t i = 0; i < len; i++)
		if (!isgraph((unsigned char)secret[i]))
			/* The secret itself stays out of the message. */
			return http_bad_setting(c, v, name, -EINVAL, err,
						"'%s' must hold one token on one line", v->s);
	if (len == 0)
		return http_bad_setting(c, v, name, -EINVAL, err, "'%s' is empty", v->s);
	return 0;
}

static int read_headers(struct http_ctx *c, const struct reimage_optval *v,
			struct reimage_error *err)
{
	for (size_t i = 0; i < v->n; i++) {
		const char *h = v->list[i], *colon = strchr(h, ':');
		struct curl_slist *grown;

		if (!colon || colon == h || strpbrk(h, "\r\n") || strcspn(h, " \t") < (size_t)(colon - h))
			return http_bad_setting(c, v, "headers", -EINVAL, err,
					   "'%s' is not a header line \"Name: value\"", h);
		grown = curl_slist_append(c->headers, h);
		if (!grown)
			return http_bad_setting(c, v, "headers", -ENOMEM, err, "out of memory");
		c->headers = grown;
	}
	return 0;
}

static int copy_string(const struct http_ctx *c, const struct reimage_optval *v,
		       const char *name, const char *fallback, char **ret,
		       struct reimage_error *err)
{
	const char *s = v->set ? v->s : fallback;

	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : http_bad_setting(c, v, name, -ENOMEM, err, "out of memory");
}

static int read_settings(struct http_ctx *c, const struct reimage_optval *v,
			 struct reimage_error *err)
{
	int r;

	if (v[OPT_CLIENT_CERT].set != v[OPT_CLIENT_KEY].set)
		return http_bad_setting(c, &v[v[OPT_CLIENT_CERT].set ? OPT_CLIENT_CERT : OPT_CLIENT_KEY],
				   v[OPT_CLIENT_CERT].set ? "client_cert" : "client_key", -EINVAL,
				   err, "client_cert and client_key are given together");
	if (v[OPT_PINNED_KEY].set && strncmp(v[OPT_PINNED_KEY].s, "sha256//", 8) != 0)
		return http_bad_setting(c, &v[OPT_PINNED_KEY], "pinned_public_key", -EINVAL, err,
				   "expected \"sha256//BASE64\" (openssl pkey -pubin -outform der | "
				   "openssl dgst -sha256 -binary | base64)");
	if ((r = http_setting_file(c, &v[OPT_CA_FILE], "ca_file", &c->ca, err)) < 0 ||
	    (r = http_setting_file(c, &v[OPT_CLIENT_CERT], "client_cert", &c->client_cert, err)) < 0 ||
	    (r = http_setting_file(c, &v[OPT_CLIENT_KEY], "client_key", &c->client_key, err)) < 0 ||
	    (r = http_setting_secret(c, &v[OPT_BEARER_TOKEN_FILE], "bearer_token_file", &c->bearer,
				     err)) < 0 ||
	    (r = read_headers(c, &v[OPT_HEADERS], err)) < 0 ||
	    /* An empty proxy string tells libcurl to ignore http_proxy & co:
	     * the agent's configuration is the one place that routes it. */
	    (r = copy_string(c, &v[OPT_PROXY], "proxy", "", &c->proxy, err)) < 0 ||
	    (r = copy_string(c, &v[OPT_USER_AGENT], "user_agent", NULL, &c->user_agent, err)) < 0 ||
	    (r = copy_string(c, &v[OPT_PINNED_KEY], "pinned_public_key", NULL, &c->pinned_key, err)) < 0 ||
	    (r = s3_read_settings(c, &v[OPT_S3], err)) < 0)
		return r;
	c->connect_timeout = (long)v[OPT_CONNECT_TIMEOUT].i;
	c->low_speed_limit = (long)v[OPT_LOW_SPEED_LIMIT].i;
	c->low_speed_time = (long)v[OPT_LOW_SPEED_TIME].i;
	c->max_bandwidth = (curl_off_t)v[OPT_MAX_BANDWIDTH].i;
	return 0;
}

static void free_secret(void *data, size_t len)
{
	if (data)
		explicit_bzero(data, len);
	free(data);
}

static void http_fini(void *ctx)
{
	struct http_ctx *c = ctx;

	if (c->share)
		curl_share_cleanup(c->share);
	curl_slist_free_all(c->headers);
	free(c->proxy);
	free(c->user_agent);
	free(c->pinned_key);
	free_secret(c->bearer, c->bearer ? strlen(c->bearer) : 0);
	free(c->ca.data);
	free(c->client_cert.data);
	free_secret(c->client_key.data, c->client_key.len);
	s3_free_settings(&c->s3);
	free(c);
	curl_global_cleanup();
}

static int http_init(const struct reimage_host *host, const struct reimage_optval *values,
		     void **ret_ctx, struct reimage_error *err)
{
	struct http_ctx *c;
	int r;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "libcurl failed to initialise");
		return -ENOMEM;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		curl_global_cleanup();
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	c->host = host;
	if ((r = read_settings(c, values, err)) < 0) {
		http_fini(c);
		return r;
	}
	/* Requests share name lookups, TLS sessions and open connections: a
	 * resumed download or the next report reuses them.  The core calls
	 * one plugin from one thread at a time (its transport lock), so no
	 * locks are needed. */
	c->share = curl_share_init();
	if (!c->share ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
		http_fini(c);
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "libcurl: cannot set up a share handle");
		return -ENOMEM;
	}
	*ret_ctx = c;
	return 0;
}

/* ------------------------------------------------------------- requests */

/* The URL as messages show it: no user or password, no query (presigned
 * URLs carry their credentials there), no fragment. */
static void shown_url(const char *url, char *out, size_t len)
{
	const char *sep = strstr(url, "://");
	const char *authority = sep ? sep + 3 : url;
	size_t authority_len = strcspn(authority, "/?#");
	const char *at = memrchr(authority, '@', authority_len);
	const char *rest = at ? at + 1 : authority;
	size_t rest_len = strcspn(rest, "?#");

	snprintf(out, len, "%.*s%.*s%s", (int)(authority - url), url, (int)rest_len, rest,
		 rest[rest_len] == '?' ? "?..." : "");
}

static int request_headers(const struct http_ctx *c, struct http_request *rq,
			   const char *const *extra)
{
	for (const struct curl_slist *h = c->headers; h; h = h->next) {
		struct curl_slist *grown = curl_slist_append(rq->headers, h->data);
		if (!grown)
			return -ENOMEM;
		rq->headers = grown;
	}
	for (size_t i = 0; extra && extra[i]; i++) {
		struct curl_slist *grown = curl_slist_append(rq->headers, extra[i]);
		if (!grown)
			return -ENOMEM;
		rq->headers = grown;
	}
	return 0;
}

int http_stopping(const struct http_ctx *c)
{
	const struct reimage_host *h = c->host;
	return h->struct_size >= offsetof(struct reimage_host, stopping) + sizeof(h->stopping) &&
	       h->stopping && h->stopping();
}

/* libcurl calls this about once a second even while no byte moves: a stop
 * request ends a stalled transfer now, not after low_speed_time. */
static int xferinfo(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		    curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return http_stopping(arg);
}

int http_request_init_body(struct http_ctx *c, struct http_request *rq, const char *method,
			   const char *url, const char *const *extra_headers,
			   const char *payload_sha256, struct reimage_error *err)
{
	CURLcode rc = CURLE_OK;
	char service_url[HTTP_SHOWN_URL_MAX * 8];
	int s3 = s3_is_url(url);

	memset(rq, 0, sizeof(*rq));
	rq->method = method;
	shown_url(url, rq->shown_url, sizeof(rq->shown_url));
	if (s3) {
		int r = s3_service_url(c, url, service_url, sizeof(service_url), err);
		if (r < 0)
			return r;
		url = service_url;
	}
	/* Plain http may be redirected to https, https never down to http. */
	const char *redirects = strncasecmp(url, "https:", 6) == 0 ? "https" : "http,https";
	rq->easy = curl_easy_init();
	if (!rq->easy || request_headers(c, rq, extra_headers) < 0) {
		http_request_fini(rq);
		c->host->error(err, -ENOMEM, REIMAGE_EC_IO, "%s %s: out of memory", method,
			       rq->shown_url);
		return -ENOMEM;
	}
/* Apply one option unless an earlier one failed; the first failure is kept. */
#define SET(opt, val) do { if (rc == CURLE_OK) rc = curl_easy_setopt(rq->easy, opt, val); } while (0)
	SET(CURLOPT_ERRORBUFFER, rq->errbuf);
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, redirects);
	/* A signature is for one host and path: S3 is never redirected. */
	SET(CURLOPT_FOLLOWLOCATION, s3 ? 0L : 1L);
	SET(CURLOPT_MAXREDIRS, 5L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SHARE, c->share);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, c->connect_timeout);
	SET(CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
	SET(CURLOPT_LOW_SPEED_TIME, c->low_speed_time);
	SET(CURLOPT_MAX_RECV_SPEED_LARGE, c->max_bandwidth);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_PROXY, c->proxy);
	SET(CURLOPT_HTTPHEADER, rq->headers);
	if (strcmp(method, "GET") == 0) {
		/* Reads end on a stop; PUT and DELETE carry the reports that
		 * say a job stopped, so they run to their own timeouts. */
		SET(CURLOPT_XFERINFOFUNCTION, xferinfo);
		SET(CURLOPT_XFERINFODATA, c);
		SET(CURLOPT_NOPROGRESS, 0L);
	}
	if (c->user_agent)
		SET(CURLOPT_USERAGENT, c->user_agent);
	if (c->ca.data) {
		/* ca_file replaces the system's CAs rather than adding to them. */
		SET(CURLOPT_CAINFO, NULL);
		SET(CURLOPT_CAPATH, NULL);
		SET(CURLOPT_CAINFO_BLOB, &c->ca);
	}
	if (c->client_cert.data) {
		SET(CURLOPT_SSLCERT_BLOB, &c->client_cert);
		SET(CURLOPT_SSLKEY_BLOB, &c->client_key);
	}
	if (c->pinned_key)
		SET(CURLOPT_PINNEDPUBLICKEY, c->pinned_key);
	if (c->bearer) {
		/* Bearer alone is sent on the first request; libcurl keeps it
		 * from hosts a redirect leads to. */
		SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		SET(CURLOPT_XOAUTH2_BEARER, c->bearer);
	}
	if (s3 && rc == CURLE_OK)
		rc = s3_sign(c, rq, payload_sha256);
#undef SET
	if (rc != CURLE_OK) {
		http_request_fini(rq);
		c->host->error(err, -ENOTSUP, REIMAGE_EC_CONFIG, "%s %s: libcurl cannot apply the settings: %s",
			       method, rq->shown_url, curl_easy_strerror(rc));
		return -ENOTSUP;
	}
	return 0;
}

int http_request_init(struct http_ctx *c, struct http_request *rq, const char *method,
		      const char *url, const char *const *extra_headers,
		      struct reimage_error *err)
{
	return http_request_init_body(c, rq, method, url, extra_headers, NULL, err);
}

void http_request_fini(struct http_request *rq)
{
	if (rq->easy)
		curl_easy_cleanup(rq->easy);
	curl_slist_free_all(rq->headers);
	rq->easy = NULL;
	rq->headers = NULL;
}

long http_status(const struct http_request *rq)
{
	long status = 0;

	curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

int http_status_is_success(long status)
{
	return status >= 200 && status < 300;
}

const char *http_header(const struct http_request *rq, const char *name)
{
	struct curl_header *h = NULL;

	if (curl_easy_header(rq->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK)
		return NULL;
	return h->value;
}

/* ---------------------------------------------------------------- errors */

static const struct {
	CURLcode rc;
	enum reimage_errclass cls;
	int code;
} curl_classes[] = {
	{ CURLE_UNSUPPORTED_PROTOCOL, REIMAGE_EC_CONFIG, -EPROTONOSUPPORT },
	{ CURLE_URL_MALFORMAT, REIMAGE_EC_CONFIG, -EINVAL },
	{ CURLE_NOT_BUILT_IN, REIMAGE_EC_CONFIG, -ENOTSUP },
	{ CURLE_BAD_FUNCTION_ARGUMENT, REIMAGE_EC_CONFIG, -EINVAL },
	{ CURLE_UNKNOWN_OPTION, REIMAGE_EC_CONFIG, -EINVAL },
	{ CURLE_TOO_MANY_REDIRECTS, REIMAGE_EC_CONFIG, -ELOOP },
	{ CURLE_COULDNT_RESOLVE_PROXY, REIMAGE_EC_NETWORK, -EHOSTUNREACH },
	{ CURLE_COULDNT_RESOLVE_HOST, REIMAGE_EC_NETWORK, -EHOSTUNREACH },
	{ CURLE_COULDNT_CONNECT, REIMAGE_EC_NETWORK, -ECONNREFUSED },
	{ CURLE_SSL_CONNECT_ERROR, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_PEER_FAILED_VERIFICATION, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_PINNEDPUBKEYNOTMATCH, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_ISSUER_ERROR, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_INVALIDCERTSTATUS, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_CERTPROBLEM, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_CIPHER, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_CACERT_BADFILE, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_CRL_BADFILE, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_SSL_ENGINE_INITFAILED, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_USE_SSL_FAILED, REIMAGE_EC_TLS, -EPROTO },
	{ CURLE_OPERATION_TIMEDOUT, REIMAGE_EC_RETRYABLE, -ETIMEDOUT },
	{ CURLE_PARTIAL_FILE, REIMAGE_EC_RETRYABLE, -ECONNRESET },
	{ CURLE_RECV_ERROR, REIMAGE_EC_RETRYABLE, -ECONNRESET },
	{ CURLE_SEND_ERROR, REIMAGE_EC_RETRYABLE, -ECONNRESET },
	{ CURLE_GOT_NOTHING, REIMAGE_EC_RETRYABLE, -ECONNRESET },
	{ CURLE_HTTP2, REIMAGE_EC_RETRYABLE, -EPROTO },
	{ CURLE_HTTP2_STREAM, REIMAGE_EC_RETRYABLE, -EPROTO },
	{ CURLE_WEIRD_SERVER_REPLY, REIMAGE_EC_RETRYABLE, -EPROTO },
	{ CURLE_LOGIN_DENIED, REIMAGE_EC_ACCESS, -EACCES },
	{ CURLE_AUTH_ERROR, REIMAGE_EC_ACCESS, -EACCES },
	{ CURLE_FILESIZE_EXCEEDED, REIMAGE_EC_INTEGRITY, -EFBIG },
	{ CURLE_OUT_OF_MEMORY, REIMAGE_EC_IO, -ENOMEM },
};

static int status_fail(const struct http_ctx *c, const struct http_request *rq, long status,
		       struct reimage_error *err)
{
	enum reimage_errclass cls;
	int code;

	if (status == 404 || status == 410)
		cls = REIMAGE_EC_NOTFOUND, code = -ENOENT;
	else if (status == 401 || status == 403 || status == 407)
		cls = REIMAGE_EC_ACCESS, code = -EACCES;
	else if (status == 408 || status == 429 || status >= 500)
		cls = REIMAGE_EC_RETRYABLE, code = -EAGAIN;
	else if (status == 416)
		/* The resource is shorter than the offset asked: it changed. */
		cls = REIMAGE_EC_INTEGRITY, code = -ERANGE;
	else
		cls = REIMAGE_EC_CONFIG, code = -EPROTO;
	c->host->error(err, code, cls, "%s %s: HTTP status %ld%s", rq->method, rq->shown_url, status,
		       s3_status_hint(rq->shown_url, status));
	return code;
}

int http_fail(const struct http_ctx *c, const struct http_request *rq, CURLcode rc,
	      struct reimage_error *err)
{
	long status = http_status(rq);
	enum reimage_errclass cls = REIMAGE_EC_NETWORK;
	int code = -EIO;

	/* Once an error status arrived, it says more than whatever ended the
	 * transfer after it (a refused body, a size limit, a timeout). */
	if (rc == CURLE_OK || status >= 400)
		return status_fail(c, rq, status, err);
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		/* Only xferinfo() aborts, and only when asked to stop. */
		c->host->error(err, -ECANCELED, REIMAGE_EC_STATE, "%s %s: stopped on request",
			       rq->method, rq->shown_url);
		return -ECANCELED;
	}
	for (size_t i = 0; i < sizeof(curl_classes) / sizeof(curl_classes[0]); i++)
		if (curl_classes[i].rc == rc) {
			cls = curl_classes[i].cls;
			code = curl_classes[i].code;
			break;
		}
	c->host->error(err, code, cls, "%s %s: %s (curl error %d)", rq->method, rq->shown_url,
		       rq->errbuf[0] ? rq->errbuf : curl_easy_strerror(rc), (int)rc);
	return code;
}

/* ------------------------------------------------------------ documents */

/* Where fetch() puts a body: the caller's buffer, never past cap. */
struct doc_sink {
	const struct http_request *rq;
	char *buf;
	size_t cap, len;
	int over_cap;
};

static size_t doc_write(char *data, size_t size, size_t n, void *userdata)
{
	struct doc_sink *k = userdata;
	size_t len = size * n;

	if (!http_status_is_success(http_status(k->rq)))
		return 0;
	if (len > k->cap - k->len) {
		k->over_cap = 1;
		return 0;
	}
	memcpy(k->buf + k->len, data, len);
	k->len += len;
	return len;
}

/* Answers to put() and remove() carry nothing the caller needs. */
static size_t discard_write(char *data, size_t size, size_t n, void *userdata)
{
	(void)data;
	(void)userdata;
	return size * n;
}

/* An entity tag ("..." or W/"...") goes in If-None-Match; anything else
 * the transport handed out is a Last-Modified date. */
static int is_entity_tag(const char *validator)
{
	return validator[0] == '"' || strncmp(validator, "W/\"", 3) == 0;
}

static void store_validator(const struct http_request *rq, char etag[REIMAGE_ETAG_MAX])
{
	const char *v = http_header(rq, "ETag");

	if (!v)
		v = http_header(rq, "Last-Modified");
	/* One that does not fit would never match: keep none instead. */
	if (!v || strlen(v) >= REIMAGE_ETAG_MAX)
		v = "";
	snprintf(etag, REIMAGE_ETAG_MAX, "%s", v);
}

static int64_t server_date(const struct http_request *rq)
{
	const char *date = http_header(rq, "Date");
	time_t t = date ? curl_getdate(date, NULL) : -1;

	return t < 0 ? 0 : (int64_t)t;
}

/* A GET of a document set up on rq with its body going to sink: no
 * transfer started yet.  Shared by fetch() and fetch_many(). */
static int doc_request(struct http_ctx *c, struct http_request *rq, struct doc_sink *sink,
		       const char *url, const char *const *extra, struct reimage_error *err)
{
	CURLcode rc;
	int r;

	if ((r = http_request_init(c, rq, "GET", url, extra, err)) < 0)
		return r;
	sink->rq = rq;
	sink->len = 0;
	sink->over_cap = 0;
	rc = curl_easy_setopt(rq->easy, CURLOPT_WRITEFUNCTION, doc_write);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(rq->easy, CURLOPT_WRITEDATA, sink);
	if (rc == CURLE_OK)
		/* A declared length over cap is refused before the body. */
		rc = curl_easy_setopt(rq->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)sink->cap);
	if (rc != CURLE_OK) {
		r = http_fail(c, rq, rc, err);
		http_request_fini(rq);
		return r;
	}
	return 0;
}

/* What a finished GET of a document means: 0 (the body in sink), NOT_MODIFIED
 * (asked with etag), or < 0 with err filled. */
static int doc_result(struct http_ctx *c, struct http_request *rq, const struct doc_sink *sink,
		      CURLcode rc, const char *etag, struct reimage_error *err)
{
	long status = http_status(rq);

	if (http_status_is_success(status) && (sink->over_cap || rc == CURLE_FILESIZE_EXCEEDED)) {
		c->host->error(err, -EFBIG, REIMAGE_EC_INTEGRITY, "GET %s: larger than %zu bytes",
			       rq->shown_url, sink->cap);
		return -EFBIG;
	}
	if (rc == CURLE_OK && status == 304 && etag[0])
		return REIMAGE_NOT_MODIFIED;
	if (rc != CURLE_OK || status != 200)
		return http_fail(c, rq, rc, err);
	return 0;
}

int http_fetch(void *ctx, const char *url, void *buf, size_t cap, size_t *ret_len,
	       char etag[REIMAGE_ETAG_MAX], int64_t *ret_date, struct reimage_error *err)
{
	struct http_ctx *c = ctx;
	struct http_request rq;
	struct doc_sink sink = { .buf = buf, .cap = cap };
	char condition[REIMAGE_ETAG_MAX + 32];
	const char *extra[2] = { NULL, NULL };
	int r;

	if (s3_is_listing(url)) {
		etag[0] = '\0';
		return s3_list(c, url, buf, cap, ret_len, err);
	}
	if (etag[0]) {
		snprintf(condition, sizeof(condition), "%s: %s",
			 is_entity_tag(etag) ? "If-None-Match" : "If-Modified-Since", etag);
		extra[0] = condition;
	}
	if ((r = doc_request(c, &rq, &sink, url, extra, err)) < 0)
		return r;
	r = doc_result(c, &rq, &sink, curl_easy_perform(rq.easy), etag, err);
	if (r == 0) {
		store_validator(&rq, etag);
		*ret_len = sink.len;
	}
	if (r >= 0 && ret_date)
		*ret_date = server_date(&rq);
	http_request_fini(&rq);
	return r;
}

/* One request in flight of fetch_many(). */
struct many_slot {
	struct http_request rq;
	struct doc_sink sink;
	size_t i;       /* the URL's index */
	int busy;
};

/* Start urls[i] in slot k; a request that cannot even be set up is done
 * at once. */
static void many_start(struct http_ctx *c, CURLM *multi, struct many_slot *s, size_t i,
		       const char *url,
		       void (*done)(void *, size_t, int, const void *, size_t,
				    const struct reimage_error *),
		       void *arg)
{
	struct reimage_error e = { 0 };
	int r = doc_request(c, &s->rq, &s->sink, url, NULL, &e);

	if (r == 0 && curl_multi_add_handle(multi, s->rq.easy) != CURLM_OK) {
		http_request_fini(&s->rq);
		c->host->error(&e, -ENOMEM, REIMAGE_EC_IO, "GET %s: libcurl cannot add the request",
			       s->rq.shown_url);
		r = -ENOMEM;
	}
	if (r < 0) {
		done(arg, i, r, NULL, 0, &e);
		return;
	}
	s->i = i;
	s->busy = 1;
}

static int http_fetch_many(void *ctx, const char *const *urls, size_t n, size_t cap,
			   unsigned parallel,
			   void (*done)(void *arg, size_t i, int r, const void *buf, size_t len,
					const struct reimage_error *err),
			   void *arg, struct reimage_error *err)
{
	struct http_ctx *c = ctx;
	size_t next = 0, running = 0;
	CURLM *multi = curl_multi_init();
	struct many_slot *slot;

	if (parallel < 1)
		parallel = 1;
	slot = calloc(parallel, sizeof(*slot));
	for (unsigned k = 0; slot && k < parallel; k++)
		if (!(slot[k].sink.buf = malloc(cap)))
			break;
		else
			slot[k].sink.cap = cap;
	if (!multi || !slot || !slot[parallel - 1].sink.buf) {
		for (unsigned k = 0; slot && k < parallel; k++)
			free(slot[k].sink.buf);
		free(slot);
		if (multi)
			curl_multi_cleanup(multi);
		c->host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	/* The connections come from the share (kept for the next batch and
	 * for single requests); at most `parallel` of them at once. */
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)parallel);
	while (next < n || running > 0) {
		for (unsigned k = 0; k < parallel && next < n; k++)
			if (!slot[k].busy) {
				many_start(c, multi, &slot[k], next, urls[next], done, arg);
				next++;
				running += slot[k].busy;
			}
		int still = 0;
		CURLMcode mc = curl_multi_perform(multi, &still);
		if (mc == CURLM_OK && (size_t)still == running)
			mc = curl_multi_poll(multi, NULL, 0, 1000, NULL);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			unsigned k = 0;
			while (k < parallel && !(slot[k].busy && slot[k].rq.easy == m->easy_handle))
				k++;
			if (k == parallel)
				continue;
			struct many_slot *s = &slot[k];
			struct reimage_error e = { 0 };
			CURLcode rc = m->data.result;
			curl_multi_remove_handle(multi, s->rq.easy);
			int r = doc_result(c, &s->rq, &s->sink, rc, "", &e);
			done(arg, s->i, r, s->sink.buf, r == 0 ? s->sink.len : 0, &e);
			http_request_fini(&s->rq);
			s->busy = 0;
			running--;
		}
		if (mc != CURLM_OK) {
			/* The multi handle itself failed: every request not done
			 * yet fails with it. */
			struct reimage_error e = { 0 };
			c->host->error(&e, -EIO, REIMAGE_EC_IO, "libcurl: %s", curl_multi_strerror(mc));
			for (unsigned k = 0; k < parallel; k++)
				if (slot[k].busy) {
					curl_multi_remove_handle(multi, slot[k].rq.easy);
					done(arg, slot[k].i, -EIO, NULL, 0, &e);
					http_request_fini(&slot[k].rq);
					slot[k].busy = 0;
				}
			for (; next < n; next++)
				done(arg, next, -EIO, NULL, 0, &e);
			running = 0;
		}
	}
	for (unsigned k = 0; k < parallel; k++)
		free(slot[k].sink.buf);
	free(slot);
	curl_multi_cleanup(multi);
	return 0;
}

/* What put() sends: the caller's bytes, read by libcurl from memory. */
struct doc_source {
	const char *data;
	size_t len, pos;
};

static size_t source_read(char *out, size_t size, size_t n, void *userdata)
{
	struct doc_source *src = userdata;
	size_t len = size * n;

	if (len > src->len - src->pos)
		len = src->len - src->pos;
	memcpy(out, src->data + src->pos, len);
	src->pos += len;
	return len;
}

/* Run a request whose answer has no body the caller needs. */
static int perform_discarding(struct http_request *rq)
{
	CURLcode rc = curl_easy_setopt(rq->easy, CURLOPT_WRITEFUNCTION, discard_write);

	return rc == CURLE_OK ? curl_easy_perform(rq->easy) : rc;
}

static int http_put(void *ctx, const char *url, const void *data, size_t len,
		    const char *content_type, struct reimage_error *err)
{
	struct http_ctx *c = ctx;
	struct http_request rq;
	struct doc_source src = { .data = data, .len = len };
	char type_header[256];
	/* No "Expect: 100-continue" round trip for a small document; but
	 * libcurl would sign the empty header it does not send, so S3 gets
	 * the round trip (its services answer 100 at once). */
	const char *extra[] = { type_header, s3_is_url(url) ? NULL : "Expect:", NULL };
	CURLcode rc;
	long status;
	int r;

	char digest[65] = "";

	snprintf(type_header, sizeof(type_header), "Content-Type: %s",
		 content_type ? content_type : "application/octet-stream");
	if (s3_is_url(url) && s3_payload_digest(data, len, digest) < 0) {
		c->host->error(err, -EIO, REIMAGE_EC_IO, "PUT %s: cannot hash the document", url);
		return -EIO;
	}
	if ((r = http_request_init_body(c, &rq, "PUT", url, extra, digest, err)) < 0)
		return r;
	rc = curl_easy_setopt(rq.easy, CURLOPT_UPLOAD, 1L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(rq.easy, CURLOPT_READFUNCTION, source_read);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(rq.easy, CURLOPT_READDATA, &src);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(rq.easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	if (rc == CURLE_OK)
		rc = perform_discarding(&rq);
	status = http_status(&rq);
	r = 0;
	if (rc != CURLE_OK || (status != 200 && status != 201 && status != 204))
		r = http_fail(c, &rq, rc, err);
	http_request_fini(&rq);
	return r;
}

static int http_remove(void *ctx, const char *url, struct reimage_error *err)
{
	struct http_ctx *c = ctx;
	struct http_request rq;
	CURLcode rc;
	long status;
	int r;

	if ((r = http_request_init(c, &rq, "DELETE", url, NULL, err)) < 0)
		return r;
	rc = curl_easy_setopt(rq.easy, CURLOPT_CUSTOMREQUEST, "DELETE");
	if (rc == CURLE_OK)
		rc = perform_discarding(&rq);
	status = http_status(&rq);
	r = 0;
	/* A document already gone is what remove() asks for. */
	if (rc != CURLE_OK ||
	    (!http_status_is_success(status) && status != 404 && status != 410))
		r = http_fail(c, &rq, rc, err);
	http_request_fini(&rq);
	return r;
}

/* ---------------------------------------------------------------- entry */

static const char *const http_schemes[] = { "http", "https", "s3", NULL };

static const struct reimage_transport_ops http_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_transport_ops),
	.name = "transport-http",
	.caps = REIMAGE_TCAP_RESUME | REIMAGE_TCAP_PUT | REIMAGE_TCAP_ETAG,
	.schemes = http_schemes,
	.options = http_options,
	.init = http_init,
	.fini = http_fini,
	.open = http_open,
	.read = http_read,
	.close = http_close,
	.fetch = http_fetch,
	.put = http_put,
	.remove = http_remove,
	.open_ex = http_open_ex,
	.open_range = http_open_range,
	.fetch_many = http_fetch_many,
};

REIMAGE_PLUGIN(transport_http, TRANSPORT, transport, http_ops)
