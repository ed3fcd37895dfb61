/*
 * posix.c -- the "posix" backend: Linux semantics for the engine.  This
 * file holds the ops table, the options, init/fini, probe, PREPARE and
 * REBOOT; the other phases live in their own files:
 *
 *   move.c     renames of the swap (shared with the core's sandbox backend)
 *   procs.c    reading /proc and stopping processes (TERM, grace, KILL)
 *   logout.c   ending user sessions (logind, then by process)
 *   quiesce.c  stopping every process the machine does not need
 *   mounts.c   refreshing a mounted top-level directory (a separate /boot)
 *   label.c    the volume label (FS_IOC_SETFSLABEL)
 *   boot.c     boot parameters: a command of the new image, or kexec
 *
 * The plugin is built on Linux only (renameat2, pidfd, FS_IOC_SETFSLABEL,
 * kexec_file_load); other POSIX systems get their own backend.
 */
#define _GNU_SOURCE
#include "posix.h"
#include "backend_util.h"
#include "image.h"
#include "move.h"
#include "power.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/reboot.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/reboot.h>


/*
 * The processes quiesce leaves running by default: what keeps the machine
 * reachable and logging until the reboot -- the journal, udev, D-Bus and
 * logind, the network (networkd, resolved for DNS, NetworkManager, Wi-Fi,
 * DHCP clients), sshd for the administrator, and the agent's own unit.
 * Getty and display managers are not kept: they belong to user sessions.
 * An entry ending in ".service" or ".scope" names a systemd unit, any
 * other a process name (comm, cut to 15 characters as the kernel does).
 */
#define POSIX_DEFAULT_KEEP                                                              \
	"systemd-journald,systemd-journald.service,systemd-udevd,systemd-udevd.service," \
	"systemd-logind,dbus-daemon,dbus-broker,dbus.service,systemd-networkd,"           \
	"systemd-resolved,NetworkManager,wpa_supplicant,iwd,dhclient,dhcpcd,"             \
	"sshd,ssh.service,sshd.service,reimage.service"

