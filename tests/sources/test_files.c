/*
 * test_files.c -- image sources that are trees or file-system images: a
 * directory (dir:), an ISO 9660 image (xorriso), a squashfs image
 * (mksquashfs) and an ext4 image (mke2fs -d), each made from the metadata
 * fixture of archive staging, staged by `reimage run` on a sandbox root
 * and compared with the fixture file by file (content, mode, owner, links,
 * times, xattrs, capabilities, ACLs, devices, sparseness) -- leaving out
 * only what the format cannot carry.  Then `reimage plan` on each, and a
 * traversal attempt in each kind, refused or defused with nothing written
 * outside staging, once per STAGE writer (reimage's, libarchive's).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fresh sandbox root holding one file. */
static void fresh_root(void)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && mkdir -p '%s/etc' && echo old > '%s/etc/os'",
				   t_path("root"), t_path("root"), t_path("root")), 0);
}

/* That root, and the metadata fixture in src/. */
static void setup(void)
{
	if (!t_is_root())
		t_skip("needs root for device nodes, owners, capabilities and mounts");
	fresh_root();
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("src")), 0);
	fixture_meta_tree(t_path("src"));
}

static int run_job(const char *url, const char *image_extra, char **out)
{
	fixture_job(t_path("job.conf"), url, image_extra, "reboot = false;");
	return fixture_reimage(out, "run -c '%s' --root '%s'", t_path("job.conf"), t_path("root"));
}

/* Stage url and compare the root with src, less what drop names. */
static void staged_same(const char *url, const char *image_extra, unsigned drop)
{
	char *out = NULL, *want, *got;

	CU_ASSERT_EQUAL_FATAL(run_job(url, image_extra, &out), 0);
	free(out);
	want = fixture_meta_manifest(t_path("src"), drop);
	got = fixture_meta_manifest(t_path("root"), drop);
	CU_ASSERT(want && got && strstr(want, "usr/owned") && fixture_same(want, got, url));
	free(want);
	free(got);
}

/* The job failed (exit status) with needle and left the root as it was. */
static void refused_with(int status, const char *url, const char *image_extra, const char *needle)
{
	char *out = NULL, *before = fixture_manifest(t_path("root")), *now;

	CU_ASSERT_EQUAL(run_job(url, image_extra, &out), status);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, needle));
	now = fixture_manifest(t_path("root"));
	CU_ASSERT(fixture_same(before, now, "root after a refused image"));
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage/new'", t_path("root")), 0);
	free(out);
	free(before);
	free(now);
}

/* Refused while staging: the job failed. */
static void refused(const char *url, const char *image_extra, const char *needle)
{
	refused_with(1, url, image_extra, needle);
}

/* A directory outside the root that an image aims at. */
static const char *outside(void)
{
	static char dir[4096];
	snprintf(dir, sizeof(dir), "%s", t_path("outside"));
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && echo secret > '%s/secret'", dir, dir), 0);
	return dir;
}

static void outside_untouched(void)
{
	CU_ASSERT_EQUAL(t_sh("test \"$(ls -A '%s')\" = secret && grep -qx secret '%s/secret'",
			     t_path("outside"), t_path("outside")), 0);
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/escape' || test -e '%s/.reimage/escape' || "
				 "test -e '%s/escape'", t_path("root"), t_path("root"), t_dir()), 0);
}

static const char *sha_and_size(const char *file)
{
	static char text[256];
	snprintf(text, sizeof(text), "sha256 = \"%s\"; size = %lld;", fixture_sha256(file),
		 fixture_size(file));
	return text;
}

static void make_iso(const char *src, const char *iso)
{
	/* -R: Rock Ridge with the files' own owners and modes. */
	CU_ASSERT_EQUAL_FATAL(t_sh("xorriso -as mkisofs -quiet -R -o '%s' '%s' 2>/dev/null", iso,
				   src), 0);
}

static void make_squashfs(const char *src, const char *img, const char *extra)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mksquashfs '%s' '%s' -quiet -no-progress %s >/dev/null 2>&1",
				   src, img, extra), 0);
}

static void make_ext4(const char *src, const char *img)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mke2fs -q -F -t ext4 -d '%s' '%s' 160M", src, img), 0);
}

/* Rename a directory entry in an image file by patching its name bytes
 * (same length): how a hostile image gets a name no tool would write. */
static void patch_name(const char *file, const char *prefix, const char *from, const char *to)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c \"\nimport sys\n"
				   "d = open('%s', 'rb').read()\n"
				   "old = %s + b'%s'\nnew = %s + b'%s'\n"
				   "assert d.count(old) >= 1, 'name not found'\n"
				   "open('%s', 'wb').write(d.replace(old, new))\"", file, prefix, from,
				   prefix, to, file), 0);
}

/* ------------------------------------------------------------ metadata */

