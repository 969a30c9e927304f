/*
 * cmd_manager.c - the commands that talk to the mount manager: daemon,
 * status, usage, autostart, and the daemon side of `mount NAME` and
 * `unmount NAME`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "common/util.h"
#include "manager/control.h"
#include "manager/daemon.h"
#include "platform/platform.h"

int cmd_daemon(int argc, char **argv)
{
	int foreground = 0, verbose = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--foreground")) {
			foreground = 1;
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			verbose++;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: cloudmount daemon [-f] [-v]\n"
			       "Run the mount manager: mounts the remotes marked automount, keeps them up,\n"
			       "and answers `cloudmount status`, `mount NAME`, `unmount NAME`, `usage NAME`\n"
			       "and the tray on %s.\n"
			       "  -f  stay in the foreground (systemd runs it so)\n", "$XDG_RUNTIME_DIR/cloudmount/control.sock");
			return 0;
		} else {
			fprintf(stderr, "cloudmount: daemon: unknown option %s\n", argv[i]);
			return CLI_USAGE;
		}
	}
	return daemon_main(foreground, verbose);
}

/* One request to the daemon; the parsed answer (caller deletes) or NULL after a message. */
static cJSON *call_daemon(cJSON *req, int timeout_ms, int quiet_if_absent)
{
	int fd = ctl_connect();
	char *line;
	cJSON *ans;

	if (fd < 0) {
		if (!quiet_if_absent)
			fprintf(stderr, "cloudmount: no daemon is running (start it: cloudmount daemon, or "
					"cloudmount autostart enable)\n");
		cJSON_Delete(req);
		return NULL;
	}
	line = ctl_call(fd, req, timeout_ms);
	close(fd);
	cJSON_Delete(req);
	if (!line) {
		fprintf(stderr, "cloudmount: the daemon did not answer\n");
		return NULL;
	}
	ans = cJSON_Parse(line);
	free(line);
	if (!ans)
		fprintf(stderr, "cloudmount: the daemon's answer was not JSON\n");
	return ans;
}

static cJSON *request(const char *cmd, const char *name)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "cmd", cmd);
	if (name)
		cJSON_AddStringToObject(r, "name", name);
	return r;
}

static const char *str_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Print a daemon error answer; return the exit code. */
static int answer_failed(const cJSON *ans)
{
	const char *e = str_of(ans, "error");
	fprintf(stderr, "cloudmount: %s\n", *e ? e : "the daemon refused");
	return strstr(e, "no remote called") ? CLI_NOT_FOUND : CLI_FAIL;
}

int cmd_status(int argc, char **argv)
{
	int json = argc > 0 && !strcmp(argv[0], "--json");
	cJSON *ans = call_daemon(request("status", NULL), 10000, 0), *arr, *r;

	if (argc > 0 && !json) {
		printf("usage: cloudmount status [--json]\n");
		return !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ? 0 : CLI_USAGE;
	}
	if (!ans)
		return CLI_FAIL;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok"))) {
		int rc = answer_failed(ans);
		cJSON_Delete(ans);
		return rc;
	}
	if (json) {
		char *text = cJSON_Print(ans);
		printf("%s\n", text);
		free(text);
		cJSON_Delete(ans);
		return 0;
	}
	arr = cJSON_GetObjectItemCaseSensitive(ans, "remotes");
	printf("%-14s %-28s %-10s %-12s %-22s %s\n", "REMOTE", "MOUNTPOINT", "STATE", "USAGE", "TRAFFIC (up/down)",
	       "PENDING");
	cJSON_ArrayForEach(r, arr) {
		char usage[48] = "-", traffic[64] = "-", pending[32] = "-", a[24], b[24];
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(r, "usage");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "traffic");
		if (cJSON_IsObject(u))
			snprintf(usage, sizeof(usage), "%s/%.0f", util_human_bytes((uint64_t)num_of(u, "bytes"), a, sizeof(a)),
				 num_of(u, "objects"));
		if (cJSON_IsObject(t)) {
			snprintf(traffic, sizeof(traffic), "%s/%s", util_human_bytes((uint64_t)num_of(t, "bytes_up"), a, sizeof(a)),
				 util_human_bytes((uint64_t)num_of(t, "bytes_down"), b, sizeof(b)));
			snprintf(pending, sizeof(pending), "%s", util_human_bytes((uint64_t)num_of(t, "dirty_bytes"), a, sizeof(a)));
		}
		printf("%-14s %-28s %-10s %-12s %-22s %s\n", str_of(r, "name"), str_of(r, "mountpoint"), str_of(r, "state"),
		       usage, traffic, pending);
		if (*str_of(r, "reason"))
			printf("%14s   %s\n", "", str_of(r, "reason"));
	}
	cJSON_Delete(ans);
	return 0;
}

int cmd_usage(int argc, char **argv)
{
	const char *name = NULL;
	int refresh = 0, json = 0;
	cJSON *req, *ans;
	char h[24];

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--refresh"))
			refresh = 1;
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else {
			fprintf(stderr, "usage: cloudmount usage NAME [--refresh] [--json]\n");
			return CLI_USAGE;
		}
	}
	if (!name) {
		fprintf(stderr, "usage: cloudmount usage NAME [--refresh] [--json]\n");
		return CLI_USAGE;
	}
	req = request("usage", name);
	cJSON_AddBoolToObject(req, "refresh", refresh);
	ans = call_daemon(req, 130000, 0);
	if (!ans)
		return CLI_FAIL;
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok"))) {
		int rc = answer_failed(ans);
		cJSON_Delete(ans);
		return rc;
	}
	if (json)
		printf("{\"bytes\": %.0f, \"objects\": %.0f}\n", num_of(ans, "bytes"), num_of(ans, "objects"));
	else
		printf("%.0f %.0f %s (%s)\n", num_of(ans, "bytes"), num_of(ans, "objects"), name,
		       util_human_bytes((uint64_t)num_of(ans, "bytes"), h, sizeof(h)));
	cJSON_Delete(ans);
	return 0;
}

int cmd_autostart(int argc, char **argv)
{
	char msg[512], *exe;
	int rc;

	if (argc != 1 || (strcmp(argv[0], "enable") && strcmp(argv[0], "disable") && strcmp(argv[0], "status"))) {
		fprintf(stderr, "usage: cloudmount autostart enable|disable|status\n");
		return CLI_USAGE;
	}
	if (!strcmp(argv[0], "status")) {
		printf("autostart is %s\n", platform_autostart_enabled() ? "enabled" : "disabled");
		return 0;
	}
	exe = realpath("/proc/self/exe", NULL);
	rc = platform_autostart(!strcmp(argv[0], "enable"), exe ? exe : "cloudmount", msg, sizeof(msg));
	free(exe);
	printf("%s\n", msg);
	return rc ? CLI_FAIL : 0;
}

int cli_daemon_mount(const char *name, int *handled)
{
	cJSON *ans = call_daemon(request("mount", name), 70000, 1);
	int rc;

	*handled = ans != NULL;
	if (!ans)
		return CLI_FAIL;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok"))) {
		printf("%s mounted on %s\n", name, str_of(ans, "mountpoint"));
		rc = 0;
	} else {
		rc = answer_failed(ans);
	}
	cJSON_Delete(ans);
	return rc;
}

int cli_daemon_unmount(const char *name, int *handled)
{
	cJSON *ans = call_daemon(request("unmount", name), 30000, 1);
	int rc;

	*handled = ans != NULL;
	if (!ans)
		return CLI_FAIL;
	rc = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "ok")) ? 0 : answer_failed(ans);
	cJSON_Delete(ans);
	return rc;
}
