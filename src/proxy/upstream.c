/*
 * upstream.c - backend connections: choosing a backend, connecting,
 * keeping idle connections for reuse, and the max_conns queue.
 *
 * Choosing: the primaries that are eligible (up, not drained, not
 * ejected) form the tier; only when none is eligible do the backups form
 * it. Within the tier, a backend at its max_conns is skipped; when every
 * one is, the request waits in the pool's queue (FIFO, per worker) until a
 * request on the pool finishes or its queue timeout passes. The balancer
 * (balance.c) picks among the rest.
 *
 * Each worker keeps, per backend, a LIFO list of idle keep-alive
 * connections (the most recently used is the least likely to have been
 * closed by the backend). An idle connection is watched: any byte or EOF
 * from the backend closes it, and it is closed after
 * pools[].keepalive_timeout, or at once when the list already holds
 * keepalive_idle connections.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/proxy_int.h"

/* The value of cookie name in the request's Cookie headers, or NULL. */
static const char *find_cookie(const struct http_msg *m, const char *base,
			       const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);

	for (uint32_t i = 0; i < m->nheaders; i++) {
		const struct http_header *h = &m->headers[i];
		const char *p, *end;

		if (!http_span_ieq(base, h->name, "cookie"))
			continue;
		p = base + h->value.off;
		end = p + h->value.len;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p));
			const char *eq;

			if (semi == NULL)
				semi = end;
			while (p < semi && (*p == ' ' || *p == '\t'))
				p++;
			eq = memchr(p, '=', (size_t)(semi - p));
			if (eq && (size_t)(eq - p) == nlen &&
			    memcmp(p, name, nlen) == 0) {
				*vlen = (size_t)(semi - eq - 1);
				return eq + 1;
			}
			p = semi + 1;
		}
	}
	return NULL;
}

/* The bytes hashed by balance: hash for this request. */
static const char *hash_key(const struct cfg_pool *pc, struct client *c,
			    size_t *len)
{
	const char *base = c->in.data;
	int i;

	switch (pc->hash_on) {
	case CFG_HASH_CLIENT_IP:
		*len = strlen(c->peer);
		return c->peer;
	case CFG_HASH_PATH: {
		const char *t = base + c->rq->req.target.off;
		const char *q = memchr(t, '?', c->rq->req.target.len);

		*len = q ? (size_t)(q - t) : c->rq->req.target.len;
		return t;
	}
	case CFG_HASH_HEADER:
		i = http_msg_find(&c->rq->req, base, pc->hash_name, 0);
		if (i < 0)
			return NULL;
		*len = c->rq->req.headers[i].value.len;
		return base + c->rq->req.headers[i].value.off;
	case CFG_HASH_COOKIE:
		return find_cookie(&c->rq->req, base, pc->hash_name, len);
	}
	return NULL;
}

static int tried(const struct client *c, const struct wbackend *wb)
{
	for (uint32_t i = 0; i < c->rq->ntried; i++)
		if (c->rq->tried[i] == wb)
			return 1;
	return 0;
}

/* Fills wp->nodes for one tier (primaries or backups). Returns the
 * number of eligible backends in it, counting full ones in *full. A
 * backend that already failed this request is not eligible again: a retry
 * always goes to another backend. */
static size_t fill_tier(struct wpool *wp, struct client *c, int backup,
			uint64_t now_ms, size_t *full)
{
	size_t eligible = 0;

	*full = 0;
	for (size_t i = 0; i < wp->n; i++) {
		struct wbackend *wb = &wp->wbs[i];
		struct balance_node *nd = &wp->nodes[i];
		uint32_t w = 0;

		if (!!wb->cfg->backup == backup && !tried(c, wb))
			w = backend_weight(wb->b, wp->cfg, wb->cfg, now_ms);
		nd->in_flight = atomic_load_explicit(&wb->st->active,
						     memory_order_relaxed);
		nd->ewma_us = wb->ewma_us;
		if (w == 0) {
			nd->weight = 0;
			continue;
		}
		eligible++;
		if (wb->max_conns && nd->in_flight >= (int64_t)wb->max_conns) {
			(*full)++;
			nd->weight = 0;
			continue;
		}
		nd->weight = w;
	}
	return eligible;
}

