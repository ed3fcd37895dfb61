/*
 * test_engine.c -- the engine's side of the backend preflight hook
 * (core/phase.c), with the loader tests' fake backend "sealed", whose
 * preflight refuses every root and says what it was given: the hook runs
 * in PREFLIGHT for plan and run, gets the root and the job's boot
 * parameters (or none), and a refusal leaves the root untouched.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char job[PATH_MAX], root[PATH_MAX];

static void setup(const char *extra)
{
	char text[1024];

	snprintf(root, sizeof(root), "%s", t_path("root"));
	snprintf(job, sizeof(job), "%s", t_path("job.conf"));
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/etc' '%s'", root, t_path("new/etc")), 0);
	t_write(t_path("new/etc/os-release"), "NAME=new\n");
	fixture_pack(t_path("new"), t_path("image.tar"), "");
	snprintf(text, sizeof(text), "plugin_path = [ \"%s/tests/plugins/preflight\" ];\n"
		 "reboot = false;\n%s",
		 t_bin_dir(), extra ? extra : "");
	fixture_job(job, t_path("image.tar"), NULL, text);
}

TEST_CASE(plan_refused)
{
	char *out = NULL, want[PATH_MAX + 64];

	setup(NULL);
	CU_ASSERT_NOT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s' --backend sealed", job,
					    root), 0);
	snprintf(want, sizeof(want), "fake refuses root %s; no boot parameters", root);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	free(out);
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage'", root), 0);
}

TEST_CASE(boot_passed)
{
	char *out = NULL, want[2 * PATH_MAX + 64];

	setup("boot: { one_shot = true; };");
	CU_ASSERT_NOT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s' --backend sealed", job,
					    root), 0);
	snprintf(want, sizeof(want), "fake refuses root %s; boot root %s, one_shot 1", root, root);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	free(out);
}

TEST_CASE(run_refused_untouched)
{
	char *out = NULL;

	setup(NULL);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s' --backend sealed", job, root),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "fake refuses root"));
	free(out);
	/* Refused before PREPARE: nothing staged, the root as it was. */
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", root), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(ls -A '%s')\" = etc", root), 0);
}
