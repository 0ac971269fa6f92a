/*
 * test_balance.c - the balancing algorithms, through proxy/balance.h.
 *
 * Each case checks something a pool's user relies on: that shares follow
 * the weights, that a node of weight 0 is never chosen, that a hashed key
 * stays on its node and only the keys of a removed node move. Figures
 * that depend on randomness use fixed seeds and fixed key sets, so every
 * run sees the same numbers; the bounds are still set where a correct
 * algorithm lands for any seed, not fitted to these. The measured figures
 * are printed for the record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/balance.h"

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define MAXN 16

/* The state for algorithms that ignore it (round robin, hash): the
 * contract asks for one all the same. */
static struct balance_state ST;

static int setup_state(void **state)
{
	(void)state;
	balance_state_init(&ST, 1);
	return 0;
}

/* A pool of n nodes named backend-<i>, with the given weights. */
static void mkpool(struct balance_node *nd, size_t n, const uint32_t *w)
{
	char name[32];

	assert_true(n <= MAXN);
	memset(nd, 0, n * sizeof(*nd));
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(name, sizeof(name), "backend-%zu", i);

		nd[i].weight = w[i];
		nd[i].id_hash = balance_hash(name, (size_t)len);
	}
}

static int pick(enum balance_algo a, struct balance_node *nd, size_t n,
		struct balance_state *st)
{
	return balance_pick(a, nd, n, st, NULL, 0);
}

static int pick_key(struct balance_node *nd, size_t n, const char *key)
{
	return balance_pick(BALANCE_HASH, nd, n, &ST, key, strlen(key));
}

/* Counts picks per node; every pick must be a valid index. */
static void count_picks(enum balance_algo a, struct balance_node *nd,
			size_t n, struct balance_state *st, int picks,
			unsigned *counts)
{
	memset(counts, 0, n * sizeof(*counts));
	for (int k = 0; k < picks; k++) {
		int i = pick(a, nd, n, st);

		assert_in_range(i, 0, (int)n - 1);
		counts[i]++;
	}
}

/* |got - want| <= tol * want, with a readable failure message. */
static void assert_share(const char *what, double got, double want,
			 double tol)
{
	double d = got > want ? got - want : want - got;

	if (d > tol * want)
		fail_msg("%s: share %.4f, want %.4f within %.0f%%", what, got,
			 want, tol * 100);
}

/*
 * Round robin
 */

static void test_rr_shares_follow_weights(void **state)
{
	static const uint32_t w[] = {1, 2, 3, 4};
	struct balance_node nd[4];
	unsigned c[4];

	(void)state;
	mkpool(nd, 4, w);
	count_picks(BALANCE_ROUND_ROBIN, nd, 4, &ST, 1000, c);
	print_message("rr 1,2,3,4 over 1000: %u %u %u %u\n", c[0], c[1], c[2],
		      c[3]);
	for (size_t i = 0; i < 4; i++)
		assert_share("rr", c[i] / 1000.0, w[i] / 10.0, 0.05);
	/* Smooth WRR is exact over whole cycles of W = 10 picks. */
	assert_int_equal(c[0], 100);
	assert_int_equal(c[3], 400);
}

/*
 * Smooth WRR with weights 5,1,1 repeats the cycle a a b a c a a: the
 * light nodes are spread through it, but where one cycle's trailing
 * "a a" meets the next one's leading "a a" the heavy node runs 4 long.
 * That is the algorithm's true bound (a fresh pool starts the cycle at
 * zero credit), so it is asserted exactly, and the light nodes never
 * repeat back to back.
 */
