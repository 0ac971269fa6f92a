/*
 * alert_query.c - a rule's value: its queries read from the source,
 * reduced per series by the function over the window, grouped, joined.
 *
 * A query asks the source for the series of its metric, keeps those its
 * matchers accept, and reduces each to one number: samples are copied
 * into a scratch array first (the functions need them twice at most),
 * histograms are asked for the window's observations. A series without
 * enough data for its function (no sample in the window, one sample for
 * a rate, no observation for a quantile) gives no value, and so no
 * alert, as in Prometheus.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "monitor/alert_int.h"

/* libm is not linked into this module: the few pieces needed are here. */
static double dmin(double a, double b)
{
	return a < b ? a : b;
}

static double dmax(double a, double b)
{
	return a > b ? a : b;
}

struct sample {
	uint64_t t;
	double v;
};

struct samples {
	struct sample *s;
	size_t n, cap;
};

struct series_ref {
	struct lset ls;
	enum alert_series_kind kind;
	unsigned decimals;
	uint64_t id;
};

struct series_list {
	const struct aquery *q;
	struct series_ref *s;
	size_t n, cap;
};

void avec_fini(struct avec *v)
{
	for (size_t i = 0; i < v->n; i++)
		lset_fini(&v->el[i].ls);
	free(v->el);
	memset(v, 0, sizeof(*v));
}

static void avec_push(struct avec *v, struct lset *ls, double x)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 16;
		v->el = realloc(v->el, v->cap * sizeof(*v->el));
		SK_ASSERT(v->el != NULL);
	}
	lset_move(&v->el[v->n].ls, ls);
	v->el[v->n].v = x;
	v->el[v->n].hold = false;
	v->n++;
}

static int el_cmp(const void *a, const void *b)
{
	const struct avec_el *x = a, *y = b;

	return strcmp(x->ls.key, y->ls.key);
}

static void avec_sort(struct avec *v)
{
	if (v->n > 1)
		qsort(v->el, v->n, sizeof(*v->el), el_cmp);
}

static struct avec_el *avec_find(const struct avec *v, const char *key)
{
	struct avec_el k = {.ls = {.key = (char *)key}};

	if (v->n == 0)
		return NULL;
	return bsearch(&k, v->el, v->n, sizeof(*v->el), el_cmp);
}

/* --- reading the source -------------------------------------------------- */

static void series_cb(void *ud, const struct alert_series_info *s)
{
	struct series_list *sl = ud;
	struct series_ref *r;

	if (!amatchers_match(sl->q->m, sl->q->nm, s->labels, s->nlabels))
		return;
	if (sl->n == sl->cap) {
		sl->cap = sl->cap ? sl->cap * 2 : 16;
		sl->s = realloc(sl->s, sl->cap * sizeof(*sl->s));
		SK_ASSERT(sl->s != NULL);
	}
	r = &sl->s[sl->n++];
	lset_init(&r->ls, s->labels, s->nlabels);
	r->kind = s->kind;
	r->decimals = s->decimals;
	r->id = s->id;
}

static void sample_cb(void *ud, uint64_t t, double v)
{
	struct samples *ss = ud;

	if (isnan(v))
		return;
	if (ss->n == ss->cap) {
		ss->cap = ss->cap ? ss->cap * 2 : 64;
		ss->s = realloc(ss->s, ss->cap * sizeof(*ss->s));
		SK_ASSERT(ss->s != NULL);
	}
	ss->s[ss->n].t = t;
	ss->s[ss->n].v = v;
	ss->n++;
}

/* --- functions over samples ---------------------------------------------- */

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank, as hist_quantile does: the ceil(q n)-th smallest. */
static double samples_quantile(const struct samples *ss, double q)
{
	double *v = malloc(ss->n * sizeof(*v));
	size_t rank;
	double r;

	SK_ASSERT(v != NULL);
	for (size_t i = 0; i < ss->n; i++)
		v[i] = ss->s[i].v;
	qsort(v, ss->n, sizeof(*v), dbl_cmp);
	rank = (size_t)(q * (double)ss->n);
	if ((double)rank < q * (double)ss->n)
		rank++; /* the ceiling */
	rank = rank == 0 ? 1 : rank > ss->n ? ss->n : rank;
	r = v[rank - 1];
	free(v);
	return r;
}

/*
 * Least squares v = a + b t, with t in seconds relative to now (small
 * numbers keep the sums exact enough). Returns false with fewer than two
 * distinct times.
 */
