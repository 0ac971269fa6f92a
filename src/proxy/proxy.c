/*
 * proxy.c - the proxy's lifecycle: listeners, worker threads, reload, stop,
 * and the read side for the admin.
 *
 * Listening sockets are opened in proxy_new(), in the caller's thread and
 * before anything runs, so a bind error is reported at start-up. Each
 * worker gets its own socket bound to the same address with SO_REUSEPORT
 * (libuv 1.44 has no flag for it, so the socket is made here and handed
 * to uv_tcp_open) and the kernel spreads new connections across them.
 *
 * Reload builds a new runtime from the new snapshot, swaps the proxy's
 * pointer under rt_lock and wakes every worker, which builds its view of
 * it; requests in flight keep the view they started on. Stop is
 * cooperative the same way: the worker closes its listener and idle
 * connections, lets requests in flight finish, and its loop ends when its
 * last handle is closed (or the grace timer cuts what is left).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/proxy_int.h"

static int open_listener(const struct cfg_addr *a, int port, char *err,
			 size_t errlen)
{
	struct sockaddr_storage ss = a->sa;
	int fd, one = 1, zero = 0;

	if (port >= 0) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* TCP_NODELAY here is inherited by every accepted connection (Linux
	 * copies it), which saves a setsockopt per connection. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, a->salen) < 0)
		goto fail;
	if (listen(fd, 511) < 0)
		goto fail;
	/* Delayed ACKs from the first segment: a new connection starts in
	 * quick-ACK mode, so its request was acknowledged by a segment of its
	 * own just before the response that could carry the ACK. Off on the
	 * listener, accepted sockets start in ping-pong mode and the response
	 * carries it. Best effort: it only saves a packet. After listen(), which resets
	 * the ACK state. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
	/* Hand a connection over with its first bytes, or after 1 s (one
	 * SYN-ACK retransmit) when none came: one wake-up per connection
	 * instead of two, and a silent one takes no client slot meanwhile. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one));
	return fd;
fail:
	snprintf(err, errlen, "listen %s: %s", a->text, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int proxy_new(struct config *cfg, struct proxy **out, char *err, size_t errlen)
{
	struct proxy *p;
	long ncpu;
	int r;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->rt_lock, NULL);
	p->nworkers = cfg->workers;
	if (p->nworkers == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		p->nworkers = ncpu > 0 ? (size_t)ncpu : 1;
	}
	p->listen = cfg->listen;
	p->listen.text = strdup(cfg->listen.text);
	p->client_conns_limit = cfg->limits.client_conns;
	p->workers = calloc(p->nworkers, sizeof(*p->workers));
	if (p->workers == NULL || p->listen.text == NULL) {
		snprintf(err, errlen, "out of memory");
		proxy_free(p);
		return -ENOMEM;
	}
	if (metrics_new((unsigned)p->nworkers + 1, &p->metrics) != 0) {
		snprintf(err, errlen, "out of memory");
		proxy_free(p);
		return -ENOMEM;
	}
	p->rt = runtime_new(cfg, NULL, p->nworkers, p->metrics);
	p->idem = idem_new(cfg->idempotency.max_bytes,
			   cfg->idempotency.max_entry_bytes);
	p->port = -1;
	for (size_t i = 0; i < p->nworkers; i++) {
		p->workers[i].listen_fd = -1;
		pthread_mutex_init(&p->workers[i].woken_lock, NULL);
	}
	if (cfg->access_log.enabled) {
		struct accesslog_opts o = {
			.path = cfg->access_log.path,
			.format = (enum accesslog_format)cfg->access_log.format,
			.anonymize_ip = cfg->access_log.anonymize_ip,
			.v4_prefix = (uint8_t)cfg->access_log.ipv4_prefix,
			.v6_prefix = (uint8_t)cfg->access_log.ipv6_prefix,
		};

		r = accesslog_open(&o, &p->alog, err, errlen);
		if (r < 0) {
			proxy_free(p);
			return r;
		}
	}
	for (size_t i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];

		w->proxy = p;
		w->id = i;
		/* Port 0 (tests) binds the first socket anywhere and the rest
		 * to the port it got. */
		w->listen_fd = open_listener(&p->listen, i ? p->port : -1, err,
					     errlen);
		if (w->listen_fd < 0) {
			proxy_free(p);
			return -EADDRINUSE;
		}
		if (i == 0)
			p->port = bound_port(w->listen_fd);
	}
	*out = p;
	return 0;
}

int proxy_port(const struct proxy *p)
{
	return p->port;
}

struct runtime *proxy_runtime_get(struct proxy *p)
{
	struct runtime *rt;

	pthread_mutex_lock(&p->rt_lock);
	rt = p->rt;
	runtime_ref(rt);
	pthread_mutex_unlock(&p->rt_lock);
	return rt;
}

