/*
 * ctl.c - `storekeep ctl`: the operator's client for the admin API.
 *
 *   storekeep ctl [options] status
 *   storekeep ctl [options] pools
 *   storekeep ctl [options] drain POOL BACKEND
 *   storekeep ctl [options] enable POOL BACKEND
 *   storekeep ctl [options] weight POOL BACKEND N
 *   storekeep ctl [options] reload
 *   storekeep ctl [options] alerts
 *   storekeep ctl [options] silence add MATCHERS [--for D] [--comment T]
 *   storekeep ctl [options] silence list
 *   storekeep ctl [options] silence del ID
 *
 * It finds the admin listener and its token the way the daemon does, from
 * the config file (admin.listen, admin.token_file), unless --admin and
 * --token-file say otherwise. It speaks just enough HTTP/1.1 for that: one
 * blocking request per connection (Connection: close) with a connect
 * timeout and an I/O timeout; the response is read to EOF and parsed with
 * the project's strict parser in response mode. It deliberately does not
 * do TLS, redirects or keep-alive: the admin listener is loopback only and
 * one command is one request.
 *
 * Exit status: 0 success; 1 the API answered with an error (its message is
 * printed), or could not be reached, or the config or token could not be
 * read; 2 a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"
#include "http/http.h"

#ifndef SK_VERSION
#define SK_VERSION "dev"
#endif

#define CONNECT_TIMEOUT_MS 3000
#define IO_TIMEOUT_S 30
#define MAX_RESPONSE (16u << 20)
#define MAX_HEADERS 64

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char *const default_configs[] = {
	"storekeep.yaml",
	"/etc/storekeep/storekeep.yaml",
};

struct ctl {
	/* Where the admin listens and how to prove who we are. */
	struct sockaddr_storage sa;
	socklen_t salen;
	char addr_text[300];
	char *token;
	char token_file[4096];
	int json; /* --json: print the API's JSON as it came */
};

/* An HTTP response, read whole. */
struct reply {
	int status;
	struct buf body; /* decoded (chunked is undone), NUL-terminated */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: storekeep ctl [options] <command>\n"
		"\n"
		"commands:\n"
		"  status                    a summary of the running storekeep\n"
		"  pools                     pools and backends with state and counters\n"
		"  drain POOL BACKEND        send no new requests to BACKEND (in-flight\n"
		"                            ones finish)\n"
		"  enable POOL BACKEND       undo drain (and end a passive ejection)\n"
		"  weight POOL BACKEND N     set the weight, 1..1000; 0 restores the\n"
		"                            configured one\n"
		"  reload                    load the config file again and apply it\n"
		"  alerts                    firing, pending and resolved alerts,\n"
		"                            rules in error, notifiers that fail\n"
		"  silence add MATCHERS [--for DURATION] [--comment TEXT]\n"
		"                            mute the alerts whose labels match, e.g.\n"
		"                            'alertname=BackendDown,pool=web' --for 2h\n"
		"                            (DURATION like 90s, 15m, 2h, 1d; default\n"
		"                            1h, at most 90d)\n"
		"  silence list              the silences\n"
		"  silence del ID            end a silence now\n"
		"\n"
		"options:\n"
		"  -c, --config FILE         take admin.listen and admin.token_file from\n"
		"                            FILE (default: ./storekeep.yaml, then\n"
		"                            /etc/storekeep/storekeep.yaml)\n"
		"      --admin ADDR          the admin listener, e.g. 127.0.0.1:9901\n"
		"      --token-file FILE     the file holding the admin token\n"
		"      --json                print the API's JSON answer as it is\n"
		"      --for DURATION        silence add: how long (default 1h)\n"
		"      --comment TEXT        silence add: why, for the others\n"
		"  -h, --help                this text\n"
		"\n"
		"exit status: 0 done, 1 the API refused or could not be reached,\n"
		"2 a usage error\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "storekeep ctl: <what>" and a hint; returns EXIT_USAGE. */
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("storekeep ctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(storekeep ctl --help lists the commands and options)\n",
	      stderr);
	return EXIT_USAGE;
}

/* --- finding the admin ---------------------------------------------------- */

/*
 * Resolves "host:port", "[v6]:port" (an "http://" prefix and a trailing
 * '/' are tolerated, since that is how the address is usually pasted).
 * Returns 0, or -1 with err set.
 */
