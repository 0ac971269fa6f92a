/*
 * proxy_int.h - shared between the files of the proxy module only.
 *
 * Ownership: struct proxy owns the config reference, the backends (shared,
 * read by every worker) and the workers. A worker owns its loop, its
 * listener, its client sessions and its backend connections; nothing of a
 * worker is touched by another thread except its counters (written by the
 * worker, read by anyone with relaxed atomics) and its async handle.
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
#include "proxy/proxy.h"

struct worker;
struct client;

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

/* Health and identity of one backend, shared by all workers. */
struct backend {
	const struct cfg_backend *cfg;
	size_t index;
	_Atomic int up;

	/* Control thread only. */
	uint32_t rise_count;
	uint32_t fall_count;
	uv_timer_t hc_timer;
	uv_timer_t hc_timeout;
	uv_tcp_t hc_tcp;
	uv_connect_t hc_connect;
	uv_write_t hc_write;
	int hc_busy;
	int hc_tcp_open;
	struct buf hc_in;
	struct buf hc_req;
	uint64_t hc_started;
	struct proxy *proxy;

	/* Written by the control thread, read by the admin. */
	sk_counter checks_ok;
	sk_counter checks_failed;
	pthread_mutex_t last_lock;
	char last_check[96];
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
	struct http_chunked chunked;
	uint64_t body_left;
	unsigned connected : 1;
	unsigned reused : 1;
	unsigned writing : 1;
	unsigned reading : 1;
	unsigned closing : 1;
	unsigned in_idle : 1;	/* on wb->idle */
	unsigned got_bytes : 1; /* any response byte for the current request */
};

/* Per worker view of a backend: its idle connections and counters. */
struct wbackend {
	struct backend *b;
	struct bconn *idle;
	uint32_t nidle;
	int64_t cur_weight; /* smooth weighted round robin */
	sk_counter requests;
	sk_counter failures;
	_Atomic int64_t active;
};

struct wstats {
	sk_counter responses[6];
	sk_counter requests;
	sk_counter accepted;
	_Atomic int64_t in_flight;
	_Atomic int64_t connections;
};

struct worker {
	struct proxy *proxy;
	size_t id;
	pthread_t thread;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t wake;
	uv_timer_t grace;
	int listen_fd;
	_Atomic int stop_requested;
	int stopping;
	struct client *clients; /* doubly linked list of live sessions */
	uint32_t nclients;
	struct wbackend *wbs;	/* one per backend of pool 0 */
	size_t nwbs;
	struct wstats st;
	struct http_limits limits;
};

struct proxy {
	struct config *cfg;
	struct backend *backends; /* pool 0 */
	size_t nbackends;
	struct worker *workers;
	size_t nworkers;
	int port;
	uv_loop_t *control;
	uv_async_t stopped_async;
	_Atomic size_t workers_done;
	proxy_stopped_cb stopped_cb;
	void *stopped_ud;
	int health_running;
	int started; /* worker threads are running */
	size_t hc_closing;
};

enum cstate {
	C_IDLE = 0, /* between requests: keep-alive timer */
	C_HEAD,	    /* reading a request head: header timer */
	C_UPSTREAM, /* the request is with a backend */
	C_ERROR,    /* writing a locally generated response */
	C_CLOSED,
};

/* A client connection and the request it is serving. */
struct client {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t write;
	struct worker *w;
	struct client *prev, *next;
	enum cstate state;
	int handles_open;
	char peer[64];

	struct buf in; /* the request head from in.data[0]; then body */
	size_t in_pos; /* next byte of in not yet forwarded */
	struct http_parser parser;
	struct http_msg req;
	struct http_header *hdrs;

	struct buf reqhead;  /* serialized head for the backend */
	struct buf out;	     /* serialized head (or error) for the client */
	struct buf dechunk;  /* chunked body decoded for HTTP/1.0 clients */
	struct bconn *bc;
	struct wbackend *wb;
	struct wbackend *failed; /* last backend that failed this request */
	uint32_t attempts;

	uint64_t req_left;
	struct http_chunked req_chunked;
	uint64_t resp_left;
	struct http_chunked resp_chunked;
	size_t bwrite_n; /* body bytes in the backend write in flight */
	size_t cwrite_n; /* body bytes of bc->in in the client write */
	int status;	 /* status sent to the client */
	uint64_t t_start;

	unsigned reading : 1;
	unsigned writing : 1;
	unsigned in_flight : 1;
	unsigned req_head_sent : 1;
	unsigned req_body_done : 1;
	unsigned resp_head_ready : 1; /* the final response head is parsed */
	unsigned resp_head_sent : 1;
	unsigned resp_body_done : 1;
	unsigned dechunking : 1;
	unsigned close_after : 1;
};

/* session.c */
void session_accept(struct worker *w);
/* Called by upstream.c when a new backend connection is up (status 0) or
 * failed (negative errno). */
void session_on_connect(struct bconn *bc, int status);
void session_shutdown_idle(struct worker *w);
void session_close_all(struct worker *w);

/* upstream.c */
struct wbackend *upstream_pick(struct worker *w, const struct wbackend *avoid);
/* Takes an idle connection to wb or starts a new one; NULL on error. */
struct bconn *upstream_get(struct worker *w, struct wbackend *wb);
/* Returns a connection after a complete exchange: idle or closed. */
void upstream_release(struct bconn *bc, int reusable);
void upstream_close(struct bconn *bc);
void upstream_close_idle(struct worker *w);

/* proxy.c: calls the stopped callback once workers and checks are gone. */
void proxy_maybe_stopped(struct proxy *p);

/* health.c */
void health_start(struct proxy *p);
void health_stop(struct proxy *p);
void backend_set_last(struct backend *b, const char *text);

#endif
