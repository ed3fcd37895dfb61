/*
 * test_defer.c -- the core's side of moves deferred to the boot (the
 * Windows backend's MOVEFILE_DELAY_UNTIL_REBOOT), through a backend table
 * that wraps the sandbox: moves out of an entry "in use" are deferred,
 * and so is every later move touching a path of a deferred one (the
 * contract in plugin.h); "the boot" performs the deferred moves in order.
 * The swap must journal the deferred steps, name them in the state and
 * report, undo by cancelling them before the boot, and confirm only once
 * the boot did them.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "error.h"
#include "layout.h"
#include "phase.h"
#include "registry.h"
#include "report.h"
#include "state.h"
#include "swap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEFERRED 64

static const struct reimage_backend_ops *real;
static struct reimage_backend_ops deferring;
static char in_use[4096];  /* moves out of this path are deferred */
static struct { char from[4096], to[4096]; } pending[MAX_DEFERRED];
static int n_pending, cancels;

/* 1 if a is b, or one lies under the other. */
static int overlaps(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;
	return strncmp(a, b, n) == 0 && (la == lb || (la < lb ? b[n] : a[n]) == '/');
}

static int defer_move(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	int defer = overlaps(from, in_use);
	for (int i = 0; i < n_pending && !defer; i++)
		defer = overlaps(from, pending[i].from) || overlaps(from, pending[i].to) ||
			overlaps(to, pending[i].from) || overlaps(to, pending[i].to);
	if (!defer)
		return real->move(ctx, from, to, err);
	/* A backend breaking the contract (no REIMAGE_BCAP_DEFER) keeps nothing. */
	if (!(deferring.caps & REIMAGE_BCAP_DEFER))
		return 1;
	CU_ASSERT_FATAL(n_pending < MAX_DEFERRED);
	snprintf(pending[n_pending].from, sizeof(pending[0].from), "%s", from);
	snprintf(pending[n_pending].to, sizeof(pending[0].to), "%s", to);
	n_pending++;
	return 1;
}

static int defer_cancel(void *ctx, const char *dir, struct reimage_error *err)
{
	int kept = 0;
	(void)ctx; (void)err;
	cancels++;
	for (int i = 0; i < n_pending; i++)
		if (!overlaps(pending[i].from, dir) && !overlaps(pending[i].to, dir))
			pending[kept++] = pending[i];
	n_pending = kept;
	return 0;
}

/* The session manager at boot: every deferred move, in order. */
static void boot(void)
{
	for (int i = 0; i < n_pending; i++)
		CU_ASSERT_EQUAL_FATAL(rename(pending[i].from, pending[i].to), 0);
	n_pending = 0;
}

static const char *const preserve[] = { "etc/hostname", "home/alice", NULL };

/* One case's root, its plan and the sandbox under the wrapper. */
struct defer_case {
	struct registry reg;
	struct plugin *sb;
	struct swap_plan plan;
	struct swap_ctx sc;
	char root[4096];
};

/* old: a running root; new: the staged image; expected: new plus the
 * preserves; then a root with the image staged, its plan built. */
static void setup(struct defer_case *t)
{
	struct reimage_error err = { 0 };

	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; cd '%s'; mkdir -p old/usr old/etc old/var/log old/home/alice new/usr "
		"new/etc new/opt new/home; echo old > old/usr/tool; echo old-host > old/etc/hostname; "
		"echo old > old/etc/os; echo log > old/var/log/x; echo mine > old/home/alice/notes; "
		"echo new > new/usr/tool; echo new > new/etc/os; echo x > new/opt/x; "
		"cp -a new expected; cp -a old/etc/hostname expected/etc/; cp -a old/home/alice "
		"expected/home/; cp -a old root; mkdir -m 700 root/.reimage; cp -a new root/.reimage/new",
		t_dir()), 0);
	CU_ASSERT_EQUAL_FATAL(registry_init(&t->reg, NULL, &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_backend(&t->reg, "sandbox", &t->sb, &err), 0);
	CU_ASSERT_EQUAL_FATAL(plugin_start(t->sb, &err), 0);
	real = t->sb->desc->backend;
	deferring = *real;
	deferring.caps = (real->caps & ~REIMAGE_BCAP_EXCHANGE) | REIMAGE_BCAP_DEFER;
	deferring.exchange = NULL;
	deferring.move = defer_move;
	deferring.deferred_cancel = defer_cancel;
	CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(t_path("root"), t->root));
	snprintf(in_use, sizeof(in_use), "%s/usr", t->root);
	n_pending = cancels = 0;
	t->sc = (struct swap_ctx){ t->root, &deferring, t->sb->ctx, 0 };
	CU_ASSERT_EQUAL_FATAL(swap_plan_build(&t->sc, NULL, preserve, &t->plan, &err), 0);
}