static void test_rr_picks_are_interleaved(void **state)
{
	static const uint32_t w[] = {5, 1, 1};
	static const int cycle[] = {0, 0, 1, 0, 2, 0, 0};
	struct balance_node nd[3];
	int prev = -1, run = 0, maxrun[3] = {0, 0, 0};

	(void)state;
	mkpool(nd, 3, w);
	for (int k = 0; k < 700; k++) {
		int i = pick(BALANCE_ROUND_ROBIN, nd, 3, &ST);

		assert_int_equal(i, cycle[k % 7]);
		run = i == prev ? run + 1 : 1;
		prev = i;
		if (run > maxrun[i])
			maxrun[i] = run;
	}
	assert_int_equal(maxrun[0], 4);
	assert_int_equal(maxrun[1], 1);
	assert_int_equal(maxrun[2], 1);
}

/* With weights 1,2,3,4 every window of W = 10 consecutive picks, not only
 * the aligned ones, holds each node its weight in picks, give or take 1. */
static void test_rr_every_window_is_fair(void **state)
{
	static const uint32_t w[] = {1, 2, 3, 4};
	struct balance_node nd[4];
	int seq[200];

	(void)state;
	mkpool(nd, 4, w);
	for (size_t k = 0; k < NELEMS(seq); k++)
		seq[k] = pick(BALANCE_ROUND_ROBIN, nd, 4, &ST);
	for (size_t s = 0; s + 10 <= NELEMS(seq); s++) {
		int c[4] = {0, 0, 0, 0};

		for (size_t k = s; k < s + 10; k++)
			c[seq[k]]++;
		for (size_t i = 0; i < 4; i++)
			assert_in_range(c[i], (int)w[i] - 1, (int)w[i] + 1);
	}
}

static void test_rr_weight_zero_never_picked(void **state)
{
	static const uint32_t w[] = {0, 3, 0, 1, 0};
	struct balance_node nd[5];
	unsigned c[5];

	(void)state;
	mkpool(nd, 5, w);
	count_picks(BALANCE_ROUND_ROBIN, nd, 5, &ST, 400, c);
	assert_int_equal(c[0], 0);
	assert_int_equal(c[2], 0);
	assert_int_equal(c[4], 0);
	assert_int_equal(c[1], 300);
	assert_int_equal(c[3], 100);
}

static void test_rr_none_eligible(void **state)
{
	static const uint32_t w[] = {0, 0, 0};
	struct balance_node nd[3];
	struct balance_state st;

	(void)state;
	balance_state_init(&st, 1);
	mkpool(nd, 3, w);
	for (int a = BALANCE_ROUND_ROBIN; a <= BALANCE_STICKY; a++) {
		assert_int_equal(balance_pick((enum balance_algo)a, nd, 3, &st,
					      "k", 1),
				 -1);
		assert_int_equal(balance_pick((enum balance_algo)a, nd, 0, &st,
					      "k", 1),
				 -1);
		assert_int_equal(balance_pick((enum balance_algo)a, NULL, 3,
					      &st, "k", 1),
				 -1);
	}
}

/*
 * A node that flaps (health checks failing and passing) must not skew
 * the others, and must get its share of the picks made while it was
 * eligible: nodes 0 and 1 of equal weight stay level, node 2 gets a third
 * of its eligible picks (within 2%: ties going to the lower index give
 * node 0 a slight edge when changes come every few picks). Handing a
 * leaving node's credit to the others fails this (node 2 got 78% of its
 * due), and so does merely zeroing it (nodes 0 and 1 ended 2.1% apart).
 */
static void test_rr_flapping_node_keeps_shares_fair(void **state)
{
	static const uint32_t w[] = {1, 1, 1};
	struct balance_node nd[3];
	unsigned c[3] = {0, 0, 0}, with3 = 0;
	uint32_t x = 12345;

	(void)state;
	mkpool(nd, 3, w);
	for (int k = 0; k < 30000; k++) {
		int i;

		x = x * 1103515245u + 12345u;
		if ((x >> 16) % 3 == 0)
			nd[2].weight = nd[2].weight ? 0 : 1;
		with3 += nd[2].weight;
		i = pick(BALANCE_ROUND_ROBIN, nd, 3, &ST);
		assert_in_range(i, 0, 2);
		if (nd[2].weight == 0)
			assert_int_not_equal(i, 2);
		c[i]++;
	}
	print_message("rr flapping: %u %u %u (node 2 eligible %u picks)\n",
		      c[0], c[1], c[2], with3);
	assert_share("node 0 vs 1", (double)c[0], (double)c[1], 0.02);
	/* Eligible for with3 picks, it should get a third of those. */
	assert_share("flapping node", (double)c[2], with3 / 3.0, 0.02);
}

