/*
 * probe.c - the probes' schedule, results and metrics, and the http and
 * tcp probes (see probe.h for the contract, probe_int.h for the life of a
 * run).
 *
 * Each probe has a repeating timer. A tick starts a run unless the last
 * one is still around (then the tick is counted as skipped). A run starts
 * its deadline timer first and hands over to its type: http and tcp here,
 * nagios in probe_exec.c, postgresql and sqlite in probe_db.c. Whatever
 * happens first, the type's own end or the deadline, reports the result;
 * the other is ignored.
 *
 * The http probe sends one GET with Connection: close and reads the
 * response with the strict parser of http/http.h in response mode. The
 * run ends when the response is complete (Content-Length, chunked, or
 * the end of the connection), or once PROBE_HTTP_BODY_MAX bytes of body
 * have arrived: the status, body_contains and the latency are judged on
 * what came until then. A host name is resolved on every run (through the
 * thread pool, like any uv_getaddrinfo); an address literal never is.
 *
 * Removed probes (reload, stop) leave the list at once and are freed
 * when their timer has closed and their run has drained.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/probe_int.h"

static const char *const state_names[] = {"ok", "warning", "critical",
					  "unknown"};
static const char *const runs_names[RUNS_N] = {"ok", "warning", "critical",
					       "unknown", "skipped"};

static const struct probe_kind probe_kind_http;
static const struct probe_kind probe_kind_tcp;

const char *probe_state_name(enum probe_state s)
{
	return (unsigned)s < 4 ? state_names[s] : "unknown";
}

const char *probe_strerror(int r)
{
	return r < 0 ? uv_strerror(r) : strerror(r);
}

static const struct probe_kind *kind_of(int type)
{
	switch (type) {
	case CFG_PROBE_HTTP:
		return &probe_kind_http;
	case CFG_PROBE_TCP:
		return &probe_kind_tcp;
	case CFG_PROBE_POSTGRESQL:
		return &probe_kind_postgresql;
	case CFG_PROBE_SQLITE:
		return &probe_kind_sqlite;
	case CFG_PROBE_NAGIOS:
		return &probe_kind_nagios;
	}
	return NULL;
}

static char *xstrdup(const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	SK_ASSERT(d != NULL);
	return d;
}

/* --- metrics ------------------------------------------------------------ */

static void reg_failed(struct probe *p, const char *name, int r)
{
	log_error("probe metric not registered", "probe=%s metric=%s err=%s",
		  p->name, name, probe_strerror(r));
}

struct metrics_gauge probe_gauge(struct probe *p, const char *name,
				 const char *help, const char *extra_name,
				 const char *extra_value)
{
	struct metrics_label lab[3] = {{"probe", p->name}};
	struct metrics_desc d = {.name = name, .help = help, .labels = lab,
				 .nlabels = 1};
	struct metrics_gauge g = {0};
	int r;

	if (extra_name) {
		lab[1].name = extra_name;
		lab[1].value = extra_value;
		d.nlabels = 2;
	}
	r = metrics_gauge_reg(p->owner->reg, &d, &g);
	if (r)
		reg_failed(p, name, r);
	return g;
}

struct metrics_counter probe_counter(struct probe *p, const char *name,
				     const char *help)
{
	struct metrics_label lab[1] = {{"probe", p->name}};
	struct metrics_desc d = {.name = name, .help = help, .labels = lab,
				 .nlabels = 1};
	struct metrics_counter c = {0};
	int r = metrics_counter_reg(p->owner->reg, &d, &c);

	if (r)
		reg_failed(p, name, r);
	return c;
}

void probe_set(struct probe *p, struct metrics_gauge g, double v)
{
	metrics_gauge_set(p->owner->reg, p->owner->shard, g, v);
}

static struct metrics_gauge typed_gauge(struct probe *p, const char *name,
					const char *help)
{
	struct metrics_label lab[2] = {{"probe", p->name},
				       {"type", p->kind->name}};
	struct metrics_desc d = {.name = name, .help = help, .labels = lab,
				 .nlabels = 2};
	struct metrics_gauge g = {0};
	int r = metrics_gauge_reg(p->owner->reg, &d, &g);

	if (r)
		reg_failed(p, name, r);
	return g;
}

