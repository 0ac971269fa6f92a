/*
 * test_alert.c - monitor/alert.h: selectors, every function over a
 * window (on gauges, counters and histograms), grouping and ratios, the
 * state machine on an injected clock (pending, firing after `for`,
 * resolved, keep_firing_for damping, repeat interval), silences, the
 * state file across engine free/new, reload, SLO burn-rate math, the
 * linear-fit disk-full prediction and the default rules.
 *
 * Data comes from the in-memory source (alert_mem); notifications are
 * caught by the engine's send callback, so every count here is exact.
 */
#include <errno.h>
#include <math.h>
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

#include "monitor/alert.h"

#define T0	  UINT64_C(1700000000000)
#define SEC	  UINT64_C(1000)
#define MIN	  (60 * SEC)
#define HOUR	  (60 * MIN)
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define L(...)	  ((const struct metrics_label[]){__VA_ARGS__})
#define NL(...)                                                                \
	(sizeof((const struct metrics_label[]){__VA_ARGS__}) /                 \
	 sizeof(struct metrics_label))

/* --- helpers ------------------------------------------------------------- */

struct sink {
	json_t *batches;
};

static void sink_cb(void *ud, json_t *batch)
{
	struct sink *s = ud;

	json_array_append(s->batches, batch);
}

/* Alerts sent with status (and, if name is given, that alertname). */
static size_t sent(const struct sink *s, const char *status, const char *name)
{
	size_t i, j, n = 0;
	json_t *b, *a;

	json_array_foreach (s->batches, i, b) {
		json_array_foreach (b, j, a) {
			if (strcmp(json_string_value(
					   json_object_get(a, "status")),
				   status) != 0)
				continue;
			if (name && strcmp(json_string_value(
						   json_object_get(a, "name")),
					   name) != 0)
				continue;
			n++;
		}
	}
	return n;
}

struct fx {
	struct alert_mem *mem;
	struct alert_engine *e;
	struct sink sink;
	char dir[64];
	char path[128];
};

