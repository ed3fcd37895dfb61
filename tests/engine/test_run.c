/*
 * test_run.c -- whole jobs through the `reimage` binary on sandbox roots:
 * a full re-image with every kind of preserve, copy mode, rollback,
 * refusals, and every way an image can be bad (hash, size, truncation,
 * attacks, a full disk), each leaving the root exactly as it was.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

/* An old root and a zstd image of the new tree with its digest and size. */
static void setup(const char *extra)
{
	char job_extra[4096];
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	fixture_new_tree(t_path("src"));
	fixture_pack(t_path("src"), t_path("image.tar.zst"), "zstd");
	snprintf(job_extra, sizeof(job_extra), "%s", extra ? extra : "");
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL, job_extra);
}

static char *slurp(const char *rel)
{
	return t_read(t_path("%s", rel));
}

static int contains(const char *rel, const char *needle)
{
	char *s = slurp(rel);
	int r = s && strstr(s, needle);
	free(s);
	return r;
}

/* The root must be exactly as before, and no staging left. */
static void assert_untouched(const char *before)
{
	char *now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after a failed job"));
	CU_ASSERT_FALSE(t_sh("test -e '%s/.reimage/new'", t_path("root")) == 0);
	free(now);
}

TEST_CASE(full_reimage)
{
	char *out = NULL, extra[1024], img[512];
	setup(NULL);
	t_write(t_path("hook.sh"), "#!/bin/sh\n[ \"$REIMAGE_STAGING\" = \"$1\" ] || exit 9\n"
				   "echo \"$REIMAGE_JOB $2\" > \"$1/etc/stamp\"\n");
	CU_ASSERT_EQUAL_FATAL(t_sh("chmod 755 '%s'", t_path("hook.sh")), 0);
	snprintf(extra, sizeof(extra),
		 "preserve: { network = true; users = [ \"alice\" ]; paths = [ \"srv/data\" ]; };\n"
		 "hooks = ( { path = \"%s\"; args = [ \"hello\" ]; } );\n"
		 "label = \"NEWROOT\";\nboot: { command = \"update-grub\"; };\n", t_path("hook.sh"));
	snprintf(img, sizeof(img), "sha256 = \"%s\"; size = %lld; retries = 0;",
		 fixture_sha256(t_path("image.tar.zst")), fixture_size(t_path("image.tar.zst")));
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), img, extra);

	CU_ASSERT_EQUAL_FATAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
				      t_path("root")), 0);
	free(out);
	/* The new image is at the top level... */
	CU_ASSERT(contains("root/etc/os-release", "new"));
	CU_ASSERT(contains("root/NEW-IMAGE", "marker"));
	CU_ASSERT(contains("root/bin/sh", "new-sh"));
	CU_ASSERT_EQUAL(t_sh("test -d '%s/only-new/deep'", t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c %%a '%s/bin/sh')\" = 4755", t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test -p '%s/usr/share/fifo'", t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c %%i '%s/usr/lib/libc.so')\" = "
			     "\"$(stat -c %%i '%s/usr/lib/libc.so.7')\"", t_path("root"),
			     t_path("root")), 0);
	/* ...with what was preserved at the same places... */
	CU_ASSERT(contains("root/etc/hostname", "old-host"));
	CU_ASSERT(contains("root/etc/network/interfaces", "dhcp"));
	CU_ASSERT(contains("root/etc/ssh/ssh_host_ed25519_key", "HOSTKEY"));
	CU_ASSERT(contains("root/home/alice/notes.txt", "alice notes"));
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c %%u:%%a '%s/home/alice')\" = 1000:700",
			     t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test -L '%s/home/alice/link'", t_path("root")), 0);
	CU_ASSERT(contains("root/srv/data/d.bin", "data"));
	CU_ASSERT_FALSE(t_sh("test -e '%s/home/bob'", t_path("root")) == 0);
	/* ...accounts merged: alice's entries, the new image's own... */
	CU_ASSERT(contains("root/etc/passwd", "alice:x:1000:1000:Alice:/home/alice:/bin/sh"));
	CU_ASSERT(contains("root/etc/passwd", "svc:x:999"));
	CU_ASSERT_FALSE(contains("root/etc/passwd", "bob:"));
	CU_ASSERT(contains("root/etc/shadow", "alice:$6$old"));
	CU_ASSERT(contains("root/etc/group", "alice:x:1000:"));
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c %%a '%s/etc/shadow')\" = 640", t_path("root")), 0);
	/* ...the hook ran on staging, kept entries stayed, the old image is retired. */
	CU_ASSERT(contains("root/etc/stamp", "test-job hello"));
	CU_ASSERT(contains("root/proc/keep", "p"));
	CU_ASSERT(contains("root/.reimage/old/opt/only-old/x", "only"));
	CU_ASSERT(contains("root/.reimage/old/etc/os-release", "old"));
	CU_ASSERT(contains("root/.reimage/sandbox.log", "label NEWROOT"));
	CU_ASSERT(contains("root/.reimage/sandbox.log", "boot update-grub"));
	CU_ASSERT(contains("root/.reimage/sandbox.log", "reboot"));
	CU_ASSERT(contains("root/.reimage/state", "\"pending\""));

	/* A second job is refused until this one is confirmed. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
				t_path("root")), 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "awaits `reimage confirm`"));
	free(out);
	/* Confirm: committed, the retired image deleted. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "confirm --root '%s'", t_path("root")), 0);
	free(out);
	CU_ASSERT(contains("root/.reimage/state", "\"committed\""));
	CU_ASSERT_FALSE(t_sh("test -e '%s/.reimage/old'", t_path("root")) == 0);
}

/* COMMIT asks the backend to restore what PREPARE saved (the fake
 * "restorer"): a failure leaves the job pending, uncommitted, the old
 * image kept; once it succeeds the job commits. */
