/*
 * source_mount.c -- file-system images only the operating system can
 * read: ext4 (ext2/3/4) and raw (any file system the OS mounts).  The
 * backend opens the verified file read-only (image_attach: posix, a loop
 * device mounted in a private mount namespace), the tree is walked like a
 * dir: source (source_dir.c), and the backend detaches it whatever
 * happened.  The kernel parses the image only after its digest matched
 * (source.c: SOURCE_RANDOM).
 */
#define _GNU_SOURCE
#include "source.h"
#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file system's own, not the image's: mkfs makes it, fsck fills it. */
static const char *const fs_only[] = { "lost+found", NULL };

static int mount_stage(const struct source *src, const struct stage_request *req,
		       const char *path, struct stage_sink *k, struct stage_result *res,
		       struct reimage_error *err)
{
	const struct reimage_backend_ops *b = req->backend ? req->backend->desc->backend : NULL;
	char scratch[PATH_MAX], tree[PATH_MAX];
	void *handle = NULL;
	int r;

	(void)res;
	if (!b || !(b->caps & REIMAGE_BCAP_IMAGES) ||
	    !OPS_HAS(b, struct reimage_backend_ops, image_attach) ||
	    !OPS_HAS(b, struct reimage_backend_ops, image_detach)) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED, "backend %s cannot open %s images",
			b ? b->name : "(none)", src->ops->name);
		return -ENOTSUP;
	}
	/* An empty directory of our own for the mount point. */
	if (fs_join(scratch, sizeof(scratch), req->workdir, "mnt") < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "work directory path too long");
		return -ENAMETOOLONG;
	}
	rmdir(scratch);
	if (mkdir(scratch, 0700) < 0) {
		err_sys(err, -errno, "create %s", scratch);
		return err->code;
	}
	r = b->image_attach(req->backend->ctx, path, src->ops->name, scratch, tree, sizeof(tree),
			    &handle, err);
	if (r == 0) {
		if (req->progress)
			progress_begin(req->progress, "staging", REIMAGE_SIZE_UNKNOWN);
		r = source_dir_walk(tree, fs_only, k, req->progress, err);
		if (r == 0 && req->progress)
			progress_end(req->progress);
		b->image_detach(req->backend->ctx, handle);
	} else {
		err_prefix(err, "backend %s", b->name);
	}
	rmdir(scratch);
	return r;
}

const struct source_ops source_ext4_ops = {
	.name = "ext4",
	.doc = "an ext2/3/4 file-system image, mounted read-only by the backend",
	.flags = SOURCE_RANDOM | SOURCE_MOUNT,
	.stage = mount_stage,
};

const struct source_ops source_raw_ops = {
	.name = "raw",
	.doc = "a file-system image of any type the backend's OS mounts, read-only",
	.flags = SOURCE_RANDOM | SOURCE_MOUNT,
	.stage = mount_stage,
};
