/*
 * accesslog.c - the access log: one line per request, batched per thread
 * (see accesslog.h).
 *
 * Each worker thread owns a struct accesslog_batch, a buffer of whole
 * lines. accesslog_write() formats a line into it without locking or
 * system calls; once the buffer holds 32 KiB or more it is flushed. A
 * flush takes the log's mutex and hands the buffer to write(2) until all
 * of it is out, so lines from different batches never interleave and a
 * flush writes whole lines only. The time-based flush (the header's
 * "flush interval") is the worker's job: it calls accesslog_flush() from
 * a timer. Nothing here fsyncs or rotates files; rotation is somebody
 * else's rename followed by accesslog_reopen().
 *
 * Formats:
 *
 *   JSON: one compact object per line, keys always in this order:
 *     {"ts":"2026-11-28T12:00:00.123Z","client":"203.0.113.7",
 *      "method":"GET","target":"/x","proto":"HTTP/1.1","status":200,
 *      "bytes_sent":1234,"bytes_received":87,"host":"shop.example",
 *      "referer":null,"user_agent":"curl/8.5","route":"shop","pool":"web",
 *      "backend":"web1","total_ms":12.345,"upstream_ms":10.002,"retries":0}
 *   Missing strings are null, as is upstream_ms when no backend answered
 *   (negative) and a duration that is not a finite number. Strings are
 *   escaped by hand (no jansson on this path): \" and \\, other control
 *   bytes and DEL as \u00XX, valid UTF-8 passes through, and every
 *   maximal invalid UTF-8 subpart becomes one \ufffd, so each line is
 *   valid JSON whatever bytes the client sent.
 *
 *   Combined (Apache/nginx), UTC, bytes_sent includes the head (nginx's
 *   $bytes_sent, not $body_bytes_sent), followed by a storekeep
 *   extension of key=value pairs:
 *     203.0.113.7 - - [28/Nov/2026:12:00:00 +0000] "GET /x HTTP/1.1" 200
 *     1234 "-" "curl/8.5" route=shop pool=web backend=web1
 *     total_ms=12.345 upstream_ms=10.002 retries=0
 *   (one line). A missing value is "-". As in nginx, '"', '\\', control
 *   bytes and bytes >= 0x7f are written as \xHH, so the line is plain
 *   ASCII; in the unquoted fields (client and the extension values) a
 *   space is escaped too, so splitting on spaces stays safe.
 *
 * Anonymisation, when on, replaces the client address in every line by
 * its prefix; a client that is not an address is logged as "-". An
 * IPv4-mapped IPv6 address is cut at the IPv4 prefix.
 *
 * Lines that cannot be written (write error, out of memory) are counted in
 * `dropped`; the first loss of a burst logs a warning, the first
 * successful flush after it logs how many lines the burst cost. When a
 * failed write stopped in the middle of a line, the next write starts
 * with a newline so the torn line does not swallow the next one.
 *
 * Invariants: a batch's buffer is empty or ends with '\n'; fd, torn,
 * failing and burst_drops are read and written under the mutex only; the
 * options are immutable after accesslog_open(); every batch is freed
 * before its log is closed.
 */
#include "proxy/accesslog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"

/* A batch is flushed once it holds this much. */
#define BATCH_FLUSH_AT (32u * 1024u)
/* After a flush, a buffer grown past this (by a huge line) is released
 * so one odd request does not pin memory for the life of the worker. */
#define BATCH_KEEP_MAX (4u * BATCH_FLUSH_AT)
/* Room for everything in a line but the escaped strings: keys,
 * punctuation, timestamp, numbers, an anonymised address. */
#define LINE_FIXED_MAX 768u
/* The most one input byte can become ("\u00XX", "\ufffd"). */
#define ESC_MAX 6u

#define STRLIT(s) (s), (sizeof(s) - 1)

struct accesslog {
	pthread_mutex_t lock;
	int fd;			/* under lock */
	int torn;		/* under lock: the file ends inside a line */
	int failing;		/* under lock: in a burst of lost lines */
	uint64_t burst_drops;	/* under lock: lines lost in this burst */
	_Atomic uint64_t dropped; /* lines lost since open */
	_Atomic unsigned batches; /* live batches */