TEST_CASE(confirm_restores_before_commit)
{
	char *out = NULL, agent[4096];
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
				      t_path("root")), 0);
	free(out);
	snprintf(agent, sizeof(agent), "plugin_path = [ \"%s/tests/plugins/restore\" ];\n",
		 t_bin_dir());
	t_write(t_path("agent.conf"), agent);
	t_write(t_path("root/.reimage/restore-fails"), "");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "confirm --root '%s' --backend restorer -a '%s'",
					t_path("root"), t_path("agent.conf")), 1);
	CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "restorer: restore what PREPARE saved: fake "
					   "cannot restore in") : NULL);
	free(out);
	CU_ASSERT(contains("root/.reimage/state", "\"pending\""));
	CU_ASSERT_EQUAL(t_sh("test -d '%s/.reimage/old'", t_path("root")), 0);
	CU_ASSERT_EQUAL(unlink(t_path("root/.reimage/restore-fails")), 0);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "confirm --root '%s' --backend restorer -a '%s'",
					t_path("root"), t_path("agent.conf")), 0);
	free(out);
	CU_ASSERT(contains("root/.reimage/restored", "restored"));
	CU_ASSERT(contains("root/.reimage/state", "\"committed\""));
}

TEST_CASE(copy_mode_and_rollback)
{
	char *out = NULL, *before;
	setup("preserve: { mode = \"copy\"; users = \"all\"; paths = [ \"srv/data\" ];\n"
	      "  network = true; network_paths = [ \"etc/host*\" ]; };\n"
	      "keep_old_days = 3;\n");
	before = fixture_manifest(t_path("root"));
	CU_ASSERT_EQUAL_FATAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
				      t_path("root")), 0);
	free(out);
	CU_ASSERT(contains("root/home/alice/notes.txt", "alice notes"));
	CU_ASSERT(contains("root/home/bob/b.txt", "bob"));
	CU_ASSERT(contains("root/srv/data/d.bin", "data"));
	/* The job's network set replaced the backend's. */
	CU_ASSERT(contains("root/etc/hostname", "old-host"));
	CU_ASSERT(contains("root/etc/hosts", "127.0.0.1 old"));
	CU_ASSERT_FALSE(t_sh("test -e '%s/etc/network/interfaces'", t_path("root")) == 0);
	/* Copies: the originals are still in the retired image. */
	CU_ASSERT(contains("root/.reimage/old/home/alice/notes.txt", "alice notes"));
	/* Confirm keeps the retired image for keep_old_days... */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "confirm --root '%s'", t_path("root")), 0);
	free(out);
	CU_ASSERT_EQUAL(t_sh("test -d '%s/.reimage/old'", t_path("root")), 0);
	/* ...so a rollback gives back exactly the old image. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "rollback --root '%s'", t_path("root")), 0);
	free(out);
	char *now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after rollback"));
	free(now);
	free(before);
	CU_ASSERT(contains("root/.reimage/state", "\"rolled-back\""));
	CU_ASSERT_EQUAL(fixture_reimage(&out, "rollback --root '%s'", t_path("root")), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no retired image"));
	free(out);
}

static void expect_failure(const char *job_extra, const char *image, const char *image_extra,
			   const char *needle)
{
	char *out = NULL, *before;
	if (!image)
		image = t_path("image.tar.zst");
	fixture_job(t_path("job.conf"), image, image_extra, job_extra);
	before = fixture_manifest(t_path("root"));
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
				t_path("root")), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, needle));
	free(out);
	assert_untouched(before);
	CU_ASSERT(contains("root/.reimage/state", "\"failed\""));
	free(before);
}

TEST_CASE(hash_mismatch)
{
	char img[128];
	setup(NULL);
	snprintf(img, sizeof(img), "sha256 = \"%064d\";", 0);
	expect_failure(NULL, NULL, img, "STAGE: image SHA-256 is");
}

TEST_CASE(size_mismatch)
{
	setup(NULL);
	expect_failure(NULL, NULL, "size = 100;", "the job declares 100");
}

TEST_CASE(truncated_image)
{
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("tar --numeric-owner -C '%s' -cf '%s' . && "
				   "truncate -s $(( $(stat -c %%s '%s') / 2 )) '%s'",
				   t_path("src"), t_path("half.tar"), t_path("half.tar"),
				   t_path("half.tar")), 0);
	expect_failure(NULL, t_path("half.tar"), NULL, "STAGE:");
}

TEST_CASE(missing_image)
{
	setup(NULL);
	expect_failure(NULL, "/nonexistent/image.tar", NULL, "No such file or directory");
}

/* A stop (SIGTERM) while staging: the image comes through a FIFO, so the
 * test knows the engine is inside STAGE (it has read the first MiB) when
 * it signals.  The decompression thread is stopped, the staging removed,
 * the root untouched. */
