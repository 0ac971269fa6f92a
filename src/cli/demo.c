/*
 * demo.c - `storekeep demo`: the demo shop behind storekeep, one command.
 *
 * Writes a config, an admin token (mode 0600, kept across runs) and the
 * shop database into a state directory, starts three shop instances as
 * supervised children (a crashed one is restarted with backoff), and runs
 * the edge and the admin listener in this process. Ctrl-C or SIGTERM stops
 * everything, children included.
 *
 * The config goes through the same loader as any user's, so the demo can
 * never run with something `storekeep check` would refuse.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"

#define DEMO_SHOPS 3

static void demo_usage(FILE *f)
{
	fprintf(f,
		"usage: storekeep demo [options]\n"
		"\n"
		"  --state-dir DIR   where config, token and database live\n"
		"                    (default: .storekeep-demo)\n"
		"  --listen ADDR     shop address (default: 127.0.0.1:8080)\n"
		"  --admin ADDR      admin address (default: 127.0.0.1:9901)\n"
		"  --shop-port N     first of the three backend ports (default: 8081)\n"
		"  --workers N       worker threads (default: one per core)\n");
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Creates the token file once; later runs keep the same token. */
static int ensure_token(const char *path)
{
	unsigned char raw[16];
	char hex[sizeof(raw) * 2 + 2];
	int fd;

	if (access(path, F_OK) == 0) {
		/* Keep it, but fix a mode someone loosened. */
		return chmod(path, 0600) < 0 ? -errno : 0;
	}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	hex[sizeof(raw) * 2] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, hex, sizeof(raw) * 2 + 1) != (ssize_t)(sizeof(raw) * 2 + 1)) {
		close(fd);
		return -EIO;
	}
	return close(fd) < 0 ? -errno : 0;
}

static int write_file(const char *path, const char *data, size_t len)
{
	char tmp[PATH_MAX + 64];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0)
		return -errno;
	return 0;
}

static int read_token(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "r");

	if (f == NULL || fgets(out, (int)outlen, f) == NULL) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	return 0;
}

