/*
 * test_waves.c -- the decisions of a rollout without servers: which agent
 * goes in which wave, the window's times in a named zone, the job's
 * rollout and notice settings, the notice/deferral/inhibitor logic
 * (notice.c) against a scripted backend and a simulated clock.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "gate.h"
#include "notice.h"
#include "registry.h"
#include "rollout.h"
#include "sign.h"
#include "when.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ waves */

static const char *const targets[] = { "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9",
				       "a10", "a11", "a12", "a13", "a14", "a15", "a16", "a17",
				       "a18", "a19", "a20", "a21" };
#define N_TARGETS (sizeof(targets) / sizeof(targets[0]))

TEST_CASE(percent_waves_are_cumulative)
{
	const char *const waves[] = { "10%", "50%", "100%" };
	struct reimage_error err = { 0 };
	int wave[N_TARGETS], count[3] = { 0 };

	CU_ASSERT_EQUAL_FATAL(rollout_assign(waves, 3, targets, N_TARGETS, NULL, wave, &err), 0);
	for (size_t i = 0; i < N_TARGETS; i++)
		count[wave[i]]++;
	/* 10% of 21 rounded up is 3; 50% is 11 in all, so 8 more; the rest. */
	CU_ASSERT_EQUAL(count[0], 3);
	CU_ASSERT_EQUAL(count[1], 8);
	CU_ASSERT_EQUAL(count[2], 10);
	/* In the targets' order. */
	CU_ASSERT_EQUAL(wave[0], 0);
	CU_ASSERT_EQUAL(wave[2], 0);
	CU_ASSERT_EQUAL(wave[3], 1);
	CU_ASSERT_EQUAL(wave[20], 2);
}

TEST_CASE(group_waves_take_their_members_first)
{
	const char *const waves[] = { "canary", "100%" };
	const char *const groups[] = { "canary=a7,a2, a19", NULL };
	struct reimage_error err = { 0 };
	int wave[N_TARGETS];

	CU_ASSERT_EQUAL_FATAL(rollout_assign(waves, 2, targets, N_TARGETS, groups, wave, &err), 0);
	for (size_t i = 0; i < N_TARGETS; i++) {
		int canary = !strcmp(targets[i], "a7") || !strcmp(targets[i], "a2") ||
			     !strcmp(targets[i], "a19");
		CU_ASSERT_EQUAL(wave[i], canary ? 0 : 1);
	}
}

