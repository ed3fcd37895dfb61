/*
 * stage.c -- STAGE (see stage.h): the one writer every source feeds.
 * reimage's checks on every entry, then one of two disk writers: on Linux
 * reimage's own (writer_at.c: directory descriptors, containment checked
 * by the kernel), elsewhere or on a kernel without openat2 libarchive's
 * with the secure flags, each path rooted at the staging directory's real
 * path, and hard-link targets likewise, so nothing resolves against the
 * working directory (no chdir).  Which source an
 * image is and how it is read is source.c's business (stage_image()
 * there); the source hands its entries to the sink below.
 */
#define _GNU_SOURCE
#include "stage.h"
#include "error.h"
#include "fsutil.h"
#include "log.h"
#include "writer_at.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

const char *stage_safe_path(const char *path)
{
	const char *p = path;

	if (!p || *p == '/')
		return NULL;
	while (p[0] == '.' && p[1] == '/') {
		p += 2;
		while (*p == '/')
			p++;
	}
	if (!*p || strcmp(p, ".") == 0)
		return p;  /* the archive's own root: the caller skips it */
	for (const char *c = p; *c;) {
		const char *end = strchr(c, '/');
		size_t len = end ? (size_t)(end - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return NULL;
		c += len;
		while (*c == '/')
			c++;
	}
	return p;
}

/* A disk writer's error: its message, and the system's reason. */
static int writer_error(struct reimage_error *err, struct archive *out, const char *what,
			const char *name)
{
	int known = archive_errno(out) > 0, en = known ? archive_errno(out) : EIO;
	const char *msg = archive_error_string(out) ? archive_error_string(out) : "failed";
	if (!known || strstr(msg, strerror(en)))
		err_set(err, -en, en == ENOSPC ? REIMAGE_EC_IO : REIMAGE_EC_INTEGRITY, "%s '%s': %s",
			what, name, msg);
	else
		err_set(err, -en, en == ENOSPC ? REIMAGE_EC_IO : REIMAGE_EC_INTEGRITY,
			"%s '%s': %s: %s", what, name, msg, strerror(en));
	return -en;
}

/*
 * libarchive's warnings (ARCHIVE_WARN) when it reads an entry's header or
 * writes an entry: a pax record skipped, an xattr, ACL, owner or time not
 * restored.  The entry would be staged other than the image means it, so
 * a warning fails the job naming the entry -- except the ones below,
 * which change nothing that is staged.  Each has its test (test_run.c,
 * engine_run_warning_*); `bsdtar -t` exits 1 on all of them alike.
 */
static const char *const harmless_warnings[] = {
	/* A non-ASCII name in a C (ASCII) locale: the name's bytes are
	 * staged as the archive holds them, which is what the image means. */
	"can't be converted from UTF-8 to current locale",
	/* A hard link to its own name (GNU tar archives a file given twice
	 * so): the file it names is already written. */
	"Skipping hardlink pointing to itself",
	NULL
};

int stage_warning(struct archive *a, const char *what, const char *name,
		  struct reimage_error *err)
{
	const char *msg = archive_error_string(a) ? archive_error_string(a) : "unnamed warning";

	for (size_t i = 0; harmless_warnings[i]; i++)
		if (strstr(msg, harmless_warnings[i]))
			return 0;
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s '%s': %s (a warning refuses the image)",
		what, name ? name : "(no name)", msg);
	return -EBADMSG;
}

