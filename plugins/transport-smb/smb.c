/*
 * smb.c -- transport-smb: smb:// URLs through libsmbclient.
 *
 * Streams images (open at an offset for resume), fetches and puts the
 * small documents of the job store (jobs, status reports) and removes
 * them.  SMB2..SMB3 only.  Everything goes through libsmbclient contexts
 * (smbc_new_context and their function tables), never the global compat
 * API, so the process needs no smb.conf: the machine's is replaced by a
 * built-in configuration unless `smb_conf` names one.
 *
 * One context per server (host:port): libsmbclient caches connections by
 * host name, share and user but not by port, so within one context a URL
 * naming another port of the same host would reuse the wrong connection.
 *
 * Secrets: the password lives in memory this plugin owns (wiped in fini)
 * and reaches libsmbclient only through the authentication callback.
 * URLs carrying credentials are refused, so every message may name the URL.
 *
 * Process-wide effects of libsmbclient a caller should know: creating its
 * first context reads $HOME/.smb/smb.conf or the system smb.conf (we load
 * our own configuration over it right after, and keep one context alive
 * so that this happens once), and it blocks SIGPIPE.
 */
#define _GNU_SOURCE
#include "credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libsmbclient.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* Indexes into the options table below (values[] arrive in this order). */
enum {
	OPT_USER,
	OPT_PASSWORD,
	OPT_DOMAIN,
	OPT_CREDENTIALS_FILE,
	OPT_GUEST,
	OPT_KERBEROS,
	OPT_TIMEOUT,
	OPT_PORT,
	OPT_SMB_CONF,
};

static const struct reimage_option smb_options[] = {
	[OPT_USER] = { "user", REIMAGE_OPT_STRING, NULL, 0, 0, "account to log on with" },
	[OPT_PASSWORD] = { "password", REIMAGE_OPT_STRING, NULL, 0, 0,
			   "password of user (prefer credentials_file)" },
	[OPT_DOMAIN] = { "domain", REIMAGE_OPT_STRING, NULL, 0, 0,
			 "domain (workgroup) of user" },
	[OPT_CREDENTIALS_FILE] = { "credentials_file", REIMAGE_OPT_STRING, NULL, 0, 0,
				   "file of username=, password=, domain= lines (smbclient -A)" },
	[OPT_GUEST] = { "guest", REIMAGE_OPT_BOOL, "false", 0, 0,
			"log on as guest, without credentials" },
	[OPT_KERBEROS] = { "kerberos", REIMAGE_OPT_BOOL, "false", 0, 0,
			   "use the system's Kerberos ticket (krb5.conf, KRB5CCNAME)" },
	[OPT_TIMEOUT] = { "timeout", REIMAGE_OPT_INT, "30", 1, 3600,
			  "seconds to wait for a connection or an answer (a stop request is "
			  "honoured within a second meanwhile)" },
	[OPT_PORT] = { "port", REIMAGE_OPT_INT, "0", 0, 65535,
		       "server port when the URL names none (0: 445, then 139)" },
	[OPT_SMB_CONF] = { "smb_conf", REIMAGE_OPT_STRING, NULL, 0, 0,
			   "smb.conf for libsmbclient (default: built in, the machine's unused)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL },
};

#define SMB_MAX_SERVERS 16
#define SMB_AUTHORITY_MAX 256

/* A libsmbclient context serving one host:port. */
struct smb_server {
	char authority[SMB_AUTHORITY_MAX];  /* "host" or "host:port" as in the URL */
	SMBCCTX *smbc;
};

struct smb_ctx {
	const struct reimage_host *host;
	struct smb_creds creds;
	char *smb_conf;       /* NULL: none */
	int guest, kerberos;
	int timeout_ms;
	uint16_t port;
	/* Made in init() to check the settings; the first server takes it. */
	SMBCCTX *spare;
	struct smb_server servers[SMB_MAX_SERVERS];
	size_t nservers;
	unsigned tmp_serial;  /* makes put()'s temporary names unique */
};

/* libsmbclient waits this long for an answer; the plugin's timeout is
 * made of such ticks, so that a stop request is seen between two. */
#define SMB_TICK_MS 1000

struct reimage_stream {
	struct smb_ctx *ctx;
	SMBCCTX *smbc;
	SMBCFILE *file;
	uint64_t offset;     /* bytes read so far: where a reopened file resumes */
	struct stat st;      /* at open: a reopened file must still be this one */
	char url[];
};

/* ------------------------------------------------------------- errors */

/* libsmbclient reports through errno (mapped from NT status codes). */
static enum reimage_errclass errno_class(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case ENODEV:
	case ENXIO:
		return REIMAGE_EC_NOTFOUND;
	case EACCES:
	case EPERM:
		return REIMAGE_EC_ACCESS;
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case ENETUNREACH:
	case ENETDOWN:
	case EADDRNOTAVAIL:
		return REIMAGE_EC_NETWORK;
	case ETIMEDOUT:
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case EAGAIN:
	case ENOTCONN:
		return REIMAGE_EC_RETRYABLE;
	case EINVAL:
		/* URLs are checked before libsmbclient sees them; what it
		 * still calls EINVAL is mostly a server name it cannot
		 * resolve (its default for unmapped NT status codes). */
		return REIMAGE_EC_NETWORK;
	default:
		return REIMAGE_EC_IO;
	}
}

