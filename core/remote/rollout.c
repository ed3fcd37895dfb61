/*
 * rollout.c -- see rollout.h.  Used by reimagectl (submit assigns waves
 * and publishes their documents; `rollout advance` and `wait -k` decide
 * them; `rollout status` counts them; stop marks them) and by the agent
 * (gate.c waits for its wave's signed document).
 */
#define _GNU_SOURCE
#include "rollout.h"
#include "error.h"
#include "report.h"
#include "sign.h"
#include "store.h"
#include "when.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAVE_DOC_MAX 4096  /* the signed envelope and its JSON */
#define AGENTS_DOC_MAX (8u << 20)  /* 100,000 names */
#define REPORT_DOC_MAX 65536

/* ------------------------------------------------------------ assign */

/* The members of group name in "NAME=A,B,..." items, or NULL. */
static const char *group_members(const char *const *groups, const char *name)
{
	size_t len = strlen(name);
	for (; groups && *groups; groups++)
		if (!strncmp(*groups, name, len) && (*groups)[len] == '=')
			return *groups + len + 1;
	return NULL;
}

static int in_list(const char *list, const char *name)
{
	size_t len = strlen(name);
	for (const char *p = list; p && *p;) {
		size_t n = strcspn(p, ", ");
		if (n == len && !strncmp(p, name, len))
			return 1;
		p += n;
		p += strspn(p, ", ");
	}
	return 0;
}

int rollout_assign(const char *const *waves, size_t n_waves, const char *const *targets,
		   size_t n_targets, const char *const *groups, int *ret_wave,
		   struct reimage_error *err)
{
	size_t placed = 0, w;

	for (size_t i = 0; i < n_targets; i++)
		ret_wave[i] = -1;
	for (w = 0; w < n_waves; w++) {
		int percent;
		if (when_percent(waves[w], &percent)) {
			/* Cumulative: "10%" is the first tenth, rounded up. */
			size_t upto = (n_targets * (size_t)percent + 99) / 100, took = 0;
			for (size_t i = 0; i < n_targets && placed < upto; i++)
				if (ret_wave[i] < 0) {
					ret_wave[i] = (int)w;
					placed++;
					took++;
				}
			if (took == 0)
				goto empty;
			continue;
		}
		const char *members = group_members(groups, waves[w]);
		if (!members) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "rollout.waves: wave %zu is group "
				"'%s', but no --wave-group %s=AGENT,... names its members", w + 1,
				waves[w], waves[w]);
			return -EINVAL;
		}
		size_t before = placed;
		for (size_t i = 0; i < n_targets; i++)
			if (ret_wave[i] < 0 && in_list(members, targets[i])) {
				ret_wave[i] = (int)w;
				placed++;
			}
		if (placed == before)
			goto empty;
	}
	for (size_t i = 0; i < n_targets; i++)
		if (ret_wave[i] < 0) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "rollout.waves: agent %s is in no "
				"wave (end the waves with \"100%%\" to take everyone left)", targets[i]);
			return -EINVAL;
		}
	return 0;
empty:
	/* Nobody would ever decide an empty wave. */
	err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "rollout.waves: wave %zu (%s) takes no agent "
		"(earlier waves hold %zu of the %zu targets)", w + 1, waves[w], placed, n_targets);
	return -EINVAL;
}

/* --------------------------------------------------------- documents */

static int doc_url(char *buf, size_t len, const char *store, const char *job, int wave,
		   const char *suffix)
{
	return store_url(buf, len, store, "rollouts/%s/wave-%d.%s", job, wave + 1, suffix);
}

int rollout_wave_put(struct registry *reg, const struct agent_conf *ac, const char *store,
		     const char *job, const struct wave_state *ws, const char *key,
		     struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text, *doc = NULL;
	/* job and serial bind the signature to this run's wave: another
	 * rollout's wave, or an earlier run's of this job id, is never taken
	 * for this one's state (the envelope's kind keeps it from a job). */
	json_t *o = json_pack("{s:s, s:I, s:i, s:i, s:s, s:I, s:i, s:s, s:I, s:I, s:I, s:I, s:I, "
			      "s:I, s:I, s:I, s:I, s:I, s:s}", "job", job, "serial",
			      (json_int_t)ws->serial, "wave", ws->wave + 1, "waves", ws->waves,
			      "name", ws->name, "size", (json_int_t)ws->size,
			      "budget", ws->budget, "state", ws->state,
			      "opened", (json_int_t)ws->opened, "decided", (json_int_t)ws->decided,
			      "timeout", (json_int_t)ws->timeout,
			      "committed", (json_int_t)ws->committed, "failed",
			      (json_int_t)ws->failed, "unfinished", (json_int_t)ws->unfinished,
			      "cancelled", (json_int_t)ws->cancelled, "skipped",
			      (json_int_t)ws->skipped, "refused", (json_int_t)ws->refused,
			      "silent", (json_int_t)ws->silent, "reason", ws->reason);
	size_t len = 0;
	int r;

	if (!key) {
		json_decref(o);
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "wave %d of %s: deciding a wave signs it: "
			"the private key is required (-k)", ws->wave + 1, job);
		return -EINVAL;
	}
	text = o ? json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!text) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	r = sign_document(SIGN_WAVE, key, text, strlen(text), &doc, &len, err);
	free(text);
	if (r < 0)
		return r;
	if ((r = doc_url(url, sizeof(url), store, job, ws->wave, "json")) < 0)
		err_set(err, r, REIMAGE_EC_CONFIG, "%s: store location too long", store);
	else
		r = store_put(reg, ac, url, doc, len, "text/plain", err);
	free(doc);
	return r;
}

