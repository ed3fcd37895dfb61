/*
 * rollout.h -- waves of a rollout, kept in the job store so that the
 * agents themselves advance it and no administrator's process must stay
 * up.  reimagectl submit assigns each target to a wave (written, signed,
 * into its document as rollout.wave) and publishes one small state
 * document per wave; agents of wave k wait until their wave's document
 * says "open"; each agent of wave k, when its outcome is final, counts
 * its wave's reports and, once the wave is decided, writes the decision:
 * the next wave opens, or the rollout halts.
 *
 * Waves are numbered from 1 in the store's file names, its documents and
 * every message; struct wave_state.wave and rollout.wave count from 0.
 *
 *   <store>/rollouts/<job>/wave-<k>.json    the wave's state (small; polled
 *                                           with conditional GETs by the
 *                                           agents of wave k only)
 *   <store>/rollouts/<job>/wave-<k>.agents  its agents (a JSON array; read
 *                                           only to count a wave, once per
 *                                           agent of the wave)
 *
 * Wave states: waiting (an earlier wave is not decided), open, committed
 * (every agent finished, failures within the budget), halted (the budget
 * was exceeded in this wave or an earlier one), stopped (reimagectl stop).
 * Decisions only ever follow from final reports, which do not change, so
 * two agents deciding at once write the same decision.
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
	long long committed, failed, unfinished;  /* failed: failed or rolled back */
	long long cancelled, skipped, refused;    /* final, not failures */
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

/* The wave's documents in the store. */
int rollout_wave_put(struct registry *reg, const struct agent_conf *ac, const char *store,
		     const char *job, const struct wave_state *ws, struct reimage_error *err);
int rollout_agents_put(struct registry *reg, const struct agent_conf *ac, const char *store,
		       const char *job, int wave, const char *const *agents, size_t n,
		       struct reimage_error *err);
/* Remove the documents of waves from..the last (from 0): a job id
 * submitted again (--reuse) with fewer waves leaves none of the old. */
int rollout_forget_waves(struct registry *reg, const struct agent_conf *ac, const char *store,
			 const char *job, int from, struct reimage_error *err);
/* Fetch wave's state; etag as for store_fetch(): returns 0 (ret filled),
 * REIMAGE_NOT_MODIFIED, or < 0 (NOTFOUND if the rollout has no such wave). */
int rollout_wave_get(struct registry *reg, const struct agent_conf *ac, const char *store,
		     const char *job, int wave, char etag[REIMAGE_ETAG_MAX],
		     struct wave_state *ret, struct reimage_error *err);

/* Count wave's outcomes from its agents' reports on the job (ret filled
 * with the counts and, if decided, the decision). */
int rollout_count(struct registry *reg, const struct agent_conf *ac, const char *store,
		  const char *job, int wave, int64_t now, struct wave_state *ret,
		  struct reimage_error *err);
/* rollout_count(), and if the wave is decided, the decision written: the
 * next wave opened (first) and this wave's record, or this wave and every
 * later one halted.  A wave already decided is left as it is. */
int rollout_tally(struct registry *reg, const struct agent_conf *ac, const char *store,
		  const char *job, int wave, int64_t now, struct wave_state *ret,
		  struct reimage_error *err);

#endif