static void test_sticky_picks_like_round_robin(void **state)
{
	static const uint32_t w[] = {2, 1, 3};
	struct balance_node a[3], b[3];

	(void)state;
	mkpool(a, 3, w);
	mkpool(b, 3, w);
	for (int k = 0; k < 60; k++)
		assert_int_equal(pick(BALANCE_STICKY, a, 3, &ST),
				 pick(BALANCE_ROUND_ROBIN, b, 3, &ST));
}

/*
 * Least connections
 */

static void test_lc_fewest_in_flight(void **state)
{
	static const uint32_t w[] = {1, 1, 1};
	struct balance_node nd[3];
	struct balance_state st;

	(void)state;
	balance_state_init(&st, 1);
	mkpool(nd, 3, w);
	nd[0].in_flight = 3;
	nd[1].in_flight = 0;
	nd[2].in_flight = 2;
	for (int k = 0; k < 5; k++)
		assert_int_equal(pick(BALANCE_LEAST_CONN, nd, 3, &st), 1);
}

/* 2 in flight on weight 1 is a heavier load than 4 on weight 4. */
static void test_lc_per_unit_of_weight(void **state)
{
	static const uint32_t w[] = {1, 4};
	struct balance_node nd[2];
	struct balance_state st;

	(void)state;
	balance_state_init(&st, 1);
	mkpool(nd, 2, w);
	nd[0].in_flight = 2;
	nd[1].in_flight = 4;
	assert_int_equal(pick(BALANCE_LEAST_CONN, nd, 2, &st), 1);
	nd[1].in_flight = 9;
	assert_int_equal(pick(BALANCE_LEAST_CONN, nd, 2, &st), 0);
}

static void test_lc_idle_nodes_take_turns(void **state)
{
	static const uint32_t w[] = {1, 1, 1, 1};
	struct balance_node nd[4];
	struct balance_state st;
	int seen[4] = {0, 0, 0, 0}, prev = -1;

	(void)state;
	balance_state_init(&st, 1);
	mkpool(nd, 4, w);
	for (int k = 0; k < 8; k++) {
		int i = pick(BALANCE_LEAST_CONN, nd, 4, &st);

		assert_in_range(i, 0, 3);
		assert_int_not_equal(i, prev);
		/* Each consecutive group of 4 covers all the nodes. */
		assert_int_equal(seen[i], k / 4);
		seen[i]++;
		prev = i;
	}
}

static void test_lc_skips_ineligible(void **state)
{
	static const uint32_t w[] = {0, 1, 0, 1};
	struct balance_node nd[4];
	struct balance_state st;
	unsigned c[4];

	(void)state;
	balance_state_init(&st, 1);
	mkpool(nd, 4, w);
	nd[1].in_flight = 7; /* idle but ineligible nodes 0 and 2 stay out */
	nd[3].in_flight = 7;
	count_picks(BALANCE_LEAST_CONN, nd, 4, &st, 100, c);
	assert_int_equal(c[0] + c[2], 0);
	assert_int_equal(c[1], 50);
	assert_int_equal(c[3], 50);
}

/*
 * Power of two choices over EWMA latency
 */

