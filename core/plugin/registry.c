/*
 * registry.c -- the one table of plugins (see registry.h).  Built-ins are
 * registered below by plain calls, through the same registry_add() that
 * checks loaded modules; no constructors, no linker sections.
 */
#include "registry.h"
#include "builtin.h"
#include "error.h"
#include "loader.h"
#include "log.h"
#include "options.h"
#include "transport_lock.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static void host_log(enum reimage_loglevel level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(level, "%s", buf);
}

static void host_error(struct reimage_error *err, int code, enum reimage_errclass cls,
		       const char *fmt, ...)
{
	char buf[REIMAGE_ERRMSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	err_set(err, code, cls, "%s", buf);
}

/* The process's stop flag (set by its signal handler), if it has one. */
static const volatile sig_atomic_t *stop_flag;

void registry_watch_stop(const volatile sig_atomic_t *stop)
{
	stop_flag = stop;
}

static int host_stopping(void)
{
	return stop_flag && *stop_flag;
}

const struct reimage_host registry_host = {
	.abi_version = REIMAGE_PLUGIN_ABI,
	.struct_size = sizeof(struct reimage_host),
	.error = host_error,
	.log = host_log,
	.stopping = host_stopping,
};

/* Every name reimage knows, installed or not, so that errors can say
 * "not installed" rather than "unknown". */
static const struct {
	const char *scheme;
	const char *plugin;
} scheme_table[] = {
	{ "file", "file" },
	{ "http", "transport-http" },
	{ "https", "transport-http" },
	{ "s3", "transport-http" },
	{ "smb", "transport-smb" },
};

/* Probed in this order for backend = "auto"; sandbox never fits a real OS. */
static const char *const backend_names[] = { "posix", "macos", "windows", "sandbox", NULL };

const char *registry_scheme_plugin(const char *scheme)
{
	for (size_t i = 0; i < sizeof(scheme_table) / sizeof(scheme_table[0]); i++)
		if (strcmp(scheme_table[i].scheme, scheme) == 0)
			return scheme_table[i].plugin;
	return NULL;
}

int registry_known_plugin(const char *name)
{
	for (size_t i = 0; i < sizeof(scheme_table) / sizeof(scheme_table[0]); i++)
		if (strcmp(scheme_table[i].plugin, name) == 0)
			return 1;
	for (size_t i = 0; backend_names[i]; i++)
		if (strcmp(backend_names[i], name) == 0)
			return 1;
	return 0;
}

int registry_init(struct registry *reg, const char *const *search_path,
		  struct reimage_error *err)
{
	memset(reg, 0, sizeof(*reg));
	reg->loader.search_path = search_path;
	/* The one built-in: the local-path transport, so the whole flow runs
	 * without a server.  Every backend is a module (the sandbox backend
	 * too: it needs the posix backend's renames, which the core never
	 * links). */
	if (registry_add(reg, "file", "(built-in)", file_LTX_reimage_plugin_entry(), err) < 0)
		return -EINVAL;
	return 0;
}

void registry_fini(struct registry *reg)
{
	for (size_t i = 0; i < reg->count; i++) {
		struct plugin *p = &reg->plugins[i];
		if (p->started) {
			if (p->desc->kind == REIMAGE_PLUGIN_TRANSPORT) {
				transport_lock_stop(p);
				if (p->desc->transport->fini)
					p->desc->transport->fini(p->own_ctx);
			}
			if (p->desc->kind == REIMAGE_PLUGIN_BACKEND && p->desc->backend->fini)
				p->desc->backend->fini(p->ctx);
		}
		if (p->values) {
			options_free(p->options, p->values);
			free(p->values);
		}
	}
	loader_exit(&reg->loader);
	reg->count = 0;
}

static int check_ops(const char *file, uint32_t abi, uint32_t size,
		     size_t min_size, const char *ops_name, struct reimage_error *err)
{
	if (abi != REIMAGE_PLUGIN_ABI) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"plugin %s: ABI version %u, this reimage expects %u", file, abi,
			REIMAGE_PLUGIN_ABI);
		return -EINVAL;
	}
	if (size < min_size) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"plugin %s: %s table is %u bytes, at least %zu expected", file, ops_name,
			size, min_size);
		return -EINVAL;
	}
	return 0;
}

/* The hooks every backend needs, and those each capability needs.  A
 * backend that declares a capability without its hooks is refused here,
 * at load, not found out in the middle of a swap or of its undo. */
#define HOOK(member) #member, offsetof(struct reimage_backend_ops, member), \
	OPS_END_OF(struct reimage_backend_ops, member)
