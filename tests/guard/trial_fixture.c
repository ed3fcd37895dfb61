/*
 * trial_fixture.c -- see trial_fixture.h.
 */
#define _GNU_SOURCE
#include "trial_fixture.h"
#include "fixture.h"
#include "error.h"
#include "harness.h"
#include "log.h"
#include "move.h"
#include "registry.h"
#include "swap.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUSYBOX "/bin/busybox"

static const char *const keep[] = { "proc", "sys", "dev", "run", "lost+found", NULL };
static const char *const preserve[] = { "home/alice", "etc/hostname", NULL };

void trial_fixture_require(void)
{
	if (!t_is_root())
		t_skip("needs root (chroot, namespaces)");
	if (access(BUSYBOX, X_OK) < 0)
		t_skip("%s is missing (Debian package busybox-static)", BUSYBOX);
}

const struct swap_ctx *trial_ctx(const char *root)
{
	static const struct reimage_host host = {
		.abi_version = REIMAGE_PLUGIN_ABI,
		.struct_size = sizeof(struct reimage_host),
		.error = err_set,
		.log = log_msg,
	};
	static char path[PATH_MAX];
	static struct swap_ctx sc;

	snprintf(path, sizeof(path), "%s", root);
	sc = (struct swap_ctx){ path, &posix_rename_ops, (void *)&host, 0 };
	return &sc;
}

const char *trial_fixture_script(const char *path, const char *text)
{
	static char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p \"$(dirname '%s')\"; printf '%%s' '%s' > '%s'; chmod 755 '%s'", path,
		 text, path, path);
	return cmd;
}

char *trial_fixture_swapped(const char *dir, const char *new_setup, char **ret_new)
{
	struct reimage_error err = { 0 };
	char real_root[PATH_MAX], staging[PATH_MAX + 16], setup[4096];
	struct swap_plan plan;
	struct registry reg;
	struct plugin *sb;
	char *old;

	/* new_setup may be trial_fixture_script()'s buffer, used below too. */
	snprintf(setup, sizeof(setup), "%s", new_setup);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/.reimage/new'", dir), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(dir, real_root));
	snprintf(staging, sizeof(staging), "%s/.reimage/new", real_root);
	fixture_old_root(real_root);
	fixture_new_tree(staging);
	CU_ASSERT_EQUAL_FATAL(t_sh("cp %s '%s/bin/busybox' && cp %s '%s/bin/busybox'", BUSYBOX,
				   real_root, BUSYBOX, staging), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && %s", real_root,
				   trial_fixture_script("sbin/init", TRIAL_OLD_INIT)), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("chmod 700 '%s/.reimage' && cd '%s' && %s", real_root, staging,
				   setup), 0);
	old = fixture_manifest(real_root);
	if (ret_new)
		*ret_new = fixture_manifest(staging);

	CU_ASSERT_EQUAL_FATAL(registry_init(&reg, NULL, &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_backend(&reg, "sandbox", &sb, &err), 0);
	CU_ASSERT_EQUAL_FATAL(plugin_start(sb, &err), 0);
	struct swap_ctx sc = { real_root, sb->desc->backend, sb->ctx, 0 };
	CU_ASSERT_EQUAL_FATAL(swap_plan_build(&sc, keep, preserve, &plan, &err), 0);
	if (swap_run(&sc, &plan, &err) < 0)
		fprintf(stderr, "swap: %s\n", err.msg);
	CU_ASSERT_EQUAL_FATAL(err.code, 0);
	swap_plan_free(&plan);
	registry_fini(&reg);
	return old;
}
