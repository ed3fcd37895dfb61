/*
 * agent.c -- the agent loop.
 *
 *   start:  lock <state_dir>/agent.lock (one agent per machine)
 *           boot check: finish an interrupted swap, confirm a job that
 *           rebooted into its new image ("running new image"), or record
 *           that a job was cut short before its swap; report the outcome
 *   loop:   poll every job location (conditional fetch: ETag/mtime)
 *           (store_timestamp_max_age: the store's signed timestamp first;
 *           a stale store is reported and no job is taken from it)
 *           verify signature -> parse -> raise the floor of trusted time
 *           -> accept (targets, serial, expiry)
 *           -> run now, or wait for its window and wave (gate.c; a
 *           withdrawn document cancels)
 *           run: last serial saved durably, then the phases, each
 *           reported; after the reboot request the agent stops
 *           the latest report again if none was sent for `heartbeat`
 *           seconds (the fleet's inventory: reimagectl agents)
 *           sleep poll_interval + random(0..poll_jitter)
 *
 * Reports are best effort: a store that cannot be reached never fails a
 * job, and the machine comes back on its own either way.
 */
#define _GNU_SOURCE
#include "agent.h"
#include "accept.h"
#include "agentstate.h"
#include "error.h"
#include "fsutil.h"
#include "gate.h"
#include "health.h"
#include "layout.h"
#include "log.h"
#include "notice.h"
#include "notify.h"
#include "phase.h"
#include "report.h"
#include "sign.h"
#include "store.h"
#include "timestamp.h"
#include "when.h"
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOCATIONS 64
#define PROGRESS_REPORT_MS 5000

struct location {
	char url[STORE_URL_MAX];
	char etag[REIMAGE_ETAG_MAX];
	int had_doc;
	int failures;         /* polls failed in a row: an outage */
	int64_t retry_at_ms;  /* during an outage, the next poll */
};

/* The longest pause between two polls of an unreachable location. */
#define OUTAGE_BACKOFF_MAX_MS (300 * 1000)

struct agent {
	struct agent_conf *ac;
	const struct agent_opts *opts;
	const volatile sig_atomic_t *stop;
	struct registry reg;
	const char *search_path[16];
	struct location loc[MAX_LOCATIONS];
	size_t n_loc;
	char reports[STORE_URL_MAX];  /* "" for none */
	struct agent_state st;
	/* The store's timestamp (store_timestamp_max_age > 0). */
	char ts_url[STORE_URL_MAX];
	char ts_etag[REIMAGE_ETAG_MAX];
	struct store_timestamp ts;    /* the last one verified; time 0: none */
	int stale;                    /* no job is taken from the store now */
	int stale_reported;
	char *buf;                    /* SIGN_DOC_MAX bytes for fetched documents */
	/* An accepted job waiting for its start time. */
	int waiting;
	struct job *job;  /* allocated: a libconfig tree must not move */
	size_t job_loc;
	int64_t job_start;
	/* The report of the job running now. */
	struct report rep;
	int64_t last_progress_ms;
	int reload_told;   /* the running job was told of a SIGHUP's reload */
	int64_t last_report;  /* when the latest report was last sent, 0: not yet */
	int report_unsent;    /* it did not land everywhere: sent again at the next poll */
	struct gate gate;  /* the job's window, wave and stop; the clock */
};

/* ------------------------------------------------------------- reports */

/* Put one report; a failure is logged (a warning the first time, not at
 * every poll that sends it again) and returned. */
static int report_put(struct agent *a, const char *url, const char *text,
		      struct reimage_error *err)
{
	int r = store_put(&a->reg, a->ac, url, text, strlen(text), "application/json", err);
	if (r < 0) {
		struct reimage_error shown = *err;
		err_prefix_about(&shown, "report to", url);
		log_msg(a->report_unsent ? REIMAGE_LOG_INFO : REIMAGE_LOG_WARNING, "%s%s", shown.msg,
			a->report_unsent ? " (again)" : "; sent again at the next poll");
	}
	return r;
}

/* Send a->rep: the agent's latest report and, for a job with a usable
 * id, the report on that job.  Returns whether the latest report was
 * accepted (TRIAL checks the report location with it). */