TEST_CASE(stop_while_staging)
{
	char *before, *out;
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && head -c 8388608 /dev/urandom > src/noise && "
				   "tar -C src -cf - . | zstd -q -o big.tar.zst && mkfifo image.fifo",
				   t_dir()), 0);
	fixture_job(t_path("job.conf"), t_path("image.fifo"), "kind = \"archive\";", NULL);
	before = fixture_manifest(t_path("root"));
	CU_ASSERT_EQUAL(t_sh("cd '%s' && { '%s/reimage' run -c job.conf --root root >out 2>&1 & "
			     "pid=$!; exec 3>image.fifo; head -c 1048576 big.tar.zst >&3; "
			     "kill -TERM $pid; timeout 60 tail -c +1048577 big.tar.zst >&3 2>/dev/null; "
			     "exec 3>&-; wait $pid; echo $? > rc; }", t_dir(), t_bin_dir()), 0);
	CU_ASSERT(contains("rc", "1"));
	out = slurp("out");
	CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "STAGE: staging stopped on request") : NULL);
	free(out);
	assert_untouched(before);
	CU_ASSERT(contains("root/.reimage/state", "\"cancelled\""));
	free(before);
}

/* `reimage status` reads the root's state while a job runs on it (and
 * holds its lock): the image comes through a FIFO, so the job is known to
 * be inside STAGE when status runs. */