static struct alert_engine *engine(struct fx *f, const struct alert_rule *r,
				   size_t n, const char *path)
{
	struct alert_source src = alert_mem_source(f->mem);
	struct alert_engine_conf c = {
		.rules = r,
		.nrules = n,
		.state_path = path,
		.generator_url = "http://127.0.0.1:9/api/v1/alerts",
		.send = sink_cb,
		.send_ud = &f->sink,
	};
	struct alert_engine *e = NULL;
	char err[256] = "";
	int rc = alert_engine_new(&c, &src, &e, err, sizeof(err));

	if (rc != 0)
		fail_msg("alert_engine_new: %s", err);
	return e;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->mem = alert_mem_new();
	f->sink.batches = json_array();
	snprintf(f->dir, sizeof(f->dir), "/tmp/sk-alert-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/alerts.json", f->dir);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	char p[200];

	alert_engine_free(f->e);
	alert_mem_free(f->mem);
	json_decref(f->sink.batches);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s.bad", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* The alert of rule name whose label k is v (k NULL: the first). */
static json_t *find_alert(json_t *root, const char *name, const char *k,
			  const char *v)
{
	size_t i;
	json_t *a;

	json_array_foreach (json_object_get(root, "alerts"), i, a) {
		json_t *labels = json_object_get(a, "labels");

		if (strcmp(json_string_value(json_object_get(a, "name")), name))
			continue;
		if (k &&
		    (!json_is_string(json_object_get(labels, k)) ||
		     strcmp(json_string_value(json_object_get(labels, k)), v)))
			continue;
		return a;
	}
	return NULL;
}

static const char *state_of(struct alert_engine *e, const char *name,
			    const char *k, const char *v)
{
	static char st[32];
	json_t *root = alert_engine_json(e);
	json_t *a = find_alert(root, name, k, v);

	snprintf(st, sizeof(st), "%s",
		 a ? json_string_value(json_object_get(a, "state"))
		   : "inactive");
	json_decref(root);
	return st;
}

static double value_of(struct alert_engine *e, const char *name, const char *k,
		       const char *v)
{
	json_t *root = alert_engine_json(e);
	json_t *a = find_alert(root, name, k, v);
	double x = NAN;

	if (a && json_is_number(json_object_get(a, "value")))
		x = json_number_value(json_object_get(a, "value"));
	json_decref(root);
	return x;
}

/* A rule that always holds, to read a query's value. */
static struct alert_rule probe_rule(const char *name, struct alert_query q)
{
	return (struct alert_rule){
		.name = name,
		.expr = q,
		.op = ALERT_OP_GE,
		.threshold = -1e300,
		.severity = ALERT_SEV_INFO,
	};
}

static size_t nalerts(struct alert_engine *e)
{
	json_t *root = alert_engine_json(e);
	size_t n = json_array_size(json_object_get(root, "alerts"));

	json_decref(root);
	return n;
}

/* --- selectors ----------------------------------------------------------- */

static void test_selector_parse(void **state)
{
	struct alert_selector s;
	char err[200];

	(void)state;
	assert_int_equal(
		alert_selector_parse(
			"storekeep_route_responses_total{route=\"checkout\", "
			"class=~\"5..\",pool!=x, a!~\"b\\\"c\"}",
			&s, err, sizeof(err)),
		0);
	assert_string_equal(s.metric, "storekeep_route_responses_total");
	assert_int_equal(s.nmatchers, 4);
	assert_string_equal(s.matchers[0].name, "route");
	assert_int_equal(s.matchers[0].op, ALERT_MATCH_EQ);
	assert_string_equal(s.matchers[0].value, "checkout");
	assert_int_equal(s.matchers[1].op, ALERT_MATCH_RE);
	assert_string_equal(s.matchers[1].value, "5..");
	assert_int_equal(s.matchers[2].op, ALERT_MATCH_NE);
	assert_string_equal(s.matchers[2].value, "x");
	assert_int_equal(s.matchers[3].op, ALERT_MATCH_NRE);
	assert_string_equal(s.matchers[3].value, "b\"c");
	alert_selector_fini(&s);

	/* Matchers alone, as `storekeep ctl silence add` takes them. */
	assert_int_equal(
		alert_selector_parse("alertname=BackendDown,pool=~sh.*", &s,
				     err, sizeof(err)),
		0);
	assert_null(s.metric);
	assert_int_equal(s.nmatchers, 2);
	assert_string_equal(s.matchers[1].value, "sh.*");
	alert_selector_fini(&s);

	assert_int_equal(alert_selector_parse("up", &s, err, sizeof(err)), 0);
	assert_string_equal(s.metric, "up");
	assert_int_equal(s.nmatchers, 0);
	alert_selector_fini(&s);

	assert_int_equal(
		alert_selector_parse("up{a=\"x\"", &s, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(
		alert_selector_parse("up{a<\"x\"}", &s, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(
		alert_selector_parse("{a=~\"(\"}", &s, err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "regex"));
	assert_int_equal(
		alert_selector_parse("{a=\"x\"} junk", &s, err, sizeof(err)),
		-EINVAL);
}

static void test_rule_check(void **state)
{
	struct alert_rule r = probe_rule("X", (struct alert_query){
						      .metric = "m",
						      .window_ms = MIN,
					      });
	static const struct alert_matcher bad_re[] = {
		{"a", ALERT_MATCH_RE, "[z-a]"}};
	char err[256];

	(void)state;
	assert_int_equal(alert_rule_check(&r, err, sizeof(err)), 0);
	r.expr.window_ms = 0;
	assert_int_equal(alert_rule_check(&r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "window"));
	r.expr.window_ms = MIN;
	r.expr.matchers = bad_re;
	r.expr.nmatchers = 1;
	assert_int_equal(alert_rule_check(&r, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "rule X"));
	r.expr.nmatchers = 0;
	r.summary = "{{value|weird}}";
	assert_int_equal(alert_rule_check(&r, err, sizeof(err)), -EINVAL);
	r.summary = NULL;
	r.expr.fn = ALERT_FN_QUANTILE;
	r.expr.q = 1.5;
	assert_int_equal(alert_rule_check(&r, err, sizeof(err)), -EINVAL);
	r.expr.q = 0.5;
	r.kind = ALERT_RULE_BURN;
	assert_int_equal(alert_rule_check(&r, err, sizeof(err)), -EINVAL);
	r.kind = ALERT_RULE_THRESHOLD;
	r.labels = L({"alertname", "x"});
	r.nlabels = 1;
	assert_int_equal(alert_rule_check(&r, err, sizeof(err)), -EINVAL);
}

/* --- functions ----------------------------------------------------------- */

static void test_fn_gauge(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *name;
		enum alert_fn fn;
		double want;
	} cases[] = {
		{"avg", ALERT_FN_AVG, 6},      {"min", ALERT_FN_MIN, 3},
		{"max", ALERT_FN_MAX, 9},      {"last", ALERT_FN_LAST, 9},
		{"q50", ALERT_FN_QUANTILE, 6},
	};
	struct alert_rule r[NELEMS(cases)];

	/* x = i at T0 + 10 s * i; the window [T0+30s, T0+90s] holds 3..9. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(alert_mem_add(f->mem, "x", L({"k", "v"}), 1,
					       T0 + (uint64_t)i * 10 * SEC, i),
				 0);
	assert_int_equal(alert_mem_add(f->mem, "x", L({"k", "v"}), 1, T0, 1),
			 -EINVAL); /* out of order */
	for (size_t i = 0; i < NELEMS(cases); i++)
		r[i] = probe_rule(cases[i].name,
				  (struct alert_query){.metric = "x",
						       .fn = cases[i].fn,
						       .q = 0.5,
						       .window_ms = MIN});
	f->e = engine(f, r, NELEMS(r), NULL);
	assert_int_equal(alert_engine_eval(f->e, T0 + 90 * SEC), 0);
	for (size_t i = 0; i < NELEMS(cases); i++)
		assert_true(fabs(value_of(f->e, cases[i].name, "k", "v") -
				 cases[i].want) < 1e-12);
	/* A window with no sample gives no value, hence no alert. */
	assert_int_equal(alert_engine_eval(f->e, T0 + 10 * MIN), 0);
	assert_int_equal(nalerts(f->e), NELEMS(cases)); /* resolved, listed */
	assert_string_equal(state_of(f->e, "avg", "k", "v"), "resolved");
}

static void test_fn_counter(void **state)
{
	struct fx *f = *state;
	/* 0 10 20 30, restart, 5 15 25 every 10 s. */
	static const double v[] = {0, 10, 20, 30, 5, 15, 25};
	struct alert_rule r[2];

	for (size_t i = 0; i < NELEMS(v); i++)
		alert_mem_add(f->mem, "c_total", NULL, 0, T0 + i * 10 * SEC,
			      v[i]);
	r[0] = probe_rule("inc", (struct alert_query){.metric = "c_total",
						      .fn = ALERT_FN_INCREASE,
						      .window_ms = MIN});
	r[1] = probe_rule("rate", (struct alert_query){.metric = "c_total",
						       .fn = ALERT_FN_RATE,
						       .window_ms = MIN});
	f->e = engine(f, r, 2, NULL);
	alert_engine_eval(f->e, T0 + 60 * SEC);
	/* 10 + 10 + 10 + 5 (the restart counts from 0) + 10 + 10 */
	assert_true(fabs(value_of(f->e, "inc", NULL, NULL) - 55) < 1e-9);
	assert_true(fabs(value_of(f->e, "rate", NULL, NULL) - 55.0 / 60) <
		    1e-9);
}

static void test_fn_histogram(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *name;
		enum alert_fn fn;
		double q, le, want;
	} cases[] = {
		{"q50", ALERT_FN_QUANTILE, 0.5, 0, 0.001},
		{"q90", ALERT_FN_QUANTILE, 0.9, 0, 0.001},
		{"q91", ALERT_FN_QUANTILE, 0.91, 0, 2},
		{"q99", ALERT_FN_QUANTILE, 0.99, 0, 2},
		{"max", ALERT_FN_MAX, 0, 0, 2},
		{"min", ALERT_FN_MIN, 0, 0, 0.001},
		{"avg", ALERT_FN_AVG, 0, 0, (90 * 0.001 + 10 * 2) / 100},
		{"inc", ALERT_FN_INCREASE, 0, 0, 100},
		{"rate", ALERT_FN_RATE, 0, 0, 100.0 / 60},
		{"slow", ALERT_FN_COUNT_ABOVE, 0, 1.0, 10},
		{"all", ALERT_FN_COUNT_ABOVE, 0, 0.0005, 100},
	};
	struct alert_rule r[NELEMS(cases)];
	const struct metrics_label *lab = L({"route", "checkout"});

	/* Outside the window: 100 observations of 5 s. */
	alert_mem_observe(f->mem, "lat_seconds", lab, 1, 6, T0 - 100 * SEC,
			  5000000, 100);
	alert_mem_observe(f->mem, "lat_seconds", lab, 1, 6, T0 + 10 * SEC, 1000,
			  90);
	alert_mem_observe(f->mem, "lat_seconds", lab, 1, 6, T0 + 20 * SEC,
			  2000000, 10);
	for (size_t i = 0; i < NELEMS(cases); i++)
		r[i] = probe_rule(cases[i].name,
				  (struct alert_query){.metric = "lat_seconds",
						       .fn = cases[i].fn,
						       .q = cases[i].q,
						       .le = cases[i].le,
						       .window_ms = MIN});
	f->e = engine(f, r, NELEMS(r), NULL);
	alert_engine_eval(f->e, T0 + 30 * SEC);
	for (size_t i = 0; i < NELEMS(cases); i++) {
		double got = value_of(f->e, cases[i].name, "route", "checkout");

		/* Histogram values are bucket midpoints: within 0.4%. */
		if (fabs(got - cases[i].want) > cases[i].want * 0.004 + 1e-12)
			fail_msg("%s: got %g want %g", cases[i].name, got,
				 cases[i].want);
	}
}

static void test_fn_not_for_histogram(void **state)
{
	struct fx *f = *state;
	struct alert_rule r = probe_rule(
		"bad", (struct alert_query){.metric = "h",
					    .fn = ALERT_FN_PREDICT_LINEAR,
					    .window_ms = MIN});
	json_t *root, *rule;

	alert_mem_observe(f->mem, "h", NULL, 0, 0, T0, 5, 1);
	f->e = engine(f, &r, 1, NULL);
	assert_int_equal(alert_engine_eval(f->e, T0 + SEC), 1);
	root = alert_engine_json(f->e);
	rule = json_array_get(json_object_get(root, "rules"), 0);
	assert_string_equal(json_string_value(json_object_get(rule, "health")),
			    "error");
	assert_non_null(
		strstr(json_string_value(json_object_get(rule, "last_error")),
		       "histogram"));
	json_decref(root);
}

/* --- grouping, ratios, templates ---------------------------------------- */

static void test_error_ratio_by_route(void **state)
{
	struct fx *f = *state;
	struct alert_rule r[16];
	size_t n = alert_default_rules(r, NELEMS(r));
	struct alert_rule *err = NULL;

	for (size_t i = 0; i < n; i++)
		if (strcmp(r[i].name, "HighErrorRate") == 0)
			err = &r[i];
	assert_non_null(err);
	err->for_ms = 0;
	/* Route a: 1000 2xx and 50 5xx over two pools in the last minute;
	 * route b: 100 2xx and no 5xx series at all. */
	for (int i = 0; i <= 6; i++) {
		uint64_t t = T0 + (uint64_t)i * 10 * SEC;

		alert_mem_add(
			f->mem, "storekeep_route_responses_total",
			L({"route", "a"}, {"pool", "p1"}, {"class", "2xx"}), 3,
			t, i * 100.0);
		alert_mem_add(
			f->mem, "storekeep_route_responses_total",
			L({"route", "a"}, {"pool", "p2"}, {"class", "2xx"}), 3,
			t, 1e6 + i * (400.0 / 6));
		alert_mem_add(
			f->mem, "storekeep_route_responses_total",
			L({"route", "a"}, {"pool", "p1"}, {"class", "5xx"}), 3,
			t, i * (50.0 / 6));
		alert_mem_add(
			f->mem, "storekeep_route_responses_total",
			L({"route", "b"}, {"pool", "p1"}, {"class", "2xx"}), 3,
			t, i * (100.0 / 6));
	}
	f->e = engine(f, err, 1, NULL);
	alert_engine_eval(f->e, T0 + 60 * SEC);
	assert_string_equal(state_of(f->e, "HighErrorRate", "route", "a"),
			    "firing");
	assert_true(fabs(value_of(f->e, "HighErrorRate", "route", "a") -
			 50.0 / 1050) < 1e-9);
	assert_string_equal(state_of(f->e, "HighErrorRate", "route", "b"),
			    "inactive");
	{
		/* Grouped labels only, plus alertname and severity. */
		json_t *root = alert_engine_json(f->e);
		json_t *a = find_alert(root, "HighErrorRate", "route", "a");
		json_t *labels = json_object_get(a, "labels");

		assert_int_equal(json_object_size(labels), 3);
		assert_string_equal(
			json_string_value(json_object_get(labels, "severity")),
			"critical");
		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(a, "annotations"), "summary")),
			"route a: 4.76% of responses are 5xx");
		json_decref(root);
	}
}

