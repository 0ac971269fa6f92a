/*
 * probe.h - probes: checks of things outside the request path (an HTTP
 * endpoint, a TCP port, a PostgreSQL server, a SQLite file, any Nagios
 * plugin), each on its own schedule with its own timeout.
 *
 * Everything runs on the control loop without blocking it: http and tcp
 * use libuv sockets, nagios plugins are spawned with uv_spawn (no shell)
 * in a process group of their own, and postgresql and sqlite run in the
 * libuv thread pool with a deadline that the worker thread itself keeps
 * (libpq's non-blocking API with poll(), SQLite's progress handler), so a
 * hung server holds a pool thread for at most the probe's timeout. A run
 * that outlasts its timeout is critical at that moment; its leftovers (a
 * plugin, which gets SIGKILL, a pool thread) are cleaned up behind it and
 * never delay another probe. A probe whose previous run has not finished
 * cleaning up when its next run is due skips that run (counted as
 * result="skipped").
 *
 * Results go to the registry given to probes_start() (see
 * docs/monitoring.md for the metric list) and to probes_status_json().
 * States are Nagios': ok, warning, critical, unknown.
 *
 * Threads: every function here, and every callback, runs on the control
 * loop. The registry shard given is written by this module only.
 *
 * Not here: thresholds on the numbers a probe gathers (alert rules do
 * that), https, retries within a run, passive checks.
 */
#ifndef SK_MONITOR_PROBE_H
#define SK_MONITOR_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "core/config.h"
#include "monitor/metrics.h"

enum probe_state {
	PROBE_OK = 0,
	PROBE_WARNING = 1,
	PROBE_CRITICAL = 2,
	PROBE_UNKNOWN = 3,
};

/* "ok", "warning", "critical", "unknown". */
const char *probe_state_name(enum probe_state s);

struct probes;

/*
 * Starts cfg's probes on the control loop. Each probe's first run comes
 * within min(interval, 1 s) of the start (spread by name), then one every
 * interval. cfg is borrowed for the call (what the probes need is
 * copied). reg is borrowed until probes_stop() has finished; shard is the
 * control thread's own. Returns the probes, or NULL with err set (a URL
 * that does not parse names its probe; out of memory).
 */
struct probes *probes_start(uv_loop_t *control, const struct cfg_monitor *cfg,
			    struct metrics *reg, unsigned shard, char *err,
			    size_t errlen);

/*
 * Applies a new configuration: a probe whose settings did not change goes
 * on untouched; a changed one restarts (its state is unknown until it
 * has run); a removed one stops, and its gauges (up, state, duration and
 * the type's extras) are set to NaN, since the registry keeps series
 * forever. A probe whose URL does not parse reports unknown with the
 * reason, and the error is logged. cfg is borrowed for the call.
 */
void probes_reload(struct probes *p, const struct cfg_monitor *cfg);

/*
 * Stops every probe: runs in progress are abandoned (plugins get
 * SIGKILL), handles closed. done(ud) runs on the loop once everything is
 * released, at the latest when the slowest pool-thread run reaches its
 * deadline; p is freed before it. done may be NULL.
 */
void probes_stop(struct probes *p, void (*done)(void *ud), void *ud);

/*
 * A new JSON array, one object per probe in config order:
 *   name, type, state, message, running (bool),
 *   last_run (ISO 8601 UTC, null before the first run),
 *   duration_seconds (the last run's, null before it),
 *   interval_seconds, timeout_seconds,
 *   runs {ok, warning, critical, unknown, skipped},
 *   details: what the type gathered (http: status, bytes; postgresql:
 *     connections, max_connections, ...; sqlite: file_bytes, wal_bytes,
 *     quick_check; nagios: exit_code, perf [{label, value, uom, warn,
 *     crit, min, max}]).
 * The caller owns the reference.
 */
json_t *probes_status_json(struct probes *p);

/* --- Nagios plugin output ------------------------------------------------
 *
 * The format of the Nagios plugin development guidelines:
 *
 *   TEXT | PERFDATA
 *   LONG TEXT LINE 2
 *   LONG TEXT LINE 3 | PERFDATA 2
 *   PERFDATA 3
 *
 * Performance data is a whitespace-separated list of
 * 'label'=value[UOM];[warn];[crit];[min];[max]: the label in single
 * quotes when it holds spaces or '=' (a quote inside doubled: ''), the
 * value a decimal number (or U, undetermined), the unit of measure any
 * run of letters or '%' (s, ms, us, %, B, KB, MB, GB, TB, c ...), warn and
 * crit Nagios ranges kept as text (10, 10:, ~:10, 10:20, @10:20), min and
 * max numbers. An item that does not follow this is skipped and counted.
 */

#define NAGIOS_PERF_MAX 64	 /* items kept per output */
#define NAGIOS_LABEL_MAX 128	 /* label bytes */
#define NAGIOS_UOM_MAX 8	 /* unit bytes */
#define NAGIOS_RANGE_MAX 32	 /* warn / crit text bytes */
#define NAGIOS_TEXT_MAX 1024	 /* first-line text bytes kept */

struct nagios_perf {
	char label[NAGIOS_LABEL_MAX + 1];
	char uom[NAGIOS_UOM_MAX + 1];
	char warn[NAGIOS_RANGE_MAX + 1]; /* "" when absent */
	char crit[NAGIOS_RANGE_MAX + 1];
	double value; /* NaN for U */
	double min;   /* NaN when absent */
	double max;
};

struct nagios_output {
	char text[NAGIOS_TEXT_MAX + 1]; /* first line before '|', trimmed */
	struct nagios_perf perf[NAGIOS_PERF_MAX];
	size_t nperf;
	size_t bad;	/* items skipped as malformed */
	size_t dropped; /* well-formed items past NAGIOS_PERF_MAX */
};

/* Parses a plugin's standard output (len bytes; need not be
 * NUL-terminated, NUL bytes end it) into *out. Never fails. */
void nagios_output_parse(const char *s, size_t len, struct nagios_output *out);

#endif
