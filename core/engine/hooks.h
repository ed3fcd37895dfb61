/*
 * hooks.h -- HOOKS: the administrator's scripts, run on the staged image
 * before anything of the running system changes.
 */
#ifndef REIMAGE_HOOKS_H
#define REIMAGE_HOOKS_H

#include "config.h"

#include <signal.h>

/* Run every hook in order with execve (no shell): argv[1] = staging,
 * then the hook's args; environment REIMAGE_STAGING, REIMAGE_ROOT,
 * REIMAGE_JOB.  A digest mismatch, a non-zero exit, a signal or the
 * timeout fails the phase. */
int hooks_run(const struct job *job, const char *root, const char *staging,
	      const volatile sig_atomic_t *stop, struct reimage_error *err);
/* Run argv (argv[0] an absolute path, no shell) with env added to the
 * environment ("NAME=value", NULL-terminated, may be NULL), in its own
 * process group, killed after timeout seconds, or as soon as *stop is set
 * (stop may be NULL: a health check after the swap is never cut short).
 * what names it in errors ("hook", "health check").  0 only for exit
 * status 0. */
int hooks_exec(const char *const *argv, const char *const *env, long long timeout,
	       const char *what, const volatile sig_atomic_t *stop, struct reimage_error *err);
/* SHA-256 of a file as 64 hex digits (OpenSSL EVP). */
int hooks_file_sha256(const char *path, char out[65], struct reimage_error *err);

#endif
