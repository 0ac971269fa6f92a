/*
 * idem.c - the idempotency store (see idem.h): one table shared by every
 * worker thread, mapping a request key to the first request's state and,
 * once it completed, its response.
 *
 * What it does not do: parse or build HTTP, decide which requests carry a
 * key, compute fingerprints, time out waiters, or persist anything across
 * a restart. The session does the first four; nothing does the last.
 *
 * Layout. 64 shards, each a mutex and a chained hash table (power-of-two
 * buckets, doubled when the entries outnumber them; never shrunk). Keys
 * come from clients, so they are hashed with SipHash-2-4 under a random
 * per-store key: with a fixed, public hash a client could fill one chain
 * with colliding keys and make every lookup in it linear. The top bits of
 * the hash pick the shard, the low bits the bucket.
 *
 * Beside the shards, one store lock guards what spans them:
 *   - the FIFO of completed (DONE) entries in completion order, which
 *     eviction takes from the old end: "oldest completed first" is exact,
 *     not approximated per shard;
 *   - a binary min-heap of the DONE entries by expiry time, so expired
 *     entries are found (and reclaimed before any live one is evicted)
 *     whatever mix of ttls the routes use;
 *   - the byte and entry counters;
 *   - every waiter list and each waiter's private next and entry fields.
 * Lookups that find a live DONE entry (replays), a mismatch, or a
 * PENDING entry with no waiter to register take the shard lock only;
 * creating, completing, aborting and reclaiming an entry, and registering
 * or cancelling a waiter, also take the store lock for a short section. Keyed requests are a small share of
 * the traffic, so one store lock on their write path is cheap.
 *
 * Why the waiter lists live under the store lock rather than the shard
 * lock: idem_cancel() knows only the waiter. Its entry field names the
 * entry, but the entry may be woken and freed by another thread between
 * reading the field and locking, so the shard cannot be read out of it;
 * the store lock needs no such lookup. Waking detaches the list, clears
 * each waiter's fields and runs its callback, all under the store lock,
 * so a cancel that returns has either unlinked the waiter or waited for
 * its callback to finish.
 *
 * Lock order: shard -> store lock. Eviction holds both and needs the
 * shard of each victim: it uses the lock it already holds when the victim
 * is in the same shard and pthread_mutex_trylock() otherwise, skipping a
 * busy shard's entry (waiting would invert the order). Under contention
 * eviction may therefore take a slightly newer entry first; the byte bound
 * is kept regardless. Callbacks run with a shard lock and the store lock
 * held and must not call back into the store.
 *
 * Invariants:
 *   - An entry is PENDING or DONE. A PENDING entry is in its shard's
 *     table only, never expires and is never evicted; it alone may have
 *     waiters. A DONE entry has a response, no waiters, and is in the
 *     table, the FIFO and the heap.
 *   - waiter->entry != NULL exactly while the waiter is linked on that
 *     entry's list; an entry is freed only with an empty list, so the
 *     field never dangles.
 *   - bytes is the sum of the entries' costs (entry_cost(): key plus
 *     bookkeeping, and the response once DONE) and done_bytes that of the
 *     DONE ones. Right after a response is stored, bytes <= max_bytes.
 *     A new PENDING entry is admitted even when evicting every DONE entry
 *     would not make room for it: refusing it would forward a repeat
 *     unprotected, and such entries are bounded by the requests in flight.
 *   - The store holds one reference to each stored response; each replay
 *     holds its own, so a response outlives its entry if it must.
 */
#include "proxy/idem.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"
#include "core/log.h"

#define SHARD_BITS 6
#define NSHARDS (1u << SHARD_BITS)
#define BUCKETS_MIN 16
/* Expired entries reclaimed per call beyond what room requires, so that
 * the backlog of an idle period is paid off a little at a time. */
#define RECLAIM_MAX 16
/* Busy shards an eviction steps over before it gives up. */
#define SKIP_MAX 16

enum entry_state {
	ENTRY_PENDING = 0,
	ENTRY_DONE,
};

struct entry {
	struct entry *hnext; /* bucket chain; shard lock */
	/* Store lock, DONE only: the completion FIFO and the expiry heap. */
	struct entry *older, *newer;
	size_t heap_idx;
	struct idem_waiter *waiters; /* store lock, PENDING only */
	struct idem_response *resp;  /* DONE only; the store's reference */
	uint64_t hash;
	uint64_t fingerprint;
	uint64_t ttl_ms;     /* from idem_begin, applied at completion */
	uint64_t expires_ms; /* DONE only */
	size_t bytes;	     /* this entry's share of store->bytes */
	enum entry_state state;
	size_t keylen;
	char key[];
};

