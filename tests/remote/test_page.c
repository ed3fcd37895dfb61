/*
 * test_page.c -- the fleet's status page (core/remote/status.html) in a
 * real browser: a rollout whose canary fails runs on agents against the
 * nginx job store, `reimagectl page` puts the page there, and headless
 * Chromium renders it from nginx.  The rendered DOM must show the failed
 * machine first, the counts by state, the rollout's halted wave, a machine
 * staging with its progress bar and a committed one (both known from the
 * listing of reports/ only); then, agents.json gone, the listing alone.  A
 * screenshot is kept in the build directory (remote_page.png).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "fixture.h"
#include "fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *chromium(void)
{
	return access("/usr/bin/chromium", X_OK) == 0 ? "/usr/bin/chromium" : NULL;
}

/* Chromium headless on url: with what = "--dump-dom", the DOM after the
 * page's scripts ran (virtual time: it waits for the page's fetches). */
static int browse(char **out, const char *url, const char *what)
{
	return t_sh_out(out, "cd '%s' && HOME='%s' timeout 180 '%s' --headless=new --no-sandbox "
			"--disable-gpu --no-first-run --user-data-dir='%s' --window-size=1280,900 "
			"--virtual-time-budget=15000 %s '%s' 2>/dev/null", t_path("."), t_path("."),
			chromium(), t_path("chromium-profile"), what, url);
}

TEST_CASE(fleet_rendered)
{
	struct fleet f;
	char *out = NULL, *dom = NULL, url[512], shot[1024];
	const int wave_of[4] = { 0, 0, 1, 1 };

	if (!chromium())
		t_skip("chromium is not installed (tests/deps.sh installs it)");
	fleet_setup(&f, 3, 0, "rollout: { waves = [ \"canary\", \"100%\" ]; failure_budget = 0; };");
	break_agent(1);
	submit(&f, t_path("admin.key"), "--agents pc-1,pc-2,pc-3 --wave-group canary=pc-1");
	CU_ASSERT_FATAL(run_fleet(&f, wave_of, 120));
	CU_ASSERT_EQUAL_FATAL(fixture_reimagectl(&out, "page -s %s", f.store), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "status.html"));
	free(out);
	snprintf(url, sizeof(url), "%s/status.html", f.store);
	/* Two machines no job of this store targeted, in reports/ only. */
	char report[512];
	snprintf(report, sizeof(report), "{\"agent\": \"pc-8\", \"job\": \"other-job\", \"serial\": 4, "
		 "\"state\": \"running\", \"phase\": \"STAGE\", \"message\": \"staging\", "
		 "\"progress\": {\"done\": 40, \"total\": 100}, \"time\": %lld}\n",
		 (long long)time(NULL));
	t_write(t_path("www/dav/store/reports/pc-8.json"), report);
	snprintf(report, sizeof(report), "{\"agent\": \"pc-9\", \"job\": \"other-job\", \"serial\": 4, "
		 "\"state\": \"committed\", \"phase\": \"CONFIRM\", \"time\": %lld}\n",
		 (long long)time(NULL));
	t_write(t_path("www/dav/store/reports/pc-9.json"), report);

	CU_ASSERT_EQUAL_FATAL(browse(&dom, url, "--dump-dom"), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dom);
	if (!strstr(dom, "data-ready=\"1\""))
		fprintf(stderr, "DOM:\n%s\n", dom);
	CU_ASSERT_PTR_NOT_NULL_FATAL(strstr(dom, "data-ready=\"1\""));
	/* Counts by state. */
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "failed: 1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "cancelled: 2"));
	/* Failures first: the machines' first row is pc-1's, failed. */
	char *rows = strstr(dom, "<tbody>");
	CU_ASSERT_PTR_NOT_NULL_FATAL(rows);
	char *first = strstr(rows, "<tr");
	CU_ASSERT_PTR_NOT_NULL_FATAL(first);
	CU_ASSERT(!strncmp(first, "<tr data-state=\"failed\"", 23));
	CU_ASSERT(strstr(first, "<td>pc-1</td>") && strstr(first, "<td>pc-1</td>") <
		  strstr(first, "</tr>"));
	/* The rollout: its job, its agents and the canary wave halted. */
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-job=\"test-job\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "of 3 agents"));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "<tr data-state=\"halted\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "<td>canary</td>"));
	/* Staging: its bar at 40 %; and the committed one. */
	char *running = strstr(dom, "<tr data-state=\"running\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(running);
	char *end = strstr(running, "</tr>");
	char *bar = strstr(running, "<span class=\"bar\"><i style=\"width: 40%;\"></i></span> 40 %");
	CU_ASSERT(strstr(running, "<td>pc-8</td>") && bar && bar < end);
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "<tr data-state=\"committed\"><td>pc-9</td>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "running: 1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "committed: 1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-sources=\"agents.json; the listing of reports/\""));
	free(dom);

	/* The screenshot, kept as the test's artifact. */
	snprintf(shot, sizeof(shot), "--screenshot='%s/remote_page.png'", t_bin_dir());
	CU_ASSERT_EQUAL(browse(&out, url, shot), 0);
	free(out);
	CU_ASSERT_EQUAL(t_sh("test -s '%s/remote_page.png'", t_bin_dir()), 0);

	/* No agents.json: the listing alone still shows every machine. */
	CU_ASSERT_EQUAL(unlink(t_path("www/dav/store/agents.json")), 0);
	CU_ASSERT_EQUAL_FATAL(browse(&dom, url, "--dump-dom"), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dom);
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-sources=\"no agents.json; the listing of reports/\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "5 machines"));
	CU_ASSERT_PTR_NOT_NULL(strstr(dom, "failed: 1"));
	free(dom);
	fleet_stop(&f);
}