/* Record "<what> <url>: <reason>" for errno e and return -e. */
static int smb_fail(struct smb_ctx *c, struct reimage_error *err, int e, const char *what,
		    const char *url)
{
	if (e <= 0)
		e = EIO;  /* libsmbclient failed without saying why */
	c->host->error(err, -e, errno_class(e), "%s %s: %s", what, url,
		       e == EINVAL ? "invalid argument (an unknown server name, or a path "
					     "the server refuses)"
				   : strerror(e));
	return -e;
}

static int smb_stopping(const struct smb_ctx *c)
{
	const struct reimage_host *h = c->host;
	return h->struct_size >= offsetof(struct reimage_host, stopping) + sizeof(h->stopping) &&
	       h->stopping && h->stopping();
}

static long long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000LL + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* After an operation failed with e: 1 to try it again (a tick without an
 * answer, the plugin's timeout not yet spent, no stop requested), else
 * the error filled in (a stop is "stopped on request", not a failure). */
static int again(struct smb_ctx *c, const struct timespec *t0, int e, const char *what,
		 const char *url, struct reimage_error *err)
{
	if (smb_stopping(c)) {
		c->host->error(err, -ECANCELED, REIMAGE_EC_STATE, "%s %s: stopped on request",
			       what, url);
		return -ECANCELED;
	}
	if (e == ETIMEDOUT && elapsed_ms(t0) < c->timeout_ms)
		return 1;
	return smb_fail(c, err, e, what, url);
}

/* "FILE:LINE: " of an option, for errors about settings. */
static const char *where(const struct reimage_optval *v, char *buf, size_t len)
{
	if (v->file)
		snprintf(buf, len, "%s:%d: ", v->file, v->line);
	else
		buf[0] = '\0';
	return buf;
}

static int config_error(struct smb_ctx *c, struct reimage_error *err,
			const struct reimage_optval *v, const char *msg)
{
	char at[512];
	c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG, "%s%s", where(v, at, sizeof(at)), msg);
	return -EINVAL;
}

/* smb://server[:port]/share/path, without credentials in it.  libsmbclient
 * itself parses the port (and smbc_setPort gives the default). */
static int check_url(struct smb_ctx *c, const char *url, struct reimage_error *err)
{
	const char *host, *slash, *at, *colon, *share;
	size_t authority;

	if (strncmp(url, "smb://", 6) != 0)
		goto bad;
	host = url + 6;
	authority = strcspn(host, "/");
	at = memchr(host, '@', authority);
	if (at) {
		/* Name only what follows the credentials. */
		c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
			       "URL smb://...@%s: credentials in URLs are refused; "
			       "set them in the plugin's options", at + 1);
		return -EINVAL;
	}
	slash = host + authority;
	if (authority == 0 || *slash != '/')
		goto bad;
	colon = memchr(host, ':', authority);
	if (colon) {
		char *end;
		unsigned long port = strtoul(colon + 1, &end, 10);
		if (end != slash || colon + 1 == slash || port == 0 || port > 65535)
			goto bad;
	}
	share = slash + 1;
	slash = strchr(share, '/');
	if (!slash || slash == share || slash[1] == '\0')
		goto bad;
	return 0;
bad:
	c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
		       "URL %s: expected smb://server[:port]/share/path", url);
	return -EINVAL;
}

/* ------------------------------------------------------- the context */

static void copy_field(char *dst, int len, const char *src)
{
	if (len > 0)
		snprintf(dst, (size_t)len, "%s", src);
}