struct shard {
	_Alignas(64) pthread_mutex_t lock;
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
};

struct idem_store {
	struct shard shards[NSHARDS];
	uint64_t sip_k0, sip_k1;
	size_t max_bytes;
	size_t max_entry_bytes;

	_Alignas(64) pthread_mutex_t lock; /* the store lock */
	struct entry *oldest, *newest;
	struct entry **heap;
	size_t heap_len, heap_cap;
	size_t bytes, done_bytes;
	uint64_t entries;
	uint64_t waits;
	uint64_t evictions;
	_Atomic uint64_t hits; /* bumped under a shard lock only */
};

/*
 * Accounting. An entry costs its struct and key, plus a pointer each for
 * its bucket slot and its heap slot (amortised: the bucket array can be
 * up to twice the entries of its shard); a response costs its struct and
 * its bytes, each copy followed by a NUL.
 */
static size_t entry_cost(size_t keylen)
{
	return sizeof(struct entry) + 2 * sizeof(void *) + keylen;
}

static size_t response_cost(size_t head_len, size_t body_len)
{
	return sizeof(struct idem_response) + head_len + body_len + 2;
}

/*
 * SipHash-2-4 (Aumasson and Bernstein), written from the paper: 64-bit
 * output under a 128-bit key, bytes read little-endian.
 */
static inline uint64_t rotl64(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t load64le(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 |
	       (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	       (uint64_t)p[7] << 56;
}

static inline void sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl64(v[1], 13) ^ v[0];
	v[0] = rotl64(v[0], 32);
	v[2] += v[3];
	v[3] = rotl64(v[3], 16) ^ v[2];
	v[0] += v[3];
	v[3] = rotl64(v[3], 21) ^ v[0];
	v[2] += v[1];
	v[1] = rotl64(v[1], 17) ^ v[2];
	v[2] = rotl64(v[2], 32);
}

static uint64_t siphash24(uint64_t k0, uint64_t k1, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t v[4] = {
		k0 ^ 0x736f6d6570736575ULL,
		k1 ^ 0x646f72616e646f6dULL,
		k0 ^ 0x6c7967656e657261ULL,
		k1 ^ 0x7465646279746573ULL,
	};
	uint64_t m, last = (uint64_t)n << 56;
	size_t i;

	for (; n >= 8; s += 8, n -= 8) {
		m = load64le(s);
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	for (i = 0; i < n; i++)
		last |= (uint64_t)s[i] << (8 * i);
	v[3] ^= last;
	sip_round(v);
	sip_round(v);
	v[0] ^= last;
	v[2] ^= 0xff;
	for (i = 0; i < 4; i++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static void seed_hash(struct idem_store *s)
{
	uint64_t k[2];

	if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k)) {
		/* No entropy source: still better than a constant key. */
		k[0] = clock_mono_ns() ^ (uint64_t)(uintptr_t)s;
		k[1] = clock_wall_ms() ^ ((uint64_t)(uintptr_t)&k << 17);
		log_warn("idempotency store: getrandom failed, weak hash key",
			 "errno=%d", errno);
	}
	s->sip_k0 = k[0];
	s->sip_k1 = k[1];
}

static inline struct shard *shard_of(struct idem_store *s, uint64_t h)
{
	return &s->shards[h >> (64 - SHARD_BITS)];
}

/*
 * Shard tables (shard lock held)
 */
static struct entry *shard_lookup(const struct shard *sh, uint64_t h,
				  const char *key, size_t keylen)
{
	struct entry *e;

	for (e = sh->buckets[h & (sh->nbuckets - 1)]; e != NULL; e = e->hnext)
		if (e->hash == h && e->keylen == keylen &&
		    (keylen == 0 || memcmp(e->key, key, keylen) == 0))
			return e;
	return NULL;
}

/* A failed allocation leaves the table as it was: chains grow longer but
 * stay correct. */
static void shard_grow(struct shard *sh)
{
	size_t n = sh->nbuckets * 2, i, slot;
	struct entry **nb, *e, *next;

	nb = calloc(n, sizeof(*nb));
	if (nb == NULL)
		return;
	for (i = 0; i < sh->nbuckets; i++) {
		for (e = sh->buckets[i]; e != NULL; e = next) {
			next = e->hnext;
			slot = e->hash & (n - 1);
			e->hnext = nb[slot];
			nb[slot] = e;
		}
	}
	free(sh->buckets);
	sh->buckets = nb;
	sh->nbuckets = n;
}

static void shard_insert(struct shard *sh, struct entry *e)
{
	size_t slot;

	if (sh->count >= sh->nbuckets)
		shard_grow(sh);
	slot = e->hash & (sh->nbuckets - 1);
	e->hnext = sh->buckets[slot];
	sh->buckets[slot] = e;
	sh->count++;
}

static void shard_remove(struct shard *sh, struct entry *e)
{
	struct entry **pp = &sh->buckets[e->hash & (sh->nbuckets - 1)];

	while (*pp != e) {
		SK_ASSERT(*pp != NULL);
		pp = &(*pp)->hnext;
	}
	*pp = e->hnext;
	e->hnext = NULL;
	sh->count--;
}

/*
 * Completion FIFO and expiry heap (store lock held)
 */
static void fifo_push(struct idem_store *s, struct entry *e)
{
	e->newer = NULL;
	e->older = s->newest;
	if (s->newest != NULL)
		s->newest->newer = e;
	else
		s->oldest = e;
	s->newest = e;
}

static void fifo_del(struct idem_store *s, struct entry *e)
{
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		s->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		s->newest = e->older;
	e->older = e->newer = NULL;
}

static inline void heap_set(struct idem_store *s, size_t i, struct entry *e)
{
	s->heap[i] = e;
	e->heap_idx = i;
}

static void heap_up(struct idem_store *s, size_t i)
{
	struct entry *e = s->heap[i];
	size_t parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (s->heap[parent]->expires_ms <= e->expires_ms)
			break;
		heap_set(s, i, s->heap[parent]);
		i = parent;
	}
	heap_set(s, i, e);
}

static void heap_down(struct idem_store *s, size_t i)
{
	struct entry *e = s->heap[i];
	size_t child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= s->heap_len)
			break;
		if (child + 1 < s->heap_len &&
		    s->heap[child + 1]->expires_ms < s->heap[child]->expires_ms)
			child++;
		if (e->expires_ms <= s->heap[child]->expires_ms)
			break;
		heap_set(s, i, s->heap[child]);
		i = child;
	}
	heap_set(s, i, e);
}

