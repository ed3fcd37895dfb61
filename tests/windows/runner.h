/*
 * runner.h -- the windows backend's test runner (CUnit is not built for
 * mingw-w64).  A case is TEST_CASE(name) { ... }; CHECK(cond) records a
 * failure with its line and goes on, REQUIRE(cond) ends the case.  The
 * program runs the one case named by its argument, in a fresh scratch
 * directory under %TEMP% (removed when the case passes, kept and printed
 * when it fails), and exits 0 (pass), 1 (fail) or 77 (skip).  Under
 * Linux CTest runs it through wine64 (tests/windows/wine-run.sh).
 */
#ifndef REIMAGE_WINDOWS_RUNNER_H
#define REIMAGE_WINDOWS_RUNNER_H

#include "winbackend.h"

#define TEST_CASE(name) void test_##name(void)

void t_fail(const char *file, int line, const char *what);
void t_end(void);  /* end the case now (after a failed REQUIRE) */
#define CHECK(c) ((c) ? (void)0 : t_fail(__FILE__, __LINE__, #c))
#define REQUIRE(c) ((c) ? (void)0 : (t_fail(__FILE__, __LINE__, #c), t_end()))

/* The case's scratch directory, plain form (C:\users\...\Temp\...). */
const wchar_t *t_dir(void);
/* A path in it (static rotation of 8 buffers). */
const wchar_t *t_path(const wchar_t *rel);
/* The same as UTF-8, as the core passes paths (static rotation). */
const char *t_upath(const wchar_t *rel);
/* Create a file with text; 1 on success. */
int t_write(const wchar_t *path, const char *text);
/* 1 if path exists. */
int t_exists(const wchar_t *path);
/* A host whose error() keeps the first error and whose log() prints. */
extern const struct reimage_host t_host;
/* Exit 77 with a reason. */
void t_skip(const char *why);

#endif
