/*
 * server.c - a small buffered HTTP/1.1 server on a libuv loop (server.h).
 *
 * Each connection owns one read buffer. Bytes are appended to it, the
 * strict parser (http.h) runs over the head, the body is gathered (a
 * Content-Length body stays in place after the head; a chunked body is
 * decoded into a separate buffer and its coded bytes are cut out of the
 * read buffer as they are scanned), then the handler runs and the whole
 * response goes out in one uv_write. Bytes that follow a message stay in
 * the read buffer and are parsed once that response has been written, so
 * pipelined requests are answered in order.
 *
 * What it deliberately does not do: stream bodies, run handlers off the
 * loop, or speak anything but HTTP/1.x (no Upgrade, no CONNECT tunnels).
 *
 * Invariants:
 *   - at most one final response per connection is being written at a
 *     time; while it is, the connection does not read, so a client that
 *     pipelines without reading is throttled by TCP rather than buffered;
 *   - the read buffer holds at most one head (limits.max_head_bytes), one
 *     body (max_body_bytes) and one read's worth of what follows;
 *   - the connection's handles are freed only in their close callbacks,
 *     and the connection itself once both have run; write and shutdown
 *     callbacks always run before those, so they may touch it.
 */
#include "http/server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/log.h"

#define READ_CHUNK 16384
#define KEEP_READ_BUF 65536	  /* a larger body buffer is released */
#define LINGER_MS 2000		  /* wait for the peer's FIN after an error */
#define STOP_GRACE_MS 5000	  /* on stop, for a response in flight */
#define DEFAULT_MAX_BODY (8u << 20)
#define DEFAULT_HEADER_TIMEOUT 10000
#define DEFAULT_IDLE_TIMEOUT 60000

#define container_of(p, type, member)                                        \
	((type *)(void *)((char *)(p)-offsetof(type, member)))

struct conn;

struct http_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	http_server_handler_cb handler;
	void *ud;

	struct http_limits limits;
	uint64_t max_body;
	uint32_t header_timeout;
	uint32_t idle_timeout;
	char *extra_headers; /* "" when none */

	struct conn *conns; /* doubly linked, every connection not yet freed */
	unsigned nconns;
	int stopping;
	int listener_open;

	uint64_t date_sec; /* the Date header, cached per second */
	char date[32];
};

enum conn_state {
	C_HEAD,	  /* reading a request head */
	C_BODY,	  /* the head is parsed; reading its body */
	C_DRAIN,  /* a closing response is queued; input is discarded */
};

enum timer_kind {
	T_NONE,
	T_HEADER, /* a request head must be complete by then */
	T_BODY,	  /* the body must make progress by then */
	T_IDLE,	  /* keep-alive: a new request must start by then */
	T_SEND,	  /* the pending response must have been taken by then */
	T_LINGER, /* after an error: the peer's FIN must arrive by then */
};

/* A string handed to the handler; freed after the handler returns. */
struct scratch {
	struct scratch *next;
	char s[];
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shut;
	struct http_server *srv;
	struct conn *prev, *next;

	struct buf in;
	struct http_parser parser;
	struct http_msg msg;
	struct http_header *hdrs; /* limits.max_headers entries */

	enum conn_state state;
	enum timer_kind timer_kind;
	struct http_chunked chunked;
	struct buf body; /* the decoded chunked body */
	int body_too_big;
	int continue_sent;

	int resp_pending; /* a final response is being written */
	int peer_eof;	  /* the peer sent FIN; finish what we have, then go */
	int shutdown_done;
	int closing;
	int open_handles; /* freed when this drops to 0 */

	struct scratch *scratch;
	char peer[64];
};

/* What the handler sees; the public part is first so the two convert. */
struct server_req {
	struct http_server_req pub;
	struct conn *c;
};

struct write_req {
	uv_write_t req;
	struct conn *c;
	int final;
	char *data;
	size_t len;
};

static void conn_close(struct conn *c);
static void conn_process(struct conn *c);
static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b);