/* Makes room for one more heap slot. Returns 0 or -ENOMEM. */
static int heap_reserve(struct idem_store *s)
{
	struct entry **nh;
	size_t cap;

	if (s->heap_len < s->heap_cap)
		return 0;
	cap = s->heap_cap ? s->heap_cap * 2 : 64;
	nh = realloc(s->heap, cap * sizeof(*nh));
	if (nh == NULL)
		return -ENOMEM;
	s->heap = nh;
	s->heap_cap = cap;
	return 0;
}

static void heap_push(struct idem_store *s, struct entry *e)
{
	SK_ASSERT(s->heap_len < s->heap_cap);
	heap_set(s, s->heap_len++, e);
	heap_up(s, e->heap_idx);
}

static void heap_del(struct idem_store *s, struct entry *e)
{
	size_t i = e->heap_idx;
	struct entry *last;

	SK_ASSERT(i < s->heap_len && s->heap[i] == e);
	last = s->heap[--s->heap_len];
	if (last != e) {
		heap_set(s, i, last);
		heap_up(s, i);
		heap_down(s, last->heap_idx);
	}
}

/*
 * Entries
 */

/* Both the entry's shard lock and the store lock held; e has no waiters. */
static void entry_drop(struct idem_store *s, struct shard *sh, struct entry *e)
{
	SK_ASSERT(e->waiters == NULL);
	shard_remove(sh, e);
	if (e->state == ENTRY_DONE) {
		fifo_del(s, e);
		heap_del(s, e);
		s->done_bytes -= e->bytes;
		idem_response_unref(e->resp);
		e->resp = NULL;
	}
	SK_ASSERT(s->bytes >= e->bytes && s->entries > 0);
	s->bytes -= e->bytes;
	s->entries--;
	free(e);
}

static bool fits(const struct idem_store *s, size_t need)
{
	return s->bytes <= s->max_bytes && need <= s->max_bytes - s->bytes;
}

