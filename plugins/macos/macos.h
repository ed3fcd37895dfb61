/*
 * macos.h -- the macos backend's private context, and its one seam to the
 * operating system: struct macos_sys.  Every macOS program the backend
 * runs (diskutil, bless, launchctl, csrutil, dscl) and every call that
 * exists only on macOS (renamex_np, statfs's mount names, libproc,
 * F_FULLFSYNC, reboot) goes through that table, so the backend's
 * decisions -- which commands, in which order, with which arguments, what
 * happens when one fails -- are tested on any system with a recording
 * fake (tests/macos).  Nothing here is part of the plugin interface: the
 * only exported symbol is the entry in macos.c.
 */
#ifndef REIMAGE_MACOS_H
#define REIMAGE_MACOS_H

#include <reimage/plugin.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where macOS keeps the programs the backend runs. */
#define MACOS_DISKUTIL "/usr/sbin/diskutil"
#define MACOS_BLESS "/usr/sbin/bless"
#define MACOS_LAUNCHCTL "/bin/launchctl"
#define MACOS_CSRUTIL "/usr/bin/csrutil"
#define MACOS_DSCL "/usr/bin/dscl"
#define MACOS_SH "/bin/sh"
#define MACOS_CHROOT "/usr/sbin/chroot"

/* The private copy of bless PREPARE makes: BOOT runs after the swap,
 * when /usr/sbin of a root being re-imaged is the new image's. */
#define MACOS_TOOLS_DIR ".reimage/macos-tools"

/* What a program printed (stdout and stderr together), cut to its cap. */
#define MACOS_OUTPUT_MAX 65536
struct macos_output {
	char text[MACOS_OUTPUT_MAX];
	size_t len;
};

/* The mounted volume holding a path (statfs). */
struct macos_volume {
	int read_only;            /* MNT_RDONLY */
	char fstype[32];          /* "apfs", "hfs", ... */
	char from[PATH_MAX];      /* the device, e.g. /dev/disk3s1s1 */
	char on[PATH_MAX];        /* its mount point */
};

/* One process, as libproc tells it. */
struct macos_proc {
	pid_t pid;
	pid_t ppid;
	uid_t uid;
	char name[64];            /* proc_name(): the executable's name */
};

/*
 * The seam.  Each member returns 0 (or what it says) or a negative errno.
 * The real table (sys.c) calls macOS; on other systems the calls that
 * exist only on macOS return -ENOTSUP, so the plugin builds and loads
 * everywhere but acts only on a Mac.  A fake embeds the table as its
 * first member and finds its own state from the pointer it is passed.
 */
struct macos_sys {
	/* Run argv[0] (an absolute path) with argv and a fixed environment
	 * (envp, NULL-terminated), stdin from /dev/null, its output in *out;
	 * killed with its process group after timeout_s.  Returns its exit
	 * status (0..255; 128 + signal if a signal ended it), -ETIMEDOUT, or
	 * a negative errno if it could not be started (-ENOENT: no such
	 * program). */
	int (*run)(const struct macos_sys *sys, const char *const argv[],
		   const char *const envp[], int timeout_s, struct macos_output *out);
	/* renamex_np(RENAME_SWAP): exchange two existing names atomically. */
	int (*rename_swap)(const struct macos_sys *sys, const char *a, const char *b);
	/* renamex_np(RENAME_EXCL): rename, failing with -EEXIST if `to` exists. */
	int (*rename_excl)(const struct macos_sys *sys, const char *from, const char *to);
	/* statfs(): the volume holding path. */
	int (*volume)(const struct macos_sys *sys, const char *path, struct macos_volume *ret);
	/* Every process; *ret is malloc'ed, the caller frees it. */
	int (*procs)(const struct macos_sys *sys, struct macos_proc **ret, size_t *ret_n);
	/* kill(pid, sig); -ESRCH when it is gone.  sig 0 tests it is alive. */
	int (*signal)(const struct macos_sys *sys, pid_t pid, int sig);
	/* The owner of /dev/console: the user logged in at the screen, 0 if
	 * none (loginwindow shows its login panel as root). */
	int (*console_uid)(const struct macos_sys *sys, uid_t *ret);
	/* Copy a file to dst, replacing it, with mode (synced); a program
	 * keeps its code signature (copyfile on macOS). */
	int (*copy_file)(const struct macos_sys *sys, const char *src, const char *dst, mode_t mode);
	/* Make every completed rename on the volume holding path durable
	 * (F_FULLFSYNC: the drive's cache too). */
	int (*full_sync)(const struct macos_sys *sys, const char *path);
	/* reboot(RB_AUTOBOOT) after sync(); returns only on failure. */
	int (*reboot)(const struct macos_sys *sys);
	int64_t (*now_ms)(const struct macos_sys *sys);  /* a monotonic clock */
	void (*sleep_ms)(const struct macos_sys *sys, int ms);
};

