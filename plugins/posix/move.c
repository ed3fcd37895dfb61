/*
 * move.c -- renames for the swap on Linux (see move.h).  Exchanges use
 * renameat2(RENAME_EXCHANGE), so an entry present in both images is never
 * missing from the root, not even for an instant; moves use
 * RENAME_NOREPLACE so that a move never silently destroys an entry.
 */
#define _GNU_SOURCE
#include "move.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

const char *const posix_keep_entries[] = {
	"proc", "sys", "dev", "run", "lost+found", NULL
};

const char *const posix_network_paths[] = {
	"etc/NetworkManager/system-connections",
	"etc/netplan",
	"etc/network/interfaces",
	"etc/network/interfaces.d",
	"etc/systemd/network",
	"etc/resolv.conf",
	"etc/hostname",
	"etc/hosts",
	"etc/ssh/ssh_host_*",
	NULL
};

static int rename2(const char *from, const char *to, unsigned flags)
{
#ifdef SYS_renameat2
	return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
#else
	(void)from; (void)to; (void)flags;
	errno = ENOSYS;
	return -1;
#endif
}

static enum reimage_errclass class_of(int e)
{
	return e == ENOENT ? REIMAGE_EC_NOTFOUND
	     : (e == EACCES || e == EPERM || e == EROFS || e == EBUSY) ? REIMAGE_EC_ACCESS
	     : (e == ENOSYS || e == EINVAL) ? REIMAGE_EC_UNSUPPORTED
	     : REIMAGE_EC_IO;
}

int posix_move(const struct reimage_host *host, const char *from, const char *to,
	       struct reimage_error *err)
{
	if (rename2(from, to, RENAME_NOREPLACE) == 0)
		return 0;
	/* Filesystems without renameat2 flags: refuse to replace by hand. */
	if (errno == EINVAL || errno == ENOSYS) {
		struct stat st;
		if (lstat(to, &st) == 0) {
			host->error(err, -EEXIST, REIMAGE_EC_IO, "move %s to %s: %s", from, to,
				    strerror(EEXIST));
			return -EEXIST;
		}
		if (rename(from, to) == 0)
			return 0;
	}
	int e = errno;
	host->error(err, -e, class_of(e), "move %s to %s: %s", from, to, strerror(e));
	return -e;
}

/* An entry's times as they were before the exchange that moved it to
 * path, if it changed them. */
static void keep_times(const char *path, const struct stat *before)
{
	struct stat now;
	if (lstat(path, &now) == 0 &&
	    (now.st_mtim.tv_sec != before->st_mtim.tv_sec ||
	     now.st_mtim.tv_nsec != before->st_mtim.tv_nsec))
		utimensat(AT_FDCWD, path, (const struct timespec[2]){ before->st_atim, before->st_mtim },
			  AT_SYMLINK_NOFOLLOW);
}

int posix_exchange(const struct reimage_host *host, const char *a, const char *b,
		   struct reimage_error *err)
{
	struct stat sa, sb;
	int have = lstat(a, &sa) == 0 && lstat(b, &sb) == 0;

	if (rename2(a, b, RENAME_EXCHANGE) == 0) {
		/* XFS gives two directories exchanged across parents the time
		 * of the exchange (their ".." changed): both images keep their
		 * own, an old one rolled back too. */
		if (have) {
			keep_times(b, &sa);
			keep_times(a, &sb);
		}
		return 0;
	}
	int e = errno;
	host->error(err, -e, class_of(e), "exchange %s and %s: %s", a, b, strerror(e));
	return -e;
}

int posix_is_mount(const struct reimage_host *host, const char *path, struct reimage_error *err)
{
	char parent[PATH_MAX];
	struct stat st, pst;

#if defined(STATX_ATTR_MOUNT_ROOT)
	/* statx knows bind mounts of the same filesystem too. */
	struct statx stx;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) == 0 &&
	    (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
#endif
	if (lstat(path, &st) < 0) {
		int e = errno;
		host->error(err, -e, class_of(e), "stat %s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(parent, &pst) < 0) {
		int e = errno;
		host->error(err, -e, class_of(e), "stat %s: %s", parent, strerror(e));
		return -e;
	}
	return st.st_dev != pst.st_dev || st.st_ino == pst.st_ino;
}

int posix_sync(const struct reimage_host *host, const char *path, struct reimage_error *err)
{
	/* syncfs on a descriptor of the volume itself, not a path through a
	 * bind mount: it flushes every rename the swap made, in one call. */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		host->error(err, -e, class_of(e), "sync %s: %s", path, strerror(e));
		return -e;
	}
	close(fd);
	return 0;
}

/* ------------------------------------------- the renames as backend ops */

static int rename_move(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	return posix_move(ctx, from, to, err);
}

static int rename_exchange(void *ctx, const char *a, const char *b, struct reimage_error *err)
{
	return posix_exchange(ctx, a, b, err);
}

static int rename_is_mount(void *ctx, const char *path, struct reimage_error *err)
{
	return posix_is_mount(ctx, path, err);
}

static int rename_sync(void *ctx, const char *path, struct reimage_error *err)
{
	return posix_sync(ctx, path, err);
}

/* A refreshed mount's aside is visible only while the mount is mounted,
 * which it is not when the guard runs (before fstab): swap.c then skips
 * the step.  Should one be visible, its content is left whole for the old
 * image's agent (fallback's mounts=), not half-restored here. */
static int rename_mount_left(void *ctx, const char *mount, const char *aside,
			     struct reimage_error *err)
{
	const struct reimage_host *host = ctx;
	(void)aside;
	(void)err;
	host->log(REIMAGE_LOG_NOTICE, "fallback: %s is left to the old image's agent", mount);
	return 0;
}

const struct reimage_backend_ops posix_rename_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_backend_ops),
	.name = "posix-renames",
	.caps = REIMAGE_BCAP_EXCHANGE,
	.move = rename_move,
	.exchange = rename_exchange,
	.is_mount = rename_is_mount,
	.sync = rename_sync,
	.mount_restore = rename_mount_left,
};
