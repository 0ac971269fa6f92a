/*
 * alert_mem.c - an in-memory alert source: series fed by hand, for the
 * tests and for set-ups that want rules over values they compute.
 *
 * Gauge and counter samples are kept as (t, value) in time order;
 * histogram series as their observations (t, value, count), so that any
 * window is exact. Series are found by a linear search: this is a small
 * store, not the history.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "monitor/alert_int.h"
#include "monitor/monitor_int.h"

struct mpoint {
	uint64_t t;
	double v;
};

struct mobs {
	uint64_t t, value, count;
};

struct mseries {
	char *metric;
	struct lset ls;
	enum alert_series_kind kind;
	unsigned decimals;
	struct mpoint *p;
	struct mobs *o;
	size_t n, cap;
};

struct alert_mem {
	struct mseries **s;
	size_t n, cap;
};

struct alert_mem *alert_mem_new(void)
{
	struct alert_mem *m = calloc(1, sizeof(*m));

	SK_ASSERT(m != NULL);
	return m;
}

void alert_mem_free(struct alert_mem *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->s[i]->metric);
		lset_fini(&m->s[i]->ls);
		free(m->s[i]->p);
		free(m->s[i]->o);
		free(m->s[i]);
	}
	free(m->s);
	free(m);
}

static struct mseries *get(struct alert_mem *m, const char *metric,
			   const struct metrics_label *l, size_t nl,
			   enum alert_series_kind kind)
{
	struct lset ls;
	struct mseries *s;

	if (metric == NULL || !prom_metric_name_ok(metric))
		return NULL;
	lset_init(&ls, l, nl);
	for (size_t i = 0; i < m->n; i++) {
		s = m->s[i];
		if (strcmp(s->metric, metric) == 0 &&
		    strcmp(s->ls.key, ls.key) == 0) {
			lset_fini(&ls);
			return s->kind == kind ? s : NULL;
		}
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->s = realloc(m->s, m->cap * sizeof(*m->s));
		SK_ASSERT(m->s != NULL);
	}
	s = calloc(1, sizeof(*s));
	SK_ASSERT(s != NULL);
	s->metric = strdup(metric);
	SK_ASSERT(s->metric != NULL);
	lset_move(&s->ls, &ls);
	s->kind = kind;
	m->s[m->n++] = s;
	return s;
}

static void grow(struct mseries *s)
{
	if (s->n < s->cap)
		return;
	s->cap = s->cap ? s->cap * 2 : 64;
	if (s->kind == ALERT_SERIES_SAMPLES) {
		s->p = realloc(s->p, s->cap * sizeof(*s->p));
		SK_ASSERT(s->p != NULL);
	} else {
		s->o = realloc(s->o, s->cap * sizeof(*s->o));
		SK_ASSERT(s->o != NULL);
	}
}

int alert_mem_add(struct alert_mem *m, const char *metric,
		  const struct metrics_label *l, size_t nl, uint64_t t,
		  double v)
{
	struct mseries *s = get(m, metric, l, nl, ALERT_SERIES_SAMPLES);

	if (s == NULL || (s->n && s->p[s->n - 1].t > t))
		return -EINVAL;
	grow(s);
	s->p[s->n++] = (struct mpoint){t, v};
	return 0;
}

int alert_mem_observe(struct alert_mem *m, const char *metric,
		      const struct metrics_label *l, size_t nl,
		      unsigned decimals, uint64_t t, uint64_t value,
		      uint64_t count)
{
	struct mseries *s = get(m, metric, l, nl, ALERT_SERIES_HIST);

	if (s == NULL || (s->n && s->o[s->n - 1].t > t) || decimals > 9)
		return -EINVAL;
	s->decimals = decimals;
	grow(s);
	s->o[s->n++] = (struct mobs){t, value, count};
	return 0;
}

void alert_mem_prune(struct alert_mem *m, uint64_t before)
{
	for (size_t i = 0; i < m->n; i++) {
		struct mseries *s = m->s[i];
		size_t k = 0;

		if (s->n == 0)
			continue;
		if (s->kind == ALERT_SERIES_SAMPLES) {
			while (k < s->n && s->p[k].t < before)
				k++;
			memmove(s->p, s->p + k, (s->n - k) * sizeof(*s->p));
		} else {
			while (k < s->n && s->o[k].t < before)
				k++;
			memmove(s->o, s->o + k, (s->n - k) * sizeof(*s->o));
		}
		s->n -= k;
	}
}

static int mem_series(void *ud, const char *metric,
		      const struct alert_matcher *hint, size_t nh,
		      alert_series_cb cb, void *cbud)
{
	struct alert_mem *m = ud;

	(void)hint;
	(void)nh;
	for (size_t i = 0; i < m->n; i++) {
		struct mseries *s = m->s[i];
		struct alert_series_info info = {
			.labels = s->ls.l,
			.nlabels = s->ls.n,
			.kind = s->kind,
			.decimals = s->decimals,
			.id = i,
		};

		if (strcmp(s->metric, metric) == 0)
			cb(cbud, &info);
	}
	return 0;
}

static int mem_samples(void *ud, uint64_t id, uint64_t from, uint64_t to,
		       alert_sample_cb cb, void *cbud)
{
	struct alert_mem *m = ud;
	struct mseries *s;

	if (id >= m->n || m->s[id]->kind != ALERT_SERIES_SAMPLES)
		return -ENOENT;
	s = m->s[id];
	for (size_t i = 0; i < s->n; i++)
		if (s->p[i].t >= from && s->p[i].t <= to && !isnan(s->p[i].v))
			cb(cbud, s->p[i].t, s->p[i].v);
	return 0;
}

static int mem_hist(void *ud, uint64_t id, uint64_t from, uint64_t to,
		    struct hist *out)
{
	struct alert_mem *m = ud;
	struct mseries *s;

	if (id >= m->n || m->s[id]->kind != ALERT_SERIES_HIST)
		return -ENOENT;
	s = m->s[id];
	hist_reset(out);
	for (size_t i = 0; i < s->n; i++)
		if (s->o[i].t > from && s->o[i].t <= to)
			hist_record_n(out, s->o[i].value, s->o[i].count);
	return 0;
}

struct alert_source alert_mem_source(struct alert_mem *m)
{
	return (struct alert_source){
		.ud = m,
		.series = mem_series,
		.samples = mem_samples,
		.hist_window = mem_hist,
	};
}
