/*
 * fleet.c -- see fleet.h.
 */
#define _GNU_SOURCE
#include "fleet.h"
#include "fixture.h"
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

const char *agent_file(int i)
{
	return t_path("pc-%d/agent.conf", i);
}

static void make_agent(struct fleet *f, int i, const char *key, const char *agent_extra)
{
	char conf[2048], root[1024];
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

/* nginx, keys, an image (slow: served at 256 KiB/s with 4 MiB of data),
 * n agents with sandbox roots, and a job file for them. */
void fleet_setup_with(struct fleet *f, int n, int slow, const char *job_extra,
		      const char *agent_extra)
{
	char image[1024], extra[512];

	memset(f, 0, sizeof(*f));
	f->n = n;
	nginx_start(&f->ng, 0);
	snprintf(f->store, sizeof(f->store), "http://127.0.0.1:%d/dav/store", f->ng.port);
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
	snprintf(extra, sizeof(extra), "sha256 = \"%s\"; size = %lld;", fixture_sha256(image),
		 fixture_size(image));
	fixture_job(t_path("job.conf"), f->image_url, extra, job_extra);
	CU_ASSERT_FATAL(n <= MAX_AGENTS);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("old-root")), 0);
	fixture_old_root(t_path("old-root"));
	for (int i = 1; i <= n; i++)
		make_agent(f, i, t_path("admin.pub"), agent_extra);
}

void fleet_setup(struct fleet *f, int n, int slow, const char *job_extra)
{
	fleet_setup_with(f, n, slow, job_extra, NULL);
}

pid_t agent_start(int i, int once)
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
		execl(bin, "reimage", "agent", "-c", conf, once ? "--once" : NULL, (char *)NULL);
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
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&out, "submit -s %s -k '%s' '%s' %s", f->store, key,
				  t_path("job.conf"), how), 0);
	free(out);
}

/* The agent's latest report, straight from nginx's folder. */
char *latest_report(int i)
{
	return t_read(t_path("www/dav/store/reports/pc-%d.json", i));
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
