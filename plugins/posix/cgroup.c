/*
 * cgroup.c -- which systemd unit a process runs in, from the text of
 * /proc/PID/cgroup, so that keep_processes can name units
 * ("ssh.service") as well as process names.  Kept apart from procs.c
 * because it is pure text work, tested on its own.
 */
#define _GNU_SOURCE
#include "cgroup.h"

#include <string.h>

static int ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);
	return len > n && memcmp(s + len - n, suffix, n) == 0;
}

/* The innermost path component of one cgroup path that names a unit. */
static int unit_of_path(const char *path, size_t len, char *unit, size_t cap)
{
	size_t end = len;

	while (end > 0) {
		size_t start = end;
		while (start > 0 && path[start - 1] != '/')
			start--;
		if ((ends_with(path + start, end - start, ".service") ||
		     ends_with(path + start, end - start, ".scope")) &&
		    end - start < cap) {
			memcpy(unit, path + start, end - start);
			unit[end - start] = '\0';
			return 1;
		}
		end = start > 0 ? start - 1 : 0;
	}
	return 0;
}

void proc_unit_of_cgroup(const char *cgroup, char *unit, size_t len)
{
	/* Lines are "ID:CONTROLLERS:PATH".  The unified hierarchy ("0::")
	 * is systemd's own on a v2 or hybrid system; a v1 system keeps its
	 * units in the "name=systemd" hierarchy. */
	static const char v1_name[] = "name=systemd";
	char v1[256] = "";

	unit[0] = '\0';
	for (const char *line = cgroup; *line;) {
		const char *eol = strchrnul(line, '\n');
		const char *c1 = memchr(line, ':', (size_t)(eol - line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;

		if (c2) {
			const char *path = c2 + 1;
			size_t plen = (size_t)(eol - path);
			if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
				if (unit_of_path(path, plen, unit, len))
					return;
			} else if ((size_t)(c2 - c1 - 1) == sizeof(v1_name) - 1 &&
				   memcmp(c1 + 1, v1_name, sizeof(v1_name) - 1) == 0) {
				unit_of_path(path, plen, v1, sizeof(v1));
			}
		}
		line = *eol ? eol + 1 : eol;
	}
	if (strlen(v1) < len)
		memcpy(unit, v1, strlen(v1) + 1);
}
