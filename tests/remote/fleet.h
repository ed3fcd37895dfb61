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

#include <sys/types.h>

#define MAX_AGENTS 32

struct fleet {
	struct nginx ng;
	char store[256];
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
const char *agent_file(int i);
/* Start agent i (once: poll, run what is due, stop). */
pid_t agent_start(int i, int once);
/* The agent's exit status, or -1 if it did not end within seconds (it is
 * then killed). */
int agent_wait(pid_t pid, int seconds);
void show_log(int i);
int agent_once(int i);
/* reimagectl submit of job.conf with key and the targets in how. */
void submit(struct fleet *f, const char *key, const char *how);
/* The agent's latest report, straight from nginx's folder. */
char *latest_report(int i);
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
