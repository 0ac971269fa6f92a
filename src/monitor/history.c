/*
 * history.c - the in-memory hour, downsampling into rows, the writer
 * schedule and queries (see history.h for the contract; the SQLite side
 * is history_db.c).
 *
 * Time. All series share one clock: cur_sec, the latest second recorded,
 * and the current minute and hour windows. A record for a later second
 * first closes the windows it leaves (advance()): every series with
 * samples in the closed minute becomes a minute row in the next batch
 * and is folded into its hour aggregate; a closed hour becomes hour rows.
 * So a series' window aggregates always belong to the current windows.
 *
 * Rings. Slot t % 3600 holds second t. A slot is read only for
 * last_sec - 3600 < t <= last_sec, and slots skipped between two records
 * are set to NaN, so a stale slot is never read as a new second.
 *
 * Histograms. Each registry histogram has a struct hsrc: snapshots of the
 * merged histogram at the previous sample, at the start of the current
 * minute and at the start of the current hour (the previous sample's
 * snapshot when the window opened, so a window covers the observations
 * between its first and last samples plus those just before its first).
 * A second's quantiles come from cur - prev, a window's exact quantiles
 * from prev - start when it closes. A histogram seen at the first sample
 * takes that state as its baseline (no value for that second); one
 * registered later starts from zero, as the registry's own did.
 *
 * Writing. One batch at a time goes to a pool thread; rows made
 * meanwhile wait in the next batch (at most HROWS_MAX; beyond that new
 * rows are dropped and counted, which only happens when the disk stalls
 * for hours).
 */
#include "monitor/history.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "monitor/hist.h"
#include "monitor/history_int.h"
#include "monitor/monitor_int.h"

#define RING HISTORY_MEMORY_SECONDS
#define HROWS_MAX (1u << 20)
#define NQ 4

static const double quantiles[NQ] = {0.5, 0.9, 0.99, 0.999};
static const char *const quantile_text[NQ] = {"0.5", "0.9", "0.99", "0.999"};
static const char *const level_names[] = {"minute", "hour"};

struct hsrc {
	uint32_t idx;
	double scale; /* 10^-decimals */
	struct hist *prev, *min_start, *hour_start;
	bool primed;	   /* prev holds a real sample */
	bool baseline_cur; /* seen at the first sample: start from there */
	double wq[NQ];	   /* exact quantiles of the window just closed */
	struct hseries *count, *sum, *q[NQ];
};

struct hmap {
	int type; /* enum metrics_type */
	uint32_t idx;
	double scale;
	struct hseries *s;
	struct hsrc *src;
};

struct waiter {
	struct waiter *next;
	uint64_t target; /* batches completed when it may go */
	void (*done)(void *ud);
	void *ud;
};

struct history {
	uv_loop_t *loop;
	struct hdb *db;
	char *path;
	uint64_t minute_ret_s, hour_ret_s, max_bytes;

	struct hseries **all;
	size_t nall, capall;
	struct hseries **tab; /* chained by key */
	size_t tabcap;
	size_t left_out;
	bool full_logged;

	struct metrics *reg;
	size_t reg_seen; /* metrics_series_count at the last map build */
	struct hmap *map;
	size_t nmap;
	struct hsrc **srcs;
	size_t nsrcs;
	struct hist *cur, *diff;
	bool sampled_once;
	int64_t last_sample_sec;

	int64_t cur_sec; /* -1 before the first record */
	int64_t first_sec;
	int64_t minute_ts, hour_ts;
	int64_t last_prune_sec;
	bool prune_due;

	struct hbatch *next, *inflight;
	uv_work_t work;
	uint64_t submitted, completed;
	struct waiter *waiters;

	bool closing;
	void (*close_done)(void *ud);
	void *close_ud;

	uint64_t rows_written, rows_dropped, rows_pruned, write_errors;
	char last_error[300];
	double db_bytes, last_write_s;
};

/* --- small helpers -------------------------------------------------------------- */

static int64_t floor_to(int64_t t, int64_t w)
{
	return t - ((t % w) + w) % w;
}

static void agg_add(struct hagg *a, double v)
{
	if (a->n == 0) {
		a->min = a->max = v;
		a->sum = 0;
	}
	if (v < a->min)
		a->min = v;
	if (v > a->max)
		a->max = v;
	a->sum += v;
	a->last = v;
	a->n++;
}

/* Folds a window aggregate into a longer one. */
static void agg_fold(struct hagg *into, const struct hagg *a)
{
	if (a->n == 0)
		return;
	if (into->n == 0) {
		*into = *a;
		return;
	}
	if (a->min < into->min)
		into->min = a->min;
	if (a->max > into->max)
		into->max = a->max;
	into->sum += a->sum;
	into->last = a->last;
	into->n += a->n;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	SK_ASSERT(d != NULL);
	return d;
}

/* --- labels ----------------------------------------------------------------------- */

void hlabels_free(struct hlabel *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].name);
		free(l[i].value);
	}
	free(l);
}

static int label_cmp(const void *a, const void *b)
{
	const struct hlabel *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Reads a double-quoted value with \\, \" and \n escapes at *pp (at the
 * opening quote) up to end; NULL when malformed. */
static char *quoted(const char **pp, const char *end)
{
	const char *p = *pp + 1;
	struct buf v;

	buf_init(&v);
	for (; p < end && *p != '"'; p++) {
		if (*p == '\\') {
			if (++p == end)
				break;
			if (*p == 'n')
				buf_appendc(&v, '\n');
			else if (*p == '\\' || *p == '"')
				buf_appendc(&v, *p);
			else
				break;
			continue;
		}
		buf_appendc(&v, *p);
	}
	if (p >= end || *p != '"') {
		buf_fini(&v);
		return NULL;
	}
	*pp = p + 1;
	buf_cstr(&v);
	return buf_steal(&v, NULL);
}

/* Parses name=VALUE pairs separated by commas; VALUE quoted, or bare
 * (up to the next comma) when bare is allowed. */
static int pairs_parse(const char *s, size_t len, bool bare,
		       struct hlabel **out, size_t *n)
{
	const char *p = s, *end = s + len;
	struct hlabel *l = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	while (p < end) {
		const char *nm = p, *eq;
		char *name, *value;

