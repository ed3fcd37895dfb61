/*
 * fixture.c -- see fixture.h.  Fixtures are made with the shell's own
 * tools (GNU tar, find, sha256sum): independent of the code under test.
 */
#define _GNU_SOURCE  /* nftw's FTW_ACTIONRETVAL */
#include "fixture.h"
#include "harness.h"
#include "writer_at.h"
#include <ftw.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <linux/openat2.h>
#include <sys/syscall.h>
#endif

void fixture_old_root(const char *d)
{
	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; cd '%s'; mkdir -p bin etc/network etc/ssh usr/lib var/log home/alice/docs "
		"home/bob srv/data proc run lost+found opt/only-old\n"
		"echo old-sh > bin/sh; chmod 755 bin/sh; echo old-lib > usr/lib/libc.so\n"
		"ln usr/lib/libc.so usr/lib/libc.so.6\n"
		"printf 'root:x:0:0:root:/root:/bin/sh\\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\\n"
		"bob:x:1001:1001:Bob:/home/bob:/bin/sh\\n' > etc/passwd\n"
		"printf 'root:*:1::::::\\nalice:$6$old:1::::::\\nbob:$6$bob:1::::::\\n' > etc/shadow\n"
		"chmod 640 etc/shadow\n"
		"printf 'root:x:0:\\nalice:x:1000:\\nbob:x:1001:\\n' > etc/group\n"
		"echo old-host > etc/hostname; echo '127.0.0.1 old' > etc/hosts\n"
		"echo 'iface eth0 inet dhcp' > etc/network/interfaces\n"
		"echo HOSTKEY > etc/ssh/ssh_host_ed25519_key; chmod 600 etc/ssh/ssh_host_ed25519_key\n"
		"echo 0123456789abcdef > etc/machine-id; echo old > etc/os-release\n"
		"echo 'alice notes' > home/alice/notes.txt; echo doc > home/alice/docs/a.txt\n"
		"ln -s notes.txt home/alice/link; chown -R 1000:1000 home/alice; chmod 700 home/alice\n"
		"echo bob > home/bob/b.txt; chown -R 1001:1001 home/bob\n"
		"echo data > srv/data/d.bin; echo old-log > var/log/syslog; echo p > proc/keep\n"
		"echo only > opt/only-old/x; echo top > topfile\n", d), 0);
}

void fixture_new_tree(const char *d)
{
	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; cd '%s'; mkdir -p bin etc usr/lib usr/share var/log home proc srv\n"
		"echo new-sh > bin/sh; chmod 755 bin/sh; echo new-lib > usr/lib/libc.so\n"
		"ln usr/lib/libc.so usr/lib/libc.so.7; ln -s libc.so usr/lib/libc.link\n"
		"printf 'root:x:0:0:root:/root:/bin/sh\\nsvc:x:999:999::/nonexistent:/bin/false\\n' "
		"> etc/passwd\n"
		"printf 'root:*:2::::::\\nsvc:!:2::::::\\n' > etc/shadow; chmod 640 etc/shadow\n"
		"printf 'root:x:0:\\nsvc:x:999:\\n' > etc/group\n"
		"echo new-host > etc/hostname; echo new > etc/os-release\n"
		"echo marker > NEW-IMAGE; mkdir -p only-new/deep; echo n > only-new/deep/f\n"
		"chmod 4755 bin/sh; echo s > usr/share/setgid; chmod 2644 usr/share/setgid\n"
		"mkfifo usr/share/fifo\n", d), 0);
}

void fixture_pack(const char *dir, const char *archive, const char *compressor)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("tar --numeric-owner --xattrs --acls -C '%s' -c%sf '%s' %s .",
				   dir, "", archive,
				   *compressor ? (strcmp(compressor, "zstd") == 0 ? "--zstd"
						  : strcmp(compressor, "gzip") == 0 ? "--gzip"
						  : "--xz")
					       : ""), 0);
}

