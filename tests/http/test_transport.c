/*
 * test_transport.c -- the transport-http plugin, loaded through the
 * registry like the agent loads it, against a real nginx and a tiny
 * misbehaving server, both started here on 127.0.0.1: whole and resumed
 * downloads compared byte for byte, servers that cut, ignore Range or
 * never answer, the error classes, TLS with the test's own CA, pinning and
 * client certificates, documents with validators and a cap, and the
 * bearer token (sent, never shown); and s3:// URLs against a real S3
 * service, Ceph's RADOS Gateway (remote/rgw.h).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "servers.h"
#include "remote/rgw.h"
#include "error.h"
#include "registry.h"
#include "config.h"
#include "options.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#define IMAGE_SIZE (4u * 1024 * 1024 + 321)  /* a few MB, not a round number */
#define TOKEN "s3cr3t-token-42"

struct fixture {
	struct registry reg;
	config_t cfg;
	struct plugin *plugin;
	const struct reimage_transport_ops *ops;
};

/*
 * Load transport-http through the registry and start it with settings
 * (the inside of its configuration group).  The configuration is read
 * from a file, not with config_read_string(): options_free() takes a
 * setting without a source file for a default and would free libconfig's
 * own strings of a `headers` list.
 */
static int plugin_try(struct fixture *f, const char *settings, struct reimage_error *err)
{
	char *text;
	int r;

	CU_ASSERT_FATAL(asprintf(&text, "transport-http: { %s };\n", settings) >= 0);
	t_write(t_path("agent.conf"), text);
	free(text);
	config_init(&f->cfg);
	CU_ASSERT_FATAL(config_read_file(&f->cfg, t_path("agent.conf")) == CONFIG_TRUE);
	CU_ASSERT_EQUAL_FATAL(registry_init(&f->reg, NULL, err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_require(&f->reg, "transport-http", &f->plugin, err), 0);
	if ((r = plugin_configure(f->plugin, config_lookup(&f->cfg, "transport-http"), err)) < 0 ||
	    (r = plugin_start(f->plugin, err)) < 0)
		return r;
	f->ops = f->plugin->transport;
	return 0;
}

/* plugin_try() with printf-style settings, which must work. */
static void plugin_up(struct fixture *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void plugin_up(struct fixture *f, const char *fmt, ...)
{
	struct reimage_error err = { 0 };
	char *settings;
	va_list ap;
	int r;

	va_start(ap, fmt);
	CU_ASSERT_FATAL(vasprintf(&settings, fmt, ap) >= 0);
	va_end(ap);
	r = plugin_try(f, settings, &err);
	if (r < 0)
		fprintf(stderr, "plugin start: %s\n", err.msg);
	free(settings);
	CU_ASSERT_EQUAL_FATAL(r, 0);
}

static void plugin_down(struct fixture *f)
{
	registry_fini(&f->reg);
	config_destroy(&f->cfg);
}

/* Deterministic bytes that no compressor or pattern hides. */
static unsigned char *make_image(size_t len)
{
	unsigned char *data = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	CU_ASSERT_PTR_NOT_NULL_FATAL(data);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (unsigned char)(x >> 24);
	}
	return data;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL_FATAL(fwrite(data, 1, len, f), len);
	CU_ASSERT_EQUAL_FATAL(fclose(f), 0);
}

/* An image in nginx's document root. */
static unsigned char *serve_image(const char *name)
{
	unsigned char *image = make_image(IMAGE_SIZE);

	write_file(t_path("www/%s", name), image, IMAGE_SIZE);
	return image;
}

struct download {
	unsigned char *data;  /* IMAGE_SIZE + 1 bytes: room to notice extra */
	size_t len;           /* bytes read */
	uint64_t size;        /* what open() said */
	int open_r, read_r;   /* 0, or the failing hook's code */
	struct reimage_open_opts *opts;  /* open_ex() with these, or NULL: open() */
};

/* Open url at offset (length bytes with open_range, 0: open to the
 * end) and read until the end or an error, in odd-sized pieces,
 * appending to d->data at d->len. */
static void download_range(struct fixture *f, const char *url, uint64_t offset, uint64_t length,
			   struct download *d, struct reimage_error *err)
{
	struct reimage_stream *s = NULL;
	unsigned char piece[7001];

	if (!d->data)
		CU_ASSERT_PTR_NOT_NULL_FATAL(d->data = malloc(IMAGE_SIZE + 1));
	d->read_r = 0;
	if (length)
		d->open_r = f->ops->open_range(f->plugin->ctx, url, offset, length, &s, &d->size, err);
	else if (d->opts)
		d->open_r = f->ops->open_ex(f->plugin->ctx, url, offset, d->opts, &s, &d->size, err);
	else
		d->open_r = f->ops->open(f->plugin->ctx, url, offset, &s, &d->size, err);
	if (d->open_r < 0)
		return;
	for (int i = 0; i < 100000; i++) {  /* far more than IMAGE_SIZE needs */
		ssize_t n = f->ops->read(s, piece, sizeof(piece), err);
		if (n <= 0) {
			d->read_r = (int)n;
			break;
		}
		if (d->len + (size_t)n > IMAGE_SIZE + 1) {
			CU_FAIL("more bytes than the image has");
			break;
		}
		memcpy(d->data + d->len, piece, (size_t)n);
		d->len += (size_t)n;
	}
	f->ops->close(s);
}

static void download(struct fixture *f, const char *url, uint64_t offset, struct download *d,
		     struct reimage_error *err)
{
	download_range(f, url, offset, 0, d, err);
}

static const char *url(int port, const char *path)
{
	static char bufs[4][512];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "http://127.0.0.1:%d%s", port, path);
	return b;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void expect_error(const struct reimage_error *err, enum reimage_errclass cls,
			 const char *needle)
{
	CU_ASSERT_EQUAL(err->cls, cls);
	CU_ASSERT(err->code < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, needle));
	if (err->cls != cls || !strstr(err->msg, needle))
		fprintf(stderr, "error was (%s) %s; expected %s and '%s'\n",
			err_class_name(err->cls), err->msg, err_class_name(cls), needle);
}

/* ------------------------------------------------------------ streaming */

