/*
 * posix.h -- the posix backend's private context and the functions its
 * source files share.  Nothing here is part of the plugin interface: the
 * only exported symbol is the entry in posix.c.
 */
#ifndef REIMAGE_POSIX_H
#define REIMAGE_POSIX_H

#include "cgroup.h"

#include <reimage/plugin.h>
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* Options, in the order of the table in posix.c. */
enum posix_opt {
	POSIX_OPT_KEEP_PROCESSES,
	POSIX_OPT_GRACE_SECONDS,
	POSIX_OPT_USE_LOGIND,
	POSIX_OPT_LOCK_MEMORY,
	POSIX_OPT_BOOT_TIMEOUT,
	POSIX_OPT_POWER_SUPPLY_DIR,
	POSIX_OPT_COUNT
};

struct posix {
	const struct reimage_host *host;
	char **keep;            /* keep_processes, NULL-terminated, owned */
	int grace_seconds;      /* SIGTERM -> SIGKILL */
	int use_logind;
	int lock_memory;
	int boot_timeout;       /* seconds the boot command may run */
	char *power_supply_dir; /* the kernel's power-supply class, owned */

	/* Opened by prepare() so that later phases need no file of the old
	 * image; -1 until then (hooks then open what they need themselves). */
	char root[PATH_MAX];    /* the root prepare() was called for */
	int root_fd;            /* O_DIRECTORY on root: syncfs, label, kexec */
	int proc_fd;            /* /proc: quiesce and logout */
	int null_fd;            /* /dev/null: stdin of the boot command */

	int kexec_loaded;       /* set_boot() loaded a kernel: reboot() kexecs */
};

/* Record err from errno value e (positive) with a class that fits it;
 * returns -e. */
int posix_fail(const struct posix *px, struct reimage_error *err, int e, const char *fmt, ...)
	REIMAGE_PRINTF(4, 5);

/* A descriptor on root: the one prepare() opened (*ret_owned = 0), or a
 * new one the caller closes (*ret_owned = 1). */
int posix_root_fd(struct posix *px, const char *root, int *ret_owned,
		  struct reimage_error *err);

/* ------------------------------------------------------------ procs.c */

#define POSIX_UID_UNSET ((uid_t)-1)

/* What /proc tells about one process. */
struct proc_info {
	pid_t pid;
	pid_t ppid;
	char state;              /* R, S, D, Z, ... */
	unsigned long flags;     /* PF_* */
	uid_t uid;               /* real uid */
	uid_t loginuid;          /* POSIX_UID_UNSET if none */
	char comm[16];
	char unit[256];          /* innermost systemd unit of its cgroup, "" if none */
};

/* Decides whether the stop loop ends process p; 1 yes, 0 no. */
typedef int (*proc_select_fn)(const struct posix *px, const struct proc_info *p);

/* 0 if /proc shows the caller's own pid namespace, else EC_STATE: no
 * process may be signalled then.  what names the phase in messages. */
int posix_check_own_namespace(struct posix *px, const char *what, struct reimage_error *err);

/* Stop every process select() picks: SIGTERM, grace_seconds, SIGKILL,
 * bounded waits, a few rounds for processes started meanwhile.  Never
 * PID 1, kernel threads, zombies, the caller or its ancestors, whatever
 * select() says.  Refuses (EC_STATE) unless /proc shows the caller's own
 * pid namespace.  what names the phase in messages. */
int posix_stop_processes(struct posix *px, const char *what, proc_select_fn select,
			 struct reimage_error *err);

/* The /proc descriptor prepare() opened, else opens it now. */
int posix_proc_fd(struct posix *px, struct reimage_error *err);

/* ------------------------------------------------- the hooks, by file */

int posix_quiesce(void *ctx, const char *root, struct reimage_error *err);   /* quiesce.c */
int posix_unit_active(void *ctx, const char *unit, struct reimage_error *err); /* units.c */
int posix_logout(void *ctx, const char *root, struct reimage_error *err);    /* logout.c */
int posix_notify_users(void *ctx, const struct reimage_notice *n,             /* notice.c */
		       struct reimage_notice_result *ret, struct reimage_error *err);
int posix_inhibited(void *ctx, const char *const *processes, char *ret_what, size_t cap,
		    struct reimage_error *err);
int posix_set_label(void *ctx, const char *root, const char *label,
		    struct reimage_error *err);                               /* label.c */
int posix_set_boot(void *ctx, const struct reimage_boot *boot,
		   struct reimage_error *err);                                /* boot.c */
int posix_mount_restore(void *ctx, const char *mount, const char *aside,
			struct reimage_error *err);
int posix_mount_copy(void *ctx, const char *staged, const char *mount, const char *aside,
		     struct reimage_error *err);                              /* mounts.c */

#endif
