/*
 * sealed.c -- PREFLIGHT: refuse, before anything is staged, a root whose
 * top-level entries macOS will not let anyone rename, rather than fail
 * on the swap's first rename.
 *
 *   macOS 11 and later boot from a sealed snapshot of the system volume
 *   (APFS Signed System Volume): mounted read-only, its seal checked at
 *   every boot.  macOS 10.15 mounts the system volume read-only.  Both
 *   show as a read-only mount; diskutil says whether it is sealed.
 *   System Integrity Protection (10.11 and later) forbids renaming
 *   /System, /usr, /bin and /sbin of the running system, even by root.
 *
 * What is supported instead is said in the error: the Data volume
 * (/System/Volumes/Data, writable, holds users, applications, settings),
 * an external volume or a Mac with 10.14 or earlier (SIP off), or an
 * erase-install from recoveryOS.
 */
#define _GNU_SOURCE
#include "macos.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUPPORTED_PATHS                                                                      \
	"Supported instead: re-image the Data volume (root = \"/System/Volumes/Data\"), an " \
	"external volume, or a Mac with macOS 10.14 or earlier; or erase and install macOS " \
	"from recoveryOS"

/* 1 if diskutil info's output has "Sealed: Yes" (APFS, macOS 11 and
 * later; older ones print no such line). */
static int says_sealed(const char *info)
{
	for (const char *l = info; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		const char *p = l + strspn(l, " \t");
		if (strncmp(p, "Sealed:", 7) == 0) {
			p += 7;
			p += strspn(p, " \t");
			return strncmp(p, "Yes", 3) == 0;
		}
	}
	return 0;
}

static int refuse(struct macos *mc, struct reimage_error *err, const char *fmt, const char *root,
		  const struct macos_volume *v)
{
	char why[512];
	snprintf(why, sizeof(why), fmt, v->from, v->on);
	mc->host->error(err, -EROFS, REIMAGE_EC_UNSUPPORTED,
			"root %s cannot be swapped: %s. " SUPPORTED_PATHS, root, why);
	return -EROFS;
}

/* SIP guards the running system's volume only; csrutil exists from 10.11. */
static int check_sip(struct macos *mc, const char *root, struct reimage_error *err)
{
	const char *const argv[] = { MACOS_CSRUTIL, "status", NULL };
	struct reimage_error e = { 0 };
	struct macos_output out;
	int r = macos_run(mc, "preflight: check System Integrity Protection", argv, &out, &e);

	if (r == -ENOENT)
		return 0;  /* before 10.11: no csrutil, no SIP */
	if (r < 0) {
		mc->host->error(err, e.code, e.cls, "%s", e.msg);
		return r;
	}
	/* "System Integrity Protection status: enabled." or "disabled."; a
	 * custom configuration may still protect the file system. */
	if (strstr(out.text, "status: disabled"))
		return 0;
	mc->host->error(err, -EPERM, REIMAGE_EC_UNSUPPORTED,
			"root %s cannot be swapped: it is the running system's volume and System "
			"Integrity Protection is on (csrutil: \"%.*s\"), which forbids renaming "
			"/System, /usr, /bin and /sbin. Turn it off from recoveryOS (csrutil "
			"disable) for the re-image, or re-image the Data volume "
			"(root = \"/System/Volumes/Data\") or an external volume",
			root, (int)strcspn(out.text, "\n"), out.text);
	return -EPERM;
}

int macos_preflight(void *ctx, const char *root, const struct reimage_boot *boot,
		    struct reimage_error *err)
{
	struct macos *mc = ctx;
	struct macos_volume v;
	struct macos_output *info;
	int r;

	if (boot && (r = macos_check_boot(mc, boot, err)) < 0)
		return r;
	if ((r = mc->sys->volume(mc->sys, root, &v)) < 0)
		return macos_fail(mc, err, -r, "preflight: the volume of %s", root);
	if (!(info = malloc(sizeof(*info))))
		return macos_fail(mc, err, ENOMEM, "preflight");
	const char *const argv[] = { MACOS_DISKUTIL, "info", v.on, NULL };
	if ((r = macos_run(mc, "preflight: read the root's volume", argv, info, err)) == 0) {
		if (says_sealed(info->text))
			r = refuse(mc, err, "it is on a sealed system volume (APFS Signed System "
				   "Volume, macOS 11 and later: %s, mounted read-only on %s), which "
				   "no one can change in place", root, &v);
		else if (v.read_only)
			r = refuse(mc, err, "its volume (%s on %s) is mounted read-only, as macOS "
				   "10.15 mounts its system volume", root, &v);
		else if (strcmp(v.on, "/") == 0)
			r = check_sip(mc, root, err);
	}
	free(info);
	return r;
}
