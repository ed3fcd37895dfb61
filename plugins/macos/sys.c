/*
 * sys.c -- the real seam of the macos backend (see macos.h): the only
 * file that calls the operating system on the backend's behalf.
 *
 * Programs run through posix_spawn, which exists everywhere, so the
 * runner itself is tested on Linux.  The calls that exist only on macOS
 * -- renamex_np, statfs's mount names, libproc, copyfile, F_FULLFSYNC --
 * are compiled under __APPLE__; elsewhere they return -ENOTSUP (reboot
 * too: the plugin never restarts a machine that is not a Mac), except
 * the two renames, which Linux's renameat2 offers with the same contract
 * (RENAME_EXCHANGE, RENAME_NOREPLACE): the backend's moves and exchanges
 * are then tested on temporary directories.
 */
#define _GNU_SOURCE
#include "macos.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __APPLE__
#include <copyfile.h>
#include <libproc.h>
#include <sys/mount.h>
#include <sys/param.h>
#include <sys/reboot.h>
#endif

static int64_t real_now_ms(const struct macos_sys *sys)
{
	struct timespec ts;
	(void)sys;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_sleep_ms(const struct macos_sys *sys, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	(void)sys;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void output_add(struct macos_output *out, const char *buf, size_t n)
{
	size_t room = sizeof(out->text) - 1 - out->len;
	if (n > room)
		n = room;
	memcpy(out->text + out->len, buf, n);
	out->len += n;
	out->text[out->len] = '\0';
}

/* Read the child's output until it closes it or the deadline passes. */
static void collect(const struct macos_sys *sys, int fd, int64_t deadline,
		    struct macos_output *out)
{
	char buf[4096];

	for (;;) {
		int64_t left = deadline - real_now_ms(sys);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (left <= 0)
			return;
		int p = poll(&pfd, 1, left > 100 ? 100 : (int)left);
		if (p < 0 && errno != EINTR)
			return;
		if (p <= 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0)
			output_add(out, buf, (size_t)n);
		else if (n == 0 || (errno != EINTR && errno != EAGAIN))
			return;
	}
}

/* Wait for pid until the deadline; then kill its process group. */
static int reap(const struct macos_sys *sys, pid_t pid, int64_t deadline)
{
	int status;

	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (real_now_ms(sys) >= deadline) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -ETIMEDOUT;
		}
		real_sleep_ms(sys, 10);
	}
	/* Nothing the program started outlives it. */
	kill(-pid, SIGKILL);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static int real_run(const struct macos_sys *sys, const char *const argv[],
		    const char *const envp[], int timeout_s, struct macos_output *out)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int pipefd[2], r;
	pid_t pid;

	out->len = 0;
	out->text[0] = '\0';
	if (pipe(pipefd) < 0)
		return -errno;
	fcntl(pipefd[0], F_SETFD, FD_CLOEXEC);
	fcntl(pipefd[1], F_SETFD, FD_CLOEXEC);
	sigemptyset(&none);
	/* The agent ignores SIGHUP; the program gets the usual handlers. */
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGHUP);
	sigaddset(&dfl, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					       POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	r = posix_spawn(&pid, argv[0], &fa, &attr, (char *const *)argv, (char *const *)envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		return -r;
	}
	int64_t deadline = real_now_ms(sys) + (int64_t)timeout_s * 1000;
	collect(sys, pipefd[0], deadline, out);
	close(pipefd[0]);
	return reap(sys, pid, deadline);
}

static int real_signal(const struct macos_sys *sys, pid_t pid, int sig)
{
	(void)sys;
	return kill(pid, sig) < 0 ? -errno : 0;
}

static int real_console_uid(const struct macos_sys *sys, uid_t *ret)
{
	struct stat st;
	(void)sys;
	if (stat("/dev/console", &st) < 0)
		return -errno;
	*ret = st.st_uid;
	return 0;
}

#ifdef __APPLE__

static int real_rename_swap(const struct macos_sys *sys, const char *a, const char *b)
{
	(void)sys;
	return renamex_np(a, b, RENAME_SWAP) < 0 ? -errno : 0;
}

static int real_rename_excl(const struct macos_sys *sys, const char *from, const char *to)
{
	(void)sys;
	return renamex_np(from, to, RENAME_EXCL) < 0 ? -errno : 0;
}

static int real_volume(const struct macos_sys *sys, const char *path, struct macos_volume *ret)
{
	struct statfs sf;
	(void)sys;
	if (statfs(path, &sf) < 0)
		return -errno;
	ret->read_only = (sf.f_flags & MNT_RDONLY) != 0;
	snprintf(ret->fstype, sizeof(ret->fstype), "%s", sf.f_fstypename);
	snprintf(ret->from, sizeof(ret->from), "%s", sf.f_mntfromname);
	snprintf(ret->on, sizeof(ret->on), "%s", sf.f_mntonname);
	return 0;
}