static void test_group_ops_and_template(void **state)
{
	struct fx *f = *state;
	static const char *const by_pool[] = {"pool"};
	static const struct {
		const char *name;
		enum alert_group g;
		double want;
	} cases[] = {
		{"sum", ALERT_GROUP_SUM, 6},	 {"avg", ALERT_GROUP_AVG, 2},
		{"min", ALERT_GROUP_MIN, 1},	 {"max", ALERT_GROUP_MAX, 3},
		{"count", ALERT_GROUP_COUNT, 3},
	};
	struct alert_rule r[NELEMS(cases) + 1];
	json_t *root;

	for (int b = 1; b <= 3; b++) {
		char name[8];

		snprintf(name, sizeof(name), "b%d", b);
		alert_mem_add(f->mem, "g",
			      L({"pool", "shop"}, {"backend", name}), 2, T0, b);
	}
	alert_mem_add(f->mem, "g", L({"pool", "other"}, {"backend", "z"}), 2,
		      T0, 100);
	for (size_t i = 0; i < NELEMS(cases); i++) {
		r[i] = probe_rule(cases[i].name,
				  (struct alert_query){.metric = "g",
						       .fn = ALERT_FN_LAST,
						       .window_ms = MIN,
						       .group = cases[i].g,
						       .by = by_pool,
						       .nby = 1});
	}
	r[NELEMS(cases)] =
		probe_rule("tmpl", (struct alert_query){.metric = "g",
							.fn = ALERT_FN_LAST,
							.window_ms = MIN});
	r[NELEMS(cases)].summary = "{{backend}}/{{pool}}/{{nope}}: {{value}} "
				   "{{ value | pct }} {{value|bytes}} "
				   "{{value|duration}}";
	r[NELEMS(cases)].labels = L({"team", "shop"});
	r[NELEMS(cases)].nlabels = 1;
	f->e = engine(f, r, NELEMS(r), NULL);
	alert_engine_eval(f->e, T0 + SEC);
	for (size_t i = 0; i < NELEMS(cases); i++)
		assert_true(fabs(value_of(f->e, cases[i].name, "pool", "shop") -
				 cases[i].want) < 1e-12);
	root = alert_engine_json(f->e);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(find_alert(root, "tmpl",
							       "backend", "z"),
						    "annotations"),
				    "summary")),
			    "z/other/: 100 10000% 100 B 1m 40s");
	json_decref(root);
}

/* --- linear fit: the disk-full prediction -------------------------------- */