static int root_path(char *buf, size_t len, const char *staging, const char *rel)
{
	int n = snprintf(buf, len, "%s/%s", staging, rel);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int stage_archive_data(void *arg, const void **ret_buf, size_t *ret_len, int64_t *ret_offset,
		       struct reimage_error *err)
{
	struct archive *in = arg;
	la_int64_t offset;
	int r = archive_read_data_block(in, ret_buf, ret_len, &offset);

	if (r == ARCHIVE_EOF)
		return 0;
	if (r < ARCHIVE_OK) {
		err_set(err, -EIO, REIMAGE_EC_INTEGRITY, "%s",
			archive_error_string(in) ? archive_error_string(in) : "unreadable data");
		return -EIO;
	}
	*ret_offset = offset;
	return 1;
}

static int check_space_left(struct stage_sink *k, const char *name, struct reimage_error *err);

/* Copy one file's blocks into libarchive's writer out, or reimage's at
 * (then out is NULL), or neither: read only (a file cloned).  With a
 * sink (k not NULL), its limits hold block by block: one huge member
 * must not fill the volume either. */
static int copy_blocks(struct archive *out, struct writer_at *at, struct stage_sink *k,
		       stage_data_fn data, void *arg,
		       uint64_t *bytes, const char *name, struct reimage_error *err)
{
	for (;;) {
		const void *buf;
		size_t size;
		int64_t offset;
		int r = data(arg, &buf, &size, &offset, err);
		if (r == 0)
			return 0;
		if (r < 0) {
			err_prefix(err, "read '%s'", name);
			return r;
		}
		if (k && k->limit && *bytes + size > k->limit) {
			err_set(err, -EFBIG, REIMAGE_EC_INTEGRITY,
				"the image unpacks to more than the %llu bytes image.unpacked_size "
				"declares: staging stopped in '%s'", (unsigned long long)k->limit, name);
			return -EFBIG;
		}
		if (at && (r = writer_at_data(at, buf, size, offset, err)) < 0)
			return r;
		if (out && archive_write_data_block(out, buf, size, offset) < ARCHIVE_OK)
			return writer_error(err, out, "extract", name);
		*bytes += size;
		if (k && (r = check_space_left(k, name, err)) < 0)
			return r;
	}
}

int stage_copy_data(struct archive *in, struct archive *out, uint64_t *bytes, const char *name,
		    struct reimage_error *err)
{
	return copy_blocks(out, NULL, NULL, stage_archive_data, in, bytes, name, err);
}

/* Directory times are the sink's to set, at the end: libarchive defers
 * those of the directories it creates, but sets at once those of a
 * directory that already existed (an OCI layer changing one an earlier
 * layer made), and entries written into it after would change them.  And
 * a writer flushed early (sink_flush) has applied its own. */
struct stage_dir_time {
	char *path;
	struct timespec times[2];  /* atime, mtime */
};

static int defer_dir_time(struct stage_sink *k, struct archive_entry *e, const char *path,
			  struct reimage_error *err)
{
	struct stage_dir_time *grown;

	if (archive_entry_filetype(e) != AE_IFDIR || !archive_entry_mtime_is_set(e))
		return 0;
	if (!(grown = realloc(k->times, (k->n_times + 1) * sizeof(*grown))) ||
	    !(grown[k->n_times].path = strdup(path))) {
		if (grown)
			k->times = grown;
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	k->times = grown;
	struct stage_dir_time *t = &k->times[k->n_times++];
	t->times[0].tv_sec = archive_entry_atime_is_set(e) ? archive_entry_atime(e)
							   : archive_entry_mtime(e);
	t->times[0].tv_nsec = archive_entry_atime_is_set(e) ? archive_entry_atime_nsec(e)
							    : archive_entry_mtime_nsec(e);
	t->times[1].tv_sec = archive_entry_mtime(e);
	t->times[1].tv_nsec = archive_entry_mtime_nsec(e);
	return 0;
}

static void free_dir_times(struct stage_sink *k)
{
	for (size_t i = 0; i < k->n_times; i++)
		free(k->times[i].path);
	free(k->times);
	k->times = NULL;
	k->n_times = 0;
}

void stage_sink_init(struct stage_sink *k, const char *staging, int dry)
{
	memset(k, 0, sizeof(*k));
	k->staging = staging;
	k->dry = dry;
}

int stage_sink_begin(struct stage_sink *k, struct reimage_error *err)
{
	int r;

	if (k->dry || k->out || k->at)
		return 0;
	/* Reimage's writer where the kernel has what it needs, else libarchive's. */
	if ((r = writer_at_open(k->staging, &k->at, err)) < 0 || k->at)
		return r;
	if (!(k->out = stage_disk_writer())) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Close the writer: libarchive applies the modes (and times) of the
 * directories it created, by path; reimage's those of every directory
 * entry, through descriptors. */
static int writer_close(struct stage_sink *k, struct reimage_error *err)
{
	int r = 0;

	if (k->at) {
		r = writer_at_close(k->at, err);
		writer_at_free(k->at);
		k->at = NULL;
		return r;
	}
	if (archive_write_close(k->out) != ARCHIVE_OK) {
		int en = archive_errno(k->out) ? archive_errno(k->out) : EIO;
		err_set(err, -en, REIMAGE_EC_IO, "finish extraction: %s",
			archive_error_string(k->out));
		r = -en;
	}
	archive_write_free(k->out);
	k->out = NULL;
	return r;
}

/* Before the sink removes rel's tree (a whiteout, a directory an entry
 * replaces): libarchive's deferred fixups name paths that may lie in it,
 * and a symlink written there later would lead them outside staging;
 * reimage's writer reaches them through no symlink, and just forgets
 * what lies in the tree. */
static int sink_flush(struct stage_sink *k, const char *rel, struct reimage_error *err)
{
	int r;
	if (k->at) {
		writer_at_forget(k->at, rel);
		return 0;
	}
	if (!k->out)
		return 0;
	if ((r = writer_close(k, err)) < 0)
		return r;
	return stage_sink_begin(k, err);
}

int stage_sink_end(struct stage_sink *k, struct reimage_error *err)
{
	size_t sl = strlen(k->staging);
	int r;

	if (!k->out && !k->at)
		return 0;
	r = writer_close(k, err);
	/* Never through a symlink: a directory whose parents are no longer
	 * real directories (replaced since) is left alone. */
	for (size_t i = 0; r == 0 && i < k->n_times; i++) {
		struct reimage_error skip = { 0 };
		const char *path = k->times[i].path;
		if (fs_parents_real(k->staging, path + sl + 1, &skip) < 0)
			continue;
		if (utimensat(AT_FDCWD, path, k->times[i].times, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno != ENOENT) {
			err_sys(err, -errno, "set times of %s", path);
			r = err->code;
		}
	}
	free_dir_times(k);
	return r;
}

void stage_sink_fini(struct stage_sink *k)
{
	if (k->out)
		archive_write_free(k->out);
	k->out = NULL;
	writer_at_free(k->at);
	k->at = NULL;
	free_dir_times(k);
	for (size_t i = 0; i < k->n_top; i++)
		free(k->top[i]);
	free(k->top);
	k->top = NULL;
	k->n_top = 0;
}

/* Dry run: the image's top-level names, for `plan` to classify the root's. */
static int add_top(struct stage_sink *k, const char *rel, struct reimage_error *err)
{
	size_t len = strcspn(rel, "/");
	char **grown;

	for (size_t i = 0; i < k->n_top; i++)
		if (strlen(k->top[i]) == len && strncmp(k->top[i], rel, len) == 0)
			return 0;
	grown = realloc(k->top, (k->n_top + 2) * sizeof(char *));
	if (!grown || !(grown[k->n_top] = strndup(rel, len))) {
		if (grown)
			k->top = grown;
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	k->top = grown;
	k->top[++k->n_top] = NULL;
	return 0;
}

/* Layers: an entry that is not a directory replaces a directory an
 * earlier layer made (libarchive's writer would only rmdir an empty one). */
static int replace_dir(struct stage_sink *k, struct archive_entry *e, const char *rel,
		       const char *path, struct reimage_error *err)
{
	struct stat st;
	int r;

	if (!k->layered || archive_entry_filetype(e) == AE_IFDIR || lstat(path, &st) < 0 ||
	    !S_ISDIR(st.st_mode))
		return 0;
	if ((r = fs_parents_real(k->staging, rel, err)) < 0 || (r = sink_flush(k, rel, err)) < 0)
		return r;
	return fs_remove_tree(path, err);
}

/* Every 4 MiB written (an entry counting as 4 KiB), within a file's data
 * as between entries, the staging volume must still have free_floor bytes
 * free: a full root volume would break the running system the user still
 * works on.  A statvfs per 4 MiB costs nothing next to writing them. */
#define SPACE_CHECK_STEP (4ull << 20)
static int check_space_left(struct stage_sink *k, const char *name, struct reimage_error *err)
{
	uint64_t written = k->bytes + k->entries * 4096, avail;
	int r;

	if (!k->free_floor || written < k->next_space_check)
		return 0;
	k->next_space_check = written + SPACE_CHECK_STEP;
	if ((r = fs_free_bytes(k->staging, &avail, err)) < 0)
		return r;
	if (avail < k->free_floor) {
		err_set(err, -ENOSPC, REIMAGE_EC_IO,
			"the root's volume has less than the %llu MiB free that must stay "
			"(preflight.free_margin_mb): staging stopped after %llu entries, at '%s'",
			(unsigned long long)(k->free_floor >> 20), (unsigned long long)k->entries,
			name);
		return -ENOSPC;
	}
	return 0;
}

/*
 * Device nodes: a character or block device is a door into this machine's
 * hardware and memory, so an image makes them only where the job allows
 * (image.devices, by default below dev/), never setuid, setgid or sticky,
 * and never writable by all -- except the character devices below, which
 * every Linux system makes so (devtmpfs, udev), and console, which
 * mmdebstrap makes 0666 in every Debian root it builds (devtmpfs covers
 * it at boot).  Any other device is made by the new system itself
 * at boot.
 */
static const struct { unsigned major, minor; } open_devices[] = {
	{ 1, 3 } /* null */, { 1, 5 } /* zero */, { 1, 7 } /* full */, { 1, 8 } /* random */,
	{ 1, 9 } /* urandom */, { 5, 0 } /* tty */, { 5, 1 } /* console */, { 5, 2 } /* ptmx */,
};
static const char *const default_device_dirs[] = { "dev", NULL };

static int device_dir_allows(const char *dir, const char *rel)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '.')
		return 1;
	return strncmp(rel, dir, n) == 0 && rel[n] == '/' && rel[n + 1];
}

static int device_refused(struct reimage_error *err, const char *rel, const char *why)
{
	err_set(err, -EPERM, REIMAGE_EC_INTEGRITY, "refused member '%s': %s", rel, why);
	return -EPERM;
}

/* type: the node's (the entry's, or a hard link's target's); mode its
 * permissions, checked only when the entry makes the node itself. */
static int check_device(const struct stage_sink *k, mode_t type, struct archive_entry *e,
			const char *rel, int made_here, struct reimage_error *err)
{
	const char *const *dirs = k->devices ? k->devices : default_device_dirs;
	const char *what = S_ISBLK(type) ? "a block device" : "a character device";
	mode_t perm = archive_entry_perm(e);
	char why[256];
	size_t i;

	for (i = 0; dirs[i] && !device_dir_allows(dirs[i], rel); i++)
		;
	if (!dirs[i]) {
		snprintf(why, sizeof(why), "%s outside the directories image.devices allows "
			 "(default: below dev/)", what);
		return device_refused(err, rel, why);
	}
	if (!made_here)
		return 0;
	if (perm & (S_ISUID | S_ISGID | S_ISVTX)) {
		snprintf(why, sizeof(why), "%s with a setuid, setgid or sticky bit (mode %04o)", what,
			 (unsigned)perm);
		return device_refused(err, rel, why);
	}
	for (i = 0; (perm & S_IWOTH) && S_ISCHR(type) &&
		    i < sizeof(open_devices) / sizeof(open_devices[0]); i++)
		if (archive_entry_rdevmajor(e) == open_devices[i].major &&
		    archive_entry_rdevminor(e) == open_devices[i].minor)
			return 0;
	if (perm & S_IWOTH) {
		snprintf(why, sizeof(why), "%s %u:%u writable by all (mode %04o); only null, zero, "
			 "full, random, urandom, tty, console and ptmx may be", what,
			 (unsigned)archive_entry_rdevmajor(e), (unsigned)archive_entry_rdevminor(e),
			 (unsigned)perm);
		return device_refused(err, rel, why);
	}
	return 0;
}

/* Whether an entry may have data: a size above 0, or none declared (a zip
 * streamed with its sizes after the data). */
static int has_data(struct archive_entry *e)
{
	return !archive_entry_size_is_set(e) || archive_entry_size(e) > 0;
}

/* A regular file's content cloned from what the kind offers: 1 cloned
 * (its data is then read, not written), 0 not, or < 0. */
static int clone_content(struct stage_sink *k, struct archive_entry *e, const char *rel,
			 const char *hard, struct reimage_error *err)
{
	int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
	int fd, r;

	if (!k->clone_from || hard || archive_entry_filetype(e) != AE_IFREG || size <= 0 ||
	    (r = k->clone_from(k->clone_arg, rel, (uint64_t)size, &fd, err)) == 0)
		return 0;
	if (r < 0)
		return r;
	r = writer_at_clone(k->at, fd, err);
	close(fd);
	if (r <= 0)
		return r;
	k->cloned++;
	k->cloned_bytes += (uint64_t)size;
	return 1;
}

int stage_sink_entry(struct stage_sink *k, struct archive_entry *e, stage_data_fn data,
		     void *arg, struct reimage_error *err)
{
	char path[PATH_MAX], link[PATH_MAX], rel[PATH_MAX];
	const char *orig = archive_entry_pathname(e);
	const char *safe = stage_safe_path(orig);
	const char *hard = archive_entry_hardlink(e);
	struct stat st;
	int r;

	if (!safe) {
		err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
			"refused member '%s': absolute or with '..'", orig ? orig : "(no name)");
		return -EPERM;
	}
	/* The entry's own name is replaced below: keep a copy for messages. */
	snprintf(rel, sizeof(rel), "%s", safe);
	if (!*rel || strcmp(rel, ".") == 0)
		return 0;  /* the image's root directory: staging itself stands for it */
	if (root_path(path, sizeof(path), k->staging, rel) < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_INTEGRITY, "member '%s': path too long", rel);
		return -ENAMETOOLONG;
	}
	if (hard) {
		const char *hrel = stage_safe_path(hard);
		if (!hrel || !*hrel || root_path(link, sizeof(link), k->staging, hrel) < 0) {
			err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
				"refused member '%s': hard link to '%s' outside the image", rel, hard);
			return -EPERM;
		}
	}
	if ((archive_entry_filetype(e) == AE_IFCHR || archive_entry_filetype(e) == AE_IFBLK) &&
	    (r = check_device(k, archive_entry_filetype(e), e, rel, 1, err)) < 0)
		return r;
	/* A hard link to a device node made where it was allowed is a device
	 * node too, wherever the link is. */
	if (hard && !k->dry && lstat(link, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) &&
	    (r = check_device(k, st.st_mode & S_IFMT, e, rel, 0, err)) < 0)
		return r;
	if (k->dry) {
		k->entries++;
		k->bytes += archive_entry_size(e) > 0 ? (uint64_t)archive_entry_size(e) : 0;
		return add_top(k, rel, err);
	}
	if ((r = replace_dir(k, e, rel, path, err)) < 0)
		return r;
	if (k->at) {
		int cloned = 0;
		/* Every directory's times are writer_at's to set, at its close. */
		if ((r = writer_at_header(k->at, e, rel, hard ? stage_safe_path(hard) : NULL, err)) < 0 ||
		    (r = cloned = clone_content(k, e, rel, hard, err)) < 0 ||
		    (has_data(e) && data &&
		     (r = copy_blocks(NULL, cloned ? NULL : k->at, k, data, arg, &k->bytes, rel,
				      err)) < 0) ||
		    (r = writer_at_finish(k->at, err)) < 0)
			return r;
		k->entries++;
		return check_space_left(k, rel, err);
	}
	if ((r = defer_dir_time(k, e, path, err)) < 0)
		return r;
	archive_entry_copy_pathname(e, path);
	if (hard)
		archive_entry_copy_hardlink(e, link);
	r = archive_write_header(k->out, e);
	if (r < ARCHIVE_WARN)
		return writer_error(err, k->out, "extract", rel);
	if (r == ARCHIVE_WARN && (r = stage_warning(k->out, "extract", rel, err)) < 0)
		return r;
	if (has_data(e) && data &&
	    (r = copy_blocks(k->out, NULL, k, data, arg, &k->bytes, rel, err)) < 0)
		return r;
	r = archive_write_finish_entry(k->out);
	if (r < ARCHIVE_WARN)
		return writer_error(err, k->out, "extract", rel);
	if (r == ARCHIVE_WARN && (r = stage_warning(k->out, "extract", rel, err)) < 0)
		return r;
	k->entries++;
	return check_space_left(k, rel, err);
}

