/*
 * progress.h -- progress of a long phase: a bar on a terminal, a line
 * every few seconds otherwise (logs, the service manager's journal), and
 * an optional callback for reports to the administrator.
 */
#ifndef REIMAGE_PROGRESS_H
#define REIMAGE_PROGRESS_H

#include <stdint.h>

typedef void (*progress_report_fn)(void *arg, const char *what, uint64_t done, uint64_t total);

struct progress {
	const char *what;
	uint64_t total;         /* REIMAGE_SIZE_UNKNOWN if unknown */
	uint64_t done;
	int tty;
	int64_t started_ms, last_ms, last_report_ms;
	progress_report_fn report;
	void *report_arg;
};

void progress_begin(struct progress *p, const char *what, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
void progress_end(struct progress *p);
int64_t progress_now_ms(void);

#endif
