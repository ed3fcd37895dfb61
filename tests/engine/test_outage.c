/*
 * test_outage.c -- what the users wait for: from their logout (QUIESCE)
 * to the end of SWAP a job makes the renames, one sync of the volume and
 * one journal commit, nothing more.  Counted on the kernel's side with
 * strace on a sandbox `reimage run`: the sandbox backend records the
 * logout in .reimage/sandbox.log (a write strace shows), and the swap
 * ends with the fsync of the journal's "swapped" record.  Everything
 * else durable -- the plan and its copy, the job's state -- is written
 * before the logout.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void setup(void)
{
	if (t_sh("strace -V >/dev/null 2>&1") != 0)
		t_skip("strace is not installed (tests/deps.sh installs it)");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	fixture_new_tree(t_path("src"));
	fixture_pack(t_path("src"), t_path("image.tar.zst"), "zstd");
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL,
		    "preserve: { network = true; users = [ \"alice\" ]; paths = [ \"srv/data\" ]; };\n"
		    "reboot = false;\n");
}

struct window {
	int plan_before;  /* the plan reached the journal before the logout */
	int logout;       /* the logout was seen */
	int swapped;      /* the "swapped" record was written, and its fsync seen */
	int syncs;        /* syncfs, sync inside the window */
	int commits;      /* fsync, fdatasync inside the window */
	int commits_journal;  /* ...of them, of the journal */
};

static int is_call(const char *line, const char *call)
{
	char pat[32];
	snprintf(pat, sizeof(pat), " %s(", call);
	return strstr(line, pat) != NULL;
}

/* Read strace's log: the window opens at the logout's record and closes
 * with the fsync after the journal's "swapped" record. */
static struct window window_of(const char *trace)
{
	struct window w = { 0 };
	char *log = t_read(trace), *save = NULL;
	int in = 0, swapped_written = 0;

	CU_ASSERT_FATAL(log != NULL);
	for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int is_write = is_call(line, "write");
		if (!in) {
			if (is_write && strstr(line, "/.reimage/journal.tmp>") && strstr(line, "plan 1 "))
				w.plan_before = 1;
			if (is_write && strstr(line, "/.reimage/sandbox.log>") &&
			    strstr(line, "\"logout "))
				in = w.logout = 1;
			continue;
		}
		if (is_write && strstr(line, "/.reimage/journal>") && strstr(line, " swapped\\n"))
			swapped_written = 1;
		if (is_call(line, "syncfs") || is_call(line, "sync"))
			w.syncs++;
		if (is_call(line, "fsync") || is_call(line, "fdatasync")) {
			w.commits++;
			w.commits_journal += strstr(line, "/.reimage/journal>") != NULL;
			if (swapped_written) {
				w.swapped = 1;
				break;
			}
		}
	}
	free(log);
	return w;
}

TEST_CASE(one_sync_one_commit)
{
	char *log;
	setup();
	CU_ASSERT_EQUAL_FATAL(t_sh(/* LeakSanitizer cannot run under ptrace */ "ASAN_OPTIONS=detect_leaks=0 "
				   "strace -f -qq -y -s 128 -o '%s' "
				   "-e trace=write,fsync,fdatasync,syncfs,sync "
				   "'%s/reimage' run -c '%s' --root '%s' > '%s' 2>&1",
				   t_path("trace.log"), t_bin_dir(), t_path("job.conf"),
				   t_path("root"), t_path("run.log")), 0);
	struct window w = window_of(t_path("trace.log"));
	fprintf(stderr, "window: %d syncs, %d commits (%d of the journal)\n", w.syncs, w.commits,
		w.commits_journal);
	CU_ASSERT(w.logout);
	CU_ASSERT(w.swapped);
	CU_ASSERT(w.plan_before);
	CU_ASSERT_EQUAL(w.syncs, 1);
	CU_ASSERT_EQUAL(w.commits, 1);
	CU_ASSERT_EQUAL(w.commits_journal, 1);
	/* The swap's own time, in microseconds. */
	log = t_read(t_path("run.log"));
	CU_ASSERT(log && strstr(log, "swap: ") && strstr(log, " entries in ") &&
		  strstr(log, " µs"));
	free(log);
	CU_ASSERT_EQUAL(t_sh("test -d '%s/.reimage/old'", t_path("root")), 0);
}

/* The logout fails with the plan journaled and nothing renamed: no swap
 * began, so the job leaves the root as it was and no journal behind
 * (strace makes the logout's record fail: the sandbox's open of its log
 * for the logout, the nth of that path). */
TEST_CASE(failure_after_plan_leaves_root_untouched)
{
	char *before, *now, *rec;
	int nth = 1;

	setup();
	before = fixture_manifest(t_path("root"));
	/* Which open of the record is the logout's: one after the records before it. */
	CU_ASSERT_EQUAL_FATAL(t_sh("cp -a '%s' '%s'", t_path("root"), t_path("probe")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("'%s/reimage' run -c '%s' --root '%s' >/dev/null 2>&1",
				   t_bin_dir(), t_path("job.conf"), t_path("probe")), 0);
	rec = t_read(t_path("probe/.reimage/sandbox.log"));
	CU_ASSERT_FATAL(rec && strstr(rec, "logout "));
	for (char *p = rec; p && p < strstr(rec, "logout "); p = strchr(p, '\n'), p = p ? p + 1 : p)
		nth++;
	free(rec);
	CU_ASSERT_NOT_EQUAL(t_sh("ASAN_OPTIONS=detect_leaks=0 "
				 "strace -f -qq -o /dev/null -P '%s/.reimage/sandbox.log' "
				 "-e trace=openat -e inject=openat:error=EIO:when=%d "
				 "'%s/reimage' run -c '%s' --root '%s' > '%s' 2>&1",
				 t_path("root"), nth, t_bin_dir(), t_path("job.conf"),
				 t_path("root"), t_path("run.log")), 0);
	CU_ASSERT_EQUAL(t_sh("grep -q 'QUIESCE' '%s' && grep -q 'sandbox: open' '%s'",
			     t_path("run.log"), t_path("run.log")), 0);
	now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after a logout that failed"));
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/journal'", t_path("root")), 0);
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/plan'", t_path("root")), 0);
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("grep -q '\"failed\"' '%s/.reimage/state'", t_path("root")), 0);
	free(now);
	free(before);
}