		while (p < end && *p != '=' && *p != ',')
			p++;
		if (p == end || *p != '=')
			goto bad;
		eq = p++;
		while (eq > nm && eq[-1] == ' ')
			eq--;
		while (nm < eq && *nm == ' ')
			nm++;
		name = strndup(nm, (size_t)(eq - nm));
		SK_ASSERT(name != NULL);
		if (!prom_label_name_ok(name) && strcmp(name, "quantile") != 0) {
			free(name);
			goto bad;
		}
		if (p < end && *p == '"') {
			value = quoted(&p, end);
		} else if (bare) {
			const char *v0 = p;

			while (p < end && *p != ',')
				p++;
			value = strndup(v0, (size_t)(p - v0));
		} else {
			value = NULL;
		}
		if (!value) {
			free(name);
			goto bad;
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 4;
			l = realloc(l, cap * sizeof(*l));
			SK_ASSERT(l != NULL);
		}
		l[cnt].name = name;
		l[cnt++].value = value;
		if (cnt > METRICS_LABELS_MAX + 1)
			goto bad;
		if (p < end) {
			if (*p != ',')
				goto bad;
			p++;
		}
	}
	if (cnt)
		qsort(l, cnt, sizeof(*l), label_cmp);
	for (size_t i = 1; i < cnt; i++)
		if (strcmp(l[i - 1].name, l[i].name) == 0)
			goto bad;
	*out = l;
	*n = cnt;
	return 0;
bad:
	hlabels_free(l, cnt);
	return -EINVAL;
}

int hlabels_parse(const char *s, size_t len, struct hlabel **out, size_t *n)
{
	return pairs_parse(s, len, false, out, n);
}

/* The canonical text of sorted labels: a="x",b="y". */
static void labels_text(struct buf *o, const struct hlabel *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_appendc(o, ',');
		buf_appends(o, l[i].name);
		buf_appends(o, "=\"");
		prom_label_value(o, l[i].value);
		buf_appendc(o, '"');
	}
}

/* --- series ----------------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static struct hseries *series_find(struct history *h, const char *key)
{
	if (!h->tabcap)
		return NULL;
	for (struct hseries *s = h->tab[hash_str(key) & (h->tabcap - 1)]; s;
	     s = s->hnext)
		if (strcmp(s->key, key) == 0)
			return s;
	return NULL;
}

static void tab_insert(struct history *h, struct hseries *s)
{
	size_t b;

	if (h->nall >= h->tabcap) {
		size_t nc = h->tabcap ? h->tabcap * 2 : 256;
		struct hseries **nt = calloc(nc, sizeof(*nt));

		SK_ASSERT(nt != NULL);
		for (size_t i = 0; i < h->nall; i++) {
			struct hseries *x = h->all[i];

			b = hash_str(x->key) & (nc - 1);
			x->hnext = nt[b];
			nt[b] = x;
		}
		free(h->tab);
		h->tab = nt;
		h->tabcap = nc;
	}
	b = hash_str(s->key) & (h->tabcap - 1);
	s->hnext = h->tab[b];
	h->tab[b] = s;
}

/*
 * The series metric{lab} (lab sorted; copied), made if needed. NULL when
 * HISTORY_SERIES_MAX series exist already (counted and logged once).
 */
static struct hseries *series_get(struct history *h, const char *metric,
				  const struct hlabel *lab, size_t nlab,
				  int kind)
{
	struct hseries *s;
	struct buf b;

	buf_init(&b);
	buf_appends(&b, metric);
	buf_appendc(&b, '{');
	labels_text(&b, lab, nlab);
	buf_appendc(&b, '}');
	s = series_find(h, buf_cstr(&b));
	if (s) {
		buf_fini(&b);
		return s;
	}
	if (h->nall >= HISTORY_SERIES_MAX) {
		h->left_out++;
		if (!h->full_logged)
			log_warn("history is full; further series are not kept",
				 "max=%d first_left_out=%s", HISTORY_SERIES_MAX,
				 buf_cstr(&b));
		h->full_logged = true;
		buf_fini(&b);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	SK_ASSERT(s != NULL);
	s->key = buf_steal(&b, NULL);
	s->metric = xstrdup(metric);
	s->labels = strndup(s->key + strlen(metric) + 1,
			    strlen(s->key) - strlen(metric) - 2);
	SK_ASSERT(s->labels != NULL);
	s->lab = calloc(nlab ? nlab : 1, sizeof(*s->lab));
	SK_ASSERT(s->lab != NULL);
	for (size_t i = 0; i < nlab; i++) {
		s->lab[i].name = xstrdup(lab[i].name);
		s->lab[i].value = xstrdup(lab[i].value);
	}
	s->nlab = nlab;
	s->kind = kind;
	s->qi = -1;
	s->last_sec = -1;
	s->ring = malloc(RING * sizeof(double));
	SK_ASSERT(s->ring != NULL);
	for (size_t i = 0; i < RING; i++)
		s->ring[i] = NAN;
	if (h->nall == h->capall) {
		h->capall = h->capall ? h->capall * 2 : 256;
		h->all = realloc(h->all, h->capall * sizeof(*h->all));
		SK_ASSERT(h->all != NULL);
	}
	tab_insert(h, s);
	h->all[h->nall++] = s;
	return s;
}

static void series_free(struct hseries *s)
{
	free(s->metric);
	free(s->labels);
	free(s->key);
	hlabels_free(s->lab, s->nlab);
	free(s->ring);
	free(s);
}

static double ring_at(const struct hseries *s, int64_t t)
{
	if (s->last_sec < 0 || t > s->last_sec || t <= s->last_sec - RING)
		return NAN;
	return s->ring[t % RING];
}

/* Records v as second t of s (t is the current second). */
static void put(struct hseries *s, int64_t t, double v)
{
	if (!s || !isfinite(v) || t <= s->last_sec)
		return;
	if (s->last_sec >= 0) {
		int64_t from = s->last_sec + 1;

		if (t - from > RING)
			from = t - RING;
		for (int64_t k = from; k < t; k++)
			s->ring[k % RING] = NAN;
	}
	s->ring[t % RING] = v;
	s->last_sec = t;
	agg_add(&s->minute, v);
}

/* --- batches and the writer --------------------------------------------------------- */

static struct hbatch *batch_new(void)
{
	struct hbatch *b = calloc(1, sizeof(*b));

	SK_ASSERT(b != NULL);
	return b;
}

static void batch_free(struct hbatch *b)
{
	if (!b)
		return;
	free(b->rows);
	free(b);
}

static void batch_add(struct history *h, struct hseries *s, int level,
		      int64_t ts, const struct hagg *a, double avg)
{
	struct hbatch *b = h->next;
	struct hrow *r;

	if (b->n >= HROWS_MAX) {
		h->rows_dropped++;
		return;
	}
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 1024;
		b->rows = realloc(b->rows, b->cap * sizeof(*b->rows));
		SK_ASSERT(b->rows != NULL);
	}
	r = &b->rows[b->n++];
	r->s = s;
	r->ts = ts;
	r->level = (uint8_t)level;
	r->avg = avg;
	r->min = a->min;
	r->max = a->max;
	r->last = a->last;
	r->n = a->n;
}