struct metrics *proxy_metrics(struct proxy *p)
{
	return p->metrics;
}

int proxy_reopen_logs(struct proxy *p)
{
	return p->alog ? accesslog_reopen(p->alog) : 0;
}

const struct config *proxy_config(const struct proxy *p)
{
	return p->rt->cfg;
}

/* --- workers ------------------------------------------------------------- */

static void accept_cb(uv_stream_t *s, int status)
{
	struct worker *w = s->data;

	if (status < 0) {
		log_warn("accept failed", "worker=%zu err=%s", w->id,
			 uv_err_name(status));
		return;
	}
	session_accept(w);
}

static void grace_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->nclients)
		log_warn("shutdown grace period over; closing connections",
			 "worker=%zu connections=%u", w->id, w->nclients);
	session_close_all(w);
	uv_async_send(&w->wake);
}

static void tick_cb(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->alog)
		accesslog_flush(w->alog);
}

static void worker_finish(struct worker *w)
{
	struct wview *v = w->view;

	w->view = NULL;
	wview_unref(v);
	if (w->alog) {
		accesslog_batch_free(w->alog);
		w->alog = NULL;
	}
	while (w->nspare)
		free(w->spare[--w->nspare]);
	if (!uv_is_closing((uv_handle_t *)&w->grace))
		uv_close((uv_handle_t *)&w->grace, NULL);
	session_timers_close(w);
	if (!uv_is_closing((uv_handle_t *)&w->tick))
		uv_close((uv_handle_t *)&w->tick, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->wake))
		uv_close((uv_handle_t *)&w->wake, NULL);
}

