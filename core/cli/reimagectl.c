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
#include "chunked.h"
#include "command.h"
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "inventory.h"
#include "log.h"
#include "registry.h"
#include "report.h"
#include "rollout.h"
#include "manual.h"
#include "sign.h"
#include "store.h"
#include "timestamp.h"
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

#define INDEX_MAX (64u << 20)  /* a rollout index: ~120 bytes an agent, 12 MB for 100,000 */
#define REPORT_MAX 65536

struct args {
	const char *store, *key, *conf, *agents, *group, *members, *output, *trusted, *base;
	long long serial, expires, timeout, interval, stale;
	int reset_serial;  /* submit --reset-serial */
	int expires_given;
	int prometheus;    /* agents: the Prometheus text format */
	char **pos;  /* positional arguments */
	int npos;
	const char *wave_groups[17];  /* --wave-group NAME=A,B,... */
	int n_wave_groups;
	int reuse;  /* submit: a job id already in the store, on purpose */
	int json;   /* status, rollout status: JSON on standard output */
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

/* The job file's text, checked as an agent would take it; with a line
 * signed_at = now appended when it has none (as submit sets it): the
 * signing time raises the agents' floor of trusted time. */
static int read_job_text(const char *path, char **ret_text, size_t *ret_len,
			 struct reimage_error *err)
{
	struct job job;
	int64_t signed_at;
	char line[96], when[64], *text;
	size_t len;
	int r;
	/* The agent must be able to read what is signed, and accept it:
	 * every agent refuses a job without targets or an expiry. */
	if ((r = job_load(&job, path, err)) < 0)
		return r;
	if (!job.has_targets || !job.not_after) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: a signed job needs %s%s%s: every agent "
			"would refuse it (`reimagectl submit` sets both)", path,
			job.has_targets ? "" : "a `targets` group",
			!job.has_targets && !job.not_after ? " and " : "",
			job.not_after ? "" : "`not_after`");
		r = -EINVAL;
	}
	signed_at = job.signed_at;
	job_free(&job);
	if (r < 0 || (r = fs_read_small(path, SIGN_DOC_MAX - 512, &text, &len, err)) < 0)
		return r;
	if (!signed_at) {
		char *more;
		when_format(time(NULL), when, sizeof(when));
		int n = snprintf(line, sizeof(line), "%ssigned_at = \"%s\";\n",
				 len && text[len - 1] != '\n' ? "\n" : "", when);
		if (!(more = realloc(text, len + (size_t)n + 1))) {
			free(text);
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		text = more;
		memcpy(text + len, line, (size_t)n + 1);
		len += (size_t)n;
	}
	*ret_text = text;
	*ret_len = len;
	return 0;
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
	    (r = sign_document(SIGN_JOB, c->a->key, text, len, &doc, &dlen, err)) == 0)
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
	char *doc = NULL, when[64] = "(none)", signed_at[64] = "(none)";
	size_t len;
	int r;

	if (!c->a->trusted) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "verify: a public key is required (-t KEY)");
		return -EINVAL;
	}
	if ((r = fs_read_small(c->a->pos[0], SIGN_DOC_MAX, &doc, &len, err)) < 0)
		return r;
	if ((r = sign_verify(SIGN_JOB, doc, len, trusted, NULL, &v, err)) == 0 &&
	    (r = job_load_text(&job, c->a->pos[0], v.payload, v.len, err)) == 0) {
		if (job.not_after)
			when_format(job.not_after, when, sizeof(when));
		if (job.signed_at)
			when_format(job.signed_at, signed_at, sizeof(signed_at));
		printf("signature valid: key %s (%s)\njob %s, serial %lld, signed_at %s, not_after %s\n",
		       v.key_id, v.key_file, job.id, job.serial, signed_at, when);
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

/* rollout.wave = wave (from 0) in the job as signed for one agent; the
 * document counts from 1, as the store's files and messages do. */
static int set_wave(config_t *cfg, int wave)
{
	config_setting_t *g = config_setting_get_member(config_root_setting(cfg), "rollout"), *v;
	if (!g)
		return -ENOENT;
	config_setting_remove(g, "wave");
	if (!(v = config_setting_add(g, "wave", CONFIG_TYPE_INT)))
		return -ENOMEM;
	return config_setting_set_int(v, wave + 1) ? 0 : -ENOMEM;
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
	r = sign_document(SIGN_JOB, c->a->key, text, len, ret_doc, ret_len, err);
	free(text);
	return r;
}

/* The counter the store keeps in <store>/name ("serial", "serial-reset"):
 * 0 if there is none yet; anything but a decimal number is an error, not
 * a zero. */
static int store_counter(struct ctl *c, const char *name, long long *ret,
			 struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL, *end;
	size_t len;
	long long v = 0;
	int r;

	store_url(url, sizeof(url), c->store, "%s", name);
	r = store_get(&c->reg, &c->ac, url, 64, &text, &len, err);
	if (r == -ENOENT) {
		err_clear(err);
		*ret = 0;
		return 0;
	}
	if (r < 0)
		return r;
	errno = 0;
	if (len > 0 && text[0] >= '0' && text[0] <= '9')
		v = strtoll(text, &end, 10);
	if (len == 0 || text[0] < '0' || text[0] > '9' || errno || strcmp(end, "\n") ||
	    v == LLONG_MAX) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: not a serial (a decimal number "
			"and a newline)", url);
		r = -EBADMSG;
	}
	free(text);
	*ret = v;
	return r;
}

static int put_counter(struct ctl *c, const char *name, long long v, struct reimage_error *err)
{
	char url[STORE_URL_MAX], text[32];
	snprintf(text, sizeof(text), "%lld\n", v);
	store_url(url, sizeof(url), c->store, "%s", name);
	return store_put(&c->reg, &c->ac, url, text, strlen(text), "text/plain", err);
}