/* The shard of a victim, locked: own (which the caller holds) or another
 * one that was free. NULL when it was busy. */
static struct shard *victim_lock(struct idem_store *s, struct shard *own,
				 const struct entry *v)
{
	struct shard *sh = shard_of(s, v->hash);

	if (sh == own)
		return sh;
	return pthread_mutex_trylock(&sh->lock) == 0 ? sh : NULL;
}

static void victim_unlock(struct shard *own, struct shard *sh)
{
	if (sh != own)
		pthread_mutex_unlock(&sh->lock);
}

/*
 * Own shard lock and the store lock held. Reclaims expired entries (a few
 * even when there is room), then evicts the oldest completed ones until
 * need more bytes fit. Returns 0 when they fit, -ENOSPC when they do not:
 * in-flight entries hold the room, or the shards of the remaining victims
 * were busy. Nothing is evicted when even evicting every DONE entry would
 * not be enough.
 */
static int make_room(struct idem_store *s, struct shard *own, size_t need,
		     uint64_t now_ms)
{
	struct entry *v, *next;
	struct shard *sh;
	size_t pinned;
	unsigned n = 0;

	/* A busy shard at the top of the heap ends this phase: a heap cannot
	 * be walked in order past its minimum. */
	while (s->heap_len > 0 && s->heap[0]->expires_ms <= now_ms) {
		if (n >= RECLAIM_MAX && fits(s, need))
			break;
		v = s->heap[0];
		sh = victim_lock(s, own, v);
		if (sh == NULL)
			break;
		entry_drop(s, sh, v);
		victim_unlock(own, sh);
		n++;
	}
	if (fits(s, need))
		return 0;

	pinned = s->bytes - s->done_bytes;
	if (pinned > s->max_bytes || need > s->max_bytes - pinned)
		return -ENOSPC;
	n = 0;
	for (v = s->oldest; v != NULL && !fits(s, need); v = next) {
		next = v->newer;
		sh = victim_lock(s, own, v);
		if (sh == NULL) {
			if (++n > SKIP_MAX)
				break;
			continue;
		}
		/* One left behind by a busy shard in the first phase is not
		 * an eviction: it was dead already. */
		if (v->expires_ms > now_ms)
			s->evictions++;
		entry_drop(s, sh, v);
		victim_unlock(own, sh);
	}
	return fits(s, need) ? 0 : -ENOSPC;
}

/* Own shard lock held. Adds a PENDING entry for key; see the file head
 * for why it is admitted even without room. */
static void entry_add(struct idem_store *s, struct shard *sh, uint64_t h,
		      const char *key, size_t keylen, uint64_t fingerprint,
		      uint64_t ttl_ms, uint64_t now_ms)
{
	struct entry *e;

	/* idem_begin() has no way to report a failure, and the key is
	 * bounded by the caller's header-size limit: this allocation is
	 * small, and running out here is treated like any small one. */
	SK_ASSERT(keylen <= SIZE_MAX - entry_cost(0));
	e = malloc(sizeof(*e) + keylen);
	SK_ASSERT(e != NULL);
	memset(e, 0, sizeof(*e));
	e->hash = h;
	e->fingerprint = fingerprint;
	e->ttl_ms = ttl_ms;
	e->state = ENTRY_PENDING;
	e->bytes = entry_cost(keylen);
	e->keylen = keylen;
	if (keylen > 0)
		memcpy(e->key, key, keylen);

	pthread_mutex_lock(&s->lock);
	(void)make_room(s, sh, e->bytes, now_ms);
	s->bytes += e->bytes;
	s->entries++;
	pthread_mutex_unlock(&s->lock);
	shard_insert(sh, e);
}

/* NULL when out of memory; the caller has bounded the lengths. */
static struct idem_response *response_new(int status, const char *head,
					  size_t head_len, const char *body,
					  size_t body_len)
{
	struct idem_response *r;
	char *p;

	r = malloc(response_cost(head_len, body_len));
	if (r == NULL)
		return NULL;
	atomic_init(&r->refs, 1);
	p = (char *)(r + 1);
	r->head = p;
	r->head_len = head_len;
	if (head_len > 0)
		memcpy(p, head, head_len);
	p[head_len] = '\0';
	p += head_len + 1;
	r->body = p;
	r->body_len = body_len;
	if (body_len > 0)
		memcpy(p, body, body_len);
	p[body_len] = '\0';
	r->status = status;
	return r;
}