/* libsmbclient asks for credentials when it logs on to a server. */
static void smb_auth(SMBCCTX *smbc, const char *server, const char *share, char *wg, int wglen,
		     char *un, int unlen, char *pw, int pwlen)
{
	struct smb_ctx *c = smbc_getOptionUserData(smbc);

	(void)server;
	(void)share;
	if (c->guest) {
		/* Empty user and password: an anonymous logon, which servers
		 * map to their guest account on guest shares. */
		copy_field(un, unlen, "");
		copy_field(pw, pwlen, "");
		return;
	}
	if (!c->creds.user)
		return;  /* Kerberos: the ticket names the account */
	if (c->creds.domain)
		copy_field(wg, wglen, c->creds.domain);
	copy_field(un, unlen, c->creds.user);
	copy_field(pw, pwlen, c->creds.password);
}

/* libsmbclient's own diagnostics (debug level 0 only) go to our log,
 * never to stdout where libsmbclient would put them. */
static void smb_log(void *private_ptr, int level, const char *msg)
{
	struct smb_ctx *c = private_ptr;
	int len = (int)strcspn(msg, "\n");

	(void)level;
	if (len > 0)
		c->host->log(REIMAGE_LOG_DEBUG, "libsmbclient: %.*s", len, msg);
}

static int load_settings(struct smb_ctx *c, const struct reimage_optval *v,
			 struct reimage_error *err)
{
	const struct reimage_optval *user = &v[OPT_USER], *pass = &v[OPT_PASSWORD];
	const struct reimage_optval *file = &v[OPT_CREDENTIALS_FILE];

	if (pass->set && !user->set)
		return config_error(c, err, pass, "setting 'password' needs 'user'");
	if (file->set && (user->set || v[OPT_DOMAIN].set))
		return config_error(c, err, file, "set either 'credentials_file' or 'user'/'domain'");
	if (v[OPT_GUEST].i && (user->set || file->set || v[OPT_KERBEROS].i))
		return config_error(c, err, &v[OPT_GUEST],
				    "'guest = true' excludes user, credentials_file and kerberos");
	if (!v[OPT_GUEST].i && !v[OPT_KERBEROS].i && !user->set && !file->set)
		return config_error(c, err, &v[OPT_GUEST],
				    "no credentials: set user and password, credentials_file, "
				    "guest = true or kerberos = true");
	c->guest = (int)v[OPT_GUEST].i;
	c->kerberos = (int)v[OPT_KERBEROS].i;
	c->timeout_ms = (int)v[OPT_TIMEOUT].i * 1000;
	c->port = (uint16_t)v[OPT_PORT].i;
	if (v[OPT_SMB_CONF].set && !(c->smb_conf = strdup(v[OPT_SMB_CONF].s))) {
		c->host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if (file->set)
		return creds_read_file(c->host, &c->creds, file->s, err);
	if (user->set)
		return creds_set(c->host, &c->creds, user->s, pass->s, v[OPT_DOMAIN].s, err);
	return 0;
}

/*
 * libsmbclient's configuration when smb_conf names none: SMB2..SMB3, names
 * through DNS and /etc/hosts only (no NetBIOS broadcasts), and its state
 * directories on a path that can never exist (below a device), so that its
 * name cache neither reads nor writes the machine's Samba state.
 */
static const char builtin_conf[] =
	"[global]\n"
	"client min protocol = SMB2_02\n"
	"client max protocol = SMB3\n"
	"name resolve order = host\n"
	"lock directory = /dev/null/reimage\n"
	"cache directory = /dev/null/reimage\n"
	"state directory = /dev/null/reimage\n"
	"private dir = /dev/null/reimage\n";

/* Load smb_conf, or builtin_conf from memory (no file on disk to trust). */
static int load_configuration(struct smb_ctx *c, SMBCCTX *smbc, struct reimage_error *err)
{
	size_t len = sizeof(builtin_conf) - 1;
	char path[64];
	int fd, r;

	if (c->smb_conf) {
		if (smbc_setConfiguration(smbc, c->smb_conf) < 0) {
			c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
				       "smb_conf %s cannot be loaded", c->smb_conf);
			return -EINVAL;
		}
		return 0;
	}
	fd = memfd_create("reimage-smb.conf", MFD_CLOEXEC);
	if (fd < 0 || write(fd, builtin_conf, len) != (ssize_t)len) {
		int e = errno ? errno : EIO;
		if (fd >= 0)
			close(fd);
		c->host->error(err, -e, REIMAGE_EC_IO, "libsmbclient configuration: %s",
			       strerror(e));
		return -e;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = smbc_setConfiguration(smbc, path);
	close(fd);
	if (r < 0) {
		c->host->error(err, -EIO, REIMAGE_EC_IO,
			       "libsmbclient refuses its built-in configuration");
		return -EIO;
	}
	return 0;
}

static void free_context(SMBCCTX *smbc)
{
	/* 1: close open files and connections, whatever their state. */
	smbc_free_context(smbc, 1);
}

/* A new libsmbclient context with this plugin's settings.  No network. */
static int make_context(struct smb_ctx *c, int timeout_ms, SMBCCTX **ret,
			struct reimage_error *err)
{
	SMBCCTX *smbc = smbc_new_context();
	int e;