/* --- small helpers ----------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	SK_ASSERT(p != NULL);
	return p;
}

static void server_maybe_free(struct http_server *s)
{
	if (!s->stopping || s->listener_open || s->nconns > 0)
		return;
	free(s->extra_headers);
	s->extra_headers = NULL;
	free(s);
}

static const char *server_date(struct http_server *s)
{
	uint64_t now = clock_wall_ms();

	if (now / 1000 != s->date_sec || s->date[0] == '\0') {
		s->date_sec = now / 1000;
		clock_fmt_http(s->date, now);
	}
	return s->date;
}

static char *scratch_dup(struct conn *c, const char *p, size_t n)
{
	struct scratch *sc = malloc(sizeof(*sc) + n + 1);

	SK_ASSERT(sc != NULL);
	memcpy(sc->s, p, n);
	sc->s[n] = '\0';
	sc->next = c->scratch;
	c->scratch = sc;
	return sc->s;
}

static void scratch_free(struct conn *c)
{
	struct scratch *sc, *next;

	for (sc = c->scratch; sc != NULL; sc = next) {
		next = sc->next;
		free(sc);
	}
	c->scratch = NULL;
}

static void timer_cb(uv_timer_t *t);

static void timer_arm(struct conn *c, enum timer_kind kind, uint64_t ms)
{
	c->timer_kind = kind;
	uv_timer_start(&c->timer, timer_cb, ms, 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *c = h->data;

	(void)suggested;
	if (buf_reserve(&c->in, READ_CHUNK) < 0) {
		*b = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
		return;
	}
	*b = uv_buf_init(c->in.data + c->in.len,
			 (unsigned)(c->in.cap - c->in.len));
}

static void read_resume(struct conn *c)
{
	int r;

	if (c->closing || c->peer_eof)
		return;
	r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (r < 0 && r != UV_EALREADY) {
		log_debug("read start failed", "peer=%s err=%s", c->peer,
			  uv_strerror(r));
		conn_close(c);
	}
}

static void parser_reset(struct conn *c)
{
	http_parser_init(&c->parser, 1, HTTP_M_OTHER, &c->msg, c->hdrs,
			 c->srv->limits.max_headers, &c->srv->limits);
	c->state = C_HEAD;
	c->body_too_big = 0;
	c->continue_sent = 0;
	if (c->body.cap > KEEP_READ_BUF)
		buf_fini(&c->body);
	else
		buf_reset(&c->body);
}

/* --- closing ----------------------------------------------------------- */

static void close_cb(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct http_server *s = c->srv;

	if (--c->open_handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	buf_fini(&c->in);
	buf_fini(&c->body);
	scratch_free(c);
	free(c->hdrs);
	c->hdrs = NULL;
	free(c);
	s->nconns--;
	server_maybe_free(s);
}

/* Closes the connection now. Pending writes are cancelled (their callbacks
 * run with UV_ECANCELED before the close callbacks). */
static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, close_cb);
	uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	c->shutdown_done = 1;
	if (c->closing)
		return;
	if (status < 0 || c->peer_eof || c->srv->stopping) {
		conn_close(c);
		return;
	}
	/* Our side is done. Keep reading (and discarding) until the peer
	 * closes too, so that unread request bytes do not make the kernel
	 * answer with a RST that could destroy the response in flight. */
	timer_arm(c, T_LINGER, LINGER_MS);
}

/* --- writing ----------------------------------------------------------- */

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *w = container_of(req, struct write_req, req);
	struct conn *c = w->c;
	int final = w->final;

	free(w->data);
	free(w);
	if (final)
		c->resp_pending = 0;
	if (c->closing)
		return;
	if (status < 0) {
		log_debug("write failed", "peer=%s err=%s", c->peer,
			  uv_strerror(status));
		conn_close(c);
		return;
	}
	if (!final || c->state == C_DRAIN)
		return;
	/* The response is out: serve what the client pipelined behind it, or
	 * wait for its next request. */
	if (c->in.len > 0) {
		timer_arm(c, T_HEADER, c->srv->header_timeout);
	} else {
		/* An idle keep-alive connection holds no buffer. */
		buf_fini(&c->in);
		timer_arm(c, T_IDLE, c->srv->idle_timeout);
	}
	conn_process(c);
}

/* Queues out (taken over and left empty). A final write is a response;
 * an interim one is a 100 Continue. Returns 0 or -1 if the connection was
 * closed. */
static int conn_write(struct conn *c, struct buf *out, int final)
{
	struct write_req *w = xcalloc(1, sizeof(*w));
	uv_buf_t b;
	int r;

	w->c = c;
	w->final = final;
	w->data = buf_steal(out, &w->len);
	b = uv_buf_init(w->data, (unsigned)w->len);
	r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (r < 0) {
		free(w->data);
		free(w);
		log_debug("write failed", "peer=%s err=%s", c->peer,
			  uv_strerror(r));
		conn_close(c);
		return -1;
	}
	if (final) {
		c->resp_pending = 1;
		timer_arm(c, T_SEND, c->srv->idle_timeout);
	}
	return 0;
}

