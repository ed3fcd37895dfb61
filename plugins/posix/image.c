/*
 * image.c -- image_attach/image_detach for Linux (see image.h).
 *
 * A child process takes a private mount namespace, binds the verified
 * image file to a loop device (read-only, autoclear: LOOP_CONFIGURE,
 * Linux 5.8) and mounts it read-only, nosuid, nodev, noexec on the
 * scratch directory -- visible in its namespace only.  The agent reads
 * the tree through /proc/<child>/root/<scratch>, which resolves in the
 * child's namespace.  The child then waits for the agent to close a pipe.
 * Detached afterwards whatever happens: when the pipe closes (detach, or
 * the agent's death) or the child dies (PR_SET_PDEATHSIG), its namespace
 * goes, the mount with it, and autoclear frees the loop device.  Nothing
 * is mounted in the agent's own namespace; no program is run.
 */
#define _GNU_SOURCE
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const posix_image_kinds[] = { "ext4", "raw", NULL };

struct posix_image {
	pid_t pid;
	int keep_fd;   /* closing it lets the child end */
};

/* What the child reports once the mount is in place (or why not). */
struct attach_status {
	int error;     /* errno, 0 on success */
	char msg[256];
};

static int child_fail(struct attach_status *st, int e, const char *fmt, const char *arg)
{
	st->error = e;
	snprintf(st->msg, sizeof(st->msg), fmt, arg);
	return -e;
}

/* A loop device bound read-only to fd; returns its open descriptor. */
static int loop_attach(int fd, char *dev, size_t len, struct attach_status *st)
{
	struct loop_config cfg;
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);

	if (ctl < 0)
		return child_fail(st, errno, "open %s", "/dev/loop-control");
	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = (unsigned)fd;
	cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
	/* Another process may take the free device first: a few tries. */
	for (int attempt = 0; attempt < 8; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE), loop;
		if (n < 0)
			break;
		snprintf(dev, len, "/dev/loop%d", n);
		if ((loop = open(dev, O_RDONLY | O_CLOEXEC)) < 0)
			break;
		if (ioctl(loop, LOOP_CONFIGURE, &cfg) == 0) {
			close(ctl);
			return loop;
		}
		int e = errno;
		close(loop);
		if (e != EBUSY) {
			close(ctl);
			return child_fail(st, e, "configure %s", dev);
		}
	}
	int e = errno ? errno : EBUSY;
	close(ctl);
	return child_fail(st, e, "no free loop device (%s)", "/dev/loop-control");
}

/* Journal replay would write: ext3/4 and xfs are told not to. */
static const char *ro_options(const char *type)
{
	if (!strcmp(type, "ext3") || !strcmp(type, "ext4"))
		return "noload";
	if (!strcmp(type, "xfs"))
		return "norecovery";
	return "";
}

static int try_mount(const char *dev, const char *dir, const char *type)
{
	return mount(dev, dir, type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		     ro_options(type));
}

/* "raw": each block file system the kernel knows, as mount(8) does
 * without a type: wrong types answer EINVAL. */
static int mount_any(const char *dev, const char *dir, struct attach_status *st)
{
	char line[128];
	FILE *f = fopen("/proc/filesystems", "re");
	int e = EINVAL;

	if (!f)
		return child_fail(st, errno, "open %s", "/proc/filesystems");
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "nodev", 5) == 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		const char *type = line + strspn(line, " \t");
		if (try_mount(dev, dir, type) == 0) {
			fclose(f);
			return 0;
		}
		if (errno != EINVAL)
			e = errno;
	}
	fclose(f);
	return child_fail(st, e, "%s: no file system the kernel knows", dev);
}

static int child_mount(const char *image, const char *kind, const char *dir,
		       struct attach_status *st)
{
	char dev[64];
	int fd, loop, r;

