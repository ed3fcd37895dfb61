/*
 * notice.c -- the posix backend's user notices (WINDOW, before QUIESCE)
 * and activity inhibitors.
 *
 * Sessions come from logind where systemd is PID 1 (each session of
 * class "user": its terminal, its user, and whether it is graphical),
 * else from utmp (every USER_PROCESS entry with a terminal).  Terminals
 * get the text as wall(1) writes it (tty.c), and answer "defer" there;
 * a graphical session gets a desktop notification through notify-send,
 * run as the session's user on its own D-Bus (/run/user/UID/bus), with a
 * time limit.  Inhibitors are processes found by name in /proc.
 */
#define _GNU_SOURCE
#include "posix.h"
#include "tty.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utmpx.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>
#endif

#define SESSIONS_MAX 64
#define DESKTOP_TIMEOUT_MS 5000

struct session_list {
	struct tty_session tty[SESSIONS_MAX];
	size_t n_tty;
	uid_t desktop_uid[SESSIONS_MAX];
	char desktop_user[SESSIONS_MAX][64];
	size_t n_desktop;
};

static void add_tty(struct session_list *l, const char *line, const char *user)
{
	char path[256];
	snprintf(path, sizeof(path), "%s%s", line[0] == '/' ? "" : "/dev/", line);
	/* A terminal name never climbs out of /dev. */
	if (strstr(path, "..") || strncmp(path, "/dev/", 5))
		return;
	for (size_t i = 0; i < l->n_tty; i++)
		if (!strcmp(l->tty[i].path, path))
			return;
	if (l->n_tty == SESSIONS_MAX)
		return;
	snprintf(l->tty[l->n_tty].path, sizeof(l->tty[0].path), "%s", path);
	snprintf(l->tty[l->n_tty].user, sizeof(l->tty[0].user), "%s", user);
	l->n_tty++;
}

static void utmp_sessions(struct session_list *l)
{
	struct utmpx *u;
	setutxent();
	while ((u = getutxent())) {
		char line[sizeof(u->ut_line) + 1], user[sizeof(u->ut_user) + 1];
		if (u->ut_type != USER_PROCESS || !u->ut_line[0])
			continue;
		snprintf(line, sizeof(line), "%.*s", (int)sizeof(u->ut_line), u->ut_line);
		snprintf(user, sizeof(user), "%.*s", (int)sizeof(u->ut_user), u->ut_user);
		add_tty(l, line, user);
	}
	endutxent();
}

#ifdef HAVE_LIBSYSTEMD
/* 0 if logind listed the sessions, < 0 if it cannot serve. */
static int logind_sessions(struct session_list *l)
{
	char **ids = NULL;
	int n;

	if (sd_booted() <= 0 || (n = sd_get_sessions(&ids)) < 0)
		return -ENOENT;
	for (int i = 0; i < n; i++) {
		char *cls = NULL, *type = NULL, *tty = NULL;
		uid_t uid;
		struct passwd *pw;
		if (sd_session_get_class(ids[i], &cls) >= 0 && !strcmp(cls, "user") &&
		    sd_session_get_uid(ids[i], &uid) >= 0 && (pw = getpwuid(uid))) {
			if (sd_session_get_tty(ids[i], &tty) >= 0 && tty[0])
				add_tty(l, tty, pw->pw_name);
			if (sd_session_get_type(ids[i], &type) >= 0 &&
			    (!strcmp(type, "x11") || !strcmp(type, "wayland")) &&
			    l->n_desktop < SESSIONS_MAX) {
				l->desktop_uid[l->n_desktop] = uid;
				snprintf(l->desktop_user[l->n_desktop], 64, "%s", pw->pw_name);
				l->n_desktop++;
			}
		}
		free(cls);
		free(type);
		free(tty);
		free(ids[i]);
	}
	free(ids);
	return 0;
}
#endif

/* notify-send as the session's user on its bus; 1 if it was shown. */
static int desktop_notify(uid_t uid, const char *text)
{
	char bus[128], runtime[64];
	struct passwd *pw = getpwuid(uid);
	pid_t pid;
	int status;

	snprintf(runtime, sizeof(runtime), "/run/user/%u", (unsigned)uid);
	snprintf(bus, sizeof(bus), "DBUS_SESSION_BUS_ADDRESS=unix:path=%s/bus", runtime);
	if (!pw || access(runtime, F_OK) < 0)
		return 0;
	if ((pid = fork()) < 0)
		return 0;
	if (pid == 0) {
		char xdg[96];
		snprintf(xdg, sizeof(xdg), "XDG_RUNTIME_DIR=%s", runtime);
		char *envp[] = { bus, xdg, "PATH=/usr/bin:/bin", NULL };
		/* The user's own groups only: none of the agent's. */
		if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
		    setuid(uid) < 0)
			_exit(126);
		execle("/usr/bin/notify-send", "notify-send", "-u", "critical", "-a", "reimage",
		       "System restart", text, (char *)NULL, envp);
		_exit(127);
	}
	for (int waited = 0; waited < DESKTOP_TIMEOUT_MS; waited += 50) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) && WEXITSTATUS(status) == 0;
		poll(NULL, 0, 50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 0;
}

int posix_notify_users(void *ctx, const struct reimage_notice *n,
		       struct reimage_notice_result *ret, struct reimage_error *err)
{
	struct session_list *l = calloc(1, sizeof(*l));
	int listed = -ENOENT;

	if (!l)
		return posix_fail(ctx, err, ENOMEM, "notify users");
#ifdef HAVE_LIBSYSTEMD
	listed = logind_sessions(l);
#endif
	if (listed < 0)
		utmp_sessions(l);
	for (size_t i = 0; i < l->n_desktop; i++)
		if (desktop_notify(l->desktop_uid[i], n->text)) {
			size_t len = strlen(ret->channels);
			snprintf(ret->channels + len, sizeof(ret->channels) - len, "%sdesktop:%s",
				 len ? " " : "", l->desktop_user[i]);
			ret->sessions++;
		}
	tty_notify(l->tty, l->n_tty, n, ret);
	free(l);
	return 0;
}

int posix_inhibited(void *ctx, const char *const *processes, char *ret_what, size_t cap,
		    struct reimage_error *err)
{
	int r = tty_process_running(processes, ret_what, cap);
	if (r < 0)
		return posix_fail(ctx, err, -r, "read /proc");
	return r;
}
