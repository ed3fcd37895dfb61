/*
 * log.h -- messages for the operator.  Errors are logged once, at the
 * boundary (the phase driver and main); library code returns them.
 */
#ifndef REIMAGE_LOG_H
#define REIMAGE_LOG_H

#include <reimage/plugin.h>

void log_set_level(enum reimage_loglevel level);
enum reimage_loglevel log_get_level(void);
/* 1 if stderr is the systemd journal's stream (JOURNAL_STREAM matches it):
 * lines then carry a syslog priority ("<3>") instead of a timestamp. */
int log_to_journal(void);
void log_msg(enum reimage_loglevel level, const char *fmt, ...) REIMAGE_PRINTF(2, 3);

#define log_error(...) log_msg(REIMAGE_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(REIMAGE_LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(REIMAGE_LOG_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(REIMAGE_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(REIMAGE_LOG_DEBUG, __VA_ARGS__)

#endif
