/*
 * session.c - client sessions: read a request, route it, relay it to a
 * backend (retrying where that is safe), relay the response back, keep the
 * connection for the next request.
 *
 * Bodies are streamed, never buffered whole. Each direction has at most
 * one write in flight, and the side that feeds it stops reading until the
 * write completes: the kernel's socket buffers do the queueing, and a slow
 * reader slows its writer down instead of growing our memory. A write is
 * tried on the socket at once (send_bufs()); only what the socket does not
 * take goes through uv_write. So completion work runs either inline (the
 * pump loops) or in the write callback, and code after a pump must expect
 * the request, or the connection, to have ended. Request
 * bodies pass through untouched (Content-Length or chunked; the chunked
 * decoder only finds where the body ends), so what reaches the backend is
 * exactly what the parser accepted.
 *
 * Retries. A request is tried again on another backend when:
 *   - nothing of it reached a backend (connect refused or timed out): any
 *     method, a POST included;
 *   - it may have reached one (reset or timeout before a response, or a
 *     response status listed in retry.on_status): only methods listed in
 *     retry.methods (the idempotent ones by default), and only while its
 *     whole body is still in our buffer (bodies up to REPLAY_MAX).
 * Each retry needs room in the worker's retry budget (a share of recent
 * requests), so retries cannot multiply an outage. A POST that left is
 * never sent twice: that is how a checkout is never placed twice.
 *
 * Memory: an idle keep-alive connection holds its struct client (from a
 * per-worker slab, no libuv handle but its socket's) and a slot in the
 * worker's timer heap, nothing else. The request state (struct creq, with
 * the header array) and the read buffer come from per-worker caches when
 * a request's first byte arrives and go back when the connection is idle
 * again.
 *
 * Invariants:
 *   - c->rq is set from a request's first byte until the connection is
 *     idle again (state C_IDLE: c->rq == NULL) or freed.
 *   - c->in holds the current request head from offset 0 until the request
 *     is finished; body bytes after it stay while the body is replayable
 *     and are dropped once written otherwise (in.len cut back to head_len).
 *   - c->rq->bc is set exactly while a backend connection serves this request,
 *     and bc->c == c.
 *   - c->rq->view is held (a reference) from the head to the end of the
 *     request: the request runs on the config it started on.
 *   - wb->st->active counts the request while c->rq->counted_active.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/proxy_int.h"

#define HDR_SKIP 0x80 /* local flag: dropped here and re-added by us */
#define READ_CHUNK 65536
#define REPLAY_MAX (64 * 1024) /* bodies kept for a retry */
#define EWMA_TAU_US 10e6

static void client_close(struct client *c);
static void rq_put(struct client *c);

/* Whether m is among the config's methods (struct cfg_method indexes
 * config_method_names; this map turns them into the parser's enum). */
static int method_listed(const struct cfg_method *ms, size_t n,
			 enum http_method m)
{
	static const enum http_method map[] = {
		HTTP_M_GET,   HTTP_M_HEAD,    HTTP_M_POST,  HTTP_M_PUT,
		HTTP_M_DELETE, HTTP_M_OPTIONS, HTTP_M_PATCH, HTTP_M_TRACE,
	};

	for (size_t i = 0; i < n; i++)
		if ((size_t)ms[i].method < sizeof(map) / sizeof(map[0]) &&
		    map[ms[i].method] == m)
			return 1;
	return 0;
}

/* The idempotent methods of RFC 9110 9.2.2 that a shop sends (TRACE left
 * out), the same list as retry.methods' default. */
static int method_idempotent(enum http_method m)
{
	return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_OPTIONS ||
	       m == HTTP_M_PUT || m == HTTP_M_DELETE;
}
static void client_next_request(struct client *c);
static void process_head(struct client *c);
static void pump_req(struct client *c);
static void pump_resp(struct client *c);
static void dispatch(struct client *c);
static void backend_failed(struct client *c, int err, int timeout);
static void request_end(struct client *c);

static inline uint64_t now_us(void)
{
	return clock_mono_ns() / 1000;
}

static const struct config *ccfg(struct client *c)
{
	return c->rq && c->rq->view ? c->rq->view->rt->cfg : c->w->view->rt->cfg;
}

/* The client's address as logs show it: anonymised when the access log
 * says so. Formatted on first use, as only error paths log it. */
static const char *peer_log(struct client *c)
{
	const struct cfg_access_log *al = &ccfg(c)->access_log;
	struct creq *rq = c->rq;

	if (rq == NULL)
		return c->peer;
	if (rq->peer_log[0] == '\0') {
		if (al->enabled && al->anonymize_ip)
			accesslog_anonymize(c->peer, (uint8_t)al->ipv4_prefix,
					    (uint8_t)al->ipv6_prefix, rq->peer_log,
					    sizeof(rq->peer_log));
		else
			snprintf(rq->peer_log, sizeof(rq->peer_log), "%s",
				 c->peer);
	}
	return rq->peer_log;
}

static const struct cfg_timeouts *tmo(struct client *c)
{
	return &ccfg(c)->timeouts;
}

static uint32_t connect_ms(struct client *c)
{
	if (c->rq->route && c->rq->route->timeouts.connect_ms)
		return c->rq->route->timeouts.connect_ms;
	return tmo(c)->connect_ms;
}

static uint32_t response_ms(struct client *c)
{
	if (c->rq->route && c->rq->route->timeouts.backend_response_ms)
		return c->rq->route->timeouts.backend_response_ms;
	return tmo(c)->backend_response_ms;
}

static uint32_t request_ms(struct client *c)
{
	if (c->rq->route && c->rq->route->timeouts.request_ms)
		return c->rq->route->timeouts.request_ms;
	return tmo(c)->request_ms;
}

/* --- reading ------------------------------------------------------------ */

#define MIN_READ 4096	       /* less room than this grows the buffer */
#define CLIENT_AHEAD (64 * 1024) /* unconsumed bytes read ahead at most */

/*
 * Reading stays on across requests (no epoll_ctl churn per request); this
 * is where it is bounded. A read pauses (the callback sees UV_ENOBUFS and
 * stops) when the client is far ahead of us, or when the buffer would
 * have to move while a backend write points into it.
 */
static void client_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
	struct client *c = h->data;

	(void)suggested;
	out->base = NULL;
	out->len = 0;
	if (c->state != C_IDLE && c->state != C_HEAD &&
	    c->in.len - c->in_pos >= CLIENT_AHEAD) {
		c->paused = 1;
		return;
	}
	if (c->in.data == NULL)
		worker_buf_get(c->w, &c->in);
	if (c->in.cap - c->in.len < MIN_READ + 1) {
		if (c->rq && c->rq->bwrite_n > 0) {
			c->paused = 1; /* in.data is in a backend write */
			return;
		}
		if (buf_reserve(&c->in, READ_CHUNK) != 0)
			return;
	}
	out->base = c->in.data + c->in.len;
	out->len = c->in.cap - c->in.len - 1;
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void client_read_start(struct client *c)
{
	if (!c->reading && c->state != C_CLOSED) {
		if (uv_read_start((uv_stream_t *)&c->tcp, client_alloc_cb,
				  client_read_cb) == 0)
			c->reading = 1;
	}
}

