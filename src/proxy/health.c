/*
 * health.c - active HTTP health checks, on the control loop.
 *
 * Every health.interval each backend gets a fresh connection and
 * "<method> <path>" with Connection: close; a status within
 * [status_min, status_max] inside health.timeout is a pass, anything else
 * (refused, reset, timeout, another status, garbage) a failure. `fall`
 * consecutive failures take a backend out, `rise` consecutive passes put
 * it back (and start its slow start). Only the control thread writes the
 * check state; workers read just the `up` atomic.
 *
 * Checks follow the runtime: health_sync() after a start or reload keeps
 * the checks of backends that stay (with their rise/fall counts), starts
 * checks for new ones and stops those of backends that left. A check holds
 * a reference on its backend until its handles are closed.
 *
 * Backends start up: traffic flows at once, and a backend that is down at
 * start is taken out after `fall` checks (its connect failures are
 * retried on the others meanwhile).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/proxy_int.h"

struct hcheck {
	struct hcheck *next;
	struct proxy *proxy;
	struct backend *b;	     /* one reference */
	const struct cfg_pool *pool; /* of the proxy's current runtime */
	uint32_t interval_ms;
	uint32_t rise_count;
	uint32_t fall_count;
	uv_timer_t timer;
	uv_timer_t timeout;
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	int busy;     /* a check is under way (until its socket closed) */
	int stopping; /* removed: handles closing */
	int handles;  /* open handles */
	struct buf in;
	struct buf req;
	uint64_t started;
	int seen; /* mark for health_sync */
};

/* The check's method (config_health_method: GET, HEAD, OPTIONS). */
static enum http_method hc_method(int m)
{
	static const enum http_method map[] = {HTTP_M_GET, HTTP_M_HEAD,
					       HTTP_M_OPTIONS};

	return m >= 0 && m < 3 ? map[m] : HTTP_M_GET;
}

void backend_set_last(struct backend *b, const char *text)
{
	pthread_mutex_lock(&b->last_lock);
	snprintf(b->last_check, sizeof(b->last_check), "%s", text);
	pthread_mutex_unlock(&b->last_lock);
}

static void hc_handle_closed(uv_handle_t *h)
{
	struct hcheck *hc = h->data;
	struct proxy *p = hc->proxy;

	if (--hc->handles > 0)
		return;
	/* Everything of this check is closed: let the backend go. */
	hc->b->hc = NULL;
	backend_unref(hc->b);
	buf_fini(&hc->in);
	buf_fini(&hc->req);
	free(hc);
	if (p->hc_closing) {
		p->hc_closing--;
		proxy_maybe_stopped(p);
	}
}

static void check_closed_cb(uv_handle_t *h)
{
	struct hcheck *hc = h->data;

	hc->busy = 0;
	if (hc->stopping)
		hc_handle_closed(h);
}

static void check_result(struct hcheck *hc, int ok, const char *what)
{
	const struct cfg_health *h = &hc->pool->health;
	struct backend *b = hc->b;
	char text[96];
	uint64_t ms = clock_mono_ms() - hc->started;

	if (!hc->busy || uv_is_closing((uv_handle_t *)&hc->tcp))
		return;
	uv_timer_stop(&hc->timeout);
	snprintf(text, sizeof(text), "%s %s %llums", ok ? "ok" : "fail", what,
		 (unsigned long long)ms);
	backend_set_last(b, text);
	if (ok) {
		counter_add(&b->checks_ok, 1);
		hc->fall_count = 0;
		if (!atomic_load(&b->up) && ++hc->rise_count >= h->rise) {
			hc->rise_count = 0;
			atomic_store(&b->up_since_ms, clock_mono_ms());
			atomic_store(&b->up, 1);
			log_warn("backend up", "pool=%s backend=%s addr=%s check=\"%s\"",
				 b->pool, b->name, b->addr.text, text);
		}
	} else {
		counter_add(&b->checks_failed, 1);
		hc->rise_count = 0;
		if (atomic_load(&b->up) && ++hc->fall_count >= h->fall) {
			hc->fall_count = 0;
			atomic_store(&b->up, 0);
			log_warn("backend down", "pool=%s backend=%s addr=%s check=\"%s\"",
				 b->pool, b->name, b->addr.text, text);
		}
	}
	/* busy stays set until the socket is closed, so the next check
	 * cannot reuse the handle early. */
	hc->tcp.data = hc;
	uv_close((uv_handle_t *)&hc->tcp, check_closed_cb);
}

