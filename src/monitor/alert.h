/*
 * alert.h - alert rules: a selector, a function over a time window, a
 * comparison with a threshold, and the inactive -> pending -> firing ->
 * resolved life of every alert a rule raises; silences; SLO burn-rate
 * rules; the built-in default rules.
 *
 * The engine reads no metric itself. It asks a struct alert_source (the
 * history module, or the in-memory store below) for the series of a
 * metric and for their samples or histogram windows, on the control
 * thread, during alert_engine_eval(). What it decides goes to a
 * notifier (monitor/notify.h) and to alert_engine_json().
 *
 * A rule's value, per label set:
 *
 *     (expr + plus) / over        plus and over optional (metric NULL)
 *
 * Each of the three is a query: the series of one metric that match
 * every matcher, each reduced to one number by a function over
 * [now - window, now], then, if group is set, combined across series
 * into one number per value of the `by` labels. The three are joined on
 * identical label sets: a set missing from plus counts 0, a set missing
 * from expr counts 0 when over has it (no 5xx series yet is a 0% error
 * share), a set missing from over, or where over is 0, has no value.
 * A burn-rate rule (ALERT_RULE_BURN) computes the same ratio twice, over
 * the queries' window and over short_window_ms, caps it at 1, divides
 * it by the error budget (1 - objective), and holds when both results
 * pass the comparison.
 *
 * An alert is one (rule, label set): the rule's labels after grouping,
 * plus alertname (the rule's name), severity and the rule's extra labels.
 * Its life:
 *
 *   - the condition holds: inactive -> pending (active_at = now); pending
 *     for `for_ms` -> firing (for_ms 0: firing at once);
 *   - pending and the condition fails (or the series is gone): inactive
 *     again, and nothing was sent;
 *   - firing and the condition fails: it stays firing until the condition
 *     has failed at every evaluation for keep_firing_for_ms, then
 *     resolved. A value that flaps around the threshold, faster than
 *     keep_firing_for, pages once and resolves once;
 *   - resolved alerts are listed for resolved_keep_ms, then forgotten; a
 *     new breach starts a new pending.
 *
 * Notifications: a firing alert is sent when it starts firing, and again
 * every repeat_ms while it fires (0: never again); a resolved one once,
 * if its firing was sent. A silence suppresses firing notifications
 * (first and repeated) but changes no state; when it ends, an alert that
 * still fires and was never sent is sent at the next evaluation. The
 * resolution of an alert whose firing was sent goes out even while
 * silenced, so that no receiver is left with an alert that never ends.
 * If a source query fails, the rule's alerts keep their states (a broken
 * history must not resolve every alert) and the rule reports the error.
 *
 * Persistence: alerts (states, times, what was sent) and silences are
 * written as JSON to state_path (write to a temporary file, then rename)
 * whenever a state changes, a notification goes out or a silence is
 * added or deleted, and read back by alert_engine_new(): a restart
 * neither re-pages a firing alert nor forgets to resolve it. The file is
 * fsynced before the rename: a power cut can lose the last changes, never
 * the file.
 *
 * Times are wall-clock milliseconds since the Unix epoch (they are
 * persisted and shown to people); the caller passes them in, so tests
 * drive the clock.
 *
 * Threads: everything runs on the control thread; nothing here locks.
 *
 * Not here: PromQL, joins on anything but identical label sets, rules
 * over other rules, inhibition, grouping of notifications beyond one
 * batch per evaluation, the YAML mapping (the config module builds these
 * plain structs).
 */
#ifndef SK_MONITOR_ALERT_H
#define SK_MONITOR_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "monitor/hist.h"
#include "monitor/metrics.h"

struct notify;

#define ALERT_MATCHERS_MAX   16
#define ALERT_BY_MAX	     8
#define ALERT_LABELS_MAX     16	 /* extra labels of a rule */
#define ALERT_NAME_MAX	     128 /* a rule's name */
#define ALERT_SILENCE_ID_LEN 16
#define ALERT_SILENCES_MAX   1024
#define ALERT_INSTANCES_MAX  10000 /* alerts of one rule; more are dropped */

/* --- rules: plain data ------------------------------------------------- */

