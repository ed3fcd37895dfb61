/*
 * phase.c -- the phase machine of one job on one root.
 *
 *   PREFLIGHT -> PREPARE -> STAGE -> PRESERVE -> HOOKS -> LABEL -> WINDOW -> QUIESCE
 *        |          |         |         |          |        |        |         |
 *     REFUSED       +---------+---------+----------+--------+--------+---------+--> FAILED
 *   (nothing written)            (staging removed, root untouched)
 *   QUIESCE -> SWAP -> BOOT -> REPORT -> REBOOT      ...after the reboot:
 *               |        |                           TRIAL -> COMMITTED
 *               +--------+--> FAILED (swap undone      |  or FALLBACK (the
 *                             from the journal)        |  agent's checks failed,
 *                                                      |  or reimage-guard found
 *                                                      |  the new image unbootable)
 *
 *   phase      function          guaranteed on disk when it starts
 *   ---------  ----------------  -------------------------------------------
 *   PREFLIGHT  engine_open,      nothing written (plugins, capabilities,
 *              phase_preflight   root state, hooks, guard; space, power)
 *   PREPARE    phase_prepare     state file written; root untouched
 *   STAGE      phase_stage       .reimage/ exists on the root's volume (0700),
 *                                the guard copied there (when guarded)
 *   PRESERVE   phase_preserve    new/ holds the whole image, hash verified,
 *                                and it fits this machine (preflight_image)
 *   HOOKS      phase_hooks       copy-mode preserves and accounts in new/
 *   LABEL      phase_label       hooks done; new/ final
 *   WINDOW     phase_window      volume label set (if asked); staging final:
 *                                the agent waits here for the swap's window
 *                                and wave, and warns the users
 *   QUIESCE    phase_quiesce     the window is open
 *   SWAP       phase_swap        new/ synced, users logged out, unneeded
 *                                processes stopped; it first arms the guard
 *                                inside new/
 *   BOOT       phase_boot        journal says "swapped": new image at the top
 *                                level (its /sbin/init the guard), old image
 *                                in .reimage/old, synced
 *   REPORT     phase_report      boot parameters set, health checks saved
 *   REBOOT     phase_reboot      state "pending": awaits TRIAL after boot
 *
 * Every phase writes the state file before it starts.  A failure before
 * SWAP removes new/ and leaves the root exactly as it was; a failure in
 * SWAP or BOOT undoes the swap from the journal.  Success is "committed",
 * written by root_confirm() after the new image has booted.
 *
 * The root commands after a swap, and what a crash anywhere in them
 * leaves (swap.h has the journal's records):
 *   root_rollback   "rollback" synced before the first rename; the undo;
 *                   "undone"; trial ended, staging removed; state
 *                   "rolled-back"; journal removed.  Cut short: recover
 *                   finishes it, confirm refuses.
 *   root_confirm    refuses unless the journal says "swapped" (or is gone);
 *                   state "committed" before the retired image goes; its
 *                   deletion starts with old/ -> deleting/ (synced), then
 *                   asides, tree, journal.  Cut short: confirm or recover
 *                   finish the deletion; rollback refuses.
 *   root_recover    finishes whichever of the above (or a swap) was cut
 *                   short; each of its own steps is idempotent.
 * The state file is written only once the tree is what it says: "pending"
 * after "swapped", "rolled-back" after "undone", "committed" before the
 * retired image (which no longer matters to the new one) is deleted.  The
 * journal is removed only after a state that ends the swap: a state at
 * SWAP or later with neither journal nor copy reads as damage, never as
 * "no swap began" (swap_journal_read).
 */
#define _GNU_SOURCE
#include "phase.h"
#include "error.h"
#include "fsutil.h"
#include "options.h"
#include "health.h"
#include "hooks.h"
#include "log.h"
#include "preflight.h"
#include "source.h"
#include "stage.h"
#include "trial.h"

#include <dirent.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* flock() on the root directory itself: no file to create, released by
 * the kernel when the process dies. */
static int lock_root(const char *root, int *ret_fd, struct reimage_error *err)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err_sys(err, -errno, "root %s", root);
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK) {
			err_set(err, -EBUSY, REIMAGE_EC_STATE,
				"%s: another reimage job or command is working on this root", root);
			return -EBUSY;
		}
		err_sys(err, -e, "lock %s", root);
		return -e;
	}
	*ret_fd = fd;
	return 0;
}

static void set_phase(struct engine *e, enum phase phase, const char *status)
{
	snprintf(e->st.phase, sizeof(e->st.phase), "%s", phase_name(phase));
	snprintf(e->st.status, sizeof(e->st.status), "%s", status);
}

/* What STAGE reads and writes; PREFLIGHT checks it and plan reads it too. */
static struct stage_request stage_request_of(struct engine *e)
{
	struct stage_request req = {
		.transport = e->transport,
		.url = e->job->image_url,
		.kind = e->job->image_kind,
		.sha256 = e->job->image_sha256,
		.toc_sha256 = e->job->image_toc_sha256,
		.root = e->root,
		.size = e->job->image_size,
		.token_file = e->job->image_token_file,
		.staging = e->L.staging,
		.workdir = e->L.dir,
		.backend = e->backend,
		.retries = e->job->image_retries,
		.retry_delay_ms = e->job->image_retry_delay_ms,
		.progress = &e->progress,
		.free_floor = (uint64_t)e->job->free_margin,
		.unpacked_size = e->job->image_unpacked_size,
		.devices = e->job->image_devices,
	};
	return req;
}

/* The plugin directories: the job's, then the agent file's. */
static void search_path(const char **out, size_t cap, const char *const *a,
			const char *const *b)
{
	size_t n = 0;
	for (; a && *a && n + 1 < cap; a++)
		out[n++] = *a;
	for (; b && *b && n + 1 < cap; b++)
		out[n++] = *b;
	out[n] = NULL;
}

static int start_plugin(struct plugin *p, const struct job *job, const struct agent_conf *ac,
			struct reimage_error *err)
{
	int r;
	if (p->started)
		return 0;
	const config_setting_t *groups[2];
	size_t n = config_plugin_groups(job, ac, p->name, groups);
	if ((r = plugin_configure_groups(p, groups, n, err)) < 0)
		return r;
	return plugin_start(p, err);
}

