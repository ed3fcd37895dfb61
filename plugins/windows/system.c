/*
 * system.c -- the machine-wide steps of a job on Windows: PREPARE exports
 * what the new image's registry will not hold (Wi-Fi profiles with their
 * keys, the network and user-profile registry keys) and COMMIT, in the
 * new image, imports it (restore); LABEL renames the
 * volume, BOOT asks bcdedit for the next boot entry (one-shot with
 * /bootsequence), REBOOT restarts with the shutdown privilege enabled.
 * Programs run are the system's own (GetSystemDirectoryW), never looked
 * up on PATH, and every one is bounded by boot_timeout_seconds.
 */
#include "winbackend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

/* Where PREPARE puts its exports: inside <root>/.reimage, which the swap
 * never moves, so they outlive the old image. */
#define EXPORT_DIR L"\\.reimage\\windows"
#define CMDLINE_MAX 32768

/* Registry keys exported in PREPARE, and the file each goes to. */
static const struct {
	const wchar_t *key, *file;
} exported_keys[] = {
	{ L"HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters", L"tcpip.reg" },
	{ L"HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip6\\Parameters", L"tcpip6.reg" },
	{ L"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\NetworkList", L"networklist.reg" },
	{ L"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList", L"profilelist.reg" },
};

/* Run the system program exe (e.g. L"bcdedit.exe") with args; *ret_exit
 * is its exit code. */
static int run_system_tool(struct win_ctx *c, const wchar_t *exe, const wchar_t *args,
			   const wchar_t *dir, DWORD *ret_exit, struct reimage_error *err)
{
	wchar_t sysdir[MAX_PATH], program[MAX_PATH + 32], *cmdline;
	DWORD e;

	if ((e = c->sys->system_dir(c->sys_arg, sysdir, MAX_PATH)) != ERROR_SUCCESS)
		return win_error(c->host, err, e, "find the system directory");
	_snwprintf(program, MAX_PATH + 32, L"%ls\\%ls", sysdir, exe);
	program[MAX_PATH + 31] = L'\0';
	if (!(cmdline = malloc(CMDLINE_MAX * sizeof(*cmdline))))
		return win_error(c->host, err, ERROR_NOT_ENOUGH_MEMORY, "run a program");
	_snwprintf(cmdline, CMDLINE_MAX, L"\"%ls\" %ls", program, args);
	cmdline[CMDLINE_MAX - 1] = L'\0';
	e = c->sys->run(c->sys_arg, program, cmdline, dir, (DWORD)c->boot_timeout_ms, ret_exit);
	free(cmdline);
	if (e != ERROR_SUCCESS) {
		char *name = NULL;
		win_utf8(exe, &name, &(struct reimage_error){ 0 });
		int r = win_error(c->host, err, e, "run %s", name ? name : "a program");
		free(name);
		return r;
	}
	return 0;
}

/* run_system_tool for a program that must exit 0: otherwise the error is
 * "<what> <subject>: exit code N" (subject: the key or file it acted on). */
static int run_tool_checked(struct win_ctx *c, const wchar_t *exe, const wchar_t *args,
			    const char *what, const wchar_t *subject, struct reimage_error *err)
{
	char *name = NULL;
	DWORD code;
	int r;

	if ((r = run_system_tool(c, exe, args, NULL, &code, err)) < 0 || code == 0)
		return r;
	win_utf8(subject, &name, &(struct reimage_error){ 0 });
	c->host->error(err, -EIO, REIMAGE_EC_IO, "%s %s: exit code %lu", what, name ? name : "?",
		       (unsigned long)code);
	free(name);
	return -EIO;
}

/* root as a plain path without a trailing separator (programs such as
 * reg and netsh do not take \\?\ paths). */
static int plain_root(const char *root, wchar_t *buf, size_t cap, struct reimage_error *err)
{
	wchar_t *w, tmp[MAX_PATH];
	int r;

	if ((r = win_path(root, &w, err)) < 0)
		return r;
	_snwprintf(buf, cap, L"%ls", win_path_plain(w, tmp, MAX_PATH));
	buf[cap - 1] = L'\0';
	free(w);
	for (size_t n = wcslen(buf); n && buf[n - 1] == L'\\';)
		buf[--n] = L'\0';
	return 0;
}

