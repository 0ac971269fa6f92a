/*
 * health.c - active HTTP health checks, on the control loop.
 *
 * Every health.interval each backend gets a fresh connection and
 * "GET <path>" with Connection: close; a status from 200 to 399 within
 * health.timeout is a pass, anything else (refused, reset, timeout, 4xx,
 * 5xx, garbage) a failure. `fall` consecutive failures take a backend out,
 * `rise` consecutive passes put it back. Only the control thread writes
 * the check state; workers read just the `up` atomic.
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

void backend_set_last(struct backend *b, const char *text)
{
	pthread_mutex_lock(&b->last_lock);
	snprintf(b->last_check, sizeof(b->last_check), "%s", text);
	pthread_mutex_unlock(&b->last_lock);
}

static const struct cfg_health *hcfg(struct backend *b)
{
	return &b->proxy->cfg->pools[0].health;
}

static void check_done_cb(uv_handle_t *h)
{
	struct backend *b = h->data;

	b->hc_busy = 0;
	b->hc_tcp_open = 0;
	if (b->proxy->hc_closing) {
		b->proxy->hc_closing--;
		proxy_maybe_stopped(b->proxy);
	}
}

static void check_result(struct backend *b, int ok, const char *what)
{
	const struct cfg_health *h = hcfg(b);
	char text[96];
	uint64_t ms = clock_mono_ms() - b->hc_started;

	if (!b->hc_busy)
		return;
	uv_timer_stop(&b->hc_timeout);
	snprintf(text, sizeof(text), "%s %s %llums", ok ? "ok" : "fail", what,
		 (unsigned long long)ms);
	backend_set_last(b, text);
	if (ok) {
		counter_add(&b->checks_ok, 1);
		b->fall_count = 0;
		if (!atomic_load(&b->up) && ++b->rise_count >= h->rise) {
			b->rise_count = 0;
			atomic_store(&b->up, 1);
			log_warn("backend up", "pool=%s backend=%s addr=%s check=\"%s\"",
				 b->proxy->cfg->pools[0].name, b->cfg->name,
				 b->cfg->addr.text, text);
		}
	} else {
		counter_add(&b->checks_failed, 1);
		b->rise_count = 0;
		if (atomic_load(&b->up) && ++b->fall_count >= h->fall) {
			b->fall_count = 0;
			atomic_store(&b->up, 0);
			log_warn("backend down", "pool=%s backend=%s addr=%s check=\"%s\"",
				 b->proxy->cfg->pools[0].name, b->cfg->name,
				 b->cfg->addr.text, text);
		}
	}
	/* hc_busy stays set until the socket is closed, so the next check
	 * cannot reuse the handle early. */
	b->hc_tcp.data = b;
	uv_close((uv_handle_t *)&b->hc_tcp, check_done_cb);
}

static void hc_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *out)
{
	struct backend *b = h->data;

	(void)sz;
	if (buf_reserve(&b->hc_in, 1024) != 0) {
		out->base = NULL;
		out->len = 0;
		return;
	}
	out->base = b->hc_in.data + b->hc_in.len;
	out->len = b->hc_in.cap - b->hc_in.len - 1;
}

/* Reads "HTTP/1.x NNN" off the status line. Returns the status, 0 when
 * more bytes are needed, -1 when it is not HTTP. */
static int status_of(const char *p, size_t n)
{
	if (n < 12)
		return memchr(p, '\n', n) ? -1 : 0;
	if (memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
	    p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' ||
	    p[10] > '9' || p[11] < '0' || p[11] > '9')
		return -1;
	return (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
}

static void hc_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct backend *b = s->data;
	char what[32];
	int st;

	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		check_result(b, 0, nread == UV_EOF ? "closed" : uv_err_name((int)nread));
		return;
	}
	b->hc_in.len += (size_t)nread;
	st = status_of(b->hc_in.data, b->hc_in.len);
	if (st == 0) {
		if (b->hc_in.len > 8192)
			check_result(b, 0, "bad-response");
		return;
	}
	if (st < 0) {
		check_result(b, 0, "bad-response");
		return;
	}
	snprintf(what, sizeof(what), "%d", st);
	check_result(b, st >= 200 && st < 400, what);
}

