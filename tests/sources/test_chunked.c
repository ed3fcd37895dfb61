/*
 * test_chunked.c -- zstd:chunked images (`reimagectl image chunk`, kind
 * "chunked"): the format read by independent tools (GNU tar extracts it,
 * a Python reader finds every file's frame through the footer and the TOC
 * and checks its digest and its chunks'), staging that reuses the root's
 * files and chunks and fetches the rest through the file transport's
 * ranges, held to the metadata fixture entry by entry, and every fallback
 * to the full stream: a wrong TOC digest, a corrupted frame or chunk, a
 * root file that changed, a kind given without the TOC's digest.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "chunked.h"
#include "fixture.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

/* The job's image settings for a chunked image, as image chunk printed. */
struct made {
	char sha256[65], toc[65];
	long long size;
};

/* `reimagectl image chunk src -o out [--base base]`. */
static void chunk_on(const char *src, const char *out, const char *base, struct made *m)
{
	char *text = NULL, *p;
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&text, "image chunk '%s' -o '%s'%s%s%s", src, out,
						 base ? " --base '" : "", base ? base : "",
						 base ? "'" : ""), 0);
	CU_ASSERT_FATAL((p = strstr(text, "sha256 = \"")) != NULL);
	CU_ASSERT_FATAL(sscanf(p, "sha256 = \"%64[0-9a-f]\"; size = %lld; toc_sha256 = \"%64[0-9a-f]\"",
			       m->sha256, &m->size, m->toc) == 3);
	free(text);
}

static void chunk(const char *src, const char *out, struct made *m)
{
	chunk_on(src, out, NULL, m);
}

static void setup(void)
{
	if (!t_is_root())
		t_skip("needs root for device nodes, owners, capabilities");
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' '%s' && mkdir -p '%s/etc' '%s' && echo old > "
				   "'%s/etc/os'", t_path("root"), t_path("src"), t_path("root"),
				   t_path("src"), t_path("root")), 0);
	fixture_meta_tree(t_path("src"));
	/* Files worth reusing: a big one (the same bytes every run, so the
	 * same chunks) and many small ones. */
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; cd '%s'; python3 -c 'import random, sys; random.seed(27); "
				   "sys.stdout.buffer.write(random.randbytes(2000000))' > usr/big.bin; "
				   "mkdir -p usr/share/many; for i in $(seq 1 60); do "
				   "head -c $((i * 37)) /dev/urandom > usr/share/many/f$i; done",
				   t_path("src")), 0);
}

/* Run the job; its output (the log) in *out. */
static int run(const char *image, const char *extra, char **out)
{
	fixture_job(t_path("job.conf"), image, extra, "reboot = false;");
	return fixture_reimage(out, "run -c '%s' --root '%s'", t_path("job.conf"), t_path("root"));
}

static const char *settings(const struct made *m, const char *toc)
{
	static char text[512];
	snprintf(text, sizeof(text), "sha256 = \"%s\"; size = %lld; toc_sha256 = \"%s\";",
		 m->sha256, m->size, toc ? toc : m->toc);
	return text;
}

/* The root is src, every piece of metadata. */
static void root_is_src(void)
{
	char *want = fixture_meta_manifest(t_path("src"), 0);
	char *got = fixture_meta_manifest(t_path("root"), 0);
	CU_ASSERT(want && got && strstr(want, "usr/owned") && fixture_same(want, got, "staged"));
	free(want);
	free(got);
}

/* "N of M files ... taken from the root, K fetched": N and K. */
static void reuse_counts(const char *out, long *reused, long *fetched, long long *read)
{
	const char *p = strstr(out, "stage: chunked image: ");
	long total;
	*reused = *fetched = -1;
	*read = -1;
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT(sscanf(p, "stage: chunked image: %ld of %ld files (%*d bytes) taken from the "
			    "root, %ld fetched in %*d requests; %lld bytes", reused, &total, fetched,
			 read) == 4);
}

TEST_CASE(format_tar_extracts)
{
	struct made m;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	/* Any zstd-aware tar reads it start to end: the skippable frames
	 * (TOC, tar-split, footer) are skipped.  GNU tar: every file, owner,
	 * mode and link (it leaves the directories' times of any libarchive
	 * pax archive at the extraction's time, so no metadata manifest). */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir '%s' && tar --zstd --acls -xpf '%s' -C '%s' 2>/dev/null",
				   t_path("x"), t_path("img.tar.zst"), t_path("x")), 0);
	char *want = fixture_manifest(t_path("src")), *got = fixture_manifest(t_path("x"));
	CU_ASSERT(want && got && fixture_same(want, got, "tar --zstd -x"));
	free(want);
	free(got);
	/* bsdtar: every piece of metadata. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir '%s' && bsdtar -xpf '%s' -C '%s'", t_path("y"),
				   t_path("img.tar.zst"), t_path("y")), 0);
	want = fixture_meta_manifest(t_path("src"), 0);
	got = fixture_meta_manifest(t_path("y"), 0);
	CU_ASSERT(want && got && fixture_same(want, got, "bsdtar -x"));
	free(want);
	free(got);
	/* The size and digest printed are the file's. */
	CU_ASSERT_STRING_EQUAL(m.sha256, fixture_sha256(t_path("img.tar.zst")));
	CU_ASSERT_EQUAL(m.size, fixture_size(t_path("img.tar.zst")));
}

