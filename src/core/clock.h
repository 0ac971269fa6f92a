/*
 * clock.h - time helpers.
 *
 * Monotonic time for every duration and deadline; wall-clock time only for
 * what a person reads (log timestamps, Date headers).
 */
#ifndef SK_CORE_CLOCK_H
#define SK_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
uint64_t clock_wall_ms(void);
/* Writes "2026-11-28T12:00:00.123Z" (24 chars + NUL) into out. */
void clock_fmt_iso8601(char out[32], uint64_t wall_ms);
/* Writes an IMF-fixdate ("Sat, 28 Nov 2026 12:00:00 GMT") into out. */
void clock_fmt_http(char out[32], uint64_t wall_ms);

#endif