static void client_read_stop(struct client *c)
{
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

/* Reading was paused for room; there may be room now. */
static void client_resume(struct client *c)
{
	if (c->paused) {
		c->paused = 0;
		client_read_start(c);
	}
}

/*
 * Client deadlines. A client has two: the phase's (header, keep-alive,
 * body, queue; c->deadline) and the whole request's (c->req_deadline).
 * They are kept lazily: moving one later, or clearing it, only sets the
 * field, and when the earlier due time comes, client_timeout() re-arms
 * for what is left. So a request normally costs no timer work at all.
 *
 * The clients' due times are in one binary min-heap per worker, under
 * one libuv timer (w->ctimer), instead of a uv_timer_t per connection:
 * an idle connection holds 8 bytes of heap slot and 4 of index instead
 * of a 152-byte handle.
 */
static void client_timeout(struct client *c);

static int theap_less(struct worker *w, uint32_t a, uint32_t b)
{
	return w->theap[a]->timer_due < w->theap[b]->timer_due;
}

static void theap_swap(struct worker *w, uint32_t a, uint32_t b)
{
	struct client *t = w->theap[a];

	w->theap[a] = w->theap[b];
	w->theap[b] = t;
	w->theap[a]->theap_idx = a + 1;
	w->theap[b]->theap_idx = b + 1;
}

static void theap_up(struct worker *w, uint32_t i)
{
	while (i > 0 && theap_less(w, i, (i - 1) / 2)) {
		theap_swap(w, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void theap_down(struct worker *w, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, m = i;

		if (l < w->theap_n && theap_less(w, l, m))
			m = l;
		if (l + 1 < w->theap_n && theap_less(w, l + 1, m))
			m = l + 1;
		if (m == i)
			return;
		theap_swap(w, i, m);
		i = m;
	}
}

static void theap_del(struct client *c)
{
	struct worker *w = c->w;
	uint32_t i = c->theap_idx - 1;

	if (c->theap_idx == 0)
		return;
	c->theap_idx = 0;
	c->timer_due = 0;
	if (i != --w->theap_n) {
		w->theap[i] = w->theap[w->theap_n];
		w->theap[i]->theap_idx = i + 1;
		theap_up(w, i);
		theap_down(w, i);
	}
}

static void ctimer_cb(uv_timer_t *t);

/* Arms the worker's timer for the heap's first due time, if earlier than
 * what it is armed for. */
static void ctimer_arm(struct worker *w)
{
	uint64_t due, now;

	if (w->theap_n == 0)
		return;
	due = w->theap[0]->timer_due;
	if (w->ctimer_due && w->ctimer_due <= due)
		return;
	w->ctimer_due = due;
	now = uv_now(&w->loop);
	uv_timer_start(&w->ctimer, ctimer_cb, due > now ? due - now : 0, 0);
}

static void ctimer_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	uint64_t now = uv_now(&w->loop);

	w->ctimer_due = 0;
	/* A deadline set from here is at least now + 1 (timer_arm), so
	 * this ends. */
	while (w->theap_n > 0 && w->theap[0]->timer_due <= now) {
		struct client *c = w->theap[0];

		theap_del(c);
		client_timeout(c);
	}
	ctimer_arm(w);
}

void session_timers_init(struct worker *w)
{
	uv_timer_init(&w->loop, &w->ctimer);
	w->ctimer.data = w;
	/* Client connections keep the loop alive, not their deadlines. */
	uv_unref((uv_handle_t *)&w->ctimer);
}

void session_timers_close(struct worker *w)
{
	if (!uv_is_closing((uv_handle_t *)&w->ctimer))
		uv_close((uv_handle_t *)&w->ctimer, NULL);
	free(w->theap);
	w->theap = NULL;
	w->theap_n = w->theap_cap = 0;
}

static void timer_arm(struct client *c)
{
	struct worker *w = c->w;
	uint64_t due = c->deadline, now = uv_now(&w->loop);

	if (c->req_deadline && (due == 0 || c->req_deadline < due))
		due = c->req_deadline;
	if (due == 0 || c->state == C_CLOSED)
		return;
	if (c->timer_due && c->timer_due <= due)
		return; /* fires earlier and re-arms for the rest */
	if (due <= now)
		due = now + 1;
	if (c->theap_idx) {
		c->timer_due = due; /* earlier: up */
		theap_up(w, c->theap_idx - 1);
	} else {
		if (w->theap_n == w->theap_cap) {
			uint32_t cap = w->theap_cap ? 2 * w->theap_cap : 256;
			struct client **h = realloc(w->theap, cap * sizeof(*h));

			SK_ASSERT(h != NULL);
			w->theap = h;
			w->theap_cap = cap;
		}
		c->timer_due = due;
		w->theap[w->theap_n] = c;
		c->theap_idx = ++w->theap_n;
		theap_up(w, w->theap_n - 1);
	}
	ctimer_arm(w);
}

/* The phase's deadline, ms from now. */
static void client_timer(struct client *c, uint64_t ms)
{
	c->deadline = uv_now(&c->w->loop) + ms;
	timer_arm(c);
}

static void client_timer_off(struct client *c)
{
	c->deadline = 0;
}

/* --- the request's end: stats, log, slots ---------------------------------- */

/*
 * struct client comes from per-worker slabs of mmap'd memory, not from
 * malloc: the read buffers that come and go with every request would
 * otherwise leave holes in the heap that long-lived connections fill,
 * and the heap, fragmented, grows by a few hundred bytes per idle
 * connection. Slabs are unmapped when the worker ends. Under ASan,
 * plain calloc and free, so that use after free is caught.
 */
#define CLIENT_SLAB (64 * 1024)

struct client_slab {
	struct client_slab *next;
};

static struct client *client_slab_get(struct worker *w)
{
	struct client *c;

#ifdef __SANITIZE_ADDRESS__
	(void)w;
	return calloc(1, sizeof(*c));
#else
	if (w->free_clients == NULL) {
		char *p = mmap(NULL, CLIENT_SLAB, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		size_t off = (sizeof(struct client_slab) + 63) & ~(size_t)63;

		if (p == MAP_FAILED)
			return NULL;
		((struct client_slab *)(void *)p)->next = w->slabs;
		w->slabs = p;
		for (; off + sizeof(*c) <= CLIENT_SLAB; off += sizeof(*c)) {
			c = (struct client *)(void *)(p + off);
			c->next = w->free_clients;
			w->free_clients = c;
		}
	}
	c = w->free_clients;
	w->free_clients = c->next;
	memset(c, 0, sizeof(*c));
	return c;
#endif
}

static void client_slab_put(struct worker *w, struct client *c)
{
#ifdef __SANITIZE_ADDRESS__
	(void)w;
	free(c);
#else
	c->next = w->free_clients;
	w->free_clients = c;
#endif
}

static void client_free_cb(uv_handle_t *h)
{
	struct client *c = h->data;

	if (--c->handles_open > 0)
		return;
	buf_fini(&c->in);
	rq_put(c);
	client_slab_put(c->w, c);
}

/* The request no longer occupies wb. */
static void release_active(struct client *c)
{
	struct wbackend *wb = c->rq->wb;

	if (!c->rq->counted_active)
		return;
	c->rq->counted_active = 0;
	atomic_fetch_sub_explicit(&wb->st->active, 1, memory_order_relaxed);
	upstream_slot_freed(wb->wp);
}

static void count_status(struct client *c, int status)
{
	int cls = status / 100;

	c->rq->status = status;
	counter_add(&c->w->st.responses[(cls >= 1 && cls <= 5) ? cls : 0], 1);
}

static void access_log(struct client *c, uint64_t end_us)
{
	struct creq *rq = c->rq;
	struct accesslog_entry e;
	const char *base = c->in.data;
	int i;

	if (c->w->alog == NULL || base == NULL)
		return;
	memset(&e, 0, sizeof(e));
	e.wall_ms = rq->t_start_wall_ms;
	e.client_ip = c->peer;
	e.method = base + rq->req.method_s.off;
	e.method_len = rq->req.method_s.len;
	e.target = base + rq->req.target.off;
	e.target_len = rq->req.target.len;
	e.version_minor = rq->req.version_minor;
	e.status = rq->status;
	e.bytes_sent = rq->bytes_out;
	e.bytes_received = rq->bytes_in;
	if (rq->req.host_idx >= 0) {
		e.host = base + rq->req.headers[rq->req.host_idx].value.off;
		e.host_len = rq->req.headers[rq->req.host_idx].value.len;
	}
	if ((i = http_msg_find(&rq->req, base, "referer", 0)) >= 0) {
		e.referer = base + rq->req.headers[i].value.off;
		e.referer_len = rq->req.headers[i].value.len;
	}
	if ((i = http_msg_find(&rq->req, base, "user-agent", 0)) >= 0) {
		e.user_agent = base + rq->req.headers[i].value.off;
		e.user_agent_len = rq->req.headers[i].value.len;
	}
	e.route = rq->route ? rq->route->name : NULL;
	e.pool = rq->wp ? rq->wp->cfg->name : NULL;
	e.backend = rq->wb ? rq->wb->b->name : NULL;
	e.total_ms = (double)(end_us - rq->t_start_us) / 1000.0;
	e.upstream_ms = rq->upstream_ms;
	e.retries = rq->retries;
	accesslog_write(c->w->alog, &e);
}

/* --- idempotency at the edge ----------------------------------------------- */

static struct idem_store *store(struct client *c)
{
	return c->w->proxy->idem;
}

/* Leaves the idempotency protocol: a first request that did not complete
 * gives its key up (a repeat may then go through), a waiter withdraws. */
static void idem_end(struct client *c)
{
	struct creq *rq = c->rq;
	struct worker *w = c->w;

	/* Waiting, being woken and owning all start with a key: a request
	 * without one takes no lock here. */
	if (rq->idem_key == NULL)
		return;
	if (rq->idem_waiting) {
		idem_cancel(store(c), &rq->idem_waiter);
		rq->idem_waiting = 0;
	}
	pthread_mutex_lock(&w->woken_lock);
	if (rq->idem_woken) {
		struct client **pp = &w->woken;

		while (*pp && *pp != c)
			pp = &(*pp)->rq->wnext;
		if (*pp)
			*pp = rq->wnext;
		rq->idem_woken = 0;
	}
	pthread_mutex_unlock(&w->woken_lock);
	if (rq->idem_owner) {
		idem_abort(store(c), rq->idem_key, rq->idem_klen);
		rq->idem_owner = 0;
	}
	free(rq->idem_key);
	rq->idem_key = NULL;
	buf_fini(&rq->idem_head);
	buf_fini(&rq->idem_body);
	rq->idem_too_big = 0;
}

/* Runs on whichever thread completed the first request, under a store
 * lock: hand the session to its own worker. */
static void on_idem_woken(struct idem_waiter *wt)
{
	struct client *c = wt->ud;
	struct worker *w = c->w;

	pthread_mutex_lock(&w->woken_lock);
	c->rq->wnext = w->woken;
	w->woken = c;
	c->rq->idem_woken = 1;
	pthread_mutex_unlock(&w->woken_lock);
	uv_async_send(&w->wake);
}

static void error_write_cb(uv_write_t *wr, int status);

/* Answers with a stored response. */
static void idem_replay(struct client *c, struct idem_response *r)
{
	uv_buf_t b[2];
	int close = !c->rq->req_body_done || !c->rq->req.keep_alive || c->w->stopping;

	if (!close)
		c->in_pos = c->rq->req_end; /* the next request starts there */
	c->rq->idem_resp = r;
	client_read_stop(c);
	client_timer_off(c);
	buf_reset(&c->rq->out);
	buf_append(&c->rq->out, r->head, r->head_len);
	buf_appends(&c->rq->out, "Idempotent-Replay: true\r\n");
	if (close)
		buf_appends(&c->rq->out, "Connection: close\r\n");
	buf_appends(&c->rq->out, "\r\n");
	c->close_after = close;
	c->state = C_ERROR;
	count_status(c, r->status);
	c->rq->bytes_out += c->rq->out.len + r->body_len;
	request_end(c);
	b[0] = uv_buf_init(c->rq->out.data, (unsigned)c->rq->out.len);
	b[1] = uv_buf_init(r->body, (unsigned)r->body_len);
	c->rq->write.data = c;
	c->writing = 1;
	if (uv_write(&c->rq->write, (uv_stream_t *)&c->tcp, b, r->body_len ? 2 : 1,
		     error_write_cb) != 0) {
		c->writing = 0;
		client_close(c);
		return;
	}
	/* As for an error answer: a bounded time to take the replay. */
	client_timer(c, tmo(c)->client_body_ms);
}

static void reply_error(struct client *c, int status, const char *detail,
			int close);

/*
 * The idempotency step of a request. Returns 0 when the request goes on
 * to a backend (no key, or this is the first with its key), 1 when it was
 * answered or parked.
 */
static int idem_step(struct client *c)
{
	struct creq *rq = c->rq;
	const struct cfg_idempotency *ic;
	struct idem_response *resp = NULL;
	enum idem_result r;

	if (rq->idem_key == NULL) {
		const char *base = c->in.data;
		int i, listed;

		if (rq->route == NULL || !rq->route->idempotency.enabled)
			return 0;
		ic = &rq->route->idempotency;
		listed = method_listed(ic->methods, ic->nmethods, rq->req.method);
		i = http_msg_find(&rq->req, base, "idempotency-key", 0);
		if (!listed || i < 0 || rq->req.headers[i].value.len == 0)
			return 0;
		if (rq->req.headers[i].value.len > 255) {
			reply_error(c, 400, "the Idempotency-Key is longer than 255 "
					    "characters",
				    1);
			return 1;
		}
		{
			size_t rl = strlen(rq->route->name);
			size_t vl = rq->req.headers[i].value.len;
			struct buf fp;

			rq->idem_klen = rl + 1 + vl;
			rq->idem_key = malloc(rq->idem_klen + 1);
			SK_ASSERT(rq->idem_key != NULL);
			memcpy(rq->idem_key, rq->route->name, rl);
			rq->idem_key[rl] = '\n';
			memcpy(rq->idem_key + rl + 1, base + rq->req.headers[i].value.off,
			       vl);
			rq->idem_key[rq->idem_klen] = '\0';
			/* The same key must come with the same request:
			 * method and target (the body is not compared). */
			buf_init(&fp);
			buf_append(&fp, base + rq->req.method_s.off,
				   rq->req.method_s.len);
			buf_appendc(&fp, ' ');
			buf_append(&fp, base + rq->req.target.off, rq->req.target.len);
			rq->idem_fp = balance_hash(fp.data, fp.len);
			buf_fini(&fp);
		}
	}
	ic = &rq->route->idempotency;
	rq->idem_waiter.cb = on_idem_woken;
	rq->idem_waiter.ud = c;
	r = idem_begin(store(c), rq->idem_key, rq->idem_klen, rq->idem_fp,
		       ic->ttl_ms, clock_mono_ms(),
		       ic->on_inflight == 0 ? &rq->idem_waiter : NULL, &resp);
	switch (r) {
	case IDEM_NEW:
		rq->idem_owner = 1;
		return 0;
	case IDEM_DONE:
		log_info("idempotent replay", "route=%s status=%d",
			 rq->route->name, resp->status);
		idem_replay(c, resp);
		return 1;
	case IDEM_PENDING:
		if (ic->on_inflight != 0) {
			reply_error(c, 409, "a request with this Idempotency-Key is "
					    "in progress",
				    0);
			return 1;
		}
		rq->idem_waiting = 1;
		c->state = C_IDEMWAIT;
		client_timer(c, ic->wait_ms);
		return 1;
	case IDEM_MISMATCH:
		reply_error(c, 422, "this Idempotency-Key was used for a "
				    "different request",
			    0);
		return 1;
	}
	return 0;
}

/* Everything that ends a request, whatever way it ends. */
static void request_end(struct client *c)
{
	struct worker *w = c->w;
	struct creq *rq = c->rq;
	uint64_t end_us = 0;
	int metrics_on;

	if (rq == NULL || !rq->in_flight)
		return;
	rq->in_flight = 0;
	atomic_fetch_sub_explicit(&w->st.in_flight, 1, memory_order_relaxed);
	c->req_deadline = 0;
	/* The clock is read only for what needs it (see process_head()). */
	metrics_on = rq->view && rq->view->rt->request_metrics;
	if (metrics_on || w->alog)
		end_us = now_us();
	if (metrics_on && rq->status) {
		const struct runtime *rt = rq->view->rt;
		const struct rmetrics *m =
			&rt->route_m[rq->route ? (size_t)(rq->route - rt->cfg->routes)
					       : 0];
		int cls = rq->status / 100;

		metrics_counter_add(w->proxy->metrics, (unsigned)w->id,
				    m->responses[(cls >= 1 && cls <= 5) ? cls : 0], 1);
		metrics_hist_record(w->proxy->metrics, (unsigned)w->id, m->duration,
				    end_us - rq->t_start_us);
	}
	if (c->state == C_QUEUED && rq->wp)
		queue_remove(rq->wp, c);
	idem_end(c);
	access_log(c, end_us);
	release_active(c);
	if (rq->view) {
		wview_unref(rq->view);
		rq->view = NULL;
	}
	rq->wp = NULL;
	rq->wb = NULL;
	rq->route = NULL;
}

static void client_close(struct client *c)
{
	struct worker *w = c->w;

	if (c->state == C_CLOSED)
		return;
	if (c->rq && c->rq->bc) {
		c->rq->bc->c = NULL;
		upstream_close(c->rq->bc);
		c->rq->bc = NULL;
	}
	request_end(c);
	if (c->rq && c->rq->idem_resp && !c->writing) {
		idem_response_unref(c->rq->idem_resp);
		c->rq->idem_resp = NULL;
	}
	c->state = C_CLOSED;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nclients--;
	atomic_fetch_sub_explicit(&w->st.connections, 1, memory_order_relaxed);
	theap_del(c);
	uv_close((uv_handle_t *)&c->tcp, client_free_cb);
	if (w->stopping && w->nclients == 0)
		uv_async_send(&w->wake);
}

/* --- writing ------------------------------------------------------------ */

/*
 * Writes bufs to s: first straight to the socket (uv_try_write), then what
 * the socket did not take with uv_write(wr, ..., cb). Returns 1 when all
 * of it went (cb is not called: the caller does the completion work
 * itself), 0 when a write is pending (cb will be called), or a negative
 * errno (cb is not called). Consumes bufs.
 *
 * A write that completes at once costs one syscall; through uv_write it
 * would also cost two epoll_ctl calls (libuv arms POLLOUT for the
 * completion and disarms it after), the most of a request's syscalls.
 *
 * last: these are the connection's final bytes; the caller closes it
 * once they are taken. They go with MSG_MORE, which holds them in the
 * kernel for a moment, and the shutdown(SHUT_WR) right after appends the
 * FIN and pushes: the end of the response and the FIN leave as one
 * segment instead of two, and the peer acknowledges both with its own
 * FIN (new connection per request: 9 segments per connection instead of
 * 10). Nothing is left held back: either all of it went and the
 * shutdown pushed it, or the rest goes through uv_write, which pushes.
 * Only when libuv has nothing queued (it would be the writer then).
 */
static int send_bufs(uv_stream_t *s, uv_write_t *wr, uv_buf_t *bufs,
		     unsigned nb, uv_write_cb cb, int last)
{
	int r;
	size_t n;

	if (last && s->write_queue_size == 0) {
		struct msghdr mh = { .msg_iov = (struct iovec *)bufs,
				     .msg_iovlen = nb };
		uv_os_fd_t fd;
		ssize_t sent;

		if (uv_fileno((uv_handle_t *)s, &fd) != 0)
			return UV_EBADF;
		do
			sent = sendmsg(fd, &mh,
				       MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT);
		while (sent < 0 && errno == EINTR);
		if (sent < 0) {
			r = errno == EAGAIN || errno == EWOULDBLOCK ? UV_EAGAIN
								   : -errno;
		} else {
			r = (int)sent;
			for (n = 0; n < nb; n++)
				sent -= (ssize_t)bufs[n].len;
			if (sent == 0)
				(void)shutdown(fd, SHUT_WR);
		}
	} else {
		r = uv_try_write(s, bufs, nb);
	}

	if (r == UV_EAGAIN)
		r = 0;
	else if (r < 0)
		return r;
	n = (size_t)r;
	while (nb > 0 && n >= bufs[0].len) {
		n -= bufs[0].len;
		bufs++;
		nb--;
	}
	if (nb == 0)
		return 1;
	bufs[0].base += n;
	bufs[0].len -= n;
	r = uv_write(wr, s, bufs, nb, cb);
	return r < 0 ? r : 0;
}

/* --- writing to the client ---------------------------------------------- */

static void error_write_cb(uv_write_t *wr, int status)
{
	struct client *c = wr->data;

	c->writing = 0;
	if (c->rq->idem_resp) {
		idem_response_unref(c->rq->idem_resp);
		c->rq->idem_resp = NULL;
	}
	if (c->state == C_CLOSED)
		return;
	if (status < 0 || c->close_after) {
		client_close(c);
		return;
	}
	client_next_request(c);
}

/*
 * Answers the current request locally (a parse error, 404, 502/503/504).
 * When part of the response already went out, all we can do is cut the
 * connection so the client sees a truncated message, not a wrong one.
 * retry_after > 0 adds a Retry-After header.
 */
static void reply_error_ra(struct client *c, int status, const char *detail,
			   int close, int retry_after)
{
	uv_buf_t b;

	if (c->rq->resp_head_sent || c->writing) {
		client_close(c);
		return;
	}
	if (c->rq->bc) {
		c->rq->bc->c = NULL;
		upstream_close(c->rq->bc);
		c->rq->bc = NULL;
	}
	if (c->state == C_QUEUED && c->rq->wp)
		queue_remove(c->rq->wp, c);
	client_read_stop(c);
	client_timer_off(c);
	/* Without the whole request body read, we cannot tell where the next
	 * request would start: close after answering. */
	if (!c->rq->req_body_done || !c->rq->req.keep_alive || c->w->stopping)
		close = 1;
	else
		c->in_pos = c->rq->req_end; /* the next request starts there */
	c->close_after = close;
	c->state = C_ERROR;
	buf_reset(&c->rq->out);
	http_error_response(&c->rq->out, status, detail, close);
	if (retry_after > 0) {
		char ra[40];
		char *end = memmem(c->rq->out.data, c->rq->out.len, "\r\n\r\n", 4);
		size_t at = end ? (size_t)(end - c->rq->out.data) + 2 : 0;
		int n = snprintf(ra, sizeof(ra), "Retry-After: %d\r\n", retry_after);

		if (end) {
			buf_reserve(&c->rq->out, (size_t)n);
			memmove(c->rq->out.data + at + n, c->rq->out.data + at,
				c->rq->out.len - at);
			memcpy(c->rq->out.data + at, ra, (size_t)n);
			c->rq->out.len += (size_t)n;
		}
	}
	count_status(c, status);
	c->rq->bytes_out += c->rq->out.len;
	request_end(c);
	b = uv_buf_init(c->rq->out.data, (unsigned)c->rq->out.len);
	c->rq->write.data = c;
	c->writing = 1;
	if (uv_write(&c->rq->write, (uv_stream_t *)&c->tcp, &b, 1,
		     error_write_cb) != 0) {
		c->writing = 0;
		client_close(c);
		return;
	}
	/* Give the client a bounded time to take the answer. */
	client_timer(c, tmo(c)->client_body_ms);
}

static void reply_error(struct client *c, int status, const char *detail,
			int close)
{
	reply_error_ra(c, status, detail, close, 0);
}

/* --- retry policy ----------------------------------------------------------- */

static int method_retryable(struct client *c)
{
	const struct cfg_retry *r = c->rq->route ? &c->rq->route->retry : NULL;

	/* No routes: the default policy, the idempotent methods. */
	return r ? method_listed(r->methods, r->nmethods, c->rq->req.method)
		 : method_idempotent(c->rq->req.method);
}

static uint32_t retry_attempts(struct client *c)
{
	return c->rq->route ? c->rq->route->retry.attempts : 2;
}

static void budget_roll(struct worker *w, const struct cfg_retry_budget *rb)
{
	struct budget *b = &w->budget;
	uint64_t now = uv_now(&w->loop);

	if (now - b->window_start_ms < rb->window_ms)
		return;
	if (now - b->window_start_ms < 2 * (uint64_t)rb->window_ms) {
		b->req_prev = b->req_cur;
		b->retry_prev = b->retry_cur;
	} else {
		b->req_prev = b->retry_prev = 0;
	}
	b->req_cur = b->retry_cur = 0;
	b->window_start_ms = now;
}

/* Takes one retry from the budget; 0 when it is spent. */
static int budget_take(struct client *c)
{
	const struct cfg_retry_budget *rb = &ccfg(c)->retry_budget;
	struct budget *b = &c->w->budget;
	uint64_t allowed;

	budget_roll(c->w, rb);
	allowed = (uint64_t)(b->req_cur + b->req_prev) * rb->percent / 100;
	if (allowed < rb->min_retries)
		allowed = rb->min_retries;
	if ((uint64_t)b->retry_cur + b->retry_prev >= allowed) {
		counter_add(&c->w->st.retries_denied, 1);
		return 0;
	}
	b->retry_cur++;
	return 1;
}

/* May this request go again to another backend? reached: some of it may
 * have been acted on by the backend that failed. */
static int may_retry(struct client *c, int reached)
{
	if (c->rq->retries >= retry_attempts(c))
		return 0;
	if (reached && (!method_retryable(c) || !c->rq->replayable))
		return 0;
	return budget_take(c);
}

/* The request body's framing from its head: nothing of it taken yet. */
static void req_body_start(struct client *c)
{
	switch (c->rq->req.body) {
	case HTTP_BODY_LENGTH:
		c->rq->req_left = c->rq->req.content_length;
		c->rq->req_body_done = c->rq->req_left == 0;
		break;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&c->rq->req_chunked, 0);
		c->rq->req_left = 0;
		c->rq->req_body_done = 0;
		break;
	default:
		c->rq->req_body_done = 1;
		break;
	}
}

/* Rewinds the request so it can be sent again from its first byte. */
static void rewind_request(struct client *c)
{
	c->in_pos = c->rq->req.head_len;
	c->rq->req_head_sent = 0;
	c->rq->bwrite_n = 0;
	req_body_start(c);
	c->rq->resp_head_ready = 0;
	c->rq->resp_body_done = 0;
	c->rq->sticky_set[0] = '\0';
}

/* wb failed this request: a retry goes elsewhere. */
static void mark_tried(struct client *c, struct wbackend *wb)
{
	if (wb && c->rq->ntried < sizeof(c->rq->tried) / sizeof(c->rq->tried[0]))
		c->rq->tried[c->rq->ntried++] = wb;
}

static void retry(struct client *c)
{
	c->rq->retries++;
	counter_add(&c->w->st.retries, 1);
	if (c->rq->wb)
		counter_add(&c->rq->wb->st->retries, 1);
	rewind_request(c);
	dispatch(c);
}

/* --- the request head --------------------------------------------------- */

/* Builds the head the backend gets: hop-by-hop fields removed, and
 * X-Forwarded-For, X-Forwarded-Proto and Via added. */
static void build_request_head(struct client *c)
{
	struct http_msg *m = &c->rq->req;
	const char *base = c->in.data;
	struct buf *o = &c->rq->reqhead;

	for (uint32_t i = 0; i < m->nheaders; i++) {
		struct http_header *h = &m->headers[i];

		if (http_span_ieq(base, h->name, "x-forwarded-for") ||
		    http_span_ieq(base, h->name, "x-forwarded-proto"))
			h->flags |= HDR_SKIP;
	}
	buf_reset(o);
	http_serialize_head(o, m, base, HTTP_HDR_HOP | HDR_SKIP);
	if (m->host_idx < 0) {
		/* HTTP/1.0 without Host: the backend speaks 1.1 and needs
		 * one. */
		http_serialize_header(o, "Host", c->rq->wb->b->addr.text);
	}
	buf_appends(o, "X-Forwarded-For: ");
	for (uint32_t i = 0; i < m->nheaders; i++) {
		struct http_header *h = &m->headers[i];

		if (!http_span_ieq(base, h->name, "x-forwarded-for") ||
		    h->value.len == 0)
			continue;
		buf_append(o, base + h->value.off, h->value.len);
		buf_appends(o, ", ");
	}
	buf_appends(o, c->peer);
	buf_appends(o, "\r\nX-Forwarded-Proto: http\r\nVia: 1.1 storekeep\r\n\r\n");
}

static void req_timeout(struct client *c);

/* c's due time came (it is off the heap). */
static void client_timeout(struct client *c)
{
	uint64_t now = uv_now(&c->w->loop);

	if (c->req_deadline && now >= c->req_deadline) {
		c->req_deadline = 0;
		req_timeout(c);
		timer_arm(c);
		return;
	}
	if (c->deadline == 0 || now < c->deadline) {
		timer_arm(c);
		return;
	}
	c->deadline = 0;
	switch (c->state) {
	case C_IDLE:
		client_close(c);
		break;
	case C_HEAD:
		if (c->in.len == 0) {
			client_close(c);
			break;
		}
		log_info("client header timeout", "peer=%s", peer_log(c));
		reply_error(c, 408, "the request head did not arrive in time", 1);
		break;
	case C_IDEMWAIT:
		log_info("idempotency wait timeout", "peer=%s route=%s", peer_log(c),
			 c->rq->route->name);
		reply_error(c, 409, "the first request with this Idempotency-Key "
				    "is still in progress",
			    0);
		break;
	case C_QUEUED:
		log_info("queue timeout", "peer=%s pool=%s", peer_log(c),
			 c->rq->wp->cfg->name);
		reply_error_ra(c, 503, "every backend is busy; try again shortly",
			       0, 1);
		break;
	case C_UPSTREAM:
		/* The client stopped sending its body. */
		log_info("client body timeout", "peer=%s", peer_log(c));
		reply_error(c, 408, "the request body did not arrive in time", 1);
		break;
	case C_ERROR:
	case C_CLOSED:
		client_close(c);
		break;
	}
}

/* The whole request took longer than timeouts.request. */
static void req_timeout(struct client *c)
{
	if (c->state != C_UPSTREAM && c->state != C_QUEUED &&
	    c->state != C_IDEMWAIT)
		return;
	log_info("request timeout", "peer=%s backend=%s", peer_log(c),
		 c->rq->wb ? c->rq->wb->b->name : "-");
	if (c->rq->wb && c->rq->bc)
		backend_failure(c->rq->wb->b, c->rq->wp->cfg, clock_mono_ms());
	reply_error(c, 504, "the request took too long", 1);
}

static void process_head(struct client *c)
{
	struct worker *w = c->w;
	const struct config *cfg;
	int r, none;

	r = http_parse(&c->rq->parser, c->in.data, c->in.len);
	if (r == HTTP_PARSE_AGAIN) {
		client_read_start(c);
		return;
	}
	/* Start times serve the access log and the duration histogram
	 * only: without either, no clock is read. */
	if (w->alog || w->view->rt->request_metrics)
		c->rq->t_start_us = now_us();
	if (w->alog)
		c->rq->t_start_wall_ms = clock_wall_ms();
	c->rq->in_flight = 1;
	atomic_fetch_add_explicit(&w->st.in_flight, 1, memory_order_relaxed);
	counter_add(&w->st.requests, 1);
	budget_roll(w, &w->view->rt->cfg->retry_budget);
	w->budget.req_cur++;
	c->rq->upstream_ms = -1;
	if (r == HTTP_PARSE_ERROR) {
		char q[128];

		log_info("bad request", "peer=%s status=%d reason=%s", peer_log(c),
			 c->rq->parser.status,
			 log_q(q, sizeof(q), c->rq->parser.reason));
		c->rq->req_body_done = 0;
		c->rq->bytes_in = c->in.len;
		reply_error(c, c->rq->parser.status, c->rq->parser.reason, 1);
		return;
	}

	/* A complete head: it runs on the config in force now. */
	c->rq->view = w->view;
	c->rq->view->refs++;
	cfg = c->rq->view->rt->cfg;
	c->state = C_UPSTREAM;
	c->in_pos = c->rq->req.head_len;
	c->rq->req_end = c->rq->req.head_len;
	c->rq->bytes_in = c->rq->req.head_len;
	client_timer_off(c);

	req_body_start(c);
	c->rq->replayable = 1;
	/* Reading stays on: body bytes are forwarded as they come, pipelined
	 * requests wait in c->in (bounded by CLIENT_AHEAD) until this one is
	 * answered, and a client that goes away aborts its request. */
	if (c->rq->req.body == HTTP_BODY_LENGTH &&
	    c->rq->req.content_length > cfg->limits.body_bytes) {
		reply_error(c, 413, "the request body is too large", 1);
		return;
	}
	c->rq->route = route_match(cfg, &c->rq->req, c->in.data, &none);
	if (none) {
		reply_error(c, 404, "no route for this host and path", 0);
		return;
	}
	c->rq->wp = &c->rq->view->pools[c->rq->route ? c->rq->route->pool_index : 0];
	c->req_deadline = uv_now(&w->loop) + request_ms(c);
	timer_arm(c);
	if (idem_step(c))
		return;
	dispatch(c);
}

void session_idem_woken(struct worker *w)
{
	struct client *list, *c;

	pthread_mutex_lock(&w->woken_lock);
	list = w->woken;
	w->woken = NULL;
	for (c = list; c; c = c->rq->wnext)
		c->rq->idem_woken = 0;
	pthread_mutex_unlock(&w->woken_lock);
	while ((c = list) != NULL) {
		list = c->rq->wnext;
		c->rq->wnext = NULL;
		if (c->state != C_IDEMWAIT)
			continue;
		c->rq->idem_waiting = 0;
		client_timer_off(c);
		c->state = C_UPSTREAM;
		if (idem_step(c) == 0)
			dispatch(c);
	}
}

/* --- choosing and reaching a backend ------------------------------------ */

static void start_exchange(struct client *c);

static void dispatch(struct client *c)
{
	struct worker *w = c->w;
	struct wpool *wp = c->rq->wp;
	struct wbackend *wb;
	struct bconn *bc;
	int full;

	release_active(c);
	for (;;) {
		wb = upstream_pick(wp, c, &full);
		if (wb == NULL && full) {
			if (wp->qlen >= wp->cfg->queue_size) {
				log_info("queue full", "pool=%s", wp->cfg->name);
				reply_error_ra(c, 503,
					       "every backend is busy; try again "
					       "shortly",
					       0, 1);
				return;
			}
			c->state = C_QUEUED;
			c->rq->qnext = NULL;
			if (wp->qtail)
				wp->qtail->rq->qnext = c;
			else
				wp->qhead = c;
			wp->qtail = c;
			wp->qlen++;
			atomic_fetch_add_explicit(&w->st.queued, 1,
						  memory_order_relaxed);
			client_timer(c, wp->cfg->queue_timeout_ms);
			return;
		}
		if (wb == NULL) {
			reply_error(c, c->rq->attempts ? 502 : 503,
				    c->rq->attempts ? "no backend could be reached"
						: "no backend is available",
				    0);
			return;
		}
		c->rq->wb = wb;
		c->rq->counted_active = 1;
		atomic_fetch_add_explicit(&wb->st->active, 1, memory_order_relaxed);
		c->rq->attempts++;
		counter_add(&wb->st->requests, 1);
		/* A request that must not be sent twice gets a fresh
		 * connection: an idle one may be closing under us, and then
		 * we could not tell whether the backend acted on it. */
		bc = upstream_get(w, wb, connect_ms(c),
				    method_idempotent(c->rq->req.method));
		if (bc != NULL)
			break;
		counter_add(&wb->st->failures, 1);
		release_active(c);
		mark_tried(c, wb);
		if (c->rq->attempts > wp->n) {
			reply_error(c, 502, "no backend could be reached", 0);
			return;
		}
	}
	c->state = C_UPSTREAM;
	c->rq->bc = bc;
	bc->c = c;
	if (bc->connected)
		start_exchange(c);
	/* else session_on_connect() continues. */
}

void session_dequeued(struct client *c)
{
	client_timer_off(c);
	c->state = C_UPSTREAM;
	dispatch(c);
}

void session_on_connect(struct bconn *bc, int status)
{
	struct client *c = bc->c;

	if (c == NULL) {
		upstream_close(bc);
		return;
	}
	if (status < 0) {
		backend_failed(c, status, status == -ETIMEDOUT);
		return;
	}
	start_exchange(c);
}

/*
 * Reading from a backend stops while the client is slower than it. The
 * backend is not idle then, so its response deadline (an idle gap of the
 * backend's) stops too; the client is bounded by timeouts.request. It
 * runs again from the moment reading resumes.
 */
static void backend_pause(struct bconn *bc)
{
	bc->paused = 1;
	bconn_deadline_off(bc);
}

static uint32_t response_ms(struct client *c);
static void backend_read_start(struct bconn *bc);

static void backend_resume(struct client *c, struct bconn *bc)
{
	if (!bc->paused)
		return;
	bc->paused = 0;
	if (bc->eof)
		return; /* nothing more to read or wait for */
	bconn_deadline(bc, response_ms(c));
	backend_read_start(bc);
}

static void backend_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *out)
{
	struct bconn *bc = h->data;

	(void)sz;
	out->base = NULL;
	out->len = 0;
	if (bc->c == NULL) {
		/* Idle: nothing is expected, and whatever comes closes the
		 * connection, so a scratch buffer will do. */
		static __thread char scratch[64];

		out->base = scratch;
		out->len = sizeof(scratch);
		return;
	}
	if (bc->in.len - bc->in_pos >= 4 * READ_CHUNK) {
		backend_pause(bc); /* the client reads slower than the backend */
		return;
	}
	if (bc->in.data == NULL)
		worker_buf_get(bc->w, &bc->in);
	if (bc->in.cap - bc->in.len < MIN_READ + 1) {
		if (bc->c->writing) {
			backend_pause(bc); /* in.data is in the client write */
			return;
		}
		if (buf_reserve(&bc->in, READ_CHUNK) != 0)
			return;
	}
	out->base = bc->in.data + bc->in.len;
	out->len = bc->in.cap - bc->in.len - 1;
}

static void backend_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void backend_read_start(struct bconn *bc)
{
	if (!bc->reading &&
	    uv_read_start((uv_stream_t *)&bc->tcp, backend_alloc_cb,
			  backend_read_cb) == 0)
		bc->reading = 1;
}

static void backend_read_stop(struct bconn *bc)
{
	if (bc->reading) {
		uv_read_stop((uv_stream_t *)&bc->tcp);
		bc->reading = 0;
	}
}

void session_backend_timeout(struct bconn *bc)
{
	if (bc->c)
		backend_failed(bc->c, -ETIMEDOUT, 1);
}

static void backend_timer(struct bconn *bc, uint64_t ms)
{
	bconn_deadline(bc, ms);
}

/* Whether the backend's response time is wanted: by the p2c_ewma
 * balancer's latency estimate, or for the access log. Otherwise the
 * clock is not read for it. */
static int backend_timed(struct client *c)
{
	return c->rq->wp->cfg->balance == CFG_BALANCE_P2C_EWMA ||
	       c->w->alog != NULL;
}

static void start_exchange(struct client *c)
{
	struct bconn *bc = c->rq->bc;

	build_request_head(c);
	c->rq->req_head_sent = 0;
	c->rq->bwrite_n = 0;
	if (backend_timed(c))
		c->rq->t_backend_us = now_us();
	bc->got_bytes = 0;
	bc->eof = 0;
	buf_reset(&bc->in);
	bc->in_pos = 0;
	http_parser_init(&bc->parser, 0, c->rq->req.method, &bc->msg, bc->hdrs,
			 c->w->limits.max_headers, &c->w->limits);
	backend_read_start(bc);
	backend_timer(bc, response_ms(c));
	pump_req(c);
}

/*
 * A backend failed this request before its response began (or timed out).
 * Retry elsewhere when the policy allows it; otherwise answer 502/504.
 */
static void backend_failed(struct client *c, int err, int timeout)
{
	struct bconn *bc = c->rq->bc;
	struct wbackend *wb = c->rq->wb;
	int connected = bc && bc->connected;
	int reached, stale;

	if (wb) {
		counter_add(&wb->st->failures, 1);
		backend_failure(wb->b, c->rq->wp->cfg, clock_mono_ms());
	}
	log_warn("backend failed", "backend=%s err=%s connected=%d",
		 wb ? wb->b->name : "-", uv_err_name(err), connected);
	/* Once response bytes are on their way to the client (sent, or
	 * queued in a write that still points into bc->in), the request
	 * cannot be retried or answered anew: close. */
	if (c->rq->resp_head_sent || c->writing) {
		client_close(c);
		return;
	}
	/* A stale keep-alive connection that the backend closed before
	 * reading our request: nothing was acted upon, and the backend is
	 * not at fault, so a fresh connection to it is fine. */
	stale = connected && bc && bc->reused && !bc->got_bytes && !timeout &&
		c->rq->req.body == HTTP_BODY_NONE && method_retryable(c);
	reached = connected && !stale;
	if (!stale)
		mark_tried(c, wb);
	if (bc) {
		bc->c = NULL;
		upstream_close(bc);
		c->rq->bc = NULL;
	}
	if ((stale || upstream_untried(c->rq->wp, c) > 0) && may_retry(c, reached)) {
		retry(c);
		return;
	}
	if (timeout && connected)
		reply_error(c, 504, "the backend did not answer in time", 0);
	else if (!connected)
		reply_error(c, 502, "no backend could be reached", 0);
	else
		reply_error(c, 502, "the backend failed to answer", 0);
}

/* --- request body: client -> backend ------------------------------------ */

/* A write to the backend completed (at once or in backend_write_cb). */
static void backend_wrote(struct client *c)
{
	c->rq->req_head_sent = 1;
	c->in_pos += c->rq->bwrite_n;
	c->rq->bwrite_n = 0;
	client_resume(c);
	if (c->in_pos == c->in.len && c->in.len > c->rq->req.head_len &&
	    (!c->rq->replayable || c->in.len - c->rq->req.head_len > REPLAY_MAX)) {
		/* Forwarded body bytes are done with: keep only the head. */
		c->rq->replayable = 0;
		c->in.len = c->rq->req.head_len;
		c->in_pos = c->rq->req.head_len;
		if (c->rq->req_body_done)
			c->rq->req_end = c->rq->req.head_len;
	}
}

static void backend_write_cb(uv_write_t *wr, int status)
{
	struct bconn *bc = wr->data;
	struct client *c = bc->c;

	bc->writing = 0;
	if (c == NULL) {
		upstream_close(bc);
		return;
	}
	if (status < 0) {
		backend_failed(c, status, 0);
		return;
	}
	backend_wrote(c);
	pump_req(c);
}

/* How many of the n bytes at p belong to the request body; marks the end
 * of the body. Returns -1 on a malformed chunked body, -2 over the limit. */
static ssize_t req_body_take(struct client *c, const char *p, size_t n)
{
	if (c->rq->req.body == HTTP_BODY_LENGTH) {
		size_t k = n < c->rq->req_left ? n : (size_t)c->rq->req_left;

		c->rq->req_left -= k;
		if (c->rq->req_left == 0) {
			c->rq->req_body_done = 1;
			c->rq->req_end = (size_t)(p - c->in.data) + k;
		}
		return (ssize_t)k;
	}
	{
		ssize_t k = http_chunked_feed(&c->rq->req_chunked, p, n, NULL, NULL);

		if (k < 0)
			return -1;
		c->rq->req_left += (uint64_t)k;
		if (c->rq->req_left > ccfg(c)->limits.body_bytes)
			return -2;
		if (c->rq->req_chunked.done) {
			c->rq->req_body_done = 1;
			c->rq->req_end = (size_t)(p - c->in.data) + (size_t)k;
		}
		return k;
	}
}

/* Sends what can go to the backend now: the head, then body bytes as
 * they arrive. Loops while writes complete at once. */
static void pump_req(struct client *c)
{
	struct bconn *bc = c->rq->bc;
	uv_buf_t bufs[2];
	unsigned nb;
	size_t avail;
	ssize_t k;
	int r;

	for (;;) {
		nb = 0;
		k = 0;
		/* Before the exchange starts (still connecting), body bytes
		 * wait in c->in: start_exchange() sends the head first. */
		if (bc == NULL || !bc->connected || bc->writing ||
		    c->state != C_UPSTREAM)
			return;
		if (c->rq->resp_head_ready && !c->rq->req_body_done)
			return; /* answered early: the rest is not sent */
		avail = c->in.len - c->in_pos;
		if (!c->rq->req_body_done && avail > 0) {
			k = req_body_take(c, c->in.data + c->in_pos, avail);
			if (k == -1) {
				log_info("bad chunked request body",
					 "peer=%s reason=%s", peer_log(c),
					 c->rq->req_chunked.reason);
				reply_error(c, 400, c->rq->req_chunked.reason, 1);
				return;
			}
			if (k == -2) {
				reply_error(c, 413,
					    "the request body is too large", 1);
				return;
			}
		}
		if (!c->rq->req_head_sent)
			bufs[nb++] = uv_buf_init(c->rq->reqhead.data,
						 (unsigned)c->rq->reqhead.len);
		if (k > 0)
			bufs[nb++] = uv_buf_init(c->in.data + c->in_pos,
						 (unsigned)k);
		if (nb == 0) {
			if (!c->rq->req_body_done) {
				client_resume(c);
				client_timer(c, tmo(c)->client_body_ms);
			} else {
				client_timer_off(c);
			}
			return;
		}
		c->rq->bwrite_n = (size_t)k;
		bc->write.data = bc;
		bc->writing = 1;
		/* From here a stall is the backend's: its timer is running. */
		client_timer_off(c);
		r = send_bufs((uv_stream_t *)&bc->tcp, &bc->write, bufs, nb,
			      backend_write_cb, 0);
		if (r == 0)
			return; /* backend_write_cb() goes on */
		bc->writing = 0;
		if (r < 0) {
			backend_failed(c, r, 0);
			return;
		}
		backend_wrote(c);
	}
}

/* --- response: backend -> client ---------------------------------------- */

/* Whether the connection closes when the current response is done: the
 * one test for finish_request() and for pump_resp() sending the last
 * bytes with the FIN. */
static int ends_connection(const struct client *c)
{
	const struct bconn *bc = c->rq->bc;

	return c->close_after || !c->rq->req_body_done ||
	       !c->rq->req.keep_alive || c->w->stopping ||
	       (bc != NULL && bc->writing);
}

static void finish_request(struct client *c)
{
	struct bconn *bc = c->rq->bc;
	/* The backend answered before the end of the request body left:
	 * the rest is still queued on bc, pointing into c->in. Neither
	 * connection can go on (closing bc stops that write before its
	 * memory is reused; the client's unsent body would otherwise be
	 * read as its next request). */
	int body_queued = bc && bc->writing;
	int closing = ends_connection(c);
	int reusable;

	reusable = bc && bc->msg.keep_alive && c->rq->req_body_done &&
		   bc->msg.body != HTTP_BODY_EOF && bc->in_pos == bc->in.len &&
		   !c->w->stopping && !body_queued;
	if (bc) {
		bconn_deadline_off(bc);
		if (bc->paused) {
			bc->paused = 0;
			backend_read_start(bc);
		}
		bc->c = NULL;
		c->rq->bc = NULL;
		upstream_release(bc, reusable);
	}
	if (c->rq->idem_owner && !c->rq->idem_too_big) {
		idem_complete(store(c), c->rq->idem_key, c->rq->idem_klen, c->rq->status,
			      c->rq->idem_head.data, c->rq->idem_head.len,
			      c->rq->idem_body.data, c->rq->idem_body.len,
			      clock_mono_ms());
		c->rq->idem_owner = 0;
	}
	request_end(c);
	if (closing) {
		client_close(c);
		return;
	}
	client_next_request(c);
}

/* A write to the client completed (at once or in client_write_cb).
 * Returns 1 when pump_resp() is to go on, 0 when the request finished. */
static int client_wrote(struct client *c)
{
	struct bconn *bc = c->rq->bc;

	c->rq->resp_head_sent = 1;
	if (bc) {
		bc->in_pos += c->rq->cwrite_n;
		if (bc->in_pos == bc->in.len) {
			bc->in.len = 0;
			bc->in_pos = 0;
		}
		if (!c->rq->resp_body_done)
			backend_resume(c, bc);
	}
	c->rq->cwrite_n = 0;
	buf_reset(&c->rq->dechunk);
	if (c->rq->resp_body_done) {
		finish_request(c);
		return 0;
	}
	return 1;
}

static void client_write_cb(uv_write_t *wr, int status)
{
	struct client *c = wr->data;

	c->writing = 0;
	if (c->state == C_CLOSED)
		return;
	if (status < 0) {
		client_close(c);
		return;
	}
	if (client_wrote(c))
		pump_resp(c);
}

static void dechunk_cb(void *ud, const char *p, size_t n)
{
	buf_append(ud, p, n);
}

static int status_listed(const struct client *c, int status)
{
	if (c->rq->route == NULL)
		return 0;
	for (size_t i = 0; i < c->rq->route->retry.non_status; i++)
		if ((int)c->rq->route->retry.on_status[i].status == status)
			return 1;
	return 0;
}

static void on_response_head(struct client *c)
{
	struct bconn *bc = c->rq->bc;
	struct http_msg *m = &bc->msg;
	struct wbackend *wb = c->rq->wb;
	int client10 = c->rq->req.version_minor == 0;

	if (backend_timed(c)) {
		uint64_t now = now_us();
		double sample = (double)(now - c->rq->t_backend_us);

		c->rq->upstream_ms = sample / 1000.0;
		if (c->rq->wp->cfg->balance == CFG_BALANCE_P2C_EWMA) {
			balance_ewma_update(&wb->ewma_us, sample,
					    wb->ewma_at_us
						    ? (double)(now - wb->ewma_at_us)
						    : 0,
					    EWMA_TAU_US);
			wb->ewma_at_us = now;
		}
	}
	if (m->status >= 500) {
		counter_add(&wb->st->failures, 1);
		backend_failure(wb->b, c->rq->wp->cfg, clock_mono_ms());
		mark_tried(c, wb);
		if (status_listed(c, m->status) &&
		    upstream_untried(c->rq->wp, c) > 0 && may_retry(c, 1)) {
			log_info("retrying after status", "backend=%s status=%d",
				 wb->b->name, m->status);
			bc->c = NULL;
			upstream_close(bc);
			c->rq->bc = NULL;
			retry(c);
			return;
		}
	} else {
		backend_success(wb->b);
	}
	count_status(c, m->status);
	if (c->rq->idem_owner) {
		buf_reset(&c->rq->idem_head);
		http_serialize_head(&c->rq->idem_head, m, bc->in.data, HTTP_HDR_HOP);
	}
	buf_reset(&c->rq->out);
	c->rq->dechunking = 0;
	if (m->body == HTTP_BODY_EOF || !c->rq->req_body_done || !c->rq->req.keep_alive ||
	    c->w->stopping)
		c->close_after = 1;
	if (m->body == HTTP_BODY_CHUNKED && client10) {
		/* An HTTP/1.0 client does not know chunked: send the payload
		 * raw and end it by closing. */
		c->rq->dechunking = 1;
		c->close_after = 1;
	}
	http_serialize_head(&c->rq->out, m, bc->in.data,
			    HTTP_HDR_HOP | (c->rq->dechunking ? HTTP_HDR_FRAMING : 0));
	if (c->rq->sticky_set[0])
		buf_printf(&c->rq->out,
			   "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Lax\r\n",
			   c->rq->wp->cfg->sticky_cookie, c->rq->sticky_set);
	if (c->close_after)
		buf_appends(&c->rq->out, "Connection: close\r\n");
	else if (client10)
		buf_appends(&c->rq->out, "Connection: keep-alive\r\n");
	buf_appends(&c->rq->out, "\r\n");
	c->rq->bytes_out += c->rq->out.len;
	bc->in_pos = m->head_len;

	switch (m->body) {
	case HTTP_BODY_LENGTH:
		c->rq->resp_left = m->content_length;
		c->rq->resp_body_done = (c->rq->resp_left == 0);
		break;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&c->rq->resp_chunked, 0);
		c->rq->resp_body_done = 0;
		break;
	case HTTP_BODY_EOF:
		c->rq->resp_body_done = 0;
		break;
	default:
		c->rq->resp_body_done = 1;
		break;
	}
	if (!c->rq->req_body_done) {
		/* The backend answered before taking the whole body (e.g. a
		 * 413): stop forwarding; the connection closes afterwards. */
		client_read_stop(c);
		client_timer_off(c);
	}
	pump_resp(c);
}