static void register_common(struct probe *p)
{
	p->m_up = typed_gauge(p, "storekeep_probe_up",
			      "1 when the probe's last run was ok or warning, 0 "
			      "when critical or unknown.");
	p->m_state = typed_gauge(p, "storekeep_probe_state",
				 "State of the probe's last run: 0 ok, 1 "
				 "warning, 2 critical, 3 unknown.");
	p->m_duration = typed_gauge(p, "storekeep_probe_duration_seconds",
				    "How long the probe's last run took.");
	for (int i = 0; i < RUNS_N; i++) {
		struct metrics_label lab[3] = {{"probe", p->name},
					       {"type", p->kind->name},
					       {"result", runs_names[i]}};
		struct metrics_desc d = {
			.name = "storekeep_probe_runs_total",
			.help = "Probe runs by result (skipped: the previous "
				"run was still finishing).",
			.labels = lab,
			.nlabels = 3,
		};
		int r = metrics_counter_reg(p->owner->reg, &d, &p->m_runs[i]);

		if (r)
			reg_failed(p, d.name, r);
	}
	if (p->type == CFG_PROBE_HTTP)
		p->m_http_status = probe_gauge(
			p, "storekeep_probe_http_status_code",
			"HTTP status of the probe's last response (0: none).",
			NULL, NULL);
	/* Until the first run: unknown, not the registry's zero (ok). */
	probe_set(p, p->m_up, 0);
	probe_set(p, p->m_state, PROBE_UNKNOWN);
	probe_set(p, p->m_duration, NAN);
}

/* --- url ---------------------------------------------------------------- */

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/*
 * Splits "http://host[:port][/path][?query][#fragment]" into p->host,
 * p->port, p->target and p->host_hdr. Returns NULL, or a static text
 * saying what is wrong.
 */
static const char *url_parse(struct probe *p, const char *url)
{
	const char *a, *e, *h0, *h1, *path;
	unsigned long port = 80;
	size_t tlen;

	if (strncmp(url, "http://", 7) != 0)
		return "must start with http://";
	a = url + 7;
	e = a + strcspn(a, "/?#");
	if (memchr(a, '@', (size_t)(e - a)))
		return "user information (user@host) is not supported";
	if (*a == '[') {
		h0 = a + 1;
		h1 = memchr(h0, ']', (size_t)(e - h0));
		if (!h1 || h1 == h0)
			return "an IPv6 address needs its closing ]";
		for (const char *c = h0; c < h1; c++)
			if (!(host_char(*c) || *c == ':' || *c == '%'))
				return "bad character in the IPv6 address";
		a = h1 + 1;
	} else {
		h0 = a;
		while (a < e && host_char(*a))
			a++;
		h1 = a;
		if (h1 == h0)
			return "no host";
	}
	if (a < e && *a == ':') {
		char *end;

		if (a + 1 == e || !(a[1] >= '0' && a[1] <= '9'))
			return "the port must be a number";
		errno = 0;
		port = strtoul(a + 1, &end, 10);
		if (end != e || errno || port == 0 || port > 65535)
			return "the port must be 1..65535";
		a = e;
	}
	if (a != e)
		return "bad character in the host";
	path = e;
	tlen = strcspn(path, "#");
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)path[i] <= 0x20 ||
		    (unsigned char)path[i] >= 0x7f)
			return "the path must be printable ASCII without spaces "
			       "(percent-encode the rest)";
	p->host = strndup(h0, (size_t)(h1 - h0));
	SK_ASSERT(p->host != NULL);
	p->port = (uint16_t)port;
	if (tlen == 0 || path[0] == '?') {
		p->target = malloc(tlen + 2);
		SK_ASSERT(p->target != NULL);
		p->target[0] = '/';
		memcpy(p->target + 1, path, tlen);
		p->target[tlen + 1] = '\0';
	} else {
		p->target = strndup(path, tlen);
		SK_ASSERT(p->target != NULL);
	}
	/* Host: as written in the URL, port included unless it is 80. */
	p->host_hdr = strndup(url + 7, (size_t)(e - (url + 7)));
	SK_ASSERT(p->host_hdr != NULL);
	if (port == 80) {
		char *colon = strrchr(p->host_hdr, ':');

		if (colon && (!strchr(p->host_hdr, ']') ||
			      colon > strchr(p->host_hdr, ']')))
			*colon = '\0';
	}
	return NULL;
}

/* --- life cycle of a run ---------------------------------------------------- */

static void probe_maybe_free(struct probe *p);
static void deadline_cb(uv_timer_t *t);

void prun_hold(struct prun *r)
{
	r->pending++;
}

static void prun_free(struct prun *r)
{
	struct probe *p = r->p;

	if (p->type == CFG_PROBE_HTTP) {
		if (r->u.http.ai)
			uv_freeaddrinfo(r->u.http.ai);
		buf_fini(&r->u.http.req);
		buf_fini(&r->u.http.in);
		buf_fini(&r->u.http.body);
	} else if (p->type == CFG_PROBE_NAGIOS) {
		buf_fini(&r->u.exec.obuf);
		buf_fini(&r->u.exec.ebuf);
	} else if (p->type == CFG_PROBE_POSTGRESQL ||
		   p->type == CFG_PROBE_SQLITE) {
		free(r->u.work.target);
		free(r->u.work.pg.dbs);
	}
	p->run = NULL;
	free(r);
	probe_maybe_free(p);
}

