/*
 * digest.c -- see digest.h.
 */
#include "digest.h"

#include <openssl/evp.h>
#include <stdio.h>

void digest_hex(char *out, const unsigned char *md, unsigned len)
{
	static const char digits[] = "0123456789abcdef";
	for (unsigned i = 0; i < len; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * len] = '\0';
}

void digest_sha256(const void *data, size_t len, char out[DIGEST_HEX_SHA256])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	digest_hex(out, md, mdlen);
}
