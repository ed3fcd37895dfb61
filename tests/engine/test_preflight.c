/*
 * test_preflight.c -- PREFLIGHT's refusals through the `reimage` binary on
 * sandbox roots: not enough space (before anything is written, and while
 * staging on a small tmpfs), a battery (a fake power-supply class), an
 * image built for another architecture, without an init, without a
 * path the job requires, or with nothing in it.  Each leaves the root exactly as it was, and
 * `reimage plan` shows every check's outcome.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include <elf.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define BUSYBOX "/bin/busybox"

/* An old root, and a tar image of the new tree after the shell commands
 * new_setup (run in its directory), with its digest and size; the job
 * gets extra. */
static void setup(const char *new_setup, const char *extra)
{
	char image_extra[256];
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	fixture_new_tree(t_path("src"));
	if (new_setup)
		CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && %s", t_path("src"), new_setup), 0);
	fixture_pack(t_path("src"), t_path("image.tar.gz"), "gzip");
	snprintf(image_extra, sizeof(image_extra), "sha256 = \"%s\"; size = %lld;",
		 fixture_sha256(t_path("image.tar.gz")), fixture_size(t_path("image.tar.gz")));
	fixture_job(t_path("job.conf"), t_path("image.tar.gz"), image_extra, extra);
}

static int has(const char *text, const char *piece)
{
	if (!text || !strstr(text, piece)) {
		fprintf(stderr, "missing: %s\n", piece);
		return 0;
	}
	return 1;
}

/* Run the job; it must fail with message, leaving the root as before. */
static void run_refused(const char *before, const char *message)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 1);
	CU_ASSERT(has(out, message));
	free(out);
	char *now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after a refused job"));
	free(now);
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", t_path("root")), 0);
}

static void run_ok(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	free(out);
}

TEST_CASE(space_refused_before_anything)
{
	char *out = NULL;
	setup(NULL, "preflight: { free_margin_mb = 1000000000; };");
	char *before = fixture_manifest(t_path("root"));

	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT(has(out, "preflight  space: REFUSED:"));
	CU_ASSERT(has(out, "preflight.free_margin_mb"));
	free(out);
	run_refused(before, "PREFLIGHT: space:");
	/* Refused before PREPARE: not even .reimage was made. */
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage'", t_path("root")), 0);
	free(before);
}

/* boot.kexec on a backend that cannot reboot by kexec (the sandbox, as
 * macos and windows) is refused before anything is staged, not ignored. */
TEST_CASE(kexec_refused_by_a_backend_without_it)
{
	setup(NULL, "boot: { kexec = true; };");
	char *before = fixture_manifest(t_path("root"));
	run_refused(before, "cannot reboot by kexec (remove `boot.kexec`)");
	free(before);
}

TEST_CASE(unpacked_size_counts)
{
	/* A declared unpacked size larger than any disk: refused. */
	setup(NULL, "preflight: { free_margin_mb = 0; };");
	char *before = fixture_manifest(t_path("root"));
	char image_extra[256];
	snprintf(image_extra, sizeof(image_extra), "unpacked_size = 4503599627370496L;");
	fixture_job(t_path("job.conf"), t_path("image.tar.gz"), image_extra, NULL);
	run_refused(before, "image.unpacked_size");
	free(before);
}

/* A power-supply class as the kernel lays it out. */
static void power_supply(const char *mains_online)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/AC' '%s/BAT0' && echo Mains > '%s/AC/type' && "
				   "echo %s > '%s/AC/online' && echo Battery > '%s/BAT0/type' && "
				   "echo System > '%s/BAT0/scope' && echo Discharging > "
				   "'%s/BAT0/status'",
				   t_path("ps"), t_path("ps"), t_path("ps"), mains_online, t_path("ps"),
				   t_path("ps"), t_path("ps"), t_path("ps")), 0);
}

