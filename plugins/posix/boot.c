/*
 * boot.c -- BOOT: set the boot parameters of the new image, after SWAP.
 *
 * The job's boot command is a program of the new image (grub-reboot,
 * update-grub, efibootmgr, ...), so it runs inside the new root: the
 * child chroots into boot->root and runs `/bin/sh -c COMMAND`, the shell
 * of the new image, with a clean environment, stdin from /dev/null, its
 * output collected for the log and for the error, killed with its whole
 * process group after boot_timeout.  The job's wishes reach it as
 * REIMAGE_ONE_SHOT (0/1), REIMAGE_KERNEL, REIMAGE_INITRD, REIMAGE_CMDLINE.
 *
 * A kernel named by the job is then loaded with kexec_file_load, so that
 * reboot() starts it directly, skipping the firmware.  Paths resolve
 * inside the root (openat2 RESOLVE_IN_ROOT): /boot/vmlinuz -> vmlinuz-6.1
 * links of the new image point into the new image, never the agent's.
 * Without a command line the running kernel's is reused.  boot.kexec
 * asks for the same without naming the files: boot/vmlinuz, and
 * boot/initrd.img if the image has one (Debian's links to its newest
 * kernel); there a kernel that cannot be loaded (no kexec in the running
 * kernel, Secure Boot, no kernel in the image) is logged and the reboot
 * goes through the firmware, as without kexec.
 */
#define _GNU_SOURCE
#include "posix.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kexec.h>
#include <linux/openat2.h>

#define OUTPUT_TAIL 1024  /* bytes of the command's output kept for errors */
#define BOOT_ENV_MAX 8
/* boot.kexec without boot.kernel: Debian's links to its newest kernel. */
#define DEFAULT_KERNEL "boot/vmlinuz"
#define DEFAULT_INITRD "boot/initrd.img"

struct output {
	char tail[OUTPUT_TAIL];
	size_t len;
};

/* Keep the last OUTPUT_TAIL bytes: the reason of a failure is at the end. */
static void output_add(struct output *o, const char *buf, size_t n)
{
	if (n >= sizeof(o->tail)) {
		memcpy(o->tail, buf + n - sizeof(o->tail) + 1, sizeof(o->tail) - 1);
		o->len = sizeof(o->tail) - 1;
	} else {
		if (o->len + n >= sizeof(o->tail)) {
			size_t drop = o->len + n - (sizeof(o->tail) - 1);
			memmove(o->tail, o->tail + drop, o->len - drop);
			o->len -= drop;
		}
		memcpy(o->tail + o->len, buf, n);
		o->len += n;
	}
	o->tail[o->len] = '\0';
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child: everything it needs was built before fork(), so it only
 * makes system calls until execve. */
static void __attribute__((noreturn)) exec_in_root(const char *root, int in, int out,
						   char *const argv[], char *const envp[])
{
	static const char fail[] = "reimage: cannot run /bin/sh in the new root\n";
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigset_t none;

	setpgid(0, 0);
	sigaction(SIGHUP, &dfl, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0 || chroot(root) < 0 ||
	    chdir("/") < 0 || execve("/bin/sh", argv, envp) < 0) {
		ssize_t w = write(2, fail, sizeof(fail) - 1);
		(void)w;
	}
	_exit(127);
}

/* Collect the child's output until it has exited, or kill its process
 * group at the deadline.  Returns its wait status, -ETIMEDOUT, or
 * another negative errno if waiting failed. */
static int supervise(pid_t pid, int out, long long timeout_ms, struct output *o)
{
	long long deadline = now_ms() + timeout_ms;
	int open_out = 1, status = 0;
	char buf[4096];

	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		long long left = deadline - now_ms();
		struct pollfd pfd = { .fd = out, .events = POLLIN };

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (left <= 0) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		if (!open_out) {
			usleep(10000);
			continue;
		}
		if (poll(&pfd, 1, (int)(left < 50 ? left : 50)) > 0) {
			ssize_t n = read(out, buf, sizeof(buf));
			if (n > 0)
				output_add(o, buf, (size_t)n);
			else if (n == 0 || (errno != EINTR && errno != EAGAIN))
				open_out = 0;
		}
	}
	/* What the shell wrote last, if it is still in the pipe. */
	for (ssize_t n; open_out && (n = read(out, buf, sizeof(buf))) > 0;)
		output_add(o, buf, (size_t)n);
	/* Nothing the command started outlives it. */
	kill(-pid, SIGKILL);
	return status;
}

