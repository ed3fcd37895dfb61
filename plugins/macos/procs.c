/*
 * procs.c -- QUIESCE on macOS: end the users' sessions (logout), then
 * stop every process the Mac does not need until the reboot (quiesce).
 *
 * logout: every user with a process (uid 501 and up: macOS gives login
 * accounts uids from 501) and the user at the screen (owner of
 * /dev/console) is logged out through launchd: `launchctl bootout
 * gui/UID` ends the GUI session at the screen (loginwindow and every app
 * of it), `launchctl bootout user/UID` the user's background domain
 * (ssh and console logins, agents).  A bootout that fails is logged, not
 * returned: the process pass that follows stops what is left of the
 * user's processes -- loginwindow among them, which is the other way a
 * GUI session ends.  The session the agent was started from (sudo in a
 * Terminal) is not booted out, which would end the agent with it; its
 * other processes are stopped all the same.
 *
 * quiesce: every process except kernel_task (0), launchd (1), the agent
 * and its ancestors and keep_processes: SIGTERM, grace_seconds, SIGKILL,
 * a few rounds for processes started meanwhile.  launchd restarts some
 * daemons it keeps alive; those left after the last round keep running
 * until the reboot.  Processes are listed with libproc and signalled by
 * pid (macOS has no pidfd: a pid reused within the grace period could be
 * signalled; the window is the grace period, the set is re-read each
 * round).
 */
#define _GNU_SOURCE
#include "macos.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USER_UID_MIN 501          /* macOS's first login account */
#define USER_UID_END 0x80000000u  /* nobody is -2; network accounts stay below */
#define STOP_ROUNDS 4             /* scans for processes started meanwhile */
#define POLL_MS 100
#define KILL_WAIT_MS 5000
#define ANCESTORS_MAX 256         /* deeper chains are a loop in the table */

/* Decides whether the stop loop ends process p; 1 yes, 0 no. */
typedef int (*select_fn)(const struct macos *mc, const struct macos_proc *p);

static int is_login_user(uid_t uid)
{
	return uid >= USER_UID_MIN && uid < USER_UID_END;
}

static const struct macos_proc *find(const struct macos_proc *ps, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (ps[i].pid == pid)
			return &ps[i];
	return NULL;
}

/* The caller (depth 0), then its ancestors below launchd; NULL past them. */
static const struct macos_proc *ancestor(const struct macos_proc *ps, size_t n, int depth)
{
	const struct macos_proc *me = find(ps, n, getpid());

	if (depth >= ANCESTORS_MAX)
		return NULL;
	for (int d = 0; me && d < depth; d++)
		me = me->ppid > 1 ? find(ps, n, me->ppid) : NULL;
	return me;
}

/* kernel_task, launchd, the caller and its ancestors: never stopped. */
static int is_protected(const struct macos_proc *ps, size_t n, pid_t pid)
{
	const struct macos_proc *a;

	if (pid <= 1 || pid == getpid())
		return 1;
	for (int d = 1; (a = ancestor(ps, n, d)); d++)
		if (a->pid == pid)
			return 1;
	return 0;
}

/* 1 if the caller or an ancestor runs as uid: the agent was started in
 * that user's session, which a bootout would end with it. */
static int in_callers_session(const struct macos_proc *ps, size_t n, uid_t uid)
{
	const struct macos_proc *a;

	for (int d = 0; (a = ancestor(ps, n, d)); d++)
		if (a->uid == uid)
			return 1;
	return 0;
}

/* Wait until none of pids (count n, 0 marks one gone) is alive, or ms pass. */
static size_t wait_gone(struct macos *mc, pid_t *pids, size_t n, int ms)
{
	int64_t deadline = mc->sys->now_ms(mc->sys) + ms;
	size_t alive;

	for (;;) {
		alive = 0;
		for (size_t i = 0; i < n; i++)
			if (pids[i] && mc->sys->signal(mc->sys, pids[i], 0) == -ESRCH)
				pids[i] = 0;
			else if (pids[i])
				alive++;
		if (!alive || mc->sys->now_ms(mc->sys) >= deadline)
			return alive;
		mc->sys->sleep_ms(mc->sys, POLL_MS);
	}
}

static void signal_all(struct macos *mc, pid_t *pids, size_t n, int sig, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (!pids[i])
			continue;
		int r = mc->sys->signal(mc->sys, pids[i], sig);
		if (r == -ESRCH)
			pids[i] = 0;
		else if (r < 0)
			mc->host->log(REIMAGE_LOG_WARNING, "macos: %s: signal %d to pid %d: %s", what,
				      sig, (int)pids[i], strerror(-r));
	}
}

/* One round: the processes select() picks now get SIGTERM, then SIGKILL
 * after grace_seconds.  *ret_found: how many were picked. */
static int stop_round(struct macos *mc, const char *what, select_fn select, size_t *ret_found,
		      struct reimage_error *err)
{
	struct macos_proc *ps = NULL;
	pid_t *pids;
	size_t n = 0, k = 0;
	int r;

