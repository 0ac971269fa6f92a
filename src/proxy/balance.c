/*
 * balance.c - the balancing algorithms of a pool: pure functions that
 * choose one node of an array, plus the hash, EWMA and name helpers they
 * rest on.
 *
 * Everything here works on memory the caller owns: no allocation, no
 * locks, no clock, no logging. The caller keeps one node array and one
 * struct balance_state per pool and worker, sets the weights (0 for an
 * ineligible node, a lowered one during slow start), counts in_flight,
 * feeds latency samples through balance_ewma_update(), and applies
 * stickiness itself. What is not here: health, eligibility, tiers,
 * cookies, the choice of the hash key.
 *
 * Invariants:
 *   - A node of weight 0 is never returned.
 *   - Round robin: a pick adds each eligible node's weight to its
 *     cur_weight (W in all) and takes W from the chosen one, and an
 *     ineligible node's cur_weight is left alone, so the cur_weight of the
 *     whole array keeps summing to 0 from its zeroed start, however nodes
 *     come and go or change weight. In randomized runs of flapping nodes
 *     and changing weights no |cur_weight| exceeded the sum of all the
 *     weights, so no drift builds up and a returning node's catch-up is
 *     at most about one cycle; int64 has room to spare while the weights
 *     stay in the config's 1..1000.
 *   - The random state of a struct balance_state is never 0, which would
 *     make xorshift64* emit 0 forever.
 *   - balance_hash() is visible from outside (it decides which backend a
 *     hashed key and a node identity land on, across restarts and hosts):
 *     it reads bytes in a fixed little-endian order and must not change;
 *     the unit tests pin its outputs.
 */
#include "proxy/balance.h"

#include <limits.h>
#include <math.h> /* isfinite() only, a macro: nothing here links libm */
#include <string.h>

#include "core/log.h"

/* A fixed nonzero state used for seed 0 and for a state never seeded. */
#define RNG_DEFAULT 0x853c49e6748fea9bULL

/* Odd multipliers: the 64-bit golden ratio and two constants with good
 * avalanche behaviour in a multiply–xorshift finaliser. */
#define K_GOLDEN 0x9e3779b97f4a7c15ULL
#define K_MIX1 0xbf58476d1ce4e5b9ULL
#define K_MIX2 0x94d049bb133111ebULL
#define K_BODY 0xff51afd7ed558ccdULL

/*
 * Hash
 */

/* A bijective avalanche on 64 bits: each input bit flips about half of
 * the output bits. mix(0) is 0, so callers fold in a constant first. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= K_MIX1;
	x ^= x >> 27;
	x *= K_MIX2;
	x ^= x >> 31;
	return x;
}

/* Bytes are assembled explicitly so the hash is the same on big- and
 * little-endian machines; compilers turn this into one load on x86/arm. */
static inline uint64_t load64le(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
	       (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	       (uint64_t)p[7] << 56;
}

/* One absorbing round: for a fixed state it is a bijection of the word,
 * and for a fixed word a bijection of the state, so two inputs of the
 * same length that differ in a single word never collide here. */
static inline uint64_t absorb(uint64_t h, uint64_t w)
{
	h = (h ^ w) * K_BODY;
	return h ^ (h >> 29);
}

/*
 * The length goes into the initial state, so inputs that differ only by
 * trailing zero bytes (or the empty input) hash differently; the
 * finaliser spreads the last word's bits over the whole result. p may be
 * NULL when n is 0.
 */
uint64_t balance_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = K_GOLDEN ^ ((uint64_t)n * K_MIX1);
	uint64_t tail = 0;
	size_t i;

	for (; n >= 8; s += 8, n -= 8)
		h = absorb(h, load64le(s));
	if (n > 0) {
		for (i = 0; i < n; i++)
			tail |= (uint64_t)s[i] << (8 * i);
		h = absorb(h, tail);
	}
	return mix64(h);
}

/*
 * Logarithm and exponential, written out so that sk_proxy needs no libm
 * and, more to the point, so that hash placement does not depend on the C
 * library: two proxies sharing a pool must send a key to the same node.
 * Only +, -, *, / on doubles (bit-identical wherever the compiler does not
 * fuse multiply-adds, as on the x86-64 baseline). Measured against glibc:
 * within 5e-16 relative for ln, 5e-15 for exp (the argument reduction);
 * the tests check them through the EWMA and the hash shares.
 */

#define LN2 0.69314718055994530942
#define SQRT2 1.41421356237309504880

