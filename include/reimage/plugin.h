/*
 * reimage/plugin.h -- the one public header of reimage's plugin interface.
 *
 * A plugin is a loadable module (libltdl) that exports exactly one symbol,
 * reimage_plugin_entry (spelled <module>_LTX_reimage_plugin_entry in the
 * source so that libltdl can also preload it into a static binary).  The
 * entry returns a struct reimage_plugin naming one transport or one backend
 * ops table.
 *
 *   transport  opens image streams, fetches and puts small documents for a
 *              set of URL schemes (http, https, smb, ...).
 *   backend    the semantics of one operating system: how to move or
 *              exchange a top-level entry, which processes may stop, how to
 *              log users out, set the volume label and boot parameters, and
 *              reboot.
 *
 * Versioning: REIMAGE_PLUGIN_ABI changes only when an existing member
 * changes meaning.  New hooks are only appended; the core reads a hook only
 * if struct_size shows the plugin was built with it.  A plugin whose
 * abi_version differs from the core's is refused at load with both numbers
 * and the file named.
 *
 * Errors: every hook returns 0 on success or a negative errno-style code,
 * and on failure fills the struct reimage_error it is given through
 * host->error().  The first error recorded wins; callers add prefixes.
 * Plugins never log an error they return, and never exit().
 *
 * Threads: the core calls a plugin from one thread at a time.  Several
 * of its threads may use one transport (an agent's report beside the
 * image's read, a chunked image's ranges beside the rebuild): it takes a
 * lock around each call, so a plugin needs none of its own.
 */
#ifndef REIMAGE_PLUGIN_H
#define REIMAGE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REIMAGE_PLUGIN_ABI 1

#if defined(__GNUC__) || defined(__clang__)
#define REIMAGE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define REIMAGE_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------ errors */

/*
 * Neutral classes of failure.  Transports map their library's codes onto
 * these so that the core decides retry and resume without knowing libcurl
 * or libsmbclient.
 */
enum reimage_errclass {
	REIMAGE_EC_NONE = 0,
	REIMAGE_EC_NOTFOUND,    /* the file, share or document does not exist */
	REIMAGE_EC_ACCESS,      /* credentials refused, permission denied */
	REIMAGE_EC_NETWORK,     /* host unreachable, DNS, connection refused */
	REIMAGE_EC_TLS,         /* certificate or handshake refused */
	REIMAGE_EC_RETRYABLE,   /* timeout, reset, short read: try again, resume */
	REIMAGE_EC_CONFIG,      /* bad setting or URL */
	REIMAGE_EC_IO,          /* local read/write failure */
	REIMAGE_EC_UNSUPPORTED, /* the plugin cannot do this */
	REIMAGE_EC_INTEGRITY,   /* hash, size, signature or archive check failed */
	REIMAGE_EC_STATE        /* wrong phase, lock held, precondition unmet */
};

#define REIMAGE_ERRMSG_MAX 1024

/* Filled by host->error(); the first error recorded is kept. */
struct reimage_error {
	int code;                   /* negative errno-style code, 0 = none */
	enum reimage_errclass cls;  /* neutral class of the failure */
	char msg[REIMAGE_ERRMSG_MAX];
};

/* ----------------------------------------------------------------- options */

/*
 * Each plugin declares its settings once.  The core reads the plugin's own
 * group of the configuration (named after the plugin, e.g.
 * `transport-http: { ... }`), checks every value against this table
 * (type, bounds), rejects settings the table does not name (with file and
 * line), applies defaults, and hands the values to init() in table order.
 */
enum reimage_opt_type {
	REIMAGE_OPT_END = 0,  /* terminates a table */
	REIMAGE_OPT_BOOL,
	REIMAGE_OPT_INT,      /* 64-bit integer within [min, max] */
	REIMAGE_OPT_STRING,
	REIMAGE_OPT_STRINGS,  /* a list or array of strings; a lone string is one item */
	REIMAGE_OPT_GROUP     /* a group whose members the owner checks itself */
};

