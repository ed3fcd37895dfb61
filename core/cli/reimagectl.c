/*
 * reimagectl.c -- main() of the administrator's tool: make keys, sign
 * jobs, publish them to the job store for agents or a group, follow the
 * agents' reports, withdraw a job.  Its option and command tables are
 * parsed by command.h's dispatcher; errors are logged here, once.
 *
 * Exit codes: 0 success (wait: every agent committed); 1 failure (wait:
 * an agent failed, was refused or rolled back); 2 usage or configuration
 * error; 4 wait timed out.  Rollouts in waves: rollout.c.
 */
#define _GNU_SOURCE
#include "command.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "inventory.h"
#include "log.h"
#include "registry.h"
#include "report.h"
#include "rollout.h"
#include "sign.h"
#include "store.h"
#include "when.h"

#include <errno.h>
#include <jansson.h>
#include <libconfig.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef REIMAGE_VERSION
#define REIMAGE_VERSION "0"
#endif

#define INDEX_MAX (4u << 20)   /* a rollout index: a few MB for thousands of agents */
#define REPORT_MAX 65536

struct args {
	const char *store, *key, *conf, *agents, *group, *members, *output, *trusted;
	long long serial, expires, timeout, interval, stale;
	int json, prometheus;
	char **pos;  /* positional arguments */
	int npos;
	const char *wave_groups[17];  /* --wave-group NAME=A,B,... */
	int n_wave_groups;
};

struct ctl {
	struct args *a;
	struct agent_conf ac;  /* the admin file: store and transport settings */
	struct registry reg;
	const char *store;
};

/* ------------------------------------------------------------ helpers */

/* "a,b,c" into a NULL-terminated array (malloc'ed, one block). */
static char **split_list(const char *s)
{
	size_t n = 1, len = strlen(s);
	for (const char *p = s; *p; p++)
		n += *p == ',';
	char **v = malloc((n + 1) * sizeof(char *) + len + 1);
	if (!v)
		return NULL;
	char *text = (char *)(v + n + 1), *save = NULL;
	memcpy(text, s, len + 1);
	n = 0;
	for (char *tok = strtok_r(text, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
		v[n++] = tok;
	v[n] = NULL;
	return v;
}

static int names_ok(char **names, const char *what, struct reimage_error *err)
{
	if (!names || !names[0]) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: no names given", what);
		return -EINVAL;
	}
	for (char **n = names; *n; n++)
		if (!store_name_ok(*n)) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: '%s' may hold only letters, "
				"digits, '.', '_' and '-'", what, *n);
			return -EINVAL;
		}
	return 0;
}

static json_t *json_strings(char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

/* -------------------------------------------------------------- keys */

static int cmd_keygen(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	char id[SIGN_KEY_ID_LEN];
	int r = sign_keygen(c->a->pos[0], c->a->pos[1], err);
	if (r == 0 && (r = sign_key_id(c->a->pos[1], id, err)) == 0)
		printf("key %s: private %s (keep it secret), public %s (list it in the agents' "
		       "trusted_keys)\n", id, c->a->pos[0], c->a->pos[1]);
	return r;
}

static int read_job_text(const char *path, char **ret_text, size_t *ret_len,
			 struct reimage_error *err)
{
	struct job job;
	int r;
	/* The agent must be able to read what is signed: check it first. */
	if ((r = job_load(&job, path, err)) < 0)
		return r;
	job_free(&job);
	return fs_read_small(path, SIGN_DOC_MAX - 512, ret_text, ret_len, err);
}

static int write_out(const char *path, const char *data, size_t len, struct reimage_error *err)
{
	if (!path || !strcmp(path, "-")) {
		if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
			err_sys(err, -EIO, "write to standard output");
			return -EIO;
		}
		return 0;
	}
	return fs_write_atomic(path, data, len, NULL, err);
}

static int cmd_sign(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	char *text = NULL, *doc = NULL;
	size_t len, dlen;
	int r;

	if (!c->a->key) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "sign: the private key is required (-k KEY)");
		return -EINVAL;
	}
	if ((r = read_job_text(c->a->pos[0], &text, &len, err)) == 0 &&
	    (r = sign_document(c->a->key, text, len, &doc, &dlen, err)) == 0)
		r = write_out(c->a->output, doc, dlen, err);
	free(text);
	free(doc);
	return r;
}

static int cmd_verify(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	const char *trusted[2] = { c->a->trusted, NULL };
	struct sign_verified v;
	struct job job;
	char *doc = NULL, when[64] = "(none)";
	size_t len;
	int r;

	if (!c->a->trusted) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "verify: a public key is required (-t KEY)");
		return -EINVAL;
	}
	if ((r = fs_read_small(c->a->pos[0], SIGN_DOC_MAX, &doc, &len, err)) < 0)
		return r;
	if ((r = sign_verify(doc, len, trusted, NULL, &v, err)) == 0 &&
	    (r = job_load_text(&job, c->a->pos[0], v.payload, v.len, err)) == 0) {
		if (job.not_after)
			when_format(job.not_after, when, sizeof(when));
		printf("signature valid: key %s (%s)\njob %s, serial %lld, not_after %s\n", v.key_id,
		       v.key_file, job.id, job.serial, when);
		for (size_t i = 0; job.target_agents && job.target_agents[i]; i++)
			printf("target agent %s\n", job.target_agents[i]);
		for (size_t i = 0; job.target_groups && job.target_groups[i]; i++)
			printf("target group %s\n", job.target_groups[i]);
		job_free(&job);
	}
	free(doc);
	return r;
}

