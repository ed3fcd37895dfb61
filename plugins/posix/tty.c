/*
 * tty.c -- see tty.h.  A notice is written the way wall(1) writes: the
 * terminal device opened for writing without becoming our controlling
 * terminal, non-blocking so a stuck terminal cannot hold the agent.  The
 * answer is read from the same device: on a terminal whose shell also
 * reads it, the shell may take the line first (the notice says so and
 * the deferral then comes at the next notice); a desktop notification
 * or a dedicated session has no such race.
 */
#define _GNU_SOURCE
#include "tty.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTY_MAX 64

static void append(char *buf, size_t cap, const char *what, const char *name)
{
	size_t n = strlen(buf);
	if (n < cap)
		snprintf(buf + n, cap - n, "%s%s:%s", n ? " " : "", what, name);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 if buf holds a line saying "defer" (any case, spaces around). */
static int says_defer(const char *buf)
{
	for (const char *line = buf; line && *line;) {
		const char *end = strchr(line, '\n'), *p = line;
		size_t len = end ? (size_t)(end - line) : strlen(line);
		while (len && isspace((unsigned char)*p))
			p++, len--;
		while (len && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == 5 && !strncasecmp(p, "defer", 5))
			return 1;
		line = end ? end + 1 : NULL;
	}
	return 0;
}

void tty_notify(const struct tty_session *s, size_t n_sessions, const struct reimage_notice *n,
		struct reimage_notice_result *ret)
{
	struct pollfd pfd[TTY_MAX];
	char input[TTY_MAX][256];
	size_t used[TTY_MAX] = { 0 }, k = 0;
	int idx[TTY_MAX], fds[TTY_MAX];

	for (size_t i = 0; i < n_sessions && k < TTY_MAX; i++) {
		int fd = open(s[i].path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* Only ever a terminal: a stale or forged utmp line naming a
		 * disk must not get the text written onto it. */
		if (!isatty(fd)) {
			close(fd);
			continue;
		}
		/* \r\n: a terminal in raw mode still starts each line at the left. */
		char head[512];
		int hl = snprintf(head, sizeof(head), "\r\n\a*** reimage: message for %s ***\r\n",
				  s[i].user[0] ? s[i].user : "all users");
		if (write(fd, head, (size_t)hl) < 0) {
			close(fd);
			continue;
		}
		for (const char *p = n->text; *p;) {
			size_t len = strcspn(p, "\n");
			if (write(fd, p, len) < 0 || write(fd, "\r\n", 2) < 0)
				break;
			p += len + (p[len] == '\n');
		}
		fds[k] = fd;
		pfd[k] = (struct pollfd){ .fd = fd, .events = POLLIN };
		idx[k] = (int)i;
		input[k][0] = '\0';
		k++;
		ret->sessions++;
		append(ret->channels, sizeof(ret->channels), "tty", s[i].path);
	}
	/* Answers: what is already typed, then what comes within wait_ms. */
	int64_t end = now_ms() + (n->deferrals_left > 0 ? n->wait_ms : 0);
	for (int first = 1; k > 0 && !ret->defer; first = 0) {
		int64_t left = end - now_ms();
		if (!first && left <= 0)
			break;
		if (poll(pfd, k, first ? 0 : (int)left) <= 0) {
			if (first)
				continue;
			break;
		}
		for (size_t j = 0; j < k && !ret->defer; j++) {
			if (!(pfd[j].revents & POLLIN))
				continue;
			ssize_t got = read(pfd[j].fd, input[j] + used[j], sizeof(input[j]) - 1 - used[j]);
			if (got <= 0) {
				pfd[j].fd = -1;  /* poll ignores it from now on */
				continue;
			}
			used[j] += (size_t)got;
			input[j][used[j]] = '\0';
			if (n->deferrals_left > 0 && says_defer(input[j])) {
				ret->defer = 1;
				snprintf(ret->who, sizeof(ret->who), "%s on %s",
					 s[idx[j]].user[0] ? s[idx[j]].user : "a user", s[idx[j]].path);
			}
			if (used[j] == sizeof(input[j]) - 1)
				used[j] = 0;
		}
	}
	for (size_t j = 0; j < k; j++)
		close(fds[j]);
}

int tty_process_running(const char *const *names, char *ret_what, size_t cap)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;

	if (!d)
		return -errno;
	while (!found && (de = readdir(d))) {
		char path[64], buf[4096];
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		for (int pass = 0; pass < 2 && !found; pass++) {
			snprintf(path, sizeof(path), "/proc/%s/%s", de->d_name, pass ? "cmdline" : "comm");
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				break;
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n <= 0)
				continue;
			buf[n] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			const char *name = pass ? strrchr(buf, '/') : NULL;
			name = name ? name + 1 : buf;
			for (const char *const *w = names; w && *w; w++)
				if (!strcmp(name, *w)) {
					snprintf(ret_what, cap, "%s (pid %s)", *w, de->d_name);
					found = 1;
					break;
				}
		}
	}
	closedir(d);
	return found;
}