TEST_CASE(download_whole)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;
	unsigned char *image;

	nginx_start(&n, 0);
	image = serve_image("image.bin");
	plugin_up(&f, "%s", "");
	/* The registry sends http: to this plugin. */
	CU_ASSERT_EQUAL(registry_transport_for(&f.reg, url(n.port, "/image.bin"), &p, &err), 0);
	CU_ASSERT_PTR_EQUAL(p, f.plugin);
	download(&f, url(n.port, "/image.bin"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE);
	CU_ASSERT(memcmp(d.data, image, IMAGE_SIZE) == 0);
	plugin_down(&f);
	server_stop(n.pid);
	free(image);
	free(d.data);
}

TEST_CASE(download_from_offset)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	const uint64_t offset = 1234567;
	unsigned char *image;

	nginx_start(&n, 0);
	image = serve_image("image.bin");
	plugin_up(&f, "%s", "");
	download(&f, url(n.port, "/image.bin"), offset, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);  /* the whole resource, from Content-Range */
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE - offset);
	CU_ASSERT(memcmp(d.data, image + offset, IMAGE_SIZE - offset) == 0);
	plugin_down(&f);
	server_stop(n.pid);
	free(image);
	free(d.data);
}

TEST_CASE(resume_at_the_end)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	unsigned char *image;

	nginx_start(&n, 0);
	image = serve_image("image.bin");
	plugin_up(&f, "%s", "");
	/* A cut right after the last byte: nothing is left, which is no error. */
	download(&f, url(n.port, "/image.bin"), IMAGE_SIZE, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);
	CU_ASSERT_EQUAL(d.len, 0);
	/* Beyond the end: the resource changed under us. */
	download(&f, url(n.port, "/image.bin"), IMAGE_SIZE + 10, &d, &err);
	CU_ASSERT(d.open_r < 0);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "416");
	plugin_down(&f);
	server_stop(n.pid);
	free(image);
	free(d.data);
}

TEST_CASE(resume_after_cut)
{
	struct fixture f;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	unsigned char *image = make_image(IMAGE_SIZE);
	char *ranges, expected[128];
	size_t reached;
	int port;
	pid_t pid = tiny_start(TINY_CUT_ONCE, image, IMAGE_SIZE, &port);

	plugin_up(&f, "%s", "");
	download(&f, url(port, "/image.bin"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);
	/* The first answer stops halfway: retryable, the bytes so far good. */
	CU_ASSERT_EQUAL(d.read_r, -ECONNRESET);
	expect_error(&err, REIMAGE_EC_RETRYABLE, url(port, "/image.bin"));
	reached = d.len;
	CU_ASSERT(reached > 0 && reached < IMAGE_SIZE);
	/* As the core does: open again at the offset reached. */
	err_clear(&err);
	download(&f, url(port, "/image.bin"), reached, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE);
	CU_ASSERT(memcmp(d.data, image, IMAGE_SIZE) == 0);
	server_stop(pid);
	/* The second request asked for exactly the missing bytes. */
	ranges = t_read(t_path("ranges.log"));
	snprintf(expected, sizeof(expected), "none\nbytes=%zu-\n", reached);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ranges);
	CU_ASSERT_STRING_EQUAL(ranges, expected);
	plugin_down(&f);
	free(ranges);
	free(image);
	free(d.data);
}

/* A resume names the version it continues (If-Range with the first
 * answer's ETag): the server that still has it sends the rest. */
