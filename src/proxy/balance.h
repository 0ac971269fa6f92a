/*
 * balance.h - choosing a backend: the balancing algorithms of a pool.
 *
 * Pure functions over an array of nodes, one array per pool and worker
 * thread (no locks: each worker balances on its own view; in_flight and
 * EWMA latency are that worker's). The caller decides eligibility (up,
 * not drained, not ejected, the right tier: primaries, or backups when no
 * primary is eligible) by giving ineligible nodes weight 0, and applies
 * slow start by lowering the weight of a recovering node.
 *
 *   round_robin  smooth weighted round robin: over any window, shares
 *                follow the weights and picks are interleaved.
 *   least_conn   fewest in-flight requests per unit of weight; ties go
 *                round robin so equal nodes share.
 *   p2c_ewma     power of two random choices: two distinct eligible nodes
 *                drawn at random (weighted), the one with the lower cost
 *                (in_flight + 1) * ewma latency / weight wins.
 *   hash         weighted rendezvous hashing of a request key (client IP,
 *                a header, a cookie or the path): a key maps to the same
 *                node while it is eligible, and removing one of N nodes
 *                moves only the keys it held (about 1/N).
 * Sticky sessions are built on these by the proxy: it pins a client to
 * the node named by a cookie while that node is eligible, and otherwise
 * picks with round_robin and sets the cookie again.
 */
#ifndef SK_PROXY_BALANCE_H
#define SK_PROXY_BALANCE_H

#include <stddef.h>
#include <stdint.h>

enum balance_algo {
	BALANCE_ROUND_ROBIN = 0,
	BALANCE_LEAST_CONN,
	BALANCE_P2C_EWMA,
	BALANCE_HASH,
	BALANCE_STICKY, /* the proxy's cookie layer over round_robin */
};

struct balance_node {
	uint32_t weight;   /* effective weight now; 0 = not eligible */
	int64_t in_flight; /* requests in flight on it */
	double ewma_us;	   /* latency EWMA in microseconds; 0 = no sample yet */
	uint64_t id_hash;  /* stable identity (balance_hash of the name) */
	int64_t cur_weight; /* round-robin state, owned by balance.c */
};

/* Per pool and worker; zero-initialise, then balance_state_init. */
struct balance_state {
	uint64_t rng;	  /* xorshift state for p2c */
	uint32_t rr_next; /* tie-break rotation for least_conn */
};

void balance_state_init(struct balance_state *st, uint64_t seed);

/*
 * Picks a node among nodes[0..n) with weight > 0. key/keylen is the hash
 * input for BALANCE_HASH (ignored otherwise; a hash pick with no key
 * falls back to round robin). BALANCE_STICKY picks like round robin.
 * Returns the index, or -1 when no node is eligible.
 */
int balance_pick(enum balance_algo algo, struct balance_node *nodes, size_t n,
		 struct balance_state *st, const void *key, size_t keylen);

/* A fast, stable 64-bit hash (same value on every run and machine). */
uint64_t balance_hash(const void *p, size_t n);

/* Folds one latency sample into an EWMA with the given decay time
 * constant: the weight of a sample decays by e after tau_us of time
 * between samples (dt_us). The first sample sets the value. */
void balance_ewma_update(double *ewma_us, double sample_us, double dt_us,
			 double tau_us);

/* Name <-> parse for the config (round_robin, least_conn, p2c_ewma,
 * hash, sticky). Parse returns 0 or -1. */
const char *balance_algo_name(enum balance_algo a);
int balance_algo_parse(const char *s, enum balance_algo *out);

#endif
