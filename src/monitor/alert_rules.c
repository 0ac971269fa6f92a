/*
 * alert_rules.c - rules that come with storekeep: the defaults, and the
 * burn-rate rules generated from an SLO.
 *
 * Burn rate (the SRE workbook's "multiwindow, multi-burn-rate alerts"):
 * with an objective of 99.9%, the error budget is 0.1% of requests. An
 * error ratio of 1.44% over an hour burns the budget 14.4 times faster
 * than the objective allows: 2% of a 30-day budget gone in that hour.
 * Paging needs both the long window (1h: it is real) and the short one
 * (5m: it is still happening, so the page stops soon after the fix).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "monitor/alert.h"

#define S(x) ((uint64_t)(x)*1000)
#define M(x) S((x)*60)
#define H(x) M((x)*60)

static const char *const by_pool[] = {"pool"};
static const char *const by_route[] = {"route"};

static const struct alert_matcher m_5xx[] = {{"class", ALERT_MATCH_EQ, "5xx"}};
static const struct alert_matcher m_cpu_busy[] = {
	{"cpu", ALERT_MATCH_EQ, "all"},
	{"mode", ALERT_MATCH_NRE, "idle|iowait"},
};

static const struct alert_rule defaults[] = {
	{
		.name = "BackendDown",
		.expr = {.metric = "storekeep_backend_up",
			 .fn = ALERT_FN_LAST,
			 .window_ms = M(1)},
		.op = ALERT_OP_EQ,
		.threshold = 0,
		.for_ms = S(30),
		.severity = ALERT_SEV_WARNING,
		.summary = "backend {{backend}} of pool {{pool}} is down",
	},
	{
		.name = "PoolDown",
		.expr = {.metric = "storekeep_backend_up",
			 .fn = ALERT_FN_LAST,
			 .window_ms = M(1),
			 .group = ALERT_GROUP_MAX,
			 .by = by_pool,
			 .nby = 1},
		.op = ALERT_OP_EQ,
		.threshold = 0,
		.for_ms = S(10),
		.severity = ALERT_SEV_CRITICAL,
		.summary = "every backend of pool {{pool}} is down",
	},
	{
		.name = "HighErrorRate",
		.expr = {.metric = "storekeep_route_responses_total",
			 .matchers = m_5xx,
			 .nmatchers = 1,
			 .fn = ALERT_FN_INCREASE,
			 .window_ms = M(1),
			 .group = ALERT_GROUP_SUM,
			 .by = by_route,
			 .nby = 1},
		.over = {.metric = "storekeep_route_responses_total",
			 .fn = ALERT_FN_INCREASE,
			 .window_ms = M(1),
			 .group = ALERT_GROUP_SUM,
			 .by = by_route,
			 .nby = 1},
		.op = ALERT_OP_GT,
		.threshold = 0.02,
		.for_ms = M(2),
		.severity = ALERT_SEV_CRITICAL,
		.summary =
			"route {{route}}: {{value|pct}} of responses are 5xx",
	},
	{
		.name = "HighLatency",
		.expr = {.metric = "storekeep_http_request_duration_seconds",
			 .fn = ALERT_FN_QUANTILE,
			 .q = 0.99,
			 .window_ms = M(5)},
		.op = ALERT_OP_GT,
		.threshold = 1,
		.for_ms = M(5),
		.severity = ALERT_SEV_WARNING,
		.summary = "route {{route}}: p99 latency is {{value|duration}}",
	},
	{
		.name = "HostCPUHigh",
		.expr = {.metric = "storekeep_host_cpu_ratio",
			 .matchers = m_cpu_busy,
			 .nmatchers = 2,
			 .fn = ALERT_FN_AVG,
			 .window_ms = M(1),
			 .group = ALERT_GROUP_SUM},
		.op = ALERT_OP_GT,
		.threshold = 0.9,
		.for_ms = M(5),
		.severity = ALERT_SEV_WARNING,
		.summary = "CPU busy {{value|pct}} of the time",
	},
	{
		.name = "HostMemoryLow",
		.expr = {.metric = "storekeep_host_memory_available_bytes",
			 .fn = ALERT_FN_AVG,
			 .window_ms = M(1)},
		.over = {.metric = "storekeep_host_memory_total_bytes",
			 .fn = ALERT_FN_LAST,
			 .window_ms = M(1)},
		.op = ALERT_OP_LT,
		.threshold = 0.1,
		.for_ms = M(5),
		.severity = ALERT_SEV_WARNING,
		.summary = "only {{value|pct}} of memory is available",
	},
	{
		.name = "DiskSpaceLow",
		.expr = {.metric = "storekeep_host_filesystem_used_ratio",
			 .fn = ALERT_FN_LAST,
			 .window_ms = M(1)},
		.op = ALERT_OP_GT,
		.threshold = 0.9,
		.for_ms = M(5),
		.severity = ALERT_SEV_WARNING,
		.summary = "filesystem {{mount}} is {{value|pct}} full",
	},
	{
		.name = "DiskFullPredicted",
		.expr = {.metric = "storekeep_host_filesystem_avail_bytes",
			 .fn = ALERT_FN_TIME_TO_ZERO,
			 .window_ms = H(6)},
		.op = ALERT_OP_LT,
		.threshold = 86400,
		.for_ms = M(30),
		.severity = ALERT_SEV_WARNING,
		.summary = "filesystem {{mount}} will be full in "
			   "{{value|duration}} at the rate of the last 6 hours",
	},
	{
		.name = "ProbeCritical",
		.expr = {.metric = "storekeep_probe_state",
			 .fn = ALERT_FN_LAST,
			 .window_ms = M(1)},
		.op = ALERT_OP_EQ,
		.threshold = 2,
		.for_ms = S(30),
		.severity = ALERT_SEV_CRITICAL,
		.summary = "probe {{probe}} ({{type}}) is critical",
	},
};

size_t alert_default_rules(struct alert_rule *out, size_t max)
{
	size_t n = sizeof(defaults) / sizeof(defaults[0]);

	for (size_t i = 0; i < n && i < max; i++)
		out[i] = defaults[i];
	return n;
}

/* --- SLO ----------------------------------------------------------------- */

