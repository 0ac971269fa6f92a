/*
 * cli.h - shared between the subcommands in src/cli.
 */
#ifndef SK_CLI_CLI_H
#define SK_CLI_CLI_H

#include <stddef.h>

#include "core/config.h"

/* One child the demo keeps running beside the edge. */
struct cli_child {
	const char *name;
	char **argv;
};

struct cli_demo_opts {
	struct cli_child *children;
	size_t nchildren;
	const char *banner; /* printed to stdout once everything listens */
};

/*
 * Runs the daemon for cfg (borrowed) until SIGTERM or SIGINT, then stops
 * gracefully: listeners close, requests in flight finish, supervised
 * children (demo) are stopped last. Returns the process exit status.
 */
int cli_serve(struct config *cfg, const struct cli_demo_opts *demo);

/* `storekeep demo`; argv[0] is "demo". */
int cli_demo(int argc, char **argv);

/* `storekeep ctl`, the admin API client (ctl.c); argv[0] is "ctl".
 * Returns the exit status: 0 done, 1 the API refused or could not be
 * reached, 2 a usage error. */
int cli_ctl(int argc, char **argv);

/* `storekeep backup ...` (backup_cmd.c); argv[0] is "backup". Returns the
 * exit status: 0 done, 1 failed, 2 a usage error. */
int cli_backup(int argc, char **argv);

#endif
