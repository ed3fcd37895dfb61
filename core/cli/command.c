/*
 * command.c -- the dispatcher of reimage and reimagectl (command.h).
 * getopt_long's tables are built from the program's option table, so an
 * option exists once; options may come before or after the command.  A
 * usage error is one line and a hint, never the whole usage.
 */
#define _GNU_SOURCE
#include "command.h"
#include "log.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* Options every program has, handled here. */
static const char *const common_options[] = { "verbose", "quiet", "help", "version", NULL };

static size_t n_options(const struct cli_program *p)
{
	size_t n = 0;
	while (p->options[n].name)
		n++;
	return n;
}

int cli_option_index(const struct cli_program *p, const char *name)
{
	for (size_t i = 0; p->options[i].name; i++)
		if (!strcmp(p->options[i].name, name))
			return (int)i;
	fprintf(stderr, "%s: internal error: no option --%s\n", p->name, name);
	abort();
}

const char *cli_value(const struct cli_program *p, const struct cli_args *a, const char *name)
{
	int i = cli_option_index(p, name), n = a->count[i];
	return n ? a->values[i][n > CLI_VALUES_MAX ? CLI_VALUES_MAX - 1 : n - 1] : NULL;
}

int cli_count(const struct cli_program *p, const struct cli_args *a, const char *name)
{
	return a->count[cli_option_index(p, name)];
}

static int takes(const char *const *list, const char *name)
{
	for (; list && *list; list++)
		if (!strcmp(*list, name))
			return 1;
	return 0;
}

static const struct cli_command *find_command(const struct cli_program *p, const char *name)
{
	for (size_t i = 0; i < p->n_commands; i++)
		if (!strcmp(p->commands[i].name, name))
			return &p->commands[i];
	return NULL;
}

static void option_line(const struct cli_option *o, FILE *out)
{
	char head[64];
	snprintf(head, sizeof(head), "%s%c%s--%s%s%s", o->letter ? "-" : "",
		 o->letter ? o->letter : ' ', o->letter ? ", " : "  ", o->name,
		 o->arg ? " " : "", o->arg ? o->arg : "");
	fprintf(out, "  %-26s ", o->letter ? head : head + 1);
	/* A help of several lines: each under the first. */
	for (const char *h = o->help; *h;) {
		size_t n = strcspn(h, "\n");
		fprintf(out, "%.*s\n", (int)n, h);
		h += n + (h[n] == '\n');
		if (*h)
			fprintf(out, "%29s", "");
	}
}

void cli_usage(const struct cli_program *p, FILE *out)
{
	fprintf(out, "usage: %s [OPTIONS] COMMAND [ARGS]\n\n%s.  Commands:\n", p->name, p->summary);
	for (size_t i = 0; i < p->n_commands; i++)
		if (!p->commands[i].hidden)
			fprintf(out, "  %s %s\n", p->commands[i].name, p->commands[i].synopsis);
	fprintf(out, "\n  %s COMMAND --help    help on one command, with its options\n"
		     "  %s --version\n\nOptions of every command:\n", p->name, p->name);
	for (size_t i = 0; p->options[i].name; i++)
		if (takes(common_options, p->options[i].name))
			option_line(&p->options[i], out);
	fprintf(out, "\nExit codes: %s\n", p->exit_codes);
}

void cli_command_help(const struct cli_program *p, const struct cli_command *c, FILE *out)
{
	fprintf(out, "usage: %s %s %s\n\n%s\n", p->name, c->name, c->synopsis, c->help);
	if (c->options && c->options[0]) {
		fprintf(out, "\nOptions:\n");
		for (size_t i = 0; p->options[i].name; i++)
			if (takes(c->options, p->options[i].name))
				option_line(&p->options[i], out);
	}
}

static int usage_error(const struct cli_program *p, const struct cli_command *c)
{
	if (c)
		fprintf(stderr, "%s: see `%s %s --help`\n", p->name, p->name, c->name);
	else
		fprintf(stderr, "%s: see `%s --help`\n", p->name, p->name);
	return CLI_EXIT_USAGE;
}