/* Forwards what bc->in holds of the response body (with the head first if
 * it has not gone yet). Loops while writes complete at once. */
static void pump_resp(struct client *c)
{
	struct bconn *bc;
	uv_buf_t bufs[2];
	unsigned nb;
	size_t avail, k;
	const char *p;
	int r;

	for (;;) {
		bc = c->rq->bc;
		nb = 0;
		k = 0;
		if (bc == NULL || c->writing)
			return;
		avail = bc->in.len - bc->in_pos;
		p = bc->in.data + bc->in_pos;
		if (!c->rq->resp_body_done && avail > 0) {
			switch (bc->msg.body) {
			case HTTP_BODY_LENGTH:
				k = avail < c->rq->resp_left ? avail
							 : (size_t)c->rq->resp_left;
				c->rq->resp_left -= k;
				if (c->rq->resp_left == 0)
					c->rq->resp_body_done = 1;
				break;
			case HTTP_BODY_CHUNKED: {
				ssize_t n = http_chunked_feed(
					&c->rq->resp_chunked, p, avail,
					c->rq->dechunking ? dechunk_cb : NULL,
					&c->rq->dechunk);

				if (n < 0) {
					log_warn("bad chunked response",
						 "backend=%s reason=%s",
						 c->rq->wb->b->name,
						 c->rq->resp_chunked.reason);
					backend_failed(c, -EPROTO, 0);
					return;
				}
				k = (size_t)n;
				if (c->rq->resp_chunked.done)
					c->rq->resp_body_done = 1;
				break;
			}
			case HTTP_BODY_EOF:
				k = avail;
				break;
			default:
				break;
			}
		}
		if (bc->msg.body == HTTP_BODY_EOF && bc->eof &&
		    !c->rq->resp_body_done && bc->in_pos + k == bc->in.len)
			c->rq->resp_body_done = 1;
		if (!c->rq->resp_head_sent && c->rq->out.len)
			bufs[nb++] = uv_buf_init(c->rq->out.data, (unsigned)c->rq->out.len);
		if (k > 0) {
			if (c->rq->dechunking) {
				if (c->rq->dechunk.len)
					bufs[nb++] = uv_buf_init(
						c->rq->dechunk.data,
						(unsigned)c->rq->dechunk.len);
			} else {
				bufs[nb++] = uv_buf_init((char *)p, (unsigned)k);
			}
			c->rq->bytes_out += c->rq->dechunking ? c->rq->dechunk.len : k;
			if (c->rq->idem_owner && !c->rq->idem_too_big) {
				/* Recorded as the backend framed it. */
				if (c->rq->idem_head.len + c->rq->idem_body.len + k >
				    ccfg(c)->idempotency.max_entry_bytes) {
					c->rq->idem_too_big = 1;
					buf_fini(&c->rq->idem_body);
				} else {
					buf_append(&c->rq->idem_body, p, k);
				}
			}
		}
		c->rq->cwrite_n = k;
		if (nb == 0) {
			if (k > 0) {
				/* Only chunk framing was consumed. */
				bc->in_pos += k;
				c->rq->cwrite_n = 0;
			}
			if (c->rq->resp_body_done) {
				finish_request(c);
				return;
			}
			backend_resume(c, bc);
			return;
		}
		c->rq->write.data = c;
		c->writing = 1;
		r = send_bufs((uv_stream_t *)&c->tcp, &c->rq->write, bufs, nb,
			      client_write_cb,
			      c->rq->resp_body_done && ends_connection(c));
		if (r == 0)
			return; /* client_write_cb() goes on */
		c->writing = 0;
		if (r < 0) {
			client_close(c);
			return;
		}
		if (!client_wrote(c))
			return;
	}
}

