/*
 * test_trial.c -- trial.c in-process: every decision of the guard's
 * table; arm and disarm file by file on sandbox roots (a plain /sbin/init,
 * a merged /usr, symlinks that try to leave the root, no init at all), and
 * from every point a power cut can leave them at; the fallback's undo on
 * a root swapped for real; the restore of mounted entries left to the old
 * image's agent.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "error.h"
#include "layout.h"
#include "trial.h"
#include "trial_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------ decisions */

struct decide_case {
	struct trial_facts f;
	enum trial_action want;
	const char *reason;  /* a piece of the reason */
};

static void check_decisions(const struct decide_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char reason[256] = "";
		enum trial_action a = trial_decide(&cases[i].f, reason, sizeof(reason));
		if (a != cases[i].want || !strstr(reason, cases[i].reason))
			fprintf(stderr, "case %zu: action %d (want %d), reason '%s' (want '%s')\n", i,
				a, cases[i].want, reason, cases[i].reason);
		CU_ASSERT_EQUAL(a, cases[i].want);
		CU_ASSERT_PTR_NOT_NULL(strstr(reason, cases[i].reason));
	}
}

TEST_CASE(decide_not_armed)
{
	const struct decide_case c[] = {
		{ { 0, 0, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_EXEC_PLAIN, "no trial" },
		{ { 0, 9, 3, TRIAL_INIT_MISSING, SWAP_STARTED }, TRIAL_EXEC_PLAIN, "no trial" },
	};
	check_decisions(c, sizeof(c) / sizeof(c[0]));
}

TEST_CASE(decide_journal_states)
{
	const struct decide_case c[] = {
		{ { 1, 0, 3, TRIAL_INIT_OK, SWAP_NONE }, TRIAL_EXEC_PLAIN, "stale" },
		{ { 1, 0, 3, TRIAL_INIT_OK, SWAP_UNDONE }, TRIAL_EXEC_PLAIN, "stale" },
		/* A swap cut short: the new image never booted, whatever else. */
		{ { 1, 0, 3, TRIAL_INIT_OK, SWAP_STARTED }, TRIAL_FALLBACK, "interrupted" },
		{ { 1, 0, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_EXEC_NEW, "attempt 1 of 3" },
		/* A rollback cut short is finished; a journal and copy both
		 * damaged undo nothing on a guess. */
		{ { 1, 0, 3, TRIAL_INIT_OK, SWAP_ROLLBACK }, TRIAL_FALLBACK, "rollback was interrupted" },
		{ { 1, 0, 3, TRIAL_INIT_OK, SWAP_DAMAGED }, TRIAL_EXEC_PLAIN, "damaged" },
	};
	check_decisions(c, sizeof(c) / sizeof(c[0]));
}

TEST_CASE(decide_attempts_counted)
{
	const struct decide_case c[] = {
		{ { 1, 0, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_EXEC_NEW, "attempt 1 of 3" },
		{ { 1, 1, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_EXEC_NEW, "attempt 2 of 3" },
		{ { 1, 2, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_EXEC_NEW, "attempt 3 of 3" },
		{ { 1, 3, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_FALLBACK, "3 boot attempts" },
		{ { 1, 7, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_FALLBACK, "3 boot attempts" },
		/* An unreadable count (INT_MAX) or trial file (max 0): used up. */
		{ { 1, INT_MAX, 3, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_FALLBACK, "attempts" },
		{ { 1, 0, 0, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_FALLBACK, "attempts" },
		{ { 1, 0, 1, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_EXEC_NEW, "attempt 1 of 1" },
		{ { 1, 1, 1, TRIAL_INIT_OK, SWAP_DONE }, TRIAL_FALLBACK, "1 boot attempt " },
	};
	check_decisions(c, sizeof(c) / sizeof(c[0]));
}

TEST_CASE(decide_bad_init)
{
	const struct decide_case c[] = {
		{ { 1, 0, 3, TRIAL_INIT_MISSING, SWAP_DONE }, TRIAL_FALLBACK, "no init" },
		{ { 1, 0, 3, TRIAL_INIT_NOEXEC, SWAP_DONE }, TRIAL_FALLBACK, "not executable" },
		/* Stale trials are not the guard's to judge. */
		{ { 1, 0, 3, TRIAL_INIT_MISSING, SWAP_UNDONE }, TRIAL_EXEC_PLAIN, "stale" },
	};
	check_decisions(c, sizeof(c) / sizeof(c[0]));
}

/* -------------------------------------------------------- arm and disarm */

#define GUARD_TEXT "#!/bin/sh\n# stands for reimage-guard\n"

/* root: a new image at the top level (setup: shell commands run in it),
 * .reimage/ 0700, and a guard binary to install. */
static const char *new_root(const char *setup)
{
	static char root[PATH_MAX];
	snprintf(root, sizeof(root), "%s/root", t_dir());
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; mkdir -p '%s/.reimage' '%s/bin' '%s/etc'; chmod 700 "
				   "'%s/.reimage'; echo sh > '%s/bin/sh'; echo cfg > '%s/etc/cfg'; "
				   "cd '%s'; %s", root, root, root, root, root, root, root, setup), 0);
	t_write(t_path("guard-bin"), GUARD_TEXT);
	return root;
}

static char *file_at(const char *root, const char *rel)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return t_read(path);
}

static int link_is(const char *root, const char *rel, const char *target)
{
	char path[PATH_MAX], buf[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0) {
		fprintf(stderr, "%s: not a symlink\n", path);
		return 0;
	}
	buf[n] = '\0';
	if (strcmp(buf, target) != 0)
		fprintf(stderr, "%s -> %s, want %s\n", path, buf, target);
	return strcmp(buf, target) == 0;
}

static int absent(const char *root, const char *rel)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (lstat(path, &st) == 0)
		fprintf(stderr, "%s: still there\n", path);
	return lstat(path, &st) < 0 && errno == ENOENT;
}

/* Every trial file gone and the image as it was. */
static void check_disarmed(const char *root, const char *before)
{
	char *now = fixture_manifest(root);
	CU_ASSERT(fixture_same(before, now, "after disarm"));
	free(now);
	CU_ASSERT(absent(root, ".reimage/trial"));
	CU_ASSERT(absent(root, ".reimage/guard"));
	CU_ASSERT(absent(root, ".reimage/attempts"));
	CU_ASSERT(absent(root, ".reimage/fallback"));
	CU_ASSERT(absent(root, ".reimage/init.saved"));
}

static void check_trial_file(const char *root, int max, const char *init, const char *link)
{
	char want[2 * PATH_MAX];
	char *text = file_at(root, ".reimage/trial");
	snprintf(want, sizeof(want), "max_attempts=%d\ninit=%s\nlink=%s\n", max, init, link);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	if (strcmp(text, want) != 0)
		fprintf(stderr, "trial file:\n%s\nwant:\n%s\n", text, want);
	CU_ASSERT_STRING_EQUAL(text, want);
	free(text);
}

static void check_guard_copy(const char *root)
{
	char path[PATH_MAX];
	struct stat st;
	char *g = file_at(root, ".reimage/guard");
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_STRING_EQUAL(g, GUARD_TEXT);
	free(g);
	snprintf(path, sizeof(path), "%s/.reimage/guard", root);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0755);
}

TEST_CASE(arm_plain_init)
{
	struct reimage_error err = { 0 };
	struct trial_info ti;
	char path[PATH_MAX];
	const char *root = new_root("mkdir sbin; echo real-init > sbin/init; chmod 755 sbin/init; "
				    "echo 9 > .reimage/attempts; echo state=done > .reimage/fallback");
	char *before = fixture_manifest(root);

	CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 3, &err), 0);
	check_guard_copy(root);
	check_trial_file(root, 3, "/sbin/init", "sbin/init");
	CU_ASSERT(link_is(root, "sbin/init", "../.reimage/guard"));
	char *saved = file_at(root, ".reimage/init.saved");
	CU_ASSERT_STRING_EQUAL(saved, "real-init\n");
	free(saved);
	/* A new trial starts with no attempt and no fallback. */
	CU_ASSERT(absent(root, ".reimage/attempts"));
	CU_ASSERT(absent(root, ".reimage/fallback"));

	CU_ASSERT_EQUAL(trial_state(root, &ti, &err), 0);
	CU_ASSERT(ti.armed);
	CU_ASSERT_EQUAL(ti.max_attempts, 3);
	CU_ASSERT_EQUAL(ti.attempts, 0);
	CU_ASSERT_EQUAL(ti.fallback, TRIAL_FB_NONE);
	/* The file is the link entry itself: it is run from its saved place. */
	trial_init_path(&ti, path, sizeof(path));
	CU_ASSERT_STRING_EQUAL(path, "/.reimage/init.saved");
	CU_ASSERT_EQUAL(trial_count_attempt(root, 2, &err), 0);
	CU_ASSERT_EQUAL(trial_state(root, &ti, &err), 0);
	CU_ASSERT_EQUAL(ti.attempts, 2);

	CU_ASSERT_EQUAL(trial_disarm(trial_ctx(root), &err), 0);
	if (err.code)
		fprintf(stderr, "disarm: %s\n", err.msg);
	/* before had attempts and fallback files, not part of the manifest. */
	check_disarmed(root, before);
	CU_ASSERT_EQUAL(trial_state(root, &ti, &err), 0);
	CU_ASSERT(!ti.armed);
	/* Nothing armed: nothing to do. */
	CU_ASSERT_EQUAL(trial_disarm(trial_ctx(root), &err), 0);
	free(before);
}

TEST_CASE(arm_merged_usr)
{
	struct reimage_error err = { 0 };
	struct trial_info ti;
	char path[PATH_MAX];
	const char *root = new_root(
		"mkdir -p usr/sbin usr/lib/systemd; ln -s usr/sbin sbin; ln -s usr/lib lib; "
		"echo systemd > usr/lib/systemd/systemd; chmod 755 usr/lib/systemd/systemd; "
		"ln -s ../lib/systemd/systemd usr/sbin/init");
	char *before = fixture_manifest(root);

	CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 2, &err), 0);
	/* /sbin/init is usr/sbin/init: the guard takes that entry's place. */
	check_trial_file(root, 2, "/usr/lib/systemd/systemd", "usr/sbin/init");
	CU_ASSERT(link_is(root, "usr/sbin/init", "../../.reimage/guard"));
	CU_ASSERT(link_is(root, ".reimage/init.saved", "../lib/systemd/systemd"));
	CU_ASSERT(link_is(root, "sbin", "usr/sbin"));
	CU_ASSERT_EQUAL(trial_state(root, &ti, &err), 0);
	trial_init_path(&ti, path, sizeof(path));
	CU_ASSERT_STRING_EQUAL(path, "/usr/lib/systemd/systemd");
	/* The symlink resolves to the guard, as the kernel would follow it. */
	char *g = file_at(root, "sbin/init");
	CU_ASSERT_STRING_EQUAL(g, GUARD_TEXT);
	free(g);

	CU_ASSERT_EQUAL(trial_disarm(trial_ctx(root), &err), 0);
	check_disarmed(root, before);
	free(before);
}

TEST_CASE(arm_symlinks_stay_inside)
{
	struct reimage_error err = { 0 };
	/* /sbin/init climbs out to the host's busybox, which the image lacks;
	 * usr/sbin/init is absolute, taken from the root; a loop is skipped. */
	const char *root = new_root(
		"mkdir -p sbin usr/sbin usr/lib/systemd lib/systemd; "
		"ln -s ../../../../../../../../bin/busybox sbin/init; "
		"ln -s /usr/lib/systemd/real usr/sbin/init; echo real > usr/lib/systemd/real; "
		"ln -s systemd lib/systemd/systemd-loop; ln -s systemd-loop lib/systemd/systemd");
	CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 1, &err), 0);
	check_trial_file(root, 1, "/usr/lib/systemd/real", "sbin/init");
	CU_ASSERT(link_is(root, ".reimage/init.saved", "../../../../../../../../bin/busybox"));

	/* Only a loop and a way out: no init at all. */
	char root2[PATH_MAX];
	snprintf(root2, sizeof(root2), "%s/root2", t_dir());
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; mkdir -p '%s/.reimage' '%s/sbin' '%s/lib/systemd'; cd '%s'; "
				   "ln -s /../../bin/busybox sbin/init; ln -s systemd lib/systemd/systemd",
				   root2, root2, root2, root2), 0);
	CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root2), root2, t_path("guard-bin"), 1, &err), 0);
	check_trial_file(root2, 1, "", "sbin/init");
}

