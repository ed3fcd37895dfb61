/*
 * sys.c -- the real struct win_sys: each member one Win32 call (or a
 * small group of them), returning its error code.  Decisions live in the
 * other files; this one only talks to the system.
 */
#include "winbackend.h"

#include <stdlib.h>
#include <tlhelp32.h>
#include <wchar.h>
#include <wtsapi32.h>

#define SESSION_MANAGER L"SYSTEM\\CurrentControlSet\\Control\\Session Manager"
#define PENDING_VALUE L"PendingFileRenameOperations"

static DWORD last(BOOL ok)
{
	return ok ? ERROR_SUCCESS : GetLastError();
}

static DWORD sys_move_file(void *sys, const wchar_t *from, const wchar_t *to, DWORD flags)
{
	(void)sys;
	return last(MoveFileExW(from, to, flags));
}

static DWORD sys_pending_read(void *sys, wchar_t **ret_multi, size_t *ret_len)
{
	HKEY key;
	DWORD type, size = 0;
	LONG e;

	(void)sys;
	*ret_multi = NULL;
	*ret_len = 0;
	if ((e = RegOpenKeyExW(HKEY_LOCAL_MACHINE, SESSION_MANAGER, 0, KEY_QUERY_VALUE, &key)))
		return (DWORD)e;
	/* Read until the size holds still: another program may append. */
	for (int tries = 0; tries < 8; tries++) {
		wchar_t *buf;
		e = RegQueryValueExW(key, PENDING_VALUE, NULL, &type, NULL, &size);
		if (e == ERROR_FILE_NOT_FOUND) {
			e = ERROR_SUCCESS;
			break;
		}
		if (e)
			break;
		/* Room for two more NULs: a value not properly terminated. */
		if (!(buf = calloc(size / sizeof(wchar_t) + 2, sizeof(wchar_t)))) {
			e = ERROR_NOT_ENOUGH_MEMORY;
			break;
		}
		DWORD got = size;
		e = RegQueryValueExW(key, PENDING_VALUE, NULL, &type, (BYTE *)buf, &got);
		if (e == ERROR_MORE_DATA) {
			free(buf);
			continue;
		}
		if (e) {
			free(buf);
			break;
		}
		*ret_multi = buf;
		*ret_len = got / sizeof(wchar_t) + 1;
		break;
	}
	RegCloseKey(key);
	return (DWORD)e;
}

static DWORD sys_pending_write(void *sys, const wchar_t *multi, size_t len)
{
	HKEY key;
	LONG e;

	(void)sys;
	if ((e = RegOpenKeyExW(HKEY_LOCAL_MACHINE, SESSION_MANAGER, 0, KEY_SET_VALUE, &key)))
		return (DWORD)e;
	if (len)
		e = RegSetValueExW(key, PENDING_VALUE, 0, REG_MULTI_SZ, (const BYTE *)multi,
				   (DWORD)(len * sizeof(wchar_t)));
	else if ((e = RegDeleteValueW(key, PENDING_VALUE)) == ERROR_FILE_NOT_FOUND)
		e = ERROR_SUCCESS;
	if (!e)
		e = RegFlushKey(key);  /* durable before the swap goes on */
	RegCloseKey(key);
	return (DWORD)e;
}

static DWORD sys_key_exists(void *sys, const wchar_t *key)
{
	HKEY h;
	LONG e;

	(void)sys;
	if (wcsncmp(key, L"HKLM\\", 5) != 0)
		return ERROR_INVALID_PARAMETER;
	if ((e = RegOpenKeyExW(HKEY_LOCAL_MACHINE, key + 5, 0, KEY_READ, &h)) == ERROR_SUCCESS)
		RegCloseKey(h);
	return (DWORD)e;
}

static DWORD sys_volume_path(void *sys, const wchar_t *path, wchar_t *buf, DWORD cap)
{
	(void)sys;
	return last(GetVolumePathNameW(path, buf, cap));
}

