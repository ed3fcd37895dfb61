/*
 * test_store.c -- one fleet scenario on every kind of job store: a plain
 * directory, nginx (WebDAV), smbd (SMB share) and Ceph's RADOS Gateway
 * (S3: the image comes from the bucket too), each starting empty.
 * Three agents take a job in two waves, decided by the administrator's
 * `reimagectl wait -k`; the canary (pc-1) fails, the rollout halts and the two others are cancelled with their roots
 * untouched; the administrator stops the job, then waits on it.  Every
 * document the scenario needs (jobs, rollouts, waves, reports) is
 * written and read through the store's transport.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void canary_fails_then_stop(enum fleet_store kind)
{
	struct fleet f;
	char *before[4], *out = NULL;
	const int wave_of[4] = { 0, 0, 1, 1 };

	fleet_setup_store(&f, kind, 3, 0, "rollout: { waves = [ \"canary\", \"100%\" ]; "
			  "failure_budget = 0; };", NULL);
	for (int i = 1; i <= 3; i++)
		before[i] = root_manifest(i);
	break_agent(1);
	/* An empty store: submit makes its folders. */
	submit(&f, t_path("admin.key"), "--agents pc-1,pc-2,pc-3 --wave-group canary=pc-1");
	for (int i = 1; i <= 3; i++) {
		char *doc = store_read("jobs/pc-%d.job", i);
		CU_ASSERT_PTR_NOT_NULL(doc);
		free(doc);
	}
	/* The status page comes with the job, beside the reports. */
	char *page = store_read("status.html");
	CU_ASSERT_PTR_NOT_NULL(page && strstr(page, "<title>reimage fleet</title>"));
	free(page);
	CU_ASSERT_FATAL(run_fleet(&f, wave_of, 90));
	CU_ASSERT(job_state_is(1, "failed"));
	for (int i = 2; i <= 3; i++) {
		char *rep = job_report(i), *after = root_manifest(i);
		CU_ASSERT(job_state_is(i, "cancelled"));
		CU_ASSERT(rep && strstr(rep, "rollout halted: wave 1 (canary)"));
		CU_ASSERT(fixture_same(before[i], after, "root of an agent of a halted wave"));
		CU_ASSERT_EQUAL(access(t_path("pc-%d/root/.reimage/new", i), F_OK), -1);
		free(rep);
		free(after);
	}
	CU_ASSERT_EQUAL(ctl_rollout(&f, &out, "status"), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "rollout test-job: 2 wave(s), halted"));
	free(out);
	/* An agent no job targeted, known from the store's listing of
	 * reports/ alone: a directory, nginx's autoindex, the SMB folder,
	 * the bucket's ListObjectsV2. */
	char lone[256];
	snprintf(lone, sizeof(lone), "{\"agent\": \"pc-9\", \"job\": \"\", \"serial\": 0, "
		 "\"phase\": \"POLL\", \"state\": \"idle\", \"time\": %lld, \"version\": \"t\"}",
		 (long long)time(NULL));
	store_write("reports/pc-9.json", lone);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "%sagents -s %s", f.ctl, f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "pc-9 "));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "4 agent(s): 4 seen"));
	CU_ASSERT(out && !strstr(out, "gives no listing"));
	free(out);
	/* The same counts for Prometheus, which its own parser reads. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "%sagents -s %s --prometheus -t '%s' -q", f.ctl,
					   f.store, t_path("admin.pub")), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_job_agents{job=\"test-job\",state=\"failed\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_job_agents{job=\"test-job\",state=\"cancelled\"} 2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_rollout_wave{job=\"test-job\",wave=\"1\","
				      "name=\"canary\",state=\"halted\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_rollout_wave_agents{job=\"test-job\",wave=\"1\","
				      "outcome=\"failed\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_rollout_wave{job=\"test-job\",wave=\"2\","
				      "name=\"100%\",state=\"halted\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_rollout_wave_budget_percent{job=\"test-job\","
				      "wave=\"1\"} 0\n"));
	free(out);
	/* Standard output alone, read by Debian's python3-prometheus-client
	 * (tests/deps.sh; not a pyenv python's). */
	CU_ASSERT_EQUAL(t_sh("'%s/reimagectl' %sagents -s %s --prometheus -t '%s' 2>/dev/null | "
			     "/usr/bin/python3 -c 'import sys; from prometheus_client.parser import "
			     "text_string_to_metric_families as p; f = list(p(sys.stdin.read())); "
			     "assert len(f) >= 8, f'", t_bin_dir(), f.ctl, f.store,
			     t_path("admin.pub")), 0);
	/* stop withdraws every document from the store. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "%sstop -s %s -k '%s' -t '%s' test-job", f.ctl,
					   f.store, t_path("admin.key"), t_path("admin.pub")), 0);
	free(out);
	for (int i = 1; i <= 3; i++) {
		char *doc = store_read("jobs/pc-%d.job", i);
		CU_ASSERT_PTR_NULL(doc);
		free(doc);
	}
	/* wait reads every agent's report: the canary failed. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "%swait -s %s test-job --timeout 10 --interval 1",
					   f.ctl, f.store), 1);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "3 agent(s)"));
	free(out);
	for (int i = 1; i <= 3; i++)
		free(before[i]);
	fleet_stop(&f);
}

TEST_CASE(directory_canary_fails_then_stop)
{
	canary_fails_then_stop(STORE_DIR);
}

TEST_CASE(nginx_canary_fails_then_stop)
{
	canary_fails_then_stop(STORE_NGINX);
}

TEST_CASE(smbd_canary_fails_then_stop)
{
	canary_fails_then_stop(STORE_SMBD);
}

TEST_CASE(rgw_canary_fails_then_stop)
{
	canary_fails_then_stop(STORE_RGW);
}
