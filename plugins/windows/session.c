/*
 * session.c -- QUIESCE on Windows: log every user session off (WTS), then
 * stop every process the swap does not need.  Kept: the kernel's and the
 * session manager's own processes and the service host (the critical
 * list below), the processes of the services named in `keep_services`,
 * the executables named in `keep_processes`, and the agent with its
 * ancestors.  Windows has no polite signal for an arbitrary process, so
 * the rest is terminated, each waited for up to grace_seconds.
 */
#include "winbackend.h"

#include <errno.h>
#include <stdlib.h>
#include <wchar.h>
#include <wtsapi32.h>

/* Processes Windows cannot run without: stopping one halts the machine
 * (csrss, wininit, smss, services, lsass are critical processes) or
 * every service with it (svchost). */
static const wchar_t *const critical[] = {
	L"System", L"Registry", L"Secure System", L"Memory Compression", L"smss.exe",
	L"csrss.exe", L"wininit.exe", L"winlogon.exe", L"services.exe", L"lsass.exe",
	L"lsaiso.exe", L"svchost.exe", L"fontdrvhost.exe", L"dwm.exe", NULL
};

int win_logout(void *ctx, const char *root, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	struct win_session *s = NULL;
	size_t n = 0, ended = 0;
	DWORD e;
	int r = 0;

	(void)root;
	if ((e = c->sys->sessions(c->sys_arg, &s, &n)) != ERROR_SUCCESS)
		return win_error(c->host, err, e, "list the logon sessions");
	for (size_t i = 0; i < n && r == 0; i++) {
		/* Session 0 holds the services; a listener is no one's session. */
		if (s[i].id == 0 || s[i].state == WTSListen || s[i].state == WTSDown ||
		    s[i].state == WTSInit)
			continue;
		if ((e = c->sys->logoff(c->sys_arg, s[i].id)) != ERROR_SUCCESS)
			r = win_error(c->host, err, e, "log session %lu off", (unsigned long)s[i].id);
		else
			ended++;
	}
	free(s);
	if (r == 0 && ended)
		c->host->log(REIMAGE_LOG_INFO, "windows: %lu session(s) logged off", (unsigned long)ended);
	return r;
}

static int name_in(const wchar_t *name, const wchar_t *const *list)
{
	for (; list && *list; list++)
		if (CompareStringOrdinal(name, -1, *list, -1, TRUE) == CSTR_EQUAL)
			return 1;
	return 0;
}

static int name_in_utf8(const wchar_t *name, const char *const *list)
{
	int hit = 0;
	for (; list && *list && !hit; list++) {
		wchar_t *w;
		if (win_utf16(*list, &w, &(struct reimage_error){ 0 }) < 0)
			continue;
		hit = CompareStringOrdinal(name, -1, w, -1, TRUE) == CSTR_EQUAL;
		free(w);
	}
	return hit;
}

static const struct win_proc *find(const struct win_proc *p, size_t n, DWORD pid)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].pid == pid)
			return &p[i];
	return NULL;
}

/* The agent and its ancestors; at most n steps up, as stale parent ids
 * may form a loop. */
static int is_agent_line(const struct win_proc *p, size_t n, DWORD agent, DWORD pid)
{
	DWORD at = agent;
	for (size_t steps = 0; steps <= n; steps++) {
		const struct win_proc *q = find(p, n, at);
		if (at == pid)
			return 1;
		if (!q || q->parent == at)
			return 0;
		at = q->parent;
	}
	return 0;
}

/* The pids of the services named in keep_services. */
static int service_pids(struct win_ctx *c, DWORD **ret, size_t *ret_n, struct reimage_error *err)
{
	size_t n = 0, cap = 0;
	DWORD *v = NULL;
	for (const char *const *s = c->keep_services; s && *s; s++, cap++)
		;
	if (cap && !(v = calloc(cap, sizeof(*v))))
		return win_error(c->host, err, ERROR_NOT_ENOUGH_MEMORY, "keep_services");
	for (const char *const *s = c->keep_services; s && *s; s++) {
		wchar_t *w;
		DWORD pid = 0, e;
		int r;
		if ((r = win_utf16(*s, &w, err)) < 0) {
			free(v);
			return r;
		}
		e = c->sys->service_pid(c->sys_arg, w, &pid);
		free(w);
		/* A configured service that is not installed is a mistake worth
		 * stopping for; one that is not running keeps nothing. */
		if (e != ERROR_SUCCESS) {
			free(v);
			return win_error(c->host, err, e, "keep_services: service '%s'", *s);
		}
		if (pid)
			v[n++] = pid;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int win_quiesce(void *ctx, const char *root, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	struct win_proc *p = NULL;
	DWORD *keep = NULL, e;
	size_t n = 0, n_keep = 0, stopped = 0;
	int r;

	(void)root;
	if ((r = service_pids(c, &keep, &n_keep, err)) < 0)
		return r;
	if ((e = c->sys->processes(c->sys_arg, &p, &n)) != ERROR_SUCCESS) {
		free(keep);
		return win_error(c->host, err, e, "list the processes");
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		int kept = p[i].pid <= 4 || name_in(p[i].name, critical) ||
			   name_in_utf8(p[i].name, c->keep_processes) || is_agent_line(p, n, c->agent_pid, p[i].pid);
		for (size_t k = 0; k < n_keep && !kept; k++)
			kept = keep[k] == p[i].pid;
		if (kept)
			continue;
		e = c->sys->terminate(c->sys_arg, p[i].pid, (DWORD)c->grace_ms);
		/* A process that ended meanwhile is what we wanted. */
		if (e == ERROR_SUCCESS || e == ERROR_INVALID_PARAMETER)
			stopped++;
		else {
			char *name = NULL;
			win_utf8(p[i].name, &name, &(struct reimage_error){ 0 });
			r = win_error(c->host, err, e, "stop process %lu (%s)", (unsigned long)p[i].pid,
				      name ? name : "?");
			free(name);
		}
	}
	free(p);
	free(keep);
	if (r == 0)
		c->host->log(REIMAGE_LOG_INFO, "windows: %lu process(es) stopped", (unsigned long)stopped);
	return r;
}
