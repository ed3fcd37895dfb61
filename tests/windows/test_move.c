/*
 * test_move.c -- SWAP's moves with the real system calls (under wine in
 * CI): a move done at once, a file held open without FILE_SHARE_DELETE
 * found in use and deferred, the pairs written to the session manager's
 * PendingFileRenameOperations in the order asked, later moves kept
 * behind a deferred one, and cancel removing exactly the swap's pairs.
 * A directory holding an open file (refused by Windows with "access
 * denied", renamed by wine) goes through the fake.
 */
#include "runner.h"
#include "fake_sys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

static struct win_ctx real_ctx(void)
{
	struct win_ctx c = { .host = &t_host, .sys = &win_sys_real, .grace_ms = 1000,
			     .boot_timeout_ms = 60000, .agent_pid = GetCurrentProcessId() };
	return c;
}

/* The pending list as "src>dst;" text, plain paths (wine writes \??\). */
static void pending_text(char *out, size_t cap)
{
	wchar_t *multi = NULL, b[1024];
	size_t len = 0, at = 0;
	out[0] = '\0';
	REQUIRE(win_sys_real.pending_read(NULL, &multi, &len) == ERROR_SUCCESS);
	for (size_t i = 0; i < len && multi[i];) {
		const wchar_t *src = &multi[i];
		i += wcslen(src) + 1;
		const wchar_t *dst = &multi[i];
		i += wcslen(dst) + 1;
		at += (size_t)snprintf(out + at, cap - at, "%ls>", win_path_plain(src, b, 1024));
		/* '!' marks a pair that replaces its destination. */
		at += (size_t)snprintf(out + at, cap - at, "%ls;",
				       win_path_plain(dst + (dst[0] == L'!'), b, 1024));
	}
	free(multi);
}

/* The scratch directory's name relative to it, for expected texts. */
static const char *u(const wchar_t *rel)
{
	return t_upath(rel);
}

static void clear_pending(void)
{
	REQUIRE(win_sys_real.pending_write(NULL, L"", 0) == ERROR_SUCCESS);
}

TEST_CASE(move_at_once)
{
	struct win_ctx c = real_ctx();
	struct reimage_error err = { 0 };

	clear_pending();
	REQUIRE(CreateDirectoryW(t_path(L"old"), NULL));
	REQUIRE(t_write(t_path(L"old\\f"), "x"));
	CHECK(win_move(&c, t_upath(L"old"), t_upath(L"new"), &err) == 0);
	CHECK(t_exists(t_path(L"new\\f")) && !t_exists(t_path(L"old")));
	/* A destination that exists is an error, not a replacement. */
	REQUIRE(CreateDirectoryW(t_path(L"other"), NULL));
	CHECK(win_move(&c, t_upath(L"new"), t_upath(L"other"), &err) == -EEXIST);
	CHECK(strstr(err.msg, "move ") != NULL);
	CHECK(strstr(err.msg, "(Windows error 183)") != NULL);
	char text[4096];
	pending_text(text, sizeof(text));
	CHECK(text[0] == '\0');
}

TEST_CASE(in_use_file_deferred_in_order)
{
	struct win_ctx c = real_ctx();
	struct reimage_error err = { 0 };
	char text[8192], want[8192];

	clear_pending();
	REQUIRE(t_write(t_path(L"busy"), "old"));
	REQUIRE(t_write(t_path(L"staged"), "new"));
	REQUIRE(CreateDirectoryW(t_path(L"old"), NULL));
	/* Held open without FILE_SHARE_DELETE: it cannot be renamed. */
	HANDLE h = CreateFileW(t_path(L"busy"), GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
			       NULL, OPEN_EXISTING, 0, NULL);
	REQUIRE(h != INVALID_HANDLE_VALUE);
	/* The exchange's three moves: busy is in use, so it waits for the
	 * boot, and so do the two behind it, in the order asked. */
	CHECK(win_move(&c, t_upath(L"busy"), t_upath(L"old\\busy"), &err) == 1);
	CHECK(win_move(&c, t_upath(L"staged"), t_upath(L"busy"), &err) == 1);
	CHECK(win_move(&c, t_upath(L"old\\busy"), t_upath(L"staged"), &err) == 1);
	/* An unrelated entry still moves at once. */
	REQUIRE(t_write(t_path(L"free"), "f"));
	CHECK(win_move(&c, t_upath(L"free"), t_upath(L"free2"), &err) == 0);
	CHECK(t_exists(t_path(L"free2")));
	CHECK(err.code == 0);
	CloseHandle(h);
	/* Nothing moved now: the boot does it. */
	CHECK(t_exists(t_path(L"busy")) && t_exists(t_path(L"staged")));
	pending_text(text, sizeof(text));
	snprintf(want, sizeof(want), "%s>%s;%s>%s;%s>%s;", u(L"busy"), u(L"old\\busy"),
		 u(L"staged"), u(L"busy"), u(L"old\\busy"), u(L"staged"));
	fprintf(stderr, "pending: %s\n", text);
	CHECK(strcmp(text, want) == 0);
	clear_pending();
}