static int report_send(struct agent *a, struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text;
	int r;

	a->rep.time = a->last_report = (int64_t)time(NULL);
	const char *detail = a->rep.error[0] ? a->rep.error : a->rep.message;
	/* The engine logs each phase as it starts ("phase STAGE"): its
	 * running reports (and their progress) only in verbose logs. */
	int routine = !strcmp(a->rep.state, "running") && !detail[0];
	log_msg(routine ? REIMAGE_LOG_INFO : REIMAGE_LOG_NOTICE, "report: job %s serial %lld %s %s%s%s",
		a->rep.job[0] ? a->rep.job : "-", a->rep.serial, a->rep.phase, a->rep.state,
		detail[0] ? ": " : "", detail);
	if (!a->reports[0]) {
		err_set(err, -ENOENT, REIMAGE_EC_CONFIG, "no report location is configured");
		return -ENOENT;
	}
	if (!(text = report_json(&a->rep))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = store_url(url, sizeof(url), a->reports, "%s.json", a->ac->agent_id)) < 0)
		err_set(err, r, REIMAGE_EC_CONFIG, "%s: report location too long", a->reports);
	else
		r = report_put(a, url, text, err);
	int job_r = 0;
	if (store_name_ok(a->rep.job) &&
	    store_url(url, sizeof(url), a->reports, "%s/%s.json", a->rep.job, a->ac->agent_id) == 0)
		job_r = report_put(a, url, text, &(struct reimage_error){ 0 });
	/* A report lost to a store's hiccup would leave the administrator's
	 * `wait` on a stale state until the next heartbeat, an hour later. */
	a->report_unsent = r < 0 || job_r < 0;
	free(text);
	return r;
}

static void report_begin(struct agent *a, const char *job, long long serial,
			 const char *location)
{
	memset(&a->rep, 0, sizeof(a->rep));
	snprintf(a->rep.agent, sizeof(a->rep.agent), "%s", a->ac->agent_id);
	a->rep.groups = a->ac->groups;
	snprintf(a->rep.job, sizeof(a->rep.job), "%s", job ? job : "");
	a->rep.serial = serial;
	snprintf(a->rep.location, sizeof(a->rep.location), "%s", location ? location : "");
}

static void report_event(struct agent *a, const char *phase, const char *state,
			 const char *error, const char *message)
{
	snprintf(a->rep.phase, sizeof(a->rep.phase), "%s", phase);
	snprintf(a->rep.state, sizeof(a->rep.state), "%s", state);
	snprintf(a->rep.error, sizeof(a->rep.error), "%s", error ? error : "");
	snprintf(a->rep.message, sizeof(a->rep.message), "%s", message ? message : "");
	report_send(a, &(struct reimage_error){ 0 });
	service_notify("STATUS=job %s: %s %s", a->rep.job, phase, state);
	service_watchdog();
}

/* A SIGHUP while a job runs: the agent file is read again after it. */
static void reload_waits(struct agent *a)
{
	if (!a->opts->reload || !*a->opts->reload || a->reload_told)
		return;
	a->reload_told = 1;
	log_notice("SIGHUP: job %s is running; the agent file is read again once it ends",
		   a->rep.job);
}

/* Remember a final outcome as reported, so a restart does not repeat it.
 * (A rollout's waves are decided by the administrator's tool, which
 * counts the reports once: rollout.h.) */
static void outcome_reported(struct agent *a, const char *job, const char *state)
{
	struct reimage_error e = { 0 };
	snprintf(a->st.reported_job, sizeof(a->st.reported_job), "%s", job);
	snprintf(a->st.reported_state, sizeof(a->st.reported_state), "%s", state);
	if (agent_state_save(a->ac->state_dir, &a->st, &e) < 0)
		log_warn("agent state: %s", e.msg);
}

static void gate_report(void *arg, const char *phase, const char *state, const char *message)
{
	struct agent *a = arg;
	if (strcmp(a->rep.job, a->job->id))  /* a job still waiting to start */
		report_begin(a, a->job->id, a->job->serial, a->loc[a->job_loc].url);
	report_event(a, phase, state, NULL, message);
}

static void refuse(struct agent *a, const char *job, long long serial, const char *location,
		   const char *why)
{
	report_begin(a, job, serial, location);
	report_event(a, phase_name(PHASE_ACCEPT), "refused", why, NULL);
}

/* ------------------------------------------------------------ boot check */

/* 1 if the backend is rebooting the machine, 0 if it cannot reboot. */
static int reboot_now(struct root_ctx *rc, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = rc->backend->desc->backend;
	int r;
	if (!(b->caps & REIMAGE_BCAP_REBOOT) || !b->reboot)
		return 0;
	return (r = b->reboot(rc->backend->ctx, err)) < 0 ? r : 1;
}

/* TRIAL's report check: the report location accepts a report. */
static int trial_report(void *arg, struct reimage_error *err)
{
	struct agent *a = arg;
	snprintf(a->rep.phase, sizeof(a->rep.phase), "%s", phase_name(PHASE_TRIAL));
	snprintf(a->rep.state, sizeof(a->rep.state), "pending");
	snprintf(a->rep.message, sizeof(a->rep.message), "checking the new image");
	return report_send(a, err);
}

/* TRIAL of a swapped job in its new image: the saved health checks pass
 * (COMMIT follows) or the swap is undone (FALLBACK).  Returns 1 if the
 * machine is rebooting into the old image. */
