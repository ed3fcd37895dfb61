/*
 * test_fleet.c -- the remote flow end to end on one machine: a real nginx
 * on 127.0.0.1 is the job store (WebDAV PUT/DELETE) and the image server;
 * agents are separate `reimage agent` processes, each with its own
 * sandbox root and agent id (the sandbox backend records quiesce and
 * reboot); `reimagectl submit` and `wait` drive them.  A "reboot" is the
 * agent stopping after the swap and the test starting it again.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "http/servers.h"
#include "fleet.h"
#include "timestamp.h"
#include "when.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- cases */

static void reimage_all(struct fleet *f, const char *how)
{
	char *out = NULL;

	submit(f, t_path("admin.key"), how);
	for (int i = 1; i <= f->n; i++)
		f->pid[i] = agent_start(i, 0);
	/* Each agent stages, swaps and "reboots": it stops by itself. */
	for (int i = 1; i <= f->n; i++) {
		int r = agent_wait(f->pid[i], 120);
		if (r != 0)
			show_log(i);
		CU_ASSERT_EQUAL(r, 0);
		CU_ASSERT(is_new_image(i));
		char *rec = t_read(t_path("pc-%d/root/.reimage/sandbox.log", i));
		CU_ASSERT(rec && strstr(rec, "reboot"));
		free(rec);
	}
	/* Not committed before the new image's agent says so. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "status -s %s test-job", f->store), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pending"));
	CU_ASSERT_PTR_NULL(strstr(out, " committed "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ": 0 committed, "));
	free(out);
	/* The boot: each agent starts again, confirms and reports. */
	for (int i = 1; i <= f->n; i++)
		f->pid[i] = agent_start(i, 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 90 --interval 1", f->store), 0);
	char summary[128];
	snprintf(summary, sizeof(summary), "%d agent(s): %d committed\n", f->n, f->n);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, summary));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "running new image"));
	free(out);
	/* Agents poll with conditional requests: unchanged documents are 304s. */
	int conditional = 0;
	for (int k = 0; k < 100 && !conditional; k++, usleep(100000))
		conditional = t_sh("grep -q 'GET /dav/store/jobs/[^ ]* 304' '%s'",
				   t_path("nginx/access.log")) == 0;
	CU_ASSERT(conditional);
	/* SIGTERM stops each agent cleanly between polls. */
	for (int i = 1; i <= f->n; i++) {
		kill(f->pid[i], SIGTERM);
		CU_ASSERT_EQUAL(agent_wait(f->pid[i], 15), 0);
		CU_ASSERT_EQUAL(access(t_path("pc-%d/root/.reimage/old", i), F_OK), -1);
	}
}

TEST_CASE(reimaged_at_once)
{
	struct fleet f;
	fleet_setup(&f, 3, 0, NULL);
	reimage_all(&f, "--agents pc-1,pc-2,pc-3");
	/* Each agent left one report per job and one latest report. */
	for (int i = 1; i <= 3; i++) {
		char *rep = t_read(t_path("www/dav/store/reports/test-job/pc-%d.json", i));
		CU_ASSERT(rep && strstr(rep, "\"state\": \"committed\"") &&
			  strstr(rep, "\"serial\": 7"));
		free(rep);
	}
	server_stop(f.ng.pid);
}

TEST_CASE(group_document)
{
	struct fleet f;
	fleet_setup(&f, 2, 0, NULL);
	reimage_all(&f, "--group lab --members pc-1,pc-2");
	CU_ASSERT_EQUAL(access(t_path("www/dav/store/jobs/group-lab.job"), F_OK), 0);
	CU_ASSERT_NOT_EQUAL(access(t_path("www/dav/store/jobs/pc-1.job"), F_OK), 0);
	server_stop(f.ng.pid);
}

/* The agent refuses the published document; its report says why and the
 * root is untouched. */
static void expect_refusal(struct fleet *f, const char *reason)
{
	char *before = root_manifest(1), *after, *out = NULL;

	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"refused\"", reason, 1));
	after = root_manifest(1);
	CU_ASSERT(fixture_same(before, after, "root after a refused job"));
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/new"), F_OK), -1);
	/* wait ends with the refusal, exit 1. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 20 --interval 1", f->store), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "refused"));
	free(out);
	free(before);
	free(after);
}

TEST_CASE(forged_signature)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("'%s/reimagectl' keygen '%s' '%s' >/dev/null", t_bin_dir(),
				   t_path("mallory.key"), t_path("mallory.pub")), 0);
	submit(&f, t_path("mallory.key"), "--agents pc-1");
	expect_refusal(&f, "not among this agent's trusted_keys");
	server_stop(f.ng.pid);
}

TEST_CASE(altered_document)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	/* Someone with write access to the store changes the signed bytes
	 * (same length, so only the signature can tell). */
	CU_ASSERT_EQUAL_FATAL(t_sh("sed -i 's/\"test-job\"/\"test-jox\"/' '%s' && grep -q test-jox '%s'",
				   t_path("www/dav/store/jobs/pc-1.job"),
				   t_path("www/dav/store/jobs/pc-1.job")), 0);
	expect_refusal(&f, "signature does not match");
	server_stop(f.ng.pid);
}