TEST_CASE(format_toc_read_independently)
{
	struct made m;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	/* A reader of the published layout, in Python with the zstd tool:
	 * footer -> TOC (its SHA-256 the one printed) -> each file's frame,
	 * decompressed alone, hashing to its digest and equal to the file;
	 * the tar-split's digest is the TOC's tarSplitDigest. */
	t_write(t_path("read.py"),
		"import hashlib, json, struct, subprocess, sys, os\n"
		"img, src, toc_sha = sys.argv[1], sys.argv[2], sys.argv[3]\n"
		"d = open(img, 'rb').read()\n"
		"f = d[-64:]\n"
		"assert f[56:] == b'GNUlInUx', 'magic'\n"
		"off, ln, uln, typ, tso, tsl, tsul = struct.unpack('<7Q', f[:56])\n"
		"assert typ == 1\n"
		"assert struct.unpack('<I', d[off-8:off-4])[0] == 0x184D2A50\n"
		"unz = lambda b: subprocess.run(['zstd', '-dc'], input=b, stdout=subprocess.PIPE,"
		" check=True).stdout\n"
		"z = d[off:off+ln]\n"
		"assert hashlib.sha256(z).hexdigest() == toc_sha, 'toc digest'\n"
		"toc = json.loads(unz(z))\n"
		"assert len(unz(z)) == uln\n"
		"ts = d[tso:tso+tsl]\n"
		"assert toc['tarSplitDigest'] == 'sha256:' + hashlib.sha256(ts).hexdigest()\n"
		"lines = [json.loads(l) for l in unz(ts).decode().splitlines()]\n"
		"assert any(l['type'] == 2 for l in lines) and any(l['type'] == 1 for l in lines)\n"
		"n = 0\n"
		"for e in toc['entries']:\n"
		"    assert e['type'] in ('reg','dir','symlink','hardlink','char','block','fifo',"
		"'chunk'), e\n"
		"    if e['type'] == 'reg' and e.get('size'):\n"
		"        c = unz(d[e['offset']:e['endOffset']])\n"
		"        assert e['digest'] == 'sha256:' + hashlib.sha256(c).hexdigest(), e['name']\n"
		"        p = os.path.join(src, e['name'])\n"
		"        if e['name'] != 'usr/sparse':\n"
		"            assert open(p, 'rb').read() == c, e['name']\n"
		"        n += 1\n"
		"names = {e['name']: e for e in toc['entries']}\n"
		"assert names['usr/owned']['uid'] == 1234, names['usr/owned']\n"
		"assert 'security.capability' in names['usr/ping'].get('xattrs', {})\n"
		"assert names['dev/null']['type'] == 'char' and names['dev/null']['devMajor'] == 1\n"
		"chunks, ends = {}, {}\n"
		"for e in toc['entries']:\n"
		"    if e['type'] == 'chunk' or 'chunkDigest' in e:\n"
		"        chunks.setdefault(e['name'], []).append(e)\n"
		"    if e['type'] == 'reg' and e.get('size'):\n"
		"        ends[e['name']] = e['endOffset']\n"
		"for name, cs in chunks.items():\n"
		"    c = open(os.path.join(src, name), 'rb').read()\n"
		"    for i, e in enumerate(cs):\n"
		"        b = unz(d[e['offset']:cs[i + 1]['offset'] if i + 1 < len(cs) else ends[name]])\n"
		"        at = e.get('chunkOffset', 0)\n"
		"        assert e['chunkDigest'] == 'sha256:' + hashlib.sha256(b).hexdigest(), name\n"
		"        assert len(b) == e['chunkSize'] and (name == 'usr/sparse' or "
		"b == c[at:at + len(b)]), name\n"
		"assert len(chunks['usr/big.bin']) > 10, 'a big file is cut in chunks'\n"
		"print('files', n)\n");
	char *out = NULL;
	CU_ASSERT_EQUAL(t_sh_out(&out, "python3 '%s' '%s' '%s' %s", t_path("read.py"),
				 t_path("img.tar.zst"), t_path("src"), m.toc), 0);
	fprintf(stderr, "%s", out ? out : "");
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "files "));
	free(out);
}

/* The TOC's own JSON reader (chunked.c) reads what any JSON reader reads:
 * members in any order, escapes and \u pairs decoded, values it does not
 * keep (nested objects, arrays, true, reals) skipped; and refuses what is
 * not JSON or not a TOC. */