void prun_release(struct prun *r)
{
	SK_ASSERT(r->pending > 0);
	if (--r->pending == 0) {
		SK_ASSERT(r->done);
		prun_free(r);
	}
}

static void deadline_closed_cb(uv_handle_t *h)
{
	prun_release(h->data);
}

/* Sets the probe's result: the metrics, the counters, the status. */
static void apply_result(struct probe *p, enum probe_state st, double dur_s,
			 json_t *details, const char *msg)
{
	char q[600];

	/* Changes of state are worth a line; steady states are not. */
	if ((p->ran && (int)st != p->state) || (!p->ran && st != PROBE_OK)) {
		if (st == PROBE_OK)
			log_info("probe ok again", "probe=%s type=%s msg=%s",
				 p->name, p->kind->name,
				 log_q(q, sizeof(q), msg));
		else
			log_warn("probe state changed",
				 "probe=%s type=%s state=%s msg=%s", p->name,
				 p->kind->name, state_names[st],
				 log_q(q, sizeof(q), msg));
	}
	p->ran = true;
	p->state = (int)st;
	p->duration_s = dur_s;
	p->last_wall_ms = clock_wall_ms();
	free(p->message);
	p->message = xstrdup(msg);
	if (p->details)
		json_decref(p->details);
	p->details = details;
	p->runs[st]++;
	probe_set(p, p->m_up, st == PROBE_OK || st == PROBE_WARNING);
	probe_set(p, p->m_state, (double)st);
	probe_set(p, p->m_duration, dur_s);
	metrics_counter_add(p->owner->reg, p->owner->shard, p->m_runs[st], 1);
}

void prun_finish(struct prun *r, enum probe_state st, json_t *details,
		 const char *fmt, ...)
{
	struct probe *p = r->p;
	char msg[1024];
	va_list ap;

	if (r->done) {
		if (details)
			json_decref(details);
		return;
	}
	r->done = true;
	uv_timer_stop(&r->deadline);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A removed probe's result goes nowhere: its series are NaN now. */
	if (!p->removed)
		apply_result(p, st,
			     (double)(clock_mono_ns() - r->start_ns) / 1e9,
			     details, msg);
	else if (details)
		json_decref(details);
	if (!uv_is_closing((uv_handle_t *)&r->deadline))
		uv_close((uv_handle_t *)&r->deadline, deadline_closed_cb);
}

static void deadline_cb(uv_timer_t *t)
{
	struct prun *r = t->data;
	struct buf why;

	if (r->done)
		return;
	buf_init(&why);
	r->p->kind->abort(r, &why);
	prun_finish(r, PROBE_CRITICAL, NULL, "timed out after %u ms%s%s",
		    r->p->timeout_ms, why.len ? " " : "", buf_cstr(&why));
	buf_fini(&why);
}

static void run_start(struct probe *p)
{
	struct prun *r = calloc(1, sizeof(*r));

	SK_ASSERT(r != NULL);
	r->p = p;
	r->start_ns = clock_mono_ns();
	p->run = r;
	uv_timer_init(p->owner->loop, &r->deadline);
	r->deadline.data = r;
	prun_hold(r); /* the deadline timer, until closed */
	uv_timer_start(&r->deadline, deadline_cb, p->timeout_ms, 0);
	/* The start hook may finish at once; hold r across it so it cannot
	 * be freed under us. */
	prun_hold(r);
	if (p->url_error)
		prun_finish(r, PROBE_UNKNOWN, NULL, "bad url: %s",
			    p->url_error);
	else
		p->kind->start(r);
	prun_release(r);
}

static void tick_cb(uv_timer_t *t)
{
	struct probe *p = t->data;

	if (p->removed)
		return;
	if (p->run) {
		/* The last run reported but is still releasing something
		 * (a plugin not yet reaped, a pool thread past its
		 * deadline): do not pile up another. */
		p->runs[RUNS_SKIPPED]++;
		metrics_counter_add(p->owner->reg, p->owner->shard,
				    p->m_runs[RUNS_SKIPPED], 1);
		log_warn("probe run skipped: the previous one is still "
			 "finishing",
			 "probe=%s", p->name);
		return;
	}
	run_start(p);
}

/* --- probes: creation, removal ----------------------------------------------- */

