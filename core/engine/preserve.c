/*
 * preserve.c -- PRESERVE (see preserve.h).
 */
#define _GNU_SOURCE
#include "preserve.h"
#include "error.h"
#include "fsutil.h"
#include "options.h"
#include "log.h"
#include "registry.h"
#include "stage.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Regular login accounts when users = "all" (Debian's UID_MIN..UID_MAX). */
#define USER_UID_MIN 1000
#define USER_UID_MAX 59999
#define ACCOUNT_FILE_MAX (16u << 20)

static int push(char ***list, size_t *n, const char *s, struct reimage_error *err)
{
	char **l = realloc(*list, (*n + 2) * sizeof(char *));
	if (!l || !(l[*n] = strdup(s))) {
		if (l)
			*list = l;
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	(*n)++;
	l[*n] = NULL;
	*list = l;
	return 0;
}

/* Add the paths under root matching pattern (relative, glob).  named:
 * the administrator wrote it (preserve.paths): one that matches nothing
 * is noted in set->unmatched, since a typo would lose what it meant to
 * keep without a word. */
static int add_glob(struct preserve_set *set, const char *root, const char *pattern, int named,
		    struct reimage_error *err)
{
	char full[PATH_MAX];
	size_t rl = strlen(root);
	glob_t g;
	int r = 0;

	while (*pattern == '/')
		pattern++;
	if (fs_join(full, sizeof(full), root, pattern) < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_CONFIG, "preserve %s: path too long", pattern);
		return -ENAMETOOLONG;
	}
	if (glob(full, GLOB_NOSORT, NULL, &g) != 0)  /* nothing matches: nothing to keep */
		return named ? push(&set->unmatched, &set->n_unmatched, pattern, err) : 0;
	for (size_t i = 0; i < g.gl_pathc && r == 0; i++) {
		const char *rel = g.gl_pathv[i] + rl;
		while (*rel == '/')
			rel++;
		/* glob follows symlinks in the middle of a path; we never do. */
		if ((r = fs_parents_real(root, rel, err)) < 0) {
			err_prefix(err, "preserve %s", pattern);
			break;
		}
		if (*rel)
			r = push(&set->paths, &set->n, rel, err);
	}
	globfree(&g);
	return r;
}

/* Sort, drop duplicates and items inside another item. */
static void normalise(struct preserve_set *set)
{
	size_t o = 0;
	if (!set->n)
		return;
	qsort(set->paths, set->n, sizeof(char *), strlist_cmp);
	for (size_t i = 0; i < set->n; i++) {
		size_t len = o ? strlen(set->paths[o - 1]) : 0;
		if (o && strncmp(set->paths[i], set->paths[o - 1], len) == 0 &&
		    (set->paths[i][len] == '\0' || set->paths[i][len] == '/')) {
			free(set->paths[i]);
			continue;
		}
		set->paths[o++] = set->paths[i];
	}
	set->n = o;
	set->paths[o] = NULL;
}

/* Keep the account if the job wants it: its name, and its home folder. */
static int add_account(struct preserve_set *set, const struct job *job, const char *root,
		       const char *name, const char *home, int login, struct reimage_error *err)
{
	int wanted = job->users_all ? login : strlist_has(job->users, name);
	int r;

	if (!wanted)
		return 0;
	if ((r = push(&set->users, &set->n_users, name, err)) < 0)
		return r;
	if (home && home[0] == '/' && strcmp(home, "/") != 0)
		r = add_glob(set, root, home, 0, err);
	return r;
}

/* The accounts of the old image's passwd. */
static int add_passwd_users(struct preserve_set *set, const struct job *job, const char *root,
			    const char *path, struct reimage_error *err)
{
	char *data = NULL, *save = NULL;
	int r;

	if (job->users_all && !fs_exists(path))
		return 0;  /* no accounts on this root */
	if ((r = fs_read_small(path, ACCOUNT_FILE_MAX, &data, NULL, err)) < 0) {
		err_prefix(err, "preserve users");
		return r;
	}
	for (char *line = strtok_r(data, "\n", &save); line && r == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char *f[7] = { 0 }, *p = line;
		for (int i = 0; i < 7 && p; i++) {
			f[i] = p;
			p = strchr(p, ':');
			if (p)
				*p++ = '\0';
		}
		if (!f[6])
			continue;
		long uid = strtol(f[2], NULL, 10);
		r = add_account(set, job, root, f[0], f[5],
				uid >= USER_UID_MIN && uid <= USER_UID_MAX, err);
	}
	free(data);
	return r;
}

struct directory_walk {
	struct preserve_set *set;
	const struct job *job;
	const char *root;
	struct reimage_error *err;
};

static int add_directory_user(void *arg, const struct reimage_account *a)
{
	struct directory_walk *w = arg;
	return add_account(w->set, w->job, w->root, a->name, a->home, a->login, w->err);
}