static bool linear_fit(const struct samples *ss, uint64_t now, double *a,
		       double *b)
{
	double n = (double)ss->n, st = 0, sv = 0, stt = 0, stv = 0, den;

	if (ss->n < 2)
		return false;
	for (size_t i = 0; i < ss->n; i++) {
		double t = ((double)ss->s[i].t - (double)now) / 1000.0;

		st += t;
		sv += ss->s[i].v;
	}
	/* Centre the times: the sums of squares then do not cancel. */
	double tm = st / n, vm = sv / n;

	for (size_t i = 0; i < ss->n; i++) {
		double t = ((double)ss->s[i].t - (double)now) / 1000.0 - tm;

		stt += t * t;
		stv += t * (ss->s[i].v - vm);
	}
	den = stt;
	if (den <= 0)
		return false;
	*b = stv / den;
	*a = vm - *b * tm;
	return true;
}

static bool fn_samples(const struct aquery *q, const struct samples *ss,
		       uint64_t now, double *out)
{
	double acc, a, b;

	if (ss->n == 0)
		return false;
	switch (q->fn) {
	case ALERT_FN_LAST:
		*out = ss->s[ss->n - 1].v;
		return true;
	case ALERT_FN_AVG:
		acc = 0;
		for (size_t i = 0; i < ss->n; i++)
			acc += ss->s[i].v;
		*out = acc / (double)ss->n;
		return true;
	case ALERT_FN_MIN:
	case ALERT_FN_MAX:
		acc = ss->s[0].v;
		for (size_t i = 1; i < ss->n; i++) {
			double v = ss->s[i].v;

			acc = q->fn == ALERT_FN_MIN ? dmin(acc, v)
						    : dmax(acc, v);
		}
		*out = acc;
		return true;
	case ALERT_FN_INCREASE:
	case ALERT_FN_RATE: {
		double span;

		if (ss->n < 2)
			return false;
		acc = 0;
		for (size_t i = 1; i < ss->n; i++) {
			double d = ss->s[i].v - ss->s[i - 1].v;

			/* A counter that went down restarted from 0. */
			acc += d >= 0 ? d : ss->s[i].v;
		}
		if (q->fn == ALERT_FN_INCREASE) {
			*out = acc;
			return true;
		}
		span = (double)(ss->s[ss->n - 1].t - ss->s[0].t) / 1000.0;
		if (span <= 0)
			return false;
		*out = acc / span;
		return true;
	}
	case ALERT_FN_QUANTILE:
		*out = samples_quantile(ss, q->q);
		return true;
	case ALERT_FN_PREDICT_LINEAR:
		if (!linear_fit(ss, now, &a, &b))
			return false;
		*out = a + b * ((double)q->horizon_ms / 1000.0);
		return true;
	case ALERT_FN_TIME_TO_ZERO:
		if (!linear_fit(ss, now, &a, &b))
			return false;
		if (a <= 0)
			*out = 0;
		else if (b >= 0)
			*out = INFINITY;
		else
			*out = -a / b;
		return true;
	case ALERT_FN_COUNT_ABOVE:
		break;
	}
	return false;
}

/* --- functions over histograms ------------------------------------------- */

static double pow10u(unsigned d)
{
	double s = 1;

	while (d--)
		s *= 10;
	return s;
}

/* Returns 1 with *out, 0 for no value, -EINVAL for a function that has
 * no meaning on a histogram. */
static int fn_hist(const struct aquery *q, const struct hist *h,
		   unsigned decimals, double *out)
{
	double scale = pow10u(decimals);
	uint64_t n = hist_count(h);

	switch (q->fn) {
	case ALERT_FN_INCREASE:
		*out = (double)n;
		return 1;
	case ALERT_FN_RATE:
		*out = (double)n / ((double)q->window_ms / 1000.0);
		return 1;
	case ALERT_FN_COUNT_ABOVE: {
		double le = q->le * scale;
		uint64_t bound, cum;

		if (le < 0) {
			*out = (double)n;
			return 1;
		}
		/* Observations above `le` are those whose representative
		 * is above it; hist_cumulative counts those at or below. */
		bound = le >= (double)HIST_MAX_VALUE ? HIST_MAX_VALUE
						     : (uint64_t)le;
		n = hist_cumulative(h, &bound, 1, &cum);
		*out = (double)(n - cum);
		return 1;
	}
	case ALERT_FN_AVG:
		if (n == 0)
			return 0;
		*out = (double)hist_sum(h) / (double)n / scale;
		return 1;
	case ALERT_FN_QUANTILE:
	case ALERT_FN_MIN:
	case ALERT_FN_MAX:
		if (n == 0)
			return 0;
		*out = (double)hist_quantile(h, q->fn == ALERT_FN_QUANTILE
							? q->q
						: q->fn == ALERT_FN_MAX ? 1.0
									: 0.0) /
		       scale;
		return 1;
	case ALERT_FN_LAST:
	case ALERT_FN_PREDICT_LINEAR:
	case ALERT_FN_TIME_TO_ZERO:
		break;
	}
	return -EINVAL;
}

