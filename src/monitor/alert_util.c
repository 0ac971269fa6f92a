/*
 * alert_util.c - the small pieces of the alert engine: names of enums,
 * label sets, matchers, the selector parser, summary templates, and the
 * JSON helpers.
 *
 * Matchers' regexes are POSIX extended expressions matched against the
 * whole label value, as Prometheus anchors its RE2 ones: "shop|api" is
 * compiled as "^(shop|api)$".
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/alert_int.h"
#include "monitor/monitor_int.h"

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	SK_ASSERT(d != NULL);
	return d;
}

/* --- enum names ---------------------------------------------------------- */

static const char *const fn_names[] = {
	[ALERT_FN_LAST] = "last",
	[ALERT_FN_AVG] = "avg",
	[ALERT_FN_MIN] = "min",
	[ALERT_FN_MAX] = "max",
	[ALERT_FN_INCREASE] = "increase",
	[ALERT_FN_RATE] = "rate",
	[ALERT_FN_QUANTILE] = "quantile",
	[ALERT_FN_PREDICT_LINEAR] = "predict_linear",
	[ALERT_FN_TIME_TO_ZERO] = "time_to_zero",
	[ALERT_FN_COUNT_ABOVE] = "count_above",
};

static const char *const group_names[] = {
	[ALERT_GROUP_NONE] = "none", [ALERT_GROUP_SUM] = "sum",
	[ALERT_GROUP_AVG] = "avg",   [ALERT_GROUP_MIN] = "min",
	[ALERT_GROUP_MAX] = "max",   [ALERT_GROUP_COUNT] = "count",
};

static const char *const op_names[] = {
	[ALERT_OP_GT] = ">",  [ALERT_OP_GE] = ">=", [ALERT_OP_LT] = "<",
	[ALERT_OP_LE] = "<=", [ALERT_OP_EQ] = "==", [ALERT_OP_NE] = "!=",
};

static const char *const sev_names[] = {
	[ALERT_SEV_INFO] = "info",
	[ALERT_SEV_WARNING] = "warning",
	[ALERT_SEV_CRITICAL] = "critical",
};

static const char *const state_names[] = {
	[ALERT_INACTIVE] = "inactive",
	[ALERT_PENDING] = "pending",
	[ALERT_FIRING] = "firing",
	[ALERT_RESOLVED] = "resolved",
};

static const char *const match_names[] = {
	[ALERT_MATCH_EQ] = "=",
	[ALERT_MATCH_NE] = "!=",
	[ALERT_MATCH_RE] = "=~",
	[ALERT_MATCH_NRE] = "!~",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const char *const *names, size_t n, unsigned i)
{
	return i < n ? names[i] : NULL;
}

