/*
 * health.c -- see health.h.
 */
#define _GNU_SOURCE
#include "health.h"
#include "error.h"
#include "fsutil.h"
#include "hooks.h"
#include "layout.h"
#include "log.h"
#include "progress.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A failing check gets this long per run; the deadline bounds them all. */
#define COMMAND_TIMEOUT_S 60
#define RETRY_MS 2000

static void path_of(char *buf, size_t len, const char *root)
{
	struct layout L;
	layout_init(&L, root);
	snprintf(buf, len, "%s/health", L.dir);
}

int health_save(const char *root, const struct job_health *h, struct reimage_error *err)
{
	json_t *units = json_array(), *commands = json_array(), *o;
	char path[4200], *text;
	int r;

	for (const char *const *u = h->units; u && *u; u++)
		json_array_append_new(units, json_string(*u));
	for (const char *const *c = h->commands; c && *c; c++)
		json_array_append_new(commands, json_string(*c));
	o = json_pack("{s:o, s:o, s:b, s:I}", "units", units, "commands", commands, "report",
		      h->report, "deadline", (json_int_t)h->deadline);
	if (!o || !(text = json_dumps(o, JSON_INDENT(1)))) {
		json_decref(o);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	json_decref(o);
	path_of(path, sizeof(path), root);
	r = fs_write_atomic(path, text, strlen(text), NULL, err);
	free(text);
	return r;
}

static char **strings_of(json_t *a)
{
	size_t i, n = json_array_size(a);
	char **v = calloc(n + 1, sizeof(char *));
	json_t *s;
	json_array_foreach(a, i, s)
		if (v && json_is_string(s))
			v[i] = strdup(json_string_value(s));
	return v;
}

int health_load(const char *root, struct health_spec *ret, struct reimage_error *err)
{
	char path[4200], *text = NULL;
	json_t *o, *units, *commands;
	json_int_t deadline;
	json_error_t jerr;
	int report, r;
	size_t len;

	memset(ret, 0, sizeof(*ret));
	path_of(path, sizeof(path), root);
	if ((r = fs_read_small(path, 1 << 20, &text, &len, err)) < 0)
		return r;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!o || json_unpack_ex(o, &jerr, 0, "{s:o, s:o, s:b, s:I}", "units", &units, "commands",
				 &commands, "report", &report, "deadline", &deadline) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: %s", path, jerr.text);
		json_decref(o);
		return -EBADMSG;
	}
	ret->units = strings_of(units);
	ret->commands = strings_of(commands);
	ret->report = report;
	ret->deadline = deadline;
	json_decref(o);
	return 0;
}

void health_free(struct health_spec *h)
{
	for (size_t i = 0; h->units && h->units[i]; i++)
		free(h->units[i]);
	for (size_t i = 0; h->commands && h->commands[i]; i++)
		free(h->commands[i]);
	free(h->units);
	free(h->commands);
	memset(h, 0, sizeof(*h));
}

void health_forget(const char *root)
{
	char path[4200];
	path_of(path, sizeof(path), root);
	unlink(path);
}

/* One round: 0 if every check passes, else the first failure. */
static int check_once(const struct health_spec *h, const struct health_probe *p,
		      struct reimage_error *err)
{
	int r;
	for (size_t i = 0; h->units && h->units[i]; i++) {
		if (!p->unit_active) {
			err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
				"health: this backend cannot tell whether unit %s is active",
				h->units[i]);
			return -ENOTSUP;
		}
		if ((r = p->unit_active(p->backend, h->units[i], err)) < 0)
			return r;
		if (r == 0) {
			err_set(err, -ESRCH, REIMAGE_EC_STATE, "health: unit %s is not active",
				h->units[i]);
			return -ESRCH;
		}
	}
	for (size_t i = 0; h->commands && h->commands[i]; i++) {
		const char *argv[] = { h->commands[i], NULL };
		if ((r = hooks_exec(argv, NULL, COMMAND_TIMEOUT_S, "health check", NULL, err)) < 0)
			return r;
	}
	if (h->report && p->report && (r = p->report(p->arg, err)) < 0) {
		err_prefix(err, "health: the report location is not reachable");
		return r;
	}
	return 0;
}

int health_run(const struct health_spec *h, const struct health_probe *p,
	       struct reimage_error *err)
{
	int64_t end = progress_now_ms() + h->deadline * 1000;
	int r;

	for (;;) {
		struct reimage_error round = { 0 };
		if ((r = check_once(h, p, &round)) == 0)
			return 0;
		/* A backend that cannot check never will: no retrying. */
		if (r == -ENOTSUP || progress_now_ms() + RETRY_MS > end || (p->stop && *p->stop)) {
			err_set(err, round.code, round.cls, "%s (deadline %lld s)", round.msg,
				h->deadline);
			return round.code;
		}
		log_info("%s; checking again", round.msg);
		poll(NULL, 0, RETRY_MS);
	}
}
