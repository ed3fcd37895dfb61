/*
 * oci_fixture.c -- see oci_fixture.h.  Layers are written by GNU tar
 * (xattrs, ACLs, capabilities, holes); the expected tree is made by cp
 * and tar as a container runtime would apply the layers: whiteouts'
 * targets removed, then the layer extracted.
 */
#define _GNU_SOURCE
#include "oci_fixture.h"
#include "harness.h"
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAR_META "--numeric-owner --xattrs --xattrs-include='*' --acls --sparse"

void oci_fresh_root(void)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("rm -rf '%s' && mkdir -p '%s/etc' && echo old > '%s/etc/os'",
				   t_path("root"), t_path("root"), t_path("root")), 0);
}

void oci_setup(void)
{
	if (!t_is_root())
		t_skip("needs root for device nodes, owners and capabilities");
	oci_fresh_root();
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s'", t_path("src")), 0);
	fixture_meta_tree(t_path("src"));
}

void oci_layers(void)
{
	const char *d = t_dir();
	CU_ASSERT_EQUAL_FATAL(t_sh(
		"set -e; cd '%s'\n"
		"tar " TAR_META " -C src -cf layer1.tar .\n"
		/* Layer 2: whiteouts of a directory, a file and a symlink. */
		"mkdir -p l2/etc l2/only-new/deep l2/usr/lib l2/opt\n"
		"echo layer2 > l2/etc/hostname; echo added > l2/opt/added\n"
		"touch l2/.wh.home l2/only-new/deep/.wh.f l2/usr/lib/.wh.libc.link\n"
		"tar " TAR_META " -C l2 -cf layer2.tar .\n"
		/* Layer 3: an entry of its own, then the opaque marker, then
		 * another: only what earlier layers left in usr/share goes. */
		"mkdir -p l3/usr/share; echo z > l3/usr/share/zz-before; echo n > l3/usr/share/new-in-3\n"
		"touch l3/usr/share/.wh..wh..opq\n"
		"tar " TAR_META " -C l3 --no-recursion -cf layer3.tar . ./usr ./usr/share "
		"./usr/share/zz-before ./usr/share/.wh..wh..opq ./usr/share/new-in-3\n"
		/* What a runtime makes of them. */
		"cp -a src expect\n"
		"rm -rf expect/home expect/only-new/deep/f expect/usr/lib/libc.link\n"
		"tar " TAR_META " -C l2 --exclude='.wh.*' -cf - . | tar " TAR_META " -C expect -xpf -\n"
		"find expect/usr/share -mindepth 1 -delete\n"
		"tar " TAR_META " -C l3 --exclude='.wh.*' -cf - . | tar " TAR_META " -C expect -xpf -\n",
		d), 0);
}

const char *oci_make(const char *fmt, ...)
{
	static char line[8192];
	char args[8192], *out = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	r = t_sh_out(&out, "python3 '%s/tests/oci.py' %s", t_src_dir(), args);
	if (r != 0)
		fprintf(stderr, "oci.py %s -> %d\n%s", args, r, out ? out : "");
	CU_ASSERT_EQUAL_FATAL(r, 0);
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(out ? out : "", "\n"), out ? out : "");
	free(out);
	return line;
}

void oci_assert_applied(void)
{
	char *want = fixture_meta_manifest(t_path("expect"), 0);
	char *got = fixture_meta_manifest(t_path("root"), 0);
	CU_ASSERT(want && got && strstr(want, "usr/share/new-in-3") &&
		  strstr(want, "usr/share/zz-before") && !strstr(want, "usr/share/fifo") &&
		  strstr(want, "opt/added") && !strstr(want, "libc.link") &&
		  fixture_same(want, got, "root after the layers"));
	free(want);
	free(got);
}

void oci_outside(void)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("mkdir -p '%s' && echo secret > '%s/secret'", t_path("outside"),
				   t_path("outside")), 0);
}

void oci_assert_outside_untouched(void)
{
	CU_ASSERT_EQUAL(t_sh("test \"$(ls -A '%s')\" = secret && grep -qx secret '%s/secret'",
			     t_path("outside"), t_path("outside")), 0);
	CU_ASSERT_NOT_EQUAL(t_sh("test -e '%s/escape' || test -e '%s/.reimage/escape' || "
				 "test -e '%s/escape'", t_path("root"), t_path("root"), t_dir()), 0);
}

void oci_hostile_layer(const char *kind, const char *out)
{
	CU_ASSERT_EQUAL_FATAL(t_sh("python3 '%s/tests/attack.py' %s '%s' '%s'", t_src_dir(), kind,
				   out, t_path("outside")), 0);
}
