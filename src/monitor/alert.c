/*
 * alert.c - the alert engine: rules copied and checked, the state of
 * every alert moved on at each evaluation, notifications decided,
 * silences, and the JSON for the admin API.
 *
 * Alerts of a rule live in an array sorted by their label set's key, and
 * the evaluator's results come sorted the same way, so one merge walk
 * matches results to alerts. See alert.h for the states and what is
 * sent when; the invariants kept here:
 *   - an alert in the array is pending, firing or resolved, never
 *     inactive (an inactive alert is removed);
 *   - notified is set only on firing alerts (and kept through resolved),
 *     resolved_sent only after notified;
 *   - e->dirty is set by every change that alert_state_save() writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/alert_int.h"
#include "monitor/monitor_int.h"
#include "monitor/notify.h"

#define RESOLVED_KEEP_DEFAULT_MS (15 * 60 * 1000)

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	SK_ASSERT(d != NULL);
	return d;
}

/* --- checking a rule ----------------------------------------------------- */

static int check_query(const struct alert_query *q, const char *what, bool burn,
		       char *err, size_t errlen)
{
	char why[200];

	if (q->metric == NULL || !prom_metric_name_ok(q->metric)) {
		snprintf(err, errlen, "%s: bad metric name \"%s\"", what,
			 q->metric ? q->metric : "");
		return -EINVAL;
	}
	if (q->window_ms == 0) {
		snprintf(err, errlen, "%s: window must be > 0", what);
		return -EINVAL;
	}
	if (alert_fn_name(q->fn) == NULL) {
		snprintf(err, errlen, "%s: bad function", what);
		return -EINVAL;
	}
	if (q->fn == ALERT_FN_QUANTILE && !(q->q >= 0 && q->q <= 1)) {
		snprintf(err, errlen, "%s: quantile q must be in 0..1", what);
		return -EINVAL;
	}
	if (q->fn == ALERT_FN_COUNT_ABOVE && !isfinite(q->le)) {
		snprintf(err, errlen, "%s: count_above needs a finite le",
			 what);
		return -EINVAL;
	}
	if (burn && q->fn != ALERT_FN_INCREASE && q->fn != ALERT_FN_RATE &&
	    q->fn != ALERT_FN_COUNT_ABOVE) {
		snprintf(err, errlen,
			 "%s: a burn-rate rule counts events (increase, rate "
			 "or count_above)",
			 what);
		return -EINVAL;
	}
	if (alert_group_name(q->group) == NULL) {
		snprintf(err, errlen, "%s: bad group", what);
		return -EINVAL;
	}
	if (q->nby > ALERT_BY_MAX || q->nmatchers > ALERT_MATCHERS_MAX) {
		snprintf(err, errlen,
			 "%s: at most %d by labels and %d matchers", what,
			 ALERT_BY_MAX, ALERT_MATCHERS_MAX);
		return -EINVAL;
	}
	if (q->nby && q->group == ALERT_GROUP_NONE) {
		snprintf(err, errlen, "%s: by needs a group (sum, max, ...)",
			 what);
		return -EINVAL;
	}
	for (size_t i = 0; i < q->nby; i++) {
		if (q->by[i] == NULL || !prom_label_name_ok(q->by[i])) {
			snprintf(err, errlen, "%s: bad by label \"%s\"", what,
				 q->by[i] ? q->by[i] : "");
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < q->nmatchers; i++) {
		struct amatcher am;

		if (amatcher_init(&am, &q->matchers[i], why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: %s", what, why);
			return -EINVAL;
		}
		amatcher_fini(&am);
	}
	return 0;
}

int alert_rule_check(const struct alert_rule *r, char *err, size_t errlen)
{
	const char *n = r->name;
	bool burn = r->kind == ALERT_RULE_BURN;
	char why[240];

	if (n == NULL || *n == '\0' || strlen(n) >= ALERT_NAME_MAX) {
		snprintf(err, errlen, "rule: a name of 1..%d bytes is needed",
			 ALERT_NAME_MAX - 1);
		return -EINVAL;
	}
	for (const unsigned char *p = (const void *)n; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			snprintf(err, errlen, "rule: control byte in name");
			return -EINVAL;
		}
	}
	if (!prom_utf8_ok(n, strlen(n))) {
		snprintf(err, errlen, "rule: name is not UTF-8");
		return -EINVAL;
	}
#define CHECKQ(q, w)                                                           \
	do {                                                                   \
		if (check_query(q, w, burn, why, sizeof(why)) < 0) {           \
			snprintf(err, errlen, "rule %s: %s", n, why);          \
			return -EINVAL;                                        \
		}                                                              \
	} while (0)
	CHECKQ(&r->expr, "expr");
	if (r->plus.metric)
		CHECKQ(&r->plus, "plus");
	if (r->over.metric)
		CHECKQ(&r->over, "over");
#undef CHECKQ
	if (r->kind != ALERT_RULE_THRESHOLD && r->kind != ALERT_RULE_BURN) {
		snprintf(err, errlen, "rule %s: bad kind", n);
		return -EINVAL;
	}
	if (alert_op_name(r->op) == NULL || !isfinite(r->threshold)) {
		snprintf(err, errlen, "rule %s: bad comparison", n);
		return -EINVAL;
	}
	if (alert_severity_name(r->severity) == NULL) {
		snprintf(err, errlen, "rule %s: bad severity", n);
		return -EINVAL;
	}
	if (r->nlabels > ALERT_LABELS_MAX) {
		snprintf(err, errlen, "rule %s: at most %d labels", n,
			 ALERT_LABELS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < r->nlabels; i++) {
		const char *ln = r->labels[i].name, *lv = r->labels[i].value;

		if (ln == NULL || !prom_label_name_ok(ln) ||
		    strcmp(ln, "alertname") == 0 ||
		    strcmp(ln, "severity") == 0 || lv == NULL ||
		    !prom_utf8_ok(lv, strlen(lv))) {
			snprintf(err, errlen,
				 "rule %s: bad label \"%s\" (alertname and "
				 "severity are set by the rule)",
				 n, ln ? ln : "");
			return -EINVAL;
		}
	}
	if (r->summary && alert_template_check(r->summary, why, sizeof(why))) {
		snprintf(err, errlen, "rule %s: %s", n, why);
		return -EINVAL;
	}
	if (burn) {
		if (!(r->objective > 0 && r->objective < 1)) {
			snprintf(err, errlen,
				 "rule %s: objective must be between 0 and 1",
				 n);
			return -EINVAL;
		}
		if (r->short_window_ms == 0 ||
		    r->short_window_ms > r->expr.window_ms) {
			snprintf(
				err, errlen,
				"rule %s: short window must be > 0 and at most "
				"the long one",
				n);
			return -EINVAL;
		}
		if (r->over.metric == NULL) {
			snprintf(err, errlen,
				 "rule %s: a burn-rate rule needs over (all "
				 "events)",
				 n);
			return -EINVAL;
		}
	}
	return 0;
}

/* --- the engine's copies ------------------------------------------------- */

static void aquery_fini(struct aquery *q)
{
	for (size_t i = 0; i < q->nm; i++)
		amatcher_fini(&q->m[i]);
	free(q->m);
	free(q->hint);
	for (size_t i = 0; i < q->nby; i++)
		free(q->by[i]);
	free(q->by);
	free(q->metric);
	memset(q, 0, sizeof(*q));
}

static int aquery_init(struct aquery *q, const struct alert_query *s, char *err,
		       size_t errlen)
{
	memset(q, 0, sizeof(*q));
	if (s->metric == NULL)
		return 0;
	q->metric = xstrdup(s->metric);
	q->fn = s->fn;
	q->window_ms = s->window_ms;
	q->q = s->q;
	q->horizon_ms = s->horizon_ms;
	q->le = s->le;
	q->group = s->group;
	q->m = calloc(s->nmatchers + 1, sizeof(*q->m));
	q->hint = calloc(s->nmatchers + 1, sizeof(*q->hint));
	q->by = calloc(s->nby + 1, sizeof(*q->by));
	SK_ASSERT(q->m && q->hint && q->by);
	for (size_t i = 0; i < s->nmatchers; i++) {
		if (amatcher_init(&q->m[i], &s->matchers[i], err, errlen) < 0) {
			aquery_fini(q);
			return -EINVAL;
		}
		q->nm++;
		q->hint[i] = (struct alert_matcher){q->m[i].name, q->m[i].op,
						    q->m[i].value};
	}
	for (size_t i = 0; i < s->nby; i++)
		q->by[q->nby++] = xstrdup(s->by[i]);
	return 0;
}

int arule_init(struct arule *r, const struct alert_rule *s, char *err,
	       size_t errlen)
{
	memset(r, 0, sizeof(*r));
	if (alert_rule_check(s, err, errlen) < 0)
		return -EINVAL;
	r->name = xstrdup(s->name);
	r->disabled = s->disabled;
	r->kind = s->kind;
	if (aquery_init(&r->expr, &s->expr, err, errlen) < 0 ||
	    aquery_init(&r->plus, &s->plus, err, errlen) < 0 ||
	    aquery_init(&r->over, &s->over, err, errlen) < 0) {
		arule_fini(r);
		return -EINVAL;
	}
	r->op = s->op;
	r->threshold = s->threshold;
	r->for_ms = s->for_ms;
	r->keep_firing_for_ms = s->keep_firing_for_ms;
	r->repeat_ms = s->repeat_ms;
	r->severity = s->severity;
	r->labels = calloc(s->nlabels + 1, sizeof(*r->labels));
	SK_ASSERT(r->labels != NULL);
	for (size_t i = 0; i < s->nlabels; i++) {
		r->labels[i].name = xstrdup(s->labels[i].name);
		r->labels[i].value = xstrdup(s->labels[i].value);
	}
	r->nlabels = s->nlabels;
	r->summary = s->summary ? xstrdup(s->summary) : NULL;
	r->objective = s->objective;
	r->short_window_ms = s->short_window_ms;
	return 0;
}

void ainst_free(struct ainst *a)
{
	if (a == NULL)
		return;
	lset_fini(&a->ls);
	free(a->summary);
	free(a);
}

void arule_fini(struct arule *r)
{
	for (size_t i = 0; i < r->ninst; i++)
		ainst_free(r->inst[i]);
	free(r->inst);
	aquery_fini(&r->expr);
	aquery_fini(&r->plus);
	aquery_fini(&r->over);
	for (size_t i = 0; i < r->nlabels; i++) {
		free((char *)r->labels[i].name);
		free((char *)r->labels[i].value);
	}
	free(r->labels);
	free(r->summary);
	free(r->name);
	memset(r, 0, sizeof(*r));
}

size_t arule_find(const struct arule *r, const char *key, bool *found)
{
	size_t lo = 0, hi = r->ninst;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->inst[mid]->ls.key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

struct ainst *arule_insert(struct arule *r, size_t at, struct lset *ls)
{
	struct ainst *a;

	if (r->ninst >= ALERT_INSTANCES_MAX)
		return NULL;
	if (r->ninst == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		r->inst = realloc(r->inst, r->cap * sizeof(*r->inst));
		SK_ASSERT(r->inst != NULL);
	}
	a = calloc(1, sizeof(*a));
	SK_ASSERT(a != NULL);
	lset_move(&a->ls, ls);
	a->value = NAN;
	memmove(&r->inst[at + 1], &r->inst[at],
		(r->ninst - at) * sizeof(*r->inst));
	r->inst[at] = a;
	r->ninst++;
	return a;
}

static void arule_remove(struct arule *r, size_t at)
{
	ainst_free(r->inst[at]);
	memmove(&r->inst[at], &r->inst[at + 1],
		(r->ninst - at - 1) * sizeof(*r->inst));
	r->ninst--;
}

void asilence_free(struct asilence *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nm; i++)
		amatcher_fini(&s->m[i]);
	free(s->m);
	free(s->created_by);
	free(s->comment);
	free(s);
}

void alert_full_labels(const struct arule *r, const struct ainst *a,
		       struct lset *out)
{
	struct metrics_label l[METRICS_LABELS_MAX + ALERT_LABELS_MAX + 2];
	size_t n = 0;

	/* lset_init keeps the first of repeated names: put the winners
	 * first. */
	l[n++] = (struct metrics_label){"alertname", r->name};
	l[n++] = (struct metrics_label){"severity",
					alert_severity_name(r->severity)};
	for (size_t i = 0; i < r->nlabels; i++)
		l[n++] = r->labels[i];
	for (size_t i = 0; i < a->ls.n && n < sizeof(l) / sizeof(l[0]); i++)
		l[n++] = a->ls.l[i];
	lset_init(out, l, n);
}

/* --- creating and reloading ---------------------------------------------- */

static void deliver(struct alert_engine *e, json_t *batch)
{
	if (json_array_size(batch) == 0)
		return;
	if (e->notify)
		notify_send(e->notify, batch);
	if (e->send)
		e->send(e->send_ud, batch);
}

static int build_rules(const struct alert_rule *rules, size_t n,
		       struct arule **out, char *err, size_t errlen)
{
	struct arule *r = calloc(n ? n : 1, sizeof(*r));
	size_t i;

	SK_ASSERT(r != NULL);
	for (i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			if (rules[i].name &&
			    strcmp(rules[i].name, r[j].name) == 0) {
				snprintf(err, errlen,
					 "rule %s: name used twice",
					 rules[i].name);
				goto fail;
			}
		}
		if (arule_init(&r[i], &rules[i], err, errlen) < 0)
			goto fail;
	}
	*out = r;
	return 0;
fail:
	while (i--)
		arule_fini(&r[i]);
	free(r);
	return -EINVAL;
}

int alert_engine_new(const struct alert_engine_conf *conf,
		     const struct alert_source *src, struct alert_engine **out,
		     char *err, size_t errlen)
{
	struct alert_engine *e = calloc(1, sizeof(*e));

	SK_ASSERT(e != NULL);
	if (src == NULL || !src->series || !src->samples || !src->hist_window) {
		snprintf(err, errlen,
			 "alerts: a source with all three "
			 "functions is needed");
		free(e);
		return -EINVAL;
	}
	if (build_rules(conf->rules, conf->nrules, &e->rules, err, errlen) <
	    0) {
		free(e);
		return -EINVAL;
	}
	e->nrules = conf->nrules;
	e->src = *src;
	e->state_path = conf->state_path && *conf->state_path
				? xstrdup(conf->state_path)
				: NULL;
	e->generator_url =
		conf->generator_url ? xstrdup(conf->generator_url) : NULL;
	e->resolved_keep_ms = conf->resolved_keep_ms ? conf->resolved_keep_ms
						     : RESOLVED_KEEP_DEFAULT_MS;
	e->notify = conf->notify;
	e->send = conf->send;
	e->send_ud = conf->send_ud;
	e->scratch = hist_new();
	SK_ASSERT(e->scratch != NULL);
	if (e->state_path) {
		json_t *resolved = json_array();

		alert_state_load(e, resolved);
		deliver(e, resolved);
		json_decref(resolved);
	}
	*out = e;
	return 0;
}

/* A notification for one alert, in the format notify.h documents. */
static json_t *alert_payload(struct alert_engine *e, const struct arule *r,
			     const struct ainst *a, bool resolved)
{
	struct lset full;
	json_t *o = json_object(), *labels = json_object();
	char fp[17];

	alert_full_labels(r, a, &full);
	for (size_t i = 0; i < full.n; i++)
		json_object_set_new(labels, full.l[i].name,
				    json_string(full.l[i].value));
	lset_fini(&full);
	alert_fingerprint(r->name, a->ls.key, fp);
	json_object_set_new(o, "status",
			    json_string(resolved ? "resolved" : "firing"));
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "severity",
			    json_string(alert_severity_name(r->severity)));
	json_object_set_new(o, "labels", labels);
	json_object_set_new(o, "annotations",
			    json_pack("{s:s}", "summary",
				      a->summary ? a->summary : r->name));
	json_object_set_new(o, "value", alert_json_num(a->value));
	json_object_set_new(o, "startsAt", alert_json_time(a->fired_at));
	json_object_set_new(o, "endsAt",
			    alert_json_time(resolved ? a->resolved_at : 0));
	json_object_set_new(
		o, "generatorURL",
		json_string(e->generator_url ? e->generator_url : ""));
	json_object_set_new(o, "fingerprint", json_string(fp));
	return o;
}

