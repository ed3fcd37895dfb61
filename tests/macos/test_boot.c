/*
 * test_boot.c -- PREPARE, LABEL, BOOT, sync and REBOOT of the macos
 * backend with the recording fake: the private copy of bless, `diskutil
 * rename`, the bless command for each mode (folder, mount, one-shot), the
 * boot command (chrooted unless the root is /), and what each failure
 * does.  Roots are temporary directories; nothing is blessed or renamed.
 */
#define _GNU_SOURCE
#include "fake_sys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char want[4096];

/* A root (in the case's directory, named name) whose new image has
 * System/Library/CoreServices or not; the path is kept in a static slot. */
static const char *make_root(const char *name, int coreservices)
{
	static char roots[2][4096];
	static int slot;
	char *root = roots[slot++ % 2];

	snprintf(root, sizeof(roots[0]), "%s/%s", t_dir(), name);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/.reimage'", root), 0);
	if (coreservices)
		CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/System/Library/CoreServices'", root), 0);
	return root;
}

TEST_CASE(prepare_copies_bless)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *root = make_root("root", 1);
	struct reimage_boot boot = { .root = root };
	struct stat st;

	mfx_start(&m, "");
	CU_ASSERT_EQUAL(m.fx.ops->prepare(m.fx.ctx, root, &err), 0);
	CU_ASSERT_EQUAL(stat(t_path("root/.reimage/macos-tools"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0700);
	/* BOOT, after the swap, runs the copy. */
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), 0);
	snprintf(want, sizeof(want),
		 "copy /usr/sbin/bless %s/.reimage/macos-tools/bless 0700\n"
		 "run %s/.reimage/macos-tools/bless --folder %s/System/Library/CoreServices --setBoot\n",
		 root, root, root);
	CU_ASSERT(fake_calls_are(&m.fake, want));
	mfx_stop(&m);
}

TEST_CASE(prepare_copy_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *root = make_root("root", 0);

	mfx_start(&m, "");
	m.fake.copy_error = -ENOENT;
	CU_ASSERT_EQUAL(m.fx.ops->prepare(m.fx.ctx, root, &err), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "prepare: copy /usr/sbin/bless to "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(BOOT runs it after the swap): No such file"));
	mfx_stop(&m);
}

TEST_CASE(bless_mount_one_shot)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *root = make_root("root", 0);
	struct reimage_boot boot = { .root = root, .one_shot = 1 };

	/* No CoreServices folder in the new image: the volume is blessed. */
	mfx_start(&m, "");
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), 0);
	snprintf(want, sizeof(want), "run /usr/sbin/bless --mount %s --setBoot --nextonly\n", root);
	CU_ASSERT(fake_calls_are(&m.fake, want));
	mfx_stop(&m);
}

TEST_CASE(bless_mode_option)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *root = make_root("root", 1);
	struct reimage_boot boot = { .root = root };

	mfx_start(&m, "bless = \"mount\";");
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), 0);
	snprintf(want, sizeof(want), "run /usr/sbin/bless --mount %s --setBoot\n", root);
	CU_ASSERT(fake_calls_are(&m.fake, want));
	mfx_stop(&m);
	/* "folder" even where the image has none: bless says what is wrong. */
	mfx_start(&m, "bless = \"folder\";");
	boot.root = make_root("root2", 0);
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), 0);
	snprintf(want, sizeof(want), "run /usr/sbin/bless --folder %s/System/Library/CoreServices "
		 "--setBoot\n", boot.root);
	CU_ASSERT(fake_calls_are(&m.fake, want));
	mfx_stop(&m);
}

TEST_CASE(bless_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *root = make_root("root", 0);
	struct reimage_boot boot = { .root = root };

	mfx_start(&m, "");
	fake_answer(&m.fake, "/usr/sbin/bless", 3,
		    "Could not set boot device property: 0xe00002bc\n");
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), -EIO);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_IO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bless the new image: '/usr/sbin/bless --mount "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "exited with status 3: Could not set boot device "
					       "property: 0xe00002bc"));
	mfx_stop(&m);
}