	if (!smbc) {
		c->host->error(err, -ENOMEM, REIMAGE_EC_IO, "libsmbclient: cannot create a context");
		return -ENOMEM;
	}
	/* The log callback and the configuration are process-wide; set them
	 * for every context because libsmbclient reloads the machine's
	 * configuration when it re-creates its first context. */
	smbc_setLogCallback(smbc, c, smb_log);
	smbc_setDebug(smbc, 0);
	if ((e = load_configuration(c, smbc, err)) < 0) {
		free_context(smbc);
		return e;
	}
	/* SMB1 stays off whatever a configuration says. */
	if (!smbc_setOptionProtocols(smbc, "SMB2_02", "SMB3")) {
		free_context(smbc);
		c->host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
			       "libsmbclient refuses the protocol range SMB2..SMB3");
		return -EINVAL;
	}
	smbc_setTimeout(smbc, timeout_ms);
	smbc_setPort(smbc, c->port);
	smbc_setOptionUserData(smbc, c);
	smbc_setFunctionAuthDataWithContext(smbc, smb_auth);
	/* A refused password must fail, not fall back to an anonymous logon. */
	smbc_setOptionNoAutoAnonymousLogin(smbc, !c->guest);
	smbc_setOptionUseKerberos(smbc, c->kerberos);
	smbc_setOptionFallbackAfterKerberos(smbc, c->kerberos && c->creds.user);
	/* winbind's credential cache belongs to the system's Kerberos setup. */
	smbc_setOptionUseCCache(smbc, c->kerberos);
	errno = 0;
	if (!smbc_init_context(smbc)) {
		e = errno ? errno : ENOMEM;
		free_context(smbc);
		c->host->error(err, -e, REIMAGE_EC_CONFIG, "libsmbclient: cannot initialise: %s",
			       strerror(e));
		return -e;
	}
	*ret = smbc;
	return 0;
}

/* Check url and find (or make) the context serving its host:port. */
static int server_for(struct smb_ctx *c, const char *url, SMBCCTX **ret,
		      struct reimage_error *err)
{
	const char *authority = url + strlen("smb://");
	size_t len;
	struct smb_server *srv;
	int r;

	if ((r = check_url(c, url, err)) < 0)
		return r;
	len = strcspn(authority, "/");
	for (size_t i = 0; i < c->nservers; i++) {
		srv = &c->servers[i];
		if (strlen(srv->authority) == len && strncasecmp(srv->authority, authority, len) == 0) {
			*ret = srv->smbc;
			return 0;
		}
	}
	if (c->nservers == SMB_MAX_SERVERS || len >= SMB_AUTHORITY_MAX) {
		c->host->error(err, -ENOSPC, REIMAGE_EC_UNSUPPORTED,
			       "URL %s: more than %d servers, or a server name too long", url,
			       SMB_MAX_SERVERS);
		return -ENOSPC;
	}
	srv = &c->servers[c->nservers];
	if (c->spare) {
		srv->smbc = c->spare;
		c->spare = NULL;
	} else if ((r = make_context(c, c->timeout_ms, &srv->smbc, err)) < 0) {
		return r;
	}
	memcpy(srv->authority, authority, len);
	srv->authority[len] = '\0';
	c->nservers++;
	*ret = srv->smbc;
	return 0;
}

