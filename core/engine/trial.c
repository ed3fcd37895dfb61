/*
 * trial.c -- the trial boot's files on the root and the boot guard's
 * decisions (trial.h: the files, the steps, the decision table, the
 * limits).  Linked into the engine for the agent (arm, disarm, state,
 * restore of mounts) and into the static reimage-guard (decide, count,
 * fall back), so it uses only the base's small helpers and moves entries
 * through the swap context's backend ops (the guard, which has no
 * backend, passes the posix renames): no configuration.
 */
#define _GNU_SOURCE
#include "trial.h"
#include "error.h"
#include "fsutil.h"
#include "layout.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The entry the kernel runs as init, and where an image keeps its init. */
#define KERNEL_INIT "sbin/init"
static const char *const init_candidates[] = { "sbin/init", "usr/sbin/init",
					       "lib/systemd/systemd", NULL };

#define GUARD_SIZE_MAX (16 << 20) /* the static guard is ~1 MiB */
#define RECORD_MAX 16384

static int unlink_if(const char *path, struct reimage_error *err)
{
	if (unlink(path) < 0 && errno != ENOENT) {
		err_sys(err, -errno, "remove %s", path);
		return -errno;
	}
	return 0;
}

/* ------------------------------------------------------ paths in the root */

/* The guard symlink for link: relative ("../.reimage/guard" for
 * sbin/init), so that it resolves inside the root from whatever place the
 * root is mounted at (an initramfs checks /root/sbin/init). */
static int guard_target(const char *link, char *buf, size_t len, struct reimage_error *err)
{
	size_t k = 0;
	int n;

	for (const char *s = link; (s = strchr(s, '/')) && k + 3 < len; s++, k += 3)
		memcpy(buf + k, "../", 3);
	n = snprintf(buf + k, len - k, "%s/guard", LAYOUT_DIR);
	if (n < 0 || (size_t)n >= len - k) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_STATE, "/%s: too deep for the guard", link);
		return -ENAMETOOLONG;
	}
	return 0;
}

static int is_link_to(const char *path, const char *target)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strcmp(buf, target) == 0;
}

/* link must name an entry below a directory of the image, never the top
 * level (the swap identifies top-level entries by inode) nor .reimage. */
static int check_link(const char *link, struct reimage_error *err)
{
	if (!strchr(link, '/') || link[0] == '/' || strstr(link, "..") ||
	    !strncmp(link, LAYOUT_DIR "/", sizeof(LAYOUT_DIR))) {
		err_set(err, -EINVAL, REIMAGE_EC_STATE,
			"/%s of the new image is '%s': not an entry below one of its directories",
			KERNEL_INIT, link);
		return -EINVAL;
	}
	return 0;
}

/* The entry the kernel runs: /sbin/init with its directories resolved. */
static int find_link(const char *root, char *link, size_t len, struct reimage_error *err)
{
	int r = fs_resolve_in(root, KERNEL_INIT, 0, link, len);
	if (r < 0) {
		err_sys(err, r, "new image in %s: /%s (the kernel could not run the guard)", root,
			KERNEL_INIT);
		return r;
	}
	return check_link(link, err);
}

/* The new image's init: the first candidate that resolves inside the root
 * to a file.  "" if there is none. */
static void find_init(const char *root, char *init, size_t len)
{
	char rel[PATH_MAX], full[PATH_MAX];
	struct stat st;

	init[0] = '\0';
	for (size_t i = 0; init_candidates[i]; i++) {
		if (fs_resolve_in(root, init_candidates[i], 1, rel, sizeof(rel)) < 0 ||
		    fs_join(full, sizeof(full), root, rel) < 0 || lstat(full, &st) < 0 ||
		    S_ISDIR(st.st_mode) || strchr(rel, '\n'))
			continue;
		snprintf(init, len, "/%s", rel);
		return;
	}
}

