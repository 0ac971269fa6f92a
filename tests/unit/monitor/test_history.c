/*
 * test_history.c - monitor/history.h with a real SQLite file in a
 * temporary directory and synthetic time (the history's clock is the
 * now_ms its caller passes, so days pass in a loop).
 *
 * Checked: the minute and hour aggregates (avg, min, max, last) against
 * sums done here; the choice of source (memory, minute rows, hour rows)
 * by the query's range; the query's validation errors; retention and
 * max_bytes pruning, read back from the file itself; a close and reopen
 * that keeps everything, the partial minute merged by sample counts;
 * sampling a metrics registry, histogram quantiles per second and the
 * exact window quantile of a minute row; and open errors in words.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "monitor/history.h"

/* An hour boundary in 2027. */
#define H0 ((int64_t)1800000000 - (int64_t)1800000000 % 3600)
#define MS(s) ((uint64_t)(s) * 1000)

struct fx {
	uv_loop_t loop;
	char dir[64];
	char path[128];
	struct cfg_history cfg;
	struct history *h;
};

static struct fx *live;

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sk-hist-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/history.db", f->dir);
	f->cfg.path = f->path;
	f->cfg.minute_retention_ms = 7ull * 86400 * 1000;
	f->cfg.hour_retention_ms = 90ull * 86400 * 1000;
	f->cfg.max_bytes = 512ull << 20;
	live = f;
	*state = f;
	return 0;
}

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

static void hopen(struct fx *f)
{
	char err[512];

	err[0] = '\0';
	if (history_open(&f->loop, &f->cfg, &f->h, err, sizeof(err)) != 0)
		fail_msg("history_open: %s", err);
}

static void hclose(struct fx *f)
{
	bool done = false;

	history_close(f->h, done_cb, &done);
	run_until_flag(&f->loop, &done);
	f->h = NULL;
}

static void flush(struct fx *f)
{
	bool done = false;

	history_flush(f->h, done_cb, &done);
	run_until_flag(&f->loop, &done);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	if (f->h)
		hclose(f);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	live = NULL;
	return 0;
}

/* Runs a query that must succeed. */
static json_t *q(struct fx *f, const char *metric, const char *labels,
		 int64_t from, int64_t to, int64_t step, const char *agg)
{
	json_t *out = NULL;
	int r = history_query_agg(f->h, metric, labels, MS(from), MS(to),
				  MS(step), agg, &out);

	if (r != 0) {
		char *s = json_dumps(out, 0);

		fail_msg("query %s failed (%d): %s", metric, r, s);
	}
	return out;
}

/* Runs a query that must fail with -EINVAL and an error text containing
 * want. */
static void q_bad(struct fx *f, const char *metric, const char *labels,
		  uint64_t from_ms, uint64_t to_ms, uint64_t step_ms,
		  const char *agg, const char *want)
{
	json_t *out = NULL;

	assert_int_equal(history_query_agg(f->h, metric, labels, from_ms,
					   to_ms, step_ms, agg, &out),
			 -EINVAL);
	assert_non_null(out);
	if (!strstr(json_string_value(json_object_get(out, "error")), want))
		fail_msg("error \"%s\" does not mention \"%s\"",
			 json_string_value(json_object_get(out, "error")), want);
	json_decref(out);
}

static const char *source(json_t *r)
{
	return json_string_value(json_object_get(r, "source"));
}

/* Points of the series whose labels include k=v (any series if k is
 * NULL). */
static json_t *points(json_t *r, const char *k, const char *v)
{
	json_t *s;
	size_t i;

	json_array_foreach (json_object_get(r, "series"), i, s) {
		json_t *lab = json_object_get(s, "labels");

		if (!k || (json_object_get(lab, k) &&
			   strcmp(json_string_value(json_object_get(lab, k)),
				  v) == 0))
			return json_object_get(s, "points");
	}
	fail_msg("no series with %s=%s", k, v);
	return NULL;
}

static int64_t pt_ts(json_t *pts, size_t i)
{
	return json_integer_value(json_array_get(json_array_get(pts, i), 0));
}

static double pt_v(json_t *pts, size_t i)
{
	return json_real_value(json_array_get(json_array_get(pts, i), 1));
}

