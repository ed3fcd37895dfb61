/*
 * test_cli.c -- what `reimage` tells an administrator: the root a job
 * works on comes from one place (and never this machine's / for the
 * sandbox backend), refusals with the right exit code and a clear
 * message, warnings in plan, and the machine-readable outputs (--json,
 * --progress json) parsed as a tool would.
 *
 * No case here may run a job on this machine's /: the refusal of / is
 * tested through plan and engine_open (PREFLIGHT), which write nothing.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "config.h"
#include "error.h"
#include "phase.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A sandbox root and a job for it that names no root of its own. */
static void setup(const char *extra)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' '%s'", t_path("root"), t_path("src")), 0);
	fixture_old_root(t_path("root"));
	fixture_new_tree(t_path("src"));
	fixture_pack(t_path("src"), t_path("image.tar.zst"), "zstd");
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL, extra);
}

static void agent_file(const char *root)
{
	char text[4096];
	snprintf(text, sizeof(text), "agent_id = \"pc-1\";\nbackend = \"sandbox\";\nroot = \"%s\";\n"
		 "state_dir = \"%s\";\n", root, t_path("state"));
	t_write(t_path("agent.conf"), text);
}

TEST_CASE(root_from_agent_file)
{
	char *out = NULL, expect[4200];
	setup(NULL);
	agent_file(t_path("root"));
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' -a '%s'", t_path("job.conf"),
					t_path("agent.conf")), 0);
	snprintf(expect, sizeof(expect), "on root %s\n", t_path("root"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, expect));
	free(out);
	/* --help says where the root comes from. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan --help"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "else the agent file's `root`, else /"));
	free(out);
}

TEST_CASE(root_conflict_is_an_error)
{
	char *out = NULL, extra[512];
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("other")), 0);
	snprintf(extra, sizeof(extra), "root = \"%s\";", t_path("root"));
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL, extra);
	agent_file(t_path("other"));
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' -a '%s'", t_path("job.conf"),
					t_path("agent.conf")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, t_path("other")));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "agent.conf names root"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "job.conf names root"));
	free(out);
	/* --root against the job's own root: the same refusal. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("other")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--root names root"));
	free(out);
	/* The same root under two names is one root. */
	CU_ASSERT_EQUAL_FATAL(t_sh("ln -s root '%s'", t_path("alias")), 0);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("alias")), 0);
	free(out);
	CU_ASSERT_FALSE(t_sh("test -e '%s/.reimage'", t_path("root")) == 0);
}

/* The sandbox backend on this machine's /: refused by engine_open (that
 * is PREFLIGHT: nothing written), before any phase could run. */
TEST_CASE(sandbox_refuses_slash)
{
	struct reimage_error err = { 0 };
	struct agent_conf ac;
	struct engine e;
	struct job job;
	char *out = NULL;
	int had_dir = access("/.reimage", F_OK) == 0;

	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(agent_conf_load(&ac, NULL, &err), 0);
	CU_ASSERT_EQUAL_FATAL(job_load(&job, t_path("job.conf"), &err), 0);
	CU_ASSERT_EQUAL_FATAL(t_sh("ln -s / '%s'", t_path("slash")), 0);
	const char *roots[] = { "/", t_path("slash") };
	for (size_t i = 0; i < 2; i++) {
		int r = engine_open(&e, &job, &ac, roots[i], "sandbox", &err);
		CU_ASSERT(r < 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "this machine's own /"));
		engine_close(&e);
		err_clear(&err);
		/* Never run: a failure above must not become a swap on /. */
	}
	job_free(&job);
	agent_conf_free(&ac);
	/* The job's default root is / too: plan refuses it, as run would. */
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s'", t_path("job.conf")), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "PREFLIGHT: sandbox: root / is this machine's own /"));
	free(out);
	CU_ASSERT_EQUAL(access("/.reimage", F_OK) == 0, had_dir);
}

/* A missing job file is a configuration error, exit 2, as documented. */
TEST_CASE(missing_job_file_exit_2)
{
	char *out = NULL;
	setup(NULL);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("nosuch.conf"),
					t_path("root")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nosuch.conf: No such file or directory"));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("nosuch.conf"),
					t_path("root")), 2);
	free(out);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' -a '%s' --root '%s'", t_path("job.conf"),
					t_path("nosuch-agent.conf"), t_path("root")), 2);
	free(out);
}

/* An unknown backend: which ones are installed, and where they were looked for. */
TEST_CASE(unknown_backend_lists_installed)
{
	char *out = NULL;
	setup(NULL);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s' --backend sandbx",
					t_path("job.conf"), t_path("root")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "backend sandbx: no such backend"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "installed: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "sandbox"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(searched "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, getenv("REIMAGE_PLUGIN_PATH")));
	free(out);
}

/* A preserve item that matches nothing (a typo) is a warning in plan and
 * in the run's log; what does exist is still preserved. */