static void write_work_cb(uv_work_t *req)
{
	struct history *h = req->data;

	hdb_write(h->db, h->inflight);
}

static void kick(struct history *h);
static void finish_close(struct history *h);

static void write_after_cb(uv_work_t *req, int status)
{
	struct history *h = req->data;
	struct hbatch *b = h->inflight;
	struct waiter **wp;

	(void)status; /* never cancelled */
	h->inflight = NULL;
	h->completed++;
	h->last_write_s = b->seconds;
	if (b->db_bytes > 0)
		h->db_bytes = b->db_bytes;
	h->rows_pruned += b->pruned;
	if (b->err) {
		h->write_errors++;
		h->rows_dropped += b->n;
		snprintf(h->last_error, sizeof(h->last_error), "%s", b->errmsg);
		log_error("history write failed", "path=%s rows=%zu err=\"%s\"",
			  h->path, b->n, b->errmsg);
	} else {
		h->rows_written += b->n;
	}
	batch_free(b);
	for (wp = &h->waiters; *wp;) {
		struct waiter *w = *wp;

		if (w->target <= h->completed) {
			*wp = w->next;
			w->done(w->ud);
			free(w);
		} else {
			wp = &w->next;
		}
	}
	kick(h);
	if (h->closing && !h->inflight)
		finish_close(h);
}

/* Sends the next batch to the writer if it is idle and there is work. */
static void kick(struct history *h)
{
	struct hbatch *b = h->next;

	if (h->inflight || (b->n == 0 && !h->prune_due))
		return;
	if (h->prune_due && !h->closing) {
		b->prune = true;
		h->last_prune_sec = h->cur_sec;
	}
	h->prune_due = false;
	b->now_sec = h->cur_sec;
	b->minute_ret_s = h->minute_ret_s;
	b->hour_ret_s = h->hour_ret_s;
	b->max_bytes = h->max_bytes;
	h->inflight = b;
	h->next = batch_new();
	h->work.data = h;
	h->submitted++;
	SK_ASSERT(uv_queue_work(h->loop, &h->work, write_work_cb,
				write_after_cb) == 0);
}

/* --- windows ------------------------------------------------------------------------- */

static void src_window_quantiles(struct history *h, struct hsrc *src,
				 struct hist *start)
{
	uint64_t q[NQ];

	hist_diff(h->diff, src->prev, start);
	if (!src->primed || hist_count(h->diff) == 0 ||
	    hist_quantiles(h->diff, quantiles, NQ, q) != 0) {
		for (int i = 0; i < NQ; i++)
			src->wq[i] = NAN;
		return;
	}
	for (int i = 0; i < NQ; i++)
		src->wq[i] = (double)q[i] * src->scale;
}

static double row_avg(const struct hseries *s, const struct hagg *a)
{
	if (s->kind == HK_QUANTILE && s->src && !isnan(s->src->wq[s->qi]))
		return s->src->wq[s->qi];
	return a->sum / a->n;
}

/* Closes the minute window: rows, and the fold into the hour. partial:
 * at close, the window is written as it is and not reset. */
static void close_minute(struct history *h, bool partial)
{
	for (size_t i = 0; i < h->nsrcs; i++) {
		struct hsrc *src = h->srcs[i];

		src_window_quantiles(h, src, src->min_start);
		if (!partial && src->primed)
			hist_copy(src->min_start, src->prev);
	}
	for (size_t i = 0; i < h->nall; i++) {
		struct hseries *s = h->all[i];

		if (s->minute.n == 0)
			continue;
		batch_add(h, s, HL_MINUTE, h->minute_ts, &s->minute,
			  row_avg(s, &s->minute));
		if (!partial) {
			agg_fold(&s->hour, &s->minute);
			memset(&s->minute, 0, sizeof(s->minute));
		}
	}
}

static void close_hour(struct history *h, bool partial)
{
	for (size_t i = 0; i < h->nsrcs; i++) {
		struct hsrc *src = h->srcs[i];

		src_window_quantiles(h, src, src->hour_start);
		if (!partial && src->primed)
			hist_copy(src->hour_start, src->prev);
	}
	for (size_t i = 0; i < h->nall; i++) {
		struct hseries *s = h->all[i];
		struct hagg a = s->hour;

		if (partial)
			agg_fold(&a, &s->minute);
		if (a.n == 0)
			continue;
		batch_add(h, s, HL_HOUR, h->hour_ts, &a, row_avg(s, &a));
		if (!partial)
			memset(&s->hour, 0, sizeof(s->hour));
	}
}

/* Moves the clock to second t, closing the windows it leaves. */
static int advance(struct history *h, int64_t t)
{
	if (h->cur_sec >= 0 && t < h->cur_sec)
		return -ERANGE;
	if (h->cur_sec < 0) {
		h->first_sec = t;
		h->last_prune_sec = t;
	} else if (floor_to(t, 60) != h->minute_ts) {
		close_minute(h, false);
		if (floor_to(t, 3600) != h->hour_ts)
			close_hour(h, false);
	}
	h->cur_sec = t;
	h->minute_ts = floor_to(t, 60);
	h->hour_ts = floor_to(t, 3600);
	if (t - h->last_prune_sec >= 3600)
		h->prune_due = true;
	kick(h);
	return 0;
}

/* --- open, reload, close -------------------------------------------------------------- */

/* A zeroed struct cfg_history (no monitor.history in the file) gets the
 * documented defaults rather than a retention of nothing. */
static void take_cfg(struct history *h, const struct cfg_history *cfg)
{
	h->minute_ret_s = cfg->minute_retention_ms
				  ? cfg->minute_retention_ms / 1000
				  : 7 * 86400;
	h->hour_ret_s = cfg->hour_retention_ms ? cfg->hour_retention_ms / 1000
					       : 90 * 86400;
	h->max_bytes = cfg->max_bytes ? cfg->max_bytes : 512ull << 20;
}

