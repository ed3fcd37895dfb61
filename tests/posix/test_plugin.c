/*
 * test_plugin.c -- the posix plugin as the registry sees it: its table
 * and capabilities, backend = "auto" on Linux, options, PREPARE, and the
 * renames and syncs it delegates to move.c.
 */
#define _GNU_SOURCE
#include "posix_fixture.h"
#include "options.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* mlockall under AddressSanitizer would try to lock its whole shadow
 * memory: the sanitizer build checks PREPARE without the lock. */
#if defined(__SANITIZE_ADDRESS__)
#define LOCK_MEMORY 0
#else
#define LOCK_MEMORY 1
#endif

TEST_CASE(table)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	const struct reimage_optval *keep;

	CU_ASSERT_EQUAL_FATAL(fx_load(&fx, "", &err), 0);
	CU_ASSERT_STRING_EQUAL(fx.ops->name, "posix");
	CU_ASSERT_EQUAL(fx.ops->caps,
			REIMAGE_BCAP_EXCHANGE | REIMAGE_BCAP_LABEL | REIMAGE_BCAP_BOOT |
				REIMAGE_BCAP_LOGOUT | REIMAGE_BCAP_QUIESCE | REIMAGE_BCAP_REBOOT |
				REIMAGE_BCAP_MOUNTS | REIMAGE_BCAP_IMAGES | REIMAGE_BCAP_GUARD |
				REIMAGE_BCAP_KEXEC);
	CU_ASSERT_PTR_NOT_NULL(fx.ops->mount_copy);
	CU_ASSERT(strlist_has(fx.ops->image_kinds, "ext4"));
	CU_ASSERT(strlist_has(fx.ops->image_kinds, "raw"));
	CU_ASSERT_PTR_NOT_NULL(fx.ops->image_attach);
	CU_ASSERT_PTR_NOT_NULL(fx.ops->image_detach);
	CU_ASSERT_PTR_NOT_NULL(fx.ops->logout);
	CU_ASSERT_PTR_NOT_NULL(fx.ops->reboot);
	CU_ASSERT(strlist_has(fx.ops->keep_entries, "proc"));
	CU_ASSERT(strlist_has(fx.ops->network_paths, "etc/resolv.conf"));
	CU_ASSERT(fx.ops->probe() > 0);
	/* The default keep-list keeps the machine reachable. */
	keep = &fx.plugin->values[0];
	CU_ASSERT(strlist_has(keep->list, "sshd"));
	CU_ASSERT(strlist_has(keep->list, "ssh.service"));
	CU_ASSERT(strlist_has(keep->list, "systemd-journald"));
	CU_ASSERT(strlist_has(keep->list, "NetworkManager"));
	fx_unload(&fx);
}

TEST_CASE(auto_probe)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;

	CU_ASSERT_EQUAL_FATAL(fx_load(&fx, "", &err), 0);
	CU_ASSERT_EQUAL(registry_backend(&fx.reg, "auto", &p, &err), 0);
	CU_ASSERT(p && strcmp(p->name, "posix") == 0);
	fx_unload(&fx);
}

TEST_CASE(bad_options)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	CU_ASSERT(fx_load(&fx, "keep_processes = [\"sshd\", \"\"];", &err) < 0);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "keep_processes: empty name"));
	fx_unload(&fx);
}

/* /proc files have no size: read line by line, not with t_read(). */
static long locked_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmLck:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb;
}

TEST_CASE(prepare)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	struct sigaction hup;
	char conf[64];

	snprintf(conf, sizeof(conf), "lock_memory = %s;", LOCK_MEMORY ? "true" : "false");
	CU_ASSERT_EQUAL_FATAL(fx_load(&fx, conf, &err), 0);
	CU_ASSERT_EQUAL(fx.ops->prepare(fx.ctx, t_dir(), &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	CU_ASSERT_EQUAL(sigaction(SIGHUP, NULL, &hup), 0);
	CU_ASSERT(hup.sa_handler == SIG_IGN);
	if (LOCK_MEMORY)
		CU_ASSERT(locked_kb() > 0);
	/* The root's volume is synced through the descriptor opened above. */
	CU_ASSERT_EQUAL(fx.ops->sync(fx.ctx, t_dir(), &err), 0);
	munlockall();
	fx_unload(&fx);
}

TEST_CASE(renames)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	CU_ASSERT_EQUAL_FATAL(fx_load(&fx, "", &err), 0);
	fx_check_renames(&fx);
	fx_unload(&fx);
}
