/*
 * test_alert_conf.c - monitor/alert_conf.h: monitor.alerts, loaded by the
 * real config loader from YAML text, built into engine rules and
 * notifier channels. The built-in rules are compared with
 * alert_default_rules() itself, so a retuned default changes exactly
 * the fields written. Errors are checked for their "FILE:LINE: key:"
 * start, which is this module's; the rest of a message comes from the
 * engine's or the notifiers' checks and is only sampled.
 *
 * Password files live in a private temporary directory made by the
 * group setup.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "monitor/alert_conf.h"

#define ERRLEN 1024
#define SEC_MS  UINT64_C(1000)
#define MIN_MS  (60 * SEC_MS)
#define HOUR_MS (60 * MIN_MS)

/* The smallest valid file, then the alerts section: the caller's first
 * line is line 8. */
#define MIN_POOLS                                                              \
	"pools:\n"                                                             \
	"  - name: shop\n"                                                     \
	"    backends:\n"                                                      \
	"      - name: shop1\n"                                                \
	"        address: 127.0.0.1:8081\n"
#define ALERTS MIN_POOLS "monitor:\n  alerts:\n"

static char tmpdir[64];

/* --- helpers ------------------------------------------------------------- */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	assert_true(vasprintf(&s, f, ap) >= 0);
	va_end(ap);
	return s;
}

