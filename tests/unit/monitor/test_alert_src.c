/*
 * test_alert_src.c - monitor/alert_src.h: the daemon's alert source over
 * a real history (SQLite in a temporary directory) and a metrics
 * registry, with synthetic time.
 *
 * Checked: histogram windows from snapshots against the exact quantiles
 * of what was recorded in the window (within the documented 3%), the
 * coarse ring for windows longer than 30 minutes, a window reaching
 * before the first snapshot; gauge samples from memory and, beyond the
 * hour in memory, from the minute rows; and a rule evaluated by the real
 * engine over this source: a gauge that crosses its threshold fires, a
 * p99 over a histogram window fires and resolves.
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
#include <unistd.h>

#include <cmocka.h>

#include "monitor/alert_src.h"
#include "monitor/hist.h"
#include "monitor/history.h"

#define H0 ((uint64_t)1800000000 - (uint64_t)1800000000 % 3600)
#define MS(s) ((uint64_t)(s) * 1000)

struct fx {
	uv_loop_t loop;
	char dir[64];
	char path[128];
	struct cfg_history cfg;
	struct history *h;
	struct metrics *reg;
};

static void done_cb(void *ud)
{
	*(bool *)ud = true;
}

static void wake_cb(uv_timer_t *t)
{
	(void)t;
}

static void run_until_flag(uv_loop_t *loop, bool *flag)
{
	uv_timer_t t;
	int spins = 0;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, wake_cb, 5, 5);
	while (!*flag && spins++ < 20000)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_true(*flag);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[512];

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sk-asrc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/history.db", f->dir);
	f->cfg.path = f->path;
	f->cfg.minute_retention_ms = 7ull * 86400 * 1000;
	f->cfg.hour_retention_ms = 90ull * 86400 * 1000;
	f->cfg.max_bytes = 512ull << 20;
	if (history_open(&f->loop, &f->cfg, &f->h, err, sizeof(err)) != 0)
		fail_msg("history_open: %s", err);
	assert_int_equal(metrics_new(2, &f->reg), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	bool done = false;
	char cmd[128];

	history_close(f->h, done_cb, &done);
	run_until_flag(&f->loop, &done);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	metrics_free(f->reg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* --- helpers ----------------------------------------------------------------- */

struct found {
	uint64_t id[8];
	int kind[8];
	size_t n;
};

static void found_cb(void *ud, const struct alert_series_info *s)
{
	struct found *fd = ud;

	if (fd->n < 8) {
		fd->id[fd->n] = s->id;
		fd->kind[fd->n++] = (int)s->kind;
	}
}

struct pts {
	uint64_t t[8000];
	double v[8000];
	size_t n;
};