static void smb_fini(void *ctx)
{
	struct smb_ctx *c = ctx;
	SMBCCTX *any = c->spare ? c->spare : c->nservers ? c->servers[0].smbc : NULL;

	/* The log callback is process-wide and points at c: unhook it (any
	 * context will do) before c goes. */
	if (any)
		smbc_setLogCallback(any, NULL, NULL);
	if (c->spare)
		free_context(c->spare);
	for (size_t i = 0; i < c->nservers; i++)
		free_context(c->servers[i].smbc);
	creds_clear(&c->creds);
	free(c->smb_conf);
	free(c);
}

static int smb_init(const struct reimage_host *host, const struct reimage_optval *values,
		    void **ret_ctx, struct reimage_error *err)
{
	struct smb_ctx *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	c->host = host;
	if ((r = load_settings(c, values, err)) < 0 || (r = make_context(c, c->timeout_ms, &c->spare, err)) < 0) {
		smb_fini(c);
		return r;
	}
	*ret_ctx = c;
	return 0;
}

/* -------------------------------------------------------------- files */

static SMBCFILE *file_open(SMBCCTX *smbc, const char *url, int flags, mode_t mode)
{
	errno = 0;
	return smbc_getFunctionOpen(smbc)(smbc, url, flags, mode);
}

static void file_close(SMBCCTX *smbc, SMBCFILE *f)
{
	smbc_getFunctionClose(smbc)(smbc, f);
}

/* Open url for reading with smbc and stat it, trying again after each
 * tick without an answer (again()); on failure nothing stays open. */
static int open_stat(struct smb_ctx *c, SMBCCTX *smbc, const char *url, SMBCFILE **ret_file,
		     struct stat *st, struct reimage_error *err)
{
	struct timespec t0;
	SMBCFILE *f;
	size_t len = strlen(url);
	int e;

	/* libsmbclient opens a path ending in a separator as a folder, whose
	 * handle its read() crashes on: a folder is no document. */
	if (len > 0 && url[len - 1] == '/')
		return smb_fail(c, err, EISDIR, "open", url);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!(f = file_open(smbc, url, O_RDONLY, 0)))
		if ((e = again(c, &t0, errno, "open", url, err)) <= 0)
			return e;
	errno = 0;
	if (smbc_getFunctionFstat(smbc)(smbc, f, st) < 0 || S_ISDIR(st->st_mode)) {
		e = S_ISDIR(st->st_mode) ? EISDIR : errno;
		file_close(smbc, f);
		return smb_fail(c, err, e, "stat", url);
	}
	*ret_file = f;
	return 0;
}

/* Seek f to offset; on failure f is closed. */
static int seek_to(struct smb_ctx *c, SMBCCTX *smbc, SMBCFILE *f, const char *url,
		   uint64_t offset, struct reimage_error *err)
{
	errno = 0;
	if (offset && smbc_getFunctionLseek(smbc)(smbc, f, (off_t)offset, SEEK_SET) !=
			      (off_t)offset) {
		int e = errno;
		file_close(smbc, f);
		return smb_fail(c, err, e, "seek in", url);
	}
	return 0;
}

static int stream_timeout(const struct smb_ctx *c)
{
	return c->timeout_ms < SMB_TICK_MS ? c->timeout_ms : SMB_TICK_MS;
}

static int smb_open(void *ctx, const char *url, uint64_t offset,
		    struct reimage_stream **ret_stream, uint64_t *ret_size,
		    struct reimage_error *err)
{
	struct smb_ctx *c = ctx;
	struct reimage_stream *s = NULL;
	struct stat st = { 0 };
	SMBCCTX *smbc = NULL;
	SMBCFILE *f = NULL;
	int r;

	/* A stream has a context of its own, whose connection waits a tick
	 * for each answer (documents keep the whole timeout per call). */
	if ((r = check_url(c, url, err)) < 0 ||
	    (r = make_context(c, stream_timeout(c), &smbc, err)) < 0)
		return r;
	if ((r = open_stat(c, smbc, url, &f, &st, err)) < 0)
		goto fail;
	if (offset > (uint64_t)st.st_size) {
		file_close(smbc, f);
		c->host->error(err, -EINVAL, REIMAGE_EC_INTEGRITY,
			       "open %s at byte %" PRIu64 ": the file has only %lld bytes", url,
			       offset, (long long)st.st_size);
		r = -EINVAL;
		goto fail;
	}
	if ((r = seek_to(c, smbc, f, url, offset, err)) < 0)
		goto fail;
	s = malloc(sizeof(*s) + strlen(url) + 1);
	if (!s) {
		file_close(smbc, f);
		r = smb_fail(c, err, ENOMEM, "open", url);
		goto fail;
	}
	s->ctx = c;
	s->smbc = smbc;
	s->file = f;
	s->offset = offset;
	s->st = st;
	strcpy(s->url, url);
	*ret_size = (uint64_t)st.st_size;
	*ret_stream = s;
	return 0;
fail:
	free_context(smbc);
	return r;
}

