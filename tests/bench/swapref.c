/*
 * swapref.c -- the reference the benchmark holds the engine's swap
 * against: the same renames with nothing around them.
 *
 *   bench-swapref ROOT OTHER [PATH...]
 *
 * Every top-level entry of OTHER trades places with ROOT's entry of the
 * same name (renameat2 RENAME_EXCHANGE), or moves in when ROOT has none;
 * then each PATH (a preserved item, relative to both) likewise; then one
 * syncfs of the volume and no fsync per step.  It prints the operations
 * and the elapsed milliseconds.  tests/bench/bench.py runs it on the root
 * the engine has just swapped (OTHER = ROOT/.reimage/old), so it repeats
 * the engine's exchanges in reverse on the same trees, the same volume,
 * in the same state.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Exchange ROOT/name and OTHER/name, or move OTHER/name in. */
static int trade(int root_fd, int other_fd, const char *name)
{
	if (renameat2(other_fd, name, root_fd, name, RENAME_EXCHANGE) == 0)
		return 0;
	if (errno == ENOENT && renameat2(other_fd, name, root_fd, name, RENAME_NOREPLACE) == 0)
		return 0;
	fprintf(stderr, "bench-swapref: %s: %s\n", name, strerror(errno));
	return -1;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench-swapref ROOT OTHER [PATH...]\n");
		return 2;
	}
	int root_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
	int other_fd = open(argv[2], O_RDONLY | O_DIRECTORY);
	DIR *d = other_fd < 0 ? NULL : fdopendir(dup(other_fd));
	if (root_fd < 0 || !d) {
		fprintf(stderr, "bench-swapref: open %s or %s: %s\n", argv[1], argv[2],
			strerror(errno));
		return 1;
	}
	/* Names are read before the clock starts, as the engine's plan is. */
	char names[4096][256];
	size_t n = 0;
	for (struct dirent *e; (e = readdir(d)) && n < 4096;)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	closedir(d);

	double t0 = now_ms();
	for (size_t i = 0; i < n; i++)
		if (trade(root_fd, other_fd, names[i]) < 0)
			return 1;
	for (int i = 3; i < argc; i++)
		if (trade(root_fd, other_fd, argv[i]) < 0)
			return 1;
	if (syncfs(root_fd) < 0) {
		fprintf(stderr, "bench-swapref: syncfs: %s\n", strerror(errno));
		return 1;
	}
	printf("%zu %.3f\n", n + (size_t)(argc - 3), now_ms() - t0);
	return 0;
}
