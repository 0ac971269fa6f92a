/*
 * origin.c - the fixed-response origin server of the benchmark harness.
 *
 * Every system in bench/run (storekeep, nginx, HAProxy, Varnish) proxies to
 * this one server, and wrk also loads it directly: its rate is the ceiling
 * a proxy on this machine can approach. So it does as little as it can: one
 * thread, level-triggered epoll, responses built from a template into one
 * buffer and written with one write (or a writev when a body is large), no
 * allocation per request, no logging.
 *
 * What it answers (any method; HEAD gets no body):
 *   /bytes/N        N bytes of body, byte i being 'a' + i % 26
 *   anything else   "Hello, world!" (13 bytes)
 *   ?max-age=S      on any path: Cache-Control: public, max-age=S, an ETag
 *                   and a Last-Modified, and 304 for a matching
 *                   If-None-Match (the cache scenarios use it); without it
 *                   no cache header is sent.
 *   /__origin/stats {"requests":N,"connections":N} so far, this one not
 *                   counted: how bench/run checks that a proxy passed every
 *                   request on, served cache hits, reused connections.
 * Keep-alive per HTTP/1.1 (HTTP/1.0 only with "Connection: keep-alive"),
 * "Connection: close" honoured, pipelined requests answered in order,
 * request bodies with Content-Length read and dropped. A chunked request
 * body gets 501 and a close: the harness never sends one.
 *
 * What it deliberately does not do: validate requests strictly (it trusts
 * its clients: wrk and the proxies under test), TLS, threads. It is a
 * measuring instrument, not a server to put on a network: it binds
 * 127.0.0.1 unless told otherwise.
 *
 * Invariants:
 *   - A connection either reads or writes, never both: while output is
 *     pending (out_len > out_off or body_left > 0) no further request is
 *     parsed, so pipelined input waits in the kernel, not in our memory.
 *   - Only the last queued response may have its body outside `out`
 *     (body_left bytes streamed from the pattern slab); it is queued only
 *     when nothing follows it.
 *
 * Build: cc -O2 -o origin bench/origin.c   (bench/run does it)
 * Run:   origin -p PORT [-a ADDR]          (ends on SIGTERM or SIGINT, or
 *                                           when its parent process dies)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP    16384          /* largest request head we accept */
#define OUT_CAP   32768          /* queued small responses (pipelining) */
#define SLAB_LEN  (26 * 10000)   /* body pattern, a whole number of periods */
#define MAX_BODY  (1ULL << 40)   /* /bytes/N limit: 1 TiB */
#define MAX_EVENTS 256

struct conn {
	int fd;
	unsigned want_out : 1;   /* epoll interest is EPOLLOUT, not EPOLLIN */
	unsigned close_after : 1;/* close once the output is flushed */
	size_t in_len;           /* bytes in `in` */
	unsigned long long discard; /* request body bytes still to drop */
	size_t out_off, out_len; /* pending output in `out` */
	unsigned long long body_left; /* body bytes to stream after `out` */
	unsigned long long body_pos;  /* pattern position of the next one */
	char in[IN_CAP];
	char out[OUT_CAP];
};

static int epfd;
static struct conn **conns;      /* indexed by fd */
static size_t nconns_cap;
static char slab[SLAB_LEN];
static char date_hdr[64];        /* "Date: ...\r\n", refreshed each second */
static time_t date_sec;
static char last_modified[40];   /* the start time, for cacheable answers */
static unsigned long long stat_requests, stat_conns; /* for /__origin/stats */
static const char hello[] = "Hello, world!";

