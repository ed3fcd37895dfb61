/*
 * accept.c -- see accept.h.  Order matters for the reason reported: a
 * job for another machine says so before anything about serials.
 */
#include "accept.h"
#include "error.h"
#include "options.h"
#include "store.h"
#include "when.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void list_text(char *buf, size_t len, const char *const *list)
{
	size_t n = 0;
	buf[0] = '\0';
	for (; list && *list && n < len; list++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", *list);
	if (!buf[0])
		snprintf(buf, len, "none");
}

static int targeted(const struct job *job, const struct accept_ctx *c)
{
	if (strlist_has(job->target_agents, c->agent_id))
		return 1;
	for (const char *const *g = c->groups; g && *g; g++)
		if (strlist_has(job->target_groups, *g))
			return 1;
	return 0;
}

int accept_job(const struct job *job, const struct accept_ctx *c, struct reimage_error *err)
{
	char agents[512], groups[512], when[64];

	if (!store_name_ok(job->id)) {
		err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
			"job id '%s' may hold only letters, digits, '.', '_' and '-'", job->id);
		return -EPERM;
	}
	if (!job->has_targets || !job->not_after) {
		err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
			"job %s names no %s: a signed job must", job->id,
			!job->has_targets ? "targets" : "not_after");
		return -EPERM;
	}
	if (!targeted(job, c)) {
		list_text(agents, sizeof(agents), job->target_agents);
		list_text(groups, sizeof(groups), job->target_groups);
		err_set(err, -EPERM, REIMAGE_EC_ACCESS,
			"job %s is for agents [%s] and groups [%s], not for this agent (%s)", job->id,
			agents, groups, c->agent_id);
		return -EPERM;
	}
	if (c->now > job->not_after) {
		when_format(job->not_after, when, sizeof(when));
		err_set(err, -EPERM, REIMAGE_EC_INTEGRITY, "job %s expired at %s (not_after)", job->id,
			when);
		return -EPERM;
	}
	if (accept_is_reset(job, c) && job->serial_reset - c->last_reset > c->max_serial_jump) {
		err_set(err, -EPERM, REIMAGE_EC_STATE,
			"job %s: serial_reset %lld is more than max_serial_jump (%lld) above the "
			"last reset run here (%lld)", job->id, job->serial_reset, c->max_serial_jump,
			c->last_reset);
		return -EPERM;
	}
	if ((!c->have_last || accept_is_reset(job, c)) && job->serial > c->first_serial_max) {
		err_set(err, -EPERM, REIMAGE_EC_STATE,
			"job %s: serial %lld is above first_serial_max (%lld), the largest %s may "
			"take", job->id, job->serial, c->first_serial_max,
			c->have_last ? "serial a serial_reset" : "first serial an agent");
		return -EPERM;
	}
	if (!c->have_last || accept_is_reset(job, c))
		return 0;
	if (job->serial <= c->last_serial) {
		err_set(err, -EPERM, REIMAGE_EC_STATE,
			"job %s: serial %lld is not above the last serial run here (%lld): a replay "
			"or an old job", job->id, job->serial, c->last_serial);
		return -EPERM;
	}
	if (job->serial - c->last_serial > c->max_serial_jump) {
		err_set(err, -EPERM, REIMAGE_EC_STATE,
			"job %s: serial %lld is more than max_serial_jump (%lld) above the last "
			"serial run here (%lld)", job->id, job->serial, c->max_serial_jump,
			c->last_serial);
		return -EPERM;
	}
	return 0;
}

int accept_is_reset(const struct job *job, const struct accept_ctx *c)
{
	return job->serial_reset > c->last_reset;
}
