/*
 * notice.h -- warning logged-in users before QUIESCE, and their
 * deferrals: the decisions (how long, how often, whether a deferral or
 * an inhibitor may still postpone within the window); delivery is the
 * backend's (notify_users, inhibited in plugin.h).
 */
#ifndef REIMAGE_NOTICE_H
#define REIMAGE_NOTICE_H

#include "config.h"

#include <stdint.h>

/* What the caller provides: its clock, a wait that can be cut short
 * (a stop, a withdrawn job: < 0 with err set), and its reports. */
struct notice_env {
	const struct reimage_backend_ops *backend;
	void *backend_ctx;
	const char *job;
	int64_t (*now)(void *arg);
	int (*wait)(void *arg, int64_t seconds, struct reimage_error *err);
	void (*report)(void *arg, const char *message);
	void *arg;
};

/* The notice policy of a job inside a window that ends at window_end (0:
 * no end); defer_deadline (0: the window's end) bounds deferrals. */
struct notice_policy {
	const struct job_notice *n;
	int64_t window_end;
	int64_t defer_deadline;
};

/* PREFLIGHT: a job naming inhibitors needs a backend that can see them. */
int notice_check(const struct reimage_backend_ops *backend, const struct job *job,
		 struct reimage_error *err);
/* Inhibitors first (each postpones by n->repeat while it runs), then the
 * countdown of n->seconds with a notice every n->repeat seconds; a
 * deferral granted waits defer_seconds and starts over.  Every notice,
 * postponement and deferral is reported.  Returns 0 when QUIESCE may
 * start (at once if no user session is logged in), -ETIME if the window
 * would close first (nothing may postpone past it: the job is then
 * skipped), or the wait's error. */
int notice_run(const struct notice_env *env, const struct notice_policy *p,
	       struct reimage_error *err);

#endif
