/*
 * log.c - logfmt logging (see log.h).
 *
 * The line is formatted into a stack buffer and written with one write(2)
 * to a descriptor opened O_APPEND, so concurrent writers never interleave
 * within a line (for lines under PIPE_BUF on pipes; files opened O_APPEND
 * are atomic per write on Linux local filesystems). Overlong lines are
 * truncated and marked with "...". The descriptor is swapped atomically on
 * reopen; the level is a relaxed atomic read on every call.
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"

#define LOG_LINE_MAX 4096

static _Atomic int log_level_v = LOG_INFO;
static _Atomic int log_fd = 2;
static char log_path[1024];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_open(enum log_level level, const char *path)
{
	int fd, old;

	atomic_store(&log_level_v, (int)level);
	if (path == NULL || path[0] == '\0') {
		log_path[0] = '\0';
		old = atomic_exchange(&log_fd, 2);
		if (old > 2)
			close(old);
		return 0;
	}
	if (strlen(path) >= sizeof(log_path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	snprintf(log_path, sizeof(log_path), "%s", path);
	old = atomic_exchange(&log_fd, fd);
	if (old > 2)
		close(old);
	return 0;
}

int log_reopen(void)
{
	int fd, old;

	if (log_path[0] == '\0')
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	old = atomic_exchange(&log_fd, fd);
	if (old > 2)
		close(old);
	return 0;
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_level_v, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_level_v,
						    memory_order_relaxed);
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0]))
		return level_names[level];
	return "unknown";
}

const char *log_q(char *out, size_t outlen, const char *s)
{
	size_t o = 0;
	int needq = (s[0] == '\0');

	for (const char *p = s; *p; p++) {
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20) {
			needq = 1;
			break;
		}
	}
	if (!needq) {
		snprintf(out, outlen, "%s", s);
		return out;
	}
	if (outlen < 3) {
		if (outlen)
			out[0] = '\0';
		return out;
	}
	out[o++] = '"';
	for (const char *p = s; *p && o + 3 < outlen; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c < 0x20 || c == 0x7f) {
			out[o++] = '?';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

void log_write(enum log_level level, const char *msg, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	char ts[32], qmsg[512];
	size_t n;
	int r;
	va_list ap;

	if ((int)level > atomic_load_explicit(&log_level_v, memory_order_relaxed))
		return;
	clock_fmt_iso8601(ts, clock_wall_ms());
	r = snprintf(line, sizeof(line), "ts=%s level=%s msg=%s", ts,
		     log_level_name(level), log_q(qmsg, sizeof(qmsg), msg));
	n = r < 0 ? 0 : (size_t)r;
	if (fmt && fmt[0] && n < sizeof(line) - 2) {
		line[n++] = ' ';
		va_start(ap, fmt);
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (r > 0)
			n += (size_t)r;
		else
			n--; /* an empty tail: drop the separator */
	}
	if (n >= sizeof(line) - 1) {
		n = sizeof(line) - 5;
		memcpy(line + n, "...", 3);
		n += 3;
	}
	line[n++] = '\n';
	/* One write per line; a short write on a full disk loses the tail of
	 * the line, which is all a logger can do without blocking. */
	if (write(atomic_load(&log_fd), line, n) < 0) {
		/* Nothing sensible to do: the log is where we would report. */
	}
}

void sk_assert_fail(const char *cond, const char *file, int line)
{
	log_write(LOG_ERROR, "assertion failed", "cond=\"%s\" file=%s line=%d",
		  cond, file, line);
	abort();
}
