/*
 * proxy_int.h - shared between the files of the proxy module only.
 *
 * Three layers of state, by lifetime:
 *
 *   struct backend   one per (pool, name, address); shared by all workers
 *                    and carried across reloads while the config keeps it,
 *                    so health, ejection, drain and counters survive a
 *                    reload. Reference-counted; its fields are atomics or
 *                    owned by the control thread.
 *   struct runtime   one per config snapshot: the pools and their backends
 *                    in config order. Reference-counted: the proxy holds
 *                    the current one, each worker view holds the one it
 *                    was built from.
 *   struct wview     one per worker and runtime: the worker's balancing
 *                    state, idle connections and queue. Worker-local
 *                    refcount: the worker holds its current view, every
 *                    session holds the view its request started on, so a
 *                    request in flight finishes on the config it began
 *                    with.
 *
 * Nothing of a worker is touched by another thread except its counters
 * (written by the worker, read by anyone with relaxed atomics) and its
 * async handle.
 */
#ifndef SK_PROXY_INT_H
#define SK_PROXY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"
#include "http/http.h"
#include "proxy/accesslog.h"
#include "proxy/balance.h"
#include "proxy/idem.h"
#include "proxy/proxy.h"
#include "monitor/metrics.h"

struct worker;
struct client;
struct wview;
struct wpool;

#define WORKER_BUF_CAP (64 * 1024 + 4096)

/* A counter written by one thread and read by others: a relaxed load and
 * store, no locked instruction on the hot path. */
