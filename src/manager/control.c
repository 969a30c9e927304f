/*
 * control.c - the control protocol's framing and request validation (see control.h).
 */
#include "manager/control.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "platform/platform.h"

char *ctl_socket_path(void)
{
	char *dir = platform_runtime_dir();
	char *path = xasprintf("%s/control.sock", dir);

	free(dir);
	return path;
}

cJSON *ctl_parse_request(const char *line, size_t len, char *err, size_t err_len)
{
	cJSON *req, *cmd, *name;

	if (len > CTL_MAX_LINE) {
		snprintf(err, err_len, "request longer than %d bytes", CTL_MAX_LINE);
		return NULL;
	}
	req = cJSON_ParseWithLength(line, len);
	if (!req) {
		snprintf(err, err_len, "not JSON");
		return NULL;
	}
	if (!cJSON_IsObject(req)) {
		snprintf(err, err_len, "a request is a JSON object");
		goto out_delete;
	}
	cmd = cJSON_GetObjectItemCaseSensitive(req, "cmd");
	if (!cJSON_IsString(cmd) || !cmd->valuestring || !*cmd->valuestring) {
		snprintf(err, err_len, "the request has no \"cmd\" string");
		goto out_delete;
	}
	name = cJSON_GetObjectItemCaseSensitive(req, "name");
	if (name && !cJSON_IsString(name)) {
		snprintf(err, err_len, "\"name\" must be a string");
		goto out_delete;
	}
	return req;
out_delete:
	cJSON_Delete(req);
	return NULL;
}

int ctl_connect(void)
{
	struct sockaddr_un addr;
	char *path = ctl_socket_path();
	int fd;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr.sun_path)) {
		free(path);
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	free(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int ctl_write_line(int fd, const char *s)
{
	size_t len = strlen(s);
	struct iovec iov[2] = { { (void *)s, len }, { (void *)"\n", 1 } };
	size_t total = len + 1, done = 0;

	while (done < total) {
		ssize_t n;
		if (done < len) {
			iov[0].iov_base = (char *)s + done;
			iov[0].iov_len = len - done;
			n = writev(fd, iov, 2);
		} else {
			n = write(fd, "\n", 1);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

char *ctl_read_line(int fd, int timeout_ms)
{
	struct buf b = BUF_INIT;
	int64_t deadline = timeout_ms < 0 ? -1 : util_now_ms() + timeout_ms;

	for (;;) {
		char c;
		ssize_t n;
		if (deadline >= 0) {
			struct pollfd p = { fd, POLLIN, 0 };
			int64_t left = deadline - util_now_ms();
			if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
				buf_release(&b);
				return NULL;
			}
		}
		n = read(fd, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			buf_release(&b);
			return NULL;
		}
		if (c == '\n')
			return buf_detach(&b);
		if (b.len >= CTL_MAX_LINE || buf_putc(&b, c) < 0) {
			buf_release(&b);
			return NULL;
		}
	}
}

char *ctl_call(int fd, const cJSON *request, int timeout_ms)
{
	char *text = cJSON_PrintUnformatted(request);
	int rc;

	if (!text)
		return NULL;
	rc = ctl_write_line(fd, text);
	free(text);
	if (rc < 0)
		return NULL;
	return ctl_read_line(fd, timeout_ms);
}