int rollout_agents_put(struct registry *reg, const struct agent_conf *ac, const char *store,
		       const char *job, int wave, const char *const *agents, size_t n,
		       struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text;
	json_t *a = json_array();
	int r;

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(agents[i]));
	text = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	if (!text) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = doc_url(url, sizeof(url), store, job, wave, "agents")) < 0)
		err_set(err, r, REIMAGE_EC_CONFIG, "%s: store location too long", store);
	else
		r = store_put(reg, ac, url, text, strlen(text), "application/json", err);
	free(text);
	return r;
}

static int wave_parse(const char *text, size_t len, const char *url, const char *job,
		      int want, struct wave_state *ret, struct reimage_error *err)
{
	const char *name, *state, *reason = "", *for_job;
	json_int_t size, opened, decided, timeout = 0, committed = 0, failed = 0,
		   unfinished = 0, cancelled = 0, skipped = 0, refused = 0, silent = 0, serial = 0;
	json_error_t jerr;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	int wave, waves, budget;

	if (!o || json_unpack_ex(o, &jerr, 0, "{s:s, s:I, s:i, s:i, s:s, s:I, s:i, s:s, s:I, s:I, "
				 "s?I, s?I, s?I, s?I, s?I, s?I, s?I, s?I, s?s}", "job", &for_job,
				 "serial", &serial, "wave", &wave, "waves", &waves, "name", &name,
				 "size", &size, "budget", &budget, "state", &state, "opened",
				 &opened, "decided", &decided, "timeout", &timeout, "committed",
				 &committed, "failed", &failed, "unfinished", &unfinished,
				 "cancelled", &cancelled, "skipped", &skipped, "refused", &refused,
				 "silent", &silent, "reason", &reason) < 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: %s", url, jerr.text);
		json_decref(o);
		return -EBADMSG;
	}
	if (strcmp(for_job, job) || wave != want + 1) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: signed for wave %d of %s, not for "
			"wave %d of %s (a document copied from elsewhere)", url, wave, for_job,
			want + 1, job);
		json_decref(o);
		return -EBADMSG;
	}
	memset(ret, 0, sizeof(*ret));
	ret->wave = wave - 1;
	ret->serial = serial;
	ret->waves = waves;
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	ret->size = size;
	ret->budget = budget;
	snprintf(ret->state, sizeof(ret->state), "%s", state);
	ret->opened = opened;
	ret->decided = decided;
	ret->timeout = timeout;
	ret->committed = committed;
	ret->failed = failed;
	ret->unfinished = unfinished;
	ret->cancelled = cancelled;
	ret->skipped = skipped;
	ret->refused = refused;
	ret->silent = silent;
	snprintf(ret->reason, sizeof(ret->reason), "%s", reason);
	json_decref(o);
	return 0;
}

int rollout_wave_get(struct registry *reg, const struct agent_conf *ac, const char *store,
		     const char *job, int wave, char etag[REIMAGE_ETAG_MAX],
		     struct wave_state *ret, struct reimage_error *err)
{
	char url[STORE_URL_MAX], buf[WAVE_DOC_MAX];
	struct sign_verified v;
	struct reimage_error e = { 0 };
	size_t len = 0;
	int r;

	if ((r = doc_url(url, sizeof(url), store, job, wave, "json")) < 0) {
		err_set(err, r, REIMAGE_EC_CONFIG, "%s: store location too long", store);
		return r;
	}
	r = store_fetch(reg, ac, url, buf, sizeof(buf), &len, etag, NULL, err);
	if (r != 0)
		return r;
	if ((r = sign_verify(SIGN_WAVE, buf, len, ac->trusted_keys, ac->revoked_keys, &v, &e)) < 0) {
		/* Not kept: the next poll fetches it again rather than 304. */
		etag[0] = '\0';
		err_set(err, r, e.cls, "%s: %s", url, e.msg);
		return r;
	}
	if ((r = wave_parse(v.payload, v.len, url, job, wave, ret, err)) < 0)
		etag[0] = '\0';
	return r;
}