struct reimage_option {
	const char *name;
	enum reimage_opt_type type;
	const char *def;      /* default, written as in the configuration; NULL: unset */
	long long min, max;   /* bounds for REIMAGE_OPT_INT */
	const char *doc;      /* one line, shown by `reimage options` */
};

struct reimage_optval {
	int set;                  /* 1 if given in the configuration or by default */
	long long i;              /* BOOL (0/1) and INT */
	const char *s;            /* STRING */
	const char *const *list;  /* STRINGS: NULL-terminated */
	size_t n;                 /* STRINGS: item count */
	const char *file;         /* where it was set, for the plugin's own errors */
	int line;                 /* (NULL/0 for defaults) */
	void *owned;              /* the core's: storage freed with the values */
};

/* -------------------------------------------------------------------- host */

enum reimage_loglevel {
	REIMAGE_LOG_ERROR = 0,
	REIMAGE_LOG_WARNING,
	REIMAGE_LOG_NOTICE,
	REIMAGE_LOG_INFO,
	REIMAGE_LOG_DEBUG
};

/* Services the core offers every plugin; passed to init(). */
struct reimage_host {
	uint32_t abi_version;
	uint32_t struct_size;
	/* Record an error unless one is already recorded.  code < 0. */
	void (*error)(struct reimage_error *err, int code, enum reimage_errclass cls,
		      const char *fmt, ...) REIMAGE_PRINTF(4, 5);
	/* Log a message that is not an error being returned (progress of a
	 * retry, a deprecated setting).  Never pass secrets. */
	void (*log)(enum reimage_loglevel level, const char *fmt, ...) REIMAGE_PRINTF(2, 3);
	/* 1 once the process was asked to stop (SIGTERM, Ctrl-C), else 0;
	 * cheap, callable from any thread.  A transport's open(), read() and
	 * fetch() waiting on the network (a stalled download, a slow connect)
	 * MUST look at it at least once a second and then fail with code
	 * -ECANCELED, class REIMAGE_EC_STATE, so that a stop is never held up
	 * by their timeouts.  put() and remove() MUST NOT stop for it: they
	 * carry the reports that say a job stopped.  A later member: check
	 * struct_size before calling. */
	int (*stopping)(void);
};

/* --------------------------------------------------------------- transport */

#define REIMAGE_SIZE_UNKNOWN UINT64_MAX
#define REIMAGE_ETAG_MAX 256
#define REIMAGE_NOT_MODIFIED 1   /* fetch(): the document did not change */

/* Transport capabilities. */
#define REIMAGE_TCAP_RESUME  (1u << 0)  /* open() honours offset without re-reading */
#define REIMAGE_TCAP_PUT     (1u << 1)  /* put() and remove() work */
#define REIMAGE_TCAP_ETAG    (1u << 2)  /* fetch() answers REIMAGE_NOT_MODIFIED */

struct reimage_stream;  /* defined by each transport */

/*
 * What the caller of open_ex() asks of one request beyond open()'s
 * offset.  A transport applies the members its protocol has (http: the
 * Accept and Authorization headers, the Content-Type of the answer) and
 * ignores the others.  The caller sets struct_size to the size it was
 * built with; a transport reads only members that lie inside it, so the
 * struct too only ever grows at its end.
 */
