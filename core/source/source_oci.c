/*
 * source_oci.c -- OCI and Docker images as the new image, so that a fleet
 * builds its OS image with the container tools it already uses:
 *
 *   oci        a registry (distribution API v2) over the http transport,
 *              a bearer token from image.token_file
 *   oci-layout an OCI image layout directory (index.json, blobs/sha256)
 *   docker-archive  a `docker save` tarball (manifest.json, configs and
 *              layers as members; read at random, so hashed first)
 *
 * The reference resolves to a manifest for this machine's platform (an
 * index or manifest list is narrowed by os/architecture/variant), whose
 * config must name the same platform; the layers are then applied in
 * order into staging with their whiteouts (source_archive.c).  Every blob
 * is read through the stream, so its size and SHA-256 digest are checked
 * while it streams; any mismatch fails the job.  The chain of trust: the
 * job's image.sha256 pins the first document the reference resolves to
 * (the index or manifest, as `docker inspect` shows it), which pins the
 * rest by digest.  In a docker-archive the layers are checked against the
 * config's diff_ids and the config against its name; image.sha256 is the
 * tarball's own digest.
 */
#define _GNU_SOURCE
#include "source.h"
#include "error.h"
#include "fsutil.h"
#include "options.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAX (4u << 20)   /* index, manifest, index.json, manifest.json */
#define CONFIG_MAX (16u << 20)    /* image config (its history can be long) */
#define TOKEN_MAX (64u << 10)
#define INDEX_DEPTH 3             /* index -> index -> manifest at most */

/* This machine's platform, as OCI names it (GOOS/GOARCH). */
#if defined(__linux__)
#define HOST_OS "linux"
#elif defined(__APPLE__)
#define HOST_OS "darwin"
#elif defined(_WIN32)
#define HOST_OS "windows"
#else
#define HOST_OS "unknown"
#endif
#if defined(__x86_64__) || defined(_M_X64)
#define HOST_ARCH "amd64"
#elif defined(__aarch64__) || defined(_M_ARM64)
#define HOST_ARCH "arm64"
#elif defined(__i386__) || defined(_M_IX86)
#define HOST_ARCH "386"
#elif defined(__arm__)
#define HOST_ARCH "arm"
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
#define HOST_ARCH "ppc64le"
#elif defined(__s390x__)
#define HOST_ARCH "s390x"
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ARCH "riscv64"
#else
#define HOST_ARCH "unknown"
#endif

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

static const char *const manifest_types[] = {
	MT_OCI_INDEX, MT_OCI_MANIFEST, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, NULL
};

/* Layers reimage applies: tar, compressed or not (libarchive detects the
 * compression).  Foreign ("non-distributable") layers live elsewhere. */
static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.docker.image.rootfs.diff.tar.gzip",
	"application/vnd.docker.image.rootfs.diff.tar",
	NULL
};

enum oci_where { AT_REGISTRY, AT_LAYOUT, AT_ARCHIVE };

/* A content descriptor: what a document says another blob is. */
struct desc {
	char digest[7 + 64 + 1];  /* "sha256:" and 64 hex digits */
	int64_t size;
	char media[REIMAGE_MEDIA_TYPE_MAX];
};

/* One staging (or plan) of one OCI image. */
struct oci {
	const struct source *src;
	const struct stage_request *req;
	struct stage_result *res;
	enum oci_where where;
	const char *tarball;             /* AT_ARCHIVE: the verified file */
	char name[256];                  /* AT_REGISTRY: repository */
	char ref[160];                   /* tag or digest; "" if none */
	char *token;                     /* AT_REGISTRY: bearer token, or NULL */
	uint64_t done;                   /* bytes of blobs read so far */
	json_t *manifest, *config;       /* the resolved image */
	char top[DIGEST_HEX_SHA256];     /* digest of the first document */
};

/* -------------------------------------------------------------- names */

static int is_hex64(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 64;
}

/* Digests become file names and URL paths: only "sha256:" + 64 hex
 * digits passes, nothing that could climb a path. */
static int check_digest(const char *d, const char *what, struct reimage_error *err)
{
	if (d && strncmp(d, "sha256:", 7) == 0 && is_hex64(d + 7))
		return 0;
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: digest '%s' is not sha256:<64 hex digits>",
		what, d ? d : "(none)");
	return -EBADMSG;
}

