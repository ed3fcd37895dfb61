/*
 * fleet.c -- see fleet.h.
 */
#define _GNU_SOURCE
#include "fleet.h"
#include "fixture.h"
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* The store's folder on disk (nginx's, the directory, smbd's share), or
 * the gateway holding its bucket. */
static char store_dir[1024];
static const struct rgw *store_rgw;

char *store_read(const char *fmt, ...)
{
	char rel[1024], path[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (store_rgw)
		return rgw_get(store_rgw, rel);
	snprintf(path, sizeof(path), "%s/%s", store_dir, rel);
	return t_read(path);
}

void store_write(const char *rel, const char *text)
{
	char path[2048];

	if (store_rgw) {
		t_write(t_path("store-write.tmp"), text);
		CU_ASSERT_EQUAL_FATAL(rgw_put_file(store_rgw, rel, t_path("store-write.tmp")), 0);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", store_dir, rel);
	t_write(path, text);
}

const char *agent_file(int i)
{
	return t_path("pc-%d/agent.conf", i);
}

static void make_agent(struct fleet *f, int i, const char *key, const char *agent_extra)
{
	char conf[4096], root[1024];
	snprintf(root, sizeof(root), "%s", t_path("pc-%d/root", i));
	/* A copy of one old root, with the installed agent's state folder. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && cp -a '%s' '%s' && mkdir -p -m 700 "
				   "'%s/var/lib/reimage'", t_path("pc-%d", i),
				   t_path("old-root"), root, root), 0);
	snprintf(conf, sizeof(conf),
		 "agent_id = \"pc-%d\";\ngroups = [ \"lab\" ];\nroot = \"%s\";\n"
		 "backend = \"sandbox\";\nstate_dir = \"%s/var/lib/reimage\";\nstore = \"%s\";\n"
		 "trusted_keys = [ \"%s\" ];\npoll_interval = 1;\npoll_jitter = 1;\n%s\n",
		 i, root, root, f->store, key, agent_extra ? agent_extra : "");
	t_write(agent_file(i), conf);
}

/* The store of kind: its URL, its folder, and the settings agents and
 * reimagectl need to reach it (added to agent_extra in extra). */
static void store_setup(struct fleet *f, enum fleet_store kind, const char *agent_extra,
			char *extra, size_t len)
{
	f->kind = kind;
	store_rgw = NULL;
	snprintf(extra, len, "%s", agent_extra ? agent_extra : "");
	switch (kind) {
	case STORE_NGINX:
		snprintf(f->store, sizeof(f->store), "http://127.0.0.1:%d/dav/store", f->ng.port);
		snprintf(store_dir, sizeof(store_dir), "%s", t_path("www/dav/store"));
		break;
	case STORE_DIR:
		snprintf(store_dir, sizeof(store_dir), "%s", t_path("store"));
		snprintf(f->store, sizeof(f->store), "%s", store_dir);
		break;
	case STORE_SMBD: {
		char group[512];
		smbd_start(&f->smb);
		snprintf(f->store, sizeof(f->store), "smb://127.0.0.1:%d/private/store", f->smb.port);
		snprintf(store_dir, sizeof(store_dir), "%s", t_path("private/store"));
		snprintf(group, sizeof(group), "transport-smb: { user = \"" SMBD_USER "\"; "
			 "password = \"" SMBD_PASSWORD "\"; };\n");
		t_write(t_path("admin.conf"), group);
		snprintf(f->ctl, sizeof(f->ctl), "-C '%s' ", t_path("admin.conf"));
		snprintf(extra, len, "%s%s", group, agent_extra ? agent_extra : "");
		break;
	}
	case STORE_RGW: {
		char group[1024];
		rgw_start(&f->rgw);
		store_rgw = &f->rgw;
		snprintf(f->store, sizeof(f->store), "s3://" RGW_BUCKET);
		rgw_settings(&f->rgw, group, sizeof(group));
		t_write(t_path("admin.conf"), group);
		snprintf(f->ctl, sizeof(f->ctl), "-C '%s' ", t_path("admin.conf"));
		snprintf(extra, len, "%s%s", group, agent_extra ? agent_extra : "");
		break;
	}
	}
}

/* nginx, keys, an image (slow: served at 256 KiB/s with 4 MiB of data),
 * n agents with sandbox roots, and a job file for them. */
void fleet_setup_store(struct fleet *f, enum fleet_store kind, int n, int slow,
		       const char *job_extra, const char *agent_extra)
{
	char image[1024], extra[512], agents[2048];

	memset(f, 0, sizeof(*f));
	f->n = n;
	nginx_start(&f->ng, 0);
	store_setup(f, kind, agent_extra, agents, sizeof(agents));
	CU_ASSERT_EQUAL_FATAL(t_sh("'%s/reimagectl' keygen '%s' '%s' >/dev/null", t_bin_dir(),
				   t_path("admin.key"), t_path("admin.pub")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("new")), 0);
	fixture_new_tree(t_path("new"));
	if (slow)
		CU_ASSERT_EQUAL_FATAL(t_sh("head -c 4194304 /dev/urandom > '%s'",
					   t_path("new/usr/big")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("www/slow")), 0);
	snprintf(image, sizeof(image), "%s", t_path("www/%simage.tar", slow ? "slow/" : ""));
	fixture_pack(t_path("new"), image, "");
	snprintf(f->image_url, sizeof(f->image_url), "http://127.0.0.1:%d/%simage.tar", f->ng.port,
		 slow ? "slow/" : "");
	if (kind == STORE_RGW) {
		/* The image comes from the bucket too, signed like the rest. */
		CU_ASSERT_EQUAL_FATAL(rgw_put_file(&f->rgw, "images/image.tar", image), 0);
		snprintf(f->image_url, sizeof(f->image_url), "s3://" RGW_BUCKET "/images/image.tar");
	}
	snprintf(extra, sizeof(extra), "sha256 = \"%s\"; size = %lld;", fixture_sha256(image),
		 fixture_size(image));
	fixture_job(t_path("job.conf"), f->image_url, extra, job_extra);
	CU_ASSERT_FATAL(n <= MAX_AGENTS);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("old-root")), 0);
	fixture_old_root(t_path("old-root"));
	for (int i = 1; i <= n; i++)
		make_agent(f, i, t_path("admin.pub"), agents);
}

void fleet_setup_with(struct fleet *f, int n, int slow, const char *job_extra,
		      const char *agent_extra)
{
	fleet_setup_store(f, STORE_NGINX, n, slow, job_extra, agent_extra);
}

void fleet_setup(struct fleet *f, int n, int slow, const char *job_extra)
{
	fleet_setup_with(f, n, slow, job_extra, NULL);
}

void fleet_stop(struct fleet *f)
{
	server_stop(f->ng.pid);
	smbd_stop(&f->smb);
	rgw_stop(&f->rgw);
	store_rgw = NULL;
}

pid_t agent_start(int i, int once)
{
	return agent_start_with(i, once, NULL);
}

pid_t agent_start_with(int i, int once, const char *option)
{
	char log[1024], conf[1024];
	snprintf(log, sizeof(log), "%s", t_path("pc-%d/agent.log", i));
	snprintf(conf, sizeof(conf), "%s", agent_file(i));
	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		char bin[1024];
		snprintf(bin, sizeof(bin), "%s/reimage", t_bin_dir());
		char *argv[8];
		int n = 0;
		argv[n++] = (char *)"reimage";
		if (option)
			argv[n++] = (char *)option;
		argv[n++] = (char *)"agent";
		argv[n++] = (char *)"-c";
		argv[n++] = conf;
		if (once)
			argv[n++] = (char *)"--once";
		argv[n] = NULL;
		execv(bin, argv);
		_exit(127);
	}
	return pid;
}