static int trial(struct agent *a, struct root_ctx *rc, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = rc->backend->desc->backend;
	struct reimage_error why = { 0 };
	struct health_spec h;
	int r;

	if ((r = health_load(rc->root, &h, err)) == -ENOENT) {
		err_clear(err);
		return 0;  /* a job from before health checks, or no BOOT phase */
	}
	if (r < 0)
		return r;
	const struct health_probe probe = {
		OPS_HAS(b, struct reimage_backend_ops, unit_active) ? b->unit_active : NULL,
		rc->backend->ctx, trial_report, a, a->stop
	};
	log_notice("TRIAL: job %s: checking the new image (deadline %lld s)", rc->st.job,
		   h.deadline);
	r = health_run(&h, &probe, &why);
	health_free(&h);
	if (r == 0)
		return 0;
	/* FALLBACK: back to the old image, which reports it after its boot. */
	log_error("TRIAL: job %s: %s: rolling back", rc->st.job, why.msg);
	if ((r = root_rollback(rc, why.msg, err)) < 0)
		return r;
	report_event(a, phase_name(PHASE_FALLBACK), "rolled-back", why.msg, "rebooting into the old image");
	outcome_reported(a, rc->st.job, "rolled-back");
	return reboot_now(rc, err);
}

/* Confirm had begun deleting the retired image (swap_retire). */
static int deleting(const char *root)
{
	struct layout L;
	layout_init(&L, root);
	return fs_exists(L.deleting);
}

/* Bring the root to a settled state after a (re)boot and report how the
 * last job ended.  Returns 1 if the machine is rebooting (FALLBACK). */
static int boot_check(struct agent *a)
{
	struct reimage_error e = { 0 };
	enum swap_journal_state js = SWAP_NONE;
	struct job_state st;
	struct root_ctx rc;
	int r, rebooting = 0;

	if (state_read(a->ac->root, &st, &e) < 0)
		return 0;  /* no job ever ran on this root */
	if ((r = root_open(&rc, a->ac->root, NULL, a->ac, &e)) < 0) {
		log_error("boot check: %s", e.msg);
		root_close(&rc);
		return 0;
	}
	report_begin(a, rc.st.job, rc.st.serial, NULL);
	/* The new image never reached its agent: the boot guard brought the
	 * old one back, and this is it (1: nothing below applies). */
	if ((r = root_guard_fell_back(&rc, &e)) == 0)
		r = swap_journal_state(rc.root, &js, &e);
	if (r == 0 && js == SWAP_STARTED) {
		log_notice("boot check: the swap of job %s was interrupted; completing it",
			   rc.st.job);
		/* What runs now was started from a half-swapped root: the new
		 * image is tried only once it has booted whole. */
		if ((r = root_recover(&rc, 0, &e)) == 0 && (r = reboot_now(&rc, &e)) == 1) {
			report_event(a, phase_name(PHASE_SWAP), "pending", NULL,
				     "interrupted swap completed; rebooting into the new image");
			rebooting = 1;
		}
	} else if (r == 0 && (!strcmp(rc.st.status, "running") || js == SWAP_ROLLBACK ||
			      js == SWAP_UNDONE || js == SWAP_DAMAGED || deleting(rc.root))) {
		/* A command cut short: a rollback is finished, confirm's
		 * deletion of the retired image too; never committed. */
		r = root_recover(&rc, 0, &e);
	}
	if (!rebooting && r == 0 && !strcmp(rc.st.status, "pending")) {
		if ((r = trial(a, &rc, &e)) == 1)
			rebooting = 1;
		else if (r == 0 && !strcmp(rc.st.status, "pending"))
			r = root_confirm(&rc, &e);
	}
	if (r < 0) {
		snprintf(rc.st.status, sizeof(rc.st.status), "failed");
		snprintf(rc.st.error, sizeof(rc.st.error), "boot check: %s", e.msg);
	}
	if (!rebooting && report_state_final(rc.st.status) &&
	    (strcmp(a->st.reported_job, rc.st.job) || strcmp(a->st.reported_state, rc.st.status))) {
		report_event(a, rc.st.phase, rc.st.status, rc.st.error[0] ? rc.st.error : NULL,
			     !strcmp(rc.st.status, "committed") ? "running new image" : NULL);
		outcome_reported(a, rc.st.job, rc.st.status);
	}
	root_close(&rc);
	return rebooting;
}

/* ---------------------------------------------------------------- run */