static int64_t db_count(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* --- tests ---------------------------------------------------------------- */

struct seen {
	struct metrics *reg;
	int n, c, g, h;
};

static void foreach_cb(void *ud, const struct metrics_series_info *si)
{
	struct seen *seen = ud;

	seen->n++;
	if (si->type == METRICS_COUNTER) {
		seen->c++;
		assert_string_equal(si->name, "c_total");
		assert_int_equal(si->nlabels, 2);
		assert_string_equal(si->labels[0].name, "a");
		assert_string_equal(si->labels[0].value, "q\"uote");
		assert_string_equal(si->labels[1].name, "z");
		assert_int_equal(si->labels_len,
				 strlen("a=\"q\\\"uote\",z=\"last\""));
		assert_memory_equal(si->labels_text, "a=\"q\\\"uote\",z=\"last\"",
				    si->labels_len);
		assert_int_equal(si->decimals, 2);
		/* foreach holds the registry's lock; reading is allowed. */
		assert_int_equal(metrics_counter_read(
					 seen->reg, (struct metrics_counter){si->idx}),
				 250);
	} else if (si->type == METRICS_GAUGE) {
		seen->g++;
		assert_int_equal(si->nlabels, 0);
		assert_int_equal(si->labels_len, 0);
	} else {
		seen->h++;
		assert_string_equal(si->name, "h_seconds");
		assert_int_equal(si->decimals, 6);
	}
}

static void test_downsampling(void **state)
{
	struct fx *f = *state;
	char sql[128];
	json_t *r, *p;

	/* Two minutes at 1 s: value i at second i, and a second series
	 * with 10 * i. */
	hopen(f);
	for (int i = 0; i < 120; i++) {
		assert_int_equal(history_record(f->h, MS(H0 + i),
						"t_gauge{a=\"1\"}", i),
				 0);
		assert_int_equal(history_record(f->h, MS(H0 + i) + 999,
						"t_gauge{a=\"2\"}", 10 * i),
				 0);
	}
	/* A second sample in the same second is ignored. */
	assert_int_equal(history_record(f->h, MS(H0 + 119), "t_gauge{a=\"1\"}",
					1e9),
			 0);
	/* Two hours later: both minutes and the hour are closed. */
	assert_int_equal(history_record(f->h, MS(H0 + 7200), "t_gauge{a=\"1\"}",
					1000),
			 0);
	assert_int_equal(history_record(f->h, MS(H0 + 100), "t_gauge{a=\"1\"}",
					1),
			 -ERANGE);
	flush(f);

	/* Older than the hour in memory: minute rows, the minute in
	 * progress included. */
	r = q(f, "t_gauge", NULL, H0, H0 + 7200, 0, NULL);
	assert_string_equal(source(r), "minute");
	assert_int_equal(json_integer_value(json_object_get(r, "step")), 60);
	assert_int_equal(json_array_size(json_object_get(r, "series")), 2);
	p = points(r, "a", "1");
	assert_int_equal(json_array_size(p), 3);
	assert_int_equal(pt_ts(p, 0), H0);
	assert_true(pt_v(p, 0) == 29.5);
	assert_int_equal(pt_ts(p, 1), H0 + 60);
	assert_true(pt_v(p, 1) == 89.5);
	assert_int_equal(pt_ts(p, 2), H0 + 7200);
	assert_true(pt_v(p, 2) == 1000);
	p = points(r, "a", "2");
	assert_true(pt_v(p, 1) == 895);
	json_decref(r);
	r = q(f, "t_gauge", "a=1", H0, H0 + 119, 0, "min");
	p = points(r, NULL, NULL);
	assert_true(pt_v(p, 0) == 0 && pt_v(p, 1) == 60);
	json_decref(r);
	r = q(f, "t_gauge", "a=1", H0, H0 + 119, 0, "max");
	p = points(r, NULL, NULL);
	assert_true(pt_v(p, 0) == 59 && pt_v(p, 1) == 119);
	json_decref(r);
	r = q(f, "t_gauge", "a=2", H0, H0 + 119, 0, "last");
	p = points(r, NULL, NULL);
	assert_true(pt_v(p, 0) == 590 && pt_v(p, 1) == 1190);
	json_decref(r);
	/* A step of 2 minutes: one bucket, weighted by sample counts. */
	r = q(f, "t_gauge", "a=1", H0, H0 + 119, 120, NULL);
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 1);
	assert_true(pt_v(p, 0) == 59.5);
	json_decref(r);
	/* The file holds the four complete minutes. */
	assert_int_equal(db_count(f->path, "SELECT count(*) FROM minute"), 4);
	snprintf(sql, sizeof(sql),
		 "SELECT n FROM minute WHERE ts = %lld AND series = 1",
		 (long long)H0);
	assert_int_equal(db_count(f->path, sql), 60);
	hclose(f);

	/* Hour rows, once minute rows are past retention (reopened with 1 h
	 * of minutes; a sample of another series sets the clock). */
	f->cfg.minute_retention_ms = 3600 * 1000;
	hopen(f);
	assert_int_equal(history_record(f->h, MS(H0 + 7201), "other", 1), 0);
	flush(f);
	/* Only the minute at H0 + 7200 is within the hour kept. */
	assert_int_equal(db_count(f->path, "SELECT count(*) FROM minute"), 1);
	r = q(f, "t_gauge", "a=1", H0, H0 + 7200, 0, NULL);
	assert_string_equal(source(r), "hour");
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 2);
	assert_int_equal(pt_ts(p, 0), H0);
	assert_true(pt_v(p, 0) == 59.5); /* avg of 0..119 */
	assert_int_equal(pt_ts(p, 1), H0 + 7200); /* written at close */
	assert_true(pt_v(p, 1) == 1000);
	json_decref(r);
	r = q(f, "t_gauge", "a=1", H0, H0 + 3599, 0, "max");
	assert_true(pt_v(points(r, NULL, NULL), 0) == 119);
	json_decref(r);
	r = q(f, "t_gauge", "a=1", H0, H0 + 3599, 0, "min");
	assert_true(pt_v(points(r, NULL, NULL), 0) == 0);
	json_decref(r);
	r = q(f, "t_gauge", "a=2", H0, H0 + 3599, 0, "last");
	assert_true(pt_v(points(r, NULL, NULL), 0) == 1190);
	json_decref(r);
}

