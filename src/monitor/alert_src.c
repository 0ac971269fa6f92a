/*
 * alert_src.c - the daemon's alert source: samples from the history,
 * histogram windows from compact snapshots of the registry (see
 * alert_src.h for what is kept and how exact it is).
 *
 * Compact buckets ("groups"): a group is a bucket of hist.h for values
 * under 256, and 8 neighbouring buckets above, so 16 per power of two.
 * A group stands for the representative value of its middle bucket.
 *
 * A histogram series' id, as the engine sees it, has the top bit set and
 * its index among the tracked series below; a sample series' id is the
 * history's handle.
 */
#include "monitor/alert_src.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "monitor/hist.h"
#include "monitor/history.h"

#define EXACT	     256 /* buckets below this are their own group */
#define GROUP_SHIFT  3	 /* 8 buckets a group above */
#define SNAP_GROUPS	     (EXACT + ((HIST_BUCKETS - EXACT) >> GROUP_SHIFT))
#define FINE_SPAN_MS (30 * 60 * 1000ull)
#define COARSE_MS    (60 * 1000ull)
#define HIST_ID	     (UINT64_C(1) << 63)
#define TRACK_MAX    1024 /* histogram series followed; more are logged */

struct snap {
	uint64_t t_ms;
	uint32_t n; /* non-empty groups */
	uint16_t *g;
	uint64_t *c;
};

struct ring {
	struct snap *s;
	size_t cap, head, n; /* head: the next slot written */
};

struct tseries {
	uint32_t idx; /* the registry's handle */
	char *metric;
	struct metrics_label *labels;
	size_t nlabels;
	unsigned decimals;
	struct ring fine, coarse;
	uint64_t last_coarse_ms;
};

struct alert_src {
	struct metrics *reg;
	struct history *h;
	struct tseries *t;
	size_t nt;
	size_t reg_seen; /* registry series count at the last scan */
	bool full_logged;
	struct hist *scratch;
	uint64_t groups[SNAP_GROUPS];
	size_t bytes;
};

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	SK_ASSERT(d != NULL);
	return d;
}

static unsigned group_of(unsigned i)
{
	return i < EXACT ? i : EXACT + ((i - EXACT) >> GROUP_SHIFT);
}

static uint64_t group_value(unsigned g)
{
	if (g < EXACT)
		return hist_bucket_value(g);
	return hist_bucket_value(EXACT + ((g - EXACT) << GROUP_SHIFT) +
				 (1u << (GROUP_SHIFT - 1)));
}

/* --- rings --------------------------------------------------------------- */

static size_t snap_bytes(const struct snap *sn)
{
	return sn->n * (sizeof(*sn->g) + sizeof(*sn->c));
}

static void snap_clear(struct alert_src *s, struct snap *sn)
{
	s->bytes -= snap_bytes(sn);
	free(sn->g);
	free(sn->c);
	memset(sn, 0, sizeof(*sn));
}

/* The i-th oldest snapshot. */
static struct snap *ring_at(struct ring *r, size_t i)
{
	return &r->s[(r->head + r->cap - r->n + i) % r->cap];
}

static void ring_resize(struct alert_src *s, struct ring *r, size_t cap)
{
	struct snap *ns;
	size_t keep;

	if (cap == r->cap)
		return;
	ns = calloc(cap ? cap : 1, sizeof(*ns));
	SK_ASSERT(ns != NULL);
	keep = r->n < cap ? r->n : cap;
	for (size_t i = 0; i < r->n; i++) {
		struct snap *sn = ring_at(r, i);

		if (i < r->n - keep)
			snap_clear(s, sn);
		else
			ns[i - (r->n - keep)] = *sn;
	}
	free(r->s);
	r->s = ns;
	r->cap = cap;
	r->n = keep;
	r->head = cap ? keep % cap : 0;
}

static void ring_push(struct alert_src *s, struct ring *r, uint64_t t_ms)
{
	struct snap *sn;
	uint32_t n = 0;

	if (r->cap == 0)
		return;
	sn = &r->s[r->head];
	if (r->n == r->cap)
		snap_clear(s, sn);
	else
		r->n++;
	r->head = (r->head + 1) % r->cap;
	for (unsigned g = 0; g < SNAP_GROUPS; g++)
		n += s->groups[g] != 0;
	sn->t_ms = t_ms;
	sn->n = n;
	sn->g = malloc((n ? n : 1) * sizeof(*sn->g));
	sn->c = malloc((n ? n : 1) * sizeof(*sn->c));
	SK_ASSERT(sn->g && sn->c);
	n = 0;
	for (unsigned g = 0; g < SNAP_GROUPS; g++)
		if (s->groups[g]) {
			sn->g[n] = (uint16_t)g;
			sn->c[n++] = s->groups[g];
		}
	s->bytes += snap_bytes(sn);
}

