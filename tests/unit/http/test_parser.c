/*
 * test_parser.c - the HTTP/1.1 head parser and the message model.
 *
 * Every case goes through parse3(), which parses the same bytes three
 * ways: whole, one byte per call, and in random splits (fixed seeds). Each
 * call gets a fresh, exactly sized copy of the bytes so far, so a parser
 * that kept a pointer or read past len trips ASan, and all three runs must
 * agree on the result, the error status and reason, and every field of the
 * message. Each rejection rule has its own test asserting the status and
 * the rule named in p->reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

#define HCAP 128

struct pconf {
	int is_request;
	enum http_method req_method;
	struct http_limits lim;
	uint32_t hcap;
};

struct presult {
	int rc;
	int status;
	const char *reason;
	struct http_msg msg;
	struct http_header hdrs[HCAP];
	const char *base; /* the input, for reading spans */
	size_t len;
};

enum { WHOLE, BYTES, SPLIT };

static const struct pconf REQ = { 1, HTTP_M_OTHER, { 8192, 100, 4096 }, HCAP };

static struct presult R; /* the whole-buffer result of the last parse3() */

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static size_t next_step(int mode, uint32_t *seed, size_t left)
{
	uint32_t r;

	if (mode == WHOLE)
		return left;
	if (mode == BYTES)
		return 1;
	r = rnd(seed);
	r = (r & 3) == 0 ? 1 + r % (uint32_t)left : 1 + (r >> 2) % 7;
	return r < left ? r : left;
}

static void run(const struct pconf *c, const char *raw, size_t len, int mode,
		uint32_t seed, struct presult *r)
{
	struct http_parser p;
	char *buf = NULL, *nb;
	size_t have = 0;
	int rc = HTTP_PARSE_AGAIN;

	memset(r, 0, sizeof(*r));
	http_parser_init(&p, c->is_request, c->req_method, &r->msg, r->hdrs,
			 c->hcap, &c->lim);
	if (len == 0)
		rc = http_parse(&p, "", 0);
	while (have < len) {
		have += next_step(mode, &seed, len - have);
		/* A fresh block of exactly the bytes so far, as if the
		 * caller had realloc'd: offsets must survive, and a read
		 * past len is caught by ASan. */
		nb = malloc(have);
		assert_non_null(nb);
		memcpy(nb, raw, have);
		free(buf);
		buf = nb;
		rc = http_parse(&p, buf, have);
		if (rc != HTTP_PARSE_AGAIN)
			break;
	}
	if (rc != HTTP_PARSE_AGAIN) {
		/* The result sticks. */
		assert_int_equal(http_parse(&p, buf, have), rc);
		if (mode == BYTES && rc == HTTP_PARSE_DONE)
			/* Done on the final LF, not a byte later. */
			assert_int_equal(r->msg.head_len, have);
	}
	free(buf);
	r->rc = rc;
	r->status = p.status;
	r->reason = p.reason;
	r->base = raw;
	r->len = len;
}

static void assert_span_eq(struct http_span a, struct http_span b)
{
	assert_int_equal(a.off, b.off);
	assert_int_equal(a.len, b.len);
}

static void assert_same(const struct presult *a, const struct presult *b)
{
	const struct http_msg *x = &a->msg, *y = &b->msg;
	uint32_t i;

	assert_int_equal(a->rc, b->rc);
	if (a->rc == HTTP_PARSE_ERROR) {
		assert_int_equal(a->status, b->status);
		assert_string_equal(a->reason, b->reason);
		return;
	}
	if (a->rc != HTTP_PARSE_DONE)
		return;
	assert_int_equal(x->is_request, y->is_request);
	assert_int_equal(x->keep_alive, y->keep_alive);
	assert_int_equal(x->expect_continue, y->expect_continue);
	assert_int_equal(x->conn_upgrade, y->conn_upgrade);
	assert_int_equal(x->version_minor, y->version_minor);
	assert_int_equal(x->method, y->method);
	assert_span_eq(x->method_s, y->method_s);
	assert_span_eq(x->target, y->target);
	assert_int_equal(x->host_idx, y->host_idx);
	assert_int_equal(x->status, y->status);
	assert_span_eq(x->reason, y->reason);
	assert_int_equal(x->nheaders, y->nheaders);
	assert_int_equal(x->body, y->body);
	assert_int_equal(x->content_length, y->content_length);
	assert_int_equal(x->head_len, y->head_len);
	for (i = 0; i < x->nheaders; i++) {
		assert_span_eq(a->hdrs[i].name, b->hdrs[i].name);
		assert_span_eq(a->hdrs[i].value, b->hdrs[i].value);
		assert_int_equal(a->hdrs[i].flags, b->hdrs[i].flags);
	}
}

static void assert_within(struct http_span s, uint32_t head_len)
{
	assert_true((uint64_t)s.off + s.len <= head_len);
}

/* Parses raw[0..len) whole, byte by byte and in 8 random splits; leaves
 * the whole-buffer result in R. */
static void parse3(const struct pconf *c, const char *raw, size_t len)
{
	static struct presult other;
	uint32_t seed, i;

	run(c, raw, len, WHOLE, 0, &R);
	run(c, raw, len, BYTES, 0, &other);
	assert_same(&R, &other);
	for (seed = 1; seed <= 8; seed++) {
		run(c, raw, len, SPLIT, seed * 2654435761u, &other);
		assert_same(&R, &other);
	}
	if (R.rc == HTTP_PARSE_DONE) {
		assert_true(R.msg.head_len <= len);
		assert_true(R.msg.nheaders <= c->hcap);
		assert_within(R.msg.method_s, R.msg.head_len);
		assert_within(R.msg.target, R.msg.head_len);
		assert_within(R.msg.reason, R.msg.head_len);
		for (i = 0; i < R.msg.nheaders; i++) {
			assert_within(R.hdrs[i].name, R.msg.head_len);
			assert_within(R.hdrs[i].value, R.msg.head_len);
		}
	}
}