static void watch_phase(void *arg, const struct job_state *st)
{
	struct agent *a = arg;
	const char *state = st->status;
	if (!strcmp(state, "failed") && a->gate.outcome)
		state = a->gate.outcome;  /* stopped, withdrawn, or its window closed */
	else if (!strcmp(state, "failed") && a->stop && *a->stop)
		state = "cancelled";
	if (*a->stop)
		a->gate.halt = 1;
	if (!a->rep.started)
		a->rep.started = (int64_t)time(NULL);
	snprintf(a->rep.deferred, sizeof(a->rep.deferred), "%s", st->deferred);
	/* Progress belongs to STAGE: later phases show none, not a stale one. */
	if (strcmp(st->phase, phase_name(PHASE_STAGE))) {
		a->rep.done = 0;
		a->rep.total = 0;
	}
	report_event(a, st->phase, state, st->error[0] ? st->error : NULL,
		     !strcmp(state, "pending") && a->job->reboot ? "swapped, rebooting" : NULL);
	if (report_state_final(state))
		outcome_reported(a, st->job, state);
	reload_waits(a);
}

static void watch_progress(void *arg, const struct progress *p)
{
	struct agent *a = arg;
	int64_t now = progress_now_ms();
	gate_poll(&a->gate);
	service_watchdog();
	reload_waits(a);
	/* The last tick (p ended) is always sent: no report stays at 74 %. */
	if (p->active && now - a->last_progress_ms < PROGRESS_REPORT_MS)
		return;
	a->last_progress_ms = now;
	a->rep.done = p->done;
	a->rep.total = p->total == REIMAGE_SIZE_UNKNOWN ? 0 : p->total;
	report_send(a, &(struct reimage_error){ 0 });
}

static int watch_window(void *arg, struct plugin *backend, struct reimage_error *err)
{
	struct agent *a = arg;
	return gate_run(&a->gate, backend, err);
}

/* The serial is spent before anything happens: a job runs (or is
 * skipped) at most once, whatever becomes of it. */
static int spend_serial(struct agent *a, struct reimage_error *err)
{
	/* A serial reset (accept.h) puts the agent back as if fresh, signed
	 * by a trusted key: its floor of trusted time and the newest store
	 * timestamp start again from this job (either may have been pushed
	 * into the future with a stolen key). */
	if (a->job->serial_reset > a->st.last_reset) {
		log_notice("job %s: serial_reset %lld: last serial %lld -> %lld", a->job->id,
			   a->job->serial_reset, a->st.last_serial, a->job->serial);
		a->st.last_reset = a->job->serial_reset;
		a->st.time_floor = a->job->signed_at;
		a->st.store_time = 0;
	}
	a->st.have_serial = 1;
	a->st.last_serial = a->job->serial;
	snprintf(a->st.last_job, sizeof(a->st.last_job), "%s", a->job->id);
	return agent_state_save(a->ac->state_dir, &a->st, err);
}

/* Returns 1 if the backend was asked to reboot (the agent stops), else 0. */
static int run_job(struct agent *a)
{
	const struct engine_watch watch = { watch_phase, watch_progress, a, &a->gate.halt,
					    watch_window };
	struct reimage_error e = { 0 };
	struct engine eng;
	int r, rebooting = 0;

	a->reload_told = 0;
	report_begin(a, a->job->id, a->job->serial, a->loc[a->job_loc].url);
	if ((r = spend_serial(a, &e)) < 0) {
		report_event(a, phase_name(PHASE_PREFLIGHT), "failed", e.msg, NULL);
		return 0;
	}
	log_notice("job %s (serial %lld) from %s: starting", a->job->id, a->job->serial,
		   a->loc[a->job_loc].url);
	r = engine_open(&eng, a->job, a->ac, NULL, NULL, &e);
	if (r == 0)
		r = notice_check(eng.backend->desc->backend, a->job, &e);
	if (r < 0) {
		/* Refused: nothing was written. */
		err_prefix(&e, "%s", phase_name(PHASE_PREFLIGHT));
		report_event(a, phase_name(PHASE_PREFLIGHT), "refused", e.msg, NULL);
		outcome_reported(a, a->job->id, "refused");
	} else {
		/* Carried by every report of the job from here on. */
		if (engine_warnings(&eng, a->rep.warnings, sizeof(a->rep.warnings)))
			log_warn("job %s: %s", a->job->id, a->rep.warnings);
		eng.watch = &watch;
		r = engine_run(&eng, &e);
		if (r < 0)
			log_error("job %s: %s", a->job->id, e.msg);
		else
			rebooting = a->job->reboot;
	}
	engine_close(&eng);
	return rebooting;
}

/* ------------------------------------------------------------- polling */

static void drop_waiting(struct agent *a)
{
	if (a->waiting) {
		job_free(a->job);
		free(a->job);
		a->job = NULL;
	}
	a->waiting = 0;
}

/* A verified document was signed at t: trusted time has reached t, and
 * stays there across restarts and clock resets (saved now, durably). */
