/*
 * test_stage.c -- a whole job staged over http through the engine, from a
 * server that cuts the first answer halfway: the engine must resume with
 * a Range request from the byte it reached, naming the version it
 * continues (If-Range), and the image must arrive whole (its SHA-256
 * checked).  A server whose image changed meanwhile, or that names no
 * version, gets the image read again from byte 0: never two versions
 * spliced.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "servers.h"
#include "remote/rgw.h"

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
	ranges = t_read(t_path("if-range.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ranges);
	CU_ASSERT_STRING_EQUAL(ranges, "none\n\"v1\"\n");
	free(ranges);
	free(out);
	free(image);
}

/* ---------------------------------------------------- chunked images */

/* A zstd:chunked image of src in www/ (nginx's), its job settings in
 * extra. */
static void chunked_image(const char *src, char *extra, size_t len, long long *ret_size)
{
	char *text = NULL, *p, sha[65], toc[65];
	long long size;

	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("www")), 0);
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&text, "image chunk '%s' -o '%s'", src,
						 t_path("www/img.tar.zst")), 0);
	CU_ASSERT_FATAL((p = strstr(text, "sha256 = \"")) != NULL);
	CU_ASSERT_FATAL(sscanf(p, "sha256 = \"%64[0-9a-f]\"; size = %lld; toc_sha256 = \"%64[0-9a-f]\"",
			       sha, &size, toc) == 3);
	snprintf(extra, len, "sha256 = \"%s\"; size = %lld; toc_sha256 = \"%s\";", sha, size, toc);
	*ret_size = size;
	free(text);
}

/* A new tree of many small files and a few big ones. */
static void many_files(const char *dir)
{
	fixture_new_tree(dir);
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; cd '%s'; mkdir -p usr/share/many; "
				   "for i in $(seq 1 300); do head -c $((i * 13 + 100)) /dev/urandom "
				   "> usr/share/many/f$i; done; "
				   "head -c 3000000 /dev/urandom > usr/lib/big.bin", dir), 0);
}

/* "stage: chunked image: ..." numbers of the run's log. */
static void chunked_counts(const char *out, long *reused, long *fetched, long *requests,
			   long long *read)
{
	const char *p = strstr(out, "stage: chunked image: ");
	long total;
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT_FATAL(sscanf(p, "stage: chunked image: %ld of %ld files (%*d bytes) taken from "
				  "the root, %ld fetched in %ld requests; %lld bytes", reused, &total,
			       fetched, requests, read) == 5);
}

/* Lines of nginx's access log for the image answered 206, once the log
 * has want of them (bounded: 5 s); the count found. */
static long ranged_gets(long want)
{
	long n = 0;
	for (int i = 0; i < 50; i++) {
		char *log = t_read(t_path("nginx/access.log"));
		n = 0;
		for (const char *p = log; p && (p = strstr(p, "GET /img.tar.zst 206")); p++)
			n++;
		free(log);
		if (n >= want)
			break;
		t_sh("sleep 0.1");
	}
	return n;
}

static int run_job(const char *url, const char *extra, char **out)
{
	fixture_job(t_path("job.conf"), url, extra, "reboot = false;");
	int r = t_sh_out(out, "'%s/reimage' run -c '%s' --root '%s'", t_bin_dir(),
			 t_path("job.conf"), t_path("root"));
	fprintf(stderr, "%s", *out);
	return r;
}

/* The root is src's tree, entry by entry. */
static void root_is_src(const char *what)
{
	char *want = fixture_manifest(t_path("src")), *got = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(want, got, what));
	free(want);
	free(got);
}

/* Stage the image nginx serves at path (under www/) with the job's
 * settings extra; the run's log (it must succeed) and its numbers. */
