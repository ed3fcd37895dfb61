/*
 * fake_sys.c -- see fake_sys.h.
 */
#include "fake_sys.h"
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static void note(struct fake_sys *f, const char *fmt, ...)
{
	size_t len = strlen(f->log);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->log + len, sizeof(f->log) - len, fmt, ap);
	va_end(ap);
	len = strlen(f->log);
	if (len + 1 < sizeof(f->log))
		strcpy(f->log + len, "\n");
}

static int ends_with(const wchar_t *s, const wchar_t *suffix)
{
	size_t ls = wcslen(s), lx = wcslen(suffix);
	return ls >= lx && _wcsicmp(s + ls - lx, suffix) == 0;
}

static DWORD f_move_file(void *sys, const wchar_t *from, const wchar_t *to, DWORD flags)
{
	struct fake_sys *f = sys;
	wchar_t b1[1024], b2[1024];
	const wchar_t *pf = win_path_plain(from, b1, 1024), *pt = win_path_plain(to, b2, 1024);

	note(f, "move %ls %ls%s", pf, pt, flags & MOVEFILE_DELAY_UNTIL_REBOOT ? " (at boot)" : "");
	if (flags & MOVEFILE_DELAY_UNTIL_REBOOT) {
		size_t at = f->pending_len ? f->pending_len - 1 : 0;
		at += (size_t)swprintf(f->pending + at, 8192 - at, L"\\??\\%ls", pf) + 1;
		at += (size_t)swprintf(f->pending + at, 8192 - at, L"\\??\\%ls", pt) + 1;
		f->pending[at] = L'\0';
		f->pending_len = at + 1;
		return ERROR_SUCCESS;
	}
	if (f->busy_suffix && ends_with(pf, f->busy_suffix))
		return f->busy_error;
	return ERROR_SUCCESS;
}

static DWORD f_pending_read(void *sys, wchar_t **ret, size_t *ret_len)
{
	struct fake_sys *f = sys;
	*ret = NULL;
	*ret_len = f->pending_len;
	if (f->pending_len && !(*ret = malloc(f->pending_len * sizeof(wchar_t))))
		return ERROR_NOT_ENOUGH_MEMORY;
	if (f->pending_len)
		memcpy(*ret, f->pending, f->pending_len * sizeof(wchar_t));
	return ERROR_SUCCESS;
}

static DWORD f_pending_write(void *sys, const wchar_t *multi, size_t len)
{
	struct fake_sys *f = sys;
	note(f, "pending write %lu", (unsigned long)len);
	memcpy(f->pending, multi, len * sizeof(wchar_t));
	f->pending_len = len;
	return ERROR_SUCCESS;
}

static DWORD f_key_exists(void *sys, const wchar_t *key)
{
	struct fake_sys *f = sys;
	return f->missing_key && !wcscmp(key, f->missing_key) ? ERROR_FILE_NOT_FOUND : ERROR_SUCCESS;
}

static DWORD f_volume_path(void *sys, const wchar_t *path, wchar_t *buf, DWORD cap)
{
	(void)sys; (void)path;
	wcsncpy(buf, L"C:\\", cap);
	return ERROR_SUCCESS;
}

static DWORD f_flush_volume(void *sys, const wchar_t *volume)
{
	note(sys, "flush %ls", volume);
	return ERROR_SUCCESS;
}

static DWORD f_set_label(void *sys, const wchar_t *volume, const wchar_t *label)
{
	char *u = NULL;
	win_utf8(label, &u, &(struct reimage_error){ 0 });
	note(sys, "label %ls %s", volume, u ? u : "?");
	free(u);
	return ERROR_SUCCESS;
}

static DWORD f_sessions(void *sys, struct win_session **ret, size_t *ret_n)
{
	struct fake_sys *f = sys;
	*ret = calloc(f->n_sessions + 1, sizeof(**ret));
	memcpy(*ret, f->sessions, f->n_sessions * sizeof(**ret));
	*ret_n = f->n_sessions;
	return ERROR_SUCCESS;
}

static DWORD f_logoff(void *sys, DWORD session)
{
	note(sys, "logoff %lu", (unsigned long)session);
	return ERROR_SUCCESS;
}

static DWORD f_processes(void *sys, struct win_proc **ret, size_t *ret_n)
{
	struct fake_sys *f = sys;
	*ret = calloc(f->n_procs + 1, sizeof(**ret));
	memcpy(*ret, f->procs, f->n_procs * sizeof(**ret));
	*ret_n = f->n_procs;
	return ERROR_SUCCESS;
}

static DWORD f_service_pid(void *sys, const wchar_t *service, DWORD *ret_pid)
{
	struct fake_sys *f = sys;
	if (!f->service || _wcsicmp(service, f->service))
		return ERROR_SERVICE_DOES_NOT_EXIST;
	*ret_pid = f->service_pid;
	return ERROR_SUCCESS;
}

static DWORD f_terminate(void *sys, DWORD pid, DWORD wait_ms)
{
	note(sys, "terminate %lu wait %lu", (unsigned long)pid, (unsigned long)wait_ms);
	return ERROR_SUCCESS;
}

static DWORD f_run(void *sys, const wchar_t *program, const wchar_t *cmdline, const wchar_t *dir,
		   DWORD timeout_ms, DWORD *ret_exit)
{
	struct fake_sys *f = sys;
	note(f, "run %ls | %ls | %ls | %lu", program, cmdline, dir ? dir : L"-",
	     (unsigned long)timeout_ms);
	*ret_exit = f->run_exit;
	return ERROR_SUCCESS;
}

static DWORD f_system_dir(void *sys, wchar_t *buf, DWORD cap)
{
	(void)sys;
	wcsncpy(buf, L"C:\\Windows\\system32", cap);
	return ERROR_SUCCESS;
}

static DWORD f_enable_privilege(void *sys, const wchar_t *name)
{
	struct fake_sys *f = sys;
	note(f, "privilege %ls", name);
	return f->privilege_error;
}

static DWORD f_shutdown(void *sys, const wchar_t *message)
{
	note(sys, "shutdown %ls", message);
	return ERROR_SUCCESS;
}

const struct win_sys fake_sys_ops = {
	f_move_file, f_pending_read, f_pending_write, f_key_exists, f_volume_path, f_flush_volume, f_set_label,
	f_sessions, f_logoff, f_processes, f_service_pid, f_terminate, f_run, f_system_dir,
	f_enable_privilege, f_shutdown,
};

void fake_ctx(struct win_ctx *c, struct fake_sys *f)
{
	memset(c, 0, sizeof(*c));
	c->host = &t_host;
	c->sys = &fake_sys_ops;
	c->sys_arg = f;
	c->grace_ms = 1000;
	c->boot_timeout_ms = 120000;
	c->agent_pid = 900;
}