/* Ends every alert of r (a rule going away): resolved notifications for
 * those whose firing went out. */
static void retire_rule(struct alert_engine *e, struct arule *r,
			json_t *resolved, uint64_t now)
{
	for (size_t i = 0; i < r->ninst; i++) {
		struct ainst *a = r->inst[i];

		if (a->notified && !a->resolved_sent) {
			if (a->state != ALERT_RESOLVED)
				a->resolved_at = now;
			json_array_append_new(resolved,
					      alert_payload(e, r, a, true));
		}
	}
}

int alert_engine_reload(struct alert_engine *e, const struct alert_rule *rules,
			size_t nrules, char *err, size_t errlen)
{
	struct arule *nr;
	json_t *resolved;
	/* Before the first evaluation there is no injected time yet. */
	uint64_t now = e->now_ms ? e->now_ms : clock_wall_ms();

	if (build_rules(rules, nrules, &nr, err, errlen) < 0)
		return -EINVAL;
	resolved = json_array();
	for (size_t i = 0; i < e->nrules; i++) {
		struct arule *old = &e->rules[i];
		struct arule *keep = NULL;

		for (size_t j = 0; j < nrules && !keep; j++)
			if (strcmp(nr[j].name, old->name) == 0)
				keep = &nr[j];
		if (keep && !keep->disabled) {
			keep->inst = old->inst;
			keep->ninst = old->ninst;
			keep->cap = old->cap;
			keep->health = old->health;
			keep->last_eval_ms = old->last_eval_ms;
			keep->eval_seconds = old->eval_seconds;
			snprintf(keep->last_error, sizeof(keep->last_error),
				 "%s", old->last_error);
			old->inst = NULL;
			old->ninst = old->cap = 0;
		} else {
			retire_rule(e, old, resolved, now);
		}
		arule_fini(old);
	}
	free(e->rules);
	e->rules = nr;
	e->nrules = nrules;
	e->dirty = true;
	deliver(e, resolved);
	json_decref(resolved);
	if (e->state_path)
		alert_state_save(e);
	return 0;
}