static void teardown(struct defer_case *t)
{
	swap_plan_free(&t->plan);
	registry_fini(&t->reg);
}

static int same_tree(const char *dir, const char *model, const char *what)
{
	char *a = fixture_manifest(model), *b = fixture_manifest(dir);
	int same = fixture_same(a, b, what);
	free(a);
	free(b);
	return same;
}

TEST_CASE(deferred_steps_journaled_and_done_at_boot)
{
	struct defer_case t;
	struct reimage_error err = { 0 };
	char names[1024];

	setup(&t);
	CU_ASSERT_EQUAL_FATAL(swap_run(&t.sc, &t.plan, &err), 0);
	/* usr is in use: its exchange, then FINAL (new/ holds a pending
	 * path) and the preserves that come out of old/ wait for the boot. */
	CU_ASSERT_EQUAL(t.plan.n_deferred, 4);
	CU_ASSERT_EQUAL(n_pending, 3 + 1 + 2);
	CU_ASSERT_EQUAL(swap_deferred_names(t.root, names, sizeof(names), &err), 0);
	CU_ASSERT_STRING_EQUAL(names, "usr\n.reimage/new\netc/hostname\nhome/alice");
	/* Before the boot: the old usr is in place, the rest is swapped. */
	char *tool = t_read(t_path("root/usr/tool")), *os = t_read(t_path("root/etc/os"));
	CU_ASSERT_STRING_EQUAL(tool, "old\n");
	CU_ASSERT_STRING_EQUAL(os, "new\n");
	free(tool);
	free(os);
	CU_ASSERT(swap_deferred_check(t.root, &err) == -EUCLEAN);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "exchange 'usr'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "4 step(s)"));
	/* A recover before the boot leaves the deferred steps to it. */
	err_clear(&err);
	CU_ASSERT_EQUAL(t_sh("f='%s/.reimage/journal'; s=$(stat -c %%s \"$f\"); "
			     "truncate -s $((s - 3)) \"$f\"", t.root), 0);
	CU_ASSERT_EQUAL(swap_recover(&t.sc, 0, &err), 0);
	CU_ASSERT_EQUAL(n_pending, 6);
	boot();
	err_clear(&err);
	CU_ASSERT_EQUAL(swap_deferred_check(t.root, &err), 0);
	CU_ASSERT(same_tree(t.root, t_path("expected"), "after the boot"));
	CU_ASSERT(same_tree(t_path("root/.reimage/old/usr"), t_path("old/usr"), "retired usr"));
	teardown(&t);
}

