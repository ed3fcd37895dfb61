/*
 * test_system.c -- QUIESCE, LABEL, BOOT, REBOOT, PREPARE and restore decisions,
 * through the recorded fake (wine has no WTS sessions to end, no
 * bcdedit, no shutdown, and accepts a label it does not keep), and the
 * label call itself through wine.
 */
#include "runner.h"
#include "fake_sys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <wchar.h>
#include <wtsapi32.h>

static int logged(const struct fake_sys *f, const char *want)
{
	if (strcmp(f->log, want) == 0)
		return 1;
	fprintf(stderr, "log:\n%s--- wanted:\n%s---\n", f->log, want);
	return 0;
}

TEST_CASE(logout_user_sessions)
{
	struct fake_sys f = { .n_sessions = 5, .sessions = {
		{ 0, WTSDisconnected },  /* services */
		{ 1, WTSActive }, { 2, WTSDisconnected }, { 3, WTSConnected },
		{ 65536, WTSListen } } };
	struct win_ctx c;
	struct reimage_error err = { 0 };

	fake_ctx(&c, &f);
	CHECK(win_logout(&c, "C:/", &err) == 0);
	CHECK(logged(&f, "logoff 1\nlogoff 2\nlogoff 3\n"));
}

TEST_CASE(quiesce_keeps_system_services_and_agent)
{
	static const char *const keep_processes[] = { "sshd.exe", NULL };
	static const char *const keep_services[] = { "Dnscache", NULL };
	struct fake_sys f = { .service = L"Dnscache", .service_pid = 1300, .n_procs = 12, .procs = {
		{ 0, 0, 0, L"[System Process]" }, { 4, 0, 0, L"System" },
		{ 500, 4, 0, L"smss.exe" }, { 600, 500, 0, L"CSRSS.EXE" },
		{ 700, 600, 0, L"services.exe" }, { 800, 700, 0, L"reimage-agent.exe" },
		{ 900, 800, 0, L"reimage.exe" },      /* the agent (fake_ctx) */
		{ 1300, 700, 0, L"svchost.exe" },     /* also the kept service */
		{ 1400, 700, 0, L"updater.exe" },     /* a service's program: stops */
		{ 2000, 1999, 1, L"explorer.exe" }, { 2100, 2000, 1, L"sshd.exe" },
		{ 2200, 2000, 1, L"notepad.exe" } } };
	struct win_ctx c;
	struct reimage_error err = { 0 };

	fake_ctx(&c, &f);
	c.keep_processes = keep_processes;
	c.keep_services = keep_services;
	CHECK(win_quiesce(&c, "C:/", &err) == 0);
	CHECK(logged(&f, "terminate 1400 wait 1000\nterminate 2000 wait 1000\n"
			 "terminate 2200 wait 1000\n"));
	/* A configured service that is not installed stops QUIESCE. */
	static const char *const missing[] = { "NoSuchService", NULL };
	c.keep_services = missing;
	f.log[0] = '\0';
	CHECK(win_quiesce(&c, "C:/", &err) < 0);
	CHECK(strstr(err.msg, "keep_services: service 'NoSuchService'") != NULL);
	CHECK(f.log[0] == '\0');
}

TEST_CASE(label_through_seam_and_wine)
{
	struct fake_sys f = { 0 };
	struct win_ctx c;
	struct reimage_error err = { 0 };

	fake_ctx(&c, &f);
	CHECK(win_set_label(&c, "C:/", "LAB-\xc3\x89T\xc3\x89", &err) == 0);
	CHECK(logged(&f, "label C:\\ LAB-\xc3\x89T\xc3\x89\n"));
	CHECK(win_set_label(&c, "C:/", "a-label-much-longer-than-32-characters", &err) == -EINVAL);
	CHECK(strstr(err.msg, "at most 32 characters") != NULL);
	/* The real call: wine accepts it (it does not keep the label, so
	 * reading it back proves nothing there). */
	struct win_ctx real = { .host = &t_host, .sys = &win_sys_real };
	struct reimage_error err2 = { 0 };
	CHECK(win_set_label(&real, t_upath(L""), "REIMAGED", &err2) == 0);
	if (err2.code)
		fprintf(stderr, "label: %s\n", err2.msg);
}

