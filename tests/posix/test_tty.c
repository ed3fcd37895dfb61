/*
 * test_tty.c -- the posix backend's notice on a terminal (tty.c): a pty
 * stands for a user's session, and the user's answer is read back.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "tty.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST_CASE(terminal_notice_and_answer)
{
	struct tty_session s[2] = { { "", "alice" }, { "", "bob" } };
	struct reimage_notice_result res = { 0 };
	struct reimage_notice n = { sizeof(n), "j1", "Restart soon.\nType \"defer\".", 60, 1, 500 };
	char seen[1024];

	int master = posix_openpt(O_RDWR | O_NOCTTY);
	CU_ASSERT_FATAL(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
	snprintf(s[0].path, sizeof(s[0].path), "%s", ptsname(master));
	int slave = open(s[0].path, O_RDWR | O_NOCTTY);  /* alice's shell */
	/* bob's "terminal" is a plain file: never written to. */
	snprintf(s[1].path, sizeof(s[1].path), "%s", t_path("not-a-tty"));
	t_write(s[1].path, "");
	tty_notify(s, 2, &n, &res);
	CU_ASSERT_EQUAL(res.sessions, 1);
	CU_ASSERT_STRING_EQUAL(res.channels, strcat(strcpy(seen, "tty:"), s[0].path));
	CU_ASSERT_EQUAL(res.defer, 0);
	char *file = t_read(s[1].path);
	CU_ASSERT(file && !file[0]);
	free(file);
	ssize_t got = read(master, seen, sizeof(seen) - 1);
	CU_ASSERT_FATAL(got > 0);
	seen[got] = '\0';
	CU_ASSERT_PTR_NOT_NULL(strstr(seen, "message for alice"));
	CU_ASSERT_PTR_NOT_NULL(strstr(seen, "Restart soon."));
	CU_ASSERT_PTR_NOT_NULL(strstr(seen, "Type \"defer\"."));
	/* Her answer, typed before the next notice, is read with it. */
	CU_ASSERT_EQUAL(write(master, " Defer \n", 8), 8);
	memset(&res, 0, sizeof(res));
	tty_notify(s, 2, &n, &res);
	CU_ASSERT_EQUAL(res.defer, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.who, "alice on /dev/pts/"));
	/* Without deferrals left the answer is not taken. */
	CU_ASSERT_EQUAL(write(master, "defer\n", 6), 6);
	n.deferrals_left = 0;
	memset(&res, 0, sizeof(res));
	tty_notify(s, 2, &n, &res);
	CU_ASSERT_EQUAL(res.defer, 0);
	close(slave);
	close(master);
}
