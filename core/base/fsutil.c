/*
 * fsutil.c -- filesystem helpers (see fsutil.h).  Every durability step
 * says why it is there.
 */
#define _GNU_SOURCE
#include "fsutil.h"
#include "error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

int fs_join(char *buf, size_t len, const char *a, const char *b)
{
	size_t la = strlen(a);
	while (*b == '/')
		b++;
	int n = snprintf(buf, len, "%s%s%s", a, (la && a[la - 1] == '/') || !*b ? "" : "/", b);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fs_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

int fs_sync_dir(const char *path, struct reimage_error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err_sys(err, -errno, "open directory %s", path);
		return -errno;
	}
	if (fsync(fd) < 0) {
		int e = -errno;
		close(fd);
		err_sys(err, e, "fsync %s", path);
		return e;
	}
	close(fd);
	return 0;
}

int fs_sync_parent(const char *path, struct reimage_error *err)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	return fs_sync_dir(dir, err);
}

int fs_write_atomic(const char *path, const void *data, size_t len, const struct stat *like,
		    struct reimage_error *err)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd, e;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  like ? like->st_mode & 07777 : 0644);
	if (fd < 0) {
		e = -errno;
		err_sys(err, e, "create %s", tmp);
		return e;
	}
	/* Owner first (it clears set-id bits), then the mode. */
	if (like && (fchown(fd, like->st_uid, like->st_gid) < 0 ||
		     fchmod(fd, like->st_mode & 07777) < 0)) {
		e = -errno;
		err_sys(err, e, "set owner and mode of %s", tmp);
		goto fail;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = -errno;
			err_sys(err, e, "write %s", tmp);
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	/* The data must be on disk before the name points at it. */
	if (fsync(fd) < 0) {
		e = -errno;
		err_sys(err, e, "fsync %s", tmp);
		goto fail;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		e = -errno;
		err_sys(err, e, "rename %s to %s", tmp, path);
		goto fail;
	}
	/* The rename itself is durable only once its directory is synced. */
	return fs_sync_parent(path, err);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return e;
}

int fs_read_small(const char *path, size_t cap, char **ret_data, size_t *ret_len,
		  struct reimage_error *err)
{
	struct stat st;
	size_t have = 0;
	char *buf;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = -errno;
		err_sys(err, e, "open %s", path);
		return e;
	}
	if (fstat(fd, &st) < 0) {
		e = -errno;
		close(fd);
		err_sys(err, e, "stat %s", path);
		return e;
	}
	if ((size_t)st.st_size > cap) {
		close(fd);
		err_set(err, -EFBIG, REIMAGE_EC_INTEGRITY, "%s: larger than %zu bytes", path, cap);
		return -EFBIG;
	}
	/* Room for the size fstat saw and one byte more (so that a file that
	 * grew since is noticed), grown up to cap + 1 if it did: not cap
	 * itself, which for a journal is 64 MiB. */
	size_t room = (size_t)st.st_size + 1;
	buf = malloc(room + 1);
	if (!buf) {
		close(fd);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	for (;;) {
		if (have == room) {
			size_t more = room > (cap + 1) / 2 ? cap + 1 : room * 2;
			char *grown = more > room ? realloc(buf, more + 1) : NULL;
			if (!grown) {
				free(buf);
				close(fd);
				err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
				return -ENOMEM;
			}
			buf = grown;
			room = more;
		}
		ssize_t n = read(fd, buf + have, room - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = -errno;
			free(buf);
			close(fd);
			err_sys(err, e, "read %s", path);
			return e;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > cap) {
			free(buf);
			close(fd);
			err_set(err, -EFBIG, REIMAGE_EC_INTEGRITY, "%s: larger than %zu bytes", path, cap);
			return -EFBIG;
		}
	}
	close(fd);
	buf[have] = '\0';
	*ret_data = buf;
	if (ret_len)
		*ret_len = have;
	return 0;
}

static int remove_at(int parent, const char *name, dev_t dev, struct reimage_error *err,
		     const char *top)
{
	struct stat st;
	int fd, e = 0;
	DIR *d;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : (err_sys(err, -errno, "remove %s: stat %s", top, name), -errno);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(parent, name, 0) < 0 && errno != ENOENT) {
			e = -errno;
			err_sys(err, e, "remove %s: unlink %s", top, name);
		}
		return e;
	}
	if (st.st_dev != dev) {
		err_set(err, -EXDEV, REIMAGE_EC_IO,
			"remove %s: %s is a mount point; refusing to cross it", top, name);
		return -EXDEV;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		e = -errno;
		err_sys(err, e, "remove %s: open %s", top, name);
		return e;
	}
	d = fdopendir(fd);
	if (!d) {
		e = -errno;
		close(fd);
		err_sys(err, e, "remove %s", top);
		return e;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((e = remove_at(dirfd(d), de->d_name, dev, err, top)) < 0)
			break;
	}
	closedir(d);
	if (e == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
		e = -errno;
		err_sys(err, e, "remove %s: rmdir %s", top, name);
	}
	return e;
}

int fs_remove_tree(const char *path, struct reimage_error *err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (err_sys(err, -errno, "stat %s", path), -errno);
	return remove_at(AT_FDCWD, path, st.st_dev, err, path);
}

int fs_mkdir_p(const char *dir, mode_t mode, struct reimage_error *err)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/", dir) >= (int)sizeof(path)) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	for (char *p = path; (p = strchr(p + 1, '/'));) {
		*p = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST) {
			err_sys(err, -errno, "mkdir %s", path);
			return err->code;
		}
		*p = '/';
	}
	return 0;
}

/* A directory with its final owner and mode at path, never visible there
 * with any other: made as tmpdir/mkdir.tmp, given owner and mode, then
 * renamed into place (RENAME_NOREPLACE: an entry there is never replaced).
 * A crash leaves at most the temporary, outside both images. */
