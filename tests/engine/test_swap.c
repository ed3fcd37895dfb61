/*
 * test_swap.c -- the swap and its recovery, by crash injection through
 * the backend table: for every k, a child process runs the swap of a
 * realistic plan and dies (_exit) at its k-th rename; then `recover`
 * must give exactly the new image plus the preserves, and `recover
 * --undo` exactly the old image, file by file.  Done both with atomic
 * exchange and with the three-move fallback.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "error.h"
#include "layout.h"
#include "registry.h"
#include "state.h"
#include "swap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CRASHED 42
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

static const struct reimage_backend_ops *real;
static struct reimage_backend_ops crashing;
static int ops_left;

static int crash_move(void *ctx, const char *a, const char *b, struct reimage_error *err)
{
	if (ops_left-- == 0)
		_exit(CRASHED);
	return real->move(ctx, a, b, err);
}

static int crash_exchange(void *ctx, const char *a, const char *b, struct reimage_error *err)
{
	if (ops_left-- == 0)
		_exit(CRASHED);
	return real->exchange(ctx, a, b, err);
}

static const char *const preserve[] = { "home/alice", "etc/hostname", "etc/machine-id",
					"srv/data", "etc/network/interfaces", NULL };
static const char *const keep[] = { "proc", "sys", "dev", "run", "lost+found", NULL };

/* template/old: the old root; template/new: the new tree; expected: the
 * new tree with the old kept entries and the preserved items. */
static void make_templates(void)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("old"), t_path("new")), 0);
	fixture_old_root(t_path("old"));
	fixture_new_tree(t_path("new"));
	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; cp -a '%s' '%s'; cd '%s'; rm -rf proc; for k in proc run lost+found; do "
		"cp -a ../old/$k .; done; for p in home/alice etc/hostname etc/machine-id srv/data "
		"etc/network/interfaces; do rm -rf $p; mkdir -p $(dirname $p); cp -a ../old/$p $p; "
		"done; chown --reference=../old/etc/network etc/network; "
		"chmod --reference=../old/etc/network etc/network",
		t_path("new"), t_path("expected"), t_path("expected")), 0);
}

/* A fresh root at dir: the old image with the new one staged. */
static void make_root(const char *dir)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; rm -rf '%s'; cp -a '%s' '%s'; mkdir -m 700 '%s/.reimage'; "
				   "cp -a '%s' '%s/.reimage/new'", dir, t_path("old"), dir, dir,
				   t_path("new"), dir), 0);
}

static void open_sandbox(struct registry *reg, struct plugin **ret)
{
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL_FATAL(registry_init(reg, NULL, &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_backend(reg, "sandbox", ret, &err), 0);
	CU_ASSERT_EQUAL_FATAL(plugin_start(*ret, &err), 0);
	real = (*ret)->desc->backend;
}

static void crash_points(int atomic)
{
	struct registry reg;
	struct plugin *sb;
	char *expected, *old;
	int completed = 0, k;

	make_templates();
	open_sandbox(&reg, &sb);
	crashing = *real;
	crashing.move = crash_move;
	crashing.exchange = atomic ? crash_exchange : NULL;
	if (!atomic)
		crashing.caps &= ~REIMAGE_BCAP_EXCHANGE;
	expected = fixture_manifest(t_path("expected"));
	old = fixture_manifest(t_path("old"));
	for (k = 0; k < 200 && !completed; k++) {
		const char *root = t_path("root");
		struct swap_ctx sc = { NULL, &crashing, sb->ctx, 0 };
		struct reimage_error err = { 0 };
		struct swap_plan plan;
		char real_root[4096];
		int status;

		make_root(root);
		CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(root, real_root));
		sc.root = real_root;
		CU_ASSERT_EQUAL_FATAL(swap_plan_build(&sc, keep, preserve, &plan, &err), 0);
		pid_t pid = fork();
		if (pid == 0) {
			ops_left = k;
			_exit(swap_run(&sc, &plan, &err) == 0 ? 0 : 1);
		}
		swap_plan_free(&plan);
		CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
		CU_ASSERT_FATAL(WIFEXITED(status));
		completed = WEXITSTATUS(status) == 0;
		if (!completed)
			CU_ASSERT_EQUAL_FATAL(WEXITSTATUS(status), CRASHED);

		/* Forward: exactly the new image plus the preserves, twice. */
		sc.ops = real;
		for (int twice = 0; twice < 2; twice++) {
			err_clear(&err);
			if (swap_recover(&sc, 0, &err) < 0)
				fprintf(stderr, "crash at %d: recover: %s\n", k, err.msg);
			CU_ASSERT_FATAL(err.code == 0);
			char *now = fixture_manifest(root);
			char what[64];
			snprintf(what, sizeof(what), "recover after crash at op %d", k);
			CU_ASSERT_FATAL(fixture_same(expected, now, what));
			free(now);
		}
		/* Backward: exactly the old image, twice. */
		for (int twice = 0; twice < 2; twice++) {
			err_clear(&err);
			if (swap_recover(&sc, 1, &err) < 0)
				fprintf(stderr, "crash at %d: undo: %s\n", k, err.msg);
			CU_ASSERT_FATAL(err.code == 0);
			char *now = fixture_manifest(root);
			char what[64];
			snprintf(what, sizeof(what), "recover --undo after crash at op %d", k);
			CU_ASSERT_FATAL(fixture_same(old, now, what));
			free(now);
		}
	}
	/* The plan has dozens of renames; every one was a crash point. */
	CU_ASSERT(completed);
	CU_ASSERT(k > 15);
	fprintf(stderr, "%d crash points checked (%s)\n", k - 1, atomic ? "exchange" : "3 moves");
	free(expected);
	free(old);
	registry_fini(&reg);
}

