/*
 * message.c - the message model: byte classes, span and list helpers,
 * methods and status reasons.
 *
 * Everything here reads spans the parser produced and never allocates.
 * Comparisons are ASCII case-insensitive where RFC 9110 says field names
 * and list tokens are, and case-sensitive for methods (section 9.1).
 */
#include "http/http.h"

#include <errno.h>
#include <string.h>

#include "core/buf.h"
#include "http/http_int.h"

/*
 * One entry per byte, a bit per class (see http_int.h). Generated once
 * from the RFC 9110 grammar and kept as a literal so a reader can check a
 * byte at a glance; tests/unit/http walks all 256 bytes through the parser.
 */
const uint8_t http_ctype[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x00-0x07: controls */
	0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x08-0x0f: controls */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x10-0x17: controls */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x18-0x1f: controls */
	0x08, 0x43, 0x02, 0x03, 0x43, 0x43, 0x43, 0x43, /* SP ! " # $ % & ' */
	0x42, 0x42, 0x43, 0x43, 0x42, 0x43, 0x43, 0x02, /* ( ) * + , - . / */
	0x73, 0x73, 0x73, 0x73, 0x73, 0x73, 0x73, 0x73, /* 0 1 2 3 4 5 6 7 */
	0x73, 0x73, 0x42, 0x42, 0x02, 0x42, 0x02, 0x02, /* 8 9 : ; < = > ? */
	0x02, 0x63, 0x63, 0x63, 0x63, 0x63, 0x63, 0x43, /* @ A B C D E F G */
	0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, /* H I J K L M N O */
	0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, /* P Q R S T U V W */
	0x43, 0x43, 0x43, 0x42, 0x02, 0x42, 0x03, 0x43, /* X Y Z [ \\ ] ^ _ */
	0x03, 0x63, 0x63, 0x63, 0x63, 0x63, 0x63, 0x43, /* ` a b c d e f g */
	0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, /* h i j k l m n o */
	0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, 0x43, /* p q r s t u v w */
	0x43, 0x43, 0x43, 0x02, 0x03, 0x02, 0x43, 0x00, /* x y z { | } ~ DEL */
	/* 0x80-0xff: obs-text */
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
	0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04,
};

int http_mem_ieq(const char *a, const char *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (http_lower((unsigned char)a[i]) !=
		    http_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int http_list_next(struct http_list *l, const char **elem, size_t *elen)
{
	const char *p = l->p, *start, *last;
	int quoted = 0;

	if (l->done)
		return 0;
	while (p < l->end && (*p == ' ' || *p == '\t'))
		p++;
	start = p;
	last = p; /* one past the last byte that is not SP/HTAB */
	for (; p < l->end; p++) {
		if (quoted) {
			if (*p == '\\' && p + 1 < l->end)
				p++;
			else if (*p == '"')
				quoted = 0;
			last = p + 1;
			continue;
		}
		if (*p == ',')
			break;
		if (*p == '"')
			quoted = 1;
		if (*p != ' ' && *p != '\t')
			last = p + 1;
	}
	*elem = start;
	*elen = (size_t)(last - start);
	if (p < l->end)
		l->p = p + 1; /* past the comma: at least one more element */
	else
		l->done = 1;
	return 1;
}

int http_span_ieq(const char *base, struct http_span s, const char *lit)
{
	const unsigned char *a = (const unsigned char *)base + s.off;
	const unsigned char *b = (const unsigned char *)lit;
	uint32_t i;

	for (i = 0; i < s.len; i++) {
		if (b[i] == '\0' || http_lower(a[i]) != http_lower(b[i]))
			return 0;
	}
	return b[i] == '\0';
}

int http_msg_find(const struct http_msg *m, const char *base,
		  const char *name, uint32_t from)
{
	size_t n = strlen(name);
	uint32_t i;

	for (i = from; i < m->nheaders; i++) {
		if (m->headers[i].name.len == n &&
		    http_span_ieq(base, m->headers[i].name, name))
			return (int)i;
	}
	return -1;
}

int http_msg_has_token(const struct http_msg *m, const char *base,
		       const char *name, const char *token)
{
	struct http_list l;
	const char *e;
	size_t elen, tlen = strlen(token);
	struct http_span v;
	int i;

	for (i = http_msg_find(m, base, name, 0); i >= 0;
	     i = http_msg_find(m, base, name, (uint32_t)i + 1)) {
		v = m->headers[i].value;
		http_list_init(&l, base + v.off, v.len);
		while (http_list_next(&l, &e, &elen))
			if (elen == tlen && http_mem_ieq(e, token, tlen))
				return 1;
	}
	return 0;
}

/* Indexed by enum http_method. */
static const char *const method_names[] = {
	[HTTP_M_OTHER] = "OTHER",     [HTTP_M_GET] = "GET",
	[HTTP_M_HEAD] = "HEAD",	      [HTTP_M_POST] = "POST",
	[HTTP_M_PUT] = "PUT",	      [HTTP_M_DELETE] = "DELETE",
	[HTTP_M_OPTIONS] = "OPTIONS", [HTTP_M_PATCH] = "PATCH",
	[HTTP_M_CONNECT] = "CONNECT", [HTTP_M_TRACE] = "TRACE",
};

enum http_method http_method_parse(const char *p, size_t len)
{
	/* Methods are case-sensitive: "get" is a valid token, not GET. */
	switch (len) {
	case 3:
		if (memcmp(p, "GET", 3) == 0)
			return HTTP_M_GET;
		if (memcmp(p, "PUT", 3) == 0)
			return HTTP_M_PUT;
		break;
	case 4:
		if (memcmp(p, "HEAD", 4) == 0)
			return HTTP_M_HEAD;
		if (memcmp(p, "POST", 4) == 0)
			return HTTP_M_POST;
		break;
	case 5:
		if (memcmp(p, "PATCH", 5) == 0)
			return HTTP_M_PATCH;
		if (memcmp(p, "TRACE", 5) == 0)
			return HTTP_M_TRACE;
		break;
	case 6:
		if (memcmp(p, "DELETE", 6) == 0)
			return HTTP_M_DELETE;
		break;
	case 7:
		if (memcmp(p, "OPTIONS", 7) == 0)
			return HTTP_M_OPTIONS;
		if (memcmp(p, "CONNECT", 7) == 0)
			return HTTP_M_CONNECT;
		break;
	}
	return HTTP_M_OTHER;
}

/* "OTHER" for HTTP_M_OTHER and out-of-range values: the real text of such
 * a method is in msg->method_s. */
const char *http_method_name(enum http_method m)
{
	if ((unsigned)m >= sizeof(method_names) / sizeof(method_names[0]))
		return "OTHER";
	return method_names[m];
}

const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 511: return "Network Authentication Required";
	}
	return "Unknown";
}

int http_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_form_decode(const char *s, size_t n, struct buf *out)
{
	buf_reset(out);
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi = i + 2 < n ? http_hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? http_hexval((unsigned char)s[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c == 0)
			return -EINVAL;
		buf_appendc(out, (char)c);
	}
	buf_cstr(out);
	return 0;
}
