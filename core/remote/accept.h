/*
 * accept.h -- whether this agent may run a job whose signature is
 * verified: it must name this agent (or a group of it) among its
 * targets, carry a serial above the last one run here (and not absurdly
 * far above), and not be past its not_after.  Every refusal says why.
 *
 * Serials.  A fresh agent (no serial yet) takes a first serial up to
 * first_serial_max: one job with a huge serial cannot lock it out.  A
 * job with serial_reset above the last reset run here is a signed
 * recovery: it is taken whatever the last serial (an agent fast-forwarded
 * by a stolen key or a typo), its serial bounded as a first one, and the
 * agent remembers both (agentstate.h).  The reset counter only grows, by
 * at most max_serial_jump at a time, so a replayed reset is an ordinary
 * job again and is refused as one.
 */
#ifndef REIMAGE_ACCEPT_H
#define REIMAGE_ACCEPT_H

#include "config.h"

struct accept_ctx {
	const char *agent_id;
	const char *const *groups;
	long long last_serial;     /* the last serial run here */
	int have_last;             /* 0: no job ran here yet */
	long long last_reset;      /* the last serial_reset run here, 0: none */
	long long max_serial_jump;
	long long first_serial_max;
	int64_t now;               /* the clock, not below the floor of trusted time */
};

/* 0 if the job may run here, else -EPERM with the reason in err
 * (class STATE for serial, ACCESS for target, INTEGRITY for expiry or a
 * document that lacks what a signed job must name). */
int accept_job(const struct job *job, const struct accept_ctx *c, struct reimage_error *err);
/* 1 if the job carries a serial reset this agent has not run. */
int accept_is_reset(const struct job *job, const struct accept_ctx *c);

#endif
