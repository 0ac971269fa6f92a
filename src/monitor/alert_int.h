/*
 * alert_int.h - shared by alert*.c only: the engine's own copies of
 * rules (strings owned, regexes compiled), label sets, alerts, and the
 * pieces that the evaluator, the persistence and the JSON share.
 */
#ifndef SK_MONITOR_ALERT_INT_H
#define SK_MONITOR_ALERT_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/buf.h"
#include "monitor/alert.h"

/* A label set: owned strings sorted by name, and its key, the text
 * `a="x",b="y"` (values escaped as in the exposition format), which is
 * unique per set and orders sets. */
struct lset {
	struct metrics_label *l;
	size_t n;
	char *key;
};

/* Copies labels (any order; a later repeat of a name is dropped). */
void lset_init(struct lset *s, const struct metrics_label *l, size_t n);
void lset_fini(struct lset *s);
void lset_move(struct lset *dst, struct lset *src);
const char *lset_get(const struct lset *s, const char *name);

struct amatcher {
	char *name;
	enum alert_match_op op;
	char *value;
	regex_t re; /* RE and NRE only */
};

/* Copies m and compiles its regex anchored at both ends. Returns 0 or
 * -EINVAL with err. */
int amatcher_init(struct amatcher *am, const struct alert_matcher *m, char *err,
		  size_t errlen);
void amatcher_fini(struct amatcher *am);
/* value: the label's value, NULL when absent (matches as ""). */
bool amatcher_match(const struct amatcher *am, const char *value);
bool amatchers_match(const struct amatcher *am, size_t n,
		     const struct metrics_label *l, size_t nl);
const char *alert_match_op_name(enum alert_match_op op);
int alert_match_op_parse(const char *s, enum alert_match_op *out);

struct aquery {
	char *metric; /* NULL: unused */
	struct amatcher *m;
	size_t nm;
	struct alert_matcher *hint; /* the matchers again, for the source */
	enum alert_fn fn;
	uint64_t window_ms;
	double q;
	uint64_t horizon_ms;
	double le;
	enum alert_group group;
	char **by;
	size_t nby;
};

enum alert_state {
	ALERT_INACTIVE = 0,
	ALERT_PENDING,
	ALERT_FIRING,
	ALERT_RESOLVED,
};

const char *alert_state_name(enum alert_state s);
int alert_state_parse(const char *s, enum alert_state *out);

/* One alert: a rule and the label set its query produced. */
struct ainst {
	struct lset ls; /* the query's labels; ls.key identifies the alert */
	enum alert_state state;
	uint64_t active_at, fired_at, resolved_at;
	uint64_t clear_since; /* firing, condition failing since; 0: holds */
	uint64_t last_sent;   /* last firing notification */
	bool notified;	      /* a firing notification went out */
	bool resolved_sent;
	bool seen; /* in this evaluation's results */
	double value;
	char *summary;
};

struct arule {
	char *name;
	bool disabled;
	enum alert_rule_kind kind;
	struct aquery expr, plus, over;
	enum alert_op op;
	double threshold;
	uint64_t for_ms, keep_firing_for_ms, repeat_ms;
	enum alert_severity severity;
	struct metrics_label *labels;
	size_t nlabels;
	char *summary;
	double objective;
	uint64_t short_window_ms;

	struct ainst **inst; /* sorted by ls.key */
	size_t ninst, cap;

	int health; /* 0 unknown, 1 ok, -1 error */
	char last_error[256];
	uint64_t last_eval_ms;
	double eval_seconds;
};

int arule_init(struct arule *r, const struct alert_rule *src, char *err,
	       size_t errlen);
void arule_fini(struct arule *r); /* frees its alerts too */

/* Index of the alert with key in r (exact), or where it would go. */
size_t arule_find(const struct arule *r, const char *key, bool *found);
struct ainst *arule_insert(struct arule *r, size_t at, struct lset *ls);
void ainst_free(struct ainst *a);

struct asilence {
	char id[ALERT_SILENCE_ID_LEN + 1];
	struct amatcher *m;
	size_t nm;
	uint64_t starts_at, ends_at, created_at;
	char *created_by, *comment;
};

void asilence_free(struct asilence *s);

struct alert_engine {
	struct alert_source src;
	struct arule *rules;
	size_t nrules;
	struct asilence **sil;
	size_t nsil;
	char *state_path;
	char *generator_url;
	uint64_t resolved_keep_ms;
	struct notify *notify;
	alert_send_cb send;
	void *send_ud;
	struct hist *scratch; /* histogram windows */
	uint64_t now_ms;      /* of the latest eval */
	bool dirty;	      /* state to save */
};

/* The alert's full labels: the query's, then the rule's extra labels
 * (which win), severity and alertname (which win over all). */
void alert_full_labels(const struct arule *r, const struct ainst *a,
		       struct lset *out);

/*
 * One query's result: label sets and values, sorted by key.
 */
struct avec_el {
	struct lset ls;
	double v;
	bool hold; /* the rule's condition holds */
};

struct avec {
	struct avec_el *el;
	size_t n, cap;
};

void avec_fini(struct avec *v);

/*
 * Evaluates r at now into out (sorted by key): the rule's value per
 * label set, and whether its condition holds. Returns 0, or a negative errno
 * with err (a source failure, a function that does not apply to the series'
 * kind).
 */
int alert_rule_value(struct alert_engine *e, const struct arule *r,
		     uint64_t now, struct avec *out, char *err, size_t errlen);

bool alert_compare(enum alert_op op, double v, double threshold);

/* Renders tmpl with labels and value (see alert_rule.summary). */
char *alert_render(const char *tmpl, const struct lset *ls, double value);
/* Checks a template's {{...}} syntax. Returns 0 or -EINVAL with err. */
int alert_template_check(const char *tmpl, char *err, size_t errlen);

/* Persistence (alert_state.c). */
int alert_state_save(struct alert_engine *e);
/* Reads the file; resolved notifications due for alerts whose rule is
 * gone are appended to resolved. */
void alert_state_load(struct alert_engine *e, json_t *resolved);

/* ISO 8601 UTC of ms, or JSON null for 0. */
json_t *alert_json_time(uint64_t ms);
/* A number, or null when not finite. */
json_t *alert_json_num(double v);
/* 64-bit FNV-1a of a rule name and a key, as 16 hex digits. */
void alert_fingerprint(const char *rule, const char *key, char out[17]);

#endif