static void raise_floor(struct agent *a, int64_t t)
{
	struct reimage_error e = { 0 };
	if (t <= a->st.time_floor)
		return;
	a->st.time_floor = t;
	if (agent_state_save(a->ac->state_dir, &a->st, &e) < 0)
		log_warn("agent state: %s", e.msg);
}

static void take_document(struct agent *a, size_t i, const char *doc, size_t len)
{
	const char *url = a->loc[i].url;
	struct reimage_error e = { 0 };
	struct sign_verified v;
	struct job *job = calloc(1, sizeof(*job));
	int64_t now = gate_now(&a->gate), start;

	if (!job) {
		log_error("%s: out of memory", url);
		return;
	}
	if (sign_verify(SIGN_JOB, doc, len, a->ac->trusted_keys, a->ac->revoked_keys, &v, &e) < 0 ||
	    job_load_text(job, url, v.payload, v.len, &e) < 0) {
		refuse(a, NULL, 0, url, e.msg);
		free(job);
		return;
	}
	/* The job that ran last is still published: nothing to say. */
	if (a->st.have_serial && job->serial == a->st.last_serial && !strcmp(job->id, a->st.last_job)) {
		log_debug("%s: job %s serial %lld already ran here", url, job->id, job->serial);
		job_free(job);
		free(job);
		return;
	}
	struct accept_ctx ctx = { .agent_id = a->ac->agent_id, .groups = a->ac->groups,
				  .last_serial = a->st.last_serial, .have_last = a->st.have_serial,
				  .last_reset = a->st.last_reset,
				  .max_serial_jump = a->ac->max_serial_jump,
				  .first_serial_max = a->ac->first_serial_max, .now = now };
	/* Every job is judged by the floor, a serial reset too (an old one
	 * replayed to a machine whose clock was set back would otherwise
	 * run); to recover a floor pushed into the future, sign the reset
	 * with a not_after beyond it.  Only a reset is taken from a stale
	 * store: it may be what recovers the agent's newest store time. */
	raise_floor(a, job->signed_at);
	ctx.now = now > a->st.time_floor ? now : a->st.time_floor;
	if (a->stale && !accept_is_reset(job, &ctx)) {
		log_debug("%s: job %s not taken: the store is stale", url, job->id);
		job_free(job);
		free(job);
		return;
	}
	if (accept_job(job, &ctx, &e) < 0) {
		refuse(a, job->id, job->serial, url, e.msg);
		job_free(job);
		free(job);
		return;
	}
	/* Of two acceptable jobs, the higher serial wins. */
	if (a->waiting && a->job_loc != i && a->job->serial >= job->serial) {
		log_info("%s: job %s (serial %lld) ignored: job %s (serial %lld) comes first", url,
			 job->id, job->serial, a->job->id, a->job->serial);
		job_free(job);
		free(job);
		return;
	}
	struct gate plan = a->gate;  /* the waiting job keeps its own until this one is sure */
	plan.job = job;
	plan.doc_url = url;
	if (gate_plan(&plan, a->loc[i].etag, now, &start, &e) < 0) {
		refuse(a, job->id, job->serial, url, e.msg);
		job_free(job);
		free(job);
		return;
	}
	drop_waiting(a);
	a->gate = plan;
	a->job = job;
	a->job_loc = i;
	a->job_start = start;
	a->waiting = 1;
	log_notice("accepted job %s (serial %lld, key %s) from %s", job->id, job->serial, v.key_id,
		   url);
	if (start > now) {
		char when[64], msg[128];
		when_format(start, when, sizeof(when));
		snprintf(msg, sizeof(msg), "starts at %s", when);
		report_begin(a, job->id, job->serial, url);
		report_event(a, phase_name(PHASE_SCHEDULED), "scheduled", NULL, msg);
	}
}

/* Locations whose last poll failed: one outage of the store fails them
 * all, and is said once. */
static size_t locations_failing(const struct agent *a)
{
	size_t n = 0;
	for (size_t i = 0; i < a->n_loc; i++)
		n += a->loc[i].failures > 0;
	return n;
}

