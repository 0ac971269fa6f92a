/*
 * notify_io.c - running one attempt: an HTTP POST or an SMTP mail through
 * libcurl's multi interface on the libuv loop, or a command through
 * uv_spawn.
 *
 * libcurl on libuv: libcurl says which sockets it wants watched
 * (CURLMOPT_SOCKETFUNCTION) and when it wants to be called back
 * (CURLMOPT_TIMERFUNCTION); we keep a uv_poll per socket and one
 * uv_timer, and hand their events to curl_multi_socket_action(), then
 * collect finished transfers with curl_multi_info_read(). Nothing here
 * blocks: name resolution is libcurl's threaded resolver.
 *
 * A command runs without a shell, detached into a process group of its
 * own, stdin a pipe that gets the body and is then closed, stdout and
 * stderr pipes read into one bounded buffer (its last line becomes the
 * error message). At the timeout the whole group gets SIGKILL. The
 * attempt is judged when the program has exited and its output pipes
 * reached their end, or at the timeout.
 *
 * An attempt's memory outlives its result: notify_attempt_done() is
 * called when the outcome is known, the struct is freed when its last
 * handle has closed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/notify_int.h"

#define RESPONSE_KEEP	       512 /* bytes of an HTTP answer kept for errors */
#define OUTPUT_KEEP	       4096 /* bytes of a command's output kept */
#define CONNECT_TIMEOUT_MAX_MS 10000

struct notify_attempt {
	struct nchannel *ch; /* NULL once abandoned or judged */
	struct notify *n;
	enum notify_type type;
	struct buf body;
	size_t sent; /* SMTP: bytes of body given to libcurl */

	/* libcurl */
	CURL *easy;
	struct curl_slist *hdrs, *rcpt;
	struct buf resp;
	char errbuf[CURL_ERROR_SIZE];

	/* command */
	uv_process_t proc;
	uv_pipe_t in, out, err;
	uv_timer_t timer;
	uv_write_t wr;
	int open; /* command handles not yet closed */
	int eofs; /* output pipes at their end (2: both) */
	bool exited, timed_out;
	int64_t status;
	int term_signal;
	int pid;
};

struct csock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct notify *n;
};

/* --- libcurl on libuv ---------------------------------------------------- */

static void check_done(struct notify *n);

static void csock_closed(uv_handle_t *h)
{
	struct csock *cs = h->data;
	struct notify *n = cs->n;

	free(cs);
	notify_closed(n);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct csock *cs = h->data;
	struct notify *n = cs->n;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(n->multi, cs->fd, flags, &running);
	check_done(n);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
		     void *socketp)
{
	struct notify *n = userp;
	struct csock *cs = socketp;
	int ev = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (cs) {
			uv_poll_stop(&cs->poll);
			curl_multi_assign(n->multi, fd, NULL);
			notify_closing(n);
			uv_close((uv_handle_t *)&cs->poll, csock_closed);
		}
		return 0;
	}
	if (cs == NULL) {
		cs = calloc(1, sizeof(*cs));
		SK_ASSERT(cs != NULL);
		cs->fd = fd;
		cs->n = n;
		if (uv_poll_init_socket(n->loop, &cs->poll, fd) < 0) {
			free(cs);
			return -1;
		}
		cs->poll.data = cs;
		curl_multi_assign(n->multi, fd, cs);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&cs->poll, ev, poll_cb);
	return 0;
}

static void curl_timer_cb(uv_timer_t *t)
{
	struct notify *n = t->data;
	int running;

	curl_multi_socket_action(n->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(n);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct notify *n = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&n->curl_timer);
	else
		uv_timer_start(&n->curl_timer, curl_timer_cb,
			       (uint64_t)timeout_ms, 0);
	return 0;
}