/* Repository names: lowercase components joined by '/', separators
 * '.', '_', '-' inside (the distribution spec's grammar, loosely). */
static int valid_name(const char *n)
{
	int prev_sep = 1;
	if (!*n || strlen(n) > 255)
		return 0;
	for (const char *c = n; *c; c++) {
		int alnum = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9');
		if (!alnum && !strchr("._-/", *c))
			return 0;
		if (!alnum && prev_sep)
			return 0;
		prev_sep = !alnum;
	}
	return !prev_sep;
}

static int valid_tag(const char *t)
{
	size_t n = strlen(t);
	if (!n || n > 128 || *t == '.' || *t == '-')
		return 0;
	for (const char *c = t; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
		      strchr("._-", *c)))
			return 0;
	return 1;
}

/* "NAME:TAG", "NAME@sha256:HEX" or "NAME" (tag latest). */
static int split_reference(struct oci *o, struct reimage_error *err)
{
	const char *r = o->src->reference, *at = strchr(r, '@');
	const char *slash = strrchr(r, '/'), *colon = strrchr(r, ':');
	size_t nl;

	if (at) {
		nl = (size_t)(at - r);
		snprintf(o->ref, sizeof(o->ref), "%s", at + 1);
		if (check_digest(o->ref, o->src->url, err) < 0)
			return -EINVAL;
	} else if (colon && (!slash || colon > slash)) {
		nl = (size_t)(colon - r);
		snprintf(o->ref, sizeof(o->ref), "%s", colon + 1);
	} else {
		nl = strlen(r);
		snprintf(o->ref, sizeof(o->ref), "latest");
	}
	if (nl >= sizeof(o->name) || (memcpy(o->name, r, nl), o->name[nl] = '\0', !valid_name(o->name)) ||
	    (!at && !valid_tag(o->ref))) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"image URL '%s': expected oci://HOST[:PORT]/NAME[:TAG|@sha256:DIGEST] with a "
			"lowercase NAME", o->src->url);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------ reading */