static void test_p2c_avoids_slow_node(void **state)
{
	static const uint32_t w[] = {1, 1, 1, 1};
	struct balance_node nd[4];
	struct balance_state st;
	unsigned c[4];

	(void)state;
	balance_state_init(&st, 42);
	mkpool(nd, 4, w);
	for (size_t i = 0; i < 4; i++) {
		nd[i].ewma_us = 1000;
		nd[i].in_flight = 2;
	}
	nd[3].ewma_us = 10000;
	count_picks(BALANCE_P2C_EWMA, nd, 4, &st, 1000, c);
	print_message("p2c, node 3 10x slower: %u %u %u %u\n", c[0], c[1],
		      c[2], c[3]);
	/* Well under its 1/4 share (it loses every comparison here). */
	assert_true(c[3] < 1000 / 4 / 5);
	for (size_t i = 0; i < 3; i++)
		assert_share("fast node", c[i] / 1000.0, 1.0 / 3, 0.2);
}

/* Equal latency: the node with more requests in flight loses. */
static void test_p2c_prefers_less_loaded(void **state)
{
	static const uint32_t w[] = {1, 1, 1};
	struct balance_node nd[3];
	struct balance_state st;
	unsigned c[3];

	(void)state;
	balance_state_init(&st, 7);
	mkpool(nd, 3, w);
	for (size_t i = 0; i < 3; i++)
		nd[i].ewma_us = 500;
	nd[0].in_flight = 20;
	count_picks(BALANCE_P2C_EWMA, nd, 3, &st, 1000, c);
	assert_true(c[0] < 1000 / 3 / 5);
}

/* A node with no sample yet is costed neutrally: neither flooded nor
 * starved, it gets about its share among equals. */
static void test_p2c_new_node_gets_its_share(void **state)
{
	static const uint32_t w[] = {1, 1, 1, 1};
	struct balance_node nd[4];
	struct balance_state st;
	unsigned c[4];

	(void)state;
	balance_state_init(&st, 9);
	mkpool(nd, 4, w);
	nd[0].ewma_us = 800;
	nd[1].ewma_us = 1200;
	nd[2].ewma_us = 1000;
	nd[3].ewma_us = 0; /* mean of the others: 1000, like node 2 */
	count_picks(BALANCE_P2C_EWMA, nd, 4, &st, 4000, c);
	print_message("p2c, new node 3: %u %u %u %u\n", c[0], c[1], c[2],
		      c[3]);
	assert_true(c[3] > 4000 / 8);
	assert_true(c[3] < 4000 / 2);
	assert_share("new node vs equal node", (double)c[3], (double)c[2],
		     0.15);
}

static void test_p2c_never_picks_ineligible(void **state)
{
	static const uint32_t w[] = {0, 1, 0, 2, 1};
	struct balance_node nd[5];
	struct balance_state st;
	unsigned c[5];

	(void)state;
	balance_state_init(&st, 3);
	mkpool(nd, 5, w);
	for (size_t i = 0; i < 5; i++)
		nd[i].ewma_us = 1000;
	nd[0].ewma_us = 1; /* fastest by far, but out */
	nd[2].ewma_us = 1;
	count_picks(BALANCE_P2C_EWMA, nd, 5, &st, 2000, c);
	assert_int_equal(c[0], 0);
	assert_int_equal(c[2], 0);
	assert_true(c[1] > 0 && c[3] > 0 && c[4] > 0);
}

static void test_p2c_single_node(void **state)
{
	static const uint32_t one[] = {3};
	static const uint32_t among[] = {0, 0, 5, 0};
	struct balance_node nd[4];
	struct balance_state st;

	(void)state;
	balance_state_init(&st, 0);
	mkpool(nd, 1, one);
	nd[0].in_flight = 100;
	nd[0].ewma_us = 1e6;
	for (int k = 0; k < 10; k++)
		assert_int_equal(pick(BALANCE_P2C_EWMA, nd, 1, &st), 0);
	mkpool(nd, 4, among);
	for (int k = 0; k < 10; k++)
		assert_int_equal(pick(BALANCE_P2C_EWMA, nd, 4, &st), 2);
}

