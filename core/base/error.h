/*
 * error.h -- the one error idiom: functions return 0 or a negative code and
 * fill a struct reimage_error; the first error wins; each layer may add a
 * prefix ("stage: extract 'usr/bin/x': No space left on device").
 */
#ifndef REIMAGE_ERROR_H
#define REIMAGE_ERROR_H

#include <reimage/plugin.h>

void err_set(struct reimage_error *err, int code, enum reimage_errclass cls,
	     const char *fmt, ...) REIMAGE_PRINTF(4, 5);
/* err_set() with strerror(-code) appended after ": ". */
void err_sys(struct reimage_error *err, int code, const char *fmt, ...) REIMAGE_PRINTF(3, 4);
/* Prepend "prefix: " to a recorded message, unless it starts with it. */
void err_prefix(struct reimage_error *err, const char *fmt, ...) REIMAGE_PRINTF(2, 3);
/* Prepend "verb subject: ", or only "verb: " when the message already
 * names subject (a transport's "GET URL: ..." needs no second URL). */
void err_prefix_about(struct reimage_error *err, const char *verb, const char *subject);
void err_clear(struct reimage_error *err);
const char *err_class_name(enum reimage_errclass cls);

#endif
