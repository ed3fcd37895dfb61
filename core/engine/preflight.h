/*
 * preflight.h -- the checks that refuse a job before anything is touched
 * (issue 14: the machine always comes back), and the one that follows
 * STAGE, once the image can be looked at:
 *
 *   space   the root's volume holds the staged image plus a margin
 *           (image.unpacked_size, else image.size as a lower bound, plus
 *           preflight.free_margin_mb); STAGE keeps watching the margin
 *           (stage_request.free_floor) and stops cleanly when it is crossed
 *   power   not on battery, where the backend can tell (its power hook)
 *   guard   trial.guard with a backend that boots /sbin/init: the
 *           reimage-guard binary is there and executable
 *   image   after STAGE: the init the guard would run is there, executable,
 *           and built for this machine's architecture (an ELF's class,
 *           byte order and machine; a script's interpreter); boot.kernel
 *           and preflight.required_paths exist in the image
 *
 * Each failure names the setting that would change the outcome.
 */
#ifndef REIMAGE_PREFLIGHT_H
#define REIMAGE_PREFLIGHT_H

#include "config.h"
#include "registry.h"

#include <stdio.h>

/* Space and power, before anything is written.  out NULL: the first
 * failed check is an error.  out set (`reimage plan`): every check's
 * outcome is printed there and none is an error. */
int preflight_machine(const char *root, const struct job *job, const struct plugin *backend,
		      FILE *out, struct reimage_error *err);

/* Whether the job's trial boots are guarded, and the guard binary then
 * (ret_path, capacity len): the agent file's `guard`, else reimage-guard
 * beside the running reimage (a build tree), else the installed one.
 * Returns 1 guarded, 0 not (trial.guard = false, or the backend cannot),
 * < 0 if guarded but no executable guard is found. */
int preflight_guard(const struct job *job, const struct agent_conf *ac,
		    const struct plugin *backend, char *ret_path, size_t len,
		    struct reimage_error *err);

/* After STAGE: the image in staging fits this machine (see above).
 * guarded: also check the init the guard would run. */
int preflight_image(const char *staging, const struct job *job, int guarded,
		    struct reimage_error *err);

#endif
