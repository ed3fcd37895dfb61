/*
 * servers.c -- nginx and the tiny misbehaving server for the http tests
 * (see servers.h).  Every server is a child of the test process: it dies
 * with the test (PR_SET_PDEATHSIG), and is stopped by its PID, both at
 * the end of a case and, if a fatal assertion cut the case short, at exit.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "servers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS 8
/* The tiny server answers this many connections at most. */
#define TINY_MAX_CONNECTIONS 16

static pid_t running[MAX_SERVERS];

static void stop_all(void)
{
	for (size_t i = 0; i < MAX_SERVERS; i++)
		if (running[i] > 0)
			server_stop(running[i]);
}

static void track(pid_t pid)
{
	static int registered;

	if (!registered && atexit(stop_all) == 0)
		registered = 1;
	for (size_t i = 0; i < MAX_SERVERS; i++)
		if (running[i] <= 0) {
			running[i] = pid;
			return;
		}
	CU_FAIL_FATAL("too many servers");
}

/* A server that ended and was reaped: its PID is no longer ours. */
static void untrack(pid_t pid)
{
	for (size_t i = 0; i < MAX_SERVERS; i++)
		if (running[i] == pid)
			running[i] = 0;
}

void server_stop(pid_t pid)
{
	untrack(pid);
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* In a child: die with the test process, whatever happens to it. */
static void child_bound_to_parent(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
}

static int listen_socket(int *ret_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CU_ASSERT_FATAL(listen(fd, 16) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

/* 1 once pid accepts connections on port; 0 if it does not within 10 s;
 * -1 if it ended (reaped). */
static int wait_for_port(int port, pid_t pid)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const struct timespec pause = { 0, 25 * 1000 * 1000 };

	for (int i = 0; i < 400; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		/* Answering, and by this server: another test's server may have
		 * taken the port between free_port() and the bind. */
		int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			 t_port_served_by(port, pid);

		close(fd);
		if (ok)
			return 1;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;  /* it died: its error log says why */
		nanosleep(&pause, NULL);
	}
	return 0;
}

/* ------------------------------------------------------------------ TLS */

void tls_make_certs(void)
{
	const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc";

	if (t_sh("command -v openssl >/dev/null") != 0)
		t_skip("openssl is not installed (Debian package openssl)");
	CU_ASSERT_FATAL(mkdir(t_path("tls"), 0700) == 0);
	CU_ASSERT_FATAL(t_sh("cd '%s' && exec >openssl.log 2>&1 && "
			     "openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 "
			     "-subj '/CN=reimage test CA' && "
			     "openssl req %s -keyout server.key -out server.csr -subj '/CN=127.0.0.1' && "
			     "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' >server.ext && "
			     "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
			     "-out server.pem -days 2 -extfile server.ext && "
			     "openssl req %s -keyout client.key -out client.csr -subj '/CN=reimage agent' && "
			     "printf 'extendedKeyUsage=clientAuth\\n' >client.ext && "
			     "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
			     "-out client.pem -days 2 -extfile client.ext",
			     t_path("tls"), ec, ec, ec) == 0);
}

char *tls_pin_of(const char *cert)
{
	char *out = NULL, *pin;
	int st = t_sh_out(&out, "openssl x509 -in '%s' -pubkey -noout | openssl pkey -pubin -outform der"
			  " | openssl dgst -sha256 -binary | openssl base64 -A", cert);

	CU_ASSERT_FATAL(st == 0);
	CU_ASSERT_FATAL(asprintf(&pin, "sha256//%s", out) > 0);
	free(out);
	return pin;
}

/* ---------------------------------------------------------------- nginx */

static void write_nginx_conf(const struct nginx *n, int tls)
{
	const char *d = t_path("nginx");
	char *tls_lines = NULL, *conf = NULL;

	if (tls)
		CU_ASSERT_FATAL(asprintf(&tls_lines,
			"    listen 127.0.0.1:%d ssl;\n"
			"    ssl_certificate %s;\n"
			"    ssl_certificate_key %s;\n"
			"    ssl_client_certificate %s;\n"
			"    ssl_verify_client optional;\n",
			n->tls_port, TLS_FILE("server.pem"), TLS_FILE("server.key"),
			TLS_FILE("ca.pem")) > 0);
	CU_ASSERT_FATAL(asprintf(&conf,
		"master_process off;\n"
		"error_log %s/error.log info;\n"
		"pid %s/nginx.pid;\n"
		"events { worker_connections 64; }\n"
		"http {\n"
		"  client_body_temp_path %s/body;\n"
		"  proxy_temp_path %s/proxy;\n"
		"  fastcgi_temp_path %s/fastcgi;\n"
		"  uwsgi_temp_path %s/uwsgi;\n"
		"  scgi_temp_path %s/scgi;\n"
		"  log_format reimage '$request_method $uri $status auth=\"$http_authorization\" "
		"test=\"$http_x_reimage_test\" ua=\"$http_user_agent\" conn=$connection';\n"
		"  access_log %s/access.log reimage;\n"
		"  default_type application/octet-stream;\n"
		/* As Debian's mime.types has them: the status page is a page. */
		"  types { text/html html; application/json json; }\n"
		"  server {\n"
		"    listen 127.0.0.1:%d;\n"
		"%s"
		"    root %s;\n"
		"    location /dav/ { dav_methods PUT DELETE; create_full_put_path on; }\n"
		/* The job store's reports listed, as `reimagectl agents` reads them. */
		"    location /dav/store/reports/ { dav_methods PUT DELETE; create_full_put_path on;"
		" autoindex on; autoindex_format json; }\n"
		"    location = /fail { return 500; }\n"
		"    location /slow/ { limit_rate 256k; }\n"
		"    location /mtls/ { if ($ssl_client_verify != SUCCESS) { return 403; } }\n"
		"  }\n"
		"}\n",
		d, d, d, d, d, d, d, d, n->port, tls_lines ? tls_lines : "", t_path("www")) > 0);
	t_write(t_path("nginx/nginx.conf"), conf);
	free(conf);
	free(tls_lines);
}

/* Tries at starting a server on a port free_port() gave. */
#define SPAWN_ATTEMPTS 5

static pid_t spawn_try(char *const argv[], int port, const char *log);

void nginx_start(struct nginx *n, int tls)
{
	char conf[4096], prefix[4096], log[4096];

	if (t_sh("command -v nginx >/dev/null") != 0)
		t_skip("nginx is not installed (Debian package nginx-light)");
	mkdir(t_path("www"), 0755);
	CU_ASSERT_FATAL(mkdir(t_path("nginx"), 0700) == 0);
	snprintf(prefix, sizeof(prefix), "%s/", t_path("nginx"));
	snprintf(conf, sizeof(conf), "%s", t_path("nginx/nginx.conf"));
	snprintf(log, sizeof(log), "%s", t_path("nginx/error.log"));
	char *const argv[] = { "nginx", "-p", prefix, "-c", conf, "-e", log, "-g", "daemon off;",
			       NULL };
	/* A port another test's server took before nginx bound it makes
	 * nginx fail: then again on other ports. */
	for (int attempt = 0; attempt < SPAWN_ATTEMPTS; attempt++) {
		n->port = free_port();
		n->tls_port = tls ? free_port() : 0;
		write_nginx_conf(n, tls);
		if ((n->pid = spawn_try(argv, n->port, log)) < 0)
			continue;
		int tls_up = tls ? wait_for_port(n->tls_port, n->pid) : 1;
		if (tls_up == 1)
			return;
		if (tls_up < 0)
			untrack(n->pid);
		else
			server_stop(n->pid);
	}
	CU_FAIL_FATAL("nginx did not start");
}

/* Start argv and wait until it serves port; -1 (reaped, its log shown)
 * if it does not. */
static pid_t spawn_try(char *const argv[], int port, const char *log)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		child_bound_to_parent();
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	track(pid);
	int up = wait_for_port(port, pid);
	if (up != 1) {
		char *text = t_read(log);
		fprintf(stderr, "%s did not start on port %d; %s:\n%s\n", argv[0], port, log,
			text ? text : "(none)");
		free(text);
		if (up < 0)
			untrack(pid);
		else
			server_stop(pid);
		return -1;
	}
	return pid;
}

pid_t server_spawn(char *const argv[], int port, const char *log)
{
	pid_t pid = spawn_try(argv, port, log);

	if (pid < 0)
		CU_FAIL_FATAL("a server did not start");
	return pid;
}

/* ----------------------------------------------------------- tiny server */

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read a request's head; returns the Range start, -1 without Range, -2 on
 * error; if_range gets the If-Range header's value ("" if absent). */
static long long read_request(int fd, FILE *ranges, FILE *if_ranges, char *if_range, size_t cap)
{
	char req[8192];
	size_t have = 0;
	const char *range, *cond;
	long long first = -1;

	if_range[0] = '\0';
	while (have < sizeof(req) - 1) {
		ssize_t n = read(fd, req + have, sizeof(req) - 1 - have);
		if (n <= 0)
			return -2;
		have += (size_t)n;
		req[have] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	range = strcasestr(req, "\r\nRange: bytes=");
	if (range)
		first = atoll(range + strlen("\r\nRange: bytes="));
	cond = strcasestr(req, "\r\nIf-Range: ");
	if (cond) {
		cond += strlen("\r\nIf-Range: ");
		snprintf(if_range, cap, "%.*s", (int)strcspn(cond, "\r\n"), cond);
	}
	fprintf(ranges, first >= 0 ? "bytes=%lld-\n" : "none\n", first);
	fflush(ranges);
	fprintf(if_ranges, "%s\n", if_range[0] ? if_range : "none");
	fflush(if_ranges);
	return first;
}

struct tiny_bodies {
	const unsigned char *body, *body2;
	size_t len, len2;
};

static void tiny_answer(int fd, enum tiny_mode mode, int nth, const struct tiny_bodies *b,
			FILE *ranges, FILE *if_ranges)
{
	char if_range[256];
	long long first = read_request(fd, ranges, if_ranges, if_range, sizeof(if_range));
	int changing = mode == TINY_CHANGED || mode == TINY_CHANGED_IGNORES_IF_RANGE;
	const unsigned char *body = changing && nth > 0 ? b->body2 : b->body;
	size_t len = changing && nth > 0 ? b->len2 : b->len;
	const char *etag = mode == TINY_CUT_NO_VALIDATOR ? ""
			   : changing && nth > 0 ? "ETag: \"v2\"\r\n" : "ETag: \"v1\"\r\n";
	int ranged = mode == TINY_CUT_ONCE || mode == TINY_CUT_NO_VALIDATOR || changing;
	size_t from = 0, count;
	char head[512];

	if (first == -2)
		return;
	if (mode == TINY_SILENT) {
		sleep(120);  /* the test stops it long before */
		return;
	}
	/* If-Range: the range only if it names this version (RFC 9110). */
	if (if_range[0] && mode != TINY_CHANGED_IGNORES_IF_RANGE &&
	    (!etag[0] || strncmp(etag + strlen("ETag: "), if_range, strlen(if_range)) != 0))
		ranged = 0;
	if (ranged && first >= 0 && (size_t)first < len) {
		from = (size_t)first;
		snprintf(head, sizeof(head), "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\n"
			 "Content-Range: bytes %zu-%zu/%zu\r\n%sConnection: close\r\n\r\n",
			 len - from, from, len - 1, len, etag);
	} else if (mode == TINY_NO_LENGTH) {
		snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
	} else {
		snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
			 "%sConnection: close\r\n\r\n", len, mode == TINY_NO_RANGE ? "" : etag);
	}
	count = len - from;
	if (((mode == TINY_CUT_ONCE || mode == TINY_CUT_NO_VALIDATOR || changing) && nth == 0) ||
	    mode == TINY_STALL)
		count /= 2;  /* then the connection closes: a short body */
	if (write_all(fd, head, strlen(head)) == 0)
		write_all(fd, body + from, count);
	if (mode == TINY_STALL)
		sleep(120);  /* open, silent: the test stops it long before */
}

pid_t tiny_start_changing(enum tiny_mode mode, const unsigned char *body, size_t len,
			  const unsigned char *body2, size_t len2, int *ret_port)
{
	const struct tiny_bodies b = { body, body2, len, len2 };
	int lfd = listen_socket(ret_port);
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		FILE *ranges = fopen(t_path("ranges.log"), "a");
		FILE *if_ranges = fopen(t_path("if-range.log"), "a");

		child_bound_to_parent();
		alarm(300);  /* never outlive a forgotten stop */
		for (int i = 0; ranges && if_ranges && i < TINY_MAX_CONNECTIONS; i++) {
			int fd = accept(lfd, NULL, NULL);
			if (fd < 0)
				break;
			tiny_answer(fd, mode, i, &b, ranges, if_ranges);
			close(fd);
		}
		_exit(0);
	}
	close(lfd);
	track(pid);
	return pid;
}

pid_t tiny_start(enum tiny_mode mode, const unsigned char *body, size_t len, int *ret_port)
{
	return tiny_start_changing(mode, body, len, body, len, ret_port);
}