int history_open(uv_loop_t *loop, const struct cfg_history *cfg,
		 struct history **out, char *err, size_t errlen)
{
	struct history *h;
	int r;

	if (!cfg->path || !cfg->path[0]) {
		snprintf(err, errlen, "monitor.history.path is not set");
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	SK_ASSERT(h != NULL);
	h->loop = loop;
	h->path = xstrdup(cfg->path);
	take_cfg(h, cfg);
	r = hdb_open(h->path, &h->db, err, errlen);
	if (r) {
		free(h->path);
		free(h);
		return r;
	}
	h->cur = hist_new();
	h->diff = hist_new();
	SK_ASSERT(h->cur && h->diff);
	h->next = batch_new();
	h->cur_sec = -1;
	h->last_sample_sec = -1;
	h->db_bytes = hdb_bytes(h->db);
	/* Apply the retention to what the file holds with the first batch. */
	h->prune_due = true;
	log_info("history opened", "path=%s bytes=%.0f", h->path, h->db_bytes);
	*out = h;
	return 0;
}

void history_reload(struct history *h, const struct cfg_history *cfg)
{
	if (cfg->path && strcmp(cfg->path, h->path) != 0)
		log_warn("monitor.history.path changes only with a restart",
			 "in_use=%s configured=%s", h->path, cfg->path);
	take_cfg(h, cfg);
	h->prune_due = true;
	if (h->cur_sec >= 0)
		kick(h);
}

static void finish_close(struct history *h)
{
	void (*done)(void *) = h->close_done;
	void *ud = h->close_ud;

	if (h->next->n > 0)
		return; /* kick() sent it; wait for it */
	hdb_close(h->db);
	for (size_t i = 0; i < h->nall; i++)
		series_free(h->all[i]);
	for (size_t i = 0; i < h->nsrcs; i++) {
		hist_free(h->srcs[i]->prev);
		hist_free(h->srcs[i]->min_start);
		hist_free(h->srcs[i]->hour_start);
		free(h->srcs[i]);
	}
	while (h->waiters) {
		struct waiter *w = h->waiters;

		h->waiters = w->next;
		w->done(w->ud);
		free(w);
	}
	free(h->srcs);
	free(h->all);
	free(h->tab);
	free(h->map);
	hist_free(h->cur);
	hist_free(h->diff);
	batch_free(h->next);
	log_info("history closed", "path=%s rows_written=%llu", h->path,
		 (unsigned long long)h->rows_written);
	free(h->path);
	free(h);
	if (done)
		done(ud);
}

void history_close(struct history *h, void (*done)(void *ud), void *ud)
{
	SK_ASSERT(!h->closing);
	h->closing = true;
	h->close_done = done;
	h->close_ud = ud;
	h->prune_due = false;
	if (h->cur_sec >= 0) {
		close_minute(h, true);
		close_hour(h, true);
	}
	kick(h);
	if (!h->inflight)
		finish_close(h);
}

void history_flush(struct history *h, void (*done)(void *ud), void *ud)
{
	struct waiter *w;

	kick(h);
	if (!h->inflight) {
		done(ud);
		return;
	}
	w = calloc(1, sizeof(*w));
	SK_ASSERT(w != NULL);
	/* What is in the next batch goes with the one after the current. */
	w->target = h->submitted + (h->next->n > 0 ? 1 : 0);
	w->done = done;
	w->ud = ud;
	w->next = h->waiters;
	h->waiters = w;
}

/* --- sampling --------------------------------------------------------------------------- */

int history_record(struct history *h, uint64_t now_ms, const char *key,
		   double value)
{
	const char *brace = strchr(key, '{');
	struct hlabel *lab = NULL;
	size_t nlab = 0, nl;
	struct hseries *s;
	char *metric;
	int r;

	if (brace) {
		size_t len = strlen(brace);

		if (len < 2 || brace[len - 1] != '}')
			return -EINVAL;
		if (hlabels_parse(brace + 1, len - 2, &lab, &nlab) != 0)
			return -EINVAL;
		nl = (size_t)(brace - key);
	} else {
		nl = strlen(key);
	}
	metric = strndup(key, nl);
	SK_ASSERT(metric != NULL);
	if (!prom_metric_name_ok(metric)) {
		r = -EINVAL;
		goto out;
	}
	if ((r = advance(h, (int64_t)(now_ms / 1000))) != 0)
		goto out;
	s = series_get(h, metric, lab, nlab, HK_GAUGE);
	if (!s) {
		r = -ENOSPC;
		goto out;
	}
	put(s, h->cur_sec, value);
out:
	free(metric);
	hlabels_free(lab, nlab);
	return r;
}

static struct hsrc *src_new(struct history *h, const struct metrics_series_info *si)
{
	struct hsrc *src = calloc(1, sizeof(*src));
	struct hlabel lab[METRICS_LABELS_MAX + 1] = {{0}};
	size_t n = si->nlabels, k = 0;
	char name[PROM_NAME_MAX + 16];
	bool has_q = false;