static const struct reimage_option posix_options[] = {
	[POSIX_OPT_KEEP_PROCESSES] = {
		"keep_processes", REIMAGE_OPT_STRINGS, POSIX_DEFAULT_KEEP, 0, 0,
		"processes quiesce never stops: names (comm) or systemd units "
		"(\"ssh.service\"); replaces the default list" },
	[POSIX_OPT_GRACE_SECONDS] = {
		"grace_seconds", REIMAGE_OPT_INT, "10", 0, 600,
		"seconds between SIGTERM and SIGKILL when stopping processes" },
	[POSIX_OPT_USE_LOGIND] = {
		"use_logind", REIMAGE_OPT_BOOL, "true", 0, 0,
		"end user sessions through logind where systemd is PID 1" },
	[POSIX_OPT_LOCK_MEMORY] = {
		"lock_memory", REIMAGE_OPT_BOOL, "true", 0, 0,
		"lock the agent's memory in PREPARE (mlockall) so that no page "
		"is read back from the old image" },
	[POSIX_OPT_BOOT_TIMEOUT] = {
		"boot_timeout", REIMAGE_OPT_INT, "300", 1, 3600,
		"seconds the job's boot command may run before it is killed" },
	[POSIX_OPT_POWER_SUPPLY_DIR] = {
		"power_supply_dir", REIMAGE_OPT_STRING, POSIX_POWER_SUPPLY_DIR, 0, 0,
		"where PREFLIGHT reads the power supplies (AC or battery)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

int posix_fail(const struct posix *px, struct reimage_error *err, int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = backend_vfail(px->host, err, e, fmt, ap);
	va_end(ap);
	return r;
}

int posix_root_fd(struct posix *px, const char *root, int *ret_owned,
		  struct reimage_error *err)
{
	int fd;

	if (px->root_fd >= 0 && strcmp(px->root, root) == 0) {
		*ret_owned = 0;
		return px->root_fd;
	}
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return posix_fail(px, err, errno, "open root %s", root);
	*ret_owned = 1;
	return fd;
}

int posix_proc_fd(struct posix *px, struct reimage_error *err)
{
	if (px->proc_fd < 0) {
		px->proc_fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (px->proc_fd < 0)
			return posix_fail(px, err, errno, "open /proc");
	}
	return px->proc_fd;
}

/* The plugin is only built for Linux; it fits wherever /proc is there,
 * which quiesce and logout need. */
static int posix_probe(void)
{
	return access("/proc/self/stat", R_OK) == 0 ? 10 : 0;
}

static void posix_fini(void *ctx)
{
	struct posix *px = ctx;

	if (!px)
		return;
	backend_free_names(px->keep);
	free(px->power_supply_dir);
	if (px->root_fd >= 0)
		close(px->root_fd);
	if (px->proc_fd >= 0)
		close(px->proc_fd);
	if (px->null_fd >= 0)
		close(px->null_fd);
	free(px);
}

static int posix_init(const struct reimage_host *host, const struct reimage_optval *values,
		      void **ret_ctx, struct reimage_error *err)
{
	struct posix *px = calloc(1, sizeof(*px));
	int r;

	if (!px) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	px->host = host;
	px->root_fd = px->proc_fd = px->null_fd = -1;
	px->grace_seconds = (int)values[POSIX_OPT_GRACE_SECONDS].i;
	px->use_logind = (int)values[POSIX_OPT_USE_LOGIND].i;
	px->lock_memory = (int)values[POSIX_OPT_LOCK_MEMORY].i;
	px->boot_timeout = (int)values[POSIX_OPT_BOOT_TIMEOUT].i;
	/* Copied: the configuration may be released before the plugin is. */
	px->power_supply_dir = strdup(values[POSIX_OPT_POWER_SUPPLY_DIR].s);
	r = px->power_supply_dir
		    ? backend_copy_names(host, &values[POSIX_OPT_KEEP_PROCESSES], "keep_processes",
					 &px->keep, err)
		    : posix_fail(px, err, ENOMEM, "power_supply_dir");
	if (r < 0) {
		posix_fini(px);
		return r;
	}
	*ret_ctx = px;
	return 0;
}

/*
 * PREPARE.  Plugins are already bound (modules are linked -z now); here
 * the memory is locked so that no page of the agent is paged in from the
 * old image's files after the swap, the descriptors later hooks need are
 * opened, and SIGHUP is ignored (the administrator's terminal may go away
 * with its session in QUIESCE).
 */
static int posix_prepare(void *ctx, const char *root, struct reimage_error *err)
{
	struct posix *px = ctx;
	struct sigaction ignore = { .sa_handler = SIG_IGN };
	int r;

	if (px->lock_memory && mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		px->host->log(REIMAGE_LOG_WARNING,
			      "posix: cannot lock memory (%s); pages may be read back from the "
			      "old image after the swap", strerror(errno));
	if (sigaction(SIGHUP, &ignore, NULL) < 0)
		return posix_fail(px, err, errno, "ignore SIGHUP");
	if ((r = posix_proc_fd(px, err)) < 0)
		return r;
	if (px->null_fd < 0) {
		px->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (px->null_fd < 0)
			return posix_fail(px, err, errno, "open /dev/null");
	}
	if (px->root_fd >= 0)
		close(px->root_fd);
	px->root_fd = -1;
	if (snprintf(px->root, sizeof(px->root), "%s", root) >= (int)sizeof(px->root))
		return posix_fail(px, err, ENAMETOOLONG, "root %s", root);
	px->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (px->root_fd < 0)
		return posix_fail(px, err, errno, "open root %s", root);
	return 0;
}

static int posix_move_hook(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	return posix_move(((struct posix *)ctx)->host, from, to, err);
}

static int posix_exchange_hook(void *ctx, const char *a, const char *b, struct reimage_error *err)
{
	return posix_exchange(((struct posix *)ctx)->host, a, b, err);
}

static int posix_is_mount_hook(void *ctx, const char *path, struct reimage_error *err)
{
	return posix_is_mount(((struct posix *)ctx)->host, path, err);
}

/* The root's volume is synced through the descriptor prepare() opened:
 * it names the filesystem itself, whatever the path resolves to now. */
static int posix_sync_hook(void *ctx, const char *path, struct reimage_error *err)
{
	struct posix *px = ctx;

	if (px->root_fd >= 0 && strcmp(px->root, path) == 0) {
		if (syncfs(px->root_fd) < 0)
			return posix_fail(px, err, errno, "sync %s", path);
		return 0;
	}
	return posix_sync(px->host, path, err);
}

/*
 * REBOOT: sync, then the reboot system call -- never a program of the old
 * image (it is gone).  The root's filesystem is frozen first (FIFREEZE):
 * ext4, xfs and btrfs then write back their journal and mark themselves
 * clean, as the unmount of a shutdown would, so the next boot does not
 * replay the journal (seconds on a small VM).  A kernel set_boot() loaded
 * is started with kexec, which skips the firmware.  Returns only on
 * failure, the filesystem thawed.
 */
static int posix_reboot(void *ctx, struct reimage_error *err)
{
	struct posix *px = ctx;
	int frozen = 0, e;

	sync();
	if (px->root_fd >= 0) {
		if (ioctl(px->root_fd, FIFREEZE, 0) == 0)
			frozen = 1;
		else
			px->host->log(REIMAGE_LOG_INFO, "posix: reboot: %s not frozen (%s): the "
				      "next boot may replay its journal", px->root, strerror(errno));
	}
	if (px->kexec_loaded && reboot(LINUX_REBOOT_CMD_KEXEC) < 0)
		px->host->log(REIMAGE_LOG_WARNING, "posix: kexec reboot failed (%s); rebooting "
			      "through the firmware", strerror(errno));
	reboot(RB_AUTOBOOT);
	e = errno;
	if (frozen)
		ioctl(px->root_fd, FITHAW, 0);
	return posix_fail(px, err, e, "reboot");
}

/*
 * The contract of each hook is in include/reimage/plugin.h; what this
 * backend does on top of it:
 *
 * logout    logind's user sessions (Class=user) are terminated over D-Bus
 *           when systemd is PID 1 and use_logind is set -- except the
 *           caller's own session; then every process of a login user
 *           (loginuid set, or a uid of an ordinary user, 1000..59999) is
 *           stopped as quiesce stops processes.
 * quiesce   every process except PID 1, kernel threads, the caller and
 *           its ancestors and keep_processes: SIGTERM, grace_seconds,
 *           SIGKILL, at most 5 s more, up to 4 rounds for processes
 *           started meanwhile.  A process that outlives SIGKILL (stuck in
 *           the kernel) is logged, not an error.  Processes a service
 *           manager restarts after the last round are left running.
 *           Both refuse (EC_STATE) unless /proc shows the caller's own pid
 *           namespace.
 * mount_copy  aside MUST be on the mount's filesystem (normally
 *           mount/.reimage-old) and empty or missing.  Every entry of the
 *           mount except aside and lost+found is renamed into aside, then
 *           staged is copied in (owner, mode, times, symlinks, device
 *           nodes, FIFOs; not hard links, ACLs or xattrs), then the
 *           filesystem is synced.  On failure the copy is removed and the
 *           old entries are renamed back, so the mount is as it was.
 * mount_restore  the rollback of mount_copy after its success: remove the
 *           mount's entries (but aside and lost+found), rename aside's
 *           entries back, remove aside, sync.
 * set_label FS_IOC_SETFSLABEL on root (ext4, btrfs, xfs); other
 *           filesystems fail with EC_UNSUPPORTED.
 * set_boot  boot->command runs as `/bin/sh -c COMMAND` chrooted into
 *           boot->root (it is a program of the new image), with
 *           REIMAGE_ONE_SHOT, REIMAGE_KERNEL, REIMAGE_INITRD and
 *           REIMAGE_CMDLINE in its environment, killed after
 *           boot_timeout.  boot->kernel (or boot.kexec's boot/vmlinuz;
 *           with initrd, cmdline: default the running kernel's) is then
 *           loaded with kexec_file_load, and reboot() starts it.
 * reboot    sync(), the root's filesystem frozen (journal clean), kexec if a
 *           kernel was loaded, else reboot(RB_AUTOBOOT).
 */
static int posix_image_attach_hook(void *ctx, const char *image, const char *kind,
				   const char *scratch, char *ret_tree, size_t tree_cap,
				   void **ret_handle, struct reimage_error *err)
{
	struct posix *px = ctx;
	return posix_image_attach(px->host, image, kind, scratch, ret_tree, tree_cap, ret_handle,
				  err);
}

static void posix_image_detach_hook(void *ctx, void *handle)
{
	struct posix *px = ctx;
	posix_image_detach(px->host, handle);
}

static int posix_power_hook(void *ctx, struct reimage_error *err)
{
	struct posix *px = ctx;
	(void)err;
	return posix_power(px->power_supply_dir);
}

static const struct reimage_backend_ops posix_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_backend_ops),
	.name = "posix",
	.caps = REIMAGE_BCAP_EXCHANGE | REIMAGE_BCAP_LABEL | REIMAGE_BCAP_BOOT |
		REIMAGE_BCAP_LOGOUT | REIMAGE_BCAP_QUIESCE | REIMAGE_BCAP_REBOOT |
		REIMAGE_BCAP_MOUNTS | REIMAGE_BCAP_IMAGES | REIMAGE_BCAP_GUARD | REIMAGE_BCAP_KEXEC,
	.options = posix_options,
	.keep_entries = posix_keep_entries,
	.network_paths = posix_network_paths,
	.probe = posix_probe,
	.init = posix_init,
	.fini = posix_fini,
	.prepare = posix_prepare,
	.logout = posix_logout,
	.quiesce = posix_quiesce,
	.move = posix_move_hook,
	.exchange = posix_exchange_hook,
	.is_mount = posix_is_mount_hook,
	.sync = posix_sync_hook,
	.set_label = posix_set_label,
	.set_boot = posix_set_boot,
	.reboot = posix_reboot,
	.mount_copy = posix_mount_copy,
	.mount_restore = posix_mount_restore,
	.image_kinds = posix_image_kinds,
	.image_attach = posix_image_attach_hook,
	.image_detach = posix_image_detach_hook,
	.unit_active = posix_unit_active,
	.power = posix_power_hook,
	.notify_users = posix_notify_users,
	.inhibited = posix_inhibited,
};

REIMAGE_PLUGIN(posix, BACKEND, backend, posix_ops)
