/*
 * retention.c - which archives a prune keeps.
 *
 * The rules mean what restic's `forget --keep-last/-hourly/-daily/-weekly/
 * -monthly` mean (restic 0.16 and later):
 *
 *   - archives are considered newest first;
 *   - keep_last N keeps the N newest;
 *   - keep_daily N (hourly, weekly, monthly alike) walks the archives
 *     newest first and keeps an archive whenever its day differs from the
 *     day of the archive this rule kept last, until N are kept: the newest
 *     archive of each of the N most recent days that have archives (days
 *     without archives do not use up the count);
 *   - while a rule still has count left, it also keeps the oldest archive,
 *     so that a young repository keeps its longest history;
 *   - an archive is kept when any rule keeps it.
 *
 * Periods are UTC hours, UTC days, ISO 8601 weeks (Monday first, the week
 * of 4 January is week 1) and UTC months; a host's time zone or daylight
 * saving time never changes what is kept. With every count at 0 nothing
 * is removed (restic refuses to forget with an empty policy too).
 *
 * Pure: no clock, no files. The caller passes the creation times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/backup_int.h"

enum { R_LAST, R_HOURLY, R_DAILY, R_WEEKLY, R_MONTHLY, R_N };

static int64_t floordiv(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* ISO 8601 year * 100 + week of t. */
static int64_t iso_week(int64_t ms)
{
	time_t t = (time_t)floordiv(ms, 1000);
	struct tm tm;
	int year, wday, d;

	gmtime_r(&t, &tm);
	year = tm.tm_year + 1900;
	wday = (tm.tm_wday + 6) % 7; /* Monday = 0 */
	/* Day of the year of this week's Thursday: it decides the year. */
	d = tm.tm_yday - wday + 3;
	if (d < 0) {
		year--;
		d += 365 + leap(year);
	} else if (d >= 365 + leap(year)) {
		d -= 365 + leap(year);
		year++;
	}
	return (int64_t)year * 100 + d / 7 + 1;
}

static int64_t month_of(int64_t ms)
{
	time_t t = (time_t)floordiv(ms, 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	return (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

static int64_t bucket(int rule, int64_t ms, size_t pos)
{
	switch (rule) {
	case R_LAST:
		return (int64_t)pos;
	case R_HOURLY:
		return floordiv(ms, 3600 * 1000);
	case R_DAILY:
		return floordiv(ms, 86400 * 1000);
	case R_WEEKLY:
		return iso_week(ms);
	default:
		return month_of(ms);
	}
}

struct order {
	int64_t t;
	size_t i;
};

static int newest_first(const void *a, const void *b)
{
	const struct order *x = a, *y = b;

	if (x->t != y->t)
		return x->t > y->t ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

void retention_apply(const struct cfg_retention *r, const int64_t *times_ms,
		     size_t n, unsigned *reasons)
{
	uint32_t count[R_N] = {r->keep_last, r->keep_hourly, r->keep_daily,
			       r->keep_weekly, r->keep_monthly};
	int64_t last[R_N];
	int have[R_N] = {0};
	struct order *o;

	if (n == 0)
		return;
	if (!count[R_LAST] && !count[R_HOURLY] && !count[R_DAILY] &&
	    !count[R_WEEKLY] && !count[R_MONTHLY]) {
		for (size_t i = 0; i < n; i++)
			reasons[i] = KEEP_ALL;
		return;
	}
	o = malloc(n * sizeof(*o));
	SK_ASSERT(o != NULL);
	for (size_t i = 0; i < n; i++) {
		o[i].t = times_ms[i];
		o[i].i = i;
		reasons[i] = 0;
	}
	qsort(o, n, sizeof(*o), newest_first);
	for (size_t pos = 0; pos < n; pos++) {
		for (int rule = 0; rule < R_N; rule++) {
			int64_t v;

			if (count[rule] == 0)
				continue;
			v = bucket(rule, o[pos].t, pos);
			if (have[rule] && v == last[rule] && pos != n - 1)
				continue;
			reasons[o[pos].i] |= 1u << rule;
			last[rule] = v;
			have[rule] = 1;
			count[rule]--;
		}
	}
	free(o);
}

void retention_reason_str(unsigned reason, char *out, size_t outlen)
{
	static const char *const names[] = {"last", "hourly", "daily",
					    "weekly", "monthly", "no-policy"};
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < 6; i++) {
		if (!(reason & (1u << i)))
			continue;
		len += (size_t)snprintf(out + len, len < outlen ? outlen - len : 0,
					"%s%s", len ? "," : "", names[i]);
		if (len >= outlen)
			break;
	}
}