static const struct required_hook {
	uint32_t cap;  /* 0: every backend */
	const char *cap_name;
	const char *hook;
	size_t offset, end;
} required_hooks[] = {
	{ 0, NULL, HOOK(probe) },
	{ 0, NULL, HOOK(move) },
	{ 0, NULL, HOOK(is_mount) },
	{ 0, NULL, HOOK(sync) },
	{ REIMAGE_BCAP_EXCHANGE, "EXCHANGE", HOOK(exchange) },
	{ REIMAGE_BCAP_LOGOUT, "LOGOUT", HOOK(logout) },
	{ REIMAGE_BCAP_QUIESCE, "QUIESCE", HOOK(quiesce) },
	{ REIMAGE_BCAP_LABEL, "LABEL", HOOK(set_label) },
	{ REIMAGE_BCAP_BOOT, "BOOT", HOOK(set_boot) },
	{ REIMAGE_BCAP_REBOOT, "REBOOT", HOOK(reboot) },
	{ REIMAGE_BCAP_KEXEC, "KEXEC", HOOK(set_boot) },
	{ REIMAGE_BCAP_KEXEC, "KEXEC", HOOK(reboot) },
	{ REIMAGE_BCAP_MOUNTS, "MOUNTS", HOOK(mount_copy) },
	{ REIMAGE_BCAP_MOUNTS, "MOUNTS", HOOK(mount_restore) },
	{ REIMAGE_BCAP_IMAGES, "IMAGES", HOOK(image_kinds) },
	{ REIMAGE_BCAP_IMAGES, "IMAGES", HOOK(image_attach) },
	{ REIMAGE_BCAP_IMAGES, "IMAGES", HOOK(image_detach) },
	{ REIMAGE_BCAP_DEFER, "DEFER", HOOK(deferred_cancel) },
};
#undef HOOK

static int check_backend_hooks(const char *file, const struct reimage_backend_ops *b,
			       struct reimage_error *err)
{
	for (size_t i = 0; i < sizeof(required_hooks) / sizeof(required_hooks[0]); i++) {
		const struct required_hook *h = &required_hooks[i];
		unsigned char set = 0;  /* a NULL pointer is all zero bytes */

		if (h->cap && !(b->caps & h->cap))
			continue;
		for (size_t k = h->offset; b->struct_size >= h->end && k < h->end; k++)
			set |= ((const unsigned char *)b)[k];
		if (set)
			continue;
		if (h->cap)
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "plugin %s: backend declares "
				"REIMAGE_BCAP_%s but has no %s hook", file, h->cap_name, h->hook);
		else
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "plugin %s: backend has no %s hook",
				file, h->hook);
		return -EINVAL;
	}
	return 0;
}

int registry_add(struct registry *reg, const char *name, const char *file,
		 const struct reimage_plugin *desc, struct reimage_error *err)
{
	const char *opsname;
	struct plugin *p;
	int r;

	if (!desc) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "plugin %s: entry returned no description", file);
		return -EINVAL;
	}
	if (desc->abi_version != REIMAGE_PLUGIN_ABI) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"plugin %s: ABI version %u, this reimage expects %u", file,
			desc->abi_version, REIMAGE_PLUGIN_ABI);
		return -EINVAL;
	}
	if (desc->kind == REIMAGE_PLUGIN_TRANSPORT && desc->transport) {
		const struct reimage_transport_ops *t = desc->transport;
		if (check_ops(file, t->abi_version, t->struct_size,
			      OPS_END_OF(struct reimage_transport_ops, close), "transport", err) < 0)
			return -EINVAL;
		if (!t->schemes || !t->open || !t->read || !t->close) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
				"plugin %s: transport lacks schemes, open, read or close", file);
			return -EINVAL;
		}
		opsname = t->name;
	} else if (desc->kind == REIMAGE_PLUGIN_BACKEND && desc->backend) {
		const struct reimage_backend_ops *b = desc->backend;
		if (check_ops(file, b->abi_version, b->struct_size,
			      OPS_END_OF(struct reimage_backend_ops, sync), "backend", err) < 0)
			return -EINVAL;
		if ((r = check_backend_hooks(file, b, err)) < 0)
			return r;
		opsname = b->name;
	} else {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "plugin %s: unknown plugin kind %d", file,
			(int)desc->kind);
		return -EINVAL;
	}
	if (!opsname || strcmp(opsname, name) != 0) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"plugin %s: calls itself '%s', expected '%s'", file,
			opsname ? opsname : "(null)", name);
		return -EINVAL;
	}
	if (registry_find(reg, name)) {
		err_set(err, -EEXIST, REIMAGE_EC_CONFIG, "plugin %s: '%s' is already registered",
			file, name);
		return -EEXIST;
	}
	if (reg->count == REGISTRY_MAX) {
		err_set(err, -ENOSPC, REIMAGE_EC_CONFIG, "plugin %s: too many plugins", file);
		return -ENOSPC;
	}
	p = &reg->plugins[reg->count++];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->file, sizeof(p->file), "%s", file);
	p->desc = desc;
	p->options = desc->kind == REIMAGE_PLUGIN_TRANSPORT ? desc->transport->options
							    : desc->backend->options;
	return 0;
}

