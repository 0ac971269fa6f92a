/*
 * idem.h - idempotency at the edge: remember the first complete response
 * to a request carrying an Idempotency-Key, and answer repeats with it.
 *
 * A customer who double-clicks "Pay", or a client that retries after a
 * timeout, must never create a second order, whatever the backend does.
 * The store is shared by all workers (a repeat may arrive on another
 * connection and worker), sharded with a mutex per shard, bounded in
 * bytes (oldest completed entries are evicted first; entries in flight are
 * never evicted) and in time (ttl per entry).
 *
 * Protocol, per request with a key:
 *   idem_begin()    -> IDEM_NEW:     the caller forwards the request and
 *                                    must later call idem_complete() or
 *                                    idem_abort() exactly once;
 *                   -> IDEM_DONE:    *out holds the stored response
 *                                    (a reference; idem_response_unref);
 *                   -> IDEM_PENDING: the first request is still in flight;
 *                                    the waiter was registered and its
 *                                    callback will run once it completes or
 *                                    aborts, after which the caller calls
 *                                    idem_begin() again;
 *                   -> IDEM_MISMATCH: the key was used with a different
 *                                    request (fingerprint differs).
 *   A waiter that gives up (client gone, timeout) calls idem_cancel(); after
 *   it returns the callback is not running and will not run.
 */
#ifndef SK_PROXY_IDEM_H
#define SK_PROXY_IDEM_H

#include <stddef.h>
#include <stdint.h>

struct idem_store;

struct idem_response {
	/* Private refcount. */
	_Atomic unsigned refs;
	/* The response head: status line and header lines, each ending in
	 * CRLF, without the empty line (so the caller can add its own
	 * Connection and Idempotent-Replay headers). */
	char *head;
	size_t head_len;
	/* The body exactly as the backend framed it (chunked stays chunked;
	 * the head carries the matching framing header). */
	char *body;
	size_t body_len;
	int status;
};

struct idem_waiter;
/* Runs on the thread that completes or aborts the first request, with a
 * store lock held: it must only hand the waiter to its own thread (e.g.
 * push it on a mutex-protected list and uv_async_send) and return. */
typedef void (*idem_wake_cb)(struct idem_waiter *w);

/* Embedded by the caller; the store links it while it waits. */
struct idem_waiter {
	idem_wake_cb cb;
	void *ud;
	/* Private. */
	struct idem_waiter *next;
	void *entry;
};

enum idem_result {
	IDEM_NEW = 0,
	IDEM_DONE,
	IDEM_PENDING,
	IDEM_MISMATCH,
};

/* max_bytes bounds the stored responses (keys and bookkeeping included);
 * responses over max_entry_bytes are not stored (idem_complete drops the
 * entry, so a repeat is forwarded again). */
struct idem_store *idem_new(size_t max_bytes, size_t max_entry_bytes);
/* Every waiter must have been woken or cancelled. */
void idem_free(struct idem_store *s);

/*
 * key: the scope (e.g. route name) and the Idempotency-Key value, as the
 * caller builds it; fingerprint: a hash of what makes the request the
 * same (method, target, body). ttl_ms: how long a completed entry lives.
 * now_ms: a monotonic clock (injectable for tests). waiter may be NULL,
 * in which case IDEM_PENDING registers nothing (the caller answers 409).
 */
enum idem_result idem_begin(struct idem_store *s, const char *key,
			    size_t keylen, uint64_t fingerprint,
			    uint64_t ttl_ms, uint64_t now_ms,
			    struct idem_waiter *waiter,
			    struct idem_response **out);

/* The first request completed: store the response (copied) and wake the
 * waiters. head/body as in struct idem_response. */
void idem_complete(struct idem_store *s, const char *key, size_t keylen,
		   int status, const char *head, size_t head_len,
		   const char *body, size_t body_len, uint64_t now_ms);
/* The first request failed without a complete response: forget the key
 * and wake the waiters (one of them will become IDEM_NEW). */
void idem_abort(struct idem_store *s, const char *key, size_t keylen);
/* Withdraws a waiter that is still registered; a no-op otherwise. */
void idem_cancel(struct idem_store *s, struct idem_waiter *waiter);

void idem_response_unref(struct idem_response *r);

struct idem_stats {
	uint64_t entries;
	uint64_t bytes;
	uint64_t hits;	     /* repeats answered from the store */
	uint64_t waits;	     /* repeats that waited for the first */
	uint64_t evictions;  /* completed entries dropped for room */
};
void idem_stats_read(struct idem_store *s, struct idem_stats *st);

#endif