static void expect_done(const struct pconf *c, const char *raw, size_t len)
{
	parse3(c, raw, len);
	if (R.rc != HTTP_PARSE_DONE)
		fail_msg("expected DONE, got %d (%d %s)", R.rc, R.status,
			 R.reason ? R.reason : "-");
}

static void expect_error(const struct pconf *c, const char *raw, size_t len,
			 int status, const char *why)
{
	parse3(c, raw, len);
	assert_int_equal(R.rc, HTTP_PARSE_ERROR);
	assert_int_equal(R.status, status);
	assert_non_null(R.reason);
	if (strstr(R.reason, why) == NULL)
		fail_msg("reason \"%s\" does not name \"%s\"", R.reason, why);
}

static struct pconf resp_conf(enum http_method req_method)
{
	struct pconf c = REQ;

	c.is_request = 0;
	c.req_method = req_method;
	return c;
}

/* Literal inputs; sizeof keeps embedded NUL bytes. */
#define REQ_OK(raw) expect_done(&REQ, raw, sizeof(raw) - 1)
#define REQ_ERR(raw, st, why) expect_error(&REQ, raw, sizeof(raw) - 1, st, why)
#define RESP_OK(m, raw)                                                      \
	do {                                                                  \
		struct pconf rc_ = resp_conf(m);                               \
		expect_done(&rc_, raw, sizeof(raw) - 1);                       \
	} while (0)
#define RESP_ERR(m, raw, st, why)                                            \
	do {                                                                  \
		struct pconf rc_ = resp_conf(m);                               \
		expect_error(&rc_, raw, sizeof(raw) - 1, st, why);             \
	} while (0)

static void assert_span_str(struct http_span s, const char *want)
{
	size_t n = strlen(want);

	if (s.len != n || memcmp(R.base + s.off, want, n) != 0)
		fail_msg("span \"%.*s\" != \"%s\"", (int)s.len, R.base + s.off,
			 want);
}

static void assert_header(uint32_t i, const char *name, const char *value,
			  unsigned flags)
{
	assert_true(i < R.msg.nheaders);
	assert_span_str(R.hdrs[i].name, name);
	assert_span_str(R.hdrs[i].value, value);
	assert_int_equal(R.hdrs[i].flags, flags);
}

/* ---- acceptance --------------------------------------------------------- */

static void test_get_simple(void **state)
{
	(void)state;
	REQ_OK("GET /index.html?q=1 HTTP/1.1\r\n"
	       "Host: shop.example\r\n"
	       "User-Agent: t\r\n"
	       "\r\n");
	assert_int_equal(R.msg.is_request, 1);
	assert_int_equal(R.msg.method, HTTP_M_GET);
	assert_span_str(R.msg.method_s, "GET");
	assert_span_str(R.msg.target, "/index.html?q=1");
	assert_int_equal(R.msg.version_minor, 1);
	assert_int_equal(R.msg.nheaders, 2);
	assert_header(0, "Host", "shop.example", HTTP_HDR_HOST);
	assert_header(1, "User-Agent", "t", 0);
	assert_int_equal(R.msg.host_idx, 0);
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	assert_int_equal(R.msg.keep_alive, 1);
	assert_int_equal(R.msg.expect_continue, 0);
	assert_int_equal(R.msg.head_len, R.len);
}

static void test_post_content_length(void **state)
{
	(void)state;
	REQ_OK("POST /cart HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"
	       "hello world");
	assert_int_equal(R.msg.method, HTTP_M_POST);
	assert_int_equal(R.msg.body, HTTP_BODY_LENGTH);
	assert_int_equal(R.msg.content_length, 11);
	assert_header(1, "Content-Length", "11", HTTP_HDR_FRAMING);
	/* The body is not part of the head. */
	assert_int_equal(R.msg.head_len, R.len - 11);
}

static void test_post_content_length_zero(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_LENGTH);
	assert_int_equal(R.msg.content_length, 0);
}

struct sink {
	char data[256];
	size_t len;
};