static int parse_name(const char *const *names, size_t n, const char *s,
		      int *out)
{
	for (size_t i = 0; s && i < n; i++) {
		if (strcmp(names[i], s) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *alert_fn_name(enum alert_fn fn)
{
	return name_of(fn_names, NELEM(fn_names), fn);
}

int alert_fn_parse(const char *s, enum alert_fn *out)
{
	int v, e = parse_name(fn_names, NELEM(fn_names), s, &v);

	if (e == 0)
		*out = (enum alert_fn)v;
	return e;
}

const char *alert_group_name(enum alert_group g)
{
	return name_of(group_names, NELEM(group_names), g);
}

int alert_group_parse(const char *s, enum alert_group *out)
{
	int v, e = parse_name(group_names, NELEM(group_names), s, &v);

	if (e == 0)
		*out = (enum alert_group)v;
	return e;
}

const char *alert_op_name(enum alert_op op)
{
	return name_of(op_names, NELEM(op_names), op);
}

int alert_op_parse(const char *s, enum alert_op *out)
{
	int v, e = parse_name(op_names, NELEM(op_names), s, &v);

	if (e == 0)
		*out = (enum alert_op)v;
	return e;
}

const char *alert_severity_name(enum alert_severity s)
{
	return name_of(sev_names, NELEM(sev_names), s);
}

int alert_severity_parse(const char *s, enum alert_severity *out)
{
	int v, e = parse_name(sev_names, NELEM(sev_names), s, &v);

	if (e == 0)
		*out = (enum alert_severity)v;
	return e;
}

const char *alert_state_name(enum alert_state s)
{
	return name_of(state_names, NELEM(state_names), s);
}

int alert_state_parse(const char *s, enum alert_state *out)
{
	int v, e = parse_name(state_names, NELEM(state_names), s, &v);

	if (e == 0)
		*out = (enum alert_state)v;
	return e;
}

const char *alert_match_op_name(enum alert_match_op op)
{
	return name_of(match_names, NELEM(match_names), op);
}

int alert_match_op_parse(const char *s, enum alert_match_op *out)
{
	int v, e = parse_name(match_names, NELEM(match_names), s, &v);

	if (e == 0)
		*out = (enum alert_match_op)v;
	return e;
}

bool alert_compare(enum alert_op op, double v, double t)
{
	if (isnan(v))
		return false;
	switch (op) {
	case ALERT_OP_GT:
		return v > t;
	case ALERT_OP_GE:
		return v >= t;
	case ALERT_OP_LT:
		return v < t;
	case ALERT_OP_LE:
		return v <= t;
	case ALERT_OP_EQ:
		return v == t;
	case ALERT_OP_NE:
		return v != t;
	}
	return false;
}

/* --- label sets ---------------------------------------------------------- */

static int label_cmp(const void *a, const void *b)
{
	const struct metrics_label *x = a, *y = b;

	return strcmp(x->name, y->name);
}

void lset_init(struct lset *s, const struct metrics_label *l, size_t n)
{
	struct buf b;
	size_t k = 0;

	s->l = calloc(n ? n : 1, sizeof(*s->l));
	SK_ASSERT(s->l != NULL);
	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(s->l[j].name, l[i].name) == 0;
		if (dup)
			continue;
		s->l[k].name = xstrdup(l[i].name);
		s->l[k].value = xstrdup(l[i].value);
		k++;
	}
	s->n = k;
	qsort(s->l, s->n, sizeof(*s->l), label_cmp);
	buf_init(&b);
	for (size_t i = 0; i < s->n; i++) {
		buf_printf(&b, "%s%s=\"", i ? "," : "", s->l[i].name);
		prom_label_value(&b, s->l[i].value);
		buf_appendc(&b, '"');
	}
	buf_cstr(&b);
	s->key = buf_steal(&b, NULL);
	if (s->key == NULL)
		s->key = xstrdup("");
}

void lset_fini(struct lset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free((char *)s->l[i].name);
		free((char *)s->l[i].value);
	}
	free(s->l);
	free(s->key);
	s->l = NULL;
	s->key = NULL;
	s->n = 0;
}

void lset_move(struct lset *dst, struct lset *src)
{
	*dst = *src;
	src->l = NULL;
	src->key = NULL;
	src->n = 0;
}

const char *lset_get(const struct lset *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->l[i].name, name) == 0)
			return s->l[i].value;
	return NULL;
}

/* --- matchers ------------------------------------------------------------ */

int amatcher_init(struct amatcher *am, const struct alert_matcher *m, char *err,
		  size_t errlen)
{
	memset(am, 0, sizeof(*am));
	if (m->name == NULL || !prom_label_name_ok(m->name)) {
		snprintf(err, errlen, "matcher: bad label name \"%s\"",
			 m->name ? m->name : "");
		return -EINVAL;
	}
	if ((unsigned)m->op > ALERT_MATCH_NRE) {
		snprintf(err, errlen, "matcher %s: bad operator", m->name);
		return -EINVAL;
	}
	am->name = xstrdup(m->name);
	am->op = m->op;
	am->value = xstrdup(m->value);
	if (m->op == ALERT_MATCH_RE || m->op == ALERT_MATCH_NRE) {
		size_t n = strlen(am->value) + 5;
		char *pat = malloc(n);
		int e;

		SK_ASSERT(pat != NULL);
		snprintf(pat, n, "^(%s)$", am->value);
		e = regcomp(&am->re, pat, REG_EXTENDED | REG_NOSUB);
		free(pat);
		if (e != 0) {
			char why[128];

			regerror(e, &am->re, why, sizeof(why));
			snprintf(err, errlen,
				 "matcher %s: bad regex \"%s\": %s", m->name,
				 am->value, why);
			free(am->name);
			free(am->value);
			memset(am, 0, sizeof(*am));
			return -EINVAL;
		}
	}
	return 0;
}

