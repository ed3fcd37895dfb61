/*
 * inventory.c -- see inventory.h.
 */
#define _GNU_SOURCE
#include "inventory.h"
#include "error.h"
#include "log.h"
#include "rollout.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_DOC_MAX (16u << 20)    /* 100,000 names and more */
#define LISTING_MAX (64u << 20)      /* an autoindex of 100,000 reports */
#define REPORT_DOC_MAX 65536

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int inventory_add(struct inventory *inv, const char *const *names, size_t n)
{
	char **v = realloc(inv->names, (inv->n + n + 1) * sizeof(char *));
	size_t before = inv->n, k = 0;

	if (!v)
		return -ENOMEM;
	inv->names = v;
	for (size_t i = 0; i < n; i++)
		if (store_name_ok(names[i]) && (v[inv->n] = strdup(names[i])))
			inv->n++;
	qsort(v, inv->n, sizeof(char *), cmp_names);
	/* Unique, in place. */
	for (size_t i = 0; i < inv->n; i++) {
		if (k > 0 && !strcmp(v[k - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	inv->n = k;
	v[k] = NULL;
	return inv->n > before;
}

void inventory_free(struct inventory *inv)
{
	for (size_t i = 0; i < inv->n; i++)
		free(inv->names[i]);
	free(inv->names);
	memset(inv, 0, sizeof(*inv));
}

/* Names gathered from a listing or the index, added to the inventory at
 * once: one sort for 100,000 names, not one per name. */
struct gathered {
	char **v;
	size_t n, cap;
};

static void gather(struct gathered *g, const char *name, size_t len)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 1024;
		char **v = realloc(g->v, cap * sizeof(char *));
		if (!v)
			return;
		g->v = v;
		g->cap = cap;
	}
	if ((g->v[g->n] = strndup(name, len)))
		g->n++;
}

/* Add what was gathered; 0, or -ENOMEM. */
static int gathered_add(struct inventory *inv, struct gathered *g)
{
	int r = g->n ? inventory_add(inv, (const char *const *)g->v, g->n) : 0;
	for (size_t i = 0; i < g->n; i++)
		free(g->v[i]);
	free(g->v);
	memset(g, 0, sizeof(*g));
	return r < 0 ? r : 0;
}

/* "<name>.json" of a report file name. */
static void add_report_file(struct gathered *g, const char *file, size_t len)
{
	if (len > 5 && len < 256 && !memcmp(file + len - 5, ".json", 5))
		gather(g, file, len - 5);
}

/* A directory store's reports/. */
static int list_directory(const char *path, struct inventory *inv, struct reimage_error *err)
{
	char dir[STORE_URL_MAX];
	struct gathered g = { 0 };
	struct dirent *de;
	DIR *d;

	if (store_url(dir, sizeof(dir), path, "reports") < 0 || !(d = opendir(dir))) {
		if (errno == ENOENT) {
			inv->listed = 1;  /* nobody has reported yet */
			return 0;
		}
		err_set(err, -errno, REIMAGE_EC_IO, "list %s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d)))
		if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN)
			add_report_file(&g, de->d_name, strlen(de->d_name));
	closedir(d);
	inv->listed = 1;
	return gathered_add(inv, &g);
}

/* An HTTP server's index of reports/: nginx's autoindex_format json (an
 * array of {"name", "type"}) or an HTML page of links. */
static void parse_listing(const char *text, size_t len, struct inventory *inv)
{
	json_t *a = json_loadb(text, len, 0, NULL), *v;
	struct gathered g = { 0 };
	size_t i;

	if (json_is_array(a)) {
		json_array_foreach(a, i, v) {
			const char *name = json_string_value(json_object_get(v, "name"));
			const char *type = json_string_value(json_object_get(v, "type"));
			if (name && (!type || !strcmp(type, "file")))
				add_report_file(&g, name, strlen(name));
		}
		json_decref(a);
		inv->listed = 1;
		gathered_add(inv, &g);
		return;
	}
	json_decref(a);
	for (const char *p = text; (p = strstr(p, "href=\"")); ) {
		p += 6;
		size_t n = strcspn(p, "\"");
		if (!memchr(p, '/', n))
			add_report_file(&g, p, n);
		p += n;
		inv->listed = 1;
	}
	gathered_add(inv, &g);
}

static int load_index(struct registry *reg, const struct agent_conf *ac, const char *store,
		      struct inventory *inv, struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL;
	json_error_t jerr;
	size_t len, i;
	json_t *a, *v;
	int r;

	struct reimage_error e = { 0 };
	store_url(url, sizeof(url), store, "agents.json");
	if ((r = store_get(reg, ac, url, INDEX_DOC_MAX, &text, &len, &e)) < 0) {
		if (r == -ENOENT)
			return 0;  /* nothing submitted yet */
		err_set(err, r, e.cls, "%s", e.msg);
		return r;
	}
	a = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!json_is_array(a)) {
		json_decref(a);
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: not a list of agent names", url);
		return -EBADMSG;
	}
	struct gathered g = { 0 };
	json_array_foreach(a, i, v)
		if (json_is_string(v))
			gather(&g, json_string_value(v), strlen(json_string_value(v)));
	json_decref(a);
	inv->indexed = 1;
	if ((r = gathered_add(inv, &g)) < 0)
		err_set(err, r, REIMAGE_EC_IO, "out of memory");
	return r;
}

int inventory_load(struct registry *reg, const struct agent_conf *ac, const char *store,
		   int list, struct inventory *ret, struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL;
	struct reimage_error e = { 0 };
	size_t len;
	int r;

	memset(ret, 0, sizeof(*ret));
	if ((r = load_index(reg, ac, store, ret, err)) < 0 || !list)
		return r;
	if (!strstr(store, "://"))
		return list_directory(store, ret, err);
	if (!strncmp(store, "file://", 7))
		return list_directory(store + 7, ret, err);
	store_url(url, sizeof(url), store, "reports/");
	if (store_get(reg, ac, url, LISTING_MAX, &text, &len, &e) == 0)
		parse_listing(text, len, ret);
	free(text);
	if (!ret->listed)
		snprintf(ret->listing, sizeof(ret->listing), "%s gives no listing (%s): only agents "
			 "in agents.json are shown", url, e.msg[0] ? e.msg : "not an index");
	return 0;
}

int inventory_save(struct registry *reg, const struct agent_conf *ac, const char *store,
		   const struct inventory *inv, struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text;
	json_t *a = json_array();
	int r;

	for (size_t i = 0; a && i < inv->n; i++)
		json_array_append_new(a, json_string(inv->names[i]));
	text = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!text) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	store_url(url, sizeof(url), store, "agents.json");
	r = store_put(reg, ac, url, text, strlen(text), "application/json", err);
	free(text);
	return r;
}

struct read_batch {
	int *seen;
	struct report_brief *rep;  /* or NULL */
};

static void read_done(void *arg, size_t i, int r, const void *buf, size_t len,
		      const struct reimage_error *err)
{
	struct read_batch *b = arg;
	struct reimage_error e = { 0 };
	struct report rep;

	if (r < 0 && err->cls == REIMAGE_EC_NOTFOUND) {
		b->seen[i] = 0;  /* never reported */
		return;
	}
	if (r == 0 && (r = report_parse(buf, len, &rep, &e)) == 0) {
		b->seen[i] = 1;
	} else {
		/* Shown, not fatal: one bad report must not hide the fleet. */
		b->seen[i] = -1;
		memset(&rep, 0, sizeof(rep));
		snprintf(rep.state, sizeof(rep.state), "unreadable");
		snprintf(rep.error, sizeof(rep.error), "%s", e.msg[0] ? e.msg : err->msg);
	}
	if (b->rep)
		report_brief_set(&b->rep[i], &rep);
}

int inventory_read(struct registry *reg, const struct agent_conf *ac, const char *store,
		   const char *const *agents, size_t n, int *ret_seen, struct report_brief *ret,
		   struct reimage_error *err)
{
	char **urls = calloc(n + 1, sizeof(char *));
	struct read_batch b = { .seen = ret_seen, .rep = ret };
	size_t k = 0;
	int r = -ENOMEM;

	while (urls && k < n) {
		char url[STORE_URL_MAX];
		if (store_url(url, sizeof(url), store, "reports/%s.json", agents[k]) < 0 ||
		    !(urls[k] = strdup(url)))
			break;
		k++;
	}
	if (k == n)
		r = store_get_many(reg, ac, (const char *const *)urls, n, REPORT_DOC_MAX, read_done,
				   &b, err);
	else
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
	for (size_t i = 0; urls && i < k; i++)
		free(urls[i]);
	free(urls);
	return r;
}

/* ------------------------------------------------------------ output */

struct member {
	const char *name;
	int seen, stale;
	const struct report_brief *rep;
};

/* Failed first, then stale, never seen, busy, and the rest (idle, and
 * every other outcome: a cancelled, skipped or refused job did not fail,
 * as report_outcome() counts it). */
static int rank(const struct member *m)
{
	enum report_outcome o = report_outcome(m->rep->state);
	if (m->seen && (o == OUTCOME_FAILED || o == OUTCOME_ROLLED_BACK))
		return 0;
	if (!m->seen || m->stale)
		return 1;
	return o == OUTCOME_UNFINISHED && strcmp(m->rep->state, "idle") ? 2 : 3;
}

static int cmp_members(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int d = rank(x) - rank(y);
	return d ? d : strcmp(x->name, y->name);
}

static void write_table(const struct member *m, size_t n, int64_t now, FILE *out)
{
	fprintf(out, "%-20s %-12s %-20s %-10s %-8s %-6s %s\n", "AGENT", "STATE", "JOB", "PHASE",
		"VERSION", "SEEN", "DETAIL");
	for (size_t i = 0; i < n; i++) {
		const struct report_brief *r = m[i].rep;
		char age[32];
		if (!m[i].seen) {
			fprintf(out, "%-20s %-12s %-20s %-10s %-8s %-6s %s\n", m[i].name, "never-seen",
				"-", "-", "-", "-", "no report in the store: not installed, or a typo?");
			continue;
		}
		report_age_text(age, sizeof(age), now - r->time);
		fprintf(out, "%-20s %-12s %-20s %-10s %-8s %-6s %s%s\n", m[i].name, r->state,
			r->job ? r->job : "-", r->phase, r->version[0] ? r->version : "-", age,
			m[i].stale ? "STALE: not seen for longer than --stale; " : "",
			report_brief_detail(r));
	}
}

static json_t *member_json(const struct member *m, int64_t now)
{
	const struct report_brief *r = m->rep;
	if (!m->seen)
		return json_pack("{s:s, s:b, s:b}", "agent", m->name, "seen", 0, "stale", 1);
	return json_pack("{s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "agent",
			 m->name, "seen", 1, "stale", m->stale, "state", r->state, "job",
			 r->job ? r->job : "", "phase", r->phase, "version", r->version, "time",
			 (json_int_t)r->time, "age", (json_int_t)(now - r->time), "error",
			 r->error ? r->error : "", "message", r->message ? r->message : "");
}

/* A label value: backslash, quote and newline escaped. */
static void prom_label(FILE *out, const char *v)
{
	for (; *v; v++)
		fprintf(out, *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : "%c",
			*v);
}

/* Seen members by (job, state) or by state alone, for counting runs:
 * sorting keeps 100,000 agents n log n however many states the reports
 * bring. */
static int cmp_by_state(const void *a, const void *b)
{
	const struct member *x = *(const struct member *const *)a;
	const struct member *y = *(const struct member *const *)b;
	return strcmp(x->rep->state, y->rep->state);
}

static int cmp_by_job_state(const void *a, const void *b)
{
	const struct member *x = *(const struct member *const *)a;
	const struct member *y = *(const struct member *const *)b;
	int d = strcmp(x->rep->job ? x->rep->job : "", y->rep->job ? y->rep->job : "");
	return d ? d : cmp_by_state(a, b);
}

/* The waves of a job, as `rollout status` reads them (verified with the
 * trusted keys): each one's state, outcomes and budget. */
static void write_waves(struct registry *reg, const struct agent_conf *ac, const char *store,
			const char *job, FILE *out)
{
	for (int k = 0;; k++) {
		struct reimage_error e = { 0 };
		char etag[REIMAGE_ETAG_MAX] = "";
		struct wave_state ws;
		if (rollout_wave_get(reg, ac, store, job, k, etag, &ws, &e) < 0) {
			if (e.cls != REIMAGE_EC_NOTFOUND)
				log_warn("agents: %s", e.msg);
			return;
		}
		const struct { const char *outcome; long long n; } o[] = {
			{ "committed", ws.committed }, { "failed", ws.failed },
			{ "unfinished", ws.unfinished }, { "cancelled", ws.cancelled },
			{ "skipped", ws.skipped }, { "refused", ws.refused },
		};
		fprintf(out, "reimage_rollout_wave{job=\"%s\",wave=\"%d\",name=\"", job, k + 1);
		prom_label(out, ws.name);
		fprintf(out, "\",state=\"");
		prom_label(out, ws.state);
		fprintf(out, "\"} 1\n");
		for (size_t i = 0; i < sizeof(o) / sizeof(o[0]); i++)
			fprintf(out, "reimage_rollout_wave_agents{job=\"%s\",wave=\"%d\",outcome=\"%s\"} "
				"%lld\n", job, k + 1, o[i].outcome, o[i].n);
		fprintf(out, "reimage_rollout_wave_budget_percent{job=\"%s\",wave=\"%d\"} %d\n", job,
			k + 1, ws.budget);
		if (k + 1 >= ws.waves)
			return;
	}
}

static int write_prometheus(struct registry *reg, const struct agent_conf *ac, const char *store,
			    const struct member *m, size_t n, FILE *out)
{
	const struct member **seen = calloc(n + 1, sizeof(*seen));
	size_t stale = 0, never = 0, k = 0;

	if (!seen)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		never += !m[i].seen;
		stale += m[i].seen && m[i].stale;
		if (m[i].seen)
			seen[k++] = &m[i];
	}
	fprintf(out, "# HELP reimage_agents Agents in the job store's inventory, by the state "
		"of their latest report.\n# TYPE reimage_agents gauge\n");
	qsort(seen, k, sizeof(*seen), cmp_by_state);
	for (size_t i = 0, run; i < k; i += run) {
		for (run = 1; i + run < k && !cmp_by_state(&seen[i], &seen[i + run]); run++)
			;
		fprintf(out, "reimage_agents{state=\"");
		prom_label(out, seen[i]->rep->state);
		fprintf(out, "\"} %zu\n", run);
	}
	fprintf(out, "# HELP reimage_agents_stale Agents whose latest report is older than the "
		"stale limit.\n# TYPE reimage_agents_stale gauge\nreimage_agents_stale %zu\n", stale);
	fprintf(out, "# HELP reimage_agents_never_seen Agents known to the store that never "
		"reported.\n# TYPE reimage_agents_never_seen gauge\nreimage_agents_never_seen %zu\n",
		never);
	fprintf(out, "# HELP reimage_agents_total Agents in the inventory.\n"
		"# TYPE reimage_agents_total gauge\nreimage_agents_total %zu\n", n);
	/* Each job's agents by state (the job of their latest report), then,
	 * with trusted keys, its waves. */
	fprintf(out, "# HELP reimage_job_agents Agents whose latest report is on the job, by "
		"state.\n# TYPE reimage_job_agents gauge\n");
	qsort(seen, k, sizeof(*seen), cmp_by_job_state);
	for (size_t i = 0, run; i < k; i += run) {
		for (run = 1; i + run < k && !cmp_by_job_state(&seen[i], &seen[i + run]); run++)
			;
		if (!seen[i]->rep->job)
			continue;
		fprintf(out, "reimage_job_agents{job=\"");
		prom_label(out, seen[i]->rep->job);
		fprintf(out, "\",state=\"");
		prom_label(out, seen[i]->rep->state);
		fprintf(out, "\"} %zu\n", run);
	}
	if (ac->trusted_keys && ac->trusted_keys[0]) {
		fprintf(out, "# HELP reimage_rollout_wave A rollout's wave, labelled with its name and "
			"state (verified with the trusted keys).\n# TYPE reimage_rollout_wave gauge\n"
			"# HELP reimage_rollout_wave_agents A wave's agents by outcome (failed: failed, "
			"rolled back or silent past the deadline).\n"
			"# TYPE reimage_rollout_wave_agents gauge\n"
			"# HELP reimage_rollout_wave_budget_percent The share of a wave's agents that "
			"may fail.\n# TYPE reimage_rollout_wave_budget_percent gauge\n");
		for (size_t i = 0; i < k; i++)
			if (seen[i]->rep->job && store_name_ok(seen[i]->rep->job) &&
			    (i == 0 || !seen[i - 1]->rep->job ||
			     strcmp(seen[i - 1]->rep->job, seen[i]->rep->job)))
				write_waves(reg, ac, store, seen[i]->rep->job, out);
	}
	free(seen);
	return 0;
}