static int check_caps(struct engine *e, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	const struct job *job = e->job;
	const char *missing = NULL;

	/* Refuse before anything is staged, never half way through. */
	if (job->label && (!(b->caps & REIMAGE_BCAP_LABEL) || !b->set_label))
		missing = "set a volume label (remove `label`)";
	else if (job->boot_set && (!(b->caps & REIMAGE_BCAP_BOOT) || !b->set_boot))
		missing = "set boot parameters (remove the `boot` group)";
	else if (job->boot_set && job->boot.kexec && !(b->caps & REIMAGE_BCAP_KEXEC))
		missing = "reboot by kexec (remove `boot.kexec`)";
	else if (job->reboot && (!(b->caps & REIMAGE_BCAP_REBOOT) || !b->reboot))
		missing = "reboot (set `reboot = false`)";
	else if (!b->quiesce)
		missing = "stop processes";
	else if (job->health.units && job->health.units[0] &&
		 !OPS_HAS(b, struct reimage_backend_ops, unit_active))
		missing = "check service units after the boot (remove `health.units`)";
	if (missing) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED, "backend %s cannot %s", b->name, missing);
		return -ENOTSUP;
	}
	return 0;
}

/* The backend's own refusals of this root or these boot parameters (a
 * sealed macOS system volume), before anything is staged. */
static int check_backend_preflight(struct engine *e, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	struct reimage_boot boot = e->job->boot;

	if (!OPS_HAS(b, struct reimage_backend_ops, preflight))
		return 0;
	boot.root = e->root;
	return b->preflight(e->backend->ctx, e->root, e->job->boot_set ? &boot : NULL, err);
}

/* A root with a swap in progress or awaiting confirmation takes no new job. */
static int check_root_free(struct engine *e, struct reimage_error *err)
{
	enum swap_journal_state js;
	struct job_state st;
	int r;

	if ((r = swap_journal_state(e->root, &js, err)) < 0)
		return r;
	if (js == SWAP_STARTED || js == SWAP_ROLLBACK || js == SWAP_DAMAGED) {
		err_set(err, -EBUSY, REIMAGE_EC_STATE,
			"%s: a %s was interrupted; run `reimage recover --root %s` first", e->root,
			js == SWAP_ROLLBACK ? "rollback" : "swap", e->root);
		return -EBUSY;
	}
	if (state_read(e->root, &st, err) == 0 && strcmp(st.status, "pending") == 0 &&
	    js == SWAP_DONE) {
		err_set(err, -EBUSY, REIMAGE_EC_STATE,
			"%s: job %s swapped and awaits `reimage confirm` (or `reimage rollback`)",
			e->root, st.job);
		return -EBUSY;
	}
	err_clear(err);
	return 0;
}

static int check_hooks(const struct job *job, struct reimage_error *err)
{
	for (size_t i = 0; i < job->n_hooks; i++)
		if (access(job->hooks[i].path, X_OK) < 0) {
			err_sys(err, -errno, "hook %s", job->hooks[i].path);
			return -errno;
		}
	return 0;
}

static void agent_paths(struct engine *e)
{
	char exe[PATH_MAX];
	size_t n = 0;
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (len > 0) {
		exe[len] = '\0';
		e->agent_paths[n++] = strdup(exe);
	}
	if (e->ac->loaded)
		e->agent_paths[n++] = realpath(e->ac->file, NULL);
	e->agent_paths[n++] = strdup(e->ac->state_dir);
	for (size_t i = 0; i < e->reg.count && n < 7; i++)
		if (e->reg.plugins[i].file[0] == '/')
			e->agent_paths[n++] = strdup(e->reg.plugins[i].file);
	e->agent_paths[n] = NULL;
}

/* Two names of one directory (or, for a path that does not exist, one name). */
static int same_root(const char *a, const char *b)
{
	struct stat sa, sb;
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	return strcmp(a, b) == 0;
}

const char *engine_root(const struct job *job, const struct agent_conf *ac, const char *root,
			struct reimage_error *err)
{
	const char *other = root ? "--root" : ac->root_set ? ac->file : NULL;
	const char *theirs = root ? root : ac->root_set ? ac->root : NULL;

	/* Two places naming two roots: neither wins, or a job written for
	 * one root would run on another (a sandbox's job on this machine's /). */
	if (job->root_set && theirs && !same_root(job->root, theirs)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s names root %s but %s names root %s: "
			"give one root (or the same in both)", job->file, job->root, other, theirs);
		return NULL;
	}
	return root ? root : job->root_set ? job->root : ac->root_set ? ac->root : "/";
}

const char *engine_backend(const struct job *job, const struct agent_conf *ac, const char *backend)
{
	/* The machine's own setting wins unless the job names a backend. */
	return backend ? backend : strcmp(job->backend, "auto") ? job->backend : ac->backend;
}

int engine_open(struct engine *e, struct job *job, struct agent_conf *ac, const char *root,
		const char *backend, struct reimage_error *err)
{
	struct stage_request req;
	struct stat st;
	int r;

	memset(e, 0, sizeof(*e));
	e->lock_fd = -1;
	e->job = job;
	e->ac = ac;
	set_phase(e, PHASE_PREFLIGHT, "running");
	search_path(e->search_path, 16, job->plugin_path, ac->plugin_path);
	if ((r = registry_init(&e->reg, e->search_path, err)) < 0)
		return r;
	if (!(root = engine_root(job, ac, root, err)))
		return err->code;
	if (!realpath(root, e->root) || stat(e->root, &st) < 0 || !S_ISDIR(st.st_mode)) {
		err_sys(err, errno ? -errno : -ENOTDIR, "root %s", root);
		return err->code;
	}
	if ((r = lock_root(e->root, &e->lock_fd, err)) < 0)
		return r;
	layout_init(&e->L, e->root);
	snprintf(e->st.job, sizeof(e->st.job), "%s", job->id);
	e->st.serial = job->serial;
	e->st.keep_old_days = job->keep_old_days;
	if ((r = registry_backend(&e->reg, engine_backend(job, ac, backend), &e->backend, err)) < 0 ||
	    (r = start_plugin(e->backend, job, ac, err)) < 0)
		return r;
	/* The image's kind decides the transport (oci:// reads over https). */
	req = stage_request_of(e);
	if ((r = source_prepare(&e->reg, &req, &e->transport, err)) < 0 ||
	    (r = start_plugin(e->transport, job, ac, err)) < 0)
		return r;
	for (size_t i = 0; ac->plugins && ac->plugins[i]; i++) {
		struct plugin *p;
		if ((r = registry_require(&e->reg, ac->plugins[i], &p, err)) < 0 ||
		    (r = start_plugin(p, job, ac, err)) < 0)
			return r;
	}
	snprintf(e->st.backend, sizeof(e->st.backend), "%s", e->backend->name);
	e->keep = job->keep_entries ? job->keep_entries : e->backend->desc->backend->keep_entries;
	if ((r = check_caps(e, err)) < 0 || (r = check_root_free(e, err)) < 0 ||
	    (r = check_hooks(job, err)) < 0 || (r = check_backend_preflight(e, err)) < 0 ||
	    (r = preflight_guard(job, ac, e->backend, e->guard, sizeof(e->guard), err)) < 0)
		return r;
	e->guarded = r;
	agent_paths(e);
	/* Every plugin is loaded now: nothing is loaded after PREPARE. */
	e->reg.sealed = 1;
	return preserve_collect(job, e->root, (const char *const *)e->agent_paths,
				job->network_paths ? job->network_paths
						   : e->backend->desc->backend->network_paths,
				e->backend, &e->preserve, err);
}

