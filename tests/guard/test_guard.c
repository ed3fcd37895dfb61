/*
 * test_guard.c -- the static reimage-guard as the kernel runs it: PID 1
 * of a new PID namespace (and mount namespace), chrooted into a sandbox
 * root that was swapped for real and armed, started as /sbin/init with the
 * kernel's leftover arguments.  The inits are busybox scripts that print
 * who they are and exit, as a crashing init would: PID 1's exit ends the
 * namespace as a panic ends the boot, and the next "boot" starts again.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "error.h"
#include "swap.h"
#include "trial.h"
#include "trial_fixture.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

static char root[PATH_MAX];

static const char *guard_bin(void)
{
	static char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/reimage-guard", t_bin_dir());
	CU_ASSERT_EQUAL_FATAL(access(path, X_OK), 0);
	return path;
}

/* The root (at root) swapped to a new image set up by setup, armed for
 * max attempts.  Returns the old image's manifest. */
static char *armed_root(const char *setup, int max)
{
	struct reimage_error err = { 0 };

	trial_fixture_require();
	if (!root[0])
		snprintf(root, sizeof(root), "%s/root", t_dir());
	char *old = trial_fixture_swapped(root, setup, NULL);
	if (trial_arm(trial_ctx(root), root, guard_bin(), max, &err) < 0)
		fprintf(stderr, "arm: %s\n", err.msg);
	CU_ASSERT_EQUAL_FATAL(err.code, 0);
	return old;
}

/* One boot: the kernel runs /sbin/init with what it left of its command
 * line.  The exit status of PID 1 (the init's); its output in *out. */
static int boot(char **out, const char *init)
{
	int r = t_sh_out(out, "unshare --pid --fork --mount chroot '%s' %s quiet splash", root, init);
	fprintf(stderr, "boot %s -> %d\n%s", init, r, *out);
	return r;
}

static int has(const char *text, const char *piece)
{
	if (!strstr(text, piece))
		fprintf(stderr, "missing: %s\n", piece);
	return strstr(text, piece) != NULL;
}

static char *root_file(const char *rel)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return t_read(path);
}

static void check_attempts(const char *want)
{
	char *a = root_file(".reimage/attempts");
	if (!want) {
		CU_ASSERT_PTR_NULL(a);
	} else {
		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		CU_ASSERT_STRING_EQUAL(a, want);
	}
	free(a);
}

/* Fallen back: the old image's init ran, the tree is exactly the old one,
 * the journal says undone, the record says done and why. */
static void check_fell_back(const char *out, const char *old, const char *why)
{
	struct reimage_error err = { 0 };
	enum swap_journal_state js;

	CU_ASSERT(has(out, "OLD-INIT pid=1 args=quiet splash"));
	CU_ASSERT(!strstr(out, "NEW-INIT"));
	char *now = fixture_manifest(root);
	CU_ASSERT(fixture_same(old, now, "root after the fallback"));
	free(now);
	CU_ASSERT_EQUAL(swap_journal_state(root, &js, &err), 0);
	CU_ASSERT_EQUAL(js, SWAP_UNDONE);
	char *rec = root_file(".reimage/fallback");
	CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
	CU_ASSERT(has(rec, "state=done\n"));
	CU_ASSERT(has(rec, why));
	free(rec);
}

TEST_CASE(boots_counted_then_falls_back)
{
	char *out;
	char *old = armed_root(trial_fixture_script("sbin/init", TRIAL_NEW_INIT), 2);

	for (int i = 1; i <= 2; i++) {
		char want[16];
		CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
		CU_ASSERT(has(out, "NEW-INIT pid=1 args=quiet splash RW"));
		CU_ASSERT(has(out, "boot attempt"));
		free(out);
		snprintf(want, sizeof(want), "%d\n", i);
		check_attempts(want);
	}
	CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
	check_fell_back(out, old, "2 boot attempts");
	free(out);
	check_attempts("2\n");
	/* The guard run by hand afterwards: nothing to try, the plain init. */
	CU_ASSERT_EQUAL(boot(&out, "/.reimage/guard"), 0);
	CU_ASSERT(has(out, "OLD-INIT pid=1 args=quiet splash"));
	CU_ASSERT(has(out, "stale trial"));
	free(out);
	free(old);
}

