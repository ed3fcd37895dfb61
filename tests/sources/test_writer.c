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
 * and libarchive's, its fallback -- which a kernel without openat2 gets
 * by itself (a seccomp filter plays that kernel), and a wrong value of
 * REIMAGE_STAGE_WRITER is refused by name.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"

#include "writer_at.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

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

/* `reimage -v run` with openat2 failing ENOSYS, as before Linux 5.6: its
 * exit status, its output in *out. */
static int run_without_openat2(char **out)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
	char bin[4200], job[4200], root[4200], log[4200];
	int status;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/reimage", t_bin_dir());
	snprintf(job, sizeof(job), "%s", t_path("job.conf"));
	snprintf(root, sizeof(root), "%s", t_path("root"));
	snprintf(log, sizeof(log), "%s", t_path("out.txt"));
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(90);
		execl(bin, bin, "-v", "run", "-c", job, "--root", root, (char *)NULL);
		_exit(91);
	}
	CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
	*out = t_read(log);
	fprintf(stderr, "%s", *out ? *out : "(no output)\n");
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_CASE(no_openat2_falls_back)
{
	char *out = NULL;
	if (!t_is_root())
		t_skip("needs root for owners, device nodes and capabilities");
	unsetenv(WRITER_AT_ENV);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("src")), 0);
	make_tree(t_path("src"));
	CU_ASSERT_EQUAL_FATAL(t_sh("tar --format=posix --xattrs --xattrs-include='*' --acls --sparse "
				   "--numeric-owner -C '%s' -cf '%s' .", t_path("src"),
				   t_path("image.tar")), 0);
	fresh_root();
	fixture_job(t_path("job.conf"), t_path("image.tar"), NULL, "reboot = false;");
	CU_ASSERT_EQUAL(run_without_openat2(&out), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "libarchive's disk writer: this kernel has no "
						  "openat2"));
	free(out);
	same(t_path("src"), t_path("root"), "", "staged without openat2");
	/* Forced, reimage's writer refuses to stand in for what is missing. */
	fresh_root();
	CU_ASSERT_EQUAL(setenv(WRITER_AT_ENV, "at", 1), 0);
	CU_ASSERT_EQUAL(run_without_openat2(&out), 1);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, WRITER_AT_ENV "=at: this kernel has no openat2"));
	free(out);
}

TEST_CASE(writer_choice_named)
{
	char *out = NULL;
	if (!t_is_root())
		t_skip("needs root for the sandbox root's owners");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s/etc' && echo x > '%s/etc/os' && tar -C '%s' -cf '%s' "
				   "etc", t_path("src"), t_path("src"), t_path("src"),
				   t_path("image.tar")), 0);
	fresh_root();
	CU_ASSERT_EQUAL(setenv(WRITER_AT_ENV, "fast", 1), 0);
	fixture_job(t_path("job.conf"), t_path("image.tar"), NULL, "reboot = false;");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 2);  /* a mistake in the setup, as in a job */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, WRITER_AT_ENV "='fast': neither \"at\" nor \"libarchive\""));
	free(out);
	CU_ASSERT_EQUAL(t_sh("test \"$(cat '%s/etc/os')\" = old", t_path("root")), 0);
}

/* A zip written to a pipe declares no sizes before its members' data (a
 * data descriptor follows each): the data is still the file's. */
static void streamed_zip(const char *writer)
{
	char *out = NULL;
	if (!t_is_root())
		t_skip("needs root for the sandbox root's owners");
	fixture_writer(writer);
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 -c \"\n"
				   "import sys, zipfile\n"
				   "z = zipfile.ZipFile(sys.stdout.buffer, 'w', zipfile.ZIP_DEFLATED)\n"
				   "z.writestr('etc/hello', 'hello world\\\\n' * 100)\n"
				   "z.close()\" | cat > '%s'", t_path("image.zip")), 0);
	fresh_root();
	fixture_job(t_path("job.conf"), t_path("image.zip"), NULL, "reboot = false;");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	free(out);
	CU_ASSERT_EQUAL(t_sh("test $(grep -c 'hello world' '%s/etc/hello') -eq 100", t_path("root")), 0);
}

TEST_CASE(streamed_zip_at)
{
	streamed_zip("at");
}

TEST_CASE(streamed_zip_libarchive)
{
	streamed_zip("libarchive");
}