/* ------------------------------------------------------------- submit */

static int set_targets(config_t *cfg, const char *agent, const char *group)
{
	config_setting_t *root = config_root_setting(cfg), *t, *l;
	config_setting_remove(root, "targets");
	if (!(t = config_setting_add(root, "targets", CONFIG_TYPE_GROUP)) ||
	    !(l = config_setting_add(t, agent ? "agents" : "groups", CONFIG_TYPE_ARRAY)) ||
	    !config_setting_set_string_elem(l, -1, agent ? agent : group))
		return -ENOMEM;
	return 0;
}

/* rollout.wave = wave in the job as signed for one agent. */
static int set_wave(config_t *cfg, int wave)
{
	config_setting_t *g = config_setting_get_member(config_root_setting(cfg), "rollout"), *v;
	if (!g)
		return -ENOENT;
	config_setting_remove(g, "wave");
	if (!(v = config_setting_add(g, "wave", CONFIG_TYPE_INT)))
		return -ENOMEM;
	return config_setting_set_int(v, wave) ? 0 : -ENOMEM;
}

static int set_scalar(config_t *cfg, const char *name, int type, long long i, const char *s)
{
	config_setting_t *root = config_root_setting(cfg), *v;
	config_setting_remove(root, name);
	if (!(v = config_setting_add(root, name, type)))
		return -ENOMEM;
	return (type == CONFIG_TYPE_INT64 ? config_setting_set_int64(v, i)
					  : config_setting_set_string(v, s)) ? 0 : -ENOMEM;
}

/* The job file as the agent will read it, signed; wave >= 0: its wave. */
static int signed_doc(struct ctl *c, config_t *cfg, const char *agent, const char *group,
		      int wave, char **ret_doc, size_t *ret_len, struct reimage_error *err)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	if (set_targets(cfg, agent, group) < 0 || (wave >= 0 && set_wave(cfg, wave) < 0) ||
	    !(f = open_memstream(&text, &len))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	config_write(cfg, f);
	fclose(f);
	r = sign_document(c->a->key, text, len, ret_doc, ret_len, err);
	free(text);
	return r;
}

static int next_serial(struct ctl *c, const struct job *job, long long *ret,
		       struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL;
	size_t len;
	long long last = 0;
	int r;

	if (c->a->serial > 0) {
		*ret = c->a->serial;
		return 0;
	}
	store_url(url, sizeof(url), c->store, "serial");
	r = store_get(&c->reg, &c->ac, url, 64, &text, &len, err);
	if (r < 0 && r != -ENOENT)
		return r;
	err_clear(err);
	if (text)
		last = strtoll(text, NULL, 10);
	free(text);
	*ret = job->serial > last ? job->serial : last + 1;
	return 0;
}

/* Assign the targets to the job's waves and publish each wave's
 * documents, before any job document: an agent that accepts its job
 * finds its wave's state. */
static int publish_waves(struct ctl *c, const struct job *job, char **agents, int *wave_of,
			 struct reimage_error *err)
{
	size_t n = 0;
	int r;

	while (agents[n])
		n++;
	if ((r = rollout_assign(job->waves, job->n_waves, (const char *const *)agents, n,
				c->a->wave_groups, wave_of, err)) < 0)
		return r;
	const char **members = calloc(n + 1, sizeof(char *));
	if (!members) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	for (size_t w = 0; w < job->n_waves && r == 0; w++) {
		struct wave_state ws = { .wave = (int)w, .waves = (int)job->n_waves,
					 .budget = job->failure_budget, .timeout = job->wave_timeout };
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			if (wave_of[i] == (int)w)
				members[k++] = agents[i];
		snprintf(ws.name, sizeof(ws.name), "%s", job->waves[w]);
		snprintf(ws.state, sizeof(ws.state), "%s", w == 0 ? "open" : "waiting");
		ws.size = (long long)k;
		ws.unfinished = (long long)k;
		ws.opened = w == 0 ? (int64_t)time(NULL) : 0;
		if ((r = rollout_agents_put(&c->reg, &c->ac, c->store, job->id, (int)w, members, k,
					    err)) == 0)
			r = rollout_wave_put(&c->reg, &c->ac, c->store, job->id, &ws, c->a->key, err);
		printf("wave %zu (%s): %zu agent(s), failure budget %d%%\n", w + 1, job->waves[w],
		       k, job->failure_budget);
	}
	free(members);
	return r;
}

/* After a submit: warn about targets that never reported to the store
 * (a typo in --agents would otherwise wait forever) and add them to the
 * store's index of agents (inventory.h).  Best effort: the job is
 * published either way. */
static void note_targets(struct ctl *c, char **targets)
{
	struct reimage_error e = { 0 };
	struct inventory inv = { 0 };
	size_t n = 0, unseen = 0;
	char names[512] = "";

	for (; targets && targets[n]; n++) {
		struct report rep;
		int r = inventory_seen(&c->reg, &c->ac, c->store, targets[n], &rep, &e);
		if (r != 0)
			continue;  /* seen, or unreadable (not a typo) */
		if (unseen++ < 10)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
				 unseen > 1 ? ", " : "", targets[n]);
	}
	if (unseen)
		log_warn("submit: %zu of %zu agent(s) never reported to %s (a typo? not installed "
			 "yet?): %s%s", unseen, n, c->store, names, unseen > 10 ? ", ..." : "");
	e = (struct reimage_error){ 0 };
	if (n && (inventory_load(&c->reg, &c->ac, c->store, 0, &inv, &e) < 0 ||
		  (inventory_add(&inv, (const char *const *)targets, n) > 0 &&
		   inventory_save(&c->reg, &c->ac, c->store, &inv, &e) < 0)))
		log_warn("submit: the store's index of agents: %s", e.msg);
	inventory_free(&inv);
}