/* Switches to draining: the response just queued is the last one. Input
 * is read and dropped; the write side is shut down after the response. */
static void conn_finish(struct conn *c)
{
	int r;

	c->state = C_DRAIN;
	buf_reset(&c->in);
	c->shut.data = c;
	r = uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb);
	if (r < 0) {
		conn_close(c);
		return;
	}
	read_resume(c);
}

/* Answers with an error and closes; for requests we could not parse,
 * that are too large, or that timed out. */
static void conn_fail(struct conn *c, int status, const char *detail)
{
	struct http_server *s = c->srv;
	struct buf tmp, out;
	const char *end;
	size_t split;

	buf_init(&tmp);
	buf_init(&out);
	http_error_response(&tmp, status, detail, 1);
	/* Error responses carry Date and the extra headers like any other:
	 * they go in just before the empty line that ends the head. */
	end = memmem(tmp.data, tmp.len, "\r\n\r\n", 4);
	split = end != NULL ? (size_t)(end - tmp.data) + 2 : tmp.len;
	buf_append(&out, tmp.data, split);
	if (end != NULL) {
		buf_printf(&out, "Date: %s\r\n", server_date(s));
		buf_appends(&out, s->extra_headers);
	}
	buf_append(&out, tmp.data + split, tmp.len - split);
	buf_fini(&tmp);
	if (conn_write(c, &out, 1) == 0)
		conn_finish(c);
	buf_fini(&out);
}

/* --- requests ---------------------------------------------------------- */

static void timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;
	enum timer_kind kind = c->timer_kind;

	c->timer_kind = T_NONE;
	switch (kind) {
	case T_HEADER:
	case T_BODY:
		/* Nothing received yet on this request: just go, as for an
		 * idle connection. Otherwise say why. */
		if (kind == T_HEADER && c->in.len == 0) {
			conn_close(c);
			return;
		}
		log_debug("request timeout", "peer=%s", c->peer);
		if (c->resp_pending || c->state == C_DRAIN)
			conn_close(c);
		else
			conn_fail(c, 408, NULL);
		return;
	case T_IDLE:
	case T_SEND:
	case T_LINGER:
	case T_NONE:
		conn_close(c);
		return;
	}
}

static void chunk_data_cb(void *ud, const char *p, size_t n)
{
	struct conn *c = ud;

	if (c->body_too_big)
		return;
	if (c->body.len + n > c->srv->max_body ||
	    buf_reserve(&c->body, n) < 0) {
		c->body_too_big = 1;
		return;
	}
	buf_append(&c->body, p, n);
}

static void send_continue(struct conn *c)
{
	static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
	struct buf out;

	if (!c->msg.expect_continue || c->continue_sent)
		return;
	c->continue_sent = 1;
	buf_init(&out);
	buf_append(&out, line, sizeof(line) - 1);
	conn_write(c, &out, 0);
	buf_fini(&out);
}

/*
 * Gathers the body of the parsed head. Returns 1 when the message is
 * complete (*msg_len bytes of c->in), 0 when more bytes are needed, -1
 * when an error response was queued.
 */
static int body_gather(struct conn *c, size_t *msg_len, const char **body,
		       size_t *body_len)
{
	size_t head = c->msg.head_len;
	size_t have = c->in.len - head;
	ssize_t n;

	switch (c->msg.body) {
	case HTTP_BODY_NONE:
	case HTTP_BODY_EOF: /* not for requests; the parser never says so */
		*msg_len = head;
		*body = c->in.data + head;
		*body_len = 0;
		return 1;
	case HTTP_BODY_LENGTH:
		if (c->msg.content_length > c->srv->max_body) {
			conn_fail(c, 413, "the body is too large");
			return -1;
		}
		if (have < c->msg.content_length) {
			if (have == 0)
				send_continue(c);
			return 0;
		}
		*msg_len = head + (size_t)c->msg.content_length;
		*body = c->in.data + head;
		*body_len = (size_t)c->msg.content_length;
		return 1;
	case HTTP_BODY_CHUNKED:
		if (have == 0) {
			send_continue(c);
			return 0;
		}
		n = http_chunked_feed(&c->chunked, c->in.data + head, have,
				      chunk_data_cb, c);
		if (n < 0) {
			conn_fail(c, 400, c->chunked.reason);
			return -1;
		}
		if (c->body_too_big) {
			conn_fail(c, 413, "the body is too large");
			return -1;
		}
		/* The coded bytes are spent: cut them out so the read buffer
		 * holds the head followed by whatever comes next. */
		memmove(c->in.data + head, c->in.data + head + (size_t)n,
			have - (size_t)n);
		c->in.len -= (size_t)n;
		if (!c->chunked.done)
			return 0;
		*msg_len = head;
		*body = c->body.data != NULL ? c->body.data : "";
		*body_len = c->body.len;
		return 1;
	}
	return -1;
}

