/*
 * options.h -- declared settings read from a libconfig group.  Every
 * setting is declared once (struct reimage_option: name, type, default,
 * bounds, doc); reading a group checks each value and rejects any setting
 * the table does not name, with the file and line in the error.
 */
#ifndef REIMAGE_OPTIONS_H
#define REIMAGE_OPTIONS_H

#include <libconfig.h>
#include <reimage/plugin.h>

/* options_read() flags */
#define OPTS_ALLOW_GROUPS 1u  /* leave unknown groups to the caller */

size_t options_count(const struct reimage_option *table);
/* values: an array of options_count(table) items, zeroed by the caller.
 * group may be NULL (all defaults).  where: a name for errors ("job file",
 * "group 'transport-http'").  Strings point into the config, which must
 * outlive values; lists are allocated: release them with options_free(). */
int options_read(const config_setting_t *group, const char *where,
		 const struct reimage_option *table, struct reimage_optval *values,
		 unsigned flags, struct reimage_error *err);
/* The same over several groups, earliest first: a setting in a later
 * group replaces the same setting of an earlier one, one by one (a job's
 * group over the agent file's); NULL groups are skipped. */
int options_read_groups(const config_setting_t *const *groups, size_t n_groups,
			const char *where, const struct reimage_option *table,
			struct reimage_optval *values, unsigned flags, struct reimage_error *err);
void options_free(const struct reimage_option *table, struct reimage_optval *values);
/* The index of the option called name in table, or -1. */
int options_index(const struct reimage_option *table, const char *name);
/* String lists as settings give them (NULL-terminated; NULL is empty). */
int strlist_has(const char *const *list, const char *s);
/* qsort comparator for an array of char *. */
int strlist_cmp(const void *a, const void *b);
/* "FILE:LINE" of a setting, for errors. */
void options_where(const config_setting_t *s, char *buf, size_t len);

#endif
