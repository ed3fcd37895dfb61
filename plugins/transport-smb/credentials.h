/*
 * credentials.h -- the account transport-smb logs on with, taken from the
 * plugin's options or from a credentials file in smbclient's -A format.
 * Secrets are copied into memory the plugin owns so that they can be wiped.
 */
#ifndef SMB_CREDENTIALS_H
#define SMB_CREDENTIALS_H

#include <reimage/plugin.h>

struct smb_creds {
	char *user;      /* NULL: none (guest or Kerberos ticket) */
	char *password;  /* never NULL once set; "" when empty */
	char *domain;    /* NULL: libsmbclient's default workgroup */
};

/* Copy user, password and domain (each may be NULL). */
int creds_set(const struct reimage_host *host, struct smb_creds *creds, const char *user,
	      const char *password, const char *domain, struct reimage_error *err);
/* Read `username = `, `password = ` and `domain = ` lines from path.  Errors
 * name the file, the line and the key, never a value. */
int creds_read_file(const struct reimage_host *host, struct smb_creds *creds,
		    const char *path, struct reimage_error *err);
/* Wipe the password and free everything. */
void creds_clear(struct smb_creds *creds);

#endif
