/*
 * preflight.c -- PREFLIGHT's checks of the machine (free space, power, the
 * boot guard) and, after STAGE, of the image (it can boot here).  Called by
 * the phase machine (phase.c) and by `reimage plan`, which prints every
 * outcome instead of stopping at the first failure.  preflight.h lists the
 * checks.
 */
#define _GNU_SOURCE
#include "preflight.h"
#include "error.h"
#include "fsutil.h"
#include "progress.h"
#include "trial.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef REIMAGE_GUARD_PATH
#define REIMAGE_GUARD_PATH "/usr/libexec/reimage/reimage-guard"
#endif

/* A failed check: an error when running, a printed line in a plan. */
static int refuse(FILE *out, struct reimage_error *err, int code, const char *what,
		  const char *msg)
{
	if (out) {
		fprintf(out, "  preflight  %s: REFUSED: %s\n", what, msg);
		return 0;
	}
	err_set(err, code, REIMAGE_EC_STATE, "%s: %s", what, msg);
	return code;
}

static int check_space(const char *root, const struct job *job, FILE *out,
		       struct reimage_error *err)
{
	char avail_s[32], need_s[32], margin_s[32], msg[512];
	uint64_t avail, need;
	const char *basis;
	int r;

	if ((r = fs_free_bytes(root, &avail, err)) < 0) {
		err_prefix(err, "space");
		return r;
	}
	if (job->image_unpacked_size >= 0) {
		need = (uint64_t)job->image_unpacked_size;
		basis = "image.unpacked_size";
	} else if (job->image_size >= 0) {
		/* A lower bound: staged files are at least as large as their
		 * compressed archive, almost always. */
		need = (uint64_t)job->image_size;
		basis = "at least image.size; give image.unpacked_size for an exact check";
	} else {
		need = 0;
		basis = "unknown: give image.unpacked_size; the margin is watched while staging";
	}
	progress_human(avail_s, sizeof(avail_s), avail);
	progress_human(need_s, sizeof(need_s), need);
	progress_human(margin_s, sizeof(margin_s), (uint64_t)job->free_margin);
	snprintf(msg, sizeof(msg), "%s free on the root's volume; the image needs %s (%s) plus a "
		 "margin of %s (preflight.free_margin_mb)", avail_s, need_s, basis, margin_s);
	if (avail < need + (uint64_t)job->free_margin)
		return refuse(out, err, -ENOSPC, "space", msg);
	if (out)
		fprintf(out, "  preflight  space: %s: ok\n", msg);
	return 0;
}

static int check_power(const struct job *job, const struct plugin *backend, FILE *out,
		       struct reimage_error *err)
{
	const struct reimage_backend_ops *b = backend->desc->backend;
	int power = REIMAGE_POWER_UNKNOWN;

	if (OPS_HAS(b, struct reimage_backend_ops, power) &&
	    (power = b->power(backend->ctx, err)) < 0) {
		err_prefix(err, "power");
		return power;
	}
	if (power == REIMAGE_POWER_BATTERY && job->require_ac_power)
		return refuse(out, err, -EAGAIN, "power",
			      "the machine runs on battery: plug it in, or set "
			      "preflight.ac_power = false");
	if (out)
		fprintf(out, "  preflight  power: %s\n",
			power == REIMAGE_POWER_AC ? "on AC: ok"
			: power == REIMAGE_POWER_BATTERY ? "on battery, allowed (preflight.ac_power = false)"
			: !job->require_ac_power ? "not checked (preflight.ac_power = false)"
			: "unknown (no power supply reported): not checked");
	return 0;
}

int preflight_machine(const char *root, const struct job *job, const struct plugin *backend,
		      FILE *out, struct reimage_error *err)
{
	int r;
	if ((r = check_space(root, job, out, err)) < 0)
		return r;
	return check_power(job, backend, out, err);
}

/* ------------------------------------------------------------- the guard */

static int executable_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

int preflight_guard(const struct job *job, const struct agent_conf *ac,
		    const struct plugin *backend, char *ret_path, size_t len,
		    struct reimage_error *err)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (!job->trial_guard || !(backend->desc->backend->caps & REIMAGE_BCAP_GUARD))
		return 0;
	if (ac->guard) {
		snprintf(ret_path, len, "%s", ac->guard);
		if (executable_file(ret_path))
			return 1;
		err_set(err, -ENOENT, REIMAGE_EC_CONFIG,
			"guard: %s (the agent file's `guard`) is not an executable file", ac->guard);
		return -ENOENT;
	}
	/* A build tree: reimage-guard is built beside reimage. */
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash && snprintf(ret_path, len, "%.*s/reimage-guard", (int)(slash - exe), exe) <
				     (int)len &&
		    executable_file(ret_path))
			return 1;
	}
	snprintf(ret_path, len, "%s", REIMAGE_GUARD_PATH);
	if (executable_file(ret_path))
		return 1;
	err_set(err, -ENOENT, REIMAGE_EC_CONFIG,
		"guard: no reimage-guard at %s nor beside reimage: install it, name it with `guard` "
		"in the agent file, or set trial.guard = false in the job (the new image's trial "
		"boots are then unguarded)", REIMAGE_GUARD_PATH);
	return -ENOENT;
}

/* ------------------------------------------------------------- the image */

static const char *machine_name(unsigned m)
{
	switch (m) {
	case EM_386: return "i386";
	case EM_X86_64: return "x86-64";
	case EM_ARM: return "arm";
	case EM_AARCH64: return "aarch64";
	case EM_RISCV: return "riscv";
	case EM_PPC: return "powerpc";
	case EM_PPC64: return "ppc64";
	case EM_S390: return "s390";
	case EM_MIPS: return "mips";
	case EM_LOONGARCH: return "loongarch";
	default: return NULL;
	}
}