int win_prepare(void *ctx, const char *root, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t dir[MAX_PATH], args[3 * MAX_PATH];
	DWORD code;
	int r;

	if ((r = plain_root(root, dir, MAX_PATH - 32, err)) < 0)
		return r;
	wcscat(dir, EXPORT_DIR);
	if (!CreateDirectoryW(dir, NULL) && GetLastError() != ERROR_ALREADY_EXISTS)
		return win_error(c->host, err, GetLastError(), "create %s/.reimage/windows", root);
	/* Wi-Fi profiles with their keys in clear: the machine key that
	 * protects them stays with the old image. */
	_snwprintf(args, 3 * MAX_PATH, L"wlan export profile key=clear folder=\"%ls\"", dir);
	if ((r = run_system_tool(c, L"netsh.exe", args, NULL, &code, err)) < 0)
		return r;
	if (code != 0)
		c->host->log(REIMAGE_LOG_NOTICE, "windows: no Wi-Fi profiles exported (netsh exit "
			     "%lu: no wireless service here?)", (unsigned long)code);
	for (size_t i = 0; i < sizeof(exported_keys) / sizeof(exported_keys[0]); i++) {
		/* A key this machine does not have (no IPv6 settings) is no loss. */
		if (c->sys->key_exists(c->sys_arg, exported_keys[i].key) == ERROR_FILE_NOT_FOUND)
			continue;
		_snwprintf(args, 3 * MAX_PATH, L"export \"%ls\" \"%ls\\%ls\" /y", exported_keys[i].key,
			   dir, exported_keys[i].file);
		if ((r = run_tool_checked(c, L"reg.exe", args, "reg export", exported_keys[i].key,
					  err)) < 0)
			return r;
	}
	return 0;
}

/* Import one exported file with the system program exe and args (which
 * name the file), then remove it: a second restore skips it. */
static int import_file(struct win_ctx *c, const wchar_t *exe, const wchar_t *args,
		       const wchar_t *file, const char *what, struct reimage_error *err)
{
	char *name = NULL;
	int r;

	if ((r = run_tool_checked(c, exe, args, what, file, err)) < 0)
		return r;
	if (!DeleteFileW(file)) {
		win_utf8(file, &name, &(struct reimage_error){ 0 });
		r = win_error(c->host, err, GetLastError(), "remove %s", name ? name : "?");
		free(name);
	}
	return r;
}

int win_restore(void *ctx, const char *root, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t dir[MAX_PATH], file[MAX_PATH], args[3 * MAX_PATH];
	WIN32_FIND_DATAW found;
	HANDLE h;
	int r;

	if ((r = plain_root(root, dir, MAX_PATH - 32, err)) < 0)
		return r;
	wcscat(dir, EXPORT_DIR);
	if (GetFileAttributesW(dir) == INVALID_FILE_ATTRIBUTES)
		return 0;  /* nothing was exported, or all of it is restored */
	/* The registry keys first, in PREPARE's order; a key the old machine
	 * lacked has no file. */
	for (size_t i = 0; i < sizeof(exported_keys) / sizeof(exported_keys[0]); i++) {
		_snwprintf(file, MAX_PATH, L"%ls\\%ls", dir, exported_keys[i].file);
		file[MAX_PATH - 1] = L'\0';
		if (GetFileAttributesW(file) == INVALID_FILE_ATTRIBUTES)
			continue;
		_snwprintf(args, 3 * MAX_PATH, L"import \"%ls\"", file);
		if ((r = import_file(c, L"reg.exe", args, file, "reg import", err)) < 0)
			return r;
	}
	/* Then every Wi-Fi profile netsh exported, for all users. */
	_snwprintf(file, MAX_PATH, L"%ls\\*.xml", dir);
	file[MAX_PATH - 1] = L'\0';
	if ((h = FindFirstFileW(file, &found)) != INVALID_HANDLE_VALUE) {
		do {
			_snwprintf(file, MAX_PATH, L"%ls\\%ls", dir, found.cFileName);
			file[MAX_PATH - 1] = L'\0';
			_snwprintf(args, 3 * MAX_PATH, L"wlan add profile filename=\"%ls\" user=all",
				   file);
			r = import_file(c, L"netsh.exe", args, file, "netsh wlan add profile", err);
		} while (r == 0 && FindNextFileW(h, &found));
		FindClose(h);
		if (r < 0)
			return r;
	}
	if (!RemoveDirectoryW(dir))
		c->host->log(REIMAGE_LOG_NOTICE, "windows: %s/.reimage/windows kept: it holds files "
			     "restore did not import", root);
	return 0;
}

