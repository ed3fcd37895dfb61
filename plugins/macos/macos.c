/*
 * macos.c -- the "macos" backend: macOS semantics for the engine.  This
 * file holds the ops table, the options, init/fini, probe, PREPARE, the
 * swap's renames and sync, and REBOOT; the other phases live in their
 * own files:
 *
 *   sys.c     the one seam to the OS: programs, renamex_np, statfs,
 *             libproc, F_FULLFSYNC, reboot (fakes replace it in tests)
 *   sealed.c  PREFLIGHT: refuse a read-only or sealed system volume
 *             (Signed System Volume, SIP) before anything is staged
 *   procs.c   QUIESCE: logout (launchctl bootout) and stopping processes
 *   boot.c    LABEL (diskutil rename) and BOOT (bless)
 *   accounts.c  users kept in Open Directory's local node (dscl)
 *   units.c   TRIAL: is a launchd job running (launchctl print)
 *
 * The plugin builds on every system (the tests run on Linux); it fits
 * (probe) and acts on macOS only.
 */
#define _GNU_SOURCE
#include "macos.h"
#include "backend_util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/*
 * The processes quiesce leaves running by default: what keeps the Mac
 * reachable and able to run BOOT's bless until the reboot -- launchd's
 * system daemons for logging, configuration and the network (configd,
 * mDNSResponder for DNS, Wi-Fi), the directory service, disk arbitration
 * and disk management (diskutil, bless), the keychain and trust daemons,
 * power management, and sshd for the administrator.  launchd (PID 1),
 * kernel_task (PID 0), the agent and its ancestors are never stopped
 * whatever the list says.  Names are what libproc's proc_name() gives.
 */
#define MACOS_DEFAULT_KEEP                                                              \
	"logd,syslogd,configd,notifyd,distnoted,mDNSResponder,mDNSResponderHelper,"      \
	"airportd,wifid,opendirectoryd,diskarbitrationd,diskmanagementd,storagekitd,"   \
	"securityd,trustd,powerd,fseventsd,apfsd,UserEventAgent,sshd,sshd-session,"     \
	"sshd-keygen-wrapper,reimage"