/* The agent's exit status, or -1 if it did not end within seconds (it is
 * then killed). */
int agent_wait(pid_t pid, int seconds)
{
	for (int i = 0; i < seconds * 10; i++) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

void show_log(int i)
{
	char *log = t_read(t_path("pc-%d/agent.log", i));
	fprintf(stderr, "--- pc-%d agent.log:\n%s\n", i, log ? log : "(none)");
	free(log);
}

/* Run the agent once (poll, run what is due, stop). */
int agent_once(int i)
{
	int r = agent_wait(agent_start(i, 1), 120);
	if (r != 0)
		show_log(i);
	return r;
}

void submit(struct fleet *f, const char *key, const char *how)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&out, "%ssubmit -s %s -k '%s' '%s' %s", f->ctl, f->store, key,
				  t_path("job.conf"), how), 0);
	free(out);
}

char *latest_report(int i)
{
	return store_read("reports/pc-%d.json", i);
}

/* Wait (bounded) until the agent's latest report holds every string. */
int report_shows(int i, const char *a, const char *b, int seconds)
{
	for (int k = 0; k < seconds * 10; k++) {
		char *rep = latest_report(i);
		int ok = rep && strstr(rep, a) && (!b || strstr(rep, b));
		free(rep);
		if (ok)
			return 1;
		usleep(100000);
	}
	char *rep = latest_report(i);
	fprintf(stderr, "pc-%d: report never showed '%s' '%s'; last:\n%s\n", i, a, b ? b : "",
		rep ? rep : "(none)");
	free(rep);
	return 0;
}

