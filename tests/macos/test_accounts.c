/*
 * test_accounts.c -- users kept in Open Directory's local node: the dscl
 * commands that list a root's accounts and copy a user's record and
 * group memberships into the staged node, and the core's preserve step
 * using those hooks instead of etc/passwd (which accounts are kept for
 * `users = "all"` or by name, their home folders, a missing user).
 */
#define _GNU_SOURCE
#include "fake_sys.h"
#include "config.h"
#include "preserve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE "/private/var/db/dslocal/nodes/Default"
#define DSCL "run /usr/bin/dscl -f "

static const char uids[] = "_amavisd                83\nalice                   501\n"
			   "bob                     502\nroot                    0\n"
			   "_www                    70\nnohome                  503\nbroken\n";
static const char homes[] = "_amavisd                /var/empty\nalice                   "
			    "/Users/alice\nbob                     /Users/Bob Smith\n"
			    "root                    /var/root\n";
static char root[4096], want[8192], seen[4096];

static void setup(struct macos_fixture *m)
{
	snprintf(root, sizeof(root), "%s/root", t_dir());
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/Users/alice' '%s/Users/Bob Smith' "
				   "'%s/.reimage/new" NODE "/groups'", root, root, root), 0);
	mfx_start(m, "");
	fake_answer(&m->fake, "/usr/bin/dscl -f", 0, uids);
	fake_answer(&m->fake, "/usr/bin/dscl -f", 0, homes);
}

static int record(void *arg, const struct reimage_account *a)
{
	size_t n = strlen(seen);
	(void)arg;
	snprintf(seen + n, sizeof(seen) - n, "%s %u %s %d\n", a->name, (unsigned)a->uid,
		 a->home ? a->home : "-", a->login);
	return 0;
}

TEST_CASE(list)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	setup(&m);
	CU_ASSERT_EQUAL(m.fx.ops->accounts_list(m.fx.ctx, root, record, NULL, &err), 0);
	CU_ASSERT_STRING_EQUAL(seen, "_amavisd 83 - 0\nalice 501 /Users/alice 1\n"
				     "bob 502 /Users/Bob Smith 1\nroot 0 - 0\n_www 70 - 0\n"
				     "nohome 503 - 1\n");
	snprintf(want, sizeof(want),
		 DSCL "%s" NODE " localonly -list /Local/Target/Users UniqueID\n"
		 DSCL "%s" NODE " localonly -list /Local/Target/Users NFSHomeDirectory\n", root, root);
	CU_ASSERT(fake_calls_are(&m.fake, want));
	mfx_stop(&m);
}

TEST_CASE(list_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	mfx_start(&m, "");
	fake_answer(&m.fake, "/usr/bin/dscl", 70, "DS Error: -14009 (eDSUnknownNodeName)\n");
	CU_ASSERT_EQUAL(m.fx.ops->accounts_list(m.fx.ctx, "/", record, NULL, &err), -EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "accounts: list the users: '/usr/bin/dscl -f " NODE
					       " localonly -list /Local/Target/Users UniqueID' exited "
					       "with status 70: DS Error: -14009"));
	mfx_stop(&m);
}