enum alert_match_op {
	ALERT_MATCH_EQ = 0, /* label = "value" (absent label: "") */
	ALERT_MATCH_NE,	    /* label != "value" */
	ALERT_MATCH_RE,	    /* label =~ "regex": POSIX ERE, whole value */
	ALERT_MATCH_NRE,    /* label !~ "regex" */
};

struct alert_matcher {
	const char *name;
	enum alert_match_op op;
	const char *value;
};

/* What a query does to each series' samples in [now - window, now]. */
enum alert_fn {
	ALERT_FN_LAST = 0, /* the latest sample */
	ALERT_FN_AVG,	   /* mean of the samples; histogram: sum / count */
	ALERT_FN_MIN,	   /* histogram: the smallest observation (q 0) */
	ALERT_FN_MAX,	   /* histogram: the largest (q 1) */
	/* counter increase over the window: the sum of the steps between
	 * samples, a drop counting as a restart from 0; needs 2 samples. A
	 * histogram: the number of observations in the window. */
	ALERT_FN_INCREASE,
	/* increase per second: increase / (last - first sample time);
	 * histogram: observations / window. */
	ALERT_FN_RATE,
	/* the q-quantile (nearest rank): of the observations in the window
	 * for a histogram, of the sample values otherwise */
	ALERT_FN_QUANTILE,
	/* least-squares line through the samples, its value at now +
	 * horizon_ms (PromQL's predict_linear) */
	ALERT_FN_PREDICT_LINEAR,
	/* the same line: seconds from now until it reaches 0; 0 when it is
	 * at or below 0 now, +Inf when it does not fall */
	ALERT_FN_TIME_TO_ZERO,
	/* histograms: observations in the window above `le` (in the
	 * metric's unit, e.g. seconds): the slow requests of an SLO */
	ALERT_FN_COUNT_ABOVE,
};

/* How a query combines its series: not at all, or per `by` value. */
enum alert_group {
	ALERT_GROUP_NONE = 0,
	ALERT_GROUP_SUM,
	ALERT_GROUP_AVG,
	ALERT_GROUP_MIN,
	ALERT_GROUP_MAX,
	ALERT_GROUP_COUNT,
};

struct alert_query {
	const char *metric; /* NULL: the query is not used */
	const struct alert_matcher *matchers;
	size_t nmatchers;
	enum alert_fn fn;
	uint64_t window_ms;  /* > 0 */
	double q;	     /* ALERT_FN_QUANTILE, 0..1 */
	uint64_t horizon_ms; /* ALERT_FN_PREDICT_LINEAR */
	double le;	     /* ALERT_FN_COUNT_ABOVE */
	enum alert_group group;
	const char *const *by; /* labels kept by the group, may be 0 of them */
	size_t nby;
};

enum alert_op {
	ALERT_OP_GT = 0,
	ALERT_OP_GE,
	ALERT_OP_LT,
	ALERT_OP_LE,
	ALERT_OP_EQ,
	ALERT_OP_NE,
};

enum alert_severity {
	ALERT_SEV_INFO = 0,
	ALERT_SEV_WARNING,
	ALERT_SEV_CRITICAL,
};

enum alert_rule_kind {
	ALERT_RULE_THRESHOLD = 0,
	ALERT_RULE_BURN, /* see the head comment; objective, short_window_ms */
};

struct alert_rule {
	const char *name; /* unique; becomes the alertname label */
	bool disabled;
	enum alert_rule_kind kind;
	struct alert_query expr;
	struct alert_query plus; /* metric NULL: none */
	struct alert_query over; /* metric NULL: none */
	enum alert_op op;
	double threshold;
	uint64_t for_ms;
	uint64_t keep_firing_for_ms;
	uint64_t repeat_ms; /* 0: a firing alert is sent once */
	enum alert_severity severity;
	const struct metrics_label *labels; /* extra labels */
	size_t nlabels;
	/*
	 * One line for people. {{name}} is the value of label `name` ("" when
	 * absent), {{value}} the rule's value (%.4g); a filter may follow:
	 * {{value|pct}} 0.0234 -> 2.34%, {{value|bytes}} -> 1.5 GiB,
	 * {{value|duration}} -> 1h 5m, 850ms. NULL: "<alertname> <op>
	 * <threshold>".
	 */
	const char *summary;
	/* burn-rate rules */
	double objective;	  /* 0 < objective < 1, e.g. 0.999 */
	uint64_t short_window_ms; /* the second, shorter window */
};

