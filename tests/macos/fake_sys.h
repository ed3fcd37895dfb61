/*
 * fake_sys.h -- a recording fake of the macos backend's seam (struct
 * macos_sys): every call that acts is logged as one line ("run
 * /usr/sbin/diskutil info /", "signal 301 15", "swap A B", ...), so a
 * test asserts the exact sequence; programs answer what the test
 * scripted; processes live in a table that signals change; the clock
 * moves only when the backend sleeps.  Nothing touches the machine.
 */
#ifndef REIMAGE_TEST_MACOS_FAKE_SYS_H
#define REIMAGE_TEST_MACOS_FAKE_SYS_H

#include "posix/posix_fixture.h"
#include "macos.h"

#define FAKE_MAX 64

/* A scripted answer to the first run whose command line starts with
 * match; each answers once. */
struct fake_answer {
	const char *match;
	int status;           /* exit status, or -errno (could not start) */
	const char *output;
	int used;
};

struct fake_proc {
	struct macos_proc p;
	int alive;
	int ignores_term;     /* only SIGKILL ends it */
	int respawns;         /* launchd starts it again (new pid) this often */
};

struct fake_sys {
	struct macos_sys sys;  /* first: the backend passes &sys back */
	char calls[16384];     /* one line per call */
	char last_env[1024];   /* the environment of the last run, one per line */
	struct fake_answer answers[FAKE_MAX];
	size_t n_answers;
	struct fake_proc procs[FAKE_MAX];
	size_t n_procs;
	struct macos_volume volume;
	int volume_error, procs_error, copy_error, sync_error, swap_error;
	uid_t console;
	int64_t clock_ms;
};

/* A loaded macos backend whose seam is the fake. */
struct macos_fixture {
	struct posix_fixture fx;
	struct fake_sys fake;
	struct macos *mc;
};

/* Start the backend linked into the test with conf (its `macos` group
 * text); its seam is fx->fake, empty: no processes, a writable volume
 * mounted on "/", console at the login panel, every program exits 0. */
void mfx_start(struct macos_fixture *m, const char *conf);
void mfx_stop(struct macos_fixture *m);

void fake_answer(struct fake_sys *f, const char *match, int status, const char *output);
struct fake_proc *fake_proc(struct fake_sys *f, pid_t pid, pid_t ppid, uid_t uid,
			    const char *name);
/* Adds the test process and its parent (the agent and an ancestor). */
void fake_self(struct fake_sys *f);
/* 1 if the calls are exactly want (lines); else prints both. */
int fake_calls_are(const struct fake_sys *f, const char *want);

#endif
