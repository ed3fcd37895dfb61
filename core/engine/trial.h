/*
 * trial.h -- the trial boot of a new image and its boot guard (issue 14:
 * the machine always comes back, even when the new image never gets as far
 * as its agent: kernel panic, missing or crashing init, broken fstab).
 *
 * After the swap the new image is at the root's top level.  trial_arm()
 * puts the static reimage-guard (plugins/posix/guard) where the kernel looks for init;
 * at each boot until the commit the guard counts the attempt and execs the
 * new image's init, and once the attempts are used up (or at once if that
 * init is missing or not executable) it undoes the swap from the journal
 * and execs the old image's init.  The agent, once the new image is healthy
 * and committed, calls trial_disarm().
 *
 * Files, all in <root>/.reimage (outside both images, never swapped):
 *   guard       the guard binary, 0755, statically linked: it needs no file
 *               of either image
 *   trial       "max_attempts=N\ninit=/usr/lib/systemd/systemd\nlink=usr/sbin/init\n"
 *               init: the new image's init, resolved inside the root ("" if
 *               it has none); link: the directory entry the kernel runs as
 *               /sbin/init (sbin/init, or usr/sbin/init where sbin -> usr/sbin)
 *   attempts    "N\n": boots the guard let through to the new init
 *   init.saved  the new image's own entry at link (a file or a symlink)
 *               while the guard holds that place; absent if it had none
 *   fallback    the guard's record: "state=undoing|done|failed\nreason=...\n
 *               time=<unix>\nmounts=<entries>\nerror=...\n"
 * and in the new image, link is a symlink to the guard, relative
 * ("../.reimage/guard", "../../.reimage/guard"), so that it resolves the
 * same from an initramfs (root mounted on /root) as from the booted root.
 *
 * Steps of trial_arm(), each durable (file written temp -> fsync -> rename
 * -> fsync(dir)) and recognisable from the tree, so that trial_arm() or
 * trial_disarm() run again after a power cut at any point converge:
 *   1. guard copied (trial_install_guard, may be done earlier: see there)
 *   2. attempts and fallback of an earlier trial removed
 *   3. trial written
 *   4. init.saved created as the guard symlink (a temporary name)
 *   5. init.saved and link exchanged atomically (renameat2 RENAME_EXCHANGE):
 *      link is the guard, init.saved the image's entry; with no entry at
 *      link, init.saved is renamed there instead
 * Before 5 init.saved is the guard symlink and is simply made again; link
 * is never missing, not even for an instant.  Invariant: link holds the
 * guard only while the trial file exists.
 * trial_disarm(): the guard symlink is looked for at link in the root (the
 * commit case) and in .reimage/new (after a fallback the new image is
 * staging again); init.saved is exchanged back there, then attempts,
 * fallback and guard go, and trial last.
 *
 * The guard's decision (trial_decide(), pure):
 *   not armed (no trial file)                  -> EXEC_PLAIN
 *   journal NONE or UNDONE (stale trial)        -> EXEC_PLAIN
 *   journal STARTED (cut during the swap)       -> FALLBACK: the new image
 *                                                  never booted
 *   journal DONE, new init missing/not exec.    -> FALLBACK at once
 *   journal DONE, attempts >= max_attempts      -> FALLBACK
 *   journal DONE, attempts < max_attempts       -> EXEC_NEW (attempts + 1
 *                                                  on disk first)
 * So with max_attempts N the new image gets N boots, the (N+1)th falls back.
 *
 * Limits:
 *   - The kernel must run /sbin/init (no init= on its command line, or
 *     init=/sbin/init); an initramfs must exec the root's /sbin/init.
 *   - link must be below a directory of the new image (a missing /sbin is
 *     refused: the kernel would find no guard) and on the root's volume.
 *   - Mounted top-level entries refreshed by the swap (OP_MOUNT: a separate
 *     /boot) are not mounted when the guard runs: it undoes the renames
 *     only and lists those entries in fallback's mounts=; the old image's
 *     agent restores their content with trial_restore_mounts().
 *   - An enforcing LSM (SELinux) may refuse to run an unlabelled guard as
 *     init: the backend must label .reimage/guard (init_exec_t) there.
 *   - The guard does not write .reimage/state (JSON, jansson): the old
 *     image's agent reads .reimage/fallback (trial_state()) and reports
 *     "rolled-back", phase FALLBACK.
 */
