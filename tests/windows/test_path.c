/*
 * test_path.c -- the one place of UTF-8 <-> UTF-16 conversion and of
 * long paths (\\?\): names beyond ASCII and paths beyond MAX_PATH, with
 * the real calls.
 */
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

TEST_CASE(utf16_round_trip)
{
	struct reimage_error err = { 0 };
	const char *u8 = "B\xc3\xbc" "cher/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80";
	wchar_t *w = NULL;
	char *back = NULL;

	REQUIRE(win_utf16(u8, &w, &err) == 0);
	/* U+00FC, two CJK characters, and a surrogate pair for U+1F600. */
	CHECK(wcscmp(w, L"B\x00fc" L"cher/\x65e5\x672c/\xd83d\xde00") == 0);
	REQUIRE(win_utf8(w, &back, &err) == 0);
	CHECK(strcmp(back, u8) == 0);
	free(w);
	free(back);
	CHECK(win_utf16("bad \xff byte", &w, &err) == -EILSEQ);
	CHECK(strstr(err.msg, "not valid UTF-8") != NULL);
	/* A lone surrogate is not UTF-16 that UTF-8 can carry. */
	struct reimage_error err2 = { 0 };
	CHECK(win_utf8(L"x\xd800y", &back, &err2) == -EILSEQ);
}

TEST_CASE(long_path_forms)
{
	struct reimage_error err = { 0 };
	wchar_t *w = NULL, b[64];

	REQUIRE(win_path("C:/a/b", &w, &err) == 0);
	CHECK(wcscmp(w, L"\\\\?\\C:\\a\\b") == 0);
	free(w);
	REQUIRE(win_path("C:/a/./x/../b/", &w, &err) == 0);
	CHECK(wcscmp(w, L"\\\\?\\C:\\a\\b\\") == 0);
	free(w);
	REQUIRE(win_path("//server/share/dir", &w, &err) == 0);
	CHECK(wcscmp(w, L"\\\\?\\UNC\\server\\share\\dir") == 0);
	CHECK(wcscmp(win_path_plain(w, b, 64), L"\\\\server\\share\\dir") == 0);
	free(w);
	REQUIRE(win_path("\\\\?\\C:\\verbatim\\..\\kept", &w, &err) == 0);
	CHECK(wcscmp(w, L"\\\\?\\C:\\verbatim\\..\\kept") == 0);
	free(w);
	CHECK(wcscmp(win_path_plain(L"\\??\\C:\\x", b, 64), L"C:\\x") == 0);
	CHECK(win_path_overlaps(L"\\\\?\\C:\\Windows", L"\\??\\c:\\windows\\") == 2);
	CHECK(win_path_overlaps(L"C:\\Windows\\System32", L"C:\\windows") == 1);
	CHECK(win_path_overlaps(L"C:\\Windows", L"C:\\Windows.old") == 0);
	CHECK(win_path_overlaps(L"C:\\.reimage\\new", L"C:\\.reimage\\newer\\x") == 0);
}

/* A tree deeper than MAX_PATH, with names beyond ASCII, moves whole. */
TEST_CASE(long_path_move)
{
	struct win_ctx c = { .host = &t_host, .sys = &win_sys_real };
	struct reimage_error err = { 0 };
	wchar_t *w = NULL;
	char path[2048], to[2048];
	int n = snprintf(path, sizeof(path), "%s", t_upath(L"deep"));

	REQUIRE(CreateDirectoryW(t_path(L"deep"), NULL));
	for (int i = 0; i < 12; i++) {
		n += snprintf(path + n, sizeof(path) - (size_t)n,
			      "/\xc3\xa9l\xc3\xa9ment-%02d-abcdefghijklmnopqrstuvwxyz", i);
		REQUIRE(win_path(path, &w, &err) == 0);
		REQUIRE(CreateDirectoryW(w, NULL));
		free(w);
	}
	CHECK(strlen(path) > MAX_PATH);
	snprintf(to, sizeof(to), "%s/\xe6\x97\xa5\xe6\x9c\xac.txt", path);
	REQUIRE(win_path(to, &w, &err) == 0);
	HANDLE h = CreateFileW(w, GENERIC_WRITE, 0, NULL, CREATE_NEW, 0, NULL);
	free(w);
	REQUIRE(h != INVALID_HANDLE_VALUE);
	CloseHandle(h);
	snprintf(to, sizeof(to), "%s.moved", path);
	CHECK(win_move(&c, path, to, &err) == 0);
	CHECK(err.code == 0);
	snprintf(to + strlen(to), sizeof(to) - strlen(to), "/\xe6\x97\xa5\xe6\x9c\xac.txt");
	REQUIRE(win_path(to, &w, &err) == 0);
	CHECK(GetFileAttributesW(w) != INVALID_FILE_ATTRIBUTES);
	free(w);
}
