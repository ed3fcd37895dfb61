/*
 * test_swap.c -- the engine's swap with the posix backend on a sandbox
 * root whose boot/ is a real tmpfs mount (in a private mount namespace
 * the case creates): the mount stays in place, the new image's boot
 * content is copied into it with the old kept aside, and undo, redo and
 * the commit's clean-up each leave exactly what they should.
 */
#define _GNU_SOURCE
#include "posix_fixture.h"
#include "fsutil.h"
#include "swap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

static const char *const keep[] = { "proc", NULL };

static int scenario(void *arg)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct swap_plan plan;
	char root[4096];

	(void)arg;
	if (t_sh("set -e; r='%s'; mkdir -p $r/boot $r/etc $r/proc $r/.reimage/new/boot/grub "
		 "$r/.reimage/new/etc", t_path("root")) != 0 ||
	    mount("tmpfs", t_path("root/boot"), "tmpfs", 0, "size=4m") < 0)
		return 77;
	CHECK(t_sh("set -e; r='%s'; echo old-kernel > $r/boot/vmlinuz; echo old > $r/etc/os-release; "
		   "echo new-kernel > $r/.reimage/new/boot/vmlinuz; "
		   "echo new-cfg > $r/.reimage/new/boot/grub/grub.cfg; "
		   "echo new > $r/.reimage/new/etc/os-release", t_path("root")) == 0);
	CHECK(realpath(t_path("root"), root) != NULL);
	CHECK(fx_load(&fx, "lock_memory = false;", &err) == 0);
	struct swap_ctx sc = { root, fx.ops, fx.ctx, 0 };
	CHECK(swap_plan_build(&sc, keep, NULL, &plan, &err) == 0);
	CHECK(plan.count[OP_MOUNT] == 1);
	CHECK(plan.n_unapplied == 0);
	CHECK(swap_run(&sc, &plan, &err) == 0);
	if (err.code)
		fprintf(stderr, "swap: %s\n", err.msg);
	swap_plan_free(&plan);
	/* The mount stayed, with the new content; the old waits aside. */
	char boot[4200];
	snprintf(boot, sizeof(boot), "%s/boot", root);
	CHECK(fx.ops->is_mount(fx.ctx, boot, &err) == 1);
	CHECK(fx_content_is(t_path("root/boot/vmlinuz"), "new-kernel\n"));
	CHECK(fx_content_is(t_path("root/boot/grub/grub.cfg"), "new-cfg\n"));
	CHECK(fx_content_is(t_path("root/boot/.reimage-old/vmlinuz"), "old-kernel\n"));
	CHECK(fx_content_is(t_path("root/etc/os-release"), "new\n"));
	/* Undo (a rollback): the old content is back, nothing aside. */
	CHECK(swap_recover(&sc, 1, &err) == 0);
	CHECK(fx_content_is(t_path("root/boot/vmlinuz"), "old-kernel\n"));
	CHECK(!fs_exists(t_path("root/boot/grub")));
	CHECK(!fs_exists(t_path("root/boot/.reimage-old")));
	CHECK(fx_content_is(t_path("root/etc/os-release"), "old\n"));
	/* Redo, then the commit forgets what was aside. */
	CHECK(swap_recover(&sc, 0, &err) == 0);
	CHECK(fx_content_is(t_path("root/boot/vmlinuz"), "new-kernel\n"));
	CHECK(swap_forget_asides(root, &err) == 0);
	CHECK(!fs_exists(t_path("root/boot/.reimage-old")));
	CHECK(fx_content_is(t_path("root/boot/grub/grub.cfg"), "new-cfg\n"));
	if (err.code)
		fprintf(stderr, "error: %s\n", err.msg);
	fx_unload(&fx);
	return fx_failures;
}

TEST_CASE(mounted_boot_refreshed)
{
	if (!t_is_root())
		t_skip("mounts need root");
	CHECK_NS_RESULT(ns_run(0, scenario, NULL, 60));
}
