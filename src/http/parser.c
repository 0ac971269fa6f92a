/*
 * parser.c - the incremental, strict HTTP/1.1 head parser (RFC 9112
 * sections 2 to 6; the rules it enforces are listed in http.h).
 *
 * How it works. http_parse() runs a byte-driven state machine from p->pos
 * to the end of what the caller has, classifying each byte with one lookup
 * in http_ctype[] (tokens, field values, the target); the states that eat
 * most bytes (method, target, name, value, reason) spin in tight inner
 * loops. When the bytes run out it saves the state, the position and the
 * start of the token it was in (offsets, never pointers: the caller may
 * realloc the buffer between calls) and returns AGAIN; the next call
 * resumes on the first byte it has not seen. A head delivered in one piece
 * and one delivered a byte at a time go through the same transitions and
 * end in the same result, including the same error.
 *
 * Field lines are written straight into the caller's header array as
 * spans. Meaning is only given once the final CRLF has arrived, in
 * finish_head(): the names are classified (hop-by-hop, framing, Host), the
 * Connection options are applied, Content-Length and Transfer-Encoding are
 * checked against each other, and the body framing and keep-alive are
 * decided (RFC 9112 section 6.3). That pass runs once per message over at
 * most max_headers entries, never over the bytes again.
 *
 * Choices the RFCs leave open, made here on the strict side:
 *   - Several Content-Length values, in one field as a list ("5, 5") or in
 *     several fields, are accepted when they are all identical (RFC 9110
 *     section 8.6); an empty list element is malformed.
 *   - Transfer-Encoding must be exactly one "chunked" across all its field
 *     lines; it is rejected in HTTP/1.0 messages, requests and responses.
 *   - A Connection header may not name Content-Length, Transfer-Encoding
 *     or Host: a proxy that honoured it would strip the framing it has
 *     just used and desynchronise the next hop.
 *   - A Host value may only hold reg-name, IP-literal and port bytes.
 *   - A status line may omit the SP before an empty reason phrase
 *     ("HTTP/1.1 200\r\n"); status codes run from 100 to 599.
 *   - A 2xx response to CONNECT would start a tunnel; that is not
 *     supported and is rejected with 501.
 *   - Skipped empty lines before a request line count towards head_len
 *     and max_head_bytes: every offset is from the first byte given.
 *   - expect_continue needs an Expect value of exactly "100-continue"
 *     (any case) in an HTTP/1.1 request; other expectations are left to
 *     the caller.
 *   - content_length holds the Content-Length value whenever there is
 *     one, even when the body is NONE (a HEAD or 304 response).
 * Errors carry the status a server would answer with; for a response the
 * caller maps any error to its own status (502).
 *
 * Invariants: p->pos <= the caller's len and never moves backwards;
 * m->nheaders < p->max_headers <= hcap whenever a field line is in
 * progress, so the entry it writes is inside the caller's array; no byte
 * past m->head_len is ever read.
 */
#include "http/http.h"

#include <stdint.h>
#include <string.h>

#include "core/log.h"
#include "http/http_int.h"

enum {
	S_ERROR = -1,
	S_REQ_START = 0, /* before the method, skipping empty lines */
	S_REQ_EMPTY_LF,	 /* CR of an empty line seen */
	S_METHOD,
	S_TARGET_START,
	S_TARGET,
	S_VERSION,	 /* p->count bytes of "HTTP/x.y" seen */
	S_START_LF,	 /* CR ending the start line seen */
	S_STATUS,	 /* p->count digits of the status code seen */
	S_REASON,
	S_HDR_START,	 /* start of a field line or of the final CRLF */
	S_HDR_NAME,
	S_HDR_OWS,	 /* after the colon */
	S_HDR_VALUE,
	S_HDR_LF,
	S_END_LF,
	S_DONE,
};

/* The names finish_head() gives a meaning to. */
enum hdr_kind {
	H_OTHER = 0,
	H_HOP,		/* hop-by-hop by definition */
	H_CONNECTION,
	H_CONTENT_LENGTH,
	H_TRANSFER_ENCODING,
	H_HOST,
	H_EXPECT,
};