	/* Private: the mount never shows in the agent's namespace. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return child_fail(st, errno, "private mount namespace%s", "");
	if ((fd = open(image, O_RDONLY | O_CLOEXEC)) < 0)
		return child_fail(st, errno, "open %s", image);
	loop = loop_attach(fd, dev, sizeof(dev), st);
	close(fd);
	if (loop < 0)
		return loop;
	if (!strcmp(kind, "ext4"))
		r = try_mount(dev, dir, "ext4") < 0 ? child_fail(st, errno, "mount %s as ext4", dev) : 0;
	else
		r = mount_any(dev, dir, st);
	/* The mount holds the device now; autoclear frees it after. */
	close(loop);
	return r;
}

int posix_image_attach(const struct reimage_host *host, const char *image, const char *kind,
		       const char *scratch, char *ret_tree, size_t tree_cap, void **ret_handle,
		       struct reimage_error *err)
{
	struct attach_status st = { 0 };
	struct posix_image *h;
	int status[2], keep[2];
	pid_t parent = getpid(), pid;
	ssize_t n;

	if (strcmp(kind, "ext4") && strcmp(kind, "raw")) {
		host->error(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			    "%s images cannot be opened on Linux; give the image as ext4, raw, "
			    "squashfs, an archive or a mounted tree (dir:PATH)", kind);
		return -ENOTSUP;
	}
	if (!(h = calloc(1, sizeof(*h)))) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if (pipe2(status, O_CLOEXEC) < 0) {
		free(h);
		host->error(err, -errno, REIMAGE_EC_IO, "pipe: %s", strerror(errno));
		return -errno;
	}
	if (pipe2(keep, O_CLOEXEC) < 0) {
		int e = errno;
		close(status[0]);
		close(status[1]);
		free(h);
		host->error(err, -e, REIMAGE_EC_IO, "pipe: %s", strerror(e));
		return -e;
	}
	if ((pid = fork()) == 0) {
		char c;
		close(status[0]);
		close(keep[1]);
		/* Dies with the agent, even between fork and here. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		int r = child_mount(image, kind, scratch, &st);
		if (write(status[1], &st, sizeof(st)) != (ssize_t)sizeof(st) || r < 0)
			_exit(1);
		close(status[1]);
		while (read(keep[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(status[1]);
	close(keep[0]);
	if (pid < 0) {
		int e = errno;
		close(status[0]);
		close(keep[1]);
		free(h);
		host->error(err, -e, REIMAGE_EC_IO, "fork: %s", strerror(e));
		return -e;
	}
	do
		n = read(status[0], &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	close(status[0]);
	h->pid = pid;
	h->keep_fd = keep[1];
	if (n != (ssize_t)sizeof(st) || st.error) {
		int e = n != (ssize_t)sizeof(st) ? EIO : st.error;
		posix_image_detach(host, h);
		host->error(err, -e, e == EPERM || e == EACCES ? REIMAGE_EC_ACCESS : REIMAGE_EC_IO,
			    "open %s image %s: %s: %s", kind, image,
			    n == (ssize_t)sizeof(st) ? st.msg : "the helper process died",
			    strerror(e));
		return -e;
	}
	if ((size_t)snprintf(ret_tree, tree_cap, "/proc/%d/root%s", (int)pid, scratch) >= tree_cap) {
		posix_image_detach(host, h);
		host->error(err, -ENAMETOOLONG, REIMAGE_EC_IO, "%s: path too long", scratch);
		return -ENAMETOOLONG;
	}
	*ret_handle = h;
	return 0;
}

void posix_image_detach(const struct reimage_host *host, void *handle)
{
	struct posix_image *h = handle;
	int status = 0;
	pid_t r;

	if (!h)
		return;
	/* The child ends when the pipe closes: its namespace and mount go. */
	close(h->keep_fd);
	while ((r = waitpid(h->pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (r == h->pid && (!WIFEXITED(status) || WEXITSTATUS(status) > 1))
		host->log(REIMAGE_LOG_WARNING, "image helper %d ended with status %d", (int)h->pid,
			  status);
	free(h);
}
