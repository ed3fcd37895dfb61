/*
 * procs_util.c -- see procs_util.h.
 */
#define _GNU_SOURCE
#include "procs_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void wait_forever(void)
{
	for (int i = 0; i < 600; i++)  /* bounded: 10 minutes at most */
		sleep(1);
	_exit(0);
}

static void spawn_on_term(int sig)
{
	sigset_t set;

	(void)sig;
	if (fork() == 0) {
		/* Still inside the handler, with SIGTERM blocked: reset both. */
		signal(SIGTERM, SIG_DFL);
		sigemptyset(&set);
		sigprocmask(SIG_SETMASK, &set, NULL);
		prctl(PR_SET_NAME, "t-spawned");
		wait_forever();
	}
	_exit(0);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

int clear_loginuid(void)
{
	char buf[32] = "";
	int fd;

	write_file("/proc/self/loginuid", "4294967295");
	fd = open("/proc/self/loginuid", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;  /* no audit: no loginuid at all */
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = '\0';
	close(fd);
	return strcmp(buf, "4294967295") == 0 ? 0 : -1;
}

int spawn_victim(const char *name, enum victim_kind kind, uid_t uid)
{
	struct pollfd pfd;
	int ready[2];
	char c;
	pid_t pid;

	if (pipe(ready) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(ready[0]);
		prctl(PR_SET_NAME, name);
		if (kind == V_IGNORE_TERM)
			signal(SIGTERM, SIG_IGN);
		if (kind == V_FORK_ON_TERM)
			signal(SIGTERM, spawn_on_term);
		if (kind == V_SET_LOGINUID && write_file("/proc/self/loginuid", "0") < 0)
			_exit(1);
		if (uid != 0 && setuid(uid) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		close(ready[1]);
		wait_forever();
	}
	close(ready[1]);
	pfd = (struct pollfd){ .fd = ready[0], .events = POLLIN };
	int ok = poll(&pfd, 1, 10000) == 1 && read(ready[0], &c, 1) == 1;
	close(ready[0]);
	if (!ok)
		fprintf(stderr, "test process %s did not get ready\n", name);
	return ok ? 0 : -1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One "alive=COMM" line per process of /proc that is not a zombie. */
static void report_alive(FILE *out)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char path[300], stat[512], *close_paren, *open_paren;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(stat, sizeof(stat), f) && (open_paren = strchr(stat, '(')) &&
		    (close_paren = strrchr(stat, ')')) && close_paren[2] != 'Z') {
			*close_paren = '\0';
			fprintf(out, "alive=%s\n", open_paren + 1);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
}

static int agent(const char *conf, const char *dir, const char *phase, int out)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	FILE *f = fdopen(out, "w");
	long long start;
	int r;

	prctl(PR_SET_NAME, "t-agent");
	if (!f)
		return 1;
	if ((r = fx_load(&fx, conf, &err)) == 0)
		r = fx.ops->prepare(fx.ctx, dir, &err);
	start = now_ms();
	if (r == 0)
		r = strcmp(phase, "logout") == 0 ? fx.ops->logout(fx.ctx, dir, &err)
						 : fx.ops->quiesce(fx.ctx, dir, &err);
	fprintf(f, "rc=%d ms=%lld\nerr=%s\n", r, now_ms() - start, err.msg);
	report_alive(f);
	fclose(f);
	return 0;  /* the parent judges the report */
}

int run_agent(const char *conf, const char *dir, const char *phase, int out)
{
	int status;
	pid_t shell = fork();

	if (shell < 0)
		return 1;
	if (shell == 0) {
		pid_t a;
		prctl(PR_SET_NAME, "t-shell");
		a = fork();
		if (a == 0)
			_exit(agent(conf, dir, phase, out));
		_exit(a > 0 && waitpid(a, &status, 0) == a && WIFEXITED(status) ?
			      WEXITSTATUS(status) : 1);
	}
	if (waitpid(shell, &status, 0) != shell || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}

char *read_available(int fd)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap + 1);
	ssize_t n;

	if (!buf)
		abort();
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

int alive(const char *report, const char *comm)
{
	char line[64];
	snprintf(line, sizeof(line), "alive=%s\n", comm);
	return strstr(report, line) != NULL;
}
