/*
 * wpath.c -- the one place where the windows backend converts text:
 * the core speaks UTF-8 with '/' separators, Windows' W calls UTF-16
 * with '\' and, past MAX_PATH, the \\?\ prefix.  No ANSI call is made
 * anywhere in the backend (UNICODE is defined for every file).
 */
#include "winbackend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

int win_error(const struct reimage_host *host, struct reimage_error *err, DWORD code,
	      const char *fmt, ...)
{
	char what[512], *text = NULL;
	wchar_t msg[256];
	va_list ap;
	int e;

	switch (code) {
	case ERROR_FILE_NOT_FOUND: case ERROR_PATH_NOT_FOUND: e = -ENOENT; break;
	case ERROR_ACCESS_DENIED: case ERROR_PRIVILEGE_NOT_HELD: e = -EACCES; break;
	case ERROR_SHARING_VIOLATION: case ERROR_LOCK_VIOLATION: e = -EBUSY; break;
	case ERROR_ALREADY_EXISTS: case ERROR_FILE_EXISTS: e = -EEXIST; break;
	case ERROR_NOT_SAME_DEVICE: e = -EXDEV; break;
	case ERROR_NOT_ENOUGH_MEMORY: case ERROR_OUTOFMEMORY: e = -ENOMEM; break;
	case ERROR_NOT_SUPPORTED: case ERROR_INVALID_FUNCTION: e = -ENOTSUP; break;
	case ERROR_TIMEOUT: case WAIT_TIMEOUT: e = -ETIMEDOUT; break;
	case ERROR_FILENAME_EXCED_RANGE: e = -ENAMETOOLONG; break;
	default: e = -EIO; break;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (!FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code,
			    0, msg, sizeof(msg) / sizeof(msg[0]), NULL))
		msg[0] = L'\0';
	/* FormatMessage ends its text with a line break. */
	for (size_t n = wcslen(msg); n && (msg[n - 1] == L'\n' || msg[n - 1] == L'\r' ||
					   msg[n - 1] == L'.');)
		msg[--n] = L'\0';
	if (msg[0] && win_utf8(msg, &text, &(struct reimage_error){ 0 }) < 0)
		text = NULL;
	host->error(err, e, e == -EACCES ? REIMAGE_EC_ACCESS
			    : e == -ENOTSUP ? REIMAGE_EC_UNSUPPORTED : REIMAGE_EC_IO,
		    "%s: %s (Windows error %lu)", what, text ? text : "error", (unsigned long)code);
	free(text);
	return e;
}

/* The first error wins (wpath runs without the host, in tests too). */
static int fail(struct reimage_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	if (err->code)
		return code;
	err->code = code;
	err->cls = code == -ENOMEM ? REIMAGE_EC_IO : REIMAGE_EC_CONFIG;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int win_utf16(const char *utf8, wchar_t **ret, struct reimage_error *err)
{
	int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, NULL, 0);
	wchar_t *w;

	if (n <= 0)
		return fail(err, -EILSEQ, "'%s': not valid UTF-8", utf8);
	if (!(w = malloc((size_t)n * sizeof(*w))))
		return fail(err, -ENOMEM, "out of memory");
	MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, utf8, -1, w, n);
	*ret = w;
	return 0;
}

int win_utf8(const wchar_t *w, char **ret, struct reimage_error *err)
{
	int n = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, NULL, 0, NULL, NULL);
	char *s;

	if (n <= 0)
		return fail(err, -EILSEQ, "a name that is not valid UTF-16");
	if (!(s = malloc((size_t)n)))
		return fail(err, -ENOMEM, "out of memory");
	WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, s, n, NULL, NULL);
	*ret = s;
	return 0;
}

int win_path(const char *utf8, wchar_t **ret, struct reimage_error *err)
{
	wchar_t *w, *full;
	DWORD n;
	int r;

	if ((r = win_utf16(utf8, &w, err)) < 0)
		return r;
	for (wchar_t *p = w; *p; p++)
		if (*p == L'/')
			*p = L'\\';
	if (wcsncmp(w, L"\\\\?\\", 4) == 0) {
		*ret = w;  /* already verbatim */
		return 0;
	}
	/* Absolute and without . or .. first: \\?\ paths are taken verbatim. */
	n = GetFullPathNameW(w, 0, NULL, NULL);
	if (!n || !(full = malloc(((size_t)n + 8) * sizeof(*full)))) {
		free(w);
		return fail(err, n ? -ENOMEM : -EINVAL, "'%s': cannot make the path absolute", utf8);
	}
	if (wcsncmp(w, L"\\\\", 2) == 0) {
		/* \\server\share\x -> \\?\UNC\server\share\x */
		wcscpy(full, L"\\\\?\\UNC");
		GetFullPathNameW(w, n, full + 7, NULL);
		full[7] = L'\\';  /* the first of the two leading backslashes stays */
		memmove(full + 8, full + 9, (wcslen(full + 9) + 1) * sizeof(*full));
	} else {
		wcscpy(full, L"\\\\?\\");
		GetFullPathNameW(w, n, full + 4, NULL);
	}
	free(w);
	*ret = full;
	return 0;
}

const wchar_t *win_path_plain(const wchar_t *path, wchar_t *buf, size_t cap)
{
	if (wcsncmp(path, L"\\\\?\\UNC\\", 8) == 0 || wcsncmp(path, L"\\??\\UNC\\", 8) == 0) {
		_snwprintf(buf, cap, L"\\\\%ls", path + 8);
		buf[cap - 1] = L'\0';
		return buf;
	}
	if (wcsncmp(path, L"\\\\?\\", 4) == 0 || wcsncmp(path, L"\\??\\", 4) == 0)
		return path + 4;
	return path;
}

int win_path_overlaps(const wchar_t *a, const wchar_t *b)
{
	wchar_t ba[1024], bb[1024];
	size_t la, lb, n;

	a = win_path_plain(a, ba, 1024);
	b = win_path_plain(b, bb, 1024);
	la = wcslen(a);
	lb = wcslen(b);
	while (la && a[la - 1] == L'\\')
		la--;
	while (lb && b[lb - 1] == L'\\')
		lb--;
	n = la < lb ? la : lb;
	if (!n || CompareStringOrdinal(a, (int)n, b, (int)n, TRUE) != CSTR_EQUAL)
		return 0;
	if (la == lb)
		return 2;
	return (la < lb ? b[n] : a[n]) == L'\\';
}