TEST_CASE(format_toc_json_reader)
{
	static const char d1[] = "sha256:00112233445566778899aabbccddeeff"
				 "00112233445566778899aabbccddeeff";
	char text[4096];
	struct chunked_toc toc;
	struct reimage_error err = { 0 };

	snprintf(text, sizeof(text),
		 " {\"x\": {\"a\": [1, -2.5e3, true, null, {\"b\": \"\\\"\"}]}, \"entries\": [\n"
		 "  {\"type\": \"dir\", \"name\": \"usr/\", \"size\": 0},\n"
		 "  {\"endOffset\": 130, \"offset\": 100, \"digest\": \"%s\", \"size\": 5,"
		 "   \"name\": \"usr/caf\\u00e9 \\ud83d\\ude00\\t\\\"q\\\"\\/\", \"type\": \"reg\","
		 "   \"modtime\": \"2024-01-02T03:04:05.5Z\", \"xattrs\": {\"user.a\": \"eA==\"}},\n"
		 "  {\"type\": \"reg\", \"name\": \"empty\", \"size\": 0},\n"
		 "  {\"type\": \"reg\", \"name\": \"big\", \"size\": 9, \"offset\": 130, "
		 "   \"endOffset\": 170, \"digest\": \"%s\", \"chunkSize\": 4, \"chunkDigest\": \"%s\"},\n"
		 "  {\"type\": \"chunk\", \"name\": \"big\", \"offset\": 150, \"chunkOffset\": 4,"
		 "   \"chunkSize\": 5, \"chunkDigest\": \"%s\"}\n"
		 " ], \"version\": 1, \"tarSplitDigest\": \"%s\"}\n", d1, d1, d1, d1, d1);
	CU_ASSERT_EQUAL_FATAL(chunked_toc_parse(text, strlen(text), "TOC", &toc, &err), 0);
	CU_ASSERT_EQUAL_FATAL(toc.n, 2);
	CU_ASSERT_STRING_EQUAL(toc.files[0].name, "usr/caf\xc3\xa9 \xf0\x9f\x98\x80\t\"q\"/");
	CU_ASSERT(toc.files[0].size == 5 && toc.files[0].offset == 100 && toc.files[0].end == 130);
	CU_ASSERT(toc.files[0].digest[1] == 0x11 && toc.files[0].n_chunks == 1);
	CU_ASSERT(toc.files[0].mtime == 1704164645 && toc.files[0].mtime_nsec == 500000000);
	CU_ASSERT(toc.files[1].n_chunks == 2 && toc.files[1].chunks[1].at == 4 &&
		  toc.files[1].chunks[1].offset == 150 && toc.files[1].chunks[0].end == 150);
	CU_ASSERT(toc.has_tarsplit_digest && toc.tarsplit_digest[31] == 0xff);
	chunked_toc_free(&toc);

	static const char *const refused[] = {
		"",
		"{\"version\": 1}",
		"{\"version\": 2, \"entries\": []}",
		"{\"version\": 1.0, \"entries\": []}",
		"{\"version\": 1, \"entries\": [],}",
		"{\"version\": 1, \"entries\": [] } x",
		"{\"version\": 1, \"entries\": [{\"type\": \"dir\", \"name\": \"a\",}]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"dir\", \"name\": \"a\\x\"}]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"dir\", \"name\": \"a\\ud800\"}]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"dir\", \"name\": \"a\\u0000\"}]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"dir\", \"name\": \"a\", "
		"\"size\": 99999999999999999999}]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"dir\", \"name\": \"a\", \"size\": 01}]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"dir\"}]}",
		"{\"version\": 1, \"entries\": [7]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"reg\", \"name\": \"a\", \"size\": 3, "
		"\"offset\": 1.5, \"endOffset\": 9, \"digest\": \"sha256:00\"}]}",
		"{\"version\": 1, \"entries\": [{\"type\": \"chunk\", \"name\": \"a\"}]}",
		"{\"version\": 1, \"entries\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		"[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		memset(&err, 0, sizeof(err));
		CU_ASSERT(chunked_toc_parse(refused[i], strlen(refused[i]), "TOC", &toc, &err) < 0);
		CU_ASSERT(err.msg[0] != '\0');
		CU_ASSERT(toc.n == 0 && toc.files == NULL);
	}
}

/* The tar-split's lines: the packer's own layout (read without a JSON
 * parser) and any other layout of the same records (read with jansson)
 * give the same records; lines that are not JSON, or records of neither
 * kind, are refused either way. */
TEST_CASE(format_tarsplit_lines_read_alike)
{
	static const char packer[] =
		"{\"type\":2,\"payload\":\"YWJj\",\"position\":0}\n"
		"{\"type\":1,\"name\":\"usr/bin/ls\",\"size\":1234,\"payload\":\"AAECAwQFBgc=\","
		"\"position\":1}\n"
		"{\"type\":1,\"name\":\"usr/\",\"size\":0,\"payload\":null,\"position\":2}\n"
		"{\"type\":1,\"name\":\"a b/c\",\"size\":18446744073709551,\"payload\":null,"
		"\"position\":3}\n";
	static const char other[] =
		"{\"payload\": \"YWJj\", \"type\": 2, \"position\": 0}\n"
		"{ \"type\":1, \"name\":\"usr\\/bin\\/l\\u0073\", \"size\":1234, \"payload\":\"x\","
		"\"position\":1 }\n"
		"{\"name\":\"usr/\",\"type\":1,\"size\":0,\"position\":2}\n"
		"{\"type\":1,\"name\":\"a b/c\",\"size\":18446744073709551,\"payload\":null,"
		"\"position\":3}\n";
	static const char *const refused[] = {
		"{\"type\":1,\"name\":\"a\",\"size\":01,\"payload\":null,\"position\":1}\n",
		"{\"type\":1,\"name\":\"a\",\"size\":-1,\"payload\":null,\"position\":1}\n",
		"{\"type\":1,\"name\":\"a\",\"size\":1,\"payload\":null,\"position\":1}}\n",
		"{\"type\":1,\"name\":\"a\",\"size\":1,\"payload\":nul,\"position\":1}\n",
		"{\"type\":1,\"name\":\"a\",\"size\":1,\"payload\":\"AA,\"position\":1}\n",
		"{\"type\":1,\"name\":\"a\",\"size\":1,\"payload\":null,\"position\":1\n",
		"{\"type\":1,\"name\":\"a\xff\",\"size\":1,\"payload\":null,\"position\":1}\n",
		"{\"type\":1,\"name\":7,\"size\":1,\"payload\":null,\"position\":1}\n",
		"{\"type\":3,\"name\":\"a\",\"size\":1,\"payload\":null,\"position\":1}\n",
	};
	struct chunked_split a, b;
	struct reimage_error err = { 0 };

	CU_ASSERT_EQUAL_FATAL(chunked_split_parse(packer, strlen(packer), &a, &err), 0);
	CU_ASSERT_EQUAL_FATAL(chunked_split_parse(other, strlen(other), &b, &err), 0);
	CU_ASSERT_EQUAL(a.n, 4);
	CU_ASSERT_EQUAL(a.n, b.n);
	CU_ASSERT_EQUAL(a.tar_size, 3 + 1234 + 18446744073709551ull);
	CU_ASSERT_EQUAL(a.tar_size, b.tar_size);
	for (size_t i = 0; i < a.n && i < b.n; i++) {
		CU_ASSERT_EQUAL(a.rec[i].is_file, b.rec[i].is_file);
		CU_ASSERT_EQUAL(a.rec[i].size, b.rec[i].size);
		CU_ASSERT_EQUAL(a.rec[i].len, b.rec[i].len);
		CU_ASSERT(!a.rec[i].is_file || !strcmp(a.rec[i].name, b.rec[i].name));
		CU_ASSERT(a.rec[i].is_file || !memcmp(a.rec[i].bytes, b.rec[i].bytes, a.rec[i].len));
	}
	CU_ASSERT_STRING_EQUAL(a.rec[1].name, "usr/bin/ls");
	chunked_split_free(&a);
	chunked_split_free(&b);
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		memset(&err, 0, sizeof(err));
		CU_ASSERT(chunked_split_parse(refused[i], strlen(refused[i]), &a, &err) < 0);
		CU_ASSERT(err.msg[0] != '\0');
		chunked_split_free(&a);
	}
}

