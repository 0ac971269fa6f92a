/*
 * notify.c - notification channels: settings, queues, retries with
 * backoff, per-channel counters, reload and stop. The network and
 * process side is in notify_io.c, the bodies in notify_fmt.c.
 *
 * Invariants:
 *   - a channel has at most one attempt (cur), always at its head
 *     delivery; n->inflight counts the channels with one;
 *   - waiting (retry timer armed) implies cur == NULL;
 *   - once stopping, nothing starts; n is freed when the last handle
 *     of any kind has closed (n->nclosing back to 0).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/notify_int.h"

#define TIMEOUT_DEFAULT_MS     10000
#define ATTEMPTS_DEFAULT       5
#define BACKOFF_DEFAULT_MS     1000
#define BACKOFF_MAX_DEFAULT_MS (5 * 60 * 1000)
#define QUEUE_DEFAULT	       100
#define RESEND_DEFAULT_MS      60000
#define INFLIGHT_DEFAULT       4
#define AM_PATH		       "/api/v2/alerts"

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	SK_ASSERT(d != NULL);
	return d;
}

static const char *const type_names[] = {"webhook", "email", "command"};
static const char *const format_names[] = {"generic", "slack", "alertmanager"};
static const char *const tls_names[] = {"try", "all", "none"};

static int parse(const char *const *names, int n, const char *s)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -EINVAL;
}

const char *notify_type_name(enum notify_type t)
{
	return (unsigned)t < 3 ? type_names[t] : NULL;
}

int notify_type_parse(const char *s, enum notify_type *out)
{
	int i = parse(type_names, 3, s);

	if (i >= 0)
		*out = (enum notify_type)i;
	return i < 0 ? i : 0;
}

const char *notify_format_name(enum notify_format f)
{
	return (unsigned)f < 3 ? format_names[f] : NULL;
}

int notify_format_parse(const char *s, enum notify_format *out)
{
	int i = parse(format_names, 3, s);

	if (i >= 0)
		*out = (enum notify_format)i;
	return i < 0 ? i : 0;
}

const char *notify_tls_name(enum notify_tls t)
{
	return (unsigned)t < 3 ? tls_names[t] : NULL;
}

int notify_tls_parse(const char *s, enum notify_tls *out)
{
	int i = parse(tls_names, 3, s);

	if (i >= 0)
		*out = (enum notify_tls)i;
	return i < 0 ? i : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	SK_ASSERT(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
}

void notify_global_init(void)
{
	pthread_once(&curl_once, curl_init_once);
}

/* --- settings ------------------------------------------------------------ */

static bool has_prefix(const char *s, const char *p)
{
	return s && strncmp(s, p, strlen(p)) == 0;
}

static bool clean(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return s != NULL;
}

/* An address for MAIL FROM / RCPT TO: something@something, no spaces,
 * brackets or control bytes. */
static bool address_ok(const char *a)
{
	const char *at = a ? strchr(a, '@') : NULL;

	if (at == NULL || at == a || at[1] == '\0' || !clean(a))
		return false;
	return strpbrk(a, " <>,\"") == NULL;
}

