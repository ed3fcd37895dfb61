/*
 * servers.h -- the servers the http tests talk to, all started by the
 * test on 127.0.0.1 with their files in the case's scratch directory:
 * a real nginx (static files, WebDAV PUT/DELETE under /dav/, files sent at
 * 256 KiB/s under /slow/, a failing location, TLS
 * with a CA of the test's own), and a tiny forked server that misbehaves
 * on purpose (cuts a body short, ignores Range, never answers, stalls).
 */
#ifndef REIMAGE_TEST_HTTP_SERVERS_H
#define REIMAGE_TEST_HTTP_SERVERS_H

#include <stddef.h>
#include <sys/types.h>

struct nginx {
	pid_t pid;
	int port;      /* plain http */
	int tls_port;  /* https, 0 without TLS */
};

/* Files the TLS setup makes in t_path("tls"). */
#define TLS_FILE(name) t_path("tls/%s", name)

/* Make a CA, a server certificate for 127.0.0.1 and a client
 * certificate with openssl (skips the case without openssl). */
void tls_make_certs(void);
/* "sha256//BASE64" of a certificate's public key (malloc'ed). */
char *tls_pin_of(const char *cert);

/* Start nginx serving t_path("www") (created), with TLS if tls. */
void nginx_start(struct nginx *n, int tls);

enum tiny_mode {
	TINY_CUT_ONCE,   /* honours Range (and If-Range); cuts the first answer
			  * halfway; ETag "v1" */
	TINY_NO_RANGE,   /* always 200 with the whole body */
	TINY_NO_LENGTH,  /* 200, no Content-Length, the body then close */
	TINY_SILENT,     /* accepts, reads the request, never answers */
	TINY_CUT_NO_VALIDATOR,  /* TINY_CUT_ONCE without an ETag or Last-Modified */
	/* The first answer is body, ETag "v1", cut halfway; every later one
	 * is the second body, ETag "v2": with If-Range honoured (a 200 of the
	 * whole new body unless it names "v2")... */
	TINY_CHANGED,
	/* ...or ignored (a 206 of the new body from the Range asked). */
	TINY_CHANGED_IGNORES_IF_RANGE,
	TINY_STALL,      /* 200 with the length, half the body, then nothing */
};

/* Start the tiny server on body; it appends each request's Range
 * header ("none" if absent) as a line to t_path("ranges.log"), and its
 * If-Range header likewise to t_path("if-range.log"). */
pid_t tiny_start(enum tiny_mode mode, const unsigned char *body, size_t len, int *ret_port);
/* The same, with the body the TINY_CHANGED modes switch to. */
pid_t tiny_start_changing(enum tiny_mode mode, const unsigned char *body, size_t len,
			  const unsigned char *body2, size_t len2, int *ret_port);

/* Start argv (searched in PATH) as a server bound to the test, its
 * output appended to log, and wait until it accepts on port (bounded);
 * fails the case, showing the log, if it does not. */
pid_t server_spawn(char *const argv[], int port, const char *log);
/* Stop a server started here (SIGTERM, then wait for it). */
void server_stop(pid_t pid);

#endif