static int resolve_admin(struct ctl *c, const char *text, char *err,
			 size_t errlen)
{
	char host[256];
	const char *s = text, *start, *port, *end;
	struct addrinfo hints, *res = NULL;
	size_t hl;
	int r;

	if (strncmp(s, "http://", 7) == 0)
		s += 7;
	start = s;
	end = s + strlen(s);
	if (end > s && end[-1] == '/')
		end--;
	if (*s == '[') {
		const char *rb = memchr(s, ']', (size_t)(end - s));

		if (rb == NULL || rb + 1 >= end || rb[1] != ':')
			goto syntax;
		hl = (size_t)(rb - s - 1);
		s++;
		port = rb + 2;
	} else {
		const char *colon = NULL;

		for (const char *p = s; p < end; p++)
			if (*p == ':')
				colon = p;
		if (colon == NULL)
			goto syntax;
		hl = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hl == 0 || hl >= sizeof(host) || port >= end)
		goto syntax;
	memcpy(host, s, hl);
	host[hl] = '\0';
	for (const char *p = port; p < end; p++)
		if (*p < '0' || *p > '9')
			goto syntax;
	{
		char portbuf[8];
		size_t pl = (size_t)(end - port);

		if (pl >= sizeof(portbuf))
			goto syntax;
		memcpy(portbuf, port, pl);
		portbuf[pl] = '\0';
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		r = getaddrinfo(host, portbuf, &hints, &res);
		if (r != 0) {
			snprintf(err, errlen, "--admin %s: %s", text,
				 gai_strerror(r));
			return -1;
		}
	}
	memcpy(&c->sa, res->ai_addr, res->ai_addrlen);
	c->salen = res->ai_addrlen;
	freeaddrinfo(res);
	/* As typed, less the scheme: it is also the Host header. */
	snprintf(c->addr_text, sizeof(c->addr_text), "%.*s", (int)(end - start),
		 start);
	return 0;
syntax:
	snprintf(err, errlen,
		 "--admin %s: expected an address such as 127.0.0.1:9901 or "
		 "[::1]:9901",
		 text);
	return -1;
}

/*
 * Fills in what --admin and --token-file did not give, from the config
 * file. Returns EXIT_OK, or an exit status after printing why.
 */