static void backend_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct bconn *bc = s->data;
	struct client *c = bc->c;
	int r;

	(void)b;
	if (nread == 0)
		return;
	if (c == NULL) {
		/* Data or EOF on an idle connection: the backend closed it or
		 * broke the protocol; it is not reused. */
		upstream_close(bc);
		return;
	}
	if (nread == UV_ENOBUFS && bc->paused) {
		backend_read_stop(bc);
		return;
	}
	if (nread < 0) {
		if (nread == UV_EOF && c->rq->resp_head_ready &&
		    bc->msg.body == HTTP_BODY_EOF) {
			/* The body ends with the connection, once what is
			 * already read has gone out (pump_resp). */
			bc->eof = 1;
			bconn_deadline_off(bc);
			backend_read_stop(bc);
			if (!c->writing)
				pump_resp(c);
			return;
		}
		backend_failed(c, (int)nread, 0);
		return;
	}
	bc->in.len += (size_t)nread;
	bc->got_bytes = 1;
	backend_timer(bc, response_ms(c));
	if (!c->rq->resp_head_ready) {
		for (;;) {
			r = http_parse(&bc->parser, bc->in.data, bc->in.len);
			if (r == HTTP_PARSE_AGAIN)
				return;
			if (r == HTTP_PARSE_ERROR) {
				char q[128];

				log_warn("bad response from backend",
					 "backend=%s status=%d reason=%s",
					 c->rq->wb->b->name, bc->parser.status,
					 log_q(q, sizeof(q), bc->parser.reason));
				backend_failed(c, -EPROTO, 0);
				return;
			}
			if (bc->msg.status >= 200 || bc->msg.status == 101)
				break;
			/* An interim response (100 Continue): pass it on
			 * before the final one. */
			{
				size_t hl = bc->msg.head_len;
				uv_buf_t ib;
				int w;

				buf_reset(&c->rq->out);
				http_serialize_head(&c->rq->out, &bc->msg, bc->in.data,
						    HTTP_HDR_HOP);
				buf_appends(&c->rq->out, "\r\n");
				ib = uv_buf_init(c->rq->out.data, (unsigned)c->rq->out.len);
				/* A try_write is enough for a few bytes; on a
				 * full socket the interim response is dropped,
				 * which RFC 9110 15.2 permits a proxy. Half of
				 * one would corrupt the stream: that closes. */
				w = uv_try_write((uv_stream_t *)&c->tcp, &ib, 1);

				if (w > 0 && (size_t)w < ib.len) {
					client_close(c);
					return;
				}
				buf_consume(&bc->in, hl);
				http_parser_init(&bc->parser, 0, c->rq->req.method,
						 &bc->msg, bc->hdrs,
						 c->w->limits.max_headers,
						 &c->w->limits);
			}
		}
		if (bc->msg.status == 101) {
			log_warn("backend switched protocols; not supported",
				 "backend=%s", c->rq->wb->b->name);
			backend_failed(c, -EPROTO, 0);
			return;
		}
		c->rq->resp_head_ready = 1;
		on_response_head(c);
		return;
	}
	pump_resp(c);
}

