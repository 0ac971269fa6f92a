/*
 * serve.c - the daemon's control thread: start the proxy, the admin
 * listener and (for the demo) supervised children; handle signals; stop in
 * order.
 *
 * Stop order matters: the edge stops first (listeners close, requests in
 * flight finish on the backends), then the admin, then supervised
 * backends, so no customer request is cut because its backend went away
 * before it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin.h"
#include "backup/backup.h"
#include "cli/cli.h"
#include "core/clock.h"
#include "core/log.h"
#include "monitor/history.h"
#include "monitor/probe.h"
#include "proxy/proxy.h"
#include "supervisor/supervisor.h"

struct serve {
	uv_loop_t loop;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_signal_t sighup;
	uv_signal_t sigusr1;
	struct config *cfg;
	struct proxy *proxy;
	struct admin *admin;
	struct supervisor *sup;
	struct backup_sched *backup;
	struct probes *probes;
	struct history *history;
	uv_timer_t history_tick;
	int stopping;
};

static void close_signals(struct serve *s)
{
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
	uv_close((uv_handle_t *)&s->sighup, NULL);
	uv_close((uv_handle_t *)&s->sigusr1, NULL);
}

static void sup_done_cb(struct supervisor *sup, void *ud)
{
	struct serve *s = ud;

	(void)sup;
	s->sup = NULL;
	log_info("stopped", "%s", "");
	close_signals(s);
}

static void on_proxy_stopped(struct proxy *p, void *ud)
{
	struct serve *s = ud;

	(void)p;
	if (s->admin)
		admin_set_monitor(s->admin, NULL, NULL);
	if (s->history) {
		/* The minute and hour in progress are written as partial
		 * rows; the loop runs until they are in the file. */
		uv_close((uv_handle_t *)&s->history_tick, NULL);
		history_close(s->history, NULL, NULL);
		s->history = NULL;
	}
	admin_stop(s->admin);
	s->admin = NULL;
	if (s->sup) {
		supervisor_stop(s->sup, 5000, sup_done_cb, s);
		return;
	}
	log_info("stopped", "%s", "");
	close_signals(s);
}

/*
 * Loads the config file again and swaps it in. An invalid file changes
 * nothing; the error (file:line: key: ...) is logged and returned.
 */
static int reload(void *ud, char *err, size_t errlen)
{
	struct serve *s = ud;
	const struct config *cur = proxy_config(s->proxy);
	struct config *cfg;
	int r;

	if (s->stopping) {
		snprintf(err, errlen, "storekeep is stopping");
		return -1;
	}
	if (config_load(cur->path, &cfg, err, errlen) != 0) {
		log_error("reload refused: the configuration is invalid; the old "
			  "one stays in force",
			  "err=\"%s\"", err);
		return -1;
	}
	if (cfg->log.level != cur->log.level)
		log_set_level((enum log_level)cfg->log.level);
	if ((cfg->log.file == NULL) != (cur->log.file == NULL) ||
	    (cfg->log.file && strcmp(cfg->log.file, cur->log.file) != 0)) {
		r = log_open((enum log_level)cfg->log.level, cfg->log.file);
		if (r < 0)
			log_error("cannot open the new log file; logging to stderr",
				  "file=%s err=%s", cfg->log.file, strerror(-r));
	}
	r = proxy_reload(s->proxy, cfg, err, errlen);
	if (r >= 0 && s->backup)
		backup_sched_reload(s->backup, cfg);
	if (r >= 0 && s->probes)
		probes_reload(s->probes, &cfg->monitor);
	if (r >= 0 && s->history)
		history_reload(s->history, &cfg->monitor.history);
	config_unref(cfg);
	return r;
}