#define MAX_EMPTY_LINES 4
/* Content-Length values stay below 2^63 so that they fit an off_t. */
#define MAX_CONTENT_LENGTH ((uint64_t)INT64_MAX)

static inline struct http_span span(uint32_t from, uint32_t to)
{
	struct http_span s = { from, to - from };

	return s;
}

static int fail(struct http_parser *p, uint32_t at, int status,
		const char *reason)
{
	p->state = S_ERROR;
	p->pos = at;
	p->status = status;
	p->reason = reason;
	return HTTP_PARSE_ERROR;
}

/* The reason for an unexpected byte: a bare LF and NUL are named as such
 * wherever they occur, anything else by where it was. (A CR is only an
 * error when no LF follows; the *_LF states name that.) */
static const char *bad_byte(uint8_t c, const char *what)
{
	if (c == '\n')
		return "bare LF";
	if (c == '\0')
		return "NUL byte";
	return what;
}

void http_parser_init(struct http_parser *p, int is_request,
		      enum http_method req_method, struct http_msg *m,
		      struct http_header *hdrs, uint32_t hcap,
		      const struct http_limits *lim)
{
	memset(p, 0, sizeof(*p));
	memset(m, 0, sizeof(*m));
	p->state = is_request ? S_REQ_START : S_VERSION;
	p->req_method = is_request ? HTTP_M_OTHER : req_method;
	p->msg = m;
	p->lim = *lim;
	p->max_headers = lim->max_headers < hcap ? lim->max_headers : hcap;
	p->reason = NULL;

	m->is_request = is_request ? 1 : 0;
	m->method = HTTP_M_OTHER;
	m->host_idx = -1;
	m->headers = hdrs;
	m->hcap = hcap;
	m->body = HTTP_BODY_NONE;
}

/* Recognises the few field names that carry meaning for framing and
 * forwarding; the length picks the candidates. */
static enum hdr_kind hdr_kind(const char *s, size_t n)
{
	switch (n) {
	case 2:
		return http_mem_ieq(s, "te", 2) ? H_HOP : H_OTHER;
	case 4:
		return http_mem_ieq(s, "host", 4) ? H_HOST : H_OTHER;
	case 6:
		return http_mem_ieq(s, "expect", 6) ? H_EXPECT : H_OTHER;
	case 7:
		return http_mem_ieq(s, "trailer", 7) ||
				       http_mem_ieq(s, "upgrade", 7)
			       ? H_HOP
			       : H_OTHER;
	case 10:
		if (http_mem_ieq(s, "connection", 10))
			return H_CONNECTION;
		return http_mem_ieq(s, "keep-alive", 10) ? H_HOP : H_OTHER;
	case 14:
		return http_mem_ieq(s, "content-length", 14) ? H_CONTENT_LENGTH
							     : H_OTHER;
	case 16:
		return http_mem_ieq(s, "proxy-connection", 16) ? H_HOP
							       : H_OTHER;
	case 17:
		return http_mem_ieq(s, "transfer-encoding", 17)
			       ? H_TRANSFER_ENCODING
			       : H_OTHER;
	case 18:
		return http_mem_ieq(s, "proxy-authenticate", 18) ? H_HOP
								 : H_OTHER;
	case 19:
		return http_mem_ieq(s, "proxy-authorization", 19) ? H_HOP
								  : H_OTHER;
	}
	return H_OTHER;
}

static int is_token(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!(http_ctype[(uint8_t)s[i]] & HC_TCHAR))
			return 0;
	return 1;
}

/*
 * Folds one Content-Length field value into *cl. Every list element must
 * be 1*DIGIT below 2^63 and equal to every value seen before (*seen says
 * whether there was one). Returns NULL or the reason it is unacceptable.
 */