static void sink_cb(void *ud, const char *p, size_t n)
{
	struct sink *s = ud;

	assert_true(s->len + n <= sizeof(s->data));
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

static void test_post_chunked(void **state)
{
	static const char raw[] = "POST /upload HTTP/1.1\r\n"
				  "Host: a\r\n"
				  "Transfer-Encoding: chunked\r\n"
				  "\r\n"
				  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
	struct http_chunked ck;
	struct sink s = { .len = 0 };
	ssize_t n;

	(void)state;
	REQ_OK(raw);
	assert_int_equal(R.msg.body, HTTP_BODY_CHUNKED);
	assert_header(1, "Transfer-Encoding", "chunked", HTTP_HDR_FRAMING);
	http_chunked_init(&ck, 0);
	n = http_chunked_feed(&ck, raw + R.msg.head_len,
			      R.len - R.msg.head_len, sink_cb, &s);
	assert_int_equal(n, (ssize_t)(R.len - R.msg.head_len));
	assert_int_equal(ck.done, 1);
	assert_int_equal(s.len, 11);
	assert_memory_equal(s.data, "hello world", 11);
}

static void test_chunked_is_case_insensitive(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n"
	       "\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_CHUNKED);
}

static void test_pipelined_second_request_untouched(void **state)
{
	static const char raw[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
				  "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
	static const size_t first = sizeof("GET /a HTTP/1.1\r\nHost: x\r\n\r\n") - 1;

	(void)state;
	REQ_OK(raw);
	assert_int_equal(R.msg.head_len, first);
	assert_span_str(R.msg.target, "/a");
	expect_done(&REQ, raw + first, sizeof(raw) - 1 - first);
	assert_span_str(R.msg.target, "/b");
}

static void test_bytes_after_head_not_examined(void **state)
{
	(void)state;
	/* Garbage that would be an error inside a head. */
	REQ_OK("GET / HTTP/1.1\r\nHost: x\r\n\r\n\0\n\r \x7f");
	assert_int_equal(R.msg.head_len, R.len - 5);
}

static void test_incomplete_is_again(void **state)
{
	(void)state;
	parse3(&REQ, "GET / HTTP/1.1\r\nHost: x\r\n", 25);
	assert_int_equal(R.rc, HTTP_PARSE_AGAIN);
	parse3(&REQ, "GET / HTTP/1.1\r\nHost: x\r\n\r", 26);
	assert_int_equal(R.rc, HTTP_PARSE_AGAIN);
	parse3(&REQ, "", 0);
	assert_int_equal(R.rc, HTTP_PARSE_AGAIN);
}

static void test_http10_keep_alive(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
	assert_int_equal(R.msg.version_minor, 0);
	assert_int_equal(R.msg.keep_alive, 1);
	assert_int_equal(R.msg.host_idx, -1);
	assert_header(0, "Connection", "Keep-Alive", HTTP_HDR_HOP);
}

static void test_http10_default_close(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.0\r\n\r\n");
	assert_int_equal(R.msg.keep_alive, 0);
	assert_int_equal(R.msg.nheaders, 0);
}

static void test_http11_connection_close(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n"
	       "\r\n");
	assert_int_equal(R.msg.keep_alive, 0);
}

static void test_connection_tokens_flag_hop(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\n"
	       "Host: a\r\n"
	       "X-Secret: 1\r\n"
	       "Connection: x-secret, , X-Other\r\n"
	       "x-other: 2\r\n"
	       "X-Kept: 3\r\n"
	       "Keep-Alive: timeout=5\r\n"
	       "Proxy-Connection: keep-alive\r\n"
	       "TE: trailers\r\n"
	       "Trailer: X-T\r\n"
	       "Upgrade: websocket\r\n"
	       "Proxy-Authorization: Basic x\r\n"
	       "Proxy-Authenticate: Basic\r\n"
	       "\r\n");
	assert_header(0, "Host", "a", HTTP_HDR_HOST);
	assert_header(1, "X-Secret", "1", HTTP_HDR_HOP);
	assert_header(2, "Connection", "x-secret, , X-Other", HTTP_HDR_HOP);
	assert_header(3, "x-other", "2", HTTP_HDR_HOP);
	assert_header(4, "X-Kept", "3", 0);
	assert_header(5, "Keep-Alive", "timeout=5", HTTP_HDR_HOP);
	assert_header(6, "Proxy-Connection", "keep-alive", HTTP_HDR_HOP);
	assert_header(7, "TE", "trailers", HTTP_HDR_HOP);
	assert_header(8, "Trailer", "X-T", HTTP_HDR_HOP);
	assert_header(9, "Upgrade", "websocket", HTTP_HDR_HOP);
	assert_header(10, "Proxy-Authorization", "Basic x", HTTP_HDR_HOP);
	assert_header(11, "Proxy-Authenticate", "Basic", HTTP_HDR_HOP);
	assert_int_equal(R.msg.keep_alive, 1);
	assert_int_equal(R.msg.conn_upgrade, 0);
}

static void test_connection_upgrade(void **state)
{
	(void)state;
	REQ_OK("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
	       "Upgrade: websocket\r\n\r\n");
	assert_int_equal(R.msg.conn_upgrade, 1);
	assert_int_equal(R.msg.keep_alive, 1);
}

static void test_expect_continue(void **state)
{
	(void)state;
	REQ_OK("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
	       "Content-Length: 3\r\n\r\n");
	assert_int_equal(R.msg.expect_continue, 1);
	assert_int_equal(R.msg.method, HTTP_M_PUT);
	/* HTTP/1.0 senders cannot mean it (RFC 9110 section 10.1.1). */
	REQ_OK("PUT /f HTTP/1.0\r\nExpect: 100-continue\r\n"
	       "Content-Length: 3\r\n\r\n");
	assert_int_equal(R.msg.expect_continue, 0);
}

static void test_value_ows_trimmed(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost:a\r\nX-A: \t v  a l \t \r\nX-B:\r\n"
	       "X-C:   \r\n\r\n");
	assert_header(0, "Host", "a", HTTP_HDR_HOST);
	assert_header(1, "X-A", "v  a l", 0);
	assert_header(2, "X-B", "", 0);
	assert_header(3, "X-C", "", 0);
}

static void test_obs_text_in_value_accepted(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n");
	assert_header(1, "X-Name", "caf\xc3\xa9", 0);
}

