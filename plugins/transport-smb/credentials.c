/*
 * credentials.c -- the account transport-smb logs on with.  It comes from
 * the plugin's options or from a credentials file in the format of
 * `smbclient -A` (`username = `, `password = `, `domain = `, one per line).
 * Read once in init(), so that no file of the old image is needed later.
 * No value read here ever reaches a message: errors name the file, the
 * line and the key only.
 */
#define _GNU_SOURCE
#include "credentials.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void creds_clear(struct smb_creds *creds)
{
	wipe_free(creds->user);
	wipe_free(creds->password);
	wipe_free(creds->domain);
	memset(creds, 0, sizeof(*creds));
}

/* Replace *slot with a copy of value (NULL stays NULL). */
static int store(char **slot, const char *value)
{
	char *copy = NULL;

	if (value && !(copy = strdup(value)))
		return -ENOMEM;
	wipe_free(*slot);
	*slot = copy;
	return 0;
}

int creds_set(const struct reimage_host *host, struct smb_creds *creds, const char *user,
	      const char *password, const char *domain, struct reimage_error *err)
{
	if (store(&creds->user, user) < 0 || store(&creds->password, password ? password : "") < 0 ||
	    store(&creds->domain, domain) < 0) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* One `key = value` line into creds.  As smbclient does, the value keeps
 * its trailing blanks (a password may end in one); only the line end goes. */
static int parse_line(const struct reimage_host *host, struct smb_creds *creds, char *line,
		      const char *path, unsigned lineno, unsigned *seen,
		      struct reimage_error *err)
{
	static const char *const keys[] = { "username", "password", "domain" };
	char **slots[] = { &creds->user, &creds->password, &creds->domain };
	char *eq, *key, *value;

	line[strcspn(line, "\r\n")] = '\0';
	key = line + strspn(line, " \t");
	if (*key == '\0' || *key == '#' || *key == ';')
		return 0;
	eq = strchr(key, '=');
	if (!eq) {
		host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
			    "credentials file %s line %u: expected key = value", path, lineno);
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(key);
	value = eq + 1 + strspn(eq + 1, " \t");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcasecmp(key, keys[i]) != 0)
			continue;
		if (*seen & (1u << i)) {
			host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
				    "credentials file %s line %u: '%s' given twice", path, lineno,
				    keys[i]);
			return -EINVAL;
		}
		*seen |= 1u << i;
		if (store(slots[i], value) < 0) {
			host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
		    "credentials file %s line %u: unknown key '%.64s' (username, password, domain)",
		    path, lineno, key);
	return -EINVAL;
}

int creds_read_file(const struct reimage_host *host, struct smb_creds *creds,
		    const char *path, struct reimage_error *err)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0, seen = 0;
	struct stat st;
	int r = 0;

	if (!f) {
		int e = errno;
		host->error(err, -e, e == ENOENT ? REIMAGE_EC_NOTFOUND : REIMAGE_EC_ACCESS,
			    "credentials file %s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		host->log(REIMAGE_LOG_WARNING, "credentials file %s is readable by other users",
			  path);
	while (r == 0 && getline(&line, &cap, f) >= 0)
		r = parse_line(host, creds, line, path, ++lineno, &seen, err);
	if (r == 0 && ferror(f)) {
		host->error(err, -EIO, REIMAGE_EC_IO, "credentials file %s: read error", path);
		r = -EIO;
	}
	if (line) {
		/* The buffer held the password. */
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(f);
	if (r < 0)
		return r;
	if (!creds->user || !*creds->user) {
		host->error(err, -EINVAL, REIMAGE_EC_CONFIG,
			    "credentials file %s: no username", path);
		return -EINVAL;
	}
	if (!creds->password && store(&creds->password, "") < 0) {
		host->error(err, -ENOMEM, REIMAGE_EC_IO, "out of memory");
		return -ENOMEM;
	}
	return 0;
}
