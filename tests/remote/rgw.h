/*
 * rgw.h -- a real S3 service for the remote tests: Ceph's RADOS Gateway on
 * a one-node cluster (rgw.sh) started by the case on 127.0.0.1, every file
 * in the case's scratch directory, with one user and one bucket.  The
 * test's own reads and writes go through the curl program's SigV4, not
 * through reimage's transport.
 */
#ifndef TEST_RGW_H
#define TEST_RGW_H

#include <sys/types.h>

#define RGW_ACCESS_KEY "REIMAGETESTACCESS0001"
#define RGW_SECRET_KEY "reimage-test-secret-0123456789abcdefABCDEF"
#define RGW_BUCKET "store"

struct rgw {
	pid_t pid;  /* rgw.sh run */
	int port;
};

/* Start the cluster and wait (bounded) until the gateway answers, then
 * make RGW_BUCKET. */
void rgw_start(struct rgw *g);
/* Stop it by its PID and reap it. */
void rgw_stop(struct rgw *g);
/* The object key of RGW_BUCKET (malloc'ed), NULL if there is none. */
char *rgw_get(const struct rgw *g, const char *key);
/* Upload a file as key (a curl URL glob, e.g. "r/pc-[1-9].json", uploads
 * it as each, on one connection); 0 on success. */
int rgw_put_file(const struct rgw *g, const char *key, const char *path);
/* The transport-http settings that reach it, for a configuration file. */
void rgw_settings(const struct rgw *g, char *buf, size_t len);

#endif