TEST_CASE(resume_sends_if_range)
{
	struct fixture f;
	struct reimage_open_opts opts = { .struct_size = sizeof(opts) };
	struct download d = { .opts = &opts };
	struct reimage_error err = { 0 };
	unsigned char *image = make_image(IMAGE_SIZE);
	char *sent;
	int port;
	pid_t pid = tiny_start(TINY_CUT_ONCE, image, IMAGE_SIZE, &port);

	plugin_up(&f, "%s", "");
	download(&f, url(port, "/image.bin"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, -ECONNRESET);
	CU_ASSERT_STRING_EQUAL(opts.validator, "\"v1\"");
	err_clear(&err);
	download(&f, url(port, "/image.bin"), d.len, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE);
	CU_ASSERT(memcmp(d.data, image, IMAGE_SIZE) == 0);
	server_stop(pid);
	sent = t_read(t_path("if-range.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(sent);
	CU_ASSERT_STRING_EQUAL(sent, "none\n\"v1\"\n");
	plugin_down(&f);
	free(sent);
	free(image);
	free(d.data);
}

/* The resource changed between the cut and the resume: whether the
 * server sends the new version whole (200, If-Range honoured) or a range
 * of it (206 with another ETag), the open fails with -ESTALE and no byte
 * of the new version is handed on as the rest of the old one. */
static void resume_of_changed(enum tiny_mode mode, int status)
{
	struct fixture f;
	struct reimage_open_opts opts = { .struct_size = sizeof(opts) };
	struct download d = { .opts = &opts };
	struct reimage_error err = { 0 };
	unsigned char *image = make_image(IMAGE_SIZE), *other = make_image(IMAGE_SIZE);
	char needle[64];
	size_t reached;
	int port;

	for (size_t i = 0; i < IMAGE_SIZE; i++)
		other[i] ^= 0x5a;
	pid_t pid = tiny_start_changing(mode, image, IMAGE_SIZE, other, IMAGE_SIZE, &port);
	plugin_up(&f, "%s", "");
	download(&f, url(port, "/image.bin"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.read_r, -ECONNRESET);
	reached = d.len;
	CU_ASSERT_STRING_EQUAL(opts.validator, "\"v1\"");
	err_clear(&err);
	download(&f, url(port, "/image.bin"), reached, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, -ESTALE);
	CU_ASSERT_EQUAL(d.len, reached);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "changed since it was first read "
						 "(validator \"v1\", now \"v2\"");
	snprintf(needle, sizeof(needle), "%s", status == 200 ? "the whole new version" : "v2\")");
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
	server_stop(pid);
	plugin_down(&f);
	free(image);
	free(other);
	free(d.data);
}

TEST_CASE(resume_of_changed_resource_whole_refused)
{
	resume_of_changed(TINY_CHANGED, 200);
}

TEST_CASE(resume_of_changed_resource_range_refused)
{
	resume_of_changed(TINY_CHANGED_IGNORES_IF_RANGE, 206);
}

/* nginx: its ETag is the validator; If-Range with it gets the rest, with
 * the ETag of a file since replaced the new file whole, refused. */
TEST_CASE(resume_validator_with_nginx)
{
	struct fixture f;
	struct nginx n;
	struct reimage_open_opts opts = { .struct_size = sizeof(opts) };
	struct download d = { .opts = &opts };
	struct reimage_error err = { 0 };
	const uint64_t offset = 1234567;
	unsigned char *image;
	char first[REIMAGE_ETAG_MAX];

	nginx_start(&n, 0);
	image = serve_image("image.bin");
	plugin_up(&f, "%s", "");
	download(&f, url(n.port, "/image.bin"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT(opts.validator[0] == '"');
	snprintf(first, sizeof(first), "%s", opts.validator);
	d.len = 0;
	download(&f, url(n.port, "/image.bin"), offset, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE - offset);
	CU_ASSERT(memcmp(d.data, image + offset, IMAGE_SIZE - offset) == 0);
	/* Replaced by another version (another time: nginx's ETag is the
	 * modification time and size). */
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c %u /dev/zero > '%s' && touch -d '2001-01-01' '%s'",
				   IMAGE_SIZE, t_path("www/image.bin"), t_path("www/image.bin")), 0);
	snprintf(opts.validator, sizeof(opts.validator), "%s", first);
	d.len = 0;
	download(&f, url(n.port, "/image.bin"), offset, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, -ESTALE);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "the whole new version sent");
	plugin_down(&f);
	server_stop(n.pid);
	free(image);
	free(d.data);
}

TEST_CASE(server_ignores_range)
{
	struct fixture f;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	unsigned char *image = make_image(IMAGE_SIZE);
	const uint64_t offset = 1000003;
	char *ranges;
	int port;
	pid_t pid = tiny_start(TINY_NO_RANGE, image, IMAGE_SIZE, &port);

	plugin_up(&f, "%s", "");
	download(&f, url(port, "/image.bin"), offset, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE - offset);
	CU_ASSERT(memcmp(d.data, image + offset, IMAGE_SIZE - offset) == 0);
	server_stop(pid);
	ranges = t_read(t_path("ranges.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ranges);
	CU_ASSERT_STRING_EQUAL(ranges, "bytes=1000003-\n");
	plugin_down(&f);
	free(ranges);
	free(image);
	free(d.data);
}

TEST_CASE(range_exact)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	unsigned char *image;

	nginx_start(&n, 0);
	image = serve_image("image.bin");
	plugin_up(&f, "%s", "");
	/* Exactly the bytes asked, and the whole resource's size. */
	download_range(&f, url(n.port, "/image.bin"), 1000003, 70001, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);
	CU_ASSERT_EQUAL(d.len, 70001);
	CU_ASSERT(memcmp(d.data, image + 1000003, 70001) == 0);
	/* The last byte alone. */
	d.len = 0;
	download_range(&f, url(n.port, "/image.bin"), IMAGE_SIZE - 1, 1, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.len, 1);
	CU_ASSERT_EQUAL(d.data[0], image[IMAGE_SIZE - 1]);
	/* Past the end: the resource is not what the caller thinks. */
	d.len = 0;
	download_range(&f, url(n.port, "/image.bin"), IMAGE_SIZE, 10, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, -ERANGE);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "416");
	server_stop(n.pid);
	plugin_down(&f);
	free(image);
	free(d.data);
}

TEST_CASE(range_ignored_refused)
{
	struct fixture f;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	unsigned char *image = make_image(IMAGE_SIZE);
	char *ranges;
	int port;
	pid_t pid = tiny_start(TINY_NO_RANGE, image, IMAGE_SIZE, &port);

	/* A 200 with the whole body to a range: refused before any byte. */
	plugin_up(&f, "%s", "");
	download_range(&f, url(port, "/image.bin"), 4096, 512, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, -ENOTSUP);
	CU_ASSERT_EQUAL(d.len, 0);
	expect_error(&err, REIMAGE_EC_UNSUPPORTED, "ignored the range");
	server_stop(pid);
	ranges = t_read(t_path("ranges.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ranges);
	/* One request (the tiny server logs a range's start only). */
	CU_ASSERT_STRING_EQUAL(ranges, "bytes=4096-\n");
	plugin_down(&f);
	free(ranges);
	free(image);
	free(d.data);
}

TEST_CASE(max_bandwidth)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	const uint64_t offset = IMAGE_SIZE - 1024 * 1024;
	unsigned char *image;
	double t0, elapsed;

	nginx_start(&n, 0);
	image = serve_image("image.bin");
	plugin_up(&f, "max_bandwidth = %d;", 400 * 1024);
	t0 = now_s();
	download(&f, url(n.port, "/image.bin"), offset, &d, &err);
	elapsed = now_s() - t0;
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE - offset);
	CU_ASSERT(memcmp(d.data, image + offset, d.len) == 0);
	/* 1 MiB at 400 KiB/s takes about 2.5 s; unlimited, a few ms. */
	CU_ASSERT(elapsed > 1.8);
	CU_ASSERT(elapsed < 20);
	plugin_down(&f);
	server_stop(n.pid);
	free(image);
	free(d.data);
}

/* --------------------------------------------------------------- errors */

TEST_CASE(not_found)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	char with_password[512];

	nginx_start(&n, 0);
	plugin_up(&f, "%s", "");
	snprintf(with_password, sizeof(with_password),
		 "http://agent:hunter2@127.0.0.1:%d/missing.bin?sig=abc", n.port);
	download(&f, with_password, 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, -ENOENT);
	expect_error(&err, REIMAGE_EC_NOTFOUND, "HTTP status 404");
	/* The URL is named, without its credentials or query. */
	expect_error(&err, REIMAGE_EC_NOTFOUND, url(n.port, "/missing.bin?..."));
	CU_ASSERT_PTR_NULL(strstr(err.msg, "hunter2"));
	CU_ASSERT_PTR_NULL(strstr(err.msg, "sig=abc"));
	plugin_down(&f);
	server_stop(n.pid);
	free(d.data);
}

TEST_CASE(server_error_is_retryable)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };

	nginx_start(&n, 0);
	plugin_up(&f, "%s", "");
	download(&f, url(n.port, "/fail"), 0, &d, &err);
	CU_ASSERT(d.open_r < 0);
	expect_error(&err, REIMAGE_EC_RETRYABLE, "HTTP status 500");
	plugin_down(&f);
	server_stop(n.pid);
	free(d.data);
}

