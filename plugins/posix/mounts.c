/*
 * mounts.c -- SWAP for a mounted top-level directory (a separate /boot,
 * an EFI partition on /boot/efi's parent): a mount point cannot be
 * renamed away, so the directory stays in place and its content is
 * replaced instead.
 *
 *   1. aside (on the mount's filesystem, empty or missing) is created;
 *   2. every entry of the mount but aside and lost+found (which fsck
 *      needs at the filesystem's top) is renamed into aside -- renames on
 *      one filesystem, nothing copied, nothing lost;
 *   3. the staged tree is copied into the mount, keeping owner, mode,
 *      times, symlinks, device nodes and FIFOs (hard links become
 *      separate files; ACLs and xattrs are not copied: a /boot needs
 *      none; on vfat the mount's options decide owner and mode);
 *   4. the filesystem is synced.
 * If 3 or 4 fails, the copy is removed and the old entries are renamed
 * back from aside, so the mount is as it was and the error is returned.
 * Rolling back later is the same undo: remove the mount's entries (but
 * aside and lost+found) and rename aside's entries back.
 */
#define _GNU_SOURCE
#include "posix.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define COPY_DEPTH_MAX 64  /* deeper trees are refused, not recursed into */

/* One mount_copy: the descriptors and names every step needs. */
struct refresh {
	struct posix *px;
	const char *staged, *mount, *aside;
	const char *aside_name;  /* aside's name if it is directly in mount, else NULL */
	dev_t dev;               /* the mount's filesystem */
	struct reimage_error *err;
};

/* lost+found and aside are skipped at the top of a tree only. */
static int is_skipped(const struct refresh *rf, const char *name, int top)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	       (top && strcmp(name, "lost+found") == 0) ||
	       (top && rf->aside_name && strcmp(name, rf->aside_name) == 0);
}

/* Call fn for every entry of the directory dirfd (but "." and "..", and
 * at the top also aside and lost+found); stops at the first failure. */
static int for_each_entry(struct refresh *rf, int dirfd, const char *where, int top,
			  int (*fn)(struct refresh *rf, int dirfd, const char *name, void *arg),
			  void *arg)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dir;
	int r = 0;

	if (fd < 0 || !(dir = fdopendir(fd))) {
		r = posix_fail(rf->px, rf->err, errno, "mount %s: list %s", rf->mount, where);
		if (fd >= 0)
			close(fd);
		return r;
	}
	while (r == 0 && (errno = 0, de = readdir(dir)))
		if (!is_skipped(rf, de->d_name, top))
			r = fn(rf, dirfd, de->d_name, arg);
	if (r == 0 && errno)
		r = posix_fail(rf->px, rf->err, errno, "mount %s: list %s", rf->mount, where);
	closedir(dir);
	return r;
}

