/*
 * chunked.c -- the zstd:chunked format (chunked.h): its footer, table of
 * contents and tar-split read, and the writer `reimagectl image chunk`
 * runs.  The layout is containers/storage's (pkg/chunked):
 *
 *   [zstd frame: tar headers of entry 1]  [zstd frame: content of entry 1]
 *   [zstd frame: padding of 1, headers of entry 2]  [content of 2] ...
 *   [zstd frame: the last padding and the tar's end blocks]
 *   [skippable frame: TOC, zstd-compressed JSON]
 *   [skippable frame: tar-split, zstd-compressed JSON lines]
 *   [skippable frame: footer, 64 bytes]
 *
 * The footer: little-endian TOC offset (of its compressed bytes), length,
 * uncompressed length, type (1), tar-split offset, length, uncompressed
 * length, then "GNUlInUx".  The TOC: {"version":1, "entries":[...],
 * "tarSplitDigest":"sha256:..."}, each entry with type, name, linkName,
 * mode, size, uid, gid, modtime, accesstime, devMajor, devMinor, xattrs
 * (base64 values) and, for a file with content, digest ("sha256:" and the
 * content's hex), offset and endOffset of its frame.  The tar-split (vbatts/
 * tar-split's JSON packer): {"type":2,"payload":BASE64,"position":N} for
 * raw bytes of the tar, {"type":1,"name":...,"size":N,"payload":CRC64}
 * for an entry's content.  The image's digest for a job's image.toc_sha256
 * is the SHA-256 of the TOC's compressed bytes (containers/storage's
 * manifest-checksum).
 *
 * A file's content is cut in chunks where a rolling checksum says
 * (chunked_roll_split, containers/storage's rule), each chunk its own
 * frame: the file's entry describes the first chunk (chunkSize,
 * chunkDigest), a {"type":"chunk", "name", "offset", "chunkOffset",
 * "chunkSize", "chunkDigest"} entry right after it each of the others; a
 * file of one chunk has no chunk fields.  A reader that lacks the file
 * but holds some of its chunks fetches only the others.
 *
 * Where reimage deviates (docs/usage.md "Chunked images"): no "zeros"
 * chunks (runs of zeros are data, compressed as such); a sparse member's
 * digest and size are those of its content as the tar stores it (the
 * sparse map and the data, without holes).
 */
#define _GNU_SOURCE
#include "chunked.h"
#include "error.h"
#include "source.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

static const unsigned char footer_magic[8] = { 'G', 'N', 'U', 'l', 'I', 'n', 'U', 'x' };
#define SKIPPABLE_MAGIC 0x184D2A50u
#define MANIFEST_TYPE_CRFS 1

static uint64_t get_le64(const unsigned char *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static void put_le(unsigned char *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		b[i] = (unsigned char)v;
}

static int out_of_memory(struct reimage_error *err)
{
	err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
	return -ENOMEM;
}

static int bad(struct reimage_error *err, const char *what, const char *why)
{
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: %s", what, why);
	return -EBADMSG;
}

/* [offset, offset + length) lies inside a file of size bytes. */
static int inside(uint64_t offset, uint64_t length, uint64_t size)
{
	return offset <= size && length <= size - offset;
}

int chunked_footer_parse(const unsigned char b[CHUNKED_FOOTER_SIZE], uint64_t file_size,
			 struct chunked_footer *f, struct reimage_error *err)
{
	if (memcmp(b + 56, footer_magic, sizeof(footer_magic)) != 0)
		return bad(err, "chunked image", "no zstd:chunked footer at its end");
	f->toc_offset = get_le64(b);
	f->toc_length = get_le64(b + 8);
	f->toc_ulength = get_le64(b + 16);
	f->toc_type = get_le64(b + 24);
	f->ts_offset = get_le64(b + 32);
	f->ts_length = get_le64(b + 40);
	f->ts_ulength = get_le64(b + 48);
	if (f->toc_type != MANIFEST_TYPE_CRFS)
		return bad(err, "chunked image", "the footer names a TOC type other than 1");
	if (!f->toc_length || !inside(f->toc_offset, f->toc_length, file_size) ||
	    !f->ts_length || !inside(f->ts_offset, f->ts_length, file_size) ||
	    f->toc_length > CHUNKED_META_MAX || f->ts_length > CHUNKED_META_MAX ||
	    f->toc_ulength > CHUNKED_META_MAX || f->ts_ulength > CHUNKED_META_MAX)
		return bad(err, "chunked image", "the footer's TOC or tar-split lies outside the file");
	return 0;
}

int chunked_unzstd(const void *in, size_t len, size_t cap, char **ret, size_t *ret_len,
		   const char *what, struct reimage_error *err)
{
	unsigned long long n = ZSTD_getFrameContentSize(in, len);
	char *out;
	size_t got;

	if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > cap)
		return bad(err, what, "not a zstd frame of a known size within the limit");
	if (!(out = malloc(n + 1)))
		return out_of_memory(err);
	got = ZSTD_decompress(out, n, in, len);
	if (ZSTD_isError(got) || got != n) {
		free(out);
		return bad(err, what, ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
	}
	out[n] = '\0';
	*ret = out;
	*ret_len = (size_t)n;
	return 0;
}

int chunked_hex_digest(const char *hex, unsigned char out[32])
{
	/* A digit's value plus one by table: a TOC holds tens of thousands
	 * of digests. */
	static const unsigned char value[256] = {
		['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7,
		['7'] = 8, ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
		['e'] = 15, ['f'] = 16,
	};
	if (!hex)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned hi = value[(unsigned char)hex[2 * i]], lo;
		if (!hi || !(lo = value[(unsigned char)hex[2 * i + 1]]))
			return -1;
		out[i] = (unsigned char)((hi - 1) << 4 | (lo - 1));
	}
	return hex[64] == '\0' ? 0 : -1;
}

/* "sha256:" and 64 hex digits into 32 bytes. */
static int parse_digest(const char *s, unsigned char out[32])
{
	return s && strncmp(s, "sha256:", 7) == 0 ? chunked_hex_digest(s + 7, out) : -1;
}

/* n decimal digits at s, or -1. */
static int fixed_digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* RFC 3339 "2024-01-02T03:04:05[.frac]Z" as Go writes times (UTC, the
 * fields at their width): seconds, and nanoseconds in *ret_nsec;
 * INT64_MIN if it is not one.  By hand, not sscanf and timegm: a TOC
 * holds one a file. */
static int64_t parse_time(const char *s, long *ret_nsec)
{
	long nsec = 0, scale = 100000000;
	int y, mo, d, h, mi, sec;

	*ret_nsec = 0;
	if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || (y = fixed_digits(s, 4)) < 0 || (mo = fixed_digits(s + 5, 2)) < 1 ||
	    mo > 12 || (d = fixed_digits(s + 8, 2)) < 1 || d > 31 ||
	    (h = fixed_digits(s + 11, 2)) < 0 || h > 23 || (mi = fixed_digits(s + 14, 2)) < 0 ||
	    mi > 59 || (sec = fixed_digits(s + 17, 2)) < 0 || sec > 60)
		return INT64_MIN;
	const char *p = s + 19;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			nsec += scale * (*p - '0');
	if (strcmp(p, "Z") != 0)
		return INT64_MIN;
	/* Days since 1970-01-01 of the civil date (H. Hinnant's days_from_civil). */
	int64_t yy = y - (mo <= 2), era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400, doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
	*ret_nsec = nsec;
	return days * 86400 + h * 3600 + mi * 60 + sec;
}

void chunked_roll_init(struct chunked_roll *r)
{
	memset(r, 0, sizeof(*r));
	r->s1 = CHUNKED_ROLL_WINDOW * 31;
	r->s2 = CHUNKED_ROLL_WINDOW * (CHUNKED_ROLL_WINDOW - 1) * 31;
}

size_t chunked_roll_split(struct chunked_roll *r, const unsigned char *p, size_t len)
{
	const uint32_t mask = (1u << CHUNKED_ROLL_BITS) - 1;
	uint32_t s1 = r->s1, s2 = r->s2;
	unsigned wofs = r->wofs;
	size_t i = 0;

	while (i < len) {
		uint32_t drop = r->window[wofs], add = p[i++];
		s1 += add - drop;
		s2 += s1 - CHUNKED_ROLL_WINDOW * (drop + 31);
		r->window[wofs] = (unsigned char)add;
		wofs = (wofs + 1) & (CHUNKED_ROLL_WINDOW - 1);
		if ((s2 & mask) == mask)
			break;
	}
	r->s1 = s1;
	r->s2 = s2;
	r->wofs = wofs;
	return (s2 & mask) == mask && i ? i : 0;
}

