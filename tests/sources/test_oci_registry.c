/*
 * test_registry.c -- an OCI image in a real registry (Debian's
 * docker-registry, started by the test on 127.0.0.1, stopped by its PID),
 * read through transport-http: three layers with whiteouts and an opaque
 * directory behind a multi-platform index, pushed by tests/oci.py; the
 * image pinned by the job's sha256 or by digest in the URL; a pin that
 * does not match, an unknown tag; and a registry that wants a bearer
 * token (JWT signed by the test's own key), given by image.token_file.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "oci_fixture.h"
#include "servers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fleet/os"

/* Start docker-registry with its storage in the scratch directory; with
 * token, it accepts only bearer tokens signed by tls/key.pem. */
static pid_t registry_start(int token, int *ret_port)
{
	char conf[8192], cfg[4096], log[4096];
	int port = free_port();

	if (t_sh("command -v docker-registry >/dev/null") != 0)
		t_skip("docker-registry is not installed (Debian package docker-registry)");
	snprintf(conf, sizeof(conf),
		 "version: 0.1\nlog:\n  level: info\n"
		 "storage:\n  filesystem:\n    rootdirectory: %s\n"
		 "http:\n  addr: 127.0.0.1:%d\n%s%s%s", t_path("registry"), port,
		 token ? "auth:\n  token:\n    realm: http://127.0.0.1:1/token\n"
			 "    service: reimage-test\n    issuer: reimage-test-issuer\n"
			 "    rootcertbundle: " : "",
		 token ? t_path("tls/cert.pem") : "", token ? "\n" : "");
	snprintf(cfg, sizeof(cfg), "%s", t_path("registry.yml"));
	snprintf(log, sizeof(log), "%s", t_path("registry.log"));
	t_write(cfg, conf);
	char *const argv[] = { "docker-registry", "serve", cfg, NULL };
	*ret_port = port;
	return server_spawn(argv, port, log);
}

/* The fixture's three layers, behind an index, pushed as NAME:1.0;
 * returns the index's digest (static). */
static const char *push_image(int port, const char *token_file)
{
	char url[64], opt[4200] = "";
	oci_layers();
	oci_make("layout '%s' --index '%s' '%s' '%s'", t_path("layout"), t_path("layer1.tar"),
		 t_path("layer2.tar"), t_path("layer3.tar"));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	if (token_file)
		snprintf(opt, sizeof(opt), "--token '%s'", token_file);
	return oci_make("push '%s' %s " NAME ":1.0 %s", t_path("layout"), url, opt);
}

static int run(const char *url, const char *image_extra, char **out)
{
	fixture_job(t_path("job.conf"), url, image_extra, "reboot = false;");
	return fixture_reimage(out, "run -c '%s' --root '%s'", t_path("job.conf"), t_path("root"));
}

TEST_CASE(layers_whiteouts_index)
{
	char url[256], extra[128], digest[80], *out = NULL;
	int port;
	oci_setup();
	pid_t pid = registry_start(0, &port);
	snprintf(digest, sizeof(digest), "%s", push_image(port, NULL));
	snprintf(url, sizeof(url), "oci+http://127.0.0.1:%d/" NAME ":1.0", port);
	snprintf(extra, sizeof(extra), "sha256 = \"%s\";", digest + 7);
	/* plan: the kind and the bytes to fetch, from the manifests alone. */
	fixture_job(t_path("job.conf"), url, extra, NULL);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "source     oci, "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "contents   known after staging"));
	free(out);
	CU_ASSERT_EQUAL(run(url, extra, &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ", as declared"));
	free(out);
	oci_assert_applied();
	/* The same image by digest, no tag. */
	oci_fresh_root();
	snprintf(url, sizeof(url), "oci+http://127.0.0.1:%d/" NAME "@%s", port, digest);
	CU_ASSERT_EQUAL(run(url, NULL, &out), 0);
	free(out);
	oci_assert_applied();
	server_stop(pid);
}

TEST_CASE(pin_mismatch_and_unknown_tag)
{
	char url[256], extra[128], *out = NULL, *before;
	int port;
	oci_setup();
	pid_t pid = registry_start(0, &port);
	push_image(port, NULL);
	before = fixture_manifest(t_path("root"));
	snprintf(url, sizeof(url), "oci+http://127.0.0.1:%d/" NAME ":1.0", port);
	snprintf(extra, sizeof(extra), "sha256 = \"%064d\";", 0);
	CU_ASSERT_EQUAL(run(url, extra, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "manifest SHA-256 is"));
	free(out);
	snprintf(url, sizeof(url), "oci+http://127.0.0.1:%d/" NAME ":2.0", port);
	CU_ASSERT_EQUAL(run(url, NULL, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP status 404"));
	free(out);
	char *now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after refused images"));
	free(now);
	free(before);
	server_stop(pid);
}

TEST_CASE(bearer_token_file)
{
	char url[256], extra[4300], *out = NULL;
	int port;
	oci_setup();
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && cd '%s' && openssl req -x509 -newkey rsa:2048 "
				   "-nodes -keyout key.pem -out cert.pem -days 2 "
				   "-subj /CN=reimage-test-token >/dev/null 2>&1", t_path("tls"),
				   t_path("tls")), 0);
	pid_t pid = registry_start(1, &port);
	t_write(t_path("token"), oci_make("token '%s' '%s' " NAME, t_path("tls/key.pem"),
					  t_path("tls/cert.pem")));
	push_image(port, t_path("token"));
	snprintf(url, sizeof(url), "oci+http://127.0.0.1:%d/" NAME ":1.0", port);
	/* Without the token the registry refuses... */
	CU_ASSERT_EQUAL(run(url, NULL, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP status 401"));
	free(out);
	/* ...with it, the image arrives, and the token never shows. */
	snprintf(extra, sizeof(extra), "token_file = \"%s\";", t_path("token"));
	CU_ASSERT_EQUAL(run(url, extra, &out), 0);
	char *token = t_read(t_path("token"));
	CU_ASSERT_PTR_NULL(strstr(out, token));
	free(token);
	free(out);
	oci_assert_applied();
	server_stop(pid);
}