size_t engine_warnings(const struct engine *e, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < e->preserve.n_unmatched && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "%spreserve.paths item '%s' matches nothing "
				      "on the root: nothing is kept for it", n ? "\n" : "",
				      e->preserve.unmatched[i]);
	return e->preserve.n_unmatched;
}

void engine_close(struct engine *e)
{
	preserve_free(&e->preserve);
	swap_plan_free(&e->plan);
	for (size_t i = 0; e->agent_paths[i]; i++)
		free(e->agent_paths[i]);
	registry_fini(&e->reg);
	if (e->lock_fd >= 0)
		close(e->lock_fd);
}

/* ----------------------------------------------------------------- plan */

static void print_list(FILE *out, const char *title, char **items, size_t n)
{
	fprintf(out, "  %-10s %zu", title, n);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%s%s", i ? " " : ": ", items[i]);
	fputc('\n', out);
}

int engine_plan(struct engine *e, FILE *out, struct reimage_error *err)
{
	const struct job *job = e->job;
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	char **new_names = NULL, **lists[5] = { 0 };
	size_t n_new = 0, counts[5] = { 0 };
	int r = 0;
	struct stage_request req = stage_request_of(e);

	fprintf(out, "job %s (serial %lld) on root %s\n", job->id, job->serial, e->root);
	fprintf(out, "  backend    %s (%s)\n", e->backend->name, e->backend->file);
	fprintf(out, "  image      %s via %s", job->image_url, e->transport->name);
	if (job->image_size >= 0)
		fprintf(out, ", %lld bytes to stage", job->image_size);
	fprintf(out, "%s\n", job->image_sha256 ? ", SHA-256 checked" : ", no SHA-256 given");
	/* The settings in effect: the agent file's group, then the job's on
	 * top, setting by setting. */
	fprintf(out, "  settings\n");
	plugin_print_settings(e->backend, out, "    ");
	if (e->transport != e->backend)
		plugin_print_settings(e->transport, out, "    ");
	/* An image that cannot be reached fails plan, as it would fail STAGE. */
	if ((r = source_reach(&req, err)) < 0)
		return r;
	/* The source's kind, size and entries where known (source.c). */
	source_plan(&req, out, &new_names, &n_new);
	/* Classify the root's entries as the swap will. */
	DIR *d = opendir(e->root);
	for (struct dirent *de; d && (de = readdir(d));) {
		char path[PATH_MAX];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, LAYOUT_DIR))
			continue;
		fs_join(path, sizeof(path), e->root, de->d_name);
		int kept = strlist_has(e->keep, de->d_name);
		int k = !kept && b->is_mount(e->backend->ctx, path, err) > 0 ? 4
			: kept ? 3
			: !new_names ? 0
			: strlist_has((const char *const *)new_names, de->d_name) ? 1 : 2;
		char **nl = realloc(lists[k], (counts[k] + 2) * sizeof(char *));
		if (!nl)
			break;
		lists[k] = nl;
		lists[k][counts[k]++] = strdup(de->d_name);
	}
	if (d)
		closedir(d);
	err_clear(err);
	for (int k = 0; k < 5; k++)
		if (lists[k])
			qsort(lists[k], counts[k], sizeof(char *), strlist_cmp);
	if (new_names) {
		print_list(out, "exchanged", lists[1], counts[1]);
		print_list(out, "retired", lists[2], counts[2]);
		char **added = calloc(n_new + 1, sizeof(char *));
		size_t n_added = 0;
		for (size_t i = 0; added && i < n_new; i++) {
			char path[PATH_MAX];
			fs_join(path, sizeof(path), e->root, new_names[i]);
			if (!fs_exists(path))
				added[n_added++] = new_names[i];
		}
		print_list(out, "added", added, n_added);
		free(added);
	} else {
		print_list(out, "swapped", lists[0], counts[0]);
		fprintf(out, "  (the new image's entries are known after staging)\n");
	}
	print_list(out, "kept", lists[3], counts[3]);
	/* Mount points stay; the image's content for them is copied in. */
	print_list(out, "mounts", lists[4], counts[4]);
	if (counts[4])
		fprintf(out, "  (%s)\n", b->caps & REIMAGE_BCAP_MOUNTS
			? "mount points stay; the image's content for them is copied in, "
			  "the old kept aside until commit"
			: "mount points stay; this backend cannot refresh them: the image's "
			  "content for them is NOT applied");
	fprintf(out, "  preserve   mode %s\n", job->preserve_mode == PRESERVE_MOVE ? "move" : "copy");
	print_list(out, "preserved", e->preserve.paths, e->preserve.n);
	for (size_t i = 0; i < e->preserve.n_unmatched; i++)
		fprintf(out, "  warning    preserve.paths item '%s' matches nothing on the root: "
			"nothing is kept for it\n", e->preserve.unmatched[i]);
	print_list(out, "accounts", e->preserve.users, e->preserve.n_users);
	for (size_t i = 0; i < job->n_hooks; i++)
		fprintf(out, "  hook       %s (timeout %lld s%s)\n", job->hooks[i].path,
			job->hooks[i].timeout, job->hooks[i].sha256 ? ", SHA-256 checked" : "");
	fprintf(out, "  label      %s\n", job->label ? job->label : "(unchanged)");
	if (job->boot_set)
		fprintf(out, "  boot       %s%s%s\n",
			job->boot.command ? job->boot.command
					  : job->boot.kernel ? job->boot.kernel : "(default)",
			job->boot.one_shot ? " (one-shot)" : "",
			job->boot.kexec ? " (kexec; through the firmware if it cannot be loaded)"
					: "");
	if (e->guarded)
		fprintf(out, "  trial      guarded: %s runs as /sbin/init for up to %d boots of the "
			"new image, then falls back to the old one\n", e->guard,
			job->trial_max_attempts);
	else
		fprintf(out, "  trial      not guarded (%s): a new image that never reaches its agent "
			"does not fall back by itself\n",
			job->trial_guard ? "the backend cannot" : "trial.guard = false");
	fprintf(out, "  one-shot   %s\n",
		job->boot.kernel || job->boot.kexec
			? "kexec: the new kernel boots once, the firmware's default after"
		: e->guarded ? "the guard counts boots (the bootloader's default entry is not changed)"
		: "none");
	if ((r = preflight_machine(e->root, job, e->backend, out, err)) < 0)
		return r;
	fprintf(out, "  preflight  image: checked after staging:%s%s%s\n",
		e->guarded ? " init present, executable and built for this machine;" : "",
		job->boot.kernel ? " boot.kernel present;" : "",
		job->required_paths && job->required_paths[0] ? " preflight.required_paths present"
							      : " no required paths");
	fprintf(out, "  quiesce    %s%s\n", b->caps & REIMAGE_BCAP_LOGOUT ? "log users out, " : "",
		"stop unneeded processes");
	fprintf(out, "  reboot     %s\n", job->reboot ? "yes" : "no");
	fprintf(out, "  old image  %s\n",
		job->keep_old_days ? "kept for rollback after commit" : "deleted at commit");
	for (int k = 0; k < 5; k++) {
		for (size_t i = 0; i < counts[k]; i++)
			free(lists[k][i]);
		free(lists[k]);
	}
	for (size_t i = 0; i < n_new; i++)
		free(new_names[i]);
	free(new_names);
	return r;
}

