/*
 * test_retention.c - which archives prune keeps (restic's --keep-* rules),
 * through backup/backup_int.h.
 *
 * The main case plays a synthetic timeline: a run every hour for 100 days,
 * with the retention applied after each run as the daemon does, and then
 * compares the survivors with the set worked out by hand from the rules.
 * Smaller cases pin the corners: days without archives do not use up a
 * count, the oldest archive is kept while a rule has count left, ISO weeks
 * across a new year, hourly buckets, and "every count 0 keeps everything".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "backup/backup_int.h"

#define H (3600 * 1000LL)
#define D (24 * H)

/* Unix ms of "YYYY-MM-DD HH:MM" UTC. */
static int64_t at(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_int_equal(sscanf(s, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min),
			 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void fmt(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%d %H:%M", &tm);
}

/* The kept times (sorted) must be exactly want[] (sorted here). */
static void expect_set(int64_t *got, size_t ngot, const char *const *want,
		       size_t nwant)
{
	int64_t *w = calloc(nwant + 1, sizeof(*w));
	char a[32], b[32];

	for (size_t i = 0; i < nwant; i++)
		w[i] = at(want[i]);
	qsort(w, nwant, sizeof(*w), cmp64);
	qsort(got, ngot, sizeof(*got), cmp64);
	for (size_t i = 0; i < ngot && i < nwant; i++) {
		fmt(got[i], a);
		fmt(w[i], b);
		if (got[i] != w[i])
			fail_msg("kept #%zu: got %s, want %s", i, a, b);
	}
	if (ngot != nwant)
		fail_msg("kept %zu archives, want %zu", ngot, nwant);
	free(w);
}

/* Applies r to times and keeps the survivors in place; returns their
 * number. */
static size_t prune(const struct cfg_retention *r, int64_t *times, size_t n)
{
	unsigned *why = calloc(n + 1, sizeof(*why));
	size_t k = 0;

	retention_apply(r, times, n, why);
	for (size_t i = 0; i < n; i++)
		if (why[i])
			times[k++] = times[i];
	free(why);
	return k;
}

static void test_hourly_runs_for_100_days(void **state)
{
	static const char *const want[] = {
		/* keep_last 3 */
		"2026-04-10 23:30", "2026-04-10 22:30", "2026-04-10 21:30",
		/* keep_daily 7: the newest of each of the last 7 days */
		"2026-04-09 23:30", "2026-04-08 23:30", "2026-04-07 23:30",
		"2026-04-06 23:30", "2026-04-05 23:30", "2026-04-04 23:30",
		/* keep_weekly 4: ISO weeks from Mondays 04-06, 03-30 (its
		 * newest, 04-05, is kept already), 03-23 and 03-16 */
		"2026-03-29 23:30", "2026-03-22 23:30",
		/* keep_monthly 6: April (kept), March, February, January, and
		 * with two counts left the oldest archive of all */
		"2026-03-31 23:30", "2026-02-28 23:30", "2026-01-31 23:30",
		"2026-01-01 00:30",
	};
	struct cfg_retention r = {.keep_last = 3, .keep_daily = 7,
				  .keep_weekly = 4, .keep_monthly = 6};
	int64_t live[64], t0 = at("2026-01-01 00:30");
	size_t n = 0;

	(void)state;
	for (int i = 0; i < 100 * 24; i++) {
		live[n++] = t0 + i * H;
		n = prune(&r, live, n);
		assert_true(n < 60);
	}
	expect_set(live, n, want, sizeof(want) / sizeof(want[0]));
}

static void test_once_equals_incremental(void **state)
{
	/* Pruning once at the end keeps the same set as after every run. */
	struct cfg_retention r = {.keep_last = 2, .keep_daily = 5,
				  .keep_weekly = 3, .keep_monthly = 2};
	int64_t *all = calloc(2000, sizeof(*all)), live[64];
	int64_t t0 = at("2026-05-03 07:10");
	size_t n = 0, m = 0;

	(void)state;
	for (int i = 0; i < 1500; i++) {
		/* Irregular: every 2 h 7 min, skipping a stretch. */
		int64_t t = t0 + i * (2 * H + 7 * 60 * 1000);

		if (i > 300 && i < 420)
			continue;
		all[m++] = t;
		live[n++] = t;
		n = prune(&r, live, n);
	}
	m = prune(&r, all, m);
	qsort(live, n, sizeof(*live), cmp64);
	qsort(all, m, sizeof(*all), cmp64);
	assert_int_equal(n, m);
	assert_memory_equal(live, all, n * sizeof(*live));
	free(all);
}

static void test_days_without_archives_do_not_count(void **state)
{
	static const char *const want[] = {"2026-06-10 18:00", "2026-06-09 18:00",
					   "2026-06-05 18:00"};
	struct cfg_retention r = {.keep_daily = 3};
	int64_t t[] = {at("2026-06-01 06:00"), at("2026-06-01 18:00"),
		       at("2026-06-05 06:00"), at("2026-06-05 18:00"),
		       at("2026-06-09 06:00"), at("2026-06-09 18:00"),
		       at("2026-06-10 06:00"), at("2026-06-10 18:00")};

	(void)state;
	expect_set(t, prune(&r, t, 8), want, 3);
}

static void test_oldest_kept_while_counts_left(void **state)
{
	/* Three days of archives, keep_daily 5: the newest of each day, and
	 * the oldest one as the rule still has two counts. */
	static const char *const want[] = {"2026-06-03 20:00", "2026-06-02 20:00",
					   "2026-06-01 20:00", "2026-06-01 08:00"};
	struct cfg_retention r = {.keep_daily = 5};
	int64_t t[] = {at("2026-06-01 08:00"), at("2026-06-01 14:00"),
		       at("2026-06-01 20:00"), at("2026-06-02 08:00"),
		       at("2026-06-02 20:00"), at("2026-06-03 08:00"),
		       at("2026-06-03 20:00")};

	(void)state;
	expect_set(t, prune(&r, t, 7), want, 4);
}

static void test_iso_weeks_across_new_year(void **state)
{
	/* 2026-12-28 (Mon) .. 2027-01-03 (Sun) is ISO week 2026-W53. */
	static const char *const want[] = {"2027-01-04 12:00", "2027-01-01 12:00"};
	struct cfg_retention r = {.keep_weekly = 2};
	int64_t t[] = {at("2026-12-30 12:00"), at("2026-12-31 12:00"),
		       at("2027-01-01 12:00"), at("2027-01-04 12:00")};

	(void)state;
	expect_set(t, prune(&r, t, 4), want, 2);
}

static void test_hourly_and_last(void **state)
{
	static const char *const want[] = {
		"2026-06-01 23:40", "2026-06-01 23:20", /* last 2 */
		"2026-06-01 22:40", "2026-06-01 21:40", "2026-06-01 20:40",
	};
	struct cfg_retention r = {.keep_last = 2, .keep_hourly = 4};
	int64_t t[72];

	(void)state;
	for (int i = 0; i < 72; i++)
		t[i] = at("2026-06-01 00:00") + i * 20 * 60 * 1000;
	expect_set(t, prune(&r, t, 72), want, 5);
}

static void test_reasons_and_no_policy(void **state)
{
	struct cfg_retention none = {0}, r = {.keep_last = 1, .keep_daily = 1};
	int64_t t[] = {at("2026-06-01 08:00"), at("2026-06-02 08:00")};
	unsigned why[2];
	char s[64];

	(void)state;
	retention_apply(&none, t, 2, why);
	assert_int_equal(why[0], KEEP_ALL);
	assert_int_equal(why[1], KEEP_ALL);
	retention_apply(&r, t, 2, why);
	assert_int_equal(why[1], KEEP_LAST | KEEP_DAILY);
	assert_int_equal(why[0], 0);
	retention_reason_str(why[1], s, sizeof(s));
	assert_string_equal(s, "last,daily");
	/* Unsorted input: the decision follows the times, not the order. */
	{
		int64_t u[] = {t[1], t[0]};

		retention_apply(&r, u, 2, why);
		assert_int_equal(why[0], KEEP_LAST | KEEP_DAILY);
		assert_int_equal(why[1], 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hourly_runs_for_100_days),
		cmocka_unit_test(test_once_equals_incremental),
		cmocka_unit_test(test_days_without_archives_do_not_count),
		cmocka_unit_test(test_oldest_kept_while_counts_left),
		cmocka_unit_test(test_iso_weeks_across_new_year),
		cmocka_unit_test(test_hourly_and_last),
		cmocka_unit_test(test_reasons_and_no_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