static int find_admin(struct ctl *c, const char *cfg_path, const char *admin,
		      const char *token_file)
{
	struct config *cfg = NULL;
	char err[1024];

	if (admin) {
		if (resolve_admin(c, admin, err, sizeof(err)) < 0)
			return usage_error("%s", err);
	}
	if (token_file)
		snprintf(c->token_file, sizeof(c->token_file), "%s", token_file);
	if (admin == NULL || token_file == NULL) {
		if (cfg_path == NULL) {
			for (size_t i = 0; i < sizeof(default_configs) /
						       sizeof(default_configs[0]);
			     i++)
				if (access(default_configs[i], F_OK) == 0) {
					cfg_path = default_configs[i];
					break;
				}
		}
		if (cfg_path == NULL)
			return usage_error(
				"no config file: neither ./storekeep.yaml nor "
				"/etc/storekeep/storekeep.yaml exists; give -c FILE, "
				"or --admin ADDR and --token-file FILE");
		if (config_load(cfg_path, &cfg, err, sizeof(err)) != 0) {
			fprintf(stderr, "storekeep ctl: %s\n", err);
			return EXIT_FAIL;
		}
		if (!cfg->admin.enabled) {
			fprintf(stderr,
				"storekeep ctl: %s has no admin: section, so storekeep "
				"runs no admin API to talk to\n",
				cfg_path);
			config_unref(cfg);
			return EXIT_FAIL;
		}
		if (admin == NULL) {
			memcpy(&c->sa, &cfg->admin.listen.sa,
			       cfg->admin.listen.salen);
			c->salen = cfg->admin.listen.salen;
			snprintf(c->addr_text, sizeof(c->addr_text), "%s",
				 cfg->admin.listen.text);
		}
		if (token_file == NULL)
			snprintf(c->token_file, sizeof(c->token_file), "%s",
				 cfg->admin.token_file);
		config_unref(cfg);
	}
	if (admin_read_token(c->token_file, &c->token, err, sizeof(err)) < 0) {
		fprintf(stderr, "storekeep ctl: %s\n", err);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* --- a minimal HTTP/1.1 client --------------------------------------------- */

/* Connects within CONNECT_TIMEOUT_MS. Returns the socket (blocking, with
 * I/O timeouts set) or -errno. */
static int dial(const struct ctl *c)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, r, soerr = 0;

	fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&c->sa, c->salen) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		do
			r = poll(&pfd, 1, CONNECT_TIMEOUT_MS);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			r = -errno;
			goto fail;
		}
		if (r == 0) {
			r = -ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
			r = -errno;
			goto fail;
		}
		if (soerr != 0) {
			r = -soerr;
			goto fail;
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		r = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads until EOF, at most MAX_RESPONSE bytes. Returns 0 or -errno
 * (-EFBIG when the response is too large). */
static int recv_all(int fd, struct buf *in)
{
	for (;;) {
		ssize_t n;

		if (in->len >= MAX_RESPONSE)
			return -EFBIG;
		if (buf_reserve(in, 16384) < 0)
			return -ENOMEM;
		n = recv(fd, in->data + in->len, in->cap - in->len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (n == 0)
			return 0;
		in->len += (size_t)n;
	}
}

static void chunk_cb(void *ud, const char *p, size_t n)
{
	buf_append(ud, p, n);
}

/*
 * Parses the response in in[0..len) into out. Returns 0, or -1 with err
 * naming what was wrong with it.
 */
static int parse_reply(const struct buf *in, enum http_method m,
		       struct reply *out, char *err, size_t errlen)
{
	static const struct http_limits lim = {
		.max_head_bytes = 65536,
		.max_headers = MAX_HEADERS,
	};
	struct http_header hdrs[MAX_HEADERS];
	struct http_parser p;
	struct http_msg msg;
	const char *body;
	size_t avail;

	memset(&msg, 0, sizeof(msg));
	http_parser_init(&p, 0, m, &msg, hdrs, MAX_HEADERS, &lim);
	switch (http_parse(&p, in->data, in->len)) {
	case HTTP_PARSE_DONE:
		break;
	case HTTP_PARSE_AGAIN:
		snprintf(err, errlen,
			 in->len ? "the connection closed in the middle of the "
				   "response head"
				 : "the connection closed without a response");
		return -1;
	default:
		snprintf(err, errlen, "malformed HTTP response: %s", p.reason);
		return -1;
	}
	out->status = msg.status;
	body = in->data + msg.head_len;
	avail = in->len - msg.head_len;
	switch (msg.body) {
	case HTTP_BODY_NONE:
		break;
	case HTTP_BODY_LENGTH:
		if (msg.content_length > avail) {
			snprintf(err, errlen,
				 "the response body was cut short (%zu of %llu "
				 "bytes)",
				 avail, (unsigned long long)msg.content_length);
			return -1;
		}
		buf_append(&out->body, body, (size_t)msg.content_length);
		break;
	case HTTP_BODY_CHUNKED: {
		struct http_chunked ch;

		http_chunked_init(&ch, 0);
		if (http_chunked_feed(&ch, body, avail, chunk_cb, &out->body) < 0) {
			snprintf(err, errlen, "malformed chunked response: %s",
				 ch.reason);
			return -1;
		}
		if (!ch.done) {
			snprintf(err, errlen, "the response body was cut short");
			return -1;
		}
		break;
	}
	case HTTP_BODY_EOF:
		buf_append(&out->body, body, avail);
		break;
	}
	buf_cstr(&out->body);
	return 0;
}

/*
 * Sends one request to the admin API and reads the whole response.
 * body may be NULL. Returns 0 with *out filled (the caller finis
 * out->body), or EXIT_FAIL after printing why the exchange failed.
 */
static int call(const struct ctl *c, enum http_method m, const char *path,
		const char *body, struct reply *out)
{
	struct buf req, in;
	char err[512];
	int fd, r;

	buf_init(&out->body);
	out->status = 0;
	fd = dial(c);
	if (fd < 0) {
		fprintf(stderr,
			"storekeep ctl: cannot reach the admin API at %s: %s — is "
			"storekeep running?\n",
			c->addr_text, strerror(-fd));
		return EXIT_FAIL;
	}
	buf_init(&req);
	buf_printf(&req,
		   "%s %s HTTP/1.1\r\n"
		   "Host: %s\r\n"
		   "User-Agent: storekeep-ctl/%s\r\n"
		   "Authorization: Bearer %s\r\n"
		   "Accept: application/json\r\n"
		   "Connection: close\r\n",
		   http_method_name(m), path, c->addr_text, SK_VERSION, c->token);
	if (body)
		buf_printf(&req,
			   "Content-Type: application/json\r\n"
			   "Content-Length: %zu\r\n\r\n%s",
			   strlen(body), body);
	else if (m == HTTP_M_POST || m == HTTP_M_PUT)
		buf_appends(&req, "Content-Length: 0\r\n\r\n");
	else
		buf_appends(&req, "\r\n");
	r = send_all(fd, req.data, req.len);
	/* The request held the token. */
	explicit_bzero(req.data, req.len);
	buf_fini(&req);
	buf_init(&in);
	if (r == 0)
		r = recv_all(fd, &in);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "storekeep ctl: talking to the admin API at %s: %s\n",
			c->addr_text,
			r == -EFBIG ? "the response is larger than 16 MiB"
				    : strerror(-r));
		buf_fini(&in);
		return EXIT_FAIL;
	}
	r = parse_reply(&in, m, out, err, sizeof(err));
	buf_fini(&in);
	if (r < 0) {
		fprintf(stderr, "storekeep ctl: the admin API at %s: %s\n",
			c->addr_text, err);
		buf_fini(&out->body);
		return EXIT_FAIL;
	}
	return 0;
}