typedef _Atomic uint64_t sk_counter;
static inline void counter_add(sk_counter *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
static inline uint64_t counter_get(const sk_counter *c)
{
	return atomic_load_explicit((sk_counter *)c, memory_order_relaxed);
}

/* One worker's counters for one backend, on its own cache line. */
struct bstat {
	sk_counter requests;
	sk_counter failures;
	sk_counter retries;
	_Atomic int64_t active; /* requests in flight from this worker */
	char pad[64 - 4 * sizeof(uint64_t)];
};

struct hcheck; /* health.c */

struct backend {
	_Atomic unsigned refs;
	/* Identity: immutable. */
	char *pool;
	char *name;
	struct cfg_addr addr; /* text owned here */
	uint64_t id_hash;     /* balance_hash of "pool/name" */

	/* State shared by every worker. */
	_Atomic int up;			/* health checks pass */
	_Atomic int drain;		/* admin: no new requests */
	_Atomic uint32_t weight_override; /* admin set-weight; 0 = none */
	_Atomic uint64_t up_since_ms;	/* became eligible (slow start) */
	_Atomic uint64_t eject_until_ms; /* passive ejection */
	_Atomic uint32_t fail_streak;
	_Atomic uint32_t eject_count;	/* consecutive ejections */
	sk_counter ejections;

	struct bstat *ws; /* [nworkers] */
	size_t nworkers;

	/* Health: written by the control thread, read by the admin. */
	struct hcheck *hc;
	sk_counter checks_ok;
	sk_counter checks_failed;
	pthread_mutex_t last_lock;
	char last_check[96];
};

struct rpool {
	const struct cfg_pool *cfg;
	struct backend **bs; /* [n], one reference each */
	size_t n;
};

/* Metric handles of one route (or of the whole proxy without routes). */
struct rmetrics {
	struct metrics_hist duration;
	struct metrics_counter responses[6]; /* by status class; [0] other */
};

struct runtime {
	_Atomic unsigned refs;
	struct config *cfg; /* one reference */
	struct rpool *pools;
	size_t npools;
	struct rmetrics *route_m; /* [nroutes], or [1] without routes */
	int request_metrics; /* monitor.request_metrics: record route_m */
};

/* A connection to a backend, owned by one worker. */
struct bconn {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	uv_timer_t timer;
	struct worker *w;
	struct wbackend *wb;
	struct client *c;     /* the session using it, or NULL when idle */
	struct bconn *next;   /* idle list */
	int nclosed;	      /* handles whose close callback ran */
	struct buf in;
	size_t in_pos;
	struct http_parser parser;
	struct http_msg msg;
	struct http_header *hdrs;
	/* One lazy timer for connect, response and idle deadlines: moving a
	 * deadline later only sets the field; the callback re-arms. */
	uint64_t deadline; /* loop ms; 0 = none */
	uint64_t timer_due; /* when the armed timer fires; 0 = not armed */
	unsigned connected : 1;
	unsigned paused : 1;	/* reading stopped: buffer pinned or full */
	unsigned reused : 1;
	unsigned writing : 1;
	unsigned reading : 1;
	unsigned closing : 1;
	unsigned in_idle : 1;	/* on wb->idle */
	unsigned got_bytes : 1; /* any response byte for the current request */
	unsigned eof : 1;	/* the backend closed: a close-delimited body
				 * ends once in[] has all gone out */
};

/* A worker's view of one backend. */
struct wbackend {
	struct backend *b;
	const struct cfg_backend *cfg;
	struct wpool *wp;
	struct bstat *st; /* &b->ws[worker id] */
	struct bconn *idle;
	uint32_t nidle;
	uint32_t max_conns; /* resolved: backend's, else the pool's; 0 = none */
	double ewma_us;
	uint64_t ewma_at_us;
};

struct wpool {
	const struct cfg_pool *cfg;
	struct wview *view;
	struct wbackend *wbs;
	struct balance_node *nodes;
	size_t n;
	struct balance_state bst;
	/* Requests waiting for a backend under max_conns. */
	struct client *qhead, *qtail;
	uint32_t qlen;
};

struct wview {
	int refs; /* worker-local */
	struct worker *w;
	struct runtime *rt;
	struct wpool *pools;
	size_t npools;
};

struct wstats {
	sk_counter responses[6];
	sk_counter requests;
	sk_counter accepted;
	sk_counter retries;
	sk_counter retries_denied; /* by the budget */
	_Atomic int64_t in_flight;
	_Atomic int64_t connections;
	_Atomic int64_t queued;
};

struct budget {
	uint64_t window_start_ms;
	uint32_t req_cur, req_prev;
	uint32_t retry_cur, retry_prev;
};

struct worker {
	struct proxy *proxy;
	size_t id;
	pthread_t thread;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t wake;
	uv_timer_t grace;
	uv_timer_t tick; /* 1 s: access log flush */
	int listen_fd;
	_Atomic int stop_requested;
	_Atomic int reload_requested;
	int stopping;
	struct client *clients; /* doubly linked list of live sessions */
	uint32_t nclients;
	struct wview *view; /* current */
	struct wstats st;
	struct http_limits limits;
	struct budget budget;
	struct accesslog_batch *alog;
	/* Cached read buffers (WORKER_BUF_CAP bytes): one per request in
	 * flight, so enough for the usual concurrency to need no malloc. */
	char *spare[64];
	unsigned nspare;
	struct creq *spare_rq; /* cached request states (session.c) */
	unsigned nspare_rq;
	uv_timer_t ctimer; /* session.c: the clients' deadlines */
	uint64_t ctimer_due; /* when it fires; 0 = not armed */
	struct client **theap; /* min-heap by timer_due */
	uint32_t theap_n, theap_cap;
	struct client *free_clients; /* session.c: slab allocation */
	void *slabs;
	/* Sessions whose idempotency wait ended, handed over by whichever
	 * thread completed the first request. */
	pthread_mutex_t woken_lock;
	struct client *woken;
};

struct proxy {
	struct runtime *rt; /* current; swap under rt_lock */
	pthread_mutex_t rt_lock;
	struct worker *workers;
	size_t nworkers;
	int port;
	uv_loop_t *control;
	uv_async_t stopped_async;
	_Atomic size_t workers_done;
	proxy_stopped_cb stopped_cb;
	void *stopped_ud;
	int started;
	struct hcheck *hchecks; /* health.c: one per checked backend */
	size_t hc_closing;
	struct accesslog *alog;
	struct idem_store *idem;
	struct metrics *metrics; /* shard i: worker i; nworkers: control */
	/* Fixed at start: not reloadable. */
	struct cfg_addr listen;
	uint32_t client_conns_limit;
};

enum cstate {
	C_IDLE = 0, /* before a request: client_header timer for the first,
		     * keep-alive timer between requests */
	C_HEAD,	    /* reading a request head: header timer */
	C_QUEUED,   /* waiting for a backend under max_conns */
	C_IDEMWAIT, /* waiting for the first request with this key */
	C_UPSTREAM, /* the request is with a backend */
	C_ERROR,    /* writing a locally generated response */
	C_CLOSED,
};

/*
 * The state of one request on a client connection. Taken from the
 * worker's cache when a request's first byte arrives and given back when
 * the connection goes idle, so an idle keep-alive connection holds only
 * its struct client. The buffers (and their memory) stay with the object
 * in the cache; everything from `write` on starts zeroed for each use.
 */
struct creq {
	struct buf reqhead;  /* serialized head for the backend */
	struct buf out;	     /* serialized head (or error) for the client */
	struct buf dechunk;  /* chunked body decoded for HTTP/1.0 clients */
	struct creq *next_spare; /* worker's cache */

	uv_write_t write;    /* to the client */
	struct client *qnext; /* queue link */
	size_t req_end; /* where the request ends in c->in, once req_body_done */
	struct http_parser parser;
	struct http_msg req;

	/* The request's config: the view it started on (one reference). */
	struct wview *view;
	const struct cfg_route *route; /* NULL: no routes configured */
	struct wpool *wp;

	struct bconn *bc;
	struct wbackend *wb;
	struct wbackend *tried[12]; /* backends that failed this request */
	uint32_t ntried;
	uint32_t attempts;
	uint32_t retries;
	char sticky_set[24];	 /* cookie value to set on the response */
	char peer_log[64]; /* as logs show the client (anonymised when
			    * configured); filled on first use */

	/* Idempotency at the edge (routes[].idempotency). */
	char *idem_key;		 /* route name, '\n', key; NULL if none */
	size_t idem_klen;
	uint64_t idem_fp;
	struct idem_waiter idem_waiter;
	struct client *wnext;	 /* worker's woken list */
	int idem_woken;		 /* on it; only under w->woken_lock */
	struct idem_response *idem_resp; /* being replayed */
	struct buf idem_head;	 /* recorded response head (owner) */
	struct buf idem_body;	 /* recorded response body (owner) */

	uint64_t req_left;
	struct http_chunked req_chunked;
	uint64_t resp_left;
	struct http_chunked resp_chunked;
	size_t bwrite_n; /* body bytes in the backend write in flight */
	size_t cwrite_n; /* body bytes of bc->in in the client write */
	int status;	 /* status sent to the client */
	uint64_t t_start_us;
	uint64_t t_start_wall_ms;
	uint64_t t_backend_us; /* when the current attempt was sent */
	double upstream_ms;
	uint64_t bytes_in;
	uint64_t bytes_out;

	unsigned in_flight : 1;
	unsigned req_head_sent : 1;
	unsigned req_body_done : 1;
	unsigned replayable : 1; /* the whole body is still in c->in */
	unsigned resp_head_ready : 1; /* the final response head is parsed */
	unsigned resp_head_sent : 1;
	unsigned resp_body_done : 1;
	unsigned dechunking : 1;
	unsigned counted_active : 1; /* wb->st->active holds this request */
	unsigned idem_owner : 1;     /* must complete or abort idem_key */
	unsigned idem_waiting : 1;   /* idem_waiter is registered */
	unsigned idem_too_big : 1;   /* the response is not recorded */

	struct http_header hdrs[]; /* [limits.max_headers] */
};

/* A client connection: what it holds while idle. */
struct client {
	uv_tcp_t tcp;
	/* Deadlines, lazily, on the worker's timer heap (session.c). */
	uint64_t deadline;    /* header, keep-alive, body, queue; 0 = none */
	uint64_t req_deadline; /* the whole request; 0 = none */
	uint64_t timer_due;   /* its key in w->theap; 0 = not there */
	uint32_t theap_idx;   /* index in w->theap + 1; 0 = not there */
	struct worker *w;
	struct client *prev, *next;
	struct creq *rq;      /* from a request's first byte until idle */
	struct buf in; /* the request head from in.data[0]; then body */
	size_t in_pos; /* next byte of in not yet forwarded */
	char peer[48]; /* the client's address, for X-Forwarded-For */
	uint8_t state; /* enum cstate */
	uint8_t handles_open;
	unsigned reading : 1;
	unsigned paused : 1; /* reading stopped: buffer pinned or full */
	unsigned writing : 1; /* rq->write is in flight */
	unsigned close_after : 1;
	unsigned had_request : 1; /* a request has begun on it */
};

/* runtime.c */
struct runtime *runtime_new(struct config *cfg, struct runtime *prev,
			    size_t nworkers, struct metrics *reg);
void runtime_ref(struct runtime *rt);
void runtime_unref(struct runtime *rt);
void backend_unref(struct backend *b);
struct wview *wview_new(struct worker *w, struct runtime *rt);
void wview_unref(struct wview *v);
/* Swaps the worker to the proxy's current runtime, moving idle
 * connections of unchanged backends to the new view. */
void worker_reload(struct worker *w);
/* Effective weight of a backend for balancing now (slow start, admin
 * override), or 0 when it is not eligible (down, drained, ejected). */
uint32_t backend_weight(const struct backend *b, const struct cfg_pool *pool,
			const struct cfg_backend *bc, uint64_t now_ms);
/* Passive health: a request on b failed / succeeded. */
void backend_failure(struct backend *b, const struct cfg_pool *pool,
		     uint64_t now_ms);
void backend_success(struct backend *b);

/* session.c */
void session_accept(struct worker *w);
void session_shutdown_idle(struct worker *w);
void session_close_all(struct worker *w);
/* The worker's timer for client deadlines: set up with the loop, closed
 * with the worker's other handles. */
void session_timers_init(struct worker *w);
void session_timers_close(struct worker *w);
/* Frees the worker's cached request states and its client slabs: after
 * the last client's close callback ran. */
void session_cache_free(struct worker *w);
/* Called by upstream.c when a new backend connection is up (status 0) or
 * failed (negative errno). */
void session_on_connect(struct bconn *bc, int status);
/* The response deadline of bc passed. */
void session_backend_timeout(struct bconn *bc);
/* A queued request may go now (a slot freed) or must give up. */
void session_dequeued(struct client *c);
/* Runs the idempotency step again for sessions whose wait ended. */
void session_idem_woken(struct worker *w);

/* upstream.c */
/*
 * Picks a backend of wp for c. Returns the wbackend, or NULL with *full
 * set when every eligible backend is at max_conns (queue), clear when no
 * backend is eligible at all.
 */
struct wbackend *upstream_pick(struct wpool *wp, struct client *c, int *full);
/* Takes an idle connection to wb (when reuse is allowed) or starts a new
 * one (connect timeout connect_ms); NULL on error. */
struct bconn *upstream_get(struct worker *w, struct wbackend *wb,
			   uint32_t connect_ms, int reuse);
/* Eligible backends of wp that have not failed c yet (max_conns aside). */
size_t upstream_untried(struct wpool *wp, struct client *c);
/* Returns a connection after a complete exchange: idle or closed. */
void upstream_release(struct bconn *bc, int reusable);
void upstream_close(struct bconn *bc);
/* Sets the connection's deadline ms from now (connect, response or idle,
 * by its state); _off clears it. Cheap: no timer syscall or heap work
 * unless the deadline moves earlier. */
void bconn_deadline(struct bconn *bc, uint64_t ms);
void bconn_deadline_off(struct bconn *bc);
/* A free 64 KiB read buffer from the worker's cache, or a fresh one; and
 * back. Keeps malloc off the per-request path without holding memory in
 * idle connections. */
void worker_buf_get(struct worker *w, struct buf *b);
void worker_buf_put(struct worker *w, struct buf *b);
void upstream_close_idle_view(struct wview *v);
/* A request on wb finished: wake a queued request of its pool. */
void upstream_slot_freed(struct wpool *wp);
void queue_remove(struct wpool *wp, struct client *c);

/* route.c */
/* The route for a request, or NULL when routes exist and none matches
 * (*none set); with no routes configured returns NULL, *none clear. */
const struct cfg_route *route_match(const struct config *cfg,
				    const struct http_msg *m, const char *base,
				    int *none);

/* health.c */
void health_sync(struct proxy *p); /* start/stop checks for p->rt */
void health_stop(struct proxy *p);
void backend_set_last(struct backend *b, const char *text);

/* proxy.c */
/* Calls the stopped callback once workers and checks are gone. */
void proxy_maybe_stopped(struct proxy *p);
/* The proxy's current runtime, with a reference for the caller. */
struct runtime *proxy_runtime_get(struct proxy *p);

#endif
