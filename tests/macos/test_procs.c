/*
 * test_procs.c -- QUIESCE of the macos backend with the recording fake:
 * which users are logged out and how (launchctl bootout gui/UID for the
 * user at the screen, user/UID for each), which processes are stopped
 * (never kernel_task, launchd, the agent or its ancestors, nor the
 * keep-list), TERM then KILL after the grace period, and bounded rounds
 * against processes launchd restarts.
 */
#define _GNU_SOURCE
#include "fake_sys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

TEST_CASE(quiesce_keeps)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	fake_self(&m.fake);
	fake_proc(&m.fake, 300, 1, 0, "configd");
	fake_proc(&m.fake, 301, 1, 501, "Safari");
	fake_proc(&m.fake, 302, 1, 0, "cupsd");
	fake_proc(&m.fake, 303, 1, 0, "sshd");
	CU_ASSERT_EQUAL(m.fx.ops->quiesce(m.fx.ctx, "/", &err), 0);
	/* One round stops Safari and cupsd; the second finds nothing. */
	CU_ASSERT(fake_calls_are(&m.fake, "procs\nsignal 301 15\nsignal 302 15\nprocs\n"));
	mfx_stop(&m);
}

TEST_CASE(quiesce_keep_option)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* The configured list replaces the default: configd may go now. */
	mfx_start(&m, "keep_processes = [ \"cupsd\" ];");
	fake_self(&m.fake);
	fake_proc(&m.fake, 300, 1, 0, "configd");
	fake_proc(&m.fake, 302, 1, 0, "cupsd");
	CU_ASSERT_EQUAL(m.fx.ops->quiesce(m.fx.ctx, "/", &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "procs\nsignal 300 15\nprocs\n"));
	mfx_stop(&m);
}

TEST_CASE(quiesce_kill_after_grace)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	int64_t t0;

	mfx_start(&m, "grace_seconds = 7;");
	fake_self(&m.fake);
	fake_proc(&m.fake, 400, 1, 0, "stubborn")->ignores_term = 1;
	fake_proc(&m.fake, 401, 1, 0, "polite");
	t0 = m.fake.clock_ms;
	CU_ASSERT_EQUAL(m.fx.ops->quiesce(m.fx.ctx, "/", &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "procs\nsignal 400 15\nsignal 401 15\nsignal 400 9\n"
					  "procs\n"));
	/* SIGKILL came only after the grace period. */
	CU_ASSERT(m.fake.clock_ms - t0 >= 7000 && m.fake.clock_ms - t0 < 8000);
	mfx_stop(&m);
}

TEST_CASE(quiesce_rounds_bounded)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* launchd restarts it every time: four rounds, then it is left. */
	mfx_start(&m, "");
	fake_self(&m.fake);
	fake_proc(&m.fake, 500, 1, 0, "keepalive")->respawns = 100;
	CU_ASSERT_EQUAL(m.fx.ops->quiesce(m.fx.ctx, "/", &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "procs\nsignal 500 15\nprocs\nsignal 1500 15\nprocs\n"
					  "signal 2500 15\nprocs\nsignal 3500 15\n"));
	mfx_stop(&m);
}

TEST_CASE(logout_users)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* alice (501) at the screen, bob (502) over ssh, root daemons, and
	 * nobody (-2): only alice and bob are logged out. */
	mfx_start(&m, "");
	m.fake.console = 501;
	fake_self(&m.fake);
	m.fake.procs[2].p.uid = 0;  /* the agent's ancestor: a root daemon */
	fake_proc(&m.fake, 600, 1, 501, "Finder");
	fake_proc(&m.fake, 601, 1, 502, "zsh");
	fake_proc(&m.fake, 602, 1, 0, "cupsd");
	fake_proc(&m.fake, 603, 1, (uid_t)-2, "nobodyd");
	CU_ASSERT_EQUAL(m.fx.ops->logout(m.fx.ctx, "/", &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "procs\n"
					  "run /bin/launchctl bootout gui/501\n"
					  "run /bin/launchctl bootout user/501\n"
					  "run /bin/launchctl bootout user/502\n"
					  "procs\nsignal 600 15\nsignal 601 15\nprocs\n"));
	mfx_stop(&m);
}

TEST_CASE(logout_bootout_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* A bootout that fails is not the end: the user's processes are
	 * stopped instead (loginwindow among them ends the GUI session). */
	mfx_start(&m, "");
	m.fake.console = 501;
	fake_self(&m.fake);
	m.fake.procs[2].p.uid = 0;
	fake_proc(&m.fake, 700, 1, 501, "loginwindow");
	fake_answer(&m.fake, "/bin/launchctl bootout gui/501", 5,
		    "Boot-out failed: 5: Input/output error\n");
	fake_answer(&m.fake, "/bin/launchctl bootout user/501", -ENOENT, NULL);
	CU_ASSERT_EQUAL(m.fx.ops->logout(m.fx.ctx, "/", &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	CU_ASSERT(fake_calls_are(&m.fake, "procs\n"
					  "run /bin/launchctl bootout gui/501\n"
					  "run /bin/launchctl bootout user/501\n"
					  "procs\nsignal 700 15\nprocs\n"));
	mfx_stop(&m);
}

TEST_CASE(logout_own_session)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* The agent was started with sudo from alice's Terminal: her launchd
	 * domains stay (a bootout would end the agent), her other processes
	 * are stopped, the Terminal is not; bob is logged out. */
	mfx_start(&m, "");
	m.fake.console = 501;
	fake_self(&m.fake);
	fake_proc(&m.fake, 600, 1, 501, "Finder");
	fake_proc(&m.fake, 601, 1, 502, "zsh");
	CU_ASSERT_EQUAL(m.fx.ops->logout(m.fx.ctx, "/", &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "procs\n"
					  "run /bin/launchctl bootout user/502\n"
					  "procs\nsignal 600 15\nsignal 601 15\nprocs\n"));
	mfx_stop(&m);
}

TEST_CASE(logout_nobody)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* The login panel (console owned by root), no user process. */
	mfx_start(&m, "");
	fake_self(&m.fake);
	m.fake.procs[2].p.uid = 0;  /* the ancestor runs as root here */
	fake_proc(&m.fake, 800, 1, 0, "loginwindow");
	CU_ASSERT_EQUAL(m.fx.ops->logout(m.fx.ctx, "/", &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "procs\nprocs\n"));
	mfx_stop(&m);
}

TEST_CASE(procs_unreadable)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	m.fake.procs_error = -EPERM;
	CU_ASSERT_EQUAL(m.fx.ops->logout(m.fx.ctx, "/", &err), -EPERM);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_ACCESS);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "logout: list processes"));
	CU_ASSERT(fake_calls_are(&m.fake, "procs\n"));
	mfx_stop(&m);
}
