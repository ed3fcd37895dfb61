/*
 * options.c -- reading declared settings (see options.h).  Used for the
 * agent file, the job file and each plugin's own group, so every
 * configuration error reads the same way: "FILE:LINE: setting 'x': ...".
 */
#include "options.h"
#include "error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t options_count(const struct reimage_option *table)
{
	size_t n = 0;
	while (table && table[n].type != REIMAGE_OPT_END)
		n++;
	return n;
}

void options_where(const config_setting_t *s, char *buf, size_t len)
{
	const char *file = config_setting_source_file(s);
	/* A configuration read from a document carries its name (its URL) as
	 * the root setting's hook. */
	if (!file && s->config)
		file = config_setting_get_hook(config_root_setting(s->config));
	snprintf(buf, len, "%s:%u", file ? file : "(config)", config_setting_source_line(s));
}

static int bad(struct reimage_error *err, const config_setting_t *s, const char *name,
	       const char *fmt, const char *detail)
{
	char where[512], what[256];
	options_where(s, where, sizeof(where));
	snprintf(what, sizeof(what), fmt, detail);
	err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: setting '%s': %s", where, name, what);
	return -EINVAL;
}

static const char **list_alloc(size_t n)
{
	return calloc(n + 1, sizeof(const char *));
}

static int parse_default(const struct reimage_option *o, struct reimage_optval *v,
			 struct reimage_error *err)
{
	v->set = 1;
	switch (o->type) {
	case REIMAGE_OPT_BOOL:
		v->i = strcmp(o->def, "true") == 0;
		return 0;
	case REIMAGE_OPT_INT:
		v->i = strtoll(o->def, NULL, 0);
		return 0;
	case REIMAGE_OPT_STRING:
		v->s = o->def;
		return 0;
	case REIMAGE_OPT_STRINGS: {
		/* A default list is written "a,b,c" ("" for an empty list). */
		size_t n = *o->def ? 1 : 0;
		for (const char *p = o->def; *p; p++)
			n += *p == ',';
		const char **list = list_alloc(n);
		char *copy = strdup(o->def);
		if (!list || !copy) {
			free(list);
			free(copy);
			err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		size_t i = 0;
		v->owned = copy;
		for (char *save = NULL, *t = strtok_r(copy, ",", &save); t;
		     t = strtok_r(NULL, ",", &save))
			list[i++] = t;
		v->list = list;
		v->n = i;
		return 0;
	}
	default:
		v->set = 0;
		return 0;
	}
}

static int read_strings(const config_setting_t *s, const char *name, struct reimage_optval *v,
			struct reimage_error *err)
{
	int type = config_setting_type(s);

	if (type == CONFIG_TYPE_STRING) {
		const char **list = list_alloc(1);
		if (!list)
			return bad(err, s, name, "%s", "out of memory");
		list[0] = config_setting_get_string(s);
		v->list = list;
		v->n = 1;
		return 0;
	}
	if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
		return bad(err, s, name, "%s", "expected a string or a list of strings");
	size_t n = (size_t)config_setting_length(s);
	const char **list = list_alloc(n);
	if (!list)
		return bad(err, s, name, "%s", "out of memory");
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *item = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(item) != CONFIG_TYPE_STRING) {
			free(list);
			return bad(err, item, name, "%s", "every item must be a string");
		}
		list[i] = config_setting_get_string(item);
	}
	v->list = list;
	v->n = n;
	return 0;
}

static int read_one(const config_setting_t *s, const struct reimage_option *o,
		    struct reimage_optval *v, struct reimage_error *err)
{
	int type = config_setting_type(s);
	char num[64];

