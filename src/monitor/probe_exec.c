/*
 * probe_exec.c - the nagios probe: runs a Nagios-compatible plugin and
 * reads its exit status and output; and the plugin output parser.
 *
 * The plugin is spawned with uv_spawn, straight from its argv (no shell),
 * stdin closed, stdout and stderr on pipes, in a new session so that it
 * leads a process group of its own: at the timeout the whole group gets
 * SIGKILL, so a plugin's own children (a check_by_ssh's ssh, a script's
 * subprocesses) go with it. The result is taken when the plugin has
 * exited and both pipes are at their end; a plugin that exits while
 * something it started keeps the pipes open is judged at the deadline on
 * what it wrote. Exit status 0, 1, 2, 3 map to ok, warning, critical,
 * unknown; anything else, death by a signal, or a plugin that cannot be
 * run is unknown, as in Nagios.
 *
 * Performance data becomes storekeep_nagios_perf{probe,label,uom}, the
 * value as the plugin printed it (no unit conversion), at most
 * PROBE_PERF_SERIES_MAX series per probe (a plugin that makes up new
 * labels on every run would otherwise fill the registry).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "monitor/monitor_int.h"
#include "monitor/probe_int.h"

/* --- the output parser --------------------------------------------------- */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	       c == '\f';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A decimal number filling s[0..n) exactly: [+-]digits[.digits][e[+-]digits]
 * with at least one digit before the exponent. */
static bool number(const char *s, size_t n, double *out)
{
	char tmp[64];
	size_t i = 0, digits = 0;

	if (n == 0 || n >= sizeof(tmp))
		return false;
	if (s[i] == '+' || s[i] == '-')
		i++;
	while (i < n && is_digit(s[i]))
		i++, digits++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i]))
			i++, digits++;
	}
	if (!digits)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = ++i;

		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++, e++;
		while (i < n && is_digit(s[i]))
			i++;
		if (i == e)
			return false;
	}
	if (i != n)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	*out = strtod(tmp, NULL);
	return true;
}

/* Length of the leading number of s[0..n) (as number() would accept it,
 * the exponent only when digits follow). */
static size_t number_len(const char *s, size_t n)
{
	size_t i = 0;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	while (i < n && (is_digit(s[i]) || s[i] == '.'))
		i++;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t j = i + 1;

		if (j < n && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j < n && is_digit(s[j])) {
			while (j < n && is_digit(s[j]))
				j++;
			i = j;
		}
	}
	return i;
}

static bool uom_ok(const char *s, size_t n)
{
	if (n > NAGIOS_UOM_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '%'))
			return false;
	return true;
}

static bool range_ok(const char *s, size_t n)
{
	if (n > NAGIOS_RANGE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(is_digit(s[i]) || strchr("+-.:~@eE", s[i])))
			return false;
	return true;
}

/*
 * Parses one item at s[0..n) (n > 0, s[0] not blank) into *pf. Returns the
 * bytes it spans (an item ends at a blank outside quotes), and sets *ok.
 */