static void test_disk_full_prediction(void **state)
{
	struct fx *f = *state;
	struct alert_rule r[16];
	size_t n = alert_default_rules(r, NELEMS(r));
	struct alert_rule rules[2];
	const double gib = 1024.0 * 1024 * 1024;
	uint64_t now = T0 + 6 * HOUR;
	double t2z;

	/* "/" loses 5 GiB an hour from 100 GiB: 70 GiB left now, full in
	 * 14 h. "/srv" loses 1 GiB an hour: 94 GiB left, 94 h. Samples each
	 * minute over 6 hours, with a wobble that averages out. */
	for (uint64_t t = T0; t <= now; t += MIN) {
		double h = (double)(t - T0) / HOUR;
		double wob = ((t / MIN) % 2 ? 1 : -1) * 0.01 * gib;

		alert_mem_add(f->mem, "storekeep_host_filesystem_avail_bytes",
			      L({"mount", "/"}), 1, t,
			      (100 - 5 * h) * gib + wob);
		alert_mem_add(f->mem, "storekeep_host_filesystem_avail_bytes",
			      L({"mount", "/srv"}), 1, t, (100 - h) * gib);
	}
	for (size_t i = 0; i < n; i++)
		if (strcmp(r[i].name, "DiskFullPredicted") == 0)
			rules[0] = r[i];
	rules[0].for_ms = 0;
	rules[1] = probe_rule(
		"predict",
		(struct alert_query){
			.metric = "storekeep_host_filesystem_avail_bytes",
			.fn = ALERT_FN_PREDICT_LINEAR,
			.window_ms = 6 * HOUR,
			.horizon_ms = 24 * HOUR});
	f->e = engine(f, rules, 2, NULL);
	alert_engine_eval(f->e, now);
	assert_string_equal(state_of(f->e, "DiskFullPredicted", "mount", "/"),
			    "firing");
	t2z = value_of(f->e, "DiskFullPredicted", "mount", "/");
	assert_true(fabs(t2z - 14 * 3600.0) < 60);
	assert_string_equal(
		state_of(f->e, "DiskFullPredicted", "mount", "/srv"),
		"inactive");
	/* 70 GiB - 24 h * 5 GiB/h = -50 GiB; 94 - 24 = 70 GiB. */
	assert_true(fabs(value_of(f->e, "predict", "mount", "/") / gib + 50) <
		    0.01);
	assert_true(fabs(value_of(f->e, "predict", "mount", "/srv") / gib -
			 70) < 1e-6);
	{
		json_t *root = alert_engine_json(f->e);
		const char *s = json_string_value(json_object_get(
			json_object_get(find_alert(root, "DiskFullPredicted",
						   "mount", "/"),
					"annotations"),
			"summary"));

		assert_non_null(strstr(s, "full in 14h 0m"));
		json_decref(root);
	}
}

/* --- the state machine ------------------------------------------------- */

static struct alert_rule threshold_rule(const char *name, uint64_t for_ms,
					uint64_t keep_ms, uint64_t repeat_ms)
{
	struct alert_rule r = {
		.name = name,
		.expr = {.metric = "x", .fn = ALERT_FN_LAST, .window_ms = MIN},
		.op = ALERT_OP_GT,
		.threshold = 10,
		.for_ms = for_ms,
		.keep_firing_for_ms = keep_ms,
		.repeat_ms = repeat_ms,
		.severity = ALERT_SEV_CRITICAL,
		.summary = "x is {{value}}",
	};
	return r;
}

/* Feeds x = v at t and evaluates there. */
static void tick(struct fx *f, uint64_t t, double v)
{
	alert_mem_add(f->mem, "x", NULL, 0, t, v);
	assert_int_equal(alert_engine_eval(f->e, t), 0);
}

static void test_pending_firing_resolved(void **state)
{
	struct fx *f = *state;
	struct alert_rule r = threshold_rule("X", MIN, 0, 0);
	json_t *root, *a;

	f->e = engine(f, &r, 1, NULL);
	tick(f, T0, 5);
	tick(f, T0 + 10 * SEC, 5);
	assert_string_equal(state_of(f->e, "X", NULL, NULL), "inactive");
	tick(f, T0 + 30 * SEC, 20); /* first breach */
	assert_string_equal(state_of(f->e, "X", NULL, NULL), "pending");
	tick(f, T0 + 80 * SEC, 20); /* 50 s into `for` */
	assert_string_equal(state_of(f->e, "X", NULL, NULL), "pending");
	assert_int_equal(sent(&f->sink, "firing", NULL), 0);
	tick(f, T0 + 90 * SEC, 21); /* 60 s: fires */
	assert_string_equal(state_of(f->e, "X", NULL, NULL), "firing");
	assert_int_equal(sent(&f->sink, "firing", "X"), 1);
	root = alert_engine_json(f->e);
	a = find_alert(root, "X", NULL, NULL);
	assert_string_equal(json_string_value(json_object_get(a, "since")),
			    "2023-11-14T22:14:50.000Z");
	assert_string_equal(json_string_value(json_object_get(a, "active_at")),
			    "2023-11-14T22:13:50.000Z");
	assert_true(json_number_value(json_object_get(a, "value")) == 21);
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(a, "annotations"), "summary")),
		"x is 21");
	json_decref(root);
	tick(f, T0 + 100 * SEC, 30);
	assert_int_equal(sent(&f->sink, "firing", "X"), 1); /* no repeat */
	tick(f, T0 + 120 * SEC, 5);
	assert_string_equal(state_of(f->e, "X", NULL, NULL), "resolved");
	assert_int_equal(sent(&f->sink, "resolved", "X"), 1);
	{
		json_t *b = json_array_get(f->sink.batches, 1);
		json_t *x = json_array_get(b, 0);

		assert_string_equal(
			json_string_value(json_object_get(x, "endsAt")),
			"2023-11-14T22:15:20.000Z");
		assert_string_equal(
			json_string_value(json_object_get(x, "startsAt")),
			"2023-11-14T22:14:50.000Z");
		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(x, "labels"), "alertname")),
			"X");
		assert_int_equal(strlen(json_string_value(
					 json_object_get(x, "fingerprint"))),
				 16);
	}

	/* A breach shorter than `for` sends nothing and leaves no alert
	 * behind (the resolved one is forgotten after its keep time). */
	tick(f, T0 + 30 * MIN, 50);
	assert_string_equal(state_of(f->e, "X", NULL, NULL), "pending");
	tick(f, T0 + 30 * MIN + 10 * SEC, 1);
	assert_string_equal(state_of(f->e, "X", NULL, NULL), "inactive");
	assert_int_equal(nalerts(f->e), 0);
	assert_int_equal(sent(&f->sink, "firing", NULL), 1);
	assert_int_equal(sent(&f->sink, "resolved", NULL), 1);
}

