/*
 * test_units.c -- TRIAL's service checks on macOS with the recording
 * fake: `launchctl print system/LABEL`, running or not, unknown labels,
 * launchctl missing, and names that are not labels.
 */
#define _GNU_SOURCE
#include "fake_sys.h"

#include <errno.h>
#include <string.h>

TEST_CASE(unit_active)
{
	struct macos_fixture m;
	struct reimage_error err = { 0 };

	/* TRIAL: launchctl print of the system domain's job. */
	mfx_start(&m, "");
	fake_answer(&m.fake, "/bin/launchctl print system/com.openssh.sshd", 0,
		    "system/com.openssh.sshd = {\n\tactive count = 1\n\tstate = running\n}\n");
	fake_answer(&m.fake, "/bin/launchctl print system/com.example.idle", 0,
		    "system/com.example.idle = {\n\tactive count = 0\n\tstate = not running\n}\n");
	fake_answer(&m.fake, "/bin/launchctl print system/com.example.gone", 113,
		    "Could not find service \"com.example.gone\" in domain for system\n");
	fake_answer(&m.fake, "/bin/launchctl print system/com.example.x", -ENOENT, NULL);
	CU_ASSERT_EQUAL(m.fx.ops->unit_active(m.fx.ctx, "com.openssh.sshd", &err), 1);
	CU_ASSERT_EQUAL(m.fx.ops->unit_active(m.fx.ctx, "com.example.idle", &err), 0);
	CU_ASSERT_EQUAL(m.fx.ops->unit_active(m.fx.ctx, "com.example.gone", &err), 0);
	CU_ASSERT_STRING_EQUAL(err.msg, "");
	CU_ASSERT_EQUAL(m.fx.ops->unit_active(m.fx.ctx, "com.example.x", &err), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unit com.example.x: cannot run /bin/launchctl"));
	memset(&err, 0, sizeof(err));
	CU_ASSERT_EQUAL(m.fx.ops->unit_active(m.fx.ctx, "../x", &err), -EINVAL);
	CU_ASSERT_EQUAL(m.fx.ops->unit_active(m.fx.ctx, "-h", &err), -EINVAL);
	CU_ASSERT(fake_calls_are(&m.fake, "run /bin/launchctl print system/com.openssh.sshd\n"
					  "run /bin/launchctl print system/com.example.idle\n"
					  "run /bin/launchctl print system/com.example.gone\n"
					  "run /bin/launchctl print system/com.example.x\n"));
	mfx_stop(&m);
}
