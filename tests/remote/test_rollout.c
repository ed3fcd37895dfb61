/*
 * test_rollout.c -- rollouts end to end: a real nginx job store and up to
 * 21 `reimage agent` processes on sandbox roots (fleet.h).  Waves advance
 * by the administrator's `reimagectl rollout advance`, which publishes
 * each decision signed; a wave over its failure budget
 * halts the rollout; `reimagectl stop` cancels every agent that has not
 * swapped; windows (past, and stage early then swap inside); a staged job
 * that a reboot does not apply; a user who defers from a terminal (a pty
 * the sandbox backend writes to); an inhibitor that postpones.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "fleet.h"
#include "gate.h"
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A number field of a JSON document written by jansson ("name": 123). */
static long long field(const char *doc, const char *name)
{
	char key[64];
	snprintf(key, sizeof(key), "\"%s\": ", name);
	const char *p = doc ? strstr(doc, key) : NULL;
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* wave: 0 for the first, which the store numbers 1. */
static char *wave_doc(int wave)
{
	return store_read("rollouts/test-job/wave-%d.json", wave + 1);
}

/* 1 if wave's document says it committed. */
static int wave_committed(int wave)
{
	char *doc = wave_doc(wave);
	int ok = doc && strstr(doc, "\"state\": \"committed\"");
	free(doc);
	return ok;
}

static char *agents_list(int n)
{
	static char list[1024];
	size_t len = 0;
	list[0] = '\0';
	for (int i = 1; i <= n; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%spc-%d", i > 1 ? "," : "", i);
	return list;
}

/* n agents and job_extra, their roots' manifests in before[1..n] (if not
 * NULL), the job submitted to all of them in order. */
static void rollout_submit(struct fleet *f, int n, const char *job_extra, char **before)
{
	char how[1100];
	fleet_setup(f, n, 0, job_extra);
	for (int i = 1; before && i <= n; i++)
		before[i] = root_manifest(i);
	snprintf(how, sizeof(how), "--agents %s", agents_list(n));
	submit(f, t_path("admin.key"), how);
}

TEST_CASE(waves_progress_within_budget)
{
	struct fleet f;
	char *out = NULL;
	/* 21 agents: 3, 8 and 10; one of wave 2 fails, within its 20%. */
	rollout_submit(&f, 21, "rollout: { waves = [ \"10%\", \"50%\", \"100%\" ]; "
		       "failure_budget = 20; };", NULL);
	break_agent(5);
	/* Each wave starts only after the one before it committed. */
	int wave_of[22];
	for (int i = 1; i <= 21; i++)
		wave_of[i] = i <= 3 ? 0 : i <= 11 ? 1 : 2;
	CU_ASSERT_FATAL(run_fleet(&f, wave_of, 150));
	long long decided[3];
	for (int w = 0; w < 3; w++) {
		char *doc = wave_doc(w);
		CU_ASSERT(wave_committed(w));
		decided[w] = field(doc, "decided");
		free(doc);
	}
	CU_ASSERT(decided[0] <= decided[1] && decided[1] <= decided[2]);
	for (int i = 1; i <= 21; i++) {
		CU_ASSERT(i == 5 ? job_state_is(i, "failed") : job_state_is(i, "committed"));
		CU_ASSERT(i == 5 ? !is_new_image(i) : is_new_image(i));
	}
	CU_ASSERT_EQUAL(ctl_rollout(&f, &out, "status"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "2     50%               8 committed          7      1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "rollout test-job: 3 wave(s)\n"));
	free(out);
	/* One agent failed: wait says so. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 10", f.store), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "21 agent(s): 20 committed, 1 failed"));
	free(out);
	server_stop(f.ng.pid);
}

TEST_CASE(wave_over_budget_halts_the_rollout)
{
	struct fleet f;
	char *before[MAX_AGENTS + 1], *out = NULL;
	/* 20 agents: 5, then 15; two failures in the first wave are 40%. */
	rollout_submit(&f, 20, "rollout: { waves = [ \"25%\", \"100%\" ]; failure_budget = 20; };",
		       before);
	break_agent(2);
	break_agent(4);
	int wave_of[21];
	for (int i = 1; i <= 20; i++)
		wave_of[i] = i <= 5 ? 0 : 1;
	CU_ASSERT_FATAL(run_fleet(&f, wave_of, 120));
	for (int i = 6; i <= 20; i++) {
		CU_ASSERT(job_state_is(i, "cancelled"));
		char *rep = job_report(i), *after = root_manifest(i);
		CU_ASSERT(rep && strstr(rep, "rollout halted: wave 1 (25%): 2 of 5 failed or rolled "
					"back, above its failure budget of 20%"));
		CU_ASSERT(fixture_same(before[i], after, "root of an agent of a halted wave"));
		CU_ASSERT_EQUAL(access(t_path("pc-%d/root/.reimage/new", i), F_OK), -1);
		free(rep);
		free(after);
	}
	for (int i = 1; i <= 20; i++)
		free(before[i]);
	CU_ASSERT_EQUAL(ctl_rollout(&f, &out, "status"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "halted"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "rollout test-job: 2 wave(s), halted"));
	free(out);
	server_stop(f.ng.pid);
}

TEST_CASE(stop_cancels_every_agent_not_swapped)
{
	struct fleet f;
	char *before[MAX_AGENTS + 1], *out = NULL;
	/* pc-1 is the first wave; the 19 others stage early and wait for it. */
	rollout_submit(&f, 20, "rollout: { waves = [ \"5%\", \"100%\" ]; }; stage_early = true;",
		       before);
	for (int i = 1; i <= 20; i++)
		f.pid[i] = agent_start(i, 0);
	/* pc-1 swaps and "reboots"; it is not started again yet. */
	CU_ASSERT_EQUAL(agent_wait(f.pid[1], 60), 0);
	CU_ASSERT(is_new_image(1));
	for (int i = 2; i <= 20; i++)
		CU_ASSERT(report_shows(i, "waiting for wave 2 (100%) to open", "\"WINDOW\"", 60));
	for (int i = 2; i <= 20; i++)
		CU_ASSERT_EQUAL(access(t_path("pc-%d/root/.reimage/new/NEW-IMAGE", i), F_OK), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "stop -s %s -k %s -t %s test-job", f.store,
					   t_path("admin.key"), t_path("admin.pub")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pc-1: already swapped (pending): goes on"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "20 document(s) withdrawn"));
	free(out);
	/* Every other agent aborts, removes its staging, reports "cancelled". */
	for (int i = 2; i <= 20; i++) {
		/* By the withdrawn document or the stopped wave, whichever it saw first. */
		CU_ASSERT(report_shows(i, "\"cancelled\"", "stopped", 30));
		kill(f.pid[i], SIGTERM);
		CU_ASSERT_EQUAL(agent_wait(f.pid[i], 15), 0);
		char *after = root_manifest(i);
		CU_ASSERT(fixture_same(before[i], after, "root after a stop"));
		CU_ASSERT_EQUAL(access(t_path("pc-%d/root/.reimage/new", i), F_OK), -1);
		free(after);
	}
	/* The swapped machine goes on: its new image commits. */
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(job_state_is(1, "committed"));
	CU_ASSERT_EQUAL(ctl_rollout(&f, &out, "status"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "stopped"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "rollout stopped by the administrator"));
	free(out);
	for (int i = 1; i <= 20; i++)
		free(before[i]);
	server_stop(f.ng.pid);
}

/* ------------------------------------------------- cost per agent */

static int log_port;  /* the nginx whose access log requests() counts */

/* Requests nginx has logged, the counter's own markers left out.  nginx
 * writes a request's line only after sending its answer, so a client may
 * have the answer before the line is written: a marker request, answered
 * by the same single worker after every earlier request was finished,
 * waited for in the log (bounded), makes the count whole. */
static long requests(void)
{
	static int k;
	char marker[64], *log = NULL;
	long n = 0;

	snprintf(marker, sizeof(marker), "/count-marker-%d", ++k);
	CU_ASSERT_EQUAL(t_sh("curl -s -o /dev/null 'http://127.0.0.1:%d%s'", log_port, marker), 0);
	for (int i = 0; i < 1000; i++, usleep(10000)) {
		log = t_read(t_path("nginx/access.log"));
		if (log && strstr(log, marker))
			break;
		free(log);
		log = NULL;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	for (char *line = log, *end; *line; line = end + 1) {
		if (!(end = strchr(line, '\n')))
			break;
		*end = '\0';
		n += strstr(line, "/count-marker-") == NULL;
	}
	free(log);
	return n;
}

static void quiet_report(void *arg, const char *phase, const char *state, const char *message)
{
	(void)phase, (void)state, (void)message;
	++*(int *)arg;
}

/* Each agent of wave 2 of an n-agent rollout ("10%", "100%") decides
 * once whether it may start, in this process as the agent does
 * (gate_may_start with its own state): 1 if all answered want.  *ret
 * counts the requests it took. */
static int polls(const struct agent_conf *ac, struct registry *reg, long long serial, int from,
		 int n, int want, long *ret)
{
	static const volatile sig_atomic_t no_signal = 0;
	struct job job = { .id = "test-job", .serial = serial, .wave = 1 };
	long before = requests();
	int said = 0, ok = 1;

	for (int i = from; i <= n; i++) {
		struct gate g = { .reg = reg, .ac = ac, .job = &job, .signalled = &no_signal,
				  .report = quiet_report, .arg = &said };
		struct reimage_error e = { 0 };
		int r = gate_may_start(&g, &e);
		if (r != want) {
			fprintf(stderr, "m%d: %d (%s), not %d\n", i, r, e.msg, want);
			ok = 0;
		}
	}
	*ret = requests() - before;
	return ok;
}

/* Measure requests per agent-poll and per administrator's pass for a
 * rollout of n agents, the first wave's all committed (the job id
 * submitted again each time, on purpose). */
static void rollout_cost(struct fleet *f, const struct agent_conf *ac, struct registry *reg,
			 int n, double *ret_poll, double *ret_pass)
{
	char list[8192], *out = NULL;
	size_t len = 0;
	int first = (n * 10 + 99) / 100;
	long waiting, pass, open;
	long long serial = 0;

	for (int i = 1; i <= n; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%sm%d", i > 1 ? "," : "", i);
	CU_ASSERT_FATAL(len < sizeof(list));
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&out, "submit -s %s -k %s %s --agents %s --reuse",
						 f->store, t_path("admin.key"), t_path("job.conf"),
						 list), 0);
	const char *s = out ? strstr(out, "job test-job: serial ") : NULL;
	CU_ASSERT_FATAL(s != NULL);
	serial = strtoll(s + strlen("job test-job: serial "), NULL, 10);
	free(out);
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && mkdir -p '%s'",
				   t_path("www/dav/store/reports/test-job"),
				   t_path("www/dav/store/reports/test-job")), 0);
	for (int i = 1; i <= first; i++) {
		char rep[256];
		snprintf(rep, sizeof(rep), "{\"agent\": \"m%d\", \"job\": \"test-job\", \"serial\": "
			 "%lld, \"phase\": \"COMMIT\", \"state\": \"committed\", \"time\": 1}", i,
			 serial);
		t_write(t_path("www/dav/store/reports/test-job/m%d.json", i), rep);
	}
	/* Wave 2 waits: its first wave is decided by nobody but the admin. */
	CU_ASSERT(polls(ac, reg, serial, first + 1, n, 0, &waiting));
	long before = requests();
	CU_ASSERT_EQUAL(ctl_rollout(f, &out, "advance"), 0);
	pass = requests() - before;
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "rollout test-job: wave 2 is open"));
	free(out);
	CU_ASSERT(polls(ac, reg, serial, first + 1, n, 1, &open));
	*ret_poll = (double)(waiting + open) / (2.0 * (n - first));
	*ret_pass = (double)pass / n;
	fprintf(stderr, "rollout of %d agents: %.2f request(s) per agent-poll (%ld waiting, %ld "
		"open, %d polls each), the administrator's pass %ld requests (%.2f per agent)\n",
		n, *ret_poll, waiting, open, n - first, pass, *ret_pass);
}

/* An agent's poll in a rollout costs the same whatever the fleet's size
 * (it read its whole wave's reports before: n^2 requests a wave); the
 * administrator decides each wave once, for a fixed cost per agent. */
TEST_CASE(poll_cost_is_flat_at_10_100_1000_agents)
{
	static const int sizes[] = { 10, 100, 1000 };
	struct reimage_error err = { 0 };
	struct agent_conf ac;
	struct registry reg;
	struct fleet f;
	double poll[3], pass[3];

	fleet_setup(&f, 1, 0, "rollout: { waves = [ \"10%\", \"100%\" ]; };");
	log_port = f.ng.port;
	CU_ASSERT_EQUAL_FATAL(agent_conf_load(&ac, agent_file(1), &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_init(&reg, ac.plugin_path, &err), 0);
	for (int k = 0; k < 3; k++)
		rollout_cost(&f, &ac, &reg, sizes[k], &poll[k], &pass[k]);
	/* One GET of the agent's own wave document, at every size. */
	for (int k = 0; k < 3; k++)
		CU_ASSERT_DOUBLE_EQUAL(poll[k], 1.0, 0.001);
	/* The pass: one read per agent of the open waves, plus a few. */
	for (int k = 0; k < 3; k++)
		CU_ASSERT(pass[k] >= 1.0 && pass[k] <= 1.0 + 20.0 / sizes[k]);
	registry_fini(&reg);
	agent_conf_free(&ac);
	server_stop(f.ng.pid);
}

/* Whoever can write to the store cannot open a wave: wave 2's signed
 * state edited from "waiting" to "open" is ignored, and the agent says so. */
TEST_CASE(edited_wave_state_is_not_followed)
{
	struct fleet f;
	char *doc, *p, *rep;

	fleet_setup(&f, 2, 0, "rollout: { waves = [ \"50%\", \"100%\" ]; };");
	char *before = root_manifest(2);
	submit(&f, t_path("admin.key"), "--agents pc-1,pc-2");
	doc = wave_doc(1);
	CU_ASSERT_FATAL(doc && (p = strstr(doc, "\"state\": \"waiting\"")));
	memcpy(p, "\"state\": \"open\"   ", 18);  /* same length, valid JSON */
	t_write(t_path("www/dav/store/rollouts/test-job/wave-2.json"), doc);
	free(doc);
	CU_ASSERT_EQUAL(agent_once(2), 0);
	CU_ASSERT(report_shows(2, "its state in the store does not verify and is ignored",
			       "the signature does not match", 1));
	rep = job_report(2);
	CU_ASSERT(rep && strstr(rep, "\"state\": \"scheduled\""));
	free(rep);
	char *after = root_manifest(2);
	CU_ASSERT(fixture_same(before, after, "root of an agent whose wave was forged open"));
	CU_ASSERT_EQUAL(access(t_path("pc-2/root/.reimage/new"), F_OK), -1);
	free(before);
	free(after);
	server_stop(f.ng.pid);
}

TEST_CASE(window_in_the_past_is_skipped)
{
	struct fleet f;
	char *before[3], *out = NULL;
	fleet_setup(&f, 2, 0, "at = \"2020-01-01T00:00:00Z\"; window = 3600; stage_early = true;");
	for (int i = 1; i <= 2; i++)
		before[i] = root_manifest(i);
	submit(&f, t_path("admin.key"), "--agents pc-1,pc-2");
	for (int i = 1; i <= 2; i++) {
		CU_ASSERT_EQUAL(agent_once(i), 0);
		CU_ASSERT(report_shows(i, "\"skipped\"", "its window passed before it could start", 1));
		char *after = root_manifest(i);
		CU_ASSERT(fixture_same(before[i], after, "root of a skipped job"));
		CU_ASSERT_EQUAL(access(t_path("pc-%d/root/.reimage/new", i), F_OK), -1);
		free(after);
		free(before[i]);
	}
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 10", f.store), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "skipped"));
	free(out);
	server_stop(f.ng.pid);
}

/* A job file whose window opens `in` seconds from now. */
static void window_job(char *buf, size_t len, int in, const char *extra)
{
	char at[64];
	time_t t = time(NULL) + in;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(buf, len, "at = \"%s\"; window = 120; stage_early = true; %s", at, extra);
}

TEST_CASE(stage_early_then_swap_in_the_window)
{
	struct fleet f;
	char job[512];
	window_job(job, sizeof(job), 6, "");
	time_t opens = time(NULL) + 6;
	fleet_setup(&f, 1, 0, job);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	/* Staged at once; the swap waits for the window. */
	CU_ASSERT(report_shows(1, "staged; the swap waits for its window at", "\"WINDOW\"", 30));
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/new/NEW-IMAGE"), F_OK), 0);
	CU_ASSERT(!is_new_image(1));
	CU_ASSERT(time(NULL) < opens);
	/* Inside the window: the swap and the "reboot". */
	CU_ASSERT_EQUAL(agent_wait(pid, 60), 0);
	CU_ASSERT(time(NULL) >= opens);
	CU_ASSERT(is_new_image(1));
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(job_state_is(1, "committed"));
	server_stop(f.ng.pid);
}

TEST_CASE(staged_job_is_not_applied_by_a_reboot)
{
	struct fleet f;
	char job[512];
	window_job(job, sizeof(job), 600, "");
	fleet_setup(&f, 1, 0, job);
	char *before = root_manifest(1);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	CU_ASSERT_FATAL(report_shows(1, "staged; the swap waits for its window at", NULL, 30));
	/* An unrelated reboot (or power cut) while the staged job waits. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	/* The staging is removed, never swapped in; the job is reported. */
	CU_ASSERT(report_shows(1, "\"failed\"", "interrupted before its swap", 1));
	char *after = root_manifest(1);
	CU_ASSERT(fixture_same(before, after, "root after a reboot of a staged job"));
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/new"), F_OK), -1);
	CU_ASSERT(!is_new_image(1));
	free(before);
	free(after);
	server_stop(f.ng.pid);
}

/* A simulated user session: a pty whose slave stays open (the user's
 * shell would hold it); the test reads what is written to the user. */
struct session {
	int master, slave;
	char name[64];
	char seen[16384];
	size_t len;
};

static void session_open(struct session *s)
{
	memset(s, 0, sizeof(*s));
	s->master = posix_openpt(O_RDWR | O_NOCTTY);
	CU_ASSERT_FATAL(s->master >= 0 && grantpt(s->master) == 0 && unlockpt(s->master) == 0);
	snprintf(s->name, sizeof(s->name), "%s", ptsname(s->master));
	s->slave = open(s->name, O_RDWR | O_NOCTTY);
	CU_ASSERT_FATAL(s->slave >= 0);
}

/* Read what the session shows, up to ms; 1 once it holds text. */
static int session_shows(struct session *s, const char *text, int ms)
{
	for (int waited = 0; waited <= ms; waited += 100) {
		struct pollfd p = { s->master, POLLIN, 0 };
		while (poll(&p, 1, 0) == 1 && s->len < sizeof(s->seen) - 1) {
			ssize_t n = read(s->master, s->seen + s->len, sizeof(s->seen) - 1 - s->len);
			if (n <= 0)
				break;
			s->len += (size_t)n;
			s->seen[s->len] = '\0';
		}
		if (strstr(s->seen, text))
			return 1;
		usleep(100000);
	}
	return 0;
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

TEST_CASE(user_defers_from_a_terminal)
{
	struct fleet f;
	struct session s;
	char agent_extra[256];

	session_open(&s);
	snprintf(agent_extra, sizeof(agent_extra), "sandbox: { terminals = [ \"%s\" ]; };", s.name);
	fleet_setup_with(&f, 1, 0, "notice: { seconds = 3; repeat = 1; max_deferrals = 1; "
			 "defer_seconds = 3; message = \"Lab PCs get the spring image.\"; };",
			 agent_extra);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	/* The notice reaches the session, with the countdown and the offer. */
	CU_ASSERT_FATAL(session_shows(&s, "Type \"defer\" and Enter here to postpone it by 3 s", 30000));
	CU_ASSERT_PTR_NOT_NULL(strstr(s.seen, "Lab PCs get the spring image."));
	CU_ASSERT_PTR_NOT_NULL(strstr(s.seen, "It begins in 3 s"));
	int64_t asked = (int64_t)time(NULL);
	CU_ASSERT_EQUAL_FATAL(write(s.master, "defer\n", 6), 6);
	/* Honoured: no QUIESCE before the deferral and a new countdown. */
	CU_ASSERT_EQUAL(agent_wait(pid, 60), 0);
	CU_ASSERT(time(NULL) - asked >= 3 + 3 - 1);
	CU_ASSERT(is_new_image(1));
	/* The countdown after it offers no more deferral. */
	CU_ASSERT(session_shows(&s, "It begins in a moment", 2000));
	CU_ASSERT_EQUAL(count(s.seen, "Type \"defer\""), 1);
	/* Every notice and the deferral were reported. */
	char *log = t_read(t_path("pc-1/agent.log"));
	char who[160];
	snprintf(who, sizeof(who), "WINDOW running: deferred by a user on %s (1 of 1) for 3 s", s.name);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, who));
	CU_ASSERT(count(log, "WINDOW running: notice to 1 session(s) (tty:") >= 4);
	CU_ASSERT(strstr(log, "deferred by") < strstr(log, "phase QUIESCE"));
	free(log);
	char *rec = t_read(t_path("pc-1/root/.reimage/sandbox.log"));
	CU_ASSERT(count(rec, "notify users:") >= 4);
	free(rec);
	close(s.slave);
	close(s.master);
	server_stop(f.ng.pid);
}

TEST_CASE(inhibitor_postpones_the_swap)
{
	struct fleet f;
	char name[32], job[256], bin[1024];

	/* A "presentation": a process with a name of its own. */
	snprintf(name, sizeof(name), "rimg-inh-%d", (int)getpid() % 100000);
	snprintf(bin, sizeof(bin), "%s", t_path("%s", name));
	CU_ASSERT_EQUAL_FATAL(t_sh("cp /bin/sleep '%s'", bin), 0);
	pid_t inh = fork();
	if (inh == 0) {
		execl(bin, name, "60", (char *)NULL);
		_exit(127);
	}
	snprintf(job, sizeof(job), "notice: { seconds = 0; repeat = 1; inhibitors = [ \"%s\" ]; };",
		 name);
	fleet_setup(&f, 1, 0, job);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	CU_ASSERT(report_shows(1, "postponed:", name, 30));
	usleep(1500000);
	CU_ASSERT(!is_new_image(1));
	/* The presentation ends: the swap goes ahead. */
	kill(inh, SIGKILL);
	waitpid(inh, NULL, 0);
	CU_ASSERT_EQUAL(agent_wait(pid, 30), 0);
	CU_ASSERT(is_new_image(1));
	server_stop(f.ng.pid);
}

TEST_CASE(reimagectl_rollout_errors)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "rollout --help"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(status|advance) -s STORE -t PUBLIC.pem"));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "rollout pause -s %s test-job", t_path("store")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown action 'pause'"));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "stop --help"), 0);
	free(out);
	/* A job without waves has no rollout to show. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "rollout status -s %s test-job", t_path("store")), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "job test-job has no waves"));
	free(out);
	/* Waves need per-agent documents, and every agent in a wave. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "keygen '%s' '%s'", t_path("k"), t_path("k.pub")), 0);
	free(out);
	fixture_job(t_path("job.conf"), "/i.tar", NULL, "rollout: { waves = [ \"canary\", \"100%\" ]; "
		    "wave_timeout = 900; };");
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "submit -s %s -k '%s' '%s' --group lab",
					   t_path("store"), t_path("k"), t_path("job.conf")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs --agents"));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "submit -s %s -k '%s' '%s' --agents a,b",
					   t_path("store"), t_path("k"), t_path("job.conf")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no --wave-group canary="));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "submit -s %s -k '%s' '%s' --agents a,b,c "
					   "--wave-group canary=b", t_path("store"), t_path("k"),
					   t_path("job.conf")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "wave 1 (canary): 1 agent(s)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "wave 2 (100%): 2 agent(s)"));
	free(out);
	char *b = t_read(t_path("store/rollouts/test-job/wave-1.agents"));
	CU_ASSERT(b && !strcmp(b, "[\"b\"]"));
	free(b);
	/* Each wave's signed state carries the deadline's length. */
	b = t_read(t_path("store/rollouts/test-job/wave-1.json"));
	CU_ASSERT(b && !strncmp(b, "reimage-signed-wave 1\n", 22) && strstr(b, "\"timeout\": 900"));
	free(b);
	/* Wave documents are read only through a trusted key... */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "rollout status -s %s test-job", t_path("store")), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "wave-1.json: signed with key"));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "rollout status -s %s -t %s test-job",
					   t_path("store"), t_path("k.pub")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "waiting"));
	free(out);
	/* ...and decided only with the private one. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "rollout advance -s %s -t %s test-job",
					   t_path("store"), t_path("k.pub")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "the private key is required (-k)"));
	free(out);
	/* A stop without the keys still withdraws every document. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "stop -s %s test-job", t_path("store")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "waves not marked stopped"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "3 document(s) withdrawn"));
	CU_ASSERT_EQUAL(access(t_path("store/jobs/a.job"), F_OK), -1);
	free(out);
}

/* Start agent i with its clock 1000 days behind (libfaketime). */
static pid_t agent_start_behind(int i)
{
	faketime_set("-1000d");
	pid_t pid = agent_start(i, 0);
	faketime_clear();
	return pid;
}