TEST_CASE(wave_errors_name_the_cause)
{
	struct reimage_error err = { 0 };
	int wave[N_TARGETS];

	CU_ASSERT_EQUAL(rollout_assign((const char *const[]){ "10%", "50%" }, 2, targets,
				       N_TARGETS, NULL, wave, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "agent a12 is in no wave"));
	err = (struct reimage_error){ 0 };
	CU_ASSERT_EQUAL(rollout_assign((const char *const[]){ "lab", "100%" }, 2, targets,
				       N_TARGETS, NULL, wave, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no --wave-group lab="));
	/* One target: "100%" after "50%" would be empty, and nobody would
	 * ever decide it. */
	err = (struct reimage_error){ 0 };
	CU_ASSERT_EQUAL(rollout_assign((const char *const[]){ "50%", "100%" }, 2, targets, 1,
				       NULL, wave, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "wave 2 (100%) takes no agent"));
}

/* A rollout of three waves of two agents in a directory store (the
 * built-in file transport); agents' outcomes written as their reports. */
struct store {
	struct registry reg;
	struct agent_conf ac;
	char dir[1024];
	char key[1024], pub[1024];
	const char *trusted[2];
};

static void store_open(struct store *st)
{
	struct reimage_error err = { 0 };
	static const char *const names[3][2] = { { "a1", "a2" }, { "b1", "b2" }, { "c1", "c2" } };
	memset(st, 0, sizeof(*st));
	snprintf(st->dir, sizeof(st->dir), "%s", t_path("store"));
	snprintf(st->key, sizeof(st->key), "%s", t_path("admin.key"));
	snprintf(st->pub, sizeof(st->pub), "%s", t_path("admin.pub"));
	CU_ASSERT_EQUAL_FATAL(sign_keygen(st->key, st->pub, &err), 0);
	st->trusted[0] = st->pub;
	st->ac.trusted_keys = st->trusted;
	CU_ASSERT_EQUAL_FATAL(registry_init(&st->reg, NULL, &err), 0);
	for (int w = 0; w < 3; w++) {
		struct wave_state ws = { .wave = w, .waves = 3, .size = 2, .budget = 50 };
		snprintf(ws.name, sizeof(ws.name), "w%d", w);
		snprintf(ws.state, sizeof(ws.state), "%s", w == 0 ? "open" : "waiting");
		CU_ASSERT_EQUAL_FATAL(rollout_agents_put(&st->reg, &st->ac, st->dir, "j1", w,
							 names[w], 2, &err), 0);
		CU_ASSERT_EQUAL_FATAL(rollout_wave_put(&st->reg, &st->ac, st->dir, "j1", &ws, st->key,
						       &err), 0);
	}
}

static void outcome(struct store *st, const char *agent, const char *state)
{
	char text[512];
	snprintf(text, sizeof(text), "{\"agent\": \"%s\", \"job\": \"j1\", \"serial\": 1, "
		 "\"phase\": \"X\", \"state\": \"%s\", \"time\": 1}", agent, state);
	CU_ASSERT_EQUAL(t_sh("mkdir -p '%s/reports/j1'", st->dir), 0);
	t_write(t_path("store/reports/j1/%s.json", agent), text);
}

static const char *wave_state_of(struct store *st, int wave)
{
	static struct wave_state ws;
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(rollout_wave_get(&st->reg, &st->ac, st->dir, "j1", wave,
					 (char[REIMAGE_ETAG_MAX]){ "" }, &ws, &err), 0);
	return ws.state;
}

TEST_CASE(tally_opens_only_the_next_wave)
{
	struct reimage_error err = { 0 };
	struct wave_state ws;
	struct store st;

	store_open(&st);
	outcome(&st, "a1", "committed");
	CU_ASSERT_EQUAL(rollout_tally(&st.reg, &st.ac, st.dir, "j1", 0, 100, st.key, &ws, &err), 0);
	CU_ASSERT_STRING_EQUAL(ws.state, "open");  /* a2 still runs */
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 1), "waiting");
	outcome(&st, "a2", "failed");  /* 1 of 2 is within 50% */
	CU_ASSERT_EQUAL(rollout_tally(&st.reg, &st.ac, st.dir, "j1", 0, 101, st.key, &ws, &err), 0);
	CU_ASSERT_STRING_EQUAL(ws.state, "committed");
	CU_ASSERT_EQUAL(ws.failed, 1);
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 1), "open");
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 2), "waiting");
	/* Two agents deciding the same wave at once: the second decision
	 * must not open the wave after the next. */
	struct wave_state again;
	CU_ASSERT_EQUAL(rollout_wave_get(&st.reg, &st.ac, st.dir, "j1", 0,
					 (char[REIMAGE_ETAG_MAX]){ "" }, &again, &err), 0);
	snprintf(again.state, sizeof(again.state), "open");
	CU_ASSERT_EQUAL(rollout_wave_put(&st.reg, &st.ac, st.dir, "j1", &again, st.key, &err), 0);
	CU_ASSERT_EQUAL(rollout_tally(&st.reg, &st.ac, st.dir, "j1", 0, 102, st.key, &ws, &err), 0);
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 2), "waiting");
	/* Wave 2 over budget halts itself and wave 3. */
	outcome(&st, "b1", "rolled-back");
	outcome(&st, "b2", "failed");
	CU_ASSERT_EQUAL(rollout_tally(&st.reg, &st.ac, st.dir, "j1", 1, 103, st.key, &ws, &err), 0);
	CU_ASSERT_STRING_EQUAL(ws.state, "halted");
	CU_ASSERT_PTR_NOT_NULL(strstr(ws.reason, "wave 2 (w1): 2 of 2 failed or rolled back"));
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 2), "halted");
	registry_fini(&st.reg);
}