/* The snapshot of r nearest to t_ms, or NULL when r is empty. */
static const struct snap *ring_nearest(struct ring *r, uint64_t t_ms)
{
	const struct snap *best = NULL;
	uint64_t bd = 0;

	for (size_t i = 0; i < r->n; i++) {
		const struct snap *sn = ring_at(r, i);
		uint64_t d = sn->t_ms > t_ms ? sn->t_ms - t_ms : t_ms - sn->t_ms;

		if (best == NULL || d < bd) {
			best = sn;
			bd = d;
		}
	}
	return best;
}

static uint64_t ring_oldest(struct ring *r)
{
	return r->n ? ring_at(r, 0)->t_ms : UINT64_MAX;
}

/* --- tracking the registry's histograms ------------------------------------------ */

static void scan_cb(void *ud, const struct metrics_series_info *si)
{
	struct alert_src *s = ud;
	struct tseries *t;

	if (si->type != METRICS_HISTOGRAM)
		return;
	for (size_t i = 0; i < s->nt; i++)
		if (s->t[i].idx == si->idx)
			return;
	if (s->nt >= TRACK_MAX) {
		if (!s->full_logged)
			log_warn("alerts: too many histogram series; later ones "
				 "are not followed",
				 "max=%d", TRACK_MAX);
		s->full_logged = true;
		return;
	}
	s->t = realloc(s->t, (s->nt + 1) * sizeof(*s->t));
	SK_ASSERT(s->t != NULL);
	t = &s->t[s->nt++];
	memset(t, 0, sizeof(*t));
	t->idx = si->idx;
	t->metric = xstrdup(si->name);
	t->decimals = si->decimals;
	t->nlabels = si->nlabels;
	t->labels = calloc(si->nlabels ? si->nlabels : 1, sizeof(*t->labels));
	SK_ASSERT(t->labels != NULL);
	for (size_t i = 0; i < si->nlabels; i++) {
		t->labels[i].name = xstrdup(si->labels[i].name);
		t->labels[i].value = xstrdup(si->labels[i].value);
	}
}

struct alert_src *alert_src_new(struct metrics *reg, struct history *h)
{
	struct alert_src *s = calloc(1, sizeof(*s));

	SK_ASSERT(s != NULL);
	s->reg = reg;
	s->h = h;
	s->scratch = hist_new();
	SK_ASSERT(s->scratch != NULL);
	return s;
}

void alert_src_free(struct alert_src *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nt; i++) {
		struct tseries *t = &s->t[i];

		ring_resize(s, &t->fine, 0);
		ring_resize(s, &t->coarse, 0);
		free(t->fine.s);
		free(t->coarse.s);
		for (size_t k = 0; k < t->nlabels; k++) {
			free((char *)t->labels[k].name);
			free((char *)t->labels[k].value);
		}
		free(t->labels);
		free(t->metric);
	}
	free(s->t);
	hist_free(s->scratch);
	free(s);
}

void alert_src_set_history(struct alert_src *s, struct history *h)
{
	s->h = h;
}

void alert_src_tick(struct alert_src *s, uint64_t now_ms,
		    uint64_t interval_ms, uint64_t max_window_ms)
{
	size_t count = metrics_series_count(s->reg);
	uint64_t fine_span, step = interval_ms ? interval_ms : 1000;
	size_t fine_cap, coarse_cap = 0;

	if (count != s->reg_seen) {
		metrics_foreach(s->reg, scan_cb, s);
		s->reg_seen = count;
	}
	/* The fine ring holds one snapshot per tick for the span. */
	fine_span = max_window_ms < FINE_SPAN_MS ? max_window_ms : FINE_SPAN_MS;
	fine_cap = (size_t)(fine_span / step) + 3;
	if (max_window_ms > FINE_SPAN_MS)
		coarse_cap = (size_t)(max_window_ms / COARSE_MS) + 3;
	for (size_t i = 0; i < s->nt; i++) {
		struct tseries *t = &s->t[i];

		/* A ring only grows with the tick; shrinking it would drop
		 * the history it has (a reload with shorter windows keeps
		 * the memory until restart). */
		if (fine_cap > t->fine.cap)
			ring_resize(s, &t->fine, fine_cap);
		if (coarse_cap > t->coarse.cap)
			ring_resize(s, &t->coarse, coarse_cap);
		metrics_hist_read(s->reg, (struct metrics_hist){t->idx},
				  s->scratch);
		memset(s->groups, 0, sizeof(s->groups));
		for (unsigned b = 0; b < HIST_BUCKETS; b++) {
			uint64_t c = hist_bucket_get(s->scratch, b);

			if (c)
				s->groups[group_of(b)] += c;
		}
		ring_push(s, &t->fine, now_ms);
		if (t->coarse.cap &&
		    (t->last_coarse_ms == 0 ||
		     now_ms - t->last_coarse_ms >= COARSE_MS)) {
			ring_push(s, &t->coarse, now_ms);
			t->last_coarse_ms = now_ms;
		}
	}
}

