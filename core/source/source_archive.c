/*
 * source_archive.c -- the kinds libarchive reads as they stream: archives
 * (tar with any compression, cpio, zip, ...) and ISO 9660 images (Rock
 * Ridge owners, modes, times, symlinks, devices).  One pass: the stream
 * is hashed as libarchive reads it, and every entry goes to the sink.
 *
 * The same reader applies the layers of OCI images (source_oci.c), with
 * the OCI whiteouts: a member ".wh.NAME" removes NAME, a member
 * ".wh..wh..opq" empties its directory -- but only of what earlier layers
 * left, never of what this layer writes itself (image-spec, "Whiteouts").
 * So each layer remembers the paths it wrote.
 */
#define _GNU_SOURCE
#include "source.h"
#include "decompress.h"
#include "error.h"
#include "fsutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WHITEOUT ".wh."
#define OPAQUE ".wh..wh..opq"

/* The paths one layer wrote: an open-addressing hash set of strings. */
struct pathset {
	char **slot;
	size_t cap, n;
};

static size_t path_hash(const char *s)
{
	size_t h = 1469598103934665603ull;  /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int set_has(const struct pathset *set, const char *p)
{
	if (!set->cap)
		return 0;
	for (size_t i = path_hash(p) & (set->cap - 1); set->slot[i]; i = (i + 1) & (set->cap - 1))
		if (strcmp(set->slot[i], p) == 0)
			return 1;
	return 0;
}

static int set_add(struct pathset *set, const char *p)
{
	if ((set->n + 1) * 2 > set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 256;
		char **slot = calloc(cap, sizeof(char *));
		if (!slot)
			return -ENOMEM;
		for (size_t i = 0; i < set->cap; i++) {
			if (!set->slot[i])
				continue;
			size_t j = path_hash(set->slot[i]) & (cap - 1);
			while (slot[j])
				j = (j + 1) & (cap - 1);
			slot[j] = set->slot[i];
		}
		free(set->slot);
		set->slot = slot;
		set->cap = cap;
	}
	size_t i = path_hash(p) & (set->cap - 1);
	for (; set->slot[i]; i = (i + 1) & (set->cap - 1))
		if (strcmp(set->slot[i], p) == 0)
			return 0;
	if (!(set->slot[i] = strdup(p)))
		return -ENOMEM;
	set->n++;
	return 0;
}

static void set_free(struct pathset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i]);
	free(set->slot);
	memset(set, 0, sizeof(*set));
}

/* "./a/b/" -> "a/b"; NULL if unsafe (the sink then refuses the entry). */
static const char *normal_path(const char *name, char *buf, size_t len)
{
	const char *safe = stage_safe_path(name);
	size_t n;

	if (!safe || (n = strlen(safe)) >= len)
		return NULL;
	memcpy(buf, safe, n + 1);
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return buf;
}

