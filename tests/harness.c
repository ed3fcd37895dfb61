/*
 * harness.c -- main() of every test program (see harness.h).  The list of
 * cases comes from a header CMake generates from the TEST_CASE lines.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_LIST(name) void test_##name(void);
#include TEST_CASES_H
#undef TEST_LIST

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
#define TEST_LIST(name) { #name, test_##name },
#include TEST_CASES_H
#undef TEST_LIST
	{ NULL, NULL }
};

static char scratch[4096];

const char *t_dir(void)
{
	return scratch;
}

const char *t_path(const char *fmt, ...)
{
	static char bufs[8][4096];
	static int next;
	char rel[3072];
	va_list ap;
	char *b = bufs[next++ % 8];

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(b, sizeof(bufs[0]), "%s/%s", scratch, rel);
	return b;
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

const char *t_bin_dir(void)
{
	return env_or("REIMAGE_TEST_BIN_DIR", ".");
}

const char *t_src_dir(void)
{
	return env_or("REIMAGE_TEST_SRC_DIR", "..");
}

void t_skip(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "SKIP: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(77);
}

static int status_of(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int t_sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int st;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	st = system(cmd);
	free(cmd);
	return status_of(st);
}

int t_sh_out(char **out, const char *fmt, ...)
{
	char *cmd, *full;
	va_list ap;
	size_t len = 0, cap = 4096;
	FILE *p;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (asprintf(&full, "(%s) 2>&1", cmd) < 0)
		abort();
	free(cmd);
	p = popen(full, "r");
	free(full);
	*out = malloc(cap);
	if (!p || !*out)
		abort();
	for (size_t n; (n = fread(*out + len, 1, cap - len - 1, p)) > 0;) {
		len += n;
		if (cap - len < 2 && !(*out = realloc(*out, cap *= 2)))
			abort();
	}
	(*out)[len] = '\0';
	return status_of(pclose(p));
}

void t_write(const char *path, const char *text)
{
	t_write_n(path, text, strlen(text));
}

void t_write_n(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "t_write %s: %s\n", path, strerror(errno));
		abort();
	}
}

int t_process_gone(const char *pid_file)
{
	char *text = t_read(pid_file);
	int pid = text ? atoi(text) : 0;

	free(text);
	if (pid <= 0)
		return 0;
	return t_sh("for i in $(seq 20); do s=$(cut -d' ' -f3 /proc/%d/stat 2>/dev/null) || exit 0; "
		    "[ \"$s\" = Z ] && exit 0; sleep 0.1; done; exit 1", pid) == 0;
}

char *t_read(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		abort();
	buf[n] = '\0';
	fclose(f);
	return buf;
}

int t_is_root(void)
{
	return geteuid() == 0;
}

static int run_case(size_t i)
{
	CU_pSuite suite;
	unsigned failures;
	const char *tmp = env_or("TMPDIR", "/tmp");

	snprintf(scratch, sizeof(scratch), "%s/%s.%s.XXXXXX", tmp, TEST_PROGRAM, cases[i].name);
	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		return 2;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	suite = CU_add_suite(TEST_PROGRAM, NULL, NULL);
	if (!suite || !CU_add_test(suite, cases[i].name, cases[i].fn))
		return 2;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	if (failures == 0) {
		/* chmod first: a case may leave read-only directories behind. */
		t_sh("chmod -R u+rwX '%s' 2>/dev/null; rm -rf '%s'", scratch, scratch);
		return 0;
	}
	fprintf(stderr, "%s: failed; scratch directory kept: %s\n", cases[i].name, scratch);
	return 1;
}

int main(int argc, char **argv)
{
	int rc = 0, ran = 0;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; cases[i].name; i++)
			puts(cases[i].name);
		return 0;
	}
	for (size_t i = 0; cases[i].name; i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		ran++;
		if (run_case(i) != 0)
			rc = 1;
	}
	if (!ran) {
		fprintf(stderr, "%s: no case named %s\n", TEST_PROGRAM, argc > 1 ? argv[1] : "(any)");
		return 2;
	}
	return rc;
}

/* The inodes of the sockets listening on port, from /proc/net/tcp{,6}. */
static size_t listening_inodes(int port, unsigned long *inode, size_t cap)
{
	static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	size_t n = 0;

	for (size_t t = 0; t < 2; t++) {
		FILE *f = fopen(tables[t], "re");
		char line[512];
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f) && n < cap) {
			char local[128];
			unsigned st, p;
			unsigned long ino;
			const char *colon;
			/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
			if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st,
				   &ino) != 3 || st != 0x0A || !(colon = strrchr(local, ':')) ||
			    sscanf(colon + 1, "%x", &p) != 1 || (int)p != port)
				continue;
			inode[n++] = ino;
		}
		fclose(f);
	}
	return n;
}

int t_port_served_by(int port, pid_t pid)
{
	unsigned long inode[16];
	size_t n = listening_inodes(port, inode, 16);
	char dir[64], link[PATH_MAX], target[128];
	struct dirent *e;
	DIR *d;
	int found = 0;

	if (n == 0)
		return 0;
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(dir)))
		return 0;
	while (!found && (e = readdir(d))) {
		unsigned long ino;
		ssize_t len;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		if ((len = readlink(link, target, sizeof(target) - 1)) <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%lu]", &ino) != 1)
			continue;
		for (size_t i = 0; i < n && !found; i++)
			found = inode[i] == ino;
	}
	closedir(d);
	return found;
}

int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}
