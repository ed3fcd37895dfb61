/*
 * source_squashfs.c -- a squashfs image, read with libsquashfs: no mount,
 * no privilege, no kernel parsing an image it was handed.  The file was
 * hashed before it is opened (source.c: SOURCE_RANDOM).  Each inode
 * becomes an archive entry for the sink: owners, modes, times, symlinks,
 * devices, fifos, hard links (inodes seen twice), xattrs (file
 * capabilities and SELinux labels among them) and sparse blocks, which
 * stay holes.  squashfs has no ACLs and no sockets (mksquashfs stores only
 * the user, trusted and security xattrs; sockets are runtime objects and,
 * as with tar, are not staged).
 */
#define _GNU_SOURCE
#include "source.h"
#include "error.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqfs/block.h>
#include <sqfs/compressor.h>
#include <sqfs/data_reader.h>
#include <sqfs/dir_reader.h>
#include <sqfs/error.h>
#include <sqfs/id_table.h>
#include <sqfs/inode.h>
#include <sqfs/io.h>
#include <sqfs/super.h>
#include <sqfs/xattr.h>
#include <sqfs/xattr_reader.h>

struct squash {
	const char *path;
	sqfs_file_t *file;
	sqfs_super_t super;
	sqfs_compressor_t *cmp;
	sqfs_id_table_t *ids;
	sqfs_dir_reader_t *dirs;
	sqfs_data_reader_t *data;
	sqfs_xattr_reader_t *xattrs;   /* NULL: the image has none */
	sqfs_tree_node_t *root;
	char **first;                  /* inode number -> first path of a linked inode */
};

/* One file's blocks for the sink (a stage_data_fn). */
struct squash_file {
	struct squash *sq;
	const sqfs_inode_generic_t *inode;
	size_t index, blocks;          /* next block, and how many */
	int fragment_done;
	sqfs_u8 *buf;                  /* the block handed out last */
};

static const char *sqfs_reason(int code)
{
	switch (code) {
	case SQFS_ERROR_ALLOC: return "out of memory";
	case SQFS_ERROR_IO: return "read error";
	case SQFS_ERROR_COMPRESSOR: return "cannot decompress";
	case SQFS_ERROR_CORRUPTED: return "corrupted";
	case SQFS_ERROR_UNSUPPORTED: return "unsupported feature";
	case SQFS_ERROR_OVERFLOW: case SQFS_ERROR_OUT_OF_BOUNDS: return "out of bounds";
	/* libsquashfs 1.x spells these two SFQS_. */
	case SFQS_ERROR_SUPER_MAGIC: return "not a squashfs image";
	case SFQS_ERROR_SUPER_VERSION: return "unsupported squashfs version";
	case SQFS_ERROR_SUPER_BLOCK_SIZE: return "bad block size";
	case SQFS_ERROR_LINK_LOOP: return "directory loop";
	default: return "invalid image";
	}
}

static int squash_fail(struct reimage_error *err, const struct squash *sq, const char *what,
		       int code)
{
	int e = code == SQFS_ERROR_ALLOC ? ENOMEM : code == SQFS_ERROR_IO ? EIO : EBADMSG;
	err_set(err, -e, e == EBADMSG ? REIMAGE_EC_INTEGRITY : REIMAGE_EC_IO, "squashfs %s: %s: %s",
		sq->path, what, sqfs_reason(code));
	return -e;
}

