/*
 * test_smb.c -- transport-smb against a real smbd the case starts itself
 * (smbd.c): streaming reads with resume, put/fetch/remove of documents,
 * the classes of its errors, and its secrecy about passwords.  The plugin
 * is loaded through the registry from REIMAGE_PLUGIN_PATH, configured from
 * a libconfig group as the agent would.
 */
#define _GNU_SOURCE
#include "error.h"
#include "harness.h"
#include "log.h"
#include "registry.h"
#include "smbd.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMAGE_SIZE (3u * 1024 * 1024 + 12345)
#define WRONG_PASSWORD "Hunter2-wrong-secret"
#define LOGON "user = \"" SMBD_USER "\"; password = \"" SMBD_PASSWORD "\"; timeout = 10;"

struct smb_plugin {
	struct registry reg;
	config_t cfg;
	const struct reimage_transport_ops *ops;
	void *ctx;
};

/* Load transport-smb through the registry and start it with settings (a
 * libconfig group's content).  Returns plugin_start()'s result. */
static int plugin_try(struct smb_plugin *sp, struct reimage_error *err, const char *settings)
{
	struct plugin *p = NULL;
	int r;

	memset(sp, 0, sizeof(*sp));
	CU_ASSERT_EQUAL_FATAL(registry_init(&sp->reg, NULL, err), 0);
	config_init(&sp->cfg);
	CU_ASSERT_EQUAL_FATAL(config_read_string(&sp->cfg, settings), CONFIG_TRUE);
	r = registry_transport_for(&sp->reg, "smb://server/share/file", &p, err);
	if (r < 0)
		fprintf(stderr, "loading transport-smb: %s\n", err->msg);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_STRING_EQUAL_FATAL(p->name, "transport-smb");
	if ((r = plugin_configure(p, config_root_setting(&sp->cfg), err)) < 0 ||
	    (r = plugin_start(p, err)) < 0)
		return r;
	sp->ops = p->transport;
	sp->ctx = p->ctx;
	return 0;
}

static void plugin_load(struct smb_plugin *sp, const char *settings)
{
	struct reimage_error err = { 0 };
	int r = plugin_try(sp, &err, settings);

	if (r < 0)
		fprintf(stderr, "starting transport-smb: %s\n", err.msg);
	CU_ASSERT_EQUAL_FATAL(r, 0);
}

static void plugin_unload(struct smb_plugin *sp)
{
	registry_fini(&sp->reg);
	config_destroy(&sp->cfg);
}

/* smb://127.0.0.1:port/share/path (rotating buffers: 4 live). */
static const char *url(int port, const char *share, const char *path)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "smb://127.0.0.1:%d/%s/%s", port, share, path);
	return b;
}

/* Reproducible noise, so that a misplaced byte cannot go unnoticed. */
static unsigned char *make_image(const char *path, size_t len)
{
	unsigned char *data = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(data);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (unsigned char)(x >> 32);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, data, len) == (ssize_t)len);
	close(fd);
	return data;
}

/* Stream url from offset and compare with expect[offset..len). */
static void read_and_compare(struct smb_plugin *sp, const char *u, uint64_t offset,
			     const unsigned char *expect, size_t len)
{
	struct reimage_error err = { 0 };
	struct reimage_stream *s = NULL;
	uint64_t size = 0;
	size_t have = offset;
	unsigned char *buf = malloc(65536);
	int r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	r = sp->ops->open(sp->ctx, u, offset, &s, &size, &err);
	if (r < 0)
		fprintf(stderr, "open: %s\n", err.msg);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_EQUAL(size, len);
	/* Each round reads at least one byte or ends: bounded by len. */
	for (size_t round = 0; round <= len; round++) {
		ssize_t n = sp->ops->read(s, buf, 65536, &err);
		CU_ASSERT_FATAL(n >= 0);
		if (n == 0)
			break;
		CU_ASSERT_FATAL(have + (size_t)n <= len);
		if (memcmp(buf, expect + have, (size_t)n) != 0) {
			CU_FAIL("bytes differ");
			break;
		}
		have += (size_t)n;
	}
	CU_ASSERT_EQUAL(have, len);
	sp->ops->close(s);
	free(buf);
}