TEST_CASE(crash_every_step_exchange)
{
	crash_points(1);
}

TEST_CASE(crash_every_step_three_moves)
{
	crash_points(0);
}

/* Templates, a fresh root and its plan, with the sandbox started. */
static void root_with_plan(struct registry *reg, struct plugin **sb, char *real_root,
			   struct swap_plan *plan)
{
	struct reimage_error err = { 0 };
	make_templates();
	make_root(t_path("root"));
	open_sandbox(reg, sb);
	CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(t_path("root"), real_root));
	struct swap_ctx sc = { real_root, real, (*sb)->ctx, 0 };
	CU_ASSERT_EQUAL_FATAL(swap_plan_build(&sc, keep, preserve, plan, &err), 0);
}

TEST_CASE(plan_classifies_entries)
{
	struct registry reg;
	struct plugin *sb;
	struct swap_plan plan;
	char real_root[4096];

	root_with_plan(&reg, &sb, real_root, &plan);
	/* old: bin etc home lost+found opt proc run srv topfile usr var;
	 * new: NEW-IMAGE bin etc home only-new proc srv usr var */
	CU_ASSERT_EQUAL(plan.count[OP_EXCHANGE], 6);  /* bin etc home srv usr var */
	CU_ASSERT_EQUAL(plan.count[OP_RETIRE], 2);    /* opt topfile */
	CU_ASSERT_EQUAL(plan.count[OP_ADD], 2);       /* NEW-IMAGE only-new */
	CU_ASSERT_EQUAL(plan.count[OP_FINAL], 1);
	CU_ASSERT_EQUAL(plan.n_kept, 3);              /* lost+found proc run */
	CU_ASSERT_EQUAL(plan.count[OP_PEXCHANGE], 1); /* etc/hostname */
	CU_ASSERT_EQUAL(plan.count[OP_PMOVE], 4);
	swap_plan_free(&plan);
	registry_fini(&reg);
}

/* The plan journaled before the logout is checked after it: the same
 * tree keeps it (nothing written), a changed top level gets a fresh plan
 * journaled in its place, and the swap then runs that one. */
TEST_CASE(plan_rechecked_after_quiesce)
{
	struct registry reg;
	struct plugin *sb;
	struct reimage_error err = { 0 };
	struct swap_plan plan, journaled;
	enum swap_journal_state js;
	char real_root[4096];

	root_with_plan(&reg, &sb, real_root, &plan);
	struct swap_ctx sc = { real_root, real, sb->ctx, 0 };
	CU_ASSERT_EQUAL_FATAL(swap_journal_plan(&sc, &plan, &err), 0);
	CU_ASSERT_EQUAL(t_sh("stat -c %%Y.%%i '%s/.reimage/journal' > '%s'", real_root,
			     t_path("before")), 0);
	CU_ASSERT_EQUAL(swap_plan_recheck(&sc, keep, preserve, &plan, &err), 0);
	CU_ASSERT_EQUAL(t_sh("stat -c %%Y.%%i '%s/.reimage/journal' | cmp -s - '%s'", real_root,
			     t_path("before")), 0);
	/* A top-level entry appears in the root, one in the staged image. */
	CU_ASSERT_EQUAL_FATAL(t_sh("touch '%s/late-old' '%s/.reimage/new/late-new'", real_root,
				   real_root), 0);
	CU_ASSERT_EQUAL(swap_plan_recheck(&sc, keep, preserve, &plan, &err), 1);
	CU_ASSERT_EQUAL(plan.count[OP_RETIRE], 3);  /* opt topfile late-old */
	CU_ASSERT_EQUAL(plan.count[OP_ADD], 3);     /* NEW-IMAGE only-new late-new */
	CU_ASSERT(plan.journaled);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &journaled, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_STARTED);
	CU_ASSERT_EQUAL(journaled.n, plan.n);
	swap_plan_free(&journaled);
	CU_ASSERT_EQUAL(swap_run(&sc, &plan, &err), 0);
	CU_ASSERT_EQUAL(t_sh("test -e '%s/late-new' && test -e '%s/.reimage/old/late-old' && "
			     "! test -e '%s/late-old'", real_root, real_root, real_root), 0);
	swap_plan_free(&plan);
	registry_fini(&reg);
}

