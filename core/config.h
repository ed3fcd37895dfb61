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

enum preserve_mode { PRESERVE_MOVE, PRESERVE_COPY };

struct job_hook {
	const char *path;          /* absolute path of the script */
	const char *const *args;   /* extra arguments after the staging path */
	long long timeout;         /* seconds */
	const char *sha256;        /* expected digest of the script, or NULL */
};

struct job {
	config_t cfg;
	char file[4096];
	const char *id;
	long long serial;
	const char *image_url;
	const char *image_sha256;  /* 64 hex digits, or NULL */
	long long image_size;      /* bytes, -1 if not given */
	int image_retries;         /* resumes of an interrupted download */
	long long image_retry_delay_ms;
	const char *root;
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
	struct reimage_optval *values, *image_values, *preserve_values, *boot_values;
	struct reimage_optval *hook_values;
};

struct agent_conf {
	config_t cfg;
	char file[4096];
	int loaded;                /* 0: no agent file, defaults only */
	const char *agent_id;
	const char *const *groups;
	const char *root;
	const char *backend;
	const char *const *plugins;      /* modules loaded in PREPARE */
	const char *const *plugin_path;
	const char *state_dir;
	const char *const *jobs;         /* job locations polled */
	const char *reports;             /* report location */
	long long poll_interval;
	long long poll_jitter;
	const char *const *trusted_keys;
	struct reimage_optval *values;
};

int job_load(struct job *job, const char *path, struct reimage_error *err);
void job_free(struct job *job);
/* path NULL: defaults only. */
int agent_conf_load(struct agent_conf *ac, const char *path, struct reimage_error *err);
void agent_conf_free(struct agent_conf *ac);
/* The group named `plugin` in the job file, else in the agent file, or NULL. */
const config_setting_t *config_plugin_group(const struct job *job, const struct agent_conf *ac,
					    const char *plugin);
/* The declared settings, for `reimage options`. */
struct config_group {
	const char *name;
	const struct reimage_option *table;
};
const struct reimage_option *config_job_options(void);
/* The job file's groups, NULL-terminated. */
const struct config_group *config_job_groups(void);
const struct reimage_option *config_agent_options(void);

#endif