/* err holds class cls, names u and never the passwords. */
static void expect_error(const struct reimage_error *err, int r, enum reimage_errclass cls,
			 const char *u)
{
	CU_ASSERT(r < 0);
	CU_ASSERT_EQUAL(err->code, r);
	CU_ASSERT_EQUAL(err->cls, cls);
	if (err->cls != cls)
		fprintf(stderr, "class %d, expected %d: %s\n", err->cls, cls, err->msg);
	if (u)
		CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, u));
	CU_ASSERT_PTR_NULL(strstr(err->msg, SMBD_PASSWORD));
	CU_ASSERT_PTR_NULL(strstr(err->msg, WRONG_PASSWORD));
}

static int open_error(struct smb_plugin *sp, const char *u, struct reimage_error *err)
{
	struct reimage_stream *s = NULL;
	uint64_t size;
	int r = sp->ops->open(sp->ctx, u, 0, &s, &size, err);

	if (r == 0)
		sp->ops->close(s);
	return r;
}

static void expect_open_error(struct smb_plugin *sp, const char *u, enum reimage_errclass cls)
{
	struct reimage_error err = { 0 };
	int r = open_error(sp, u, &err);

	expect_error(&err, r, cls, u);
}

TEST_CASE(read_full)
{
	struct smbd srv;
	struct smb_plugin sp;
	unsigned char *img;

	smbd_start(&srv);
	img = make_image(t_path("private/image.bin"), IMAGE_SIZE);
	plugin_load(&sp, LOGON);
	read_and_compare(&sp, url(srv.port, "private", "image.bin"), 0, img, IMAGE_SIZE);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
}

TEST_CASE(read_resume)
{
	struct smbd srv;
	struct smb_plugin sp;
	unsigned char *img;

	smbd_start(&srv);
	img = make_image(t_path("private/image.bin"), IMAGE_SIZE);
	plugin_load(&sp, LOGON);
	read_and_compare(&sp, url(srv.port, "private", "image.bin"), 1234567, img, IMAGE_SIZE);
	/* At the very end: a stream of no bytes, not an error. */
	read_and_compare(&sp, url(srv.port, "private", "image.bin"), IMAGE_SIZE, img, IMAGE_SIZE);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
}

TEST_CASE(read_past_end_refused)
{
	struct smbd srv;
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	struct reimage_stream *s = NULL;
	uint64_t size;
	const char *u;

	smbd_start(&srv);
	t_write(t_path("private/small"), "0123456789");
	plugin_load(&sp, LOGON);
	u = url(srv.port, "private", "small");
	expect_error(&err, sp.ops->open(sp.ctx, u, 11, &s, &size, &err), REIMAGE_EC_INTEGRITY, u);
	plugin_unload(&sp);
	smbd_stop(&srv);
}

TEST_CASE(read_guest)
{
	struct smbd srv;
	struct smb_plugin sp;
	unsigned char *img;

	smbd_start(&srv);
	img = make_image(t_path("public/image.bin"), 100000);
	plugin_load(&sp, "guest = true; timeout = 10;");
	read_and_compare(&sp, url(srv.port, "public", "image.bin"), 0, img, 100000);
	/* A guest is refused on the password share. */
	expect_open_error(&sp, url(srv.port, "private", "image.bin"), REIMAGE_EC_ACCESS);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
}

TEST_CASE(wrong_password)
{
	struct smbd srv;
	struct smb_plugin sp;

	smbd_start(&srv);
	t_write(t_path("private/doc"), "x");
	plugin_load(&sp, "user = \"" SMBD_USER "\"; password = \"" WRONG_PASSWORD "\";");
	expect_open_error(&sp, url(srv.port, "private", "doc"), REIMAGE_EC_ACCESS);
	plugin_unload(&sp);
	smbd_stop(&srv);
}

TEST_CASE(missing_file)
{
	struct smbd srv;
	struct smb_plugin sp;

	smbd_start(&srv);
	plugin_load(&sp, LOGON);
	expect_open_error(&sp, url(srv.port, "private", "no-such-image.tar"), REIMAGE_EC_NOTFOUND);
	expect_open_error(&sp, url(srv.port, "private", "no-such-dir/image.tar"),
			  REIMAGE_EC_NOTFOUND);
	plugin_unload(&sp);
	smbd_stop(&srv);
}

TEST_CASE(missing_share)
{
	struct smbd srv;
	struct smb_plugin sp;

	smbd_start(&srv);
	plugin_load(&sp, LOGON);
	expect_open_error(&sp, url(srv.port, "no-such-share", "image.tar"), REIMAGE_EC_NOTFOUND);
	plugin_unload(&sp);
	smbd_stop(&srv);
}