static void test_query_selection_and_errors(void **state)
{
	struct fx *f = *state;
	int64_t t0 = H0 + 36000, now = t0 + 3 * 3600;
	json_t *r, *p;

	f->cfg.minute_retention_ms = 30ull * 86400 * 1000;
	hopen(f);
	/* Three hours, one sample per second. */
	for (int64_t t = t0; t <= now; t++) {
		double v = (double)(t - t0);

		assert_int_equal(history_record(f->h, MS(t),
						"sel{k=\"x,y\",z=\"1\"}", v),
				 0);
		assert_int_equal(history_record(f->h, MS(t), "sel{z=\"2\"}",
						-v),
				 0);
	}
	flush(f);

	/* The last 10 minutes: memory, 1 s. */
	r = q(f, "sel", "z=1", now - 600, now, 0, NULL);
	assert_string_equal(source(r), "memory");
	assert_int_equal(json_integer_value(json_object_get(r, "resolution")), 1);
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 601);
	assert_int_equal(pt_ts(p, 600), now);
	assert_true(pt_v(p, 600) == (double)(now - t0));
	json_decref(r);
	/* A step of 10 s over memory: averages of 10 seconds. */
	r = q(f, "sel", "z=1", now - 600, now, 10, NULL);
	p = points(r, NULL, NULL);
	assert_int_equal(pt_ts(p, 0) % 10, 0);
	assert_true(pt_v(p, 1) == (double)(pt_ts(p, 1) - t0) + 4.5);
	json_decref(r);
	/* Quoted matcher with a comma; a matcher on a missing label
	 * matches the empty value only. */
	r = q(f, "sel", "k=\"x,y\"", now - 5, now, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(r, "series")), 1);
	json_decref(r);
	r = q(f, "sel", "k=", now - 5, now, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(r, "series")), 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_array_get(
							    json_object_get(
								    r, "series"),
							    0),
						    "labels"),
				    "z")),
			    "2");
	json_decref(r);
	/* No matcher: both, sorted by labels. */
	r = q(f, "sel", "", now - 5, now, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(r, "series")), 2);
	json_decref(r);
	/* Older than the memory hour: minute rows, including the minute in
	 * progress. */
	r = q(f, "sel", "z=1", now - 7200, now, 0, NULL);
	assert_string_equal(source(r), "minute");
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 121);
	assert_int_equal(pt_ts(p, 120), now - now % 60);
	json_decref(r);
	/* Older than minute retention: hour rows. */
	r = q(f, "sel", "z=1", now - 40 * 86400, now, 0, NULL);
	assert_string_equal(source(r), "hour");
	assert_int_equal(json_array_size(points(r, NULL, NULL)), 4);
	json_decref(r);
	/* A future end is cut at now; an unknown metric gives no series. */
	r = q(f, "sel", "z=1", now - 10, now + 86400 * 365, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(r, "to")), now);
	json_decref(r);
	r = q(f, "nothing_here", NULL, now - 7200, now, 0, NULL);
	assert_int_equal(json_array_size(json_object_get(r, "series")), 0);
	json_decref(r);

	q_bad(f, NULL, NULL, 0, 1000, 0, NULL, "metric");
	q_bad(f, "bad-name", NULL, 0, 1000, 0, NULL, "metric");
	q_bad(f, "sel", "a b=1", MS(now - 60), MS(now), 0, NULL, "labels");
	q_bad(f, "sel", "1a=1", MS(now - 60), MS(now), 0, NULL, "labels");
	q_bad(f, "sel", "a=\"x", MS(now - 60), MS(now), 0, NULL, "labels");
	q_bad(f, "sel", "a=1,a=2", MS(now - 60), MS(now), 0, NULL, "labels");
	q_bad(f, "sel", NULL, MS(now), MS(now - 60), 0, NULL, "from");
	q_bad(f, "sel", NULL, MS(now - 60), MS(now), 1500, NULL, "step");
	q_bad(f, "sel", NULL, MS(now - 60), MS(now), 0, "median", "agg");
	/* 10 days of minutes is more than a series may hold... */
	q_bad(f, "sel", NULL, MS(now - 10 * 86400), MS(now), 60000, NULL,
	      "raise step");
	/* ... unless the step is left to the history. */
	r = q(f, "sel", "z=1", now - 10 * 86400, now, 0, NULL);
	assert_true(json_integer_value(json_object_get(r, "step")) > 60);
	assert_int_equal(json_integer_value(json_object_get(r, "step")) % 60, 0);
	json_decref(r);
}