#define REIMAGE_MEDIA_TYPE_MAX 128
struct reimage_open_opts {
	uint32_t struct_size;        /* sizeof(struct reimage_open_opts) of the caller */
	const char *const *accept;   /* media types the caller understands, NULL-terminated, or NULL */
	const char *bearer_token;    /* a credential for this request only, or NULL; a secret:
				      * never logged, never sent to a host a redirect leads to */
	char content_type[REIMAGE_MEDIA_TYPE_MAX];  /* out: the answer's media type, "" if none */
	/* Appended later.  In and out: what tells one version of the
	 * resource from another (http: a strong ETag, else Last-Modified).
	 * Out: the answer's, "" if it has none -- the core then never resumes
	 * the resource, it reads it again from byte 0.  In, at an offset > 0:
	 * the first answer's; the transport MUST deliver bytes of exactly
	 * that version (http: If-Range) and, if the resource changed, fail
	 * with -ESTALE (class INTEGRITY): the core then reads it again from
	 * byte 0, never splicing two versions.  "" in: no condition. */
	char validator[REIMAGE_ETAG_MAX];
};

struct reimage_transport_ops {
	uint32_t abi_version;    /* REIMAGE_PLUGIN_ABI */
	uint32_t struct_size;    /* sizeof(struct reimage_transport_ops) */
	const char *name;        /* e.g. "transport-http"; must match the file */
	uint32_t caps;           /* REIMAGE_TCAP_* */
	const char *const *schemes;            /* NULL-terminated, e.g. {"http","https",NULL} */
	const struct reimage_option *options;  /* REIMAGE_OPT_END-terminated, may be NULL */

	/* Called once in PREPARE with the values of the plugin's options.
	 * MUST NOT touch the network.  *ret_ctx belongs to the plugin. */
	int (*init)(const struct reimage_host *host, const struct reimage_optval *values,
		    void **ret_ctx, struct reimage_error *err);
	/* MAY be NULL.  Releases ctx; called when the process ends. */
	void (*fini)(void *ctx);

	/* Open url for reading from byte offset.  MUST deliver the resource's
	 * bytes starting exactly at offset: if the server cannot seek, the
	 * transport skips the leading bytes itself.  *ret_size is the whole
	 * resource's size or REIMAGE_SIZE_UNKNOWN.  Errors: NOTFOUND, ACCESS,
	 * NETWORK, TLS, RETRYABLE, CONFIG. */
	int (*open)(void *ctx, const char *url, uint64_t offset,
		    struct reimage_stream **ret_stream, uint64_t *ret_size,
		    struct reimage_error *err);
	/* Read up to len bytes.  Returns the count, 0 at the end of the
	 * resource, or a negative code; RETRYABLE means the core may close
	 * and open again at the offset it has reached. */
	ssize_t (*read)(struct reimage_stream *stream, void *buf, size_t len,
			struct reimage_error *err);
	/* Always succeeds; frees the stream. */
	void (*close)(struct reimage_stream *stream);

	/* Fetch a small document into buf (capacity cap).  A document larger
	 * than cap is an INTEGRITY error and is not read past cap.  etag:
	 * in, the validator of the copy the caller holds ("" for none); out,
	 * the new one (an ETag, or the modification time as text).  Returns 0,
	 * REIMAGE_NOT_MODIFIED if the caller's copy is current, or < 0.
	 * ret_date: the server's clock (HTTP Date), 0 if unknown. MAY be NULL
	 * for a transport that only streams. */
	int (*fetch)(void *ctx, const char *url, void *buf, size_t cap, size_t *ret_len,
		     char etag[REIMAGE_ETAG_MAX], int64_t *ret_date,
		     struct reimage_error *err);
	/* Write a whole document, replacing any earlier one; readers see the
	 * old or the new document, never a torn one.  MAY be NULL. */
	int (*put)(void *ctx, const char *url, const void *data, size_t len,
		   const char *content_type, struct reimage_error *err);
	/* Remove a document; a missing one is not an error.  MAY be NULL. */
	int (*remove)(void *ctx, const char *url, struct reimage_error *err);

	/* Appended later: the core reads these only if struct_size covers them. */

	/* open() with request options (see struct reimage_open_opts): the
	 * core uses it for image sources that need them (an OCI registry's
	 * manifests: Accept, a bearer token, the answer's media type).  Same
	 * contract as open() otherwise.  MAY be NULL: the core then refuses
	 * such sources with a message naming this transport. */
	int (*open_ex)(void *ctx, const char *url, uint64_t offset,
		       struct reimage_open_opts *opts, struct reimage_stream **ret_stream,
		       uint64_t *ret_size, struct reimage_error *err);

