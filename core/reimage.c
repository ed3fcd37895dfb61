/*
 * reimage.c -- main() of the agent binary: one table of subcommands and
 * one dispatcher.  Errors are logged here, once.
 *
 * Exit codes: 0 success; 1 the job or command failed (the root is as it
 * was, or as recover left it); 2 usage or configuration error; 3 refused
 * by the root's state (a swap interrupted or awaiting confirmation).
 */
#define _GNU_SOURCE
#include "agent.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "phase.h"
#include "registry.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef REIMAGE_VERSION
#define REIMAGE_VERSION "0"
#endif
#ifndef REIMAGE_CONF_DIR
#define REIMAGE_CONF_DIR "/etc/reimage"
#endif

enum { EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_REFUSED = 3 };

struct args {
	const char *job_file;
	const char *agent_file;
	const char *root;
	const char *backend;
	int undo;
	int once;
};

/* Set by SIGTERM/SIGINT: a job stops before its swap, the agent between
 * polls. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct command {
	const char *name;
	int needs_job;   /* -c job.conf required */
	int needs_root;  /* --root required */
	int (*run)(const struct args *a, struct agent_conf *ac, struct reimage_error *err);
	const char *usage;
	const char *help;
};

static int exit_code(const struct reimage_error *err)
{
	switch (err->cls) {
	case REIMAGE_EC_CONFIG:
		return EXIT_USAGE;
	case REIMAGE_EC_STATE:
		return err->code == -EBUSY ? EXIT_REFUSED : EXIT_FAIL;
	default:
		return EXIT_FAIL;
	}
}

static int with_engine(const struct args *a, struct agent_conf *ac, int run,
		       struct reimage_error *err)
{
	struct job job;
	struct engine e;
	int r;

	if ((r = job_load(&job, a->job_file, err)) < 0)
		return r;
	r = engine_open(&e, &job, ac, a->root, a->backend, err);
	const struct engine_watch watch = { .stop = &stop_requested };
	e.watch = &watch;
	if (r == 0)
		r = run ? engine_run(&e, err) : engine_plan(&e, stdout, err);
	else
		err_prefix(err, "PREFLIGHT");
	engine_close(&e);
	job_free(&job);
	return r;
}

static int cmd_run(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	return with_engine(a, ac, 1, err);
}

static int cmd_agent(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	const struct agent_opts opts = { .once = a->once };
	return agent_run(ac, &opts, &stop_requested, err);
}

static int cmd_plan(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	return with_engine(a, ac, 0, err);
}

static int with_root(const struct args *a, struct agent_conf *ac,
		     int (*fn)(struct root_ctx *rc, const struct args *a, struct reimage_error *err),
		     struct reimage_error *err)
{
	struct root_ctx rc;
	int r = root_open(&rc, a->root, a->backend, ac, err);
	if (r == 0)
		r = fn(&rc, a, err);
	root_close(&rc);
	return r;
}

static int do_recover(struct root_ctx *rc, const struct args *a, struct reimage_error *err)
{
	return root_recover(rc, a->undo, err);
}

static int do_rollback(struct root_ctx *rc, const struct args *a, struct reimage_error *err)
{
	(void)a;
	return root_rollback(rc, "by `reimage rollback`", err);
}

static int do_confirm(struct root_ctx *rc, const struct args *a, struct reimage_error *err)
{
	(void)a;
	return root_confirm(rc, err);
}

static int cmd_recover(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	return with_root(a, ac, do_recover, err);
}

static int cmd_rollback(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	return with_root(a, ac, do_rollback, err);
}

static int cmd_confirm(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	return with_root(a, ac, do_confirm, err);
}

static int cmd_status(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	struct root_ctx rc;
	int r = root_open_readonly(&rc, a->root, err);

	(void)ac;
	if (r == 0)
		r = root_status(&rc, stdout, err);
	root_close(&rc);
	return r;
}