TEST_CASE(expired_job)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, "not_after = \"2020-01-01T00:00:00Z\";");
	submit(&f, t_path("admin.key"), "--agents pc-1");
	expect_refusal(&f, "expired at 2020-01-01T00:00:00Z");
	server_stop(f.ng.pid);
}

TEST_CASE(job_for_another_agent)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	submit(&f, t_path("admin.key"), "--agents pc-9");
	/* pc-9's genuine document, put where pc-1 looks. */
	CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s'", t_path("www/dav/store/jobs/pc-9.job"),
				   t_path("www/dav/store/jobs/pc-1.job")), 0);
	CU_ASSERT(agent_once(1) == 0);
	CU_ASSERT(report_shows(1, "\"refused\"", "not for this agent (pc-1)", 1));
	CU_ASSERT(!is_new_image(1));
	server_stop(f.ng.pid);
}

TEST_CASE(replayed_serial)
{
	struct fleet f;
	char *out = NULL;
	fleet_setup(&f, 1, 0, NULL);
	submit(&f, t_path("admin.key"), "--agents pc-1 --serial 7");
	CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s'", t_path("www/dav/store/jobs/pc-1.job"),
				   t_path("old-doc")), 0);
	CU_ASSERT_EQUAL(agent_once(1), 0);  /* runs it and "reboots" */
	CU_ASSERT_EQUAL(agent_once(1), 0);  /* confirms */
	CU_ASSERT(report_shows(1, "\"committed\"", NULL, 1));
	/* The same signed document again, under a new job id in the store's
	 * index, and an older serial: both are replays. */
	CU_ASSERT_EQUAL(t_sh("sed -i 's/test-job/test-job2/' '%s'", t_path("job.conf")), 0);
	submit(&f, t_path("admin.key"), "--agents pc-1 --serial 5");
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"refused\"", "serial 5 is not above the last serial run "
			       "here (7)", 1));
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "status -s %s test-job2", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "refused"));
	free(out);
	server_stop(f.ng.pid);
}

TEST_CASE(restart_mid_staging)
{
	struct fleet f;
	char *out = NULL;
	fleet_setup(&f, 1, 1, NULL);
	char *before = root_manifest(1);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	CU_ASSERT_FATAL(report_shows(1, "\"STAGE\"", "\"running\"", 60));
	/* "STAGE running" is reported as the phase begins, before staging
	 * exists: wait for it (bounded) before the crash. */
	for (int i = 0; i < 600 && access(t_path("pc-1/root/.reimage/new"), F_OK) < 0; i++)
		usleep(100000);
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/new"), F_OK), 0);
	/* A crash (or power cut) while the image downloads. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* The restarted agent cleans up and reports the job failed. */
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"failed\"", "interrupted before its swap", 1));
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/new"), F_OK), -1);
	char *after = root_manifest(1);
	CU_ASSERT(fixture_same(before, after, "root after an interrupted staging"));
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 20 --interval 1", f.store), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 committed, 1 failed"));
	free(out);
	free(before);
	free(after);
	server_stop(f.ng.pid);
}

TEST_CASE(sigterm_cancels_before_swap)
{
	struct fleet f;
	fleet_setup(&f, 1, 1, NULL);
	char *before = root_manifest(1);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	CU_ASSERT_FATAL(report_shows(1, "\"STAGE\"", "\"running\"", 60));
	kill(pid, SIGTERM);
	/* It stops within a few chunks of the download, not at its end. */
	CU_ASSERT_EQUAL(agent_wait(pid, 10), 0);
	CU_ASSERT(report_shows(1, "\"cancelled\"", "stopped on request", 1));
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/new"), F_OK), -1);
	char *after = root_manifest(1);
	CU_ASSERT(fixture_same(before, after, "root after a stopped job"));
	free(before);
	free(after);
	server_stop(f.ng.pid);
}

/* The image's server stops sending halfway and keeps the connection
 * open: SIGTERM still ends the job within seconds (not after libcurl's
 * 60 s low_speed_time, then retries), reported "cancelled". */
