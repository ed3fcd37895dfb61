/*
 * quiesce.c -- QUIESCE, second half: stop every process the machine does
 * not need before the swap, so that nothing writes into the old image
 * while its entries are renamed, and nothing runs from it afterwards.
 * What is never stopped (PID 1, kernel threads, the caller and its
 * ancestors) is decided in procs.c; this file adds the keep_processes
 * list: names of processes and systemd units that keep the machine
 * reachable until the reboot.
 */
#define _GNU_SOURCE
#include "posix.h"

#include <string.h>

static int is_unit_name(const char *name)
{
	size_t n = strlen(name);
	return (n > 8 && strcmp(name + n - 8, ".service") == 0) ||
	       (n > 6 && strcmp(name + n - 6, ".scope") == 0);
}

/* A unit entry names the unit of the process's cgroup; any other entry
 * names its comm, which the kernel cuts to 15 characters
 * ("systemd-journald" runs as "systemd-journal"). */
static int keep_matches(const char *entry, const struct proc_info *p)
{
	if (is_unit_name(entry))
		return strcmp(entry, p->unit) == 0;
	return strncmp(entry, p->comm, sizeof(p->comm) - 1) == 0;
}

static int select_unneeded(const struct posix *px, const struct proc_info *p)
{
	for (char **k = px->keep; *k; k++)
		if (keep_matches(*k, p))
			return 0;
	return 1;
}

int posix_quiesce(void *ctx, const char *root, struct reimage_error *err)
{
	(void)root;  /* processes are the machine's, whatever the root */
	return posix_stop_processes(ctx, "quiesce", select_unneeded, err);
}
