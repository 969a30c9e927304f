/*
 * platform.h - what differs between operating systems, behind one interface.
 * One implementation file per OS: platform_linux.c (built and tested here)
 * and platform_macos.c (macFUSE, /Volumes, LaunchAgents; built on macOS).
 */
#ifndef CM_PLATFORM_H
#define CM_PLATFORM_H

/* Where a remote mounts when its config names no mount point (malloc'd):
 * ~/CloudMount/NAME on Linux, /Volumes/NAME on macOS. */
char *platform_default_mountpoint(const char *name);

/* The directory for the control socket and run-time state (malloc'd, not created):
 * $XDG_RUNTIME_DIR/cloudmount on Linux (or /tmp/cloudmount-UID without one). */
char *platform_runtime_dir(void);

/* Install (enable = 1) or remove the per-user autostart of `cloudmount daemon`.
 * Fills msg (for the user: what was written where). Returns 0 or -1. */
int platform_autostart(int enable, const char *exe, char *msg, unsigned long msg_len);

/* Whether autostart is installed. */
int platform_autostart_enabled(void);

#endif