TEST_CASE(sigterm_during_a_stalled_download)
{
	struct fleet f;
	char image[1024], url[256], extra[256];
	int port;

	fleet_setup(&f, 1, 0, NULL);
	snprintf(image, sizeof(image), "%s", t_path("www/image.tar"));
	char *body = t_read(image);
	long long size = fixture_size(image);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	pid_t tiny = tiny_start(TINY_STALL, (const unsigned char *)body, (size_t)size, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/image.tar", port);
	snprintf(extra, sizeof(extra), "sha256 = \"%s\"; size = %lld;", fixture_sha256(image), size);
	fixture_job(t_path("job.conf"), url, extra, NULL);
	char *before = root_manifest(1);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	CU_ASSERT_FATAL(report_shows(1, "\"STAGE\"", "\"running\"", 60));
	/* The server has the request: the transfer is stalled from here on. */
	int asked = 0;
	for (int k = 0; k < 300 && !asked; k++, usleep(100000)) {
		char *log = t_read(t_path("ranges.log"));
		asked = log && *log;
		free(log);
	}
	CU_ASSERT_FATAL(asked);
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(agent_wait(pid, 15), 0);
	CU_ASSERT(report_shows(1, "\"cancelled\"", "stopped on request", 1));
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/new"), F_OK), -1);
	/* The log names each phase once (the engine's "phase STAGE"), not
	 * again in every routine report. */
	CU_ASSERT_EQUAL(t_sh("test $(grep -c 'phase STAGE$' '%s') = 1 && "
			     "! grep -q 'STAGE running' '%s'", t_path("pc-1/agent.log"),
			     t_path("pc-1/agent.log")), 0);
	char *after = root_manifest(1);
	CU_ASSERT(fixture_same(before, after, "root after a stop during a stalled download"));
	free(before);
	free(after);
	free(body);
	server_stop(tiny);
	server_stop(f.ng.pid);
}

/* A store that does not answer is a warning once per outage; the polls
 * go on, further apart, and say so only in the verbose log. */
TEST_CASE(unreachable_store_logged_once)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	server_stop(f.ng.pid);  /* the store is gone: connections are refused */
	pid_t pid = agent_start_with(1, 0, "-v");
	int third = 0;
	for (int k = 0; k < 300 && !third; k++, usleep(100000)) {
		char *log = t_read(t_path("pc-1/agent.log"));
		third = log && strstr(log, "still failing (3 in a row)");
		free(log);
	}
	CU_ASSERT(third);
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(agent_wait(pid, 15), 0);
	CU_ASSERT_EQUAL(t_sh("test $(grep -c 'warning: poll: GET .*/jobs/pc-1.job' '%s') = 1",
			     t_path("pc-1/agent.log")), 0);
	/* One outage, one warning: the group's document (groups = lab) fails
	 * in the same outage and is said only in the verbose log. */
	CU_ASSERT_EQUAL(t_sh("test $(grep -c 'warning: poll' '%s') = 1 && "
			     "grep -q 'lab.job.*(the same outage)' '%s'", t_path("pc-1/agent.log"),
			     t_path("pc-1/agent.log")), 0);
	/* Further apart: 1 s, then 2 s, then 4 s between the polls. */
	CU_ASSERT_EQUAL(t_sh("grep -q 'still failing (2 in a row), next try in 2 s' '%s'",
			     t_path("pc-1/agent.log")), 0);
	if (!third)
		show_log(1);
}

TEST_CASE(lost_report_sent_again_at_the_next_poll)
{
	/* The store refuses the agent's report on the job once (a folder
	 * sits where it goes: an SMB rename over a file a reader holds open
	 * failed the same way): the report is sent again at the next poll,
	 * not an hour later with the heartbeat, and the administrator's
	 * `wait` sees the job's outcome. */
	struct fleet f;
	char *out = NULL;
	int warned = 0;
	fleet_setup_store(&f, STORE_DIR, 1, 0, NULL, NULL);
	break_agent(1);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/reports/test-job/pc-1.json'", f.store), 0);
	pid_t pid = agent_start_with(1, 0, NULL);
	for (int k = 0; k < 300 && !warned; k++, usleep(100000))
		warned = t_sh("grep -q 'warning: report to: .*test-job/pc-1.json.*sent again at the "
			      "next poll' '%s'", t_path("pc-1/agent.log")) == 0;
	CU_ASSERT_FATAL(warned);
	CU_ASSERT_EQUAL_FATAL(t_sh("rmdir '%s/reports/test-job/pc-1.json'", f.store), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 60 --interval 1",
					   f.store), 1);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "1 agent(s): 0 committed, 1 failed"));
	CU_ASSERT(job_state_is(1, "failed"));
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(agent_wait(pid, 15), 0);
	/* One warning for the outage, not one per poll. */
	CU_ASSERT_EQUAL(t_sh("test $(grep -c 'warning: report to' '%s') = 1",
			     t_path("pc-1/agent.log")), 0);
	if (!warned || !out || !strstr(out, "1 failed"))
		show_log(1);
	free(out);
	fleet_stop(&f);
}

TEST_CASE(cancel_scheduled_job)
{
	struct fleet f;
	char *out = NULL;
	fleet_setup(&f, 1, 0, "at = \"2099-01-01T03:00:00Z\";");
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	CU_ASSERT(report_shows(1, "\"scheduled\"", "starts at 2099-01-01T03:00:00Z", 30));
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "cancel -s %s test-job", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1 document(s) removed; 0 agent(s) had started"));
	free(out);
	CU_ASSERT(report_shows(1, "\"cancelled\"", "withdrawn from the job store", 30));
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(agent_wait(pid, 15), 0);
	CU_ASSERT(!is_new_image(1));
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 10 --interval 1", f.store), 1);
	free(out);
	server_stop(f.ng.pid);
}

