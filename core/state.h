/*
 * state.h -- <root>/.reimage/state: the job's phase and status, written
 * (temp, fsync, rename, fsync dir) before each phase starts, so that
 * `reimage status` and `recover` know where a job stood, even after a
 * power cut.  JSON (jansson).
 */
#ifndef REIMAGE_STATE_H
#define REIMAGE_STATE_H

#include <reimage/plugin.h>
#include <stdint.h>

#define STATE_STR 256

struct job_state {
	char job[STATE_STR];
	long long serial;
	char phase[32];       /* PREFLIGHT ... COMMIT, or FALLBACK */
	char status[32];      /* running, failed, pending, committed, rolled-back */
	char backend[64];     /* the backend that ran the swap, for recover */
	char error[REIMAGE_ERRMSG_MAX];
	int64_t time;         /* when this state was written (Unix time) */
	int64_t swapped;      /* when the swap completed, 0 before */
	long long keep_old_days;
	char deferred[REIMAGE_ERRMSG_MAX];  /* entries the swap deferred to the boot, one a line */
};

int state_write(const char *root, struct job_state *st, struct reimage_error *err);
/* -ENOENT if there is no state. */
int state_read(const char *root, struct job_state *st, struct reimage_error *err);

/* Names one a line <-> a JSON array of strings (state and reports).
 * names_json returns a new reference, NULL without memory; json_names
 * fills buf ("" for anything but an array). */
struct json_t;
struct json_t *state_names_json(const char *names);
void state_json_names(const struct json_t *array, char *buf, size_t cap);

#endif