/* Splits the target into path and query, NUL-terminated scratch copies.
 * The absolute form keeps only its path. */
static void target_split(struct conn *c, struct http_server_req *req)
{
	const char *t = http_span_ptr(c->in.data, c->msg.target);
	size_t n = c->msg.target.len, i, q;

	if (n > 0 && t[0] != '/' && t[0] != '*') {
		const char *sep = memchr(t, ':', n);

		if (sep != NULL && (size_t)(sep - t) + 3 <= n &&
		    sep[1] == '/' && sep[2] == '/') {
			size_t start = (size_t)(sep - t) + 3;

			for (i = start; i < n && t[i] != '/' && t[i] != '?'; i++)
				;
			t += i;
			n -= i;
		}
	}
	for (q = 0; q < n && t[q] != '?'; q++)
		;
	req->path = q > 0 ? scratch_dup(c, t, q) : scratch_dup(c, "/", 1);
	req->query = q < n ? scratch_dup(c, t + q + 1, n - q - 1)
			   : scratch_dup(c, "", 0);
}

static int status_has_body(int status)
{
	return !(status < 200 || status == 204 || status == 304);
}

static void response_serialize(struct conn *c, struct http_server_res *res,
			       int head_only, int keep, struct buf *out)
{
	struct http_server *s = c->srv;
	int status = res->status;

	if (status < 100 || status > 999)
		status = 500;
	buf_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status,
		   http_status_reason(status), server_date(s));
	buf_appends(out, s->extra_headers);
	if (res->headers.len > 0)
		buf_append(out, res->headers.data, res->headers.len);
	if (status_has_body(status))
		buf_printf(out, "Content-Length: %zu\r\n", res->body.len);
	if (!keep)
		buf_appends(out, "Connection: close\r\n");
	else if (c->msg.version_minor == 0)
		buf_appends(out, "Connection: keep-alive\r\n");
	buf_appends(out, "\r\n");
	if (!head_only && status_has_body(status) && res->body.len > 0)
		buf_append(out, res->body.data, res->body.len);
}

static void dispatch(struct conn *c, size_t msg_len, const char *body,
		     size_t body_len)
{
	struct http_server *s = c->srv;
	struct server_req sr;
	struct http_server_res res;
	struct buf out;
	int keep;

	memset(&sr, 0, sizeof(sr));
	sr.c = c;
	sr.pub.base = c->in.data;
	sr.pub.msg = &c->msg;
	sr.pub.body = body;
	sr.pub.body_len = body_len;
	memcpy(sr.pub.peer, c->peer, sizeof(sr.pub.peer));
	target_split(c, &sr.pub);

	res.status = 200;
	buf_init(&res.headers);
	buf_init(&res.body);
	res.close = 0;

	if (c->msg.method == HTTP_M_CONNECT) {
		/* Tunnels are not served here; the handler never sees one.
		 * An Upgrade header is simply not acted upon (RFC 9110
		 * section 7.8 lets a server ignore it). */
		res.status = 501;
		res.close = 1;
		buf_appends(&res.body, "501 Not Implemented\n");
	} else {
		s->handler(s->ud, &sr.pub, &res);
	}
	scratch_free(c);

	keep = c->msg.keep_alive && !res.close && !s->stopping;
	buf_init(&out);
	response_serialize(c, &res, c->msg.method == HTTP_M_HEAD, keep, &out);
	buf_fini(&res.headers);
	buf_fini(&res.body);

	/* The request's bytes (and its body) are no longer needed. */
	buf_consume(&c->in, msg_len);
	parser_reset(c);

	if (conn_write(c, &out, 1) == 0 && !keep)
		conn_finish(c);
	buf_fini(&out);
}

/*
 * Moves the connection forward with what is in its read buffer: parses,
 * gathers the body, dispatches. Stops at the first request that needs
 * more bytes, or once a response is being written (the next request is
 * looked at when that write completes).
 */