TEST_CASE(status_while_a_job_runs)
{
	char *status;
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && head -c 4194304 /dev/urandom > src/noise && "
				   "tar -C src -cf - . | zstd -q -o big.tar.zst && mkfifo image.fifo",
				   t_dir()), 0);
	fixture_job(t_path("job.conf"), t_path("image.fifo"), "kind = \"archive\";", NULL);
	CU_ASSERT_EQUAL(t_sh("cd '%s' && { '%s/reimage' run -c job.conf --root root >out 2>&1 & "
			     "pid=$!; exec 3>image.fifo; head -c 1048576 big.tar.zst >&3; "
			     "'%s/reimage' status --root root >status 2>&1; echo $? > status-rc; "
			     "kill -TERM $pid; timeout 60 tail -c +1048577 big.tar.zst >&3 2>/dev/null; "
			     "exec 3>&-; wait $pid; true; }", t_dir(), t_bin_dir(), t_bin_dir()), 0);
	CU_ASSERT(contains("status-rc", "0"));
	status = slurp("status");
	CU_ASSERT_PTR_NOT_NULL(status ? strstr(status, "phase    STAGE") : NULL);
	CU_ASSERT_PTR_NOT_NULL(status ? strstr(status, "status   running") : NULL);
	if (!status || !strstr(status, "status   running"))
		fprintf(stderr, "status said:\n%s\n", status ? status : "(nothing)");
	free(status);
}

/* Under systemd (stderr is the stream JOURNAL_STREAM names) each line
 * carries its syslog priority for the journal; elsewhere, including a
 * child that inherited the variable but writes to a file, a timestamp. */
TEST_CASE(log_priority_under_the_journal)
{
	setup(NULL);
	CU_ASSERT_EQUAL(t_sh("cd '%s' && : > journal && JOURNAL_STREAM=$(stat -c '%%d:%%i' journal) "
			     "'%s/reimage' status --root nonexistent 2>>journal; "
			     "JOURNAL_STREAM=$(stat -c '%%d:%%i' journal) '%s/reimage' status "
			     "--root nonexistent 2>file; '%s/reimage' status --root nonexistent 2>plain; "
			     "true", t_dir(), t_bin_dir(), t_bin_dir(), t_bin_dir()), 0);
	CU_ASSERT(contains("journal", "<3>reimage: error: root nonexistent: "));
	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(t_sh("grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
				     "\\.[0-9]{3} reimage: error: root nonexistent: ' '%s'",
				     t_path("%s", i ? "plain" : "file")), 0);
}

/* A stop (SIGTERM) while a hook runs: the hook's process group is ended
 * and the job is cancelled at once, not after the hook's timeout. */
TEST_CASE(stop_while_a_hook_runs)
{
	char extra[1024], *before, *out;
	setup(NULL);
	t_write(t_path("slow.sh"), "#!/bin/sh\nsleep 300 &\necho $! > \"$REIMAGE_ROOT/../hook-child\"\n"
		": > \"$REIMAGE_ROOT/../hook-started\"\nwait\n");
	CU_ASSERT_EQUAL_FATAL(t_sh("chmod 755 '%s'", t_path("slow.sh")), 0);
	snprintf(extra, sizeof(extra), "hooks = ( { path = \"%s\"; timeout = 600; } );",
		 t_path("slow.sh"));
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL, extra);
	before = fixture_manifest(t_path("root"));
	CU_ASSERT_EQUAL(t_sh("cd '%s' && { '%s/reimage' run -c job.conf --root root >out 2>&1 & "
			     "pid=$!; i=0; while [ ! -e hook-started ] && [ $i -lt 600 ]; do "
			     "sleep 0.1; i=$((i+1)); done; kill -TERM $pid; "
			     "timeout 30 sh -c \"while kill -0 $pid 2>/dev/null; do sleep 0.1; done\"; "
			     "echo $? > rc; wait $pid; true; }", t_dir(), t_bin_dir()), 0);
	CU_ASSERT(contains("rc", "0"));  /* ended well within the 30 s */
	out = slurp("out");
	CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "HOOKS: hook ") : NULL);
	CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "stopped on request") : NULL);
	free(out);
	assert_untouched(before);
	CU_ASSERT(contains("root/.reimage/state", "\"cancelled\""));
	/* Nothing the hook started is left running (gone, or a zombie
	 * waiting for whoever adopted it). */
	CU_ASSERT_EQUAL(t_sh("s=$(cut -d' ' -f3 /proc/$(cat '%s')/stat 2>/dev/null); "
			     "[ -z \"$s\" ] || [ \"$s\" = Z ]", t_path("hook-child")), 0);
	free(before);
}

