/*
 * test_metrics.c - monitor/metrics.h: registration rules, per-shard
 * counting summed on read, the Prometheus exposition read back by a
 * strict parser (promparse.h), registration while workers write, and
 * the cost of an update from two threads at once.
 *
 * The exposition checks are value-exact: every sample the parser finds is
 * compared with what the test recorded, label values come back unescaped
 * byte for byte, and the order of families and series is the documented
 * one. Timings are printed, never asserted.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "monitor/metrics.h"
#include "promparse.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static struct metrics *mk(unsigned n)
{
	struct metrics *m = NULL;

	assert_int_equal(metrics_new(n, &m), 0);
	assert_non_null(m);
	return m;
}

/* --- registration ----------------------------------------------------------
 */

static void test_new_bounds(void **state)
{
	struct metrics *m = NULL;

	(void)state;
	assert_int_equal(metrics_new(0, &m), -EINVAL);
	assert_int_equal(metrics_new(METRICS_SHARDS_MAX + 1, &m), -EINVAL);
	assert_null(m);
	m = mk(3);
	assert_int_equal(metrics_shards(m), 3);
	metrics_free(m);
	metrics_free(NULL);
}

static void test_register_rules(void **state)
{
	struct metrics *m = mk(2);
	struct metrics_label ab[] = {{"route", "cart"}, {"method", "GET"}};
	struct metrics_label ba[] = {{"method", "GET"}, {"route", "cart"}};
	struct metrics_label other[] = {{"route", "cart"}, {"verb", "GET"}};
	struct metrics_label dup[] = {{"route", "a"}, {"route", "b"}};
	struct metrics_label le[] = {{"le", "1"}};
	struct metrics_label bad_utf8[] = {{"route", "\xc3\x28"}};
	struct metrics_label reserved[] = {{"__name", "x"}};
	struct metrics_label many[METRICS_LABELS_MAX + 1];
	char names[METRICS_LABELS_MAX + 1][8];
	struct metrics_desc d = {
		.name = "storekeep_requests_total",
		.help = "Requests.",
		.labels = ab,
		.nlabels = 2,
	};
	struct metrics_counter c1 = {0}, c2 = {0}, c3 = {0};
	struct metrics_gauge g = {0};
	struct metrics_hist h = {0};
	const uint64_t desc_bounds[] = {10, 5};

	(void)state;
	assert_int_equal(metrics_counter_reg(m, &d, &c1), 0);
	assert_true(c1.i != 0);
	/* Same name and labels, in another order: the same series. */
	d.labels = ba;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), 0);
	assert_int_equal(c1.i, c2.i);
	/* Another value: another series of the same family. */
	ab[0].value = "checkout";
	d.labels = ab;
	assert_int_equal(metrics_counter_reg(m, &d, &c3), 0);
	assert_true(c3.i != c1.i);
	/* The name with another type, label names or decimals. */
	assert_int_equal(metrics_gauge_reg(m, &d, &g), -EINVAL);
	assert_int_equal(g.i, 0);
	d.labels = other;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.labels = ab;
	d.nlabels = 1;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.nlabels = 2;
	d.decimals = 3;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.decimals = 0;
	/* Bad names and labels. */
	d.name = "9lives";
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.name = "has space";
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.name = "ns:ok_total";
	assert_int_equal(metrics_counter_reg(m, &d, &c2), 0);
	d.labels = dup;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.labels = bad_utf8;
	d.nlabels = 1;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.labels = reserved;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	for (int i = 0; i <= METRICS_LABELS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "l%d", i);
		many[i].name = names[i];
		many[i].value = "v";
	}
	d.labels = many;
	d.nlabels = METRICS_LABELS_MAX + 1;
	assert_int_equal(metrics_counter_reg(m, &d, &c2), -EINVAL);
	d.nlabels = METRICS_LABELS_MAX;
	d.name = "wide_total";
	assert_int_equal(metrics_counter_reg(m, &d, &c2), 0);
	/* Histograms: no `le` label, ascending bounds, same bounds. */
	d.name = "storekeep_latency_seconds";
	d.labels = le;
	d.nlabels = 1;
	assert_int_equal(metrics_hist_reg(m, &d, &h), -EINVAL);
	d.labels = NULL;
	d.nlabels = 0;
	d.bounds = desc_bounds;
	d.nbounds = 2;
	assert_int_equal(metrics_hist_reg(m, &d, &h), -EINVAL);
	d.bounds = NULL;
	assert_int_equal(metrics_hist_reg(m, &d, &h), 0);
	assert_true(h.i != 0);
	d.bounds = desc_bounds + 1;
	d.nbounds = 1;
	d.decimals = 6;
	assert_int_equal(metrics_hist_reg(m, &d, &h), -EINVAL);
	d.name = NULL;
	assert_int_equal(metrics_gauge_reg(m, &d, &g), -EINVAL);
	assert_int_equal(metrics_gauge_reg(m, NULL, &g), -EINVAL);
	metrics_free(m);
}