	/* Open exactly the bytes [offset, offset + length) of url (length
	 * > 0): read() then delivers those bytes and returns 0 after the
	 * last.  The core reads single files of an image this way (a chunked
	 * image's table of contents and the frames of the files it lacks),
	 * many ranges of one resource in a row, several open at once (the
	 * next ones are opened before the first is read, so that their round
	 * trips overlap; all from one thread): a transport SHOULD keep its
	 * connections open between them.  *ret_size is the whole resource's
	 * size or REIMAGE_SIZE_UNKNOWN.
	 * A server that does not honour the range (an http answer 200 with
	 * the whole resource) MUST be refused before any byte is delivered:
	 * -ENOTSUP with REIMAGE_EC_UNSUPPORTED (the core then reads the
	 * whole resource with open() instead).  A range past the end of the
	 * resource is -ERANGE, REIMAGE_EC_INTEGRITY.  Other errors as open().
	 * MAY be NULL: the core reads the whole resource instead. */
	int (*open_range)(void *ctx, const char *url, uint64_t offset, uint64_t length,
			  struct reimage_stream **ret_stream, uint64_t *ret_size,
			  struct reimage_error *err);

	/* fetch() of n small documents (no validator: each is read whole),
	 * with up to `parallel` requests in flight at once, in this one
	 * thread (http: libcurl's multi interface).  done() is called once
	 * per URL, in any order, from the calling thread, with what fetch()
	 * would have given: r 0 and the document (buf, len: valid during the
	 * call only) or r < 0 and err.  Returns 0 once done() was called for
	 * every URL, or < 0 (no memory) before any call.  The core reads
	 * reports of a whole fleet this way.  MAY be NULL: the core then
	 * calls fetch() for one URL after the other. */
	int (*fetch_many)(void *ctx, const char *const *urls, size_t n, size_t cap,
			  unsigned parallel,
			  void (*done)(void *arg, size_t i, int r, const void *buf, size_t len,
				       const struct reimage_error *err),
			  void *arg, struct reimage_error *err);
};

/* ----------------------------------------------------------------- backend */

/* Backend capabilities: the core plans from these before staging. */
#define REIMAGE_BCAP_EXCHANGE (1u << 0)  /* exchange() swaps two names atomically */
#define REIMAGE_BCAP_DEFER    (1u << 1)  /* move() may defer an in-use entry to reboot */
#define REIMAGE_BCAP_LABEL    (1u << 2)  /* set_label() works */
#define REIMAGE_BCAP_BOOT     (1u << 3)  /* set_boot() works */
#define REIMAGE_BCAP_LOGOUT   (1u << 4)  /* logout() ends user sessions */
#define REIMAGE_BCAP_QUIESCE  (1u << 5)  /* quiesce() stops unneeded processes */
#define REIMAGE_BCAP_REBOOT   (1u << 6)  /* reboot() restarts the machine */
#define REIMAGE_BCAP_MOUNTS   (1u << 7)  /* mount_copy() refreshes a mounted entry */
#define REIMAGE_BCAP_IMAGES   (1u << 8)  /* image_attach() opens the image_kinds */
/* The kernel runs the root's /sbin/init at boot, so the core can put
 * reimage-guard there for the new image's trial boots (the core's
 * trial.h): a new image that never reaches its agent falls back alone. */
#define REIMAGE_BCAP_GUARD    (1u << 9)
/* set_boot() loads boot.kexec's kernel for reboot() (a backend without it
 * is refused a job with boot.kexec, before anything is staged). */
#define REIMAGE_BCAP_KEXEC    (1u << 10)