/* A value that crosses the threshold at every other evaluation. */
static void flap(struct fx *f, uint64_t from, uint64_t to)
{
	int i = 0;

	for (uint64_t t = from; t < to; t += 10 * SEC, i++)
		tick(f, t, i % 2 ? 5 : 20);
}

static void test_keep_firing_for_damps_flapping(void **state)
{
	struct fx *f = *state;
	struct alert_rule r[2] = {threshold_rule("damped", 0, MIN, 0),
				  threshold_rule("raw", 0, 0, 0)};

	r[1].expr.metric = "x";
	f->e = engine(f, r, 2, NULL);
	flap(f, T0, T0 + 5 * MIN);
	/* Then it stays low: resolved a minute after the last breach. */
	for (uint64_t t = T0 + 5 * MIN; t <= T0 + 7 * MIN; t += 10 * SEC)
		tick(f, t, 1);
	assert_int_equal(sent(&f->sink, "firing", "damped"), 1);
	assert_int_equal(sent(&f->sink, "resolved", "damped"), 1);
	assert_string_equal(state_of(f->e, "damped", NULL, NULL), "resolved");
	/* Without damping, the same value pages at every breach. */
	assert_int_equal(sent(&f->sink, "firing", "raw"), 15);
	assert_int_equal(sent(&f->sink, "resolved", "raw"), 15);
	{
		json_t *root = alert_engine_json(f->e);
		json_t *a = find_alert(root, "damped", NULL, NULL);

		/* last breach at 4m40s; failing since 4m50s; + 1 min */
		assert_string_equal(
			json_string_value(json_object_get(a, "resolved_at")),
			"2023-11-14T22:19:10.000Z");
		json_decref(root);
	}
}

static void test_repeat_interval(void **state)
{
	struct fx *f = *state;
	struct alert_rule r = threshold_rule("R", 0, 0, MIN);

	f->e = engine(f, &r, 1, NULL);
	for (uint64_t t = T0; t < T0 + 200 * SEC; t += 10 * SEC)
		tick(f, t, 20);
	/* at 0, 60, 120 and 180 s */
	assert_int_equal(sent(&f->sink, "firing", "R"), 4);
	assert_int_equal(sent(&f->sink, "resolved", "R"), 0);
}

/* --- silences ------------------------------------------------------------ */

static void test_silences(void **state)
{
	struct fx *f = *state;
	struct alert_rule r[2] = {threshold_rule("A", 0, 0, 0),
				  threshold_rule("B", 0, 0, 0)};
	static const struct alert_matcher m_a[] = {
		{"alertname", ALERT_MATCH_EQ, "A"},
		{"severity", ALERT_MATCH_RE, "crit.*"}};
	static const struct alert_matcher m_bad[] = {
		{"alertname", ALERT_MATCH_RE, "("}};
	struct alert_silence s = {.matchers = m_a,
				  .nmatchers = 2,
				  .ends_at_ms = T0 + HOUR,
				  .created_by = "ops",
				  .comment = "maintenance"};
	char id[ALERT_SILENCE_ID_LEN + 1], id2[ALERT_SILENCE_ID_LEN + 1];
	char err[200];
	json_t *root, *a, *list;

	f->e = engine(f, r, 2, NULL);
	assert_int_equal(alert_silence_add(f->e, &s, T0, id, err, sizeof(err)),
			 0);
	assert_int_equal(strlen(id), ALERT_SILENCE_ID_LEN);

	tick(f, T0, 20);
	/* Both fire; only B is sent. */
	assert_string_equal(state_of(f->e, "A", NULL, NULL), "firing");
	assert_int_equal(sent(&f->sink, "firing", "A"), 0);
	assert_int_equal(sent(&f->sink, "firing", "B"), 1);
	root = alert_engine_json(f->e);
	a = find_alert(root, "A", NULL, NULL);
	assert_true(json_is_true(json_object_get(a, "silenced")));
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(a, "silenced_by"), 0)),
			    id);
	assert_true(json_is_false(json_object_get(
		find_alert(root, "B", NULL, NULL), "silenced")));
	list = json_object_get(root, "silences");
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(list, 0), "comment")),
			    "maintenance");
	json_decref(root);

	/* Deleting the silence lets the firing alert through. */
	assert_int_equal(alert_silence_del(f->e, id), 0);
	assert_int_equal(alert_silence_del(f->e, id), -ENOENT);
	tick(f, T0 + 10 * SEC, 20);
	assert_int_equal(sent(&f->sink, "firing", "A"), 1);

	/* A silence that expires goes from the list at the next eval. */
	s.ends_at_ms = T0 + 30 * SEC;
	assert_int_equal(alert_silence_add(f->e, &s, T0 + 20 * SEC, id2, err,
					   sizeof(err)),
			 0);
	list = alert_silence_list(f->e);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
	tick(f, T0 + 40 * SEC, 20);
	list = alert_silence_list(f->e);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	/* A silence starting while the alert fires: the resolution still
	 * goes out (its firing did). */
	s.ends_at_ms = T0 + HOUR;
	assert_int_equal(alert_silence_add(f->e, &s, T0 + 45 * SEC, id2, err,
					   sizeof(err)),
			 0);
	tick(f, T0 + 50 * SEC, 1);
	assert_int_equal(sent(&f->sink, "resolved", "A"), 1);

	/* Bad silences. */
	s.nmatchers = 0;
	assert_int_equal(alert_silence_add(f->e, &s, T0, id2, err, sizeof(err)),
			 -EINVAL);
	s.matchers = m_bad;
	s.nmatchers = 1;
	assert_int_equal(alert_silence_add(f->e, &s, T0, id2, err, sizeof(err)),
			 -EINVAL);
	s.matchers = m_a;
	s.ends_at_ms = T0 - 1;
	assert_int_equal(alert_silence_add(f->e, &s, T0, id2, err, sizeof(err)),
			 -EINVAL);
}

/* --- persistence --------------------------------------------------------- */