void alert_engine_free(struct alert_engine *e)
{
	if (e == NULL)
		return;
	if (e->state_path && e->dirty)
		alert_state_save(e);
	for (size_t i = 0; i < e->nrules; i++)
		arule_fini(&e->rules[i]);
	free(e->rules);
	for (size_t i = 0; i < e->nsil; i++)
		asilence_free(e->sil[i]);
	free(e->sil);
	hist_free(e->scratch);
	free(e->state_path);
	free(e->generator_url);
	free(e);
}

/* --- evaluation ---------------------------------------------------------- */

static bool silence_active(const struct asilence *s, uint64_t now)
{
	return s->starts_at <= now && now < s->ends_at;
}

/* The ids of the active silences matching a's labels, into ids (may be
 * NULL); returns how many. */
static size_t silenced_by(struct alert_engine *e, const struct arule *r,
			  const struct ainst *a, uint64_t now, json_t *ids)
{
	struct lset full;
	size_t n = 0;

	if (e->nsil == 0)
		return 0;
	alert_full_labels(r, a, &full);
	for (size_t i = 0; i < e->nsil; i++) {
		const struct asilence *s = e->sil[i];

		if (!silence_active(s, now) ||
		    !amatchers_match(s->m, s->nm, full.l, full.n))
			continue;
		n++;
		if (ids)
			json_array_append_new(ids, json_string(s->id));
	}
	lset_fini(&full);
	return n;
}

