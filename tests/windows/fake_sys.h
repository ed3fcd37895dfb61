/*
 * fake_sys.h -- a recorded struct win_sys for what wine cannot show (WTS
 * logoff, bcdedit, shutdown, a directory in use, the volume label): each
 * call appends one line to `log` and answers as the test set it up.
 */
#ifndef REIMAGE_WINDOWS_FAKE_SYS_H
#define REIMAGE_WINDOWS_FAKE_SYS_H

#include "winbackend.h"

struct fake_sys {
	char log[16384];
	/* move_file: a source ending in busy_suffix answers busy_error when
	 * moved at once; delayed moves are appended to pending. */
	const wchar_t *busy_suffix;
	DWORD busy_error;
	wchar_t pending[8192];
	size_t pending_len;          /* wide chars, 0 = no value */
	struct win_session sessions[8];
	size_t n_sessions;
	struct win_proc procs[16];
	size_t n_procs;
	const wchar_t *service;      /* the one service installed, and its pid */
	DWORD service_pid;
	DWORD run_exit;              /* every program run exits with this */
	DWORD privilege_error;
	const wchar_t *missing_key;  /* the one registry key absent */
};

extern const struct win_sys fake_sys_ops;
/* A backend context on the fake (keep lists NULL, grace 1 s). */
void fake_ctx(struct win_ctx *c, struct fake_sys *f);

#endif
