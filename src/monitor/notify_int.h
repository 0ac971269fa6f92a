/*
 * notify_int.h - shared by notify*.c only: channels, their queues, one
 * attempt at a delivery, and the functions that format bodies
 * (notify_fmt.c) and run attempts (notify_io.c).
 *
 * Life of a delivery: notify_send() queues it on a channel; pump()
 * starts an attempt when the channel has none running, is not waiting
 * out a backoff, and a slot of max_inflight is free; the attempt ends in
 * notify_attempt_done(), which pops the delivery (sent, or given up) or
 * arms the retry timer. The attempt's memory lives on until its handles
 * are closed (notify_io.c), after the channel has moved on.
 */
#ifndef SK_MONITOR_NOTIFY_INT_H
#define SK_MONITOR_NOTIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "core/buf.h"
#include "monitor/notify.h"

struct notify_delivery {
	struct notify_delivery *next;
	json_t *alerts; /* the batch, filtered for the channel */
	bool resolved;
	unsigned attempts;
};

struct notify_attempt;

/* A channel's settings, strings owned. */
struct nconf {
	char *name;
	enum notify_type type;
	int min_rank;
	bool skip_resolved;
	uint32_t timeout_ms, max_attempts, backoff_ms, backoff_max_ms;
	uint32_t queue_max;
	char *url, *ca_file;
	enum notify_format format;
	char **headers;
	size_t nheaders;
	uint32_t resend_ms;
	enum notify_tls tls;
	char *username, *password, *from, *subject_prefix;
	char **to;
	size_t nto;
	char **argv;
	size_t nargv;
};

struct nchannel {
	struct notify *n;
	struct nconf c;
	struct notify_delivery *head, *tail;
	size_t queued;
	struct notify_attempt *cur;
	uv_timer_t retry;   /* backoff */
	uv_timer_t refresh; /* alertmanager: resend what fires */
	bool waiting;	    /* retry armed */
	int nclosing;	    /* handles of this channel being closed */
	json_t *active;	    /* alertmanager: fingerprint -> firing alert */

	uint64_t sent, failed, dropped, attempts, attempt_failures;
	uint64_t last_error_at, last_success_at;
	char last_error[256];
	bool healthy;
};

struct notify {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t curl_timer;
	struct nchannel **ch;
	size_t nch;
	unsigned max_inflight, inflight;
	int nclosing; /* handles (all kinds) being closed */
	bool stopping;
	void (*done)(void *ud);
	void *done_ud;
};

/* notify.c */
/* The attempt at ch's head delivery ended: ok, or failed with err
 * (retryable or not). Called once per attempt. */
void notify_attempt_done(struct nchannel *ch, bool ok, bool retryable,
			 const char *err);
/* Counts a handle of n being closed / closed (frees n at the end of a
 * stop). */
void notify_closing(struct notify *n);
void notify_closed(struct notify *n);

/* notify_io.c */
int notify_io_init(struct notify *n);
/* Starts an attempt at ch's head delivery. On a failure to start, it
 * reports through notify_attempt_done() itself. */
void notify_io_start(struct nchannel *ch);
/* Abandons ch's running attempt, if any (no done call). */
void notify_io_abort(struct nchannel *ch);
/* Closes the curl side once every attempt is gone. */
void notify_io_fini(struct notify *n);

/* notify_fmt.c: bodies, appended to out. now_ms: wall clock. */
void notify_fmt_generic(struct buf *out, const struct nconf *c,
			const struct notify_delivery *d);
void notify_fmt_slack(struct buf *out, const struct notify_delivery *d);
void notify_fmt_alertmanager(struct buf *out, const struct nconf *c,
			     const struct notify_delivery *d, uint64_t now_ms);
/* The whole mail, headers and body, with CRLF line ends. */
void notify_fmt_email(struct buf *out, const struct nconf *c,
		      const struct notify_delivery *d, uint64_t now_ms);
int notify_severity_rank(const char *s); /* info 0, warning 1, critical 2 */

#endif
