/*
 * loader.h -- loading plugin modules with libltdl.  Load early, check at
 * load, never unload while a job lives.
 */
#ifndef REIMAGE_LOADER_H
#define REIMAGE_LOADER_H

#include "registry.h"

/* Load module `name` from the registry's search path and register it. */
int loader_load(struct registry *reg, const char *name, struct reimage_error *err);
void loader_exit(struct registry *reg);
/* The directories plugins are searched in, ':'-separated, for messages. */
const char *loader_search_path(void);

#endif
