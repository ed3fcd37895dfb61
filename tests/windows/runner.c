/*
 * runner.c -- see runner.h.
 */
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>

#define TEST_LIST(name) void test_##name(void);
#include TEST_CASES_H
#undef TEST_LIST

static const struct {
	const char *name;
	void (*run)(void);
} cases[] = {
#define TEST_LIST(name) { #name, test_##name },
#include TEST_CASES_H
#undef TEST_LIST
};

static wchar_t scratch[MAX_PATH];
static int failures;

void t_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	failures++;
}

void t_end(void)
{
	fprintf(stderr, "FAIL (scratch directory kept: %ls)\n", scratch);
	exit(1);
}

void t_skip(const char *why)
{
	fprintf(stderr, "SKIP: %s\n", why);
	exit(77);
}

const wchar_t *t_dir(void)
{
	return scratch;
}

const wchar_t *t_path(const wchar_t *rel)
{
	static wchar_t bufs[8][1024];
	static int next;
	wchar_t *b = bufs[next++ % 8];
	_snwprintf(b, 1024, L"%ls\\%ls", scratch, rel);
	b[1023] = L'\0';
	return b;
}

const char *t_upath(const wchar_t *rel)
{
	static char bufs[8][3072];
	static int next;
	char *b = bufs[next++ % 8];
	WideCharToMultiByte(CP_UTF8, 0, t_path(rel), -1, b, 3072, NULL, NULL);
	return b;
}

int t_write(const wchar_t *path, const char *text)
{
	HANDLE h = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
	DWORD done;
	BOOL ok;
	if (h == INVALID_HANDLE_VALUE)
		return 0;
	ok = WriteFile(h, text, (DWORD)strlen(text), &done, NULL);
	CloseHandle(h);
	return ok;
}

int t_exists(const wchar_t *path)
{
	return GetFileAttributesW(path) != INVALID_FILE_ATTRIBUTES;
}

static void host_error(struct reimage_error *err, int code, enum reimage_errclass cls,
		       const char *fmt, ...)
{
	va_list ap;
	if (err->code)
		return;
	err->code = code;
	err->cls = cls;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static void host_log(enum reimage_loglevel level, const char *fmt, ...)
{
	va_list ap;
	(void)level;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const struct reimage_host t_host = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_host),
	.error = host_error,
	.log = host_log,
};

/* Remove a tree (the scratch directory of a passed case). */
static void remove_tree(const wchar_t *dir)
{
	wchar_t pattern[2048], path[2048];
	WIN32_FIND_DATAW fd;
	HANDLE h;

	_snwprintf(pattern, 2048, L"%ls\\*", dir);
	pattern[2047] = L'\0';
	if ((h = FindFirstFileW(pattern, &fd)) != INVALID_HANDLE_VALUE) {
		do {
			if (!wcscmp(fd.cFileName, L".") || !wcscmp(fd.cFileName, L".."))
				continue;
			_snwprintf(path, 2048, L"%ls\\%ls", dir, fd.cFileName);
			path[2047] = L'\0';
			if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
				remove_tree(path);
			else
				DeleteFileW(path);
		} while (FindNextFileW(h, &fd));
		FindClose(h);
	}
	RemoveDirectoryW(dir);
}

int main(int argc, char **argv)
{
	wchar_t tmp[MAX_PATH];
	size_t n = sizeof(cases) / sizeof(cases[0]);

	if (argc != 2) {
		fprintf(stderr, "usage: %s CASE\ncases:\n", argv[0]);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  %s\n", cases[i].name);
		return 2;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cases[i].name, argv[1]))
			continue;
		GetTempPathW(MAX_PATH, tmp);
		_snwprintf(scratch, MAX_PATH, L"%lsreimage-%hs-%lu", tmp, argv[1],
			   (unsigned long)GetCurrentProcessId());
		scratch[MAX_PATH - 1] = L'\0';
		remove_tree(scratch);
		if (!CreateDirectoryW(scratch, NULL)) {
			fprintf(stderr, "cannot create %ls\n", scratch);
			return 1;
		}
		cases[i].run();
		if (failures)
			t_end();
		/* Verbatim: cases make trees deeper than MAX_PATH. */
		_snwprintf(tmp, MAX_PATH, L"\\\\?\\%ls", scratch);
		tmp[MAX_PATH - 1] = L'\0';
		remove_tree(tmp);
		fprintf(stderr, "%s: passed\n", argv[1]);
		return 0;
	}
	fprintf(stderr, "%s: no such case\n", argv[1]);
	return 2;
}
