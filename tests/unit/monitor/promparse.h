/*
 * promparse.h - a strict reader of Prometheus text format 0.0.4, for the
 * monitor tests only (not a test file itself: it is included by them).
 *
 * It parses what it is given and checks what the format and Prometheus
 * require of an exposition: HELP and TYPE at most once per name and before
 * its samples, the samples of a name in one block, known escapes only,
 * values that parse as floats, and for histograms per label set: _bucket
 * lines with ascending `le` ending in +Inf, cumulative counts that never
 * go down, _count equal to the +Inf bucket, and a _sum. Every line must
 * end with a newline. Timestamps are refused (we never write them).
 */
#ifndef SK_TESTS_MONITOR_PROMPARSE_H
#define SK_TESTS_MONITOR_PROMPARSE_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PP_LABELS 24

struct pp_label {
	char *name;
	char *value;
};

struct pp_sample {
	char *name;
	char *family; /* the HELP/TYPE name it belongs to */
	size_t nlabels;
	struct pp_label labels[PP_LABELS];
	double value;
};

struct pp_family {
	char *name;
	char *help;		/* unescaped; NULL if none */
	char *type;		/* NULL if none */
	size_t first, nsamples; /* its block of samples */
};

struct pp_doc {
	struct pp_sample *s;
	size_t ns, caps;
	struct pp_family *f;
	size_t nf, capf;
	char err[256];
};

static inline void pp_free(struct pp_doc *d)
{
	for (size_t i = 0; i < d->ns; i++) {
		free(d->s[i].name);
		for (size_t k = 0; k < d->s[i].nlabels; k++) {
			free(d->s[i].labels[k].name);
			free(d->s[i].labels[k].value);
		}
	}
	for (size_t i = 0; i < d->nf; i++) {
		free(d->f[i].name);
		free(d->f[i].help);
		free(d->f[i].type);
	}
	free(d->s);
	free(d->f);
	memset(d, 0, sizeof(*d));
}

static inline struct pp_family *pp_family_get(struct pp_doc *d,
					      const char *name, bool create)
{
	for (size_t i = 0; i < d->nf; i++)
		if (strcmp(d->f[i].name, name) == 0)
			return &d->f[i];
	if (!create)
		return NULL;
	if (d->nf == d->capf) {
		d->capf = d->capf ? d->capf * 2 : 16;
		d->f = realloc(d->f, d->capf * sizeof(*d->f));
	}
	memset(&d->f[d->nf], 0, sizeof(d->f[0]));
	d->f[d->nf].name = strdup(name);
	return &d->f[d->nf++];
}

static inline bool pp_name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':' || (!first && c >= '0' && c <= '9');
}

/* Reads a metric or label name at *p. */
static inline char *pp_name(const char **p)
{
	const char *s = *p;
	size_t n = 0;
	char *r;

	while (pp_name_char(s[n], n == 0))
		n++;
	if (!n)
		return NULL;
	r = strndup(s, n);
	*p = s + n;
	return r;
}

static inline bool pp_value(const char *s, double *v)
{
	char *end;

	if (strcmp(s, "NaN") == 0) {
		*v = NAN;
		return true;
	}
	if (strcmp(s, "+Inf") == 0) {
		*v = INFINITY;
		return true;
	}
	if (strcmp(s, "-Inf") == 0) {
		*v = -INFINITY;
		return true;
	}
	if (!*s || *s == ' ')
		return false;
	*v = strtod(s, &end);
	return *end == '\0';
}

/* The family a sample name belongs to: itself, or a histogram's base. */
static inline struct pp_family *pp_owner(struct pp_doc *d, const char *name)
{
	static const char *const suf[] = {"_bucket", "_sum", "_count"};
	struct pp_family *f = pp_family_get(d, name, false);

	if (f && f->type && strcmp(f->type, "histogram") != 0)
		return f;
	for (int k = 0; k < 3; k++) {
		size_t nl = strlen(name), sl = strlen(suf[k]);
		char base[256];

		if (nl <= sl || strcmp(name + nl - sl, suf[k]) != 0 ||
		    nl - sl >= sizeof(base))
			continue;
		memcpy(base, name, nl - sl);
		base[nl - sl] = '\0';
		f = pp_family_get(d, base, false);
		if (f && f->type && strcmp(f->type, "histogram") == 0)
			return f;
	}
	return pp_family_get(d, name, false);
}

