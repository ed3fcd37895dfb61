/*
 * fsutil.h -- small filesystem helpers shared by the core: durable
 * writes, recursive removal without following links, directory syncs.
 */
#ifndef REIMAGE_FSUTIL_H
#define REIMAGE_FSUTIL_H

#include <reimage/plugin.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stat;
/* Write a whole file so that a power cut leaves the old or the new one:
 * temp -> fsync -> rename -> fsync(dir).  Owner and mode from like, or
 * 0644 and the caller's if like is NULL. */
int fs_write_atomic(const char *path, const void *data, size_t len, const struct stat *like,
		    struct reimage_error *err);
/* Read a whole small file (at most cap bytes, else -EFBIG); NUL-terminated. */
int fs_read_small(const char *path, size_t cap, char **ret_data, size_t *ret_len,
		  struct reimage_error *err);
/* fsync the directory at path. */
int fs_sync_dir(const char *path, struct reimage_error *err);
/* fsync the directory that holds path. */
int fs_sync_parent(const char *path, struct reimage_error *err);
/* Remove a tree without following symlinks and without leaving the
 * filesystem it starts on; a missing path is not an error. */
int fs_remove_tree(const char *path, struct reimage_error *err);
/* mkdir -p for the parents of path inside base, each new directory
 * taking owner and mode from the same path under model (if it exists
 * there; else 0755 root).  Each is made in tmpdir (on base's filesystem)
 * and renamed into place whole: never visible with a wrong owner or mode. */
int fs_make_parents(const char *base, const char *rel, const char *model, const char *tmpdir,
		    struct reimage_error *err);
/* mkdir -p dir: missing directories made with mode; existing ones (or
 * symlinks to them) are fine. */
int fs_mkdir_p(const char *dir, mode_t mode, struct reimage_error *err);
/* No parent directory of rel under base may be a symlink (a rename
 * through one would act outside the tree); the last component may. */
int fs_parents_real(const char *base, const char *rel, struct reimage_error *err);
/* Join a and b with one '/' into buf; -ENAMETOOLONG if it does not fit. */
int fs_join(char *buf, size_t len, const char *a, const char *b);
/* 1 if path exists (without following a final symlink), 0 if not. */
int fs_exists(const char *path);
/* Bytes an unprivileged writer may still use on the volume holding path. */
int fs_free_bytes(const char *path, uint64_t *ret, struct reimage_error *err);
/* Resolve rel inside root as the kernel would with root as "/": symlinks
 * followed (at most FS_SYMLINKS_MAX), an absolute target taken from root,
 * ".." never above it, so nothing outside root is ever looked at.
 * follow_last: follow a final symlink too (then the final entry must
 * exist); else a missing final entry is fine and ret names where it would
 * be.  ret: relative to root, "" for root itself.  0 or -errno. */
#define FS_SYMLINKS_MAX 40
int fs_resolve_in(const char *root, const char *rel, int follow_last, char *ret, size_t len);

#endif
