/*
 * proxy.h - the edge: listeners, client sessions, upstream pools, health.
 *
 * The runtime model (DESIGN.md): N worker threads, each with its own libuv
 * loop and its own SO_REUSEPORT listening socket; a connection never moves
 * between threads. Active health checks run on the control loop the caller
 * owns. Workers read a backend's health as an atomic; hot-path counters are
 * per worker, written only by their worker and summed by readers.
 *
 * This slice serves one pool with round robin (smooth weighted),
 * keep-alive on both sides, streamed bodies and graceful shutdown.
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

/* --- read side for the admin API (any thread) ---------------------------- */

enum proxy_backend_state {
	PROXY_BACKEND_UP = 0,
	PROXY_BACKEND_DOWN = 1,
};

struct proxy_backend_info {
	const char *name;    /* borrowed from the config, valid until free */
	const char *address;
	uint32_t weight;
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
};

void proxy_stats_read(const struct proxy *p, struct proxy_stats *st);
size_t proxy_pool_count(const struct proxy *p);
const char *proxy_pool_name(const struct proxy *p, size_t pool);
size_t proxy_backend_count(const struct proxy *p, size_t pool);
void proxy_backend_info(const struct proxy *p, size_t pool, size_t i,
			struct proxy_backend_info *out);

#endif