	/* Immutable after open. */
	int is_stdout;
	char *path;
	enum accesslog_format format;
	int anonymize;
	uint8_t v4_prefix;
	uint8_t v6_prefix;
};

struct accesslog_batch {
	struct accesslog *log;
	struct buf buf;
	/* The timestamp text of the last second formatted, so a line costs
	 * no gmtime_r() unless the second changed. */
	uint64_t ts_sec;
	size_t ts_len;
	char ts_text[40];
};

/*
 * Byte classes. JSON: 0 copies the byte, 1 escapes it, 2 starts a UTF-8
 * check. Combined: Q is escaped inside quotes, B in bare fields.
 */
enum { J_LIT = 0, J_ESC = 1, J_U8 = 2 };
static const uint8_t json_class[256] = {
	[0x00 ... 0x1f] = J_ESC,
	['"'] = J_ESC,
	['\\'] = J_ESC,
	[0x7f] = J_ESC,
	[0x80 ... 0xff] = J_U8,
};

enum { C_Q = 1, C_B = 2 };
static const uint8_t clf_class[256] = {
	[0x00 ... 0x1f] = C_Q | C_B,
	[' '] = C_B,
	['"'] = C_Q | C_B,
	['\\'] = C_Q | C_B,
	[0x7f ... 0xff] = C_Q | C_B,
};

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/*
 * buf_append() and buf_appendc() for this file's hot path: accesslog_write()
 * reserved the line's worst case, so the room check nearly always passes
 * and the copy of a literal becomes a few moves once inlined (a quarter of
 * the cost of a line went to the out-of-line calls). The fallback keeps a
 * wrong bound harmless.
 */
static inline void put(struct buf *o, const char *p, size_t n)
{
	if (__builtin_expect(n < o->cap - o->len, 1)) {
		memcpy(o->data + o->len, p, n);
		o->len += n;
	} else {
		buf_append(o, p, n);
	}
}

static inline void putc1(struct buf *o, char c)
{
	if (__builtin_expect(o->len + 1 < o->cap, 1))
		o->data[o->len++] = c;
	else
		buf_appendc(o, c);
}

/* ---- numbers ---------------------------------------------------------- */

static void put_u64(struct buf *o, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	put(o, tmp + i, sizeof(tmp) - i);
}

static void put_int(struct buf *o, int v)
{
	if (v < 0) {
		putc1(o, '-');
		put_u64(o, (uint64_t)(-(int64_t)v));
	} else {
		put_u64(o, (uint64_t)v);
	}
}

/* Writes a finite v with exactly three decimals. snprintf() would do, at
 * several times the cost; past 1e15 ms (30,000 years) the value is junk
 * anyway and goes out in exponent form to keep the line bounded. */
static void put_ms3(struct buf *o, double v)
{
	double a = v < 0 ? -v : v;
	uint64_t m;
	char frac[4];

	if (!(a < 1e15)) {
		buf_printf(o, "%.3e", v);
		return;
	}
	m = (uint64_t)(a * 1000.0 + 0.5);
	if (v < 0 && m != 0)
		putc1(o, '-');
	put_u64(o, m / 1000);
	m %= 1000;
	frac[0] = '.';
	frac[1] = (char)('0' + m / 100);
	frac[2] = (char)('0' + m / 10 % 10);
	frac[3] = (char)('0' + m % 10);
	put(o, frac, sizeof(frac));
}

/* ---- strings ---------------------------------------------------------- */

