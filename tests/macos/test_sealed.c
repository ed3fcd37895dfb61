/*
 * test_preflight.c -- PREFLIGHT of the macos backend with the recording
 * fake: which volumes it refuses (sealed, read-only, SIP on the running
 * system), which it lets through (the Data volume, SIP off, a Mac older
 * than csrutil), the commands it runs to tell, and what a failing check
 * does.  Nothing is swapped unless the check passed.
 */
#define _GNU_SOURCE
#include "fake_sys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* What `diskutil info /` prints about a sealed snapshot (macOS 11+). */
static const char sealed_info[] =
	"   Device Identifier:         disk3s1s1\n"
	"   Volume Name:               Macintosh HD\n"
	"   Mounted:                   Yes\n"
	"   Snapshot:                  Yes\n"
	"   Sealed:                    Yes\n"
	"   Volume Read-Only:          Yes (read-only mount flag set)\n";

static void volume(struct macos_fixture *m, int read_only, const char *from, const char *on)
{
	m->fake.volume.read_only = read_only;
	snprintf(m->fake.volume.from, sizeof(m->fake.volume.from), "%s", from);
	snprintf(m->fake.volume.on, sizeof(m->fake.volume.on), "%s", on);
}

static int preflight(struct macos_fixture *m, const char *root, const struct reimage_boot *boot,
		     struct reimage_error *err)
{
	return m->fx.ops->preflight(m->fx.ctx, root, boot, err);
}

TEST_CASE(sealed_refused)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	volume(&m, 1, "/dev/disk3s1s1", "/");
	fake_answer(&m.fake, "/usr/sbin/diskutil info /", 0, sealed_info);
	CU_ASSERT_EQUAL(preflight(&m, "/", NULL, &err), -EROFS);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	fprintf(stderr, "%s\n", err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "root / cannot be swapped: it is on a sealed system "
					       "volume (APFS Signed System Volume"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/dev/disk3s1s1, mounted read-only on /"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "re-image the Data volume (root = "
					       "\"/System/Volumes/Data\")"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "external volume"));
	/* Refused on the volume alone: SIP is not asked. */
	CU_ASSERT(fake_calls_are(&m.fake, "volume /\nrun /usr/sbin/diskutil info /\n"));
	mfx_stop(&m);
}

TEST_CASE(read_only_refused)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* macOS 10.15: the system volume is read-only, not sealed. */
	mfx_start(&m, "");
	volume(&m, 1, "/dev/disk1s5", "/");
	fake_answer(&m.fake, "/usr/sbin/diskutil info /", 0, "   Volume Name: Macintosh HD\n");
	CU_ASSERT_EQUAL(preflight(&m, "/", NULL, &err), -EROFS);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "its volume (/dev/disk1s5 on /) is mounted read-only"));
	CU_ASSERT_PTR_NULL(strstr(err.msg, "sealed"));
	mfx_stop(&m);
}

TEST_CASE(sip_refused)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* macOS 10.14 or earlier: one writable volume, SIP on. */
	mfx_start(&m, "");
	volume(&m, 0, "/dev/disk1s1", "/");
	fake_answer(&m.fake, "/usr/sbin/diskutil info /", 0, "   Sealed: No\n");
	fake_answer(&m.fake, "/usr/bin/csrutil status", 0,
		    "System Integrity Protection status: enabled.\n");
	CU_ASSERT_EQUAL(preflight(&m, "/", NULL, &err), -EPERM);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "System Integrity Protection is on (csrutil: "
					       "\"System Integrity Protection status: enabled.\")"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "csrutil disable"));
	CU_ASSERT(fake_calls_are(&m.fake, "volume /\nrun /usr/sbin/diskutil info /\n"
					  "run /usr/bin/csrutil status\n"));
	mfx_stop(&m);
}

TEST_CASE(sip_custom_refused)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* A custom configuration may still protect the file system. */
	mfx_start(&m, "");
	fake_answer(&m.fake, "/usr/bin/csrutil status", 0,
		    "System Integrity Protection status: unknown (Custom Configuration).\n");
	CU_ASSERT_EQUAL(preflight(&m, "/", NULL, &err), -EPERM);
	mfx_stop(&m);
}

TEST_CASE(sip_off_passes)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	fake_answer(&m.fake, "/usr/bin/csrutil status", 0,
		    "System Integrity Protection status: disabled.\n");
	CU_ASSERT_EQUAL(preflight(&m, "/", NULL, &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	mfx_stop(&m);
}

TEST_CASE(no_csrutil_passes)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* Before 10.11 there is no csrutil and no SIP. */
	mfx_start(&m, "");
	fake_answer(&m.fake, "/usr/bin/csrutil status", -ENOENT, NULL);
	CU_ASSERT_EQUAL(preflight(&m, "/", NULL, &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	mfx_stop(&m);
}

TEST_CASE(csrutil_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	fake_answer(&m.fake, "/usr/bin/csrutil status", 1, "csrutil: failed to read NVRAM\n");
	CU_ASSERT_EQUAL(preflight(&m, "/", NULL, &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "check System Integrity Protection: "
					       "'/usr/bin/csrutil status' exited with status 1: "
					       "csrutil: failed to read NVRAM"));
	mfx_stop(&m);
}

TEST_CASE(data_volume_passes)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *root = "/System/Volumes/Data";

	/* The Data volume is writable and not the running system's /: no
	 * SIP question. */
	mfx_start(&m, "");
	volume(&m, 0, "/dev/disk3s5", root);
	fake_answer(&m.fake, "/usr/sbin/diskutil info /System/Volumes/Data", 0,
		    "   Volume Name:               Data\n   Sealed:                    No\n");
	CU_ASSERT_EQUAL(preflight(&m, root, NULL, &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "volume /System/Volumes/Data\n"
					  "run /usr/sbin/diskutil info /System/Volumes/Data\n"));
	mfx_stop(&m);
}

TEST_CASE(diskutil_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* A check that cannot be made refuses the job: no swap on a guess. */
	mfx_start(&m, "");
	volume(&m, 0, "/dev/disk2s1", "/Volumes/External");
	fake_answer(&m.fake, "/usr/sbin/diskutil info", 1,
		    "Could not find disk: /Volumes/External\n");
	CU_ASSERT_EQUAL(preflight(&m, "/Volumes/External", NULL, &err), -EIO);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "exited with status 1: Could not find disk: "
					       "/Volumes/External"));
	mfx_stop(&m);
}

TEST_CASE(volume_unknown)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	m.fake.volume_error = -ENOENT;
	CU_ASSERT_EQUAL(preflight(&m, "/Volumes/Gone", NULL, &err), -ENOENT);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "the volume of /Volumes/Gone"));
	CU_ASSERT(fake_calls_are(&m.fake, "volume /Volumes/Gone\n"));
	mfx_stop(&m);
}

TEST_CASE(boot_kernel_refused)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = { .root = "/Volumes/External", .kernel = "boot/vmlinuz" };

	/* Refused before anything is asked of the machine. */
	mfx_start(&m, "");
	CU_ASSERT_EQUAL(preflight(&m, "/Volumes/External", &boot, &err), -ENOTSUP);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "boot.kernel, boot.initrd and boot.cmdline are not "
					       "supported by backend macos"));
	CU_ASSERT(fake_calls_are(&m.fake, ""));
	mfx_stop(&m);
}