int notify_channel_check(const struct notify_channel *c, char *err,
			 size_t errlen)
{
	const char *n = c->name;

	if (n == NULL || *n == '\0' || strlen(n) > 128 || !clean(n)) {
		snprintf(err, errlen,
			 "notifier: a name of 1..128 printable "
			 "bytes is needed");
		return -EINVAL;
	}
	if (c->min_severity && strcmp(c->min_severity, "info") &&
	    strcmp(c->min_severity, "warning") &&
	    strcmp(c->min_severity, "critical")) {
		snprintf(err, errlen,
			 "notifier %s: min_severity is info, warning or "
			 "critical",
			 n);
		return -EINVAL;
	}
	switch (c->type) {
	case NOTIFY_WEBHOOK:
		if ((!has_prefix(c->url, "http://") &&
		     !has_prefix(c->url, "https://")) ||
		    !clean(c->url)) {
			snprintf(err, errlen,
				 "notifier %s: url must be http:// or https://",
				 n);
			return -EINVAL;
		}
		if (notify_format_name(c->format) == NULL) {
			snprintf(err, errlen, "notifier %s: bad format", n);
			return -EINVAL;
		}
		for (size_t i = 0; i < c->nheaders; i++) {
			const char *h = c->headers[i], *colon;

			colon = h ? strchr(h, ':') : NULL;
			if (colon == NULL || colon == h || !clean(h)) {
				snprintf(err, errlen,
					 "notifier %s: header %zu is not "
					 "\"Name: value\"",
					 n, i + 1);
				return -EINVAL;
			}
		}
		break;
	case NOTIFY_EMAIL:
		if ((!has_prefix(c->url, "smtp://") &&
		     !has_prefix(c->url, "smtps://")) ||
		    !clean(c->url)) {
			snprintf(err, errlen,
				 "notifier %s: url must be smtp://host[:port] "
				 "or smtps://host[:port]",
				 n);
			return -EINVAL;
		}
		if (notify_tls_name(c->tls) == NULL) {
			snprintf(err, errlen, "notifier %s: bad tls", n);
			return -EINVAL;
		}
		if (!address_ok(c->from)) {
			snprintf(err, errlen,
				 "notifier %s: from must be an address", n);
			return -EINVAL;
		}
		if (c->nto == 0) {
			snprintf(err, errlen,
				 "notifier %s: to needs an address", n);
			return -EINVAL;
		}
		for (size_t i = 0; i < c->nto; i++) {
			if (!address_ok(c->to[i])) {
				snprintf(err, errlen,
					 "notifier %s: to: \"%s\" is not an "
					 "address",
					 n, c->to[i] ? c->to[i] : "");
				return -EINVAL;
			}
		}
		if ((c->username && !clean(c->username)) ||
		    (c->password && !c->username)) {
			snprintf(err, errlen,
				 "notifier %s: password needs a username", n);
			return -EINVAL;
		}
		break;
	case NOTIFY_COMMAND:
		if (c->nargv == 0 || c->argv[0] == NULL ||
		    c->argv[0][0] != '/') {
			snprintf(err, errlen,
				 "notifier %s: command needs a program with an "
				 "absolute path",
				 n);
			return -EINVAL;
		}
		for (size_t i = 0; i < c->nargv; i++) {
			if (c->argv[i] == NULL) {
				snprintf(err, errlen,
					 "notifier %s: empty argument", n);
				return -EINVAL;
			}
		}
		break;
	default:
		snprintf(err, errlen, "notifier %s: bad type", n);
		return -EINVAL;
	}
	if (c->ca_file && !clean(c->ca_file)) {
		snprintf(err, errlen, "notifier %s: bad ca_file", n);
		return -EINVAL;
	}
	return 0;
}

