/*
 * winbackend.h -- the windows backend's internals, shared by its files.
 *
 * Every system call and command the backend makes goes through one ops
 * table, struct win_sys (sys.c holds the real one): the decisions (what
 * to defer, which sessions to end, which processes to keep, what to ask
 * bcdedit, when to shut down) are then tested under wine with the real
 * calls where wine has them, and with a recorded fake where it has not
 * (WTS logoff, bcdedit, shutdown).  See docs/backends.md for what ran where.
 */
#ifndef REIMAGE_WINBACKEND_H
#define REIMAGE_WINBACKEND_H

#ifndef UNICODE
#define UNICODE
#endif
#ifndef _UNICODE
#define _UNICODE
#endif
#include <windows.h>

#include <reimage/plugin.h>
#include <stddef.h>

/* A process as the quiesce decision sees it. */
struct win_proc {
	DWORD pid, parent, session;
	wchar_t name[MAX_PATH];  /* executable name, e.g. L"explorer.exe" */
};

/* A logon session: WTS id and state (WTS_CONNECTSTATE_CLASS). */
struct win_session {
	DWORD id;
	int state;
};

/*
 * The system seam.  Each call returns ERROR_SUCCESS or a Win32 error
 * code (never a BOOL with GetLastError, so a fake can answer any error).
 * Arrays returned through ret_* are malloc'ed and freed by the caller.
 */
struct win_sys {
	/* MoveFileExW(from, to, flags). */
	DWORD (*move_file)(void *sys, const wchar_t *from, const wchar_t *to, DWORD flags);
	/* HKLM\SYSTEM\CurrentControlSet\Control\Session Manager
	 * PendingFileRenameOperations (REG_MULTI_SZ): the whole value,
	 * *ret_len wide chars including the final empty string; an absent
	 * value is ERROR_SUCCESS with *ret_len 0.  write with len 0 deletes. */
	DWORD (*pending_read)(void *sys, wchar_t **ret_multi, size_t *ret_len);
	DWORD (*pending_write)(void *sys, const wchar_t *multi, size_t len);
	/* ERROR_SUCCESS if the registry key (L"HKLM\\...") exists. */
	DWORD (*key_exists)(void *sys, const wchar_t *key);
	/* GetVolumePathNameW(path) into buf (cap wide chars). */
	DWORD (*volume_path)(void *sys, const wchar_t *path, wchar_t *buf, DWORD cap);
	/* FlushFileBuffers on the volume whose root is volume (L"C:\\"). */
	DWORD (*flush_volume)(void *sys, const wchar_t *volume);
	/* SetVolumeLabelW(volume, label). */
	DWORD (*set_label)(void *sys, const wchar_t *volume, const wchar_t *label);
	/* WTSEnumerateSessionsW on this machine / WTSLogoffSession(wait). */
	DWORD (*sessions)(void *sys, struct win_session **ret, size_t *ret_n);
	DWORD (*logoff)(void *sys, DWORD session);
	/* Every process (Toolhelp snapshot, session from ProcessIdToSessionId). */
	DWORD (*processes)(void *sys, struct win_proc **ret, size_t *ret_n);
	/* The process id of a running service (0 if stopped). */
	DWORD (*service_pid)(void *sys, const wchar_t *service, DWORD *ret_pid);
	/* TerminateProcess(pid) and wait for it up to wait_ms. */
	DWORD (*terminate)(void *sys, DWORD pid, DWORD wait_ms);
	/* Run program (a full path) with the command line cmdline (argv[0]
	 * included, quoted), no window, in dir (or NULL); its exit code. */
	DWORD (*run)(void *sys, const wchar_t *program, const wchar_t *cmdline, const wchar_t *dir,
		     DWORD timeout_ms, DWORD *ret_exit);
	/* GetSystemDirectoryW. */
	DWORD (*system_dir)(void *sys, wchar_t *buf, DWORD cap);
	/* Enable a privilege (SE_SHUTDOWN_NAME) in the process token. */
	DWORD (*enable_privilege)(void *sys, const wchar_t *name);
	/* InitiateSystemShutdownExW: restart now, applications forced closed. */
	DWORD (*shutdown)(void *sys, const wchar_t *message);
};

extern const struct win_sys win_sys_real;

struct win_ctx {
	const struct reimage_host *host;
	const struct win_sys *sys;
	void *sys_arg;                  /* the seam's own state (a fake's record) */
	const char *const *keep_processes;  /* executable names never stopped */
	const char *const *keep_services;   /* services whose processes are never stopped */
	DWORD agent_pid;                /* this process: it and its ancestors stay */
	long long grace_ms;             /* wait for a stopped process */
	long long boot_timeout_ms;      /* bcdedit, netsh, reg and boot.command */
};

/* wpath.c: every UTF-8 <-> UTF-16 conversion of the backend. */
/* UTF-8 to UTF-16 (malloc'ed); invalid UTF-8 is EILSEQ. */
int win_utf16(const char *utf8, wchar_t **ret, struct reimage_error *err);
/* UTF-16 to UTF-8 (malloc'ed). */
int win_utf8(const wchar_t *w, char **ret, struct reimage_error *err);
/* A path for the W calls: '/' made '\', made absolute, and prefixed
 * \\?\ (\\?\UNC\ for \\server\share) so that no MAX_PATH limit applies. */
int win_path(const char *utf8, wchar_t **ret, struct reimage_error *err);
/* Strip \\?\ or \??\ (and \\?\UNC\ back to \\): the form the session
 * manager's list and error messages use. */
const wchar_t *win_path_plain(const wchar_t *path, wchar_t *buf, size_t cap);
/* 2 if a and b are the same path, 1 if one lies under the other, else 0
 * (case-insensitive, as NTFS names are; \\?\ and \??\ prefixes ignored). */
int win_path_overlaps(const wchar_t *a, const wchar_t *b);

/* Fill err from a Win32 error code; returns the negative errno. */
int win_error(const struct reimage_host *host, struct reimage_error *err, DWORD code,
	      const char *fmt, ...) REIMAGE_PRINTF(4, 5);

/* move.c */
int win_move(void *ctx, const char *from, const char *to, struct reimage_error *err);
int win_deferred_cancel(void *ctx, const char *dir, struct reimage_error *err);
int win_is_mount(void *ctx, const char *path, struct reimage_error *err);
int win_sync(void *ctx, const char *path, struct reimage_error *err);

/* session.c */
int win_logout(void *ctx, const char *root, struct reimage_error *err);
int win_quiesce(void *ctx, const char *root, struct reimage_error *err);

/* system.c */
int win_prepare(void *ctx, const char *root, struct reimage_error *err);
int win_restore(void *ctx, const char *root, struct reimage_error *err);
int win_set_label(void *ctx, const char *root, const char *label, struct reimage_error *err);
int win_set_boot(void *ctx, const struct reimage_boot *boot, struct reimage_error *err);
int win_reboot(void *ctx, struct reimage_error *err);

/* windows.c: the ops table, for the tests. */
extern const struct reimage_backend_ops win_backend_ops;

#endif