static void set_summary(struct arule *r, struct ainst *a)
{
	struct lset full;
	char dflt[ALERT_NAME_MAX + 64];

	alert_full_labels(r, a, &full);
	free(a->summary);
	if (r->summary) {
		a->summary = alert_render(r->summary, &full, a->value);
	} else {
		snprintf(dflt, sizeof(dflt), "%s %s %g", r->name,
			 alert_op_name(r->op), r->threshold);
		a->summary = xstrdup(dflt);
	}
	lset_fini(&full);
}

/* Moves a's state for one evaluation; hold: the condition held. */
static void step(struct alert_engine *e, struct arule *r, struct ainst *a,
		 bool hold, uint64_t now)
{
	switch (a->state) {
	case ALERT_INACTIVE:
	case ALERT_RESOLVED:
		if (!hold)
			break;
		a->state = ALERT_PENDING;
		a->active_at = now;
		a->fired_at = a->resolved_at = a->clear_since = 0;
		a->last_sent = 0;
		a->notified = a->resolved_sent = false;
		e->dirty = true;
		/* fall through: for 0 fires at once */
		/* FALLTHROUGH */
	case ALERT_PENDING:
		if (!hold) {
			a->state = ALERT_INACTIVE;
			e->dirty = true;
		} else if (now - a->active_at >= r->for_ms) {
			a->state = ALERT_FIRING;
			a->fired_at = now;
			e->dirty = true;
		}
		break;
	case ALERT_FIRING:
		if (hold) {
			if (a->clear_since)
				e->dirty = true;
			a->clear_since = 0;
			break;
		}
		if (a->clear_since == 0) {
			a->clear_since = now;
			e->dirty = true;
		}
		if (now - a->clear_since >= r->keep_firing_for_ms) {
			a->state = ALERT_RESOLVED;
			a->resolved_at = now;
			e->dirty = true;
		}
		break;
	}
}