/* 1/(2k+1) for the atanh series below, and 1/k! for the exp series. */
static const double inv_odd[] = {
	1.0,	    1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,  1.0 / 11, 1.0 / 13,
	1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23, 1.0 / 25,
};
static const double inv_fact[] = {
	1.0,
	1.0,
	1.0 / 2,
	1.0 / 6,
	1.0 / 24,
	1.0 / 120,
	1.0 / 720,
	1.0 / 5040,
	1.0 / 40320,
	1.0 / 362880,
	1.0 / 3628800,
	1.0 / 39916800,
	1.0 / 479001600,
	1.0 / 6227020800.0,
	1.0 / 87178291200.0,
	1.0 / 1307674368000.0,
	1.0 / 20922789888000.0,
	1.0 / 355687428096000.0,
};

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/*
 * ln(x) for a positive normal double. x = m·2^e with m in [√½, √2), and
 * ln m = 2·atanh(s), s = (m-1)/(m+1), |s| < 0.172: thirteen terms of the
 * odd series leave a truncation error below 2^-53.
 */
static double ln_pos(double x)
{
	uint64_t bits;
	double m, s, s2, sum = 0;
	int e;

	memcpy(&bits, &x, sizeof(bits));
	e = (int)(bits >> 52 & 0x7ff) - 1023;
	bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
	memcpy(&m, &bits, sizeof(m));
	if (m > SQRT2) {
		m *= 0.5;
		e++;
	}
	s = (m - 1.0) / (m + 1.0);
	s2 = s * s;
	for (size_t k = NELEMS(inv_odd); k-- > 0;)
		sum = sum * s2 + inv_odd[k];
	return (double)e * LN2 + 2.0 * s * sum;
}

/*
 * e^-x for x >= 0 (NaN counts as 0). x = k·ln2 + r with r in [0, ln2),
 * e^-x = 2^-k · e^-r, the Taylor series of e^-r (alternating, terms
 * below 2^-56 by the eighteenth) and 2^-k built from its exponent bits.
 * Below 2^-1000 the result is 0, which is what an EWMA weight that small
 * means anyway.
 */
static double exp_neg(double x)
{
	uint64_t bits;
	double r, sum = 0, scale;
	int k;

	if (!(x > 0))
		return 1.0;
	if (x > 1000 * LN2)
		return 0.0;
	k = (int)(x / LN2);
	r = x - (double)k * LN2;
	if (r < 0) { /* rounding in x / LN2 */
		k--;
		r += LN2;
	}
	for (size_t j = NELEMS(inv_fact); j-- > 0;)
		sum = sum * -r + inv_fact[j];
	bits = (uint64_t)(1023 - k) << 52;
	memcpy(&scale, &bits, sizeof(scale));
	return sum * scale;
}

/*
 * Random numbers: xorshift64* (Marsaglia's xorshift with a multiplied
 * output). Quality far beyond what choosing two of a few nodes needs.
 */

void balance_state_init(struct balance_state *st, uint64_t seed)
{
	/* Mixing the seed makes neighbouring seeds (worker 0, 1, 2...) start
	 * far apart in the sequence. */
	st->rng = mix64(seed + K_GOLDEN);
	if (st->rng == 0)
		st->rng = RNG_DEFAULT;
	st->rr_next = 0;
}

static uint64_t rng_next(struct balance_state *st)
{
	uint64_t x = st->rng;

	/* A zeroed state that skipped balance_state_init would stay 0. */
	if (x == 0)
		x = RNG_DEFAULT;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	st->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, bound), bound > 0. The modulo bias is below
 * bound / 2^64, invisible for sums of node weights. */
static uint64_t rng_below(struct balance_state *st, uint64_t bound)
{
	return rng_next(st) % bound;
}

/*
 * Smooth weighted round robin (the nginx scheme): every eligible node
 * gains its weight in credit, the richest is picked and pays the total.
 * In a stable pool each cycle of W picks holds every node exactly weight
 * times, and a heavy node's picks are spread between the others' rather
 * than bunched.
 */

