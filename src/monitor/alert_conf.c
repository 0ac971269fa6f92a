/*
 * alert_conf.c - from the config's monitor.alerts (core/config.h, plain
 * data the loader has already typed, bounded and checked for unique
 * names) to what the alert engine and the notifiers take (alert_conf.h).
 *
 * What is checked here and not in the loader, since core cannot link
 * monitor: selector text (alert_selector_parse), summary templates and
 * everything else alert_rule_check() and notify_channel_check() look at,
 * `defaults` names against the built-in rules, user rule names against
 * them, and password files (read here, so a reload picks up a new one).
 * Every error is one line in the loader's format, "FILE:LINE: key.path:
 * message", with the lines the loader recorded.
 *
 * Storage: every string, array, selector and SLO rule set the result
 * points into is one entry of the setup's priv list and freed with it;
 * nothing points into the struct config, which may go first. Passwords
 * are wiped before they are freed.
 *
 * Not here: starting or reloading the engine and the notifiers (the
 * caller does, with the result), reading metrics, any I/O besides the
 * password files and the current directory.
 */
#include "monitor/alert_conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* A password longer than this is a mistake (a key file, a whole PEM). */
#define PASSWORD_MAX 1024

enum own_kind {
	OWN_MEM = 0,  /* free() */
	OWN_SELECTOR, /* alert_selector_fini(), then free() */
	OWN_SECRET,   /* wiped over len bytes, then free() */
};

struct owned {
	void *p;
	enum own_kind kind;
	size_t len;
};

struct priv {
	struct owned *own;
	size_t n, cap;
};

/* One build: the config, the storage, where errors go. */
struct builder {
	const struct config *cfg;
	struct priv *priv;
	char *err;
	size_t errlen;
};

/* --- storage ------------------------------------------------------------ */

static int own(struct priv *pv, void *p, enum own_kind kind, size_t len)
{
	struct owned *o;

	if (pv->n == pv->cap) {
		size_t cap = pv->cap ? pv->cap * 2 : 64;

		o = realloc(pv->own, cap * sizeof(*o));
		if (o == NULL)
			return -ENOMEM;
		pv->own = o;
		pv->cap = cap;
	}
	pv->own[pv->n++] = (struct owned){p, kind, len};
	return 0;
}

/* n zeroed elements of size bytes, owned by pv; NULL on ENOMEM. n may be
 * 0 (one byte is taken, so NULL always means failure). */
