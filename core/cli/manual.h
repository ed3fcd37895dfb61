/*
 * manual.h -- the reference both programs print from their declarations:
 * `reimage options` (text), the manual pages and bash completion (roff
 * and shell, rendered from templates in docs/man/ at build time).  A
 * setting or option without documentation is an error here, so none can
 * be installed undocumented.
 */
#ifndef REIMAGE_MANUAL_H
#define REIMAGE_MANUAL_H

#include "command.h"

#include <reimage/plugin.h>
#include <stdio.h>

struct reimage_error;

/* One table of settings: the job file's top level or one of its groups,
 * the agent file's, or a plugin's group (file NULL: not installed). */
enum settings_kind { SETTINGS_JOB, SETTINGS_AGENT, SETTINGS_PLUGIN };

struct settings_group {
	enum settings_kind kind;
	const char *title;  /* "job file", "group 'health'", ... */
	const char *plugin; /* the plugin's name, or NULL for the core's */
	const char *file;   /* the module's path, for installed plugins */
	const struct reimage_option *table;
};

/* Calls fn for every table, in the order `reimage options` prints them;
 * plugins are loaded from plugin_path (NULL-terminated, may be NULL) and
 * $REIMAGE_PLUGIN_PATH.  Stops at fn's first negative return. */
int settings_walk(const char *const *plugin_path,
		  int (*fn)(const struct settings_group *g, void *ctx), void *ctx,
		  struct reimage_error *err);

/* "integer 1..100", "string", ... */
void option_type_text(const struct reimage_option *o, char *buf, size_t len);

/* One table of settings as roff; a setting without doc is an error. */
int manual_settings(FILE *out, const struct settings_group *g, struct reimage_error *err);

/* Copies the template at path to out, replacing each directive line
 * (".\"% NAME" in roff, "#% NAME" in shell):
 *   commands  each command of p: synopsis, text and options
 *   options   p's options every command takes
 *   exit      p's exit codes
 *   settings job|agent|plugins  those settings tables (settings_walk)
 *   completion  a bash completion function for p
 * An option, command or setting with empty text is an error naming it. */
int manual_render(const struct cli_program *p, const char *const *plugin_path, const char *path,
		  FILE *out, struct reimage_error *err);

#endif
