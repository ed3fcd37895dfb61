/*
 * test_sign.c -- signed job documents: keys, envelopes, and every way a
 * document is refused (forged, altered, cut, extended, unknown or revoked
 * key, malformed), and the job reader's refusals for signed bytes.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "config.h"
#include "sign.h"
#include "timestamp.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char job_text[] =
	"id = \"j1\";\nserial = 3;\nimage: { url = \"/srv/image.tar\"; };\n"
	"targets: { agents = [ \"pc-1\" ]; };\nnot_after = \"2030-01-01T00:00:00Z\";\n";

static void keys(const char *name)
{
	struct reimage_error err = { 0 };
	char priv[4096], pub[4096];
	snprintf(priv, sizeof(priv), "%s", t_path("%s.key", name));
	snprintf(pub, sizeof(pub), "%s", t_path("%s.pub", name));
	CU_ASSERT_EQUAL_FATAL(sign_keygen(priv, pub, &err), 0);
}

static char *signed_by(const char *name, size_t *len)
{
	struct reimage_error err = { 0 };
	char *doc = NULL;
	CU_ASSERT_EQUAL_FATAL(sign_document(SIGN_JOB, t_path("%s.key", name), job_text, strlen(job_text), &doc,
					    len, &err), 0);
	return doc;
}

static int verify(const char *doc, size_t len, const char *const *trusted,
		  const char *const *revoked, struct reimage_error *err)
{
	struct sign_verified v;
	return sign_verify(SIGN_JOB, doc, len, trusted, revoked, &v, err);
}

TEST_CASE(roundtrip)
{
	struct reimage_error err = { 0 };
	struct sign_verified v;
	struct stat st;
	char id[SIGN_KEY_ID_LEN];
	size_t len;
	keys("admin");
	char *doc = signed_by("admin", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };

	CU_ASSERT_EQUAL(stat(t_path("admin.key"), &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL_FATAL(sign_verify(SIGN_JOB, doc, len, trusted, NULL, &v, &err), 0);
	CU_ASSERT_EQUAL(v.len, strlen(job_text));
	CU_ASSERT(memcmp(v.payload, job_text, v.len) == 0);
	CU_ASSERT_EQUAL(sign_key_id(t_path("admin.pub"), id, &err), 0);
	CU_ASSERT_STRING_EQUAL(v.key_id, id);
	/* The private key file names the same key. */
	CU_ASSERT_EQUAL(sign_key_id(t_path("admin.key"), id, &err), 0);
	CU_ASSERT_STRING_EQUAL(v.key_id, id);
	free(doc);
}

TEST_CASE(keygen_never_overwrites)
{
	struct reimage_error err = { 0 };
	keys("admin");
	char *before = t_read(t_path("admin.key"));
	CU_ASSERT(sign_keygen(t_path("admin.key"), t_path("other.pub"), &err) == -EEXIST);
	char *after = t_read(t_path("admin.key"));
	CU_ASSERT_STRING_EQUAL(before, after);
	free(before);
	free(after);
}

TEST_CASE(forged_by_unknown_key)
{
	struct reimage_error err = { 0 };
	size_t len;
	keys("admin");
	keys("mallory");
	char *doc = signed_by("mallory", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	CU_ASSERT_EQUAL(verify(doc, len, trusted, NULL, &err), -EACCES);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_ACCESS);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not among this agent's trusted_keys"));
	free(doc);
}

TEST_CASE(altered_payload)
{
	struct reimage_error err = { 0 };
	size_t len;
	keys("admin");
	char *doc = signed_by("admin", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	char *serial = strstr(doc, "serial = 3");
	CU_ASSERT_PTR_NOT_NULL_FATAL(serial);
	serial[9] = '9';  /* same length, another serial */
	CU_ASSERT_EQUAL(verify(doc, len, trusted, NULL, &err), -EBADMSG);
	CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_INTEGRITY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "signature does not match"));
	free(doc);
}

