/*
 * procs.c -- reading /proc and stopping processes, for QUIESCE (logout.c
 * and quiesce.c decide which processes; this file decides how).
 *
 * Safety first: nothing is signalled unless /proc shows the caller's own
 * pid namespace (a /proc of another namespace would name other
 * processes), and the rules that protect the machine -- PID 1, kernel
 * threads, the caller and its ancestors -- are applied here, once, before
 * any selector is asked.
 *
 * Processes are signalled through pidfds: a pid number can be reused by a
 * new process between reading /proc and kill(); a pidfd names the process
 * itself, and poll() on it says when that process has exited, so the
 * waits need neither kill(pid, 0) guesses nor being its parent.
 */
#define _GNU_SOURCE
#include "posix.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PF_KTHREAD 0x00200000UL  /* include/linux/sched.h: a kernel thread */
#define STOP_ROUNDS 4            /* scans for processes started meanwhile */
#define KILL_WAIT_MS 5000        /* how long SIGKILL may take to be reaped */
#define ANCESTORS_MAX 256        /* deeper chains are a loop in a torn read */

/* Read a small /proc file relative to dir; NUL-terminated.  Returns the
 * length or -errno. */
static ssize_t read_at(int dir, const char *path, char *buf, size_t cap)
{
	int fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap - 1);
	if (n < 0)
		n = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

/* Parse "pid (comm) state ppid pgrp session tty tpgid flags ..."; comm
 * may hold spaces and parentheses, so it ends at the last ')'. */
static int parse_stat(char *stat, struct proc_info *p)
{
	char *open = strchr(stat, '('), *close = strrchr(stat, ')');
	size_t n;

	if (!open || !close || close < open)
		return -EINVAL;
	n = (size_t)(close - open - 1);
	if (n >= sizeof(p->comm))
		n = sizeof(p->comm) - 1;
	memcpy(p->comm, open + 1, n);
	p->comm[n] = '\0';
	if (sscanf(close + 1, " %c %d %*d %*d %*d %*d %lu", &p->state, &p->ppid, &p->flags) != 3)
		return -EINVAL;
	return 0;
}

/* Read what the stop loop needs about pid.  -ENOENT if it is gone. */
static int proc_read(int proc_fd, pid_t pid, struct proc_info *p)
{
	char path[64], buf[4096];
	const char *uid;
	ssize_t n;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	snprintf(path, sizeof(path), "%d/stat", (int)pid);
	if ((n = read_at(proc_fd, path, buf, sizeof(buf))) < 0)
		return (int)n;
	if (parse_stat(buf, p) < 0)
		return -ENOENT;
	snprintf(path, sizeof(path), "%d/status", (int)pid);
	if ((n = read_at(proc_fd, path, buf, sizeof(buf))) < 0)
		return (int)n;
	uid = strstr(buf, "\nUid:");
	if (!uid || sscanf(uid + 5, "%u", &p->uid) != 1)
		return -ENOENT;
	/* No audit in the kernel: no loginuid file, no login uid. */
	p->loginuid = POSIX_UID_UNSET;
	snprintf(path, sizeof(path), "%d/loginuid", (int)pid);
	if (read_at(proc_fd, path, buf, sizeof(buf)) > 0)
		sscanf(buf, "%u", &p->loginuid);
	snprintf(path, sizeof(path), "%d/cgroup", (int)pid);
	if (read_at(proc_fd, path, buf, sizeof(buf)) > 0)
		proc_unit_of_cgroup(buf, p->unit, sizeof(p->unit));
	return 0;
}

/* /proc must be the caller's own pid namespace's: there /proc/self names
 * getpid().  Another /proc (the host's, seen from a container, or an old
 * mount after unshare) would make every pid read from it name a stranger. */
int posix_check_own_namespace(struct posix *px, const char *what, struct reimage_error *err)
{
	char self[32];
	int proc_fd = posix_proc_fd(px, err);
	ssize_t n;

	if (proc_fd < 0)
		return proc_fd;
	n = readlinkat(proc_fd, "self", self, sizeof(self) - 1);
	if (n < 0)
		return posix_fail(px, err, errno, "%s: read /proc/self", what);
	self[n] = '\0';
	if (strtol(self, NULL, 10) != (long)getpid()) {
		px->host->error(err, -EPERM, REIMAGE_EC_STATE,
				"%s: refusing to stop processes: /proc shows pid %s for this "
				"process, which is %d (/proc belongs to another pid namespace)",
				what, self, (int)getpid());
		return -EPERM;
	}
	return 0;
}

struct protected_set {
	pid_t pid[ANCESTORS_MAX + 1];
	size_t n;
};

/* The caller and its ancestors, up to PID 1 (itself always protected). */
static void find_protected(int proc_fd, struct protected_set *set)
{
	struct proc_info p;
	pid_t pid = getpid();

	set->n = 0;
	while (pid > 1 && set->n <= ANCESTORS_MAX) {
		set->pid[set->n++] = pid;
		if (proc_read(proc_fd, pid, &p) < 0)
			break;
		pid = p.ppid;
	}
}

static int is_protected(const struct protected_set *set, const struct proc_info *p)
{
	/* Kernel threads carry PF_KTHREAD; kthreadd, their parent, has no
	 * parent at all (ppid 0), as has a process that entered this pid
	 * namespace from outside: spared too.  Pid 2 is kthreadd only in the
	 * machine's first namespace, so it is not a rule by number. */
	if (p->pid == 1 || p->ppid == 0 || (p->flags & PF_KTHREAD) || p->state == 'Z')
		return 1;
	for (size_t i = 0; i < set->n; i++)
		if (set->pid[i] == p->pid)
			return 1;
	return 0;
}

struct victim {
	int pidfd;
	pid_t pid;
	char comm[16];
	int exited;
};

