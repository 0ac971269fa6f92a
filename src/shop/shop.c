/*
 * shop.c - `storekeep shop`: options, start-up, signals and the loop.
 *
 * One process, one libuv loop, one HTTP server (http/server.h), one
 * database connection. SIGTERM and SIGINT stop the server (connections
 * with a response in flight finish it), the loop then runs dry, and the
 * database is closed before the process exits 0. Start-up failures exit 1
 * with the reason logged; usage errors exit 2 with the reason on stderr.
 */
#include "shop/shop.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/log.h"
#include "http/server.h"
#include "shop/shop_int.h"

#define MAX_NAME 64

struct shop_opts {
	const char *listen;
	const char *db;
	const char *name;
	const char *log_level;
};

struct shop_run {
	struct shop_ctx ctx;
	struct http_server *srv;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	int stopping;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: storekeep shop --db FILE [--listen ADDR] "
		   "[--name NAME] [--log-level LEVEL]\n"
		   "  --db FILE         SQLite database (created and seeded "
		   "if new; may be shared)\n"
		   "  --listen ADDR     host:port or [v6]:port "
		   "(default 127.0.0.1:8081)\n"
		   "  --name NAME       backend name, sent as X-Backend "
		   "(default shop)\n"
		   "  --log-level LEVEL error, warn, info or debug "
		   "(default info)\n");
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "storekeep shop: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	usage(stderr);
	return 2;
}

/* Parses argv (argv[0] is "shop"). Returns 0, 1 for --help, or 2 after
 * reporting a usage error. */
static int opts_parse(int argc, char **argv, struct shop_opts *o)
{
	static const struct {
		const char *name;
		size_t off;
	} opts[] = {
		{"--listen", offsetof(struct shop_opts, listen)},
		{"--db", offsetof(struct shop_opts, db)},
		{"--name", offsetof(struct shop_opts, name)},
		{"--log-level", offsetof(struct shop_opts, log_level)},
	};
	int i;
	size_t k, n;

	o->listen = "127.0.0.1:8081";
	o->db = NULL;
	o->name = "shop";
	o->log_level = NULL;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		}
		for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
			n = strlen(opts[k].name);
			if (strncmp(a, opts[k].name, n) != 0)
				continue;
			if (a[n] == '=') {
				val = a + n + 1;
				break;
			}
			if (a[n] == '\0') {
				if (i + 1 >= argc)
					return usage_error("%s needs a value",
							   a);
				val = argv[++i];
				break;
			}
		}
		if (k == sizeof(opts) / sizeof(opts[0]))
			return usage_error("unknown argument \"%s\"", a);
		*(const char **)(void *)((char *)o + opts[k].off) = val;
	}
	if (o->db == NULL || o->db[0] == '\0')
		return usage_error("%s", "--db FILE is required");
	if (o->listen[0] == '\0')
		return usage_error("%s", "--listen must not be empty");
	n = strlen(o->name);
	if (n == 0 || n > MAX_NAME ||
	    strspn(o->name, "abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
		return usage_error("--name \"%s\" must be 1 to 64 letters, "
				   "digits, '-', '_' or '.'",
				   o->name);
	return 0;
}

static void close_noop_cb(uv_handle_t *h)
{
	(void)h;
}

static void shop_stop(struct shop_run *run, int signum)
{
	if (run->stopping)
		return;
	run->stopping = 1;
	log_info("shop stopping", "signal=%d", signum);
	http_server_stop(run->srv);
	run->srv = NULL;
	uv_close((uv_handle_t *)&run->sigterm, close_noop_cb);
	uv_close((uv_handle_t *)&run->sigint, close_noop_cb);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	shop_stop(h->data, signum);
}

int shop_main(int argc, char **argv)
{
	struct shop_opts o;
	struct shop_run run;
	struct http_server_opts so;
	char err[512], extra[MAX_NAME + 32];
	uv_loop_t loop;
	enum log_level lvl;
	int r, status = 1, loop_open = 0;

	r = opts_parse(argc, argv, &o);
	if (r != 0)
		return r == 1 ? 0 : r;
	if (o.log_level != NULL) {
		if (log_level_parse(o.log_level, &lvl) < 0)
			return usage_error("--log-level \"%s\" must be error, "
					   "warn, info or debug",
					   o.log_level);
		log_set_level(lvl);
	}

	memset(&run, 0, sizeof(run));
	run.ctx.name = o.name;
	/* A peer that resets while we write must not kill the process. */
	signal(SIGPIPE, SIG_IGN);

	r = shop_db_open(o.db, &run.ctx.db, err, sizeof(err));
	if (r < 0) {
		log_error("cannot open database", "err=\"%s\"", err);
		goto fail;
	}
	if (shop_db_seeded(run.ctx.db) > 0)
		log_info("seeded catalog", "products=%d db=%s",
			 shop_db_seeded(run.ctx.db), o.db);

	r = uv_loop_init(&loop);
	if (r < 0) {
		log_error("cannot start loop", "err=%s", uv_strerror(r));
		goto fail;
	}
	loop_open = 1;

	snprintf(extra, sizeof(extra), "X-Backend: %s\r\n", o.name);
	memset(&so, 0, sizeof(so));
	so.listen = o.listen;
	so.fd = -1;
	so.extra_headers = extra;
	so.max_body_bytes = 1u << 20;
	r = http_server_start(&loop, &so, shop_handle, &run.ctx, &run.srv,
			      err, sizeof(err));
	if (r < 0) {
		log_error("cannot listen", "err=\"%s\"", err);
		goto fail;
	}

	uv_signal_init(&loop, &run.sigterm);
	uv_signal_init(&loop, &run.sigint);
	run.sigterm.data = &run;
	run.sigint.data = &run;
	uv_signal_start(&run.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&run.sigint, signal_cb, SIGINT);

	log_info("shop listening", "addr=%s port=%d name=%s db=%s", o.listen,
		 http_server_port(run.srv), o.name, o.db);
	uv_run(&loop, UV_RUN_DEFAULT);
	status = 0;

fail:
	if (loop_open) {
		/* Runs the close callbacks of whatever is still open (after a
		 * failed start, the listener) so the loop can be closed. */
		uv_run(&loop, UV_RUN_DEFAULT);
		if (uv_loop_close(&loop) != 0)
			log_warn("loop close", "err=%s", "handles still open");
	}
	shop_db_close(run.ctx.db);
	run.ctx.db = NULL;
	if (status == 0)
		log_info("shop stopped", "name=%s", o.name);
	return status;
}