/* --- commands ------------------------------------------------------------ */

/*
 * Checks the answer: prints the raw JSON with --json; on an error status
 * prints the server's message. Returns the parsed JSON (the caller
 * decrefs) with *rc EXIT_OK, or NULL with *rc the exit status.
 */
static json_t *answer(const struct ctl *c, struct reply *rp, int *rc)
{
	json_error_t jerr;
	json_t *j = json_loadb(rp->body.data, rp->body.len, 0, &jerr);
	json_t *e = j ? json_object_get(j, "error") : NULL;

	if (c->json)
		fputs(rp->body.len ? rp->body.data : "{}\n", stdout);
	if (rp->status >= 200 && rp->status < 300 && j) {
		*rc = EXIT_OK;
		return j;
	}
	*rc = EXIT_FAIL;
	if (rp->status == 401)
		fprintf(stderr,
			"storekeep ctl: the admin API refused the token from %s "
			"(401); is it the token_file of the running storekeep?\n",
			c->token_file);
	else if (json_is_string(e))
		fprintf(stderr, "storekeep ctl: %s\n", json_string_value(e));
	else if (j == NULL && rp->status < 300)
		fprintf(stderr,
			"storekeep ctl: the admin API answered %d with a body that "
			"is not JSON (%s)\n",
			rp->status, jerr.text);
	else
		fprintf(stderr, "storekeep ctl: the admin API answered %d %s\n",
			rp->status, http_status_reason(rp->status));
	json_decref(j);
	return NULL;
}