	SK_ASSERT(src != NULL);
	src->idx = si->idx;
	src->scale = pow(10, -(double)si->decimals);
	src->prev = hist_new();
	src->min_start = hist_new();
	src->hour_start = hist_new();
	SK_ASSERT(src->prev && src->min_start && src->hour_start);
	src->baseline_cur = !h->sampled_once;
	for (size_t i = 0; i < n; i++) {
		lab[i].name = (char *)si->labels[i].name;
		lab[i].value = (char *)si->labels[i].value;
		has_q |= strcmp(lab[i].name, "quantile") == 0;
	}
	snprintf(name, sizeof(name), "%s_count", si->name);
	src->count = series_get(h, name, lab, n, HK_COUNTER);
	snprintf(name, sizeof(name), "%s_sum", si->name);
	src->sum = series_get(h, name, lab, n, HK_COUNTER);
	if (src->count)
		src->count->src = src;
	/* quantile="..." goes in its sorted place among the labels. */
	while (k < n && strcmp(lab[k].name, "quantile") < 0)
		k++;
	memmove(&lab[k + 1], &lab[k], (n - k) * sizeof(lab[0]));
	lab[k].name = "quantile";
	for (int i = 0; !has_q && i < NQ; i++) {
		lab[k].value = (char *)quantile_text[i];
		src->q[i] = series_get(h, si->name, lab, n + 1, HK_QUANTILE);
		if (src->q[i]) {
			src->q[i]->src = src;
			src->q[i]->qi = i;
		}
	}
	h->srcs = realloc(h->srcs, (h->nsrcs + 1) * sizeof(*h->srcs));
	SK_ASSERT(h->srcs != NULL);
	h->srcs[h->nsrcs++] = src;
	return src;
}

struct build {
	struct history *h;
	struct hmap *map;
	size_t n, cap;
};

static void build_cb(void *ud, const struct metrics_series_info *si)
{
	struct build *b = ud;
	struct history *h = b->h;
	struct hlabel lab[METRICS_LABELS_MAX];
	struct hmap m = {.type = si->type, .idx = si->idx};

	for (size_t i = 0; i < si->nlabels; i++) {
		lab[i].name = (char *)si->labels[i].name;
		lab[i].value = (char *)si->labels[i].value;
	}
	if (si->type == METRICS_HISTOGRAM) {
		for (size_t i = 0; i < h->nsrcs && !m.src; i++)
			if (h->srcs[i]->idx == si->idx)
				m.src = h->srcs[i];
		if (!m.src)
			m.src = src_new(h, si);
	} else {
		m.scale = si->type == METRICS_COUNTER
				  ? pow(10, -(double)si->decimals)
				  : 1;
		m.s = series_get(h, si->name, lab, si->nlabels,
				 si->type == METRICS_COUNTER ? HK_COUNTER
							     : HK_GAUGE);
		if (!m.s)
			return;
	}
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 256;
		b->map = realloc(b->map, b->cap * sizeof(*b->map));
		SK_ASSERT(b->map != NULL);
	}
	b->map[b->n++] = m;
}

static void sample_hist(struct history *h, struct metrics *reg,
			struct hsrc *src, int64_t t)
{
	uint64_t q[NQ];

	metrics_hist_read(reg, (struct metrics_hist){src->idx}, h->cur);
	put(src->count, t, (double)hist_count(h->cur));
	put(src->sum, t, (double)hist_sum(h->cur) * src->scale);
	if (src->baseline_cur && !src->primed) {
		hist_copy(src->prev, h->cur);
		hist_copy(src->min_start, h->cur);
		hist_copy(src->hour_start, h->cur);
		src->primed = true;
		return;
	}
	src->primed = true;
	hist_diff(h->diff, h->cur, src->prev);
	if (hist_count(h->diff) > 0 &&
	    hist_quantiles(h->diff, quantiles, NQ, q) == 0)
		for (int i = 0; i < NQ; i++)
			put(src->q[i], t, (double)q[i] * src->scale);
	hist_copy(src->prev, h->cur);
}

int history_sample(struct history *h, struct metrics *reg, uint64_t now_ms)
{
	int64_t t = (int64_t)(now_ms / 1000);
	size_t count;
	int r;

	SK_ASSERT(h->reg == NULL || h->reg == reg);
	if (t <= h->last_sample_sec)
		return t == h->last_sample_sec ? 0 : -ERANGE;
	if ((r = advance(h, t)) != 0)
		return r;
	h->reg = reg;
	h->last_sample_sec = t;
	count = metrics_series_count(reg);
	if (count != h->reg_seen || !h->map) {
		struct build b = {.h = h};

		/* Counted again from the registry's full list. */
		h->left_out = 0;
		metrics_foreach(reg, build_cb, &b);
		free(h->map);
		h->map = b.map;
		h->nmap = b.n;
		h->reg_seen = count;
	}
	for (size_t i = 0; i < h->nmap; i++) {
		const struct hmap *m = &h->map[i];

		switch (m->type) {
		case METRICS_COUNTER:
			put(m->s, t,
			    (double)metrics_counter_read(
				    reg, (struct metrics_counter){m->idx}) *
				    m->scale);
			break;
		case METRICS_GAUGE:
			put(m->s, t,
			    metrics_gauge_read(reg,
					       (struct metrics_gauge){m->idx}));
			break;
		case METRICS_HISTOGRAM:
			sample_hist(h, reg, m->src, t);
			break;
		}
	}
	h->sampled_once = true;
	return 0;
}

/* --- queries ------------------------------------------------------------------------------ */

enum agg { AGG_DEFAULT, AGG_AVG, AGG_MIN, AGG_MAX, AGG_LAST };
enum origin { FROM_DB, FROM_PENDING, FROM_PARTIAL };

struct qrow {
	int64_t ts;
	double avg, min, max, last;
	uint32_t n;
	int origin;
};

struct qser {
	char *labels;
	int kind;
	struct qrow *rows;
	size_t n, cap;
	const struct hseries *mem; /* memory source */
};

struct query {
	struct history *h;
	const char *metric;
	struct hlabel *match;
	size_t nmatch;
	int level; /* -1: memory */
	int64_t from, to, step, res;
	enum agg agg;
	size_t *count_only; /* counting matching series in the file */
	char *last_labels; /* the last series group seen from the file */
	bool last_match;
	struct qser *ser;
	size_t nser, capser;
	char err[300];
};

static bool matches_lab(const struct query *q, const struct hlabel *lab,
			size_t n)
{
	for (size_t i = 0; i < q->nmatch; i++) {
		const char *v = "";

		for (size_t k = 0; k < n; k++)
			if (strcmp(lab[k].name, q->match[i].name) == 0)
				v = lab[k].value;
		if (strcmp(v, q->match[i].value) != 0)
			return false;
	}
	return true;
}

static bool matches_text(const struct query *q, const char *labels)
{
	struct hlabel *lab = NULL;
	size_t n = 0;
	bool ok;

	if (q->nmatch == 0)
		return true;
	if (hlabels_parse(labels, strlen(labels), &lab, &n) != 0)
		return false;
	ok = matches_lab(q, lab, n);
	hlabels_free(lab, n);
	return ok;
}

static struct qser *qser_add(struct query *q, const char *labels, int kind)
{
	struct qser *s;

	if (q->nser == q->capser) {
		q->capser = q->capser ? q->capser * 2 : 16;
		q->ser = realloc(q->ser, q->capser * sizeof(*q->ser));
		SK_ASSERT(q->ser != NULL);
	}
	s = &q->ser[q->nser++];
	memset(s, 0, sizeof(*s));
	s->labels = xstrdup(labels);
	s->kind = kind;
	return s;
}

