/*
 * command.h -- the command tables of reimage and reimagectl and the one
 * dispatcher both use: options and subcommands are declared once (name,
 * argument, help), and parsing, `--help`, usage errors and the manual
 * pages (tests/doc) all come from that declaration.
 */
#ifndef REIMAGE_COMMAND_H
#define REIMAGE_COMMAND_H

#include <stdio.h>

struct reimage_error;

/* Exit codes of both programs. */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAIL = 1,     /* the job or command failed */
	CLI_EXIT_USAGE = 2,    /* usage or configuration error */
	CLI_EXIT_REFUSED = 3,  /* reimage: refused by the root's state */
	CLI_EXIT_TIMEOUT = 4,  /* reimagectl wait: timed out */
};

#define CLI_VALUES_MAX 16  /* times one option may be given */
#define CLI_ARGS_MAX 8     /* positional arguments */
#define CLI_OPTIONS_MAX 32 /* options in a program's table */

struct cli_option {
	const char *name;  /* long name, without "--" */
	int letter;        /* short option, or 0 */
	const char *arg;   /* the argument's name ("DIR"); NULL for a flag */
	const char *help;
	int repeat;        /* may be given more than once */
};

/* What the command line said: for option i of the program's table, the
 * values given (flags: count only), and the positional arguments. */
struct cli_args {
	const char *values[CLI_OPTIONS_MAX][CLI_VALUES_MAX];
	int count[CLI_OPTIONS_MAX];
	char *pos[CLI_ARGS_MAX];
	int npos;
};

struct cli_command {
	const char *name;
	int min_args, max_args;  /* positional arguments */
	const char *synopsis;    /* what follows "PROGRAM NAME " in a usage line */
	const char *help;
	const char *const *options;  /* long names of its options, NULL-terminated */
	/* ctx: the program's own invocation, filled from cli_args by its
	 * main.  Returns 0 or a negative code with err filled. */
	int (*run)(void *ctx, struct reimage_error *err);
	const char *const *required;  /* options it cannot run without; may be NULL */
	int hidden;  /* left out of usage, manual and completion (build tools) */
};

struct cli_program {
	const char *name;
	const char *version;
	const char *summary;     /* one line: what the program is for */
	const struct cli_option *options;  /* ends with a NULL name */
	const struct cli_command *commands;
	size_t n_commands;
	const char *exit_codes;  /* the exit-code paragraph of usage and the manual */
};

/* The index of option `name` in p->options (a programming error aborts). */
int cli_option_index(const struct cli_program *p, const char *name);
/* The last value given for option `name`, or NULL. */
const char *cli_value(const struct cli_program *p, const struct cli_args *a, const char *name);
/* How many times option `name` was given. */
int cli_count(const struct cli_program *p, const struct cli_args *a, const char *name);

#define CLI_RUN (-1)

/* Parse argv.  Returns CLI_RUN with *ret_cmd set to run it; otherwise the
 * exit code to leave with, having printed the help or version asked for
 * (0) or a one-line error with a hint (CLI_EXIT_USAGE).  -v/-q set the
 * log level here. */
int cli_parse(const struct cli_program *p, int argc, char **argv, struct cli_args *ret,
	      const struct cli_command **ret_cmd);

void cli_usage(const struct cli_program *p, FILE *out);
void cli_command_help(const struct cli_program *p, const struct cli_command *c, FILE *out);

#endif