struct plugin *registry_find(struct registry *reg, const char *name)
{
	for (size_t i = 0; i < reg->count; i++)
		if (strcmp(reg->plugins[i].name, name) == 0)
			return &reg->plugins[i];
	return NULL;
}

int registry_require(struct registry *reg, const char *name, struct plugin **ret,
		     struct reimage_error *err)
{
	struct plugin *p = registry_find(reg, name);
	if (!p) {
		const struct reimage_plugin *desc;
		char file[sizeof(p->file)];
		int r;
		if (reg->sealed) {
			err_set(err, -EPERM, REIMAGE_EC_STATE, "plugin %s: loading is closed after "
				"PREPARE (name it in the configuration)", name);
			return -EPERM;
		}
		if ((r = loader_load(&reg->loader, name, &desc, file, sizeof(file), err)) < 0 ||
		    (r = registry_add(reg, name, file, desc, err)) < 0)
			return r;
		p = registry_find(reg, name);
	}
	*ret = p;
	return 0;
}

int registry_transport_for(struct registry *reg, const char *url, struct plugin **ret,
			   struct reimage_error *err)
{
	char scheme[32];
	const char *colon = strchr(url, ':');
	const char *slash = strchr(url, '/');
	const char *name;
	struct plugin *p;
	int r;

	/* A plain path, or a Windows drive letter, is a local file. */
	if (!colon || (slash && slash < colon) || colon - url == 1) {
		snprintf(scheme, sizeof(scheme), "file");
	} else if ((size_t)(colon - url) >= sizeof(scheme)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "URL '%s': scheme too long", url);
		return -EINVAL;
	} else {
		memcpy(scheme, url, (size_t)(colon - url));
		scheme[colon - url] = '\0';
		for (char *c = scheme; *c; c++)
			*c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
	}
	/* A loaded plugin may serve a scheme the table does not know. */
	for (size_t i = 0; i < reg->count; i++) {
		p = &reg->plugins[i];
		if (p->desc->kind != REIMAGE_PLUGIN_TRANSPORT)
			continue;
		for (const char *const *s = p->desc->transport->schemes; *s; s++)
			if (strcmp(*s, scheme) == 0) {
				*ret = p;
				return 0;
			}
	}
	name = registry_scheme_plugin(scheme);
	if (!name) {
		err_set(err, -ENOENT, REIMAGE_EC_CONFIG, "URL '%s': no transport serves '%s:'", url,
			scheme);
		return -ENOENT;
	}
	r = registry_require(reg, name, &p, err);
	if (r < 0) {
		if (err->cls == REIMAGE_EC_NOTFOUND) {
			err_clear(err);
			err_set(err, r, REIMAGE_EC_NOTFOUND, "%s: plugin %s is not installed (plugin "
				"path: %s)", scheme, name, loader_search_path(&reg->loader));
		}
		return r;
	}
	if (p->desc->kind != REIMAGE_PLUGIN_TRANSPORT) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: plugin %s is not a transport", scheme, name);
		return -EINVAL;
	}
	*ret = p;
	return 0;
}

/* A backend that is not installed: a configuration error (exit 2) that
 * names the backends installed and where they were looked for. */
static void unknown_backend(struct registry *reg, const char *name, int r,
			    struct reimage_error *err)
{
	char installed[256] = "";
	size_t len = 0;

	for (size_t i = 0; backend_names[i] && len < sizeof(installed); i++) {
		struct reimage_error e = { 0 };
		struct plugin *p;
		if (registry_require(reg, backend_names[i], &p, &e) == 0 &&
		    p->desc->kind == REIMAGE_PLUGIN_BACKEND)
			len += (size_t)snprintf(installed + len, sizeof(installed) - len, "%s%s",
						len ? ", " : "", backend_names[i]);
	}
	err_clear(err);
	err_set(err, r, REIMAGE_EC_CONFIG, "backend %s: %s%s is not installed; installed: %s "
		"(searched %s)", name, registry_known_plugin(name) ? "plugin " : "no such backend: ",
		name, len ? installed : "none", loader_search_path(&reg->loader));
}

int registry_backend(struct registry *reg, const char *name, struct plugin **ret,
		     struct reimage_error *err)
{
	struct plugin *p, *best = NULL;
	int best_score = 0, r;
	char tried[512] = "";

