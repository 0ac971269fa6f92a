/*
 * chunked.c - the chunked transfer coding (RFC 9112 section 7.1): a strict
 * incremental scanner and the chunk-size line writer.
 *
 * http_chunked_feed() walks the coded body with a byte-driven state
 * machine that keeps everything it needs in struct http_chunked, so input
 * may be cut anywhere, down to one byte per call. Chunk data is not
 * examined: it is handed to the callback in the largest pieces the input
 * allows, pointing into the caller's buffer. Everything else (size lines,
 * the CRLF after data, trailer fields) is checked byte by byte against
 * http_ctype[].
 *
 * What is accepted:
 *   - sizes of 1 to 16 significant hex digits below 2^63, any number of
 *     leading zeros (the line bound below limits them);
 *   - chunk extensions: BWS, then ";" and any bytes but controls (HTAB is
 *     allowed) up to the CR. They are skipped, not parsed: nothing here
 *     gives them a meaning, and bounding them is what matters;
 *   - trailer fields with the same byte rules as header fields (no
 *     obs-fold, no whitespace before the colon). They are validated and
 *     passed over, never merged into the head.
 * Every line ends in CRLF; a bare LF or CR is an error.
 *
 * Bounds, both max_trailer_bytes: each chunk-size line (digits and
 * extensions, without its CRLF), and the running total of extension bytes
 * over the whole body plus the trailer section. The total keeps a body of
 * many tiny chunks with long extensions from costing unbounded work per
 * data byte.
 *
 * Invariants: state C_DATA implies remaining > 0; done is set exactly when
 * state is C_DONE; once in C_DONE or C_ERROR no byte is consumed.
 */
#include "http/http.h"

#include <limits.h>
#include <stdio.h>

#include "core/log.h"
#include "http/http_int.h"

enum {
	C_ERROR = -1,
	C_SIZE_START = 0, /* first hex digit of a chunk-size line */
	C_SIZE,		  /* more digits, BWS, ";" or CR */
	C_SIZE_BWS,	  /* blanks after the size: only ";" may follow */
	C_EXT,		  /* extensions, up to CR */
	C_SIZE_LF,
	C_DATA,
	C_DATA_CR,
	C_DATA_LF,
	C_TR_START,	  /* a trailer field or the final CRLF */
	C_TR_NAME,
	C_TR_VALUE,
	C_TR_LF,
	C_END_LF,
	C_DONE,
};

#define DEFAULT_MAX_TRAILER_BYTES 8192u
#define MAX_CHUNK_SIZE ((uint64_t)INT64_MAX)

void http_chunked_init(struct http_chunked *c, uint32_t max_trailer_bytes)
{
	c->state = C_SIZE_START;
	c->remaining = 0;
	c->line_len = 0;
	c->trailer_bytes = 0;
	c->max_trailer_bytes =
		max_trailer_bytes ? max_trailer_bytes : DEFAULT_MAX_TRAILER_BYTES;
	c->done = 0;
	c->reason = NULL;
}

static ssize_t chunked_fail(struct http_chunked *c, const char *reason)
{
	c->state = C_ERROR;
	c->reason = reason;
	return -1;
}

/* The reason for an unexpected byte, as in the head parser. */
static const char *bad_byte(uint8_t ch, const char *what)
{
	if (ch == '\n')
		return "bare LF";
	if (ch == '\0')
		return "NUL byte";
	return what;
}

static inline unsigned hex_value(uint8_t ch)
{
	return ch <= '9' ? (unsigned)(ch - '0')
			 : (unsigned)((ch | 0x20) - 'a' + 10);
}