/*
 * Length of the well-formed UTF-8 sequence at s (2 to 4 bytes, Unicode
 * table 3-7: no overlongs, no surrogates, nothing past U+10FFFF), or 0
 * when there is none; *bad then holds the length of the maximal subpart
 * to replace (at least 1).
 */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		*bad = 1;
		return 0;
	}
	for (i = 1; i < need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

/* Makes room for n input bytes escaped. accesslog_write() reserved the
 * worst case of the whole line, so this is normally a no-op; it is here so
 * that a wrong bound costs a realloc, never an overflow. */
static char *esc_room(struct buf *o, size_t n)
{
	int r;

	SK_ASSERT(n <= (SIZE_MAX - 2) / ESC_MAX);
	r = buf_reserve(o, n * ESC_MAX + 2);
	SK_ASSERT(r == 0);
	return o->data + o->len;
}

/* Appends s as a JSON string, or null when s is NULL. */
static void json_str(struct buf *o, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end;
	char *w;

	if (s == NULL) {
		put(o, STRLIT("null"));
		return;
	}
	w = esc_room(o, n);
	end = p + n;
	*w++ = '"';
	while (p < end) {
		unsigned char c = *p;
		size_t len, bad;

		switch (json_class[c]) {
		case J_LIT:
			*w++ = (char)c;
			p++;
			break;
		case J_ESC:
			*w++ = '\\';
			if (c == '"' || c == '\\') {
				*w++ = (char)c;
			} else {
				memcpy(w, "u00", 3);
				w[3] = hex_lower[c >> 4];
				w[4] = hex_lower[c & 15];
				w += 5;
			}
			p++;
			break;
		default:
			len = utf8_seq(p, (size_t)(end - p), &bad);
			if (len != 0) {
				memcpy(w, p, len);
				w += len;
				p += len;
			} else {
				memcpy(w, "\\ufffd", 6);
				w += 6;
				p += bad;
			}
			break;
		}
	}
	*w++ = '"';
	o->len = (size_t)(w - o->data);
}

static void json_cstr(struct buf *o, const char *s)
{
	json_str(o, s, s ? strlen(s) : 0);
}

/* Appends s escaped the nginx way, bytes of class `cls` as \xHH. */
static void clf_str(struct buf *o, const char *s, size_t n, uint8_t cls)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	char *w = esc_room(o, n);

	for (; p < end; p++) {
		unsigned char c = *p;

		if (clf_class[c] & cls) {
			w[0] = '\\';
			w[1] = 'x';
			w[2] = hex_upper[c >> 4];
			w[3] = hex_upper[c & 15];
			w += 4;
		} else {
			*w++ = (char)c;
		}
	}
	o->len = (size_t)(w - o->data);
}

/* A quoted field: "-" when missing. */
static void clf_quoted(struct buf *o, const char *s, size_t n)
{
	putc1(o, '"');
	if (s == NULL)
		putc1(o, '-');
	else
		clf_str(o, s, n, C_Q);
	putc1(o, '"');
}

/* A bare field: - when missing or empty (an empty field would shift
 * every later one for a space-splitting reader). */
static void clf_bare(struct buf *o, const char *s)
{
	if (s == NULL || s[0] == '\0')
		putc1(o, '-');
	else
		clf_str(o, s, strlen(s), C_B);
}

/* ---- addresses -------------------------------------------------------- */

static void keep_bits(unsigned char *a, size_t bytes, unsigned keep)
{
	for (size_t i = 0; i < bytes; i++) {
		unsigned bit = (unsigned)i * 8;

		if (keep >= bit + 8)
			continue;
		a[i] = keep <= bit ? 0 : (unsigned char)(a[i] & (0xffu << (8 - (keep - bit))));
	}
}

int accesslog_anonymize(const char *ip, uint8_t v4_prefix, uint8_t v6_prefix,
			char *out, size_t outlen)
{
	union {
		struct in_addr v4;
		struct in6_addr v6;
		unsigned char b[16];
	} a;
	unsigned v4 = v4_prefix > 32 ? 32 : v4_prefix;
	unsigned v6 = v6_prefix > 128 ? 128 : v6_prefix;

	if (ip == NULL)
		goto fail;
	if (inet_pton(AF_INET, ip, &a.v4) == 1) {
		keep_bits(a.b, 4, v4);
		if (inet_ntop(AF_INET, &a.v4, out, (socklen_t)outlen) == NULL)
			goto fail;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &a.v6) == 1) {
		/* ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket: cut
		 * it where the IPv4 address would be cut, not at the IPv6
		 * prefix, which would keep nothing of it or all of it. */
		if (IN6_IS_ADDR_V4MAPPED(&a.v6))
			keep_bits(a.b + 12, 4, v4);
		else
			keep_bits(a.b, 16, v6);
		if (inet_ntop(AF_INET6, &a.v6, out, (socklen_t)outlen) == NULL)
			goto fail;
		return 0;
	}