static inline const char *pp_label(const struct pp_sample *s, const char *n)
{
	for (size_t k = 0; k < s->nlabels; k++)
		if (strcmp(s->labels[k].name, n) == 0)
			return s->labels[k].value;
	return NULL;
}

/* Whether a and b have the same labels, not counting `le`. */
static inline bool pp_same_series(const struct pp_sample *a,
				  const struct pp_sample *b)
{
	size_t na = 0, nb = 0;

	for (size_t k = 0; k < a->nlabels; k++) {
		const char *v;

		if (strcmp(a->labels[k].name, "le") == 0)
			continue;
		na++;
		v = pp_label(b, a->labels[k].name);
		if (!v || strcmp(v, a->labels[k].value) != 0)
			return false;
	}
	for (size_t k = 0; k < b->nlabels; k++)
		if (strcmp(b->labels[k].name, "le") != 0)
			nb++;
	return na == nb;
}

#define PP_FAIL(...)                                                           \
	do {                                                                   \
		snprintf(d->err, sizeof(d->err), __VA_ARGS__);                 \
		goto fail;                                                     \
	} while (0)

static inline bool pp_check_histograms(struct pp_doc *d)
{
	for (size_t fi = 0; fi < d->nf; fi++) {
		struct pp_family *f = &d->f[fi];

		if (!f->type || strcmp(f->type, "histogram") != 0)
			continue;
		for (size_t i = f->first; i < f->first + f->nsamples; i++) {
			const struct pp_sample *s = &d->s[i], *cnt = NULL;
			double last_le = -INFINITY, last_c = 0, inf = -1;
			bool sum = false, seen = false;
			size_t bl = strlen(f->name);

			/* Start of a series: its first _bucket line. */
			if (strcmp(s->name + bl, "_bucket") != 0)
				continue;
			for (size_t j = f->first; j < i; j++)
				if (pp_same_series(&d->s[j], s))
					seen = true;
			if (seen)
				continue;
			for (size_t j = i; j < f->first + f->nsamples; j++) {
				const struct pp_sample *t = &d->s[j];
				const char *le;
				double lev;

				if (!pp_same_series(t, s))
					continue;
				if (strcmp(t->name + bl, "_sum") == 0) {
					sum = true;
					continue;
				}
				if (strcmp(t->name + bl, "_count") == 0) {
					cnt = t;
					continue;
				}
				le = pp_label(t, "le");
				if (!le || !pp_value(le, &lev))
					PP_FAIL("%s: bucket without le",
						f->name);
				if (!(lev > last_le))
					PP_FAIL("%s: le not ascending",
						f->name);
				if (t->value < last_c)
					PP_FAIL("%s: buckets not cumulative",
						f->name);
				last_le = lev;
				last_c = t->value;
				if (isinf(lev))
					inf = t->value;
			}
			if (inf < 0)
				PP_FAIL("%s: no +Inf bucket", f->name);
			if (!cnt || cnt->value != inf)
				PP_FAIL("%s: _count != +Inf bucket", f->name);
			if (!sum)
				PP_FAIL("%s: no _sum", f->name);
		}
	}
	return true;
fail:
	return false;
}

