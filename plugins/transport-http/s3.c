/*
 * s3.c -- see s3.h.  libcurl signs (CURLOPT_AWS_SIGV4); this file says
 * what to sign with, where an s3 URL lives, and reads bucket listings
 * (ListObjectsV2, XML) with libxml2.
 */
#define _GNU_SOURCE
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A listing page is at most 1,000 keys: well under this. */
#define LIST_PAGE_MAX (4u << 20)
/* Pages of one listing: 1,000,000 keys. */
#define LIST_PAGES_MAX 1000

int s3_is_url(const char *url)
{
	return strncasecmp(url, "s3://", 5) == 0;
}

/* The bucket and key of an s3 URL: s3://BUCKET/KEY[?QUERY]. */
static int split(const char *url, const char **bucket, size_t *bucket_len, const char **key)
{
	const char *b = url + 5;
	size_t n = strcspn(b, "/?#");

	/* Bucket names: 3 to 63 lower-case letters, digits, dots, hyphens. */
	if (n < 3 || n > 63 || b[n] == '#')
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)b[i]) && !isdigit((unsigned char)b[i]) && b[i] != '.' &&
		    b[i] != '-')
			return -EINVAL;
	*bucket = b;
	*bucket_len = n;
	*key = b[n] == '/' ? b + n + 1 : b + n;
	/* libcurl would resolve "." and ".." segments, and a key could then
	 * name another bucket's object. */
	for (const char *seg = *key; *seg && *seg != '?';) {
		size_t sl = strcspn(seg, "/?");
		if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
			return -EINVAL;
		seg += sl + (seg[sl] == '/');
	}
	return 0;
}

int s3_is_listing(const char *url)
{
	const char *bucket, *key;
	size_t bl, kl;

	if (!s3_is_url(url) || strpbrk(url, "?#") || split(url, &bucket, &bl, &key) < 0)
		return 0;
	kl = strlen(key);
	return kl == 0 || key[kl - 1] == '/';
}

int s3_service_url(const struct http_ctx *c, const char *url, char *out, size_t len,
		   struct reimage_error *err)
{
	const struct s3_settings *s = &c->s3;
	const char *bucket, *key, *host;
	size_t bl;
	int n;

	if (split(url, &bucket, &bl, &key) < 0) {
		c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG, "URL '%s': expected s3://BUCKET/KEY "
			       "(a bucket name of 3 to 63 characters a-z, 0-9, '.' and '-'; no '.' or "
			       "'..' in the key)", url);
		return -EINVAL;
	}
	host = strstr(s->endpoint, "://") + 3;
	if (s->virtual_hosted)
		n = snprintf(out, len, "%.*s%.*s.%s/%s", (int)(host - s->endpoint), s->endpoint,
			     (int)bl, bucket, host, key);
	else
		n = snprintf(out, len, "%s/%.*s/%s", s->endpoint, (int)bl, bucket, key);
	if (n < 0 || (size_t)n >= len) {
		c->host->error(err, -ENAMETOOLONG, REIMAGE_EC_CONFIG, "URL '%s': too long", url);
		return -ENAMETOOLONG;
	}
	return 0;
}

