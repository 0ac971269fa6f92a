/*
 * accesslog.h - one line per request, as JSON or the combined format.
 *
 * Lines are gathered per worker thread and written in batches (a buffer
 * flushed when it fills, at most every flush interval, and at exit), so
 * logging costs no syscall per request. Client addresses can be
 * anonymised (GDPR): only a prefix is kept (default /24 for IPv4, /48 for
 * IPv6), in every line. accesslog_reopen() reopens the file after
 * rotation (SIGUSR1).
 */
#ifndef SK_PROXY_ACCESSLOG_H
#define SK_PROXY_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

struct accesslog;
/* Per-thread batch; embedded in the worker. */
struct accesslog_batch;

enum accesslog_format {
	ACCESSLOG_JSON = 0,
	ACCESSLOG_COMBINED,
};

struct accesslog_opts {
	const char *path; /* file, appended to; "-" = stdout */
	enum accesslog_format format;
	int anonymize_ip;
	uint8_t v4_prefix; /* bits kept, 0..32; default 24 */
	uint8_t v6_prefix; /* bits kept, 0..128; default 48 */
};

struct accesslog_entry {
	uint64_t wall_ms;	/* when the request arrived */
	const char *client_ip;	/* as text; anonymised by the logger */
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	int version_minor;
	int status;
	uint64_t bytes_sent;	/* to the client, head included */
	uint64_t bytes_received; /* from the client, head included */
	const char *host;	/* may be NULL */
	size_t host_len;
	const char *referer;	/* may be NULL */
	size_t referer_len;
	const char *user_agent; /* may be NULL */
	size_t user_agent_len;
	const char *route;	/* may be NULL */
	const char *pool;	/* may be NULL */
	const char *backend;	/* NULL when none was used */
	double total_ms;
	double upstream_ms;	/* -1 when no backend answered */
	uint32_t retries;
};

/* Opens the log. Returns 0 and *out, or a negative errno with err set. */
int accesslog_open(const struct accesslog_opts *o, struct accesslog **out,
		   char *err, size_t errlen);
/* Writes what every batch flushed, then closes. */
void accesslog_close(struct accesslog *l);
int accesslog_reopen(struct accesslog *l);

/* A batch belongs to one thread. new/free; flush writes what it holds. */
struct accesslog_batch *accesslog_batch_new(struct accesslog *l);
void accesslog_batch_free(struct accesslog_batch *b); /* flushes first */
void accesslog_write(struct accesslog_batch *b, const struct accesslog_entry *e);
void accesslog_flush(struct accesslog_batch *b);

/* Keeps the first v4/v6 prefix bits of ip (text) and writes the result
 * as text ("203.0.113.0", "2001:db8:1::"). Returns 0, or -1 when ip is not
 * an address (out then holds "-"). */
int accesslog_anonymize(const char *ip, uint8_t v4_prefix, uint8_t v6_prefix,
			char *out, size_t outlen);

#endif