size_t alert_src_hist_series(const struct alert_src *s)
{
	return s->nt;
}

size_t alert_src_bytes(const struct alert_src *s)
{
	return s->bytes;
}

/* --- the source -------------------------------------------------------------- */

struct series_ctx {
	alert_series_cb cb;
	void *cbud;
};

static void hist_series_cb(void *ud, uint64_t id,
			   const struct metrics_label *labels, size_t n)
{
	struct series_ctx *c = ud;
	struct alert_series_info info = {
		.labels = labels,
		.nlabels = n,
		.kind = ALERT_SERIES_SAMPLES,
		.id = id,
	};

	c->cb(c->cbud, &info);
}

static int src_series(void *ud, const char *metric,
		      const struct alert_matcher *m, size_t nm,
		      alert_series_cb cb, void *cbud)
{
	struct alert_src *s = ud;
	struct series_ctx c = {cb, cbud};
	bool hist = false;

	(void)m;
	(void)nm;
	for (size_t i = 0; i < s->nt; i++) {
		struct tseries *t = &s->t[i];
		struct alert_series_info info;

		if (strcmp(t->metric, metric) != 0)
			continue;
		hist = true;
		info = (struct alert_series_info){
			.labels = t->labels,
			.nlabels = t->nlabels,
			.kind = ALERT_SERIES_HIST,
			.decimals = t->decimals,
			.id = HIST_ID | i,
		};
		cb(cbud, &info);
	}
	if (hist)
		return 0;
	if (s->h == NULL)
		return -ENODATA;
	history_each_series(s->h, metric, hist_series_cb, &c);
	return 0;
}

static int src_samples(void *ud, uint64_t id, uint64_t from_ms,
		       uint64_t to_ms, alert_sample_cb cb, void *cbud)
{
	struct alert_src *s = ud;

	if ((id & HIST_ID) || s->h == NULL)
		return -ENODATA;
	return history_samples(s->h, id, from_ms, to_ms, cb, cbud);
}

static const struct snap *nearest(struct tseries *t, uint64_t t_ms)
{
	if (t_ms < ring_oldest(&t->fine) && t->coarse.n)
		return ring_nearest(&t->coarse, t_ms);
	return ring_nearest(&t->fine, t_ms);
}

static int src_hist_window(void *ud, uint64_t id, uint64_t from_ms,
			   uint64_t to_ms, struct hist *out)
{
	struct alert_src *s = ud;
	struct tseries *t;
	const struct snap *a, *b;
	size_t i = 0, k = 0;

	if (!(id & HIST_ID) || (id & ~HIST_ID) >= s->nt)
		return -ENOENT;
	t = &s->t[id & ~HIST_ID];
	hist_reset(out);
	b = nearest(t, to_ms);
	if (b == NULL)
		return 0;
	/* A window that starts before the oldest snapshot counts from that
	 * snapshot: the registry may have counted long before it (alerts
	 * turned on by a reload, a ring grown for a longer window), and a
	 * window too short pages less, one too long falsely. */
	a = nearest(t, from_ms);
	if (a == b)
		return 0;
	while (k < b->n) {
		uint64_t prev = 0;

		while (a && i < a->n && a->g[i] < b->g[k])
			i++;
		if (a && i < a->n && a->g[i] == b->g[k])
			prev = a->c[i];
		if (b->c[k] > prev)
			hist_record_n(out, group_value(b->g[k]), b->c[k] - prev);
		k++;
	}
	return 0;
}

struct alert_source alert_src_source(struct alert_src *s)
{
	return (struct alert_source){
		.ud = s,
		.series = src_series,
		.samples = src_samples,
		.hist_window = src_hist_window,
	};
}

static uint64_t query_window(const struct alert_query *q)
{
	return q->metric ? q->window_ms : 0;
}

uint64_t alert_rules_max_window(const struct alert_rule *rules, size_t n)
{
	uint64_t w = 0;

	for (size_t i = 0; i < n; i++) {
		const struct alert_rule *r = &rules[i];
		uint64_t x;

		if (r->disabled)
			continue;
		x = query_window(&r->expr);
		if (query_window(&r->plus) > x)
			x = query_window(&r->plus);
		if (query_window(&r->over) > x)
			x = query_window(&r->over);
		if (r->kind == ALERT_RULE_BURN && r->short_window_ms > x)
			x = r->short_window_ms;
		if (x > w)
			w = x;
	}
	return w;
}