TEST_CASE(altered_signature)
{
	struct reimage_error err = { 0 };
	size_t len;
	keys("admin");
	char *doc = signed_by("admin", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	char *sig = strstr(doc, "signature: ") + 11;
	*sig = *sig == 'A' ? 'B' : 'A';
	CU_ASSERT_EQUAL(verify(doc, len, trusted, NULL, &err), -EBADMSG);
	free(doc);
}

TEST_CASE(cut_or_extended)
{
	struct reimage_error err = { 0 };
	size_t len;
	keys("admin");
	char *doc = signed_by("admin", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	CU_ASSERT_EQUAL(verify(doc, len - 1, trusted, NULL, &err), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "length"));
	char *longer = malloc(len + 20);
	memcpy(longer, doc, len);
	memcpy(longer + len, "reboot = false;\n", 16);
	struct reimage_error e2 = { 0 };
	CU_ASSERT_EQUAL(verify(longer, len + 16, trusted, NULL, &e2), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e2.msg, "appended"));
	free(longer);
	free(doc);
}

TEST_CASE(revoked_key)
{
	struct reimage_error err = { 0 };
	char id[SIGN_KEY_ID_LEN];
	size_t len;
	keys("admin");
	char *doc = signed_by("admin", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	CU_ASSERT_EQUAL(sign_key_id(t_path("admin.pub"), id, &err), 0);
	const char *by_id[] = { "0000000000000000", id, NULL };
	const char *by_file[] = { t_path("admin.pub"), NULL };
	CU_ASSERT_EQUAL(verify(doc, len, trusted, by_id, &err), -EACCES);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "revoked"));
	struct reimage_error e2 = { 0 };
	CU_ASSERT_EQUAL(verify(doc, len, trusted, by_file, &e2), -EACCES);
	free(doc);
}

TEST_CASE(malformed_envelopes)
{
	static const char *const docs[] = {
		"",
		"id = \"j1\";\n",  /* an unsigned job file */
		"reimage-signed-job 1\nkey: abc\nsignature: x\nlength: 0\n\n",
		"reimage-signed-job 1\nkey: 0123456789abcdef\nsignature: short\nlength: 0\n\n",
		"reimage-signed-job 1\nkey: 0123456789abcdef\nlength: 0\n\n",
		"reimage-signed-job 1\nkey: 0123456789abcdef\nsignature: "
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"
		"length: -1\n\n",
		"reimage-signed-job 1\nkey: 0123456789abcdef\nsignature: "
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"
		"length: 3\nabc",
		NULL,
	};
	keys("admin");
	const char *trusted[] = { t_path("admin.pub"), NULL };
	for (size_t i = 0; docs[i]; i++) {
		struct reimage_error err = { 0 };
		CU_ASSERT_EQUAL(verify(docs[i], strlen(docs[i]), trusted, NULL, &err), -EBADMSG);
		CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_INTEGRITY);
	}
}

TEST_CASE(job_text_refusals)
{
	struct reimage_error err = { 0 };
	struct job job;
	static const char with_include[] = "@include \"/etc/reimage/extra.conf\"\nid = \"j\";\n";
	static const char with_nul[] = "id = \"j\";\0image: { url = \"x\"; };\n";
	static const char duplicate[] = "id = \"j\";\nid = \"k\";\nimage: { url = \"x\"; };\n";

	CU_ASSERT_EQUAL(job_load_text(&job, "http://s/j.job", job_text, strlen(job_text), &err), 0);
	CU_ASSERT_STRING_EQUAL(job.target_agents[0], "pc-1");
	CU_ASSERT_EQUAL(job.not_after, 1893456000);
	job_free(&job);
	CU_ASSERT(job_load_text(&job, "u", with_include, strlen(with_include), &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "@include"));
	struct reimage_error e2 = { 0 };
	CU_ASSERT(job_load_text(&job, "u", with_nul, sizeof(with_nul) - 1, &e2) < 0);
	struct reimage_error e3 = { 0 };
	CU_ASSERT(job_load_text(&job, "http://s/j.job", duplicate, strlen(duplicate), &e3) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(e3.msg, "http://s/j.job:2"));
}

