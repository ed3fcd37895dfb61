/*
 * fuzz_toc.c -- the chunked image's table of contents and tar-split,
 * read by reimage's own parsers (core/source/chunked.c: a JSON reader of
 * its own, for speed, and the tar-split's line reader).
 *
 * Their input is checked against the signed job's toc_sha256 before it is
 * parsed, but a parser written by hand is fuzzed all the same.  Byte 0
 * picks what the rest is:
 *   0   a whole TOC (chunked_toc_parse)
 *   1   the head of a TOC, byte 1 the number of files asked for
 *       (chunked_toc_head)
 *   2   a tar-split (chunked_split_parse)
 * Then, on whatever is accepted, the invariants the stager relies on:
 * each file named; in a whole TOC its frames in order ([offset, end)) and
 * its chunks covering [0, size) in order; the head of a TOC is the same files as the
 * whole one's first; a tar-split's records add up to its tar's size.
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "chunked.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

/* whole: a whole TOC (a head's last files may lack their chunks' ends). */
static void check_toc(const struct chunked_toc *toc, int whole)
{
	for (size_t i = 0; i < toc->n; i++) {
		const struct chunked_file *f = &toc->files[i];
		uint64_t at = 0;
		FZ_CHECK(f->name != NULL, "file %zu has no name", i);
		if (!whole)
			continue;
		FZ_CHECK(f->offset <= f->end, "%s: frame ends before it starts", f->name);
		for (size_t k = 0; k < f->n_chunks; k++) {
			const struct chunked_chunk *c = &f->chunks[k];
			FZ_CHECK(c->at == at, "%s: chunk %zu at %llu, expected %llu", f->name, k,
				 (unsigned long long)c->at, (unsigned long long)at);
			FZ_CHECK(c->offset <= c->end, "%s: chunk %zu's frame reversed", f->name, k);
			at += c->size;
		}
		FZ_CHECK(f->n_chunks == 0 || at == f->size, "%s: chunks cover %llu of %llu bytes",
			 f->name, (unsigned long long)at, (unsigned long long)f->size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reimage_error err = { 0 };
	struct chunked_toc toc = { 0 }, head = { 0 };
	struct chunked_split ts = { 0 };

	if (size < 2)
		return 0;
	const char *text = (const char *)data + 2;
	size_t len = size - 2;
	switch (data[0] % 3) {
	case 0:
	case 1:
		if (chunked_toc_parse(text, len, "TOC", &toc, &err) == 0)
			check_toc(&toc, 1);
		err.code = 0;
		if (chunked_toc_head(text, len, data[1], &head, &err) == 0) {
			check_toc(&head, 0);
			FZ_CHECK(head.n >= data[1], "head: %zu files, %u asked for", head.n, data[1]);
			/* What the whole TOC accepts, its head reads the same. */
			for (size_t i = 0; i < data[1] && i < toc.n; i++)
				FZ_CHECK(!strcmp(head.files[i].name, toc.files[i].name) &&
						 head.files[i].size == toc.files[i].size &&
						 !memcmp(head.files[i].digest, toc.files[i].digest, 32),
					 "head's file %zu differs from the TOC's", i);
		}
		chunked_toc_free(&head);
		chunked_toc_free(&toc);
		break;
	case 2:
		if (chunked_split_parse(text, len, &ts, &err) == 0) {
			uint64_t sum = 0;
			for (size_t i = 0; i < ts.n; i++) {
				const struct chunked_record *r = &ts.rec[i];
				FZ_CHECK(!r->is_file || r->name, "record %zu: a file without a name", i);
				sum += r->is_file ? r->size : r->len;
			}
			FZ_CHECK(sum == ts.tar_size, "records add up to %llu, tar is %llu",
				 (unsigned long long)sum, (unsigned long long)ts.tar_size);
		}
		chunked_split_free(&ts);
		break;
	}
	return 0;
}
