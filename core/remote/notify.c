/*
 * notify.c -- the service manager's notifications (notify.h).
 *
 * The datagrams of sd_notify(3) are sent here rather than through
 * libsystemd: its sd_notify() blocks while the manager's queue is full
 * (net.unix.max_dgram_qlen, 10 datagrams by default), and an agent in
 * the middle of a job must not hang on a manager that is slow to read.
 */
#define _GNU_SOURCE
#include "notify.h"
#include "progress.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* How long a change of state (READY=1, STOPPING=1...) waits for room in
 * the manager's queue; a watchdog ping never waits. */
#define NOTIFY_WAIT_MS 1000

/* The manager's socket: $NOTIFY_SOCKET, a path or "@name" in the
 * abstract namespace.  0 if there is none (not run by a manager). */
static socklen_t manager_address(struct sockaddr_un *sa)
{
	const char *name = getenv("NOTIFY_SOCKET");
	size_t len = name ? strlen(name) : 0;

	if (len < 2 || len >= sizeof(sa->sun_path) || (name[0] != '/' && name[0] != '@'))
		return 0;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, len);
	if (name[0] == '@')
		sa->sun_path[0] = '\0';
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));
}

/* One datagram to the manager, waiting up to wait_ms for room; lost if
 * there is none then (the manager is not reading). */
static void notify_send(const char *text, int wait_ms)
{
	struct sockaddr_un sa;
	socklen_t len = manager_address(&sa);
	int fd;

	if (!len || (fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };
	if (wait_ms > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)!sendto(fd, text, strlen(text), MSG_NOSIGNAL | (wait_ms > 0 ? 0 : MSG_DONTWAIT),
		      (struct sockaddr *)&sa, len);
	close(fd);
}

void service_notify(const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	notify_send(text, NOTIFY_WAIT_MS);
}

/* Half the manager's watchdog interval in ms, 0 if it asked for none
 * ($WATCHDOG_USEC, for this process if $WATCHDOG_PID names one). */
static int64_t watchdog_half_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;

	if (!usec || (pid && strtol(pid, NULL, 10) != (long)getpid()))
		return 0;
	unsigned long long us = strtoull(usec, &end, 10);
	if (*end || us == 0)
		return 0;
	return us < 2000 ? 1 : (int64_t)(us / 2000);
}

void service_watchdog(void)
{
	static int64_t last_ms = -1, half_ms = -1;
	if (half_ms < 0)
		half_ms = watchdog_half_ms();
	if (half_ms == 0)
		return;
	int64_t now = progress_now_ms();
	if (last_ms >= 0 && now - last_ms < half_ms)
		return;
	last_ms = now;
	notify_send("WATCHDOG=1", 0);
}