/* Users to keep, with their home folders: from the backend's directory
 * service where it has one, else from the old image's passwd. */
static int add_users(struct preserve_set *set, const struct job *job, const char *root,
		     struct reimage_error *err)
{
	const struct plugin *b = set->backend;
	char path[PATH_MAX];
	int r;

	if (!job->users_all && (!job->users || !job->users[0]))
		return 0;
	if (b && OPS_HAS(b->desc->backend, struct reimage_backend_ops, accounts_list)) {
		struct directory_walk w = { set, job, root, err };
		snprintf(path, sizeof(path), "the directory service of %s", root);
		r = b->desc->backend->accounts_list(b->ctx, root, add_directory_user, &w, err);
	} else {
		fs_join(path, sizeof(path), root, "etc/passwd");
		r = add_passwd_users(set, job, root, path, err);
	}
	for (size_t i = 0; r == 0 && job->users && job->users[i]; i++)
		if (!strlist_has((const char *const *)set->users, job->users[i])) {
			err_set(err, -ENOENT, REIMAGE_EC_CONFIG,
				"%s: preserve.users: no user '%s' in %s", job->file, job->users[i], path);
			r = -ENOENT;
		}
	return r;
}

int preserve_collect(const struct job *job, const char *root, const char *const *agent_paths,
		     const char *const *network, const struct plugin *backend,
		     struct preserve_set *set, struct reimage_error *err)
{
	/* The root's own path, without a trailing slash: "" for "/". */
	size_t rl = strlen(root);
	int r = 0;

	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	memset(set, 0, sizeof(*set));
	set->backend = backend;
	for (; job->preserve_agent && agent_paths && *agent_paths && r == 0; agent_paths++) {
		const char *a = *agent_paths;
		if (strncmp(a, root, rl) == 0 && a[rl] == '/' && a[rl + 1])
			r = add_glob(set, root, a + rl + 1, 0, err);
	}
	for (; job->preserve_network && network && *network && r == 0; network++)
		r = add_glob(set, root, *network, 0, err);
	if (r == 0)
		r = add_users(set, job, root, err);
	for (size_t i = 0; job->paths && job->paths[i] && r == 0; i++)
		r = add_glob(set, root, job->paths[i], 1, err);
	if (r < 0) {
		preserve_free(set);
		return r;
	}
	normalise(set);
	return 0;
}

void preserve_free(struct preserve_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->paths[i]);
	for (size_t i = 0; i < set->n_users; i++)
		free(set->users[i]);
	for (size_t i = 0; i < set->n_unmatched; i++)
		free(set->unmatched[i]);
	free(set->paths);
	free(set->users);
	free(set->unmatched);
	memset(set, 0, sizeof(*set));
}