static void test_leading_empty_lines_skipped(void **state)
{
	(void)state;
	REQ_OK("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_span_str(R.msg.method_s, "GET");
	assert_int_equal(R.msg.method_s.off, 8);
	assert_int_equal(R.msg.head_len, R.len);
}

static void test_methods(void **state)
{
	(void)state;
	REQ_OK("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(R.msg.method, HTTP_M_DELETE);
	REQ_OK("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(R.msg.method, HTTP_M_OTHER);
	assert_span_str(R.msg.method_s, "PURGE");
	/* Methods are case-sensitive: a valid token, but not GET. */
	REQ_OK("get /x HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(R.msg.method, HTTP_M_OTHER);
	REQ_OK("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
	assert_int_equal(R.msg.method, HTTP_M_OPTIONS);
	assert_span_str(R.msg.target, "*");
	REQ_OK("CONNECT shop.example:443 HTTP/1.1\r\nHost: shop.example:443\r\n"
	       "\r\n");
	assert_int_equal(R.msg.method, HTTP_M_CONNECT);
}

static void test_content_length_identical_repeats(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n"
	       "Content-Length: 005\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_LENGTH);
	assert_int_equal(R.msg.content_length, 5);
}

static void test_content_length_max(void **state)
{
	(void)state;
	REQ_OK("POST / HTTP/1.1\r\nHost: a\r\n"
	       "Content-Length: 9223372036854775807\r\n\r\n");
	assert_true(R.msg.content_length == (uint64_t)INT64_MAX);
}

static void test_host_forms(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
	REQ_OK("GET / HTTP/1.1\r\nHost: xn--caf-dma.example:80\r\n\r\n");
	/* An empty Host is what a target without authority calls for. */
	REQ_OK("GET / HTTP/1.1\r\nHost:\r\n\r\n");
	assert_int_equal(R.msg.host_idx, 0);
}

/* ---- responses ---------------------------------------------------------- */

static void test_response_content_length(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_GET, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
	assert_int_equal(R.msg.is_request, 0);
	assert_int_equal(R.msg.status, 200);
	assert_span_str(R.msg.reason, "OK");
	assert_int_equal(R.msg.body, HTTP_BODY_LENGTH);
	assert_int_equal(R.msg.content_length, 2);
	assert_int_equal(R.msg.keep_alive, 1);
	assert_int_equal(R.msg.host_idx, -1);
}

static void test_response_chunked(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			    "\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_CHUNKED);
	assert_int_equal(R.msg.keep_alive, 1);
}

static void test_response_eof(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_GET, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_EOF);
	assert_int_equal(R.msg.keep_alive, 0);
}

static void test_response_to_head(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_HEAD, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	assert_int_equal(R.msg.keep_alive, 1);
	RESP_OK(HTTP_M_HEAD, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			     "\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	RESP_OK(HTTP_M_HEAD, "HTTP/1.1 200 OK\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	assert_int_equal(R.msg.keep_alive, 1);
}

static void test_response_204_304(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_GET, "HTTP/1.1 204 No Content\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	assert_int_equal(R.msg.keep_alive, 1);
	RESP_OK(HTTP_M_GET, "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n"
			    "\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	assert_int_equal(R.msg.keep_alive, 1);
}

static void test_response_1xx(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_POST, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(R.msg.status, 100);
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	RESP_OK(HTTP_M_GET, "HTTP/1.1 101 Switching Protocols\r\n"
			    "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_NONE);
	assert_int_equal(R.msg.conn_upgrade, 1);
}

static void test_response_empty_reason(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_GET, "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(R.msg.status, 404);
	assert_int_equal(R.msg.reason.len, 0);
	RESP_OK(HTTP_M_GET, "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(R.msg.reason.len, 0);
	RESP_OK(HTTP_M_GET, "HTTP/1.1 200 All \tfine \xe2\x9c\x93\r\n"
			    "Content-Length: 0\r\n\r\n");
	assert_span_str(R.msg.reason, "All \tfine \xe2\x9c\x93");
}

static void test_response_http10(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_GET, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(R.msg.keep_alive, 0);
	RESP_OK(HTTP_M_GET, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n"
			    "Connection: keep-alive\r\n\r\n");
	assert_int_equal(R.msg.keep_alive, 1);
	RESP_OK(HTTP_M_GET, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_EOF);
	assert_int_equal(R.msg.keep_alive, 0);
}

static void test_response_connect_non_2xx(void **state)
{
	(void)state;
	RESP_OK(HTTP_M_CONNECT, "HTTP/1.1 407 Proxy Authentication Required\r\n"
				"Content-Length: 0\r\n\r\n");
	assert_int_equal(R.msg.body, HTTP_BODY_LENGTH);
}

/* ---- rejection: line endings and bytes ---------------------------------- */

static void test_reject_bare_lf_request_line(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF");
}

static void test_reject_bare_lf_header_line(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "bare LF");
}

static void test_reject_bare_lf_end_of_head(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "bare LF");
}

static void test_reject_bare_lf_empty_line(void **state)
{
	(void)state;
	REQ_ERR("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare LF");
}

static void test_reject_bare_cr_header_value(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, "bare CR");
}

static void test_reject_bare_cr_request_line(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR");
}

static void test_reject_bare_cr_end_of_head(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n\rX", 400, "bare CR");
}

static void test_reject_nul_in_value(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 400, "NUL");
}

static void test_reject_nul_in_target(void **state)
{
	(void)state;
	REQ_ERR("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "NUL");
}

static void test_reject_invalid_method_char(void **state)
{
	(void)state;
	REQ_ERR("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method");
	REQ_ERR("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method");
}

static void test_reject_leading_space(void **state)
{
	(void)state;
	REQ_ERR(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method");
}

static void test_reject_invalid_target_char(void **state)
{
	(void)state;
	REQ_ERR("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target");
	REQ_ERR("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target");
	REQ_ERR("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400, "target");
}

static void test_reject_double_space(void **state)
{
	(void)state;
	REQ_ERR("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "extra space");
	REQ_ERR("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, "version");
}

static void test_reject_missing_version(void **state)
{
	(void)state;
	REQ_ERR("GET /\r\n\r\n", 400, "missing HTTP version");
}

static void test_reject_invalid_header_name_char(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n", 400,
		"header name");
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX\x80: b\r\n\r\n", 400,
		"header name");
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n(X: b\r\n\r\n", 400,
		"header name");
}

static void test_reject_invalid_header_value_char(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 400,
		"header value");
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", 400,
		"header value");
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: \x1b\r\n\r\n", 400,
		"header value");
}

static void test_reject_space_before_colon(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400,
		"whitespace before colon");
}

static void test_reject_tab_before_colon(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", 400,
		"whitespace before colon");
}

static void test_reject_obs_fold(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400,
		"obs-fold");
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", 400,
		"obs-fold");
}