static int cmd_submit(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct args *a = c->a;
	char **agents = a->agents ? split_list(a->agents) : NULL;
	char **members = a->members ? split_list(a->members) : NULL;
	char url[STORE_URL_MAX], when[64], *doc = NULL, *text = NULL;
	json_t *index = NULL, *docs = json_array();
	struct job job = { 0 };
	int *wave_of = NULL;
	config_t cfg;
	long long serial = 0;
	int64_t now = (int64_t)time(NULL), not_after;
	size_t len;
	int r;

	config_init(&cfg);
	if (!a->key || (!a->agents == !a->group)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "submit: needs -k KEY and either "
			"--agents LIST or --group NAME");
		r = -EINVAL;
		goto out;
	}
	if ((agents && (r = names_ok(agents, "--agents", err)) < 0) ||
	    (members && (r = names_ok(members, "--members", err)) < 0) ||
	    (a->group && (r = names_ok((char *[]){ (char *)a->group, NULL }, "--group", err)) < 0) ||
	    (r = job_load(&job, a->pos[0], err)) < 0)
		goto out;
	if (!store_name_ok(job.id)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: job id '%s' may hold only letters, "
			"digits, '.', '_' and '-'", a->pos[0], job.id);
		r = -EINVAL;
		goto out;
	}
	if (job.n_waves > 0 && !agents) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: a job with rollout.waves needs "
			"--agents: each agent's document carries its wave", a->pos[0]);
		r = -EINVAL;
		goto out;
	}
	if ((r = next_serial(c, &job, &serial, err)) < 0)
		goto out;
	not_after = job.not_after ? job.not_after : now + a->expires;
	when_format(not_after, when, sizeof(when));
	if (!config_read_file(&cfg, a->pos[0]) ||
	    set_scalar(&cfg, "serial", CONFIG_TYPE_INT64, serial, NULL) < 0 ||
	    set_scalar(&cfg, "not_after", CONFIG_TYPE_STRING, 0, when) < 0) {
		err_set(err, -EIO, REIMAGE_EC_IO, "%s: cannot rewrite the job", a->pos[0]);
		r = -EIO;
		goto out;
	}
	if (job.n_waves > 0) {
		size_t n = 0;
		while (agents[n])
			n++;
		if (!(wave_of = calloc(n + 1, sizeof(int)))) {
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			r = -ENOMEM;
			goto out;
		}
		if ((r = publish_waves(c, &job, agents, wave_of, err)) < 0)
			goto out;
	}
	/* One document per agent, or one for the group. */
	for (size_t i = 0; agents ? agents[i] != NULL : i == 0; i++) {
		const char *agent = agents ? agents[i] : NULL;
		if (agent)
			store_url(url, sizeof(url), c->store, "jobs/%s.job", agent);
		else
			store_url(url, sizeof(url), c->store, "jobs/group-%s.job", a->group);
		if ((r = signed_doc(c, &cfg, agent, a->group, wave_of ? wave_of[i] : -1, &doc, &len,
				    err)) < 0 ||
		    (r = store_put(&c->reg, &c->ac, url, doc, len, "application/octet-stream",
				   err)) < 0)
			goto out;
		free(doc);
		doc = NULL;
		json_array_append_new(docs, json_pack("{s:s?, s:s}", "agent", agent, "url", url));
	}
	index = json_pack("{s:s, s:I, s:o, s:s?, s:O, s:I, s:I}", "job", job.id, "serial",
			  (json_int_t)serial, "agents", json_strings(agents ? agents : members),
			  "group", a->group, "documents", docs, "submitted", (json_int_t)now,
			  "not_after", (json_int_t)not_after);
	text = index ? json_dumps(index, JSON_INDENT(1)) : NULL;
	store_url(url, sizeof(url), c->store, "rollouts/%s.json", job.id);
	if (!text) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	if ((r = store_put(&c->reg, &c->ac, url, text, strlen(text), "application/json", err)) < 0)
		goto out;
	char serial_text[32];
	snprintf(serial_text, sizeof(serial_text), "%lld\n", serial);
	store_url(url, sizeof(url), c->store, "serial");
	if ((r = store_put(&c->reg, &c->ac, url, serial_text, strlen(serial_text), "text/plain",
			   err)) < 0)
		goto out;
	printf("job %s: serial %lld, not after %s, %zu document(s) published to %s\n", job.id,
	       serial, when, json_array_size(docs), c->store);
	if (a->group && !members)
		printf("note: without --members, `status` and `wait` know no agent of group %s\n",
		       a->group);
	note_targets(c, agents ? agents : members);
out:
	json_decref(index);
	json_decref(docs);
	free(text);
	free(doc);
	free(agents);
	free(members);
	free(wave_of);
	config_destroy(&cfg);
	job_free(&job);
	return r;
}

/* ----------------------------------------------------- status and wait */

struct rollout {
	json_t *index;
	char job[256];
	int64_t submitted;
	size_t n;
	const char **agents;
	const char **urls;  /* the job document each agent reads */
	struct report *rep;
	int *have;
};

static void rollout_free(struct rollout *ro)
{
	json_decref(ro->index);
	free(ro->agents);
	free(ro->urls);
	free(ro->rep);
	free(ro->have);
	memset(ro, 0, sizeof(*ro));
}

