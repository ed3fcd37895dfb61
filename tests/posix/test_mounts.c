/*
 * test_mounts.c -- mount_copy into a real tmpfs mounted in a private
 * mount namespace the case creates: the staged tree arrives with owner,
 * mode, times, symlinks and FIFOs; the old content waits in aside;
 * lost+found stays; a non-empty or foreign aside is refused untouched;
 * a copy that fails (the mount is full) leaves the mount as it was.
 */
#define _GNU_SOURCE
#include "posix_fixture.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF "lock_memory = false;"

static void set_meta(const char *path, uid_t uid, gid_t gid, mode_t mode, time_t mtime)
{
	const struct timespec times[2] = { { mtime, 0 }, { mtime, 0 } };

	CHECK(lchown(path, uid, gid) == 0);
	if (mode)
		CHECK(chmod(path, mode) == 0);
	CHECK(utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) == 0);
}

static int has_meta(const char *path, uid_t uid, gid_t gid, mode_t mode, time_t mtime)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0;
	if (st.st_uid != uid || st.st_gid != gid || (mode && (st.st_mode & 07777) != mode) ||
	    st.st_mtim.tv_sec != mtime) {
		fprintf(stderr, "%s: %u:%u %o %ld\n", path, st.st_uid, st.st_gid,
			st.st_mode & 07777, (long)st.st_mtim.tv_sec);
		return 0;
	}
	return 1;
}

/* A tmpfs on boot/ holding an old /boot, and a staged new one. */
static int make_trees(const char *tmpfs_options)
{
	if (mkdir(t_path("boot"), 0755) < 0 ||
	    mount("tmpfs", t_path("boot"), "tmpfs", 0, tmpfs_options) < 0) {
		perror("mount tmpfs");
		return -1;
	}
	mkdir(t_path("boot/grub"), 0755);
	mkdir(t_path("boot/lost+found"), 0700);
	t_write(t_path("boot/old-kernel"), "old");
	t_write(t_path("boot/grub/grub.cfg"), "old cfg");
	t_write(t_path("boot/lost+found/#1234"), "recovered");

	mkdir(t_path("staged"), 0755);
	mkdir(t_path("staged/grub"), 0755);
	mkdir(t_path("staged/lost+found"), 0700);
	mkdir(t_path("staged/a"), 0755);
	mkdir(t_path("staged/a/b"), 0755);
	t_write(t_path("staged/vmlinuz"), "new kernel");
	t_write(t_path("staged/grub/grub.cfg"), "new cfg");
	t_write(t_path("staged/lost+found/stray"), "not copied");
	t_write(t_path("staged/a/b/deep"), "deep");
	CHECK(symlink("vmlinuz", t_path("staged/vmlinuz.link")) == 0);
	CHECK(mkfifo(t_path("staged/fifo"), 0600) == 0);
	set_meta(t_path("staged/vmlinuz"), 1234, 5678, 04750, 1000000000);
	set_meta(t_path("staged/vmlinuz.link"), 1234, 5678, 0, 1100000000);
	set_meta(t_path("staged/grub"), 0, 42, 0750, 1200000000);
	set_meta(t_path("staged/a/b"), 7, 7, 0711, 1300000000);
	return 0;
}

static int copy_scenario(void *arg)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	char link[64] = "";
	struct stat st;

	(void)arg;
	if (make_trees(NULL) < 0)
		return 77;
	CHECK(fx_load(&fx, CONF, &err) == 0);
	CHECK(fx.ops->mount_copy(fx.ctx, t_path("staged"), t_path("boot"),
				 t_path("boot/.reimage-old"), &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "mount_copy: %s\n", err.msg);
	/* the new content, with its metadata */
	CHECK(fx_content_is(t_path("boot/vmlinuz"), "new kernel"));
	CHECK(has_meta(t_path("boot/vmlinuz"), 1234, 5678, 04750, 1000000000));
	CHECK(fx_content_is(t_path("boot/grub/grub.cfg"), "new cfg"));
	CHECK(has_meta(t_path("boot/grub"), 0, 42, 0750, 1200000000));
	CHECK(fx_content_is(t_path("boot/a/b/deep"), "deep"));
	CHECK(has_meta(t_path("boot/a/b"), 7, 7, 0711, 1300000000));
	CHECK(readlink(t_path("boot/vmlinuz.link"), link, sizeof(link) - 1) == 7);
	CHECK(strcmp(link, "vmlinuz") == 0);
	CHECK(has_meta(t_path("boot/vmlinuz.link"), 1234, 5678, 0, 1100000000));
	CHECK(lstat(t_path("boot/fifo"), &st) == 0 && S_ISFIFO(st.st_mode));
	CHECK(!fs_exists(t_path("boot/old-kernel")));
	/* the old content, aside on the same filesystem */
	CHECK(fx_content_is(t_path("boot/.reimage-old/old-kernel"), "old"));
	CHECK(fx_content_is(t_path("boot/.reimage-old/grub/grub.cfg"), "old cfg"));
	CHECK(stat(t_path("boot/.reimage-old"), &st) == 0 && (st.st_mode & 07777) == 0700);
	/* lost+found stays where fsck looks for it, and is not copied over */
	CHECK(fx_content_is(t_path("boot/lost+found/#1234"), "recovered"));
	CHECK(!fs_exists(t_path("boot/lost+found/stray")));
	CHECK(!fs_exists(t_path("boot/.reimage-old/lost+found")));
	fx_unload(&fx);
	return fx_failures;
}

