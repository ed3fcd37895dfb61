/*
 * sign.c -- see sign.h.  Ed25519 ("pure", no pre-hash).  Keys stay the PEM
 * files OpenSSL writes (PKCS#8 private, SubjectPublicKeyInfo public), so
 * existing keys keep working; OpenSSL only reads and writes those files.
 * Signing and verifying are libsodium's: crypto_sign_verify_detached
 * refuses non-canonical S and small-order R and A by design, where a lax
 * verifier accepts signatures a key holder never made.  The envelope is
 * parsed strictly: any deviation is an integrity error before a signature
 * is even checked.
 */
#define _GNU_SOURCE
#include "sign.h"
#include "digest.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIG_LEN crypto_sign_BYTES                   /* 64 */
#define B64_LEN sodium_base64_ENCODED_LEN(SIG_LEN, sodium_base64_VARIANT_ORIGINAL)
#define HEADER_MAX 256

static int ssl_error(struct reimage_error *err, int code, enum reimage_errclass cls,
		     const char *what)
{
	char buf[256];
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	err_set(err, code, cls, "%s: %s", what, buf);
	return code;
}

static int sodium_ready(struct reimage_error *err)
{
	/* Safe to call again and from any thread; it only seeds once. */
	if (sodium_init() < 0) {
		err_set(err, -EIO, REIMAGE_EC_IO, "libsodium cannot be initialised");
		return -EIO;
	}
	return 0;
}

static EVP_PKEY *read_pem(const char *path, int private, struct reimage_error *err)
{
	FILE *f = fopen(path, "re");
	EVP_PKEY *key;

	if (!f) {
		err_sys(err, -errno, "key %s", path);
		return NULL;
	}
	key = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	if (!key && !private) {
		/* A private key file also names its public key. */
		rewind(f);
		ERR_clear_error();
		key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	}
	fclose(f);
	if (!key) {
		char what[4200];
		snprintf(what, sizeof(what), "key %s: not a PEM %s key", path,
			 private ? "private" : "public");
		ssl_error(err, -EINVAL, REIMAGE_EC_CONFIG, what);
		return NULL;
	}
	if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "key %s: not an Ed25519 key", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

/* The 32 bytes of the public key in a PEM file (public or private), as
 * written: not yet checked to be a valid point. */
static int public_key(const char *path, unsigned char pk[crypto_sign_PUBLICKEYBYTES],
		      struct reimage_error *err)
{
	EVP_PKEY *key = read_pem(path, 0, err);
	size_t len = crypto_sign_PUBLICKEYBYTES;
	int ok;

	if (!key)
		return err->code;
	ok = EVP_PKEY_get_raw_public_key(key, pk, &len) == 1 && len == crypto_sign_PUBLICKEYBYTES;
	EVP_PKEY_free(key);
	if (!ok)
		return ssl_error(err, -EINVAL, REIMAGE_EC_CONFIG, "key: no raw Ed25519 public key");
	return 0;
}

/* A public key fit to verify with: a canonical encoding of a point of the
 * prime-order subgroup, not of small order. */
static int trusted_key(const char *path, unsigned char pk[crypto_sign_PUBLICKEYBYTES],
		       struct reimage_error *err)
{
	int r;
	if ((r = sodium_ready(err)) < 0 || (r = public_key(path, pk, err)) < 0)
		return r;
	if (!crypto_core_ed25519_is_valid_point(pk)) {
		err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "key %s: not a valid Ed25519 public key "
			"(a small-order, mixed-order or non-canonical point, under which forged "
			"signatures verify)", path);
		return -EINVAL;
	}
	return 0;
}

static void key_id_of(const unsigned char pk[crypto_sign_PUBLICKEYBYTES], char id[SIGN_KEY_ID_LEN])
{
	char hex[DIGEST_HEX_SHA256];
	digest_sha256(pk, crypto_sign_PUBLICKEYBYTES, hex);
	snprintf(id, SIGN_KEY_ID_LEN, "%.16s", hex);
}

static int write_pem(const char *path, EVP_PKEY *key, int private, struct reimage_error *err)
{
	/* O_EXCL: an existing key is never replaced by accident. */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, private ? 0600 : 0644);
	FILE *f;
	int ok;

	if (fd < 0) {
		err_sys(err, -errno, "create %s", path);
		return -errno;
	}
	if (!(f = fdopen(fd, "w"))) {
		close(fd);
		err_sys(err, -errno, "create %s", path);
		return -errno;
	}
	ok = private ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_PUBKEY(f, key);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		ok = 0;
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		err_set(err, -EIO, REIMAGE_EC_IO, "write %s failed", path);
		return -EIO;
	}
	return 0;
}

