/*
 * swap.c -- SWAP and its recovery (see swap.h for the steps).
 *
 * Every step's state is decided from the tree: an object (recorded by
 * inode number in the plan) is either where the step found it, where the
 * step puts it, or -- for an exchange done with three moves on a backend
 * without atomic exchange -- in the parking place .reimage/xchg.  Renames
 * keep inode numbers, and the objects live on until COMMIT, so a number
 * cannot be reused meanwhile; the birth time recorded beside it tells an
 * entry deleted and re-created by hand from the original.  recover therefore acts on facts, not on
 * per-step records that would each cost an fsync inside the outage.
 */
#define _GNU_SOURCE
#include "swap.h"
#include "error.h"
#include "fsutil.h"
#include "options.h"
#include "journal.h"
#include "layout.h"
#include "log.h"
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define JOURNAL_VERSION 1

static const char *const op_names[] = {
	[OP_EXCHANGE] = "exchange", [OP_RETIRE] = "retire", [OP_ADD] = "add",
	[OP_FINAL] = "final", [OP_PEXCHANGE] = "pexchange", [OP_PMOVE] = "pmove",
	[OP_MOUNT] = "mount",
};

const char *swap_op_name(enum swap_op op)
{
	return op_names[op];
}

static int plan_add(struct swap_plan *plan, enum swap_op op, const char *name,
		    struct obj_id old_id, struct obj_id new_id, struct reimage_error *err)
{
	if (plan->n == plan->cap) {
		size_t cap = plan->cap ? plan->cap * 2 : 64;
		struct swap_step *s = realloc(plan->steps, cap * sizeof(*s));
		if (!s) {
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		plan->steps = s;
		plan->cap = cap;
	}
	struct swap_step *s = &plan->steps[plan->n];
	if (!(s->name = strdup(name))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	s->op = op;
	s->deferred = 0;
	s->old_id = old_id;
	s->new_id = new_id;
	plan->n++;
	plan->count[op]++;
	return 0;
}

void swap_plan_free(struct swap_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		free(plan->steps[i].name);
	for (size_t i = 0; i < plan->n_kept; i++)
		free(plan->kept[i]);
	for (size_t i = 0; i < plan->n_unapplied; i++)
		free(plan->unapplied[i]);
	free(plan->steps);
	free(plan->reason);
	free(plan->kept);
	free(plan->unapplied);
	memset(plan, 0, sizeof(*plan));
}

/* Identity of the object at path (not following a final symlink): its
 * inode number and, where the filesystem records it, its birth time, so
 * that an entry deleted and re-created (which may get the same inode
 * number) is not taken for the original.  {0, 0} if absent. */
static struct obj_id id_at(const char *path)
{
	struct obj_id id = { 0, 0 };
#ifdef STATX_BTIME
	struct statx stx;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &stx) == 0) {
		id.ino = stx.stx_ino;
		if (stx.stx_mask & STATX_BTIME)
			id.birth = (uint64_t)stx.stx_btime.tv_sec * 1000000000u + stx.stx_btime.tv_nsec;
		return id;
	}
#else
	struct stat st;
	if (lstat(path, &st) == 0)
		id.ino = st.st_ino;
#endif
	return id;
}

static int same_id(struct obj_id a, struct obj_id b)
{
	return a.ino == b.ino && a.birth == b.birth;
}

static int absent(struct obj_id a)
{
	return a.ino == 0;
}

/* The sorted names of a directory, without "." and "..". */
static int list_dir(const char *path, char ***ret, size_t *ret_n, struct reimage_error *err)
{
	DIR *d = opendir(path);
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		err_sys(err, -errno, "read directory %s", path);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*nn));
			if (!nn)
				goto nomem;
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			goto nomem;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), strlist_cmp);
	*ret = names;
	*ret_n = n;
	return 0;
