/*
 * test_runner.c -- the real seam's parts that Linux has too: the
 * posix_spawn runner (status, output, environment, stdin, timeout with
 * its process group, a missing program) and the private copy of a
 * program; and macos_run()'s errors built from them.
 */
#define _GNU_SOURCE
#include "fake_sys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const env[] = { "PATH=/usr/bin:/bin", "REIMAGE_TEST=1", NULL };

static int run(const char *const argv[], int timeout_s, struct macos_output *out)
{
	return macos_sys_real.run(&macos_sys_real, argv, env, timeout_s, out);
}

TEST_CASE(status_and_output)
{
	static struct macos_output out;
	const char *const argv[] = { "/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL };

	CU_ASSERT_EQUAL(run(argv, 10, &out), 3);
	CU_ASSERT_STRING_EQUAL(out.text, "out\nerr\n");
	CU_ASSERT_EQUAL(out.len, 8);
}

TEST_CASE(environment_and_stdin)
{
	static struct macos_output out;
	/* Only the given environment; stdin is /dev/null (cat ends at once). */
	const char *const argv[] = { "/bin/sh", "-c", "cat; env | sort", NULL };

	CU_ASSERT_EQUAL(run(argv, 10, &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.text, "PATH=/usr/bin:/bin\nPWD="));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.text, "REIMAGE_TEST=1\n"));
	CU_ASSERT_PTR_NULL(strstr(out.text, "HOME="));
}

TEST_CASE(killed_by_signal)
{
	static struct macos_output out;
	const char *const argv[] = { "/bin/sh", "-c", "kill -TERM $$", NULL };

	CU_ASSERT_EQUAL(run(argv, 10, &out), 128 + 15);
}

TEST_CASE(timeout_kills_group)
{
	static struct macos_output out;
	/* The shell's child is in its process group: it goes too. */
	char script[512];
	snprintf(script, sizeof(script), "sleep 30 & echo $! > '%s'; wait", t_path("child"));
	const char *const argv[] = { "/bin/sh", "-c", script, NULL };
	int64_t t0 = macos_sys_real.now_ms(&macos_sys_real);

	CU_ASSERT_EQUAL(run(argv, 1, &out), -ETIMEDOUT);
	int64_t took = macos_sys_real.now_ms(&macos_sys_real) - t0;
	CU_ASSERT(took >= 1000 && took < 5000);
	CU_ASSERT(t_process_gone(t_path("child")));
}

TEST_CASE(missing_program)
{
	static struct macos_output out;
	const char *const argv[] = { "/nonexistent/diskutil", "info", "/", NULL };

	CU_ASSERT_EQUAL(run(argv, 10, &out), -ENOENT);
}

TEST_CASE(run_errors)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *const fails[] = { "/bin/sh", "-c", "echo first; echo 'the reason'; exit 4", NULL };
	const char *const missing[] = { "/nonexistent/bless", "--setBoot", NULL };
	const char *const slow[] = { "/bin/sh", "-c", "sleep 5", NULL };

	/* macos_run() over the real runner: what the errors say. */
	mfx_start(&m, "command_timeout = 1;");
	m.mc->sys = &macos_sys_real;
	CU_ASSERT_EQUAL(macos_run(m.mc, "do it", fails, NULL, &err), -EIO);
	CU_ASSERT_STRING_EQUAL(err.msg, "do it: '/bin/sh -c echo first; echo 'the reason'; exit 4' "
					"exited with status 4: the reason");
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(macos_run(m.mc, "bless", missing, NULL, &err), -ENOENT);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_NOTFOUND);
	CU_ASSERT_STRING_EQUAL(err.msg, "bless: cannot run /nonexistent/bless: No such file or "
					"directory");
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(macos_run(m.mc, "wait", slow, NULL, &err), -ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(err.msg, "wait: '/bin/sh -c sleep 5' still ran after 1 s and was "
					"killed");
	mfx_stop(&m);
}

TEST_CASE(copy_file)
{
	struct stat st;

	t_write(t_path("tool"), "#!/bin/sh\necho tool\n");
	t_write(t_path("old"), "replaced");
	CU_ASSERT_EQUAL(macos_sys_real.copy_file(&macos_sys_real, t_path("tool"), t_path("old"), 0700),
			0);
	CU_ASSERT(fx_content_is(t_path("old"), "#!/bin/sh\necho tool\n"));
	CU_ASSERT_EQUAL(stat(t_path("old"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0700);
	CU_ASSERT_EQUAL(macos_sys_real.copy_file(&macos_sys_real, t_path("none"), t_path("x"), 0600),
			-ENOENT);
}