/* The draw is weighted: with equal cost per unit of weight the first
 * drawn wins, so shares follow the weights. A state that skipped
 * balance_state_init (all zero) must still draw, not stick. */
static void test_p2c_draws_by_weight(void **state)
{
	static const uint32_t w[] = {1, 1, 2};
	struct balance_node nd[3];
	struct balance_state st;
	unsigned c[3];

	(void)state;
	memset(&st, 0, sizeof(st));
	mkpool(nd, 3, w);
	/* Cost (in_flight+1)·ewma/weight is 1000 for all three. */
	nd[0].ewma_us = 1000;
	nd[1].ewma_us = 1000;
	nd[2].ewma_us = 2000;
	count_picks(BALANCE_P2C_EWMA, nd, 3, &st, 8000, c);
	print_message("p2c weights 1,1,2 equal cost: %u %u %u\n", c[0], c[1],
		      c[2]);
	assert_share("w1", c[0] / 8000.0, 0.25, 0.1);
	assert_share("w1", c[1] / 8000.0, 0.25, 0.1);
	assert_share("w2", c[2] / 8000.0, 0.5, 0.1);
}

static void test_p2c_same_seed_same_picks(void **state)
{
	static const uint32_t w[] = {1, 2, 3, 4, 5};
	struct balance_node a[5], b[5];
	struct balance_state sa, sb;

	(void)state;
	mkpool(a, 5, w);
	mkpool(b, 5, w);
	balance_state_init(&sa, 2024);
	balance_state_init(&sb, 2024);
	for (int k = 0; k < 100; k++)
		assert_int_equal(pick(BALANCE_P2C_EWMA, a, 5, &sa),
				 pick(BALANCE_P2C_EWMA, b, 5, &sb));
}

/*
 * Hash (weighted rendezvous)
 */

static void key_of(char *buf, size_t len, unsigned k)
{
	snprintf(buf, len, "10.%u.%u.%u", (k >> 16) & 255, (k >> 8) & 255,
		 k & 255);
}

/*
 * Taking one of 5 nodes out moves only the keys it held, and about 1/5 of
 * them; putting it back brings exactly those keys home.
 */
static void test_hash_removal_moves_only_its_keys(void **state)
{
	static const uint32_t w[] = {1, 1, 1, 1, 1};
	enum { NKEYS = 1000, N = 5, GONE = 2 };
	struct balance_node nd[N];
	int before[NKEYS];
	unsigned moved = 0, held = 0;
	char key[32];

	(void)state;
	mkpool(nd, N, w);
	for (unsigned k = 0; k < NKEYS; k++) {
		key_of(key, sizeof(key), k);
		before[k] = pick_key(nd, N, key);
		assert_in_range(before[k], 0, N - 1);
		held += before[k] == GONE;
	}
	nd[GONE].weight = 0;
	for (unsigned k = 0; k < NKEYS; k++) {
		int now;

		key_of(key, sizeof(key), k);
		now = pick_key(nd, N, key);
		assert_int_not_equal(now, GONE);
		if (now != before[k]) {
			/* Only keys of the removed node may move. */
			assert_int_equal(before[k], GONE);
			moved++;
		}
	}
	print_message("hash: removing 1 of %d moved %u of %d keys (%.3f)\n", N,
		      moved, NKEYS, (double)moved / NKEYS);
	assert_int_equal(moved, held);
	assert_true((double)moved / NKEYS <= 1.5 / N);

	nd[GONE].weight = 1;
	for (unsigned k = 0; k < NKEYS; k++) {
		key_of(key, sizeof(key), k);
		assert_int_equal(pick_key(nd, N, key), before[k]);
	}
}

/* Same key, same node: across calls, with round-robin state churned in
 * between, and whatever the order of the node array (a reload may
 * rebuild it). */