/* What power() answers. */
enum reimage_power {
	REIMAGE_POWER_UNKNOWN = 0,  /* cannot tell (no power supply reported) */
	REIMAGE_POWER_AC = 1,       /* on mains power */
	REIMAGE_POWER_BATTERY = 2   /* on battery only */
};

/* Boot parameters of a job, passed to set_boot(). */
struct reimage_boot {
	const char *root;          /* the root being re-imaged */
	const char *command;       /* run inside the new root, NULL if none */
	const char *kernel;        /* kernel to boot next, relative to root, or NULL */
	const char *initrd;        /* initrd, relative to root, or NULL */
	const char *cmdline;       /* kernel command line, or NULL */
	int one_shot;              /* boot it once only where the platform can */
	int kexec;                 /* boot `kernel` (default boot/vmlinuz, with boot/initrd.img
				    * if there) with kexec; where it cannot be loaded the
				    * reboot goes through the firmware, and the backend logs why */
};

/* One account of a directory service, for accounts_list(). */
struct reimage_account {
	const char *name;
	const char *home;   /* absolute, as the root sees it ("/Users/alice"), or NULL */
	uint32_t uid;
	int login;          /* 1: an ordinary person's account */
};
typedef int (*reimage_account_fn)(void *arg, const struct reimage_account *account);

/* A notice to the logged-in users before QUIESCE (notify_users()). */
struct reimage_notice {
	uint32_t struct_size;      /* sizeof(struct reimage_notice) of the caller */
	const char *job;           /* the job's id */
	const char *text;          /* the whole message, countdown and how to defer included */
	int64_t seconds_left;      /* until QUIESCE; 0: it starts now */
	int deferrals_left;        /* 0: users may not defer this notice */
	int wait_ms;               /* how long to wait for answers after delivering */
};

/* What notify_users() found. */
#define REIMAGE_NOTICE_WHO_MAX 256
struct reimage_notice_result {
	int sessions;                        /* sessions the notice reached */
	char channels[REIMAGE_NOTICE_WHO_MAX];  /* how, for the report: "tty:/dev/pts/3 desktop:alice" */
	int defer;                           /* 1: a user asked to defer */
	char who[REIMAGE_NOTICE_WHO_MAX];    /* who asked: user and terminal */
};

struct reimage_backend_ops {
	uint32_t abi_version;    /* REIMAGE_PLUGIN_ABI */
	uint32_t struct_size;    /* sizeof(struct reimage_backend_ops) */
	const char *name;        /* e.g. "posix"; must match the file */
	uint32_t caps;           /* REIMAGE_BCAP_* */
	const struct reimage_option *options;  /* REIMAGE_OPT_END-terminated, may be NULL */

	/* Top-level names never swapped (pseudo filesystems, lost+found),
	 * NULL-terminated.  The user's configuration may replace the list. */
	const char *const *keep_entries;
	/* Paths (relative to the root, globs allowed) making up the
	 * `network` preserve set, NULL-terminated. */
	const char *const *network_paths;

	/* How well this backend fits the running system: 0 not at all,
	 * higher is better.  Called for backend = "auto" before init(). */
	int (*probe)(void);
	/* Called once in PREPARE.  *ret_ctx belongs to the plugin. */
	int (*init)(const struct reimage_host *host, const struct reimage_optval *values,
		    void **ret_ctx, struct reimage_error *err);
	void (*fini)(void *ctx);  /* MAY be NULL */

	/* PREPARE: after this returns 0 the agent MUST NOT need any file of
	 * the root's current image (libraries loaded, memory locked, the
	 * descriptors later hooks need opened).  MAY be NULL. */
	int (*prepare)(void *ctx, const char *root, struct reimage_error *err);
	/* QUIESCE, first half: end every user session.  REQUIRED with
	 * REIMAGE_BCAP_LOGOUT, else MAY be NULL. */
	int (*logout)(void *ctx, const char *root, struct reimage_error *err);
	/* QUIESCE, second half: stop every process the OS does not need,
	 * never the caller and its ancestors. */
	int (*quiesce)(void *ctx, const char *root, struct reimage_error *err);