/* --- counting
 * ----------------------------------------------------------------- */

static void test_shards_sum(void **state)
{
	struct metrics *m = mk(4);
	struct metrics_desc dc = {.name = "c_total", .help = "c"};
	struct metrics_desc dg = {.name = "g", .help = "g"};
	struct metrics_desc dh = {.name = "h_seconds", .help = "h"};
	struct metrics_counter c, zc = {0};
	struct metrics_gauge g, zg = {0};
	struct metrics_hist h, zh = {0};
	struct hist *merged = hist_new();

	(void)state;
	assert_non_null(merged);
	assert_int_equal(metrics_counter_reg(m, &dc, &c), 0);
	assert_int_equal(metrics_gauge_reg(m, &dg, &g), 0);
	assert_int_equal(metrics_hist_reg(m, &dh, &h), 0);
	for (unsigned w = 0; w < 4; w++) {
		metrics_counter_add(m, w, c, w + 1);
		metrics_gauge_add(m, w, g, 1);
		metrics_hist_record(m, w, h, 1000 * (w + 1));
	}
	metrics_gauge_add(m, 2, g, -0.5);
	assert_int_equal(metrics_counter_read(m, c), 10);
	assert_true(metrics_gauge_read(m, g) == 3.5);
	metrics_gauge_set(m, 3, g, 10);
	assert_true(metrics_gauge_read(m, g) == 12.5);
	metrics_counter_set(m, 0, c, 100);
	assert_int_equal(metrics_counter_read(m, c), 109);
	metrics_hist_read(m, h, merged);
	assert_int_equal(hist_count(merged), 4);
	assert_int_equal(hist_sum(merged), 10000);
	hist_record(metrics_hist_of(m, 1, h), 7);
	metrics_hist_read(m, h, merged);
	assert_int_equal(hist_count(merged), 5);
	/* Zeroed handles: accepted, discarded, read as 0. */
	metrics_counter_add(m, 0, zc, 5);
	metrics_gauge_add(m, 1, zg, 5);
	metrics_hist_record(m, 2, zh, 5);
	assert_int_equal(metrics_counter_read(m, zc), 0);
	assert_true(metrics_gauge_read(m, zg) == 0);
	metrics_hist_read(m, zh, merged);
	assert_int_equal(hist_count(merged), 0);
	hist_free(merged);
	metrics_free(m);
}

/* --- exposition -------------------------------------------------------------
 */

static const char *nasty = "a\\b\"c\nd é {}=,";

