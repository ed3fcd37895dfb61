/*
 * journal.c -- records with length and checksum (see journal.h).  The
 * journal is written before the first rename of a swap and fsynced with
 * its directory: "in progress" is on disk before anything is destroyed.
 */
#define _GNU_SOURCE
#include "journal.h"
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
#include <zlib.h>

#define JOURNAL_MAX (64u << 20)

/* The records of payloads as they are on disk, in one malloc'ed buffer. */
static char *format_records(const char *const *payloads, size_t n, size_t *ret_len)
{
	size_t cap = 1, len = 0;
	char *buf;

	for (size_t i = 0; i < n; i++)
		cap += strlen(payloads[i]) + 32;
	if (!(buf = malloc(cap)))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(payloads[i]);
		uLong crc = crc32(0L, (const Bytef *)payloads[i], (uInt)l);
		len += (size_t)snprintf(buf + len, cap - len, "R %zu %08lx %s\n", l,
					(unsigned long)crc, payloads[i]);
	}
	*ret_len = len;
	return buf;
}

/* Cut a record torn by a power cut off the end of the journal (fd) before
 * appending: a reader stops at it, so every record after it would be
 * unreadable ("undone" written by a recover would never be seen). */
static int journal_trim(int fd, const char *path, struct reimage_error *err)
{
	struct journal_reader jr;
	int r = journal_open(&jr, path, err);

	if (r < 0)
		return r == -ENOENT ? 0 : r;
	while (journal_next(&jr))
		;
	if (jr.pos < jr.len && ftruncate(fd, (off_t)jr.pos) < 0) {
		r = -errno;
		err_sys(err, r, "journal %s: cut its torn end", path);
	}
	journal_close(&jr);
	return r;
}

int journal_append(const char *path, const char *const *payloads, size_t n,
		   struct reimage_error *err)
{
	struct stat st;
	int created = lstat(path, &st) < 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	FILE *f;
	int r;

	if (fd < 0) {
		err_sys(err, -errno, "journal %s", path);
		return -errno;
	}
	if (!created && (r = journal_trim(fd, path, err)) < 0) {
		close(fd);
		return r;
	}
	f = fdopen(fd, "a");
	if (!f) {
		close(fd);
		err_sys(err, -ENOMEM, "journal %s", path);
		return -ENOMEM;
	}
	size_t len;
	char *data = format_records(payloads, n, &len);
	if (!data) {
		fclose(f);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	fwrite(data, 1, len, f);
	free(data);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = -errno;
		fclose(f);
		err_sys(err, e, "write journal %s", path);
		return e;
	}
	if (fclose(f) != 0) {
		err_sys(err, -errno, "close journal %s", path);
		return -errno;
	}
	/* A new file's name is durable only with its directory. */
	return created ? fs_sync_parent(path, err) : 0;
}

/* Write data to path's temporary name and fsync it: durable, not yet named. */
static int write_tmp(const char *path, const char *data, size_t len, struct reimage_error *err)
{
	char tmp[PATH_MAX];
	int fd, e = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err_sys(err, -errno, "journal %s", tmp);
		return -errno;
	}
	for (size_t off = 0; off < len && !e;) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno != EINTR)
			e = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (!e && fsync(fd) < 0)
		e = -errno;
	close(fd);
	if (e)
		err_sys(err, e, "write journal %s", tmp);
	return e;
}

int journal_create(const char *const *paths, size_t n_paths, const char *const *payloads,
		   size_t n, struct reimage_error *err)
{
	char tmp[PATH_MAX];
	size_t len;
	char *data = format_records(payloads, n, &len);
	int r = 0;

	if (!data) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	/* Every copy's content is on disk before any name points at it... */
	for (size_t i = 0; i < n_paths && r == 0; i++)
		r = write_tmp(paths[i], data, len, err);
	free(data);
	/* ...then the names, in the order given: each rename replaces what
	 * an earlier job left, so no moment is without a whole journal... */
	for (size_t i = 0; i < n_paths && r == 0; i++) {
		snprintf(tmp, sizeof(tmp), "%s.tmp", paths[i]);
		if (rename(tmp, paths[i]) < 0) {
			r = -errno;
			err_sys(err, r, "rename %s", tmp);
		}
	}
	/* ...and one sync of their directory makes every rename durable. */
	return r < 0 ? r : fs_sync_parent(paths[0], err);
}

int journal_open(struct journal_reader *jr, const char *path, struct reimage_error *err)
{
	memset(jr, 0, sizeof(*jr));
	if (!fs_exists(path))
		return -ENOENT;
	return fs_read_small(path, JOURNAL_MAX, &jr->data, &jr->len, err);
}

/* Digits only (strtoul would take signs, spaces and "0x"), at most max. */
static char *number(char *p, const char *end, int base, unsigned long max, unsigned long *ret)
{
	unsigned long v = 0;
	char *start = p;

	for (; p < end; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0'
			: base == 16 && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
		if (d < 0)
			break;
		if (v > (max - (unsigned long)d) / (unsigned long)base)
			return NULL;
		v = v * (unsigned long)base + (unsigned long)d;
	}
	*ret = v;
	return p == start ? NULL : p;
}

const char *journal_next(struct journal_reader *jr)
{
	char *p = jr->data + jr->pos, *end = jr->data + jr->len, *q, *payload;
	unsigned long len, crc;

	if (jr->pos >= jr->len || end - p < 2 || strncmp(p, "R ", 2) != 0)
		return NULL;
	if (!(q = number(p + 2, end, 10, JOURNAL_MAX, &len)) || q >= end || *q != ' ')
		return NULL;
	payload = number(q + 1, end, 16, 0xffffffffUL, &crc);
	if (payload != q + 9 || payload >= end || *payload != ' ')
		return NULL;
	payload++;
	/* A NUL would end the payload early for its reader: not a record
	 * journal_append writes, whatever its checksum. */
	if ((unsigned long)(end - payload) <= len || payload[len] != '\n' ||
	    memchr(payload, '\0', len))
		return NULL;
	payload[len] = '\0';
	if (crc32(0L, (const Bytef *)payload, (uInt)len) != crc)
		return NULL;
	jr->pos = (size_t)(payload + len + 1 - jr->data);
	return payload;
}

void journal_close(struct journal_reader *jr)
{
	free(jr->data);
	memset(jr, 0, sizeof(*jr));
}

void journal_encode(char *out, size_t len, const char *name)
{
	size_t o = 0;
	for (const unsigned char *c = (const unsigned char *)name; *c && o + 4 < len; c++) {
		if (*c <= ' ' || *c == '%' || *c >= 0x7f)
			o += (size_t)snprintf(out + o, len - o, "%%%02X", *c);
		else
			out[o++] = (char)*c;
	}
	out[o] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

int journal_decode(char *out, size_t len, const char *in)
{
	size_t o = 0;
	for (; *in; in++) {
		char c = *in;
		if (c == '%') {
			if (hexval(in[1]) < 0 || hexval(in[2]) < 0)
				return -EINVAL;
			c = (char)(hexval(in[1]) * 16 + hexval(in[2]));
			in += 2;
		}
		if (o + 1 >= len || c == '\0')
			return -EINVAL;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}