static int blob_url(const struct oci *o, const char *digest, char *buf, size_t len)
{
	int n = o->where == AT_REGISTRY
		? snprintf(buf, len, "%s/v2/%s/blobs/%s", o->src->location, o->name, digest)
		: snprintf(buf, len, "%s/blobs/sha256/%s", o->src->location, digest + 7);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A stream of one resource (a blob, a manifest, a member of the
 * tarball): digest (hex, or NULL) and size (or -1) are what the document
 * naming it declares. */
static int open_stream(struct oci *o, const char *url, const char *what, const char *sha256,
		       int64_t size, struct reimage_open_opts *opts, struct archive *member,
		       struct stream **ret, struct reimage_error *err);

static ssize_t member_pull(void *arg, void *buf, size_t len, struct reimage_error *err)
{
	struct archive *a = arg;
	la_ssize_t n = archive_read_data(a, buf, len);
	if (n < 0) {
		err_set(err, -EIO, REIMAGE_EC_INTEGRITY, "read docker-archive member: %s",
			archive_error_string(a));
		return -EIO;
	}
	return n;
}

static int open_stream(struct oci *o, const char *url, const char *what, const char *sha256,
		       int64_t size, struct reimage_open_opts *opts, struct archive *member,
		       struct stream **ret, struct reimage_error *err)
{
	struct stream_request sr = {
		.transport = o->req->transport, .url = url, .what = what,
		.declared_by = sha256 && sha256 == o->req->sha256 ? "the job"
			       : o->where == AT_ARCHIVE ? "the image config" : "its descriptor",
		.sha256 = sha256, .size = size,
		.retries = o->req->retries, .retry_delay_ms = o->req->retry_delay_ms,
		.opts = opts, .progress = o->req->progress, .progress_base = o->done,
		.pull = member ? member_pull : NULL, .pull_arg = member,
	};
	return stream_open(&sr, ret, err);
}

static void count_stream(struct oci *o, struct stream *s)
{
	o->done += stream_offset(s);
	o->res->bytes_in += stream_offset(s);
	o->res->resumes += stream_resumes(s);
}

/* Read a whole small document; *ret_hex gets its digest. */
static int read_doc_stream(struct stream *s, size_t cap, char **ret_text,
			   size_t *ret_len, char ret_hex[DIGEST_HEX_SHA256], const char *what,
			   struct reimage_error *err)
{
	char *text = NULL;
	size_t len = 0;
	const void *buf;
	ssize_t n;
	int r;

	while ((n = stream_read(s, &buf)) > 0) {
		char *grown;
		if (len + (size_t)n > cap) {
			err_set(err, -EFBIG, REIMAGE_EC_INTEGRITY, "%s is larger than %zu bytes", what,
				cap);
			free(text);
			return -EFBIG;
		}
		if (!(grown = realloc(text, len + (size_t)n + 1))) {
			free(text);
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		text = grown;
		memcpy(text + len, buf, (size_t)n);
		len += (size_t)n;
	}
	r = n < 0 ? (int)n : stream_finish(s, ret_hex, err);
	if (r < 0) {
		if (n < 0)
			*err = *stream_error(s);
		free(text);
		return r;
	}
	if (!text && !(text = calloc(1, 1))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	text[len] = '\0';
	*ret_text = text;
	*ret_len = len;
	return 0;
}

static json_t *parse_json(const char *text, size_t len, const char *what,
			  struct reimage_error *err)
{
	json_error_t je;
	/* Duplicate keys could say two things at once: refused. */
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: not valid JSON: %s (line %d)", what,
			je.text, je.line);
	return j;
}

/* A document by URL (registry, layout) or by member name (tarball),
 * parsed.  sha256: the digest it must have (hex), or NULL; type: out,
 * the media type the registry gave (may be NULL). */
static int fetch_json(struct oci *o, const char *url, const char *what, const char *sha256,
		      int64_t size, size_t cap, struct archive *member, char *type,
		      char ret_hex[DIGEST_HEX_SHA256], json_t **ret, struct reimage_error *err)
{
	struct reimage_open_opts opts = {
		.struct_size = sizeof(opts), .accept = manifest_types, .bearer_token = o->token,
	};
	struct stream *s;
	char *text;
	size_t len;
	int r;

	if ((r = open_stream(o, url, what, sha256, size, o->where == AT_REGISTRY ? &opts : NULL,
			     member, &s, err)) < 0)
		return r;
	r = read_doc_stream(s, cap, &text, &len, ret_hex, what, err);
	count_stream(o, s);
	stream_close(s);
	if (r < 0)
		return r;
	if (type)
		snprintf(type, REIMAGE_MEDIA_TYPE_MAX, "%.*s", (int)strcspn(opts.content_type, ";"),
			 opts.content_type);
	*ret = parse_json(text, len, what, err);
	free(text);
	return *ret ? 0 : -EBADMSG;
}

/* ----------------------------------------------------------- documents */

static int parse_desc(json_t *j, struct desc *d, const char *what, struct reimage_error *err)
{
	const char *digest = json_string_value(json_object_get(j, "digest"));
	const char *media = json_string_value(json_object_get(j, "mediaType"));
	json_t *size = json_object_get(j, "size");

	memset(d, 0, sizeof(*d));
	if (check_digest(digest, what, err) < 0)
		return -EBADMSG;
	if (!json_is_integer(size) || json_integer_value(size) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: descriptor without a valid size",
			what);
		return -EBADMSG;
	}
	snprintf(d->digest, sizeof(d->digest), "%s", digest);
	snprintf(d->media, sizeof(d->media), "%s", media ? media : "");
	d->size = json_integer_value(size);
	return 0;
}

static const char *str_at(json_t *j, const char *a, const char *b)
{
	json_t *v = json_object_get(j, a);
	return json_string_value(b ? json_object_get(v, b) : v);
}

static int is_index(json_t *doc, const char *type)
{
	const char *mt = *type ? type : str_at(doc, "mediaType", NULL);
	if (mt && (!strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST)))
		return 1;
	if (mt && (!strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST)))
		return 0;
	return json_is_array(json_object_get(doc, "manifests"));
}

/* The variant this machine runs, where one matters (arm). */
static int variant_fits(const char *variant)
{
	if (!variant)
		return 1;
#if defined(__aarch64__)
	return strcmp(variant, "v8") == 0;
#elif defined(__arm__) && defined(__ARM_ARCH)
	char mine[8];
	snprintf(mine, sizeof(mine), "v%d", __ARM_ARCH);
	return strcmp(variant, mine) == 0;
#else
	return 1;
#endif
}

/* From an index's manifests: the one for this platform; with tag, the one
 * an OCI layout names so (org.opencontainers.image.ref.name). */