TEST_CASE(preserve_typo_warns)
{
	char *out = NULL;
	setup("preserve: { paths = [ \"srv/dtaa\", \"srv/data\" ]; };");
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "warning    preserve.paths item 'srv/dtaa' matches "
				      "nothing on the root"));
	CU_ASSERT_PTR_NULL(strstr(out, "item 'srv/data'"));
	free(out);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "preserve.paths item 'srv/dtaa' matches nothing"));
	free(out);
	CU_ASSERT_EQUAL(t_sh("test -e '%s/srv/data/d.bin'", t_path("root")), 0);
}

/* plan fails when the image cannot be reached: a missing file, a server
 * that does not answer (a port the test just closed on 127.0.0.1). */
TEST_CASE(plan_checks_image_reachable)
{
	char *out = NULL, url[256];
	setup(NULL);
	fixture_job(t_path("job.conf"), t_path("nosuch.tar.zst"), NULL, NULL);
	CU_ASSERT_NOT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					    t_path("root")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "nosuch.tar.zst"));
	free(out);
	if (t_sh("test -e '%s/transport-http.so'", getenv("REIMAGE_PLUGIN_PATH")) != 0)
		return;  /* the http transport is not built */
	char *port = NULL;
	CU_ASSERT_EQUAL_FATAL(t_sh_out(&port, "python3 -c 'import socket; s = socket.socket(); "
				       "s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])'"), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/image.tar.zst", atoi(port));
	free(port);
	fixture_job(t_path("job.conf"), url, "retries = 0;", NULL);
	CU_ASSERT_NOT_EQUAL(fixture_reimage(&out, "plan -c '%s' --root '%s'", t_path("job.conf"),
					    t_path("root")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot be reached"));
	free(out);
	CU_ASSERT_FALSE(t_sh("test -e '%s/.reimage'", t_path("root")) == 0);
}

/* reimage status --json: one document a tool can read, before and after a job. */
TEST_CASE(status_json)
{
	char *out = NULL;
	setup(NULL);
	t_write(t_path("none.py"), "import json, sys\nd = json.load(sys.stdin)\n"
		"assert d['job'] is None and d['root'].endswith('/root'), d\n");
	CU_ASSERT_EQUAL(t_sh("'%s/reimage' status --root '%s' --json | python3 '%s'", t_bin_dir(),
			     t_path("root"), t_path("none.py")), 0);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 0);
	free(out);
	t_write(t_path("check.py"),
		"import json, sys\n"
		"d = json.load(sys.stdin)\n"
		"assert d['job'] == 'test-job' and d['serial'] == 7, d\n"
		"assert d['status'] == 'pending' and d['phase'] == 'REBOOT', d\n"
		"assert d['backend'] == 'sandbox' and d['retired'] is True, d\n"
		"assert d['error'] == '' and d['deferred'] == [] and d['updated'] > 0, d\n"
		"assert d['swapped'] >= d['updated'] - 60, d\n");
	CU_ASSERT_EQUAL(t_sh("'%s/reimage' status --root '%s' --json | python3 '%s'", t_bin_dir(),
			     t_path("root"), t_path("check.py")), 0);
}

/* reimage run --progress json: every line of standard output is a JSON
 * object; the phases come in order, and staging ends with a final
 * progress line counting what was written. */
TEST_CASE(progress_json_lines)
{
	char *out = NULL, *n = NULL;
	setup(NULL);
	CU_ASSERT_EQUAL_FATAL(t_sh_out(&n, "cd '%s' && find . -mindepth 1 | wc -l", t_path("src")),
			      0);
	t_write(t_path("check.py"),
		"import json, sys\n"
		"entries = int(sys.argv[1])\n"
		"lines = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]\n"
		"phases = [l['phase'] for l in lines if l['event'] == 'phase' and l['status'] != 'failed']\n"
		"order = ['PREFLIGHT', 'PREPARE', 'STAGE', 'PRESERVE', 'HOOKS', 'LABEL', 'WINDOW',\n"
		"         'QUIESCE', 'SWAP', 'BOOT', 'REPORT', 'REBOOT']\n"
		"assert [p for i, p in enumerate(phases) if p not in phases[:i]] == order, phases\n"
		"prog = [l for l in lines if l['event'] == 'progress']\n"
		"assert prog, lines\n"
		"last = [p for p in prog if p['what'] == 'staging'][-1]\n"
		"assert last['final'] is True and last['done'] == last['total'], last\n"
		"assert last['entries'] == entries and last['expanded'] > 0, (last, entries)\n"
		"assert 'rate' in last and 'eta' in last, last\n"
		"i = lines.index(last)\n"
		"assert lines[i + 1]['event'] == 'phase' and lines[i + 1]['phase'] == 'PRESERVE', lines\n");
	CU_ASSERT_EQUAL(t_sh("'%s/reimage' run -c '%s' --root '%s' --progress json > '%s'",
			     t_bin_dir(), t_path("job.conf"), t_path("root"), t_path("lines")), 0);
	CU_ASSERT_EQUAL(t_sh("python3 '%s' %d '%s'", t_path("check.py"), atoi(n),
			     t_path("lines")), 0);
	free(n);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s' --progress xml",
					t_path("job.conf"), t_path("root")), 2);
	free(out);
}

