/*
 * hist.h - log-linear histograms of non-negative integers (latencies in
 * microseconds), mergeable and exact to within 0.4% of any value.
 *
 * Layout (fixed at compile time, so any two histograms merge):
 *   - values 0..255 each have their own bucket;
 *   - above that, every power-of-two range [2^k, 2^(k+1)) is cut into 128
 *     equal buckets, so a bucket is never wider than 1/128 of its lower
 *     bound;
 *   - values above HIST_MAX_VALUE (2^36 - 1 us, about 19 hours) are
 *     counted in the last bucket. 3840 buckets, 30 KiB per histogram.
 * A value stands for its bucket's midpoint (hist_representative()), which
 * is within 1/256 (0.39%) of every value of the bucket. Quantiles,
 * Prometheus `le` counts and everything else read from a histogram are
 * computed as if each observation had been its representative value.
 *
 * Threads: each histogram has one writer (hist_record*, hist_reset, and
 * hist_merge/copy/diff into it). Counts are atomics updated with a
 * relaxed load and store, no locked instruction, so any other thread may
 * read a histogram while it is written (merge it into its own, take a
 * quantile) and sees every bucket either before or after an update, never
 * torn. The sum is updated after the bucket, independently: a reader may
 * see them one observation apart.
 *
 * Not here: labels, registration, time windows kept on a schedule (take
 * hist_copy() snapshots and hist_diff() them), floating-point values,
 * negative values.
 */
#ifndef SK_MONITOR_HIST_H
#define SK_MONITOR_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7	 /* 128 buckets per power of two */
#define HIST_MAX_BITS 36 /* values up to 2^36 - 1 are told apart */
#define HIST_MAX_VALUE ((UINT64_C(1) << HIST_MAX_BITS) - 1)
#define HIST_BUCKETS ((HIST_MAX_BITS - HIST_SUB_BITS + 1) << HIST_SUB_BITS)

struct hist;

/* An empty histogram (calloc'd, 64-byte aligned so two histograms never
 * share a cache line). Returns NULL when out of memory. */
struct hist *hist_new(void);
void hist_free(struct hist *h);

/* Counts one observation of value v (clamped to HIST_MAX_VALUE for the
 * buckets; the sum gets v itself). O(1), no branch but the clamp's
 * conditional move, no allocation, no lock. Single writer. */
void hist_record(struct hist *h, uint64_t v);
/* Counts n observations of v (n may be 0). Single writer. */
void hist_record_n(struct hist *h, uint64_t v, uint64_t n);
/* Empties h. Its writer only, or while nobody writes it. */
void hist_reset(struct hist *h);

/* dst += src. dst's writer only; src may be written meanwhile. */
void hist_merge(struct hist *dst, const struct hist *src);
/* dst = src: a snapshot. dst's writer only; src may be written. */
void hist_copy(struct hist *dst, const struct hist *src);
/*
 * out = cur - prev, bucket by bucket: the observations made between two
 * snapshots of one histogram, for windowed quantiles. A bucket (or the
 * sum) that went down, because the histogram was reset in between,
 * counts 0. out may be cur or prev. out's writer only.
 */
void hist_diff(struct hist *out, const struct hist *cur,
	       const struct hist *prev);

/* Number of observations (the sum of the buckets; O(buckets)). */
uint64_t hist_count(const struct hist *h);
/* Sum of the observed values (not clamped). */
uint64_t hist_sum(const struct hist *h);

/*
 * The q-quantile (0 <= q <= 1) by nearest rank: the representative value
 * of the bucket holding the ceil(q * count)-th smallest observation (the
 * first for q = 0). 0 when h is empty. A NaN q counts as 0.
 */
uint64_t hist_quantile(const struct hist *h, double q);
/*
 * Several quantiles in one pass: out[i] = hist_quantile(h, qs[i]). qs must
 * be ascending. Returns 0, or -EINVAL (out untouched) when it is not.
 */
int hist_quantiles(const struct hist *h, const double *qs, size_t n,
		   uint64_t *out);

/*
 * Cumulative counts for coarse boundaries (Prometheus `le`): cum[i] is the
 * number of observations whose representative value is <= bounds[i].
 * bounds must be ascending. Returns the total count (the +Inf bucket),
 * read in the same pass, so cum[n-1] <= total even while h is written.
 * An observation lands on the wrong side of a boundary b only when it is
 * within one bucket (1/128 of b) of it.
 */
uint64_t hist_cumulative(const struct hist *h, const uint64_t *bounds, size_t n,
			 uint64_t *cum);

/* The bucket of value v: its smallest and largest values. */
void hist_bucket_range(uint64_t v, uint64_t *lo, uint64_t *hi);
/* The value that stands for v's bucket (its midpoint, rounded down). */
uint64_t hist_representative(uint64_t v);

/*
 * Bucket by bucket, for compact copies of a histogram (the alert
 * source keeps many snapshots): the count of bucket i (0 <= i <
 * HIST_BUCKETS), and the representative value of bucket i.
 */
uint64_t hist_bucket_get(const struct hist *h, unsigned i);
uint64_t hist_bucket_value(unsigned i);

#endif
