/*
 * move.c -- SWAP on Windows, where an open file (and a directory holding
 * one) cannot be renamed.  A move is tried at once with MoveFileExW; an
 * entry in use (sharing or lock violation, access denied) is registered
 * with MOVEFILE_DELAY_UNTIL_REBOOT, which appends the pair to the session
 * manager's PendingFileRenameOperations: smss performs the pairs in that
 * order at the next boot, before any program runs.  To keep the order
 * right (retire the old entry before the new one moves into its place),
 * every later move that touches a path of a pending pair is deferred too:
 * the pending list itself is read each time, so the rule holds across a
 * crash and a `reimage recover` in another process.
 */
#include "winbackend.h"

#include <errno.h>
#include <stdlib.h>
#include <wchar.h>

/* The pairs of the pending list: sources at even, destinations at odd
 * indexes (a destination may start with '!' = replace existing; empty =
 * delete).  *ret points into multi. */
static size_t pending_pairs(wchar_t *multi, size_t len, const wchar_t ***ret)
{
	size_t n = 0, cap = 0;
	const wchar_t **v = NULL;
	for (size_t i = 0; i < len && multi[i];) {
		const wchar_t *src = &multi[i];
		i += wcslen(src) + 1;
		const wchar_t *dst = i < len ? &multi[i] : L"";
		i += wcslen(dst) + 1;
		if (n + 2 > cap) {
			const wchar_t **nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*nv));
			if (!nv) {
				free(v);
				*ret = NULL;
				return 0;
			}
			v = nv;
		}
		v[n++] = src;
		v[n++] = dst[0] == L'!' ? dst + 1 : dst;
	}
	*ret = v;
	return n / 2;
}

/* 1 if from or to meets a path of a pending pair: the move must wait
 * for the boot behind it. */
static int behind_pending(struct win_ctx *c, const wchar_t *from, const wchar_t *to,
			  struct reimage_error *err)
{
	wchar_t *multi = NULL;
	const wchar_t **v;
	size_t len = 0, n;
	DWORD e = c->sys->pending_read(c->sys_arg, &multi, &len);
	int hit = 0;

	if (e != ERROR_SUCCESS)
		return win_error(c->host, err, e, "read PendingFileRenameOperations");
	n = pending_pairs(multi, len, &v);
	for (size_t i = 0; i < 2 * n && !hit; i++)
		hit = v[i][0] && (win_path_overlaps(from, v[i]) || win_path_overlaps(to, v[i]));
	free(v);
	free(multi);
	return hit;
}

static int in_use(DWORD e)
{
	return e == ERROR_SHARING_VIOLATION || e == ERROR_LOCK_VIOLATION || e == ERROR_ACCESS_DENIED;
}

int win_move(void *ctx, const char *from, const char *to, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t *wf = NULL, *wt = NULL;
	DWORD e = ERROR_SUCCESS;
	int r;

	if ((r = win_path(from, &wf, err)) < 0 || (r = win_path(to, &wt, err)) < 0)
		goto out;
	if ((r = behind_pending(c, wf, wt, err)) < 0)
		goto out;
	if (!r) {
		e = c->sys->move_file(c->sys_arg, wf, wt, 0);
		if (e == ERROR_SUCCESS || !in_use(e)) {
			r = e == ERROR_SUCCESS ? 0 : win_error(c->host, err, e, "move %s to %s", from, to);
			goto out;
		}
	}
	/* In use, or behind a move that is: the session manager does it. */
	e = c->sys->move_file(c->sys_arg, wf, wt, MOVEFILE_DELAY_UNTIL_REBOOT);
	r = e == ERROR_SUCCESS ? 1
		: win_error(c->host, err, e, "defer the move of %s to %s to the next boot", from, to);
out:
	free(wf);
	free(wt);
	return r;
}

int win_deferred_cancel(void *ctx, const char *dir, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t *multi = NULL, *wdir = NULL, *kept = NULL;
	const wchar_t **v = NULL;
	size_t len = 0, n, k = 0, dropped = 0;
	DWORD e;
	int r;

	if ((r = win_path(dir, &wdir, err)) < 0)
		return r;
	if ((e = c->sys->pending_read(c->sys_arg, &multi, &len)) != ERROR_SUCCESS) {
		r = win_error(c->host, err, e, "read PendingFileRenameOperations");
		goto out;
	}
	n = pending_pairs(multi, len, &v);
	if (!(kept = malloc((len + 1) * sizeof(*kept))) || (len && !v)) {
		r = win_error(c->host, err, ERROR_NOT_ENOUGH_MEMORY, "cancel deferred moves");
		goto out;
	}
	/* Keep the other programs' pairs as they were written (with '!'). */
	for (size_t i = 0, at = 0; i < n; i++) {
		const wchar_t *src = &multi[at];
		const wchar_t *dst_raw = src + wcslen(src) + 1;
		at += wcslen(src) + 1 + wcslen(dst_raw) + 1;
		if (win_path_overlaps(v[2 * i], wdir) ||
		    (v[2 * i + 1][0] && win_path_overlaps(v[2 * i + 1], wdir))) {
			dropped++;
			continue;
		}
		wcscpy(kept + k, src);
		k += wcslen(src) + 1;
		wcscpy(kept + k, dst_raw);
		k += wcslen(dst_raw) + 1;
	}
	kept[k++] = L'\0';
	if (dropped && (e = c->sys->pending_write(c->sys_arg, kept, k > 1 ? k : 0)) != ERROR_SUCCESS)
		r = win_error(c->host, err, e, "write PendingFileRenameOperations");
	else if (dropped)
		c->host->log(REIMAGE_LOG_NOTICE, "windows: %lu move(s) deferred to the boot cancelled",
			     (unsigned long)dropped);
out:
	free(v);
	free(kept);
	free(multi);
	free(wdir);
	return r;
}

/* The volume root holding path, e.g. L"C:\\" (GetVolumePathNameW). */
static int volume_of(struct win_ctx *c, const char *path, wchar_t *vol, DWORD cap,
		     struct reimage_error *err)
{
	wchar_t *w;
	DWORD e;
	int r;

	if ((r = win_path(path, &w, err)) < 0)
		return r;
	e = c->sys->volume_path(c->sys_arg, w, vol, cap);
	free(w);
	return e == ERROR_SUCCESS ? 0 : win_error(c->host, err, e, "volume of %s", path);
}

int win_is_mount(void *ctx, const char *path, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t vol[MAX_PATH], *w;
	int r;

	if ((r = volume_of(c, path, vol, MAX_PATH, err)) < 0 || (r = win_path(path, &w, err)) < 0)
		return r;
	/* A directory that is a volume's root is a mount point (a volume
	 * mounted in a folder); a junction is only a link, and moves. */
	r = win_path_overlaps(w, vol) == 2;
	free(w);
	return r;
}

int win_sync(void *ctx, const char *path, struct reimage_error *err)
{
	struct win_ctx *c = ctx;
	wchar_t vol[MAX_PATH];
	DWORD e;
	int r;

	if ((r = volume_of(c, path, vol, MAX_PATH, err)) < 0)
		return r;
	e = c->sys->flush_volume(c->sys_arg, vol);
	return e == ERROR_SUCCESS ? 0 : win_error(c->host, err, e, "flush the volume holding %s", path);
}