/* An answer too large is refused before its rows are read: 101 series
 * of 10 001 minutes is more than HISTORY_QUERY_POINTS_MAX points. */
static void test_query_too_big(void **state)
{
	struct fx *f = *state;
	int64_t t = H0 + 20 * 86400;

	hopen(f);
	for (int64_t at = t; at <= t + 60; at += 60)
		for (int s = 0; s < 101; s++) {
			char key[64];

			snprintf(key, sizeof(key), "wide{s=\"%d\"}", s);
			assert_int_equal(history_record(f->h, MS(at), key, s), 0);
		}
	flush(f);
	q_bad(f, "wide", NULL, MS(t + 60 - 10000 * 60), MS(t + 60), 60000, NULL,
	      "101 series");
	/* Narrowed by labels, the same range is fine. */
	json_decref(q(f, "wide", "s=7", t + 60 - 10000 * 60, t + 60, 60, NULL));
}

static void test_retention(void **state)
{
	struct fx *f = *state;
	int64_t t, end = H0 + 3 * 86400;
	json_t *st;

	f->cfg.minute_retention_ms = 3600 * 1000;
	f->cfg.hour_retention_ms = 86400 * 1000;
	hopen(f);
	/* Three days, a sample a minute, three series. */
	for (t = H0; t <= end; t += 60)
		for (int s = 0; s < 3; s++) {
			char key[64];

			snprintf(key, sizeof(key), "ret{s=\"%d\"}", s);
			assert_int_equal(history_record(f->h, MS(t), key, 1), 0);
		}
	flush(f);
	/* One more batch, to be sure the prune ran after the inserts. */
	assert_int_equal(history_record(f->h, MS(end + 3600), "ret{s=\"0\"}", 1),
			 0);
	flush(f);
	assert_true(db_count(f->path, "SELECT min(ts) FROM minute") >=
		    end + 3600 - 3600);
	assert_true(db_count(f->path, "SELECT min(ts) FROM hour") >=
		    end + 3600 - 86400);
	assert_true(db_count(f->path, "SELECT count(*) FROM hour") > 0);
	st = history_status_json(f->h);
	assert_true(json_integer_value(json_object_get(st, "rows_pruned")) > 0);
	assert_int_equal(json_integer_value(json_object_get(st, "write_errors")),
			 0);
	json_decref(st);
}

