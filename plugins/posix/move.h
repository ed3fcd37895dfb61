/*
 * move.h -- the Linux/POSIX way to move and exchange top-level entries,
 * shared by the posix backend, the sandbox backend (the posix backend's
 * real moves on a sandbox root) and the boot guard.
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

/* These renames as a backend's ops, for a program that has no backend
 * (the boot guard; tests): the ops' ctx is the reimage_host. */
extern const struct reimage_backend_ops posix_rename_ops;

#endif