/* On a terminal the bar shows entries and expanded bytes, ends its line
 * before the next phase, and a failed staging says it removes what it
 * staged. */
TEST_CASE(terminal_bar)
{
	char *out = NULL;
	if (t_sh("command -v script >/dev/null") != 0)
		t_skip("script (util-linux) is not installed: no terminal to draw on");
	setup(NULL);
	/* A digest mismatch fails STAGE: the cleanup says what it does. */
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"),
		    "sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\";",
		    NULL);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "run -c '%s' --root '%s'", t_path("job.conf"),
					t_path("root")), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "removing the staged image"));
	free(out);
	fixture_job(t_path("job.conf"), t_path("image.tar.zst"), NULL, NULL);
	CU_ASSERT_EQUAL(t_sh_out(&out, "script -qec \"'%s/reimage' run -c '%s' --root '%s'\" "
				 "/dev/null", t_bin_dir(), t_path("job.conf"), t_path("root")), 0);
	fprintf(stderr, "%s", out);
	char *bar = strstr(out, "staging [");
	CU_ASSERT_PTR_NOT_NULL_FATAL(bar);
	char *eol = strchr(bar, '\n');
	CU_ASSERT_PTR_NOT_NULL_FATAL(eol);
	/* The bar's last drawing (after its last \r; the terminal ends the
	 * line with \r\n) is whole and final. */
	char line[512];
	snprintf(line, sizeof(line), "%.*s", (int)(eol - bar), bar);
	if (*line && line[strlen(line) - 1] == '\r')
		line[strlen(line) - 1] = '\0';
	char *last = strrchr(line, '\r') ? strrchr(line, '\r') + 1 : line;
	CU_ASSERT_PTR_NOT_NULL(strstr(last, "100%"));
	CU_ASSERT_PTR_NOT_NULL(strstr(last, " entries, "));
	CU_ASSERT_PTR_NOT_NULL(strstr(last, " expanded, "));
	CU_ASSERT_PTR_NOT_NULL(strstr(eol, "phase PRESERVE"));
	free(out);
}

/* The rate and the ETA the bar and the JSON lines show. */
TEST_CASE(progress_rate_and_eta)
{
	struct progress p = { 0 };
	double rate;
	int64_t eta;

	progress_begin(&p, "staging", 300);
	p.done = 100;
	p.started_ms = progress_now_ms() - 2000;  /* 100 bytes in 2 s */
	progress_rate(&p, &rate, &eta);
	/* At most 50 B/s (more if this process was held up in between): the
	 * ETA is the 200 bytes left at that rate, whatever it is. */
	CU_ASSERT(rate > 0 && rate <= 50);
	CU_ASSERT(eta >= 4);
	CU_ASSERT_EQUAL(eta, (int64_t)(200.0 / rate + 0.5));
	p.total = REIMAGE_SIZE_UNKNOWN;
	progress_rate(&p, &rate, &eta);
	CU_ASSERT_EQUAL(eta, -1);
	p.active = 0;  /* nothing to end */
}

/* plan prints each plugin setting in effect and where it came from: the
 * agent file's group, then the job's on top, setting by setting. */
TEST_CASE(plan_prints_effective_settings)
{
	char *out = NULL, text[4096], expect[4400];
	setup("sandbox = { power_supply_dir = \"/job/power\"; };");
	snprintf(text, sizeof(text), "agent_id = \"pc-1\";\nbackend = \"sandbox\";\nroot = \"%s\";\n"
		 "state_dir = \"%s\";\nsandbox = {\n  record = \"%s\";\n"
		 "  power_supply_dir = \"/agent/power\";\n};\n", t_path("root"), t_path("state"),
		 t_path("record.log"));
	t_write(t_path("agent.conf"), text);
	CU_ASSERT_EQUAL(fixture_reimage(&out, "plan -c '%s' -a '%s'", t_path("job.conf"),
					t_path("agent.conf")), 0);
	/* The agent file's setting the job does not touch stays... */
	snprintf(expect, sizeof(expect), "sandbox.record = \"%s\"  (%s:6)", t_path("record.log"),
		 t_path("agent.conf"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, expect));
	/* ...the job's wins where both set one... */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "sandbox.power_supply_dir = \"/job/power\"  ("));
	CU_ASSERT_PTR_NULL(strstr(out, "/agent/power"));
	/* ...and what neither sets is the default. */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "sandbox.terminals = [ ]  (default)"));
	if (!strstr(out, "sandbox.record"))
		fprintf(stderr, "plan said: %s\n", out);
	free(out);
}
