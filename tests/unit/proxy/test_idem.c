/*
 * test_idem.c - the idempotency store, through proxy/idem.h only.
 *
 * The single-threaded cases walk the protocol the session follows: a
 * first request is NEW, repeats wait or replay, a different request with
 * the same key is a mismatch, an abort or an unstorable response lets one
 * waiter go first again, ttl and the byte bound retire entries in the
 * documented order, and a replayed response stays readable after its
 * entry is gone. Sizes are measured through idem_stats_read() on a
 * scratch store rather than assumed, so the cases do not depend on the
 * store's struct layout.
 *
 * The threaded cases check what the store is for: among 8 threads that
 * race on one key exactly one forwards and the rest replay its bytes; a
 * cancel racing a completion or an abort never lets the callback run
 * after the cancel returned (10,000 rounds; the interesting failure is a
 * use after free, so run it under ASan and TSan too); and a mixed load
 * over a small byte budget keeps replays correct while evictions cross
 * shards. Worker threads never call cmocka asserts (they are not thread
 * safe): they count failures, which the main thread checks.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "proxy/idem.h"

#define BIG ((size_t)64 << 20)
#define TTL UINT64_C(60000)
#define HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
#define BODY_LEN 1000

/*
 * A waiter whose callback counts wake-ups and signals a condition
 * variable, as a worker's hand-off would.
 */
struct waitbox {
	struct idem_waiter w;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int woken;
};

static void box_cb(struct idem_waiter *w)
{
	struct waitbox *b = w->ud;

	pthread_mutex_lock(&b->mu);
	b->woken++;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void box_init(struct waitbox *b)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->w.cb = box_cb;
	b->w.ud = b;
}

static void box_fini(struct waitbox *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

static int box_woken(struct waitbox *b)
{
	int n;

	pthread_mutex_lock(&b->mu);
	n = b->woken;
	pthread_mutex_unlock(&b->mu);
	return n;
}

/* Waits until the callback has run more than `seen` times in all.
 * Returns 0, or -1 after 10 seconds. */
static int box_wait(struct waitbox *b, int seen)
{
	struct timespec dl;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&b->mu);
	while (b->woken <= seen && r == 0)
		r = pthread_cond_timedwait(&b->cv, &b->mu, &dl);
	r = b->woken > seen ? 0 : -1;
	pthread_mutex_unlock(&b->mu);
	return r;
}

/*
 * Shorthands: the keys are C strings, the head is HEAD, the body a
 * pattern of n bytes that depends on tag.
 */
static enum idem_result begin_at(struct idem_store *s, const char *key,
				 uint64_t fp, uint64_t ttl, uint64_t now,
				 struct idem_waiter *w,
				 struct idem_response **out)
{
	return idem_begin(s, key, strlen(key), fp, ttl, now, w, out);
}

static enum idem_result begin(struct idem_store *s, const char *key,
			      uint64_t fp, struct idem_waiter *w,
			      struct idem_response **out)
{
	return begin_at(s, key, fp, TTL, 0, w, out);
}

static void fill_body(char *b, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (char)('a' + (i * 7 + tag) % 26);
}

static void complete_at(struct idem_store *s, const char *key, unsigned tag,
			size_t n, uint64_t now)
{
	char *body = malloc(n + 1);

	assert_non_null(body);
	fill_body(body, n, tag);
	idem_complete(s, key, strlen(key), 200, HEAD, strlen(HEAD), body, n,
		      now);
	free(body);
}

static void complete(struct idem_store *s, const char *key, unsigned tag)
{
	complete_at(s, key, tag, BODY_LEN, 0);
}

/* 1 when r is the response complete_at(..., tag, n, ...) stored. */
static int resp_is(const struct idem_response *r, unsigned tag, size_t n)
{
	char *want;
	int ok;

	if (r == NULL || r->status != 200 || r->head_len != strlen(HEAD) ||
	    memcmp(r->head, HEAD, r->head_len) != 0 || r->body_len != n)
		return 0;
	want = malloc(n + 1);
	if (want == NULL)
		return 0;
	fill_body(want, n, tag);
	ok = memcmp(r->body, want, n) == 0;
	free(want);
	return ok;
}

static void expect_done(struct idem_store *s, const char *key, uint64_t now,
			unsigned tag)
{
	struct idem_response *r;

	assert_int_equal(begin_at(s, key, 1, TTL, now, NULL, &r), IDEM_DONE);
	assert_true(resp_is(r, tag, BODY_LEN));
	idem_response_unref(r);
}