/* Parses text into d. Returns true, or false with d->err set. */
static inline bool pp_parse(const char *text, struct pp_doc *d)
{
	const char *p = text;
	struct pp_family *cur = NULL;
	int lineno = 0;

	memset(d, 0, sizeof(*d));
	if (*text && text[strlen(text) - 1] != '\n')
		PP_FAIL("no final newline");
	while (*p) {
		const char *eol = strchr(p, '\n');
		char *line = strndup(p, (size_t)(eol - p));
		const char *q = line;

		lineno++;
		p = eol + 1;
		if (line[0] == '#') {
			bool help = strncmp(line, "# HELP ", 7) == 0;
			bool type = strncmp(line, "# TYPE ", 7) == 0;
			struct pp_family *f;
			char *name;

			if (!help && !type) {
				free(line);
				continue;
			}
			q = line + 7;
			name = pp_name(&q);
			if (!name || (*q != ' ' && *q != '\0')) {
				free(name);
				free(line);
				PP_FAIL("line %d: bad # line", lineno);
			}
			if (*q == ' ')
				q++;
			f = pp_family_get(d, name, true);
			free(name);
			if (f->nsamples) {
				free(line);
				PP_FAIL("line %d: HELP/TYPE after samples",
					lineno);
			}
			if (help) {
				char *h = malloc(strlen(q) + 1), *w = h;

				if (f->help) {
					free(h);
					free(line);
					PP_FAIL("line %d: second HELP", lineno);
				}
				for (; *q; q++) {
					if (*q == '\\' && q[1] == 'n') {
						*w++ = '\n';
						q++;
					} else if (*q == '\\' && q[1] == '\\') {
						*w++ = '\\';
						q++;
					} else {
						*w++ = *q;
					}
				}
				*w = '\0';
				f->help = h;
			} else {
				static const char *const types[] = {
					"counter", "gauge", "histogram",
					"summary", "untyped"};
				bool ok = false;

				for (int k = 0; k < 5; k++)
					ok |= strcmp(q, types[k]) == 0;
				if (f->type || !ok) {
					free(line);
					PP_FAIL("line %d: bad or second TYPE",
						lineno);
				}
				f->type = strdup(q);
			}
			free(line);
			continue;
		}
		if (!*line) {
			free(line);
			continue;
		}
		{
			struct pp_sample s = {0};
			struct pp_family *f;

			s.name = pp_name(&q);
			if (!s.name) {
				free(line);
				PP_FAIL("line %d: no metric name", lineno);
			}
			if (*q == '{') {
				q++;
				while (*q != '}') {
					struct pp_label *l;
					char *v, *w;

					if (s.nlabels == PP_LABELS)
						break;
					l = &s.labels[s.nlabels];
					l->name = pp_name(&q);
					if (!l->name || q[0] != '=' ||
					    q[1] != '"')
						break;
					s.nlabels++;
					q += 2;
					v = w = malloc(strlen(q) + 1);
					while (*q && *q != '"') {
						if (*q == '\\') {
							if (q[1] == 'n')
								*w++ = '\n';
							else if (q[1] == '\\' ||
								 q[1] == '"')
								*w++ = q[1];
							else
								break;
							q += 2;
							continue;
						}
						*w++ = *q++;
					}
					*w = '\0';
					l->value = v;
					if (*q != '"')
						break;
					q++;
					if (*q == ',')
						q++;
					else if (*q != '}')
						break;
				}
				if (*q != '}') {
					d->ns++; /* so pp_free frees s */
					if (d->ns > d->caps) {
						d->caps = d->ns * 2;
						d->s = realloc(
							d->s,
							d->caps *
								sizeof(*d->s));
					}
					d->s[d->ns - 1] = s;
					free(line);
					PP_FAIL("line %d: bad labels", lineno);
				}
				q++;
			}
			if (*q != ' ' || !pp_value(q + 1, &s.value)) {
				if (d->ns == d->caps) {
					d->caps = d->caps ? d->caps * 2 : 64;
					d->s = realloc(d->s,
						       d->caps * sizeof(*d->s));
				}
				d->s[d->ns++] = s;
				free(line);
				PP_FAIL("line %d: bad value", lineno);
			}
			free(line);
			if (d->ns == d->caps) {
				d->caps = d->caps ? d->caps * 2 : 64;
				d->s = realloc(d->s, d->caps * sizeof(*d->s));
			}
			d->s[d->ns] = s;
			f = pp_owner(d, s.name);
			if (!f)
				f = pp_family_get(d, s.name, true);
			d->s[d->ns].family = f->name;
			if (f != cur && f->nsamples)
				PP_FAIL("line %d: samples of %s split", lineno,
					f->name);
			if (!f->nsamples)
				f->first = d->ns;
			f->nsamples++;
			cur = f;
			d->ns++;
		}
	}
	return pp_check_histograms(d);
fail:
	return false;
}

#undef PP_FAIL

/* The sample named name whose labels are exactly the NULL-terminated
 * name/value pairs that follow; NULL if there is none. */
static inline const struct pp_sample *pp_find(const struct pp_doc *d,
					      const char *name, ...)
{
	for (size_t i = 0; i < d->ns; i++) {
		const struct pp_sample *s = &d->s[i];
		size_t n = 0;
		bool ok = true;
		va_list ap;
		const char *k;

		if (strcmp(s->name, name) != 0)
			continue;
		va_start(ap, name);
		while ((k = va_arg(ap, const char *))) {
			const char *v = va_arg(ap, const char *), *sv;

			n++;
			sv = pp_label(s, k);
			if (!sv || strcmp(sv, v) != 0)
				ok = false;
		}
		va_end(ap);
		if (ok && n == s->nlabels)
			return s;
	}
	return NULL;
}

#endif