/* ------------------------------------------- one job, one envelope */

/* doc with the first `from` replaced by `to` (a new allocation). */
static char *replaced(const char *doc, size_t len, const char *from, const char *to,
		      size_t *ret_len)
{
	const char *at = memmem(doc, len, from, strlen(from));
	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	size_t head = (size_t)(at - doc), fl = strlen(from), tl = strlen(to);
	char *out = malloc(len - fl + tl + 1);
	memcpy(out, doc, head);
	memcpy(out + head, to, tl);
	memcpy(out + head + tl, at + fl, len - head - fl);
	*ret_len = len - fl + tl;
	out[*ret_len] = '\0';
	return out;
}

/* The base64 signature of an envelope, 88 characters. */
static void signature_of(const char *doc, char b64[89])
{
	const char *s = strstr(doc, "signature: ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	memcpy(b64, s + 11, 88);
	b64[88] = '\0';
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

TEST_CASE(one_envelope_per_job)
{
	size_t len, mlen;
	char sig[89], other[89], length[32], longer[32];
	keys("admin");
	char *doc = signed_by("admin", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	signature_of(doc, sig);
	CU_ASSERT_EQUAL_FATAL(verify(doc, len, trusted, NULL, &(struct reimage_error){ 0 }), 0);
	CU_ASSERT_STRING_EQUAL(sig + 86, "==");

	/* Every other spelling of the same signature and payload is refused:
	 * bytes after the 64 of the signature, its unused low bits set, a
	 * length with a leading zero, an upper-case key id. */
	const char *last = strchr(b64_alphabet, sig[85]);
	char *variants[5];
	snprintf(other, sizeof(other), "%.86sAA", sig);
	variants[0] = replaced(doc, len, sig, other, &mlen);
	snprintf(other, sizeof(other), "%.85s%c==", sig, b64_alphabet[(last - b64_alphabet) | 1]);
	variants[1] = replaced(doc, len, sig, other, &mlen);
	snprintf(length, sizeof(length), "length: %zu\n", strlen(job_text));
	snprintf(longer, sizeof(longer), "length: 0%zu\n", strlen(job_text));
	variants[2] = replaced(doc, len, length, longer, &mlen);
	char id[SIGN_KEY_ID_LEN], upper[SIGN_KEY_ID_LEN];
	CU_ASSERT_EQUAL_FATAL(sign_key_id(t_path("admin.pub"), id, &(struct reimage_error){ 0 }), 0);
	for (size_t i = 0; i < sizeof(id); i++)
		upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
	variants[3] = strcmp(id, upper) ? replaced(doc, len, id, upper, &mlen) : NULL;
	variants[4] = replaced(doc, len, "signature: ", "signature:  ", &mlen);
	for (size_t i = 0; i < 5; i++) {
		struct reimage_error err = { 0 };
		if (!variants[i])
			continue;
		size_t vlen = strlen(variants[i]);
		CU_ASSERT_EQUAL(verify(variants[i], vlen, trusted, NULL, &err), -EBADMSG);
		CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_INTEGRITY);
		if (err.code == 0)
			fprintf(stderr, "variant %zu accepted:\n%.200s\n", i, variants[i]);
		free(variants[i]);
	}
	free(doc);
}

/* ------------------------------------------------- strict Ed25519 */

/* A PEM public key file holding the 32 raw bytes pk, as OpenSSL writes one
 * (OpenSSL takes any 32 bytes). */
static const char *pem_key(const char *name, const unsigned char pk[32])
{
	EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(k);
	FILE *f = fopen(t_path("%s", name), "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
	EVP_PKEY_free(k);
	return t_path("%s", name);
}

/* An envelope around payload with the given signature bytes and key. */
static char *envelope(const char *key_file, const unsigned char sig[64], const char *payload,
		      size_t *ret_len)
{
	char id[SIGN_KEY_ID_LEN], b64[89], *doc = NULL;
	CU_ASSERT_EQUAL_FATAL(sign_key_id(key_file, id, &(struct reimage_error){ 0 }), 0);
	EVP_EncodeBlock((unsigned char *)b64, sig, 64);
	CU_ASSERT_FATAL(asprintf(&doc, "reimage-signed-job 1\nkey: %s\nsignature: %s\nlength: %zu\n\n%s",
				 id, b64, strlen(payload), payload) > 0);
	*ret_len = strlen(doc);
	return doc;
}

/* The neutral element (0, 1): any message "verifies" with R = it, S = 0
 * under a key that is it, unless small-order keys are refused. */
static const unsigned char identity[32] = { 1 };

TEST_CASE(small_order_key_forges_nothing)
{
	unsigned char sig[64] = { 1 };  /* R = identity, S = 0 */
	size_t len;
	const char *trusted[] = { pem_key("weak.pub", identity), NULL };
	char *doc = envelope(trusted[0], sig, job_text, &len);
	struct reimage_error err = { 0 };
	CU_ASSERT(verify(doc, len, trusted, NULL, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "weak.pub"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a valid Ed25519 public key"));
	free(doc);
}

TEST_CASE(invalid_trusted_keys_refused)
{
	/* y = p + 1: the identity again, not canonically encoded. */
	unsigned char noncanonical[32], mixed[32], order4[32] = { 0 }, pk[32], sk[64];
	memset(noncanonical, 0xff, sizeof(noncanonical));
	noncanonical[0] = 0xee;
	noncanonical[31] = 0x7f;
	/* A genuine key plus a point of order 4 (x = sqrt(-1), y = 0): not in
	 * the prime-order subgroup. */
	CU_ASSERT_FATAL(sodium_init() >= 0);
	crypto_sign_keypair(pk, sk);
	CU_ASSERT_EQUAL_FATAL(crypto_core_ed25519_add(mixed, pk, order4), 0);
	const unsigned char *bad[] = { identity, noncanonical, mixed };
	const char *names[] = { "identity.pub", "noncanonical.pub", "mixed.pub" };
	keys("admin");
	for (size_t i = 0; i < 3; i++) {
		struct reimage_error err = { 0 };
		const char *trusted[] = { t_path("admin.pub"), pem_key(names[i], bad[i]), NULL };
		CU_ASSERT_EQUAL(sign_check_keys(trusted, NULL, &err), -EINVAL);
		CU_ASSERT_EQUAL(err.cls, REIMAGE_EC_CONFIG);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, names[i]));
	}
	const char *good[] = { t_path("admin.pub"), NULL };
	CU_ASSERT_EQUAL(sign_check_keys(good, NULL, &(struct reimage_error){ 0 }), 0);
	/* A revoked entry is a key id or a key file: anything else would
	 * revoke nothing. */
	const char *typo[] = { "3f1c0a9be27d4c5", NULL };
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(sign_check_keys(good, typo, &err), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "3f1c0a9be27d4c5"));
}

TEST_CASE(noncanonical_s_refused)
{
	/* S + L verifies under a lax check ([S]B is the same point). */
	static const unsigned char L[32] = {
		0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
		0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 };
	unsigned char sig[64];
	size_t len, slen;
	char b64[89];
	keys("admin");
	char *doc = signed_by("admin", &len);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	signature_of(doc, b64);
	CU_ASSERT_EQUAL_FATAL(EVP_DecodeBlock(sig, (const unsigned char *)b64, 88), 66);
	unsigned carry = 0;
	for (size_t i = 0; i < 32; i++) {
		carry += sig[32 + i] + L[i];
		sig[32 + i] = (unsigned char)carry;
		carry >>= 8;
	}
	CU_ASSERT_EQUAL_FATAL(carry, 0);
	char *forged = envelope(t_path("admin.pub"), sig, job_text, &slen);
	struct reimage_error err = { 0 };
	CU_ASSERT_EQUAL(verify(forged, slen, trusted, NULL, &err), -EBADMSG);
	free(forged);
	free(doc);
}

/* ------------------------------------------------ store timestamps */

TEST_CASE(store_timestamp)
{
	struct reimage_error err = { 0 };
	struct store_timestamp ts;
	struct agent_conf ac;
	char *doc = NULL, *job = NULL;
	size_t len, jlen;
	keys("admin");
	keys("mallory");
	CU_ASSERT_EQUAL_FATAL(agent_conf_load(&ac, NULL, &err), 0);
	const char *trusted[] = { t_path("admin.pub"), NULL };
	ac.trusted_keys = trusted;
	CU_ASSERT_EQUAL_FATAL(timestamp_sign(t_path("admin.key"), 1893456000, 3600, &doc, &len, &err),
			      0);
	CU_ASSERT_EQUAL_FATAL(timestamp_read(doc, len, "ts", &ac, &ts, &err), 0);
	CU_ASSERT_EQUAL(ts.time, 1893456000);
	CU_ASSERT_EQUAL(ts.expires, 1893456000 + 3600);
	/* Fresh within max_age, not older than the newest seen. */
	CU_ASSERT_EQUAL(timestamp_fresh(&ts, 1893456000 + 60, 1893456000, 600, &err), 0);
	struct reimage_error e1 = { 0 }, e2 = { 0 }, e3 = { 0 };
	CU_ASSERT_EQUAL(timestamp_fresh(&ts, 1893456000 + 601, 0, 600, &e1), -ESTALE);
	CU_ASSERT_PTR_NOT_NULL(strstr(e1.msg, "store_timestamp_max_age"));
	CU_ASSERT_EQUAL(timestamp_fresh(&ts, 1893456000 + 3601, 0, 86400, &e2), -ESTALE);
	CU_ASSERT_PTR_NOT_NULL(strstr(e2.msg, "expired"));
	CU_ASSERT_EQUAL(timestamp_fresh(&ts, 1893456000, 1893456001, 600, &e3), -ESTALE);
	CU_ASSERT_PTR_NOT_NULL(strstr(e3.msg, "replays an old state"));
	/* Signed by another key, or a job where a timestamp belongs: refused. */
	free(doc);
	CU_ASSERT_EQUAL_FATAL(timestamp_sign(t_path("mallory.key"), 1893456000, 3600, &doc, &len,
					     &err), 0);
	struct reimage_error e4 = { 0 }, e5 = { 0 };
	CU_ASSERT_EQUAL(timestamp_read(doc, len, "ts", &ac, &ts, &e4), -EACCES);
	job = signed_by("admin", &jlen);
	CU_ASSERT_EQUAL(timestamp_read(job, jlen, "ts", &ac, &ts, &e5), -EBADMSG);
	CU_ASSERT_PTR_NOT_NULL(strstr(e5.msg, "reimage-signed-timestamp 1"));
	/* A timestamp payload wrapped as a job is no job either. */
	struct reimage_error e6 = { 0 };
	const char *job_trusted[] = { t_path("admin.pub"), NULL };
	char *ts_doc = NULL;
	size_t ts_len;
	CU_ASSERT_EQUAL_FATAL(timestamp_sign(t_path("admin.key"), 1893456000, 3600, &ts_doc,
					     &ts_len, &err), 0);
	CU_ASSERT_EQUAL(verify(ts_doc, ts_len, job_trusted, NULL, &e6), -EBADMSG);
	ac.trusted_keys = NULL;
	agent_conf_free(&ac);
	free(ts_doc);
	free(job);
	free(doc);
}