static json_int_t int_of(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *str_of(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* The one word the table shows: draining wins (the operator asked for
 * it), then health, then passive ejection. */
static const char *state_word(json_t *be)
{
	if (json_is_true(json_object_get(be, "draining")))
		return "draining";
	if (strcmp(str_of(be, "state"), "up") != 0)
		return "down";
	if (json_is_true(json_object_get(be, "ejected")))
		return "ejected";
	return "up";
}

static void fmt_duration(char *out, size_t n, json_int_t s)
{
	if (s >= 86400)
		snprintf(out, n, "%lldd%02lldh", (long long)(s / 86400),
			 (long long)(s % 86400 / 3600));
	else if (s >= 3600)
		snprintf(out, n, "%lldh%02lldm", (long long)(s / 3600),
			 (long long)(s % 3600 / 60));
	else if (s >= 60)
		snprintf(out, n, "%lldm%02llds", (long long)(s / 60),
			 (long long)(s % 60));
	else
		snprintf(out, n, "%llds", (long long)s);
}

static void print_status(json_t *st)
{
	json_t *pools = json_object_get(st, "pools"), *pool, *procs, *pr;
	char up[32];
	size_t i, k;

	fmt_duration(up, sizeof(up), int_of(st, "uptime_seconds"));
	printf("storekeep %s, pid %lld, up %s (since %s)\n", str_of(st, "version"),
	       (long long)int_of(st, "pid"), up, str_of(st, "started"));
	printf("requests: %lld total, %lld in flight, %lld queued; "
	       "%lld client connections\n",
	       (long long)int_of(st, "requests"), (long long)int_of(st, "in_flight"),
	       (long long)int_of(st, "queued"),
	       (long long)int_of(st, "connections"));
	printf("retries:  %lld (%lld denied by the retry budget)\n",
	       (long long)int_of(st, "retries"),
	       (long long)int_of(st, "retries_denied"));
	json_array_foreach(pools, i, pool) {
		json_t *bes = json_object_get(pool, "backends"), *be;
		int first = 1;

		printf("pool %s (%s): %lld of %zu backends up", str_of(pool, "name"),
		       str_of(pool, "balance"), (long long)int_of(pool, "backends_up"),
		       json_array_size(bes));
		/* Name the backends that are not plainly serving. */
		json_array_foreach(bes, k, be) {
			const char *w = state_word(be);

			if (strcmp(w, "up") == 0)
				continue;
			printf("%s%s %s", first ? "; " : ", ", str_of(be, "name"), w);
			first = 0;
		}
		printf("\n");
	}
	procs = json_object_get(st, "processes");
	json_array_foreach(procs, i, pr)
		printf("process %s: pid %lld, %lld restarts\n", str_of(pr, "name"),
		       (long long)int_of(pr, "pid"), (long long)int_of(pr, "restarts"));
}

enum { COLS = 10 };

static const char *const col_head[COLS] = {
	"POOL",	    "BACKEND",	"ADDRESS",  "STATE",	"WEIGHT",
	"IN-FLIGHT", "REQUESTS", "FAILURES", "EJECTIONS", "LAST CHECK",
};
/* Numbers are right-aligned. */
static const int col_num[COLS] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 0};

static void print_pools(json_t *pools)
{
	json_t *pool, *be;
	size_t i, k, nrows = 0, row = 0;
	int width[COLS];
	char (*cell)[COLS][128];

	json_array_foreach(pools, i, pool)
		nrows += json_array_size(json_object_get(pool, "backends"));
	cell = calloc(nrows ? nrows : 1, sizeof(*cell));
	if (cell == NULL) {
		fprintf(stderr, "storekeep ctl: out of memory\n");
		return;
	}
	json_array_foreach(pools, i, pool) {
		json_array_foreach(json_object_get(pool, "backends"), k, be) {
			char(*c)[128] = cell[row++];

			snprintf(c[0], 128, "%s", str_of(pool, "name"));
			snprintf(c[1], 128, "%s", str_of(be, "name"));
			snprintf(c[2], 128, "%s", str_of(be, "address"));
			snprintf(c[3], 128, "%s%s", state_word(be),
				 json_is_true(json_object_get(be, "backup"))
					 ? " (backup)"
					 : "");
			snprintf(c[4], 128, "%lld", (long long)int_of(be, "weight"));
			snprintf(c[5], 128, "%lld", (long long)int_of(be, "in_flight"));
			snprintf(c[6], 128, "%lld", (long long)int_of(be, "requests"));
			snprintf(c[7], 128, "%lld", (long long)int_of(be, "failures"));
			snprintf(c[8], 128, "%lld", (long long)int_of(be, "ejections"));
			snprintf(c[9], 128, "%s",
				 str_of(json_object_get(be, "checks"), "last"));
		}
	}
	for (int j = 0; j < COLS; j++) {
		width[j] = (int)strlen(col_head[j]);
		for (size_t r = 0; r < nrows; r++)
			if ((int)strlen(cell[r][j]) > width[j])
				width[j] = (int)strlen(cell[r][j]);
	}
	for (size_t r = 0; r <= nrows; r++) {
		for (int j = 0; j < COLS; j++) {
			const char *s = r == 0 ? col_head[j] : cell[r - 1][j];

			if (j == COLS - 1)
				printf("%s\n", s);
			else if (col_num[j] && r > 0)
				printf("%*s  ", width[j], s);
			else
				printf("%-*s  ", width[j], s);
		}
	}
	free(cell);
}

/* Percent-encodes a path segment (names are [A-Za-z0-9_.-], but what the
 * operator typed is sent faithfully and the server judges it). */
static void path_segment(struct buf *o, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~')
			buf_appendc(o, (char)ch);
		else
			buf_printf(o, "%%%02X", ch);
	}
}

