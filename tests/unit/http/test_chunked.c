/*
 * test_chunked.c - the chunked transfer coding scanner and writer.
 *
 * Every case goes through feed3(): the same bytes are fed whole, one byte
 * per call and in random splits (fixed seeds), each piece in its own
 * exactly sized block so a read past it trips ASan; the three must agree
 * on the decoded data, the bytes consumed, done, and the error reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "http/http.h"

enum { WHOLE, BYTES, SPLIT };

struct cresult {
	int err;
	int done;
	const char *reason;
	size_t consumed;
	char data[1024];
	size_t dlen;
};

static struct cresult R; /* the whole-buffer result of the last feed3() */

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

static void sink_cb(void *ud, const char *p, size_t n)
{
	struct cresult *r = ud;

	assert_true(n > 0);
	assert_true(r->dlen + n <= sizeof(r->data));
	memcpy(r->data + r->dlen, p, n);
	r->dlen += n;
}

static void run(const char *raw, size_t len, uint32_t max, int mode,
		uint32_t seed, struct cresult *r)
{
	struct http_chunked c;
	size_t off = 0, step;
	char *piece;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	http_chunked_init(&c, max);
	while (off < len) {
		step = next_step(mode, &seed, len - off);
		piece = malloc(step);
		assert_non_null(piece);
		memcpy(piece, raw + off, step);
		n = http_chunked_feed(&c, piece, step, sink_cb, r);
		free(piece);
		if (n < 0) {
			assert_int_equal(n, -1);
			r->err = 1;
			break;
		}
		assert_true((size_t)n <= step);
		off += (size_t)n;
		if (c.done)
			break;
		/* Short only when the body ended. */
		assert_int_equal((size_t)n, step);
	}
	/* Both outcomes stick. */
	if (r->err)
		assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, NULL, NULL),
				 -1);
	if (c.done)
		assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, NULL, NULL),
				 0);
	r->done = c.done;
	r->reason = c.reason;
	r->consumed = off;
}

static void feed3(const char *raw, size_t len, uint32_t max)
{
	static struct cresult other;
	uint32_t seed;
	int mode;

	run(raw, len, max, WHOLE, 0, &R);
	for (seed = 0; seed <= 8; seed++) {
		mode = seed == 0 ? BYTES : SPLIT;
		run(raw, len, max, mode, seed * 2654435761u, &other);
		assert_int_equal(R.err, other.err);
		assert_int_equal(R.done, other.done);
		if (R.err) {
			assert_string_equal(R.reason, other.reason);
			continue;
		}
		assert_int_equal(R.consumed, other.consumed);
		assert_int_equal(R.dlen, other.dlen);
		assert_memory_equal(R.data, other.data, R.dlen);
	}
}

static void expect_body(const char *raw, size_t len, uint32_t max,
			const char *data, size_t consumed)
{
	feed3(raw, len, max);
	if (R.err)
		fail_msg("unexpected error: %s", R.reason);
	assert_int_equal(R.done, 1);
	assert_int_equal(R.consumed, consumed);
	assert_int_equal(R.dlen, strlen(data));
	assert_memory_equal(R.data, data, R.dlen);
}

static void expect_error(const char *raw, size_t len, uint32_t max,
			 const char *why)
{
	feed3(raw, len, max);
	assert_int_equal(R.err, 1);
	assert_non_null(R.reason);
	if (strstr(R.reason, why) == NULL)
		fail_msg("reason \"%s\" does not name \"%s\"", R.reason, why);
}

#define BODY_OK(raw, data)                                                   \
	expect_body(raw, sizeof(raw) - 1, 0, data, sizeof(raw) - 1)
#define BODY_ERR(raw, why) expect_error(raw, sizeof(raw) - 1, 0, why)

/* ---- acceptance --------------------------------------------------------- */

static void test_simple_body(void **state)
{
	(void)state;
	BODY_OK("5\r\nhello\r\n0\r\n\r\n", "hello");
}

static void test_empty_body(void **state)
{
	(void)state;
	BODY_OK("0\r\n\r\n", "");
}

