/*
 * source.c -- which kind of source an image is, and what every kind
 * shares (see source.h): the table of kinds, the URL forms, the checks in
 * PREFLIGHT, the verification or fetch of images read at random, and the
 * lines `reimage plan` prints.
 *
 * A file's kind, unless image.kind forces it: a local file by its content
 * (ISO 9660 "CD001" at byte 32769, squashfs "hsqs" at 0, ext2/3/4 0xEF53
 * at 1080, else an archive; a directory is a tree, or an OCI layout if it
 * holds an `oci-layout` file); a remote file by its name's ending (.iso,
 * .squashfs/.sqfs, .ext4/.ext3/.ext2, .img/.raw), else an archive.  A
 * local file ending in a zstd:chunked footer is "chunked"; a remote one is
 * when the job gives its TOC's digest (image.toc_sha256, config.c).
 *
 * Images read at random (squashfs, ext4, raw) cannot be parsed as they
 * stream: a local one is read once through the stream (size and SHA-256
 * checked) before it is opened, a remote one is fetched the same way into
 * <root>/.reimage/image and removed after staging.  Either way no byte of
 * it is parsed before its digest matched.
 */
#define _GNU_SOURCE
#include "source.h"
#include "builtin.h"
#include "chunked.h"
#include "error.h"
#include "fsutil.h"
#include "log.h"
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct source_ops *const kinds[] = {
	&source_archive_ops, &source_iso_ops, &source_squashfs_ops, &source_ext4_ops,
	&source_raw_ops, &source_dir_ops, &source_oci_ops, &source_oci_layout_ops,
	&source_docker_archive_ops, &source_chunked_ops, NULL
};

const char *const source_kind_names[] = {
	"archive", "iso", "squashfs", "ext4", "raw", "dir", "oci", "oci-layout", "docker-archive",
	"chunked", NULL
};

static const struct source_ops *kind_named(const char *name)
{
	for (size_t i = 0; kinds[i]; i++)
		if (strcmp(kinds[i]->name, name) == 0)
			return kinds[i];
	return NULL;
}

/* Same rule as the registry's: a plain path (or a drive letter) or file:. */
static int is_local_url(const char *url)
{
	const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
	return !colon || (slash && slash < colon) || colon - url == 1 ||
	       strncasecmp(url, "file:", 5) == 0;
}

static int has_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* A local file's kind from its first bytes. */
static const struct source_ops *sniff(const char *path)
{
	unsigned char b[32769 + 5];
	struct stat st;
	ssize_t n = 0;
	char marker[PATH_MAX];
	int fd;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return fs_join(marker, sizeof(marker), path, "oci-layout") == 0 && fs_exists(marker)
			       ? &source_oci_layout_ops : &source_dir_ops;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = pread(fd, b, sizeof(b), 0);
		close(fd);
	}
	if (n >= 4 && memcmp(b, "hsqs", 4) == 0)
		return &source_squashfs_ops;
	if (n >= 1082 && b[1080] == 0x53 && b[1081] == 0xef)
		return &source_ext4_ops;
	if (n >= 32769 + 5 && memcmp(b + 32769, "CD001", 5) == 0)
		return &source_iso_ops;
	if (S_ISREG(st.st_mode) && st.st_size >= CHUNKED_FOOTER_SIZE &&
	    (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = pread(fd, b, 8, st.st_size - 8);
		close(fd);
		if (n == 8 && memcmp(b, "GNUlInUx", 8) == 0)
			return &source_chunked_ops;
	}
	return &source_archive_ops;
}

/* A remote file's kind from its name. */
static const struct source_ops *by_name(const char *url)
{
	static const struct { const char *ending; const struct source_ops *ops; } endings[] = {
		{ ".iso", &source_iso_ops }, { ".squashfs", &source_squashfs_ops },
		{ ".sqfs", &source_squashfs_ops }, { ".ext4", &source_ext4_ops },
		{ ".ext3", &source_ext4_ops }, { ".ext2", &source_ext4_ops },
		{ ".img", &source_raw_ops }, { ".raw", &source_raw_ops },
	};
	size_t len = strcspn(url, "?#");
	for (size_t i = 0; i < sizeof(endings) / sizeof(endings[0]); i++) {
		size_t el = strlen(endings[i].ending);
		if (len > el && strncasecmp(url + len - el, endings[i].ending, el) == 0)
			return endings[i].ops;
	}
	return &source_archive_ops;
}

