/*
 * swap.h -- SWAP: the root's top-level entries exchanged with the staged
 * image by renames alone, journaled, and recoverable from any point.
 *
 * Steps, in order (R = root, N = .reimage/new, O = .reimage/old):
 *   EXCHANGE e   R/e <-> N/e       entry in both images (atomic exchange)
 *   RETIRE e     R/e  -> N/e       entry only in the old image
 *   ADD e        N/e  -> R/e       entry only in the new image
 *   FINAL        N    -> O         N now holds exactly the old image
 *   PEXCHANGE p  O/p <-> R/p       preserved item the new image also has
 *   PMOVE p      O/p  -> R/p       preserved item the new image lacks
 *   MOUNT e      R/e is a mount point: the backend copies the staged
 *                e into it, its old content kept aside in R/e/.reimage-old
 * then one sync of the volume.  No step is fsynced by itself: whether a
 * step is done is read from the filesystem, by where the inode numbers
 * recorded in the plan now are, so recovery needs only the plan (written
 * and fsynced before the first rename) and the tree itself.
 *
 * The journal's records (journal.h: each with length and CRC), and what
 * is on disk once each is:
 *   plan, step x N      with its copy .reimage/plan, both renamed into place
 *                       and their directory synced before the first rename
 *                       -- by a job, in QUIESCE before the users' logout,
 *                       checked against the tree after it: the old image
 *                       whole, new/ whole
 *   deferred I          step I left to the boot (before the next step)
 *   swapped             after one sync of the volume: the new image whole
 *                       at the top level, the old one in old/ (the outage
 *                       holds the renames, this sync and this commit)
 *   rollback <reason>   synced before the first rename of any undo (rollback,
 *                       recover --undo, the guard's fallback, a job failing
 *                       after its swap): from here the undo is only finished
 *   undone              after the volume sync: the old image whole again
 *   redo                before a forward recover after an undo
 * A journal unreadable in its plan (torn, flipped, empty, deleted) is read
 * through the copy, the steps done from the tree; both unreadable: every
 * command refuses and touches nothing.  Deleting the retired image starts
 * by renaming old/ to .reimage/deleting (synced): rollback refused from
 * then on.  The journal and its copy go last (copy first), once nothing
 * needs them.
 */
#ifndef REIMAGE_SWAP_H
#define REIMAGE_SWAP_H

#include "registry.h"

#include <stdint.h>
#include <sys/types.h>

enum swap_op { OP_EXCHANGE, OP_RETIRE, OP_ADD, OP_FINAL, OP_PEXCHANGE, OP_PMOVE, OP_MOUNT };

/* Where a refreshed mount keeps its old content, inside the mount. */
#define SWAP_MOUNT_ASIDE ".reimage-old"

/* Which object: inode number and birth time (ns; 0 where unrecorded). */
struct obj_id {
	uint64_t ino;
	uint64_t birth;
};

struct swap_step {
	enum swap_op op;
	char *name;             /* relative to the root; "" for FINAL */
	struct obj_id old_id;   /* the old image's object (FINAL: the staging directory) */
	struct obj_id new_id;   /* the new image's object, {0,0} if none */
	int deferred;           /* journaled "deferred": the backend left it to the boot */
};

struct swap_plan {
	struct swap_step *steps;
	size_t n, cap;
	char **kept;       /* top-level entries that stay: keep-list and mount points */
	size_t n_kept;
	size_t count[OP_MOUNT + 1];
	char **unapplied;  /* mounted entries whose staged content the backend cannot apply */
	size_t n_unapplied;
	size_t n_deferred;  /* steps whose moves the backend deferred to the boot */
	int journaled;      /* on disk already (swap_journal_plan): swap_run does
			     * not write it again */
	/* Read from the journal: */
	int damaged;        /* the journal was unreadable: plan from its copy */
	int rollback;       /* "rollback" journaled: the undo is a rollback's */
	char *reason;       /* ...and its reason (malloc'ed), or NULL */
};

struct swap_ctx {
	const char *root;  /* real path */
	const struct reimage_backend_ops *ops;
	void *backend;     /* the backend's ctx */
	/* Test switch (the job's test_swap_pause): after the first step, sync
	 * and wait this long, so a test can cut the power mid-swap. */
	long long pause_s;
};

/* Build the plan from the live root and the staging directory.
 * keep: top-level names that never move.  preserve: move-mode items,
 * relative paths, NULL-terminated (may be NULL). */
int swap_plan_build(const struct swap_ctx *sc, const char *const *keep,
		    const char *const *preserve, struct swap_plan *plan, struct reimage_error *err);
