/*
 * metrics.h - a registry of counters, gauges and histograms with labels,
 * written per worker without locks and exposed in Prometheus text format.
 *
 * A registry is made for a fixed number of shards: one per thread that
 * writes metrics (the workers, and the control thread if it counts
 * anything), each identified by its index, 0 <= shard < nshards. Every
 * series has one cell (a histogram: one struct hist) per shard, in memory
 * that shard alone writes, so an update is a relaxed load and store on a
 * cache line no other writer touches: no lock, no locked instruction.
 * Readers sum the shards.
 *
 * Registration (control thread, at start-up or on reload) resolves a name
 * and a label set to a small handle once; the hot path passes the handle
 * and never looks up a string. Registering the same name and labels again
 * returns the same handle, so a reload may simply register everything
 * again. A zeroed handle is valid and discards what is written to it,
 * which lets callers keep optional metrics unconditional.
 *
 * Threads: registration, metrics_write_prometheus() and metrics_free()
 * take the registry's mutex (the hot path never does). Updates of shard w
 * come from one thread at a time (the owner of w). Reads may run anywhere
 * at any time. A handle must reach a worker through something that
 * publishes it (the config snapshot swap does), as any pointer would.
 *
 * Not here: removing series (a series lives as long as the registry, so
 * a route dropped by a reload keeps its last values), expiry, exemplars,
 * OpenMetrics, summaries, and history (monitor/history.h reads the
 * registry through metrics_foreach()).
 *
 * Limits: 16 labels per series, 524287 counter and gauge series, 65535
 * histogram series, 1024 shards, 64 histogram bounds; metric names up to
 * 128 bytes, label names 64, label values 1024 (UTF-8), help 1024.
 */
#ifndef SK_MONITOR_METRICS_H
#define SK_MONITOR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "monitor/hist.h"

#define METRICS_LABELS_MAX 16
#define METRICS_SHARDS_MAX 1024
#define METRICS_BOUNDS_MAX 64
/* decimals for a value recorded in microseconds and exported in seconds */
#define METRICS_US_TO_S 6