static int bad_url(struct reimage_error *err, const char *url, const char *why)
{
	err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "image URL '%s': %s", url, why);
	return -EINVAL;
}

/* oci://HOST[:PORT]/NAME[:TAG|@sha256:HEX]: location is the registry's
 * base URL, reference "NAME:TAG" or "NAME@sha256:HEX" (checked by the
 * oci kind). */
static int parse_oci(const char *url, struct source *src, struct reimage_error *err)
{
	int plain = has_prefix(url, "oci+http://");
	const char *host = url + (plain ? 11 : 6);
	size_t hl = strcspn(host, "/");
	const char *ref = host + hl + 1;

	if (!hl || !host[hl] || !*ref)
		return bad_url(err, url, "expected oci://HOST[:PORT]/NAME[:TAG]");
	if ((size_t)snprintf(src->location, sizeof(src->location), "%s://%.*s",
			     plain ? "http" : "https", (int)hl, host) >= sizeof(src->location) ||
	    (size_t)snprintf(src->reference, sizeof(src->reference), "%s", ref) >=
		    sizeof(src->reference))
		return bad_url(err, url, "too long");
	snprintf(src->transport_url, sizeof(src->transport_url), "%s/v2/", src->location);
	return 0;
}

/* PREFIX:PATH[:REF]: the path ends at the first ':' (as skopeo reads it). */
static int parse_local_ref(const char *url, size_t skip, struct source *src,
			   struct reimage_error *err)
{
	const char *p = url + skip;
	size_t pl = strcspn(p, ":");

	if (!pl || p[0] != '/')
		return bad_url(err, url, "expected an absolute path after the prefix");
	if (pl >= sizeof(src->location) ||
	    (size_t)snprintf(src->reference, sizeof(src->reference), "%s", p[pl] ? p + pl + 1 : "") >=
		    sizeof(src->reference))
		return bad_url(err, url, "too long");
	memcpy(src->location, p, pl);
	src->location[pl] = '\0';
	snprintf(src->transport_url, sizeof(src->transport_url), "%s", src->location);
	src->local = 1;
	return 0;
}

int source_resolve(const char *url, const char *kind, struct source *src,
		   struct reimage_error *err)
{
	const struct source_ops *forced = NULL;
	int r;

	memset(src, 0, sizeof(*src));
	src->url = url;
	if (kind && !(forced = kind_named(kind))) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "image.kind '%s': unknown kind", kind);
		return -EINVAL;
	}
	if (has_prefix(url, "dir:")) {
		src->ops = &source_dir_ops;
		src->local = 1;
		if (url[4] != '/')
			return bad_url(err, url, "expected dir:/ABSOLUTE/PATH");
		snprintf(src->location, sizeof(src->location), "%s", url + 4);
		snprintf(src->transport_url, sizeof(src->transport_url), "%s", url + 4);
		r = 0;
	} else if (has_prefix(url, "oci://") || has_prefix(url, "oci+http://")) {
		src->ops = &source_oci_ops;
		r = parse_oci(url, src, err);
	} else if (has_prefix(url, "oci-layout:")) {
		src->ops = &source_oci_layout_ops;
		r = parse_local_ref(url, 11, src, err);
	} else if (has_prefix(url, "docker-archive:")) {
		src->ops = &source_docker_archive_ops;
		r = parse_local_ref(url, 15, src, err);
	} else {
		/* A file (or, given locally, a tree or a layout). */
		snprintf(src->transport_url, sizeof(src->transport_url), "%s", url);
		src->local = is_local_url(url);
		if (src->local) {
			if ((r = file_url_path(url, src->location, sizeof(src->location), err)) < 0)
				return r;
		} else {
			snprintf(src->location, sizeof(src->location), "%s", url);
		}
		src->ops = forced ? forced : src->local ? sniff(src->location) : by_name(url);
		if (src->ops == &source_oci_ops)
			return bad_url(err, url, "image.kind \"oci\" needs an oci://HOST/NAME:TAG URL");
		if (!src->local && (src->ops->flags & SOURCE_TREE))
			return bad_url(err, url, "a tree or an OCI layout must be a local path");
		return 0;
	}
	if (r < 0)
		return r;
	if (forced && forced != src->ops) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"image.kind '%s' contradicts the URL '%s' (a %s source)", kind, url,
			src->ops->name);
		return -EINVAL;
	}
	return 0;
}