void chunked_toc_free(struct chunked_toc *toc)
{
	for (size_t i = 0; i < toc->n; i++) {
		struct chunked_file *f = &toc->files[i];
		for (size_t j = 0; j < f->n_chunks; j++)
			free(f->chunks[j].local);
		free(f->chunks);
		free(f->name);
		free(f->delta_from);
	}
	free(toc->files);
	memset(toc, 0, sizeof(*toc));
}

/* Append a chunk to f: [at, at + size) of its content, its frame from
 * offset (its end is the next chunk's offset, or the file's end). */
static int add_chunk(struct chunked_file *f, uint64_t at, uint64_t size, uint64_t offset,
		     const unsigned char digest[32])
{
	if (!(f->n_chunks & (f->n_chunks - 1))) {
		struct chunked_chunk *grown = realloc(f->chunks, (f->n_chunks ? 2 * f->n_chunks : 1) *
							       sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		f->chunks = grown;
	}
	struct chunked_chunk *c = &f->chunks[f->n_chunks++];
	memset(c, 0, sizeof(*c));
	c->at = at;
	c->size = size;
	c->offset = offset;
	memcpy(c->digest, digest, 32);
	return 0;
}

/* A file's chunks, as the TOC's entries gave them: each chunk's frame
 * ends where the next begins; they cover the content exactly, in order,
 * inside the file's frames. */
static int chunks_close(struct chunked_file *f, const char *what, struct reimage_error *err)
{
	uint64_t at = 0;

	for (size_t i = 0; i < f->n_chunks; i++) {
		struct chunked_chunk *c = &f->chunks[i];
		c->end = i + 1 < f->n_chunks ? f->chunks[i + 1].offset : f->end;
		if (c->at != at || !c->size || c->end <= c->offset ||
		    (i == 0 && c->offset != f->offset) || c->size > f->size - at) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"%s: the chunks of '%s' do not cover its content in order", what,
				f->name);
			return -EBADMSG;
		}
		at += c->size;
	}
	if (at != f->size)
		return bad(err, what, "a file's chunks do not add up to its size");
	return 0;
}

/* ------------------------------------------------------------ TOC reader */

/* The TOC is read by a JSON reader of its own, value by value, keeping
 * only what a reader of chunked images needs: jansson built a tree of a
 * Debian root's 4 MB TOC (12,000 entries, 100,000 values) in 0.14 s of
 * CPU, which a first image (read whole after it) paid on top of the full
 * stream's time.  Its grammar is RFC 8259's; a value it does not keep is
 * checked and skipped.  Strings are decoded (escapes, \u with surrogate
 * pairs) into buffers of the reader; "\u0000" is refused, as jansson
 * refuses it; control characters are taken as they come (RFC 8259 wants
 * them escaped, but looking for them would cost a pass over every
 * string, and a name holding one only fails to match the tar-split's). */
#define JSON_DEPTH_MAX 64

struct jbuf {
	char *s;
	size_t len, cap;
};

struct jreader {
	const char *p, *end;
	struct jbuf key;
	const char *failed;  /* where a syntax error (or out of memory) ended the parse */
	int no_memory;
};

static void j_fail(struct jreader *j)
{
	if (!j->failed)
		j->failed = j->p;
	j->p = j->end;
}

