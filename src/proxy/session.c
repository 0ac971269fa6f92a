/*
 * session.c - client sessions: read a request, route it, relay it to a
 * backend (retrying where that is safe), relay the response back, keep the
 * connection for the next request.
 *
 * Bodies are streamed, never buffered whole. Each direction has at most
 * one write in flight, and the side that feeds it stops reading until the
 * write completes: the kernel's socket buffers do the queueing, and a slow
 * reader slows its writer down instead of growing our memory. Request
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
 * Invariants:
 *   - c->in holds the current request head from offset 0 until the request
 *     is finished; body bytes after it stay while the body is replayable
 *     and are dropped once written otherwise (in.len cut back to head_len).
 *   - c->bc is set exactly while a backend connection serves this request,
 *     and bc->c == c.
 *   - c->view is held (a reference) from the head to the end of the
 *     request: the request runs on the config it started on.
 *   - wb->st->active counts the request while c->counted_active.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/proxy_int.h"

#define HDR_SKIP 0x80 /* local flag: dropped here and re-added by us */
#define READ_CHUNK 65536
#define REPLAY_MAX (64 * 1024) /* bodies kept for a retry */
#define EWMA_TAU_US 10e6

static void client_close(struct client *c);

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
	return c->view ? c->view->rt->cfg : c->w->view->rt->cfg;
}

static const struct cfg_timeouts *tmo(struct client *c)
{
	return &ccfg(c)->timeouts;
}

static uint32_t connect_ms(struct client *c)
{
	if (c->route && c->route->timeouts.connect_ms)
		return c->route->timeouts.connect_ms;
	return tmo(c)->connect_ms;
}

static uint32_t response_ms(struct client *c)
{
	if (c->route && c->route->timeouts.backend_response_ms)
		return c->route->timeouts.backend_response_ms;
	return tmo(c)->backend_response_ms;
}

