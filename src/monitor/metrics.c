/*
 * metrics.c - the metrics registry (see metrics.h for the contract).
 *
 * Storage. Counters and gauges share one index space of 64-bit cells,
 * histograms have their own of struct hist pointers. Each shard owns a
 * directory of fixed-size chunks for each space:
 *
 *   shard->cells[i >> 9][i & 511]    counter (uint64) or gauge (double bits)
 *   shard->hists[i >> 6][i & 63]     that shard's struct hist of series i
 *
 * A chunk is allocated for every shard at once, when registration first
 * needs it, and never moves or goes away before the registry does, so a
 * worker can hold on to a handle while more series are registered: the
 * control thread only ever fills directory slots that no handle in
 * circulation refers to yet. Cell chunks are 4 KiB and 64-byte aligned and
 * each shard's are separate allocations, so no two shards ever write the
 * same cache line. Index 0 of each space is a sink that no series owns.
 *
 * Metadata (families, series, the lookup tables) is touched only under
 * the registry's mutex: registration and exposition. A family is a metric
 * name with its type, help, sorted label names and, for counters and
 * histograms, decimals and bounds; a series is a family plus label values,
 * found by its key "name{a=\"x\",b=\"y\"}" (labels sorted by name and
 * escaped as on output, so the key is also the exposition's label text).
 * Families and series are sorted for output lazily, after registrations.
 *
 * Invariants: ncells <= CELLS_MAX and nhists <= HISTS_MAX; every index
 * below ncells (nhists) has its chunk allocated in every shard; a series'
 * label names are its family's, in the same order.
 */
#include "monitor/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "monitor/monitor_int.h"

#define CELL_CHUNK_BITS 9
#define CELL_CHUNK (1u << CELL_CHUNK_BITS)
#define CELL_DIR 1024
#define CELLS_MAX (CELL_CHUNK * CELL_DIR)
#define HIST_CHUNK_BITS 6
#define HIST_CHUNK (1u << HIST_CHUNK_BITS)
#define HIST_DIR 1024
#define HISTS_MAX (HIST_CHUNK * HIST_DIR)