static int next_serial(struct ctl *c, const struct job *job, long long *ret,
		       struct reimage_error *err)
{
	long long last;
	int r;

	if (c->a->serial > 0) {
		*ret = c->a->serial;
		return 0;
	}
	if ((r = store_counter(c, "serial", &last, err)) < 0)
		return r;
	*ret = job->serial > last ? job->serial : last + 1;
	return 0;
}

/* Assign the targets to the job's waves and publish each wave's
 * documents, before any job document: an agent that accepts its job
 * finds its wave's state. */
static int publish_waves(struct ctl *c, const struct job *job, long long serial, char **agents,
			 int *wave_of, struct reimage_error *err)
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
					 .serial = serial, .budget = job->failure_budget,
					 .timeout = job->wave_timeout };
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

/* A job id names its reports in the store: a second job under the same id
 * would be mistaken for the first (its reports, its waves) unless the
 * administrator says it is meant (--reuse: reports are then matched by
 * the new serial). */
static int check_new_id(struct ctl *c, const char *job, struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL;
	long long serial = 0;
	json_t *index;
	size_t len;
	int r;

	store_url(url, sizeof(url), c->store, "rollouts/%s.json", job);
	if ((r = store_get(&c->reg, &c->ac, url, INDEX_MAX, &text, &len, err)) == -ENOENT) {
		err_clear(err);
		return 0;
	}
	if (r < 0)
		return r;
	if ((index = json_loadb(text, len, 0, NULL)))
		serial = json_integer_value(json_object_get(index, "serial"));
	json_decref(index);
	free(text);
	if (c->a->reuse) {
		log_notice("job %s: replacing the rollout of serial %lld (--reuse)", job, serial);
		/* The new rollout writes its own waves; none of the old stays. */
		return rollout_forget_waves(&c->reg, &c->ac, c->store, job, 0, err);
	}
	err_set(err, -EEXIST, REIMAGE_EC_CONFIG, "job id %s was already submitted to %s (serial "
		"%lld): give the job a new `id`, or submit it again with --reuse (status and wait "
		"then follow the new serial only)", job, c->store, serial);
	return -EEXIST;
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
	int *seen;

	while (targets && targets[n])
		n++;
	if (!n || !(seen = calloc(n, sizeof(int))))
		return;
	if (inventory_read(&c->reg, &c->ac, c->store, (const char *const *)targets, n, seen, NULL,
			   &e) < 0)
		log_warn("submit: reading the targets' reports: %s", e.msg);
	else
		for (size_t i = 0; i < n; i++) {
			if (seen[i] != 0)
				continue;  /* seen, or unreadable (not a typo) */
			if (unseen++ < 10)
				snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
					 unseen > 1 ? ", " : "", targets[i]);
		}
	free(seen);
	if (unseen)
		log_warn("submit: %zu of %zu agent(s) never reported to %s (a typo? not installed "
			 "yet?): %s%s", unseen, n, c->store, names, unseen > 10 ? ", ..." : "");
	e = (struct reimage_error){ 0 };
	if (inventory_load(&c->reg, &c->ac, c->store, 0, &inv, &e) < 0 ||
	    (inventory_add(&inv, (const char *const *)targets, n) > 0 &&
	     inventory_save(&c->reg, &c->ac, c->store, &inv, &e) < 0))
		log_warn("submit: the store's index of agents: %s", e.msg);
	inventory_free(&inv);
}

/* The status page, built in from core/remote/status.html. */
extern const unsigned char status_page[];
extern const size_t status_page_len;

/* Put (or refresh) status.html in the store; its URL in url. */
static int put_page(struct ctl *c, char url[STORE_URL_MAX], struct reimage_error *err)
{
	store_url(url, STORE_URL_MAX, c->store, "status.html");
	return store_put(&c->reg, &c->ac, url, (const char *)status_page, status_page_len,
			 "text/html", err);
}

/* After a submit: the page the fleet is watched on, as new as this
 * reimagectl; the job is published whether or not it can be written. */
static void refresh_page(struct ctl *c)
{
	struct reimage_error err = { 0 };
	char url[STORE_URL_MAX];

	if (put_page(c, url, &err) < 0)
		log_warn("submit: status page not written: %s", err.msg);
	else
		printf("status page: %s\n", url);
}

static int cmd_page(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	char url[STORE_URL_MAX];
	int r;

	if ((r = put_page(c, url, err)) == 0)
		printf("%s: the fleet's status page (%zu bytes); open it where the store is "
		       "served\n", url, status_page_len);
	return r;
}

