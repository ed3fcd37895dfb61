/*
 * transport_lock.c -- see transport_lock.h.
 *
 * Transports rely on the promise: libcurl's shared connection cache
 * (transport-http) and a libsmbclient context (transport-smb) have no
 * locks of their own.  Yet one transport serves the core's threads at
 * once: an agent's progress report goes out from the writing thread
 * while the decompressing thread reads the image, both over https or
 * smb.  The lock is taken around each call, not for a stream's life: a
 * report waits for one read of the image, not for the whole image.  It
 * is recursive: a hook that calls the core back (fetch_many's done())
 * may call the transport again from the same thread, as before.
 */
#define _GNU_SOURCE
#include "transport_lock.h"
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* A stream of the plugin's, with the plugin it came from. */
struct locked_stream {
	struct plugin *p;
	struct reimage_stream *own;
};

static const struct reimage_transport_ops *own_ops(const struct plugin *p)
{
	return p->desc->transport;
}

/* The plugin's stream wrapped, or closed on -ENOMEM (the lock held). */
static int wrap(struct plugin *p, int r, struct reimage_stream *own,
		struct reimage_stream **ret_stream, struct reimage_error *err)
{
	struct locked_stream *ls;

	if (r < 0)
		return r;
	if (!(ls = malloc(sizeof(*ls)))) {
		own_ops(p)->close(own);
		registry_host.error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	ls->p = p;
	ls->own = own;
	*ret_stream = (struct reimage_stream *)ls;
	return 0;
}

static int locked_open(void *ctx, const char *url, uint64_t offset,
		       struct reimage_stream **ret_stream, uint64_t *ret_size,
		       struct reimage_error *err)
{
	struct plugin *p = ctx;
	struct reimage_stream *own = NULL;
	int r;

	pthread_mutex_lock(&p->call_lock);
	r = own_ops(p)->open(p->own_ctx, url, offset, &own, ret_size, err);
	r = wrap(p, r, own, ret_stream, err);
	pthread_mutex_unlock(&p->call_lock);
	return r;
}

static int locked_open_ex(void *ctx, const char *url, uint64_t offset,
			  struct reimage_open_opts *opts, struct reimage_stream **ret_stream,
			  uint64_t *ret_size, struct reimage_error *err)
{
	struct plugin *p = ctx;
	struct reimage_stream *own = NULL;
	int r;

	pthread_mutex_lock(&p->call_lock);
	r = own_ops(p)->open_ex(p->own_ctx, url, offset, opts, &own, ret_size, err);
	r = wrap(p, r, own, ret_stream, err);
	pthread_mutex_unlock(&p->call_lock);
	return r;
}

static int locked_open_range(void *ctx, const char *url, uint64_t offset, uint64_t length,
			     struct reimage_stream **ret_stream, uint64_t *ret_size,
			     struct reimage_error *err)
{
	struct plugin *p = ctx;
	struct reimage_stream *own = NULL;
	int r;

	pthread_mutex_lock(&p->call_lock);
	r = own_ops(p)->open_range(p->own_ctx, url, offset, length, &own, ret_size, err);
	r = wrap(p, r, own, ret_stream, err);
	pthread_mutex_unlock(&p->call_lock);
	return r;
}

static ssize_t locked_read(struct reimage_stream *stream, void *buf, size_t len,
			   struct reimage_error *err)
{
	struct locked_stream *ls = (struct locked_stream *)stream;
	ssize_t n;

	pthread_mutex_lock(&ls->p->call_lock);
	n = own_ops(ls->p)->read(ls->own, buf, len, err);
	pthread_mutex_unlock(&ls->p->call_lock);
	return n;
}

static void locked_close(struct reimage_stream *stream)
{
	struct locked_stream *ls = (struct locked_stream *)stream;

	pthread_mutex_lock(&ls->p->call_lock);
	own_ops(ls->p)->close(ls->own);
	pthread_mutex_unlock(&ls->p->call_lock);
	free(ls);
}

static int locked_fetch(void *ctx, const char *url, void *buf, size_t cap, size_t *ret_len,
			char etag[REIMAGE_ETAG_MAX], int64_t *ret_date, struct reimage_error *err)
{
	struct plugin *p = ctx;
	int r;

	pthread_mutex_lock(&p->call_lock);
	r = own_ops(p)->fetch(p->own_ctx, url, buf, cap, ret_len, etag, ret_date, err);
	pthread_mutex_unlock(&p->call_lock);
	return r;
}

static int locked_put(void *ctx, const char *url, const void *data, size_t len,
		      const char *content_type, struct reimage_error *err)
{
	struct plugin *p = ctx;
	int r;

	pthread_mutex_lock(&p->call_lock);
	r = own_ops(p)->put(p->own_ctx, url, data, len, content_type, err);
	pthread_mutex_unlock(&p->call_lock);
	return r;
}

static int locked_remove(void *ctx, const char *url, struct reimage_error *err)
{
	struct plugin *p = ctx;
	int r;

	pthread_mutex_lock(&p->call_lock);
	r = own_ops(p)->remove(p->own_ctx, url, err);
	pthread_mutex_unlock(&p->call_lock);
	return r;
}

static int locked_fetch_many(void *ctx, const char *const *urls, size_t n, size_t cap,
			     unsigned parallel,
			     void (*done)(void *arg, size_t i, int r, const void *buf, size_t len,
					  const struct reimage_error *err),
			     void *arg, struct reimage_error *err)
{
	struct plugin *p = ctx;
	int r;

	pthread_mutex_lock(&p->call_lock);
	r = own_ops(p)->fetch_many(p->own_ctx, urls, n, cap, parallel, done, arg, err);
	pthread_mutex_unlock(&p->call_lock);
	return r;
}

int transport_lock_start(struct plugin *p)
{
	const struct reimage_transport_ops *own = own_ops(p);
	struct reimage_transport_ops *t = &p->locked;
	pthread_mutexattr_t attr;

	if (pthread_mutexattr_init(&attr) != 0)
		return -ENOMEM;
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	if (pthread_mutex_init(&p->call_lock, &attr) != 0) {
		pthread_mutexattr_destroy(&attr);
		return -ENOMEM;
	}
	pthread_mutexattr_destroy(&attr);
	*t = (struct reimage_transport_ops){
		.abi_version = own->abi_version, .struct_size = sizeof(*t), .name = own->name,
		.caps = own->caps, .schemes = own->schemes, .options = own->options,
		.open = own->open ? locked_open : NULL,
		.read = locked_read,
		.close = locked_close,
		.fetch = own->fetch ? locked_fetch : NULL,
		.put = own->put ? locked_put : NULL,
		.remove = own->remove ? locked_remove : NULL,
#define OPTIONAL(member, fn) \
	.member = OPS_HAS(own, struct reimage_transport_ops, member) ? fn : NULL
		OPTIONAL(open_ex, locked_open_ex),
		OPTIONAL(open_range, locked_open_range),
		OPTIONAL(fetch_many, locked_fetch_many),
#undef OPTIONAL
	};
	p->transport = t;
	p->ctx = p;
	return 0;
}

void transport_lock_stop(struct plugin *p)
{
	pthread_mutex_destroy(&p->call_lock);
	p->transport = own_ops(p);
	p->ctx = p->own_ctx;
}