static void poll_location(struct agent *a, size_t i)
{
	struct location *l = &a->loc[i];
	struct reimage_error e = { 0 };
	size_t len = 0;
	int64_t date = 0;

	if (l->failures && progress_now_ms() < l->retry_at_ms)
		return;
	int r = store_fetch(&a->reg, a->ac, l->url, a->buf, SIGN_DOC_MAX, &len, l->etag, &date, &e);

	gate_clock(&a->gate, date);

	if (l->failures && (r >= 0 || e.cls == REIMAGE_EC_NOTFOUND)) {
		int failed = l->failures;
		l->failures = 0;
		if (locations_failing(a) == 0)
			log_notice("poll %s: answers again after %d failed poll(s)", l->url, failed);
		else
			log_info("poll %s: answers again after %d failed poll(s)", l->url, failed);
	}
	if (r == REIMAGE_NOT_MODIFIED)
		return;
	if (r < 0 && e.cls == REIMAGE_EC_NOTFOUND) {
		l->etag[0] = '\0';
		if (l->had_doc && a->waiting && a->job_loc == i) {
			report_begin(a, a->job->id, a->job->serial, l->url);
			report_event(a, phase_name(PHASE_SCHEDULED), "cancelled", NULL, "withdrawn from the job store");
			outcome_reported(a, a->job->id, "cancelled");
			drop_waiting(a);
		}
		l->had_doc = 0;
		return;
	}
	if (r < 0) {
		/* Once per outage: the first failure is a warning, the next
		 * ones are verbose, and polls space out (doubling, capped). */
		int64_t pause = a->ac->poll_interval * 1000 << (l->failures < 10 ? l->failures : 10);
		if (pause > OUTAGE_BACKOFF_MAX_MS)
			pause = OUTAGE_BACKOFF_MAX_MS;
		l->retry_at_ms = progress_now_ms() + pause;
		err_prefix_about(&e, "poll", l->url);
		if (l->failures == 0 && locations_failing(a) == 0)
			log_warn("%s (said once until the store answers again)", e.msg);
		else if (l->failures == 0)
			log_info("%s (the same outage)", e.msg);
		else
			log_info("poll %s: still failing (%d in a row), next try in %lld s", l->url,
				 l->failures + 1, (long long)(pause / 1000));
		l->failures++;
		return;
	}
	l->had_doc = 1;
	take_document(a, i, a->buf, len);
}

/* The store's timestamp, when required: a->stale says whether jobs may
 * be taken from the store now; a change is reported once. */
static void poll_timestamp(struct agent *a)
{
	struct reimage_error e = { 0 };
	int64_t date = 0, now;
	size_t len = 0;
	int r = store_fetch(&a->reg, a->ac, a->ts_url, a->buf, SIGN_DOC_MAX, &len, a->ts_etag, &date,
			    &e);
	gate_clock(&a->gate, date);
	if (r == 0) {
		struct store_timestamp ts;
		if ((r = timestamp_read(a->buf, len, a->ts_url, a->ac, &ts, &e)) == 0)
			a->ts = ts;
		else
			a->ts_etag[0] = '\0';  /* not taken: read it again next time */
	} else if (r == REIMAGE_NOT_MODIFIED) {
		r = 0;  /* the one verified before */
	}
	if (r == 0 && a->ts.time == 0) {
		err_set(&e, -ENOENT, REIMAGE_EC_STATE, "no valid timestamp");
		r = -ENOENT;
	}
	if (r == 0) {
		raise_floor(a, a->ts.time);
		now = gate_now(&a->gate);
		r = timestamp_fresh(&a->ts, now > a->st.time_floor ? now : a->st.time_floor,
				    a->st.store_time, a->ac->store_timestamp_max_age, &e);
	}
	if (r == 0 && a->ts.time > a->st.store_time) {
		struct reimage_error se = { 0 };
		a->st.store_time = a->ts.time;
		if (agent_state_save(a->ac->state_dir, &a->st, &se) < 0)
			log_warn("agent state: %s", se.msg);
	}
	if (r < 0 && !a->stale_reported) {
		char why[REIMAGE_ERRMSG_MAX + 32];
		snprintf(why, sizeof(why), "stale job store: %s", e.msg);
		a->stale_reported = 1;
		report_begin(a, NULL, 0, a->ts_url);
		report_event(a, "POLL", "stale", why, "no job is taken until the store's timestamp "
			     "is fresh");
	} else if (r == 0 && a->stale_reported) {
		a->stale_reported = 0;
		log_notice("%s: the job store's timestamp is fresh again", a->ts_url);
	}
	a->stale = r < 0;
}

/* A job waiting for its start may start now: not from a stale store,
 * unless it is the serial reset that recovers the agent. */
static int may_start(const struct agent *a)
{
	return !a->stale || a->job->serial_reset > a->st.last_reset;
}

/* ------------------------------------------------------------- set-up */

static int add_location(struct agent *a, const char *url, struct reimage_error *err)
{
	if (a->n_loc == MAX_LOCATIONS) {
		err_set(err, -E2BIG, REIMAGE_EC_CONFIG, "%s: more than %d job locations",
			a->ac->file, MAX_LOCATIONS);
		return -E2BIG;
	}
	snprintf(a->loc[a->n_loc++].url, STORE_URL_MAX, "%s", url);
	return 0;
}

