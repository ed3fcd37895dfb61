/*
 * accounts.c -- the users' accounts on macOS: Open Directory's local
 * node, not etc/passwd (which holds only a few system accounts there).
 *
 * The node of a root is the directory ROOT/private/var/db/dslocal/nodes/
 * Default, one property list per record (users/alice.plist holds the
 * user's attributes and password hash).  dscl reads and writes such a
 * node as files with `dscl -f NODE localonly ... /Local/Target/...`, so
 * neither the running system's directory service nor its caches are
 * involved, and the staged image's node is changed before it ever runs:
 *
 *   list (PREFLIGHT)  dscl -f OLD localonly -list /Local/Target/Users
 *                     UniqueID, then the same for NFSHomeDirectory;
 *                     login accounts are uid 501 and up, names not
 *                     starting with '_' (macOS's service accounts).
 *   copy (PRESERVE)   each user's record file is copied into the staged
 *                     node (mode 0600), replacing a record of the same
 *                     name; the groups that list the user (dscl -search
 *                     GroupMembership) get the user merged into their
 *                     staged record (dscl -merge: no duplicates).  A group
 *                     the new image lacks is logged and skipped.
 */
#define _GNU_SOURCE
#include "macos.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NODE_DIR "private/var/db/dslocal/nodes/Default"
#define USER_UID_MIN 501
#define USER_UID_END 0x80000000u

static int node_of(struct macos *mc, const char *root, char *buf, size_t cap,
		   struct reimage_error *err)
{
	if (snprintf(buf, cap, "%s/%s", strcmp(root, "/") ? root : "", NODE_DIR) >= (int)cap)
		return macos_fail(mc, err, ENAMETOOLONG, "accounts of %s", root);
	return 0;
}

/* A record name that is safe as a file name in the node. */
static int check_name(struct macos *mc, const char *name, struct reimage_error *err)
{
	if (!name[0] || name[0] == '.' || name[0] == '-' || strchr(name, '/')) {
		mc->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
				"accounts: '%s' is not an account name", name);
		return -EINVAL;
	}
	return 0;
}

/* The value dscl -list printed for name ("name   value" lines), copied
 * into buf; NULL if name has none. */
static const char *value_of(const char *listing, const char *name, char *buf, size_t cap)
{
	size_t nl = strlen(name);
	for (const char *l = listing; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, name, nl) == 0 && (l[nl] == ' ' || l[nl] == '\t')) {
			const char *v = l + nl + strspn(l + nl, " \t");
			snprintf(buf, cap, "%.*s", (int)strcspn(v, "\n"), v);
			return buf;
		}
	return NULL;
}

static int list_attr(struct macos *mc, const char *node, const char *attr,
		     struct macos_output *out, struct reimage_error *err)
{
	const char *const argv[] = { MACOS_DSCL, "-f", node, "localonly", "-list",
				     "/Local/Target/Users", attr, NULL };
	return macos_run(mc, "accounts: list the users", argv, out, err);
}

int macos_accounts_list(void *ctx, const char *root, reimage_account_fn each, void *arg,
			struct reimage_error *err)
{
	struct macos *mc = ctx;
	struct macos_output *uids = malloc(sizeof(*uids)), *homes = malloc(sizeof(*homes));
	char node[PATH_MAX], *save = NULL;
	int r;

	if (!uids || !homes) {
		r = macos_fail(mc, err, ENOMEM, "accounts");
		goto out;
	}
	if ((r = node_of(mc, root, node, sizeof(node), err)) < 0 ||
	    (r = list_attr(mc, node, "UniqueID", uids, err)) < 0 ||
	    (r = list_attr(mc, node, "NFSHomeDirectory", homes, err)) < 0)
		goto out;
	for (char *line = strtok_r(uids->text, "\n", &save); line && r == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		char name[256], home[PATH_MAX], *end;
		size_t n = strcspn(line, " \t");
		if (n == 0 || n >= sizeof(name))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)n, line);
		unsigned long uid = strtoul(line + n, &end, 10);
		if (end == line + n)
			continue;  /* a record without a uid */
		struct reimage_account a = {
			.name = name, .uid = (uint32_t)uid,
			.login = uid >= USER_UID_MIN && uid < USER_UID_END && name[0] != '_',
		};
		/* Only a person's home travels: a service's is /var/empty. */
		a.home = a.login ? value_of(homes->text, name, home, sizeof(home)) : NULL;
		r = each(arg, &a);
	}
out:
	free(uids);
	free(homes);
	return r;
}

/* Merge user into each group of the old node that lists it, in the new
 * node.  A group the new image lacks is logged and skipped. */
static int copy_memberships(struct macos *mc, const char *old, const char *new, const char *user,
			    struct reimage_error *err)
{
	struct macos_output *out = malloc(sizeof(*out));
	char *save = NULL, record[PATH_MAX + 64], path[PATH_MAX + 64];
	struct stat st;
	int r;

	if (!out)
		return macos_fail(mc, err, ENOMEM, "accounts");
	const char *const search[] = { MACOS_DSCL, "-f", old, "localonly", "-search",
				       "/Local/Target/Groups", "GroupMembership", user, NULL };
	r = macos_run(mc, "accounts: find the user's groups", search, out, err);
	/* "admin\t\tGroupMembership = (" opens each group that lists the user;
	 * the members follow indented, then ")". */
	for (char *line = r ? NULL : strtok_r(out->text, "\n", &save); line && r == 0;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t n = strcspn(line, " \t");
		if (n == 0 || line[0] == ')' || !strstr(line, "GroupMembership"))
			continue;
		line[n] = '\0';
		if ((r = check_name(mc, line, err)) < 0)
			break;
		snprintf(path, sizeof(path), "%s/groups/%s.plist", new, line);
		if (stat(path, &st) < 0) {
			mc->host->log(REIMAGE_LOG_WARNING, "macos: accounts: the new image has no group "
				      "%s; %s is not made a member", line, user);
			continue;
		}
		snprintf(record, sizeof(record), "/Local/Target/Groups/%s", line);
		const char *const merge[] = { MACOS_DSCL, "-f", new, "localonly", "-merge", record,
					      "GroupMembership", user, NULL };
		r = macos_run(mc, "accounts: add the user to its group", merge, NULL, err);
	}
	free(out);
	return r;
}

int macos_accounts_copy(void *ctx, const char *root, const char *staging,
			const char *const *users, struct reimage_error *err)
{
	struct macos *mc = ctx;
	char old[PATH_MAX], new[PATH_MAX], from[PATH_MAX + 300], to[PATH_MAX + 300];
	int r;

	if ((r = node_of(mc, root, old, sizeof(old), err)) < 0 ||
	    (r = node_of(mc, staging, new, sizeof(new), err)) < 0)
		return r;
	for (; *users; users++) {
		if ((r = check_name(mc, *users, err)) < 0)
			return r;
		snprintf(from, sizeof(from), "%s/users/%s.plist", old, *users);
		snprintf(to, sizeof(to), "%s/users/%s.plist", new, *users);
		if ((r = mc->sys->copy_file(mc->sys, from, to, 0600)) < 0)
			return macos_fail(mc, err, -r, "accounts: copy the record of %s to %s", *users,
					  to);
		if ((r = copy_memberships(mc, old, new, *users, err)) < 0)
			return r;
	}
	return 0;
}