static const struct reimage_option macos_options[] = {
	[MACOS_OPT_KEEP_PROCESSES] = {
		"keep_processes", REIMAGE_OPT_STRINGS, MACOS_DEFAULT_KEEP, 0, 0,
		"processes quiesce never stops (process names); replaces the default list" },
	[MACOS_OPT_GRACE_SECONDS] = {
		"grace_seconds", REIMAGE_OPT_INT, "10", 0, 600,
		"seconds between SIGTERM and SIGKILL when stopping processes" },
	[MACOS_OPT_COMMAND_TIMEOUT] = {
		"command_timeout", REIMAGE_OPT_INT, "300", 1, 3600,
		"seconds a program (diskutil, bless, launchctl, the boot command) may run "
		"before it is killed" },
	[MACOS_OPT_BLESS] = {
		"bless", REIMAGE_OPT_STRING, "auto", 0, 0,
		"how BOOT blesses the new image: \"folder\" (bless --folder "
		"ROOT/System/Library/CoreServices), \"mount\" (bless --mount ROOT), or "
		"\"auto\" (folder where the new image has one, else mount)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

/* Top-level names never swapped: devfs, the mount points of other
 * volumes and of the automounter, and the volume's own bookkeeping
 * (Spotlight, FSEvents, versions, trash). */
static const char *const macos_keep_entries[] = {
	"dev", "Volumes", "home", "net", "cores", ".vol", ".fseventsd", ".Spotlight-V100",
	".DocumentRevisions-V100", ".Trashes", ".TemporaryItems", ".MobileBackups", NULL
};

/*
 * The `network` preserve set.  /etc and /var are symlinks into /private,
 * and preserve never follows a symlink inside a path, so the paths name
 * private/ itself.  SystemConfiguration holds the network services,
 * interfaces, locations, the computer name and the known Wi-Fi networks;
 * their passwords (and 802.1X, VPN secrets) are in the System keychain,
 * which opens with the key in /var/db/SystemKey: both travel together.
 * Each user's own keychains live in their home folder and travel with it.
 */
static const char *const macos_network_paths[] = {
	"Library/Preferences/SystemConfiguration",
	"Library/Keychains/System.keychain",
	"private/var/db/SystemKey",
	"private/etc/hosts",
	"private/etc/resolver",
	"private/etc/ssh/ssh_host_*",
	NULL
};

int macos_fail(const struct macos *mc, struct reimage_error *err, int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = backend_vfail(mc->host, err, e, fmt, ap);
	va_end(ap);
	return r;
}

/* The last non-empty line of a program's output: where it says why. */
static const char *last_line(struct macos_output *out)
{
	while (out->len && (out->text[out->len - 1] == '\n' || out->text[out->len - 1] == ' '))
		out->text[--out->len] = '\0';
	char *nl = strrchr(out->text, '\n');
	return nl ? nl + 1 : out->text;
}

int macos_run(struct macos *mc, const char *what, const char *const argv[],
	      struct macos_output *out, struct reimage_error *err)
{
	static const char *const envp[] = { "PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C",
					    "LC_ALL=C", NULL };
	return macos_run_env(mc, what, argv, envp, out, err);
}

int macos_run_env(struct macos *mc, const char *what, const char *const argv[],
		  const char *const envp[], struct macos_output *out, struct reimage_error *err)
{
	struct macos_output *own = NULL;
	char cmd[512] = "";
	int status, r = 0;

	if (!out && !(out = own = malloc(sizeof(*own))))
		return macos_fail(mc, err, ENOMEM, "%s", what);
	for (size_t i = 0, n = 0; argv[i] && n < sizeof(cmd); i++)
		n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "%s%s", i ? " " : "", argv[i]);
	status = mc->sys->run(mc->sys, argv, envp, mc->command_timeout, out);
	if (status == -ETIMEDOUT) {
		mc->host->error(err, -ETIMEDOUT, REIMAGE_EC_IO,
				"%s: '%s' still ran after %d s and was killed", what, cmd,
				mc->command_timeout);
		r = -ETIMEDOUT;
	} else if (status < 0) {
		r = macos_fail(mc, err, -status, "%s: cannot run %s", what, argv[0]);
	} else if (status != 0) {
		mc->host->error(err, -EIO, REIMAGE_EC_IO, "%s: '%s' exited with status %d: %s", what,
				cmd, status, last_line(out));
		r = -EIO;
	}
	free(own);
	return r;
}

/* macOS is the system with renamex_np; elsewhere the plugin never fits. */
static int macos_probe(void)
{
#ifdef __APPLE__
	return 10;
#else
	return 0;
#endif
}

static void macos_fini(void *ctx)
{
	struct macos *mc = ctx;

	if (!mc)
		return;
	backend_free_names(mc->keep);
	free(mc);
}

static int macos_init(const struct reimage_host *host, const struct reimage_optval *values,
		      void **ret_ctx, struct reimage_error *err)
{
	const struct reimage_optval *bless = &values[MACOS_OPT_BLESS];
	struct macos *mc = calloc(1, sizeof(*mc));
	int r;

	if (!mc) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	mc->host = host;
	mc->sys = &macos_sys_real;
	mc->grace_seconds = (int)values[MACOS_OPT_GRACE_SECONDS].i;
	mc->command_timeout = (int)values[MACOS_OPT_COMMAND_TIMEOUT].i;
	snprintf(mc->bless, sizeof(mc->bless), "%s", MACOS_BLESS);
	if (strcmp(bless->s, "auto") != 0 && strcmp(bless->s, "folder") != 0 &&
	    strcmp(bless->s, "mount") != 0) {
		host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
			    "%s:%d: bless: expected \"auto\", \"folder\" or \"mount\"",
			    bless->file ? bless->file : "(default)", bless->line);
		r = -EINVAL;
	} else {
		/* Copied: the configuration may be released before the plugin is. */
		r = backend_copy_names(host, &values[MACOS_OPT_KEEP_PROCESSES], "keep_processes",
				       &mc->keep, err);
	}
	if (r < 0) {
		macos_fini(mc);
		return r;
	}
	snprintf(mc->bless_mode, sizeof(mc->bless_mode), "%s", bless->s);
	*ret_ctx = mc;
	return 0;
}

/*
 * PREPARE.  The plugin is bound at load (-bind_at_load on macOS); pages
 * of the agent's files need no lock: their inodes live on under
 * .reimage/old after the swap.  SIGHUP is ignored (the administrator's
 * terminal may go with its session in QUIESCE), and bless, which BOOT
 * runs after the swap, is copied to a private place on the root's volume
 * now, while /usr/sbin is still the old image's whole one.
 */
