/*
 * test_quiesce.c -- QUIESCE with real processes, only ever inside a pid
 * namespace the case creates (with its own /proc): a sleeper, a process
 * that ignores SIGTERM, one that forks on SIGTERM, one of another uid
 * are stopped; the keep-listed ones, the agent and its ancestors
 * survive.  And the refusal when /proc is not the caller's namespace's,
 * and the unit parser of keep_processes.
 */
#define _GNU_SOURCE
#include "cgroup.h"
#include "procs_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define CONF "keep_processes = [\"t-keepme\", \"t-keep-long-name-process\"];\n" \
	     "grace_seconds = 1; use_logind = false; lock_memory = false;\n"

struct scenario {
	int out;
};

static int quiesce_scenario(void *arg)
{
	const struct scenario *sc = arg;

	prctl(PR_SET_NAME, "t-init");
	CHECK(spawn_victim("t-sleeper", V_SLEEP, 0) == 0);
	CHECK(spawn_victim("t-stubborn", V_IGNORE_TERM, 0) == 0);
	CHECK(spawn_victim("t-forker", V_FORK_ON_TERM, 0) == 0);
	CHECK(spawn_victim("t-user", V_SLEEP, 1000) == 0);
	CHECK(spawn_victim("t-keepme", V_SLEEP, 0) == 0);
	/* The kernel cuts names to 15 characters: "t-keep-long-nam". */
	CHECK(spawn_victim("t-keep-long-name-process", V_SLEEP, 0) == 0);
	CHECK(run_agent(CONF, t_dir(), "quiesce", sc->out) == 0);
	return fx_failures;
}

static int open_report(int p[2])
{
	if (pipe(p) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
		return -1;
	return 0;
}

TEST_CASE(stops_unneeded)
{
	struct scenario sc;
	long long ms = 0;
	int p[2];
	char *rep;

	if (!t_is_root())
		t_skip("namespaces need root");
	CU_ASSERT_EQUAL_FATAL(open_report(p), 0);
	sc.out = p[1];
	CHECK_NS_RESULT(ns_run(NS_PID | NS_PROC, quiesce_scenario, &sc, 120));
	rep = read_available(p[0]);
	fprintf(stderr, "report:\n%s", rep);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep, "rc=0 "));
	/* Never PID 1, the agent, its ancestors, the keep-list. */
	CU_ASSERT(alive(rep, "t-init"));
	CU_ASSERT(alive(rep, "t-shell"));
	CU_ASSERT(alive(rep, "t-agent"));
	CU_ASSERT(alive(rep, "t-keepme"));
	CU_ASSERT(alive(rep, "t-keep-long-nam"));
	/* Everything else, including what was started meanwhile. */
	CU_ASSERT(!alive(rep, "t-sleeper"));
	CU_ASSERT(!alive(rep, "t-stubborn"));
	CU_ASSERT(!alive(rep, "t-forker"));
	CU_ASSERT(!alive(rep, "t-spawned"));
	CU_ASSERT(!alive(rep, "t-user"));
	/* t-stubborn needed SIGKILL after the 1 s grace; bounded waits. */
	CU_ASSERT(strstr(rep, "ms=") && sscanf(strstr(rep, "ms="), "ms=%lld", &ms) == 1);
	CU_ASSERT(ms >= 1000 && ms < 20000);
	free(rep);
	close(p[0]);
	close(p[1]);
}

static int foreign_proc_scenario(void *arg)
{
	const struct scenario *sc = arg;

	prctl(PR_SET_NAME, "t-init");
	CHECK(spawn_victim("t-sleeper", V_SLEEP, 0) == 0);
	CHECK(run_agent(CONF, t_dir(), "quiesce", sc->out) == 0);
	return fx_failures;
}

/* A new pid namespace that kept the old /proc: every pid in it names a
 * process of another namespace, so quiesce must refuse.  (Even a broken
 * check could not reach the machine's processes from here: pidfd_open
 * takes pids of the caller's namespace.) */
TEST_CASE(refuses_foreign_proc)
{
	struct scenario sc;
	int p[2];
	char *rep;

	if (!t_is_root())
		t_skip("namespaces need root");
	CU_ASSERT_EQUAL_FATAL(open_report(p), 0);
	sc.out = p[1];
	CHECK_NS_RESULT(ns_run(NS_PID, foreign_proc_scenario, &sc, 60));
	rep = read_available(p[0]);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep, "rc=-1 "));
	CU_ASSERT_PTR_NOT_NULL(strstr(rep, "/proc belongs to another pid namespace"));
	CU_ASSERT(alive(rep, "t-sleeper"));
	if (!strstr(rep, "another pid namespace"))
		fprintf(stderr, "report:\n%.2000s", rep);
	free(rep);
	close(p[0]);
	close(p[1]);
}

static const char *unit_of(const char *cgroup)
{
	static char unit[256];
	proc_unit_of_cgroup(cgroup, unit, sizeof(unit));
	return unit;
}

TEST_CASE(unit_of_cgroup)
{
	char small[8];

	/* cgroup v2 */
	CU_ASSERT_STRING_EQUAL(unit_of("0::/system.slice/ssh.service\n"), "ssh.service");
	CU_ASSERT_STRING_EQUAL(unit_of("0::/user.slice/user-1000.slice/session-3.scope\n"),
			       "session-3.scope");
	/* a delegated subtree: the innermost unit */
	CU_ASSERT_STRING_EQUAL(unit_of("0::/system.slice/docker.service/inner/x.scope\n"),
			       "x.scope");
	CU_ASSERT_STRING_EQUAL(unit_of("0::/system.slice/docker.service/inner\n"),
			       "docker.service");
	/* v1 and hybrid: name=systemd, the unified line first if it has one */
	CU_ASSERT_STRING_EQUAL(unit_of("4:memory:/system.slice/a.service\n"
				       "1:name=systemd:/system.slice/dbus.service\n"),
			       "dbus.service");
	CU_ASSERT_STRING_EQUAL(unit_of("1:name=systemd:/system.slice/dbus.service\n"
				       "0::/system.slice/dbus-broker.service\n"),
			       "dbus-broker.service");
	/* no unit: the root, a slice, a container's own hierarchy */
	CU_ASSERT_STRING_EQUAL(unit_of("0::/\n"), "");
	CU_ASSERT_STRING_EQUAL(unit_of("0::/system.slice\n"), "");
	CU_ASSERT_STRING_EQUAL(unit_of("9:name=systemd:/\n4:memory:/process_api/x\n0::/\n"), "");
	CU_ASSERT_STRING_EQUAL(unit_of("garbage"), "");
	CU_ASSERT_STRING_EQUAL(unit_of(""), "");
	/* never cut short */
	proc_unit_of_cgroup("0::/system.slice/ssh.service\n", small, sizeof(small));
	CU_ASSERT_STRING_EQUAL(small, "");
}
