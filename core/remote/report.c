/*
 * report.c -- see report.h.
 */
#include "report.h"
#include "error.h"
#include "state.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#ifndef REIMAGE_VERSION
#define REIMAGE_VERSION "0"
#endif

char *report_json(const struct report *rep)
{
	json_t *groups = json_array(), *o;
	char *text;

	for (const char *const *g = rep->groups; g && *g; g++)
		json_array_append_new(groups, json_string(*g));
	o = json_pack("{s:s, s:o, s:s, s:I, s:s, s:s, s:s, s:{s:I, s:I}, s:s, s:s, s:I, s:I, s:s}",
		      "agent", rep->agent, "groups", groups, "job", rep->job, "serial",
		      (json_int_t)rep->serial, "location", rep->location, "phase", rep->phase,
		      "state", rep->state, "progress", "done", (json_int_t)rep->done, "total",
		      (json_int_t)rep->total, "error", rep->error, "message", rep->message, "time",
		      (json_int_t)rep->time, "started", (json_int_t)rep->started, "version",
		      REIMAGE_VERSION);
	if (!o)
		return NULL;
	if (rep->deferred[0] && json_object_set_new(o, "deferred", state_names_json(rep->deferred)) < 0) {
		json_decref(o);
		return NULL;
	}
	text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

static void copy(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

int report_parse(const char *text, size_t len, struct report *ret, struct reimage_error *err)
{
	const char *agent = NULL, *job = NULL, *location = NULL, *phase = NULL, *state = NULL,
		   *error = NULL, *message = NULL, *version = NULL;
	json_int_t serial = 0, done = 0, total = 0, time = 0, started = 0;
	json_error_t jerr;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!o) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "report: line %d: %s", jerr.line, jerr.text);
		return -EBADMSG;
	}
	if (json_unpack_ex(o, &jerr, 0, "{s:s, s:s, s:I, s?s, s:s, s:s, s?{s:I, s:I}, s?s, s?s, s:I, s?I, "
			   "s?s}", "agent", &agent, "job", &job, "serial", &serial, "location",
			   &location, "phase", &phase, "state", &state, "progress", "done", &done,
			   "total", &total, "error", &error, "message", &message, "time", &time,
			   "started", &started, "version", &version) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "report: %s", jerr.text);
		json_decref(o);
		return -EBADMSG;
	}
	memset(ret, 0, sizeof(*ret));
	copy(ret->agent, sizeof(ret->agent), agent);
	copy(ret->job, sizeof(ret->job), job);
	copy(ret->location, sizeof(ret->location), location);
	copy(ret->phase, sizeof(ret->phase), phase);
	copy(ret->state, sizeof(ret->state), state);
	copy(ret->error, sizeof(ret->error), error);
	copy(ret->message, sizeof(ret->message), message);
	copy(ret->version, sizeof(ret->version), version);
	ret->serial = serial;
	ret->done = (uint64_t)done;
	ret->total = (uint64_t)total;
	ret->time = time;
	ret->started = started;
	state_json_names(json_object_get(o, "deferred"), ret->deferred, sizeof(ret->deferred));
	json_decref(o);
	return 0;
}

int report_state_success(const char *state)
{
	return strcmp(state, "committed") == 0;
}

int report_state_final(const char *state)
{
	static const char *const final[] = { "committed", "refused", "failed", "rolled-back",
					     "skipped", "cancelled", NULL };
	for (const char *const *f = final; *f; f++)
		if (strcmp(state, *f) == 0)
			return 1;
	return 0;
}
