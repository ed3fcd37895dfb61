/*
 * test_service.c -- the agent as a systemd service: what it tells the
 * manager on $NOTIFY_SOCKET (READY=1 once it polls, STATUS= with the
 * job's phase, WATCHDOG=1 pings while idle and while a job runs), and
 * SIGHUP, which reads the agent file again between jobs, refuses a
 * broken one with its error, waits for a running job -- and never ends
 * the agent.  The manager's socket is the test's own datagram socket.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "http/servers.h"
#include "fleet.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A datagram socket at t_path("notify.sock"), named in the agent's
 * environment with a watchdog of 0.4 s (pings every 0.2 s at most). */
static int manager_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t_path("notify.sock"));
	unlink(sa.sun_path);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	setenv("WATCHDOG_USEC", "400000", 1);
	return fd;
}

static pid_t start_notified(int i)
{
	pid_t pid = agent_start(i, 0);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	return pid;
}

/* Read notifications until one holds want (1), or seconds pass (0).
 * *seen (may be NULL) counts the WATCHDOG=1 ones read meanwhile. */
static int notified(int fd, const char *want, int seconds, int *seen)
{
	char msg[1024];
	for (int i = 0; i < seconds * 10; i++) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			continue;
		msg[n] = '\0';
		if (seen && strstr(msg, "WATCHDOG=1"))
			(*seen)++;
		if (strstr(msg, want))
			return 1;
	}
	return 0;
}

static int log_has(int i, const char *text)
{
	char *log = t_read(t_path("pc-%d/agent.log", i));
	int r = log && strstr(log, text);
	free(log);
	return r;
}

static void stop_agent(pid_t pid)
{
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(agent_wait(pid, 30), 0);
}

TEST_CASE(notify_ready_status_watchdog)
{
	struct fleet f;
	int pings = 0;
	fleet_setup(&f, 1, 1, NULL);
	int fd = manager_socket();
	submit(&f, t_path("admin.key"), "--agents pc-1");
	pid_t pid = start_notified(1);
	CU_ASSERT(notified(fd, "READY=1", 60, NULL));
	/* The phase of the job in STATUS=, pings while it stages. */
	CU_ASSERT(notified(fd, "STATUS=job test-job: STAGE running", 60, NULL));
	for (int k = 0; k < 3; k++)
		CU_ASSERT(notified(fd, "WATCHDOG=1", 10, &pings));
	CU_ASSERT(report_shows(1, "\"STAGE\"", "\"running\"", 1));
	CU_ASSERT_EQUAL(pings, 3);
	stop_agent(pid);
	CU_ASSERT(notified(fd, "STOPPING=1", 10, NULL));
	close(fd);
	server_stop(f.ng.pid);
}

/* A manager that never reads its socket (its queue holds 10 datagrams):
 * the agent still runs its job through to the swap, both boots, and
 * stops; what did not fit is lost, never waited for without end. */
TEST_CASE(manager_not_reading_never_blocks)
{
	struct fleet f;
	fleet_setup(&f, 1, 0, NULL);
	int fd = manager_socket();
	submit(&f, t_path("admin.key"), "--agents pc-1");
	for (int boot = 0; boot < 2; boot++)
		CU_ASSERT_EQUAL(agent_once(1), 0);
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	CU_ASSERT(report_shows(1, "\"committed\"", NULL, 1));
	/* It did talk to the manager: the queue is full. */
	int queued = 0;
	while (recv(fd, (char[1024]){ 0 }, 1024, MSG_DONTWAIT) > 0)
		queued++;
	CU_ASSERT(queued >= 10);
	close(fd);
	server_stop(f.ng.pid);
}

TEST_CASE(sighup_reloads_between_jobs)
{
	struct fleet f;
	fleet_setup(&f, 1, 1, NULL);
	int fd = manager_socket();
	pid_t pid = start_notified(1);
	CU_ASSERT_FATAL(notified(fd, "READY=1", 60, NULL));
	/* Idle: read again, ready again, still running. */
	kill(pid, SIGHUP);
	CU_ASSERT(notified(fd, "RELOADING=1", 10, NULL));
	CU_ASSERT(notified(fd, "READY=1", 30, NULL));
	CU_ASSERT(log_has(1, "SIGHUP: read "));
	CU_ASSERT_EQUAL(waitpid(pid, NULL, WNOHANG), 0);
	/* A broken file: refused with its error, the running settings kept. */
	CU_ASSERT_EQUAL(t_sh("cp '%s' '%s.good' && echo 'poll_interval = \"x\";' >>'%s'",
			     agent_file(1), agent_file(1), agent_file(1)), 0);
	kill(pid, SIGHUP);
	CU_ASSERT(notified(fd, "READY=1", 30, NULL));
	CU_ASSERT(log_has(1, "keeping the running settings"));
	CU_ASSERT(log_has(1, "agent.conf"));
	CU_ASSERT_EQUAL(waitpid(pid, NULL, WNOHANG), 0);
	CU_ASSERT_EQUAL(t_sh("mv '%s.good' '%s'", agent_file(1), agent_file(1)), 0);
	/* During a job: the reload waits for it; the job goes on. */
	submit(&f, t_path("admin.key"), "--agents pc-1");
	CU_ASSERT_FATAL(report_shows(1, "\"STAGE\"", "\"running\"", 60));
	kill(pid, SIGHUP);
	for (int k = 0; k < 100 && !log_has(1, "is running; the agent file is read again"); k++)
		CU_ASSERT(notified(fd, "WATCHDOG=1", 10, NULL));
	CU_ASSERT(log_has(1, "SIGHUP: job test-job is running; the agent file is read again"));
	CU_ASSERT_EQUAL(waitpid(pid, NULL, WNOHANG), 0);
	stop_agent(pid);
	if (CU_get_number_of_failures())
		show_log(1);
	close(fd);
	server_stop(f.ng.pid);
}
