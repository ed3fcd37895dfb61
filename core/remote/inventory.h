/*
 * inventory.h -- the fleet as the job store knows it.  Every agent's
 * latest report (<store>/reports/<agent>.json) is its heartbeat: the
 * agent writes it at every event and at least every `heartbeat` seconds,
 * so its time is when the machine was last seen, beside its version,
 * its job and state.
 *
 * Which agents exist needs a listing, which not every store gives:
 *
 *   - a directory store (a path or file://) is listed (its reports folder);
 *   - an HTTP store is listed if its server indexes reports/ -- plain
 *     nginx with `autoindex on;` (autoindex_format json or the default
 *     html) in a location for <store>/reports/;
 *   - an SMB store (its share's folder) and an S3 store (ListObjectsV2)
 *     are listed by their transports, which give the same JSON index;
 *   - besides, reimagectl keeps an index of every agent name it has
 *     submitted to or listed, <store>/agents.json (a JSON array, sorted),
 *     so a store without listings still shows every machine ever
 *     targeted.  Agents never write it: a store like nginx's WebDAV has no
 *     atomic append, and a lost name would be a machine that vanishes.
 */
#ifndef REIMAGE_INVENTORY_H
#define REIMAGE_INVENTORY_H

#include "config.h"
#include "registry.h"
#include "report.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct inventory {
	char **names;   /* sorted, unique; one block each */
	size_t n;
	int listed;     /* 1 if the store gave a listing of reports/ */
	int indexed;    /* 1 if agents.json was read */
	char listing[256];  /* why there was no listing, for the user */
};

/* The names of the index and, with list, of the listing of reports/
 * (either may be missing; errors other than a missing document are
 * returned). */
int inventory_load(struct registry *reg, const struct agent_conf *ac, const char *store,
		   int list, struct inventory *ret, struct reimage_error *err);
/* Add names to the inventory; 1 if any was new. */
int inventory_add(struct inventory *inv, const char *const *names, size_t n);
/* Write the index (agents.json) with the inventory's names. */
int inventory_save(struct registry *reg, const struct agent_conf *ac, const char *store,
		   const struct inventory *inv, struct reimage_error *err);
void inventory_free(struct inventory *inv);
/* The latest report of each of agents[0..n), read several at once
 * (store_get_many): ret_seen[i] 1 (ret[i] filled, if ret is not NULL), 0
 * if it never reported, -1 if it could not be read (ret[i]'s state is
 * "unreadable", its error says why).  < 0 only if nothing could be read. */
int inventory_read(struct registry *reg, const struct agent_conf *ac, const char *store,
		   const char *const *agents, size_t n, int *ret_seen, struct report_brief *ret,
		   struct reimage_error *err);

enum inventory_format { INVENTORY_TABLE, INVENTORY_JSON, INVENTORY_PROMETHEUS };

/* Every agent of the inventory with its latest report, written to out:
 * a table (unhealthy machines first: failed, then stale or never seen),
 * a JSON array, or a Prometheus text-format summary (counts by state,
 * stale and never seen; no series per agent).  An agent not seen for
 * stale seconds is flagged stale.  One request per agent, several at
 * once. */
int inventory_write(struct registry *reg, const struct agent_conf *ac, const char *store,
		    const struct inventory *inv, int64_t now, int64_t stale,
		    enum inventory_format format, FILE *out, struct reimage_error *err);

#endif