const uint64_t metrics_default_bounds_us[] = {
	1000,	2500,	5000,	 10000,	  25000,   50000,    100000,
	250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
const size_t metrics_default_nbounds = sizeof(metrics_default_bounds_us) /
				       sizeof(metrics_default_bounds_us[0]);

struct shard {
	_Atomic uint64_t *cells[CELL_DIR];
	struct hist **hists[HIST_DIR];
};

struct family {
	char *name;
	char *help;
	enum metrics_type type;
	size_t nlabels;
	char **label_names; /* sorted */
	unsigned decimals;
	uint64_t *bounds;
	size_t nbounds;
	struct series **series;
	size_t nseries, cap;
	bool sorted;
};

struct series {
	struct family *f;
	char **values;	/* in the order of f->label_names */
	char *key;	/* name{labels} */
	size_t lab_off; /* labels text: key + lab_off, lab_len bytes */
	size_t lab_len;
	uint32_t idx;
};

struct slot {
	const char *key; /* owned by the family or series */
	uint64_t hash;
	void *val;
};

struct table {
	struct slot *s;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

struct metrics {
	pthread_mutex_t lock;
	uint32_t ncells;
	uint32_t nhists;
	struct family **fams;
	size_t nfams, capfams;
	bool fams_sorted;
	struct table by_name; /* family name -> struct family */
	struct table by_key;  /* series key -> struct series */
	struct hist *scratch; /* exposition's merge target */

	/* What the hot path reads, on lines written only by metrics_new. */
	alignas(64) unsigned nshards;
	struct shard *shards[];
};

/* --- small helpers ------------------------------------------------------ */

static inline uint64_t ld(const _Atomic uint64_t *p)
{
	return atomic_load_explicit((_Atomic uint64_t *)p,
				    memory_order_relaxed);
}

static inline void st(_Atomic uint64_t *p, uint64_t v)
{
	atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline double bits_d(uint64_t b)
{
	double d;

	memcpy(&d, &b, sizeof(d));
	return d;
}

static inline uint64_t d_bits(double d)
{
	uint64_t b;

	memcpy(&b, &d, sizeof(b));
	return b;
}

static void *zalloc_aligned(size_t sz)
{
	void *p;

	sz = (sz + 63) & ~(size_t)63;
	p = aligned_alloc(64, sz);
	if (p)
		memset(p, 0, sz);
	return p;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h ? h : 1;
}

static void *table_get(const struct table *t, const char *key)
{
	uint64_t h = hash_str(key);

	if (!t->cap)
		return NULL;
	for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		if (!t->s[i].key)
			return NULL;
		if (t->s[i].hash == h && strcmp(t->s[i].key, key) == 0)
			return t->s[i].val;
	}
}

static void table_insert(struct slot *s, size_t cap, const char *key,
			 uint64_t h, void *val)
{
	size_t i = h & (cap - 1);

	while (s[i].key)
		i = (i + 1) & (cap - 1);
	s[i].key = key;
	s[i].hash = h;
	s[i].val = val;
}

/* Adds key (not present yet). Returns 0 or -ENOMEM. */
static int table_put(struct table *t, const char *key, void *val)
{
	if ((t->n + 1) * 10 > t->cap * 7) {
		size_t ncap = t->cap ? t->cap * 2 : 64;
		struct slot *ns = calloc(ncap, sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < t->cap; i++)
			if (t->s[i].key)
				table_insert(ns, ncap, t->s[i].key,
					     t->s[i].hash, t->s[i].val);
		free(t->s);
		t->s = ns;
		t->cap = ncap;
	}
	table_insert(t->s, t->cap, key, hash_str(key), val);
	t->n++;
	return 0;
}

/* --- life cycle --------------------------------------------------------- */

static int add_cell_chunk(struct metrics *m, unsigned c)
{
	for (unsigned w = 0; w < m->nshards; w++) {
		if (m->shards[w]->cells[c])
			continue; /* left by an earlier attempt that failed */
		m->shards[w]->cells[c] =
			zalloc_aligned(CELL_CHUNK * sizeof(uint64_t));
		if (!m->shards[w]->cells[c])
			return -ENOMEM;
	}
	return 0;
}

static int add_hist_chunk(struct metrics *m, unsigned c)
{
	for (unsigned w = 0; w < m->nshards; w++) {
		if (m->shards[w]->hists[c])
			continue;
		m->shards[w]->hists[c] =
			calloc(HIST_CHUNK, sizeof(struct hist *));
		if (!m->shards[w]->hists[c])
			return -ENOMEM;
	}
	return 0;
}

/* Gives index i of the histogram space a struct hist in every shard. */
static int add_hists(struct metrics *m, uint32_t i)
{
	for (unsigned w = 0; w < m->nshards; w++) {
		struct hist **slot = &m->shards[w]->hists[i >> HIST_CHUNK_BITS]
							 [i & (HIST_CHUNK - 1)];

		if (*slot)
			continue;
		*slot = hist_new();
		if (!*slot)
			return -ENOMEM;
	}
	return 0;
}

int metrics_new(unsigned nshards, struct metrics **out)
{
	struct metrics *m;

	if (nshards == 0 || nshards > METRICS_SHARDS_MAX)
		return -EINVAL;
	m = zalloc_aligned(sizeof(*m) + nshards * sizeof(m->shards[0]));
	if (!m)
		return -ENOMEM;
	SK_ASSERT(pthread_mutex_init(&m->lock, NULL) == 0);
	m->nshards = nshards;
	for (unsigned w = 0; w < nshards; w++) {
		m->shards[w] = zalloc_aligned(sizeof(struct shard));
		if (!m->shards[w])
			goto fail;
	}
	/* Index 0 of both spaces: the sink of zeroed handles. */
	m->scratch = hist_new();
	if (!m->scratch || add_cell_chunk(m, 0) || add_hist_chunk(m, 0) ||
	    add_hists(m, 0))
		goto fail;
	m->ncells = 1;
	m->nhists = 1;
	*out = m;
	return 0;
fail:
	metrics_free(m);
	return -ENOMEM;
}

static void family_free(struct family *f)
{
	for (size_t i = 0; i < f->nseries; i++) {
		struct series *s = f->series[i];

		for (size_t k = 0; k < f->nlabels; k++)
			free(s->values[k]);
		free(s->values);
		free(s->key);
		free(s);
	}
	for (size_t k = 0; k < f->nlabels; k++)
		free(f->label_names[k]);
	free(f->label_names);
	free(f->series);
	free(f->bounds);
	free(f->name);
	free(f->help);
	free(f);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfams; i++)
		family_free(m->fams[i]);
	free(m->fams);
	free(m->by_name.s);
	free(m->by_key.s);
	for (unsigned w = 0; w < m->nshards; w++) {
		struct shard *sh = m->shards[w];

		if (!sh)
			continue;
		for (unsigned c = 0; c < CELL_DIR; c++)
			free(sh->cells[c]);
		for (unsigned c = 0; c < HIST_DIR; c++) {
			if (!sh->hists[c])
				continue;
			for (unsigned k = 0; k < HIST_CHUNK; k++)
				hist_free(sh->hists[c][k]);
			free(sh->hists[c]);
		}
		free(sh);
	}
	hist_free(m->scratch);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

unsigned metrics_shards(const struct metrics *m)
{
	return m->nshards;
}

/* --- registration ------------------------------------------------------- */

static int label_cmp(const void *a, const void *b)
{
	const struct metrics_label *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Checks d for a series of type t and sorts its labels into lab. */
static int check_desc(enum metrics_type t, const struct metrics_desc *d,
		      struct metrics_label *lab)
{
	if (!d || !d->name || !prom_metric_name_ok(d->name))
		return -EINVAL;
	if (d->help && (strlen(d->help) > PROM_HELP_MAX ||
			!prom_utf8_ok(d->help, strlen(d->help))))
		return -EINVAL;
	if (d->nlabels > METRICS_LABELS_MAX || (d->nlabels && !d->labels))
		return -EINVAL;
	if (t != METRICS_GAUGE && d->decimals > 9)
		return -EINVAL;
	for (size_t i = 0; i < d->nlabels; i++) {
		const struct metrics_label *l = &d->labels[i];
		size_t vl;

		if (!l->name || !l->value || !prom_label_name_ok(l->name))
			return -EINVAL;
		if (t == METRICS_HISTOGRAM && strcmp(l->name, "le") == 0)
			return -EINVAL;
		vl = strlen(l->value);
		if (vl > PROM_LABEL_VALUE_MAX || !prom_utf8_ok(l->value, vl))
			return -EINVAL;
		lab[i] = *l;
	}
	qsort(lab, d->nlabels, sizeof(*lab), label_cmp);
	for (size_t i = 1; i < d->nlabels; i++)
		if (strcmp(lab[i - 1].name, lab[i].name) == 0)
			return -EINVAL;
	if (t == METRICS_HISTOGRAM && d->bounds) {
		if (d->nbounds == 0 || d->nbounds > METRICS_BOUNDS_MAX)
			return -EINVAL;
		for (size_t i = 1; i < d->nbounds; i++)
			if (d->bounds[i] <= d->bounds[i - 1])
				return -EINVAL;
	}
	return 0;
}

/* The bounds and decimals a histogram series of d gets. */
static void hist_params(const struct metrics_desc *d, const uint64_t **b,
			size_t *nb, unsigned *dec)
{
	if (d->bounds) {
		*b = d->bounds;
		*nb = d->nbounds;
		*dec = d->decimals;
	} else {
		*b = metrics_default_bounds_us;
		*nb = metrics_default_nbounds;
		*dec = METRICS_US_TO_S;
	}
}

/* Whether family f can hold a series of type t described by d (whose
 * labels, sorted, are lab). */
static bool family_fits(const struct family *f, enum metrics_type t,
			const struct metrics_desc *d,
			const struct metrics_label *lab)
{
	if (f->type != t || f->nlabels != d->nlabels)
		return false;
	for (size_t i = 0; i < f->nlabels; i++)
		if (strcmp(f->label_names[i], lab[i].name) != 0)
			return false;
	if (t == METRICS_COUNTER && f->decimals != d->decimals)
		return false;
	if (t == METRICS_HISTOGRAM) {
		const uint64_t *b;
		size_t nb;
		unsigned dec;

		hist_params(d, &b, &nb, &dec);
		if (f->decimals != dec || f->nbounds != nb ||
		    memcmp(f->bounds, b, nb * sizeof(*b)) != 0)
			return false;
	}
	return true;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static struct family *family_new(struct metrics *m, enum metrics_type t,
				 const struct metrics_desc *d,
				 const struct metrics_label *lab)
{
	struct family *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->type = t;
	f->name = xstrdup(d->name);
	f->help = xstrdup(d->help);
	f->label_names = calloc(d->nlabels + 1, sizeof(char *));
	if (!f->name || !f->help || !f->label_names)
		goto fail;
	for (size_t i = 0; i < d->nlabels; i++) {
		f->label_names[i] = xstrdup(lab[i].name);
		if (!f->label_names[i])
			goto fail;
		f->nlabels++;
	}
	if (t == METRICS_COUNTER)
		f->decimals = d->decimals;
	if (t == METRICS_HISTOGRAM) {
		const uint64_t *b;

		hist_params(d, &b, &f->nbounds, &f->decimals);
		f->bounds = malloc(f->nbounds * sizeof(*b));
		if (!f->bounds)
			goto fail;
		memcpy(f->bounds, b, f->nbounds * sizeof(*b));
	}
	if (m->nfams == m->capfams) {
		size_t nc = m->capfams ? m->capfams * 2 : 32;
		struct family **nf = realloc(m->fams, nc * sizeof(*nf));

		if (!nf)
			goto fail;
		m->fams = nf;
		m->capfams = nc;
	}
	if (table_put(&m->by_name, f->name, f))
		goto fail;
	m->fams[m->nfams++] = f;
	m->fams_sorted = false;
	return f;
fail:
	family_free(f);
	return NULL;
}

/* Takes the next index of the cell (or histogram) space, making its chunk
 * and, for histograms, its struct hist in every shard. */
static int take_index(struct metrics *m, enum metrics_type t, uint32_t *idx)
{
	int r;

	if (t != METRICS_HISTOGRAM) {
		uint32_t i = m->ncells;

		if (i >= CELLS_MAX)
			return -ENOSPC;
		if ((i & (CELL_CHUNK - 1)) == 0 &&
		    (r = add_cell_chunk(m, i >> CELL_CHUNK_BITS)))
			return r;
		*idx = i;
		return 0;
	}
	if (m->nhists >= HISTS_MAX)
		return -ENOSPC;
	if ((m->nhists & (HIST_CHUNK - 1)) == 0 &&
	    (r = add_hist_chunk(m, m->nhists >> HIST_CHUNK_BITS)))
		return r;
	if ((r = add_hists(m, m->nhists)))
		return r;
	*idx = m->nhists;
	return 0;
}

static int series_new(struct metrics *m, struct family *f,
		      const struct metrics_label *lab, struct buf *key,
		      size_t lab_off, uint32_t *idx)
{
	struct series *s;
	uint32_t i;
	int r;

	if (f->nseries == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 8;
		struct series **ns = realloc(f->series, nc * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		f->series = ns;
		f->cap = nc;
	}
	if ((r = take_index(m, f->type, &i)))
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->values = calloc(f->nlabels + 1, sizeof(char *));
	s->key = strdup(buf_cstr(key));
	if (!s->values || !s->key)
		goto fail;
	for (size_t k = 0; k < f->nlabels; k++)
		if (!(s->values[k] = xstrdup(lab[k].value)))
			goto fail;
	if (table_put(&m->by_key, s->key, s))
		goto fail;
	s->f = f;
	s->idx = i;
	s->lab_off = lab_off;
	s->lab_len = key->len - lab_off - 1; /* without the closing brace */
	f->series[f->nseries++] = s;
	f->sorted = false;
	if (f->type == METRICS_HISTOGRAM)
		m->nhists++;
	else
		m->ncells++;
	*idx = i;
	return 0;
fail:
	for (size_t k = 0; s->values && k < f->nlabels; k++)
		free(s->values[k]);
	free(s->values);
	free(s->key);
	free(s);
	return -ENOMEM;
}

static int reg(struct metrics *m, enum metrics_type t,
	       const struct metrics_desc *d, uint32_t *idx)
{
	struct metrics_label lab[METRICS_LABELS_MAX];
	struct family *f;
	struct series *s;
	struct buf key;
	size_t lab_off;
	int r;

	if ((r = check_desc(t, d, lab)))
		return r;
	buf_init(&key);
	buf_appends(&key, d->name);
	buf_appendc(&key, '{');
	lab_off = key.len;
	for (size_t i = 0; i < d->nlabels; i++) {
		if (i)
			buf_appendc(&key, ',');
		buf_appends(&key, lab[i].name);
		buf_appends(&key, "=\"");
		prom_label_value(&key, lab[i].value);
		buf_appendc(&key, '"');
	}
	buf_appendc(&key, '}');

	SK_ASSERT(pthread_mutex_lock(&m->lock) == 0);
	s = table_get(&m->by_key, buf_cstr(&key));
	if (s) {
		r = family_fits(s->f, t, d, lab) ? 0 : -EINVAL;
		if (!r)
			*idx = s->idx;
		goto out;
	}
	f = table_get(&m->by_name, d->name);
	if (f && !family_fits(f, t, d, lab)) {
		r = -EINVAL;
		goto out;
	}
	if (!f && !(f = family_new(m, t, d, lab))) {
		r = -ENOMEM;
		goto out;
	}
	r = series_new(m, f, lab, &key, lab_off, idx);
out:
	pthread_mutex_unlock(&m->lock);
	buf_fini(&key);
	return r;
}

int metrics_counter_reg(struct metrics *m, const struct metrics_desc *d,
			struct metrics_counter *out)
{
	uint32_t i;
	int r = reg(m, METRICS_COUNTER, d, &i);

	if (!r)
		out->i = i;
	return r;
}

int metrics_gauge_reg(struct metrics *m, const struct metrics_desc *d,
		      struct metrics_gauge *out)
{
	uint32_t i;
	int r = reg(m, METRICS_GAUGE, d, &i);

	if (!r)
		out->i = i;
	return r;
}

int metrics_hist_reg(struct metrics *m, const struct metrics_desc *d,
		     struct metrics_hist *out)
{
	uint32_t i;
	int r = reg(m, METRICS_HISTOGRAM, d, &i);

	if (!r)
		out->i = i;
	return r;
}

/* --- hot path ----------------------------------------------------------- */

static inline _Atomic uint64_t *cell(const struct metrics *m, unsigned w,
				     uint32_t i)
{
	SK_ASSERT(w < m->nshards && i < CELLS_MAX);
	return &m->shards[w]->cells[i >> CELL_CHUNK_BITS][i & (CELL_CHUNK - 1)];
}

static inline struct hist *hist_at(const struct metrics *m, unsigned w,
				   uint32_t i)
{
	SK_ASSERT(w < m->nshards && i < HISTS_MAX);
	return m->shards[w]->hists[i >> HIST_CHUNK_BITS][i & (HIST_CHUNK - 1)];
}

void metrics_counter_add(struct metrics *m, unsigned shard,
			 struct metrics_counter h, uint64_t n)
{
	_Atomic uint64_t *c = cell(m, shard, h.i);

	st(c, ld(c) + n);
}

void metrics_counter_set(struct metrics *m, unsigned shard,
			 struct metrics_counter h, uint64_t v)
{
	st(cell(m, shard, h.i), v);
}

void metrics_gauge_add(struct metrics *m, unsigned shard,
		       struct metrics_gauge h, double d)
{
	_Atomic uint64_t *c = cell(m, shard, h.i);

	st(c, d_bits(bits_d(ld(c)) + d));
}

void metrics_gauge_set(struct metrics *m, unsigned shard,
		       struct metrics_gauge h, double v)
{
	st(cell(m, shard, h.i), d_bits(v));
}

void metrics_hist_record(struct metrics *m, unsigned shard,
			 struct metrics_hist h, uint64_t v)
{
	hist_record(hist_at(m, shard, h.i), v);
}

struct hist *metrics_hist_of(struct metrics *m, unsigned shard,
			     struct metrics_hist h)
{
	return hist_at(m, shard, h.i);
}

/* --- reading ------------------------------------------------------------ */

uint64_t metrics_counter_read(const struct metrics *m, struct metrics_counter h)
{
	uint64_t n = 0;

	if (h.i == 0)
		return 0;
	for (unsigned w = 0; w < m->nshards; w++)
		n += ld(cell(m, w, h.i));
	return n;
}

double metrics_gauge_read(const struct metrics *m, struct metrics_gauge h)
{
	double v = 0;

	if (h.i == 0)
		return 0;
	for (unsigned w = 0; w < m->nshards; w++)
		v += bits_d(ld(cell(m, w, h.i)));
	return v;
}

void metrics_hist_read(const struct metrics *m, struct metrics_hist h,
		       struct hist *dst)
{
	hist_reset(dst);
	if (h.i == 0)
		return;
	for (unsigned w = 0; w < m->nshards; w++)
		hist_merge(dst, hist_at(m, w, h.i));
}

/* --- read side ---------------------------------------------------------- */

void metrics_foreach(struct metrics *m, metrics_series_cb cb, void *ud)
{
	struct metrics_label lab[METRICS_LABELS_MAX];

	SK_ASSERT(pthread_mutex_lock(&m->lock) == 0);
	for (size_t i = 0; i < m->nfams; i++) {
		const struct family *f = m->fams[i];

		for (size_t k = 0; k < f->nseries; k++) {
			const struct series *s = f->series[k];
			struct metrics_series_info si = {
				.name = f->name,
				.help = f->help,
				.type = f->type,
				.labels = lab,
				.nlabels = f->nlabels,
				.labels_text = s->key + s->lab_off,
				.labels_len = s->lab_len,
				.decimals = f->decimals,
				.idx = s->idx,
			};

			for (size_t j = 0; j < f->nlabels; j++) {
				lab[j].name = f->label_names[j];
				lab[j].value = s->values[j];
			}
			cb(ud, &si);
		}
	}
	pthread_mutex_unlock(&m->lock);
}

size_t metrics_series_count(struct metrics *m)
{
	size_t n;

	SK_ASSERT(pthread_mutex_lock(&m->lock) == 0);
	/* Index 0 of each space is the sink, not a series. */
	n = (size_t)(m->ncells - 1) + (size_t)(m->nhists - 1);
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* --- exposition --------------------------------------------------------- */

static int fam_cmp(const void *a, const void *b)
{
	const struct family *x = *(const struct family *const *)a;
	const struct family *y = *(const struct family *const *)b;

	return strcmp(x->name, y->name);
}

static int series_cmp(const void *a, const void *b)
{
	const struct series *x = *(const struct series *const *)a;
	const struct series *y = *(const struct series *const *)b;

	for (size_t k = 0; k < x->f->nlabels; k++) {
		int c = prom_natcmp(x->values[k], y->values[k]);

		if (c)
			return c;
	}
	return 0;
}

/* Appends "name<suffix>{labels<extra>}" (no braces when both are empty). */
static void sample_name(struct buf *o, const struct series *s,
			const char *suffix, const char *extra)
{
	bool any = s->lab_len || extra;

	buf_appends(o, s->f->name);
	buf_appends(o, suffix);
	if (!any) {
		buf_appendc(o, ' ');
		return;
	}
	buf_appendc(o, '{');
	buf_append(o, s->key + s->lab_off, s->lab_len);
	if (extra) {
		if (s->lab_len)
			buf_appendc(o, ',');
		buf_appends(o, extra);
	}
	buf_appends(o, "} ");
}

static void write_hist(struct metrics *m, struct buf *o, const struct series *s)
{
	const struct family *f = s->f;
	uint64_t cum[METRICS_BOUNDS_MAX], total;
	struct buf le;

	hist_reset(m->scratch);
	for (unsigned w = 0; w < m->nshards; w++)
		hist_merge(m->scratch, hist_at(m, w, s->idx));
	total = hist_cumulative(m->scratch, f->bounds, f->nbounds, cum);
	buf_init(&le);
	for (size_t j = 0; j < f->nbounds; j++) {
		buf_reset(&le);
		buf_appends(&le, "le=\"");
		prom_decimal(&le, f->bounds[j], f->decimals);
		buf_appendc(&le, '"');
		sample_name(o, s, "_bucket", buf_cstr(&le));
		buf_printf(o, "%llu\n", (unsigned long long)cum[j]);
	}
	buf_fini(&le);
	sample_name(o, s, "_bucket", "le=\"+Inf\"");
	buf_printf(o, "%llu\n", (unsigned long long)total);
	sample_name(o, s, "_sum", NULL);
	prom_decimal(o, hist_sum(m->scratch), f->decimals);
	buf_appendc(o, '\n');
	sample_name(o, s, "_count", NULL);
	buf_printf(o, "%llu\n", (unsigned long long)total);
}

static const char *const type_names[] = {
	[METRICS_COUNTER] = "counter",
	[METRICS_GAUGE] = "gauge",
	[METRICS_HISTOGRAM] = "histogram",
};

void metrics_write_prometheus(struct metrics *m, struct buf *o)
{
	SK_ASSERT(pthread_mutex_lock(&m->lock) == 0);
	if (!m->fams_sorted) {
		qsort(m->fams, m->nfams, sizeof(*m->fams), fam_cmp);
		m->fams_sorted = true;
	}
	for (size_t i = 0; i < m->nfams; i++) {
		struct family *f = m->fams[i];

		if (!f->sorted) {
			qsort(f->series, f->nseries, sizeof(*f->series),
			      series_cmp);
			f->sorted = true;
		}
		prom_head(o, f->name, type_names[f->type], f->help);
		for (size_t k = 0; k < f->nseries; k++) {
			const struct series *s = f->series[k];

			switch (f->type) {
			case METRICS_COUNTER:
				sample_name(o, s, "", NULL);
				prom_decimal(o,
					     metrics_counter_read(
						     m,
						     (struct metrics_counter){
							     s->idx}),
					     f->decimals);
				buf_appendc(o, '\n');
				break;
			case METRICS_GAUGE:
				sample_name(o, s, "", NULL);
				prom_double(o,
					    metrics_gauge_read(
						    m, (struct metrics_gauge){
							       s->idx}));
				buf_appendc(o, '\n');
				break;
			case METRICS_HISTOGRAM:
				write_hist(m, o, s);
				break;
			}
		}
	}
	pthread_mutex_unlock(&m->lock);
}
