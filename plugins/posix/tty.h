/*
 * tty.h -- notices written to users' terminals (as wall(1) does) with the
 * answers read back, and the check for a running process by name.  Used
 * by the posix backend's notify_users/inhibited hooks and, compiled into
 * the core, by the sandbox backend (which writes to the terminals its
 * configuration names: the simulated sessions of tests).
 */
#ifndef REIMAGE_POSIX_TTY_H
#define REIMAGE_POSIX_TTY_H

#include <reimage/plugin.h>

/* One session's terminal and its user, for the report ("alice"). */
struct tty_session {
	char path[256];  /* "/dev/pts/3" */
	char user[64];
};

/* Write n->text to each terminal (opened O_NOCTTY, non-blocking; a path
 * that is not a terminal, or a terminal that does not take the text, is
 * skipped), then read their input for
 * up to n->wait_ms: a line "defer" sets ret->defer and ret->who.  Fills
 * ret->sessions and appends "tty:PATH" to ret->channels for each
 * terminal reached. */
void tty_notify(const struct tty_session *s, size_t n_sessions, const struct reimage_notice *n,
		struct reimage_notice_result *ret);
/* 1 if a process whose name (comm, or argv[0]'s last part) is one of
 * names runs, with the name in ret_what; 0 if none; -errno if /proc
 * cannot be read. */
int tty_process_running(const char *const *names, char *ret_what, size_t cap);

#endif
