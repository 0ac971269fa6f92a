/*
 * main.c - the storekeep command: subcommand dispatch, the daemon's
 * start-up and signal handling.
 *
 *   storekeep run -c FILE       run the edge (also: storekeep -c FILE)
 *   storekeep check -c FILE     validate a config and exit 0/1
 *   storekeep demo [...]        the demo shop behind storekeep (demo.c)
 *   storekeep shop [...]        one demo shop backend (src/shop)
 *   storekeep config-reference  print docs/config.md
 *   storekeep version
 *
 * The daemon's control thread is this one: it owns the control loop with
 * the signal handlers, the health checks and the admin listener, while the
 * proxy's workers run their own loops.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "monitor/alert_conf.h"
#include "shop/shop.h"

#ifndef SK_VERSION
#define SK_VERSION "dev"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: storekeep <command> [options]\n"
		"\n"
		"commands:\n"
		"  run -c FILE        run the edge with the config FILE\n"
		"  check -c FILE      validate FILE and exit 0 (valid) or 1\n"
		"  ctl COMMAND        talk to a running storekeep: status, pools,\n"
		"                     drain, enable, weight, reload, alerts, silence\n"
		"                     (storekeep ctl --help)\n"
		"  backup COMMAND     init|run|list|verify|restore|prune\n"
		"                     (storekeep backup --help)\n"
		"  demo [options]     run the demo shop behind storekeep\n"
		"                     (storekeep demo --help for options)\n"
		"  shop [options]     run one demo shop backend\n"
		"  config-reference   print the configuration reference (Markdown)\n"
		"  version            print the version\n");
}

/* Parses "-c FILE" / "--config FILE" for run and check. */
static const char *config_arg(int argc, char **argv, const char *cmd)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = NULL;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			printf("usage: storekeep %s -c FILE\n", cmd);
			exit(0);
		default:
			fprintf(stderr, "usage: storekeep %s -c FILE\n", cmd);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "storekeep %s: unexpected argument '%s'\n", cmd,
			argv[optind]);
		exit(2);
	}
	if (path == NULL) {
		fprintf(stderr, "storekeep %s: no config file given (-c FILE)\n",
			cmd);
		exit(2);
	}
	return path;
}

static int cmd_check(int argc, char **argv)
{
	const char *path = config_arg(argc, argv, "check");
	struct config *cfg;
	char err[1024];

	struct alert_setup *alerts;

	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		fprintf(stderr, "%s: configuration is invalid\n", path);
		return 1;
	}
	/* Alert rules, selectors and notifiers are checked by the monitor
	 * module (password files are read), as `run` and a reload do. */
	if (alert_setup_build(cfg, &alerts, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		fprintf(stderr, "%s: configuration is invalid\n", path);
		config_unref(cfg);
		return 1;
	}
	{
		size_t nb = 0, nrules = 0;

		for (size_t i = 0; i < cfg->npools; i++)
			nb += cfg->pools[i].nbackends;
		for (size_t i = 0; alerts->enabled && i < alerts->nrules; i++)
			nrules += !alerts->rules[i].disabled;
		printf("%s: configuration is valid (%zu pool%s, %zu backend%s, "
		       "%zu route%s, %zu alert rule%s, %zu notifier%s)\n",
		       path, cfg->npools, cfg->npools == 1 ? "" : "s", nb,
		       nb == 1 ? "" : "s", cfg->nroutes,
		       cfg->nroutes == 1 ? "" : "s", nrules,
		       nrules == 1 ? "" : "s", alerts->notify.nchannels,
		       alerts->notify.nchannels == 1 ? "" : "s");
	}
	alert_setup_free(alerts);
	config_unref(cfg);
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	const char *path = config_arg(argc, argv, "run");
	struct config *cfg;
	char err[1024];
	int rc;

	if (config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rc = cli_serve(cfg, NULL);
	config_unref(cfg);
	return rc;
}

int main(int argc, char **argv)
{
	const char *cmd;

	/* Writes to closed sockets must return EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "-c") == 0 || strcmp(cmd, "--config") == 0)
		return cmd_run(argc, argv);
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (strcmp(cmd, "demo") == 0)
		return cli_demo(argc - 1, argv + 1);
	if (strcmp(cmd, "ctl") == 0)
		return cli_ctl(argc - 1, argv + 1);
	if (strcmp(cmd, "backup") == 0)
		return cli_backup(argc - 1, argv + 1);
	if (strcmp(cmd, "shop") == 0)
		return shop_main(argc - 1, argv + 1);
	if (strcmp(cmd, "config-reference") == 0) {
		config_write_reference(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("storekeep %s\n", SK_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
	    strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "storekeep: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return 2;
}
