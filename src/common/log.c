/*
 * log.c - leveled logging (see log.h). The level and fd are plain ints read
 * without a lock: they are set once at start-up, before threads exist.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level current_level = LOG_LVL_WARN;
static int log_fd = -1;

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

void log_set_fd(int fd)
{
	log_fd = fd;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	char line[2048];
	int n, m;
	va_list ap;

	if (level > current_level)
		return;
	n = snprintf(line, sizeof(line), "cloudmount[%d]: %s: ", (int)getpid(), names[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(log_fd >= 0 ? log_fd : STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}