static void test_reject_whitespace_before_first_field(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obs-fold");
}

static void test_reject_empty_header_name(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400,
		"empty header name");
}

static void test_reject_header_without_colon(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400,
		"without colon");
}

static void test_reject_too_many_empty_lines(void **state)
{
	(void)state;
	REQ_ERR("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
		"too many empty lines");
}

/* ---- rejection: framing ------------------------------------------------- */

static void test_reject_cl_with_te(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
		"Transfer-Encoding: chunked\r\n\r\n",
		400, "content-length with transfer-encoding");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"Content-Length: 5\r\n\r\n",
		400, "content-length with transfer-encoding");
}

static void test_reject_cl_differing_fields(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
		"Content-Length: 6\r\n\r\n",
		400, "conflicting content-length");
}

static void test_reject_cl_differing_list(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
		400, "conflicting content-length");
}

static void test_reject_cl_malformed(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", 400,
		"malformed content-length");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400,
		"malformed content-length");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400,
		"malformed content-length");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
		400, "malformed content-length");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n",
		400, "malformed content-length");
}

static void test_reject_cl_empty(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400,
		"malformed content-length");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", 400,
		"malformed content-length");
}

static void test_reject_cl_overflow(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\n"
		"Content-Length: 9223372036854775808\r\n\r\n",
		400, "content-length too large");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\n"
		"Content-Length: 99999999999999999999999\r\n\r\n",
		400, "content-length too large");
}

static void test_reject_te_gzip_chunked(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked"
		"\r\n\r\n",
		400, "transfer coding other than chunked");
}

static void test_reject_te_chunked_twice(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: chunked, chunked\r\n\r\n",
		400, "chunked applied more than once");
}

static void test_reject_te_chunked_two_fields(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
		"Transfer-Encoding: chunked\r\n\r\n",
		400, "chunked applied more than once");
}

static void test_reject_te_identity(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n"
		"\r\n",
		400, "final transfer coding is not chunked");
}

static void test_reject_te_chunked_not_final(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip"
		"\r\n\r\n",
		400, "final transfer coding is not chunked");
}

static void test_reject_te_empty_element(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n"
		"\r\n",
		400, "empty transfer coding");
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400,
		"empty transfer coding");
}

static void test_reject_te_with_parameter(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\n"
		"Transfer-Encoding: chunked;q=1\r\n\r\n",
		400, "final transfer coding is not chunked");
}

static void test_reject_te_in_http10(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
		"transfer-encoding in HTTP/1.0");
}

static void test_reject_connection_names_framing(void **state)
{
	(void)state;
	REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
		"Connection: Content-Length\r\n\r\n",
		400, "connection option names a framing");
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, host\r\n\r\n",
		400, "connection option names a framing");
}

static void test_reject_invalid_connection_option(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nConnection: close x\r\n\r\n", 400,
		"invalid connection option");
}

/* ---- rejection: version and Host ---------------------------------------- */

static void test_reject_version_2_0(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version");
}

static void test_reject_version_1_2(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "version");
	REQ_ERR("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "version");
}

static void test_reject_version_1_10(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "malformed HTTP "
							  "version");
}

static void test_reject_version_lowercase(void **state)
{
	(void)state;
	REQ_ERR("GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP "
							  "version");
}

static void test_reject_version_malformed(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP");
	REQ_ERR("GET / HTTP/11\r\nHost: a\r\n\r\n", 400, "malformed HTTP");
	REQ_ERR("GET / HTTP/1.\r\nHost: a\r\n\r\n", 400, "malformed HTTP");
	REQ_ERR("GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP");
}

static void test_reject_missing_host(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, "missing host");
}

static void test_reject_two_hosts(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400,
		"multiple host");
	REQ_ERR("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400,
		"multiple host");
}

static void test_reject_invalid_host(void **state)
{
	(void)state;
	REQ_ERR("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid host");
	REQ_ERR("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid host");
	REQ_ERR("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, "invalid host");
}

/* ---- rejection: limits -------------------------------------------------- */

static void test_target_too_long_414(void **state)
{
	struct pconf c = REQ;
	char raw[128];
	int n;

	(void)state;
	c.lim.max_target_bytes = 16;
	n = snprintf(raw, sizeof(raw), "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n",
		     "234567890123456");
	expect_done(&c, raw, (size_t)n);
	assert_int_equal(R.msg.target.len, 16);
	n = snprintf(raw, sizeof(raw), "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n",
		     "2345678901234567");
	expect_error(&c, raw, (size_t)n, 414, "target too long");
	/* Known at the 17th byte, before the rest of the line arrives. */
	expect_error(&c, raw, 4 + 17, 414, "target too long");
}

static void test_head_too_large_431(void **state)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789\r\n"
				  "\r\n";
	struct pconf c = REQ;

	(void)state;
	c.lim.max_head_bytes = sizeof(raw) - 1;
	expect_done(&c, raw, sizeof(raw) - 1);
	c.lim.max_head_bytes = sizeof(raw) - 2;
	expect_error(&c, raw, sizeof(raw) - 1, 431, "header section too large");
	/* Up to the limit the head might still end in time. */
	parse3(&c, raw, sizeof(raw) - 2);
	assert_int_equal(R.rc, HTTP_PARSE_AGAIN);
}