void amatcher_fini(struct amatcher *am)
{
	if (am->name == NULL)
		return;
	if (am->op == ALERT_MATCH_RE || am->op == ALERT_MATCH_NRE)
		regfree(&am->re);
	free(am->name);
	free(am->value);
	am->name = NULL;
	am->value = NULL;
}

bool amatcher_match(const struct amatcher *am, const char *value)
{
	const char *v = value ? value : "";

	switch (am->op) {
	case ALERT_MATCH_EQ:
		return strcmp(v, am->value) == 0;
	case ALERT_MATCH_NE:
		return strcmp(v, am->value) != 0;
	case ALERT_MATCH_RE:
		return regexec(&am->re, v, 0, NULL, 0) == 0;
	case ALERT_MATCH_NRE:
		return regexec(&am->re, v, 0, NULL, 0) != 0;
	}
	return false;
}

bool amatchers_match(const struct amatcher *am, size_t n,
		     const struct metrics_label *l, size_t nl)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = NULL;

		for (size_t j = 0; j < nl; j++) {
			if (strcmp(l[j].name, am[i].name) == 0) {
				v = l[j].value;
				break;
			}
		}
		if (!amatcher_match(&am[i], v))
			return false;
	}
	return true;
}

/* --- the selector parser ------------------------------------------------- */

struct cursor {
	const char *s, *p;
	char *err;
	size_t errlen;
};

static void skip_ws(struct cursor *c)
{
	while (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')
		c->p++;
}

static bool name_char(char ch, bool first)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       ch == '_' || ch == ':' || (!first && ch >= '0' && ch <= '9');
}

static int fail_at(struct cursor *c, const char *what)
{
	snprintf(c->err, c->errlen, "selector at byte %zu: %s",
		 (size_t)(c->p - c->s), what);
	return -EINVAL;
}

static char *take_name(struct cursor *c)
{
	const char *b = c->p;

	if (!name_char(*c->p, true))
		return NULL;
	while (name_char(*c->p, false))
		c->p++;
	return strndup(b, (size_t)(c->p - b));
}

/* A quoted ("..." with \" \\ \n escapes) or bare value. */
static int take_value(struct cursor *c, char **out)
{
	struct buf b;

	buf_init(&b);
	if (*c->p == '"') {
		c->p++;
		for (;;) {
			char ch = *c->p;

			if (ch == '\0') {
				buf_fini(&b);
				return fail_at(c, "unterminated quote");
			}
			c->p++;
			if (ch == '"')
				break;
			if (ch == '\\') {
				ch = *c->p;
				if (ch != '"' && ch != '\\' && ch != 'n') {
					buf_fini(&b);
					return fail_at(c, "bad escape");
				}
				c->p++;
				ch = ch == 'n' ? '\n' : ch;
			}
			buf_appendc(&b, ch);
		}
	} else {
		while (*c->p && *c->p != ',' && *c->p != '}' && *c->p != ' ' &&
		       *c->p != '"' && *c->p != '\t')
			buf_appendc(&b, *c->p++);
	}
	buf_cstr(&b);
	*out = buf_steal(&b, NULL);
	if (*out == NULL)
		*out = strdup("");
	SK_ASSERT(*out != NULL);
	return 0;
}

void alert_selector_fini(struct alert_selector *sel)
{
	for (size_t i = 0; i < sel->nmatchers; i++) {
		free((char *)sel->matchers[i].name);
		free((char *)sel->matchers[i].value);
	}
	free(sel->matchers);
	free(sel->metric);
	memset(sel, 0, sizeof(*sel));
}