static void conn_process(struct conn *c)
{
	struct http_server *s = c->srv;
	size_t msg_len = 0, body_len = 0;
	const char *body = NULL;
	int r;

	while (!c->closing && c->state != C_DRAIN && !c->resp_pending) {
		if (c->state == C_HEAD) {
			if (c->in.len == 0)
				goto need_more;
			if (c->timer_kind == T_IDLE || c->timer_kind == T_NONE)
				timer_arm(c, T_HEADER, s->header_timeout);
			r = http_parse(&c->parser, c->in.data, c->in.len);
			if (r == HTTP_PARSE_AGAIN)
				goto need_more;
			if (r == HTTP_PARSE_ERROR) {
				log_debug("bad request", "peer=%s status=%d "
					  "reason=\"%s\"", c->peer,
					  c->parser.status,
					  c->parser.reason != NULL
						  ? c->parser.reason : "");
				conn_fail(c, c->parser.status,
					  c->parser.reason);
				return;
			}
			c->state = C_BODY;
			if (c->msg.body == HTTP_BODY_CHUNKED)
				http_chunked_init(&c->chunked, 0);
			timer_arm(c, T_BODY, s->header_timeout);
		}
		r = body_gather(c, &msg_len, &body, &body_len);
		if (r < 0)
			return;
		if (r == 0)
			goto need_more;
		dispatch(c, msg_len, body, body_len);
	}
	return;

need_more:
	if (c->peer_eof) {
		/* The peer will send nothing more; a partial request can
		 * never complete. */
		conn_close(c);
		return;
	}
	read_resume(c);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = stream->data;

	(void)b;
	if (c->closing)
		return;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (nread != UV_EOF) {
			log_debug("read failed", "peer=%s err=%s", c->peer,
				  uv_strerror((int)nread));
			conn_close(c);
			return;
		}
		c->peer_eof = 1;
		uv_read_stop(stream);
		if (c->state == C_DRAIN) {
			if (c->shutdown_done)
				conn_close(c);
			return;
		}
		if (!c->resp_pending)
			conn_process(c);
		return;
	}
	if (c->state == C_DRAIN)
		return; /* discarded: the bytes were never counted in */
	c->in.len += (size_t)nread;
	if (c->state == C_BODY && c->timer_kind == T_BODY)
		timer_arm(c, T_BODY, c->srv->header_timeout);
	conn_process(c);
	/* Throttle: nothing more is read while a response is in flight. */
	if (!c->closing && c->resp_pending && c->state != C_DRAIN)
		uv_read_stop(stream);
}

/* --- the listener ------------------------------------------------------ */

static void peer_name(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	c->peer[0] = '\0';
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET)
		uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
	else if (ss.ss_family == AF_INET6)
		uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer,
			    sizeof(c->peer));
}

static void connection_cb(uv_stream_t *listener, int status)
{
	struct http_server *s = listener->data;
	struct conn *c;
	int r;

	if (status < 0) {
		log_warn("accept failed", "err=%s", uv_strerror(status));
		return;
	}
	if (s->stopping)
		return;
	c = xcalloc(1, sizeof(*c));
	c->srv = s;
	c->hdrs = xcalloc(s->limits.max_headers, sizeof(*c->hdrs));
	buf_init(&c->in);
	buf_init(&c->body);
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	parser_reset(c);

	r = uv_accept(listener, (uv_stream_t *)&c->tcp);
	if (r < 0) {
		log_warn("accept failed", "err=%s", uv_strerror(r));
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	peer_name(c);
	timer_arm(c, T_HEADER, s->header_timeout);
	read_resume(c);
}

static void listener_close_cb(uv_handle_t *h)
{
	struct http_server *s = h->data;

	s->listener_open = 0;
	server_maybe_free(s);
}

/* Resolves "host:port" or "[v6]:port" (host may be empty: all addresses).
 * Returns 0 or a negative errno with err set. */
static int addr_resolve(const char *listen, struct sockaddr_storage *ss,
			char *err, size_t errlen)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints, *ai = NULL;
	size_t hl;
	int r;

	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');

		if (end == NULL || end[1] != ':')
			goto bad;
		hl = (size_t)(end - listen - 1);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, hl);
		port = end + 2;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			goto bad;
		hl = (size_t)(colon - listen);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, listen, hl);
		port = colon + 1;
	}
	host[hl] = '\0';
	if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
	    strlen(port) > 5 || atoi(port) > 65535)
		goto bad;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(hl > 0 ? host : NULL, port, &hints, &ai);
	if (r != 0 || ai == NULL) {
		snprintf(err, errlen, "cannot resolve %s: %s", listen,
			 gai_strerror(r));
		return -EINVAL;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
bad:
	snprintf(err, errlen,
		 "bad listen address \"%s\" (expected host:port or [v6]:port)",
		 listen);
	return -EINVAL;
}