static void j_ws(struct jreader *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

/* The next non-blank character is c: consume it (else 0, nothing consumed). */
static int j_eat(struct jreader *j, char c)
{
	j_ws(j);
	if (j->p < j->end && *j->p == c) {
		j->p++;
		return 1;
	}
	return 0;
}

static int jbuf_put(struct jreader *j, struct jbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *grown = realloc(b->s, cap);
		if (!grown) {
			j->no_memory = 1;
			j_fail(j);
			return -1;
		}
		b->s = grown;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
		if (d == 16)
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* A string (the opening quote next) decoded into b; b NULL: checked only. */
static int j_string(struct jreader *j, struct jbuf *b)
{
	if (!j_eat(j, '"')) {
		j_fail(j);
		return -1;
	}
	if (b)
		b->len = 0;
	for (;;) {
		/* The run to the next quote or backslash, found by memchr: most
		 * of a TOC's bytes are in strings. */
		const char *run = j->p, *q = memchr(run, '"', (size_t)(j->end - run));
		const char *bs = q ? memchr(run, '\\', (size_t)(q - run)) : NULL;
		j->p = bs ? bs : q ? q : j->end;
		if (b && jbuf_put(j, b, run, (size_t)(j->p - run)) < 0)
			return -1;
		if (j->p == j->end)
			break;
		if (*j->p++ == '"')
			return b ? jbuf_put(j, b, "", 0) : 0;
		if (j->p == j->end)
			break;
		char c = *j->p++, out[4];
		size_t n = 1;
		unsigned u, lo;
		switch (c) {
		case '"': case '\\': case '/': out[0] = c; break;
		case 'b': out[0] = '\b'; break;
		case 'f': out[0] = '\f'; break;
		case 'n': out[0] = '\n'; break;
		case 'r': out[0] = '\r'; break;
		case 't': out[0] = '\t'; break;
		case 'u':
			if (j->end - j->p < 4 || hex4(j->p, &u) < 0 || u == 0)
				goto bad;
			j->p += 4;
			if (u >= 0xdc00 && u <= 0xdfff)
				goto bad;
			if (u >= 0xd800 && u <= 0xdbff) {
				if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
				    hex4(j->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					goto bad;
				j->p += 6;
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (u < 0x80) {
				out[0] = (char)u;
			} else if (u < 0x800) {
				out[0] = (char)(0xc0 | u >> 6);
				out[1] = (char)(0x80 | (u & 0x3f));
				n = 2;
			} else if (u < 0x10000) {
				out[0] = (char)(0xe0 | u >> 12);
				out[1] = (char)(0x80 | (u >> 6 & 0x3f));
				out[2] = (char)(0x80 | (u & 0x3f));
				n = 3;
			} else {
				out[0] = (char)(0xf0 | u >> 18);
				out[1] = (char)(0x80 | (u >> 12 & 0x3f));
				out[2] = (char)(0x80 | (u >> 6 & 0x3f));
				out[3] = (char)(0x80 | (u & 0x3f));
				n = 4;
			}
			break;
		default:
			goto bad;
		}
		if (b && jbuf_put(j, b, out, n) < 0)
			return -1;
	}
bad:
	j_fail(j);
	return -1;
}

/* A number: 1 and its value in *v if it is an integer (no fraction, no
 * exponent) of 0 to INT64_MAX, 0 if another number (or a negative one),
 * -1 on a syntax error or an integer out of range (jansson's "too big"). */
static int j_number(struct jreader *j, uint64_t *v)
{
	int neg = 0, integer = 1;
	uint64_t x = 0;

	j_ws(j);
	if (j->p < j->end && *j->p == '-') {
		neg = 1;
		j->p++;
	}
	if (j->p == j->end || *j->p < '0' || *j->p > '9')
		goto bad;
	if (*j->p == '0' && j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9')
		goto bad;
	for (; j->p < j->end && *j->p >= '0' && *j->p <= '9'; j->p++) {
		if (x > (uint64_t)(INT64_MAX - (*j->p - '0')) / 10)
			goto bad;
		x = x * 10 + (uint64_t)(*j->p - '0');
	}
	if (j->p < j->end && *j->p == '.') {
		integer = 0;
		if (++j->p == j->end || *j->p < '0' || *j->p > '9')
			goto bad;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		integer = 0;
		if (++j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p == j->end || *j->p < '0' || *j->p > '9')
			goto bad;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	*v = x;
	return integer && !neg;
bad:
	j_fail(j);
	return -1;
}

/* The next member of an object whose '{' is read: 1 with its key in
 * j->key and its colon read, 0 at the object's end (or a failure). */
static int j_next_member(struct jreader *j, size_t *n)
{
	if (j->failed)
		return 0;
	if ((*n)++ == 0 ? j_eat(j, '}') : !j_eat(j, ',')) {
		if (*n > 1 && !j_eat(j, '}'))
			j_fail(j);
		return 0;
	}
	if (j_string(j, &j->key) < 0 || !j_eat(j, ':')) {
		j_fail(j);
		return 0;
	}
	return 1;
}

/* The key just read is lit. */
#define KEY_IS(j, lit) \
	((j)->key.len == sizeof(lit) - 1 && memcmp((j)->key.s, lit, sizeof(lit) - 1) == 0)

/* The next element of an array whose '[' is read: 1 if there is one. */
static int j_next_element(struct jreader *j, size_t *n)
{
	if (j->failed)
		return 0;
	if ((*n)++ == 0)
		return !j_eat(j, ']');
	if (j_eat(j, ','))
		return 1;
	if (!j_eat(j, ']'))
		j_fail(j);
	return 0;
}

/* Any value, checked and skipped. */
static void j_skip(struct jreader *j, int depth)
{
	static const char *const words[] = { "true", "false", "null" };
	uint64_t ignored;

	j_ws(j);
	if (j->p == j->end || depth > JSON_DEPTH_MAX) {
		j_fail(j);
		return;
	}
	switch (*j->p) {
	case '"':
		j_string(j, NULL);
		return;
	case '{':
		j->p++;
		for (size_t n = 0; j_next_member(j, &n);)
			j_skip(j, depth + 1);
		return;
	case '[':
		j->p++;
		for (size_t n = 0; j_next_element(j, &n);)
			j_skip(j, depth + 1);
		return;
	}
	for (size_t i = 0; i < 3; i++)
		if ((size_t)(j->end - j->p) >= strlen(words[i]) &&
		    memcmp(j->p, words[i], strlen(words[i])) == 0) {
			j->p += strlen(words[i]);
			return;
		}
	j_number(j, &ignored);
}

/* A value kept as a string: into b, or NULL if it is another value. */
static const char *j_str(struct jreader *j, struct jbuf *b)
{
	j_ws(j);
	if (j->p < j->end && *j->p == '"')
		return j_string(j, b) == 0 ? b->s : NULL;
	j_skip(j, 1);
	return NULL;
}

/* A value kept as a count: present and not an integer of 0 to INT64_MAX
 * is a bad value. */
struct jcount {
	uint64_t v;
	int bad;
};

static void j_count(struct jreader *j, struct jcount *c)
{
	j_ws(j);
	c->v = 0;
	c->bad = 1;
	if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
		uint64_t v;
		if (j_number(j, &v) == 1) {
			c->v = v;
			c->bad = 0;
		}
		return;
	}
	j_skip(j, 1);
}

/* What the reader keeps of a TOC entry (absent: NULL, zero). */
struct toc_entry {
	const char *type, *name, *modtime, *digest, *chunk_digest, *chunk_type;
	int has_chunk_digest;
	struct jcount size, offset, end, chunk_offset, chunk_size;
	struct jbuf b_type, b_name, b_modtime, b_digest, b_chunk_digest, b_chunk_type;
	const char *delta_base;     /* CHUNKED_DELTA_KEY's members */
	struct jcount delta_base_size, delta_offset, delta_size;
	struct jbuf b_delta_base;
};

static void toc_entry_free(struct toc_entry *e)
{
	free(e->b_type.s);
	free(e->b_name.s);
	free(e->b_modtime.s);
	free(e->b_digest.s);
	free(e->b_chunk_digest.s);
	free(e->b_chunk_type.s);
	free(e->b_delta_base.s);
}

/* The object of CHUNKED_DELTA_KEY (anything else: no delta). */
static void delta_read(struct jreader *j, struct toc_entry *e)
{
	if (!j_eat(j, '{')) {
		j_skip(j, 1);
		return;
	}
	for (size_t n = 0; j_next_member(j, &n);) {
		if (KEY_IS(j, "base"))
			e->delta_base = j_str(j, &e->b_delta_base);
		else if (KEY_IS(j, "baseSize"))
			j_count(j, &e->delta_base_size);
		else if (KEY_IS(j, "offset"))
			j_count(j, &e->delta_offset);
		else if (KEY_IS(j, "size"))
			j_count(j, &e->delta_size);
		else
			j_skip(j, 1);
	}
}

/* One entry of "entries" (an object next). */
static void toc_entry_read(struct jreader *j, struct toc_entry *e)
{
	static const struct jcount none = { 0, 0 };

	e->type = e->name = e->modtime = e->digest = e->chunk_digest = e->chunk_type = NULL;
	e->has_chunk_digest = 0;
	e->size = e->offset = e->end = e->chunk_offset = e->chunk_size = none;
	e->delta_base = NULL;
	e->delta_base_size = e->delta_offset = e->delta_size = none;
	if (!j_eat(j, '{')) {
		j_skip(j, 1);
		return;
	}
	for (size_t n = 0; j_next_member(j, &n);) {
		if (KEY_IS(j, "type"))
			e->type = j_str(j, &e->b_type);
		else if (KEY_IS(j, "name"))
			e->name = j_str(j, &e->b_name);
		else if (KEY_IS(j, "modtime"))
			e->modtime = j_str(j, &e->b_modtime);
		else if (KEY_IS(j, "digest"))
			e->digest = j_str(j, &e->b_digest);
		else if (KEY_IS(j, "chunkDigest")) {
			e->chunk_digest = j_str(j, &e->b_chunk_digest);
			e->has_chunk_digest = 1;
		} else if (KEY_IS(j, "chunkType"))
			e->chunk_type = j_str(j, &e->b_chunk_type);
		else if (KEY_IS(j, "size"))
			j_count(j, &e->size);
		else if (KEY_IS(j, "offset"))
			j_count(j, &e->offset);
		else if (KEY_IS(j, "endOffset"))
			j_count(j, &e->end);
		else if (KEY_IS(j, "chunkOffset"))
			j_count(j, &e->chunk_offset);
		else if (KEY_IS(j, "chunkSize"))
			j_count(j, &e->chunk_size);
		else if (KEY_IS(j, CHUNKED_DELTA_KEY))
			delta_read(j, e);
		else
			j_skip(j, 1);
	}
}

/* A chunk of the entry e: of data only (a "zeros" chunk, a hole, is
 * refused: reimage's writer makes none), with its size and digest. */
static int chunk_entry(const struct toc_entry *e, struct chunked_file *f, const char *what,
		       struct reimage_error *err)
{
	unsigned char digest[32];

	if (e->chunk_type && *e->chunk_type) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"%s: '%s' has a chunk of type '%s', which reimage does not read", what,
			f->name, e->chunk_type);
		return -ENOTSUP;
	}
	if (e->chunk_offset.bad || e->chunk_size.bad || e->offset.bad ||
	    parse_digest(e->chunk_digest, digest) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"%s: a chunk of '%s' lacks its chunkDigest, chunkSize or offset", what,
			f->name);
		return -EBADMSG;
	}
	return add_chunk(f, e->chunk_offset.v, e->chunk_size.v, e->offset.v, digest) < 0
		       ? out_of_memory(err) : 0;
}

/* The entry e (the i-th) into toc: a file with content, or a chunk of
 * the file before it; other entries say nothing a reader of content needs. */
static int toc_add(struct chunked_toc *toc, size_t *cap, const struct toc_entry *e, size_t i,
		   const char *what, struct reimage_error *err)
{
	unsigned char digest[32];
	struct chunked_file *f;
	int r;

	if (!e->type || !e->name) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: entry %zu has no type or name",
			what, i);
		return -EBADMSG;
	}
	if (strcmp(e->type, "chunk") == 0) {
		/* The next piece of the file just before it. */
		struct chunked_file *last = toc->n ? &toc->files[toc->n - 1] : NULL;
		if (!last || strcmp(last->name, e->name) != 0 || !e->has_chunk_digest) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
				"%s: the chunk of '%s' follows no file of that name", what, e->name);
			return -EBADMSG;
		}
		return chunk_entry(e, last, what, err);
	}
	if (strcmp(e->type, "reg") != 0 || !e->size.v)
		return 0;
	if (e->offset.bad || e->end.bad || e->end.v <= e->offset.v ||
	    parse_digest(e->digest, digest) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"%s: file '%s' lacks a digest, offset or endOffset", what, e->name);
		return -EBADMSG;
	}
	if (toc->n == *cap) {
		size_t grow = *cap ? 2 * *cap : 256;
		struct chunked_file *files = realloc(toc->files, grow * sizeof(*files));
		if (!files)
			return out_of_memory(err);
		memset(files + *cap, 0, (grow - *cap) * sizeof(*files));
		toc->files = files;
		*cap = grow;
	}
	f = &toc->files[toc->n];
	f->size = e->size.v;
	f->offset = e->offset.v;
	f->end = e->end.v;
	memcpy(f->digest, digest, 32);
	f->mtime = parse_time(e->modtime, &f->mtime_nsec);
	if (!(f->name = strdup(e->name)))
		return out_of_memory(err);
	toc->n++;
	/* A delta frame: an extension, so one that does not read right is
	 * ignored (the file's frames serve). */
	f->has_delta = e->delta_base && !e->delta_base_size.bad && !e->delta_offset.bad &&
		       !e->delta_size.bad && e->delta_size.v && e->delta_base_size.v &&
		       e->delta_base_size.v <= CHUNKED_DELTA_MAX && f->size <= CHUNKED_DELTA_MAX &&
		       parse_digest(e->delta_base, f->delta_base) == 0;
	f->delta_base_size = e->delta_base_size.v;
	f->delta_offset = e->delta_offset.v;
	f->delta_size = e->delta_size.v;
	/* Cut in chunks (its first one described here), or one chunk. */
	if (e->has_chunk_digest)
		r = chunk_entry(e, f, what, err);
	else
		r = add_chunk(f, 0, f->size, f->offset, f->digest) < 0 ? out_of_memory(err) : 0;
	return r;
}

