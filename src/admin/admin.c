/*
 * admin.c - the admin API, Prometheus exposition and the token check.
 *
 *   GET  /healthz, /metrics                              no token
 *   GET  /api/v1/status, /api/v1/pools                   read-only
 *   POST /api/v1/pools/{pool}/backends/{backend}/drain   actions
 *   POST /api/v1/pools/{pool}/backends/{backend}/enable
 *   PUT  /api/v1/pools/{pool}/backends/{backend}/weight  {"weight": N}
 *   POST /api/v1/reload
 *   GET  /api/v1/alerts                                  alerts, rules,
 *   GET  /api/v1/silences                                silences, notifiers
 *   POST /api/v1/silences    {"matchers": "...", "duration": "2h"}
 *   DELETE /api/v1/silences/{id}
 *
 * Everything here runs on the control loop. Reads sum the workers'
 * counters with relaxed loads, so a scrape never takes a lock on the
 * request path. Actions go through proxy_backend_op() and the reload hook;
 * each one, refused and failed attempts included (a 401 on an action
 * endpoint too), is recorded by audit.c before the response leaves.
 * Read-only requests are not audited.
 *
 * Every /api/ answer is JSON; errors are {"error": "..."} with a message
 * meant for the operator. The token is compared in constant time.
 */
#include "admin/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/http.h"
#include "backup/backup.h"
#include "http/server.h"
#include "monitor/alert.h"
#include "monitor/history.h"
#include "monitor/host.h"
#include "monitor/metrics.h"
#include "monitor/probe.h"

#ifndef SK_VERSION
#define SK_VERSION "dev"
#endif

struct admin {
	struct http_server *srv;
	struct alert_engine *alerts; /* borrowed; may be NULL */
	struct backup_sched *backup; /* borrowed; NULL without backups */
	struct probes *probes;	     /* borrowed; may be NULL */
	struct history *history;     /* borrowed; may be NULL */
	struct proxy *proxy;
	char *token; /* replaced when a reload brings a new token file */
	size_t token_len;
	struct audit audit;
	uint64_t started_wall_ms;
	uint64_t started_mono_ms;
	admin_status_hook hook;
	void *hook_ud;
	admin_reload_hook reload_hook;
	void *reload_ud;
};

int admin_read_token(const char *path, char **token, char *err, size_t errlen)
{
	char why[PATH_MAX * 2 + 128];
	int r = config_read_token(path, token, why, sizeof(why));

	if (r < 0)
		snprintf(err, errlen, "admin token file: %s", why);
	return r;
}

/* Constant-time: the time taken does not depend on where they differ. */
static int token_ok(const struct admin *a, const char *hdr)
{
	const char *t;
	size_t n;
	unsigned char diff = 0;

	if (hdr == NULL || strncasecmp(hdr, "Bearer ", 7) != 0)
		return 0;
	t = hdr + 7;
	n = strlen(t);
	diff = (unsigned char)(n != a->token_len);
	for (size_t i = 0; i < a->token_len; i++)
		diff |= (unsigned char)(a->token[i] ^ (i < n ? t[i] : 0));
	return diff == 0;
}

/* Prometheus label values escape backslash, double quote and newline. */
static void label_value(struct buf *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_appends(o, "\\\\");
		else if (*s == '"')
			buf_appends(o, "\\\"");
		else if (*s == '\n')
			buf_appends(o, "\\n");
		else
			buf_appendc(o, *s);
	}
}

