/*
 * rollout.h -- waves of a rollout, kept in the job store.  reimagectl
 * submit assigns each target to a wave (written, signed, into its
 * document as rollout.wave) and publishes one small state document per
 * wave, signed by the administrator's key like a job; agents of wave k
 * GET only their wave's document (conditionally) and start once it says
 * "open" -- one request per poll whatever the fleet's size.  The
 * administrator's tool decides the waves (`reimagectl rollout advance`,
 * and `reimagectl wait -k`): it counts an open wave's reports once per
 * pass and publishes the decision signed: the next wave opens, or the
 * rollout halts.  An agent acts on no wave document that its trusted
 * keys do not verify, nor on one signed for another job or wave.
 *
 * Waves are numbered from 1 in the store's file names, its documents and
 * every message; struct wave_state.wave and rollout.wave count from 0.
 *
 *   <store>/rollouts/<job>/wave-<k>.json    the wave's state: a signed
 *                                           envelope (sign.h, kind
 *                                           "wave") around JSON naming
 *                                           the job, its serial and wave
 *   <store>/rollouts/<job>/wave-<k>.agents  its agents (a JSON array; read
 *                                           by the administrator's tool)
 *
 * Wave states: waiting (an earlier wave is not decided), open, committed
 * (every agent finished, or the wave's deadline passed, with failures
 * and silent agents within the budget), halted (the budget was exceeded
 * in this wave or an earlier one), stopped (reimagectl stop).  A wave
 * with a timeout (rollout.wave_timeout) is decided at opened + timeout at
 * the latest: its agents without a final report then count as failed.
 */
#ifndef REIMAGE_ROLLOUT_H
#define REIMAGE_ROLLOUT_H

#include "config.h"
#include "registry.h"

#include <stdint.h>

#define WAVE_NAME_MAX 64

struct wave_state {
	int wave;                   /* 0: the first (wave 1 in the store) */
	int waves;                  /* how many the rollout has */
	long long serial;           /* the job's serial: reports of another run
				     * of the same job id are not counted */
	char name[WAVE_NAME_MAX];   /* "10%" or a group name */
	long long size;             /* agents in it */
	int budget;                 /* percent that may fail */
	char state[16];
	int64_t opened, decided;    /* Unix times, 0: not yet */
	int64_t timeout;            /* seconds it may stay open, 0: no deadline */
	long long committed, failed, unfinished;  /* failed: failed or rolled back */
	long long cancelled, skipped, refused;    /* final, not failures */
	long long silent;           /* unfinished at the deadline (counted as failed) */
	char reason[256];
};

/* Which wave each target is in.  waves: "N%" (cumulative share of the
 * targets, in their order) or a group name, whose members are given in
 * groups as "NAME=A,B,..." (NULL-terminated); each target goes to the
 * first wave that takes it.  ret_wave[i] is target i's wave.  Every
 * target must land in a wave and no wave may be empty (nobody would
 * decide it): CONFIG errors naming the agent or the wave. */
int rollout_assign(const char *const *waves, size_t n_waves, const char *const *targets,
		   size_t n_targets, const char *const *groups, int *ret_wave,
		   struct reimage_error *err);

/* The wave's documents in the store; the state signed with the private
 * key in key (a PEM file). */
int rollout_wave_put(struct registry *reg, const struct agent_conf *ac, const char *store,
		     const char *job, const struct wave_state *ws, const char *key,
		     struct reimage_error *err);
int rollout_agents_put(struct registry *reg, const struct agent_conf *ac, const char *store,
		       const char *job, int wave, const char *const *agents, size_t n,
		       struct reimage_error *err);
/* Remove the documents of waves from..the last (from 0): a job id
 * submitted again (--reuse) with fewer waves leaves none of the old. */
int rollout_forget_waves(struct registry *reg, const struct agent_conf *ac, const char *store,
			 const char *job, int from, struct reimage_error *err);
/* Fetch wave's state, verified with ac's trusted_keys (revoked_keys
 * refused) and checked to be job's wave `wave`; etag as for store_fetch():
 * returns 0 (ret filled), REIMAGE_NOT_MODIFIED, or < 0 (NOTFOUND if the
 * rollout has no such wave; INTEGRITY or ACCESS if it does not verify). */
int rollout_wave_get(struct registry *reg, const struct agent_conf *ac, const char *store,
		     const char *job, int wave, char etag[REIMAGE_ETAG_MAX],
		     struct wave_state *ret, struct reimage_error *err);

/* Count wave's outcomes from its agents' reports on the job (ret filled
 * with the counts and, if decided, the decision): 2 + the wave's size
 * requests. */
int rollout_count(struct registry *reg, const struct agent_conf *ac, const char *store,
		  const char *job, int wave, int64_t now, struct wave_state *ret,
		  struct reimage_error *err);
/* rollout_count(), and if the wave is decided, the decision written
 * signed with key: the next wave opened (first) and this wave's record,
 * or this wave and every later one halted.  A wave already decided is
 * left as it is (one request). */
int rollout_tally(struct registry *reg, const struct agent_conf *ac, const char *store,
		  const char *job, int wave, int64_t now, const char *key, struct wave_state *ret,
		  struct reimage_error *err);
/* One pass of the administrator over every wave of job: rollout_tally()
 * of each, in order (a wave it opens is counted in the same pass).
 * *ret_open: the wave now open (-1: none, the rollout is over). */
int rollout_advance(struct registry *reg, const struct agent_conf *ac, const char *store,
		    const char *job, int64_t now, const char *key, int *ret_open,
		    struct reimage_error *err);

#endif
