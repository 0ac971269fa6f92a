/*
 * proxy.c - the proxy's lifecycle: listeners, worker threads, stop.
 *
 * Listening sockets are opened in proxy_new(), in the caller's thread and
 * before anything runs, so a bind error is reported at start-up. Each
 * worker gets its own socket bound to the same address with SO_REUSEPORT
 * (libuv 1.44 has no flag for it, so the socket is made here and handed
 * to uv_tcp_open) and the kernel spreads new connections across them.
 *
 * Stop is cooperative: the control thread flags each worker and wakes it
 * through its async handle; the worker closes its listener and idle
 * connections, lets requests in flight finish, and its loop ends when its
 * last handle is closed (or the grace timer cuts what is left).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "proxy/proxy_int.h"

static int open_listener(const struct cfg_addr *a, int port, char *err,
			 size_t errlen)
{
	struct sockaddr_storage ss = a->sa;
	int fd, one = 1;

	if (port >= 0) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&ss, a->salen) < 0)
		goto fail;
	if (listen(fd, 511) < 0)
		goto fail;
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
	const struct cfg_pool *pool = &cfg->pools[0];
	long ncpu;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->cfg = config_ref(cfg);
	p->nworkers = cfg->workers;
	if (p->nworkers == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		p->nworkers = ncpu > 0 ? (size_t)ncpu : 1;
	}
	p->nbackends = pool->nbackends;
	p->backends = calloc(p->nbackends, sizeof(*p->backends));
	p->workers = calloc(p->nworkers, sizeof(*p->workers));
	if (p->backends == NULL || p->workers == NULL)
		goto nomem;
	for (size_t i = 0; i < p->nbackends; i++) {
		struct backend *b = &p->backends[i];

		b->cfg = &pool->backends[i];
		b->index = i;
		b->proxy = p;
		atomic_init(&b->up, 1);
		pthread_mutex_init(&b->last_lock, NULL);
		snprintf(b->last_check, sizeof(b->last_check), "%s",
			 pool->health.enabled ? "pending" : "disabled");
		buf_init(&b->hc_in);
		buf_init(&b->hc_req);
	}
	p->port = -1;
	for (size_t i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];

		w->listen_fd = -1;
	}
	for (size_t i = 0; i < p->nworkers; i++) {
		struct worker *w = &p->workers[i];

		w->proxy = p;
		w->id = i;
		/* Port 0 (tests) binds the first socket anywhere and the rest
		 * to the port it got. */
		w->listen_fd = open_listener(&cfg->listen, i ? p->port : -1, err,
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
nomem:
	snprintf(err, errlen, "out of memory");
	proxy_free(p);
	return -ENOMEM;
}

int proxy_port(const struct proxy *p)
{
	return p->port;
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

static void worker_finish(struct worker *w)
{
	upstream_close_idle(w);
	if (!uv_is_closing((uv_handle_t *)&w->grace))
		uv_close((uv_handle_t *)&w->grace, NULL);
	if (!uv_is_closing((uv_handle_t *)&w->wake))
		uv_close((uv_handle_t *)&w->wake, NULL);
}

static void wake_cb(uv_async_t *a)
{
	struct worker *w = a->data;

	if (!atomic_load(&w->stop_requested))
		return;
	if (!w->stopping) {
		w->stopping = 1;
		uv_close((uv_handle_t *)&w->listener, NULL);
		session_shutdown_idle(w);
		upstream_close_idle(w);
		uv_timer_start(&w->grace, grace_cb,
			       w->proxy->cfg->timeouts.shutdown_grace_ms, 0);
	}
	if (w->nclients == 0)
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
	if (uv_loop_close(&w->loop) != 0)
		log_warn("worker loop not empty at exit", "worker=%zu", w->id);
	atomic_fetch_add(&p->workers_done, 1);
	uv_async_send(&p->stopped_async);
	return NULL;
}

static int worker_init(struct worker *w)
{
	struct proxy *p = w->proxy;
	const struct cfg_limits *l = &p->cfg->limits;
	int r;

	w->limits.max_head_bytes = l->header_bytes;
	w->limits.max_headers = l->headers;
	w->limits.max_target_bytes = l->target_bytes;
	w->nwbs = p->nbackends;
	w->wbs = calloc(w->nwbs, sizeof(*w->wbs));
	if (w->wbs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < w->nwbs; i++)
		w->wbs[i].b = &p->backends[i];
	r = uv_loop_init(&w->loop);
	if (r)
		return r;
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
	health_start(p);
	p->started = 1;
	log_info("proxy listening", "listen=%s port=%d workers=%zu backends=%zu",
		 p->cfg->listen.text, p->port, p->nworkers, p->nbackends);
	return 0;
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
		free(w->wbs);
	}
	for (size_t i = 0; p->backends && i < p->nbackends; i++) {
		buf_fini(&p->backends[i].hc_in);
		buf_fini(&p->backends[i].hc_req);
		pthread_mutex_destroy(&p->backends[i].last_lock);
	}
	free(p->workers);
	free(p->backends);
	config_unref(p->cfg);
	free(p);
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
		st->in_flight += atomic_load_explicit(
			(_Atomic int64_t *)&w->in_flight, memory_order_relaxed);
		st->connections += atomic_load_explicit(
			(_Atomic int64_t *)&w->connections, memory_order_relaxed);
	}
}

size_t proxy_pool_count(const struct proxy *p)
{
	return p->cfg->npools ? 1 : 0;
}

const char *proxy_pool_name(const struct proxy *p, size_t pool)
{
	(void)pool;
	return p->cfg->pools[0].name;
}

size_t proxy_backend_count(const struct proxy *p, size_t pool)
{
	(void)pool;
	return p->nbackends;
}

void proxy_backend_info(const struct proxy *p, size_t pool, size_t i,
			struct proxy_backend_info *out)
{
	struct backend *b = &p->backends[i];

	(void)pool;
	memset(out, 0, sizeof(*out));
	out->name = b->cfg->name;
	out->address = b->cfg->addr.text;
	out->weight = b->cfg->weight;
	out->state = atomic_load(&b->up) ? PROXY_BACKEND_UP : PROXY_BACKEND_DOWN;
	for (size_t k = 0; k < p->nworkers; k++) {
		struct wbackend *wb = &p->workers[k].wbs[i];

		if (p->workers[k].wbs == NULL)
			continue;
		out->requests += counter_get(&wb->requests);
		out->failures += counter_get(&wb->failures);
		out->active += atomic_load_explicit(&wb->active,
						    memory_order_relaxed);
	}
	out->checks_ok = counter_get(&b->checks_ok);
	out->checks_failed = counter_get(&b->checks_failed);
	pthread_mutex_lock(&b->last_lock);
	snprintf(out->last_check, sizeof(out->last_check), "%s", b->last_check);
	pthread_mutex_unlock(&b->last_lock);
}
