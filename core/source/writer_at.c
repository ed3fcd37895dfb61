/*
 * writer_at.c -- STAGE's disk writer on Linux (see writer_at.h).
 *
 * Why not libarchive's: its secure mode checks every component of every
 * entry's absolute path for symlinks from user space (an lstat per
 * component, staging's own prefix included) and then opens the entry by
 * that path, walked again: ~39 system calls per entry against GNU tar's 9,
 * and a window between the check and the open.  Here the kernel does the
 * check, in the lookup itself: every directory is opened with openat2()
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS from a
 * descriptor already beneath staging, and every entry is then created by
 * its last name alone in that directory (no '/', no ".."; O_NOFOLLOW or
 * O_EXCL where it is opened), so no symlink an image plants is ever
 * followed and nothing can land outside staging.
 *
 * The descriptors of the directories last used are kept as a stack of
 * nested prefixes of the current directory: a sorted archive (every tar
 * made of a tree) then costs one openat2 per directory entered and none
 * per file.  A small file costs openat2, write, futimens and close;
 * fchown, fchmod and fsetxattr only when the entry needs them.
 *
 * Directories get their final mode, ACLs, flags and times at the end
 * (entries written into them would change their times; a read-only mode
 * would refuse them to a writer that is not root), through descriptors
 * opened beneath staging again: a directory since replaced by a symlink
 * is never reached through it.
 */
#define _GNU_SOURCE
#include "writer_at.h"
#include "log.h"
#include "stage.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int announced;  /* the writer chosen has been logged (once a process) */

/* WRITER_AT_ENV: 1 this writer, 0 libarchive's, -1 whichever the kernel
 * allows; -2 a value that is neither. */
static int wanted(void)
{
	const char *v = getenv(WRITER_AT_ENV);
	if (!v || !*v)
		return -1;
	if (strcmp(v, "at") == 0)
		return 1;
	return strcmp(v, "libarchive") == 0 ? 0 : -2;
}

/* The first writer_at_open of a process says which writer writes. */
static void announce(const char *how)
{
	if (!announced)
		log_info("STAGE: %s", how);
	announced = 1;
}

#if defined(__linux__)

#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Directory descriptors kept: a path deeper than this many levels below
 * staging replaces the deepest one (correct, just fewer cached). */
#define STACK_MAX 48

#define RESOLVE_INSIDE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

struct level {
	int fd;
	size_t len;      /* its path is dir[0..len) ("" for staging) */
	int sgid;        /* set-group-ID: what is made in it takes its group */
};

/* A directory's metadata, applied when the writer closes. */
struct fixup {
	char *path;
	size_t seq;                /* order of the entries: the later one wins */
	mode_t mode;               /* 07777 */
	int chmod, times;
	struct timespec ts[2];
	unsigned long fl_set, fl_clear;
	char *acl[2];              /* system.posix_acl_access, _default (or NULL) */
	size_t acl_len[2];
};

struct writer_at {
	struct level stack[STACK_MAX];
	int depth;                 /* stack[0] is staging itself */
	char dir[PATH_MAX];        /* path of stack[depth - 1] */
	mode_t umask;
	uid_t euid;
	gid_t egid;
	struct fixup *fix;
	size_t n_fix, cap_fix;
	/* The entry between header and finish. */
	struct archive_entry *e;
	char rel[PATH_MAX];        /* for messages */
	int fd;                    /* its data goes there (-1: none) */
	int dfd;                   /* its directory (a stack entry: not closed) */
	char name[NAME_MAX + 1];   /* its last name */
	int owner_unknown;         /* not made by this writer, or made in a set-group-ID
				    * directory: its owner is to be set */
	int64_t size, end;         /* declared size (-1: none); end of the data written */
};

static long sys_openat2(int dfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC), .mode = mode, .resolve = RESOLVE_INSIDE,
	};
	return syscall(SYS_openat2, dfd, path, &how, sizeof(how));
}

/* A failure to write rel: a full disk is the machine's (I/O), anything
 * else the image's (integrity). */
static int fail(struct reimage_error *err, int en, const char *rel, const char *fmt, ...)
	REIMAGE_PRINTF(4, 5);
static int fail(struct reimage_error *err, int en, const char *rel, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	err_set(err, -en, en == ENOSPC || en == EDQUOT || en == EIO ? REIMAGE_EC_IO
								     : REIMAGE_EC_INTEGRITY,
		"extract '%s': %s: %s", rel, what, strerror(en));
	return -en;
}

/* ----------------------------------------------------- directory stack */

