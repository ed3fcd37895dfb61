/*
 * phase.h -- the phase machine of one job on one root (see phase.c for
 * the diagram and what each phase guarantees on disk).
 */
#ifndef REIMAGE_PHASE_H
#define REIMAGE_PHASE_H

#include "config.h"
#include "layout.h"
#include "preserve.h"
#include "progress.h"
#include "registry.h"
#include "state.h"
#include "swap.h"

#include <signal.h>
#include <stdio.h>

/* Who follows a job as it runs (the agent, for its reports). */
struct engine_watch {
	/* After each phase's state is written, and at the end. */
	void (*phase)(void *arg, const struct job_state *st);
	/* While staging, at each progress drawing. */
	void (*progress)(void *arg, const struct progress *p);
	void *arg;
	/* Set (by a signal handler): stop before the next phase, or while
	 * staging; never once the swap has begun. */
	const volatile sig_atomic_t *stop;
	/* WINDOW, before QUIESCE: wait for the swap's window and wave, warn
	 * the users (gate.h).  0: go on; < 0 ends the job before its swap.
	 * NULL: no wait (`reimage run`). */
	int (*window)(void *arg, struct plugin *backend, struct reimage_error *err);
};

struct engine {
	struct job *job;
	struct agent_conf *ac;
	struct registry reg;
	const char *search_path[16];
	char root[4096];          /* real path */
	struct layout L;
	struct plugin *backend, *transport;
	const char *const *keep;  /* top-level entries that never move */
	struct preserve_set preserve;
	struct job_state st;
	struct progress progress;
	char *agent_paths[8];
	const struct engine_watch *watch;  /* may be NULL; set after engine_open() */
	int lock_fd;              /* the root, locked: one job at a time */
	int guarded;              /* the trial boots run through reimage-guard */
	char guard[4096];         /* its binary, when guarded */
	/* The swap's plan, journaled in QUIESCE before the users are logged
	 * out; planned: journaled and not yet handed to swap_run(), so a
	 * failure before the swap removes the journal (no rename was made). */
	struct swap_plan plan;
	int planned;
};

/* The root a job works on, from one place: root (--root) if not NULL,
 * else the job's `root` if the job file sets it, else the agent file's
 * `root`, else "/".  A job naming a different root than the agent file
 * (or --root) is a CONFIG error naming both: NULL is returned. */
const char *engine_root(const struct job *job, const struct agent_conf *ac, const char *root,
			struct reimage_error *err);
/* The backend: backend (--backend) if not NULL, else the job's unless
 * "auto", else the agent file's. */
const char *engine_backend(const struct job *job, const struct agent_conf *ac,
			   const char *backend);
/* Load the configuration's plugins and check the job against this root
 * (PREFLIGHT, touching nothing).  root/backend: engine_root() and
 * engine_backend() choose from them, the job and the agent file.  Locks the root (flock on its directory): one job or root
 * command at a time, whoever runs it. */
int engine_open(struct engine *e, struct job *job, struct agent_conf *ac, const char *root,
		const char *backend, struct reimage_error *err);
void engine_close(struct engine *e);
/* What the job will do that its author may not mean (a preserve item
 * matching nothing), one a line in buf; returns how many. */
size_t engine_warnings(const struct engine *e, char *buf, size_t cap);
/* Print what the job would do; touches nothing. */
int engine_plan(struct engine *e, FILE *out, struct reimage_error *err);
/* Run every phase; returns after REBOOT (sandbox) or on failure. */
int engine_run(struct engine *e, struct reimage_error *err);

/* Commands on a root without a job file. */
struct root_ctx {
	struct registry reg;
	const char *search_path[16];
	char root[4096];
	struct plugin *backend;
	struct job_state st;
	int have_state;
	int lock_fd;
};
int root_open(struct root_ctx *rc, const char *root, const char *backend,
	      const struct agent_conf *ac, struct reimage_error *err);
/* The root's state only, for `status`: no lock (a running job holds it)
 * and no backend; only root_status() and root_close() may follow. */
int root_open_readonly(struct root_ctx *rc, const char *root, struct reimage_error *err);
void root_close(struct root_ctx *rc);
/* Finish (undo = 0) or undo an interrupted swap; remove the staging of a
 * job that failed or crashed before its swap. */
int root_recover(struct root_ctx *rc, int undo, struct reimage_error *err);
/* Swap back to the retired image while .reimage/old exists; reason is
 * recorded in the state ("health: unit x is not active"). */
/* After a boot: if reimage-guard fell back to the old image (its record
 * in .reimage/fallback), finish what it could not do (an undo it was cut
 * in, mounted entries), end the trial and record the job "rolled-back"
 * with the guard's reason.  Returns 1 if it had fallen back, else 0. */
int root_guard_fell_back(struct root_ctx *rc, struct reimage_error *err);
int root_rollback(struct root_ctx *rc, const char *reason, struct reimage_error *err);
/* After the reboot into the new image: record success, delete the
 * retired image (or keep it keep_old_days). */
int root_confirm(struct root_ctx *rc, struct reimage_error *err);
/* Print the job state of the root. */
/* json: one JSON document (docs/json.md) instead of the text. */
int root_status(struct root_ctx *rc, FILE *out, int json, struct reimage_error *err);

#endif
