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
#include "progress.h"
#include "registry.h"
#include "state.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
	int json;           /* status: JSON */
	int progress_json;  /* run: JSON lines on standard output */
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

/* --progress json: one JSON object a line on standard output, flushed at
 * once, for a tool that drives `reimage run` (shapes: docs/json.md). */
static void json_line(json_t *o)
{
	if (o && json_dumpf(o, stdout, JSON_COMPACT) == 0) {
		fputc('\n', stdout);
		fflush(stdout);
	}
	json_decref(o);
}

static void json_phase(void *arg, const struct job_state *st)
{
	(void)arg;
	json_line(json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "event", "phase", "phase",
			    st->phase, "status", st->status, "job", st->job, "serial",
			    (json_int_t)st->serial, "time", (json_int_t)time(NULL), "error",
			    st->error));
}

static void json_progress(void *arg, const struct progress *p)
{
	double rate;
	int64_t eta;
	(void)arg;
	progress_rate(p, &rate, &eta);
	json_line(json_pack("{s:s, s:s, s:I, s:o, s:o, s:o, s:I, s:o, s:b}", "event", "progress",
			    "what", p->what ? p->what : "", "done", (json_int_t)p->done, "total",
			    p->total == REIMAGE_SIZE_UNKNOWN ? json_null()
							     : json_integer((json_int_t)p->total),
			    "entries", p->entries ? json_integer((json_int_t)*p->entries) : json_null(),
			    "expanded", p->expanded ? json_integer((json_int_t)*p->expanded)
						    : json_null(),
			    "rate", (json_int_t)rate, "eta",
			    eta >= 0 ? json_integer((json_int_t)eta) : json_null(),
			    "final", !p->active));
}

static int with_engine(const struct args *a, int run, struct reimage_error *err)
{
	struct job job;
	struct engine e;
	int r;

	if ((r = job_load(&job, a->job_file, err)) < 0)
		return r;
	r = engine_open(&e, &job, (struct agent_conf *)&a->ac, a->root, a->backend, err);
	const struct engine_watch watch = {
		.phase = a->progress_json ? json_phase : NULL,
		.progress = a->progress_json ? json_progress : NULL,
		.stop = &stop_requested,
	};
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

/* Read only, without the root's lock: the state of a job that runs. */
static int cmd_status(void *ctx, struct reimage_error *err)
{
	const struct args *a = ctx;
	struct root_ctx rc;
	int r = root_open_readonly(&rc, a->root, err);

	if (r == 0)
		r = root_status(&rc, stdout, a->json, err);
	root_close(&rc);
	return r;
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
	{ "root", 'r', "DIR", "the root to work on.  run/plan take it from one place: --root,\n"
	  "else the job's `root`, else the agent file's `root`, else /;\n"
	  "a job naming another root than the agent file or --root is an\n"
	  "error.  The sandbox backend refuses /", 0 },
	{ "backend", 'b', "NAME", "the backend: auto, posix, macos, windows, sandbox (default:\n"
	  "the job's `backend` unless auto, else the agent file's)", 0 },
	{ "undo", 'u', NULL, "undo the interrupted swap instead of completing it", 0 },
	{ "once", 'o', NULL, "one poll round, run what is due, then exit", 0 },
	{ "progress", 0, "MODE", "run: bar (default: a bar on a terminal, lines in logs) or json\n"
	  "(JSON lines on standard output: phases and staging progress;\n"
	  "docs/json.md)", 0 },
	{ "json", 0, NULL, "status: print one JSON document (docs/json.md)", 0 },
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
	{ "run", 0, 0, "-c JOB [--root DIR] [--backend NAME] [-a AGENT] [--progress json]",
	  "Run every phase of the job: stage, preserve, hooks, label, quiesce, swap,\n"
	  "boot parameters, reboot.  A failure before the swap leaves the root as it was;\n"
	  "a failure in or after the swap undoes it.  --progress json writes each phase\n"
	  "change and the staging progress (entries, bytes, rate, ETA) as JSON lines on\n"
	  "standard output.",
	  (const char *const[]){ "config", "agent", "root", "backend", "progress", NULL }, cmd_run,
	  need_job, 0 },
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
	{ "status", 0, 0, "--root DIR [--json]",
	  "Print the state of the last job on the root (--json: as one JSON document).",
	  (const char *const[]){ "root", "agent", "json", NULL }, cmd_status, need_root, 0 },
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
	a.json = cli_count(p, &ca, "json") > 0;
	const char *progress = cli_value(p, &ca, "progress");
	if (progress && strcmp(progress, "json") && strcmp(progress, "bar")) {
		fprintf(stderr, "reimage: --progress: '%s' is neither bar nor json\n", progress);
		return CLI_EXIT_USAGE;
	}
	a.progress_json = progress && !strcmp(progress, "json");
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
		registry_watch_stop(&stop_requested);
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
