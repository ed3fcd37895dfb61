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
/* Journal the plan, run it, sync, journal "swapped".  On a failure the
 * steps done are undone (and "undone" journaled); if that fails too the
 * journal stays for `reimage recover`.  A step the backend defers to the
 * boot is journaled "deferred" and marked in the plan. */
int swap_run(const struct swap_ctx *sc, struct swap_plan *plan, struct reimage_error *err);

enum swap_journal_state { SWAP_NONE, SWAP_STARTED, SWAP_DONE, SWAP_UNDONE };
/* Read the journal: its state, and the plan if there is one. */
int swap_journal_read(const char *root, enum swap_journal_state *ret_state,
		      struct swap_plan *plan, struct reimage_error *err);
/* The journal's state only. */
int swap_journal_state(const char *root, enum swap_journal_state *ret_state,
		       struct reimage_error *err);
/* After the commit: drop what refreshed mounts kept aside. */
int swap_forget_asides(const char *root, struct reimage_error *err);
/* Complete (undo = 0) or undo (undo = 1) the journaled swap from whatever
 * point it reached; safe to run any number of times. */
int swap_recover(const struct swap_ctx *sc, int undo, struct reimage_error *err);
const char *swap_op_name(enum swap_op op);
/* The journaled swap's steps deferred to the boot, their names one per
 * line in buf ("" if none; FINAL is named after the staging directory). */
int swap_deferred_names(const char *root, char *buf, size_t cap, struct reimage_error *err);
/* After the boot: 0 if every deferred step is done on the tree, else
 * -EUCLEAN naming those that are not. */
int swap_deferred_check(const char *root, struct reimage_error *err);

#endif
