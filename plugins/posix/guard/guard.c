/*
 * guard.c -- reimage-guard, the boot guard of a trial boot: the kernel
 * runs it as init while a new image is on trial, so that a new image that
 * never gets as far as its agent (kernel panic, missing or crashing init,
 * broken fstab) still comes back to the old one.  trial.h has the files
 * on the root, the decision table and trial_arm()'s steps.
 *
 * It is a Linux program (PID 1, remounts, the posix renames) and lives
 * with the posix backend.  It is linked statically (glibc and libconfig,
 * no shared library) from the few engine sources it needs and the posix
 * renames, and sits in <root>/.reimage/guard, outside both images: it
 * needs no file of either.
 *
 * Usage:
 *   as PID 1: the kernel runs /sbin/init, which trial_arm() made a symlink
 *     to .reimage/guard; the guard acts on "/" and hands its arguments and
 *     environment on to the init it execs.
 *   reimage-guard --root DIR [ARG...]: for tests and by hand: chroot(DIR),
 *     then the same as PID 1 but for the remount.  Not PID 1 and no
 *     --root: refused, so that it never acts on a running system's "/".
 *
 * Flow:
 *   1. PID 1 with "/" read-only (the kernel's "ro"): remount it read-write,
 *      its other flags kept; before any exec it is made read-only again
 *      (systemd checks and remounts the root itself).
 *   2. Facts: trial_state(), the journal's state, and whether the new init
 *      is a file with an execute bit.
 *   3. trial_decide():
 *      EXEC_NEW: attempts + 1 on disk (fsynced) first, then exec the new
 *        init with argv[0] "/sbin/init"; if the exec fails (a missing
 *        interpreter or loader), fall back at once.
 *      FALLBACK: trial_fall_back(): record "undoing" in .reimage/fallback,
 *        undo the swap from the journal, record "done" or "failed"; then
 *        exec the old image's /sbin/init, back at the top level.
 *      EXEC_PLAIN: exec the init at the top level (the new image's
 *        recorded init first when the journal is gone, i.e. after a commit).
 *   4. Inits tried in turn: the chosen one, /sbin/init, /usr/sbin/init,
 *      /lib/systemd/systemd, /bin/sh, the guard itself skipped.  If none
 *      runs, PID 1 waits forever: its exit would panic the kernel, and a
 *      panic's reboot would only come back here.
 *
 * Limits:
 *   - A root that cannot be remounted read-write: nothing can be counted
 *     or undone; the guard logs why and execs the new image's init as if
 *     there were no guard (or, when it should fall back, the first init of
 *     the chain that is not itself).
 *   - A power cut during the undo leaves the journal "swapped" and the
 *     fallback record "undoing": if the top-level /sbin/init is still the
 *     guard's, the next boot falls back again and completes the undo;
 *     otherwise the old image's agent must (reimage recover --undo).
 *   - Mounted entries (OP_MOUNT, a separate /boot) are not mounted yet:
 *     their content is restored by the old image's agent (trial.h).
 *   - .reimage/state (JSON) is not written here: the old image's agent
 *     reads .reimage/fallback and reports the rollback.
 */
#define _GNU_SOURCE
#include "error.h"
#include "layout.h"
#include "log.h"
#include "move.h"
#include "swap.h"
#include "trial.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* What the kernel itself would try, after the chosen init. */
static const char *const init_chain[] = { "/sbin/init", "/usr/sbin/init",
					  "/lib/systemd/systemd", "/bin/sh", NULL };

/* statvfs flags and the mount flags that keep them on a remount. */
static const struct {
	unsigned long st, ms;
} kept_flags[] = {
	{ ST_NOSUID, MS_NOSUID },           { ST_NODEV, MS_NODEV },
	{ ST_NOEXEC, MS_NOEXEC },           { ST_SYNCHRONOUS, MS_SYNCHRONOUS },
	{ ST_NOATIME, MS_NOATIME },         { ST_NODIRATIME, MS_NODIRATIME },
	{ ST_RELATIME, MS_RELATIME },
};

struct root_mount {
	int remounted;      /* made read-write by the guard */
	unsigned long ms;   /* its other flags, kept */
};

/* PID 1 on a read-only root: remount it read-write. */
static void root_writable(struct root_mount *rm)
{
	struct statvfs sv;

	if (rm->remounted || statvfs("/", &sv) < 0 || !(sv.f_flag & ST_RDONLY))
		return;
	rm->ms = 0;
	for (size_t i = 0; i < sizeof(kept_flags) / sizeof(kept_flags[0]); i++)
		if (sv.f_flag & kept_flags[i].st)
			rm->ms |= kept_flags[i].ms;
	if (mount(NULL, "/", NULL, MS_REMOUNT | rm->ms, NULL) < 0) {
		log_error("remount / read-write: %s; nothing can be counted or undone",
			  strerror(errno));
		return;
	}
	rm->remounted = 1;
}

