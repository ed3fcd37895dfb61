/*
 * transport_file.c -- the built-in "file" transport: plain paths and
 * file: URLs.  It lets the whole flow run with no server (images on a
 * local disk or a mounted share, a job store in a directory).
 */
#define _GNU_SOURCE
#include "builtin.h"
#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct reimage_stream {
	int fd;
	uint64_t left;  /* bytes open_range() still delivers; UINT64_MAX: to the end */
	const struct reimage_host *host;
	char path[PATH_MAX];
};

struct file_ctx {
	const struct reimage_host *host;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int file_url_path(const char *url, char *path, size_t len, struct reimage_error *err)
{
	const char *p = url;
	size_t o = 0;

	if (strncmp(p, "file:", 5) == 0) {
		p += 5;
		if (strncmp(p, "//", 2) == 0) {
			p += 2;
			if (strncmp(p, "localhost/", 10) == 0)
				p += 9;
			else if (*p != '/') {
				err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
					"URL '%s': file URLs name a local path only", url);
				return -EINVAL;
			}
		}
	}
	for (; *p; p++) {
		char c = *p;
		if (c == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
			p += 2;
		}
		if (c == '\0' || o + 1 >= len) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "URL '%s': not a usable path", url);
			return -EINVAL;
		}
		path[o++] = c;
	}
	path[o] = '\0';
	if (o == 0) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "URL '%s': empty path", url);
		return -EINVAL;
	}
	return 0;
}

static int sys_error(const struct reimage_host *host, struct reimage_error *err, int e,
		     const char *what, const char *path)
{
	enum reimage_errclass cls = e == ENOENT ? REIMAGE_EC_NOTFOUND
				  : (e == EACCES || e == EPERM) ? REIMAGE_EC_ACCESS
				  : REIMAGE_EC_IO;
	host->error(err, -e, cls, "%s %s: %s", what, path, strerror(e));
	return -e;
}

static int file_init(const struct reimage_host *host, const struct reimage_optval *values,
		     void **ret_ctx, struct reimage_error *err)
{
	struct file_ctx *c = calloc(1, sizeof(*c));
	(void)values;
	if (!c) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	c->host = host;
	*ret_ctx = c;
	return 0;
}

static void file_fini(void *ctx)
{
	free(ctx);
}

static int file_open_range(void *ctx, const char *url, uint64_t offset, uint64_t length,
			   struct reimage_stream **ret_stream, uint64_t *ret_size,
			   struct reimage_error *err);

static int file_open(void *ctx, const char *url, uint64_t offset,
		     struct reimage_stream **ret_stream, uint64_t *ret_size,
		     struct reimage_error *err)
{
	return file_open_range(ctx, url, offset, UINT64_MAX, ret_stream, ret_size, err);
}

/* length UINT64_MAX: to the end (open()). */
static int file_open_range(void *ctx, const char *url, uint64_t offset, uint64_t length,
			   struct reimage_stream **ret_stream, uint64_t *ret_size,
			   struct reimage_error *err)
{
	struct file_ctx *c = ctx;
	char path[PATH_MAX];
	struct reimage_stream *s;
	struct stat st;
	int fd, r;