TEST_CASE(first_image_read_whole)
{
	/* Nothing on the root: the image is read whole (as many bytes, no
	 * frames written aside), and its TOC kept for the next image. */
	struct made m;
	char *out = NULL;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "notice: stage: chunked image: 0 of "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "more than half of the image is to be fetched; "
					   "reading the whole image instead"));
	root_is_src();
	CU_ASSERT_EQUAL(t_sh("test -s '%s/.reimage/chunked.toc'", t_path("root")), 0);
	free(out);
}

TEST_CASE(first_image_told_from_the_toc_head)
{
	/* An image of more than 256 files on a root that holds none of them
	 * and keeps no TOC: the head of the TOC tells, and the image is read
	 * whole without reading the rest of the TOC. */
	struct made m;
	char *out = NULL;
	setup();
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; mkdir '%s/usr/more'; for i in $(seq 1 300); do "
				   "echo $i > '%s/usr/more/f'$i; done", t_path("src"), t_path("src")), 0);
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "notice: stage: chunked image: none of the first 256 "
					   "files of the TOC is on the root"));
	root_is_src();
	/* The next image finds the TOC kept, and looks file by file. */
	CU_ASSERT_EQUAL(t_sh("test -s '%s/.reimage/chunked.toc'", t_path("root")), 0);
	free(out);
}

TEST_CASE(reuse_from_root)
{
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	/* The running root already holds the image's tree, all but one file
	 * changed in place (same size, a new time): hashed, not taken, and
	 * that one alone is fetched. */
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s' && "
				   "head -c 37 /dev/zero > '%s/usr/share/many/f1' && "
				   "touch -d '2001-01-01' '%s/usr/share/many/f1'", t_path("root"),
				   t_path("src"), t_path("root"), t_path("root"), t_path("root")), 0);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT(reused > 60);
	/* And the sparse file: its content in the tar is its sparse map and
	 * data, which no file on a disk holds. */
	CU_ASSERT_EQUAL(fetched, 2);
	CU_ASSERT(read > 0 && read < m.size / 10);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	/* The TOC is kept for the next image's reuse. */
	CU_ASSERT_EQUAL(t_sh("test -s '%s/.reimage/chunked.toc'", t_path("root")), 0);
	free(out);
}

/* On a file system with reflinks (XFS on a loop device, mounted in this
 * test's own mount namespace): the files taken from the root are clones
 * of its files, sharing their blocks -- one held in memory, one over
 * HELD_MAX taken unread by its time -- and the tree is still src's, the
 * old image intact beside it. */