static void pop_to(struct writer_at *w, int depth)
{
	while (w->depth > depth)
		close(w->stack[--w->depth].fd);
	w->dir[w->stack[w->depth - 1].len] = '\0';
}

/* Push fd, the directory path[0..len) below the top; a full stack has
 * its top replaced (the new path extends it, so the stack stays nested). */
static void push(struct writer_at *w, int fd, const char *path, size_t len, int sgid)
{
	if (w->depth == STACK_MAX)
		close(w->stack[--w->depth].fd);
	w->stack[w->depth++] = (struct level){ .fd = fd, .len = len, .sgid = sgid };
	memcpy(w->dir, path, len);
	w->dir[len] = '\0';
}

/* The deepest stacked directory holding path (staging always does). */
static int holder(const struct writer_at *w, const char *path, size_t len)
{
	int i = w->depth - 1;
	while (i > 0 && !(w->stack[i].len <= len && memcmp(w->dir, path, w->stack[i].len) == 0 &&
			  (path[w->stack[i].len] == '/' || path[w->stack[i].len] == '\0')))
		i--;
	return i;
}

static int lookup_failed(struct reimage_error *err, int en, const char *rel, const char *dir)
{
	if (en == ELOOP)
		return fail(err, en, rel, "'%s' is or passes a symbolic link; refusing to follow it",
			    dir);
	if (en == EXDEV)
		return fail(err, en, rel, "'%s' leads outside staging", dir);
	return fail(err, en, rel, "directory '%s'", dir);
}

/* Open a directory of staging beneath dfd (no symlink, no escape), with
 * whether it is set-group-ID if ret_sgid; the caller pushes or closes it. */
