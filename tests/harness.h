/*
 * harness.h -- the test harness shared by every CUnit program.
 *
 * A case is written TEST_CASE(name) { ... } with CUnit's CU_ASSERT_*.
 * CTest runs each case in its own process (`prog name`), in a fresh
 * scratch directory (t_dir()) that is removed when the case passes and
 * kept, with its path printed, when it fails.  A case whose precondition
 * is missing calls t_skip(), which exits 77 with the reason.
 */
#ifndef REIMAGE_TEST_HARNESS_H
#define REIMAGE_TEST_HARNESS_H

#include <CUnit/CUnit.h>
#include <stddef.h>
#include <sys/types.h>

#define TEST_CASE(name) void test_##name(void)

/* The case's scratch directory (absolute, no trailing slash). */
const char *t_dir(void);
/* A path inside the scratch directory (static buffer rotation: 8 live). */
const char *t_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The build directory (binaries: reimage, reimagectl) and source directory. */
const char *t_bin_dir(void);
const char *t_src_dir(void);
/* Exit 77: the case cannot run here; say why. */
void t_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Run a shell command (fixtures only, never the code under test's job);
 * returns its exit status, or -1 if it died by a signal. */
int t_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Like t_sh but captures stdout+stderr into a malloc'ed string. */
int t_sh_out(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write and read small files. */
void t_write(const char *path, const char *text);
/* len bytes of data, which may hold NULs or be cut anywhere. */
void t_write_n(const char *path, const void *data, size_t len);
char *t_read(const char *path);  /* malloc'ed, NULL if missing */
/* 1 once the process whose pid is written in pid_file is gone or a zombie
 * its new parent has not reaped yet (waits up to 2 s); 0 if it still runs
 * or the file holds no pid.  By pid, never by name: other tests run too. */
int t_process_gone(const char *pid_file);
/* 1 if the current process is root and may use namespaces and mounts. */
int t_is_root(void);
/* A TCP port on 127.0.0.1 nobody listens on (right now). */
int free_port(void);
/* 1 if pid holds a TCP socket listening on port (IPv4 or IPv6): the
 * server a test started answers there, not another test's server that
 * took the port between free_port() and the bind. */
int t_port_served_by(int port, pid_t pid);

#endif
