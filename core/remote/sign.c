/*
 * sign.c -- see sign.h.  Ed25519 ("pure", no pre-hash) through OpenSSL's
 * EVP_DigestSign/Verify; keys are PEM files.  The envelope is parsed
 * strictly: any deviation is an integrity error before a signature is
 * even checked.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "reimage-signed-job 1\n"
#define SIG_LEN 64

static int ssl_error(struct reimage_error *err, int code, enum reimage_errclass cls,
		     const char *what)
{
	char buf[256];
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	err_set(err, code, cls, "%s: %s", what, buf);
	return code;
}

static EVP_PKEY *read_key(const char *path, int private, struct reimage_error *err)
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

static void key_id_of(EVP_PKEY *key, char id[SIGN_KEY_ID_LEN])
{
	unsigned char raw[64];
	size_t len = sizeof(raw);
	char hex[DIGEST_HEX_SHA256];

	EVP_PKEY_get_raw_public_key(key, raw, &len);
	digest_sha256(raw, len, hex);
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
	EVP_PKEY *key = read_key(pem_path, 0, err);
	if (!key)
		return err->code;
	key_id_of(key, id);
	EVP_PKEY_free(key);
	return 0;
}

int sign_document(const char *priv_path, const void *payload, size_t len, char **ret_doc,
		  size_t *ret_len, struct reimage_error *err)
{
	unsigned char sig[SIG_LEN];
	char b64[2 * SIG_LEN], id[SIGN_KEY_ID_LEN], *doc = NULL;
	size_t siglen = sizeof(sig), n = 0;
	EVP_PKEY *key = read_key(priv_path, 1, err);
	EVP_MD_CTX *md;
	FILE *out;
	int r = 0;

	if (!key)
		return err->code;
	if (len > SIGN_DOC_MAX - 256) {
		EVP_PKEY_free(key);
		err_set(err, -EFBIG, REIMAGE_EC_CONFIG, "job file too large (%zu bytes)", len);
		return -EFBIG;
	}
	if (!(md = EVP_MD_CTX_new()) || EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, payload, len) != 1) {
		r = ssl_error(err, -EIO, REIMAGE_EC_IO, "sign");
		goto out;
	}
	key_id_of(key, id);
	EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
	if (!(out = open_memstream(&doc, &n))) {
		r = -ENOMEM;
		err_set(err, r, REIMAGE_EC_IO, "out of memory");
		goto out;
	}
	fprintf(out, MAGIC "key: %s\nsignature: %s\nlength: %zu\n\n", id, b64, len);
	fwrite(payload, 1, len, out);
	fclose(out);
	*ret_doc = doc;
	*ret_len = n;
out:
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return r;
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

static int bad(struct reimage_error *err, const char *why)
{
	err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY, "not a valid signed job: %s", why);
	return -EBADMSG;
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

int sign_verify(const char *doc, size_t len, const char *const *trusted,
		const char *const *revoked, struct sign_verified *ret,
		struct reimage_error *err)
{
	const char *p = doc, *end = doc + len;
	char id[64], b64[128], lenbuf[32], *lend;
	unsigned char sig[96];
	unsigned long long plen;
	EVP_PKEY *key = NULL;
	const char *key_file = NULL;
	int siglen, r;

	if (len > SIGN_DOC_MAX)
		return bad(err, "larger than 1 MiB");
	if (len < sizeof(MAGIC) - 1 || memcmp(doc, MAGIC, sizeof(MAGIC) - 1) != 0)
		return bad(err, "no 'reimage-signed-job 1' header (was the job file signed with "
				"`reimagectl sign`?)");
	p += sizeof(MAGIC) - 1;
	if (header_line(&p, end, "key", id, sizeof(id)) < 0 || strlen(id) != 16)
		return bad(err, "missing or malformed 'key:' line");
	if (header_line(&p, end, "signature", b64, sizeof(b64)) < 0)
		return bad(err, "missing or malformed 'signature:' line");
	if (header_line(&p, end, "length", lenbuf, sizeof(lenbuf)) < 0 || lenbuf[0] < '0' ||
	    lenbuf[0] > '9')
		return bad(err, "missing or malformed 'length:' line");
	errno = 0;
	plen = strtoull(lenbuf, &lend, 10);
	if (errno || *lend)
		return bad(err, "malformed 'length:' line");
	if (p >= end || *p != '\n')
		return bad(err, "no empty line after the header");
	p++;
	if ((unsigned long long)(end - p) != plen)
		return bad(err, "the payload's length differs from 'length:' (cut short, or "
				"data appended)");
	/* 64 signature bytes are 88 base64 characters with one '=' of padding. */
	if (strlen(b64) != 88 || (siglen = EVP_DecodeBlock(sig, (const unsigned char *)b64, 88)) < 0)
		return bad(err, "malformed signature");
	siglen = SIG_LEN;

	for (const char *const *t = trusted; t && *t && !key; t++) {
		struct reimage_error e = { 0 };
		EVP_PKEY *k = read_key(*t, 0, &e);
		char kid[SIGN_KEY_ID_LEN];
		if (!k) {
			err_set(err, e.code, e.cls, "trusted_keys: %s", e.msg);
			return e.code;
		}
		key_id_of(k, kid);
		if (strcmp(kid, id) == 0) {
			key = k;
			key_file = *t;
		} else {
			EVP_PKEY_free(k);
		}
	}
	if (!key) {
		err_set(err, -EACCES, REIMAGE_EC_ACCESS,
			"signed with key %s, which is not among this agent's trusted_keys", id);
		return -EACCES;
	}
	if (listed(revoked, id)) {
		EVP_PKEY_free(key);
		err_set(err, -EACCES, REIMAGE_EC_ACCESS, "signed with key %s, which is revoked", id);
		return -EACCES;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	r = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1 &&
	    EVP_DigestVerify(md, sig, (size_t)siglen, (const unsigned char *)p, (size_t)plen) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	ERR_clear_error();
	if (!r) {
		err_set(err, -EBADMSG, REIMAGE_EC_INTEGRITY,
			"the signature does not match the document (forged or altered; key %s)", id);
		return -EBADMSG;
	}
	ret->payload = p;
	ret->len = (size_t)plen;
	snprintf(ret->key_id, sizeof(ret->key_id), "%s", id);
	snprintf(ret->key_file, sizeof(ret->key_file), "%s", key_file);
	return 0;
}
