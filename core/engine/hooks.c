/*
 * hooks.c -- HOOKS (see hooks.h).  Each script runs in its own process
 * group so that a timeout kills everything it started.
 */
#define _GNU_SOURCE
#include "hooks.h"
#include "digest.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int hooks_file_sha256(const char *path, char out[65], struct reimage_error *err)
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	EVP_MD_CTX *ctx;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		err_sys(err, -errno, "open %s", path);
		return -errno;
	}
	if (!(ctx = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	for (ssize_t n; (n = read(fd, buf, sizeof(buf))) != 0;) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_sys(err, -errno, "read %s", path);
			r = -errno;
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	EVP_DigestFinal_ex(ctx, md, &len);
	digest_hex(out, md, len);
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return r;
}

static int run_one(const struct job *job, const struct job_hook *h, const char *root,
		   const volatile sig_atomic_t *stop, const char *staging, struct reimage_error *err)
{
	char env_staging[4200], env_root[4200], env_job[512];
	const char *argv[64];
	size_t argc = 0;

	if (h->sha256) {
		char got[65];
		int r = hooks_file_sha256(h->path, got, err);
		if (r < 0)
			return r;
		if (strcmp(got, h->sha256) != 0) {
			err_set(err, -EPERM, REIMAGE_EC_INTEGRITY,
				"hook %s: SHA-256 is %s, the job declares %s", h->path, got, h->sha256);
			return -EPERM;
		}
	}
	argv[argc++] = h->path;
	argv[argc++] = staging;
	for (size_t i = 0; h->args && h->args[i] && argc < 63; i++)
		argv[argc++] = h->args[i];
	argv[argc] = NULL;
	snprintf(env_staging, sizeof(env_staging), "REIMAGE_STAGING=%s", staging);
	snprintf(env_root, sizeof(env_root), "REIMAGE_ROOT=%s", root);
	snprintf(env_job, sizeof(env_job), "REIMAGE_JOB=%s", job->id);

	const char *env[] = { env_staging, env_root, env_job, NULL };
	return hooks_exec(argv, env, h->timeout, "hook", stop, err);
}

int hooks_exec(const char *const *argv, const char *const *env, long long timeout,
	       const char *what, const volatile sig_atomic_t *stop, struct reimage_error *err)
{
	struct timespec start, now;
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		err_sys(err, -errno, "%s %s: fork", what, argv[0]);
		return -errno;
	}
	if (pid == 0) {
		setpgid(0, 0);
		for (; env && *env; env++)
			putenv((char *)*env);
		execve(argv[0], (char *const *)argv, environ);
		fprintf(stderr, "reimage: %s %s: %s\n", what, argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			err_sys(err, -errno, "%s %s: wait", what, argv[0]);
			return -errno;
		}
		if (stop && *stop) {
			/* Everything the command started goes with it. */
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			err_set(err, -ECANCELED, REIMAGE_EC_STATE, "%s %s: stopped on request",
				what, argv[0]);
			return -ECANCELED;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= timeout) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			err_set(err, -ETIMEDOUT, REIMAGE_EC_STATE, "%s %s: timed out after %lld s",
				what, argv[0], timeout);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	if (WIFSIGNALED(status)) {
		err_set(err, -ECANCELED, REIMAGE_EC_STATE, "%s %s: killed by signal %d", what,
			argv[0], WTERMSIG(status));
		return -ECANCELED;
	}
	if (WEXITSTATUS(status) != 0) {
		err_set(err, -ECANCELED, REIMAGE_EC_STATE, "%s %s: exited with status %d", what,
			argv[0], WEXITSTATUS(status));
		return -ECANCELED;
	}
	return 0;
}

int hooks_run(const struct job *job, const char *root, const char *staging,
	      const volatile sig_atomic_t *stop, struct reimage_error *err)
{
	for (size_t i = 0; i < job->n_hooks; i++) {
		int r;
		log_notice("hook %zu of %zu: %s", i + 1, job->n_hooks, job->hooks[i].path);
		if ((r = run_one(job, &job->hooks[i], root, stop, staging, err)) < 0)
			return r;
	}
	return 0;
}
