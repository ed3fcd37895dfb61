/*
 * state.c -- the job state file (see state.h).
 */
#include "state.h"
#include "error.h"
#include "fsutil.h"
#include "layout.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const phase_names[PHASE_COUNT] = {
	[PHASE_NONE] = "",           [PHASE_ACCEPT] = "ACCEPT",   [PHASE_SCHEDULED] = "SCHEDULED",
	[PHASE_PREFLIGHT] = "PREFLIGHT", [PHASE_PREPARE] = "PREPARE", [PHASE_STAGE] = "STAGE",
	[PHASE_PRESERVE] = "PRESERVE", [PHASE_HOOKS] = "HOOKS",     [PHASE_LABEL] = "LABEL",
	[PHASE_WINDOW] = "WINDOW",   [PHASE_QUIESCE] = "QUIESCE", [PHASE_SWAP] = "SWAP",
	[PHASE_BOOT] = "BOOT",       [PHASE_REPORT] = "REPORT",   [PHASE_REBOOT] = "REBOOT",
	[PHASE_TRIAL] = "TRIAL",     [PHASE_COMMIT] = "COMMIT",   [PHASE_FALLBACK] = "FALLBACK",
};

const char *phase_name(enum phase p)
{
	return p >= 0 && p < PHASE_COUNT ? phase_names[p] : "";
}

enum phase phase_of(const char *name)
{
	for (int p = 0; p < PHASE_COUNT; p++)
		if (name && !strcmp(phase_names[p], name))
			return (enum phase)p;
	return PHASE_NONE;
}

int phase_known(const char *name)
{
	return !name[0] || phase_of(name) != PHASE_NONE;
}

int state_write(const char *root, struct job_state *st, struct reimage_error *err)
{
	struct layout L;
	char *text;
	int r;

	layout_init(&L, root);
	st->time = (int64_t)time(NULL);
	json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:o*}", "job", st->job, "serial",
			      (json_int_t)st->serial, "phase", st->phase, "status", st->status,
			      "backend", st->backend, "error", st->error, "time", (json_int_t)st->time, "swapped",
			      (json_int_t)st->swapped, "keep_old_days", (json_int_t)st->keep_old_days,
			      "deferred", st->deferred[0] ? state_names_json(st->deferred) : NULL);
	if (!o || !(text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS))) {
		json_decref(o);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	json_decref(o);
	r = fs_write_atomic(L.state, text, strlen(text), NULL, err);
	free(text);
	return r;
}

static void copy_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	snprintf(dst, len, "%s", s ? s : "");
}

int state_read(const char *root, struct job_state *st, struct reimage_error *err)
{
	struct layout L;
	json_error_t jerr;
	json_t *o;

	memset(st, 0, sizeof(*st));
	layout_init(&L, root);
	if (!fs_exists(L.state))
		return -ENOENT;
	o = json_load_file(L.state, JSON_REJECT_DUPLICATES, &jerr);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		err_set(err, -EINVAL, REIMAGE_EC_STATE, "%s:%d: %s", L.state, jerr.line, jerr.text);
		return -EINVAL;
	}
	copy_str(st->job, sizeof(st->job), o, "job");
	copy_str(st->phase, sizeof(st->phase), o, "phase");
	copy_str(st->status, sizeof(st->status), o, "status");
	copy_str(st->error, sizeof(st->error), o, "error");
	copy_str(st->backend, sizeof(st->backend), o, "backend");
	st->serial = json_integer_value(json_object_get(o, "serial"));
	st->time = json_integer_value(json_object_get(o, "time"));
	st->swapped = json_integer_value(json_object_get(o, "swapped"));
	st->keep_old_days = json_integer_value(json_object_get(o, "keep_old_days"));
	state_json_names(json_object_get(o, "deferred"), st->deferred, sizeof(st->deferred));
	json_decref(o);
	return 0;
}

json_t *state_names_json(const char *names)
{
	json_t *a = json_array();
	for (const char *p = names; a && *p;) {
		size_t n = strcspn(p, "\n");
		if (json_array_append_new(a, json_stringn(p, n)) < 0) {
			json_decref(a);
			return NULL;
		}
		p += n + (p[n] == '\n');
	}
	return a;
}

void state_json_names(const json_t *array, char *buf, size_t cap)
{
	size_t len = 0, i;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(array, i, v)
		if (json_is_string(v) && len < cap)
			len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "\n" : "",
						json_string_value(v));
}
