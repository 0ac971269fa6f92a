/*
 * serialize.c - writes message heads and error responses into a struct buf.
 *
 * Heads are rebuilt from the parsed spans, always as HTTP/1.1 (this proxy
 * speaks 1.1 to both sides; the caller has already decided keep-alive and
 * framing and adds its own Connection and framing fields), one
 * "Name: value\r\n" per kept field, names as received. Because the input
 * passed the parser, no span can hold CR, LF or NUL, so the output cannot
 * split into two messages.
 *
 * Not done here: the final empty line after http_serialize_head() (the
 * caller appends its own fields first), Date, or any choice of which
 * fields to drop beyond skip_flags.
 */
#include "http/http.h"

#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "http/http_int.h"

static void append_span(struct buf *out, const char *base, struct http_span s)
{
	buf_append(out, base + s.off, s.len);
}

void http_serialize_head(struct buf *out, const struct http_msg *m,
			 const char *base, unsigned skip_flags)
{
	const struct http_header *h;
	uint32_t i;

	if (m->is_request) {
		append_span(out, base, m->method_s);
		buf_appendc(out, ' ');
		append_span(out, base, m->target);
		buf_appends(out, " HTTP/1.1\r\n");
	} else {
		SK_ASSERT(m->status >= 100 && m->status <= 999);
		{
			/* By hand: a printf here was a sixth of the head's cost. */
			char sl[13] = "HTTP/1.1 000 ";

			sl[9] = (char)('0' + m->status / 100);
			sl[10] = (char)('0' + m->status / 10 % 10);
			sl[11] = (char)('0' + m->status % 10);
			buf_append(out, sl, sizeof(sl));
		}
		/* An empty reason is legal but unhelpful to read. */
		if (m->reason.len > 0)
			append_span(out, base, m->reason);
		else
			buf_appends(out, http_status_reason(m->status));
		buf_appends(out, "\r\n");
	}
	for (i = 0; i < m->nheaders; i++) {
		h = &m->headers[i];
		if (h->flags & skip_flags)
			continue;
		append_span(out, base, h->name);
		buf_append(out, ": ", 2);
		append_span(out, base, h->value);
		buf_append(out, "\r\n", 2);
	}
}

/* A name must be a token and a value must hold only field bytes, or the
 * line could end the head early or start a second message. */
static int header_valid(const char *name, const char *value)
{
	const unsigned char *s;

	if (*name == '\0')
		return 0;
	for (s = (const unsigned char *)name; *s != '\0'; s++)
		if (!(http_ctype[*s] & HC_TCHAR))
			return 0;
	for (s = (const unsigned char *)value; *s != '\0'; s++)
		if (!(http_ctype[*s] & HC_FIELD))
			return 0;
	return 1;
}

/*
 * Appends "name: value\r\n". A name that is not a token, or a value with
 * CR, LF or another control byte, is a caller bug that could inject a
 * header or a response: such a field is logged and not written, rather
 * than aborting the process on what may be client-derived text.
 */
void http_serialize_header(struct buf *out, const char *name,
			   const char *value)
{
	if (!header_valid(name, value)) {
		log_error("refusing to serialize an invalid header field",
			  "name_len=%zu", strlen(name));
		return;
	}
	buf_appends(out, name);
	buf_append(out, ": ", 2);
	buf_appends(out, value);
	buf_append(out, "\r\n", 2);
}

void http_error_response(struct buf *out, int status, const char *detail,
			 int close)
{
	const char *reason = http_status_reason(status);
	size_t body_len;

	SK_ASSERT(status >= 100 && status <= 999);
	/* "<status> <reason>\n" then "<detail>\n". */
	body_len = 3 + 1 + strlen(reason) + 1;
	if (detail != NULL)
		body_len += strlen(detail) + 1;
	buf_printf(out,
		   "HTTP/1.1 %d %s\r\n"
		   "Content-Type: text/plain\r\n"
		   "Content-Length: %zu\r\n"
		   "%s"
		   "\r\n"
		   "%d %s\n",
		   status, reason, body_len,
		   close ? "Connection: close\r\n" : "", status, reason);
	if (detail != NULL) {
		buf_appends(out, detail);
		buf_appendc(out, '\n');
	}
}
