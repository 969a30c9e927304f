/*
 * platform_linux.c - Linux: ~/CloudMount/NAME, $XDG_RUNTIME_DIR, and a
 * systemd --user unit for autostart (Type=notify: the daemon sends READY=1
 * once its automounts are up; KillMode=process so mount processes outlive a
 * daemon restart), plus an XDG autostart entry for cloudmount-tray when it is
 * installed beside the cloudmount executable (the desktop session starts it).
 */
#ifndef __APPLE__
#include "platform/platform.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	return h && *h ? h : "/";
}

char *platform_default_mountpoint(const char *name)
{
	return xasprintf("%s/CloudMount/%s", home_dir(), name);
}

char *platform_runtime_dir(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (xdg && *xdg)
		return xasprintf("%s/cloudmount", xdg);
	return xasprintf("/tmp/cloudmount-%u", (unsigned)getuid());
}

static char *unit_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");

	if (xdg && *xdg)
		return xasprintf("%s/systemd/user/cloudmount.service", xdg);
	return xasprintf("%s/.config/systemd/user/cloudmount.service", home_dir());
}

static char *tray_entry_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");

	if (xdg && *xdg)
		return xasprintf("%s/autostart/cloudmount-tray.desktop", xdg);
	return xasprintf("%s/.config/autostart/cloudmount-tray.desktop", home_dir());
}

/* The cloudmount-tray beside exe (malloc'd), or NULL when there is none. */
static char *tray_beside(const char *exe)
{
	const char *slash = strrchr(exe, '/');
	char *tray;

	if (!slash)
		return NULL;
	tray = xasprintf("%.*s/cloudmount-tray", (int)(slash - exe), exe);
	if (access(tray, X_OK) == 0)
		return tray;
	free(tray);
	return NULL;
}

/*
 * Write or remove the tray's XDG autostart entry. Exec is quoted as the
 * Desktop Entry spec wants: in double quotes, with \\ " ` $ escaped by a
 * backslash, every backslash escaped again (a string value), % doubled. Returns 1
 * if an entry was written, 0 if none is needed/was removed, -1 on error.
 */
static int tray_autostart(int enable, const char *exe)
{
	char *path = tray_entry_path(), *tray = enable ? tray_beside(exe) : NULL;
	int rc = 0;

	if (tray) {
		FILE *f;
		util_mkdir_parents(path, 0700);
		f = fopen(path, "w");
		if (!f) {
			rc = -1;
		} else {
			fputs("[Desktop Entry]\n"
			      "# Written by 'cloudmount autostart enable'.\n"
			      "Type=Application\n"
			      "Name=CloudMount\n"
			      "Comment=Status icon and menu for the CloudMount mount manager\n"
			      "Exec=\"", f);
			for (const char *p = tray; *p; p++) {
				if (*p == '\\')
					fputs("\\\\\\\\", f);   /* quoted: \\, then each \ escaped */
				else if (*p == '"' || *p == '`' || *p == '$')
					fprintf(f, "\\\\%c", *p);
				else if (*p == '%')
					fputs("%%", f);           /* not a field code */
				else
					fputc(*p, f);
			}
			fputs("\"\n"
			      "Icon=cloudmount-ok\n"
			      "Terminal=false\n"
			      "X-GNOME-Autostart-enabled=true\n", f);
			rc = fclose(f) == 0 ? 1 : -1;
		}
	} else if (unlink(path) < 0 && errno != ENOENT) {
		rc = -1;
	}
	free(tray);
	free(path);
	return rc;
}

int platform_autostart(int enable, const char *exe, char *msg, unsigned long msg_len)
{
	char *path = unit_path();
	int rc = 0, tray;

	if (enable) {
		FILE *f;
		util_mkdir_parents(path, 0700);
		f = fopen(path, "w");
		if (!f) {
			snprintf(msg, msg_len, "cannot write %s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		fprintf(f,
			"# Written by 'cloudmount autostart enable'.\n"
			"[Unit]\n"
			"Description=CloudMount: buckets as folders\n"
			"After=network-online.target\n"
			"Wants=network-online.target\n"
			"\n"
			"[Service]\n"
			"Type=notify\n"
			"ExecStart=%s daemon\n"
			"Restart=on-failure\n"
			"RestartSec=5\n"
			"# mount processes are the daemon's children but must outlive its restarts\n"
			"KillMode=process\n"
			"\n"
			"[Install]\n"
			"WantedBy=default.target\n",
			exe);
		if (fclose(f) != 0)
			rc = -1;
		snprintf(msg, msg_len, "wrote %s; enable it with: systemctl --user daemon-reload && "
				       "systemctl --user enable --now cloudmount", path);
		if (system("systemctl --user daemon-reload >/dev/null 2>&1 && "
			   "systemctl --user enable cloudmount >/dev/null 2>&1") == 0)
			snprintf(msg, msg_len, "wrote %s and enabled it (systemctl --user)", path);
	} else {
		if (system("systemctl --user disable cloudmount >/dev/null 2>&1") != 0) {
			/* no user systemd here: removing the file is what counts */
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			snprintf(msg, msg_len, "cannot remove %s: %s", path, strerror(errno));
			rc = -1;
		} else {
			snprintf(msg, msg_len, "removed %s", path);
		}
	}
	tray = tray_autostart(enable, exe);
	if (tray != 0) {
		size_t used = strlen(msg);
		char *entry = tray_entry_path();
		snprintf(msg + used, msg_len - used, tray > 0 ? "; the tray starts at login (%s)"
							     : "; could not write %s", entry);
		free(entry);
		if (tray < 0)
			rc = -1;
	}
	free(path);
	return rc;
}

int platform_autostart_enabled(void)
{
	char *path = unit_path();
	int on = access(path, F_OK) == 0;

	free(path);
	return on;
}
#else
typedef int platform_linux_unused;
#endif
