/*
 * alert_state.c - the alert engine's state file: alerts and silences as
 * JSON, so that a restart keeps what fires, what was sent and what is
 * silenced.
 *
 *   {"version": 1, "saved_at": ms,
 *    "alerts": [{"rule": "...", "labels": {...}, "alert_labels": {...},
 *                "state": "firing",
 *                "active_at": ms, "fired_at": ms, "resolved_at": ms,
 *                "clear_since": ms, "last_sent": ms, "notified": true,
 *                "resolved_sent": false, "value": 1.5,
 *                "summary": "..."}],
 *    "silences": [{"id": "...", "matchers": [{"name", "op", "value"}],
 *                  "starts_at": ms, "ends_at": ms, "created_at": ms,
 *                  "created_by": "...", "comment": "..."}]}
 *
 * labels are the query's (they identify the alert), alert_labels the
 * full set as notifications showed it: an alert whose rule is gone when
 * the file is read gets its resolved notification from those.
 *
 * Times are wall-clock milliseconds. The file is written whole to
 * <path>.tmp and renamed over <path>, so a reader sees the old or the
 * new file, never half of one. What does not parse is logged and
 * skipped item by item; a file that is not JSON at all is renamed to
 * <path>.bad, so that the next save does not destroy the evidence.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/alert_int.h"

#define STATE_VERSION 1

static json_t *labels_json(const struct lset *ls)
{
	json_t *o = json_object();

	for (size_t i = 0; i < ls->n; i++)
		json_object_set_new(o, ls->l[i].name,
				    json_string(ls->l[i].value));
	return o;
}

int alert_state_save(struct alert_engine *e)
{
	json_t *root = json_object(), *alerts = json_array(),
	       *sils = json_array();
	size_t n = strlen(e->state_path) + 5;
	char *tmp = malloc(n);
	int rc = 0, fd;
	bool ok;

	SK_ASSERT(tmp != NULL);
	snprintf(tmp, n, "%s.tmp", e->state_path);
	for (size_t i = 0; i < e->nrules; i++) {
		const struct arule *r = &e->rules[i];

		for (size_t k = 0; k < r->ninst; k++) {
			const struct ainst *a = r->inst[k];
			struct lset full;
			json_t *o;

			alert_full_labels(r, a, &full);
			o = json_pack(
				"{s:s, s:o, s:o, s:s, s:I, s:I, s:I, s:I, s:I, "
				"s:b, "
				"s:b, s:o, s:s}",
				"rule", r->name, "labels", labels_json(&a->ls),
				"alert_labels", labels_json(&full), "state",
				alert_state_name(a->state), "active_at",
				(json_int_t)a->active_at, "fired_at",
				(json_int_t)a->fired_at, "resolved_at",
				(json_int_t)a->resolved_at, "clear_since",
				(json_int_t)a->clear_since, "last_sent",
				(json_int_t)a->last_sent, "notified",
				a->notified, "resolved_sent", a->resolved_sent,
				"value", alert_json_num(a->value), "summary",
				a->summary ? a->summary : "");
			lset_fini(&full);
			json_array_append_new(alerts, o);
		}
	}
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
			sils, json_pack("{s:s, s:o, s:I, s:I, s:I, s:s?, s:s?}",
					"id", s->id, "matchers", m, "starts_at",
					(json_int_t)s->starts_at, "ends_at",
					(json_int_t)s->ends_at, "created_at",
					(json_int_t)s->created_at, "created_by",
					s->created_by, "comment", s->comment));
	}
	json_object_set_new(root, "version", json_integer(STATE_VERSION));
	json_object_set_new(root, "saved_at",
			    json_integer((json_int_t)e->now_ms));
	json_object_set_new(root, "alerts", alerts);
	json_object_set_new(root, "silences", sils);
	/* The new file's bytes reach the disk before the rename does, so a
	 * power cut leaves the old state or the new one, never an empty
	 * file (which the next start would set aside as .bad). */
	errno = 0;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && json_dumpfd(root, fd, JSON_COMPACT) == 0 &&
	     fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	if (!ok || rename(tmp, e->state_path) < 0) {
		rc = errno ? -errno : -EIO;
		log_error("cannot save alert state", "path=%s error=\"%s\"",
			  e->state_path, strerror(-rc));
		(void)remove(tmp);
	} else {
		e->dirty = false;
	}
	json_decref(root);
	free(tmp);
	return rc;
}