static int rename_into(struct refresh *rf, int dirfd, const char *name, void *arg)
{
	int to = *(int *)arg;

	if (syscall(SYS_renameat2, dirfd, name, to, name, RENAME_NOREPLACE) < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: move '%s'", rf->mount, name);
	return 0;
}

/* Remove name under dirfd and everything below it, without following
 * symlinks or leaving the mount's filesystem. */
static int remove_entry(struct refresh *rf, int dirfd, const char *name, void *arg)
{
	struct stat st;
	int fd, r;

	(void)arg;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: remove '%s'", rf->mount, name);
	if (S_ISDIR(st.st_mode)) {
		if (st.st_dev != rf->dev)
			return posix_fail(rf->px, rf->err, EXDEV, "mount %s: remove '%s'", rf->mount,
					  name);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return posix_fail(rf->px, rf->err, errno, "mount %s: remove '%s'", rf->mount,
					  name);
		r = for_each_entry(rf, fd, name, 0, remove_entry, NULL);
		close(fd);
		if (r < 0)
			return r;
	}
	if (unlinkat(dirfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: remove '%s'", rf->mount, name);
	return 0;
}

/* A filesystem without Unix owners (vfat, an EFI system partition or an
 * XBOOTLDR /boot) refuses even root a chown or chmod: there the mount's
 * options decide owner and mode, and the copy goes on. */
static int no_unix_owners(int r)
{
	return r < 0 && errno == EPERM && geteuid() == 0;
}

/* Owner, then mode (chown clears set-id bits), then times, of a copied
 * entry: through fd when there is one, else by name (symlinks, nodes). */
static int copy_metadata(struct refresh *rf, int dirfd, const char *name, int fd,
			 const struct stat *st)
{
	const struct timespec times[2] = { st->st_atim, st->st_mtim };
	int r;

	r = fd >= 0 ? fchown(fd, st->st_uid, st->st_gid)
		    : fchownat(dirfd, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
	if (r == 0 && !S_ISLNK(st->st_mode))
		r = fd >= 0 ? fchmod(fd, st->st_mode & 07777)
			    : fchmodat(dirfd, name, st->st_mode & 07777, 0);
	if (no_unix_owners(r))
		r = 0;
	if (r == 0)
		r = fd >= 0 ? futimens(fd, times) : utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: set owner, mode or times of '%s'",
				  rf->mount, name);
	return 0;
}

static int copy_data(struct refresh *rf, int in, int out, const char *name)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return posix_fail(rf->px, rf->err, errno, "mount %s: read staged '%s'",
					  rf->mount, name);
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));
			if (w < 0 && errno != EINTR)
				return posix_fail(rf->px, rf->err, errno, "mount %s: write '%s'",
						  rf->mount, name);
			done += w > 0 ? w : 0;
		}
	}
	return 0;
}

static int copy_entry(struct refresh *rf, int sdir, int ddir, const char *name, int depth);

struct copy_dirs {
	int ddir;
	int depth;
};

static int copy_child(struct refresh *rf, int sdir, const char *name, void *arg)
{
	const struct copy_dirs *cd = arg;
	return copy_entry(rf, sdir, cd->ddir, name, cd->depth);
}

/* Open name in both trees as directories and copy what is below. */
static int copy_dir(struct refresh *rf, int sdir, int ddir, const char *name,
		    const struct stat *st, int depth)
{
	struct copy_dirs cd = { .depth = depth + 1 };
	int sfd, r;

	if (depth >= COPY_DEPTH_MAX)
		return posix_fail(rf->px, rf->err, ELOOP, "mount %s: copy '%s'", rf->mount, name);
	if (mkdirat(ddir, name, 0700) < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: create '%s'", rf->mount, name);
	sfd = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	cd.ddir = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0 || cd.ddir < 0)
		r = posix_fail(rf->px, rf->err, errno, "mount %s: open '%s'", rf->mount, name);
	else
		r = for_each_entry(rf, sfd, name, 0, copy_child, &cd);
	/* Times last: creating the children changed them. */
	if (r == 0)
		r = copy_metadata(rf, ddir, name, cd.ddir, st);
	if (sfd >= 0)
		close(sfd);
	if (cd.ddir >= 0)
		close(cd.ddir);
	return r;
}

static int copy_file(struct refresh *rf, int sdir, int ddir, const char *name,
		     const struct stat *st)
{
	int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), out = -1, r;

	if (in < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: open staged '%s'", rf->mount,
				  name);
	out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		r = posix_fail(rf->px, rf->err, errno, "mount %s: create '%s'", rf->mount, name);
	else if ((r = copy_data(rf, in, out, name)) == 0)
		r = copy_metadata(rf, ddir, name, out, st);
	close(in);
	if (out >= 0)
		close(out);
	return r;
}

static int copy_symlink(struct refresh *rf, int sdir, int ddir, const char *name,
			const struct stat *st)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(sdir, name, target, sizeof(target) - 1);

	if (n < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: read link '%s'", rf->mount, name);
	target[n] = '\0';
	if (symlinkat(target, ddir, name) < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: create link '%s'", rf->mount,
				  name);
	return copy_metadata(rf, ddir, name, -1, st);
}

