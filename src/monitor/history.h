/*
 * history.h - metric history: the last hour at 1 s resolution in memory,
 * and older samples downsampled into SQLite (1-minute and 1-hour rows).
 *
 * Feeding. The control thread calls history_sample() once a second: it
 * reads every series of a metrics registry (metrics_foreach) and records
 *   - a gauge as it is, a counter as its exported value (recorded /
 *     10^decimals), both under their own name and labels;
 *   - a histogram N{L} as three kinds of series: N_count{L} and N_sum{L}
 *     (counters, like Prometheus'), and N{L,quantile="0.5"|"0.9"|"0.99"|
 *     "0.999"}, the quantiles of the observations made since the previous
 *     sample (no value in a second without observations).
 * history_record() adds one gauge value by hand. NaN and infinite values
 * are not kept.
 *
 * Memory. Each series has a ring of 3600 doubles (28 KiB), one slot per
 * second; at most HISTORY_SERIES_MAX series are kept, later ones are
 * counted and left out. A histogram also keeps three snapshots (90 KiB).
 *
 * Downsampling. When a minute ends, every series that had samples in it
 * gets a row (avg, min, max, last and the number of samples) for that
 * minute; when an hour ends, a row for the hour, aggregated over all its
 * samples. For quantile series the row's avg is the exact quantile of all
 * observations in the row's window (from histogram snapshots), min and
 * max the extremes of the per-second quantiles. Minutes and hours are
 * aligned to the Unix epoch (UTC).
 *
 * Storage. Rows go to SQLite (WAL) in one transaction per batch, on a
 * pool thread (uv_queue_work), never on the loop; while one batch is
 * written the next accumulates. Every hour (and after open and reload)
 * rows older than minute_retention / hour_retention go; whenever the
 * database holds more than max_bytes, the oldest minute rows go first,
 * then the oldest hour rows, down to 90% of max_bytes (the WAL file,
 * up to about 4 MiB, comes on top). history_close() writes the minute
 * and hour in progress as partial rows, which the next process merges
 * with its own (weighted by their sample counts), so history survives a
 * restart; the 1-second ring does not.
 *
 * Queries (history_query) run on the loop against memory or a read-only
 * SQLite connection, bounded by HISTORY_QUERY_POINTS_MAX points.
 *
 * Threads: everything here runs on the control loop, and only there.
 *
 * Not here: rates and other PromQL functions (the caller computes them
 * from counter points), deleting series, remote storage.
 */
#ifndef SK_MONITOR_HISTORY_H
#define SK_MONITOR_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/config.h"
#include "monitor/metrics.h"

#define HISTORY_MEMORY_SECONDS 3600
#define HISTORY_SERIES_MAX 4096
#define HISTORY_POINTS_MAX 11000	 /* per series in one answer */
#define HISTORY_QUERY_POINTS_MAX 1000000 /* in one answer */

struct history;

/*
 * Opens (creating it if needed) the SQLite file cfg->path and starts an
 * empty in-memory hour. cfg is borrowed for the call. Returns 0 and
 * *out, or a negative errno with err saying what is wrong in words a
 * person can act on (a directory that does not exist or is not
 * writable, a file that is not a history database, one written by a
 * newer storekeep).
 */
int history_open(uv_loop_t *loop, const struct cfg_history *cfg,
		 struct history **out, char *err, size_t errlen);

/* Takes the new retention and max_bytes (the path cannot change without
 * a restart: a different one is logged and ignored) and prunes with the
 * next batch. cfg is borrowed for the call. */
void history_reload(struct history *h, const struct cfg_history *cfg);

/*
 * Records every series of reg at now_ms (wall clock, ms since the epoch;
 * one call per second, from the thread that registers into reg). A
 * second already sampled is ignored, a time before it too (-ERANGE).
 * Always the same registry for one history. Returns 0 or -ERANGE.
 */
int history_sample(struct history *h, struct metrics *reg, uint64_t now_ms);

/*
 * Records value for one gauge series at now_ms. series_key is a name
 * with optional labels in the exposition syntax: `name` or
 * `name{a="x",b="y"}` (any label order). Returns 0, -EINVAL for a key
 * that does not parse, -ENOSPC when HISTORY_SERIES_MAX series exist,
 * -ERANGE for a time before the latest sample.
 */
int history_record(struct history *h, uint64_t now_ms, const char *series_key,
		   double value);