static char *staged_over_nginx(const char *path, const char *extra, long *reused, long *fetched,
			       long *requests, long long *read)
{
	struct nginx n;
	char url[128], *out = NULL;

	nginx_start(&n, 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", n.port, path);
	int r = run_job(url, extra, &out);
	server_stop(n.pid);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	chunked_counts(out, reused, fetched, requests, read);
	return out;
}

TEST_CASE(chunked_ranges_coalesced)
{
	char extra[512], *out = NULL;
	long reused, fetched, requests;
	long long size, read;

	/* The root holds the image's big file and none of its 300 small
	 * ones: those are fetched in a coalesced request, not 300. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/etc' '%s/usr/lib' '%s' && echo old > '%s/etc/os'",
				   t_path("root"), t_path("root"), t_path("src"), t_path("root")), 0);
	many_files(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("cp -a '%s/usr/lib/big.bin' '%s/usr/lib/'", t_path("src"),
				   t_path("root")), 0);
	chunked_image(t_path("src"), extra, sizeof(extra), &size);
	out = staged_over_nginx("img.tar.zst", extra, &reused, &fetched, &requests, &read);
	CU_ASSERT_EQUAL(reused, 1);
	CU_ASSERT(fetched > 300);
	/* The footer, the TOC, the tar-split, and the frames of 310 files:
	 * a range for each run of them the reused big file does not split
	 * (at most three, whatever order the tree was walked in). */
	CU_ASSERT(requests >= 4 && requests <= 6);
	CU_ASSERT_EQUAL(ranged_gets(requests), requests);
	CU_ASSERT(read < size / 2);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src("chunked over http");
	free(out);
}

TEST_CASE(chunked_reuse_fetches_changes_only)
{
	char extra[512], *out = NULL;
	long reused, fetched, requests;
	long long size, read;

	/* The root runs the image but for ten changed small files, every
	 * other one of twenty neighbours in the image: each is fetched, the
	 * rest reused. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("src")), 0);
	many_files(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("cp -a '%s' '%s'", t_path("src"), t_path("root")), 0);
	chunked_image(t_path("src"), extra, sizeof(extra), &size);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && for f in $(tar --zstd -tf '%s' | "
				   "grep '^usr/share/many/f' | sed -n '21~2p' | head -10); do "
				   "head -c $(stat -c %%s $f) /dev/urandom > $f; done",
				   t_path("src"), t_path("www/img.tar.zst")), 0);
	chunked_image(t_path("src"), extra, sizeof(extra), &size);
	out = staged_over_nginx("img.tar.zst", extra, &reused, &fetched, &requests, &read);
	CU_ASSERT_EQUAL(fetched, 10);
	CU_ASSERT(reused > 290);
	CU_ASSERT(read < size / 10);
	/* A few KiB between them: one request for the ten, after the
	 * footer, the TOC and the tar-split. */
	CU_ASSERT_EQUAL(requests, 4);
	CU_ASSERT_EQUAL(ranged_gets(requests), requests);
	root_is_src("chunked reuse over http");
	free(out);
}

TEST_CASE(chunked_reuse_from_an_s3_bucket)
{
	char extra[512], settings[1024], *out = NULL;
	long reused, fetched, requests;
	long long size, read;
	struct rgw g;

	/* The same point release from a bucket on Ceph's RADOS Gateway:
	 * the footer, the TOC and the changed files by signed ranges. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("src")), 0);
	many_files(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("cp -a '%s' '%s'", t_path("src"), t_path("root")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("cd '%s' && for f in usr/share/many/f1[0-9]; do "
				   "head -c $(stat -c %%s $f) /dev/urandom > $f; done",
				   t_path("src")), 0);
	chunked_image(t_path("src"), extra, sizeof(extra), &size);
	rgw_start(&g);
	CU_ASSERT_EQUAL_FATAL(rgw_put_file(&g, "images/img.tar.zst", t_path("www/img.tar.zst")), 0);
	rgw_settings(&g, settings, sizeof(settings) - 32);
	strcat(settings, "reboot = false;");
	fixture_job(t_path("job.conf"), "s3://" RGW_BUCKET "/images/img.tar.zst", extra, settings);
	int r = t_sh_out(&out, "'%s/reimage' run -c '%s' --root '%s'", t_bin_dir(),
			 t_path("job.conf"), t_path("root"));
	fprintf(stderr, "%s", out);
	rgw_stop(&g);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	chunked_counts(out, &reused, &fetched, &requests, &read);
	CU_ASSERT_EQUAL(fetched, 10);
	CU_ASSERT(reused > 290);
	CU_ASSERT(read < size / 10);
	root_is_src("chunked reuse from an s3 bucket");
	free(out);
}

TEST_CASE(chunked_ranges_in_parallel)
{
	char extra[512], *out = NULL, *log;
	long reused, fetched, requests, conns[64], n_conns = 0;
	long long size, read;

	/* Eight changed files, each beside reused ones too big to fetch
	 * with it: four to eight ranges, served at 256 KiB/s each (nginx's
	 * /slow/) so that every answer's body is still coming when the next
	 * requests go out.  They go out on up to CHUNKED_IN_FLIGHT (4)
	 * connections at once: the log shows more than one, at most four. */
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; mkdir -p '%s'; cd '%s'; for d in 1 2 3 4 5 6 7 8; do "
				   "mkdir -p d$d; head -c 100000 /dev/urandom > d$d/a.bin; "
				   "head -c 60000 /dev/urandom > d$d/b.bin; "
				   "head -c 100000 /dev/urandom > d$d/c.bin; done",
				   t_path("src"), t_path("src")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("cp -a '%s' '%s' && cd '%s' && for d in 1 2 3 4 5 6 7 8; do "
				   "head -c 60000 /dev/urandom > d$d/b.bin; done", t_path("src"),
				   t_path("root"), t_path("src")), 0);
	chunked_image(t_path("src"), extra, sizeof(extra), &size);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && mv '%s' '%s'", t_path("www/slow"),
				   t_path("www/img.tar.zst"), t_path("www/slow/img.tar.zst")), 0);
	out = staged_over_nginx("slow/img.tar.zst", extra, &reused, &fetched, &requests, &read);
	CU_ASSERT_EQUAL(fetched, 8);
	/* After the footer, the TOC and the tar-split, a range for each
	 * changed file or two (two may meet, whatever order the tree was
	 * walked in). */
	CU_ASSERT(requests >= 3 + 4 && requests <= 3 + 8);
	log = t_read(t_path("nginx/access.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	for (const char *p = log; (p = strstr(p, "GET /slow/img.tar.zst 206")); p++) {
		const char *c = strstr(p, "conn=");
		long id = c ? atol(c + 5) : -1;
		long k = 0;
		while (k < n_conns && conns[k] != id)
			k++;
		if (k == n_conns && n_conns < 64)
			conns[n_conns++] = id;
	}
	CU_ASSERT(n_conns >= 2 && n_conns <= 4);
	if (n_conns < 2 || n_conns > 4)
		fprintf(stderr, "access.log:\n%s\n", log);
	free(log);
	root_is_src("chunked ranges in parallel");
	free(out);
}

