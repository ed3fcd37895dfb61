/*
 * when.h -- the times a job names: `not_after` and `at` as timestamps
 * ("2026-11-26T03:00:00Z", "...+01:00", or local "2026-11-26 03:00"), or
 * `at` as a daily local time ("03:00").
 */
#ifndef REIMAGE_WHEN_H
#define REIMAGE_WHEN_H

#include <stddef.h>
#include <stdint.h>

/* A timestamp to Unix time.  -EINVAL if s is not one. */
int when_parse(const char *s, int64_t *ret_time);
/* 1 if s is a daily time "HH:MM", 0 if not. */
int when_is_daily(const char *s);
/* When a job with `at` should start, seen at time now.  window > 0: a
 * daily time whose start passed less than window seconds ago starts now;
 * otherwise the next occurrence.  -EINVAL if at is neither form. */
int when_start(const char *at, int64_t window, int64_t now, int64_t *ret_start);
/* when_start() with local times in zone (NULL: the machine's).  -ENOENT
 * if this machine does not know the zone. */
int when_start_in(const char *at, int64_t window, int64_t now, const char *zone,
		  int64_t *ret_start);
/* 1 if s looks like a zone name ("UTC", "Europe/Berlin"): letters,
 * digits, '/', '_', '-', '+', no "..". */
int when_zone_ok(const char *s);
/* 1 if s is "N%" with N in 1..100 (stored in *ret_percent if not NULL). */
int when_percent(const char *s, int *ret_percent);
/* ISO 8601 in UTC ("2026-11-25T14:03:09Z"). */
void when_format(int64_t t, char *buf, size_t len);

#endif