static void wake_cb(uv_async_t *a)
{
	struct worker *w = a->data;

	if (atomic_exchange(&w->reload_requested, 0) && !w->stopping)
		worker_reload(w);
	session_idem_woken(w);
	if (!atomic_load(&w->stop_requested))
		return;
	if (!w->stopping) {
		w->stopping = 1;
		uv_close((uv_handle_t *)&w->listener, NULL);
		session_shutdown_idle(w);
		upstream_close_idle_view(w->view);
		uv_timer_start(&w->grace, grace_cb,
			       w->view->rt->cfg->timeouts.shutdown_grace_ms, 0);
	}
	if (w->nclients == 0 && w->view)
		worker_finish(w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct proxy *p = w->proxy;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	/* Every handle is closed; run once more for pending close
	 * callbacks, then the loop can go. */
	uv_run(&w->loop, UV_RUN_NOWAIT);
	session_cache_free(w);
	if (uv_loop_close(&w->loop) != 0)
		log_warn("worker loop not empty at exit", "worker=%zu", w->id);
	atomic_fetch_add(&p->workers_done, 1);
	uv_async_send(&p->stopped_async);
	return NULL;
}

static int worker_init(struct worker *w)
{
	struct proxy *p = w->proxy;
	const struct cfg_limits *l = &p->rt->cfg->limits;
	int r;

	/* Header limits are fixed at start: buffers are sized by them. */
	w->limits.max_head_bytes = l->header_bytes;
	w->limits.max_headers = l->headers;
	w->limits.max_target_bytes = l->target_bytes;
	r = uv_loop_init(&w->loop);
	if (r)
		return r;
	worker_reload(w);
	if (p->alog)
		w->alog = accesslog_batch_new(p->alog);
	uv_tcp_init(&w->loop, &w->listener);
	w->listener.data = w;
	r = uv_tcp_open(&w->listener, w->listen_fd);
	if (r)
		return r;
	w->listen_fd = -1; /* the handle owns it now */
	r = uv_listen((uv_stream_t *)&w->listener, 511, accept_cb);
	if (r)
		return r;
	uv_async_init(&w->loop, &w->wake, wake_cb);
	w->wake.data = w;
	uv_timer_init(&w->loop, &w->grace);
	w->grace.data = w;
	session_timers_init(w);
	uv_timer_init(&w->loop, &w->tick);
	w->tick.data = w;
	uv_timer_start(&w->tick, tick_cb, 1000, 1000);
	uv_unref((uv_handle_t *)&w->tick);
	return 0;
}

static void stopped_closed_cb(uv_handle_t *h)
{
	struct proxy *p = h->data;

	if (p->stopped_cb)
		p->stopped_cb(p, p->stopped_ud);
}

void proxy_maybe_stopped(struct proxy *p)
{
	if (!p->stopped_cb || p->hc_closing ||
	    atomic_load(&p->workers_done) < p->nworkers)
		return;
	if (!uv_is_closing((uv_handle_t *)&p->stopped_async))
		uv_close((uv_handle_t *)&p->stopped_async, stopped_closed_cb);
}

static void stopped_async_cb(uv_async_t *a)
{
	proxy_maybe_stopped(a->data);
}

int proxy_start(struct proxy *p, uv_loop_t *control)
{
	int r;

	p->control = control;
	uv_async_init(control, &p->stopped_async, stopped_async_cb);
	p->stopped_async.data = p;
	for (size_t i = 0; i < p->nworkers; i++) {
		r = worker_init(&p->workers[i]);
		if (r) {
			log_error("worker start failed", "err=%s", uv_err_name(r));
			return r;
		}
	}
	for (size_t i = 0; i < p->nworkers; i++) {
		r = pthread_create(&p->workers[i].thread, NULL, worker_main,
				   &p->workers[i]);
		if (r) {
			log_error("worker thread failed", "err=%s", strerror(r));
			return -r;
		}
	}
	health_sync(p);
	p->started = 1;
	log_info("proxy listening", "listen=%s port=%d workers=%zu pools=%zu",
		 p->listen.text, p->port, p->nworkers, p->rt->npools);
	return 0;
}

static int addr_eq(const struct cfg_addr *a, const struct cfg_addr *b)
{
	return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

int proxy_reload(struct proxy *p, struct config *cfg, char *err, size_t errlen)
{
	const struct config *old = p->rt->cfg;
	struct runtime *rt, *prev;
	size_t o = 0;
	int kept = 0;

	err[0] = '\0';
#define KEEP(cond, what)                                                      \
	do {                                                                  \
		if (cond) {                                                   \
			o += (size_t)snprintf(err + o, o < errlen ? errlen - o : 0, \
					      "%s%s", kept ? ", " : "", what); \
			kept = 1;                                             \
		}                                                             \
	} while (0)
	KEEP(!addr_eq(&old->listen, &cfg->listen), "listen");
	KEEP(old->workers != cfg->workers, "workers");
	KEEP(old->admin.enabled != cfg->admin.enabled ||
		     (cfg->admin.enabled &&
		      !addr_eq(&old->admin.listen, &cfg->admin.listen)),
	     "admin.listen");
	KEEP(old->limits.client_conns != cfg->limits.client_conns ||
		     old->limits.header_bytes != cfg->limits.header_bytes ||
		     old->limits.headers != cfg->limits.headers ||
		     old->limits.target_bytes != cfg->limits.target_bytes,
	     "limits (header_bytes, headers, target_bytes, client_conns)");
	KEEP(old->idempotency.max_bytes != cfg->idempotency.max_bytes ||
		     old->idempotency.max_entry_bytes !=
			     cfg->idempotency.max_entry_bytes,
	     "idempotency");
	KEEP(old->access_log.enabled != cfg->access_log.enabled ||
		     (cfg->access_log.enabled &&
		      (strcmp(old->access_log.path, cfg->access_log.path) ||
		       old->access_log.format != cfg->access_log.format ||
		       old->access_log.anonymize_ip != cfg->access_log.anonymize_ip ||
		       old->access_log.ipv4_prefix != cfg->access_log.ipv4_prefix ||
		       old->access_log.ipv6_prefix != cfg->access_log.ipv6_prefix)),
	     "access_log");
#undef KEEP
	rt = runtime_new(cfg, p->rt, p->nworkers, p->metrics);
	pthread_mutex_lock(&p->rt_lock);
	prev = p->rt;
	p->rt = rt;
	pthread_mutex_unlock(&p->rt_lock);
	if (p->started) {
		health_sync(p);
		for (size_t i = 0; i < p->nworkers; i++) {
			atomic_store(&p->workers[i].reload_requested, 1);
			uv_async_send(&p->workers[i].wake);
		}
	}
	runtime_unref(prev);
	log_info("configuration reloaded", "pools=%zu routes=%zu", cfg->npools,
		 cfg->nroutes);
	if (kept)
		log_warn("reload kept settings that need a restart", "keys=\"%s\"",
			 err);
	return kept;
}

void proxy_stop(struct proxy *p, proxy_stopped_cb cb, void *ud)
{
	if (!p->started) {
		/* Never ran: nothing to drain. */
		cb(p, ud);
		return;
	}
	p->stopped_cb = cb;
	p->stopped_ud = ud;
	health_stop(p);
	for (size_t i = 0; i < p->nworkers; i++) {
		atomic_store(&p->workers[i].stop_requested, 1);
		uv_async_send(&p->workers[i].wake);
	}
	proxy_maybe_stopped(p);
}

void proxy_free(struct proxy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; p->workers && i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];

		if (w->thread)
			pthread_join(w->thread, NULL);
		if (w->listen_fd >= 0)
			close(w->listen_fd);
	}
	if (p->alog)
		accesslog_close(p->alog);
	if (p->idem)
		idem_free(p->idem);
	for (size_t i = 0; p->workers && i < p->nworkers; i++)
		pthread_mutex_destroy(&p->workers[i].woken_lock);
	runtime_unref(p->rt);
	if (p->metrics)
		metrics_free(p->metrics);
	pthread_mutex_destroy(&p->rt_lock);
	free(p->workers);
	free(p->listen.text);
	free(p);
}