TEST_CASE(arm_no_init)
{
	struct reimage_error err = { 0 };
	struct trial_info ti;
	char path[PATH_MAX];
	const char *root = new_root("mkdir sbin");
	char *before = fixture_manifest(root);

	CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 3, &err), 0);
	check_trial_file(root, 3, "", "sbin/init");
	CU_ASSERT(link_is(root, "sbin/init", "../.reimage/guard"));
	CU_ASSERT(absent(root, ".reimage/init.saved"));
	CU_ASSERT_EQUAL(trial_state(root, &ti, &err), 0);
	trial_init_path(&ti, path, sizeof(path));
	CU_ASSERT_STRING_EQUAL(path, "");
	CU_ASSERT_EQUAL(trial_disarm(trial_ctx(root), &err), 0);
	check_disarmed(root, before);
	free(before);
}

TEST_CASE(arm_refused)
{
	struct reimage_error err = { 0 };
	/* No /sbin: the kernel would find no guard to run. */
	const char *root = new_root("mkdir -p usr/lib/systemd; echo x > usr/lib/systemd/systemd");
	char *before = fixture_manifest(root);
	CU_ASSERT(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 3, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "sbin/init"));
	err_clear(&err);
	CU_ASSERT_EQUAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 0, &err), -EINVAL);
	err_clear(&err);
	/* A guard that cannot be read: refused before anything changes. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir '%s/sbin'", root), 0);
	CU_ASSERT(trial_arm(trial_ctx(root), root, t_path("no-such-guard"), 3, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "boot guard"));
	err_clear(&err);
	/* No guard given and none installed. */
	CU_ASSERT_EQUAL(trial_arm(trial_ctx(root), root, NULL, 3, &err), -ENOENT);
	CU_ASSERT(absent(root, ".reimage/trial"));
	CU_ASSERT(absent(root, "sbin/init"));
	CU_ASSERT_EQUAL_FATAL(t_sh("rmdir '%s/sbin'", root), 0);
	char *now = fixture_manifest(root);
	CU_ASSERT(fixture_same(before, now, "after refused arms"));
	free(now);
	free(before);
}