/* "avg", "max", ... "count_above"; and back. Return NULL / -EINVAL. */
const char *alert_fn_name(enum alert_fn fn);
int alert_fn_parse(const char *s, enum alert_fn *out);
const char *alert_group_name(enum alert_group g); /* "none", "sum", ... */
int alert_group_parse(const char *s, enum alert_group *out);
const char *alert_op_name(enum alert_op op); /* ">", ">=", ... */
int alert_op_parse(const char *s, enum alert_op *out);
const char *alert_severity_name(enum alert_severity s); /* "info", ... */
int alert_severity_parse(const char *s, enum alert_severity *out);

/*
 * Checks one rule on its own (names, windows, q, regexes, template) and
 * says what is wrong in err: "rule HighLatency: expr: window must be > 0".
 * alert_engine_new() and _reload() run it on every rule (and check that
 * names are unique). Returns 0 or -EINVAL.
 */
int alert_rule_check(const struct alert_rule *r, char *err, size_t errlen);

/* --- selectors: text for config values, the admin API and ctl --------- */

/*
 * A parsed selector: `metric{a="x", b=~"y.*"}`, `{a!="x"}` or, without
 * braces, `a="x",b!~y` (quotes optional when a value holds none of
 * `,}"` and no space; inside quotes \" and \\ escape). Everything is
 * owned by the struct.
 */
struct alert_selector {
	char *metric; /* NULL when the text named none */
	struct alert_matcher *matchers;
	size_t nmatchers;
};

/* Returns 0, or -EINVAL with err saying where the text is wrong. */
int alert_selector_parse(const char *s, struct alert_selector *out, char *err,
			 size_t errlen);
void alert_selector_fini(struct alert_selector *sel);

/* --- the data source --------------------------------------------------- */

enum alert_series_kind {
	ALERT_SERIES_SAMPLES = 0, /* gauges and counters: (t, value) samples */
	ALERT_SERIES_HIST,	  /* histograms: windows of observations */
};

struct alert_series_info {
	const struct metrics_label *labels; /* any order, no repeats */
	size_t nlabels;
	enum alert_series_kind kind;
	/* histograms: a recorded value / 10^decimals is in the metric's
	 * unit (6: microseconds recorded, seconds shown) */
	unsigned decimals;
	uint64_t id; /* the source's handle, valid until the eval returns */
};

typedef void (*alert_series_cb)(void *cbud, const struct alert_series_info *s);
typedef void (*alert_sample_cb)(void *cbud, uint64_t t_ms, double v);

/*
 * What the engine reads. Every function runs on the control thread,
 * synchronously, within alert_engine_eval(); pointers given to a
 * callback are valid during that call only. Each returns 0 or a
 * negative errno, which fails the rule for this evaluation.
 */
struct alert_source {
	void *ud;
	/* cb once per series named metric. The matchers are a hint the
	 * source may use to skip series; the engine applies them anyway. */
	int (*series)(void *ud, const char *metric,
		      const struct alert_matcher *m, size_t nm,
		      alert_series_cb cb, void *cbud);
	/* cb for each sample of series id with from_ms <= t <= to_ms, in
	 * ascending time. NaN values are not samples. */
	int (*samples)(void *ud, uint64_t id, uint64_t from_ms, uint64_t to_ms,
		       alert_sample_cb cb, void *cbud);
	/* Histogram id: empties out and adds the observations made in
	 * (from_ms, to_ms], as far back as the source remembers. A source
	 * that keeps snapshots of cumulative histograms answers with the
	 * difference of the snapshots nearest to the two times (the
	 * window then is exact to the source's resolution). */
	int (*hist_window)(void *ud, uint64_t id, uint64_t from_ms,
			   uint64_t to_ms, struct hist *out);
};

/*
 * An in-memory source for tests and small set-ups: series fed by hand,
 * kept until pruned. Samples of one series must come in time order.
 */
struct alert_mem;

struct alert_mem *alert_mem_new(void);
void alert_mem_free(struct alert_mem *m);
/* A gauge or counter sample. Returns 0, -EINVAL (bad name, older than
 * the series' last sample), -ENOMEM. */
