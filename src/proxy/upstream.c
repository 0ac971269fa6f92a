/*
 * upstream.c - backend connections: choosing a backend, connecting,
 * keeping idle connections for reuse.
 *
 * Each worker keeps, per backend, a LIFO list of idle keep-alive
 * connections (the most recently used is the least likely to have been
 * closed by the backend). An idle connection is watched: any byte or EOF
 * from the backend closes it, and it is closed after
 * pools[].keepalive_timeout, or at once when the list already holds
 * keepalive_idle connections.
 *
 * Balancing is smooth weighted round robin (as nginx does it): every pick
 * adds each eligible backend's weight to its current weight, takes the
 * largest, and subtracts the total from it. Over any window the shares
 * match the weights and the picks are interleaved, not bunched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/proxy_int.h"

struct wbackend *upstream_pick(struct worker *w, const struct wbackend *avoid)
{
	struct wbackend *best = NULL;
	int64_t total = 0;
	size_t eligible = 0;

	for (size_t i = 0; i < w->nwbs; i++) {
		struct wbackend *wb = &w->wbs[i];

		if (!atomic_load_explicit(&wb->b->up, memory_order_relaxed))
			continue;
		eligible++;
	}
	for (size_t i = 0; i < w->nwbs; i++) {
		struct wbackend *wb = &w->wbs[i];

		if (!atomic_load_explicit(&wb->b->up, memory_order_relaxed))
			continue;
		/* Avoid the one that just failed, unless it is all we have. */
		if (wb == avoid && eligible > 1)
			continue;
		wb->cur_weight += wb->b->cfg->weight;
		total += wb->b->cfg->weight;
		if (best == NULL || wb->cur_weight > best->cur_weight)
			best = wb;
	}
	if (best)
		best->cur_weight -= total;
	return best;
}

static void bconn_free_cb(uv_handle_t *h)
{
	struct bconn *bc = h->data;

	/* Two handles (tcp, timer); the second close frees. */
	if (++bc->nclosed < 2)
		return;
	buf_fini(&bc->in);
	free(bc->hdrs);
	free(bc);
}

static void idle_unlink(struct bconn *bc)
{
	struct wbackend *wb = bc->wb;
	struct bconn **pp = &wb->idle;

	while (*pp && *pp != bc)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = bc->next;
		wb->nidle--;
	}
	bc->next = NULL;
	bc->in_idle = 0;
}

void upstream_close(struct bconn *bc)
{
	if (bc->closing)
		return;
	bc->closing = 1;
	if (bc->in_idle)
		idle_unlink(bc);
	bc->c = NULL;
	uv_timer_stop(&bc->timer);
	bc->timer.data = bc;
	bc->tcp.data = bc;
	uv_close((uv_handle_t *)&bc->timer, bconn_free_cb);
	uv_close((uv_handle_t *)&bc->tcp, bconn_free_cb);
}

static void idle_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *out)
{
	static __thread char scratch[64];

	(void)h;
	(void)sz;
	/* Nothing is expected on an idle connection; whatever comes means
	 * it is unusable, so a small scratch buffer is enough. */
	out->base = scratch;
	out->len = sizeof(scratch);
}

static void idle_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct bconn *bc = s->data;

	(void)b;
	if (nread == 0)
		return;
	/* Data or EOF on an idle connection: the backend closed it, or
	 * broke the protocol. Either way it is not reused. */
	upstream_close(bc);
}

static void idle_timer_cb(uv_timer_t *t)
{
	upstream_close(t->data);
}

void upstream_release(struct bconn *bc, int reusable)
{
	struct wbackend *wb = bc->wb;
	struct worker *w = bc->w;
	const struct cfg_pool *pool = &w->proxy->cfg->pools[0];

	bc->c = NULL;
	if (!reusable || w->stopping || pool->keepalive_idle == 0 ||
	    !atomic_load_explicit(&wb->b->up, memory_order_relaxed)) {
		upstream_close(bc);
		return;
	}
	if (wb->nidle >= pool->keepalive_idle) {
		/* Keep the newest; drop the oldest at the tail. */
		struct bconn *t = wb->idle;

		while (t && t->next)
			t = t->next;
		if (t)
			upstream_close(t);
	}
	buf_fini(&bc->in);
	bc->in_pos = 0;
	bc->got_bytes = 0;
	bc->next = wb->idle;
	wb->idle = bc;
	wb->nidle++;
	bc->in_idle = 1;
	bc->tcp.data = bc;
	bc->timer.data = bc;
	bc->reading = 0;
	if (uv_read_start((uv_stream_t *)&bc->tcp, idle_alloc_cb,
			  idle_read_cb) != 0) {
		upstream_close(bc);
		return;
	}
	uv_timer_start(&bc->timer, idle_timer_cb, pool->keepalive_timeout_ms, 0);
}

static void connect_timer_cb(uv_timer_t *t)
{
	struct bconn *bc = t->data;

	if (bc->c)
		session_on_connect(bc, -ETIMEDOUT);
	else
		upstream_close(bc);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct bconn *bc = req->data;

	if (bc->closing)
		return; /* cancelled by a close */
	uv_timer_stop(&bc->timer);
	if (status == 0) {
		bc->connected = 1;
		uv_tcp_nodelay(&bc->tcp, 1);
	} else {
		log_warn("backend connect failed", "backend=%s addr=%s err=%s",
			 bc->wb->b->cfg->name, bc->wb->b->cfg->addr.text,
			 uv_err_name(status));
	}
	session_on_connect(bc, status);
}

struct bconn *upstream_get(struct worker *w, struct wbackend *wb)
{
	struct bconn *bc = wb->idle;
	int r;

	if (bc) {
		wb->idle = bc->next;
		wb->nidle--;
		bc->next = NULL;
		bc->in_idle = 0;
		uv_read_stop((uv_stream_t *)&bc->tcp);
		uv_timer_stop(&bc->timer);
		bc->reused = 1;
		return bc;
	}
	bc = calloc(1, sizeof(*bc));
	if (bc == NULL)
		return NULL;
	bc->hdrs = calloc(w->limits.max_headers, sizeof(*bc->hdrs));
	if (bc->hdrs == NULL) {
		free(bc);
		return NULL;
	}
	bc->w = w;
	bc->wb = wb;
	uv_tcp_init(&w->loop, &bc->tcp);
	uv_timer_init(&w->loop, &bc->timer);
	bc->tcp.data = bc;
	bc->timer.data = bc;
	bc->connect.data = bc;
	r = uv_tcp_connect(&bc->connect, &bc->tcp,
			   (const struct sockaddr *)&wb->b->cfg->addr.sa,
			   connect_cb);
	if (r != 0) {
		log_warn("backend connect failed", "backend=%s addr=%s err=%s",
			 wb->b->cfg->name, wb->b->cfg->addr.text, uv_err_name(r));
		bc->closing = 1;
		uv_close((uv_handle_t *)&bc->timer, bconn_free_cb);
		uv_close((uv_handle_t *)&bc->tcp, bconn_free_cb);
		return NULL;
	}
	uv_timer_start(&bc->timer, connect_timer_cb,
		       w->proxy->cfg->timeouts.connect_ms, 0);
	return bc;
}

void upstream_close_idle(struct worker *w)
{
	for (size_t i = 0; i < w->nwbs; i++) {
		while (w->wbs[i].idle)
			upstream_close(w->wbs[i].idle);
	}
}