/* ------------------------------------------------- interrupted arm/disarm */

static int exchange(const char *a, const char *b)
{
	return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */);
}

/* A power cut after arm's step k (trial.h): the tree as it leaves it,
 * made by hand from a disarmed root. */
static void arm_cut_after(const char *root, int k)
{
	if (k >= 1)
		CU_ASSERT_EQUAL_FATAL(t_sh("cp '%s' '%s/.reimage/guard'; chmod 755 '%s/.reimage/guard'",
					   t_path("guard-bin"), root, root), 0);
	/* Before step 2: an earlier trial's count is still there. */
	if (k < 2)
		CU_ASSERT_EQUAL_FATAL(t_sh("echo 5 > '%s/.reimage/attempts'", root), 0);
	if (k >= 3)
		CU_ASSERT_EQUAL_FATAL(t_sh("printf 'max_attempts=2\\ninit=/sbin/init\\nlink=sbin/init\\n' "
					   "> '%s/.reimage/trial'", root), 0);
	if (k >= 4)
		CU_ASSERT_EQUAL_FATAL(t_sh("ln -s ../.reimage/guard '%s/.reimage/init.saved'", root), 0);
}

static void check_armed(const char *root)
{
	check_guard_copy(root);
	check_trial_file(root, 2, "/sbin/init", "sbin/init");
	CU_ASSERT(link_is(root, "sbin/init", "../.reimage/guard"));
	char *saved = file_at(root, ".reimage/init.saved");
	CU_ASSERT_STRING_EQUAL(saved, "real-init\n");
	free(saved);
	CU_ASSERT(absent(root, ".reimage/attempts"));
}

