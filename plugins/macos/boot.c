/*
 * boot.c -- LABEL and BOOT on macOS.
 *
 * LABEL (before the swap) renames the root's volume with `diskutil
 * rename MOUNTPOINT NAME`.
 *
 * BOOT (after the swap) first runs the job's boot command, if any, as
 * `/bin/sh -c COMMAND` of the new image (chrooted into the root unless
 * the root is the running system's /, where /bin/sh already is the new
 * image's), then blesses the new image:
 *
 *   folder  bless --folder ROOT/System/Library/CoreServices --setBoot
 *           The folder records its directory's id in the volume: after
 *           the swap that is the new image's folder, so blessing it again
 *           is what makes the Mac start the new image's boot.efi.
 *   mount   bless --mount ROOT --setBoot (the volume as a whole: APFS
 *           volumes whose preboot data bless updates).
 *   auto    folder where the new image has System/Library/CoreServices,
 *           else mount.
 *
 * --nextonly is added for a one-shot boot (the firmware goes back to the
 * previous startup disk after one start).  bless is the copy PREPARE
 * made: /usr/sbin of the root is the new image's by now.
 */
#define _GNU_SOURCE
#include "macos.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define LABEL_MAX 255  /* bytes of an APFS or HFS+ volume name */
#define CORESERVICES "System/Library/CoreServices"

int macos_set_label(void *ctx, const char *root, const char *label, struct reimage_error *err)
{
	struct macos *mc = ctx;
	struct macos_volume v;
	int r;

	if (!label[0] || strlen(label) > LABEL_MAX || label[0] == '-') {
		mc->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
				"label '%s': a volume name is 1 to %d bytes and does not start "
				"with '-'", label, LABEL_MAX);
		return -EINVAL;
	}
	for (const unsigned char *c = (const unsigned char *)label; *c; c++)
		if (*c < 0x20 || *c == 0x7f) {
			mc->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
					"label '%s': control characters are not allowed", label);
			return -EINVAL;
		}
	if ((r = mc->sys->volume(mc->sys, root, &v)) < 0)
		return macos_fail(mc, err, -r, "label: the volume of %s", root);
	const char *const argv[] = { MACOS_DISKUTIL, "rename", v.on, label, NULL };
	return macos_run(mc, "rename the volume", argv, NULL, err);
}

int macos_check_boot(struct macos *mc, const struct reimage_boot *boot, struct reimage_error *err)
{
	if (!boot->kernel && !boot->initrd && !boot->cmdline)
		return 0;
	mc->host->error(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			"boot: macOS starts the kernel of the volume it boots; boot.kernel, "
			"boot.initrd and boot.cmdline are not supported by backend macos (remove "
			"them; `boot.one_shot` and `boot.command` are)");
	return -ENOTSUP;
}

static int run_command(struct macos *mc, const struct reimage_boot *boot,
		       struct reimage_error *err)
{
	char one_shot[32], root_env[PATH_MAX + 16];
	int in_root = strcmp(boot->root, "/") == 0;

	snprintf(one_shot, sizeof(one_shot), "REIMAGE_ONE_SHOT=%d", boot->one_shot ? 1 : 0);
	snprintf(root_env, sizeof(root_env), "REIMAGE_ROOT=%s", boot->root);
	const char *const envp[] = { "PATH=/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C", "HOME=/",
				     one_shot, root_env, NULL };
	const char *const plain[] = { MACOS_SH, "-c", boot->command, NULL };
	const char *const chrooted[] = { MACOS_CHROOT, boot->root, MACOS_SH, "-c", boot->command,
					 NULL };
	return macos_run_env(mc, "boot command", in_root ? plain : chrooted, envp, NULL, err);
}

static int use_folder(struct macos *mc, const char *folder)
{
	struct stat st;
	if (strcmp(mc->bless_mode, "auto") != 0)
		return strcmp(mc->bless_mode, "folder") == 0;
	return stat(folder, &st) == 0 && S_ISDIR(st.st_mode);
}

int macos_set_boot(void *ctx, const struct reimage_boot *boot, struct reimage_error *err)
{
	struct macos *mc = ctx;
	char folder[PATH_MAX];
	const char *argv[7];
	size_t n = 0;
	int r;

	if ((r = macos_check_boot(mc, boot, err)) < 0)
		return r;
	if (boot->command && (r = run_command(mc, boot, err)) < 0)
		return r;
	if (snprintf(folder, sizeof(folder), "%s/%s", strcmp(boot->root, "/") ? boot->root : "",
		     CORESERVICES) >= (int)sizeof(folder))
		return macos_fail(mc, err, ENAMETOOLONG, "boot: %s", boot->root);
	argv[n++] = mc->bless;
	if (use_folder(mc, folder)) {
		argv[n++] = "--folder";
		argv[n++] = folder;
	} else {
		argv[n++] = "--mount";
		argv[n++] = boot->root;
	}
	argv[n++] = "--setBoot";
	if (boot->one_shot)
		argv[n++] = "--nextonly";
	argv[n] = NULL;
	return macos_run(mc, "bless the new image", argv, NULL, err);
}