static char *write_tmp(const char *name, const char *data, mode_t mode)
{
	char *path = fmt("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(data, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static struct config *load(const char *yaml, const char *name)
{
	struct config *c = NULL;
	char err[ERRLEN] = "";

	if (config_load_string(yaml, name, &c, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	return c;
}

/* Builds yaml (loaded as name) and returns the setup; fails the test on
 * an error. */
static struct alert_setup *build_as(const char *yaml, const char *name)
{
	struct config *c = load(yaml, name);
	struct alert_setup *s = NULL;
	char err[ERRLEN] = "";

	if (alert_setup_build(c, &s, err, sizeof(err)) != 0)
		fail_msg("build: %s", err);
	assert_non_null(s);
	/* Nothing in the setup points into the config. */
	config_unref(c);
	return s;
}

static struct alert_setup *build(const char *yaml)
{
	return build_as(yaml, "storekeep.yaml");
}

/* Building yaml fails with -EINVAL and a message starting with want. */
static void build_err(const char *yaml, const char *want)
{
	struct config *c = load(yaml, "storekeep.yaml");
	struct alert_setup *s = (struct alert_setup *)(uintptr_t)1;
	char err[ERRLEN] = "";

	assert_int_equal(alert_setup_build(c, &s, err, sizeof(err)), -EINVAL);
	assert_null(s);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("got \"%s\", want \"%s...\"", err, want);
	config_unref(c);
}

static void build_err_free(char *yaml, const char *want)
{
	build_err(yaml, want);
	free(yaml);
}

static const struct alert_rule *rule(const struct alert_setup *s,
				     const char *name)
{
	for (size_t i = 0; i < s->nrules; i++)
		if (strcmp(s->rules[i].name, name) == 0)
			return &s->rules[i];
	fail_msg("no rule %s", name);
	return NULL;
}

static const char *label(const struct metrics_label *l, size_t n,
			 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0)
			return l[i].value;
	return NULL;
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sk-test-alert-conf-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	char *cmd = fmt("rm -rf '%s'", tmpdir);
	int rc = system(cmd);

	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* --- tests ------------------------------------------------------------- */

/* No monitor.alerts: enabled, every built-in rule as it comes, no
 * notifier, the state file next to the config file. */
static void test_absent_section(void **state)
{
	struct alert_rule defs[16];
	size_t ndef = alert_default_rules(defs, 16);
	struct alert_setup *s = build_as(MIN_POOLS, "/etc/sk/storekeep.yaml");

	assert_true(ndef > 0 && ndef <= 16);
	assert_true(s->enabled);
	assert_int_equal(s->interval_ms, 5 * SEC_MS);
	assert_int_equal(s->resolved_keep_ms, 15 * MIN_MS);
	assert_string_equal(s->state_path, "/etc/sk/storekeep-alerts.json");
	assert_null(s->external_url);
	assert_int_equal(s->nrules, ndef);
	for (size_t i = 0; i < ndef; i++) {
		assert_string_equal(s->rules[i].name, defs[i].name);
		assert_false(s->rules[i].disabled);
		assert_true(s->rules[i].threshold == defs[i].threshold);
		assert_int_equal(s->rules[i].for_ms, defs[i].for_ms);
	}
	assert_int_equal(s->notify.nchannels, 0);
	assert_int_equal(s->notify.max_inflight, 4);
	alert_setup_free(s);
	alert_setup_free(NULL);
}

/* state_path: absolute as written, else relative to the config file's
 * directory, itself relative to the current directory. */
static void test_state_path(void **state)
{
	char cwd[PATH_MAX], *want;
	struct alert_setup *s;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	s = build_as(MIN_POOLS, "storekeep.yaml");
	want = fmt("%s/storekeep-alerts.json", cwd);
	assert_string_equal(s->state_path, want);
	free(want);
	alert_setup_free(s);

	s = build_as(ALERTS "    state_path: state/a.json\n",
		     "conf/storekeep.yaml");
	want = fmt("%s/conf/state/a.json", cwd);
	assert_string_equal(s->state_path, want);
	free(want);
	alert_setup_free(s);

	s = build_as(ALERTS "    state_path: a.json\n", "/srv/sk.yaml");
	assert_string_equal(s->state_path, "/srv/a.json");
	alert_setup_free(s);

	s = build_as(ALERTS "    state_path: /var/lib/sk/a.json\n"
			    "    enabled: false\n"
			    "    interval: 30s\n"
			    "    resolved_keep: 1h\n"
			    "    external_url: http://shop.example:9090\n",
		     "/srv/sk.yaml");
	assert_string_equal(s->state_path, "/var/lib/sk/a.json");
	assert_false(s->enabled);
	assert_int_equal(s->interval_ms, 30 * SEC_MS);
	assert_int_equal(s->resolved_keep_ms, HOUR_MS);
	assert_string_equal(s->external_url, "http://shop.example:9090");
	alert_setup_free(s);
}

/* defaults turn built-in rules off or retune exactly the keys written. */
static void test_defaults_retuned(void **state)
{
	struct alert_rule defs[16];
	size_t ndef = alert_default_rules(defs, 16);
	struct alert_setup *s = build(
		ALERTS "    defaults:\n"
		       "      HostCPUHigh: {enabled: false}\n"
		       "      DiskSpaceLow: {threshold: 0.85, severity: critical, "
		       "for: 10m}\n"
		       "      BackendDown:\n"
		       "        for: 1m\n"
		       "        keep_firing_for: 2m\n"
		       "        repeat: 4h\n"
		       "        labels: {team: ops}\n"
		       "        summary: \"{{backend}} down\"\n");
	const struct alert_rule *r;

	/* Still all there, in the built-in order, the disabled one too. */
	assert_int_equal(s->nrules, ndef);
	for (size_t i = 0; i < ndef; i++)
		assert_string_equal(s->rules[i].name, defs[i].name);

	r = rule(s, "HostCPUHigh");
	assert_true(r->disabled);
	r = rule(s, "DiskSpaceLow");
	assert_false(r->disabled);
	assert_true(r->threshold == 0.85);
	assert_int_equal(r->severity, ALERT_SEV_CRITICAL);
	assert_int_equal(r->for_ms, 10 * MIN_MS);
	assert_int_equal(r->keep_firing_for_ms, 0);
	assert_string_equal(r->expr.metric,
			    "storekeep_host_filesystem_used_ratio");
	r = rule(s, "BackendDown");
	assert_int_equal(r->for_ms, MIN_MS);
	assert_int_equal(r->keep_firing_for_ms, 2 * MIN_MS);
	assert_int_equal(r->repeat_ms, 4 * HOUR_MS);
	assert_int_equal(r->severity, ALERT_SEV_WARNING);
	assert_true(r->threshold == 0);
	assert_int_equal(r->nlabels, 1);
	assert_string_equal(label(r->labels, r->nlabels, "team"), "ops");
	assert_string_equal(r->summary, "{{backend}} down");
	/* Untouched. */
	r = rule(s, "PoolDown");
	assert_false(r->disabled);
	assert_int_equal(r->for_ms, 10 * SEC_MS);
	alert_setup_free(s);
}

/* Every key of a user rule lands in its struct alert_rule. */
static void test_user_rule(void **state)
{
	struct alert_rule defs[16];
	size_t ndef = alert_default_rules(defs, 16);
	struct alert_setup *s = build(
		ALERTS
		"    rules:\n"
		"      - name: CheckoutSlow\n"
		"        expr: 'storekeep_http_request_duration_seconds{route="
		"\"checkout\", pool=~\"shop.*\"}'\n"
		"        function: quantile\n"
		"        q: 0.99\n"
		"        window: 5m\n"
		"        op: \">\"\n"
		"        threshold: 2\n"
		"        for: 5m\n"
		"        keep_firing_for: 10m\n"
		"        repeat: 4h\n"
		"        severity: critical\n"
		"        labels: {team: shop}\n"
		"        summary: \"checkout p99 is {{value|duration}}\"\n"
		"      - name: ApiErrors\n"
		"        expr: 'storekeep_route_responses_total{class=\"5xx\"}'\n"
		"        function: increase\n"
		"        group: sum\n"
		"        by: [route]\n"
		"        plus:\n"
		"          expr: other_total\n"
		"          function: rate\n"
		"          window: 2m\n"
		"          group: sum\n"
		"          by: [route]\n"
		"        over:\n"
		"          expr: 'storekeep_route_responses_total{class!=\"1xx\"}'\n"
		"          function: count_above\n"
		"          le: 0.5\n"
		"          group: max\n"
		"          by: [route]\n"
		"        op: \"<=\"\n"
		"        threshold: 0.05\n"
		"        enabled: false\n"
		"      - name: DiskSoon\n"
		"        expr: avail_bytes\n"
		"        function: predict_linear\n"
		"        horizon: 24h\n"
		"        window: 6h\n"
		"        op: \"<\"\n"
		"        threshold: 0\n");
	const struct alert_rule *r;

	assert_int_equal(s->nrules, ndef + 3);
	/* The operator's rules come after the defaults, in file order. */
	assert_string_equal(s->rules[ndef].name, "CheckoutSlow");
	assert_string_equal(s->rules[ndef + 2].name, "DiskSoon");

	r = rule(s, "CheckoutSlow");
	assert_false(r->disabled);
	assert_int_equal(r->kind, ALERT_RULE_THRESHOLD);
	assert_string_equal(r->expr.metric,
			    "storekeep_http_request_duration_seconds");
	assert_int_equal(r->expr.nmatchers, 2);
	assert_string_equal(r->expr.matchers[0].name, "route");
	assert_int_equal(r->expr.matchers[0].op, ALERT_MATCH_EQ);
	assert_string_equal(r->expr.matchers[0].value, "checkout");
	assert_string_equal(r->expr.matchers[1].name, "pool");
	assert_int_equal(r->expr.matchers[1].op, ALERT_MATCH_RE);
	assert_string_equal(r->expr.matchers[1].value, "shop.*");
	assert_int_equal(r->expr.fn, ALERT_FN_QUANTILE);
	assert_true(r->expr.q == 0.99);
	assert_int_equal(r->expr.window_ms, 5 * MIN_MS);
	assert_int_equal(r->expr.group, ALERT_GROUP_NONE);
	assert_int_equal(r->expr.nby, 0);
	assert_null(r->plus.metric);
	assert_null(r->over.metric);
	assert_int_equal(r->op, ALERT_OP_GT);
	assert_true(r->threshold == 2);
	assert_int_equal(r->for_ms, 5 * MIN_MS);
	assert_int_equal(r->keep_firing_for_ms, 10 * MIN_MS);
	assert_int_equal(r->repeat_ms, 4 * HOUR_MS);
	assert_int_equal(r->severity, ALERT_SEV_CRITICAL);
	assert_int_equal(r->nlabels, 1);
	assert_string_equal(r->labels[0].name, "team");
	assert_string_equal(r->labels[0].value, "shop");
	assert_string_equal(r->summary, "checkout p99 is {{value|duration}}");

	r = rule(s, "ApiErrors");
	assert_true(r->disabled);
	assert_int_equal(r->expr.fn, ALERT_FN_INCREASE);
	assert_int_equal(r->expr.window_ms, MIN_MS);
	assert_int_equal(r->expr.group, ALERT_GROUP_SUM);
	assert_int_equal(r->expr.nby, 1);
	assert_string_equal(r->expr.by[0], "route");
	assert_string_equal(r->plus.metric, "other_total");
	assert_int_equal(r->plus.nmatchers, 0);
	assert_int_equal(r->plus.fn, ALERT_FN_RATE);
	assert_int_equal(r->plus.window_ms, 2 * MIN_MS);
	assert_string_equal(r->over.metric, "storekeep_route_responses_total");
	assert_int_equal(r->over.nmatchers, 1);
	assert_int_equal(r->over.matchers[0].op, ALERT_MATCH_NE);
	assert_string_equal(r->over.matchers[0].value, "1xx");
	assert_int_equal(r->over.fn, ALERT_FN_COUNT_ABOVE);
	assert_true(r->over.le == 0.5);
	assert_int_equal(r->over.group, ALERT_GROUP_MAX);
	assert_string_equal(r->over.by[0], "route");
	assert_int_equal(r->op, ALERT_OP_LE);
	assert_true(r->threshold == 0.05);
	assert_int_equal(r->severity, ALERT_SEV_WARNING);
	assert_int_equal(r->for_ms, 0);
	assert_int_equal(r->repeat_ms, 0);
	assert_int_equal(r->nlabels, 0);
	assert_null(r->summary);

	r = rule(s, "DiskSoon");
	assert_int_equal(r->expr.fn, ALERT_FN_PREDICT_LINEAR);
	assert_int_equal(r->expr.horizon_ms, 24 * HOUR_MS);
	assert_int_equal(r->expr.window_ms, 6 * HOUR_MS);
	assert_int_equal(r->op, ALERT_OP_LT);
	alert_setup_free(s);
}

/* SLOs become burn-rate rules, after every other rule. */
static void test_slo_rules(void **state)
{
	struct alert_rule defs[16];
	size_t ndef = alert_default_rules(defs, 16);
	struct alert_setup *s = build(
		MIN_POOLS "routes:\n"
		"  - {name: checkout, path: /checkout, pool: shop}\n"
		"  - {name: api, path: /api, pool: shop}\n"
		"monitor:\n  alerts:\n"
		       "    rules:\n"
		       "      - {name: Mine, expr: up, op: \"==\", threshold: 0}\n"
		       "    slos:\n"
		       "      - name: checkout\n"
		       "        route: checkout\n"
		       "        objective: 0.999\n"
		       "        latency: 2s\n"
		       "        labels: {team: shop}\n"
		       "      - name: api\n"
		       "        route: api\n"
		       "        objective: 0.99\n"
		       "        windows:\n"
		       "          - {long: 2h, short: 10m, factor: 10, for: 1m, "
		       "severity: critical}\n");
	const struct alert_rule *r;

	assert_int_equal(s->nrules, ndef + 1 + 2 + 1);
	assert_string_equal(s->rules[ndef + 1].name, "SLOBurnRate:checkout:1h5m");
	assert_string_equal(s->rules[ndef + 2].name,
			    "SLOBurnRate:checkout:6h30m");
	assert_string_equal(s->rules[ndef + 3].name, "SLOBurnRate:api:2h10m");

	r = rule(s, "SLOBurnRate:checkout:1h5m");
	assert_int_equal(r->kind, ALERT_RULE_BURN);
	assert_true(r->objective == 0.999);
	assert_true(r->threshold == 14.4);
	assert_int_equal(r->severity, ALERT_SEV_CRITICAL);
	assert_int_equal(r->expr.window_ms, HOUR_MS);
	assert_int_equal(r->short_window_ms, 5 * MIN_MS);
	/* latency: the slow responses are added. */
	assert_non_null(r->plus.metric);
	assert_true(r->plus.le == 2.0);
	assert_string_equal(label(r->labels, r->nlabels, "slo"), "checkout");
	assert_string_equal(label(r->labels, r->nlabels, "team"), "shop");
	r = rule(s, "SLOBurnRate:checkout:6h30m");
	assert_int_equal(r->severity, ALERT_SEV_WARNING);
	assert_true(r->threshold == 6);

	r = rule(s, "SLOBurnRate:api:2h10m");
	assert_true(r->objective == 0.99);
	assert_true(r->threshold == 10);
	assert_int_equal(r->for_ms, MIN_MS);
	assert_int_equal(r->severity, ALERT_SEV_CRITICAL);
	assert_int_equal(r->short_window_ms, 10 * MIN_MS);
	assert_null(r->plus.metric);
	assert_null(label(r->labels, r->nlabels, "team"));
	alert_setup_free(s);
}

/* Each notifier type, with its own keys and the common ones. */
static void test_notifiers(void **state)
{
	char *pw = write_tmp("smtp-password", "s3cret\n", 0600);
	char *yaml = fmt(
		ALERTS "    max_inflight: 2\n"
		       "    notifiers:\n"
		       "      - name: hook\n"
		       "        type: webhook\n"
		       "        format: alertmanager\n"
		       "        url: http://127.0.0.1:9093\n"
		       "        headers: [\"Authorization: Bearer x\"]\n"
		       "        ca_file: /etc/ssl/ca.pem\n"
		       "        resend: 30s\n"
		       "        min_severity: warning\n"
		       "        send_resolved: false\n"
		       "        timeout: 3s\n"
		       "        max_attempts: 7\n"
		       "        backoff: 2s\n"
		       "        backoff_max: 1m\n"
		       "        queue: 10\n"
		       "      - name: mail\n"
		       "        type: email\n"
		       "        url: smtp://mail.example:587\n"
		       "        tls: all\n"
		       "        username: storekeep\n"
		       "        password_file: %s\n"
		       "        from: storekeep@shop.example\n"
		       "        to: [ops@shop.example, dev@shop.example]\n"
		       "        subject_prefix: \"[shop]\"\n"
		       "      - name: pager\n"
		       "        type: command\n"
		       "        command: [/usr/local/bin/page, --team, shop]\n",
		pw);
	struct alert_setup *s = build(yaml);
	const struct notify_channel *c;

	assert_int_equal(s->notify.nchannels, 3);
	assert_int_equal(s->notify.max_inflight, 2);

	c = &s->notify.channels[0];
	assert_string_equal(c->name, "hook");
	assert_int_equal(c->type, NOTIFY_WEBHOOK);
	assert_int_equal(c->format, NOTIFY_FORMAT_ALERTMANAGER);
	assert_string_equal(c->url, "http://127.0.0.1:9093");
	assert_int_equal(c->nheaders, 1);
	assert_string_equal(c->headers[0], "Authorization: Bearer x");
	assert_string_equal(c->ca_file, "/etc/ssl/ca.pem");
	assert_int_equal(c->resend_ms, 30 * SEC_MS);
	assert_string_equal(c->min_severity, "warning");
	assert_true(c->skip_resolved);
	assert_int_equal(c->timeout_ms, 3 * SEC_MS);
	assert_int_equal(c->max_attempts, 7);
	assert_int_equal(c->backoff_ms, 2 * SEC_MS);
	assert_int_equal(c->backoff_max_ms, MIN_MS);
	assert_int_equal(c->queue_max, 10);
	assert_null(c->password);

	c = &s->notify.channels[1];
	assert_string_equal(c->name, "mail");
	assert_int_equal(c->type, NOTIFY_EMAIL);
	assert_string_equal(c->url, "smtp://mail.example:587");
	assert_int_equal(c->tls, NOTIFY_TLS_ALL);
	assert_string_equal(c->username, "storekeep");
	assert_string_equal(c->password, "s3cret");
	assert_string_equal(c->from, "storekeep@shop.example");
	assert_int_equal(c->nto, 2);
	assert_string_equal(c->to[1], "dev@shop.example");
	assert_string_equal(c->subject_prefix, "[shop]");
	/* The defaults of the common keys. */
	assert_string_equal(c->min_severity, "info");
	assert_false(c->skip_resolved);
	assert_int_equal(c->timeout_ms, 10 * SEC_MS);
	assert_int_equal(c->max_attempts, 5);
	assert_int_equal(c->backoff_ms, SEC_MS);
	assert_int_equal(c->backoff_max_ms, 5 * MIN_MS);
	assert_int_equal(c->queue_max, 100);

	c = &s->notify.channels[2];
	assert_string_equal(c->name, "pager");
	assert_int_equal(c->type, NOTIFY_COMMAND);
	assert_int_equal(c->nargv, 3);
	assert_string_equal(c->argv[0], "/usr/local/bin/page");
	assert_string_equal(c->argv[2], "shop");
	alert_setup_free(s);
	free(yaml);
	free(pw);
}

/* Errors name the file, the line and the key to fix. */
/* Without routes every request is on route "default". */
static void build_ok_default_slo(void)
{
	struct alert_setup *s = build(ALERTS "    slos:\n"
				      "      - {name: all, route: default, "
				      "objective: 0.99}\n");

	alert_setup_free(s);
}

static void test_errors(void **state)
{
	char *pw644 = write_tmp("pw644", "x\n", 0644);
	char *pwempty = write_tmp("pwempty", "", 0600);
	char *missing = fmt("%s/no-such-file", tmpdir);

	/* An SLO on a route that does not exist would never have data. */
	build_err(ALERTS "    slos:\n"
			 "      - {name: s, route: chekout, objective: 0.99}\n",
		  "storekeep.yaml:9: monitor.alerts.slos[0].route: there is no "
		  "route named \"chekout\" (without routes, every request is "
		  "on route \"default\")");
	build_ok_default_slo();
	build_err(ALERTS "    rules:\n"
			 "      - name: A\n"
			 "        expr: 'up{a=\"x\"'\n"
			 "        op: \">\"\n"
			 "        threshold: 1\n",
		  "storekeep.yaml:10: monitor.alerts.rules[0].expr: ");
	build_err(ALERTS "    rules:\n"
			 "      - {name: A, expr: up, op: \">\", threshold: 1}\n"
			 "      - name: B\n"
			 "        expr: up\n"
			 "        op: \">\"\n"
			 "        threshold: 1\n"
			 "        over:\n"
			 "          expr: 'x{a=~\"(\"}'\n",
		  "storekeep.yaml:15: monitor.alerts.rules[1].over.expr: "
		  "matcher a: bad regex");
	build_err(ALERTS "    rules:\n"
			 "      - {name: A, expr: 'up', op: \">\", threshold: 1}\n"
			 "      - name: B\n"
			 "        expr: up\n"
			 "        op: \">\"\n"
			 "        threshold: 1\n"
			 "        plus: {expr: '{job=\"x\"}'}\n",
		  "storekeep.yaml:14: monitor.alerts.rules[1].plus.expr: needs "
		  "a metric name before the matchers");
	build_err(ALERTS "    defaults:\n"
			 "      HostCPUHigh: {enabled: false}\n"
			 "      CPUHigh: {enabled: false}\n",
		  "storekeep.yaml:10: monitor.alerts.defaults.CPUHigh: no "
		  "built-in rule of that name (they are BackendDown, PoolDown, ");
	build_err(ALERTS "    rules:\n"
			 "      - {name: A, expr: up, op: \">\", threshold: 1}\n"
			 "      - {name: HighLatency, expr: up, op: \">\", "
			 "threshold: 1}\n",
		  "storekeep.yaml:10: monitor.alerts.rules[1].name: "
		  "\"HighLatency\" is a built-in rule; retune it under "
		  "monitor.alerts.defaults instead");
	build_err(ALERTS "    rules:\n"
			 "      - name: A\n"
			 "        expr: up\n"
			 "        op: \">\"\n"
			 "        threshold: 1\n"
			 "        summary: \"{{value|nope}}\"\n",
		  "storekeep.yaml:13: monitor.alerts.rules[0].summary: rule A: ");
	build_err(ALERTS "    defaults:\n"
			 "      HighLatency: {summary: \"{{value|nope}}\"}\n",
		  "storekeep.yaml:9: monitor.alerts.defaults.HighLatency.summary: "
		  "rule HighLatency: summary: bad item");
	build_err(ALERTS "    rules:\n"
			 "      - name: A\n"
			 "        expr: up\n"
			 "        group: sum\n"
			 "        by: [a.b]\n"
			 "        op: \">\"\n"
			 "        threshold: 1\n",
		  "storekeep.yaml:9: monitor.alerts.rules[0]: rule A: expr: bad "
		  "by label \"a.b\"");
	build_err(ALERTS "    notifiers:\n"
			 "      - name: n\n"
			 "        type: email\n"
			 "        url: smtp://x\n"
			 "        from: nobody\n"
			 "        to: [a@b]\n",
		  "storekeep.yaml:9: monitor.alerts.notifiers[0]: notifier n: "
		  "from must be an address");

	/* Password files: only the owner may read them; they must exist and
	 * hold a password. */
	{
		char *want = fmt("storekeep.yaml:15: "
				 "monitor.alerts.notifiers[0].password_file: "
				 "%s is readable by others (mode 0644); run "
				 "chmod 600 %s",
				 pw644, pw644);

		build_err_free(fmt(ALERTS "    notifiers:\n"
					  "      - name: n\n"
					  "        type: email\n"
					  "        url: smtp://x\n"
					  "        from: a@b\n"
					  "        to: [c@d]\n"
					  "        username: u\n"
					  "        password_file: %s\n",
				   pw644),
			       want);
		free(want);
		want = fmt("storekeep.yaml:15: "
			   "monitor.alerts.notifiers[0].password_file: cannot "
			   "open %s: %s",
			   missing, strerror(ENOENT));
		build_err_free(fmt(ALERTS "    notifiers:\n"
					  "      - name: n\n"
					  "        type: email\n"
					  "        url: smtp://x\n"
					  "        from: a@b\n"
					  "        to: [c@d]\n"
					  "        username: u\n"
					  "        password_file: %s\n",
				   missing),
			       want);
		free(want);
		want = fmt("storekeep.yaml:15: "
			   "monitor.alerts.notifiers[0].password_file: %s is "
			   "not a regular file",
			   tmpdir);
		build_err_free(fmt(ALERTS "    notifiers:\n"
					  "      - name: n\n"
					  "        type: email\n"
					  "        url: smtp://x\n"
					  "        from: a@b\n"
					  "        to: [c@d]\n"
					  "        username: u\n"
					  "        password_file: %s\n",
				   tmpdir),
			       want);
		free(want);
		want = fmt("storekeep.yaml:15: "
			   "monitor.alerts.notifiers[0].password_file: %s must "
			   "hold the password on one line",
			   pwempty);
		build_err_free(fmt(ALERTS "    notifiers:\n"
					  "      - name: n\n"
					  "        type: email\n"
					  "        url: smtp://x\n"
					  "        from: a@b\n"
					  "        to: [c@d]\n"
					  "        username: u\n"
					  "        password_file: %s\n",
				   pwempty),
			       want);
		free(want);
	}
	free(pw644);
	free(pwempty);
	free(missing);
}

/* A setup built from one snapshot is independent of it and of the next:
 * two builds of the same config are equal, and each frees on its own. */
static void test_independent_builds(void **state)
{
	struct config *c = load(ALERTS "    rules:\n"
				       "      - {name: A, expr: 'up{a=\"b\"}', "
				       "op: \">\", threshold: 1}\n",
				"storekeep.yaml");
	struct alert_setup *a = NULL, *b = NULL;
	char err[ERRLEN];

	assert_int_equal(alert_setup_build(c, &a, err, sizeof(err)), 0);
	assert_int_equal(alert_setup_build(c, &b, err, sizeof(err)), 0);
	/* b must own its strings: with the config and a gone, reading them
	 * is a use-after-free if they were borrowed, which the ASan run of
	 * this test (make check) reports. */
	config_unref(c);
	alert_setup_free(a);
	assert_string_equal(rule(b, "A")->expr.matchers[0].value, "b");
	assert_string_equal(rule(b, "A")->expr.matchers[0].name, "a");
	alert_setup_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_absent_section),
		cmocka_unit_test(test_state_path),
		cmocka_unit_test(test_defaults_retuned),
		cmocka_unit_test(test_user_rule),
		cmocka_unit_test(test_slo_rules),
		cmocka_unit_test(test_notifiers),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_independent_builds),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