static void test_head_too_large_default_limits(void **state)
{
	static char raw[9000];
	size_t n;

	(void)state;
	n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\n"
					       "X-Big: ");
	memset(raw + n, 'v', 8200);
	n += 8200;
	memcpy(raw + n, "\r\n\r\n", 4);
	n += 4;
	expect_error(&REQ, raw, n, 431, "too large");
	/* The 431 does not wait for the end of the head. */
	expect_error(&REQ, raw, REQ.lim.max_head_bytes + 1, 431, "too large");
	parse3(&REQ, raw, REQ.lim.max_head_bytes);
	assert_int_equal(R.rc, HTTP_PARSE_AGAIN);
}

static size_t make_headers(char *raw, size_t cap, unsigned count)
{
	size_t n;
	unsigned k;

	n = (size_t)snprintf(raw, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (k = 1; k < count; k++)
		n += (size_t)snprintf(raw + n, cap - n, "X-H%u: %u\r\n", k, k);
	n += (size_t)snprintf(raw + n, cap - n, "\r\n");
	assert_true(n < cap);
	return n;
}

static void test_too_many_headers_431(void **state)
{
	static char raw[4096];
	struct pconf c = REQ;
	size_t n;

	(void)state;
	c.lim.max_headers = 3;
	n = make_headers(raw, sizeof(raw), 3);
	expect_done(&c, raw, n);
	assert_int_equal(R.msg.nheaders, 3);
	n = make_headers(raw, sizeof(raw), 4);
	expect_error(&c, raw, n, 431, "too many header fields");
}

static void test_too_many_headers_default_limit(void **state)
{
	static char raw[8192];
	size_t n;

	(void)state;
	n = make_headers(raw, sizeof(raw), 100);
	expect_done(&REQ, raw, n);
	n = make_headers(raw, sizeof(raw), 101);
	expect_error(&REQ, raw, n, 431, "too many header fields");
}

static void test_header_count_bounded_by_hcap(void **state)
{
	static char raw[4096];
	struct pconf c = REQ;
	size_t n;

	(void)state;
	c.hcap = 2; /* smaller than max_headers: the array wins */
	n = make_headers(raw, sizeof(raw), 3);
	expect_error(&c, raw, n, 431, "too many header fields");
}

/* ---- rejection: responses ----------------------------------------------- */

static void test_reject_response_bad_status(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 20 OK\r\n\r\n", 400, "status code");
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 2000 OK\r\n\r\n", 400, "status code");
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 099 X\r\n\r\n", 400, "status code");
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 600 X\r\n\r\n", 400, "status code");
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 2x0 OK\r\n\r\n", 400, "status code");
	RESP_ERR(HTTP_M_GET, "HTTP/1.1\r\n\r\n", 400, "missing status code");
	RESP_ERR(HTTP_M_GET, "HTTP/1.1  200 OK\r\n\r\n", 400, "status code");
}

static void test_reject_response_version(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_GET, "HTTP/2.0 200 OK\r\n\r\n", 505, "version");
	RESP_ERR(HTTP_M_GET, "HTTP/1.10 200 OK\r\n\r\n", 400, "malformed");
	RESP_ERR(HTTP_M_GET, "ICY 200 OK\r\n\r\n", 400, "malformed");
	RESP_ERR(HTTP_M_GET, "\r\nHTTP/1.1 200 OK\r\n\r\n", 400, "malformed");
}

static void test_reject_response_reason_char(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 200 O\x01K\r\n\r\n", 400,
		 "reason phrase");
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 200 OK\nX: y\r\n\r\n", 400, "bare LF");
}

static void test_reject_response_cl_with_te(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			     "Content-Length: 3\r\n\r\n",
		 400, "content-length with transfer-encoding");
}

static void test_reject_response_te_not_chunked(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		 400, "final transfer coding is not chunked");
}

static void test_reject_response_te_http10(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_GET, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n"
			     "\r\n",
		 400, "transfer-encoding in HTTP/1.0");
}

static void test_reject_response_cl_conflict(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_GET, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
			     "Content-Length: 2\r\n\r\n",
		 400, "conflicting content-length");
}

static void test_reject_response_2xx_to_connect(void **state)
{
	(void)state;
	RESP_ERR(HTTP_M_CONNECT, "HTTP/1.1 200 Connection established\r\n\r\n",
		 501, "CONNECT");
}

/* ---- every byte in every position --------------------------------------- */