static int rollout_load(struct ctl *c, const char *job, struct rollout *ro,
			struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL;
	json_t *agents, *docs, *v, *group = NULL;
	json_int_t submitted = 0;
	json_error_t jerr;
	size_t len, i;
	int r;

	memset(ro, 0, sizeof(*ro));
	if (!store_name_ok(job)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "job id '%s' is not a valid name", job);
		return -EINVAL;
	}
	store_url(url, sizeof(url), c->store, "rollouts/%s.json", job);
	if ((r = store_get(&c->reg, &c->ac, url, INDEX_MAX, &text, &len, err)) < 0) {
		if (r == -ENOENT)
			err_set(err, r, REIMAGE_EC_NOTFOUND, "job %s was not submitted to %s", job,
				c->store);
		return r;
	}
	ro->index = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!ro->index || json_unpack_ex(ro->index, &jerr, 0, "{s:o, s:o, s:I, s?o}", "agents",
					 &agents, "documents", &docs, "submitted", &submitted,
					 "group", &group) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: %s", url, jerr.text);
		return -EBADMSG;
	}
	snprintf(ro->job, sizeof(ro->job), "%s", job);
	ro->submitted = submitted;
	ro->n = json_array_size(agents);
	ro->agents = calloc(ro->n + 1, sizeof(char *));
	ro->urls = calloc(ro->n + 1, sizeof(char *));
	ro->rep = calloc(ro->n + 1, sizeof(struct report));
	ro->have = calloc(ro->n + 1, sizeof(int));
	if (!ro->agents || !ro->urls || !ro->rep || !ro->have) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(agents, i, v) {
		json_t *d;
		size_t k;
		ro->agents[i] = json_string_value(v);
		json_array_foreach(docs, k, d) {
			json_t *da = json_object_get(d, "agent");
			if (!json_is_string(da) || !strcmp(json_string_value(da), ro->agents[i]) ||
			    (json_is_string(group) && json_is_null(da)))
				ro->urls[i] = json_string_value(json_object_get(d, "url"));
		}
		if (!ro->agents[i] || !store_name_ok(ro->agents[i])) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: bad agent name", url);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Fetch every agent's report on the job.  An agent that refused the
 * document before it could read the job's id reports only in its latest
 * report, naming the document's location. */
static void rollout_poll(struct ctl *c, struct rollout *ro)
{
	for (size_t i = 0; i < ro->n; i++) {
		char url[STORE_URL_MAX], *text = NULL;
		struct reimage_error e = { 0 };
		struct report rep;
		size_t len;

		store_url(url, sizeof(url), c->store, "reports/%s/%s.json", ro->job, ro->agents[i]);
		if (store_get(&c->reg, &c->ac, url, REPORT_MAX, &text, &len, &e) == 0 &&
		    report_parse(text, len, &rep, &e) == 0) {
			ro->rep[i] = rep;
			ro->have[i] = 1;
		}
		free(text);
		text = NULL;
		if (ro->have[i])
			continue;
		store_url(url, sizeof(url), c->store, "reports/%s.json", ro->agents[i]);
		if (store_get(&c->reg, &c->ac, url, REPORT_MAX, &text, &len, &e) == 0 &&
		    report_parse(text, len, &rep, &e) == 0 && !strcmp(rep.state, "refused") &&
		    ro->urls[i] && !strcmp(rep.location, ro->urls[i]) && rep.time >= ro->submitted) {
			ro->rep[i] = rep;
			ro->have[i] = 1;
		}
		free(text);
	}
}

static void age_text(char *buf, size_t len, int64_t seconds)
{
	if (seconds < 120)
		snprintf(buf, len, "%llds", (long long)seconds);
	else if (seconds < 7200)
		snprintf(buf, len, "%lldm", (long long)seconds / 60);
	else if (seconds < 172800)
		snprintf(buf, len, "%lldh", (long long)seconds / 3600);
	else
		snprintf(buf, len, "%lldd", (long long)seconds / 86400);
}

static void rollout_print(const struct rollout *ro, FILE *out)
{
	int64_t now = (int64_t)time(NULL);
	size_t counts[3] = { 0 };  /* succeeded, failed, unfinished */

	fprintf(out, "%-20s %-12s %-10s %-9s %-5s %s\n", "AGENT", "STATE", "PHASE", "PROGRESS",
		"AGE", "DETAIL");
	for (size_t i = 0; i < ro->n; i++) {
		const struct report *r = &ro->rep[i];
		char progress[32] = "-", age[16] = "-";
		if (!ro->have[i]) {
			fprintf(out, "%-20s %-12s %-10s %-9s %-5s %s\n", ro->agents[i], "no-report",
				"-", "-", "-", "no report on this job yet");
			counts[2]++;
			continue;
		}
		if (r->total > 0)
			snprintf(progress, sizeof(progress), "%d%%", (int)(r->done * 100 / r->total));
		else if (r->done > 0)
			snprintf(progress, sizeof(progress), "%lluMB",
				 (unsigned long long)(r->done >> 20));
		age_text(age, sizeof(age), now - r->time);
		fprintf(out, "%-20s %-12s %-10s %-9s %-5s %s\n", ro->agents[i], r->state, r->phase,
			progress, age, r->error[0] ? r->error : r->message);
		counts[report_state_success(r->state) ? 0 : report_state_final(r->state) ? 1 : 2]++;
	}
	fprintf(out, "%zu agent(s): %zu succeeded, %zu failed, %zu unfinished\n", ro->n, counts[0],
		counts[1], counts[2]);
}

static int cmd_status(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct rollout ro;
	int r = rollout_load(c, c->a->pos[0], &ro, err);
	if (r == 0) {
		rollout_poll(c, &ro);
		rollout_print(&ro, stdout);
	}
	rollout_free(&ro);
	return r;
}

static int cmd_wait(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	int64_t deadline = (int64_t)time(NULL) + c->a->timeout;
	struct rollout ro;
	int r = rollout_load(c, c->a->pos[0], &ro, err);
	char **last = calloc(ro.n + 1, sizeof(char *));

	while (r == 0) {
		size_t done = 0, ok = 0;
		struct reimage_error e = { 0 };
		int open;
		rollout_poll(c, &ro);
		/* With the key, the administrator's wait decides the waves too
		 * (a job without waves has none to decide), after reading the
		 * reports: the last outcomes seen are decided before it ends. */
		if (c->a->key && (r = rollout_advance(&c->reg, &c->ac, c->store, ro.job,
						      (int64_t)time(NULL), c->a->key, &open, &e)) < 0 &&
		    e.cls != REIMAGE_EC_NOTFOUND) {
			err_set(err, r, e.cls, "%s", e.msg);
			break;
		}
		r = 0;
		for (size_t i = 0; i < ro.n; i++) {
			char line[512];
			if (!ro.have[i])
				continue;
			snprintf(line, sizeof(line), "%s %s", ro.rep[i].state, ro.rep[i].phase);
			/* A line per change of state or phase. */
			if (last && (!last[i] || strcmp(last[i], line))) {
				free(last[i]);
				last[i] = strdup(line);
				log_notice("%s: %s %s%s%s", ro.agents[i], ro.rep[i].state,
					   ro.rep[i].phase, ro.rep[i].error[0] || ro.rep[i].message[0]
					   ? ": " : "", ro.rep[i].error[0] ? ro.rep[i].error
									  : ro.rep[i].message);
			}
			done += report_state_final(ro.rep[i].state);
			ok += report_state_success(ro.rep[i].state);
		}
		if (done == ro.n) {
			rollout_print(&ro, stdout);
			if (ok < ro.n) {
				err_set(err, -EIO, REIMAGE_EC_STATE, "job %s: %zu of %zu agent(s) did "
					"not succeed", ro.job, ro.n - ok, ro.n);
				r = -EIO;
			}
			break;
		}
		if ((int64_t)time(NULL) >= deadline) {
			rollout_print(&ro, stdout);
			err_set(err, -ETIMEDOUT, REIMAGE_EC_RETRYABLE, "job %s: timed out after %lld s "
				"with %zu of %zu agent(s) unfinished", ro.job, c->a->timeout,
				ro.n - done, ro.n);
			r = -ETIMEDOUT;
			break;
		}
		poll(NULL, 0, (int)(c->a->interval * 1000));
	}
	for (size_t i = 0; last && i < ro.n; i++)
		free(last[i]);
	free(last);
	rollout_free(&ro);
	return r;
}

/* Remove every document of the job from the store; agents that have not
 * started it report "cancelled".  *ret_docs: how many were removed. */
static int withdraw(struct ctl *c, const struct rollout *ro, size_t *ret_docs,
		    struct reimage_error *err)
{
	json_t *docs = json_object_get(ro->index, "documents"), *d;
	size_t i;
	int r = 0;

	json_array_foreach(docs, i, d) {
		const char *url = json_string_value(json_object_get(d, "url"));
		if (url && (r = store_remove(&c->reg, &c->ac, url, err)) < 0)
			return r;
	}
	*ret_docs = json_array_size(docs);
	return 0;
}

static int cmd_cancel(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct rollout ro;
	size_t i, started = 0, docs = 0;
	int r = rollout_load(c, c->a->pos[0], &ro, err);

	if (r == 0 && (r = withdraw(c, &ro, &docs, err)) == 0) {
		rollout_poll(c, &ro);
		for (i = 0; i < ro.n; i++)
			if (ro.have[i] && strcmp(ro.rep[i].state, "scheduled") &&
			    strcmp(ro.rep[i].state, "refused")) {
				printf("%s: already %s (%s): not withdrawn\n", ro.agents[i],
				       ro.rep[i].state, ro.rep[i].phase);
				started++;
			}
		printf("job %s withdrawn: %zu document(s) removed; %zu agent(s) had started it\n",
		       ro.job, docs, started);
	}
	rollout_free(&ro);
	return r;
}

/* 1 if the report shows the swap done (or the job over). */
static int swapped(const struct report *rep)
{
	return !strcmp(rep->state, "pending") || !strcmp(rep->state, "committed") ||
	       !strcmp(rep->state, "rolled-back");
}

/* Mark every wave not yet decided "stopped", for `rollout status`. */
static int stop_waves(struct ctl *c, const char *job, int64_t now, struct reimage_error *err)
{
	struct wave_state ws;
	char when[64];
	int r;

	when_format(now, when, sizeof(when));
	for (int k = 0;; k++) {
		struct reimage_error e = { 0 };
		r = rollout_wave_get(&c->reg, &c->ac, c->store, job, k, (char[REIMAGE_ETAG_MAX]){ "" },
				     &ws, &e);
		if (r < 0 && e.cls == REIMAGE_EC_NOTFOUND)
			return 0;  /* past the last wave, or a job without waves */
		if (r < 0) {
			err_set(err, r, e.cls, "%s", e.msg);
			return r;
		}
		if (strcmp(ws.state, "open") && strcmp(ws.state, "waiting"))
			continue;
		snprintf(ws.state, sizeof(ws.state), "stopped");
		snprintf(ws.reason, sizeof(ws.reason), "rollout stopped by the administrator at %s",
			 when);
		ws.decided = now;
		if ((r = rollout_wave_put(&c->reg, &c->ac, c->store, job, &ws, c->a->key, err)) < 0)
			return r;
	}
}

static int cmd_stop(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct rollout ro;
	size_t i, done = 0, docs = 0;
	int64_t now = (int64_t)time(NULL);
	int r = rollout_load(c, c->a->pos[0], &ro, err);

	struct reimage_error we = { 0 };

	/* The waves first, so that deciding them later does not count the
	 * cancelled agents as failures.  Without the keys to read and sign
	 * them the stop still withdraws every document, which is what stops
	 * the agents: an emergency stop must not wait for a key. */
	if (r == 0 && stop_waves(c, ro.job, now, &we) < 0)
		log_warn("stop: waves not marked stopped (%s); the documents are withdrawn anyway",
			 we.msg);
	if (r == 0 && (r = withdraw(c, &ro, &docs, err)) == 0) {
		rollout_poll(c, &ro);
		for (i = 0; i < ro.n; i++)
			if (ro.have[i] && swapped(&ro.rep[i])) {
				printf("%s: already swapped (%s): goes on\n", ro.agents[i],
				       ro.rep[i].state);
				done++;
			}
		printf("rollout %s stopped: %zu document(s) withdrawn; agents that have not "
		       "swapped abort and report \"cancelled\"; %zu had swapped\n", ro.job, docs,
		       done);
	}
	rollout_free(&ro);
	return r;
}

static int cmd_rollout(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	const char *job = c->a->pos[1];
	int64_t now = (int64_t)time(NULL);
	int halted = 0, k, r = 0;

	int advance = !strcmp(c->a->pos[0], "advance"), open;

	if (!advance && strcmp(c->a->pos[0], "status")) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "rollout: unknown action '%s' (expected "
			"\"status\" or \"advance\")", c->a->pos[0]);
		return -EINVAL;
	}
	if (!store_name_ok(job)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "job id '%s' is not a valid name", job);
		return -EINVAL;
	}
	if (advance && !c->a->key) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "rollout advance: deciding a wave signs "
			"it: the private key is required (-k)");
		return -EINVAL;
	}
	if (advance) {
		/* One read of the open wave's reports: the table is `status`'s. */
		if ((r = rollout_advance(&c->reg, &c->ac, c->store, job, now, c->a->key, &open,
					 err)) < 0)
			return r;
		if (open >= 0)
			printf("rollout %s: wave %d is open\n", job, open + 1);
		else
			printf("rollout %s: no wave is open (all committed, or halted or stopped: "
			       "see `rollout status`)\n", job);
		return 0;
	}
	printf("%-5s %-12s %6s %-10s %9s %6s %10s %6s  %s\n", "WAVE", "NAME", "AGENTS", "STATE",
	       "COMMITTED", "FAILED", "UNFINISHED", "BUDGET", "DETAIL");
	for (k = 0;; k++) {
		struct reimage_error e = { 0 };
		struct wave_state ws;
		if ((r = rollout_count(&c->reg, &c->ac, c->store, job, k, now, &ws, &e)) < 0) {
			if (e.cls == REIMAGE_EC_NOTFOUND && k > 0) {
				r = 0;
				break;
			}
			if (e.cls == REIMAGE_EC_NOTFOUND)
				err_set(err, -ENOENT, REIMAGE_EC_NOTFOUND, "job %s has no waves in %s "
					"(submitted without rollout.waves? see `reimagectl status`)",
					job, c->store);
			else
				err_set(err, r, e.cls, "%s", e.msg);
			return r < 0 ? r : -ENOENT;
		}
		printf("%-5d %-12s %6lld %-10s %9lld %6lld %10lld %5d%%  %s\n", k + 1, ws.name, ws.size,
		       ws.state, ws.committed, ws.failed, ws.unfinished, ws.budget, ws.reason);
		halted |= !strcmp(ws.state, "halted") || !strcmp(ws.state, "stopped");
	}
	printf("rollout %s: %d wave(s)%s\n", job, k, halted ? ", halted" : "");
	return r;
}