	/* SWAP: rename path `from` to `to` (same volume; `to` must not exist).
	 * With REIMAGE_BCAP_DEFER an entry in use MAY be deferred; then it
	 * returns 1 and the move happens at the next boot. */
	int (*move)(void *ctx, const char *from, const char *to, struct reimage_error *err);
	/* SWAP: exchange two existing paths atomically.  REQUIRED with
	 * REIMAGE_BCAP_EXCHANGE, else NULL (the core then uses three moves). */
	int (*exchange)(void *ctx, const char *a, const char *b, struct reimage_error *err);
	/* 1 if path is a mount point, 0 if not, < 0 on error. */
	int (*is_mount)(void *ctx, const char *path, struct reimage_error *err);
	/* Make every completed rename on the volume holding path durable. */
	int (*sync)(void *ctx, const char *path, struct reimage_error *err);

	/* LABEL: rename the volume holding root.  MAY be NULL. */
	int (*set_label)(void *ctx, const char *root, const char *label,
			 struct reimage_error *err);
	/* BOOT: set boot parameters for the new image.  MAY be NULL. */
	int (*set_boot)(void *ctx, const struct reimage_boot *boot, struct reimage_error *err);
	/* REBOOT: flush and restart.  Returns only on failure (or, for a
	 * backend that only records, 0). */
	int (*reboot)(void *ctx, struct reimage_error *err);

	/* SWAP: the mounted top-level entry `mount` stays in place; copy the
	 * staged tree `staged` into it, keeping its old content under `aside`
	 * for rollback.  REQUIRED with REIMAGE_BCAP_MOUNTS. */
	int (*mount_copy)(void *ctx, const char *staged, const char *mount, const char *aside,
			  struct reimage_error *err);
	/* SWAP undone, or rollback: put back the content mount_copy() set
	 * aside (remove what is in `mount` but `aside` and lost+found, move
	 * aside's entries back, remove aside).  A missing aside is not an
	 * error.  REQUIRED with REIMAGE_BCAP_MOUNTS. */
	int (*mount_restore)(void *ctx, const char *mount, const char *aside,
			     struct reimage_error *err);

	/* Appended later: the core reads these only if struct_size covers them. */

	/* The kinds image_attach() opens, NULL-terminated: the core refuses
	 * any other kind in PREFLIGHT, before staging. */
	const char *const *image_kinds;
	/* STAGE: make the file-system image in the file `image` readable as
	 * a directory tree, read-only, without changing the running system
	 * (posix: a loop device and mount(2) in a private mount namespace;
	 * macOS: hdiutil attach -readonly -nobrowse -noverify).  kind names
	 * the image: "ext4", "raw" (any file system the OS can mount), "vhd",
	 * "vhdx", "wim".  scratch is an empty directory the backend MAY use
	 * as the mount point.  On success ret_tree (capacity tree_cap) holds
	 * the tree's path, valid until image_detach(); *ret_handle is the
	 * plugin's.  A kind the backend cannot open is UNSUPPORTED with a
	 * message naming the kind.  REQUIRED with REIMAGE_BCAP_IMAGES. */
	int (*image_attach)(void *ctx, const char *image, const char *kind, const char *scratch,
			    char *ret_tree, size_t tree_cap, void **ret_handle,
			    struct reimage_error *err);
	/* Undo image_attach() whatever happened in between (the core calls
	 * it on every path, success or failure).  The backend MUST also
	 * arrange that the image is detached if the agent dies while it is
	 * attached.  REQUIRED with REIMAGE_BCAP_IMAGES. */
	void (*image_detach)(void *ctx, void *handle);