int s3_payload_digest(const void *data, size_t len, char hex[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != sizeof(md))
		return -EIO;
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int s3_sign(const struct http_ctx *c, struct http_request *rq, const char *payload_sha256)
{
	static const char empty_sha256[] =
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	const struct s3_settings *s = &c->s3;
	char provider[128], header[128];
	struct curl_slist *grown;
	CURLcode rc;

	if (!s->access_key_id)
		return CURLE_OK;
	/* S3 wants the body's digest in a header, and libcurl signs that
	 * value as the payload's: its own only covers POST bodies. */
	snprintf(header, sizeof(header), "x-amz-content-sha256: %s",
		 payload_sha256 && *payload_sha256 ? payload_sha256 : empty_sha256);
	if (!(grown = curl_slist_append(rq->headers, header)))
		return CURLE_OUT_OF_MEMORY;
	rq->headers = grown;
	snprintf(provider, sizeof(provider), "aws:amz:%s:s3", s->region);
	rc = curl_easy_setopt(rq->easy, CURLOPT_HTTPHEADER, rq->headers);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(rq->easy, CURLOPT_AWS_SIGV4, provider);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(rq->easy, CURLOPT_USERNAME, s->access_key_id);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(rq->easy, CURLOPT_PASSWORD, s->secret);
	return rc;
}

const char *s3_status_hint(const char *url, long status)
{
	if (!s3_is_url(url))
		return "";
	if (status == 401 || status == 403)
		return " (S3 refused the request: check s3_access_key_id, the secret key, s3_region, "
		       "the bucket's policy and this machine's clock)";
	if (status == 301 || status == 307 || status == 400)
		return " (S3: is the bucket in another region, or does it need s3_addressing "
		       "\"virtual\"? check s3_region, s3_endpoint and s3_addressing)";
	return "";
}

/* ------------------------------------------------------------- settings */

int s3_read_settings(struct http_ctx *c, const struct reimage_optval *v,
		     struct reimage_error *err)
{
	const struct reimage_optval *endpoint = &v[S3_OPT_ENDPOINT], *region = &v[S3_OPT_REGION];
	const struct reimage_optval *key = &v[S3_OPT_ACCESS_KEY_ID];
	const struct reimage_optval *secret = &v[S3_OPT_SECRET_KEY_FILE];
	const struct reimage_optval *addressing = &v[S3_OPT_ADDRESSING];
	struct s3_settings *s = &c->s3;
	int r;

	if (key->set != secret->set)
		return http_bad_setting(c, key->set ? key : secret,
					key->set ? "s3_access_key_id" : "s3_secret_key_file", -EINVAL,
					err, "s3_access_key_id and s3_secret_key_file are given together");
	for (const char *p = region->s; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-')
			return http_bad_setting(c, region, "s3_region", -EINVAL, err,
						"'%s' is not a region name (e.g. \"eu-west-1\")",
						region->s);
	if (endpoint->set) {
		const char *e = endpoint->s;
		size_t len = strlen(e);
		if ((strncmp(e, "https://", 8) && strncmp(e, "http://", 7)) ||
		    strpbrk(strstr(e, "://") + 3, "/?#@") || len <= strlen("http://"))
			return http_bad_setting(c, endpoint, "s3_endpoint", -EINVAL, err,
						"expected \"https://HOST[:PORT]\" (no path)");
		s->endpoint = strdup(e);
	} else if (asprintf(&s->endpoint, "https://s3.%s.amazonaws.com", region->s) < 0) {
		s->endpoint = NULL;
	}
	s->region = strdup(region->s);
	if (!s->endpoint || !s->region || (key->set && !(s->access_key_id = strdup(key->s))))
		return http_bad_setting(c, region, "s3_region", -ENOMEM, err, "out of memory");
	if ((r = http_setting_secret(c, secret, "s3_secret_key_file", &s->secret, err)) < 0)
		return r;
	/* AWS wants BUCKET.s3.REGION.amazonaws.com for new buckets; other
	 * services are usually reached at one host, the bucket in the path. */
	if (!strcmp(addressing->s, "auto"))
		s->virtual_hosted = !endpoint->set;
	else if (!strcmp(addressing->s, "virtual"))
		s->virtual_hosted = 1;
	else if (!strcmp(addressing->s, "path"))
		s->virtual_hosted = 0;
	else
		return http_bad_setting(c, addressing, "s3_addressing", -EINVAL, err,
					"expected \"auto\", \"path\" or \"virtual\"");
	return 0;
}

void s3_free_settings(struct s3_settings *s)
{
	free(s->endpoint);
	free(s->region);
	free(s->access_key_id);
	if (s->secret)
		explicit_bzero(s->secret, strlen(s->secret));
	free(s->secret);
	memset(s, 0, sizeof(*s));
}

/* -------------------------------------------------------------- listing */

/* Percent-encode all but A-Z a-z 0-9 - _ . ~, as SigV4's canonical query
 * wants (libcurl signs the query as it is given). */
static int query_encode(char *out, size_t len, const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			if (k + 1 >= len)
				return -ENAMETOOLONG;
			out[k++] = (char)ch;
		} else {
			if (k + 3 >= len)
				return -ENAMETOOLONG;
			snprintf(out + k, 4, "%%%02X", ch);
			k += 3;
		}
	}
	out[k] = '\0';
	return 0;
}

