/*
 * test_plugin.c -- the built macos module as the registry loads it on
 * Linux: its ABI, name, table and capabilities, options and their
 * errors, that it never fits a system that is not a Mac, its swap
 * renames through the real seam on temporary directories (Linux's
 * renameat2 has renamex_np's contract), and its network preserve set on a
 * root laid out as macOS lays it out.
 */
#define _GNU_SOURCE
#include "posix/posix_fixture.h"
#include "options.h"
#include "preserve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST_CASE(table)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	const struct reimage_optval *keep;

	CU_ASSERT_EQUAL_FATAL(fx_load_backend(&fx, "macos", NULL, "", &err), 0);
	/* Loaded from the module file, not linked in. */
	CU_ASSERT_PTR_NOT_NULL(strstr(fx.plugin->file, "/plugins/macos.so"));
	CU_ASSERT_EQUAL(fx.plugin->desc->abi_version, REIMAGE_PLUGIN_ABI);
	CU_ASSERT_EQUAL(fx.ops->abi_version, REIMAGE_PLUGIN_ABI);
	CU_ASSERT_EQUAL(fx.ops->struct_size, sizeof(struct reimage_backend_ops));
	CU_ASSERT_STRING_EQUAL(fx.ops->name, "macos");
	CU_ASSERT_EQUAL(fx.ops->caps,
			REIMAGE_BCAP_EXCHANGE | REIMAGE_BCAP_LABEL | REIMAGE_BCAP_BOOT |
				REIMAGE_BCAP_LOGOUT | REIMAGE_BCAP_QUIESCE | REIMAGE_BCAP_REBOOT);
	CU_ASSERT(OPS_HAS(fx.ops, struct reimage_backend_ops, preflight));
	CU_ASSERT(!OPS_HAS(fx.ops, struct reimage_backend_ops, image_attach));
	CU_ASSERT(OPS_HAS(fx.ops, struct reimage_backend_ops, unit_active));
	CU_ASSERT(OPS_HAS(fx.ops, struct reimage_backend_ops, accounts_list));
	CU_ASSERT(OPS_HAS(fx.ops, struct reimage_backend_ops, accounts_copy));
	CU_ASSERT_PTR_NULL(fx.ops->mount_copy);
	CU_ASSERT(fx.ops->prepare && fx.ops->logout && fx.ops->quiesce && fx.ops->exchange &&
		  fx.ops->set_label && fx.ops->set_boot && fx.ops->reboot);
	CU_ASSERT(strlist_has(fx.ops->keep_entries, "Volumes"));
	CU_ASSERT(strlist_has(fx.ops->keep_entries, "dev"));
	CU_ASSERT(strlist_has(fx.ops->network_paths, "Library/Preferences/SystemConfiguration"));
	CU_ASSERT(strlist_has(fx.ops->network_paths, "Library/Keychains/System.keychain"));
	CU_ASSERT(strlist_has(fx.ops->network_paths, "private/var/db/SystemKey"));
	/* Not a Mac: it never fits, backend = "auto" passes it by. */
	CU_ASSERT_EQUAL(fx.ops->probe(), 0);
	keep = &fx.plugin->values[0];
	CU_ASSERT(strlist_has(keep->list, "sshd"));
	CU_ASSERT(strlist_has(keep->list, "configd"));
	CU_ASSERT(strlist_has(keep->list, "mDNSResponder"));
	CU_ASSERT(strlist_has(keep->list, "diskarbitrationd"));
	CU_ASSERT_STRING_EQUAL(fx.plugin->values[3].s, "auto");
	fx_unload(&fx);
}

TEST_CASE(bad_bless_option)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	CU_ASSERT(fx_load_backend(&fx, "macos", NULL, "\n\nbless = \"sometimes\";", &err) < 0);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ".conf:3: bless: expected \"auto\", \"folder\" or "
					       "\"mount\""));
	fx_unload(&fx);
}

TEST_CASE(bad_keep_option)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	CU_ASSERT(fx_load_backend(&fx, "macos", NULL, "keep_processes = [\"sshd\", \"\"];", &err) < 0);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ":1: keep_processes: empty name"));
	fx_unload(&fx);
}

TEST_CASE(renames)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	CU_ASSERT_EQUAL_FATAL(fx_load_backend(&fx, "macos", NULL, "", &err), 0);
	fx_check_renames(&fx);
	fx_unload(&fx);
}

TEST_CASE(acts_only_on_a_mac)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	/* The calls only macOS has are refused on Linux, clearly: the
	 * machine is never rebooted, no process is listed or stopped. */
	CU_ASSERT_EQUAL_FATAL(fx_load_backend(&fx, "macos", NULL, "", &err), 0);
	CU_ASSERT_EQUAL(fx.ops->reboot(fx.ctx, &err), -ENOTSUP);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_UNSUPPORTED);
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(fx.ops->quiesce(fx.ctx, "/", &err), -ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "quiesce: list processes"));
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(fx.ops->preflight(fx.ctx, t_dir(), NULL, &err), -ENOTSUP);
	fx_unload(&fx);
}

TEST_CASE(network_set)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct preserve_set set;
	static struct job job;
	const char *root = t_path("root");
	const char *want[] = { "Library/Keychains/System.keychain",
			       "Library/Preferences/SystemConfiguration", "private/etc/hosts",
			       "private/etc/ssh/ssh_host_ed25519_key",
			       "private/etc/ssh/ssh_host_ed25519_key.pub", "private/var/db/SystemKey" };

	/* A root laid out as macOS lays it out, /etc a symlink into private/:
	 * the backend's network set finds every file through private/. */
	CU_ASSERT_EQUAL_FATAL(fx_load_backend(&fx, "macos", NULL, "", &err), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; R='%s'; mkdir -p \"$R\"; cd \"$R\"\n"
		"mkdir -p Library/Preferences/SystemConfiguration Library/Keychains private/etc/ssh "
		"private/var/db; ln -s private/etc etc; ln -s private/var var\n"
		"touch Library/Preferences/SystemConfiguration/preferences.plist "
		"Library/Keychains/System.keychain Library/Keychains/apsd.keychain "
		"private/var/db/SystemKey private/etc/hosts private/etc/ssh/ssh_host_ed25519_key "
		"private/etc/ssh/ssh_host_ed25519_key.pub private/etc/ssh/sshd_config",
		root), 0);
	memset(&job, 0, sizeof(job));
	job.preserve_network = 1;
	CU_ASSERT_EQUAL_FATAL(preserve_collect(&job, root, NULL, fx.ops->network_paths, fx.plugin,
					       &set, &err), 0);
	CU_ASSERT_EQUAL(set.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < set.n && i < sizeof(want) / sizeof(want[0]); i++)
		CU_ASSERT_STRING_EQUAL(set.paths[i], want[i]);
	preserve_free(&set);
	fx_unload(&fx);
}