TEST_CASE(copy_into_tmpfs)
{
	if (!t_is_root())
		t_skip("mounts need root");
	CHECK_NS_RESULT(ns_run(0, copy_scenario, NULL, 60));
}

static int refused_scenario(void *arg)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	(void)arg;
	if (make_trees(NULL) < 0)
		return 77;
	CHECK(fx_load(&fx, CONF, &err) == 0);
	/* An aside with content may be the only copy of an earlier run's. */
	mkdir(t_path("boot/.reimage-old"), 0700);
	t_write(t_path("boot/.reimage-old/earlier"), "x");
	CHECK(fx.ops->mount_copy(fx.ctx, t_path("staged"), t_path("boot"),
				 t_path("boot/.reimage-old"), &err) == -ENOTEMPTY);
	CHECK(err.cls == REIMAGE_EC_STATE);
	CHECK(strstr(err.msg, "is not empty") != NULL);
	/* An aside on another filesystem cannot take renames. */
	memset(&err, 0, sizeof(err));
	CHECK(fx.ops->mount_copy(fx.ctx, t_path("staged"), t_path("boot"), t_path("aside"),
				 &err) == -EXDEV);
	CHECK(strstr(err.msg, "not on the mount's filesystem") != NULL);
	/* Nothing changed. */
	CHECK(fx_content_is(t_path("boot/old-kernel"), "old"));
	CHECK(fx_content_is(t_path("boot/grub/grub.cfg"), "old cfg"));
	CHECK(!fs_exists(t_path("boot/vmlinuz")));
	CHECK(!fs_exists(t_path("aside")));
	fx_unload(&fx);
	return fx_failures;
}

TEST_CASE(aside_refused)
{
	if (!t_is_root())
		t_skip("mounts need root");
	CHECK_NS_RESULT(ns_run(0, refused_scenario, NULL, 60));
}

static int full_scenario(void *arg)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	char *big = malloc(1 << 20);

	(void)arg;
	if (!big || make_trees("size=256k") < 0)
		return 77;
	memset(big, 'x', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	t_write(t_path("staged/zz-too-big"), big);
	free(big);
	CHECK(fx_load(&fx, CONF, &err) == 0);
	CHECK(fx.ops->mount_copy(fx.ctx, t_path("staged"), t_path("boot"),
				 t_path("boot/.reimage-old"), &err) == -ENOSPC);
	CHECK(strstr(err.msg, "No space left") != NULL);
	/* The mount is as it was: old entries back, the copy and aside gone. */
	CHECK(fx_content_is(t_path("boot/old-kernel"), "old"));
	CHECK(fx_content_is(t_path("boot/grub/grub.cfg"), "old cfg"));
	CHECK(fx_content_is(t_path("boot/lost+found/#1234"), "recovered"));
	CHECK(!fs_exists(t_path("boot/vmlinuz")));
	CHECK(!fs_exists(t_path("boot/zz-too-big")));
	CHECK(!fs_exists(t_path("boot/.reimage-old")));
	fx_unload(&fx);
	return fx_failures;
}

TEST_CASE(undo_when_full)
{
	if (!t_is_root())
		t_skip("mounts need root");
	CHECK_NS_RESULT(ns_run(0, full_scenario, NULL, 60));
}

static int vfat_scenario(void *arg)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	(void)arg;
	mkdir(t_path("boot"), 0755);
	if (t_sh("mount -o loop '%s' '%s'", t_path("vfat.img"), t_path("boot")) != 0) {
		fprintf(stderr, "cannot mount a vfat image on a loop device here (kernel without vfat?)\n");
		return 77;
	}
	t_write(t_path("boot/old.efi"), "old");
	mkdir(t_path("staged"), 0755);
	mkdir(t_path("staged/EFI"), 0755);
	t_write(t_path("staged/EFI/new.efi"), "new");
	/* Owned by someone vfat cannot record; an even mtime vfat can. */
	set_meta(t_path("staged/EFI/new.efi"), 1234, 5678, 0644, 1000000000);
	CHECK(fx_load(&fx, CONF, &err) == 0);
	CHECK(fx.ops->mount_copy(fx.ctx, t_path("staged"), t_path("boot"),
				 t_path("boot/.reimage-old"), &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "mount_copy: %s\n", err.msg);
	CHECK(fx_content_is(t_path("boot/EFI/new.efi"), "new"));
	CHECK(has_meta(t_path("boot/EFI/new.efi"), 0, 0, 0, 1000000000));
	CHECK(fx_content_is(t_path("boot/.reimage-old/old.efi"), "old"));
	CHECK(!fs_exists(t_path("boot/old.efi")));
	fx_unload(&fx);
	CHECK(umount(t_path("boot")) == 0);
	return fx_failures;
}

/* A /boot without Unix owners (systemd-boot's vfat XBOOTLDR or ESP). */
TEST_CASE(copy_into_vfat)
{
	if (!t_is_root())
		t_skip("mounts need root");
	if (t_sh("command -v mkfs.vfat >/dev/null") != 0)
		t_skip("mkfs.vfat is needed (Debian package dosfstools)");
	CU_ASSERT_EQUAL_FATAL(t_sh("mkfs.vfat -C '%s' 8192 >/dev/null", t_path("vfat.img")), 0);
	CHECK_NS_RESULT(ns_run(0, vfat_scenario, NULL, 60));
}