static int cmd_submit(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct args *a = c->a;
	char **agents = a->agents ? split_list(a->agents) : NULL;
	char **members = a->members ? split_list(a->members) : NULL;
	char url[STORE_URL_MAX], when[64], signed_at[64], *doc = NULL, *text = NULL;
	json_t *index = NULL, *docs = json_array();
	long long reset = 0;
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
	if ((r = check_new_id(c, job.id, err)) < 0 || (r = next_serial(c, &job, &serial, err)) < 0 ||
	    (a->reset_serial && (r = store_counter(c, "serial-reset", &reset, err)) < 0))
		goto out;
	if (a->reset_serial)
		reset++;
	not_after = job.not_after ? job.not_after : now + a->expires;
	when_format(not_after, when, sizeof(when));
	when_format(now, signed_at, sizeof(signed_at));
	if (!config_read_file(&cfg, a->pos[0]) ||
	    set_scalar(&cfg, "serial", CONFIG_TYPE_INT64, serial, NULL) < 0 ||
	    set_scalar(&cfg, "not_after", CONFIG_TYPE_STRING, 0, when) < 0 ||
	    set_scalar(&cfg, "signed_at", CONFIG_TYPE_STRING, 0, signed_at) < 0 ||
	    (reset && set_scalar(&cfg, "serial_reset", CONFIG_TYPE_INT64, reset, NULL) < 0)) {
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
		if ((r = publish_waves(c, &job, serial, agents, wave_of, err)) < 0)
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
	if ((r = put_counter(c, "serial", serial, err)) < 0 ||
	    (reset && (r = put_counter(c, "serial-reset", reset, err)) < 0))
		goto out;
	printf("job %s: serial %lld%s, not after %s, %zu document(s) published to %s\n", job.id,
	       serial, reset ? " (a serial reset)" : "", when, json_array_size(docs), c->store);
	if (a->group && !members)
		printf("note: without --members, `status` and `wait` cannot follow group %s "
		       "(they refuse: its agents are unknown)\n", a->group);
	note_targets(c, agents ? agents : members);
	refresh_page(c);
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

/* ---------------------------------------------------------- timestamp */

static int cmd_timestamp(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	char url[STORE_URL_MAX], when[64], *doc = NULL;
	int64_t now = (int64_t)time(NULL);
	/* Short-lived by default: it only says the store is current. */
	long long lifetime = c->a->expires_given ? c->a->expires : 86400;
	size_t len;
	int r;

	if (!c->a->key || lifetime < 1) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "timestamp: needs -k KEY and --expires of "
			"1 s or more");
		return -EINVAL;
	}
	store_url(url, sizeof(url), c->store, "timestamp");
	if ((r = timestamp_sign(c->a->key, now, lifetime, &doc, &len, err)) == 0 &&
	    (r = store_put(&c->reg, &c->ac, url, doc, len, "application/octet-stream", err)) == 0) {
		when_format(now + lifetime, when, sizeof(when));
		printf("store timestamp published to %s, expires %s\n", url, when);
	}
	free(doc);
	return r;
}

/* ----------------------------------------------------- status and wait */

struct rollout {
	json_t *index;
	char job[256];
	long long serial;   /* the run followed: reports of another serial are older runs' */
	int64_t submitted;
	size_t n;
	const char **agents;
	const char **urls;  /* the job document each agent reads */
	struct report_brief *rep;
	int *have;
};

static void rollout_free(struct rollout *ro)
{
	json_decref(ro->index);
	free(ro->agents);
	free(ro->urls);
	for (size_t i = 0; ro->rep && i < ro->n; i++)
		report_brief_clear(&ro->rep[i]);
	free(ro->rep);
	free(ro->have);
	memset(ro, 0, sizeof(*ro));
}

/* follow: the command reads the agents' reports (status, wait), which a
 * group submitted without --members does not name. */
static int rollout_load(struct ctl *c, const char *job, int follow, struct rollout *ro,
			struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL;
	json_t *agents, *docs, *v, *group = NULL;
	json_int_t submitted = 0, serial = 0;
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
	if (!ro->index || json_unpack_ex(ro->index, &jerr, 0, "{s:o, s:o, s:I, s?I, s?o}", "agents",
					 &agents, "documents", &docs, "submitted", &submitted,
					 "serial", &serial, "group", &group) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: %s", url, jerr.text);
		return -EBADMSG;
	}
	snprintf(ro->job, sizeof(ro->job), "%s", job);
	ro->serial = serial;
	ro->submitted = submitted;
	ro->n = json_array_size(agents);
	if (follow && ro->n == 0) {
		/* Zero agents followed would read as "all done". */
		err_set(err, -ENOENT, REIMAGE_EC_CONFIG, "job %s was submitted to group %s without "
			"--members: which agents run it is unknown, so their reports cannot be "
			"followed; submit again with --reuse --members A,B,...",
			job, json_is_string(group) ? json_string_value(group) : "?");
		return -ENOENT;
	}
	ro->agents = calloc(ro->n + 1, sizeof(char *));
	ro->urls = calloc(ro->n + 1, sizeof(char *));
	ro->rep = calloc(ro->n + 1, sizeof(*ro->rep));
	ro->have = calloc(ro->n + 1, sizeof(int));
	if (!ro->agents || !ro->urls || !ro->rep || !ro->have) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(agents, i, v) {
		json_t *d = json_array_get(docs, i), *da = json_object_get(d, "agent");
		size_t k;
		ro->agents[i] = json_string_value(v);
		/* submit writes one document per agent in the agents' order:
		 * looked up by position, a fleet of 100,000 is not searched
		 * 100,000 times; a group's one document is found by the scan. */
		if (ro->agents[i] && json_is_string(da) && !strcmp(json_string_value(da), ro->agents[i]))
			ro->urls[i] = json_string_value(json_object_get(d, "url"));
		else
			json_array_foreach(docs, k, d) {
				da = json_object_get(d, "agent");
				if (!json_is_string(da) ||
				    (ro->agents[i] && !strcmp(json_string_value(da), ro->agents[i])))
					ro->urls[i] = json_string_value(json_object_get(d, "url"));
			}
		if (!ro->agents[i] || !store_name_ok(ro->agents[i])) {
			err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: bad agent name", url);
			return -EBADMSG;
		}
	}
	return 0;
}

/* One batch of reports being read for rollout_poll(). */
struct poll_batch {
	struct rollout *ro;
	size_t *agent;      /* the agent of each URL */
	int latest;         /* reading the agents' latest reports, not the job's */
};