TEST_CASE(cancel_keeps_other_programs_pairs)
{
	struct win_ctx c = real_ctx();
	struct reimage_error err = { 0 };
	char text[8192], want[8192];

	clear_pending();
	REQUIRE(CreateDirectoryW(t_path(L".reimage"), NULL));
	REQUIRE(t_write(t_path(L"busy"), "old"));
	REQUIRE(t_write(t_path(L"installer.new"), "i"));
	HANDLE h = CreateFileW(t_path(L"busy"), GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
			       0, NULL);
	REQUIRE(h != INVALID_HANDLE_VALUE);
	/* Another program's pending pair, before and after ours. */
	REQUIRE(MoveFileExW(t_path(L"installer.new"), t_path(L"installer.dll"),
			    MOVEFILE_DELAY_UNTIL_REBOOT | MOVEFILE_REPLACE_EXISTING));
	CHECK(win_move(&c, t_upath(L"busy"), t_upath(L".reimage\\xchg"), &err) == 1);
	REQUIRE(MoveFileExW(t_path(L"installer.old"), NULL, MOVEFILE_DELAY_UNTIL_REBOOT));
	CloseHandle(h);
	CHECK(win_deferred_cancel(&c, t_upath(L".reimage"), &err) == 0);
	CHECK(err.code == 0);
	pending_text(text, sizeof(text));
	snprintf(want, sizeof(want), "%s>%s;%s>;", u(L"installer.new"), u(L"installer.dll"),
		 u(L"installer.old"));
	fprintf(stderr, "pending: %s\n", text);
	CHECK(strcmp(text, want) == 0);
	/* The replace flag ('!') of the other program's pair is kept. */
	wchar_t *multi = NULL;
	size_t len = 0;
	REQUIRE(win_sys_real.pending_read(NULL, &multi, &len) == ERROR_SUCCESS);
	REQUIRE(multi != NULL);
	CHECK(multi[wcslen(multi) + 1] == L'!');
	free(multi);
	/* Nothing of ours left: a second cancel changes nothing. */
	CHECK(win_deferred_cancel(&c, t_upath(L".reimage"), &err) == 0);
	pending_text(text, sizeof(text));
	CHECK(strcmp(text, want) == 0);
	clear_pending();
}

TEST_CASE(directory_in_use_deferred)
{
	struct fake_sys f = { .busy_suffix = L"\\Windows", .busy_error = ERROR_ACCESS_DENIED };
	struct win_ctx c;
	struct reimage_error err = { 0 };

	fake_ctx(&c, &f);
	/* Windows refuses to rename a directory holding an open file with
	 * "access denied" (wine renames it: so the fake answers here). */
	CHECK(win_move(&c, "C:/Windows", "C:/.reimage/xchg", &err) == 1);
	CHECK(win_move(&c, "C:/.reimage/new/Windows", "C:/Windows", &err) == 1);
	CHECK(win_move(&c, "C:/.reimage/xchg", "C:/.reimage/new/Windows", &err) == 1);
	CHECK(win_move(&c, "C:/Users", "C:/.reimage/new/Users", &err) == 0);
	/* FINAL: new/ holds a pending path, so it waits too. */
	CHECK(win_move(&c, "C:/.reimage/new", "C:/.reimage/old", &err) == 1);
	fprintf(stderr, "%s", f.log);
	CHECK(strcmp(f.log,
		     "move C:\\Windows C:\\.reimage\\xchg\n"
		     "move C:\\Windows C:\\.reimage\\xchg (at boot)\n"
		     "move C:\\.reimage\\new\\Windows C:\\Windows (at boot)\n"
		     "move C:\\.reimage\\xchg C:\\.reimage\\new\\Windows (at boot)\n"
		     "move C:\\Users C:\\.reimage\\new\\Users\n"
		     "move C:\\.reimage\\new C:\\.reimage\\old (at boot)\n") == 0);
	/* Any other failure is an error, never a deferral. */
	f.busy_suffix = L"\\Program Files";
	f.busy_error = ERROR_FILE_NOT_FOUND;
	CHECK(win_move(&c, "C:/Program Files", "C:/elsewhere", &err) == -ENOENT);
	CHECK(strstr(err.msg, "move C:/Program Files") != NULL);
}

TEST_CASE(is_mount_and_sync)
{
	struct win_ctx c = real_ctx();
	struct reimage_error err = { 0 };
	struct fake_sys f = { 0 };

	REQUIRE(CreateDirectoryW(t_path(L"d"), NULL));
	CHECK(win_is_mount(&c, t_upath(L"d"), &err) == 0);
	CHECK(win_is_mount(&c, "C:/", &err) == 1);
	CHECK(win_is_mount(&c, "C:\\", &err) == 1);
	CHECK(err.code == 0);
	/* The flush goes to the volume holding the path. */
	fake_ctx(&c, &f);
	CHECK(win_sync(&c, t_upath(L"d"), &err) == 0);
	CHECK(strcmp(f.log, "flush C:\\\n") == 0);
}