static char **strv_dup(const char *const *v, size_t n)
{
	char **d = calloc(n + 1, sizeof(*d));

	SK_ASSERT(d != NULL);
	for (size_t i = 0; i < n; i++)
		d[i] = xstrdup(v[i]);
	return d;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void nconf_fini(struct nconf *c)
{
	free(c->name);
	free(c->url);
	free(c->ca_file);
	strv_free(c->headers, c->nheaders);
	free(c->username);
	if (c->password) {
		/* A secret: gone from memory when freed. */
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->from);
	free(c->subject_prefix);
	strv_free(c->to, c->nto);
	strv_free(c->argv, c->nargv);
	memset(c, 0, sizeof(*c));
}

static void nconf_init(struct nconf *d, const struct notify_channel *s)
{
	memset(d, 0, sizeof(*d));
	d->name = xstrdup(s->name);
	d->type = s->type;
	d->min_rank = notify_severity_rank(s->min_severity);
	d->skip_resolved = s->skip_resolved;
	d->timeout_ms = s->timeout_ms ? s->timeout_ms : TIMEOUT_DEFAULT_MS;
	d->max_attempts = s->max_attempts ? s->max_attempts : ATTEMPTS_DEFAULT;
	d->backoff_ms = s->backoff_ms ? s->backoff_ms : BACKOFF_DEFAULT_MS;
	d->backoff_max_ms =
		s->backoff_max_ms ? s->backoff_max_ms : BACKOFF_MAX_DEFAULT_MS;
	d->queue_max = s->queue_max ? s->queue_max : QUEUE_DEFAULT;
	d->format = s->format;
	d->resend_ms = s->resend_ms ? s->resend_ms : RESEND_DEFAULT_MS;
	d->tls = s->tls;
	d->ca_file = s->ca_file ? xstrdup(s->ca_file) : NULL;
	d->headers = strv_dup(s->headers, s->nheaders);
	d->nheaders = s->nheaders;
	d->username = s->username ? xstrdup(s->username) : NULL;
	d->password = s->password ? xstrdup(s->password) : NULL;
	d->from = s->from ? xstrdup(s->from) : NULL;
	d->subject_prefix =
		s->subject_prefix ? xstrdup(s->subject_prefix) : NULL;
	d->to = strv_dup(s->to, s->nto);
	d->nto = s->nto;
	d->argv = strv_dup(s->argv, s->nargv);
	d->nargv = s->nargv;
	if (s->type == NOTIFY_WEBHOOK &&
	    s->format == NOTIFY_FORMAT_ALERTMANAGER) {
		/* The base URL of an Alertmanager, or its full API URL. */
		size_t n = strlen(s->url);
		const size_t pl = strlen(AM_PATH);

		while (n && s->url[n - 1] == '/')
			n--;
		if (n >= pl && memcmp(s->url + n - pl, AM_PATH, pl) == 0) {
			d->url = strndup(s->url, n);
		} else {
			d->url = malloc(n + pl + 1);
			SK_ASSERT(d->url != NULL);
			memcpy(d->url, s->url, n);
			memcpy(d->url + n, AM_PATH, pl + 1);
		}
		SK_ASSERT(d->url != NULL);
	} else {
		d->url = s->url ? xstrdup(s->url) : NULL;
	}
}

static int check_conf(const struct notify_conf *conf, char *err, size_t errlen)
{
	if (conf->nchannels > NOTIFY_CHANNELS_MAX) {
		snprintf(err, errlen, "notifiers: at most %d",
			 NOTIFY_CHANNELS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < conf->nchannels; i++) {
		if (notify_channel_check(&conf->channels[i], err, errlen) < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(conf->channels[i].name,
				   conf->channels[j].name) == 0) {
				snprintf(err, errlen,
					 "notifier %s: name used twice",
					 conf->channels[i].name);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* --- channels ------------------------------------------------------------ */

static void pump(struct nchannel *ch);
static void pump_all(struct notify *n);

static bool is_alertmanager(const struct nchannel *ch)
{
	return ch->c.type == NOTIFY_WEBHOOK &&
	       ch->c.format == NOTIFY_FORMAT_ALERTMANAGER;
}

static void delivery_free(struct notify_delivery *d)
{
	json_decref(d->alerts);
	free(d);
}

static struct notify_delivery *pop(struct nchannel *ch)
{
	struct notify_delivery *d = ch->head;

	if (d) {
		ch->head = d->next;
		if (ch->head == NULL)
			ch->tail = NULL;
		ch->queued--;
	}
	return d;
}

static void enqueue(struct nchannel *ch, json_t *alerts, bool resolved)
{
	struct notify_delivery *d;

	/* A full queue loses its oldest waiting delivery (not the one an
	 * attempt is working on). */
	if (ch->queued >= ch->c.queue_max) {
		struct notify_delivery *victim = ch->head;

		if (ch->cur && victim)
			victim = victim->next;
		if (victim) {
			if (victim == ch->head) {
				pop(ch);
			} else {
				ch->head->next = victim->next;
				if (ch->tail == victim)
					ch->tail = ch->head;
				ch->queued--;
			}
			delivery_free(victim);
			ch->dropped++;
			log_warn("notification dropped, queue full",
				 "channel=%s queue_max=%u", ch->c.name,
				 ch->c.queue_max);
		}
	}
	d = calloc(1, sizeof(*d));
	SK_ASSERT(d != NULL);
	d->alerts = alerts;
	d->resolved = resolved;
	if (ch->tail)
		ch->tail->next = d;
	else
		ch->head = d;
	ch->tail = d;
	ch->queued++;
}

static void retry_cb(uv_timer_t *t)
{
	struct nchannel *ch = t->data;

	ch->waiting = false;
	pump(ch);
}

/* Alertmanager forgets an alert at its endsAt: send what still fires
 * again every resend_ms, when nothing else is on the way. */
static void refresh_cb(uv_timer_t *t)
{
	struct nchannel *ch = t->data;
	json_t *arr, *a;
	const char *k;

	if (json_object_size(ch->active) == 0 || ch->queued)
		return;
	arr = json_array();
	json_object_foreach (ch->active, k, a)
		json_array_append(arr, a);
	enqueue(ch, arr, false);
	pump(ch);
}

static struct nchannel *channel_new(struct notify *n,
				    const struct notify_channel *c)
{
	struct nchannel *ch = calloc(1, sizeof(*ch));

	SK_ASSERT(ch != NULL);
	ch->n = n;
	nconf_init(&ch->c, c);
	ch->healthy = true;
	ch->active = json_object();
	SK_ASSERT(uv_timer_init(n->loop, &ch->retry) == 0);
	SK_ASSERT(uv_timer_init(n->loop, &ch->refresh) == 0);
	ch->retry.data = ch;
	ch->refresh.data = ch;
	if (is_alertmanager(ch))
		uv_timer_start(&ch->refresh, refresh_cb, ch->c.resend_ms,
			       ch->c.resend_ms);
	return ch;
}

static void channel_closed_cb(uv_handle_t *h)
{
	struct nchannel *ch = h->data;
	struct notify *n = ch->n;

	if (--ch->nclosing == 0) {
		json_decref(ch->active);
		nconf_fini(&ch->c);
		free(ch);
	}
	notify_closed(n);
}

/* Drops ch's queue and running attempt and frees it (once its timers
 * have closed). */
static void channel_close(struct nchannel *ch)
{
	struct notify_delivery *d;

	if (ch->cur) {
		notify_io_abort(ch);
		ch->cur = NULL;
		ch->n->inflight--;
	}
	while ((d = pop(ch)) != NULL)
		delivery_free(d);
	ch->nclosing = 2;
	notify_closing(ch->n);
	notify_closing(ch->n);
	uv_close((uv_handle_t *)&ch->retry, channel_closed_cb);
	uv_close((uv_handle_t *)&ch->refresh, channel_closed_cb);
}

static void pump(struct nchannel *ch)
{
	struct notify *n = ch->n;

	if (n->stopping || ch->cur || ch->waiting || ch->head == NULL ||
	    n->inflight >= n->max_inflight)
		return;
	n->inflight++;
	ch->head->attempts++;
	ch->attempts++;
	notify_io_start(ch);
}

static void pump_all(struct notify *n)
{
	for (size_t i = 0; i < n->nch; i++)
		pump(n->ch[i]);
}

void notify_attempt_done(struct nchannel *ch, bool ok, bool retryable,
			 const char *err)
{
	struct notify *n = ch->n;
	struct notify_delivery *d = ch->head;
	uint64_t now = clock_wall_ms();

	SK_ASSERT(d != NULL);
	ch->cur = NULL;
	n->inflight--;
	if (ok) {
		ch->sent++;
		ch->last_success_at = now;
		ch->healthy = true;
		log_debug("notification sent",
			  "channel=%s alerts=%zu "
			  "attempt=%u",
			  ch->c.name, json_array_size(d->alerts), d->attempts);
		delivery_free(pop(ch));
	} else {
		ch->attempt_failures++;
		ch->last_error_at = now;
		ch->healthy = false;
		snprintf(ch->last_error, sizeof(ch->last_error), "%s", err);
		if (retryable && d->attempts < ch->c.max_attempts) {
			uint64_t delay = ch->c.backoff_ms;

			for (unsigned i = 1;
			     i < d->attempts && delay < ch->c.backoff_max_ms;
			     i++)
				delay *= 2;
			if (delay > ch->c.backoff_max_ms)
				delay = ch->c.backoff_max_ms;
			log_warn("notification failed, will retry",
				 "channel=%s attempt=%u retry_in_ms=%llu "
				 "error=\"%s\"",
				 ch->c.name, d->attempts,
				 (unsigned long long)delay, err);
			ch->waiting = true;
			uv_timer_start(&ch->retry, retry_cb, delay, 0);
		} else {
			ch->failed++;
			log_error("notification lost",
				  "channel=%s attempts=%u "
				  "alerts=%zu error=\"%s\"",
				  ch->c.name, d->attempts,
				  json_array_size(d->alerts), err);
			delivery_free(pop(ch));
		}
	}
	pump_all(n);
}

/* --- the public side ----------------------------------------------------- */

int notify_new(uv_loop_t *loop, const struct notify_conf *conf,
	       struct notify **out, char *err, size_t errlen)
{
	struct notify *n;

	if (check_conf(conf, err, errlen) < 0)
		return -EINVAL;
	notify_global_init();
	n = calloc(1, sizeof(*n));
	SK_ASSERT(n != NULL);
	n->loop = loop;
	n->max_inflight =
		conf->max_inflight ? conf->max_inflight : INFLIGHT_DEFAULT;
	if (notify_io_init(n) < 0) {
		snprintf(err, errlen, "notifiers: libcurl would not start");
		free(n);
		return -ENOMEM;
	}
	n->ch = calloc(NOTIFY_CHANNELS_MAX, sizeof(*n->ch));
	SK_ASSERT(n->ch != NULL);
	for (size_t i = 0; i < conf->nchannels; i++)
		n->ch[n->nch++] = channel_new(n, &conf->channels[i]);
	*out = n;
	return 0;
}

int notify_reload(struct notify *n, const struct notify_conf *conf, char *err,
		  size_t errlen)
{
	struct nchannel **next;
	size_t nn = 0;

	if (check_conf(conf, err, errlen) < 0)
		return -EINVAL;
	next = calloc(NOTIFY_CHANNELS_MAX, sizeof(*next));
	SK_ASSERT(next != NULL);
	for (size_t i = 0; i < conf->nchannels; i++) {
		const struct notify_channel *c = &conf->channels[i];
		struct nchannel *keep = NULL;

		for (size_t j = 0; j < n->nch && !keep; j++) {
			struct nchannel *o = n->ch[j];

			if (o && strcmp(o->c.name, c->name) == 0 &&
			    o->c.type == c->type) {
				keep = o;
				n->ch[j] = NULL;
			}
		}
		if (keep) {
			bool was_am = is_alertmanager(keep);

			nconf_fini(&keep->c);
			nconf_init(&keep->c, c);
			if (is_alertmanager(keep))
				uv_timer_start(&keep->refresh, refresh_cb,
					       keep->c.resend_ms,
					       keep->c.resend_ms);
			else if (was_am)
				uv_timer_stop(&keep->refresh);
		} else {
			keep = channel_new(n, c);
		}
		next[nn++] = keep;
	}
	for (size_t j = 0; j < n->nch; j++)
		if (n->ch[j])
			channel_close(n->ch[j]);
	free(n->ch);
	n->ch = next;
	n->nch = nn;
	pump_all(n);
	return 0;
}

void notify_send(struct notify *n, json_t *batch)
{
	size_t i;
	json_t *a;

	if (n->stopping || json_array_size(batch) == 0)
		return;
	for (size_t c = 0; c < n->nch; c++) {
		struct nchannel *ch = n->ch[c];
		json_t *mine = json_array();
		bool resolved = false;

		json_array_foreach (batch, i, a) {
			const char *st =
				json_string_value(json_object_get(a, "status"));
			bool res = st && strcmp(st, "resolved") == 0;
			const char *fp = json_string_value(
				json_object_get(a, "fingerprint"));

			if (notify_severity_rank(json_string_value(
				    json_object_get(a, "severity"))) <
			    ch->c.min_rank)
				continue;
			if (is_alertmanager(ch) && fp) {
				if (res)
					json_object_del(ch->active, fp);
				else
					json_object_set(ch->active, fp, a);
			}
			if (res && ch->c.skip_resolved)
				continue;
			resolved = res;
			json_array_append(mine, a);
		}
		if (json_array_size(mine) == 0) {
			json_decref(mine);
			continue;
		}
		enqueue(ch, mine, resolved);
		pump(ch);
	}
}

size_t notify_pending(const struct notify *n)
{
	size_t p = 0;

	for (size_t i = 0; i < n->nch; i++)
		p += n->ch[i]->queued;
	return p;
}

/* A URL without what may be a secret: user and password, and the path
 * (a Slack webhook's path is its key). */
static void url_public(struct buf *b, const char *url)
{
	const char *auth = strstr(url, "://");
	const char *end, *at;

	if (auth == NULL) {
		buf_appends(b, "?");
		return;
	}
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	at = memchr(auth, '@', (size_t)(end - auth));
	buf_append(b, url, (size_t)(auth - url));
	if (at)
		auth = at + 1;
	buf_append(b, auth, (size_t)(end - auth));
	if (*end)
		buf_appends(b, "/...");
}

static json_t *target(const struct nchannel *ch)
{
	struct buf b;
	json_t *j;

	buf_init(&b);
	switch (ch->c.type) {
	case NOTIFY_WEBHOOK:
		url_public(&b, ch->c.url);
		break;
	case NOTIFY_EMAIL:
		url_public(&b, ch->c.url);
		buf_appends(&b, " ->");
		for (size_t i = 0; i < ch->c.nto; i++)
			buf_printf(&b, " %s", ch->c.to[i]);
		break;
	case NOTIFY_COMMAND:
		buf_appends(&b, ch->c.argv[0]);
		break;
	}
	j = json_string(buf_cstr(&b));
	buf_fini(&b);
	return j;
}

json_t *notify_status_json(const struct notify *n)
{
	json_t *arr = json_array();
	char t[32];

	for (size_t i = 0; i < n->nch; i++) {
		const struct nchannel *ch = n->ch[i];
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(ch->c.name));
		json_object_set_new(o, "type",
				    json_string(notify_type_name(ch->c.type)));
		if (ch->c.type == NOTIFY_WEBHOOK)
			json_object_set_new(
				o, "format",
				json_string(notify_format_name(ch->c.format)));
		json_object_set_new(o, "target", target(ch));
		json_object_set_new(o, "healthy", json_boolean(ch->healthy));
		json_object_set_new(o, "sent",
				    json_integer((json_int_t)ch->sent));
		json_object_set_new(o, "failed",
				    json_integer((json_int_t)ch->failed));
		json_object_set_new(o, "dropped",
				    json_integer((json_int_t)ch->dropped));
		json_object_set_new(o, "attempts",
				    json_integer((json_int_t)ch->attempts));
		json_object_set_new(
			o, "attempt_failures",
			json_integer((json_int_t)ch->attempt_failures));
		json_object_set_new(o, "queued",
				    json_integer((json_int_t)ch->queued));
		json_object_set_new(o, "in_flight",
				    json_boolean(ch->cur != NULL));
		json_object_set_new(o, "last_error",
				    ch->last_error[0]
					    ? json_string(ch->last_error)
					    : json_null());
		if (ch->last_error_at) {
			clock_fmt_iso8601(t, ch->last_error_at);
			json_object_set_new(o, "last_error_at", json_string(t));
		} else {
			json_object_set_new(o, "last_error_at", json_null());
		}
		if (ch->last_success_at) {
			clock_fmt_iso8601(t, ch->last_success_at);
			json_object_set_new(o, "last_success_at",
					    json_string(t));
		} else {
			json_object_set_new(o, "last_success_at", json_null());
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

void notify_closing(struct notify *n)
{
	n->nclosing++;
}

void notify_closed(struct notify *n)
{
	SK_ASSERT(n->nclosing > 0);
	if (--n->nclosing == 0 && n->stopping) {
		void (*done)(void *) = n->done;
		void *ud = n->done_ud;

		free(n->ch);
		free(n);
		if (done)
			done(ud);
	}
}

void notify_stop(struct notify *n, void (*done)(void *ud), void *ud)
{
	n->stopping = true;
	n->done = done;
	n->done_ud = ud;
	/* Hold one count ourselves, so that n cannot go while this runs. */
	notify_closing(n);
	for (size_t i = 0; i < n->nch; i++)
		channel_close(n->ch[i]);
	n->nch = 0;
	notify_io_fini(n);
	notify_closed(n);
}
