/*
 * fuzz_parser.c - libFuzzer harness for the HTTP/1.1 head parser.
 *
 * The first input byte picks the setting, the rest is the message:
 *   bit 0     0 = request, 1 = response
 *   bits 1-2  for a response, the request method (GET, HEAD, CONNECT, POST)
 *   bit 3     small limits (so 414 and 431 are reachable) or the defaults
 *   bits 4-7  seed for the random splits
 *
 * Properties checked, each a crash when broken:
 *   - whole, random-split and (for short inputs) byte-at-a-time parses
 *     agree on the result, the error status and reason, and every field;
 *   - every span of an accepted head lies within head_len <= len, and no
 *     accepted name or value holds a byte the rules forbid;
 *   - the framing is consistent (no EOF body for a request, EOF implies
 *     no keep-alive, a request that needs Host has exactly one);
 *   - an accepted HTTP/1.1 head, serialized and parsed again, means the
 *     same thing;
 *   - a chunked body after the head decodes the same whole and split.
 * Each call of http_parse() gets a fresh, exactly sized copy of the bytes
 * so far, so a kept pointer or a read past len is an ASan report.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "http/http.h"

#define HCAP 128

#define CHECK(c)                                                             \
	do {                                                                  \
		if (!(c)) {                                                    \
			fprintf(stderr, "fuzz_parser: check failed: %s "       \
				"(line %d)\n", #c, __LINE__);                  \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct conf {
	int is_request;
	enum http_method req_method;
	struct http_limits lim;
};

struct result {
	int rc;
	int status;
	const char *reason;
	struct http_msg msg;
	struct http_header hdrs[HCAP];
};

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* step 0: random splits from seed; otherwise a fixed step. */
static void parse(const struct conf *c, const uint8_t *in, size_t len,
		  size_t fixed, uint32_t seed, struct result *r)
{
	struct http_parser p;
	size_t have = 0, step;
	char *buf = NULL, *nb;
	int rc = HTTP_PARSE_AGAIN;

	memset(r, 0, sizeof(*r));
	http_parser_init(&p, c->is_request, c->req_method, &r->msg, r->hdrs,
			 HCAP, &c->lim);
	if (len == 0)
		rc = http_parse(&p, "", 0);
	while (have < len && rc == HTTP_PARSE_AGAIN) {
		step = fixed ? fixed : 1 + rnd(&seed) % 64;
		if (step > len - have)
			step = len - have;
		have += step;
		nb = malloc(have);
		CHECK(nb != NULL);
		memcpy(nb, in, have);
		free(buf);
		buf = nb;
		rc = http_parse(&p, buf, have);
	}
	if (rc != HTTP_PARSE_AGAIN)
		CHECK(http_parse(&p, buf, have) == rc);
	free(buf);
	r->rc = rc;
	r->status = p.status;
	r->reason = p.reason;
}

static int span_eq(struct http_span a, struct http_span b)
{
	return a.off == b.off && a.len == b.len;
}

static void same(const struct result *a, const struct result *b)
{
	const struct http_msg *x = &a->msg, *y = &b->msg;
	uint32_t i;

	CHECK(a->rc == b->rc);
	if (a->rc == HTTP_PARSE_ERROR) {
		CHECK(a->status == b->status);
		CHECK(strcmp(a->reason, b->reason) == 0);
		return;
	}
	if (a->rc != HTTP_PARSE_DONE)
		return;
	CHECK(x->keep_alive == y->keep_alive);
	CHECK(x->expect_continue == y->expect_continue);
	CHECK(x->conn_upgrade == y->conn_upgrade);
	CHECK(x->version_minor == y->version_minor);
	CHECK(x->method == y->method);
	CHECK(span_eq(x->method_s, y->method_s));
	CHECK(span_eq(x->target, y->target));
	CHECK(x->host_idx == y->host_idx);
	CHECK(x->status == y->status);
	CHECK(span_eq(x->reason, y->reason));
	CHECK(x->nheaders == y->nheaders);
	CHECK(x->body == y->body);
	CHECK(x->content_length == y->content_length);
	CHECK(x->head_len == y->head_len);
	for (i = 0; i < x->nheaders; i++) {
		CHECK(span_eq(a->hdrs[i].name, b->hdrs[i].name));
		CHECK(span_eq(a->hdrs[i].value, b->hdrs[i].value));
		CHECK(a->hdrs[i].flags == b->hdrs[i].flags);
	}
}