TEST_CASE(agent_config_errors)
{
	char *out = NULL;
	t_write(t_path("a.conf"), "agent_id = \"pc 1\";\nstore = \"/tmp/x\";\n"
				  "trusted_keys = [\"/k.pub\"];\n");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "agent -c '%s' --once", t_path("a.conf")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "agent_id 'pc 1'"));
	free(out);
	t_write(t_path("b.conf"), "agent_id = \"pc-1\";\nstore = \"/tmp/x\";\n");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "agent -c '%s' --once", t_path("b.conf")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no trusted_keys"));
	free(out);
	t_write(t_path("c.conf"), "agent_id = \"pc-1\";\npoll_interval = 0;\n");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "agent -c '%s' --once", t_path("c.conf")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "c.conf:2"));
	free(out);
	/* A store whose transport cannot be loaded: refused at the start,
	 * naming the file, the location, the plugin and where it was looked
	 * for -- not a warning at every poll. */
	char conf[1024];
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "keygen '%s' '%s'", t_path("d.key"), t_path("d.pub")),
			0);
	free(out);
	snprintf(conf, sizeof(conf), "agent_id = \"pc-1\";\nstore = \"smb://127.0.0.1:1/share/store\";\n"
		"trusted_keys = [\"%s\"];\nstate_dir = \"%s\";\n", t_path("d.pub"), t_path("state"));
	t_write(t_path("d.conf"), conf);
	CU_ASSERT_EQUAL(t_sh_out(&out, "REIMAGE_PLUGIN_PATH='%s' '%s/reimage' agent -c '%s' --once "
				 "2>&1; echo rc=$?", t_path("no-plugins"), t_bin_dir(),
				 t_path("d.conf")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "rc=2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "d.conf: job location smb://127.0.0.1:1/share/store/jobs/"
				      "pc-1.job: smb: plugin transport-smb is not installed (plugin "
				      "path: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, t_path("no-plugins")));
	if (!strstr(out, "is not installed"))
		fprintf(stderr, "output: %s\n", out);
	free(out);
}

/* The neutral element as a public key: any document "verifies" under it. */
static const char small_order_pem[] = "-----BEGIN PUBLIC KEY-----\n"
	"MCowBQYDK2VwAyEAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
	"-----END PUBLIC KEY-----\n";

TEST_CASE(invalid_trusted_key_refused_at_start)
{
	char conf[2048], *out = NULL;
	t_write(t_path("weak.pub"), small_order_pem);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("store"), t_path("state")), 0);
	snprintf(conf, sizeof(conf), "agent_id = \"pc-1\";\nstore = \"%s\";\nstate_dir = \"%s\";\n"
		 "backend = \"sandbox\";\nroot = \"%s\";\ntrusted_keys = [\"%s\"];\n",
		 t_path("store"), t_path("state"), t_path("state"), t_path("weak.pub"));
	t_write(t_path("a.conf"), conf);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "agent -c '%s' --once", t_path("a.conf")), 2);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "weak.pub"));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "not a valid Ed25519 public key"));
	free(out);
}

TEST_CASE(killed_mid_swap)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, "test_swap_pause = 30;");
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = agent_start(1, 0);
	int paused = 0;
	for (int k = 0; k < 600 && !paused; k++, usleep(100000))
		paused = t_sh("grep -q 'swap paused' '%s'", t_path("pc-1/agent.log")) == 0;
	CU_ASSERT_FATAL(paused);
	/* The machine dies with the swap half done. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CU_ASSERT(!is_new_image(1) || access(t_path("pc-1/root/.reimage/journal"), F_OK) == 0);
	/* At the next start the agent completes the swap from its journal and
	 * reboots: what runs was started from a half-swapped root. */
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"pending\"", "interrupted swap completed", 1));
	CU_ASSERT(is_new_image(1));
	/* The new image, booted whole, is tried and committed. */
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"committed\"", "running new image", 1));
	CU_ASSERT(is_new_image(1));
	char *st = t_read(t_path("pc-1/agent.log"));
	CU_ASSERT(st && strstr(st, "was interrupted; completing it"));
	free(st);
	server_stop(f.ng.pid);
}

/* Run a job on pc-1 through its "reboot" and the new image's start. */
static void run_and_boot(struct fleet *f)
{
	submit(f, t_path("admin.key"), "--agents pc-1");
	CU_ASSERT_EQUAL(agent_once(1), 0);  /* stages, swaps, "reboots" */
	CU_ASSERT(is_new_image(1));
	CU_ASSERT_EQUAL(agent_once(1), 0);  /* the new image's agent: TRIAL */
}

TEST_CASE(trial_failing_check_rolls_back)
{
	struct fleet f;
	char extra[1024], *out = NULL;
	t_write(t_path("check.sh"), "#!/bin/sh\necho 'app is down' >&2\nexit 3\n");
	chmod(t_path("check.sh"), 0755);
	snprintf(extra, sizeof(extra), "health: { commands = [ \"%s\" ]; report = true; "
		 "deadline = 3; };", t_path("check.sh"));
	fleet_setup(&f, 1, 0, extra);
	char *before = root_manifest(1);
	run_and_boot(&f);
	CU_ASSERT(report_shows(1, "\"rolled-back\"", "exited with status 3", 1));
	/* Exactly the old tree again, file by file. */
	char *after = root_manifest(1);
	CU_ASSERT(fixture_same(before, after, "root after a failed trial"));
	/* A second reboot, into the old image. */
	CU_ASSERT_EQUAL(t_sh("test $(grep -c 'sandbox: would reboot' '%s') -eq 2",
			     t_path("pc-1/agent.log")), 0);
	/* The old image's agent does not report it twice; wait says so. */
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 10 --interval 1", f.store), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "rolled-back"));
	free(out);
	free(before);
	free(after);
	server_stop(f.ng.pid);
}