fail:
	/* Also reached when out is too small for the address: better no
	 * client than a cut-off one. */
	if (outlen >= 2)
		memcpy(out, "-", 2);
	else if (outlen == 1)
		out[0] = '\0';
	return -1;
}

/* The client as logged: anonymised into tmp when asked. NULL when the
 * entry has none and no anonymisation is done. */
static const char *client_text(const struct accesslog *l, const char *ip,
			       char tmp[INET6_ADDRSTRLEN])
{
	if (!l->anonymize)
		return ip;
	accesslog_anonymize(ip, l->v4_prefix, l->v6_prefix, tmp, INET6_ADDRSTRLEN);
	return tmp;
}

/* ---- lines ------------------------------------------------------------ */

/* Appends the timestamp of ms, re-formatting the second only when it
 * changed since the last line of this batch. */
static void put_ts(struct accesslog_batch *b, uint64_t wall_ms)
{
	uint64_t sec = wall_ms / 1000;
	unsigned ms = (unsigned)(wall_ms % 1000);

	if (b->ts_sec != sec) {
		if (b->log->format == ACCESSLOG_JSON) {
			clock_fmt_iso8601(b->ts_text, sec * 1000);
			b->ts_len = strlen(b->ts_text);
			/* "...:SS.mmmZ": the digits patched below. */
			SK_ASSERT(b->ts_len >= 5 && b->ts_text[b->ts_len - 5] == '.');
		} else {
			time_t t = (time_t)sec;
			struct tm tm;
			int n;

			gmtime_r(&t, &tm);
			n = snprintf(b->ts_text, sizeof(b->ts_text),
				     "%02u/%s/%04u:%02u:%02u:%02u +0000",
				     (unsigned)tm.tm_mday % 100u,
				     months[(unsigned)tm.tm_mon % 12u],
				     (unsigned)(tm.tm_year + 1900) % 10000u,
				     (unsigned)tm.tm_hour % 100u,
				     (unsigned)tm.tm_min % 100u,
				     (unsigned)tm.tm_sec % 100u);
			SK_ASSERT(n > 0 && (size_t)n < sizeof(b->ts_text));
			b->ts_len = (size_t)n;
		}
		b->ts_sec = sec;
	}
	if (b->log->format == ACCESSLOG_JSON) {
		char *d = b->ts_text + b->ts_len - 4;

		d[0] = (char)('0' + ms / 100);
		d[1] = (char)('0' + ms / 10 % 10);
		d[2] = (char)('0' + ms % 10);
	}
	put(&b->buf, b->ts_text, b->ts_len);
}

static void format_json(struct accesslog_batch *b, const struct accesslog_entry *e,
			const char *client)
{
	struct buf *o = &b->buf;

	put(o, STRLIT("{\"ts\":\""));
	put_ts(b, e->wall_ms);
	put(o, STRLIT("\",\"client\":"));
	json_cstr(o, client);
	put(o, STRLIT(",\"method\":"));
	json_str(o, e->method, e->method_len);
	put(o, STRLIT(",\"target\":"));
	json_str(o, e->target, e->target_len);
	put(o, STRLIT(",\"proto\":\"HTTP/1."));
	put_int(o, e->version_minor);
	put(o, STRLIT("\",\"status\":"));
	put_int(o, e->status);
	put(o, STRLIT(",\"bytes_sent\":"));
	put_u64(o, e->bytes_sent);
	put(o, STRLIT(",\"bytes_received\":"));
	put_u64(o, e->bytes_received);
	put(o, STRLIT(",\"host\":"));
	json_str(o, e->host, e->host_len);
	put(o, STRLIT(",\"referer\":"));
	json_str(o, e->referer, e->referer_len);
	put(o, STRLIT(",\"user_agent\":"));
	json_str(o, e->user_agent, e->user_agent_len);
	put(o, STRLIT(",\"route\":"));
	json_cstr(o, e->route);
	put(o, STRLIT(",\"pool\":"));
	json_cstr(o, e->pool);
	put(o, STRLIT(",\"backend\":"));
	json_cstr(o, e->backend);
	put(o, STRLIT(",\"total_ms\":"));
	if (isfinite(e->total_ms))
		put_ms3(o, e->total_ms);
	else
		put(o, STRLIT("null"));
	put(o, STRLIT(",\"upstream_ms\":"));
	if (isfinite(e->upstream_ms) && e->upstream_ms >= 0)
		put_ms3(o, e->upstream_ms);
	else
		put(o, STRLIT("null"));
	put(o, STRLIT(",\"retries\":"));
	put_u64(o, e->retries);
	put(o, STRLIT("}\n"));
}

