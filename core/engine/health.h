/*
 * health.h -- TRIAL: the checks a new image must pass after its boot
 * before the job is committed (service units active, programs exiting 0,
 * the report location reachable, all within a deadline).  The job's
 * checks are saved at BOOT in <root>/.reimage/health (JSON), outside both
 * images, because the new image's agent has no job file: it reads them
 * there at its start.
 */
#ifndef REIMAGE_HEALTH_H
#define REIMAGE_HEALTH_H

#include "config.h"

#include <signal.h>

struct health_spec {
	char **units;      /* NULL-terminated */
	char **commands;
	int report;
	long long deadline;
};

/* Write the job's checks durably (temp, fsync, rename, fsync dir). */
int health_save(const char *root, const struct job_health *h, struct reimage_error *err);
/* -ENOENT if the job saved none. */
int health_load(const char *root, struct health_spec *ret, struct reimage_error *err);
void health_free(struct health_spec *h);
/* Remove the saved checks (after COMMIT or FALLBACK). */
void health_forget(const char *root);

struct health_probe {
	/* The backend's unit_active hook (may be NULL) and its ctx. */
	int (*unit_active)(void *ctx, const char *unit, struct reimage_error *err);
	void *backend;
	/* Put a report; 0 if the report location accepted it. */
	int (*report)(void *arg, struct reimage_error *err);
	void *arg;
	const volatile sig_atomic_t *stop;  /* may be NULL */
};

/* Run the checks, again every two seconds, until all pass (0) or the
 * deadline passes (< 0, the last failure in err). */
int health_run(const struct health_spec *h, const struct health_probe *p,
	       struct reimage_error *err);

#endif
