/*
 * platform_macos.c - macOS: /Volumes/NAME, a private run-time directory, and
 * a LaunchAgent (RunAtLoad, KeepAlive on failure) for autostart. Built on
 * macOS only; written against launchd's documented plist keys, untested here.
 */
#ifdef __APPLE__
#include "platform/platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define AGENT_LABEL "org.cloudmount.daemon"

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	return h && *h ? h : "/";
}

char *platform_default_mountpoint(const char *name)
{
	return xasprintf("/Volumes/%s", name);
}

char *platform_runtime_dir(void)
{
	const char *tmp = getenv("TMPDIR"); /* per-user and private on macOS */
	return xasprintf("%s/cloudmount", tmp && *tmp ? tmp : "/tmp");
}

static char *agent_path(void)
{
	return xasprintf("%s/Library/LaunchAgents/" AGENT_LABEL ".plist", home_dir());
}

int platform_autostart(int enable, const char *exe, char *msg, unsigned long msg_len)
{
	char *path = agent_path();
	int rc = 0;

	if (enable) {
		char *dir = xasprintf("%s/Library/LaunchAgents", home_dir());
		FILE *f;
		mkdir(dir, 0755);
		free(dir);
		f = fopen(path, "w");
		if (!f) {
			snprintf(msg, msg_len, "cannot write %s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		fprintf(f,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
			"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
			"<plist version=\"1.0\">\n<dict>\n"
			"  <key>Label</key><string>" AGENT_LABEL "</string>\n"
			"  <key>ProgramArguments</key>\n  <array><string>%s</string><string>daemon</string>"
			"<string>-f</string></array>\n"
			"  <key>RunAtLoad</key><true/>\n"
			"  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>\n"
			"  <key>AbandonProcessGroup</key><true/>\n"
			"</dict>\n</plist>\n",
			exe);
		if (fclose(f) != 0)
			rc = -1;
		snprintf(msg, msg_len, "wrote %s; load it now with: launchctl load %s", path, path);
	} else {
		if (unlink(path) < 0 && errno != ENOENT) {
			snprintf(msg, msg_len, "cannot remove %s: %s", path, strerror(errno));
			rc = -1;
		} else {
			snprintf(msg, msg_len, "removed %s (launchctl unload it if it is loaded)", path);
		}
	}
	free(path);
	return rc;
}

int platform_autostart_enabled(void)
{
	char *path = agent_path();
	int on = access(path, F_OK) == 0;

	free(path);
	return on;
}
#else
typedef int platform_macos_unused;
#endif