TEST_CASE(reuse_by_reflink)
{
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read, cloned = -1, cloned_bytes = -1;
	const char *p;
	setup();
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c 9437184 /dev/urandom > '%s/usr/huge.bin'",
				   t_path("src")), 0);
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(unshare(CLONE_NEWNS), 0);
	CU_ASSERT_EQUAL_FATAL(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("truncate -s 640M '%s' && mkfs.xfs -q -m reflink=1 '%s' && "
				   "mount -o loop '%s' '%s' && cp -a '%s/.' '%s'",
				   t_path("xfs.img"), t_path("xfs.img"), t_path("xfs.img"),
				   t_path("root"), t_path("src"), t_path("root")), 0);
	char *old = fixture_meta_manifest(t_path("root"), 0);
	CU_ASSERT_EQUAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	/* The old image as it was, its directories' times too (XFS changes
	 * them when it exchanges directories). */
	char *retired = fixture_meta_manifest(t_path("root/.reimage/old"), 0);
	CU_ASSERT(old && retired && fixture_same(old, retired, "retired"));
	free(old);
	free(retired);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT(reused > 60);
	CU_ASSERT_FATAL((p = strstr(out, "files from delta frames")) != NULL);
	CU_ASSERT(sscanf(p, "files from delta frames (%*d bytes); %lld files cloned (%lld bytes)",
			 &cloned, &cloned_bytes) == 2);
	CU_ASSERT(cloned >= 2);
	CU_ASSERT(cloned_bytes >= 9437184 + 2000000);
	root_is_src();
	for (int i = 0; i < 2; i++) {
		const char *rel = i ? "usr/huge.bin" : "usr/big.bin";
		/* Its extents shared with the old image's file, which is as it was. */
		CU_ASSERT_EQUAL(t_sh("filefrag -v '%s/%s' | grep -q shared", t_path("root"), rel), 0);
		CU_ASSERT_EQUAL(t_sh("cmp -s '%s/%s' '%s/.reimage/old/%s'", t_path("src"), rel,
				     t_path("root"), rel), 0);
	}
	CU_ASSERT_EQUAL(t_sh("umount '%s'", t_path("root")), 0);
	free(out);
}

/* The image of a new src staged and confirmed (its TOC kept), then
 * src's big file moved for the next image. */
static void staged_then_big_file_moved(void)
{
	struct made m;
	char *out = NULL;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	free(out);
	CU_ASSERT_EQUAL_FATAL(fixture_reimage(&out, "confirm --root '%s'", t_path("root")), 0);
	free(out);
	CU_ASSERT_EQUAL_FATAL(t_sh("mv '%s/usr/big.bin' '%s/usr/moved.bin'", t_path("src"),
				   t_path("src")), 0);
}

TEST_CASE(reuse_by_digest_from_the_last_toc)
{
	struct made m2;
	char *out = NULL;
	long reused, fetched;
	long long read;
	/* The next image moved the big file: found by its digest in the TOC
	 * the last stage kept, at its old path. */
	staged_then_big_file_moved();
	chunk(t_path("src"), t_path("img2.tar.zst"), &m2);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img2.tar.zst"), settings(&m2, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT_EQUAL(fetched, 1);  /* the sparse file */
	CU_ASSERT(read < 2000000);
	root_is_src();
	free(out);
}

/* "K chunks (B bytes) of the files fetched taken from the root": K. */
static long chunks_reused(const char *out)
{
	const char *p = strstr(out, "-byte image; ");
	long n = -1;
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT(sscanf(p, "-byte image; %ld chunks", &n) == 1);
	return n;
}

/* Write 3000 bytes of noise (the same every run) into file at offset: a
 * change in place. */
static void scribble(const char *file, long offset)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c 'import random, sys; random.seed(%ld); "
				   "sys.stdout.buffer.write(random.randbytes(3000))' | dd of='%s' bs=1 "
				   "seek=%ld conv=notrunc status=none", offset, file, offset), 0);
}

TEST_CASE(chunks_reused_from_a_changed_file)
{
	/* The root's big file differs from the image's in 3000 bytes: only
	 * the chunks holding them are fetched, the others are cut from the
	 * root's file and taken from there. */
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read;
	setup();
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s'", t_path("root"), t_path("src"),
				   t_path("root")), 0);
	scribble(t_path("src/usr/big.bin"), 1000000);
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT_EQUAL(fetched, 2);  /* big.bin, in part, and the sparse file */
	CU_ASSERT(chunks_reused(out) > 10);
	CU_ASSERT(read > 0 && read < 500000);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	free(out);
}

TEST_CASE(chunks_by_the_last_toc_a_corrupted_one_refetched)
{
	/* The next image moved the big file and changed it a little: its
	 * chunks are found where the last TOC put them (the old path), each
	 * read and hashed there -- one of them the root corrupted since is
	 * not taken but fetched. */
	struct made m2;
	char *out = NULL;
	long reused, fetched;
	long long read;
	staged_then_big_file_moved();
	scribble(t_path("src/usr/moved.bin"), 1000000);
	chunk(t_path("src"), t_path("img2.tar.zst"), &m2);
	scribble(t_path("root/usr/big.bin"), 300000);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img2.tar.zst"), settings(&m2, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT_EQUAL(fetched, 2);  /* moved.bin, in part, and the sparse file */
	CU_ASSERT(chunks_reused(out) > 10);
	CU_ASSERT(read > 0 && read < 800000);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	free(out);
}

/* A fallback: the whole image read, the tree right all the same. */
static void falls_back(const char *image, const char *extra, const char *why)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(run(image, extra, &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reading the whole image instead"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, why));
	root_is_src();
	free(out);
}

/* An update as a point release makes one: the root runs src as it was
 * (img1 made of it), then a few bytes of usr/big.bin rewritten here and
 * there (a rebuilt binary: most chunks of it changed) and img2 made of
 * src with --base img1: big.bin gets a delta frame, and nothing else. */
static void delta_images(struct made *m2)
{
	struct made m1;
	setup();
	/* And a file the update leaves alone, bigger than big.bin: most of
	 * the image is on the root whatever becomes of big.bin. */
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c 3000000 /dev/urandom > '%s/usr/big2.bin'",
				   t_path("src")), 0);
	chunk(t_path("src"), t_path("img1.tar.zst"), &m1);
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s'", t_path("root"), t_path("src"),
				   t_path("root")), 0);
	for (long at = 1000; at < 2000000; at += 131072)
		scribble(t_path("src/usr/big.bin"), at);
	chunk_on(t_path("src"), t_path("img2.tar.zst"), t_path("img1.tar.zst"), m2);
}