static DWORD sys_flush_volume(void *sys, const wchar_t *volume)
{
	wchar_t dev[MAX_PATH], plain[MAX_PATH];
	HANDLE h;
	DWORD e;

	(void)sys;
	/* \\.\C: : the volume itself, whose flush writes every file's
	 * metadata (the renames) to the disk. */
	_snwprintf(dev, MAX_PATH, L"\\\\.\\%.2ls", win_path_plain(volume, plain, MAX_PATH));
	dev[MAX_PATH - 1] = L'\0';
	h = CreateFileW(dev, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
			OPEN_EXISTING, 0, NULL);
	if (h == INVALID_HANDLE_VALUE)
		return GetLastError();
	e = last(FlushFileBuffers(h));
	CloseHandle(h);
	return e;
}

static DWORD sys_set_label(void *sys, const wchar_t *volume, const wchar_t *label)
{
	(void)sys;
	return last(SetVolumeLabelW(volume, label));
}

static DWORD sys_sessions(void *sys, struct win_session **ret, size_t *ret_n)
{
	WTS_SESSION_INFOW *info = NULL;
	DWORD count = 0;

	(void)sys;
	if (!WTSEnumerateSessionsW(WTS_CURRENT_SERVER_HANDLE, 0, 1, &info, &count))
		return GetLastError();
	*ret = calloc(count + 1, sizeof(**ret));
	if (!*ret) {
		WTSFreeMemory(info);
		return ERROR_NOT_ENOUGH_MEMORY;
	}
	for (DWORD i = 0; i < count; i++) {
		(*ret)[i].id = info[i].SessionId;
		(*ret)[i].state = info[i].State;
	}
	*ret_n = count;
	WTSFreeMemory(info);
	return ERROR_SUCCESS;
}

static DWORD sys_logoff(void *sys, DWORD session)
{
	(void)sys;
	return last(WTSLogoffSession(WTS_CURRENT_SERVER_HANDLE, session, TRUE));
}

static DWORD sys_processes(void *sys, struct win_proc **ret, size_t *ret_n)
{
	HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
	PROCESSENTRY32W pe = { .dwSize = sizeof(pe) };
	size_t n = 0, cap = 0;
	struct win_proc *v = NULL;

	(void)sys;
	if (snap == INVALID_HANDLE_VALUE)
		return GetLastError();
	for (BOOL ok = Process32FirstW(snap, &pe); ok; ok = Process32NextW(snap, &pe)) {
		if (n == cap) {
			struct win_proc *nv = realloc(v, (cap = cap ? cap * 2 : 128) * sizeof(*nv));
			if (!nv) {
				free(v);
				CloseHandle(snap);
				return ERROR_NOT_ENOUGH_MEMORY;
			}
			v = nv;
		}
		v[n].pid = pe.th32ProcessID;
		v[n].parent = pe.th32ParentProcessID;
		if (!ProcessIdToSessionId(pe.th32ProcessID, &v[n].session))
			v[n].session = 0;
		wcsncpy(v[n].name, pe.szExeFile, MAX_PATH - 1);
		v[n].name[MAX_PATH - 1] = L'\0';
		n++;
	}
	CloseHandle(snap);
	*ret = v;
	*ret_n = n;
	return ERROR_SUCCESS;
}

static DWORD sys_service_pid(void *sys, const wchar_t *service, DWORD *ret_pid)
{
	SC_HANDLE scm, svc;
	SERVICE_STATUS_PROCESS st;
	DWORD got, e = ERROR_SUCCESS;

	(void)sys;
	if (!(scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT)))
		return GetLastError();
	if (!(svc = OpenServiceW(scm, service, SERVICE_QUERY_STATUS))) {
		e = GetLastError();
	} else {
		if (QueryServiceStatusEx(svc, SC_STATUS_PROCESS_INFO, (BYTE *)&st, sizeof(st), &got))
			*ret_pid = st.dwCurrentState == SERVICE_STOPPED ? 0 : st.dwProcessId;
		else
			e = GetLastError();
		CloseServiceHandle(svc);
	}
	CloseServiceHandle(scm);
	return e;
}