const char *fixture_sha256(const char *path)
{
	static char out[65];
	char *text = NULL;
	CU_ASSERT_EQUAL_FATAL(t_sh_out(&text, "sha256sum '%s'", path), 0);
	snprintf(out, sizeof(out), "%.64s", text);
	free(text);
	return out;
}

long long fixture_size(const char *path)
{
	char *text = NULL;
	long long n;
	CU_ASSERT_EQUAL_FATAL(t_sh_out(&text, "stat -c %%s '%s'", path), 0);
	n = atoll(text);
	free(text);
	return n;
}

char *fixture_manifest(const char *dir)
{
	char *text = NULL;
	/* Type, mode, owner, size, link target and content digest of every
	 * file; hard links show as equal inode-group counts. */
	int r = t_sh_out(&text,
		"cd '%s' && find . -mindepth 1 -path ./.reimage -prune -o -printf '%%p %%y %%m %%U:%%G %%n %%l ' "
		"-exec sh -c 'if [ -f \"$1\" ] && [ ! -L \"$1\" ]; then sha256sum < \"$1\" | cut -c1-16; "
		"else echo -; fi' _ {} \\; | LC_ALL=C sort", dir);
	CU_ASSERT_EQUAL(r, 0);
	return text;
}

static int run_tool(char **out, const char *tool, const char *fmt, va_list ap)
{
	char args[8192];
	vsnprintf(args, sizeof(args), fmt, ap);
	int r = t_sh_out(out, "'%s/%s' %s", t_bin_dir(), tool, args);
	fprintf(stderr, "%s %s -> %d\n%s", tool, args, r, *out);
	return r;
}

int fixture_reimage(char **out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = run_tool(out, "reimage", fmt, ap);
	va_end(ap);
	return r;
}

int fixture_reimagectl(char **out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = run_tool(out, "reimagectl", fmt, ap);
	va_end(ap);
	return r;
}

void fixture_job(const char *path, const char *image, const char *image_extra, const char *extra)
{
	char text[8192];
	/* The fixture's images have no init: the boot guard (trial.guard,
	 * on by default) would refuse them.  A case that gives its own
	 * trial group tests the guard. */
	const char *trial = extra && strstr(extra, "trial:") ? "" : "trial: { guard = false; };\n";
	snprintf(text, sizeof(text),
		 "id = \"test-job\";\nserial = 7;\nbackend = \"sandbox\";\n"
		 "image: { url = \"%s\"; retry_delay_ms = 0; %s };\n%s\n%s", image,
		 image_extra ? image_extra : "", extra ? extra : "", trial);
	t_write(path, text);
}

int fixture_same(const char *a, const char *b, const char *what)
{
	if (strcmp(a, b) == 0)
		return 1;
	const char *pa = t_path("manifest-a"), *pb = t_path("manifest-b");
	t_write(pa, a);
	t_write(pb, b);
	fprintf(stderr, "%s: trees differ:\n", what);
	t_sh("diff '%s' '%s' | head -40 >&2", pa, pb);
	return 0;
}

void fixture_meta_tree(const char *dir)
{
	fixture_new_tree(dir);
	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; cd '%s'; mkdir -p dev; mknod dev/null c 1 3; mknod dev/blk b 7 200\n"
		"truncate -s 64M usr/sparse; echo end >> usr/sparse\n"
		"echo x > usr/xattr; setfattr -n user.reimage -v kept usr/xattr\n"
		"echo a > usr/acl; setfacl -m u:1000:rw,u:4242:r usr/acl\n"
		"cp bin/sh usr/ping; setcap cap_net_raw+ep usr/ping\n"
		"echo o > usr/owned; chown 1234:4321 usr/owned; touch -d '2001-02-03 04:05:06' usr/owned\n",
		dir), 0);
}

char *fixture_meta_manifest(const char *dir, unsigned drop)
{
	char *text = NULL;
	int r = t_sh_out(&text, "python3 '%s/tests/manifest.py' '%s'%s%s%s%s", t_src_dir(), dir,
			 drop & FIXTURE_NO_ACL ? " --no-acl" : "",
			 drop & FIXTURE_NO_XATTR ? " --no-xattr" : "",
			 drop & FIXTURE_NO_SPARSE ? " --no-sparse" : "",
			 drop & FIXTURE_NO_MTIME ? " --no-mtime" : "");
	CU_ASSERT_EQUAL(r, 0);
	return text;
}