TEST_CASE(dir_metadata)
{
	char url[4200];
	setup();
	snprintf(url, sizeof(url), "dir:%s", t_path("src"));
	staged_same(url, NULL, 0);
}

TEST_CASE(iso_metadata)
{
	setup();
	make_iso(t_path("src"), t_path("img.iso"));
	/* ISO 9660 with Rock Ridge keeps owners, modes, times, links and
	 * devices; it has no xattrs (so no ACLs, no capabilities) and no
	 * holes.  Without the ACL, xorriso records the ACL's group entry
	 * (r--) as the file's group bits, where stat shows the mask (rw-):
	 * the fixture's ACL file is held to what the ISO says. */
	CU_ASSERT_EQUAL_FATAL(t_sh("setfacl -b '%s' && chmod 644 '%s'", t_path("src/usr/acl"),
				   t_path("src/usr/acl")), 0);
	staged_same(t_path("img.iso"), sha_and_size(t_path("img.iso")),
		    FIXTURE_NO_XATTR | FIXTURE_NO_SPARSE);
}

TEST_CASE(squashfs_metadata)
{
	setup();
	make_squashfs(t_path("src"), t_path("img.sqfs"), "");
	/* squashfs keeps every xattr but ACLs (mksquashfs stores user.,
	 * trusted. and security. only). */
	staged_same(t_path("img.sqfs"), sha_and_size(t_path("img.sqfs")), FIXTURE_NO_ACL);
}

TEST_CASE(ext4_metadata)
{
	setup();
	make_ext4(t_path("src"), t_path("img.ext4"));
	/* Mounted read-only by the backend, walked like a tree: everything. */
	staged_same(t_path("img.ext4"), sha_and_size(t_path("img.ext4")), 0);
	/* Detached afterwards: no loop device left on the image. */
	CU_ASSERT_NOT_EQUAL(t_sh("losetup -j '%s' | grep -q .", t_path("img.ext4")), 0);
}

TEST_CASE(kind_forced)
{
	/* A squashfs image named like an archive, and a job that says what
	 * it is; then an ISO forced to be read as squashfs: refused. */
	setup();
	make_squashfs(t_path("src"), t_path("img.tar"), "");
	staged_same(t_path("img.tar"), "kind = \"squashfs\";", FIXTURE_NO_ACL);
	fresh_root();
	make_iso(t_path("src"), t_path("img.iso"));
	refused(t_path("img.iso"), "kind = \"squashfs\";", "not a squashfs image");
}

TEST_CASE(squashfs_wrong_digest)
{
	char extra[128];
	setup();
	make_squashfs(t_path("src"), t_path("img.sqfs"), "");
	snprintf(extra, sizeof(extra), "sha256 = \"%064d\";", 0);
	refused(t_path("img.sqfs"), extra, "image SHA-256 is");
}

TEST_CASE(plan_names_kind_size_entries)
{
	static const struct { const char *file, *kind; } cases[] = {
		{ NULL, "source     dir" },
		{ "img.iso", "source     iso, " },
		{ "img.sqfs", "source     squashfs, " },
		{ "img.ext4", "source     ext4, " },
	};
	char url[4200], *out = NULL;
	setup();
	make_iso(t_path("src"), t_path("img.iso"));
	make_squashfs(t_path("src"), t_path("img.sqfs"), "");
	make_ext4(t_path("src"), t_path("img.ext4"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].file)
			snprintf(url, sizeof(url), "%s", t_path("%s", cases[i].file));
		else
			snprintf(url, sizeof(url), "dir:%s", t_path("src"));
		fixture_job(t_path("job.conf"), url, NULL, NULL);
		CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
						t_path("root")), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, cases[i].kind));
		/* The fixture's 33 entries, read without staging. */
		if (i < 3) {
			CU_ASSERT_PTR_NOT_NULL(strstr(out, "contents   33 entries"));
			CU_ASSERT_PTR_NOT_NULL(strstr(out, "exchanged  1: etc"));
		} else {
			CU_ASSERT_PTR_NOT_NULL(strstr(out, "contents   known after staging"));
		}
		free(out);
	}
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage'", t_path("root")), 0);
}

/* ----------------------------------------------------------- traversal */

static void dir_traversal_with(const char *writer)
{
	char url[4200];
	const char *out_dir;
	fixture_writer(writer);
	setup();
	out_dir = outside();
	/* Links out of the tree are copied as links, never followed. */
	CU_ASSERT_EQUAL_FATAL(t_sh("ln -s '%s' '%s/escape' && ln -s '%s/secret' '%s/usr/leak'",
				   out_dir, t_path("src"), out_dir, t_path("src")), 0);
	snprintf(url, sizeof(url), "dir:%s", t_path("src"));
	staged_same(url, NULL, 0);
	CU_ASSERT_EQUAL(t_sh("test -L '%s/escape' && test -L '%s/usr/leak'", t_path("root"),
			     t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(ls -A '%s')\" = secret", out_dir), 0);
	/* A tree that holds staging (the root itself, or /) is refused
	 * before anything is done: a mistake in the job (status 2). */
	fresh_root();
	snprintf(url, sizeof(url), "dir:%s", t_path("root"));
	refused_with(2, url, NULL, "holds the staging directory");
	refused_with(2, "dir:/", NULL, "holds the staging directory");
}

