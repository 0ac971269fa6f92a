/*
 * http_int.h - what the files of the http module share and nobody else
 * sees: the byte-class table, case-insensitive comparison and the
 * comma-separated list iterator.
 *
 * The table is the single definition of which byte may appear where; the
 * parser, the chunked codec and the message helpers all read it, so they
 * cannot disagree about what a token or a field value is.
 */
#ifndef SK_HTTP_HTTP_INT_H
#define SK_HTTP_HTTP_INT_H

#include <stddef.h>
#include <stdint.h>

/* Byte classes (RFC 9110 section 5.6.2 and 5.5, RFC 3986 for Host). */
#define HC_TCHAR 0x01 /* token character */
#define HC_VCHAR 0x02 /* visible ASCII 0x21-0x7e (also: request target) */
#define HC_OBS 0x04   /* obs-text 0x80-0xff */
#define HC_WS 0x08    /* SP or HTAB */
#define HC_DIGIT 0x10
#define HC_HEX 0x20
#define HC_HOST 0x40  /* reg-name, IP-literal, pct-encoded and ":" port */
/* Bytes allowed in a field value, a reason phrase or a chunk extension. */
#define HC_FIELD (HC_VCHAR | HC_OBS | HC_WS)

extern const uint8_t http_ctype[256];

/* ASCII lower case without the locale (tolower() is a call per byte). */
static inline unsigned char http_lower(unsigned char c)
{
	return (unsigned char)(c + (((unsigned)c - 'A' < 26u) << 5));
}

/* True when a[0..n) and b[0..n) are equal ignoring ASCII case. */
int http_mem_ieq(const char *a, const char *b, size_t n);

/*
 * Iterates the elements of a comma-separated list value (RFC 9110 section
 * 5.6.1): each call to http_list_next() yields the next element with
 * surrounding SP/HTAB removed, empty elements included, and returns 0 once
 * the value is exhausted. Commas inside a quoted-string do not split.
 */
struct http_list {
	const char *p;
	const char *end;
	int done;
};

static inline void http_list_init(struct http_list *l, const char *p,
				  size_t n)
{
	l->p = p;
	l->end = p + n;
	l->done = 0;
}

int http_list_next(struct http_list *l, const char **elem, size_t *elen);

#endif