int sign_keygen(const char *priv_path, const char *pub_path, struct reimage_error *err)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	int r;

	if (!key)
		return ssl_error(err, -EIO, REIMAGE_EC_IO, "Ed25519 key generation");
	if ((r = write_pem(priv_path, key, 1, err)) == 0 &&
	    (r = write_pem(pub_path, key, 0, err)) < 0)
		unlink(priv_path);
	EVP_PKEY_free(key);
	return r;
}

int sign_key_id(const char *pem_path, char id[SIGN_KEY_ID_LEN], struct reimage_error *err)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	int r = public_key(pem_path, pk, err);
	if (r == 0)
		key_id_of(pk, id);
	return r;
}

/* The secret key (libsodium's 64 bytes: seed and public key) of a PEM
 * private key file, which holds the 32-byte seed. */
static int secret_key(const char *path, unsigned char sk[crypto_sign_SECRETKEYBYTES],
		      unsigned char pk[crypto_sign_PUBLICKEYBYTES], struct reimage_error *err)
{
	unsigned char seed[crypto_sign_SEEDBYTES];
	size_t len = sizeof(seed);
	EVP_PKEY *key;
	int ok;

	if (sodium_ready(err) < 0 || !(key = read_pem(path, 1, err)))
		return err->code;
	ok = EVP_PKEY_get_raw_private_key(key, seed, &len) == 1 && len == sizeof(seed) &&
	     crypto_sign_seed_keypair(pk, sk, seed) == 0;
	sodium_memzero(seed, sizeof(seed));
	EVP_PKEY_free(key);
	if (!ok)
		return ssl_error(err, -EINVAL, REIMAGE_EC_CONFIG, "key: no raw Ed25519 private key");
	return 0;
}

/* The one header of a payload of len bytes signed by key id with the
 * signature in base64: written by sign_document, and the only one
 * sign_verify accepts. */
static int header(char buf[HEADER_MAX], const char *kind, const char *id, const char *b64,
		  size_t len)
{
	return snprintf(buf, HEADER_MAX, "reimage-signed-%s 1\nkey: %s\nsignature: %s\nlength: "
			"%zu\n\n", kind, id, b64, len);
}

int sign_document(const char *kind, const char *priv_path, const void *payload, size_t len,
		  char **ret_doc, size_t *ret_len, struct reimage_error *err)
{
	unsigned char sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES], sig[SIG_LEN];
	char b64[B64_LEN], id[SIGN_KEY_ID_LEN], head[HEADER_MAX], *doc;
	int r, hlen;

	if (len > SIGN_DOC_MAX - HEADER_MAX) {
		err_set(err, -EFBIG, REIMAGE_EC_CONFIG, "document too large (%zu bytes)", len);
		return -EFBIG;
	}
	if ((r = secret_key(priv_path, sk, pk, err)) < 0)
		return r;
	crypto_sign_detached(sig, NULL, payload, len, sk);
	sodium_memzero(sk, sizeof(sk));
	key_id_of(pk, id);
	sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
	hlen = header(head, kind, id, b64, len);
	if (!(doc = malloc((size_t)hlen + len + 1))) {
		err_set(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	memcpy(doc, head, (size_t)hlen);
	memcpy(doc + hlen, payload, len);
	doc[hlen + len] = '\0';
	*ret_doc = doc;
	*ret_len = (size_t)hlen + len;
	return 0;
}

/* One "name: value\n" line of the envelope at *p; value copied into val. */
static int header_line(const char **p, const char *end, const char *name, char *val,
		       size_t cap)
{
	size_t nl = strlen(name);
	const char *eol = memchr(*p, '\n', (size_t)(end - *p));
	size_t vlen;

	if (!eol || (size_t)(eol - *p) < nl + 2 || memcmp(*p, name, nl) != 0 ||
	    memcmp(*p + nl, ": ", 2) != 0)
		return -1;
	vlen = (size_t)(eol - (*p + nl + 2));
	if (vlen == 0 || vlen >= cap)
		return -1;
	memcpy(val, *p + nl + 2, vlen);
	val[vlen] = '\0';
	*p = eol + 1;
	return 0;
}

static int bad(struct reimage_error *err, const char *kind, const char *why)
{
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "not a valid signed %s: %s", kind, why);
	return -EBADMSG;
}

static int is_key_id(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");
	return n == SIGN_KEY_ID_LEN - 1 && !s[n];
}

static int listed(const char *const *list, const char *id)
{
	for (; list && *list; list++) {
		char other[SIGN_KEY_ID_LEN];
		struct reimage_error e = { 0 };
		if (strcmp(*list, id) == 0 || (strchr(*list, '/') &&
						sign_key_id(*list, other, &e) == 0 &&
						strcmp(other, id) == 0))
			return 1;
	}
	return 0;
}

