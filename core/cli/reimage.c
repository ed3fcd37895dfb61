/*
 * reimage.c -- main() of the agent binary: its option and command tables
 * (command.h's dispatcher parses them, prints help and usage errors).
 * Errors are logged here, once.
 *
 * Exit codes: 0 success; 1 the job or command failed (the root is as it
 * was, or as recover left it); 2 usage or configuration error; 3 refused
 * by the root's state (a swap interrupted or awaiting confirmation).
 */
#define _GNU_SOURCE
#include "agent.h"
#include "command.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "manual.h"
#include "phase.h"
#include "registry.h"
#include "state.h"

#include <errno.h>
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

/* One invocation: the command line's values and the agent file. */
struct args {
	const char *job_file;
	const char *agent_file;
	const char *root;
	const char *backend;
	int undo;
	int once;
	const char *template;  /* manual */
	struct agent_conf ac;
};

/* Set by SIGTERM/SIGINT: a job stops before its swap, the agent between
 * polls.  SIGHUP (the agent only): read the agent file again between
 * jobs. */
static volatile sig_atomic_t stop_requested, reload_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_reload_signal(int sig)
{
	(void)sig;
	reload_requested = 1;
}

static int exit_code(const struct reimage_error *err)
{
	switch (err->cls) {
	case REIMAGE_EC_CONFIG:
		return CLI_EXIT_USAGE;
	case REIMAGE_EC_STATE:
		return err->code == -EBUSY ? CLI_EXIT_REFUSED : CLI_EXIT_FAIL;
	default:
		return CLI_EXIT_FAIL;
	}
}

static int with_engine(const struct args *a, int run, struct reimage_error *err)
{
	struct job job;
	struct engine e;
	int r;

	if ((r = job_load(&job, a->job_file, err)) < 0)
		return r;
	r = engine_open(&e, &job, (struct agent_conf *)&a->ac, a->root, a->backend, err);
	const struct engine_watch watch = { .stop = &stop_requested };
	e.watch = &watch;
	if (r == 0)
		r = run ? engine_run(&e, err) : engine_plan(&e, stdout, err);
	else
		err_prefix(err, "%s", phase_name(PHASE_PREFLIGHT));
	engine_close(&e);
	job_free(&job);
	return r;
}

static int cmd_run(void *ctx, struct reimage_error *err)
{
	return with_engine(ctx, 1, err);
}

/* The agent; on SIGHUP, its file read again: a file that no longer
 * loads is refused with its error and the running settings kept. */
static int cmd_agent(void *ctx, struct reimage_error *err)
{
	struct args *a = ctx;
	const struct agent_opts opts = { .once = a->once, .reload = &reload_requested };
	int r;

	while ((r = agent_run(&a->ac, &opts, &stop_requested, err)) == AGENT_RELOAD) {
		struct agent_conf next;
		struct reimage_error e = { 0 };
		if (agent_conf_load(&next, a->agent_file, &e) < 0) {
			log_error("SIGHUP: %s; keeping the running settings", e.msg);
			continue;
		}
		agent_conf_free(&a->ac);
		a->ac = next;
		log_notice("SIGHUP: read %s again", a->agent_file ? a->agent_file : "(defaults)");
	}
	return r;
}

static int cmd_plan(void *ctx, struct reimage_error *err)
{
	return with_engine(ctx, 0, err);
}