static int macos_prepare(void *ctx, const char *root, struct reimage_error *err)
{
	struct macos *mc = ctx;
	struct sigaction ignore = { .sa_handler = SIG_IGN };
	char dir[PATH_MAX], copy[PATH_MAX];
	int r;

	if (sigaction(SIGHUP, &ignore, NULL) < 0)
		return macos_fail(mc, err, errno, "ignore SIGHUP");
	if (snprintf(dir, sizeof(dir), "%s/%s", strcmp(root, "/") ? root : "", MACOS_TOOLS_DIR) >=
		    (int)sizeof(dir) ||
	    snprintf(copy, sizeof(copy), "%s/bless", dir) >= (int)sizeof(copy))
		return macos_fail(mc, err, ENAMETOOLONG, "prepare %s", root);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return macos_fail(mc, err, errno, "prepare: create %s", dir);
	if ((r = mc->sys->copy_file(mc->sys, MACOS_BLESS, copy, 0700)) < 0)
		return macos_fail(mc, err, -r, "prepare: copy %s to %s (BOOT runs it after the swap)",
				  MACOS_BLESS, copy);
	snprintf(mc->bless, sizeof(mc->bless), "%s", copy);
	return 0;
}

static int macos_move(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	struct macos *mc = ctx;
	int r = mc->sys->rename_excl(mc->sys, from, to);
	return r < 0 ? macos_fail(mc, err, -r, "move %s to %s", from, to) : 0;
}

static int macos_exchange(void *ctx, const char *a, const char *b, struct reimage_error *err)
{
	struct macos *mc = ctx;
	int r = mc->sys->rename_swap(mc->sys, a, b);
	return r < 0 ? macos_fail(mc, err, -r, "exchange %s and %s", a, b) : 0;
}

/* A mount point is on another device than its parent (or is the root
 * of one, its own parent). */
static int macos_is_mount(void *ctx, const char *path, struct reimage_error *err)
{
	struct macos *mc = ctx;
	char parent[PATH_MAX];
	struct stat st, pst;

	if (lstat(path, &st) < 0)
		return macos_fail(mc, err, errno, "stat %s", path);
	if (!S_ISDIR(st.st_mode))
		return 0;
	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(parent, &pst) < 0)
		return macos_fail(mc, err, errno, "stat %s", parent);
	return st.st_dev != pst.st_dev || st.st_ino == pst.st_ino;
}

static int macos_sync(void *ctx, const char *path, struct reimage_error *err)
{
	struct macos *mc = ctx;
	int r = mc->sys->full_sync(mc->sys, path);
	return r < 0 ? macos_fail(mc, err, -r, "sync %s", path) : 0;
}

/* REBOOT: the reboot system call, never a program (the old image's
 * shutdown is gone).  Returns only on failure. */
static int macos_reboot(void *ctx, struct reimage_error *err)
{
	struct macos *mc = ctx;
	return macos_fail(mc, err, -mc->sys->reboot(mc->sys), "reboot");
}

static const struct reimage_backend_ops macos_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_backend_ops),
	.name = "macos",
	.caps = REIMAGE_BCAP_EXCHANGE | REIMAGE_BCAP_LABEL | REIMAGE_BCAP_BOOT |
		REIMAGE_BCAP_LOGOUT | REIMAGE_BCAP_QUIESCE | REIMAGE_BCAP_REBOOT,
	.options = macos_options,
	.keep_entries = macos_keep_entries,
	.network_paths = macos_network_paths,
	.probe = macos_probe,
	.init = macos_init,
	.fini = macos_fini,
	.prepare = macos_prepare,
	.logout = macos_logout,
	.quiesce = macos_quiesce,
	.move = macos_move,
	.exchange = macos_exchange,
	.is_mount = macos_is_mount,
	.sync = macos_sync,
	.set_label = macos_set_label,
	.set_boot = macos_set_boot,
	.reboot = macos_reboot,
	.unit_active = macos_unit_active,
	.preflight = macos_preflight,
	.accounts_list = macos_accounts_list,
	.accounts_copy = macos_accounts_copy,
};

REIMAGE_PLUGIN(macos, BACKEND, backend, macos_ops)