/* A power cut after disarm's step k: 1 exchanged back, 2 init.saved
 * removed, 3 attempts, fallback and guard removed (trial goes last). */
static void disarm_cut_after(const char *root, int k)
{
	char a[PATH_MAX], b[PATH_MAX];
	CU_ASSERT_EQUAL_FATAL(t_sh("echo 1 > '%s/.reimage/attempts'", root), 0);
	snprintf(a, sizeof(a), "%s/.reimage/init.saved", root);
	snprintf(b, sizeof(b), "%s/sbin/init", root);
	if (k >= 1)
		CU_ASSERT_EQUAL_FATAL(exchange(a, b), 0);
	if (k >= 2)
		CU_ASSERT_EQUAL_FATAL(unlink(a), 0);
	if (k >= 3)
		CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s/.reimage' && rm -f attempts fallback guard", root), 0);
}

TEST_CASE(arm_disarm_interrupted)
{
	const char *setup = "mkdir sbin; echo real-init > sbin/init; chmod 755 sbin/init";
	struct reimage_error err = { 0 };

	for (int k = 0; k <= 4; k++) {
		const char *root = new_root(setup);
		char *before = fixture_manifest(root);
		arm_cut_after(root, k);
		/* Arm again converges on the armed tree... */
		CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 2, &err), 0);
		check_armed(root);
		CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 2, &err), 0);
		check_armed(root);
		/* ...and disarm from the same point on the disarmed one. */
		CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s'", root), 0);
		root = new_root(setup);
		arm_cut_after(root, k);
		CU_ASSERT_EQUAL(trial_disarm(trial_ctx(root), &err), 0);
		if (err.code)
			fprintf(stderr, "cut after arm step %d: disarm: %s\n", k, err.msg);
		if (k >= 3) {
			check_disarmed(root, before);
		} else {
			/* No trial yet: the guard goes; an older count is
			 * not disarm's business (the next arm drops it). */
			char *now = fixture_manifest(root);
			CU_ASSERT(fixture_same(before, now, "disarm with no trial"));
			free(now);
			CU_ASSERT(absent(root, ".reimage/trial"));
			CU_ASSERT(absent(root, ".reimage/guard"));
		}
		CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s'", root), 0);
		free(before);
	}
	for (int k = 0; k <= 3; k++) {
		const char *root = new_root(setup);
		char *before = fixture_manifest(root);
		CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 2, &err), 0);
		disarm_cut_after(root, k);
		for (int twice = 0; twice < 2; twice++) {
			CU_ASSERT_EQUAL(trial_disarm(trial_ctx(root), &err), 0);
			if (err.code)
				fprintf(stderr, "cut after disarm step %d: %s\n", k, err.msg);
			check_disarmed(root, before);
		}
		CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s'", root), 0);
		free(before);
	}
}

