/*
 * test_registry.c -- the plugin registry and loader: built-ins, ABI
 * mismatch, missing plugin, name mismatch, missing entry, auto-probe,
 * scheme lookup.
 */
#include "harness.h"
#include "error.h"
#include "registry.h"

#include <stdlib.h>
#include <string.h>

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