/* 16 hex digits into *id. Returns 0 or -1. */
static int sticky_id(const char *v, uint64_t *id)
{
	uint64_t x = 0;

	for (int i = 0; i < 16; i++) {
		int d = http_hexval((unsigned char)v[i]);

		if (d < 0)
			return -1;
		x = x << 4 | (uint64_t)d;
	}
	*id = x;
	return 0;
}

struct wbackend *upstream_pick(struct wpool *wp, struct client *c, int *full)
{
	const struct cfg_pool *pc = wp->cfg;
	uint64_t now_ms = clock_mono_ms();
	size_t eligible, nfull;
	const char *key = NULL;
	size_t klen = 0;
	int idx;

	*full = 0;
	eligible = fill_tier(wp, c, 0, now_ms, &nfull);
	if (eligible == 0)
		eligible = fill_tier(wp, c, 1, now_ms, &nfull);
	if (eligible == 0)
		return NULL;
	if (eligible == nfull) {
		*full = 1;
		return NULL;
	}
	if (pc->balance == CFG_BALANCE_STICKY) {
		const char *v = find_cookie(&c->rq->req, c->in.data,
					    pc->sticky_cookie, &klen);

		uint64_t id;

		/* The cookie is the backend's id hash in 16 lowercase hex
		 * digits, as sticky_set writes it: decoded once, compared as
		 * a number. */
		if (v && klen == 16 && sticky_id(v, &id) == 0) {
			for (size_t i = 0; i < wp->n; i++)
				if (wp->nodes[i].weight != 0 &&
				    wp->nodes[i].id_hash == id)
					return &wp->wbs[i];
		}
		idx = balance_pick(BALANCE_ROUND_ROBIN, wp->nodes, wp->n,
				   &wp->bst, NULL, 0);
		if (idx >= 0)
			snprintf(c->rq->sticky_set, sizeof(c->rq->sticky_set), "%016llx",
				 (unsigned long long)wp->nodes[idx].id_hash);
		return idx >= 0 ? &wp->wbs[idx] : NULL;
	}
	if (pc->balance == CFG_BALANCE_HASH)
		key = hash_key(pc, c, &klen);
	idx = balance_pick((enum balance_algo)pc->balance, wp->nodes, wp->n,
			   &wp->bst, key, key ? klen : 0);
	return idx >= 0 ? &wp->wbs[idx] : NULL;
}

size_t upstream_untried(struct wpool *wp, struct client *c)
{
	uint64_t now_ms = clock_mono_ms();
	size_t n = 0;

	for (int backup = 0; backup < 2 && n == 0; backup++)
		for (size_t i = 0; i < wp->n; i++) {
			struct wbackend *wb = &wp->wbs[i];

			if (!!wb->cfg->backup == backup && !tried(c, wb) &&
			    backend_weight(wb->b, wp->cfg, wb->cfg, now_ms))
				n++;
		}
	return n;
}

/* --- the queue ------------------------------------------------------------ */

void queue_remove(struct wpool *wp, struct client *c)
{
	struct client **pp = &wp->qhead, *prev = NULL;

	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->rq->qnext;
	}
	if (*pp == NULL)
		return;
	*pp = c->rq->qnext;
	if (wp->qtail == c)
		wp->qtail = prev;
	c->rq->qnext = NULL;
	wp->qlen--;
	atomic_fetch_sub_explicit(&wp->view->w->st.queued, 1,
				  memory_order_relaxed);
}

void upstream_slot_freed(struct wpool *wp)
{
	struct client *c = wp->qhead;

	if (c == NULL)
		return;
	queue_remove(wp, c);
	session_dequeued(c);
}

/* --- connections ---------------------------------------------------------- */

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
	/* bc->in is freed with bc, not cached: a write may still point
	 * into it until the close callbacks have run. */
	uv_close((uv_handle_t *)&bc->timer, bconn_free_cb);
	uv_close((uv_handle_t *)&bc->tcp, bconn_free_cb);
}

/* --- the lazy deadline ------------------------------------------------------ */

static void bconn_timer_cb(uv_timer_t *t)
{
	struct bconn *bc = t->data;
	uint64_t now = uv_now(&bc->w->loop);

	bc->timer_due = 0;
	if (bc->deadline == 0 || bc->closing)
		return;
	if (now < bc->deadline) {
		bc->timer_due = bc->deadline;
		uv_timer_start(&bc->timer, bconn_timer_cb, bc->deadline - now, 0);
		return;
	}
	bc->deadline = 0;
	if (bc->c == NULL) {
		upstream_close(bc); /* idle too long, or orphaned */
		return;
	}
	if (!bc->connected)
		session_on_connect(bc, -ETIMEDOUT);
	else
		session_backend_timeout(bc);
}