static int real_procs(const struct macos_sys *sys, struct macos_proc **ret, size_t *ret_n)
{
	int cap = proc_listallpids(NULL, 0), n;
	pid_t *pids;
	struct macos_proc *list;
	size_t count = 0;

	(void)sys;
	if (cap <= 0)
		return -errno;
	cap += 64;  /* processes started meanwhile */
	pids = calloc((size_t)cap, sizeof(*pids));
	list = calloc((size_t)cap, sizeof(*list));
	if (!pids || !list) {
		free(pids);
		free(list);
		return -ENOMEM;
	}
	n = proc_listallpids(pids, cap * (int)sizeof(*pids));
	for (int i = 0; i < n && i < cap; i++) {
		struct proc_bsdinfo bi;
		if (proc_pidinfo(pids[i], PROC_PIDTBSDINFO, 0, &bi, sizeof(bi)) != (int)sizeof(bi))
			continue;  /* gone meanwhile */
		list[count].pid = pids[i];
		list[count].ppid = (pid_t)bi.pbi_ppid;
		list[count].uid = bi.pbi_uid;
		if (proc_name(pids[i], list[count].name, sizeof(list[count].name)) <= 0)
			snprintf(list[count].name, sizeof(list[count].name), "%s", bi.pbi_comm);
		count++;
	}
	free(pids);
	*ret = list;
	*ret_n = count;
	return 0;
}

static int copy_data(const char *src, const char *dst)
{
	return copyfile(src, dst, NULL, COPYFILE_ALL) < 0 ? -errno : 0;
}

static int full_sync_fd(int fd)
{
	/* fsync leaves the data in the drive's cache on macOS; F_FULLFSYNC
	 * on any file of a journaled volume flushes the journal (renames are
	 * metadata) and the cache. */
	return fcntl(fd, F_FULLFSYNC) < 0 ? -errno : 0;
}

static int real_reboot(const struct macos_sys *sys)
{
	(void)sys;
	sync();
	reboot(RB_AUTOBOOT);
	return -errno;
}

#else /* not a Mac: what the backend's tests need, nothing that acts on the machine */

static int real_rename_swap(const struct macos_sys *sys, const char *a, const char *b)
{
	(void)sys;
	return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) < 0 ? -errno : 0;
}

static int real_rename_excl(const struct macos_sys *sys, const char *from, const char *to)
{
	(void)sys;
	return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0 ? -errno : 0;
}

static int real_volume(const struct macos_sys *sys, const char *path, struct macos_volume *ret)
{
	(void)sys; (void)path; (void)ret;
	return -ENOTSUP;
}

static int real_procs(const struct macos_sys *sys, struct macos_proc **ret, size_t *ret_n)
{
	(void)sys; (void)ret; (void)ret_n;
	return -ENOTSUP;
}

static int copy_data(const char *src, const char *dst)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), out, r = 0;
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while (r == 0 && (n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0 && write(out, buf, (size_t)n) != n)
			r = -EIO;
	}
	close(in);
	if (close(out) < 0 && r == 0)
		r = -errno;
	return r;
}

static int full_sync_fd(int fd)
{
	return fsync(fd) < 0 ? -errno : 0;
}

static int real_reboot(const struct macos_sys *sys)
{
	(void)sys;
	return -ENOTSUP;
}

#endif

static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;
	if (fd < 0)
		return -errno;
	r = full_sync_fd(fd);
	close(fd);
	return r;
}

static int real_copy_file(const struct macos_sys *sys, const char *src, const char *dst,
			  mode_t mode)
{
	int r;
	(void)sys;
	if (unlink(dst) < 0 && errno != ENOENT)
		return -errno;
	if ((r = copy_data(src, dst)) < 0)
		return r;
	if (chmod(dst, mode) < 0)
		return -errno;
	return sync_path(dst);
}

static int real_full_sync(const struct macos_sys *sys, const char *path)
{
	(void)sys;
	return sync_path(path);
}

const struct macos_sys macos_sys_real = {
	.run = real_run,
	.rename_swap = real_rename_swap,
	.rename_excl = real_rename_excl,
	.volume = real_volume,
	.procs = real_procs,
	.signal = real_signal,
	.console_uid = real_console_uid,
	.copy_file = real_copy_file,
	.full_sync = real_full_sync,
	.reboot = real_reboot,
	.now_ms = real_now_ms,
	.sleep_ms = real_sleep_ms,
};
