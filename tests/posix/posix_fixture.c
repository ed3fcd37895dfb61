/*
 * fixture.c -- see fixture.h.
 */
#define _GNU_SOURCE
#include "posix_fixture.h"
#include "error.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int fx_failures;

int fx_load(struct posix_fixture *fx, const char *conf, struct reimage_error *err)
{
	return fx_load_backend(fx, "posix", NULL, conf, err);
}

int fx_load_backend(struct posix_fixture *fx, const char *name, const struct reimage_plugin *linked,
		    const char *conf, struct reimage_error *err)
{
	static char dir[4096];
	static const char *path[2];
	char file[4096];
	int r;

	memset(fx, 0, sizeof(*fx));
	snprintf(dir, sizeof(dir), "%s/plugins", t_bin_dir());
	path[0] = dir;
	config_init(&fx->cfg);
	if ((r = registry_init(&fx->reg, path, err)) < 0 ||
	    (linked && (r = registry_add(&fx->reg, name, "(linked into the test)", linked, err)) < 0))
		return r;
	/* Read from a file, as the agent does: the core tells defaults from
	 * configured lists by their source file. */
	snprintf(file, sizeof(file), "%s/%s-%d.conf", t_dir(), name, (int)getpid());
	t_write(file, conf);
	if (!config_read_file(&fx->cfg, file)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "test configuration %s:%d: %s", file,
			config_error_line(&fx->cfg), config_error_text(&fx->cfg));
		return -EINVAL;
	}
	if ((r = registry_backend(&fx->reg, name, &fx->plugin, err)) < 0 ||
	    (r = plugin_configure(fx->plugin, config_root_setting(&fx->cfg), err)) < 0 ||
	    (r = plugin_start(fx->plugin, err)) < 0)
		return r;
	fx->ops = fx->plugin->desc->backend;
	fx->ctx = fx->plugin->ctx;
	return 0;
}

void fx_check_renames(struct posix_fixture *fx)
{
	struct reimage_error err = { 0 };

	t_write(t_path("a"), "A");
	t_write(t_path("b"), "B");
	CU_ASSERT_EQUAL(fx->ops->exchange(fx->ctx, t_path("a"), t_path("b"), &err), 0);
	CU_ASSERT(fx_content_is(t_path("a"), "B") && fx_content_is(t_path("b"), "A"));
	/* A move never replaces an entry. */
	CU_ASSERT_EQUAL(fx->ops->move(fx->ctx, t_path("a"), t_path("c"), &err), 0);
	CU_ASSERT_EQUAL(fx->ops->move(fx->ctx, t_path("b"), t_path("c"), &err), -EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "move "));
	CU_ASSERT(fx_content_is(t_path("b"), "A") && fx_content_is(t_path("c"), "B"));
	memset(&err, 0, sizeof(err));
	/* An exchange needs both names. */
	CU_ASSERT_EQUAL(fx->ops->exchange(fx->ctx, t_path("b"), t_path("missing"), &err), -ENOENT);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_NOTFOUND);
	CU_ASSERT(fx_content_is(t_path("b"), "A"));
	CU_ASSERT_EQUAL(fx->ops->is_mount(fx->ctx, t_dir(), &err), 0);
	CU_ASSERT_EQUAL(fx->ops->is_mount(fx->ctx, "/proc", &err), 1);
	CU_ASSERT_EQUAL(fx->ops->sync(fx->ctx, t_dir(), &err), 0);
}

void fx_unload(struct posix_fixture *fx)
{
	registry_fini(&fx->reg);
	config_destroy(&fx->cfg);
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* In the child: the namespaces, then fn. */
static int enter_and_run(unsigned flags, int (*fn)(void *arg), void *arg)
{
	int status;
	pid_t init;

	if (unshare(CLONE_NEWNS | ((flags & NS_PID) ? CLONE_NEWPID : 0)) < 0) {
		perror("unshare");
		return 77;
	}
	/* Nothing mounted here may reach the machine's mount table. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		perror("mount --make-rprivate /");
		return 77;
	}
	if (!(flags & NS_PID))
		return fn(arg);
	/* The first child in a new pid namespace is its PID 1. */
	init = fork();
	if (init < 0)
		return 100;
	if (init == 0) {
		/* If the test kills its child, the whole namespace dies too. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if ((flags & NS_PROC) &&
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
			perror("mount proc");
			_exit(77);
		}
		_exit(fn(arg));
	}
	if (waitpid(init, &status, 0) < 0)
		return 100;
	return exit_code(status);
}

int ns_run(unsigned flags, int (*fn)(void *arg), void *arg, int timeout_s)
{
	struct timespec start, now;
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0)
		_exit(enter_and_run(flags, fn, arg));
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return exit_code(status);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (w < 0 || now.tv_sec - start.tv_sec >= timeout_s) {
			fprintf(stderr, "ns_run: child %d outran %d s; killed\n", (int)pid, timeout_s);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(10000);
	}
}

int fx_content_is(const char *path, const char *want)
{
	char *got = t_read(path);
	int same = got && strcmp(got, want) == 0;
	if (!same)
		fprintf(stderr, "%s: '%s', expected '%s'\n", path, got ? got : "(missing)", want);
	free(got);
	return same;
}

