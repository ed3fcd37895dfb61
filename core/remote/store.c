/*
 * store.c -- see store.h.  The core stays protocol-neutral: every access
 * goes through the transport registered for the URL's scheme.
 */
#define _GNU_SOURCE
#include "store.h"
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int store_url(char *buf, size_t len, const char *base, const char *fmt, ...)
{
	size_t bl = strlen(base);
	va_list ap;
	int n;

	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	n = snprintf(buf, len, "%.*s/", (int)bl, base);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 || (size_t)m >= len - (size_t)n ? -ENAMETOOLONG : 0;
}

/* The started transport for url; has: whether its table has the hook. */
static int transport(struct registry *reg, const struct agent_conf *ac, const char *url,
		     const char *what, int (*has)(const struct reimage_transport_ops *t),
		     const struct reimage_transport_ops **ret_ops, void **ret_ctx,
		     struct reimage_error *err)
{
	struct plugin *p;
	int r;

	if ((r = registry_transport_for(reg, url, &p, err)) < 0)
		return r;
	if (!p->started) {
		const config_setting_t *groups[2];
		size_t n = config_plugin_groups(NULL, ac, p->name, groups);
		if ((r = plugin_configure_groups(p, groups, n, err)) < 0 ||
		    (r = plugin_start(p, err)) < 0)
			return r;
	}
	if (!has(p->transport)) {
		err_set(err, -ENOTSUP, REIMAGE_EC_UNSUPPORTED, "%s: transport %s cannot %s documents",
			url, p->name, what);
		return -ENOTSUP;
	}
	*ret_ops = p->transport;
	*ret_ctx = p->ctx;
	return 0;
}

static int has_fetch(const struct reimage_transport_ops *t)
{
	return OPS_HAS(t, struct reimage_transport_ops, fetch);
}

static int has_put(const struct reimage_transport_ops *t)
{
	return OPS_HAS(t, struct reimage_transport_ops, put);
}

static int has_remove(const struct reimage_transport_ops *t)
{
	return OPS_HAS(t, struct reimage_transport_ops, remove);
}

static int has_fetch_many(const struct reimage_transport_ops *t)
{
	return OPS_HAS(t, struct reimage_transport_ops, fetch_many);
}

int store_fetch(struct registry *reg, const struct agent_conf *ac, const char *url, void *buf,
		size_t cap, size_t *ret_len, char etag[REIMAGE_ETAG_MAX], int64_t *ret_date,
		struct reimage_error *err)
{
	const struct reimage_transport_ops *t;
	void *ctx;
	int r = transport(reg, ac, url, "fetch", has_fetch, &t, &ctx, err);
	return r < 0 ? r : t->fetch(ctx, url, buf, cap, ret_len, etag, ret_date, err);
}

int store_put(struct registry *reg, const struct agent_conf *ac, const char *url,
	      const void *data, size_t len, const char *content_type, struct reimage_error *err)
{
	const struct reimage_transport_ops *t;
	void *ctx;
	int r = transport(reg, ac, url, "write", has_put, &t, &ctx, err);
	return r < 0 ? r : t->put(ctx, url, data, len, content_type, err);
}

int store_remove(struct registry *reg, const struct agent_conf *ac, const char *url,
		 struct reimage_error *err)
{
	const struct reimage_transport_ops *t;
	void *ctx;
	int r = transport(reg, ac, url, "remove", has_remove, &t, &ctx, err);
	return r < 0 ? r : t->remove(ctx, url, err);
}

int store_get(struct registry *reg, const struct agent_conf *ac, const char *url, size_t cap,
	      char **ret_data, size_t *ret_len, struct reimage_error *err)
{
	char etag[REIMAGE_ETAG_MAX] = "";
	char *buf = malloc(cap + 1);
	size_t len = 0;
	int r;

	if (!buf) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = store_fetch(reg, ac, url, buf, cap, &len, etag, NULL, err)) < 0) {
		free(buf);
		return err->cls == REIMAGE_EC_NOTFOUND ? -ENOENT : r;
	}
	buf[len] = '\0';
	*ret_data = buf;
	*ret_len = len;
	return 0;
}

int store_get_many(struct registry *reg, const struct agent_conf *ac, const char *const *urls,
		   size_t n, size_t cap, store_done_fn done, void *arg, struct reimage_error *err)
{
	const struct reimage_transport_ops *t, *first = NULL;
	void *ctx, *first_ctx = NULL;
	char *buf;
	int r;

	/* One batch for one transport: the documents of one store. */
	for (size_t i = 0; i < n; i++) {
		if ((r = transport(reg, ac, urls[i], "fetch", has_fetch, &t, &ctx, err)) < 0)
			return r;
		if (i > 0 && (t != first || ctx != first_ctx))
			break;
		first = t;
		first_ctx = ctx;
		if (i == n - 1 && has_fetch_many(t))
			return t->fetch_many(ctx, urls, n, cap, STORE_PARALLEL, done, arg, err);
	}
	/* A transport without it (a directory, SMB): one after the other. */
	if (!(buf = malloc(cap))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct reimage_error e = { 0 };
		char etag[REIMAGE_ETAG_MAX] = "";
		size_t len = 0;
		r = store_fetch(reg, ac, urls[i], buf, cap, &len, etag, NULL, &e);
		done(arg, i, r, buf, r == 0 ? len : 0, &e);
	}
	free(buf);
	return 0;
}