/* The TOC, or (max files read: the head of one) its first max files,
 * whose chunks may be cut short. */
static int toc_parse(const char *text, size_t len, const char *what, size_t max,
		     struct chunked_toc *toc, struct reimage_error *err)
{
	struct jreader j = { .p = text, .end = text + len };
	struct toc_entry e = { 0 };
	struct jbuf b_split = { 0 };
	const char *split = NULL;
	int has_split = 0, has_entries = 0, r = 0;
	size_t cap = 0, i = 0;
	struct jcount version = { 0, 1 };

	memset(toc, 0, sizeof(*toc));
	if (!j_eat(&j, '{'))
		j_fail(&j);
	for (size_t n = 0; r == 0 && j_next_member(&j, &n);) {
		if (KEY_IS(&j, "version")) {
			j_count(&j, &version);
		} else if (KEY_IS(&j, "tarSplitDigest")) {
			split = j_str(&j, &b_split);
			has_split = 1;
		} else if (KEY_IS(&j, "entries") && !has_entries) {
			has_entries = 1;
			j_ws(&j);
			if (!j_eat(&j, '[')) {
				r = bad(err, what, "expected {\"version\": 1, \"entries\": [...]}");
				break;
			}
			for (size_t k = 0; r == 0 && toc->n < max && j_next_element(&j, &k); i++) {
				toc_entry_read(&j, &e);
				if (!j.failed)
					r = toc_add(toc, &cap, &e, i, what, err);
			}
			if (r == 0 && toc->n == max)
				goto out;
		} else {
			j_skip(&j, 1);
		}
	}
	j_ws(&j);
	if (r == 0 && (j.failed || j.p != j.end))
		r = j.no_memory ? out_of_memory(err)
				: (err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
					   "%s: not JSON at byte %zu", what,
					   (size_t)((j.failed ? j.failed : j.p) - text)),
				   -EBADMSG);
	if (r == 0 && (version.bad || version.v != 1 || !has_entries))
		r = bad(err, what, "expected {\"version\": 1, \"entries\": [...]}");
	if (r == 0 && has_split) {
		if (parse_digest(split, toc->tarsplit_digest) < 0)
			r = bad(err, what, "tarSplitDigest is not \"sha256:HEX\"");
		toc->has_tarsplit_digest = 1;
	}
	for (i = 0; i < toc->n && r == 0; i++)
		r = chunks_close(&toc->files[i], what, err);
out:
	toc_entry_free(&e);
	free(j.key.s);
	free(b_split.s);
	if (r < 0)
		chunked_toc_free(toc);
	return r;
}

int chunked_toc_parse(const char *text, size_t len, const char *what, struct chunked_toc *toc,
		      struct reimage_error *err)
{
	return toc_parse(text, len, what, SIZE_MAX, toc, err);
}

int chunked_toc_head(const char *text, size_t len, size_t max, struct chunked_toc *toc,
		     struct reimage_error *err)
{
	int r = toc_parse(text, len, "TOC", max, toc, err);
	if (r == 0 && toc->n < max) {
		chunked_toc_free(toc);
		return bad(err, "TOC", "fewer files than asked for");
	}
	return r;
}

void chunked_split_free(struct chunked_split *ts)
{
	for (size_t i = 0; i < ts->n; i++) {
		free(ts->rec[i].bytes);
		free(ts->rec[i].name);
	}
	free(ts->rec);
	memset(ts, 0, sizeof(*ts));
}

/* Standard base64 (OpenSSL's block codec), padding removed from the count. */
static int b64_decode(const char *s, size_t n, unsigned char **ret, size_t *ret_len)
{
	unsigned char *out;
	int got;

	if (n % 4)
		return -1;
	if (!(out = malloc(n / 4 * 3 + 1)))
		return -1;
	got = n ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : 0;
	if (got < 0) {
		free(out);
		return -1;
	}
	for (size_t i = n; i > 0 && s[i - 1] == '='; i--)
		got--;
	*ret = out;
	*ret_len = (size_t)got;
	return 0;
}

/* A line of raw bytes as every packer writes it,
 * {"type":2,"payload":"BASE64","position":N}, read without a JSON parser:
 * a tar-split is mostly these (28 MB of a Debian root's 30), and jansson
 * spent most of a second on them.  1 if it was one, 0 to read the line as
 * JSON (another layout, an escape in it). */
static int raw_line(const char *p, size_t ll, struct chunked_record *rec)
{
	static const char head[] = "{\"type\":2,\"payload\":\"", tail[] = "\",\"position\":";
	const char *end = p + ll, *b64, *q;

	if (ll < sizeof(head) - 1 || memcmp(p, head, sizeof(head) - 1) != 0)
		return 0;
	b64 = p + sizeof(head) - 1;
	if (!(q = memchr(b64, '"', (size_t)(end - b64))) || (size_t)(end - q) < sizeof(tail) ||
	    memcmp(q, tail, sizeof(tail) - 1) != 0 || end[-1] != '}' ||
	    q + sizeof(tail) - 1 == end - 1)
		return 0;
	for (const char *d = q + sizeof(tail) - 1; d < end - 1; d++)
		if (*d < '0' || *d > '9')
			return 0;
	return b64_decode(b64, (size_t)(q - b64), &rec->bytes, &rec->len) == 0;
}

/* The digits of a JSON number from p (a non-negative integer without
 * leading zeros, at most 18 digits): its end, or NULL. */
static const char *json_uint(const char *p, const char *end, uint64_t *v)
{
	const char *d = p;

	for (*v = 0; d < end && *d >= '0' && *d <= '9' && d - p < 18; d++)
		*v = *v * 10 + (uint64_t)(*d - '0');
	return d == p || (*p == '0' && d - p > 1) || (d < end && *d >= '0' && *d <= '9') ? NULL : d;
}

/* A file's line as reimage's packer writes it,
 * {"type":1,"name":"NAME","size":N,"payload":null|"BASE64","position":N},
 * its name printable ASCII without escapes, read without a JSON parser
 * (jansson took 40 ms of a Debian root's 12,000): 1 if it was one, 0 to
 * read the line as JSON (another layout, another name). */
static int file_line(const char *p, size_t ll, struct chunked_record *rec)
{
	static const char head[] = "{\"type\":1,\"name\":\"", size_key[] = "\",\"size\":",
			  payload_key[] = ",\"payload\":", position_key[] = ",\"position\":";
	const char *end = p + ll, *name, *name_end, *q;
	uint64_t size, position;

	if (ll < sizeof(head) - 1 || memcmp(p, head, sizeof(head) - 1) != 0)
		return 0;
	name = q = p + sizeof(head) - 1;
	while (q < end && *q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\')
		q++;
	name_end = q;
	if ((size_t)(end - q) < sizeof(size_key) - 1 || memcmp(q, size_key, sizeof(size_key) - 1) ||
	    !(q = json_uint(q + sizeof(size_key) - 1, end, &size)) ||
	    (size_t)(end - q) < sizeof(payload_key) - 1 ||
	    memcmp(q, payload_key, sizeof(payload_key) - 1))
		return 0;
	q += sizeof(payload_key) - 1;
	if ((size_t)(end - q) >= 4 && !memcmp(q, "null", 4)) {
		q += 4;
	} else if (q < end && *q == '"') {
		for (q++; q < end && ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
				      (*q >= '0' && *q <= '9') || *q == '+' || *q == '/' || *q == '=');)
			q++;
		if (q++ == end || q[-1] != '"')
			return 0;
	} else {
		return 0;
	}
	if ((size_t)(end - q) < sizeof(position_key) - 1 ||
	    memcmp(q, position_key, sizeof(position_key) - 1) ||
	    !(q = json_uint(q + sizeof(position_key) - 1, end, &position)) || q + 1 != end ||
	    *q != '}' || !(rec->name = strndup(name, (size_t)(name_end - name))))
		return 0;
	rec->is_file = 1;
	rec->size = size;
	return 1;
}