TEST_CASE(dir_traversal)
{
	dir_traversal_with("at");
}

TEST_CASE(dir_traversal_libarchive)
{
	dir_traversal_with("libarchive");
}

static void iso_traversal_with(const char *writer)
{
	fixture_writer(writer);
	setup();
	outside();
	/* zz/yy/escape, renamed ../../escape in the Rock Ridge names. */
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/zz/yy' && echo pwned > '%s/zz/yy/escape'",
				   t_path("evil"), t_path("evil")), 0);
	make_iso(t_path("evil"), t_path("evil.iso"));
	patch_name(t_path("evil.iso"), "b'NM\\\\x07\\\\x01\\\\x00'", "zz", "..");
	patch_name(t_path("evil.iso"), "b'NM\\\\x07\\\\x01\\\\x00'", "yy", "..");
	refused(t_path("evil.iso"), NULL, "STAGE:");
	outside_untouched();
}

TEST_CASE(iso_traversal)
{
	iso_traversal_with("at");
}

TEST_CASE(iso_traversal_libarchive)
{
	iso_traversal_with("libarchive");
}

static void squashfs_traversal_with(const char *writer)
{
	fixture_writer(writer);
	setup();
	outside();
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/zz/yy' && echo pwned > '%s/zz/yy/escape'",
				   t_path("evil"), t_path("evil")), 0);
	/* Uncompressed tables, so that the names can be patched. */
	make_squashfs(t_path("evil"), t_path("evil.sqfs"), "-noI -noD -noF -noX");
	patch_name(t_path("evil.sqfs"), "b''", "zz", "..");
	patch_name(t_path("evil.sqfs"), "b''", "yy", "..");
	refused(t_path("evil.sqfs"), NULL, "squashfs");
	outside_untouched();
}

TEST_CASE(squashfs_traversal)
{
	squashfs_traversal_with("at");
}

TEST_CASE(squashfs_traversal_libarchive)
{
	squashfs_traversal_with("libarchive");
}

static void ext4_traversal_with(const char *writer)
{
	const char *out_dir;
	fixture_writer(writer);
	setup();
	out_dir = outside();
	/* The kernel never lets a name hold '/' or be "..": what an ext4
	 * image can aim outside with is symlinks, absolute or relative, to a
	 * directory or a file.  They arrive as links, never followed. */
	CU_ASSERT_EQUAL_FATAL(t_sh("ln -s '%s' '%s/escape' && ln -s ../../../../../../../../%s "
				   "'%s/usr/up'", out_dir, t_path("src"), out_dir, t_path("src")), 0);
	make_ext4(t_path("src"), t_path("img.ext4"));
	staged_same(t_path("img.ext4"), NULL, 0);
	CU_ASSERT_EQUAL(t_sh("test -L '%s/escape' && test -L '%s/usr/up'", t_path("root"),
			     t_path("root")), 0);
	CU_ASSERT_EQUAL(t_sh("test \"$(ls -A '%s')\" = secret", out_dir), 0);
}

TEST_CASE(ext4_traversal)
{
	ext4_traversal_with("at");
}

TEST_CASE(ext4_traversal_libarchive)
{
	ext4_traversal_with("libarchive");
}

/* ------------------------------------------------------------- backends */

TEST_CASE(raw_kind)
{
	/* "raw": whatever block file system the kernel finds in the image. */
	setup();
	make_ext4(t_path("src"), t_path("img.ext4"));
	staged_same(t_path("img.ext4"), "kind = \"raw\";", 0);
}

TEST_CASE(backend_cannot_mount)
{
	char *out = NULL;
	setup();
	make_ext4(t_path("src"), t_path("img.ext4"));
	fixture_job(t_path("job.conf"), t_path("img.ext4"), NULL, NULL);
	/* A backend without image_attach (the loader tests' fake "macos"):
	 * refused in PREFLIGHT, naming the kind and what would do instead. */
	int r = t_sh_out(&out, "REIMAGE_PLUGIN_PATH='%s/tests/plugins/auto' '%s/reimage' plan -c '%s' "
			 "--root '%s' --backend macos", t_bin_dir(), t_bin_dir(), t_path("job.conf"),
			 t_path("root"));
	fprintf(stderr, "%s", out);
	CU_ASSERT_NOT_EQUAL(r, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "backend macos cannot open ext4 images; give the image "
					   "as squashfs (mksquashfs), as an archive (tar), or as a "
					   "mounted tree (dir:PATH)"));
	free(out);
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/.reimage'", t_path("root")), 0);
}