static void expect_new_then_abort(struct idem_store *s, const char *key,
				  uint64_t now)
{
	struct idem_response *r;

	assert_int_equal(begin_at(s, key, 1, TTL, now, NULL, &r), IDEM_NEW);
	assert_null(r);
	idem_abort(s, key, strlen(key));
}

static struct idem_stats stats(struct idem_store *s)
{
	struct idem_stats st;

	idem_stats_read(s, &st);
	return st;
}

/* What one entry with a key of this length costs, in flight (body 0:
 * never completed) or completed with a BODY_LEN body. */
static size_t cost(const char *key, int completed)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	size_t n;

	assert_non_null(s);
	assert_int_equal(begin(s, key, 1, NULL, &r), IDEM_NEW);
	if (completed)
		complete(s, key, 0);
	n = stats(s).bytes;
	if (!completed)
		idem_abort(s, key, strlen(key));
	idem_free(s);
	return n;
}

/*
 * Protocol, one thread
 */
static void test_first_is_new_repeats_replay(void **state)
{
	static struct idem_response poison;
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r1, *r2;
	struct idem_stats st;

	(void)state;
	assert_non_null(s);
	r1 = &poison; /* *out is cleared whatever the result */
	assert_int_equal(begin(s, "shop:k1", 1, NULL, &r1), IDEM_NEW);
	assert_null(r1);
	assert_int_equal(begin(s, "shop:k1", 1, NULL, &r1), IDEM_PENDING);
	assert_null(r1);
	idem_complete(s, "shop:k1", 7, 201, HEAD, strlen(HEAD), "created", 7,
		      0);

	assert_int_equal(begin(s, "shop:k1", 1, NULL, &r1), IDEM_DONE);
	assert_int_equal(begin(s, "shop:k1", 1, NULL, &r2), IDEM_DONE);
	assert_ptr_equal(r1, r2);
	assert_int_equal(r1->status, 201);
	assert_int_equal(r1->head_len, strlen(HEAD));
	assert_memory_equal(r1->head, HEAD, strlen(HEAD));
	assert_int_equal(r1->body_len, 7);
	assert_memory_equal(r1->body, "created", 7);
	idem_response_unref(r1);
	idem_response_unref(r2);

	/* The scope is part of the key: another route's k1 is new. */
	assert_int_equal(begin(s, "admin:k1", 1, NULL, &r1), IDEM_NEW);
	idem_abort(s, "admin:k1", 8);

	st = stats(s);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.waits, 0);
	assert_int_equal(st.evictions, 0);
	assert_true(st.bytes > strlen(HEAD) + 7);
	idem_free(s);
}

/* Keys are compared as bytes and lengths: a prefix, an embedded NUL and
 * the empty key are keys of their own. An empty head and body are a
 * response like any other. */
static void test_keys_are_exact_bytes(void **state)
{
	static const char keys[][4] = { "ab", "ab\0", "a", "", "ba" };
	static const size_t lens[] = { 2, 3, 1, 0, 2 };
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	size_t i;

	(void)state;
	for (i = 0; i < 5; i++) {
		assert_int_equal(idem_begin(s, keys[i], lens[i], 1, TTL, 0,
					    NULL, &r),
				 IDEM_NEW);
		idem_complete(s, keys[i], lens[i], 200 + (int)i, NULL, 0, NULL,
			      0, 0);
	}
	for (i = 0; i < 5; i++) {
		assert_int_equal(idem_begin(s, keys[i], lens[i], 1, TTL, 0,
					    NULL, &r),
				 IDEM_DONE);
		assert_int_equal(r->status, 200 + (int)i);
		assert_int_equal(r->head_len, 0);
		assert_int_equal(r->body_len, 0);
		idem_response_unref(r);
	}
	assert_int_equal(stats(s).entries, 5);
	idem_free(s);
}

/* Enough keys to make every shard's table grow several times; each one
 * still finds its own response. */
static void test_many_keys(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	char key[32];
	unsigned i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "many:%u", i);
		assert_int_equal(begin(s, key, i, NULL, &r), IDEM_NEW);
		complete_at(s, key, i, 16, 0);
	}
	for (i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "many:%u", i);
		assert_int_equal(begin(s, key, i, NULL, &r), IDEM_DONE);
		assert_true(resp_is(r, i, 16));
		idem_response_unref(r);
	}
	assert_int_equal(stats(s).entries, 20000);
	idem_free(s);
}