TEST_CASE(chunked_range_ignored_reads_whole)
{
	char extra[512], url[128], *out = NULL, *ranges;
	long long size;
	int port;

	/* A server that answers every Range with the whole file: refused at
	 * the first range, and the image read whole instead -- once. */
	/* A root with nothing the image has (nor entries a swap keeps). */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/etc' '%s' && echo old > '%s/etc/os'",
				   t_path("root"), t_path("src"), t_path("root")), 0);
	many_files(t_path("src"));
	chunked_image(t_path("src"), extra, sizeof(extra), &size);
	unsigned char *image = (unsigned char *)t_read(t_path("www/img.tar.zst"));
	pid_t pid = tiny_start(TINY_NO_RANGE, image, (size_t)size, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/img.tar.zst", port);
	int r = run_job(url, extra, &out);
	server_stop(pid);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ignored the range"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reading the whole image instead"));
	ranges = t_read(t_path("ranges.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ranges);
	/* The footer's range, then the whole image. */
	CU_ASSERT_EQUAL(strncmp(ranges, "bytes=", 6), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(ranges, "\nnone\n"));
	root_is_src("chunked, ranges ignored");
	free(ranges);
	free(out);
	free(image);
}

/* A tar of the fixture with 3 MB of noise and a file naming the version. */
static unsigned char *version_image(const char *name, const char *version, size_t *ret_len)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && mkdir -p '%s'", t_path("src"), t_path("src")), 0);
	fixture_new_tree(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c 3000000 /dev/urandom > '%s/usr/lib/big.bin' && "
				   "echo %s > '%s/usr/lib/version'", t_path("src"), version,
				   t_path("src")), 0);
	fixture_pack(t_path("src"), t_path("%s", name), "");
	*ret_len = (size_t)fixture_size(t_path("%s", name));
	return (unsigned char *)t_read(t_path("%s", name));
}