/* Whoever can write to the store cannot open a wave: an unsigned state,
 * one signed by a key the agent does not trust, and a genuine one copied
 * to another wave's place are all refused. */
TEST_CASE(wave_documents_must_verify)
{
	struct reimage_error err = { 0 };
	struct wave_state ws;
	struct store st;
	char *text;

	store_open(&st);
	/* Unsigned JSON (the old format) saying wave 2 is "open". */
	t_write(t_path("store/rollouts/j1/wave-2.json"), "{\"job\": "
		"\"j1\", \"wave\": 2, \"waves\": 3, \"name\": \"w1\", \"size\": 2, \"budget\": 50, "
		"\"state\": \"open\", \"opened\": 1, \"decided\": 0}");
	CU_ASSERT_EQUAL(rollout_wave_get(&st.reg, &st.ac, st.dir, "j1", 1,
					 (char[REIMAGE_ETAG_MAX]){ "" }, &ws, &err), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "wave-2.json: not a valid signed wave"));
	/* Signed by another key. */
	err = (struct reimage_error){ 0 };
	CU_ASSERT_EQUAL_FATAL(sign_keygen(t_path("other.key"), t_path("other.pub"), &err), 0);
	struct wave_state forged = { .wave = 1, .waves = 3, .size = 2, .budget = 50, .opened = 1 };
	snprintf(forged.state, sizeof(forged.state), "open");
	CU_ASSERT_EQUAL(rollout_wave_put(&st.reg, &st.ac, st.dir, "j1", &forged,
					 t_path("other.key"), &err), 0);
	CU_ASSERT_EQUAL(rollout_wave_get(&st.reg, &st.ac, st.dir, "j1", 1,
					 (char[REIMAGE_ETAG_MAX]){ "" }, &ws, &err), -EACCES);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not among this agent's trusted_keys"));
	/* Wave 2's genuine (open) state copied over wave 3's. */
	err = (struct reimage_error){ 0 };
	CU_ASSERT_EQUAL(rollout_wave_put(&st.reg, &st.ac, st.dir, "j1", &forged, st.key, &err), 0);
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 1), "open");
	text = t_read(t_path("store/rollouts/j1/wave-2.json"));
	t_write(t_path("store/rollouts/j1/wave-3.json"), text);
	free(text);
	CU_ASSERT_EQUAL(rollout_wave_get(&st.reg, &st.ac, st.dir, "j1", 2,
					 (char[REIMAGE_ETAG_MAX]){ "" }, &ws, &err), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not for wave 3 of j1"));
	/* Deciding a wave needs the key. */
	err = (struct reimage_error){ 0 };
	CU_ASSERT_EQUAL(rollout_wave_put(&st.reg, &st.ac, st.dir, "j1", &forged, NULL, &err),
			-EINVAL);
	registry_fini(&st.reg);
}

/* A wave with a deadline: silent machines count against the budget once
 * it passes -- within it the next wave opens, above it the rollout halts. */