/* --- grouping ------------------------------------------------------------ */

struct group_acc {
	double v;
	size_t n;
};

static void group_add(enum alert_group g, struct group_acc *a, double v)
{
	if (a->n == 0) {
		a->v = g == ALERT_GROUP_COUNT ? 1 : v;
		a->n = 1;
		return;
	}
	switch (g) {
	case ALERT_GROUP_SUM:
	case ALERT_GROUP_AVG:
		a->v += v;
		break;
	case ALERT_GROUP_MIN:
		a->v = dmin(a->v, v);
		break;
	case ALERT_GROUP_MAX:
		a->v = dmax(a->v, v);
		break;
	case ALERT_GROUP_COUNT:
		a->v += 1;
		break;
	case ALERT_GROUP_NONE:
		break;
	}
	a->n++;
}

/* Replaces v's elements by one per value of q's `by` labels. */
static void group(const struct aquery *q, struct avec *v)
{
	struct avec out = {0};
	struct group_acc *acc;

	avec_sort(v);
	acc = calloc(v->n ? v->n : 1, sizeof(*acc));
	SK_ASSERT(acc != NULL);
	for (size_t i = 0; i < v->n; i++) {
		struct metrics_label kept[ALERT_BY_MAX];
		size_t nk = 0;
		struct lset ls;
		struct avec_el *hit = NULL;

		for (size_t j = 0; j < q->nby; j++) {
			const char *val = lset_get(&v->el[i].ls, q->by[j]);

			if (val != NULL && *val != '\0')
				kept[nk++] =
					(struct metrics_label){q->by[j], val};
		}
		lset_init(&ls, kept, nk);
		/* out is small (a handful of groups); a linear search keeps
		 * it simple. */
		for (size_t k = 0; k < out.n && !hit; k++)
			if (strcmp(out.el[k].ls.key, ls.key) == 0)
				hit = &out.el[k];
		if (hit == NULL) {
			avec_push(&out, &ls, 0);
			hit = &out.el[out.n - 1];
		} else {
			lset_fini(&ls);
		}
		group_add(q->group, &acc[hit - out.el], v->el[i].v);
	}
	for (size_t k = 0; k < out.n; k++) {
		out.el[k].v = acc[k].v;
		if (q->group == ALERT_GROUP_AVG)
			out.el[k].v /= (double)acc[k].n;
	}
	avec_sort(&out);
	free(acc);
	avec_fini(v);
	*v = out;
}

/* --- one query ----------------------------------------------------------- */

static int run_query(struct alert_engine *e, const struct aquery *q,
		     uint64_t now, uint64_t window, struct avec *out, char *err,
		     size_t errlen)
{
	struct series_list sl = {.q = q};
	struct samples ss = {0};
	uint64_t from = now > window ? now - window : 0;
	int rc;

	rc = e->src.series(e->src.ud, q->metric, q->hint, q->nm, series_cb,
			   &sl);
	if (rc < 0) {
		snprintf(err, errlen, "%s: source: %s", q->metric,
			 strerror(-rc));
		goto done;
	}
	for (size_t i = 0; i < sl.n; i++) {
		struct series_ref *r = &sl.s[i];
		double v;
		bool have = false;

		if (r->kind == ALERT_SERIES_HIST) {
			struct aquery qw = *q;

			qw.window_ms = window;
			rc = e->src.hist_window(e->src.ud, r->id, from, now,
						e->scratch);
			if (rc < 0) {
				snprintf(err, errlen, "%s: source: %s",
					 q->metric, strerror(-rc));
				goto done;
			}
			rc = fn_hist(&qw, e->scratch, r->decimals, &v);
			if (rc < 0) {
				snprintf(err, errlen,
					 "%s: %s does not apply to a histogram",
					 q->metric, alert_fn_name(q->fn));
				goto done;
			}
			have = rc == 1;
		} else {
			if (q->fn == ALERT_FN_COUNT_ABOVE) {
				snprintf(err, errlen,
					 "%s: count_above needs a histogram",
					 q->metric);
				rc = -EINVAL;
				goto done;
			}
			ss.n = 0;
			rc = e->src.samples(e->src.ud, r->id, from, now,
					    sample_cb, &ss);
			if (rc < 0) {
				snprintf(err, errlen, "%s: source: %s",
					 q->metric, strerror(-rc));
				goto done;
			}
			have = fn_samples(q, &ss, now, &v);
		}
		if (have && !isnan(v))
			avec_push(out, &r->ls, v);
	}
	rc = 0;
	if (q->group != ALERT_GROUP_NONE)
		group(q, out);
	else
		avec_sort(out);
done:
	for (size_t i = 0; i < sl.n; i++)
		lset_fini(&sl.s[i].ls);
	free(sl.s);
	free(ss.s);
	return rc;
}

