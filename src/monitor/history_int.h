/*
 * history_int.h - shared by history.c (memory, sampling, downsampling,
 * queries) and history_db.c (the SQLite file).
 *
 * Series live as long as the history. Their name, labels and kind never
 * change after creation, so the writer thread may read them while the
 * loop records values; db_id is the writer's alone.
 *
 * A batch is made on the loop, written by one pool thread (hdb_write), and
 * read back on the loop in the after-work callback; one batch at a time.
 */
#ifndef SK_MONITOR_HISTORY_INT_H
#define SK_MONITOR_HISTORY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hkind { HK_GAUGE = 0, HK_COUNTER = 1, HK_QUANTILE = 2 };
enum hlevel { HL_MINUTE = 0, HL_HOUR = 1 };

struct hlabel {
	char *name;
	char *value; /* unescaped */
};

/* An aggregate of samples: what a row holds. */
struct hagg {
	double sum, min, max, last;
	uint32_t n;
};

struct hsrc;

struct hseries {
	char *metric;
	char *labels; /* a="x",b="y": sorted, escaped as on /metrics */
	char *key;    /* metric{labels} */
	struct hlabel *lab;
	size_t nlab;
	int kind; /* enum hkind */
	double *ring; /* HISTORY_MEMORY_SECONDS slots, NaN = no sample */
	int64_t last_sec; /* last second recorded, -1 none */
	struct hagg minute, hour; /* windows in progress */
	int64_t minute_ts, hour_ts; /* their start (s) */
	struct hsrc *src;	    /* quantile series: their histogram */
	int qi;			    /* ... and which quantile */
	int64_t db_id;		    /* the writer thread's */
	struct hseries *hnext;	    /* hash chain */
};

struct hrow {
	struct hseries *s;
	int64_t ts; /* window start, s */
	uint8_t level; /* enum hlevel */
	double avg, min, max, last;
	uint32_t n;
};

struct hbatch {
	struct hrow *rows;
	size_t n, cap;
	/* what the writer is asked to do besides inserting */
	bool prune;
	int64_t now_sec;
	uint64_t minute_ret_s, hour_ret_s, max_bytes;
	/* what it reports */
	int err;
	char errmsg[256];
	double db_bytes;
	double seconds;
	size_t pruned;
};

/* A row as a query reads it back. */
struct hdb_row {
	const char *labels;
	int kind;
	int64_t ts;
	double avg, min, max, last;
	uint32_t n;
};

typedef int (*hdb_row_cb)(void *ud, const struct hdb_row *r);

struct hdb;

/* Opens or creates the file, checks or makes the schema, and opens the
 * reader connection. Loop thread. 0 or -errno with err. */
int hdb_open(const char *path, struct hdb **out, char *err, size_t errlen);
/* Writes b's rows in one transaction, then prunes as b asks; fills b's
 * results. Pool thread, one at a time. */
void hdb_write(struct hdb *d, struct hbatch *b);
/* Calls cb for every row of level for metric (and labels, the series'
 * text as stored; NULL: every series) with from <= ts <= to, grouped by
 * series, in ts order within one. Loop thread. 0, cb's
 * non-zero return, or -EIO with err. */
int hdb_read(struct hdb *d, int level, const char *metric, const char *labels,
	     int64_t from, int64_t to, hdb_row_cb cb, void *ud, char *err,
	     size_t errlen);
/* Calls cb(ud, labels) for every series of metric in the file. Loop
 * thread. 0, cb's non-zero return, or -EIO with err. */
int hdb_series(struct hdb *d, const char *metric,
	       int (*cb)(void *ud, const char *labels), void *ud, char *err,
	       size_t errlen);
/* Bytes the file holds (pages in use). Loop thread. */
double hdb_bytes(struct hdb *d);
void hdb_close(struct hdb *d);

/* --- labels text (history.c) ---------------------------------------------- */

/* Parses `a="x",b="y"` (as on /metrics, any order) into a sorted array.
 * Returns 0 or -EINVAL. */
int hlabels_parse(const char *s, size_t len, struct hlabel **out,
		      size_t *n);
void hlabels_free(struct hlabel *l, size_t n);

#endif
