/*
 * posix_fixture.h -- what the posix backend's tests share: loading the built
 * plugin through the registry with a configuration text, and running a
 * piece of a test inside namespaces the test creates itself (a private
 * mount namespace; optionally a new pid namespace with its own /proc),
 * so that nothing touches the machine's own mounts or processes.
 */
#ifndef REIMAGE_TEST_POSIX_FIXTURE_H
#define REIMAGE_TEST_POSIX_FIXTURE_H

#include "harness.h"
#include "registry.h"

#include <libconfig.h>

struct posix_fixture {
	struct registry reg;
	config_t cfg;
	struct plugin *plugin;
	const struct reimage_backend_ops *ops;
	void *ctx;
};

/* Load plugins/posix from the build and start it with conf (the text of
 * its `posix` group, "" for defaults).  Returns 0, or < 0 with err set. */
int fx_load(struct posix_fixture *fx, const char *conf, struct reimage_error *err);
/* The same for the backend `name` (the macos tests share it): loaded
 * from the build, or, if linked is not NULL, the plugin linked into the
 * test program itself. */
int fx_load_backend(struct posix_fixture *fx, const char *name, const struct reimage_plugin *linked,
		    const char *conf, struct reimage_error *err);
void fx_unload(struct posix_fixture *fx);
/* The backend's swap renames on the case's directory: exchange, move
 * (never replacing), a missing name, is_mount, sync. */
void fx_check_renames(struct posix_fixture *fx);

/* 1 if the file at path holds exactly want; else says what it holds. */
int fx_content_is(const char *path, const char *want);

/* ns_run() flags */
#define NS_PID  1u  /* fn runs as PID 1 of a new pid namespace ... */
#define NS_PROC 2u  /* ... with a fresh /proc mounted (else the old one) */

/* Run fn(arg) in a child in a new, private mount namespace (and the
 * namespaces flags ask for).  Returns fn's result (0 pass, 77 skip, else
 * the number of failed checks), or -1 if it crashed or outran timeout_s
 * (then it is killed). */
int ns_run(unsigned flags, int (*fn)(void *arg), void *arg, int timeout_s);

/* In a child: report a failed check on stderr and count it. */
extern int fx_failures;
#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			fx_failures++;                                               \
		}                                                                    \
	} while (0)

/* Assert in the parent what ns_run() returned; 77 skips the case. */
#define CHECK_NS_RESULT(r)                                                           \
	do {                                                                         \
		int r_ = (r);                                                        \
		if (r_ == 77)                                                        \
			t_skip("precondition missing in the namespace (see above)"); \
		CU_ASSERT_EQUAL(r_, 0);                                              \
	} while (0)

#endif
