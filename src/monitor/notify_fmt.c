/*
 * notify_fmt.c - what each channel sends: the generic, Slack and
 * Alertmanager JSON bodies, and the email message.
 *
 * Everything taken from an alert is data from labels and summaries,
 * which the config, a backend name or a mount point may fill with any
 * bytes: JSON bodies are encoded by jansson; the mail's header fields
 * get control bytes replaced by spaces (no header injection) and
 * non-ASCII text as an RFC 2047 encoded word.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "monitor/notify_int.h"

#define SLACK_LINES_MAX 20
#define SUBJECT_MAX	200

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void dump(struct buf *out, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (s) {
		buf_appends(out, s);
		free(s);
	}
	json_decref(j);
}

int notify_severity_rank(const char *s)
{
	if (s && strcmp(s, "critical") == 0)
		return 2;
	if (s && strcmp(s, "warning") == 0)
		return 1;
	return 0;
}

void notify_fmt_generic(struct buf *out, const struct nconf *c,
			const struct notify_delivery *d)
{
	dump(out, json_pack("{s:s, s:s, s:s, s:s, s:O}", "version", "1",
			    "source", "storekeep", "receiver", c->name,
			    "status", d->resolved ? "resolved" : "firing",
			    "alerts", d->alerts));
}

void notify_fmt_slack(struct buf *out, const struct notify_delivery *d)
{
	struct buf t;
	size_t i, n = json_array_size(d->alerts);
	json_t *a;

	buf_init(&t);
	buf_printf(&t, "*[%s:%zu]* storekeep",
		   d->resolved ? "RESOLVED" : "FIRING", n);
	json_array_foreach (d->alerts, i, a) {
		if (i == SLACK_LINES_MAX) {
			buf_printf(&t, "\n… and %zu more", n - i);
			break;
		}
		buf_printf(&t, "\n• [%s] %s: %s", str(a, "severity"),
			   str(a, "name"),
			   str(json_object_get(a, "annotations"), "summary"));
	}
	buf_cstr(&t);
	dump(out, json_pack("{s:s}", "text", t.data));
	buf_fini(&t);
}

void notify_fmt_alertmanager(struct buf *out, const struct nconf *c,
			     const struct notify_delivery *d, uint64_t now)
{
	json_t *arr = json_array(), *a;
	size_t i;
	char until[32];

	clock_fmt_iso8601(until, now + 4 * (uint64_t)c->resend_ms);
	json_array_foreach (d->alerts, i, a) {
		json_t *o = json_object(), *ann = json_object(), *v;
		const char *k;
		bool resolved = strcmp(str(a, "status"), "resolved") == 0;

		json_object_set(o, "labels", json_object_get(a, "labels"));
		/* Alertmanager takes string annotations only. */
		json_object_foreach (json_object_get(a, "annotations"), k, v)
			if (json_is_string(v))
				json_object_set(ann, k, v);
		if (json_is_number(json_object_get(a, "value"))) {
			char num[32];

			snprintf(
				num, sizeof(num), "%.6g",
				json_number_value(json_object_get(a, "value")));
			json_object_set_new(ann, "value", json_string(num));
		}
		json_object_set_new(o, "annotations", ann);
		if (json_is_string(json_object_get(a, "startsAt")))
			json_object_set(o, "startsAt",
					json_object_get(a, "startsAt"));
		if (resolved && json_is_string(json_object_get(a, "endsAt")))
			json_object_set(o, "endsAt",
					json_object_get(a, "endsAt"));
		else
			json_object_set_new(o, "endsAt", json_string(until));
		/* An empty generatorURL fails Alertmanager's URI check. */
		if (*str(a, "generatorURL"))
			json_object_set(o, "generatorURL",
					json_object_get(a, "generatorURL"));
		json_array_append_new(arr, o);
	}
	dump(out, arr);
}

/* --- email --------------------------------------------------------------- */

/* s with control bytes as spaces, at most max bytes (cut at a UTF-8
 * boundary). */
static void header_text(struct buf *out, const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max) {
		n = max;
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf_appendc(out, ch < 0x20 || ch == 0x7f ? ' ' : (char)ch);
	}
}

static void base64(struct buf *out, const unsigned char *p, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
				  "rstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		buf_appendc(out, tbl[v >> 18 & 63]);
		buf_appendc(out, tbl[v >> 12 & 63]);
		buf_appendc(out, i + 1 < n ? tbl[v >> 6 & 63] : '=');
		buf_appendc(out, i + 2 < n ? tbl[v & 63] : '=');
	}
}

/* A header value: as it is when ASCII, else RFC 2047 encoded words of
 * at most 45 input bytes each (cut at UTF-8 boundaries), folded. */