static int open_dir(int dfd, const char *path, int *ret_sgid)
{
	struct stat st;
	int fd = (int)sys_openat2(dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return -errno;
	if (!ret_sgid)
		return fd;
	if (fstat(fd, &st) < 0) {
		int en = errno;
		close(fd);
		return -en;
	}
	*ret_sgid = (st.st_mode & S_ISGID) != 0;
	return fd;
}

/* The descriptor of the directory path (normalised: no "", "." or ".."
 * component, no trailing '/'; "" is staging), made the stack's top.
 * Missing directories are made, as tar makes them: mode 0777 less the
 * umask, the time of now, no entry of their own. */
static int enter(struct writer_at *w, const char *path, const char *rel,
		 struct reimage_error *err)
{
	size_t len = strlen(path), pos;
	int i = holder(w, path, len), fd, sgid;

	pop_to(w, i + 1);
	if (w->stack[i].len == len)
		return w->stack[i].fd;
	pos = w->stack[i].len ? w->stack[i].len + 1 : 0;
	if ((fd = open_dir(w->stack[i].fd, path + pos, &sgid)) >= 0) {
		push(w, fd, path, len, sgid);
		return fd;
	}
	if (fd != -ENOENT)
		return lookup_failed(err, -fd, rel, path);
	/* One level at a time from the deepest that exists. */
	while (pos < len) {
		char name[NAME_MAX + 1];
		size_t end = pos;
		int top = w->stack[w->depth - 1].fd;
		while (end < len && path[end] != '/')
			end++;
		if (end - pos > NAME_MAX)
			return fail(err, ENAMETOOLONG, rel, "directory '%.*s'", (int)end, path);
		memcpy(name, path + pos, end - pos);
		name[end - pos] = '\0';
		fd = open_dir(top, name, &sgid);
		if (fd == -ENOENT) {
			if (mkdirat(top, name, 0777) < 0 && errno != EEXIST)
				return fail(err, errno, rel, "make directory '%.*s'", (int)end, path);
			fd = open_dir(top, name, &sgid);
		}
		if (fd < 0)
			return lookup_failed(err, -fd, rel, path);
		push(w, fd, path, end, sgid);
		pos = end + 1;
	}
	return w->stack[w->depth - 1].fd;
}

/* ------------------------------------------------------------ metadata */

/* Where an entry's metadata goes: its open descriptor, or its name in a
 * directory for what is not to be opened (symlinks, devices, FIFOs). */
struct node {
	int fd, dfd;
	const char *name;
};

static int node_chown(const struct node *n, uid_t uid, gid_t gid)
{
	return n->fd >= 0 ? fchown(n->fd, uid, gid)
			  : fchownat(n->dfd, n->name, uid, gid, AT_SYMLINK_NOFOLLOW);
}

/* Never for a symlink (Linux has no mode on them); the name is one this
 * writer has just made in a directory only it writes to. */
static int node_chmod(const struct node *n, mode_t mode)
{
	return n->fd >= 0 ? fchmod(n->fd, mode) : fchmodat(n->dfd, n->name, mode, 0);
}

static int node_setxattr(const struct node *n, const char *key, const void *value, size_t len)
{
	char path[64 + NAME_MAX];
	if (n->fd >= 0)
		return fsetxattr(n->fd, key, value, len, 0);
	/* A symlink or a device has no descriptor to set it through: its
	 * name in the directory's descriptor, the link itself not followed. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", n->dfd, n->name);
	return lsetxattr(path, key, value, len, 0);
}

static int node_times(const struct node *n, const struct timespec ts[2])
{
	return n->fd >= 0 ? futimens(n->fd, ts)
			  : utimensat(n->dfd, n->name, ts, AT_SYMLINK_NOFOLLOW);
}

/* The entry's times (UTIME_OMIT what it does not carry); 0 if none. */
static int entry_times(struct archive_entry *e, struct timespec ts[2])
{
	ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
	ts[0].tv_sec = ts[1].tv_sec = 0;
	if (archive_entry_atime_is_set(e)) {
		ts[0].tv_sec = archive_entry_atime(e);
		ts[0].tv_nsec = archive_entry_atime_nsec(e);
	}
	if (archive_entry_mtime_is_set(e)) {
		ts[1].tv_sec = archive_entry_mtime(e);
		ts[1].tv_nsec = archive_entry_mtime_nsec(e);
	}
	return ts[0].tv_nsec != UTIME_OMIT || ts[1].tv_nsec != UTIME_OMIT;
}

/* The kernel's POSIX ACL xattr: a version, then entries sorted by tag and
 * id (include/uapi/linux/posix_acl_xattr.h), little-endian. */
struct acl_ent {
	uint16_t tag, perm;
	uint32_t id;
};

static int acl_tag(int tag)
{
	switch (tag) {
	case ARCHIVE_ENTRY_ACL_USER_OBJ: return 0x01;
	case ARCHIVE_ENTRY_ACL_USER: return 0x02;
	case ARCHIVE_ENTRY_ACL_GROUP_OBJ: return 0x04;
	case ARCHIVE_ENTRY_ACL_GROUP: return 0x08;
	case ARCHIVE_ENTRY_ACL_MASK: return 0x10;
	case ARCHIVE_ENTRY_ACL_OTHER: return 0x20;
	default: return 0;
	}
}

static int acl_cmp(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;
	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	put_le16(p, v & 0xffff);
	put_le16(p + 2, v >> 16);
}

/* The entry's ACL of type (ARCHIVE_ENTRY_ACL_TYPE_ACCESS or _DEFAULT) as
 * the xattr's value, or NULL when it has none beyond its mode.  Named
 * users and groups are the image's ids; an entry with only a name is
 * resolved as libarchive's writer resolves it (stage_lookup_uid/gid). */
static int acl_value(struct writer_at *w, struct archive_entry *e, int type, char **ret,
		     size_t *ret_len, struct reimage_error *err)
{
	int n = archive_entry_acl_reset(e, type), k = 0, t, perm, tag, id;
	struct acl_ent *ents;
	const char *name;
	unsigned char *v;

	*ret = NULL;
	*ret_len = 0;
	if (n <= 0)
		return 0;
	if (!(ents = calloc((size_t)n, sizeof(*ents)))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	while (k < n && archive_entry_acl_next(e, type, &t, &perm, &tag, &id, &name) ==
			ARCHIVE_OK) {
		int64_t qual = id;
		if (!acl_tag(tag)) {
			free(ents);
			return fail(err, EINVAL, w->rel, "ACL entry of unknown kind %d", tag);
		}
		if (tag == ARCHIVE_ENTRY_ACL_USER || tag == ARCHIVE_ENTRY_ACL_GROUP) {
			qual = tag == ARCHIVE_ENTRY_ACL_USER ? stage_lookup_uid(NULL, name, id)
							     : stage_lookup_gid(NULL, name, id);
			if (qual < 0 || qual > UINT32_MAX - 1) {
				free(ents);
				return fail(err, EINVAL, w->rel, "ACL entry for %s '%s' unknown here",
					    tag == ARCHIVE_ENTRY_ACL_USER ? "user" : "group",
					    name ? name : "?");
			}
		} else {
			qual = UINT32_MAX;  /* ACL_UNDEFINED_ID */
		}
		ents[k++] = (struct acl_ent){ .tag = (uint16_t)acl_tag(tag),
					      .perm = (uint16_t)(perm & 7), .id = (uint32_t)qual };
	}
	qsort(ents, (size_t)k, sizeof(*ents), acl_cmp);
	if (!(v = malloc(4 + 8 * (size_t)k))) {
		free(ents);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	put_le32(v, 2);  /* POSIX_ACL_XATTR_VERSION */
	for (int i = 0; i < k; i++) {
		put_le16(v + 4 + 8 * i, ents[i].tag);
		put_le16(v + 6 + 8 * i, ents[i].perm);
		put_le32(v + 8 + 8 * i, ents[i].id);
	}
	free(ents);
	*ret = (char *)v;
	*ret_len = 4 + 8 * (size_t)k;
	return 0;
}

static const char *const acl_xattr[2] = { "system.posix_acl_access", "system.posix_acl_default" };

/* Both ACLs of e; an NFSv4 ACL (from a BSD or macOS image) has no place
 * on Linux's file systems and is refused rather than dropped. */
static int acl_values(struct writer_at *w, struct archive_entry *e, char *acl[2], size_t len[2],
		      struct reimage_error *err)
{
	int r;
	acl[0] = acl[1] = NULL;
	if (archive_entry_acl_types(e) & ARCHIVE_ENTRY_ACL_TYPE_NFS4)
		return fail(err, ENOTSUP, w->rel, "NFSv4 ACL");
	if ((r = acl_value(w, e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, &acl[0], &len[0], err)) < 0)
		return r;
	if (archive_entry_filetype(e) == AE_IFDIR &&
	    (r = acl_value(w, e, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, &acl[1], &len[1], err)) < 0) {
		free(acl[0]);
		acl[0] = NULL;
	}
	return r;
}

static int set_acls(struct writer_at *w, const struct node *n, char *const acl[2],
		    const size_t len[2], struct reimage_error *err)
{
	for (int i = 0; i < 2; i++)
		if (acl[i] && node_setxattr(n, acl_xattr[i], acl[i], len[i]) < 0)
			return fail(err, errno, w->rel, "set %s", acl_xattr[i]);
	return 0;
}

/* Flags a file system sets by itself (ext4's extents, hash-indexed
 * directories, inline data...): read from a tree (dir:) or by bsdtar,
 * they are no image's to ask of another file system. */
#define FFLAGS_OWN (FS_DIRTY_FL | FS_COMPRBLK_FL | FS_ENCRYPT_FL | FS_INDEX_FL | \
		    FS_IMAGIC_FL | FS_HUGE_FILE_FL | FS_EXTENT_FL | FS_VERITY_FL | \
		    FS_EA_INODE_FL | FS_EOFBLOCKS_FL | FS_DAX_FL | FS_INLINE_DATA_FL | \
		    FS_CASEFOLD_FL | FS_RESERVED_FL)

/* chattr flags (bsdtar's SCHILY.fflags): last, an immutable file taking
 * nothing more.  Only files and directories can be opened for them. */
static int set_fflags(struct writer_at *w, int fd, unsigned long set, unsigned long clear,
		      struct reimage_error *err)
{
	int flags;
	set &= ~(unsigned long)FFLAGS_OWN;
	clear &= ~(unsigned long)FFLAGS_OWN;
	if (!(set | clear))
		return 0;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
		return fail(err, errno, w->rel, "read file flags");
	flags = (int)(((unsigned long)flags | set) & ~clear);
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
		return fail(err, errno, w->rel, "set file flags");
	return 0;
}

/* Owner, then mode (the set-ID bits, which a chown clears), then the
 * xattrs (security.capability, which a chown or a write clears), then
 * ACLs (which set the group bits of the mode from their mask), times and
 * flags: libarchive's order.  A directory's mode, ACLs, times and flags
 * are deferred (writer_at_close). */
static int set_meta(struct writer_at *w, const struct node *n, int owner_unknown,
		    struct reimage_error *err)
{
	struct archive_entry *e = w->e;
	mode_t type = archive_entry_filetype(e), mode = archive_entry_mode(e) & 07777;
	uid_t uid = (uid_t)archive_entry_uid(e);
	gid_t gid = (gid_t)archive_entry_gid(e);
	const char *key;
	const void *value;
	size_t len;
	struct timespec ts[2];
	int chowned = 0;

	/* Made by this process: its owner is ours, its group ours unless its
	 * directory is set-group-ID. */
	if (uid != w->euid || gid != w->egid || owner_unknown) {
		if (node_chown(n, uid, gid) < 0)
			return fail(err, errno, w->rel, "set owner %u:%u", (unsigned)uid,
				    (unsigned)gid);
		chowned = 1;
	}
	/* Made with mode & 0777 less the umask. */
	if (type != AE_IFLNK && type != AE_IFDIR &&
	    (mode != (mode & 0777 & ~w->umask) || (chowned && (mode & (S_ISUID | S_ISGID)))) &&
	    node_chmod(n, mode) < 0)
		return fail(err, errno, w->rel, "set mode %04o", (unsigned)mode);
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &key, &value, &len) == ARCHIVE_OK)
		if (key && node_setxattr(n, key, value, len) < 0)
			return fail(err, errno, w->rel, "set xattr %s", key);
	if (type == AE_IFDIR)
		return 0;
	char *acl[2];
	size_t acl_len[2];
	int r = acl_values(w, e, acl, acl_len, err);
	if (r == 0)
		r = set_acls(w, n, acl, acl_len, err);
	free(acl[0]);
	free(acl[1]);
	if (r < 0)
		return r;
	if (entry_times(e, ts) && node_times(n, ts) < 0)
		return fail(err, errno, w->rel, "set times");
	if (n->fd >= 0) {
		unsigned long set, clear;
		archive_entry_fflags(e, &set, &clear);
		return set_fflags(w, n->fd, set, clear, err);
	}
	return 0;
}

/* A directory entry's mode, ACLs, flags and times, for the end. */
static int defer_dir(struct writer_at *w, const char *path, struct reimage_error *err)
{
	struct archive_entry *e = w->e;
	struct fixup *f;
	mode_t mode = archive_entry_mode(e) & 07777;
	int r;

	if (w->n_fix == w->cap_fix) {
		size_t cap = w->cap_fix ? 2 * w->cap_fix : 256;
		struct fixup *grown = realloc(w->fix, cap * sizeof(*grown));
		if (!grown) {
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		w->fix = grown;
		w->cap_fix = cap;
	}
	f = &w->fix[w->n_fix];
	memset(f, 0, sizeof(*f));
	if ((r = acl_values(w, e, f->acl, f->acl_len, err)) < 0)
		return r;
	if (!(f->path = strdup(path))) {
		free(f->acl[0]);
		free(f->acl[1]);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	f->seq = w->n_fix++;
	f->mode = mode;
	/* Always: mkdir takes no set-ID bit but inherits set-group-ID, the
	 * umask takes some bits, a writer that is not root made it 0700 at
	 * least, and a directory already there has a mode of its own. */
	f->chmod = 1;
	f->times = entry_times(e, f->ts);
	archive_entry_fflags(e, &f->fl_set, &f->fl_clear);
	return 0;
}

/* Deepest first (a parent's mode may shut out a writer that is not
 * root), and of one path's entries the later one last. */
static int fixup_cmp(const void *a, const void *b)
{
	const struct fixup *x = a, *y = b;
	int c = strcmp(y->path, x->path);
	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void free_fixups(struct writer_at *w)
{
	for (size_t i = 0; i < w->n_fix; i++) {
		free(w->fix[i].path);
		free(w->fix[i].acl[0]);
		free(w->fix[i].acl[1]);
	}
	free(w->fix);
	w->fix = NULL;
	w->n_fix = w->cap_fix = 0;
}

static int apply_fixup(struct writer_at *w, const struct fixup *f, struct reimage_error *err)
{
	size_t len = strlen(f->path);
	int i = holder(w, f->path, len), fd, r = 0;
	struct node n;

	snprintf(w->rel, sizeof(w->rel), "%s", f->path);
	if (w->stack[i].len == len) {
		fd = w->stack[i].fd;
	} else {
		fd = open_dir(w->stack[i].fd, f->path + (w->stack[i].len ? w->stack[i].len + 1 : 0),
			      NULL);
		/* Gone, or no longer a directory (an entry replaced it, or a
		 * symlink now stands in its path): nothing of it to fix. */
		if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP)
			return 0;
		if (fd < 0)
			return lookup_failed(err, -fd, f->path, f->path);
	}
	n = (struct node){ .fd = fd, .dfd = -1, .name = NULL };
	if (f->chmod && fchmod(fd, f->mode) < 0)
		r = fail(err, errno, f->path, "set mode %04o", (unsigned)f->mode);
	if (r == 0)
		r = set_acls(w, &n, f->acl, f->acl_len, err);
	if (r == 0 && f->times && futimens(fd, f->ts) < 0)
		r = fail(err, errno, f->path, "set times");
	if (r == 0)
		r = set_fflags(w, fd, f->fl_set, f->fl_clear, err);
	if (w->stack[i].len != len)
		close(fd);
	return r;
}

/* ------------------------------------------------------------- entries */

/* Split rel into its directory (normalised: no "", "." or trailing
 * component) and its last name; -EPERM for what stage.c lets through by
 * mistake ("..", nothing). */
static int split(const char *rel, char *dir, size_t dir_len, char name[NAME_MAX + 1])
{
	size_t n = 0, last_len = 0;
	const char *last = NULL, *p = rel;

	dir[0] = '\0';
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return -EPERM;
		if (len && !(len == 1 && p[0] == '.')) {
			if (last) {
				if (n + last_len + 2 > dir_len)
					return -ENAMETOOLONG;
				if (n)
					dir[n++] = '/';
				memcpy(dir + n, last, last_len);
				dir[n += last_len] = '\0';
			}
			last = p;
			last_len = len;
		}
		p += len;
		while (*p == '/')
			p++;
	}
	if (!last)
		return -EPERM;
	if (last_len > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(name, last, last_len);
	name[last_len] = '\0';
	return 0;
}

/* Make room for a new entry at name: whatever an earlier entry left
 * there goes, a directory only if empty (libarchive's rule; OCI layers
 * have stage.c remove a whole tree first).  want_dir: a directory that
 * is there stays (1 is returned). */
static int make_room(struct writer_at *w, int dfd, const char *name, int want_dir,
		     struct reimage_error *err)
{
	struct stat st;
	if (want_dir && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		return 1;
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno == EISDIR && unlinkat(dfd, name, AT_REMOVEDIR) == 0)
		return 0;
	if (errno == ENOTEMPTY || errno == EEXIST)
		return fail(err, errno, w->rel, "a directory of an earlier entry is in the way");
	return fail(err, errno, w->rel, "remove what an earlier entry left");
}

/* The hard link dir/name -> hard. */
static int hard_link(struct writer_at *w, int dfd, const char *dir, const char *name,
		     const char *hard, struct reimage_error *err)
{
	char tdir[PATH_MAX], tname[NAME_MAX + 1];
	int i, tfd, r;

	if ((r = split(hard, tdir, sizeof(tdir), tname)) < 0)
		return fail(err, -r, w->rel, "hard link to '%s'", hard);
	if (strcmp(tdir, dir) == 0 && strcmp(tname, name) == 0)
		return 0;  /* a link to itself: the file is there already */
	/* The target's directory from the stack when it is there, else opened
	 * beneath staging for this link only (the stack stays where the
	 * archive's files are). */
	i = holder(w, tdir, strlen(tdir));
	if (w->stack[i].len == strlen(tdir)) {
		tfd = w->stack[i].fd;
	} else {
		tfd = open_dir(w->stack[i].fd, tdir + (w->stack[i].len ? w->stack[i].len + 1 : 0),
			       NULL);
		if (tfd < 0)
			return lookup_failed(err, -tfd, w->rel, tdir);
	}
	/* Flags 0: a symlink target is linked itself, never followed. */
	for (int tries = 0;; tries++) {
		if (linkat(tfd, tname, dfd, name, 0) == 0) {
			r = 0;
			break;
		}
		if (errno != EEXIST || tries) {
			r = fail(err, errno, w->rel, "hard link to '%s'", hard);
			break;
		}
		if ((r = make_room(w, dfd, name, 0, err)) < 0)
			break;
	}
	if (w->stack[i].len != strlen(tdir))
		close(tfd);
	return r;
}

int writer_at_header(struct writer_at *w, struct archive_entry *e, const char *rel,
		     const char *hard, struct reimage_error *err)
{
	char dir[PATH_MAX], *name = w->name;
	mode_t type = archive_entry_filetype(e), perm = archive_entry_mode(e) & 0777;
	struct node n;
	int dfd, r, tries;

	snprintf(w->rel, sizeof(w->rel), "%s", rel);
	w->e = e;
	w->fd = -1;
	/* -1: not declared (a zip streamed with its sizes after the data). */
	w->size = !archive_entry_size_is_set(e) ? -1
		  : archive_entry_size(e) > 0 ? archive_entry_size(e) : 0;
	w->end = 0;
	if ((r = split(rel, dir, sizeof(dir), name)) < 0)
		return fail(err, -r, rel, "path");
	if ((dfd = enter(w, dir, rel, err)) < 0)
		return dfd;
	w->dfd = dfd;
	w->owner_unknown = w->stack[w->depth - 1].sgid;
	n = (struct node){ .fd = -1, .dfd = dfd, .name = name };

	if (hard) {
		if ((r = hard_link(w, dfd, dir, name, hard, err)) < 0)
			return r;
		/* A link that carries data (cpio, pax) is rewritten and takes
		 * this entry's metadata; one without is just another name. */
		if (w->size <= 0) {
			w->e = NULL;
			return 0;
		}
		w->owner_unknown = 1;
		w->fd = (int)sys_openat2(dfd, name, O_WRONLY | O_TRUNC | O_NOFOLLOW, 0);
		return w->fd < 0 ? fail(err, errno, rel, "open") : 0;
	}
	for (tries = 0;; tries++) {
		switch (type) {
		case AE_IFDIR:
			/* Not root: it must take its files until its mode is set. */
			r = mkdirat(dfd, name, perm | (w->euid ? 0700 : 0));
			break;
		case AE_IFLNK:
			r = symlinkat(archive_entry_symlink(e) ? archive_entry_symlink(e) : "", dfd,
				      name);
			break;
		case AE_IFCHR:
		case AE_IFBLK:
		case AE_IFIFO:
		case AE_IFSOCK:
			r = mknodat(dfd, name, type | perm, archive_entry_rdev(e));
			break;
		default:  /* a regular file, and what no other case knows (libarchive's rule) */
			r = w->fd = (int)sys_openat2(dfd, name,
						     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, perm);
			break;
		}
		if (r >= 0)
			break;
		if (errno != EEXIST || tries)
			return fail(err, errno, rel, "create");
		if ((r = make_room(w, dfd, name, type == AE_IFDIR, err)) < 0)
			return r;
		if (r == 1) {
			/* A directory already: it stays, and takes this entry's metadata. */
			w->owner_unknown = 1;
			break;
		}
	}
	if (type == AE_IFDIR) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s%s%s", dir, *dir ? "/" : "", name) >=
		    (int)sizeof(path))
			return fail(err, ENAMETOOLONG, rel, "path");
		if ((r = set_meta(w, &n, w->owner_unknown, err)) < 0 ||
		    (r = defer_dir(w, path, err)) < 0)
			return r;
		w->e = NULL;
		return 0;
	}
	if (w->fd >= 0)
		return 0;  /* a file: its metadata after its data */
	r = set_meta(w, &n, w->owner_unknown, err);
	w->e = NULL;
	return r;
}

int writer_at_data(struct writer_at *w, const void *buf, size_t len, int64_t offset,
		   struct reimage_error *err)
{
	const char *p = buf;

	if (w->fd < 0 || offset < 0)
		return 0;
	/* Never past the declared size (libarchive's writer likewise). */
	if (w->size >= 0 && offset >= w->size)
		return 0;
	if (w->size >= 0 && (int64_t)len > w->size - offset)
		len = (size_t)(w->size - offset);
	while (len > 0) {
		ssize_t n = pwrite(w->fd, p, len, offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(err, errno, w->rel, "write");
		}
		p += n;
		len -= (size_t)n;
		offset += n;
	}
	if (offset > w->end)
		w->end = offset;
	return 0;
}

int writer_at_clone(struct writer_at *w, int src_fd, struct reimage_error *err)
{
	struct stat st;

	if (w->fd < 0 || w->size <= 0 || fstat(src_fd, &st) < 0 || st.st_size != w->size)
		return 0;
	if (ioctl(w->fd, FICLONE, src_fd) == 0) {
		w->end = w->size;
		return 1;
	}
	/* No reflinks here (this file system, another volume): copied. */
	if (errno == EOPNOTSUPP || errno == EXDEV || errno == EINVAL || errno == ENOTTY ||
	    errno == EPERM)
		return 0;
	return fail(err, errno, w->rel, "clone");
}

int writer_at_finish(struct writer_at *w, struct reimage_error *err)
{
	struct node n = { .fd = w->fd, .dfd = w->dfd, .name = w->name };
	int r = 0;

	if (w->fd < 0)
		return 0;
	/* A file that ends in a hole: its length from the entry. */
	if (w->size >= 0 && w->end < w->size && ftruncate(w->fd, w->size) < 0)
		r = fail(err, errno, w->rel, "set length");
	if (r == 0 && w->e)
		r = set_meta(w, &n, w->owner_unknown, err);
	if (close(w->fd) < 0 && r == 0)
		r = fail(err, errno, w->rel, "close");
	w->fd = -1;
	w->e = NULL;
	return r;
}

int writer_at_open(const char *staging, struct writer_at **ret, struct reimage_error *err)
{
	struct writer_at *w;
	int want = wanted(), fd, sgid;

	*ret = NULL;
	if (want == -2) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s='%s': neither \"at\" nor \"libarchive\"",
			WRITER_AT_ENV, getenv(WRITER_AT_ENV));
		return -EINVAL;
	}
	if (want == 0) {
		announce("libarchive's disk writer (" WRITER_AT_ENV "=libarchive)");
		return 0;
	}
	fd = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		err_sys(err, -errno, "open %s", staging);
		return err->code;
	}
	/* The probe: an old kernel has no openat2 (ENOSYS), or not these
	 * RESOLVE_ flags (EINVAL). */
	int probe = open_dir(fd, ".", &sgid);
	if (probe < 0) {
		int en = -probe;
		close(fd);
		if (en != ENOSYS && en != EINVAL && en != E2BIG) {
			err_sys(err, -en, "open %s", staging);
			return -en;
		}
		if (want == 1) {
			err_set(err, -ENOSYS, REIMAGE_EC_UNSUPPORTED,
				"%s=at: this kernel has no openat2 with RESOLVE_BENEATH: %s",
				WRITER_AT_ENV, strerror(en));
			return -ENOSYS;
		}
		announce("libarchive's disk writer: this kernel has no openat2 (needs Linux 5.6)");
		return 0;
	}
	close(probe);
	if (!(w = calloc(1, sizeof(*w)))) {
		close(fd);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	w->stack[0] = (struct level){ .fd = fd, .len = 0, .sgid = sgid };
	w->depth = 1;
	w->fd = -1;
	/* The umask shapes what mkdirat and openat make; libarchive's writer
	 * reads it the same way (no file is made between the two calls). */
	w->umask = umask(0);
	umask(w->umask);
	w->euid = geteuid();
	w->egid = getegid();
	announce("writing with directory descriptors (openat2, kernel-checked containment)");
	*ret = w;
	return 0;
}