TEST_CASE(connection_refused)
{
	struct fixture f;
	struct download d = { 0 };
	struct reimage_error err = { 0 };

	plugin_up(&f, "%s", "");
	download(&f, url(free_port(), "/image.bin"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, -ECONNREFUSED);
	expect_error(&err, REIMAGE_EC_NETWORK, "127.0.0.1");
	plugin_down(&f);
	free(d.data);
}

TEST_CASE(bad_url)
{
	struct fixture f;
	struct download d = { 0 };
	struct reimage_error err = { 0 };

	plugin_up(&f, "%s", "");
	download(&f, "http://[::1/image.bin", 0, &d, &err);
	CU_ASSERT(d.open_r < 0);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	plugin_down(&f);
	free(d.data);
}

TEST_CASE(silent_server_times_out)
{
	struct fixture f;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	unsigned char byte = 0;
	double t0, elapsed;
	int port;
	pid_t pid = tiny_start(TINY_SILENT, &byte, 1, &port);

	plugin_up(&f, "low_speed_limit = 100; low_speed_time = 2;");
	t0 = now_s();
	download(&f, url(port, "/image.bin"), 0, &d, &err);
	elapsed = now_s() - t0;
	CU_ASSERT_EQUAL(d.open_r, -ETIMEDOUT);
	expect_error(&err, REIMAGE_EC_RETRYABLE, url(port, "/image.bin"));
	CU_ASSERT(elapsed >= 1.5);
	CU_ASSERT(elapsed < 6);
	server_stop(pid);
	plugin_down(&f);
	free(d.data);
}

/* The flag a SIGTERM handler sets, watched by the host table. */
static volatile sig_atomic_t stop_flag;

static void on_alarm(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/* A stop request arrives (the flag set from a signal handler) 0.3 s
 * from now, while the transfer is stalled. */
static void stop_soon(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval in = { .it_value = { 0, 300000 } };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	stop_flag = 0;
	registry_watch_stop(&stop_flag);
	CU_ASSERT_EQUAL_FATAL(setitimer(ITIMER_REAL, &in, NULL), 0);
}

/* A stalled transfer -- a server that never answers, then one that stops
 * sending halfway -- ends within about a second of a stop request, with
 * "stopped on request", not after the 60 s of low_speed_time. */
TEST_CASE(stop_ends_a_stalled_transfer)
{
	static const enum tiny_mode modes[] = { TINY_SILENT, TINY_STALL };
	unsigned char *body = make_image(200000);

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct fixture f;
		struct download d = { 0 };
		struct reimage_error err = { 0 };
		int port;
		pid_t pid = tiny_start(modes[i], body, 200000, &port);

		plugin_up(&f, "low_speed_limit = 100; low_speed_time = 60;");
		stop_soon();
		double t0 = now_s();
		download(&f, url(port, "/image.bin"), 0, &d, &err);
		double elapsed = now_s() - t0;
		if (modes[i] == TINY_SILENT) {
			CU_ASSERT_EQUAL(d.open_r, -ECANCELED);
		} else {
			CU_ASSERT_EQUAL(d.open_r, 0);
			CU_ASSERT_EQUAL(d.len, 100000);  /* what came before the stall */
			CU_ASSERT_EQUAL(d.read_r, -ECANCELED);
		}
		expect_error(&err, REIMAGE_EC_STATE, "stopped on request");
		CU_ASSERT(elapsed < 10);
		registry_watch_stop(NULL);
		server_stop(pid);
		plugin_down(&f);
		free(d.data);
	}
	free(body);
}

/* A job's transport-http group changes only the settings it names: the
 * agent file's headers, token and timeouts stay (the job's win where both
 * set one); a mistake in either names its file and line. */
TEST_CASE(job_group_merges_with_the_agent_group)
{
	struct registry reg;
	struct agent_conf ac;
	struct job job;
	struct plugin *p = NULL;
	struct reimage_error err = { 0 };
	const config_setting_t *groups[2];
	size_t n;

	char agent[1024];
	t_write(t_path("token"), "s3cret\n");
	snprintf(agent, sizeof(agent), "transport-http: {\n  headers = [ \"X-Site: lab\" ];\n"
		 "  max_bandwidth = 1000;\n  connect_timeout = 5;\n"
		 "  bearer_token_file = \"%s\";\n};\n", t_path("token"));
	t_write(t_path("agent.conf"), agent);
	t_write(t_path("job.conf"), "id = \"test-job\";\nserial = 7;\nbackend = \"sandbox\";\n"
		"image: { url = \"http://127.0.0.1:1/image.tar\"; };\n"
		"transport-http: { max_bandwidth = 2000; };\n");
	CU_ASSERT_EQUAL_FATAL(agent_conf_load(&ac, t_path("agent.conf"), &err), 0);
	CU_ASSERT_EQUAL_FATAL(job_load(&job, t_path("job.conf"), &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_init(&reg, NULL, &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_require(&reg, "transport-http", &p, &err), 0);
	n = config_plugin_groups(&job, &ac, "transport-http", groups);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_EQUAL_FATAL(plugin_configure_groups(p, groups, n, &err), 0);
	const struct reimage_option *t = p->desc->transport->options;
	const struct reimage_optval *v = p->values;
	CU_ASSERT_EQUAL(v[options_index(t, "max_bandwidth")].i, 2000);
	CU_ASSERT_EQUAL(v[options_index(t, "connect_timeout")].i, 5);
	const char *const *headers = v[options_index(t, "headers")].list;
	CU_ASSERT(headers && headers[0] && !strcmp(headers[0], "X-Site: lab") && !headers[1]);
	CU_ASSERT_PTR_NOT_NULL(v[options_index(t, "bearer_token_file")].s);
	CU_ASSERT_EQUAL(v[options_index(t, "low_speed_time")].i, 60);  /* a default */
	/* Without a job: the agent file's alone. */
	n = config_plugin_groups(NULL, &ac, "transport-http", groups);
	CU_ASSERT_EQUAL_FATAL(plugin_configure_groups(p, groups, n, &err), 0);
	CU_ASSERT_EQUAL(p->values[options_index(t, "max_bandwidth")].i, 1000);
	CU_ASSERT_EQUAL(plugin_start(p, &err), 0);
	registry_fini(&reg);
	job_free(&job);

	/* A mistake in the job's group names the job file. */
	t_write(t_path("job.conf"), "id = \"test-job\";\nserial = 7;\nbackend = \"sandbox\";\n"
		"image: { url = \"http://127.0.0.1:1/image.tar\"; };\n"
		"transport-http: { max_bandwith = 2000; };\n");
	CU_ASSERT_EQUAL_FATAL(job_load(&job, t_path("job.conf"), &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_init(&reg, NULL, &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_require(&reg, "transport-http", &p, &err), 0);
	n = config_plugin_groups(&job, &ac, "transport-http", groups);
	CU_ASSERT(plugin_configure_groups(p, groups, n, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "job.conf:5: unknown setting 'max_bandwith'"));
	if (!strstr(err.msg, "job.conf:5"))
		fprintf(stderr, "message: %s\n", err.msg);
	registry_fini(&reg);
	job_free(&job);
	agent_conf_free(&ac);
}

TEST_CASE(bad_settings_refused)
{
	static const struct {
		const char *settings, *needle;
	} cases[] = {
		{ "client_cert = \"/nonexistent.pem\";", "agent.conf:1: setting 'client_cert': "
		  "client_cert and client_key" },
		{ "ca_file = \"/nonexistent/ca.pem\";", "cannot read '/nonexistent/ca.pem'" },
		{ "pinned_public_key = \"/etc/key.pem\";", "sha256//" },
		{ "headers = [ \"no colon here\" ];", "not a header line" },
		{ "low_speed_time = 0;", "out of range" },
		{ "retries = 3;", "retries" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture f;
		struct reimage_error err = { 0 };

		CU_ASSERT(plugin_try(&f, cases[i].settings, &err) < 0);
		CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, cases[i].needle));
		if (!strstr(err.msg, cases[i].needle))
			fprintf(stderr, "for %s: %s\n", cases[i].settings, err.msg);
		plugin_down(&f);
	}
}

/* ------------------------------------------------------------------ TLS */

static const char *https_url(const struct nginx *n, const char *path)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "https://127.0.0.1:%d%s", n->tls_port, path);
	return buf;
}

TEST_CASE(tls_with_ca_file)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	unsigned char *image;

	tls_make_certs();
	nginx_start(&n, 1);
	image = serve_image("image.bin");
	plugin_up(&f, "ca_file = \"%s\";", TLS_FILE("ca.pem"));
	download(&f, https_url(&n, "/image.bin"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.read_r, 0);
	CU_ASSERT_EQUAL(d.len, IMAGE_SIZE);
	CU_ASSERT(memcmp(d.data, image, IMAGE_SIZE) == 0);
	plugin_down(&f);
	server_stop(n.pid);
	free(image);
	free(d.data);
}

TEST_CASE(tls_unknown_ca_refused)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };

	tls_make_certs();
	nginx_start(&n, 1);
	t_write(t_path("www/doc.txt"), "hello\n");
	/* The system's CAs do not know the test's CA: verification is on. */
	plugin_up(&f, "%s", "");
	download(&f, https_url(&n, "/doc.txt"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, -EPROTO);
	expect_error(&err, REIMAGE_EC_TLS, https_url(&n, "/doc.txt"));
	plugin_down(&f);
	server_stop(n.pid);
	free(d.data);
}

TEST_CASE(tls_pinned_key)
{
	struct fixture f;
	struct nginx n;
	struct download d = { 0 };
	struct reimage_error err = { 0 };
	char *right = NULL, *wrong = NULL;

	tls_make_certs();
	nginx_start(&n, 1);
	t_write(t_path("www/doc.txt"), "hello\n");
	right = tls_pin_of(TLS_FILE("server.pem"));
	wrong = tls_pin_of(TLS_FILE("ca.pem"));
	plugin_up(&f, "ca_file = \"%s\"; pinned_public_key = \"%s\";", TLS_FILE("ca.pem"), right);
	download(&f, https_url(&n, "/doc.txt"), 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.len, 6);
	plugin_down(&f);
	/* A certificate the CA vouches for, but not the pinned key. */
	d.len = 0;
	plugin_up(&f, "ca_file = \"%s\"; pinned_public_key = \"%s\";", TLS_FILE("ca.pem"), wrong);
	download(&f, https_url(&n, "/doc.txt"), 0, &d, &err);
	CU_ASSERT(d.open_r < 0);
	expect_error(&err, REIMAGE_EC_TLS, "curl error 90");
	plugin_down(&f);
	server_stop(n.pid);
	free(right);
	free(wrong);
	free(d.data);
}

TEST_CASE(tls_client_certificate)
{
	struct fixture f;
	struct nginx n;
	struct reimage_error err = { 0 };
	char buf[64], etag[REIMAGE_ETAG_MAX] = "";
	size_t len = 0;

	tls_make_certs();
	nginx_start(&n, 1);
	CU_ASSERT_FATAL(mkdir(t_path("www/mtls"), 0755) == 0);
	t_write(t_path("www/mtls/doc.txt"), "for agents only\n");
	plugin_up(&f, "ca_file = \"%s\"; client_cert = \"%s\"; client_key = \"%s\";",
		  TLS_FILE("ca.pem"), TLS_FILE("client.pem"), TLS_FILE("client.key"));
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, https_url(&n, "/mtls/doc.txt"), buf, sizeof(buf),
				     &len, etag, NULL, &err), 0);
	CU_ASSERT_EQUAL(len, 16);
	CU_ASSERT(memcmp(buf, "for agents only\n", 16) == 0);
	plugin_down(&f);
	/* Without the client certificate the server refuses. */
	plugin_up(&f, "ca_file = \"%s\";", TLS_FILE("ca.pem"));
	etag[0] = '\0';
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, https_url(&n, "/mtls/doc.txt"), buf, sizeof(buf),
				     &len, etag, NULL, &err), -EACCES);
	expect_error(&err, REIMAGE_EC_ACCESS, "HTTP status 403");
	plugin_down(&f);
	server_stop(n.pid);
}