static void metric_head(struct buf *o, const char *name, const char *type,
			const char *help)
{
	buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends {pool="..",backend=".."[,extra]} */
static void backend_labels(struct buf *o, const char *pool, const char *be,
			   const char *extra)
{
	buf_appends(o, "{pool=\"");
	label_value(o, pool);
	buf_appends(o, "\",backend=\"");
	label_value(o, be);
	buf_appends(o, "\"");
	if (extra) {
		buf_appendc(o, ',');
		buf_appends(o, extra);
	}
	buf_appendc(o, '}');
}

/* One backend as /metrics shows it: read once per scrape. */
struct be_row {
	const char *pool;
	struct proxy_backend_info bi;
};

enum be_field { BE_UP, BE_REQUESTS, BE_FAILURES, BE_ACTIVE, BE_CHECKS_OK,
		BE_CHECKS_FAILED };

static const struct {
	const char *name, *type, *help, *extra;
	enum be_field f;
	bool head; /* the first series of its family */
} be_families[] = {
	{"storekeep_backend_up", "gauge",
	 "1 when the backend is in service (health checks pass), else 0.",
	 NULL, BE_UP, true},
	{"storekeep_backend_requests_total", "counter",
	 "Requests sent to the backend (each attempt counts).", NULL,
	 BE_REQUESTS, true},
	{"storekeep_backend_failures_total", "counter",
	 "Connect failures, resets, timeouts and bad responses from the "
	 "backend.",
	 NULL, BE_FAILURES, true},
	{"storekeep_backend_requests_in_flight", "gauge",
	 "Requests in flight on the backend.", NULL, BE_ACTIVE, true},
	{"storekeep_health_checks_total", "counter",
	 "Active health checks run, by result.", "result=\"ok\"", BE_CHECKS_OK,
	 true},
	{"storekeep_health_checks_total", NULL, NULL, "result=\"fail\"",
	 BE_CHECKS_FAILED, false},
};

static long long be_value(const struct proxy_backend_info *bi,
			  enum be_field f)
{
	switch (f) {
	case BE_UP:
		return bi->state == PROXY_BACKEND_UP;
	case BE_REQUESTS:
		return (long long)bi->requests;
	case BE_FAILURES:
		return (long long)bi->failures;
	case BE_ACTIVE:
		return (long long)bi->active;
	case BE_CHECKS_OK:
		return (long long)bi->checks_ok;
	case BE_CHECKS_FAILED:
		return (long long)bi->checks_failed;
	}
	return 0;
}

/* The backends' families. Each backend's counters are read once (a
 * lock and a sum over the workers), then written family by family; the
 * two result series of the health checks stay together per backend. */
static void write_backend_metrics(struct admin *a, struct buf *o)
{
	size_t npools = proxy_pool_count(a->proxy), n = 0, k = 0;
	struct be_row *rows;

	for (size_t pl = 0; pl < npools; pl++)
		n += proxy_backend_count(a->proxy, pl);
	rows = calloc(n ? n : 1, sizeof(*rows));
	SK_ASSERT(rows != NULL);
	for (size_t pl = 0; pl < npools; pl++)
		for (size_t i = 0; i < proxy_backend_count(a->proxy, pl); i++) {
			rows[k].pool = proxy_pool_name(a->proxy, pl);
			proxy_backend_info(a->proxy, pl, i, &rows[k++].bi);
		}
	for (size_t f = 0; f < sizeof(be_families) / sizeof(be_families[0]);
	     f++) {
		size_t last = f;

		if (!be_families[f].head)
			continue;
		while (last + 1 < sizeof(be_families) / sizeof(be_families[0]) &&
		       !be_families[last + 1].head)
			last++;
		metric_head(o, be_families[f].name, be_families[f].type,
			    be_families[f].help);
		for (size_t r = 0; r < n; r++)
			for (size_t g = f; g <= last; g++) {
				buf_appends(o, be_families[g].name);
				backend_labels(o, rows[r].pool, rows[r].bi.name,
					       be_families[g].extra);
				buf_printf(o, " %lld\n",
					   be_value(&rows[r].bi, be_families[g].f));
			}
	}
	free(rows);
}

static void write_metrics(struct admin *a, struct buf *o)
{
	struct proxy_stats st;
	static const char *const classes[6] = {"other", "1xx", "2xx",
					       "3xx",	"4xx", "5xx"};

	proxy_stats_read(a->proxy, &st);
	metric_head(o, "storekeep_build_info", "gauge",
		    "Version of the running storekeep.");
	buf_printf(o, "storekeep_build_info{version=\"%s\"} 1\n", SK_VERSION);
	metric_head(o, "storekeep_start_time_seconds", "gauge",
		    "Unix time at which storekeep started.");
	buf_printf(o, "storekeep_start_time_seconds %llu\n",
		   (unsigned long long)(a->started_wall_ms / 1000));
	metric_head(o, "storekeep_http_requests_total", "counter",
		    "Requests received from clients (complete heads).");
	buf_printf(o, "storekeep_http_requests_total %llu\n",
		   (unsigned long long)st.requests);
	metric_head(o, "storekeep_http_responses_total", "counter",
		    "Responses sent to clients, by status class.");
	for (int k = 1; k <= 5; k++)
		buf_printf(o, "storekeep_http_responses_total{class=\"%s\"} %llu\n",
			   classes[k], (unsigned long long)st.responses[k]);
	metric_head(o, "storekeep_http_requests_in_flight", "gauge",
		    "Requests being served right now.");
	buf_printf(o, "storekeep_http_requests_in_flight %lld\n",
		   (long long)st.in_flight);
	metric_head(o, "storekeep_client_connections", "gauge",
		    "Client connections open.");
	buf_printf(o, "storekeep_client_connections %lld\n",
		   (long long)st.connections);
	metric_head(o, "storekeep_client_connections_accepted_total", "counter",
		    "Client connections accepted.");
	buf_printf(o, "storekeep_client_connections_accepted_total %llu\n",
		   (unsigned long long)st.accepted);

	write_backend_metrics(a, o);
}

/* --- JSON views ----------------------------------------------------------- */

static json_t *backend_json(struct admin *a, size_t pl, size_t i)
{
	struct proxy_backend_info bi;
	json_t *be = json_object(), *ck = json_object();

	proxy_backend_info(a->proxy, pl, i, &bi);
	json_object_set_new(be, "name", json_string(bi.name));
	json_object_set_new(be, "address", json_string(bi.address));
	json_object_set_new(be, "weight", json_integer(bi.weight));
	json_object_set_new(be, "backup", json_boolean(bi.backup));
	json_object_set_new(be, "state",
			    json_string(bi.state == PROXY_BACKEND_UP ? "up"
								     : "down"));
	json_object_set_new(be, "draining", json_boolean(bi.draining));
	json_object_set_new(be, "ejected", json_boolean(bi.ejected));
	json_object_set_new(be, "ejections",
			    json_integer((json_int_t)bi.ejections));
	json_object_set_new(be, "requests", json_integer((json_int_t)bi.requests));
	json_object_set_new(be, "failures", json_integer((json_int_t)bi.failures));
	json_object_set_new(be, "in_flight", json_integer(bi.active));
	json_object_set_new(ck, "ok", json_integer((json_int_t)bi.checks_ok));
	json_object_set_new(ck, "failed",
			    json_integer((json_int_t)bi.checks_failed));
	json_object_set_new(ck, "last", text_json(bi.last_check));
	json_object_set_new(be, "checks", ck);
	return be;
}

static json_t *pools_json(struct admin *a)
{
	json_t *pools = json_array();

	for (size_t pl = 0; pl < proxy_pool_count(a->proxy); pl++) {
		json_t *pool = json_object(), *bes = json_array();
		size_t up = 0, n = proxy_backend_count(a->proxy, pl);

		json_object_set_new(pool, "name",
				    json_string(proxy_pool_name(a->proxy, pl)));
		json_object_set_new(pool, "balance",
				    json_string(proxy_pool_balance(a->proxy, pl)));
		for (size_t i = 0; i < n; i++) {
			json_t *be = backend_json(a, pl, i);

			up += strcmp(json_string_value(json_object_get(be, "state")),
				     "up") == 0;
			json_array_append_new(bes, be);
		}
		json_object_set_new(pool, "backends_up", json_integer((json_int_t)up));
		json_object_set_new(pool, "backends", bes);
		json_array_append_new(pools, pool);
	}
	return pools;
}

static json_t *status_json(struct admin *a)
{
	struct proxy_stats st;
	json_t *root;
	char ts[32];

	proxy_stats_read(a->proxy, &st);
	clock_fmt_iso8601(ts, a->started_wall_ms);
	root = json_object();
	json_object_set_new(root, "version", json_string(SK_VERSION));
	json_object_set_new(root, "pid", json_integer(getpid()));
	json_object_set_new(root, "started", json_string(ts));
	json_object_set_new(root, "uptime_seconds",
			    json_integer((json_int_t)((clock_mono_ms() -
						       a->started_mono_ms) / 1000)));
	json_object_set_new(root, "requests", json_integer((json_int_t)st.requests));
	json_object_set_new(root, "in_flight", json_integer(st.in_flight));
	json_object_set_new(root, "connections", json_integer(st.connections));
	json_object_set_new(root, "retries", json_integer((json_int_t)st.retries));
	json_object_set_new(root, "retries_denied",
			    json_integer((json_int_t)st.retries_denied));
	json_object_set_new(root, "queued", json_integer(st.queued));
	json_object_set_new(root, "pools", pools_json(a));
	if (a->history)
		json_object_set_new(root, "history",
				    history_status_json(a->history));
	if (a->hook)
		a->hook(a->hook_ud, root);
	return root;
}

/* --- responses ------------------------------------------------------------ */

static void reply_text(struct http_server_res *res, int status,
		       const char *ctype, const char *body)
{
	res->status = status;
	buf_printf(&res->headers, "Content-Type: %s\r\n", ctype);
	buf_appends(&res->body, body);
}

/* Sends j (a reference is taken over) as the JSON body. */
static void reply_json(struct http_server_res *res, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	json_decref(j);
	SK_ASSERT(s != NULL);
	reply_text(res, status, "application/json", s);
	buf_appendc(&res->body, '\n');
	free(s);
}

static void reply_error(struct http_server_res *res, int status,
			const char *msg)
{
	json_t *j = json_object();

	json_object_set_new(j, "error", text_json(msg));
	reply_json(res, status, j);
}

/* --- routing -------------------------------------------------------------- */

enum endpoint {
	EP_NONE = 0,
	EP_STATUS,  /* GET /api/v1/status */
	EP_POOLS,   /* GET /api/v1/pools */
	EP_DRAIN,   /* POST /api/v1/pools/{pool}/backends/{backend}/drain */
	EP_ENABLE,  /* POST .../enable */
	EP_WEIGHT,  /* PUT or POST .../weight, body {"weight": N} */
	EP_RELOAD,  /* POST /api/v1/reload */
	EP_BACKUPS, /* GET /api/v1/backups */
	EP_BACKUP_RUN,	  /* POST /api/v1/backups/{job}/run */
	EP_BACKUP_VERIFY, /* POST /api/v1/backups/{job}/verify */
	EP_PROBES,	  /* GET /api/v1/probes */
	EP_QUERY,	  /* GET /api/v1/query?metric=&labels=&from=&to=&step= */
	EP_ALERTS,	  /* GET /api/v1/alerts */
	EP_SILENCES,	  /* GET, POST /api/v1/silences */
	EP_SILENCE,	  /* DELETE /api/v1/silences/{id} */
};

/* Pool and backend names are at most 64 characters (config.c); a longer
 * segment names nothing. */
#define NAME_MAX_LEN 64

struct route {
	enum endpoint ep;
	char pool[NAME_MAX_LEN + 1];
	char backend[NAME_MAX_LEN + 1];
};

/*
 * Copies the path segment s[0..len) into out, decoding %XX. Returns 0, or
 * -1 when the segment is empty. A segment that is badly escaped, too long,
 * or decodes to a byte no name can hold (controls, space, '/', non-ASCII)
 * is kept as it was sent, cut to NAME_MAX_LEN: it names nothing, so the
 * lookup fails with a message that shows what was asked for. The target's
 * bytes are visible ASCII (the parser saw to that), so either way out is
 * printable text.
 */
static int segment(const char *s, size_t len, char out[NAME_MAX_LEN + 1])
{
	size_t o = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi = i + 2 < len ? http_hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < len ? http_hexval((unsigned char)s[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				goto raw;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c <= 0x20 || c >= 0x7f || c == '/' || o == NAME_MAX_LEN)
			goto raw;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
raw:
	snprintf(out, NAME_MAX_LEN + 1, "%.*s", (int)len, s);
	return 0;
}

/* Matches path (already known to start with "/api/") against the API. */
static void route_parse(const char *path, struct route *rt)
{
	const char *seg[6];
	size_t segl[6], n = 0;
	const char *p;

	memset(rt, 0, sizeof(*rt));
	if (strncmp(path, "/api/v1/", 8) != 0)
		return;
	p = path + 8;
	for (;;) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (n == 6)
			return;
		seg[n] = p;
		segl[n++] = l;
		if (e == NULL)
			break;
		p = e + 1;
	}
#define SEG_IS(k, lit) (segl[k] == strlen(lit) && memcmp(seg[k], lit, segl[k]) == 0)
	if (n == 1 && SEG_IS(0, "status"))
		rt->ep = EP_STATUS;
	else if (n == 1 && SEG_IS(0, "pools"))
		rt->ep = EP_POOLS;
	else if (n == 1 && SEG_IS(0, "reload"))
		rt->ep = EP_RELOAD;
	else if (n == 1 && SEG_IS(0, "backups"))
		rt->ep = EP_BACKUPS;
	else if (n == 1 && SEG_IS(0, "probes"))
		rt->ep = EP_PROBES;
	else if (n == 1 && SEG_IS(0, "query"))
		rt->ep = EP_QUERY;
	else if (n == 1 && SEG_IS(0, "alerts"))
		rt->ep = EP_ALERTS;
	else if (n == 1 && SEG_IS(0, "silences"))
		rt->ep = EP_SILENCES;
	else if (n == 2 && SEG_IS(0, "silences") &&
		 segment(seg[1], segl[1], rt->pool) == 0)
		rt->ep = EP_SILENCE; /* the id goes in rt->pool */
	else if (n == 3 && SEG_IS(0, "backups") &&
		 segment(seg[1], segl[1], rt->pool) == 0) {
		/* The job name goes in rt->pool. */
		if (SEG_IS(2, "run"))
			rt->ep = EP_BACKUP_RUN;
		else if (SEG_IS(2, "verify"))
			rt->ep = EP_BACKUP_VERIFY;
	}
	else if (n == 5 && SEG_IS(0, "pools") && SEG_IS(2, "backends") &&
		 segment(seg[1], segl[1], rt->pool) == 0 &&
		 segment(seg[3], segl[3], rt->backend) == 0) {
		if (SEG_IS(4, "drain"))
			rt->ep = EP_DRAIN;
		else if (SEG_IS(4, "enable"))
			rt->ep = EP_ENABLE;
		else if (SEG_IS(4, "weight"))
			rt->ep = EP_WEIGHT;
	}
#undef SEG_IS
}

static const char *action_name(enum endpoint ep)
{
	switch (ep) {
	case EP_DRAIN:
		return "drain";
	case EP_ENABLE:
		return "enable";
	case EP_WEIGHT:
		return "weight";
	case EP_RELOAD:
		return "reload";
	case EP_BACKUP_RUN:
		return "backup-run";
	case EP_BACKUP_VERIFY:
		return "backup-verify";
	case EP_SILENCES:
		return "silence-add";
	case EP_SILENCE:
		return "silence-delete";
	default:
		return NULL;
	}
}

/* --- actions -------------------------------------------------------------- */

/* What an action handler hands back for the audit record. */
struct outcome {
	char result[1200]; /* "ok" or "error: ..." (loader messages are long) */
	json_t *extra;	  /* more fields for the audit file, or NULL */
};

static void fail(struct http_server_res *res, struct outcome *oc, int status,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Answers status {"error": msg} and records "error: msg" for the audit. */
static void fail(struct http_server_res *res, struct outcome *oc, int status,
		 const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_error(res, status, msg);
	snprintf(oc->result, sizeof(oc->result), "error: %s", msg);
}

/*
 * Reads {"weight": N} from the request body into *w. Returns 0, or -1 after
 * answering 400 with what is wrong.
 */
static int parse_weight(struct http_server_req *req,
			struct http_server_res *res, struct outcome *oc,
			uint32_t *w)
{
	static const char want[] =
		"expected a JSON object such as {\"weight\": 3}, the weight an "
		"integer from 0 to 1000 (0 restores the configured weight)";
	json_error_t jerr;
	json_t *j, *v;
	const char *key;
	json_int_t n;

	if (req->body_len == 0) {
		fail(res, oc, 400, "the request has no body; %s", want);
		return -1;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		fail(res, oc, 400,
		     "the body is not valid JSON (%s, line %d column %d); %s",
		     jerr.text, jerr.line, jerr.column, want);
		return -1;
	}
	if (!json_is_object(j)) {
		fail(res, oc, 400, "the body is not a JSON object; %s", want);
		goto bad;
	}
	json_object_foreach(j, key, v) {
		if (strcmp(key, "weight") != 0) {
			fail(res, oc, 400, "unknown key \"%.64s\"; %s", key, want);
			goto bad;
		}
	}
	v = json_object_get(j, "weight");
	if (v == NULL) {
		fail(res, oc, 400, "\"weight\" is missing; %s", want);
		goto bad;
	}
	if (!json_is_integer(v)) {
		fail(res, oc, 400,
		     "\"weight\" must be an integer from 0 to 1000 (0 restores "
		     "the configured weight)");
		goto bad;
	}
	n = json_integer_value(v);
	if (n < 0 || n > 1000) {
		fail(res, oc, 400,
		     "\"weight\" %" JSON_INTEGER_FORMAT " is out of range: it "
		     "must be from 0 to 1000 (0 restores the configured weight)",
		     n);
		goto bad;
	}
	json_decref(j);
	*w = (uint32_t)n;
	return 0;
bad:
	json_decref(j);
	return -1;
}

static int find_pool(struct admin *a, const char *name, size_t *pl)
{
	for (size_t i = 0; i < proxy_pool_count(a->proxy); i++)
		if (strcmp(proxy_pool_name(a->proxy, i), name) == 0) {
			*pl = i;
			return 0;
		}
	return -1;
}

static int find_backend(struct admin *a, size_t pl, const char *name,
			size_t *bi)
{
	struct proxy_backend_info info;

	for (size_t i = 0; i < proxy_backend_count(a->proxy, pl); i++) {
		proxy_backend_info(a->proxy, pl, i, &info);
		if (strcmp(info.name, name) == 0) {
			*bi = i;
			return 0;
		}
	}
	return -1;
}

/* drain, enable and weight on pool/backend. */
static void backend_action(struct admin *a, const struct route *rt,
			   struct http_server_req *req,
			   struct http_server_res *res, struct outcome *oc)
{
	enum proxy_backend_op op = PROXY_BACKEND_DRAIN;
	uint32_t weight = 0;
	size_t pl, bi;
	json_t *j;
	int r;

	if (find_pool(a, rt->pool, &pl) < 0) {
		fail(res, oc, 404, "there is no pool named \"%s\"", rt->pool);
		return;
	}
	if (find_backend(a, pl, rt->backend, &bi) < 0) {
		fail(res, oc, 404, "pool \"%s\" has no backend named \"%s\"",
		     rt->pool, rt->backend);
		return;
	}
	if (rt->ep == EP_ENABLE) {
		op = PROXY_BACKEND_ENABLE;
	} else if (rt->ep == EP_WEIGHT) {
		op = PROXY_BACKEND_SET_WEIGHT;
		if (parse_weight(req, res, oc, &weight) < 0)
			return;
		oc->extra = json_pack("{s:i}", "weight", (int)weight);
	}
	r = proxy_backend_op(a->proxy, rt->pool, rt->backend, op, weight);
	if (r == -ENOENT) {
		fail(res, oc, 404, "pool \"%s\" has no backend named \"%s\"",
		     rt->pool, rt->backend);
		return;
	}
	if (r < 0) {
		fail(res, oc, 400, "%s/%s: %s", rt->pool, rt->backend,
		     r == -EINVAL ? "weight out of range (0..1000)"
				  : strerror(-r));
		return;
	}
	j = json_object();
	json_object_set_new(j, "ok", json_true());
	json_object_set_new(j, "pool", json_string(rt->pool));
	json_object_set_new(j, "backend", backend_json(a, pl, bi));
	reply_json(res, 200, j);
	snprintf(oc->result, sizeof(oc->result), "ok");
}

static void reload_action(struct admin *a, struct http_server_res *res,
			  struct outcome *oc)
{
	char err[1024];
	json_t *j;
	int r;

	if (a->reload_hook == NULL) {
		fail(res, oc, 503, "reload is not available in this process");
		return;
	}
	err[0] = '\0';
	r = a->reload_hook(a->reload_ud, err, sizeof(err));
	if (r < 0) {
		j = json_object();
		json_object_set_new(j, "ok", json_false());
		json_object_set_new(j, "error",
				    text_json(err[0] ? err : "reload failed"));
		reply_json(res, 422, j);
		snprintf(oc->result, sizeof(oc->result), "error: %s",
			 err[0] ? err : "reload failed");
		return;
	}
	/* The new config is in force: follow its token file and audit log
	 * before the reload itself is recorded, so a new audit file starts
	 * with the reload that opened it. */
	admin_config_changed(a);
	j = json_object();
	json_object_set_new(j, "ok", json_true());
	if (r == 1) {
		json_object_set_new(j, "restart_needed", text_json(err));
		oc->extra = json_pack("{s:o}", "restart_needed", text_json(err));
	}
	reply_json(res, 200, j);
	snprintf(oc->result, sizeof(oc->result), "ok");
}

static void backup_action(struct admin *a, const struct route *rt,
			  struct http_server_res *res, struct outcome *oc)
{
	json_t *j;
	int r;

	if (a->backup == NULL) {
		fail(res, oc, 404, "backups are not configured");
		return;
	}
	r = backup_sched_trigger(a->backup, rt->pool, rt->ep == EP_BACKUP_VERIFY);
	if (r == -ENOENT) {
		fail(res, oc, 404, "there is no backup job named \"%s\"", rt->pool);
		return;
	}
	if (r < 0) {
		fail(res, oc, 503, "%s: %s", rt->pool,
		     r == -ENOKEY ? "the backup key cannot be loaded"
				  : "storekeep is stopping");
		return;
	}
	j = json_object();
	json_object_set_new(j, "ok", json_true());
	json_object_set_new(j, "job", json_string(rt->pool));
	json_object_set_new(j, "started",
			    json_string(rt->ep == EP_BACKUP_VERIFY ? "verify" : "run"));
	reply_json(res, 202, j);
	snprintf(oc->result, sizeof(oc->result), "ok");
}

/* --- alerts and silences ---------------------------------------------------- */

static json_t *alerts_json(struct admin *a)
{
	json_t *j;

	if (a->alerts == NULL) {
		j = json_pack("{s:b,s:[],s:[],s:[],s:[]}", "enabled", 0, "alerts",
			      "rules", "silences", "notifiers");
		return j;
	}
	j = alert_engine_json(a->alerts);
	json_object_set_new(j, "enabled", json_true());
	return j;
}

#define SILENCE_MAX_S (90ull * 86400)

/*
 * POST /api/v1/silences {"matchers": "alertname=BackendDown,pool=web",
 * "duration": "2h" (or seconds), "comment": "...", "created_by": "..."}:
 * 201 {"id": ...}. The matchers are a selector without a metric name,
 * as `storekeep ctl silence add` takes them.
 */
static void silence_add(struct admin *a, struct http_server_req *req,
			struct http_server_res *res, struct outcome *oc,
			char *target, size_t tlen)
{
	static const char want[] =
		"expected a JSON object such as {\"matchers\": "
		"\"alertname=BackendDown,pool=web\", \"duration\": \"2h\", "
		"\"comment\": \"deploy\"}";
	struct alert_selector sel = {0};
	struct alert_silence si = {0};
	char id[ALERT_SILENCE_ID_LEN + 1], err[256];
	json_error_t jerr;
	json_t *j = NULL, *v, *out;
	const char *key, *mtext, *by;
	uint64_t now = clock_wall_ms();
	json_int_t secs;
	int r;

	if (a->alerts == NULL) {
		fail(res, oc, 409, "alerts are disabled (monitor.alerts.enabled)");
		return;
	}
	if (req->body_len == 0) {
		fail(res, oc, 400, "the request has no body; %s", want);
		return;
	}
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		fail(res, oc, 400, "the body is not a JSON object; %s", want);
		goto out;
	}
	json_object_foreach(j, key, v) {
		if (strcmp(key, "matchers") != 0 &&
		    strcmp(key, "duration") != 0 &&
		    strcmp(key, "comment") != 0 &&
		    strcmp(key, "created_by") != 0) {
			fail(res, oc, 400, "unknown key \"%.64s\"; %s", key, want);
			goto out;
		}
		if (strcmp(key, "duration") != 0 && !json_is_string(v)) {
			fail(res, oc, 400, "\"%s\" must be a string", key);
			goto out;
		}
	}
	mtext = json_string_value(json_object_get(j, "matchers"));
	if (mtext == NULL) {
		fail(res, oc, 400, "\"matchers\" is missing; %s", want);
		goto out;
	}
	snprintf(target, tlen, "silence/%s", mtext);
	v = json_object_get(j, "duration");
	secs = -1;
	if (json_is_integer(v)) {
		secs = json_integer_value(v);
	} else if (json_is_string(v)) {
		uint64_t ms;

		if (config_parse_duration(json_string_value(v), &ms) == 0 &&
		    ms % 1000 == 0)
			secs = (json_int_t)(ms / 1000);
	}
	if (secs < 1 || (uint64_t)secs > SILENCE_MAX_S) {
		fail(res, oc, 400,
		     "\"duration\" must be like \"90s\", \"15m\", \"2h\" or "
		     "\"1d\" (or seconds), from 1 s to 90 days");
		goto out;
	}
	if (alert_selector_parse(mtext, &sel, err, sizeof(err)) != 0) {
		fail(res, oc, 400, "matchers: %s", err);
		goto out;
	}
	if (sel.metric != NULL || sel.nmatchers == 0) {
		fail(res, oc, 400,
		     "matchers: give label matchers such as alertname=\"X\", "
		     "without a metric name");
		goto out;
	}
	by = json_string_value(json_object_get(j, "created_by"));
	si.matchers = sel.matchers;
	si.nmatchers = sel.nmatchers;
	si.starts_at_ms = now;
	si.ends_at_ms = now + (uint64_t)secs * 1000;
	si.created_by = by ? by : req->peer;
	si.comment = json_string_value(json_object_get(j, "comment"));
	r = alert_silence_add(a->alerts, &si, now, id, err, sizeof(err));
	if (r != 0) {
		fail(res, oc, r == -ENOSPC ? 409 : 400, "%s",
		     r == -ENOSPC ? "too many silences" : err);
		goto out;
	}
	out = json_pack("{s:s}", "id", id);
	reply_json(res, 201, out);
	snprintf(oc->result, sizeof(oc->result), "ok");
	oc->extra = json_pack("{s:s}", "id", id);
out:
	alert_selector_fini(&sel);
	json_decref(j);
}

static void silence_del(struct admin *a, const struct route *rt,
			struct http_server_res *res, struct outcome *oc)
{
	if (a->alerts == NULL) {
		fail(res, oc, 409, "alerts are disabled (monitor.alerts.enabled)");
		return;
	}
	if (alert_silence_del(a->alerts, rt->pool) != 0) {
		fail(res, oc, 404, "there is no silence with id \"%s\"", rt->pool);
		return;
	}
	reply_json(res, 200, json_pack("{s:b,s:s}", "ok", 1, "id", rt->pool));
	snprintf(oc->result, sizeof(oc->result), "ok");
}

/* --- the handler ---------------------------------------------------------- */

static void not_allowed(struct http_server_req *req,
			struct http_server_res *res, struct outcome *oc,
			const char *allow)
{
	struct http_span ms = req->msg->method_s;

	buf_printf(&res->headers, "Allow: %s\r\n", allow);
	fail(res, oc, 405, "method %.*s is not allowed here; use %s",
	     (int)(ms.len > 32 ? 32 : ms.len), http_span_ptr(req->base, ms),
	     allow);
}

static void api(struct admin *a, struct http_server_req *req,
		struct http_server_res *res)
{
	enum http_method m = req->msg->method;
	const char *action;
	struct outcome oc;
	struct route rt;
	char target[4096]; /* "pool/backend", or the config file's path */

	route_parse(req->path, &rt);
	action = action_name(rt.ep);
	memset(&oc, 0, sizeof(oc));
	if (rt.ep == EP_RELOAD)
		snprintf(target, sizeof(target), "%s",
			 proxy_config(a->proxy)->path);
	else if (rt.ep == EP_BACKUP_RUN || rt.ep == EP_BACKUP_VERIFY)
		snprintf(target, sizeof(target), "backup/%s", rt.pool);
	else if (rt.ep == EP_SILENCES || rt.ep == EP_SILENCE)
		snprintf(target, sizeof(target), "silence/%s", rt.pool);
	else
		snprintf(target, sizeof(target), "%s/%s", rt.pool, rt.backend);

	if (!token_ok(a, http_server_req_header(req, "authorization"))) {
		buf_appends(&res->headers,
			    "WWW-Authenticate: Bearer realm=\"storekeep\"\r\n");
		fail(res, &oc, 401, "a valid bearer token is required");
		if (action)
			audit_record(&a->audit, req->peer, action, target,
				     oc.result, NULL);
		else
			log_warn("admin: unauthorized", "peer=%s path=%s",
				 req->peer, req->path);
		return;
	}
	switch (rt.ep) {
	case EP_NONE:
		reply_error(res, 404, "no such endpoint");
		return;
	case EP_STATUS:
	case EP_POOLS:
		if (m != HTTP_M_GET && m != HTTP_M_HEAD) {
			not_allowed(req, res, &oc, "GET, HEAD");
			return;
		}
		if (rt.ep == EP_STATUS) {
			reply_json(res, 200, status_json(a));
		} else {
			json_t *j = json_object();

			json_object_set_new(j, "pools", pools_json(a));
			reply_json(res, 200, j);
		}
		return;
	case EP_DRAIN:
	case EP_ENABLE:
		if (m != HTTP_M_POST)
			not_allowed(req, res, &oc, "POST");
		else
			backend_action(a, &rt, req, res, &oc);
		break;
	case EP_WEIGHT:
		if (m != HTTP_M_PUT && m != HTTP_M_POST)
			not_allowed(req, res, &oc, "PUT, POST");
		else
			backend_action(a, &rt, req, res, &oc);
		break;
	case EP_RELOAD:
		if (m != HTTP_M_POST)
			not_allowed(req, res, &oc, "POST");
		else
			reload_action(a, res, &oc);
		break;
	case EP_BACKUPS:
		if (m != HTTP_M_GET && m != HTTP_M_HEAD) {
			not_allowed(req, res, &oc, "GET, HEAD");
			return;
		}
		if (a->backup == NULL) {
			json_t *j = json_object();

			json_object_set_new(j, "jobs", json_array());
			reply_json(res, 200, j);
		} else {
			reply_json(res, 200, backup_status_json(a->backup));
		}
		return;
	case EP_PROBES:
	case EP_QUERY:
		if (m != HTTP_M_GET && m != HTTP_M_HEAD) {
			not_allowed(req, res, &oc, "GET, HEAD");
			return;
		}
		if (rt.ep == EP_PROBES) {
			json_t *j = json_object();

			json_object_set_new(j, "probes",
					    a->probes ? probes_status_json(a->probes)
						      : json_array());
			reply_json(res, 200, j);
		} else if (a->history == NULL) {
			reply_error(res, 503, "the history is not running");
		} else {
			json_t *j = NULL;
			int r = history_query_params(a->history, req->query,
						     clock_wall_ms(), &j);

			reply_json(res, r == 0 ? 200 : r == -EINVAL ? 400 : 500,
				   j);
		}
		return;
	case EP_BACKUP_RUN:
	case EP_BACKUP_VERIFY:
		if (m != HTTP_M_POST)
			not_allowed(req, res, &oc, "POST");
		else
			backup_action(a, &rt, res, &oc);
		break;
	case EP_ALERTS:
		if (m != HTTP_M_GET && m != HTTP_M_HEAD) {
			not_allowed(req, res, &oc, "GET, HEAD");
			return;
		}
		reply_json(res, 200, alerts_json(a));
		return;
	case EP_SILENCES:
		if (m == HTTP_M_GET || m == HTTP_M_HEAD) {
			json_t *j = json_object();

			json_object_set_new(j, "silences",
					    a->alerts ? alert_silence_list(a->alerts)
						      : json_array());
			reply_json(res, 200, j);
			return;
		}
		if (m != HTTP_M_POST)
			not_allowed(req, res, &oc, "GET, HEAD, POST");
		else
			silence_add(a, req, res, &oc, target, sizeof(target));
		break;
	case EP_SILENCE:
		if (m != HTTP_M_DELETE)
			not_allowed(req, res, &oc, "DELETE");
		else
			silence_del(a, &rt, res, &oc);
		break;
	}
	audit_record(&a->audit, req->peer, action, target, oc.result, oc.extra);
	json_decref(oc.extra);
}

static void handler(void *ud, struct http_server_req *req,
		    struct http_server_res *res)
{
	struct admin *a = ud;
	enum http_method m = req->msg->method;

	buf_appends(&res->headers, "Cache-Control: no-store\r\n");
	if (strcmp(req->path, "/healthz") == 0) {
		if (m != HTTP_M_GET && m != HTTP_M_HEAD)
			goto not_allowed;
		reply_text(res, 200, "text/plain", "ok\n");
		return;
	}
	if (strcmp(req->path, "/metrics") == 0) {
		if (m != HTTP_M_GET && m != HTTP_M_HEAD)
			goto not_allowed;
		res->status = 200;
		buf_appends(&res->headers,
			    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
		write_metrics(a, &res->body);
		metrics_write_prometheus(proxy_metrics(a->proxy), &res->body);
		if (a->backup)
			backup_metrics_write(a->backup, &res->body);
		return;
	}
	if (strncmp(req->path, "/api/", 5) == 0) {
		api(a, req, res);
		return;
	}
	reply_text(res, 404, "text/plain", "404 Not Found\n");
	return;
not_allowed:
	buf_appends(&res->headers, "Allow: GET, HEAD\r\n");
	reply_text(res, 405, "text/plain", "405 Method Not Allowed\n");
}

/* --- life cycle ----------------------------------------------------------- */

static void set_token(struct admin *a, char *token)
{
	config_free_secret(a->token, a->token_len);
	a->token = token;
	a->token_len = strlen(token);
}

int admin_start(uv_loop_t *loop, const struct config *cfg, struct proxy *p,
		struct admin **out, char *err, size_t errlen)
{
	struct http_server_opts o;
	struct admin *a;
	char *token = NULL;
	int r;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->proxy = p;
	a->audit.fd = -1;
	a->started_wall_ms = clock_wall_ms();
	a->started_mono_ms = clock_mono_ms();
	r = admin_read_token(cfg->admin.token_file, &token, err, errlen);
	if (r < 0)
		goto fail;
	set_token(a, token);
	r = audit_open(&a->audit, cfg->admin.audit_log, err, errlen);
	if (r < 0)
		goto fail;
	memset(&o, 0, sizeof(o));
	o.listen = cfg->admin.listen.text;
	o.fd = -1;
	o.max_body_bytes = 1 << 20;
	r = http_server_start(loop, &o, handler, a, &a->srv, err, errlen);
	if (r < 0)
		goto fail;
	log_info("admin listening", "listen=%s audit_log=%s",
		 cfg->admin.listen.text,
		 cfg->admin.audit_log ? cfg->admin.audit_log : "-");
	*out = a;
	return 0;
fail:
	audit_close(&a->audit);
	config_free_secret(a->token, a->token_len);
	free(a);
	return r;
}

void admin_set_monitor(struct admin *a, struct probes *p, struct history *h)
{
	a->probes = p;
	a->history = h;
}

void admin_set_alerts(struct admin *a, struct alert_engine *e)
{
	a->alerts = e;
}

void admin_set_backup(struct admin *a, struct backup_sched *b)
{
	a->backup = b;
}

void admin_set_reload_hook(struct admin *a, admin_reload_hook hook, void *ud)
{
	a->reload_hook = hook;
	a->reload_ud = ud;
}

void admin_set_status_hook(struct admin *a, admin_status_hook hook, void *ud)
{
	a->hook = hook;
	a->hook_ud = ud;
}

void admin_config_changed(struct admin *a)
{
	const struct config *cfg = proxy_config(a->proxy);
	char err[512], *token;

	if (admin_read_token(cfg->admin.token_file, &token, err, sizeof(err)) < 0) {
		log_error("admin token not reloaded; the old token stays in force",
			  "err=\"%s\"", err);
	} else {
		if (strcmp(token, a->token) != 0)
			log_info("admin token changed", "file=%s",
				 cfg->admin.token_file);
		set_token(a, token);
	}
	(void)audit_set_path(&a->audit, cfg->admin.audit_log);
}

int admin_reopen_audit(struct admin *a)
{
	return audit_reopen(&a->audit);
}

void admin_audit(struct admin *a, const char *peer, const char *action,
		 const char *target, const char *result)
{
	audit_record(&a->audit, peer, action, target, result, NULL);
}

int admin_port(struct admin *a)
{
	return http_server_port(a->srv);
}

void admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	http_server_stop(a->srv);
	audit_close(&a->audit);
	config_free_secret(a->token, a->token_len);
	free(a);
}
