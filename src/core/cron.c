/*
 * cron.c - cron schedule expressions (see cron.h).
 *
 * Each field becomes a bit set; cron_next() walks forward from the next
 * minute, skipping whole months, days and hours that cannot match, so
 * finding the next run is a few dozen steps even for sparse schedules.
 * Everything is UTC: a schedule does not move when the host's time zone
 * or daylight saving time changes.
 */
#include "core/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const month_names[] = {"jan", "feb", "mar", "apr",
					  "may", "jun", "jul", "aug",
					  "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed",
					"thu", "fri", "sat"};

struct field_spec {
	const char *name;
	int lo, hi;
	const char *const *names; /* value lo + i */
	int nnames;
};

static const struct field_spec specs[5] = {
	{"minute", 0, 59, NULL, 0},
	{"hour", 0, 23, NULL, 0},
	{"day of month", 1, 31, NULL, 0},
	{"month", 1, 12, month_names, 12},
	{"day of week", 0, 7, day_names, 7},
};

/* A number or a name at *p; advances *p. Returns -1 if neither. */
static int value(const struct field_spec *f, const char **p)
{
	const char *s = *p;
	char *end;
	long v;

	if (isdigit((unsigned char)*s)) {
		v = strtol(s, &end, 10);
		if (end - s > 2)
			return -1;
		*p = end;
		return (int)v;
	}
	for (int i = 0; i < f->nnames; i++) {
		if (strncasecmp(s, f->names[i], 3) == 0 &&
		    !isalpha((unsigned char)s[3])) {
			*p = s + 3;
			return f->lo + i;
		}
	}
	return -1;
}

/* Parses one field (text [s, e)) into bits. */
static int parse_field(int idx, const char *s, const char *e, uint64_t *bits,
		       int *star, char *why, size_t whylen)
{
	const struct field_spec *f = &specs[idx];
	const char *p = s;

	*bits = 0;
	*star = (e - s == 1 && s[0] == '*');
	while (p < e) {
		int lo, hi, step = 1;

		if (*p == '*') {
			lo = f->lo;
			hi = f->hi == 7 ? 6 : f->hi;
			p++;
		} else {
			lo = value(f, &p);
			if (lo < 0)
				goto bad;
			hi = lo;
			if (p < e && *p == '-') {
				p++;
				hi = value(f, &p);
				if (hi < 0)
					goto bad;
			}
		}
		if (p < e && *p == '/') {
			char *end;

			p++;
			step = (int)strtol(p, &end, 10);
			if (end == p || step < 1 || step > f->hi)
				goto bad;
			p = end;
		}
		if (lo < f->lo || lo > f->hi || hi < f->lo || hi > f->hi) {
			snprintf(why, whylen, "field %d (%s): %d is out of range %d-%d",
				 idx + 1, f->name, lo < f->lo || lo > f->hi ? lo : hi,
				 f->lo, f->hi);
			return -1;
		}
		if (hi < lo) {
			snprintf(why, whylen, "field %d (%s): range %d-%d is backwards",
				 idx + 1, f->name, lo, hi);
			return -1;
		}
		for (int v = lo; v <= hi; v += step)
			*bits |= 1ull << (idx == 4 && v == 7 ? 0 : v);
		if (p < e) {
			if (*p != ',')
				goto bad;
			p++;
			if (p == e)
				goto bad;
		}
	}
	return 0;
bad:
	snprintf(why, whylen, "field %d (%s): cannot read \"%.*s\"", idx + 1,
		 f->name, (int)(e - s), s);
	return -1;
}

int cron_parse(const char *expr, struct cron *out, char *why, size_t whylen)
{
	static const struct {
		const char *name;
		const char *expr;
	} macros[] = {
		{"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},
		{"@midnight", "0 0 * * *"}, {"@weekly", "0 0 * * 0"},
		{"@monthly", "0 0 1 * *"},  {"@yearly", "0 0 1 1 *"},
		{"@annually", "0 0 1 1 *"},
	};
	const char *p = expr, *fs[5], *fe[5];
	uint64_t bits[5];
	int star[5], n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '@') {
		/* Trailing blanks are as harmless here as between fields. */
		size_t len = strcspn(p, " \t");

		if (p[len + strspn(p + len, " \t")] == '\0') {
			for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
				if (strlen(macros[i].name) == len &&
				    strncmp(p, macros[i].name, len) == 0)
					return cron_parse(macros[i].expr, out, why,
							  whylen);
		}
		snprintf(why, whylen, "unknown shorthand \"%s\"", p);
		return -1;
	}
	while (*p) {
		if (n == 5) {
			snprintf(why, whylen, "expected 5 fields "
					      "(minute hour day month weekday), got more");
			return -1;
		}
		fs[n] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		fe[n++] = p;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (n != 5) {
		snprintf(why, whylen,
			 "expected 5 fields (minute hour day month weekday), got %d",
			 n);
		return -1;
	}
	for (int i = 0; i < 5; i++)
		if (parse_field(i, fs[i], fe[i], &bits[i], &star[i], why, whylen) < 0)
			return -1;
	memset(out, 0, sizeof(*out));
	out->minutes = bits[0];
	out->hours = (uint32_t)bits[1];
	out->mdays = (uint32_t)bits[2];
	out->months = (uint16_t)bits[3];
	out->wdays = (uint8_t)bits[4];
	out->mday_star = (uint8_t)star[2];
	out->wday_star = (uint8_t)star[4];
	return 0;
}

static int day_matches(const struct cron *c, const struct tm *tm)
{
	int md = (c->mdays >> tm->tm_mday) & 1;
	int wd = (c->wdays >> tm->tm_wday) & 1;

	if (c->mday_star && c->wday_star)
		return 1;
	if (c->mday_star)
		return wd;
	if (c->wday_star)
		return md;
	return md || wd; /* both restricted: either (Vixie cron) */
}

int64_t cron_next(const struct cron *c, int64_t t)
{
	time_t tt = (time_t)(t - (t % 60) + 60);
	int64_t limit = t + 5ll * 366 * 86400;
	struct tm tm;

	gmtime_r(&tt, &tm);
	while ((int64_t)tt <= limit) {
		if (!((c->months >> (tm.tm_mon + 1)) & 1)) {
			/* Next month, first day, 00:00. */
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = 0;
			tm.tm_min = 0;
		} else if (!day_matches(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = 0;
			tm.tm_min = 0;
		} else if (!((c->hours >> tm.tm_hour) & 1)) {
			tm.tm_hour++;
			tm.tm_min = 0;
		} else if (!((c->minutes >> tm.tm_min) & 1)) {
			tm.tm_min++;
		} else {
			return (int64_t)tt;
		}
		tm.tm_sec = 0;
		tm.tm_isdst = 0;
		tt = timegm(&tm);
		gmtime_r(&tt, &tm); /* normalise */
	}
	return 0;
}