static void test_persistence(void **state)
{
	struct fx *f = *state;
	struct alert_rule r[2] = {threshold_rule("P", 0, 0, 0),
				  threshold_rule("Q", 0, 0, 0)};
	static const struct alert_matcher m[] = {
		{"alertname", ALERT_MATCH_EQ, "nothing"}};
	struct alert_silence s = {
		.matchers = m, .nmatchers = 1, .ends_at_ms = T0 + HOUR};
	char id[ALERT_SILENCE_ID_LEN + 1], err[200];
	json_t *list;
	FILE *fp;

	f->e = engine(f, r, 2, f->path);
	tick(f, T0, 20);
	assert_int_equal(alert_silence_add(f->e, &s, T0, id, err, sizeof(err)),
			 0);
	assert_int_equal(sent(&f->sink, "firing", "P"), 1);
	alert_engine_free(f->e);

	/* A new engine (a restart) with one rule removed: P still fires;
	 * Q is gone, with the resolution its receivers wait for; the
	 * silence is kept; nothing else is sent. */
	f->e = engine(f, r, 1, f->path);
	assert_string_equal(state_of(f->e, "P", NULL, NULL), "firing");
	assert_string_equal(state_of(f->e, "Q", NULL, NULL), "inactive");
	assert_int_equal(sent(&f->sink, "resolved", "Q"), 1);
	{
		json_t *b = json_array_get(
			f->sink.batches, json_array_size(f->sink.batches) - 1);
		json_t *q = json_array_get(b, 0), *first;

		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(q, "labels"), "severity")),
			"critical");
		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(q, "annotations"), "summary")),
			"x is 20");
		assert_true(json_is_string(json_object_get(q, "endsAt")));
		/* the same fingerprint as its firing notification */
		first = json_array_get(json_array_get(f->sink.batches, 0), 1);
		assert_string_equal(
			json_string_value(json_object_get(first, "name")), "Q");
		assert_string_equal(
			json_string_value(json_object_get(q, "fingerprint")),
			json_string_value(
				json_object_get(first, "fingerprint")));
	}
	alert_engine_free(f->e);
	f->e = engine(f, r, 1, f->path); /* and only once */
	assert_int_equal(sent(&f->sink, "resolved", "Q"), 1);
	list = alert_silence_list(f->e);
	assert_int_equal(json_array_size(list), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(list, 0), "id")),
			    id);
	json_decref(list);
	tick(f, T0 + 10 * SEC, 20);
	assert_int_equal(sent(&f->sink, "firing", "P"), 1);
	assert_true(value_of(f->e, "P", NULL, NULL) == 20);
	/* Resolving after the restart sends the resolution. */
	tick(f, T0 + 20 * SEC, 1);
	assert_int_equal(sent(&f->sink, "resolved", "P"), 1);
	alert_engine_free(f->e);
	f->e = engine(f, r, 1, f->path);
	assert_string_equal(state_of(f->e, "P", NULL, NULL), "resolved");
	tick(f, T0 + 30 * SEC, 1);
	assert_int_equal(sent(&f->sink, "resolved", "P"), 1); /* once */
	alert_engine_free(f->e);

	/* A file that is not a state file is set aside, not trusted. */
	fp = fopen(f->path, "w");
	fputs("{not json", fp);
	fclose(fp);
	f->e = engine(f, r, 1, f->path);
	assert_int_equal(nalerts(f->e), 0);
	{
		char bad[200];
		struct stat st;

		snprintf(bad, sizeof(bad), "%s.bad", f->path);
		assert_int_equal(stat(bad, &st), 0);
	}
}

/* --- reload -------------------------------------------------------------- */

static void test_reload(void **state)
{
	struct fx *f = *state;
	struct alert_rule r[2] = {threshold_rule("keep", 0, 0, 0),
				  threshold_rule("drop", 0, 0, 0)};
	struct alert_rule dup[2] = {r[0], r[0]};
	char err[200];

	f->e = engine(f, r, 2, NULL);
	tick(f, T0, 20);
	assert_int_equal(sent(&f->sink, "firing", NULL), 2);
	assert_int_equal(alert_engine_reload(f->e, dup, 2, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "twice"));
	r[0].threshold = 15; /* retuned, same name: keeps its state */
	assert_int_equal(alert_engine_reload(f->e, r, 1, err, sizeof(err)), 0);
	assert_int_equal(sent(&f->sink, "resolved", "drop"), 1);
	assert_string_equal(state_of(f->e, "keep", NULL, NULL), "firing");
	tick(f, T0 + 10 * SEC, 17);
	assert_int_equal(sent(&f->sink, "firing", "keep"), 1);
	tick(f, T0 + 20 * SEC, 12); /* under the new threshold */
	assert_int_equal(sent(&f->sink, "resolved", "keep"), 1);
}

/* --- a failing source ---------------------------------------------------- */

struct flaky {
	struct alert_source inner;
	bool fail;
};

static int flaky_series(void *ud, const char *metric,
			const struct alert_matcher *m, size_t nm,
			alert_series_cb cb, void *cbud)
{
	struct flaky *fl = ud;

	if (fl->fail)
		return -EIO;
	return fl->inner.series(fl->inner.ud, metric, m, nm, cb, cbud);
}

static int flaky_samples(void *ud, uint64_t id, uint64_t from, uint64_t to,
			 alert_sample_cb cb, void *cbud)
{
	struct flaky *fl = ud;

	return fl->inner.samples(fl->inner.ud, id, from, to, cb, cbud);
}

static int flaky_hist(void *ud, uint64_t id, uint64_t from, uint64_t to,
		      struct hist *out)
{
	struct flaky *fl = ud;

	return fl->inner.hist_window(fl->inner.ud, id, from, to, out);
}

static void test_source_failure_keeps_states(void **state)
{
	struct fx *f = *state;
	struct flaky fl = {.inner = alert_mem_source(f->mem)};
	struct alert_source src = {&fl, flaky_series, flaky_samples,
				   flaky_hist};
	struct alert_rule r = threshold_rule("F", 0, 0, 0);
	struct alert_engine_conf c = {
		.rules = &r, .nrules = 1, .send = sink_cb, .send_ud = &f->sink};
	char err[200];
	json_t *root, *rule;

	assert_int_equal(alert_engine_new(&c, &src, &f->e, err, sizeof(err)),
			 0);
	tick(f, T0, 20);
	fl.fail = true;
	alert_mem_add(f->mem, "x", NULL, 0, T0 + 10 * SEC, 1);
	assert_int_equal(alert_engine_eval(f->e, T0 + 10 * SEC), 1);
	assert_string_equal(state_of(f->e, "F", NULL, NULL), "firing");
	assert_int_equal(sent(&f->sink, "resolved", NULL), 0);
	root = alert_engine_json(f->e);
	rule = json_array_get(json_object_get(root, "rules"), 0);
	assert_string_equal(json_string_value(json_object_get(rule, "health")),
			    "error");
	assert_non_null(
		strstr(json_string_value(json_object_get(rule, "last_error")),
		       "Input/output error"));
	json_decref(root);
	fl.fail = false;
	assert_int_equal(alert_engine_eval(f->e, T0 + 20 * SEC), 0);
	assert_string_equal(state_of(f->e, "F", NULL, NULL), "resolved");
}