static void test_many_chunks_and_hex_case(void **state)
{
	(void)state;
	BODY_OK("1\r\na\r\nA\r\n0123456789\r\nb\r\nABCDEFGHIJK\r\n0\r\n\r\n",
		"a0123456789ABCDEFGHIJK");
	BODY_OK("a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
}

static void test_leading_zeros(void **state)
{
	(void)state;
	BODY_OK("0005\r\nhello\r\n0000\r\n\r\n", "hello");
}

static void test_data_with_crlf_and_nul(void **state)
{
	static const char raw[] = "6\r\n\r\n\0\n\r\xff\r\n0\r\n\r\n";

	(void)state;
	/* Chunk data is opaque: any byte goes. */
	feed3(raw, sizeof(raw) - 1, 0);
	assert_int_equal(R.err, 0);
	assert_int_equal(R.done, 1);
	assert_int_equal(R.consumed, sizeof(raw) - 1);
	assert_int_equal(R.dlen, 6);
	assert_memory_equal(R.data, "\r\n\0\n\r\xff", 6);
}

static void test_stops_at_end_of_body(void **state)
{
	static const char raw[] = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";

	(void)state;
	expect_body(raw, sizeof(raw) - 1, 0, "abc", 13);
}

static void test_extensions_accepted(void **state)
{
	(void)state;
	BODY_OK("5;name=value;q=\"a b;c\"\r\nhello\r\n0;last\r\n\r\n", "hello");
	BODY_OK("5;\xc3\xa9\t=x\r\nhello\r\n0\r\n\r\n", "hello");
}

static void test_extension_after_bws(void **state)
{
	(void)state;
	BODY_OK("5 ;a=b\r\nhello\r\n0\t \t; x\r\n\r\n", "hello");
}

static void test_trailers_accepted(void **state)
{
	(void)state;
	BODY_OK("2\r\nhi\r\n0\r\nX-Checksum: abc def\r\nX-Empty:\r\n\r\n", "hi");
}

static void test_largest_size(void **state)
{
	static const char raw[] = "7fffffffffffffff\r\nabc";

	(void)state;
	feed3(raw, sizeof(raw) - 1, 0);
	assert_int_equal(R.err, 0);
	assert_int_equal(R.done, 0);
	assert_int_equal(R.consumed, sizeof(raw) - 1);
	assert_int_equal(R.dlen, 3);
	assert_memory_equal(R.data, "abc", 3);
}

static void test_incomplete(void **state)
{
	static const char raw[] = "5\r\nhel";

	(void)state;
	feed3(raw, sizeof(raw) - 1, 0);
	assert_int_equal(R.err, 0);
	assert_int_equal(R.done, 0);
	assert_int_equal(R.consumed, sizeof(raw) - 1);
	feed3("5\r\nhello\r\n0\r\n\r", 14, 0);
	assert_int_equal(R.err, 0);
	assert_int_equal(R.done, 0);
}

static void test_null_callback(void **state)
{
	struct http_chunked c;

	(void)state;
	http_chunked_init(&c, 0);
	assert_int_equal(http_chunked_feed(&c, "3\r\nabc\r\n0\r\n\r\nX", 14,
					   NULL, NULL),
			 13);
	assert_int_equal(c.done, 1);
	assert_null(c.reason);
}

/* ---- rejection: sizes --------------------------------------------------- */

static void test_reject_empty_size(void **state)
{
	(void)state;
	BODY_ERR("\r\nhello\r\n0\r\n\r\n", "missing chunk size");
	BODY_ERR(";ext\r\n", "missing chunk size");
}

static void test_reject_non_hex_size(void **state)
{
	(void)state;
	BODY_ERR("g\r\n", "missing chunk size");
	BODY_ERR("5g\r\nhello\r\n", "invalid chunk size");
	BODY_ERR("0x5\r\nhello\r\n", "invalid chunk size");
	BODY_ERR("-5\r\n", "missing chunk size");
}

static void test_reject_size_2_pow_63(void **state)
{
	(void)state;
	BODY_ERR("8000000000000000\r\n", "chunk size too large");
	BODY_ERR("ffffffffffffffff\r\n", "chunk size too large");
}

static void test_reject_17_significant_digits(void **state)
{
	(void)state;
	BODY_ERR("10000000000000000\r\n", "chunk size too large");
	BODY_ERR("00000000000000001000000000000000a\r\n", "chunk size too large");
}

static void test_reject_leading_whitespace(void **state)
{
	(void)state;
	BODY_ERR(" 5\r\nhello\r\n0\r\n\r\n", "missing chunk size");
}

static void test_reject_whitespace_without_extension(void **state)
{
	(void)state;
	BODY_ERR("5 \r\nhello\r\n0\r\n\r\n", "invalid chunk size");
	BODY_ERR("5 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size");
}

static void test_reject_bare_lf_after_size(void **state)
{
	(void)state;
	BODY_ERR("5\nhello\r\n0\r\n\r\n", "bare LF");
}

static void test_reject_bare_cr_after_size(void **state)
{
	(void)state;
	BODY_ERR("5\rhello\r\n0\r\n\r\n", "bare CR");
}

/* ---- rejection: data framing -------------------------------------------- */

static void test_reject_missing_crlf_after_data(void **state)
{
	(void)state;
	BODY_ERR("5\r\nhelloX\r\n0\r\n\r\n", "missing CRLF after chunk data");
	BODY_ERR("5\r\nhello0\r\n\r\n", "missing CRLF after chunk data");
}

static void test_reject_bare_lf_after_data(void **state)
{
	(void)state;
	BODY_ERR("5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data");
}

static void test_reject_bare_cr_after_data(void **state)
{
	(void)state;
	BODY_ERR("5\r\nhello\r0\r\n\r\n", "bare CR");
}

/* ---- rejection: extensions ---------------------------------------------- */

static void test_reject_ctl_in_extension(void **state)
{
	(void)state;
	BODY_ERR("5;a\x01\r\nhello\r\n0\r\n\r\n", "chunk extension");
	BODY_ERR("5;a\x7f\r\nhello\r\n0\r\n\r\n", "chunk extension");
}

static void test_reject_nul_in_extension(void **state)
{
	(void)state;
	expect_error("5;a\0b\r\nhello\r\n0\r\n\r\n", 19, 0, "NUL");
}

static void test_reject_bare_lf_in_extension(void **state)
{
	(void)state;
	/* The 2023 smuggling trick: a LF that one side ends the line on. */
	BODY_ERR("5;a\nhello\r\n0\r\n\r\n", "bare LF");
	BODY_ERR("5;a\rX\r\nhello\r\n0\r\n\r\n", "bare CR");
}

static void test_reject_long_size_line(void **state)
{
	static const char ok[] = "000000000000005\r\nhello\r\n0\r\n\r\n";
	static const char bad[] = "0000000000000005\r\nhello\r\n0\r\n\r\n";

	(void)state;
	/* 15 bytes on the line is within 15; 16 is not. */
	expect_body(ok, sizeof(ok) - 1, 15, "hello", sizeof(ok) - 1);
	expect_error(bad, sizeof(bad) - 1, 15, "chunk-size line too long");
}

static void test_reject_long_extension_default_limit(void **state)
{
	static char raw[9000];
	size_t n;

	(void)state;
	raw[0] = '1';
	raw[1] = ';';
	memset(raw + 2, 'x', 8200);
	n = 8202;
	memcpy(raw + n, "\r\na\r\n0\r\n\r\n", 10);
	n += 10;
	expect_error(raw, n, 0, "too long");
}

static void test_reject_extensions_total(void **state)
{
	static const char ok[] = "1;abcdefg\r\na\r\n1;abcdefg\r\nb\r\n0\r\n\r\n";
	static const char bad[] = "1;abcdefg\r\na\r\n1;abcdefg\r\nb\r\n"
				  "1;abcdefg\r\nc\r\n0\r\n\r\n";

	(void)state;
	/* 8 extension bytes per line, 2 bytes of final CRLF: 18 fit in 20,
	 * 24 over three chunks do not, though each line is short. */
	expect_body(ok, sizeof(ok) - 1, 20, "ab", sizeof(ok) - 1);
	expect_error(bad, sizeof(bad) - 1, 20, "chunk extensions and trailers "
					       "too large");
}

/* ---- rejection: trailers ------------------------------------------------ */

static void test_reject_trailers_too_large(void **state)
{
	static const char ok[] = "0\r\nX-A: 0123456789\r\n\r\n";
	static const char bad[] = "0\r\nX-A: 01234567890\r\n\r\n";

	(void)state;
	/* "X-A: 0123456789\r\n" is 17 bytes, the final CRLF 2 more. */
	expect_body(ok, sizeof(ok) - 1, 19, "", sizeof(ok) - 1);
	expect_error(bad, sizeof(bad) - 1, 19, "trailers too large");
}

static void test_reject_trailer_bare_lf(void **state)
{
	(void)state;
	BODY_ERR("0\r\nX: a\n\r\n", "bare LF");
}

static void test_reject_trailer_bare_cr(void **state)
{
	(void)state;
	BODY_ERR("0\r\nX: a\rY: b\r\n\r\n", "bare CR");
}

static void test_reject_trailer_invalid_name(void **state)
{
	(void)state;
	BODY_ERR("0\r\nX@: a\r\n\r\n", "trailer name");
	BODY_ERR("0\r\n\x80: a\r\n\r\n", "trailer name");
}

static void test_reject_trailer_empty_name(void **state)
{
	(void)state;
	BODY_ERR("0\r\n: a\r\n\r\n", "empty trailer field name");
}

static void test_reject_trailer_space_before_colon(void **state)
{
	(void)state;
	BODY_ERR("0\r\nX : a\r\n\r\n", "whitespace before colon");
}

static void test_reject_trailer_obs_fold(void **state)
{
	(void)state;
	BODY_ERR("0\r\nX: a\r\n b\r\n\r\n", "obs-fold");
}

static void test_reject_trailer_without_colon(void **state)
{
	(void)state;
	BODY_ERR("0\r\nX-Sum\r\n\r\n", "without colon");
}

static void test_reject_trailer_invalid_value(void **state)
{
	(void)state;
	BODY_ERR("0\r\nX: a\x01\r\n\r\n", "trailer value");
	expect_error("0\r\nX: a\0\r\n\r\n", 11, 0, "NUL");
}

static void test_reject_final_bare_lf(void **state)
{
	(void)state;
	BODY_ERR("0\r\n\n", "bare LF");
}

static void test_reject_final_bare_cr(void **state)
{
	(void)state;
	BODY_ERR("0\r\n\rX", "bare CR");
}

/* ---- the writer --------------------------------------------------------- */

static void test_chunk_head(void **state)
{
	char out[24];

	(void)state;
	assert_int_equal(http_chunk_head(out, 0x1f40), 6);
	assert_memory_equal(out, "1f40\r\n", 6);
	assert_int_equal(http_chunk_head(out, 1), 3);
	assert_memory_equal(out, "1\r\n", 3);
	assert_int_equal(http_chunk_head(out, SIZE_MAX), 18);
	assert_memory_equal(out, "ffffffffffffffff\r\n", 18);
	assert_string_equal(HTTP_CHUNK_LAST, "0\r\n\r\n");
}

static void test_writer_round_trip(void **state)
{
	static const char *pieces[] = { "a", "0123456789abcdef", "xyz" };
	char coded[256], out[24];
	size_t n = 0, k, i;

	(void)state;
	for (i = 0; i < 3; i++) {
		k = http_chunk_head(out, strlen(pieces[i]));
		memcpy(coded + n, out, k);
		n += k;
		memcpy(coded + n, pieces[i], strlen(pieces[i]));
		n += strlen(pieces[i]);
		memcpy(coded + n, "\r\n", 2);
		n += 2;
	}
	memcpy(coded + n, HTTP_CHUNK_LAST, 5);
	n += 5;
	expect_body(coded, n, 0, "a0123456789abcdefxyz", n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_body),
		cmocka_unit_test(test_empty_body),
		cmocka_unit_test(test_many_chunks_and_hex_case),
		cmocka_unit_test(test_leading_zeros),
		cmocka_unit_test(test_data_with_crlf_and_nul),
		cmocka_unit_test(test_stops_at_end_of_body),
		cmocka_unit_test(test_extensions_accepted),
		cmocka_unit_test(test_extension_after_bws),
		cmocka_unit_test(test_trailers_accepted),
		cmocka_unit_test(test_largest_size),
		cmocka_unit_test(test_incomplete),
		cmocka_unit_test(test_null_callback),
		cmocka_unit_test(test_reject_empty_size),
		cmocka_unit_test(test_reject_non_hex_size),
		cmocka_unit_test(test_reject_size_2_pow_63),
		cmocka_unit_test(test_reject_17_significant_digits),
		cmocka_unit_test(test_reject_leading_whitespace),
		cmocka_unit_test(test_reject_whitespace_without_extension),
		cmocka_unit_test(test_reject_bare_lf_after_size),
		cmocka_unit_test(test_reject_bare_cr_after_size),
		cmocka_unit_test(test_reject_missing_crlf_after_data),
		cmocka_unit_test(test_reject_bare_lf_after_data),
		cmocka_unit_test(test_reject_bare_cr_after_data),
		cmocka_unit_test(test_reject_ctl_in_extension),
		cmocka_unit_test(test_reject_nul_in_extension),
		cmocka_unit_test(test_reject_bare_lf_in_extension),
		cmocka_unit_test(test_reject_long_size_line),
		cmocka_unit_test(test_reject_long_extension_default_limit),
		cmocka_unit_test(test_reject_extensions_total),
		cmocka_unit_test(test_reject_trailers_too_large),
		cmocka_unit_test(test_reject_trailer_bare_lf),
		cmocka_unit_test(test_reject_trailer_bare_cr),
		cmocka_unit_test(test_reject_trailer_invalid_name),
		cmocka_unit_test(test_reject_trailer_empty_name),
		cmocka_unit_test(test_reject_trailer_space_before_colon),
		cmocka_unit_test(test_reject_trailer_obs_fold),
		cmocka_unit_test(test_reject_trailer_without_colon),
		cmocka_unit_test(test_reject_trailer_invalid_value),
		cmocka_unit_test(test_reject_final_bare_lf),
		cmocka_unit_test(test_reject_final_bare_cr),
		cmocka_unit_test(test_chunk_head),
		cmocka_unit_test(test_writer_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