TEST_CASE(wave_deadline_counts_the_silent)
{
	struct reimage_error err = { 0 };
	struct wave_state ws;
	struct store st;
	int open;

	store_open(&st);
	for (int w = 0; w < 3; w++) {  /* as submit writes rollout.wave_timeout = 600 */
		CU_ASSERT_EQUAL_FATAL(rollout_wave_get(&st.reg, &st.ac, st.dir, "j1", w,
						       (char[REIMAGE_ETAG_MAX]){ "" }, &ws, &err), 0);
		ws.opened = w == 0 ? 1000 : 0;
		ws.timeout = 600;
		CU_ASSERT_EQUAL_FATAL(rollout_wave_put(&st.reg, &st.ac, st.dir, "j1", &ws, st.key,
						       &err), 0);
	}
	outcome(&st, "a1", "committed");  /* a2 never reports */
	CU_ASSERT_EQUAL(rollout_advance(&st.reg, &st.ac, st.dir, "j1", 1599, st.key, &open, &err), 0);
	CU_ASSERT_EQUAL(open, 0);
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 0), "open");
	/* At the deadline: 1 silent of 2 is within 50%; wave 2 opens, and
	 * is counted in the same pass (nobody of it reported yet). */
	CU_ASSERT_EQUAL(rollout_advance(&st.reg, &st.ac, st.dir, "j1", 1600, st.key, &open, &err), 0);
	CU_ASSERT_EQUAL(open, 1);
	CU_ASSERT_EQUAL_FATAL(rollout_wave_get(&st.reg, &st.ac, st.dir, "j1", 0,
					       (char[REIMAGE_ETAG_MAX]){ "" }, &ws, &err), 0);
	CU_ASSERT_STRING_EQUAL(ws.state, "committed");
	CU_ASSERT_EQUAL(ws.silent, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(ws.reason, "1 silent at its deadline (600s)"));
	/* Wave 2 gets the same deadline from its opening; one fails and the
	 * other is silent: 2 of 2 is above 50%. */
	outcome(&st, "b1", "failed");
	CU_ASSERT_EQUAL(rollout_advance(&st.reg, &st.ac, st.dir, "j1", 2199, st.key, &open, &err), 0);
	CU_ASSERT_EQUAL(open, 1);
	CU_ASSERT_EQUAL(rollout_advance(&st.reg, &st.ac, st.dir, "j1", 2200, st.key, &open, &err), 0);
	CU_ASSERT_EQUAL(open, -1);
	CU_ASSERT_EQUAL_FATAL(rollout_wave_get(&st.reg, &st.ac, st.dir, "j1", 1,
					       (char[REIMAGE_ETAG_MAX]){ "" }, &ws, &err), 0);
	CU_ASSERT_STRING_EQUAL(ws.state, "halted");
	CU_ASSERT_PTR_NOT_NULL(strstr(ws.reason, "1 of 2 failed and 1 silent at its deadline"));
	CU_ASSERT_STRING_EQUAL(wave_state_of(&st, 2), "halted");
	registry_fini(&st.reg);
}

/* ------------------------------------------------------ job settings */

static int load(struct job *job, const char *extra, struct reimage_error *err)
{
	char text[2048];
	snprintf(text, sizeof(text), "id = \"j1\";\nimage: { url = \"/i.tar\"; };\n%s", extra);
	return job_load_text(job, "job", text, strlen(text), err);
}

TEST_CASE(job_settings)
{
	struct reimage_error err = { 0 };
	struct job job;

	CU_ASSERT_EQUAL_FATAL(load(&job, "at = \"02:00\"; window = 10800; jitter = 600;\n"
			      "timezone = \"Europe/Berlin\"; stage_early = true;\n"
			      "rollout: { waves = [ \"canary\", \"10%\", \"100%\" ]; "
			      "failure_budget = 2; wave = 2; wave_timeout = 1800; };\n"
			      "notice: { seconds = 600; max_deferrals = 2; defer_seconds = 1800; "
			      "inhibitors = [ \"impress\" ]; };", &err), 0);
	CU_ASSERT_EQUAL(job.n_waves, 3);
	CU_ASSERT_EQUAL(job.wave, 1);  /* the second, counted from 0 inside */
	CU_ASSERT_EQUAL(job.failure_budget, 2);
	CU_ASSERT_EQUAL(job.wave_timeout, 1800);
	CU_ASSERT_STRING_EQUAL(job.timezone, "Europe/Berlin");
	CU_ASSERT_EQUAL(job.jitter, 600);
	CU_ASSERT(job.stage_early);
	CU_ASSERT_EQUAL(job.notice.seconds, 600);
	CU_ASSERT_EQUAL(job.notice.repeat, 60);
	CU_ASSERT_EQUAL(job.notice.max_deferrals, 2);
	CU_ASSERT_STRING_EQUAL(job.notice.inhibitors[0], "impress");
	job_free(&job);
	/* Defaults: no waves, a 5-minute notice, no deferral. */
	CU_ASSERT_EQUAL_FATAL(load(&job, "", &err), 0);
	CU_ASSERT_EQUAL(job.wave, -1);
	CU_ASSERT_EQUAL(job.n_waves, 0);
	CU_ASSERT_EQUAL(job.wave_timeout, 0);
	CU_ASSERT_EQUAL(job.notice.seconds, 300);
	CU_ASSERT_EQUAL(job.notice.max_deferrals, 0);
	job_free(&job);
}

