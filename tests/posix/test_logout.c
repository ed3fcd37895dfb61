/*
 * test_logout.c -- LOGOUT without logind, only ever inside a pid
 * namespace the case creates: processes of login users (a loginuid set,
 * an ordinary user's uid) are stopped; root daemons and nobody are not
 * (they are quiesce's business), nor the agent and its ancestors.
 */
#define _GNU_SOURCE
#include "procs_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define CONF "grace_seconds = 1; use_logind = false; lock_memory = false;\n"

struct scenario {
	int out;
	int foreign;
};

static int logout_scenario(void *arg)
{
	const struct scenario *sc = arg;

	prctl(PR_SET_NAME, "t-init");
	/* The test may run in a login session: every process here would
	 * inherit its loginuid. */
	if (clear_loginuid() < 0) {
		fprintf(stderr, "cannot clear the loginuid this test inherited\n");
		return 77;
	}
	CHECK(spawn_victim("t-root", V_SLEEP, 0) == 0);
	if (!sc->foreign) {
		CHECK(spawn_victim("t-user", V_IGNORE_TERM, 1000) == 0);
		CHECK(spawn_victim("t-login", V_SET_LOGINUID, 0) == 0);
		CHECK(spawn_victim("t-nobody", V_SLEEP, 65534) == 0);
	}
	CHECK(run_agent(CONF, t_dir(), "logout", sc->out) == 0);
	return fx_failures;
}

static char *run(unsigned flags, int foreign)
{
	struct scenario sc = { .foreign = foreign };
	int p[2];
	char *rep;

	if (!t_is_root())
		t_skip("namespaces need root");
	CU_ASSERT_FATAL(pipe(p) == 0 && fcntl(p[0], F_SETFL, O_NONBLOCK) == 0);
	sc.out = p[1];
	CHECK_NS_RESULT(ns_run(flags, logout_scenario, &sc, 120));
	rep = read_available(p[0]);
	close(p[0]);
	close(p[1]);
	return rep;
}

TEST_CASE(stops_login_users)
{
	char *rep = run(NS_PID | NS_PROC, 0);

	fprintf(stderr, "report:\n%s", rep);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep, "rc=0 "));
	CU_ASSERT(alive(rep, "t-init"));
	CU_ASSERT(alive(rep, "t-shell"));
	CU_ASSERT(alive(rep, "t-agent"));
	CU_ASSERT(alive(rep, "t-root"));
	CU_ASSERT(alive(rep, "t-nobody"));
	CU_ASSERT(!alive(rep, "t-user"));
	CU_ASSERT(!alive(rep, "t-login"));
	free(rep);
}

TEST_CASE(refuses_foreign_proc)
{
	char *rep = run(NS_PID, 1);

	CU_ASSERT_PTR_NOT_NULL(strstr(rep, "rc=-1 "));
	CU_ASSERT_PTR_NOT_NULL(strstr(rep, "logout: refusing to stop processes"));
	CU_ASSERT(alive(rep, "t-root"));
	free(rep);
}
