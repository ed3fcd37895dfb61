/*
 * log.c -- one line per message on stderr, "<program>: <level>: text".
 * The agent runs under a service manager that timestamps stderr, so no
 * time is printed here.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>

#include <stdarg.h>
#include <stdio.h>

static enum reimage_loglevel log_level = REIMAGE_LOG_NOTICE;

void log_set_level(enum reimage_loglevel level)
{
	log_level = level;
}

enum reimage_loglevel log_get_level(void)
{
	return log_level;
}

void log_msg(enum reimage_loglevel level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "notice", "info", "debug" };
	va_list ap;

	if (level > log_level)
		return;
	fprintf(stderr, "%s: %s: ", program_invocation_short_name, names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