/* ------------------------------------------------------------ documents */

TEST_CASE(put_fetch_remove)
{
	struct fixture f;
	struct nginx n;
	struct reimage_error err = { 0 };
	const char *first = "{\"serial\": 7}\n", *second = "{\"serial\": 8, \"at\": \"03:00\"}\n";
	char buf[256], etag[REIMAGE_ETAG_MAX] = "", old_etag[REIMAGE_ETAG_MAX];
	const char *doc;
	size_t len = 0;
	int64_t date = 0;
	char *on_disk;

	nginx_start(&n, 0);
	plugin_up(&f, "%s", "");
	doc = url(n.port, "/dav/jobs/host1/job.json");
	/* PUT creates the document, directories included. */
	CU_ASSERT_EQUAL_FATAL(f.ops->put(f.plugin->ctx, doc, first, strlen(first), "application/json",
					 &err), 0);
	on_disk = t_read(t_path("www/dav/jobs/host1/job.json"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(on_disk);
	CU_ASSERT_STRING_EQUAL(on_disk, first);
	free(on_disk);
	/* Read back with its validator and the server's clock. */
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, &date, &err), 0);
	CU_ASSERT_EQUAL(len, strlen(first));
	CU_ASSERT(memcmp(buf, first, len) == 0);
	CU_ASSERT(etag[0] == '"');
	CU_ASSERT(date > (int64_t)time(NULL) - 3600 && date < (int64_t)time(NULL) + 3600);
	/* Unchanged: not modified, the validator kept. */
	memcpy(old_etag, etag, sizeof(etag));
	len = 0;
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, &date, &err),
			REIMAGE_NOT_MODIFIED);
	CU_ASSERT_STRING_EQUAL(etag, old_etag);
	CU_ASSERT_EQUAL(len, 0);
	/* Replaced: the new document and a new validator. */
	CU_ASSERT_EQUAL(f.ops->put(f.plugin->ctx, doc, second, strlen(second), NULL, &err), 0);
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, NULL, &err), 0);
	CU_ASSERT_EQUAL(len, strlen(second));
	CU_ASSERT(memcmp(buf, second, len) == 0);
	CU_ASSERT_STRING_NOT_EQUAL(etag, old_etag);
	/* Removed, then removing again is fine, and fetching is NOTFOUND. */
	CU_ASSERT_EQUAL(f.ops->remove(f.plugin->ctx, doc, &err), 0);
	CU_ASSERT_PTR_NULL(t_read(t_path("www/dav/jobs/host1/job.json")));
	CU_ASSERT_EQUAL(f.ops->remove(f.plugin->ctx, doc, &err), 0);
	etag[0] = '\0';
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, NULL, &err),
			-ENOENT);
	expect_error(&err, REIMAGE_EC_NOTFOUND, "HTTP status 404");
	/* A location that takes no PUT says so. */
	err_clear(&err);
	CU_ASSERT(f.ops->put(f.plugin->ctx, url(n.port, "/nodav.json"), first, strlen(first), NULL,
			     &err) < 0);
	expect_error(&err, REIMAGE_EC_CONFIG, "HTTP status 405");
	plugin_down(&f);
	server_stop(n.pid);
}