/* Before an exec: the root as the kernel left it. */
static void root_as_found(struct root_mount *rm)
{
	if (!rm->remounted)
		return;
	sync();
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | rm->ms, NULL) < 0)
		log_warn("remount / read-only: %s; it stays read-write", strerror(errno));
	else
		rm->remounted = 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a && b && a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static enum trial_init init_check(const char *path, const struct stat *self)
{
	struct stat st;

	if (!path[0] || stat(path, &st) < 0 || same_file(&st, self))
		return TRIAL_INIT_MISSING;
	return S_ISREG(st.st_mode) && (st.st_mode & 0111) ? TRIAL_INIT_OK : TRIAL_INIT_NOEXEC;
}

/* exec path (never the guard itself) with argv[0] name and the guard's own
 * arguments and environment.  Returns only on failure, with the code. */
static int exec_init(const char *path, const char *name, char **args, char **envp,
		     const struct stat *self)
{
	struct stat st;
	size_t n = 0;

	if (stat(path, &st) < 0)
		return -errno;
	if (same_file(&st, self))
		return -ELOOP;
	while (args[n])
		n++;
	char **av = calloc(n + 2, sizeof(char *));
	if (!av)
		return -ENOMEM;
	av[0] = (char *)name;
	memcpy(av + 1, args, n * sizeof(char *));
	execve(path, av, envp);
	int e = errno;
	free(av);
	return -e;
}

/* first (the new image's init, may be "" or NULL), then the kernel's own list. */
static void exec_chain(const char *first, char **args, char **envp, const struct stat *self)
{
	int r;

	if (first && first[0] && (r = exec_init(first, "/sbin/init", args, envp, self)) < 0)
		log_error("exec %s: %s", first, strerror(-r));
	for (size_t i = 0; init_chain[i]; i++)
		if ((r = exec_init(init_chain[i], init_chain[i], args, envp, self)) < 0 && r != -ENOENT)
			log_error("exec %s: %s", init_chain[i], strerror(-r));
}

/* The host handed to the posix renames: the engine's own error and log. */
static const struct reimage_host guard_host = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_host),
	.error = err_set,
	.log = log_msg,
};

int main(int argc, char **argv, char **envp)
{
	int pid1 = getpid() == 1;
	char **args = argv + 1;
	char new_init[PATH_MAX], reason[REIMAGE_ERRMSG_MAX];
	struct root_mount rm = { 0, 0 };
	enum swap_journal_state js;
	struct reimage_error err = { 0 };
	struct trial_info ti;
	struct stat self_st;
	const struct stat *self;
	struct layout L;
	int r;

	program_invocation_short_name = (char *)"reimage-guard";
	if (!pid1) {
		if (argc < 3 || strcmp(argv[1], "--root") != 0) {
			fprintf(stderr, "usage: reimage-guard --root DIR [ARG...]\n"
				"(the boot guard runs as PID 1; see trial.h)\n");
			return 2;
		}
		if (chroot(argv[2]) < 0 || chdir("/") < 0) {
			log_error("chroot %s: %s", argv[2], strerror(errno));
			return 1;
		}
		args = argv + 3;
	}
	layout_init(&L, "/");
	self = stat(L.guard, &self_st) == 0 ? &self_st : NULL;
	if (pid1)
		root_writable(&rm);

	if (trial_state("/", &ti, &err) < 0)
		log_error("%s", err.msg);
	err_clear(&err);
	if (swap_journal_state("/", &js, &err) < 0) {
		/* Without a readable journal nothing can be undone. */
		log_error("%s", err.msg);
		js = SWAP_NONE;
	}
	trial_init_path(&ti, new_init, sizeof(new_init));
	struct trial_facts facts = { ti.armed, ti.attempts, ti.max_attempts,
				     init_check(new_init, self), js };
	enum trial_action action = trial_decide(&facts, reason, sizeof(reason));
	log_notice("%s", reason);

	if (action == TRIAL_EXEC_NEW) {
		err_clear(&err);
		if (trial_count_attempt("/", ti.attempts + 1, &err) < 0)
			log_error("%s; this boot is not counted", err.msg);
		root_as_found(&rm);
		r = exec_init(new_init, "/sbin/init", args, envp, self);
		snprintf(reason, sizeof(reason), "exec %s: %s", new_init, strerror(-r));
		log_error("%s", reason);
		action = TRIAL_FALLBACK;
		if (pid1)
			root_writable(&rm);
	}
	if (action == TRIAL_FALLBACK) {
		err_clear(&err);
		if (trial_fall_back(&(struct swap_ctx){ "/", &posix_rename_ops, (void *)&guard_host, 0 },
				    reason, &err) < 0)
			log_error("fallback: %s", err.msg);
		else
			log_notice("fallback: swap undone; booting the old image");
		root_as_found(&rm);
		exec_chain(NULL, args, envp, self);
	} else {
		/* After a commit the journal is gone and the new image is at
		 * the top: its recorded init first. */
		root_as_found(&rm);
		exec_chain(ti.armed && js == SWAP_NONE ? new_init : NULL, args, envp, self);
	}
	log_error("no init could be run");
	if (!pid1)
		return 1;
	for (;;)
		pause();
}
