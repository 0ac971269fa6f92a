/*
 * http.h - strict HTTP/1.1 message parsing (RFC 9110/9112), the chunked
 * codec and the serializer.
 *
 * The parser is incremental and zero-copy. The caller keeps the bytes of
 * one message head in a single buffer that it only ever appends to (it may
 * realloc it: the parser stores offsets, never pointers) and calls
 * http_parse() each time bytes arrive; the parser resumes where it stopped,
 * so a head delivered one byte at a time costs the same as one delivered
 * whole. Headers come out as (offset, length) spans into that buffer.
 *
 * It is strict on purpose: anything ambiguous is rejected, never repaired,
 * because a proxy that interprets a message differently from the server
 * behind it can be used to smuggle requests (RFC 9112 section 11.2). It
 * rejects, with 400 unless noted:
 *   - a bare LF or a bare CR anywhere in the head; NUL bytes;
 *   - invalid bytes in the method (tchar), the target (visible ASCII),
 *     header names (tchar) and header values (VCHAR, obs-text, SP, HTAB);
 *   - whitespace between a header name and the colon; obs-fold
 *     (a line starting with SP or HTAB);
 *   - Content-Length together with Transfer-Encoding; several
 *     Content-Length values that differ; a malformed or overflowing one;
 *   - a Transfer-Encoding whose final coding is not chunked, or any coding
 *     but chunked, or chunked twice;
 *   - HTTP/1.1 requests without Host or with more than one Host;
 *   - a target longer than limits.max_target_bytes (414);
 *   - a head longer than limits.max_head_bytes or with more than
 *     limits.max_headers fields (431);
 *   - a version other than HTTP/1.0 or HTTP/1.1 (505; a malformed
 *     version is 400).
 * Up to 4 empty lines (CRLF) before a request line are skipped, as
 * RFC 9112 section 2.2 allows.
 *
 * What it deliberately does not do: decode percent-escapes, normalise the
 * target, or interpret header semantics beyond framing, Host and
 * Connection. The message model (struct http_msg) carries what the proxy
 * needs to frame and forward a message.
 */
#ifndef SK_HTTP_HTTP_H
#define SK_HTTP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct buf;

enum http_method {
	HTTP_M_OTHER = 0, /* a valid token we have no enum for */
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_OPTIONS,
	HTTP_M_PATCH,
	HTTP_M_CONNECT,
	HTTP_M_TRACE,
};

/* A piece of the caller's buffer. */
struct http_span {
	uint32_t off;
	uint32_t len;
};

/* Flags the parser sets on each header once the head is complete. */
#define HTTP_HDR_HOP 0x01     /* hop-by-hop: Connection, Keep-Alive,
				 Proxy-Connection, TE, Trailer, Upgrade,
				 Proxy-Authenticate, Proxy-Authorization,
				 and every name listed in Connection */
#define HTTP_HDR_FRAMING 0x02 /* Content-Length or Transfer-Encoding */
#define HTTP_HDR_HOST 0x04

struct http_header {
	struct http_span name;
	struct http_span value; /* leading and trailing OWS trimmed */
	uint8_t flags;
};

struct http_limits {
	uint32_t max_head_bytes;   /* start line + fields + final CRLF */
	uint32_t max_headers;	   /* must be <= the caller's hcap */
	uint32_t max_target_bytes; /* requests only */
};

enum http_body {
	HTTP_BODY_NONE = 0, /* no body (GET without CL, 204, 304, HEAD resp) */
	HTTP_BODY_LENGTH,   /* content_length bytes (may be 0) */
	HTTP_BODY_CHUNKED,  /* chunked; use struct http_chunked */
	HTTP_BODY_EOF,	    /* responses only: read until the peer closes */
};

struct http_msg {
	unsigned is_request : 1;
	unsigned keep_alive : 1;      /* the connection may carry another
					 message after this one (version and
					 Connection: close/keep-alive) */
	unsigned expect_continue : 1; /* Expect: 100-continue */
	unsigned conn_upgrade : 1;    /* Connection lists "upgrade" */
	uint8_t version_minor;	      /* 0 or 1 */

	/* Requests. */
	enum http_method method;
	struct http_span method_s;
	struct http_span target;
	int host_idx; /* index of the Host header, or -1 */

	/* Responses. */
	int status;
	struct http_span reason;

	struct http_header *headers; /* caller-provided array */
	uint32_t nheaders;
	uint32_t hcap;

	enum http_body body;
	uint64_t content_length; /* valid when body == HTTP_BODY_LENGTH */
	uint32_t head_len;	 /* bytes of the head, final CRLF included */
};

struct http_parser {
	/* Private: resume state. */
	int state;
	uint32_t pos;	      /* next byte to examine */
	uint32_t mark;	      /* start of the token being scanned */
	uint32_t mark2;	      /* end of the field value so far, OWS excluded */
	uint32_t count;	      /* empty lines skipped before a request line,
				 then bytes of the version or status code */
	uint32_t max_headers; /* min(lim.max_headers, hcap) */
	uint8_t major;	      /* major digit of the version */
	enum http_method req_method; /* responses: the request's method */
	struct http_msg *msg;
	struct http_limits lim;