struct elf_id {
	unsigned char cls, data;
	unsigned machine;
};

/* The first bytes of a file: an ELF's identity (1), a script (2, its
 * interpreter in interp), or neither (0); < 0 if unreadable.  A path in
 * an image is resolved inside it first (fs_resolve_in): its final
 * component is no symlink. */
static int read_exec_kind(const char *path, struct elf_id *id, char *interp, size_t len)
{
	unsigned char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	if (n >= (ssize_t)sizeof(Elf32_Ehdr) && !memcmp(buf, ELFMAG, SELFMAG)) {
		id->cls = buf[EI_CLASS];
		id->data = buf[EI_DATA];
		/* e_machine sits at the same offset in both classes. */
		uint16_t m;
		memcpy(&m, buf + offsetof(Elf32_Ehdr, e_machine), sizeof(m));
		id->machine = id->data == ELFDATA2MSB ? (unsigned)__builtin_bswap16(m) : m;
		return 1;
	}
	if (n > 2 && buf[0] == '#' && buf[1] == '!') {
		buf[n] = '\0';
		char *p = (char *)buf + 2;
		p += strspn(p, " \t");
		size_t k = strcspn(p, " \t\n");
		snprintf(interp, len, "%.*s", (int)k, p);
		return 2;
	}
	return 0;
}

static void describe(const struct elf_id *id, char *buf, size_t len)
{
	const char *m = machine_name(id->machine);
	if (m)
		snprintf(buf, len, "%s, %d-bit", m, id->cls == ELFCLASS64 ? 64 : 32);
	else
		snprintf(buf, len, "ELF machine %u, %d-bit", id->machine,
			 id->cls == ELFCLASS64 ? 64 : 32);
}

/* The program at rel (absolute inside tree) runs on this machine: an
 * executable ELF of its architecture, or a script whose interpreter is. */
static int check_program(const char *tree, const char *rel, const struct elf_id *self,
			 int depth, struct reimage_error *err)
{
	char real[PATH_MAX], path[PATH_MAX], interp[PATH_MAX], have[64], want[64];
	struct elf_id id = { 0 };
	int r;

	if ((r = fs_resolve_in(tree, rel, 1, real, sizeof(real))) < 0 ||
	    fs_join(path, sizeof(path), tree, real) < 0) {
		err_sys(err, r < 0 ? r : -ENAMETOOLONG, "%s", rel);
		return r < 0 ? r : -ENAMETOOLONG;
	}
	if (!executable_file(path)) {
		err_set(err, -EACCES, REIMAGE_EC_INTEGRITY, "%s is not an executable file", rel);
		return -EACCES;
	}
	if ((r = read_exec_kind(path, &id, interp, sizeof(interp))) < 0) {
		err_sys(err, r, "read %s", rel);
		return r;
	}
	if (r == 2 && depth == 0)
		return check_program(tree, interp, self, 1, err);
	if (r != 1) {
		err_set(err, -ENOEXEC, REIMAGE_EC_INTEGRITY, "%s is neither an ELF program nor a "
			"script with one as its interpreter", rel);
		return -ENOEXEC;
	}
	if (id.cls != self->cls || id.data != self->data || id.machine != self->machine) {
		describe(&id, have, sizeof(have));
		describe(self, want, sizeof(want));
		err_set(err, -ENOEXEC, REIMAGE_EC_INTEGRITY,
			"%s is built for %s; this machine runs %s", rel, have, want);
		return -ENOEXEC;
	}
	return 0;
}

/* 1 if the directory holds anything, 0 if empty, < 0 if unreadable. */
static int has_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;

	if (!d)
		return -errno;
	while (!found && (de = readdir(d)))
		found = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return found;
}

int preflight_image(const char *staging, const struct job *job, int guarded,
		    struct reimage_error *err)
{
	char init[PATH_MAX], rel[PATH_MAX], unused[PATH_MAX];
	struct elf_id self = { 0 };
	int r;

	/* An empty archive would swap in a root with nothing in it. */
	if ((r = has_entries(staging)) <= 0) {
		if (r < 0)
			err_sys(err, r, "image check: read %s", staging);
		else
			err_set(err, -ENOENT, REIMAGE_EC_INTEGRITY,
				"image check: the image is empty (no file or directory staged)");
		return r < 0 ? r : -ENOENT;
	}
	for (size_t i = 0; job->required_paths && job->required_paths[i]; i++)
		if (fs_resolve_in(staging, job->required_paths[i], 1, rel, sizeof(rel)) < 0) {
			err_set(err, -ENOENT, REIMAGE_EC_INTEGRITY,
				"image check: /%s is missing (preflight.required_paths)",
				job->required_paths[i]);
			return -ENOENT;
		}
	if (job->boot.kernel && fs_resolve_in(staging, job->boot.kernel, 1, rel, sizeof(rel)) < 0) {
		err_set(err, -ENOENT, REIMAGE_EC_INTEGRITY, "image check: boot.kernel /%s is "
			"missing from the image", job->boot.kernel);
		return -ENOENT;
	}
	if (!guarded)
		return 0;
	if (read_exec_kind("/proc/self/exe", &self, unused, sizeof(unused)) != 1) {
		err_set(err, -EIO, REIMAGE_EC_IO, "image check: cannot read this program's own ELF "
			"header (/proc/self/exe)");
		return -EIO;
	}
	if ((r = trial_find_init(staging, init, sizeof(init), err)) < 0 ||
	    (r = check_program(staging, init, &self, 0, err)) < 0) {
		err_prefix(err, "image check (trial.guard = false skips it)");
		return r;
	}
	return 0;
}