	switch (o->type) {
	case REIMAGE_OPT_BOOL:
		if (type != CONFIG_TYPE_BOOL)
			return bad(err, s, o->name, "%s", "expected true or false");
		v->i = config_setting_get_bool(s);
		break;
	case REIMAGE_OPT_INT:
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64)
			return bad(err, s, o->name, "%s", "expected an integer");
		v->i = config_setting_get_int64(s);
		if (v->i < o->min || v->i > o->max) {
			snprintf(num, sizeof(num), "%lld..%lld", o->min, o->max);
			return bad(err, s, o->name, "out of range (allowed %s)", num);
		}
		break;
	case REIMAGE_OPT_STRING:
		if (type != CONFIG_TYPE_STRING)
			return bad(err, s, o->name, "%s", "expected a string");
		v->s = config_setting_get_string(s);
		break;
	case REIMAGE_OPT_STRINGS:
		if (read_strings(s, o->name, v, err) < 0)
			return -EINVAL;
		break;
	case REIMAGE_OPT_GROUP:
		if (type != CONFIG_TYPE_GROUP && type != CONFIG_TYPE_LIST)
			return bad(err, s, o->name, "%s", "expected a group { ... } or a list ( ... )");
		break;
	case REIMAGE_OPT_END:
		break;
	}
	v->set = 1;
	v->file = config_setting_source_file(s);
	v->line = (int)config_setting_source_line(s);
	return 0;
}

static void free_one(const struct reimage_option *o, struct reimage_optval *v)
{
	if (o->type == REIMAGE_OPT_STRINGS)
		free((void *)v->list);
	free(v->owned);
	memset(v, 0, sizeof(*v));
}

/* Read one group's settings over values (a later group's replace an
 * earlier one's, setting by setting). */
static int read_group(const config_setting_t *group, const char *where,
		      const struct reimage_option *table, struct reimage_optval *values,
		      unsigned flags, struct reimage_error *err)
{
	if (!config_setting_is_group(group)) {
		char loc[512];
		options_where(group, loc, sizeof(loc));
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: %s must be a group { ... }", loc, where);
		return -EINVAL;
	}
	/* Every setting present must be declared. */
	for (int i = 0; i < config_setting_length(group); i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		int k = options_index(table, name);
		if (k >= 0) {
			free_one(&table[k], &values[k]);
			if (read_one(s, &table[k], &values[k], err) < 0)
				return -EINVAL;
			continue;
		}
		if ((flags & OPTS_ALLOW_GROUPS) && config_setting_is_group(s))
			continue;
		char loc[512];
		options_where(s, loc, sizeof(loc));
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: unknown setting '%s' in %s", loc, name,
			where);
		return -EINVAL;
	}
	return 0;
}

int options_read_groups(const config_setting_t *const *groups, size_t n_groups,
			const char *where, const struct reimage_option *table,
			struct reimage_optval *values, unsigned flags, struct reimage_error *err)
{
	size_t n = options_count(table);

	for (size_t g = 0; g < n_groups; g++)
		if (groups[g] && read_group(groups[g], where, table, values, flags, err) < 0) {
			options_free(table, values);
			return -EINVAL;
		}
	for (size_t k = 0; k < n; k++) {
		if (values[k].set || !table[k].def)
			continue;
		if (parse_default(&table[k], &values[k], err) < 0) {
			options_free(table, values);
			return -ENOMEM;
		}
	}
	return 0;
}

int options_read(const config_setting_t *group, const char *where,
		 const struct reimage_option *table, struct reimage_optval *values,
		 unsigned flags, struct reimage_error *err)
{
	return options_read_groups(&group, 1, where, table, values, flags, err);
}

void options_free(const struct reimage_option *table, struct reimage_optval *values)
{
	size_t n = options_count(table);
	for (size_t k = 0; k < n; k++)
		free_one(&table[k], &values[k]);
}

int options_index(const struct reimage_option *table, const char *name)
{
	for (size_t k = 0; table && table[k].type != REIMAGE_OPT_END; k++)
		if (strcmp(table[k].name, name) == 0)
			return (int)k;
	return -1;
}

int strlist_has(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return 1;
	return 0;
}

int strlist_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}