/* ---------------------------------------------------------------- fallback */

TEST_CASE(fall_back_undoes_swap)
{
	struct reimage_error err = { 0 };
	enum swap_journal_state js;
	struct trial_info ti;
	char *new_tree = NULL;

	trial_fixture_require();
	char root[PATH_MAX];
	snprintf(root, sizeof(root), "%s/root", t_dir());
	char *old = trial_fixture_swapped(root, trial_fixture_script("sbin/init", TRIAL_NEW_INIT),
					  &new_tree);
	t_write(t_path("guard-bin"), GUARD_TEXT);
	CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, t_path("guard-bin"), 2, &err), 0);
	CU_ASSERT(link_is(root, "sbin/init", "../.reimage/guard"));

	CU_ASSERT_EQUAL(trial_fall_back(trial_ctx(root), "test: no commit", &err), 0);
	if (err.code)
		fprintf(stderr, "fall back: %s\n", err.msg);
	char *now = fixture_manifest(root);
	CU_ASSERT(fixture_same(old, now, "root after the fallback"));
	free(now);
	CU_ASSERT_EQUAL(swap_journal_state(root, &js, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_UNDONE);
	CU_ASSERT_EQUAL(trial_state(root, &ti, &err), 0);
	CU_ASSERT_EQUAL(ti.fallback, TRIAL_FB_DONE);
	CU_ASSERT_STRING_EQUAL(ti.reason, "test: no commit");
	CU_ASSERT_STRING_EQUAL(ti.mounts, "");
	CU_ASSERT(ti.fallback_time > 0);
	/* The guard is in the staged image now. */
	CU_ASSERT(link_is(root, ".reimage/new/sbin/init", "../.reimage/guard"));
	/* Again: the journal says undone, nothing moves. */
	CU_ASSERT_EQUAL(trial_fall_back(trial_ctx(root), "again", &err), 0);
	now = fixture_manifest(root);
	CU_ASSERT(fixture_same(old, now, "root after a second fallback"));
	free(now);

	/* Disarm once the old image's agent has reported: the staged image
	 * gets its init back, the old image keeps its own. */
	CU_ASSERT_EQUAL(trial_disarm(trial_ctx(root), &err), 0);
	now = fixture_manifest(root);
	CU_ASSERT(fixture_same(old, now, "root after disarm"));
	free(now);
	char staging[PATH_MAX + 16];
	snprintf(staging, sizeof(staging), "%s/.reimage/new", root);
	now = fixture_manifest(staging);
	CU_ASSERT(fixture_same(new_tree, now, "staged image after disarm"));
	free(now);
	CU_ASSERT(absent(root, ".reimage/init.saved"));
	CU_ASSERT(absent(root, ".reimage/fallback"));
	free(new_tree);
	free(old);
}

