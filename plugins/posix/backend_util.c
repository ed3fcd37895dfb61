/*
 * backend_util.c -- see backend_util.h.
 */
#include "backend_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ENOTSUP and EOPNOTSUPP are one value on Linux, two on macOS. */
static enum reimage_errclass class_of_errno(int e)
{
	if (e == ENOENT || e == ESRCH)
		return REIMAGE_EC_NOTFOUND;
	if (e == EACCES || e == EPERM || e == EROFS)
		return REIMAGE_EC_ACCESS;
	if (e == ENOSYS || e == ENOTTY || e == EOPNOTSUPP || e == ENOTSUP)
		return REIMAGE_EC_UNSUPPORTED;
	return REIMAGE_EC_IO;
}

int backend_vfail(const struct reimage_host *host, struct reimage_error *err, int e,
		  const char *fmt, va_list ap)
{
	char what[REIMAGE_ERRMSG_MAX];

	vsnprintf(what, sizeof(what), fmt, ap);
	host->error(err, -e, class_of_errno(e), "%s: %s", what, strerror(e));
	return -e;
}

void backend_free_names(char **list)
{
	for (char **k = list; k && *k; k++)
		free(*k);
	free(list);
}

int backend_copy_names(const struct reimage_host *host, const struct reimage_optval *v,
		       const char *name, char ***ret, struct reimage_error *err)
{
	char **list = calloc(v->n + 1, sizeof(*list));

	for (size_t i = 0; list && i < v->n; i++) {
		if (!v->list[i][0]) {
			host->error(err, -EINVAL, REIMAGE_EC_CONFIG, "%s:%d: %s: empty name",
				    v->file ? v->file : "(default)", v->line, name);
			backend_free_names(list);
			return -EINVAL;
		}
		if (!(list[i] = strdup(v->list[i]))) {
			backend_free_names(list);
			list = NULL;
		}
	}
	if (!list) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "%s: out of memory", name);
		return -ENOMEM;
	}
	*ret = list;
	return 0;
}
