/*
 * decompress.c -- see decompress.h.  The thread fills blocks in a ring
 * while the caller's reader takes them in order; each block remembers how
 * far into the stream its bytes came from, so that progress, reported by
 * the caller, counts the image's bytes as before.
 */
#define _GNU_SOURCE
#include "decompress.h"
#include "error.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Eight blocks of 128 KiB: the decoder runs ahead of a large file's
 * writes, and 1 MiB is small beside the agent's 32 MiB while staging. */
#define SLOTS 8
#define BLOCK (128 * 1024)

struct block {
	size_t len;
	uint64_t upto;  /* the stream's offset once the block was decoded */
	unsigned char data[BLOCK];
};

struct decompress {
	struct stream *s;
	struct archive *raw;   /* the thread's reader: filters, raw format */
	pthread_t thread;
	int running;           /* a thread to join */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t head, count;    /* filled blocks, from slot[head] */
	int held;              /* the reader holds slot[head] */
	int done;              /* the thread ended: the data's end, or a failure */
	int stop;              /* the caller asks the thread to end */
	int decode_errno;      /* the thread's failure, once done */
	char decode_error[512];
	struct reimage_error err;  /* a stop on request, seen by the reader */
	struct block slot[SLOTS];
};

static void thread_end(struct decompress *d, struct archive *failed)
{
	pthread_mutex_lock(&d->mu);
	if (failed) {
		d->decode_errno = archive_errno(failed) > 0 ? archive_errno(failed) : EIO;
		snprintf(d->decode_error, sizeof(d->decode_error), "%s",
			 archive_error_string(failed) ? archive_error_string(failed)
						      : "undecodable data");
	}
	d->done = 1;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static void *decode(void *arg)
{
	struct decompress *d = arg;
	struct archive_entry *e;
	int st = stream_archive_open(d->raw, d->s);

	if (st == ARCHIVE_OK)
		st = archive_read_next_header(d->raw, &e);
	if (st < ARCHIVE_WARN || st == ARCHIVE_EOF) {
		/* The end of an empty stream is the reader's to judge. */
		thread_end(d, st == ARCHIVE_EOF ? NULL : d->raw);
		return NULL;
	}
	for (;;) {
		size_t i;
		int stop;
		la_ssize_t n;

		pthread_mutex_lock(&d->mu);
		while (d->count == SLOTS && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		stop = d->stop;
		i = (d->head + d->count) % SLOTS;  /* free: the reader is behind */
		pthread_mutex_unlock(&d->mu);
		if (stop)
			break;
		if ((n = archive_read_data(d->raw, d->slot[i].data, BLOCK)) < 0) {
			thread_end(d, d->raw);
			return NULL;
		}
		if (n == 0)
			break;
		d->slot[i].len = (size_t)n;
		d->slot[i].upto = stream_offset(d->s);
		pthread_mutex_lock(&d->mu);
		d->count++;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
	}
	thread_end(d, NULL);
	return NULL;
}

int decompress_start(struct stream *s, struct decompress **ret, struct reimage_error *err)
{
	struct decompress *d = calloc(1, sizeof(*d));
	sigset_t all, old;
	int r;

	if (!d || !(d->raw = archive_read_new())) {
		free(d);
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	d->s = s;
	archive_read_support_filter_all(d->raw);
	archive_read_support_format_raw(d->raw);
	archive_read_support_format_empty(d->raw);
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	stream_progress_elsewhere(s, 1);
	/* Signals stay with the thread that waits for them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&d->thread, NULL, decode, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		stream_progress_elsewhere(s, 0);
		decompress_free(d);
		err_set(err, -r, REIMAGE_EC_IO, "start the decompression thread: %s", strerror(r));
		return -r;
	}
	d->running = 1;
	*ret = d;
	return 0;
}

/* The reader's callback: release the block it had, wait for the next. */
static la_ssize_t read_block(struct archive *a, void *client, const void **ret_buf)
{
	struct decompress *d = client;
	struct block *b;

	pthread_mutex_lock(&d->mu);
	if (d->held) {
		d->held = 0;
		d->head = (d->head + 1) % SLOTS;
		d->count--;
		pthread_cond_broadcast(&d->cv);
	}
	while (!d->count && !d->done)
		pthread_cond_wait(&d->cv, &d->mu);
	if (!d->count) {
		pthread_mutex_unlock(&d->mu);
		if (!d->decode_errno)
			return 0;
		archive_set_error(a, d->decode_errno, "%s", d->decode_error);
		return -1;
	}
	b = &d->slot[d->head];
	d->held = 1;
	pthread_mutex_unlock(&d->mu);
	if (stream_progress(d->s, b->upto, &d->err) < 0) {
		archive_set_error(a, ECANCELED, "%s", d->err.msg);
		return -1;
	}
	*ret_buf = b->data;
	return (la_ssize_t)b->len;
}

int decompress_archive_open(struct archive *a, struct decompress *d)
{
	return archive_read_open(a, d, NULL, read_block, NULL);
}

const struct reimage_error *decompress_stop(struct decompress *d)
{
	if (d->running) {
		pthread_mutex_lock(&d->mu);
		d->stop = 1;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		pthread_join(d->thread, NULL);
		d->running = 0;
		stream_progress_elsewhere(d->s, 0);
	}
	if (stream_error(d->s))
		return stream_error(d->s);
	return d->err.code ? &d->err : NULL;
}

void decompress_free(struct decompress *d)
{
	if (!d)
		return;
	decompress_stop(d);
	archive_read_free(d->raw);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	free(d);
}