int trial_find_init(const char *tree, char *ret_init, size_t len, struct reimage_error *err)
{
	char link[PATH_MAX];
	int r;

	if ((r = find_link(tree, link, sizeof(link), err)) < 0)
		return r;
	find_init(tree, ret_init, len);
	if (!ret_init[0]) {
		err_set(err, -ENOENT, REIMAGE_EC_INTEGRITY,
			"the image has no init (/%s, /%s or /%s): it cannot boot", init_candidates[0],
			init_candidates[1], init_candidates[2]);
		return -ENOENT;
	}
	return 0;
}

void trial_init_path(const struct trial_info *ti, char *buf, size_t len)
{
	if (ti->init[0] == '/' && strcmp(ti->init + 1, ti->link) == 0)
		snprintf(buf, len, "/%s/init.saved", LAYOUT_DIR);
	else
		snprintf(buf, len, "%s", ti->init);
}

/* ---------------------------------------------------------------- records */

/* The value of key in "key=value" lines, copied to buf (capacity len);
 * 0 if the key is absent. */
static int kv_get(const char *text, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, kl) == 0 && l[kl] == '=') {
			const char *v = l + kl + 1;
			snprintf(buf, len, "%.*s", (int)strcspn(v, "\n"), v);
			return 1;
		}
	}
	buf[0] = '\0';
	return 0;
}

/* A record's text: one line, whatever the message held. */
static void one_line(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
}

static int write_fallback(const struct layout *L, const char *state, const char *reason,
			  const char *mounts, const char *error, struct reimage_error *err)
{
	char text[RECORD_MAX], r1[REIMAGE_ERRMSG_MAX], e1[REIMAGE_ERRMSG_MAX];

	snprintf(r1, sizeof(r1), "%s", reason);
	snprintf(e1, sizeof(e1), "%s", error ? error : "");
	one_line(r1);
	one_line(e1);
	int n = snprintf(text, sizeof(text), "state=%s\nreason=%s\ntime=%lld\nmounts=%s\nerror=%s\n",
			 state, r1, (long long)time(NULL), mounts, e1);
	return fs_write_atomic(L->fallback, text, (size_t)n, NULL, err);
}

int trial_state(const char *root, struct trial_info *ret, struct reimage_error *err)
{
	struct layout L;
	char *text, val[64];
	int r, first = 0;

	memset(ret, 0, sizeof(*ret));
	layout_init(&L, root);
	struct reimage_error e = { 0 };
	if ((r = fs_read_small(L.trial, RECORD_MAX, &text, NULL, &e)) == 0) {
		ret->armed = 1;
		if (kv_get(text, "max_attempts", val, sizeof(val)))
			ret->max_attempts = atoi(val) > 0 ? atoi(val) : 0;
		kv_get(text, "init", ret->init, sizeof(ret->init));
		kv_get(text, "link", ret->link, sizeof(ret->link));
		free(text);
	} else if (r != -ENOENT) {
		ret->armed = 1;  /* there, but unreadable: the guard falls back */
		err_set(err, r, e.cls, "%s", e.msg);
		first = r;
	}

	err_clear(&e);
	if ((r = fs_read_small(L.attempts, 64, &text, NULL, &e)) == 0) {
		char *end;
		long n = strtol(text, &end, 10);
		/* An attempt count that cannot be read counts as used up. */
		ret->attempts = (end != text && (*end == '\n' || !*end) && n >= 0 && n < INT_MAX)
					? (int)n : INT_MAX;
		free(text);
	} else if (r != -ENOENT) {
		ret->attempts = INT_MAX;
	}

	err_clear(&e);
	if ((r = fs_read_small(L.fallback, RECORD_MAX, &text, NULL, &e)) == 0) {
		kv_get(text, "state", val, sizeof(val));
		ret->fallback = !strcmp(val, "done")   ? TRIAL_FB_DONE
			      : !strcmp(val, "undoing") ? TRIAL_FB_UNDOING
							: TRIAL_FB_FAILED;
		if (kv_get(text, "time", val, sizeof(val)))
			ret->fallback_time = atoll(val);
		kv_get(text, "reason", ret->reason, sizeof(ret->reason));
		kv_get(text, "mounts", ret->mounts, sizeof(ret->mounts));
		kv_get(text, "error", ret->error, sizeof(ret->error));
		free(text);
	} else if (r != -ENOENT && !first) {
		err_set(err, r, e.cls, "%s", e.msg);
		first = r;
	}
	return first;
}

