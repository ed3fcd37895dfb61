/*
 * fake_backend.c -- a backend for the loader's tests, built under several
 * module names with FAKE_NAME, FAKE_SCORE (probe), and optionally a wrong
 * FAKE_ABI, a short FAKE_SIZE, or FAKE_NO_ENTRY.
 */
#include <reimage/plugin.h>

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

static const struct reimage_backend_ops fake_ops = {
	.abi_version = FAKE_ABI,
	.struct_size = FAKE_SIZE,
	.name = FAKE_NAME,
	.probe = fake_probe,
	.move = fake_move,
	.is_mount = fake_is_mount,
	.sync = fake_sync,
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