int sign_check_keys(const char *const *trusted, const char *const *revoked,
		    struct reimage_error *err)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	int r;

	for (const char *const *t = trusted; t && *t; t++)
		if ((r = trusted_key(*t, pk, err)) < 0) {
			err_prefix(err, "trusted_keys");
			return r;
		}
	for (const char *const *k = revoked; k && *k; k++) {
		if (is_key_id(*k))
			continue;
		if (!strchr(*k, '/')) {
			err_set(err, -EINVAL, REIMAGE_EC_CONFIG, "revoked_keys: '%s' is neither a "
				"key id (16 lower-case hex digits) nor a key file's path", *k);
			return -EINVAL;
		}
		if ((r = public_key(*k, pk, err)) < 0) {
			err_prefix(err, "revoked_keys");
			return r;
		}
	}
	return 0;
}

int sign_verify(const char *kind, const char *doc, size_t len, const char *const *trusted,
		const char *const *revoked, struct sign_verified *ret,
		struct reimage_error *err)
{
	const char *p = doc, *end = doc + len;
	char magic[64], id[64], b64[128], lenbuf[32], head[HEADER_MAX], *lend;
	unsigned char sig[SIG_LEN], pk[crypto_sign_PUBLICKEYBYTES];
	const char *key_file = NULL;
	unsigned long long plen;
	size_t siglen = 0;
	int r, mlen;

	if (len > SIGN_DOC_MAX)
		return bad(err, kind, "larger than 1 MiB");
	mlen = snprintf(magic, sizeof(magic), "reimage-signed-%s 1\n", kind);
	if (len < (size_t)mlen || memcmp(doc, magic, (size_t)mlen) != 0) {
		snprintf(b64, sizeof(b64), "no 'reimage-signed-%s 1' header (was it signed with "
			 "`reimagectl`?)", kind);
		return bad(err, kind, b64);
	}
	p += mlen;
	if (header_line(&p, end, "key", id, sizeof(id)) < 0 || !is_key_id(id))
		return bad(err, kind, "missing or malformed 'key:' line");
	if (header_line(&p, end, "signature", b64, sizeof(b64)) < 0)
		return bad(err, kind, "missing or malformed 'signature:' line");
	if (header_line(&p, end, "length", lenbuf, sizeof(lenbuf)) < 0 || lenbuf[0] < '0' ||
	    lenbuf[0] > '9')
		return bad(err, kind, "missing or malformed 'length:' line");
	errno = 0;
	plen = strtoull(lenbuf, &lend, 10);
	if (errno || *lend || plen > SIGN_DOC_MAX)
		return bad(err, kind, "malformed 'length:' line");
	if (p >= end || *p != '\n')
		return bad(err, kind, "no empty line after the header");
	p++;
	if ((unsigned long long)(end - p) != plen)
		return bad(err, kind, "the payload's length differs from 'length:' (cut short, or "
				      "data appended)");
	if (sodium_base642bin(sig, sizeof(sig), b64, strlen(b64), NULL, &siglen, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || siglen != SIG_LEN)
		return bad(err, kind, "the signature is not 64 bytes in base64");
	/* One envelope per signed payload: only the header sign_document
	 * writes (no leading zero, no bits or bytes beyond the 64, no
	 * other spelling), so a document cannot be re-wrapped unseen. */
	sodium_bin2base64(b64, B64_LEN, sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
	if ((size_t)header(head, kind, id, b64, (size_t)plen) != (size_t)(p - doc) ||
	    memcmp(head, doc, (size_t)(p - doc)) != 0)
		return bad(err, kind, "the header is not in its one canonical form (signature, "
				      "key id or length spelt differently)");

	for (const char *const *t = trusted; t && *t && !key_file; t++) {
		struct reimage_error e = { 0 };
		char kid[SIGN_KEY_ID_LEN];
		if (trusted_key(*t, pk, &e) < 0) {
			err_set(err, e.code, e.cls, "trusted_keys: %s", e.msg);
			return e.code;
		}
		key_id_of(pk, kid);
		if (strcmp(kid, id) == 0)
			key_file = *t;
	}
	if (!key_file) {
		err_set(err, -EACCES, REIMAGE_EC_ACCESS,
			"signed with key %s, which is not among this agent's trusted_keys", id);
		return -EACCES;
	}
	if (listed(revoked, id)) {
		err_set(err, -EACCES, REIMAGE_EC_ACCESS, "signed with key %s, which is revoked", id);
		return -EACCES;
	}
	r = crypto_sign_verify_detached(sig, (const unsigned char *)p, (size_t)plen, pk);
	if (r != 0) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"the signature does not match the document (forged, altered or not in "
			"canonical form; key %s)", id);
		return -EBADMSG;
	}
	ret->payload = p;
	ret->len = (size_t)plen;
	snprintf(ret->key_id, sizeof(ret->key_id), "%s", id);
	snprintf(ret->key_file, sizeof(ret->key_file), "%s", key_file);
	return 0;
}