TEST_CASE(agent_follows_the_store_clock)
{
	struct fleet f;
	char job[512];

	/* The window opened 5 s ago by the store's (and the true) clock. */
	window_job(job, sizeof(job), -5, "");
	fleet_setup(&f, 2, 0, job);
	CU_ASSERT_EQUAL_FATAL(t_sh("echo 'clock = \"store\";' >> '%s'", agent_file(1)), 0);
	submit(&f, t_path("admin.key"), "--agents pc-1,pc-2");
	pid_t p1 = agent_start_behind(1), p2 = agent_start_behind(2);
	/* pc-1 follows the store's Date and runs; pc-2 believes its own
	 * clock: it stages early and waits for a window 1000 days ahead. */
	/* Its exit status is not checked: libfaketime itself sometimes aborts
	 * the process as it exits ("The futex facility returned an unexpected
	 * error code"), after the agent's work is done. */
	CU_ASSERT(agent_wait(p1, 60) >= 0);
	CU_ASSERT(report_shows(1, "\"pending\"", "swapped, rebooting", 1));
	CU_ASSERT(is_new_image(1));
	char *log = t_read(t_path("pc-1/agent.log"));
	CU_ASSERT(log && strstr(log, "clock: following the job store's, 864"));
	free(log);
	CU_ASSERT(report_shows(2, "staged; the swap waits for its window at", NULL, 30));
	CU_ASSERT(!is_new_image(2));
	kill(p2, SIGTERM);
	CU_ASSERT(agent_wait(p2, 15) >= 0);  /* ended; its status: see above */
	server_stop(f.ng.pid);
}
