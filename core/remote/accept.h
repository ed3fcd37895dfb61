/*
 * accept.h -- whether this agent may run a job whose signature is
 * verified: it must name this agent (or a group of it) among its
 * targets, carry a serial above the last one run here (and not absurdly
 * far above), and not be past its not_after.  Every refusal says why.
 */
#ifndef REIMAGE_ACCEPT_H
#define REIMAGE_ACCEPT_H

#include "config.h"

struct accept_ctx {
	const char *agent_id;
	const char *const *groups;
	long long last_serial;     /* the last serial run here */
	int have_last;             /* 0: no job ran here yet */
	long long max_serial_jump;
	int64_t now;
};

/* 0 if the job may run here, else -EPERM with the reason in err
 * (class STATE for serial, ACCESS for target, INTEGRITY for expiry or a
 * document that lacks what a signed job must name). */
int accept_job(const struct job *job, const struct accept_ctx *c, struct reimage_error *err);

#endif