TEST_CASE(boot_bcdedit_one_shot_and_default)
{
	struct fake_sys f = { 0 };
	struct win_ctx c;
	struct reimage_error err = { 0 };
	struct reimage_boot boot = { .root = "C:/", .kernel = "{0c1d2e3f-1111-2222-3333-444455556666}",
				     .one_shot = 1 };

	fake_ctx(&c, &f);
	CHECK(win_set_boot(&c, &boot, &err) == 0);
	boot.one_shot = 0;
	boot.kernel = "{current}";
	boot.command = "bcdedit /set {current} description \"New image\"";
	CHECK(win_set_boot(&c, &boot, &err) == 0);
	CHECK(logged(&f,
		"run C:\\Windows\\system32\\bcdedit.exe | \"C:\\Windows\\system32\\bcdedit.exe\" "
		"/bootsequence {0c1d2e3f-1111-2222-3333-444455556666} | - | 120000\n"
		"run C:\\Windows\\system32\\bcdedit.exe | \"C:\\Windows\\system32\\bcdedit.exe\" "
		"/default {current} | - | 120000\n"
		"run C:\\Windows\\system32\\cmd.exe | \"C:\\Windows\\system32\\cmd.exe\" /d /s /c "
		"\"bcdedit /set {current} description \"New image\"\" | C:\\ | 120000\n"));
	/* Nothing but an identifier reaches bcdedit's command line. */
	f.log[0] = '\0';
	boot.command = NULL;
	boot.kernel = "{current} /deletevalue";
	CHECK(win_set_boot(&c, &boot, &err) == -EINVAL);
	CHECK(strstr(err.msg, "not a BCD identifier") != NULL);
	struct reimage_error err2 = { 0 };
	boot.kernel = NULL;
	boot.cmdline = "quiet";
	CHECK(win_set_boot(&c, &boot, &err2) == -ENOTSUP);
	CHECK(f.log[0] == '\0');
	/* bcdedit failing fails BOOT, with its exit code. */
	struct reimage_error err3 = { 0 };
	boot.cmdline = NULL;
	boot.kernel = "{current}";
	f.run_exit = 1;
	CHECK(win_set_boot(&c, &boot, &err3) == -EIO);
	CHECK(strstr(err3.msg, "bcdedit /default {current}: exit code 1") != NULL);
}

TEST_CASE(reboot_enables_privilege_first)
{
	struct fake_sys f = { 0 };
	struct win_ctx c;
	struct reimage_error err = { 0 };

	fake_ctx(&c, &f);
	CHECK(win_reboot(&c, &err) == 0);
	CHECK(logged(&f, "privilege SeShutdownPrivilege\n"
			 "shutdown reimage: restarting into the new image\n"));
	/* Without the privilege, no shutdown is even asked. */
	f.log[0] = '\0';
	f.privilege_error = ERROR_NOT_ALL_ASSIGNED;
	CHECK(win_reboot(&c, &err) < 0);
	CHECK(logged(&f, "privilege SeShutdownPrivilege\n"));
	CHECK(strstr(err.msg, "enable the shutdown privilege") != NULL);
}

TEST_CASE(prepare_exports_network_and_profiles)
{
	struct fake_sys f = { 0 };
	struct win_ctx c;
	struct reimage_error err = { 0 };
	char want[8192], dir[1024];

	fake_ctx(&c, &f);
	REQUIRE(CreateDirectoryW(t_path(L".reimage"), NULL));
	CHECK(win_prepare(&c, t_upath(L""), &err) == 0);
	CHECK(GetFileAttributesW(t_path(L".reimage\\windows")) & FILE_ATTRIBUTE_DIRECTORY);
	snprintf(dir, sizeof(dir), "%s.reimage\\windows", t_upath(L""));
	snprintf(want, sizeof(want),
		"run C:\\Windows\\system32\\netsh.exe | \"C:\\Windows\\system32\\netsh.exe\" wlan "
		"export profile key=clear folder=\"%s\" | - | 120000\n"
		"run C:\\Windows\\system32\\reg.exe | \"C:\\Windows\\system32\\reg.exe\" export "
		"\"HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\Parameters\" \"%s\\tcpip.reg\" /y"
		" | - | 120000\n"
		"run C:\\Windows\\system32\\reg.exe | \"C:\\Windows\\system32\\reg.exe\" export "
		"\"HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip6\\Parameters\" \"%s\\tcpip6.reg\" "
		"/y | - | 120000\n"
		"run C:\\Windows\\system32\\reg.exe | \"C:\\Windows\\system32\\reg.exe\" export "
		"\"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\NetworkList\" "
		"\"%s\\networklist.reg\" /y | - | 120000\n"
		"run C:\\Windows\\system32\\reg.exe | \"C:\\Windows\\system32\\reg.exe\" export "
		"\"HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList\" "
		"\"%s\\profilelist.reg\" /y | - | 120000\n", dir, dir, dir, dir, dir);
	CHECK(logged(&f, want));
	/* A key the machine lacks is skipped, the others exported. */
	f.log[0] = '\0';
	f.missing_key = L"HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip6\\Parameters";
	CHECK(win_prepare(&c, t_upath(L""), &err) == 0);
	CHECK(strstr(f.log, "Tcpip6") == NULL);
	CHECK(strstr(f.log, "ProfileList") != NULL);
	f.missing_key = NULL;
	/* A failed registry export fails PREPARE (before anything is staged). */
	f.run_exit = 1;
	CHECK(win_prepare(&c, t_upath(L""), &err) == -EIO);
	CHECK(strstr(err.msg, "reg export HKLM\\SYSTEM\\CurrentControlSet\\Services\\Tcpip\\"
			      "Parameters: exit code 1") != NULL);
}