static void header_value(struct buf *out, const char *s)
{
	size_t n = strlen(s), i = 0;
	bool ascii = true;

	for (size_t k = 0; k < n; k++)
		ascii = ascii && (unsigned char)s[k] < 0x80;
	if (ascii) {
		buf_appends(out, s);
		return;
	}
	while (i < n) {
		size_t take = n - i > 45 ? 45 : n - i;

		while (i + take < n && take &&
		       ((unsigned char)s[i + take] & 0xc0) == 0x80)
			take--;
		if (i)
			buf_appends(out, "\r\n ");
		buf_appends(out, "=?UTF-8?B?");
		base64(out, (const unsigned char *)s + i, take);
		buf_appends(out, "?=");
		i += take;
	}
}

/* Appends s with every line end as CRLF. */
static void crlf_text(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\r')
			continue;
		if (*s == '\n')
			buf_appendc(out, '\r');
		buf_appendc(out, *s);
	}
}

/* Makes Message-IDs of one process unique (one loop thread). */
static unsigned message_seq;

void notify_fmt_email(struct buf *out, const struct nconf *c,
		      const struct notify_delivery *d, uint64_t now)
{
	struct buf subj, body;
	size_t i, n = json_array_size(d->alerts);
	const char *status = d->resolved ? "RESOLVED" : "FIRING";
	char date[32], *gmt;
	json_t *a;

	buf_init(&subj);
	buf_init(&body);
	buf_printf(&subj, "%s %s: ",
		   c->subject_prefix ? c->subject_prefix : "[storekeep]",
		   status);
	if (n == 1) {
		a = json_array_get(d->alerts, 0);
		buf_printf(&subj, "%s - %s", str(a, "name"),
			   str(json_object_get(a, "annotations"), "summary"));
	} else {
		buf_printf(&subj, "%zu alerts (", n);
		json_array_foreach (d->alerts, i, a) {
			if (i == 5) {
				buf_appends(&subj, ", ...");
				break;
			}
			buf_printf(&subj, "%s%s", i ? ", " : "",
				   str(a, "name"));
		}
		buf_appendc(&subj, ')');
	}
	buf_cstr(&subj);

	buf_printf(&body, "%s: %zu alert%s\n", status, n, n == 1 ? "" : "s");
	json_array_foreach (d->alerts, i, a) {
		json_t *labels = json_object_get(a, "labels"), *v;
		const char *k;
		bool first = true;

		buf_printf(&body, "\n[%s] %s: %s\n", str(a, "severity"),
			   str(a, "name"),
			   str(json_object_get(a, "annotations"), "summary"));
		if (json_is_number(json_object_get(a, "value")))
			buf_printf(
				&body, "  value:  %g\n",
				json_number_value(json_object_get(a, "value")));
		buf_printf(&body, "  since:  %s\n", str(a, "startsAt"));
		if (d->resolved)
			buf_printf(&body, "  ended:  %s\n", str(a, "endsAt"));
		buf_appends(&body, "  labels:");
		json_object_foreach (labels, k, v) {
			buf_printf(&body, "%s %s=%s", first ? "" : ",", k,
				   json_string_value(v) ? json_string_value(v)
							: "");
			first = false;
		}
		buf_appendc(&body, '\n');
	}
	a = json_array_get(d->alerts, 0);
	if (*str(a, "generatorURL"))
		buf_printf(&body, "\n-- \n%s\n", str(a, "generatorURL"));
	buf_cstr(&body);

	clock_fmt_http(date, now);
	gmt = strstr(date, " GMT");
	if (gmt)
		memcpy(gmt, " +0000", 7);
	buf_printf(out, "Date: %s\r\nFrom: ", date);
	header_text(out, c->from, 256);
	buf_appends(out, "\r\nTo: ");
	for (size_t k = 0; k < c->nto; k++) {
		if (k)
			buf_appends(out, ", ");
		header_text(out, c->to[k], 256);
	}
	buf_appends(out, "\r\nSubject: ");
	{
		struct buf clean;

		buf_init(&clean);
		header_text(&clean, subj.data, SUBJECT_MAX);
		header_value(out, buf_cstr(&clean));
		buf_fini(&clean);
	}
	buf_printf(out,
		   "\r\nMessage-ID: <%llu.%u@storekeep>\r\n"
		   "MIME-Version: 1.0\r\n"
		   "Content-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: 8bit\r\n"
		   "Auto-Submitted: auto-generated\r\n\r\n",
		   (unsigned long long)now, ++message_seq);
	crlf_text(out, body.data);
	buf_fini(&subj);
	buf_fini(&body);
}