/* --------------------------------------------------------------- phases */

static struct swap_ctx swap_ctx_of(const char *root, const struct plugin *backend)
{
	struct swap_ctx sc = { root, backend->desc->backend, backend->ctx, 0 };
	return sc;
}

static int phase_preflight(struct engine *e, struct reimage_error *err)
{
	return preflight_machine(e->root, e->job, e->backend, NULL, err);
}

static int phase_prepare(struct engine *e, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	struct stat rst, dst;
	int r;

	if (mkdir(e->L.dir, 0700) < 0 && errno != EEXIST) {
		err_sys(err, -errno, "create %s", e->L.dir);
		return -errno;
	}
	if (stat(e->root, &rst) < 0 || lstat(e->L.dir, &dst) < 0) {
		err_sys(err, -errno, "stat %s", e->L.dir);
		return -errno;
	}
	/* Staging must be on the root's volume: the swap is renames only. */
	if (!S_ISDIR(dst.st_mode) || rst.st_dev != dst.st_dev) {
		err_set(err, -EXDEV, REIMAGE_EC_STATE,
			"%s is not a directory on the root's volume; staging must be", e->L.dir);
		return -EXDEV;
	}
	if (chmod(e->L.dir, 0700) < 0) {
		err_sys(err, -errno, "chmod %s", e->L.dir);
		return -errno;
	}
	/* A retired image kept after an earlier commit gives way to this job
	 * (or one whose deletion was cut short is finished). */
	if (fs_exists(e->L.retired) || fs_exists(e->L.deleting)) {
		struct swap_ctx sc = swap_ctx_of(e->root, e->backend);
		log_notice("removing the image retired by an earlier job (%s)", e->L.retired);
		if ((r = swap_retire(&sc, err)) < 0)
			return r;
	}
	if ((r = fs_remove_tree(e->L.staging, err)) < 0)
		return r;
	/* Copied while the old image is whole: after the swap it is in old/. */
	if (e->guarded && (r = trial_install_guard(e->root, e->guard, err)) < 0)
		return r;
	return b->prepare ? b->prepare(e->backend->ctx, e->root, err) : 0;
}

static int phase_stage(struct engine *e, struct reimage_error *err)
{
	struct stage_result res;
	struct stage_request req = stage_request_of(e);
	int64_t t0 = progress_now_ms();
	int r;

	if (e->watch) {
		e->progress.tick = e->watch->progress;
		e->progress.tick_arg = e->watch->arg;
		e->progress.stop = e->watch->stop;
	}
	if (mkdir(e->L.staging, 0700) < 0) {
		err_sys(err, -errno, "create %s", e->L.staging);
		return -errno;
	}
	if ((r = stage_image(&req, &res, err)) < 0 ||
	    (r = preflight_image(e->L.staging, e->job, e->guarded, err)) < 0)
		return r;
	log_notice("staged %llu entries, %llu bytes of files from %llu bytes of image in %.2f s "
		   "(SHA-256 %s%s)", (unsigned long long)res.entries,
		   (unsigned long long)res.bytes_out, (unsigned long long)res.bytes_in,
		   (double)(progress_now_ms() - t0) / 1000.0, res.sha256[0] ? res.sha256 : "none",
		   e->job->image_sha256 ? ", as declared" : ", not checked: the job gives none");
	return 0;
}

static int phase_preserve(struct engine *e, struct reimage_error *err)
{
	int r;
	for (size_t i = 0; i < e->preserve.n_unmatched; i++)
		log_warn("preserve.paths item '%s' matches nothing on %s: nothing is kept for it",
			 e->preserve.unmatched[i], e->root);
	if (e->job->preserve_mode == PRESERVE_COPY &&
	    (r = preserve_copy(&e->preserve, e->root, e->L.staging, err)) < 0)
		return r;
	return preserve_accounts(&e->preserve, e->root, e->L.staging, err);
}

static int phase_hooks(struct engine *e, struct reimage_error *err)
{
	return hooks_run(e->job, e->root, e->L.staging, e->watch ? e->watch->stop : NULL, err);
}

static int phase_label(struct engine *e, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	if (!e->job->label)
		return 0;
	return b->set_label(e->backend->ctx, e->root, e->job->label, err);
}

static int phase_window(struct engine *e, struct reimage_error *err)
{
	return e->watch && e->watch->window ? e->watch->window(e->watch->arg, e->backend, err) : 0;
}

/* Move-mode items travel inside the swap; copy-mode ones are in new/. */
static const char *const *swap_preserves(const struct engine *e)
{
	return e->job->preserve_mode == PRESERVE_MOVE ? (const char *const *)e->preserve.paths
						      : NULL;
}