TEST_CASE(interrupted_swap_falls_back)
{
	char *out;
	char *old = armed_root(trial_fixture_script("sbin/init", TRIAL_NEW_INIT), 3);

	/* The journal's last record ("swapped") torn: the swap reads as
	 * started, and the new image never booted. */
	CU_ASSERT_EQUAL_FATAL(t_sh("f='%s/.reimage/journal'; s=$(stat -c %%s \"$f\"); "
				   "truncate -s $((s - 5)) \"$f\"", root), 0);
	CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
	check_fell_back(out, old, "interrupted");
	free(out);
	check_attempts(NULL);
	free(old);
}

TEST_CASE(missing_init_falls_back_at_once)
{
	char *out;
	char *old = armed_root("mkdir -p sbin", 3);

	CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
	check_fell_back(out, old, "no init");
	free(out);
	check_attempts(NULL);
	free(old);
}

TEST_CASE(noexec_init_falls_back_at_once)
{
	char *out;
	char setup[4096];
	snprintf(setup, sizeof(setup), "%s; chmod 644 sbin/init",
		 trial_fixture_script("sbin/init", TRIAL_NEW_INIT));
	char *old = armed_root(setup, 3);

	CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
	check_fell_back(out, old, "not executable");
	free(out);
	check_attempts(NULL);
	free(old);
}

TEST_CASE(exec_failure_falls_back)
{
	char *out;
	/* Executable, but its interpreter is missing: the exec fails. */
	char *old = armed_root(trial_fixture_script("sbin/init", "#!/no/such/sh\necho never\n"), 3);

	CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
	check_fell_back(out, old, "exec /.reimage/init.saved");
	free(out);
	check_attempts("1\n");
	free(old);
}

TEST_CASE(readonly_root_remounted)
{
	struct statvfs sv;
	char *out;

	trial_fixture_require();
	/* The root is a file system of its own, mounted read-only as the
	 * kernel's "ro" leaves it: a tmpfs in a private mount namespace. */
	snprintf(root, sizeof(root), "%s/root", t_dir());
	CU_ASSERT_EQUAL_FATAL(unshare(CLONE_NEWNS), 0);
	CU_ASSERT_EQUAL_FATAL(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && mount -t tmpfs -o mode=755 tmpfs '%s'", root,
				   root), 0);
	char *old = armed_root(trial_fixture_script("sbin/init", TRIAL_NEW_INIT), 1);
	CU_ASSERT_EQUAL_FATAL(mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);

	CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
	/* Counted on a read-write root, the init run on a read-only one. */
	CU_ASSERT(has(out, "NEW-INIT pid=1 args=quiet splash RO"));
	free(out);
	check_attempts("1\n");
	CU_ASSERT_EQUAL(boot(&out, "/sbin/init"), 0);
	check_fell_back(out, old, "1 boot attempt ");
	free(out);
	CU_ASSERT_EQUAL(statvfs(root, &sv), 0);
	CU_ASSERT(sv.f_flag & ST_RDONLY);
	CU_ASSERT_EQUAL(umount2(root, MNT_DETACH), 0);
	free(old);
}

TEST_CASE(root_option_for_tests)
{
	char *out;
	char *old = armed_root(trial_fixture_script("sbin/init", TRIAL_NEW_INIT), 2);

	/* Not PID 1: only with --root, and then without a remount. */
	CU_ASSERT_EQUAL(t_sh_out(&out, "'%s' --root '%s' a b", guard_bin(), root), 0);
	fprintf(stderr, "%s", out);
	CU_ASSERT(has(out, "NEW-INIT pid="));
	CU_ASSERT(has(out, "args=a b RW"));
	CU_ASSERT(!strstr(out, "pid=1 "));
	free(out);
	check_attempts("1\n");
	CU_ASSERT_EQUAL(t_sh_out(&out, "'%s'", guard_bin()), 2);
	CU_ASSERT(has(out, "usage"));
	free(out);
	CU_ASSERT_EQUAL(t_sh_out(&out, "'%s' quiet splash", guard_bin()), 2);
	free(out);
	check_attempts("1\n");
	free(old);
}

TEST_CASE(binary_is_static)
{
	char *out;
	CU_ASSERT_EQUAL(t_sh_out(&out, "file -L '%s'", guard_bin()), 0);
	CU_ASSERT(has(out, "statically linked"));
	free(out);
	t_sh_out(&out, "ldd '%s'", guard_bin());
	CU_ASSERT(has(out, "not a dynamic executable"));
	free(out);
}
