/*
 * fake_backend.c -- a backend for the loader's tests, built under several
 * module names with FAKE_NAME, FAKE_SCORE (probe), and optionally a wrong
 * FAKE_ABI, a short FAKE_SIZE, or FAKE_NO_ENTRY.  With FAKE_PREFLIGHT it
 * can also quiesce, and its preflight hook refuses every root, saying
 * what the core passed it (the engine's PREFLIGHT tests).  With
 * FAKE_RESTORE its restore hook writes <root>/.reimage/restored, or fails
 * when <root>/.reimage/restore-fails exists (the engine's COMMIT tests).
 */
#include <reimage/plugin.h>

#include <errno.h>
#include <stdio.h>

#ifndef FAKE_ABI
#define FAKE_ABI REIMAGE_PLUGIN_ABI
#endif
#ifndef FAKE_SIZE
#define FAKE_SIZE sizeof(struct reimage_backend_ops)
#endif

static int fake_probe(void)
{
	return FAKE_SCORE;
}

static int fake_move(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	(void)ctx; (void)from; (void)to; (void)err;
	return 0;
}

static int fake_is_mount(void *ctx, const char *path, struct reimage_error *err)
{
	(void)ctx; (void)path; (void)err;
	return 0;
}

static int fake_sync(void *ctx, const char *path, struct reimage_error *err)
{
	(void)ctx; (void)path; (void)err;
	return 0;
}

#if defined(FAKE_PREFLIGHT) || defined(FAKE_RESTORE)
/* The host, for the hooks' errors. */
static const struct reimage_host *fake_host;

static int fake_init(const struct reimage_host *host, const struct reimage_optval *values,
		     void **ret_ctx, struct reimage_error *err)
{
	(void)values; (void)err;
	fake_host = host;
	*ret_ctx = NULL;
	return 0;
}

#endif

#ifdef FAKE_PREFLIGHT
static int fake_quiesce(void *ctx, const char *root, struct reimage_error *err)
{
	(void)ctx; (void)root; (void)err;
	return 0;
}

static int fake_set_boot(void *ctx, const struct reimage_boot *boot, struct reimage_error *err)
{
	(void)ctx; (void)boot; (void)err;
	return 0;
}

static int fake_preflight(void *ctx, const char *root, const struct reimage_boot *boot,
			  struct reimage_error *err)
{
	(void)ctx;
	if (boot)
		fake_host->error(err, -EROFS, REIMAGE_EC_UNSUPPORTED,
				 "fake refuses root %s; boot root %s, one_shot %d", root,
				 boot->root, boot->one_shot);
	else
		fake_host->error(err, -EROFS, REIMAGE_EC_UNSUPPORTED,
				 "fake refuses root %s; no boot parameters", root);
	return -EROFS;
}
#endif

#ifdef FAKE_RESTORE
static int fake_restore(void *ctx, const char *root, struct reimage_error *err)
{
	char path[4096];
	FILE *f;

	(void)ctx;
	snprintf(path, sizeof(path), "%s/.reimage/restore-fails", root);
	if ((f = fopen(path, "r"))) {
		fclose(f);
		fake_host->error(err, -EIO, REIMAGE_EC_IO, "fake cannot restore in %s", root);
		return -EIO;
	}
	snprintf(path, sizeof(path), "%s/.reimage/restored", root);
	if (!(f = fopen(path, "w")) || fputs("restored\n", f) < 0 || fclose(f) != 0) {
		fake_host->error(err, -EIO, REIMAGE_EC_IO, "fake cannot write %s", path);
		return -EIO;
	}
	return 0;
}
#endif

static const struct reimage_backend_ops fake_ops = {
	.abi_version = FAKE_ABI,
	.struct_size = FAKE_SIZE,
	.name = FAKE_NAME,
	.probe = fake_probe,
	.move = fake_move,
	.is_mount = fake_is_mount,
	.sync = fake_sync,
#ifdef FAKE_CAPS
	.caps = FAKE_CAPS,  /* declared without the hooks they need */
#endif
#ifdef FAKE_PREFLIGHT
	.caps = REIMAGE_BCAP_BOOT,
	.set_boot = fake_set_boot,
	.quiesce = fake_quiesce,
	.preflight = fake_preflight,
#endif
#if defined(FAKE_PREFLIGHT) || defined(FAKE_RESTORE)
	.init = fake_init,
#endif
#ifdef FAKE_RESTORE
	.restore = fake_restore,
#endif
};

static const struct reimage_plugin fake_plugin = {
	.abi_version = FAKE_ABI,
	.kind = REIMAGE_PLUGIN_BACKEND,
	.backend = &fake_ops,
};

#ifndef FAKE_NO_ENTRY
const struct reimage_plugin *FAKE_ENTRY(void);
const struct reimage_plugin *FAKE_ENTRY(void)
{
	return &fake_plugin;
}
#else
/* Keep the table referenced so the module still builds. */
const void *fake_unused(void);
const void *fake_unused(void)
{
	return &fake_plugin;
}
#endif
