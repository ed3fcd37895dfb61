/*
 * test_config.c -- the job file and agent file readers (config.c) on
 * their own: values and defaults come through, and every mistake is
 * refused with the file, the line and the setting named.
 */
#include "harness.h"
#include "config.h"
#include "error.h"

#include <string.h>

#define IMAGE "image = { url = \"/srv/new.tar.zst\"; };\n"

static int job_from(struct job *job, const char *text, struct reimage_error *err)
{
	return job_load_text(job, "job.conf", text, strlen(text), err);
}

static void expect_job_error(const char *text, const char *needle)
{
	struct reimage_error err = { 0 };
	struct job job;

	CU_ASSERT(job_from(&job, text, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, needle));
	if (!strstr(err.msg, needle))
		fprintf(stderr, "expected '%s' in: %s\n", needle, err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "job.conf"));
}

TEST_CASE(job_values_and_defaults)
{
	struct reimage_error err = { 0 };
	struct job job;

	CU_ASSERT_EQUAL_FATAL(job_from(&job, "id = \"j1\";\nserial = 7;\n" IMAGE
				       "label = \"NEW\";\n", &err), 0);
	CU_ASSERT_STRING_EQUAL(job.id, "j1");
	CU_ASSERT_EQUAL(job.serial, 7);
	CU_ASSERT_STRING_EQUAL(job.image_url, "/srv/new.tar.zst");
	CU_ASSERT_PTR_NULL(job.image_sha256);
	CU_ASSERT_EQUAL(job.image_size, -1);
	CU_ASSERT_STRING_EQUAL(job.root, "/");
	CU_ASSERT_STRING_EQUAL(job.label, "NEW");
	job_free(&job);
}

TEST_CASE(job_mistakes_name_line_and_setting)
{
	/* A key nobody reads: a typo must not be silently ignored. */
	expect_job_error("id = \"j1\";\nserial = 1;\n" IMAGE "lable = \"x\";\n", "lable");
	expect_job_error("id = \"j1\";\nserial = 1;\n" IMAGE "lable = \"x\";\n", ":4");
	/* Wrong type. */
	expect_job_error("id = \"j1\";\nserial = \"one\";\n" IMAGE, "serial");
	/* Missing image. */
	expect_job_error("id = \"j1\";\nserial = 1;\n", "image");
	/* A bad checksum. */
	expect_job_error("id = \"j1\";\nserial = 1;\n"
			 "image = { url = \"/x\"; sha256 = \"xyz\"; };\n", "sha256");
	/* Syntax. */
	expect_job_error("id = \"j1\";\nserial = ;\n", "job.conf:2");
	/* @include is refused in a job document. */
	expect_job_error("@include \"/etc/passwd\"\n", "include");
}

TEST_CASE(agent_file)
{
	struct reimage_error err = { 0 };
	struct agent_conf ac;
	const char *path = t_path("agent.conf");

	CU_ASSERT_EQUAL_FATAL(agent_conf_load(&ac, NULL, &err), 0);
	CU_ASSERT_EQUAL(ac.loaded, 0);
	CU_ASSERT_STRING_EQUAL(ac.root, "/");
	CU_ASSERT_EQUAL(ac.poll_interval, 60);
	agent_conf_free(&ac);

	t_write(path, "agent_id = \"pc-1\";\nroot = \"/srv/root\";\npoll_interval = 5;\n");
	CU_ASSERT_EQUAL_FATAL(agent_conf_load(&ac, path, &err), 0);
	CU_ASSERT_STRING_EQUAL(ac.agent_id, "pc-1");
	CU_ASSERT_STRING_EQUAL(ac.root, "/srv/root");
	CU_ASSERT_EQUAL(ac.poll_interval, 5);
	agent_conf_free(&ac);

	/* Out of bounds, with the file, the line and the setting. */
	t_write(path, "agent_id = \"pc-1\";\npoll_interval = 0;\n");
	CU_ASSERT(agent_conf_load(&ac, path, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "agent.conf"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, ":2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "poll_interval"));
	err_clear(&err);
	/* A missing agent file is an error, not defaults. */
	CU_ASSERT(agent_conf_load(&ac, t_path("no-such.conf"), &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no-such.conf"));
}

TEST_CASE(store_names)
{
	CU_ASSERT(store_name_ok("lab-2026.11_25"));
	CU_ASSERT(!store_name_ok(""));
	CU_ASSERT(!store_name_ok(".hidden"));
	CU_ASSERT(!store_name_ok("a/b"));
	CU_ASSERT(!store_name_ok("a b"));
	char longname[130];
	memset(longname, 'a', 129);
	longname[129] = '\0';
	CU_ASSERT(!store_name_ok(longname));
}