TEST_CASE(undo_before_boot_cancels_deferred)
{
	struct defer_case t;
	struct reimage_error err = { 0 };
	char names[1024];

	setup(&t);
	CU_ASSERT_EQUAL_FATAL(swap_run(&t.sc, &t.plan, &err), 0);
	CU_ASSERT_EQUAL_FATAL(n_pending, 6);
	CU_ASSERT_EQUAL(swap_recover(&t.sc, 1, &err), 0);
	CU_ASSERT_EQUAL(cancels, 1);
	CU_ASSERT_EQUAL(n_pending, 0);
	CU_ASSERT(same_tree(t.root, t_path("old"), "undone before the boot"));
	/* The undo dropped the deferred marks: nothing is left to check. */
	CU_ASSERT_EQUAL(swap_deferred_names(t.root, names, sizeof(names), &err), 0);
	CU_ASSERT_STRING_EQUAL(names, "");
	/* And a redo defers usr again, then the boot completes it. */
	CU_ASSERT_EQUAL(swap_recover(&t.sc, 0, &err), 0);
	CU_ASSERT_EQUAL(n_pending, 6);
	boot();
	CU_ASSERT(same_tree(t.root, t_path("expected"), "redone, then booted"));
	teardown(&t);
}

TEST_CASE(defer_without_capability_refused)
{
	struct defer_case t;
	struct reimage_error err = { 0 };

	setup(&t);
	deferring.caps &= ~REIMAGE_BCAP_DEFER;
	CU_ASSERT(swap_run(&t.sc, &t.plan, &err) == -EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "without declaring"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "old image restored"));
	CU_ASSERT(same_tree(t.root, t_path("old"), "refused deferral undone"));
	teardown(&t);
}

/* The job's state and its report carry the deferred entries; confirm
 * commits only once the boot has done them. */
TEST_CASE(confirm_waits_for_deferred)
{
	struct defer_case t;
	struct reimage_error err = { 0 };
	struct job_state st = { 0 };
	struct root_ctx rc;

	setup(&t);
	CU_ASSERT_EQUAL_FATAL(swap_run(&t.sc, &t.plan, &err), 0);
	snprintf(st.job, sizeof(st.job), "j1");
	snprintf(st.phase, sizeof(st.phase), "REBOOT");
	snprintf(st.status, sizeof(st.status), "pending");
	snprintf(st.backend, sizeof(st.backend), "sandbox");
	CU_ASSERT_EQUAL(swap_deferred_names(t.root, st.deferred, sizeof(st.deferred), &err), 0);
	CU_ASSERT_EQUAL_FATAL(state_write(t.root, &st, &err), 0);
	char *text = t_read(t_path("root/.reimage/state"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"deferred\": [\n    \"usr\",\n    \".reimage/new\""));
	free(text);

	struct report rep = { .job = "j1", .state = "pending", .phase = "REBOOT" };
	snprintf(rep.deferred, sizeof(rep.deferred), "%s", st.deferred);
	char *json = report_json(&rep);
	struct report back;
	CU_ASSERT_PTR_NOT_NULL_FATAL(json);
	CU_ASSERT_EQUAL(report_parse(json, strlen(json), &back, &err), 0);
	CU_ASSERT_STRING_EQUAL(back.deferred, "usr\n.reimage/new\netc/hostname\nhome/alice");
	free(json);

	CU_ASSERT_EQUAL_FATAL(root_open(&rc, t.root, "sandbox", NULL, &err), 0);
	CU_ASSERT_STRING_EQUAL(rc.st.deferred, st.deferred);
	char *shown = NULL;
	size_t shown_len = 0;
	FILE *out = open_memstream(&shown, &shown_len);
	CU_ASSERT_EQUAL(root_status(&rc, out, 0, &err), 0);
	fclose(out);
	CU_ASSERT_PTR_NOT_NULL(strstr(shown, "deferred usr (moved at the boot)\n"
					     "deferred .reimage/new (moved at the boot)\n"));
	free(shown);
	CU_ASSERT(root_confirm(&rc, &err) == -EUCLEAN);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not done by it"));
	CU_ASSERT_STRING_EQUAL(rc.st.status, "pending");
	root_close(&rc);
	boot();
	err_clear(&err);
	CU_ASSERT_EQUAL_FATAL(root_open(&rc, t.root, "sandbox", NULL, &err), 0);
	CU_ASSERT_EQUAL(root_confirm(&rc, &err), 0);
	CU_ASSERT_STRING_EQUAL(rc.st.status, "committed");
	root_close(&rc);
	teardown(&t);
}