static void format_combined(struct accesslog_batch *b,
			    const struct accesslog_entry *e, const char *client)
{
	struct buf *o = &b->buf;

	clf_bare(o, client);
	put(o, STRLIT(" - - ["));
	put_ts(b, e->wall_ms);
	put(o, STRLIT("] \""));
	if (e->method == NULL && e->target == NULL) {
		putc1(o, '-');
	} else {
		if (e->method)
			clf_str(o, e->method, e->method_len, C_Q);
		else
			putc1(o, '-');
		putc1(o, ' ');
		if (e->target)
			clf_str(o, e->target, e->target_len, C_Q);
		else
			putc1(o, '-');
		put(o, STRLIT(" HTTP/1."));
		put_int(o, e->version_minor);
	}
	put(o, STRLIT("\" "));
	put_int(o, e->status);
	putc1(o, ' ');
	put_u64(o, e->bytes_sent);
	putc1(o, ' ');
	clf_quoted(o, e->referer, e->referer_len);
	putc1(o, ' ');
	clf_quoted(o, e->user_agent, e->user_agent_len);
	put(o, STRLIT(" route="));
	clf_bare(o, e->route);
	put(o, STRLIT(" pool="));
	clf_bare(o, e->pool);
	put(o, STRLIT(" backend="));
	clf_bare(o, e->backend);
	put(o, STRLIT(" total_ms="));
	if (isfinite(e->total_ms))
		put_ms3(o, e->total_ms);
	else
		putc1(o, '-');
	put(o, STRLIT(" upstream_ms="));
	if (isfinite(e->upstream_ms) && e->upstream_ms >= 0)
		put_ms3(o, e->upstream_ms);
	else
		putc1(o, '-');
	put(o, STRLIT(" retries="));
	put_u64(o, e->retries);
	putc1(o, '\n');
}

/* The worst-case size of e's line, or 0 when it does not fit a size_t. */
static size_t line_bound(const struct accesslog_entry *e, const char *client)
{
	size_t lens[9] = {
		e->method ? e->method_len : 0,
		e->target ? e->target_len : 0,
		e->host ? e->host_len : 0,
		e->referer ? e->referer_len : 0,
		e->user_agent ? e->user_agent_len : 0,
		e->route ? strlen(e->route) : 0,
		e->pool ? strlen(e->pool) : 0,
		e->backend ? strlen(e->backend) : 0,
		client ? strlen(client) : 0,
	};
	size_t sum = 0, total;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		if (__builtin_add_overflow(sum, lens[i], &sum))
			return 0;
	}
	if (__builtin_mul_overflow(sum, (size_t)ESC_MAX, &total) ||
	    __builtin_add_overflow(total, (size_t)LINE_FIXED_MAX, &total))
		return 0;
	return total;
}

/* ---- output ----------------------------------------------------------- */

/* Writes all n bytes, retrying partial writes and EINTR. Returns 0 or a
 * negative errno; *done says how many bytes went out either way. */
