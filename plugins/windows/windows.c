/*
 * windows.c -- the windows backend's ops table, its settings and its
 * entry.  What each hook does lives in move.c (SWAP: moves, deferral to
 * the boot), session.c (QUIESCE), system.c (PREPARE, LABEL, BOOT,
 * REBOOT); every system call goes through sys.c's seam.
 */
#include "winbackend.h"

#include <errno.h>
#include <stdlib.h>


/* Top-level names of a Windows volume that are the machine's, not an
 * image's: the paging, hibernation and crash-dump files, the volume's
 * own records, the boot manager and its BCD store, the recovery tools. */
static const char *const keep_entries[] = {
	"pagefile.sys", "hiberfil.sys", "swapfile.sys", "DumpStack.log", "DumpStack.log.tmp",
	"System Volume Information", "$Recycle.Bin", "$RECYCLE.BIN", "Recovery", "$WinREAgent",
	"Boot", "bootmgr", "BOOTNXT", "Config.Msi", NULL
};

/* The `network` preserve set: files of the old image the new one keeps.
 * The Wi-Fi profiles and the network and profile registry keys are
 * exported by prepare() into .reimage\windows, outside both images. */
static const char *const network_paths[] = {
	"Windows/System32/drivers/etc/hosts", "Windows/System32/drivers/etc/lmhosts", NULL
};

static const struct reimage_option options[] = {
	{ "keep_processes", REIMAGE_OPT_STRINGS, NULL, 0, 0,
	  "executable names (e.g. \"sshd.exe\") QUIESCE never stops, beside the system's own" },
	{ "keep_services", REIMAGE_OPT_STRINGS, NULL, 0, 0,
	  "service names whose processes QUIESCE never stops (e.g. \"Dnscache\", \"sshd\")" },
	{ "grace_seconds", REIMAGE_OPT_INT, "10", 0, 600,
	  "how long QUIESCE waits for each stopped process to end" },
	{ "boot_timeout_seconds", REIMAGE_OPT_INT, "120", 1, 3600,
	  "time allowed to bcdedit, netsh, reg and boot.command" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

static int win_probe(void)
{
	return 10;  /* built for Windows only: this is the machine's OS */
}

static int win_init(const struct reimage_host *host, const struct reimage_optval *values,
		    void **ret_ctx, struct reimage_error *err)
{
	struct win_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	c->host = host;
	c->sys = &win_sys_real;
	c->keep_processes = values[0].list;
	c->keep_services = values[1].list;
	c->grace_ms = values[2].i * 1000;
	c->boot_timeout_ms = values[3].i * 1000;
	c->agent_pid = GetCurrentProcessId();
	*ret_ctx = c;
	return 0;
}

static void win_fini(void *ctx)
{
	free(ctx);
}

static int win_unit_active(void *ctx, const char *unit, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t *w;
	DWORD pid = 0, e;
	int r;

	if ((r = win_utf16(unit, &w, err)) < 0)
		return r;
	e = c->sys->service_pid(c->sys_arg, w, &pid);
	free(w);
	if (e == ERROR_SERVICE_DOES_NOT_EXIST)
		return 0;
	if (e != ERROR_SUCCESS)
		return win_error(c->host, err, e, "service %s", unit);
	return pid != 0;
}

const struct reimage_backend_ops win_backend_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_backend_ops),
	.name = "windows",
	/* No atomic exchange: the core exchanges with three moves. */
	.caps = REIMAGE_BCAP_DEFER | REIMAGE_BCAP_LABEL | REIMAGE_BCAP_BOOT | REIMAGE_BCAP_LOGOUT |
		REIMAGE_BCAP_QUIESCE | REIMAGE_BCAP_REBOOT,
	.options = options,
	.keep_entries = keep_entries,
	.network_paths = network_paths,
	.probe = win_probe,
	.init = win_init,
	.fini = win_fini,
	.prepare = win_prepare,
	.logout = win_logout,
	.quiesce = win_quiesce,
	.move = win_move,
	.is_mount = win_is_mount,
	.sync = win_sync,
	.set_label = win_set_label,
	.set_boot = win_set_boot,
	.reboot = win_reboot,
	.unit_active = win_unit_active,
	.deferred_cancel = win_deferred_cancel,
	.restore = win_restore,
};

REIMAGE_PLUGIN(windows, BACKEND, backend, win_backend_ops)