/* "N files from delta frames": N. */
static long delta_count(const char *out)
{
	const char *p = strstr(out, " files from delta frames");
	while (p && p > out && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return p ? strtol(p, NULL, 10) : -1;
}

TEST_CASE(delta_used_when_base_matches)
{
	/* The root holds big.bin as img1 had it: its delta frame (a few
	 * hundred bytes) is fetched, not its 2 MB of changed chunks. */
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read;
	delta_images(&m);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img2.tar.zst"), settings(&m, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT_EQUAL(delta_count(out), 1);
	CU_ASSERT(read > 0 && read < 200000);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	free(out);
}

TEST_CASE(delta_normal_frame_when_base_differs)
{
	/* The root's big.bin is neither img1's nor img2's: no delta, its
	 * frames are fetched. */
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read;
	delta_images(&m);
	CU_ASSERT_EQUAL_FATAL(t_sh("head -c 2000000 /dev/urandom > '%s/usr/big.bin'",
				   t_path("root")), 0);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img2.tar.zst"), settings(&m, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT_EQUAL(delta_count(out), 0);
	CU_ASSERT(read > 2000000);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	free(out);
}

TEST_CASE(delta_corrupted_falls_back_to_frames)
{
	/* A byte of the delta frame flipped: it does not decode to big.bin's
	 * content, and big.bin's frames are fetched instead -- not the whole
	 * image (whose SHA-256 no longer matches the job's: reading it whole
	 * would fail the job). */
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read;
	delta_images(&m);
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c 'import json, struct, subprocess, sys; "
				   "p = sys.argv[1]; d = bytearray(open(p, \"rb\").read()); "
				   "off, ln = struct.unpack(\"<2Q\", d[-64:-48]); "
				   "toc = json.loads(subprocess.run([\"zstd\", \"-dc\"], input=bytes(d[off:off + ln]), "
				   "stdout=subprocess.PIPE, check=True).stdout); "
				   "x = [e for e in toc[\"entries\"] if \"reimage.delta\" in e][0][\"reimage.delta\"]; "
				   "d[x[\"offset\"] + x[\"size\"] // 2] ^= 0xff; open(p, \"wb\").write(d)' '%s'",
				   t_path("img2.tar.zst")), 0);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img2.tar.zst"), settings(&m, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "the delta frame of 'usr/big.bin'"));
	CU_ASSERT_EQUAL(delta_count(out), 0);
	CU_ASSERT(read > 1000000);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	free(out);
}

TEST_CASE(delta_image_extracts_with_tar)
{
	/* The delta frames are skippable frames: GNU tar (through zstd) and
	 * bsdtar extract the image as if they were not there. */
	struct made m;
	delta_images(&m);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir '%s' && tar --zstd --acls -xpf '%s' -C '%s' 2>/dev/null",
				   t_path("x"), t_path("img2.tar.zst"), t_path("x")), 0);
	char *want = fixture_manifest(t_path("src")), *got = fixture_manifest(t_path("x"));
	CU_ASSERT(want && got && fixture_same(want, got, "tar --zstd -x"));
	free(want);
	free(got);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir '%s' && bsdtar -xpf '%s' -C '%s'", t_path("y"),
				   t_path("img2.tar.zst"), t_path("y")), 0);
	want = fixture_meta_manifest(t_path("src"), 0);
	got = fixture_meta_manifest(t_path("y"), 0);
	CU_ASSERT(want && got && fixture_same(want, got, "bsdtar -x"));
	free(want);
	free(got);
	CU_ASSERT_EQUAL(t_sh("zstd -t -q '%s'", t_path("img2.tar.zst")), 0);
}

TEST_CASE(fallback_bad_toc_digest)
{
	struct made m;
	char toc[65];
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	snprintf(toc, sizeof(toc), "%064d", 0);
	falls_back(t_path("img.tar.zst"), settings(&m, toc), "the TOC's SHA-256 is");
}

TEST_CASE(fallback_not_chunked)
{
	/* A plain tar.zst under the chunked kind: no footer, read whole. */
	struct made m;
	setup();
	fixture_pack(t_path("src"), t_path("plain.tar.zst"), "zstd");
	snprintf(m.sha256, sizeof(m.sha256), "%s", fixture_sha256(t_path("plain.tar.zst")));
	m.size = fixture_size(t_path("plain.tar.zst"));
	snprintf(m.toc, sizeof(m.toc), "%064d", 1);
	char *out = NULL;
	CU_ASSERT_EQUAL(run(t_path("plain.tar.zst"), settings(&m, NULL), &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "no zstd:chunked footer"));
	/* tar (GNU, the fixture's packer) keeps what the fixture checks but
	 * holes: compare without them. */
	char *want = fixture_meta_manifest(t_path("src"), FIXTURE_NO_SPARSE | FIXTURE_NO_ACL |
							      FIXTURE_NO_XATTR);
	char *got = fixture_meta_manifest(t_path("root"), FIXTURE_NO_SPARSE | FIXTURE_NO_ACL |
							      FIXTURE_NO_XATTR);
	CU_ASSERT(want && got && fixture_same(want, got, "plain tar"));
	free(want);
	free(got);
	free(out);
}