static int pick(json_t *list, const char *tag, const char *what, struct desc *d,
		struct reimage_error *err)
{
	char seen[512] = "";
	json_t *m, *only = NULL;
	size_t i, candidates = 0;

	json_array_foreach(list, i, m) {
		const char *os = str_at(m, "platform", "os"), *arch = str_at(m, "platform", "architecture");
		const char *name = json_string_value(json_object_get(
			json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
		size_t sl = strlen(seen);
		if (tag && *tag && (!name || strcmp(name, tag)))
			continue;
		candidates++;
		only = m;
		if (os && arch)
			snprintf(seen + sl, sizeof(seen) - sl, "%s%s/%s", sl ? ", " : "", os, arch);
		if (os && arch && !strcmp(os, HOST_OS) && !strcmp(arch, HOST_ARCH) &&
		    variant_fits(str_at(m, "platform", "variant")))
			return parse_desc(m, d, what, err);
	}
	/* A single entry without a platform (an OCI layout of one image). */
	if (candidates == 1 && !json_object_get(only, "platform"))
		return parse_desc(only, d, what, err);
	if (!candidates)
		err_set(err, -ENOENT, REIMAGE_EC_NOTFOUND, "%s: no image %s%s", what,
			tag && *tag ? "tagged " : "", tag && *tag ? tag : "");
	else
		err_set(err, -ENOENT, REIMAGE_EC_NOTFOUND,
			"%s: no image for this machine (%s/%s); the image has: %s", what, HOST_OS,
			HOST_ARCH, seen[0] ? seen : "entries without a platform");
	return -ENOENT;
}

/* The reference resolved to one image manifest, parsed into o->manifest;
 * o->top is the digest of the first document. */
static int resolve_manifest(struct oci *o, struct reimage_error *err)
{
	char url[PATH_MAX + 512], type[REIMAGE_MEDIA_TYPE_MAX] = "", hex[DIGEST_HEX_SHA256];
	const char *want = NULL;
	struct desc d = { .size = -1 };
	json_t *doc = NULL;
	int r;

	/* The first document: a registry's manifest by tag or digest (the
	 * job's sha256 pins it), or a layout's index.json (not content-
	 * addressed: the descriptor chosen in it is pinned instead). */
	if (o->where == AT_REGISTRY) {
		snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", o->src->location, o->name, o->ref);
		want = o->req->sha256 ? o->req->sha256 : strchr(o->ref, ':') ? o->ref + 7 : NULL;
		r = fetch_json(o, url, "manifest", want, -1, MANIFEST_MAX, NULL, type, hex, &doc, err);
		snprintf(o->top, sizeof(o->top), "%s", hex);
	} else {
		if (fs_join(url, sizeof(url), o->src->location, "index.json") < 0)
			return -ENAMETOOLONG;
		r = fetch_json(o, url, "index.json", NULL, -1, MANIFEST_MAX, NULL, NULL, hex, &doc, err);
		if (r == 0 && (r = pick(json_object_get(doc, "manifests"), o->src->reference,
					"index.json", &d, err)) == 0) {
			snprintf(o->top, sizeof(o->top), "%s", d.digest + 7);
			if (o->req->sha256 && strcmp(o->req->sha256, o->top)) {
				err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
					"image SHA-256 is %s, the job declares %s", o->top, o->req->sha256);
				r = -EBADMSG;
			}
		}
		json_decref(doc);
		doc = NULL;
		type[0] = '\0';
	}
	for (int depth = 0; r == 0; depth++) {
		if (doc && !is_index(doc, type))
			break;
		if (doc && (r = pick(json_object_get(doc, "manifests"), NULL, "index", &d, err)) < 0)
			break;
		if (depth == INDEX_DEPTH) {
			err_set(err, -ELOOP, REIMAGE_EC_INTEGRITY, "indexes nested too deeply");
			r = -ELOOP;
			break;
		}
		json_decref(doc);
		doc = NULL;
		type[0] = '\0';
		if (o->where == AT_REGISTRY)
			snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", o->src->location, o->name,
				 d.digest);
		else
			blob_url(o, d.digest, url, sizeof(url));
		r = fetch_json(o, url, "manifest", d.digest + 7, d.size, MANIFEST_MAX, NULL, type, hex,
			       &doc, err);
	}
	if (r < 0) {
		json_decref(doc);
		return r;
	}
	if (json_integer_value(json_object_get(doc, "schemaVersion")) != 2) {
		json_decref(doc);
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"manifest: schema version 2 expected (Docker schema 1 is not supported)");
		return -ENOTSUP;
	}
	o->manifest = doc;
	return 0;
}

