/*
 * test_ctl.c -- what reimagectl tells about a job in a store (a
 * directory): reports of an older run under the same job id do not
 * count, a group's unknown agents are not "0 agents, all done", each
 * outcome is counted as what it is, waves are numbered from 1 in files
 * and messages alike, a second stop says nothing was left, and --json
 * gives documents a tool can read (parsed here with python3).  The
 * agents' reports are written by the test, as agents would.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void setup(const char *extra)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&out, "keygen '%s' '%s'", t_path("k"),
						 t_path("k.pub")), 0);
	free(out);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("store")), 0);
	fixture_job(t_path("job.conf"), "/nonexistent/i.tar", NULL, extra);
}

/* An agent's report on test-job, as the agent writes it. */
static void report(const char *agent, long long serial, const char *state)
{
	char text[1024];
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("store/reports/test-job")), 0);
	snprintf(text, sizeof(text), "{\"agent\": \"%s\", \"groups\": [], \"job\": \"test-job\", "
		 "\"serial\": %lld, \"phase\": \"%s\", \"state\": \"%s\", \"time\": %lld}\n",
		 agent, serial, !strcmp(state, "committed") ? "COMMIT" : "STAGE", state,
		 (long long)time(NULL));
	t_write(t_path("store/reports/test-job/%s.json", agent), text);
}

/* The administrator's keys: wave documents are signed and verified. */
static const char *keys(void)
{
	static char k[2048];
	snprintf(k, sizeof(k), "-k '%s' -t '%s'", t_path("k"), t_path("k.pub"));
	return k;
}

static int ctl(char **out, const char *fmt, const char *tail)
{
	char args[2048];
	snprintf(args, sizeof(args), fmt, t_path("store"));
	return fixture_reimagectl(out, "%s %s", args, tail ? tail : "");
}

static int submit(char **out, const char *how)
{
	return fixture_reimagectl(out, "submit -s '%s' -k '%s' '%s' %s", t_path("store"),
				  t_path("k"), t_path("job.conf"), how);
}

TEST_CASE(reused_job_id_and_serial)
{
	char *out = NULL;
	setup(NULL);
	CU_ASSERT_EQUAL(submit(&out, "--agents pc-1"), 0);
	free(out);
	report("pc-1", 7, "committed");
	CU_ASSERT_EQUAL(ctl(&out, "wait -s '%s' test-job --timeout 5 --interval 1", NULL), 0);
	free(out);
	/* The same id again: refused, with the way to do it on purpose. */
	CU_ASSERT_EQUAL(submit(&out, "--agents pc-1"), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "job id test-job was already submitted"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--reuse"));
	free(out);
	CU_ASSERT_EQUAL(submit(&out, "--agents pc-1 --reuse"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "serial 8"));
	free(out);
	/* The committed report is serial 7's: this run has not finished. */
	CU_ASSERT_EQUAL(ctl(&out, "wait -s '%s' test-job --timeout 1 --interval 1", NULL), 4);
	free(out);
	CU_ASSERT_EQUAL(ctl(&out, "status -s '%s' test-job", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "job test-job, serial 8\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no-report"));
	free(out);
	report("pc-1", 8, "committed");
	CU_ASSERT_EQUAL(ctl(&out, "wait -s '%s' test-job --timeout 5 --interval 1", NULL), 0);
	free(out);
}

TEST_CASE(group_without_members)
{
	char *out = NULL;
	setup(NULL);
	CU_ASSERT_EQUAL(submit(&out, "--group lab"), 0);
	free(out);
	CU_ASSERT_EQUAL(ctl(&out, "status -s '%s' test-job", NULL), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "submitted to group lab without --members"));
	free(out);
	CU_ASSERT_EQUAL(ctl(&out, "wait -s '%s' test-job --timeout 1", NULL), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "which agents run it is unknown"));
	free(out);
	/* Withdrawing needs no agent list. */
	CU_ASSERT_EQUAL(ctl(&out, "cancel -s '%s' test-job", NULL), 0);
	free(out);
}