int win_set_label(void *ctx, const char *root, const char *label, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t *wroot = NULL, *wlabel = NULL, vol[MAX_PATH], plain[MAX_PATH];
	DWORD e;
	int r;

	if ((r = win_utf16(label, &wlabel, err)) < 0)
		return r;
	/* NTFS takes 32 characters; FAT's 11 are checked by the call. */
	if (wcslen(wlabel) > 32 || wcspbrk(wlabel, L"*?/\\|.,;:+=[]<>\"")) {
		c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
			       "label '%s': at most 32 characters, none of * ? / \\ | . , ; : + = [ ] "
			       "< > \"", label);
		r = -EINVAL;
		goto out;
	}
	if ((r = win_path(root, &wroot, err)) < 0)
		goto out;
	if ((e = c->sys->volume_path(c->sys_arg, wroot, vol, MAX_PATH)) != ERROR_SUCCESS) {
		r = win_error(c->host, err, e, "volume of %s", root);
		goto out;
	}
	/* SetVolumeLabelW wants "C:\\", not the verbatim "\\?\C:\\". */
	if ((e = c->sys->set_label(c->sys_arg, win_path_plain(vol, plain, MAX_PATH), wlabel)) !=
	    ERROR_SUCCESS)
		r = win_error(c->host, err, e, "set the label of the volume holding %s", root);
out:
	free(wroot);
	free(wlabel);
	return r;
}

/* A BCD identifier: {current}, {bootmgr} or {GUID}: nothing else reaches
 * bcdedit's command line. */
static int bcd_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n < 3 || n > 64 || id[0] != '{' || id[n - 1] != '}')
		return 0;
	for (size_t i = 1; i + 1 < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
			return 0;
	return 1;
}

int win_set_boot(void *ctx, const struct reimage_boot *boot, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t *w = NULL, *args = NULL, dir[MAX_PATH];
	DWORD code = 0;
	int r;

	if (boot->initrd || boot->cmdline) {
		c->host->error(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED,
			       "windows: boot.initrd and boot.cmdline have no meaning here; name a "
			       "BCD entry in boot.kernel, or run bcdedit in boot.command");
		return -ENOTSUP;
	}
	if (boot->kernel && !bcd_id_ok(boot->kernel)) {
		c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
			       "boot.kernel '%s': not a BCD identifier ({current}, {GUID})",
			       boot->kernel);
		return -EINVAL;
	}
	if (!(args = malloc(CMDLINE_MAX * sizeof(*args))))
		return win_error(c->host, err, ERROR_NOT_ENOUGH_MEMORY, "set boot parameters");
	if (boot->kernel) {
		if ((r = win_utf16(boot->kernel, &w, err)) < 0)
			goto out;
		/* One-shot: the entry boots once; the default stays for a fallback. */
		_snwprintf(args, CMDLINE_MAX, L"%ls %ls", boot->one_shot ? L"/bootsequence" : L"/default",
			   w);
		if ((r = run_system_tool(c, L"bcdedit.exe", args, NULL, &code, err)) < 0)
			goto out;
		if (code) {
			c->host->error(err, -EIO, REIMAGE_EC_IO, "bcdedit %s %s: exit code %lu",
				       boot->one_shot ? "/bootsequence" : "/default", boot->kernel,
				       (unsigned long)code);
			r = -EIO;
			goto out;
		}
		free(w);
		w = NULL;
	}
	if (boot->command) {
		if ((r = win_utf16(boot->command, &w, err)) < 0 ||
		    (r = plain_root(boot->root, dir, MAX_PATH, err)) < 0)
			goto out;
		wcscat(dir, L"\\");
		_snwprintf(args, CMDLINE_MAX, L"/d /s /c \"%ls\"", w);
		args[CMDLINE_MAX - 1] = L'\0';
		if ((r = run_system_tool(c, L"cmd.exe", args, dir, &code, err)) < 0)
			goto out;
		if (code) {
			c->host->error(err, -EIO, REIMAGE_EC_IO, "boot.command '%s': exit code %lu",
				       boot->command, (unsigned long)code);
			r = -EIO;
			goto out;
		}
	}
	r = 0;
out:
	free(w);
	free(args);
	return r;
}

int win_reboot(void *ctx, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	DWORD e;

	/* Without the privilege the call is refused; enable it first. */
	if ((e = c->sys->enable_privilege(c->sys_arg, SE_SHUTDOWN_NAME)) != ERROR_SUCCESS)
		return win_error(c->host, err, e, "enable the shutdown privilege");
	if ((e = c->sys->shutdown(c->sys_arg, L"reimage: restarting into the new image")) !=
	    ERROR_SUCCESS)
		return win_error(c->host, err, e, "restart the machine");
	/* The restart is under way; the agent stops now. */
	return 0;
}