struct victims {
	struct victim *v;
	size_t n, cap;
};

static int open_pidfd(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

static int pidfd_exited(int pidfd)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
	return poll(&pfd, 1, 0) > 0;
}

static int add_victim(struct victims *vs, int pidfd, const struct proc_info *p)
{
	if (vs->n == vs->cap) {
		size_t cap = vs->cap ? vs->cap * 2 : 64;
		struct victim *v = realloc(vs->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		vs->v = v;
		vs->cap = cap;
	}
	vs->v[vs->n] = (struct victim){ .pidfd = pidfd, .pid = p->pid };
	memcpy(vs->v[vs->n].comm, p->comm, sizeof(p->comm));
	vs->n++;
	return 0;
}

static void release_victims(struct victims *vs)
{
	for (size_t i = 0; i < vs->n; i++)
		close(vs->v[i].pidfd);
	vs->n = 0;
}

/* One scan of /proc: a pidfd for every process to stop.  The pidfd is
 * opened before the process is read, and the process is taken only if it
 * is still alive after the read, so what was read is the pidfd's. */
static int collect(struct posix *px, int proc_fd, const struct protected_set *set,
		   proc_select_fn select, struct victims *vs, const char *what,
		   struct reimage_error *err)
{
	int dfd = openat(proc_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *dir;
	int r = 0;

	if (dfd < 0 || !(dir = fdopendir(dfd))) {
		r = posix_fail(px, err, errno, "%s: list /proc", what);
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	while (r == 0 && (de = readdir(dir))) {
		struct proc_info p;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		int pidfd;

		if (!isdigit((unsigned char)de->d_name[0]) || *end || pid <= 1)
			continue;
		pidfd = open_pidfd((pid_t)pid);
		if (pidfd < 0) {
			/* Gone since the scan: ESRCH once its pid is freed;
			 * EINVAL while the pid outlives its process (still a
			 * group or session id, or reaped inside the call). */
			if (errno == ESRCH || errno == EINVAL)
				continue;
			/* Out of descriptors: stop this batch; the next round
			 * takes the rest. */
			if ((errno == EMFILE || errno == ENFILE) && vs->n > 0)
				break;
			r = posix_fail(px, err, errno, "%s: pidfd_open %ld%s", what, pid,
				       errno == ENOSYS ? " (Linux 5.3 or later is needed)" : "");
			break;
		}
		if (proc_read(proc_fd, (pid_t)pid, &p) < 0 || pidfd_exited(pidfd) ||
		    is_protected(set, &p) || !select(px, &p)) {
			close(pidfd);
			continue;
		}
		if (add_victim(vs, pidfd, &p) < 0) {
			close(pidfd);
			r = posix_fail(px, err, ENOMEM, "%s", what);
		}
	}
	closedir(dir);
	return r;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until every victim has exited or timeout_ms has passed; returns
 * how many are still alive. */
static size_t wait_exits(struct victims *vs, long long timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct pollfd *pfd = calloc(vs->n ? vs->n : 1, sizeof(*pfd));
	size_t alive;

	for (;;) {
		size_t k = 0;
		alive = 0;
		for (size_t i = 0; i < vs->n; i++) {
			if (!vs->v[i].exited && pidfd_exited(vs->v[i].pidfd))
				vs->v[i].exited = 1;
			if (vs->v[i].exited)
				continue;
			alive++;
			if (pfd)
				pfd[k++] = (struct pollfd){ .fd = vs->v[i].pidfd, .events = POLLIN };
		}
		long long left = deadline - now_ms();
		if (alive == 0 || left <= 0)
			break;
		/* Without memory for the poll set, sleep in short steps. */
		if (pfd)
			poll(pfd, k, (int)(left < 100 ? left : 100));
		else
			usleep(10000);
	}
	free(pfd);
	return alive;
}

static void signal_alive(struct victims *vs, int sig)
{
	for (size_t i = 0; i < vs->n; i++)
		if (!vs->v[i].exited)
			pidfd_signal(vs->v[i].pidfd, sig);
}

/* Log what outlived SIGKILL: stuck in the kernel (D state); the swap
 * works with them running, so this is not an error. */
static void log_survivors(struct posix *px, const struct victims *vs, const char *what)
{
	for (size_t i = 0; i < vs->n; i++)
		if (!vs->v[i].exited)
			px->host->log(REIMAGE_LOG_WARNING, "posix: %s: process %d (%s) outlived SIGKILL",
				      what, (int)vs->v[i].pid, vs->v[i].comm);
}

int posix_stop_processes(struct posix *px, const char *what, proc_select_fn select,
			 struct reimage_error *err)
{
	struct protected_set set;
	struct victims vs = { 0 };
	int proc_fd, r = 0;

	if ((r = posix_check_own_namespace(px, what, err)) < 0)
		return r;
	proc_fd = px->proc_fd;
	find_protected(proc_fd, &set);
	for (int round = 0; round < STOP_ROUNDS; round++) {
		if ((r = collect(px, proc_fd, &set, select, &vs, what, err)) < 0 || vs.n == 0)
			break;
		px->host->log(REIMAGE_LOG_INFO, "posix: %s: stopping %zu processes", what, vs.n);
		signal_alive(&vs, SIGTERM);
		/* A stopped process acts on SIGTERM only once continued. */
		signal_alive(&vs, SIGCONT);
		if (wait_exits(&vs, (long long)px->grace_seconds * 1000) > 0) {
			signal_alive(&vs, SIGKILL);
			if (wait_exits(&vs, KILL_WAIT_MS) > 0)
				log_survivors(px, &vs, what);
		}
		release_victims(&vs);
	}
	release_victims(&vs);
	free(vs.v);
	return r;
}
