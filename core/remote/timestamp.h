/*
 * timestamp.h -- the job store's signed timestamp (TUF's timestamp role).
 *
 * `reimagectl timestamp` signs a short-lived document and puts it at
 * <store>/timestamp:
 *
 *   timestamp = "2026-12-04T21:00:00Z";   when it was signed
 *   expires = "2026-12-05T21:00:00Z";     after this, no agent trusts it
 *
 * An agent with store_timestamp_max_age > 0 fetches it every poll and
 * takes no job while it is missing, not signed by a trusted key, expired,
 * older than store_timestamp_max_age, or older than one it saw before (a
 * store replaying an old state): the store is "stale" and reported so.
 * The administrator refreshes it (from cron, more often than the agents'
 * max age) for as long as the store is to be trusted.
 */
#ifndef REIMAGE_TIMESTAMP_H
#define REIMAGE_TIMESTAMP_H

#include "config.h"

struct store_timestamp {
	int64_t time;     /* when it was signed */
	int64_t expires;
};

/* A timestamp signed with the private key now, valid for lifetime s. */
int timestamp_sign(const char *priv_path, int64_t now, int64_t lifetime, char **ret_doc,
		   size_t *ret_len, struct reimage_error *err);
/* Verify a fetched timestamp document with the agent's keys and read it;
 * name (its URL) is used in errors. */
int timestamp_read(const char *doc, size_t len, const char *name, const struct agent_conf *ac,
		   struct store_timestamp *ret, struct reimage_error *err);
/* 0 if ts is fresh at now (the agent's clock, not below its floor of
 * trusted time) and not older than newest_seen; else -ESTALE with why. */
int timestamp_fresh(const struct store_timestamp *ts, int64_t now, int64_t newest_seen,
		    long long max_age, struct reimage_error *err);

#endif
