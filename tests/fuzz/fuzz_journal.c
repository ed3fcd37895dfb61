/*
 * fuzz_journal.c -- `reimage recover` on arbitrary journals.
 *
 * The journal is the one file recover trusts after a crash, so it must act
 * only on whole, valid records: no rename that a valid step record does
 * not name.  Each input is a journal, built line by line:
 *
 *   byte 0        flags: 1 undo (else complete), 2 the backend exchanges
 *                 atomically, 4 its moves are deferred to the boot
 *   then lines    "V<payload>"  a valid record (length and CRC computed)
 *                 "T<payload>"  a torn one (its length too long)
 *                 "C<payload>"  one with a wrong CRC
 *                 anything else: the line's bytes as they are
 *
 * In payloads, "@0".."@5" stand for the identity ("ino.birth") of the
 * sandbox's objects -- root/a, root/b, new/a, new/c, new, and an absent
 * one -- so the fuzzer can reach plans whose steps are pending or done.
 *
 * recover runs on a fresh sandbox root with a backend that records every
 * move, exchange and mount copy instead of doing it.  Then, against an
 * independent strict reading of the journal (records up to the first that
 * is not whole and valid; step names from those only):
 *   - every path the backend was asked to touch is one a valid step names
 *     (root/NAME, new/NAME, old/NAME, its mount aside) or the parking place,
 *     new/ or old/ themselves -- and lies inside the root;
 *   - nothing outside the root changed (a sentinel directory beside it).
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "error.h"
#include "journal.h"
#include "layout.h"
#include "swap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define MAX_CALLS 512
#define MAX_NAMES 512

static const char *base;          /* scratch: base/root, base/sentinel */
static char root[PATH_MAX], sentinel[PATH_MAX];
static char *sentinel_before;
static struct layout L;

static unsigned flags;
static char *calls[MAX_CALLS];    /* every path the backend was handed */
static size_t n_calls;

static void note(const char *path)
{
	if (n_calls < MAX_CALLS)
		calls[n_calls++] = strdup(path);
}

static int rec_move(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	(void)ctx;
	(void)err;
	note(from);
	note(to);
	return flags & 4 ? 1 : 0;
}

static int rec_exchange(void *ctx, const char *a, const char *b, struct reimage_error *err)
{
	return rec_move(ctx, a, b, err) > 0;
}

static int rec_sync(void *ctx, const char *path, struct reimage_error *err)
{
	(void)ctx;
	(void)path;
	(void)err;
	return 0;
}

static int rec_mount_copy(void *ctx, const char *staged, const char *mount, const char *aside,
			  struct reimage_error *err)
{
	(void)ctx;
	(void)err;
	note(staged);
	note(mount);
	note(aside);
	return 0;
}

static int rec_mount_restore(void *ctx, const char *mount, const char *aside,
			     struct reimage_error *err)
{
	(void)ctx;
	(void)err;
	note(mount);
	note(aside);
	return 0;
}

static int rec_deferred_cancel(void *ctx, const char *dir, struct reimage_error *err)
{
	(void)ctx;
	(void)dir;
	(void)err;
	return 0;
}

static struct reimage_backend_ops ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_backend_ops),
	.name = "recording",
	.move = rec_move,
	.exchange = rec_exchange,
	.sync = rec_sync,
	.mount_copy = rec_mount_copy,
	.mount_restore = rec_mount_restore,
	.deferred_cancel = rec_deferred_cancel,
};

/* The sandbox root, afresh: recover may make parents (PMOVE) in it. */
static void make_root(void)
{
	char p[PATH_MAX];

	fz_remove(root);
	fz_mkdir(root, 0755);
	snprintf(p, sizeof(p), "%s/a", root);
	fz_mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/b", root);
	fz_write(p, "old b\n");
	fz_mkdir(L.dir, 0700);
	snprintf(p, sizeof(p), "%s/a", L.staging);
	fz_mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/c", L.staging);
	fz_write(p, "new c\n");
}

