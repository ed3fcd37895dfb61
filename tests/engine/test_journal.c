/*
 * test_journal.c -- the journal reader (journal.c) on its own: whole
 * records come back in order; a record torn at any byte, a flipped byte,
 * a wrong length or checksum, and what follows such a record are never
 * returned; names survive the percent-encoding whatever their bytes.
 */
#include "harness.h"
#include "error.h"
#include "journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const records[] = { "plan 3", "step etc", "swapped" };

/* The payloads read from path, one a line, into buf. */
static int read_all(const char *path, char *buf, size_t cap)
{
	struct journal_reader jr;
	struct reimage_error err = { 0 };
	const char *p;
	size_t k = 0;
	int n = 0;

	buf[0] = '\0';
	if (journal_open(&jr, path, &err) < 0)
		return -1;
	while ((p = journal_next(&jr)) && k < cap) {
		k += (size_t)snprintf(buf + k, cap - k, "%s\n", p);
		n++;
	}
	journal_close(&jr);
	return n;
}

static char *written(void)
{
	struct reimage_error err = { 0 };
	const char *path = t_path("journal");
	unlink(path);
	CU_ASSERT_EQUAL_FATAL(journal_append(path, records, 2, &err), 0);
	CU_ASSERT_EQUAL_FATAL(journal_append(path, records + 2, 1, &err), 0);
	return t_read(path);
}

TEST_CASE(whole_records_in_order)
{
	char buf[256];
	free(written());
	CU_ASSERT_EQUAL(read_all(t_path("journal"), buf, sizeof(buf)), 3);
	CU_ASSERT_STRING_EQUAL(buf, "plan 3\nstep etc\nswapped\n");
}

TEST_CASE(missing_journal)
{
	struct journal_reader jr;
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(journal_open(&jr, t_path("no-journal"), &err), -ENOENT);
}

/* The last record cut at every byte: the two before it stay, the torn
 * one is never returned, not even in part. */
TEST_CASE(torn_last_record_at_every_byte)
{
	char *full = written(), buf[256];
	size_t len = strlen(full), last = len - 1;

	while (last > 0 && full[last - 1] != '\n')
		last--;
	for (size_t cut = last; cut < len; cut++) {
		t_write_n(t_path("journal"), full, cut);
		CU_ASSERT_EQUAL(read_all(t_path("journal"), buf, sizeof(buf)), 2);
		CU_ASSERT_STRING_EQUAL(buf, "plan 3\nstep etc\n");
	}
	free(full);
}

/* A byte flipped anywhere in a record: that record and everything after
 * it are dropped (a reader never skips over a bad record). */
TEST_CASE(flipped_byte_anywhere)
{
	char *full = written(), buf[256];
	size_t len = strlen(full), first_end = strchr(full, '\n') - full;

	for (size_t i = 0; i < len; i++) {
		char *copy = strdup(full);
		copy[i] ^= 0x01;
		t_write_n(t_path("journal"), copy, len);
		int n = read_all(t_path("journal"), buf, sizeof(buf));
		/* A flip in the first record leaves nothing valid; a flip that
		 * turns a '\n' into another byte merges two records: also bad. */
		CU_ASSERT(n >= 0 && n < 3);
		if (i < first_end)
			CU_ASSERT_EQUAL(n, 0);
		free(copy);
	}
	free(full);
}

TEST_CASE(wrong_length_or_checksum)
{
	char buf[256];
	t_write(t_path("journal"), "R 6 00000000 plan 3\n");
	CU_ASSERT_EQUAL(read_all(t_path("journal"), buf, sizeof(buf)), 0);
	t_write(t_path("journal"), "R 99 4b6ca1a2 plan 3\n");
	CU_ASSERT_EQUAL(read_all(t_path("journal"), buf, sizeof(buf)), 0);
	t_write(t_path("journal"), "garbage\n");
	CU_ASSERT_EQUAL(read_all(t_path("journal"), buf, sizeof(buf)), 0);
	t_write(t_path("journal"), "");
	CU_ASSERT_EQUAL(read_all(t_path("journal"), buf, sizeof(buf)), 0);
}

TEST_CASE(names_encode_every_byte)
{
	char name[256], enc[1024], dec[256];
	for (int i = 1; i < 256; i++)
		name[i - 1] = (char)i;
	name[255] = '\0';
	journal_encode(enc, sizeof(enc), name);
	for (const char *p = enc; *p; p++)
		CU_ASSERT(*p > ' ' && *p < 0x7f);
	CU_ASSERT_EQUAL(journal_decode(dec, sizeof(dec), enc), 0);
	CU_ASSERT_STRING_EQUAL(dec, name);
	CU_ASSERT(journal_decode(dec, sizeof(dec), "bad%zz") < 0);
	CU_ASSERT(journal_decode(dec, sizeof(dec), "bad%4") < 0);
}