static void probe_free(struct probe *p)
{
	free(p->name);
	free(p->url);
	free(p->body_contains);
	free(p->host);
	free(p->host_hdr);
	free(p->target);
	free(p->url_error);
	free(p->addr_text);
	free(p->conninfo);
	free(p->path);
	for (size_t i = 0; i < p->argc; i++)
		free(p->argv[i]);
	free(p->argv);
	free(p->message);
	if (p->details)
		json_decref(p->details);
	for (size_t i = 0; i < p->nm_pg_db; i++)
		free(p->m_pg_db[i].name);
	free(p->m_pg_db);
	for (size_t i = 0; i < p->nm_perf; i++) {
		free(p->m_perf[i].label);
		free(p->m_perf[i].uom);
	}
	free(p->m_perf);
	free(p);
}

static void timer_closed_cb(uv_handle_t *h)
{
	struct probe *p = h->data;

	p->timer.data = NULL;
	probe_maybe_free(p);
}

/* Frees a removed probe once its timer is closed and its run drained. */
static void probe_maybe_free(struct probe *p)
{
	struct probes *ps = p->owner;

	if (!p->removed || p->run || p->timer.data)
		return;
	probe_free(p);
	SK_ASSERT(ps->closing > 0);
	ps->closing--;
	if (ps->stopping && ps->closing == 0 && ps->head == NULL) {
		void (*done)(void *) = ps->done;
		void *ud = ps->done_ud;

		free(ps);
		if (done)
			done(ud);
	}
}

/* Takes p out of service: its run is cut short, its gauges go NaN
 * unless the whole set is stopping. */
static void probe_remove(struct probe *p, bool clear)
{
	struct probes *ps = p->owner;

	p->removed = true;
	ps->closing++;
	if (clear) {
		probe_set(p, p->m_up, NAN);
		probe_set(p, p->m_state, NAN);
		probe_set(p, p->m_duration, NAN);
		if (p->kind->clear)
			p->kind->clear(p);
	}
	if (p->run && !p->run->done) {
		struct buf why;

		buf_init(&why);
		p->kind->abort(p->run, &why);
		buf_fini(&why);
		prun_finish(p->run, PROBE_UNKNOWN, NULL, "probe removed");
	}
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, timer_closed_cb);
}

/* Copies what a probe needs from its config. Returns NULL (and the
 * reason in err) when the URL does not parse and fail_on_url is set. */
static struct probe *probe_new(struct probes *ps, const struct cfg_probe *c,
			       char *err, size_t errlen)
{
	struct probe *p = calloc(1, sizeof(*p));
	const char *why;

	SK_ASSERT(p != NULL);
	p->owner = ps;
	p->kind = kind_of(c->type);
	SK_ASSERT(p->kind != NULL);
	p->name = xstrdup(c->name);
	p->type = c->type;
	p->interval_ms = c->interval_ms;
	p->timeout_ms = c->timeout_ms;
	p->status_min = c->status_min;
	p->status_max = c->status_max;
	p->url = xstrdup(c->url);
	p->body_contains = xstrdup(c->body_contains);
	p->conninfo = xstrdup(c->conninfo);
	p->path = xstrdup(c->path);
	if (c->has_address) {
		memcpy(&p->addr, &c->address.sa, sizeof(p->addr));
		p->addrlen = c->address.salen;
		p->addr_text = xstrdup(c->address.text);
	}
	if (c->ncommand) {
		p->argv = calloc(c->ncommand + 1, sizeof(char *));
		SK_ASSERT(p->argv != NULL);
		for (size_t i = 0; i < c->ncommand; i++)
			p->argv[i] = xstrdup(c->command[i].arg);
		p->argc = c->ncommand;
	}
	p->state = PROBE_UNKNOWN;
	p->message = xstrdup("not run yet");
	if (p->type == CFG_PROBE_HTTP && (why = url_parse(p, p->url))) {
		snprintf(err, errlen, "monitor.probes[%s]: url \"%s\": %s",
			 p->name, p->url, why);
		p->url_error = xstrdup(why);
	}
	register_common(p);
	return p;
}

