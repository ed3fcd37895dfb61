/*
 * test_powerlog.c -- the dm-log-writes replay tool (tests/e2e/replay_log.c)
 * that the VM's power-loss test trusts to rebuild the disk at each flush:
 * on a log written here in the kernel's format, it lists the flush, FUA
 * and mark points, and replaying to each of them, at once or stretch by
 * stretch, gives the image byte for byte; a log that is not one is refused.
 */
#include "harness.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 512
#define IMAGE_SECTORS 8
#define F_FLUSH 1
#define F_FUA 2
#define F_DISCARD 4
#define F_MARK 8

struct synth {
	unsigned char buf[64 * SECTOR];
	size_t len;
	uint64_t entries;
};

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* One entry: its header block (a mark's name in it), then its data. */
static void add(struct synth *s, uint64_t sector, uint64_t nr, uint64_t flags,
		int fill, const char *mark)
{
	unsigned char *h = s->buf + s->len;
	uint64_t data = (flags & F_DISCARD) ? 0 : nr;

	CU_ASSERT_FATAL(s->len + (1 + data) * SECTOR <= sizeof(s->buf));
	memset(h, 0, SECTOR);
	put64(h, sector);
	put64(h + 8, nr);
	put64(h + 16, flags);
	put64(h + 24, mark ? strlen(mark) : 0);
	if (mark)
		memcpy(h + 32, mark, strlen(mark));
	memset(h + SECTOR, fill, data * SECTOR);
	s->len += (1 + data) * SECTOR;
	s->entries++;
}

static void finish(struct synth *s, const char *path)
{
	memset(s->buf, 0, SECTOR);
	put64(s->buf, 0x6a736677736872ULL);
	put64(s->buf + 8, 1);
	put64(s->buf + 16, s->entries);
	s->buf[24] = SECTOR & 0xff;
	s->buf[25] = SECTOR >> 8;
	t_write_n(path, s->buf, s->len);
}

/* The log the test replays, and the image as it must be after each count
 * of entries (0x55 where nothing was written yet). */
static void build(const char *path)
{
	static struct synth s;

	s.len = SECTOR;
	s.entries = 0;
	add(&s, 0, 2, 0, 'a', NULL);          /* 1: sectors 0-1 'a' */
	add(&s, 4, 1, 0, 'b', NULL);          /* 2: sector 4 'b' */
	add(&s, 0, 0, F_FLUSH, 0, NULL);      /* 3: flush */
	add(&s, 0, 0, F_MARK, 0, "ready");    /* 4: mark */
	add(&s, 1, 1, F_FUA, 'c', NULL);      /* 5: sector 1 'c', FUA */
	add(&s, 4, 1, F_DISCARD, 0, NULL);    /* 6: sector 4 discarded */
	add(&s, 6, 2, F_FLUSH, 'd', NULL);    /* 7: flush with sectors 6-7 'd' */
	finish(&s, path);
}

static void expect(unsigned char *img, int count)
{
	memset(img, 0x55, IMAGE_SECTORS * SECTOR);
	if (count >= 1)
		memset(img, 'a', 2 * SECTOR);
	if (count >= 2)
		memset(img + 4 * SECTOR, 'b', SECTOR);
	if (count >= 5)
		memset(img + SECTOR, 'c', SECTOR);
	if (count >= 6)
		memset(img + 4 * SECTOR, 0, SECTOR);
	if (count >= 7)
		memset(img + 6 * SECTOR, 'd', 2 * SECTOR);
}

static void fresh_image(const char *path)
{
	unsigned char img[IMAGE_SECTORS * SECTOR];
	memset(img, 0x55, sizeof(img));
	t_write_n(path, img, sizeof(img));
}

/* The image equals the expected one at count, byte by byte (cmp). */
static void check(const char *path, int count)
{
	unsigned char want[IMAGE_SECTORS * SECTOR];
	int r;

	expect(want, count);
	t_write_n(t_path("want"), want, sizeof(want));
	r = t_sh("cmp '%s' '%s'", t_path("want"), path);
	if (r != 0)
		fprintf(stderr, "image differs after %d entries\n", count);
	CU_ASSERT_EQUAL(r, 0);
}

TEST_CASE(replay_synthetic)
{
	const char *tool = REPLAY_LOG;
	char *out = NULL;
	int points[] = { 3, 4, 5, 7 };

	build(t_path("log"));
	CU_ASSERT_EQUAL_FATAL(t_sh_out(&out, "%s list '%s'", tool, t_path("log")), 0);
	CU_ASSERT_STRING_EQUAL(out, "entries 7 sectorsize 512\n"
			       "3 flush\n4 mark ready\n5 fua\n7 flush\n");
	free(out);

	/* Every count at once from the initial image... */
	for (int n = 0; n <= 7; n++) {
		fresh_image(t_path("img"));
		CU_ASSERT_EQUAL(t_sh("%s replay '%s' '%s' 0 %d", tool, t_path("log"),
				     t_path("img"), n), 0);
		check(t_path("img"), n);
	}
	/* ...and stretch by stretch between the points, as a sweep does. */
	fresh_image(t_path("img"));
	for (size_t i = 0, from = 0; i < sizeof(points) / sizeof(points[0]); i++) {
		CU_ASSERT_EQUAL(t_sh("%s replay '%s' '%s' %zu %d", tool, t_path("log"),
				     t_path("img"), from, points[i]), 0);
		check(t_path("img"), points[i]);
		from = (size_t)points[i];
	}

	/* More entries than the log holds, a log cut short, a wrong magic. */
	CU_ASSERT_NOT_EQUAL(t_sh("%s replay '%s' '%s' 0 8 2>/dev/null", tool,
				 t_path("log"), t_path("img")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c 3000 '%s' > '%s'", t_path("log"),
				   t_path("short")), 0);
	CU_ASSERT_NOT_EQUAL(t_sh("%s replay '%s' '%s' 0 7 2>/dev/null", tool,
				 t_path("short"), t_path("img")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("printf 'X' | dd of='%s' bs=1 seek=0 conv=notrunc "
				   "2>/dev/null", t_path("log")), 0);
	CU_ASSERT_NOT_EQUAL(t_sh("%s list '%s' 2>/dev/null", tool, t_path("log")), 0);
}
