/*
 * power.c -- PREFLIGHT's power check on Linux: a re-image must not start on
 * a laptop's battery, which could die between the swap and the reboot.
 * The kernel lists every power supply under /sys/class/power_supply/NAME
 * with its `type` (Mains, Battery, USB, UPS...) and, for mains supplies,
 * `online` (1 when plugged in).
 */
#define _GNU_SOURCE
#include "power.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The first line of dir/name/attr into buf ("" if unreadable). */
static void read_attr(int dirfd, const char *name, const char *attr, char *buf, size_t len)
{
	char path[512];
	ssize_t n;
	int fd;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s", name, attr);
	if ((fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

int posix_power(const char *dir)
{
	int mains_online = 0, battery = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return REIMAGE_POWER_UNKNOWN;
	while ((de = readdir(d))) {
		char type[32], value[32];
		if (de->d_name[0] == '.')
			continue;
		read_attr(dirfd(d), de->d_name, "type", type, sizeof(type));
		if (!strcmp(type, "Battery")) {
			/* A peripheral's battery (a mouse) does not power the machine. */
			read_attr(dirfd(d), de->d_name, "scope", value, sizeof(value));
			if (strcmp(value, "Device"))
				battery = 1;
		} else if (type[0]) {
			read_attr(dirfd(d), de->d_name, "online", value, sizeof(value));
			if (!strcmp(value, "1"))
				mains_online = 1;
		}
	}
	closedir(d);
	if (mains_online)
		return REIMAGE_POWER_AC;
	return battery ? REIMAGE_POWER_BATTERY : REIMAGE_POWER_UNKNOWN;
}