void writer_at_forget(struct writer_at *w, const char *rel)
{
	char dir[PATH_MAX], name[NAME_MAX + 1], path[PATH_MAX];
	size_t len, kept = 0;

	pop_to(w, 1);
	if (split(rel, dir, sizeof(dir), name) < 0 ||
	    (size_t)snprintf(path, sizeof(path), "%s%s%s", dir, *dir ? "/" : "", name) >=
		    sizeof(path))
		return;  /* stage.c refuses such a name before it removes anything */
	len = strlen(path);
	for (size_t i = 0; i < w->n_fix; i++) {
		struct fixup *f = &w->fix[i];
		if (strncmp(f->path, path, len) == 0 && (!f->path[len] || f->path[len] == '/')) {
			free(f->path);
			free(f->acl[0]);
			free(f->acl[1]);
		} else {
			w->fix[kept++] = *f;
		}
	}
	w->n_fix = kept;
}

int writer_at_close(struct writer_at *w, struct reimage_error *err)
{
	int r = 0;

	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->n_fix)
		qsort(w->fix, w->n_fix, sizeof(*w->fix), fixup_cmp);
	for (size_t i = 0; i < w->n_fix; i++) {
		int fr = apply_fixup(w, &w->fix[i], err);
		if (r == 0)
			r = fr;
	}
	free_fixups(w);
	pop_to(w, 1);
	return r;
}