TEST_CASE(trial_passing_check_commits)
{
	struct fleet f;
	char extra[1024], *out = NULL;
	/* The check looks at the running image: the new one must be there. */
	char script[1024];
	snprintf(script, sizeof(script), "#!/bin/sh\ntest -e '%s/NEW-IMAGE'\n",
		 t_path("pc-1/root"));
	t_write(t_path("check.sh"), script);
	chmod(t_path("check.sh"), 0755);
	snprintf(extra, sizeof(extra), "health: { commands = [ \"%s\" ]; report = true; };"
		 "keep_old_days = 1;", t_path("check.sh"));
	fleet_setup(&f, 1, 0, extra);
	run_and_boot(&f);
	CU_ASSERT(report_shows(1, "\"committed\"", "running new image", 1));
	CU_ASSERT(is_new_image(1));
	/* keep_old_days = 1: the old image stays for `reimage rollback`. */
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/old/opt/only-old"), F_OK), 0);
	CU_ASSERT_EQUAL(access(t_path("pc-1/root/.reimage/health"), F_OK), -1);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "wait -s %s test-job --timeout 10 --interval 1", f.store), 0);
	free(out);
	server_stop(f.ng.pid);
}

TEST_CASE(trial_units_need_a_backend_that_checks_them)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, "health: { units = [ \"ssh.service\" ]; };");
	submit(&f, t_path("admin.key"), "--agents pc-1");
	CU_ASSERT_EQUAL(agent_once(1), 0);
	/* Refused in PREFLIGHT, before anything was staged. */
	CU_ASSERT(report_shows(1, "\"refused\"", "cannot check service units", 1));
	CU_ASSERT(!is_new_image(1));
	server_stop(f.ng.pid);
}

/* ------------------------------------------- serials, time, the store */

TEST_CASE(fresh_agent_bounds_first_serial)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	/* One document with a huge serial would lock a fresh agent out. */
	submit(&f, t_path("admin.key"), "--agents pc-1 --serial 9000000000000000000");
	expect_refusal(&f, "above first_serial_max (1000000)");
	/* Not locked out: the administrator's next job runs. */
	submit(&f, t_path("admin.key"), "--agents pc-1 --serial 8 --reuse");
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(is_new_image(1));
	server_stop(f.ng.pid);
}

TEST_CASE(fast_forwarded_agent_recovered)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	/* A stolen key (or a typo) pushes pc-1's serial far ahead of the
	 * store's counter. */
	submit(&f, t_path("admin.key"), "--agents pc-1 --serial 900000");
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"committed\"", NULL, 1));
	t_write(t_path("www/dav/store/serial"), "7\n");
	CU_ASSERT_EQUAL(t_sh("sed -i 's/test-job/test-job2/' '%s'", t_path("job.conf")), 0);
	submit(&f, t_path("admin.key"), "--agents pc-1");
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"refused\"", "serial 8 is not above the last serial run here "
			       "(900000)", 1));
	/* The signed recovery: the same job with a serial reset. */
	char *out = NULL;
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "submit -s %s -k '%s' '%s' --agents pc-1 "
					   "--reset-serial --reuse", f.store, t_path("admin.key"),
					   t_path("job.conf")), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "serial 9 (a serial reset)"));
	free(out);
	char *counter = t_read(t_path("www/dav/store/serial-reset"));
	CU_ASSERT(counter && !strcmp(counter, "1\n"));
	free(counter);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"pending\"", "\"serial\": 9", 1));
	char *st = t_read(t_path("pc-1/root/var/lib/reimage/agent.json"));
	CU_ASSERT(st && strstr(st, "\"last_serial\": 9") && strstr(st, "\"last_reset\": 1"));
	free(st);
	/* Applied once: the same reset again is an ordinary, older job. */
	CU_ASSERT_EQUAL(t_sh("sed -i 's/test-job2/test-job3/' '%s'", t_path("job.conf")), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "submit -s %s -k '%s' '%s' --agents pc-1 "
					   "--serial 5", f.store, t_path("admin.key"),
					   t_path("job.conf")), 0);
	free(out);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"refused\"", "serial 5 is not above the last serial run here "
			       "(9)", 1));
	server_stop(f.ng.pid);
}

/* job.conf for pc-1 as `reimagectl sign` signs it, signed_at two days
 * ago and expired yesterday, with the settings in extra. */
static void sign_old_job(const char *out, const char *extra)
{
	char *job = t_read(t_path("job.conf")), at[64], until[64], text[8192], *o = NULL;
	int64_t now = (int64_t)time(NULL);
	when_format(now - 2 * 86400, at, sizeof(at));
	when_format(now - 86400, until, sizeof(until));
	snprintf(text, sizeof(text), "%stargets: { agents = [ \"pc-1\" ]; };\nnot_after = \"%s\";\n"
		 "signed_at = \"%s\";\n%s\n", job, until, at, extra);
	free(job);
	t_write(t_path("old.conf"), text);
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&o, "sign -k '%s' '%s' -o '%s'", t_path("admin.key"),
						 t_path("old.conf"), out), 0);
	free(o);
}