static void poll_done(void *arg, size_t i, int r, const void *buf, size_t len,
		      const struct reimage_error *err)
{
	struct poll_batch *b = arg;
	struct rollout *ro = b->ro;
	size_t k = b->agent[i];
	struct reimage_error e = { 0 };
	struct report rep;

	(void)err;  /* an unreadable report is no report yet */
	if (r < 0 || report_parse(buf, len, &rep, &e) < 0)
		return;
	if (!b->latest)
		ro->have[k] = !ro->serial || rep.serial == ro->serial;
	else
		ro->have[k] = !strcmp(rep.state, "refused") && ro->urls[k] &&
			      !strcmp(rep.location, ro->urls[k]) && rep.time >= ro->submitted;
	if (ro->have[k])
		report_brief_set(&ro->rep[k], &rep);
}

/* Fetch every agent's report on the job, of this run (its serial: a job
 * id reused with --reuse leaves older runs' reports until the agents
 * replace them).  An agent that refused the document before it could
 * read the job's id reports only in its latest report, naming the
 * document's location.  Reports are read several at once
 * (store_get_many). */
static void rollout_poll(struct ctl *c, struct rollout *ro)
{
	char **urls = calloc(ro->n + 1, sizeof(char *));
	size_t *agent = calloc(ro->n + 1, sizeof(size_t));
	struct poll_batch b = { .ro = ro, .agent = agent };

	for (size_t i = 0; i < ro->n; i++)
		ro->have[i] = 0;
	for (int pass = 0; pass < 2 && urls && agent; pass++) {
		struct reimage_error e = { 0 };
		size_t n = 0;
		for (size_t i = 0; i < ro->n; i++) {
			char url[STORE_URL_MAX];
			if (ro->have[i])
				continue;
			if (pass == 0)
				store_url(url, sizeof(url), c->store, "reports/%s/%s.json", ro->job,
					  ro->agents[i]);
			else
				store_url(url, sizeof(url), c->store, "reports/%s.json", ro->agents[i]);
			if (!(urls[n] = strdup(url)))
				break;
			agent[n++] = i;
		}
		b.latest = pass;
		if (store_get_many(&c->reg, &c->ac, (const char *const *)urls, n, REPORT_MAX,
				   poll_done, &b, &e) < 0)
			log_warn("reading the reports: %s", e.msg);
		for (size_t i = 0; i < n; i++)
			free(urls[i]);
	}
	free(urls);
	free(agent);
}

/* How many agents ended each way (no report: unfinished). */
static void rollout_counts(const struct rollout *ro, size_t counts[OUTCOME_COUNT])
{
	memset(counts, 0, OUTCOME_COUNT * sizeof(size_t));
	for (size_t i = 0; i < ro->n; i++)
		counts[ro->have[i] ? report_outcome(ro->rep[i].state) : OUTCOME_UNFINISHED]++;
}

/* "3 agent(s): 1 committed, 1 cancelled, 1 unfinished" (zeros left out). */
static void counts_text(const struct rollout *ro, char *buf, size_t cap)
{
	size_t counts[OUTCOME_COUNT], n;
	rollout_counts(ro, counts);
	n = (size_t)snprintf(buf, cap, "%zu agent(s):", ro->n);
	for (int o = 0; o < OUTCOME_COUNT && n < cap; o++)
		if (counts[o] || o == OUTCOME_COMMITTED)
			n += (size_t)snprintf(buf + n, cap - n, "%s %zu %s", o ? "," : "", counts[o],
					      report_outcome_name(o));
}

static void rollout_print(const struct rollout *ro, FILE *out)
{
	int64_t now = (int64_t)time(NULL);
	char summary[512];

	fprintf(out, "job %s, serial %lld\n", ro->job, ro->serial);
	fprintf(out, "%-20s %-12s %-10s %-9s %-5s %s\n", "AGENT", "STATE", "PHASE", "PROGRESS",
		"AGE", "DETAIL");
	for (size_t i = 0; i < ro->n; i++) {
		const struct report_brief *r = &ro->rep[i];
		char progress[32] = "-", age[16] = "-";
		if (!ro->have[i]) {
			fprintf(out, "%-20s %-12s %-10s %-9s %-5s %s\n", ro->agents[i], "no-report",
				"-", "-", "-", "no report on this run of the job yet");
			continue;
		}
		if (r->total > 0)
			snprintf(progress, sizeof(progress), "%d%%", (int)(r->done * 100 / r->total));
		else if (r->done > 0)
			snprintf(progress, sizeof(progress), "%lluMB",
				 (unsigned long long)(r->done >> 20));
		report_age_text(age, sizeof(age), now - r->time);
		fprintf(out, "%-20s %-12s %-10s %-9s %-5s %s\n", ro->agents[i], r->state, r->phase,
			progress, age, report_brief_detail(r));
	}
	counts_text(ro, summary, sizeof(summary));
	fprintf(out, "%s\n", summary);
}

/* o (a new reference, released here; NULL: out of memory) on standard
 * output, indented, for --json. */