TEST_CASE(hook_fails)
{
	char extra[512];
	setup(NULL);
	t_write(t_path("bad.sh"), "#!/bin/sh\nexit 3\n");
	CU_ASSERT_EQUAL_FATAL(t_sh("chmod 755 '%s'", t_path("bad.sh")), 0);
	snprintf(extra, sizeof(extra), "hooks = ( { path = \"%s\"; } );", t_path("bad.sh"));
	expect_failure(extra, NULL, NULL, "HOOKS: hook");
}

TEST_CASE(hook_timeout)
{
	char extra[512];
	setup(NULL);
	t_write(t_path("slow.sh"), "#!/bin/sh\nsleep 30\n");
	CU_ASSERT_EQUAL_FATAL(t_sh("chmod 755 '%s'", t_path("slow.sh")), 0);
	snprintf(extra, sizeof(extra), "hooks = ( { path = \"%s\"; timeout = 1; } );",
		 t_path("slow.sh"));
	expect_failure(extra, NULL, NULL, "timed out after 1 s");
}

TEST_CASE(hook_digest_mismatch)
{
	char extra[512];
	setup(NULL);
	t_write(t_path("h.sh"), "#!/bin/sh\nexit 0\n");
	CU_ASSERT_EQUAL_FATAL(t_sh("chmod 755 '%s'", t_path("h.sh")), 0);
	snprintf(extra, sizeof(extra), "hooks = ( { path = \"%s\"; sha256 = \"%064d\"; } );",
		 t_path("h.sh"), 1);
	expect_failure(extra, NULL, NULL, "SHA-256 is");
}

/* One attack, staged by one writer (each case has a variant per writer). */
static void attack(const char *writer, const char *kind, const char *needle)
{
	char outside[4096];
	fixture_writer(writer);
	setup(NULL);
	snprintf(outside, sizeof(outside), "%s", t_path("outside"));
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && echo secret > '%s/secret' && "
				   "python3 '%s/tests/attack.py' %s '%s' '%s'", outside, outside,
				   t_src_dir(), kind, t_path("evil.tar"), outside), 0);
	expect_failure(NULL, t_path("evil.tar"), NULL, needle);
	/* Nothing was written outside staging. */
	CU_ASSERT_FALSE(t_sh("test -e '%s/escape'", outside) == 0);
	CU_ASSERT_FALSE(t_sh("test -e '%s/escape'", t_dir()) == 0);
	CU_ASSERT(contains("outside/secret", "secret"));
}

TEST_CASE(attack_dotdot)
{
	attack("at", "dotdot", "refused member 'a/../../escape'");
}

TEST_CASE(attack_dotdot_libarchive)
{
	attack("libarchive", "dotdot", "refused member 'a/../../escape'");
}

TEST_CASE(attack_absolute)
{
	attack("at", "absolute", "refused member '/");
}

TEST_CASE(attack_absolute_libarchive)
{
	attack("libarchive", "absolute", "refused member '/");
}

TEST_CASE(attack_symlink_then_file)
{
	attack("at", "symlink", "link/escape");
}

TEST_CASE(attack_symlink_then_file_libarchive)
{
	attack("libarchive", "symlink", "link/escape");
}

TEST_CASE(attack_hardlink_outside)
{
	attack("at", "hardlink", "hard link to");
}

TEST_CASE(attack_hardlink_outside_libarchive)
{
	attack("libarchive", "hardlink", "hard link to");
}

/* Entries an image is allowed to replace, aimed at what lies outside
 * staging or at what an earlier entry linked: the job succeeds, and
 * neither outside (its mode and time) nor the link's target is touched. */