static int copy_entry(struct refresh *rf, int sdir, int ddir, const char *name, int depth)
{
	struct stat st;

	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: stat staged '%s'", rf->mount,
				  name);
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR:
		return copy_dir(rf, sdir, ddir, name, &st, depth);
	case S_IFREG:
		return copy_file(rf, sdir, ddir, name, &st);
	case S_IFLNK:
		return copy_symlink(rf, sdir, ddir, name, &st);
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
		if (mknodat(ddir, name, st.st_mode & S_IFMT, st.st_rdev) < 0)
			return posix_fail(rf->px, rf->err, errno, "mount %s: create '%s'", rf->mount,
					  name);
		return copy_metadata(rf, ddir, name, -1, &st);
	default:  /* a socket is a live endpoint, not content */
		rf->px->host->log(REIMAGE_LOG_DEBUG, "posix: mount %s: socket '%s' not copied",
				  rf->mount, name);
		return 0;
	}
}

/* aside: created if missing (then *ret_created = 1), else it must be an empty
 * directory; either way on the mount's filesystem, for renames. */
static int open_aside(struct refresh *rf, const struct stat *mount_st, int *ret_created)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(rf->aside, '/');
	struct stat st;
	int fd, empty;

	*ret_created = 0;
	if (!slash || slash == rf->aside ||
	    snprintf(parent, sizeof(parent), "%.*s", (int)(slash - rf->aside), rf->aside) >=
		    (int)sizeof(parent)) {
		rf->px->host->error(rf->err, -EINVAL, REIMAGE_EC_CONFIG,
				    "mount %s: aside '%s' must be an absolute path below /",
				    rf->mount, rf->aside);
		return -EINVAL;
	}
	if (stat(parent, &st) < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: aside %s", rf->mount, rf->aside);
	if (st.st_dev != rf->dev) {
		rf->px->host->error(rf->err, -EXDEV, REIMAGE_EC_STATE,
				    "mount %s: aside %s is not on the mount's filesystem",
				    rf->mount, rf->aside);
		return -EXDEV;
	}
	if (st.st_ino == mount_st->st_ino)
		rf->aside_name = slash + 1;
	if (mkdir(rf->aside, 0700) == 0)
		*ret_created = 1;
	else if (errno != EEXIST)
		return posix_fail(rf->px, rf->err, errno, "mount %s: create aside %s", rf->mount,
				  rf->aside);
	fd = open(rf->aside, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return posix_fail(rf->px, rf->err, errno, "mount %s: open aside %s", rf->mount,
				  rf->aside);
	if (!*ret_created) {
		/* An aside with content may hold the only old copy of an
		 * earlier run: it is never mixed with or overwritten. */
		DIR *dir = fdopendir(dup(fd));
		struct dirent *de;
		empty = 1;
		while (dir && (de = readdir(dir)))
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, ".."))
				empty = 0;
		if (dir)
			closedir(dir);
		if (!dir || !empty) {
			close(fd);
			rf->px->host->error(rf->err, -ENOTEMPTY, REIMAGE_EC_STATE,
					    "mount %s: aside %s is not empty (old content of an "
					    "earlier run?)", rf->mount, rf->aside);
			return -ENOTEMPTY;
		}
	}
	return fd;
}

/* Put the old entries back: remove what was copied (if copying began),
 * rename aside's entries back into the mount. */
static int restore(struct refresh *rf, int mount_fd, int aside_fd, int copied)
{
	int r = copied ? for_each_entry(rf, mount_fd, rf->mount, 1, remove_entry, NULL) : 0;
	return r < 0 ? r : for_each_entry(rf, aside_fd, rf->aside, 1, rename_into, &mount_fd);
}

/* Undo after a failure.  The first error stays the one returned; a
 * failing undo is logged with where the old content is. */