int chunked_split_parse(const char *text, size_t len, struct chunked_split *ts,
			struct reimage_error *err)
{
	size_t lines = 0, cap;
	int r = 0;

	memset(ts, 0, sizeof(*ts));
	for (const char *nl = text; (nl = memchr(nl, '\n', len - (size_t)(nl - text))); nl++)
		lines++;
	cap = lines + 1;
	if (!(ts->rec = calloc(cap, sizeof(*ts->rec))))
		return out_of_memory(err);
	for (const char *p = text, *end = text + len; p < end && r == 0;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct chunked_record *rec = &ts->rec[ts->n];
		json_error_t je;
		json_t *o;

		if (ll == 0) {
			p += 1;
			continue;
		}
		if (ts->n < cap && raw_line(p, ll, rec)) {
			ts->tar_size += rec->len;
			ts->n++;
			p += ll + 1;
			continue;
		}
		if (ts->n < cap && file_line(p, ll, rec)) {
			ts->tar_size += rec->size;
			ts->n++;
			p += ll + 1;
			continue;
		}
		if (ts->n == cap || !(o = json_loadb(p, ll, 0, &je))) {
			r = bad(err, "tar-split", "a line is not JSON");
			break;
		}
		json_int_t type = json_integer_value(json_object_get(o, "type"));
		const char *payload = json_string_value(json_object_get(o, "payload"));
		const char *name = json_string_value(json_object_get(o, "name"));
		json_int_t size = json_integer_value(json_object_get(o, "size"));
		if (type == 2 && payload &&
		    b64_decode(payload, strlen(payload), &rec->bytes, &rec->len) == 0) {
			ts->tar_size += rec->len;
			ts->n++;
		} else if (type == 1 && name && size >= 0) {
			rec->is_file = 1;
			rec->size = (uint64_t)size;
			ts->tar_size += rec->size;
			if (!(rec->name = strdup(name)))
				r = out_of_memory(err);
			ts->n++;
		} else {
			r = bad(err, "tar-split", "a record is neither raw bytes nor a file");
		}
		json_decref(o);
		p += ll + 1;
	}
	if (r < 0)
		chunked_split_free(ts);
	return r;
}

/* ------------------------------------------------------------ writer */

/* CRC-64 (ISO polynomial, reflected, inverted: Go's hash/crc64 with
 * crc64.ISO), which tar-split records for each file's content. */
static uint64_t crc64_iso(uint64_t crc, const unsigned char *p, size_t n)
{
	static uint64_t table[256];
	if (!table[1])
		for (unsigned i = 0; i < 256; i++) {
			uint64_t c = i;
			for (int j = 0; j < 8; j++)
				c = c & 1 ? (c >> 1) ^ 0xD800000000000000ull : c >> 1;
			table[i] = c;
		}
	crc = ~crc;
	while (n--)
		crc = table[(uint8_t)crc ^ *p++] ^ (crc >> 8);
	return ~crc;
}

struct buf {
	char *data;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *grown = realloc(b->data, cap);
		if (!grown)
			return -ENOMEM;
		b->data = grown;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

/* A delta frame made, its TOC entry to point at it once it is written. */
struct delta {
	json_t *entry;
	const struct chunked_file *base;
	void *frame;
	size_t len;
};

struct writer {
	int fd;
	const char *path;
	ZSTD_CCtx *cz;
	uint64_t pos;              /* bytes of the image written */
	int frame_open;            /* bytes went into the current frame */
	EVP_MD_CTX *image_md, *file_md;
	int in_content;            /* the tar writer is writing an entry's content */
	uint64_t content, crc;     /* the current content's bytes and CRC-64 */
	/* The current content's chunks: the one being written starts at
	 * chunk_at of the content, its frame at chunk_frame of the image. */
	struct chunked_roll roll;
	EVP_MD_CTX *chunk_md;
	uint64_t chunk_at, chunk_frame;
	struct chunked_file cut;   /* the chunks ended so far (only n_chunks, chunks) */
	struct buf seg;            /* raw tar bytes since the last content */
	struct buf split;          /* tar-split lines */
	int position;              /* tar-split's record counter */
	json_t *entries;
	struct archive *tar;       /* the tar writer, its output our callback */
	uint64_t files, count;
	int level;
	/* --base: the image before, mapped, its files by name; the current
	 * content's file there (or NULL), the content kept while it has one;
	 * the delta frames made, written after the tar. */
	const unsigned char *base_map;
	size_t base_len;
	uint64_t base_frames_end;  /* its frames end where its TOC starts */
	struct chunked_toc base_toc;
	struct chunked_file **base_by_name;
	const struct chunked_file *base_file;
	struct buf body;
	struct delta *deltas;
	size_t n_deltas;
	ZSTD_CCtx *delta_cz;
	struct reimage_error *err;
	unsigned char zout[1 << 17];
};

static int emit(struct writer *w, const void *data, size_t len)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = write(w->fd, (const char *)data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_sys(w->err, -errno, "write %s", w->path);
			return w->err->code;
		}
		done += (size_t)n;
	}
	EVP_DigestUpdate(w->image_md, data, len);
	w->pos += len;
	return 0;
}

/* Compress data into the current frame; ZSTD_e_end closes it. */
static int zput(struct writer *w, const void *data, size_t len, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = { data, len, 0 };
	size_t left;

	if (mode == ZSTD_e_end && !w->frame_open)
		return 0;
	w->frame_open = mode != ZSTD_e_end;
	do {
		ZSTD_outBuffer out = { w->zout, sizeof(w->zout), 0 };
		left = ZSTD_compressStream2(w->cz, &out, &in, mode);
		if (ZSTD_isError(left)) {
			err_set(w->err, -EIO, REIMAGE_EC_IO, "zstd: %s", ZSTD_getErrorName(left));
			return -EIO;
		}
		if (out.pos && emit(w, w->zout, out.pos) < 0)
			return w->err->code;
	} while (mode == ZSTD_e_end ? left != 0 : in.pos < in.size);
	return 0;
}

/* The current chunk ends (if it holds anything): its frame closes, and
 * it joins the content's list. */
static int chunk_end(struct writer *w)
{
	unsigned char md[32];
	int r;

	if (w->content == w->chunk_at)
		return 0;
	if ((r = zput(w, NULL, 0, ZSTD_e_end)) < 0)
		return r;
	EVP_DigestFinal_ex(w->chunk_md, md, NULL);
	if (add_chunk(&w->cut, w->chunk_at, w->content - w->chunk_at, w->chunk_frame, md) < 0)
		return out_of_memory(w->err);
	w->chunk_at = w->content;
	w->chunk_frame = w->pos;
	EVP_DigestInit_ex(w->chunk_md, EVP_sha256(), NULL);
	return 0;
}

/* libarchive's tar writer hands us its output unblocked: between
 * archive_write_header() and the end of an entry's data it is content,
 * the rest is headers, padding and end blocks. */
static la_ssize_t tar_out(struct archive *a, void *arg, const void *data, size_t len)
{
	struct writer *w = arg;

	(void)a;
	if (w->in_content) {
		/* Each chunk its own frame, cut where the rolling sum says. */
		const unsigned char *p = data;
		if (w->base_file && buf_add(&w->body, data, len) < 0) {
			out_of_memory(w->err);
			return -1;
		}
		for (size_t left = len; left;) {
			size_t cut = chunked_roll_split(&w->roll, p, left), n = cut ? cut : left;
			EVP_DigestUpdate(w->file_md, p, n);
			EVP_DigestUpdate(w->chunk_md, p, n);
			w->crc = crc64_iso(w->crc, p, n);
			w->content += n;
			if (zput(w, p, n, ZSTD_e_continue) < 0 || (cut && chunk_end(w) < 0))
				return -1;
			p += n;
			left -= n;
		}
		return (la_ssize_t)len;
	}
	if (buf_add(&w->seg, data, len) < 0) {
		out_of_memory(w->err);
		return -1;
	}
	if (zput(w, data, len, ZSTD_e_continue) < 0)
		return -1;
	return (la_ssize_t)len;
}

