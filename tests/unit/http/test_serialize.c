/*
 * test_serialize.c - heads rebuilt from parsed spans, single header
 * lines, and error responses.
 *
 * Inputs are parsed whole, one byte at a time and in random splits before
 * being serialized, and every rebuilt head is parsed again to check that
 * what we write is something we would accept.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "http/http.h"

#define HCAP 32

static const struct http_limits LIM = { 8192, HCAP, 4096 };

struct parsed {
	struct http_msg msg;
	struct http_header hdrs[HCAP];
	const char *base;
};

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Feeds raw in pieces of the given kind (0 whole, 1 bytes, else a seed
 * for random splits) into a fresh block per call; returns the result. */
static int parse_pieces(int is_request, enum http_method rm, const char *raw,
			size_t len, uint32_t mode, struct parsed *out)
{
	struct http_parser p;
	size_t have = 0, step;
	char *buf = NULL, *nb;
	int rc = HTTP_PARSE_AGAIN;
	uint32_t seed = mode;

	memset(out, 0, sizeof(*out));
	http_parser_init(&p, is_request, rm, &out->msg, out->hdrs, HCAP, &LIM);
	while (have < len && rc == HTTP_PARSE_AGAIN) {
		if (mode == 0)
			step = len;
		else if (mode == 1)
			step = 1;
		else
			step = 1 + rnd(&seed) % 9;
		if (step > len - have)
			step = len - have;
		have += step;
		nb = malloc(have);
		assert_non_null(nb);
		memcpy(nb, raw, have);
		free(buf);
		buf = nb;
		rc = http_parse(&p, buf, have);
	}
	free(buf);
	out->base = raw;
	return rc;
}

/* Parses raw three ways, checks they agree, and leaves the result in out. */
static void parse_ok(int is_request, enum http_method rm, const char *raw,
		     struct parsed *out)
{
	static struct parsed other;
	size_t len = strlen(raw);
	uint32_t mode, i;

	assert_int_equal(parse_pieces(is_request, rm, raw, len, 0, out),
			 HTTP_PARSE_DONE);
	for (mode = 1; mode <= 6; mode++) {
		assert_int_equal(parse_pieces(is_request, rm, raw, len,
					      mode * 2654435761u | 1, &other),
				 HTTP_PARSE_DONE);
		assert_int_equal(other.msg.head_len, out->msg.head_len);
		assert_int_equal(other.msg.nheaders, out->msg.nheaders);
		for (i = 0; i < out->msg.nheaders; i++)
			assert_memory_equal(&other.hdrs[i], &out->hdrs[i],
					    sizeof(other.hdrs[i]));
	}
}

static void assert_buf(struct buf *b, const char *want)
{
	if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
		fail_msg("got \"%.*s\"\nwant \"%s\"", (int)b->len, b->data,
			 want);
}

static void test_request_head_drops_hop_by_hop(void **state)
{
	struct parsed m;
	struct buf b;

	(void)state;
	parse_ok(1, HTTP_M_OTHER,
		 "GET /p?q=1 HTTP/1.0\r\n"
		 "Host: shop\r\n"
		 "Connection: keep-alive, X-Drop\r\n"
		 "X-Drop: 1\r\n"
		 "X-Keep:  v  w \r\n"
		 "Keep-Alive: timeout=5\r\n"
		 "\r\n",
		 &m);
	buf_init(&b);
	http_serialize_head(&b, &m.msg, m.base, HTTP_HDR_HOP);
	assert_buf(&b, "GET /p?q=1 HTTP/1.1\r\nHost: shop\r\nX-Keep: v  w\r\n");
	buf_reset(&b);
	http_serialize_head(&b, &m.msg, m.base, 0);
	assert_buf(&b, "GET /p?q=1 HTTP/1.1\r\nHost: shop\r\n"
		       "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
		       "X-Keep: v  w\r\nKeep-Alive: timeout=5\r\n");
	buf_fini(&b);
}

static void test_request_head_drops_framing_and_host(void **state)
{
	struct parsed m;
	struct buf b;

	(void)state;
	parse_ok(1, HTTP_M_OTHER,
		 "PURGE /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
		 "X-A: 1\r\n\r\n",
		 &m);
	buf_init(&b);
	http_serialize_head(&b, &m.msg, m.base,
			    HTTP_HDR_FRAMING | HTTP_HDR_HOST);
	assert_buf(&b, "PURGE /x HTTP/1.1\r\nX-A: 1\r\n");
	buf_fini(&b);
}

