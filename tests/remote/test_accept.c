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

static int check_reset(const char *extra, long long last, int have, long long last_reset,
		       struct reimage_error *err)
{
	struct job job;
	struct accept_ctx c = { .agent_id = "pc-1", .groups = lab, .last_serial = last,
				.have_last = have, .last_reset = last_reset, .max_serial_jump = 100,
				.first_serial_max = 1000, .now = 1893456000 - 3600 };
	load(&job, extra);
	int r = accept_job(&job, &c, err);
	job_free(&job);
	return r;
}

static int check(const char *extra, long long last, int have, struct reimage_error *err)
{
	return check_reset(extra, last, have, 0, err);
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
	CU_ASSERT_EQUAL(check(t, 0, 0, &err), 0);  /* first job: up to first_serial_max */
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

/* A fresh agent takes a first serial up to first_serial_max only: one job
 * with a huge serial would lock it out for good. */
TEST_CASE(first_serial_bounded)
{
	static const char t[] = "targets: { agents = [\"pc-1\"]; };\n" OK_TIME;
	struct reimage_error err = { 0 };
	struct job job;
	char text[512];
	snprintf(text, sizeof(text), "id = \"j1\";\nserial = 9223372036854775806L;\n"
		 "image: { url = \"/i.tar\"; };\n%s", t);
	CU_ASSERT_EQUAL_FATAL(job_load_text(&job, "job", text, strlen(text), &err), 0);
	struct accept_ctx c = { .agent_id = "pc-1", .max_serial_jump = 100,
				.first_serial_max = 1000, .now = 1893456000 - 3600 };
	CU_ASSERT_EQUAL(accept_job(&job, &c, &err), -EPERM);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_STATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "first_serial_max (1000)"));
	job_free(&job);
	/* 10 <= 1000: taken. */
	CU_ASSERT_EQUAL(check(t, 0, 0, &err), 0);
}

/* Every serial the parser cannot hold exactly is refused where it is
 * written: libconfig 1.5 wraps a plain integer to 32 bits (4294967301 is
 * 5) and clamps a 64-bit one (L); 010 is 10 or 8 depending on its
 * version; floats, strings and negatives are not serials. */
TEST_CASE(serial_literals_held_exactly)
{
	static const char *const bad[] = {
		"serial = 4294967301;", "serial = 3000000000;", "serial = 99999999999999999999L;",
		"serial = 9223372036854775808L;", "serial = 0x100000005;", "serial = 0x8000000000000005L;",
		"serial = 0xffffffffffffffffL;", "serial = 010;", "serial = -1;",
		"serial = 1.5;", "serial = 1e3;", "serial = \"7\";", NULL
	};
	for (size_t i = 0; bad[i]; i++) {
		struct reimage_error err = { 0 };
		struct job job;
		char text[512];
		snprintf(text, sizeof(text), "id = \"j\";\n%s\nimage: { url = \"/i\"; };\n", bad[i]);
		CU_ASSERT(job_load_text(&job, "job.conf", text, strlen(text), &err) < 0);
		if (!strstr(err.msg, "job.conf:2"))
			fprintf(stderr, "%s: %s\n", bad[i], err.msg[0] ? err.msg : "accepted");
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "job.conf:2"));
	}
	/* What libconfig holds exactly is read as written. */
	static const struct { const char *text; long long v; } good[] = {
		{ "serial = 2147483647;", 2147483647LL }, { "serial = 3000000000L;", 3000000000LL },
		{ "serial = 9223372036854775807L;", 9223372036854775807LL },
		{ "serial = 0x7fffffff;", 0x7fffffffLL }, { "serial = 0x100000005L;", 0x100000005LL },
		{ "serial = 0;", 0 }, { NULL, 0 }
	};
	for (size_t i = 0; good[i].text; i++) {
		struct reimage_error err = { 0 };
		struct job job;
		char text[512];
		/* Digits inside strings, names and comments are not numbers. */
		snprintf(text, sizeof(text), "id = \"j-99999999999\"; # 99999999999\n%s\n"
			 "image: { url = \"/i/4294967301\"; };\n/* 0xfffffffff */ // 1e999\n",
			 good[i].text);
		CU_ASSERT_EQUAL_FATAL(job_load_text(&job, "job.conf", text, strlen(text), &err), 0);
		CU_ASSERT_EQUAL(job.serial, good[i].v);
		job_free(&job);
	}
}