static uint64_t get_ms(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) && json_integer_value(v) > 0
		       ? (uint64_t)json_integer_value(v)
		       : 0;
}

static struct arule *rule_named(struct alert_engine *e, const char *name)
{
	for (size_t i = 0; name && i < e->nrules; i++)
		if (strcmp(e->rules[i].name, name) == 0)
			return &e->rules[i];
	return NULL;
}

/*
 * The alert of a rule that is gone: if its firing went out and its
 * resolution did not, the resolution goes out now (into resolved),
 * built from what the file kept.
 */
static void orphan(struct alert_engine *e, json_t *o, json_t *resolved)
{
	json_t *labels = json_object_get(o, "alert_labels"), *p, *key_labels,
	       *v;
	const char *rule = json_string_value(json_object_get(o, "rule")), *k;
	const char *sev, *sum;
	struct metrics_label l[METRICS_LABELS_MAX];
	struct lset ls;
	size_t n = 0;
	char fp[17];

	if (!json_is_true(json_object_get(o, "notified")) ||
	    json_is_true(json_object_get(o, "resolved_sent")) ||
	    !json_is_object(labels) || rule == NULL)
		return;
	key_labels = json_object_get(o, "labels");
	json_object_foreach (key_labels, k, v) {
		if (!json_is_string(v) || n == METRICS_LABELS_MAX)
			return;
		l[n++] = (struct metrics_label){k, json_string_value(v)};
	}
	lset_init(&ls, l, n);
	alert_fingerprint(rule, ls.key, fp);
	lset_fini(&ls);
	sev = json_string_value(json_object_get(labels, "severity"));
	sum = json_string_value(json_object_get(o, "summary"));
	v = json_object_get(o, "value");
	p = json_pack(
		"{s:s, s:s, s:s, s:O, s:{s:s}, s:o, s:o, s:o, s:s, s:s}",
		"status", "resolved", "name", rule, "severity",
		sev ? sev : "info", "labels", labels, "annotations", "summary",
		sum ? sum : "", "value",
		alert_json_num(json_is_number(v) ? json_number_value(v) : NAN),
		"startsAt", alert_json_time(get_ms(o, "fired_at")), "endsAt",
		alert_json_time(clock_wall_ms()), "generatorURL",
		e->generator_url ? e->generator_url : "", "fingerprint", fp);
	if (p)
		json_array_append_new(resolved, p);
}

static int load_alert(struct alert_engine *e, json_t *o, json_t *resolved)
{
	struct arule *r =
		rule_named(e, json_string_value(json_object_get(o, "rule")));
	json_t *labels = json_object_get(o, "labels"), *v;
	struct metrics_label l[METRICS_LABELS_MAX];
	enum alert_state st;
	struct lset ls;
	struct ainst *a;
	const char *k;
	size_t n = 0, at;
	bool found;

	if (r == NULL || r->disabled) {
		/* A rule that went away: its alerts go too. */
		orphan(e, o, resolved);
		e->dirty = true;
		return 0;
	}
	if (!json_is_object(labels) ||
	    alert_state_parse(json_string_value(json_object_get(o, "state")),
			      &st) < 0 ||
	    st == ALERT_INACTIVE)
		return -EINVAL;
	json_object_foreach (labels, k, v) {
		if (!json_is_string(v) || n == METRICS_LABELS_MAX)
			return -EINVAL;
		l[n++] = (struct metrics_label){k, json_string_value(v)};
	}
	lset_init(&ls, l, n);
	at = arule_find(r, ls.key, &found);
	if (found || (a = arule_insert(r, at, &ls)) == NULL) {
		lset_fini(&ls);
		return -EINVAL;
	}
	a->state = st;
	a->active_at = get_ms(o, "active_at");
	a->fired_at = get_ms(o, "fired_at");
	a->resolved_at = get_ms(o, "resolved_at");
	a->clear_since = get_ms(o, "clear_since");
	a->last_sent = get_ms(o, "last_sent");
	a->notified = json_is_true(json_object_get(o, "notified"));
	a->resolved_sent = json_is_true(json_object_get(o, "resolved_sent"));
	v = json_object_get(o, "value");
	a->value = json_is_number(v) ? json_number_value(v) : NAN;
	if (json_is_string(json_object_get(o, "summary")))
		a->summary = strdup(
			json_string_value(json_object_get(o, "summary")));
	return 0;
}