/* The root's manifest, without the agent's own state files. */
char *root_manifest(int i)
{
	/* fixture_manifest's facts (type, mode, owner, links, target, content
	 * digest) in three processes instead of three per file: a fleet has
	 * many roots to compare. */
	static const char *const skip = "-path ./.reimage -prune -o -path './var/lib/reimage/agent.*' "
					"-prune -o";
	char *text = NULL;
	CU_ASSERT_EQUAL(t_sh_out(&text, "cd '%s' && { find . -mindepth 1 %s -printf '%%p %%y %%m "
				 "%%U:%%G %%n %%l\\n'; find . %s -type f -exec sha256sum {} +; } | "
				 "LC_ALL=C sort", t_path("pc-%d/root", i), skip, skip), 0);
	return text;
}

int is_new_image(int i)
{
	return access(t_path("pc-%d/root/NEW-IMAGE", i), F_OK) == 0 &&
	       access(t_path("pc-%d/root/opt/only-old", i), F_OK) != 0;
}


#define LIBFAKETIME "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

static char *saved_asan;

void faketime_set(const char *offset)
{
	char asan[256];
	if (access(LIBFAKETIME, R_OK) < 0)
		t_skip("libfaketime is not installed (package faketime)");
	setenv("LD_PRELOAD", LIBFAKETIME, 1);
	setenv("FAKETIME", offset, 1);
	setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
	/* libfaketime comes before the sanitizer's runtime in ASan builds. */
	free(saved_asan);
	saved_asan = getenv("ASAN_OPTIONS") ? strdup(getenv("ASAN_OPTIONS")) : NULL;
	snprintf(asan, sizeof(asan), "%s:verify_asan_link_order=0", saved_asan ? saved_asan : "");
	setenv("ASAN_OPTIONS", asan, 1);
}

void faketime_clear(void)
{
	unsetenv("LD_PRELOAD");
	unsetenv("FAKETIME");
	unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
	if (saved_asan)
		setenv("ASAN_OPTIONS", saved_asan, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved_asan);
	saved_asan = NULL;
}

char *job_report(int i)
{
	return store_read("reports/test-job/pc-%d.json", i);
}

int job_state_is(int i, const char *state)
{
	char want[64], *rep = job_report(i);
	snprintf(want, sizeof(want), "\"state\": \"%s\"", state);
	int ok = rep && strstr(rep, want);
	free(rep);
	return ok;
}