TEST_CASE(clock_reset_keeps_time_floor)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	/* A job signed two days ago that expired yesterday, and a serial
	 * reset of the same age. */
	sign_old_job(t_path("old.job"), "");
	sign_old_job(t_path("old-reset.job"), "serial_reset = 1;");
	/* pc-1 sees a document signed now (one for pc-9, refused): trusted
	 * time has reached now, durably. */
	submit(&f, t_path("admin.key"), "--agents pc-9");
	CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s'", t_path("www/dav/store/jobs/pc-9.job"),
				   t_path("www/dav/store/jobs/pc-1.job")), 0);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"refused\"", "not for this agent", 1));
	char *st = t_read(t_path("pc-1/root/var/lib/reimage/agent.json"));
	CU_ASSERT(st && strstr(st, "\"time_floor\"") && !strstr(st, "\"time_floor\": 0"));
	free(st);
	/* Its clock is reset three days back and the expired job replayed:
	 * by its clock the job is valid, by the floor it expired. */
	CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s'", t_path("old.job"),
				   t_path("www/dav/store/jobs/pc-1.job")), 0);
	faketime_set("-3d");
	pid_t pid = agent_start(1, 1);
	faketime_clear();
	/* Its status is not checked: libfaketime sometimes aborts the process
	 * as it exits (see test_rollout.c). */
	CU_ASSERT(agent_wait(pid, 60) >= 0);
	CU_ASSERT(report_shows(1, "\"refused\"", "expired at", 1));
	CU_ASSERT(!is_new_image(1));
	/* A serial reset is judged by the floor too (its report is the only
	 * one: the last is removed). */
	CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s' && rm '%s'", t_path("old-reset.job"),
				   t_path("www/dav/store/jobs/pc-1.job"),
				   t_path("www/dav/store/reports/pc-1.json")), 0);
	faketime_set("-3d");
	pid = agent_start(1, 1);
	faketime_clear();
	CU_ASSERT(agent_wait(pid, 60) >= 0);
	CU_ASSERT(report_shows(1, "\"refused\"", "expired at", 1));
	CU_ASSERT(!is_new_image(1));
	server_stop(f.ng.pid);
}

TEST_CASE(stale_store_refused)
{
	struct fleet f;
	char *out = NULL;
	fleet_setup_with(&f, 1, 0, NULL, "store_timestamp_max_age = 600;");
	submit(&f, t_path("admin.key"), "--agents pc-1");
	/* No timestamp: the store is stale. */
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"stale\"", "stale job store", 1));
	CU_ASSERT(!is_new_image(1));
	/* One signed an hour ago (valid two hours): older than 600 s. */
	char *doc = NULL;
	size_t len;
	CU_ASSERT_EQUAL_FATAL(timestamp_sign(t_path("admin.key"), (int64_t)time(NULL) - 3600, 7200,
					     &doc, &len, &(struct reimage_error){ 0 }), 0);
	t_write(t_path("old-timestamp"), doc);
	t_write(t_path("www/dav/store/timestamp"), doc);
	free(doc);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"stale\"", "more than store_timestamp_max_age", 1));
	CU_ASSERT(!is_new_image(1));
	/* A fresh one: the job runs. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "timestamp -s %s -k '%s'", f.store,
					   t_path("admin.key")), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "store timestamp published"));
	free(out);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"pending\"", NULL, 1));
	CU_ASSERT(is_new_image(1));
	/* The store replays its old state: reported stale, not trusted. */
	CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s'", t_path("old-timestamp"),
				   t_path("www/dav/store/timestamp")), 0);
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT(report_shows(1, "\"stale\"", "replays an old state", 1));
	/* A timestamp is not a job, nor a job a timestamp. */
	CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s'", t_path("old-timestamp"),
				   t_path("www/dav/store/jobs/pc-1.job")), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "verify -t '%s' '%s'", t_path("admin.pub"),
					   t_path("old-timestamp")), 1);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "no 'reimage-signed-job 1' header"));
	free(out);
	server_stop(f.ng.pid);
}

/* Keys from before libsodium, or from openssl itself, still sign and
 * verify: the key files stay PEM. */
TEST_CASE(sign_and_verify_with_openssl_keys)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(t_sh("openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null && "
				   "openssl pkey -in '%s' -pubout -out '%s'", t_path("ossl.key"),
				   t_path("ossl.key"), t_path("ossl.pub")), 0);
	fixture_job(t_path("job.conf"), "/srv/image.tar", NULL,
		    "targets: { agents = [ \"pc-1\" ]; };\nnot_after = \"2099-01-01T00:00:00Z\";");
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "sign -k '%s' '%s' -o '%s'", t_path("ossl.key"),
					   t_path("job.conf"), t_path("job.signed")), 0);
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "verify -t '%s' '%s'", t_path("ossl.pub"),
					   t_path("job.signed")), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "signature valid"));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "target agent pc-1"));
	free(out);
	/* openssl verifies what libsodium signed: the same Ed25519. */
	CU_ASSERT_EQUAL(t_sh("cd '%s' && sed -n 's/^signature: //p' job.signed | base64 -d > sig && "
			     "n=$(sed -n 's/^length: //p' job.signed) && tail -c \"$n\" job.signed > "
			     "payload && openssl pkeyutl -verify -pubin -inkey ossl.pub -rawin -in "
			     "payload -sigfile sig >/dev/null", t_dir()), 0);
}