static void test_mismatch(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	struct waitbox b;

	(void)state;
	box_init(&b);
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	/* In flight: a different request is refused, and its waiter is not
	 * registered. */
	assert_int_equal(begin(s, "k", 2, &b.w, &r), IDEM_MISMATCH);
	assert_null(r);
	complete(s, "k", 5);
	assert_int_equal(box_woken(&b), 0);
	assert_int_equal(stats(s).waits, 0);

	/* Completed: the same. */
	assert_int_equal(begin(s, "k", 2, &b.w, &r), IDEM_MISMATCH);
	assert_null(r);
	expect_done(s, "k", 0, 5);

	/* Expired, the key is free again, for any request. */
	assert_int_equal(begin_at(s, "k", 2, TTL, TTL, NULL, &r), IDEM_NEW);
	idem_abort(s, "k", 1);
	box_fini(&b);
	idem_free(s);
}

static void test_pending_without_waiter(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;

	(void)state;
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_PENDING);
	assert_null(r);
	assert_int_equal(stats(s).waits, 0);
	complete(s, "k", 3);
	expect_done(s, "k", 0, 3);
	idem_free(s);
}

/* Waiters are woken by the completion itself, in registration order,
 * and each one then replays. */
static void test_complete_wakes_waiters(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	struct waitbox b[3];
	int i;

	(void)state;
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	for (i = 0; i < 3; i++) {
		box_init(&b[i]);
		assert_int_equal(begin(s, "k", 1, &b[i].w, &r), IDEM_PENDING);
		assert_null(r);
	}
	assert_int_equal(stats(s).waits, 3);
	complete(s, "k", 9);
	for (i = 0; i < 3; i++) {
		assert_int_equal(box_woken(&b[i]), 1);
		assert_int_equal(begin(s, "k", 1, &b[i].w, &r), IDEM_DONE);
		assert_true(resp_is(r, 9, BODY_LEN));
		idem_response_unref(r);
		box_fini(&b[i]);
	}
	assert_int_equal(stats(s).hits, 3);
	idem_free(s);
}

/* An abort forgets the key and wakes everyone; the first to come back
 * forwards, the next waits for it. */