int stage_sink_remove(struct stage_sink *k, const char *rel, struct reimage_error *err)
{
	const char *safe = stage_safe_path(rel);
	char path[PATH_MAX];
	int r;

	if (!safe || !*safe || strcmp(safe, ".") == 0) {
		err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
			"refused whiteout of '%s': absolute, empty or with '..'", rel);
		return -EPERM;
	}
	if (k->dry) {
		/* Only a top-level name changes what plan shows. */
		for (size_t i = 0; !strchr(safe, '/') && i < k->n_top; i++)
			if (strcmp(k->top[i], safe) == 0) {
				free(k->top[i]);
				memmove(&k->top[i], &k->top[i + 1], (k->n_top - i) * sizeof(char *));
				k->n_top--;
				break;
			}
		return 0;
	}
	if (root_path(path, sizeof(path), k->staging, safe) < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_INTEGRITY, "whiteout '%s': path too long", rel);
		return -ENAMETOOLONG;
	}
	/* Never through a symlink an earlier layer planted. */
	if ((r = fs_parents_real(k->staging, safe, err)) < 0) {
		err_prefix(err, "refused whiteout");
		return r;
	}
	if (!fs_exists(path))
		return 0;
	if ((r = sink_flush(k, safe, err)) < 0)
		return r;
	return fs_remove_tree(path, err);
}