static const struct alert_burn_window default_windows[] = {
	{H(1), M(5), 14.4, 0, ALERT_SEV_CRITICAL},
	{H(6), M(30), 6, 0, ALERT_SEV_WARNING},
};

/* "1h", "30m", "90s", "1h30m": a window as people write it. */
static void window_text(uint64_t ms, char *out, size_t n)
{
	uint64_t s = ms / 1000;
	size_t k = 0;

	out[0] = '\0';
	if (ms % 1000 || s == 0) {
		snprintf(out, n, "%llums", (unsigned long long)ms);
		return;
	}
	if (s / 86400 && s % 86400 == 0) {
		snprintf(out, n, "%llud", (unsigned long long)(s / 86400));
		return;
	}
	if (s / 3600)
		k += (size_t)snprintf(out + k, n - k, "%lluh",
				      (unsigned long long)(s / 3600));
	if (s / 60 % 60 && k < n)
		k += (size_t)snprintf(out + k, n - k, "%llum",
				      (unsigned long long)(s / 60 % 60));
	if (s % 60 && k < n)
		snprintf(out + k, n - k, "%llus", (unsigned long long)(s % 60));
}

int alert_slo_rules(const struct alert_slo *slo, struct alert_slo_rules *o,
		    char *err, size_t errlen)
{
	const struct alert_burn_window *w = slo->windows;
	size_t nw = slo->nwindows;

	memset(o, 0, sizeof(*o));
	if (slo->name == NULL || *slo->name == '\0' || slo->route == NULL) {
		snprintf(err, errlen, "slo: a name and a route are needed");
		return -EINVAL;
	}
	if (!(slo->objective > 0 && slo->objective < 1)) {
		snprintf(err, errlen,
			 "slo %s: objective must be between 0 and 1 "
			 "(0.999 for 99.9%%)",
			 slo->name);
		return -EINVAL;
	}
	if (!(slo->latency_s >= 0)) {
		snprintf(err, errlen, "slo %s: latency must be >= 0",
			 slo->name);
		return -EINVAL;
	}
	if (w == NULL) {
		w = default_windows;
		nw = sizeof(default_windows) / sizeof(default_windows[0]);
	}
	if (nw == 0 || nw > ALERT_SLO_WINDOWS_MAX) {
		snprintf(err, errlen, "slo %s: 1 to %d windows", slo->name,
			 ALERT_SLO_WINDOWS_MAX);
		return -EINVAL;
	}
	if (slo->nlabels + 4 > ALERT_LABELS_MAX) {
		snprintf(err, errlen, "slo %s: too many labels", slo->name);
		return -EINVAL;
	}
	o->m_all[0] =
		(struct alert_matcher){"route", ALERT_MATCH_EQ, slo->route};
	o->m_bad[0] = o->m_all[0];
	o->m_bad[1] = (struct alert_matcher){"class", ALERT_MATCH_EQ, "5xx"};
	o->by[0] = "route";
	for (size_t i = 0; i < nw; i++) {
		struct alert_rule *r = &o->rules[i];
		struct metrics_label *l = o->labels[i];
		size_t nl = 0;

		if (w[i].long_ms == 0 || w[i].short_ms == 0 ||
		    w[i].short_ms > w[i].long_ms || !(w[i].factor > 0)) {
			snprintf(err, errlen,
				 "slo %s: window %zu: long >= short > 0 and a "
				 "factor > 0 are needed",
				 slo->name, i + 1);
			return -EINVAL;
		}
		window_text(w[i].long_ms, o->windows[i][0],
			    sizeof(o->windows[i][0]));
		window_text(w[i].short_ms, o->windows[i][1],
			    sizeof(o->windows[i][1]));
		snprintf(o->names[i], sizeof(o->names[i]),
			 "SLOBurnRate:%s:%s%s", slo->name, o->windows[i][0],
			 o->windows[i][1]);
		l[nl++] = (struct metrics_label){"slo", slo->name};
		l[nl++] =
			(struct metrics_label){"long_window", o->windows[i][0]};
		l[nl++] = (struct metrics_label){"short_window",
						 o->windows[i][1]};
		for (size_t k = 0; k < slo->nlabels; k++)
			l[nl++] = slo->labels[k];
		snprintf(o->summary[i], sizeof(o->summary[i]),
			 "SLO %s (%.6g%%%s): error budget burning {{value}}x "
			 "too fast over %s",
			 slo->name, slo->objective * 100,
			 slo->latency_s > 0 ? " fast, not 5xx" : " not 5xx",
			 o->windows[i][0]);

		r->name = o->names[i];
		r->kind = ALERT_RULE_BURN;
		r->expr = (struct alert_query){
			.metric = "storekeep_route_responses_total",
			.matchers = o->m_bad,
			.nmatchers = 2,
			.fn = ALERT_FN_INCREASE,
			.window_ms = w[i].long_ms,
			.group = ALERT_GROUP_SUM,
			.by = o->by,
			.nby = 1};
		if (slo->latency_s > 0)
			r->plus = (struct alert_query){
				.metric = "storekeep_http_request_duration_"
					  "seconds",
				.matchers = o->m_all,
				.nmatchers = 1,
				.fn = ALERT_FN_COUNT_ABOVE,
				.le = slo->latency_s,
				.window_ms = w[i].long_ms,
				.group = ALERT_GROUP_SUM,
				.by = o->by,
				.nby = 1};
		r->over = (struct alert_query){
			.metric = "storekeep_route_responses_total",
			.matchers = o->m_all,
			.nmatchers = 1,
			.fn = ALERT_FN_INCREASE,
			.window_ms = w[i].long_ms,
			.group = ALERT_GROUP_SUM,
			.by = o->by,
			.nby = 1};
		r->op = ALERT_OP_GT;
		r->threshold = w[i].factor;
		r->for_ms = w[i].for_ms;
		r->severity = w[i].severity;
		r->labels = l;
		r->nlabels = nl;
		r->summary = o->summary[i];
		r->objective = slo->objective;
		r->short_window_ms = w[i].short_ms;
	}
	o->nrules = nw;
	return 0;
}
