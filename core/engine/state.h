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

/* The phases of a job, in the order a job goes through them (phase.c has
 * the machine and the guarantees of each).  Their names are the ones
 * written in the state file, in reports and in logs: phase_name() is the
 * only place they are spelled. */
enum phase {
	PHASE_NONE,       /* "": no job yet */
	PHASE_ACCEPT,     /* the agent checks the signed job */
	PHASE_SCHEDULED,  /* waiting for its time */
	PHASE_PREFLIGHT,
	PHASE_PREPARE,
	PHASE_STAGE,
	PHASE_PRESERVE,
	PHASE_HOOKS,
	PHASE_LABEL,
	PHASE_WINDOW,
	PHASE_QUIESCE,
	PHASE_SWAP,
	PHASE_BOOT,
	PHASE_REPORT,
	PHASE_REBOOT,
	PHASE_TRIAL,      /* the new image's agent, after the reboot */
	PHASE_COMMIT,
	PHASE_FALLBACK,
	PHASE_COUNT
};

const char *phase_name(enum phase p);
/* The phase named name; PHASE_NONE for "" and for a name no phase has. */
enum phase phase_of(const char *name);
/* 1 if name is "" or a phase's name: a state file naming anything else is
 * damaged. */
int phase_known(const char *name);

struct job_state {
	char job[STATE_STR];
	long long serial;
	char phase[32];       /* phase_name(): PREFLIGHT ... COMMIT, or FALLBACK */
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