TEST_CASE(job_setting_errors)
{
	static const struct { const char *text, *error; } bad[] = {
		{ "rollout: { waves = [ \"150%\" ]; };", "job:3: setting 'rollout.waves'" },
		{ "rollout: { waves = [ \"10%\" ]; wave = 2; };", "no such wave" },
		{ "timezone = \"../etc/passwd\";", "setting 'timezone'" },
		{ "at = \"02:00\"; window = 600; jitter = 600;", "must be shorter than `window`" },
		{ "notice: { defer_deadline = \"tomorrow\"; };", "notice.defer_deadline" },
		{ "notice: { seconds = -1; };", "seconds" },
		{ "rollout: { wave = 1; };", "no such wave" },
		{ "rollout: { wave = -1; };", "setting 'wave': out of range" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct reimage_error err = { 0 };
		struct job job;
		CU_ASSERT_EQUAL(load(&job, bad[i].text, &err), -EINVAL);
		if (!strstr(err.msg, bad[i].error))
			fprintf(stderr, "'%s': got '%s', expected '%s'\n", bad[i].text, err.msg,
				bad[i].error);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].error));
	}
}

/* ------------------------------------------------------------ window */

TEST_CASE(window_in_a_named_zone)
{
	int64_t now, start;
	/* 2026-07-01 12:00 UTC is 14:00 in Berlin (CEST) and 08:00 in New York. */
	CU_ASSERT_EQUAL_FATAL(when_parse("2026-07-01T12:00:00Z", &now), 0);
	CU_ASSERT_EQUAL(when_start_in("15:00", 0, now, "Europe/Berlin", &start), 0);
	CU_ASSERT_EQUAL(start - now, 3600);
	CU_ASSERT_EQUAL(when_start_in("15:00", 0, now, "America/New_York", &start), 0);
	CU_ASSERT_EQUAL(start - now, 7 * 3600);
	/* A local timestamp in the zone. */
	CU_ASSERT_EQUAL(when_start_in("2026-07-01 16:30", 0, now, "Europe/Berlin", &start), 0);
	CU_ASSERT_EQUAL(start - now, 2 * 3600 + 1800);
	/* The zone is restored afterwards, and an unknown one is an error,
	 * not UTC in disguise. */
	CU_ASSERT_EQUAL(when_start_in("15:00", 0, now, "Mars/Olympus_Mons", &start), -ENOENT);
	CU_ASSERT_PTR_NULL(getenv("TZ"));
}

/* gate_plan() of a job at `now`: the window and the start. */
static void plan(const char *extra, int64_t now, int64_t *start, int64_t *end, int64_t *first)
{
	struct agent_conf ac = { .agent_id = "pc-7", .poll_interval = 1 };
	struct reimage_error err = { 0 };
	struct gate g = { .ac = &ac };
	struct job job;
	CU_ASSERT_EQUAL_FATAL(load(&job, extra, &err), 0);
	g.job = &job;
	CU_ASSERT_EQUAL(gate_plan(&g, "", now, first, &err), 0);
	*start = g.start;
	*end = g.end;
	job_free(&job);
}