static void test_max_bytes(void **state)
{
	struct fx *f = *state;
	int64_t t, end = H0 + 600 * 60;
	int64_t pages, psize, oldest;
	json_t *st;

	f->cfg.max_bytes = 1 << 20;
	hopen(f);
	/* 100 series, 10 hours of minutes: about 60 000 rows, several
	 * times 1 MiB. */
	for (t = H0; t < end; t += 60)
		for (int s = 0; s < 100; s++) {
			char key[64];

			snprintf(key, sizeof(key), "big{series=\"%d\"}", s);
			assert_int_equal(history_record(f->h, MS(t), key,
							(double)t + s),
					 0);
		}
	flush(f);
	assert_int_equal(history_record(f->h, MS(end), "big{series=\"0\"}", 0),
			 0);
	flush(f);
	pages = db_count(f->path, "PRAGMA page_count");
	psize = db_count(f->path, "PRAGMA page_size");
	print_message("history file: %lld pages of %lld bytes\n",
		      (long long)pages, (long long)psize);
	assert_true(pages * psize <= (1 << 20));
	oldest = db_count(f->path, "SELECT min(ts) FROM minute");
	/* The oldest minutes went, the newest stayed. */
	assert_true(oldest > H0);
	assert_true(db_count(f->path, "SELECT max(ts) FROM minute") >=
		    end - 120);
	/* Hour rows were kept while minute rows could go. */
	assert_int_equal(db_count(f->path, "SELECT min(ts) FROM hour"), H0);
	st = history_status_json(f->h);
	assert_int_equal(json_integer_value(json_object_get(st, "write_errors")),
			 0);
	assert_true(json_real_value(json_object_get(st, "db_bytes")) <=
		    (1 << 20));
	json_decref(st);
}

static void test_restart(void **state)
{
	struct fx *f = *state;
	json_t *r, *p;
	int64_t t0 = H0 + 600;

	hopen(f);
	/* 2.5 minutes: minute 0 and 1 whole, minute 2 half. */
	for (int i = 0; i < 150; i++)
		assert_int_equal(history_record(f->h, MS(t0 + i), "rs", i), 0);
	hclose(f);
	assert_int_equal(db_count(f->path, "SELECT count(*) FROM minute"), 3);

	hopen(f);
	/* The same minute goes on in the new process: 10 more samples of
	 * 1000 each. */
	for (int i = 150; i < 160; i++)
		assert_int_equal(history_record(f->h, MS(t0 + i), "rs", 1000),
				 0);
	r = q(f, "rs", NULL, t0, t0 + 159, 0, NULL);
	assert_string_equal(source(r), "minute");
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 3);
	assert_true(pt_v(p, 0) == 29.5);
	assert_true(pt_v(p, 1) == 89.5);
	/* 30 samples 120..149 (avg 134.5) and 10 of 1000. */
	assert_true(fabs(pt_v(p, 2) - (134.5 * 30 + 1000 * 10) / 40) < 1e-9);
	json_decref(r);
	hclose(f);

	/* And again, cold, from the file alone (a sample of another series
	 * sets the clock, which otherwise is the wall clock). */
	hopen(f);
	assert_int_equal(history_record(f->h, MS(t0 + 170), "other", 1), 0);
	r = q(f, "rs", NULL, t0, t0 + 159, 0, NULL);
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 3);
	assert_true(fabs(pt_v(p, 2) - (134.5 * 30 + 1000 * 10) / 40) < 1e-9);
	json_decref(r);
	r = q(f, "rs", NULL, t0, t0 + 159, 0, "last");
	assert_true(pt_v(points(r, NULL, NULL), 2) == 1000);
	json_decref(r);
	assert_int_equal(db_count(f->path,
				  "SELECT n FROM minute ORDER BY ts DESC LIMIT 1"),
			 40);
}