/* --- connection lifecycle ------------------------------------------------ */

/* A request state as new, buffers aside. */
static void rq_clear(struct creq *rq)
{
	memset(&rq->write, 0,
	       offsetof(struct creq, hdrs) - offsetof(struct creq, write));
	rq->req.host_idx = -1;
}

/*
 * A request's state (struct creq, with its header array) is needed only
 * while a request is parsed and served: an idle keep-alive connection
 * gives it back to the worker's cache, which is most of what an idle
 * connection would otherwise hold. Returns 0, or -1 when memory ran out
 * (the connection is closed).
 */
static int begin_head(struct client *c)
{
	struct worker *w = c->w;
	struct creq *rq = c->rq;

	if (rq == NULL) {
		rq = w->spare_rq;
		if (rq != NULL) {
			w->spare_rq = rq->next_spare;
			w->nspare_rq--;
		} else {
			rq = calloc(1, sizeof(*rq) + w->limits.max_headers *
							    sizeof(rq->hdrs[0]));
			if (rq == NULL) {
				client_close(c);
				return -1;
			}
		}
		rq_clear(rq);
		c->rq = rq;
	}
	http_parser_init(&rq->parser, 1, HTTP_M_OTHER, &rq->req, rq->hdrs,
			 w->limits.max_headers, &w->limits);
	return 0;
}