static int locations(struct agent *a, struct reimage_error *err)
{
	struct agent_conf *ac = a->ac;
	char url[STORE_URL_MAX];
	int r;

	if (!store_name_ok(ac->agent_id)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: agent_id '%s' may hold only letters, "
			"digits, '.', '_' and '-'", ac->file, ac->agent_id);
		return -EINVAL;
	}
	for (const char *const *j = ac->jobs; j && *j; j++)
		if ((r = add_location(a, *j, err)) < 0)
			return r;
	if (!ac->jobs && ac->store) {
		if ((r = store_url(url, sizeof(url), ac->store, "jobs/%s.job", ac->agent_id)) < 0 ||
		    (r = add_location(a, url, err)) < 0)
			return r;
		for (const char *const *g = ac->groups; g && *g; g++)
			if (!store_name_ok(*g) ||
			    store_url(url, sizeof(url), ac->store, "jobs/group-%s.job", *g) < 0 ||
			    (r = add_location(a, url, err)) < 0) {
				if (err->code == 0)
					err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: group name '%s' "
						"may hold only letters, digits, '.', '_' and '-'",
						ac->file, *g);
				return err->code;
			}
	}
	if (a->n_loc == 0) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"%s: no job location: set `store` (or `jobs`)", ac->file[0] ? ac->file
									 : "the agent file");
		return -EINVAL;
	}
	if (!ac->trusted_keys || !ac->trusted_keys[0]) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"%s: no trusted_keys: the agent would refuse every job", ac->file);
		return -EINVAL;
	}
	/* A key that could not verify anything honestly is refused now, with
	 * its file's name, not at the first document. */
	if ((r = sign_check_keys(ac->trusted_keys, ac->revoked_keys, err)) < 0) {
		err_prefix(err, "%s", ac->file);
		return r;
	}
	if (ac->store_timestamp_max_age > 0 &&
	    (!ac->store || store_url(a->ts_url, sizeof(a->ts_url), ac->store, "timestamp") < 0)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: store_timestamp_max_age needs `store` "
			"(the timestamp is <store>/timestamp)", ac->file);
		return -EINVAL;
	}
	if (ac->reports)
		snprintf(a->reports, sizeof(a->reports), "%s", ac->reports);
	else if (ac->store && store_url(a->reports, sizeof(a->reports), ac->store, "reports") < 0)
		a->reports[0] = '\0';
	return 0;
}

