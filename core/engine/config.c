/*
 * config.c -- the job file and the agent file (see config.h).  Each table
 * below is the one declaration of its settings: type, default, bounds and
 * the line of documentation `reimage plan --options` prints.  Reading is
 * strict: unknown settings, wrong types and values out of range are
 * errors naming the file, the line and the setting.
 */
#include "config.h"
#include "error.h"
#include "fsutil.h"
#include "options.h"
#include "registry.h"
#include "source.h"
#include "when.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>

#define MAX_BYTES 0x7fffffffffffffffLL

enum {
	J_ID, J_SERIAL, J_IMAGE, J_ROOT, J_BACKEND, J_PRESERVE, J_HOOKS, J_LABEL, J_BOOT,
	J_REBOOT, J_KEEP_OLD_DAYS, J_KEEP_ENTRIES, J_PLUGIN_PATH, J_TARGETS, J_NOT_AFTER, J_AT,
	J_WINDOW, J_HEALTH, J_TEST_SWAP_PAUSE, J_TRIAL, J_PREFLIGHT, J_TIMEZONE, J_JITTER,
	J_STAGE_EARLY, J_ROLLOUT, J_NOTICE, J_SERIAL_RESET, J_SIGNED_AT, J_COUNT
};
static const struct reimage_option job_table[] = {
	[J_ID] = { "id", REIMAGE_OPT_STRING, NULL, 0, 0, "job identifier (required)" },
	[J_SERIAL] = { "serial", REIMAGE_OPT_INT, "0", 0, MAX_BYTES,
		       "increasing number; an agent runs only a serial above its last" },
	[J_IMAGE] = { "image", REIMAGE_OPT_GROUP, NULL, 0, 0, "the new image (required)" },
	[J_ROOT] = { "root", REIMAGE_OPT_STRING, "/", 0, 0, "root to re-image" },
	[J_BACKEND] = { "backend", REIMAGE_OPT_STRING, "auto", 0, 0,
			"backend plugin: auto, posix, macos, windows, sandbox" },
	[J_PRESERVE] = { "preserve", REIMAGE_OPT_GROUP, NULL, 0, 0, "what to keep" },
	[J_HOOKS] = { "hooks", REIMAGE_OPT_GROUP, NULL, 0, 0, "scripts run on the staged image" },
	[J_LABEL] = { "label", REIMAGE_OPT_STRING, NULL, 0, 0, "new volume label (unset: keep)" },
	[J_BOOT] = { "boot", REIMAGE_OPT_GROUP, NULL, 0, 0, "boot parameters" },
	[J_REBOOT] = { "reboot", REIMAGE_OPT_BOOL, "true", 0, 0, "reboot after the swap" },
	[J_KEEP_OLD_DAYS] = { "keep_old_days", REIMAGE_OPT_INT, "0", 0, 3650,
			      "days the retired image stays for `reimage rollback`" },
	[J_KEEP_ENTRIES] = { "keep_entries", REIMAGE_OPT_STRINGS, NULL, 0, 0,
			     "top-level entries never swapped (default: the backend's)" },
	[J_PLUGIN_PATH] = { "plugin_path", REIMAGE_OPT_STRINGS, NULL, 0, 0,
			    "extra plugin directories" },
	[J_TARGETS] = { "targets", REIMAGE_OPT_GROUP, NULL, 0, 0,
			"agents and groups the job is for (signed jobs: required)" },
	[J_NOT_AFTER] = { "not_after", REIMAGE_OPT_STRING, NULL, 0, 0,
			  "timestamp after which agents refuse the job (signed jobs: required)" },
	[J_AT] = { "at", REIMAGE_OPT_STRING, NULL, 0, 0,
		   "start time: daily local \"03:00\" or a timestamp (unset: at once)" },
	[J_WINDOW] = { "window", REIMAGE_OPT_INT, "0", 0, 31 * 86400,
		       "seconds after `at` during which the job may start (0: no limit)" },
	[J_HEALTH] = { "health", REIMAGE_OPT_GROUP, NULL, 0, 0,
		       "checks the new image must pass after its boot before it is committed" },
	[J_TEST_SWAP_PAUSE] = { "test_swap_pause", REIMAGE_OPT_INT, "0", 0, 600,
				"test switch: seconds to pause mid-swap (power-cut tests)" },
	[J_TRIAL] = { "trial", REIMAGE_OPT_GROUP, NULL, 0, 0,
		      "the boot guard of the new image's trial boots" },
	[J_PREFLIGHT] = { "preflight", REIMAGE_OPT_GROUP, NULL, 0, 0,
			  "checks made before anything is touched" },
	[J_TIMEZONE] = { "timezone", REIMAGE_OPT_STRING, NULL, 0, 0,
			 "zone of a local `at` (\"Europe/Berlin\"; unset: the machine's)" },
	[J_JITTER] = { "jitter", REIMAGE_OPT_INT, "0", 0, 31 * 86400,
		       "up to this many seconds added to the start (`at`, else the job's "
		       "arrival), different per agent" },
	[J_STAGE_EARLY] = { "stage_early", REIMAGE_OPT_BOOL, "false", 0, 0,
			    "download and stage at once; only the swap waits for the window" },
	[J_ROLLOUT] = { "rollout", REIMAGE_OPT_GROUP, NULL, 0, 0,
			"waves: which agents go first, and the failures each wave may have" },
	[J_NOTICE] = { "notice", REIMAGE_OPT_GROUP, NULL, 0, 0,
		       "warning the logged-in users before QUIESCE, and their deferrals" },
	[J_SERIAL_RESET] = { "serial_reset", REIMAGE_OPT_INT, "0", 0, MAX_BYTES,
			     "recovery of a fast-forwarded agent: a number above the agent's last "
			     "reset makes it take this job's serial whatever its last one (0: none; "
			     "`reimagectl submit --reset-serial` sets it)" },
	[J_SIGNED_AT] = { "signed_at", REIMAGE_OPT_STRING, NULL, 0, 0,
			  "when the job was signed (set by `reimagectl submit`): raises the "
			  "agent's floor of trusted time" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { TR_GUARD, TR_MAX_ATTEMPTS, TR_COUNT };
static const struct reimage_option trial_table[] = {
	[TR_GUARD] = { "guard", REIMAGE_OPT_BOOL, "true", 0, 0,
		       "boot the new image through reimage-guard until it is committed "
		       "(backends that can: posix, sandbox)" },
	[TR_MAX_ATTEMPTS] = { "max_attempts", REIMAGE_OPT_INT, "3", 1, 100,
			      "boots the new image gets before the guard falls back" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { PF_FREE_MARGIN_MB, PF_AC_POWER, PF_REQUIRED_PATHS, PF_COUNT };
static const struct reimage_option preflight_table[] = {
	[PF_FREE_MARGIN_MB] = { "free_margin_mb", REIMAGE_OPT_INT, "256", 0, 1 << 30,
				"MiB that must stay free on the root's volume, before and "
				"while staging" },
	[PF_AC_POWER] = { "ac_power", REIMAGE_OPT_BOOL, "true", 0, 0,
			  "refuse to start on battery (where the backend can tell)" },
	[PF_REQUIRED_PATHS] = { "required_paths", REIMAGE_OPT_STRINGS, "", 0, 0,
				"paths (relative) the staged image must contain" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { RO_WAVES, RO_FAILURE_BUDGET, RO_WAVE, RO_WAVE_TIMEOUT, RO_COUNT };
static const struct reimage_option rollout_table[] = {
	[RO_WAVES] = { "waves", REIMAGE_OPT_STRINGS, "", 0, 0,
		       "waves in order: \"N%\" (cumulative share of the targets) or a group name" },
	[RO_FAILURE_BUDGET] = { "failure_budget", REIMAGE_OPT_INT, "0", 0, 100,
				"percent of a wave that may fail or roll back; above it the "
				"rollout halts" },
	[RO_WAVE] = { "wave", REIMAGE_OPT_INT, "0", 0, 999,
		      "this agent's wave, from 1 as in the store's wave-N files and every "
		      "message (0: none); set by `reimagectl submit`" },
	[RO_WAVE_TIMEOUT] = { "wave_timeout", REIMAGE_OPT_INT, "0", 0, 365 * 86400,
			      "seconds a wave may take once open; then its agents without a "
			      "final report count against the failure budget (0: no deadline)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { N_SECONDS, N_REPEAT, N_MESSAGE, N_MAX_DEFERRALS, N_DEFER_SECONDS, N_DEFER_DEADLINE,
       N_INHIBITORS, N_COUNT };
static const struct reimage_option notice_table[] = {
	[N_SECONDS] = { "seconds", REIMAGE_OPT_INT, "300", 0, 86400,
			"countdown shown to logged-in users before QUIESCE (0: no notice)" },
	[N_REPEAT] = { "repeat", REIMAGE_OPT_INT, "60", 1, 86400,
		       "seconds between notices during the countdown" },
	[N_MESSAGE] = { "message", REIMAGE_OPT_STRING,
			"This computer will be restarted to install a new system.", 0, 0,
			"text of the notice (the countdown and how to defer are added)" },
	[N_MAX_DEFERRALS] = { "max_deferrals", REIMAGE_OPT_INT, "0", 0, 100,
			      "times users may defer (0: they may not)" },
	[N_DEFER_SECONDS] = { "defer_seconds", REIMAGE_OPT_INT, "3600", 1, 7 * 86400,
			      "how long one deferral postpones" },
	[N_DEFER_DEADLINE] = { "defer_deadline", REIMAGE_OPT_STRING, NULL, 0, 0,
			       "timestamp after which no deferral is granted (unset: the "
			       "window's end)" },
	[N_INHIBITORS] = { "inhibitors", REIMAGE_OPT_STRINGS, "", 0, 0,
			   "process names that postpone the swap while they run (within the "
			   "window)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { HC_UNITS, HC_COMMANDS, HC_REPORT, HC_DEADLINE, HC_COUNT };
static const struct reimage_option health_table[] = {
	[HC_UNITS] = { "units", REIMAGE_OPT_STRINGS, "", 0, 0,
		       "service units that must be active (backend: posix, systemd)" },
	[HC_COMMANDS] = { "commands", REIMAGE_OPT_STRINGS, "", 0, 0,
			  "programs (absolute paths, run without a shell) that must exit 0" },
	[HC_REPORT] = { "report", REIMAGE_OPT_BOOL, "false", 0, 0,
			"the report location must accept a report" },
	[HC_DEADLINE] = { "deadline", REIMAGE_OPT_INT, "300", 1, 86400,
			  "seconds after the agent starts for every check to pass" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { T_AGENTS, T_GROUPS, T_COUNT };
static const struct reimage_option targets_table[] = {
	[T_AGENTS] = { "agents", REIMAGE_OPT_STRINGS, "", 0, 0, "agent ids the job is for" },
	[T_GROUPS] = { "groups", REIMAGE_OPT_STRINGS, "", 0, 0, "agent groups the job is for" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum {
	I_URL, I_SHA256, I_SIZE, I_RETRIES, I_RETRY_DELAY, I_KIND, I_TOKEN_FILE, I_UNPACKED_SIZE,
	I_TOC_SHA256, I_DEVICES, I_COUNT
};
static const struct reimage_option image_table[] = {
	[I_URL] = { "url", REIMAGE_OPT_STRING, NULL, 0, 0,
		    "where the image is: path, file:, http(s):, smb: (required)" },
	[I_SHA256] = { "sha256", REIMAGE_OPT_STRING, NULL, 0, 0, "SHA-256 of the image file" },
	[I_SIZE] = { "size", REIMAGE_OPT_INT, "-1", -1, MAX_BYTES, "size of the image file in bytes" },
	[I_RETRIES] = { "retries", REIMAGE_OPT_INT, "5", 0, 100,
			"times an interrupted download is resumed before the job fails" },
	[I_RETRY_DELAY] = { "retry_delay_ms", REIMAGE_OPT_INT, "1000", 0, 600000,
			    "first wait before a resume; doubled each time, with jitter" },
	[I_KIND] = { "kind", REIMAGE_OPT_STRING, NULL, 0, 0,
		     "archive, iso, squashfs, ext4, raw, dir, oci, oci-layout, docker-archive, "
		     "chunked (unset: from the URL, chunked if toc_sha256 is given)" },
	[I_TOKEN_FILE] = { "token_file", REIMAGE_OPT_STRING, NULL, 0, 0,
			   "file holding a bearer token for an oci:// registry" },
	[I_UNPACKED_SIZE] = { "unpacked_size", REIMAGE_OPT_INT, "-1", -1, MAX_BYTES,
			      "bytes of file data the image unpacks to: PREFLIGHT's space check, "
			      "and a hard limit while staging" },
	[I_TOC_SHA256] = { "toc_sha256", REIMAGE_OPT_STRING, NULL, 0, 0,
			   "chunked image: SHA-256 of its table of contents (reimagectl image "
			   "chunk prints it); files the root holds are then reused" },
	[I_DEVICES] = { "devices", REIMAGE_OPT_STRINGS, "dev", 0, 0,
			"directories (relative to the image's root; \".\" for anywhere) below "
			"which the image may create device nodes; [] for nowhere" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { P_MODE, P_AGENT, P_NETWORK, P_NETWORK_PATHS, P_USERS, P_PATHS, P_COUNT };
static const struct reimage_option preserve_table[] = {
	[P_MODE] = { "mode", REIMAGE_OPT_STRING, "move", 0, 0,
		     "move (renamed at swap time) or copy (copied into staging)" },
	[P_AGENT] = { "agent", REIMAGE_OPT_BOOL, "true", 0, 0,
		      "the agent, its plugins, configuration and state" },
	[P_NETWORK] = { "network", REIMAGE_OPT_BOOL, "false", 0, 0, "the backend's network set" },
	[P_NETWORK_PATHS] = { "network_paths", REIMAGE_OPT_STRINGS, NULL, 0, 0,
			      "globs replacing the backend's network set" },
	[P_USERS] = { "users", REIMAGE_OPT_STRINGS, "", 0, 0,
		      "\"all\" or a list of users: home folders and account entries" },
	[P_PATHS] = { "paths", REIMAGE_OPT_STRINGS, "", 0, 0, "globs of paths to keep" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { H_PATH, H_ARGS, H_TIMEOUT, H_SHA256, H_COUNT };
static const struct reimage_option hook_table[] = {
	[H_PATH] = { "path", REIMAGE_OPT_STRING, NULL, 0, 0, "absolute path of the script" },
	[H_ARGS] = { "args", REIMAGE_OPT_STRINGS, "", 0, 0, "arguments after the staging path" },
	[H_TIMEOUT] = { "timeout", REIMAGE_OPT_INT, "300", 1, 86400, "seconds before it is killed" },
	[H_SHA256] = { "sha256", REIMAGE_OPT_STRING, NULL, 0, 0, "SHA-256 the script must have" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum { B_COMMAND, B_KERNEL, B_INITRD, B_CMDLINE, B_ONE_SHOT, B_KEXEC, B_COUNT };
static const struct reimage_option boot_table[] = {
	[B_COMMAND] = { "command", REIMAGE_OPT_STRING, NULL, 0, 0,
			"command run inside the new root (e.g. update-grub)" },
	[B_KERNEL] = { "kernel", REIMAGE_OPT_STRING, NULL, 0, 0, "kernel to boot, in the new image" },
	[B_INITRD] = { "initrd", REIMAGE_OPT_STRING, NULL, 0, 0, "initrd, in the new image" },
	[B_CMDLINE] = { "cmdline", REIMAGE_OPT_STRING, NULL, 0, 0, "kernel command line" },
	[B_ONE_SHOT] = { "one_shot", REIMAGE_OPT_BOOL, "true", 0, 0,
			 "boot the new image once only where the platform can" },
	[B_KEXEC] = { "kexec", REIMAGE_OPT_BOOL, "false", 0, 0,
		      "reboot into the new image's kernel with kexec, skipping the firmware "
		      "(posix): kernel and initrd default to boot/vmlinuz and boot/initrd.img, "
		      "cmdline to the running kernel's; if it cannot be loaded the reboot goes "
		      "through the firmware (logged)" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

enum {
	A_AGENT_ID, A_GROUPS, A_ROOT, A_BACKEND, A_PLUGINS, A_PLUGIN_PATH, A_STATE_DIR, A_STORE,
	A_JOBS, A_REPORTS, A_POLL_INTERVAL, A_POLL_JITTER, A_TRUSTED_KEYS, A_REVOKED_KEYS,
	A_MAX_SERIAL_JUMP, A_FIRST_SERIAL_MAX, A_STORE_TIMESTAMP_MAX_AGE, A_GUARD, A_CLOCK,
	A_HEARTBEAT, A_COUNT
};
static const struct reimage_option agent_table[] = {
	[A_AGENT_ID] = { "agent_id", REIMAGE_OPT_STRING, NULL, 0, 0,
			 "this machine's name in jobs and reports (default: host name)" },
	[A_GROUPS] = { "groups", REIMAGE_OPT_STRINGS, "", 0, 0, "groups this machine belongs to" },
	[A_ROOT] = { "root", REIMAGE_OPT_STRING, "/", 0, 0, "root to re-image" },
	[A_BACKEND] = { "backend", REIMAGE_OPT_STRING, "auto", 0, 0, "backend plugin" },
	[A_PLUGINS] = { "plugins", REIMAGE_OPT_STRINGS, "", 0, 0,
			"plugins loaded at start (transports for the job store)" },
	[A_PLUGIN_PATH] = { "plugin_path", REIMAGE_OPT_STRINGS, "", 0, 0, "plugin directories" },
	[A_STATE_DIR] = { "state_dir", REIMAGE_OPT_STRING, "/var/lib/reimage", 0, 0,
			  "the agent's state (last serial, keys)" },
	[A_STORE] = { "store", REIMAGE_OPT_STRING, NULL, 0, 0,
		      "job store location (jobs and reports in the layout reimagectl writes)" },
	[A_JOBS] = { "jobs", REIMAGE_OPT_STRINGS, NULL, 0, 0,
		     "job locations polled (default: this agent's and its groups' in the store)" },
	[A_REPORTS] = { "reports", REIMAGE_OPT_STRING, NULL, 0, 0,
			"where status reports go (default: the store's reports/)" },
	[A_POLL_INTERVAL] = { "poll_interval", REIMAGE_OPT_INT, "60", 1, 86400,
			      "seconds between polls" },
	[A_POLL_JITTER] = { "poll_jitter", REIMAGE_OPT_INT, "30", 0, 86400,
			    "random extra seconds per poll, so a fleet does not poll in step" },
	[A_TRUSTED_KEYS] = { "trusted_keys", REIMAGE_OPT_STRINGS, "", 0, 0,
			     "public keys (PEM files) whose signed jobs are accepted" },
	[A_REVOKED_KEYS] = { "revoked_keys", REIMAGE_OPT_STRINGS, "", 0, 0,
			     "key ids or PEM files refused even if trusted" },
	[A_MAX_SERIAL_JUMP] = { "max_serial_jump", REIMAGE_OPT_INT, "1000000", 1, MAX_BYTES,
				"largest step above the last serial run (or the last serial_reset) "
				"that is accepted" },
	[A_FIRST_SERIAL_MAX] = { "first_serial_max", REIMAGE_OPT_INT, "1000000", 0, MAX_BYTES,
				 "largest serial a fresh agent (no serial yet) or a serial_reset "
				 "job may carry" },
	[A_STORE_TIMESTAMP_MAX_AGE] = { "store_timestamp_max_age", REIMAGE_OPT_INT, "0", 0,
					 366 * 86400,
					 "seconds: require <store>/timestamp, signed by a trusted key "
					 "(`reimagectl timestamp`) and at most this old; older, "
					 "missing or replayed, the store is stale and no job is taken "
					 "(0: not required)" },
	[A_GUARD] = { "guard", REIMAGE_OPT_STRING, NULL, 0, 0,
		      "the reimage-guard binary (default: beside reimage, else the installed one)" },
	[A_CLOCK] = { "clock", REIMAGE_OPT_STRING, "system", 0, 0,
		      "\"system\", or \"store\": follow the job store's clock (HTTP Date) for "
		      "`at`, windows and expiry" },
	[A_HEARTBEAT] = { "heartbeat", REIMAGE_OPT_INT, "3600", 1, 7 * 86400,
			  "seconds between two writes of the latest report when nothing "
			  "happens: the fleet's inventory (`reimagectl agents`) shows when "
			  "each machine was last seen" },
	{ NULL, REIMAGE_OPT_END, NULL, 0, 0, NULL }
};

const struct reimage_option *config_job_options(void)
{
	return job_table;
}

const struct config_group *config_job_groups(void)
{
	static const struct config_group groups[] = {
		{ "group 'image'", image_table },
		{ "group 'preserve'", preserve_table },
		{ "each item of 'hooks'", hook_table },
		{ "group 'boot'", boot_table },
		{ "group 'targets'", targets_table },
		{ "group 'health'", health_table },
		{ "group 'trial'", trial_table },
		{ "group 'preflight'", preflight_table },
		{ "group 'rollout'", rollout_table },
		{ "group 'notice'", notice_table },
		{ NULL, NULL },
	};
	return groups;
}

const struct reimage_option *config_agent_options(void)
{
	return agent_table;
}

/*
 * Integers libconfig cannot hold exactly.  libconfig 1.5 reads a plain
 * integer into a 32-bit int (4294967301 becomes 5, silently), clamps a
 * 64-bit one ("L") to its limits and casts hex through unsigned; 1.7
 * reads "010" as octal where 1.5 reads ten.  So every integer in a file or
 * document is checked as written, before its value is used: a plain one
 * must fit 32 bits (write "L" for more), any one 63 bits, no leading zero.
 * The scan skips strings, comments and names, as libconfig's lexer does.
 */
static int number_ok(const char *p, size_t n, const char **why)
{
	int neg = 0, hex, wide;
	unsigned long long v = 0, limit;
	size_t i = 0;

	if (p[i] == '-' || p[i] == '+')
		neg = p[i++] == '-';
	hex = n - i > 2 && p[i] == '0' && (p[i + 1] == 'x' || p[i + 1] == 'X');
	if (hex)
		i += 2;
	wide = p[n - 1] == 'L';
	while (n > i && p[n - 1] == 'L')
		n--;
	if (!hex && n - i > 1 && p[i] == '0') {
		*why = "a leading zero (octal in some libconfig versions, decimal in others)";
		return 0;
	}
	limit = wide ? 0x7fffffffffffffffULL : 0x7fffffffULL + (!hex && neg);
	for (; i < n; i++) {
		unsigned d = p[i] <= '9' ? (unsigned)(p[i] - '0') : (unsigned)((p[i] | 32) - 'a' + 10);
		if (v > (limit - d) / (hex ? 16 : 10)) {
			*why = wide ? "out of the range of a 64-bit integer"
				    : "out of the range of a plain (32-bit) integer: write it with L "
				      "for 64 bits";
			return 0;
		}
		v = v * (hex ? 16 : 10) + d;
	}
	return 1;
}

static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '*';
}

static int check_numbers(const char *text, size_t len, const char *name,
			 struct reimage_error *err)
{
	const char *p = text, *end = text + len, *why;
	int line = 1;

	while (p < end) {
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				line += *p == '\n';
			}
			p++;
		} else if (*p == '#' || (*p == '/' && p + 1 < end && p[1] == '/')) {
			while (p < end && *p != '\n')
				p++;
		} else if (*p == '/' && p + 1 < end && p[1] == '*') {
			for (p += 2; p < end && !(*p == '*' && p + 1 < end && p[1] == '/'); p++)
				line += *p == '\n';
			p += 2;
		} else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '*') {
			while (p < end && name_char(*p))
				p++;
		} else if ((*p >= '0' && *p <= '9') ||
			   ((*p == '-' || *p == '+') && p + 1 < end && p[1] >= '0' && p[1] <= '9')) {
			const char *s = p;
			int is_float = 0;
			p += *p == '-' || *p == '+';
			while (p < end && (name_char(*p) || *p == '.' ||
					   ((*p == '-' || *p == '+') && (p[-1] | 32) == 'e'))) {
				is_float |= *p == '.' || ((*p | 32) == 'e' && !(s[0] == '0' &&
							 (s[1] | 32) == 'x'));
				p++;
			}
			/* Floats are refused where an integer is declared. */
			if (!is_float && !number_ok(s, (size_t)(p - s), &why)) {
				err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s:%d: integer %.*s: %s", name,
					line, (int)(p - s), s, why);
				return -EINVAL;
			}
		} else {
			p++;
		}
	}
	return 0;
}

/* The numbers of a file libconfig has read, and of the files it
 * @includes (libconfig 1.5: one file each, relative to dir). */
static int check_file_numbers(const char *path, const char *dir, int depth,
			      struct reimage_error *err)
{
	char *text = NULL, inc[4096];
	size_t len;
	int r;

	if ((r = fs_read_small(path, 1u << 24, &text, &len, err)) < 0)
		return r;
	r = check_numbers(text, len, path, err);
	for (char *l = text; r == 0 && l && depth < 10; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char *q = l + strspn(l, " \t"), *e;
		if (strncmp(q, "@include", 8) != 0 || !(q = strchr(q, '"')) ||
		    !(e = strchr(q + 1, '"')))
			continue;
		*e = '\0';
		snprintf(inc, sizeof(inc), "%s%s%s", q[1] == '/' ? "" : dir, q[1] == '/' ? "" : "/",
			 q + 1);
		/* libconfig read what it included; a line that only looks like an
		 * @include (inside a comment) may name nothing. */
		if ((r = check_file_numbers(inc, dir, depth + 1, err)) == -ENOENT) {
			err_clear(err);
			r = 0;
		}
		*e = '"';
	}
	free(text);
	return r;
}

static int read_file(config_t *cfg, const char *path, struct reimage_error *err)
{
	config_init(cfg);
	/* Relative @include paths resolve against the including file's directory. */
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		config_set_include_dir(cfg, dir[0] ? dir : "/");
	}
	/* On failure cfg is destroyed (libconfig zeroes it: destroying it
	 * again is harmless). */
	if (config_read_file(cfg, path)) {
		int r = check_file_numbers(path, slash ? (dir[0] ? dir : "/") : ".", 0, err);
		if (r < 0)
			config_destroy(cfg);
		return r;
	}
	if (config_error_type(cfg) == CONFIG_ERR_FILE_IO) {
		/* A job or agent file that is missing or unreadable is a
		 * configuration error (exit 2), as a bad setting in it is. */
		int e = access(path, R_OK) < 0 ? errno : EIO;
		err_set(err, -e, REIMAGE_EC_CONFIG, "%s: %s", path, strerror(e));
	} else {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s:%d: %s",
			config_error_file(cfg) ? config_error_file(cfg) : path,
			config_error_line(cfg), config_error_text(cfg));
	}
	/* Released here: a caller that fails on it frees nothing.  A zeroed
	 * config may still be destroyed (job_free, agent_conf_free). */
	config_destroy(cfg);
	memset(cfg, 0, sizeof(*cfg));
	return err->code;
}

static struct reimage_optval *values_for(const struct reimage_option *table, size_t count)
{
	(void)table;
	return calloc(count + 1, sizeof(struct reimage_optval));
}

static int config_bad(struct reimage_error *err, const char *file, int line, const char *name,
		      const char *what)
{
	err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s:%d: setting '%s': %s", file, line, name, what);
	return -EINVAL;
}

static int is_sha256(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return 0;
	return n == 64;
}

/* Groups left unread at the top level must be plugin groups. */
static int check_plugin_groups(const config_setting_t *root, const struct reimage_option *table,
			       struct reimage_error *err)
{
	for (int i = 0; i < config_setting_length(root); i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(s);
		if (options_index(table, name) >= 0 || !config_setting_is_group(s))
			continue;
		if (!registry_known_plugin(name)) {
			char where[512];
			options_where(s, where, sizeof(where));
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
				"%s: unknown setting '%s' (neither a setting nor a known plugin)", where,
				name);
			return -EINVAL;
		}
	}
	return 0;
}

static int read_group(const config_setting_t *root, const char *name, const char *where,
		      const struct reimage_option *table, size_t count,
		      struct reimage_optval **ret_values, struct reimage_error *err)
{
	struct reimage_optval *v = values_for(table, count);
	if (!v) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	*ret_values = v;
	return options_read(root ? config_setting_get_member(root, name) : NULL, where, table, v, 0,
			    err);
}

static int job_read_hooks(struct job *job, const config_setting_t *list, struct reimage_error *err)
{
	char where[512];
	size_t n;

	if (!list)
		return 0;
	if (!config_setting_is_list(list)) {
		options_where(list, where, sizeof(where));
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG,
			"%s: setting 'hooks': expected a list ( { path = ...; }, ... )", where);
		return -EINVAL;
	}
	n = (size_t)config_setting_length(list);
	job->hooks = calloc(n + 1, sizeof(*job->hooks));
	job->hook_values = calloc(n * H_COUNT + 1, sizeof(*job->hook_values));
	if (!job->hooks || !job->hook_values) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	job->n_hooks = n;
	for (size_t i = 0; i < n; i++) {
		const config_setting_t *h = config_setting_get_elem(list, (unsigned)i);
		struct reimage_optval *v = &job->hook_values[i * H_COUNT];
		options_where(h, where, sizeof(where));
		if (options_read(h, "a hook", hook_table, v, 0, err) < 0)
			return -EINVAL;
		if (!v[H_PATH].set || v[H_PATH].s[0] != '/')
			return config_bad(err, job->file, config_setting_source_line(h), "hooks.path",
					  "each hook needs an absolute path");
		if (v[H_SHA256].set && !is_sha256(v[H_SHA256].s))
			return config_bad(err, job->file, v[H_SHA256].line, "hooks.sha256",
					  "expected 64 lowercase hex digits");
		job->hooks[i].path = v[H_PATH].s;
		job->hooks[i].args = v[H_ARGS].list;
		job->hooks[i].timeout = v[H_TIMEOUT].i;
		job->hooks[i].sha256 = v[H_SHA256].set ? v[H_SHA256].s : NULL;
	}
	return 0;
}

/* When and in which wave the swap may happen, and how users are told. */
static int job_parse_schedule(struct job *job, struct reimage_error *err)
{
	const struct reimage_optval *v = job->values, *ro = job->rollout_values,
				    *n = job->notice_values;
	const char *path = job->file;

	if (v[J_TIMEZONE].set && !when_zone_ok(v[J_TIMEZONE].s))
		return config_bad(err, path, v[J_TIMEZONE].line, "timezone",
				  "expected a zone name like \"Europe/Berlin\" or \"UTC\"");
	if (v[J_JITTER].i > 0 && v[J_WINDOW].i > 0 && v[J_JITTER].i >= v[J_WINDOW].i)
		return config_bad(err, path, v[J_JITTER].line, "jitter",
				  "must be shorter than `window`, or no agent could start in it");
	for (size_t i = 0; i < ro[RO_WAVES].n; i++) {
		const char *w = ro[RO_WAVES].list[i];
		if (!when_percent(w, NULL) && !store_name_ok(w))
			return config_bad(err, path, ro[RO_WAVES].line, "rollout.waves",
					  "each wave is \"N%\" (1 to 100) or a group name");
	}
	if (ro[RO_WAVE].i > (long long)ro[RO_WAVES].n)
		return config_bad(err, path, ro[RO_WAVE].line, "rollout.wave",
				  "there is no such wave in rollout.waves");
	if (n[N_DEFER_DEADLINE].set && when_parse(n[N_DEFER_DEADLINE].s, &job->defer_deadline) < 0)
		return config_bad(err, path, n[N_DEFER_DEADLINE].line, "notice.defer_deadline",
				  "expected a timestamp like \"2026-11-30T18:00:00Z\"");
	job->timezone = v[J_TIMEZONE].set ? v[J_TIMEZONE].s : NULL;
	job->jitter = v[J_JITTER].i;
	job->stage_early = (int)v[J_STAGE_EARLY].i;
	job->waves = ro[RO_WAVES].list;
	job->n_waves = ro[RO_WAVES].n;
	job->failure_budget = (int)ro[RO_FAILURE_BUDGET].i;
	job->wave = (int)ro[RO_WAVE].i - 1;  /* counted from 0 inside */
	job->wave_timeout = ro[RO_WAVE_TIMEOUT].i;
	job->notice.seconds = n[N_SECONDS].i;
	job->notice.repeat = n[N_REPEAT].i;
	job->notice.message = n[N_MESSAGE].s;
	job->notice.max_deferrals = (int)n[N_MAX_DEFERRALS].i;
	job->notice.defer_seconds = n[N_DEFER_SECONDS].i;
	job->notice.inhibitors = n[N_INHIBITORS].list;
	return 0;
}

/* The settings of a job read into job->cfg (from a file or a document). */
static int job_parse(struct job *job, struct reimage_error *err)
{
	const char *path = job->file;
	const config_setting_t *root;
	struct reimage_optval *v, *iv, *pv, *bv, *tv;
	int r;

	root = config_root_setting(&job->cfg);
	if (!(job->values = v = values_for(job_table, J_COUNT))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = options_read(root, "the job file", job_table, v, OPTS_ALLOW_GROUPS, err)) < 0 ||
	    (r = check_plugin_groups(root, job_table, err)) < 0)
		goto fail;
	if (!v[J_ID].set || !v[J_ID].s[0]) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: setting 'id' is required", path);
		r = -EINVAL;
		goto fail;
	}
	if (!v[J_IMAGE].set) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: group 'image' is required", path);
		r = -EINVAL;
		goto fail;
	}
	if ((r = read_group(root, "image", "group 'image'", image_table, I_COUNT,
			    &job->image_values, err)) < 0 ||
	    (r = read_group(root, "preserve", "group 'preserve'", preserve_table, P_COUNT,
			    &job->preserve_values, err)) < 0 ||
	    (r = read_group(root, "boot", "group 'boot'", boot_table, B_COUNT, &job->boot_values,
			    err)) < 0 ||
	    (r = read_group(root, "targets", "group 'targets'", targets_table, T_COUNT,
			    &job->targets_values, err)) < 0 ||
	    (r = read_group(root, "health", "group 'health'", health_table, HC_COUNT,
			    &job->health_values, err)) < 0 ||
	    (r = read_group(root, "trial", "group 'trial'", trial_table, TR_COUNT,
			    &job->trial_values, err)) < 0 ||
	    (r = read_group(root, "preflight", "group 'preflight'", preflight_table, PF_COUNT,
			    &job->preflight_values, err)) < 0 ||
	    (r = read_group(root, "rollout", "group 'rollout'", rollout_table, RO_COUNT,
			    &job->rollout_values, err)) < 0 ||
	    (r = read_group(root, "notice", "group 'notice'", notice_table, N_COUNT,
			    &job->notice_values, err)) < 0 ||
	    (r = job_read_hooks(job, config_setting_get_member(root, "hooks"), err)) < 0)
		goto fail;
	iv = job->image_values;
	pv = job->preserve_values;
	bv = job->boot_values;
	tv = job->targets_values;
	if (v[J_NOT_AFTER].set && when_parse(v[J_NOT_AFTER].s, &job->not_after) < 0) {
		r = config_bad(err, path, v[J_NOT_AFTER].line, "not_after",
			       "expected a timestamp like \"2026-11-30T18:00:00Z\"");
		goto fail;
	}
	if (v[J_SIGNED_AT].set && when_parse(v[J_SIGNED_AT].s, &job->signed_at) < 0) {
		r = config_bad(err, path, v[J_SIGNED_AT].line, "signed_at",
			       "expected a timestamp like \"2026-11-30T18:00:00Z\"");
		goto fail;
	}
	if (v[J_AT].set && !when_is_daily(v[J_AT].s) && when_parse(v[J_AT].s, &(int64_t){ 0 }) < 0) {
		r = config_bad(err, path, v[J_AT].line, "at",
			       "expected a daily local time \"03:00\" or a timestamp like "
			       "\"2026-11-26T03:00:00Z\"");
		goto fail;
	}
	if ((r = job_parse_schedule(job, err)) < 0)
		goto fail;
	if (!iv[I_URL].set || !iv[I_URL].s[0]) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: setting 'image.url' is required", path);
		r = -EINVAL;
		goto fail;
	}
	if (iv[I_SHA256].set && !is_sha256(iv[I_SHA256].s)) {
		r = config_bad(err, path, iv[I_SHA256].line, "image.sha256",
			       "expected 64 lowercase hex digits");
		goto fail;
	}
	if (iv[I_KIND].set && !strlist_has(source_kind_names, iv[I_KIND].s)) {
		r = config_bad(err, path, iv[I_KIND].line, "image.kind",
			       "expected archive, iso, squashfs, ext4, raw, dir, oci, oci-layout, "
			       "docker-archive or chunked");
		goto fail;
	}
	if (iv[I_TOC_SHA256].set && !is_sha256(iv[I_TOC_SHA256].s)) {
		r = config_bad(err, path, iv[I_TOC_SHA256].line, "image.toc_sha256",
			       "expected 64 lowercase hex digits");
		goto fail;
	}
	if (iv[I_TOC_SHA256].set && iv[I_KIND].set && strcmp(iv[I_KIND].s, "chunked") != 0) {
		r = config_bad(err, path, iv[I_TOC_SHA256].line, "image.toc_sha256",
			       "only a chunked image has a TOC (image.kind is not \"chunked\")");
		goto fail;
	}
	if (iv[I_TOKEN_FILE].set && iv[I_TOKEN_FILE].s[0] != '/') {
		r = config_bad(err, path, iv[I_TOKEN_FILE].line, "image.token_file",
			       "expected an absolute path");
		goto fail;
	}
	for (size_t i = 0; i < iv[I_DEVICES].n; i++) {
		const char *d = iv[I_DEVICES].list[i];
		if (!d[0] || d[0] == '/' || strstr(d, "..")) {
			r = config_bad(err, path, iv[I_DEVICES].line, "image.devices",
				       "directories are relative to the image and must not contain "
				       "'..'");
			goto fail;
		}
	}
	if (strcmp(pv[P_MODE].s, "move") && strcmp(pv[P_MODE].s, "copy")) {
		r = config_bad(err, path, pv[P_MODE].line, "preserve.mode", "expected \"move\" or \"copy\"");
		goto fail;
	}
	if (v[J_LABEL].set && (!v[J_LABEL].s[0] || strlen(v[J_LABEL].s) > 255)) {
		r = config_bad(err, path, v[J_LABEL].line, "label", "expected 1 to 255 characters");
		goto fail;
	}
	for (size_t i = 0; i < pv[P_PATHS].n; i++) {
		const char *p = pv[P_PATHS].list[i];
		if (!p[0] || strstr(p, "..")) {
			r = config_bad(err, path, pv[P_PATHS].line, "preserve.paths",
				       "paths must be non-empty and must not contain '..'");
			goto fail;
		}
	}
	job->id = v[J_ID].s;
	job->serial = v[J_SERIAL].i;
	job->serial_reset = v[J_SERIAL_RESET].i;
	job->image_url = iv[I_URL].s;
	job->image_sha256 = iv[I_SHA256].set ? iv[I_SHA256].s : NULL;
	job->image_size = iv[I_SIZE].i;
	job->image_retries = (int)iv[I_RETRIES].i;
	job->image_retry_delay_ms = iv[I_RETRY_DELAY].i;
	job->image_toc_sha256 = iv[I_TOC_SHA256].set ? iv[I_TOC_SHA256].s : NULL;
	/* The TOC's digest makes a remote image chunked (a local one says so
	 * by its footer, source.c). */
	job->image_kind = iv[I_KIND].set ? iv[I_KIND].s : job->image_toc_sha256 ? "chunked" : NULL;
	job->image_token_file = iv[I_TOKEN_FILE].set ? iv[I_TOKEN_FILE].s : NULL;
	job->root = v[J_ROOT].s;
	job->root_set = v[J_ROOT].line > 0;  /* given, not the default */
	job->backend = v[J_BACKEND].s;
	job->preserve_mode = strcmp(pv[P_MODE].s, "copy") == 0 ? PRESERVE_COPY : PRESERVE_MOVE;
	job->preserve_agent = (int)pv[P_AGENT].i;
	job->preserve_network = (int)pv[P_NETWORK].i;
	job->network_paths = pv[P_NETWORK_PATHS].set ? pv[P_NETWORK_PATHS].list : NULL;
	job->users_all = pv[P_USERS].n == 1 && strcmp(pv[P_USERS].list[0], "all") == 0;
	job->users = job->users_all ? NULL : pv[P_USERS].list;
	job->paths = pv[P_PATHS].list;
	job->label = v[J_LABEL].set ? v[J_LABEL].s : NULL;
	job->boot_set = v[J_BOOT].set;
	job->boot.command = bv[B_COMMAND].set ? bv[B_COMMAND].s : NULL;
	job->boot.kernel = bv[B_KERNEL].set ? bv[B_KERNEL].s : NULL;
	job->boot.initrd = bv[B_INITRD].set ? bv[B_INITRD].s : NULL;
	job->boot.cmdline = bv[B_CMDLINE].set ? bv[B_CMDLINE].s : NULL;
	job->boot.one_shot = (int)bv[B_ONE_SHOT].i;
	job->boot.kexec = (int)bv[B_KEXEC].i;
	job->reboot = (int)v[J_REBOOT].i;
	job->keep_old_days = v[J_KEEP_OLD_DAYS].i;
	job->keep_entries = v[J_KEEP_ENTRIES].set ? v[J_KEEP_ENTRIES].list : NULL;
	job->plugin_path = v[J_PLUGIN_PATH].list;
	job->target_agents = tv[T_AGENTS].list;
	job->target_groups = tv[T_GROUPS].list;
	job->has_targets = v[J_TARGETS].set;
	job->at = v[J_AT].set ? v[J_AT].s : NULL;
	job->window = v[J_WINDOW].i;
	job->test_swap_pause = v[J_TEST_SWAP_PAUSE].i;
	job->health.units = job->health_values[HC_UNITS].list;
	job->health.commands = job->health_values[HC_COMMANDS].list;
	job->health.report = (int)job->health_values[HC_REPORT].i;
	job->health.deadline = job->health_values[HC_DEADLINE].i;
	job->image_unpacked_size = iv[I_UNPACKED_SIZE].i;
	job->image_devices = iv[I_DEVICES].list;
	job->trial_guard = (int)job->trial_values[TR_GUARD].i;
	job->trial_max_attempts = (int)job->trial_values[TR_MAX_ATTEMPTS].i;
	job->free_margin = job->preflight_values[PF_FREE_MARGIN_MB].i << 20;
	job->require_ac_power = (int)job->preflight_values[PF_AC_POWER].i;
	job->required_paths = job->preflight_values[PF_REQUIRED_PATHS].list;
	for (size_t i = 0; job->required_paths && job->required_paths[i]; i++) {
		const char *p = job->required_paths[i];
		if (!p[0] || p[0] == '/' || strstr(p, "..")) {
			r = config_bad(err, path, job->preflight_values[PF_REQUIRED_PATHS].line,
				       "preflight.required_paths",
				       "paths are relative to the image and must not contain '..'");
			goto fail;
		}
	}
	for (size_t i = 0; job->health.commands && job->health.commands[i]; i++)
		if (job->health.commands[i][0] != '/') {
			r = config_bad(err, path, job->health_values[HC_COMMANDS].line,
				       "health.commands", "each command needs an absolute path");
			goto fail;
		}
	return 0;
fail:
	job_free(job);
	return r;
}

int job_load(struct job *job, const char *path, struct reimage_error *err)
{
	int r;

	memset(job, 0, sizeof(*job));
	snprintf(job->file, sizeof(job->file), "%s", path);
	if ((r = read_file(&job->cfg, path, err)) < 0)
		return r;
	return job_parse(job, err);
}

/* A signed document names every decision itself: it may not pull in a
 * file of the machine that reads it. */
static int has_include(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (i > 0 && text[i - 1] != '\n')
			continue;
		size_t j = i;
		while (j < len && (text[j] == ' ' || text[j] == '\t'))
			j++;
		if (len - j >= 8 && memcmp(text + j, "@include", 8) == 0)
			return 1;
	}
	return 0;
}

int config_read_document(config_t *cfg, const char *name, const char *text, size_t len,
			 struct reimage_error *err)
{
	char *copy;
	int ok;

	config_init(cfg);
	if (memchr(text, '\0', len) || has_include(text, len)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s: a signed document may hold no NUL "
			"byte and no @include", name);
		config_destroy(cfg);
		return -EINVAL;
	}
	if (!(copy = strndup(text, len))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		config_destroy(cfg);
		return -ENOMEM;
	}
	ok = config_read_string(cfg, copy);
	free(copy);
	if (!ok) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "%s:%d: %s", name, config_error_line(cfg),
			config_error_text(cfg));
		config_destroy(cfg);
		return -EINVAL;
	}
	if (check_numbers(text, len, name, err) < 0) {
		config_destroy(cfg);
		return -EINVAL;
	}
	config_setting_set_hook(config_root_setting(cfg), (void *)name);
	return 0;
}

int job_load_text(struct job *job, const char *name, const char *text, size_t len,
		  struct reimage_error *err)
{
	int r;

	memset(job, 0, sizeof(*job));
	snprintf(job->file, sizeof(job->file), "%s", name);
	/* The hook names the document in errors: job->file outlives the
	 * caller's name. */
	if ((r = config_read_document(&job->cfg, job->file, text, len, err)) < 0)
		return r;
	return job_parse(job, err);
}

static void free_values(const struct reimage_option *table, struct reimage_optval *v)
{
	if (!v)
		return;
	options_free(table, v);
	free(v);
}

void job_free(struct job *job)
{
	free_values(job_table, job->values);
	free_values(image_table, job->image_values);
	free_values(preserve_table, job->preserve_values);
	free_values(boot_table, job->boot_values);
	free_values(targets_table, job->targets_values);
	free_values(health_table, job->health_values);
	free_values(trial_table, job->trial_values);
	free_values(preflight_table, job->preflight_values);
	free_values(rollout_table, job->rollout_values);
	free_values(notice_table, job->notice_values);
	for (size_t i = 0; job->hook_values && i < job->n_hooks; i++)
		options_free(hook_table, &job->hook_values[i * H_COUNT]);
	free(job->hook_values);
	free(job->hooks);
	config_destroy(&job->cfg);
	memset(job, 0, sizeof(*job));
}

int agent_conf_load(struct agent_conf *ac, const char *path, struct reimage_error *err)
{
	static char hostname[256];
	const config_setting_t *root = NULL;
	struct reimage_optval *v;
	int r;

	memset(ac, 0, sizeof(*ac));
	config_init(&ac->cfg);
	if (path) {
		snprintf(ac->file, sizeof(ac->file), "%s", path);
		config_destroy(&ac->cfg);
		if ((r = read_file(&ac->cfg, path, err)) < 0) {
			/* The agent survives a bad file on SIGHUP: nothing may leak. */
			config_destroy(&ac->cfg);
			return r;
		}
		root = config_root_setting(&ac->cfg);
		ac->loaded = 1;
	}
	if (!(ac->values = v = values_for(agent_table, A_COUNT))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = options_read(root, "the agent file", agent_table, v, OPTS_ALLOW_GROUPS, err)) < 0 ||
	    (root && (r = check_plugin_groups(root, agent_table, err)) < 0)) {
		agent_conf_free(ac);
		return r;
	}
	if (!v[A_AGENT_ID].set) {
		if (gethostname(hostname, sizeof(hostname) - 1) < 0)
			snprintf(hostname, sizeof(hostname), "localhost");
	}
	ac->agent_id = v[A_AGENT_ID].set ? v[A_AGENT_ID].s : hostname;
	ac->groups = v[A_GROUPS].list;
	ac->root = v[A_ROOT].s;
	ac->root_set = v[A_ROOT].line > 0;
	ac->backend = v[A_BACKEND].s;
	ac->plugins = v[A_PLUGINS].list;
	ac->plugin_path = v[A_PLUGIN_PATH].list;
	ac->state_dir = v[A_STATE_DIR].s;
	ac->store = v[A_STORE].set ? v[A_STORE].s : NULL;
	ac->jobs = v[A_JOBS].set ? v[A_JOBS].list : NULL;
	ac->reports = v[A_REPORTS].set ? v[A_REPORTS].s : NULL;
	ac->poll_interval = v[A_POLL_INTERVAL].i;
	ac->poll_jitter = v[A_POLL_JITTER].i;
	ac->heartbeat = v[A_HEARTBEAT].i;
	ac->trusted_keys = v[A_TRUSTED_KEYS].list;
	ac->revoked_keys = v[A_REVOKED_KEYS].list;
	ac->max_serial_jump = v[A_MAX_SERIAL_JUMP].i;
	ac->first_serial_max = v[A_FIRST_SERIAL_MAX].i;
	ac->store_timestamp_max_age = v[A_STORE_TIMESTAMP_MAX_AGE].i;
	ac->guard = v[A_GUARD].set ? v[A_GUARD].s : NULL;
	if (strcmp(v[A_CLOCK].s, "system") && strcmp(v[A_CLOCK].s, "store")) {
		r = config_bad(err, ac->file, v[A_CLOCK].line, "clock",
			       "expected \"system\" or \"store\"");
		agent_conf_free(ac);
		return r;
	}
	ac->store_clock = !strcmp(v[A_CLOCK].s, "store");
	return 0;
}

void agent_conf_free(struct agent_conf *ac)
{
	free_values(agent_table, ac->values);
	config_destroy(&ac->cfg);
	memset(ac, 0, sizeof(*ac));
}

size_t config_plugin_groups(const struct job *job, const struct agent_conf *ac,
			    const char *plugin, const config_setting_t *ret[2])
{
	size_t n = 0;
	const config_setting_t *g;

	if (ac && ac->loaded && (g = config_setting_get_member(config_root_setting(&ac->cfg), plugin)))
		ret[n++] = g;
	if (job && job->values && (g = config_setting_get_member(config_root_setting(&job->cfg), plugin)))
		ret[n++] = g;
	return n;
}

int store_name_ok(const char *name)
{
	if (!name || !*name || *name == '.' || strlen(name) > 128)
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return 0;
	return 1;
}
