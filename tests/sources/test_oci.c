/*
 * test_oci.c -- OCI images from disk: an OCI image layout and a `docker
 * save` tarball, made by tests/oci.py from three layers GNU tar wrote:
 * the metadata fixture, then a layer with whiteouts (.wh.NAME), then one
 * with an opaque directory (.wh..wh..opq) after an entry of its own.  The
 * staged root must equal the fixture with the layers applied, built
 * independently by tar and cp; a platform not this machine's, a wrong
 * layer digest and traversal attempts (a member "..", a whiteout and a
 * hard link through a symlink an earlier layer planted, a digest naming
 * a path) are refused with nothing written outside staging -- each
 * traversal once per STAGE writer (reimage's, libarchive's).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "oci_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_job(const char *url, const char *image_extra, char **out)
{
	fixture_job(t_path("job.conf"), url, image_extra, "reboot = false;");
	return fixture_reimage(out, "run -c '%s' --root '%s'", t_path("job.conf"), t_path("root"));
}

static void refused(const char *url, const char *image_extra, const char *needle)
{
	char *out = NULL, *before = fixture_manifest(t_path("root")), *now;

	CU_ASSERT_EQUAL(run_job(url, image_extra, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, needle));
	now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after a refused image"));
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", t_path("root")), 0);
	free(out);
	free(before);
	free(now);
}

TEST_CASE(layout_layers_whiteouts)
{
	char url[4200], extra[128], *out = NULL;
	oci_setup();
	oci_layers();
	snprintf(extra, sizeof(extra), "sha256 = \"%s\";",
		 oci_make("layout '%s' --tag 1.0 '%s' '%s' '%s'", t_path("layout"),
			  t_path("layer1.tar"), t_path("layer2.tar"), t_path("layer3.tar")) + 7);
	snprintf(url, sizeof(url), "oci-layout:%s:1.0", t_path("layout"));
	/* plan reads the layout without staging it. */
	fixture_job(t_path("job.conf"), url, extra, "reboot = false;");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "source     oci-layout, "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "added      9: NEW-IMAGE bin dev only-new opt proc srv "
					   "usr var"));
	free(out);
	CU_ASSERT_EQUAL_FATAL(run_job(url, extra, &out), 0);
	/* The digest logged is the one the job pinned: the index's entry. */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ", as declared"));
	free(out);
	oci_assert_applied();
}

TEST_CASE(layout_index_platform)
{
	char url[4200];
	oci_setup();
	oci_layers();
	/* A multi-platform index: this machine's manifest is chosen. */
	oci_make("layout '%s' --index '%s' '%s' '%s'", t_path("layout"), t_path("layer1.tar"),
		 t_path("layer2.tar"), t_path("layer3.tar"));
	snprintf(url, sizeof(url), "oci-layout:%s", t_path("layout"));
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(run_job(url, NULL, &out), 0);
	free(out);
	oci_assert_applied();
	/* An image for another machine only: refused, saying what it is. */
	oci_fresh_root();
	oci_make("layout '%s' --arch s390x '%s'", t_path("other"), t_path("layer1.tar"));
	snprintf(url, sizeof(url), "oci-layout:%s", t_path("other"));
	refused(url, NULL, "no image for this machine");
}

TEST_CASE(docker_archive)
{
	char url[4200], extra[128], *out = NULL;
	oci_setup();
	oci_layers();
	snprintf(extra, sizeof(extra), "sha256 = \"%s\";",
		 oci_make("docker-archive '%s' --tag fleet/os:1.0 '%s' '%s' '%s'",
			  t_path("image.tar"), t_path("layer1.tar"), t_path("layer2.tar"),
			  t_path("layer3.tar")) + 7);
	snprintf(url, sizeof(url), "docker-archive:%s:fleet/os:1.0", t_path("image.tar"));
	CU_ASSERT_EQUAL_FATAL(run_job(url, extra, &out), 0);
	free(out);
	oci_assert_applied();
}

TEST_CASE(wrong_layer_digest)
{
	char url[4200];
	oci_setup();
	oci_layers();
	oci_make("layout '%s' '%s' '%s' '%s'", t_path("layout"), t_path("layer1.tar"),
		 t_path("layer2.tar"), t_path("layer3.tar"));
	/* Layer 2's blob replaced by other bytes of the same size. */
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s/blobs/sha256' && f=$(ls -S | sed -n 2p) && "
				   "head -c $(stat -c %%s $f) /dev/urandom > $f", t_path("layout")), 0);
	snprintf(url, sizeof(url), "oci-layout:%s", t_path("layout"));
	refused(url, NULL, "SHA-256 is");
	/* A docker-archive whose layer is not the one its config names. */
	oci_make("docker-archive '%s' '%s' '%s'", t_path("image.tar"), t_path("layer1.tar"),
		 t_path("layer2.tar"));
	oci_make("swap-member '%s' 2 '%s'", t_path("image.tar"), t_path("layer3.tar"));
	snprintf(url, sizeof(url), "docker-archive:%s", t_path("image.tar"));
	refused(url, NULL, "layer 2 of 2 SHA-256 is");
}