void writer_at_free(struct writer_at *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	free_fixups(w);
	if (w->depth > 0) {
		pop_to(w, 1);
		close(w->stack[0].fd);
	}
	free(w);
}

#else  /* not Linux: libarchive's writer, always */

int writer_at_open(const char *staging, struct writer_at **ret, struct reimage_error *err)
{
	(void)staging;
	*ret = NULL;
	if (wanted() == 1) {
		err_set(err, -ENOSYS, REIMAGE_EC_UNSUPPORTED, "%s=at: Linux only", WRITER_AT_ENV);
		return -ENOSYS;
	}
	announce("libarchive's disk writer");
	return 0;
}

int writer_at_header(struct writer_at *w, struct archive_entry *e, const char *rel,
		     const char *hard, struct reimage_error *err)
{
	(void)w; (void)e; (void)rel; (void)hard; (void)err;
	return -ENOSYS;
}

int writer_at_data(struct writer_at *w, const void *buf, size_t len, int64_t offset,
		   struct reimage_error *err)
{
	(void)w; (void)buf; (void)len; (void)offset; (void)err;
	return -ENOSYS;
}

int writer_at_clone(struct writer_at *w, int src_fd, struct reimage_error *err)
{
	(void)w; (void)src_fd; (void)err;
	return 0;
}

int writer_at_finish(struct writer_at *w, struct reimage_error *err)
{
	(void)w; (void)err;
	return -ENOSYS;
}

void writer_at_forget(struct writer_at *w, const char *rel)
{
	(void)w; (void)rel;
}

int writer_at_close(struct writer_at *w, struct reimage_error *err)
{
	(void)w; (void)err;
	return -ENOSYS;
}

void writer_at_free(struct writer_at *w)
{
	(void)w;
}

#endif
