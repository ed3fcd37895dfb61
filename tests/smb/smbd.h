/*
 * smbd.h -- a real smbd for the smb tests: started by the case on
 * 127.0.0.1 on a free unprivileged port, with a generated smb.conf and
 * every state directory inside the case's scratch directory.
 *
 * Shares:  public   guest access, files in t_path("public")
 *          private  user SMBD_USER / SMBD_PASSWORD, files in t_path("private")
 */
#ifndef TEST_SMBD_H
#define TEST_SMBD_H

#include <sys/types.h>

#define SMBD_USER "root"  /* an existing unix account; the passdb is the test's own */
#define SMBD_PASSWORD "Sw0rdfish-4711-secret"

struct smbd {
	pid_t pid;
	int port;
};

/* Start smbd and wait (bounded) until its port accepts; skips the case
 * if smbd is not installed. */
void smbd_start(struct smbd *s);
/* The same with extra lines for [global] (each ending in a newline). */
void smbd_start_with(struct smbd *s, const char *extra);
/* Stop it by its PID and reap it. */
void smbd_stop(struct smbd *s);

#endif
