/*
 * daemon.h - the mount manager: `cloudmount daemon`.
 *
 * It reads cloudmount.conf, mounts the remotes marked automount, runs one
 * mount process per mounted remote (`cloudmount mount NAME --direct -f`, in a
 * session of its own so it outlives the daemon and systemd's restarts of it),
 * keeps a state per remote (unmounted, mounting, mounted, degraded, error with
 * a reason), health-checks each mount (process alive, the mount answering
 * statfs in time, S3 reachable), restarts a mount process that died (backoff
 * from 1 s to 60 s), cleans a stale mount point, and answers the control
 * socket (control.h). Started again, it adopts the mounts it finds (their
 * mount processes are alive and their stats files name them).
 */
#ifndef CM_DAEMON_H
#define CM_DAEMON_H

/* Run the daemon (foreground: do not detach). Returns the exit code. */
int daemon_main(int foreground, int verbose);

#endif
