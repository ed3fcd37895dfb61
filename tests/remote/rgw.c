/*
 * rgw.c -- see rgw.h.
 */
#define _GNU_SOURCE
#include "rgw.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A cold cluster is up in about 15 s; a loaded machine takes longer. */
#define START_WAIT_MS 240000
#define STOP_WAIT_MS 20000
#define POLL_MS 100

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Reap pid within ms, else kill it; 1 if it ended by itself. */
static int reap(pid_t pid, int ms)
{
	int status;

	for (int waited = 0; waitpid(pid, &status, WNOHANG) == 0; waited += POLL_MS) {
		if (waited >= ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return 0;
		}
		sleep_ms(POLL_MS);
	}
	return 1;
}

static void show_logs(void)
{
	t_sh("for f in '%s'/*.out '%s'/*.log; do [ -f \"$f\" ] && { echo \"== $f\"; tail -n 20 "
	     "\"$f\"; }; done >&2", t_path("rgw"), t_path("rgw"));
}

/* The HTTP status of curl's signed request with args (0 if none); of a
 * URL glob's requests, 200 if all were, else the first that was not. */
static int curl_s3(const char *args)
{
	char *out = NULL, *line, *save = NULL;
	int status = 0;

	t_sh_out(&out, "curl -s --max-time 120 -o '%s' -w '%%{http_code}\\n' --aws-sigv4 "
		 "aws:amz:us-east-1:s3 --user '%s:%s' %s", t_path("rgw-body"), RGW_ACCESS_KEY,
		 RGW_SECRET_KEY, args);
	for (line = out ? strtok_r(out, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		status = atoi(line);
		if (status != 200)
			break;
	}
	free(out);
	return status;
}

void rgw_start(struct rgw *g)
{
	char dir[1024], script[1024], *port;
	int status;

	memset(g, 0, sizeof(*g));
	if (access("/usr/bin/radosgw", X_OK) != 0)
		CU_FAIL_FATAL("radosgw is not installed (tests/deps.sh installs it)");
	snprintf(dir, sizeof(dir), "%s", t_path("rgw"));
	snprintf(script, sizeof(script), "%s/tests/remote/rgw.sh", t_src_dir());
	g->pid = fork();
	CU_ASSERT_FATAL(g->pid >= 0);
	if (g->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execlp("sh", "sh", script, "run", dir, RGW_ACCESS_KEY, RGW_SECRET_KEY, (char *)NULL);
		_exit(127);
	}
	for (int waited = 0; !(port = t_read(t_path("rgw/port"))); waited += POLL_MS) {
		int died = waitpid(g->pid, &status, WNOHANG) == g->pid;
		if (died || waited >= START_WAIT_MS) {
			fprintf(stderr, "the RADOS Gateway did not start (%s)\n",
				died ? "rgw.sh ended" : "timed out");
			show_logs();
			if (died)
				g->pid = 0;
			rgw_stop(g);
			CU_FAIL_FATAL("the RADOS Gateway did not start");
		}
		sleep_ms(POLL_MS);
	}
	g->port = atoi(port);
	free(port);
	CU_ASSERT_FATAL(g->port > 0);
	char args[256];
	snprintf(args, sizeof(args), "-X PUT -H 'x-amz-content-sha256: %s' http://127.0.0.1:%d/%s",
		 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", g->port,
		 RGW_BUCKET);
	CU_ASSERT_EQUAL_FATAL(curl_s3(args), 200);
}

void rgw_stop(struct rgw *g)
{
	if (g->pid <= 0)
		return;
	kill(g->pid, SIGTERM);
	/* rgw.sh stops its daemons, then ends. */
	if (!reap(g->pid, STOP_WAIT_MS))
		fprintf(stderr, "rgw.sh did not end within %d ms: killed\n", STOP_WAIT_MS);
	g->pid = 0;
}

char *rgw_get(const struct rgw *g, const char *key)
{
	char args[2048];
	int status;

	snprintf(args, sizeof(args), "-H 'x-amz-content-sha256: %s' http://127.0.0.1:%d/%s/%s",
		 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", g->port,
		 RGW_BUCKET, key);
	status = curl_s3(args);
	/* Only "no such key" means none: any other failure is the test's. */
	CU_ASSERT_FATAL(status == 200 || status == 404);
	return status == 200 ? t_read(t_path("rgw-body")) : NULL;
}

int rgw_put_file(const struct rgw *g, const char *key, const char *path)
{
	char args[4096];

	snprintf(args, sizeof(args), "-H \"x-amz-content-sha256: $(sha256sum < '%s' | cut -c1-64)\" "
		 "-T '%s' 'http://127.0.0.1:%d/%s/%s'", path, path, g->port, RGW_BUCKET, key);
	return curl_s3(args) == 200 ? 0 : -1;
}

void rgw_settings(const struct rgw *g, char *buf, size_t len)
{
	t_write(t_path("rgw.secret"), RGW_SECRET_KEY "\n");
	snprintf(buf, len, "transport-http: { s3_endpoint = \"http://127.0.0.1:%d\"; "
		 "s3_access_key_id = \"" RGW_ACCESS_KEY "\"; s3_secret_key_file = \"%s\"; };\n",
		 g->port, t_path("rgw.secret"));
}