	if (strcmp(name, "auto") != 0) {
		r = registry_require(reg, name, &p, err);
		if (r < 0) {
			if (err->cls == REIMAGE_EC_NOTFOUND)
				unknown_backend(reg, name, r, err);
			return r;
		}
		if (p->desc->kind != REIMAGE_PLUGIN_BACKEND) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "plugin %s is not a backend", name);
			return -EINVAL;
		}
		*ret = p;
		return 0;
	}
	for (size_t i = 0; backend_names[i]; i++) {
		struct reimage_error e = { 0 };
		size_t len = strlen(tried);
		if (registry_require(reg, backend_names[i], &p, &e) < 0) {
			snprintf(tried + len, sizeof(tried) - len, "%s%s: %s", len ? "; " : "",
				 backend_names[i], e.cls == REIMAGE_EC_NOTFOUND ? "not installed" : e.msg);
			continue;
		}
		if (p->desc->kind != REIMAGE_PLUGIN_BACKEND)
			continue;
		int score = p->desc->backend->probe();
		snprintf(tried + len, sizeof(tried) - len, "%s%s: %s", len ? "; " : "",
			 backend_names[i], score > 0 ? "fits" : "does not fit");
		if (score > best_score) {
			best_score = score;
			best = p;
		}
	}
	if (!best) {
		err_set(err, -ENOENT, REIMAGE_EC_NOTFOUND,
			"backend auto: no installed backend fits this system (%s)", tried);
		return -ENOENT;
	}
	*ret = best;
	return 0;
}

static int secret_name(const char *name)
{
	static const char *const words[] = { "password", "token", "secret", NULL };
	for (const char *const *w = words; *w; w++)
		if (strstr(name, *w))
			return 1;
	return 0;
}

void plugin_print_settings(const struct plugin *p, FILE *out, const char *indent)
{
	for (size_t i = 0; p->options && p->values && p->options[i].type != REIMAGE_OPT_END; i++) {
		const struct reimage_option *o = &p->options[i];
		const struct reimage_optval *v = &p->values[i];
		char where[4200];

		if (!v->set || o->type == REIMAGE_OPT_GROUP)
			continue;
		if (v->file)
			snprintf(where, sizeof(where), "%s:%d", v->file, v->line);
		else
			snprintf(where, sizeof(where), "default");
		fprintf(out, "%s%s.%s = ", indent, p->name, o->name);
		if (secret_name(o->name))
			fprintf(out, "(set)");
		else if (o->type == REIMAGE_OPT_BOOL)
			fprintf(out, "%s", v->i ? "true" : "false");
		else if (o->type == REIMAGE_OPT_INT)
			fprintf(out, "%lld", v->i);
		else if (o->type == REIMAGE_OPT_STRING)
			fprintf(out, "\"%s\"", v->s ? v->s : "");
		else
			for (size_t k = 0; k < v->n; k++)
				fprintf(out, "%s\"%s\"", k ? ", " : "[ ", v->list[k]);
		fprintf(out, "%s  (%s)\n", o->type == REIMAGE_OPT_STRINGS ? (v->n ? " ]" : "[ ]") : "",
			where);
	}
}

int plugin_configure(struct plugin *p, const config_setting_t *group,
		     struct reimage_error *err)
{
	return plugin_configure_groups(p, &group, 1, err);
}

int plugin_configure_groups(struct plugin *p, const config_setting_t *const *groups, size_t n_groups,
			    struct reimage_error *err)
{
	char where[128];
	size_t n = options_count(p->options);

	if (p->values) {
		options_free(p->options, p->values);
		free(p->values);
	}
	p->values = calloc(n + 1, sizeof(*p->values));
	if (!p->values) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	snprintf(where, sizeof(where), "group '%s'", p->name);
	return options_read_groups(groups, n_groups, where, p->options, p->values, 0, err);
}

int plugin_start(struct plugin *p, struct reimage_error *err)
{
	int r;

	if (p->started)
		return 0;
	if (!p->values && (r = plugin_configure(p, NULL, err)) < 0)
		return r;
	if (p->desc->kind == REIMAGE_PLUGIN_TRANSPORT) {
		r = p->desc->transport->init ? p->desc->transport->init(&registry_host, p->values,
									  &p->own_ctx, err) : 0;
		if (r == 0 && transport_lock_start(p) < 0) {
			if (p->desc->transport->fini)
				p->desc->transport->fini(p->own_ctx);
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			r = -ENOMEM;
		}
	} else
		r = p->desc->backend->init ? p->desc->backend->init(&registry_host, p->values,
								      &p->ctx, err) : 0;
	if (r < 0) {
		err_prefix(err, "plugin %s", p->name);
		return r;
	}
	p->started = 1;
	return 0;
}