/* A spread-out first run: within min(interval, 1 s), by name. */
static uint64_t first_delay(const struct probe *p)
{
	uint64_t h = 1469598103934665603ULL, span;

	for (const char *s = p->name; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	span = p->interval_ms < 1000 ? p->interval_ms : 1000;
	return span ? h % span : 0;
}

static void probe_schedule(struct probe *p)
{
	uv_timer_init(p->owner->loop, &p->timer);
	p->timer.data = p;
	uv_timer_start(&p->timer, tick_cb, first_delay(p), p->interval_ms);
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Whether probe p runs exactly what c describes. */
static bool same_probe(const struct probe *p, const struct cfg_probe *c)
{
	if (p->type != c->type || p->interval_ms != c->interval_ms ||
	    p->timeout_ms != c->timeout_ms || !str_eq(p->name, c->name))
		return false;
	switch (c->type) {
	case CFG_PROBE_HTTP:
		return str_eq(p->url, c->url) &&
		       str_eq(p->body_contains, c->body_contains) &&
		       p->status_min == c->status_min &&
		       p->status_max == c->status_max;
	case CFG_PROBE_TCP:
		return c->has_address && p->addrlen == c->address.salen &&
		       memcmp(&p->addr, &c->address.sa, p->addrlen) == 0;
	case CFG_PROBE_POSTGRESQL:
		return str_eq(p->conninfo, c->conninfo);
	case CFG_PROBE_SQLITE:
		return str_eq(p->path, c->path);
	case CFG_PROBE_NAGIOS:
		if (p->argc != c->ncommand)
			return false;
		for (size_t i = 0; i < p->argc; i++)
			if (!str_eq(p->argv[i], c->command[i].arg))
				return false;
		return true;
	}
	return false;
}

struct probes *probes_start(uv_loop_t *control, const struct cfg_monitor *cfg,
			    struct metrics *reg, unsigned shard, char *err,
			    size_t errlen)
{
	struct probes *ps = calloc(1, sizeof(*ps));
	struct probe **tail = &ps->head;

	SK_ASSERT(ps != NULL);
	ps->loop = control;
	ps->reg = reg;
	ps->shard = shard;
	if (shard >= metrics_shards(reg)) {
		snprintf(err, errlen, "probes: shard %u is not in the registry",
			 shard);
		free(ps);
		return NULL;
	}
	for (size_t i = 0; i < cfg->nprobes; i++) {
		char why[512] = "";
		struct probe *p = probe_new(ps, &cfg->probes[i], why,
					    sizeof(why));

		if (p->url_error) {
			snprintf(err, errlen, "%s", why);
			probe_free(p);
			for (struct probe *q = ps->head, *n; q; q = n) {
				n = q->next;
				probe_free(q);
			}
			free(ps);
			return NULL;
		}
		*tail = p;
		tail = &p->next;
	}
	for (struct probe *p = ps->head; p; p = p->next)
		probe_schedule(p);
	log_info("probes started", "probes=%zu", cfg->nprobes);
	return ps;
}

void probes_reload(struct probes *ps, const struct cfg_monitor *cfg)
{
	struct probe *old = ps->head, *head = NULL, **tail = &head;
	size_t kept = 0, added = 0, removed = 0;

	if (ps->stopping)
		return;
	for (size_t i = 0; i < cfg->nprobes; i++) {
		const struct cfg_probe *c = &cfg->probes[i];
		struct probe **pp, *p = NULL;

		for (pp = &old; *pp; pp = &(*pp)->next) {
			if (strcmp((*pp)->name, c->name) == 0) {
				p = *pp;
				break;
			}
		}
		if (p && same_probe(p, c)) {
			*pp = p->next; /* out of the old list */
			kept++;
		} else {
			char why[512] = "";

			if (p) {
				*pp = p->next;
				p->next = NULL;
				/* Its series are the new probe's too (same
				 * labels) unless the type changed. */
				probe_remove(p, p->type != c->type);
				removed++;
			}
			p = probe_new(ps, c, why, sizeof(why));
			if (p->url_error)
				log_error("probe url does not parse",
					  "err=\"%s\"", why);
			probe_schedule(p);
			added++;
		}
		p->next = NULL;
		*tail = p;
		tail = &p->next;
	}
	for (struct probe *p = old, *n; p; p = n) {
		n = p->next;
		p->next = NULL;
		probe_remove(p, true);
		removed++;
	}
	ps->head = head;
	log_info("probes reloaded", "kept=%zu started=%zu stopped=%zu", kept,
		 added, removed);
}

void probes_stop(struct probes *ps, void (*done)(void *ud), void *ud)
{
	struct probe *p = ps->head;

	ps->stopping = true;
	ps->done = done;
	ps->done_ud = ud;
	ps->head = NULL;
	/* Count the whole set as closing first, so that a probe freed at
	 * once (nothing running) cannot end the stop while others remain. */
	ps->closing++;
	while (p) {
		struct probe *n = p->next;

		p->next = NULL;
		probe_remove(p, false);
		p = n;
	}
	ps->closing--;
	if (ps->closing == 0) {
		free(ps);
		if (done)
			done(ud);
	}
}

json_t *probes_status_json(struct probes *ps)
{
	json_t *arr = json_array();

	for (struct probe *p = ps->head; p; p = p->next) {
		json_t *o = json_object(), *runs = json_object();
		char ts[32];

		json_object_set_new(o, "name", json_string(p->name));
		json_object_set_new(o, "type", json_string(p->kind->name));
		json_object_set_new(o, "state",
				    json_string(state_names[p->state]));
		json_object_set_new(o, "message", json_string(p->message));
		json_object_set_new(o, "running",
				    json_boolean(p->run && !p->run->done));
		if (p->ran) {
			clock_fmt_iso8601(ts, p->last_wall_ms);
			json_object_set_new(o, "last_run", json_string(ts));
			json_object_set_new(o, "duration_seconds",
					    json_real(p->duration_s));
		} else {
			json_object_set_new(o, "last_run", json_null());
			json_object_set_new(o, "duration_seconds",
					    json_null());
		}
		json_object_set_new(o, "interval_seconds",
				    json_real(p->interval_ms / 1000.0));
		json_object_set_new(o, "timeout_seconds",
				    json_real(p->timeout_ms / 1000.0));
		for (int i = 0; i < RUNS_N; i++)
			json_object_set_new(runs, runs_names[i],
					    json_integer((json_int_t)p->runs[i]));
		json_object_set_new(o, "runs", runs);
		json_object_set_new(o, "details",
				    p->details ? json_incref(p->details)
					       : json_object());
		json_array_append_new(arr, o);
	}
	return arr;
}

/* --- tcp ------------------------------------------------------------------ */

/* tcp and http share the socket part of struct http_run. */

static int sock_connect(struct prun *r, const struct sockaddr *sa,
			uv_connect_cb cb);
static void http_connect_cb(uv_connect_t *req, int status);

static void tcp_closed_cb(uv_handle_t *h)
{
	struct prun *r = h->data;
	struct http_run *hr = &r->u.http;

	hr->tcp_open = false;
	/* A host name with several addresses: the next one, on a fresh
	 * handle, unless the run ended meanwhile. */
	if (hr->retry && !r->done) {
		const struct addrinfo *a = hr->ai_next;

		hr->retry = false;
		hr->ai_next = a->ai_next;
		(void)sock_connect(r, a->ai_addr, http_connect_cb);
	}
	prun_release(r);
}

static void sock_close(struct prun *r)
{
	struct http_run *h = &r->u.http;

	if (h->tcp_open && !uv_is_closing((uv_handle_t *)&h->tcp))
		uv_close((uv_handle_t *)&h->tcp, tcp_closed_cb);
}

static void tcp_connect_cb(uv_connect_t *req, int status)
{
	struct prun *r = req->data;

	if (status == 0)
		prun_finish(r, PROBE_OK, NULL, "connected to %s in %.1f ms",
			    r->p->addr_text,
			    (double)(clock_mono_ns() - r->start_ns) / 1e6);
	else if (status != UV_ECANCELED)
		prun_finish(r, PROBE_CRITICAL, NULL, "connecting to %s: %s",
			    r->p->addr_text, uv_strerror(status));
	sock_close(r);
	prun_release(r); /* the connect request */
}

/* Opens r's socket and connects it to sa; reports a failure itself.
 * Returns 0 when the connect is under way. */
static int sock_connect(struct prun *r, const struct sockaddr *sa,
			uv_connect_cb cb)
{
	struct http_run *h = &r->u.http;
	int e;

	uv_tcp_init(r->p->owner->loop, &h->tcp);
	h->tcp.data = r;
	h->tcp_open = true;
	prun_hold(r);
	h->phase = "connecting";
	h->conn.data = r;
	e = uv_tcp_connect(&h->conn, &h->tcp, sa, cb);
	if (e) {
		prun_finish(r, PROBE_CRITICAL, NULL, "connect: %s",
			    uv_strerror(e));
		sock_close(r);
		return e;
	}
	prun_hold(r);
	return 0;
}

static void tcp_start(struct prun *r)
{
	(void)sock_connect(r, (const struct sockaddr *)&r->p->addr,
			   tcp_connect_cb);
}

static void tcp_abort(struct prun *r, struct buf *why)
{
	buf_appends(why, "connecting");
	sock_close(r);
}

static const struct probe_kind probe_kind_tcp = {
	.name = "tcp",
	.start = tcp_start,
	.abort = tcp_abort,
};

/* --- http ------------------------------------------------------------------ */

static void http_abort(struct prun *r, struct buf *why)
{
	struct http_run *h = &r->u.http;

	buf_appends(why, h->phase ? h->phase : "");
	if (!h->tcp_open && h->gai.data) /* resolving */
		(void)uv_cancel((uv_req_t *)&h->gai);
	sock_close(r);
}

static void http_clear(struct probe *p)
{
	probe_set(p, p->m_http_status, NAN);
}

/* Judges the response once it is complete (or cut at the body cap). */
static void http_judge(struct prun *r)
{
	struct probe *p = r->p;
	struct http_run *h = &r->u.http;
	int status = h->msg.status;
	double ms = (double)(clock_mono_ns() - r->start_ns) / 1e6;
	json_t *d = json_object();
	const char *body;
	size_t blen;

	json_object_set_new(d, "status", json_integer(status));
	json_object_set_new(d, "bytes", json_integer((json_int_t)h->body_seen));
	if (h->truncated)
		json_object_set_new(d, "truncated", json_true());
	probe_set(p, p->m_http_status, status);
	if ((unsigned)status < p->status_min ||
	    (unsigned)status > p->status_max) {
		prun_finish(r, PROBE_CRITICAL, d,
			    "HTTP %d, expected %u..%u (%.1f ms)", status,
			    p->status_min, p->status_max, ms);
		return;
	}
	if (p->body_contains) {
		if (h->msg.body == HTTP_BODY_CHUNKED) {
			body = h->body.data;
			blen = h->body.len;
		} else {
			body = h->in.data + h->msg.head_len;
			blen = h->in.len - h->msg.head_len;
			if (h->msg.body == HTTP_BODY_LENGTH &&
			    blen > h->msg.content_length)
				blen = (size_t)h->msg.content_length;
		}
		if (!body || !memmem(body, blen, p->body_contains,
				     strlen(p->body_contains))) {
			prun_finish(r, PROBE_CRITICAL, d,
				    "HTTP %d, but the body does not contain "
				    "\"%s\"%s (%.1f ms)",
				    status, p->body_contains,
				    h->truncated ? " in its first 1 MiB" : "",
				    ms);
			return;
		}
	}
	prun_finish(r, PROBE_OK, d, "HTTP %d, %zu bytes in %.1f ms", status,
		    h->body_seen, ms);
}

static void body_cb(void *ud, const char *p, size_t n)
{
	struct http_run *h = ud;
	size_t room = PROBE_HTTP_BODY_MAX - h->body.len;

	h->body_seen += n;
	if (n > room) {
		n = room;
		h->truncated = true;
	}
	if (n)
		buf_append(&h->body, p, n);
}

/*
 * Looks at what arrived. Returns 1 when the response is complete (or as
 * much as we read of it), 0 for more, -1 after reporting an error. eof:
 * the peer closed.
 */
static int http_progress(struct prun *r, bool eof)
{
	struct http_run *h = &r->u.http;
	size_t avail;

	if (!h->head_done) {
		int pr = http_parse(&h->parser, h->in.data, h->in.len);

		if (pr == HTTP_PARSE_ERROR) {
			prun_finish(r, PROBE_CRITICAL, NULL,
				    "malformed HTTP response: %s",
				    h->parser.reason);
			return -1;
		}
		if (pr == HTTP_PARSE_AGAIN) {
			if (!eof)
				return 0;
			prun_finish(r, PROBE_CRITICAL, NULL,
				    h->in.len ? "the connection closed in the "
						"middle of the response head"
					      : "the connection closed without "
						"a response");
			return -1;
		}
		h->head_done = true;
		h->phase = "reading the body";
		h->fed = h->msg.head_len;
	}
	avail = h->in.len - h->msg.head_len;
	switch (h->msg.body) {
	case HTTP_BODY_NONE:
		return 1;
	case HTTP_BODY_LENGTH:
		h->body_seen = avail < h->msg.content_length
				       ? avail
				       : (size_t)h->msg.content_length;
		if (avail >= h->msg.content_length)
			return 1;
		if (avail >= PROBE_HTTP_BODY_MAX) {
			h->truncated = true;
			return 1;
		}
		if (eof) {
			prun_finish(r, PROBE_CRITICAL, NULL,
				    "the response body was cut short (%zu of "
				    "%llu bytes)",
				    avail,
				    (unsigned long long)h->msg.content_length);
			return -1;
		}
		return 0;
	case HTTP_BODY_CHUNKED: {
		ssize_t n = http_chunked_feed(&h->chunked, h->in.data + h->fed,
					      h->in.len - h->fed, body_cb, h);

		if (n < 0) {
			prun_finish(r, PROBE_CRITICAL, NULL,
				    "malformed chunked body: %s",
				    h->chunked.reason);
			return -1;
		}
		h->fed += (size_t)n;
		/* Raw bytes already decoded need not stay. */
		h->in.len = h->fed;
		if (h->chunked.done || h->truncated)
			return 1;
		if (eof) {
			prun_finish(r, PROBE_CRITICAL, NULL,
				    "the chunked body was cut short");
			return -1;
		}
		return 0;
	}
	case HTTP_BODY_EOF:
		h->body_seen = avail;
		if (avail >= PROBE_HTTP_BODY_MAX) {
			h->truncated = true;
			return 1;
		}
		return eof ? 1 : 0;
	}
	return 1;
}

static void http_alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
	struct prun *r = hd->data;
	struct http_run *h = &r->u.http;

	(void)suggested;
	if (buf_reserve(&h->in, 16384) < 0) {
		b->base = NULL;
		b->len = 0;
		return;
	}
	b->base = h->in.data + h->in.len;
	b->len = h->in.cap - h->in.len;
}

static void http_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct prun *r = s->data;
	struct http_run *h = &r->u.http;
	int pr;

	(void)b;
	if (r->done)
		return;
	if (n == UV_ENOBUFS) {
		prun_finish(r, PROBE_UNKNOWN, NULL, "out of memory");
		sock_close(r);
		return;
	}
	if (n < 0 && n != UV_EOF) {
		prun_finish(r, PROBE_CRITICAL, NULL, "%s: %s",
			    h->head_done ? "reading the body"
					 : "reading the response",
			    uv_strerror((int)n));
		sock_close(r);
		return;
	}
	if (n > 0)
		h->in.len += (size_t)n;
	if (n == 0)
		return;
	pr = http_progress(r, n == UV_EOF);
	if (pr == 0)
		return;
	if (pr > 0)
		http_judge(r);
	sock_close(r);
}