int inventory_write(struct registry *reg, const struct agent_conf *ac, const char *store,
		    const struct inventory *inv, int64_t now, int64_t stale,
		    enum inventory_format format, FILE *out, struct reimage_error *err)
{
	struct member *m = calloc(inv->n + 1, sizeof(*m));
	struct report_brief *rep = calloc(inv->n + 1, sizeof(*rep));
	int *seen = calloc(inv->n + 1, sizeof(int));
	size_t n_seen = 0, old = 0;
	int r;

	if (!m || !rep || !seen) {
		free(m);
		free(rep);
		free(seen);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = inventory_read(reg, ac, store, (const char *const *)inv->names, inv->n, seen, rep,
				err)) < 0)
		goto out;
	for (size_t i = 0; i < inv->n; i++) {
		m[i].name = inv->names[i];
		m[i].rep = &rep[i];
		m[i].seen = seen[i] != 0;
		m[i].stale = !m[i].seen || now - rep[i].time > stale;
		n_seen += m[i].seen;
		old += m[i].seen && m[i].stale;
	}
	qsort(m, inv->n, sizeof(*m), cmp_members);
	if (format == INVENTORY_PROMETHEUS) {
		if ((r = write_prometheus(reg, ac, store, m, inv->n, out)) < 0)
			err_set(err, r, REIMAGE_EC_IO, "out of memory");
	} else if (format == INVENTORY_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < inv->n; i++)
			json_array_append_new(a, member_json(&m[i], now));
		if (!a || json_dumpf(a, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0) {
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			r = -ENOMEM;
		}
		fputc('\n', out);
		json_decref(a);
	} else {
		write_table(m, inv->n, now, out);
		fprintf(out, "%zu agent(s): %zu seen, %zu stale (not seen for %llds), %zu never seen\n",
			inv->n, n_seen, old, (long long)stale, inv->n - n_seen);
	}
out:
	free(m);
	for (size_t i = 0; i < inv->n; i++)
		report_brief_clear(&rep[i]);
	free(rep);
	free(seen);
	return r;
}