/* Append "name=value" to envp; a NULL value adds nothing. */
static int env_add(char **envp, size_t *n, const char *name, const char *value)
{
	if (!value)
		return 0;
	if (*n == BOOT_ENV_MAX || asprintf(&envp[*n], "%s=%s", name, value) < 0) {
		envp[*n] = NULL;
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

static int run_command(struct posix *px, const struct reimage_boot *boot,
		       struct reimage_error *err)
{
	char *envp[BOOT_ENV_MAX + 1] = { NULL };
	char *argv[] = { "sh", "-c", (char *)boot->command, NULL };
	struct output o = { .len = 0 };
	int pipefd[2] = { -1, -1 }, in = px->null_fd, status, r = 0;
	size_t n = 0;
	pid_t pid;

	if (env_add(envp, &n, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") ||
	    env_add(envp, &n, "HOME", "/") || env_add(envp, &n, "LANG", "C") ||
	    env_add(envp, &n, "REIMAGE_ONE_SHOT", boot->one_shot ? "1" : "0") ||
	    env_add(envp, &n, "REIMAGE_KERNEL", boot->kernel) ||
	    env_add(envp, &n, "REIMAGE_INITRD", boot->initrd) ||
	    env_add(envp, &n, "REIMAGE_CMDLINE", boot->cmdline)) {
		r = posix_fail(px, err, ENOMEM, "boot command");
		goto out;
	}
	if (in < 0 && (in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		r = posix_fail(px, err, errno, "boot command: open /dev/null");
		goto out;
	}
	/* Only the agent's end is non-blocking: the command's writes wait
	 * for room rather than fail. */
	if (pipe2(pipefd, O_CLOEXEC) < 0 || fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0) {
		r = posix_fail(px, err, errno, "boot command: pipe");
		goto out;
	}
	px->host->log(REIMAGE_LOG_INFO, "posix: boot: running '%s' in %s", boot->command,
		      boot->root);
	pid = fork();
	if (pid < 0) {
		r = posix_fail(px, err, errno, "boot command: fork");
		goto out;
	}
	if (pid == 0)
		exec_in_root(boot->root, in, pipefd[1], argv, envp);
	close(pipefd[1]);
	pipefd[1] = -1;
	status = supervise(pid, pipefd[0], (long long)px->boot_timeout * 1000, &o);
	if (o.len)
		px->host->log(REIMAGE_LOG_INFO, "posix: boot: output of '%s':\n%s", boot->command,
			      o.tail);
	if (status == -ETIMEDOUT) {
		px->host->error(err, -ETIMEDOUT, REIMAGE_EC_IO,
				"boot command '%s' still ran after %d s and was killed: %s",
				boot->command, px->boot_timeout, o.tail);
		r = -ETIMEDOUT;
	} else if (status < 0) {
		r = posix_fail(px, err, -status, "boot command '%s': wait", boot->command);
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		px->host->error(err, -EIO, REIMAGE_EC_IO, "boot command '%s' %s %d: %s",
				boot->command, WIFEXITED(status) ? "exited with status" : "killed by signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), o.tail);
		r = -EIO;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(envp[i]);
	if (in >= 0 && in != px->null_fd)
		close(in);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return r;
}

static int open_in_root(struct posix *px, int root_fd, const struct reimage_boot *boot,
			const char *path, struct reimage_error *err)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT };
	int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof(how));

	if (fd < 0)
		return posix_fail(px, err, errno, "boot: open %s in %s", path, boot->root);
	return fd;
}

/* The running kernel's command line, for a job that names none. */
static int current_cmdline(struct posix *px, char *buf, size_t cap, struct reimage_error *err)
{
	int proc_fd = posix_proc_fd(px, err), fd;
	ssize_t n;

	if (proc_fd < 0)
		return proc_fd;
	fd = openat(proc_fd, "cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return posix_fail(px, err, errno, "boot: read /proc/cmdline");
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return posix_fail(px, err, errno, "boot: read /proc/cmdline");
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int load_kernel(struct posix *px, const struct reimage_boot *boot,
		       struct reimage_error *err)
{
	const char *kernel_path = boot->kernel ? boot->kernel : DEFAULT_KERNEL;
	char cmdline[4096];
	unsigned long flags = 0;
	int owned = 0, root_fd, kernel = -1, initrd = -1, r;

	if (boot->cmdline)
		r = snprintf(cmdline, sizeof(cmdline), "%s", boot->cmdline) < (int)sizeof(cmdline)
			    ? 0 : posix_fail(px, err, E2BIG, "boot: kernel command line");
	else
		r = current_cmdline(px, cmdline, sizeof(cmdline), err);
	if (r < 0)
		return r;
	if ((root_fd = posix_root_fd(px, boot->root, &owned, err)) < 0)
		return root_fd;
	if ((kernel = r = open_in_root(px, root_fd, boot, kernel_path, err)) < 0)
		goto out;
	if (boot->initrd || !boot->kernel) {
		initrd = open_in_root(px, root_fd, boot, boot->initrd ? boot->initrd : DEFAULT_INITRD,
				      err);
		/* Only the default may be missing: a kernel without initrd. */
		if (initrd < 0 && (boot->initrd || initrd != -ENOENT)) {
			r = initrd;
			goto out;
		}
		if (initrd < 0)
			memset(err, 0, sizeof(*err));
	}
	if (initrd < 0)
		flags |= KEXEC_FILE_NO_INITRAMFS;
	r = 0;
	if (syscall(SYS_kexec_file_load, kernel, initrd, strlen(cmdline) + 1, cmdline, flags) < 0) {
		int e = errno;
		if (e == EKEYREJECTED || e == EBADMSG || e == ENOKEY) {
			px->host->error(err, -e, REIMAGE_EC_INTEGRITY,
					"boot: kernel %s refused: its signature does not verify "
					"(Secure Boot or lockdown): %s", kernel_path, strerror(e));
			r = -e;
		} else {
			r = posix_fail(px, err, e, "boot: load kernel %s with kexec", kernel_path);
		}
		goto out;
	}
	px->kexec_loaded = 1;
	px->host->log(REIMAGE_LOG_NOTICE, "posix: boot: kernel %s%s loaded; reboot will kexec it",
		      kernel_path, initrd >= 0 ? " and its initrd" : "");
out:
	if (kernel >= 0)
		close(kernel);
	if (initrd >= 0)
		close(initrd);
	if (owned)
		close(root_fd);
	return r;
}

/* A kernel an earlier job of this agent loaded (a job that then failed
 * and was undone) must never start a later job's reboot. */
static void unload_kernel(struct posix *px)
{
	if (!px->kexec_loaded)
		return;
	if (syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, (unsigned long)KEXEC_FILE_UNLOAD) < 0)
		px->host->log(REIMAGE_LOG_WARNING, "posix: boot: unload the kernel an earlier job "
			      "loaded: %s", strerror(errno));
	px->kexec_loaded = 0;
}

int posix_set_boot(void *ctx, const struct reimage_boot *boot, struct reimage_error *err)
{
	struct posix *px = ctx;
	int r;

	unload_kernel(px);

	if (!boot->command && !boot->kernel && !boot->kexec) {
		px->host->log(REIMAGE_LOG_NOTICE, "posix: boot: no command and no kernel: the "
			      "new image boots through the boot loader's default entry");
		return 0;
	}
	if (boot->command && (r = run_command(px, boot, err)) < 0)
		return r;
	if (!boot->kernel && !boot->kexec)
		return 0;
	if ((r = load_kernel(px, boot, err)) < 0 && boot->kexec) {
		px->host->log(REIMAGE_LOG_WARNING, "posix: boot: no kexec (%s); the reboot goes "
			      "through the firmware", err->msg);
		memset(err, 0, sizeof(*err));
		return 0;
	}
	return r;
}