/* ------------------------------------------------ in-process manifest */

static char **lines;
static size_t n_lines, cap_lines;
static size_t top_len;

static int line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int manifest_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char text[16384], names[4096], value[1024], target[PATH_MAX];
	const char *rel = path + top_len + 1;
	size_t len = 0;
	(void)flag;

	if (ftw->level == 0)
		return FTW_CONTINUE;
	if (ftw->level == 1 && !strcmp(rel, ".reimage"))
		return FTW_SKIP_SUBTREE;
	len += (size_t)snprintf(text + len, sizeof(text) - len, "%s type=%o mode=%o owner=%u:%u",
				rel, st->st_mode & S_IFMT, st->st_mode & 07777, st->st_uid, st->st_gid);
	if (!S_ISDIR(st->st_mode))
		len += (size_t)snprintf(text + len, sizeof(text) - len, " links=%lu",
					(unsigned long)st->st_nlink);
	if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		len += (size_t)snprintf(text + len, sizeof(text) - len, " target=%s", target);
	}
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
		len += (size_t)snprintf(text + len, sizeof(text) - len, " dev=%u:%u",
					major(st->st_rdev), minor(st->st_rdev));
	if (S_ISREG(st->st_mode)) {
		char *data = t_read(path);
		len += (size_t)snprintf(text + len, sizeof(text) - len, " size=%lld crc=%08lx",
					(long long)st->st_size,
					data ? crc32(0L, (const Bytef *)data, (uInt)strlen(data)) : 0UL);
		free(data);
	}
	ssize_t nl = llistxattr(path, names, sizeof(names));
	for (ssize_t off = 0; nl > 0 && off < nl; off += (ssize_t)strlen(names + off) + 1) {
		ssize_t vl = lgetxattr(path, names + off, value, sizeof(value));
		len += (size_t)snprintf(text + len, sizeof(text) - len, " xattr:%s=", names + off);
		for (ssize_t i = 0; i < vl && len + 3 < sizeof(text); i++)
			len += (size_t)snprintf(text + len, sizeof(text) - len, "%02x",
						(unsigned char)value[i]);
	}
	if (n_lines == cap_lines) {
		cap_lines = cap_lines ? cap_lines * 2 : 256;
		lines = realloc(lines, cap_lines * sizeof(*lines));
		CU_ASSERT_PTR_NOT_NULL_FATAL(lines);
	}
	lines[n_lines++] = strdup(text);
	return FTW_CONTINUE;
}

char *fixture_tree_manifest(const char *root)
{
	size_t total = 1, len = 0;
	char *all;

	n_lines = 0;
	top_len = strlen(root);
	CU_ASSERT_EQUAL_FATAL(nftw(root, manifest_entry, 16, FTW_PHYS | FTW_ACTIONRETVAL), 0);
	qsort(lines, n_lines, sizeof(*lines), line_cmp);
	for (size_t i = 0; i < n_lines; i++)
		total += strlen(lines[i]) + 1;
	all = malloc(total);
	CU_ASSERT_PTR_NOT_NULL_FATAL(all);
	for (size_t i = 0; i < n_lines; i++) {
		len += (size_t)sprintf(all + len, "%s\n", lines[i]);
		free(lines[i]);
	}
	all[len] = '\0';
	return all;
}

void fixture_writer(const char *name)
{
	if (strcmp(name, "at") == 0) {
#if defined(__linux__)
		struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
					.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS };
		long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
		if (fd < 0 && (errno == ENOSYS || errno == EINVAL))
			t_skip("this kernel has no openat2: reimage stages with libarchive's writer");
		if (fd >= 0)
			close((int)fd);
#else
		t_skip("reimage's own writer is Linux's");
#endif
	}
	CU_ASSERT_EQUAL_FATAL(setenv(WRITER_AT_ENV, name, 1), 0);
}