/* The image served first (cut halfway) and the one served after; the job
 * declares the second one's digest.  Staging must restart from byte 0 and
 * stage the second whole; ranges: the Range lines the server saw. */
static void restarted(enum tiny_mode mode, const char *needle, const char *ranges_want)
{
	char extra[256], url[128], *out = NULL, *ranges;
	size_t len_a, len_b;
	int port;

	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("root")), 0);
	fixture_old_root(t_path("root"));
	unsigned char *a = version_image("a.tar", "first", &len_a);
	unsigned char *b = mode == TINY_CUT_NO_VALIDATOR ? a : version_image("b.tar", "second", &len_b);
	if (b == a)
		len_b = len_a;
	pid_t pid = tiny_start_changing(mode, a, len_a, b, len_b, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/image.tar", port);
	snprintf(extra, sizeof(extra), "sha256 = \"%s\"; size = %zu; retries = 3;",
		 fixture_sha256(t_path(b == a ? "a.tar" : "b.tar")), len_b);
	fixture_job(t_path("job.conf"), url, extra, "reboot = false;");
	int r = t_sh_out(&out, "'%s/reimage' run -c '%s' --root '%s'", t_bin_dir(),
			 t_path("job.conf"), t_path("root"));
	fprintf(stderr, "%s", out);
	server_stop(pid);
	CU_ASSERT_EQUAL(r, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, needle));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "staging again from the start (attempt 1 of 3)"));
	CU_ASSERT_EQUAL(t_sh("cmp -s '%s/usr/lib/big.bin' '%s/usr/lib/big.bin'", t_path("src"),
			     t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("grep -qx '%s' '%s/usr/lib/version'", b == a ? "first" : "second",
			     t_path("root")), 0);
	ranges = t_read(t_path("ranges.log"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ranges);
	/* The last request is one from byte 0. */
	size_t rl = strlen(ranges);
	CU_ASSERT(strncmp(ranges, ranges_want, strlen(ranges_want)) == 0 && rl >= 5 &&
		  strcmp(ranges + rl - 5, "none\n") == 0 && (rl == 5 || ranges[rl - 6] == '\n'));
	fprintf(stderr, "ranges:\n%s", ranges);
	free(ranges);
	free(out);
	if (b != a)
		free(b);
	free(a);
}

/* Changed between the cut and the resume, the server honouring If-Range:
 * the new version whole comes back, and staging starts again. */
TEST_CASE(image_changed_restarts_from_zero)
{
	restarted(TINY_CHANGED, "changed since it was first read", "none\nbytes=");
}

/* The same with a server that ignores If-Range: its 206 names v2. */
TEST_CASE(image_changed_range_of_new_version_restarts)
{
	restarted(TINY_CHANGED_IGNORES_IF_RANGE, "(validator \"v1\", now \"v2\")",
		  "none\nbytes=");
}

/* No ETag or Last-Modified: no resume at all, the image read again from
 * its first byte without a Range. */
TEST_CASE(no_validator_no_resume)
{
	restarted(TINY_CUT_NO_VALIDATOR, "cannot be resumed at byte", "none\nnone\n");
}
