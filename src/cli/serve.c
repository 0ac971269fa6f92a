/*
 * serve.c - the daemon's control thread: start the proxy, the admin
 * listener and (for the demo) supervised children; handle signals; stop in
 * order.
 *
 * Monitoring runs here too: every second the host is sampled into the
 * proxy's registry (the control thread's shard) and the registry into
 * the history; every monitor.alerts.interval the alert source takes its
 * histogram snapshots and the engine evaluates the rules, its
 * notifications going out through the notifiers on this loop.
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
#include "monitor/alert.h"
#include "monitor/alert_conf.h"
#include "monitor/alert_src.h"
#include "monitor/history.h"
#include "monitor/host.h"
#include "monitor/notify.h"
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
	uv_timer_t monitor_tick; /* host and history, every second */
	struct host_sample host_prev, host_cur;
	struct host_rates host_rates;
	int host_samples;
	struct notify *notify;
	struct alert_src *asrc;
	struct alert_engine *alerts;
	uv_timer_t alert_tick;
	uint64_t alert_interval_ms;
	uint64_t alert_max_window_ms;
	/* What the running engine was started with: a reload that changes
	 * one of them restarts it. */
	char *alert_state_path;
	char *alert_external_url;
	uint64_t alert_resolved_keep_ms;
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
	uv_close((uv_handle_t *)&s->monitor_tick, NULL);
	uv_close((uv_handle_t *)&s->alert_tick, NULL);
	host_rates_free(&s->host_rates);
	host_sample_free(&s->host_prev);
	host_sample_free(&s->host_cur);
	if (s->history) {
		/* The minute and hour in progress are written as partial
		 * rows; the loop runs until they are in the file. */
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

/* --- alerts ----------------------------------------------------------------- */

static void alert_tick_cb(uv_timer_t *t)
{
	struct serve *s = t->data;
	uint64_t now = clock_wall_ms();

	alert_src_tick(s->asrc, now, s->alert_interval_ms,
		       s->alert_max_window_ms);
	(void)alert_engine_eval(s->alerts, now);
}

static void alerts_stop(struct serve *s)
{
	if (s->alerts == NULL)
		return;
	if (s->admin)
		admin_set_alerts(s->admin, NULL);
	uv_timer_stop(&s->alert_tick);
	/* Saves the alerts' states; a restart neither pages again nor
	 * forgets a resolution. */
	alert_engine_free(s->alerts);
	s->alerts = NULL;
	notify_stop(s->notify, NULL, NULL);
	s->notify = NULL;
	alert_src_free(s->asrc);
	s->asrc = NULL;
	free(s->alert_state_path);
	free(s->alert_external_url);
	s->alert_state_path = s->alert_external_url = NULL;
}

static bool str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static char *str_copy(const char *a)
{
	char *d = a ? strdup(a) : NULL;

	SK_ASSERT(a == NULL || d != NULL);
	return d;
}

static void alert_timing(struct serve *s, const struct alert_setup *su)
{
	s->alert_max_window_ms = alert_rules_max_window(su->rules, su->nrules);
	if (su->interval_ms != s->alert_interval_ms) {
		s->alert_interval_ms = su->interval_ms;
		uv_timer_start(&s->alert_tick, alert_tick_cb, su->interval_ms,
			       su->interval_ms);
	}
}

/* Starts the notifiers and the engine of su (which is enabled). */
static int alerts_start(struct serve *s, const struct alert_setup *su,
			char *err, size_t errlen)
{
	struct alert_engine_conf ec;
	struct alert_source src;
	int r;

	r = notify_new(&s->loop, &su->notify, &s->notify, err, errlen);
	if (r < 0)
		return r;
	s->asrc = alert_src_new(proxy_metrics(s->proxy), s->history);
	src = alert_src_source(s->asrc);
	memset(&ec, 0, sizeof(ec));
	ec.rules = su->rules;
	ec.nrules = su->nrules;
	ec.state_path = su->state_path;
	ec.generator_url = su->external_url;
	ec.resolved_keep_ms = su->resolved_keep_ms;
	ec.notify = s->notify;
	r = alert_engine_new(&ec, &src, &s->alerts, err, errlen);
	if (r < 0) {
		notify_stop(s->notify, NULL, NULL);
		s->notify = NULL;
		alert_src_free(s->asrc);
		s->asrc = NULL;
		return r;
	}
	s->alert_state_path = str_copy(su->state_path);
	s->alert_external_url = str_copy(su->external_url);
	s->alert_resolved_keep_ms = su->resolved_keep_ms;
	s->alert_interval_ms = 0;
	alert_timing(s, su);
	/* The first snapshot of the histograms: windows start here. */
	alert_src_tick(s->asrc, clock_wall_ms(), s->alert_interval_ms,
		       s->alert_max_window_ms);
	if (s->admin)
		admin_set_alerts(s->admin, s->alerts);
	log_info("alerts started", "rules=%zu notifiers=%zu interval_ms=%llu "
		 "state=%s",
		 su->nrules, su->notify.nchannels,
		 (unsigned long long)su->interval_ms,
		 su->state_path ? su->state_path : "-");
	return 0;
}

/* Takes a reloaded alerts section: new rules and channels in place, or
 * alerts started or stopped. */
static void alerts_reload(struct serve *s, const struct alert_setup *su)
{
	char err[1024];

	if (!su->enabled) {
		if (s->alerts)
			log_info("alerts stopped", "%s", "reason=reload");
		alerts_stop(s);
		return;
	}
	if (s->alerts != NULL &&
	    (str_differs(su->state_path, s->alert_state_path) ||
	     str_differs(su->external_url, s->alert_external_url) ||
	     su->resolved_keep_ms != s->alert_resolved_keep_ms)) {
		/* The engine takes these at its start: stop it (its states
		 * are saved) and start it again with them. */
		log_info("alerts restarted", "%s",
			 "reason=\"state_path, external_url or resolved_keep "
			 "changed\"");
		alerts_stop(s);
	}
	if (s->alerts == NULL) {
		if (alerts_start(s, su, err, sizeof(err)) < 0)
			log_error("cannot start alerts", "err=\"%s\"", err);
		return;
	}
	if (notify_reload(s->notify, &su->notify, err, sizeof(err)) < 0)
		log_error("notifiers not reloaded", "err=\"%s\"", err);
	if (alert_engine_reload(s->alerts, su->rules, su->nrules, err,
				sizeof(err)) < 0)
		log_error("alert rules not reloaded", "err=\"%s\"", err);
	alert_timing(s, su);
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
	struct alert_setup *su;
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
	if (alert_setup_build(cfg, &su, err, errlen) != 0) {
		log_error("reload refused: the configuration is invalid; the old "
			  "one stays in force",
			  "err=\"%s\"", err);
		config_unref(cfg);
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
	if (r >= 0)
		alerts_reload(s, su);
	alert_setup_free(su);
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
	alerts_stop(s);
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
	if (s->asrc)
		json_object_set_new(
			root, "alert_source",
			json_pack("{s:I,s:I}", "histogram_series",
				  (json_int_t)alert_src_hist_series(s->asrc),
				  "snapshot_bytes",
				  (json_int_t)alert_src_bytes(s->asrc)));
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

/*
 * The backends' health is not in the registry (the admin writes it from
 * the proxy's state at each scrape); the history, and so the BackendDown
 * and PoolDown rules, get it here. Pool and backend names are config
 * names: nothing in them needs escaping.
 */
static void record_backends(struct serve *s, uint64_t now)
{
	struct proxy_backend_info bi;
	char key[256];

	for (size_t pl = 0; pl < proxy_pool_count(s->proxy); pl++)
		for (size_t i = 0; i < proxy_backend_count(s->proxy, pl); i++) {
			proxy_backend_info(s->proxy, pl, i, &bi);
			snprintf(key, sizeof(key),
				 "storekeep_backend_up{pool=\"%s\",backend=\"%s\"}",
				 proxy_pool_name(s->proxy, pl), bi.name);
			(void)history_record(s->history, now, key,
					     bi.state == PROXY_BACKEND_UP);
		}
}

/* Every second: the host into the registry, the registry into the
 * history. */
static void monitor_tick_cb(uv_timer_t *t)
{
	struct serve *s = t->data;
	struct metrics *reg = proxy_metrics(s->proxy);
	struct host_sample next;

	if (host_sample(&next, NULL) == 0) {
		if (s->host_samples > 0) {
			host_rates_free(&s->host_rates);
			if (host_rates(&s->host_cur, &next, &s->host_rates) != 0)
				memset(&s->host_rates, 0, sizeof(s->host_rates));
		}
		host_sample_free(&s->host_prev);
		s->host_prev = s->host_cur;
		s->host_cur = next;
		s->host_samples++;
		(void)host_write_metrics(&s->host_cur,
					 s->host_samples > 1 ? &s->host_rates
							     : NULL,
					 reg, metrics_shards(reg) - 1);
	}
	if (s->history) {
		uint64_t now = clock_wall_ms();

		(void)history_sample(s->history, reg, now);
		record_backends(s, now);
	}
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
	struct alert_setup *su = NULL;
	char err[1024];
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
		}
		uv_timer_init(&s.loop, &s.monitor_tick);
		s.monitor_tick.data = &s;
		/* Started when alerts are enabled, stopped when a reload
		 * turns them off; closed with the monitor tick. */
		uv_timer_init(&s.loop, &s.alert_tick);
		s.alert_tick.data = &s;
		monitor_tick_cb(&s.monitor_tick);
		uv_timer_start(&s.monitor_tick, monitor_tick_cb, 1000, 1000);
		/* The last shard of the proxy's registry is the control
		 * thread's. */
		s.probes = probes_start(&s.loop, &cfg->monitor, reg,
					metrics_shards(reg) - 1, err, sizeof(err));
		if (s.probes == NULL) {
			log_error("cannot start the probes", "err=\"%s\"", err);
			fprintf(stderr, "storekeep: %s\n", err);
			rc = 1;
		}
		r = alert_setup_build(cfg, &su, err, sizeof(err));
		if (r == 0 && su->enabled)
			r = alerts_start(&s, su, err, sizeof(err));
		if (r == 0) {
			alert_setup_free(su);
		} else {
			log_error("cannot start alerts", "err=\"%s\"", err);
			fprintf(stderr, "storekeep: %s\n", err);
			alert_setup_free(su);
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
		admin_set_alerts(s.admin, s.alerts);
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