int source_prepare(struct registry *reg, const struct stage_request *req,
		   struct plugin **ret_transport, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = req->backend->desc->backend;
	struct source src;
	int r;

	if ((r = source_resolve(req->url, req->kind, &src, err)) < 0 ||
	    (src.ops->check && (r = src.ops->check(&src, req, err)) < 0))
		return r;
	if ((src.ops->flags & SOURCE_MOUNT) &&
	    (!(b->caps & REIMAGE_BCAP_IMAGES) ||
	     !OPS_HAS(b, struct reimage_backend_ops, image_kinds) ||
	     !strlist_has(b->image_kinds, src.ops->name))) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"backend %s cannot open %s images; give the image as squashfs "
			"(mksquashfs), as an archive (tar), or as a mounted tree (dir:PATH)", b->name,
			src.ops->name);
		return -ENOTSUP;
	}
	if ((r = registry_transport_for(reg, src.transport_url, ret_transport, err)) < 0) {
		if (src.ops == &source_oci_ops)
			err_prefix(err, "oci");
		return r;
	}
	if (src.ops == &source_oci_ops &&
	    !OPS_HAS((*ret_transport)->desc->transport, struct reimage_transport_ops, open_ex)) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"oci: transport %s cannot send request options (it lacks open_ex); update "
			"the plugin", (*ret_transport)->name);
		return -ENOTSUP;
	}
	return 0;
}

struct stream_request source_stream_request(const struct source *src,
					    const struct stage_request *req)
{
	return (struct stream_request){
		.transport = req->transport, .url = src->location, .what = "image",
		.declared_by = "the job", .sha256 = req->sha256, .size = req->size,
		.retries = req->retries, .retry_delay_ms = req->retry_delay_ms,
		.progress = req->progress,
	};
}

/* Read the whole file once through the stream (size and digest checked),
 * copying it to `copy` when it is remote. */
static int verify_file(const struct source *src, const struct stage_request *req,
		       const char *copy, struct stage_result *res, struct reimage_error *err)
{
	struct stream_request sr = source_stream_request(src, req);
	struct stream *s;
	const void *buf;
	ssize_t n;
	int fd = -1, r;

	if ((r = stream_open(&sr, &s, err)) < 0)
		return r;
	if (copy && (fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		err_sys(err, -errno, "create %s", copy);
		stream_close(s);
		return err->code;
	}
	if (req->progress)
		progress_begin(req->progress, copy ? "fetching" : "verifying", stream_size(s));
	while ((n = stream_read(s, &buf)) > 0) {
		for (ssize_t done = 0; fd >= 0 && done < n;) {
			ssize_t w = write(fd, (const char *)buf + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				err_sys(err, -errno, "write %s", copy);
				n = err->code;
				break;
			}
			done += w;
		}
		if (n < 0)
			break;
	}
	if (n < 0 && !err->code)
		*err = *stream_error(s);
	r = n < 0 ? (int)n : stream_finish(s, res->sha256, err);
	res->bytes_in = stream_offset(s);
	res->resumes = stream_resumes(s);
	if (req->progress && r == 0)
		progress_end(req->progress);
	stream_close(s);
	if (fd >= 0 && close(fd) < 0 && r == 0) {
		err_sys(err, -errno, "write %s", copy);
		r = err->code;
	}
	return r;
}

int source_stage(const struct source *src, const struct stage_request *req,
		 struct stage_sink *k, struct stage_result *res, struct reimage_error *err)
{
	char copy[PATH_MAX];
	const char *path = NULL;
	int r;

	if (src->ops->check && (r = src->ops->check(src, req, err)) < 0)
		return r;
	if (!(src->ops->flags & SOURCE_RANDOM))
		return src->ops->stage(src, req, NULL, k, res, err);
	path = src->location;
	if (!src->local) {
		if (fs_join(copy, sizeof(copy), req->workdir, "image") < 0) {
			err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "work directory path too long");
			return -ENAMETOOLONG;
		}
		path = copy;
	}
	r = verify_file(src, req, src->local ? NULL : copy, res, err);
	if (r == 0)
		r = src->ops->stage(src, req, path, k, res, err);
	if (!src->local)
		unlink(copy);
	return r;
}

