/*
 * backend_sandbox.c -- the built-in "sandbox" backend.  It does the posix
 * backend's real moves and exchanges (plugins/posix/move.c, compiled into
 * the core for this) on a sandbox root, opens file-system images for
 * staging as the posix backend does (plugins/posix/image.c: a private
 * mount namespace changes nothing outside), and records logout, quiesce, label,
 * boot parameters and reboot in a file instead of doing them, so that the
 * whole flow runs in a temporary directory without touching the machine.
 * User notices are recorded too, and written to the terminals `terminals`
 * names (a test's simulated sessions), never to the machine's own users;
 * inhibitors are looked up among the machine's processes (read only).
 * It never fits a real system: backend = "auto" does not choose it.
 */
#include <reimage/plugin.h>
#include "image.h"
#include "move.h"
#include "power.h"
#include "tty.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OPT_RECORD, OPT_POWER_SUPPLY_DIR, OPT_TERMINALS, OPT_COUNT };

static const struct reimage_option sandbox_options[] = {
	[OPT_RECORD] = { "record", REIMAGE_OPT_STRING, NULL, 0, 0,
			 "file the recorded actions are appended to "
			 "(default <root>/.reimage/sandbox.log)" },
	[OPT_POWER_SUPPLY_DIR] = { "power_supply_dir", REIMAGE_OPT_STRING, NULL, 0, 0,
				   "a directory laid out as /sys/class/power_supply that "
				   "PREFLIGHT reads (default: none, power unknown)" },
	[OPT_TERMINALS] = { "terminals", REIMAGE_OPT_STRINGS, "", 0, 0,
			    "terminals (e.g. a test's ptys) standing for logged-in sessions" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

struct sandbox {
	const struct reimage_host *host;
	char record[PATH_MAX];  /* "" until the root is known */
	char power_supply_dir[PATH_MAX];  /* "" if not set */
	struct tty_session *terminals;
	size_t n_terminals;
};

static int sandbox_record(struct sandbox *sb, const char *root, struct reimage_error *err,
			  const char *fmt, const char *arg)
{
	FILE *f;

	if (!sb->record[0] && root &&
	    snprintf(sb->record, sizeof(sb->record), "%s/.reimage/sandbox.log", root) >=
		    (int)sizeof(sb->record)) {
		sb->host->error(err, -ENAMETOOLONG, REIMAGE_EC_IO, "sandbox: record path too long");
		return -ENAMETOOLONG;
	}
	sb->host->log(REIMAGE_LOG_NOTICE, "sandbox: would %s%s%s (recorded, not done)", fmt,
		      arg ? " " : "", arg ? arg : "");
	if (!sb->record[0])
		return 0;
	f = fopen(sb->record, "a");
	if (!f) {
		int e = errno;
		sb->host->error(err, -e, REIMAGE_EC_IO, "sandbox: open %s: %s", sb->record, strerror(e));
		return -e;
	}
	fprintf(f, "%s%s%s\n", fmt, arg ? " " : "", arg ? arg : "");
	fclose(f);
	return 0;
}

static int sandbox_probe(void)
{
	return 0;
}

static int sandbox_init(const struct reimage_host *host, const struct reimage_optval *values,
			void **ret_ctx, struct reimage_error *err)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	sb->host = host;
	if (values && values[OPT_RECORD].set)
		snprintf(sb->record, sizeof(sb->record), "%s", values[OPT_RECORD].s);
	if (values && values[OPT_POWER_SUPPLY_DIR].set)
		snprintf(sb->power_supply_dir, sizeof(sb->power_supply_dir), "%s",
			 values[OPT_POWER_SUPPLY_DIR].s);
	if (values && values[OPT_TERMINALS].n > 0) {
		sb->terminals = calloc(values[OPT_TERMINALS].n, sizeof(*sb->terminals));
		if (!sb->terminals) {
			free(sb);
			host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		for (size_t i = 0; i < values[OPT_TERMINALS].n; i++)
			snprintf(sb->terminals[i].path, sizeof(sb->terminals[i].path), "%s",
				 values[OPT_TERMINALS].list[i]);
		sb->n_terminals = values[OPT_TERMINALS].n;
	}
	*ret_ctx = sb;
	return 0;
}

static void sandbox_fini(void *ctx)
{
	struct sandbox *sb = ctx;
	free(sb->terminals);
	free(sb);
}

static int sandbox_prepare(void *ctx, const char *root, struct reimage_error *err)
{
	return sandbox_record(ctx, root, err, "prepare", root);
}

static int sandbox_logout(void *ctx, const char *root, struct reimage_error *err)
{
	return sandbox_record(ctx, root, err, "logout", "users");
}

static int sandbox_quiesce(void *ctx, const char *root, struct reimage_error *err)
{
	return sandbox_record(ctx, root, err, "quiesce", "processes");
}

static int sandbox_move(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	return posix_move(((struct sandbox *)ctx)->host, from, to, err);
}

static int sandbox_exchange(void *ctx, const char *a, const char *b, struct reimage_error *err)
{
	return posix_exchange(((struct sandbox *)ctx)->host, a, b, err);
}

static int sandbox_is_mount(void *ctx, const char *path, struct reimage_error *err)
{
	return posix_is_mount(((struct sandbox *)ctx)->host, path, err);
}

static int sandbox_sync(void *ctx, const char *path, struct reimage_error *err)
{
	return posix_sync(((struct sandbox *)ctx)->host, path, err);
}

static int sandbox_set_label(void *ctx, const char *root, const char *label,
			     struct reimage_error *err)
{
	return sandbox_record(ctx, root, err, "label", label);
}

static int sandbox_set_boot(void *ctx, const struct reimage_boot *boot, struct reimage_error *err)
{
	return sandbox_record(ctx, boot->root, err, "boot",
			      boot->command ? boot->command : boot->kernel ? boot->kernel : "default");
}

static int sandbox_reboot(void *ctx, struct reimage_error *err)
{
	return sandbox_record(ctx, NULL, err, "reboot", NULL);
}

static int sandbox_image_attach(void *ctx, const char *image, const char *kind,
				const char *scratch, char *ret_tree, size_t tree_cap,
				void **ret_handle, struct reimage_error *err)
{
	struct sandbox *sb = ctx;
	return posix_image_attach(sb->host, image, kind, scratch, ret_tree, tree_cap, ret_handle,
				  err);
}

static void sandbox_image_detach(void *ctx, void *handle)
{
	struct sandbox *sb = ctx;
	posix_image_detach(sb->host, handle);
}

static int sandbox_power(void *ctx, struct reimage_error *err)
{
	struct sandbox *sb = ctx;
	(void)err;
	return sb->power_supply_dir[0] ? posix_power(sb->power_supply_dir) : REIMAGE_POWER_UNKNOWN;
}

static int sandbox_notify_users(void *ctx, const struct reimage_notice *n,
				struct reimage_notice_result *ret, struct reimage_error *err)
{
	struct sandbox *sb = ctx;
	char what[64];
	snprintf(what, sizeof(what), "%lld s left, %d deferral(s) left", (long long)n->seconds_left,
		 n->deferrals_left);
	tty_notify(sb->terminals, sb->n_terminals, n, ret);
	return sandbox_record(sb, NULL, err, "notify users:", what);
}

static int sandbox_inhibited(void *ctx, const char *const *processes, char *ret_what,
			     size_t cap, struct reimage_error *err)
{
	struct sandbox *sb = ctx;
	int r = tty_process_running(processes, ret_what, cap);
	if (r < 0) {
		sb->host->error(err, r, REIMAGE_EC_IO, "sandbox: read /proc: %s", strerror(-r));
		return r;
	}
	return r;
}

/* The sandbox does real renames with none of the posix backend's care
 * for a running system: on this machine's own / it would rename the
 * host's top level.  Refused whatever name reaches / (a symlink, a bind
 * mount): compared by device and inode. */
static int sandbox_preflight(void *ctx, const char *root, const struct reimage_boot *boot,
			     struct reimage_error *err)
{
	struct sandbox *sb = ctx;
	struct stat rs, ss;
	(void)boot;
	if (stat("/", &ss) < 0 || stat(root, &rs) < 0) {
		int e = errno;
		sb->host->error(err, -e, REIMAGE_EC_IO, "sandbox: stat %s: %s", root, strerror(e));
		return -e;
	}
	if (rs.st_dev == ss.st_dev && rs.st_ino == ss.st_ino) {
		sb->host->error(err, -EPERM, REIMAGE_EC_UNSUPPORTED,
				"sandbox: root %s is this machine's own /: the sandbox backend "
				"runs only on a sandbox root (a test directory); give --root DIR "
				"or `root` in the job or agent file", root);
		return -EPERM;
	}
	return 0;
}

static const struct reimage_backend_ops sandbox_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_backend_ops),
	.name = "sandbox",
	.caps = REIMAGE_BCAP_EXCHANGE | REIMAGE_BCAP_LABEL | REIMAGE_BCAP_BOOT |
		REIMAGE_BCAP_LOGOUT | REIMAGE_BCAP_QUIESCE | REIMAGE_BCAP_REBOOT |
		REIMAGE_BCAP_IMAGES | REIMAGE_BCAP_GUARD,
	.options = sandbox_options,
	.keep_entries = posix_keep_entries,
	.network_paths = posix_network_paths,
	.probe = sandbox_probe,
	.preflight = sandbox_preflight,
	.init = sandbox_init,
	.fini = sandbox_fini,
	.prepare = sandbox_prepare,
	.logout = sandbox_logout,
	.quiesce = sandbox_quiesce,
	.move = sandbox_move,
	.exchange = sandbox_exchange,
	.is_mount = sandbox_is_mount,
	.sync = sandbox_sync,
	.set_label = sandbox_set_label,
	.set_boot = sandbox_set_boot,
	.reboot = sandbox_reboot,
	.image_kinds = posix_image_kinds,
	.image_attach = sandbox_image_attach,
	.image_detach = sandbox_image_detach,
	.power = sandbox_power,
	.notify_users = sandbox_notify_users,
	.inhibited = sandbox_inhibited,
};

REIMAGE_PLUGIN(sandbox, BACKEND, backend, sandbox_ops)
