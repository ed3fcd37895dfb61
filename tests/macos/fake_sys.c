/*
 * fake_sys.c -- see fake_sys.h.
 */
#define _GNU_SOURCE
#include "fake_sys.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const struct reimage_plugin *macos_LTX_reimage_plugin_entry(void);

static struct fake_sys *of(const struct macos_sys *sys)
{
	return (struct fake_sys *)sys;
}

static void logf_(struct fake_sys *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(struct fake_sys *f, const char *fmt, ...)
{
	size_t n = strlen(f->calls);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->calls + n, sizeof(f->calls) - n, fmt, ap);
	va_end(ap);
	n = strlen(f->calls);
	snprintf(f->calls + n, sizeof(f->calls) - n, "\n");
}

/* Arguments with spaces are quoted, so that lines stay unambiguous. */
static void join(char *buf, size_t cap, const char *const v[], const char *sep)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; v[i] && n < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, strchr(v[i], ' ') ? "%s'%s'" : "%s%s",
				      i ? sep : "", v[i]);
}

static int fake_run(const struct macos_sys *sys, const char *const argv[],
		    const char *const envp[], int timeout_s, struct macos_output *out)
{
	struct fake_sys *f = of(sys);
	char line[2048];

	(void)timeout_s;
	join(line, sizeof(line), argv, " ");
	join(f->last_env, sizeof(f->last_env), envp, "\n");
	logf_(f, "run %s", line);
	out->len = 0;
	out->text[0] = '\0';
	for (size_t i = 0; i < f->n_answers; i++) {
		struct fake_answer *a = &f->answers[i];
		if (a->used || strncmp(line, a->match, strlen(a->match)) != 0)
			continue;
		a->used = 1;
		if (a->output) {
			snprintf(out->text, sizeof(out->text), "%s", a->output);
			out->len = strlen(out->text);
		}
		return a->status;
	}
	return 0;
}

static int fake_swap(const struct macos_sys *sys, const char *a, const char *b)
{
	logf_(of(sys), "swap %s %s", a, b);
	return of(sys)->swap_error;
}

static int fake_excl(const struct macos_sys *sys, const char *from, const char *to)
{
	logf_(of(sys), "move %s %s", from, to);
	return of(sys)->swap_error;
}

static int fake_volume(const struct macos_sys *sys, const char *path, struct macos_volume *ret)
{
	logf_(of(sys), "volume %s", path);
	*ret = of(sys)->volume;
	return of(sys)->volume_error;
}

static int fake_procs(const struct macos_sys *sys, struct macos_proc **ret, size_t *ret_n)
{
	struct fake_sys *f = of(sys);
	size_t n = 0;

	logf_(f, "procs");
	if (f->procs_error)
		return f->procs_error;
	*ret = calloc(f->n_procs + 1, sizeof(**ret));
	for (size_t i = 0; i < f->n_procs; i++)
		if (f->procs[i].alive)
			(*ret)[n++] = f->procs[i].p;
	*ret_n = n;
	return 0;
}

static void end(struct fake_sys *f, struct fake_proc *p)
{
	p->alive = 0;
	if (p->respawns > 0) {
		struct fake_proc *again = fake_proc(f, p->p.pid + 1000, 1, p->p.uid, p->p.name);
		again->respawns = p->respawns - 1;
		again->ignores_term = p->ignores_term;
	}
}

/* Polls (signal 0) are not logged: how many there are depends on timing. */
static int fake_signal(const struct macos_sys *sys, pid_t pid, int sig)
{
	struct fake_sys *f = of(sys);

	if (sig)
		logf_(f, "signal %d %d", (int)pid, sig);
	for (size_t i = 0; i < f->n_procs; i++) {
		struct fake_proc *p = &f->procs[i];
		if (p->p.pid != pid || !p->alive)
			continue;
		if (sig == SIGKILL || (sig == SIGTERM && !p->ignores_term))
			end(f, p);
		return 0;
	}
	return -ESRCH;
}

static int fake_console(const struct macos_sys *sys, uid_t *ret)
{
	*ret = of(sys)->console;
	return 0;
}

static int fake_copy(const struct macos_sys *sys, const char *src, const char *dst, mode_t mode)
{
	logf_(of(sys), "copy %s %s %04o", src, dst, (unsigned)mode);
	return of(sys)->copy_error;
}

static int fake_sync(const struct macos_sys *sys, const char *path)
{
	logf_(of(sys), "sync %s", path);
	return of(sys)->sync_error;
}

static int fake_reboot(const struct macos_sys *sys)
{
	logf_(of(sys), "reboot");
	return -EPERM;
}

static int64_t fake_now(const struct macos_sys *sys)
{
	return of(sys)->clock_ms;
}

static void fake_sleep(const struct macos_sys *sys, int ms)
{
	of(sys)->clock_ms += ms;
}

static const struct macos_sys fake_table = {
	.run = fake_run,
	.rename_swap = fake_swap,
	.rename_excl = fake_excl,
	.volume = fake_volume,
	.procs = fake_procs,
	.signal = fake_signal,
	.console_uid = fake_console,
	.copy_file = fake_copy,
	.full_sync = fake_sync,
	.reboot = fake_reboot,
	.now_ms = fake_now,
	.sleep_ms = fake_sleep,
};

void mfx_start(struct macos_fixture *m, const char *conf)
{
	struct reimage_error err = { 0 };

	memset(&m->fake, 0, sizeof(m->fake));
	m->fake.sys = fake_table;
	snprintf(m->fake.volume.fstype, sizeof(m->fake.volume.fstype), "apfs");
	snprintf(m->fake.volume.from, sizeof(m->fake.volume.from), "/dev/disk1s1");
	snprintf(m->fake.volume.on, sizeof(m->fake.volume.on), "/");
	m->fake.clock_ms = 1000000;
	if (fx_load_backend(&m->fx, "macos", macos_LTX_reimage_plugin_entry(), conf, &err) < 0) {
		fprintf(stderr, "load: %s\n", err.msg);
		CU_FAIL_FATAL("the macos backend does not start");
	}
	m->mc = m->fx.ctx;
	m->mc->sys = &m->fake.sys;
}

void mfx_stop(struct macos_fixture *m)
{
	fx_unload(&m->fx);
}

void fake_answer(struct fake_sys *f, const char *match, int status, const char *output)
{
	CU_ASSERT_FATAL(f->n_answers < FAKE_MAX);
	f->answers[f->n_answers++] = (struct fake_answer){ match, status, output, 0 };
}

struct fake_proc *fake_proc(struct fake_sys *f, pid_t pid, pid_t ppid, uid_t uid,
			    const char *name)
{
	CU_ASSERT_FATAL(f->n_procs < FAKE_MAX);
	struct fake_proc *p = &f->procs[f->n_procs++];
	memset(p, 0, sizeof(*p));
	p->p.pid = pid;
	p->p.ppid = ppid;
	p->p.uid = uid;
	snprintf(p->p.name, sizeof(p->p.name), "%s", name);
	p->alive = 1;
	return p;
}

void fake_self(struct fake_sys *f)
{
	fake_proc(f, 0, 0, 0, "kernel_task");
	fake_proc(f, 1, 0, 0, "launchd");
	fake_proc(f, getppid(), 1, 501, "Terminal");
	fake_proc(f, getpid(), getppid(), 0, "reimage");
}

int fake_calls_are(const struct fake_sys *f, const char *want)
{
	if (strcmp(f->calls, want) == 0)
		return 1;
	fprintf(stderr, "calls:\n%s-- expected:\n%s--\n", f->calls, want);
	return 0;
}