static void *own_calloc(struct priv *pv, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		return NULL;
	if (own(pv, p, OWN_MEM, 0) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

static char *own_strdup(struct priv *pv, const char *s)
{
	size_t len = strlen(s);
	char *p = own_calloc(pv, len + 1, 1);

	if (p != NULL)
		memcpy(p, s, len);
	return p;
}

static void priv_free(struct priv *pv)
{
	if (pv == NULL)
		return;
	for (size_t i = pv->n; i-- > 0;) {
		struct owned *o = &pv->own[i];

		if (o->kind == OWN_SELECTOR)
			alert_selector_fini(o->p);
		else if (o->kind == OWN_SECRET)
			explicit_bzero(o->p, o->len);
		free(o->p);
		o->p = NULL;
	}
	free(pv->own);
	free(pv);
}

/* --- errors ------------------------------------------------------------- */

/* "FILE:LINE: path: message"; returns -EINVAL. line 0 leaves it out. */
__attribute__((format(printf, 4, 5))) static int
bfail(struct builder *b, int line, const char *path, const char *fmt, ...)
{
	char msg[768], where[32] = "";
	va_list ap;

	if (b->err == NULL || b->errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof(where), ":%d", line);
	snprintf(b->err, b->errlen, "%s%s: %s: %s", b->cfg->path, where, path,
		 msg);
	return -EINVAL;
}

/* --- pieces ------------------------------------------------------------- */

/* An enum the loader stored as an index into one of config.h's name
 * arrays, mapped by name onto monitor's enum. A name monitor does not
 * know is a bug of the tables, not of the file. */
#define MAP_ENUM(names, idx, parse, out)                                       \
	do {                                                                   \
		int rc_ = parse((names)[(idx)], (out));                        \
		SK_ASSERT(rc_ == 0);                                           \
	} while (0)

static int build_labels(struct builder *b, const struct cfg_label *in,
			size_t n, const struct metrics_label **out,
			size_t *nout)
{
	struct metrics_label *l;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	l = own_calloc(b->priv, n, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		l[i].name = own_strdup(b->priv, in[i].name);
		l[i].value = own_strdup(b->priv, in[i].value);
		if (l[i].name == NULL || l[i].value == NULL)
			return -ENOMEM;
	}
	*out = l;
	*nout = n;
	return 0;
}

/* An array of n copies of in[i].arg (cfg_arg lists). */
static int build_strv(struct builder *b, const struct cfg_arg *in, size_t n,
		      const char *const **out, size_t *nout)
{
	const char **v;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	v = own_calloc(b->priv, n + 1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if ((v[i] = own_strdup(b->priv, in[i].arg)) == NULL)
			return -ENOMEM;
	*out = v;
	*nout = n;
	return 0;
}

/* One query; path is the key path of its expr ("...rules[2].expr" or
 * "...rules[2].over.expr"). */
static int build_query(struct builder *b, const struct cfg_alert_query *cq,
		       const char *path, struct alert_query *q)
{
	struct alert_selector *sel;
	char why[256];
	int rc;

	sel = calloc(1, sizeof(*sel));
	if (sel == NULL)
		return -ENOMEM;
	if (own(b->priv, sel, OWN_MEM, 0) < 0) {
		free(sel);
		return -ENOMEM;
	}
	if (alert_selector_parse(cq->expr, sel, why, sizeof(why)) < 0)
		return bfail(b, cq->expr_line, path, "%s", why);
	/* From now on the selector's own storage is freed with the setup. */
	b->priv->own[b->priv->n - 1].kind = OWN_SELECTOR;
	if (sel->metric == NULL)
		return bfail(b, cq->expr_line, path,
			     "needs a metric name before the matchers, e.g. "
			     "storekeep_backend_up{pool=\"shop\"}");
	memset(q, 0, sizeof(*q));
	q->metric = sel->metric;
	q->matchers = sel->matchers;
	q->nmatchers = sel->nmatchers;
	MAP_ENUM(config_alert_fn_names, cq->fn, alert_fn_parse, &q->fn);
	q->window_ms = cq->window_ms;
	q->q = cq->q;
	q->horizon_ms = cq->horizon_ms;
	q->le = cq->le;
	MAP_ENUM(config_alert_group_names, cq->group, alert_group_parse,
		 &q->group);
	rc = build_strv(b, cq->by, cq->nby, &q->by, &q->nby);
	return rc;
}

/*
 * alert_rule_check() on r; its message goes to the rule's path. When the
 * rule passes without its summary, the summary is what is wrong, and the
 * message points at that key instead.
 */
static int check_rule(struct builder *b, const struct alert_rule *r,
		      const char *path, int line, int summary_line)
{
	struct alert_rule bare;
	char why[512], key[160];

	if (alert_rule_check(r, why, sizeof(why)) == 0)
		return 0;
	bare = *r;
	bare.summary = NULL;
	if (r->summary != NULL && alert_rule_check(&bare, NULL, 0) == 0) {
		snprintf(key, sizeof(key), "%s.summary", path);
		return bfail(b, summary_line, key, "%s", why);
	}
	return bfail(b, line, path, "%s", why);
}

static void known_defaults(const struct alert_rule *rules, size_t n,
			   char *out, size_t outlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < n && o < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%s",
				      i ? ", " : "", rules[i].name);
}

static int apply_defaults(struct builder *b, struct alert_rule *rules,
			  size_t ndef)
{
	const struct cfg_alerts *a = &b->cfg->monitor.alerts;
	char path[160], known[512];
	int rc;

	for (size_t i = 0; i < a->ndefaults; i++) {
		const struct cfg_alert_default *d = &a->defaults[i];
		struct alert_rule *r = NULL;

		snprintf(path, sizeof(path), "monitor.alerts.defaults.%s",
			 d->name);
		for (size_t j = 0; j < ndef; j++)
			if (strcmp(rules[j].name, d->name) == 0)
				r = &rules[j];
		if (r == NULL) {
			known_defaults(rules, ndef, known, sizeof(known));
			return bfail(b, d->line, path,
				     "no built-in rule of that name (they are "
				     "%s)",
				     known);
		}
		if (d->set & CFG_ALERT_SET_ENABLED)
			r->disabled = !d->enabled;
		if (d->set & CFG_ALERT_SET_THRESHOLD)
			r->threshold = d->threshold;
		if (d->set & CFG_ALERT_SET_SEVERITY)
			MAP_ENUM(config_alert_severity_names, d->severity,
				 alert_severity_parse, &r->severity);
		if (d->set & CFG_ALERT_SET_FOR)
			r->for_ms = d->for_ms;
		if (d->set & CFG_ALERT_SET_KEEP_FIRING_FOR)
			r->keep_firing_for_ms = d->keep_firing_for_ms;
		if (d->set & CFG_ALERT_SET_REPEAT)
			r->repeat_ms = d->repeat_ms;
		if (d->set & CFG_ALERT_SET_LABELS) {
			rc = build_labels(b, d->labels, d->nlabels, &r->labels,
					  &r->nlabels);
			if (rc < 0)
				return rc;
		}
		if ((d->set & CFG_ALERT_SET_SUMMARY) &&
		    (r->summary = own_strdup(b->priv, d->summary)) == NULL)
			return -ENOMEM;
		rc = check_rule(b, r, path, d->line, d->line);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int build_rule(struct builder *b, size_t idx,
		      const struct alert_rule *defs, size_t ndef,
		      struct alert_rule *r)
{
	const struct cfg_alert_rule *cr = &b->cfg->monitor.alerts.rules[idx];
	char path[128], key[160];
	int rc;

	snprintf(path, sizeof(path), "monitor.alerts.rules[%zu]", idx);
	for (size_t j = 0; j < ndef; j++) {
		if (strcmp(defs[j].name, cr->name) != 0)
			continue;
		snprintf(key, sizeof(key), "%s.name", path);
		return bfail(b, cr->line, key,
			     "\"%s\" is a built-in rule; retune it under "
			     "monitor.alerts.defaults instead",
			     cr->name);
	}
	memset(r, 0, sizeof(*r));
	if ((r->name = own_strdup(b->priv, cr->name)) == NULL)
		return -ENOMEM;
	r->disabled = !cr->enabled;
	r->kind = ALERT_RULE_THRESHOLD;
	snprintf(key, sizeof(key), "%s.expr", path);
	if ((rc = build_query(b, &cr->expr, key, &r->expr)) < 0)
		return rc;
	if (cr->plus.set) {
		snprintf(key, sizeof(key), "%s.plus.expr", path);
		if ((rc = build_query(b, &cr->plus, key, &r->plus)) < 0)
			return rc;
	}
	if (cr->over.set) {
		snprintf(key, sizeof(key), "%s.over.expr", path);
		if ((rc = build_query(b, &cr->over, key, &r->over)) < 0)
			return rc;
	}
	MAP_ENUM(config_alert_op_names, cr->op, alert_op_parse, &r->op);
	r->threshold = cr->threshold;
	r->for_ms = cr->for_ms;
	r->keep_firing_for_ms = cr->keep_firing_for_ms;
	r->repeat_ms = cr->repeat_ms;
	MAP_ENUM(config_alert_severity_names, cr->severity,
		 alert_severity_parse, &r->severity);
	if ((rc = build_labels(b, cr->labels, cr->nlabels, &r->labels,
			       &r->nlabels)) < 0)
		return rc;
	if (cr->summary != NULL &&
	    (r->summary = own_strdup(b->priv, cr->summary)) == NULL)
		return -ENOMEM;
	return check_rule(b, r, path, cr->line, cr->summary_line);
}

/* The burn-rate rules of SLO idx, appended at rules + *n. */
static int build_slo(struct builder *b, size_t idx, struct alert_rule *rules,
		     size_t *n)
{
	const struct cfg_slo *cs = &b->cfg->monitor.alerts.slos[idx];
	struct alert_burn_window *w = NULL;
	struct alert_slo_rules *o;
	struct alert_slo slo;
	char path[128], why[512];
	int rc;

	snprintf(path, sizeof(path), "monitor.alerts.slos[%zu]", idx);
	/* The route label is a route's name, or "default" without routes:
	 * an SLO on anything else would never have data. */
	{
		const struct config *cfg = b->cfg;
		bool found = cfg->nroutes == 0 && strcmp(cs->route, "default") == 0;

		for (size_t i = 0; i < cfg->nroutes && !found; i++)
			found = strcmp(cfg->routes[i].name, cs->route) == 0;
		if (!found) {
			char p2[160];

			snprintf(p2, sizeof(p2), "%s.route", path);
			return bfail(b, cs->line, p2,
				     "there is no route named \"%s\"%s", cs->route,
				     cfg->nroutes ? ""
						  : " (without routes, every "
						    "request is on route "
						    "\"default\")");
		}
	}
	memset(&slo, 0, sizeof(slo));
	slo.name = own_strdup(b->priv, cs->name);
	slo.route = own_strdup(b->priv, cs->route);
	if (slo.name == NULL || slo.route == NULL)
		return -ENOMEM;
	slo.objective = cs->objective;
	slo.latency_s = (double)cs->latency_ms / 1000.0;
	if (cs->nwindows > 0) {
		w = own_calloc(b->priv, cs->nwindows, sizeof(*w));
		if (w == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < cs->nwindows; i++) {
			w[i].long_ms = cs->windows[i].long_ms;
			w[i].short_ms = cs->windows[i].short_ms;
			w[i].factor = cs->windows[i].factor;
			w[i].for_ms = cs->windows[i].for_ms;
			MAP_ENUM(config_alert_severity_names,
				 cs->windows[i].severity, alert_severity_parse,
				 &w[i].severity);
		}
		slo.windows = w;
		slo.nwindows = cs->nwindows;
	}
	if ((rc = build_labels(b, cs->labels, cs->nlabels, &slo.labels,
			       &slo.nlabels)) < 0)
		return rc;
	/* The rules point into o and into slo's strings (owned above); the
	 * struct alert_slo itself may go. */
	o = own_calloc(b->priv, 1, sizeof(*o));
	if (o == NULL)
		return -ENOMEM;
	if (alert_slo_rules(&slo, o, why, sizeof(why)) < 0)
		return bfail(b, cs->line, path, "%s", why);
	for (size_t i = 0; i < o->nrules; i++) {
		if ((rc = check_rule(b, &o->rules[i], path, cs->line,
				     cs->line)) < 0)
			return rc;
		rules[(*n)++] = o->rules[i];
	}
	return 0;
}

/*
 * The password in path: a regular file that only its owner can read or
 * write (as the admin token file), one line, its newline dropped. The
 * copy is owned as a secret, wiped when the setup is freed.
 */
static int read_password(struct builder *b, const char *path, int line,
			 const char *key, const char **out)
{
	char why[PATH_MAX * 2 + 128];
	char *pw;
	size_t n;
	int rc;

	rc = config_read_secret(path, "password", PASSWORD_MAX, &pw, &n, why,
				sizeof(why));
	if (rc < 0)
		return rc == -ENOMEM ? rc : bfail(b, line, key, "%s", why);
	if (n == 0 || memchr(pw, '\n', n) != NULL || memchr(pw, '\0', n) != NULL) {
		config_free_secret(pw, n);
		return bfail(b, line, key,
			     "%s must hold the password on one line", path);
	}
	if (own(b->priv, pw, OWN_SECRET, n + 1) < 0) {
		config_free_secret(pw, n);
		return -ENOMEM;
	}
	*out = pw;
	return 0;
}

static int build_channel(struct builder *b, size_t idx,
			 struct notify_channel *c)
{
	const struct cfg_notifier *cn = &b->cfg->monitor.alerts.notifiers[idx];
	char path[128], key[160], why[512];
	int rc;

#define DUP(dst, src)                                                          \
	do {                                                                   \
		if ((src) != NULL &&                                           \
		    ((dst) = own_strdup(b->priv, (src))) == NULL)              \
			return -ENOMEM;                                        \
	} while (0)

	snprintf(path, sizeof(path), "monitor.alerts.notifiers[%zu]", idx);
	memset(c, 0, sizeof(*c));
	DUP(c->name, cn->name);
	MAP_ENUM(config_notify_type_names, cn->type, notify_type_parse,
		 &c->type);
	DUP(c->min_severity, config_alert_severity_names[cn->min_severity]);
	c->skip_resolved = !cn->send_resolved;
	c->timeout_ms = cn->timeout_ms;
	c->max_attempts = cn->max_attempts;
	c->backoff_ms = cn->backoff_ms;
	c->backoff_max_ms = cn->backoff_max_ms;
	c->queue_max = cn->queue;
	DUP(c->url, cn->url);
	DUP(c->ca_file, cn->ca_file);
	MAP_ENUM(config_notify_format_names, cn->format, notify_format_parse,
		 &c->format);
	if ((rc = build_strv(b, cn->headers, cn->nheaders, &c->headers,
			     &c->nheaders)) < 0)
		return rc;
	c->resend_ms = cn->resend_ms;
	MAP_ENUM(config_notify_tls_names, cn->tls, notify_tls_parse, &c->tls);
	DUP(c->username, cn->username);
	DUP(c->from, cn->from);
	if ((rc = build_strv(b, cn->to, cn->nto, &c->to, &c->nto)) < 0)
		return rc;
	DUP(c->subject_prefix, cn->subject_prefix);
	if ((rc = build_strv(b, cn->command, cn->ncommand, &c->argv,
			     &c->nargv)) < 0)
		return rc;
#undef DUP
	if (cn->password_file != NULL) {
		snprintf(key, sizeof(key), "%s.password_file", path);
		rc = read_password(b, cn->password_file, cn->password_file_line,
				   key, &c->password);
		if (rc < 0)
			return rc;
	}
	if (notify_channel_check(c, why, sizeof(why)) < 0)
		return bfail(b, cn->line, path, "%s", why);
	return 0;
}

/*
 * The state file as an absolute path. The default is relative to the
 * directory of the config file (cfg_path); a path the file wrote was
 * resolved against that directory by the loader, so if it is still
 * relative, the directory was relative too (a config loaded from a
 * string): both are then taken from the current directory.
 */
static int resolve_state_path(struct builder *b, char **out)
{
	const struct cfg_alerts *a = &b->cfg->monitor.alerts;
	const char *cfg_path = b->cfg->path, *p = a->state_path;
	const char *slash = strrchr(cfg_path, '/');
	char *cwd = NULL, *r;
	int dlen = slash ? (int)(slash - cfg_path) : 0;
	int n;

	if (p[0] == '/') {
		*out = own_strdup(b->priv, p);
		return *out ? 0 : -ENOMEM;
	}
	if (a->state_path_set)
		slash = NULL;
	if (slash == NULL || cfg_path[0] != '/') {
		cwd = getcwd(NULL, 0);
		if (cwd == NULL)
			return bfail(b, 0, "monitor.alerts.state_path",
				     "cannot get the current directory: %s",
				     strerror(errno));
	}
	if (cwd != NULL && slash != NULL)
		n = asprintf(&r, "%s/%.*s/%s", cwd, dlen, cfg_path, p);
	else if (cwd != NULL)
		n = asprintf(&r, "%s/%s", cwd, p);
	else
		n = asprintf(&r, "%.*s/%s", dlen, cfg_path, p);
	free(cwd);
	if (n < 0)
		return -ENOMEM;
	if (own(b->priv, r, OWN_MEM, 0) < 0) {
		free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

int alert_setup_build(const struct config *cfg, struct alert_setup **out,
		      char *err, size_t errlen)
{
	const struct cfg_alerts *a = &cfg->monitor.alerts;
	struct builder b = {.cfg = cfg, .err = err, .errlen = errlen};
	struct notify_channel *ch;
	struct alert_setup *s;
	size_t ndef, max, n = 0;
	int rc = -ENOMEM;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		goto nomem;
	s->priv = b.priv = calloc(1, sizeof(*b.priv));
	if (b.priv == NULL)
		goto nomem;
	s->enabled = a->enabled != 0;
	s->interval_ms = a->interval_ms;
	s->resolved_keep_ms = a->resolved_keep_ms;
	if ((rc = resolve_state_path(&b, &s->state_path)) < 0)
		goto fail;
	rc = -ENOMEM;
	if (a->external_url != NULL &&
	    (s->external_url = own_strdup(b.priv, a->external_url)) == NULL)
		goto nomem;

	ndef = alert_default_rules(NULL, 0);
	max = ndef + a->nrules + a->nslos * ALERT_SLO_WINDOWS_MAX;
	s->rules = own_calloc(b.priv, max, sizeof(*s->rules));
	if (s->rules == NULL)
		goto nomem;
	n = alert_default_rules(s->rules, ndef);
	if ((rc = apply_defaults(&b, s->rules, ndef)) < 0)
		goto fail;
	for (size_t i = 0; i < a->nrules; i++, n++)
		if ((rc = build_rule(&b, i, s->rules, ndef, &s->rules[n])) < 0)
			goto fail;
	for (size_t i = 0; i < a->nslos; i++)
		if ((rc = build_slo(&b, i, s->rules, &n)) < 0)
			goto fail;
	SK_ASSERT(n <= max);
	s->nrules = n;

	ch = own_calloc(b.priv, a->nnotifiers, sizeof(*ch));
	if (ch == NULL)
		goto nomem;
	for (size_t i = 0; i < a->nnotifiers; i++)
		if ((rc = build_channel(&b, i, &ch[i])) < 0)
			goto fail;
	s->notify.channels = ch;
	s->notify.nchannels = a->nnotifiers;
	s->notify.max_inflight = a->max_inflight;
	*out = s;
	return 0;

nomem:
	rc = -ENOMEM;
fail:
	if (rc == -ENOMEM && err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: monitor.alerts: out of memory",
			 cfg->path);
	alert_setup_free(s);
	return rc;
}

void alert_setup_free(struct alert_setup *s)
{
	if (s == NULL)
		return;
	priv_free(s->priv);
	s->priv = NULL;
	free(s);
}