#define SPARE_RQ_MAX 64

/* Gives the request state back: to the cache, or freed. Nothing may point
 * into it any more (no write in flight, no queue, no idempotency wait). */
static void rq_put(struct client *c)
{
	struct worker *w = c->w;
	struct creq *rq = c->rq;

	if (rq == NULL)
		return;
	c->rq = NULL;
	buf_fini(&rq->idem_head);
	buf_fini(&rq->idem_body);
	if (!w->stopping && w->nspare_rq < SPARE_RQ_MAX &&
	    rq->reqhead.cap <= 4096 &&
	    rq->out.cap <= 4096 && rq->dechunk.cap <= 4096) {
		buf_reset(&rq->reqhead);
		buf_reset(&rq->out);
		buf_reset(&rq->dechunk);
		rq->next_spare = w->spare_rq;
		w->spare_rq = rq;
		w->nspare_rq++;
		return;
	}
	buf_fini(&rq->reqhead);
	buf_fini(&rq->out);
	buf_fini(&rq->dechunk);
	free(rq);
}

/* Prepares for the next request on a kept-alive connection; serves bytes
 * already read (pipelining) at once. */
static void client_next_request(struct client *c)
{
	struct worker *w = c->w;

	/* Drop the finished request, keep what follows it. */
	if (c->in_pos > 0 && c->in_pos <= c->in.len)
		buf_consume(&c->in, c->in_pos);
	else if (c->in_pos > c->in.len)
		buf_reset(&c->in);
	c->in_pos = 0;
	c->state = C_IDLE;
	c->close_after = 0;
	c->paused = 0;
	if (c->rq)
		rq_clear(c->rq);
	if (c->in.len > 0) {
		if (begin_head(c) < 0)
			return;
		c->state = C_HEAD;
		client_timer(c, tmo(c)->client_header_ms);
		client_read_start(c);
		process_head(c);
		return;
	}
	/* An idle connection holds no buffer memory. */
	rq_put(c);
	worker_buf_put(w, &c->in);
	client_timer(c, tmo(c)->keepalive_ms);
	c->paused = 0;
	client_read_start(c);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct client *c = s->data;

	(void)b;
	if (nread == 0)
		return;
	if (nread == UV_ENOBUFS && c->paused) {
		client_read_stop(c);
		return;
	}
	if (nread < 0) {
		if (nread == UV_ENOBUFS && c->rq != NULL) {
			reply_error(c, 500, "out of memory", 1);
			return;
		}
		/* EOF or reset: a request in progress is abandoned. */
		client_close(c);
		return;
	}
	c->in.len += (size_t)nread;
	switch (c->state) {
	case C_IDLE:
		if (begin_head(c) < 0)
			return;
		c->state = C_HEAD;
		/* The first head's time runs from the accept (session_accept);
		 * a byte sent just in time does not buy a fresh client_header. */
		if (c->had_request)
			client_timer(c, tmo(c)->client_header_ms);
		c->had_request = 1;
		/* fall through */
	case C_HEAD:
		process_head(c);
		break;
	case C_UPSTREAM:
		c->rq->bytes_in += (size_t)nread;
		if (!c->rq->req_body_done)
			pump_req(c);
		/* else: the next request, read ahead; it waits in c->in. */
		break;
	case C_QUEUED:
	case C_IDEMWAIT:
		c->rq->bytes_in += (size_t)nread;
		break;
	default:
		/* Bytes after an error answer are ignored. */
		break;
	}
}

