/*
 * fuzz.c -- the fuzz targets' shared helpers (see fuzz.h).
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "error.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char scratch[PATH_MAX];

static void remove_scratch(void)
{
	if (scratch[0])
		fz_remove(scratch);
}

const char *fz_scratch(const char *name)
{
	char tmpl[PATH_MAX];

	/* Where run.sh says (it removes what a crashed run leaves), else in
	 * memory where there is room: fast, and nothing an image stages there
	 * outlives the machine's next boot. */
	const char *dir = getenv("FUZZ_SCRATCH");
	if (!dir)
		dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/reimage-fuzz-%s-XXXXXX", dir, name);
	FZ_CHECK(mkdtemp(tmpl) && realpath(tmpl, scratch), "scratch directory: %s",
		 strerror(errno));
	atexit(remove_scratch);
	return scratch;
}

void fz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: invariant broken: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

void fz_remove(const char *path)
{
	struct reimage_error err = { 0 };
	FZ_CHECK(fs_remove_tree(path, &err) == 0, "remove %s: %s", path, err.msg);
}

void fz_mkdir(const char *path, unsigned mode)
{
	struct reimage_error err = { 0 };
	FZ_CHECK(fs_mkdir_p(path, mode, &err) == 0, "mkdir %s: %s", path, err.msg);
}

void fz_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	FZ_CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "write %s", path);
}

static char *manifest;
static size_t manifest_len, manifest_cap, manifest_base;

static void add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(manifest + manifest_len, manifest_cap - manifest_len, fmt, ap);
		va_end(ap);
		FZ_CHECK(n >= 0, "manifest");
		if ((size_t)n < manifest_cap - manifest_len)
			break;
		manifest_cap = manifest_cap * 2 + (size_t)n + 1;
		FZ_CHECK((manifest = realloc(manifest, manifest_cap)), "out of memory");
	}
	manifest_len += (size_t)n;
}

static int one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char target[PATH_MAX];
	uLong crc = crc32(0L, Z_NULL, 0);
	ssize_t n;

	(void)flag;
	(void)ftw;
	add("%s %o %u:%u %lu %lld", path + manifest_base, (unsigned)st->st_mode,
	    (unsigned)st->st_uid, (unsigned)st->st_gid, (unsigned long)st->st_nlink,
	    (long long)st->st_size);
	if (S_ISLNK(st->st_mode) && (n = readlink(path, target, sizeof(target) - 1)) >= 0) {
		target[n] = '\0';
		add(" -> %s", target);
	} else if (S_ISREG(st->st_mode)) {
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		unsigned char buf[4096];
		while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			crc = crc32(crc, buf, (uInt)n);
		if (fd >= 0)
			close(fd);
		add(" crc %08lx", (unsigned long)crc);
	}
	add("\n");
	return 0;
}

char *fz_manifest(const char *dir)
{
	manifest_cap = 4096;
	manifest_len = 0;
	manifest_base = strlen(dir);
	FZ_CHECK((manifest = malloc(manifest_cap)), "out of memory");
	manifest[0] = '\0';
	FZ_CHECK(nftw(dir, one, 16, FTW_PHYS) == 0, "walk %s", dir);
	return manifest;
}

int fz_count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	FZ_CHECK(d, "open %s", dir);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* Make a tree removable: directories searchable and writable, and no
 * immutable or append-only flag (an image may set both). */
static int unlock_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	int fd, attr = 0;

	(void)flag;
	(void)ftw;
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
		return 0;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) >= 0) {
		if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0 &&
		    (attr & (FS_IMMUTABLE_FL | FS_APPEND_FL))) {
			attr &= ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
			ioctl(fd, FS_IOC_SETFLAGS, &attr);
		}
		close(fd);
	}
	if (S_ISDIR(st->st_mode))
		chmod(path, 0700);
	return 0;
}

void fz_unlock(const char *path)
{
	nftw(path, unlock_one, 16, FTW_PHYS);
}
