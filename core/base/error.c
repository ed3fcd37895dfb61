/*
 * error.c -- recording and prefixing errors (see error.h).  Also the
 * implementation of host->error() handed to plugins, so the core and the
 * plugins share one behaviour: the first error recorded is kept.
 */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void err_vset(struct reimage_error *err, int code, enum reimage_errclass cls,
		     const char *suffix, const char *fmt, va_list ap)
{
	if (!err || err->code != 0)
		return;
	err->code = code < 0 ? code : -EIO;
	err->cls = cls;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (suffix) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", suffix);
	}
}

void err_set(struct reimage_error *err, int code, enum reimage_errclass cls,
	     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vset(err, code, cls, NULL, fmt, ap);
	va_end(ap);
}

void err_sys(struct reimage_error *err, int code, const char *fmt, ...)
{
	enum reimage_errclass cls;
	va_list ap;

	switch (-code) {
	case ENOENT: cls = REIMAGE_EC_NOTFOUND; break;
	case EACCES: case EPERM: case EROFS: cls = REIMAGE_EC_ACCESS; break;
	case ENOTSUP: cls = REIMAGE_EC_UNSUPPORTED; break;
	default: cls = REIMAGE_EC_IO; break;
	}
	va_start(ap, fmt);
	err_vset(err, code, cls, strerror(-code), fmt, ap);
	va_end(ap);
}

void err_prefix(struct reimage_error *err, const char *fmt, ...)
{
	char prefix[256], old[REIMAGE_ERRMSG_MAX];
	va_list ap;

	if (!err || err->code == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* A layer that says again what the layer below said ("open X: open
	 * X: ...") adds nothing. */
	size_t n = strlen(prefix);
	if (strncmp(err->msg, prefix, n) == 0 && err->msg[n] == ':')
		return;
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
}

void err_prefix_about(struct reimage_error *err, const char *verb, const char *subject)
{
	if (err && err->code && strstr(err->msg, subject))
		err_prefix(err, "%s", verb);
	else
		err_prefix(err, "%s %s", verb, subject);
}

void err_clear(struct reimage_error *err)
{
	memset(err, 0, sizeof(*err));
}

const char *err_class_name(enum reimage_errclass cls)
{
	static const char *const names[] = {
		[REIMAGE_EC_NONE] = "none",        [REIMAGE_EC_NOTFOUND] = "not found",
		[REIMAGE_EC_ACCESS] = "access",    [REIMAGE_EC_NETWORK] = "network",
		[REIMAGE_EC_TLS] = "tls",          [REIMAGE_EC_RETRYABLE] = "retryable",
		[REIMAGE_EC_CONFIG] = "config",    [REIMAGE_EC_IO] = "io",
		[REIMAGE_EC_UNSUPPORTED] = "unsupported",
		[REIMAGE_EC_INTEGRITY] = "integrity", [REIMAGE_EC_STATE] = "state",
	};
	if ((unsigned)cls < sizeof(names) / sizeof(names[0]))
		return names[cls];
	return "unknown";
}
