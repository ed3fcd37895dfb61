/*
 * test_crash.c -- every command that changes a root, killed at each of its
 * system calls that change or sync the tree, then `reimage recover` (run
 * twice): the root must be exactly the old image or exactly the new one
 * with the preserves, file by file (type, mode, owner, content, link
 * counts and targets, xattrs: tests/manifest.py), and the state file must
 * not claim an outcome the tree does not have.
 *
 * The crash is strace's syscall injection: the call fails and SIGKILL is
 * delivered at its entry, so the process dies with the call not made.  It
 * works on the kernel's side of the call, so it sees renames made through
 * syscall() as well as through libc.  The crash points are found by a
 * first run traced with the same set: every call of the set in the
 * command's own process (strace counts per process), open only with
 * O_CREAT, write only to .reimage's own files (journal, plan copy, state:
 * a staged file's content is not a step of its own).  "After" a call is
 * "before" the next one of the set, so every state between two steps is
 * visited; the state after the last is the command's own end.
 *
 * Plain build: every point.  ASan build: every 4th (the sweep's cost is
 * the commands' start-up under the sanitizer, not the code under test).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "error.h"
#include "trial.h"
#include "guard/trial_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TREE_CALLS                                                                              \
	"rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,link,linkat,symlink,"    \
	"symlinkat,open,openat,creat,chown,fchown,fchownat,lchown,chmod,fchmod,fchmodat,write," \
	"pwrite64,fsync,fdatasync,syncfs,sync,truncate,ftruncate,setxattr,lsetxattr,fsetxattr," \
	"removexattr,lremovexattr,fremovexattr,mknod,mknodat,utimensat"

#if defined(__SANITIZE_ADDRESS__)
#define STRIDE 4
/* LeakSanitizer cannot run under ptrace: a traced command would end in
 * its error instead of its own exit. */
#define NO_LSAN "ASAN_OPTIONS=detect_leaks=0 "
#else
#define STRIDE 1
#define NO_LSAN ""
#endif

struct point {
	char call[24];
	int nth;
};

static char *old_m, *new_m;  /* manifests of the two acceptable trees */
static char root[4096], job[4096], img[4096], out[4096];
/* The job's backend: a root killed before its state names one has none. */
static const char *recover_args = "recover --backend sandbox";

static char *manifest(void)
{
	return fixture_tree_manifest(root);
}

/* The old root: the fixture's, with xattrs on a preserved file, a file
 * that is not preserved, and a preserved item's parent directory whose
 * mode and owner the new image must get (etc/ssh: not in the new image). */
static void fresh_old(void)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && mkdir '%s'", root, root), 0);
	fixture_old_root(root);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && setfattr -n user.kept -v alice home/alice/notes.txt "
				   "&& setfattr -n user.old -v hosts etc/hosts && chmod 750 etc/ssh "
				   "&& chown 0:4 etc/ssh", root), 0);
}

static int reimage(const char *args)
{
	return t_sh("'%s/reimage' %s --root '%s' >> '%s' 2>&1", t_bin_dir(), args, root, out);
}

static void fresh_swapped(void)
{
	char args[8192];
	fresh_old();
	snprintf(args, sizeof(args), "run -c '%s'", job);
	CU_ASSERT_EQUAL_FATAL(reimage(args), 0);
}

/* Templates and the two manifests: old, and new after a clean run. */
static void setup(void)
{
	snprintf(root, sizeof(root), "%s", t_path("root"));
	snprintf(job, sizeof(job), "%s", t_path("job.conf"));
	snprintf(img, sizeof(img), "%s", t_path("image.tar.zst"));
	snprintf(out, sizeof(out), "%s", t_path("commands.log"));
	if (t_sh("strace -V >/dev/null 2>&1") != 0)
		t_skip("strace is not installed (tests/deps.sh installs it)");
	if (!t_is_root())
		t_skip("needs root: the fixture's owners");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("src")), 0);
	fixture_new_tree(t_path("src"));
	fixture_pack(t_path("src"), img, "zstd");
	fixture_job(job, img, NULL,
		    "preserve: { network = true; users = [ \"alice\" ]; paths = [ \"srv/data\" ]; };\n"
		    "reboot = false;\n");
	fresh_old();
	old_m = manifest();
	/* The in-process manifest sees what manifest.py sees. */
	char *py = fixture_meta_manifest(root, FIXTURE_NO_MTIME);
	CU_ASSERT_FATAL(py != NULL);
	CU_ASSERT_EQUAL(t_sh("test \"$(printf '%%s' '%s' | wc -l)\" = \"$(printf '%%s' '%s' | wc -l)\"",
			     old_m, py), 0);
	free(py);
	fresh_swapped();
	new_m = manifest();
	CU_ASSERT_FATAL(strcmp(old_m, new_m) != 0);
	/* The preserved parent came whole, with its owner and mode. */
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c %%a:%%u:%%g '%s/etc/ssh')\" = 750:0:4", root), 0);
	CU_ASSERT_EQUAL(t_sh("getfattr -n user.kept '%s/home/alice/notes.txt' >/dev/null 2>&1",
			     root), 0);
}