static struct qser *qser_find(struct query *q, const char *labels)
{
	for (size_t i = 0; i < q->nser; i++)
		if (strcmp(q->ser[i].labels, labels) == 0)
			return &q->ser[i];
	return NULL;
}

static void qrow_add(struct qser *s, const struct qrow *r)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->rows = realloc(s->rows, s->cap * sizeof(*s->rows));
		SK_ASSERT(s->rows != NULL);
	}
	s->rows[s->n++] = *r;
}

static int db_row_cb(void *ud, const struct hdb_row *r)
{
	struct query *q = ud;
	struct qser *s = q->nser ? &q->ser[q->nser - 1] : NULL;
	struct qrow row = {r->ts, r->avg, r->min, r->max, r->last, r->n,
			   FROM_DB};

	/* Rows come grouped by series: judge each group once. */
	if (!q->last_labels || strcmp(q->last_labels, r->labels) != 0) {
		free(q->last_labels);
		q->last_labels = xstrdup(r->labels);
		q->last_match = matches_text(q, r->labels);
		if (q->last_match)
			s = qser_add(q, r->labels, r->kind);
	}
	if (q->last_match)
		qrow_add(s, &row);
	return 0;
}

static int count_cb(void *ud, const char *labels)
{
	struct query *q = ud;

	if (matches_text(q, labels))
		(*q->count_only)++;
	return 0;
}

static void overlay_row(struct query *q, const struct hseries *hs, int64_t ts,
			const struct hagg *a, double avg, int origin)
{
	struct qser *s;
	struct qrow row = {ts, avg, a->min, a->max, a->last, a->n, origin};

	if (a->n == 0 || strcmp(hs->metric, q->metric) != 0 ||
	    ts + q->res <= q->from || ts > q->to ||
	    !matches_lab(q, hs->lab, hs->nlab))
		return;
	s = qser_find(q, hs->labels);
	if (!s)
		s = qser_add(q, hs->labels, hs->kind);
	qrow_add(s, &row);
}

/* Rows not in the file yet: batches waiting or being written, and the
 * windows in progress. */
static void overlay(struct query *q)
{
	struct history *h = q->h;
	struct hbatch *bs[2] = {h->inflight, h->next};

	for (int k = 0; k < 2; k++) {
		if (!bs[k])
			continue;
		for (size_t i = 0; i < bs[k]->n; i++) {
			const struct hrow *r = &bs[k]->rows[i];
			struct hagg a = {0, r->min, r->max, r->last, r->n};

			if (r->level == q->level)
				overlay_row(q, r->s, r->ts, &a, r->avg,
					    FROM_PENDING);
		}
	}
	if (h->cur_sec < 0)
		return;
	for (size_t i = 0; i < h->nall; i++) {
		const struct hseries *s = h->all[i];
		struct hagg a = s->minute;

		if (q->level == HL_HOUR) {
			a = s->hour;
			agg_fold(&a, &s->minute);
		}
		if (a.n)
			overlay_row(q, s,
				    q->level == HL_HOUR ? h->hour_ts
							: h->minute_ts,
				    &a, a.sum / a.n, FROM_PARTIAL);
	}
}

static int qrow_cmp(const void *a, const void *b)
{
	const struct qrow *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->origin - y->origin;
}

/* Sorts a series' rows and settles rows of the same window: the file's
 * copy wins over a pending one (it was written meanwhile), and a window
 * in progress adds to a partial row a previous process left. */
static void settle(struct qser *s)
{
	size_t w = 0;

	if (s->n)
		qsort(s->rows, s->n, sizeof(*s->rows), qrow_cmp);
	for (size_t i = 0; i < s->n; i++) {
		struct qrow *r = &s->rows[i];

		if (w && s->rows[w - 1].ts == r->ts) {
			struct qrow *p = &s->rows[w - 1];

			if (r->origin == FROM_PARTIAL) {
				double n = (double)p->n + r->n;

				p->avg = (p->avg * p->n + r->avg * r->n) / n;
				p->min = fmin(p->min, r->min);
				p->max = fmax(p->max, r->max);
				p->last = r->last;
				p->n += r->n;
			}
			continue;
		}
		s->rows[w++] = *r;
	}
	s->n = w;
}

struct bucket {
	double sum, min, max, last;
	uint64_t n;
};

static void bucket_add(struct bucket *b, double avg, double mn, double mx,
		       double last, uint64_t n)
{
	if (b->n == 0) {
		b->min = mn;
		b->max = mx;
	}
	b->sum += avg * (double)n;
	b->min = fmin(b->min, mn);
	b->max = fmax(b->max, mx);
	b->last = last;
	b->n += n;
}

static double bucket_value(const struct bucket *b, enum agg agg, int kind)
{
	if (agg == AGG_DEFAULT)
		agg = kind == HK_COUNTER ? AGG_LAST : AGG_AVG;
	switch (agg) {
	case AGG_MIN:
		return b->min;
	case AGG_MAX:
		return b->max;
	case AGG_LAST:
		return b->last;
	default:
		return b->sum / (double)b->n;
	}
}

static void point(json_t *pts, int64_t ts, double v)
{
	json_t *p = json_array();

	json_array_append_new(p, json_integer(ts));
	json_array_append_new(p, json_real(v));
	json_array_append_new(pts, p);
}

/* The points of one series from the memory ring. */
static json_t *mem_points(const struct query *q, const struct hseries *s)
{
	json_t *pts = json_array();
	struct bucket b = {0};
	int64_t cur = 0, lo = q->from, hi = q->to;

	if (lo <= s->last_sec - RING)
		lo = s->last_sec - RING + 1;
	if (hi > s->last_sec)
		hi = s->last_sec;
	for (int64_t t = lo; t <= hi; t++) {
		double v = ring_at(s, t);
		int64_t bt = floor_to(t, q->step);

		if (isnan(v))
			continue;
		if (b.n && bt != cur) {
			point(pts, cur, bucket_value(&b, q->agg, s->kind));
			memset(&b, 0, sizeof(b));
		}
		cur = bt;
		bucket_add(&b, v, v, v, v, 1);
	}
	if (b.n)
		point(pts, cur, bucket_value(&b, q->agg, s->kind));
	return pts;
}