/* Everything of the swap that can be durable before the outage is made
 * so here, while users still work: the trial armed, the plan built and
 * journaled with its copy.  The plan depends only on the staged tree and
 * the root's top level, which logging users out does not change
 * (phase_swap checks that it still holds).  The journal then reads
 * "started" with no step done: a power cut from here is finished by
 * recover like one mid-swap (old or new, never a mix). */
static int swap_prepare(struct engine *e, struct reimage_error *err)
{
	struct swap_ctx sc = swap_ctx_of(e->root, e->backend);
	int r;

	/* Armed inside new/ before the first rename: whenever the new image's
	 * /sbin/init reaches the top level, even in a swap cut short, the
	 * next boot runs the guard, which finishes the swap's undo. */
	if (e->guarded && (r = trial_arm(&sc, e->L.staging, NULL, e->job->trial_max_attempts,
					 err)) < 0)
		return r;
	if ((r = swap_plan_build(&sc, e->keep, swap_preserves(e), &e->plan, err)) < 0)
		return r;
	for (size_t i = 0; i < e->plan.n_unapplied; i++)
		log_warn("%s/%s is a mount point and backend %s cannot refresh one: the new "
			 "image's content for it is not applied", e->root, e->plan.unapplied[i],
			 e->backend->name);
	/* Set before the write: a journal half made is removed on failure too. */
	e->planned = 1;
	if ((r = swap_journal_plan(&sc, &e->plan, err)) < 0)
		return r;
	/* From here a power cut finishes the swap forward, so the state says
	 * SWAP (written now, outside the outage).  It is also what tells a
	 * journal lost with its copy from a swap that never began. */
	set_phase(e, PHASE_SWAP, "running");
	return state_write(e->root, &e->st, err);
}

static int phase_quiesce(struct engine *e, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	int r;
	/* The staged image reaches the disk while users still work: left
	 * dirty, the swap's one sync would write it inside the outage
	 * (seconds for a large image instead of milliseconds). */
	if ((r = b->sync(e->backend->ctx, e->root, err)) < 0 || (r = swap_prepare(e, err)) < 0)
		return r;
	/* The outage begins: from here to the end of SWAP, the renames, one
	 * sync of the volume and one journal commit.  Logged: the user's
	 * outage is measured from this line (tests/bench/vm_outage.sh). */
	if ((b->caps & REIMAGE_BCAP_LOGOUT) && b->logout) {
		log_notice("job %s: logging users out", e->job->id);
		if ((r = b->logout(e->backend->ctx, e->root, err)) < 0)
			return r;
	}
	return b->quiesce(e->backend->ctx, e->root, err);
}

/* Entries in use that the backend moves at the next boot go into the
 * job's state (and so its report); confirm checks them after the boot. */
static int note_deferred_entries(struct engine *e, struct reimage_error *err)
{
	char line[sizeof(e->st.deferred)];
	int r = swap_deferred_names(e->root, e->st.deferred, sizeof(e->st.deferred), err);
	if (r < 0)
		return r;
	snprintf(line, sizeof(line), "%s", e->st.deferred);
	for (char *p = line; (p = strchr(p, '\n'));)
		*p = ',';
	log_notice("deferred to the boot (in use): %s", line);
	return 0;
}

static int phase_swap(struct engine *e, struct reimage_error *err)
{
	struct swap_ctx sc = swap_ctx_of(e->root, e->backend);
	struct swap_plan *plan = &e->plan;
	struct timespec t0, t1;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	sc.pause_s = e->job->test_swap_pause;
	/* QUIESCE journaled the plan; a stat of each entry confirms it. */
	if ((r = swap_plan_recheck(&sc, e->keep, swap_preserves(e), plan, err)) < 0)
		return r;
	/* swap_run owns the journal from here: it undoes what it did on a
	 * failure, and what it cannot undo stays for recover. */
	e->planned = 0;
	r = swap_run(&sc, plan, err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r == 0 && plan->n_deferred)
		r = note_deferred_entries(e, err);
	if (r == 0) {
		long long us = (long long)(t1.tv_sec - t0.tv_sec) * 1000000 +
			       (t1.tv_nsec - t0.tv_nsec) / 1000;
		e->st.swapped = (int64_t)time(NULL);
		log_notice("swapped %zu exchanged, %zu retired, %zu added, %zu preserved, %zu "
			   "mounts refreshed", plan->count[OP_EXCHANGE], plan->count[OP_RETIRE],
			   plan->count[OP_ADD], plan->count[OP_PEXCHANGE] + plan->count[OP_PMOVE],
			   plan->count[OP_MOUNT]);
		log_notice("swap: %zu entries in %lld µs", plan->n - plan->count[OP_FINAL], us);
	}
	swap_plan_free(plan);
	return r;
}

static int phase_boot(struct engine *e, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	struct reimage_boot boot = e->job->boot;
	int r;
	/* The new image's agent finds its trial checks here, not in a job file. */
	if ((r = health_save(e->root, &e->job->health, err)) < 0)
		return r;
	if (!e->job->boot_set)
		return 0;
	boot.root = e->root;
	return b->set_boot(e->backend->ctx, &boot, err);
}

static int phase_report(struct engine *e, struct reimage_error *err)
{
	(void)err;
	log_notice("job %s: swapped, %s", e->job->id,
		   e->job->reboot ? "rebooting" : "takes effect at the next boot");
	return 0;
}

static int phase_reboot(struct engine *e, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = e->backend->desc->backend;
	if (!e->job->reboot)
		return 0;
	return b->reboot(e->backend->ctx, err);
}

static const struct phase_step {
	enum phase id;
	int (*run)(struct engine *e, struct reimage_error *err);
	int after_swap;  /* a failure here undoes the swap */
	/* Inside the outage: the state is not written (a sync the users
	 * would wait for); QUIESCE wrote it once the plan was durable, the
	 * journal says how far the swap got, and the next phase's state
	 * follows it. */
	int in_outage;
} phases[] = {
	{ PHASE_PREFLIGHT, phase_preflight, 0, 0 },
	{ PHASE_PREPARE, phase_prepare, 0, 0 },
	{ PHASE_STAGE, phase_stage, 0, 0 },
	{ PHASE_PRESERVE, phase_preserve, 0, 0 },
	{ PHASE_HOOKS, phase_hooks, 0, 0 },
	{ PHASE_LABEL, phase_label, 0, 0 },
	{ PHASE_WINDOW, phase_window, 0, 0 },
	{ PHASE_QUIESCE, phase_quiesce, 0, 0 },
	{ PHASE_SWAP, phase_swap, 0, 1 },
	{ PHASE_BOOT, phase_boot, 1, 0 },
	{ PHASE_REPORT, phase_report, 1, 0 },
	{ PHASE_REBOOT, phase_reboot, 1, 0 },
};

