/*
 * image.h -- the Linux way to open a file-system image read-only for
 * staging (image_attach/image_detach), shared by the posix plugin and the
 * core's built-in sandbox backend: mounting an image in a private mount
 * namespace changes nothing of the running system, so the sandbox does
 * it for real too.
 */
#ifndef REIMAGE_POSIX_IMAGE_H
#define REIMAGE_POSIX_IMAGE_H

#include <reimage/plugin.h>

/* "ext4" (ext2/3/4) and "raw" (any block file system the kernel knows). */
extern const char *const posix_image_kinds[];

int posix_image_attach(const struct reimage_host *host, const char *image, const char *kind,
		       const char *scratch, char *ret_tree, size_t tree_cap, void **ret_handle,
		       struct reimage_error *err);
void posix_image_detach(const struct reimage_host *host, void *handle);

#endif