/* (expr + plus) / over at one window; see alert.h. */
static int ratio_at(struct alert_engine *e, const struct arule *r, uint64_t now,
		    uint64_t window, bool own_windows, struct avec *out,
		    char *err, size_t errlen)
{
	struct avec a = {0}, p = {0}, o = {0};
	int rc;

#define WIN(q) (own_windows ? (q).window_ms : window)
	rc = run_query(e, &r->expr, now, WIN(r->expr), &a, err, errlen);
	if (rc == 0 && r->plus.metric)
		rc = run_query(e, &r->plus, now, WIN(r->plus), &p, err, errlen);
	if (rc == 0 && r->over.metric)
		rc = run_query(e, &r->over, now, WIN(r->over), &o, err, errlen);
#undef WIN
	if (rc < 0)
		goto done;
	/* a + p: the union, a missing side counting 0. Both are sorted by
	 * key, so one merge walk does it. */
	if (p.n) {
		struct avec u = {0};
		size_t i = 0, j = 0;

		while (i < a.n || j < p.n) {
			int c = i == a.n   ? 1
				: j == p.n ? -1
					   : strcmp(a.el[i].ls.key,
						    p.el[j].ls.key);
			struct lset ls;

			if (c < 0) {
				lset_move(&ls, &a.el[i].ls);
				avec_push(&u, &ls, a.el[i++].v);
			} else if (c > 0) {
				lset_move(&ls, &p.el[j].ls);
				avec_push(&u, &ls, p.el[j++].v);
			} else {
				lset_move(&ls, &a.el[i].ls);
				avec_push(&u, &ls, a.el[i++].v + p.el[j++].v);
			}
		}
		avec_fini(&a);
		a = u;
	}
	if (!r->over.metric) {
		*out = a;
		memset(&a, 0, sizeof(a));
		goto done;
	}
	for (size_t i = 0; i < o.n; i++) {
		struct avec_el *hit = avec_find(&a, o.el[i].ls.key);
		double num = hit ? hit->v : 0, v;
		struct lset ls;

		if (o.el[i].v == 0 || isnan(o.el[i].v))
			continue;
		v = num / o.el[i].v;
		lset_move(&ls, &o.el[i].ls);
		avec_push(out, &ls, v);
	}
done:
	avec_fini(&a);
	avec_fini(&p);
	avec_fini(&o);
	return rc;
}

int alert_rule_value(struct alert_engine *e, const struct arule *r,
		     uint64_t now, struct avec *out, char *err, size_t errlen)
{
	struct avec lng = {0}, sht = {0};
	double budget;
	int rc;

	if (r->kind == ALERT_RULE_THRESHOLD) {
		rc = ratio_at(e, r, now, 0, true, out, err, errlen);
		for (size_t i = 0; rc == 0 && i < out->n; i++)
			out->el[i].hold = alert_compare(r->op, out->el[i].v,
							r->threshold);
		return rc;
	}

	budget = 1.0 - r->objective;
	rc = ratio_at(e, r, now, 0, true, &lng, err, errlen);
	if (rc == 0)
		rc = ratio_at(e, r, now, r->short_window_ms, false, &sht, err,
			      errlen);
	if (rc < 0)
		goto done;
	/* Both windows must pass: the long one shows the budget really
	 * burns, the short one that it still does (so the alert resolves
	 * soon after the problem stops). The value is the long window's. */
	for (size_t i = 0; i < lng.n; i++) {
		struct avec_el *s = avec_find(&sht, lng.el[i].ls.key);
		double bl = dmin(lng.el[i].v, 1.0) / budget;
		double bs;
		struct lset ls;

		if (s == NULL)
			continue;
		bs = dmin(s->v, 1.0) / budget;
		lset_move(&ls, &lng.el[i].ls);
		avec_push(out, &ls, bl);
		out->el[out->n - 1].hold =
			alert_compare(r->op, bl, r->threshold) &&
			alert_compare(r->op, bs, r->threshold);
	}
done:
	avec_fini(&lng);
	avec_fini(&sht);
	return rc;
}