TEST_CASE(window_jitter_and_stage_early)
{
	int64_t now, start, end, first, s2;
	CU_ASSERT_EQUAL_FATAL(when_parse("2026-07-01T12:00:00Z", &now), 0);
	plan("at = \"2026-07-01T13:00:00Z\"; window = 7200; jitter = 900;", now, &start, &end, &first);
	CU_ASSERT(start >= now + 3600 && start <= now + 3600 + 900);
	CU_ASSERT_EQUAL(end, now + 3600 + 7200);
	CU_ASSERT_EQUAL(first, start);  /* nothing happens before the window */
	/* The same agent and job always get the same place. */
	plan("at = \"2026-07-01T13:00:00Z\"; window = 7200; jitter = 900;", now, &s2, &end, &first);
	CU_ASSERT_EQUAL(s2, start);
	/* Stage early: the job starts now, the swap still waits. */
	plan("at = \"2026-07-01T13:00:00Z\"; window = 7200; stage_early = true;", now, &start, &end,
	     &first);
	CU_ASSERT_EQUAL(first, now);
	CU_ASSERT_EQUAL(start, now + 3600);
	/* A daily window that opened an hour ago is open now, and ends as it
	 * would have. */
	plan("at = \"11:00\"; window = 7200; timezone = \"UTC\";", now, &start, &end, &first);
	CU_ASSERT_EQUAL(first, now);
	CU_ASSERT_EQUAL(end, now + 3600);
}

/* ------------------------------------------------------------ notice */

/* A scripted backend and clock: notify_users answers "defer" at the
 * calls listed; inhibited says an inhibitor runs for the first calls. */
struct script {
	int64_t now;
	int notices, defer_at[4], inhibited_calls, inhibited_for;
	int sessions;
	char log[4096];
};
static struct script sc;

static int fake_notify(void *ctx, const struct reimage_notice *n, struct reimage_notice_result *ret,
		       struct reimage_error *err)
{
	(void)ctx;
	(void)err;
	sc.notices++;
	ret->sessions = sc.sessions;
	snprintf(ret->channels, sizeof(ret->channels), "tty:/dev/pts/9");
	for (int i = 0; i < 4; i++)
		if (sc.defer_at[i] == sc.notices && n->deferrals_left > 0) {
			ret->defer = 1;
			snprintf(ret->who, sizeof(ret->who), "alice on /dev/pts/9");
		}
	return 0;
}

static int fake_inhibited(void *ctx, const char *const *names, char *what, size_t cap,
			  struct reimage_error *err)
{
	(void)ctx;
	(void)err;
	if (sc.inhibited_calls++ < sc.inhibited_for) {
		snprintf(what, cap, "%s (pid 42)", names[0]);
		return 1;
	}
	return 0;
}

static const struct reimage_backend_ops fake_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_backend_ops),
	.name = "fake",
	.notify_users = fake_notify,
	.inhibited = fake_inhibited,
};

static int64_t fake_now(void *arg)
{
	(void)arg;
	return sc.now;
}

static int fake_wait(void *arg, int64_t seconds, struct reimage_error *err)
{
	(void)arg;
	(void)err;
	sc.now += seconds;
	return 0;
}

static void fake_report(void *arg, const char *msg)
{
	(void)arg;
	size_t n = strlen(sc.log);
	snprintf(sc.log + n, sizeof(sc.log) - n, "%lld %s\n", (long long)sc.now, msg);
}

static int run_notice(const struct job_notice *n, int64_t window_end, int64_t defer_deadline,
		      struct reimage_error *err)
{
	const struct notice_env env = { &fake_ops, NULL, "j1", fake_now, fake_wait, fake_report,
					NULL };
	const struct notice_policy p = { n, window_end, defer_deadline };
	return notice_run(&env, &p, err);
}

static const char *const inhibitors[] = { "impress", NULL };

