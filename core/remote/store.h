/*
 * store.h -- the job store: where reimagectl publishes signed jobs and
 * agents publish their reports.  Any location a transport can read and
 * write (a directory, an HTTP server that accepts PUT, an SMB share).
 * Its layout, shared by the agent and reimagectl:
 *
 *   <store>/jobs/<agent>.job           a signed job for one agent
 *   <store>/jobs/group-<group>.job     a signed job for a group
 *   <store>/reports/<agent>.json       the agent's latest report, any job
 *   <store>/reports/<job>/<agent>.json the agent's latest report on a job
 *   <store>/rollouts/<job>.json        what reimagectl submitted
 *   <store>/rollouts/<job>/wave-<k>.json    a wave's state (rollout.h)
 *   <store>/rollouts/<job>/wave-<k>.agents  a wave's agents
 *   <store>/serial                     the last serial reimagectl used
 */
#ifndef REIMAGE_STORE_H
#define REIMAGE_STORE_H

#include "config.h"
#include "registry.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_URL_MAX 4096

/* base + "/" + the formatted rest, with exactly one slash between. */
int store_url(char *buf, size_t len, const char *base, const char *fmt, ...)
	REIMAGE_PRINTF(4, 5);

/* Documents through the transport serving each URL's scheme; the
 * transport is loaded and started on first use with its group of ac (may
 * be NULL).  Same contracts as the transport's fetch/put/remove. */
int store_fetch(struct registry *reg, const struct agent_conf *ac, const char *url, void *buf,
		size_t cap, size_t *ret_len, char etag[REIMAGE_ETAG_MAX], int64_t *ret_date,
		struct reimage_error *err);
int store_put(struct registry *reg, const struct agent_conf *ac, const char *url,
	      const void *data, size_t len, const char *content_type, struct reimage_error *err);
int store_remove(struct registry *reg, const struct agent_conf *ac, const char *url,
		 struct reimage_error *err);
/* store_fetch() of a whole document of at most cap bytes, allocated and
 * NUL-terminated; -ENOENT if there is none. */
int store_get(struct registry *reg, const struct agent_conf *ac, const char *url, size_t cap,
	      char **ret_data, size_t *ret_len, struct reimage_error *err);

/* Requests store_get_many() keeps in flight where the transport can. */
#define STORE_PARALLEL 16

/* The outcome of one document of store_get_many(): r 0 and the document
 * (buf, len: valid during the call only; not NUL-terminated), or r < 0
 * with err (class NOTFOUND: there is none). */
typedef void (*store_done_fn)(void *arg, size_t i, int r, const void *buf, size_t len,
			      const struct reimage_error *err);

/* store_fetch() of every URL (documents of at most cap bytes), done()
 * called once for each, in any order, from this thread.  The transport
 * runs up to STORE_PARALLEL requests at once where it can (http: its
 * fetch_many), else they run one after the other: the same call for
 * every kind of store.  Returns 0 once done() was called for every URL,
 * or < 0 before any call (no transport, no memory). */
int store_get_many(struct registry *reg, const struct agent_conf *ac, const char *const *urls,
		   size_t n, size_t cap, store_done_fn done, void *arg, struct reimage_error *err);

#endif