static const char *content_length_fold(const char *v, size_t n, int *seen,
				       uint64_t *cl)
{
	struct http_list l;
	const char *e;
	size_t elen, k;
	uint64_t x;
	unsigned d;

	http_list_init(&l, v, n);
	while (http_list_next(&l, &e, &elen)) {
		if (elen == 0)
			return "malformed content-length";
		x = 0;
		for (k = 0; k < elen; k++) {
			if (!(http_ctype[(uint8_t)e[k]] & HC_DIGIT))
				return "malformed content-length";
			d = (unsigned)(e[k] - '0');
			if (x > (MAX_CONTENT_LENGTH - d) / 10)
				return "content-length too large";
			x = x * 10 + d;
		}
		if (*seen && x != *cl)
			return "conflicting content-length values";
		*seen = 1;
		*cl = x;
	}
	return NULL;
}

/* State of the Transfer-Encoding check across several field lines. */
struct te_check {
	unsigned chunked;    /* times "chunked" was listed */
	unsigned other;	     /* other codings listed */
	int last_chunked;    /* the final coding so far is chunked */
	const char *err;
};

static void transfer_encoding_fold(struct te_check *t, const char *v,
				   size_t n)
{
	struct http_list l;
	const char *e;
	size_t elen;

	http_list_init(&l, v, n);
	while (http_list_next(&l, &e, &elen) && t->err == NULL) {
		if (elen == 0) {
			t->err = "empty transfer coding";
		} else if (elen == 7 && http_mem_ieq(e, "chunked", 7)) {
			if (t->chunked++ > 0)
				t->err = "chunked applied more than once";
			t->last_chunked = 1;
		} else {
			t->other++;
			t->last_chunked = 0;
		}
	}
}

static int host_valid(const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!(http_ctype[(uint8_t)v[i]] & HC_HOST))
			return 0;
	return 1;
}

/*
 * Applies one Connection field value: records close, keep-alive and
 * upgrade, and flags every field the sender named as hop-by-hop
 * (RFC 9110 section 7.6.1). Returns NULL or the reason for a 400.
 */
static const char *connection_apply(struct http_msg *m, const char *base,
				    const char *v, size_t n, int *close,
				    int *keepalive)
{
	struct http_list l;
	const char *e;
	size_t elen;
	enum hdr_kind k;
	uint32_t j;

	http_list_init(&l, v, n);
	while (http_list_next(&l, &e, &elen)) {
		if (elen == 0)
			continue; /* empty list elements are allowed */
		if (!is_token(e, elen))
			return "invalid connection option";
		if (elen == 5 && http_mem_ieq(e, "close", 5)) {
			*close = 1;
			continue;
		}
		if (elen == 10 && http_mem_ieq(e, "keep-alive", 10))
			*keepalive = 1;
		else if (elen == 7 && http_mem_ieq(e, "upgrade", 7))
			m->conn_upgrade = 1;
		k = hdr_kind(e, elen);
		if (k == H_CONTENT_LENGTH || k == H_TRANSFER_ENCODING ||
		    k == H_HOST)
			return "connection option names a framing or host "
			       "header";
		for (j = 0; j < m->nheaders; j++) {
			if (m->headers[j].name.len == elen &&
			    http_mem_ieq(base + m->headers[j].name.off, e,
					 elen))
				m->headers[j].flags |= HTTP_HDR_HOP;
		}
	}
	return NULL;
}

/*
 * Gives the complete head its meaning: header flags, Host, framing,
 * keep-alive. Runs once, after the final CRLF. Returns DONE or ERROR.
 */