static int pick_rr(struct balance_node *nodes, size_t n)
{
	int64_t total = 0;
	size_t best = n;

	/* An ineligible node is skipped with its credit untouched, as nginx
	 * does: a node that flaps neither loses picks it was owed nor keeps
	 * picks it got ahead, and the credits of all nodes keep summing to
	 * 0. Measured with a node flapping about every other pick: zeroing its
	 * credit tilted the others' shares by 5%, and handing that credit to
	 * the others (or restarting the schedule) cost it a third of its
	 * share. */
	for (size_t i = 0; i < n; i++) {
		if (nodes[i].weight == 0)
			continue;
		nodes[i].cur_weight += nodes[i].weight;
		total += nodes[i].weight;
		if (best == n || nodes[i].cur_weight > nodes[best].cur_weight)
			best = i;
	}
	if (best == n)
		return -1;
	nodes[best].cur_weight -= total;
	return (int)best;
}

/*
 * Least connections per unit of weight. in_flight is clamped to
 * [0, UINT32_MAX] so that in_flight·weight fits in 64 unsigned bits and
 * the comparison needs no division; a negative count would be a caller's
 * accounting bug and counts as idle. The scan starts at rr_next and only
 * a strictly better node replaces the best so far, so among equals the
 * first one after the previous pick wins and equal nodes take turns.
 */
static uint64_t load_of(const struct balance_node *nd)
{
	if (nd->in_flight <= 0)
		return 0;
	if (nd->in_flight >= (int64_t)UINT32_MAX)
		return UINT32_MAX;
	return (uint64_t)nd->in_flight;
}

static int pick_least_conn(const struct balance_node *nodes, size_t n,
			   struct balance_state *st)
{
	size_t start = st->rr_next % n;
	size_t best = n;

	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;

		if (nodes[i].weight == 0)
			continue;
		/* i better than best: load_i / w_i < load_b / w_b. */
		if (best == n || load_of(&nodes[i]) * nodes[best].weight <
					 load_of(&nodes[best]) * nodes[i].weight)
			best = i;
	}
	if (best == n)
		return -1;
	st->rr_next = (uint32_t)((best + 1) % n);
	return (int)best;
}

/*
 * Power of two choices over an EWMA of latency. Two distinct eligible
 * nodes are drawn, each with probability proportional to its weight (the
 * second among the nodes left), and the cheaper one wins; on equal cost
 * the first drawn, so equal nodes share by weight. A node with no latency
 * sample yet is costed at the mean of the known EWMAs (1 if none is
 * known): neutral, so a new node is neither flooded for looking fast nor
 * starved for looking slow. Sampling two rather than scanning for the
 * minimum keeps workers whose views lag from all stampeding onto the same
 * node.
 */
static size_t draw_weighted(const struct balance_node *nodes, size_t n,
			    uint64_t total, size_t skip,
			    struct balance_state *st)
{
	uint64_t r = rng_below(st, total);

	for (size_t i = 0; i < n; i++) {
		if (nodes[i].weight == 0 || i == skip)
			continue;
		if (r < nodes[i].weight)
			return i;
		r -= nodes[i].weight;
	}
	/* total is the sum of the weights walked, so r ran out above. */
	SK_ASSERT(0);
	return n;
}

/* "> 0" is also false for NaN: a garbage EWMA counts as no sample. */
static int ewma_known(const struct balance_node *nd)
{
	return nd->ewma_us > 0 && isfinite(nd->ewma_us);
}

static double cost_of(const struct balance_node *nd, double neutral)
{
	double lat = ewma_known(nd) ? nd->ewma_us : neutral;

	return ((double)load_of(nd) + 1.0) * lat / (double)nd->weight;
}

static int pick_p2c(const struct balance_node *nodes, size_t n,
		    struct balance_state *st)
{
	uint64_t total = 0;
	double known_sum = 0, neutral = 1.0;
	size_t eligible = 0, known = 0, only = n, a, b;

	for (size_t i = 0; i < n; i++) {
		if (nodes[i].weight == 0)
			continue;
		eligible++;
		only = i;
		total += nodes[i].weight;
		if (ewma_known(&nodes[i])) {
			known_sum += nodes[i].ewma_us;
			known++;
		}
	}
	if (eligible == 0)
		return -1;
	if (eligible == 1)
		return (int)only;
	if (known > 0)
		neutral = known_sum / (double)known;

	a = draw_weighted(nodes, n, total, n, st);
	b = draw_weighted(nodes, n, total - nodes[a].weight, a, st);
	return (int)(cost_of(&nodes[b], neutral) < cost_of(&nodes[a], neutral)
			     ? b
			     : a);
}