/* ------------------------------------------------------------ agents */

static int cmd_agents(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct inventory inv;
	int r = inventory_load(&c->reg, &c->ac, c->store, 1, &inv, err);

	if (r == 0 && inv.listing[0])
		log_warn("agents: %s", inv.listing);
	if (r == 0)
		r = inventory_write(&c->reg, &c->ac, c->store, &inv, (int64_t)time(NULL),
				    c->a->stale, c->a->prometheus ? INVENTORY_PROMETHEUS
				    : c->a->json ? INVENTORY_JSON : INVENTORY_TABLE, stdout, err);
	inventory_free(&inv);
	return r;
}

/* ------------------------------------------------------------- main */

static const struct cli_option options[] = {
	{ "store", 's', "URL", "the job store: a directory, file:, http(s)://, smb://", 0 },
	{ "config", 'C', "FILE", "settings in agent-file syntax: `store`, `plugin_path`, "
				 "transport groups (TLS, credentials)", 0 },
	{ "key", 'k', "FILE", "the private key that signs", 0 },
	{ "trusted", 't', "FILE", "the public key that verifies", 0 },
	{ "output", 'o', "FILE", "where to write (default: standard output)", 0 },
	{ "agents", 0, "A,B,...", "the agents a job is for, one signed document each", 0 },
	{ "group", 0, "G", "the group a shared job document is for", 0 },
	{ "members", 0, "A,B,...", "the agents of --group that status and wait follow", 0 },
	{ "serial", 0, "N", "the job's serial (default: one above the store's last)", 0 },
	{ "expires", 0, "SECONDS", "not_after = now + SECONDS when the job has none "
				   "(default 7 days)", 0 },
	{ "timeout", 0, "SECONDS", "give up waiting after SECONDS (default 3600)", 0 },
	{ "interval", 0, "SECONDS", "seconds between two reads of the reports (default 2)", 0 },
	{ "wave-group", 0, "NAME=A,B,...", "the agents of the wave group NAME "
					   "(repeat per group, at most 16)", 1 },
	{ "stale", 0, "SECONDS", "agents: flag machines not seen for longer (default 7200)", 0 },
	{ "json", 0, NULL, "agents: a JSON array instead of the table", 0 },
	{ "prometheus", 0, NULL, "agents: a Prometheus text-format summary", 0 },
	{ "verbose", 'v', NULL, "log more (repeat for debug)", 1 },
	{ "quiet", 'q', NULL, "log warnings and errors only", 0 },
	{ "help", 'h', NULL, "print help and exit", 0 },
	{ "version", 'V', NULL, "print the version and exit", 0 },
	{ NULL, 0, NULL, NULL, 0 }
};