int cli_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state-dir", required_argument, NULL, 's'},
		{"listen", required_argument, NULL, 'l'},
		{"admin", required_argument, NULL, 'a'},
		{"shop-port", required_argument, NULL, 'p'},
		{"workers", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *state = ".storekeep-demo", *listen = "127.0.0.1:8080";
	const char *admin = "127.0.0.1:9901";
	long shop_port = 8081, workers = 0;
	char dir[PATH_MAX], exe[PATH_MAX], cfgpath[PATH_MAX + 32];
	char tokpath[PATH_MAX + 32], dbpath[PATH_MAX + 32], token[PATH_MAX + 64];
	char names[DEMO_SHOPS][16], addrs[DEMO_SHOPS][64];
	char *argvs[DEMO_SHOPS][9];
	struct cli_child children[DEMO_SHOPS];
	struct cli_demo_opts demo;
	struct config *cfg;
	struct buf y, banner;
	char err[1024], *end;
	ssize_t n;
	int ch, r, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			state = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'a':
			admin = optarg;
			break;
		case 'p':
			shop_port = strtol(optarg, &end, 10);
			if (*end || shop_port < 1 || shop_port > 65535 - DEMO_SHOPS) {
				fprintf(stderr, "storekeep demo: --shop-port: expected a "
						"port from 1 to 65532, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'w':
			workers = strtol(optarg, &end, 10);
			if (*end || workers < 0 || workers > 256) {
				fprintf(stderr, "storekeep demo: --workers: expected 0 to "
						"256, got '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			demo_usage(stdout);
			return 0;
		default:
			demo_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "storekeep demo: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	r = mkdir_p(state);
	if (r < 0 || realpath(state, dir) == NULL) {
		fprintf(stderr, "storekeep demo: cannot create state directory %s: %s\n",
			state, strerror(r < 0 ? -r : errno));
		return 1;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "storekeep demo: cannot find own executable: %s\n",
			strerror(errno));
		return 1;
	}
	exe[n] = '\0';
	snprintf(cfgpath, sizeof(cfgpath), "%s/storekeep.yaml", dir);
	snprintf(tokpath, sizeof(tokpath), "%s/admin.token", dir);
	snprintf(dbpath, sizeof(dbpath), "%s/shop.db", dir);
	r = ensure_token(tokpath);
	if (r < 0) {
		fprintf(stderr, "storekeep demo: cannot write %s: %s\n", tokpath,
			strerror(-r));
		return 1;
	}

	buf_init(&y);
	buf_printf(&y,
		   "# Written by `storekeep demo`; edited copies are overwritten.\n"
		   "workers: %ld\n"
		   "listen: %s\n"
		   "log:\n"
		   "  level: info\n"
		   "admin:\n"
		   "  listen: %s\n"
		   "  token_file: admin.token\n"
		   "timeouts:\n"
		   "  shutdown_grace: 5s\n"
		   "pools:\n"
		   "  - name: shop\n"
		   "    balance: least_conn\n"
		   "    health:\n"
		   "      path: /healthz\n"
		   "      interval: 1s\n"
		   "      timeout: 500ms\n"
		   "      rise: 2\n"
		   "      fall: 2\n"
		   "    backends:\n",
		   workers, listen, admin);
	for (int i = 0; i < DEMO_SHOPS; i++) {
		snprintf(names[i], sizeof(names[i]), "shop%d", i + 1);
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%ld", shop_port + i);
		buf_printf(&y, "      - name: %s\n        address: %s\n", names[i],
			   addrs[i]);
	}
	/* Checkout is where a double click costs money: repeated
	 * Idempotency-Keys are answered at the edge, and a checkout that may
	 * have reached a backend is never retried. */
	buf_appends(&y,
		    "monitor:\n"
		    "  history:\n"
		    "    path: history.db\n"
		    "routes:\n"
		    "  - name: checkout\n"
		    "    path: /checkout\n"
		    "    pool: shop\n"
		    "    retry:\n"
		    "      methods: []\n"
		    "    idempotency:\n"
		    "      enabled: true\n"
		    "  - name: shop\n"
		    "    pool: shop\n");
	r = write_file(cfgpath, y.data, y.len);
	buf_fini(&y);
	if (r < 0) {
		fprintf(stderr, "storekeep demo: cannot write %s: %s\n", cfgpath,
			strerror(-r));
		return 1;
	}
	if (config_load(cfgpath, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "storekeep demo: %s\n", err);
		return 1;
	}
	if (read_token(tokpath, token, sizeof(token)) != 0)
		snprintf(token, sizeof(token), "(see %s)", tokpath);

	for (int i = 0; i < DEMO_SHOPS; i++) {
		argvs[i][0] = exe;
		argvs[i][1] = "shop";
		argvs[i][2] = "--listen";
		argvs[i][3] = addrs[i];
		argvs[i][4] = "--db";
		argvs[i][5] = dbpath;
		argvs[i][6] = "--name";
		argvs[i][7] = names[i];
		argvs[i][8] = NULL;
		children[i].name = names[i];
		children[i].argv = argvs[i];
	}
	buf_init(&banner);
	buf_printf(&banner,
		   "\nstorekeep demo is running\n"
		   "  shop:    http://%s/\n"
		   "  admin:   http://%s/api/v1/status\n"
		   "  metrics: http://%s/metrics\n"
		   "  token:   %s\n"
		   "  try:     curl -H 'Authorization: Bearer %s' http://%s/api/v1/status\n"
		   "  state:   %s\n"
		   "Press Ctrl-C to stop.\n\n",
		   listen, admin, admin, token, token, admin, dir);
	demo.children = children;
	demo.nchildren = DEMO_SHOPS;
	demo.banner = buf_cstr(&banner);
	rc = cli_serve(cfg, &demo);
	buf_fini(&banner);
	config_unref(cfg);
	return rc;
}
