/*
 * agent.h -- `reimage agent`: the daemon that polls the job store, runs
 * the jobs signed for this machine at their time, and reports every
 * phase.  See agent.c for the loop.
 */
#ifndef REIMAGE_AGENT_H
#define REIMAGE_AGENT_H

#include "config.h"

#include <signal.h>

struct agent_opts {
	int once;  /* one poll round, run what is due now, then return */
	/* Set by SIGHUP (may be NULL): between jobs agent_run() returns
	 * AGENT_RELOAD, clearing it; a running job finishes first. */
	volatile sig_atomic_t *reload;
};

#define AGENT_RELOAD 1

/* Returns 0 when stopped (by *stop, after `once`, or after asking the
 * backend to reboot), AGENT_RELOAD when asked to read its agent file
 * again (the caller reads it and calls again), < 0 if the agent cannot
 * work at all. */
int agent_run(struct agent_conf *ac, const struct agent_opts *opts,
	      const volatile sig_atomic_t *stop, struct reimage_error *err);

#endif