	/* Set when http_parse() returns HTTP_PARSE_ERROR. */
	int status;	    /* 400, 414, 431, 501 or 505 */
	const char *reason; /* short static text naming the rule */
};

enum {
	HTTP_PARSE_ERROR = -1,
	HTTP_PARSE_AGAIN = 0,
	HTTP_PARSE_DONE = 1,
};

/*
 * Prepares p to parse one message into m. hdrs/hcap is the caller's header
 * array (it must outlive the message); lim is copied. For a response,
 * req_method is the method of the request it answers (a response to HEAD,
 * and 1xx, 204 and 304 responses, have no body; a 2xx to CONNECT is not
 * supported and is an error). Pass HTTP_M_OTHER for requests.
 */
void http_parser_init(struct http_parser *p, int is_request,
		      enum http_method req_method, struct http_msg *m,
		      struct http_header *hdrs, uint32_t hcap,
		      const struct http_limits *lim);

/*
 * Parses buf[0..len), the bytes of the message so far from its first byte.
 * Only bytes past those already seen are examined. Returns HTTP_PARSE_DONE
 * once the head is complete (m->head_len tells where the body starts; bytes
 * past it are not looked at), HTTP_PARSE_AGAIN when more bytes are needed,
 * or HTTP_PARSE_ERROR with p->status and p->reason set. After DONE or
 * ERROR, further calls return the same result.
 */
int http_parse(struct http_parser *p, const char *buf, size_t len);

/* --- the message model ------------------------------------------------- */

static inline const char *http_span_ptr(const char *base, struct http_span s)
{
	return base + s.off;
}

/* Case-insensitive comparison of a span with a NUL-terminated string. */
int http_span_ieq(const char *base, struct http_span s, const char *lit);

/* The value of the hex digit c, or -1. */
int http_hexval(int c);
/*
 * Decodes an application/x-www-form-urlencoded piece (a query or form
 * value, or a key) s[0..n) into out, replacing its contents: '+' is a
 * space, %XX a byte. Returns 0 (out NUL-terminated), or -EINVAL for a
 * bad escape or an encoded NUL.
 */
int http_form_decode(const char *s, size_t n, struct buf *out);

/* Index of the first header named name (case-insensitive) at or after
 * index from, or -1. */
int http_msg_find(const struct http_msg *m, const char *base,
		  const char *name, uint32_t from);

/* True when the comma-separated value of header name contains token
 * (case-insensitive), in any of the fields of that name. */
int http_msg_has_token(const struct http_msg *m, const char *base,
		       const char *name, const char *token);

enum http_method http_method_parse(const char *p, size_t len);
const char *http_method_name(enum http_method m);
/* Standard reason phrase for status ("Not Found"), or "Unknown". */
const char *http_status_reason(int status);

/* --- chunked transfer coding (RFC 9112 section 7.1) -------------------- */

struct http_chunked {
	/* Private. */
	int state;
	uint64_t remaining;
	uint32_t line_len;
	uint32_t trailer_bytes;
	uint32_t max_trailer_bytes;
	/* Public. */
	int done;	    /* the last chunk and trailer section were read */
	const char *reason; /* set on error */
};

typedef void (*http_data_cb)(void *ud, const char *p, size_t n);

/* max_trailer_bytes bounds chunk-size lines with extensions and the
 * trailer section together (0 means 8 KiB). */
void http_chunked_init(struct http_chunked *c, uint32_t max_trailer_bytes);

/*
 * Scans len bytes of a chunked body. For each piece of chunk data calls
 * cb(ud, p, n) when cb is non-NULL (so a relay can pass the coded bytes on
 * untouched and a server can decode). Returns the number of bytes consumed:
 * all of len, or fewer only when the body ended (c->done) inside buf; or
 * -1 on malformed input (bad hex, a size that overflows 2^63, a missing
 * CRLF, a bare LF, oversized extensions or trailers, invalid trailer
 * fields), with c->reason set.
 */
ssize_t http_chunked_feed(struct http_chunked *c, const char *buf, size_t len,
			  http_data_cb cb, void *ud);

/* Writes the chunk-size line for n bytes ("1f40\r\n"); returns its length
 * (n must be > 0; use HTTP_CHUNK_LAST to end a body). */
size_t http_chunk_head(char out[24], size_t n);
#define HTTP_CHUNK_LAST "0\r\n\r\n"

/* --- serializer -------------------------------------------------------- */

/*
 * Appends m's start line (always as HTTP/1.1) and every header whose flags
 * do not intersect skip_flags, each as "Name: value\r\n", to out. The final
 * empty line is not written, so the caller can append its own headers.
 */
void http_serialize_head(struct buf *out, const struct http_msg *m,
			 const char *base, unsigned skip_flags);
void http_serialize_header(struct buf *out, const char *name,
			   const char *value);

/*
 * Appends a complete error response: status line, Content-Type text/plain,
 * Content-Length, "Connection: close" when close is set, and a short body
 * "<status> <reason>\n" followed by detail (may be NULL) on its own line.
 */
void http_error_response(struct buf *out, int status, const char *detail,
			 int close);

#endif