/* The config says which platform the layers are for: it must be ours. */
static int check_config(json_t *config, struct reimage_error *err)
{
	const char *os = str_at(config, "os", NULL), *arch = str_at(config, "architecture", NULL);
	if ((os && strcmp(os, HOST_OS)) || (arch && strcmp(arch, HOST_ARCH))) {
		err_set(err, -ENOEXEC, REIMAGE_EC_UNSUPPORTED,
			"the image is for %s/%s, this machine is %s/%s", os ? os : "?",
			arch ? arch : "?", HOST_OS, HOST_ARCH);
		return -ENOEXEC;
	}
	return 0;
}

/* -------------------------------------------------- registry and layout */

static int apply_blob(struct oci *o, const struct desc *d, size_t i, size_t n,
		      struct stage_sink *k, struct reimage_error *err)
{
	struct reimage_open_opts opts = { .struct_size = sizeof(opts), .bearer_token = o->token };
	char url[PATH_MAX + 512], what[64];
	struct stream *s;
	int r;

	if (!strlist_has(layer_types, d->media)) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED, "layer %zu of %zu: media type '%s' is "
			"not a layer reimage applies (foreign or unknown)", i + 1, n, d->media);
		return -ENOTSUP;
	}
	snprintf(what, sizeof(what), "layer %zu of %zu", i + 1, n);
	if (blob_url(o, d->digest, url, sizeof(url)) < 0 ||
	    (r = open_stream(o, url, what, d->digest + 7, d->size,
			     o->where == AT_REGISTRY ? &opts : NULL, NULL, &s, err)) < 0)
		return err->code ? err->code : -ENAMETOOLONG;
	r = source_archive_read(s, k, 1, what, err);
	/* The digest covers the whole blob, past the tar's end. */
	if (r == 0)
		r = stream_finish(s, NULL, err);
	count_stream(o, s);
	stream_close(s);
	return r;
}

static int read_token(struct oci *o, struct reimage_error *err)
{
	size_t len;
	int r;

	if (!o->req->token_file)
		return 0;
	if ((r = fs_read_small(o->req->token_file, TOKEN_MAX, &o->token, &len, err)) < 0) {
		err_prefix(err, "image.token_file");
		return r;
	}
	while (len && strchr(" \t\r\n", o->token[len - 1]))
		o->token[--len] = '\0';
	if (!len || strpbrk(o->token, "\r\n")) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "image.token_file %s: expected one token",
			o->req->token_file);
		return -EINVAL;
	}
	return 0;
}

/* Resolve the manifest and read the config: what the layers are. */
static int oci_open(struct oci *o, json_t **ret_layers, struct reimage_error *err)
{
	char url[PATH_MAX + 512], hex[DIGEST_HEX_SHA256];
	struct desc cd;
	json_t *layers;
	int r;

	if ((o->where == AT_REGISTRY && ((r = split_reference(o, err)) < 0 ||
					  (r = read_token(o, err)) < 0)) ||
	    (r = resolve_manifest(o, err)) < 0 ||
	    (r = parse_desc(json_object_get(o->manifest, "config"), &cd, "manifest config", err)) < 0)
		return r;
	layers = json_object_get(o->manifest, "layers");
	if (!json_is_array(layers)) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "manifest: no layers");
		return -EBADMSG;
	}
	blob_url(o, cd.digest, url, sizeof(url));
	if ((r = fetch_json(o, url, "image config", cd.digest + 7, cd.size, CONFIG_MAX, NULL, NULL,
			    hex, &o->config, err)) < 0 ||
	    (r = check_config(o->config, err)) < 0)
		return r;
	*ret_layers = layers;
	return 0;
}

static int oci_stage(const struct source *src, const struct stage_request *req,
		     const char *path, struct stage_sink *k, struct stage_result *res,
		     struct reimage_error *err)
{
	struct oci o = { .src = src, .req = req, .res = res,
			 .where = src->ops == &source_oci_ops ? AT_REGISTRY : AT_LAYOUT };
	struct desc *descs = NULL;
	uint64_t total = 0;
	json_t *layers, *l;
	size_t i, n = 0;
	int r;

