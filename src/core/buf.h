/*
 * buf.h - growable byte buffers.
 *
 * A struct buf owns a heap block of cap bytes of which the first len are
 * valid. The buffer is embedded by its owner (buf_init/buf_fini). Appends
 * grow it geometrically; small appends abort on out-of-memory (they are
 * fixed-size and an OOM there is not recoverable), while buf_reserve()
 * returns -ENOMEM so callers sizing from client input can answer with an
 * error status instead.
 *
 * Invariant: len <= cap; data is NULL only when cap == 0.
 */
#ifndef SK_CORE_BUF_H
#define SK_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *b);
/* Releases the block; the buffer is empty and reusable afterwards. */
void buf_fini(struct buf *b);
/* Ensures room for extra more bytes. Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_appends(struct buf *b, const char *s);
void buf_appendc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Drops the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
static inline void buf_reset(struct buf *b) { b->len = 0; }
/* NUL-terminates the contents (not counted in len) and returns data. */
char *buf_cstr(struct buf *b);
/* Takes the block out of the buffer: the caller owns the returned pointer
 * (NUL-terminated), the buffer is left empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
