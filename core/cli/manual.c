/*
 * manual.c -- `reimage options`, the manual pages and bash completion,
 * from the same declarations the programs parse (manual.h).
 */
#define _GNU_SOURCE
#include "manual.h"
#include "config.h"
#include "error.h"
#include "registry.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The plugins whose groups a job or agent file may hold, in the order
 * the reference lists them. */
static const char *const plugin_names[] = { "sandbox", "file", "posix", "transport-http",
					    "transport-smb", "macos", "windows", NULL };

int settings_walk(const char *const *plugin_path,
		  int (*fn)(const struct settings_group *g, void *ctx), void *ctx,
		  struct reimage_error *err)
{
	struct settings_group g = { SETTINGS_JOB, "job file", NULL, NULL, config_job_options() };
	struct registry reg;
	char titles[2][128];
	int r;

	if ((r = fn(&g, ctx)) < 0)
		return r;
	for (size_t i = 0; config_job_groups()[i].name; i++) {
		snprintf(titles[0], sizeof(titles[0]), "group '%s'", config_job_groups()[i].name);
		g = (struct settings_group){ SETTINGS_JOB, titles[0], NULL, NULL,
					     config_job_groups()[i].table };
		if ((r = fn(&g, ctx)) < 0)
			return r;
	}
	g = (struct settings_group){ SETTINGS_AGENT, "agent file", NULL, NULL, config_agent_options() };
	if ((r = fn(&g, ctx)) < 0)
		return r;
	if ((r = registry_init(&reg, plugin_path, err)) < 0)
		return r;
	for (size_t i = 0; plugin_names[i] && r >= 0; i++) {
		struct plugin *p = NULL;
		struct reimage_error e = { 0 };
		snprintf(titles[1], sizeof(titles[1]), "group '%s'", plugin_names[i]);
		g = (struct settings_group){ SETTINGS_PLUGIN, titles[1], plugin_names[i], NULL, NULL };
		if (registry_require(&reg, plugin_names[i], &p, &e) == 0) {
			g.file = p->file;
			g.table = p->options;
		}
		r = fn(&g, ctx);
	}
	registry_fini(&reg);
	return r < 0 ? r : 0;
}

void option_type_text(const struct reimage_option *o, char *buf, size_t len)
{
	static const char *const types[] = { "", "bool", "integer", "string", "strings", "group" };
	if (o->type == REIMAGE_OPT_INT && o->max == LLONG_MAX)
		snprintf(buf, len, "integer >= %lld", o->min);
	else if (o->type == REIMAGE_OPT_INT)
		snprintf(buf, len, "integer %lld..%lld", o->min, o->max);
	else
		snprintf(buf, len, "%s", types[o->type]);
}

/* s as roff text on one line: backslashes and hyphens escaped, line
 * breaks joined, a leading period or quote kept from being a request. */
static void roff(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else if (*s == '\n')
			fputc(' ', out);
		else
			fputc(*s, out);
	}
}

static int undocumented(const char *what, const char *name, struct reimage_error *err)
{
	err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s '%s' has no documentation", what, name);
	return -EINVAL;
}

static int takes(const char *const *list, const char *name)
{
	for (; list && *list; list++)
		if (!strcmp(*list, name))
			return 1;
	return 0;
}

static int is_common(const char *name)
{
	static const char *const common[] = { "verbose", "quiet", "help", "version", NULL };
	return takes(common, name);
}

static int option_item(FILE *out, const struct cli_option *o, struct reimage_error *err)
{
	if (!o->help || !*o->help)
		return undocumented("option", o->name, err);
	fputs(".TP\n", out);
	if (o->letter)
		fprintf(out, "\\fB\\-%c\\fR, ", o->letter);
	fputs("\\fB\\-\\-", out);
	roff(out, o->name);
	fputs("\\fR", out);
	if (o->arg) {
		fputs(" \\fI", out);
		roff(out, o->arg);
		fputs("\\fR", out);
	}
	fputc('\n', out);
	roff(out, o->help);
	fputc('\n', out);
	return 0;
}