static void test_hash_same_key_same_node(void **state)
{
	static const uint32_t w[] = {1, 2, 1, 3};
	static const size_t perm[] = {3, 0, 2, 1};
	struct balance_node nd[4], shuffled[4];
	char key[32];

	(void)state;
	mkpool(nd, 4, w);
	for (size_t i = 0; i < 4; i++)
		shuffled[i] = nd[perm[i]];
	for (unsigned k = 0; k < 200; k++) {
		int first, i;

		key_of(key, sizeof(key), k * 7919);
		first = pick_key(nd, 4, key);
		for (int r = 0; r < 3; r++) {
			(void)pick(BALANCE_ROUND_ROBIN, nd, 4, &ST);
			assert_int_equal(pick_key(nd, 4, key), first);
		}
		i = pick_key(shuffled, 4, key);
		assert_in_range(i, 0, 3);
		assert_int_equal(perm[i], (size_t)first);
	}
}

static void test_hash_shares_follow_weights(void **state)
{
	static const uint32_t w[] = {1, 3};
	static const uint32_t w5[] = {1, 1, 1, 1, 1};
	enum { NKEYS = 10000 };
	struct balance_node nd[5];
	unsigned c[5] = {0, 0, 0, 0, 0};
	char key[32];

	(void)state;
	mkpool(nd, 2, w);
	for (unsigned k = 0; k < NKEYS; k++) {
		key_of(key, sizeof(key), k);
		c[pick_key(nd, 2, key)]++;
	}
	print_message("hash weights 1,3 over %d keys: %.4f %.4f\n", NKEYS,
		      (double)c[0] / NKEYS, (double)c[1] / NKEYS);
	assert_share("w1", (double)c[0] / NKEYS, 0.25, 0.05);
	assert_share("w3", (double)c[1] / NKEYS, 0.75, 0.05);

	memset(c, 0, sizeof(c));
	mkpool(nd, 5, w5);
	for (unsigned k = 0; k < NKEYS; k++) {
		key_of(key, sizeof(key), k);
		c[pick_key(nd, 5, key)]++;
	}
	print_message("hash 5 equal nodes: %u %u %u %u %u\n", c[0], c[1], c[2],
		      c[3], c[4]);
	for (size_t i = 0; i < 5; i++)
		assert_share("equal", (double)c[i] / NKEYS, 0.2, 0.1);
}

static void test_hash_without_key_is_round_robin(void **state)
{
	static const uint32_t w[] = {1, 2, 1};
	struct balance_node a[3], b[3];

	(void)state;
	mkpool(a, 3, w);
	mkpool(b, 3, w);
	for (int k = 0; k < 40; k++) {
		int want = pick(BALANCE_ROUND_ROBIN, b, 3, &ST);

		if (k % 2)
			assert_int_equal(balance_pick(BALANCE_HASH, a, 3, &ST,
						      NULL, 0),
					 want);
		else
			assert_int_equal(balance_pick(BALANCE_HASH, a, 3, &ST,
						      "ignored", 0),
					 want);
	}
}

/*
 * Pinned placements: where these keys land among backend-0..4 is what
 * every deployment using hash balancing sees. A change here reshuffles
 * all of them; it must be deliberate and announced.
 */
static void test_hash_placement_is_stable(void **state)
{
	static const uint32_t w[] = {1, 1, 1, 1, 1};
	static const struct {
		const char *key;
		int node;
	} pins[] = {
		{"10.0.0.1", 3},     {"10.0.0.2", 3},
		{"192.0.2.7", 2},    {"198.51.100.23", 4},
		{"2001:db8::1", 0},  {"/cart", 1},
		{"/checkout?id=42", 2}, {"user-1001", 2},
	};
	struct balance_node nd[5];

	(void)state;
	mkpool(nd, 5, w);
	for (size_t i = 0; i < NELEMS(pins); i++)
		if (pick_key(nd, 5, pins[i].key) != pins[i].node)
			fail_msg("key %s moved off backend-%d", pins[i].key,
				 pins[i].node);
}