/* --- admin operations ------------------------------------------------------ */

static struct backend *find_backend(struct proxy *p, const char *pool,
				    const char *name, size_t *pi, size_t *bi)
{
	for (size_t i = 0; i < p->rt->npools; i++) {
		const struct rpool *rp = &p->rt->pools[i];

		if (strcmp(rp->cfg->name, pool) != 0)
			continue;
		for (size_t k = 0; k < rp->n; k++)
			if (strcmp(rp->bs[k]->name, name) == 0) {
				if (pi)
					*pi = i;
				if (bi)
					*bi = k;
				return rp->bs[k];
			}
	}
	return NULL;
}

int proxy_backend_op(struct proxy *p, const char *pool, const char *backend,
		     enum proxy_backend_op op, uint32_t weight)
{
	struct backend *b = find_backend(p, pool, backend, NULL, NULL);

	if (b == NULL)
		return -ENOENT;
	switch (op) {
	case PROXY_BACKEND_DRAIN:
		atomic_store(&b->drain, 1);
		log_warn("backend draining", "pool=%s backend=%s", pool, backend);
		break;
	case PROXY_BACKEND_ENABLE:
		if (atomic_exchange(&b->drain, 0))
			atomic_store(&b->up_since_ms, clock_mono_ms());
		atomic_store(&b->eject_until_ms, 0);
		log_warn("backend enabled", "pool=%s backend=%s", pool, backend);
		break;
	case PROXY_BACKEND_SET_WEIGHT:
		if (weight > 1000)
			return -EINVAL;
		atomic_store(&b->weight_override, weight);
		log_warn("backend weight set", "pool=%s backend=%s weight=%u", pool,
			 backend, weight);
		break;
	}
	return 0;
}

/* --- read side ----------------------------------------------------------- */

void proxy_stats_read(const struct proxy *p, struct proxy_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < p->nworkers; i++) {
		const struct wstats *w = &p->workers[i].st;

		for (int k = 0; k < 6; k++)
			st->responses[k] += counter_get(&w->responses[k]);
		st->requests += counter_get(&w->requests);
		st->accepted += counter_get(&w->accepted);
		st->retries += counter_get(&w->retries);
		st->retries_denied += counter_get(&w->retries_denied);
		st->in_flight += atomic_load_explicit(
			(_Atomic int64_t *)&w->in_flight, memory_order_relaxed);
		st->connections += atomic_load_explicit(
			(_Atomic int64_t *)&w->connections, memory_order_relaxed);
		st->queued += atomic_load_explicit((_Atomic int64_t *)&w->queued,
						   memory_order_relaxed);
	}
}

size_t proxy_pool_count(const struct proxy *p)
{
	return p->rt->npools;
}

const char *proxy_pool_name(const struct proxy *p, size_t pool)
{
	return p->rt->pools[pool].cfg->name;
}

const char *proxy_pool_balance(const struct proxy *p, size_t pool)
{
	return balance_algo_name(
		(enum balance_algo)p->rt->pools[pool].cfg->balance);
}

size_t proxy_backend_count(const struct proxy *p, size_t pool)
{
	return p->rt->pools[pool].n;
}

void proxy_backend_info(const struct proxy *p, size_t pool, size_t i,
			struct proxy_backend_info *out)
{
	const struct rpool *rp = &p->rt->pools[pool];
	struct backend *b = rp->bs[i];
	uint32_t wo = atomic_load(&b->weight_override);

	memset(out, 0, sizeof(*out));
	out->name = b->name;
	out->address = b->addr.text;
	out->weight = wo ? wo : rp->cfg->backends[i].weight;
	out->backup = rp->cfg->backends[i].backup;
	out->draining = atomic_load(&b->drain);
	out->ejected = clock_mono_ms() < atomic_load(&b->eject_until_ms);
	out->ejections = counter_get(&b->ejections);
	out->state = atomic_load(&b->up) ? PROXY_BACKEND_UP : PROXY_BACKEND_DOWN;
	for (size_t k = 0; k < b->nworkers; k++) {
		out->requests += counter_get(&b->ws[k].requests);
		out->failures += counter_get(&b->ws[k].failures);
		out->active += atomic_load_explicit(&b->ws[k].active,
						    memory_order_relaxed);
	}
	out->checks_ok = counter_get(&b->checks_ok);
	out->checks_failed = counter_get(&b->checks_failed);
	pthread_mutex_lock(&b->last_lock);
	snprintf(out->last_check, sizeof(out->last_check), "%s", b->last_check);
	pthread_mutex_unlock(&b->last_lock);
}