TEST_CASE(torn_journal_record_ignored)
{
	struct registry reg;
	struct plugin *sb;
	struct reimage_error err = { 0 };
	struct swap_plan plan;
	enum swap_journal_state js;
	char real_root[4096];

	root_with_plan(&reg, &sb, real_root, &plan);
	struct swap_ctx sc = { real_root, real, sb->ctx, 0 };
	CU_ASSERT_EQUAL_FATAL(swap_run(&sc, &plan, &err), 0);
	swap_plan_free(&plan);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_DONE);
	swap_plan_free(&plan);
	/* Cut the last record ("swapped") in half: the journal then says
	 * "started", and recover completes (a no-op) rather than guessing. */
	CU_ASSERT_EQUAL(t_sh("f='%s/.reimage/journal'; s=$(stat -c %%s \"$f\"); "
			     "truncate -s $((s - 5)) \"$f\"", real_root), 0);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_STARTED);
	swap_plan_free(&plan);
	char *expected = fixture_manifest(t_path("expected"));
	CU_ASSERT_EQUAL(swap_recover(&sc, 0, &err), 0);
	if (err.code)
		fprintf(stderr, "recover: %s\n", err.msg);
	char *now = fixture_manifest(real_root);
	CU_ASSERT(fixture_same(expected, now, "recover after torn record"));
	free(now);
	free(expected);
	/* A corrupted plan record: the plan comes from the journal's copy,
	 * the state from the tree ("started", recover completes it)... */
	CU_ASSERT_EQUAL(t_sh("sed -i '2s/step/stap/' '%s/.reimage/journal'", real_root), 0);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_STARTED);
	CU_ASSERT(plan.damaged);
	swap_plan_free(&plan);
	/* ...and with the copy damaged too, nothing can be known: refused. */
	CU_ASSERT_EQUAL(t_sh("sed -i '2s/step/stap/' '%s/.reimage/plan'", real_root), 0);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_DAMAGED);
	swap_plan_free(&plan);
	CU_ASSERT(swap_recover(&sc, 0, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nothing was touched"));
	registry_fini(&reg);
}

TEST_CASE(inconsistent_tree_refused)
{
	struct registry reg;
	struct plugin *sb;
	struct reimage_error err = { 0 };
	struct swap_plan plan;
	char real_root[4096];

	root_with_plan(&reg, &sb, real_root, &plan);
	struct swap_ctx sc = { real_root, real, sb->ctx, 0 };
	CU_ASSERT_EQUAL_FATAL(swap_run(&sc, &plan, &err), 0);
	swap_plan_free(&plan);
	/* Someone replaced an entry by hand: recover must not guess. */
	CU_ASSERT_EQUAL(t_sh("rm -rf '%s/usr' && mkdir '%s/usr'", real_root, real_root), 0);
	CU_ASSERT(swap_recover(&sc, 1, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "neither before nor after"));
	registry_fini(&reg);
}

/* With neither the journal nor its copy, the job's state decides: a
 * state that ended the swap (or none) reads "no swap began"; a state at
 * SWAP or after it, a damaged state beside staging, or a parked entry,
 * reads "damaged" -- staging may hold the old image's entries. */
TEST_CASE(lost_journal_read_through_state)
{
	static const struct {
		const char *phase, *status;
		enum swap_journal_state want;
	} cases[] = {
		{ "QUIESCE", "running", SWAP_NONE },
		{ "SWAP", "failed", SWAP_NONE },
		{ "COMMIT", "committed", SWAP_NONE },
		{ "FALLBACK", "rolled-back", SWAP_NONE },
		{ "SWAP", "running", SWAP_DAMAGED },
		{ "REBOOT", "pending", SWAP_DAMAGED },
		{ "TRIAL", "pending", SWAP_DAMAGED },
	};
	struct reimage_error err = { 0 };
	enum swap_journal_state js;
	struct swap_plan plan;
	char real_root[4096];

	make_templates();
	make_root(t_path("root"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(t_path("root"), real_root));
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_NONE);  /* no state at all */
	swap_plan_free(&plan);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct job_state st = { .job = "j" };
		snprintf(st.phase, sizeof(st.phase), "%s", cases[i].phase);
		snprintf(st.status, sizeof(st.status), "%s", cases[i].status);
		CU_ASSERT_EQUAL_FATAL(state_write(real_root, &st, &err), 0);
		CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
		swap_plan_free(&plan);
		if (js != cases[i].want)
			fprintf(stderr, "state %s %s: journal state %d\n", cases[i].phase,
				cases[i].status, js);
		CU_ASSERT_EQUAL(js, cases[i].want);
	}
	/* A damaged state cannot vouch for staging... */
	CU_ASSERT_EQUAL(t_sh("echo '{' > '%s/.reimage/state'", real_root), 0);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_DAMAGED);
	swap_plan_free(&plan);
	/* ...nor with nothing staged is it evidence of a swap; a parked
	 * entry always is. */
	CU_ASSERT_EQUAL(t_sh("rm -rf '%s/.reimage/new'", real_root), 0);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_NONE);
	swap_plan_free(&plan);
	CU_ASSERT_EQUAL(t_sh("rm '%s/.reimage/state' && mkdir '%s/.reimage/xchg'", real_root,
			     real_root), 0);
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_DAMAGED);
	swap_plan_free(&plan);
}

