/*
 * log.h - leveled logging for every part of CloudMount.
 *
 * Lines go to stderr (or to a file set with log_set_file) as
 * "cloudmount[PID]: LEVEL: message", one write(2) per line so lines from
 * several threads never interleave. Never log a secret: callers pass keys,
 * bucket names, S3 codes and request ids, never credentials or signatures.
 */
#ifndef CM_LOG_H
#define CM_LOG_H

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Messages above level are dropped. Default: LOG_LVL_WARN. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Send lines to fd instead of stderr (-1: back to stderr). */
void log_set_fd(int fd);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
