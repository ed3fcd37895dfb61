/*
 * agentstate.h -- what the agent remembers across runs and reboots, in
 * <state_dir>/agent.json: the last serial it ran (written durably before
 * the job's first step, so a replay is refused even after a power cut;
 * the state directory travels with the agent through the swap), and the
 * last outcome it reported (so a restart reports each outcome once).
 *
 * It also keeps what no clock reset and no replaying store may undo: the
 * last serial_reset run (accept.h), the floor of trusted time (the newest
 * signing time seen in a verified document: a job's signed_at or a store
 * timestamp; a job that expired before it is refused whatever the clock
 * says) and the newest store timestamp seen (an older one is a replay).
 */
#ifndef REIMAGE_AGENTSTATE_H
#define REIMAGE_AGENTSTATE_H

#include <reimage/plugin.h>

struct agent_state {
	int have_serial;
	long long last_serial;
	long long last_reset;      /* the last serial_reset run here, 0: none */
	int64_t time_floor;        /* Unix time; 0: none seen yet */
	int64_t store_time;        /* the newest store timestamp seen; 0: none */
	char last_job[256];
	char reported_job[256];    /* the outcome last reported */
	char reported_state[32];
};

/* A missing file is an empty state. */
int agent_state_load(const char *state_dir, struct agent_state *st, struct reimage_error *err);
/* temp, fsync, rename, fsync(dir). */
int agent_state_save(const char *state_dir, const struct agent_state *st,
		     struct reimage_error *err);

#endif
