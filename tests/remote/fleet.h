/*
 * fleet.h -- the remote tests' fleet: a real nginx on 127.0.0.1 as the job
 * store and image server, an administrator's key, an image, and agents
 * pc-1..pc-N, each a `reimage agent` process with its own sandbox root
 * (the sandbox backend records quiesce and reboot).  A "reboot" is the
 * agent stopping after the swap and the test starting it again.
 */
#ifndef REIMAGE_TEST_FLEET_H
#define REIMAGE_TEST_FLEET_H

#include "http/servers.h"
#include "rgw.h"
#include "smb/smbd.h"

#include <sys/types.h>

#define MAX_AGENTS 32

/* Where the job store lives: every kind serves the same scenario. */
enum fleet_store {
	STORE_NGINX,  /* http://.../dav/store (WebDAV), the default */
	STORE_DIR,    /* a plain directory */
	STORE_SMBD,   /* smb://127.0.0.1:PORT/private/store on the test's smbd */
	STORE_RGW,    /* s3://store on the test's RADOS Gateway, the image too */
};

struct fleet {
	struct nginx ng;  /* serves the image whatever the store */
	struct smbd smb;  /* STORE_SMBD only */
	struct rgw rgw;   /* STORE_RGW only */
	enum fleet_store kind;
	char store[256];
	/* reimagectl's global options for this store ("-C FILE" for smb's
	 * credentials), to put before the command. */
	char ctl[512];
	char image_url[256];
	int n;
	pid_t pid[MAX_AGENTS + 1];
};

/* nginx, keys, an image (slow: served at 256 KiB/s with 4 MiB of data), n
 * agents with sandbox roots, and t_path("job.conf") with job_extra;
 * agent_extra is added to every agent file. */
void fleet_setup_with(struct fleet *f, int n, int slow, const char *job_extra,
		      const char *agent_extra);
void fleet_setup(struct fleet *f, int n, int slow, const char *job_extra);
/* fleet_setup_with() on a store of kind. */
void fleet_setup_store(struct fleet *f, enum fleet_store kind, int n, int slow,
		       const char *job_extra, const char *agent_extra);
/* Stop the fleet's servers. */
void fleet_stop(struct fleet *f);
/* A document of the store, read from its folder on disk, or from the
 * bucket with curl (NULL if none). */
char *store_read(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write a document of the store behind reimage's back (its folder, or
 * the bucket with curl). */
void store_write(const char *rel, const char *text);
const char *agent_file(int i);
/* Start agent i (once: poll, run what is due, stop). */
pid_t agent_start(int i, int once);
/* The same with one option before the command (e.g. "-v"), or NULL. */
pid_t agent_start_with(int i, int once, const char *option);
/* The agent's exit status, or -1 if it did not end within seconds (it is
 * then killed). */
int agent_wait(pid_t pid, int seconds);
void show_log(int i);
int agent_once(int i);
/* reimagectl submit of job.conf with key and the targets in how. */
void submit(struct fleet *f, const char *key, const char *how);
/* The agent's latest report, straight from the store's folder. */
char *latest_report(int i);
/* The agent's report on test-job, or NULL. */
char *job_report(int i);
/* 1 if the agent's report on test-job is in state. */
int job_state_is(int i, const char *state);
/* 1 if the agent's report on test-job is final (committed, failed...). */
int job_final(int i);
/* `reimagectl rollout ACTION` on test-job with the administrator's keys. */
int ctl_rollout(const struct fleet *f, char **out, const char *action);
/* Run every agent until each has a final outcome on test-job: an agent
 * that stops after its swap (the "reboot") is started again, once, to
 * play the new image.  wave_of (or NULL): each agent's wave; an agent
 * seen started while the wave before its own has not committed is an
 * error; the administrator's `reimagectl wait -k` decides the waves
 * meanwhile and must end by itself.  Returns 1 if all finished within
 * seconds. */
int run_fleet(struct fleet *f, const int *wave_of, int seconds);
/* An agent whose PREPARE fails: its root's .reimage is a file. */
void break_agent(int i);
/* Wait (bounded) until the agent's latest report holds both strings. */
int report_shows(int i, const char *a, const char *b, int seconds);
/* The root's manifest, without the agent's own state files. */
char *root_manifest(int i);
int is_new_image(int i);
/* Processes started from now on see the clock moved by offset (libfaketime,
 * e.g. "-1000d"), until faketime_clear(); skips the test if libfaketime is
 * not installed. */
void faketime_set(const char *offset);
void faketime_clear(void);

#endif