static void fail(struct engine *e, const struct phase_step *p, struct reimage_error *err)
{
	struct reimage_error cleanup = { 0 };

	/* A bar cut short (a failure, a stop) ends its line before the cleanup's. */
	progress_end(&e->progress);
	err_prefix(err, "%s", phase_name(p->id));
	snprintf(e->st.error, sizeof(e->st.error), "%s", err->msg);
	/* A refused job wrote nothing: the root's state stays the last job's. */
	if (p->id == PHASE_PREFLIGHT) {
		set_phase(e, p->id, "refused");
		if (e->watch && e->watch->phase)
			e->watch->phase(e->watch->arg, &e->st);
		return;
	}
	struct swap_ctx sc = swap_ctx_of(e->root, e->backend);
	int forget = 0;
	/* The plan journaled before the outage, no rename made: no swap
	 * began, and the journal says so before it is read below. */
	if (e->planned) {
		e->planned = 0;
		if (swap_abandon(e->root, &cleanup) < 0) {
			log_warn("could not close the journal: %s", cleanup.msg);
			err_clear(&cleanup);
		}
	}
	if (p->after_swap) {
		log_notice("undoing the swap from its journal: the old image goes back in place");
		/* Journaled as a rollback, with the failure as its reason. */
		if (swap_rollback(&sc, err->msg, &cleanup) < 0) {
			log_error("the swap could not be undone: %s; run `reimage recover --undo`",
				  cleanup.msg);
			err_clear(&cleanup);
		}
	}
	/* Staging may hold entries of the old image unless the journal says
	 * no swap began or it was undone (a swap whose own undo failed, in
	 * SWAP, leaves "started"): then everything stays for recover. */
	enum swap_journal_state js;
	if (swap_journal_state(e->root, &js, &cleanup) < 0 ||
	    (js != SWAP_NONE && js != SWAP_UNDONE)) {
		log_error("the swap is not undone: %s and the journal stay for `reimage recover`",
			  e->L.staging);
		err_clear(&cleanup);
	} else {
		/* Nothing of a failed job stays: the root is as it was.  The
		 * guard goes first: its symlink may be in new/. */
		if (trial_disarm(&sc, &cleanup) < 0) {
			log_warn("could not end the trial: %s", cleanup.msg);
			err_clear(&cleanup);
		}
		/* A large image takes a while to delete: say so, or a stopped
		 * job looks hung. */
		if (fs_exists(e->L.staging))
			log_notice("removing the staged image %s; the root stays as it was",
				   e->L.staging);
		if (fs_remove_tree(e->L.staging, &cleanup) < 0) {
			err_prefix_about(&cleanup, "could not remove", e->L.staging);
			log_warn("%s", cleanup.msg);
			err_clear(&cleanup);
		} else {
			forget = 1;
		}
	}
	/* A stop before the swap is no failure of the job or the machine. */
	int stopped = !p->after_swap && e->watch && e->watch->stop && *e->watch->stop;
	set_phase(e, p->id, stopped ? "cancelled" : "failed");
	if (state_write(e->root, &e->st, &cleanup) < 0) {
		log_warn("could not write the job state: %s", cleanup.msg);
		err_clear(&cleanup);
	} else if (forget && swap_forget(e->root, &cleanup) < 0) {
		/* An undone swap's journal has served once staging is gone and
		 * the state says the job failed: not before, or a crash between
		 * would leave a state at SWAP with no journal (read as damage). */
		log_warn("could not remove the journal: %s", cleanup.msg);
		err_clear(&cleanup);
	}
	if (e->watch && e->watch->phase)
		e->watch->phase(e->watch->arg, &e->st);
}

int engine_run(struct engine *e, struct reimage_error *err)
{
	int r;

	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		const struct phase_step *p = &phases[i];
		progress_end(&e->progress);  /* nothing shown of a step that is over */
		set_phase(e, p->id, p->after_swap ? "pending" : "running");
		/* PREPARE creates .reimage/: its state is written once it exists. */
		if (p->id > PHASE_PREPARE && !p->in_outage &&
		    (r = state_write(e->root, &e->st, err)) < 0) {
			fail(e, p, err);
			return r;
		}
		if (e->watch && e->watch->phase)
			e->watch->phase(e->watch->arg, &e->st);
		log_notice("phase %s", phase_name(p->id));
		/* A stop request is honoured up to the swap, never inside it. */
		if (!p->after_swap && e->watch && e->watch->stop && *e->watch->stop) {
			err_set(err, -ECANCELED, REIMAGE_EC_STATE, "stopped on request before %s",
				phase_name(p->id));
			fail(e, p, err);
			return -ECANCELED;
		}
		if ((r = p->run(e, err)) < 0) {
			fail(e, p, err);
			return r;
		}
		if (p->id == PHASE_PREPARE && (r = state_write(e->root, &e->st, err)) < 0) {
			fail(e, p, err);
			return r;
		}
	}
	if (e->watch && e->watch->phase)
		e->watch->phase(e->watch->arg, &e->st);
	return 0;
}

/* ------------------------------------------------------- root commands */

int root_open(struct root_ctx *rc, const char *root, const char *backend,
	      const struct agent_conf *ac, struct reimage_error *err)
{
	int r;

	memset(rc, 0, sizeof(*rc));
	rc->lock_fd = -1;
	search_path(rc->search_path, 16, ac ? ac->plugin_path : NULL, NULL);
	if ((r = registry_init(&rc->reg, rc->search_path, err)) < 0)
		return r;
	if (!realpath(root, rc->root)) {
		err_sys(err, -errno, "root %s", root);
		return -errno;
	}
	if ((r = lock_root(rc->root, &rc->lock_fd, err)) < 0)
		return r;
	r = state_read(rc->root, &rc->st, err);
	if (r < 0 && r != -ENOENT)
		return r;
	rc->have_state = r == 0;
	err_clear(err);
	if (!backend)
		backend = rc->have_state && rc->st.backend[0] ? rc->st.backend : "auto";
	if ((r = registry_backend(&rc->reg, backend, &rc->backend, err)) < 0 ||
	    (r = start_plugin(rc->backend, NULL, ac, err)) < 0)
		return r;
	return 0;
}