static int cmd_get(const struct ctl *c, const char *what)
{
	struct reply rp;
	json_t *j;
	int rc;

	if (call(c, HTTP_M_GET, strcmp(what, "status") == 0 ? "/api/v1/status"
							    : "/api/v1/pools",
		 NULL, &rp) != 0)
		return EXIT_FAIL;
	j = answer(c, &rp, &rc);
	buf_fini(&rp.body);
	if (j && !c->json) {
		if (strcmp(what, "status") == 0)
			print_status(j);
		else
			print_pools(json_object_get(j, "pools"));
	}
	json_decref(j);
	return rc;
}

/* drain, enable, weight: args are POOL BACKEND; weight is N for the
 * weight command (checked by the caller), -1 otherwise. */
static int cmd_backend(const struct ctl *c, const char *action, char **args,
		       long weight)
{
	struct buf path;
	struct reply rp;
	char body[64];
	json_t *j, *be;
	int rc;

	if (weight >= 0)
		snprintf(body, sizeof(body), "{\"weight\": %ld}", weight);
	buf_init(&path);
	buf_appends(&path, "/api/v1/pools/");
	path_segment(&path, args[0]);
	buf_appends(&path, "/backends/");
	path_segment(&path, args[1]);
	buf_printf(&path, "/%s", action);
	rc = call(c, weight >= 0 ? HTTP_M_PUT : HTTP_M_POST, buf_cstr(&path),
		  weight >= 0 ? body : NULL, &rp);
	buf_fini(&path);
	if (rc != 0)
		return rc;
	j = answer(c, &rp, &rc);
	buf_fini(&rp.body);
	if (j && !c->json) {
		be = json_object_get(j, "backend");
		if (strcmp(action, "drain") == 0)
			printf("%s/%s: draining; %lld requests in flight finish on it\n",
			       args[0], args[1], (long long)int_of(be, "in_flight"));
		else if (strcmp(action, "enable") == 0)
			printf("%s/%s: enabled (%s)\n", args[0], args[1],
			       state_word(be));
		else
			printf("%s/%s: weight %lld%s\n", args[0], args[1],
			       (long long)int_of(be, "weight"),
			       weight == 0 ? " (as configured)" : "");
	}
	json_decref(j);
	return rc;
}

static int cmd_reload(const struct ctl *c)
{
	struct reply rp;
	json_t *j, *rn;
	int rc;

	if (call(c, HTTP_M_POST, "/api/v1/reload", NULL, &rp) != 0)
		return EXIT_FAIL;
	j = answer(c, &rp, &rc);
	buf_fini(&rp.body);
	if (j && !c->json) {
		rn = json_object_get(j, "restart_needed");
		if (json_is_string(rn))
			printf("reloaded; these settings only change on a restart: "
			       "%s\n",
			       json_string_value(rn));
		else
			printf("reloaded\n");
	}
	json_decref(j);
	return rc;
}

/* --- alerts and silences ---------------------------------------------------- */

/* "90s", "15m", "2h", "1d" -> seconds; -1 when it does not parse, is 0
 * or is not whole seconds. */
static long long parse_duration_s(const char *s)
{
	uint64_t ms;

	if (config_parse_duration(s, &ms) != 0 || ms == 0 || ms % 1000)
		return -1;
	return (long long)(ms / 1000);
}

