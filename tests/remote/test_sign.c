/*
 * test_sign.c -- signed job documents: keys, envelopes, and every way a
 * document is refused (forged, altered, cut, extended, unknown or revoked
 * key, malformed), and the job reader's refusals for signed bytes.
 */
#include "harness.h"
#include "config.h"
#include "sign.h"

#include <errno.h>
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
	CU_ASSERT_EQUAL_FATAL(sign_document(t_path("%s.key", name), job_text, strlen(job_text), &doc,
					    len, &err), 0);
	return doc;
}

static int verify(const char *doc, size_t len, const char *const *trusted,
		  const char *const *revoked, struct reimage_error *err)
{
	struct sign_verified v;
	return sign_verify(doc, len, trusted, revoked, &v, err);
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
	CU_ASSERT_EQUAL_FATAL(sign_verify(doc, len, trusted, NULL, &v, &err), 0);
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