static int ref_tchar(int b)
{
	return b != 0 && (strchr("!#$%&'*+-.^_`|~", b) != NULL ||
			  (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') ||
			  (b >= 'A' && b <= 'Z'));
}

static int ref_field(int b)
{
	return b == ' ' || b == '\t' || (b >= 0x21 && b <= 0x7e) || b >= 0x80;
}

static void check_byte(const char *pre, int b, const char *post, int ok)
{
	char raw[128];
	size_t n = strlen(pre);

	memcpy(raw, pre, n);
	raw[n++] = (char)b;
	memcpy(raw + n, post, strlen(post));
	n += strlen(post);
	parse3(&REQ, raw, n);
	if ((R.rc == HTTP_PARSE_DONE) != ok)
		fail_msg("byte 0x%02x after \"%s\": rc %d (%s), expected %s", b,
			 pre, R.rc, R.reason ? R.reason : "-",
			 ok ? "DONE" : "ERROR");
	if (!ok)
		assert_int_equal(R.status, 400);
}

static void test_every_byte_in_method(void **state)
{
	int b;

	(void)state;
	for (b = 0; b < 256; b++)
		check_byte("G", b, "T / HTTP/1.1\r\nHost: a\r\n\r\n",
			   ref_tchar(b));
}

static void test_every_byte_in_target(void **state)
{
	int b;

	(void)state;
	for (b = 0; b < 256; b++)
		check_byte("GET /", b, " HTTP/1.1\r\nHost: a\r\n\r\n",
			   b >= 0x21 && b <= 0x7e);
}

static void test_every_byte_in_header_name(void **state)
{
	int b;

	(void)state;
	/* ':' just ends the name early: "X:Y: v" is a valid field. */
	for (b = 0; b < 256; b++)
		check_byte("GET / HTTP/1.1\r\nHost: a\r\nX", b, "Y: v\r\n\r\n",
			   ref_tchar(b) || b == ':');
}

static void test_every_byte_in_header_value(void **state)
{
	int b;

	(void)state;
	for (b = 0; b < 256; b++)
		check_byte("GET / HTTP/1.1\r\nHost: a\r\nX: a", b, "b\r\n\r\n",
			   ref_field(b));
}

/* ---- the message model -------------------------------------------------- */

static void test_span_ieq(void **state)
{
	const char *base = "xxContent-Type";
	struct http_span s = { 2, 12 };
	struct http_span empty = { 0, 0 };

	(void)state;
	assert_true(http_span_ieq(base, s, "content-type"));
	assert_true(http_span_ieq(base, s, "CONTENT-TYPE"));
	assert_false(http_span_ieq(base, s, "content-typ"));
	assert_false(http_span_ieq(base, s, "content-types"));
	assert_false(http_span_ieq(base, s, "content_type"));
	assert_true(http_span_ieq(base, empty, ""));
	assert_false(http_span_ieq(base, empty, "a"));
}

static void test_msg_find_and_has_token(void **state)
{
	(void)state;
	REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nCache-Control: no-store\r\n"
	       "X: 1\r\ncache-control: private=\"a, no-cache\", MAX-AGE=0\r\n"
	       "Accept-Encoding: gzip , br\r\n\r\n");
	assert_int_equal(http_msg_find(&R.msg, R.base, "cache-control", 0), 1);
	assert_int_equal(http_msg_find(&R.msg, R.base, "Cache-Control", 2), 3);
	assert_int_equal(http_msg_find(&R.msg, R.base, "cache-control", 4), -1);
	assert_int_equal(http_msg_find(&R.msg, R.base, "missing", 0), -1);
	assert_true(http_msg_has_token(&R.msg, R.base, "Cache-Control",
				       "no-store"));
	assert_true(http_msg_has_token(&R.msg, R.base, "cache-control",
				       "max-age=0"));
	/* Inside a quoted string, not a list element. */
	assert_false(http_msg_has_token(&R.msg, R.base, "cache-control",
					"no-cache"));
	assert_true(http_msg_has_token(&R.msg, R.base, "accept-encoding", "BR"));
	assert_true(http_msg_has_token(&R.msg, R.base, "accept-encoding",
				       "gzip"));
	assert_false(http_msg_has_token(&R.msg, R.base, "accept-encoding",
					"zstd"));
	assert_false(http_msg_has_token(&R.msg, R.base, "x-none", "a"));
}

static void test_method_parse_and_name(void **state)
{
	static const enum http_method all[] = {
		HTTP_M_GET,	HTTP_M_HEAD,  HTTP_M_POST,    HTTP_M_PUT,
		HTTP_M_DELETE,	HTTP_M_OPTIONS, HTTP_M_PATCH, HTTP_M_CONNECT,
		HTTP_M_TRACE,
	};
	const char *name;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		name = http_method_name(all[i]);
		assert_int_equal(http_method_parse(name, strlen(name)), all[i]);
	}
	assert_string_equal(http_method_name(HTTP_M_GET), "GET");
	assert_string_equal(http_method_name(HTTP_M_OTHER), "OTHER");
	assert_int_equal(http_method_parse("GETS", 4), HTTP_M_OTHER);
	assert_int_equal(http_method_parse("GE", 2), HTTP_M_OTHER);
	assert_int_equal(http_method_parse("post", 4), HTTP_M_OTHER);
}