TEST_CASE(boot_command)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *root = make_root("root", 0);
	struct reimage_boot boot = { .root = root, .command = "nvram boot-args=-v" };

	/* Another volume than /: the command runs inside it, then bless. */
	mfx_start(&m, "");
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), 0);
	snprintf(want, sizeof(want),
		 "run /usr/sbin/chroot %s /bin/sh -c 'nvram boot-args=-v'\n"
		 "run /usr/sbin/bless --mount %s --setBoot\n", root, root);
	CU_ASSERT(fake_calls_are(&m.fake, want));
	/* bless (the last run) gets the plain environment, not the command's. */
	CU_ASSERT_PTR_NULL(strstr(m.fake.last_env, "REIMAGE_"));
	mfx_stop(&m);
}

TEST_CASE(boot_command_on_slash)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = { .root = "/", .command = "exit 2", .one_shot = 1 };

	/* On / the shell already is the new image's; a failing command
	 * stops BOOT before bless. */
	mfx_start(&m, "");
	fake_answer(&m.fake, "/bin/sh -c", 2, "no\n");
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "boot command: '/bin/sh -c exit 2' exited with "
					       "status 2: no"));
	CU_ASSERT(fake_calls_are(&m.fake, "run /bin/sh -c 'exit 2'\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m.fake.last_env, "REIMAGE_ONE_SHOT=1\nREIMAGE_ROOT=/"));
	mfx_stop(&m);
}

TEST_CASE(boot_kernel_refused)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = { .root = "/", .cmdline = "quiet" };

	mfx_start(&m, "");
	CU_ASSERT_EQUAL(m.fx.ops->set_boot(m.fx.ctx, &boot, &err), -ENOTSUP);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	CU_ASSERT(fake_calls_are(&m.fake, ""));
	mfx_stop(&m);
}

TEST_CASE(label)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	snprintf(m.fake.volume.on, sizeof(m.fake.volume.on), "/Volumes/Lab Mac");
	CU_ASSERT_EQUAL(m.fx.ops->set_label(m.fx.ctx, "/Volumes/Lab Mac", "Lab 2026", &err), 0);
	CU_ASSERT(fake_calls_are(&m.fake, "volume /Volumes/Lab Mac\n"
					  "run /usr/sbin/diskutil rename '/Volumes/Lab Mac' "
					  "'Lab 2026'\n"));
	mfx_stop(&m);
}

TEST_CASE(label_invalid)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	char longname[300];

	mfx_start(&m, "");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CU_ASSERT_EQUAL(m.fx.ops->set_label(m.fx.ctx, "/", "", &err), -EINVAL);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(m.fx.ops->set_label(m.fx.ctx, "/", "-force", &err), -EINVAL);
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(m.fx.ops->set_label(m.fx.ctx, "/", longname, &err), -EINVAL);
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(m.fx.ops->set_label(m.fx.ctx, "/", "a\tb", &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "control characters"));
	CU_ASSERT(fake_calls_are(&m.fake, ""));
	mfx_stop(&m);
}

TEST_CASE(label_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	fake_answer(&m.fake, "/usr/sbin/diskutil rename", 1,
		    "Started renaming\nVolume on disk1s1 failed to rename\n");
	CU_ASSERT_EQUAL(m.fx.ops->set_label(m.fx.ctx, "/", "New", &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "rename the volume: '/usr/sbin/diskutil rename / New' "
					       "exited with status 1: Volume on disk1s1 failed to "
					       "rename"));
	mfx_stop(&m);
}

TEST_CASE(swap_sync_reboot)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	CU_ASSERT_EQUAL(m.fx.ops->exchange(m.fx.ctx, "/r/usr", "/r/.reimage/new/usr", &err), 0);
	CU_ASSERT_EQUAL(m.fx.ops->move(m.fx.ctx, "/r/opt", "/r/.reimage/old/opt", &err), 0);
	CU_ASSERT_EQUAL(m.fx.ops->sync(m.fx.ctx, "/r", &err), 0);
	m.fake.swap_error = -ENOTSUP;
	CU_ASSERT_EQUAL(m.fx.ops->exchange(m.fx.ctx, "/r/a", "/r/b", &err), -ENOTSUP);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "exchange /r/a and /r/b"));
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(m.fx.ops->reboot(m.fx.ctx, &err), -EPERM);
	CU_ASSERT_STRING_EQUAL(err.msg, "reboot: Operation not permitted");
	CU_ASSERT(fake_calls_are(&m.fake, "swap /r/usr /r/.reimage/new/usr\n"
					  "move /r/opt /r/.reimage/old/opt\nsync /r\n"
					  "swap /r/a /r/b\nreboot\n"));
	mfx_stop(&m);
}