static void test_exposition(void **state)
{
	struct metrics *m = mk(3);
	static const char *const routes[] = {"r10", "r2", "checkout", "r1"};
	struct metrics_counter rc[4], esc, ms;
	struct metrics_gauge inflight, temp;
	struct metrics_hist lat[2], sizes;
	const uint64_t size_bounds[] = {100, 1000, 10000};
	struct buf o1, o2;
	struct pp_doc doc;
	const struct pp_sample *s;
	char idx[8];

	(void)state;
	for (int i = 0; i < 4; i++) {
		struct metrics_label l[] = {{"status", "2xx"},
					    {"route", routes[i]}};
		struct metrics_desc d = {
			.name = "storekeep_http_requests_total",
			.help = "Requests by route\\status\nclass.",
			.labels = l,
			.nlabels = 2,
		};

		assert_int_equal(metrics_counter_reg(m, &d, &rc[i]), 0);
		for (unsigned w = 0; w < 3; w++)
			metrics_counter_add(m, w, rc[i],
					    (uint64_t)(i + 1) * 10);
	}
	{
		struct metrics_label l[] = {{"path", nasty}};
		struct metrics_desc d = {
			.name = "storekeep_escapes_total",
			.help = "E.",
			.labels = l,
			.nlabels = 1,
		};

		assert_int_equal(metrics_counter_reg(m, &d, &esc), 0);
		metrics_counter_add(m, 1, esc, 1);
	}
	{
		struct metrics_desc d = {
			.name = "storekeep_busy_seconds_total",
			.help = "Milliseconds shown as seconds.",
			.decimals = 3,
		};

		assert_int_equal(metrics_counter_reg(m, &d, &ms), 0);
		metrics_counter_add(m, 0, ms, 1234);
	}
	{
		struct metrics_desc d = {
			.name = "storekeep_in_flight",
			.help = "In flight.",
		};
		struct metrics_desc t = {
			.name = "storekeep_temperature",
			.help = "Odd values.",
		};

		assert_int_equal(metrics_gauge_reg(m, &d, &inflight), 0);
		metrics_gauge_add(m, 0, inflight, 3);
		metrics_gauge_add(m, 1, inflight, -1);
		assert_int_equal(metrics_gauge_reg(m, &t, &temp), 0);
		metrics_gauge_set(m, 2, temp, 0.1);
	}
	for (int i = 0; i < 2; i++) {
		struct metrics_label l[] = {{"pool", i ? "shop" : "api"}};
		struct metrics_desc d = {
			.name = "storekeep_latency_seconds",
			.help = "Latency.",
			.labels = l,
			.nlabels = 1,
			.decimals = METRICS_US_TO_S,
		};

		assert_int_equal(metrics_hist_reg(m, &d, &lat[i]), 0);
	}
	/* 3 ms, 30 ms, 3 s, 30 s on the shop pool, spread over shards. */
	metrics_hist_record(m, 0, lat[1], 3000);
	metrics_hist_record(m, 1, lat[1], 30000);
	metrics_hist_record(m, 2, lat[1], 3000000);
	metrics_hist_record(m, 2, lat[1], 30000000);
	{
		struct metrics_desc d = {
			.name = "storekeep_body_bytes",
			.help = "Sizes.",
			.bounds = size_bounds,
			.nbounds = 3,
		};

		assert_int_equal(metrics_hist_reg(m, &d, &sizes), 0);
		metrics_hist_record(m, 0, sizes, 50);
		metrics_hist_record(m, 0, sizes, 5000);
	}

	buf_init(&o1);
	buf_init(&o2);
	metrics_write_prometheus(m, &o1);
	metrics_write_prometheus(m, &o2);
	assert_int_equal(o1.len, o2.len);
	assert_memory_equal(o1.data, o2.data, o1.len);
	if (!pp_parse(buf_cstr(&o1), &doc))
		fail_msg("parse: %s\n%s", doc.err, buf_cstr(&o1));

	/* Families sorted by name, each with HELP and TYPE. */
	for (size_t i = 0; i < doc.nf; i++) {
		assert_non_null(doc.f[i].help);
		assert_non_null(doc.f[i].type);
		if (i)
			assert_true(strcmp(doc.f[i - 1].name, doc.f[i].name) <
				    0);
	}
	assert_int_equal(doc.nf, 7);
	assert_string_equal(
		pp_family_get(&doc, "storekeep_http_requests_total", false)
			->help,
		"Requests by route\\status\nclass.");
	assert_string_equal(
		pp_family_get(&doc, "storekeep_latency_seconds", false)->type,
		"histogram");

	/* Series in natural order of their label values. */
	{
		struct pp_family *f = pp_family_get(
			&doc, "storekeep_http_requests_total", false);
		static const char *const want[] = {"checkout", "r1", "r2",
						   "r10"};

		assert_int_equal(f->nsamples, 4);
		for (size_t k = 0; k < 4; k++)
			assert_string_equal(
				pp_label(&doc.s[f->first + k], "route"),
				want[k]);
	}
	for (int i = 0; i < 4; i++) {
		s = pp_find(&doc, "storekeep_http_requests_total", "route",
			    routes[i], "status", "2xx", NULL);
		assert_non_null(s);
		assert_true(s->value == (i + 1) * 30);
	}
	s = pp_find(&doc, "storekeep_escapes_total", "path", nasty, NULL);
	assert_non_null(s);
	assert_true(s->value == 1);
	assert_non_null(
		strstr(buf_cstr(&o1), "path=\"a\\\\b\\\"c\\nd é {}=,\""));
	s = pp_find(&doc, "storekeep_busy_seconds_total", NULL);
	assert_true(s && s->value == 1.234);
	s = pp_find(&doc, "storekeep_in_flight", NULL);
	assert_true(s && s->value == 2);
	assert_non_null(strstr(buf_cstr(&o1), "storekeep_temperature 0.1\n"));

	/* The histogram, bucket by bucket. */
	{
		static const struct {
			const char *le;
			double n;
		} want[] = {{"0.001", 0}, {"0.0025", 0}, {"0.005", 1},
			    {"0.01", 1},  {"0.025", 1},	 {"0.05", 2},
			    {"0.1", 2},	  {"0.25", 2},	 {"0.5", 2},
			    {"1", 2},	  {"2.5", 2},	 {"5", 3},
			    {"10", 3},	  {"+Inf", 4}};

		assert_int_equal(metrics_default_nbounds + 1, NELEMS(want));
		for (size_t k = 0; k < NELEMS(want); k++) {
			s = pp_find(&doc, "storekeep_latency_seconds_bucket",
				    "pool", "shop", "le", want[k].le, NULL);
			assert_non_null(s);
			assert_true(s->value == want[k].n);
		}
		s = pp_find(&doc, "storekeep_latency_seconds_count", "pool",
			    "shop", NULL);
		assert_true(s && s->value == 4);
		s = pp_find(&doc, "storekeep_latency_seconds_sum", "pool",
			    "shop", NULL);
		assert_true(s && s->value == 33.033);
		s = pp_find(&doc, "storekeep_latency_seconds_count", "pool",
			    "api", NULL);
		assert_true(s && s->value == 0);
	}
	s = pp_find(&doc, "storekeep_body_bytes_bucket", "le", "1000", NULL);
	assert_true(s && s->value == 1);
	s = pp_find(&doc, "storekeep_body_bytes_bucket", "le", "10000", NULL);
	assert_true(s && s->value == 2);
	s = pp_find(&doc, "storekeep_body_bytes_sum", NULL);
	assert_true(s && s->value == 5050);
	pp_free(&doc);

	/* Registering everything again changes nothing. */
	for (int i = 0; i < 4; i++) {
		struct metrics_label l[] = {{"route", routes[i]},
					    {"status", "2xx"}};
		struct metrics_desc d = {
			.name = "storekeep_http_requests_total",
			.help = "x",
			.labels = l,
			.nlabels = 2,
		};
		struct metrics_counter again;

		assert_int_equal(metrics_counter_reg(m, &d, &again), 0);
		assert_int_equal(again.i, rc[i].i);
	}
	buf_reset(&o2);
	metrics_write_prometheus(m, &o2);
	assert_int_equal(o1.len, o2.len);
	assert_memory_equal(o1.data, o2.data, o1.len);
	snprintf(idx, sizeof(idx), "%zu", o1.len);
	printf("exposition: %s bytes, stable across writes and "
	       "re-registration\n",
	       idx);
	buf_fini(&o1);
	buf_fini(&o2);
	metrics_free(m);
}

