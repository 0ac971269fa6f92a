/*
 * test_hist.c - monitor/hist.h: bucket layout, quantile accuracy against
 * exact quantiles, merge, snapshot/diff, Prometheus boundaries, a reader
 * racing a writer, and the cost of a record.
 *
 * Accuracy is checked on 200000 samples from each of six distributions
 * (uniform, exponential, bimodal, Pareto, log-normal, log-uniform over the
 * whole range) with fixed seeds: for p50, p90, p99, p99.9 and a grid of
 * other quantiles, the histogram's answer is compared with the exact
 * nearest-rank quantile of the sorted samples. The layout bounds the
 * error at 1/256 for any data, so the 1% assertion holds for any seed;
 * the worst error seen is printed per distribution.
 *
 * The distributions need ln() and exp(); the test has its own, so that
 * the module need not link libm.
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

#include "monitor/hist.h"

#define NSAMPLES 200000
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* --- randomness and the distributions --------------------------------------
 */

static uint64_t rng_state;

static uint64_t rng(void) /* splitmix64 */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double unif(void)
{
	return ((double)(rng() >> 11) + 0.5) / 9007199254740992.0;
}

static const double LN2 = 0.69314718054994530942;

static double t_ln(double x)
{
	uint64_t b;
	int e;
	double m, z, z2, term, sum = 0;

	memcpy(&b, &x, sizeof(b));
	e = (int)((b >> 52) & 0x7ff) - 1023;
	b = (b & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
	memcpy(&m, &b, sizeof(m)); /* x = m * 2^e, m in [1, 2) */
	if (m > 1.4142135623730951) {
		m /= 2;
		e++;
	}
	z = (m - 1) / (m + 1);
	z2 = z * z;
	term = z;
	for (int k = 1; k < 60; k += 2) {
		sum += term / k;
		term *= z2;
	}
	return 2 * sum + e * LN2;
}

static double t_exp(double x)
{
	double k = (double)(long long)(x / LN2 + (x < 0 ? -0.5 : 0.5));
	double r = x - k * LN2, term = 1, sum = 1, scale;
	uint64_t b;

	for (int i = 1; i < 30; i++) {
		term *= r / i;
		sum += term;
	}
	if (k < -1000)
		return 0;
	b = (uint64_t)((long long)k + 1023) << 52;
	memcpy(&scale, &b, sizeof(scale));
	return sum * scale;
}

/* Approximately standard normal (Irwin-Hall with 12 terms). */
static double normal(void)
{
	double s = 0;

	for (int i = 0; i < 12; i++)
		s += unif();
	return s - 6;
}

static uint64_t clampv(double v)
{
	if (v < 1)
		return 1;
	if (v > 3.6e9)
		return 3600000000ULL; /* one hour */
	return (uint64_t)(v + 0.5);
}

static uint64_t d_uniform(void) /* 1 us .. 1 s */
{
	return clampv(1 + unif() * 999999);
}

static uint64_t d_exponential(void) /* mean 20 ms */
{
	return clampv(-20000 * t_ln(unif()));
}

static uint64_t d_bimodal(void) /* cache hits ~300 us, misses ~80 ms */
{
	if (unif() < 0.8)
		return clampv(300 + 50 * normal());
	return clampv(80000 + 15000 * normal());
}

static uint64_t d_pareto(void) /* alpha 1.1 from 1 ms: heavy tail */
{
	return clampv(1000 * t_exp(-t_ln(unif()) / 1.1));
}

static uint64_t d_lognormal(void) /* median 5 ms, sigma 1.5 */
{
	return clampv(t_exp(t_ln(5000) + 1.5 * normal()));
}

static uint64_t d_loguniform(void) /* 1 us .. 1 h, every octave */
{
	return clampv(t_exp(unif() * t_ln(3.6e9)));
}

static const struct dist {
	const char *name;
	uint64_t (*gen)(void);
} dists[] = {
	{"uniform", d_uniform},	    {"exponential", d_exponential},
	{"bimodal", d_bimodal},	    {"pareto", d_pareto},
	{"lognormal", d_lognormal}, {"loguniform", d_loguniform},
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The exact nearest-rank quantile of n sorted values (hist.h's rule). */
static uint64_t exact_q(const uint64_t *v, size_t n, double q)
{
	double r = q * (double)n;
	uint64_t k = (uint64_t)r;

	if ((double)k < r)
		k++;
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

static double relerr(uint64_t est, uint64_t exact)
{
	double d = (double)est - (double)exact;

	return (d < 0 ? -d : d) / (double)exact;
}

/* --- layout --------------------------------------------------------------- */

static void check_value(uint64_t v)
{
	uint64_t lo, hi, rep;

	hist_bucket_range(v, &lo, &hi);
	if (v <= HIST_MAX_VALUE) {
		assert_true(lo <= v && v <= hi);
	} else {
		assert_int_equal(hi, HIST_MAX_VALUE);
	}
	/* Exact below 256, then never wider than 1/128 of the lower bound. */
	if (lo < 256)
		assert_int_equal(hi, lo);
	else
		assert_true((hi - lo + 1) * 128 <= lo);
	rep = hist_representative(v);
	assert_true(lo <= rep && rep <= hi);
	if (v >= 1 && v <= HIST_MAX_VALUE)
		assert_true(relerr(rep, v) <= 1.0 / 256);
}

static void test_layout(void **state)
{
	uint64_t v = 0, n = 0, lo, hi;

	(void)state;
	/* Walking bucket after bucket covers 0..HIST_MAX_VALUE without gap
	 * or overlap, in exactly HIST_BUCKETS buckets. */
	while (v <= HIST_MAX_VALUE) {
		hist_bucket_range(v, &lo, &hi);
		assert_int_equal(lo, v);
		assert_true(hi >= lo);
		check_value(lo);
		check_value(hi);
		check_value(lo + (hi - lo) / 2);
		n++;
		v = hi + 1;
	}
	assert_int_equal(n, HIST_BUCKETS);
	for (v = 0; v < 100000; v++)
		check_value(v);
	rng_state = 42;
	for (int i = 0; i < 1000000; i++)
		check_value(rng() >> (rng() % 64));
	check_value(UINT64_MAX);
	/* At least one hour of microseconds is told apart. */
	assert_true(HIST_MAX_VALUE >= 3600ULL * 1000000);
	printf("layout: %d buckets, %zu bytes of counts, max %llu us (%.1f "
	       "h)\n",
	       HIST_BUCKETS, (size_t)HIST_BUCKETS * 8,
	       (unsigned long long)HIST_MAX_VALUE, HIST_MAX_VALUE / 3.6e9);
}

/* --- accuracy ------------------------------------------------------------- */

static void test_quantile_accuracy(void **state)
{
	static const double key_qs[] = {0.5, 0.9, 0.99, 0.999};
	uint64_t *v = malloc(NSAMPLES * sizeof(*v));
	double qs[128];
	size_t nq = 0;

	(void)state;
	assert_non_null(v);
	for (int i = 1; i <= 99; i++)
		qs[nq++] = i / 100.0;
	qs[nq++] = 0.995;
	qs[nq++] = 0.999;
	qs[nq++] = 0.9995;
	qs[nq++] = 0.9999;
	qs[nq++] = 0;
	qs[nq++] = 1;
	for (size_t di = 0; di < NELEMS(dists); di++) {
		double worst_key = 0, worst_all = 0;
		uint64_t est[NELEMS(key_qs)];
		struct hist *h = hist_new();
		uint64_t sum = 0;

		assert_non_null(h);
		rng_state = 1000 + di;
		for (size_t i = 0; i < NSAMPLES; i++) {
			v[i] = dists[di].gen();
			sum += v[i];
			hist_record(h, v[i]);
		}
		qsort(v, NSAMPLES, sizeof(*v), cmp_u64);
		assert_int_equal(hist_count(h), NSAMPLES);
		assert_int_equal(hist_sum(h), sum);
		assert_int_equal(hist_quantiles(h, key_qs, NELEMS(key_qs), est),
				 0);
		for (size_t k = 0; k < NELEMS(key_qs); k++) {
			uint64_t ex = exact_q(v, NSAMPLES, key_qs[k]);
			double e = relerr(est[k], ex);

			assert_int_equal(est[k], hist_quantile(h, key_qs[k]));
			if (e > worst_key)
				worst_key = e;
			assert_true(e < 0.01);
		}
		for (size_t k = 0; k < nq; k++) {
			double e = relerr(hist_quantile(h, qs[k]),
					  exact_q(v, NSAMPLES, qs[k]));

			if (e > worst_all)
				worst_all = e;
			assert_true(e < 0.01);
		}
		printf("accuracy %-11s p50=%llu p90=%llu p99=%llu p99.9=%llu "
		       "us;"
		       " max rel. error %.4f%% (p50..p99.9), %.4f%% (%zu "
		       "quantiles)\n",
		       dists[di].name, (unsigned long long)est[0],
		       (unsigned long long)est[1], (unsigned long long)est[2],
		       (unsigned long long)est[3], worst_key * 100,
		       worst_all * 100, nq);
		hist_free(h);
	}
	free(v);
}

/* --- merge, snapshot, diff ------------------------------------------------ */

/* Whether a and b hold the same buckets and sum. */
static void assert_same(const struct hist *a, const struct hist *b)
{
	struct hist *d = hist_new();

	assert_non_null(d);
	assert_int_equal(hist_count(a), hist_count(b));
	assert_int_equal(hist_sum(a), hist_sum(b));
	hist_diff(d, a, b);
	assert_int_equal(hist_count(d), 0);
	hist_diff(d, b, a);
	assert_int_equal(hist_count(d), 0);
	hist_free(d);
}

static void test_merge(void **state)
{
	struct hist *all = hist_new(), *part[8], *m = hist_new();
	double qs[] = {0.1, 0.5, 0.9, 0.99, 0.999};
	uint64_t qa[5], qm[5];

	(void)state;
	assert_non_null(all);
	assert_non_null(m);
	for (int i = 0; i < 8; i++)
		assert_non_null(part[i] = hist_new());
	rng_state = 7;
	for (int i = 0; i < NSAMPLES; i++) {
		uint64_t x = d_bimodal();

		hist_record(all, x);
		hist_record(part[rng() % 8], x);
	}
	for (int i = 0; i < 8; i++)
		hist_merge(m, part[i]);
	assert_same(all, m);
	assert_int_equal(hist_quantiles(all, qs, 5, qa), 0);
	assert_int_equal(hist_quantiles(m, qs, 5, qm), 0);
	assert_memory_equal(qa, qm, sizeof(qa));
	for (int i = 0; i < 8; i++)
		hist_free(part[i]);
	hist_free(all);
	hist_free(m);
}

static void test_snapshot_diff(void **state)
{
	struct hist *live = hist_new(), *t1 = hist_new(), *t2 = hist_new();
	struct hist *only_b = hist_new(), *win = hist_new();

	(void)state;
	assert_true(live && t1 && t2 && only_b && win);
	rng_state = 11;
	/* Interval A: fast; interval B: slow. The window must show B only. */
	for (int i = 0; i < 50000; i++)
		hist_record(live, d_bimodal() / 10);
	hist_copy(t1, live);
	for (int i = 0; i < 50000; i++) {
		uint64_t x = d_exponential() * 10;

		hist_record(live, x);
		hist_record(only_b, x);
	}
	hist_copy(t2, live);
	hist_diff(win, t2, t1);
	assert_same(win, only_b);
	assert_int_equal(hist_quantile(win, 0.99), hist_quantile(only_b, 0.99));
	assert_true(hist_quantile(win, 0.5) > hist_quantile(live, 0.5));
	/* diff into one of its inputs */
	hist_diff(t2, t2, t1);
	assert_same(t2, only_b);
	/* A reset between snapshots gives an empty window, not garbage. */
	hist_reset(live);
	hist_record(live, 5);
	hist_copy(t2, live);
	hist_diff(win, t2, t1);
	assert_true(hist_count(win) <= 1);
	assert_int_equal(hist_sum(win), 0);
	hist_free(live);
	hist_free(t1);
	hist_free(t2);
	hist_free(only_b);
	hist_free(win);
}

/* --- Prometheus boundaries ---------------------------------------------------
 */

static void test_cumulative_bounds(void **state)
{
	static const uint64_t b[] = {5000,    10000,   25000,	50000,
				     100000,  250000,  500000,	1000000,
				     2500000, 5000000, 10000000};
	uint64_t *v = malloc(NSAMPLES * sizeof(*v)), cum[NELEMS(b)];
	struct hist *h = hist_new();

	(void)state;
	assert_non_null(v);
	assert_non_null(h);
	rng_state = 99;
	for (size_t i = 0; i < NSAMPLES; i++) {
		v[i] = d_lognormal() * 4;
		hist_record(h, v[i]);
	}
	assert_int_equal(hist_cumulative(h, b, NELEMS(b), cum), NSAMPLES);
	for (size_t j = 0; j < NELEMS(b); j++) {
		uint64_t by_rep = 0, truth = 0, near = 0, lo, hi;

		hist_bucket_range(b[j], &lo, &hi);
		for (size_t i = 0; i < NSAMPLES; i++) {
			by_rep += hist_representative(v[i]) <= b[j];
			truth += v[i] <= b[j];
			near += v[i] >= lo && v[i] <= hi;
		}
		/* Exactly the documented rule, and off the true count only
		 * by samples in the boundary's own fine bucket. */
		assert_int_equal(cum[j], by_rep);
		assert_true((cum[j] > truth ? cum[j] - truth
					    : truth - cum[j]) <= near);
		if (j)
			assert_true(cum[j] >= cum[j - 1]);
	}
	/* Boundaries below 256 are exact. */
	hist_reset(h);
	for (uint64_t x = 0; x < 300; x++)
		hist_record(h, x);
	{
		const uint64_t sb[] = {0, 1, 99, 255};

		hist_cumulative(h, sb, 4, cum);
		assert_int_equal(cum[0], 1);
		assert_int_equal(cum[1], 2);
		assert_int_equal(cum[2], 100);
		assert_int_equal(cum[3], 256);
	}
	free(v);
	hist_free(h);
}

/* --- edges ------------------------------------------------------------------
 */

static void test_edges(void **state)
{
	struct hist *h = hist_new();
	double bad[] = {0.9, 0.5};
	double nanq[] = {0.0 / 0.0};
	uint64_t out[2] = {77, 77};

	(void)state;
	assert_non_null(h);
	assert_int_equal(hist_quantile(h, 0.5), 0);
	assert_int_equal(hist_count(h), 0);
	assert_int_equal(hist_quantiles(h, bad, 2, out), -EINVAL);
	assert_int_equal(out[0], 77);
	hist_record(h, 0);
	assert_int_equal(hist_quantile(h, 0.5), 0);
	hist_record_n(h, 1000, 3);
	hist_record_n(h, 1000, 0);
	assert_int_equal(hist_count(h), 4);
	assert_int_equal(hist_sum(h), 3000);
	assert_int_equal(hist_quantile(h, -1), 0);
	assert_int_equal(hist_quantile(h, 2), hist_representative(1000));
	assert_int_equal(hist_quantiles(h, nanq, 1, out), 0);
	assert_int_equal(out[0], 0);
	/* Beyond the range: the last bucket, but the sum is exact. */
	hist_reset(h);
	hist_record(h, UINT64_C(1) << 40);
	assert_int_equal(hist_sum(h), UINT64_C(1) << 40);
	assert_int_equal(hist_quantile(h, 0.5),
			 hist_representative(HIST_MAX_VALUE));
	hist_free(h);
}

/* --- a reader racing the writer --------------------------------------------
 */

#define RACE_N 3000000

static atomic_bool race_done;

static void *race_writer(void *arg)
{
	struct hist *h = arg;
	uint64_t x = 1;

	for (int i = 0; i < RACE_N; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		hist_record(h, (x >> 40) + 1);
	}
	atomic_store(&race_done, true);
	return NULL;
}

static void test_reader_races_writer(void **state)
{
	struct hist *h = hist_new(), *snap = hist_new();
	uint64_t last = 0, reads = 0;
	pthread_t t;

	(void)state;
	assert_true(h && snap);
	atomic_store(&race_done, false);
	assert_int_equal(pthread_create(&t, NULL, race_writer, h), 0);
	while (!atomic_load(&race_done)) {
		uint64_t n;

		hist_reset(snap);
		hist_merge(snap, h);
		n = hist_count(snap);
		/* Buckets only grow: a later snapshot never has fewer. */
		assert_true(n >= last && n <= RACE_N);
		last = n;
		(void)hist_quantile(h, 0.99);
		reads++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(hist_count(h), RACE_N);
	printf("race: %llu snapshots taken while %d values were recorded\n",
	       (unsigned long long)reads, RACE_N);
	hist_free(h);
	hist_free(snap);
}

/* --- cost ----------------------------------------------------------------- */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void test_record_cost(void **state)
{
	enum { NV = 1 << 16, ROUNDS = 400 };
	uint64_t *v = malloc(NV * sizeof(*v)), qv[3];
	struct hist *h = hist_new(), *m = hist_new();
	double t0, t1, t2, t3;

	(void)state;
	assert_true(v && h && m);
	rng_state = 5;
	for (int i = 0; i < NV; i++)
		v[i] = d_lognormal();
	t0 = now_ns();
	for (int r = 0; r < ROUNDS; r++)
		for (int i = 0; i < NV; i++)
			hist_record(h, v[i]);
	t1 = now_ns();
	for (int r = 0; r < 1000; r++)
		hist_merge(m, h);
	t2 = now_ns();
	for (int r = 0; r < 1000; r++)
		hist_quantiles(h, (const double[]){0.5, 0.99, 0.999}, 3, qv);
	t3 = now_ns();
	assert_int_equal(hist_count(h), (uint64_t)NV * ROUNDS);
	printf("cost: hist_record %.2f ns (lognormal values, 1 thread); "
	       "hist_merge %.2f us; 3 quantiles %.2f us\n",
	       (t1 - t0) / ((double)NV * ROUNDS), (t2 - t1) / 1000 / 1000,
	       (t3 - t2) / 1000 / 1000);
	free(v);
	hist_free(h);
	hist_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_quantile_accuracy),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_snapshot_diff),
		cmocka_unit_test(test_cumulative_bounds),
		cmocka_unit_test(test_edges),
		cmocka_unit_test(test_reader_races_writer),
		cmocka_unit_test(test_record_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