static int load_silence(struct alert_engine *e, json_t *o)
{
	json_t *m = json_object_get(o, "matchers"), *x;
	const char *id = json_string_value(json_object_get(o, "id"));
	struct asilence *s;
	char err[200];
	size_t i;

	if (id == NULL || strlen(id) != ALERT_SILENCE_ID_LEN ||
	    !json_is_array(m) || json_array_size(m) == 0 ||
	    json_array_size(m) > ALERT_MATCHERS_MAX ||
	    e->nsil >= ALERT_SILENCES_MAX)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	SK_ASSERT(s != NULL);
	s->m = calloc(json_array_size(m), sizeof(*s->m));
	SK_ASSERT(s->m != NULL);
	json_array_foreach (m, i, x) {
		struct alert_matcher am = {
			json_string_value(json_object_get(x, "name")), 0,
			json_string_value(json_object_get(x, "value"))};

		if (am.value == NULL ||
		    alert_match_op_parse(
			    json_string_value(json_object_get(x, "op")),
			    &am.op) < 0 ||
		    amatcher_init(&s->m[i], &am, err, sizeof(err)) < 0) {
			asilence_free(s);
			return -EINVAL;
		}
		s->nm++;
	}
	memcpy(s->id, id, ALERT_SILENCE_ID_LEN + 1);
	s->starts_at = get_ms(o, "starts_at");
	s->ends_at = get_ms(o, "ends_at");
	s->created_at = get_ms(o, "created_at");
	x = json_object_get(o, "created_by");
	s->created_by = json_is_string(x) ? strdup(json_string_value(x)) : NULL;
	x = json_object_get(o, "comment");
	s->comment = json_is_string(x) ? strdup(json_string_value(x)) : NULL;
	e->sil = realloc(e->sil, (e->nsil + 1) * sizeof(*e->sil));
	SK_ASSERT(e->sil != NULL);
	e->sil[e->nsil++] = s;
	return 0;
}

void alert_state_load(struct alert_engine *e, json_t *resolved)
{
	json_error_t jerr;
	json_t *root, *x;
	size_t i, bad = 0;
	FILE *f = fopen(e->state_path, "r");

	if (f == NULL) {
		if (errno != ENOENT)
			log_error("cannot read alert state",
				  "path=%s error=\"%s\"", e->state_path,
				  strerror(errno));
		return;
	}
	root = json_loadf(f, 0, &jerr);
	fclose(f);
	if (!json_is_object(root) ||
	    json_integer_value(json_object_get(root, "version")) !=
		    STATE_VERSION) {
		size_t n = strlen(e->state_path) + 5;
		char *badp = malloc(n);

		SK_ASSERT(badp != NULL);
		snprintf(badp, n, "%s.bad", e->state_path);
		log_error("alert state file unreadable, starting afresh",
			  "path=%s error=\"%s\" moved_to=%s", e->state_path,
			  root ? "not a version 1 state file" : jerr.text,
			  badp);
		(void)rename(e->state_path, badp);
		free(badp);
		json_decref(root);
		return;
	}
	e->now_ms = get_ms(root, "saved_at");
	json_array_foreach (json_object_get(root, "alerts"), i, x) {
		if (load_alert(e, x, resolved) < 0)
			bad++;
	}
	json_array_foreach (json_object_get(root, "silences"), i, x) {
		if (load_silence(e, x) < 0)
			bad++;
	}
	if (bad)
		log_warn("alert state: entries skipped", "path=%s skipped=%zu",
			 e->state_path, bad);
	json_decref(root);
}