/* The real export, as far as wine has the keys and programs. */
TEST_CASE(prepare_real_registry_export)
{
	struct win_ctx c = { .host = &t_host, .sys = &win_sys_real, .boot_timeout_ms = 60000 };
	struct reimage_error err = { 0 };

	REQUIRE(CreateDirectoryW(t_path(L".reimage"), NULL));
	int r = win_prepare(&c, t_upath(L""), &err);
	if (r < 0)
		fprintf(stderr, "prepare: %s\n", err.msg);
	CHECK(r == 0);
	CHECK(t_exists(t_path(L".reimage\\windows\\tcpip.reg")));
	CHECK(t_exists(t_path(L".reimage\\windows\\profilelist.reg")));
}

/* COMMIT in the new image: the registry files in PREPARE's order, then
 * each Wi-Fi profile, each file removed once imported, then the folder. */
TEST_CASE(restore_imports_and_removes)
{
	struct fake_sys f = { 0 };
	struct win_ctx c;
	struct reimage_error err = { 0 };
	char want[8192], dir[1024];

	fake_ctx(&c, &f);
	REQUIRE(CreateDirectoryW(t_path(L".reimage"), NULL));
	/* Nothing exported: nothing to do. */
	CHECK(win_restore(&c, t_upath(L""), &err) == 0);
	CHECK(logged(&f, ""));
	REQUIRE(CreateDirectoryW(t_path(L".reimage\\windows"), NULL));
	REQUIRE(t_write(t_path(L".reimage\\windows\\profilelist.reg"), "REGEDIT4\n"));
	REQUIRE(t_write(t_path(L".reimage\\windows\\tcpip.reg"), "REGEDIT4\n"));
	REQUIRE(t_write(t_path(L".reimage\\windows\\Wi-Fi-home.xml"), "<WLANProfile/>\n"));
	/* A failed import stops there, its file kept for the next try. */
	f.run_exit = 1;
	CHECK(win_restore(&c, t_upath(L""), &err) == -EIO);
	CHECK(strstr(err.msg, "reg import ") && strstr(err.msg, "tcpip.reg: exit code 1"));
	CHECK(t_exists(t_path(L".reimage\\windows\\tcpip.reg")));
	f.run_exit = 0;
	f.log[0] = '\0';
	CHECK(win_restore(&c, t_upath(L""), &err) == 0);
	snprintf(dir, sizeof(dir), "%s.reimage\\windows", t_upath(L""));
	snprintf(want, sizeof(want),
		"run C:\\Windows\\system32\\reg.exe | \"C:\\Windows\\system32\\reg.exe\" import "
		"\"%s\\tcpip.reg\" | - | 120000\n"
		"run C:\\Windows\\system32\\reg.exe | \"C:\\Windows\\system32\\reg.exe\" import "
		"\"%s\\profilelist.reg\" | - | 120000\n"
		"run C:\\Windows\\system32\\netsh.exe | \"C:\\Windows\\system32\\netsh.exe\" wlan "
		"add profile filename=\"%s\\Wi-Fi-home.xml\" user=all | - | 120000\n", dir, dir, dir);
	CHECK(logged(&f, want));
	CHECK(!t_exists(t_path(L".reimage\\windows")));
	/* Done once: a second restore (an interrupted commit) does nothing. */
	f.log[0] = '\0';
	CHECK(win_restore(&c, t_upath(L""), &err) == 0);
	CHECK(logged(&f, ""));
}

/* PREPARE's real export read back by restore's real import, under wine. */
TEST_CASE(restore_real_registry_import)
{
	struct win_ctx c = { .host = &t_host, .sys = &win_sys_real, .boot_timeout_ms = 60000 };
	struct reimage_error err = { 0 };
	int r;

	REQUIRE(CreateDirectoryW(t_path(L".reimage"), NULL));
	REQUIRE(win_prepare(&c, t_upath(L""), &err) == 0);
	REQUIRE(t_exists(t_path(L".reimage\\windows\\tcpip.reg")));
	if ((r = win_restore(&c, t_upath(L""), &err)) < 0)
		fprintf(stderr, "restore: %s\n", err.msg);
	CHECK(r == 0);
	CHECK(!t_exists(t_path(L".reimage\\windows\\tcpip.reg")));
	CHECK(!t_exists(t_path(L".reimage\\windows")));
}

TEST_CASE(unit_active_from_service_state)
{
	struct fake_sys f = { .service = L"reimage-agent", .service_pid = 800 };
	struct win_ctx c;
	struct reimage_error err = { 0 };

	fake_ctx(&c, &f);
	CHECK(win_backend_ops.unit_active(&c, "reimage-agent", &err) == 1);
	f.service_pid = 0;
	CHECK(win_backend_ops.unit_active(&c, "reimage-agent", &err) == 0);
	CHECK(win_backend_ops.unit_active(&c, "absent", &err) == 0);
	CHECK(err.code == 0);
}