static char *b64(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

static int add_line(struct writer *w, json_t *o)
{
	char *line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	int r = line && buf_add(&w->split, line, strlen(line)) == 0 &&
			buf_add(&w->split, "\n", 1) == 0 ? 0 : -ENOMEM;
	free(line);
	json_decref(o);
	return r < 0 ? out_of_memory(w->err) : 0;
}

/* The raw bytes gathered since the last content, as a tar-split segment. */
static int flush_segment(struct writer *w)
{
	char *text;
	int r;

	if (!w->seg.len)
		return 0;
	if (!(text = b64(w->seg.data, w->seg.len)))
		return out_of_memory(w->err);
	r = add_line(w, json_pack("{s:i, s:s, s:i}", "type", 2, "payload", text, "position",
				  w->position++));
	free(text);
	w->seg.len = 0;
	return r;
}

static void set_time(json_t *o, const char *key, time_t sec, long nsec)
{
	char text[64], frac[16] = "";
	struct tm tm;

	gmtime_r(&sec, &tm);
	if (nsec) {
		int n = snprintf(frac, sizeof(frac), ".%09ld", nsec);
		while (n > 1 && frac[n - 1] == '0')
			frac[--n] = '\0';
	}
	snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	json_object_set_new(o, key, json_string(text));
}

static const char *toc_type(struct archive_entry *e)
{
	if (archive_entry_hardlink(e))
		return "hardlink";
	switch (archive_entry_filetype(e)) {
	case AE_IFREG: return "reg";
	case AE_IFDIR: return "dir";
	case AE_IFLNK: return "symlink";
	case AE_IFCHR: return "char";
	case AE_IFBLK: return "block";
	case AE_IFIFO: return "fifo";
	default: return NULL;
	}
}

/* The TOC's entry: what the tar header says, and where the content is. */
static json_t *toc_entry(struct archive_entry *e, const char *type)
{
	json_t *o = json_object(), *x = NULL;
	const char *link = archive_entry_hardlink(e) ? archive_entry_hardlink(e)
						      : archive_entry_symlink(e);
	const char *xname;
	const void *xval;
	size_t xlen;

	json_object_set_new(o, "type", json_string(type));
	json_object_set_new(o, "name", json_string(archive_entry_pathname(e)));
	if (link)
		json_object_set_new(o, "linkName", json_string(link));
	json_object_set_new(o, "mode", json_integer(archive_entry_perm(e)));
	json_object_set_new(o, "uid", json_integer(archive_entry_uid(e)));
	json_object_set_new(o, "gid", json_integer(archive_entry_gid(e)));
	set_time(o, "modtime", archive_entry_mtime(e), archive_entry_mtime_nsec(e));
	if (archive_entry_atime_is_set(e))
		set_time(o, "accesstime", archive_entry_atime(e), archive_entry_atime_nsec(e));
	if (!strcmp(type, "char") || !strcmp(type, "block")) {
		json_object_set_new(o, "devMajor", json_integer(archive_entry_rdevmajor(e)));
		json_object_set_new(o, "devMinor", json_integer(archive_entry_rdevminor(e)));
	}
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &xname, &xval, &xlen) == ARCHIVE_OK) {
		char *text = b64(xval, xlen);
		if (!x)
			json_object_set_new(o, "xattrs", x = json_object());
		json_object_set_new(x, xname, json_string(text ? text : ""));
		free(text);
	}
	return o;
}

/* The entry's data into the tar writer, holes as zeros (the pax writer
 * drops what its sparse map says is a hole, as bsdtar's copy does). */
static int copy_content(struct writer *w, struct archive *in, const char *name)
{
	static const char zeros[65536];
	int64_t done = 0;
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int st = archive_read_data_block(in, &buf, &len, &off);
		if (st == ARCHIVE_EOF)
			return 0;
		if (st < ARCHIVE_OK) {
			err_set(w->err, -EIO, REIMAGE_EC_IO, "read '%s': %s", name,
				archive_error_string(in) ? archive_error_string(in) : "failed");
			return -EIO;
		}
		for (; done < off; ) {
			size_t n = off - done < (int64_t)sizeof(zeros) ? (size_t)(off - done) : sizeof(zeros);
			if (archive_write_data(w->tar, zeros, n) < 0)
				goto failed;
			done += (int64_t)n;
		}
		if (len && archive_write_data(w->tar, buf, len) < 0)
			goto failed;
		done += (int64_t)len;
	}
failed:
	if (!w->err->code)
		err_set(w->err, -EIO, REIMAGE_EC_IO, "write '%s': %s", name,
			archive_error_string(w->tar));
	return w->err->code;
}

/* ------------------------------------------------------- delta frames */

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct chunked_file *const *)a)->name,
		      (*(struct chunked_file *const *)b)->name);
}

/* The image before (--base): mapped, its TOC read, its files by name. */
static int base_load(struct writer *w, const char *path, struct reimage_error *err)
{
	struct chunked_footer foot;
	struct stat st;
	char *text = NULL;
	size_t len;
	void *map;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		err_sys(err, -errno, "%s", path);
		if (fd >= 0)
			close(fd);
		return err->code;
	}
	if (st.st_size < CHUNKED_FOOTER_SIZE) {
		close(fd);
		return bad(err, path, "too short for a chunked image");
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		err_sys(err, -errno, "map %s", path);
		return err->code;
	}
	w->base_map = map;
	w->base_len = (size_t)st.st_size;
	if ((r = chunked_footer_parse(w->base_map + w->base_len - CHUNKED_FOOTER_SIZE, w->base_len,
				      &foot, err)) < 0 ||
	    (r = chunked_unzstd(w->base_map + foot.toc_offset, foot.toc_length, CHUNKED_META_MAX,
				&text, &len, "base TOC", err)) < 0 ||
	    (r = chunked_toc_parse(text, len, "base TOC", &w->base_toc, err)) < 0) {
		free(text);
		return r;
	}
	free(text);
	w->base_frames_end = foot.toc_offset;
	if (!(w->base_by_name = calloc(w->base_toc.n + 1, sizeof(*w->base_by_name))))
		return out_of_memory(err);
	for (size_t i = 0; i < w->base_toc.n; i++)
		w->base_by_name[i] = &w->base_toc.files[i];
	qsort(w->base_by_name, w->base_toc.n, sizeof(*w->base_by_name), by_name);
	if (!(w->delta_cz = ZSTD_createCCtx()))
		return out_of_memory(err);
	return 0;
}

/* The base's file of that name, if a delta against it can be made. */
static const struct chunked_file *base_find(struct writer *w, const char *name, int64_t size)
{
	struct chunked_file key = { .name = (char *)name }, *k = &key, **hit;

	if (!w->base_by_name || size <= 0 || (uint64_t)size > CHUNKED_DELTA_MAX)
		return NULL;
	hit = bsearch(&k, w->base_by_name, w->base_toc.n, sizeof(*hit), by_name);
	return hit && (*hit)->size <= CHUNKED_DELTA_MAX && (*hit)->end <= w->base_frames_end
		       ? *hit : NULL;
}

/* The current content (w->body), changed from its base's: its delta
 * frame, kept when it is smaller than three quarters of its frames
 * (frames bytes), as zstd --patch-from makes it: the base's content as
 * the prefix, a window over both, long-distance matching. */