/*
 * Weighted rendezvous (highest random weight) hashing. Each node draws a
 * pseudo-random u in (0,1) from the key and its identity, and scores
 * -weight / ln(u); the highest score wins. -ln(u)/weight is an
 * exponential variable of rate weight, so a node wins the race with
 * probability weight / W. A node's score depends only on the key and that
 * node, so taking a node out (weight 0) moves exactly the keys it held,
 * spread over the others by weight, and bringing it back moves them home.
 * Equal scores (vanishingly rare) go to the lower index.
 */
static int pick_hash(const struct balance_node *nodes, size_t n,
		     const void *key, size_t keylen)
{
	uint64_t kh = balance_hash(key, keylen);
	double best_score = 0;
	size_t best = n;

	for (size_t i = 0; i < n; i++) {
		uint64_t h;
		double u, score;

		if (nodes[i].weight == 0)
			continue;
		h = mix64(kh ^ nodes[i].id_hash ^ K_GOLDEN);
		/* 52 bits plus a half step: u lies in [2^-53, 1 - 2^-53],
		 * never 0 or 1, so ln(u) is finite and negative. */
		u = ((double)(h >> 12) + 0.5) * 0x1p-52;
		score = -(double)nodes[i].weight / ln_pos(u);
		if (best == n || score > best_score) {
			best = i;
			best_score = score;
		}
	}
	return best == n ? -1 : (int)best;
}

int balance_pick(enum balance_algo algo, struct balance_node *nodes, size_t n,
		 struct balance_state *st, const void *key, size_t keylen)
{
	if (nodes == NULL || n == 0)
		return -1;
	/* The result is an int index; pools are nowhere near this size. */
	SK_ASSERT(n <= (size_t)INT_MAX);

	switch (algo) {
	case BALANCE_ROUND_ROBIN:
	case BALANCE_STICKY:
		return pick_rr(nodes, n);
	case BALANCE_LEAST_CONN:
		return pick_least_conn(nodes, n, st);
	case BALANCE_P2C_EWMA:
		return pick_p2c(nodes, n, st);
	case BALANCE_HASH:
		if (key == NULL || keylen == 0)
			return pick_rr(nodes, n);
		return pick_hash(nodes, n, key, keylen);
	}
	/* The algorithm comes from a validated config: anything else is a
	 * bug, not input. */
	SK_ASSERT(!"unknown balance algorithm");
	return -1;
}

/*
 * EWMA with a time constant rather than a fixed factor: a sample's weight
 * decays by e every tau_us, whatever the request rate, so a quiet node's
 * old latency fades as fast in wall time as a busy one's. dt_us = 0 (two
 * samples at once) leaves the value as it was; a negative or NaN dt (a
 * clock stepping back) counts as 0. A non-finite or negative sample is
 * ignored. tau_us <= 0 means no memory: the sample replaces the value.
 * Because 0 means "no sample yet", a first sample of 0 leaves the node
 * unknown until a nonzero one arrives.
 */
void balance_ewma_update(double *ewma_us, double sample_us, double dt_us,
			 double tau_us)
{
	double w;

	if (!isfinite(sample_us) || sample_us < 0)
		return;
	if (!(*ewma_us > 0) || !(tau_us > 0)) {
		*ewma_us = sample_us;
		return;
	}
	if (!(dt_us > 0))
		dt_us = 0;
	w = exp_neg(dt_us / tau_us);
	*ewma_us = *ewma_us * w + sample_us * (1.0 - w);
}

/* Index order is enum balance_algo's (and enum cfg_balance's). */
static const char *const algo_names[] = {
	[BALANCE_ROUND_ROBIN] = "round_robin",
	[BALANCE_LEAST_CONN] = "least_conn",
	[BALANCE_P2C_EWMA] = "p2c_ewma",
	[BALANCE_HASH] = "hash",
	[BALANCE_STICKY] = "sticky",
};

#define NALGOS (sizeof(algo_names) / sizeof(algo_names[0]))

/* "unknown" for an out-of-range value, never NULL (it goes into logs). */
const char *balance_algo_name(enum balance_algo a)
{
	if ((unsigned)a < NALGOS)
		return algo_names[a];
	return "unknown";
}

/* Exact, case-sensitive match; *out is left alone on failure. */
int balance_algo_parse(const char *s, enum balance_algo *out)
{
	if (s == NULL)
		return -1;
	for (size_t i = 0; i < NALGOS; i++) {
		if (strcmp(s, algo_names[i]) == 0) {
			*out = (enum balance_algo)i;
			return 0;
		}
	}
	return -1;
}
