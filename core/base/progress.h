/*
 * progress.h -- progress of a long phase: a bar on a terminal, a line
 * every few seconds otherwise (logs, the service manager's journal).
 */
#ifndef REIMAGE_PROGRESS_H
#define REIMAGE_PROGRESS_H

#include <signal.h>
#include <stdint.h>

struct progress {
	const char *what;
	uint64_t total;         /* REIMAGE_SIZE_UNKNOWN if unknown */
	uint64_t done;
	int tty;
	int active;             /* begun, not yet ended */
	int64_t started_ms, last_ms, last_tick_ms;
	/* Set by the owner, kept by progress_begin(): */
	/* What the writer has made of it so far (staging: entries written and
	 * the expanded bytes of their files), or NULL. */
	const uint64_t *entries, *expanded;
	/* Every second (a stop the owner learns of, its own reports), may be NULL. */
	void (*tick)(void *arg, const struct progress *p);
	void *tick_arg;
	const volatile sig_atomic_t *stop;  /* set: the work should stop */
};

void progress_begin(struct progress *p, const char *what, uint64_t total);
/* -ECANCELED if *stop is set (the caller stops), else 0. */
int progress_update(struct progress *p, uint64_t done);
struct reimage_error;
/* progress_update() for staging (p may be NULL): on a stop, err says
 * "staging stopped on request". */
int progress_step(struct progress *p, uint64_t done, struct reimage_error *err);
/* The last draw (a bar's final line) and tick; nothing if not active.
 * Called where the work ends, and again at every phase change so that
 * no bar or report is left at a step that is over. */
void progress_end(struct progress *p);
/* Bytes a second since the beginning, and the seconds left at that rate
 * (-1 if the total or the rate is unknown). */
void progress_rate(const struct progress *p, double *ret_rate, int64_t *ret_eta_s);
int64_t progress_now_ms(void);
/* bytes as "1.5 GiB" (binary units). */
void progress_human(char *buf, size_t len, uint64_t bytes);

#endif
