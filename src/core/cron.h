/*
 * cron.h - cron schedule expressions ("0 3 * * *").
 *
 * Five fields: minute hour day-of-month month day-of-week, each `*`, a
 * number, a range `a-b`, a list `a,b,c`, and steps `*\/n` or `a-b/n`;
 * month and day-of-week also take names (jan..dec, sun..sat; 0 and 7 are
 * Sunday). As in Vixie cron, when both day-of-month and day-of-week are
 * restricted, a day matching either one matches. Also the shorthands
 * @hourly, @daily (= @midnight), @weekly, @monthly, @yearly (= @annually).
 * Times are evaluated in UTC.
 */
#ifndef SK_CORE_CRON_H
#define SK_CORE_CRON_H

#include <stddef.h>
#include <stdint.h>

struct cron {
	uint64_t minutes; /* bit i: minute i */
	uint32_t hours;
	uint32_t mdays;	  /* bits 1..31 */
	uint16_t months;  /* bits 1..12 */
	uint8_t wdays;	  /* bits 0..6, Sunday = 0 */
	uint8_t mday_star;
	uint8_t wday_star;
};

/* Parses expr. Returns 0, or -1 with a short reason in why ("field 2
 * (hour): 24 is out of range 0-23"). */
int cron_parse(const char *expr, struct cron *out, char *why, size_t whylen);

/* The first matching minute strictly after t (Unix seconds, UTC), as
 * Unix seconds; 0 when none within 5 years (cannot happen for a valid
 * expression except Feb 30-style dates). */
int64_t cron_next(const struct cron *c, int64_t t);

#endif