/* fetch() with a cap smaller than the document: refused, nothing past cap. */
static void expect_over_cap(struct fixture *f, const char *doc_url)
{
	struct reimage_error err = { 0 };
	char buf[4096 + 64], etag[REIMAGE_ETAG_MAX] = "";
	size_t len = 12345;

	memset(buf, 'Z', sizeof(buf));
	CU_ASSERT_EQUAL(f->ops->fetch(f->plugin->ctx, doc_url, buf, 4096, &len, etag, NULL, &err),
			-EFBIG);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "larger than 4096 bytes");
	CU_ASSERT_EQUAL(len, 12345);  /* untouched on failure */
	for (size_t i = 4096; i < sizeof(buf); i++)
		CU_ASSERT_EQUAL_FATAL(buf[i], 'Z');
}

TEST_CASE(fetch_over_cap_refused)
{
	struct fixture f;
	struct nginx n;
	struct reimage_error err = { 0 };
	unsigned char *doc = make_image(10000);
	char buf[10000], etag[REIMAGE_ETAG_MAX] = "";
	size_t len = 0;
	int port;
	pid_t pid;

	nginx_start(&n, 0);
	write_file(t_path("www/big.json"), doc, 10000);
	plugin_up(&f, "%s", "");
	/* nginx declares the length: refused before the body. */
	expect_over_cap(&f, url(n.port, "/big.json"));
	/* No length declared: refused when the body passes the cap. */
	pid = tiny_start(TINY_NO_LENGTH, doc, 10000, &port);
	expect_over_cap(&f, url(port, "/big.json"));
	/* A cap the document just fits is fine. */
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, url(port, "/big.json"), buf, sizeof(buf), &len,
				     etag, NULL, &err), 0);
	CU_ASSERT_EQUAL(len, 10000);
	CU_ASSERT(memcmp(buf, doc, 10000) == 0);
	server_stop(pid);
	plugin_down(&f);
	server_stop(n.pid);
	free(doc);
}

/* The access log once it has at least lines lines (bounded: 5 s). */
static char *access_log(int lines)
{
	const struct timespec pause = { 0, 50 * 1000 * 1000 };

	for (int i = 0; i < 100; i++) {
		char *log = t_read(t_path("nginx/access.log"));
		int have = 0;

		for (const char *p = log; p && (p = strchr(p, '\n')); p++)
			have++;
		if (have >= lines)
			return log;
		free(log);
		nanosleep(&pause, NULL);
	}
	return t_read(t_path("nginx/access.log"));
}

TEST_CASE(bearer_token_and_headers)
{
	struct fixture f;
	struct nginx n;
	struct reimage_error err = { 0 };
	char buf[64], etag[REIMAGE_ETAG_MAX] = "";
	size_t len = 0;
	char *log;

	nginx_start(&n, 0);
	t_write(t_path("www/doc.txt"), "hello\n");
	t_write(t_path("token"), TOKEN "\n");
	plugin_up(&f, "bearer_token_file = \"%s\"; headers = [ \"X-Reimage-Test: yes\" ];"
		  " user_agent = \"reimage-test/1\";", t_path("token"));
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, url(n.port, "/doc.txt"), buf, sizeof(buf), &len,
				     etag, NULL, &err), 0);
	/* Failures name the URL and status, never the token. */
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, url(n.port, "/missing.txt"), buf, sizeof(buf),
				     &len, etag, NULL, &err), -ENOENT);
	expect_error(&err, REIMAGE_EC_NOTFOUND, "/missing.txt");
	CU_ASSERT_PTR_NULL(strstr(err.msg, TOKEN));
	log = access_log(2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "GET /doc.txt 200 auth=\"Bearer " TOKEN "\" test=\"yes\" "
				      "ua=\"reimage-test/1\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "GET /missing.txt 404 auth=\"Bearer " TOKEN "\""));
	if (!strstr(log, "GET /doc.txt 200 auth=\"Bearer " TOKEN))
		fprintf(stderr, "access.log:\n%s\n", log);
	free(log);
	plugin_down(&f);
	server_stop(n.pid);
}

/* ------------------------------------------------------------------- s3 */