static void begin_stop(struct serve *s, const char *why)
{
	if (s->stopping) {
		log_info("already stopping", "signal=%s", why);
		return;
	}
	s->stopping = 1;
	if (s->backup) {
		/* A run in progress is cancelled (its temporary files go;
		 * earlier archives are untouched); the loop runs until it
		 * has ended. */
		if (s->admin)
			admin_set_backup(s->admin, NULL);
		backup_sched_stop(s->backup, NULL, NULL);
		s->backup = NULL;
	}
	if (s->probes) {
		/* Plugins in flight get SIGKILL; pool threads end at their
		 * deadline. The registry lives until proxy_free(). */
		if (s->admin)
			admin_set_monitor(s->admin, NULL, s->history);
		probes_stop(s->probes, NULL, NULL);
		s->probes = NULL;
	}
	log_info("stopping", "signal=%s grace_ms=%u", why,
		 proxy_config(s->proxy)->timeouts.shutdown_grace_ms);
	proxy_stop(s->proxy, on_proxy_stopped, s);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct serve *s = h->data;

	switch (signum) {
	case SIGTERM:
		begin_stop(s, "TERM");
		break;
	case SIGINT:
		begin_stop(s, "INT");
		break;
	case SIGHUP: {
		char err[1024];
		char result[1100];
		int r;

		log_info("reloading", "signal=HUP");
		r = reload(s, err, sizeof(err));
		if (s->admin) {
			if (r >= 0)
				admin_config_changed(s->admin);
			snprintf(result, sizeof(result), "%s%s",
				 r < 0 ? "error: " : "ok", r < 0 ? err : "");
			admin_audit(s->admin, "signal", "reload",
				    proxy_config(s->proxy)->path, result);
		}
		break;
	}
	case SIGUSR1:
		if (log_reopen() != 0)
			log_error("log reopen failed", "err=%s", strerror(errno));
		else
			log_info("log reopened", "signal=USR1");
		/* The access and audit logs report their own failures. */
		(void)proxy_reopen_logs(s->proxy);
		if (s->admin)
			admin_reopen_audit(s->admin);
		break;
	}
}

static void status_hook(void *ud, json_t *root)
{
	struct serve *s = ud;
	json_t *arr;

	if (s->backup)
		json_object_set_new(root, "backups", backup_status_json(s->backup));
	if (s->sup == NULL)
		return;
	arr = json_array();
	for (size_t i = 0; i < supervisor_count(s->sup); i++) {
		struct supervisor_proc_status st;
		json_t *o = json_object();

		supervisor_status(s->sup, i, &st);
		json_object_set_new(o, "name", json_string(st.name));
		json_object_set_new(o, "pid", json_integer(st.pid));
		json_object_set_new(o, "restarts", json_integer(st.restarts));
		json_object_set_new(o, "last_exit", json_integer(st.last_exit));
		json_array_append_new(arr, o);
	}
	json_object_set_new(root, "processes", arr);
}

static void history_tick_cb(uv_timer_t *t)
{
	struct serve *s = t->data;

	(void)history_sample(s->history, proxy_metrics(s->proxy),
			     clock_wall_ms());
}

static void signal_init(struct serve *s, uv_signal_t *h, int signum)
{
	uv_signal_init(&s->loop, h);
	h->data = s;
	uv_signal_start(h, signal_cb, signum);
}