static uint32_t request_ms(struct client *c)
{
	if (c->route && c->route->timeouts.request_ms)
		return c->route->timeouts.request_ms;
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
		if (c->bwrite_n > 0) {
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

static void timer_cb(uv_timer_t *t);

/* The client's deadline, ms from now; lazily, like bconn_deadline(). */
static void client_timer(struct client *c, uint64_t ms)
{
	uint64_t due = uv_now(&c->w->loop) + ms;

	c->deadline = due;
	if (c->timer_due && c->timer_due <= due)
		return; /* fires earlier and re-arms for the rest */
	c->timer_due = due;
	uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static void client_timer_off(struct client *c)
{
	c->deadline = 0;
}

/* --- the request's end: stats, log, slots ---------------------------------- */

static void client_free_cb(uv_handle_t *h)
{
	struct client *c = h->data;

	if (--c->handles_open > 0)
		return;
	buf_fini(&c->in);
	buf_fini(&c->reqhead);
	buf_fini(&c->out);
	buf_fini(&c->dechunk);
	free(c->hdrs);
	free(c);
}

/* The request no longer occupies wb. */
static void release_active(struct client *c)
{
	struct wbackend *wb = c->wb;

	if (!c->counted_active)
		return;
	c->counted_active = 0;
	atomic_fetch_sub_explicit(&wb->st->active, 1, memory_order_relaxed);
	upstream_slot_freed(wb->wp);
}

static void count_status(struct client *c, int status)
{
	int cls = status / 100;

	c->status = status;
	counter_add(&c->w->st.responses[(cls >= 1 && cls <= 5) ? cls : 0], 1);
}

static void access_log(struct client *c)
{
	struct accesslog_entry e;
	const char *base = c->in.data;
	int i;

	if (c->w->alog == NULL || base == NULL)
		return;
	memset(&e, 0, sizeof(e));
	e.wall_ms = c->t_start_wall_ms;
	e.client_ip = c->peer;
	e.method = base + c->req.method_s.off;
	e.method_len = c->req.method_s.len;
	e.target = base + c->req.target.off;
	e.target_len = c->req.target.len;
	e.version_minor = c->req.version_minor;
	e.status = c->status;
	e.bytes_sent = c->bytes_out;
	e.bytes_received = c->bytes_in;
	if (c->req.host_idx >= 0) {
		e.host = base + c->req.headers[c->req.host_idx].value.off;
		e.host_len = c->req.headers[c->req.host_idx].value.len;
	}
	if ((i = http_msg_find(&c->req, base, "referer", 0)) >= 0) {
		e.referer = base + c->req.headers[i].value.off;
		e.referer_len = c->req.headers[i].value.len;
	}
	if ((i = http_msg_find(&c->req, base, "user-agent", 0)) >= 0) {
		e.user_agent = base + c->req.headers[i].value.off;
		e.user_agent_len = c->req.headers[i].value.len;
	}
	e.route = c->route ? c->route->name : NULL;
	e.pool = c->wp ? c->wp->cfg->name : NULL;
	e.backend = c->wb ? c->wb->b->name : NULL;
	e.total_ms = (double)(now_us() - c->t_start_us) / 1000.0;
	e.upstream_ms = c->upstream_ms;
	e.retries = c->retries;
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
	struct worker *w = c->w;

	if (c->idem_waiting) {
		idem_cancel(store(c), &c->idem_waiter);
		c->idem_waiting = 0;
	}
	pthread_mutex_lock(&w->woken_lock);
	if (c->idem_woken) {
		struct client **pp = &w->woken;

		while (*pp && *pp != c)
			pp = &(*pp)->wnext;
		if (*pp)
			*pp = c->wnext;
		c->idem_woken = 0;
	}
	pthread_mutex_unlock(&w->woken_lock);
	if (c->idem_owner) {
		idem_abort(store(c), c->idem_key, c->idem_klen);
		c->idem_owner = 0;
	}
	free(c->idem_key);
	c->idem_key = NULL;
	buf_fini(&c->idem_head);
	buf_fini(&c->idem_body);
	c->idem_too_big = 0;
}

/* Runs on whichever thread completed the first request, under a store
 * lock: hand the session to its own worker. */
static void on_idem_woken(struct idem_waiter *wt)
{
	struct client *c = wt->ud;
	struct worker *w = c->w;

	pthread_mutex_lock(&w->woken_lock);
	c->wnext = w->woken;
	w->woken = c;
	c->idem_woken = 1;
	pthread_mutex_unlock(&w->woken_lock);
	uv_async_send(&w->wake);
}

static void error_write_cb(uv_write_t *wr, int status);

/* Answers with a stored response. */
static void idem_replay(struct client *c, struct idem_response *r)
{
	uv_buf_t b[2];
	int close = !c->req_body_done || !c->req.keep_alive || c->w->stopping;

	if (!close)
		c->in_pos = c->req_end; /* the next request starts there */
	c->idem_resp = r;
	client_read_stop(c);
	client_timer_off(c);
	buf_reset(&c->out);
	buf_append(&c->out, r->head, r->head_len);
	buf_appends(&c->out, "Idempotent-Replay: true\r\n");
	if (close)
		buf_appends(&c->out, "Connection: close\r\n");
	buf_appends(&c->out, "\r\n");
	c->close_after = close;
	c->state = C_ERROR;
	count_status(c, r->status);
	c->bytes_out += c->out.len + r->body_len;
	request_end(c);
	b[0] = uv_buf_init(c->out.data, (unsigned)c->out.len);
	b[1] = uv_buf_init(r->body, (unsigned)r->body_len);
	c->write.data = c;
	c->writing = 1;
	if (uv_write(&c->write, (uv_stream_t *)&c->tcp, b, r->body_len ? 2 : 1,
		     error_write_cb) != 0) {
		c->writing = 0;
		client_close(c);
	}
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
	const struct cfg_idempotency *ic;
	struct idem_response *resp = NULL;
	enum idem_result r;

	if (c->idem_key == NULL) {
		const char *base = c->in.data;
		int i, listed;

		if (c->route == NULL || !c->route->idempotency.enabled)
			return 0;
		ic = &c->route->idempotency;
		listed = method_listed(ic->methods, ic->nmethods, c->req.method);
		i = http_msg_find(&c->req, base, "idempotency-key", 0);
		if (!listed || i < 0 || c->req.headers[i].value.len == 0)
			return 0;
		if (c->req.headers[i].value.len > 255) {
			reply_error(c, 400, "the Idempotency-Key is longer than 255 "
					    "characters",
				    1);
			return 1;
		}
		{
			size_t rl = strlen(c->route->name);
			size_t vl = c->req.headers[i].value.len;
			struct buf fp;

			c->idem_klen = rl + 1 + vl;
			c->idem_key = malloc(c->idem_klen + 1);
			SK_ASSERT(c->idem_key != NULL);
			memcpy(c->idem_key, c->route->name, rl);
			c->idem_key[rl] = '\n';
			memcpy(c->idem_key + rl + 1, base + c->req.headers[i].value.off,
			       vl);
			c->idem_key[c->idem_klen] = '\0';
			/* The same key must come with the same request:
			 * method and target (the body is not compared). */
			buf_init(&fp);
			buf_append(&fp, base + c->req.method_s.off,
				   c->req.method_s.len);
			buf_appendc(&fp, ' ');
			buf_append(&fp, base + c->req.target.off, c->req.target.len);
			c->idem_fp = balance_hash(fp.data, fp.len);
			buf_fini(&fp);
		}
	}
	ic = &c->route->idempotency;
	c->idem_waiter.cb = on_idem_woken;
	c->idem_waiter.ud = c;
	r = idem_begin(store(c), c->idem_key, c->idem_klen, c->idem_fp,
		       ic->ttl_ms, clock_mono_ms(),
		       ic->on_inflight == 0 ? &c->idem_waiter : NULL, &resp);
	switch (r) {
	case IDEM_NEW:
		c->idem_owner = 1;
		return 0;
	case IDEM_DONE:
		log_info("idempotent replay", "route=%s status=%d",
			 c->route->name, resp->status);
		idem_replay(c, resp);
		return 1;
	case IDEM_PENDING:
		if (ic->on_inflight != 0) {
			reply_error(c, 409, "a request with this Idempotency-Key is "
					    "in progress",
				    0);
			return 1;
		}
		c->idem_waiting = 1;
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

	if (!c->in_flight)
		return;
	c->in_flight = 0;
	atomic_fetch_sub_explicit(&w->st.in_flight, 1, memory_order_relaxed);
	uv_timer_stop(&c->req_timer);
	if (c->view && c->status) {
		const struct runtime *rt = c->view->rt;
		const struct rmetrics *m =
			&rt->route_m[c->route ? (size_t)(c->route - rt->cfg->routes) : 0];
		int cls = c->status / 100;

		metrics_counter_add(w->proxy->metrics, (unsigned)w->id,
				    m->responses[(cls >= 1 && cls <= 5) ? cls : 0], 1);
		metrics_hist_record(w->proxy->metrics, (unsigned)w->id, m->duration,
				    now_us() - c->t_start_us);
	}
	if (c->state == C_QUEUED && c->wp)
		queue_remove(c->wp, c);
	idem_end(c);
	access_log(c);
	release_active(c);
	if (c->view) {
		wview_unref(c->view);
		c->view = NULL;
	}
	c->wp = NULL;
	c->wb = NULL;
	c->route = NULL;
}

static void client_close(struct client *c)
{
	struct worker *w = c->w;

	if (c->state == C_CLOSED)
		return;
	if (c->bc) {
		c->bc->c = NULL;
		upstream_close(c->bc);
		c->bc = NULL;
	}
	request_end(c);
	if (c->idem_resp && !c->writing) {
		idem_response_unref(c->idem_resp);
		c->idem_resp = NULL;
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
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, client_free_cb);
	uv_close((uv_handle_t *)&c->req_timer, client_free_cb);
	uv_close((uv_handle_t *)&c->tcp, client_free_cb);
	if (w->stopping && w->nclients == 0)
		uv_async_send(&w->wake);
}

/* --- writing to the client ---------------------------------------------- */

static void error_write_cb(uv_write_t *wr, int status)
{
	struct client *c = wr->data;

	c->writing = 0;
	if (c->idem_resp) {
		idem_response_unref(c->idem_resp);
		c->idem_resp = NULL;
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

	if (c->resp_head_sent || c->writing) {
		client_close(c);
		return;
	}
	if (c->bc) {
		c->bc->c = NULL;
		upstream_close(c->bc);
		c->bc = NULL;
	}
	if (c->state == C_QUEUED && c->wp)
		queue_remove(c->wp, c);
	client_read_stop(c);
	client_timer_off(c);
	/* Without the whole request body read, we cannot tell where the next
	 * request would start: close after answering. */
	if (!c->req_body_done || !c->req.keep_alive || c->w->stopping)
		close = 1;
	else
		c->in_pos = c->req_end; /* the next request starts there */
	c->close_after = close;
	c->state = C_ERROR;
	buf_reset(&c->out);
	http_error_response(&c->out, status, detail, close);
	if (retry_after > 0) {
		char ra[40];
		char *end = memmem(c->out.data, c->out.len, "\r\n\r\n", 4);
		size_t at = end ? (size_t)(end - c->out.data) + 2 : 0;
		int n = snprintf(ra, sizeof(ra), "Retry-After: %d\r\n", retry_after);

		if (end) {
			buf_reserve(&c->out, (size_t)n);
			memmove(c->out.data + at + n, c->out.data + at,
				c->out.len - at);
			memcpy(c->out.data + at, ra, (size_t)n);
			c->out.len += (size_t)n;
		}
	}
	count_status(c, status);
	c->bytes_out += c->out.len;
	request_end(c);
	b = uv_buf_init(c->out.data, (unsigned)c->out.len);
	c->write.data = c;
	c->writing = 1;
	if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1,
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
	const struct cfg_retry *r = c->route ? &c->route->retry : NULL;

	/* No routes: the default policy, the idempotent methods. */
	return r ? method_listed(r->methods, r->nmethods, c->req.method)
		 : method_idempotent(c->req.method);
}

static uint32_t retry_attempts(struct client *c)
{
	return c->route ? c->route->retry.attempts : 2;
}

static void budget_roll(struct worker *w, const struct cfg_retry_budget *rb)
{
	struct budget *b = &w->budget;
	uint64_t now = clock_mono_ms();

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
	if (c->retries >= retry_attempts(c))
		return 0;
	if (reached && (!method_retryable(c) || !c->replayable))
		return 0;
	return budget_take(c);
}

/* Rewinds the request so it can be sent again from its first byte. */
static void rewind_request(struct client *c)
{
	c->in_pos = c->req.head_len;
	c->req_head_sent = 0;
	c->bwrite_n = 0;
	switch (c->req.body) {
	case HTTP_BODY_LENGTH:
		c->req_left = c->req.content_length;
		c->req_body_done = c->req_left == 0;
		break;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&c->req_chunked, 0);
		c->req_left = 0;
		c->req_body_done = 0;
		break;
	default:
		c->req_body_done = 1;
		break;
	}
	c->resp_head_ready = 0;
	c->resp_body_done = 0;
	c->sticky_set[0] = '\0';
}

/* wb failed this request: a retry goes elsewhere. */
static void mark_tried(struct client *c, struct wbackend *wb)
{
	if (wb && c->ntried < sizeof(c->tried) / sizeof(c->tried[0]))
		c->tried[c->ntried++] = wb;
}

static void retry(struct client *c)
{
	c->retries++;
	counter_add(&c->w->st.retries, 1);
	if (c->wb)
		counter_add(&c->wb->st->retries, 1);
	rewind_request(c);
	dispatch(c);
}

/* --- the request head --------------------------------------------------- */

/* Builds the head the backend gets: hop-by-hop fields removed, and
 * X-Forwarded-For, X-Forwarded-Proto and Via added. */
static void build_request_head(struct client *c)
{
	struct http_msg *m = &c->req;
	const char *base = c->in.data;
	struct buf *o = &c->reqhead;

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
		http_serialize_header(o, "Host", c->wb->b->addr.text);
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

static void timer_cb(uv_timer_t *t)
{
	struct client *c = t->data;
	uint64_t now = uv_now(&c->w->loop);

	c->timer_due = 0;
	if (c->deadline == 0)
		return;
	if (now < c->deadline) {
		c->timer_due = c->deadline;
		uv_timer_start(&c->timer, timer_cb, c->deadline - now, 0);
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
		log_info("client header timeout", "peer=%s", c->peer_log);
		reply_error(c, 408, "the request head did not arrive in time", 1);
		break;
	case C_IDEMWAIT:
		log_info("idempotency wait timeout", "peer=%s route=%s", c->peer_log,
			 c->route->name);
		reply_error(c, 409, "the first request with this Idempotency-Key "
				    "is still in progress",
			    0);
		break;
	case C_QUEUED:
		log_info("queue timeout", "peer=%s pool=%s", c->peer_log,
			 c->wp->cfg->name);
		reply_error_ra(c, 503, "every backend is busy; try again shortly",
			       0, 1);
		break;
	case C_UPSTREAM:
		/* The client stopped sending its body. */
		log_info("client body timeout", "peer=%s", c->peer_log);
		reply_error(c, 408, "the request body did not arrive in time", 1);
		break;
	case C_ERROR:
	case C_CLOSED:
		client_close(c);
		break;
	}
}

static void req_timer_cb(uv_timer_t *t)
{
	struct client *c = t->data;

	if (c->state != C_UPSTREAM && c->state != C_QUEUED &&
	    c->state != C_IDEMWAIT)
		return;
	log_info("request timeout", "peer=%s backend=%s", c->peer_log,
		 c->wb ? c->wb->b->name : "-");
	if (c->wb && c->bc)
		backend_failure(c->wb->b, c->wp->cfg, clock_mono_ms());
	reply_error(c, 504, "the request took too long", 1);
}

static void process_head(struct client *c)
{
	struct worker *w = c->w;
	const struct config *cfg;
	int r, none;

	r = http_parse(&c->parser, c->in.data, c->in.len);
	if (r == HTTP_PARSE_AGAIN) {
		client_read_start(c);
		return;
	}
	c->t_start_us = now_us();
	c->t_start_wall_ms = clock_wall_ms();
	c->in_flight = 1;
	atomic_fetch_add_explicit(&w->st.in_flight, 1, memory_order_relaxed);
	counter_add(&w->st.requests, 1);
	budget_roll(w, &w->view->rt->cfg->retry_budget);
	w->budget.req_cur++;
	c->upstream_ms = -1;
	if (r == HTTP_PARSE_ERROR) {
		char q[128];

		log_info("bad request", "peer=%s status=%d reason=%s", c->peer_log,
			 c->parser.status,
			 log_q(q, sizeof(q), c->parser.reason));
		c->req_body_done = 0;
		c->bytes_in = c->in.len;
		reply_error(c, c->parser.status, c->parser.reason, 1);
		return;
	}

	/* A complete head: it runs on the config in force now. */
	c->view = w->view;
	c->view->refs++;
	cfg = c->view->rt->cfg;
	c->state = C_UPSTREAM;
	c->in_pos = c->req.head_len;
	c->req_end = c->req.head_len;
	c->bytes_in = c->req.head_len;
	client_timer_off(c);

	switch (c->req.body) {
	case HTTP_BODY_LENGTH:
		c->req_left = c->req.content_length;
		c->req_body_done = (c->req_left == 0);
		break;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&c->req_chunked, 0);
		c->req_left = 0;
		c->req_body_done = 0;
		break;
	default:
		c->req_body_done = 1;
		break;
	}
	c->replayable = 1;
	/* Reading stays on: body bytes are forwarded as they come, pipelined
	 * requests wait in c->in (bounded by CLIENT_AHEAD) until this one is
	 * answered, and a client that goes away aborts its request. */
	if (c->req.body == HTTP_BODY_LENGTH &&
	    c->req.content_length > cfg->limits.body_bytes) {
		reply_error(c, 413, "the request body is too large", 1);
		return;
	}
	c->route = route_match(cfg, &c->req, c->in.data, &none);
	if (none) {
		reply_error(c, 404, "no route for this host and path", 0);
		return;
	}
	c->wp = &c->view->pools[c->route ? c->route->pool_index : 0];
	uv_timer_start(&c->req_timer, req_timer_cb, request_ms(c), 0);
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
	for (c = list; c; c = c->wnext)
		c->idem_woken = 0;
	pthread_mutex_unlock(&w->woken_lock);
	while ((c = list) != NULL) {
		list = c->wnext;
		c->wnext = NULL;
		if (c->state != C_IDEMWAIT)
			continue;
		c->idem_waiting = 0;
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
	struct wpool *wp = c->wp;
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
			c->qnext = NULL;
			if (wp->qtail)
				wp->qtail->qnext = c;
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
			reply_error(c, c->attempts ? 502 : 503,
				    c->attempts ? "no backend could be reached"
						: "no backend is available",
				    0);
			return;
		}
		c->wb = wb;
		c->counted_active = 1;
		atomic_fetch_add_explicit(&wb->st->active, 1, memory_order_relaxed);
		c->attempts++;
		counter_add(&wb->st->requests, 1);
		/* A request that must not be sent twice gets a fresh
		 * connection: an idle one may be closing under us, and then
		 * we could not tell whether the backend acted on it. */
		bc = upstream_get(w, wb, connect_ms(c),
				    method_idempotent(c->req.method));
		if (bc != NULL)
			break;
		counter_add(&wb->st->failures, 1);
		release_active(c);
		mark_tried(c, wb);
		if (c->attempts > wp->n) {
			reply_error(c, 502, "no backend could be reached", 0);
			return;
		}
	}
	c->state = C_UPSTREAM;
	c->bc = bc;
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
		bc->paused = 1; /* the client reads slower than the backend */
		return;
	}
	if (bc->in.data == NULL)
		worker_buf_get(bc->w, &bc->in);
	if (bc->in.cap - bc->in.len < MIN_READ + 1) {
		if (bc->c->writing) {
			bc->paused = 1; /* in.data is in the client write */
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

static void start_exchange(struct client *c)
{
	struct bconn *bc = c->bc;

	build_request_head(c);
	c->req_head_sent = 0;
	c->bwrite_n = 0;
	c->t_backend_us = now_us();
	bc->got_bytes = 0;
	buf_reset(&bc->in);
	bc->in_pos = 0;
	http_parser_init(&bc->parser, 0, c->req.method, &bc->msg, bc->hdrs,
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
	struct bconn *bc = c->bc;
	struct wbackend *wb = c->wb;
	int connected = bc && bc->connected;
	int reached, stale;

	if (wb) {
		counter_add(&wb->st->failures, 1);
		backend_failure(wb->b, c->wp->cfg, clock_mono_ms());
	}
	log_warn("backend failed", "backend=%s err=%s connected=%d",
		 wb ? wb->b->name : "-", uv_err_name(err), connected);
	if (c->resp_head_sent) {
		client_close(c);
		return;
	}
	/* A stale keep-alive connection that the backend closed before
	 * reading our request: nothing was acted upon, and the backend is
	 * not at fault, so a fresh connection to it is fine. */
	stale = connected && bc && bc->reused && !bc->got_bytes && !timeout &&
		c->req.body == HTTP_BODY_NONE && method_retryable(c);
	reached = connected && !stale;
	if (!stale)
		mark_tried(c, wb);
	if (bc) {
		bc->c = NULL;
		upstream_close(bc);
		c->bc = NULL;
	}
	if ((stale || upstream_untried(c->wp, c) > 0) && may_retry(c, reached)) {
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
	c->req_head_sent = 1;
	c->in_pos += c->bwrite_n;
	c->bwrite_n = 0;
	client_resume(c);
	if (c->in_pos == c->in.len && c->in.len > c->req.head_len &&
	    (!c->replayable || c->in.len - c->req.head_len > REPLAY_MAX)) {
		/* Forwarded body bytes are done with: keep only the head. */
		c->replayable = 0;
		c->in.len = c->req.head_len;
		c->in_pos = c->req.head_len;
		if (c->req_body_done)
			c->req_end = c->req.head_len;
	}
	pump_req(c);
}

/* How many of the n bytes at p belong to the request body; marks the end
 * of the body. Returns -1 on a malformed chunked body, -2 over the limit. */
static ssize_t req_body_take(struct client *c, const char *p, size_t n)
{
	if (c->req.body == HTTP_BODY_LENGTH) {
		size_t k = n < c->req_left ? n : (size_t)c->req_left;

		c->req_left -= k;
		if (c->req_left == 0) {
			c->req_body_done = 1;
			c->req_end = (size_t)(p - c->in.data) + k;
		}
		return (ssize_t)k;
	}
	{
		ssize_t k = http_chunked_feed(&c->req_chunked, p, n, NULL, NULL);

		if (k < 0)
			return -1;
		c->req_left += (uint64_t)k;
		if (c->req_left > ccfg(c)->limits.body_bytes)
			return -2;
		if (c->req_chunked.done) {
			c->req_body_done = 1;
			c->req_end = (size_t)(p - c->in.data) + (size_t)k;
		}
		return k;
	}
}

static void pump_req(struct client *c)
{
	struct bconn *bc = c->bc;
	uv_buf_t bufs[2];
	unsigned nb = 0;
	size_t avail;
	ssize_t k = 0;

	/* Before the exchange starts (still connecting), body bytes wait in
	 * c->in: start_exchange() sends the head first. */
	if (bc == NULL || !bc->connected || bc->writing || c->state != C_UPSTREAM)
		return;
	if (c->resp_head_ready && !c->req_body_done)
		return; /* answered early: the rest of the body is not sent */
	avail = c->in.len - c->in_pos;
	if (!c->req_body_done && avail > 0) {
		k = req_body_take(c, c->in.data + c->in_pos, avail);
		if (k == -1) {
			log_info("bad chunked request body", "peer=%s reason=%s",
				 c->peer_log, c->req_chunked.reason);
			reply_error(c, 400, c->req_chunked.reason, 1);
			return;
		}
		if (k == -2) {
			reply_error(c, 413, "the request body is too large", 1);
			return;
		}
	}
	if (!c->req_head_sent)
		bufs[nb++] = uv_buf_init(c->reqhead.data, (unsigned)c->reqhead.len);
	if (k > 0)
		bufs[nb++] = uv_buf_init(c->in.data + c->in_pos, (unsigned)k);
	if (nb == 0) {
		if (!c->req_body_done) {
			client_resume(c);
			client_timer(c, tmo(c)->client_body_ms);
		} else {
			client_timer_off(c);
		}
		return;
	}
	c->bwrite_n = (size_t)k;
	bc->write.data = bc;
	bc->writing = 1;
	/* From here a stall is the backend's: its timer is running. */
	client_timer_off(c);
	if (uv_write(&bc->write, (uv_stream_t *)&bc->tcp, bufs, nb,
		     backend_write_cb) != 0) {
		bc->writing = 0;
		backend_failed(c, -EPIPE, 0);
	}
}

/* --- response: backend -> client ---------------------------------------- */

static void finish_request(struct client *c)
{
	struct bconn *bc = c->bc;
	int reusable;

	reusable = bc && bc->msg.keep_alive && c->req_body_done &&
		   bc->msg.body != HTTP_BODY_EOF && bc->in_pos == bc->in.len &&
		   !c->w->stopping;
	if (bc) {
		bconn_deadline_off(bc);
		if (bc->paused) {
			bc->paused = 0;
			backend_read_start(bc);
		}
		bc->c = NULL;
		c->bc = NULL;
		upstream_release(bc, reusable);
	}
	if (c->idem_owner && !c->idem_too_big) {
		idem_complete(store(c), c->idem_key, c->idem_klen, c->status,
			      c->idem_head.data, c->idem_head.len,
			      c->idem_body.data, c->idem_body.len,
			      clock_mono_ms());
		c->idem_owner = 0;
	}
	request_end(c);
	if (c->close_after || !c->req_body_done || !c->req.keep_alive ||
	    c->w->stopping) {
		client_close(c);
		return;
	}
	client_next_request(c);
}

static void client_write_cb(uv_write_t *wr, int status)
{
	struct client *c = wr->data;
	struct bconn *bc = c->bc;

	c->writing = 0;
	if (c->state == C_CLOSED)
		return;
	if (status < 0) {
		client_close(c);
		return;
	}
	c->resp_head_sent = 1;
	if (bc) {
		bc->in_pos += c->cwrite_n;
		if (bc->in_pos == bc->in.len) {
			bc->in.len = 0;
			bc->in_pos = 0;
		}
		if (bc->paused && !c->resp_body_done) {
			bc->paused = 0;
			backend_read_start(bc);
		}
	}
	c->cwrite_n = 0;
	buf_reset(&c->dechunk);
	if (c->resp_body_done) {
		finish_request(c);
		return;
	}
	pump_resp(c);
}

static void dechunk_cb(void *ud, const char *p, size_t n)
{
	buf_append(ud, p, n);
}

static int status_listed(const struct client *c, int status)
{
	if (c->route == NULL)
		return 0;
	for (size_t i = 0; i < c->route->retry.non_status; i++)
		if ((int)c->route->retry.on_status[i].status == status)
			return 1;
	return 0;
}

static void on_response_head(struct client *c)
{
	struct bconn *bc = c->bc;
	struct http_msg *m = &bc->msg;
	struct wbackend *wb = c->wb;
	int client10 = c->req.version_minor == 0;
	uint64_t now = now_us();
	double sample = (double)(now - c->t_backend_us);

	c->upstream_ms = sample / 1000.0;
	balance_ewma_update(&wb->ewma_us, sample,
			    wb->ewma_at_us ? (double)(now - wb->ewma_at_us) : 0,
			    EWMA_TAU_US);
	wb->ewma_at_us = now;
	if (m->status >= 500) {
		counter_add(&wb->st->failures, 1);
		backend_failure(wb->b, c->wp->cfg, clock_mono_ms());
		mark_tried(c, wb);
		if (status_listed(c, m->status) &&
		    upstream_untried(c->wp, c) > 0 && may_retry(c, 1)) {
			log_info("retrying after status", "backend=%s status=%d",
				 wb->b->name, m->status);
			bc->c = NULL;
			upstream_close(bc);
			c->bc = NULL;
			retry(c);
			return;
		}
	} else {
		backend_success(wb->b);
	}
	count_status(c, m->status);
	if (c->idem_owner) {
		buf_reset(&c->idem_head);
		http_serialize_head(&c->idem_head, m, bc->in.data, HTTP_HDR_HOP);
	}
	buf_reset(&c->out);
	c->dechunking = 0;
	if (m->body == HTTP_BODY_EOF || !c->req_body_done || !c->req.keep_alive ||
	    c->w->stopping)
		c->close_after = 1;
	if (m->body == HTTP_BODY_CHUNKED && client10) {
		/* An HTTP/1.0 client does not know chunked: send the payload
		 * raw and end it by closing. */
		c->dechunking = 1;
		c->close_after = 1;
	}
	http_serialize_head(&c->out, m, bc->in.data,
			    HTTP_HDR_HOP | (c->dechunking ? HTTP_HDR_FRAMING : 0));
	if (c->sticky_set[0])
		buf_printf(&c->out,
			   "Set-Cookie: %s=%s; Path=/; HttpOnly; SameSite=Lax\r\n",
			   c->wp->cfg->sticky_cookie, c->sticky_set);
	if (c->close_after)
		buf_appends(&c->out, "Connection: close\r\n");
	else if (client10)
		buf_appends(&c->out, "Connection: keep-alive\r\n");
	buf_appends(&c->out, "\r\n");
	c->bytes_out += c->out.len;
	bc->in_pos = m->head_len;

	switch (m->body) {
	case HTTP_BODY_LENGTH:
		c->resp_left = m->content_length;
		c->resp_body_done = (c->resp_left == 0);
		break;
	case HTTP_BODY_CHUNKED:
		http_chunked_init(&c->resp_chunked, 0);
		c->resp_body_done = 0;
		break;
	case HTTP_BODY_EOF:
		c->resp_body_done = 0;
		break;
	default:
		c->resp_body_done = 1;
		break;
	}
	if (!c->req_body_done) {
		/* The backend answered before taking the whole body (e.g. a
		 * 413): stop forwarding; the connection closes afterwards. */
		client_read_stop(c);
		client_timer_off(c);
	}
	pump_resp(c);
}

/* Forwards what bc->in holds of the response body (with the head first if
 * it has not gone yet). */
static void pump_resp(struct client *c)
{
	struct bconn *bc = c->bc;
	uv_buf_t bufs[2];
	unsigned nb = 0;
	size_t avail, k = 0;
	const char *p;

	if (bc == NULL || c->writing)
		return;
	avail = bc->in.len - bc->in_pos;
	p = bc->in.data + bc->in_pos;
	if (!c->resp_body_done && avail > 0) {
		switch (bc->msg.body) {
		case HTTP_BODY_LENGTH:
			k = avail < c->resp_left ? avail : (size_t)c->resp_left;
			c->resp_left -= k;
			if (c->resp_left == 0)
				c->resp_body_done = 1;
			break;
		case HTTP_BODY_CHUNKED: {
			ssize_t r = http_chunked_feed(
				&c->resp_chunked, p, avail,
				c->dechunking ? dechunk_cb : NULL, &c->dechunk);

			if (r < 0) {
				log_warn("bad chunked response",
					 "backend=%s reason=%s", c->wb->b->name,
					 c->resp_chunked.reason);
				backend_failed(c, -EPROTO, 0);
				return;
			}
			k = (size_t)r;
			if (c->resp_chunked.done)
				c->resp_body_done = 1;
			break;
		}
		case HTTP_BODY_EOF:
			k = avail;
			break;
		default:
			break;
		}
	}
	if (!c->resp_head_sent && c->out.len)
		bufs[nb++] = uv_buf_init(c->out.data, (unsigned)c->out.len);
	if (k > 0) {
		if (c->dechunking) {
			if (c->dechunk.len)
				bufs[nb++] = uv_buf_init(c->dechunk.data,
							 (unsigned)c->dechunk.len);
		} else {
			bufs[nb++] = uv_buf_init((char *)p, (unsigned)k);
		}
		c->bytes_out += c->dechunking ? c->dechunk.len : k;
		if (c->idem_owner && !c->idem_too_big) {
			/* Recorded as the backend framed it. */
			if (c->idem_head.len + c->idem_body.len + k >
			    ccfg(c)->idempotency.max_entry_bytes) {
				c->idem_too_big = 1;
				buf_fini(&c->idem_body);
			} else {
				buf_append(&c->idem_body, p, k);
			}
		}
	}
	c->cwrite_n = k;
	if (nb == 0) {
		if (k > 0) {
			/* Only chunk framing was consumed. */
			bc->in_pos += k;
			c->cwrite_n = 0;
		}
		if (c->resp_body_done) {
			finish_request(c);
			return;
		}
		if (bc->paused) {
			bc->paused = 0;
			backend_read_start(bc);
		}
		return;
	}
	c->write.data = c;
	c->writing = 1;
	if (uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, nb,
		     client_write_cb) != 0) {
		c->writing = 0;
		client_close(c);
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
		if (nread == UV_EOF && c->resp_head_ready &&
		    bc->msg.body == HTTP_BODY_EOF) {
			/* The body ends with the connection. */
			c->resp_body_done = 1;
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
	if (!c->resp_head_ready) {
		for (;;) {
			r = http_parse(&bc->parser, bc->in.data, bc->in.len);
			if (r == HTTP_PARSE_AGAIN)
				return;
			if (r == HTTP_PARSE_ERROR) {
				char q[128];

				log_warn("bad response from backend",
					 "backend=%s status=%d reason=%s",
					 c->wb->b->name, bc->parser.status,
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

				buf_reset(&c->out);
				http_serialize_head(&c->out, &bc->msg, bc->in.data,
						    HTTP_HDR_HOP);
				buf_appends(&c->out, "\r\n");
				ib = uv_buf_init(c->out.data, (unsigned)c->out.len);
				/* A try_write is enough for a few bytes; on a
				 * full socket the interim response is dropped,
				 * which RFC 9110 15.2 permits a proxy. */
				(void)uv_try_write((uv_stream_t *)&c->tcp, &ib, 1);
				buf_consume(&bc->in, hl);
				http_parser_init(&bc->parser, 0, c->req.method,
						 &bc->msg, bc->hdrs,
						 c->w->limits.max_headers,
						 &c->w->limits);
			}
		}
		if (bc->msg.status == 101) {
			log_warn("backend switched protocols; not supported",
				 "backend=%s", c->wb->b->name);
			backend_failed(c, -EPROTO, 0);
			return;
		}
		c->resp_head_ready = 1;
		on_response_head(c);
		return;
	}
	pump_resp(c);
}

/* --- connection lifecycle ------------------------------------------------ */

/*
 * The header array is needed only while a request is parsed and served:
 * an idle keep-alive connection gives it back to the worker's cache, which
 * is most of what an idle connection would otherwise hold. Returns 0, or
 * -1 when memory ran out (the connection is closed).
 */
static int begin_head(struct client *c)
{
	struct worker *w = c->w;

	if (c->hdrs == NULL) {
		if (w->nspare_hdrs)
			c->hdrs = w->spare_hdrs[--w->nspare_hdrs];
		else
			c->hdrs = calloc(w->limits.max_headers, sizeof(*c->hdrs));
		if (c->hdrs == NULL) {
			client_close(c);
			return -1;
		}
	}
	http_parser_init(&c->parser, 1, HTTP_M_OTHER, &c->req, c->hdrs,
			 w->limits.max_headers, &w->limits);
	return 0;
}

static void idle_hdrs_put(struct client *c)
{
	struct worker *w = c->w;

	if (c->hdrs == NULL)
		return;
	if (w->nspare_hdrs < sizeof(w->spare_hdrs) / sizeof(w->spare_hdrs[0]))
		w->spare_hdrs[w->nspare_hdrs++] = c->hdrs;
	else
		free(c->hdrs);
	c->hdrs = NULL;
	memset(&c->req, 0, sizeof(c->req));
	c->req.host_idx = -1;
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
	c->wb = NULL;
	c->ntried = 0;
	c->attempts = 0;
	c->retries = 0;
	c->req_head_sent = c->req_body_done = 0;
	c->resp_head_sent = c->resp_body_done = c->resp_head_ready = 0;
	c->close_after = 0;
	c->dechunking = 0;
	c->bwrite_n = c->cwrite_n = 0;
	c->status = 0;
	c->bytes_in = c->bytes_out = 0;
	c->sticky_set[0] = '\0';
	c->paused = 0;
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
	idle_hdrs_put(c);
	worker_buf_put(w, &c->in);
	buf_fini(&c->reqhead);
	buf_fini(&c->out);
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
		if (nread == UV_ENOBUFS) {
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
		client_timer(c, tmo(c)->client_header_ms);
		/* fall through */
	case C_HEAD:
		process_head(c);
		break;
	case C_UPSTREAM:
		c->bytes_in += (size_t)nread;
		if (!c->req_body_done)
			pump_req(c);
		/* else: the next request, read ahead; it waits in c->in. */
		break;
	case C_QUEUED:
	case C_IDEMWAIT:
		c->bytes_in += (size_t)nread;
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

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->w = w;
	uv_tcp_init(&w->loop, &c->tcp);
	uv_timer_init(&w->loop, &c->timer);
	uv_timer_init(&w->loop, &c->req_timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->req_timer.data = c;
	c->handles_open = 3;
	if (uv_accept((uv_stream_t *)&w->listener, (uv_stream_t *)&c->tcp) != 0)
		goto refuse;
	if (w->nclients >= w->proxy->client_conns_limit ||
	    w->stopping)
		goto refuse;
	uv_tcp_nodelay(&c->tcp, 1);
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
	{
		const struct cfg_access_log *al = &w->view->rt->cfg->access_log;

		if (al->enabled && al->anonymize_ip)
			accesslog_anonymize(c->peer, (uint8_t)al->ipv4_prefix,
					    (uint8_t)al->ipv6_prefix, c->peer_log,
					    sizeof(c->peer_log));
		else
			snprintf(c->peer_log, sizeof(c->peer_log), "%s", c->peer);
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
	return;
refuse:
	c->state = C_CLOSED;
	uv_close((uv_handle_t *)&c->timer, client_free_cb);
	uv_close((uv_handle_t *)&c->req_timer, client_free_cb);
	uv_close((uv_handle_t *)&c->tcp, client_free_cb);
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