static void test_abort_lets_one_waiter_go_first(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	struct waitbox a, b;
	struct idem_stats st;

	(void)state;
	box_init(&a);
	box_init(&b);
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k", 1, &a.w, &r), IDEM_PENDING);
	assert_int_equal(begin(s, "k", 1, &b.w, &r), IDEM_PENDING);
	idem_abort(s, "k", 1);
	assert_int_equal(box_woken(&a), 1);
	assert_int_equal(box_woken(&b), 1);
	st = stats(s);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);

	assert_int_equal(begin(s, "k", 1, &b.w, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k", 1, &a.w, &r), IDEM_PENDING);
	complete(s, "k", 4);
	assert_int_equal(box_woken(&a), 2);
	assert_int_equal(box_woken(&b), 1);
	expect_done(s, "k", 0, 4);
	box_fini(&a);
	box_fini(&b);
	idem_free(s);
}

/*
 * Time
 */

/* ttl counts from the completion, not from the first request; an entry
 * in flight never expires. */
static void test_ttl_from_completion(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;

	(void)state;
	assert_int_equal(begin_at(s, "k", 1, 500, 1000, NULL, &r), IDEM_NEW);
	complete_at(s, "k", 2, BODY_LEN, 2000);
	expect_done(s, "k", 2499, 2);
	assert_int_equal(begin_at(s, "k", 1, 500, 2500, NULL, &r), IDEM_NEW);
	/* The expired entry was reclaimed, not kept beside the new one. */
	assert_int_equal(stats(s).entries, 1);
	assert_int_equal(begin_at(s, "k", 1, 500, UINT64_MAX, NULL, &r),
			 IDEM_PENDING);
	idem_abort(s, "k", 1);

	/* A ttl that overflows the clock means "until evicted". */
	assert_int_equal(begin_at(s, "f", 1, UINT64_MAX, 10, NULL, &r),
			 IDEM_NEW);
	complete_at(s, "f", 3, BODY_LEN, 10);
	expect_done(s, "f", UINT64_MAX - 1, 3);
	assert_int_equal(stats(s).evictions, 0);
	idem_free(s);
}

/* With routes of different ttls, the entry that expired goes before the
 * oldest live one, and reclaiming it is not counted as an eviction. */
static void test_expired_go_before_live(void **state)
{
	size_t c = cost("k1", 1);
	struct idem_store *s = idem_new(3 * c, BIG);
	struct idem_response *r;

	(void)state;
	assert_int_equal(begin_at(s, "k1", 1, 100000, 0, NULL, &r), IDEM_NEW);
	complete_at(s, "k1", 1, BODY_LEN, 0);
	assert_int_equal(begin_at(s, "k2", 1, 10, 1, NULL, &r), IDEM_NEW);
	complete_at(s, "k2", 2, BODY_LEN, 1);
	assert_int_equal(begin_at(s, "k3", 1, 100000, 2, NULL, &r), IDEM_NEW);
	complete_at(s, "k3", 3, BODY_LEN, 2);
	assert_int_equal(stats(s).bytes, 3 * c);

	assert_int_equal(begin_at(s, "k4", 1, 100000, 100, NULL, &r),
			 IDEM_NEW);
	complete_at(s, "k4", 4, BODY_LEN, 100);
	assert_int_equal(stats(s).evictions, 0);
	assert_int_equal(stats(s).entries, 3);
	expect_done(s, "k1", 100, 1);
	expect_done(s, "k3", 100, 3);
	expect_done(s, "k4", 100, 4);
	expect_new_then_abort(s, "k2", 100);
	idem_free(s);
}

/*
 * Bytes
 */

/* Oldest completed first, whatever was replayed since; an entry in flight
 * is never evicted; the bound holds after each completion. */
static void test_eviction_order(void **state)
{
	size_t c = cost("k1", 1);
	struct idem_store *s = idem_new(3 * c, BIG);
	struct idem_response *r;
	struct idem_stats st;

	(void)state;
	assert_true(cost("k1", 0) * 4 < c); /* the sizes this case needs */
	assert_int_equal(begin(s, "k0", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k1", 1, NULL, &r), IDEM_NEW);
	complete(s, "k1", 1);
	assert_int_equal(begin(s, "k2", 1, NULL, &r), IDEM_NEW);
	complete(s, "k2", 2);
	expect_done(s, "k1", 0, 1); /* a replay does not make it younger */

	assert_int_equal(begin(s, "k3", 1, NULL, &r), IDEM_NEW);
	complete(s, "k3", 3);
	st = stats(s);
	assert_true(st.bytes <= 3 * c);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(begin(s, "k4", 1, NULL, &r), IDEM_NEW);
	complete(s, "k4", 4);
	st = stats(s);
	assert_true(st.bytes <= 3 * c);
	assert_int_equal(st.evictions, 2);
	assert_int_equal(st.entries, 3);

	assert_int_equal(begin(s, "k0", 1, NULL, &r), IDEM_PENDING);
	expect_done(s, "k3", 0, 3);
	expect_done(s, "k4", 0, 4);
	expect_new_then_abort(s, "k1", 0);
	expect_new_then_abort(s, "k2", 0);
	idem_abort(s, "k0", 2);
	idem_free(s);
}

/* Responses over max_entry_bytes, or over max_bytes altogether, are not
 * stored: the waiters are woken, and one of them forwards again. */
static void test_oversize_not_stored(void **state)
{
	struct idem_store *s = idem_new(BIG, 100);
	struct idem_response *r;
	struct waitbox a, b;
	size_t body = 100 - strlen(HEAD);

	(void)state;
	box_init(&a);
	box_init(&b);
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k", 1, &a.w, &r), IDEM_PENDING);
	assert_int_equal(begin(s, "k", 1, &b.w, &r), IDEM_PENDING);
	complete_at(s, "k", 1, body + 1, 0);
	assert_int_equal(box_woken(&a), 1);
	assert_int_equal(box_woken(&b), 1);
	assert_int_equal(stats(s).entries, 0);
	assert_int_equal(stats(s).bytes, 0);

	assert_int_equal(begin(s, "k", 1, &a.w, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k", 1, &b.w, &r), IDEM_PENDING);
	complete_at(s, "k", 2, body, 0); /* exactly the limit: stored */
	assert_int_equal(box_woken(&b), 2);
	assert_int_equal(begin(s, "k", 1, &b.w, &r), IDEM_DONE);
	assert_true(resp_is(r, 2, body));
	idem_response_unref(r);
	idem_free(s);

	/* A store smaller than one entry keeps nothing. */
	s = idem_new(cost("k", 1) - 1, BIG);
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	complete(s, "k", 1);
	assert_int_equal(stats(s).entries, 0);
	expect_new_then_abort(s, "k", 0);
	idem_free(s);
	box_fini(&a);
	box_fini(&b);
}

/* Room held by requests in flight cannot be taken: the response that
 * does not fit beside them is dropped, and nothing is evicted for it. */
static void test_in_flight_entries_hold_room(void **state)
{
	size_t c = cost("k1", 1);
	struct idem_store *s = idem_new(c, BIG);
	struct idem_response *r;

	(void)state;
	assert_int_equal(begin(s, "k0", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k1", 1, NULL, &r), IDEM_NEW);
	complete(s, "k1", 1);
	assert_int_equal(stats(s).entries, 1);
	assert_int_equal(stats(s).evictions, 0);
	expect_new_then_abort(s, "k1", 0);

	/* Once the first request is gone, there is room again. */
	idem_abort(s, "k0", 2);
	assert_int_equal(begin(s, "k1", 1, NULL, &r), IDEM_NEW);
	complete(s, "k1", 1);
	expect_done(s, "k1", 0, 1);
	assert_int_equal(stats(s).bytes, c);
	idem_free(s);
}

/* A replay's reference keeps the bytes alive after the entry was evicted
 * or expired (ASan reads them back). */
static void test_response_outlives_entry(void **state)
{
	size_t c = cost("k1", 1);
	struct idem_store *s = idem_new(c, BIG);
	struct idem_response *r1, *r2, *r;

	(void)state;
	assert_int_equal(begin(s, "k1", 1, NULL, &r), IDEM_NEW);
	complete(s, "k1", 1);
	assert_int_equal(begin(s, "k1", 1, NULL, &r1), IDEM_DONE);
	assert_int_equal(begin(s, "k2", 1, NULL, &r), IDEM_NEW);
	complete(s, "k2", 2);
	assert_int_equal(stats(s).evictions, 1);
	assert_int_equal(begin(s, "k2", 1, NULL, &r2), IDEM_DONE);
	assert_int_equal(begin_at(s, "k2", 1, TTL, TTL, NULL, &r), IDEM_NEW);
	idem_abort(s, "k2", 2);
	assert_int_equal(stats(s).entries, 0);
	assert_int_equal(stats(s).evictions, 1);

	assert_true(resp_is(r1, 1, BODY_LEN));
	assert_true(resp_is(r2, 2, BODY_LEN));
	expect_new_then_abort(s, "k1", 0);
	idem_response_unref(r1);
	idem_response_unref(r2);
	idem_free(s);
}

/* Entries in flight and stored ones at shutdown are freed (LeakSanitizer
 * checks). */
static void test_free_with_entries(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;

	(void)state;
	assert_int_equal(begin(s, "a", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "b", 1, NULL, &r), IDEM_NEW);
	complete(s, "b", 1);
	idem_free(s);
	idem_free(NULL);
}

/*
 * Cancel, one thread
 */
static void test_cancel(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	struct waitbox a, b, never;

	(void)state;
	box_init(&a);
	box_init(&b);
	box_init(&never);

	/* Cancelled, the waiter is not woken; the others still are. */
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "k", 1, &a.w, &r), IDEM_PENDING);
	assert_int_equal(begin(s, "k", 1, &b.w, &r), IDEM_PENDING);
	idem_cancel(s, &a.w);
	idem_cancel(s, &a.w); /* twice: a no-op */
	idem_cancel(s, &never.w); /* never registered: a no-op */
	complete(s, "k", 1);
	assert_int_equal(box_woken(&a), 0);
	assert_int_equal(box_woken(&b), 1);

	/* After its callback ran, cancel is a no-op too, and either way the
	 * waiter can be registered again. */
	idem_cancel(s, &b.w);
	assert_int_equal(begin(s, "j", 1, NULL, &r), IDEM_NEW);
	assert_int_equal(begin(s, "j", 1, &a.w, &r), IDEM_PENDING);
	assert_int_equal(begin(s, "j", 1, &b.w, &r), IDEM_PENDING);
	idem_abort(s, "j", 1);
	assert_int_equal(box_woken(&a), 1);
	assert_int_equal(box_woken(&b), 2);
	assert_int_equal(stats(s).waits, 4);

	box_fini(&a);
	box_fini(&b);
	box_fini(&never);
	idem_free(s);
}

/* Once its callback has handed it over, a waiter belongs to its owner,
 * who may free it at once: the store must not touch it after calling
 * the callback (ASan catches a late write). The callback frees it itself
 * here, the quickest an owner could. */
static int freed_by_cb;

static void free_cb(struct idem_waiter *w)
{
	freed_by_cb++;
	free(w);
}

static void test_waiter_untouched_after_callback(void **state)
{
	struct idem_store *s = idem_new(BIG, BIG);
	struct idem_response *r;
	struct idem_waiter *w;
	int i;

	(void)state;
	freed_by_cb = 0;
	assert_int_equal(begin(s, "k", 1, NULL, &r), IDEM_NEW);
	for (i = 0; i < 3; i++) {
		w = calloc(1, sizeof(*w));
		assert_non_null(w);
		w->cb = free_cb;
		assert_int_equal(begin(s, "k", 1, w, &r), IDEM_PENDING);
	}
	complete(s, "k", 1);
	assert_int_equal(freed_by_cb, 3);

	assert_int_equal(begin(s, "j", 1, NULL, &r), IDEM_NEW);
	for (i = 0; i < 3; i++) {
		w = calloc(1, sizeof(*w));
		assert_non_null(w);
		w->cb = free_cb;
		assert_int_equal(begin(s, "j", 1, w, &r), IDEM_PENDING);
	}
	idem_abort(s, "j", 1);
	assert_int_equal(freed_by_cb, 6);
	idem_free(s);
}

/*
 * Threads
 */

static void now_plus_10s(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += 10;
}

static int past(const struct timespec *dl)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > dl->tv_sec ||
	       (now.tv_sec == dl->tv_sec && now.tv_nsec >= dl->tv_nsec);
}

#define NRACERS 8
#define ROUNDS 200

struct same_key {
	struct idem_store *s;
	pthread_barrier_t start, end;
	char key[32];
	_Atomic int news, waiting;
};

struct racer {
	struct same_key *sk;
	struct waitbox box;
	int fails;
};

static void *racer_main(void *arg)
{
	struct racer *me = arg;
	struct same_key *sk = me->sk;
	struct idem_response *r;
	struct timespec dl;
	enum idem_result res;
	int round, seen;

	for (round = 0; round < ROUNDS; round++) {
		pthread_barrier_wait(&sk->start);
		seen = box_woken(&me->box);
		res = begin(sk->s, sk->key, 1, &me->box.w, &r);
		if (res == IDEM_NEW) {
			atomic_fetch_add(&sk->news, 1);
			/* Let every other thread register first, so each of
			 * them meets the request in flight. */
			now_plus_10s(&dl);
			while (atomic_load(&sk->waiting) < NRACERS - 1) {
				if (past(&dl)) {
					me->fails++;
					break;
				}
				sched_yield();
			}
			complete_at(sk->s, sk->key, (unsigned)round, 64, 0);
		} else if (res == IDEM_PENDING) {
			atomic_fetch_add(&sk->waiting, 1);
			if (box_wait(&me->box, seen) != 0) {
				me->fails++;
			} else if (begin(sk->s, sk->key, 1, &me->box.w, &r) !=
				   IDEM_DONE) {
				me->fails++;
			} else {
				if (!resp_is(r, (unsigned)round, 64))
					me->fails++;
				idem_response_unref(r);
			}
		} else {
			me->fails++;
		}
		pthread_barrier_wait(&sk->end);
	}
	return NULL;
}

/* 8 threads, one key per round: exactly one forwards, the other seven
 * wait, are woken by its completion and replay its bytes. */
static void test_threads_one_forwards_rest_replay(void **state)
{
	struct same_key sk;
	struct racer rc[NRACERS];
	pthread_t th[NRACERS];
	struct idem_stats st;
	int i, round, woken = 0;

	(void)state;
	memset(&sk, 0, sizeof(sk));
	sk.s = idem_new(BIG, BIG);
	assert_non_null(sk.s);
	pthread_barrier_init(&sk.start, NULL, NRACERS + 1);
	pthread_barrier_init(&sk.end, NULL, NRACERS + 1);
	for (i = 0; i < NRACERS; i++) {
		rc[i].sk = &sk;
		rc[i].fails = 0;
		box_init(&rc[i].box);
		assert_int_equal(pthread_create(&th[i], NULL, racer_main,
						&rc[i]),
				 0);
	}
	for (round = 0; round < ROUNDS; round++) {
		snprintf(sk.key, sizeof(sk.key), "race:%d", round);
		atomic_store(&sk.news, 0);
		atomic_store(&sk.waiting, 0);
		pthread_barrier_wait(&sk.start);
		pthread_barrier_wait(&sk.end);
		assert_int_equal(atomic_load(&sk.news), 1);
		assert_int_equal(atomic_load(&sk.waiting), NRACERS - 1);
	}
	for (i = 0; i < NRACERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(rc[i].fails, 0);
		woken += box_woken(&rc[i].box);
		box_fini(&rc[i].box);
	}
	assert_int_equal(woken, ROUNDS * (NRACERS - 1));
	st = stats(sk.s);
	assert_int_equal(st.entries, ROUNDS);
	assert_int_equal(st.waits, ROUNDS * (NRACERS - 1));
	assert_int_equal(st.hits, ROUNDS * (NRACERS - 1));
	pthread_barrier_destroy(&sk.start);
	pthread_barrier_destroy(&sk.end);
	idem_free(sk.s);
}

#define RACE_ITERS 10000

struct cancel_race {
	struct idem_store *s;
	pthread_barrier_t start, end;
	char key[32];
	struct idem_waiter w;
	_Atomic int cancel_returned;
	_Atomic int cb_runs;
	_Atomic int late_cbs; /* callbacks running after cancel returned */
};

/* Checks on entry that the cancel has not returned yet, then lingers
 * for up to 20 us to give a cancel that does not wait for a running
 * callback the time to return under its feet. */
static void race_cb(struct idem_waiter *w)
{
	struct cancel_race *cr = w->ud;
	struct timespec t0, t;
	long ns;

	atomic_fetch_add(&cr->cb_runs, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (atomic_load(&cr->cancel_returned)) {
			atomic_fetch_add(&cr->late_cbs, 1);
			return;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		ns = (t.tv_sec - t0.tv_sec) * 1000000000L +
		     (t.tv_nsec - t0.tv_nsec);
	} while (ns < 20000);
}

static void *race_finisher(void *arg)
{
	struct cancel_race *cr = arg;
	int i;

	for (i = 0; i < RACE_ITERS; i++) {
		pthread_barrier_wait(&cr->start);
		/* Odd rounds complete (the entry stays), even ones abort
		 * (the entry is freed right after waking). */
		if (i % 2)
			complete_at(cr->s, cr->key, (unsigned)i, 8,
				    (uint64_t)i * 10);
		else
			idem_abort(cr->s, cr->key, strlen(cr->key));
		pthread_barrier_wait(&cr->end);
	}
	return NULL;
}

static void *race_canceller(void *arg)
{
	struct cancel_race *cr = arg;
	int i;

	for (i = 0; i < RACE_ITERS; i++) {
		pthread_barrier_wait(&cr->start);
		idem_cancel(cr->s, &cr->w);
		atomic_store(&cr->cancel_returned, 1);
		pthread_barrier_wait(&cr->end);
	}
	return NULL;
}

/* A cancel racing the completion or abort on another thread: the
 * callback either ran before the cancel returned or never runs, and the
 * waiter can be registered again either way. One key, whose completed
 * entry expires before the next round (ttl 5, 10 ms apart). */
static void test_cancel_races_wake(void **state)
{
	struct cancel_race cr;
	struct idem_response *r;
	pthread_t fin, can;
	int i, news = 0, pendings = 0;

	(void)state;
	memset(&cr, 0, sizeof(cr));
	cr.s = idem_new(BIG, BIG);
	assert_non_null(cr.s);
	cr.w.cb = race_cb;
	cr.w.ud = &cr;
	snprintf(cr.key, sizeof(cr.key), "cancel:race");
	pthread_barrier_init(&cr.start, NULL, 3);
	pthread_barrier_init(&cr.end, NULL, 3);
	assert_int_equal(pthread_create(&fin, NULL, race_finisher, &cr), 0);
	assert_int_equal(pthread_create(&can, NULL, race_canceller, &cr), 0);
	for (i = 0; i < RACE_ITERS; i++) {
		atomic_store(&cr.cancel_returned, 0);
		news += begin_at(cr.s, cr.key, 1, 5, (uint64_t)i * 10, NULL,
				 &r) == IDEM_NEW;
		pendings += begin_at(cr.s, cr.key, 1, 5, (uint64_t)i * 10,
				     &cr.w, &r) == IDEM_PENDING;
		pthread_barrier_wait(&cr.start);
		pthread_barrier_wait(&cr.end);
	}
	assert_int_equal(pthread_join(fin, NULL), 0);
	assert_int_equal(pthread_join(can, NULL), 0);
	assert_int_equal(news, RACE_ITERS);
	assert_int_equal(pendings, RACE_ITERS);
	assert_int_equal(atomic_load(&cr.late_cbs), 0);
	print_message("cancel race: callback ran in %d of %d rounds\n",
		      atomic_load(&cr.cb_runs), RACE_ITERS);
	pthread_barrier_destroy(&cr.start);
	pthread_barrier_destroy(&cr.end);
	idem_free(cr.s);
}

#define STRESS_THREADS 4
#define STRESS_KEYS 48
#define STRESS_OPS 4000

struct stress {
	struct idem_store *s;
	_Atomic uint64_t clock;
};

struct stresser {
	struct stress *st;
	struct waitbox box;
	uint64_t rng;
	int fails;
	unsigned news, dones, waits, cancels, mismatches;
};

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* The body a key's first request answers with: its length and content
 * follow the key and fingerprint, so a replay of the wrong entry shows. */
static size_t stress_len(unsigned k)
{
	return 40 + (size_t)k * 37;
}

static void *stress_main(void *arg)
{
	struct stresser *me = arg;
	struct idem_store *s = me->st->s;
	struct idem_response *r;
	enum idem_result res;
	char key[16];
	unsigned k, tag;
	uint64_t fp, now;
	int op, tries, seen;

	for (op = 0; op < STRESS_OPS; op++) {
		k = (unsigned)(next_rand(&me->rng) % STRESS_KEYS);
		fp = next_rand(&me->rng) % 16 == 0 ? k + 1000 : k;
		tag = (unsigned)(k * 31 + fp);
		snprintf(key, sizeof(key), "s:%u", k);
		for (tries = 0; tries < 100; tries++) {
			now = atomic_fetch_add(&me->st->clock, 1);
			seen = box_woken(&me->box);
			res = begin_at(s, key, fp, 300, now, &me->box.w, &r);
			if (res == IDEM_NEW) {
				me->news++;
				if (next_rand(&me->rng) % 4 == 0)
					sched_yield();
				if (next_rand(&me->rng) % 8 == 0)
					idem_abort(s, key, strlen(key));
				else
					complete_at(s, key, tag, stress_len(k),
						    now);
				break;
			}
			if (res == IDEM_DONE) {
				me->dones++;
				if (!resp_is(r, tag, stress_len(k)))
					me->fails++;
				idem_response_unref(r);
				break;
			}
			if (res == IDEM_MISMATCH) {
				me->mismatches++;
				break;
			}
			if (res != IDEM_PENDING) {
				me->fails++;
				break;
			}
			if (next_rand(&me->rng) % 3 == 0) {
				me->cancels++;
				idem_cancel(s, &me->box.w);
				break;
			}
			me->waits++;
			if (box_wait(&me->box, seen) != 0) {
				me->fails++;
				idem_cancel(s, &me->box.w);
				break;
			}
		}
	}
	return NULL;
}

/* Many keys, small budget: evictions cross shards while other threads
 * hold them; every replay must still be the right bytes, and once no
 * request is in flight the bound holds. */
static void test_threads_mixed_load(void **state)
{
	struct stress st;
	struct stresser sr[STRESS_THREADS];
	pthread_t th[STRESS_THREADS];
	struct idem_stats is;
	size_t max = 12 * cost("s:10", 1);
	unsigned news = 0, dones = 0, waits = 0, cancels = 0, mism = 0;
	int i;

	(void)state;
	st.s = idem_new(max, BIG);
	assert_non_null(st.s);
	atomic_init(&st.clock, 1);
	for (i = 0; i < STRESS_THREADS; i++) {
		memset(&sr[i], 0, sizeof(sr[i]));
		sr[i].st = &st;
		sr[i].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		box_init(&sr[i].box);
		assert_int_equal(pthread_create(&th[i], NULL, stress_main,
						&sr[i]),
				 0);
	}
	for (i = 0; i < STRESS_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(sr[i].fails, 0);
		news += sr[i].news;
		dones += sr[i].dones;
		waits += sr[i].waits;
		cancels += sr[i].cancels;
		mism += sr[i].mismatches;
		box_fini(&sr[i].box);
	}
	is = stats(st.s);
	assert_true(is.bytes <= max);
	assert_true(dones > 0 && is.evictions > 0);
	print_message("mixed load: new %u replayed %u waited %u cancelled %u "
		      "mismatched %u evicted %llu\n",
		      news, dones, waits, cancels, mism,
		      (unsigned long long)is.evictions);
	idem_free(st.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_is_new_repeats_replay),
		cmocka_unit_test(test_keys_are_exact_bytes),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_mismatch),
		cmocka_unit_test(test_pending_without_waiter),
		cmocka_unit_test(test_complete_wakes_waiters),
		cmocka_unit_test(test_abort_lets_one_waiter_go_first),
		cmocka_unit_test(test_ttl_from_completion),
		cmocka_unit_test(test_expired_go_before_live),
		cmocka_unit_test(test_eviction_order),
		cmocka_unit_test(test_oversize_not_stored),
		cmocka_unit_test(test_in_flight_entries_hold_room),
		cmocka_unit_test(test_response_outlives_entry),
		cmocka_unit_test(test_free_with_entries),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_waiter_untouched_after_callback),
		cmocka_unit_test(test_threads_one_forwards_rest_replay),
		cmocka_unit_test(test_cancel_races_wake),
		cmocka_unit_test(test_threads_mixed_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
