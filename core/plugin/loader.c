/*
 * loader.c -- plugin modules through libltdl (see loader.h).  Modules are
 * looked up in $REIMAGE_PLUGIN_PATH (colon-separated), then the
 * configured plugin directories, then the compiled-in plugin directory.
 * A module exports <name>_LTX_reimage_plugin_entry; libltdl resolves the
 * prefix, so the same plugins can be preloaded into a static binary.
 */
#include "loader.h"
#include "error.h"
#include "log.h"

#include <stdio.h>

#include <errno.h>
#include <ltdl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef REIMAGE_PLUGIN_DIR
#define REIMAGE_PLUGIN_DIR "/usr/local/lib/reimage/plugins"
#endif

static int loader_ready(struct loader *ld, struct reimage_error *err)
{
	const char *env;

	if (ld->ready)
		return 0;
	if (lt_dlinit() != 0) {
		err_set(err, -EIO, REIMAGE_EC_IO, "libltdl: %s", lt_dlerror());
		return -EIO;
	}
	ld->ready = 1;
	/* Search order: environment (tests, development trees), then the
	 * configuration, then the installed directory. */
	env = getenv("REIMAGE_PLUGIN_PATH");
	if (env && *env)
		lt_dladdsearchdir(env);
	for (const char *const *d = ld->search_path; d && *d; d++)
		lt_dladdsearchdir(*d);
	lt_dladdsearchdir(REIMAGE_PLUGIN_DIR);
	return 0;
}

int loader_load(struct loader *ld, const char *name, const struct reimage_plugin **ret_desc,
		char *ret_file, size_t file_len, struct reimage_error *err)
{
	lt_dladvise advise;
	lt_dlhandle handle;
	reimage_plugin_entry_fn entry;
	const lt_dlinfo *info;
	int r;

	if ((r = loader_ready(ld, err)) < 0)
		return r;
	for (const char *c = name; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_')) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "plugin name '%s' is not valid", name);
			return -EINVAL;
		}
	}
	/* Local symbols, and resident: a plugin is never unloaded while a
	 * job lives (its code may run after the old image is gone). */
	lt_dladvise_init(&advise);
	lt_dladvise_ext(&advise);
	lt_dladvise_local(&advise);
	lt_dladvise_resident(&advise);
	handle = lt_dlopenadvise(name, advise);
	lt_dladvise_destroy(&advise);
	if (!handle) {
		const char *why = lt_dlerror();
		if (why && strstr(why, "file not found"))
			err_set(err, -ENOENT, REIMAGE_EC_NOTFOUND, "plugin %s: not found in the plugin "
				"path (%s)", name, loader_search_path(ld));
		else
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "plugin %s: cannot load: %s", name,
				why ? why : "unknown error");
		return err->code;
	}
	info = lt_dlgetinfo(handle);
	entry = (reimage_plugin_entry_fn)(uintptr_t)lt_dlsym(handle, "reimage_plugin_entry");
	if (!entry) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"plugin %s: %s exports no reimage_plugin_entry", name,
			info && info->filename ? info->filename : name);
		return -EINVAL;
	}
	snprintf(ret_file, file_len, "%s", info && info->filename ? info->filename : name);
	*ret_desc = entry();
	log_debug("loaded plugin %s from %s", name, ret_file);
	return 0;
}

void loader_exit(struct loader *ld)
{
	/* Modules are resident; lt_dlexit only releases libltdl's own state. */
	if (ld->ready)
		lt_dlexit();
	ld->ready = 0;
}

const char *loader_search_path(struct loader *ld)
{
	const char *p;
	if (loader_ready(ld, &(struct reimage_error){ 0 }) < 0 || !(p = lt_dlgetsearchpath()))
		return "(none)";
	return p;
}