static int finish_head(struct http_parser *p, const char *buf)
{
	struct http_msg *m = p->msg;
	struct http_header *h;
	struct te_check te = { 0, 0, 0, NULL };
	const char *cl_err = NULL, *err;
	const char *v;
	uint64_t cl = 0;
	int ncl = 0, nte = 0, nhost = 0, close = 0, keepalive = 0;
	int have_conn = 0, expect = 0, host_bad = 0;
	uint32_t i, at = m->head_len;

	for (i = 0; i < m->nheaders; i++) {
		h = &m->headers[i];
		v = buf + h->value.off;
		switch (hdr_kind(buf + h->name.off, h->name.len)) {
		case H_OTHER:
			break;
		case H_HOP:
			h->flags |= HTTP_HDR_HOP;
			break;
		case H_CONNECTION:
			h->flags |= HTTP_HDR_HOP;
			have_conn = 1;
			break;
		case H_CONTENT_LENGTH:
			h->flags |= HTTP_HDR_FRAMING;
			if (cl_err == NULL)
				cl_err = content_length_fold(v, h->value.len,
							     &ncl, &cl);
			break;
		case H_TRANSFER_ENCODING:
			h->flags |= HTTP_HDR_FRAMING;
			nte = 1;
			transfer_encoding_fold(&te, v, h->value.len);
			break;
		case H_HOST:
			h->flags |= HTTP_HDR_HOST;
			if (nhost++ == 0 && m->is_request)
				m->host_idx = (int)i;
			if (!host_valid(v, h->value.len))
				host_bad = 1;
			break;
		case H_EXPECT:
			if (h->value.len == 12 &&
			    http_mem_ieq(v, "100-continue", 12))
				expect = 1;
			break;
		}
	}

	/* Framing first: these are the smuggling vectors. */
	if (nte && ncl)
		return fail(p, at, 400, "content-length with transfer-encoding");
	if (nte && m->version_minor == 0)
		return fail(p, at, 400, "transfer-encoding in HTTP/1.0 message");
	if (nte && te.err == NULL) {
		if (!te.last_chunked)
			te.err = "final transfer coding is not chunked";
		else if (te.other)
			te.err = "transfer coding other than chunked";
	}
	if (te.err != NULL)
		return fail(p, at, 400, te.err);
	if (cl_err != NULL)
		return fail(p, at, 400, cl_err);

	if (m->is_request) {
		if (nhost > 1)
			return fail(p, at, 400, "multiple host headers");
		if (nhost == 0 && m->version_minor == 1)
			return fail(p, at, 400, "missing host header");
		if (host_bad)
			return fail(p, at, 400, "invalid host header");
	}

	if (have_conn) {
		for (i = 0; i < m->nheaders; i++) {
			h = &m->headers[i];
			if (!(h->flags & HTTP_HDR_HOP) ||
			    !http_span_ieq(buf, h->name, "connection"))
				continue;
			err = connection_apply(m, buf, buf + h->value.off,
					       h->value.len, &close,
					       &keepalive);
			if (err != NULL)
				return fail(p, at, 400, err);
		}
	}

	if (ncl)
		m->content_length = cl;
	if (m->is_request) {
		/* RFC 9110 section 10.1.1: ignored in HTTP/1.0. */
		m->expect_continue = expect && m->version_minor == 1;
		m->body = nte ? HTTP_BODY_CHUNKED
			      : ncl ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	} else {
		if (p->req_method == HTTP_M_CONNECT && m->status >= 200 &&
		    m->status < 300)
			return fail(p, at, 501, "2xx response to CONNECT "
				    "not supported");
		if (p->req_method == HTTP_M_HEAD || m->status < 200 ||
		    m->status == 204 || m->status == 304)
			m->body = HTTP_BODY_NONE;
		else if (nte)
			m->body = HTTP_BODY_CHUNKED;
		else if (ncl)
			m->body = HTTP_BODY_LENGTH;
		else
			m->body = HTTP_BODY_EOF;
	}

	if (m->version_minor == 1)
		m->keep_alive = !close;
	else
		m->keep_alive = keepalive && !close;
	if (m->body == HTTP_BODY_EOF)
		m->keep_alive = 0;

	p->state = S_DONE;
	return HTTP_PARSE_DONE;
}

/* Checks byte number p->count of "HTTP/x.y" and records the digits. */
static int version_byte(struct http_parser *p, uint8_t c)
{
	static const char prefix[] = "HTTP/";

	switch (p->count) {
	case 0: case 1: case 2: case 3: case 4:
		return c == (uint8_t)prefix[p->count];
	case 6:
		return c == '.';
	}
	if (!(http_ctype[c] & HC_DIGIT))
		return 0;
	if (p->count == 5)
		p->major = (uint8_t)(c - '0');
	else
		p->msg->version_minor = (uint8_t)(c - '0');
	return 1;
}