static int squash_open(struct squash *sq, struct reimage_error *err)
{
	sqfs_compressor_config_t cfg;
	int r;

	if (!(sq->file = sqfs_open_file(sq->path, SQFS_FILE_OPEN_READ_ONLY))) {
		err_sys(err, errno ? -errno : -EIO, "open %s", sq->path);
		return err->code;
	}
	if ((r = sqfs_super_read(&sq->super, sq->file)))
		return squash_fail(err, sq, "super block", r);
	sqfs_compressor_config_init(&cfg, sq->super.compression_id, sq->super.block_size,
				    SQFS_COMP_FLAG_UNCOMPRESS);
	if ((r = sqfs_compressor_create(&cfg, &sq->cmp)))
		return squash_fail(err, sq, "compressor", r);
	if ((sq->super.flags & SQFS_FLAG_COMPRESSOR_OPTIONS) &&
	    (r = sq->cmp->read_options(sq->cmp, sq->file)))
		return squash_fail(err, sq, "compressor options", r);
	if (!(sq->ids = sqfs_id_table_create(0)) ||
	    !(sq->dirs = sqfs_dir_reader_create(&sq->super, sq->cmp, sq->file, 0)) ||
	    !(sq->data = sqfs_data_reader_create(sq->file, sq->super.block_size, sq->cmp, 0)))
		return squash_fail(err, sq, "set up", SQFS_ERROR_ALLOC);
	if ((r = sqfs_id_table_read(sq->ids, sq->file, &sq->super, sq->cmp)))
		return squash_fail(err, sq, "id table", r);
	if ((r = sqfs_data_reader_load_fragment_table(sq->data, &sq->super)))
		return squash_fail(err, sq, "fragment table", r);
	if (!(sq->super.flags & SQFS_FLAG_NO_XATTRS) && sq->super.xattr_id_table_start != 0xffffffffffffffffull) {
		if (!(sq->xattrs = sqfs_xattr_reader_create(0)))
			return squash_fail(err, sq, "set up", SQFS_ERROR_ALLOC);
		if ((r = sqfs_xattr_reader_load(sq->xattrs, &sq->super, sq->file, sq->cmp)))
			return squash_fail(err, sq, "xattr table", r);
	}
	/* The whole tree: libsquashfs refuses names that are empty, ".",
	 * ".." or hold a '/', and directory loops. */
	if ((r = sqfs_dir_reader_get_full_hierarchy(sq->dirs, sq->ids, NULL, 0, &sq->root)))
		return squash_fail(err, sq, "directory tree", r);
	if (!(sq->first = calloc((size_t)sq->super.inode_count + 1, sizeof(char *))))
		return squash_fail(err, sq, "set up", SQFS_ERROR_ALLOC);
	return 0;
}

static void squash_close(struct squash *sq)
{
	if (sq->first)
		for (size_t i = 0; i <= sq->super.inode_count; i++)
			free(sq->first[i]);
	free(sq->first);
	sqfs_dir_tree_destroy(sq->root);
	sqfs_destroy(sq->xattrs);
	sqfs_destroy(sq->data);
	sqfs_destroy(sq->dirs);
	sqfs_destroy(sq->ids);
	sqfs_destroy(sq->cmp);
	sqfs_destroy(sq->file);
}

static int squash_data(void *arg, const void **ret_buf, size_t *ret_len, int64_t *ret_offset,
		       struct reimage_error *err)
{
	struct squash_file *f = arg;
	size_t size = 0;
	int r;

	sqfs_free(f->buf);
	f->buf = NULL;
	/* Sparse blocks (all zeros, stored as nothing) are skipped: holes. */
	while (f->index < f->blocks && SQFS_IS_SPARSE_BLOCK(f->inode->extra[f->index]))
		f->index++;
	if (f->index < f->blocks) {
		if ((r = sqfs_data_reader_get_block(f->sq->data, f->inode, f->index, &size, &f->buf)))
			return squash_fail(err, f->sq, "data block", r);
		*ret_offset = (int64_t)f->index * f->sq->super.block_size;
		f->index++;
	} else if (!f->fragment_done) {
		f->fragment_done = 1;
		if ((r = sqfs_data_reader_get_fragment(f->sq->data, f->inode, &size, &f->buf)))
			return squash_fail(err, f->sq, "fragment", r);
		if (!size)
			return 0;
		*ret_offset = (int64_t)f->blocks * f->sq->super.block_size;
	} else {
		return 0;
	}
	*ret_buf = f->buf;
	*ret_len = size;
	return 1;
}