/* A number field of a JSON document written by jansson ("name": 123). */
static long long report_field(const char *doc, const char *name)
{
	char key[64];
	snprintf(key, sizeof(key), "\"%s\": ", name);
	const char *p = doc ? strstr(doc, key) : NULL;
	return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* The fleet's inventory: agents' latest reports are heartbeats, listed
 * from nginx's autoindex of reports/ (and a directory store's folder),
 * with the index submit keeps; a name never seen is warned about at
 * submit and shown; a machine silent too long is flagged stale. */
TEST_CASE(inventory_of_agents)
{
	struct fleet f;
	char *out = NULL, *rep;

	fleet_setup_with(&f, 3, 0, NULL, "heartbeat = 1;");
	/* pc-1 and pc-2 start once with nothing to do: each says it is idle. */
	CU_ASSERT_EQUAL(agent_once(1), 0);
	CU_ASSERT_EQUAL(agent_once(2), 0);
	rep = latest_report(1);
	CU_ASSERT(rep && strstr(rep, "\"state\": \"idle\"") && strstr(rep, "\"version\": \""));
	free(rep);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "agents -s %s", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pc-1                 idle"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pc-2                 idle"));
	CU_ASSERT_PTR_NULL(strstr(out, "pc-3"));  /* never ran, never targeted */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "2 agent(s): 2 seen, 0 stale"));
	free(out);
	/* A typo in --agents is warned about, and kept in the index. */
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "submit -s %s -k %s %s --agents pc-2,pc-3,pc-tpyo",
					   f.store, t_path("admin.key"), t_path("job.conf")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "2 of 3 agent(s) never reported to"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pc-3, pc-tpyo"));
	free(out);
	rep = t_read(t_path("www/dav/store/agents.json"));
	CU_ASSERT(rep && !strcmp(rep, "[\"pc-2\",\"pc-3\",\"pc-tpyo\"]"));
	free(rep);
	/* pc-2 last seen long ago. */
	rep = latest_report(2);
	CU_ASSERT_FATAL(rep != NULL);
	char *t = strstr(rep, "\"time\": ");
	CU_ASSERT_FATAL(t != NULL);
	CU_ASSERT_FATAL(report_field(rep, "time") >= 1000000000);
	memcpy(t + 8, "1000000000", 10);  /* 2001: an old time of the same length */
	t_write(t_path("www/dav/store/reports/pc-2.json"), rep);
	free(rep);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "agents -s %s --stale 600", f.store), 0);
	/* The unhealthy first: stale and never seen before the idle pc-1. */
	char *p2 = strstr(out, "pc-2 "), *p3 = strstr(out, "pc-3 "), *p1 = strstr(out, "pc-1 ");
	CU_ASSERT(p1 && p2 && p3 && p2 < p1 && p3 < p1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "STALE: not seen"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "pc-tpyo              never-seen"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "4 agent(s): 2 seen, 1 stale (not seen for 600s), "
				       "2 never seen"));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "agents -s %s --json -q", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"agent\": \"pc-tpyo\",\n  \"seen\": false"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"agent\": \"pc-1\",\n  \"seen\": true,\n  \"stale\": "
				       "false,\n  \"state\": \"idle\""));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "agents -s %s --prometheus -q", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "# TYPE reimage_agents gauge\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_agents{state=\"idle\"} 2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_agents_stale 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_agents_never_seen 2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reimage_agents_total 4\n"));
	free(out);
	/* A directory store is listed from its folder. */
	CU_ASSERT_EQUAL(t_sh("cp -a '%s' '%s'", t_path("www/dav/store"), t_path("copy")), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "agents -s %s", t_path("copy")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "4 agent(s): 2 seen"));
	free(out);
	/* A store that lists nothing shows its index, and says so. */
	CU_ASSERT_EQUAL(t_sh("mkdir -p '%s' && cp '%s' '%s'", t_path("www/dav/plain"),
			     t_path("www/dav/store/agents.json"), t_path("www/dav/plain/")), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "agents -s http://127.0.0.1:%d/dav/plain",
					   f.ng.port), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "gives no listing"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "3 agent(s): 0 seen"));
	free(out);
	/* A running agent's heartbeat: its latest report's time moves on
	 * though nothing happens (heartbeat = 1). */
	rep = latest_report(1);
	long long before = report_field(rep, "time");
	free(rep);
	f.pid[1] = agent_start(1, 0);
	int moved = 0;
	for (int k = 0; k < 100 && !moved; k++) {
		rep = latest_report(1);
		moved = report_field(rep, "time") > before;
		free(rep);
		if (!moved)
			usleep(100000);
	}
	CU_ASSERT(moved);
	kill(f.pid[1], SIGTERM);
	CU_ASSERT_EQUAL(agent_wait(f.pid[1], 15), 0);
	server_stop(f.ng.pid);
}