int job_final(int i)
{
	static const char *const final[] = { "committed", "failed", "rolled-back", "refused",
					     "skipped", "cancelled", NULL };
	for (const char *const *s = final; *s; s++)
		if (job_state_is(i, *s))
			return 1;
	return 0;
}

/* 1 if the agent has started the job: a report past SCHEDULED. */
static int job_started(int i)
{
	char *rep = job_report(i);
	int started = rep && !strstr(rep, "\"phase\": \"SCHEDULED\"");
	free(rep);
	return started;
}

/* 1 if every agent of wave has a final outcome. */
static int wave_finished(const struct fleet *f, const int *wave_of, int wave)
{
	for (int j = 1; j <= f->n; j++)
		if (wave_of[j] == wave && !job_final(j)) {
			char *rep = job_report(j);
			fprintf(stderr, "pc-%d of wave %d not finished: %s\n", j, wave + 1,
				rep ? rep : "(no report)");
			free(rep);
			return 0;
		}
	return 1;
}

int ctl_rollout(const struct fleet *f, char **out, const char *action)
{
	return fixture_reimagectl(out, "%srollout %s -s %s -k '%s' -t '%s' test-job", f->ctl, action,
				  f->store, t_path("admin.key"), t_path("admin.pub"));
}

/* The administrator's `reimagectl wait -k` in the background: it decides
 * the waves while it follows the reports (its log: admin.log). */
static pid_t admin_wait(const struct fleet *f, int seconds)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "exec '%s/reimagectl' %swait -s %s -k '%s' -t '%s' --interval 1 "
		 "--timeout %d test-job >>'%s' 2>&1", t_bin_dir(), f->ctl, f->store,
		 t_path("admin.key"), t_path("admin.pub"), seconds, t_path("admin.log"));
	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

int run_fleet(struct fleet *f, const int *wave_of, int seconds)
{
	int restarted[MAX_AGENTS + 1] = { 0 }, done = 0, early = 0;
	pid_t admin = wave_of ? admin_wait(f, seconds) : 0;

	for (int i = 1; i <= f->n; i++)
		f->pid[i] = agent_start(i, 0);
	for (int k = 0; k < seconds * 5 && !done; k++, usleep(200000)) {
		done = 1;
		for (int i = 1; i <= f->n; i++) {
			int status;
			/* The report first: the earlier wave's outcomes are all
			 * final before any agent of the next wave can start. */
			if (wave_of && wave_of[i] > 0 && job_started(i) &&
			    !wave_finished(f, wave_of, wave_of[i] - 1)) {
				fprintf(stderr, "pc-%d started before wave %d finished\n", i, wave_of[i]);
				early++;
			}
			if (f->pid[i] > 0 && waitpid(f->pid[i], &status, WNOHANG) == f->pid[i]) {
				f->pid[i] = 0;
				CU_ASSERT(!restarted[i]);
				if (!restarted[i]++)
					f->pid[i] = agent_start(i, 0);
			}
			done &= job_final(i);
		}
	}
	for (int i = 1; i <= f->n; i++)
		if (f->pid[i] > 0) {
			kill(f->pid[i], SIGTERM);
			if (agent_wait(f->pid[i], 15) != 0)
				show_log(i);
			f->pid[i] = 0;
		}
	if (!done)
		for (int i = 1; i <= f->n; i++)
			if (!job_final(i))
				show_log(i);
	if (admin > 0) {
		/* It ends by itself once every outcome is final: 0 all
		 * committed, 1 some did not. */
		int status = agent_wait(admin, 15);
		if (status != 0 && status != 1) {
			char *log = t_read(t_path("admin.log"));
			fprintf(stderr, "reimagectl wait -k: %d\n%s", status, log ? log : "");
			free(log);
		}
		CU_ASSERT(status == 0 || status == 1);
	}
	CU_ASSERT_EQUAL(early, 0);
	return done;
}

/* An agent whose PREPARE fails: .reimage is a file, not a directory. */
void break_agent(int i)
{
	t_write(t_path("pc-%d/root/.reimage", i), "not a directory\n");
}