static int is_element(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

/* The text of n's child element name, or NULL (free with xmlFree). */
static xmlChar *child_text(const xmlNode *n, const char *name)
{
	for (const xmlNode *k = n->children; k; k = k->next)
		if (is_element(k, name))
			return xmlNodeGetContent(k);
	return NULL;
}

/* One page of ListObjectsV2 into entries; *next: its continuation token
 * (malloc'ed) or NULL on the last page. */
static int parse_page(const char *xml, size_t len, const char *prefix, json_t *entries,
		      char **next)
{
	xmlDoc *doc = xmlReadMemory(xml, (int)len, "listing.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOWARNING |
				    XML_PARSE_NOERROR);
	xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
	size_t prefix_len = strlen(prefix);
	int truncated = 0, r = 0;

	*next = NULL;
	/* S3 sends no DTD: one here could only declare entities to expand. */
	if (!root || doc->intSubset || doc->extSubset || !is_element(root, "ListBucketResult")) {
		xmlFreeDoc(doc);
		return -EBADMSG;
	}
	for (const xmlNode *n = root->children; n && r == 0; n = n->next) {
		const char *type = is_element(n, "Contents") ? "file"
				 : is_element(n, "CommonPrefixes") ? "directory" : NULL;
		xmlChar *text = NULL;
		if (type) {
			text = child_text(n, type[0] == 'f' ? "Key" : "Prefix");
			const char *name = (const char *)text;
			size_t nl = name ? strlen(name) : 0;
			if (name && type[0] == 'd' && nl > 0 && name[nl - 1] == '/')
				nl--;
			/* Only what lies right under the prefix, named from
			 * there: the service may not slip in other keys. */
			if (name && nl > prefix_len && !strncmp(name, prefix, prefix_len) &&
			    !memchr(name + prefix_len, '/', nl - prefix_len)) {
				json_t *e = json_pack("{s:s%,s:s}", "name", name + prefix_len,
						      nl - prefix_len, "type", type);
				if (!e || json_array_append_new(entries, e) < 0)
					r = -ENOMEM;
			}
		} else if (is_element(n, "IsTruncated")) {
			text = xmlNodeGetContent(n);
			truncated = text && !strcmp((const char *)text, "true");
		} else if (is_element(n, "NextContinuationToken")) {
			text = xmlNodeGetContent(n);
			free(*next);
			*next = text ? strdup((const char *)text) : NULL;
		}
		xmlFree(text);
	}
	xmlFreeDoc(doc);
	if (r == 0 && truncated && !*next)
		r = -EBADMSG;  /* more pages, and no way to ask for them */
	if (!truncated || r < 0) {
		free(*next);
		*next = NULL;
	}
	return r;
}

int s3_list(struct http_ctx *c, const char *url, void *buf, size_t cap, size_t *ret_len,
	    struct reimage_error *err)
{
	const char *bucket, *prefix;
	size_t bl, pl, len = 0;
	char *page = malloc(LIST_PAGE_MAX), *next = NULL, *text = NULL;
	char page_url[8192], enc_prefix[3 * 1024 + 1], enc_token[3 * 1024 + 1];
	json_t *entries = json_array();
	int r = 0;

	split(url, &bucket, &bl, &prefix);
	pl = strlen(prefix);
	if (!page || !entries) {
		r = -ENOMEM;
		c->host->error(err, r, REIMAGE_EC_IO, "out of memory");
		goto out;
	}
	if (query_encode(enc_prefix, sizeof(enc_prefix), prefix, pl) < 0) {
		r = -ENAMETOOLONG;
		c->host->error(err, r, REIMAGE_EC_CONFIG, "%s: prefix too long", url);
		goto out;
	}
	for (int pages = 0;; pages++) {
		/* The parameters in SigV4's canonical order (sorted by name). */
		enc_token[0] = '\0';
		if (next && query_encode(enc_token, sizeof(enc_token), next, strlen(next)) < 0) {
			r = -EBADMSG;
			c->host->error(err, r, REIMAGE_EC_INTEGRITY,
				       "listing %s: continuation token too long", url);
			goto out;
		}
		snprintf(page_url, sizeof(page_url), "s3://%.*s/?%s%s%sdelimiter=%%2F&list-type=2"
			 "&prefix=%s", (int)bl, bucket, next ? "continuation-token=" : "",
			 enc_token, next ? "&" : "", enc_prefix);
		if (pages == LIST_PAGES_MAX) {
			r = -EFBIG;
			c->host->error(err, r, REIMAGE_EC_INTEGRITY, "listing %s: more than %d pages",
				       url, LIST_PAGES_MAX);
			goto out;
		}
		char etag[REIMAGE_ETAG_MAX] = "";
		if ((r = http_fetch(c, page_url, page, LIST_PAGE_MAX, &len, etag, NULL, err)) < 0)
			goto out;
		free(next);
		if ((r = parse_page(page, len, prefix, entries, &next)) < 0) {
			c->host->error(err, r, REIMAGE_EC_INTEGRITY, "listing %s: %s", url,
				       r == -ENOMEM ? "out of memory" : "not a ListObjectsV2 answer");
			goto out;
		}
		if (!next)
			break;
	}
	text = json_dumps(entries, JSON_COMPACT);
	if (!text) {
		r = -ENOMEM;
		c->host->error(err, r, REIMAGE_EC_IO, "out of memory");
	} else if ((len = strlen(text)) > cap) {
		r = -EFBIG;
		c->host->error(err, r, REIMAGE_EC_INTEGRITY, "listing %s: larger than %zu bytes",
			       url, cap);
	} else {
		memcpy(buf, text, len);
		*ret_len = len;
	}
out:
	free(text);
	free(next);
	free(page);
	json_decref(entries);
	return r;
}