static size_t perf_item(const char *s, size_t n, struct nagios_perf *pf,
			bool *ok)
{
	size_t i = 0, ll = 0, f0, fn[8], fs[8], nf = 0;

	*ok = false;
	memset(pf, 0, sizeof(*pf));
	if (s[0] == '\'') {
		for (i = 1; i < n; i++) {
			if (s[i] == '\'') {
				if (i + 1 < n && s[i + 1] == '\'') {
					if (ll < NAGIOS_LABEL_MAX)
						pf->label[ll] = '\'';
					ll++;
					i++;
					continue;
				}
				break;
			}
			if (ll < NAGIOS_LABEL_MAX)
				pf->label[ll] = s[i];
			ll++;
		}
		if (i >= n) /* unterminated quote: the rest is lost */
			return n;
		i++;
	} else {
		for (; i < n && s[i] != '=' && !is_ws(s[i]); i++) {
			if (ll < NAGIOS_LABEL_MAX)
				pf->label[ll] = s[i];
			ll++;
		}
	}
	if (i >= n || s[i] != '=' || ll == 0 || ll > NAGIOS_LABEL_MAX)
		goto skip;
	pf->label[ll] = '\0';
	prom_utf8_fix(pf->label);
	i++;
	/* value[UOM];warn;crit;min;max - split on ';' up to the next blank */
	f0 = i;
	while (i < n && !is_ws(s[i])) {
		if (s[i] == ';') {
			if (nf == 7)
				goto skip;
			fs[nf] = f0;
			fn[nf++] = i - f0;
			f0 = i + 1;
		}
		i++;
	}
	fs[nf] = f0;
	fn[nf++] = i - f0;
	/* Trailing empty fields past max ("0;15;30;0;100;") are tolerated. */
	while (nf > 5 && fn[nf - 1] == 0)
		nf--;
	if (nf > 5)
		goto skip;
	{
		const char *v = s + fs[0];
		size_t vn = fn[0], numl;

		if (vn >= 1 && v[0] == 'U' && (vn == 1 || uom_ok(v + 1, vn - 1))) {
			pf->value = NAN;
			numl = 1;
		} else {
			numl = number_len(v, vn);
			if (!number(v, numl, &pf->value))
				goto skip;
		}
		if (!uom_ok(v + numl, vn - numl))
			goto skip;
		memcpy(pf->uom, v + numl, vn - numl);
		pf->uom[vn - numl] = '\0';
	}
	pf->min = NAN;
	pf->max = NAN;
	for (size_t k = 1; k < nf; k++) {
		const char *v = s + fs[k];

		if (k <= 2) {
			if (!range_ok(v, fn[k]))
				goto skip;
			memcpy(k == 1 ? pf->warn : pf->crit, v, fn[k]);
			(k == 1 ? pf->warn : pf->crit)[fn[k]] = '\0';
		} else if (fn[k] && !number(v, fn[k], k == 3 ? &pf->min
							      : &pf->max)) {
			goto skip;
		}
	}
	*ok = true;
	return i;
skip:
	while (i < n && !is_ws(s[i]))
		i++;
	return i;
}

static void perf_parse(const char *s, size_t n, struct nagios_output *out)
{
	size_t i = 0;

	while (i < n) {
		struct nagios_perf pf;
		bool ok;

		if (is_ws(s[i])) {
			i++;
			continue;
		}
		i += perf_item(s + i, n - i, &pf, &ok);
		if (!ok)
			out->bad++;
		else if (out->nperf < NAGIOS_PERF_MAX)
			out->perf[out->nperf++] = pf;
		else
			out->dropped++;
	}
}

void nagios_output_parse(const char *s, size_t len, struct nagios_output *out)
{
	const char *nul = memchr(s, '\0', len), *eol, *bar, *t;
	size_t l1, tl;

	memset(out, 0, sizeof(*out));
	if (nul)
		len = (size_t)(nul - s);
	eol = memchr(s, '\n', len);
	l1 = eol ? (size_t)(eol - s) : len;
	bar = memchr(s, '|', l1);
	t = s;
	tl = bar ? (size_t)(bar - s) : l1;
	while (tl && is_ws(*t))
		t++, tl--;
	while (tl && is_ws(t[tl - 1]))
		tl--;
	if (tl > NAGIOS_TEXT_MAX)
		tl = NAGIOS_TEXT_MAX;
	memcpy(out->text, t, tl);
	out->text[tl] = '\0';
	prom_utf8_fix(out->text);
	if (bar)
		perf_parse(bar + 1, l1 - (size_t)(bar + 1 - s), out);
	if (eol) {
		const char *rest = eol + 1;
		size_t rl = len - (size_t)(rest - s);
		const char *bar2 = memchr(rest, '|', rl);

		if (bar2)
			perf_parse(bar2 + 1, rl - (size_t)(bar2 + 1 - rest),
				   out);
	}
}

/* --- metrics of the perf data --------------------------------------------- */

static struct metrics_gauge *perf_gauge(struct probe *p, const char *label,
					const char *uom)
{
	struct metrics_label lab[3] = {
		{"probe", p->name}, {"label", label}, {"uom", uom}};
	struct metrics_desc d = {
		.name = "storekeep_nagios_perf",
		.help = "Performance data of a nagios probe's last run, as the "
			"plugin printed it (unit in uom).",
		.labels = lab,
		.nlabels = 3,
	};
	struct perf_gauge *pg;
	int r;

	for (size_t i = 0; i < p->nm_perf; i++)
		if (strcmp(p->m_perf[i].label, label) == 0 &&
		    strcmp(p->m_perf[i].uom, uom) == 0)
			return &p->m_perf[i].g;
	if (p->nm_perf >= PROBE_PERF_SERIES_MAX) {
		if (!p->perf_full_logged)
			log_warn("nagios probe has too many perf data series; "
				 "new labels are ignored",
				 "probe=%s max=%d", p->name,
				 PROBE_PERF_SERIES_MAX);
		p->perf_full_logged = true;
		return NULL;
	}
	pg = realloc(p->m_perf, (p->nm_perf + 1) * sizeof(*pg));
	SK_ASSERT(pg != NULL);
	p->m_perf = pg;
	pg = &p->m_perf[p->nm_perf];
	memset(pg, 0, sizeof(*pg));
	r = metrics_gauge_reg(p->owner->reg, &d, &pg->g);
	if (r) {
		log_warn("nagios perf data not registered",
			 "probe=%s label=%s err=%s", p->name, label,
			 probe_strerror(r));
		return NULL;
	}
	pg->label = strdup(label);
	pg->uom = strdup(uom);
	SK_ASSERT(pg->label && pg->uom);
	p->nm_perf++;
	return &pg->g;
}