void source_plan(const struct stage_request *req, FILE *out, char ***ret_top, size_t *ret_n)
{
	struct reimage_error err = { 0 };
	struct stage_result res = { 0 };
	struct stage_request dry = *req;
	struct stage_sink k;
	struct source src;
	uint64_t size = req->size >= 0 ? (uint64_t)req->size : REIMAGE_SIZE_UNKNOWN;
	struct stat st;

	*ret_top = NULL;
	*ret_n = 0;
	if (source_resolve(req->url, req->kind, &src, &err) < 0) {
		fprintf(out, "  source     unknown: %s\n", err.msg);
		return;
	}
	/* A failure to tell the size is shown, not fatal: plan goes on. */
	if (src.ops->size)
		src.ops->size(&src, req, &size, &err);
	else if (src.local && !(src.ops->flags & SOURCE_TREE) && stat(src.location, &st) == 0)
		size = (uint64_t)st.st_size;
	fprintf(out, "  source     %s", src.ops->name);
	if (size != REIMAGE_SIZE_UNKNOWN)
		fprintf(out, ", %llu bytes", (unsigned long long)size);
	/* What a local source holds is read now, without writing: a file-
	 * system image only the backend can open stays unknown until STAGE. */
	if (!src.local || (src.ops->flags & SOURCE_MOUNT) || err.code) {
		fprintf(out, "%s%s\n", err.code ? "; " : "", err.msg);
		fprintf(out, "  contents   known after staging\n");
		return;
	}
	fputc('\n', out);
	dry.progress = NULL;
	stage_sink_init(&k, req->staging, 1);
	k.devices = req->devices;
	if (source_stage(&src, &dry, &k, &res, &err) == 0) {
		fprintf(out, "  contents   %llu entries, %llu bytes of files\n",
			(unsigned long long)k.entries, (unsigned long long)k.bytes);
		if (k.top)
			qsort(k.top, k.n_top, sizeof(char *), strlist_cmp);
		*ret_top = k.top;
		*ret_n = k.n_top;
		k.top = NULL;
		k.n_top = 0;
	} else {
		fprintf(out, "  contents   unreadable: %s\n", err.msg);
	}
	stage_sink_fini(&k);
}

int source_reach(const struct stage_request *req, struct reimage_error *err)
{
	const struct reimage_transport_ops *t;
	struct reimage_stream *rs = NULL;
	uint64_t size = REIMAGE_SIZE_UNKNOWN;
	struct source src;
	struct stat st;
	int r;

	if ((r = source_resolve(req->url, req->kind, &src, err)) < 0)
		return r;
	if (src.local) {
		if (stat(src.location, &st) < 0) {
			err_sys(err, -errno, "image %s", src.location);
			return err->code;
		}
		return 0;
	}
	if (src.ops->size)
		return src.ops->size(&src, req, &size, err);
	t = req->transport->transport;
	if ((r = t->open(req->transport->ctx, src.location, 0, &rs, &size, err)) < 0) {
		err_prefix(err, "image %s cannot be reached", req->url);
		return r;
	}
	t->close(rs);
	return 0;
}

/* STAGE as a whole: the source of req->url read into a writer on staging.
 * Here, not in stage.c, so that the writer knows no source.
 * -ESTALE from a source: its stream cannot go on where it stopped (the
 * resource changed, or cannot be resumed safely).  What was staged is
 * removed and the whole source read again from its first byte, at most
 * req->retries times. */
int stage_image(const struct stage_request *req, struct stage_result *res,
		struct reimage_error *err)
{
	struct stage_sink k;
	struct source src;
	int r;

	if ((r = source_resolve(req->url, req->kind, &src, err)) < 0)
		return r;
	for (int attempt = 0;; attempt++) {
		memset(res, 0, sizeof(*res));
		stage_sink_init(&k, req->staging, 0);
		k.free_floor = req->free_floor;
		k.limit = req->unpacked_size >= 0 ? (uint64_t)req->unpacked_size : 0;
		k.devices = req->devices;
		/* The bar and the reports show what is written, not only what is read. */
		if (req->progress) {
			req->progress->entries = &k.entries;
			req->progress->expanded = &k.bytes;
		}
		r = source_stage(&src, req, &k, res, err);
		if (req->progress) {
			if (r == 0)
				progress_end(req->progress);
			req->progress->entries = req->progress->expanded = NULL;
		}
		res->entries = k.entries;
		res->bytes_out = k.bytes;
		stage_sink_fini(&k);
		if (r != -ESTALE || attempt >= req->retries)
			return r;
		log_warn("stage: %s; staging again from the start (attempt %d of %d)", err->msg,
			 attempt + 1, req->retries);
		err_clear(err);
		if ((r = fs_remove_tree(req->staging, err)) < 0)
			return r;
		if (mkdir(req->staging, 0700) < 0) {
			err_sys(err, -errno, "create %s", req->staging);
			return err->code;
		}
	}
}