int http_parse(struct http_parser *p, const char *buf, size_t len)
{
	const uint8_t *b = (const uint8_t *)buf;
	struct http_msg *m = p->msg;
	uint32_t i, end, mark, mark2;
	int st;
	uint8_t c;

	if (p->state == S_DONE)
		return HTTP_PARSE_DONE;
	if (p->state == S_ERROR)
		return HTTP_PARSE_ERROR;
	SK_ASSERT(len >= p->pos); /* the caller only ever appends */

	/* Bytes at or past max_head_bytes can never be part of an acceptable
	 * head, so they are not looked at: reaching that bound with bytes to
	 * spare is the 431, at the same byte however the input was split. */
	end = len < p->lim.max_head_bytes ? (uint32_t)len
					  : p->lim.max_head_bytes;
	st = p->state;
	i = p->pos;
	mark = p->mark;
	mark2 = p->mark2;

	for (; i < end; i++) {
		c = b[i];
		switch (st) {
		case S_REQ_START:
			if (c == '\r') {
				if (p->count == MAX_EMPTY_LINES)
					return fail(p, i, 400, "too many empty "
						    "lines before request line");
				st = S_REQ_EMPTY_LF;
				break;
			}
			if (!(http_ctype[c] & HC_TCHAR))
				return fail(p, i, 400,
					    bad_byte(c, "invalid character "
						     "in method"));
			mark = i;
			st = S_METHOD;
			__attribute__((fallthrough));
		case S_METHOD:
			while (http_ctype[c] & HC_TCHAR) {
				if (++i == end)
					goto suspend;
				c = b[i];
			}
			if (c != ' ')
				return fail(p, i, 400,
					    bad_byte(c, "invalid character "
						     "in method"));
			m->method_s = span(mark, i);
			m->method = http_method_parse(buf + mark, i - mark);
			st = S_TARGET_START;
			break;

		case S_REQ_EMPTY_LF:
			if (c != '\n')
				return fail(p, i, 400, "bare CR");
			p->count++;
			st = S_REQ_START;
			break;

		case S_TARGET_START:
			if (!(http_ctype[c] & HC_VCHAR))
				return fail(p, i, 400,
					    c == ' ' ? "extra space in "
						       "request line"
						     : bad_byte(c, "invalid "
							"character in target"));
			mark = i;
			st = S_TARGET;
			__attribute__((fallthrough));
		case S_TARGET:
			while (http_ctype[c] & HC_VCHAR) {
				if (i - mark >= p->lim.max_target_bytes)
					return fail(p, i, 414, "request "
						    "target too long");
				if (++i == end)
					goto suspend;
				c = b[i];
			}
			if (c != ' ')
				return fail(p, i, 400,
					    c == '\r' ? "missing HTTP version"
						      : bad_byte(c, "invalid "
							"character in target"));
			m->target = span(mark, i);
			p->count = 0;
			st = S_VERSION;
			break;

		case S_VERSION:
			if (p->count < 8) {
				if (!version_byte(p, c))
					return fail(p, i, 400,
						    bad_byte(c, "malformed "
							     "HTTP version"));
				p->count++;
				break;
			}
			/* A request line ends after the version, a status
			 * line goes on with SP and the code. */
			if (c != (m->is_request ? '\r' : ' '))
				return fail(p, i, 400,
					    m->is_request || c != '\r'
						    ? bad_byte(c, "malformed "
							       "HTTP version")
						    : "missing status code");
			if (p->major != 1 || m->version_minor > 1)
				return fail(p, i, 505,
					    "HTTP version not supported");
			p->count = 0;
			st = m->is_request ? S_START_LF : S_STATUS;
			break;

		case S_STATUS:
			if (p->count < 3) {
				if (!(http_ctype[c] & HC_DIGIT) ||
				    (p->count == 0 && (c < '1' || c > '5')))
					return fail(p, i, 400,
						    bad_byte(c, "invalid "
							     "status code"));
				m->status = m->status * 10 + (c - '0');
				p->count++;
				break;
			}
			if (c == '\r') {
				m->reason = span(i, i);
				st = S_START_LF;
				break;
			}
			if (c != ' ')
				return fail(p, i, 400,
					    bad_byte(c, "invalid status code"));
			mark = i + 1;
			st = S_REASON;
			break;

		case S_REASON:
			while (http_ctype[c] & HC_FIELD) {
				if (++i == end)
					goto suspend;
				c = b[i];
			}
			if (c != '\r')
				return fail(p, i, 400,
					    bad_byte(c, "invalid character "
						     "in reason phrase"));
			m->reason = span(mark, i);
			st = S_START_LF;
			break;

		case S_START_LF:
			if (c != '\n')
				return fail(p, i, 400, "bare CR");
			st = S_HDR_START;
			break;

		case S_HDR_START:
			if (c == '\r') {
				st = S_END_LF;
				break;
			}
			if (!(http_ctype[c] & HC_TCHAR)) {
				const char *r;

				if (c == ' ' || c == '\t')
					r = "obs-fold or whitespace at "
					    "start of field line";
				else if (c == ':')
					r = "empty header name";
				else
					r = bad_byte(c, "invalid character "
						     "in header name");
				return fail(p, i, 400, r);
			}
			if (m->nheaders >= p->max_headers)
				return fail(p, i, 431, "too many header fields");
			mark = i;
			st = S_HDR_NAME;
			__attribute__((fallthrough));
		case S_HDR_NAME:
			while (http_ctype[c] & HC_TCHAR) {
				if (++i == end)
					goto suspend;
				c = b[i];
			}
			if (c != ':') {
				const char *r;

				if (c == ' ' || c == '\t')
					r = "whitespace before colon";
				else if (c == '\r')
					r = "header field without colon";
				else
					r = bad_byte(c, "invalid character "
						     "in header name");
				return fail(p, i, 400, r);
			}
			m->headers[m->nheaders].name = span(mark, i);
			st = S_HDR_OWS;
			break;

		case S_HDR_OWS:
			while (http_ctype[c] & HC_WS) {
				if (++i == end)
					goto suspend;
				c = b[i];
			}
			if (c == '\r') {
				m->headers[m->nheaders].value = span(i, i);
				st = S_HDR_LF;
				break;
			}
			if (!(http_ctype[c] & (HC_VCHAR | HC_OBS)))
				return fail(p, i, 400,
					    bad_byte(c, "invalid character "
						     "in header value"));
			mark = i;
			mark2 = i + 1;
			st = S_HDR_VALUE;
			break;

		case S_HDR_VALUE:
			/* mark2 trails the last byte that is not OWS, so the
			 * value comes out trimmed without a second look. */
			while (http_ctype[c] & HC_FIELD) {
				if (!(http_ctype[c] & HC_WS))
					mark2 = i + 1;
				if (++i == end)
					goto suspend;
				c = b[i];
			}
			if (c != '\r')
				return fail(p, i, 400,
					    bad_byte(c, "invalid character "
						     "in header value"));
			m->headers[m->nheaders].value = span(mark, mark2);
			st = S_HDR_LF;
			break;

		case S_HDR_LF:
			if (c != '\n')
				return fail(p, i, 400, "bare CR");
			m->headers[m->nheaders].flags = 0;
			m->nheaders++;
			st = S_HDR_START;
			break;

		case S_END_LF:
			if (c != '\n')
				return fail(p, i, 400, "bare CR");
			m->head_len = i + 1;
			p->pos = i + 1;
			return finish_head(p, buf);

		default:
			SK_ASSERT(!"http_parse: bad state");
		}
	}

suspend:
	p->state = st;
	p->pos = i;
	p->mark = mark;
	p->mark2 = mark2;
	if (len > end)
		return fail(p, i, 431, "header section too large");
	return HTTP_PARSE_AGAIN;
}