static int print_json(json_t *o, const char *what, struct reimage_error *err)
{
	int r = 0;
	if (!o || json_dumpf(o, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0 ||
	    fputc('\n', stdout) == EOF) {
		err_set(err, -EIO, REIMAGE_EC_IO, "write the %s as JSON", what);
		r = -EIO;
	}
	json_decref(o);
	return r;
}

/* The shape is in docs/json.md. */
static int rollout_print_json(const struct rollout *ro, struct reimage_error *err)
{
	int64_t now = (int64_t)time(NULL);
	size_t counts[OUTCOME_COUNT];
	json_t *agents = json_array(), *c = json_object();

	for (size_t i = 0; agents && i < ro->n; i++) {
		const struct report_brief *p = &ro->rep[i];
		json_array_append_new(agents, ro->have[i]
			? json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:I, s:I, s:s, s:s}",
				    "agent", ro->agents[i], "state", p->state, "outcome",
				    report_outcome_key(report_outcome(p->state)), "phase", p->phase,
				    "progress", "done", (json_int_t)p->done, "total",
				    (json_int_t)p->total, "time", (json_int_t)p->time, "age",
				    (json_int_t)(now - p->time), "error", p->error ? p->error : "",
				    "message", p->message ? p->message : "")
			: json_pack("{s:s, s:s, s:s, s:n}", "agent", ro->agents[i], "state",
				    "no-report", "outcome", "unfinished", "phase"));
	}
	rollout_counts(ro, counts);
	for (int k = 0; c && k < OUTCOME_COUNT; k++)
		json_object_set_new(c, report_outcome_key(k), json_integer((json_int_t)counts[k]));
	return print_json(json_pack("{s:s, s:I, s:O, s:o, s:o}", "job", ro->job, "serial",
				    (json_int_t)ro->serial, "group",
				    json_object_get(ro->index, "group")
					    ? json_object_get(ro->index, "group") : json_null(),
				    "agents", agents, "counts", c), "status", err);
}

static int cmd_status(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct rollout ro;
	int r = rollout_load(c, c->a->pos[0], 1, &ro, err);
	if (r == 0) {
		rollout_poll(c, &ro);
		if (c->a->json)
			r = rollout_print_json(&ro, err);
		else
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
	int r = rollout_load(c, c->a->pos[0], 1, &ro, err);
	char **last = calloc(ro.n + 1, sizeof(char *));

	while (r == 0) {
		size_t done = 0, ok = 0;
		char summary[512];
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
				const char *detail = report_brief_detail(&ro.rep[i]);
				log_notice("%s: %s %s%s%s", ro.agents[i], ro.rep[i].state,
					   ro.rep[i].phase, detail[0] ? ": " : "", detail);
			}
			done += report_state_final(ro.rep[i].state);
			ok += report_state_success(ro.rep[i].state);
		}
		counts_text(&ro, summary, sizeof(summary));
		if (done == ro.n) {
			rollout_print(&ro, stdout);
			if (ok < ro.n) {
				err_set(err, -EIO, REIMAGE_EC_STATE, "job %s (serial %lld): %zu of %zu "
					"agent(s) did not commit (%s)", ro.job, ro.serial, ro.n - ok,
					ro.n, summary);
				r = -EIO;
			}
			break;
		}
		if ((int64_t)time(NULL) >= deadline) {
			rollout_print(&ro, stdout);
			err_set(err, -ETIMEDOUT, REIMAGE_EC_RETRYABLE, "job %s (serial %lld): timed "
				"out after %lld s with %zu of %zu agent(s) unfinished", ro.job,
				ro.serial, c->a->timeout, ro.n - done, ro.n);
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

/* Remove every document of the job still in the store; agents that have
 * not started it report "cancelled".  *ret_docs: how many were there. */
static int withdraw(struct ctl *c, const struct rollout *ro, size_t *ret_docs,
		    struct reimage_error *err)
{
	json_t *docs = json_object_get(ro->index, "documents"), *d;
	size_t i;
	int r = 0;

	*ret_docs = 0;
	json_array_foreach(docs, i, d) {
		const char *url = json_string_value(json_object_get(d, "url"));
		char *text = NULL;
		size_t len;
		if (!url)
			continue;
		/* Removing a missing document succeeds: look first, to tell
		 * the administrator whether anything was left. */
		if ((r = store_get(&c->reg, &c->ac, url, SIGN_DOC_MAX, &text, &len, err)) == -ENOENT) {
			err_clear(err);
			continue;
		}
		free(text);
		if (r < 0 || (r = store_remove(&c->reg, &c->ac, url, err)) < 0)
			return r;
		(*ret_docs)++;
	}
	return 0;
}

static int cmd_cancel(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct rollout ro;
	size_t i, started = 0, docs = 0;
	int r = rollout_load(c, c->a->pos[0], 0, &ro, err);

	if (r == 0 && (r = withdraw(c, &ro, &docs, err)) == 0) {
		rollout_poll(c, &ro);
		for (i = 0; i < ro.n; i++)
			if (ro.have[i] && strcmp(ro.rep[i].state, "scheduled") &&
			    strcmp(ro.rep[i].state, "refused")) {
				printf("%s: already %s (%s): not withdrawn\n", ro.agents[i],
				       ro.rep[i].state, ro.rep[i].phase);
				started++;
			}
		if (docs == 0)
			printf("job %s: nothing left to withdraw (its documents were already "
			       "removed)\n", ro.job);
		else
			printf("job %s withdrawn: %zu document(s) removed; %zu agent(s) had started "
			       "it\n", ro.job, docs, started);
	}
	rollout_free(&ro);
	return r;
}

/* 1 if the report shows the swap done (or the job over). */
static int swapped(const struct report_brief *rep)
{
	return !strcmp(rep->state, "pending") || !strcmp(rep->state, "committed") ||
	       !strcmp(rep->state, "rolled-back");
}

/* Mark every wave not yet decided "stopped", for `rollout status`;
 * *ret_n: how many were. */
static int stop_waves(struct ctl *c, const char *job, int64_t now, int *ret_n,
		      struct reimage_error *err)
{
	struct wave_state ws;
	char when[64];
	int r;

	*ret_n = 0;
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
		(*ret_n)++;
	}
}

static int cmd_stop(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct rollout ro;
	size_t i, done = 0, docs = 0;
	int64_t now = (int64_t)time(NULL);
	int waves = 0, r = rollout_load(c, c->a->pos[0], 0, &ro, err);

	struct reimage_error we = { 0 };

	/* The waves first, so that deciding them later does not count the
	 * cancelled agents as failures.  Without the keys to read and sign
	 * them the stop still withdraws every document, which is what stops
	 * the agents: an emergency stop must not wait for a key. */
	if (r == 0 && stop_waves(c, ro.job, now, &waves, &we) < 0)
		log_warn("stop: waves not marked stopped (%s); the documents are withdrawn anyway",
			 we.msg);
	if (r == 0 && (r = withdraw(c, &ro, &docs, err)) == 0) {
		if (docs == 0 && waves == 0) {
			printf("rollout %s: nothing left to withdraw (already stopped, or every "
			       "wave decided)\n", ro.job);
			rollout_free(&ro);
			return 0;
		}
		rollout_poll(c, &ro);
		for (i = 0; i < ro.n; i++)
			if (ro.have[i] && swapped(&ro.rep[i])) {
				printf("%s: already swapped (%s): goes on\n", ro.agents[i],
				       ro.rep[i].state);
				done++;
			}
		printf("rollout %s stopped: %zu document(s) withdrawn, %d wave(s) stopped; agents "
		       "that have not swapped abort and report \"cancelled\"; %zu had swapped\n",
		       ro.job, docs, waves, done);
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
	json_t *waves = json_array();
	if (!c->a->json)
		printf("%-5s %-12s %6s %-10s %9s %6s %9s %7s %7s %10s %6s  %s\n", "WAVE", "NAME",
		       "AGENTS", "STATE", "COMMITTED", "FAILED", "CANCELLED", "SKIPPED", "REFUSED",
		       "UNFINISHED", "BUDGET", "DETAIL");
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
			json_decref(waves);
			return r < 0 ? r : -ENOENT;
		}
		/* A wave that never opened did not fail: it did not run. */
		int ran = ws.opened != 0,
		    over = !strcmp(ws.state, "halted") || !strcmp(ws.state, "stopped");
		const char *state = !ran && over ? "not-run" : ws.state;
		if (c->a->json)
			json_array_append_new(waves, json_pack(
				"{s:i, s:s, s:I, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, "
				"s:s}", "wave", k + 1, "name", ws.name, "agents", (json_int_t)ws.size,
				"state", ws.state, "ran", ran, "committed", (json_int_t)ws.committed,
				"failed", (json_int_t)ws.failed, "cancelled", (json_int_t)ws.cancelled,
				"skipped", (json_int_t)ws.skipped, "refused", (json_int_t)ws.refused,
				"unfinished", (json_int_t)ws.unfinished, "silent",
				(json_int_t)ws.silent, "budget", ws.budget, "timeout",
				(json_int_t)ws.timeout, "reason", ws.reason));
		else
			printf("%-5d %-12s %6lld %-10s %9lld %6lld %9lld %7lld %7lld %10lld %5d%%  "
			       "%s\n", k + 1, ws.name, ws.size, state, ws.committed, ws.failed,
			       ws.cancelled, ws.skipped, ws.refused, ws.unfinished, ws.budget,
			       ws.reason);
		halted |= over;
	}
	if (c->a->json)
		return print_json(json_pack("{s:s, s:b, s:o}", "job", job, "halted", halted,
					    "waves", waves), "rollout", err);
	json_decref(waves);
	printf("rollout %s: %d wave(s)%s\n", job, k, halted ? ", halted" : "");
	return r;
}