#ifndef REIMAGE_TRIAL_H
#define REIMAGE_TRIAL_H

#include "swap.h"

#include <limits.h>
#include <reimage/plugin.h>

enum trial_fallback_state { TRIAL_FB_NONE, TRIAL_FB_UNDOING, TRIAL_FB_DONE, TRIAL_FB_FAILED };

struct trial_info {
	int armed;              /* the trial file exists */
	int max_attempts;       /* 0 if the trial file cannot be read */
	int attempts;           /* INT_MAX if the attempts file is unreadable */
	char init[PATH_MAX];    /* absolute inside the root; "" if none */
	char link[PATH_MAX];    /* relative to the root */
	enum trial_fallback_state fallback;
	long long fallback_time;
	char reason[REIMAGE_ERRMSG_MAX];
	char mounts[PATH_MAX];  /* space-separated top-level entries */
	char error[REIMAGE_ERRMSG_MAX];
};

/* Copy the guard binary to <root>/.reimage/guard (0755, durable).  The
 * agent calls it before the swap (PREPARE): afterwards the installed
 * binary is in .reimage/old. */
int trial_install_guard(const char *root, const char *guard_binary, struct reimage_error *err);
/* Arm the trial (steps above) in tree, where the new image is: the
 * root's staging directory just before the swap (the engine does so: a
 * power cut in or right after the swap then boots the guard whenever the
 * new image's /sbin/init is at the top level), or root itself after it.
 * The guard symlink is relative, so it resolves once the swap has put it
 * at the root's top level.  guard_binary: copied first; NULL if
 * trial_install_guard() did it.  Already armed (step 5 done): nothing
 * changes. */
int trial_arm(const struct swap_ctx *sc, const char *tree, const char *guard_binary,
	      int max_attempts, struct reimage_error *err);
/* The staged or installed image in tree has an init the guard could run:
 * /sbin/init resolves inside tree to an entry below a directory, and an
 * init candidate is a file.  ret_init (capacity len): that init,
 * absolute inside tree. */
int trial_find_init(const char *tree, char *ret_init, size_t len, struct reimage_error *err);
/* End the trial (after the commit, or once a fallback is reported): the
 * new image's init back at link, every trial file removed.  Read
 * trial_state() first: the fallback record goes too.  No trial: only a
 * guard installed for a job that never armed is removed. */
int trial_disarm(const struct swap_ctx *sc, struct reimage_error *err);
/* What the files say; ret is filled even when a file is unreadable. */
int trial_state(const char *root, struct trial_info *ret, struct reimage_error *err);
/* Where the guard finds the new image's init: init, or .reimage/init.saved
 * when init is the link entry itself (a file at /sbin/init).  "" if none. */
void trial_init_path(const struct trial_info *ti, char *buf, size_t len);

enum trial_init { TRIAL_INIT_OK, TRIAL_INIT_MISSING, TRIAL_INIT_NOEXEC };
enum trial_action { TRIAL_EXEC_PLAIN, TRIAL_EXEC_NEW, TRIAL_FALLBACK };

struct trial_facts {
	int armed;
	int attempts;
	int max_attempts;
	enum trial_init init;
	enum swap_journal_state journal;
};

/* The guard's decision (table above); reason (capacity len) says why. */
enum trial_action trial_decide(const struct trial_facts *f, char *reason, size_t len);

/* EXEC_NEW: record that this boot is attempt n, durably. */
int trial_count_attempt(const char *root, int n, struct reimage_error *err);
/* FALLBACK: record "undoing" with reason, undo the swap from the journal
 * with the posix renames (no backend needed), record "done" (or "failed"
 * and the error). */
int trial_fall_back(const struct swap_ctx *sc, const char *reason, struct reimage_error *err);
/* In the old image, after a fallback: put back the content of mounted
 * entries the guard could not restore (fallback's mounts=), through the
 * backend's mount_restore.  Nothing to do is not an error. */
int trial_restore_mounts(const struct swap_ctx *sc, struct reimage_error *err);

#endif
