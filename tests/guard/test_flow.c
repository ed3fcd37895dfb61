/*
 * test_flow.c -- the boot guard through the whole engine: `reimage run`
 * arms it (inside staging, before the swap), `reimage confirm` disarms it
 * at the commit, and when the new image cannot boot, the guard (run as
 * PID 1 of namespaces, chrooted into the sandbox root, as test_guard.c
 * does) falls back and the old image's agent reports "rolled-back" with
 * the guard's reason.  The images are busybox scripts (trial_fixture.h).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "trial_fixture.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUSYBOX "/bin/busybox"

static int has(const char *text, const char *piece)
{
	if (!text || !strstr(text, piece)) {
		fprintf(stderr, "missing: %s\n", piece);
		return 0;
	}
	return 1;
}

/* An old root with an init, and a job whose image has the new init;
 * returns the old root's manifest. */
static char *setup(int max_attempts)
{
	char extra[1024], image_extra[256];

	trial_fixture_require();
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	fixture_new_tree(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("cp %s '%s/bin/busybox' && cp %s '%s/bin/busybox'", BUSYBOX,
				   t_path("root"), BUSYBOX, t_path("src")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && %s", t_path("root"),
				   trial_fixture_script("sbin/init", TRIAL_OLD_INIT)), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && %s", t_path("src"),
				   trial_fixture_script("sbin/init", TRIAL_NEW_INIT)), 0);
	fixture_pack(t_path("src"), t_path("image.tar"), "");
	snprintf(image_extra, sizeof(image_extra), "sha256 = \"%s\";",
		 fixture_sha256(t_path("image.tar")));
	snprintf(extra, sizeof(extra),
		 "trial: { guard = true; max_attempts = %d; };\npreserve: { paths = [ "
		 "\"home/alice\" ]; };", max_attempts);
	fixture_job(t_path("job.conf"), t_path("image.tar"), image_extra, extra);
	char conf[2048], *out = NULL;
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&out, "keygen '%s' '%s'", t_path("admin.key"),
						 t_path("admin.pub")), 0);
	free(out);
	snprintf(conf, sizeof(conf),
		 "agent_id = \"pc-1\";\nroot = \"%s\";\nbackend = \"sandbox\";\n"
		 "state_dir = \"%s\";\nstore = \"%s\";\npoll_interval = 1;\npoll_jitter = 0;\n"
		 "trusted_keys = [ \"%s\" ];\n",
		 t_path("root"), t_path("state"), t_path("store"), t_path("admin.pub"));
	t_write(t_path("agent.conf"), conf);
	return fixture_manifest(t_path("root"));
}

static void run_job(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					      t_path("root")), 0);
	free(out);
}

static int link_is(const char *rel, const char *target)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(t_path("root/%s", rel), buf, sizeof(buf) - 1);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strcmp(buf, target) == 0;
}

static int exists(const char *rel)
{
	return access(t_path("root/%s", rel), F_OK) == 0;
}

/* The trial is over: none of its files is left, and the root's job
 * state is status (with extra, a file that must be gone too). */
static void check_trial_over(const char *status, const char *extra)
{
	char *out = NULL, want[64];
	CU_ASSERT_FALSE(exists(".reimage/trial"));
	CU_ASSERT_FALSE(exists(".reimage/guard"));
	CU_ASSERT_FALSE(exists(".reimage/fallback"));
	CU_ASSERT_FALSE(exists(extra));
	CU_ASSERT_EQUAL(fixture_reimage(&out, "status --root '%s'", t_path("root")), 0);
	snprintf(want, sizeof(want), "status   %s\n", status);
	CU_ASSERT(has(out, want));
	free(out);
}

TEST_CASE(run_arms_confirm_disarms)
{
	char *out = NULL;
	char *old = setup(2);
	free(old);
	run_job();
	/* Swapped and armed: the kernel would run the guard. */
	CU_ASSERT(link_is("sbin/init", "../.reimage/guard"));
	CU_ASSERT(exists(".reimage/guard"));
	char *trial = t_read(t_path("root/.reimage/trial"));
	CU_ASSERT(has(trial, "max_attempts=2\ninit=/sbin/init\nlink=sbin/init\n"));
	free(trial);
	CU_ASSERT(exists("NEW-IMAGE"));

	CU_ASSERT_EQUAL(fixture_reimage(&out, "confirm --root '%s'", t_path("root")), 0);
	free(out);
	/* Committed: the image's own init is back, the trial's files gone. */
	char *init = t_read(t_path("root/sbin/init"));
	CU_ASSERT(has(init, "NEW-INIT"));
	free(init);
	check_trial_over("committed", ".reimage/old");
}

/* One boot of the root: its /sbin/init as PID 1 of new namespaces. */
static void boot(const char *expect)
{
	char *out = NULL;
	t_sh_out(&out, "unshare --pid --fork --mount chroot '%s' /sbin/init quiet",
		 t_path("root"));
	fprintf(stderr, "boot -> %s", out ? out : "");
	CU_ASSERT(has(out, expect));
	free(out);
}

TEST_CASE(guard_fallback_reported_by_the_old_agent)
{
	char *out = NULL;
	char *old = setup(1);
	run_job();
	/* The new image's init "crashes" (exits): one attempt, then the guard
	 * brings the old image back and runs its init. */
	boot("NEW-INIT pid=1");
	boot("OLD-INIT pid=1");
	char *now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(old, now, "root after the guard's fallback"));
	free(now);

	/* The old image's agent starts: it reports the rollback, once. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "agent -c '%s' --once", t_path("agent.conf")), 0);
	free(out);
	char *report = t_read(t_path("store/reports/pc-1.json"));
	CU_ASSERT(has(report, "\"state\": \"rolled-back\""));
	CU_ASSERT(has(report, "\"phase\": \"FALLBACK\""));
	CU_ASSERT(has(report, "the boot guard fell back to the old image: 1 boot attempt of "
			      "the new image did not reach a commit"));
	free(report);
	check_trial_over("rolled-back", ".reimage/new");
	now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(old, now, "root after the old agent's boot check"));
	free(now);
	free(old);
}