static int add_xattrs(struct squash *sq, const sqfs_inode_generic_t *inode,
		      struct archive_entry *e, struct reimage_error *err)
{
	sqfs_xattr_id_t desc;
	sqfs_u32 index;
	int r;

	if (!sq->xattrs || sqfs_inode_get_xattr_index(inode, &index) || index == 0xffffffff)
		return 0;
	if ((r = sqfs_xattr_reader_get_desc(sq->xattrs, index, &desc)) ||
	    (r = sqfs_xattr_reader_seek_kv(sq->xattrs, &desc)))
		return squash_fail(err, sq, "xattrs", r);
	for (sqfs_u32 i = 0; i < desc.count; i++) {
		sqfs_xattr_entry_t *key;
		sqfs_xattr_value_t *value;
		if ((r = sqfs_xattr_reader_read_key(sq->xattrs, &key)))
			return squash_fail(err, sq, "xattr key", r);
		if ((r = sqfs_xattr_reader_read_value(sq->xattrs, key, &value))) {
			sqfs_free(key);
			return squash_fail(err, sq, "xattr value", r);
		}
		/* The reader gives the whole name, prefix included. */
		archive_entry_xattr_add_entry(e, (const char *)key->key, value->value, value->size);
		sqfs_free(key);
		sqfs_free(value);
	}
	return 0;
}

static unsigned nlink_of(const sqfs_inode_generic_t *in)
{
	switch (in->base.type) {
	case SQFS_INODE_EXT_FILE: return in->data.file_ext.nlink;
	case SQFS_INODE_SLINK: return in->data.slink.nlink;
	case SQFS_INODE_EXT_SLINK: return in->data.slink_ext.nlink;
	case SQFS_INODE_BDEV: case SQFS_INODE_CDEV: return in->data.dev.nlink;
	case SQFS_INODE_EXT_BDEV: case SQFS_INODE_EXT_CDEV: return in->data.dev_ext.nlink;
	case SQFS_INODE_FIFO: return in->data.ipc.nlink;
	case SQFS_INODE_EXT_FIFO: return in->data.ipc_ext.nlink;
	default: return 1;
	}
}

/* One node as an entry; 0 if it is not staged (a socket). */
static int node_entry(struct squash *sq, const sqfs_tree_node_t *n, const char *rel,
		      struct archive_entry *e, struct reimage_error *err)
{
	const sqfs_inode_generic_t *in = n->inode;
	sqfs_u64 size = 0;
	sqfs_u32 devno;

