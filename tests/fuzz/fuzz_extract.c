/*
 * fuzz_extract.c -- STAGE on hostile archives: the archive reader and the
 * one staging writer (source_archive_read() into stage.c's sink), as an
 * image file or as an OCI layer (whiteouts applied).
 *
 * byte 0: flags: 1 the rest is an archive as it is (any format libarchive
 *         reads); 2 an OCI layer (whiteouts); 4 a dry run (`reimage plan`)
 * else the rest is entries, each 5 bytes and a string:
 *   type     file, directory, symlink, hard link, character device,
 *            block device, fifo, file again (type % 8)
 *   path     one of the nasty shapes below ('*' replaced by the string),
 *            or the string itself
 *   target   the same for the link target
 *   mode     one of a few modes (setuid, world-writable, none...); for
 *            devices also the device number
 *   length   of the string that follows (at most 255 bytes)
 * written as a pax tar by libarchive, so that every shape reaches the
 * writer as the hostile image would deliver it.
 *
 * Beside the staging directory lies a sentinel directory ("$S" in the
 * shapes is its absolute path, "../sentinel" reaches it from staging),
 * and the process works in an empty directory of its own.  Whatever the
 * image, after it is staged or refused: the sentinel is exactly as it was
 * (no file written, linked, chmod'ed or removed through a path, a symlink
 * or a hard link), the working directory is still empty, and nothing new
 * lies beside staging.
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "error.h"
#include "source.h"
#include "stage.h"
#include "stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *base;
static char staging[PATH_MAX], sentinel[PATH_MAX], cwd[PATH_MAX];
static char *sentinel_before;

static const char *const shapes[] = {
	"a", "a/b", "a/b/c", "link", "link/x", "link/..", "link/keep", "../x", "../sentinel/x",
	"../sentinel/keep", "a/../../sentinel/x", "$S/x", "$S/keep", "$S", "./a", ".", "./", "",
	"a//b", "a/./b", "a/b/../..", "..", "/", "//x", "dev/null", "dev/x", "dev/../etc/x",
	"etc/x", ".wh.a", "a/.wh..wh..opq", ".wh..wh..opq", "a/.wh.b", ".wh.link", "link/.wh.keep",
	"a/.wh...", ".wh..", "*", "a/*", "link/*", "dev/*", "../*", "$S/*",
	"d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/x",
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

static const unsigned modes[] = { 0755, 0644, 04755, 0666, 0, 01777, 02755, 0600 };
static const unsigned devs[][2] = { { 1, 3 }, { 1, 5 }, { 8, 0 }, { 0, 0 } };

/* A shape (or the string) with '*' and "$S" replaced. */
static void shape(char *out, size_t len, unsigned sel, const char *str)
{
	const char *s = sel < N_SHAPES ? shapes[sel] : str;
	size_t o = 0;

	for (; *s && o + 1 < len; s++) {
		const char *put = NULL;
		char one[2] = { *s, 0 };
		if (sel < N_SHAPES && *s == '*')
			put = str;
		else if (sel < N_SHAPES && s[0] == '$' && s[1] == 'S')
			put = sentinel, s++;
		else
			put = one;
		size_t n = strlen(put);
		if (n > len - 1 - o)
			n = len - 1 - o;
		memcpy(out + o, put, n);
		o += n;
	}
	out[o] = '\0';
}

struct buffer {
	unsigned char *data;
	size_t len, cap, pos;
};

static la_ssize_t buf_write(struct archive *a, void *arg, const void *data, size_t len)
{
	struct buffer *b = arg;
	(void)a;
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		FZ_CHECK((b->data = realloc(b->data, b->cap)), "out of memory");
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return (la_ssize_t)len;
}