	/* TRIAL, in the new image after its boot: 1 if the service unit
	 * (systemd unit, launchd label, Windows service) is active, 0 if not,
	 * < 0 if it cannot tell.  MAY be NULL: the core then refuses, in
	 * PREFLIGHT, a job whose health checks name units. */
	int (*unit_active)(void *ctx, const char *unit, struct reimage_error *err);

	/* PREFLIGHT: where the machine draws its power from, an enum
	 * reimage_power (>= 0), or < 0 on error.  The core refuses to start
	 * a job on BATTERY unless the job allows it.  MAY be NULL: UNKNOWN. */
	int (*power)(void *ctx, struct reimage_error *err);

	/* Appended for the macos backend (kept together). */

	/* PREFLIGHT, after init() and before prepare(): refuse a root this
	 * backend cannot swap, or boot parameters it cannot set, before
	 * anything is staged (macOS: a read-only or sealed system volume;
	 * boot.kernel on a system that boots only its own kernel).  boot is
	 * the job's boot parameters with boot->root = root, or NULL if the
	 * job sets none.  MUST NOT change anything on the root or the
	 * machine.  Returns 0, or < 0 with err set: EC_UNSUPPORTED with a
	 * message that says why and what to do instead; any other class if
	 * the check itself failed (the job is refused then too: the swap
	 * never starts on a guess).  MAY be NULL. */
	int (*preflight)(void *ctx, const char *root, const struct reimage_boot *boot,
			 struct reimage_error *err);

	/* Accounts kept in a directory service rather than in etc/passwd
	 * (macOS: Open Directory's local node).  A backend sets both or
	 * neither; without them the core reads and merges etc/passwd,
	 * shadow, group and gshadow itself. */

	/* PREFLIGHT (collecting what PRESERVE keeps): call each(arg, a) for
	 * every account of root's directory service, read from the root's
	 * files, never from the running system's service.  a and its
	 * strings are valid during the call only.  a->login says whether
	 * `users = "all"` keeps it (an ordinary person's account, not a
	 * service's).  each() returning < 0 stops the listing with that
	 * code.  MUST NOT change anything. */
	int (*accounts_list)(void *ctx, const char *root, reimage_account_fn each, void *arg,
			     struct reimage_error *err);
	/* PRESERVE, before the swap: copy the records of users (names,
	 * NULL-terminated, each listed by accounts_list) from root's
	 * directory service into the staged image's at staging, replacing
	 * the staged image's record of the same name, with the users'
	 * memberships in groups the staged image has.  Changes nothing but
	 * staging.  A user without a record is EC_NOTFOUND. */
	int (*accounts_copy)(void *ctx, const char *root, const char *staging,
			     const char *const *users, struct reimage_error *err);

	/* Moves deferred to the boot (REIMAGE_BCAP_DEFER; Windows).  move()
	 * returns 1 when it left an entry in use to be moved at the next
	 * boot.  Once a move is deferred, a later move whose source or
	 * destination is, contains or lies under a path of a move still
	 * deferred MUST be deferred too, so the boot performs them in the
	 * order they were asked (the old entry retired before the new one
	 * moves in).  The core journals each deferred step, names them in
	 * the job's state and report, and after the boot checks on the tree
	 * that every one was done before it commits.
	 *
	 * deferred_cancel: the swap is undone before the boot: forget every
	 * deferred move with a source or destination under dir (the core
	 * passes <root>/.reimage: every move of a swap has a side there), and
	 * no other.  Nothing deferred is not an error.  REQUIRED with
	 * REIMAGE_BCAP_DEFER. */
	int (*deferred_cancel)(void *ctx, const char *dir, struct reimage_error *err);