static void die(const char *what)
{
	fprintf(stderr, "origin: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void refresh_date(void)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now == date_sec)
		return;
	date_sec = now;
	gmtime_r(&now, &tm);
	strftime(date_hdr, sizeof(date_hdr),
		 "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static void set_interest(struct conn *c, int want_out)
{
	struct epoll_event ev = { .events = want_out ? EPOLLOUT : EPOLLIN,
				  .data.fd = c->fd };

	if (c->want_out == (unsigned)want_out)
		return;
	c->want_out = want_out;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl");
}

static void conn_close(struct conn *c)
{
	/* close() also removes the fd from the epoll set. */
	close(c->fd);
	conns[c->fd] = NULL;
	free(c);
}

/* Case-insensitive search for a header value that starts a token: is
 * `token` in the comma-separated value of header `name`? Headers are
 * scanned line by line in [p, end). */
static const char *find_header(const char *p, const char *end,
			       const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen + 1;
			const char *ve = eol;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			*vlen = (size_t)(ve - v);
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

static int value_has(const char *v, size_t vlen, const char *token)
{
	size_t tlen = strlen(token);

	for (size_t i = 0; i + tlen <= vlen; i++)
		if (strncasecmp(v + i, token, tlen) == 0)
			return 1;
	return 0;
}

/* Parses the decimal number at s (up to end); returns ULLONG_MAX when
 * there is none or it does not fit. */
static unsigned long long parse_num(const char *s, const char *end)
{
	unsigned long long n = 0;
	const char *start = s;

	while (s < end && *s >= '0' && *s <= '9') {
		if (n > (ULLONG_MAX - 9) / 10)
			return ULLONG_MAX;
		n = n * 10 + (unsigned long long)(*s++ - '0');
	}
	return s == start ? ULLONG_MAX : n;
}

/* Queues one response in c->out: a body of body_len bytes copied from
 * `src`, or taken from the pattern slab when src is NULL. Returns 0, or -1
 * when it does not fit (the caller flushes first and tries again). */
static int queue_response(struct conn *c, int status, int head_only,
			  const char *src, unsigned long long body_len,
			  long max_age, int conn_close)
{
	char *o = c->out + c->out_len;
	size_t room = OUT_CAP - c->out_len;
	int n;
	int inline_body;

	n = snprintf(o, room,
		     "HTTP/1.1 %s\r\n"
		     "Server: bench-origin\r\n"
		     "%s"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: %llu\r\n",
		     status == 200 ? "200 OK" :
		     status == 304 ? "304 Not Modified" :
		     status == 431 ? "431 Request Header Fields Too Large" :
				     "501 Not Implemented",
		     date_hdr, status == 200 ? body_len : 0ULL);
	if (n < 0 || (size_t)n >= room)
		return -1;
	if (max_age >= 0) {
		int m = snprintf(o + n, room - (size_t)n,
				 "Cache-Control: public, max-age=%ld\r\n"
				 "ETag: \"b%llu\"\r\n"
				 "Last-Modified: %s\r\n",
				 max_age, body_len, last_modified);
		if (m < 0 || (size_t)m >= room - (size_t)n)
			return -1;
		n += m;
	}
	if (conn_close) {
		static const char cc[] = "Connection: close\r\n";

		if (room - (size_t)n <= sizeof(cc))
			return -1;
		memcpy(o + n, cc, sizeof(cc) - 1);
		n += (int)sizeof(cc) - 1;
	}
	if (room - (size_t)n < 3)
		return -1;
	memcpy(o + n, "\r\n", 2);
	n += 2;

	if (status != 200 || head_only)
		body_len = 0;
	/* A small body goes into the same buffer as its head (one write);
	 * a large one is streamed from the slab after it. */
	inline_body = body_len <= room - (size_t)n;
	if (!inline_body && (c->out_len > 0 || src))
		return -1; /* flush what is queued, then start this one fresh */
	if (inline_body) {
		memcpy(o + n, src ? src : slab, (size_t)body_len);
		n += (int)body_len;
	} else {
		c->body_left = body_len;
		c->body_pos = 0;
	}
	c->out_len += (size_t)n;
	return 0;
}

/* Writes what is pending. Returns 0 when all is written, 1 when the
 * socket is full, -1 when the connection is gone. */
static int flush(struct conn *c)
{
	while (c->out_len > c->out_off || c->body_left) {
		struct iovec iov[2];
		int n = 0;
		ssize_t w;

		if (c->out_len > c->out_off) {
			iov[n].iov_base = c->out + c->out_off;
			iov[n++].iov_len = c->out_len - c->out_off;
		}
		if (c->body_left) {
			size_t at = (size_t)(c->body_pos % 26);
			size_t len = SLAB_LEN - at;

			if (len > c->body_left)
				len = (size_t)c->body_left;
			iov[n].iov_base = slab + at;
			iov[n++].iov_len = len;
		}
		w = writev(c->fd, iov, n);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (c->out_len > c->out_off) {
			size_t h = c->out_len - c->out_off;

			if ((size_t)w < h) {
				c->out_off += (size_t)w;
				continue;
			}
			w -= (ssize_t)h;
			c->out_off = c->out_len = 0;
		}
		c->body_left -= (unsigned long long)w;
		c->body_pos += (unsigned long long)w;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

/* Answers every complete request in c->in, as far as output room allows.
 * Returns -1 when the connection must close now. */
static int serve(struct conn *c)
{
	size_t off = 0;

	while (!c->close_after && !c->body_left) {
		const char *p = c->in + off;
		const char *end = c->in + c->in_len;
		const char *head_end, *sp1, *sp2, *eol, *q, *v;
		const char *target, *target_end;
		unsigned long long body = sizeof(hello) - 1;
		const char *src = hello;
		char stats[96];
		long max_age = -1;
		int status = 200, head_only, keep, http10, counted = 1;
		size_t vlen;

		if (c->discard) {
			size_t d = (size_t)(end - p);

			if (d > c->discard)
				d = (size_t)c->discard;
			c->discard -= d;
			off += d;
			if (c->discard)
				break;
			continue;
		}
		head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		if (!head_end)
			break;
		head_end += 4;

		eol = memchr(p, '\n', (size_t)(head_end - p));
		sp1 = memchr(p, ' ', (size_t)(eol - p));
		sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
		if (!sp1 || !sp2)
			return -1; /* not HTTP: hang up */
		head_only = sp1 - p == 4 && memcmp(p, "HEAD", 4) == 0;
		http10 = eol - sp2 >= 9 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
		target = sp1 + 1;
		target_end = sp2;

		q = memchr(target, '?', (size_t)(target_end - target));
		if (q) {
			const char *m = memmem(q, (size_t)(target_end - q),
					       "max-age=", 8);
			if (m) {
				unsigned long long s =
					parse_num(m + 8, target_end);
				if (s <= 100000000ULL)
					max_age = (long)s;
			}
		} else {
			q = target_end;
		}
		if (q - target > 7 && memcmp(target, "/bytes/", 7) == 0) {
			unsigned long long b = parse_num(target + 7, q);

			if (b <= MAX_BODY) {
				body = b;
				src = NULL;
			}
		}
		if (q - target == 15 &&
		    memcmp(target, "/__origin/stats", 15) == 0) {
			/* What the harness reads to check that a proxy passed
			 * every request on (or, caching, did not), and how
			 * many backend connections it opened. Not counted. */
			body = (unsigned long long)snprintf(
				stats, sizeof(stats),
				"{\"requests\":%llu,\"connections\":%llu}",
				stat_requests, stat_conns);
			src = stats;
			counted = 0;
		}

		v = find_header(eol + 1, head_end, "Connection", &vlen);
		if (http10)
			keep = v && value_has(v, vlen, "keep-alive");
		else
			keep = !(v && value_has(v, vlen, "close"));
		if (find_header(eol + 1, head_end, "Transfer-Encoding",
				&vlen)) {
			status = 501;
			keep = 0;
		}
		v = find_header(eol + 1, head_end, "Content-Length", &vlen);
		if (v && status == 200)
			c->discard = parse_num(v, v + vlen);
		if (c->discard == ULLONG_MAX) {
			c->discard = 0;
			status = 501;
			keep = 0;
		}
		if (max_age >= 0 && status == 200) {
			char etag[32];

			v = find_header(eol + 1, head_end, "If-None-Match",
					&vlen);
			snprintf(etag, sizeof(etag), "\"b%llu\"", body);
			if (v && vlen == strlen(etag) &&
			    memcmp(v, etag, vlen) == 0)
				status = 304;
		}

		if (queue_response(c, status, head_only, src, body, max_age,
				   !keep) != 0) {
			/* No room: undo the body accounting, flush, retry. */
			c->discard = 0;
			break;
		}
		stat_requests += (unsigned long long)counted;
		off = (size_t)(head_end - c->in);
		if (!keep)
			c->close_after = 1;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (c->in_len == IN_CAP && !c->out_len && !c->body_left &&
	    !c->discard) {
		/* A head larger than the buffer: refuse it and hang up. */
		queue_response(c, 431, 1, NULL, 0, -1, 1);
		c->close_after = 1;
		c->in_len = 0;
	}
	return 0;
}

/* Runs the connection as far as it can go without blocking. `readable`
 * says epoll reported input; after a short read the socket is known to be
 * empty and the connection goes back to epoll instead of paying for a
 * read() that would only say EAGAIN. */
static void drive(struct conn *c, int readable)
{
	for (;;) {
		int r = flush(c);
		ssize_t n;

		if (r < 0)
			goto gone;
		if (r > 0) {
			set_interest(c, 1);
			return;
		}
		if (c->close_after)
			goto gone;
		/* Pipelined requests left over from an earlier read. */
		if (c->in_len > 0 && serve(c) != 0)
			goto gone;
		if (c->out_len || c->body_left || c->close_after)
			continue;
		if (!readable)
			break;
		if (c->in_len == IN_CAP)
			goto gone;
		n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
		if (n == 0)
			goto gone;
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			goto gone;
		}
		if ((size_t)n < IN_CAP - c->in_len)
			readable = 0;
		c->in_len += (size_t)n;
		if (serve(c) != 0)
			goto gone;
	}
	set_interest(c, 0);
	return;
gone:
	conn_close(c);
}

static void accept_all(int lfd)
{
	for (;;) {
		int one = 1;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		struct epoll_event ev = { .events = EPOLLIN };

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "origin: accept: %s\n",
					strerror(errno));
			return;
		}
		if ((size_t)fd >= nconns_cap) {
			size_t cap = nconns_cap ? nconns_cap : 1024;

			while (cap <= (size_t)fd)
				cap *= 2;
			conns = realloc(conns, cap * sizeof(*conns));
			if (!conns)
				die("realloc");
			memset(conns + nconns_cap, 0,
			       (cap - nconns_cap) * sizeof(*conns));
			nconns_cap = cap;
		}
		/* Buffers are large but touched only as far as used, so an
		 * idle connection costs a few pages. */
		c = malloc(sizeof(*c));
		if (!c)
			die("malloc");
		memset(c, 0, offsetof(struct conn, in));
		c->fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ev.data.fd = fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
			die("epoll_ctl");
		conns[fd] = c;
		stat_conns++;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: origin -p PORT [-a ADDR]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	long port = -1;
	int opt, lfd, one = 1;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct epoll_event ev = { .events = EPOLLIN };
	struct epoll_event events[MAX_EVENTS];
	struct rlimit rl;
	struct tm tm;
	time_t start = time(NULL);

	while ((opt = getopt(argc, argv, "a:p:")) != -1) {
		if (opt == 'a')
			addr = optarg;
		else if (opt == 'p')
			port = strtol(optarg, NULL, 10);
		else
			usage();
	}
	if (port < 0 || port > 65535)
		usage();
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "origin: bad address %s\n", addr);
		return 2;
	}
	sin.sin_port = htons((uint16_t)port);

	/* Never outlive the harness, even if it is killed. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	for (size_t i = 0; i < SLAB_LEN; i++)
		slab[i] = (char)('a' + i % 26);
	gmtime_r(&start, &tm);
	strftime(last_modified, sizeof(last_modified),
		 "%a, %d %b %Y %H:%M:%S GMT", &tm);
	refresh_date();

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		die("bind");
	if (listen(lfd, 4096) != 0)
		die("listen");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	ev.data.fd = lfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) != 0)
		die("epoll_ctl");

	for (;;) {
		int n = epoll_wait(epfd, events, MAX_EVENTS, 1000);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		refresh_date();
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;

			if (fd == lfd)
				accept_all(lfd);
			else if ((size_t)fd < nconns_cap && conns[fd])
				drive(conns[fd],
				      !!(events[i].events &
					 (EPOLLIN | EPOLLHUP | EPOLLERR)));
		}
	}
}