/* The whole root, .reimage/new and .reimage/old included (the journal
 * and its copy left out): what a refusal must leave exactly as it was. */
static char *whole_manifest(const char *root)
{
	char *text = NULL;
	CU_ASSERT_EQUAL(t_sh_out(&text, "cd '%s' && find . -mindepth 1 ! -path ./.reimage/journal "
				 "! -path ./.reimage/plan -printf '%%p %%y %%m %%U:%%G %%n %%l %%s %%i\\n' | "
				 "LC_ALL=C sort", root), 0);
	return text;
}

/* Damage d (below) to the journal of the root; 0 if d is a cut past the
 * last record's end. */
enum { DMG_EMPTY, DMG_MISSING, DMG_FLIP_LAST, DMG_FLIP_PLAN, DMG_BOTH, DMG_GONE, DMG_CUT };

static int damage(const char *root, int d)
{
	const char *j = t_path("root/.reimage/journal");
	(void)root;
	switch (d) {
	case DMG_EMPTY:
		return t_sh(": > '%s'", j) == 0;
	case DMG_MISSING:
		return t_sh("rm '%s'", j) == 0;
	case DMG_FLIP_LAST:  /* a byte of the last record's payload */
		return t_sh("tail -n1 '%s' | grep -q . && sed -i '$s/\\(.*\\)\\(.\\)\\(...\\)$/\\1#\\3/' '%s'",
			    j, j) == 0;
	case DMG_FLIP_PLAN:  /* the plan's own record */
		return t_sh("sed -i '1s/plan/plam/' '%s'", j) == 0;
	case DMG_BOTH:  /* the journal and its copy: nothing can be known */
		return t_sh("sed -i '1s/plan/plam/' '%s' '%s/.reimage/plan'", j, t_path("root")) == 0;
	case DMG_GONE:  /* both deleted, the job's state at SWAP */
		return t_sh("rm '%s' '%s/.reimage/plan'", j, t_path("root")) == 0;
	default: {  /* cut inside the last record, d - DMG_CUT bytes from its start */
		char *text = NULL;
		t_sh_out(&text, "f='%s'; s=$(stat -c %%s \"$f\"); l=$(tail -n1 \"$f\" | wc -c); "
			 "c=$((s - l + %d)); [ $c -lt $s ] && truncate -s $c \"$f\" && echo cut",
			 j, d - DMG_CUT);
		int ok = text && strstr(text, "cut");
		free(text);
		return ok;
	}
	}
}