static void print_alerts(json_t *j)
{
	json_t *alerts = json_object_get(j, "alerts");
	json_t *rules = json_object_get(j, "rules");
	json_t *nfs = json_object_get(j, "notifiers");
	json_t *a;
	size_t i;

	if (!json_is_true(json_object_get(j, "enabled"))) {
		printf("alerts are disabled (monitor.alerts.enabled: false)\n");
		return;
	}
	if (json_array_size(alerts) == 0)
		printf("no alerts\n");
	else
		printf("%-9s %-9s %-28s %-22s %s\n", "STATE", "SEVERITY", "ALERT",
		       "SINCE", "SUMMARY");
	json_array_foreach(alerts, i, a) {
		json_t *ann = json_object_get(a, "annotations");
		const char *state = str_of(a, "state");

		printf("%-9s %-9s %-28s %-22s %s%s\n",
		       state, str_of(json_object_get(a, "labels"), "severity"),
		       str_of(a, "name"), str_of(a, "since"),
		       str_of(ann, "summary"),
		       json_is_true(json_object_get(a, "silenced")) ? " (silenced)"
								    : "");
	}
	json_array_foreach(rules, i, a)
		if (strcmp(str_of(a, "health"), "error") == 0)
			printf("rule %s: cannot be evaluated: %s\n",
			       str_of(a, "name"), str_of(a, "last_error"));
	json_array_foreach(nfs, i, a)
		if (!json_is_true(json_object_get(a, "healthy")))
			printf("notifier %s (%s): failing: %s (%lld given up)\n",
			       str_of(a, "name"), str_of(a, "type"),
			       str_of(a, "last_error"),
			       (long long)int_of(a, "failed"));
}

static void print_silences(json_t *arr)
{
	json_t *si, *m;
	size_t i, k;

	if (json_array_size(arr) == 0) {
		printf("no silences\n");
		return;
	}
	printf("%-16s %-8s %-22s %-40s %s\n", "ID", "STATE", "ENDS", "MATCHERS",
	       "COMMENT");
	json_array_foreach(arr, i, si) {
		struct buf mt;

		buf_init(&mt);
		json_array_foreach(json_object_get(si, "matchers"), k, m)
			buf_printf(&mt, "%s%s%s\"%s\"", k ? "," : "",
				   str_of(m, "name"), str_of(m, "op"),
				   str_of(m, "value"));
		printf("%-16s %-8s %-22s %-40s %s\n", str_of(si, "id"),
		       str_of(si, "state"), str_of(si, "ends_at"), buf_cstr(&mt),
		       str_of(si, "comment"));
		buf_fini(&mt);
	}
}

static int cmd_alerts(const struct ctl *c)
{
	struct reply rp;
	json_t *j;
	int rc;

	if (call(c, HTTP_M_GET, "/api/v1/alerts", NULL, &rp) != 0)
		return EXIT_FAIL;
	j = answer(c, &rp, &rc);
	buf_fini(&rp.body);
	if (j && !c->json)
		print_alerts(j);
	json_decref(j);
	return rc;
}

/* silence add|list|del; args checked by the caller. */
static int cmd_silence(const struct ctl *c, char **args, long long secs,
		       const char *comment)
{
	struct reply rp;
	struct buf path;
	json_t *j, *body = NULL;
	char *text = NULL;
	int rc;

	buf_init(&path);
	if (strcmp(args[0], "add") == 0) {
		const char *user = getenv("USER");

		body = json_pack("{s:s,s:I,s:s,s:s}", "matchers", args[1],
				 "duration", (json_int_t)secs, "comment",
				 comment ? comment : "", "created_by",
				 user ? user : "storekeep-ctl");
		text = json_dumps(body, JSON_COMPACT);
		rc = call(c, HTTP_M_POST, "/api/v1/silences", text, &rp);
	} else if (strcmp(args[0], "list") == 0) {
		rc = call(c, HTTP_M_GET, "/api/v1/silences", NULL, &rp);
	} else {
		buf_appends(&path, "/api/v1/silences/");
		path_segment(&path, args[1]);
		rc = call(c, HTTP_M_DELETE, buf_cstr(&path), NULL, &rp);
	}
	free(text);
	json_decref(body);
	buf_fini(&path);
	if (rc != 0)
		return EXIT_FAIL;
	j = answer(c, &rp, &rc);
	buf_fini(&rp.body);
	if (j && !c->json) {
		if (strcmp(args[0], "add") == 0)
			printf("silence %s added for %llds\n", str_of(j, "id"),
			       secs);
		else if (strcmp(args[0], "list") == 0)
			print_silences(json_object_get(j, "silences"));
		else
			printf("silence %s ended\n", args[1]);
	}
	json_decref(j);
	return rc;
}

