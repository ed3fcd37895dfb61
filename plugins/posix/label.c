/*
 * label.c -- LABEL: rename the volume holding the root, with the
 * filesystem-independent ioctl FS_IOC_SETFSLABEL (ext4, btrfs, xfs, ...).
 * It works on a mounted filesystem through any directory of it, so the
 * descriptor prepare() opened on the root is enough.
 */
#define _GNU_SOURCE
#include "posix.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/fs.h>

int posix_set_label(void *ctx, const char *root, const char *label, struct reimage_error *err)
{
	struct posix *px = ctx;
	char buf[FSLABEL_MAX] = "";
	int owned, fd, r = 0;

	if (strlen(label) >= sizeof(buf)) {
		px->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
				"label '%s' is longer than %d bytes", label, FSLABEL_MAX - 1);
		return -EINVAL;
	}
	memcpy(buf, label, strlen(label));
	if ((fd = posix_root_fd(px, root, &owned, err)) < 0)
		return fd;
	if (ioctl(fd, FS_IOC_SETFSLABEL, buf) < 0) {
		int e = errno;
		if (e == ENOTTY || e == EOPNOTSUPP) {
			px->host->error(err, -EOPNOTSUPP, REIMAGE_EC_UNSUPPORTED,
					"label %s: its filesystem cannot be relabelled while "
					"mounted (no FS_IOC_SETFSLABEL)", root);
			r = -EOPNOTSUPP;
		} else if (e == EINVAL) {
			px->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
					"label %s: '%s' is not a valid label for its filesystem "
					"(too long?)", root, label);
			r = -EINVAL;
		} else {
			r = posix_fail(px, err, e, "label %s", root);
		}
	}
	if (owned)
		close(fd);
	return r;
}
