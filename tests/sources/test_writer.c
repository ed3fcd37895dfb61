/*
 * test_writer.c -- STAGE's disk writers held to GNU tar.  A tree with
 * every kind of entry and of metadata (hard links across directories,
 * symlinks owned by others, a sparse file, set-ID files and directories,
 * a file capability, ACLs access and default, xattrs, a FIFO, device
 * nodes under dev/, a read-only directory, times in nanoseconds) is packed
 * by GNU tar and by bsdtar; each archive is extracted by GNU tar (the
 * reference) and staged by `reimage run`, and the two trees must match
 * entry by entry (tests/manifest.py --exact: type, mode, owner, size,
 * content, time, xattrs, ACLs, hard-link groups, data and holes, device
 * numbers).  One body, run once per writer: reimage's own (writer_at.c)
 * and libarchive's, its fallback.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The tree: made with the system's tools, then every time set, deepest
 * first (so that no later change moves a directory's), each its own. */
static void make_tree(const char *d)
{
	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; cd '%s'; mkdir -p usr/bin usr/lib etc dev var/mail tmp srv/shared opt/ro "
		"home/alice\n"
		"echo hello > etc/hostname; : > etc/empty\n"
		"head -c 1500000 /dev/urandom > usr/lib/big.bin\n"
		"cp /bin/true usr/bin/su; chmod 4755 usr/bin/su\n"
		"cp /bin/true usr/bin/wall; chgrp 5 usr/bin/wall; chmod 2755 usr/bin/wall\n"
		"echo o > usr/bin/owned; chown 1234:4321 usr/bin/owned; chmod 4750 usr/bin/owned\n"
		"cp /bin/true usr/bin/ping; setcap cap_net_raw+ep usr/bin/ping\n"
		"echo a > etc/acl; setfacl -m u:1000:rw,g:100:r etc/acl\n"
		"echo x > etc/xattr; setfattr -n user.one -v 1 etc/xattr\n"
		"setfattr -n user.bin -v 0x00ff10 etc/xattr; setfattr -n user.dir -v yes srv\n"
		/* Holes: one before data and one after; one file of data then a hole. */
		"truncate -s 8M usr/lib/sparse\n"
		"printf data | dd of=usr/lib/sparse bs=1 seek=4194304 conv=notrunc status=none\n"
		"head -c 65536 /dev/urandom > usr/lib/sparse2; truncate -s 16M usr/lib/sparse2\n"
		"echo linked > usr/lib/h1; ln usr/lib/h1 usr/lib/h2; ln usr/lib/h1 etc/h3\n"
		"ln usr/bin/su usr/bin/su-link\n"
		"ln -s ../lib/big.bin usr/bin/rel; ln -s /nonexistent/target usr/bin/abs\n"
		"ln -s usr/lib lib; ln -s hostname etc/owned-link; chown -h 1000:1000 etc/owned-link\n"
		"mkfifo -m 620 var/fifo; chown 1:1 var/fifo\n"
		"mknod -m 660 dev/null c 1 3; mknod -m 640 dev/loop0 b 7 0; chgrp 6 dev/loop0\n"
		"chgrp 8 var/mail; chmod 2775 var/mail; echo m > var/mail/alice\n"
		"chmod 1777 tmp\n"
		"setfacl -d -m u:1000:rwx,g:100:rx srv/shared; echo s > srv/shared/inherited\n"
		"echo n > home/alice/notes; chown -R 1000:1000 home/alice; chmod 750 home/alice\n"
		"echo r > opt/ro/file; chmod 500 opt/ro\n"
		"python3 -c \"\n"
		"import os\n"
		"paths = []\n"
		"for root, dirs, files in os.walk('.', topdown=False):\n"
		"    paths += [os.path.join(root, n) for n in files + dirs]\n"
		"for i, p in enumerate(paths):\n"
		"    t = (1000000000 + 86400 * i) * 10**9 + 123456789 + i\n"
		"    os.utime(p, ns=(t, t), follow_symlinks=False)\n"
		"\"\n", d), 0);
}

/* A root with one file of its own, for `reimage run` to replace. */
static void fresh_root(void)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && mkdir -p '%s/etc' && echo old > '%s/etc/os'",
				   t_path("root"), t_path("root"), t_path("root")), 0);
}

static char *manifest(const char *dir, const char *opts)
{
	char *text = NULL;
	CU_ASSERT_EQUAL(t_sh_out(&text, "python3 '%s/tests/manifest.py' '%s' --exact %s", t_src_dir(),
				 dir, opts), 0);
	return text;
}

static void same(const char *a, const char *b, const char *opts, const char *what)
{
	char *want = manifest(a, opts), *got = manifest(b, opts);
	CU_ASSERT(want && got && strstr(want, "usr/bin/ping") && fixture_same(want, got, what));
	free(want);
	free(got);
}

/* Stage archive with the writer chosen and extract it with GNU tar: the
 * same trees, and the same as the tree packed.  gnu_dir_times: whether
 * GNU tar gets directories' times right from this archive (not from
 * bsdtar's, breadth-first: see manifest.py). */
static void same_as_gnu_tar(const char *archive, int gnu_dir_times, const char *writer_said)
{
	char job_extra[512], *out = NULL;

	fresh_root();
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && mkdir '%s' && tar --xattrs --xattrs-include='*' "
				   "--acls --numeric-owner --same-permissions --same-owner -xf '%s' "
				   "-C '%s'", t_path("gnu"), t_path("gnu"), archive, t_path("gnu")),
			      0);
	snprintf(job_extra, sizeof(job_extra), "sha256 = \"%s\";", fixture_sha256(archive));
	fixture_job(t_path("job.conf"), archive, job_extra, "reboot = false;");
	CU_ASSERT_EQUAL_FATAL(fixture_reimage(&out, "-v run -c '%s' --root '%s'", t_path("job.conf"),
					      t_path("root")), 0);
	/* The writer asked for is the one that wrote. */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, writer_said));
	free(out);
	same(t_path("gnu"), t_path("root"), gnu_dir_times ? "" : "--no-dir-times", archive);
	same(t_path("src"), t_path("root"), "", archive);
}

static void exact_for(const char *writer, const char *writer_said)
{
	if (!t_is_root())
		t_skip("needs root for owners, device nodes and capabilities");
	fixture_writer(writer);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("src")), 0);
	make_tree(t_path("src"));
	/* GNU tar's pax (SCHILY.xattr, SCHILY.acl, GNU.sparse 1.0) and
	 * bsdtar's (LIBARCHIVE.xattr too), compressed as images are. */
	CU_ASSERT_EQUAL_FATAL(t_sh("tar --format=posix --xattrs --xattrs-include='*' --acls --sparse "
				   "--numeric-owner -C '%s' -cf - . | zstd -q -o '%s'", t_path("src"),
				   t_path("gnu.tar.zst")), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("bsdtar --format=pax --numeric-owner -C '%s' -cf - . | "
				   "gzip -c > '%s'", t_path("src"), t_path("bsd.tar.gz")), 0);
	same_as_gnu_tar(t_path("gnu.tar.zst"), 1, writer_said);
	same_as_gnu_tar(t_path("bsd.tar.gz"), 0, writer_said);
}

TEST_CASE(gnu_tar_same_at)
{
	exact_for("at", "writing with directory descriptors");
}

TEST_CASE(gnu_tar_same_libarchive)
{
	exact_for("libarchive", "libarchive's disk writer");
}