/* ------------------------------------------------------------ traversal */

static void traversal_dotdot_member_with(const char *writer)
{
	char url[4200];
	fixture_writer(writer);
	oci_setup();
	oci_outside();
	oci_hostile_layer("dotdot", t_path("evil.tar"));
	oci_make("layout '%s' '%s'", t_path("layout"), t_path("evil.tar"));
	snprintf(url, sizeof(url), "oci-layout:%s", t_path("layout"));
	refused(url, NULL, "refused member 'a/../../escape'");
	oci_assert_outside_untouched();
}

TEST_CASE(traversal_dotdot_member)
{
	traversal_dotdot_member_with("at");
}

TEST_CASE(traversal_dotdot_member_libarchive)
{
	traversal_dotdot_member_with("libarchive");
}

static void traversal_whiteout_through_symlink_with(const char *writer)
{
	char url[4200];
	fixture_writer(writer);
	oci_setup();
	oci_outside();
	/* Layer 1 plants link -> outside; layer 2 whites out link/secret. */
	oci_hostile_layer("plant", t_path("l1.tar"));
	oci_hostile_layer("whiteout", t_path("l2.tar"));
	oci_make("layout '%s' '%s' '%s'", t_path("layout"), t_path("l1.tar"), t_path("l2.tar"));
	snprintf(url, sizeof(url), "oci-layout:%s", t_path("layout"));
	refused(url, NULL, "is a symbolic link; refusing to follow it");
	oci_assert_outside_untouched();
}

TEST_CASE(traversal_whiteout_through_symlink)
{
	traversal_whiteout_through_symlink_with("at");
}

TEST_CASE(traversal_whiteout_through_symlink_libarchive)
{
	traversal_whiteout_through_symlink_with("libarchive");
}

static void traversal_hardlink_through_symlink_with(const char *writer)
{
	char url[4200];
	fixture_writer(writer);
	oci_setup();
	oci_outside();
	oci_hostile_layer("plant", t_path("l1.tar"));
	oci_hostile_layer("through", t_path("l2.tar"));
	oci_make("docker-archive '%s' '%s' '%s'", t_path("image.tar"), t_path("l1.tar"),
		 t_path("l2.tar"));
	snprintf(url, sizeof(url), "docker-archive:%s", t_path("image.tar"));
	refused(url, NULL, "STAGE: extract 'stolen'");
	oci_assert_outside_untouched();
}

TEST_CASE(traversal_hardlink_through_symlink)
{
	traversal_hardlink_through_symlink_with("at");
}

TEST_CASE(traversal_hardlink_through_symlink_libarchive)
{
	traversal_hardlink_through_symlink_with("libarchive");
}

TEST_CASE(traversal_digest_as_path)
{
	char url[4200];
	oci_setup();
	oci_outside();
	oci_make("layout '%s' '%s'", t_path("layout"), t_path("src/NEW-IMAGE"));
	oci_make("set-digest '%s' 'sha256:../../../../outside/secret'", t_path("layout"));
	snprintf(url, sizeof(url), "oci-layout:%s", t_path("layout"));
	refused(url, NULL, "is not sha256:<64 hex digits>");
	oci_assert_outside_untouched();
}

static void traversal_replaced_directory_with(const char *writer)
{
	char url[4200], *out = NULL;
	fixture_writer(writer);
	oci_setup();
	oci_outside();
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -m 755 '%s/b' && touch -d '2020-01-01' '%s/b'",
				   t_path("outside"), t_path("outside")), 0);
	/* A layer makes a/ and a/b/, then turns a into a link outside: the
	 * writer's pending work on a/b must not follow it. */
	oci_hostile_layer("replace", t_path("l1.tar"));
	oci_make("layout '%s' '%s'", t_path("layout"), t_path("l1.tar"));
	snprintf(url, sizeof(url), "oci-layout:%s", t_path("layout"));
	CU_ASSERT_EQUAL(run_job(url, NULL, &out), 0);
	free(out);
	CU_ASSERT_EQUAL(t_sh("test -L '%s/a'", t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(stat -c '%%a %%Y' '%s/b')\" = \"755 $(date -d 2020-01-01 +%%s)\"",
			     t_path("outside")), 0);
}

TEST_CASE(traversal_replaced_directory)
{
	traversal_replaced_directory_with("at");
}

TEST_CASE(traversal_replaced_directory_libarchive)
{
	traversal_replaced_directory_with("libarchive");
}
