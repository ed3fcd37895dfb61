/*
 * move.h -- the Linux/POSIX way to move and exchange top-level entries,
 * shared by the posix plugin and the core's built-in sandbox backend
 * (which does the posix backend's real moves on a sandbox root).
 */
#ifndef REIMAGE_POSIX_MOVE_H
#define REIMAGE_POSIX_MOVE_H

#include <reimage/plugin.h>

extern const char *const posix_keep_entries[];
extern const char *const posix_network_paths[];

int posix_move(const struct reimage_host *host, const char *from, const char *to,
	       struct reimage_error *err);
int posix_exchange(const struct reimage_host *host, const char *a, const char *b,
		   struct reimage_error *err);
int posix_is_mount(const struct reimage_host *host, const char *path,
		   struct reimage_error *err);
int posix_sync(const struct reimage_host *host, const char *path, struct reimage_error *err);

#endif