static void test_response_head(void **state)
{
	struct parsed m;
	struct buf b;

	(void)state;
	buf_init(&b);
	parse_ok(0, HTTP_M_GET,
		 "HTTP/1.0 404 Nope\r\nContent-Length: 0\r\nServer: x\r\n\r\n",
		 &m);
	http_serialize_head(&b, &m.msg, m.base, HTTP_HDR_FRAMING);
	assert_buf(&b, "HTTP/1.1 404 Nope\r\nServer: x\r\n");
	buf_reset(&b);
	/* An empty reason is replaced by the standard one. */
	parse_ok(0, HTTP_M_GET, "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", &m);
	http_serialize_head(&b, &m.msg, m.base, 0);
	assert_buf(&b, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
	buf_fini(&b);
}

static void test_round_trip_reparses(void **state)
{
	static const char *inputs[] = {
		"GET /a%20b HTTP/1.1\r\nHost: h:8080\r\nAccept:*/*\r\n"
		"X-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
		"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
		"Expect: 100-continue\r\n\r\n",
	};
	struct parsed m, again;
	struct buf b;
	uint32_t i, k;
	char *copy;

	(void)state;
	for (k = 0; k < 2; k++) {
		parse_ok(1, HTTP_M_OTHER, inputs[k], &m);
		buf_init(&b);
		http_serialize_head(&b, &m.msg, m.base, 0);
		buf_appends(&b, "\r\n");
		copy = buf_cstr(&b);
		parse_ok(1, HTTP_M_OTHER, copy, &again);
		assert_int_equal(again.msg.nheaders, m.msg.nheaders);
		assert_int_equal(again.msg.body, m.msg.body);
		assert_int_equal(again.msg.expect_continue,
				 m.msg.expect_continue);
		for (i = 0; i < m.msg.nheaders; i++) {
			assert_int_equal(again.hdrs[i].value.len,
					 m.hdrs[i].value.len);
			assert_memory_equal(copy + again.hdrs[i].value.off,
					    m.base + m.hdrs[i].value.off,
					    m.hdrs[i].value.len);
			assert_int_equal(again.hdrs[i].flags, m.hdrs[i].flags);
		}
		buf_fini(&b);
	}
}

static void test_serialize_header(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	http_serialize_header(&b, "X-Forwarded-For", "192.0.2.1");
	http_serialize_header(&b, "X-Empty", "");
	assert_buf(&b, "X-Forwarded-For: 192.0.2.1\r\nX-Empty: \r\n");
	buf_fini(&b);
}

static void test_serialize_header_refuses_injection(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	http_serialize_header(&b, "X-A", "v\r\nSet-Cookie: evil=1");
	http_serialize_header(&b, "X-A", "v\nw");
	http_serialize_header(&b, "X A", "v");
	http_serialize_header(&b, "X-A:", "v");
	http_serialize_header(&b, "", "v");
	assert_int_equal(b.len, 0);
	buf_fini(&b);
}

static void test_error_response_with_detail(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	http_error_response(&b, 400, "bare LF", 1);
	assert_buf(&b, "HTTP/1.1 400 Bad Request\r\n"
		       "Content-Type: text/plain\r\n"
		       "Content-Length: 24\r\n"
		       "Connection: close\r\n"
		       "\r\n"
		       "400 Bad Request\n"
		       "bare LF\n");
	buf_fini(&b);
}

static void test_error_response_without_detail(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	http_error_response(&b, 503, NULL, 0);
	assert_buf(&b, "HTTP/1.1 503 Service Unavailable\r\n"
		       "Content-Type: text/plain\r\n"
		       "Content-Length: 24\r\n"
		       "\r\n"
		       "503 Service Unavailable\n");
	buf_fini(&b);
}

static void test_error_response_parses_back(void **state)
{
	static const int codes[] = { 400, 414, 431, 501, 502, 505 };
	struct parsed m;
	struct buf b;
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		buf_init(&b);
		http_error_response(&b, codes[i], "detail text", (int)(i & 1));
		s = buf_cstr(&b);
		parse_ok(0, HTTP_M_GET, s, &m);
		assert_int_equal(m.msg.status, codes[i]);
		assert_int_equal(m.msg.body, HTTP_BODY_LENGTH);
		assert_int_equal(m.msg.content_length,
				 b.len - m.msg.head_len);
		assert_int_equal(m.msg.keep_alive, !(i & 1));
		buf_fini(&b);
	}
}

/* Form and query values: '+', %XX, and what is refused. */
static void test_form_decode(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
		{"a+b%20c", "a b c"}, {"%41%62", "Ab"}, {"", ""},
		{"%e2%82%AC", "\xe2\x82\xac"}, {"100%", NULL}, {"%4", NULL},
		{"%zz", NULL}, {"x%00y", NULL},
	};
	struct buf b;

	(void)state;
	buf_init(&b);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = http_form_decode(cases[i].in, strlen(cases[i].in), &b);

		if (cases[i].out == NULL) {
			assert_int_equal(r, -EINVAL);
		} else {
			assert_int_equal(r, 0);
			assert_string_equal(buf_cstr(&b), cases[i].out);
		}
	}
	assert_int_equal(http_hexval('f'), 15);
	assert_int_equal(http_hexval('G'), -1);
	buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_head_drops_hop_by_hop),
		cmocka_unit_test(test_request_head_drops_framing_and_host),
		cmocka_unit_test(test_response_head),
		cmocka_unit_test(test_round_trip_reparses),
		cmocka_unit_test(test_serialize_header),
		cmocka_unit_test(test_serialize_header_refuses_injection),
		cmocka_unit_test(test_error_response_with_detail),
		cmocka_unit_test(test_error_response_without_detail),
		cmocka_unit_test(test_error_response_parses_back),
		cmocka_unit_test(test_form_decode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