void bconn_deadline(struct bconn *bc, uint64_t ms)
{
	uint64_t due = uv_now(&bc->w->loop) + ms;

	bc->deadline = due;
	if (bc->timer_due && bc->timer_due <= due)
		return; /* fires earlier and re-arms for the rest */
	bc->timer_due = due;
	bc->timer.data = bc;
	uv_timer_start(&bc->timer, bconn_timer_cb, ms, 0);
}

void bconn_deadline_off(struct bconn *bc)
{
	bc->deadline = 0;
}

/* --- read buffers ------------------------------------------------------------ */

void worker_buf_get(struct worker *w, struct buf *b)
{
	if (b->data != NULL)
		return;
	if (w->nspare) {
		b->data = w->spare[--w->nspare];
	} else {
		/* Exactly WORKER_BUF_CAP (buf_reserve would round up to a
		 * power of two), so that it can go back to the cache. */
		b->data = malloc(WORKER_BUF_CAP);
		if (b->data == NULL)
			return;
	}
	b->cap = WORKER_BUF_CAP;
	b->len = 0;
}

void worker_buf_put(struct worker *w, struct buf *b)
{
	if (b->data && b->cap == WORKER_BUF_CAP &&
	    w->nspare < sizeof(w->spare) / sizeof(w->spare[0])) {
		w->spare[w->nspare++] = b->data;
		b->data = NULL;
		b->len = b->cap = 0;
		return;
	}
	buf_fini(b);
}

void upstream_release(struct bconn *bc, int reusable)
{
	struct wbackend *wb = bc->wb;
	struct worker *w = bc->w;
	const struct cfg_pool *pool = wb->wp->cfg;

	bc->c = NULL;
	/* A connection of a view that a reload replaced is not kept: its
	 * backend may be gone or changed. */
	if (!reusable || w->stopping || pool->keepalive_idle == 0 ||
	    !bc->reading || wb->wp->view != w->view ||
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
	worker_buf_put(w, &bc->in);
	bc->in_pos = 0;
	bc->got_bytes = 0;
	bc->next = wb->idle;
	wb->idle = bc;
	wb->nidle++;
	bc->in_idle = 1;
	bc->tcp.data = bc;
	/* Reading stays on: the session's read callback closes an idle
	 * connection on any byte or EOF from the backend. */
	bconn_deadline(bc, pool->keepalive_timeout_ms);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct bconn *bc = req->data;

	if (bc->closing)
		return; /* cancelled by a close */
	bconn_deadline_off(bc);
	if (status == 0) {
		bc->connected = 1;
		uv_tcp_nodelay(&bc->tcp, 1);
	} else {
		log_warn("backend connect failed", "backend=%s addr=%s err=%s",
			 bc->wb->b->name, bc->wb->b->addr.text,
			 uv_err_name(status));
	}
	session_on_connect(bc, status);
}

struct bconn *upstream_get(struct worker *w, struct wbackend *wb,
			   uint32_t connect_ms, int reuse)
{
	struct bconn *bc = reuse ? wb->idle : NULL;
	int r;

	if (bc) {
		wb->idle = bc->next;
		wb->nidle--;
		bc->next = NULL;
		bc->in_idle = 0;
		bconn_deadline_off(bc);
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
			   (const struct sockaddr *)&wb->b->addr.sa, connect_cb);
	if (r != 0) {
		log_warn("backend connect failed", "backend=%s addr=%s err=%s",
			 wb->b->name, wb->b->addr.text, uv_err_name(r));
		bc->closing = 1;
		uv_close((uv_handle_t *)&bc->timer, bconn_free_cb);
		uv_close((uv_handle_t *)&bc->tcp, bconn_free_cb);
		return NULL;
	}
	bconn_deadline(bc, connect_ms);
	return bc;
}

void upstream_close_idle_view(struct wview *v)
{
	for (size_t i = 0; i < v->npools; i++)
		for (size_t k = 0; k < v->pools[i].n; k++)
			while (v->pools[i].wbs[k].idle)
				upstream_close(v->pools[i].wbs[k].idle);
}
