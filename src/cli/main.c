/*
 * main.c - the cloudmount command: dispatch to a subcommand.
 */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli/cli.h"
#include "config/remotes.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "mount", cmd_mount, "mount s3://BUCKET DIR, or a remote by NAME (returns once it is up)" },
	{ "unmount", cmd_unmount, "unmount a folder (files being written are committed first)" },
	{ "remote", cmd_remote, "named buckets: add, list, show, remove, test" },
	{ "daemon", cmd_daemon, "run the mount manager (automount, health, restarts, control socket)" },
	{ "status", cmd_status, "every remote with its state, usage and traffic (from the daemon)" },
	{ "usage", cmd_usage, "a remote's size and object count (cached by the daemon)" },
	{ "autostart", cmd_autostart, "start the daemon at login: enable, disable, status" },
	{ "ls", cmd_ls, "list objects and prefixes" },
	{ "cat", cmd_cat, "write an object to standard output" },
	{ "cp", cmd_cp, "copy a file to or from a bucket (multipart, parallel, progress)" },
	{ "du", cmd_du, "total size and object count of a bucket or prefix" },
	{ "rm", cmd_rm, "delete an object, or everything under a prefix with -r" },
	{ "stat", cmd_stat, "show an object's attributes, or check that a bucket is reachable" },
	{ "presign", cmd_presign, "print a presigned URL for an object" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: cloudmount COMMAND [ARGS] [OPTIONS]\n\nCommands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(out, "  %-9s %s\n", c->name, c->summary);
	fprintf(out, "\n'cloudmount COMMAND --help' describes a command and its options.\n"
		     "Credentials and settings are found as awscli finds them (AWS_* variables,\n"
		     "--profile, ~/.aws/credentials and ~/.aws/config, credential_process).\n\n"
		     "Exit codes: 0 ok, 1 failure, 2 bad usage or URL, 3 no credentials or bad config,\n"
		     "4 refused (access denied, wrong secret, clock skew), 5 no such bucket or key,\n"
		     "6 endpoint unreachable, timed out or TLS failure.\n");
}

/*
 * Keep big data buffers out of glibc's arenas: parts of 8 MiB allocated on one
 * thread and freed on another otherwise stay in per-thread arenas (and the
 * dynamic mmap threshold climbs past them), so RSS grows far beyond the
 * memory budget. A fixed 1 MiB threshold makes every part its own mapping,
 * returned to the kernel when freed; few arenas bound the small-object slack.
 */
static void tune_malloc(void)
{
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
	mallopt(M_ARENA_MAX, 4);
#endif
}

int main(int argc, char **argv)
{
	tune_malloc();
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("cloudmount %s\n", CM_VERSION);
		return CLI_OK;
	}
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->run(argc - 2, argv + 2);
	if (!strcmp(argv[1], "umount"))
		return cmd_unmount(argc - 2, argv + 2);
	/* mount(8) through mount.fuse3 runs "cloudmount SOURCE DIR -o OPTIONS" */
	if (!strncmp(argv[1], "s3://", 5))
		return cmd_mount(argc - 1, argv + 1);
	/* ... or "cloudmount NAME DIR -o OPTIONS" for a configured remote */
	if (argc >= 3 && argv[2][0] == '/' && remote_name_valid(argv[1]))
		return cmd_mount(argc - 1, argv + 1);
	fprintf(stderr, "cloudmount: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return CLI_USAGE;
}