/* Settings for the gateway; secret: the secret key file's content. */
static void s3_plugin_up(struct fixture *f, const struct rgw *g, const char *secret)
{
	t_write(t_path("s3.secret"), secret);
	plugin_up(f, "s3_endpoint = \"http://127.0.0.1:%d\"; s3_access_key_id = \"%s\"; "
		  "s3_secret_key_file = \"%s\";", g->port, RGW_ACCESS_KEY, t_path("s3.secret"));
}

struct listed {
	int pages;
	size_t n;
};

TEST_CASE(s3_documents_listing_and_stream_against_rgw)
{
	struct fixture f, wrong;
	struct rgw g;
	struct reimage_error err = { 0 };
	const char *first = "{\"serial\": 7}\n", *second = "{\"serial\": 8}\n";
	const char *doc = "s3://" RGW_BUCKET "/jobs/pc-1.job";
	char buf[256], etag[REIMAGE_ETAG_MAX] = "", old_etag[REIMAGE_ETAG_MAX], *seen;
	size_t len = 0, cap = 1 << 20;
	char *listing = malloc(cap);
	struct download d = { 0 };
	unsigned char *image;

	CU_ASSERT_PTR_NOT_NULL_FATAL(listing);
	rgw_start(&g);
	s3_plugin_up(&f, &g, RGW_SECRET_KEY "\n");
	/* put: what curl's own SigV4 reads back is what was sent. */
	CU_ASSERT_EQUAL_FATAL(f.ops->put(f.plugin->ctx, doc, first, strlen(first), "application/json",
					 &err), 0);
	seen = rgw_get(&g, "jobs/pc-1.job");
	CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
	CU_ASSERT_STRING_EQUAL(seen, first);
	free(seen);
	/* fetch with the ETag; unchanged: not modified; replaced: new. */
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, NULL, &err), 0);
	CU_ASSERT(len == strlen(first) && memcmp(buf, first, len) == 0);
	CU_ASSERT(etag[0] == '"');
	memcpy(old_etag, etag, sizeof(etag));
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, NULL, &err),
			REIMAGE_NOT_MODIFIED);
	CU_ASSERT_EQUAL(f.ops->put(f.plugin->ctx, doc, second, strlen(second), NULL, &err), 0);
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, NULL, &err), 0);
	CU_ASSERT(len == strlen(second) && memcmp(buf, second, len) == 0);
	CU_ASSERT_STRING_NOT_EQUAL(etag, old_etag);

	/* A listing of more than one page (1,000 keys a page): every report,
	 * the folder beside them, nothing from elsewhere in the bucket. */
	t_write(t_path("report.json"), "{}");
	CU_ASSERT_EQUAL_FATAL(rgw_put_file(&g, "reports/pc-[0-1004].json", t_path("report.json")), 0);
	CU_ASSERT_EQUAL_FATAL(f.ops->put(f.plugin->ctx, "s3://" RGW_BUCKET "/reports/job-1/pc-1.json",
					 "{}", 2, NULL, &err), 0);
	etag[0] = '\0';
	CU_ASSERT_EQUAL_FATAL(f.ops->fetch(f.plugin->ctx, "s3://" RGW_BUCKET "/reports/", listing,
					   cap - 1, &len, etag, NULL, &err), 0);
	listing[len] = '\0';
	json_error_t jerr;
	json_t *a = json_loads(listing, 0, &jerr), *e;
	size_t i, files = 0, dirs = 0;
	CU_ASSERT_FATAL(json_is_array(a));
	json_array_foreach(a, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *type = json_string_value(json_object_get(e, "type"));
		CU_ASSERT_FATAL(name && type);
		if (!strcmp(type, "directory")) {
			CU_ASSERT_STRING_EQUAL(name, "job-1");
			dirs++;
		} else {
			CU_ASSERT(!strncmp(name, "pc-", 3) && !strchr(name, '/'));
			files++;
		}
	}
	CU_ASSERT_EQUAL(files, 1005);
	CU_ASSERT_EQUAL(dirs, 1);
	json_decref(a);
	/* A cap the listing does not fit in is refused, not cut. */
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, "s3://" RGW_BUCKET "/reports/", listing, 1000,
				     &len, etag, NULL, &err), -EFBIG);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "larger than 1000 bytes");

	/* The image stream: whole, then a range, byte for byte. */
	image = make_image(IMAGE_SIZE);
	write_file(t_path("image.bin"), image, IMAGE_SIZE);
	CU_ASSERT_EQUAL_FATAL(rgw_put_file(&g, "images/image.bin", t_path("image.bin")), 0);
	download(&f, "s3://" RGW_BUCKET "/images/image.bin", 0, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT_EQUAL(d.size, IMAGE_SIZE);
	CU_ASSERT(d.len == IMAGE_SIZE && memcmp(d.data, image, IMAGE_SIZE) == 0);
	d.len = 0;
	download_range(&f, "s3://" RGW_BUCKET "/images/image.bin", 1000003, 65537, &d, &err);
	CU_ASSERT_EQUAL(d.open_r, 0);
	CU_ASSERT(d.len == 65537 && memcmp(d.data, image + 1000003, 65537) == 0);

	/* remove; again is fine; then NOTFOUND. */
	err_clear(&err);
	CU_ASSERT_EQUAL(f.ops->remove(f.plugin->ctx, doc, &err), 0);
	CU_ASSERT_PTR_NULL(rgw_get(&g, "jobs/pc-1.job"));
	CU_ASSERT_EQUAL(f.ops->remove(f.plugin->ctx, doc, &err), 0);
	etag[0] = '\0';
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, doc, buf, sizeof(buf), &len, etag, NULL, &err),
			-ENOENT);
	expect_error(&err, REIMAGE_EC_NOTFOUND, doc);

	/* A wrong secret: refused as access, the secret never shown. */
	s3_plugin_up(&wrong, &g, "not-the-secret\n");
	err_clear(&err);
	CU_ASSERT_EQUAL(wrong.ops->put(wrong.plugin->ctx, doc, first, strlen(first), NULL, &err),
			-EACCES);
	expect_error(&err, REIMAGE_EC_ACCESS, "HTTP status 403 (S3 refused the request: check");
	CU_ASSERT_PTR_NULL(strstr(err.msg, "not-the-secret"));
	CU_ASSERT_PTR_NULL(rgw_get(&g, "jobs/pc-1.job"));
	plugin_down(&wrong);
	/* No key at all: unsigned requests, which a private bucket refuses. */
	plugin_up(&wrong, "s3_endpoint = \"http://127.0.0.1:%d\";", g.port);
	CU_ASSERT_EQUAL(wrong.ops->fetch(wrong.plugin->ctx, "s3://" RGW_BUCKET "/reports/pc-1.json",
					 buf, sizeof(buf), &len, etag, NULL, &err), -EACCES);
	plugin_down(&wrong);
	free(d.data);
	free(image);
	free(listing);
	plugin_down(&f);
	rgw_stop(&g);
}