/* A backend stand-in that records mount_restore calls. */
static char restored[2][PATH_MAX];
static int n_restored;

static int rec_mount_restore(void *ctx, const char *mount, const char *aside,
			     struct reimage_error *err)
{
	(void)ctx;
	(void)err;
	snprintf(restored[0], sizeof(restored[0]), "%s", mount);
	snprintf(restored[1], sizeof(restored[1]), "%s", aside);
	n_restored++;
	return 0;
}

TEST_CASE(restore_mounts_after_fallback)
{
	struct reimage_backend_ops ops = { .name = "rec", .caps = REIMAGE_BCAP_MOUNTS,
					   .mount_restore = rec_mount_restore };
	struct reimage_error err = { 0 };
	const char *root = new_root("mkdir boot");
	struct swap_ctx sc = { root, &ops, NULL, 0 };

	/* No fallback: nothing to restore. */
	CU_ASSERT_EQUAL(trial_restore_mounts(&sc, &err), 0);
	CU_ASSERT_EQUAL(n_restored, 0);
	t_write(t_path("root/.reimage/fallback"),
		"state=done\nreason=r\ntime=1\nmounts=boot\nerror=\n");
	CU_ASSERT_EQUAL(trial_restore_mounts(&sc, &err), 0);
	CU_ASSERT_EQUAL(n_restored, 1);
	CU_ASSERT_STRING_EQUAL(restored[0], t_path("root/boot"));
	CU_ASSERT_STRING_EQUAL(restored[1], t_path("root/boot/.reimage-old"));
	/* A backend that cannot: said so, not ignored. */
	ops.caps = 0;
	CU_ASSERT_EQUAL(trial_restore_mounts(&sc, &err), -ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "boot"));
}