int cli_parse(const struct cli_program *p, int argc, char **argv, struct cli_args *ret,
	      const struct cli_command **ret_cmd)
{
	size_t n = n_options(p);
	char shorts[2 + 2 * 64] = "-";  /* "-": every other word comes back as 1 */
	const struct cli_command *cmd = NULL;
	struct option *longs;
	int help = 0, bad = 0, opt, idx;

	/* cli_args holds a fixed number of options: a larger table is the
	 * program's bug, never the user's. */
	if (n > CLI_OPTIONS_MAX) {
		fprintf(stderr, "%s: internal error: %zu options, at most %d\n", p->name, n,
			CLI_OPTIONS_MAX);
		abort();
	}
	longs = calloc(n + 1, sizeof(*longs));

	if (!longs) {
		fprintf(stderr, "%s: out of memory\n", p->name);
		return CLI_EXIT_FAIL;
	}
	memset(ret, 0, sizeof(*ret));
	for (size_t i = 0, k = 1; i < n; i++) {
		const struct cli_option *o = &p->options[i];
		longs[i] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL,
					    0x100 + (int)i };
		if (o->letter && k + 2 < sizeof(shorts)) {
			shorts[k++] = (char)o->letter;
			if (o->arg)
				shorts[k++] = ':';
			shorts[k] = '\0';
		}
	}
	opterr = 0;
	optind = 1;
	while (!bad && (opt = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		if (opt == 1 && !cmd) {
			if (!strcmp(optarg, "help")) {
				help = 1;
				continue;
			}
			if (!(cmd = find_command(p, optarg))) {
				fprintf(stderr, "%s: unknown command '%s'\n", p->name, optarg);
				bad = usage_error(p, NULL);
			}
			continue;
		}
		if (opt == 1) {
			if (ret->npos < CLI_ARGS_MAX)
				ret->pos[ret->npos++] = optarg;
			else
				ret->npos++;
			continue;
		}
		if (opt == '?' || opt == ':') {
			const char *word = argv[optind - 1];
			if (optopt && optopt < 0x100 && strncmp(word, "--", 2))
				fprintf(stderr, "%s: %s option -%c\n", p->name,
					opt == ':' || strchr(shorts, optopt) ? "missing the argument of"
									     : "unknown",
					optopt);
			else if (optopt >= 0x100)
				fprintf(stderr, "%s: option --%s needs an argument\n", p->name,
					p->options[optopt - 0x100].name);
			else
				fprintf(stderr, "%s: unknown option '%s'\n", p->name, word);
			bad = usage_error(p, cmd);
			continue;
		}
		idx = opt >= 0x100 ? opt - 0x100 : -1;
		for (size_t i = 0; idx < 0 && i < n; i++)
			if (p->options[i].letter == opt)
				idx = (int)i;
		const struct cli_option *o = &p->options[idx];
		if (ret->count[idx] && !o->repeat && o->arg) {
			fprintf(stderr, "%s: --%s given twice\n", p->name, o->name);
			bad = usage_error(p, cmd);
			continue;
		}
		if (ret->count[idx] >= CLI_VALUES_MAX) {
			fprintf(stderr, "%s: --%s given more than %d times\n", p->name, o->name,
				CLI_VALUES_MAX);
			bad = usage_error(p, cmd);
			continue;
		}
		ret->values[idx][ret->count[idx]++] = optarg;
		if (!strcmp(o->name, "help"))
			help = 1;
		else if (!strcmp(o->name, "verbose"))
			log_set_level(log_get_level() < REIMAGE_LOG_DEBUG ? log_get_level() + 1
									 : REIMAGE_LOG_DEBUG);
		else if (!strcmp(o->name, "quiet"))
			log_set_level(REIMAGE_LOG_WARNING);
	}
	free(longs);
	if (bad)
		return bad;
	if (cli_count(p, ret, "version")) {
		printf("%s %s\n", p->name, p->version);
		return CLI_EXIT_OK;
	}
	if (!cmd) {
		if (help) {
			cli_usage(p, stdout);
			return CLI_EXIT_OK;
		}
		fprintf(stderr, "%s: no command given\n", p->name);
		return usage_error(p, NULL);
	}
	if (help) {
		cli_command_help(p, cmd, stdout);
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < n; i++)
		if (ret->count[i] && !takes(common_options, p->options[i].name) &&
		    !takes(cmd->options, p->options[i].name)) {
			fprintf(stderr, "%s %s: option --%s does not apply to this command\n", p->name,
				cmd->name, p->options[i].name);
			return usage_error(p, cmd);
		}
	for (const char *const *q = cmd->required; q && *q; q++)
		if (!cli_count(p, ret, *q)) {
			const struct cli_option *o = &p->options[cli_option_index(p, *q)];
			fprintf(stderr, "%s %s: --%s %s is required\n", p->name, cmd->name, o->name,
				o->arg ? o->arg : "");
			return usage_error(p, cmd);
		}
	if (ret->npos < cmd->min_args || ret->npos > cmd->max_args) {
		fprintf(stderr, "%s %s: %s arguments; usage: %s %s %s\n", p->name, cmd->name,
			ret->npos < cmd->min_args ? "missing" : "too many", p->name, cmd->name,
			cmd->synopsis);
		return CLI_EXIT_USAGE;
	}
	*ret_cmd = cmd;
	return CLI_RUN;
}