enum metrics_type {
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

struct metrics_label {
	const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, not "__..." */
	const char *value; /* any UTF-8, escaped on output */
};

/*
 * What a series is. Strings are copied at registration. All series of one
 * name share its type, help (the first one given is kept), label names,
 * decimals and bounds.
 */
struct metrics_desc {
	const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in _total */
	const char *help; /* one line for # HELP */
	const struct metrics_label *labels; /* in any order */
	size_t nlabels;
	/* Counters and histograms: the exported value is the recorded one
	 * divided by 10^decimals (0..9), e.g. METRICS_US_TO_S for
	 * microseconds shown as seconds. Gauges ignore it. */
	unsigned decimals;
	/* Histograms: the `le` boundaries, ascending, in recorded units;
	 * NULL takes metrics_default_bounds_us (with decimals 6). */
	const uint64_t *bounds;
	size_t nbounds;
};

/* Handles. A zeroed handle discards updates and reads as 0. */
struct metrics_counter {
	uint32_t i;
};
struct metrics_gauge {
	uint32_t i;
};
struct metrics_hist {
	uint32_t i;
};

/* 1 ms, 2.5 ms, 5 ms, 10 ms, ... 10 s, in microseconds. */
extern const uint64_t metrics_default_bounds_us[];
extern const size_t metrics_default_nbounds;

struct metrics;

/* A registry with nshards shards (1..METRICS_SHARDS_MAX). Returns 0 and
 * *out, -EINVAL, or -ENOMEM. */
int metrics_new(unsigned nshards, struct metrics **out);
/* Frees the registry and every series. No thread may use it any more. */
void metrics_free(struct metrics *m);
/* The nshards the registry was made with. */
unsigned metrics_shards(const struct metrics *m);

/*
 * Register a series (or find the one already registered under the same
 * name and labels) and set *out. Returns 0; -EINVAL when a name, label or
 * value breaks the rules, a label repeats, or the name exists with another
 * type, other label names, decimals or bounds; -ENOSPC when the registry
 * is full; -ENOMEM. *out is left alone on error.
 */
int metrics_counter_reg(struct metrics *m, const struct metrics_desc *d,
			struct metrics_counter *out);
int metrics_gauge_reg(struct metrics *m, const struct metrics_desc *d,
		      struct metrics_gauge *out);
int metrics_hist_reg(struct metrics *m, const struct metrics_desc *d,
		     struct metrics_hist *out);

/*
 * The hot path. shard is the caller's own (asserted < nshards); only its
 * owner writes it. Each is a relaxed load and store of one 64-bit cell.
 */
void metrics_counter_add(struct metrics *m, unsigned shard,
			 struct metrics_counter h, uint64_t n);
/* Sets shard's part of a counter, for counters that mirror a cumulative
 * count kept elsewhere (e.g. /proc). */
void metrics_counter_set(struct metrics *m, unsigned shard,
			 struct metrics_counter h, uint64_t v);
/* A gauge is the sum of its shards' parts: add/sub from the workers
 * (e.g. requests in flight), or set from one shard (e.g. the control
 * thread's) for a value measured elsewhere. */
void metrics_gauge_add(struct metrics *m, unsigned shard,
		       struct metrics_gauge h, double d);
void metrics_gauge_set(struct metrics *m, unsigned shard,
		       struct metrics_gauge h, double v);
void metrics_hist_record(struct metrics *m, unsigned shard,
			 struct metrics_hist h, uint64_t v);
/* shard's own struct hist of series h, to record into directly
 * (hist_record) and save the lookup; valid as long as the registry. */
struct hist *metrics_hist_of(struct metrics *m, unsigned shard,
			     struct metrics_hist h);

/* Readers, any thread: the sum over all shards. */
uint64_t metrics_counter_read(const struct metrics *m,
			      struct metrics_counter h);
double metrics_gauge_read(const struct metrics *m, struct metrics_gauge h);
/* Empties dst (the caller's own histogram) and merges every shard of h
 * into it. */
void metrics_hist_read(const struct metrics *m, struct metrics_hist h,
		       struct hist *dst);

/*
 * Read side for consumers other than /metrics (history, alerts).
 *
 * What a series is, as metrics_foreach() shows it. Every pointer is valid
 * during the callback only. labels are sorted by name; labels_text is
 * the same set as on /metrics, `a="x",b="y"` (values escaped, no braces),
 * labels_len bytes, not NUL-terminated, empty when there are no labels.
 * idx is the series' handle: (struct metrics_counter){idx} for a counter,
 * and likewise for gauges and histograms.
 */
struct metrics_series_info {
	const char *name;
	const char *help;
	enum metrics_type type;
	const struct metrics_label *labels;
	size_t nlabels;
	const char *labels_text;
	size_t labels_len;
	unsigned decimals; /* counters and histograms, as registered */
	uint32_t idx;
};

typedef void (*metrics_series_cb)(void *ud,
				  const struct metrics_series_info *s);

/*
 * Calls cb for every series, in no particular order, holding the
 * registry's mutex: cb may read values (metrics_*_read) but must not
 * register. The control thread's tool; it costs a callback per series.
 */
void metrics_foreach(struct metrics *m, metrics_series_cb cb, void *ud);
/* Series registered so far. It only grows, so a reader that saw n series
 * through metrics_foreach() and finds n again has seen them all. */
size_t metrics_series_count(struct metrics *m);

/*
 * Appends the whole registry in Prometheus text format 0.0.4 to out:
 * families sorted by name, each with # HELP and # TYPE, its series sorted
 * by label values (digit runs compared as numbers), labels sorted by
 * name; histograms as _bucket{...,le="..."} (cumulative, ending with
 * le="+Inf"), _sum and _count. The same registry state always gives the
 * same bytes.
 */
void metrics_write_prometheus(struct metrics *m, struct buf *out);

#endif
