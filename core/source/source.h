/*
 * source.h -- where a new image comes from, and how it is read into the
 * one staging writer (stage.h's sink).  Every kind of source is a small
 * table of hooks in its own file:
 *
 *   kind            read by                            file
 *   archive, iso    libarchive's reader on a stream    source_archive.c
 *   dir             libarchive's disk reader           source_dir.c
 *   squashfs        libsquashfs (no mount)             source_squashfs.c
 *   ext4, raw       the backend mounts it read-only,   source_mount.c
 *                   then the disk reader as for dir
 *   oci, oci-layout, OCI / Docker image manifests,     source_oci.c
 *   docker-archive  each layer through libarchive,
 *                   whiteouts applied
 *   chunked         a zstd:chunked tar: files the      source_chunked.c
 *                   root holds reused, the others      (chunked.c: the
 *                   fetched by range                   format)
 *
 * The kind comes from the URL (scheme, or a local file's magic, or a
 * remote file's name), unless the job's image.kind forces it:
 *
 *   dir:PATH                              a directory tree
 *   oci://HOST[:PORT]/NAME[:TAG|@DIGEST]  an OCI registry over https
 *   oci+http://...                        the same over plain http
 *   oci-layout:PATH[:TAG]                 an OCI image layout directory
 *   docker-archive:PATH[:NAME:TAG]        a `docker save` tarball
 *   PATH, file:, http(s):, smb:           a file: archive, iso, squashfs,
 *                                         ext4 or raw (see source.c)
 */
#ifndef REIMAGE_SOURCE_H
#define REIMAGE_SOURCE_H

#include "stage.h"
#include "stream.h"

#include <limits.h>
#include <stdio.h>

struct source;

struct source_ops {
	const char *name;      /* the kind, as image.kind and plan write it */
	const char *doc;       /* one line for the docs */
	unsigned flags;
	/* Read the image into the sink (begun and ended by the kind).  path:
	 * for SOURCE_RANDOM kinds, the verified local file; else NULL. */
	int (*stage)(const struct source *src, const struct stage_request *req, const char *path,
		     struct stage_sink *k, struct stage_result *res, struct reimage_error *err);
	/* MAY be NULL.  PREFLIGHT and again before staging: what the kind
	 * can refuse before anything is written (a tree that holds staging). */
	int (*check)(const struct source *src, const struct stage_request *req,
		     struct reimage_error *err);
	/* MAY be NULL.  For plan: the image's size (bytes to fetch) without
	 * staging it, when the kind can tell cheaply. */
	int (*size)(const struct source *src, const struct stage_request *req, uint64_t *ret_size,
		    struct reimage_error *err);
};

/* The kind reads the image at random: a local file is hashed first, a
 * remote one fetched (and hashed) into the work directory first. */
#define SOURCE_RANDOM 1u
/* The backend opens it (image_attach); implies SOURCE_RANDOM. */
#define SOURCE_MOUNT 2u
/* A tree, not a file: nothing to hash. */
#define SOURCE_TREE 4u

struct source {
	const struct source_ops *ops;
	const char *url;                /* image.url */
	int local;                      /* location is a local path */
	char location[PATH_MAX];        /* local path, or the URL the transport reads */
	char transport_url[PATH_MAX];   /* what chooses the transport */
	char reference[256];            /* OCI: name and tag or digest; "" if none */
};

/* Every kind, NULL-terminated (for image.kind and the docs). */
extern const char *const source_kind_names[];

/* Decide the kind of url (forced by kind when not NULL); reads the first
 * bytes of a local file to recognise it. */
int source_resolve(const char *url, const char *kind, struct source *ret,
		   struct reimage_error *err);
/* PREFLIGHT: resolve req->url, find the transport the source reads
 * through (loaded if needed), check that req->backend can open the kind,
 * and run the kind's own checks.  req->transport is not used. */
int source_prepare(struct registry *reg, const struct stage_request *req,
		   struct plugin **ret_transport, struct reimage_error *err);
/* STAGE: read the source into the sink (stage_image()). */
int source_stage(const struct source *src, const struct stage_request *req,
		 struct stage_sink *k, struct stage_result *res, struct reimage_error *err);
/* PLAN: print the source's kind, size and entry count where known, and
 * return the image's top-level names (NULL if not known before staging;
 * the caller frees each and the array).  Touches nothing. */
void source_plan(const struct stage_request *req, FILE *out, char ***ret_top, size_t *ret_n);
/* PLAN: can the image be reached?  A local one is stat()ed, a remote one
 * opened through its transport (a first request, nothing read) or, for a
 * kind that tells its size, asked for it (an OCI manifest).  0, or the
 * transport's error. */
int source_reach(const struct stage_request *req, struct reimage_error *err);

/* The kinds' tables (one file each). */
extern const struct source_ops source_archive_ops, source_iso_ops, source_dir_ops,
	source_squashfs_ops, source_ext4_ops, source_raw_ops, source_oci_ops,
	source_oci_layout_ops, source_docker_archive_ops, source_chunked_ops;

/* What the kinds share. */
/* Stage a libarchive-readable stream (source_archive.c): begins and ends
 * the sink.  With layered set, it is an OCI layer: whiteouts are applied.
 * what names it in messages ("image", "layer 2 of 3"). */
int source_archive_read(struct stream *s, struct stage_sink *k, int layered, const char *what,
			struct reimage_error *err);
/* Walk a local tree with libarchive's disk reader: each(arg, entry, rd)
 * for every entry below tree (its name made relative, files sharing an
 * inode made hard links to the first), rd serving its data; a negative
 * return stops the walk.  Top-level names in skip_top (may be NULL) are
 * left out. */
typedef int (*source_entry_fn)(void *arg, struct archive_entry *e, struct archive *rd,
			       struct reimage_error *err);
int source_tree_each(const char *tree, const char *const *skip_top, source_entry_fn each,
		     void *arg, struct reimage_error *err);
/* Walk a local tree with libarchive's disk reader into the sink
 * (source_dir.c); top-level names in skip_top (may be NULL) are left out. */
int source_dir_walk(const char *tree, const char *const *skip_top, struct stage_sink *k,
		    struct progress *progress, struct reimage_error *err);

/* How the image of a job is read: src's location through req's transport,
 * checked against the job's SHA-256 and size, resumed req->retries times. */
struct stream_request source_stream_request(const struct source *src,
					    const struct stage_request *req);

/* Stage the image into req->staging (which must exist and be empty).
 * A source whose stream cannot go on where it stopped (-ESTALE: the
 * image changed on the server, or cannot be resumed safely) is read
 * again from byte 0 into an emptied staging, at most req->retries times.
 * On failure the staging directory is left for the caller to remove. */
int stage_image(const struct stage_request *req, struct stage_result *res,
		struct reimage_error *err);

#endif