enum span_kind { TOKEN, TARGET, VALUE, REASON /* a value, untrimmed */ };

/* The byte rules again, written independently of the parser's table. */
static int byte_ok(enum span_kind k, uint8_t c)
{
	switch (k) {
	case TOKEN:
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		       (c >= 'A' && c <= 'Z') ||
		       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
	case TARGET:
		return c > 0x20 && c < 0x7f;
	case VALUE:
	case REASON:
		return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f);
	}
	return 0;
}

static void check_span(const uint8_t *in, struct http_span s, uint32_t end,
		       enum span_kind k)
{
	uint32_t i;

	CHECK((uint64_t)s.off + s.len <= end);
	for (i = 0; i < s.len; i++)
		CHECK(byte_ok(k, in[s.off + i]));
	if (k == VALUE && s.len > 0) {
		CHECK(in[s.off] != ' ' && in[s.off] != '\t');
		CHECK(in[s.off + s.len - 1] != ' ' &&
		      in[s.off + s.len - 1] != '\t');
	}
}

static void check_accepted(const struct conf *c, const uint8_t *in,
			   size_t len, const struct result *r)
{
	const struct http_msg *m = &r->msg;
	uint32_t i;

	CHECK(m->head_len > 0 && m->head_len <= len);
	CHECK(m->nheaders <= c->lim.max_headers && m->nheaders <= HCAP);
	CHECK(m->head_len <= c->lim.max_head_bytes);
	CHECK(m->version_minor <= 1);
	CHECK(m->body != HTTP_BODY_EOF || !m->keep_alive);
	if (m->is_request) {
		check_span(in, m->method_s, m->head_len, TOKEN);
		check_span(in, m->target, m->head_len, TARGET);
		CHECK(m->method_s.len > 0 && m->target.len > 0);
		CHECK(m->target.len <= c->lim.max_target_bytes);
		CHECK(m->body != HTTP_BODY_EOF);
		if (m->version_minor == 1)
			CHECK(m->host_idx >= 0);
		if (m->host_idx >= 0)
			CHECK(http_span_ieq((const char *)in,
					    r->hdrs[m->host_idx].name, "host"));
	} else {
		CHECK(m->status >= 100 && m->status <= 599);
		check_span(in, m->reason, m->head_len, REASON);
		CHECK(m->host_idx == -1);
	}
	for (i = 0; i < m->nheaders; i++) {
		check_span(in, r->hdrs[i].name, m->head_len, TOKEN);
		CHECK(r->hdrs[i].name.len > 0);
		check_span(in, r->hdrs[i].value, m->head_len, VALUE);
	}
	CHECK(m->head_len >= 4 &&
	      memcmp(in + m->head_len - 4, "\r\n\r\n", 4) == 0);
}

/* Serializes an accepted HTTP/1.1 head and parses it again: the proxy
 * must never write what it would itself refuse, nor change the meaning. */
static void check_round_trip(const struct conf *c, const uint8_t *in,
			     const struct result *r)
{
	static struct result again;
	struct conf c2 = *c;
	struct buf b;
	uint32_t i;

	buf_init(&b);
	http_serialize_head(&b, &r->msg, (const char *)in, 0);
	buf_append(&b, "\r\n", 2);
	/* Writing "Name: value" adds a byte per field, a standard reason
	 * may be longer than an empty one. */
	c2.lim.max_head_bytes = c->lim.max_head_bytes * 2 + 64;
	parse(&c2, (const uint8_t *)b.data, b.len, b.len, 0, &again);
	CHECK(again.rc == HTTP_PARSE_DONE);
	CHECK(again.msg.head_len == b.len);
	CHECK(again.msg.nheaders == r->msg.nheaders);
	CHECK(again.msg.body == r->msg.body);
	CHECK(again.msg.content_length == r->msg.content_length);
	CHECK(again.msg.keep_alive == r->msg.keep_alive);
	CHECK(again.msg.expect_continue == r->msg.expect_continue);
	CHECK(again.msg.conn_upgrade == r->msg.conn_upgrade);
	CHECK(again.msg.host_idx == r->msg.host_idx);
	CHECK(again.msg.method == r->msg.method);
	CHECK(again.msg.status == r->msg.status);
	for (i = 0; i < r->msg.nheaders; i++) {
		CHECK(again.hdrs[i].flags == r->hdrs[i].flags);
		CHECK(again.hdrs[i].value.len == r->hdrs[i].value.len);
		CHECK(memcmp(b.data + again.hdrs[i].value.off,
			     in + r->hdrs[i].value.off,
			     r->hdrs[i].value.len) == 0);
	}
	buf_fini(&b);
}

