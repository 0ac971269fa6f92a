/*
 * test_cron.c - cron expressions, through core/cron.h.
 *
 * Next-run computation is checked against dates worked out by hand (all
 * UTC): month ends and leap years, the Vixie-cron rule that a restricted
 * day-of-month and a restricted day-of-week match when either does, the
 * shorthands, steps, ranges, names and Sunday as 0 or 7; and the parser's
 * refusals, each with the field it names.
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

#include "core/cron.h"

/* Unix seconds of "YYYY-MM-DD HH:MM" UTC. */
static int64_t at(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_int_equal(sscanf(s, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min),
			 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static void fmt(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%d %H:%M", &tm);
}

/* cron_next(expr, from) must be want (or 0 for "none"). */
static void next_is(const char *expr, const char *from, const char *want)
{
	struct cron c;
	char why[128], got[32];
	int64_t t;

	if (cron_parse(expr, &c, why, sizeof(why)) != 0)
		fail_msg("\"%s\" did not parse: %s", expr, why);
	t = cron_next(&c, at(from));
	if (want == NULL) {
		if (t != 0) {
			fmt(t, got);
			fail_msg("\"%s\" from %s: want none, got %s", expr, from, got);
		}
		return;
	}
	fmt(t, got);
	if (t != at(want))
		fail_msg("\"%s\" from %s: want %s, got %s", expr, from, want,
			 t ? got : "none");
}

static void parse_fails(const char *expr, const char *why_has)
{
	struct cron c;
	char why[128] = "";

	if (cron_parse(expr, &c, why, sizeof(why)) == 0)
		fail_msg("\"%s\" parsed but should not", expr);
	if (strstr(why, why_has) == NULL)
		fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", expr, why, why_has);
}

static void test_every_minute_and_strictly_after(void **state)
{
	(void)state;
	next_is("* * * * *", "2026-03-10 12:00", "2026-03-10 12:01");
	next_is("* * * * *", "2026-12-31 23:59", "2027-01-01 00:00");
	/* A time in the middle of a minute still goes to the next one. */
	{
		struct cron c;
		char why[64];

		assert_int_equal(cron_parse("* * * * *", &c, why, sizeof(why)), 0);
		assert_int_equal(cron_next(&c, at("2026-03-10 12:00") + 59),
				 at("2026-03-10 12:01"));
	}
}

static void test_daily_and_shorthands(void **state)
{
	(void)state;
	next_is("0 3 * * *", "2026-03-10 02:59", "2026-03-10 03:00");
	next_is("0 3 * * *", "2026-03-10 03:00", "2026-03-11 03:00");
	next_is("@daily", "2026-03-10 00:00", "2026-03-11 00:00");
	next_is("@midnight", "2026-03-10 12:34", "2026-03-11 00:00");
	next_is("@hourly", "2026-03-10 12:34", "2026-03-10 13:00");
	/* 2026-03-10 is a Tuesday; the next Sunday is the 15th. */
	next_is("@weekly", "2026-03-10 12:34", "2026-03-15 00:00");
	next_is("@monthly", "2026-03-10 12:34", "2026-04-01 00:00");
	next_is("@yearly", "2026-03-10 12:34", "2027-01-01 00:00");
	next_is("@annually", "2026-12-31 23:59", "2027-01-01 00:00");
}

/* Fixed bug: "@daily " (a trailing blank, easy to leave in YAML) was an
 * "unknown shorthand" although blanks are fine everywhere else. */
static void test_shorthand_with_blanks_around(void **state)
{
	(void)state;
	next_is("  @daily", "2026-03-10 00:00", "2026-03-11 00:00");
	next_is("@daily  ", "2026-03-10 00:00", "2026-03-11 00:00");
	next_is("\t@hourly\t", "2026-03-10 12:34", "2026-03-10 13:00");
	parse_fails("@daily x", "unknown shorthand");
	parse_fails("@dailyx", "unknown shorthand");
}

static void test_month_ends_and_leap_years(void **state)
{
	(void)state;
	/* The 31st skips the months without one. */
	next_is("0 0 31 * *", "2026-01-31 00:00", "2026-03-31 00:00");
	next_is("0 0 31 * *", "2026-04-01 00:00", "2026-05-31 00:00");
	next_is("30 23 30 * *", "2026-01-30 23:30", "2026-03-30 23:30");
	/* Leap days: 2028 is the next leap year after 2026. */
	next_is("0 12 29 2 *", "2026-01-01 00:00", "2028-02-29 12:00");
	next_is("0 12 29 2 *", "2028-02-29 12:00", "2032-02-29 12:00");
	/* Never: 30 February. */
	next_is("0 0 30 2 *", "2026-01-01 00:00", NULL);
	/* Crossing the end of a year from a month-end. */
	next_is("15 6 1 * *", "2026-12-31 23:00", "2027-01-01 06:15");
	next_is("0 0 28-31 2 *", "2026-02-27 10:00", "2026-02-28 00:00");
	next_is("0 0 28-31 2 *", "2026-02-28 00:00", "2027-02-28 00:00");
}

static void test_weekday_monthday_or_rule(void **state)
{
	(void)state;
	/* Both restricted: the 13th or any Friday. 2026-03-10 is a Tuesday;
	 * Friday the 13th; then Friday the 20th. */
	next_is("0 0 13 * 5", "2026-03-10 00:00", "2026-03-13 00:00");
	next_is("0 0 13 * 5", "2026-03-13 00:00", "2026-03-20 00:00");
	/* The 1st or a Monday: 2026-03-16 is a Monday, before April 1st. */
	next_is("0 0 1 * mon", "2026-03-10 00:00", "2026-03-16 00:00");
	next_is("0 0 1 * mon", "2026-03-30 00:00", "2026-04-01 00:00");
	/* Only the weekday restricted: just Fridays. */
	next_is("0 0 * * 5", "2026-03-13 00:00", "2026-03-20 00:00");
	/* Only the day restricted: just the 13th. */
	next_is("0 0 13 * *", "2026-03-13 00:00", "2026-04-13 00:00");
}

static void test_fields_ranges_steps_names(void **state)
{
	(void)state;
	next_is("*/15 * * * *", "2026-03-10 12:01", "2026-03-10 12:15");
	next_is("*/15 * * * *", "2026-03-10 12:45", "2026-03-10 13:00");
	next_is("10-20/5 * * * *", "2026-03-10 12:16", "2026-03-10 12:20");
	next_is("10-20/5 * * * *", "2026-03-10 12:20", "2026-03-10 13:10");
	next_is("0 8,12,18 * * *", "2026-03-10 12:00", "2026-03-10 18:00");
	next_is("0 9 * * mon-fri", "2026-03-13 09:00", "2026-03-16 09:00");
	next_is("0 9 * * MON-FRI", "2026-03-13 09:00", "2026-03-16 09:00");
	next_is("0 0 1 jan,jul *", "2026-03-10 00:00", "2026-07-01 00:00");
	/* Sunday is 0 and 7. */
	next_is("0 0 * * 7", "2026-03-10 00:00", "2026-03-15 00:00");
	next_is("0 0 * * 0", "2026-03-10 00:00", "2026-03-15 00:00");
	next_is("0 0 * * 5-7", "2026-03-14 00:00", "2026-03-15 00:00");
	next_is("0 0 * * sun", "2026-03-10 00:00", "2026-03-15 00:00");
	/* Tabs and repeated spaces between fields. */
	next_is("0\t3  *  * *", "2026-03-10 02:59", "2026-03-10 03:00");
}

static void test_parse_errors_name_the_field(void **state)
{
	(void)state;
	parse_fails("60 * * * *", "field 1 (minute)");
	parse_fails("0 24 * * *", "field 2 (hour)");
	parse_fails("0 0 0 * *", "field 3 (day of month)");
	parse_fails("0 0 32 * *", "field 3 (day of month)");
	parse_fails("0 0 * 13 *", "field 4 (month)");
	parse_fails("0 0 * * 8", "field 5 (day of week)");
	parse_fails("0 0 * * foo", "field 5 (day of week)");
	parse_fails("5-1 * * * *", "backwards");
	parse_fails("*/0 * * * *", "field 1");
	parse_fails("1,,2 * * * *", "field 1");
	parse_fails("1, * * * *", "field 1");
	parse_fails("0 0 * *", "expected 5 fields");
	parse_fails("0 0 * * * *", "expected 5 fields");
	parse_fails("", "expected 5 fields");
	parse_fails("@sometimes", "unknown shorthand");
	parse_fails("100 * * * *", "field 1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_minute_and_strictly_after),
		cmocka_unit_test(test_daily_and_shorthands),
		cmocka_unit_test(test_shorthand_with_blanks_around),
		cmocka_unit_test(test_month_ends_and_leap_years),
		cmocka_unit_test(test_weekday_monthday_or_rule),
		cmocka_unit_test(test_fields_ranges_steps_names),
		cmocka_unit_test(test_parse_errors_name_the_field),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