int alert_selector_parse(const char *s, struct alert_selector *out, char *err,
			 size_t errlen)
{
	struct cursor c = {s, s, err, errlen};
	struct alert_selector sel = {0};
	bool braces = false;

	skip_ws(&c);
	/* A leading name followed by '{' or the end is the metric; one
	 * followed by an operator is the first matcher's label. */
	if (name_char(*c.p, true)) {
		const char *save = c.p;
		char *n = take_name(&c);

		skip_ws(&c);
		if (*c.p == '{' || *c.p == '\0')
			sel.metric = n;
		else {
			free(n);
			c.p = save;
		}
	}
	skip_ws(&c);
	if (*c.p == '{') {
		braces = true;
		c.p++;
	}
	for (;;) {
		struct alert_matcher m = {0};
		char op[3] = {0};
		char *name, *value;

		skip_ws(&c);
		if (*c.p == '\0' || *c.p == '}')
			break;
		if (sel.nmatchers == ALERT_MATCHERS_MAX) {
			fail_at(&c, "too many matchers");
			goto fail;
		}
		name = take_name(&c);
		if (name == NULL) {
			fail_at(&c, "expected a label name");
			goto fail;
		}
		skip_ws(&c);
		op[0] = *c.p;
		if (op[0] == '=' || op[0] == '!')
			c.p++;
		if (*c.p == '=' || *c.p == '~')
			op[1] = *c.p++;
		if (alert_match_op_parse(op, &m.op) < 0) {
			free(name);
			fail_at(&c, "expected =, !=, =~ or !~");
			goto fail;
		}
		skip_ws(&c);
		if (take_value(&c, &value) < 0) {
			free(name);
			goto fail;
		}
		m.name = name;
		m.value = value;
		if (sel.matchers == NULL) {
			sel.matchers = calloc(ALERT_MATCHERS_MAX,
					      sizeof(*sel.matchers));
			SK_ASSERT(sel.matchers != NULL);
		}
		sel.matchers[sel.nmatchers++] = m;
		skip_ws(&c);
		if (*c.p == ',')
			c.p++;
		else if (*c.p != '\0' && *c.p != '}') {
			fail_at(&c, "expected , or }");
			goto fail;
		}
	}
	if (braces) {
		if (*c.p != '}') {
			fail_at(&c, "expected }");
			goto fail;
		}
		c.p++;
	} else if (*c.p == '}') {
		fail_at(&c, "} without {");
		goto fail;
	}
	skip_ws(&c);
	if (*c.p != '\0') {
		fail_at(&c, "trailing text");
		goto fail;
	}
	/* Check the regexes now, so a bad one is reported at parse time. */
	for (size_t i = 0; i < sel.nmatchers; i++) {
		struct amatcher am;

		if (amatcher_init(&am, &sel.matchers[i], err, errlen) < 0)
			goto fail;
		amatcher_fini(&am);
	}
	*out = sel;
	return 0;
fail:
	alert_selector_fini(&sel);
	return -EINVAL;
}

/* --- templates ----------------------------------------------------------- */

static void fmt_num(struct buf *b, double v)
{
	if (isnan(v))
		buf_appends(b, "NaN");
	else if (isinf(v))
		buf_appends(b, v > 0 ? "+Inf" : "-Inf");
	else
		buf_printf(b, "%.4g", v);
}

static void fmt_bytes(struct buf *b, double v)
{
	static const char *const unit[] = {"B",	  "KiB", "MiB",
					   "GiB", "TiB", "PiB"};
	double a = fabs(v);
	size_t u = 0;

	if (!isfinite(v)) {
		fmt_num(b, v);
		return;
	}
	while (a >= 1024 && u + 1 < NELEM(unit)) {
		a /= 1024;
		u++;
	}
	buf_printf(b, "%s%.3g %s", v < 0 ? "-" : "", a, unit[u]);
}

static void fmt_duration(struct buf *b, double s)
{
	if (!isfinite(s) || s < 0) {
		fmt_num(b, s);
		return;
	}
	if (s < 1) {
		buf_printf(b, "%.3gms", s * 1000);
		return;
	}
	if (s < 60) {
		buf_printf(b, "%.3gs", s);
		return;
	}
	uint64_t t = (uint64_t)(s + 0.5);
	uint64_t d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60;

	if (d)
		buf_printf(b, "%llud %lluh", (unsigned long long)d,
			   (unsigned long long)h);
	else if (h)
		buf_printf(b, "%lluh %llum", (unsigned long long)h,
			   (unsigned long long)m);
	else
		buf_printf(b, "%llum %llus", (unsigned long long)m,
			   (unsigned long long)(t % 60));
}