static int render_commands(FILE *out, const struct cli_program *p, struct reimage_error *err)
{
	for (size_t i = 0; i < p->n_commands; i++) {
		const struct cli_command *c = &p->commands[i];
		if (c->hidden)
			continue;
		if (!c->help || !*c->help)
			return undocumented("command", c->name, err);
		fprintf(out, ".SS \"%s ", p->name);
		roff(out, c->name);
		fputc(' ', out);
		roff(out, c->synopsis);
		fputs("\"\n", out);
		roff(out, c->help);
		fputc('\n', out);
		if (!c->options || !c->options[0])
			continue;
		fputs(".RS\n", out);
		for (size_t k = 0; p->options[k].name; k++)
			if (takes(c->options, p->options[k].name) &&
			    option_item(out, &p->options[k], err) < 0)
				return -EINVAL;
		fputs(".RE\n", out);
	}
	return 0;
}

static int render_options(FILE *out, const struct cli_program *p, struct reimage_error *err)
{
	for (size_t k = 0; p->options[k].name; k++)
		if (is_common(p->options[k].name) && option_item(out, &p->options[k], err) < 0)
			return -EINVAL;
	return 0;
}

struct settings_out {
	FILE *out;
	enum settings_kind kind;
	struct reimage_error *err;
};

static int settings_item(const struct settings_group *g, void *ctx)
{
	struct settings_out *so = ctx;
	return g->kind == so->kind ? manual_settings(so->out, g, so->err) : 0;
}

int manual_settings(FILE *out, const struct settings_group *g, struct reimage_error *err)
{
	fputs(".SS \"", out);
	roff(out, g->title);
	fputs("\"\n", out);
	if (g->plugin && !g->file) {
		fprintf(out, "The plugin %s is not installed on the machine that built this page.\n",
			g->plugin);
		return 0;
	}
	if (!g->table || g->table->type == REIMAGE_OPT_END) {
		fputs("No settings.\n", out);
		return 0;
	}
	for (const struct reimage_option *o = g->table; o->type != REIMAGE_OPT_END; o++) {
		char type[64];
		if (!o->doc || !*o->doc) {
			char what[192];
			snprintf(what, sizeof(what), "setting of %s", g->title);
			return undocumented(what, o->name, err);
		}
		option_type_text(o, type, sizeof(type));
		fputs(".TP\n\\fB", out);
		roff(out, o->name);
		fputs("\\fR (", out);
		roff(out, type);
		if (o->def) {
			fputs("; default ", out);
			/* A list's items apart, so that a long one can break. */
			const char *d = *o->def ? o->def : "(none)";
			for (int first = 1; *d; first = 0) {
				size_t n = strcspn(d, ",");
				char item[256];
				snprintf(item, sizeof(item), "%.*s", (int)n, d);
				fputs(first ? "" : ", ", out);
				roff(out, item);
				d += n + (d[n] == ',');
			}
		}
		fputs(")\n", out);
		roff(out, o->doc);
		fputc('\n', out);
	}
	return 0;
}

/* Which completion an option's argument gets, from its name. */
static const char *arg_completion(const char *arg)
{
	if (strstr(arg, "DIR"))
		return "-d";
	if (strstr(arg, "FILE") || strstr(arg, "PATH") || strstr(arg, "KEY"))
		return "-f";
	return NULL;
}

static void word_list(FILE *out, const struct cli_program *p, const char *const *opts)
{
	const char *sep = "";
	for (size_t k = 0; p->options[k].name; k++)
		if (is_common(p->options[k].name) || takes(opts, p->options[k].name)) {
			fprintf(out, "%s--%s", sep, p->options[k].name);
			sep = " ";
			if (p->options[k].letter)
				fprintf(out, " -%c", p->options[k].letter);
		}
}