int cli_serve(struct config *cfg, const struct cli_demo_opts *demo)
{
	struct serve s;
	char err[512];
	int r, rc = 0;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	r = log_open((enum log_level)cfg->log.level, cfg->log.file);
	if (r < 0) {
		fprintf(stderr, "storekeep: cannot open log file %s: %s\n",
			cfg->log.file, strerror(-r));
		return 1;
	}
	uv_loop_init(&s.loop);
	r = proxy_new(cfg, &s.proxy, err, sizeof(err));
	if (r < 0) {
		log_error("cannot start", "err=\"%s\"", err);
		fprintf(stderr, "storekeep: %s\n", err);
		uv_loop_close(&s.loop);
		return 1;
	}
	s.backup = backup_sched_start(&s.loop, cfg, err, sizeof(err));
	if (s.backup == NULL) {
		log_error("cannot start backups", "err=\"%s\"", err);
		fprintf(stderr, "storekeep: %s\n", err);
		proxy_free(s.proxy);
		uv_loop_close(&s.loop);
		return 1;
	}
	{
		struct metrics *reg = proxy_metrics(s.proxy);
		struct cfg_history hc = cfg->monitor.history;
		char hpath[4096];

		if (hc.path == NULL || hc.path[0] != '/') {
			/* The default (or a relative path from a config given
			 * as a string) lives next to the config file, never in
			 * whatever directory storekeep was started from. */
			const char *slash = strrchr(cfg->path, '/');
			const char *name = hc.path ? hc.path : "storekeep-history.db";

			snprintf(hpath, sizeof(hpath), "%.*s%s%s",
				 slash ? (int)(slash - cfg->path) : 0, cfg->path,
				 slash ? "/" : "", name);
			hc.path = hpath;
		}
		r = history_open(&s.loop, &hc, &s.history, err, sizeof(err));
		if (r < 0) {
			/* The shop matters more than its graphs: serve without
			 * history, loudly. */
			log_error("history disabled: cannot open its file; set "
				  "monitor.history.path to a writable place",
				  "err=\"%s\"", err);
			fprintf(stderr, "storekeep: history disabled: %s\n", err);
			s.history = NULL;
		} else {
			uv_timer_init(&s.loop, &s.history_tick);
			s.history_tick.data = &s;
			uv_timer_start(&s.history_tick, history_tick_cb, 1000, 1000);
		}
		/* The last shard of the proxy's registry is the control
		 * thread's. */
		s.probes = probes_start(&s.loop, &cfg->monitor, reg,
					metrics_shards(reg) - 1, err, sizeof(err));
		if (s.probes == NULL) {
			log_error("cannot start the probes", "err=\"%s\"", err);
			fprintf(stderr, "storekeep: %s\n", err);
			rc = 1;
		}
	}
	signal_init(&s, &s.sigterm, SIGTERM);
	signal_init(&s, &s.sigint, SIGINT);
	signal_init(&s, &s.sighup, SIGHUP);
	signal_init(&s, &s.sigusr1, SIGUSR1);
	if (cfg->admin.enabled) {
		r = admin_start(&s.loop, cfg, s.proxy, &s.admin, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "storekeep: %s\n", err);
			log_error("cannot start admin", "err=\"%s\"", err);
			rc = 1;
			goto fail;
		}
		admin_set_status_hook(s.admin, status_hook, &s);
		admin_set_reload_hook(s.admin, reload, &s);
		admin_set_backup(s.admin, s.backup);
		admin_set_monitor(s.admin, s.probes, s.history);
	}
	if (rc)
		goto fail;
	if (demo) {
		s.sup = supervisor_new(&s.loop);
		for (size_t i = 0; i < demo->nchildren; i++) {
			struct supervisor_proc_opts o;

			memset(&o, 0, sizeof(o));
			o.name = demo->children[i].name;
			o.argv = demo->children[i].argv;
			if (supervisor_add(s.sup, &o) < 0) {
				fprintf(stderr, "storekeep: cannot start %s\n", o.name);
				rc = 1;
				goto fail;
			}
		}
	}
	r = proxy_start(s.proxy, &s.loop);
	if (r < 0) {
		fprintf(stderr, "storekeep: cannot start the proxy: %s\n",
			uv_strerror(r));
		rc = 1;
		goto fail;
	}
	if (demo && demo->banner) {
		fputs(demo->banner, stdout);
		fflush(stdout);
	}
	uv_run(&s.loop, UV_RUN_DEFAULT);
	proxy_free(s.proxy);
	uv_loop_close(&s.loop);
	return rc;
fail:
	/* Nothing is serving yet: stop what did start, in order. */
	begin_stop(&s, "startup-failure");
	uv_run(&s.loop, UV_RUN_DEFAULT);
	proxy_free(s.proxy);
	uv_loop_close(&s.loop);
	return rc;
}