int preserve_copy_tree(const char *src, const char *dst, struct reimage_error *err)
{
	struct archive *rd = stage_disk_reader(), *wr = stage_disk_writer();
	struct archive_entry_linkresolver *links = archive_entry_linkresolver_new();
	struct archive_entry *entry = archive_entry_new(), *spare = NULL;
	size_t sl = strlen(src);
	char path[PATH_MAX];
	uint64_t bytes = 0;
	int r = 0;

	if (!rd || !wr || !links || !entry) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	/* Hard links inside the tree stay hard links. */
	archive_entry_linkresolver_set_strategy(links, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	if (archive_read_disk_open(rd, src) != ARCHIVE_OK) {
		err_set(err, -EIO, REIMAGE_EC_IO, "copy %s: %s", src, archive_error_string(rd));
		r = -EIO;
		goto out;
	}
	for (;;) {
		archive_entry_clear(entry);
		int st = archive_read_next_header2(rd, entry);
		if (st == ARCHIVE_EOF)
			break;
		if (st < ARCHIVE_WARN) {
			err_set(err, -EIO, REIMAGE_EC_IO, "copy %s: %s", src, archive_error_string(rd));
			r = -EIO;
			break;
		}
		archive_read_disk_descend(rd);
		const char *name = archive_entry_pathname(entry);
		if (snprintf(path, sizeof(path), "%s%s", dst, name + sl) >= (int)sizeof(path)) {
			err_set(err, -ENAMETOOLONG, REIMAGE_EC_IO, "copy %s: path too long", name);
			r = -ENAMETOOLONG;
			break;
		}
		archive_entry_copy_pathname(entry, path);
		/* Hard links inside the tree stay hard links: the resolver names
		 * the first (already rewritten) path of each inode. */
		struct archive_entry *e = entry;
		archive_entry_linkify(links, &e, &spare);
		if (!e)
			e = entry;
		if (archive_write_header(wr, e) < ARCHIVE_WARN) {
			int en = archive_errno(wr) ? archive_errno(wr) : EIO;
			err_set(err, -en, REIMAGE_EC_IO, "copy %s: %s", path, archive_error_string(wr));
			r = -en;
			break;
		}
		if (archive_entry_size(e) > 0 && !archive_entry_hardlink(e) &&
		    (r = stage_copy_data(rd, wr, &bytes, path, err)) < 0)
			break;
		if (archive_write_finish_entry(wr) < ARCHIVE_WARN) {
			int en = archive_errno(wr) ? archive_errno(wr) : EIO;
			err_set(err, -en, REIMAGE_EC_IO, "copy %s: %s", path, archive_error_string(wr));
			r = -en;
			break;
		}
	}
out:
	if (rd)
		archive_read_free(rd);
	if (wr)
		archive_write_free(wr);
	if (links)
		archive_entry_linkresolver_free(links);
	if (entry)
		archive_entry_free(entry);
	return r;
}

int preserve_copy(const struct preserve_set *set, const char *root, const char *staging,
		  struct reimage_error *err)
{
	char src[PATH_MAX], dst[PATH_MAX], tmpdir[PATH_MAX];
	int r;

	/* Staging's own directory (.reimage) holds the parents being made. */
	snprintf(tmpdir, sizeof(tmpdir), "%s", staging);
	*strrchr(tmpdir, '/') = '\0';
	for (size_t i = 0; i < set->n; i++) {
		const char *p = set->paths[i];
		fs_join(src, sizeof(src), root, p);
		fs_join(dst, sizeof(dst), staging, p);
		if ((r = fs_parents_real(staging, p, err)) < 0 || (r = fs_remove_tree(dst, err)) < 0 ||
		    (r = fs_make_parents(staging, p, root, tmpdir, err)) < 0 ||
		    (r = preserve_copy_tree(src, dst, err)) < 0) {
			err_prefix(err, "preserve %s", p);
			return r;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ accounts */

/* The first field (name) of an account line, as length. */
static size_t name_len(const char *line)
{
	return strcspn(line, ":\n");
}

static const char *find_line(const char *data, const char *name)
{
	size_t nl = strlen(name);
	for (const char *l = data; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (name_len(l) == nl && strncmp(l, name, nl) == 0)
			return l;
	return NULL;
}

/* Replace or append the named users' lines of old_file in new_file. */
static int merge_file(const struct preserve_set *set, const char *root, const char *staging,
		      const char *rel, struct reimage_error *err)
{
	char op[PATH_MAX], np[PATH_MAX];
	char *old = NULL, *cur = NULL, *out = NULL;
	size_t cur_len = 0, out_len = 0;
	struct stat st;
	FILE *f;
	int r;

	fs_join(op, sizeof(op), root, rel);
	fs_join(np, sizeof(np), staging, rel);
	if (!fs_exists(op) || lstat(np, &st) < 0)
		return 0;  /* the old or the new image has no such file */
	if ((r = fs_read_small(op, ACCOUNT_FILE_MAX, &old, NULL, err)) < 0 ||
	    (r = fs_read_small(np, ACCOUNT_FILE_MAX, &cur, &cur_len, err)) < 0)
		goto out;
	f = open_memstream(&out, &out_len);
	if (!f) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	/* The new image's lines, but a preserved user's own line wins. */
	for (const char *l = cur; *l;) {
		size_t len = strcspn(l, "\n");
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)name_len(l), l);
		const char *mine = strlist_has((const char *const *)set->users, name) ? find_line(old, name)
										   : NULL;
		if (mine)
			fprintf(f, "%.*s\n", (int)strcspn(mine, "\n"), mine);
		else if (len)
			fprintf(f, "%.*s\n", (int)len, l);
		l += len + (l[len] == '\n');
	}
	/* Users the new image does not know yet. */
	for (size_t i = 0; i < set->n_users; i++) {
		const char *mine = find_line(old, set->users[i]);
		if (mine && !find_line(cur, set->users[i]))
			fprintf(f, "%.*s\n", (int)strcspn(mine, "\n"), mine);
	}
	fclose(f);
	r = fs_write_atomic(np, out, out_len, &st, err);
out:
	if (r < 0)
		err_prefix(err, "merge accounts into %s", rel);
	free(old);
	free(cur);
	free(out);
	return r;
}

int preserve_accounts(const struct preserve_set *set, const char *root, const char *staging,
		      struct reimage_error *err)
{
	/* The user's personal group has the user's name: merged by name
	 * like the user's own lines. */
	static const char *const files[] = { "etc/passwd", "etc/shadow", "etc/group",
					     "etc/gshadow", NULL };
	const struct plugin *b = set->backend;
	int r;

	if (!set->n_users)
		return 0;
	if (b && OPS_HAS(b->desc->backend, struct reimage_backend_ops, accounts_copy))
		return b->desc->backend->accounts_copy(b->ctx, root, staging,
						       (const char *const *)set->users, err);
	for (size_t i = 0; files[i]; i++)
		if ((r = merge_file(set, root, staging, files[i], err)) < 0)
			return r;
	return 0;
}
