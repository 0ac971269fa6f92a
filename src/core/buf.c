/*
 * buf.c - growable byte buffers (see buf.h).
 *
 * Growth is geometric (x2, from 256 bytes) so a run of appends costs
 * amortised O(1). Fixed-size appends abort on OOM; buf_reserve() is the
 * one entry point that reports it, for sizes a client controls.
 */
#include "core/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_fini(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
	size_t need, ncap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1; /* room for buf_cstr's NUL */
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	p = realloc(b->data, ncap);
	if (p == NULL)
		return -ENOMEM;
	b->data = p;
	b->cap = ncap;
	return 0;
}

static void reserve_or_die(struct buf *b, size_t extra)
{
	if (buf_reserve(b, extra) != 0) {
		fprintf(stderr, "storekeep: out of memory (buffer of %zu bytes)\n",
			b->len + extra);
		abort();
	}
}

void buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	reserve_or_die(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void buf_appends(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_appendc(struct buf *b, char c)
{
	reserve_or_die(b, 1);
	b->data[b->len++] = c;
}

void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	reserve_or_die(b, 64);
	n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	SK_ASSERT(n >= 0);
	if ((size_t)n >= b->cap - b->len) {
		reserve_or_die(b, (size_t)n);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
		SK_ASSERT(n >= 0 && (size_t)n < b->cap - b->len);
	}
	b->len += (size_t)n;
	va_end(ap2);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_consume(struct buf *b, size_t n)
{
	SK_ASSERT(n <= b->len);
	if (n == b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

char *buf_cstr(struct buf *b)
{
	reserve_or_die(b, 0);
	b->data[b->len] = '\0';
	return b->data;
}

char *buf_steal(struct buf *b, size_t *len)
{
	char *p = buf_cstr(b);

	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
