/*
 * test_when.c -- the job-time expressions (when.c): timestamps, daily
 * "HH:MM" times with their window, named zones, percentages, and what is
 * refused.  Every time is given, never read from the clock.
 */
#include "harness.h"
#include "when.h"

#include <errno.h>
#include <string.h>

/* 2026-12-04T10:00:00Z */
#define T0 1796378400LL

TEST_CASE(timestamps)
{
	int64_t t = 0;
	char buf[64];

	CU_ASSERT_EQUAL(when_parse("2026-12-04T10:00:00Z", &t), 0);
	CU_ASSERT_EQUAL(t, T0);
	CU_ASSERT_EQUAL(when_parse("2026-12-04T11:30:00+01:30", &t), 0);
	CU_ASSERT_EQUAL(t, T0);
	when_format(T0 + 69, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "2026-12-04T10:01:09Z");
	CU_ASSERT_EQUAL(when_parse(buf, &t), 0);
	CU_ASSERT_EQUAL(t, T0 + 69);
	/* Refused: not a time, out-of-range fields, trailing text. */
	CU_ASSERT_EQUAL(when_parse("", &t), -EINVAL);
	CU_ASSERT_EQUAL(when_parse("tomorrow", &t), -EINVAL);
	CU_ASSERT_EQUAL(when_parse("2026-13-04T10:00:00Z", &t), -EINVAL);
	CU_ASSERT_EQUAL(when_parse("2026-12-04T25:00:00Z", &t), -EINVAL);
	CU_ASSERT_EQUAL(when_parse("2026-12-04T10:00:00Z junk", &t), -EINVAL);
}

TEST_CASE(daily_times_and_their_window)
{
	int64_t start = 0;

	CU_ASSERT(when_is_daily("03:00"));
	CU_ASSERT(when_is_daily("23:59"));
	CU_ASSERT(!when_is_daily("24:00"));
	CU_ASSERT(!when_is_daily("3:00:00"));
	CU_ASSERT(!when_is_daily("2026-12-04T03:00:00Z"));
	/* 03:00 UTC seen at 10:00: tomorrow's. */
	CU_ASSERT_EQUAL(when_start_in("03:00", 0, T0, "UTC", &start), 0);
	CU_ASSERT_EQUAL(start, T0 - 7 * 3600 + 86400);
	/* Seen at 10:00 with a 9-hour window opened at 03:00: now. */
	CU_ASSERT_EQUAL(when_start_in("03:00", 9 * 3600, T0, "UTC", &start), 0);
	CU_ASSERT_EQUAL(start, T0);
	/* A window that closed: the next day's. */
	CU_ASSERT_EQUAL(when_start_in("03:00", 3600, T0, "UTC", &start), 0);
	CU_ASSERT_EQUAL(start, T0 - 7 * 3600 + 86400);
	/* A named zone moves the daily time: 03:00 in Berlin is 02:00 UTC in
	 * December. */
	CU_ASSERT_EQUAL(when_start_in("03:00", 0, T0, "Europe/Berlin", &start), 0);
	CU_ASSERT_EQUAL(start, T0 - 8 * 3600 + 86400);
	/* A timestamp is itself, whatever the zone. */
	CU_ASSERT_EQUAL(when_start_in("2026-12-05T00:00:00Z", 0, T0, "Europe/Berlin", &start), 0);
	CU_ASSERT_EQUAL(start, T0 + 14 * 3600);
	CU_ASSERT_EQUAL(when_start("not a time", 0, T0, &start), -EINVAL);
	CU_ASSERT_EQUAL(when_start_in("03:00", 0, T0, "Nowhere/Atlantis", &start), -ENOENT);
}

TEST_CASE(zone_names_and_percentages)
{
	int pct = 0;

	CU_ASSERT(when_zone_ok("UTC"));
	CU_ASSERT(when_zone_ok("America/Argentina/Buenos_Aires"));
	CU_ASSERT(when_zone_ok("Etc/GMT+5"));
	CU_ASSERT(!when_zone_ok(""));
	CU_ASSERT(!when_zone_ok("../../etc/passwd"));
	CU_ASSERT(!when_zone_ok("/etc/localtime"));
	CU_ASSERT(when_percent("10%", &pct));
	CU_ASSERT_EQUAL(pct, 10);
	CU_ASSERT(when_percent("100%", &pct));
	CU_ASSERT_EQUAL(pct, 100);
	CU_ASSERT(!when_percent("0%", &pct));
	CU_ASSERT(!when_percent("101%", &pct));
	CU_ASSERT(!when_percent("10", &pct));
	CU_ASSERT(!when_percent("1x%", &pct));
}
