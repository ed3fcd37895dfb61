/*
 * driver.c -- replays a fuzz target's corpus without libFuzzer: a main()
 * that hands every file named on the command line (or found in a
 * directory named there) to LLVMFuzzerTestOneInput, once each, in name
 * order.  The normal test run builds each target with it, under gcc and
 * under ASan+UBSan, so every seed and every crash reproducer kept in
 * tests/fuzz/corpus/ is checked on every run; tests/fuzz/run.sh links the
 * same targets with libFuzzer instead to look for new ones.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t size = 0, cap = 0;

	if (!f) {
		perror(path);
		return -1;
	}
	for (;;) {
		if (size == cap && !(data = realloc(data, cap = cap ? cap * 2 : 4096))) {
			fclose(f);
			return -1;
		}
		size_t n = fread(data + size, 1, cap - size, f);
		if (n == 0)
			break;
		size += n;
	}
	fclose(f);
	fprintf(stderr, "input %s (%zu bytes)\n", path, size);
	/* A copy of exactly size bytes: ASan sees a read past the end. */
	uint8_t *exact = malloc(size ? size : 1);
	if (!exact) {
		free(data);
		return -1;
	}
	memcpy(exact, data, size);
	free(data);
	LLVMFuzzerTestOneInput(exact, size);
	free(exact);
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	int count = 0;

	/* The target may change its working directory when it starts. */
	for (int i = 1; i < argc; i++) {
		char *real = realpath(argv[i], NULL);
		if (!real) {
			perror(argv[i]);
			return 2;
		}
		argv[i] = real;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **names;
		int n;

		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 2;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) < 0)
				return 2;
			count++;
			continue;
		}
		if ((n = scandir(argv[i], &names, NULL, by_name)) < 0) {
			perror(argv[i]);
			return 2;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];
			if (names[k]->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
				if (run_file(path) < 0)
					return 2;
				count++;
			}
			free(names[k]);
		}
		free(names);
	}
	fprintf(stderr, "%d inputs replayed\n", count);
	/* An empty corpus proves nothing. */
	return count > 0 ? 0 : 1;
}