static void test_registry(void **state)
{
	struct fx *f = *state;
	struct metrics *reg;
	struct metrics_counter c;
	struct metrics_gauge g;
	struct metrics_hist lat;
	struct metrics_label lab[] = {{"route", "checkout"}};
	struct metrics_desc dc = {.name = "req_total", .help = "x",
				  .labels = lab, .nlabels = 1, .decimals = 3};
	struct metrics_desc dg = {.name = "inflight", .help = "x"};
	struct metrics_desc dh = {.name = "lat_seconds", .help = "x",
				  .labels = lab, .nlabels = 1};
	int64_t t0 = H0 + 120;
	json_t *r, *p;

	hopen(f);
	assert_int_equal(metrics_new(2, &reg), 0);
	assert_int_equal(metrics_counter_reg(reg, &dc, &c), 0);
	assert_int_equal(metrics_gauge_reg(reg, &dg, &g), 0);
	assert_int_equal(metrics_hist_reg(reg, &dh, &lat), 0);
	/* Before the first sample: the baseline, not counted. */
	metrics_hist_record(reg, 0, lat, 777777);
	for (int i = 0; i < 60; i++) {
		metrics_counter_add(reg, i % 2, c, 1500);
		metrics_gauge_set(reg, 1, g, i);
		if (i == 1)
			for (int k = 0; k < 1000; k++)
				metrics_hist_record(reg, k % 2, lat, 1000);
		if (i == 30)
			for (int k = 0; k < 10; k++)
				metrics_hist_record(reg, 0, lat, 500000);
		assert_int_equal(history_sample(f->h, reg, MS(t0 + i) + 17), 0);
	}
	/* Sampling twice in a second changes nothing. */
	assert_int_equal(history_sample(f->h, reg, MS(t0 + 59) + 900), 0);

	r = q(f, "req_total", "route=checkout", t0, t0 + 59, 0, NULL);
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 60);
	assert_true(pt_v(p, 0) == 1.5); /* decimals 3 */
	assert_true(pt_v(p, 59) == 90);
	json_decref(r);
	r = q(f, "inflight", NULL, t0, t0 + 59, 0, "max");
	assert_true(pt_v(points(r, NULL, NULL), 59) == 59);
	json_decref(r);
	r = q(f, "lat_seconds_count", NULL, t0, t0 + 59, 0, NULL);
	p = points(r, NULL, NULL);
	assert_true(pt_v(p, 0) == 1); /* cumulative, like Prometheus */
	assert_true(pt_v(p, 59) == 1011);
	json_decref(r);
	r = q(f, "lat_seconds_sum", NULL, t0, t0 + 59, 0, NULL);
	assert_true(fabs(pt_v(points(r, NULL, NULL), 59) -
			 (0.777777 + 1 + 5)) < 1e-9);
	json_decref(r);
	/* Per second: only the seconds with observations. */
	r = q(f, "lat_seconds", "quantile=0.99", t0, t0 + 59, 0, NULL);
	p = points(r, NULL, NULL);
	assert_int_equal(json_array_size(p), 2);
	assert_int_equal(pt_ts(p, 0), t0 + 1);
	assert_true(fabs(pt_v(p, 0) - 0.001) / 0.001 < 0.004);
	assert_int_equal(pt_ts(p, 1), t0 + 30);
	assert_true(fabs(pt_v(p, 1) - 0.5) / 0.5 < 0.004);
	json_decref(r);

	/* Close the minute, then read its row: the exact quantiles of all
	 * 1010 observations, not averages of the per-second ones. */
	assert_int_equal(history_sample(f->h, reg, MS(t0 + 2 * 3600)), 0);
	flush(f);
	r = q(f, "lat_seconds", "quantile=0.99", t0, t0 + 59, 0, NULL);
	assert_string_equal(source(r), "minute");
	p = points(r, NULL, NULL);
	assert_true(fabs(pt_v(p, 0) - 0.001) / 0.001 < 0.004);
	json_decref(r);
	r = q(f, "lat_seconds", "quantile=0.999", t0, t0 + 59, 0, NULL);
	assert_true(fabs(pt_v(points(r, NULL, NULL), 0) - 0.5) / 0.5 < 0.004);
	json_decref(r);
	r = q(f, "lat_seconds", "quantile=0.99", t0, t0 + 59, 0, "max");
	assert_true(fabs(pt_v(points(r, NULL, NULL), 0) - 0.5) / 0.5 < 0.004);
	json_decref(r);
	hclose(f);
	metrics_free(reg);
}

/* What a sample costs: 1000 gauges and counters and 20 histograms over
 * 3 shards, the way the daemon feeds the history once a second. Printed,
 * not asserted. */