static void replaced_entries(const char *writer)
{
	char *out = NULL, outside[4096];
	snprintf(outside, sizeof(outside), "%s", t_path("outside"));
	fixture_writer(writer);
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -m 755 '%s' && touch -d 2020-01-01 '%s' && "
				   "python3 '%s/tests/attack.py' retarget '%s' '%s' && "
				   "python3 '%s/tests/attack.py' relink '%s' '%s'", outside, outside,
				   t_src_dir(), t_path("retarget.tar"), outside, t_src_dir(),
				   t_path("relink.tar"), outside), 0);
	/* Both in one image: the second archive's members after the first's. */
	CU_ASSERT_EQUAL_FATAL(t_sh("tar -A -f '%s' '%s'", t_path("retarget.tar"),
				   t_path("relink.tar")), 0);
	fixture_job(t_path("job.conf"), t_path("retarget.tar"), NULL, "reboot = false;");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	free(out);
	CU_ASSERT_EQUAL(t_sh("test -L '%s/a'", t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%a %%Y' '%s')\" = \"755 $(date -d 2020-01-01 +%%s)\"",
			     outside), 0);
	CU_ASSERT(contains("root/victim", "fine"));
	CU_ASSERT(contains("root/x", "pwned"));
	CU_ASSERT_EQUAL(t_sh("test $(stat -c %%h '%s/victim') -eq 1", t_path("root")), 0);
}

TEST_CASE(attack_replaced_entries)
{
	replaced_entries("at");
}

TEST_CASE(attack_replaced_entries_libarchive)
{
	replaced_entries("libarchive");
}

/* libarchive's warnings refuse the image, naming the entry: a pax record
 * skipped would stage a member under another name (bsdtar -t exits 1)... */
TEST_CASE(warning_malformed_pax_refused)
{
	attack("at", "badpax", "image: read 'etc/x': Ignoring malformed pax");
}

TEST_CASE(warning_malformed_pax_refused_libarchive)
{
	attack("libarchive", "badpax", "image: read 'etc/x': Ignoring malformed pax");
}

/* ...an xattr the writer could not restore would leave it out. */
TEST_CASE(warning_xattr_not_restored_refused)
{
	attack("at", "xattr", "extract 'etc/x': ");
}

TEST_CASE(warning_xattr_not_restored_refused_libarchive)
{
	attack("libarchive", "xattr", "extract 'etc/x': ");
}

/* The harmless ones (stage.c's list) stage the image as it means it. */
static void staged_despite_warning(const char *kind, const char *rel, const char *content)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && python3 '%s/tests/attack.py' %s '%s' /none",
				   t_path("root"), t_src_dir(), kind, t_path("warn.tar")), 0);
	fixture_old_root(t_path("root"));
	/* bsdtar warns about it too. */
	CU_ASSERT_NOT_EQUAL(t_sh("LC_ALL=C bsdtar -xf '%s' -C '%s' 2>/dev/null", t_path("warn.tar"),
				 t_dir()), 0);
	fixture_job(t_path("job.conf"), t_path("warn.tar"), NULL, "reboot = false;");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	free(out);
	CU_ASSERT(contains(rel, content));
}

TEST_CASE(warning_non_ascii_name_staged)
{
	staged_despite_warning("utf8", "root/\xc3\xbc/\xc3\x9f", "umlaut");
}

TEST_CASE(warning_hard_link_to_itself_staged)
{
	staged_despite_warning("selflink", "root/etc/twice", "twice");
}

/* Device nodes: only below dev/ (image.devices), never writable by all
 * but null, zero and their like, never setuid; a hard link to one is one. */
TEST_CASE(device_outside_dev_refused)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("at", "devoutside", "refused member 'etc/mem': a character device outside the "
			     "directories image.devices allows");
}

TEST_CASE(device_outside_dev_refused_libarchive)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("libarchive", "devoutside", "refused member 'etc/mem': a character device outside the "
			     "directories image.devices allows");
}

TEST_CASE(device_writable_by_all_refused)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("at", "devopen", "refused member 'dev/sda': a block device 8:0 writable by all (mode 0666)");
}

TEST_CASE(device_writable_by_all_refused_libarchive)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("libarchive", "devopen", "refused member 'dev/sda': a block device 8:0 writable by all (mode 0666)");
}

TEST_CASE(device_setuid_refused)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("at", "devsetuid", "refused member 'dev/null': a character device with a setuid");
}

TEST_CASE(device_setuid_refused_libarchive)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("libarchive", "devsetuid", "refused member 'dev/null': a character device with a setuid");
}

