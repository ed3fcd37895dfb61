/*
 * source_dir.c -- a directory tree as the new image (`dir:/media/usb/root`,
 * a mounted share, a portable drive), and the tree of a file-system image
 * the backend mounted (source_mount.c).  libarchive's disk reader walks
 * it into the sink's disk writer, so a tree's metadata (owners, modes,
 * times, hard links, symlinks, devices, sparse files, xattrs, ACLs, file
 * capabilities) is copied by the same code as an archive's.
 *
 * Symlinks inside the tree are copied as links, never followed; mount
 * points inside it are not entered (their directory comes, empty).  The
 * tree may live on any volume: only staging must be on the root's.  A
 * tree that holds the staging directory (dir:/, or the root itself) is
 * refused: it would copy itself.
 */
#define _GNU_SOURCE
#include "source.h"
#include "error.h"
#include "options.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int source_tree_each(const char *tree, const char *const *skip_top, source_entry_fn each,
		     void *arg, struct reimage_error *err)
{
	struct archive *rd = stage_disk_reader();
	struct archive_entry_linkresolver *links = archive_entry_linkresolver_new();
	struct archive_entry *entry = archive_entry_new(), *spare = NULL;
	size_t tl = strlen(tree);
	char rel[PATH_MAX];
	int r = 0;

	if (!rd || !links || !entry) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	/* Files sharing an inode become hard links to the first one seen. */
	archive_entry_linkresolver_set_strategy(links, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	if (archive_read_disk_open(rd, tree) != ARCHIVE_OK) {
		err_set(err, -EIO, REIMAGE_EC_IO, "read tree %s: %s", tree, archive_error_string(rd));
		r = -EIO;
		goto out;
	}
	for (;;) {
		archive_entry_clear(entry);
		int st = archive_read_next_header2(rd, entry);
		if (st == ARCHIVE_EOF)
			break;
		/* A warning is metadata that could not be read (an xattr, an
		 * ACL): the image would arrive without it, so it fails. */
		if (st != ARCHIVE_OK) {
			err_set(err, -EIO, REIMAGE_EC_IO, "read tree %s: %s", tree,
				archive_error_string(rd) ? archive_error_string(rd) : "failed");
			r = -EIO;
			goto out;
		}
		const char *name = archive_entry_pathname(entry);
		if (!name || strncmp(name, tree, tl) != 0 || (name[tl] && name[tl] != '/')) {
			err_set(err, -EIO, REIMAGE_EC_IO, "read tree %s: unexpected entry '%s'", tree,
				name ? name : "(none)");
			r = -EIO;
			goto out;
		}
		snprintf(rel, sizeof(rel), "%s", name + tl + strspn(name + tl, "/"));
		if (strlist_has(skip_top, rel))
			continue;  /* not entered either: descend() is not called */
		archive_read_disk_descend(rd);
		if (!rel[0])
			continue;  /* the tree itself: staging stands for it */
		archive_entry_copy_pathname(entry, rel);
		struct archive_entry *e = entry;
		archive_entry_linkify(links, &e, &spare);
		if ((r = each(arg, e ? e : entry, rd, err)) < 0)
			goto out;
	}
out:
	if (rd)
		archive_read_free(rd);
	if (links)
		archive_entry_linkresolver_free(links);
	if (entry)
		archive_entry_free(entry);
	return r;
}

struct walk {
	struct stage_sink *k;
	struct progress *progress;
};

static int walk_entry(void *arg, struct archive_entry *e, struct archive *rd,
		      struct reimage_error *err)
{
	struct walk *w = arg;
	int r = stage_sink_entry(w->k, e, stage_archive_data, rd, err);
	return r < 0 ? r : progress_step(w->progress, w->k->bytes, err);
}

int source_dir_walk(const char *tree, const char *const *skip_top, struct stage_sink *k,
		    struct progress *progress, struct reimage_error *err)
{
	struct walk w = { k, progress };
	int r;

	if ((r = stage_sink_begin(k, err)) < 0 ||
	    (r = source_tree_each(tree, skip_top, walk_entry, &w, err)) < 0)
		return r;
	return stage_sink_end(k, err);
}

/* 1 if path is a or lies below it. */
static int below(const char *path, const char *a)
{
	size_t al = strlen(a);
	while (al > 1 && a[al - 1] == '/')
		al--;
	return strncmp(path, a, al) == 0 && (path[al] == '/' || path[al] == '\0' || al == 1);
}

/* Refused before anything is written: a tree that is not one, a tree
 * holding staging, a digest or size the job cannot mean for a tree. */
static int dir_check(const struct source *src, const struct stage_request *req,
		     struct reimage_error *err)
{
	char tree[PATH_MAX];
	struct stat st;

	if (req->sha256 || req->size >= 0) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"source tree %s: a tree has no SHA-256 or size to check; remove image.sha256 "
			"and image.size (or give an image file)", src->location);
		return -EINVAL;
	}
	if (!realpath(src->location, tree) || stat(tree, &st) < 0) {
		err_sys(err, -errno, "source tree %s", src->location);
		return err->code;
	}
	if (!S_ISDIR(st.st_mode)) {
		err_set(err, -ENOTDIR, REIMAGE_EC_CONFIG, "source tree %s: not a directory",
			src->location);
		return -ENOTDIR;
	}
	if (below(req->staging, tree) || (req->workdir && below(tree, req->workdir))) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"source tree %s holds the staging directory %s (or lies in it): it would "
			"copy itself", tree, req->staging);
		return -EINVAL;
	}
	return 0;
}

static int dir_stage(const struct source *src, const struct stage_request *req,
		     const char *path, struct stage_sink *k, struct stage_result *res,
		     struct reimage_error *err)
{
	char tree[PATH_MAX];
	int r;

	(void)path;
	(void)res;
	/* Checked already (dir_check); resolved again for the walk. */
	if (!realpath(src->location, tree)) {
		err_sys(err, -errno, "source tree %s", src->location);
		return err->code;
	}
	if (req->progress)
		progress_begin(req->progress, "staging", REIMAGE_SIZE_UNKNOWN);
	r = source_dir_walk(tree, NULL, k, req->progress, err);
	if (r == 0 && req->progress)
		progress_end(req->progress);
	return r;
}

const struct source_ops source_dir_ops = {
	.name = "dir",
	.doc = "a directory tree: a mounted share, a portable drive, an unpacked image",
	.flags = SOURCE_TREE,
	.check = dir_check,
	.stage = dir_stage,
};