/* ------------------------------------------------------------ images */

/* zstd's level for chunked images: its command line's default. */
#define CHUNK_LEVEL 3

static int cmd_image(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	struct chunked_made m;
	int r;

	if (strcmp(c->a->pos[0], "chunk") != 0 || !c->a->output || !strcmp(c->a->output, "-")) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"usage: reimagectl image chunk SRC -o OUT.tar.zst [--base PREV.tar.zst]");
		return -EINVAL;
	}
	if ((r = chunked_write(c->a->pos[1], c->a->output, c->a->base, CHUNK_LEVEL, &m, err)) < 0) {
		err_prefix(err, "image chunk");
		return r;
	}
	printf("%s: %llu entries, %llu files with content, %llu bytes, %llu delta frames\n"
	       "image: { url = \"...\"; sha256 = \"%s\"; size = %llu; toc_sha256 = \"%s\"; }\n",
	       c->a->output, (unsigned long long)m.entries, (unsigned long long)m.files,
	       (unsigned long long)m.size, (unsigned long long)m.deltas, m.sha256, (unsigned long long)m.size, m.toc_sha256);
	return 0;
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
	{ "store", 's', "URL", "the job store: a directory, file:, http(s)://, smb://, s3://", 0 },
	{ "config", 'C', "FILE", "settings in agent-file syntax: `store`, `plugin_path`, "
				 "transport groups (TLS, credentials)", 0 },
	{ "key", 'k', "FILE", "the private key that signs", 0 },
	{ "trusted", 't', "FILE", "the public key that verifies", 0 },
	{ "output", 'o', "FILE", "where to write (default: standard output)", 0 },
	{ "base", 0, "PREV", "image chunk: the image before this one (a chunked image), for "
			     "delta frames of the files that changed", 0 },
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
	{ "reset-serial", 0, NULL, "recover agents whose last serial was pushed too far", 0 },
	{ "reuse", 0, NULL, "submit a job id the store already holds, replacing that rollout", 0 },
	{ "json", 0, NULL, "print JSON instead of a table (shapes: docs/json.md)", 0 },
	{ "stale", 0, "SECONDS", "agents: flag machines not seen for longer (default 7200)", 0 },
	{ "prometheus", 0, NULL, "agents: a Prometheus text-format summary", 0 },
	{ "verbose", 'v', NULL, "log more (repeat for debug)", 1 },
	{ "quiet", 'q', NULL, "log warnings and errors only", 0 },
	{ "help", 'h', NULL, "print help and exit", 0 },
	{ "version", 'V', NULL, "print the version and exit", 0 },
	{ NULL, 0, NULL, NULL, 0 }
};