TEST_CASE(outcomes_counted_as_what_they_are)
{
	char *out = NULL;
	setup(NULL);
	CU_ASSERT_EQUAL(submit(&out, "--agents a,b,c,d,e,f"), 0);
	free(out);
	report("a", 7, "committed");
	report("b", 7, "failed");
	report("c", 7, "cancelled");
	report("d", 7, "skipped");
	report("e", 7, "refused");
	CU_ASSERT_EQUAL(ctl(&out, "status -s '%s' test-job", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "6 agent(s): 1 committed, 1 failed, 1 cancelled, "
				      "1 skipped, 1 refused, 1 unfinished\n"));
	free(out);
	report("f", 7, "rolled-back");
	CU_ASSERT_EQUAL(ctl(&out, "wait -s '%s' test-job --timeout 5 --interval 1", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "5 of 6 agent(s) did not commit (6 agent(s): 1 "
				      "committed, 1 failed, 1 rolled back, 1 cancelled"));
	free(out);
	/* --json: the same counts, each agent's state and outcome. */
	t_write(t_path("check.py"),
		"import json, sys\n"
		"d = json.load(sys.stdin)\n"
		"assert d['job'] == 'test-job' and d['serial'] == 7 and d['group'] is None, d\n"
		"assert d['counts'] == {'committed': 1, 'failed': 1, 'rolled_back': 1, "
		"'cancelled': 1, 'skipped': 1, 'refused': 1, 'unfinished': 0}, d['counts']\n"
		"a = {x['agent']: x for x in d['agents']}\n"
		"assert a['c']['state'] == 'cancelled' and a['c']['outcome'] == 'cancelled'\n"
		"assert a['f']['outcome'] == 'rolled_back' and a['a']['phase'] == 'COMMIT'\n"
		"assert set(a['a']) >= {'progress', 'time', 'age', 'error', 'message'}\n");
	CU_ASSERT_EQUAL(t_sh("'%s/reimagectl' status -s '%s' test-job --json | python3 '%s'",
			     t_bin_dir(), t_path("store"), t_path("check.py")), 0);
}

TEST_CASE(waves_numbered_from_1_and_second_stop)
{
	char *out = NULL;
	setup("rollout: { waves = [ \"50%\", \"100%\" ]; failure_budget = 0; };");
	CU_ASSERT_EQUAL(submit(&out, "--agents a,b"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "wave 1 (50%): 1 agent(s)"));
	free(out);
	/* The files say wave 1 and 2, as the messages do. */
	char *w1 = t_read(t_path("store/rollouts/test-job/wave-1.json"));
	CU_ASSERT(w1 && strstr(w1, "\"wave\": 1,") && strstr(w1, "\"state\": \"open\""));
	free(w1);
	CU_ASSERT_EQUAL(access(t_path("store/rollouts/test-job/wave-2.agents"), F_OK), 0);
	CU_ASSERT_EQUAL(access(t_path("store/rollouts/test-job/wave-0.json"), F_OK), -1);
	/* A cancelled agent is no failure: the wave stays within a 0% budget. */
	report("a", 7, "cancelled");
	CU_ASSERT_EQUAL(ctl(&out, "rollout status -s '%s' test-job", keys()), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1     50%               1 committed          0      0 "
				      "        1"));
	free(out);
	CU_ASSERT_EQUAL(ctl(&out, "stop -s '%s' test-job", keys()), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "2 document(s) withdrawn, 2 wave(s) stopped"));
	free(out);
	CU_ASSERT_EQUAL(ctl(&out, "stop -s '%s' test-job", keys()), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nothing left to withdraw"));
	free(out);
	CU_ASSERT_EQUAL(ctl(&out, "cancel -s '%s' test-job", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nothing left to withdraw"));
	free(out);
	/* Wave 2 never opened: it did not run, it did not fail. */
	CU_ASSERT_EQUAL(ctl(&out, "rollout status -s '%s' test-job", keys()), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "2     100%              1 not-run"));
	free(out);
	t_write(t_path("check.py"),
		"import json, sys\n"
		"d = json.load(sys.stdin)\n"
		"assert d['job'] == 'test-job' and d['halted'] is True, d\n"
		"w = d['waves']\n"
		"assert [x['wave'] for x in w] == [1, 2], w\n"
		"assert w[0]['ran'] is True and w[0]['cancelled'] == 1 and w[0]['failed'] == 0, w\n"
		"assert w[1]['ran'] is False and w[1]['state'] == 'stopped', w\n"
		"assert set(w[0]) >= {'name', 'agents', 'committed', 'skipped', 'refused', "
		"'unfinished', 'budget', 'reason'}\n");
	CU_ASSERT_EQUAL(t_sh("'%s/reimagectl' rollout status -s '%s' %s test-job --json | "
			     "python3 '%s'", t_bin_dir(), t_path("store"), keys(),
			     t_path("check.py")), 0);
}

/* sign refuses what every agent would refuse: no targets, no not_after;
 * it adds signed_at where the job has none. */
TEST_CASE(sign_refuses_unusable_job)
{
	char *out = NULL;
	setup(NULL);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "sign -k '%s' '%s' -o '%s'", t_path("k"),
					   t_path("job.conf"), t_path("job.signed")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs a `targets` group and `not_after`"));
	free(out);
	CU_ASSERT_EQUAL(access(t_path("job.signed"), F_OK), -1);
	fixture_job(t_path("job.conf"), "/nonexistent/i.tar", NULL,
		    "targets: { agents = [ \"pc-1\" ]; };");
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "sign -k '%s' '%s' -o '%s'", t_path("k"),
					   t_path("job.conf"), t_path("job.signed")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "needs `not_after`"));
	free(out);
	fixture_job(t_path("job.conf"), "/nonexistent/i.tar", NULL,
		    "targets: { agents = [ \"pc-1\" ]; };\nnot_after = \"2099-01-01T00:00:00Z\";");
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "sign -k '%s' '%s' -o '%s'", t_path("k"),
					   t_path("job.conf"), t_path("job.signed")), 0);
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "verify -t '%s' '%s'", t_path("k.pub"),
					   t_path("job.signed")), 0);
	/* Signed now, as submit would have it (the job file had no signed_at). */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "signed_at 20"));
	free(out);
	/* A signed_at the job gives is kept. */
	fixture_job(t_path("job.conf"), "/nonexistent/i.tar", NULL,
		    "targets: { agents = [ \"pc-1\" ]; };\nnot_after = \"2099-01-01T00:00:00Z\";\n"
		    "signed_at = \"2026-01-02T03:04:05Z\";");
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "sign -k '%s' '%s' -o '%s'", t_path("k"),
					   t_path("job.conf"), t_path("job.signed")), 0);
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "verify -t '%s' '%s'", t_path("k.pub"),
					   t_path("job.signed")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "signed_at 2026-01-02T03:04:05Z"));
	free(out);
}