/*
 * balance_hash
 */

/* Fixed outputs: sticky identities and hash placement are derived from
 * these on every machine, so they may never change silently. */
static void test_hash_known_values(void **state)
{
	static const struct {
		const char *in;
		uint64_t out;
	} known[] = {
		{"", 0xe220a8397b1dcdafULL},
		{"a", 0x7b48b98c2d5fd2feULL},
		{"abc", 0x617e0b7b89dccef8ULL},
		{"storekeep", 0x4897f14c53359161ULL},
		{"12345678", 0xd43b0cd45f645769ULL},
		{"123456789", 0x2d05daba88e07b30ULL},
		{"10.0.0.1", 0x1facf74c93414a4eULL},
		{"session=4f2a9c1e7b3d5a60", 0xfaea866ce3d9b086ULL},
		{"The quick brown fox jumps over the lazy dog",
		 0xb3da96615d2a19c8ULL},
	};

	(void)state;
	for (size_t i = 0; i < NELEMS(known); i++) {
		uint64_t h = balance_hash(known[i].in, strlen(known[i].in));

		if (h != known[i].out)
			fail_msg("balance_hash(\"%s\") = %#018llx, pinned "
				 "%#018llx",
				 known[i].in, (unsigned long long)h,
				 (unsigned long long)known[i].out);
	}
	/* NULL with length 0 is the empty input. */
	assert_true(balance_hash(NULL, 0) == known[0].out);
}

/* Trailing zero bytes count (the length is hashed), the result does not
 * depend on the alignment of the input, and one flipped input bit flips
 * about half of the output bits. */
static void test_hash_is_well_mixed(void **state)
{
	unsigned char buf[64 + 8];
	uint64_t total = 0, tests = 0;

	(void)state;
	assert_true(balance_hash("a", 1) != balance_hash("a\0", 2));
	assert_true(balance_hash("\0", 1) != balance_hash("", 0));
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 37 + 11);
	for (size_t off = 1; off < 8; off++) {
		unsigned char moved[64 + 8];

		memcpy(moved + off, buf, 40);
		assert_true(balance_hash(moved + off, 40) ==
			    balance_hash(buf, 40));
	}
	for (size_t len = 1; len <= 40; len += 3) {
		uint64_t h = balance_hash(buf, len);

		for (size_t bit = 0; bit < len * 8; bit++) {
			buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
			total += (uint64_t)__builtin_popcountll(
				h ^ balance_hash(buf, len));
			buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
			tests++;
		}
	}
	print_message("balance_hash avalanche: %.2f of 64 bits per flip\n",
		      (double)total / (double)tests);
	assert_share("avalanche", (double)total / (double)tests, 32.0, 0.03);
}

/*
 * EWMA
 */

static void test_ewma_first_sample_sets(void **state)
{
	double e = 0;

	(void)state;
	balance_ewma_update(&e, 250, 5e6, 1e6);
	assert_true(e == 250);
}

static void test_ewma_decays_toward_samples(void **state)
{
	double e = 100, half = 100, prev;

	(void)state;
	/* One time constant: the old value keeps weight 1/e. */
	balance_ewma_update(&e, 200, 1e6, 1e6);
	assert_float_equal(e, 100 * 0.36787944117144233 +
				      200 * (1 - 0.36787944117144233),
			   1e-9);
	/* Two half steps are one whole step. */
	balance_ewma_update(&half, 200, 5e5, 1e6);
	balance_ewma_update(&half, 200, 5e5, 1e6);
	assert_float_equal(half, e, 1e-9);
	/* Repeated samples converge monotonically on them. */
	for (int k = 0; k < 50; k++) {
		prev = e;
		balance_ewma_update(&e, 200, 1e6, 1e6);
		assert_true(e >= prev && e <= 200);
	}
	assert_float_equal(e, 200, 1e-6);
	/* A long quiet gap forgets the past almost entirely. */
	balance_ewma_update(&e, 50, 1e9, 1e6);
	assert_float_equal(e, 50, 1e-9);
}