TEST_CASE(notice_countdown_and_deferrals)
{
	struct job_notice n = { 300, 60, "Restart.", 2, 1800, NULL };
	struct reimage_error err = { 0 };

	memset(&sc, 0, sizeof(sc));
	sc.sessions = 2;
	sc.defer_at[0] = 2;  /* the user defers at the second notice */
	CU_ASSERT_EQUAL(run_notice(&n, 0, 0, &err), 0);
	/* 60 s in, a deferral of 1800 s, then a whole countdown again. */
	CU_ASSERT_EQUAL(sc.now, 60 + 1800 + 300);
	CU_ASSERT_PTR_NOT_NULL(strstr(sc.log, "0 notice to 2 session(s) (tty:/dev/pts/9): restart "
				      "in 5 min, 2 deferral(s) left"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sc.log, "60 deferred by alice on /dev/pts/9 (1 of 2) for "
				      "30 min"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sc.log, "1860 notice to 2 session(s) (tty:/dev/pts/9): "
				      "restart in 5 min, 1 deferral(s) left"));
	/* 6 notices per countdown (300, 240, ... 0 s left), plus the 2 before the deferral. */
	CU_ASSERT_EQUAL(sc.notices, 2 + 6);
}

TEST_CASE(notice_deferral_limits)
{
	struct job_notice n = { 120, 60, "Restart.", 5, 600, NULL };
	struct reimage_error err = { 0 };

	/* The user asks at every notice; the window ends at 1000 s: a
	 * deferral (600) plus a countdown (120) fits once from 0, not twice. */
	memset(&sc, 0, sizeof(sc));
	sc.sessions = 1;
	for (int i = 0; i < 4; i++)
		sc.defer_at[i] = i + 1;
	CU_ASSERT_EQUAL(run_notice(&n, 1000, 0, &err), 0);
	CU_ASSERT_EQUAL(sc.now, 600 + 120);
	CU_ASSERT_PTR_NOT_NULL(strstr(sc.log, "(1 of 5)"));
	CU_ASSERT_PTR_NULL(strstr(sc.log, "(2 of 5)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sc.log, "0 deferral(s) left"));
	/* A deadline earlier than the window bounds it the same way. */
	memset(&sc, 0, sizeof(sc));
	sc.sessions = 1;
	sc.defer_at[0] = 1;
	CU_ASSERT_EQUAL(run_notice(&n, 0, 500, &err), 0);
	CU_ASSERT_PTR_NULL(strstr(sc.log, "deferred"));
	CU_ASSERT_EQUAL(sc.now, 120);
}

TEST_CASE(notice_without_users_goes_ahead)
{
	struct job_notice n = { 300, 60, "Restart.", 2, 1800, NULL };
	struct reimage_error err = { 0 };
	memset(&sc, 0, sizeof(sc));
	CU_ASSERT_EQUAL(run_notice(&n, 0, 0, &err), 0);
	CU_ASSERT_EQUAL(sc.now, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(sc.log, "no user is logged in"));
}

TEST_CASE(inhibitor_postpones_within_the_window)
{
	struct job_notice n = { 0, 60, "Restart.", 0, 1800, inhibitors };
	struct reimage_error err = { 0 };

	memset(&sc, 0, sizeof(sc));
	sc.inhibited_for = 3;
	CU_ASSERT_EQUAL(run_notice(&n, 0, 0, &err), 0);
	CU_ASSERT_EQUAL(sc.now, 180);
	CU_ASSERT_PTR_NOT_NULL(strstr(sc.log, "120 postponed: impress (pid 42) is running"));
	/* Never past the window: the job is skipped instead. */
	memset(&sc, 0, sizeof(sc));
	sc.inhibited_for = 100;
	CU_ASSERT_EQUAL(run_notice(&n, 200, 0, &err), -ETIME);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "postponed while impress (pid 42) ran, until the "
				      "window closed"));
	CU_ASSERT(sc.now <= 200);
}