nomem:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
	return -ENOMEM;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int swap_plan_build(const struct swap_ctx *sc, const char *const *keep,
		    const char *const *preserve, struct swap_plan *plan, struct reimage_error *err)
{
	const struct obj_id no_id = { 0, 0 };
	struct layout L;
	char **old_names = NULL, **new_names = NULL;
	size_t n_old = 0, n_new = 0;
	char path[PATH_MAX];
	int r;

	memset(plan, 0, sizeof(*plan));
	layout_init(&L, sc->root);
	if ((r = list_dir(sc->root, &old_names, &n_old, err)) < 0 ||
	    (r = list_dir(L.staging, &new_names, &n_new, err)) < 0)
		goto out;
	plan->kept = calloc(n_old + 1, sizeof(char *));
	if (!plan->kept) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	/* Entries of the old image: exchanged, retired, or kept in place. */
	for (size_t i = 0; i < n_old; i++) {
		const char *e = old_names[i];
		if (strcmp(e, LAYOUT_DIR) == 0)
			continue;
		fs_join(path, sizeof(path), sc->root, e);
		int mounted = sc->ops->is_mount(sc->backend, path, err);
		if (mounted < 0) {
			r = mounted;
			goto out;
		}
		if (mounted || strlist_has(keep, e)) {
			if (!(plan->kept[plan->n_kept++] = strdup(e))) {
				err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
				r = -ENOMEM;
				goto out;
			}
			continue;
		}
		struct obj_id io = id_at(path);
		fs_join(path, sizeof(path), L.staging, e);
		struct obj_id in = id_at(path);
		if ((r = plan_add(plan, absent(in) ? OP_RETIRE : OP_EXCHANGE, e, io, in, err)) < 0)
			goto out;
	}
	/* Entries only the new image has. */
	for (size_t i = 0; i < n_new; i++) {
		const char *e = new_names[i];
		fs_join(path, sizeof(path), sc->root, e);
		if (fs_exists(path))
			continue;
		fs_join(path, sizeof(path), L.staging, e);
		if ((r = plan_add(plan, OP_ADD, e, no_id, id_at(path), err)) < 0)
			goto out;
	}
	if ((r = plan_add(plan, OP_FINAL, "", id_at(L.staging), no_id, err)) < 0)
		goto out;
	/* Move-mode preserves: the old object returns to its place in the
	 * new root; an object of the new image there is exchanged out. */
	for (; preserve && *preserve; preserve++) {
		const char *p = *preserve;
		char top[NAME_MAX + 1];
		size_t tl = strcspn(p, "/");
		snprintf(top, sizeof(top), "%.*s", (int)tl, p);
		if (strlist_has((const char *const *)plan->kept, top)) {
			log_info("preserve %s: stays in place (%s is kept)", p, top);
			continue;
		}
		if ((r = fs_parents_real(sc->root, p, err)) < 0 ||
		    (r = fs_parents_real(L.staging, p, err)) < 0)
			goto out;
		fs_join(path, sizeof(path), sc->root, p);
		struct obj_id io = id_at(path);
		if (absent(io))
			continue;  /* nothing to keep */
		fs_join(path, sizeof(path), L.staging, p);
		struct obj_id in = id_at(path);
		if ((r = plan_add(plan, absent(in) ? OP_PMOVE : OP_PEXCHANGE, p, io, in, err)) < 0)
			goto out;
	}
	/* Mounted entries stay, but the new image's content for them (a
	 * separate /boot) is applied inside them, never skipped silently. */
	plan->unapplied = calloc(plan->n_kept + 1, sizeof(char *));
	for (size_t i = 0; plan->unapplied && i < plan->n_kept; i++) {
		const char *e = plan->kept[i];
		struct stat st;
		fs_join(path, sizeof(path), L.staging, e);
		if (strlist_has(keep, e) || lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (sc->ops->caps & REIMAGE_BCAP_MOUNTS)
			r = plan_add(plan, OP_MOUNT, e, no_id, no_id, err);
		else if (!(plan->unapplied[plan->n_unapplied++] = strdup(e)))
			r = -ENOMEM;
		if (r < 0)
			goto out;
	}
	if (!plan->unapplied) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	r = 0;
out:
	free_names(old_names, n_old);
	free_names(new_names, n_new);
	if (r < 0)
		swap_plan_free(plan);
	return r;
}

/* ------------------------------------------------------------ journal */

/* The plan goes to the journal and to its copy .reimage/plan, both whole
 * and durable before the first rename (journal_create: temps fsynced,
 * renamed journal first, one directory sync).  The journal replaces any
 * an earlier job left in one rename; the copy follows it, so a stale
 * copy never stands beside a fresh journal.  Either file alone gives the
 * plan back: a journal torn, corrupted, emptied or deleted later is read
 * through its copy (swap_journal_read). */
static int journal_write_plan(const struct layout *L, const struct swap_plan *plan,
			      struct reimage_error *err)
{
	const char **recs = calloc(plan->n + 2, sizeof(char *));
	const char *const paths[2] = { L->journal, L->plan };
	char enc[PATH_MAX * 3];
	int r = -ENOMEM;
	size_t k = 0;

	if (!recs)
		goto out;
	if (asprintf((char **)&recs[k++], "plan %d %zu", JOURNAL_VERSION, plan->n) < 0)
		goto out;
	for (size_t i = 0; i < plan->n; i++) {
		const struct swap_step *s = &plan->steps[i];
		journal_encode(enc, sizeof(enc), s->name);
		if (asprintf((char **)&recs[k++], "step %s %llu.%llu %llu.%llu %s", op_names[s->op],
			     (unsigned long long)s->old_id.ino, (unsigned long long)s->old_id.birth,
			     (unsigned long long)s->new_id.ino, (unsigned long long)s->new_id.birth,
			     s->name[0] ? enc : "-") < 0)
			goto out;
	}
	r = journal_create(paths, 2, recs, k, err);
out:
	if (r == -ENOMEM && !err->code)
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
	for (size_t i = 0; recs && i < k; i++)
		free((char *)recs[i]);
	free(recs);
	return r;
}

int swap_forget(const char *root, struct reimage_error *err)
{
	struct layout L;
	layout_init(&L, root);
	if (!fs_exists(L.dir))
		return 0;  /* no job ever got as far as PREPARE */
	/* The copy first: a copy is never left without its journal, so a
	 * lone copy always belongs to a swap whose journal was damaged. */
	if ((unlink(L.plan) < 0 && errno != ENOENT) || (unlink(L.journal) < 0 && errno != ENOENT)) {
		err_sys(err, -errno, "remove the journal %s", L.journal);
		return err->code;
	}
	return fs_sync_dir(L.dir, err);
}

static int journal_mark(const struct layout *L, const char *what, struct reimage_error *err)
{
	const char *rec[1] = { what };
	return journal_append(L->journal, rec, 1, err);
}

int swap_abandon(const char *root, struct reimage_error *err)
{
	struct layout L;
	layout_init(&L, root);
	return journal_mark(&L, "undone", err);
}

static void mark_deferred(struct swap_plan *plan, size_t step)
{
	if (!plan->steps[step].deferred)
		plan->n_deferred++;
	plan->steps[step].deferred = 1;
}

static void clear_deferred(struct swap_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		plan->steps[i].deferred = 0;
	plan->n_deferred = 0;
}

/* 1 if rec is exactly what fmt makes of the values sscanf read from it:
 * sscanf alone takes "plan1 1" for "plan 1 1", and "1.2`x" for an
 * identity and a name.  Records are read only in the form written. */
static int canonical(const char *rec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int canonical(const char *rec, const char *fmt, ...)
{
	char canon[PATH_MAX * 3 + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(canon, sizeof(canon), fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < sizeof(canon) && strcmp(canon, rec) == 0;
}

/* A step's name as swap_plan_build writes it: "" for FINAL only, else
 * relative, with no empty, "." or ".." component.  Anything else in a
 * record whose checksum matches was not written by reimage: recover must
 * not act on it (it would lead a rename out of the root). */
static int name_safe(enum swap_op op, const char *name)
{
	if (op == OP_FINAL || !*name)
		return op == OP_FINAL && !*name;
	for (const char *c = name;;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (!c[n])
			return 1;
		c += n + 1;
	}
}

/* The plan records at the head of a journal (or its copy): 0 and the
 * plan if they are all there, whole and valid; -EUCLEAN if not. */
static int read_plan(struct journal_reader *jr, struct swap_plan *plan, struct reimage_error *err)
{
	const char *rec = journal_next(jr);
	size_t expect = 0;
	int version = 0, r;

	if (!rec || sscanf(rec, "plan %d %zu", &version, &expect) != 2 || version != JOURNAL_VERSION ||
	    !canonical(rec, "plan %d %zu", version, expect))
		return -EUCLEAN;
	while (plan->n < expect && (rec = journal_next(jr))) {
		char op[16], enc[PATH_MAX * 3], name[PATH_MAX];
		unsigned long long io, ib, in, nb;
		int k;
		if (sscanf(rec, "step %15s %llu.%llu %llu.%llu %12287s", op, &io, &ib, &in, &nb, enc) != 6)
			break;
		if (!canonical(rec, "step %s %llu.%llu %llu.%llu %s", op, io, ib, in, nb, enc))
			break;
		for (k = 0; k <= OP_MOUNT && strcmp(op_names[k], op); k++)
			;
		if (k > OP_MOUNT)
			break;
		if (strcmp(enc, "-") == 0)
			name[0] = '\0';
		else if (journal_decode(name, sizeof(name), enc) < 0)
			break;
		/* A name no swap writes (one that would lead a rename out of
		 * the root): the plan is damaged, and nothing is renamed on its
		 * word. */
		if (!name_safe((enum swap_op)k, name))
			break;
		struct obj_id oid = { io, ib }, nid = { in, nb };
		if ((r = plan_add(plan, (enum swap_op)k, name, oid, nid, err)) < 0)
			return r;
	}
	if (plan->n == expect)
		return 0;
	swap_plan_free(plan);
	return -EUCLEAN;
}

/* The plan from the copy, when the journal's own cannot be read.  1 if
 * the copy gives it, 0 if there is no copy, -EUCLEAN if it is damaged. */
static int read_plan_copy(const struct layout *L, struct swap_plan *plan,
			  struct reimage_error *err)
{
	struct journal_reader jr;
	int r = journal_open(&jr, L->plan, err);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = read_plan(&jr, plan, err);
	journal_close(&jr);
	return r < 0 ? r : 1;
}

/* Neither the journal nor its copy is there.  That reads as "no swap
 * began" only if the tree and the job's state agree: the engine writes
 * the state "SWAP" once the plan is durable and drops the journal only
 * after a state that ends the swap (failed, rolled-back, committed), so a
 * parked entry, or a state at SWAP or past it, means both files were lost
 * to damage or a hand, and staging may hold the old image's entries. */
static int state_says_swap_began(const struct layout *L)
{
	struct reimage_error ignored = { 0 };
	struct job_state st;
	int r;

	if (fs_exists(L->parking))
		return 1;
	r = state_read(L->root, &st, &ignored);
	if (r == -ENOENT)
		return 0;
	if (r < 0)  /* a damaged state cannot vouch for staging */
		return fs_exists(L->staging) || fs_exists(L->retired);
	return !strcmp(st.status, "pending") ||
	       (!strcmp(st.status, "running") && phase_of(st.phase) >= PHASE_SWAP);
}

int swap_journal_read(const char *root, enum swap_journal_state *ret_state,
		      struct swap_plan *plan, struct reimage_error *err)
{
	struct journal_reader jr;
	struct layout L;
	const char *rec;
	int r, have_journal;

	memset(plan, 0, sizeof(*plan));
	layout_init(&L, root);
	*ret_state = SWAP_NONE;
	r = journal_open(&jr, L.journal, err);
	if (r < 0 && r != -ENOENT)
		return r;
	have_journal = r == 0;
	if (have_journal && (r = read_plan(&jr, plan, err)) != -EUCLEAN) {
		if (r < 0) {
			journal_close(&jr);
			return r;
		}
	} else {
		/* The journal is missing, empty, torn or corrupt in its plan.
		 * That is never read as "no swap began": its copy says what
		 * the swap was, and the tree how far it got (recover acts on
		 * the tree, step by step, as for any interrupted swap).  The
		 * records after the plan are lost: the state is "started". */
		journal_close(&jr);
		if ((r = read_plan_copy(&L, plan, err)) == 1) {
			plan->damaged = 1;
			*ret_state = SWAP_STARTED;
			return 0;
		}
		if (r < 0 && r != -EUCLEAN)
			return r;
		/* Neither says what the swap was: nothing may be guessed. */
		if (have_journal || r == -EUCLEAN || state_says_swap_began(&L))
			*ret_state = SWAP_DAMAGED;
		return 0;
	}
	*ret_state = SWAP_STARTED;
	while ((rec = journal_next(&jr))) {
		size_t step;
		if (strcmp(rec, "swapped") == 0) {
			*ret_state = SWAP_DONE;
		} else if (strcmp(rec, "undone") == 0) {
			*ret_state = SWAP_UNDONE;
		} else if (strcmp(rec, "redo") == 0) {
			*ret_state = SWAP_STARTED;
			plan->rollback = 0;
		} else if (strncmp(rec, "rollback ", 9) == 0) {
			char why[REIMAGE_ERRMSG_MAX];
			*ret_state = SWAP_ROLLBACK;
			plan->rollback = 1;
			if (journal_decode(why, sizeof(why), rec + 9) == 0) {
				free(plan->reason);
				plan->reason = strdup(why);
			}
		} else if (sscanf(rec, "deferred %zu", &step) == 1 && step < plan->n &&
			   canonical(rec, "deferred %zu", step)) {
			mark_deferred(plan, step);
		}
		/* An undo cancels what was deferred: a redo starts afresh. */
		if (*ret_state == SWAP_UNDONE)
			clear_deferred(plan);
	}
	journal_close(&jr);
	return 0;
}

int swap_journal_state(const char *root, enum swap_journal_state *ret_state,
		       struct reimage_error *err)
{
	struct swap_plan plan;
	int r = swap_journal_read(root, ret_state, &plan, err);
	swap_plan_free(&plan);
	return r;
}

/* ------------------------------------------------------------- steps */

/* Where a step's two places are: a (in the root) and b (the other side). */
static void step_paths(const struct layout *L, const struct swap_step *s, char *a, char *b)
{
	switch (s->op) {
	case OP_EXCHANGE:
	case OP_RETIRE:
	case OP_ADD:
		/* Their other side is new/, which FINAL renames to old/. */
		fs_join(a, PATH_MAX, L->root, s->name);
		fs_join(b, PATH_MAX, fs_exists(L->staging) ? L->staging : L->retired, s->name);
		break;
	case OP_FINAL:
		snprintf(a, PATH_MAX, "%s", L->retired);
		snprintf(b, PATH_MAX, "%s", L->staging);
		break;
	case OP_PEXCHANGE:
	case OP_PMOVE:
		fs_join(a, PATH_MAX, L->root, s->name);
		fs_join(b, PATH_MAX, L->retired, s->name);
		break;
	case OP_MOUNT:
		/* a: the mount's aside; b: the staged content (in old/ by now). */
		fs_join(b, PATH_MAX, L->root, s->name);
		fs_join(a, PATH_MAX, b, SWAP_MOUNT_ASIDE);
		fs_join(b, PATH_MAX, fs_exists(L->staging) ? L->staging : L->retired, s->name);
		break;
	}
}

/* 0 done, 1 deferred to the boot (REIMAGE_BCAP_DEFER), < 0 failed. */
static int do_move(const struct swap_ctx *sc, const char *from, const char *to,
		   struct reimage_error *err)
{
	int r = sc->ops->move(sc->backend, from, to, err);
	if (r > 0 && !(sc->ops->caps & REIMAGE_BCAP_DEFER)) {
		err_set(err, -EPROTO, REIMAGE_EC_STATE,
			"backend %s deferred a move without declaring it can", sc->ops->name);
		return -EPROTO;
	}
	return r < 0 ? r : r > 0;
}

/* Exchange a and b: atomically where the backend can, else by three
 * moves through the parking place (recoverable: see pair_state).
 * 1 if any of the moves was deferred to the boot. */
static int do_exchange(const struct swap_ctx *sc, const struct layout *L, const char *a,
		       const char *b, struct reimage_error *err)
{
	int r, d1, d2;
	if (sc->ops->caps & REIMAGE_BCAP_EXCHANGE)
		return sc->ops->exchange(sc->backend, a, b, err);
	if ((d1 = do_move(sc, a, L->parking, err)) < 0 || (d2 = do_move(sc, b, a, err)) < 0)
		return d1 < 0 ? d1 : d2;
	if ((r = do_move(sc, L->parking, b, err)) < 0)
		return r;
	return d1 || d2 || r;
}

/* Which objects are where.  For a move (ino at `src` goes to `dst`):
 * 0 pending, 3 done.  For an exchange of a (holding ia) and b (holding
 * ib): 0 pending, 1 ia parked, 2 ia parked and ib at a, 3 done.
 * -1: neither: the tree is not what the journal describes. */
static int pair_state(const struct layout *L, const char *a, const char *b, struct obj_id ia,
		      struct obj_id ib)
{
	struct obj_id at_a = id_at(a), at_b = id_at(b), parked = id_at(L->parking);

	if (same_id(at_a, ia) && same_id(at_b, ib))
		return 0;
	if (same_id(at_a, ib) && same_id(at_b, ia))
		return 3;
	if (same_id(parked, ia) && absent(at_a) && same_id(at_b, ib))
		return 1;
	if (same_id(parked, ia) && same_id(at_a, ib) && absent(at_b))
		return 2;
	return -1;
}

static int move_state(const char *src, const char *dst, struct obj_id id)
{
	if (same_id(id_at(src), id) && !fs_exists(dst))
		return 0;
	if (same_id(id_at(dst), id) && !fs_exists(src))
		return 3;
	return -1;
}

/* State of step s: 0 pending ... 3 done, -1 inconsistent. */
static int step_state(const struct layout *L, const struct swap_step *s)
{
	char a[PATH_MAX], b[PATH_MAX];
	step_paths(L, s, a, b);
	switch (s->op) {
	case OP_EXCHANGE:
		return pair_state(L, a, b, s->old_id, s->new_id);
	case OP_PEXCHANGE:
		/* Preserves come out of old/: before FINAL (not done, undone,
		 * or deferred to the boot) they cannot have begun. */
		if (!fs_exists(L->retired))
			return 0;
		return pair_state(L, a, b, s->new_id, s->old_id);
	case OP_RETIRE:
		return move_state(a, b, s->old_id);
	case OP_ADD:
		return move_state(b, a, s->new_id);
	case OP_PMOVE:
		if (!fs_exists(L->retired))
			return 0;
		return move_state(b, a, s->old_id);
	case OP_FINAL:
		return move_state(b, a, s->old_id);
	case OP_MOUNT:
		/* With an aside the copy began, and may not have ended: it is
		 * redone (forward) or restored (undo); it is done only once the
		 * journal says "swapped". */
		return fs_exists(a) ? 1 : 0;
	}
	return -1;
}

/* The second move of a cut-short exchange was deferred: ask the third
 * too, which the backend defers after it. */
static int step_finish_deferred(const struct swap_ctx *sc, const struct layout *L,
				const char *b, struct reimage_error *err)
{
	int r = do_move(sc, L->parking, b, err);
	return r < 0 ? r : 1;
}

static int step_forward(const struct swap_ctx *sc, const struct layout *L,
			const struct swap_step *s, int state, struct reimage_error *err)
{
	char a[PATH_MAX], b[PATH_MAX];
	int r;

	step_paths(L, s, a, b);
	switch (s->op) {
	case OP_EXCHANGE:
	case OP_PEXCHANGE:
		if (state == 0)
			return do_exchange(sc, L, a, b, err);
		/* Finish a three-move exchange that was cut short. */
		if (state == 1 && (r = do_move(sc, b, a, err)) != 0)
			return r < 0 ? r : step_finish_deferred(sc, L, b, err);
		return do_move(sc, L->parking, b, err);
	case OP_RETIRE:
		return do_move(sc, a, b, err);
	case OP_ADD:
	case OP_FINAL:
		return do_move(sc, b, a, err);
	case OP_PMOVE:
		/* Parents in the new root take the old ones' owner and mode. */
		if ((r = fs_make_parents(L->root, s->name, L->retired, L->dir, err)) < 0)
			return r;
		return do_move(sc, b, a, err);
	case OP_MOUNT: {
		char mount[PATH_MAX];
		fs_join(mount, sizeof(mount), L->root, s->name);
		if (state == 1 && (r = sc->ops->mount_restore(sc->backend, mount, a, err)) < 0)
			return r;
		return sc->ops->mount_copy(sc->backend, b, mount, a, err);
	}
	}
	return -EINVAL;
}

static int step_undo(const struct swap_ctx *sc, const struct layout *L,
		     const struct swap_step *s, int state, struct reimage_error *err)
{
	char a[PATH_MAX], b[PATH_MAX];
	int r;

	step_paths(L, s, a, b);
	switch (s->op) {
	case OP_EXCHANGE:
	case OP_PEXCHANGE:
		if (state == 3)
			return do_exchange(sc, L, a, b, err);
		if (state == 2 && (r = do_move(sc, a, b, err)) < 0)
			return r;
		return do_move(sc, L->parking, a, err);
	case OP_RETIRE:
		return do_move(sc, b, a, err);
	case OP_ADD:
	case OP_FINAL:
	case OP_PMOVE:
		return do_move(sc, a, b, err);
	case OP_MOUNT: {
		char mount[PATH_MAX];
		fs_join(mount, sizeof(mount), L->root, s->name);
		return sc->ops->mount_restore(sc->backend, mount, a, err);
	}
	}
	return -EINVAL;
}

static int inconsistent(const struct swap_step *s, struct reimage_error *err)
{
	err_set(err, -EUCLEAN, REIMAGE_EC_STATE,
		"step %s '%s': the tree is neither before nor after it; not touching it "
		"(inspect .reimage/ by hand)", op_names[s->op], s->name);
	return -EUCLEAN;
}

/* The backend deferred step i to the boot: journaled before the next
 * step, so that recover leaves it to the boot too. */
static int note_deferred(const struct layout *L, struct swap_plan *plan, size_t i,
			 struct reimage_error *err)
{
	char rec[64];
	snprintf(rec, sizeof(rec), "deferred %zu", i);
	mark_deferred(plan, i);
	return journal_mark(L, rec, err);
}

/* Run every step not yet done, front to back.  A step deferred to the
 * boot is the boot's: the tree shows it done only after the boot. */
static int run_forward(const struct swap_ctx *sc, const struct layout *L,
		       struct swap_plan *plan, struct reimage_error *err)
{
	for (size_t i = 0; i < plan->n; i++) {
		const struct swap_step *s = &plan->steps[i];
		if (s->deferred)
			continue;
		int state = step_state(L, s), r;
		if (state == 3)
			continue;
		if (state < 0)
			return inconsistent(s, err);
		if ((r = step_forward(sc, L, s, state, err)) < 0) {
			err_prefix(err, "swap step %zu (%s %s)", i + 1, op_names[s->op], s->name);
			return r;
		}
		if (r == 1 && (r = note_deferred(L, plan, i, err)) < 0)
			return r;
		if (i == 0 && sc->pause_s > 0 && plan->n > 1) {
			log_warn("test switch: swap paused for %lld s after its first step",
				 sc->pause_s);
			if ((r = sc->ops->sync(sc->backend, sc->root, err)) < 0)
				return r;
			sleep((unsigned)sc->pause_s);
		}
	}
	return 0;
}

/* Moves deferred to a boot that has not come are forgotten before an
 * undo: the tree shows their steps as not done, and so they must stay. */
static int cancel_deferred(const struct swap_ctx *sc, const struct layout *L,
			   const struct swap_plan *plan, struct reimage_error *err)
{
	if (!plan->n_deferred)
		return 0;
	if (!OPS_HAS(sc->ops, struct reimage_backend_ops, deferred_cancel)) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"backend %s deferred moves to the boot but cannot cancel them",
			sc->ops->name);
		return -ENOTSUP;
	}
	return sc->ops->deferred_cancel(sc->backend, L->dir, err);
}

/* Undo every step done, back to front (moves the backend defers now
 * happen at the next boot, in this order). */
static int run_undo(const struct swap_ctx *sc, const struct layout *L,
		    const struct swap_plan *plan, struct reimage_error *err)
{
	int r;
	if ((r = cancel_deferred(sc, L, plan, err)) < 0)
		return r;
	for (size_t i = plan->n; i-- > 0;) {
		const struct swap_step *s = &plan->steps[i];
		int state = step_state(L, s), r;
		if (state == 0)
			continue;
		if (state < 0)
			return inconsistent(s, err);
		if ((r = step_undo(sc, L, s, state, err)) < 0) {
			err_prefix(err, "undo step %zu (%s %s)", i + 1, op_names[s->op], s->name);
			return r;
		}
	}
	return 0;
}

static int finish(const struct swap_ctx *sc, const struct layout *L, const char *mark,
		  struct reimage_error *err)
{
	int r;
	/* One sync of the volume for every rename, then the record that says
	 * so: "done" is on disk only once the renames are. */
	if ((r = sc->ops->sync(sc->backend, L->root, err)) < 0)
		return r;
	return journal_mark(L, mark, err);
}

int swap_journal_plan(const struct swap_ctx *sc, struct swap_plan *plan,
		      struct reimage_error *err)
{
	struct layout L;
	int r;

	layout_init(&L, sc->root);
	if ((r = journal_write_plan(&L, plan, err)) < 0)
		return r;
	plan->journaled = 1;
	return 0;
}

/* Same steps on the same objects, same entries kept: the journaled plan
 * is the one the tree calls for now. */
static int plan_same(const struct swap_plan *a, const struct swap_plan *b)
{
	if (a->n != b->n || a->n_kept != b->n_kept || a->n_unapplied != b->n_unapplied)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct swap_step *x = &a->steps[i], *y = &b->steps[i];
		if (x->op != y->op || strcmp(x->name, y->name) || !same_id(x->old_id, y->old_id) ||
		    !same_id(x->new_id, y->new_id))
			return 0;
	}
	for (size_t i = 0; i < a->n_kept; i++)
		if (strcmp(a->kept[i], b->kept[i]))
			return 0;
	for (size_t i = 0; i < a->n_unapplied; i++)
		if (strcmp(a->unapplied[i], b->unapplied[i]))
			return 0;
	return 1;
}

int swap_plan_recheck(const struct swap_ctx *sc, const char *const *keep,
		      const char *const *preserve, struct swap_plan *plan,
		      struct reimage_error *err)
{
	struct swap_plan now;
	int r;

	/* Stats and directory reads only: no sync unless the plan changed. */
	if ((r = swap_plan_build(sc, keep, preserve, &now, err)) < 0)
		return r;
	if (plan_same(plan, &now)) {
		swap_plan_free(&now);
		return 0;
	}
	/* Nothing is renamed yet: the fresh plan replaces the journaled one
	 * whole (journal_create), so a crash leaves one or the other. */
	log_warn("swap: the root or the staged image changed since the plan was journaled; "
		 "journaling it again");
	if ((r = swap_journal_plan(sc, &now, err)) < 0) {
		swap_plan_free(&now);
		return r;
	}
	swap_plan_free(plan);
	*plan = now;
	return 1;
}

int swap_run(const struct swap_ctx *sc, struct swap_plan *plan, struct reimage_error *err)
{
	struct layout L;
	int r;

	layout_init(&L, sc->root);
	/* Durable before destructive: the whole plan is on disk first --
	 * journaled before the outage began where the caller could. */
	if (!plan->journaled && (r = journal_write_plan(&L, plan, err)) < 0)
		return r;
	r = run_forward(sc, &L, plan, err);
	if (r == 0)
		return finish(sc, &L, "swapped", err);
	/* Put the old image back; the first error (the cause) is kept. */
	struct reimage_error undo_err = { 0 };
	if (run_undo(sc, &L, plan, &undo_err) == 0 && finish(sc, &L, "undone", &undo_err) == 0) {
		err_prefix(err, "swap failed, old image restored");
		return r;
	}
	err_prefix(err, "swap failed and could not be undone (%s); run `reimage recover`",
		   undo_err.msg);
	return r;
}

int swap_forget_asides(const char *root, struct reimage_error *err)
{
	enum swap_journal_state js;
	struct swap_plan plan;
	struct layout L;
	int r;

	layout_init(&L, root);
	if ((r = swap_journal_read(root, &js, &plan, err)) < 0)
		return r;
	for (size_t i = 0; i < plan.n && r == 0; i++) {
		char a[PATH_MAX], b[PATH_MAX];
		if (plan.steps[i].op != OP_MOUNT)
			continue;
		step_paths(&L, &plan.steps[i], a, b);
		r = fs_remove_tree(a, err);
	}
	swap_plan_free(&plan);
	return r;
}

/* Every step's state read from the tree before anything moves: a tree
 * that is neither before nor after one of them is refused whole, not
 * after the steps before it have been redone or undone. */
static int check_tree(const struct layout *L, const struct swap_plan *plan,
		      struct reimage_error *err)
{
	for (size_t i = 0; i < plan->n; i++)
		if (!plan->steps[i].deferred && step_state(L, &plan->steps[i]) < 0)
			return inconsistent(&plan->steps[i], err);
	return 0;
}

static int refuse_damaged(const struct layout *L, struct reimage_error *err)
{
	err_set(err, -EUCLEAN, REIMAGE_EC_STATE,
		"the journal %s and its copy %s are damaged or missing while a swap began: "
		"what the swap moved cannot be known, so nothing was touched.  The old image's "
		"entries are at the top level, in %s, %s or %s; put them back at the top level "
		"by hand (the new image's back into %s), then remove both files and the job's "
		"state %s", L->journal, L->plan, L->staging, L->retired, L->parking, L->staging,
		L->state);
	return -EUCLEAN;
}

static int refuse_deleting(const struct layout *L, struct reimage_error *err)
{
	err_set(err, -EBUSY, REIMAGE_EC_STATE,
		"confirm has begun deleting the retired image (%s): it cannot be rolled back "
		"to; run `reimage confirm` to finish the deletion", L->deleting);
	return -EBUSY;
}

/* Run a journaled plan to its end: undone (undo) or swapped.  The plan
 * of a damaged journal is first written afresh (from its copy), so
 * that the record closing this run is read after a valid plan. */
static int recover_plan(const struct swap_ctx *sc, const struct layout *L,
			struct swap_plan *plan, int undo, struct reimage_error *err)
{
	int r;

	if (plan->damaged) {
		log_warn("journal %s damaged: its plan is taken from %s, the steps done from the "
			 "tree", L->journal, L->plan);
		if ((r = journal_write_plan(L, plan, err)) < 0)
			return r;
	}
	r = undo ? run_undo(sc, L, plan, err) : run_forward(sc, L, plan, err);
	return r < 0 ? r : finish(sc, L, undo ? "undone" : "swapped", err);
}

/* Finish the journaled swap forward (reason NULL) or undo it as a
 * rollback (reason: why).  See swap_recover() and swap_rollback(). */
static int recover(const struct swap_ctx *sc, const char *reason, struct reimage_error *err)
{
	enum swap_journal_state state;
	struct swap_plan plan;
	struct layout L;
	char rec[REIMAGE_ERRMSG_MAX * 3 + 16];
	int r, undo = reason != NULL;

	layout_init(&L, sc->root);
	if ((r = swap_journal_read(sc->root, &state, &plan, err)) < 0)
		return r;
	if (state == SWAP_DAMAGED) {
		r = refuse_damaged(&L, err);
		goto out;
	}
	/* A rollback's intent is on disk: it is finished, never reversed. */
	if (state == SWAP_ROLLBACK)
		undo = 1;
	if (state == SWAP_NONE || (state == SWAP_UNDONE && undo) ||
	    (state == SWAP_DONE && !undo)) {
		r = 0;
		goto out;
	}
	if (undo && fs_exists(L.deleting)) {
		r = refuse_deleting(&L, err);
		goto out;
	}
	/* Checked before any record is written: a refused recover or
	 * rollback leaves the journal as it was. */
	if ((r = check_tree(&L, &plan, err)) < 0)
		goto out;
	if (state == SWAP_UNDONE) {
		/* Redo after an undo: say so first, so a crash in between is
		 * read as "started" again. */
		r = journal_mark(&L, "redo", err);
	} else if (undo && state != SWAP_ROLLBACK) {
		/* Durable before destructive: "rollback" is on disk before the
		 * first rename of an undo, so that a crash anywhere in it is read
		 * as a rollback begun (recover finishes it, confirm refuses),
		 * never as "swapped" on a half-undone tree. */
		snprintf(rec, sizeof(rec), "rollback ");
		journal_encode(rec + 9, sizeof(rec) - 9, reason);
		r = journal_mark(&L, rec, err);
	}
	if (r == 0)
		r = recover_plan(sc, &L, &plan, undo, err);
out:
	swap_plan_free(&plan);
	return r;
}

int swap_recover(const struct swap_ctx *sc, int undo, struct reimage_error *err)
{
	return recover(sc, undo ? "swap undone by `reimage recover --undo`" : NULL, err);
}

int swap_rollback(const struct swap_ctx *sc, const char *reason, struct reimage_error *err)
{
	return recover(sc, reason && reason[0] ? reason : "rolled back", err);
}

int swap_retire(const struct swap_ctx *sc, struct reimage_error *err)
{
	struct layout L;
	int r;

	layout_init(&L, sc->root);
	/* The marker of a deletion begun is the retired image's own name:
	 * old/ becomes deleting/ in one rename, made durable (the directory
	 * synced) before the first file goes.  From then on rollback is
	 * refused, and confirm or recover only finish the deletion. */
	if (fs_exists(L.retired)) {
		if (rename(L.retired, L.deleting) < 0) {
			err_sys(err, -errno, "rename %s to %s", L.retired, L.deleting);
			return err->code;
		}
		if ((r = fs_sync_dir(L.dir, err)) < 0)
			return r;
	}
	if (!fs_exists(L.deleting))
		return 0;
	/* What refreshed mounts kept aside goes with the image it belongs to. */
	if ((r = swap_forget_asides(sc->root, err)) < 0 ||
	    (r = fs_remove_tree(L.deleting, err)) < 0)
		return r;
	/* The journal last: while it is there, a crash is finished from it. */
	return swap_forget(sc->root, err);
}

int swap_deferred_names(const char *root, char *buf, size_t cap, struct reimage_error *err)
{
	enum swap_journal_state js;
	struct swap_plan plan;
	size_t len = 0;
	int r;

	buf[0] = '\0';
	if ((r = swap_journal_read(root, &js, &plan, err)) < 0)
		return r;
	for (size_t i = 0; i < plan.n && len < cap; i++) {
		const struct swap_step *s = &plan.steps[i];
		if (s->deferred)
			len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "\n" : "",
						s->op == OP_FINAL ? LAYOUT_DIR "/new" : s->name);
	}
	swap_plan_free(&plan);
	return 0;
}

int swap_deferred_check(const char *root, struct reimage_error *err)
{
	enum swap_journal_state js;
	struct swap_plan plan;
	struct layout L;
	char missed[REIMAGE_ERRMSG_MAX / 2];
	size_t len = 0, n = 0;
	int r;

	layout_init(&L, root);
	if ((r = swap_journal_read(root, &js, &plan, err)) < 0)
		return r;
	missed[0] = '\0';
	for (size_t i = 0; i < plan.n; i++) {
		const struct swap_step *s = &plan.steps[i];
		if (!s->deferred || step_state(&L, s) == 3)
			continue;
		n++;
		if (len < sizeof(missed))
			len += (size_t)snprintf(missed + len, sizeof(missed) - len, "%s%s '%s'",
						len ? ", " : "", op_names[s->op], s->name);
	}
	swap_plan_free(&plan);
	if (!n)
		return 0;
	err_set(err, -EUCLEAN, REIMAGE_EC_STATE,
		"%zu step(s) deferred to the boot were not done by it: %s", n, missed);
	return -EUCLEAN;
}