int alert_mem_add(struct alert_mem *m, const char *metric,
		  const struct metrics_label *labels, size_t nlabels,
		  uint64_t t_ms, double v);
/* count observations of value (recorded units) at t_ms into a histogram
 * series whose values / 10^decimals are in the metric's unit. */
int alert_mem_observe(struct alert_mem *m, const char *metric,
		      const struct metrics_label *labels, size_t nlabels,
		      unsigned decimals, uint64_t t_ms, uint64_t value,
		      uint64_t count);
/* Forgets samples and observations older than before_ms. */
void alert_mem_prune(struct alert_mem *m, uint64_t before_ms);
/* The source reading m (borrowed; m must outlive the engine's use). */
struct alert_source alert_mem_source(struct alert_mem *m);

/* --- the engine ------------------------------------------------------ */

/* Called with each batch of notifications (a JSON array in the format of
 * notify.h's head comment, borrowed for the call); firing and resolved
 * alerts come in separate batches. */
typedef void (*alert_send_cb)(void *ud, json_t *batch);

struct alert_engine_conf {
	const struct alert_rule *rules; /* copied */
	size_t nrules;
	const char *state_path;	   /* NULL or "": nothing persisted */
	const char *generator_url; /* link put in notifications; may be NULL */
	uint64_t resolved_keep_ms; /* 0: 15 minutes */
	struct notify *notify;	   /* borrowed, may be NULL */
	alert_send_cb send;	   /* also called, may be NULL (tests) */
	void *send_ud;
};

struct alert_engine;

/*
 * Checks and copies the rules, reads state_path if it exists (alerts of
 * rules that no longer exist, and expired silences, are dropped; a file
 * that does not parse is logged, renamed to <path>.bad and ignored).
 * src is copied (its ud borrowed until alert_engine_free); notify
 * borrowed likewise. Returns 0 and *out, or -EINVAL with err naming the
 * rule, or -ENOMEM.
 */
int alert_engine_new(const struct alert_engine_conf *conf,
		     const struct alert_source *src, struct alert_engine **out,
		     char *err, size_t errlen);

/*
 * Replaces the rules. Alerts of a rule whose name is kept keep their
 * states (the next eval judges them by the new definition); those of a
 * removed or disabled rule end: a sent firing gets its resolved
 * notification now. On error nothing changes. Returns 0, -EINVAL (err),
 * -ENOMEM.
 */
int alert_engine_reload(struct alert_engine *e, const struct alert_rule *rules,
			size_t nrules, char *err, size_t errlen);

/*
 * Evaluates every rule at now_ms, moves alerts through their states,
 * expires silences, sends what is due and saves the state if it
 * changed. Returns the number of rules that failed (0: all evaluated).
 */
int alert_engine_eval(struct alert_engine *e, uint64_t now_ms);

/* Saves the state (if a path was given) and frees everything. */
void alert_engine_free(struct alert_engine *e);

/*
 * For GET /api/v1/alerts, a new object the caller owns:
 *   {"alerts": [{name, fingerprint, state, labels, annotations: {summary},
 *                value, active_at, fired_at, resolved_at, since,
 *                silenced, silenced_by: [ids], last_notified}, ...],
 *    "rules": [{name, kind, severity, disabled, health: "ok"|"error"|
 *               "unknown", last_error, last_eval, eval_seconds, alerts}],
 *    "silences": [...as alert_silence_list...],
 *    "notifiers": [...as notify_status_json, [] without a notifier...]}
 * Alerts come firing first, then pending, then resolved, each by rule
 * and labels; times are ISO 8601 UTC or null.
 */
json_t *alert_engine_json(struct alert_engine *e);

/* --- silences ---------------------------------------------------------- */

struct alert_silence {
	const struct alert_matcher *matchers; /* on alert labels; >= 1 */
	size_t nmatchers;
	uint64_t starts_at_ms;	/* 0: now */
	uint64_t ends_at_ms;	/* > starts_at_ms and > now */
	const char *created_by; /* may be NULL */
	const char *comment;	/* may be NULL */
};

/*
 * Adds a silence (copied) and writes its id (16 hex digits, NUL-ended)
 * to id. now_ms is the wall clock. Returns 0, -EINVAL (err says why: no
 * matcher, a bad regex, an end in the past), -ENOSPC (too many).
 */