int root_open_readonly(struct root_ctx *rc, const char *root, struct reimage_error *err)
{
	int r;

	memset(rc, 0, sizeof(*rc));
	rc->lock_fd = -1;
	if (!realpath(root, rc->root)) {
		err_sys(err, -errno, "root %s", root);
		return -errno;
	}
	/* No lock: the state is replaced whole by a rename (state_write), so
	 * a reader sees the last state or the one before, never a torn one. */
	r = state_read(rc->root, &rc->st, err);
	if (r < 0 && r != -ENOENT)
		return r;
	rc->have_state = r == 0;
	err_clear(err);
	return 0;
}

void root_close(struct root_ctx *rc)
{
	registry_fini(&rc->reg);
	if (rc->lock_fd >= 0)
		close(rc->lock_fd);
}

static int root_set(struct root_ctx *rc, const char *status, const char *error,
		    struct reimage_error *err)
{
	snprintf(rc->st.status, sizeof(rc->st.status), "%s", status);
	snprintf(rc->st.error, sizeof(rc->st.error), "%s", error ? error : "");
	return state_write(rc->root, &rc->st, err);
}

/* The swap is undone by a rollback: the new image is staging again.  End
 * the trial (the guard's symlink may be in new/), remove staging, record
 * "rolled-back", and only then drop the journal: until it goes, its
 * "rollback" record makes recover redo these steps (each idempotent) and
 * confirm refuse. */
static int rolled_back(struct root_ctx *rc, const char *reason, struct reimage_error *err)
{
	struct swap_ctx sc = swap_ctx_of(rc->root, rc->backend);
	struct layout L;
	int r;

	layout_init(&L, rc->root);
	if (fs_exists(L.staging))
		log_notice("removing the new image %s", L.staging);
	if ((r = trial_disarm(&sc, err)) < 0 || (r = fs_remove_tree(L.staging, err)) < 0)
		return r;
	health_forget(rc->root);
	snprintf(rc->st.phase, sizeof(rc->st.phase), "%s", phase_name(PHASE_FALLBACK));
	if ((r = root_set(rc, "rolled-back", reason, err)) < 0)
		return r;
	return swap_forget(rc->root, err);
}

/* The journal's state and, for a rollback, its reason (reason: cap bytes). */
static int journal_facts(const char *root, enum swap_journal_state *ret_js, int *ret_rollback,
			 char *reason, size_t cap, struct reimage_error *err)
{
	struct swap_plan plan;
	int r = swap_journal_read(root, ret_js, &plan, err);
	if (r < 0)
		return r;
	*ret_rollback = plan.rollback;
	snprintf(reason, cap, "%s", plan.reason ? plan.reason : "rolled back");
	swap_plan_free(&plan);
	return 0;
}

/*
 * recover: finish whatever command was cut short, from the journal and
 * the tree:
 *   deleting/ present     confirm's deletion of the retired image: finished
 *   ROLLBACK, or UNDONE   a rollback (or the guard's fallback): its undo
 *     by a rollback       finished, then rolled_back()
 *   STARTED               the swap completed (undo: undone), state "pending"
 *   DAMAGED               refused, nothing touched (the message says how on)
 *   NONE, UNDONE          no swap began or it was undone: staging removed
 */
int root_recover(struct root_ctx *rc, int undo, struct reimage_error *err)
{
	struct swap_ctx sc = swap_ctx_of(rc->root, rc->backend);
	enum swap_journal_state js;
	char reason[REIMAGE_ERRMSG_MAX], why[REIMAGE_ERRMSG_MAX + 64];
	struct layout L;
	int r, rollback;

	layout_init(&L, rc->root);
	if (fs_exists(L.deleting))
		return swap_retire(&sc, err);
	if ((r = journal_facts(rc->root, &js, &rollback, reason, sizeof(reason), err)) < 0)
		return r;
	if (js == SWAP_ROLLBACK || (js == SWAP_UNDONE && rollback)) {
		if ((r = swap_recover(&sc, 1, err)) < 0)
			return r;
		snprintf(why, sizeof(why), "%s (rollback finished by `reimage recover`)", reason);
		return rolled_back(rc, why, err);
	}
	if (js == SWAP_NONE || js == SWAP_UNDONE) {
		/* No swap began (or it was undone): a job cut short before its
		 * swap leaves only staging (and the guard) behind.  Staging
		 * holds no entry of the old image: with no journal nor copy,
		 * no rename of the swap has happened (both are durable before
		 * the first). */
		if ((r = trial_disarm(&sc, err)) < 0 || (r = fs_remove_tree(L.staging, err)) < 0)
			return r;
		/* The state first, the journal after (see fail()). */
		if (rc->have_state && (!strcmp(rc->st.status, "running") ||
				       !strcmp(rc->st.status, "pending")) &&
		    (r = root_set(rc, "failed", "interrupted before its swap completed; "
				  "the old image stays", err)) < 0)
			return r;
		return swap_forget(rc->root, err);
	}
	if ((r = swap_recover(&sc, undo, err)) < 0)
		return r;
	if (undo) {
		/* Journaled as a rollback: cut short here, recover finishes it
		 * through the branch above. */
		if ((r = trial_disarm(&sc, err)) < 0 ||
		    (r = fs_remove_tree(L.staging, err)) < 0)
			return r;
		if ((r = root_set(rc, "failed", "swap undone by `reimage recover --undo`", err)) < 0)
			return r;
		return swap_forget(rc->root, err);
	}
	return rc->have_state ? root_set(rc, "pending", NULL, err) : 0;
}

int root_rollback(struct root_ctx *rc, const char *reason, struct reimage_error *err)
{
	struct swap_ctx sc = swap_ctx_of(rc->root, rc->backend);
	enum swap_journal_state js;
	struct layout L;
	int r;

	layout_init(&L, rc->root);
	if ((r = swap_journal_state(rc->root, &js, err)) < 0)
		return r;
	if (fs_exists(L.deleting)) {
		err_set(err, -EBUSY, REIMAGE_EC_STATE,
			"%s: confirm has begun deleting the retired image (.reimage/deleting): "
			"there is nothing whole to roll back to; run `reimage confirm` to finish "
			"the deletion", rc->root);
		return -EBUSY;
	}
	/* A rollback cut short is finished (its reason is the journal's). */
	if (js == SWAP_ROLLBACK)
		return root_recover(rc, 1, err);
	if (js != SWAP_DONE || !fs_exists(L.retired)) {
		err_set(err, -ENOENT, REIMAGE_EC_STATE,
			"%s: no retired image to roll back to (.reimage/old is gone or the swap "
			"did not complete)", rc->root);
		return -ENOENT;
	}
	log_notice("rolling back %s: swapping the retired image back in", rc->root);
	if ((r = swap_rollback(&sc, reason, err)) < 0)
		return r;
	return rolled_back(rc, reason, err);
}

