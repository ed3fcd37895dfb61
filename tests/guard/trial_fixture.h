/*
 * trial_fixture.h -- sandbox roots for the trial boot's tests: an old
 * image and a new one, each with Debian's static busybox and an init
 * script that prints who it is, swapped for real by the sandbox backend
 * (as the SWAP phase does) so that the journal and .reimage/old are the
 * real thing.
 */
#ifndef REIMAGE_TEST_TRIAL_FIXTURE_H
#define REIMAGE_TEST_TRIAL_FIXTURE_H

/* The old image's init prints "OLD-INIT pid=<pid> args=<args>"; the new
 * image's "NEW-INIT pid=<pid> args=<args> RO|RW" (whether / is writable). */
#define TRIAL_OLD_INIT "#!/bin/busybox sh\necho OLD-INIT pid=$$ args=$*\n"
#define TRIAL_NEW_INIT \
	"#!/bin/busybox sh\nif touch /.probe; then rm /.probe; w=RW; else w=RO; fi\n" \
	"echo NEW-INIT pid=$$ args=$* $w\n"

/* Skip the case unless busybox (busybox-static) and root are here. */
void trial_fixture_require(void);
/* Make dir the old image (fixture_old_root, busybox, /sbin/init), stage
 * the new image (fixture_new_tree, busybox, then the shell commands
 * new_setup run in its directory, e.g. installing TRIAL_NEW_INIT) and swap
 * them with the sandbox backend, preserving home/alice and etc/hostname.
 * Returns the old image's manifest (malloc'ed), taken before the swap,
 * and in *ret_new (if not NULL) the staged new image's. */
char *trial_fixture_swapped(const char *dir, const char *new_setup, char **ret_new);
/* The swap context of root with the posix renames (the boot guard's), for
 * trial_arm(), trial_disarm() and trial_fall_back(); valid until the next
 * call. */
struct swap_ctx;
const struct swap_ctx *trial_ctx(const char *root);
/* Shell commands installing text as the executable file at path. */
const char *trial_fixture_script(const char *path, const char *text);

#endif
