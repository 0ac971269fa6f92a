/*
 * server.h - a small buffered HTTP/1.1 server on a libuv loop.
 *
 * For the admin API and the demo shop, not for the proxy's hot path: each
 * request is read whole (head and body, bounded by the limits) before the
 * handler runs, and the handler fills a whole response. Handlers run on the
 * loop thread and must not block for long. Keep-alive, pipelining (served
 * in order), Content-Length and chunked request bodies, HEAD, Expect:
 * 100-continue and idle/header timeouts are handled here; parse errors get
 * the parser's status with a short body and the connection is closed.
 */
#ifndef SK_HTTP_SERVER_H
#define SK_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "http/http.h"

struct http_server;

struct http_server_req {
	const char *base;	   /* the request head bytes */
	const struct http_msg *msg; /* spans point into base */
	char *path;		   /* target up to '?', NUL-terminated */
	char *query;		   /* after '?', NUL-terminated, "" if none */
	const char *body;	   /* decoded body (chunked is decoded) */
	size_t body_len;
	char peer[64];		   /* client IP as text */
};

struct http_server_res {
	int status;	     /* default 200 */
	struct buf headers;  /* extra header lines, each "Name: value\r\n" */
	struct buf body;
	int close;	     /* close the connection after this response */
};

typedef void (*http_server_handler_cb)(void *ud, struct http_server_req *req,
				       struct http_server_res *res);

struct http_server_opts {
	const char *listen;	    /* "127.0.0.1:8081", "[::1]:80" */
	int fd;			    /* or an already-listening socket; -1 if none */
	struct http_limits limits;  /* 0 fields take defaults */
	uint64_t max_body_bytes;    /* 413 above; 0 = 8 MiB */
	uint32_t header_timeout_ms; /* 0 = 10 s */
	uint32_t idle_timeout_ms;   /* keep-alive idle; 0 = 60 s */
	const char *extra_headers;  /* added to every response, e.g.
				       "X-Backend: shop1\r\n"; may be NULL */
};

/*
 * Starts listening on loop. Returns 0 and *out, or a negative errno with a
 * message in err. The handler is called once per complete request; the
 * server adds Date, Content-Length and Connection and serializes.
 */
int http_server_start(uv_loop_t *loop, const struct http_server_opts *opts,
		      http_server_handler_cb handler, void *ud,
		      struct http_server **out, char *err, size_t errlen);

/* Closes the listener and every connection; the memory goes once the
 * loop has run the close callbacks. */
void http_server_stop(struct http_server *s);

/* The value of the first header named name, NUL-terminated in a scratch
 * copy owned by the request, or NULL. */
const char *http_server_req_header(struct http_server_req *req,
				   const char *name);

/* The bound port (useful with port 0), or -errno. */
int http_server_port(struct http_server *s);

#endif