TEST_CASE(battery_refused_ac_accepted)
{
	char extra[1024], *out = NULL;
	snprintf(extra, sizeof(extra), "sandbox: { power_supply_dir = \"%s\"; };", t_path("ps"));
	setup(NULL, extra);
	char *before = fixture_manifest(t_path("root"));

	power_supply("0");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT(has(out, "preflight  power: REFUSED: the machine runs on battery"));
	free(out);
	run_refused(before, "PREFLIGHT: power: the machine runs on battery");

	power_supply("1");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT(has(out, "preflight  power: on AC: ok"));
	free(out);
	run_ok();
	free(before);
}

TEST_CASE(battery_allowed_when_the_job_says_so)
{
	char extra[1024];
	snprintf(extra, sizeof(extra), "sandbox: { power_supply_dir = \"%s\"; };\n"
		 "preflight: { ac_power = false; };", t_path("ps"));
	setup(NULL, extra);
	power_supply("0");
	run_ok();
}

/* A root on a 64 MiB tmpfs of a private mount namespace; the image brings
 * mib MiB in one file (of zeros: a tiny archive, so PREFLIGHT's lower bound
 * passes) and margin_mb MiB must stay free: staging stops cleanly with
 * message, the root as it was and nothing staged left. */
static void stop_on_small_volume(unsigned mib, unsigned margin_mb, const char *message)
{
	char margin[128];
	if (!t_is_root())
		t_skip("needs root (a tmpfs in a mount namespace)");
	CU_ASSERT_EQUAL_FATAL(unshare(CLONE_NEWNS), 0);
	CU_ASSERT_EQUAL_FATAL(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("vol")), 0);
	CU_ASSERT_EQUAL_FATAL(mount("tmpfs", t_path("vol"), "tmpfs", 0, "size=64m"), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("vol/root"), t_path("src")), 0);
	fixture_old_root(t_path("vol/root"));
	fixture_new_tree(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c %uM /dev/zero > '%s/usr/zeros'", mib, t_path("src")),
			      0);
	fixture_pack(t_path("src"), t_path("image.tar.gz"), "gzip");
	snprintf(margin, sizeof(margin), "preflight: { free_margin_mb = %u; };", margin_mb);
	fixture_job(t_path("job.conf"), t_path("image.tar.gz"), NULL, margin);
	char *before = fixture_manifest(t_path("vol/root"));
	char *out = NULL;

	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("vol/root")), 1);
	CU_ASSERT(has(out, message));
	free(out);
	char *now = fixture_manifest(t_path("vol/root"));
	CU_ASSERT(fixture_same(before, now, "root after staging stopped"));
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", t_path("vol/root")), 0);
	/* Everything staged is gone again. */
	CU_ASSERT_EQUAL(t_sh("test \"$(df -m --output=used '%s' | tail -n 1)\" -lt 4",
			     t_path("vol")), 0);
	free(now);
	free(before);
	umount2(t_path("vol"), MNT_DETACH);
}

/* 48 MiB on 64 with 32 to keep: stopped half way. */
TEST_CASE(staging_stops_at_the_margin)
{
	stop_on_small_volume(48, 32, "STAGE: the root's volume has less than the 32 MiB free "
				     "that must stay (preflight.free_margin_mb): staging stopped");
}

/* One member larger than the whole volume: the margin holds inside it,
 * the volume never runs full. */
TEST_CASE(margin_holds_inside_one_large_member)
{
	stop_on_small_volume(80, 8, "STAGE: the root's volume has less than the 8 MiB free that "
				    "must stay (preflight.free_margin_mb): staging stopped after");
}

/* image.unpacked_size is a hard limit on what staging writes: an image
 * that unpacks to more stops at the member that crosses it. */
TEST_CASE(unpacked_size_is_a_hard_limit)
{
	setup("head -c 8388608 /dev/zero > usr/zeros", "preflight: { free_margin_mb = 0; };");
	char *before = fixture_manifest(t_path("root"));
	fixture_job(t_path("job.conf"), t_path("image.tar.gz"), "unpacked_size = 1048576;",
		    "preflight: { free_margin_mb = 0; };");
	run_refused(before, "STAGE: the image unpacks to more than the 1048576 bytes "
			    "image.unpacked_size declares: staging stopped in 'usr/zeros'");
	free(before);
	/* Declared as it is, the same image stages. */
	fixture_job(t_path("job.conf"), t_path("image.tar.gz"), "unpacked_size = 9437184;",
		    "preflight: { free_margin_mb = 0; };");
	run_ok();
}