static int join_rel(char *buf, size_t len, const char *dir, const char *name)
{
	int n = *dir ? snprintf(buf, len, "%s/%s", dir, name) : snprintf(buf, len, "%s", name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Empty dir (relative, "" for the image's root) of what earlier layers
 * left: everything below it that this layer did not write. */
static int opaque(struct stage_sink *k, const struct pathset *layer, const char *dir,
		  struct reimage_error *err)
{
	char path[PATH_MAX], rel[PATH_MAX];
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, r = 0;

	if (k->dry)
		return 0;
	/* Never through a symlink an earlier layer planted. */
	if (*dir && (r = fs_parents_real(k->staging, dir, err)) < 0)
		return r;
	if (fs_join(path, sizeof(path), k->staging, dir) < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_INTEGRITY, "opaque '%s': path too long", dir);
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;  /* nothing left there by earlier layers (or not a directory) */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		err_sys(err, -errno, "opaque directory '%s'", dir);
		return err->code;
	}
	/* Names first, then changes: no removal while the listing runs. */
	while ((de = readdir(d))) {
		char **grown;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!(grown = realloc(names, (n + 1) * sizeof(char *))) ||
		    !(grown[n] = strdup(de->d_name))) {
			names = grown ? grown : names;
			r = -ENOMEM;
			break;
		}
		names = grown;
		n++;
	}
	closedir(d);
	if (r < 0)
		err_set(err, r, REIMAGE_EC_IO, "out of memory");
	for (size_t i = 0; r == 0 && i < n; i++) {
		if ((r = join_rel(rel, sizeof(rel), dir, names[i])) < 0) {
			err_set(err, r, REIMAGE_EC_INTEGRITY, "opaque '%s': path too long", dir);
			break;
		}
		if (!set_has(layer, rel))
			r = stage_sink_remove(k, rel, err);
		else if (fs_join(path, sizeof(path), k->staging, rel) == 0 && lstat(path, &st) == 0 &&
			 S_ISDIR(st.st_mode))
			r = opaque(k, layer, rel, err);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/* A layer's member: 1 if it is to be written, 0 if it was a whiteout
 * (applied), < 0 on failure. */
static int layer_member(struct stage_sink *k, struct pathset *layer, struct archive_entry *e,
			struct reimage_error *err)
{
	char rel[PATH_MAX], target[PATH_MAX];
	const char *name = archive_entry_pathname(e);
	const char *base, *slash;

	if (!normal_path(name, rel, sizeof(rel)))
		return 1;  /* the sink refuses it with the member's name */
	slash = strrchr(rel, '/');
	base = slash ? slash + 1 : rel;
	if (strncmp(base, WHITEOUT, strlen(WHITEOUT)) != 0) {
		if (set_add(layer, rel) < 0) {
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		return 1;
	}
	/* From here on rel is a directory and base a marker in it. */
	if (slash)
		*(char *)slash = '\0';
	else
		rel[0] = '\0';
	if (strcmp(base, OPAQUE) == 0)
		return opaque(k, layer, rel, err);
	if (strncmp(base, WHITEOUT WHITEOUT, 2 * strlen(WHITEOUT)) == 0)
		return 0;  /* other ".wh..wh." names are aufs bookkeeping, meaningless here */
	if (!base[strlen(WHITEOUT)] || strcmp(base + strlen(WHITEOUT), "..") == 0 ||
	    strcmp(base + strlen(WHITEOUT), ".") == 0 ||
	    join_rel(target, sizeof(target), rel, base + strlen(WHITEOUT)) < 0) {
		err_set(err, -EPERM, REIMAGE_EC_INTEGRITY, "refused whiteout '%s'", name);
		return -EPERM;
	}
	return set_has(layer, target) ? 0 : stage_sink_remove(k, target, err);
}

/* The first error wins: the stream's (transport, size, digest) or a stop
 * on request, else libarchive's (which carries the decoder's).  The
 * decompression thread is stopped first: then the stream is ours. */
static int read_failed(struct archive *in, struct decompress *d, const char *what,
		       struct reimage_error *err)
{
	const struct reimage_error *first = decompress_stop(d);

	if (first) {
		err_clear(err);
		*err = *first;
	} else if (!err->code) {
		err_set(err, -EIO, REIMAGE_EC_INTEGRITY, "read %s: %s", what,
			archive_error_string(in) ? archive_error_string(in) : "unreadable archive");
	}
	return err->code;
}

int source_archive_read(struct stream *s, struct stage_sink *k, int layered, const char *what,
			struct reimage_error *err)
{
	struct archive *in = archive_read_new();
	struct archive_entry *entry;
	struct decompress *d = NULL;
	struct pathset layer = { 0 };
	int r;

	if (!in) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	/* A layer is a tar (image-spec); an image file may be any format.
	 * Decompression is the thread's (decompress.c). */
	if (layered)
		archive_read_support_format_tar(in);
	else
		archive_read_support_format_all(in);
	k->layered = layered;
	if ((r = stage_sink_begin(k, err)) < 0 || (r = decompress_start(s, &d, err)) < 0)
		goto out;
	if (decompress_archive_open(in, d) != ARCHIVE_OK) {
		r = read_failed(in, d, what, err);
		goto out;
	}
	for (;;) {
		int st = archive_read_next_header(in, &entry);
		if (st == ARCHIVE_EOF)
			break;
		if (st < ARCHIVE_WARN) {
			r = read_failed(in, d, what, err);
			goto out;
		}
		if (st == ARCHIVE_WARN &&
		    (r = stage_warning(in, "read", archive_entry_pathname(entry), err)) < 0) {
			err_prefix(err, "%s", what);
			goto fail;
		}
		if (layered && (r = layer_member(k, &layer, entry, err)) <= 0) {
			if (r < 0)
				goto fail;
			continue;
		}
		if ((r = stage_sink_entry(k, entry, stage_archive_data, in, err)) < 0)
			goto fail;
	}
	r = stage_sink_end(k, err);
	goto out;
fail:
	/* A read failure inside the data is the stream's error. */
	if (decompress_stop(d))
		r = read_failed(in, d, what, err);
out:
	archive_read_free(in);
	decompress_free(d);
	set_free(&layer);
	return r;
}

static int archive_stage(const struct source *src, const struct stage_request *req,
			 const char *path, struct stage_sink *k, struct stage_result *res,
			 struct reimage_error *err)
{
	struct stream_request sr = source_stream_request(src, req);
	struct stream *s;
	int r;

	(void)path;
	if ((r = stream_open(&sr, &s, err)) < 0)
		return r;
	if (req->progress)
		progress_begin(req->progress, "staging", stream_size(s));
	r = source_archive_read(s, k, 0, "image", err);
	/* The digest covers the whole file, past the archive's end marker. */
	if (r == 0)
		r = stream_finish(s, res->sha256, err);
	res->bytes_in = stream_offset(s);
	res->resumes = stream_resumes(s);
	if (r == 0 && req->progress)
		progress_end(req->progress);
	stream_close(s);
	return r;
}

const struct source_ops source_archive_ops = {
	.name = "archive",
	.doc = "any archive libarchive reads: tar (gzip, xz, zstd, bzip2), cpio, zip, ...",
	.stage = archive_stage,
};

const struct source_ops source_iso_ops = {
	.name = "iso",
	.doc = "an ISO 9660 image (Rock Ridge: owners, modes, times, links, devices)",
	.stage = archive_stage,
};