/* The entries the input describes, as a pax tar in b. */
static void build_tar(const uint8_t *data, size_t size, struct buffer *b)
{
	struct archive *w = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	static const char content[] = "hostile content\n";

	FZ_CHECK(w && e, "out of memory");
	archive_write_set_format_pax_restricted(w);
	archive_write_set_bytes_in_last_block(w, 1);
	FZ_CHECK(archive_write_open(w, b, NULL, buf_write, NULL) == ARCHIVE_OK, "tar writer");
	for (size_t i = 0; i + 5 <= size;) {
		const uint8_t *h = data + i;
		size_t sl = h[4] < size - i - 5 ? h[4] : size - i - 5;
		char str[256], path[PATH_MAX], target[PATH_MAX];

		memcpy(str, h + 5, sl);
		str[sl] = '\0';
		i += 5 + sl;
		shape(path, sizeof(path), h[1], str);
		shape(target, sizeof(target), h[2], str);
		archive_entry_clear(e);
		archive_entry_set_pathname(e, path);
		archive_entry_set_perm(e, modes[h[3] % 8]);
		archive_entry_set_mtime(e, 981173106, 0);
		switch (h[0] % 8) {
		case 1:
			archive_entry_set_filetype(e, AE_IFDIR);
			break;
		case 2:
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, target);
			break;
		case 3:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, target);
			break;
		case 4:
		case 5:
			archive_entry_set_filetype(e, h[0] % 8 == 4 ? AE_IFCHR : AE_IFBLK);
			archive_entry_set_rdevmajor(e, devs[(h[3] >> 3) % 4][0]);
			archive_entry_set_rdevminor(e, devs[(h[3] >> 3) % 4][1]);
			break;
		case 6:
			archive_entry_set_filetype(e, AE_IFIFO);
			break;
		default:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_size(e, sizeof(content) - 1);
			break;
		}
		if (archive_write_header(w, e) < ARCHIVE_WARN)
			continue;  /* a shape the tar writer itself refuses */
		if (archive_entry_size(e) > 0)
			archive_write_data(w, content, sizeof(content) - 1);
	}
	archive_write_close(w);
	archive_write_free(w);
	archive_entry_free(e);
}

static ssize_t pull(void *arg, void *buf, size_t len, struct reimage_error *err)
{
	struct buffer *b = arg;
	size_t n = b->len - b->pos < len ? b->len - b->pos : len;
	(void)err;
	memcpy(buf, b->data + b->pos, n);
	b->pos += n;
	return (ssize_t)n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char keep[PATH_MAX];

	(void)argc;
	(void)argv;
	base = fz_scratch("extract");
	snprintf(staging, sizeof(staging), "%s/staging", base);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", base);
	snprintf(cwd, sizeof(cwd), "%s/cwd", base);
	fz_mkdir(sentinel, 0755);
	fz_mkdir(cwd, 0755);
	snprintf(keep, sizeof(keep), "%s/keep", sentinel);
	fz_write(keep, "sentinel\n");
	snprintf(keep, sizeof(keep), "%s/dir", sentinel);
	fz_mkdir(keep, 0750);
	/* A hard-link target resolved against the working directory would
	 * land here. */
	FZ_CHECK(chdir(cwd) == 0, "chdir %s", cwd);
	sentinel_before = fz_manifest(sentinel);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buffer b = { 0 };
	struct stream_request sr = { .url = "fuzz:image", .what = "image",
				     .declared_by = "the job", .size = -1, .pull = pull,
				     .pull_arg = &b };
	struct reimage_error err = { 0 };
	struct stage_sink k;
	struct stream *s;
	char *now;

	if (size == 0 || size > 1 << 20)
		return 0;
	if (data[0] & 1) {
		FZ_CHECK((b.data = malloc(size)), "out of memory");
		memcpy(b.data, data + 1, size - 1);
		b.len = size - 1;
	} else {
		build_tar(data + 1, size - 1, &b);
	}
	FZ_CHECK(mkdir(staging, 0700) == 0, "mkdir %s", staging);
	stage_sink_init(&k, staging, data[0] & 4);
	FZ_CHECK(stream_open(&sr, &s, &err) == 0, "stream: %s", err.msg);
	if (source_archive_read(s, &k, data[0] & 2, "image", &err) < 0)
		FZ_CHECK(err.code < 0 && err.msg[0], "a refusal without a reason");
	stream_close(s);
	stage_sink_fini(&k);

	now = fz_manifest(sentinel);
	FZ_CHECK(strcmp(now, sentinel_before) == 0,
		 "the sentinel beside staging changed:\n%s\nwas:\n%s", now, sentinel_before);
	free(now);
	FZ_CHECK(fz_count_entries(cwd) == 0, "something was written in the working directory");
	FZ_CHECK(fz_count_entries(base) == 3, "something appeared beside staging in %s", base);
	fz_unlock(staging);
	fz_remove(staging);
	free(b.data);
	return 0;
}