static void http_write_cb(uv_write_t *w, int status)
{
	struct prun *r = w->data;

	if (status < 0 && status != UV_ECANCELED) {
		prun_finish(r, PROBE_CRITICAL, NULL, "sending the request: %s",
			    uv_strerror(status));
		sock_close(r);
	}
	prun_release(r); /* the write request */
}

static void http_connect_cb(uv_connect_t *req, int status)
{
	struct prun *r = req->data;
	struct probe *p = r->p;
	struct http_run *h = &r->u.http;
	uv_buf_t b;
	int e;

	if (r->done || status == UV_ECANCELED)
		goto out;
	if (status < 0) {
		if (h->ai_next) {
			h->retry = true;
		} else {
			prun_finish(r, PROBE_CRITICAL, NULL,
				    "connecting to %s:%u: %s", p->host,
				    p->port, uv_strerror(status));
		}
		sock_close(r);
		goto out;
	}
	buf_printf(&h->req,
		   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
		   "storekeep-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		   p->target, p->host_hdr);
	b = uv_buf_init(h->req.data, (unsigned)h->req.len);
	h->wr.data = r;
	h->phase = "waiting for the response";
	e = uv_write(&h->wr, (uv_stream_t *)&h->tcp, &b, 1, http_write_cb);
	if (e == 0)
		prun_hold(r);
	if (e == 0)
		e = uv_read_start((uv_stream_t *)&h->tcp, http_alloc_cb,
				  http_read_cb);
	if (e) {
		prun_finish(r, PROBE_CRITICAL, NULL, "sending the request: %s",
			    uv_strerror(e));
		sock_close(r);
	}
out:
	prun_release(r); /* the connect request */
}

static void http_resolved_cb(uv_getaddrinfo_t *req, int status,
			     struct addrinfo *res)
{
	struct prun *r = req->data;
	struct http_run *h = &r->u.http;

	if (!r->done) {
		if (status < 0) {
			prun_finish(r, PROBE_CRITICAL, NULL,
				    "cannot resolve %s: %s", r->p->host,
				    uv_strerror(status));
		} else {
			h->ai = res;
			h->ai_next = res->ai_next;
			res = NULL;
			(void)sock_connect(r, h->ai->ai_addr, http_connect_cb);
		}
	}
	if (res)
		uv_freeaddrinfo(res);
	prun_release(r); /* the resolver request */
}

static void http_start(struct prun *r)
{
	struct probe *p = r->p;
	struct http_run *h = &r->u.http;
	static const struct http_limits lim = {
		.max_head_bytes = 65536,
		.max_headers = PROBE_HTTP_HEADERS,
		.max_target_bytes = 8192,
	};
	struct sockaddr_storage ss;
	struct addrinfo hints;
	char port[8];
	int e;

	buf_init(&h->req);
	buf_init(&h->in);
	buf_init(&h->body);
	http_parser_init(&h->parser, 0, HTTP_M_GET, &h->msg, h->hdrs,
			 PROBE_HTTP_HEADERS, &lim);
	http_chunked_init(&h->chunked, 0);
	if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&ss) == 0 ||
	    uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&ss) == 0) {
		(void)sock_connect(r, (struct sockaddr *)&ss, http_connect_cb);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", p->port);
	h->gai.data = r;
	h->phase = "resolving the host";
	e = uv_getaddrinfo(p->owner->loop, &h->gai, http_resolved_cb, p->host,
			   port, &hints);
	if (e) {
		prun_finish(r, PROBE_CRITICAL, NULL, "cannot resolve %s: %s",
			    p->host, uv_strerror(e));
		return;
	}
	prun_hold(r);
}

static const struct probe_kind probe_kind_http = {
	.name = "http",
	.start = http_start,
	.abort = http_abort,
	.clear = http_clear,
};
