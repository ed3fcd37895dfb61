/*
 * units.c -- TRIAL checks of service units: `systemctl is-active` of the
 * unit in the running (new) image.  Exit 0 is active; any other status
 * is not active; no systemctl is an error (this image has no systemd).
 */
#define _GNU_SOURCE
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const systemctl_paths[] = { "/usr/bin/systemctl", "/bin/systemctl", NULL };

int posix_unit_active(void *ctx, const char *unit, struct reimage_error *err)
{
	struct posix *px = ctx;
	const char *systemctl = NULL;
	int status;
	pid_t pid;

	/* A unit name, never an option or a path. */
	if (!unit[0] || unit[0] == '-' || strchr(unit, '/'))
		return posix_fail(px, err, EINVAL, "unit '%s': not a unit name", unit);
	for (const char *const *p = systemctl_paths; *p && !systemctl; p++)
		if (access(*p, X_OK) == 0)
			systemctl = *p;
	if (!systemctl)
		return posix_fail(px, err, ENOENT, "unit %s: no systemctl in this image", unit);
	char *const argv[] = { (char *)systemctl, "is-active", "--quiet", "--", (char *)unit, NULL };
	char *const envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", NULL };
	pid = fork();
	if (pid < 0)
		return posix_fail(px, err, errno, "unit %s: fork", unit);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		execve(systemctl, argv, envp);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return posix_fail(px, err, errno, "unit %s: wait", unit);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return posix_fail(px, err, ENOEXEC, "unit %s: %s could not run", unit, systemctl);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