static const char *const store_options[] = { "store", "config", NULL };
static const char *const status_options[] = { "store", "config", "json", NULL };

extern const struct cli_program reimagectl_program;

/* The manual page or the completion, from a template (docs/man/). */
static int cmd_manual(void *ctx, struct reimage_error *err)
{
	struct ctl *c = ctx;
	return manual_render(&reimagectl_program, c->ac.plugin_path, c->a->pos[0], stdout, err);
}

static const struct cli_command commands[] = {
	{ "keygen", 2, 2, "PRIVATE.pem PUBLIC.pem",
	  "Make an Ed25519 key pair.  The private key (mode 0600) signs jobs; the public\n"
	  "key goes into each agent's trusted_keys.  Existing files are never replaced.",
	  NULL, cmd_keygen, NULL, 0 },
	{ "sign", 1, 1, "-k PRIVATE.pem JOB [-o FILE]",
	  "Check a job file and write it signed (to standard output, or FILE).  A signed\n"
	  "job needs `targets` and `not_after`; `submit` sets both.  A job without\n"
	  "`signed_at` gets it (now), as submit gives it: it raises the agents' floor\n"
	  "of trusted time.",
	  (const char *const[]){ "key", "output", "config", NULL }, cmd_sign,
	  (const char *const[]){ "key", NULL }, 0 },
	{ "verify", 1, 1, "-t PUBLIC.pem SIGNED-JOB",
	  "Check a signed job's signature and print its id, serial, expiry and targets.",
	  (const char *const[]){ "trusted", "config", NULL }, cmd_verify,
	  (const char *const[]){ "trusted", NULL }, 0 },
	{ "submit", 1, 1,
	  "-s STORE -k PRIVATE.pem JOB (--agents A,B,... | --group G [--members A,B,...])\n"
	  "         [--serial N] [--expires SECONDS] [--wave-group NAME=A,B,...] [--reuse]\n"
	  "         [--reset-serial]",
	  "Publish a job to the job store: one signed document per agent (--agents), or\n"
	  "one shared document for a group (--group; --members names the agents `status`\n"
	  "and `wait` follow).  The serial is --serial, else one above the store's last;\n"
	  "not_after is the job's, else now + --expires (default 7 days).  Records the\n"
	  "rollout in <store>/rollouts/JOB.json.  A job with rollout.waves needs --agents:\n"
	  "each agent's signed document names its wave; a wave named after a group takes\n"
	  "the agents --wave-group NAME=A,B,... lists (repeat it per group).  Each document\n"
	  "carries signed_at (now), which raises the agents' floor of trusted time.\n"
	  "A job id the store already holds is refused: its reports would be taken for\n"
	  "the new run's.  --reuse replaces that rollout on purpose; status and wait then\n"
	  "follow the new serial only.  Without --members a group's agents are unknown:\n"
	  "status and wait refuse to follow it.  The status page (see `page`) is\n"
	  "refreshed in the store; a store that refuses it gets a warning.\n"
	  "--reset-serial recovers agents whose last serial was pushed too far (a stolen\n"
	  "key, a typo): the job carries serial_reset, one above <store>/serial-reset,\n"
	  "and an agent that has not run that reset takes the job's serial whatever its\n"
	  "last one (up to its first_serial_max); its floor of trusted time and newest\n"
	  "store timestamp start again from the job's signed_at.",
	  (const char *const[]){ "store", "config", "key", "agents", "group", "members", "serial",
				 "expires", "wave-group", "reuse", "reset-serial", NULL },
	  cmd_submit, (const char *const[]){ "key", NULL }, 0 },
	{ "timestamp", 0, 0, "-s STORE -k PRIVATE.pem [--expires SECONDS]",
	  "Sign a timestamp of now and put it at <store>/timestamp (default lifetime 1 day).\n"
	  "Agents with store_timestamp_max_age take no job from a store whose timestamp\n"
	  "is missing, older than that, expired or older than one they saw (a store\n"
	  "replaying an old state): they report it \"stale\".  Refresh it from cron more\n"
	  "often than the agents' max age.",
	  (const char *const[]){ "store", "config", "key", "expires", NULL }, cmd_timestamp,
	  (const char *const[]){ "key", NULL }, 0 },
	{ "status", 1, 1, "-s STORE JOB [--json]",
	  "The job's serial and a table of every targeted agent: state, phase, progress,\n"
	  "age of its last report on this serial, and the error or message; then how\n"
	  "many agents committed, failed, rolled back, were cancelled, skipped or\n"
	  "refused, and how many are unfinished.  --json: one JSON document instead.",
	  status_options, cmd_status, NULL, 0 },
	{ "wait", 1, 1, "-s STORE JOB [--timeout SECONDS] [--interval SECONDS] [-k KEY -t PUB]",
	  "Follow the agents' reports until every one has succeeded (committed: running\n"
	  "the new image) or ended otherwise (failed, rolled back, cancelled, skipped,\n"
	  "refused), or the timeout (default 3600 s) passes.  Only reports of the job's\n"
	  "serial count.  Exit 0 only if all committed; 1 if any did not; 2 if the\n"
	  "agents are unknown (--group without --members); 4 on timeout.  With -k (and\n"
	  "-t, or trusted_keys in -C FILE) it also decides a rollout's waves as\n"
	  "`rollout advance` does, at every read.",
	  (const char *const[]){ "store", "config", "timeout", "interval", "key", "trusted",
				 NULL }, cmd_wait, NULL, 0 },
	{ "cancel", 1, 1, "-s STORE JOB",
	  "Withdraw a job: remove its documents from the store.  Agents that have not\n"
	  "started it report \"cancelled\"; those that started go on.  Says so when\n"
	  "nothing was left to withdraw.",
	  store_options, cmd_cancel, NULL, 0 },
	{ "stop", 1, 1, "-s STORE JOB",
	  "Halt a rollout now: remove its documents and mark its open and waiting waves\n"
	  "stopped.  Every agent that has not swapped aborts (waiting, staging, staged\n"
	  "or counting down), removes its staging and reports \"cancelled\" within its\n"
	  "poll interval; those that swapped go on to their trial.  Exit 0 once the\n"
	  "store holds the stop; a second stop says nothing was left to withdraw.  The\n"
	  "stopped waves are signed with -k (a job with rollout.waves needs it, and -t\n"
	  "or trusted_keys to read them); without them the documents are still\n"
	  "withdrawn.",
	  (const char *const[]){ "store", "config", "key", "trusted", NULL }, cmd_stop, NULL, 0 },
	{ "image", 2, 2, "chunk SRC -o OUT.tar.zst [--base PREV.tar.zst]",
	  "Write SRC -- a directory tree (owners, modes, times, xattrs, ACLs,\n"
	  "capabilities, hard links, devices kept) or an image file any tar reads --\n"
	  "as a zstd:chunked image: a tar.zst any `tar --zstd -x` extracts, with a table\n"
	  "of contents agents use to fetch only the files their root lacks.  Prints the\n"
	  "job's image.sha256, size and toc_sha256 (give all three in the job).  With\n"
	  "--base, each file that PREV holds with other content also gets a delta frame\n"
	  "(its content compressed against PREV's, in a skippable frame plain readers\n"
	  "skip): agents still running PREV's file fetch that instead.",
	  (const char *const[]){ "output", "base", NULL }, cmd_image, (const char *const[]){ "output", NULL }, 0 },
	{ "rollout", 2, 2, "(status|advance) -s STORE -t PUBLIC.pem [-k PRIVATE.pem] JOB [--json]",
	  "Each wave of a rollout (job.conf's rollout.waves), numbered from 1 as in the\n"
	  "store's wave-N files: its agents, state (waiting, open, committed, halted,\n"
	  "stopped; not-run for a wave halted or stopped before it opened), its agents\n"
	  "counted from their reports now (committed; failed or rolled back, which spend\n"
	  "the failure budget; cancelled, skipped, refused, which do not; unfinished),\n"
	  "and its budget.  A wave opens when the one before it committed within its\n"
	  "budget; one over budget halts the rollout; past rollout.wave_timeout its\n"
	  "silent agents count as failed.  `advance` (needs -k) makes these decisions\n"
	  "and publishes each, signed, in the wave's document, the only one its agents\n"
	  "read, and says which wave is open; run it (or `wait -k`) while the rollout\n"
	  "goes on.  Wave documents are verified with -t (or trusted_keys in -C FILE).\n"
	  "--json (status): one JSON document instead.",
	  (const char *const[]){ "store", "config", "key", "trusted", "json", NULL }, cmd_rollout,
	  NULL, 0 },
	{ "agents", 0, 0, "-s STORE [--stale SECONDS] [--json | --prometheus [-t PUBLIC.pem]]",
	  "The fleet: every agent the store knows (its listing of reports/ where it\n"
	  "gives one -- a directory, or nginx with `autoindex on` -- and agents.json,\n"
	  "the index `submit` keeps of its targets) with its latest report, which\n"
	  "is also its heartbeat (agent setting `heartbeat`): state, job, phase,\n"
	  "version, when last seen.  Failed machines first, then those not seen for\n"
	  "--stale seconds (default 7200) or never.  --json: one JSON document instead\n"
	  "(docs/json.md).  --prometheus: counts by state, stale and never seen, each\n"
	  "job's agents by state and, with -t (or trusted_keys in -C FILE), each\n"
	  "rollout's waves (state, outcomes, budget), for a node exporter's textfile\n"
	  "collector.",
	  (const char *const[]){ "store", "config", "stale", "json", "prometheus", "trusted",
				 NULL },
	  cmd_agents, NULL, 0 },
	{ "page", 0, 0, "-s STORE",
	  "Put the fleet's status page, status.html, in the store: one self-contained\n"
	  "file that reads, relative to itself, agents.json, each agent's latest report,\n"
	  "and each rollout's index and waves, and shows machines by state (failures\n"
	  "first), progress, when each was last seen, and every rollout's waves and\n"
	  "budget; it reads again every 30 s.  Any server that serves the store's files\n"
	  "serves it (no server of reimage's own); the page only displays, agents\n"
	  "verify what they act on.  Also installed in /usr/share/reimage/.",
	  store_options, cmd_page, NULL, 0 },
	{ "manual", 1, 1, "TEMPLATE",
	  "Print the manual page or the bash completion from its template (the build's).",
	  NULL, cmd_manual, NULL, 1 },
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
	a.base = cli_value(p, &ca, "base");
	a.agents = cli_value(p, &ca, "agents");
	a.group = cli_value(p, &ca, "group");
	a.members = cli_value(p, &ca, "members");
	a.reset_serial = cli_count(p, &ca, "reset-serial") > 0;
	a.expires_given = cli_value(p, &ca, "expires") != NULL;
	a.reuse = cli_count(p, &ca, "reuse") > 0;
	a.json = cli_count(p, &ca, "json") > 0;
	a.pos = ca.pos;
	a.npos = ca.npos;
	a.prometheus = cli_count(p, &ca, "prometheus") > 0;
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