static void pts_cb(void *ud, uint64_t t, double v)
{
	struct pts *p = ud;

	if (p->n < 8000) {
		p->t[p->n] = t;
		p->v[p->n++] = v;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t exact_q(uint64_t *v, size_t n, double q)
{
	size_t rank = (size_t)ceil(q * (double)n);

	qsort(v, n, sizeof(*v), cmp_u64);
	return v[rank ? rank - 1 : 0];
}

/* --- tests ------------------------------------------------------------------- */

static void test_hist_windows(void **state)
{
	struct fx *f = *state;
	struct metrics_label lab[] = {{"route", "checkout"}};
	struct metrics_desc dh = {.name = "lat_seconds", .help = "x",
				  .labels = lab, .nlabels = 1, .decimals = 6};
	struct metrics_hist lat;
	struct alert_src *s;
	struct alert_source src;
	struct found fd = {0};
	struct hist *out = hist_new();
	static uint64_t win[200000];
	size_t nwin = 0;
	uint64_t seed = 42;
	const double qs[] = {0.5, 0.9, 0.99};

	assert_non_null(out);
	assert_int_equal(metrics_hist_reg(f->reg, &dh, &lat), 0);
	s = alert_src_new(f->reg, f->h);
	src = alert_src_source(s);
	/* Two hours of ticks every 5 s; latencies drift upwards, so that
	 * windows at different times differ. The last 5 minutes' values
	 * are kept for the exact answer. */
	for (uint64_t t = 0; t <= 7200; t += 5) {
		for (int k = 0; k < 40; k++) {
			uint64_t v;

			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			v = 200 + (seed >> 33) % (1000 + t * 10);
			metrics_hist_record(f->reg, k % 2, lat, v);
			if (t > 7200 - 300)
				win[nwin++] = v;
		}
		alert_src_tick(s, MS(H0 + t), 5000, 6 * 3600 * 1000ull);
	}
	assert_int_equal(alert_src_hist_series(s), 1);
	assert_int_equal(src.series(src.ud, "lat_seconds", NULL, 0, found_cb, &fd),
			 0);
	assert_int_equal(fd.n, 1);
	assert_int_equal(fd.kind[0], ALERT_SERIES_HIST);

	/* The last 5 minutes: exact within ~3%. */
	assert_int_equal(src.hist_window(src.ud, fd.id[0], MS(H0 + 6900),
					 MS(H0 + 7200), out),
			 0);
	assert_int_equal(hist_count(out), nwin);
	for (size_t i = 0; i < 3; i++) {
		uint64_t got = hist_quantile(out, qs[i]);
		uint64_t want = exact_q(win, nwin, qs[i]);

		if (fabs((double)got - (double)want) > 0.035 * (double)want)
			fail_msg("q%.2f: got %llu want %llu", qs[i],
				 (unsigned long long)got,
				 (unsigned long long)want);
	}
	/* 89.5 minutes back: beyond the fine ring's 30 minutes (at the 5 s
	 * interval given), so from the coarse ring, to the minute: the
	 * snapshot of minute 30, not the one of 30:30 a fine ring would
	 * have. */
	assert_int_equal(src.hist_window(src.ud, fd.id[0], MS(H0 + 1830),
					 MS(H0 + 7200), out),
			 0);
	assert_int_equal(hist_count(out), (7200 - 1800) / 5 * 40);
	/* Before the oldest snapshot: counted from it, not from the start
	 * of the registry (the 40 values recorded before the first tick
	 * are not in it). */
	assert_int_equal(src.hist_window(src.ud, fd.id[0], MS(H0 - 100),
					 MS(H0 + 7200), out),
			 0);
	assert_int_equal(hist_count(out), 7200 / 5 * 40);
	/* A gauge name is not a histogram; an unknown id fails. */
	assert_int_equal(src.hist_window(src.ud, 3, 0, 1, out), -ENOENT);
	assert_true(alert_src_bytes(s) > 0);
	alert_src_free(s);
	hist_free(out);
}

static void test_samples_memory_and_rows(void **state)
{
	struct fx *f = *state;
	struct alert_src *s = alert_src_new(f->reg, f->h);
	struct alert_source src = alert_src_source(s);
	struct found fd = {0};
	static struct pts p;
	bool done = false;

	/* 2 hours of 1-second samples: v = minute number. */
	for (uint64_t t = 0; t < 7200; t++)
		assert_int_equal(history_record(f->h, MS(H0 + t),
						"disk_free{mount=\"/\"}",
						(double)(t / 60)),
				 0);
	history_flush(f->h, done_cb, &done);
	run_until_flag(&f->loop, &done);
	assert_int_equal(src.series(src.ud, "disk_free", NULL, 0, found_cb, &fd),
			 0);
	assert_int_equal(fd.n, 1);
	assert_int_equal(fd.kind[0], ALERT_SERIES_SAMPLES);
	/* The last 10 s: memory. */
	p.n = 0;
	assert_int_equal(src.samples(src.ud, fd.id[0], MS(H0 + 7190),
				     MS(H0 + 7199), pts_cb, &p),
			 0);
	assert_int_equal(p.n, 10);
	assert_true(p.v[9] == 119);
	/* From the start: minute rows for the first hour (whose minutes
	 * average to their minute number), then the ring. */
	p.n = 0;
	assert_int_equal(src.samples(src.ud, fd.id[0], MS(H0), MS(H0 + 7199),
				     pts_cb, &p),
			 0);
	assert_true(p.n >= 3600 + 59 && p.n <= 3600 + 61);
	assert_true(p.v[0] == 0 && p.t[0] == MS(H0 + 30));
	assert_true(p.v[1] == 1 && p.t[1] == MS(H0 + 90));
	for (size_t i = 1; i < p.n; i++)
		assert_true(p.t[i] > p.t[i - 1]);
	assert_int_equal(src.samples(src.ud, 999999, 0, 1, pts_cb, &p), -ENOENT);
	/* Without a history, sample rules have no data. */
	alert_src_set_history(s, NULL);
	fd.n = 0;
	assert_int_equal(src.series(src.ud, "disk_free", NULL, 0, found_cb, &fd),
			 -ENODATA);
	alert_src_free(s);
}

static int nfired;

static void send_cb(void *ud, json_t *batch)
{
	(void)ud;
	for (size_t i = 0; i < json_array_size(batch); i++)
		if (strcmp(json_string_value(json_object_get(
				   json_array_get(batch, i), "status")),
			   "firing") == 0)
			nfired++;
}

static void test_engine_over_source(void **state)
{
	struct fx *f = *state;
	struct metrics_label lab[] = {{"route", "api"}};
	struct metrics_desc dh = {.name = "req_seconds", .help = "x",
				  .labels = lab, .nlabels = 1, .decimals = 6};
	struct metrics_hist lat;
	struct alert_rule rule = {
		.name = "Slow",
		.expr = {.metric = "req_seconds", .fn = ALERT_FN_QUANTILE,
			 .q = 0.99, .window_ms = 30000},
		.op = ALERT_OP_GT,
		.threshold = 0.5,
		.for_ms = 10000,
		.severity = ALERT_SEV_CRITICAL,
	};
	struct alert_engine_conf conf = {.rules = &rule, .nrules = 1,
					 .send = send_cb};
	struct alert_src *s = alert_src_new(f->reg, f->h);
	struct alert_source src = alert_src_source(s);
	struct alert_engine *e;
	char err[256];
	json_t *j;

	assert_int_equal(metrics_hist_reg(f->reg, &dh, &lat), 0);
	assert_int_equal(alert_engine_new(&conf, &src, &e, err, sizeof(err)), 0);
	nfired = 0;
	/* 60 s fast, 60 s slow (0.9 s), 60 s fast again; eval every 5 s. */
	for (uint64_t t = 0; t <= 180; t += 5) {
		uint64_t v = t > 60 && t <= 120 ? 900000 : 20000;

		for (int k = 0; k < 50; k++)
			metrics_hist_record(f->reg, 0, lat, v);
		alert_src_tick(s, MS(H0 + t), 5000, 30000);
		assert_int_equal(alert_engine_eval(e, MS(H0 + t)), 0);
		if (t == 65)
			assert_int_equal(nfired, 0); /* pending, for: 10s */
	}
	assert_int_equal(nfired, 1);
	j = alert_engine_json(e);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(j, "alerts"), 0),
				    "state")),
			    "resolved");
	json_decref(j);
	alert_engine_free(e);
	alert_src_free(s);
}

static void test_max_window(void **state)
{
	struct alert_rule r[2] = {
		{.expr = {.metric = "a", .window_ms = 300000}},
		{.kind = ALERT_RULE_BURN, .expr = {.metric = "a", .window_ms = 60000},
		 .over = {.metric = "b", .window_ms = 21600000},
		 .short_window_ms = 1800000},
	};

	(void)state;
	assert_int_equal(alert_rules_max_window(r, 2), 21600000);
	r[1].disabled = true;
	assert_int_equal(alert_rules_max_window(r, 2), 300000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hist_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_samples_memory_and_rows, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_engine_over_source, setup,
						teardown),
		cmocka_unit_test(test_max_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