	/* WINDOW, before QUIESCE: deliver notice->text to every logged-in
	 * user session the OS knows (Linux: logind sessions where systemd
	 * runs, else utmp; a write to each session's terminal as wall(1)
	 * does, a desktop notification where a desktop session runs; macOS:
	 * a dialog in the console user's session; Windows: WTSSendMessage),
	 * then wait up to notice->wait_ms for a user's answer.  When
	 * notice->deferrals_left > 0 the text tells the user how to defer
	 * and an answer "defer" sets ret->defer and ret->who.  MUST NOT
	 * block longer than wait_ms plus a few seconds per session, MUST NOT
	 * end or change any session; a session it cannot reach is skipped
	 * and not counted.  ret is zeroed by the caller.  Returns 0 (also
	 * with no session: ret->sessions = 0) or < 0 if sessions cannot be
	 * listed at all.  MAY be NULL: the core then reports that users were
	 * not warned and goes on. */
	int (*notify_users)(void *ctx, const struct reimage_notice *notice,
			    struct reimage_notice_result *ret, struct reimage_error *err);
	/* WINDOW: 1 if an activity that must not be interrupted runs (one of
	 * the processes named, NULL-terminated; a presentation, a call), with
	 * its name in ret_what (capacity cap); 0 if none; < 0 on error.  MAY
	 * be NULL: the core then refuses, in PREFLIGHT, a job that names
	 * inhibitors. */
	int (*inhibited)(void *ctx, const char *const *processes, char *ret_what, size_t cap,
			 struct reimage_error *err);

	/* COMMIT, in the new image after its boot (the agent's boot check,
	 * `reimage confirm`), before "committed" is written: bring back what
	 * prepare() saved under <root>/.reimage for the new image (Windows:
	 * Wi-Fi profiles, network and user-profile registry keys).  What is
	 * restored is removed, so that a call after an interrupted commit
	 * does only what is left; nothing to restore is 0.  A failure leaves
	 * the job uncommitted and reported failed, the old image kept for
	 * `reimage rollback`.  MAY be NULL: prepare() saved nothing. */
	int (*restore)(void *ctx, const char *root, struct reimage_error *err);
};

/* ------------------------------------------------------------------- entry */

enum reimage_plugin_kind {
	REIMAGE_PLUGIN_TRANSPORT = 1,
	REIMAGE_PLUGIN_BACKEND = 2
};

struct reimage_plugin {
	uint32_t abi_version;            /* REIMAGE_PLUGIN_ABI */
	enum reimage_plugin_kind kind;
	const struct reimage_transport_ops *transport;  /* for TRANSPORT */
	const struct reimage_backend_ops *backend;      /* for BACKEND */
};

/* The one symbol a plugin exports, reimage_plugin_entry, spelled
 * <module>_LTX_reimage_plugin_entry (module name with '-' as '_': libltdl's
 * prefix rule, so that plugins can also be preloaded into one binary). */
typedef const struct reimage_plugin *(*reimage_plugin_entry_fn)(void);

#if defined(_WIN32)
#define REIMAGE_PLUGIN_EXPORT __declspec(dllexport)
#else
#define REIMAGE_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* The end of every plugin's source: its description and its entry.
 *   REIMAGE_PLUGIN(posix, BACKEND, backend, posix_ops)
 *   REIMAGE_PLUGIN(transport_http, TRANSPORT, transport, http_ops)
 * module: the module's name with '-' as '_'; the ops table named is the
 * plugin's one const ops struct. */
#define REIMAGE_PLUGIN(module, KIND, member, ops)                                        \
	static const struct reimage_plugin module##_plugin_description = {                 \
		.abi_version = REIMAGE_PLUGIN_ABI,                                           \
		.kind = REIMAGE_PLUGIN_##KIND,                                               \
		.member = &(ops),                                                            \
	};                                                                                   \
	REIMAGE_PLUGIN_EXPORT const struct reimage_plugin *module##_LTX_reimage_plugin_entry( \
		void);                                                                       \
	const struct reimage_plugin *module##_LTX_reimage_plugin_entry(void)                 \
	{                                                                                    \
		return &module##_plugin_description;                                         \
	}

#ifdef __cplusplus
}
#endif

#endif /* REIMAGE_PLUGIN_H */