/* A job carrying serial_reset above the agent's last reset is taken
 * whatever the agent's last serial (an agent fast-forwarded by a stolen
 * key or a typo is recovered without touching it); the reset counter is
 * bounded like serials, and a reset already applied is an ordinary job. */
TEST_CASE(serial_reset)
{
	static const char t[] = "targets: { agents = [\"pc-1\"]; };\n" OK_TIME;
	char reset[512];
	struct reimage_error err = { 0 };
	snprintf(reset, sizeof(reset), "%sserial_reset = 3;\n", t);
	/* The agent ran serial 9e18: serial 10 is refused... */
	CU_ASSERT_EQUAL(check_reset(t, 9000000000000000000LL, 1, 0, &err), -EPERM);
	/* ...unless it carries a reset above the agent's last (0, 2). */
	CU_ASSERT_EQUAL(check_reset(reset, 9000000000000000000LL, 1, 0, &err), 0);
	CU_ASSERT_EQUAL(check_reset(reset, 9000000000000000000LL, 1, 2, &err), 0);
	/* Applied already (3): an ordinary job again, so a replay is refused. */
	struct reimage_error e2 = { 0 };
	CU_ASSERT_EQUAL(check_reset(reset, 10, 1, 3, &e2), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(e2.msg, "not above the last serial"));
	CU_ASSERT_EQUAL(check_reset(reset, 9, 1, 3, &e2), 0);
	/* The reset counter may not jump more than max_serial_jump (100). */
	snprintf(reset, sizeof(reset), "%sserial_reset = 101;\n", t);
	struct reimage_error e3 = { 0 };
	CU_ASSERT_EQUAL(check_reset(reset, 50, 1, 1, &e3), 0);
	CU_ASSERT_EQUAL(check_reset(reset, 50, 1, 0, &e3), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(e3.msg, "serial_reset 101"));
	/* A reset's serial is a first serial again: bounded by first_serial_max. */
	snprintf(reset, sizeof(reset), "id = \"j1\";\nserial = 5000;\nimage: { url = \"/i\"; };\n"
		 "%sserial_reset = 1;\n", t);
	struct job job;
	CU_ASSERT_EQUAL_FATAL(job_load_text(&job, "job", reset, strlen(reset), &err), 0);
	struct accept_ctx c = { .agent_id = "pc-1", .last_serial = 99999, .have_last = 1,
				.max_serial_jump = 100, .first_serial_max = 1000,
				.now = 1893456000 - 3600 };
	struct reimage_error e4 = { 0 };
	CU_ASSERT_EQUAL(accept_job(&job, &c, &e4), -EPERM);
	CU_ASSERT_PTR_NOT_NULL(strstr(e4.msg, "first_serial_max"));
	job_free(&job);
}

/* The same check for files and the files they @include, and for the
 * agent file: a wrapped integer is refused with its own file and line. */
TEST_CASE(integer_literals_in_files)
{
	struct reimage_error err = { 0 };
	struct agent_conf ac;
	struct job job;
	t_write(t_path("extra.conf"), "# included\nkeep_old_days = 1;\nwindow = 4294967396;\n");
	t_write(t_path("job.conf"), "id = \"j\";\nimage: { url = \"/i\"; };\n"
				    "@include \"extra.conf\"\n");
	CU_ASSERT_EQUAL(job_load(&job, t_path("job.conf"), &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "extra.conf:3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "4294967396"));
	t_write(t_path("agent.conf"), "agent_id = \"pc-1\";\n\nmax_serial_jump = 4294967297;\n");
	struct reimage_error e2 = { 0 };
	CU_ASSERT_EQUAL(agent_conf_load(&ac, t_path("agent.conf"), &e2), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(e2.msg, "agent.conf:3"));
	/* Written with L, it is read as written. */
	t_write(t_path("agent.conf"), "agent_id = \"pc-1\";\nmax_serial_jump = 4294967297L;\n");
	struct reimage_error e3 = { 0 };
	CU_ASSERT_EQUAL_FATAL(agent_conf_load(&ac, t_path("agent.conf"), &e3), 0);
	CU_ASSERT_EQUAL(ac.max_serial_jump, 4294967297LL);
	CU_ASSERT_EQUAL(ac.first_serial_max, 1000000);
	agent_conf_free(&ac);
}
