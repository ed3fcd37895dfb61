/*
 * preserve.h -- PRESERVE: what the administrator named is kept at the
 * same place in the new image.  The set is collected from the job
 * (agent, network, users, paths) against the live root; move-mode items
 * are renamed during the swap (swap.c), copy-mode items are copied into
 * staging here while the user keeps working.  Account entries of the
 * preserved users are merged into the staged passwd, shadow, group and
 * gshadow in both modes.
 */
#ifndef REIMAGE_PRESERVE_H
#define REIMAGE_PRESERVE_H

#include "config.h"

struct plugin;

struct preserve_set {
	char **paths;      /* relative to the root, outermost only, sorted */
	size_t n;
	char **users;      /* account names whose entries are merged */
	size_t n_users;
	char **unmatched;  /* preserve.paths items that match nothing on the root */
	size_t n_unmatched;
	const struct plugin *backend;  /* whose directory service holds the accounts, if any */
};

/* agent_paths: absolute paths of the agent's own files (binary, plugins,
 * configuration, state); those under the root are kept when
 * job->preserve_agent is set.  network: the backend's set.  backend: the
 * started backend; its accounts_list/accounts_copy hooks, if it has
 * them, replace etc/passwd for the users' accounts. */
int preserve_collect(const struct job *job, const char *root, const char *const *agent_paths,
		     const char *const *network, const struct plugin *backend,
		     struct preserve_set *set, struct reimage_error *err);
void preserve_free(struct preserve_set *set);
/* Copy every item from root into staging (copy mode). */
int preserve_copy(const struct preserve_set *set, const char *root, const char *staging,
		  struct reimage_error *err);
/* Merge the users' account entries from root into staging (etc/passwd
 * and friends, or the backend's directory service). */
int preserve_accounts(const struct preserve_set *set, const char *root, const char *staging,
		      struct reimage_error *err);
/* Copy one tree with every piece of metadata (libarchive disk reader into
 * the staging writer); symlinks copied as links, never followed. */
int preserve_copy_tree(const char *src, const char *dst, struct reimage_error *err);

#endif
