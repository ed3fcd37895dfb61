/*
 * s3.h -- S3-compatible object stores (AWS S3, Ceph's RADOS Gateway,
 * MinIO, ...) behind s3://BUCKET/KEY URLs: the settings that say where and
 * as whom, the mapping of an s3 URL to the service's https URL, AWS
 * Signature Version 4 on every request (libcurl computes it), and bucket
 * listings turned into the index the job store reads from other servers.
 */
#ifndef REIMAGE_S3_H
#define REIMAGE_S3_H

#include <stddef.h>
#include <stdint.h>

struct http_ctx;
struct http_request;
struct reimage_error;
struct reimage_optval;

/* The settings of s3 stores, read in init(). */
struct s3_settings {
	char *endpoint;       /* "https://s3.REGION.amazonaws.com" unless set */
	char *region;
	char *access_key_id;  /* NULL: requests go unsigned (a public bucket) */
	char *secret;         /* a secret: never logged, wiped at fini */
	int virtual_hosted;   /* BUCKET.HOST/KEY rather than HOST/BUCKET/KEY */
};

/* The s3_* settings, in this order among the plugin's options. */
enum {
	S3_OPT_ENDPOINT,
	S3_OPT_REGION,
	S3_OPT_ACCESS_KEY_ID,
	S3_OPT_SECRET_KEY_FILE,
	S3_OPT_ADDRESSING,
	S3_OPT_COUNT
};

/* Read the s3_* settings: v points at the first of them. */
int s3_read_settings(struct http_ctx *c, const struct reimage_optval *v,
		     struct reimage_error *err);
void s3_free_settings(struct s3_settings *s);

/* 1 if url is an s3:// URL. */
int s3_is_url(const char *url);

/* The service's URL for the s3 URL (query kept), or -EINVAL with err
 * naming the URL. */
int s3_service_url(const struct http_ctx *c, const char *url, char *out, size_t len,
		   struct reimage_error *err);

/* Sign rq (set up by http_request_init() for its service URL) with the
 * configured key; payload_sha256 is the hex digest of the body ("" or
 * NULL for none).  Returns a libcurl result. */
int s3_sign(const struct http_ctx *c, struct http_request *rq, const char *payload_sha256);

/* What an error status means for an s3 URL ("" for others): S3 says why
 * only in a body the transport does not read. */
const char *s3_status_hint(const char *url, long status);

/* The hex SHA-256 of data, for the header that signs a PUT's body. */
int s3_payload_digest(const void *data, size_t len, char hex[65]);

/* fetch() of an s3 URL whose key is empty or ends in '/': the objects and
 * common prefixes under it, page after page, as the JSON index nginx's
 * autoindex_format json gives ([{"name": N, "type": "file"|"directory"}],
 * names relative to the prefix), at most cap bytes. */
int s3_list(struct http_ctx *c, const char *url, void *buf, size_t cap, size_t *ret_len,
	    struct reimage_error *err);
/* 1 if url asks for such a listing. */
int s3_is_listing(const char *url);

#endif
