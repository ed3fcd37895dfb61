/*
 * builtin.h -- the plugin compiled into the core, registered by
 * registry_init(): the file: transport.
 */
#ifndef REIMAGE_BUILTIN_H
#define REIMAGE_BUILTIN_H

#include <reimage/plugin.h>

/* "file": local paths and file: URLs (transport_file.c), through the same
 * entry a module would export. */
const struct reimage_plugin *file_LTX_reimage_plugin_entry(void);
/* The local path of a plain path or a file: URL (file:///a/b, file:/a/b,
 * file://localhost/a/b); %XX decoded. */
int file_url_path(const char *url, char *path, size_t len, struct reimage_error *err);

#endif