static void eval_rule(struct alert_engine *e, struct arule *r, uint64_t now,
		      json_t *firing, json_t *resolved, int *failed)
{
	struct avec v = {0};
	char err[256];
	struct timespec t0, t1;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = alert_rule_value(e, r, now, &v, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	r->last_eval_ms = now;
	r->eval_seconds = (double)(t1.tv_sec - t0.tv_sec) +
			  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (rc < 0) {
		if (r->health != -1 || strcmp(r->last_error, err) != 0)
			log_warn("alert rule failed", "rule=%s error=\"%s\"",
				 r->name, err);
		r->health = -1;
		snprintf(r->last_error, sizeof(r->last_error), "%s", err);
		(*failed)++;
		avec_fini(&v);
		return;
	}
	r->health = 1;
	r->last_error[0] = '\0';

	/* Merge walk: results (sorted) against alerts (sorted). Results
	 * whose condition fails and that have no alert are skipped. */
	for (size_t i = 0; i < r->ninst; i++)
		r->inst[i]->seen = false;
	for (size_t k = 0; k < v.n; k++) {
		bool found;
		size_t at = arule_find(r, v.el[k].ls.key, &found);
		struct ainst *a;

		if (!found) {
			if (!v.el[k].hold)
				continue;
			a = arule_insert(r, at, &v.el[k].ls);
			if (a == NULL) {
				log_warn("alert rule has too many alerts",
					 "rule=%s max=%d", r->name,
					 ALERT_INSTANCES_MAX);
				continue;
			}
		} else {
			a = r->inst[at];
		}
		a->seen = true;
		a->value = v.el[k].v;
		step(e, r, a, v.el[k].hold, now);
	}
	for (size_t i = 0; i < r->ninst; i++) {
		struct ainst *a = r->inst[i];

		if (!a->seen)
			step(e, r, a, false, now);
	}
	/* Notifications, summaries, and the alerts that are done. */
	for (size_t i = 0; i < r->ninst;) {
		struct ainst *a = r->inst[i];

		if (a->state == ALERT_INACTIVE ||
		    (a->state == ALERT_RESOLVED &&
		     (!a->notified || a->resolved_sent) &&
		     now - a->resolved_at >= e->resolved_keep_ms)) {
			arule_remove(r, i);
			e->dirty = true;
			continue;
		}
		if (a->state != ALERT_RESOLVED || a->seen)
			set_summary(r, a);
		if (a->state == ALERT_FIRING &&
		    silenced_by(e, r, a, now, NULL) == 0 &&
		    (!a->notified ||
		     (r->repeat_ms && now - a->last_sent >= r->repeat_ms))) {
			a->notified = true;
			a->last_sent = now;
			json_array_append_new(firing,
					      alert_payload(e, r, a, false));
			e->dirty = true;
		} else if (a->state == ALERT_RESOLVED && a->notified &&
			   !a->resolved_sent) {
			a->resolved_sent = true;
			json_array_append_new(resolved,
					      alert_payload(e, r, a, true));
			e->dirty = true;
		}
		i++;
	}
	avec_fini(&v);
}

int alert_engine_eval(struct alert_engine *e, uint64_t now)
{
	json_t *firing = json_array(), *resolved = json_array();
	int failed = 0;

	e->now_ms = now;
	/* Expired silences go. */
	for (size_t i = 0; i < e->nsil;) {
		if (e->sil[i]->ends_at <= now) {
			asilence_free(e->sil[i]);
			memmove(&e->sil[i], &e->sil[i + 1],
				(e->nsil - i - 1) * sizeof(*e->sil));
			e->nsil--;
			e->dirty = true;
			continue;
		}
		i++;
	}
	for (size_t i = 0; i < e->nrules; i++) {
		if (!e->rules[i].disabled)
			eval_rule(e, &e->rules[i], now, firing, resolved,
				  &failed);
	}
	deliver(e, firing);
	deliver(e, resolved);
	json_decref(firing);
	json_decref(resolved);
	if (e->dirty && e->state_path)
		alert_state_save(e);
	return failed;
}

/* --- JSON ---------------------------------------------------------------- */

static int state_rank(enum alert_state s)
{
	return s == ALERT_FIRING ? 0 : s == ALERT_PENDING ? 1 : 2;
}

static json_t *inst_json(struct alert_engine *e, const struct arule *r,
			 const struct ainst *a)
{
	json_t *o = json_object(), *labels = json_object(), *ids = json_array();
	struct lset full;
	char fp[17];
	uint64_t since;

	alert_full_labels(r, a, &full);
	for (size_t i = 0; i < full.n; i++)
		json_object_set_new(labels, full.l[i].name,
				    json_string(full.l[i].value));
	lset_fini(&full);
	alert_fingerprint(r->name, a->ls.key, fp);
	since = a->state == ALERT_FIRING     ? a->fired_at
		: a->state == ALERT_RESOLVED ? a->resolved_at
					     : a->active_at;
	if (a->state != ALERT_RESOLVED)
		silenced_by(e, r, a, e->now_ms, ids);
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "fingerprint", json_string(fp));
	json_object_set_new(o, "state",
			    json_string(alert_state_name(a->state)));
	json_object_set_new(o, "labels", labels);
	json_object_set_new(
		o, "annotations",
		json_pack("{s:s}", "summary", a->summary ? a->summary : ""));
	json_object_set_new(o, "value", alert_json_num(a->value));
	json_object_set_new(o, "active_at", alert_json_time(a->active_at));
	json_object_set_new(o, "fired_at", alert_json_time(a->fired_at));
	json_object_set_new(o, "resolved_at", alert_json_time(a->resolved_at));
	json_object_set_new(o, "since", alert_json_time(since));
	json_object_set_new(o, "silenced", json_boolean(json_array_size(ids)));
	json_object_set_new(o, "silenced_by", ids);
	json_object_set_new(o, "last_notified", alert_json_time(a->last_sent));
	return o;
}