static int lock_agent(const char *state_dir, int *ret_fd, struct reimage_error *err)
{
	char path[4096];
	int fd;

	if (fs_mkdir_p(state_dir, 0700, err) < 0) {
		err_prefix(err, "state_dir");
		return err->code;
	}
	if (fs_join(path, sizeof(path), state_dir, "agent.lock") < 0 ||
	    (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		err_sys(err, errno ? -errno : -ENAMETOOLONG, "lock %s/agent.lock", state_dir);
		return err->code;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		err_set(err, -EBUSY, REIMAGE_EC_STATE, "another agent runs with state_dir %s",
			state_dir);
		return -EBUSY;
	}
	*ret_fd = fd;
	return 0;
}

static int reload_asked(const struct agent *a)
{
	return a->opts->reload && *a->opts->reload;
}

/* Sleep up to ms, waking early when asked to stop or reload; the
 * watchdog is fed meanwhile. */
static void nap(struct agent *a, int64_t ms)
{
	int64_t end = progress_now_ms() + ms;
	while (!*a->stop && !reload_asked(a)) {
		service_watchdog();
		int64_t left = end - progress_now_ms();
		if (left <= 0)
			break;
		poll(NULL, 0, left > 250 ? 250 : (int)left);
	}
}

static int64_t next_poll_ms(struct agent *a)
{
	int64_t ms = a->ac->poll_interval * 1000;
	if (a->ac->poll_jitter > 0)
		ms += random() % (a->ac->poll_jitter * 1000 + 1);
	if (a->waiting && a->job_start > gate_now(&a->gate)) {
		int64_t until = (a->job_start - gate_now(&a->gate)) * 1000;
		if (until < ms)
			ms = until < 1000 ? 1000 : until;
	}
	return ms;
}

/* Every location the agent file names must have its transport now: an
 * agent that could never fetch a job or send a report refuses to start,
 * rather than logging the same failure at every poll. */
static int check_transports(struct agent *a, struct reimage_error *err)
{
	struct plugin *p;
	int r;

	for (size_t i = 0; i <= a->n_loc; i++) {
		const char *url = i < a->n_loc ? a->loc[i].url : a->reports;
		if (!url[0] || (r = registry_transport_for(&a->reg, url, &p, err)) == 0)
			continue;
		err_prefix(err, "%s: %s %s", a->ac->file[0] ? a->ac->file : "the agent file",
			   i < a->n_loc ? "job location" : "reports", url);
		err->cls = REIMAGE_EC_CONFIG;  /* the configuration cannot work here */
		return r;
	}
	return 0;
}

/* The latest report doubles as the heartbeat: sent again when none was
 * for `heartbeat` seconds, or at the next poll when it did not land.  An
 * agent that has reported nothing since it started says it is idle and
 * what it last did (not as a report on that job: its outcome there stays
 * as it was). */
static void heartbeat(struct agent *a)
{
	if (!a->report_unsent && a->last_report &&
	    (int64_t)time(NULL) - a->last_report < a->ac->heartbeat)
		return;
	if (!a->rep.state[0]) {  /* nothing reported (a report may be begun, not sent) */
		char last[512] = "";
		if (a->st.reported_job[0])
			snprintf(last, sizeof(last), "last job %s: %s", a->st.reported_job,
				 a->st.reported_state);
		report_begin(a, NULL, 0, NULL);
		report_event(a, "IDLE", "idle", NULL, last);
		return;
	}
	report_send(a, &(struct reimage_error){ 0 });
}

/* A job that ends before it started (its window passed, its rollout
 * halted): its serial is spent, the outcome reported. */
static void end_unstarted(struct agent *a, const char *state, const char *why)
{
	struct reimage_error e = { 0 };
	if (spend_serial(a, &e) < 0)
		log_warn("agent state: %s", e.msg);
	report_begin(a, a->job->id, a->job->serial, a->loc[a->job_loc].url);
	report_event(a, phase_name(PHASE_SCHEDULED), state, NULL, why);
	outcome_reported(a, a->job->id, state);
}

int agent_run(struct agent_conf *ac, const struct agent_opts *opts,
	      const volatile sig_atomic_t *stop, struct reimage_error *err)
{
	struct agent *a = calloc(1, sizeof(*a));
	int lock_fd = -1, r;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	if (!a || !(a->buf = malloc(SIGN_DOC_MAX))) {
		free(a);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	a->ac = ac;
	a->opts = opts;
	a->stop = stop;
	for (const char *p = ac->agent_id; *p; p++)
		seed = seed * 31 + (unsigned char)*p;
	a->gate = (struct gate){ .reg = &a->reg, .ac = ac, .buf = a->buf, .cap = SIGN_DOC_MAX,
				 .signalled = stop, .report = gate_report, .arg = a };
	srandom(seed);  /* agents started together still poll apart */
	for (size_t n = 0; ac->plugin_path && ac->plugin_path[n] && n < 15; n++)
		a->search_path[n] = ac->plugin_path[n];
	if ((r = locations(a, err)) < 0 || (r = registry_init(&a->reg, a->search_path, err)) < 0 ||
	    (r = check_transports(a, err)) < 0 || (r = lock_agent(ac->state_dir, &lock_fd, err)) < 0 ||
	    (r = agent_state_load(ac->state_dir, &a->st, err)) < 0)
		goto out;
	log_notice("agent %s: %zu job location(s), reports to %s, polling every %lld s + up to "
		   "%lld s", ac->agent_id, a->n_loc, a->reports[0] ? a->reports : "(none)",
		   ac->poll_interval, ac->poll_jitter);
	service_notify("READY=1\nSTATUS=agent %s: polling %zu job location(s)", ac->agent_id,
		       a->n_loc);
	if (boot_check(a)) {
		log_notice("agent: rolling back; the backend is rebooting the machine; stopping");
		goto done;
	}
	while (!*stop) {
		if (reload_asked(a)) {
			*opts->reload = 0;
			service_notify("RELOADING=1\nSTATUS=reading the agent file again");
			r = AGENT_RELOAD;
			goto out;
		}
		if (a->ts_url[0])
			poll_timestamp(a);
		for (size_t i = 0; i < a->n_loc && !*stop; i++) {
			poll_location(a, i);
			service_watchdog();
		}
		int64_t now = gate_now(&a->gate);
		struct reimage_error why = { 0 };
		int go = -1;
		if (a->waiting && !*stop && a->job_start <= now && may_start(a)) {
			if (gate_expired(&a->gate, now))
				end_unstarted(a, "skipped", "its window passed before it could start");
			else if ((go = gate_may_start(&a->gate, &why)) < 0)
				end_unstarted(a, a->gate.outcome, why.msg);
			else if (go == 1 && run_job(a)) {
				log_notice("agent: the backend is rebooting the machine; stopping");
				drop_waiting(a);
				break;
			}
			if (go != 0)  /* 0: its wave is not open yet */
				drop_waiting(a);
		}
		if (!*stop)
			heartbeat(a);
		if (opts->once)
			break;
		nap(a, next_poll_ms(a));
	}
done:
	service_notify("STOPPING=1");
	r = 0;
out:
	drop_waiting(a);
	registry_fini(&a->reg);
	if (lock_fd >= 0)
		close(lock_fd);
	free(a->buf);
	free(a);
	return r;
}
