/*
 * test_accept.c -- which verified jobs an agent runs, and the times a job
 * names (not_after, `at` daily or as a timestamp, its window).
 */
#include "harness.h"
#include "accept.h"
#include "when.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void load(struct job *job, const char *extra)
{
	struct reimage_error err = { 0 };
	char text[2048];
	snprintf(text, sizeof(text), "id = \"j1\";\nserial = 10;\nimage: { url = \"/i.tar\"; };\n%s",
		 extra);
	CU_ASSERT_EQUAL_FATAL(job_load_text(job, "job", text, strlen(text), &err), 0);
}

static const char *const lab[] = { "lab", "floor-2", NULL };

static int check(const char *extra, long long last, int have, struct reimage_error *err)
{
	struct job job;
	struct accept_ctx c = { "pc-1", lab, last, have, 100, 1893456000 - 3600 };
	load(&job, extra);
	int r = accept_job(&job, &c, err);
	job_free(&job);
	return r;
}

#define OK_TIME "not_after = \"2030-01-01T00:00:00Z\";\n"

TEST_CASE(targets)
{
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(check("targets: { agents = [\"pc-2\", \"pc-1\"]; };\n" OK_TIME, 0, 0, &err), 0);
	CU_ASSERT_EQUAL(check("targets: { groups = [\"floor-2\"]; };\n" OK_TIME, 0, 0, &err), 0);
	CU_ASSERT_EQUAL(check("targets: { agents = [\"pc-9\"]; groups = [\"floor-3\"]; };\n" OK_TIME,
			      0, 0, &err), -EPERM);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_ACCESS);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not for this agent (pc-1)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "pc-9"));
}

TEST_CASE(required_fields)
{
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(check(OK_TIME, 0, 0, &err), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "names no targets"));
	struct reimage_error e2 = { 0 };
	CU_ASSERT_EQUAL(check("targets: { agents = [\"pc-1\"]; };\n", 0, 0, &e2), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(e2.msg, "not_after"));
}

TEST_CASE(expired)
{
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(check("targets: { agents = [\"pc-1\"]; };\n"
			      "not_after = \"2029-12-31T22:00:00Z\";\n", 0, 0, &err), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "expired at 2029-12-31T22:00:00Z"));
}

TEST_CASE(serials)
{
	const char *t = "targets: { agents = [\"pc-1\"]; };\n" OK_TIME;
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(check(t, 9, 1, &err), 0);
	CU_ASSERT_EQUAL(check(t, 0, 0, &err), 0);  /* first job: any serial */
	CU_ASSERT_EQUAL(check(t, 10, 1, &err), -EPERM);  /* replay */
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not above the last serial run here (10)"));
	struct reimage_error e2 = { 0 };
	CU_ASSERT_EQUAL(check(t, 11, 1, &e2), -EPERM);  /* older */
	struct reimage_error e3 = { 0 };
	/* max_serial_jump is 100 here: 10 is 101 above -91. */
	CU_ASSERT_EQUAL(check(t, -91, 1, &e3), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(e3.msg, "max_serial_jump"));
}

TEST_CASE(bad_times_in_job_file)
{
	struct reimage_error err = { 0 };
	struct job job;
	static const char *const bad[] = {
		"not_after = \"tomorrow\";\n", "not_after = \"2030-13-01T00:00:00Z\";\n",
		"at = \"25:00\";\n", "at = \"3am\";\n", "window = -1;\n", NULL
	};
	for (size_t i = 0; bad[i]; i++) {
		char text[512];
		snprintf(text, sizeof(text), "id = \"j\";\nimage: { url = \"/i\"; };\n%s", bad[i]);
		memset(&err, 0, sizeof(err));
		CU_ASSERT(job_load_text(&job, "job.conf", text, strlen(text), &err) < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "job.conf:3"));
	}
}

TEST_CASE(timestamps)
{
	int64_t t;
	CU_ASSERT_EQUAL(when_parse("2030-01-01T00:00:00Z", &t), 0);
	CU_ASSERT_EQUAL(t, 1893456000);
	CU_ASSERT_EQUAL(when_parse("2030-01-01T01:30:00+01:30", &t), 0);
	CU_ASSERT_EQUAL(t, 1893456000);
	CU_ASSERT_EQUAL(when_parse("2029-12-31T19:00:00-05:00", &t), 0);
	CU_ASSERT_EQUAL(t, 1893456000);
	CU_ASSERT_EQUAL(when_parse("2030-01-01 00:00", &t), 0);  /* local */
	CU_ASSERT_EQUAL(when_parse("2030-01-01", &t), -EINVAL);
	CU_ASSERT_EQUAL(when_parse("2030-01-01T00:00:00", &t), 0);
	CU_ASSERT_EQUAL(when_parse("2030-01-01T00:00:00Zjunk", &t), -EINVAL);
	char buf[64];
	when_format(1893456000, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "2030-01-01T00:00:00Z");
}

TEST_CASE(daily_start)
{
	struct tm tm = { .tm_year = 126, .tm_mon = 10, .tm_mday = 25, .tm_hour = 2, .tm_isdst = -1 };
	int64_t at_two = (int64_t)mktime(&tm), start;
	CU_ASSERT(when_is_daily("03:00") && !when_is_daily("3:00") && !when_is_daily("03:00Z"));
	/* 02:00: today 03:00. */
	CU_ASSERT_EQUAL(when_start("03:00", 0, at_two, &start), 0);
	CU_ASSERT_EQUAL(start, at_two + 3600);
	/* 03:30 with a two-hour window: now; without one: tomorrow 03:00. */
	CU_ASSERT_EQUAL(when_start("03:00", 7200, at_two + 5400, &start), 0);
	CU_ASSERT_EQUAL(start, at_two + 5400);
	CU_ASSERT_EQUAL(when_start("03:00", 0, at_two + 5400, &start), 0);
	tm.tm_mday = 26;
	tm.tm_hour = 3;
	tm.tm_isdst = -1;
	CU_ASSERT_EQUAL(start, (int64_t)mktime(&tm));
	/* A timestamp is itself. */
	CU_ASSERT_EQUAL(when_start("2030-01-01T00:00:00Z", 0, at_two, &start), 0);
	CU_ASSERT_EQUAL(start, 1893456000);
}