static void identity(char *out, size_t len, int k)
{
	char p[PATH_MAX];
	struct statx stx;
	const char *rel[] = { "a", "b", ".reimage/new/a", ".reimage/new/c", ".reimage/new" };

	if (k >= 5) {
		snprintf(out, len, "0.0");
		return;
	}
	snprintf(p, sizeof(p), "%s/%s", root, rel[k]);
	FZ_CHECK(statx(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &stx) == 0,
		 "statx %s", p);
	snprintf(out, len, "%llu.%llu", (unsigned long long)stx.stx_ino,
		 stx.stx_mask & STATX_BTIME
			 ? (unsigned long long)stx.stx_btime.tv_sec * 1000000000ull +
				   stx.stx_btime.tv_nsec
			 : 0ull);
}

/* The journal the input describes, as bytes. */
static char *build_journal(const uint8_t *data, size_t size, size_t *ret_len)
{
	size_t cap = size * 4 + 256, len = 0;
	char *out = malloc(cap), *payload = malloc(size * 16 + 64);

	FZ_CHECK(out && payload, "out of memory");
	for (size_t i = 1; i < size;) {
		const uint8_t *line = data + i, *nl = memchr(line, '\n', size - i);
		size_t ll = nl ? (size_t)(nl - line) : size - i;
		i += ll + 1;
		if (ll == 0 || (line[0] != 'V' && line[0] != 'T' && line[0] != 'C')) {
			if (len + ll + 1 >= cap)
				break;
			memcpy(out + len, line, ll);
			len += ll;
			out[len++] = '\n';
			continue;
		}
		size_t pl = 0;
		for (size_t k = 1; k < ll; k++) {
			if (line[k] == '@' && k + 1 < ll && line[k + 1] >= '0' && line[k + 1] <= '5') {
				char id[64];
				identity(id, sizeof(id), line[k + 1] - '0');
				memcpy(payload + pl, id, strlen(id));
				pl += strlen(id);
				k++;
			} else {
				payload[pl++] = (char)line[k];
			}
		}
		uLong crc = crc32(0L, (const Bytef *)payload, (uInt)pl);
		if (line[0] == 'C')
			crc ^= 1;
		if (len + pl + 64 >= cap)
			break;
		len += (size_t)snprintf(out + len, cap - len, "R %zu %08lx ",
					pl + (line[0] == 'T' ? 5 : 0), (unsigned long)crc);
		memcpy(out + len, payload, pl);
		len += pl;
		out[len++] = '\n';
	}
	free(payload);
	*ret_len = len;
	return out;
}

/* ---------------------------------------------- the independent reading */

static char *names[MAX_NAMES];
static size_t n_names;

static int digits(const char *p, const char *end, int base16, unsigned long long *ret,
		  const char **ret_end)
{
	unsigned long long v = 0;
	const char *s = p;

	for (; p < end; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0'
			: base16 && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
			: base16 && *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
		if (d < 0)
			break;
		if (v > (~0ull - (unsigned)d) / (base16 ? 16 : 10))
			return -1;
		v = v * (base16 ? 16 : 10) + (unsigned)d;
	}
	if (p == s)
		return -1;
	*ret = v;
	*ret_end = p;
	return 0;
}