static int with_root(const struct args *a,
		     int (*fn)(struct root_ctx *rc, const struct args *a, struct reimage_error *err),
		     struct reimage_error *err)
{
	struct root_ctx rc;
	int r = root_open(&rc, a->root, a->backend, &a->ac, err);
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

static int do_status(struct root_ctx *rc, const struct args *a, struct reimage_error *err)
{
	(void)a;
	return root_status(rc, stdout, err);
}

static int cmd_recover(void *ctx, struct reimage_error *err)
{
	return with_root(ctx, do_recover, err);
}

static int cmd_rollback(void *ctx, struct reimage_error *err)
{
	return with_root(ctx, do_rollback, err);
}

static int cmd_confirm(void *ctx, struct reimage_error *err)
{
	return with_root(ctx, do_confirm, err);
}

static int cmd_status(void *ctx, struct reimage_error *err)
{
	return with_root(ctx, do_status, err);
}

static int print_options(const struct settings_group *g, void *ctx)
{
	(void)ctx;
	if (g->plugin && !g->file) {
		printf("group '%s': plugin not installed\n\n", g->plugin);
		return 0;
	}
	if (g->plugin)
		printf("%s (plugin %s)\n", g->title, g->file);
	else
		printf("%s\n", g->title);
	for (const struct reimage_option *t = g->table; t && t->type != REIMAGE_OPT_END; t++) {
		char type[64];
		option_type_text(t, type, sizeof(type));
		printf("  %-16s %-20s %-12s %s\n", t->name, type,
		       !t->def ? "-" : *t->def ? t->def : "(none)", t->doc);
	}
	putchar('\n');
	return 0;
}

/* The settings reference, from the one declaration of each setting. */
static int cmd_options(void *ctx, struct reimage_error *err)
{
	const struct args *a = ctx;
	printf("setting          type                 default      meaning\n\n");
	return settings_walk(a->ac.plugin_path, print_options, NULL, err);
}

extern const struct cli_program reimage_program;

/* A manual page or the completion, from a template (docs/man/). */
static int cmd_manual(void *ctx, struct reimage_error *err)
{
	const struct args *a = ctx;
	return manual_render(&reimage_program, a->ac.plugin_path, a->template, stdout, err);
}

#define ABI_TEXT_(n) #n
#define ABI_TEXT(n) ABI_TEXT_(n)

static const struct cli_option options[] = {
	{ "config", 'c', "FILE", "the job file (agent: the agent file)", 0 },
	{ "agent", 'a', "FILE", "the agent file (default " REIMAGE_CONF_DIR "/agent.conf if present)", 0 },
	{ "root", 'r', "DIR", "the root to work on (default: the job's `root`, else /)", 0 },
	{ "backend", 'b', "NAME", "the backend: auto, posix, macos, windows, sandbox", 0 },
	{ "undo", 'u', NULL, "undo the interrupted swap instead of completing it", 0 },
	{ "once", 'o', NULL, "one poll round, run what is due, then exit", 0 },
	{ "verbose", 'v', NULL, "log more (repeat for debug)", 1 },
	{ "quiet", 'q', NULL, "log warnings and errors only", 0 },
	{ "help", 'h', NULL, "print help and exit", 0 },
	{ "version", 'V', NULL, "print the version and exit", 0 },
	{ NULL, 0, NULL, NULL, 0 }
};

static const char *const job_options[] = { "config", "agent", "root", "backend", NULL };
static const char *const root_options[] = { "root", "backend", "agent", NULL };
static const char *const need_job[] = { "config", NULL };
static const char *const need_root[] = { "root", NULL };

static const struct cli_command commands[] = {
	{ "run", 0, 0, "-c JOB [--root DIR] [--backend NAME] [-a AGENT]",
	  "Run every phase of the job: stage, preserve, hooks, label, quiesce, swap,\n"
	  "boot parameters, reboot.  A failure before the swap leaves the root as it was;\n"
	  "a failure in or after the swap undoes it.",
	  job_options, cmd_run, need_job, 0 },
	{ "plan", 0, 0, "-c JOB [--root DIR] [--backend NAME] [-a AGENT]",
	  "Load every plugin, check the job against the root and print what it would do\n"
	  "(entries exchanged, retired, added, kept; items preserved; hooks; label;\n"
	  "boot).  Touches nothing.",
	  job_options, cmd_plan, need_job, 0 },
	{ "agent", 0, 0, "[-c AGENT] [--once]",
	  "Run as the machine's agent: poll the job locations of the agent file, verify\n"
	  "each job's signature, targets, serial and expiry, run it at its time and\n"
	  "report every phase to the report location.  At start, finish or confirm\n"
	  "the job that rebooted the machine and report \"running new image\".\n"
	  "SIGTERM stops it between polls, or a job before its swap.  Here -c names the\n"
	  "agent file.",
	  (const char *const[]){ "config", "once", NULL }, cmd_agent, NULL, 0 },
	{ "recover", 0, 0, "--root DIR [--undo] [--backend NAME]",
	  "Finish a swap that was interrupted (crash, power cut) from its journal, or undo\n"
	  "it with --undo; remove the staging of a job cut short before its swap.  Safe\n"
	  "to run any number of times.",
	  (const char *const[]){ "root", "backend", "agent", "undo", NULL }, cmd_recover, need_root, 0 },
	{ "rollback", 0, 0, "--root DIR [--backend NAME]",
	  "Swap back to the retired image while .reimage/old exists.",
	  root_options, cmd_rollback, need_root, 0 },
	{ "confirm", 0, 0, "--root DIR [--backend NAME]",
	  "Run in the new image after its boot: record the job as committed and delete\n"
	  "the retired image (or keep it keep_old_days for rollback).",
	  root_options, cmd_confirm, need_root, 0 },
	{ "status", 0, 0, "--root DIR",
	  "Print the state of the last job on the root.",
	  (const char *const[]){ "root", "agent", NULL }, cmd_status, need_root, 0 },
	{ "options", 0, 0, "",
	  "Print every setting of the job file, the agent file and each installed plugin's\n"
	  "group: type, bounds, default and meaning.",
	  (const char *const[]){ "agent", NULL }, cmd_options, NULL, 0 },
	{ "manual", 1, 1, "TEMPLATE",
	  "Print a manual page or the bash completion from its template (the build's).",
	  (const char *const[]){ "agent", NULL }, cmd_manual, NULL, 1 },
};

const struct cli_program reimage_program = {
	.name = "reimage",
	.version = REIMAGE_VERSION " (plugin ABI " ABI_TEXT(REIMAGE_PLUGIN_ABI) ")",
	.summary = "Re-image this machine's root in place",
	.options = options,
	.commands = commands,
	.n_commands = sizeof(commands) / sizeof(commands[0]),
	.exit_codes = "0 success, 1 failure, 2 usage or configuration error,\n"
		      "3 refused by the root's state (a swap interrupted, or awaiting confirmation).",
};

int main(int argc, char **argv)
{
	const struct cli_program *p = &reimage_program;
	struct reimage_error err = { 0 };
	const struct cli_command *cmd;
	struct cli_args ca;
	struct args a = { 0 };
	int r;

	if ((r = cli_parse(p, argc, argv, &ca, &cmd)) != CLI_RUN)
		return r;
	a.job_file = cli_value(p, &ca, "config");
	a.agent_file = cli_value(p, &ca, "agent");
	a.root = cli_value(p, &ca, "root");
	a.backend = cli_value(p, &ca, "backend");
	a.undo = cli_count(p, &ca, "undo") > 0;
	a.once = cli_count(p, &ca, "once") > 0;
	a.template = ca.npos ? ca.pos[0] : NULL;
	if (cmd->run == cmd_agent) {
		/* `reimage agent -c FILE`: the agent file. */
		a.agent_file = a.job_file;
		a.job_file = NULL;
	}
	if (cmd->run == cmd_run || cmd->run == cmd_agent) {
		struct sigaction sa = { .sa_handler = on_stop_signal };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	if (cmd->run == cmd_agent) {
		struct sigaction sa = { .sa_handler = on_reload_signal };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGHUP, &sa, NULL);
	}
	if (!a.agent_file && access(REIMAGE_CONF_DIR "/agent.conf", R_OK) == 0)
		a.agent_file = REIMAGE_CONF_DIR "/agent.conf";
	if ((r = agent_conf_load(&a.ac, a.agent_file, &err)) < 0) {
		log_error("%s", err.msg);
		return exit_code(&err);
	}
	r = cmd->run(&a, &err);
	agent_conf_free(&a.ac);
	if (r < 0) {
		log_error("%s", err.msg);
		return exit_code(&err);
	}
	return 0;
}