int cli_ctl(int argc, char **argv)
{
	enum { OPT_ADMIN = 256, OPT_TOKEN_FILE, OPT_JSON, OPT_FOR, OPT_COMMENT };
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"admin", required_argument, NULL, OPT_ADMIN},
		{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
		{"json", no_argument, NULL, OPT_JSON},
		{"for", required_argument, NULL, OPT_FOR},
		{"comment", required_argument, NULL, OPT_COMMENT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *cfg_path = NULL, *admin = NULL, *token_file = NULL, *cmd;
	const char *for_text = NULL, *comment = NULL;
	struct ctl c;
	int ch, rc, nargs;
	long weight = -1;
	long long secs = 0;
	char **args;

	memset(&c, 0, sizeof(c));
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfg_path = optarg;
			break;
		case OPT_ADMIN:
			admin = optarg;
			break;
		case OPT_TOKEN_FILE:
			token_file = optarg;
			break;
		case OPT_JSON:
			c.json = 1;
			break;
		case OPT_FOR:
			for_text = optarg;
			break;
		case OPT_COMMENT:
			comment = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case ':':
			return usage_error("option %s needs a value",
					   argv[optind - 1]);
		default:
			if (optopt)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	args = argv + optind + 1;
	nargs = argc - optind - 1;
	/* Check the command line fully before touching the config or the
	 * network, so a typo is always exit 2. */
	if ((for_text || comment) &&
	    (strcmp(cmd, "silence") != 0 || nargs == 0 ||
	     strcmp(args[0], "add") != 0))
		return usage_error("--for and --comment go with silence add");
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "pools") == 0 ||
	    strcmp(cmd, "reload") == 0 || strcmp(cmd, "alerts") == 0) {
		if (nargs > 0)
			return usage_error("%s takes no arguments, got '%s'", cmd,
					   args[0]);
	} else if (strcmp(cmd, "drain") == 0 || strcmp(cmd, "enable") == 0) {
		if (nargs != 2)
			return usage_error("%s needs POOL BACKEND", cmd);
	} else if (strcmp(cmd, "weight") == 0) {
		char *end;

		if (nargs != 3)
			return usage_error("weight needs POOL BACKEND N");
		errno = 0;
		weight = strtol(args[2], &end, 10);
		if (errno || end == args[2] || *end || weight < 0 || weight > 1000)
			return usage_error("weight: N must be an integer from 0 to "
					   "1000 (0 restores the configured "
					   "weight), got '%s'",
					   args[2]);
	} else if (strcmp(cmd, "silence") == 0) {
		if (nargs == 0)
			return usage_error("silence needs add, list or del");
		if (strcmp(args[0], "add") == 0) {
			if (nargs != 2)
				return usage_error(
					"silence add needs MATCHERS, e.g. "
					"'alertname=BackendDown,pool=web' --for 2h");
			secs = parse_duration_s(for_text ? for_text : "1h");
			if (secs <= 0 || secs > 90ll * 86400)
				return usage_error(
					"silence add: --for must be like 90s, 15m, "
					"2h or 1d (at most 90d), got '%s'",
					for_text);
		} else if (strcmp(args[0], "list") == 0) {
			if (nargs != 1)
				return usage_error("silence list takes no "
						   "arguments");
		} else if (strcmp(args[0], "del") == 0) {
			if (nargs != 2)
				return usage_error("silence del needs ID");
		} else {
			return usage_error("unknown silence command '%s' "
					   "(expected add, list or del)",
					   args[0]);
		}
	} else {
		return usage_error("unknown command '%s' (expected status, pools, "
				   "drain, enable, weight, reload, alerts or "
				   "silence)",
				   cmd);
	}

	rc = find_admin(&c, cfg_path, admin, token_file);
	if (rc != EXIT_OK)
		goto out;
	if (strcmp(cmd, "status") == 0 || strcmp(cmd, "pools") == 0)
		rc = cmd_get(&c, cmd);
	else if (strcmp(cmd, "reload") == 0)
		rc = cmd_reload(&c);
	else if (strcmp(cmd, "alerts") == 0)
		rc = cmd_alerts(&c);
	else if (strcmp(cmd, "silence") == 0)
		rc = cmd_silence(&c, args, secs, comment);
	else
		rc = cmd_backend(&c, cmd, args, weight);
out:
	if (c.token) {
		explicit_bzero(c.token, strlen(c.token));
		free(c.token);
	}
	return rc;
}