/* After a tick without an answer the file is opened again where the
 * read stopped -- the same file (size, time, id), or the read fails: two
 * versions are never spliced. */
static int reopen(struct reimage_stream *s, struct reimage_error *err)
{
	struct stat st = { 0 };
	SMBCFILE *f;
	int r;

	/* A fresh connection: the old one may still owe answers to requests
	 * that timed out. */
	free_context(s->smbc);  /* closes s->file too */
	s->file = NULL;
	s->smbc = NULL;
	if ((r = make_context(s->ctx, stream_timeout(s->ctx), &s->smbc, err)) < 0 ||
	    (r = open_stat(s->ctx, s->smbc, s->url, &f, &st, err)) < 0)
		return r;
	if (st.st_size != s->st.st_size || st.st_ino != s->st.st_ino ||
	    st.st_mtim.tv_sec != s->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != s->st.st_mtim.tv_nsec) {
		file_close(s->smbc, f);
		s->ctx->host->error(err, -ESTALE, REIMAGE_EC_RETRYABLE,
				    "read %s: the file changed while it was read", s->url);
		return -ESTALE;
	}
	if ((r = seek_to(s->ctx, s->smbc, f, s->url, s->offset, err)) < 0)
		return r;
	s->file = f;
	return 0;
}

static ssize_t smb_read(struct reimage_stream *s, void *buf, size_t len,
			struct reimage_error *err)
{
	struct timespec t0;
	ssize_t n;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		errno = 0;
		if (s->file && (n = smbc_getFunctionRead(s->smbc)(s->smbc, s->file, buf, len)) >= 0) {
			s->offset += (uint64_t)n;
			return n;
		}
		if ((r = again(s->ctx, &t0, s->file ? errno : ETIMEDOUT, "read", s->url, err)) <= 0)
			return r;
		if ((r = reopen(s, err)) < 0 && r != -ETIMEDOUT)
			return r;
	}
}

static void smb_close(struct reimage_stream *s)
{
	if (s->smbc)
		free_context(s->smbc);  /* closes the file */
	free(s);
}

/* The validator of a document: size, modification time and file id (a
 * put() renames a new file into place, so the id changes even when size
 * and time do not). */
