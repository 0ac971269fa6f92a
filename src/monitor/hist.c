/*
 * hist.c - log-linear histograms (see hist.h for the layout and the
 * threading contract).
 *
 * Bucket index of a value v (S = HIST_SUB_BITS, so 2^S = 128):
 *
 *   shift = msb(v | 2^S) - S          0 for v < 2^(S+1), else log2(v) - S
 *   index = (shift << S) + (v >> shift)
 *
 * For v < 256 this is v itself. Above, v >> shift keeps the S+1 leading
 * bits of v, a number in [128, 256); each step of shift adds 128 to the
 * base, so the ranges of consecutive shifts follow each other without a
 * gap or an overlap. One count-leading-zeros, two shifts and an add: no
 * table, no branch. Going back, a bucket i >= 128 has shift (i >> S) - 1
 * and its values start at ((i & 127) + 128) << shift.
 *
 * The count of a histogram is not stored but summed over the buckets when
 * read, so that a record is one bucket update plus the sum, and so that
 * the buckets and the total a reader gets in one pass always agree.
 *
 * Invariant: a bucket only grows, except through hist_reset, hist_copy
 * and hist_diff, which only the histogram's writer calls.
 */
#include "monitor/hist.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define SUB (UINT64_C(1) << HIST_SUB_BITS)

struct hist {
	_Atomic uint64_t b[HIST_BUCKETS];
	_Atomic uint64_t sum;
};

static inline uint64_t ld(const _Atomic uint64_t *p)
{
	return atomic_load_explicit((_Atomic uint64_t *)p,
				    memory_order_relaxed);
}

static inline void st(_Atomic uint64_t *p, uint64_t v)
{
	atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline unsigned bucket_of(uint64_t v)
{
	unsigned shift;

	v = v < HIST_MAX_VALUE ? v : HIST_MAX_VALUE;
	shift = (unsigned)(63 - __builtin_clzll(v | SUB)) - HIST_SUB_BITS;
	return (shift << HIST_SUB_BITS) + (unsigned)(v >> shift);
}

static inline uint64_t bucket_lo(unsigned i)
{
	unsigned shift;

	if (i < SUB)
		return i;
	shift = (i >> HIST_SUB_BITS) - 1;
	return ((uint64_t)(i & (SUB - 1)) + SUB) << shift;
}

static inline uint64_t bucket_width(unsigned i)
{
	if (i < SUB)
		return 1;
	return UINT64_C(1) << ((i >> HIST_SUB_BITS) - 1);
}

static inline uint64_t bucket_rep(unsigned i)
{
	return bucket_lo(i) + (bucket_width(i) - 1) / 2;
}

struct hist *hist_new(void)
{
	size_t sz = (sizeof(struct hist) + 63) & ~(size_t)63;
	struct hist *h = aligned_alloc(64, sz);

	if (h)
		memset(h, 0, sz);
	return h;
}

void hist_free(struct hist *h)
{
	free(h);
}

void hist_record(struct hist *h, uint64_t v)
{
	_Atomic uint64_t *b = &h->b[bucket_of(v)];

	st(b, ld(b) + 1);
	st(&h->sum, ld(&h->sum) + v);
}

void hist_record_n(struct hist *h, uint64_t v, uint64_t n)
{
	_Atomic uint64_t *b = &h->b[bucket_of(v)];

	st(b, ld(b) + n);
	st(&h->sum, ld(&h->sum) + v * n);
}

void hist_reset(struct hist *h)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		st(&h->b[i], 0);
	st(&h->sum, 0);
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		uint64_t c = ld(&src->b[i]);

		if (c)
			st(&dst->b[i], ld(&dst->b[i]) + c);
	}
	st(&dst->sum, ld(&dst->sum) + ld(&src->sum));
}

void hist_copy(struct hist *dst, const struct hist *src)
{
	if (dst == src)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		st(&dst->b[i], ld(&src->b[i]));
	st(&dst->sum, ld(&src->sum));
}

static inline uint64_t sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

void hist_diff(struct hist *out, const struct hist *cur,
	       const struct hist *prev)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		st(&out->b[i], sub0(ld(&cur->b[i]), ld(&prev->b[i])));
	st(&out->sum, sub0(ld(&cur->sum), ld(&prev->sum)));
}

uint64_t hist_count(const struct hist *h)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		n += ld(&h->b[i]);
	return n;
}

uint64_t hist_sum(const struct hist *h)
{
	return ld(&h->sum);
}

/* q clamped to [0, 1], NaN taken as 0. */
static double qnorm(double q)
{
	if (!(q > 0))
		return 0;
	return q < 1 ? q : 1;
}

/* Nearest rank of q among n > 0 observations: ceil(q * n), in [1, n]. */
static uint64_t rank_of(double q, uint64_t n)
{
	double r;
	uint64_t k;

	q = qnorm(q);
	r = q * (double)n;
	k = (uint64_t)r;
	if ((double)k < r)
		k++;
	if (k < 1)
		k = 1;
	return k < n ? k : n;
}

int hist_quantiles(const struct hist *h, const double *qs, size_t n,
		   uint64_t *out)
{
	uint64_t total, run = 0, last = 0;
	size_t k = 0;

	for (size_t i = 1; i < n; i++)
		if (qnorm(qs[i]) < qnorm(qs[i - 1]))
			return -EINVAL;
	total = hist_count(h);
	if (total == 0) {
		for (size_t i = 0; i < n; i++)
			out[i] = 0;
		return 0;
	}
	/*
	 * Buckets only grow while we read (hist.c's invariant), so the
	 * running count of this second pass reaches every rank computed from
	 * the first; `last` covers a concurrent reset.
	 */
	for (unsigned i = 0; i < HIST_BUCKETS && k < n; i++) {
		uint64_t c = ld(&h->b[i]);

		if (!c)
			continue;
		run += c;
		last = bucket_rep(i);
		while (k < n && run >= rank_of(qs[k], total))
			out[k++] = last;
	}
	while (k < n)
		out[k++] = last;
	return 0;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t v = 0;

	SK_ASSERT(hist_quantiles(h, &q, 1, &v) == 0);
	return v;
}

uint64_t hist_cumulative(const struct hist *h, const uint64_t *bounds, size_t n,
			 uint64_t *cum)
{
	uint64_t run = 0;
	size_t j = 0;

	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		uint64_t c = ld(&h->b[i]);

		if (!c)
			continue;
		if (j < n) {
			uint64_t rep = bucket_rep(i);

			while (j < n && bounds[j] < rep)
				cum[j++] = run;
		}
		run += c;
	}
	while (j < n)
		cum[j++] = run;
	return run;
}

void hist_bucket_range(uint64_t v, uint64_t *lo, uint64_t *hi)
{
	unsigned i = bucket_of(v);

	*lo = bucket_lo(i);
	*hi = bucket_lo(i) + bucket_width(i) - 1;
}

uint64_t hist_representative(uint64_t v)
{
	return bucket_rep(bucket_of(v));
}

uint64_t hist_bucket_get(const struct hist *h, unsigned i)
{
	return i < HIST_BUCKETS ? ld(&h->b[i]) : 0;
}

uint64_t hist_bucket_value(unsigned i)
{
	return i < HIST_BUCKETS ? bucket_rep(i) : 0;
}