static void hc_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *out)
{
	struct hcheck *hc = h->data;

	(void)sz;
	if (buf_reserve(&hc->in, 1024) != 0) {
		out->base = NULL;
		out->len = 0;
		return;
	}
	out->base = hc->in.data + hc->in.len;
	out->len = hc->in.cap - hc->in.len - 1;
}

#define HC_HEAD_MAX 8192 /* a check's response head; more is an error */
#define HC_HEADERS 64

/*
 * The final status of the response in p[0..n), read with the project's
 * parser in response mode (interim 1xx heads are passed over). Returns
 * the status, 0 when more bytes are needed, -1 when it is not a valid
 * HTTP/1.x response head.
 */
static int status_of(const char *p, size_t n, enum http_method m)
{
	static const struct http_limits lim = {
		.max_head_bytes = HC_HEAD_MAX,
		.max_headers = HC_HEADERS,
	};
	struct http_header hdrs[HC_HEADERS];
	struct http_parser ps;
	struct http_msg msg;

	for (;;) {
		http_parser_init(&ps, 0, m, &msg, hdrs, HC_HEADERS, &lim);
		switch (http_parse(&ps, p, n)) {
		case HTTP_PARSE_AGAIN:
			return 0;
		case HTTP_PARSE_DONE:
			break;
		default:
			return -1;
		}
		if (msg.status >= 200)
			return msg.status;
		p += msg.head_len;
		n -= msg.head_len;
	}
}

static void hc_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct hcheck *hc = s->data;
	char what[32];
	int st;

	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		check_result(hc, 0, nread == UV_EOF ? "closed"
						    : uv_err_name((int)nread));
		return;
	}
	hc->in.len += (size_t)nread;
	st = status_of(hc->in.data, hc->in.len,
		       hc_method(hc->pool->health.method));
	if (st == 0)
		return; /* the parser ends a head over HC_HEAD_MAX as an error */
	if (st < 0) {
		check_result(hc, 0, "bad-response");
		return;
	}
	snprintf(what, sizeof(what), "%d", st);
	check_result(hc, (uint32_t)st >= hc->pool->health.status_min &&
				 (uint32_t)st <= hc->pool->health.status_max,
		     what);
}

static void hc_write_cb(uv_write_t *req, int status)
{
	struct hcheck *hc = req->data;

	if (status < 0)
		check_result(hc, 0, uv_err_name(status));
}

static void hc_connect_cb(uv_connect_t *req, int status)
{
	struct hcheck *hc = req->data;
	uv_buf_t wb;

	if (uv_is_closing((uv_handle_t *)&hc->tcp))
		return;
	if (status < 0) {
		check_result(hc, 0, uv_err_name(status));
		return;
	}
	wb = uv_buf_init(hc->req.data, (unsigned)hc->req.len);
	hc->write.data = hc;
	if (uv_write(&hc->write, (uv_stream_t *)&hc->tcp, &wb, 1,
		     hc_write_cb) != 0 ||
	    uv_read_start((uv_stream_t *)&hc->tcp, hc_alloc_cb, hc_read_cb) != 0)
		check_result(hc, 0, "write-failed");
}

static void hc_timeout_cb(uv_timer_t *t)
{
	check_result(t->data, 0, "timeout");
}

static void build_request(struct hcheck *hc)
{
	const struct cfg_health *h = &hc->pool->health;

	buf_reset(&hc->req);
	buf_printf(&hc->req,
		   "%s %s HTTP/1.1\r\nHost: %s\r\n"
		   "User-Agent: storekeep-health\r\n"
		   "Connection: close\r\n\r\n",
		   http_method_name(hc_method(h->method)), h->path,
		   hc->b->addr.text);
}

