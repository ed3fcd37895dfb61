/*
 * report.c -- see report.h.
 */
#include "report.h"
#include "error.h"
#include "state.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
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
	if ((rep->deferred[0] &&
	     json_object_set_new(o, "deferred", state_names_json(rep->deferred)) < 0) ||
	    (rep->warnings[0] &&
	     json_object_set_new(o, "warnings", state_names_json(rep->warnings)) < 0)) {
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
	state_json_names(json_object_get(o, "warnings"), ret->warnings, sizeof(ret->warnings));
	json_decref(o);
	return 0;
}

int report_state_success(const char *state)
{
	return strcmp(state, "committed") == 0;
}

int report_state_final(const char *state)
{
	return report_outcome(state) != OUTCOME_UNFINISHED;
}

enum report_outcome report_outcome(const char *state)
{
	static const struct {
		const char *state;
		enum report_outcome o;
	} map[] = {
		{ "committed", OUTCOME_COMMITTED }, { "failed", OUTCOME_FAILED },
		{ "rolled-back", OUTCOME_ROLLED_BACK }, { "cancelled", OUTCOME_CANCELLED },
		{ "skipped", OUTCOME_SKIPPED }, { "refused", OUTCOME_REFUSED },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(state, map[i].state))
			return map[i].o;
	return OUTCOME_UNFINISHED;
}

static const char *const outcome_names[OUTCOME_COUNT][2] = {
	[OUTCOME_COMMITTED] = { "committed", "committed" },
	[OUTCOME_FAILED] = { "failed", "failed" },
	[OUTCOME_ROLLED_BACK] = { "rolled back", "rolled_back" },
	[OUTCOME_CANCELLED] = { "cancelled", "cancelled" },
	[OUTCOME_SKIPPED] = { "skipped", "skipped" },
	[OUTCOME_REFUSED] = { "refused", "refused" },
	[OUTCOME_UNFINISHED] = { "unfinished", "unfinished" },
};

const char *report_outcome_name(enum report_outcome o)
{
	return outcome_names[o][0];
}

const char *report_outcome_key(enum report_outcome o)
{
	return outcome_names[o][1];
}

void report_brief_clear(struct report_brief *b)
{
	free(b->job);
	free(b->error);
	free(b->message);
	memset(b, 0, sizeof(*b));
}

void report_brief_set(struct report_brief *b, const struct report *rep)
{
	report_brief_clear(b);
	snprintf(b->state, sizeof(b->state), "%s", rep->state);
	snprintf(b->phase, sizeof(b->phase), "%s", rep->phase);
	snprintf(b->version, sizeof(b->version), "%s", rep->version);
	b->serial = rep->serial;
	b->done = rep->done;
	b->total = rep->total;
	b->time = rep->time;
	b->job = rep->job[0] ? strdup(rep->job) : NULL;
	b->error = rep->error[0] ? strdup(rep->error) : NULL;
	b->message = rep->message[0] ? strdup(rep->message) : NULL;
}

const char *report_brief_detail(const struct report_brief *b)
{
	return b->error ? b->error : b->message ? b->message : "";
}

void report_age_text(char *buf, size_t len, int64_t seconds)
{
	if (seconds < 0)
		seconds = 0;  /* a clock a little ahead of ours */
	if (seconds < 120)
		snprintf(buf, len, "%llds", (long long)seconds);
	else if (seconds < 7200)
		snprintf(buf, len, "%lldm", (long long)seconds / 60);
	else if (seconds < 172800)
		snprintf(buf, len, "%lldh", (long long)seconds / 3600);
	else
		snprintf(buf, len, "%lldd", (long long)seconds / 86400);
}