TEST_CASE(copy)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *const users[] = { "alice", NULL };
	char staging[4200];

	mfx_start(&m, "");
	snprintf(root, sizeof(root), "%s/root", t_dir());
	snprintf(staging, sizeof(staging), "%s/.reimage/new", root);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s" NODE "/groups' && touch '%s" NODE
				   "/groups/admin.plist' '%s" NODE "/groups/staff.plist'",
				   staging, staging, staging), 0);
	fake_answer(&m.fake, "/usr/bin/dscl", 0,
		    "admin\t\tGroupMembership = (\n    root\n    alice\n)\n"
		    "lpadmin\t\tGroupMembership = (\n    alice\n)\n"
		    "staff\t\tGroupMembership = (\n    alice\n)\n");
	CU_ASSERT_EQUAL(m.fx.ops->accounts_copy(m.fx.ctx, root, staging, users, &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	/* lpadmin is not in the new image: skipped, not created. */
	snprintf(want, sizeof(want),
		 "copy %s" NODE "/users/alice.plist %s" NODE "/users/alice.plist 0600\n"
		 DSCL "%s" NODE " localonly -search /Local/Target/Groups GroupMembership alice\n"
		 DSCL "%s" NODE " localonly -merge /Local/Target/Groups/admin GroupMembership alice\n"
		 DSCL "%s" NODE " localonly -merge /Local/Target/Groups/staff GroupMembership alice\n",
		 root, staging, root, staging, staging);
	CU_ASSERT(fake_calls_are(&m.fake, want));
	mfx_stop(&m);
}

TEST_CASE(copy_fails)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	const char *const users[] = { "alice", NULL }, *const bad[] = { "../../etc/x", NULL };

	mfx_start(&m, "");
	m.fake.copy_error = -ENOENT;
	CU_ASSERT_EQUAL(m.fx.ops->accounts_copy(m.fx.ctx, "/", "/.reimage/new", users, &err),
			-ENOENT);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_NOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "accounts: copy the record of alice to "
					       "/.reimage/new" NODE "/users/alice.plist"));
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(m.fx.ops->accounts_copy(m.fx.ctx, "/", "/.reimage/new", bad, &err), -EINVAL);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	/* Only the first copy was tried; the bad name never reached a path. */
	CU_ASSERT(fake_calls_are(&m.fake, "copy " NODE "/users/alice.plist /.reimage/new" NODE
					  "/users/alice.plist 0600\n"));
	mfx_stop(&m);
}

/* The core's PRESERVE over the hooks: preserve_collect, preserve_accounts. */
static int collect(struct macos_fixture *m, int all, const char *const *users,
		   struct preserve_set *set, struct reimage_error *err)
{
	static struct job job;
	memset(&job, 0, sizeof(job));
	snprintf(job.file, sizeof(job.file), "job.conf");
	job.users_all = all;
	job.users = users;
	return preserve_collect(&job, root, NULL, NULL, m->fx.plugin, set, err);
}

TEST_CASE(preserve_all)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	struct preserve_set set;

	setup(&m);
	CU_ASSERT_EQUAL_FATAL(collect(&m, 1, NULL, &set, &err), 0);
	/* Login accounts only, each with its home folder. */
	CU_ASSERT_EQUAL_FATAL(set.n_users, 3);
	CU_ASSERT_STRING_EQUAL(set.users[0], "alice");
	CU_ASSERT_STRING_EQUAL(set.users[1], "bob");
	CU_ASSERT_STRING_EQUAL(set.users[2], "nohome");
	CU_ASSERT_EQUAL_FATAL(set.n, 2);
	CU_ASSERT_STRING_EQUAL(set.paths[0], "Users/Bob Smith");
	CU_ASSERT_STRING_EQUAL(set.paths[1], "Users/alice");
	/* PRESERVE copies their records, not etc/passwd. */
	fake_answer(&m.fake, "/usr/bin/dscl", 0, "");
	CU_ASSERT_EQUAL(preserve_accounts(&set, root, t_path("root/.reimage/new"), &err), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(m.fake.calls, "users/alice.plist 0600\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m.fake.calls, "users/bob.plist 0600\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m.fake.calls, "users/nohome.plist 0600\n"));
	preserve_free(&set);
	mfx_stop(&m);
}

TEST_CASE(preserve_named)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };
	struct preserve_set set;
	const char *const named[] = { "_www", "alice", NULL }, *const missing[] = { "carol", NULL };

	/* A named service account is kept, without a home folder. */
	setup(&m);
	CU_ASSERT_EQUAL_FATAL(collect(&m, 0, named, &set, &err), 0);
	CU_ASSERT_EQUAL(set.n_users, 2);
	CU_ASSERT_EQUAL_FATAL(set.n, 1);
	CU_ASSERT_STRING_EQUAL(set.paths[0], "Users/alice");
	preserve_free(&set);
	mfx_stop(&m);
	setup(&m);
	CU_ASSERT_EQUAL(collect(&m, 0, missing, &set, &err), -ENOENT);
	snprintf(want, sizeof(want), "job.conf: preserve.users: no user 'carol' in the directory "
		 "service of %s", root);
	CU_ASSERT_STRING_EQUAL(err.msg, want);
	mfx_stop(&m);
}