int rollout_forget_waves(struct registry *reg, const struct agent_conf *ac, const char *store,
			 const char *job, int from, struct reimage_error *err)
{
	for (int k = from;; k++) {
		char url[STORE_URL_MAX], *text = NULL;
		size_t len;
		int r;
		/* Not verified: whatever stands in a wave's place goes, so the
		 * submitter needs no public key for it. */
		if ((r = doc_url(url, sizeof(url), store, job, k, "json")) < 0)
			return r;
		r = store_get(reg, ac, url, WAVE_DOC_MAX, &text, &len, err);
		free(text);
		if (r == -ENOENT) {
			err_clear(err);
			return 0;  /* past the last one */
		}
		if (r < 0 || (r = store_remove(reg, ac, url, err)) < 0 ||
		    (r = doc_url(url, sizeof(url), store, job, k, "agents")) < 0 ||
		    (r = store_remove(reg, ac, url, err)) < 0)
			return r;
	}
}

/* ----------------------------------------------------------- counting */

static int wave_agents(struct registry *reg, const struct agent_conf *ac, const char *store,
		       const char *job, int wave, json_t **ret, struct reimage_error *err)
{
	char url[STORE_URL_MAX], *text = NULL;
	json_error_t jerr;
	size_t len;
	int r;

	doc_url(url, sizeof(url), store, job, wave, "agents");
	if ((r = store_get(reg, ac, url, AGENTS_DOC_MAX, &text, &len, err)) < 0)
		return r;
	*ret = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	free(text);
	if (!*ret || !json_is_array(*ret)) {
		json_decref(*ret);
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: not a list of agents", url);
		return -EBADMSG;
	}
	return 0;
}

/* Count one agent's outcome on the job: its report's state, unfinished
 * without one or with one of another serial (serial 0: any). */
static void count_outcome(struct wave_state *ws, const char *state)
{
	/* Each outcome as what it is: only failures spend the budget. */
	long long *counter[OUTCOME_COUNT] = {
		[OUTCOME_COMMITTED] = &ws->committed, [OUTCOME_FAILED] = &ws->failed,
		[OUTCOME_ROLLED_BACK] = &ws->failed, [OUTCOME_CANCELLED] = &ws->cancelled,
		[OUTCOME_SKIPPED] = &ws->skipped, [OUTCOME_REFUSED] = &ws->refused,
		[OUTCOME_UNFINISHED] = &ws->unfinished,
	};
	(*counter[report_outcome(state)])++;
}

static void count_done(void *arg, size_t i, int r, const void *buf, size_t len,
		       const struct reimage_error *err)
{
	struct wave_state *ws = arg;
	struct reimage_error e = { 0 };
	struct report rep;

	(void)i;
	(void)err;  /* no report yet, or unreadable: unfinished */
	count_outcome(ws, r == 0 && report_parse(buf, len, &rep, &e) == 0 &&
			  (!ws->serial || rep.serial == ws->serial) ? rep.state : "");
}

int rollout_count(struct registry *reg, const struct agent_conf *ac, const char *store,
		  const char *job, int wave, int64_t now, struct wave_state *ret,
		  struct reimage_error *err)
{
	json_t *agents = NULL, *v;
	size_t i;
	int r;