	if ((r = file_url_path(url, path, sizeof(path), err)) < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sys_error(c->host, err, errno, "open", path);
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
		close(fd);
		return sys_error(c->host, err, e, "open", path);
	}
	if (length != UINT64_MAX && S_ISREG(st.st_mode) &&
	    (offset > (uint64_t)st.st_size || length > (uint64_t)st.st_size - offset)) {
		close(fd);
		c->host->error(err, -ERANGE, REIMAGE_EC_INTEGRITY,
			       "%s: bytes %llu-%llu lie past its end (%lld bytes)", path,
			       (unsigned long long)offset, (unsigned long long)(offset + length - 1),
			       (long long)st.st_size);
		return -ERANGE;
	}
	if (offset && lseek(fd, (off_t)offset, SEEK_SET) < 0) {
		int e = errno;
		close(fd);
		return sys_error(c->host, err, e, "seek in", path);
	}
	s = malloc(sizeof(*s));
	if (!s) {
		close(fd);
		return sys_error(c->host, err, ENOMEM, "open", path);
	}
	s->fd = fd;
	s->left = length;
	s->host = c->host;
	snprintf(s->path, sizeof(s->path), "%s", path);
	/* Advise the kernel we read once, front to back. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	*ret_size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : REIMAGE_SIZE_UNKNOWN;
	*ret_stream = s;
	return 0;
}

static ssize_t file_read(struct reimage_stream *s, void *buf, size_t len,
			 struct reimage_error *err)
{
	if (len > s->left)
		len = (size_t)s->left;
	for (;;) {
		ssize_t n = len ? read(s->fd, buf, len) : 0;
		if (n >= 0) {
			if (s->left != UINT64_MAX)
				s->left -= (uint64_t)n;
			return n;
		}
		if (errno != EINTR) {
			return sys_error(s->host, err, errno, "read", s->path);
		}
	}
}

static void file_close(struct reimage_stream *s)
{
	close(s->fd);
	free(s);
}

/* The validator of a local document: its size and modification time. */
static void file_etag(const struct stat *st, char etag[REIMAGE_ETAG_MAX])
{
	snprintf(etag, REIMAGE_ETAG_MAX, "%lld-%lld.%09ld", (long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static int file_fetch(void *ctx, const char *url, void *buf, size_t cap, size_t *ret_len,
		      char etag[REIMAGE_ETAG_MAX], int64_t *ret_date, struct reimage_error *err)
{
	struct file_ctx *c = ctx;
	char path[PATH_MAX], tag[REIMAGE_ETAG_MAX];
	struct stat st;
	size_t have = 0;
	int fd, r;

	if ((r = file_url_path(url, path, sizeof(path), err)) < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sys_error(c->host, err, errno, "open", path);
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return sys_error(c->host, err, e, "stat", path);
	}
	if (ret_date)
		*ret_date = 0;
	file_etag(&st, tag);
	if (etag[0] && strcmp(etag, tag) == 0) {
		close(fd);
		return REIMAGE_NOT_MODIFIED;
	}
	/* Read at most cap + 1 bytes: one byte more tells "too large". */
	for (;;) {
		char extra;
		ssize_t n = have < cap ? read(fd, (char *)buf + have, cap - have) : read(fd, &extra, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return sys_error(c->host, err, e, "read", path);
		}
		if (n == 0)
			break;
		if (have == cap) {
			close(fd);
			c->host->error(err, -EFBIG, REIMAGE_EC_INTEGRITY,
				       "%s: larger than %zu bytes", path, cap);
			return -EFBIG;
		}
		have += (size_t)n;
	}
	close(fd);
	memcpy(etag, tag, REIMAGE_ETAG_MAX);
	*ret_len = have;
	return 0;
}

static int file_put(void *ctx, const char *url, const void *data, size_t len,
		    const char *content_type, struct reimage_error *err)
{
	char path[PATH_MAX];
	int r;

	(void)ctx;
	(void)content_type;
	if ((r = file_url_path(url, path, sizeof(path), err)) < 0)
		return r;
	/* A store's folders appear with its first document, as an HTTP
	 * server's do with create_full_put_path. */
	char *slash = strrchr(path, '/');
	if (slash && slash > path) {
		*slash = '\0';
		r = fs_mkdir_p(path, 0755, err);
		*slash = '/';
		if (r < 0)
			return r;
	}
	return fs_write_atomic(path, data, len, NULL, err);
}

static int file_remove(void *ctx, const char *url, struct reimage_error *err)
{
	struct file_ctx *c = ctx;
	char path[PATH_MAX];
	int r;

	if ((r = file_url_path(url, path, sizeof(path), err)) < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return sys_error(c->host, err, errno, "remove", path);
	return 0;
}

static const char *const file_schemes[] = { "file", NULL };

static const struct reimage_transport_ops file_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_transport_ops),
	.name = "file",
	.caps = REIMAGE_TCAP_RESUME | REIMAGE_TCAP_PUT | REIMAGE_TCAP_ETAG,
	.schemes = file_schemes,
	.options = NULL,
	.init = file_init,
	.fini = file_fini,
	.open = file_open,
	.read = file_read,
	.close = file_close,
	.fetch = file_fetch,
	.put = file_put,
	.remove = file_remove,
	.open_range = file_open_range,
};

REIMAGE_PLUGIN(file, TRANSPORT, transport, file_ops)