/* --- SLO burn rates ----------------------------------------------------- */

static void feed_slo(struct fx *f, uint64_t now)
{
	/* checkout: 100 2xx a minute for 6 hours; 2 5xx a minute in the
	 * last hour only. search: 100 2xx a minute, of which 3 take 1 s
	 * and 97 take 0.1 s. */
	for (uint64_t t = now - 6 * HOUR; t <= now; t += MIN) {
		double k = (double)(t - (now - 6 * HOUR)) / MIN;
		double bad = t >= now - HOUR
				     ? 2 * (double)(t - (now - HOUR)) / MIN
				     : 0;

		alert_mem_add(f->mem, "storekeep_route_responses_total",
			      L({"route", "checkout"}, {"pool", "shop"},
				{"class", "2xx"}),
			      3, t, 100 * k);
		alert_mem_add(f->mem, "storekeep_route_responses_total",
			      L({"route", "checkout"}, {"pool", "shop"},
				{"class", "5xx"}),
			      3, t, bad);
		alert_mem_add(f->mem, "storekeep_route_responses_total",
			      L({"route", "search"}, {"pool", "shop"},
				{"class", "2xx"}),
			      3, t, 100 * k);
		alert_mem_observe(f->mem,
				  "storekeep_http_request_duration_seconds",
				  L({"route", "search"}, {"pool", "shop"}), 2,
				  6, t, 100000, 97);
		alert_mem_observe(f->mem,
				  "storekeep_http_request_duration_seconds",
				  L({"route", "search"}, {"pool", "shop"}), 2,
				  6, t, 1000000, 3);
	}
}

static void test_slo_burn_rate(void **state)
{
	struct fx *f = *state;
	struct alert_slo checkout = {.name = "checkout",
				     .route = "checkout",
				     .objective = 0.999,
				     .latency_s = 2};
	struct alert_slo search = {.name = "search",
				   .route = "search",
				   .objective = 0.99,
				   .latency_s = 0.5,
				   .labels = L({"team", "web"}),
				   .nlabels = 1};
	struct alert_slo_rules *g1 = malloc(sizeof(*g1)),
			       *g2 = malloc(sizeof(*g2));
	struct alert_rule all[2 * ALERT_SLO_WINDOWS_MAX];
	uint64_t now = T0 + 6 * HOUR;
	char err[200];
	size_t n = 0;
	json_t *root, *a;

	assert_int_equal(alert_slo_rules(&checkout, g1, err, sizeof(err)), 0);
	assert_int_equal(alert_slo_rules(&search, g2, err, sizeof(err)), 0);
	assert_int_equal(g1->nrules, 2);
	assert_string_equal(g1->rules[0].name, "SLOBurnRate:checkout:1h5m");
	assert_string_equal(g1->rules[1].name, "SLOBurnRate:checkout:6h30m");
	assert_true(g1->rules[0].threshold == 14.4);
	assert_int_equal(g1->rules[0].severity, ALERT_SEV_CRITICAL);
	assert_int_equal(g1->rules[1].severity, ALERT_SEV_WARNING);
	for (size_t i = 0; i < g1->nrules; i++)
		all[n++] = g1->rules[i];
	for (size_t i = 0; i < g2->nrules; i++)
		all[n++] = g2->rules[i];
	feed_slo(f, now);
	f->e = engine(f, all, n, NULL);
	alert_engine_eval(f->e, now);

	/* checkout, 1 h: 120 errors of 6120 = 1.96% = 19.6 x the 0.1%
	 * budget; 5 m: 10 of 510, the same. It pages. */
	assert_string_equal(state_of(f->e, "SLOBurnRate:checkout:1h5m", "route",
				     "checkout"),
			    "firing");
	assert_true(fabs(value_of(f->e, "SLOBurnRate:checkout:1h5m", "route",
				  "checkout") -
			 (120.0 / 6120) / 0.001) < 1e-6);
	/* 6 h: 120 of 36120 = 0.33% = 3.3 x: no ticket. */
	assert_string_equal(state_of(f->e, "SLOBurnRate:checkout:6h30m",
				     "route", "checkout"),
			    "inactive");
	/* search: 3% slow against a 1% budget: 3 x, under both factors. */
	assert_string_equal(
		state_of(f->e, "SLOBurnRate:search:1h5m", "route", "search"),
		"inactive");
	alert_engine_free(f->e);

	/* With a 99.9% objective, search's 3% slow burns 30 x: both fire. */
	search.objective = 0.999;
	assert_int_equal(alert_slo_rules(&search, g2, err, sizeof(err)), 0);
	n = 0;
	for (size_t i = 0; i < g2->nrules; i++)
		all[n++] = g2->rules[i];
	f->e = engine(f, all, n, NULL);
	alert_engine_eval(f->e, now);
	root = alert_engine_json(f->e);
	a = find_alert(root, "SLOBurnRate:search:6h30m", "route", "search");
	assert_non_null(a);
	assert_string_equal(json_string_value(json_object_get(a, "state")),
			    "firing");
	assert_true(fabs(json_number_value(json_object_get(a, "value")) - 30) <
		    1e-6);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(a, "labels"), "team")),
			    "web");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(a, "labels"),
						  "long_window")),
		"6h");
	json_decref(root);
	alert_engine_free(f->e);

	/* checkout's errors stop: 10 minutes later the 1 h window still
	 * burns (100 errors in the hour), the 5 m one is clean, and the
	 * page resolves. */
	n = 0;
	for (size_t i = 0; i < g1->nrules; i++)
		all[n++] = g1->rules[i];
	f->e = engine(f, all, n, NULL);
	alert_engine_eval(f->e, now);
	for (uint64_t t = now + MIN; t <= now + 10 * MIN; t += MIN) {
		double k = (double)(t - (now - 6 * HOUR)) / MIN;

		alert_mem_add(f->mem, "storekeep_route_responses_total",
			      L({"route", "checkout"}, {"pool", "shop"},
				{"class", "2xx"}),
			      3, t, 100 * k);
		alert_mem_add(f->mem, "storekeep_route_responses_total",
			      L({"route", "checkout"}, {"pool", "shop"},
				{"class", "5xx"}),
			      3, t, 120);
		alert_engine_eval(f->e, t);
	}
	assert_string_equal(state_of(f->e, "SLOBurnRate:checkout:1h5m", "route",
				     "checkout"),
			    "resolved");
	assert_true(value_of(f->e, "SLOBurnRate:checkout:1h5m", "route",
			     "checkout") > 14.4);

	/* Bad specs. */
	checkout.objective = 1;
	assert_int_equal(alert_slo_rules(&checkout, g1, err, sizeof(err)),
			 -EINVAL);
	free(g1);
	free(g2);
}

