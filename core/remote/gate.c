/*
 * gate.c -- see gate.h.  The agent's side of windows, waves and stops;
 * the decisions about users are notice.c's.
 */
#define _GNU_SOURCE
#include "gate.h"
#include "error.h"
#include "log.h"
#include "notice.h"
#include "progress.h"
#include "state.h"
#include "store.h"
#include "when.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t gate_now(const struct gate *g)
{
	return (int64_t)time(NULL) + g->clock_offset;
}

void gate_clock(struct gate *g, int64_t date)
{
	if (!g->ac->store_clock || date <= 0)
		return;
	int64_t offset = date - (int64_t)time(NULL);
	/* Date has a resolution of one second: ignore the jitter of it. */
	if (offset - g->clock_offset > 1 || g->clock_offset - offset > 1) {
		if (offset > 60 || offset < -60)
			log_notice("clock: following the job store's, %lld s %s this machine's",
				   (long long)(offset < 0 ? -offset : offset),
				   offset < 0 ? "behind" : "ahead of");
		g->clock_offset = offset;
	}
}

/* The same few seconds for an agent and a job whenever it is computed
 * (a restart keeps its place), spread over 0..jitter across agents. */
static int64_t jitter_of(const char *agent, const char *job, long long jitter)
{
	uint64_t h = 1469598103934665603ull;  /* FNV-1a */
	for (const char *p = agent; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ '/') * 1099511628211ull;
	for (const char *p = job; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return jitter > 0 ? (int64_t)(h % (uint64_t)(jitter + 1)) : 0;
}

int gate_plan(struct gate *g, const char *etag, int64_t now, int64_t *ret_start,
	      struct reimage_error *err)
{
	const struct job *job = g->job;
	int64_t opens = now;
	int r;

	g->outcome = NULL;
	g->said[0] = '\0';
	g->halt = 0;
	g->wave_etag[0] = '\0';
	memset(&g->wave, 0, sizeof(g->wave));
	snprintf(g->doc_etag, sizeof(g->doc_etag), "%s", etag);
	if (job->at) {
		/* A daily time whose window is open began up to `window` ago. */
		int64_t from = when_is_daily(job->at) && job->window > 0 ? now - job->window : now;
		if ((r = when_start_in(job->at, 0, from, job->timezone, &opens)) < 0) {
			err_set(err, r, REIMAGE_EC_CONFIG, r == -ENOENT ? "timezone '%s' is not known "
				"on this machine (no /usr/share/zoneinfo/%s)" : "bad `at` (%s)",
				job->timezone ? job->timezone : job->at,
				job->timezone ? job->timezone : "");
			return r;
		}
	}
	g->end = job->at && job->window > 0 ? opens + job->window : 0;
	g->start = opens + jitter_of(g->ac->agent_id, job->id, job->jitter);
	*ret_start = job->stage_early || g->start < now ? now : g->start;
	return 0;
}

int gate_expired(const struct gate *g, int64_t now)
{
	return g->end > 0 && now > g->end;
}

/* Report a waiting message once, not at every check. */
static void say_once(struct gate *g, const char *phase, const char *msg)
{
	if (!strcmp(g->said, msg))
		return;
	snprintf(g->said, sizeof(g->said), "%s", msg);
	g->report(g->arg, phase, !strcmp(phase, phase_name(PHASE_SCHEDULED)) ? "scheduled" : "running", msg);
}

static int end_job(struct gate *g, const char *outcome, int code, struct reimage_error *err,
		   const char *fmt, const char *arg)
{
	g->outcome = outcome;
	g->halt = 1;
	err_set(err, code, REIMAGE_EC_STATE, fmt, arg);
	return code;
}

/* 1 if the wave may go, 0 not yet, < 0 never. */
static int wave_go(struct gate *g, const char *phase, struct reimage_error *err)
{
	const struct job *job = g->job;
	struct reimage_error e = { 0 };
	char msg[256];
	int r;

	if (job->wave < 0)
		return 1;
	if (!g->ac->store)
		return end_job(g, "cancelled", -EINVAL, err, "the job has waves but this agent has "
			       "no `store` to follow them in%s", "");
	r = rollout_wave_get(g->reg, g->ac, g->ac->store, job->id, job->wave, g->wave_etag,
			     &g->wave, &e);
	if (r < 0 && e.cls == REIMAGE_EC_NOTFOUND)
		return end_job(g, "cancelled", -ENOENT, err, "the job store holds no state for "
			       "this agent's wave (%s)", job->id);
	if (r < 0 && (e.cls == REIMAGE_EC_INTEGRITY || e.cls == REIMAGE_EC_ACCESS)) {
		/* Written by someone without the administrator's key: never
		 * followed, and said, so that `status` shows why it waits. */
		snprintf(msg, sizeof(msg), "waiting for wave %d: its state in the store does not "
			 "verify and is ignored: %s", job->wave + 1, e.msg);
		say_once(g, phase, msg);
		return 0;
	}
	if (r < 0) {
		log_warn("wave of job %s: %s (trying again)", job->id, e.msg);
		g->wave_etag[0] = '\0';
		return 0;
	}
	if (g->wave.serial != job->serial) {
		/* Signed for an earlier run of this job id (--reuse): its
		 * decisions are not this run's. */
		snprintf(msg, sizeof(msg), "waiting for wave %d: its state in the store is for "
			 "serial %lld, not %lld, and is ignored", job->wave + 1, g->wave.serial,
			 job->serial);
		say_once(g, phase, msg);
		return 0;
	}
	if (!strcmp(g->wave.state, "open") || !strcmp(g->wave.state, "committed"))
		return 1;
	if (!strcmp(g->wave.state, "halted") || !strcmp(g->wave.state, "stopped"))
		return end_job(g, "cancelled", -ECANCELED, err, "%s", g->wave.reason[0]
			       ? g->wave.reason : "the rollout was stopped");
	snprintf(msg, sizeof(msg), "waiting for wave %d (%s) to open", job->wave + 1,
		 g->wave.name[0] ? g->wave.name : "?");
	say_once(g, phase, msg);
	return 0;
}

int gate_may_start(struct gate *g, struct reimage_error *err)
{
	if (g->job->stage_early)
		return 1;  /* the WINDOW phase checks the wave */
	return wave_go(g, phase_name(PHASE_SCHEDULED), err);
}

/* 0 while the document is as accepted, < 0 once withdrawn or replaced. */
static int check_document(struct gate *g, struct reimage_error *err)
{
	struct reimage_error e = { 0 };
	size_t len = 0;
	int64_t date = 0;
	int r;

	g->checked_ms = progress_now_ms();
	if (*g->signalled)
		return end_job(g, "cancelled", -ECANCELED, err, "stopped on request%s", "");
	r = store_fetch(g->reg, g->ac, g->doc_url, g->buf, g->cap, &len, g->doc_etag, &date, &e);
	gate_clock(g, date);
	if (r < 0 && e.cls == REIMAGE_EC_NOTFOUND)
		return end_job(g, "cancelled", -ECANCELED, err, "stopped: the job was withdrawn "
			       "from the job store%s", "");
	if (r == 0)
		return end_job(g, "cancelled", -ECANCELED, err, "superseded: a new document was "
			       "published at %s", g->doc_url);
	if (r < 0)
		log_warn("check %s: %s (trying again)", g->doc_url, e.msg);
	return 0;
}

void gate_poll(struct gate *g)
{
	struct reimage_error e = { 0 };
	if (*g->signalled)
		g->halt = 1;
	if (progress_now_ms() - g->checked_ms >= g->ac->poll_interval * 1000 &&
	    check_document(g, &e) < 0)
		log_notice("job %s: %s", g->job->id, e.msg);
}

/* Wait seconds, checking the document every poll interval. */
static int gate_wait(void *arg, int64_t seconds, struct reimage_error *err)
{
	struct gate *g = arg;
	int64_t end = progress_now_ms() + seconds * 1000;
	int r;

	for (;;) {
		int64_t now = progress_now_ms(), left = end - now;
		if (*g->signalled)
			return end_job(g, "cancelled", -ECANCELED, err, "stopped on request%s", "");
		if (now - g->checked_ms >= g->ac->poll_interval * 1000 &&
		    (r = check_document(g, err)) < 0)
			return r;
		if (left <= 0)
			return 0;
		poll(NULL, 0, left > 250 ? 250 : (int)left);
	}
}

static int64_t env_now(void *arg)
{
	return gate_now(arg);
}

static void env_report(void *arg, const char *message)
{
	struct gate *g = arg;
	g->report(g->arg, phase_name(PHASE_WINDOW), "running", message);
}

int gate_run(struct gate *g, struct plugin *backend, struct reimage_error *err)
{
	const struct job *job = g->job;
	const struct notice_env env = { backend->desc->backend, backend->ctx, job->id, env_now,
					gate_wait, env_report, g };
	const struct notice_policy policy = { &job->notice, g->end, job->defer_deadline };
	char msg[256], when[64];
	int r;

	for (;;) {
		if ((r = check_document(g, err)) < 0)
			return r;
		int64_t now = gate_now(g);
		if (gate_expired(g, now)) {
			when_format(g->end, when, sizeof(when));
			return end_job(g, "skipped", -ETIME, err, "its window closed at %s before the "
				       "swap; the staged image is removed", when);
		}
		if (now < g->start) {
			when_format(g->start, when, sizeof(when));
			snprintf(msg, sizeof(msg), "staged; the swap waits for its window at %s", when);
			say_once(g, phase_name(PHASE_WINDOW), msg);
			if ((r = gate_wait(g, g->start - now < g->ac->poll_interval
						      ? g->start - now : g->ac->poll_interval, err)) < 0)
				return r;
			continue;
		}
		if ((r = wave_go(g, phase_name(PHASE_WINDOW), err)) < 0)
			return r;
		if (r == 1)
			break;
		if ((r = gate_wait(g, g->ac->poll_interval, err)) < 0)
			return r;
	}
	if ((r = notice_run(&env, &policy, err)) == -ETIME) {
		g->outcome = "skipped";
		g->halt = 1;
	}
	return r;
}