json_t *alert_engine_json(struct alert_engine *e)
{
	json_t *root = json_object(), *alerts = json_array(),
	       *rules = json_array();

	for (int rank = 0; rank < 3; rank++) {
		for (size_t i = 0; i < e->nrules; i++) {
			const struct arule *r = &e->rules[i];

			for (size_t k = 0; k < r->ninst; k++)
				if (state_rank(r->inst[k]->state) == rank)
					json_array_append_new(
						alerts,
						inst_json(e, r, r->inst[k]));
		}
	}
	for (size_t i = 0; i < e->nrules; i++) {
		const struct arule *r = &e->rules[i];

		json_array_append_new(
			rules,
			json_pack(
				"{s:s, s:s, s:s, s:b, s:s, s:o, s:o, s:f, s:I}",
				"name", r->name, "kind",
				r->kind == ALERT_RULE_BURN ? "burn_rate"
							   : "threshold",
				"severity", alert_severity_name(r->severity),
				"disabled", r->disabled, "health",
				r->health > 0	? "ok"
				: r->health < 0 ? "error"
						: "unknown",
				"last_error",
				r->last_error[0] ? json_string(r->last_error)
						 : json_null(),
				"last_eval", alert_json_time(r->last_eval_ms),
				"eval_seconds", r->eval_seconds, "alerts",
				(json_int_t)r->ninst));
	}
	json_object_set_new(root, "alerts", alerts);
	json_object_set_new(root, "rules", rules);
	json_object_set_new(root, "silences", alert_silence_list(e));
	json_object_set_new(root, "notifiers",
			    e->notify ? notify_status_json(e->notify)
				      : json_array());
	return root;
}