/* --- the default rules --------------------------------------------------- */

static void test_default_rules(void **state)
{
	struct fx *f = *state;
	struct alert_rule r[16];
	size_t n = alert_default_rules(r, NELEMS(r));
	static const char *const want[] = {
		"BackendDown",	"PoolDown",	     "HighErrorRate",
		"HighLatency",	"HostCPUHigh",	     "HostMemoryLow",
		"DiskSpaceLow", "DiskFullPredicted", "ProbeCritical",
	};
	const double gib = 1024.0 * 1024 * 1024;
	char err[200];
	uint64_t now = T0 + 10 * MIN;

	assert_int_equal(n, NELEMS(want));
	assert_int_equal(alert_default_rules(r, 2), NELEMS(want));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(r[i].name, want[i]);
		assert_int_equal(alert_rule_check(&r[i], err, sizeof(err)), 0);
		r[i].for_ms = 0;
	}
	r[3].disabled = true; /* HighLatency off */

	for (uint64_t t = T0; t <= now; t += 10 * SEC) {
		alert_mem_add(f->mem, "storekeep_backend_up",
			      L({"pool", "shop"}, {"backend", "a"}), 2, t, 0);
		alert_mem_add(f->mem, "storekeep_backend_up",
			      L({"pool", "shop"}, {"backend", "b"}), 2, t,
			      t < now ? 1 : 0);
		alert_mem_add(f->mem, "storekeep_backend_up",
			      L({"pool", "api"}, {"backend", "c"}), 2, t, 1);
		alert_mem_add(f->mem, "storekeep_host_cpu_ratio",
			      L({"cpu", "all"}, {"mode", "user"}), 2, t, 0.7);
		alert_mem_add(f->mem, "storekeep_host_cpu_ratio",
			      L({"cpu", "all"}, {"mode", "system"}), 2, t,
			      0.25);
		alert_mem_add(f->mem, "storekeep_host_cpu_ratio",
			      L({"cpu", "all"}, {"mode", "idle"}), 2, t, 0.04);
		alert_mem_add(f->mem, "storekeep_host_cpu_ratio",
			      L({"cpu", "all"}, {"mode", "iowait"}), 2, t,
			      0.01);
		alert_mem_add(f->mem, "storekeep_host_cpu_ratio",
			      L({"cpu", "0"}, {"mode", "user"}), 2, t, 0.9);
		alert_mem_add(f->mem, "storekeep_host_memory_available_bytes",
			      NULL, 0, t, 5 * gib);
		alert_mem_add(f->mem, "storekeep_host_memory_total_bytes", NULL,
			      0, t, 100 * gib);
		alert_mem_add(f->mem, "storekeep_host_filesystem_used_ratio",
			      L({"mount", "/"}), 1, t, 0.95);
		alert_mem_add(f->mem, "storekeep_host_filesystem_used_ratio",
			      L({"mount", "/srv"}), 1, t, 0.5);
		alert_mem_add(f->mem, "storekeep_probe_state",
			      L({"probe", "db"}, {"type", "postgresql"}), 2, t,
			      2);
		alert_mem_add(f->mem, "storekeep_probe_state",
			      L({"probe", "web"}, {"type", "http"}), 2, t, 0);
		alert_mem_observe(
			f->mem, "storekeep_http_request_duration_seconds",
			L({"route", "checkout"}), 1, 6, t, 3000000, 5);
	}
	f->e = engine(f, r, n, NULL);
	alert_engine_eval(f->e, now - 10 * SEC);
	assert_string_equal(state_of(f->e, "BackendDown", "backend", "a"),
			    "firing");
	assert_string_equal(state_of(f->e, "BackendDown", "backend", "b"),
			    "inactive");
	assert_string_equal(state_of(f->e, "PoolDown", "pool", "shop"),
			    "inactive");
	alert_engine_eval(f->e, now);
	assert_string_equal(state_of(f->e, "PoolDown", "pool", "shop"),
			    "firing");
	assert_string_equal(state_of(f->e, "PoolDown", "pool", "api"),
			    "inactive");
	assert_string_equal(state_of(f->e, "HostCPUHigh", NULL, NULL),
			    "firing");
	assert_true(fabs(value_of(f->e, "HostCPUHigh", NULL, NULL) - 0.95) <
		    1e-9);
	assert_string_equal(state_of(f->e, "HostMemoryLow", NULL, NULL),
			    "firing");
	assert_true(fabs(value_of(f->e, "HostMemoryLow", NULL, NULL) - 0.05) <
		    1e-9);
	assert_string_equal(state_of(f->e, "DiskSpaceLow", "mount", "/"),
			    "firing");
	assert_string_equal(state_of(f->e, "DiskSpaceLow", "mount", "/srv"),
			    "inactive");
	assert_string_equal(state_of(f->e, "ProbeCritical", "probe", "db"),
			    "firing");
	assert_string_equal(state_of(f->e, "ProbeCritical", "probe", "web"),
			    "inactive");
	assert_string_equal(state_of(f->e, "HighLatency", "route", "checkout"),
			    "inactive"); /* disabled */
	{
		json_t *root = alert_engine_json(f->e);
		json_t *a = find_alert(root, "ProbeCritical", "probe", "db");

		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(a, "annotations"), "summary")),
			"probe db (postgresql) is critical");
		a = find_alert(root, "PoolDown", "pool", "shop");
		assert_string_equal(
			json_string_value(json_object_get(
				json_object_get(a, "annotations"), "summary")),
			"every backend of pool shop is down");
		json_decref(root);
	}
	/* Turned back on by a reload: p99 of 3 s over 5 m fires. */
	r[3].disabled = false;
	assert_int_equal(alert_engine_reload(f->e, r, n, err, sizeof(err)), 0);
	alert_engine_eval(f->e, now + SEC);
	assert_string_equal(state_of(f->e, "HighLatency", "route", "checkout"),
			    "firing");
	assert_true(fabs(value_of(f->e, "HighLatency", "route", "checkout") -
			 3) < 0.012);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_selector_parse),
		cmocka_unit_test(test_rule_check),
		cmocka_unit_test_setup_teardown(test_fn_gauge, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_fn_counter, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_fn_histogram, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_fn_not_for_histogram,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_error_ratio_by_route,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_group_ops_and_template,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_prediction,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pending_firing_resolved,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_keep_firing_for_damps_flapping, fx_setup,
			fx_teardown),
		cmocka_unit_test_setup_teardown(test_repeat_interval, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_silences, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_persistence, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_reload, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_source_failure_keeps_states, fx_setup,
			fx_teardown),
		cmocka_unit_test_setup_teardown(test_slo_burn_rate, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_default_rules, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