	(void)path;
	if ((r = oci_open(&o, &layers, err)) < 0)
		goto out;
	n = json_array_size(layers);
	/* Every descriptor is checked before the first byte is staged. */
	if (!(descs = calloc(n + 1, sizeof(*descs)))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	json_array_foreach(layers, i, l) {
		if ((r = parse_desc(l, &descs[i], "manifest layer", err)) < 0)
			goto out;
		total += (uint64_t)descs[i].size;
	}
	if (req->progress)
		progress_begin(req->progress, "staging", o.done + total);
	for (i = 0; i < n && r == 0; i++)
		r = apply_blob(&o, &descs[i], i, n, k, err);
	if (r == 0) {
		memcpy(res->sha256, o.top, sizeof(o.top));
		if (req->progress)
			progress_end(req->progress);
	}
out:
	free(descs);
	json_decref(o.manifest);
	json_decref(o.config);
	free(o.token);
	return r;
}

/* Plan: the bytes to fetch (config and layers), from the manifest. */
static int oci_size(const struct source *src, const struct stage_request *req,
		    uint64_t *ret_size, struct reimage_error *err)
{
	struct stage_result res = { 0 };
	struct stage_request quiet = *req;
	struct oci o = { .src = src, .req = &quiet, .res = &res,
			 .where = src->ops == &source_oci_ops ? AT_REGISTRY : AT_LAYOUT };
	uint64_t total = 0;
	json_t *layers, *l;
	size_t i;
	int r;

	quiet.progress = NULL;
	if ((r = oci_open(&o, &layers, err)) == 0) {
		json_array_foreach(layers, i, l)
			total += (uint64_t)json_integer_value(json_object_get(l, "size"));
		total += (uint64_t)json_integer_value(
			json_object_get(json_object_get(o.manifest, "config"), "size"));
		*ret_size = total;
	}
	json_decref(o.manifest);
	json_decref(o.config);
	free(o.token);
	return r;
}

/* ------------------------------------------------------- docker-archive */

/* Position a reader of the tarball at member name; the caller frees it. */
static int open_member(struct oci *o, const char *name, struct archive **ret,
		       struct reimage_error *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int st;

	if (!a) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, o->tarball, 1 << 20) != ARCHIVE_OK)
		goto fail;
	while ((st = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *p = archive_entry_pathname(e);
		if (p && strcmp(p + (strncmp(p, "./", 2) ? 0 : 2), name) == 0) {
			*ret = a;
			return 0;
		}
	}
	if (st == ARCHIVE_EOF) {
		archive_read_free(a);
		err_set(err, -ENOENT, REIMAGE_EC_INTEGRITY, "docker-archive %s: no member '%s'",
			o->tarball, name);
		return -ENOENT;
	}
fail:
	err_set(err, -EIO, REIMAGE_EC_INTEGRITY, "docker-archive %s: %s", o->tarball,
		archive_error_string(a) ? archive_error_string(a) : "unreadable");
	archive_read_free(a);
	return -EIO;
}

static int member_json(struct oci *o, const char *name, const char *what, const char *sha256,
		       size_t cap, json_t **ret, struct reimage_error *err)
{
	char hex[DIGEST_HEX_SHA256];
	struct archive *a;
	int r;

	if ((r = open_member(o, name, &a, err)) < 0)
		return r;
	r = fetch_json(o, name, what, sha256, -1, cap, a, NULL, hex, ret, err);
	archive_read_free(a);
	return r;
}

/* The digest a member's name carries: "<hex>.json" (docker save before
 * version 25) or "blobs/sha256/<hex>" (an OCI layout inside). */
static const char *name_digest(const char *name, char hex[DIGEST_HEX_SHA256])
{
	const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
	size_t len = strcspn(base, ".");
	if (len != 64 || (base[len] && strcmp(base + len, ".json")))
		return NULL;
	memcpy(hex, base, 64);
	hex[64] = '\0';
	return is_hex64(hex) ? hex : NULL;
}

/* From manifest.json: the image named reference (one of its RepoTags),
 * or the only one. */
static json_t *pick_archive_image(json_t *list, const char *reference, const char *file,
				  struct reimage_error *err)
{
	json_t *m, *t;
	size_t i, j;