/* Both locks held; e is PENDING. Makes e DONE with resp when it can be
 * given room; returns false (e untouched) otherwise. */
static bool store_response(struct idem_store *s, struct shard *sh,
			   struct entry *e, struct idem_response *resp,
			   uint64_t now_ms)
{
	size_t add = response_cost(resp->head_len, resp->body_len);

	if (e->bytes > s->max_bytes || add > s->max_bytes - e->bytes)
		return false;
	if (heap_reserve(s) != 0)
		return false;
	if (make_room(s, sh, add, now_ms) != 0)
		return false;
	e->state = ENTRY_DONE;
	e->resp = resp;
	if (__builtin_add_overflow(now_ms, e->ttl_ms, &e->expires_ms))
		e->expires_ms = UINT64_MAX;
	e->bytes += add;
	s->bytes += add;
	s->done_bytes += e->bytes;
	fifo_push(s, e);
	heap_push(s, e);
	return true;
}

/*
 * Both locks held. Detaches e's waiters and runs their callbacks in the
 * order they registered. Each waiter is unlinked and its fields cleared
 * before its callback runs, and not touched after: once handed over, its
 * owner may register it again or free it straight away.
 */
static void wake_all(struct entry *e)
{
	struct idem_waiter *w = e->waiters, *fifo = NULL, *next;

	e->waiters = NULL;
	for (; w != NULL; w = next) {
		next = w->next;
		w->next = fifo;
		fifo = w;
	}
	for (w = fifo; w != NULL; w = next) {
		next = w->next;
		w->next = NULL;
		w->entry = NULL;
		w->cb(w);
	}
}

/*
 * Public interface
 */
struct idem_store *idem_new(size_t max_bytes, size_t max_entry_bytes)
{
	struct idem_store *s;
	unsigned i;

	s = aligned_alloc(_Alignof(struct idem_store), sizeof(*s));
	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof(*s));
	for (i = 0; i < NSHARDS; i++) {
		s->shards[i].buckets =
			calloc(BUCKETS_MIN, sizeof(*s->shards[i].buckets));
		if (s->shards[i].buckets == NULL)
			goto fail;
		s->shards[i].nbuckets = BUCKETS_MIN;
	}
	for (i = 0; i < NSHARDS; i++)
		pthread_mutex_init(&s->shards[i].lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->hits, 0);
	s->max_bytes = max_bytes;
	s->max_entry_bytes = max_entry_bytes;
	seed_hash(s);
	return s;

fail:
	for (i = 0; i < NSHARDS; i++)
		free(s->shards[i].buckets);
	free(s);
	return NULL;
}