/* --- silences ------------------------------------------------------------ */

int alert_silence_add(struct alert_engine *e, const struct alert_silence *s,
		      uint64_t now, char id[ALERT_SILENCE_ID_LEN + 1],
		      char *err, size_t errlen)
{
	struct asilence *n;
	uint64_t starts = s->starts_at_ms ? s->starts_at_ms : now;
	unsigned char rnd[ALERT_SILENCE_ID_LEN / 2];

	if (s->nmatchers == 0 || s->nmatchers > ALERT_MATCHERS_MAX) {
		snprintf(err, errlen, "silence: 1 to %d matchers are needed",
			 ALERT_MATCHERS_MAX);
		return -EINVAL;
	}
	if (s->ends_at_ms <= starts || s->ends_at_ms <= now) {
		snprintf(err, errlen,
			 "silence: it must end after it starts "
			 "and in the future");
		return -EINVAL;
	}
	if (e->nsil >= ALERT_SILENCES_MAX) {
		snprintf(err, errlen, "silence: %d silences exist already",
			 ALERT_SILENCES_MAX);
		return -ENOSPC;
	}
	n = calloc(1, sizeof(*n));
	SK_ASSERT(n != NULL);
	n->m = calloc(s->nmatchers, sizeof(*n->m));
	SK_ASSERT(n->m != NULL);
	for (size_t i = 0; i < s->nmatchers; i++) {
		if (amatcher_init(&n->m[i], &s->matchers[i], err, errlen) < 0) {
			asilence_free(n);
			return -EINVAL;
		}
		n->nm++;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* No entropy source: time and a counter are unique enough
		 * for an id that is not a secret. */
		static unsigned ctr;
		uint64_t x = now ^ ((uint64_t)++ctr << 40);

		memcpy(rnd, &x, sizeof(rnd));
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(&n->id[2 * i], 3, "%02x", rnd[i]);
	n->starts_at = starts;
	n->ends_at = s->ends_at_ms;
	n->created_at = now;
	n->created_by = s->created_by ? xstrdup(s->created_by) : NULL;
	n->comment = s->comment ? xstrdup(s->comment) : NULL;
	e->sil = realloc(e->sil, (e->nsil + 1) * sizeof(*e->sil));
	SK_ASSERT(e->sil != NULL);
	e->sil[e->nsil++] = n;
	memcpy(id, n->id, sizeof(n->id));
	if (now > e->now_ms)
		e->now_ms = now;
	e->dirty = true;
	if (e->state_path)
		alert_state_save(e);
	return 0;
}

int alert_silence_del(struct alert_engine *e, const char *id)
{
	for (size_t i = 0; i < e->nsil; i++) {
		if (strcmp(e->sil[i]->id, id) == 0) {
			asilence_free(e->sil[i]);
			memmove(&e->sil[i], &e->sil[i + 1],
				(e->nsil - i - 1) * sizeof(*e->sil));
			e->nsil--;
			e->dirty = true;
			if (e->state_path)
				alert_state_save(e);
			return 0;
		}
	}
	return -ENOENT;
}

json_t *alert_silence_list(struct alert_engine *e)
{
	json_t *a = json_array();

	for (size_t i = 0; i < e->nsil; i++) {
		const struct asilence *s = e->sil[i];
		json_t *m = json_array();

		for (size_t k = 0; k < s->nm; k++)
			json_array_append_new(
				m, json_pack("{s:s, s:s, s:s}", "name",
					     s->m[k].name, "op",
					     alert_match_op_name(s->m[k].op),
					     "value", s->m[k].value));
		json_array_append_new(
			a,
			json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s}",
				  "id", s->id, "matchers", m, "starts_at",
				  alert_json_time(s->starts_at), "ends_at",
				  alert_json_time(s->ends_at), "created_at",
				  alert_json_time(s->created_at), "created_by",
				  s->created_by ? json_string(s->created_by)
						: json_null(),
				  "comment",
				  s->comment ? json_string(s->comment)
					     : json_null(),
				  "state",
				  s->starts_at <= e->now_ms ? "active"
							    : "pending"));
	}
	return a;
}