/* The first bytes of an ELF executable for machine. */
static void fake_elf(const char *path, unsigned machine)
{
	Elf64_Ehdr h = { 0 };
	memcpy(h.e_ident, ELFMAG, SELFMAG);
	h.e_ident[EI_CLASS] = ELFCLASS64;
	h.e_ident[EI_DATA] = ELFDATA2LSB;
	h.e_ident[EI_VERSION] = EV_CURRENT;
	h.e_type = ET_EXEC;
	h.e_machine = (Elf64_Half)machine;
	FILE *f = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(&h, sizeof(h), 1, f), 1);
	fclose(f);
	CU_ASSERT_EQUAL(t_sh("chmod 755 '%s'", path), 0);
}

TEST_CASE(image_for_another_architecture)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("elf")), 0);
	fake_elf(t_path("elf/init"), EM_AARCH64);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "mkdir -p sbin && cp '%s' sbin/init", t_path("elf/init"));
	setup(cmd, "trial: { guard = true; };");
	char *before = fixture_manifest(t_path("root"));
	run_refused(before, "/sbin/init is built for aarch64, 64-bit; this machine runs x86-64, "
			    "64-bit");
	free(before);
}

TEST_CASE(script_init_checked_through_its_interpreter)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("elf")), 0);
	fake_elf(t_path("elf/sh"), EM_RISCV);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "mkdir -p sbin bin && cp '%s' bin/dash && "
		 "printf '#!/bin/dash\\nexit 0\\n' > sbin/init && chmod 755 sbin/init",
		 t_path("elf/sh"));
	setup(cmd, "trial: { guard = true; };");
	char *before = fixture_manifest(t_path("root"));
	run_refused(before, "/bin/dash is built for riscv, 64-bit");
	free(before);
}

TEST_CASE(image_without_init_refused_when_guarded)
{
	setup("mkdir -p sbin", "trial: { guard = true; };");
	char *before = fixture_manifest(t_path("root"));
	run_refused(before, "the image has no init");
	free(before);
}

/* Nothing to swap in: a zero-byte file (libarchive reads it as an empty
 * archive), and a tar of an empty directory (its "./" stands for the root). */
TEST_CASE(empty_image_refused)
{
	setup(NULL, NULL);
	char *before = fixture_manifest(t_path("root"));
	t_write(t_path("empty.tar"), "");
	fixture_job(t_path("job.conf"), t_path("empty.tar"), NULL, NULL);
	run_refused(before, "image check: the image is empty (no file or directory staged)");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir '%s' && tar -C '%s' -cf '%s' .", t_path("nothing"),
				   t_path("nothing"), t_path("nothing.tar")), 0);
	fixture_job(t_path("job.conf"), t_path("nothing.tar"), NULL, NULL);
	run_refused(before, "image check: the image is empty (no file or directory staged)");
	free(before);
}

TEST_CASE(required_path_missing)
{
	setup(NULL, "preflight: { required_paths = [ \"usr/bin/ssh\", \"etc/os-release\" ]; };");
	char *before = fixture_manifest(t_path("root"));
	run_refused(before, "image check: /usr/bin/ssh is missing (preflight.required_paths)");
	free(before);
}

TEST_CASE(guarded_image_of_this_machine_accepted)
{
	if (access(BUSYBOX, X_OK) < 0)
		t_skip("%s is missing (Debian package busybox-static)", BUSYBOX);
	char *out = NULL;
	setup("mkdir -p sbin && cp " BUSYBOX " sbin/init",
	      "trial: { guard = true; max_attempts = 2; };");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT(has(out, "runs as /sbin/init for up to 2 boots of the new image"));
	CU_ASSERT(has(out, "preflight  image: checked after staging: init present"));
	free(out);
	run_ok();
}