	if ((r = rollout_wave_get(reg, ac, store, job, wave, (char[REIMAGE_ETAG_MAX]){ "" }, ret,
				  err)) < 0 ||
	    (r = wave_agents(reg, ac, store, job, wave, &agents, err)) < 0)
		return r;
	ret->committed = ret->failed = ret->unfinished = 0;
	ret->cancelled = ret->skipped = ret->refused = 0;
	/* The wave's reports, several at once. */
	char **urls = calloc(json_array_size(agents) + 1, sizeof(char *));
	size_t n = 0;
	json_array_foreach(agents, i, v) {
		char url[STORE_URL_MAX];
		const char *agent = json_string_value(v);
		if (!urls || !agent || !store_name_ok(agent) ||
		    store_url(url, sizeof(url), store, "reports/%s/%s.json", job, agent) < 0 ||
		    !(urls[n] = strdup(url)))
			count_outcome(ret, "");  /* no report can be read: unfinished */
		else
			n++;
	}
	if (n)
		r = store_get_many(reg, ac, (const char *const *)urls, n, REPORT_DOC_MAX, count_done,
				   ret, err);
	for (size_t k = 0; k < n; k++)
		free(urls[k]);
	free(urls);
	json_decref(agents);
	if (r < 0)
		return r;
	ret->size = (long long)i;
	if (!strcmp(ret->state, "open") || !strcmp(ret->state, "waiting")) {
		/* Failures only grow: past the budget is final at once. */
		if (ret->failed * 100 > (long long)ret->budget * ret->size) {
			snprintf(ret->state, sizeof(ret->state), "halted");
			snprintf(ret->reason, sizeof(ret->reason), "wave %d (%s): %lld of %lld "
				 "failed or rolled back, above its failure budget of %d%%",
				 wave + 1, ret->name, ret->failed, ret->size, ret->budget);
			ret->decided = now;
		} else if (ret->unfinished == 0 && !strcmp(ret->state, "open")) {
			snprintf(ret->state, sizeof(ret->state), "committed");
			ret->decided = now;
		} else if (!strcmp(ret->state, "open") && ret->timeout > 0 &&
			   now >= ret->opened + ret->timeout) {
			/* Past the deadline the silent count as failed: a machine
			 * switched off must not hold the rollout forever. */
			ret->silent = ret->unfinished;
			ret->decided = now;
			if ((ret->failed + ret->silent) * 100 > (long long)ret->budget * ret->size) {
				snprintf(ret->state, sizeof(ret->state), "halted");
				snprintf(ret->reason, sizeof(ret->reason), "wave %d (%s): %lld of %lld "
					 "failed and %lld silent at its deadline (%llds), above its "
					 "failure budget of %d%%", wave + 1, ret->name, ret->failed,
					 ret->size, ret->silent, (long long)ret->timeout, ret->budget);
			} else {
				snprintf(ret->state, sizeof(ret->state), "committed");
				snprintf(ret->reason, sizeof(ret->reason), "%lld silent at its deadline "
					 "(%llds), within the failure budget", ret->silent,
					 (long long)ret->timeout);
			}
		}
	}
	return 0;
}

int rollout_tally(struct registry *reg, const struct agent_conf *ac, const char *store,
		  const char *job, int wave, int64_t now, const char *key, struct wave_state *ret,
		  struct reimage_error *err)
{
	struct wave_state next;
	int r;

	/* A decided wave is not counted again, nor a waiting one (nobody of
	 * it has started). */
	if ((r = rollout_wave_get(reg, ac, store, job, wave, (char[REIMAGE_ETAG_MAX]){ "" }, ret,
				  err)) < 0)
		return r;
	if (strcmp(ret->state, "open"))
		return 0;
	if ((r = rollout_count(reg, ac, store, job, wave, now, ret, err)) < 0)
		return r;
	if (ret->decided != now)
		return 0;  /* undecided, or decided before */
	/* Committed: the next wave opens (the ones after it wait for it).
	 * Halted: every later wave halts. */
	int last = !strcmp(ret->state, "committed") ? wave + 1 : ret->waves - 1;
	for (int k = wave + 1; k <= last && k < ret->waves; k++) {
		if ((r = rollout_wave_get(reg, ac, store, job, k, (char[REIMAGE_ETAG_MAX]){ "" },
					  &next, err)) < 0)
			return r;
		if (strcmp(next.state, "waiting"))
			continue;  /* opened, halted or stopped already */
		if (!strcmp(ret->state, "committed")) {
			snprintf(next.state, sizeof(next.state), "open");
			next.opened = now;
		} else {
			snprintf(next.state, sizeof(next.state), "halted");
			snprintf(next.reason, sizeof(next.reason), "rollout halted: %s", ret->reason);
			next.decided = now;
		}
		if ((r = rollout_wave_put(reg, ac, store, job, &next, key, err)) < 0)
			return r;
	}
	return rollout_wave_put(reg, ac, store, job, ret, key, err);
}

int rollout_advance(struct registry *reg, const struct agent_conf *ac, const char *store,
		    const char *job, int64_t now, const char *key, int *ret_open,
		    struct reimage_error *err)
{
	struct wave_state ws;
	int r;

	*ret_open = -1;
	for (int k = 0;; k++) {
		struct reimage_error e = { 0 };
		if ((r = rollout_tally(reg, ac, store, job, k, now, key, &ws, &e)) < 0) {
			if (e.cls == REIMAGE_EC_NOTFOUND && k > 0)
				return 0;  /* past the last wave */
			err_set(err, r, e.cls, "%s", e.msg);
			return r;
		}
		if (!strcmp(ws.state, "open"))
			*ret_open = k;
		if (strcmp(ws.state, "committed"))
			return 0;  /* the waves after an undecided or halted one wait */
	}
}