struct body_sum {
	uint64_t hash;
	uint64_t n;
};

static void body_cb(void *ud, const char *p, size_t n)
{
	struct body_sum *s = ud;
	size_t i;

	for (i = 0; i < n; i++)
		s->hash = (s->hash ^ (uint8_t)p[i]) * 1099511628211ull;
	s->n += n;
}

/* Decodes in[0..len) as a chunked body with pieces of step bytes (0:
 * whole); returns bytes consumed or -1. */
static ssize_t chunked(const uint8_t *in, size_t len, size_t step,
		       struct body_sum *s, int *done)
{
	struct http_chunked ck;
	size_t off = 0, n;
	ssize_t r;

	http_chunked_init(&ck, 0);
	s->hash = 14695981039346656037ull;
	s->n = 0;
	while (off < len) {
		n = step && step < len - off ? step : len - off;
		r = http_chunked_feed(&ck, (const char *)in + off, n, body_cb,
				      s);
		if (r < 0) {
			CHECK(ck.reason != NULL);
			return -1;
		}
		CHECK((size_t)r <= n);
		off += (size_t)r;
		if (ck.done)
			break;
		CHECK((size_t)r == n);
	}
	*done = ck.done;
	return (ssize_t)off;
}

static void check_chunked_body(const uint8_t *in, size_t len)
{
	struct body_sum a, b;
	int da = 0, db = 0;
	ssize_t ra, rb;

	ra = chunked(in, len, 0, &a, &da);
	rb = chunked(in, len, 1 + len % 7, &b, &db);
	CHECK(ra == rb);
	if (ra >= 0) {
		CHECK(da == db);
		CHECK(a.n == b.n && a.hash == b.hash);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum http_method methods[] = {
		HTTP_M_GET, HTTP_M_HEAD, HTTP_M_CONNECT, HTTP_M_POST,
	};
	static const struct http_limits small = { 256, 8, 64 };
	static const struct http_limits dflt = { 8192, 100, 4096 };
	static struct result whole, other;
	struct conf c;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;

	c.is_request = !(sel & 1);
	c.req_method = c.is_request ? HTTP_M_OTHER : methods[(sel >> 1) & 3];
	c.lim = (sel & 8) ? small : dflt;

	parse(&c, data, size, size ? size : 1, 0, &whole);
	parse(&c, data, size, 0, (uint32_t)(sel >> 4) * 2654435761u + 1,
	      &other);
	same(&whole, &other);
	if (size <= 1024) {
		parse(&c, data, size, 1, 0, &other);
		same(&whole, &other);
	}

	if (whole.rc == HTTP_PARSE_ERROR) {
		CHECK(whole.reason != NULL);
		CHECK(whole.status == 400 || whole.status == 414 ||
		      whole.status == 431 || whole.status == 501 ||
		      whole.status == 505);
		return 0;
	}
	if (whole.rc != HTTP_PARSE_DONE)
		return 0;

	check_accepted(&c, data, size, &whole);
	if (whole.msg.version_minor == 1)
		check_round_trip(&c, data, &whole);
	if (whole.msg.body == HTTP_BODY_CHUNKED)
		check_chunked_body(data + whole.msg.head_len,
				   size - whole.msg.head_len);
	return 0;
}