static void make_etag(const struct stat *st, char etag[REIMAGE_ETAG_MAX])
{
	snprintf(etag, REIMAGE_ETAG_MAX, "%lld-%lld.%09ld-%llu", (long long)st->st_size,
		 (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (unsigned long long)st->st_ino);
}

/* Read at most cap bytes into buf, and one more to tell "too large". */
static int read_capped(struct smb_ctx *c, SMBCCTX *smbc, SMBCFILE *f, const char *url,
		       char *buf, size_t cap, size_t *ret_len, struct reimage_error *err)
{
	smbc_read_fn readfn = smbc_getFunctionRead(smbc);
	size_t have = 0;

	for (;;) {
		char extra;
		ssize_t n;

		errno = 0;
		n = have < cap ? readfn(smbc, f, buf + have, cap - have) : readfn(smbc, f, &extra, 1);
		if (n < 0)
			return smb_fail(c, err, errno, "read", url);
		if (n == 0)
			break;
		if (have == cap) {
			c->host->error(err, -EFBIG, REIMAGE_EC_INTEGRITY,
				       "fetch %s: larger than %zu bytes", url, cap);
			return -EFBIG;
		}
		have += (size_t)n;
	}
	*ret_len = have;
	return 0;
}

/* A name the index may carry unquoted: the store's names are letters,
 * digits, '.', '_' and '-' (others are no agent's report anyway). */
static int plain_name(const char *name)
{
	return *name && strcmp(name, ".") && strcmp(name, "..") &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
		       strlen(name);
}

/* fetch() of a folder (a URL ending in '/'): its files and folders as the
 * JSON index nginx's autoindex gives ([{"name": N, "type": "file" or
 * "directory"}]), so that the administrator's tool lists an SMB store's
 * reports as it lists a web server's. */
static int smb_list(struct smb_ctx *c, SMBCCTX *smbc, const char *url, char *buf, size_t cap,
		    size_t *ret_len, struct reimage_error *err)
{
	smbc_readdir_fn readdirfn = smbc_getFunctionReaddir(smbc);
	struct smbc_dirent *e;
	size_t len = 0;
	SMBCFILE *d;
	int r = 0;

	errno = 0;
	if (!(d = smbc_getFunctionOpendir(smbc)(smbc, url)))
		return smb_fail(c, err, errno ? errno : EIO, "list", url);
	if (cap > 0)
		buf[len++] = '[';
	for (errno = 0; r == 0 && (e = readdirfn(smbc, d)); errno = 0) {
		const char *type = e->smbc_type == SMBC_FILE ? "file"
				 : e->smbc_type == SMBC_DIR ? "directory" : NULL;
		if (!type || !plain_name(e->name))
			continue;
		int n = snprintf(buf + len, cap - len, "%s{\"name\":\"%s\",\"type\":\"%s\"}",
				 len > 1 ? "," : "", e->name, type);
		if (n < 0 || (size_t)n >= cap - len)
			r = -EFBIG;
		else
			len += (size_t)n;
	}
	if (r == 0 && errno)
		r = smb_fail(c, err, errno, "list", url);
	else if (r == 0 && len < cap)
		buf[len++] = ']';
	else if (r == 0)
		r = -EFBIG;
	if (r == -EFBIG)
		c->host->error(err, r, REIMAGE_EC_INTEGRITY, "list %s: larger than %zu bytes", url,
			       cap);
	smbc_getFunctionClosedir(smbc)(smbc, d);
	if (r == 0)
		*ret_len = len;
	return r;
}

static int smb_fetch(void *ctx, const char *url, void *buf, size_t cap, size_t *ret_len,
		     char etag[REIMAGE_ETAG_MAX], int64_t *ret_date, struct reimage_error *err)
{
	struct smb_ctx *c = ctx;
	char tag[REIMAGE_ETAG_MAX];
	struct stat st = { 0 };
	SMBCCTX *smbc;
	SMBCFILE *f;
	size_t len = 0;
	int r;

	if ((r = server_for(c, url, &smbc, err)) < 0)
		return r;
	if (*url && url[strlen(url) - 1] == '/') {
		etag[0] = '\0';
		if ((r = smb_list(c, smbc, url, buf, cap, ret_len, err)) == 0 && ret_date)
			*ret_date = 0;
		return r;
	}
	if ((r = open_stat(c, smbc, url, &f, &st, err)) < 0)
		return r;
	make_etag(&st, tag);
	if (etag[0] && strcmp(etag, tag) == 0) {
		r = REIMAGE_NOT_MODIFIED;
	} else if ((uint64_t)st.st_size > cap) {
		c->host->error(err, -EFBIG, REIMAGE_EC_INTEGRITY,
			       "fetch %s: %lld bytes, larger than %zu", url, (long long)st.st_size,
			       cap);
		r = -EFBIG;
	} else if ((r = read_capped(c, smbc, f, url, buf, cap, &len, err)) == 0) {
		memcpy(etag, tag, REIMAGE_ETAG_MAX);
		*ret_len = len;
	}
	file_close(smbc, f);
	if (r >= 0 && ret_date)
		*ret_date = 0;  /* libsmbclient offers no server clock */
	return r;
}

static int write_all(struct smb_ctx *c, SMBCCTX *smbc, SMBCFILE *f, const char *url,
		     const char *data, size_t len, struct reimage_error *err)
{
	smbc_write_fn writefn = smbc_getFunctionWrite(smbc);

	while (len > 0) {
		ssize_t n;

		errno = 0;
		n = writefn(smbc, f, data, len);
		if (n <= 0)
			return smb_fail(c, err, n < 0 ? errno : EIO, "write", url);
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Make the folders of url below its share (smb://host/share/a/b/doc makes
 * a and a/b), as the file transport and an HTTP server's PUT do: a job
 * store starts as an empty share.  A folder another writer made at the
 * same time is no error.
 */
static int make_parents(struct smb_ctx *c, SMBCCTX *smbc, const char *url,
			struct reimage_error *err)
{
	smbc_mkdir_fn mkdirfn = smbc_getFunctionMkdir(smbc);
	/* check_url() vouched for "smb://authority/share/" */
	const char *share = strchr(url + strlen("smb://"), '/') + 1;
	const char *last = strrchr(url, '/');
	char *dir = strdup(url);
	int r = 0;

	if (!dir)
		return smb_fail(c, err, ENOMEM, "put", url);
	for (const char *end = strchr(strchr(share, '/') + 1, '/'); end && end <= last && r == 0;
	     end = strchr(end + 1, '/')) {
		dir[end - url] = '\0';
		errno = 0;
		if (mkdirfn(smbc, dir, 0755) < 0 && errno != EEXIST)
			r = smb_fail(c, err, errno, "create folder", dir);
		dir[end - url] = '/';
	}
	free(dir);
	return r;
}

/* Renames over a document a reader holds open, tried for up to 1 s. */
#define RENAME_TRIES 40
#define RENAME_PAUSE_NS 25000000L

/*
 * Readers must never see a torn document: write a temporary file in the
 * same directory, close it, then rename it over the target.  libsmbclient
 * renames over an existing file by removing it first (its public API has
 * no replacing rename), so a reader may for an instant find no document,
 * but never a partial one.
 */
static int smb_put(void *ctx, const char *url, const void *data, size_t len,
		   const char *content_type, struct reimage_error *err)
{
	struct smb_ctx *c = ctx;
	const char *base;
	char *tmp = NULL;
	SMBCCTX *smbc;
	SMBCFILE *f;
	int r;

	(void)content_type;
	if ((r = server_for(c, url, &smbc, err)) < 0)
		return r;
	base = strrchr(url, '/') + 1;
	if (asprintf(&tmp, "%.*s.%s.reimage-tmp-%ld-%u", (int)(base - url), url, base,
		     (long)getpid(), ++c->tmp_serial) < 0)
		return smb_fail(c, err, ENOMEM, "put", url);
	/* O_EXCL: never write into a file another writer owns. */
	f = file_open(smbc, tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (!f && errno == ENOENT) {
		/* The first document of its folder: make the folders, once. */
		if ((r = make_parents(c, smbc, url, err)) < 0) {
			free(tmp);
			return r;
		}
		f = file_open(smbc, tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
	}
	if (!f) {
		r = smb_fail(c, err, errno, "create", tmp);
		free(tmp);
		return r;
	}
	r = write_all(c, smbc, f, tmp, data, len, err);
	errno = 0;
	if (smbc_getFunctionClose(smbc)(smbc, f) < 0 && r == 0)
		r = smb_fail(c, err, errno, "close", tmp);
	/* The old document cannot go while a reader holds it open (an
	 * administrator's `wait` reading the report): the server keeps its
	 * name until the reader closes it, a few ms.  Try again a while. */
	for (int tries = 0; r == 0; tries++) {
		errno = 0;
		if (smbc_getFunctionRename(smbc)(smbc, tmp, smbc, url) == 0)
			break;
		if (errno != EEXIST || tries == RENAME_TRIES)
			r = smb_fail(c, err, errno, "rename into place", url);
		else
			nanosleep(&(struct timespec){ 0, RENAME_PAUSE_NS }, NULL);
	}
	if (r < 0)
		smbc_getFunctionUnlink(smbc)(smbc, tmp);
	free(tmp);
	return r;
}

static int smb_remove(void *ctx, const char *url, struct reimage_error *err)
{
	struct smb_ctx *c = ctx;
	SMBCCTX *smbc;
	int r;

	if ((r = server_for(c, url, &smbc, err)) < 0)
		return r;
	errno = 0;
	if (smbc_getFunctionUnlink(smbc)(smbc, url) < 0 && errno != ENOENT)
		return smb_fail(c, err, errno, "remove", url);
	return 0;
}

static const char *const smb_schemes[] = { "smb", NULL };

static const struct reimage_transport_ops smb_ops = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_transport_ops),
	.name = "transport-smb",
	.caps = REIMAGE_TCAP_RESUME | REIMAGE_TCAP_PUT | REIMAGE_TCAP_ETAG,
	.schemes = smb_schemes,
	.options = smb_options,
	.init = smb_init,
	.fini = smb_fini,
	.open = smb_open,
	.read = smb_read,
	.close = smb_close,
	.fetch = smb_fetch,
	.put = smb_put,
	.remove = smb_remove,
};

REIMAGE_PLUGIN(transport_smb, TRANSPORT, transport, smb_ops)
