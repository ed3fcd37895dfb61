/*
 * sign.h -- signed job documents (Ed25519, OpenSSL).
 *
 * A signed document is a short text envelope followed by the job file's
 * exact bytes:
 *
 *   reimage-signed-job 1
 *   key: 3f1c0a9be27d4c55              (first 16 hex of SHA-256(public key))
 *   signature: <base64 of 64 bytes>    (Ed25519 over the payload bytes)
 *   length: 1234                       (payload bytes)
 *                                      (empty line)
 *   <payload>
 *
 * The agent verifies the bytes it fetched and parses only those: nothing
 * after the payload, no @include, one key per document.
 */
#ifndef REIMAGE_SIGN_H
#define REIMAGE_SIGN_H

#include <reimage/plugin.h>
#include <stddef.h>

#define SIGN_KEY_ID_LEN 17          /* 16 hex digits and NUL */
#define SIGN_DOC_MAX (1u << 20)     /* a job document is at most 1 MiB */

/* Make a key pair: private key PEM (0600, never overwritten) and public
 * key PEM. */
int sign_keygen(const char *priv_path, const char *pub_path, struct reimage_error *err);
/* The key id of a PEM key file (public or private). */
int sign_key_id(const char *pem_path, char id[SIGN_KEY_ID_LEN], struct reimage_error *err);
/* Wrap payload in an envelope signed with the private key. */
int sign_document(const char *priv_path, const void *payload, size_t len, char **ret_doc,
		  size_t *ret_len, struct reimage_error *err);

struct sign_verified {
	const char *payload;        /* points into the document */
	size_t len;
	char key_id[SIGN_KEY_ID_LEN];
	char key_file[4096];        /* the trusted key that verified it */
};

/* Check the envelope and its signature against the trusted public keys
 * (PEM files); a key listed in revoked (key ids or PEM files) is refused
 * even if trusted.  Errors are INTEGRITY (malformed, bad signature) or
 * ACCESS (unknown or revoked key). */
int sign_verify(const char *doc, size_t len, const char *const *trusted,
		const char *const *revoked, struct sign_verified *ret,
		struct reimage_error *err);

#endif