	if ((r = mc->sys->procs(mc->sys, &ps, &n)) < 0)
		return macos_fail(mc, err, -r, "%s: list processes", what);
	if (!(pids = calloc(n + 1, sizeof(*pids)))) {
		free(ps);
		return macos_fail(mc, err, ENOMEM, "%s", what);
	}
	for (size_t i = 0; i < n; i++)
		if (!is_protected(ps, n, ps[i].pid) && select(mc, &ps[i]))
			pids[k++] = ps[i].pid;
	free(ps);
	*ret_found = k;
	signal_all(mc, pids, k, SIGTERM, what);
	if (wait_gone(mc, pids, k, mc->grace_seconds * 1000)) {
		signal_all(mc, pids, k, SIGKILL, what);
		size_t left = wait_gone(mc, pids, k, KILL_WAIT_MS);
		if (left)
			mc->host->log(REIMAGE_LOG_WARNING, "macos: %s: %zu processes outlived SIGKILL",
				      what, left);
	}
	free(pids);
	return 0;
}

static int stop_processes(struct macos *mc, const char *what, select_fn select,
			  struct reimage_error *err)
{
	size_t found = 0;
	int r;

	for (int round = 0; round < STOP_ROUNDS; round++) {
		if ((r = stop_round(mc, what, select, &found, err)) < 0)
			return r;
		if (!found)
			return 0;
	}
	mc->host->log(REIMAGE_LOG_NOTICE, "macos: %s: processes restarted after %d rounds are left "
		      "running until the reboot", what, STOP_ROUNDS);
	return 0;
}

static int select_login_user(const struct macos *mc, const struct macos_proc *p)
{
	(void)mc;
	return is_login_user(p->uid);
}

static int select_unneeded(const struct macos *mc, const struct macos_proc *p)
{
	for (char **k = mc->keep; *k; k++)
		if (strcmp(*k, p->name) == 0)
			return 0;
	return 1;
}

static int uid_cmp(const void *a, const void *b)
{
	uid_t x = *(const uid_t *)a, y = *(const uid_t *)b;
	return x < y ? -1 : x > y;
}

/* The login users with a process or at the screen, sorted, each once,
 * into uids (room for n + 1); returns their count. */
static size_t logged_in(const struct macos_proc *ps, size_t n, uid_t console, uid_t *uids)
{
	size_t k = 0, u = 0;

	if (is_login_user(console))
		uids[k++] = console;
	for (size_t i = 0; i < n; i++)
		if (is_login_user(ps[i].uid))
			uids[k++] = ps[i].uid;
	qsort(uids, k, sizeof(*uids), uid_cmp);
	for (size_t i = 0; i < k; i++)
		if (!u || uids[u - 1] != uids[i])
			uids[u++] = uids[i];
	return u;
}

/* A failed bootout is logged: the process pass ends what it left. */
static void bootout(struct macos *mc, const char *domain, uid_t uid)
{
	struct reimage_error e = { 0 };
	char target[64], what[96];

	snprintf(target, sizeof(target), "%s/%u", domain, (unsigned)uid);
	snprintf(what, sizeof(what), "logout: end %s", target);
	const char *const argv[] = { MACOS_LAUNCHCTL, "bootout", target, NULL };
	if (macos_run(mc, what, argv, NULL, &e) < 0)
		mc->host->log(REIMAGE_LOG_WARNING, "macos: %s; its processes are stopped instead",
			      e.msg);
}

int macos_logout(void *ctx, const char *root, struct reimage_error *err)
{
	struct macos *mc = ctx;
	struct macos_proc *ps = NULL;
	uid_t console = 0, *uids;
	size_t n = 0, users;
	int r;

	(void)root;  /* sessions are the machine's, whatever the root */
	if (mc->sys->console_uid(mc->sys, &console) < 0)
		console = 0;  /* no console device: no GUI session */
	if ((r = mc->sys->procs(mc->sys, &ps, &n)) < 0)
		return macos_fail(mc, err, -r, "logout: list processes");
	if (!(uids = calloc(n + 1, sizeof(*uids)))) {
		free(ps);
		return macos_fail(mc, err, ENOMEM, "logout");
	}
	users = logged_in(ps, n, console, uids);
	for (size_t i = 0; i < users; i++) {
		if (in_callers_session(ps, n, uids[i])) {
			mc->host->log(REIMAGE_LOG_NOTICE, "macos: logout: the agent runs in a session "
				      "of uid %u; its processes are stopped, its launchd domains left",
				      (unsigned)uids[i]);
			continue;
		}
		if (uids[i] == console)
			bootout(mc, "gui", uids[i]);
		bootout(mc, "user", uids[i]);
	}
	free(uids);
	free(ps);
	return stop_processes(mc, "logout", select_login_user, err);
}

int macos_quiesce(void *ctx, const char *root, struct reimage_error *err)
{
	(void)root;  /* processes are the machine's, whatever the root */
	return stop_processes(ctx, "quiesce", select_unneeded, err);
}