/* --- registration while workers write ------------------------------------- */

struct grow_arg {
	struct metrics *m;
	unsigned shard;
	struct metrics_counter c;
	struct metrics_hist h;
	atomic_bool *stop;
	uint64_t n;
};

static void *grow_worker(void *p)
{
	struct grow_arg *a = p;

	while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
		metrics_counter_add(a->m, a->shard, a->c, 1);
		metrics_hist_record(a->m, a->shard, a->h, a->n & 1023);
		a->n++;
	}
	return NULL;
}

static void test_register_while_writing(void **state)
{
	struct metrics *m = mk(2);
	struct metrics_desc dc = {.name = "early_total", .help = "e"};
	struct metrics_desc dh = {.name = "early_seconds", .help = "e"};
	struct grow_arg a[2];
	pthread_t t[2];
	atomic_bool stop = false;
	struct metrics_counter many[3000];
	struct hist *merged = hist_new();
	struct buf o;
	struct pp_doc doc;

	(void)state;
	assert_non_null(merged);
	for (int i = 0; i < 2; i++) {
		a[i] = (struct grow_arg){m, (unsigned)i, {0}, {0}, &stop, 0};
		assert_int_equal(metrics_counter_reg(m, &dc, &a[i].c), 0);
		assert_int_equal(metrics_hist_reg(m, &dh, &a[i].h), 0);
		assert_int_equal(
			pthread_create(&t[i], NULL, grow_worker, &a[i]), 0);
	}
	/* Enough series to add cell and histogram chunks meanwhile. */
	for (int i = 0; i < 3000; i++) {
		char v[16];
		struct metrics_label l = {"i", v};
		struct metrics_desc d = {
			.name = "late_total",
			.help = "l",
			.labels = &l,
			.nlabels = 1,
		};

		snprintf(v, sizeof(v), "%d", i);
		assert_int_equal(metrics_counter_reg(m, &d, &many[i]), 0);
		if (i % 20 == 0) {
			struct metrics_desc dl = {
				.name = "late_seconds",
				.help = "l",
				.labels = &l,
				.nlabels = 1,
			};
			struct metrics_hist h;

			assert_int_equal(metrics_hist_reg(m, &dl, &h), 0);
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(metrics_counter_read(m, a[0].c), a[0].n + a[1].n);
	metrics_hist_read(m, a[0].h, merged);
	assert_int_equal(hist_count(merged), a[0].n + a[1].n);
	for (int i = 0; i < 3000; i++)
		metrics_counter_add(m, (unsigned)i & 1, many[i], (uint64_t)i);
	for (int i = 0; i < 3000; i++)
		assert_int_equal(metrics_counter_read(m, many[i]), (uint64_t)i);
	buf_init(&o);
	metrics_write_prometheus(m, &o);
	if (!pp_parse(buf_cstr(&o), &doc))
		fail_msg("parse: %s", doc.err);
	/* early_total, late_total x 3000, and 1 + 150 histograms of 13
	 * bounds, +Inf, _sum and _count. */
	assert_int_equal(doc.ns, 1 + 3000 + 151 * (13 + 1 + 2));
	pp_free(&doc);
	buf_fini(&o);
	hist_free(merged);
	metrics_free(m);
}

/* --- cost from two threads
 * ---------------------------------------------------- */

#define BENCH_N 20000000

struct bench_arg {
	struct metrics *m;
	unsigned shard;
	struct metrics_counter c;
	struct metrics_hist h;
	/* 0 counter add, 1 metrics_hist_record, 2 hist_record on
	 * metrics_hist_of(), 3 nothing (the loop alone), 4 counter add with
	 * every thread on shard 0 (breaks the one-writer rule on purpose, to
	 * show what a shared cache line costs; the count is not checked). */
	int what;
	atomic_int *go;
	double ns;
};

static void *bench_worker(void *p)
{
	struct bench_arg *a = p;
	struct metrics *m = a->m;
	struct hist *own = metrics_hist_of(m, a->shard, a->h);
	double t0;

	while (!atomic_load(a->go))
		;
	t0 = now_ns();
	/* One loop per case, so that only the call differs between them;
	 * values come from the index (spread over ~20 octaves by a multiply)
	 * so that making them costs next to nothing. */
	switch (a->what) {
	case 0:
		for (int i = 0; i < BENCH_N; i++) {
			metrics_counter_add(m, a->shard, a->c, 1);
		}
		break;
	case 1:
		for (int i = 0; i < BENCH_N; i++) {
			metrics_hist_record(m, a->shard, a->h,
					    ((uint32_t)i * 2654435761u) >> 12);
		}
		break;
	case 2:
		for (int i = 0; i < BENCH_N; i++) {
			hist_record(own, ((uint32_t)i * 2654435761u) >> 12);
		}
		break;
	case 3:
		for (int i = 0; i < BENCH_N; i++) {
			uint64_t v = ((uint32_t)i * 2654435761u) >> 12;

			__asm__ volatile("" : "+r"(v));
		}
		break;
	default:
		for (int i = 0; i < BENCH_N; i++) {
			metrics_counter_add(m, 0, a->c, 1);
		}
		break;
	}
	a->ns = (now_ns() - t0) / BENCH_N;
	return NULL;
}

/* Runs `what` on nthreads threads at once, three times; returns the best
 * mean ns per op of the threads. */
static double bench(struct metrics *m, struct metrics_counter c,
		    struct metrics_hist h, int what, unsigned nthreads)
{
	double best = 1e9;

	for (int rep = 0; rep < 3; rep++) {
		struct bench_arg a[2];
		pthread_t t[2];
		atomic_int go = 0;
		double sum = 0;

		for (unsigned i = 0; i < nthreads; i++) {
			a[i] = (struct bench_arg){m, i, c, h, what, &go, 0};
			assert_int_equal(pthread_create(&t[i], NULL,
							bench_worker, &a[i]),
					 0);
		}
		atomic_store(&go, 1);
		for (unsigned i = 0; i < nthreads; i++) {
			assert_int_equal(pthread_join(t[i], NULL), 0);
			sum += a[i].ns;
		}
		if (sum / nthreads < best)
			best = sum / nthreads;
	}
	return best;
}

static void test_cost_two_threads(void **state)
{
	struct metrics *m = mk(2);
	struct metrics_label l = {"route", "checkout"};
	struct metrics_desc dc = {
		.name = "bench_total",
		.help = "b",
		.labels = &l,
		.nlabels = 1,
	};
	struct metrics_desc dh = {
		.name = "bench_seconds",
		.help = "b",
		.labels = &l,
		.nlabels = 1,
	};
	struct metrics_counter c;
	struct metrics_hist h;
	struct hist *merged = hist_new();
	struct metrics *shared = mk(2);
	struct metrics_counter sc;
	double c1, c2, h1, h2, d2, b1, b2, s2;

	(void)state;
	assert_non_null(merged);
	assert_int_equal(metrics_counter_reg(m, &dc, &c), 0);
	assert_int_equal(metrics_hist_reg(m, &dh, &h), 0);
	assert_int_equal(metrics_counter_reg(shared, &dc, &sc), 0);
	b1 = bench(m, c, h, 3, 1);
	b2 = bench(m, c, h, 3, 2);
	c1 = bench(m, c, h, 0, 1);
	c2 = bench(m, c, h, 0, 2);
	h1 = bench(m, c, h, 1, 1);
	h2 = bench(m, c, h, 1, 2);
	d2 = bench(m, c, h, 2, 2);
	s2 = bench(shared, sc, h, 4, 2);
	assert_int_equal(metrics_counter_read(m, c), 3ULL * 3 * BENCH_N);
	metrics_hist_read(m, h, merged);
	assert_int_equal(hist_count(merged), 3ULL * 5 * BENCH_N);
	printf("cost: the loop alone %.2f ns (1 thread), %.2f ns "
	       "(2 threads); the figures below include it\n",
	       b1, b2);
	printf("cost: metrics_counter_add %.2f ns (1 thread), %.2f ns (2 "
	       "threads, same series, own shards); for contrast, both on one "
	       "shard's cache line: %.2f ns\n",
	       c1, c2, s2);
	printf("cost: metrics_hist_record %.2f ns (1 thread), %.2f ns (2 "
	       "threads); hist_record on metrics_hist_of() %.2f ns (2 "
	       "threads)\n",
	       h1, h2, d2);
	hist_free(merged);
	metrics_free(shared);
	metrics_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_bounds),
		cmocka_unit_test(test_register_rules),
		cmocka_unit_test(test_shards_sum),
		cmocka_unit_test(test_exposition),
		cmocka_unit_test(test_register_while_writing),
		cmocka_unit_test(test_cost_two_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
