/*
 * log.c -- one line per message on stderr, "<program>: <level>: text".
 *
 * Under systemd (stderr is the journal's stream: JOURNAL_STREAM names its
 * device and inode) each line starts with its syslog priority, "<3>" for
 * an error, as sd-daemon(3) describes: the journal keeps the priority and
 * adds its own timestamp.  Anywhere else (a terminal, a file, another
 * service manager) each line starts with the local time, so that a log
 * read later still says when.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum reimage_loglevel log_level = REIMAGE_LOG_NOTICE;

void log_set_level(enum reimage_loglevel level)
{
	log_level = level;
}

enum reimage_loglevel log_get_level(void)
{
	return log_level;
}

int log_to_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* The variable alone is not enough: it is inherited by children
	 * whose stderr was redirected elsewhere. */
	return env && sscanf(env, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

void log_msg(enum reimage_loglevel level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "notice", "info", "debug" };
	/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG */
	static const int priorities[] = { 3, 4, 5, 6, 7 };
	static int journal = -1;  /* decided once: stderr does not change */
	char line[4096];
	size_t n;
	va_list ap;

	if (level > log_level)
		return;
	if (journal < 0)
		journal = log_to_journal();
	if (journal) {
		n = (size_t)snprintf(line, sizeof(line), "<%d>", priorities[level]);
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ld ", ts.tv_nsec / 1000000);
	}
	n += (size_t)snprintf(line + n, sizeof(line) - n, "%s: %s: ",
			      program_invocation_short_name, names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One write per line: lines of two threads never interleave. */
	fprintf(stderr, "%s\n", line);
}
