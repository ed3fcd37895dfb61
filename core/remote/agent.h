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
};

/* Returns 0 when stopped (by *stop, after `once`, or after asking the
 * backend to reboot), < 0 if the agent cannot work at all. */
int agent_run(struct agent_conf *ac, const struct agent_opts *opts,
	      const volatile sig_atomic_t *stop, struct reimage_error *err);

#endif
