/*
 * registry.h -- every plugin the process knows: the built-ins and the
 * modules loaded from the plugin path, in one table.  Lookups by URL
 * scheme (transports) and by name or probe (backends).
 */
#ifndef REIMAGE_REGISTRY_H
#define REIMAGE_REGISTRY_H

#include "loader.h"

#include <libconfig.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <reimage/plugin.h>

#define REGISTRY_MAX 32

/* Ops tables only grow at their end: a plugin has a hook only if the
 * table it was built with (struct_size) reaches past it. */
#define OPS_END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))
#define OPS_HAS(ops, type, member) \
	((ops)->struct_size >= OPS_END_OF(type, member) && (ops)->member != NULL)

struct plugin {
	char name[64];
	char file[4096];  /* "(built-in)" for built-ins */
	const struct reimage_plugin *desc;
	const struct reimage_option *options;
	struct reimage_optval *values;  /* after plugin_configure() */
	void *ctx;                      /* after plugin_start(): what its hooks take */
	int started;
	/* A transport's hooks as the core calls them, after plugin_start():
	 * each call of the plugin's own made under call_lock, with own_ctx
	 * (transport_lock.h).  Use these, never desc->transport's. */
	const struct reimage_transport_ops *transport;
	void *own_ctx;
	struct reimage_transport_ops locked;
	pthread_mutex_t call_lock;
};

struct registry {
	struct plugin plugins[REGISTRY_MAX];
	size_t count;
	struct loader loader;
	int sealed;  /* PREPARE is over: no more loading */
};

/* The host table handed to plugins. */
extern const struct reimage_host registry_host;
/* Plugins see a stop request through registry_host.stopping(): stop is
 * the flag the process's SIGTERM/SIGINT handler sets (NULL: none). */
void registry_watch_stop(const volatile sig_atomic_t *stop);

/* Registers the built-ins.  search_path: directories to load modules
 * from, NULL-terminated (REIMAGE_PLUGIN_PATH is added in front). */
int registry_init(struct registry *reg, const char *const *search_path,
		  struct reimage_error *err);
void registry_fini(struct registry *reg);
/* Validate a plugin description and add it (built-ins and loaded ones). */
int registry_add(struct registry *reg, const char *name, const char *file,
		 const struct reimage_plugin *desc, struct reimage_error *err);
struct plugin *registry_find(struct registry *reg, const char *name);
/* Find name, loading the module if it is not registered yet. */
int registry_require(struct registry *reg, const char *name, struct plugin **ret,
		     struct reimage_error *err);
/* The transport serving url's scheme (plain paths are "file"), loaded if
 * needed; "smb: plugin transport-smb is not installed" if it cannot be. */
int registry_transport_for(struct registry *reg, const char *url, struct plugin **ret,
			   struct reimage_error *err);
/* A backend by name, or the best probe of every known backend for "auto". */
int registry_backend(struct registry *reg, const char *name, struct plugin **ret,
		     struct reimage_error *err);
/* Print the plugin's effective settings, one a line after indent, each
 * with where it came from (file:line, or "default"); a setting whose name
 * says it is a secret (password, token, secret) shows "(set)" only. */
void plugin_print_settings(const struct plugin *p, FILE *out, const char *indent);
/* Read the plugin's own group (may be NULL) against its options. */
int plugin_configure(struct plugin *p, const config_setting_t *group,
		     struct reimage_error *err);
/* The same over several groups, earliest first: a later group's settings
 * replace an earlier one's one by one (options_read_groups). */
int plugin_configure_groups(struct plugin *p, const config_setting_t *const *groups, size_t n_groups,
			    struct reimage_error *err);
/* Call init() once (configuring with defaults first if needed). */
int plugin_start(struct plugin *p, struct reimage_error *err);
/* The module name that serves scheme, from the table of known names. */
const char *registry_scheme_plugin(const char *scheme);
/* 1 if name is a plugin reimage knows of (loaded or not). */
int registry_known_plugin(const char *name);

#endif
