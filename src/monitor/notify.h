/*
 * notify.h - notification channels: webhooks (a generic JSON body, a
 * Slack-compatible one, and Alertmanager's v2 API), email over SMTP (with
 * STARTTLS) and commands (the alerts as JSON on stdin).
 *
 * What is sent is a batch: a JSON array of alerts, each
 *
 *   {"status": "firing"|"resolved", "name": "HighErrorRate",
 *    "severity": "critical", "labels": {"alertname": ..., ...},
 *    "annotations": {"summary": "..."}, "value": 0.031 (or null),
 *    "startsAt": "2026-11-28T12:00:00.000Z", "endsAt": ISO or null,
 *    "generatorURL": "...", "fingerprint": "16 hex digits"}
 *
 * as the alert engine (monitor/alert.h) makes them; all alerts of one
 * batch have the same status. notify_send() never blocks: each channel
 * has a FIFO queue and sends one delivery at a time, so a channel's
 * receiver sees firing before resolved; at most max_inflight deliveries
 * run at once over all channels. HTTP and SMTP go through libcurl's
 * multi interface driven by libuv (uv_poll on its sockets, a uv_timer
 * for its timeouts); commands run with uv_spawn, without a shell, in a
 * process group of their own that gets SIGKILL at the timeout. A failed
 * attempt is retried after backoff_ms, doubling up to backoff_max_ms,
 * until max_attempts; a definite refusal (HTTP 4xx other than 408 and
 * 429, a malformed URL, a login refused) is not retried. Every failure
 * is logged and counted per channel (notify_status_json()); a delivery
 * that runs out of attempts, or is pushed out of a full queue, is lost.
 *
 * Bodies by channel:
 *   webhook generic: {"version": "1", "source": "storekeep",
 *     "receiver": channel name, "status": ..., "alerts": [batch]}
 *   webhook slack: {"text": "*[FIRING:2]* ...\n• [critical] name: summary"}
 *   webhook alertmanager: POST <url>/api/v2/alerts (unless url already
 *     ends so) with [{labels, annotations, startsAt, endsAt,
 *     generatorURL}]; a firing alert's endsAt is now + 4 * resend_ms and
 *     the channel sends the alerts that fire again every resend_ms, as
 *     Prometheus does, so Alertmanager keeps them until they resolve;
 *   email: one plain-text mail per batch (Subject, From, To, Date,
 *     Message-ID headers; summary, labels, value and times per alert);
 *   command: the generic webhook body on stdin; exit status 0 is
 *     success, anything else (or the timeout) a failure with the last
 *     line it printed.
 *
 * Threads: everything, callbacks included, runs on the loop given to
 * notify_new(). SIGPIPE must be ignored (a command that does not read
 * its stdin would otherwise kill the process); storekeep's main does.
 *
 * Not here: grouping over time (one batch per alert evaluation),
 * inhibition, templates for bodies, rate limits per receiver, queues
 * that survive a restart.
 */
#ifndef SK_MONITOR_NOTIFY_H
#define SK_MONITOR_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#define NOTIFY_CHANNELS_MAX 64

enum notify_type {
	NOTIFY_WEBHOOK = 0,
	NOTIFY_EMAIL,
	NOTIFY_COMMAND,
};

enum notify_format {
	NOTIFY_FORMAT_GENERIC = 0,
	NOTIFY_FORMAT_SLACK,
	NOTIFY_FORMAT_ALERTMANAGER,
};

enum notify_tls {
	NOTIFY_TLS_TRY = 0, /* STARTTLS when the server offers it */
	NOTIFY_TLS_ALL,	    /* STARTTLS or fail (smtps:// is TLS anyway) */
	NOTIFY_TLS_NONE,    /* plain text, never STARTTLS */
};

