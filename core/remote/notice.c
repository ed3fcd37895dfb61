/*
 * notice.c -- see notice.h.  The WINDOW phase (gate.c) calls notice_run()
 * once the window is open and the wave may go; it returns when QUIESCE
 * may log the users out.
 *
 *   inhibitor running?  -> report "postponed", wait `repeat`, again
 *   countdown: notice (backend) -> report -> answer "defer"?
 *        granted (left, fits before the deadline and the window's end)
 *             -> report "deferred", wait defer_seconds, start over
 *        else -> wait `repeat`, next notice ... 0 s left -> QUIESCE
 */
#define _GNU_SOURCE
#include "notice.h"
#include "error.h"
#include "registry.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ANSWER_WAIT_MS 1000  /* after each notice; later answers wait in the terminal */

int notice_check(const struct reimage_backend_ops *b, const struct job *job,
		 struct reimage_error *err)
{
	if (job->notice.inhibitors && job->notice.inhibitors[0] &&
	    !OPS_HAS(b, struct reimage_backend_ops, inhibited)) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED, "notice.inhibitors: backend %s cannot "
			"tell whether a process runs", b->name);
		return -ENOTSUP;
	}
	return 0;
}

static void say(const struct notice_env *env, const char *fmt, ...) REIMAGE_PRINTF(2, 3);
static void say(const struct notice_env *env, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	env->report(env->arg, msg);
}

/* The latest time a postponement may reach: the earlier of the limits. */
static int64_t limit_of(int64_t a, int64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

static void duration_text(char *buf, size_t len, int64_t s)
{
	if (s >= 120)
		snprintf(buf, len, "%lld min", (long long)(s + 59) / 60);
	else
		snprintf(buf, len, "%lld s", (long long)s);
}

/* Whether an inhibitor runs: 1 (named in what), 0, or < 0. */
static int inhibitor(const struct notice_env *env, const struct job_notice *n, char *what,
		     size_t cap, struct reimage_error *err)
{
	if (!n->inhibitors || !n->inhibitors[0])
		return 0;
	return env->backend->inhibited(env->backend_ctx, n->inhibitors, what, cap, err);
}

int notice_run(const struct notice_env *env, const struct notice_policy *p,
	       struct reimage_error *err)
{
	const struct job_notice *n = p->n;
	const struct reimage_backend_ops *b = env->backend;
	int64_t defer_limit = limit_of(p->defer_deadline, p->window_end);
	int deferrals = 0, r;

	for (;;) {
		char what[256] = "", text[2048], left_text[32], defer_text[32];
		int64_t now = env->now(env->arg), end;

		if ((r = inhibitor(env, n, what, sizeof(what), err)) < 0)
			return r;
		if (r == 1) {
			if (p->window_end && now + n->repeat > p->window_end) {
				err_set(err, -ETIME, REIMAGE_EC_STATE, "postponed while %s ran, until "
					"the window closed", what);
				return -ETIME;
			}
			say(env, "postponed: %s is running", what);
			if ((r = env->wait(env->arg, n->repeat, err)) < 0)
				return r;
			continue;
		}
		if (n->seconds == 0)
			return 0;
		if (!OPS_HAS(b, struct reimage_backend_ops, notify_users)) {
			say(env, "backend %s cannot warn users: going ahead without a notice", b->name);
			return 0;
		}
		end = now + n->seconds;
		for (int first = 1;; first = 0) {
			struct reimage_notice_result res = { 0 };
			int64_t left = end - now > 0 ? end - now : 0;
			/* A deferral is offered only if it, and the countdown after
			 * it, fit before the deadline and the window's end. */
			int can_defer = deferrals < n->max_deferrals &&
					(!defer_limit || now + n->defer_seconds + n->seconds <= defer_limit);
			int defers_left = can_defer ? n->max_deferrals - deferrals : 0;

			duration_text(left_text, sizeof(left_text), left);
			duration_text(defer_text, sizeof(defer_text), n->defer_seconds);
			if (defers_left > 0)
				snprintf(text, sizeof(text), "%s\nIt begins in %s: save your work.\n"
					 "Type \"defer\" and Enter here to postpone it by %s (%d time(s) "
					 "left).", n->message, left_text, defer_text, defers_left);
			else
				snprintf(text, sizeof(text), "%s\nIt begins in %s: save your work.",
					 n->message, left > 0 ? left_text : "a moment");
			const struct reimage_notice notice = { sizeof(notice), env->job, text, left,
							       defers_left, ANSWER_WAIT_MS };
			if ((r = b->notify_users(env->backend_ctx, &notice, &res, err)) < 0)
				return r;
			if (first && res.sessions == 0) {
				say(env, "no user is logged in: no notice needed");
				return 0;
			}
			say(env, "notice to %d session(s) (%s): restart in %s, %d deferral(s) left",
			    res.sessions, res.channels, left_text, defers_left);
			if (res.defer && defers_left > 0) {
				deferrals++;
				say(env, "deferred by %s (%d of %d) for %s", res.who, deferrals,
				    n->max_deferrals, defer_text);
				if ((r = env->wait(env->arg, n->defer_seconds, err)) < 0)
					return r;
				break;  /* start over: inhibitors, a full countdown */
			}
			if (left == 0)
				return 0;
			if ((r = env->wait(env->arg, left < n->repeat ? left : n->repeat, err)) < 0)
				return r;
			now = env->now(env->arg);
		}
	}
}
