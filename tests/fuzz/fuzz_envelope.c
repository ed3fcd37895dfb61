/*
 * fuzz_envelope.c -- a signed job as the agent takes it from a store:
 * sign_verify() on the fetched bytes, then job_load_text() on the payload
 * it vouches for (agent.c's take_document).
 *
 * An input starting with 'S' is a payload: it is signed here with the
 * trusted key, so the parser sees arbitrary job text behind a valid
 * signature, and the envelope must then verify and hand back exactly
 * those bytes.  Any other input is an envelope as fetched: whatever it
 * holds, it verifies only if it is a payload signed with the trusted key,
 * and then the payload lies inside the document.
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "config.h"
#include "error.h"
#include "sign.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char pub[PATH_MAX], priv[PATH_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct reimage_error err = { 0 };
	const char *base = fz_scratch("envelope");

	(void)argc;
	(void)argv;
	snprintf(priv, sizeof(priv), "%s/key.pem", base);
	snprintf(pub, sizeof(pub), "%s/key.pub", base);
	FZ_CHECK(sign_keygen(priv, pub, &err) == 0, "keygen: %s", err.msg);
	return 0;
}

static void take(const char *doc, size_t len, int must_verify, const char *payload,
		 size_t payload_len)
{
	const char *trusted[] = { pub, NULL };
	struct reimage_error err = { 0 };
	struct sign_verified v;
	struct job job;

	if (sign_verify(SIGN_JOB, doc, len, trusted, NULL, &v, &err) < 0) {
		FZ_CHECK(!must_verify, "a document signed with the trusted key was refused: %s",
			 err.msg);
		FZ_CHECK(err.code < 0 && err.msg[0], "a refusal without a reason");
		return;
	}
	FZ_CHECK(v.payload >= doc && v.len <= len && v.payload + v.len <= doc + len,
		 "the verified payload lies outside the document");
	FZ_CHECK(!payload || (v.len == payload_len && memcmp(v.payload, payload, v.len) == 0),
		 "the verified payload is not the one signed");
	err_clear(&err);
	if (job_load_text(&job, "fuzz:job", v.payload, v.len, &err) == 0)
		job_free(&job);
	else
		FZ_CHECK(err.code < 0 && err.msg[0], "a job refused without a reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reimage_error err = { 0 };
	char *doc = NULL;
	size_t len = 0;

	if (size > SIGN_DOC_MAX)
		return 0;
	if (size > 0 && data[0] == 'S') {
		FZ_CHECK(sign_document(SIGN_JOB, priv, data + 1, size - 1, &doc, &len, &err) == 0, "sign: %s",
			 err.msg);
		take(doc, len, 1, (const char *)data + 1, size - 1);
		free(doc);
		return 0;
	}
	take((const char *)data, size, 0, NULL, 0);
	return 0;
}