/* Splits the inside of {{ }} (trimmed) into name and filter. */
static int tmpl_item(const char *p, size_t n, char *name, size_t nn, char *filt,
		     size_t fn)
{
	const char *bar;
	size_t ln;

	while (n && (*p == ' '))
		p++, n--;
	while (n && p[n - 1] == ' ')
		n--;
	bar = memchr(p, '|', n);
	ln = bar ? (size_t)(bar - p) : n;
	while (ln && p[ln - 1] == ' ')
		ln--;
	if (ln == 0 || ln >= nn)
		return -EINVAL;
	memcpy(name, p, ln);
	name[ln] = '\0';
	filt[0] = '\0';
	if (bar) {
		const char *f = bar + 1;
		size_t fl = n - (size_t)(f - p);

		while (fl && *f == ' ')
			f++, fl--;
		if (fl == 0 || fl >= fn)
			return -EINVAL;
		memcpy(filt, f, fl);
		filt[fl] = '\0';
		if (strcmp(filt, "pct") && strcmp(filt, "bytes") &&
		    strcmp(filt, "duration"))
			return -EINVAL;
	}
	return 0;
}

int alert_template_check(const char *t, char *err, size_t errlen)
{
	const char *p = t;

	while (t && (p = strstr(p, "{{")) != NULL) {
		const char *end = strstr(p + 2, "}}");
		char name[PROM_LABEL_NAME_MAX + 1], filt[16];

		if (end == NULL) {
			snprintf(err, errlen, "summary: {{ without }}");
			return -EINVAL;
		}
		if (tmpl_item(p + 2, (size_t)(end - p - 2), name, sizeof(name),
			      filt, sizeof(filt)) < 0) {
			snprintf(err, errlen,
				 "summary: bad item \"%.*s\" (a label name or "
				 "value, optionally |pct, |bytes or |duration)",
				 (int)(end - p - 2), p + 2);
			return -EINVAL;
		}
		p = end + 2;
	}
	return 0;
}

char *alert_render(const char *t, const struct lset *ls, double value)
{
	struct buf b;
	const char *p = t;
	char *out;

	buf_init(&b);
	while (*p) {
		const char *open = strstr(p, "{{"), *end;
		char name[PROM_LABEL_NAME_MAX + 1], filt[16];

		if (open == NULL || (end = strstr(open + 2, "}}")) == NULL) {
			buf_appends(&b, p);
			break;
		}
		buf_append(&b, p, (size_t)(open - p));
		p = end + 2;
		if (tmpl_item(open + 2, (size_t)(end - open - 2), name,
			      sizeof(name), filt, sizeof(filt)) < 0) {
			buf_append(&b, open, (size_t)(p - open));
			continue;
		}
		if (strcmp(name, "value") == 0) {
			if (strcmp(filt, "pct") == 0) {
				if (isfinite(value) && fabs(value) >= 1)
					buf_printf(&b, "%.0f%%", value * 100);
				else if (isfinite(value))
					buf_printf(&b, "%.3g%%", value * 100);
				else
					fmt_num(&b, value);
			} else if (strcmp(filt, "bytes") == 0) {
				fmt_bytes(&b, value);
			} else if (strcmp(filt, "duration") == 0) {
				fmt_duration(&b, value);
			} else {
				fmt_num(&b, value);
			}
		} else {
			const char *v = lset_get(ls, name);

			buf_appends(&b, v ? v : "");
		}
	}
	buf_cstr(&b);
	out = buf_steal(&b, NULL);
	return out ? out : xstrdup("");
}

/* --- JSON and fingerprints ----------------------------------------------- */

json_t *alert_json_time(uint64_t ms)
{
	char t[32];

	if (ms == 0)
		return json_null();
	clock_fmt_iso8601(t, ms);
	return json_string(t);
}

json_t *alert_json_num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

void alert_fingerprint(const char *rule, const char *key, char out[17])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const char *parts[2] = {rule, key};

	for (int i = 0; i < 2; i++) {
		for (const unsigned char *p = (const void *)parts[i]; *p; p++) {
			h ^= *p;
			h *= 0x100000001b3ULL;
		}
		h ^= 0xff; /* separator: ("ab","c") differs from ("a","bc") */
		h *= 0x100000001b3ULL;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}