static void print_options(const char *title, const struct reimage_option *t)
{
	static const char *const types[] = { "", "bool", "integer", "string", "strings", "group" };
	printf("%s\n", title);
	for (; t && t->type != REIMAGE_OPT_END; t++) {
		char type[64];
		if (t->type == REIMAGE_OPT_INT && t->max == LLONG_MAX)
			snprintf(type, sizeof(type), "integer >= %lld", t->min);
		else if (t->type == REIMAGE_OPT_INT)
			snprintf(type, sizeof(type), "integer %lld..%lld", t->min, t->max);
		else
			snprintf(type, sizeof(type), "%s", types[t->type]);
		printf("  %-16s %-20s %-12s %s\n", t->name, type,
		       !t->def ? "-" : *t->def ? t->def : "(none)", t->doc);
	}
	putchar('\n');
}

/* The settings reference, from the one declaration of each setting. */
static int cmd_options(const struct args *a, struct agent_conf *ac, struct reimage_error *err)
{
	static const char *const plugins[] = { "sandbox", "file", "posix", "transport-http",
					       "transport-smb", "macos", "windows", NULL };
	struct registry reg;
	int r;

	(void)a;
	printf("setting          type                 default      meaning\n\n");
	print_options("job file", config_job_options());
	for (size_t i = 0; config_job_groups()[i].name; i++)
		print_options(config_job_groups()[i].name, config_job_groups()[i].table);
	print_options("agent file", config_agent_options());
	if ((r = registry_init(&reg, ac->plugin_path, err)) < 0)
		return r;
	for (size_t i = 0; plugins[i]; i++) {
		struct plugin *p;
		struct reimage_error e = { 0 };
		char title[128];
		if (registry_require(&reg, plugins[i], &p, &e) < 0) {
			printf("group '%s': plugin not installed\n\n", plugins[i]);
			continue;
		}
		snprintf(title, sizeof(title), "group '%s' (plugin %s)", p->name, p->file);
		print_options(title, p->options);
	}
	registry_fini(&reg);
	return 0;
}