int trial_count_attempt(const char *root, int n, struct reimage_error *err)
{
	struct layout L;
	char text[32];
	int len = snprintf(text, sizeof(text), "%d\n", n);

	layout_init(&L, root);
	return fs_write_atomic(L.attempts, text, (size_t)len, NULL, err);
}

/* ------------------------------------------------------------ arm, disarm */

int trial_install_guard(const char *root, const char *guard_binary, struct reimage_error *err)
{
	struct stat like = { .st_mode = S_IFREG | 0755, .st_uid = geteuid(), .st_gid = getegid() };
	struct layout L;
	size_t len;
	char *data;
	int r;

	layout_init(&L, root);
	if ((r = fs_read_small(guard_binary, GUARD_SIZE_MAX, &data, &len, err)) < 0) {
		err_prefix(err, "boot guard");
		return r;
	}
	r = fs_write_atomic(L.guard, data, len, &like, err);
	free(data);
	return r;
}

int trial_arm(const struct swap_ctx *sc, const char *tree, const char *guard_binary,
	      int max_attempts, struct reimage_error *err)
{
	const char *root = sc->root;
	char link[PATH_MAX], init[PATH_MAX], at[PATH_MAX], target[PATH_MAX], text[3 * PATH_MAX];
	struct layout L;
	struct stat st;
	int r;

	if (max_attempts < 1) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "trial: max_attempts must be at least 1");
		return -EINVAL;
	}
	layout_init(&L, root);
	if ((r = find_link(tree, link, sizeof(link), err)) < 0 ||
	    (r = guard_target(link, target, sizeof(target), err)) < 0)
		return r;
	if (fs_join(at, sizeof(at), tree, link) < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "%s/%s: path too long", tree, link);
		return -ENAMETOOLONG;
	}
	/* Step 5 done: every step before it is too. */
	if (is_link_to(at, target))
		return 0;
	if (lstat(at, &st) == 0 && S_ISDIR(st.st_mode)) {
		err_set(err, -EISDIR, REIMAGE_EC_STATE, "new image: /%s is a directory", link);
		return -EISDIR;
	}
	/* Before step 5, init.saved is our temporary guard symlink, or the
	 * orphan of a trial that fell back: the image's entry is at link. */
	if ((r = unlink_if(L.saved_init, err)) < 0)
		return r;
	find_init(tree, init, sizeof(init));
	if (!init[0])
		log_warn("trial: the new image has no init (/%s, /%s, /%s); the guard will fall "
			 "back at its first boot", init_candidates[0], init_candidates[1],
			 init_candidates[2]);

	if (guard_binary && (r = trial_install_guard(root, guard_binary, err)) < 0)
		return r;
	/* A dangling symlink at /sbin/init would leave the kernel without init. */
	if (stat(L.guard, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		err_set(err, -ENOENT, REIMAGE_EC_STATE, "trial: no executable boot guard at %s",
			L.guard);
		return -ENOENT;
	}
	if ((r = unlink_if(L.attempts, err)) < 0 || (r = unlink_if(L.fallback, err)) < 0 ||
	    (r = fs_sync_dir(L.dir, err)) < 0)
		return r;
	int n = snprintf(text, sizeof(text), "max_attempts=%d\ninit=%s\nlink=%s\n", max_attempts,
			 init, link);
	if ((r = fs_write_atomic(L.trial, text, (size_t)n, NULL, err)) < 0)
		return r;
	/* The symlink is on disk before a rename makes it /sbin/init. */
	if (symlink(target, L.saved_init) < 0) {
		err_sys(err, -errno, "create %s", L.saved_init);
		return -errno;
	}
	if ((r = fs_sync_dir(L.dir, err)) < 0)
		return r;
	r = fs_exists(at) ? sc->ops->exchange(sc->backend, L.saved_init, at, err)
			  : sc->ops->move(sc->backend, L.saved_init, at, err);
	if (r < 0)
		return r;
	/* Both directories changed: both synced before the reboot. */
	if ((r = fs_sync_parent(at, err)) < 0 || (r = fs_sync_dir(L.dir, err)) < 0)
		return r;
	log_notice("trial armed: /%s runs the boot guard (%d attempts of %s)", link, max_attempts,
		   init[0] ? init : "(no init)");
	return 0;
}

