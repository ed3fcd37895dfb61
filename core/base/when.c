/*
 * when.c -- see when.h.  Local times go through mktime() with tm_isdst
 * = -1, so a daily "03:00" follows the machine's zone and its DST rules.
 */
#define _GNU_SOURCE
#include "when.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int two_digits(const char *s, int *ret)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -EINVAL;
	*ret = (s[0] - '0') * 10 + (s[1] - '0');
	return 0;
}

/* "HH:MM" or "HH:MM:SS" at s; returns the characters read, or -EINVAL. */
static int clock_time(const char *s, struct tm *tm)
{
	int n = 5;
	if (two_digits(s, &tm->tm_hour) < 0 || s[2] != ':' || two_digits(s + 3, &tm->tm_min) < 0)
		return -EINVAL;
	tm->tm_sec = 0;
	if (s[5] == ':') {
		if (two_digits(s + 6, &tm->tm_sec) < 0)
			return -EINVAL;
		n = 8;
	}
	if (tm->tm_hour > 23 || tm->tm_min > 59 || tm->tm_sec > 60)
		return -EINVAL;
	return n;
}

int when_is_daily(const char *s)
{
	struct tm tm;
	int n = clock_time(s, &tm);
	return n > 0 && s[n] == '\0';
}

int when_parse(const char *s, int64_t *ret_time)
{
	struct tm tm = { 0 };
	int year, n, offset = 0, local = 0;
	char sep;

	if (sscanf(s, "%4d-%2d-%2d%c", &year, &tm.tm_mon, &tm.tm_mday, &sep) != 4 ||
	    strlen(s) < 16 || s[4] != '-' || s[7] != '-' || (sep != 'T' && sep != ' '))
		return -EINVAL;
	if ((n = clock_time(s + 11, &tm)) < 0)
		return -EINVAL;
	s += 11 + n;
	if (strcmp(s, "Z") == 0) {
		offset = 0;
	} else if ((s[0] == '+' || s[0] == '-') && strlen(s) == 6 && s[3] == ':') {
		int h, m;
		if (two_digits(s + 1, &h) < 0 || two_digits(s + 4, &m) < 0 || h > 23 || m > 59)
			return -EINVAL;
		offset = (s[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
	} else if (*s == '\0') {
		local = 1;
	} else {
		return -EINVAL;
	}
	if (year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -EINVAL;
	tm.tm_year = year - 1900;
	tm.tm_mon -= 1;
	tm.tm_isdst = -1;
	time_t t = local ? mktime(&tm) : timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret_time = (int64_t)t - offset;
	return 0;
}

int when_start(const char *at, int64_t window, int64_t now, int64_t *ret_start)
{
	struct tm tm, hm;
	time_t today, t = (time_t)now;

	if (!when_is_daily(at))
		return when_parse(at, ret_start);
	clock_time(at, &hm);
	localtime_r(&t, &tm);
	tm.tm_hour = hm.tm_hour;
	tm.tm_min = hm.tm_min;
	tm.tm_sec = hm.tm_sec;
	tm.tm_isdst = -1;
	today = mktime(&tm);
	if (now < (int64_t)today || (window > 0 && now < (int64_t)today + window)) {
		*ret_start = now < (int64_t)today ? (int64_t)today : now;
		return 0;
	}
	tm.tm_mday += 1;  /* mktime normalises the month and the DST change */
	tm.tm_isdst = -1;
	*ret_start = (int64_t)mktime(&tm);
	return 0;
}

/* Local times in another zone: TZ is swapped for the call and restored.
 * The process's environment is global, so this is for one thread (the
 * agent has one). */
int when_start_in(const char *at, int64_t window, int64_t now, const char *zone,
		  int64_t *ret_start)
{
	char path[512], *saved = NULL;
	int r;

	if (!zone)
		return when_start(at, window, now, ret_start);
	/* glibc silently falls back to UTC for an unknown zone: check first. */
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
	if (!when_zone_ok(zone) || access(path, R_OK) < 0)
		return -ENOENT;
	if (getenv("TZ") && !(saved = strdup(getenv("TZ"))))
		return -ENOMEM;
	setenv("TZ", zone, 1);
	tzset();
	r = when_start(at, window, now, ret_start);
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	return r;
}

int when_zone_ok(const char *s)
{
	if (!s[0] || s[0] == '/' || strstr(s, "..") || strlen(s) > 64)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '/' || *p == '_' || *p == '-' || *p == '+'))
			return 0;
	return 1;
}

int when_percent(const char *s, int *ret_percent)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || s[0] < '0' || s[0] > '9' || strcmp(end, "%") || v < 1 || v > 100)
		return 0;
	if (ret_percent)
		*ret_percent = (int)v;
	return 1;
}

void when_format(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