int notify_io_init(struct notify *n)
{
	n->multi = curl_multi_init();
	if (n->multi == NULL)
		return -ENOMEM;
	curl_multi_setopt(n->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(n->multi, CURLMOPT_SOCKETDATA, n);
	curl_multi_setopt(n->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(n->multi, CURLMOPT_TIMERDATA, n);
	SK_ASSERT(uv_timer_init(n->loop, &n->curl_timer) == 0);
	n->curl_timer.data = n;
	return 0;
}

static void curl_timer_closed(uv_handle_t *h)
{
	notify_closed(h->data);
}

void notify_io_fini(struct notify *n)
{
	/* Every easy handle is gone (the channels were closed first); the
	 * cleanup closes cached connections, which may still call
	 * socket_cb. */
	curl_multi_cleanup(n->multi);
	n->multi = NULL;
	notify_closing(n);
	uv_close((uv_handle_t *)&n->curl_timer, curl_timer_closed);
}

/* --- HTTP and SMTP ------------------------------------------------------- */

static void attempt_free(struct notify_attempt *at)
{
	buf_fini(&at->body);
	buf_fini(&at->resp);
	curl_slist_free_all(at->hdrs);
	curl_slist_free_all(at->rcpt);
	free(at);
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct notify_attempt *at = ud;
	size_t n = size * nmemb;

	if (at->resp.len < RESPONSE_KEEP)
		buf_append(&at->resp, p,
			   n < RESPONSE_KEEP - at->resp.len
				   ? n
				   : RESPONSE_KEEP - at->resp.len);
	return n;
}

static size_t read_cb(char *p, size_t size, size_t nmemb, void *ud)
{
	struct notify_attempt *at = ud;
	size_t room = size * nmemb, left = at->body.len - at->sent;
	size_t n = left < room ? left : room;

	memcpy(p, at->body.data + at->sent, n);
	at->sent += n;
	return n;
}

/* Errors that another attempt will not cure. */
static bool curl_permanent(CURLcode rc)
{
	switch (rc) {
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_LOGIN_DENIED:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_NOT_BUILT_IN:
		return true;
	default:
		return false;
	}
}

static void http_done(struct notify_attempt *at, CURLcode rc)
{
	struct nchannel *ch = at->ch;
	char err[256];
	long code = 0;
	bool ok = false, retry = true;

	curl_easy_getinfo(at->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(at->n->multi, at->easy);
	curl_easy_cleanup(at->easy);
	at->easy = NULL;
	if (ch == NULL) {
		attempt_free(at);
		return;
	}
	if (rc != CURLE_OK) {
		snprintf(err, sizeof(err), "%s",
			 at->errbuf[0] ? at->errbuf : curl_easy_strerror(rc));
		retry = !curl_permanent(rc);
	} else if (at->type == NOTIFY_EMAIL) {
		ok = true;
	} else if (code >= 200 && code < 300) {
		ok = true;
	} else {
		/* The start of the answer tells the operator why. */
		for (size_t i = 0; i < at->resp.len; i++)
			if ((unsigned char)at->resp.data[i] < 0x20)
				at->resp.data[i] = ' ';
		snprintf(err, sizeof(err), "HTTP %ld: %.*s", code,
			 (int)(at->resp.len > 200 ? 200 : at->resp.len),
			 at->resp.data ? at->resp.data : "");
		retry = code >= 500 || code == 408 || code == 429;
	}
	attempt_free(at);
	notify_attempt_done(ch, ok, retry, ok ? NULL : err);
}

static void check_done(struct notify *n)
{
	CURLMsg *m;
	int left;

	while (n->multi && (m = curl_multi_info_read(n->multi, &left))) {
		struct notify_attempt *at = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
				  (char **)&at);
		http_done(at, m->data.result);
	}
}

static int start_curl(struct notify_attempt *at, const struct nconf *c)
{
	CURL *e = curl_easy_init();
	uint32_t cto = c->timeout_ms < CONNECT_TIMEOUT_MAX_MS
			       ? c->timeout_ms
			       : CONNECT_TIMEOUT_MAX_MS;

	if (e == NULL)
		return -ENOMEM;
	at->easy = e;
	curl_easy_setopt(e, CURLOPT_PRIVATE, at);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, at->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_URL, c->url);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->type == NOTIFY_WEBHOOK) {
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		at->hdrs = curl_slist_append(at->hdrs,
					     "Content-Type: application/json");
		at->hdrs = curl_slist_append(at->hdrs, "User-Agent: storekeep");
		/* libcurl's "Expect: 100-continue" would cost a round trip. */
		at->hdrs = curl_slist_append(at->hdrs, "Expect:");
		for (size_t i = 0; i < c->nheaders; i++)
			at->hdrs = curl_slist_append(at->hdrs, c->headers[i]);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, at->hdrs);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, at->body.data);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)at->body.len);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, at);
	} else {
		static const long use_ssl[] = {
			[NOTIFY_TLS_TRY] = CURLUSESSL_TRY,
			[NOTIFY_TLS_ALL] = CURLUSESSL_ALL,
			[NOTIFY_TLS_NONE] = CURLUSESSL_NONE,
		};
		char addr[300];

		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
		curl_easy_setopt(e, CURLOPT_USE_SSL, use_ssl[c->tls]);
		snprintf(addr, sizeof(addr), "<%s>", c->from);
		curl_easy_setopt(e, CURLOPT_MAIL_FROM, addr);
		for (size_t i = 0; i < c->nto; i++) {
			snprintf(addr, sizeof(addr), "<%s>", c->to[i]);
			at->rcpt = curl_slist_append(at->rcpt, addr);
		}
		curl_easy_setopt(e, CURLOPT_MAIL_RCPT, at->rcpt);
		if (c->username) {
			curl_easy_setopt(e, CURLOPT_USERNAME, c->username);
			curl_easy_setopt(e, CURLOPT_PASSWORD,
					 c->password ? c->password : "");
		}
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, at);
		curl_easy_setopt(e, CURLOPT_INFILESIZE, (long)at->body.len);
	}
	if (curl_multi_add_handle(at->n->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		at->easy = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* --- commands ------------------------------------------------------------ */

static void cmd_handle_closed(uv_handle_t *h)
{
	struct notify_attempt *at = h->data;
	struct notify *n = at->n;

	if (--at->open == 0) {
		attempt_free(at);
		notify_closed(n); /* the attempt's own hold, see below */
	}
	notify_closed(n);
}

static void cmd_close(struct notify_attempt *at, uv_handle_t *h)
{
	if (uv_is_closing(h))
		return;
	notify_closing(at->n);
	uv_close(h, cmd_handle_closed);
}

/* Judges the command once, when it is over or out of time. */
static void cmd_judge(struct notify_attempt *at)
{
	struct nchannel *ch = at->ch;
	char err[300], last[200] = "";
	bool ok;

	if (ch == NULL)
		return;
	at->ch = NULL;
	if (at->pid > 0 && (!at->exited || at->eofs < 2))
		(void)uv_kill(-at->pid, SIGKILL);
	uv_timer_stop(&at->timer);
	/* The last non-empty line of what it printed. */
	if (at->resp.len) {
		size_t end = at->resp.len, b;

		while (end && (at->resp.data[end - 1] == '\n' ||
			       at->resp.data[end - 1] == '\r'))
			end--;
		b = end;
		while (b && at->resp.data[b - 1] != '\n')
			b--;
		snprintf(last, sizeof(last), ": %.*s", (int)(end - b),
			 at->resp.data + b);
		for (char *p = last; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
	}
	ok = at->exited && !at->timed_out && at->status == 0 &&
	     at->term_signal == 0;
	if (at->timed_out)
		snprintf(err, sizeof(err), "timed out after %u ms, killed%s",
			 ch->c.timeout_ms, last);
	else if (at->term_signal)
		snprintf(err, sizeof(err), "killed by signal %d%s",
			 at->term_signal, last);
	else
		snprintf(err, sizeof(err), "exit status %lld%s",
			 (long long)at->status, last);
	cmd_close(at, (uv_handle_t *)&at->out);
	cmd_close(at, (uv_handle_t *)&at->err);
	cmd_close(at, (uv_handle_t *)&at->in);
	cmd_close(at, (uv_handle_t *)&at->timer);
	if (at->exited)
		cmd_close(at, (uv_handle_t *)&at->proc);
	notify_attempt_done(ch, ok, true, ok ? NULL : err);
}

static void exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct notify_attempt *at = p->data;

	at->exited = true;
	at->status = status;
	at->term_signal = sig;
	if (at->ch == NULL) {
		/* Judged or abandoned already: only the handle is left. */
		cmd_close(at, (uv_handle_t *)&at->proc);
		return;
	}
	if (at->eofs == 2)
		cmd_judge(at);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	static char chunk[4096];

	(void)h;
	(void)hint;
	/* One loop thread: a static chunk is enough, data is copied out
	 * at once. */
	*b = uv_buf_init(chunk, sizeof(chunk));
}

static void read_out_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct notify_attempt *at = s->data;

	if (nread > 0) {
		/* Keep the tail: the last line is the interesting one. */
		buf_append(&at->resp, b->base, (size_t)nread);
		if (at->resp.len > OUTPUT_KEEP)
			buf_consume(&at->resp, at->resp.len - OUTPUT_KEEP);
		return;
	}
	if (nread == 0)
		return;
	uv_read_stop(s);
	at->eofs++;
	if (at->exited && at->eofs == 2 && at->ch)
		cmd_judge(at);
}

static void write_cb_cmd(uv_write_t *w, int status)
{
	struct notify_attempt *at = w->data;

	(void)status; /* a program that does not read its stdin may exit */
	cmd_close(at, (uv_handle_t *)&at->in);
}

static void cmd_timeout_cb(uv_timer_t *t)
{
	struct notify_attempt *at = t->data;

	at->timed_out = true;
	cmd_judge(at);
}

static int start_command(struct notify_attempt *at, const struct nconf *c)
{
	struct notify *n = at->n;
	uv_process_options_t o = {0};
	uv_stdio_container_t io[3];
	uv_buf_t wb;
	int e;

	/* A command attempt holds n until its last handle has closed: a
	 * stop must not free n while the killed process has yet to be
	 * reaped (its handle closes in exit_cb). */
	notify_closing(n);
	SK_ASSERT(uv_pipe_init(n->loop, &at->in, 0) == 0);
	SK_ASSERT(uv_pipe_init(n->loop, &at->out, 0) == 0);
	SK_ASSERT(uv_pipe_init(n->loop, &at->err, 0) == 0);
	SK_ASSERT(uv_timer_init(n->loop, &at->timer) == 0);
	at->in.data = at->out.data = at->err.data = at;
	at->timer.data = at->proc.data = at;
	at->wr.data = at;
	at->open = 5; /* in, out, err, timer, proc */
	io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	io[0].data.stream = (uv_stream_t *)&at->in;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&at->out;
	io[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[2].data.stream = (uv_stream_t *)&at->err;
	o.file = c->argv[0];
	o.args = c->argv;
	o.stdio = io;
	o.stdio_count = 3;
	o.exit_cb = exit_cb;
	/* A session of its own: the timeout kills its whole group. */
	o.flags = UV_PROCESS_DETACHED;
	e = uv_spawn(n->loop, &at->proc, &o);
	if (e < 0) {
		snprintf(at->errbuf, sizeof(at->errbuf), "cannot run %s: %s",
			 c->argv[0], uv_strerror(e));
		return e;
	}
	at->pid = at->proc.pid;
	if (uv_read_start((uv_stream_t *)&at->out, alloc_cb, read_out_cb) < 0)
		at->eofs++;
	if (uv_read_start((uv_stream_t *)&at->err, alloc_cb, read_out_cb) < 0)
		at->eofs++;
	wb = uv_buf_init(at->body.data, (unsigned)at->body.len);
	if (uv_write(&at->wr, (uv_stream_t *)&at->in, &wb, 1, write_cb_cmd) < 0)
		cmd_close(at, (uv_handle_t *)&at->in);
	uv_timer_start(&at->timer, cmd_timeout_cb, c->timeout_ms, 0);
	return 0;
}

/* --- attempts ------------------------------------------------------------ */

void notify_io_start(struct nchannel *ch)
{
	struct notify_attempt *at = calloc(1, sizeof(*at));
	const struct nconf *c = &ch->c;
	const struct notify_delivery *d = ch->head;
	uint64_t now = clock_wall_ms();
	int e;

	SK_ASSERT(at != NULL);
	at->ch = ch;
	at->n = ch->n;
	at->type = c->type;
	buf_init(&at->body);
	buf_init(&at->resp);
	ch->cur = at;
	switch (c->type) {
	case NOTIFY_WEBHOOK:
		if (c->format == NOTIFY_FORMAT_SLACK)
			notify_fmt_slack(&at->body, d);
		else if (c->format == NOTIFY_FORMAT_ALERTMANAGER)
			notify_fmt_alertmanager(&at->body, c, d, now);
		else
			notify_fmt_generic(&at->body, c, d);
		e = start_curl(at, c);
		break;
	case NOTIFY_EMAIL:
		notify_fmt_email(&at->body, c, d, now);
		e = start_curl(at, c);
		break;
	case NOTIFY_COMMAND:
		notify_fmt_generic(&at->body, c, d);
		buf_appendc(&at->body, '\n');
		e = start_command(at, c);
		if (e < 0) {
			char err[CURL_ERROR_SIZE];

			memcpy(err, at->errbuf, sizeof(err));
			at->ch = NULL;
			/* Every handle was initialised, the process one too
			 * (libuv does so even when the spawn fails); the
			 * attempt goes when they have closed. */
			cmd_close(at, (uv_handle_t *)&at->in);
			cmd_close(at, (uv_handle_t *)&at->out);
			cmd_close(at, (uv_handle_t *)&at->err);
			cmd_close(at, (uv_handle_t *)&at->timer);
			cmd_close(at, (uv_handle_t *)&at->proc);
			notify_attempt_done(ch, false,
					    e != UV_ENOENT && e != UV_EACCES,
					    err);
			return;
		}
		return;
	default:
		e = -EINVAL;
	}
	if (e < 0) {
		at->ch = NULL;
		attempt_free(at);
		notify_attempt_done(ch, false, true, "cannot start a transfer");
	}
}

void notify_io_abort(struct nchannel *ch)
{
	struct notify_attempt *at = ch->cur;

	if (at == NULL)
		return;
	at->ch = NULL;
	if (at->type != NOTIFY_COMMAND) {
		curl_multi_remove_handle(at->n->multi, at->easy);
		curl_easy_cleanup(at->easy);
		at->easy = NULL;
		attempt_free(at);
		return;
	}
	if (at->pid > 0 && (!at->exited || at->eofs < 2))
		(void)uv_kill(-at->pid, SIGKILL);
	uv_timer_stop(&at->timer);
	cmd_close(at, (uv_handle_t *)&at->out);
	cmd_close(at, (uv_handle_t *)&at->err);
	cmd_close(at, (uv_handle_t *)&at->in);
	cmd_close(at, (uv_handle_t *)&at->timer);
	/* The process handle closes in exit_cb, which the kill brings. */
	if (at->exited)
		cmd_close(at, (uv_handle_t *)&at->proc);
}