TEST_CASE(reuse_small_file_changed_behind_its_time_fetched)
{
	/* A small root file of the TOC's size and time whose bytes differ
	 * (changed, its time set back) is read and hashed before it is
	 * taken: it is fetched, and nothing else is. */
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s' && cd '%s/usr/share/many' && "
				   "head -c 37 /dev/zero > f1 && touch -r '%s/usr/share/many/f1' f1",
				   t_path("root"), t_path("src"), t_path("root"), t_path("root"),
				   t_path("src")), 0);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT_EQUAL(fetched, 2);  /* f1, and the sparse file */
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	free(out);
}

TEST_CASE(fallback_root_file_changed_behind_its_time)
{
	/* A root file too big to hold in memory (over 8 MiB), of the TOC's
	 * size and time, is taken unread; if its bytes differ after all
	 * (changed, its time set back), the copy's hash catches it and the
	 * whole image is read instead. */
	struct made m;
	setup();
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c 'import random, sys; random.seed(9); "
				   "sys.stdout.buffer.write(random.randbytes(9000000))' > '%s/usr/huge.bin'",
				   t_path("src")), 0);
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s'", t_path("root"), t_path("src"),
				   t_path("root")), 0);
	scribble(t_path("root/usr/huge.bin"), 5000000);
	CU_ASSERT_EQUAL_FATAL(t_sh("touch -r '%s/usr/huge.bin' '%s/usr/huge.bin'", t_path("src"),
				   t_path("root")), 0);
	falls_back(t_path("img.tar.zst"), settings(&m, NULL),
		   "'usr/huge.bin' (from the root): its SHA-256 is not the TOC's");
}

/* Python that reads the image at %s: its bytes d (a bytearray) and its
 * TOC toc, found through the footer. */
#define READ_TOC_PY                                                                   \
	"import json, struct, subprocess\n"                                            \
	"d = bytearray(open('%s', 'rb').read())\n"                                     \
	"off, ln = struct.unpack('<2Q', bytes(d[-64:-48]))\n"                          \
	"toc = json.loads(subprocess.run(['zstd', '-dc'], input=bytes(d[off:off+ln]), " \
	"stdout=subprocess.PIPE, check=True).stdout)\n"

/* Flip a byte in the middle of the frame of name (from the TOC). */
static void corrupt_frame(const char *image, const char *name)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c \"\n" READ_TOC_PY
				   "e = [e for e in toc['entries'] if e['name'] == '%s'][0]\n"
				   "d[(e['offset'] + e['endOffset']) // 2] ^= 0xff\n"
				   "open('%s', 'wb').write(d)\"", image, name, image), 0);
}

/* The root holds the image but for one file, whose frame is fetched. */
static void root_lacks_f60(void)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s' && rm '%s/usr/share/many/f60'",
				   t_path("root"), t_path("src"), t_path("root"), t_path("root")), 0);
}

/* The job fails, on what names why: both the chunked read and the whole
 * image's; the root is as it was, and no staged tree is left. */
static void fails_no_partial_tree(const struct made *m, const char *why)
{
	char *out = NULL, *before = fixture_manifest(t_path("root"));
	CU_ASSERT_EQUAL(run(t_path("img.tar.zst"), settings(m, NULL), &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, why));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reading the whole image instead"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "error: STAGE"));
	char *now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after a corrupted image"));
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", t_path("root")), 0);
	free(before);
	free(now);
	free(out);
}

/* More content than the finder may hold ahead of the rebuild (a 32 MiB
 * ring): 30 files of 1 to 3.9 MB, 73 MB in all, their sizes uneven so
 * that the ring wraps at every place; and a 9 MB file (over the 8 MiB a
 * file may take of the ring) that img2, made with --base img1, changes a
 * little: its delta frame is decoded outside the ring.  The root runs
 * img1's tree; the job stages img2.tar.zst. */
static void ring_images(struct made *m2)
{
	struct made m1;
	setup();
	CU_ASSERT_EQUAL_FATAL(t_sh("set -e; mkdir '%s/usr/ring'; python3 -c 'import random, sys\n"
				   "for i in range(30):\n"
				   "    random.seed(i)\n"
				   "    open(\"%s/usr/ring/f%%02d\" %% i, \"wb\").write("
				   "random.randbytes(1000000 + i * 100003))\n"
				   "random.seed(99)\n"
				   "open(\"%s/usr/bigdelta.bin\", \"wb\").write(random.randbytes(9000000))'",
				   t_path("src"), t_path("src"), t_path("src")), 0);
	chunk(t_path("src"), t_path("img1.tar.zst"), &m1);
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s'", t_path("root"), t_path("src"),
				   t_path("root")), 0);
	for (long at = 1000; at < 9000000; at += 1500000)
		scribble(t_path("src/usr/bigdelta.bin"), at);
	chunk_on(t_path("src"), t_path("img.tar.zst"), t_path("img1.tar.zst"), m2);
}

