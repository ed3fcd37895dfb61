/*
 * notify.c -- the service manager's notifications (notify.h).
 */
#define _GNU_SOURCE
#include "notify.h"
#include "progress.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

void service_notify(const char *fmt, ...)
{
#ifdef HAVE_LIBSYSTEMD
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* 0: keep $NOTIFY_SOCKET, so that a later reload or stop still
	 * reaches the manager. */
	sd_notify(0, text);
#else
	(void)fmt;
#endif
}

void service_watchdog(void)
{
#ifdef HAVE_LIBSYSTEMD
	static int64_t last_ms = -1, half_ms = -1;
	if (half_ms < 0) {
		uint64_t usec = 0;
		half_ms = sd_watchdog_enabled(0, &usec) > 0 ? (int64_t)(usec / 2000) : 0;
	}
	if (half_ms == 0)
		return;
	int64_t now = progress_now_ms();
	if (last_ms >= 0 && now - last_ms < half_ms)
		return;
	last_ms = now;
	sd_notify(0, "WATCHDOG=1");
#endif
}