TEST_CASE(unreachable_port)
{
	struct smb_plugin sp;

	plugin_load(&sp, LOGON);
	expect_open_error(&sp, url(free_port(), "private", "image.tar"), REIMAGE_EC_NETWORK);
	plugin_unload(&sp);
}

TEST_CASE(timeout)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct smb_plugin sp;
	struct timespec t0, t1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* A server that takes the connection (the kernel's backlog) and
	 * never answers. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CU_ASSERT_FATAL(listen(fd, 8) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	plugin_load(&sp, "user = \"" SMBD_USER "\"; password = \"" SMBD_PASSWORD "\"; timeout = 1;");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_open_error(&sp, url(ntohs(a.sin_port), "private", "image.tar"),
			  REIMAGE_EC_RETRYABLE);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CU_ASSERT(t1.tv_sec - t0.tv_sec < 15);
	plugin_unload(&sp);
	close(fd);
}

static volatile sig_atomic_t stop_flag;

static void on_alarm(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* A stalled read -- smbd stopped (SIGSTOP to its process group) in the
 * middle of a large file -- ends within about a second of a stop request
 * (the flag the host's stopping() reads, set 0.3 s after the stall) with
 * "stopped on request", not after the plugin's 30 s timeout. */
TEST_CASE(stop_during_stalled_read)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval in = { .it_value = { 0, 300000 } };
	struct reimage_error err = { 0 };
	struct reimage_stream *s = NULL;
	struct timespec t0, t1;
	struct smbd srv;
	struct smb_plugin sp;
	uint64_t size, total = 0;
	size_t cap = 1 << 16;
	char *buf = malloc(cap);
	ssize_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	smbd_start(&srv);
	/* More than the client asks for ahead of its reads. */
	CU_ASSERT_EQUAL_FATAL(t_sh("truncate -s 256M '%s'", t_path("private/big.bin")), 0);
	plugin_load(&sp, "user = \"" SMBD_USER "\"; password = \"" SMBD_PASSWORD "\"; timeout = 30;");
	CU_ASSERT_EQUAL_FATAL(sp.ops->open(sp.ctx, url(srv.port, "private", "big.bin"), 0, &s, &size,
					   &err), 0);
	CU_ASSERT_EQUAL(sp.ops->read(s, buf, cap, &err), (ssize_t)cap);
	CU_ASSERT_EQUAL_FATAL(kill(-srv.pid, SIGSTOP), 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	stop_flag = 0;
	registry_watch_stop(&stop_flag);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL_FATAL(setitimer(ITIMER_REAL, &in, NULL), 0);
	while ((n = sp.ops->read(s, buf, cap, &err)) > 0 && total < size)
		total += (uint64_t)n;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CU_ASSERT_EQUAL(n, -ECANCELED);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_STATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stopped on request"));
	if (n != -ECANCELED)
		fprintf(stderr, "read ended %zd after %llu bytes: %s\n", n,
			(unsigned long long)total, err.msg);
	CU_ASSERT(t1.tv_sec - t0.tv_sec < 10);
	registry_watch_stop(NULL);
	kill(-srv.pid, SIGCONT);
	sp.ops->close(s);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(buf);
}

/* Without a stop, a server silent for less than the timeout is waited
 * for: the read goes on where it stopped, and the bytes are the file's. */
TEST_CASE(read_survives_a_short_stall)
{
	struct reimage_error err = { 0 };
	struct reimage_stream *s = NULL;
	struct smbd srv;
	struct smb_plugin sp;
	uint64_t size, have = 0;
	unsigned char *img, *got;

	smbd_start(&srv);
	img = make_image(t_path("private/image.bin"), IMAGE_SIZE);
	got = malloc(IMAGE_SIZE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	/* A timeout far above the stall, however late the SIGCONT comes. */
	plugin_load(&sp, "user = \"" SMBD_USER "\"; password = \"" SMBD_PASSWORD "\"; timeout = 120;");
	CU_ASSERT_EQUAL_FATAL(sp.ops->open(sp.ctx, url(srv.port, "private", "image.bin"), 0, &s,
					   &size, &err), 0);
	CU_ASSERT_EQUAL(sp.ops->read(s, got, 4096, &err), 4096);
	have = 4096;
	/* Silent for 3 ticks: SIGCONT from a child 3 s from now. */
	CU_ASSERT_EQUAL_FATAL(kill(-srv.pid, SIGSTOP), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("(sleep 3; kill -CONT -%d) >/dev/null 2>&1 &", (int)srv.pid), 0);
	while (have < IMAGE_SIZE) {
		ssize_t n = sp.ops->read(s, got + have, IMAGE_SIZE - have, &err);
		if (n <= 0) {
			fprintf(stderr, "read: %zd: %s\n", n, err.msg);
			break;
		}
		have += (uint64_t)n;
	}
	CU_ASSERT_EQUAL(have, IMAGE_SIZE);
	CU_ASSERT(memcmp(got, img, IMAGE_SIZE) == 0);
	kill(-srv.pid, SIGCONT);
	sp.ops->close(s);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
	free(got);
}

TEST_CASE(port_option)
{
	struct smbd srv;
	struct smb_plugin sp;
	char settings[512];
	unsigned char *img;

	smbd_start(&srv);
	img = make_image(t_path("private/image.bin"), 70000);
	snprintf(settings, sizeof(settings), "%s port = %d;", LOGON, srv.port);
	plugin_load(&sp, settings);
	read_and_compare(&sp, "smb://127.0.0.1/private/image.bin", 0, img, 70000);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
}

TEST_CASE(credentials_file)
{
	struct smbd srv;
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	char settings[4200];
	unsigned char *img;

	smbd_start(&srv);
	img = make_image(t_path("private/image.bin"), 50000);
	/* smbclient -A format, blanks around '=' as smbclient allows. */
	t_write(t_path("creds"), "# test account\nusername = " SMBD_USER
				 "\npassword=" SMBD_PASSWORD "\ndomain = REIMAGETEST\n");
	chmod(t_path("creds"), 0600);
	snprintf(settings, sizeof(settings), "credentials_file = \"%s\"; timeout = 10;",
		 t_path("creds"));
	plugin_load(&sp, settings);
	read_and_compare(&sp, url(srv.port, "private", "image.bin"), 0, img, 50000);
	plugin_unload(&sp);

	/* An unknown key is named; the line's value is not. */
	t_write(t_path("creds"), "username = " SMBD_USER "\npasword = " SMBD_PASSWORD "\n");
	CU_ASSERT(plugin_try(&sp, &err, settings) < 0);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "line 2: unknown key 'pasword'"));
	CU_ASSERT_PTR_NULL(strstr(err.msg, SMBD_PASSWORD));
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
}

TEST_CASE(put_fetch_not_modified)
{
	static const char first[] = "{\"state\": \"staging\"}\n";
	static const char second[] = "{\"state\": \"swapping\"}";
	struct smbd srv;
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	char buf[256], etag[REIMAGE_ETAG_MAX] = "", old_etag[REIMAGE_ETAG_MAX];
	size_t len = 0;
	int64_t date = -1;
	char *disk, *listing = NULL;
	const char *u;

	smbd_start(&srv);
	CU_ASSERT_EQUAL_FATAL(mkdir(t_path("private/status"), 0755), 0);
	plugin_load(&sp, LOGON);
	u = url(srv.port, "private", "status/host1.json");
	CU_ASSERT_EQUAL_FATAL(sp.ops->put(sp.ctx, u, first, strlen(first), "application/json",
					  &err), 0);
	disk = t_read(t_path("private/status/host1.json"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(disk);
	CU_ASSERT_STRING_EQUAL(disk, first);
	free(disk);

	CU_ASSERT_EQUAL(sp.ops->fetch(sp.ctx, u, buf, sizeof(buf), &len, etag, &date, &err), 0);
	CU_ASSERT_EQUAL(len, strlen(first));
	CU_ASSERT(memcmp(buf, first, strlen(first)) == 0);
	CU_ASSERT(etag[0] != '\0');
	CU_ASSERT_EQUAL(date, 0);
	CU_ASSERT_EQUAL(sp.ops->fetch(sp.ctx, u, buf, sizeof(buf), &len, etag, NULL, &err),
			REIMAGE_NOT_MODIFIED);

	/* Replaced (same size even): the old validator no longer matches. */
	memcpy(old_etag, etag, sizeof(etag));
	CU_ASSERT_EQUAL(strlen(first), strlen(second));
	CU_ASSERT_EQUAL_FATAL(sp.ops->put(sp.ctx, u, second, strlen(second), "application/json",
					  &err), 0);
	CU_ASSERT_EQUAL(sp.ops->fetch(sp.ctx, u, buf, sizeof(buf), &len, etag, NULL, &err), 0);
	CU_ASSERT(len == strlen(second) && memcmp(buf, second, len) == 0);
	CU_ASSERT(strcmp(etag, old_etag) != 0);
	/* No temporary file left behind. */
	CU_ASSERT_EQUAL(t_sh_out(&listing, "ls -A '%s'", t_path("private/status")), 0);
	CU_ASSERT_STRING_EQUAL(listing, "host1.json\n");
	free(listing);

	/* remove(): gone, and removing again is no error. */
	CU_ASSERT_EQUAL(sp.ops->remove(sp.ctx, u, &err), 0);
	CU_ASSERT_NOT_EQUAL(access(t_path("private/status/host1.json"), F_OK), 0);
	CU_ASSERT_EQUAL(sp.ops->remove(sp.ctx, u, &err), 0);
	CU_ASSERT_EQUAL(err.code, 0);
	expect_error(&err, sp.ops->fetch(sp.ctx, u, buf, sizeof(buf), &len, etag, NULL, &err),
		     REIMAGE_EC_NOTFOUND, u);
	plugin_unload(&sp);
	smbd_stop(&srv);
}

/* A job store on an empty share: put() makes the folders of a path
 * (jobs/, reports/<job>/) as the file transport and nginx do. */
TEST_CASE(put_creates_folders)
{
	struct smbd srv;
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	char *disk;

	smbd_start(&srv);
	plugin_load(&sp, LOGON);
	CU_ASSERT_EQUAL(sp.ops->put(sp.ctx, url(srv.port, "private", "store/reports/job-1/pc-1.json"),
				    "{}", 2, "application/json", &err), 0);
	CU_ASSERT_EQUAL(err.code, 0);
	disk = t_read(t_path("private/store/reports/job-1/pc-1.json"));
	CU_ASSERT(disk && strcmp(disk, "{}") == 0);
	free(disk);
	/* Again, beside it: the folders exist now. */
	CU_ASSERT_EQUAL(sp.ops->put(sp.ctx, url(srv.port, "private", "store/reports/job-1/pc-2.json"),
				    "[]", 2, NULL, &err), 0);
	CU_ASSERT_EQUAL(access(t_path("private/store/reports/job-1/pc-2.json"), F_OK), 0);
	/* A file where a folder must be: an error naming it, nothing written. */
	t_write(t_path("private/flat"), "x");
	expect_error(&err, sp.ops->put(sp.ctx, url(srv.port, "private", "flat/doc.json"), "x", 1,
				       NULL, &err), REIMAGE_EC_NOTFOUND, "flat");
	plugin_unload(&sp);
	smbd_stop(&srv);
}

TEST_CASE(put_missing_share)
{
	struct smbd srv;
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	const char *u;

	smbd_start(&srv);
	plugin_load(&sp, LOGON);
	u = url(srv.port, "no-such-share", "status.json");
	expect_error(&err, sp.ops->put(sp.ctx, u, "x", 1, NULL, &err), REIMAGE_EC_NOTFOUND, NULL);
	plugin_unload(&sp);
	smbd_stop(&srv);
}

TEST_CASE(fetch_over_cap)
{
	struct smbd srv;
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	char buf[5000 + 64], etag[REIMAGE_ETAG_MAX] = "";
	size_t len = 12345;
	unsigned char *img;
	const char *u;

	smbd_start(&srv);
	img = make_image(t_path("private/job.json"), 5000);
	plugin_load(&sp, LOGON);
	u = url(srv.port, "private", "job.json");
	memset(buf, 0x5a, sizeof(buf));
	expect_error(&err, sp.ops->fetch(sp.ctx, u, buf, 4096, &len, etag, NULL, &err),
		     REIMAGE_EC_INTEGRITY, u);
	/* Nothing written past cap, no length or validator handed out. */
	for (size_t i = 4096; i < sizeof(buf); i++)
		CU_ASSERT_EQUAL_FATAL(buf[i], 0x5a);
	CU_ASSERT_EQUAL(len, 12345);
	CU_ASSERT_STRING_EQUAL(etag, "");
	/* Exactly cap bytes is fine. */
	CU_ASSERT_EQUAL(sp.ops->fetch(sp.ctx, u, buf, 5000, &len, etag, NULL, &err), 0);
	CU_ASSERT(len == 5000 && memcmp(buf, img, 5000) == 0);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
}

/* Every message and every log line, with a wrong and a right password in
 * play: neither password appears. */
TEST_CASE(password_never_in_messages)
{
	struct smbd srv;
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	char settings[4200], buf[64], etag[REIMAGE_ETAG_MAX] = "";
	size_t len;
	char *logged;
	int saved = dup(2), fd = open(t_path("stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	smbd_start(&srv);
	t_write(t_path("private/doc"), "x");
	CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
	/* Everything the plugin and libsmbclient log, at the chattiest level. */
	log_set_level(REIMAGE_LOG_DEBUG);
	fflush(stderr);
	dup2(fd, 2);

	plugin_load(&sp, "user = \"" SMBD_USER "\"; password = \"" WRONG_PASSWORD "\";");
	expect_open_error(&sp, url(srv.port, "private", "doc"), REIMAGE_EC_ACCESS);
	expect_error(&err, sp.ops->put(sp.ctx, url(srv.port, "private", "new"), "y", 1, NULL, &err),
		     REIMAGE_EC_ACCESS, NULL);
	err_clear(&err);
	expect_error(&err, sp.ops->fetch(sp.ctx, url(srv.port, "private", "doc"), buf, sizeof(buf),
					 &len, etag, NULL, &err),
		     REIMAGE_EC_ACCESS, url(srv.port, "private", "doc"));
	plugin_unload(&sp);

	t_write(t_path("creds"), "username=" SMBD_USER "\npassword=" WRONG_PASSWORD "\n");
	chmod(t_path("creds"), 0644);  /* also draws the "readable by others" warning */
	snprintf(settings, sizeof(settings), "credentials_file = \"%s\";", t_path("creds"));
	plugin_load(&sp, settings);
	expect_open_error(&sp, url(srv.port, "private", "doc"), REIMAGE_EC_ACCESS);
	plugin_unload(&sp);

	plugin_load(&sp, LOGON);
	expect_open_error(&sp, url(srv.port, "private", "missing"), REIMAGE_EC_NOTFOUND);
	expect_open_error(&sp, url(srv.port, "nowhere", "doc"), REIMAGE_EC_NOTFOUND);
	expect_open_error(&sp, url(free_port(), "private", "doc"), REIMAGE_EC_NETWORK);
	plugin_unload(&sp);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	log_set_level(REIMAGE_LOG_NOTICE);
	logged = t_read(t_path("stderr"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(logged);
	CU_ASSERT_PTR_NOT_NULL(strstr(logged, "readable by other users"));
	CU_ASSERT_PTR_NULL(strstr(logged, WRONG_PASSWORD));
	CU_ASSERT_PTR_NULL(strstr(logged, SMBD_PASSWORD));
	free(logged);
	smbd_stop(&srv);
}

TEST_CASE(url_credentials_refused)
{
	struct smb_plugin sp;
	struct reimage_error err = { 0 };
	const char *u = "smb://" SMBD_USER ":" WRONG_PASSWORD "@127.0.0.1:445/private/doc";

	plugin_load(&sp, LOGON);
	expect_error(&err, open_error(&sp, u, &err), REIMAGE_EC_CONFIG, "127.0.0.1:445/private/doc");
	err_clear(&err);
	/* Without a path after the credentials, too. */
	expect_error(&err, open_error(&sp, "smb://" SMBD_USER ":" WRONG_PASSWORD "@host", &err),
		     REIMAGE_EC_CONFIG, "smb://...@host");
	err_clear(&err);
	expect_open_error(&sp, "smb://127.0.0.1/private", REIMAGE_EC_CONFIG);
	expect_open_error(&sp, "smb://127.0.0.1:99999/private/doc", REIMAGE_EC_CONFIG);
	plugin_unload(&sp);
}

TEST_CASE(config_refused)
{
	static const char *const bad[] = {
		"timeout = 5;",  /* no way to log on */
		"password = \"" WRONG_PASSWORD "\";",
		"guest = true; user = \"" SMBD_USER "\";",
		"user = \"" SMBD_USER "\"; credentials_file = \"/nonexistent\";",
		"guest = true; timeout = 0;",
		"guest = true; colour = \"blue\";",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct smb_plugin sp;
		struct reimage_error err = { 0 };

		CU_ASSERT(plugin_try(&sp, &err, bad[i]) < 0);
		CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
		CU_ASSERT_PTR_NULL(strstr(err.msg, WRONG_PASSWORD));
		plugin_unload(&sp);
	}
}

/* libsmbclient caches connections by host name, not port: a second port
 * of the same host must reach that port, not the first one's server. */
TEST_CASE(servers_by_port)
{
	struct smbd srv;
	struct smb_plugin sp;
	unsigned char *img;

	smbd_start(&srv);
	img = make_image(t_path("private/image.bin"), 1000);
	plugin_load(&sp, LOGON);
	read_and_compare(&sp, url(srv.port, "private", "image.bin"), 0, img, 1000);
	expect_open_error(&sp, url(free_port(), "private", "image.bin"), REIMAGE_EC_NETWORK);
	read_and_compare(&sp, url(srv.port, "private", "image.bin"), 0, img, 1000);
	plugin_unload(&sp);
	smbd_stop(&srv);
	free(img);
}

/* A server reached by name (so libsmbclient resolves it and would cache the
 * answer) leaves the machine's Samba state as it was. */
TEST_CASE(no_system_state)
{
	static const char *const state[] = {
		"/run/samba/gencache.tdb", "/var/run/samba/gencache.tdb",
		"/var/cache/samba/gencache.tdb", "/var/lib/samba/gencache.tdb",
		"/var/cache/samba/namecache.tdb", "/var/lib/samba/private/secrets.tdb",
	};
	struct stat before[sizeof(state) / sizeof(state[0])], after;
	struct smbd srv;
	struct smb_plugin sp;
	char u[256];
	unsigned char *img;

	smbd_start(&srv);
	img = make_image(t_path("public/image.bin"), 1000);
	for (size_t i = 0; i < sizeof(state) / sizeof(state[0]); i++)
		if (stat(state[i], &before[i]) < 0)
			before[i].st_ino = 0;
	plugin_load(&sp, "guest = true; timeout = 10;");
	snprintf(u, sizeof(u), "smb://localhost:%d/public/image.bin", srv.port);
	read_and_compare(&sp, u, 0, img, 1000);
	expect_open_error(&sp, "smb://no-such-host.invalid/public/image.bin", REIMAGE_EC_NETWORK);
	plugin_unload(&sp);
	for (size_t i = 0; i < sizeof(state) / sizeof(state[0]); i++) {
		int exists = stat(state[i], &after) == 0;
		CU_ASSERT_EQUAL(exists, before[i].st_ino != 0);
		if (exists && before[i].st_ino) {
			CU_ASSERT(after.st_mtim.tv_sec == before[i].st_mtim.tv_sec &&
				  after.st_mtim.tv_nsec == before[i].st_mtim.tv_nsec);
			if (after.st_mtim.tv_nsec != before[i].st_mtim.tv_nsec)
				fprintf(stderr, "%s changed\n", state[i]);
		}
	}
	smbd_stop(&srv);
	free(img);
}

/* A server that speaks only SMB1 is refused, even with an smb_conf that
 * asks for SMB1: the client's range is SMB2..SMB3.  The server drops the
 * connection at negotiation, which looks like any dropped connection. */
TEST_CASE(smb1_refused)
{
	struct smbd srv;
	struct smb_plugin sp;
	char settings[4200];

	smbd_start_with(&srv, "server min protocol = NT1\nserver max protocol = NT1\n");
	t_write(t_path("public/doc"), "x");
	t_write(t_path("client.conf"),
		"[global]\nclient min protocol = NT1\nclient max protocol = NT1\n");
	plugin_load(&sp, "guest = true; timeout = 10;");
	expect_open_error(&sp, url(srv.port, "public", "doc"), REIMAGE_EC_RETRYABLE);
	plugin_unload(&sp);
	snprintf(settings, sizeof(settings), "guest = true; smb_conf = \"%s\";",
		 t_path("client.conf"));
	plugin_load(&sp, settings);
	expect_open_error(&sp, url(srv.port, "public", "doc"), REIMAGE_EC_RETRYABLE);
	plugin_unload(&sp);
	smbd_stop(&srv);
}