static void test_sample_cost(void **state)
{
	struct fx *f = *state;
	struct metrics *reg;
	struct metrics_hist hs[20];
	struct timespec a, b;
	double ns, first;
	int64_t t0 = H0 + 4 * 86400;
	json_t *st;

	hopen(f);
	assert_int_equal(metrics_new(3, &reg), 0);
	for (int i = 0; i < 1000; i++) {
		char v[16];
		struct metrics_label l[] = {{"i", v}};
		struct metrics_desc d = {.name = i % 2 ? "cost_total" : "cost_g",
					 .help = "x", .labels = l, .nlabels = 1};
		struct metrics_counter c;
		struct metrics_gauge g;

		snprintf(v, sizeof(v), "%d", i);
		if (i % 2)
			assert_int_equal(metrics_counter_reg(reg, &d, &c), 0);
		else
			assert_int_equal(metrics_gauge_reg(reg, &d, &g), 0);
	}
	for (int i = 0; i < 20; i++) {
		char v[16];
		struct metrics_label l[] = {{"route", v}};
		struct metrics_desc d = {.name = "cost_seconds", .help = "x",
					 .labels = l, .nlabels = 1};

		snprintf(v, sizeof(v), "r%d", i);
		assert_int_equal(metrics_hist_reg(reg, &d, &hs[i]), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(history_sample(f->h, reg, MS(t0)), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	first = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int s = 1; s <= 120; s++) {
		for (int i = 0; i < 20; i++)
			for (int k = 0; k < 100; k++)
				metrics_hist_record(reg, (unsigned)k % 3, hs[i],
						    (uint64_t)(1000 + k * 37 + s));
		assert_int_equal(history_sample(f->h, reg, MS(t0 + s)), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 120;
	st = history_status_json(f->h);
	print_message("history_sample: first %.2f ms (maps %lld series), then "
		      "%.3f ms per second; memory %.1f MiB\n",
		      first / 1e6,
		      (long long)json_integer_value(json_object_get(st, "series")),
		      ns / 1e6,
		      json_real_value(json_object_get(st, "memory_bytes")) /
			      1048576.0);
	json_decref(st);
	hclose(f);
	metrics_free(reg);
}

static void params_bad(struct fx *f, const char *qs, uint64_t now_ms,
		       const char *want)
{
	json_t *out = NULL;

	assert_int_equal(history_query_params(f->h, qs, now_ms, &out), -EINVAL);
	if (!strstr(json_string_value(json_object_get(out, "error")), want))
		fail_msg("%s: error \"%s\" does not mention \"%s\"", qs,
			 json_string_value(json_object_get(out, "error")), want);
	json_decref(out);
}

/* GET /api/v1/query's parameters. */
static void test_query_params(void **state)
{
	struct fx *f = *state;
	int64_t now = H0 + 7200;
	json_t *r = NULL;

	hopen(f);
	for (int64_t t = now - 300; t <= now; t++)
		assert_int_equal(history_record(f->h, MS(t), "pq{route=\"a b\"}",
						(double)(t % 7)),
				 0);
	/* Defaults: the last hour (longer than this history has run, so
	 * minute rows), auto step; escapes decoded. */
	assert_int_equal(history_query_params(f->h,
					      "metric=pq&labels=route%3D%22a+b%22",
					      MS(now), &r),
			 0);
	assert_string_equal(json_string_value(json_object_get(r, "source")),
			    "minute");
	assert_int_equal(json_integer_value(json_object_get(r, "from")),
			 now - 3600);
	assert_int_equal(json_array_size(points(r, NULL, NULL)), 6);
	json_decref(r);
	assert_int_equal(history_query_params(f->h, "from=-300&metric=pq",
					      MS(now), &r),
			 0);
	assert_string_equal(json_string_value(json_object_get(r, "source")),
			    "memory");
	assert_int_equal(json_array_size(points(r, NULL, NULL)), 301);
	json_decref(r);
	/* Relative from, a duration step, agg, absolute to with decimals. */
	{
		char qs[200];

		snprintf(qs, sizeof(qs),
			 "metric=pq&from=-2m&to=%lld.250&step=1m&agg=max&",
			 (long long)now);
		assert_int_equal(history_query_params(f->h, qs, MS(now) + 999,
						      &r),
				 0);
		assert_int_equal(json_integer_value(json_object_get(r, "step")),
				 60);
		assert_int_equal(json_integer_value(json_object_get(r, "to")),
				 now);
		assert_true(pt_v(points(r, NULL, NULL), 0) == 6);
		json_decref(r);
	}
	params_bad(f, "", MS(now), "metric");
	params_bad(f, "metric=pq&foo=1", MS(now), "unknown parameter foo");
	params_bad(f, "metric=pq&metric=pq", MS(now), "given twice");
	params_bad(f, "metric=pq&from=yesterday", MS(now), "from");
	params_bad(f, "metric=pq&to=5m", MS(now), "to");
	params_bad(f, "metric=pq&step=1.5", MS(now), "step");
	params_bad(f, "metric=pq&step=-5", MS(now), "step");
	params_bad(f, "metric=p%zq", MS(now), "percent");
	params_bad(f, "metric=p%2", MS(now), "percent");
	params_bad(f, "metric", MS(now), "malformed");
	params_bad(f, "metric=pq&agg=p99", MS(now), "agg");
}

/* metrics_foreach() shows every series once, labels sorted, with the
 * handle that reads it back; metrics_series_count() counts them. */
static void test_metrics_foreach(void **state)
{
	struct metrics *reg;
	struct metrics_counter c;
	struct metrics_gauge g;
	struct metrics_hist hh;
	struct metrics_label lab[] = {{"z", "last"}, {"a", "q\"uote"}};
	struct metrics_desc dc = {.name = "c_total", .help = "c", .labels = lab,
				  .nlabels = 2, .decimals = 2};
	struct metrics_desc dg = {.name = "g", .help = "g"};
	struct metrics_desc dh = {.name = "h_seconds", .help = "h"};
	struct seen seen = {0};

	(void)state;
	assert_int_equal(metrics_new(2, &reg), 0);
	seen.reg = reg;
	assert_int_equal(metrics_series_count(reg), 0);
	assert_int_equal(metrics_counter_reg(reg, &dc, &c), 0);
	assert_int_equal(metrics_gauge_reg(reg, &dg, &g), 0);
	assert_int_equal(metrics_hist_reg(reg, &dh, &hh), 0);
	assert_int_equal(metrics_counter_reg(reg, &dc, &c), 0); /* again */
	assert_int_equal(metrics_series_count(reg), 3);
	metrics_counter_add(reg, 1, c, 250);
	metrics_foreach(reg, foreach_cb, &seen);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.c, 1);
	assert_int_equal(seen.g, 1);
	assert_int_equal(seen.h, 1);
	metrics_free(reg);
}

static void test_open_errors(void **state)
{
	struct fx *f = *state;
	struct history *h = NULL;
	char err[512], path[256];
	sqlite3 *db;

	f->cfg.path = "/nonexistent-dir/x/history.db";
	assert_true(history_open(&f->loop, &f->cfg, &h, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "does not exist"));

	snprintf(path, sizeof(path), "%s/text.db", f->dir);
	{
		FILE *fp = fopen(path, "w");

		fputs("this is not a database at all, but some text that goes "
		      "on for more than a hundred bytes so SQLite reads a "
		      "header.................................\n",
		      fp);
		fclose(fp);
	}
	f->cfg.path = path;
	assert_true(history_open(&f->loop, &f->cfg, &h, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "SQLite database"));

	snprintf(path, sizeof(path), "%s/shop.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE orders(id)", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_true(history_open(&f->loop, &f->cfg, &h, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "not a storekeep history"));

	snprintf(path, sizeof(path), "%s/newer.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "PRAGMA application_id = 1936418921;"
				      "PRAGMA user_version = 99",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_true(history_open(&f->loop, &f->cfg, &h, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "newer storekeep"));

	if (geteuid() != 0) {
		char ro[160];

		snprintf(ro, sizeof(ro), "%s/ro", f->dir);
		assert_int_equal(mkdir(ro, 0555), 0);
		snprintf(path, sizeof(path), "%s/history.db", ro);
		assert_true(history_open(&f->loop, &f->cfg, &h, err,
					 sizeof(err)) < 0);
		assert_non_null(strstr(err, "not writable"));
	} else {
		print_message("running as root: the unwritable directory case "
			      "is not checked\n");
	}
	assert_null(h);
	f->cfg.path = f->path;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_downsampling, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_query_selection_and_errors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_too_big, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup,
						teardown),
		cmocka_unit_test(test_metrics_foreach),
		cmocka_unit_test_setup_teardown(test_query_params, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sample_cost, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