void idem_free(struct idem_store *s)
{
	struct shard *sh;
	struct entry *e, *next;
	size_t b;
	unsigned i;

	if (s == NULL)
		return;
	for (i = 0; i < NSHARDS; i++) {
		sh = &s->shards[i];
		for (b = 0; b < sh->nbuckets; b++) {
			for (e = sh->buckets[b]; e != NULL; e = next) {
				next = e->hnext;
				SK_ASSERT(e->waiters == NULL);
				if (e->state == ENTRY_DONE)
					s->done_bytes -= e->bytes;
				s->bytes -= e->bytes;
				s->entries--;
				idem_response_unref(e->resp);
				free(e);
			}
		}
		free(sh->buckets);
		sh->buckets = NULL;
		pthread_mutex_destroy(&sh->lock);
	}
	/* Every byte and entry was counted once, in and out. */
	SK_ASSERT(s->bytes == 0 && s->done_bytes == 0 && s->entries == 0);
	free(s->heap);
	s->heap = NULL;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

enum idem_result idem_begin(struct idem_store *s, const char *key,
			    size_t keylen, uint64_t fingerprint,
			    uint64_t ttl_ms, uint64_t now_ms,
			    struct idem_waiter *waiter,
			    struct idem_response **out)
{
	uint64_t h = siphash24(s->sip_k0, s->sip_k1, key, keylen);
	struct shard *sh = shard_of(s, h);
	struct entry *e;
	enum idem_result r;

	SK_ASSERT(out != NULL);
	*out = NULL;
	pthread_mutex_lock(&sh->lock);
	e = shard_lookup(sh, h, key, keylen);
	if (e != NULL && e->state == ENTRY_DONE && e->expires_ms <= now_ms) {
		/* Expired: as good as absent, whatever its fingerprint. */
		pthread_mutex_lock(&s->lock);
		entry_drop(s, sh, e);
		pthread_mutex_unlock(&s->lock);
		e = NULL;
	}
	if (e == NULL) {
		entry_add(s, sh, h, key, keylen, fingerprint, ttl_ms, now_ms);
		r = IDEM_NEW;
	} else if (e->fingerprint != fingerprint) {
		r = IDEM_MISMATCH;
	} else if (e->state == ENTRY_DONE) {
		atomic_fetch_add_explicit(&e->resp->refs, 1,
					  memory_order_relaxed);
		*out = e->resp;
		atomic_fetch_add_explicit(&s->hits, 1, memory_order_relaxed);
		r = IDEM_DONE;
	} else {
		if (waiter != NULL) {
			pthread_mutex_lock(&s->lock);
			/* Registered twice, or never zeroed. */
			SK_ASSERT(waiter->entry == NULL);
			SK_ASSERT(waiter->cb != NULL);
			waiter->next = e->waiters;
			waiter->entry = e;
			e->waiters = waiter;
			s->waits++;
			pthread_mutex_unlock(&s->lock);
		}
		r = IDEM_PENDING;
	}
	pthread_mutex_unlock(&sh->lock);
	return r;
}

/* Finds the PENDING entry that idem_begin() created for the caller, with
 * its shard locked. Anything else is a caller bug (complete or abort
 * without IDEM_NEW, or twice). */
static struct entry *pending_lock(struct idem_store *s, const char *key,
				  size_t keylen, struct shard **shp)
{
	uint64_t h = siphash24(s->sip_k0, s->sip_k1, key, keylen);
	struct shard *sh = shard_of(s, h);
	struct entry *e;

	pthread_mutex_lock(&sh->lock);
	e = shard_lookup(sh, h, key, keylen);
	SK_ASSERT(e != NULL && e->state == ENTRY_PENDING);
	*shp = sh;
	return e;
}

void idem_complete(struct idem_store *s, const char *key, size_t keylen,
		   int status, const char *head, size_t head_len,
		   const char *body, size_t body_len, uint64_t now_ms)
{
	struct idem_response *resp = NULL;
	struct shard *sh;
	struct entry *e;
	size_t len;

	/* Copied before taking any lock. A response over the limits, or one
	 * there is no memory for, is not stored: the entry goes, and a repeat
	 * is forwarded again. */
	if (!__builtin_add_overflow(head_len, body_len, &len) &&
	    len <= s->max_entry_bytes && len <= s->max_bytes)
		resp = response_new(status, head, head_len, body, body_len);

	e = pending_lock(s, key, keylen, &sh);
	pthread_mutex_lock(&s->lock);
	if (resp != NULL && !store_response(s, sh, e, resp, now_ms)) {
		idem_response_unref(resp);
		resp = NULL;
	}
	wake_all(e);
	if (resp == NULL)
		entry_drop(s, sh, e);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&sh->lock);
}

void idem_abort(struct idem_store *s, const char *key, size_t keylen)
{
	struct shard *sh;
	struct entry *e;

	e = pending_lock(s, key, keylen, &sh);
	pthread_mutex_lock(&s->lock);
	wake_all(e);
	entry_drop(s, sh, e);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&sh->lock);
}

void idem_cancel(struct idem_store *s, struct idem_waiter *waiter)
{
	struct idem_waiter **pp;
	struct entry *e;

	pthread_mutex_lock(&s->lock);
	e = waiter->entry;
	if (e != NULL) {
		pp = &e->waiters;
		while (*pp != waiter) {
			SK_ASSERT(*pp != NULL);
			pp = &(*pp)->next;
		}
		*pp = waiter->next;
		waiter->next = NULL;
		waiter->entry = NULL;
	}
	pthread_mutex_unlock(&s->lock);
}

void idem_response_unref(struct idem_response *r)
{
	unsigned prev;

	if (r == NULL)
		return;
	prev = atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel);
	SK_ASSERT(prev > 0);
	if (prev == 1)
		free(r);
}

void idem_stats_read(struct idem_store *s, struct idem_stats *st)
{
	pthread_mutex_lock(&s->lock);
	st->entries = s->entries;
	st->bytes = s->bytes;
	st->waits = s->waits;
	st->evictions = s->evictions;
	pthread_mutex_unlock(&s->lock);
	st->hits = atomic_load_explicit(&s->hits, memory_order_relaxed);
}