int http_server_start(uv_loop_t *loop, const struct http_server_opts *opts,
		      http_server_handler_cb handler, void *ud,
		      struct http_server **out, char *err, size_t errlen)
{
	struct http_server *s;
	struct sockaddr_storage ss;
	int r;

	*out = NULL;
	if ((opts->listen == NULL || opts->listen[0] == '\0') &&
	    opts->fd < 0) {
		snprintf(err, errlen, "no listen address");
		return -EINVAL;
	}
	s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->handler = handler;
	s->ud = ud;
	s->limits = opts->limits;
	if (s->limits.max_head_bytes == 0)
		s->limits.max_head_bytes = 16384;
	if (s->limits.max_headers == 0)
		s->limits.max_headers = 100;
	if (s->limits.max_target_bytes == 0)
		s->limits.max_target_bytes = 8192;
	s->max_body = opts->max_body_bytes ? opts->max_body_bytes
					   : DEFAULT_MAX_BODY;
	s->header_timeout = opts->header_timeout_ms ? opts->header_timeout_ms
						    : DEFAULT_HEADER_TIMEOUT;
	s->idle_timeout = opts->idle_timeout_ms ? opts->idle_timeout_ms
						: DEFAULT_IDLE_TIMEOUT;
	s->extra_headers = strdup(opts->extra_headers ? opts->extra_headers
						      : "");
	SK_ASSERT(s->extra_headers != NULL);

	r = uv_tcp_init(loop, &s->listener);
	if (r < 0) {
		snprintf(err, errlen, "tcp init: %s", uv_strerror(r));
		free(s->extra_headers);
		free(s);
		return r;
	}
	s->listener.data = s;
	s->listener_open = 1;

	if (opts->fd >= 0) {
		r = uv_tcp_open(&s->listener, opts->fd);
		if (r < 0) {
			snprintf(err, errlen, "fd %d: %s", opts->fd,
				 uv_strerror(r));
			goto fail;
		}
	} else {
		r = addr_resolve(opts->listen, &ss, err, errlen);
		if (r < 0)
			goto fail;
		r = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
		if (r < 0) {
			snprintf(err, errlen, "bind %s: %s", opts->listen,
				 uv_strerror(r));
			goto fail;
		}
	}
	r = uv_listen((uv_stream_t *)&s->listener, 511, connection_cb);
	if (r < 0) {
		snprintf(err, errlen, "listen %s: %s",
			 opts->fd >= 0 ? "fd" : opts->listen, uv_strerror(r));
		goto fail;
	}
	*out = s;
	return 0;

fail:
	/* The listener handle is initialised, so it can only go through
	 * uv_close; the server is freed by its close callback. */
	s->stopping = 1;
	uv_close((uv_handle_t *)&s->listener, listener_close_cb);
	return r;
}

void http_server_stop(struct http_server *s)
{
	struct conn *c;

	if (s == NULL || s->stopping)
		return;
	s->stopping = 1;
	uv_close((uv_handle_t *)&s->listener, listener_close_cb);
	/* A response in flight is allowed to finish (the send timer bounds
	 * it) and its connection then closes; everything else goes now. */
	for (c = s->conns; c != NULL; c = c->next) {
		if (!c->resp_pending) {
			conn_close(c);
			continue;
		}
		if (c->state != C_DRAIN)
			conn_finish(c);
		if (!c->closing)
			timer_arm(c, T_SEND,
				  s->idle_timeout < STOP_GRACE_MS
					  ? s->idle_timeout
					  : STOP_GRACE_MS);
	}
}

const char *http_server_req_header(struct http_server_req *req,
				   const char *name)
{
	struct server_req *sr = (struct server_req *)req;
	struct http_span v;
	int i;

	i = http_msg_find(req->msg, req->base, name, 0);
	if (i < 0)
		return NULL;
	v = req->msg->headers[i].value;
	return scratch_dup(sr->c, http_span_ptr(req->base, v), v.len);
}

int http_server_port(struct http_server *s)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss), r;

	r = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
	if (r < 0)
		return r;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -EAFNOSUPPORT;
}