int root_guard_fell_back(struct root_ctx *rc, struct reimage_error *err)
{
	struct swap_ctx sc = swap_ctx_of(rc->root, rc->backend);
	struct trial_info ti;
	char reason[REIMAGE_ERRMSG_MAX + 64];
	int r;

	if ((r = trial_state(rc->root, &ti, err)) < 0)
		return r;
	if (!ti.armed || ti.fallback == TRIAL_FB_NONE)
		return 0;
	snprintf(reason, sizeof(reason), "the boot guard fell back to the old image: %s%s%s",
		 ti.reason, ti.error[0] ? "; " : "", ti.error);
	/* A guard cut short in its undo (or failed in it) left the journal
	 * "started", "swapped" or "rollback": this image runs, so the undo
	 * is finished here with the backend, as a rollback. */
	if ((r = swap_rollback(&sc, reason, err)) < 0)
		return r;
	/* Mounted entries the guard could not restore (a separate /boot). */
	if ((r = trial_restore_mounts(&sc, err)) < 0)
		return r;
	log_error("job %s: %s", rc->st.job, reason);
	if ((r = rolled_back(rc, reason, err)) < 0)
		return r;
	return 1;
}

/* What PREPARE saved for the new image, brought back before it commits. */
static int backend_restore(struct root_ctx *rc, struct reimage_error *err)
{
	const struct reimage_backend_ops *b = rc->backend->desc->backend;
	int r;

	if (!OPS_HAS(b, struct reimage_backend_ops, restore))
		return 0;
	if ((r = b->restore(rc->backend->ctx, rc->root, err)) < 0)
		err_prefix(err, "%s: restore what PREPARE saved", b->name);
	return r;
}

int root_confirm(struct root_ctx *rc, struct reimage_error *err)
{
	struct swap_ctx sc = swap_ctx_of(rc->root, rc->backend);
	enum swap_journal_state js;
	char reason[REIMAGE_ERRMSG_MAX];
	struct layout L;
	int r, rollback;

	layout_init(&L, rc->root);
	/* A deletion of the retired image begun is only ever finished. */
	if (fs_exists(L.deleting))
		return swap_retire(&sc, err);
	if ((r = journal_facts(rc->root, &js, &rollback, reason, sizeof(reason), err)) < 0)
		return r;
	/* Never commit a tree the journal does not say is whole and new. */
	if (js == SWAP_STARTED || js == SWAP_ROLLBACK || js == SWAP_DAMAGED ||
	    (js == SWAP_UNDONE && rollback)) {
		err_set(err, -EBUSY, REIMAGE_EC_STATE,
			"%s: the %s was interrupted; run `reimage recover` first", rc->root,
			js == SWAP_STARTED || js == SWAP_DAMAGED ? "swap" : "rollback");
		return -EBUSY;
	}
	if (rc->have_state && !strcmp(rc->st.status, "pending") && js == SWAP_DONE) {
		/* What the boot was to move must be moved before anything commits. */
		if ((r = swap_deferred_check(rc->root, err)) < 0)
			return r;
		snprintf(rc->st.phase, sizeof(rc->st.phase), "%s", phase_name(PHASE_COMMIT));
		if ((r = backend_restore(rc, err)) < 0)
			return r;
		/* The new image proved itself: its own init is put back before
		 * "committed" is on disk, which is before the old image goes. */
		if ((r = trial_disarm(&sc, err)) < 0 ||
		    (r = root_set(rc, "committed", NULL, err)) < 0)
			return r;
		health_forget(rc->root);
		log_notice("job %s committed: running the new image", rc->st.job);
	}
	/* The retired image stays keep_old_days after the swap, then goes. */
	if (fs_exists(L.retired) && rc->have_state && !strcmp(rc->st.status, "committed") &&
	    time(NULL) >= rc->st.swapped + rc->st.keep_old_days * 86400) {
		log_notice("removing the retired image %s", L.retired);
		if ((r = swap_retire(&sc, err)) < 0)
			return r;
		log_notice("retired image removed");
	}
	return 0;
}

/* The shape is in docs/json.md. */
static int root_status_json(struct root_ctx *rc, const struct layout *L, FILE *out,
			    struct reimage_error *err)
{
	json_t *o = rc->have_state
		? json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:s, s:o, s:b}", "root",
			    rc->root, "job", rc->st.job, "serial", (json_int_t)rc->st.serial,
			    "phase", rc->st.phase, "status", rc->st.status, "backend",
			    rc->st.backend, "updated", (json_int_t)rc->st.time, "swapped",
			    (json_int_t)rc->st.swapped, "error", rc->st.error, "deferred",
			    state_names_json(rc->st.deferred), "retired", fs_exists(L->retired))
		: json_pack("{s:s, s:n}", "root", rc->root, "job");
	int r = 0;

	if (!o || json_dumpf(o, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0 ||
	    fputc('\n', out) == EOF) {
		err_set(err, -EIO, REIMAGE_EC_IO, "write the status as JSON");
		r = -EIO;
	}
	json_decref(o);
	return r;
}

int root_status(struct root_ctx *rc, FILE *out, int json, struct reimage_error *err)
{
	struct layout L;
	char when[64];
	time_t t = (time_t)rc->st.time;

	layout_init(&L, rc->root);
	if (json)
		return root_status_json(rc, &L, out, err);
	if (!rc->have_state) {
		fprintf(out, "root %s: no job has run here\n", rc->root);
		return 0;
	}
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&t));
	fprintf(out, "root     %s\njob      %s (serial %lld)\nphase    %s\nstatus   %s\n"
		"backend  %s\nupdated  %s\n", rc->root, rc->st.job, rc->st.serial, rc->st.phase,
		rc->st.status, rc->st.backend, when);
	if (rc->st.error[0])
		fprintf(out, "error    %s\n", rc->st.error);
	/* Entries the swap left to the boot (one a line in the state). */
	for (const char *d = rc->st.deferred; *d;) {
		size_t n = strcspn(d, "\n");
		fprintf(out, "deferred %.*s (moved at the boot)\n", (int)n, d);
		d += n + (d[n] == '\n');
	}
	fprintf(out, "retired  %s\n", fs_exists(L.deleting) ? "being deleted (`reimage confirm` "
		"finishes it; no rollback)" : fs_exists(L.retired) ? "present (rollback possible)"
		: "none");
	return 0;
}