static int write_all(int fd, const char *p, size_t n, size_t *done)
{
	size_t off = 0;
	int err = 0;

	while (off < n) {
		ssize_t r = write(fd, p + off, n - off);

		if (r > 0) {
			off += (size_t)r;
		} else if (r < 0 && errno == EINTR) {
			continue;
		} else {
			/* 0 from write(2) for n > 0 is no progress: stop rather
			 * than spin. EAGAIN (a non-blocking stdout) is a loss too:
			 * the workers must not block on a slow reader. */
			err = r < 0 ? -errno : -EIO;
			break;
		}
	}
	*done = off;
	return err;
}

static size_t count_lines(const char *p, size_t n)
{
	size_t lines = 0;
	const char *end = p + n;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		lines++;
		p++;
	}
	return lines;
}

/* Counts lost lines; called with the lock held. Returns 1 when this loss
 * opens a burst, which the caller reports once the lock is released. */
static int note_loss_locked(struct accesslog *l, uint64_t lines)
{
	atomic_fetch_add_explicit(&l->dropped, lines, memory_order_relaxed);
	l->burst_drops += lines;
	if (l->failing)
		return 0;
	l->failing = 1;
	return 1;
}

void accesslog_flush(struct accesslog_batch *b)
{
	struct accesslog *l = b->log;
	struct buf *o = &b->buf;
	size_t done = 0, nl_done;
	uint64_t lost = 0, recovered = 0;
	int err = 0, warn = 0;
	char q[256], qe[128];

	if (o->len == 0)
		return;
	SK_ASSERT(o->data[o->len - 1] == '\n');

	pthread_mutex_lock(&l->lock);
	if (l->torn) {
		err = write_all(l->fd, "\n", 1, &nl_done);
		if (err == 0)
			l->torn = 0;
	}
	if (err == 0)
		err = write_all(l->fd, o->data, o->len, &done);
	if (err != 0) {
		lost = count_lines(o->data + done, o->len - done);
		if (done > 0 && o->data[done - 1] != '\n')
			l->torn = 1;
		warn = note_loss_locked(l, lost);
	} else if (l->failing) {
		l->failing = 0;
		recovered = l->burst_drops;
		l->burst_drops = 0;
	}
	pthread_mutex_unlock(&l->lock);

	if (warn)
		log_warn("access log write failed; dropping lines until it recovers",
			 "path=%s err=%s lost=%llu", log_q(q, sizeof(q), l->path),
			 log_q(qe, sizeof(qe), strerror(-err)),
			 (unsigned long long)lost);
	else if (recovered != 0)
		log_warn("access log writable again", "path=%s lost=%llu",
			 log_q(q, sizeof(q), l->path),
			 (unsigned long long)recovered);

	buf_reset(o);
	if (o->cap > BATCH_KEEP_MAX)
		buf_fini(o);
}

void accesslog_write(struct accesslog_batch *b, const struct accesslog_entry *e)
{
	struct accesslog *l = b->log;
	char tmp[INET6_ADDRSTRLEN], q[256];
	const char *client = client_text(l, e->client_ip, tmp);
	size_t need = line_bound(e, client);
	int warn;

	/* The fields' sizes come from the client (a long target or
	 * User-Agent): a line that does not fit in memory is dropped and
	 * counted, never an abort. */
	if (need == 0 || buf_reserve(&b->buf, need) != 0) {
		pthread_mutex_lock(&l->lock);
		warn = note_loss_locked(l, 1);
		pthread_mutex_unlock(&l->lock);
		if (warn)
			log_warn("access log line dropped: out of memory",
				 "path=%s need=%zu", log_q(q, sizeof(q), l->path),
				 need);
		return;
	}
	if (l->format == ACCESSLOG_JSON)
		format_json(b, e, client);
	else
		format_combined(b, e, client);
	if (b->buf.len >= BATCH_FLUSH_AT)
		accesslog_flush(b);
}

