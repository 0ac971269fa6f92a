/*
 * proxy.h - the edge: listeners, client sessions, upstream pools, health.
 *
 * The runtime model (DESIGN.md): N worker threads, each with its own libuv
 * loop and its own SO_REUSEPORT listening socket; a connection never moves
 * between threads. Active health checks run on the control loop the caller
 * owns. Workers read a backend's health as an atomic; hot-path counters are
 * per worker, written only by their worker and summed by readers.
 *
 * Routes send requests to pools by Host and path; each pool balances over
 * its backends (round robin, least_conn, p2c_ewma, hash, sticky) with
 * active and passive health, slow start, backups, drain, max_conns with a
 * queue, retries within a budget; hot reload swaps the config while
 * requests in flight finish on the one they started with.
 */
#ifndef SK_PROXY_PROXY_H
#define SK_PROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"

struct proxy;

/*
 * Builds the proxy for cfg (takes a reference) and opens one listening
 * socket per worker, so that a bind error is reported before anything runs
 * (and before privileges could be dropped). Returns 0 and *out, or a
 * negative errno with a one-line message in err.
 */
int proxy_new(struct config *cfg, struct proxy **out, char *err, size_t errlen);

/* Starts the worker threads, and the health checks on control (the
 * caller's loop, which must outlive the proxy). Returns 0 or -errno. */
int proxy_start(struct proxy *p, uv_loop_t *control);

typedef void (*proxy_stopped_cb)(struct proxy *p, void *ud);

/*
 * Graceful stop: listeners close at once, idle connections close, requests
 * in flight finish (their connections close after the response) for up to
 * timeouts.shutdown_grace, then whatever is left is cut. cb runs on the
 * control loop once every worker has exited; then call proxy_free().
 */
void proxy_stop(struct proxy *p, proxy_stopped_cb cb, void *ud);
void proxy_free(struct proxy *p);

/* The bound port of the edge listener (useful with port 0). */
int proxy_port(const struct proxy *p);

/*
 * Swaps in cfg (a validated snapshot; takes a reference) on the control
 * thread. Backends that keep their pool, name and address keep their
 * health state and counters; requests in flight finish on the old config.
 * Settings that cannot change without a restart (listen, workers,
 * admin.listen, limits.client_conns) are kept and named in err with a
 * return of 1; otherwise returns 0.
 */
int proxy_reload(struct proxy *p, struct config *cfg, char *err, size_t errlen);
struct metrics;
/* The registry of per-route series (request durations, responses by
 * class); the admin writes it into /metrics. */
struct metrics *proxy_metrics(struct proxy *p);

/* Reopens the access log after rotation (SIGUSR1). Returns 0 or -errno. */
int proxy_reopen_logs(struct proxy *p);
/* The config in force (borrowed; valid on the control thread until the
 * next reload). */
const struct config *proxy_config(const struct proxy *p);

enum proxy_backend_op {
	PROXY_BACKEND_DRAIN,	  /* no new requests; in-flight ones finish */
	PROXY_BACKEND_ENABLE,	  /* undo drain */
	PROXY_BACKEND_SET_WEIGHT, /* weight 1..1000; 0 restores the config's */
};

/* Applies op to the backend named pool/backend. Returns 0, -ENOENT when
 * there is no such backend, -EINVAL for a weight out of range. The state
 * lasts across reloads while the backend stays. Control thread only. */
int proxy_backend_op(struct proxy *p, const char *pool, const char *backend,
		     enum proxy_backend_op op, uint32_t weight);

/* --- read side for the admin API (any thread) ---------------------------- */

enum proxy_backend_state {
	PROXY_BACKEND_UP = 0,
	PROXY_BACKEND_DOWN = 1,
};

struct proxy_backend_info {
	const char *name;    /* borrowed; valid until the next reload */
	const char *address;
	uint32_t weight;     /* in force: the admin's override, else the config's */
	int backup;
	int draining;
	int ejected;	     /* passive ejection in force */
	uint64_t ejections;
	enum proxy_backend_state state;
	uint64_t requests;   /* requests sent to it */
	uint64_t failures;   /* connect/response failures */
	int64_t active;	     /* requests in flight on it */
	uint64_t checks_ok;
	uint64_t checks_failed;
	char last_check[96]; /* "ok 200 3ms", "timeout", "connect refused" */
};

struct proxy_stats {
	uint64_t responses[6]; /* [1]..[5]: 1xx..5xx sent to clients; [0] other */
	uint64_t requests;
	int64_t in_flight;
	int64_t connections;   /* client connections open */
	uint64_t accepted;
	uint64_t retries;
	uint64_t retries_denied; /* by the retry budget */
	int64_t queued;	       /* requests waiting under max_conns */
};

void proxy_stats_read(const struct proxy *p, struct proxy_stats *st);
/* Pools and backends of the config in force (control thread). */
size_t proxy_pool_count(const struct proxy *p);
/* The balance algorithm name of a pool. */
const char *proxy_pool_balance(const struct proxy *p, size_t pool);
const char *proxy_pool_name(const struct proxy *p, size_t pool);
size_t proxy_backend_count(const struct proxy *p, size_t pool);
void proxy_backend_info(const struct proxy *p, size_t pool, size_t i,
			struct proxy_backend_info *out);

#endif