static void hc_write_cb(uv_write_t *req, int status)
{
	struct backend *b = req->data;

	if (status < 0 && b->hc_busy && !uv_is_closing((uv_handle_t *)&b->hc_tcp))
		check_result(b, 0, uv_err_name(status));
}

static void hc_connect_cb(uv_connect_t *req, int status)
{
	struct backend *b = req->data;
	uv_buf_t wb;

	if (uv_is_closing((uv_handle_t *)&b->hc_tcp))
		return;
	if (status < 0) {
		check_result(b, 0, uv_err_name(status));
		return;
	}
	wb = uv_buf_init(b->hc_req.data, (unsigned)b->hc_req.len);
	b->hc_write.data = b;
	if (uv_write(&b->hc_write, (uv_stream_t *)&b->hc_tcp, &wb, 1,
		     hc_write_cb) != 0 ||
	    uv_read_start((uv_stream_t *)&b->hc_tcp, hc_alloc_cb, hc_read_cb) != 0)
		check_result(b, 0, "write-failed");
}

static void hc_timeout_cb(uv_timer_t *t)
{
	check_result(t->data, 0, "timeout");
}

static void hc_tick_cb(uv_timer_t *t)
{
	struct backend *b = t->data;
	uv_loop_t *loop = b->proxy->control;

	if (b->hc_busy)
		return; /* the previous check has not finished closing */
	b->hc_busy = 1;
	b->hc_started = clock_mono_ms();
	buf_reset(&b->hc_in);
	uv_tcp_init(loop, &b->hc_tcp);
	b->hc_tcp_open = 1;
	b->hc_tcp.data = b;
	b->hc_connect.data = b;
	uv_timer_start(&b->hc_timeout, hc_timeout_cb, hcfg(b)->timeout_ms, 0);
	if (uv_tcp_connect(&b->hc_connect, &b->hc_tcp,
			   (const struct sockaddr *)&b->cfg->addr.sa,
			   hc_connect_cb) != 0)
		check_result(b, 0, "connect-failed");
}

void health_start(struct proxy *p)
{
	const struct cfg_pool *pool = &p->cfg->pools[0];

	if (!pool->health.enabled)
		return;
	for (size_t i = 0; i < p->nbackends; i++) {
		struct backend *b = &p->backends[i];

		buf_reset(&b->hc_req);
		buf_printf(&b->hc_req,
			   "GET %s HTTP/1.1\r\nHost: %s\r\n"
			   "User-Agent: storekeep-health\r\n"
			   "Connection: close\r\n\r\n",
			   pool->health.path, b->cfg->addr.text);
		uv_timer_init(p->control, &b->hc_timer);
		uv_timer_init(p->control, &b->hc_timeout);
		b->hc_timer.data = b;
		b->hc_timeout.data = b;
		/* Spread the first checks so backends are not probed in one
		 * burst. */
		uv_timer_start(&b->hc_timer, hc_tick_cb,
			       (pool->health.interval_ms * i) / (p->nbackends + 1) + 10,
			       pool->health.interval_ms);
	}
	p->health_running = 1;
}

static void hc_timer_closed_cb(uv_handle_t *h)
{
	struct backend *b = h->data;

	if (b->proxy->hc_closing) {
		b->proxy->hc_closing--;
		proxy_maybe_stopped(b->proxy);
	}
}

void health_stop(struct proxy *p)
{
	if (!p->health_running)
		return;
	p->health_running = 0;
	for (size_t i = 0; i < p->nbackends; i++) {
		struct backend *b = &p->backends[i];

		p->hc_closing += 2;
		uv_close((uv_handle_t *)&b->hc_timer, hc_timer_closed_cb);
		uv_close((uv_handle_t *)&b->hc_timeout, hc_timer_closed_cb);
		if (b->hc_tcp_open && !uv_is_closing((uv_handle_t *)&b->hc_tcp)) {
			p->hc_closing++;
			b->hc_tcp.data = b;
			uv_close((uv_handle_t *)&b->hc_tcp, check_done_cb);
		} else if (b->hc_tcp_open) {
			/* Its close is already under way; count it too. */
			p->hc_closing++;
		}
	}
}