	if (!json_is_array(list) || !json_array_size(list)) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "docker-archive %s: manifest.json lists "
			"no image", file);
		return NULL;
	}
	if (!*reference) {
		if (json_array_size(list) == 1)
			return json_array_get(list, 0);
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "docker-archive %s holds %zu images: name "
			"one (docker-archive:PATH:NAME:TAG)", file, json_array_size(list));
		return NULL;
	}
	json_array_foreach(list, i, m)
		json_array_foreach(json_object_get(m, "RepoTags"), j, t)
			if (json_is_string(t) && !strcmp(json_string_value(t), reference))
				return m;
	err_set(err, -ENOENT, REIMAGE_EC_NOTFOUND, "docker-archive %s: no image tagged %s", file,
		reference);
	return NULL;
}

static int archive_image_stage(const struct source *src, const struct stage_request *req,
			       const char *path, struct stage_sink *k, struct stage_result *res,
			       struct reimage_error *err)
{
	struct oci o = { .src = src, .req = req, .res = res, .where = AT_ARCHIVE, .tarball = path };
	char hex[DIGEST_HEX_SHA256], what[64];
	const char *config_name;
	json_t *list = NULL, *image, *layers, *diff_ids, *l;
	size_t i, n;
	int r;

	/* The tarball's own digest was checked before (SOURCE_RANDOM); its
	 * members are checked against the config's diff_ids as they stream. */
	if ((r = member_json(&o, "manifest.json", "manifest.json", NULL, MANIFEST_MAX, &list,
			     err)) < 0)
		goto out;
	if (!(image = pick_archive_image(list, src->reference, path, err))) {
		r = err->code;
		goto out;
	}
	config_name = json_string_value(json_object_get(image, "Config"));
	layers = json_object_get(image, "Layers");
	if (!config_name || !name_digest(config_name, hex) || !json_is_array(layers)) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "docker-archive %s: manifest.json "
			"names no config by digest, or no layers", path);
		r = -EBADMSG;
		goto out;
	}
	if ((r = member_json(&o, config_name, "image config", hex, CONFIG_MAX, &o.config, err)) < 0 ||
	    (r = check_config(o.config, err)) < 0)
		goto out;
	diff_ids = json_object_get(json_object_get(o.config, "rootfs"), "diff_ids");
	n = json_array_size(layers);
	if (json_array_size(diff_ids) != n) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "docker-archive %s: %zu layers, the "
			"config lists %zu", path, n, json_array_size(diff_ids));
		r = -EBADMSG;
		goto out;
	}
	json_array_foreach(diff_ids, i, l)
		if ((r = check_digest(json_string_value(l), "config rootfs.diff_ids", err)) < 0)
			goto out;
	if (req->progress)
		progress_begin(req->progress, "staging", REIMAGE_SIZE_UNKNOWN);
	json_array_foreach(layers, i, l) {
		const char *member = json_string_value(l);
		struct archive *a;
		struct stream *s;
		snprintf(what, sizeof(what), "layer %zu of %zu", i + 1, n);
		if (!member) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "docker-archive %s: %s unnamed",
				path, what);
			r = -EBADMSG;
			goto out;
		}
		if ((r = open_member(&o, member, &a, err)) < 0)
			goto out;
		/* docker save writes layers uncompressed: their digest is the diff_id. */
		r = open_stream(&o, member, what, json_string_value(json_array_get(diff_ids, i)) + 7,
				-1, NULL, a, &s, err);
		if (r == 0) {
			r = source_archive_read(s, k, 1, what, err);
			if (r == 0)
				r = stream_finish(s, NULL, err);
			count_stream(&o, s);
			stream_close(s);
		}
		archive_read_free(a);
		if (r < 0)
			goto out;
	}
	if (req->progress)
		progress_end(req->progress);
out:
	json_decref(list);
	json_decref(o.config);
	return r;
}

const struct source_ops source_oci_ops = {
	.name = "oci",
	.doc = "an image in an OCI registry: oci://HOST[:PORT]/NAME[:TAG|@DIGEST]",
	.stage = oci_stage,
	.size = oci_size,
};

const struct source_ops source_oci_layout_ops = {
	.name = "oci-layout",
	.doc = "an OCI image layout directory: oci-layout:PATH[:TAG]",
	.flags = SOURCE_TREE,
	.stage = oci_stage,
	.size = oci_size,
};

const struct source_ops source_docker_archive_ops = {
	.name = "docker-archive",
	.doc = "a `docker save` tarball: docker-archive:PATH[:NAME:TAG]",
	.flags = SOURCE_RANDOM,
	.stage = archive_image_stage,
};