int trial_disarm(const struct swap_ctx *sc, struct reimage_error *err)
{
	const char *root = sc->root;
	char target[PATH_MAX], at_root[PATH_MAX], at_staging[PATH_MAX];
	const char *place = NULL;
	struct trial_info ti;
	struct layout L;
	int r;

	layout_init(&L, root);
	/* No trial: at most a guard installed for a job that never armed. */
	if (!fs_exists(L.trial))
		return unlink_if(L.guard, err);
	if ((r = trial_state(root, &ti, err)) < 0 || (r = check_link(ti.link, err)) < 0 ||
	    (r = guard_target(ti.link, target, sizeof(target), err)) < 0) {
		err_prefix(err, "trial: disarm");
		return r;
	}
	fs_join(at_root, sizeof(at_root), root, ti.link);
	fs_join(at_staging, sizeof(at_staging), L.staging, ti.link);
	/* The guard is at link in the root (commit), or in staging (after a
	 * fallback the new image is staging again). */
	if (is_link_to(at_root, target))
		place = at_root;
	else if (is_link_to(at_staging, target))
		place = at_staging;

	if (is_link_to(L.saved_init, target)) {
		/* Arm stopped before its exchange, or disarm after it. */
		r = unlink_if(L.saved_init, err);
	} else if (place && fs_exists(L.saved_init)) {
		if ((r = sc->ops->exchange(sc->backend, L.saved_init, place, err)) == 0 &&
		    (r = fs_sync_parent(place, err)) == 0 && (r = fs_sync_dir(L.dir, err)) == 0)
			r = unlink_if(L.saved_init, err);
	} else if (place) {
		r = unlink_if(place, err);  /* the image had no init */
		if (r == 0)
			r = fs_sync_parent(place, err);
	} else {
		/* The image the saved entry came from is gone. */
		r = unlink_if(L.saved_init, err);
	}
	/* trial goes last: while it is there, disarm is re-run in full. */
	if (r < 0 || (r = unlink_if(L.attempts, err)) < 0 || (r = unlink_if(L.fallback, err)) < 0 ||
	    (r = unlink_if(L.guard, err)) < 0 || (r = fs_sync_dir(L.dir, err)) < 0 ||
	    (r = unlink_if(L.trial, err)) < 0 || (r = fs_sync_dir(L.dir, err)) < 0) {
		err_prefix(err, "trial: disarm");
		return r;
	}
	return 0;
}

/* ------------------------------------------------------------- decisions */