void swap_plan_free(struct swap_plan *plan);
/* Journal the plan (and its copy), durable, before the outage: the plan
 * depends only on the staged tree and the root's top level, which logging
 * users out does not change.  Once it is, the journal reads SWAP_STARTED:
 * a power cut from here is finished by recover like one mid-swap, and a
 * job that fails before swap_run() removes it (swap_forget). */
int swap_journal_plan(const struct swap_ctx *sc, struct swap_plan *plan,
		      struct reimage_error *err);
/* Build the plan again (stats and directory reads, no sync) and compare:
 * 0 if the journaled plan still holds, 1 if it did not and the fresh one
 * is journaled in its place (plan replaced), or negative. */
int swap_plan_recheck(const struct swap_ctx *sc, const char *const *keep,
		      const char *const *preserve, struct swap_plan *plan,
		      struct reimage_error *err);
/* Journal the plan (unless plan->journaled), run it, sync, journal
 * "swapped": inside the outage, the renames, one sync of the volume and
 * one journal commit.  On a failure the
 * steps done are undone (and "undone" journaled); if that fails too the
 * journal stays for `reimage recover`.  A step the backend defers to the
 * boot is journaled "deferred" and marked in the plan. */
int swap_run(const struct swap_ctx *sc, struct swap_plan *plan, struct reimage_error *err);

/* NONE: no journal nor copy.  STARTED: a plan, no outcome (or a damaged
 * journal whose copy gives the plan).  DONE: "swapped".  UNDONE: "undone"
 * (plan.rollback: by a rollback).  ROLLBACK: "rollback" and no outcome
 * yet: a rollback was cut short.  DAMAGED: a journal or copy exists but
 * neither gives the plan, or both are gone while the job's state says
 * its swap began: nothing may be touched. */
enum swap_journal_state { SWAP_NONE, SWAP_STARTED, SWAP_DONE, SWAP_UNDONE, SWAP_ROLLBACK,
			  SWAP_DAMAGED };
/* Read the journal: its state, and the plan if there is one.  A journal
 * missing, empty, torn or corrupt in its plan is read through its copy
 * (.reimage/plan) as SWAP_STARTED with plan.damaged set. */
int swap_journal_read(const char *root, enum swap_journal_state *ret_state,
		      struct swap_plan *plan, struct reimage_error *err);
/* The journal's state only. */
int swap_journal_state(const char *root, enum swap_journal_state *ret_state,
		       struct reimage_error *err);
/* A plan journaled (swap_journal_plan) and never run, no rename made:
 * journaled "undone", so that until the journal is dropped it says no
 * swap stands. */
int swap_abandon(const char *root, struct reimage_error *err);
/* After the commit: drop what refreshed mounts kept aside. */
int swap_forget_asides(const char *root, struct reimage_error *err);
/* Complete (undo = 0) or undo (undo = 1) the journaled swap from whatever
 * point it reached; safe to run any number of times.  An undo is a
 * rollback (below).  A rollback begun (SWAP_ROLLBACK) is always finished.
 * Every step's state is checked on the tree before anything moves; a
 * damaged journal without a readable copy, or an undo once the retired
 * image is being deleted, is refused with nothing touched. */
int swap_recover(const struct swap_ctx *sc, int undo, struct reimage_error *err);
/* Undo a swap (done, or cut short) as a rollback: "rollback <reason>" is
 * journaled (fsynced) before the first rename, then the undo runs and
 * "undone" is journaled.  Refused once swap_retire() has begun.  0 also
 * when there is nothing to undo (NONE, UNDONE). */
int swap_rollback(const struct swap_ctx *sc, const char *reason, struct reimage_error *err);
/* Delete the retired image: renamed to .reimage/deleting (synced) before
 * the first delete -- the durable marker that refuses any rollback from
 * then on -- then the mounts' asides, the tree, and the journal.  Finishes
 * a deletion begun; idempotent. */
int swap_retire(const struct swap_ctx *sc, struct reimage_error *err);
/* Remove the journal and its copy (the copy first), directory synced. */
int swap_forget(const char *root, struct reimage_error *err);
const char *swap_op_name(enum swap_op op);
/* The journaled swap's steps deferred to the boot, their names one per
 * line in buf ("" if none; FINAL is named after the staging directory). */
int swap_deferred_names(const char *root, char *buf, size_t cap, struct reimage_error *err);
/* After the boot: 0 if every deferred step is done on the tree, else
 * -EUCLEAN naming those that are not. */
int swap_deferred_check(const char *root, struct reimage_error *err);

#endif