TEST_CASE(reuse_through_the_ring)
{
	/* Every file of the ring taken from the root, the big one from its
	 * delta, the tree right: the finder waited for room and went on. */
	struct made m;
	char *out = NULL;
	long reused, fetched;
	long long read;
	ring_images(&m);
	CU_ASSERT_EQUAL_FATAL(run(t_path("img.tar.zst"), settings(&m, NULL), &out), 0);
	reuse_counts(out, &reused, &fetched, &read);
	CU_ASSERT(reused >= 90);
	CU_ASSERT_EQUAL(delta_count(out), 1);
	CU_ASSERT(read > 0 && read < 1000000);
	CU_ASSERT_PTR_NULL(strstr(out, "reading the whole image"));
	root_is_src();
	free(out);
}

/* The first file of usr/ring/ in the image's TOC (the tar's order). */
static void first_ring_file(const char *image, char name[64])
{
	char *text = NULL;
	CU_ASSERT_EQUAL_FATAL(t_sh_out(&text, "python3 -c \"\n" READ_TOC_PY
					"print([e['name'] for e in toc['entries'] if e['type'] == 'reg' "
					"and e['name'].startswith('usr/ring/')][0], end='')\"", image), 0);
	CU_ASSERT_FATAL(text && strlen(text) < 64);
	snprintf(name, 64, "%s", text);
	free(text);
}

TEST_CASE(ring_full_when_the_frame_fails)
{
	/* The first file of the ring is not on the root and its frame is
	 * corrupted: the rebuild fails there while the finder waits for room
	 * ahead of it -- the stage ends (no hang), the whole image fails its
	 * SHA-256 too, and the root is as it was, no staged tree left. */
	struct made m;
	char name[64];
	ring_images(&m);
	first_ring_file(t_path("img.tar.zst"), name);
	CU_ASSERT_EQUAL_FATAL(t_sh("rm '%s/%s'", t_path("root"), name), 0);
	corrupt_frame(t_path("img.tar.zst"), name);
	fails_no_partial_tree(&m, name);
}

TEST_CASE(fallback_corrupted_frame_no_partial_tree)
{
	/* A corrupted frame fails the chunked read; the whole image (whose
	 * SHA-256 no longer matches) fails too: the job fails and the root
	 * is as it was, with no staged tree left. */
	struct made m;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	root_lacks_f60();
	corrupt_frame(t_path("img.tar.zst"), "usr/share/many/f60");
	fails_no_partial_tree(&m, "usr/share/many/f60");
}

TEST_CASE(fallback_corrupted_chunk_no_partial_tree)
{
	/* The root's big file changed at one spot: the chunk there is
	 * fetched, and the server's bytes of it are corrupted.  The chunked
	 * read fails on it, the whole image too (its SHA-256): the job fails,
	 * the root as it was, no staged tree left. */
	struct made m;
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && cp -a '%s' '%s'", t_path("root"), t_path("src"),
				   t_path("root")), 0);
	scribble(t_path("root/usr/big.bin"), 1000000);
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c \"\n" READ_TOC_PY
				   "es = [e for e in toc['entries'] if e['name'] == 'usr/big.bin']\n"
				   "for i, e in enumerate(es):\n"
				   "    at = e.get('chunkOffset', 0)\n"
				   "    if at <= 1000000 < at + e['chunkSize']:\n"
				   "        end = es[i + 1]['offset'] if i + 1 < len(es) else es[0]['endOffset']\n"
				   "        d[(e['offset'] + end) // 2] ^= 0xff\n"
				   "open('%s', 'wb').write(d)\"", t_path("img.tar.zst"),
				   t_path("img.tar.zst")), 0);
	fails_no_partial_tree(&m, "'usr/big.bin' (fetched)");
}

TEST_CASE(fallback_corrupted_frame_then_full_stream)
{
	/* The job declares no image digest: the frame fails its file's
	 * digest, the partial tree is wiped, and the whole stream's own
	 * check (zstd's frame checksum) refuses the image too. */
	struct made m;
	char *out = NULL;
	char extra[256];
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	root_lacks_f60();
	corrupt_frame(t_path("img.tar.zst"), "usr/share/many/f60");
	snprintf(extra, sizeof(extra), "toc_sha256 = \"%s\";", m.toc);
	CU_ASSERT_EQUAL(run(t_path("img.tar.zst"), extra, &out), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "usr/share/many/f60"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "reading the whole image instead"));
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", t_path("root")), 0);
	free(out);
}

TEST_CASE(kind_needs_toc_digest)
{
	/* Chunked by its footer, but the job gives no TOC digest: nothing
	 * can be trusted piecewise, so it is read whole, and still right. */
	struct made m;
	char *out = NULL, extra[256];
	setup();
	chunk(t_path("src"), t_path("img.tar.zst"), &m);
	snprintf(extra, sizeof(extra), "sha256 = \"%s\";", m.sha256);
	CU_ASSERT_EQUAL(run(t_path("img.tar.zst"), extra, &out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "read whole: the job gives no image.toc_sha256"));
	root_is_src();
	free(out);
	/* A TOC digest with another kind is a configuration error. */
	snprintf(extra, sizeof(extra), "kind = \"archive\"; toc_sha256 = \"%s\";", m.toc);
	CU_ASSERT_EQUAL(run(t_path("img.tar.zst"), extra, &out), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "image.toc_sha256"));
	free(out);
}