TEST_CASE(device_hard_link_outside_dev_refused)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("at", "devlink", "refused member 'etc/sda': a block device outside");
}

TEST_CASE(device_hard_link_outside_dev_refused_libarchive)
{
	if (!t_is_root())
		t_skip("needs root for device nodes");
	attack("libarchive", "devlink", "refused member 'etc/sda': a block device outside");
}

/* Where the job allows them, with modes that pass, they are staged. */
TEST_CASE(devices_where_the_job_allows)
{
	char *out = NULL;
	if (!t_is_root())
		t_skip("needs root for device nodes");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && python3 '%s/tests/attack.py' devok '%s' /none",
				   t_path("root"), t_src_dir(), t_path("dev.tar")), 0);
	fixture_old_root(t_path("root"));
	fixture_job(t_path("job.conf"), t_path("dev.tar"), "devices = [ \"dev\", \"etc/\" ];",
		    "reboot = false;");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	free(out);
	const char *r = t_path("root");
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%F %%t:%%T %%a' '%s/dev/null')\" = "
			     "'character special file 1:3 666'", r), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%F %%t:%%T %%a' '%s/dev/sda')\" = "
			     "'block special file 8:0 660'", r), 0);
	/* A Debian root's console, as mmdebstrap makes it. */
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%F %%t:%%T %%a' '%s/dev/console')\" = "
			     "'character special file 5:1 666'", r), 0);
	CU_ASSERT_EQUAL(t_sh("test -c '%s/etc/mem'", r), 0);
}

TEST_CASE(devices_option_checked)
{
	char *out = NULL;
	setup(NULL);
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), "devices = [ \"/dev\" ];", NULL);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "job.conf:4: setting 'image.devices'"));
	free(out);
}

TEST_CASE(disk_full)
{
	/* A small tmpfs, mounted in a mount namespace of this test only. */
	if (!t_is_root())
		t_skip("needs root for a mount namespace");
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && head -c 8000000 /dev/urandom > '%s/big.bin' && "
				   "tar -C '%s' -cf '%s' big.bin", t_path("bigsrc"), t_path("bigsrc"),
				   t_path("bigsrc"), t_path("big.tar")), 0);
	pid_t pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", t_path("root"), "tmpfs", 0, "size=2m") < 0)
			_exit(50);
		fixture_old_root(t_path("root"));
		char *before = fixture_manifest(t_path("root"));
		/* No margin: the disk itself runs full. */
		fixture_job(t_path("job.conf"), t_path("big.tar"), NULL,
			    "preflight: { free_margin_mb = 0; };");
		char *out = NULL;
		int r = fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"), t_path("root"));
		char *now = fixture_manifest(t_path("root"));
		int ok = r == 1 && strstr(out, "No space left on device") &&
			 strcmp(before, now) == 0 &&
			 t_sh("test -e '%s/.reimage/new'", t_path("root")) != 0;
		_exit(ok ? 0 : 51);
	}
	int status;
	CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_CASE(config_errors_name_file_and_line)
{
	char *out = NULL;
	setup("preserve: { mode = \"teleport\"; };");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
				t_path("root")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "job.conf:5: setting 'preserve.mode'"));
	free(out);
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL, "lable = \"x\";");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
				t_path("root")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "job.conf:5: unknown setting 'lable'"));
	free(out);
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL, NULL);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s' --backend nosuch",
				t_path("job.conf"), t_path("root")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "backend nosuch: no such backend: nosuch is not "
				      "installed; installed: "));
	free(out);
}

TEST_CASE(plan_touches_nothing)
{
	char *out = NULL, *before;
	setup("preserve: { users = \"all\"; network = true; };");
	before = fixture_manifest(t_path("root"));
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
				t_path("root")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "exchanged  6: bin etc home srv usr var"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "retired    2: opt topfile"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "added      2: NEW-IMAGE only-new"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "kept       3: lost+found proc run"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "accounts   2: alice bob"));
	free(out);
	char *now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after plan"));
	CU_ASSERT_FALSE(t_sh("test -e '%s/.reimage'", t_path("root")) == 0);
	free(now);
	free(before);
}