/* A preserve item that matches nothing reaches the agent's report as a
 * warning (the agent runs once on a sandbox root, its store a directory). */
TEST_CASE(preserve_typo_in_report)
{
	char *out = NULL, text[4096];
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	fixture_new_tree(t_path("src"));
	fixture_pack(t_path("src"), t_path("image.tar.zst"), "zstd");
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL,
		    "preserve: { paths = [ \"srv/dtaa\" ]; };\nreboot = false;");
	snprintf(text, sizeof(text), "agent_id = \"pc-1\";\nroot = \"%s\";\nbackend = \"sandbox\";\n"
		 "state_dir = \"%s\";\nstore = \"%s\";\ntrusted_keys = [ \"%s\" ];\n",
		 t_path("root"), t_path("state"), t_path("store"), t_path("k.pub"));
	t_write(t_path("agent.conf"), text);
	CU_ASSERT_EQUAL_FATAL(submit(&out, "--agents pc-1"), 0);
	free(out);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "agent -c '%s' --once", t_path("agent.conf")), 0);
	free(out);
	char *rep = t_read(t_path("store/reports/test-job/pc-1.json"));
	CU_ASSERT(rep && strstr(rep, "\"warnings\": [") &&
		  strstr(rep, "preserve.paths item 'srv/dtaa' matches nothing"));
	free(rep);
}

/* A job id submitted again on purpose with fewer waves keeps none of the
 * old ones: rollout status shows the new rollout only. */
TEST_CASE(reuse_forgets_old_waves)
{
	char *out = NULL;
	setup("rollout: { waves = [ \"50%\", \"100%\" ]; };");
	CU_ASSERT_EQUAL(submit(&out, "--agents a,b"), 0);
	free(out);
	CU_ASSERT_EQUAL(access(t_path("store/rollouts/test-job/wave-2.json"), F_OK), 0);
	fixture_job(t_path("job.conf"), "/nonexistent/i.tar", NULL,
		    "rollout: { waves = [ \"100%\" ]; };");
	CU_ASSERT_EQUAL(submit(&out, "--agents a,b --reuse"), 0);
	free(out);
	CU_ASSERT_EQUAL(access(t_path("store/rollouts/test-job/wave-2.json"), F_OK), -1);
	CU_ASSERT_EQUAL(access(t_path("store/rollouts/test-job/wave-2.agents"), F_OK), -1);
	CU_ASSERT_EQUAL(ctl(&out, "rollout status -s '%s' test-job", keys()), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "rollout test-job: 1 wave(s)\n"));
	free(out);
}