enum trial_action trial_decide(const struct trial_facts *f, char *reason, size_t len)
{
	if (!f->armed) {
		snprintf(reason, len, "no trial armed");
		return TRIAL_EXEC_PLAIN;
	}
	switch (f->journal) {
	case SWAP_NONE:
	case SWAP_UNDONE:
		snprintf(reason, len, "stale trial: the journal shows no swap to try");
		return TRIAL_EXEC_PLAIN;
	case SWAP_STARTED:
		snprintf(reason, len, "the swap was interrupted; the new image never booted");
		return TRIAL_FALLBACK;
	case SWAP_ROLLBACK:
		snprintf(reason, len, "a rollback was interrupted; finishing it");
		return TRIAL_FALLBACK;
	case SWAP_DAMAGED:
		/* Nothing can be undone on a guess: the old image's agent or a
		 * person (`reimage recover` says how) must look. */
		snprintf(reason, len, "the journal and its copy are damaged; nothing is undone");
		return TRIAL_EXEC_PLAIN;
	case SWAP_DONE:
		break;
	}
	if (f->init == TRIAL_INIT_MISSING) {
		snprintf(reason, len, "the new image has no init");
		return TRIAL_FALLBACK;
	}
	if (f->init == TRIAL_INIT_NOEXEC) {
		snprintf(reason, len, "the new image's init is not executable");
		return TRIAL_FALLBACK;
	}
	if (f->attempts >= f->max_attempts) {
		snprintf(reason, len, "%d boot attempt%s of the new image did not reach a commit",
			 f->max_attempts, f->max_attempts == 1 ? "" : "s");
		return TRIAL_FALLBACK;
	}
	snprintf(reason, len, "boot attempt %d of %d", f->attempts + 1, f->max_attempts);
	return TRIAL_EXEC_NEW;
}

/* ---------------------------------------------------------------- fallback */

int trial_fall_back(const struct swap_ctx *sc, const char *reason, struct reimage_error *err)
{
	const char *root = sc->root;
	enum swap_journal_state js;
	struct swap_plan plan;
	char mounts[PATH_MAX] = "";
	struct layout L;
	int r;

	layout_init(&L, root);
	if ((r = swap_journal_read(root, &js, &plan, err)) < 0)
		return r;
	for (size_t i = 0, k = 0; i < plan.n; i++)
		if (plan.steps[i].op == OP_MOUNT && k < sizeof(mounts))
			k += (size_t)snprintf(mounts + k, sizeof(mounts) - k, "%s%s", k ? " " : "",
					      plan.steps[i].name);
	swap_plan_free(&plan);
	/* "undoing" first: a power cut during the undo is then visible to the
	 * old image's agent even if the journal still says "swapped". */
	if ((r = write_fallback(&L, "undoing", reason, mounts, NULL, err)) < 0)
		return r;
	/* Journaled as a rollback: a power cut in the undo is then finished
	 * by the next boot's guard or by `reimage recover`, never confirmed. */
	r = swap_rollback(sc, reason, err);
	struct reimage_error rec_err = { 0 };
	int w = write_fallback(&L, r < 0 ? "failed" : "done", reason, mounts,
			       r < 0 ? err->msg : NULL, r < 0 ? &rec_err : err);
	return r < 0 ? r : w;
}

int trial_restore_mounts(const struct swap_ctx *sc, struct reimage_error *err)
{
	struct trial_info ti;
	char mount[PATH_MAX], aside[PATH_MAX], names[PATH_MAX];
	int r;

	if ((r = trial_state(sc->root, &ti, err)) < 0)
		return r;
	if (ti.fallback == TRIAL_FB_NONE || !ti.mounts[0])
		return 0;
	if (!(sc->ops->caps & REIMAGE_BCAP_MOUNTS) || !sc->ops->mount_restore) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"backend %s cannot restore the mounted entries %s", sc->ops->name, ti.mounts);
		return -ENOTSUP;
	}
	snprintf(names, sizeof(names), "%s", ti.mounts);
	for (char *save, *e = strtok_r(names, " ", &save); e; e = strtok_r(NULL, " ", &save)) {
		if (fs_join(mount, sizeof(mount), sc->root, e) < 0 ||
		    fs_join(aside, sizeof(aside), mount, SWAP_MOUNT_ASIDE) < 0) {
			err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "%s/%s: path too long", sc->root, e);
			return -ENAMETOOLONG;
		}
		if ((r = sc->ops->mount_restore(sc->backend, mount, aside, err)) < 0) {
			err_prefix(err, "fallback: restore %s", e);
			return r;
		}
	}
	return 0;
}
