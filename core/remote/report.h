/*
 * report.h -- status reports: JSON documents (jansson) an agent puts in
 * the store at every phase and every state change, read back by
 * reimagectl.  See store.h for where they go.
 *
 *   { "agent": "pc-17", "groups": ["lab"], "job": "spring-2027",
 *     "serial": 42, "location": "https://.../jobs/pc-17.job",
 *     "phase": "STAGE", "state": "running",
 *     "progress": { "done": 104857600, "total": 734003200 },
 *     "error": "", "message": "", "time": 1795598400,
 *     "started": 1795598100, "version": "0.1.0",
 *     "deferred": ["Windows"],        (only when the swap deferred entries)
 *     "warnings": ["preserve.paths item 'srv/dtaa' matches nothing ..."] }
 *                                     (only when there are some)
 *
 * An agent's latest report is also its heartbeat (inventory.h): an agent
 * with nothing to report sends { "phase": "IDLE", "state": "idle" }.
 *
 * States: idle, scheduled, running, pending (swapped, rebooting), committed
 * (running the new image: success), and the failures refused, failed,
 * rolled-back, skipped (its window passed), cancelled.
 */
#ifndef REIMAGE_REPORT_H
#define REIMAGE_REPORT_H

#include <reimage/plugin.h>
#include <stddef.h>
#include <stdint.h>

struct report {
	char agent[160];
	const char *const *groups;  /* NULL-terminated; not filled by report_parse() */
	char job[256];              /* "" if the document could not be read */
	long long serial;
	char location[1024];        /* where the job document was found */
	char phase[32];
	char state[32];
	uint64_t done, total;       /* progress in bytes; total 0 if unknown */
	char error[REIMAGE_ERRMSG_MAX];
	char message[256];
	int64_t time;               /* when the report was made */
	int64_t started;            /* when the job started, 0 before */
	char deferred[REIMAGE_ERRMSG_MAX];  /* entries the swap deferred to the boot, one a line */
	char warnings[REIMAGE_ERRMSG_MAX];  /* what the job does that its author may not mean
					     * (engine_warnings()), one a line */
	char version[32];           /* the agent's; filled by report_parse() only */
};

/* The JSON text of a report (malloc'ed), or NULL without memory. */
char *report_json(const struct report *rep);
/* Read a report; an INTEGRITY error names what is wrong. */
int report_parse(const char *text, size_t len, struct report *ret, struct reimage_error *err);
/* What reimagectl keeps of a report while it reads a whole fleet's: a
 * hundred bytes and its texts, not the 5.5 KB of a struct report. */
struct report_brief {
	char state[32], phase[32], version[32];
	long long serial;
	uint64_t done, total;
	int64_t time;
	char *job, *error, *message;  /* NULL if empty */
};

/* Keep rep's brief in b (replacing what b held).  Without memory a text
 * is left out, never the state. */
void report_brief_set(struct report_brief *b, const struct report *rep);
void report_brief_clear(struct report_brief *b);
/* The brief's error, else its message, else "". */
const char *report_brief_detail(const struct report_brief *b);

/* 1 if state ends a job: success (committed) or another outcome. */
int report_state_final(const char *state);
int report_state_success(const char *state);

/* What a report's state counts as, each outcome as what it is: a
 * cancelled, skipped or refused job did not fail (a rollout's failure
 * budget counts failed and rolled-back only). */
enum report_outcome {
	OUTCOME_COMMITTED,
	OUTCOME_FAILED,       /* failed */
	OUTCOME_ROLLED_BACK,
	OUTCOME_CANCELLED,    /* withdrawn, stopped, or its wave halted */
	OUTCOME_SKIPPED,      /* its window passed */
	OUTCOME_REFUSED,      /* refused before anything was written */
	OUTCOME_UNFINISHED,   /* not final yet, or no report */
	OUTCOME_COUNT
};
enum report_outcome report_outcome(const char *state);
/* "committed", "failed", "rolled back", ... for tables and messages;
 * report_outcome_key(): the same as a JSON key ("rolled_back"). */
const char *report_outcome_name(enum report_outcome o);
const char *report_outcome_key(enum report_outcome o);
/* A report's age for a table: "42s", "17m", "5h", "3d". */
void report_age_text(char *buf, size_t len, int64_t seconds);

#endif
