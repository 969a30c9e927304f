/*
 * control.h - the control protocol between the manager daemon and its
 * clients (the CLI, the tray, scripts).
 *
 * Transport: a Unix stream socket at $XDG_RUNTIME_DIR/cloudmount/control.sock
 * (platform_runtime_dir()), mode 0600 in a 0700 directory; the daemon also
 * checks each client's uid (SO_PEERCRED) and refuses other users.
 *
 * Messages: one JSON object per line, UTF-8, at most CTL_MAX_LINE bytes.
 *   request:  {"cmd": "status"}                 every remote with its state
 *             {"cmd": "mount", "name": N}       mount N; answers when mounted or failed
 *             {"cmd": "unmount", "name": N}
 *             {"cmd": "usage", "name": N, "refresh": false}
 *             {"cmd": "remotes"}                the configured remotes
 *             {"cmd": "test", "name": N}        reach the bucket, say what is wrong
 *             {"cmd": "probe", "url": U, "endpoint": E, "region": R, "path_style": B,
 *              "profile": P, "access_key_id": K, "secret": S}
 *                                               reach a bucket with settings not saved
 *                                               yet; {"ok": false, "error", "hint"}
 *             {"cmd": "reload"}                 re-read cloudmount.conf
 *             {"cmd": "subscribe"}              then a stream of events, one per line
 *             {"cmd": "ping"}
 *   answer:   {"ok": true, ...} or {"ok": false, "error": "what went wrong"}
 *   event:    {"event": "state", "name": N, "state": S, "reason": R, ...}
 * States: "unmounted", "mounting", "mounted", "degraded", "error".
 * Unknown fields are ignored on both sides, so either side can grow.
 */
#ifndef CM_CONTROL_H
#define CM_CONTROL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define CTL_MAX_LINE (1 << 20)

/* The socket path (malloc'd). */
char *ctl_socket_path(void);

/*
 * Parse one request line. Returns the JSON object (the caller's, cJSON_Delete)
 * or NULL with a message in err (at least 128 bytes) for malformed input: not
 * JSON, not an object, no string "cmd", a "name" that is not a string.
 */
cJSON *ctl_parse_request(const char *line, size_t len, char *err, size_t err_len);

/* Connect to the daemon. Returns the fd, or -1 (errno set: ENOENT/ECONNREFUSED = no daemon). */
int ctl_connect(void);

/*
 * Send a request and read one answer line (malloc'd, NUL-terminated), waiting
 * at most timeout_ms. Returns NULL on failure.
 */
char *ctl_call(int fd, const cJSON *request, int timeout_ms);

/* Read one line from fd into a malloc'd string, within timeout_ms (-1: forever). NULL at EOF/error. */
char *ctl_read_line(int fd, int timeout_ms);

/* Write all of s plus '\n'. Returns 0 or -1. */
int ctl_write_line(int fd, const char *s);

#endif
