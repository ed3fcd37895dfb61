/*
 * test_mount.c -- the posix backend's image_attach/image_detach, loaded
 * as the engine loads it: an ext4 image (mke2fs -d) opened read-only in a
 * private mount namespace -- readable by the agent, invisible in its own
 * mount table -- and its loop device gone after detach, and gone too when
 * the process that attached it is killed.  A kind Linux cannot open is
 * refused by name.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "registry.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct posix_backend {
	struct registry reg;
	struct plugin *p;
	const struct reimage_backend_ops *ops;
};

static void load(struct posix_backend *b)
{
	static const char *const none[] = { NULL };
	struct reimage_error err = { 0 };

	if (!t_is_root())
		t_skip("needs root for loop devices and mount namespaces");
	if (t_sh("test -c /dev/loop-control") != 0)
		t_skip("no /dev/loop-control: loop devices are not available here");
	CU_ASSERT_EQUAL_FATAL(registry_init(&b->reg, none, &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_backend(&b->reg, "posix", &b->p, &err), 0);
	CU_ASSERT_EQUAL_FATAL(plugin_start(b->p, &err), 0);
	b->ops = b->p->desc->backend;
	CU_ASSERT_FATAL(b->ops->caps & REIMAGE_BCAP_IMAGES);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/etc' '%s' && echo image > '%s/etc/os' && "
				   "mke2fs -q -F -t ext4 -d '%s' '%s' 16M", t_path("src"),
				   t_path("mnt"), t_path("src"), t_path("src"), t_path("img.ext4")), 0);
}

/* 1 once no loop device holds the image (autoclear is the kernel's,
 * a moment after the mount goes): bounded, 10 s. */
static int loop_released(void)
{
	const struct timespec pause = { 0, 50 * 1000 * 1000 };
	for (int i = 0; i < 200; i++) {
		if (t_sh("losetup -j '%s' | grep -q .", t_path("img.ext4")) != 0)
			return 1;
		nanosleep(&pause, NULL);
	}
	return 0;
}

TEST_CASE(attach_private_then_detach)
{
	struct posix_backend b;
	struct reimage_error err = { 0 };
	char tree[4096], file[4200];
	void *h = NULL;

	load(&b);
	CU_ASSERT_EQUAL_FATAL(b.ops->image_attach(b.p->ctx, t_path("img.ext4"), "ext4",
						  t_path("mnt"), tree, sizeof(tree), &h, &err), 0);
	snprintf(file, sizeof(file), "%s/etc/os", tree);
	char *text = t_read(file);
	CU_ASSERT(text && strcmp(text, "image\n") == 0);
	free(text);
	/* Mounted read-only, in the helper's namespace only. */
	CU_ASSERT_NOT_EQUAL(t_sh("echo x > '%s/etc/new' 2>/dev/null", tree), 0);
	CU_ASSERT_NOT_EQUAL(t_sh("grep -q ' %s ' /proc/self/mountinfo", t_path("mnt")), 0);
	CU_ASSERT_EQUAL(t_sh("losetup -j '%s' | grep -q .", t_path("img.ext4")), 0);
	b.ops->image_detach(b.p->ctx, h);
	CU_ASSERT(loop_released());
	registry_fini(&b.reg);
}

TEST_CASE(detached_when_the_agent_dies)
{
	struct posix_backend b;
	int ready[2];
	char c;

	load(&b);
	CU_ASSERT_EQUAL_FATAL(pipe(ready), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct reimage_error err = { 0 };
		char tree[4096];
		void *h;
		if (b.ops->image_attach(b.p->ctx, t_path("img.ext4"), "ext4", t_path("mnt"), tree,
					sizeof(tree), &h, &err) < 0)
			_exit(1);
		if (write(ready[1], "k", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	CU_ASSERT_EQUAL_FATAL(read(ready[0], &c, 1), 1);
	close(ready[0]);
	CU_ASSERT_EQUAL(t_sh("losetup -j '%s' | grep -q .", t_path("img.ext4")), 0);
	/* The agent dies without detaching: its helper follows, and the
	 * mount and the loop device go with the helper's namespace. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CU_ASSERT(loop_released());
	registry_fini(&b.reg);
}

TEST_CASE(unknown_kind_named)
{
	struct posix_backend b;
	struct reimage_error err = { 0 };
	char tree[4096];
	void *h = NULL;

	load(&b);
	CU_ASSERT_EQUAL(b.ops->image_attach(b.p->ctx, t_path("img.ext4"), "vhdx", t_path("mnt"),
					    tree, sizeof(tree), &h, &err), -ENOTSUP);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "vhdx images cannot be opened on Linux"));
	registry_fini(&b.reg);
}