static DWORD sys_terminate(void *sys, DWORD pid, DWORD wait_ms)
{
	HANDLE h = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, pid);
	DWORD e;

	(void)sys;
	if (!h)
		return GetLastError();
	e = last(TerminateProcess(h, 1));
	if (e == ERROR_SUCCESS && WaitForSingleObject(h, wait_ms) != WAIT_OBJECT_0)
		e = WAIT_TIMEOUT;
	CloseHandle(h);
	return e;
}

static DWORD sys_run(void *sys, const wchar_t *program, const wchar_t *cmdline,
		     const wchar_t *dir, DWORD timeout_ms, DWORD *ret_exit)
{
	STARTUPINFOW si = { .cb = sizeof(si) };
	PROCESS_INFORMATION pi;
	wchar_t *line = _wcsdup(cmdline);  /* CreateProcessW may write into it */
	DWORD e = ERROR_SUCCESS;

	(void)sys;
	if (!line)
		return ERROR_NOT_ENOUGH_MEMORY;
	if (!CreateProcessW(program, line, NULL, NULL, FALSE, CREATE_NO_WINDOW, NULL, dir, &si,
			    &pi)) {
		free(line);
		return GetLastError();
	}
	free(line);
	if (WaitForSingleObject(pi.hProcess, timeout_ms) != WAIT_OBJECT_0) {
		TerminateProcess(pi.hProcess, 1);
		e = WAIT_TIMEOUT;
	} else if (!GetExitCodeProcess(pi.hProcess, ret_exit)) {
		e = GetLastError();
	}
	CloseHandle(pi.hThread);
	CloseHandle(pi.hProcess);
	return e;
}

static DWORD sys_system_dir(void *sys, wchar_t *buf, DWORD cap)
{
	UINT n = GetSystemDirectoryW(buf, cap);
	(void)sys;
	return n == 0 ? GetLastError() : n >= cap ? ERROR_INSUFFICIENT_BUFFER : ERROR_SUCCESS;
}

static DWORD sys_enable_privilege(void *sys, const wchar_t *name)
{
	TOKEN_PRIVILEGES tp = { .PrivilegeCount = 1 };
	HANDLE token;
	DWORD e;

	(void)sys;
	if (!OpenProcessToken(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, &token))
		return GetLastError();
	tp.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED;
	if (!LookupPrivilegeValueW(NULL, name, &tp.Privileges[0].Luid)) {
		e = GetLastError();
	} else {
		AdjustTokenPrivileges(token, FALSE, &tp, 0, NULL, NULL);
		/* Success with ERROR_NOT_ALL_ASSIGNED means: not granted. */
		e = GetLastError();
	}
	CloseHandle(token);
	return e;
}

static DWORD sys_shutdown(void *sys, const wchar_t *message)
{
	(void)sys;
	return last(InitiateSystemShutdownExW(NULL, (wchar_t *)message, 0, TRUE, TRUE,
					      SHTDN_REASON_MAJOR_OPERATINGSYSTEM |
						      SHTDN_REASON_MINOR_RECONFIG |
						      SHTDN_REASON_FLAG_PLANNED));
}

const struct win_sys win_sys_real = {
	.move_file = sys_move_file,
	.pending_read = sys_pending_read,
	.pending_write = sys_pending_write,
	.key_exists = sys_key_exists,
	.volume_path = sys_volume_path,
	.flush_volume = sys_flush_volume,
	.set_label = sys_set_label,
	.sessions = sys_sessions,
	.logoff = sys_logoff,
	.processes = sys_processes,
	.service_pid = sys_service_pid,
	.terminate = sys_terminate,
	.run = sys_run,
	.system_dir = sys_system_dir,
	.enable_privilege = sys_enable_privilege,
	.shutdown = sys_shutdown,
};