TEST_CASE(recover_after_crash_before_swap)
{
	char *out = NULL, *before;
	setup(NULL);
	before = fixture_manifest(t_path("root"));
	/* A job that died while staging: state "running", half a staging. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p -m 700 '%s/.reimage/new/usr' && "
				   "echo '{\"job\":\"x\",\"phase\":\"STAGE\",\"status\":\"running\","
				   "\"backend\":\"sandbox\"}' > '%s/.reimage/state'",
				   t_path("root"), t_path("root")), 0);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "recover --root '%s'", t_path("root")), 0);
	free(out);
	assert_untouched(before);
	CU_ASSERT(contains("root/.reimage/state", "\"failed\""));
	/* And again: nothing left to do. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "recover --root '%s'", t_path("root")), 0);
	free(out);
	free(before);
}

TEST_CASE(image_of_100000_files)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("root")), 0);
	fixture_old_root(t_path("root"));
	/* 100 directories of 1,000 files, written straight into a tar. */
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c \"\nimport io, tarfile\n"
				   "with tarfile.open('%s', 'w:gz', compresslevel=1) as t:\n"
				   "  for d in range(100):\n"
				   "    for f in range(1000):\n"
				   "      b = ('%%d/%%d\\n' %% (d, f)).encode()\n"
				   "      i = tarfile.TarInfo('usr/share/d%%03d/f%%04d' %% (d, f))\n"
				   "      i.size = len(b)\n"
				   "      t.addfile(i, io.BytesIO(b))\n\"", t_path("big.tar.gz")), 0);
	fixture_job(t_path("job.conf"), t_path("big.tar.gz"), NULL, "reboot = false;");
	CU_ASSERT_EQUAL_FATAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
				      t_path("root")), 0);
	free(out);
	CU_ASSERT_EQUAL(t_sh("test $(find '%s/usr/share' -type f | wc -l) -eq 100000",
			     t_path("root")), 0);
	CU_ASSERT(contains("root/usr/share/d099/f0999", "99/999"));
}

TEST_CASE(metadata_kept)
{
	char *out = NULL;
	if (!t_is_root())
		t_skip("needs root for device nodes, owners and capabilities");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	/* A device node, a sparse file, an xattr, an ACL, a file capability,
	 * an owner and a time: the fixture every image source is held to. */
	fixture_meta_tree(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("tar --numeric-owner --xattrs --xattrs-include='*' --acls "
				   "--sparse -C '%s' -cf '%s' .", t_path("src"), t_path("meta.tar")), 0);
	fixture_job(t_path("job.conf"), t_path("meta.tar"), NULL, "reboot = false;");
	CU_ASSERT_EQUAL_FATAL(t_sh_out(&out, "'%s/reimage' run -c '%s' --root '%s'", t_bin_dir(),
				       t_path("job.conf"), t_path("root")), 0);
	free(out);
	const char *r = t_path("root");
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%F %%t:%%T' '%s/dev/null')\" = "
			     "'character special file 1:3'", r), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%F %%t:%%T' '%s/dev/blk')\" = "
			     "'block special file 7:c8'", r), 0);
	/* 64 MiB long, a few blocks on disk. */
	CU_ASSERT_EQUAL(t_sh("test $(stat -c %%s '%s/usr/sparse') -eq 67108868 && "
			     "test $(du -k '%s/usr/sparse' | cut -f1) -lt 1024", r, r), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(getfattr --only-values -n user.reimage '%s/usr/xattr')\" = kept",
			     r), 0);
	CU_ASSERT_EQUAL(t_sh("getfacl -n '%s/usr/acl' 2>/dev/null | grep -q '^user:1000:rw-'", r), 0);
	CU_ASSERT_EQUAL(t_sh("getfacl -n '%s/usr/acl' 2>/dev/null | grep -q '^user:4242:r--'", r), 0);
	CU_ASSERT_EQUAL(t_sh("getcap '%s/usr/ping' | grep -q 'cap_net_raw[=+]ep'", r), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%u:%%g %%Y' '%s/usr/owned')\" = "
			     "\"1234:4321 $(date -d '2001-02-03 04:05:06' +%%s)\"", r), 0);
}