static int delta_make(struct writer *w, json_t *entry, int level, uint64_t frames)
{
	const struct chunked_file *b = w->base_file;
	unsigned char md[32], *old = malloc(b->size);
	size_t cap = ZSTD_compressBound(w->body.len), n;
	void *frame = NULL;
	int wlog = 10;

	if (!old || !(frame = malloc(cap))) {
		free(old);
		return out_of_memory(w->err);
	}
	n = ZSTD_decompress(old, b->size, w->base_map + b->offset, b->end - b->offset);
	if (!ZSTD_isError(n) && n == b->size)
		EVP_Digest(old, b->size, md, NULL, EVP_sha256(), NULL);
	if (ZSTD_isError(n) || n != b->size || memcmp(md, b->digest, 32) != 0) {
		free(old);
		free(frame);
		err_set(w->err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"base: the frames of '%s' do not give its content", b->name);
		return -EBADMSG;
	}
	while (wlog < 27 && ((uint64_t)1 << wlog) < b->size + w->body.len)
		wlog++;
	ZSTD_CCtx_reset(w->delta_cz, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(w->delta_cz, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(w->delta_cz, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(w->delta_cz, ZSTD_c_windowLog, wlog);
	ZSTD_CCtx_setParameter(w->delta_cz, ZSTD_c_enableLongDistanceMatching, 1);
	n = ZSTD_CCtx_refPrefix(w->delta_cz, old, b->size);
	if (!ZSTD_isError(n))
		n = ZSTD_compress2(w->delta_cz, frame, cap, w->body.data, w->body.len);
	free(old);
	if (ZSTD_isError(n)) {
		free(frame);
		err_set(w->err, -EIO, REIMAGE_EC_IO, "zstd: %s", ZSTD_getErrorName(n));
		return -EIO;
	}
	if (n >= frames / 4 * 3) {
		free(frame);
		return 0;
	}
	if (!(w->n_deltas & (w->n_deltas - 1))) {
		struct delta *grown = realloc(w->deltas, (w->n_deltas ? 2 * w->n_deltas : 1) *
							   sizeof(*grown));
		if (!grown) {
			free(frame);
			return out_of_memory(w->err);
		}
		w->deltas = grown;
	}
	w->deltas[w->n_deltas++] = (struct delta){ entry, b, frame, n };
	return 0;
}

static int skippable(struct writer *w, const void *data, size_t len, uint64_t *ret_offset);

/* The delta frames, each in a skippable frame of its own after the tar's
 * last frame (together: a client fetches them in one request), and their
 * places in their files' TOC entries. */
static int deltas_write(struct writer *w)
{
	for (size_t i = 0; i < w->n_deltas; i++) {
		const struct delta *d = &w->deltas[i];
		char hex[DIGEST_HEX_SHA256], digest[80];
		uint64_t at;
		int r;
		if ((r = skippable(w, d->frame, d->len, &at)) < 0)
			return r;
		digest_hex(hex, d->base->digest, 32);
		snprintf(digest, sizeof(digest), "sha256:%s", hex);
		json_object_set_new(d->entry, CHUNKED_DELTA_KEY,
				    json_pack("{s:s, s:I, s:I, s:I}", "base", digest, "baseSize",
					      (json_int_t)d->base->size, "offset", (json_int_t)at,
					      "size", (json_int_t)d->len));
	}
	return 0;
}

int chunked_delta_decode(const void *frame, size_t len, const void *prefix, size_t prefix_len,
			 void *out, size_t out_len)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	size_t n;

	if (!d)
		return -1;
	n = ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 27);
	if (!ZSTD_isError(n))
		n = ZSTD_DCtx_refPrefix(d, prefix, prefix_len);
	if (!ZSTD_isError(n))
		n = ZSTD_decompressDCtx(d, out, out_len, frame, len);
	ZSTD_freeDCtx(d);
	return ZSTD_isError(n) || n != out_len ? -1 : 0;
}

/* One entry of the source, its name already relative. */
static int write_entry(void *arg, struct archive_entry *e, struct archive *in,
		       struct reimage_error *err)
{
	struct writer *w = arg;
	const char *type = toc_type(e), *name = archive_entry_pathname(e);
	int content = type && !strcmp(type, "reg") && archive_entry_size(e) > 0;
	unsigned char md[32];
	char hex[DIGEST_HEX_SHA256], digest[80];
	unsigned char crc[8];
	uint64_t offset = 0, frames_end = 0;
	json_t *o;
	int r;

	(void)err;
	if (!type)
		return 0;  /* a socket: tar cannot carry it, nor can a full extraction */
	if (archive_write_header(w->tar, e) < ARCHIVE_WARN) {
		if (!w->err->code)
			err_set(w->err, -EIO, REIMAGE_EC_IO, "write '%s': %s", name,
				archive_error_string(w->tar));
		return w->err->code;
	}
	if ((r = flush_segment(w)) < 0)
		return r;
	if (content) {
		/* The headers' frame ends: the content starts a frame of its own. */
		if ((r = zput(w, NULL, 0, ZSTD_e_end)) < 0)
			return r;
		offset = w->pos;
		w->in_content = 1;
		w->content = 0;
		w->crc = 0;
		w->chunk_at = 0;
		w->chunk_frame = offset;
		w->cut.n_chunks = 0;
		w->base_file = base_find(w, name, archive_entry_size(e));
		w->body.len = 0;
		chunked_roll_init(&w->roll);
		EVP_DigestInit_ex(w->file_md, EVP_sha256(), NULL);
		EVP_DigestInit_ex(w->chunk_md, EVP_sha256(), NULL);
		r = copy_content(w, in, name);
		w->in_content = 0;
		if (r < 0 || (r = chunk_end(w)) < 0)
			return r;
		frames_end = w->pos;
	}
	if (archive_write_finish_entry(w->tar) < ARCHIVE_WARN) {
		err_set(w->err, -EIO, REIMAGE_EC_IO, "write '%s': %s", name,
			archive_error_string(w->tar));
		return -EIO;
	}
	o = toc_entry(e, type);
	if (content && w->content) {
		EVP_DigestFinal_ex(w->file_md, md, NULL);
		digest_hex(hex, md, 32);
		snprintf(digest, sizeof(digest), "sha256:%s", hex);
		json_object_set_new(o, "size", json_integer((json_int_t)w->content));
		json_object_set_new(o, "digest", json_string(digest));
		json_object_set_new(o, "offset", json_integer((json_int_t)offset));
		json_object_set_new(o, "endOffset", json_integer((json_int_t)w->pos));
		w->files++;
	}
	json_array_append_new(w->entries, o);
	/* Changed since the base: a delta frame too, perhaps. */
	if (content && w->content && w->base_file && memcmp(md, w->base_file->digest, 32) != 0 &&
	    (r = delta_make(w, o, w->level, frames_end - offset)) < 0)
		return r;
	/* Cut in more than one chunk: the entry describes the first, a
	 * "chunk" entry each of the others (containers/storage's layout). */
	for (size_t i = 0; content && w->content && w->cut.n_chunks > 1 && i < w->cut.n_chunks; i++) {
		const struct chunked_chunk *c = &w->cut.chunks[i];
		json_t *ce = o;
		digest_hex(hex, c->digest, 32);
		snprintf(digest, sizeof(digest), "sha256:%s", hex);
		if (i > 0) {
			ce = json_object();
			json_object_set_new(ce, "type", json_string("chunk"));
			json_object_set_new(ce, "name", json_string(name));
			json_object_set_new(ce, "offset", json_integer((json_int_t)c->offset));
			json_object_set_new(ce, "chunkOffset", json_integer((json_int_t)c->at));
			json_array_append_new(w->entries, ce);
		}
		json_object_set_new(ce, "chunkSize", json_integer((json_int_t)c->size));
		json_object_set_new(ce, "chunkDigest", json_string(digest));
	}
	w->count++;
	for (int i = 0; i < 8; i++)
		crc[i] = (unsigned char)(w->crc >> (56 - 8 * i));  /* big-endian, as Go's Sum */
	char *crc_text = content ? b64(crc, 8) : NULL;
	r = add_line(w, json_pack("{s:i, s:s, s:I, s:s?, s:i}", "type", 1, "name", name, "size",
				  (json_int_t)(content ? w->content : 0), "payload", crc_text,
				  "position", w->position++));
	free(crc_text);
	return r;
}

/* Names relative, without "./" or a trailing '/' (as the disk writer's
 * checks want them); a name that leaves the tree is refused. */
static int relative_name(struct archive_entry *e, struct reimage_error *err)
{
	const char *names[2] = { archive_entry_pathname(e), archive_entry_hardlink(e) };
	for (int i = 0; i < 2; i++) {
		char rel[PATH_MAX];
		const char *safe;
		size_t n;
		if (!names[i] && i == 1)
			continue;
		if (!(safe = stage_safe_path(names[i])) || (n = strlen(safe)) >= sizeof(rel)) {
			err_set(err, -EPERM, REIMAGE_EC_INTEGRITY, "refused member '%s'",
				names[i] ? names[i] : "(no name)");
			return -EPERM;
		}
		memcpy(rel, safe, n + 1);
		while (n > 0 && rel[n - 1] == '/')
			rel[--n] = '\0';
		if (i == 0)
			archive_entry_copy_pathname(e, rel);
		else
			archive_entry_copy_hardlink(e, rel);
		if (i == 0 && (!rel[0] || !strcmp(rel, ".")))
			return 1;  /* the tree itself */
	}
	return 0;
}

static int each_member(void *arg, struct archive_entry *e, struct archive *in,
		       struct reimage_error *err)
{
	int r = relative_name(e, err);
	return r != 0 ? (r > 0 ? 0 : r) : write_entry(arg, e, in, err);
}

/* An existing image: every member, as libarchive reads it. */
static int walk_image(const char *path, struct writer *w, struct reimage_error *err)
{
	struct archive *in = archive_read_new();
	struct archive_entry *e;
	int r = 0;

	if (!in)
		return out_of_memory(err);
	archive_read_support_format_all(in);
	archive_read_support_filter_all(in);
	if (archive_read_open_filename(in, path, 1 << 20) != ARCHIVE_OK) {
		err_set(err, -EIO, REIMAGE_EC_IO, "read %s: %s", path, archive_error_string(in));
		r = -EIO;
	}
	while (r == 0) {
		int st = archive_read_next_header(in, &e);
		if (st == ARCHIVE_EOF)
			break;
		if (st < ARCHIVE_WARN) {
			err_set(err, -EIO, REIMAGE_EC_IO, "read %s: %s", path, archive_error_string(in));
			r = -EIO;
			break;
		}
		r = each_member(w, e, in, err);
	}
	archive_read_free(in);
	return r;
}

/* A skippable frame holding data; its data's offset in *ret_offset. */
static int skippable(struct writer *w, const void *data, size_t len, uint64_t *ret_offset)
{
	unsigned char h[CHUNKED_SKIPPABLE_HEADER];
	put_le(h, SKIPPABLE_MAGIC, 4);
	put_le(h + 4, len, 4);
	if (emit(w, h, sizeof(h)) < 0)
		return w->err->code;
	if (ret_offset)
		*ret_offset = w->pos;
	return emit(w, data, len);
}

static int zstd_whole(const void *data, size_t len, int level, void **ret, size_t *ret_len,
		      struct reimage_error *err)
{
	size_t cap = ZSTD_compressBound(len), n;
	void *out = malloc(cap);
	if (!out)
		return out_of_memory(err);
	n = ZSTD_compress(out, cap, data, len, level);
	if (ZSTD_isError(n)) {
		free(out);
		err_set(err, -EIO, REIMAGE_EC_IO, "zstd: %s", ZSTD_getErrorName(n));
		return -EIO;
	}
	*ret = out;
	*ret_len = n;
	return 0;
}

/* The TOC and the tar-split are fetched by every machine before anything
 * else: worth zstd's strongest level whatever the files' level (seconds
 * once for the administrator, bytes for every agent). */
#define META_LEVEL 19

/* The TOC, the tar-split and the footer after the tar's last frame. */
static int write_tail(struct writer *w, struct chunked_made *made)
{
	unsigned char md[32], footer[CHUNKED_FOOTER_SIZE];
	char hex[DIGEST_HEX_SHA256], digest[80];
	void *ts = NULL, *toc = NULL;
	size_t ts_len, toc_len;
	char *toc_text = NULL;
	uint64_t toc_at = 0, ts_at = 0;
	json_t *root;
	int r;

	if ((r = zstd_whole(w->split.data ? w->split.data : "", w->split.len, META_LEVEL, &ts, &ts_len,
			    w->err)) < 0)
		return r;
	EVP_Digest(ts, ts_len, md, NULL, EVP_sha256(), NULL);
	digest_hex(hex, md, 32);
	snprintf(digest, sizeof(digest), "sha256:%s", hex);
	root = json_pack("{s:i, s:O, s:s}", "version", 1, "entries", w->entries, "tarSplitDigest",
			 digest);
	toc_text = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(root);
	if (!toc_text) {
		free(ts);
		return out_of_memory(w->err);
	}
	if ((r = zstd_whole(toc_text, strlen(toc_text), META_LEVEL, &toc, &toc_len, w->err)) == 0 &&
	    (r = skippable(w, toc, toc_len, &toc_at)) == 0 &&
	    (r = skippable(w, ts, ts_len, &ts_at)) == 0) {
		put_le(footer, toc_at, 8);
		put_le(footer + 8, toc_len, 8);
		put_le(footer + 16, strlen(toc_text), 8);
		put_le(footer + 24, MANIFEST_TYPE_CRFS, 8);
		put_le(footer + 32, ts_at, 8);
		put_le(footer + 40, ts_len, 8);
		put_le(footer + 48, w->split.len, 8);
		memcpy(footer + 56, footer_magic, sizeof(footer_magic));
		r = skippable(w, footer, sizeof(footer), NULL);
		digest_sha256(toc, toc_len, made->toc_sha256);
	}
	free(toc_text);
	free(toc);
	free(ts);
	return r;
}

static int tree_member(void *arg, struct archive_entry *e, struct archive *rd,
		       struct reimage_error *err)
{
	return write_entry(arg, e, rd, err);
}

int chunked_write(const char *src, const char *out, const char *base, int level,
		  struct chunked_made *made, struct reimage_error *err)
{
	struct writer *w = calloc(1, sizeof(*w));
	char tmp[PATH_MAX];
	unsigned char md[32];
	struct stat st;
	int r = -ENOMEM;

	memset(made, 0, sizeof(*made));
	if (!w)
		return out_of_memory(err);
	w->fd = -1;
	w->err = err;
	w->path = out;
	w->level = level;
	if (stat(src, &st) < 0) {
		err_sys(err, -errno, "%s", src);
		r = err->code;
		goto out;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", out) >= sizeof(tmp)) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_CONFIG, "%s: path too long", out);
		r = -ENAMETOOLONG;
		goto out;
	}
	if (!(w->cz = ZSTD_createCCtx()) || !(w->image_md = EVP_MD_CTX_new()) ||
	    !(w->file_md = EVP_MD_CTX_new()) || !(w->chunk_md = EVP_MD_CTX_new()) ||
	    !(w->entries = json_array()) ||
	    !(w->tar = archive_write_new())) {
		out_of_memory(err);
		goto out;
	}
	if (base && (r = base_load(w, base, err)) < 0)
		goto out;
	ZSTD_CCtx_setParameter(w->cz, ZSTD_c_compressionLevel, level);
	/* Every frame says its size and carries a checksum, as zstd's
	 * command line writes them. */
	ZSTD_CCtx_setParameter(w->cz, ZSTD_c_checksumFlag, 1);
	EVP_DigestInit_ex(w->image_md, EVP_sha256(), NULL);
	if ((w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		err_sys(err, -errno, "create %s", tmp);
		r = err->code;
		goto out;
	}
	/* pax: long names, xattrs, ACLs, file flags, sub-second times. */
	archive_write_set_format_pax(w->tar);
	archive_write_set_bytes_per_block(w->tar, 0);
	if (archive_write_open(w->tar, w, NULL, tar_out, NULL) != ARCHIVE_OK) {
		err_set(err, -EIO, REIMAGE_EC_IO, "write %s: %s", out, archive_error_string(w->tar));
		r = -EIO;
		goto out;
	}
	r = S_ISDIR(st.st_mode) ? source_tree_each(src, NULL, tree_member, w, err)
				: walk_image(src, w, err);
	if (r == 0 && archive_write_close(w->tar) != ARCHIVE_OK) {
		if (!err->code)
			err_set(err, -EIO, REIMAGE_EC_IO, "write %s: %s", out,
				archive_error_string(w->tar));
		r = err->code;
	}
	if (r == 0 && (r = flush_segment(w)) == 0 && (r = zput(w, NULL, 0, ZSTD_e_end)) == 0 &&
	    (r = deltas_write(w)) == 0)
		r = write_tail(w, made);
	/* The image is whole on disk before it takes its name. */
	if (r == 0 && fsync(w->fd) < 0) {
		err_sys(err, -errno, "write %s", tmp);
		r = err->code;
	}
	if (r == 0 && rename(tmp, out) < 0) {
		err_sys(err, -errno, "rename %s to %s", tmp, out);
		r = err->code;
	}
	if (r == 0) {
		EVP_DigestFinal_ex(w->image_md, md, NULL);
		digest_hex(made->sha256, md, 32);
		made->size = w->pos;
		made->files = w->files;
		made->entries = w->count;
		made->deltas = w->n_deltas;
	}
out:
	if (w->fd >= 0) {
		close(w->fd);
		if (r < 0)
			unlink(tmp);
	}
	if (w->tar)
		archive_write_free(w->tar);
	ZSTD_freeCCtx(w->cz);
	EVP_MD_CTX_free(w->image_md);
	EVP_MD_CTX_free(w->file_md);
	EVP_MD_CTX_free(w->chunk_md);
	free(w->cut.chunks);
	if (w->base_map)
		munmap((void *)w->base_map, w->base_len);
	chunked_toc_free(&w->base_toc);
	free(w->base_by_name);
	free(w->body.data);
	for (size_t i = 0; i < w->n_deltas; i++)
		free(w->deltas[i].frame);
	free(w->deltas);
	ZSTD_freeCCtx(w->delta_cz);
	json_decref(w->entries);
	free(w->seg.data);
	free(w->split.data);
	free(w);
	return r;
}