static const char *const store_options[] = { "store", "config", NULL };

static const struct cli_command commands[] = {
	{ "keygen", 2, 2, "PRIVATE.pem PUBLIC.pem",
	  "Make an Ed25519 key pair.  The private key (mode 0600) signs jobs; the public\n"
	  "key goes into each agent's trusted_keys.  Existing files are never replaced.",
	  NULL, cmd_keygen, NULL },
	{ "sign", 1, 1, "-k PRIVATE.pem JOB [-o FILE]",
	  "Check a job file and write it signed (to standard output, or FILE).  A signed\n"
	  "job needs `targets` and `not_after`; `submit` sets both.",
	  (const char *const[]){ "key", "output", "config", NULL }, cmd_sign,
	  (const char *const[]){ "key", NULL } },
	{ "verify", 1, 1, "-t PUBLIC.pem SIGNED-JOB",
	  "Check a signed job's signature and print its id, serial, expiry and targets.",
	  (const char *const[]){ "trusted", "config", NULL }, cmd_verify,
	  (const char *const[]){ "trusted", NULL } },
	{ "submit", 1, 1,
	  "-s STORE -k PRIVATE.pem JOB (--agents A,B,... | --group G [--members A,B,...])\n"
	  "         [--serial N] [--expires SECONDS] [--wave-group NAME=A,B,...]",
	  "Publish a job to the job store: one signed document per agent (--agents), or\n"
	  "one shared document for a group (--group; --members names the agents `status`\n"
	  "and `wait` follow).  The serial is --serial, else one above the store's last;\n"
	  "not_after is the job's, else now + --expires (default 7 days).  Records the\n"
	  "rollout in <store>/rollouts/JOB.json.  A job with rollout.waves needs --agents:\n"
	  "each agent's signed document names its wave; a wave named after a group takes\n"
	  "the agents --wave-group NAME=A,B,... lists (repeat it per group).",
	  (const char *const[]){ "store", "config", "key", "agents", "group", "members", "serial",
				 "expires", "wave-group", NULL },
	  cmd_submit, (const char *const[]){ "key", NULL } },
	{ "status", 1, 1, "-s STORE JOB",
	  "A table of every targeted agent: state, phase, progress, age of its last\n"
	  "report, and the error or message.",
	  store_options, cmd_status, NULL },
	{ "wait", 1, 1, "-s STORE JOB [--timeout SECONDS] [--interval SECONDS] [-k KEY -t PUB]",
	  "Follow the agents' reports until every one has succeeded (committed: running\n"
	  "the new image) or failed, or the timeout (default 3600 s) passes.  Exit 0\n"
	  "only if all succeeded; 1 if any failed; 4 on timeout.  With -k (and -t, or\n"
	  "trusted_keys in -C FILE) it also decides a rollout's waves as `rollout\n"
	  "advance` does, at every read.",
	  (const char *const[]){ "store", "config", "timeout", "interval", "key", "trusted",
				 NULL }, cmd_wait, NULL },
	{ "cancel", 1, 1, "-s STORE JOB",
	  "Withdraw a job: remove its documents from the store.  Agents that have not\n"
	  "started it report \"cancelled\"; those that started go on.",
	  store_options, cmd_cancel, NULL },
	{ "stop", 1, 1, "-s STORE JOB",
	  "Halt a rollout now: remove its documents and mark its open and waiting waves\n"
	  "stopped.  Every agent that has not swapped aborts (waiting, staging, staged\n"
	  "or counting down), removes its staging and reports \"cancelled\" within its\n"
	  "poll interval; those that swapped go on to their trial.  Exit 0 once the\n"
	  "store holds the stop.  The stopped waves are signed with -k (a job with\n"
	  "rollout.waves needs it, and -t or trusted_keys to read them).",
	  (const char *const[]){ "store", "config", "key", "trusted", NULL }, cmd_stop, NULL },
	{ "rollout", 2, 2, "(status|advance) -s STORE -t PUBLIC.pem [-k PRIVATE.pem] JOB",
	  "Each wave of a rollout (job.conf's rollout.waves): its agents, state (waiting,\n"
	  "open, committed, halted, stopped), committed, failed and unfinished agents\n"
	  "counted from their reports now, and its failure budget.  A wave opens when\n"
	  "the one before it committed within its budget; one over budget halts the\n"
	  "rollout; past rollout.wave_timeout its silent agents count as failed.\n"
	  "`advance` (needs -k) makes these decisions and publishes each, signed, in\n"
	  "the wave's document, the only one its agents read, and says which wave is\n"
	  "open; run it (or `wait -k`) while the rollout goes on.  Wave documents\n"
	  "are verified with -t (or trusted_keys in -C FILE).",
	  (const char *const[]){ "store", "config", "key", "trusted", NULL }, cmd_rollout, NULL },
	{ "agents", 0, 0, "-s STORE [--stale SECONDS] [--json | --prometheus]",
	  "The fleet: every agent the store knows (its listing of reports/ where it\n"
	  "gives one -- a directory, or nginx with `autoindex on` -- and agents.json,\n"
	  "the index `submit` keeps of its targets) with its latest report, which\n"
	  "is also its heartbeat (agent setting `heartbeat`): state, job, phase,\n"
	  "version, when last seen.  Failed machines first, then those not seen for\n"
	  "--stale seconds (default 7200) or never.  --prometheus: counts by state,\n"
	  "stale and never seen, for a node exporter's textfile collector.",
	  (const char *const[]){ "store", "config", "stale", "json", "prometheus", NULL },
	  cmd_agents, NULL },
};