/* The crash points of cmd run on the root setup_root makes. */
static size_t points_of(void (*setup_root)(void), const char *cmd, struct point **ret)
{
	const char *log = t_path("trace.log");
	struct point *pts = NULL;
	struct point counts[64];
	size_t n = 0, n_counts = 0;
	char line[16384];
	long main_pid = -1;

	setup_root();
	t_sh("%sstrace -f -qq -y -s 0 -o '%s' --seccomp-bpf -e trace=%s %s >> '%s' 2>&1", NO_LSAN,
	     log, TREE_CALLS, cmd, out);
	FILE *f = fopen(log, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	while (fgets(line, sizeof(line), f)) {
		char *p;
		long pid = strtol(line, &p, 10);
		char call[24];
		size_t k;
		if (main_pid < 0)
			main_pid = pid;
		while (*p == ' ')
			p++;
		/* Entries only ("<... x resumed>" is the same call's end), of
		 * the command's own process. */
		if (pid != main_pid || *p == '<' || sscanf(p, "%23[a-z0-9_](", call) != 1)
			continue;
		for (k = 0; k < n_counts && strcmp(counts[k].call, call); k++)
			;
		if (k == n_counts) {
			CU_ASSERT_FATAL(n_counts < 64);
			snprintf(counts[n_counts].call, sizeof(counts[0].call), "%s", call);
			counts[n_counts++].nth = 0;
		}
		int nth = ++counts[k].nth;
		if ((!strcmp(call, "open") || !strcmp(call, "openat")) && !strstr(p, "O_CREAT"))
			continue;
		if ((!strcmp(call, "write") || !strcmp(call, "pwrite64")) &&
		    (!strstr(p, "/.reimage/") || strstr(p, "/.reimage/new/")))
			continue;
		struct point *np = realloc(pts, (n + 1) * sizeof(*pts));
		CU_ASSERT_PTR_NOT_NULL_FATAL(np);
		pts = np;
		pts[n].nth = nth;
		snprintf(pts[n].call, sizeof(pts[n].call), "%s", call);
		n++;
	}
	fclose(f);
	*ret = pts;
	return n;
}

/* Run cmd killed at the nth call of `call`: 1 if killed, 0 if it ended
 * first.  (Not with --seccomp-bpf: with it, strace returns the injected
 * error but lets the process live on.) */
static int crash_at(const char *cmd, const struct point *pt)
{
	return t_sh("%sstrace -f -qq -o /dev/null -e trace=%s "
		    "-e inject=%s:error=EIO:signal=SIGKILL:when=%d %s >> '%s' 2>&1", NO_LSAN, pt->call,
		    pt->call, pt->nth, cmd, out) == 128 + 9;
}

static const char *status_of(char *buf, size_t len)
{
	char *s = t_read(t_path("root/.reimage/state"));
	char *p = s ? strstr(s, "\"status\"") : NULL;
	buf[0] = '\0';
	if (p && (p = strchr(p + 8, '"')))
		snprintf(buf, len, "%.*s", (int)strcspn(p + 1, "\""), p + 1);
	free(s);
	return buf;
}

/* After recover, twice: old or new; with check_state, a state that says
 * which.  Returns 1 if new, 0 if old. */
static int settled_as(const char *what, int check_state)
{
	char status[64];
	int is_new = 0;

	for (int twice = 0; twice < 2; twice++) {
		if (reimage(recover_args) != 0) {
			fprintf(stderr, "%s: recover failed (see %s)\n", what, out);
			CU_FAIL_FATAL("recover failed");
		}
		char *m = manifest();
		is_new = !strcmp(m, new_m);
		if (!is_new && strcmp(m, old_m)) {
			fixture_same(new_m, m, what);
			CU_FAIL_FATAL("neither the old tree nor the new one");
		}
		free(m);
	}
	if (!check_state)
		return is_new;
	status_of(status, sizeof(status));
	int claims_new = !strcmp(status, "pending") || !strcmp(status, "committed");
	if (claims_new != is_new)
		fprintf(stderr, "%s: tree %s, state says \"%s\"\n", what, is_new ? "new" : "old",
			status);
	CU_ASSERT_FATAL(claims_new == is_new);
	CU_ASSERT_FATAL(t_sh("test -e '%s/.reimage/new'", root) != 0);
	return is_new;
}

static int settled(const char *what)
{
	return settled_as(what, 1);
}

static void sweep(const char *name, void (*setup_root)(void), const char *args,
		  int (*check)(const char *what))
{
	char cmd[8192], what[256];
	struct point *pts;
	size_t n, done = 0, news = 0, killed = 0;

	if (args[0] == '\'')
		snprintf(cmd, sizeof(cmd), "%s", args);  /* a whole command line */
	else
		snprintf(cmd, sizeof(cmd), "'%s/reimage' %s --root '%s'", t_bin_dir(), args, root);
	n = points_of(setup_root, cmd, &pts);
	CU_ASSERT_FATAL(n > 5);
	for (size_t i = 0; i < n; i += STRIDE) {
		setup_root();
		killed += crash_at(cmd, &pts[i]);
		snprintf(what, sizeof(what), "%s killed at %s #%d (point %zu of %zu)", name,
			 pts[i].call, pts[i].nth, i + 1, n);
		news += check(what) == 1;
		done++;
	}
	fprintf(stderr, "%s: %zu of %zu crash points checked (%zu killed), %zu ended new, %zu old\n",
		name, done, n, killed, news, done - news);
	/* The points are those of a run on the same root: each is reached. */
	CU_ASSERT(killed == done);
	free(pts);
}

static void teardown(void)
{
	free(old_m);
	free(new_m);
}

TEST_CASE(run_every_syscall)
{
	char args[8192];
	setup();
	snprintf(args, sizeof(args), "run -c '%s'", job);
	sweep("run", fresh_old, args, settled);
	teardown();
}

/* A rollback cut short is never committed: confirm first, then recover. */
static int rollback_check(const char *what)
{
	reimage("confirm");
	return settled(what);
}

TEST_CASE(rollback_every_syscall)
{
	setup();
	sweep("rollback", fresh_swapped, "rollback", rollback_check);
	teardown();
}

/* Once confirm has begun deleting the retired image, a rollback is
 * refused (new stays); before, it is whole (old). */
static int confirm_check(const char *what)
{
	int rolled = reimage("rollback") == 0;
	int is_new = settled(what);
	if (rolled == is_new)
		fprintf(stderr, "%s: rollback %s, tree %s\n", what, rolled ? "succeeded" : "refused",
			is_new ? "new" : "old");
	CU_ASSERT_FATAL(rolled != is_new);
	return is_new;
}

TEST_CASE(confirm_every_syscall)
{
	setup();
	sweep("confirm", fresh_swapped, "confirm", confirm_check);
	teardown();
}

/* A root whose swap was killed halfway: `run` killed at the middle
 * rename of its swap. */
static void fresh_half_swapped(void)
{
	char cmd[8192];
	struct point pt = { "renameat2", 0 };
	fresh_old();
	snprintf(cmd, sizeof(cmd), "'%s/reimage' run -c '%s' --root '%s'", t_bin_dir(), job, root);
	/* The sandbox backend's exchanges are renameat2 calls; the swap
	 * has 6 of them (bin etc home srv usr var) and a preserve's. */
	pt.nth = 4;
	CU_ASSERT_FATAL(crash_at(cmd, &pt));
	CU_ASSERT_FATAL(t_sh("test -e '%s/.reimage/journal'", root) == 0);
}

TEST_CASE(recover_every_syscall)
{
	setup();
	sweep("recover", fresh_half_swapped, "recover", settled);
	teardown();
}

TEST_CASE(recover_undo_every_syscall)
{
	setup();
	sweep("recover --undo", fresh_half_swapped, "recover --undo", settled);
	teardown();
}

/* The boot guard's fallback: a swapped root armed for one boot that was
 * already used, so the guard (run as `reimage-guard --root`, which
 * chroots and then acts as PID 1 does) undoes the swap and execs the old
 * init.  Killed at each of its calls, then the old image's side:
 * `reimage recover` (the backend named: a guarded root has no job state). */
static void fresh_armed(void)
{
	struct reimage_error err = { 0 };
	char guard[4096];

	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s'", root), 0);
	free(trial_fixture_swapped(root, trial_fixture_script("sbin/init", TRIAL_NEW_INIT), NULL));
	snprintf(guard, sizeof(guard), "%s/reimage-guard", t_bin_dir());
	CU_ASSERT_EQUAL_FATAL(trial_arm(trial_ctx(root), root, guard, 1, &err), 0);
	CU_ASSERT_EQUAL_FATAL(trial_count_attempt(root, 1, &err), 0);
}

static int guard_check(const char *what)
{
	return settled_as(what, 0);
}

TEST_CASE(guard_fallback_every_syscall)
{
	char cmd[8192];
	trial_fixture_require();
	snprintf(root, sizeof(root), "%s", t_path("root"));
	snprintf(out, sizeof(out), "%s", t_path("commands.log"));
	if (t_sh("strace -V >/dev/null 2>&1") != 0)
		t_skip("strace is not installed (tests/deps.sh installs it)");
	if (t_sh("test -x '%s/reimage-guard'", t_bin_dir()) != 0)
		t_skip("reimage-guard is not built here (Linux only)");
	fresh_armed();
	new_m = manifest();
	/* A whole fallback gives exactly the old image (test_guard.c). */
	snprintf(cmd, sizeof(cmd), "'%s/reimage-guard' --root '%s' >> '%s' 2>&1", t_bin_dir(), root,
		 out);
	CU_ASSERT_EQUAL(t_sh("%s", cmd), 0);
	CU_ASSERT_EQUAL_FATAL(reimage(recover_args), 0);
	old_m = manifest();
	CU_ASSERT_FATAL(strcmp(old_m, new_m) != 0);
	CU_ASSERT_EQUAL(t_sh("grep -q OLD-INIT '%s'", out), 0);
	snprintf(cmd, sizeof(cmd), "'%s/reimage-guard' --root '%s'", t_bin_dir(), root);
	sweep("guard", fresh_armed, cmd, guard_check);
	teardown();
}

/* recover interrupted in its turn while finishing a rollback, and while
 * finishing confirm's deletion of the retired image. */
static void killed_in(const char *args, const char *call, int nth)
{
	char cmd[8192];
	struct point pt = { "", nth };
	snprintf(pt.call, sizeof(pt.call), "%s", call);
	fresh_swapped();
	snprintf(cmd, sizeof(cmd), "'%s/reimage' %s --root '%s'", t_bin_dir(), args, root);
	CU_ASSERT_FATAL(crash_at(cmd, &pt));
}

static void fresh_half_rolled_back(void)
{
	killed_in("rollback", "renameat2", 3);
}

static void fresh_half_deleted(void)
{
	killed_in("confirm", "unlinkat", 3);
}

TEST_CASE(recover_rollback_every_syscall)
{
	setup();
	sweep("recover of a rollback", fresh_half_rolled_back, "recover", settled);
	teardown();
}

TEST_CASE(recover_confirm_every_syscall)
{
	setup();
	sweep("recover of a confirm", fresh_half_deleted, "recover", settled);
	teardown();
}

/* A swap that fails, and whose undo fails too (every exchange from the
 * swap's 4th on returns EIO: strace's error injection, no crash): staging
 * then holds entries of the old image, and it stays, with the journal,
 * for recover -- which completes the swap once the disk works again. */
TEST_CASE(swap_and_its_undo_fail)
{
	setup();
	fresh_old();
	CU_ASSERT_NOT_EQUAL(t_sh("%sstrace -f -qq -o /dev/null -e trace=renameat2 "
				 "-e inject=renameat2:error=EIO:when=4+ '%s/reimage' run -c '%s' "
				 "--root '%s' >> '%s' 2>&1", NO_LSAN, t_bin_dir(), job, root, out), 0);
	CU_ASSERT_EQUAL(t_sh("grep -q 'could not be undone' '%s'", out), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("test -d '%s/.reimage/new'", root), 0);
	CU_ASSERT_EQUAL(settled("recover after a swap and its undo failed"), 1);
	teardown();
}