/* Owners are the image's numeric ids, never this machine's names (no
 * lookup for the entry's own owner, which libarchive takes by number).
 * ACL entries are another matter: GNU tar writes them as text with a name
 * and no id ("user:alice:rw-"), or with the id as the name when it has
 * none.  A numeric name is the id; a real name can only be resolved
 * against this machine's accounts, as bsdtar does. */
static int numeric_name(const char *name, la_int64_t *ret)
{
	char *end;
	long long n;
	if (!name || !*name)
		return 0;
	n = strtoll(name, &end, 10);
	if (*end != '\0' || n < 0)
		return 0;
	*ret = n;
	return 1;
}

la_int64_t stage_lookup_uid(void *data, const char *name, la_int64_t id)
{
	char buf[4096];
	struct passwd pw, *found = NULL;
	(void)data;
	if (id >= 0 || numeric_name(name, &id))
		return id;
	if (name && getpwnam_r(name, &pw, buf, sizeof(buf), &found) == 0 && found)
		return found->pw_uid;
	return id;
}

la_int64_t stage_lookup_gid(void *data, const char *name, la_int64_t id)
{
	char buf[4096];
	struct group gr, *found = NULL;
	(void)data;
	if (id >= 0 || numeric_name(name, &id))
		return id;
	if (name && getgrnam_r(name, &gr, buf, sizeof(buf), &found) == 0 && found)
		return found->gr_gid;
	return id;
}

struct archive *stage_disk_reader(void)
{
	struct archive *rd = archive_read_disk_new();
	if (!rd)
		return NULL;
	archive_read_disk_set_symlink_physical(rd);
	archive_read_disk_set_behavior(rd, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
	return rd;
}

struct archive *stage_disk_writer(void)
{
	struct archive *out = archive_write_disk_new();
	if (!out)
		return NULL;
	archive_write_disk_set_user_lookup(out, NULL, stage_lookup_uid, NULL);
	archive_write_disk_set_group_lookup(out, NULL, stage_lookup_gid, NULL);
	/* Numeric owners (the image's ids, not this machine's names), every
	 * piece of metadata, and libarchive's refusal to write through a
	 * symlink or to a path with "..". */
	archive_write_disk_set_options(out,
		ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
		ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS |
		ARCHIVE_EXTRACT_MAC_METADATA | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		ARCHIVE_EXTRACT_SECURE_NODOTDOT);
	return out;
}
