/*
 * test_preserve.c -- which of the agent's own files PREFLIGHT collects for
 * PRESERVE: those under the root, however the root is spelled ("/" is
 * the real machine's case: /var/lib/reimage must travel with the agent,
 * or the new image's agent forgets the serials it ran and runs a job
 * again), never those outside it.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "config.h"
#include "error.h"
#include "preserve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int collected(const struct preserve_set *set, const char *rel)
{
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->paths[i], rel))
			return 1;
	fprintf(stderr, "not collected: %s\n", rel);
	return 0;
}

static void collect(const char *root, const char *const *agent, struct preserve_set *set)
{
	struct reimage_error err = { 0 };
	struct job job;
	memset(&job, 0, sizeof(job));
	job.preserve_agent = 1;
	if (preserve_collect(&job, root, agent, NULL, NULL, set, &err) < 0)
		fprintf(stderr, "collect: %s\n", err.msg);
	CU_ASSERT_EQUAL(err.code, 0);
}

TEST_CASE(agent_paths_under_the_machines_root)
{
	struct preserve_set set;
	/* Files every Debian machine has, read only: nothing is moved. */
	const char *const agent[] = { "/etc/hostname", "/usr/bin", "/", NULL };
	collect("/", agent, &set);
	CU_ASSERT(collected(&set, "etc/hostname"));
	CU_ASSERT(collected(&set, "usr/bin"));
	CU_ASSERT_EQUAL(set.n, 2);
	preserve_free(&set);
}

TEST_CASE(agent_paths_under_a_sandbox_root)
{
	struct preserve_set set;
	char root[512], with_slash[520], state[600], outside[600];
	snprintf(root, sizeof(root), "%s/root", t_dir());
	snprintf(with_slash, sizeof(with_slash), "%s/", root);
	snprintf(state, sizeof(state), "%s/var/lib/reimage", root);
	snprintf(outside, sizeof(outside), "%s/rootless/x", t_dir());
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s/rootless/x'", state, t_dir()), 0);
	const char *const agent[] = { state, outside, NULL };
	collect(with_slash, agent, &set);
	CU_ASSERT(collected(&set, "var/lib/reimage"));
	CU_ASSERT_EQUAL(set.n, 1);
	preserve_free(&set);
}
