/*
 * logout.c -- QUIESCE, first half: end every user session before the
 * processes the machine does not need are stopped.
 *
 * Where systemd is PID 1 (and use_logind is set), logind is asked over
 * D-Bus to terminate each session of Class=user, except the caller's own:
 * that ends the session scopes cleanly, the way `loginctl terminate-session`
 * does.  Then, on every system, the processes of login users are stopped
 * (SIGTERM, grace, SIGKILL; procs.c): those with a loginuid (set by
 * pam_loginuid at login, inherited by everything started in the session)
 * and those of an ordinary user's uid, 1000..59999 (Debian's UID_MIN and
 * UID_MAX; 65534, nobody, is a system account).  That second pass needs
 * no logind and also catches what the sessions left behind.
 */
#define _GNU_SOURCE
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>
#endif

#define USER_UID_MIN 1000
#define USER_UID_MAX 59999

static int select_login_user(const struct posix *px, const struct proc_info *p)
{
	(void)px;
	return p->loginuid != POSIX_UID_UNSET ||
	       (p->uid >= USER_UID_MIN && p->uid <= USER_UID_MAX);
}

#ifdef HAVE_LIBSYSTEMD
#define LOGIN1 "org.freedesktop.login1"
#define LOGIN1_PATH "/org/freedesktop/login1"

/* logind serves the machine only where systemd is PID 1 of this pid
 * namespace (checked after /proc was shown to be this namespace's). */
static int pid1_is_systemd(int proc_fd)
{
	char comm[32];
	int fd = openat(proc_fd, "1/comm", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, comm, sizeof(comm) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return strcmp(comm, "systemd") == 0 && sd_booted() > 0;
}

static void terminate_if_user(struct posix *px, sd_bus *bus, const char *id, const char *path,
			      const char *user, const char *own)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	char *cls = NULL;
	int r;

	if (own && strcmp(own, id) == 0)
		return;
	r = sd_bus_get_property_string(bus, LOGIN1, path, LOGIN1 ".Session", "Class", &e, &cls);
	if (r >= 0 && strcmp(cls, "user") == 0) {
		r = sd_bus_call_method(bus, LOGIN1, LOGIN1_PATH, LOGIN1 ".Manager",
				       "TerminateSession", &e, NULL, "s", id);
		if (r >= 0)
			px->host->log(REIMAGE_LOG_INFO, "posix: logout: ended session %s of %s", id,
				      user);
	}
	if (r < 0)
		px->host->log(REIMAGE_LOG_WARNING, "posix: logout: session %s: %s", id,
			      e.message ? e.message : strerror(-r));
	free(cls);
	sd_bus_error_free(&e);
}

/* Failures here are logged, not returned: the process pass that follows
 * ends the sessions' processes anyway. */
static void logind_terminate_sessions(struct posix *px)
{
	sd_bus *bus = NULL;
	sd_bus_message *reply = NULL;
	sd_bus_error e = SD_BUS_ERROR_NULL;
	const char *id, *user, *seat, *path;
	char *own = NULL;
	uint32_t uid;
	int r;

	if (sd_pid_get_session(0, &own) < 0)
		own = NULL;  /* the agent runs outside any session */
	r = sd_bus_open_system(&bus);
	if (r >= 0)
		r = sd_bus_call_method(bus, LOGIN1, LOGIN1_PATH, LOGIN1 ".Manager", "ListSessions",
				       &e, &reply, NULL);
	if (r >= 0)
		r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "(susso)");
	while (r >= 0 &&
	       (r = sd_bus_message_read(reply, "(susso)", &id, &uid, &user, &seat, &path)) > 0)
		terminate_if_user(px, bus, id, path, user, own);
	if (r < 0)
		px->host->log(REIMAGE_LOG_WARNING, "posix: logout: logind: %s",
			      e.message ? e.message : strerror(-r));
	sd_bus_error_free(&e);
	sd_bus_message_unref(reply);
	sd_bus_flush_close_unref(bus);
	free(own);
}
#endif

int posix_logout(void *ctx, const char *root, struct reimage_error *err)
{
	struct posix *px = ctx;
	int r;

	(void)root;  /* sessions are the machine's, whatever the root */
	if ((r = posix_check_own_namespace(px, "logout", err)) < 0)
		return r;
#ifdef HAVE_LIBSYSTEMD
	if (px->use_logind && pid1_is_systemd(px->proc_fd))
		logind_terminate_sessions(px);
#else
	if (px->use_logind)
		px->host->log(REIMAGE_LOG_DEBUG, "posix: logout: built without libsystemd; "
			      "sessions end by their processes");
#endif
	return posix_stop_processes(px, "logout", select_login_user, err);
}