int alert_silence_add(struct alert_engine *e, const struct alert_silence *s,
		      uint64_t now_ms, char id[ALERT_SILENCE_ID_LEN + 1],
		      char *err, size_t errlen);
/* Deletes (expires at once) a silence. Returns 0 or -ENOENT. */
int alert_silence_del(struct alert_engine *e, const char *id);
/* A new array: [{id, matchers: [{name, op, value}], starts_at, ends_at,
 * created_at, created_by, comment, state: "active"|"pending"}]. */
json_t *alert_silence_list(struct alert_engine *e);

/* --- built-in rules -------------------------------------------------- */

/*
 * The default rules, written into out (up to max; returns how many
 * there are, which may be more than max). Their strings point to static
 * storage; a caller turns one off (disabled = true) or retunes it
 * (threshold, for_ms, severity ...) in its copy before giving them to
 * the engine. Names and meanings (docs/monitoring.md has the details):
 *
 *   BackendDown        storekeep_backend_up == 0 for 30s
 *   PoolDown           max by (pool) of backend_up == 0 for 10s
 *   HighErrorRate      5xx share of a route's responses > 2% for 2m
 *   HighLatency        p99 of a route over 5m > 1s for 5m
 *   HostCPUHigh        busy share of all CPUs > 90% for 5m
 *   HostMemoryLow      memory available < 10% for 5m
 *   DiskSpaceLow       a filesystem over 90% used for 5m
 *   DiskFullPredicted  a filesystem full within 24h (linear fit, 6h)
 *   ProbeCritical      storekeep_probe_state == 2 for 30s
 */
size_t alert_default_rules(struct alert_rule *out, size_t max);

/* --- SLO burn-rate rules --------------------------------------------- */

#define ALERT_SLO_WINDOWS_MAX 4

struct alert_burn_window {
	uint64_t long_ms;
	uint64_t short_ms;
	double factor; /* burn rate that alerts, e.g. 14.4 */
	uint64_t for_ms;
	enum alert_severity severity;
};

/*
 * A route's objective: `objective` of its requests succeed, where a
 * success is a response that is not 5xx and, when latency_s > 0, took
 * at most latency_s seconds. Bad events are the 5xx responses
 * (storekeep_route_responses_total{class="5xx"}) plus the responses
 * slower than latency_s (storekeep_http_request_duration_seconds); a
 * slow 5xx counts twice, so the error ratio is an upper bound (capped
 * at 1).
 */
struct alert_slo {
	const char *name;  /* e.g. "checkout" */
	const char *route; /* the route label's value */
	double objective;  /* e.g. 0.999 */
	double latency_s;  /* 0: latency not part of the objective */
	/* NULL: the SRE workbook's pair, 1h & 5m > 14.4 critical (2% of a
	 * 30-day budget in an hour) and 6h & 30m > 6 warning */
	const struct alert_burn_window *windows;
	size_t nwindows;
	const struct metrics_label *labels; /* extra labels, may be NULL */
	size_t nlabels;
};

/* The rules of one SLO, and the storage they point into. */
struct alert_slo_rules {
	struct alert_rule rules[ALERT_SLO_WINDOWS_MAX];
	size_t nrules;
	char names[ALERT_SLO_WINDOWS_MAX][ALERT_NAME_MAX];
	struct alert_matcher m_all[1], m_bad[2];
	const char *by[1];
	struct metrics_label labels[ALERT_SLO_WINDOWS_MAX][ALERT_LABELS_MAX];
	char windows[ALERT_SLO_WINDOWS_MAX][2][16];
	char summary[ALERT_SLO_WINDOWS_MAX][256];
};

/*
 * Generates slo's burn-rate rules into out: one rule per window pair,
 * named "SLOBurnRate:<slo>:<long><short>" (e.g. SLOBurnRate:checkout:1h5m),
 * labelled slo, route, long_window, short_window. The rules point into
 * out and into slo's strings: both must outlive the rules until they are
 * given to the engine (which copies them). Returns 0 or -EINVAL (err).
 */
int alert_slo_rules(const struct alert_slo *slo, struct alert_slo_rules *out,
		    char *err, size_t errlen);

#endif
