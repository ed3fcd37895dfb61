/*
 * test_stage.c -- a whole job staged over http through the engine, from a
 * server that cuts the first answer halfway: the engine must resume with
 * a Range request from the byte it reached, and the image must arrive
 * whole (its SHA-256 checked).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "servers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST_CASE(resume_after_cut)
{
	char extra[256], url[128], *out = NULL, *ranges;
	size_t len;
	int port;

	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	fixture_new_tree(t_path("src"));
	/* Enough data that the cut falls inside the archive's members. */
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c 3000000 /dev/urandom > '%s/usr/lib/big.bin'",
				   t_path("src")), 0);
	fixture_pack(t_path("src"), t_path("image.tar"), "");
	unsigned char *image = (unsigned char *)t_read(t_path("image.tar"));
	len = (size_t)fixture_size(t_path("image.tar"));
	pid_t pid = tiny_start(TINY_CUT_ONCE, image, len, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/image.tar", port);
	snprintf(extra, sizeof(extra), "sha256 = \"%s\"; size = %zu; retries = 3;",
		 fixture_sha256(t_path("image.tar")), len);
	fixture_job(t_path("job.conf"), url, extra, "reboot = false;");
	int r = t_sh_out(&out, "'%s/reimage' run -c '%s' --root '%s'", t_bin_dir(),
			 t_path("job.conf"), t_path("root"));
	fprintf(stderr, "%s", out);
	server_stop(pid);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "resuming at byte"));
	CU_ASSERT_EQUAL(t_sh("cmp -s '%s/usr/lib/big.bin' '%s/usr/lib/big.bin'", t_path("src"),
			     t_path("root")), 0);
	/* One request from the start, one from the byte reached. */
	ranges = t_read(t_path("ranges.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ranges);
	CU_ASSERT_EQUAL(strncmp(ranges, "none\nbytes=", 11), 0);
	free(ranges);
	free(out);
	free(image);
}