extern const struct macos_sys macos_sys_real;

/* Options, in the order of the table in macos.c. */
enum macos_opt {
	MACOS_OPT_KEEP_PROCESSES,
	MACOS_OPT_GRACE_SECONDS,
	MACOS_OPT_COMMAND_TIMEOUT,
	MACOS_OPT_BLESS,
	MACOS_OPT_COUNT
};

struct macos {
	const struct reimage_host *host;
	const struct macos_sys *sys;  /* &macos_sys_real; tests put a fake here */
	char **keep;                  /* keep_processes, NULL-terminated, owned */
	int grace_seconds;            /* SIGTERM -> SIGKILL */
	int command_timeout;          /* seconds a program may run */
	char bless_mode[16];          /* "auto", "folder" or "mount" */
	char bless[PATH_MAX];         /* the bless BOOT runs: PREPARE's copy */
};

/* Record err from errno value e (positive); returns -e. */
int macos_fail(const struct macos *mc, struct reimage_error *err, int e, const char *fmt, ...)
	REIMAGE_PRINTF(4, 5);

/* Run argv through the seam with a clean environment and
 * command_timeout.  0 if it exited 0; else an error naming what (a
 * phrase: "rename the volume") with the status and its output's last
 * line.  out may be NULL when the output is not needed. */
int macos_run(struct macos *mc, const char *what, const char *const argv[],
	      struct macos_output *out, struct reimage_error *err);
/* The same with the environment envp (NULL-terminated). */
int macos_run_env(struct macos *mc, const char *what, const char *const argv[],
		  const char *const envp[], struct macos_output *out, struct reimage_error *err);

/* ------------------------------------------------- the hooks, by file */

int macos_preflight(void *ctx, const char *root, const struct reimage_boot *boot,
		    struct reimage_error *err);                                 /* sealed.c */
int macos_logout(void *ctx, const char *root, struct reimage_error *err); /* procs.c */
int macos_quiesce(void *ctx, const char *root, struct reimage_error *err);
int macos_accounts_list(void *ctx, const char *root, reimage_account_fn each, void *arg,
			struct reimage_error *err);                                 /* accounts.c */
int macos_accounts_copy(void *ctx, const char *root, const char *staging,
			const char *const *users, struct reimage_error *err);
int macos_unit_active(void *ctx, const char *unit, struct reimage_error *err); /* units.c */
int macos_set_label(void *ctx, const char *root, const char *label,
		    struct reimage_error *err);                                 /* boot.c */
/* EC_UNSUPPORTED for boot parameters macOS has no use for (kernel,
 * initrd, cmdline): PREFLIGHT and BOOT both ask. */
int macos_check_boot(struct macos *mc, const struct reimage_boot *boot, struct reimage_error *err);
int macos_set_boot(void *ctx, const struct reimage_boot *boot, struct reimage_error *err);

#endif