static void test_ewma_zero_dt_keeps_value(void **state)
{
	double e = 300;

	(void)state;
	balance_ewma_update(&e, 900, 0, 1e6);
	assert_true(e == 300);
	balance_ewma_update(&e, 900, -5, 1e6); /* a clock stepping back */
	assert_true(e == 300);
	balance_ewma_update(&e, -1, 1e6, 1e6); /* not a latency */
	assert_true(e == 300);
}

/*
 * Names
 */

static void test_algo_names_round_trip(void **state)
{
	static const char *const names[] = {"round_robin", "least_conn",
					    "p2c_ewma", "hash", "sticky"};
	static const char *const bad[] = {"",	     "Round_Robin", "round-robin",
					  "roundrobin", "hash ",	    " hash",
					  "p2c",	     "least_connx"};

	(void)state;
	for (int a = BALANCE_ROUND_ROBIN; a <= BALANCE_STICKY; a++) {
		enum balance_algo out = BALANCE_STICKY;

		assert_string_equal(balance_algo_name((enum balance_algo)a),
				    names[a]);
		assert_int_equal(balance_algo_parse(names[a], &out), 0);
		assert_int_equal(out, a);
	}
	for (size_t i = 0; i < NELEMS(bad); i++) {
		enum balance_algo out = BALANCE_LEAST_CONN;

		assert_int_equal(balance_algo_parse(bad[i], &out), -1);
		assert_int_equal(out, BALANCE_LEAST_CONN); /* untouched */
	}
	assert_int_equal(balance_algo_parse(NULL, &(enum balance_algo){0}), -1);
	assert_string_equal(balance_algo_name((enum balance_algo)99),
			    "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rr_shares_follow_weights),
		cmocka_unit_test(test_rr_picks_are_interleaved),
		cmocka_unit_test(test_rr_every_window_is_fair),
		cmocka_unit_test(test_rr_weight_zero_never_picked),
		cmocka_unit_test(test_rr_none_eligible),
		cmocka_unit_test(test_rr_flapping_node_keeps_shares_fair),
		cmocka_unit_test(test_sticky_picks_like_round_robin),
		cmocka_unit_test(test_lc_fewest_in_flight),
		cmocka_unit_test(test_lc_per_unit_of_weight),
		cmocka_unit_test(test_lc_idle_nodes_take_turns),
		cmocka_unit_test(test_lc_skips_ineligible),
		cmocka_unit_test(test_p2c_avoids_slow_node),
		cmocka_unit_test(test_p2c_prefers_less_loaded),
		cmocka_unit_test(test_p2c_new_node_gets_its_share),
		cmocka_unit_test(test_p2c_never_picks_ineligible),
		cmocka_unit_test(test_p2c_single_node),
		cmocka_unit_test(test_p2c_draws_by_weight),
		cmocka_unit_test(test_p2c_same_seed_same_picks),
		cmocka_unit_test(test_hash_removal_moves_only_its_keys),
		cmocka_unit_test(test_hash_same_key_same_node),
		cmocka_unit_test(test_hash_shares_follow_weights),
		cmocka_unit_test(test_hash_without_key_is_round_robin),
		cmocka_unit_test(test_hash_placement_is_stable),
		cmocka_unit_test(test_hash_known_values),
		cmocka_unit_test(test_hash_is_well_mixed),
		cmocka_unit_test(test_ewma_first_sample_sets),
		cmocka_unit_test(test_ewma_decays_toward_samples),
		cmocka_unit_test(test_ewma_zero_dt_keeps_value),
		cmocka_unit_test(test_algo_names_round_trip),
	};

	return cmocka_run_group_tests(tests, setup_state, NULL);
}
