/*
 * backend_util.h -- what every OS backend plugin needs the same way: an
 * errno turned into a recorded error of the right class, and a list
 * option (a keep-list) copied out of the configuration.  The posix
 * backend's, compiled into the macos backend too (as the core compiles
 * in plugins/posix/move.c); not part of the plugin interface.
 */
#ifndef REIMAGE_BACKEND_UTIL_H
#define REIMAGE_BACKEND_UTIL_H

#include <reimage/plugin.h>
#include <stdarg.h>

/* Record "WHAT: strerror(e)" (WHAT from fmt) with the class that fits e
 * (positive); returns -e. */
int backend_vfail(const struct reimage_host *host, struct reimage_error *err, int e,
		  const char *fmt, va_list ap) REIMAGE_PRINTF(4, 0);

/* Copy the STRINGS option v (named name in errors) into *ret, a
 * NULL-terminated list the caller frees with backend_free_names(); an
 * empty name is a CONFIG error naming v's file and line. */
int backend_copy_names(const struct reimage_host *host, const struct reimage_optval *v,
		       const char *name, char ***ret, struct reimage_error *err);
void backend_free_names(char **list);

#endif