/* What the test writes as agent mI's report on test-job (and latest):
 * each fifth committed, failed, cancelled, running; of the rest, half
 * never reported and half hold an older run's "committed". */
static const char *fleet_state(int i, long long serial, long long *ret_serial)
{
	static const char *const states[] = { "committed", "failed", "cancelled", "running" };
	*ret_serial = serial;
	if (i % 5 < 4)
		return states[i % 5];
	if (i % 10 == 4)
		return NULL;
	*ret_serial = serial - 1;
	return "committed";
}

/* status, wait and agents read a fleet's reports several at once (over
 * nginx: libcurl's multi interface) and each lands with its own agent:
 * 200 agents' states, written by the test, counted and listed exactly;
 * the reports came over more than one connection. */
TEST_CASE(status_of_200_agents_read_in_parallel)
{
	struct fleet f;
	char list[4096], *out = NULL;
	size_t len = 0;
	long long serial;

	fleet_setup(&f, 1, 0, NULL);
	for (int i = 1; i <= 200; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%sm%d", i > 1 ? "," : "", i);
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&out, "submit -s %s -k '%s' '%s' --agents %s",
						 f.store, t_path("admin.key"), t_path("job.conf"),
						 list), 0);
	const char *s = out ? strstr(out, "job test-job: serial ") : NULL;
	CU_ASSERT_FATAL(s != NULL);
	serial = strtoll(s + strlen("job test-job: serial "), NULL, 10);
	free(out);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("www/dav/store/reports/test-job")), 0);
	for (int i = 1; i <= 200; i++) {
		long long sr;
		const char *state = fleet_state(i, serial, &sr);
		char rep[512];
		if (!state)
			continue;
		snprintf(rep, sizeof(rep), "{\"agent\": \"m%d\", \"job\": \"test-job\", \"serial\": "
			 "%lld, \"phase\": \"STAGE\", \"state\": \"%s\", \"message\": \"m%d\", "
			 "\"time\": %lld}", i, sr, state, i, (long long)time(NULL));
		t_write(t_path("www/dav/store/reports/test-job/m%d.json", i), rep);
		t_write(t_path("www/dav/store/reports/m%d.json", i), rep);
	}
	CU_ASSERT_EQUAL(t_sh(": > '%s'", t_path("nginx/access.log")), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "status -s %s test-job", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "200 agent(s): 40 committed, 40 failed, 40 "
					     "cancelled, 80 unfinished\n"));
	free(out);
	/* More than one connection at once served the reports. */
	CU_ASSERT_EQUAL(t_sh("test $(grep 'GET /dav/store/reports/test-job/' '%s' | sed 's/.*conn=//' "
			     "| sort -u | wc -l) -gt 1", t_path("nginx/access.log")), 0);
	/* Every agent with its own report, in JSON. */
	t_write(t_path("check.py"),
		"import json, sys\n"
		"serial = int(sys.argv[2])\n"
		"d = json.load(open(sys.argv[1]))\n"
		"states = ['committed', 'failed', 'cancelled', 'running']\n"
		"assert len(d['agents']) == 200, len(d['agents'])\n"
		"for a in d['agents']:\n"
		"    i = int(a['agent'][1:])\n"
		"    want = states[i % 5] if i % 5 < 4 else 'no-report'\n"
		"    assert a['state'] == want, (a, want)\n"
		"    assert want == 'no-report' or a['message'] == a['agent'], a\n"
		"assert d['counts']['unfinished'] == 80, d['counts']\n");
	CU_ASSERT_EQUAL(t_sh("'%s/reimagectl' status -s %s test-job --json > '%s' && python3 '%s' "
			     "'%s' %lld", t_bin_dir(), f.store, t_path("status.json"),
			     t_path("check.py"), t_path("status.json"), serial), 0);
	/* agents: the latest reports, whatever their run. */
	t_write(t_path("check.py"),
		"import json, sys\n"
		"d = json.load(open(sys.argv[1]))\n"
		"states = ['committed', 'failed', 'cancelled', 'running']\n"
		"names = sorted(int(a['agent'][1:]) for a in d if a['agent'].startswith('m'))\n"
		"assert names == list(range(1, 201)), names\n"
		"for a in d:\n"
		"    i = int(a['agent'][1:])\n"
		"    if i % 10 == 4:\n"
		"        assert not a['seen'], a\n"
		"    else:\n"
		"        assert a['seen'] and a['message'] == a['agent'], a\n"
		"        assert a['state'] == (states[i % 5] if i % 5 < 4 else 'committed'), a\n");
	CU_ASSERT_EQUAL(t_sh("'%s/reimagectl' agents -s %s --json -q > '%s' && python3 '%s' '%s'",
			     t_bin_dir(), f.store, t_path("agents.json"), t_path("check.py"),
			     t_path("agents.json")), 0);
	CU_ASSERT_EQUAL(fixture_reimagectl(&out, "agents -s %s", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "200 agent(s): 180 seen, 0 stale"));
	free(out);
	fleet_stop(&f);
}