static const struct command commands[] = {
	{ "run", 1, 0, cmd_run, "run -c JOB [--root DIR] [--backend NAME] [-a AGENT]",
	  "Run every phase of the job: stage, preserve, hooks, label, quiesce, swap,\n"
	  "boot parameters, reboot.  A failure before the swap leaves the root as it was;\n"
	  "a failure in or after the swap undoes it." },
	{ "plan", 1, 0, cmd_plan, "plan -c JOB [--root DIR] [--backend NAME] [-a AGENT]",
	  "Load every plugin, check the job against the root and print what it would do\n"
	  "(entries exchanged, retired, added, kept; items preserved; hooks; label;\n"
	  "boot).  Touches nothing." },
	{ "agent", 0, 0, cmd_agent, "agent [-c AGENT] [--once]",
	  "Run as the machine's agent: poll the job locations of the agent file, verify\n"
	  "each job's signature, targets, serial and expiry, run it at its time and\n"
	  "report every phase to the report location.  At start, finish or confirm\n"
	  "the job that rebooted the machine and report \"running new image\".\n"
	  "SIGTERM stops it between polls, or a job before its swap.  --once: poll\n"
	  "once, run what is due, and exit.  Here -c names the agent file." },
	{ "recover", 0, 1, cmd_recover, "recover --root DIR [--undo] [--backend NAME]",
	  "Finish a swap that was interrupted (crash, power cut) from its journal, or undo\n"
	  "it with --undo; remove the staging of a job cut short before its swap.  Safe\n"
	  "to run any number of times." },
	{ "rollback", 0, 1, cmd_rollback, "rollback --root DIR [--backend NAME]",
	  "Swap back to the retired image while .reimage/old exists." },
	{ "confirm", 0, 1, cmd_confirm, "confirm --root DIR [--backend NAME]",
	  "Run in the new image after its boot: record the job as committed and delete\n"
	  "the retired image (or keep it keep_old_days for rollback)." },
	{ "status", 0, 1, cmd_status, "status --root DIR",
	  "Print the state of the last job on the root." },
	{ "options", 0, 0, cmd_options, "options",
	  "Print every setting of the job file, the agent file and each installed plugin's\n"
	  "group: type, bounds, default and meaning." },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	fprintf(out, "usage: reimage [-v|-q] COMMAND [OPTIONS]\n\n"
		     "Re-image this machine's root in place.  Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].usage);
	fprintf(out, "\n  reimage COMMAND --help    help on one command\n"
		     "  reimage --version\n\n"
		     "Options: -c, --config JOB     the job file\n"
		     "         -a, --agent FILE     the agent file (default %s/agent.conf if present)\n"
		     "         -r, --root DIR       the root to work on (default: the job's, else /)\n"
		     "         -b, --backend NAME   auto, posix, macos, windows, sandbox\n"
		     "         -u, --undo           recover: undo instead of completing\n"
		     "         -o, --once           agent: one poll round, then exit\n"
		     "         -v, --verbose  -q, --quiet\n\n"
		     "Exit codes: 0 success, 1 failure, 2 usage or configuration error,\n"
		     "3 refused by the root's state.\n", REIMAGE_CONF_DIR);
}

static void command_help(const struct command *c)
{
	printf("usage: reimage %s\n\n%s\n", c->usage, c->help);
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "agent", required_argument, NULL, 'a' },
		{ "root", required_argument, NULL, 'r' },   { "backend", required_argument, NULL, 'b' },
		{ "undo", no_argument, NULL, 'u' },         { "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },        { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },      { "once", no_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 }
	};
	struct reimage_error err = { 0 };
	struct agent_conf ac;
	struct args a = { 0 };
	const struct command *cmd = NULL;
	int help = 0, opt, r;

	while ((opt = getopt_long(argc, argv, "+c:a:r:b:uovqhV", long_opts, NULL)) != -1 ||
	       (!cmd && optind < argc)) {
		if (opt == -1) {
			/* The subcommand; its options follow it. */
			for (size_t i = 0; i < N_COMMANDS; i++)
				if (strcmp(commands[i].name, argv[optind]) == 0)
					cmd = &commands[i];
			if (!cmd && strcmp(argv[optind], "help") == 0) {
				usage(stdout);
				return 0;
			}
			if (!cmd) {
				fprintf(stderr, "reimage: unknown command '%s'\n", argv[optind]);
				usage(stderr);
				return EXIT_USAGE;
			}
			optind++;
			continue;
		}
		switch (opt) {
		case 'c': a.job_file = optarg; break;
		case 'a': a.agent_file = optarg; break;
		case 'r': a.root = optarg; break;
		case 'b': a.backend = optarg; break;
		case 'u': a.undo = 1; break;
		case 'o': a.once = 1; break;
		case 'v': log_set_level(log_get_level() < REIMAGE_LOG_DEBUG ? log_get_level() + 1
									   : REIMAGE_LOG_DEBUG); break;
		case 'q': log_set_level(REIMAGE_LOG_WARNING); break;
		case 'h': help = 1; break;
		case 'V': printf("reimage %s (plugin ABI %d)\n", REIMAGE_VERSION, REIMAGE_PLUGIN_ABI);
			  return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "reimage: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!cmd) {
		usage(help ? stdout : stderr);
		return help ? 0 : EXIT_USAGE;
	}
	if (help) {
		command_help(cmd);
		return 0;
	}
	if (cmd->needs_job && !a.job_file) {
		fprintf(stderr, "reimage %s: a job file is required (-c JOB)\n", cmd->name);
		return EXIT_USAGE;
	}
	if (cmd->needs_root && !a.root) {
		fprintf(stderr, "reimage %s: --root is required\n", cmd->name);
		return EXIT_USAGE;
	}
	if (cmd->run == cmd_agent && a.job_file) {
		/* `reimage agent -c FILE`: the agent file. */
		a.agent_file = a.job_file;
		a.job_file = NULL;
	}
	if (cmd->run == cmd_run || cmd->run == cmd_agent) {
		struct sigaction sa = { .sa_handler = on_stop_signal };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		registry_watch_stop(&stop_requested);
	}
	if (!a.agent_file && access(REIMAGE_CONF_DIR "/agent.conf", R_OK) == 0)
		a.agent_file = REIMAGE_CONF_DIR "/agent.conf";
	if ((r = agent_conf_load(&ac, a.agent_file, &err)) < 0) {
		log_error("%s", err.msg);
		return exit_code(&err);
	}
	r = cmd->run(&a, &ac, &err);
	agent_conf_free(&ac);
	if (r < 0) {
		log_error("%s", err.msg);
		return exit_code(&err);
	}
	return 0;
}
