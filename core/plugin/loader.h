/*
 * loader.h -- loading plugin modules with libltdl.  Load early, check at
 * load, never unload while a job lives.
 */
#ifndef REIMAGE_LOADER_H
#define REIMAGE_LOADER_H

#include <stddef.h>
#include <reimage/plugin.h>

struct loader {
	const char *const *search_path;  /* plugin directories, NULL-terminated */
	int ready;                       /* libltdl initialised */
};

/* Load module `name` from the search path: its description (*ret_desc,
 * not yet checked: the registry checks it) and the file it came from. */
int loader_load(struct loader *ld, const char *name, const struct reimage_plugin **ret_desc,
		char *ret_file, size_t file_len, struct reimage_error *err);
void loader_exit(struct loader *ld);
/* The directories searched, ':'-separated, for messages. */
const char *loader_search_path(struct loader *ld);

#endif