static void test_status_reason(void **state)
{
	(void)state;
	assert_string_equal(http_status_reason(200), "OK");
	assert_string_equal(http_status_reason(404), "Not Found");
	assert_string_equal(http_status_reason(431),
			    "Request Header Fields Too Large");
	assert_string_equal(http_status_reason(505),
			    "HTTP Version Not Supported");
	assert_string_equal(http_status_reason(299), "Unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* acceptance */
		cmocka_unit_test(test_get_simple),
		cmocka_unit_test(test_post_content_length),
		cmocka_unit_test(test_post_content_length_zero),
		cmocka_unit_test(test_post_chunked),
		cmocka_unit_test(test_chunked_is_case_insensitive),
		cmocka_unit_test(test_pipelined_second_request_untouched),
		cmocka_unit_test(test_bytes_after_head_not_examined),
		cmocka_unit_test(test_incomplete_is_again),
		cmocka_unit_test(test_http10_keep_alive),
		cmocka_unit_test(test_http10_default_close),
		cmocka_unit_test(test_http11_connection_close),
		cmocka_unit_test(test_connection_tokens_flag_hop),
		cmocka_unit_test(test_connection_upgrade),
		cmocka_unit_test(test_expect_continue),
		cmocka_unit_test(test_value_ows_trimmed),
		cmocka_unit_test(test_obs_text_in_value_accepted),
		cmocka_unit_test(test_leading_empty_lines_skipped),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_content_length_identical_repeats),
		cmocka_unit_test(test_content_length_max),
		cmocka_unit_test(test_host_forms),
		cmocka_unit_test(test_response_content_length),
		cmocka_unit_test(test_response_chunked),
		cmocka_unit_test(test_response_eof),
		cmocka_unit_test(test_response_to_head),
		cmocka_unit_test(test_response_204_304),
		cmocka_unit_test(test_response_1xx),
		cmocka_unit_test(test_response_empty_reason),
		cmocka_unit_test(test_response_http10),
		cmocka_unit_test(test_response_connect_non_2xx),
		/* rejection: bytes and lines */
		cmocka_unit_test(test_reject_bare_lf_request_line),
		cmocka_unit_test(test_reject_bare_lf_header_line),
		cmocka_unit_test(test_reject_bare_lf_end_of_head),
		cmocka_unit_test(test_reject_bare_lf_empty_line),
		cmocka_unit_test(test_reject_bare_cr_header_value),
		cmocka_unit_test(test_reject_bare_cr_request_line),
		cmocka_unit_test(test_reject_bare_cr_end_of_head),
		cmocka_unit_test(test_reject_nul_in_value),
		cmocka_unit_test(test_reject_nul_in_target),
		cmocka_unit_test(test_reject_invalid_method_char),
		cmocka_unit_test(test_reject_leading_space),
		cmocka_unit_test(test_reject_invalid_target_char),
		cmocka_unit_test(test_reject_double_space),
		cmocka_unit_test(test_reject_missing_version),
		cmocka_unit_test(test_reject_invalid_header_name_char),
		cmocka_unit_test(test_reject_invalid_header_value_char),
		cmocka_unit_test(test_reject_space_before_colon),
		cmocka_unit_test(test_reject_tab_before_colon),
		cmocka_unit_test(test_reject_obs_fold),
		cmocka_unit_test(test_reject_whitespace_before_first_field),
		cmocka_unit_test(test_reject_empty_header_name),
		cmocka_unit_test(test_reject_header_without_colon),
		cmocka_unit_test(test_reject_too_many_empty_lines),
		/* rejection: framing */
		cmocka_unit_test(test_reject_cl_with_te),
		cmocka_unit_test(test_reject_cl_differing_fields),
		cmocka_unit_test(test_reject_cl_differing_list),
		cmocka_unit_test(test_reject_cl_malformed),
		cmocka_unit_test(test_reject_cl_empty),
		cmocka_unit_test(test_reject_cl_overflow),
		cmocka_unit_test(test_reject_te_gzip_chunked),
		cmocka_unit_test(test_reject_te_chunked_twice),
		cmocka_unit_test(test_reject_te_chunked_two_fields),
		cmocka_unit_test(test_reject_te_identity),
		cmocka_unit_test(test_reject_te_chunked_not_final),
		cmocka_unit_test(test_reject_te_empty_element),
		cmocka_unit_test(test_reject_te_with_parameter),
		cmocka_unit_test(test_reject_te_in_http10),
		cmocka_unit_test(test_reject_connection_names_framing),
		cmocka_unit_test(test_reject_invalid_connection_option),
		/* rejection: version and Host */
		cmocka_unit_test(test_reject_version_2_0),
		cmocka_unit_test(test_reject_version_1_2),
		cmocka_unit_test(test_reject_version_1_10),
		cmocka_unit_test(test_reject_version_lowercase),
		cmocka_unit_test(test_reject_version_malformed),
		cmocka_unit_test(test_reject_missing_host),
		cmocka_unit_test(test_reject_two_hosts),
		cmocka_unit_test(test_reject_invalid_host),
		/* rejection: limits */
		cmocka_unit_test(test_target_too_long_414),
		cmocka_unit_test(test_head_too_large_431),
		cmocka_unit_test(test_head_too_large_default_limits),
		cmocka_unit_test(test_too_many_headers_431),
		cmocka_unit_test(test_too_many_headers_default_limit),
		cmocka_unit_test(test_header_count_bounded_by_hcap),
		/* rejection: responses */
		cmocka_unit_test(test_reject_response_bad_status),
		cmocka_unit_test(test_reject_response_version),
		cmocka_unit_test(test_reject_response_reason_char),
		cmocka_unit_test(test_reject_response_cl_with_te),
		cmocka_unit_test(test_reject_response_te_not_chunked),
		cmocka_unit_test(test_reject_response_te_http10),
		cmocka_unit_test(test_reject_response_cl_conflict),
		cmocka_unit_test(test_reject_response_2xx_to_connect),
		/* byte classes */
		cmocka_unit_test(test_every_byte_in_method),
		cmocka_unit_test(test_every_byte_in_target),
		cmocka_unit_test(test_every_byte_in_header_name),
		cmocka_unit_test(test_every_byte_in_header_value),
		/* message model */
		cmocka_unit_test(test_span_ieq),
		cmocka_unit_test(test_msg_find_and_has_token),
		cmocka_unit_test(test_method_parse_and_name),
		cmocka_unit_test(test_status_reason),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