	archive_entry_clear(e);
	archive_entry_copy_pathname(e, rel);
	archive_entry_set_perm(e, in->base.mode & 07777);
	archive_entry_set_uid(e, n->uid);
	archive_entry_set_gid(e, n->gid);
	archive_entry_set_mtime(e, in->base.mod_time, 0);
	switch (in->base.type) {
	case SQFS_INODE_DIR: case SQFS_INODE_EXT_DIR:
		archive_entry_set_filetype(e, AE_IFDIR);
		break;
	case SQFS_INODE_FILE: case SQFS_INODE_EXT_FILE:
		archive_entry_set_filetype(e, AE_IFREG);
		sqfs_inode_get_file_size(in, &size);
		archive_entry_set_size(e, (la_int64_t)size);
		break;
	case SQFS_INODE_SLINK: case SQFS_INODE_EXT_SLINK: {
		sqfs_u32 len = in->base.type == SQFS_INODE_SLINK ? in->data.slink.target_size
								 : in->data.slink_ext.target_size;
		if (len > in->payload_bytes_used)
			return squash_fail(err, sq, rel, SQFS_ERROR_CORRUPTED);
		char *target = strndup((const char *)in->extra, len);
		if (!target)
			return squash_fail(err, sq, rel, SQFS_ERROR_ALLOC);
		archive_entry_set_filetype(e, AE_IFLNK);
		archive_entry_copy_symlink(e, target);
		free(target);
		break;
	}
	case SQFS_INODE_BDEV: case SQFS_INODE_CDEV:
	case SQFS_INODE_EXT_BDEV: case SQFS_INODE_EXT_CDEV:
		devno = in->base.type == SQFS_INODE_BDEV || in->base.type == SQFS_INODE_CDEV
			? in->data.dev.devno : in->data.dev_ext.devno;
		archive_entry_set_filetype(e, in->base.type == SQFS_INODE_BDEV ||
					      in->base.type == SQFS_INODE_EXT_BDEV ? AE_IFBLK : AE_IFCHR);
		/* Linux's encoding of a device number in 32 bits. */
		archive_entry_set_rdevmajor(e, (devno & 0xfff00) >> 8);
		archive_entry_set_rdevminor(e, (devno & 0xff) | ((devno >> 12) & 0xfff00));
		break;
	case SQFS_INODE_FIFO: case SQFS_INODE_EXT_FIFO:
		archive_entry_set_filetype(e, AE_IFIFO);
		break;
	default:
		return 0;  /* sockets */
	}
	if (archive_entry_filetype(e) != AE_IFDIR && nlink_of(in) > 1) {
		sqfs_u32 ino = in->base.inode_number;
		if (ino == 0 || ino > sq->super.inode_count)
			return squash_fail(err, sq, rel, SQFS_ERROR_CORRUPTED);
		if (sq->first[ino]) {
			/* A later name of an inode already staged: a hard link. */
			archive_entry_copy_hardlink(e, sq->first[ino]);
			archive_entry_set_size(e, 0);
			return 1;
		}
		if (!(sq->first[ino] = strdup(rel)))
			return squash_fail(err, sq, rel, SQFS_ERROR_ALLOC);
	}
	return add_xattrs(sq, in, e, err) < 0 ? err->code : 1;
}

/* Depth first, parents before children, without recursion (a hostile
 * image may nest deeply). */
static const sqfs_tree_node_t *next_node(const sqfs_tree_node_t *n)
{
	if (n->children)
		return n->children;
	while (n && !n->next)
		n = n->parent;
	return n ? n->next : NULL;
}

static int squash_stage(const struct source *src, const struct stage_request *req,
			const char *path, struct stage_sink *k, struct stage_result *res,
			struct reimage_error *err)
{
	struct squash sq = { .path = path };
	struct archive_entry *e = archive_entry_new();
	int r;

	(void)src;
	(void)res;
	if (!e) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	if ((r = squash_open(&sq, err)) < 0 || (r = stage_sink_begin(k, err)) < 0)
		goto out;
	if (req->progress)
		progress_begin(req->progress, "staging", REIMAGE_SIZE_UNKNOWN);
	for (const sqfs_tree_node_t *n = next_node(sq.root); n && n != sq.root; n = next_node(n)) {
		char *abs = NULL;
		if ((r = sqfs_tree_node_get_path(n, &abs))) {
			r = squash_fail(err, &sq, "path", r);
			goto out;
		}
		r = node_entry(&sq, n, abs + 1, e, err);
		if (r > 0) {
			struct squash_file f = { .sq = &sq, .inode = n->inode,
						 .blocks = sqfs_inode_get_file_block_count(n->inode) };
			int is_file = archive_entry_filetype(e) == AE_IFREG &&
				      !archive_entry_hardlink(e);
			r = stage_sink_entry(k, e, is_file ? squash_data : NULL, &f, err);
			sqfs_free(f.buf);
		}
		sqfs_free(abs);
		if (r < 0)
			goto out;
		if ((r = progress_step(req->progress, k->bytes, err)) < 0)
			goto out;
	}
	if ((r = stage_sink_end(k, err)) == 0 && req->progress)
		progress_end(req->progress);
out:
	archive_entry_free(e);
	squash_close(&sq);
	return r;
}

const struct source_ops source_squashfs_ops = {
	.name = "squashfs",
	.doc = "a squashfs image (read with libsquashfs, never mounted)",
	.flags = SOURCE_RANDOM,
	.stage = squash_stage,
};