ssize_t http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
			  http_data_cb cb, void *ud)
{
	const uint8_t *b = (const uint8_t *)buf;
	size_t i = 0, n;
	uint8_t ch;
	unsigned d;

	if (c->state == C_DONE)
		return 0;
	if (c->state == C_ERROR)
		return -1;
	SK_ASSERT(len <= (size_t)SSIZE_MAX);

	while (i < len) {
		if (c->state == C_DATA) {
			n = len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			if (cb != NULL)
				cb(ud, buf + i, n);
			i += n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = C_DATA_CR;
			continue;
		}

		ch = b[i++];
		switch (c->state) {
		case C_SIZE_START:
		case C_SIZE:
		case C_SIZE_BWS:
		case C_EXT:
			if (ch != '\r' && ++c->line_len > c->max_trailer_bytes)
				return chunked_fail(c, "chunk-size line too "
						    "long");
			break;
		case C_TR_START:
		case C_TR_NAME:
		case C_TR_VALUE:
		case C_TR_LF:
		case C_END_LF:
			if (++c->trailer_bytes > c->max_trailer_bytes)
				return chunked_fail(c, "chunk extensions and "
						    "trailers too large");
			break;
		}

		switch (c->state) {
		case C_SIZE_START:
			if (!(http_ctype[ch] & HC_HEX))
				return chunked_fail(c, bad_byte(ch, "missing "
							"chunk size"));
			c->remaining = hex_value(ch);
			c->state = C_SIZE;
			break;

		case C_SIZE:
			if (http_ctype[ch] & HC_HEX) {
				d = hex_value(ch);
				if (c->remaining > (MAX_CHUNK_SIZE - d) >> 4)
					return chunked_fail(c, "chunk size "
							    "too large");
				c->remaining = (c->remaining << 4) | d;
			} else if (ch == '\r') {
				c->state = C_SIZE_LF;
			} else if (ch == ';') {
				c->state = C_EXT;
			} else if (ch == ' ' || ch == '\t') {
				c->state = C_SIZE_BWS;
			} else {
				return chunked_fail(c, bad_byte(ch, "invalid "
							"chunk size"));
			}
			if (c->state == C_EXT || c->state == C_SIZE_BWS)
				goto ext_byte;
			break;

		case C_SIZE_BWS:
			if (ch == ';')
				c->state = C_EXT;
			else if (ch != ' ' && ch != '\t')
				return chunked_fail(c, bad_byte(ch, "invalid "
							"chunk size"));
			goto ext_byte;

		case C_EXT:
			if (ch == '\r') {
				c->state = C_SIZE_LF;
				break;
			}
			if (!(http_ctype[ch] & HC_FIELD))
				return chunked_fail(c, bad_byte(ch, "invalid "
						"character in chunk extension"));
		ext_byte:
			if (++c->trailer_bytes > c->max_trailer_bytes)
				return chunked_fail(c, "chunk extensions and "
						    "trailers too large");
			break;

		case C_SIZE_LF:
			if (ch != '\n')
				return chunked_fail(c, "bare CR");
			c->state = c->remaining ? C_DATA : C_TR_START;
			break;

		case C_DATA_CR:
			if (ch != '\r')
				return chunked_fail(c, "missing CRLF after "
						    "chunk data");
			c->state = C_DATA_LF;
			break;

		case C_DATA_LF:
			if (ch != '\n')
				return chunked_fail(c, "bare CR");
			c->line_len = 0;
			c->state = C_SIZE_START;
			break;

		case C_TR_START:
			if (ch == '\r') {
				c->state = C_END_LF;
			} else if (http_ctype[ch] & HC_TCHAR) {
				c->state = C_TR_NAME;
			} else if (ch == ' ' || ch == '\t') {
				return chunked_fail(c, "obs-fold or whitespace "
						    "at start of trailer "
						    "field");
			} else {
				return chunked_fail(c, ch == ':'
						? "empty trailer field name"
						: bad_byte(ch, "invalid "
						"character in trailer name"));
			}
			break;

		case C_TR_NAME:
			if (http_ctype[ch] & HC_TCHAR)
				break;
			if (ch == ':')
				c->state = C_TR_VALUE;
			else if (ch == ' ' || ch == '\t')
				return chunked_fail(c, "whitespace before "
						    "colon in trailer field");
			else if (ch == '\r')
				return chunked_fail(c, "trailer field without "
						    "colon");
			else
				return chunked_fail(c, bad_byte(ch, "invalid "
						"character in trailer name"));
			break;

		case C_TR_VALUE:
			if (http_ctype[ch] & HC_FIELD)
				break;
			if (ch != '\r')
				return chunked_fail(c, bad_byte(ch, "invalid "
						"character in trailer value"));
			c->state = C_TR_LF;
			break;

		case C_TR_LF:
			if (ch != '\n')
				return chunked_fail(c, "bare CR");
			c->state = C_TR_START;
			break;

		case C_END_LF:
			if (ch != '\n')
				return chunked_fail(c, "bare CR");
			c->state = C_DONE;
			c->done = 1;
			return (ssize_t)i;

		default:
			SK_ASSERT(!"http_chunked_feed: bad state");
		}
	}
	return (ssize_t)i;
}

size_t http_chunk_head(char out[24], size_t n)
{
	int r;

	SK_ASSERT(n > 0);
	r = snprintf(out, 24, "%zx\r\n", n);
	SK_ASSERT(r > 0 && r < 24);
	return (size_t)r;
}
