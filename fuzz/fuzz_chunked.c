/*
 * fuzz_chunked.c - libFuzzer harness for the chunked transfer coding.
 *
 * The first input byte picks max_trailer_bytes (bit 0 clear: the default;
 * set: 8 + the other seven bits, so the bounds are reachable), the rest
 * is the coded body. Properties checked, each a crash when broken:
 *   - whole, byte-at-a-time and random-split feeds agree on the error,
 *     its reason, done, the bytes consumed and the decoded data;
 *   - no more is consumed than given, and less only when done;
 *   - decoded data re-encoded with http_chunk_head() and HTTP_CHUNK_LAST
 *     decodes to the same bytes.
 * Every piece is fed from its own exactly sized block, so a read past it
 * is an ASan report.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

#define CHECK(c)                                                             \
	do {                                                                  \
		if (!(c)) {                                                    \
			fprintf(stderr, "fuzz_chunked: check failed: %s "      \
				"(line %d)\n", #c, __LINE__);                  \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	int err;
	int done;
	const char *reason;
	size_t consumed;
	char *out; /* decoded data, at most the input size */
	size_t olen;
	size_t ocap;
};

static void sink_cb(void *ud, const char *p, size_t n)
{
	struct result *r = ud;

	CHECK(n > 0);
	CHECK(r->olen + n <= r->ocap);
	memcpy(r->out + r->olen, p, n);
	r->olen += n;
}

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* fixed 0: random pieces from seed. */
static void run(const uint8_t *in, size_t len, uint32_t max, size_t fixed,
		uint32_t seed, struct result *r)
{
	struct http_chunked c;
	size_t off = 0, n;
	char *piece;
	ssize_t k;

	r->err = r->done = 0;
	r->olen = 0;
	http_chunked_init(&c, max);
	while (off < len) {
		n = fixed ? fixed : 1 + rnd(&seed) % 32;
		if (n > len - off)
			n = len - off;
		piece = malloc(n);
		CHECK(piece != NULL);
		memcpy(piece, in + off, n);
		k = http_chunked_feed(&c, piece, n, sink_cb, r);
		free(piece);
		if (k < 0) {
			CHECK(k == -1 && c.reason != NULL);
			r->err = 1;
			break;
		}
		CHECK((size_t)k <= n);
		off += (size_t)k;
		if (c.done)
			break;
		CHECK((size_t)k == n);
	}
	if (r->err)
		CHECK(http_chunked_feed(&c, "0\r\n\r\n", 5, NULL, NULL) == -1);
	if (c.done)
		CHECK(http_chunked_feed(&c, "0\r\n\r\n", 5, NULL, NULL) == 0);
	r->done = c.done;
	r->reason = c.reason;
	r->consumed = off;
}

static void same(const struct result *a, const struct result *b)
{
	CHECK(a->err == b->err);
	if (a->err) {
		CHECK(strcmp(a->reason, b->reason) == 0);
		return;
	}
	CHECK(a->done == b->done);
	CHECK(a->consumed == b->consumed);
	CHECK(a->olen == b->olen);
	CHECK(memcmp(a->out, b->out, a->olen) == 0);
}

/* Encodes data[0..n) in chunks of up to 1 + n % 13 bytes. */
static size_t encode(const char *data, size_t n, char *out)
{
	size_t off = 0, len = 0, step = 1 + n % 13, k, h;
	char head[24];

	while (off < n) {
		k = n - off < step ? n - off : step;
		h = http_chunk_head(head, k);
		memcpy(out + len, head, h);
		len += h;
		memcpy(out + len, data + off, k);
		len += k;
		memcpy(out + len, "\r\n", 2);
		len += 2;
		off += k;
	}
	memcpy(out + len, HTTP_CHUNK_LAST, 5);
	return len + 5;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result whole, other, again;
	uint32_t max;
	size_t elen;
	char *enc;

	if (size < 1)
		return 0;
	max = (data[0] & 1) ? 8u + (data[0] >> 1) : 0;
	data++;
	size--;

	whole.ocap = other.ocap = again.ocap = size;
	whole.out = malloc(size + 1);
	other.out = malloc(size + 1);
	CHECK(whole.out != NULL && other.out != NULL);

	run(data, size, max, size ? size : 1, 0, &whole);
	run(data, size, max, 1, 0, &other);
	same(&whole, &other);
	run(data, size, max, 0, (uint32_t)size * 2654435761u + 1, &other);
	same(&whole, &other);

	if (whole.done && !whole.err) {
		/* A size line per chunk costs at most 24 bytes plus CRLF. */
		enc = malloc(whole.olen * 27 + 8);
		CHECK(enc != NULL);
		elen = encode(whole.out, whole.olen, enc);
		again.ocap = whole.olen;
		again.out = malloc(whole.olen + 1);
		CHECK(again.out != NULL);
		run((const uint8_t *)enc, elen, 0, elen, 0, &again);
		CHECK(!again.err && again.done && again.consumed == elen);
		CHECK(again.olen == whole.olen);
		CHECK(memcmp(again.out, whole.out, whole.olen) == 0);
		free(again.out);
		free(enc);
	}
	free(whole.out);
	free(other.out);
	return 0;
}
