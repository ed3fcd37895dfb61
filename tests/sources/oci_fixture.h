/*
 * oci_fixture.h -- what the OCI tests share (local images and the
 * registry): a sandbox root, the metadata fixture as layer 1, two layers
 * of changes with whiteouts and an opaque directory, the tree the three
 * should give (built with tar and cp, not with the code under test),
 * tests/oci.py to lay images out, and hostile layers.
 */
#ifndef REIMAGE_TEST_OCI_FIXTURE_H
#define REIMAGE_TEST_OCI_FIXTURE_H

/* A sandbox root holding one file, and the metadata fixture in src/
 * (skips the case unless root). */
void oci_setup(void);
void oci_fresh_root(void);
/* layer1.tar (the fixture), layer2.tar (whiteouts: .wh.home,
 * only-new/deep/.wh.f, usr/lib/.wh.libc.link; a changed and an added
 * file), layer3.tar (usr/share/zz-before, then .wh..wh..opq, then
 * usr/share/new-in-3), and expect/: the fixture with the three applied. */
void oci_layers(void);
/* Run tests/oci.py with args; its first line of output (static). */
const char *oci_make(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The staged root equals expect/, file by file, with every piece of
 * metadata. */
void oci_assert_applied(void);
/* outside/ with one file, secret; and the check that it is untouched and
 * nothing escaped. */
void oci_outside(void);
void oci_assert_outside_untouched(void);
/* A hostile layer from tests/attack.py (kind: dotdot, plant, whiteout,
 * through), aimed at outside/. */
void oci_hostile_layer(const char *kind, const char *out);

#endif