/* One channel: plain data, copied by notify_new() and _reload(). */
struct notify_channel {
	const char *name; /* unique */
	enum notify_type type;
	/* "info", "warning" or "critical": alerts below it are not sent
	 * here. NULL: all. */
	const char *min_severity;
	bool skip_resolved;	 /* send firing alerts only */
	uint32_t timeout_ms;	 /* one attempt; 0: 10 s */
	uint32_t max_attempts;	 /* 0: 5 */
	uint32_t backoff_ms;	 /* before the 2nd attempt; 0: 1 s */
	uint32_t backoff_max_ms; /* 0: 5 min */
	uint32_t queue_max;	 /* deliveries waiting; 0: 100 */

	/* webhook: http:// or https:// URL; email: smtp:// or smtps://
	 * host[:port] */
	const char *url;
	const char *ca_file; /* PEM CA bundle instead of the system's */

	/* webhook */
	enum notify_format format;
	const char *const *headers; /* "Name: value" lines */
	size_t nheaders;
	uint32_t resend_ms; /* alertmanager: 0: 60 s */

	/* email */
	enum notify_tls tls;
	const char *username; /* NULL: no AUTH */
	const char *password;
	const char *from;      /* address, e.g. storekeep@shop.example */
	const char *const *to; /* addresses */
	size_t nto;
	const char *subject_prefix; /* NULL: "[storekeep]" */

	/* command: argv[0] is the program (an absolute path) */
	const char *const *argv;
	size_t nargv;
};

struct notify_conf {
	const struct notify_channel *channels;
	size_t nchannels;
	unsigned max_inflight; /* over all channels; 0: 4 */
};

struct notify;

/* "webhook", "email", "command" / "generic", "slack", "alertmanager" /
 * "try", "all", "none", and back (-EINVAL). */
const char *notify_type_name(enum notify_type t);
int notify_type_parse(const char *s, enum notify_type *out);
const char *notify_format_name(enum notify_format f);
int notify_format_parse(const char *s, enum notify_format *out);
const char *notify_tls_name(enum notify_tls t);
int notify_tls_parse(const char *s, enum notify_tls *out);

/* Checks one channel's settings. Returns 0 or -EINVAL with err naming
 * the channel and the setting. */
int notify_channel_check(const struct notify_channel *c, char *err,
			 size_t errlen);

/*
 * Checks and copies conf's channels and gets ready to send on loop
 * (borrowed until notify_stop() has finished). Initialises libcurl
 * globally the first time (curl_global_init is not thread-safe: call
 * this, or notify_global_init(), before starting other threads that use
 * libcurl). Returns 0 and *out, or -EINVAL with err, or -ENOMEM.
 */
int notify_new(uv_loop_t *loop, const struct notify_conf *conf,
	       struct notify **out, char *err, size_t errlen);
void notify_global_init(void);

/*
 * Takes a new set of channels. A channel whose name and type are kept
 * keeps its queue and counters and takes the new settings from its next
 * attempt on; a removed channel is stopped and its queue dropped. On
 * error nothing changes. Returns 0 or -EINVAL with err.
 */
int notify_reload(struct notify *n, const struct notify_conf *conf, char *err,
		  size_t errlen);

/* Queues batch (borrowed: an array of alerts, see above) on every
 * channel whose filters let at least one alert through. */
void notify_send(struct notify *n, json_t *batch);

/* Deliveries queued, waiting for a retry or in flight, over all
 * channels: 0 when everything sent so far has been dealt with. */
size_t notify_pending(const struct notify *n);

/*
 * A new array, one object per channel in config order: {name, type,
 * format (webhooks), target (scheme://host:port of the URL, with "/..."
 * for a path, which may hold a key; recipients; the program), healthy (the last
 * attempt succeeded; true before any), sent, failed (deliveries given
 * up), dropped (pushed out of a full queue), attempts, attempt_failures,
 * queued, in_flight, last_error, last_error_at, last_success_at}.
 */
json_t *notify_status_json(const struct notify *n);

/*
 * Abandons queued and running deliveries (commands get SIGKILL), closes
 * every handle, frees n, then calls done(ud) on the loop (done may be
 * NULL).
 */
void notify_stop(struct notify *n, void (*done)(void *ud), void *ud);

#endif
