/*
 * cgroup.h -- the systemd unit of a process, from /proc/PID/cgroup.
 */
#ifndef REIMAGE_POSIX_CGROUP_H
#define REIMAGE_POSIX_CGROUP_H

#include <stddef.h>

/* The innermost unit (".service" or ".scope") a /proc/PID/cgroup text
 * places the process in, or "": the unified hierarchy ("0::/...") first,
 * then the v1 "name=systemd" one.  A unit name that does not fit len is
 * never returned cut short. */
void proc_unit_of_cgroup(const char *cgroup, char *unit, size_t len);

#endif