static json_t *row_points(const struct query *q, const struct qser *s)
{
	json_t *pts = json_array();
	struct bucket b = {0};
	int64_t cur = 0;

	for (size_t i = 0; i < s->n; i++) {
		const struct qrow *r = &s->rows[i];
		int64_t bt = floor_to(r->ts, q->step);

		if (b.n && bt != cur) {
			point(pts, cur, bucket_value(&b, q->agg, s->kind));
			memset(&b, 0, sizeof(b));
		}
		cur = bt;
		bucket_add(&b, r->avg, r->min, r->max, r->last, r->n);
	}
	if (b.n)
		point(pts, cur, bucket_value(&b, q->agg, s->kind));
	return pts;
}

static json_t *labels_json(const char *labels)
{
	json_t *o = json_object();
	struct hlabel *lab = NULL;
	size_t n = 0;

	if (hlabels_parse(labels, strlen(labels), &lab, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			json_object_set_new(o, lab[i].name,
					    json_string(lab[i].value));
		hlabels_free(lab, n);
	}
	return o;
}

static int qser_cmp(const void *a, const void *b)
{
	const struct qser *x = a, *y = b;

	return prom_natcmp(x->labels, y->labels);
}

static void query_free(struct query *q)
{
	for (size_t i = 0; i < q->nser; i++) {
		free(q->ser[i].labels);
		free(q->ser[i].rows);
	}
	free(q->ser);
	free(q->last_labels);
	hlabels_free(q->match, q->nmatch);
}

static json_t *error_json(const char *msg)
{
	json_t *o = json_object();

	json_object_set_new(o, "error", json_string(msg));
	return o;
}

static json_t *too_big(size_t nseries, int64_t npts)
{
	char msg[200];

	snprintf(msg, sizeof(msg),
		 "%zu series of up to %lld points is more than %d points; "
		 "narrow labels or raise step",
		 nseries, (long long)npts, HISTORY_QUERY_POINTS_MAX);
	return error_json(msg);
}

/* Picks the source and step; fills q->err and returns -EINVAL when the
 * arguments do not work. */
static int plan(struct query *q, uint64_t from_ms, uint64_t to_ms,
		uint64_t step_ms)
{
	struct history *h = q->h;
	int64_t now, mem_start, npts;

	if (from_ms > to_ms) {
		snprintf(q->err, sizeof(q->err), "from must not be after to");
		return -EINVAL;
	}
	if (step_ms && (step_ms % 1000 || step_ms > 366ull * 86400 * 1000)) {
		snprintf(q->err, sizeof(q->err),
			 "step must be a whole number of seconds, at most a "
			 "year");
		return -EINVAL;
	}
	q->from = (int64_t)(from_ms / 1000);
	q->to = (int64_t)(to_ms / 1000);
	/* Before the first sample (just after a start), the wall clock. */
	now = h->cur_sec >= 0 ? h->cur_sec
			      : (int64_t)(clock_wall_ms() / 1000);
	/* Nothing exists after now; a range wholly after it is empty. */
	if (q->to > now)
		q->to = now;
	mem_start = h->cur_sec >= 0 ? h->first_sec : now;
	if (mem_start < now - (RING - 1))
		mem_start = now - (RING - 1);
	if (q->from >= mem_start) {
		q->level = -1;
		q->res = 1;
	} else if (q->from >= now - (int64_t)h->minute_ret_s) {
		q->level = HL_MINUTE;
		q->res = 60;
	} else {
		q->level = HL_HOUR;
		q->res = 3600;
	}
	if (step_ms) {
		q->step = (int64_t)(step_ms / 1000);
		q->step = (q->step + q->res - 1) / q->res * q->res;
	} else {
		int64_t span = q->to - q->from + 1;

		q->step = q->res;
		if (span / q->step >= HISTORY_POINTS_MAX)
			q->step = (span / HISTORY_POINTS_MAX / q->res + 1) *
				  q->res;
	}
	npts = (floor_to(q->to, q->step) - floor_to(q->from, q->step)) /
		       q->step +
	       1;
	if (npts > HISTORY_POINTS_MAX) {
		snprintf(q->err, sizeof(q->err),
			 "%lld points per series is more than %d; raise step",
			 (long long)npts, HISTORY_POINTS_MAX);
		return -EINVAL;
	}
	return 0;
}

static int parse_agg(const char *s, enum agg *out)
{
	static const char *const names[] = {"", "avg", "min", "max", "last"};

	for (int i = 0; i < 5; i++) {
		if (strcmp(s ? s : "", names[i]) == 0) {
			*out = (enum agg)i;
			return 0;
		}
	}
	return -EINVAL;
}

int history_query_agg(struct history *h, const char *metric,
		      const char *labels, uint64_t from_ms, uint64_t to_ms,
		      uint64_t step_ms, const char *agg, json_t **out)
{
	struct query q;
	json_t *res, *arr;
	int64_t npts;
	int r;

	memset(&q, 0, sizeof(q));
	q.h = h;
	q.metric = metric;
	*out = NULL;
	if (!metric || !prom_metric_name_ok(metric)) {
		*out = error_json("metric: a metric name is required "
				  "([a-zA-Z_:][a-zA-Z0-9_:]*)");
		return -EINVAL;
	}
	if (labels && *labels &&
	    pairs_parse(labels, strlen(labels), true, &q.match, &q.nmatch)) {
		*out = error_json("labels: expected k=v,k2=v2 (label names "
				  "[a-zA-Z_][a-zA-Z0-9_]*, a value with a comma "
				  "in double quotes)");
		return -EINVAL;
	}
	if (parse_agg(agg, &q.agg)) {
		query_free(&q);
		*out = error_json("agg: one of avg, min, max, last");
		return -EINVAL;
	}
	if ((r = plan(&q, from_ms, to_ms, step_ms)) != 0) {
		*out = error_json(q.err);
		query_free(&q);
		return r;
	}
	npts = (floor_to(q.to, q.step) - floor_to(q.from, q.step)) / q.step + 1;
	if (q.level < 0) {
		for (size_t i = 0; i < h->nall; i++) {
			const struct hseries *s = h->all[i];
			struct qser *qs;

			if (strcmp(s->metric, metric) != 0 ||
			    !matches_lab(&q, s->lab, s->nlab))
				continue;
			qs = qser_add(&q, s->labels, s->kind);
			qs->mem = s;
		}
	} else {
		char err[300];
		size_t nfile = 0;

		/* Judge the size before reading rows: a query too large must
		 * not hold the loop while it reads them. */
		q.count_only = &nfile;
		r = hdb_series(h->db, metric, count_cb, &q, err, sizeof(err));
		q.count_only = NULL;
		if (r == 0 && (int64_t)nfile * npts > HISTORY_QUERY_POINTS_MAX) {
			*out = too_big(nfile, npts);
			query_free(&q);
			return -EINVAL;
		}
		if (r == 0)
			r = hdb_read(h->db, q.level, metric, NULL,
				     q.from - q.res + 1, q.to, db_row_cb, &q, err,
				     sizeof(err));
		if (r) {
			*out = error_json(err);
			query_free(&q);
			return -EIO;
		}
		overlay(&q);
		for (size_t i = 0; i < q.nser; i++)
			settle(&q.ser[i]);
	}
	if ((int64_t)q.nser * npts > HISTORY_QUERY_POINTS_MAX) {
		*out = too_big(q.nser, npts);
		query_free(&q);
		return -EINVAL;
	}
	if (q.nser)
		qsort(q.ser, q.nser, sizeof(*q.ser), qser_cmp);
	res = json_object();
	arr = json_array();
	json_object_set_new(res, "metric", json_string(metric));
	json_object_set_new(res, "source",
			    json_string(q.level < 0 ? "memory"
						    : level_names[q.level]));
	json_object_set_new(res, "resolution", json_integer(q.res));
	json_object_set_new(res, "step", json_integer(q.step));
	json_object_set_new(res, "from", json_integer(q.from));
	json_object_set_new(res, "to", json_integer(q.to));
	for (size_t i = 0; i < q.nser; i++) {
		const struct qser *s = &q.ser[i];
		json_t *pts = s->mem ? mem_points(&q, s->mem) : row_points(&q, s);
		json_t *o;

		if (json_array_size(pts) == 0) {
			json_decref(pts);
			continue;
		}
		o = json_object();
		json_object_set_new(o, "labels", labels_json(s->labels));
		json_object_set_new(o, "points", pts);
		json_array_append_new(arr, o);
	}
	json_object_set_new(res, "series", arr);
	query_free(&q);
	*out = res;
	return 0;
}

int history_query(struct history *h, const char *metric, const char *labels,
		  uint64_t from_ms, uint64_t to_ms, uint64_t step_ms,
		  json_t **out)
{
	return history_query_agg(h, metric, labels, from_ms, to_ms, step_ms,
				 NULL, out);
}

/* --- status ---------------------------------------------------------------------------------- */

json_t *history_status_json(struct history *h)
{
	json_t *o = json_object();
	double mem = (double)h->nall * (RING * sizeof(double) +
					sizeof(struct hseries)) +
		     (double)h->nsrcs * 3 * HIST_BUCKETS * sizeof(uint64_t);

	json_object_set_new(o, "path", json_string(h->path));
	json_object_set_new(o, "series", json_integer((json_int_t)h->nall));
	json_object_set_new(o, "series_left_out",
			    json_integer((json_int_t)h->left_out));
	json_object_set_new(o, "memory_bytes", json_real(mem));
	json_object_set_new(o, "db_bytes", json_real(h->db_bytes));
	json_object_set_new(o, "rows_written",
			    json_integer((json_int_t)h->rows_written));
	json_object_set_new(o, "rows_pending",
			    json_integer((json_int_t)(h->next->n +
						      (h->inflight
							       ? h->inflight->n
							       : 0))));
	json_object_set_new(o, "rows_pruned",
			    json_integer((json_int_t)h->rows_pruned));
	json_object_set_new(o, "rows_dropped",
			    json_integer((json_int_t)h->rows_dropped));
	json_object_set_new(o, "write_errors",
			    json_integer((json_int_t)h->write_errors));
	json_object_set_new(o, "last_error",
			    h->last_error[0] ? json_string(h->last_error)
					     : json_null());
	json_object_set_new(o, "last_write_seconds", json_real(h->last_write_s));
	return o;
}

/* --- the alert engine's view ------------------------------------------------------- */

void history_each_series(struct history *h, const char *metric,
			 history_series_cb cb, void *ud)
{
	struct metrics_label lab[METRICS_LABELS_MAX + 1];

	for (size_t i = 0; i < h->nall; i++) {
		const struct hseries *s = h->all[i];

		if (s->kind == HK_QUANTILE || strcmp(s->metric, metric) != 0)
			continue;
		for (size_t k = 0; k < s->nlab && k < METRICS_LABELS_MAX + 1;
		     k++)
			lab[k] = (struct metrics_label){s->lab[k].name,
							s->lab[k].value};
		cb(ud, i, lab, s->nlab);
	}
}

struct samples_read {
	const struct hseries *s;
	int64_t before; /* rows must end at or before this second */
	history_sample_cb cb;
	void *ud;
};

static int samples_row_cb(void *ud, const struct hdb_row *r)
{
	struct samples_read *sr = ud;
	double v;
	uint64_t t;

	if (r->n == 0 || r->ts + 60 > sr->before)
		return 0;
	if (sr->s->kind == HK_COUNTER) {
		v = r->last;
		t = (uint64_t)(r->ts + 59) * 1000;
	} else {
		v = r->avg;
		t = (uint64_t)(r->ts + 30) * 1000;
	}
	if (isfinite(v))
		sr->cb(sr->ud, t, v);
	return 0;
}

int history_samples(struct history *h, uint64_t id, uint64_t from_ms,
		    uint64_t to_ms, history_sample_cb cb, void *ud)
{
	const struct hseries *s;
	int64_t from = (int64_t)(from_ms / 1000), to = (int64_t)(to_ms / 1000);
	int64_t mem_start;

	if (id >= h->nall)
		return -ENOENT;
	s = h->all[id];
	if (from_ms % 1000)
		from++;
	if (s->last_sec < 0)
		return 0;
	mem_start = h->first_sec;
	if (mem_start < s->last_sec - (RING - 1))
		mem_start = s->last_sec - (RING - 1);
	if (from < mem_start && h->db) {
		struct samples_read sr = {s, mem_start, cb, ud};
		char err[256];

		if (hdb_read(h->db, HL_MINUTE, s->metric, s->labels, from,
			     mem_start < to ? mem_start : to, samples_row_cb,
			     &sr, err, sizeof(err)) < 0)
			return -EIO;
	}
	if (from < mem_start)
		from = mem_start;
	if (to > s->last_sec)
		to = s->last_sec;
	for (int64_t t = from; t <= to; t++) {
		double v = ring_at(s, t);

		if (!isnan(v))
			cb(ud, (uint64_t)t * 1000, v);
	}
	return 0;
}
