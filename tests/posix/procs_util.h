/*
 * procs_util.h -- test processes for the quiesce and logout cases: each
 * is a child of the caller (PID 1 of the test's pid namespace), named
 * with PR_SET_NAME, and tells it is ready before it waits for a signal.
 */
#ifndef REIMAGE_TEST_POSIX_PROCS_UTIL_H
#define REIMAGE_TEST_POSIX_PROCS_UTIL_H

#include "posix_fixture.h"

#include <sys/types.h>

enum victim_kind {
	V_SLEEP,          /* waits; SIGTERM ends it */
	V_IGNORE_TERM,    /* ignores SIGTERM: only SIGKILL ends it */
	V_FORK_ON_TERM,   /* on SIGTERM starts "t-spawned", then exits */
	V_SET_LOGINUID,   /* sets its loginuid to 0 (a login), then waits */
};

/* Start a named process of kind (as uid if uid != 0).  Returns 0 once it
 * is ready, -1 if it did not get ready within 10 s. */
int spawn_victim(const char *name, enum victim_kind kind, uid_t uid);

/* Make this process look like no login: loginuid unset.  0 or -1. */
int clear_loginuid(void);

/*
 * The agent's side: fork "t-shell", which forks "t-agent", which loads
 * the plugin with conf, prepares it on dir and calls phase ("quiesce" or
 * "logout").  t-agent then writes to out: "rc=R ms=M\n", "err=MSG\n",
 * and one "alive=COMM\n" per process left that is not a zombie.  Returns
 * the number of failed checks.
 */
int run_agent(const char *conf, const char *dir, const char *phase, int out);

/* Everything readable on fd now (fd is non-blocking), malloc'ed. */
char *read_available(int fd);

/* 1 if report lists "alive=comm". */
int alive(const char *report, const char *comm);

#endif
