/*
 * sign.h -- signed documents (Ed25519: keys in PEM files, signatures made
 * and checked by libsodium).
 *
 * A signed document is a short text envelope followed by the payload's
 * exact bytes:
 *
 *   reimage-signed-job 1               (or -timestamp, -wave)
 *   key: 3f1c0a9be27d4c55              (first 16 hex of SHA-256(public key))
 *   signature: <base64 of 64 bytes>    (Ed25519 over the payload bytes)
 *   length: 1234                       (payload bytes)
 *                                      (empty line)
 *   <payload>
 *
 * One payload signed by one key has exactly one valid envelope: the
 * header must be byte for byte the one sign_document() writes (lower-case
 * key id, the signature in canonical base64 of exactly 64 bytes, the
 * length in decimal without leading zeros, nothing before or after), and
 * the signature must be canonical (libsodium's strict verification
 * refuses S >= L and small-order R and keys).  The agent verifies the bytes
 * it fetched and parses only those: nothing after the payload, no
 * @include, one key per document.  The kind on the first line keeps a
 * timestamp or a wave's state from being read as a job, and the reverse.
 */
#ifndef REIMAGE_SIGN_H
#define REIMAGE_SIGN_H

#include <reimage/plugin.h>
#include <stddef.h>

#define SIGN_KEY_ID_LEN 17          /* 16 hex digits and NUL */
#define SIGN_DOC_MAX (1u << 20)     /* a document is at most 1 MiB */

/* Document kinds: the word after "reimage-signed-". */
#define SIGN_JOB "job"
#define SIGN_TIMESTAMP "timestamp"
#define SIGN_WAVE "wave"            /* a rollout wave's state (rollout.h) */

/* Make a key pair: private key PEM (0600, never overwritten) and public
 * key PEM. */
int sign_keygen(const char *priv_path, const char *pub_path, struct reimage_error *err);
/* The key id of a PEM key file (public or private). */
int sign_key_id(const char *pem_path, char id[SIGN_KEY_ID_LEN], struct reimage_error *err);
/* Wrap payload in an envelope of the kind signed with the private key. */
int sign_document(const char *kind, const char *priv_path, const void *payload, size_t len,
		  char **ret_doc, size_t *ret_len, struct reimage_error *err);

/* The keys an agent is given, checked when it starts: every trusted key is
 * a PEM Ed25519 public key that is a valid point of the prime-order
 * subgroup, canonically encoded (a small-order or mixed-order key would
 * let anyone forge a document it "verifies"); every revoked entry is a key
 * id (16 lower-case hex digits) or a readable key file.  CONFIG errors
 * name the file or entry. */
int sign_check_keys(const char *const *trusted, const char *const *revoked,
		    struct reimage_error *err);

struct sign_verified {
	const char *payload;        /* points into the document */
	size_t len;
	char key_id[SIGN_KEY_ID_LEN];
	char key_file[4096];        /* the trusted key that verified it */
};

/* Check the envelope (of the kind) and its signature against the trusted
 * public keys (PEM files); a key listed in revoked (key ids or PEM files)
 * is refused even if trusted.  Errors are INTEGRITY (malformed, not
 * canonical, bad signature), ACCESS (unknown or revoked key) or CONFIG (a
 * trusted key that is not a valid public key). */
int sign_verify(const char *kind, const char *doc, size_t len, const char *const *trusted,
		const char *const *revoked, struct sign_verified *ret,
		struct reimage_error *err);

#endif
