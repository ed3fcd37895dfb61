/*
 * digest.h -- SHA-256 in the lowercase hex every job file and report uses.
 */
#ifndef REIMAGE_DIGEST_H
#define REIMAGE_DIGEST_H

#include <stddef.h>

#define DIGEST_HEX_SHA256 65

/* len bytes of md as lowercase hex into out (2 * len + 1 bytes). */
void digest_hex(char *out, const unsigned char *md, unsigned len);
/* SHA-256 of a buffer, as hex. */
void digest_sha256(const void *data, size_t len, char out[DIGEST_HEX_SHA256]);

#endif
