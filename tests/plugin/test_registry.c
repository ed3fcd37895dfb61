/*
 * test_registry.c -- the plugin registry and loader: built-ins, ABI
 * mismatch, missing plugin, name mismatch, missing entry, auto-probe,
 * scheme lookup; a transport called from one thread at a time.
 */
#include "harness.h"
#include "error.h"
#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void open_registry(struct registry *reg, const char *subdir)
{
	static char dir[4096];
	static const char *path[2];
	struct reimage_error err = { 0 };

	/* Only the test's own plugin directory is searched. */
	setenv("REIMAGE_PLUGIN_PATH", "", 1);
	snprintf(dir, sizeof(dir), "%s/tests/plugins/%s", t_bin_dir(), subdir);
	path[0] = dir;
	path[1] = NULL;
	CU_ASSERT_EQUAL_FATAL(registry_init(reg, path, &err), 0);
}

static void expect_load_error(const char *name, const char *needle)
{
	struct registry reg;
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;

	open_registry(&reg, "bad");
	CU_ASSERT(registry_require(&reg, name, &p, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
	if (!strstr(err.msg, needle))
		fprintf(stderr, "message was: %s\n", err.msg);
	registry_fini(&reg);
}

TEST_CASE(builtins)
{
	struct registry reg;
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;

	open_registry(&reg, "none");
	CU_ASSERT_PTR_NOT_NULL(registry_find(&reg, "file"));
	/* The sandbox backend is a module like any backend: not built in. */
	CU_ASSERT_PTR_NULL(registry_find(&reg, "sandbox"));
	CU_ASSERT(registry_backend(&reg, "sandbox", &p, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "sandbox"));
	registry_fini(&reg);
	memset(&err, 0, sizeof(err));
	open_registry(&reg, "../../plugins");  /* the build's modules */
	CU_ASSERT_EQUAL(registry_transport_for(&reg, "/srv/image.tar", &p, &err), 0);
	CU_ASSERT_STRING_EQUAL(p->name, "file");
	CU_ASSERT_EQUAL(registry_transport_for(&reg, "file:///srv/image.tar", &p, &err), 0);
	CU_ASSERT_STRING_EQUAL(p->name, "file");
	CU_ASSERT_EQUAL(registry_backend(&reg, "sandbox", &p, &err), 0);
	CU_ASSERT_STRING_EQUAL(p->name, "sandbox");
	registry_fini(&reg);
}

TEST_CASE(abi_mismatch)
{
	expect_load_error("badabi", "ABI version 999, this reimage expects 1");
	expect_load_error("badabi", "badabi.so");
}

TEST_CASE(short_ops_table)
{
	expect_load_error("smallops", "backend table is 16 bytes");
}

/* A capability is a promise of hooks: one declared without them is refused
 * at load, not discovered in the middle of an undo. */
TEST_CASE(capability_without_its_hook)
{
	expect_load_error("nocancel", "declares REIMAGE_BCAP_DEFER but has no deferred_cancel hook");
}

TEST_CASE(name_mismatch)
{
	expect_load_error("wrongname", "calls itself 'other', expected 'wrongname'");
}

TEST_CASE(no_entry)
{
	expect_load_error("noentry", "exports no reimage_plugin_entry");
}

TEST_CASE(missing_plugin)
{
	struct registry reg;
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;

	open_registry(&reg, "bad");
	CU_ASSERT(registry_transport_for(&reg, "smb://server/share/image.tar", &p, &err) < 0);
	/* Each names the directories searched, the test's own among them. */
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "smb: plugin transport-smb is not installed (plugin "
				      "path: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/tests/plugins/bad"));
	err_clear(&err);
	CU_ASSERT(registry_backend(&reg, "windows", &p, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "backend windows: plugin windows is not installed; "
				      "installed: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "(searched "));
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
	err_clear(&err);
	CU_ASSERT(registry_transport_for(&reg, "gopher://x/y", &p, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no transport serves 'gopher:'"));
	registry_fini(&reg);
}

TEST_CASE(auto_probe)
{
	struct registry reg;
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;

	open_registry(&reg, "auto");
	CU_ASSERT_EQUAL_FATAL(registry_backend(&reg, "auto", &p, &err), 0);
	CU_ASSERT_STRING_EQUAL(p->name, "windows");
	registry_fini(&reg);
}

TEST_CASE(auto_probe_nothing_fits)
{
	struct registry reg;
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;

	open_registry(&reg, "nofit");
	CU_ASSERT(registry_backend(&reg, "auto", &p, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no installed backend fits this system"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "posix: not installed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "macos: does not fit"));
	registry_fini(&reg);
}

TEST_CASE(loading_closed_after_prepare)
{
	struct registry reg;
	struct reimage_error err = { 0 };
	struct plugin *p = NULL;

	open_registry(&reg, "auto");
	reg.sealed = 1;
	CU_ASSERT(registry_backend(&reg, "windows", &p, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "loading is closed after PREPARE"));
	registry_fini(&reg);
}

/* A transport that notes how many threads are inside it at once.  A
 * read, once inside, says so and waits (up to 2 s) for the other thread,
 * which then calls, to be inside too: without the core's lock it is at
 * once, and the count reaches 2. */
static atomic_int inside, most_inside, reading;

static void note_inside(void)
{
	int now = atomic_fetch_add(&inside, 1) + 1;
	for (int seen = atomic_load(&most_inside); now > seen &&
	     !atomic_compare_exchange_weak(&most_inside, &seen, now);)
		;
}

static int watch_open(void *ctx, const char *url, uint64_t offset,
		      struct reimage_stream **ret_stream, uint64_t *ret_size,
		      struct reimage_error *err)
{
	(void)ctx, (void)url, (void)offset, (void)err;
	*ret_stream = (struct reimage_stream *)&inside;
	*ret_size = REIMAGE_SIZE_UNKNOWN;
	return 0;
}

static ssize_t watch_read(struct reimage_stream *stream, void *buf, size_t len,
			  struct reimage_error *err)
{
	(void)stream, (void)buf, (void)len, (void)err;
	note_inside();
	atomic_store(&reading, 1);
	for (int i = 0; i < 200 && atomic_load(&inside) < 2; i++)
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	atomic_fetch_sub(&inside, 1);
	return 0;
}

static void watch_close(struct reimage_stream *stream)
{
	(void)stream;
}

static int watch_fetch(void *ctx, const char *url, void *buf, size_t cap, size_t *ret_len,
		       char etag[REIMAGE_ETAG_MAX], int64_t *ret_date, struct reimage_error *err)
{
	(void)ctx, (void)url, (void)buf, (void)cap, (void)etag, (void)ret_date, (void)err;
	note_inside();
	*ret_len = 0;
	atomic_fetch_sub(&inside, 1);
	return 0;
}

static const char *const watch_schemes[] = { "watch", NULL };
static const struct reimage_transport_ops watch_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI, .struct_size = sizeof(watch_ops),
	.name = "transport-watch", .schemes = watch_schemes,
	.open = watch_open, .read = watch_read, .close = watch_close, .fetch = watch_fetch,
};
static const struct reimage_plugin watch_plugin = {
	REIMAGE_PLUGIN_ABI, REIMAGE_PLUGIN_TRANSPORT, &watch_ops, NULL,
};

static void *fetch_beside(void *arg)
{
	struct plugin *p = arg;
	struct reimage_error err = { 0 };
	char etag[REIMAGE_ETAG_MAX] = "";
	size_t len;
	while (!atomic_load(&reading))
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	p->transport->fetch(p->ctx, "watch://doc", NULL, 0, &len, etag, NULL, &err);
	return NULL;
}

/* The core calls one transport from several threads (an agent's report
 * beside the image's read, both over https); the plugin interface
 * promises each plugin one thread at a time, and the core keeps it. */
TEST_CASE(transport_called_one_thread_at_a_time)
{
	struct registry reg;
	struct reimage_error err = { 0 };
	struct reimage_stream *s = NULL;
	struct plugin *p = NULL;
	uint64_t size;
	pthread_t other;
	char buf[1];

	open_registry(&reg, "none");
	CU_ASSERT_EQUAL_FATAL(registry_add(&reg, "transport-watch", "(test)", &watch_plugin, &err), 0);
	CU_ASSERT_EQUAL_FATAL(registry_transport_for(&reg, "watch://image", &p, &err), 0);
	CU_ASSERT_EQUAL_FATAL(plugin_start(p, &err), 0);
	CU_ASSERT_PTR_NULL(p->transport->put);  /* a hook the plugin lacks stays absent */
	CU_ASSERT_PTR_NULL(p->transport->open_range);
	CU_ASSERT_EQUAL_FATAL(p->transport->open(p->ctx, "watch://image", 0, &s, &size, &err), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&other, NULL, fetch_beside, p), 0);
	CU_ASSERT_EQUAL(p->transport->read(s, buf, sizeof(buf), &err), 0);
	pthread_join(other, NULL);
	p->transport->close(s);
	CU_ASSERT_EQUAL(atomic_load(&most_inside), 1);
	registry_fini(&reg);
}
