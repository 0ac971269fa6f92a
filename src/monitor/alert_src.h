/*
 * alert_src.h - the alert engine's data source in the daemon: gauges and
 * counters from the history (monitor/history.h), histograms from the
 * metrics registry through snapshots kept here.
 *
 * Samples. A gauge or counter series is what the history recorded: the
 * last hour at 1 s from memory, older minutes from its SQLite file. With
 * no history (it could not be opened), rules over gauges and counters
 * fail with ENODATA, and /api/v1/alerts says so per rule.
 *
 * Histogram windows. The history keeps only a few quantiles of a
 * histogram; an alert wants any quantile, or the count above a bound,
 * over any window. So at every tick (each evaluation) this takes a
 * snapshot of every histogram series in the registry (all shards
 * merged), compacted to 16 buckets per power of two (values under
 * 256 us keep their own buckets): a window's quantile is then within
 * about 3% of the exact one, and so is a count_above bound. Two rings of
 * snapshots: one per tick for the last min(30 min, longest window), and
 * one per minute for the longest window when it is longer (burn-rate
 * rules look back 6 h). A window (from, to] is the difference of the
 * snapshots nearest to its ends; before the first snapshot, the
 * histogram counts as empty (series start empty when registered). Memory:
 * a snapshot holds its non-empty buckets (10 bytes each), so a latency
 * histogram with a few hundred buckets costs about 1-2 MiB for 6 h.
 *
 * Threads: the control thread only.
 */
#ifndef SK_MONITOR_ALERT_SRC_H
#define SK_MONITOR_ALERT_SRC_H

#include <stddef.h>
#include <stdint.h>

#include "monitor/alert.h"
#include "monitor/metrics.h"

struct history;
struct alert_src;

/* reg borrowed for the life of the source; h may be NULL. */
struct alert_src *alert_src_new(struct metrics *reg, struct history *h);
void alert_src_free(struct alert_src *s);
/* The history went away (stop) or came back: NULL or the new one. */
void alert_src_set_history(struct alert_src *s, struct history *h);

/*
 * Snapshots every histogram at now_ms (wall clock). interval_ms is the
 * time between calls and max_window_ms the longest window a rule reads
 * (the rings are sized for both); call it before each
 * alert_engine_eval().
 */
void alert_src_tick(struct alert_src *s, uint64_t now_ms,
		    uint64_t interval_ms, uint64_t max_window_ms);

/* The source to give alert_engine_new() (s borrowed). */
struct alert_source alert_src_source(struct alert_src *s);

/* Histogram series tracked and bytes their snapshots hold. */
size_t alert_src_hist_series(const struct alert_src *s);
size_t alert_src_bytes(const struct alert_src *s);

/* The longest window any query of rules reads, short windows included. */
uint64_t alert_rules_max_window(const struct alert_rule *rules, size_t n);

#endif
