/*
 * units.c -- TRIAL checks of service units on macOS: a launchd job of
 * the system domain, by label ("com.example.agent"), is active when
 * `launchctl print system/LABEL` shows it running.  launchctl fails for
 * a label it does not know (exit 113): that is "not active", as is a job
 * that is loaded but not running; only a launchctl that cannot be run
 * is an error.
 */
#define _GNU_SOURCE
#include "macos.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int macos_unit_active(void *ctx, const char *unit, struct reimage_error *err)
{
	struct macos *mc = ctx;
	struct macos_output *out;
	char target[320];
	int status;

	/* A label, never an option or a path. */
	if (!unit[0] || unit[0] == '-' || strchr(unit, '/') || strlen(unit) > 256)
		return macos_fail(mc, err, EINVAL, "unit '%s': not a launchd label", unit);
	if (!(out = malloc(sizeof(*out))))
		return macos_fail(mc, err, ENOMEM, "unit %s", unit);
	snprintf(target, sizeof(target), "system/%s", unit);
	const char *const argv[] = { MACOS_LAUNCHCTL, "print", target, NULL };
	struct reimage_error e = { 0 };
	status = macos_run(mc, "unit", argv, out, &e);
	if (status == 0)
		status = strstr(out->text, "\tstate = running\n") != NULL;
	else if (status == -EIO)
		status = 0;  /* launchctl ran and said no */
	else
		status = macos_fail(mc, err, -status, "unit %s: cannot run %s", unit, MACOS_LAUNCHCTL);
	free(out);
	return status;
}