/* ---- life cycle ------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, const char *a,
		    const char *b)
{
	if (err != NULL && errlen != 0)
		snprintf(err, errlen, fmt, a, b);
}

int accesslog_open(const struct accesslog_opts *o, struct accesslog **out,
		   char *err, size_t errlen)
{
	struct accesslog *l = NULL;
	int r;

	*out = NULL;
	if (o->path == NULL || o->path[0] == '\0') {
		set_err(err, errlen, "access log: %s%s", "no path", "");
		return -EINVAL;
	}
	if (o->format != ACCESSLOG_JSON && o->format != ACCESSLOG_COMBINED) {
		set_err(err, errlen, "access log %s: %s", o->path, "unknown format");
		return -EINVAL;
	}
	if (o->v4_prefix > 32 || o->v6_prefix > 128) {
		set_err(err, errlen, "access log %s: %s", o->path,
			"anonymisation prefix out of range (IPv4 0..32, IPv6 0..128)");
		return -EINVAL;
	}

	l = calloc(1, sizeof(*l));
	if (l == NULL)
		goto nomem;
	l->fd = -1;
	l->path = strdup(o->path);
	if (l->path == NULL)
		goto nomem;
	l->format = o->format;
	l->anonymize = o->anonymize_ip != 0;
	l->v4_prefix = o->v4_prefix ? o->v4_prefix : 24;
	l->v6_prefix = o->v6_prefix ? o->v6_prefix : 48;
	if (strcmp(o->path, "-") == 0) {
		l->is_stdout = 1;
		l->fd = STDOUT_FILENO;
	} else {
		l->fd = open(o->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (l->fd < 0) {
			r = -errno;
			set_err(err, errlen, "access log %s: %s", o->path, strerror(-r));
			goto fail;
		}
	}
	r = pthread_mutex_init(&l->lock, NULL);
	if (r != 0) {
		r = -r;
		set_err(err, errlen, "access log %s: %s", o->path, strerror(-r));
		goto fail;
	}
	*out = l;
	return 0;

nomem:
	r = -ENOMEM;
	set_err(err, errlen, "access log %s: %s", o->path, strerror(ENOMEM));
fail:
	if (l != NULL) {
		if (l->fd >= 0 && !l->is_stdout)
			close(l->fd);
		free(l->path);
		free(l);
	}
	return r;
}

void accesslog_close(struct accesslog *l)
{
	if (l == NULL)
		return;
	/* Batches flush on free and write straight through, so once they are
	 * gone nothing is pending here. */
	SK_ASSERT(atomic_load(&l->batches) == 0);
	if (!l->is_stdout && l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	pthread_mutex_destroy(&l->lock);
	free(l->path);
	l->path = NULL;
	free(l);
}

/* Opens the path again and swaps the descriptor under the lock, so a
 * flush writes wholly to the old file or wholly to the new one. Returns 0
 * (also for stdout, where there is nothing to reopen) or a negative errno,
 * logged here; the old file then stays in use. */
int accesslog_reopen(struct accesslog *l)
{
	char q[256], qe[128];
	int fd, old, r;

	if (l->is_stdout)
		return 0;
	fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		r = -errno;
		log_warn("access log reopen failed; still writing the old file",
			 "path=%s err=%s", log_q(q, sizeof(q), l->path),
			 log_q(qe, sizeof(qe), strerror(-r)));
		return r;
	}
	pthread_mutex_lock(&l->lock);
	old = l->fd;
	l->fd = fd;
	l->torn = 0; /* a fresh file does not end inside a line */
	pthread_mutex_unlock(&l->lock);
	close(old);
	return 0;
}

/* Allocates a batch for the calling thread; aborts on out-of-memory (a
 * small fixed allocation, made once per worker). */
struct accesslog_batch *accesslog_batch_new(struct accesslog *l)
{
	struct accesslog_batch *b = calloc(1, sizeof(*b));
	int r;

	SK_ASSERT(b != NULL);
	b->log = l;
	buf_init(&b->buf);
	/* Sized for a full batch plus a typical line: no growth in steady
	 * state. */
	r = buf_reserve(&b->buf, BATCH_FLUSH_AT + 2048);
	SK_ASSERT(r == 0);
	b->ts_sec = UINT64_MAX;
	atomic_fetch_add(&l->batches, 1);
	return b;
}

void accesslog_batch_free(struct accesslog_batch *b)
{
	if (b == NULL)
		return;
	accesslog_flush(b);
	atomic_fetch_sub(&b->log->batches, 1);
	buf_fini(&b->buf);
	free(b);
}