static void hc_tick_cb(uv_timer_t *t)
{
	struct hcheck *hc = t->data;
	uv_loop_t *loop = hc->proxy->control;

	if (hc->busy || hc->stopping)
		return; /* the previous check has not finished closing */
	hc->busy = 1;
	hc->started = clock_mono_ms();
	buf_reset(&hc->in);
	build_request(hc);
	uv_tcp_init(loop, &hc->tcp);
	hc->tcp.data = hc;
	hc->connect.data = hc;
	uv_timer_start(&hc->timeout, hc_timeout_cb, hc->pool->health.timeout_ms, 0);
	if (uv_tcp_connect(&hc->connect, &hc->tcp,
			   (const struct sockaddr *)&hc->b->addr.sa,
			   hc_connect_cb) != 0)
		check_result(hc, 0, "connect-failed");
}

static void hc_start_timer(struct hcheck *hc, size_t i, size_t n)
{
	hc->interval_ms = hc->pool->health.interval_ms;
	/* Spread the first checks so backends are not probed in one burst. */
	uv_timer_start(&hc->timer, hc_tick_cb,
		       (hc->interval_ms * i) / (n + 1) + 10, hc->interval_ms);
}

static void hc_stop(struct proxy *p, struct hcheck *hc)
{
	hc->stopping = 1;
	p->hc_closing++;
	hc->handles = 2 + (hc->busy ? 1 : 0);
	uv_close((uv_handle_t *)&hc->timer, hc_handle_closed);
	uv_close((uv_handle_t *)&hc->timeout, hc_handle_closed);
	if (hc->busy && !uv_is_closing((uv_handle_t *)&hc->tcp)) {
		hc->tcp.data = hc;
		uv_close((uv_handle_t *)&hc->tcp, check_closed_cb);
	}
	/* A tcp close already under way counts through check_closed_cb. */
}

void health_sync(struct proxy *p)
{
	struct runtime *rt = p->rt;
	struct hcheck **pp, *hc;
	size_t total = 0, i = 0;

	for (hc = p->hchecks; hc; hc = hc->next)
		hc->seen = 0;
	for (size_t pi = 0; pi < rt->npools; pi++)
		total += rt->pools[pi].n;
	for (size_t pi = 0; pi < rt->npools; pi++) {
		const struct rpool *rp = &rt->pools[pi];

		for (size_t k = 0; k < rp->n; k++, i++) {
			struct backend *b = rp->bs[k];

			if (!rp->cfg->health.enabled)
				continue;
			hc = b->hc;
			if (hc && !hc->stopping) {
				hc->seen = 1;
				hc->pool = rp->cfg;
				if (hc->interval_ms != rp->cfg->health.interval_ms)
					hc_start_timer(hc, i, total);
				continue;
			}
			if (hc)
				continue; /* still closing from a removal */
			hc = calloc(1, sizeof(*hc));
			SK_ASSERT(hc != NULL);
			hc->proxy = p;
			hc->b = b;
			atomic_fetch_add(&b->refs, 1);
			b->hc = hc;
			hc->pool = rp->cfg;
			hc->seen = 1;
			buf_init(&hc->in);
			buf_init(&hc->req);
			uv_timer_init(p->control, &hc->timer);
			uv_timer_init(p->control, &hc->timeout);
			hc->timer.data = hc;
			hc->timeout.data = hc;
			hc_start_timer(hc, i, total);
			hc->next = p->hchecks;
			p->hchecks = hc;
		}
	}
	/* Stop the checks of backends that left (or whose pool turned checks
	 * off: such a backend counts as up). */
	for (pp = &p->hchecks; (hc = *pp) != NULL;) {
		if (hc->seen) {
			pp = &hc->next;
			continue;
		}
		*pp = hc->next;
		hc_stop(p, hc);
	}
}

void health_stop(struct proxy *p)
{
	struct hcheck *hc;

	while ((hc = p->hchecks) != NULL) {
		p->hchecks = hc->next;
		hc_stop(p, hc);
	}
}