static void undo(struct refresh *rf, int mount_fd, int aside_fd, int created, int copied)
{
	struct reimage_error undo_err = { 0 };
	struct refresh u = *rf;

	u.err = &undo_err;
	if (restore(&u, mount_fd, aside_fd, copied) < 0) {
		rf->px->host->log(REIMAGE_LOG_ERROR,
				  "posix: mount %s: cannot restore the old content (%s); it is "
				  "in %s", rf->mount, undo_err.msg, rf->aside);
		return;
	}
	if (created && rmdir(rf->aside) < 0)
		rf->px->host->log(REIMAGE_LOG_WARNING, "posix: mount %s: remove %s: %s", rf->mount,
				  rf->aside, strerror(errno));
}

int posix_mount_restore(void *ctx, const char *mount, const char *aside,
			struct reimage_error *err)
{
	struct refresh rf = { .px = ctx, .mount = mount, .aside = aside, .err = err };
	const char *slash = strrchr(aside, '/');
	int mount_fd, aside_fd, r;
	struct stat st;

	aside_fd = open(aside, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (aside_fd < 0)
		return errno == ENOENT ? 0 : posix_fail(rf.px, err, errno, "mount %s: aside %s",
							mount, aside);
	mount_fd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mount_fd < 0 || fstat(mount_fd, &st) < 0) {
		r = posix_fail(rf.px, err, errno, "mount %s", mount);
		goto out;
	}
	rf.dev = st.st_dev;
	/* As in open_aside(): aside directly in the mount is skipped there. */
	char parent[PATH_MAX];
	struct stat pst;
	if (slash && snprintf(parent, sizeof(parent), "%.*s", (int)(slash - aside), aside) <
			     (int)sizeof(parent) &&
	    stat(parent, &pst) == 0 && pst.st_ino == st.st_ino && pst.st_dev == st.st_dev)
		rf.aside_name = slash + 1;
	if ((r = restore(&rf, mount_fd, aside_fd, 1)) == 0 && rmdir(aside) < 0)
		r = posix_fail(rf.px, err, errno, "mount %s: remove %s", mount, aside);
	if (r == 0 && syncfs(mount_fd) < 0)
		r = posix_fail(rf.px, err, errno, "mount %s: sync", mount);
out:
	if (mount_fd >= 0)
		close(mount_fd);
	close(aside_fd);
	return r;
}

int posix_mount_copy(void *ctx, const char *staged, const char *mount, const char *aside,
		     struct reimage_error *err)
{
	struct refresh rf = { .px = ctx, .staged = staged, .mount = mount, .aside = aside,
			      .err = err };
	struct copy_dirs cd = { .depth = 0 };
	int staged_fd = -1, aside_fd = -1, created = 0, r;
	struct stat st;

	cd.ddir = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cd.ddir < 0 || fstat(cd.ddir, &st) < 0) {
		r = posix_fail(rf.px, err, errno, "mount %s", mount);
		goto out;
	}
	rf.dev = st.st_dev;
	staged_fd = open(staged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (staged_fd < 0) {
		r = posix_fail(rf.px, err, errno, "mount %s: staged %s", mount, staged);
		goto out;
	}
	if ((r = aside_fd = open_aside(&rf, &st, &created)) < 0)
		goto out;
	/* A failed move leaves old entries in the mount: only move back. */
	if ((r = for_each_entry(&rf, cd.ddir, mount, 1, rename_into, &aside_fd)) < 0) {
		undo(&rf, cd.ddir, aside_fd, created, 0);
		goto out;
	}
	r = for_each_entry(&rf, staged_fd, staged, 1, copy_child, &cd);
	if (r == 0 && syncfs(cd.ddir) < 0)
		r = posix_fail(rf.px, err, errno, "mount %s: sync", mount);
	if (r < 0)
		undo(&rf, cd.ddir, aside_fd, created, 1);
out:
	if (cd.ddir >= 0)
		close(cd.ddir);
	if (staged_fd >= 0)
		close(staged_fd);
	if (aside_fd >= 0)
		close(aside_fd);
	return r;
}
