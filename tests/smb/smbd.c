/*
 * smbd.c -- the smb tests' own smbd (see smbd.h).  Nothing of the
 * machine's Samba is used: the configuration, the passdb and every
 * state, lock, cache and pid directory live in the case's scratch dir.
 */
#define _GNU_SOURCE
#include "smbd.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SMBD_BIN "/usr/sbin/smbd"
#define START_WAIT_MS 20000
#define START_ATTEMPTS 5
#define STOP_WAIT_MS 5000
#define POLL_MS 50

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int port_accepts(int port)
{
	struct sockaddr_in a = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void write_conf(const char *conf, int port, const char *extra)
{
	char *text;
	const char *d = t_dir();

	if (asprintf(&text,
		     "[global]\n"
		     "server role = standalone server\n"
		     "workgroup = REIMAGETEST\n"
		     "netbios name = REIMAGETEST\n"
		     "smb ports = %d\n"
		     "interfaces = lo\n"
		     "bind interfaces only = yes\n"
		     "disable netbios = yes\n"
		     "server min protocol = SMB2_02\n"
		     "private dir = %s/smbd/private\n"
		     "lock directory = %s/smbd/lock\n"
		     "state directory = %s/smbd/state\n"
		     "cache directory = %s/smbd/cache\n"
		     "pid directory = %s/smbd/pid\n"
		     "ncalrpc dir = %s/smbd/ncalrpc\n"
		     "usershare path = %s/smbd/usershares\n"
		     "log file = %s/smbd/log\n"
		     "max log size = 0\n"
		     "passdb backend = tdbsam:%s/smbd/private/passdb.tdb\n"
		     "map to guest = bad user\n"
		     "load printers = no\n"
		     "printing = bsd\n"
		     "printcap name = /dev/null\n"
		     "disable spoolss = yes\n"
		     "%s"
		     "\n[public]\n"
		     "path = %s/public\n"
		     "guest ok = yes\n"
		     "read only = no\n"
		     "force user = root\n"
		     "\n[private]\n"
		     "path = %s/private\n"
		     "valid users = " SMBD_USER "\n"
		     "read only = no\n"
		     "force user = root\n",
		     port, d, d, d, d, d, d, d, d, d, extra, d, d) < 0)
		abort();
	t_write(conf, text);
	free(text);
}

static void make_dirs(void)
{
	static const char *const dirs[] = { "smbd", "smbd/private", "smbd/lock", "smbd/state",
					    "smbd/cache", "smbd/pid", "smbd/ncalrpc",
					    "smbd/usershares", "public", "private" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		CU_ASSERT_FATAL(mkdir(t_path("%s", dirs[i]), 0700) == 0);
}

static pid_t spawn(const char *conf)
{
	pid_t pid = fork();

	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* smbd ends by signalling its whole process group (kill(0,
		 * SIGTERM)): give it one of its own, away from the test. */
		int fd = open(t_path("smbd/out"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (setpgid(0, 0) < 0 || fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		execl(SMBD_BIN, "smbd", "--foreground", "--no-process-group", "--debug-stdout",
		      "-d", "1", "-s", conf, (char *)NULL);
		_exit(127);
	}
	return pid;
}

void smbd_start(struct smbd *s)
{
	smbd_start_with(s, "");
}

void smbd_start_with(struct smbd *s, const char *extra)
{
	char conf[4096];
	int status;

	if (access(SMBD_BIN, X_OK) != 0)
		t_skip("%s not installed (Debian package samba)", SMBD_BIN);
	make_dirs();
	/* A copy: t_path()'s buffers rotate. */
	snprintf(conf, sizeof(conf), "%s", t_path("smbd/smb.conf"));
	s->port = free_port();
	write_conf(conf, s->port, extra);
	/* The account of the private share, in this test's passdb only. */
	CU_ASSERT_EQUAL_FATAL(t_sh("printf '%%s\\n%%s\\n' '%s' '%s' | smbpasswd -c '%s' -a -s %s "
				   ">'%s' 2>&1",
				   SMBD_PASSWORD, SMBD_PASSWORD, conf, SMBD_USER,
				   t_path("smbd/smbpasswd.out")),
			      0);
	/* A port another test's server took between free_port() and smbd's
	 * bind: smbd ends, and is started again on another. */
	for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
		if (attempt > 0) {
			s->port = free_port();
			write_conf(conf, s->port, extra);
		}
		s->pid = spawn(conf);
		for (int waited = 0; !(port_accepts(s->port) && t_port_served_by(s->port, s->pid));
		     waited += POLL_MS) {
			int died = waitpid(s->pid, &status, WNOHANG) == s->pid;
			if (died || waited >= START_WAIT_MS) {
				char *out = t_read(t_path("smbd/out"));
				fprintf(stderr, "smbd did not start on port %d:\n%s\n", s->port,
					out ? out : "(no output)");
				free(out);
				if (died)
					s->pid = 0;  /* reaped: its PID is no longer ours */
				smbd_stop(s);
				break;
			}
			sleep_ms(POLL_MS);
		}
		if (s->pid > 0)
			return;
	}
	CU_FAIL_FATAL("smbd did not start");
}

void smbd_stop(struct smbd *s)
{
	int status;

	if (s->pid <= 0)
		return;
	kill(s->pid, SIGTERM);
	for (int waited = 0; waitpid(s->pid, &status, WNOHANG) == 0; waited += POLL_MS) {
		if (waited >= STOP_WAIT_MS) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			break;
		}
		sleep_ms(POLL_MS);
	}
	s->pid = 0;
}