/* Crash the swap at op k, damage the journal (d), recover: exactly the
 * new image plus the preserves -- or, when neither the journal nor its
 * copy gives the plan, a refusal that leaves every entry where it was
 * (staging holding old entries is never deleted, old/ never touched). */
static int damaged_point(struct plugin *sb, const char *expected, int k, int d)
{
	const char *root = t_path("root");
	struct swap_ctx sc = { NULL, &crashing, sb->ctx, 0 };
	struct reimage_error err = { 0 };
	enum swap_journal_state js;
	struct swap_plan plan;
	char real_root[4096], what[96];
	int status;

	make_root(root);
	CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(root, real_root));
	sc.root = real_root;
	CU_ASSERT_EQUAL_FATAL(swap_plan_build(&sc, keep, preserve, &plan, &err), 0);
	/* As the engine leaves it once the plan is durable. */
	struct job_state st = { .job = "damaged", .phase = "SWAP", .status = "running" };
	CU_ASSERT_EQUAL_FATAL(state_write(real_root, &st, &err), 0);
	pid_t pid = fork();
	if (pid == 0) {
		ops_left = k;
		_exit(swap_run(&sc, &plan, &err) == 0 ? 0 : 1);
	}
	swap_plan_free(&plan);
	CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
	if (!damage(root, d))
		return 0;
	snprintf(what, sizeof(what), "crash at op %d, journal damage %d", k, d);
	CU_ASSERT_EQUAL_FATAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	swap_plan_free(&plan);
	/* Never "no swap began". */
	CU_ASSERT_FATAL(js != SWAP_NONE);
	sc.ops = real;
	if (d == DMG_BOTH || d == DMG_GONE) {
		char *before = whole_manifest(real_root);
		CU_ASSERT_EQUAL(js, SWAP_DAMAGED);
		CU_ASSERT(swap_recover(&sc, 0, &err) < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nothing was touched"));
		char *after = whole_manifest(real_root);
		CU_ASSERT_FATAL(fixture_same(before, after, what));
		free(before);
		free(after);
		return 1;
	}
	for (int twice = 0; twice < 2; twice++) {
		err_clear(&err);
		if (swap_recover(&sc, 0, &err) < 0)
			fprintf(stderr, "%s: recover: %s\n", what, err.msg);
		CU_ASSERT_FATAL(err.code == 0);
		char *now = fixture_tree_manifest(root);
		CU_ASSERT_FATAL(fixture_same(expected, now, what));
		free(now);
	}
	/* The journal was written afresh: it says "swapped" now. */
	CU_ASSERT_EQUAL(swap_journal_read(real_root, &js, &plan, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_DONE);
	swap_plan_free(&plan);
	return 1;
}

TEST_CASE(journal_damage_every_step)
{
	struct registry reg;
	struct plugin *sb;
	int k, checked = 0, ops = 0;

	make_templates();
	open_sandbox(&reg, &sb);
	crashing = *real;
	crashing.move = crash_move;
	crashing.exchange = crash_exchange;
	char *expected = fixture_tree_manifest(t_path("expected"));
	/* How many renames the swap makes (a crash "after the last" too). */
	for (ops = 0; ops < 200; ops++) {
		int status;
		make_root(t_path("root"));
		pid_t pid = fork();
		if (pid == 0) {
			char real_root[4096];
			struct swap_plan plan;
			struct reimage_error err = { 0 };
			struct swap_ctx sc = { real_root, &crashing, sb->ctx, 0 };
			ops_left = ops;
			if (!realpath(t_path("root"), real_root) ||
			    swap_plan_build(&sc, keep, preserve, &plan, &err) < 0)
				_exit(2);
			_exit(swap_run(&sc, &plan, &err) == 0 ? 0 : 1);
		}
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			break;
	}
	CU_ASSERT_FATAL(ops > 15);
	for (k = 0; k <= ops; k++) {
		/* Every byte of the last record cut at the first, a middle and
		 * the last crash point (ASan build: the middle one only, for
		 * time); the other damages at every point. */
		int cuts = k == ops / 2 || (!UNDER_ASAN && (k == 0 || k == ops));
		for (int d = 0; d < DMG_CUT + (cuts ? 400 : 0); d++) {
			int r = damaged_point(sb, expected, k, d);
			if (!r && d >= DMG_CUT)
				break;  /* past the last record's end */
			checked += r;
		}
	}
	fprintf(stderr, "%d renames; %d crash points with a damaged journal checked\n", ops,
		checked);
	free(expected);
	registry_fini(&reg);
}
