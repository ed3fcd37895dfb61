/*
 * gate.h -- when an accepted job may start and when its swap may happen:
 * the window (`at`, `window`, `timezone`, `jitter`), the wave (rollout.h),
 * the administrator's stop (the job's document withdrawn from the store),
 * the notice to users (notice.h), and the agent's clock (the system's, or
 * the job store's HTTP Date with clock = "store").
 *
 * The agent starts a job at gate_plan()'s time once gate_may_start()
 * says its wave is open; with stage_early it starts at once and the
 * engine's WINDOW phase (gate_run()) holds the staged job until the
 * window opens and the wave may go.  A staged job waits inside the
 * engine, holding the root's lock: nothing else applies it, and a reboot
 * meanwhile leaves state "running" before any swap, so the next start
 * removes the staging (root_recover) and reports the job failed, never
 * swapping it in.
 */
#ifndef REIMAGE_GATE_H
#define REIMAGE_GATE_H

#include "config.h"
#include "registry.h"
#include "rollout.h"

#include <signal.h>
#include <stdint.h>

struct gate {
	/* Set by the agent. */
	struct registry *reg;
	const struct agent_conf *ac;
	const struct job *job;
	const char *doc_url;          /* the job's document */
	char *buf;                    /* SIGN_DOC_MAX bytes for fetching it */
	size_t cap;
	const volatile sig_atomic_t *signalled;  /* SIGTERM */
	void (*report)(void *arg, const char *phase, const char *state, const char *message);
	void *arg;
	/* Kept by the gate. */
	volatile sig_atomic_t halt;   /* the engine's stop flag: a signal or a stop */
	int64_t clock_offset;         /* store's clock - system clock, seconds */
	int64_t start, end;           /* the swap's window; end 0: none */
	char doc_etag[REIMAGE_ETAG_MAX];
	char wave_etag[REIMAGE_ETAG_MAX];
	struct wave_state wave;
	const char *outcome;          /* "cancelled" or "skipped" when the gate ended the job */
	char said[512];               /* the last waiting message reported */
	int64_t checked_ms;           /* when the document was last checked */
};

/* Now, by the agent's clock. */
int64_t gate_now(const struct gate *g);
/* A server's Date seen (0: none): with clock = "store", the clock follows it. */
void gate_clock(struct gate *g, int64_t date);
/* For a newly accepted job (g->job set; etag: its document's validator):
 * its window and when the agent starts it (*ret_start: now with
 * stage_early, else the window's start).  -ENOENT with the reason if
 * this machine does not know the job's timezone. */
int gate_plan(struct gate *g, const char *etag, int64_t now, int64_t *ret_start,
	      struct reimage_error *err);
/* 1 if the window has passed. */
int gate_expired(const struct gate *g, int64_t now);
/* Before the start: 1 the job may start, 0 its wave is not open yet
 * (reported once), < 0 never (the rollout halted or was stopped:
 * g->outcome and err say so). */
int gate_may_start(struct gate *g, struct reimage_error *err);
/* The engine's WINDOW phase (struct engine_watch.window): waits for the
 * window and the wave, then warns the users (notice.h) through backend.
 * Returns 0 when QUIESCE may begin, < 0 with g->outcome set when the job
 * ends here. */
int gate_run(struct gate *g, struct plugin *backend, struct reimage_error *err);
/* While staging: every poll interval, whether the document was withdrawn
 * (sets g->halt, so staging stops). */
void gate_poll(struct gate *g);

#endif
