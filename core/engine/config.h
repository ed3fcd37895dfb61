/*
 * config.h -- the job file and the agent file (libconfig), read into
 * plain structures.  Every setting is declared once in config.c (name,
 * type, default, bounds, doc); conf/job.conf and conf/agent.conf are the
 * commented samples.  Groups named after a plugin hold that plugin's own
 * settings and are checked against its table when it is loaded.
 */
#ifndef REIMAGE_CONFIG_H
#define REIMAGE_CONFIG_H

#include <libconfig.h>
#include <reimage/plugin.h>
#include <stdint.h>

enum preserve_mode { PRESERVE_MOVE, PRESERVE_COPY };

struct job_hook {
	const char *path;          /* absolute path of the script */
	const char *const *args;   /* extra arguments after the staging path */
	long long timeout;         /* seconds */
	const char *sha256;        /* expected digest of the script, or NULL */
};

/* What the new image must pass after its boot (TRIAL) to be committed. */
struct job_health {
	const char *const *units;     /* active service units */
	const char *const *commands;  /* absolute paths that must exit 0 */
	int report;                   /* the report location must accept a report */
	long long deadline;           /* seconds for all of them */
};

/* What logged-in users are told before QUIESCE, and what they may do. */
struct job_notice {
	long long seconds;           /* countdown; 0: no notice */
	long long repeat;            /* seconds between notices */
	const char *message;
	int max_deferrals;
	long long defer_seconds;
	const char *const *inhibitors;  /* process names that postpone */
};

struct job {
	config_t cfg;
	char file[4096];
	const char *id;
	long long serial;
	long long serial_reset;    /* 0, or the reset this job carries (accept.h) */
	int64_t signed_at;         /* Unix time, 0 if not given */
	const char *image_url;
	const char *image_sha256;  /* 64 hex digits, or NULL */
	const char *image_toc_sha256;  /* chunked: the TOC's SHA-256, or NULL */
	long long image_size;      /* bytes, -1 if not given */
	int image_retries;         /* resumes of an interrupted download */
	long long image_retry_delay_ms;
	const char *image_kind;    /* image.kind, or NULL: from the URL (source.h) */
	const char *image_token_file;  /* bearer token for an OCI registry, or NULL */
	const char *root;
	int root_set;              /* the job file names its root */
	const char *backend;
	enum preserve_mode preserve_mode;
	int preserve_agent;
	int preserve_network;
	const char *const *network_paths;  /* NULL: the backend's set */
	int users_all;             /* users = "all" */
	const char *const *users;  /* named users (NULL-terminated) */
	const char *const *paths;  /* globs relative to the root */
	struct job_hook *hooks;
	size_t n_hooks;
	const char *label;         /* NULL: keep the volume's label */
	struct reimage_boot boot;
	int boot_set;              /* a boot group was given */
	int reboot;
	long long keep_old_days;
	const char *const *keep_entries;  /* NULL: the backend's list */
	const char *const *plugin_path;
	const char *const *target_agents;  /* NULL-terminated, may be empty */
	const char *const *target_groups;
	int has_targets;           /* a targets group was given */
	int64_t not_after;         /* Unix time, 0 if not given */
	const char *at;            /* start time as written, or NULL: at once */
	long long window;          /* seconds after `at`; 0: no limit */
	long long test_swap_pause; /* test switch: pause mid-swap, seconds */
	struct job_health health;
	long long image_unpacked_size;     /* bytes once staged, -1 if not given */
	const char *const *image_devices;  /* where device nodes may be made (stage.h) */
	int trial_guard;           /* arm reimage-guard for the trial boots */
	int trial_max_attempts;    /* boots of the new image before the guard falls back */
	long long free_margin;     /* bytes that must stay free on the root's volume */
	int require_ac_power;      /* refuse to start on battery */
	const char *const *required_paths;  /* relative paths the staged image must hold */
	const char *timezone;      /* zone of a local `at`, NULL: the machine's */
	long long jitter;          /* seconds of per-agent delay after `at` */
	int stage_early;           /* stage at once, swap in the window */
	const char *const *waves;  /* rollout.waves */
	size_t n_waves;
	int failure_budget;        /* percent per wave */
	int wave;                  /* this document's wave, -1: no waves */
	long long wave_timeout;    /* seconds a wave may stay open, 0: no deadline */
	struct job_notice notice;
	int64_t defer_deadline;    /* Unix time, 0: the window's end */
	struct reimage_optval *values, *image_values, *preserve_values, *boot_values;
	struct reimage_optval *hook_values, *targets_values, *health_values;
	struct reimage_optval *trial_values, *preflight_values;
	struct reimage_optval *rollout_values, *notice_values;
};

struct agent_conf {
	config_t cfg;
	char file[4096];
	int loaded;                /* 0: no agent file, defaults only */
	const char *agent_id;
	const char *const *groups;
	const char *root;
	int root_set;                    /* the agent file names its root */
	const char *backend;
	const char *const *plugins;      /* modules loaded in PREPARE */
	const char *const *plugin_path;
	const char *state_dir;
	const char *store;               /* job store, or NULL */
	const char *const *jobs;         /* job locations polled, NULL: the store's */
	const char *reports;             /* report location, NULL: the store's */
	long long poll_interval;
	long long poll_jitter;
	long long heartbeat;       /* seconds between latest reports when idle */
	const char *const *trusted_keys;
	const char *const *revoked_keys;
	long long max_serial_jump;
	long long first_serial_max;      /* for a fresh agent or a serial_reset job */
	long long store_timestamp_max_age;  /* seconds; 0: no store timestamp required */
	const char *guard;               /* reimage-guard binary, NULL: found (trial.h) */
	int store_clock;                 /* clock = "store": follow the store's Date */
	struct reimage_optval *values;
};

int job_load(struct job *job, const char *path, struct reimage_error *err);
/* A job from a verified document's bytes; name (its URL) is used in
 * errors.  @include is refused. */
int job_load_text(struct job *job, const char *name, const char *text, size_t len,
		  struct reimage_error *err);
void job_free(struct job *job);
/* Read a signed document's text into cfg (config_init'ed here, destroyed
 * on failure): no NUL byte, no @include, every integer held exactly;
 * name, which must outlive cfg, is used in errors. */
int config_read_document(config_t *cfg, const char *name, const char *text, size_t len,
			 struct reimage_error *err);
/* path NULL: defaults only. */
int agent_conf_load(struct agent_conf *ac, const char *path, struct reimage_error *err);
void agent_conf_free(struct agent_conf *ac);
/* The groups named `plugin` in the agent file, then in the job file (job
 * and ac may be NULL), into ret; returns how many.  The job's settings
 * replace the agent file's one by one (plugin_configure_groups), so a job
 * can change a rate limit without dropping the agent's credentials. */
size_t config_plugin_groups(const struct job *job, const struct agent_conf *ac,
			    const char *plugin, const config_setting_t *ret[2]);
/* The declared settings, for `reimage options`. */
struct config_group {
	const char *name;
	const struct reimage_option *table;
};
const struct reimage_option *config_job_options(void);
/* The job file's groups, NULL-terminated. */
const struct config_group *config_job_groups(void);
const struct reimage_option *config_agent_options(void);

/* Names a job file gives that become store paths (job ids, agents, groups,
 * waves): [A-Za-z0-9._-], not starting with '.', at most 128 characters.
 * Checked here, where they are read; the store relies on it. */
int store_name_ok(const char *name);

#endif
