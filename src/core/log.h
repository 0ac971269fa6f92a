/*
 * log.h - logfmt logging.
 *
 * One line per event, written with a single write(2) so lines from several
 * threads never interleave:
 *
 *   ts=2026-11-28T12:00:00.123Z level=info msg="backend up" pool=shop
 *
 * The message is quoted by the logger; the key=value tail is formatted by
 * the caller (use log_q() for values that may hold spaces or quotes).
 * Output goes to stderr or to a file opened in append mode; log_reopen()
 * reopens the file after rotation. Safe to call from any thread.
 */
#ifndef SK_CORE_LOG_H
#define SK_CORE_LOG_H

#include <stddef.h>

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN = 1,
	LOG_INFO = 2,
	LOG_DEBUG = 3,
};

/* path NULL or "" means stderr. Returns 0 or -errno (stderr stays in use). */
int log_open(enum log_level level, const char *path);
int log_reopen(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_write(enum log_level level, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Quotes s as a logfmt value into out (always NUL-terminated, truncated
 * to outlen). Returns out, so it can sit inside a log call. */
const char *log_q(char *out, size_t outlen, const char *s);

#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...)                                                   \
	do {                                                                  \
		if (log_get_level() >= LOG_WARN)                               \
			log_write(LOG_WARN, msg, __VA_ARGS__);                 \
	} while (0)
#define log_info(msg, ...)                                                   \
	do {                                                                  \
		if (log_get_level() >= LOG_INFO)                               \
			log_write(LOG_INFO, msg, __VA_ARGS__);                 \
	} while (0)
#define log_debug(msg, ...)                                                  \
	do {                                                                  \
		if (log_get_level() >= LOG_DEBUG)                              \
			log_write(LOG_DEBUG, msg, __VA_ARGS__);                \
	} while (0)

/* An invariant that stays checked in release builds (Varnish's AN/AZ). */
#define SK_ASSERT(cond)                                                      \
	do {                                                                  \
		if (__builtin_expect(!(cond), 0))                              \
			sk_assert_fail(#cond, __FILE__, __LINE__);             \
	} while (0)
__attribute__((noreturn)) void sk_assert_fail(const char *cond,
					       const char *file, int line);

#endif
