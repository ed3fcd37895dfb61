/*
 * notify.h -- telling the service manager what the agent does: READY=1
 * once it polls, STATUS= with the job's phase, WATCHDOG=1 pings from the
 * loop and the job's callbacks, RELOADING=1 and STOPPING=1 (systemd's
 * sd_notify protocol, Type=notify).  Without $NOTIFY_SOCKET every call
 * does nothing; none blocks on a manager that does not read (notify.c).
 */
#ifndef REIMAGE_NOTIFY_H
#define REIMAGE_NOTIFY_H

/* One notification ("READY=1\nSTATUS=..."), formatted. */
void service_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* WATCHDOG=1 if the manager asked for a watchdog ($WATCHDOG_USEC), at
 * most every half of its interval: cheap enough to call from every
 * progress callback. */
void service_watchdog(void);

#endif