void session_accept(struct worker *w)
{
	struct client *c;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	c = client_slab_get(w);
	if (c == NULL)
		return;
	c->w = w;
	uv_tcp_init(&w->loop, &c->tcp);
	c->tcp.data = c;
	c->handles_open = 1;
	if (uv_accept((uv_stream_t *)&w->listener, (uv_stream_t *)&c->tcp) != 0)
		goto refuse;
	if (w->nclients >= w->proxy->client_conns_limit ||
	    w->stopping)
		goto refuse;
	/* TCP_NODELAY comes from the listening socket (proxy.c). */
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, c->peer,
				    sizeof(c->peer));
		else
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer,
				    sizeof(c->peer));
	} else {
		snprintf(c->peer, sizeof(c->peer), "unknown");
	}
	c->next = w->clients;
	if (w->clients)
		w->clients->prev = c;
	w->clients = c;
	w->nclients++;
	counter_add(&w->st.accepted, 1);
	atomic_fetch_add_explicit(&w->st.connections, 1, memory_order_relaxed);
	c->in_pos = 0;
	client_next_request(c);
	/* The first request is owed within client_header from the start,
	 * as any head is; keepalive is for the wait between requests. */
	client_timer(c, tmo(c)->client_header_ms);
	return;
refuse:
	c->state = C_CLOSED;
	uv_close((uv_handle_t *)&c->tcp, client_free_cb);
}

void session_cache_free(struct worker *w)
{
	struct creq *rq;

	while (w->slabs) {
		void *p = w->slabs;

		w->slabs = ((struct client_slab *)p)->next;
		munmap(p, CLIENT_SLAB);
	}
	w->free_clients = NULL;

	while ((rq = w->spare_rq) != NULL) {
		w->spare_rq = rq->next_spare;
		w->nspare_rq--;
		buf_fini(&rq->reqhead);
		buf_fini(&rq->out);
		buf_fini(&rq->dechunk);
		free(rq);
	}
}

void session_shutdown_idle(struct worker *w)
{
	struct client *c = w->clients, *next;

	for (; c; c = next) {
		next = c->next;
		if (c->state == C_IDLE || (c->state == C_HEAD && c->in.len == 0))
			client_close(c);
		else
			c->close_after = 1;
	}
}

void session_close_all(struct worker *w)
{
	while (w->clients)
		client_close(w->clients);
}