static void render_completion(FILE *out, const struct cli_program *p)
{
	fprintf(out, "_%s()\n{\n"
		     "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= w\n"
		     "\tfor w in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do\n"
		     "\t\tcase $w in\n\t\t", p->name);
	const char *sep = "";
	for (size_t i = 0; i < p->n_commands; i++)
		if (!p->commands[i].hidden) {
			fprintf(out, "%s%s", sep, p->commands[i].name);
			sep = "|";
		}
	fputs(") cmd=$w; break ;;\n\t\tesac\n\tdone\n\tcase $prev in\n", out);
	for (size_t k = 0; p->options[k].name; k++) {
		const struct cli_option *o = &p->options[k];
		if (!o->arg)
			continue;
		const char *how = arg_completion(o->arg);
		fprintf(out, "\t--%s", o->name);
		if (o->letter)
			fprintf(out, "|-%c", o->letter);
		if (how)
			fprintf(out, ") COMPREPLY=($(compgen %s -- \"$cur\")); return ;;\n", how);
		else
			fputs(") return ;;\n", out);
	}
	fputs("\tesac\n\tif [ -n \"$cmd\" ] && [[ $cur != -* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n\t\treturn\n\tfi\n"
	      "\tif [ -z \"$cmd\" ] && [[ $cur != -* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"", out);
	sep = "";
	for (size_t i = 0; i < p->n_commands; i++)
		if (!p->commands[i].hidden) {
			fprintf(out, "%s%s", sep, p->commands[i].name);
			sep = " ";
		}
	fputs("\" -- \"$cur\"))\n\t\treturn\n\tfi\n\tcase $cmd in\n", out);
	for (size_t i = 0; i < p->n_commands; i++) {
		if (p->commands[i].hidden)
			continue;
		fprintf(out, "\t%s) COMPREPLY=($(compgen -W \"", p->commands[i].name);
		word_list(out, p, p->commands[i].options);
		fputs("\" -- \"$cur\")) ;;\n", out);
	}
	fputs("\t*) COMPREPLY=($(compgen -W \"", out);
	word_list(out, p, NULL);
	fprintf(out, "\" -- \"$cur\")) ;;\n\tesac\n}\ncomplete -F _%s %s\n", p->name, p->name);
}

static int directive(const char *line, const char **ret_name)
{
	static const char *const marks[] = { ".\\\"% ", "#% ", NULL };
	for (size_t i = 0; marks[i]; i++)
		if (!strncmp(line, marks[i], strlen(marks[i]))) {
			*ret_name = line + strlen(marks[i]);
			return 1;
		}
	return 0;
}

static int bad_directive(const char *path, unsigned lineno, const char *name,
			 struct reimage_error *err)
{
	err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s:%u: unknown directive '%s'", path, lineno, name);
	return -EINVAL;
}

int manual_render(const struct cli_program *p, const char *const *plugin_path, const char *path,
		  FILE *out, struct reimage_error *err)
{
	FILE *in = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int r = 0;

	if (!in) {
		r = -errno;
		err_sys(err, r, "manual template %s", path);
		return r;
	}
	while (r == 0 && getline(&line, &cap, in) >= 0) {
		const char *name;
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (!directive(line, &name)) {
			fprintf(out, "%s\n", line);
			continue;
		}
		if (!strcmp(name, "commands")) {
			r = render_commands(out, p, err);
		} else if (!strcmp(name, "options")) {
			r = render_options(out, p, err);
		} else if (!strcmp(name, "exit")) {
			roff(out, p->exit_codes);
			fputc('\n', out);
		} else if (!strncmp(name, "settings ", 9)) {
			static const char *const kinds[] = { "job", "agent", "plugins", NULL };
			struct settings_out so = { out, SETTINGS_JOB, err };
			while (kinds[so.kind] && strcmp(kinds[so.kind], name + 9))
				so.kind++;
			if (kinds[so.kind])
				r = settings_walk(plugin_path, settings_item, &so, err);
			else
				r = bad_directive(path, lineno, name, err);
		} else if (!strcmp(name, "completion")) {
			render_completion(out, p);
		} else {
			r = bad_directive(path, lineno, name, err);
		}
	}
	free(line);
	fclose(in);
	if (r == 0 && (ferror(out) || fflush(out) != 0)) {
		err_set(err, -EIO, REIMAGE_EC_IO, "writing the manual failed");
		r = -EIO;
	}
	return r;
}