TEST_CASE(s3_bad_settings_and_urls_refused)
{
	static const struct {
		const char *settings, *needle;
	} bad[] = {
		{ "s3_endpoint = \"ftp://example.com\";", "s3_endpoint" },
		{ "s3_endpoint = \"https://example.com/prefix\";", "no path" },
		{ "s3_region = \"EU West\";", "not a region name" },
		{ "s3_access_key_id = \"AKIA0000\";", "given together" },
		{ "s3_addressing = \"sideways\";", "\"path\" or \"virtual\"" },
	};
	struct fixture f;
	struct reimage_error err = { 0 };
	char buf[64], etag[REIMAGE_ETAG_MAX] = "";
	size_t len = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&err);
		CU_ASSERT(plugin_try(&f, bad[i].settings, &err) < 0);
		expect_error(&err, REIMAGE_EC_CONFIG, bad[i].needle);
		/* The file and line of the setting. */
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "agent.conf:1"));
		plugin_down(&f);
	}
	/* A bucket name S3 cannot have is the URL's error, before a request. */
	plugin_up(&f, "s3_endpoint = \"http://127.0.0.1:9\";");
	err_clear(&err);
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, "s3://Bad_Bucket/x", buf, sizeof(buf), &len, etag,
				     NULL, &err), -EINVAL);
	expect_error(&err, REIMAGE_EC_CONFIG, "s3://Bad_Bucket/x");
	/* Nor a key that climbs out of its bucket. */
	err_clear(&err);
	CU_ASSERT_EQUAL(f.ops->fetch(f.plugin->ctx, "s3://store/reports/../../other/x", buf,
				     sizeof(buf), &len, etag, NULL, &err), -EINVAL);
	expect_error(&err, REIMAGE_EC_CONFIG, "no '.' or '..' in the key");
	plugin_down(&f);
}

/* A listing answer nginx serves for every page (its index.html ignores
 * the query), read through an unsigned s3 store. */
static int list_hostile(struct fixture *f, const char *xml, char *buf, size_t cap, size_t *len,
			struct reimage_error *err)
{
	char etag[REIMAGE_ETAG_MAX] = "";

	t_write(t_path("www/store/index.html"), xml);
	err_clear(err);
	return f->ops->fetch(f->plugin->ctx, "s3://store/reports/", buf, cap, len, etag, NULL, err);
}

TEST_CASE(s3_hostile_listings_refused)
{
	struct fixture f;
	struct nginx n;
	struct reimage_error err = { 0 };
	char buf[65536], xml[8192];
	size_t len = 0;
	const char *head = "<?xml version=\"1.0\"?><ListBucketResult>";

	nginx_start(&n, 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("www/store")), 0);
	t_write(t_path("secret.txt"), "TOP-SECRET-FILE\n");
	plugin_up(&f, "s3_endpoint = \"http://127.0.0.1:%d\";", n.port);
	/* A good page: names under the prefix only, folders as directories. */
	snprintf(xml, sizeof(xml), "%s<Contents><Key>reports/pc-1.json</Key></Contents>"
		 "<Contents><Key>elsewhere/pc-2.json</Key></Contents>"
		 "<CommonPrefixes><Prefix>reports/job-1/</Prefix></CommonPrefixes>"
		 "<IsTruncated>false</IsTruncated></ListBucketResult>", head);
	CU_ASSERT_EQUAL(list_hostile(&f, xml, buf, sizeof(buf), &len, &err), 0);
	buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
	CU_ASSERT_STRING_EQUAL(buf, "[{\"name\":\"pc-1.json\",\"type\":\"file\"},"
			       "{\"name\":\"job-1\",\"type\":\"directory\"}]");
	/* Entities, external or internal: a document type is refused. */
	snprintf(xml, sizeof(xml), "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM "
		 "\"file://%s\"><!ENTITY y \"reports/expanded\">]><ListBucketResult><Contents>"
		 "<Key>reports/&x;</Key></Contents><Contents><Key>&y;</Key></Contents>"
		 "<IsTruncated>false</IsTruncated></ListBucketResult>", t_path("secret.txt"));
	CU_ASSERT_EQUAL(list_hostile(&f, xml, buf, sizeof(buf), &len, &err), -EBADMSG);
	CU_ASSERT_PTR_NULL(strstr(err.msg, "TOP-SECRET"));
	/* Exponential entities ("billion laughs"): refused before expansion. */
	snprintf(xml, sizeof(xml), "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\">"
		 "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
		 "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
		 "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">"
		 "<!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\"><!ENTITY i \"&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;\">]>"
		 "<ListBucketResult><Contents><Key>reports/&i;</Key></Contents>"
		 "<IsTruncated>false</IsTruncated></ListBucketResult>");
	CU_ASSERT_EQUAL(list_hostile(&f, xml, buf, sizeof(buf), &len, &err), -EBADMSG);
	/* Not a listing; more pages without a token; a token that never ends. */
	CU_ASSERT_EQUAL(list_hostile(&f, "<html>hello</html>", buf, sizeof(buf), &len, &err),
			-EBADMSG);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "not a ListObjectsV2 answer");
	snprintf(xml, sizeof(xml), "%s<IsTruncated>true</IsTruncated></ListBucketResult>", head);
	CU_ASSERT_EQUAL(list_hostile(&f, xml, buf, sizeof(buf), &len, &err), -EBADMSG);
	snprintf(xml, sizeof(xml), "%s<Contents><Key>reports/pc-1.json</Key></Contents>"
		 "<IsTruncated>true</IsTruncated><NextContinuationToken>again</NextContinuationToken>"
		 "</ListBucketResult>", head);
	CU_ASSERT_EQUAL(list_hostile(&f, xml, buf, sizeof(buf), &len, &err), -EFBIG);
	expect_error(&err, REIMAGE_EC_INTEGRITY, "more than 1000 pages");
	plugin_down(&f);
	server_stop(n.pid);
}