static int mkdir_final(const char *path, const char *tmpdir, mode_t mode, uid_t uid, gid_t gid,
		       struct reimage_error *err)
{
	char tmp[PATH_MAX];
	int r;

	if (fs_join(tmp, sizeof(tmp), tmpdir, "mkdir.tmp") < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "%s: path too long", tmpdir);
		return -ENAMETOOLONG;
	}
	if ((r = fs_remove_tree(tmp, err)) < 0)
		return r;
	if (mkdir(tmp, 0700) < 0) {
		err_sys(err, -errno, "mkdir %s", tmp);
		return -errno;
	}
	/* Owner first: chown clears set-id bits, chmod restores them. */
	if (lchown(tmp, uid, gid) < 0 || chmod(tmp, mode) < 0) {
		err_sys(err, -errno, "set owner and mode of %s", tmp);
		return -errno;
	}
	r = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
	if (r < 0 && errno == EINVAL)
		r = rename(tmp, path);  /* a filesystem without the flag */
	if (r < 0) {
		r = -errno;
		rmdir(tmp);
		err_sys(err, r, "rename %s to %s", tmp, path);
		return r;
	}
	return 0;
}

int fs_make_parents(const char *base, const char *rel, const char *model, const char *tmpdir,
		    struct reimage_error *err)
{
	char sub[PATH_MAX], path[PATH_MAX], mpath[PATH_MAX];
	struct stat st;
	int r;

	snprintf(sub, sizeof(sub), "%s", rel);
	for (char *p = sub; (p = strchr(p + 1, '/'));) {
		*p = '\0';
		if (fs_join(path, sizeof(path), base, sub) < 0) {
			err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "%s/%s: path too long", base, sub);
			return -ENAMETOOLONG;
		}
		if (lstat(path, &st) == 0) {
			if (!S_ISDIR(st.st_mode)) {
				err_set(err, -ENOTDIR, REIMAGE_EC_IO, "%s: not a directory", path);
				return -ENOTDIR;
			}
		} else {
			mode_t mode = 0755;
			uid_t uid = 0;
			gid_t gid = 0;
			if (model && fs_join(mpath, sizeof(mpath), model, sub) == 0 &&
			    lstat(mpath, &st) == 0 && S_ISDIR(st.st_mode)) {
				mode = st.st_mode & 07777;
				uid = st.st_uid;
				gid = st.st_gid;
			}
			if ((r = mkdir_final(path, tmpdir, mode, uid, gid, err)) < 0)
				return r;
		}
		*p = '/';
	}
	return 0;
}

int fs_parents_real(const char *base, const char *rel, struct reimage_error *err)
{
	char sub[PATH_MAX], path[PATH_MAX];
	struct stat st;

	snprintf(sub, sizeof(sub), "%s", rel);
	for (char *p = sub; (p = strchr(p + 1, '/'));) {
		*p = '\0';
		fs_join(path, sizeof(path), base, sub);
		if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
			err_set(err, -ELOOP, REIMAGE_EC_INTEGRITY,
				"%s: %s is a symbolic link; refusing to follow it", rel, path);
			return -ELOOP;
		}
		*p = '/';
	}
	return 0;
}

int fs_free_bytes(const char *path, uint64_t *ret, struct reimage_error *err)
{
	struct statvfs sv;
	if (statvfs(path, &sv) < 0) {
		err_sys(err, -errno, "statvfs %s", path);
		return -errno;
	}
	*ret = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

/* The kernel's path walk, done by hand so that root stands for "/". */
int fs_resolve_in(const char *root, const char *rel, int follow_last, char *ret, size_t len)
{
	char rest[PATH_MAX], cur[PATH_MAX] = "", next[PATH_MAX], full[PATH_MAX];
	char target[PATH_MAX], comp[NAME_MAX + 1], joined[PATH_MAX];
	int links = 0;

	snprintf(rest, sizeof(rest), "%s", rel);
	for (const char *p = rest; *p;) {
		size_t n;
		struct stat st;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		n = strcspn(p, "/");
		if (n > NAME_MAX)
			return -ENAMETOOLONG;
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n;
		while (*p == '/')
			p++;
		int last = !*p;
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			char *s = strrchr(cur, '/');
			*(s ? s : cur) = '\0';
			continue;
		}
		if (snprintf(next, sizeof(next), "%s%s%s", cur, *cur ? "/" : "", comp) >=
			    (int)sizeof(next) ||
		    fs_join(full, sizeof(full), root, next) < 0)
			return -ENAMETOOLONG;
		if (lstat(full, &st) < 0) {
			if (errno != ENOENT || !last || follow_last)
				return -errno;
			memcpy(cur, next, sizeof(cur));  /* a missing final entry */
			break;
		}
		if (S_ISLNK(st.st_mode) && (!last || follow_last)) {
			ssize_t t = readlink(full, target, sizeof(target) - 1);
			if (t < 0)
				return -errno;
			target[t] = '\0';
			if (++links > FS_SYMLINKS_MAX)
				return -ELOOP;
			/* The rest of the walk: the target, then what followed. */
			if (snprintf(joined, sizeof(joined), "%s/%s", target, p) >= (int)sizeof(joined))
				return -ENAMETOOLONG;
			if (target[0] == '/')
				cur[0] = '\0';
			memcpy(rest, joined, sizeof(rest));
			p = rest;
			continue;
		}
		if (!last && !S_ISDIR(st.st_mode))
			return -ENOTDIR;
		memcpy(cur, next, sizeof(cur));
	}
	if (strlen(cur) >= len)
		return -ENAMETOOLONG;
	memcpy(ret, cur, strlen(cur) + 1);
	return 0;
}
