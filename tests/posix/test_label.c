/*
 * test_label.c -- set_label on a real ext4 image mounted on a loop
 * device, and on a tmpfs (which has no label), both in a private mount
 * namespace the case creates.
 */
#define _GNU_SOURCE
#include "posix_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#define CONF "lock_memory = false;"

static int ext4_scenario(void *arg)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };
	char label[FSLABEL_MAX] = "";
	int fd;

	(void)arg;
	mkdir(t_path("mnt"), 0755);
	if (t_sh("mount -o loop '%s' '%s'", t_path("ext4.img"), t_path("mnt")) != 0) {
		fprintf(stderr, "cannot mount an ext4 image on a loop device here\n");
		return 77;
	}
	CHECK(fx_load(&fx, CONF, &err) == 0);
	CHECK(fx.ops->set_label(fx.ctx, t_path("mnt"), "reimaged", &err) == 0);
	if (err.msg[0])
		fprintf(stderr, "set_label: %s\n", err.msg);
	fd = open(t_path("mnt"), O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0 && ioctl(fd, FS_IOC_GETFSLABEL, label) == 0);
	CHECK(strcmp(label, "reimaged") == 0);
	if (fd >= 0)
		close(fd);
	/* ext4 labels hold 16 bytes. */
	CHECK(fx.ops->set_label(fx.ctx, t_path("mnt"), "a-label-of-20-chars", &err) == -EINVAL);
	CHECK(err.cls == REIMAGE_EC_CONFIG);
	fx_unload(&fx);
	CHECK(umount(t_path("mnt")) == 0);
	return fx_failures;
}

TEST_CASE(ext4_loop)
{
	char *out = NULL;

	if (!t_is_root())
		t_skip("mounts need root");
	if (t_sh("command -v mkfs.ext4 >/dev/null && command -v e2label >/dev/null") != 0)
		t_skip("mkfs.ext4 and e2label are needed (Debian package e2fsprogs)");
	CU_ASSERT_EQUAL_FATAL(t_sh("truncate -s 8M '%s' && mkfs.ext4 -q -F -L before '%s'",
				   t_path("ext4.img"), t_path("ext4.img")), 0);
	CHECK_NS_RESULT(ns_run(0, ext4_scenario, NULL, 60));
	/* Written to the filesystem itself, read back from the image. */
	CU_ASSERT_EQUAL(t_sh_out(&out, "e2label '%s'", t_path("ext4.img")), 0);
	CU_ASSERT(out && strcmp(out, "reimaged\n") == 0);
	free(out);
}

static int tmpfs_scenario(void *arg)
{
	struct posix_fixture fx;
	struct reimage_error err = { 0 };

	(void)arg;
	mkdir(t_path("mnt"), 0755);
	if (mount("tmpfs", t_path("mnt"), "tmpfs", 0, NULL) < 0)
		return 77;
	CHECK(fx_load(&fx, CONF, &err) == 0);
	CHECK(fx.ops->set_label(fx.ctx, t_path("mnt"), "reimaged", &err) == -EOPNOTSUPP);
	CHECK(err.cls == REIMAGE_EC_UNSUPPORTED);
	CHECK(strstr(err.msg, "cannot be relabelled") != NULL);
	fx_unload(&fx);
	return fx_failures;
}

TEST_CASE(tmpfs_unsupported)
{
	if (!t_is_root())
		t_skip("mounts need root");
	CHECK_NS_RESULT(ns_run(0, tmpfs_scenario, NULL, 60));
}
