/*
 * test_boot.c -- set_boot's command runs inside the new root: a sandbox
 * root whose /bin/sh is a static busybox.  Its environment, failure with
 * its output, the timeout; a kernel path that does not resolve inside
 * the root is refused before any kexec; boot.kexec without a kernel in
 * the image falls back to the firmware.  (kexec_file_load itself and
 * reboot are never called here: they would act on this machine.)
 */
#define _GNU_SOURCE
#include "posix_fixture.h"
#include "fsutil.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUSYBOX "/bin/busybox"

/* A root with busybox as /bin/sh and /bin/sleep. */
static void make_root(void)
{
	if (!t_is_root())
		t_skip("chroot needs root");
	if (t_sh("file -L '%s' 2>/dev/null | grep -q 'statically linked'", BUSYBOX) != 0 &&
	    t_sh("ldd '%s' 2>&1 | grep -q 'not a dynamic executable'", BUSYBOX) != 0)
		t_skip("a static %s is needed (Debian package busybox-static)", BUSYBOX);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/root/bin' && cp '%s' '%s/root/bin/sh' && "
				   "ln -s sh '%s/root/bin/sleep'",
				   t_dir(), BUSYBOX, t_dir(), t_dir()), 0);
}

static int load(struct posix_fixture *fx, const char *conf)
{
	struct reimage_error err = { 0 };
	int r = fx_load(fx, conf, &err);
	if (r < 0)
		fprintf(stderr, "load: %s\n", err.msg);
	return r;
}

TEST_CASE(command_in_root)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	char marker[256], *pwd;
	struct reimage_boot boot = {
		.root = t_path("root"),
		.cmdline = "quiet splash",
		.one_shot = 1,
	};
	char *got;

	make_root();
	/* A name unique to this case: it must appear in the root only. */
	snprintf(marker, sizeof(marker), "/reimage-test-%s", basename((char *)t_dir()));
	char command[512];
	snprintf(command, sizeof(command),
		 "echo \"one_shot=$REIMAGE_ONE_SHOT cmdline=$REIMAGE_CMDLINE kernel=$REIMAGE_KERNEL\" "
		 "> %s; pwd > /pwd; echo output-line",
		 marker);
	boot.command = command;
	CU_ASSERT_EQUAL_FATAL(load(&fx, "lock_memory = false;"), 0);
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	got = t_read(t_path("root%s", marker));
	CU_ASSERT(got && strcmp(got, "one_shot=1 cmdline=quiet splash kernel=\n") == 0);
	free(got);
	pwd = t_read(t_path("root/pwd"));
	CU_ASSERT(pwd && strcmp(pwd, "/\n") == 0);
	free(pwd);
	CU_ASSERT(!fs_exists(marker));
	fx_unload(&fx);
}

TEST_CASE(command_fails)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = {
		.root = t_path("root"),
		.command = "echo first; echo the reason >&2; exit 3",
	};

	make_root();
	CU_ASSERT_EQUAL_FATAL(load(&fx, "lock_memory = false;"), 0);
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "exited with status 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "first\nthe reason"));

	/* A new root without a shell. */
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(unlink(t_path("root/bin/sh")), 0);
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "status 127"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot run /bin/sh in the new root"));
	fx_unload(&fx);
}

TEST_CASE(command_timeout)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = {
		.root = t_path("root"),
		.command = "echo started; sleep 30 & echo $! >/sleeper.pid; sleep 30",
	};
	time_t start;

	make_root();
	CU_ASSERT_EQUAL_FATAL(load(&fx, "lock_memory = false; boot_timeout = 1;"), 0);
	start = time(NULL);
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), -ETIMEDOUT);
	CU_ASSERT(time(NULL) - start < 10);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "was killed: started"));
	/* The whole process group went: the background sleeper too. */
	CU_ASSERT(t_process_gone(t_path("root/sleeper.pid")));
	fx_unload(&fx);
}

TEST_CASE(kernel_resolves_in_root)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = { .root = t_path("root"), .kernel = "boot/vmlinuz-missing" };

	CU_ASSERT_EQUAL(mkdir(t_path("root"), 0755), 0);
	CU_ASSERT_EQUAL(mkdir(t_path("root/boot"), 0755), 0);
	CU_ASSERT_EQUAL_FATAL(load(&fx, "lock_memory = false;"), 0);
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), -ENOENT);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "boot/vmlinuz-missing"));

	/* An absolute link of the new image points into the new image, not
	 * to the agent's files: /etc/hostname exists here, not in root. */
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(symlink("/etc/hostname", t_path("root/boot/vmlinuz")), 0);
	CU_ASSERT_EQUAL_FATAL(access("/etc/hostname", R_OK), 0);
	boot.kernel = "boot/vmlinuz";
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), -ENOENT);
	fx_unload(&fx);
}

TEST_CASE(kexec_falls_back)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = { .root = t_path("root"), .kexec = 1 };

	CU_ASSERT_EQUAL(mkdir(t_path("root"), 0755), 0);
	CU_ASSERT_EQUAL_FATAL(load(&fx, "lock_memory = false;"), 0);
	/* No boot/vmlinuz: the reboot goes through the firmware. */
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), 0);
	CU_ASSERT_EQUAL(err.code, 0);

	/* The default kernel resolves inside the root like a named one: a
	 * link out of it is no kernel either. */
	CU_ASSERT_EQUAL(mkdir(t_path("root/boot"), 0755), 0);
	CU_ASSERT_EQUAL(symlink("/etc/hostname", t_path("root/boot/vmlinuz")), 0);
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), 0);

	/* Without boot.kexec the same missing kernel is an error. */
	boot.kexec = 0;
	boot.kernel = "boot/vmlinuz";
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), -ENOENT);
	fx_unload(&fx);
}

TEST_CASE(nothing_to_do)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = { .root = t_dir() };

	CU_ASSERT_EQUAL_FATAL(load(&fx, ""), 0);
	CU_ASSERT_EQUAL(fx.ops->set_boot(fx.ctx, &boot, &err), 0);
	fx_unload(&fx);
}
