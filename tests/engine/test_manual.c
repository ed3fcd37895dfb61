/*
 * test_manual.c -- the manual pages' generator (core/cli/manual.c): every
 * declared setting of the job and agent files and of each installed
 * plugin appears in the rendered pages, and a setting, option or command
 * without documentation is refused with its name, so none can ship
 * undocumented.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "config.h"
#include "error.h"
#include "manual.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* template: written to a temp file; returns what manual_render printed
 * (malloc'ed) or NULL with err filled. */
static char *render(const struct cli_program *p, const char *template, struct reimage_error *err)
{
	char path[] = "/tmp/reimage-manual.XXXXXX";
	int fd = mkstemp(path);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	CU_ASSERT_FATAL(fd >= 0 && out != NULL);
	CU_ASSERT_FATAL(write(fd, template, strlen(template)) == (ssize_t)strlen(template));
	close(fd);
	int r = manual_render(p, NULL, path, out, err);
	fclose(out);
	unlink(path);
	if (r < 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* name as the page sets a setting's name. */
static int names(const char *page, const char *name)
{
	char want[128];
	snprintf(want, sizeof(want), "\\fB%s\\fR", name);
	return strstr(page, want) != NULL;
}

static const struct cli_option test_options[] = {
	{ "config", 'c', "FILE", "the file", 0 },
	{ "verbose", 'v', NULL, "log more", 1 },
	{ "quiet", 'q', NULL, "log less", 0 },
	{ "help", 'h', NULL, "help", 0 },
	{ "version", 'V', NULL, "version", 0 },
	{ "silent", 0, NULL, "", 0 },
	{ NULL, 0, NULL, NULL, 0 }
};

static const char *const run_options[] = { "config", NULL };
static const char *const silent_options[] = { "silent", NULL };

static const struct cli_command test_commands[] = {
	{ "run", 0, 0, "-c FILE", "Run it.", run_options, NULL, NULL, 0 },
	{ "quiet", 0, 0, "", "Runs with an undocumented option.", silent_options, NULL, NULL, 0 },
	{ "build", 1, 1, "T", "", NULL, NULL, NULL, 1 },
	{ "mute", 0, 0, "", "", NULL, NULL, NULL, 0 },
};

static const struct cli_program test_program = {
	.name = "prog", .version = "1", .summary = "A test",
	.options = test_options, .commands = test_commands, .n_commands = 2,
	.exit_codes = "0 fine",
};

TEST_CASE(every_setting_is_on_its_page)
{
	struct reimage_error err = { 0 };
	char *job = render(&test_program, ".\\\"% settings job\n.\\\"% settings plugins\n", &err);
	char *agent = render(&test_program, ".\\\"% settings agent\n", &err);

	CU_ASSERT_FATAL(job != NULL && agent != NULL);
	for (const struct reimage_option *o = config_job_options(); o->type != REIMAGE_OPT_END; o++)
		CU_ASSERT(names(job, o->name));
	for (size_t i = 0; config_job_groups()[i].name; i++) {
		char title[128];
		snprintf(title, sizeof(title), ".SS \"group '%s'\"", config_job_groups()[i].name);
		CU_ASSERT(strstr(job, title) != NULL);
		for (const struct reimage_option *o = config_job_groups()[i].table;
		     o->type != REIMAGE_OPT_END; o++)
			CU_ASSERT(names(job, o->name));
	}
	for (const struct reimage_option *o = config_agent_options(); o->type != REIMAGE_OPT_END; o++)
		CU_ASSERT(names(agent, o->name));
	/* The sandbox plugin is built with the tests: its group is listed. */
	CU_ASSERT(strstr(job, ".SS \"group 'sandbox'\"\n.TP") != NULL);
	/* The agent's settings are not the job's. */
	CU_ASSERT(!names(agent, "url"));
	free(job);
	free(agent);
}

TEST_CASE(undocumented_setting_refused)
{
	static const struct reimage_option table[] = {
		{ "fine", REIMAGE_OPT_BOOL, "false", 0, 0, "documented" },
		{ "mute", REIMAGE_OPT_INT, "0", 0, 9, "" },
		{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL },
	};
	const struct settings_group g = { SETTINGS_JOB, "group 'x'", NULL, NULL, table };
	struct reimage_error err = { 0 };
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	CU_ASSERT_FATAL(out != NULL);
	CU_ASSERT(manual_settings(out, &g, &err) < 0);
	fclose(out);
	CU_ASSERT(strstr(err.msg, "'mute'") != NULL);
	CU_ASSERT(strstr(err.msg, "group 'x'") != NULL);
	free(text);
}

TEST_CASE(undocumented_option_and_command_refused)
{
	struct reimage_error err = { 0 };
	struct cli_program p = test_program;
	char *page;

	/* Only "run" shown: its options are documented. */
	p.n_commands = 1;
	page = render(&p, ".\\\"% commands\n.\\\"% options\n.\\\"% exit\n", &err);
	CU_ASSERT_FATAL(page != NULL);
	CU_ASSERT(strstr(page, ".SS \"prog run \\-c FILE\"") != NULL);
	CU_ASSERT(strstr(page, "\\fB\\-c\\fR, \\fB\\-\\-config\\fR \\fIFILE\\fR") != NULL);
	CU_ASSERT(strstr(page, "\\fB\\-\\-verbose\\fR") != NULL);
	free(page);
	/* A command taking an option with no text. */
	p.n_commands = 2;
	CU_ASSERT(render(&p, ".\\\"% commands\n", &err) == NULL);
	CU_ASSERT(strstr(err.msg, "option 'silent' has no documentation") != NULL);
	/* A shown command with no text; a hidden one is left out. */
	err_clear(&err);
	p.commands = test_commands + 3;
	p.n_commands = 1;
	CU_ASSERT(render(&p, ".\\\"% commands\n", &err) == NULL);
	CU_ASSERT(strstr(err.msg, "command 'mute' has no documentation") != NULL);
	err_clear(&err);
	p.commands = test_commands + 2;
	p.n_commands = 1;
	page = render(&p, ".\\\"% commands\n", &err);
	CU_ASSERT(page != NULL && strstr(page, "build") == NULL);
	free(page);
}

TEST_CASE(unknown_directive_refused)
{
	struct reimage_error err = { 0 };
	CU_ASSERT(render(&test_program, "text\n.\\\"% setings job\n", &err) == NULL);
	CU_ASSERT(strstr(err.msg, ":2: unknown directive 'setings job'") != NULL);
}
