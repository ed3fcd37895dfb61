/*
 * builtin.h -- the plugins compiled into the core, registered by
 * registry_init() in a fixed order.
 */
#ifndef REIMAGE_BUILTIN_H
#define REIMAGE_BUILTIN_H

#include <reimage/plugin.h>

/* "file": local paths and file: URLs (transport_file.c). */
const struct reimage_plugin *builtin_file_transport(void);
/* The local path of a plain path or a file: URL (file:///a/b, file:/a/b,
 * file://localhost/a/b); %XX decoded. */
int file_url_path(const char *url, char *path, size_t len, struct reimage_error *err);
/* "sandbox": real moves, recorded logout/quiesce/boot/reboot (backend_sandbox.c). */
const struct reimage_plugin *builtin_sandbox_backend(void);

#endif
