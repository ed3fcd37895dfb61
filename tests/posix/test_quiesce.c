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

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

/* ------------------------------------------------- vanishing processes */

#define STRESS_ROUNDS 400
#define CHURNERS 2
#define IDLERS 16

/* A kept process that, until killed, starts short-lived process groups
 * one after the other: a leader that exits at once and a member that
 * outlives it briefly, so the leader's pid lingers as a group id
 * (pidfd_open on it gives EINVAL, not ESRCH).  It reaps both itself (a
 * subreaper) before the next, so at most two live at a time: the machine
 * sees a steady trickle, not a fork storm, and PID 1 gathers no zombies. */
static void churn(void)
{
	prctl(PR_SET_NAME, "t-churn");
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (long i = 0; i < 10L * 1000 * 1000; i++) {  /* bounded; killed long before */
		if (fork() == 0) {
			prctl(PR_SET_NAME, "t-blip");
			setpgid(0, 0);
			if (fork() == 0) {
				prctl(PR_SET_NAME, "t-blip-member");
				for (int k = 0; k < 1000; k++)
					sched_yield();
				_exit(0);
			}
			_exit(0);
		}
		while (waitpid(-1, NULL, 0) > 0)
			;
	}
	_exit(0);
}

/*
 * The kernel's answer for a process that vanishes inside pidfd_open (its
 * pid found, its task reaped before the check) is EINVAL, in a window of
 * nanoseconds no test can aim at.  Make it certain for one pid: a seccomp
 * filter answers EINVAL to pidfd_open(ghost, ...) in this process.
 */
static int answer_einval_for(pid_t ghost)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)ghost, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* The agent: STRESS_ROUNDS quiesce and logout calls while processes come
 * and go, and pidfd_open says EINVAL for ghost; every one must succeed. */
static int stress_agent(int out, pid_t ghost)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	int failed = 0, r;

	prctl(PR_SET_NAME, "t-agent");
	if (answer_einval_for(ghost) < 0) {
		dprintf(out, "seccomp: %s\n", strerror(errno));
		return 1;
	}
	if ((r = fx_load(&fx, "keep_processes = [\"t-churn\", \"t-idle\"];\ngrace_seconds = 1; "
			 "use_logind = false; lock_memory = false;\n", &err)) == 0)
		r = fx.ops->prepare(fx.ctx, t_dir(), &err);
	for (int round = 0; r == 0 && round < STRESS_ROUNDS; round++) {
		struct reimage_error e = { 0 };
		int rr = round % 2 ? fx.ops->logout(fx.ctx, t_dir(), &e)
				   : fx.ops->quiesce(fx.ctx, t_dir(), &e);
		if (rr != 0 && failed++ == 0)
			dprintf(out, "round %d: %s\n", round, e.msg);
	}
	dprintf(out, "rc=%d failed=%d %s\n", r, failed, err.msg);
	return 0;
}

static int stress_scenario(void *arg)
{
	const struct scenario *sc = arg;
	pid_t churners[CHURNERS], agent, ghost;
	int status;

	prctl(PR_SET_NAME, "t-init");
	/* Kept processes at low pids: each scan reads their files before it
	 * reaches the churn, which is meanwhile free to vanish. */
	for (int i = 0; i < IDLERS; i++)
		CHECK(spawn_victim("t-idle", V_SLEEP, 0) == 0);
	for (int i = 0; i < CHURNERS; i++)
		if ((churners[i] = fork()) == 0)
			churn();
	/* Not kept: each round takes it for gone (EINVAL), none may fail. */
	if ((ghost = fork()) == 0) {
		prctl(PR_SET_NAME, "t-ghost");
		pause();
		_exit(0);
	}
	agent = fork();
	if (agent == 0)
		_exit(stress_agent(sc->out, ghost));
	CHECK(agent > 0 && waitpid(agent, &status, 0) == agent && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0);
	for (int i = 0; i < CHURNERS; i++) {
		/* Still running: quiesce and logout left the kept ones alone. */
		CHECK(churners[i] > 0 && waitpid(churners[i], &status, WNOHANG) == 0);
		kill(churners[i], SIGKILL);
		waitpid(churners[i], NULL, 0);
	}
	kill(ghost, SIGKILL);
	waitpid(ghost, NULL, 0);
	return fx_failures;
}

/* A process may vanish at any step of a stop (between the /proc scan and
 * pidfd_open, inside pidfd_open, while its files are read, before its
 * signal): QUIESCE and logout succeed in every one of many rounds while
 * process groups start and end without pause, and when pidfd_open answers
 * EINVAL (certain here for one process). */
TEST_CASE(processes_vanishing_meanwhile)
{
	struct scenario sc;
	int p[2];
	char *rep;

	if (!t_is_root())
		t_skip("namespaces need root");
	CU_ASSERT_EQUAL_FATAL(open_report(p), 0);
	sc.out = p[1];
	CHECK_NS_RESULT(ns_run(NS_PID | NS_PROC, stress_scenario, &sc, 240));
	rep = read_available(p[0]);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep, "rc=0 failed=0 "));
	if (!strstr(rep, "rc=0 failed=0 "))
		fprintf(stderr, "report:\n%s", rep);
	free(rep);
	close(p[0]);
	close(p[1]);
}