static int unhex(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Records "R <len> <crc> <payload>\n" up to the first that is not whole
 * and valid; each valid "step" record's name (its last word, decoded) is
 * one the journal justifies -- but only after a first valid "plan". */
static void justified_names(const char *j, size_t len)
{
	const char *p = j, *end = j + len;
	int planned = 0;

	n_names = 0;
	while (p < end) {
		unsigned long long rl, crc;
		const char *q;
		if (end - p < 2 || p[0] != 'R' || p[1] != ' ' ||
		    digits(p + 2, end, 0, &rl, &q) < 0 || q >= end || *q != ' ' ||
		    digits(q + 1, end, 1, &crc, &q) < 0 || q >= end || *q != ' ')
			break;
		q++;
		if ((unsigned long long)(end - q) <= rl || q[rl] != '\n' ||
		    crc32(0L, (const Bytef *)q, (uInt)rl) != crc)
			break;
		if (!planned) {
			if (rl < 5 || memcmp(q, "plan ", 5) != 0)
				break;
			planned = 1;
		} else if (rl > 5 && memcmp(q, "step ", 5) == 0 && n_names < MAX_NAMES) {
			const char *w = q + rl;
			while (w > q && w[-1] != ' ')
				w--;
			char *name = malloc((size_t)(q + rl - w) + 1);
			size_t n = 0;
			FZ_CHECK(name, "out of memory");
			for (const char *c = w; c < q + rl; c++) {
				if (*c == '%' && c + 2 < q + rl && unhex(c[1]) >= 0 && unhex(c[2]) >= 0) {
					name[n++] = (char)(unhex(c[1]) * 16 + unhex(c[2]));
					c += 2;
				} else {
					name[n++] = *c;
				}
			}
			name[n] = '\0';
			if (strcmp(name, "-") == 0)
				name[0] = '\0';
			names[n_names++] = name;
		}
		p = q + rl + 1;
	}
}

static int same_path(const char *path, const char *dir, const char *name, const char *more)
{
	char want[PATH_MAX * 2];
	snprintf(want, sizeof(want), "%s%s%s%s%s", dir, *name ? "/" : "", name,
		 more ? "/" : "", more ? more : "");
	return strcmp(path, want) == 0;
}

static int is_justified(const char *path)
{
	if (!strcmp(path, L.parking) || !strcmp(path, L.staging) || !strcmp(path, L.retired))
		return 1;
	for (size_t i = 0; i < n_names; i++) {
		const char *n = names[i];
		if (!*n)
			continue;
		if (same_path(path, L.root, n, NULL) || same_path(path, L.staging, n, NULL) ||
		    same_path(path, L.retired, n, NULL) ||
		    same_path(path, L.root, n, SWAP_MOUNT_ASIDE))
			return 1;
	}
	return 0;
}

/* Lexically inside the root: below it, no "." or ".." component. */
static int inside_root(const char *path)
{
	size_t rl = strlen(root);
	if (strncmp(path, root, rl) != 0 || path[rl] != '/')
		return 0;
	for (const char *c = path + rl; *c;) {
		c++;
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		c += n;
	}
	return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	base = fz_scratch("journal");
	snprintf(root, sizeof(root), "%s/root", base);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", base);
	fz_mkdir(sentinel, 0755);
	char keep[PATH_MAX];
	snprintf(keep, sizeof(keep), "%s/keep", sentinel);
	fz_write(keep, "sentinel\n");
	layout_init(&L, root);
	make_root();
	sentinel_before = fz_manifest(sentinel);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct swap_ctx sc = { .root = root, .ops = &ops, .backend = NULL };
	struct reimage_error err = { 0 };
	size_t jlen;
	char *journal, *now;

	if (size == 0 || size > 65536)
		return 0;
	flags = data[0];
	ops.caps = (flags & 2 ? REIMAGE_BCAP_EXCHANGE : 0) | (flags & 4 ? REIMAGE_BCAP_DEFER : 0);
	make_root();
	journal = build_journal(data, size, &jlen);
	FILE *f = fopen(L.journal, "wb");
	FZ_CHECK(f && fwrite(journal, 1, jlen, f) == jlen && fclose(f) == 0, "write journal");
	justified_names(journal, jlen);

	swap_recover(&sc, flags & 1, &err);

	for (size_t i = 0; i < n_calls; i++) {
		FZ_CHECK(inside_root(calls[i]), "recover handed the backend '%s', outside the root",
			 calls[i]);
		FZ_CHECK(is_justified(calls[i]),
			 "recover handed the backend '%s', which no valid step record names",
			 calls[i]);
	}
	now = fz_manifest(sentinel);
	FZ_CHECK(strcmp(now, sentinel_before) == 0, "the sentinel beside the root changed:\n%s",
		 now);
	free(now);
	FZ_CHECK(fz_count_entries(base) == 2, "something appeared beside the root in %s", base);
	for (size_t i = 0; i < n_calls; i++)
		free(calls[i]);
	n_calls = 0;
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	n_names = 0;
	free(journal);
	return 0;
}