/*
 * The series of metric matching every label matcher, between from_ms and
 * to_ms (inclusive, wall clock ms), one point per step:
 *
 *   {"metric": "...", "source": "memory"|"minute"|"hour",
 *    "resolution": 1|60|3600, "step": seconds, "from": s, "to": s,
 *    "series": [{"labels": {"k": "v", ...},
 *                "points": [[ts_seconds, value], ...]}, ...]}
 *
 * The source follows from_ms: memory when the last hour holds it (and
 * history has run that long), else minute rows while from_ms is within
 * minute_retention, else hour rows. Rows of the minute and hour in
 * progress, and rows not yet written, are included. labels: NULL, "" or
 * "k=v,k2=v2" (exact matches; a value may be double-quoted, with \" and
 * \\ escapes, to hold a comma). step_ms: 0 picks the source's resolution
 * (coarser if the answer would exceed HISTORY_POINTS_MAX points); else a
 * multiple of 1000, rounded up to a multiple of the resolution. A point's
 * ts is the start of its step (steps aligned to the epoch); its value
 * aggregates the samples or rows in the step with agg: "avg", "min",
 * "max", "last", or NULL for the series' default (counters: last; gauges
 * and quantiles: avg, weighted by sample counts). Series come sorted by
 * their labels.
 *
 * Returns 0 with *out the answer; -EINVAL with *out = {"error": "..."}
 * for a bad argument or an answer too large (the admin answers 400);
 * -EIO with *out = {"error": "..."} when SQLite fails. The caller owns
 * *out.
 */
int history_query(struct history *h, const char *metric, const char *labels,
		  uint64_t from_ms, uint64_t to_ms, uint64_t step_ms,
		  json_t **out);
int history_query_agg(struct history *h, const char *metric,
		      const char *labels, uint64_t from_ms, uint64_t to_ms,
		      uint64_t step_ms, const char *agg, json_t **out);

/*
 * history_query_agg() driven by a URL query string, for GET
 * /api/v1/query: qs is what follows '?' (percent-escapes and '+'
 * decoded here), with
 *   metric  required
 *   labels  optional matchers, as history_query()
 *   from    Unix seconds (decimals allowed), or relative to now: "-1h",
 *           "-15m", "-30s", "-2d"; default to - 1 h
 *   to      likewise, or "now"; default now
 *   step    seconds, or a duration "60", "5m", "1h"; default 0 (auto)
 *   agg     avg | min | max | last; default per series
 * now_ms is the wall clock. A parameter that is unknown, repeated or
 * does not parse is -EINVAL with *out = {"error": "..."}; otherwise as
 * history_query_agg().
 */
int history_query_params(struct history *h, const char *qs, uint64_t now_ms,
			 json_t **out);

/*
 * For the alert engine (monitor/alert_src.c): the gauge and counter
 * series of metric (quantile series of histograms are left out: the
 * engine reads histograms from the registry), by a handle valid as long
 * as the history. Calls cb once per series; labels sorted by name.
 */
typedef void (*history_series_cb)(void *ud, uint64_t id,
				  const struct metrics_label *labels,
				  size_t nlabels);
void history_each_series(struct history *h, const char *metric,
			 history_series_cb cb, void *ud);

/*
 * The samples of series id with from_ms <= t <= to_ms, oldest first:
 * the 1-second ring for the part this process holds in memory, and
 * before that the 1-minute rows from the file (a counter's last value
 * at the end of its minute, a gauge's average in the middle of it).
 * Returns 0, -ENOENT for an unknown id, or -EIO when SQLite fails.
 */
typedef void (*history_sample_cb)(void *ud, uint64_t t_ms, double v);
int history_samples(struct history *h, uint64_t id, uint64_t from_ms,
		    uint64_t to_ms, history_sample_cb cb, void *ud);

/* Writes what is pending now (completed minutes and hours) and calls
 * done(ud) on the loop once it is in the file. */
void history_flush(struct history *h, void (*done)(void *ud), void *ud);

/*
 * Counters for the status page: series (kept, left out), memory bytes,
 * the database path and size, rows written and dropped, write errors and
 * the last one, the last batch's duration. A new object; caller owns it.
 */
json_t *history_status_json(struct history *h);

/*
 * Writes the minute and hour in progress as partial rows, waits for the
 * writes, closes the database and frees h; then done(ud) on the loop
 * (done may be NULL).
 */
void history_close(struct history *h, void (*done)(void *ud), void *ud);

#endif
