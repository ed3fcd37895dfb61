/*
 * timestamp.c -- see timestamp.h.  The document is libconfig text read
 * with its own table, so a job is never read as a timestamp nor the
 * reverse (and the envelope's kind differs too).
 */
#include "timestamp.h"
#include "error.h"
#include "options.h"
#include "sign.h"
#include "when.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TS_TIMESTAMP, TS_EXPIRES, TS_COUNT };
static const struct reimage_option ts_table[] = {
	[TS_TIMESTAMP] = { "timestamp", REIMAGE_OPT_STRING, NULL, 0, 0,
			   "when the store's timestamp was signed (required)" },
	[TS_EXPIRES] = { "expires", REIMAGE_OPT_STRING, NULL, 0, 0,
			 "after this no agent trusts it (required)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

int timestamp_sign(const char *priv_path, int64_t now, int64_t lifetime, char **ret_doc,
		   size_t *ret_len, struct reimage_error *err)
{
	char when[64], until[64], text[256];

	when_format(now, when, sizeof(when));
	when_format(now + lifetime, until, sizeof(until));
	snprintf(text, sizeof(text), "timestamp = \"%s\";\nexpires = \"%s\";\n", when, until);
	return sign_document(SIGN_TIMESTAMP, priv_path, text, strlen(text), ret_doc, ret_len, err);
}

int timestamp_read(const char *doc, size_t len, const char *name, const struct agent_conf *ac,
		   struct store_timestamp *ret, struct reimage_error *err)
{
	struct reimage_optval v[TS_COUNT + 1];
	struct sign_verified sv;
	config_t cfg;
	int r;

	if ((r = sign_verify(SIGN_TIMESTAMP, doc, len, ac->trusted_keys, ac->revoked_keys, &sv,
			     err)) < 0) {
		err_prefix(err, "%s", name);
		return r;
	}
	if (config_read_document(&cfg, name, sv.payload, sv.len, err) < 0)
		return -EBADMSG;
	memset(v, 0, sizeof(v));
	if ((r = options_read(config_root_setting(&cfg), "a store timestamp", ts_table, v, 0,
				   err)) < 0)
		r = -EBADMSG;
	else if (!v[TS_TIMESTAMP].set || !v[TS_EXPIRES].set ||
		 when_parse(v[TS_TIMESTAMP].s, &ret->time) < 0 ||
		 when_parse(v[TS_EXPIRES].s, &ret->expires) < 0 || ret->expires <= ret->time) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "%s: a store timestamp needs "
			"`timestamp` and a later `expires`, as timestamps", name);
		r = -EBADMSG;
	}
	options_free(ts_table, v);
	config_destroy(&cfg);
	return r;
}

int timestamp_fresh(const struct store_timestamp *ts, int64_t now, int64_t newest_seen,
		    long long max_age, struct reimage_error *err)
{
	char when[64], other[64];

	when_format(ts->time, when, sizeof(when));
	if (ts->time < newest_seen) {
		when_format(newest_seen, other, sizeof(other));
		err_set(err, -ESTALE, REIMAGE_EC_STATE, "the store's timestamp (%s) is older than one "
			"seen before (%s): the store replays an old state", when, other);
		return -ESTALE;
	}
	if (now > ts->expires) {
		when_format(ts->expires, other, sizeof(other));
		err_set(err, -ESTALE, REIMAGE_EC_STATE, "the store's timestamp (%s) expired at %s",
			when, other);
		return -ESTALE;
	}
	if (now - ts->time > max_age) {
		err_set(err, -ESTALE, REIMAGE_EC_STATE, "the store's timestamp (%s) is %lld s old, "
			"more than store_timestamp_max_age (%lld s): refresh it with `reimagectl "
			"timestamp`", when, (long long)(now - ts->time), max_age);
		return -ESTALE;
	}
	return 0;
}