/* Commands that need a job store (-s, or `store` in the -C file). */
static int needs_store(const struct cli_command *c)
{
	for (const char *const *o = c->options; o && *o; o++)
		if (!strcmp(*o, "store"))
			return 1;
	return 0;
}

const struct cli_program reimagectl_program = {
	.name = "reimagectl",
	.version = REIMAGE_VERSION,
	.summary = "Sign re-imaging jobs and follow them across a fleet",
	.options = options,
	.commands = commands,
	.n_commands = sizeof(commands) / sizeof(commands[0]),
	.exit_codes = "0 success, 1 failure (wait: an agent did not succeed), 2 usage\n"
		      "or configuration error, 4 wait timed out.",
};

static int exit_code(int r, const struct reimage_error *err)
{
	if (r == -ETIMEDOUT)
		return CLI_EXIT_TIMEOUT;
	return err->cls == REIMAGE_EC_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

/* A non-negative number option into *ret; 0 if absent (ret keeps its default). */
static int number(const struct cli_args *ca, const char *name, long long *ret)
{
	const char *s = cli_value(&reimagectl_program, ca, name);
	char *end;

	if (!s)
		return 0;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "reimagectl: --%s: '%s' is not a non-negative number\n", name, s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	const struct cli_program *p = &reimagectl_program;
	struct args a = { .expires = 7 * 86400, .timeout = 3600, .interval = 2, .stale = 7200 };
	struct reimage_error err = { 0 };
	const struct cli_command *cmd;
	struct ctl c = { .a = &a };
	struct cli_args ca;
	int r;

	if ((r = cli_parse(p, argc, argv, &ca, &cmd)) != CLI_RUN)
		return r;
	a.store = cli_value(p, &ca, "store");
	a.conf = cli_value(p, &ca, "config");
	a.key = cli_value(p, &ca, "key");
	a.trusted = cli_value(p, &ca, "trusted");
	a.output = cli_value(p, &ca, "output");
	a.agents = cli_value(p, &ca, "agents");
	a.group = cli_value(p, &ca, "group");
	a.members = cli_value(p, &ca, "members");
	a.pos = ca.pos;
	a.npos = ca.npos;
	a.json = ca.count[cli_option_index(p, "json")] > 0;
	a.prometheus = ca.count[cli_option_index(p, "prometheus")] > 0;
	int wg = cli_option_index(p, "wave-group");
	for (int i = 0; i < ca.count[wg]; i++) {
		if (!strchr(ca.values[wg][i], '=')) {
			fprintf(stderr, "reimagectl: --wave-group NAME=AGENT,...: '%s'\n",
				ca.values[wg][i]);
			return CLI_EXIT_USAGE;
		}
		a.wave_groups[a.n_wave_groups++] = ca.values[wg][i];
	}
	if (number(&ca, "serial", &a.serial) < 0 || number(&ca, "expires", &a.expires) < 0 ||
	    number(&ca, "timeout", &a.timeout) < 0 || number(&ca, "interval", &a.interval) < 0 ||
	    number(&ca, "stale", &a.stale) < 0)
		return CLI_EXIT_USAGE;
	if (a.interval < 1) {
		fprintf(stderr, "reimagectl: --interval must be at least 1\n");
		return CLI_EXIT_USAGE;
	}
	if ((r = agent_conf_load(&c.ac, a.conf, &err)) < 0) {
		log_error("%s", err.msg);
		return exit_code(r, &err);
	}
	c.store = a.store ? a.store : c.ac.store;
	/* -t verifies wave documents, as trusted_keys does for an agent. */
	const char *trusted[2] = { a.trusted, NULL };
	if (a.trusted)
		c.ac.trusted_keys = trusted;
	if (needs_store(cmd) && !c.store) {
		fprintf(stderr, "reimagectl %s: the job store is required (-s URL, or `store` in "
				"-C FILE)\n", cmd->name);
		agent_conf_free(&c.ac);
		return CLI_EXIT_USAGE;
	}
	if ((r = registry_init(&c.reg, c.ac.plugin_path, &err)) == 0)
		r = cmd->run(&c, &err);
	registry_fini(&c.reg);
	agent_conf_free(&c.ac);
	if (r < 0) {
		log_error("%s", err.msg);
		return exit_code(r, &err);
	}
	return 0;
}