static void nagios_clear(struct probe *p)
{
	for (size_t i = 0; i < p->nm_perf; i++)
		probe_set(p, p->m_perf[i].g, NAN);
}

static json_t *num_or_null(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

/* --- the run ----------------------------------------------------------------- */

static void exec_judge(struct prun *r)
{
	struct probe *p = r->p;
	struct exec_run *x = &r->u.exec;
	struct nagios_output *o;
	enum probe_state st;
	json_t *d = json_object(), *perf = json_array();
	char text[NAGIOS_TEXT_MAX + 64];

	if (r->done)
		return;
	o = malloc(sizeof(*o));
	SK_ASSERT(o != NULL);
	nagios_output_parse(x->obuf.data ? x->obuf.data : "", x->obuf.len, o);
	if (o->text[0] == '\0' && x->ebuf.len) {
		/* No output: a plugin that failed to start says why on
		 * stderr ("error while loading shared libraries"). */
		struct nagios_output *e = malloc(sizeof(*e));

		SK_ASSERT(e != NULL);
		nagios_output_parse(x->ebuf.data, x->ebuf.len, e);
		snprintf(o->text, sizeof(o->text), "%s", e->text);
		free(e);
	}
	for (size_t i = 0; i < o->nperf; i++) {
		const struct nagios_perf *pf = &o->perf[i];
		struct metrics_gauge *g = perf_gauge(p, pf->label, pf->uom);
		json_t *j = json_object();

		if (g)
			probe_set(p, *g, pf->value);
		json_object_set_new(j, "label", json_string(pf->label));
		json_object_set_new(j, "value", num_or_null(pf->value));
		json_object_set_new(j, "uom", json_string(pf->uom));
		json_object_set_new(j, "warn", json_string(pf->warn));
		json_object_set_new(j, "crit", json_string(pf->crit));
		json_object_set_new(j, "min", num_or_null(pf->min));
		json_object_set_new(j, "max", num_or_null(pf->max));
		json_array_append_new(perf, j);
	}
	json_object_set_new(d, "perf", perf);
	if (o->bad)
		json_object_set_new(d, "perf_malformed",
				    json_integer((json_int_t)o->bad));
	snprintf(text, sizeof(text), "%s", o->text[0] ? o->text : "(no output)");
	if (x->term_signal) {
		json_object_set_new(d, "signal", json_integer(x->term_signal));
		st = PROBE_UNKNOWN;
		prun_finish(r, st, d, "killed by signal %d: %s", x->term_signal,
			    text);
	} else if (x->exit_status >= 0 && x->exit_status <= 3) {
		json_object_set_new(d, "exit_code",
				    json_integer((json_int_t)x->exit_status));
		prun_finish(r, (enum probe_state)x->exit_status, d, "%s", text);
	} else {
		json_object_set_new(d, "exit_code",
				    json_integer((json_int_t)x->exit_status));
		prun_finish(r, PROBE_UNKNOWN, d,
			    "exit status %lld is not 0..3: %s",
			    (long long)x->exit_status, text);
	}
	free(o);
}

static void handle_closed_cb(uv_handle_t *h)
{
	prun_release(h->data);
}

static void pipe_close(struct prun *r, uv_pipe_t *pp, bool *open)
{
	if (*open && !uv_is_closing((uv_handle_t *)pp))
		uv_close((uv_handle_t *)pp, handle_closed_cb);
	*open = false;
}

static void exec_maybe_done(struct prun *r)
{
	struct exec_run *x = &r->u.exec;

	if (x->exited && x->out_eof && x->err_eof && !x->killed)
		exec_judge(r);
}

static void exit_cb(uv_process_t *proc, int64_t status, int sig)
{
	struct prun *r = proc->data;
	struct exec_run *x = &r->u.exec;

	x->exited = true;
	x->exit_status = status;
	x->term_signal = sig;
	uv_close((uv_handle_t *)proc, handle_closed_cb);
	exec_maybe_done(r);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct prun *r = h->data;
	struct exec_run *x = &r->u.exec;
	struct buf *into = (uv_pipe_t *)h == &x->out ? &x->obuf : &x->ebuf;
	size_t cap = (uv_pipe_t *)h == &x->out ? PROBE_EXEC_OUT_MAX
					       : PROBE_EXEC_ERR_MAX;
	static char sink[4096];

	(void)suggested;
	/* Past the cap, read into a sink so the plugin never blocks on a
	 * full pipe. */
	if (into->len >= cap || buf_reserve(into, 4096) < 0) {
		b->base = sink;
		b->len = sizeof(sink);
		return;
	}
	b->base = into->data + into->len;
	b->len = into->cap - into->len;
	if (b->len > cap - into->len)
		b->len = cap - into->len;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct prun *r = s->data;
	struct exec_run *x = &r->u.exec;
	bool is_out = (uv_pipe_t *)s == &x->out;
	struct buf *into = is_out ? &x->obuf : &x->ebuf;

	if (n > 0) {
		if (into->data && b->base == into->data + into->len)
			into->len += (size_t)n;
		return;
	}
	if (n == 0)
		return;
	/* EOF or an error: this pipe is done. */
	if (is_out) {
		x->out_eof = true;
		pipe_close(r, &x->out, &x->out_open);
	} else {
		x->err_eof = true;
		pipe_close(r, &x->err, &x->err_open);
	}
	exec_maybe_done(r);
}

static void exec_start(struct prun *r)
{
	struct probe *p = r->p;
	struct exec_run *x = &r->u.exec;
	uv_loop_t *loop = p->owner->loop;
	uv_process_options_t o;
	uv_stdio_container_t io[3];
	int e;

	buf_init(&x->obuf);
	buf_init(&x->ebuf);
	uv_pipe_init(loop, &x->out, 0);
	uv_pipe_init(loop, &x->err, 0);
	x->out.data = r;
	x->err.data = r;
	x->out_open = x->err_open = true;
	prun_hold(r);
	prun_hold(r);
	memset(&o, 0, sizeof(o));
	io[0].flags = UV_IGNORE;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&x->out;
	io[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[2].data.stream = (uv_stream_t *)&x->err;
	o.file = p->argv[0];
	o.args = p->argv;
	o.exit_cb = exit_cb;
	/* A new session: the plugin leads its own process group, which
	 * the timeout kills as a whole. */
	o.flags = UV_PROCESS_DETACHED;
	o.stdio = io;
	o.stdio_count = 3;
	x->proc.data = r;
	prun_hold(r);
	e = uv_spawn(loop, &x->proc, &o);
	if (e) {
		/* The handle is initialised even when the spawn fails. */
		uv_close((uv_handle_t *)&x->proc, handle_closed_cb);
		pipe_close(r, &x->out, &x->out_open);
		pipe_close(r, &x->err, &x->err_open);
		prun_finish(r, PROBE_UNKNOWN, NULL, "cannot run %s: %s",
			    p->argv[0], uv_strerror(e));
		return;
	}
	x->pid = x->proc.pid;
	if (uv_read_start((uv_stream_t *)&x->out, alloc_cb, read_cb) != 0) {
		x->out_eof = true;
		pipe_close(r, &x->out, &x->out_open);
	}
	if (uv_read_start((uv_stream_t *)&x->err, alloc_cb, read_cb) != 0) {
		x->err_eof = true;
		pipe_close(r, &x->err, &x->err_open);
	}
}

static void exec_abort(struct prun *r, struct buf *why)
{
	struct exec_run *x = &r->u.exec;

	if (x->exited) {
		/* It exited, but something it started holds the pipes:
		 * judge what it said, and take its group down. */
		exec_judge(r);
		if (x->pid > 0)
			(void)uv_kill(-x->pid, SIGKILL);
	} else if (x->pid > 0) {
		x->killed = true;
		(void)uv_kill(-x->pid, SIGKILL);
		buf_appends(why, "(plugin killed)");
	}
	pipe_close(r, &x->out, &x->out_open);
	pipe_close(r, &x->err, &x->err_open);
}

const struct probe_kind probe_kind_nagios = {
	.name = "nagios",
	.start = exec_start,
	.abort = exec_abort,
	.clear = nagios_clear,
};
