/*
 * agentstate.c -- see agentstate.h.
 */
#include "agentstate.h"
#include "error.h"
#include "fsutil.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int path_of(char *buf, size_t len, const char *state_dir, struct reimage_error *err)
{
	if (fs_join(buf, len, state_dir, "agent.json") < 0) {
		err_set(err, -ENAMETOOLONG, REIMAGE_EC_CONFIG, "state_dir %s: name too long", state_dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

int agent_state_load(const char *state_dir, struct agent_state *st, struct reimage_error *err)
{
	char path[4096], *text = NULL;
	const char *job = "", *rjob = "", *rstate = "";
	json_int_t serial = 0, reset = 0, floor = 0, store_time = 0;
	int have = 0;
	json_error_t jerr;
	json_t *o;
	size_t len;
	int r;

	memset(st, 0, sizeof(*st));
	if ((r = path_of(path, sizeof(path), state_dir, err)) < 0)
		return r;
	if ((r = fs_read_small(path, 65536, &text, &len, err)) == -ENOENT) {
		err_clear(err);
		return 0;
	}
	if (r < 0)
		return r;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	/* The later fields are optional: a state written before them reads
	 * as "none yet".  A "last_wave" of earlier versions (agents counted
	 * their wave) is ignored. */
	if (!o || json_unpack_ex(o, &jerr, 0, "{s:b, s:I, s:s, s:s, s:s, s?I, s?I, s?I}",
				 "have_serial", &have, "last_serial", &serial, "last_job", &job,
				 "reported_job", &rjob, "reported_state", &rstate, "last_reset",
				 &reset, "time_floor", &floor, "store_time", &store_time) < 0 ||
	    ((serial < 0 || reset < 0 || floor < 0 || store_time < 0) &&
	     snprintf(jerr.text, sizeof(jerr.text), "a negative serial, reset or time") > 0)) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: %s (remove it only if no job "
			"should ever be replayed here)", path, jerr.text);
		json_decref(o);
		return -EBADMSG;
	}
	st->have_serial = have;
	st->last_serial = serial;
	st->last_reset = reset;
	st->time_floor = floor;
	st->store_time = store_time;
	snprintf(st->last_job, sizeof(st->last_job), "%s", job);
	snprintf(st->reported_job, sizeof(st->reported_job), "%s", rjob);
	snprintf(st->reported_state, sizeof(st->reported_state), "%s", rstate);
	json_decref(o);
	return 0;
}

int agent_state_save(const char *state_dir, const struct agent_state *st,
		     struct reimage_error *err)
{
	char path[4096], *text;
	json_t *o;
	int r;

	if ((r = path_of(path, sizeof(path), state_dir, err)) < 0)
		return r;
	o = json_pack("{s:b, s:I, s:s, s:s, s:s, s:I, s:I, s:I}", "have_serial",
		      st->have_serial, "last_serial", (json_int_t)st->last_serial, "last_job",
		      st->last_job, "reported_job", st->reported_job, "reported_state",
		      st->reported_state, "last_reset", (json_int_t)st->last_reset,
		      "time_floor", (json_int_t)st->time_floor, "store_time",
		      (json_int_t)st->store_time);
	if (!o || !(text = json_dumps(o, JSON_INDENT(1)))) {
		json_decref(o);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	json_decref(o);
	r = fs_write_atomic(path, text, strlen(text), NULL, err);
	free(text);
	return r;
}
