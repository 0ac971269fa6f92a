/*
 * history_db.c - the SQLite file of the downsampled history.
 *
 * Schema (user_version 1, application_id 'skhi'):
 *
 *   series(id, metric, labels, kind)       UNIQUE (metric, labels)
 *   minute(series, ts, avg, min, max, last, n)  PRIMARY KEY (series, ts)
 *   hour  (same)                                 WITHOUT ROWID
 *
 * ts is the window's start in Unix seconds, labels the sorted, escaped
 * label text of /metrics, kind 0 gauge, 1 counter, 2 quantile. Rows are
 * upserted: a row that exists already (a partial minute written at a
 * shutdown, completed by the next process) is merged, its avg weighted
 * by the sample counts.
 *
 * Two connections: the writer, used only by one pool thread at a time
 * (hdb_write), and a read-only one for queries on the loop. WAL mode lets
 * them work at the same time. auto_vacuum=INCREMENTAL lets pruning give
 * pages back to the file system, so max_bytes bounds the file itself.
 *
 * Pruning deletes per series (a range of the primary key), never with a
 * scan of a whole table.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/history_int.h"

#define APP_ID 0x736b6869 /* "skhi" */
#define SCHEMA 1

struct hdb {
	char *path;
	sqlite3 *w; /* writer: pool thread */
	sqlite3 *r; /* reader: loop */
	sqlite3_stmt *ins_series, *get_series;
	sqlite3_stmt *upsert[2];
};

static const char *const tables[2] = {"minute", "hour"};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS series ("
	" id INTEGER PRIMARY KEY, metric TEXT NOT NULL, labels TEXT NOT NULL,"
	" kind INTEGER NOT NULL, UNIQUE (metric, labels));"
	"CREATE TABLE IF NOT EXISTS minute ("
	" series INTEGER NOT NULL, ts INTEGER NOT NULL, avg REAL NOT NULL,"
	" min REAL NOT NULL, max REAL NOT NULL, last REAL NOT NULL,"
	" n INTEGER NOT NULL, PRIMARY KEY (series, ts)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS hour ("
	" series INTEGER NOT NULL, ts INTEGER NOT NULL, avg REAL NOT NULL,"
	" min REAL NOT NULL, max REAL NOT NULL, last REAL NOT NULL,"
	" n INTEGER NOT NULL, PRIMARY KEY (series, ts)) WITHOUT ROWID;";

static const char upsert_fmt[] =
	"INSERT INTO %s (series, ts, avg, min, max, last, n) "
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
	"ON CONFLICT (series, ts) DO UPDATE SET "
	"avg = (avg * n + excluded.avg * excluded.n) / (n + excluded.n), "
	"min = min(min, excluded.min), max = max(max, excluded.max), "
	"last = excluded.last, n = n + excluded.n";

static int64_t pragma_int(sqlite3 *db, const char *sql, int *rc)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	*rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (*rc == SQLITE_OK) {
		*rc = sqlite3_step(st);
		if (*rc == SQLITE_ROW) {
			v = sqlite3_column_int64(st, 0);
			*rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return v;
}

/* Says, in words, why path cannot hold the history when its directory
 * is the problem. Returns 0 when the directory looks usable. */
static int check_dir(const char *path, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	const char *dir;
	struct stat st;

	snprintf(tmp, sizeof(tmp), "%s", path);
	dir = dirname(tmp);
	if (stat(dir, &st) != 0) {
		snprintf(err, errlen,
			 "monitor.history.path %s: the directory %s %s", path,
			 dir,
			 errno == ENOENT ? "does not exist"
					 : "cannot be read");
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen,
			 "monitor.history.path %s: %s is not a directory", path,
			 dir);
		return -ENOTDIR;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		snprintf(err, errlen,
			 "monitor.history.path %s: the directory %s is not "
			 "writable by this user (uid %u); SQLite needs to "
			 "create its -wal and -shm files there",
			 path, dir, (unsigned)geteuid());
		return -EACCES;
	}
	if (access(path, F_OK) == 0 && access(path, R_OK | W_OK) != 0) {
		snprintf(err, errlen,
			 "monitor.history.path %s: the file is not readable and "
			 "writable by this user (uid %u)",
			 path, (unsigned)geteuid());
		return -EACCES;
	}
	return 0;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen,
		const char *path, const char *what)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "monitor.history.path %s: %s: %s", path, what,
		 msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return -EIO;
}

/* Checks that the file is ours (or empty) and brings its schema up. */
static int check_schema(struct hdb *d, char *err, size_t errlen)
{
	int rc;
	int64_t ver, app, foreign;

	ver = pragma_int(d->w, "PRAGMA user_version", &rc);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen,
			 "monitor.history.path %s: %s (is it a SQLite "
			 "database?)",
			 d->path, sqlite3_errmsg(d->w));
		return -EINVAL;
	}
	app = pragma_int(d->w, "PRAGMA application_id", &rc);
	foreign = pragma_int(d->w,
			     "SELECT count(*) FROM sqlite_master WHERE name NOT "
			     "IN ('series', 'minute', 'hour') AND name NOT LIKE "
			     "'sqlite_%'",
			     &rc);
	if ((app != 0 && app != APP_ID) || (ver == 0 && foreign > 0) ||
	    (app == 0 && ver != 0)) {
		snprintf(err, errlen,
			 "monitor.history.path %s: this SQLite database is not a "
			 "storekeep history; point path at a new file",
			 d->path);
		return -EINVAL;
	}
	if (ver > SCHEMA) {
		snprintf(err, errlen,
			 "monitor.history.path %s: written by a newer storekeep "
			 "(schema %lld, this one knows %d)",
			 d->path, (long long)ver, SCHEMA);
		return -EINVAL;
	}
	if (ver == 0) {
		char sql[128];

		/* auto_vacuum takes effect only before the first table. */
		if (exec(d->w, "PRAGMA auto_vacuum = INCREMENTAL", err, errlen,
			 d->path, "setting auto_vacuum"))
			return -EIO;
		if (exec(d->w, "BEGIN", err, errlen, d->path, "creating tables") ||
		    exec(d->w, schema_sql, err, errlen, d->path,
			 "creating tables"))
			return -EIO;
		snprintf(sql, sizeof(sql),
			 "PRAGMA application_id = %d; PRAGMA user_version = %d; "
			 "COMMIT",
			 APP_ID, SCHEMA);
		if (exec(d->w, sql, err, errlen, d->path, "creating tables"))
			return -EIO;
	}
	return 0;
}

static int prepare(struct hdb *d, const char *sql, sqlite3_stmt **st,
		   char *err, size_t errlen)
{
	if (sqlite3_prepare_v3(d->w, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
			       NULL) == SQLITE_OK)
		return 0;
	snprintf(err, errlen, "monitor.history.path %s: %s", d->path,
		 sqlite3_errmsg(d->w));
	return -EIO;
}

int hdb_open(const char *path, struct hdb **out, char *err, size_t errlen)
{
	struct hdb *d;
	sqlite3_stmt *st = NULL;
	char sql[512];
	int r, rc;

	if ((r = check_dir(path, err, errlen)) != 0)
		return r;
	d = calloc(1, sizeof(*d));
	SK_ASSERT(d != NULL);
	d->path = strdup(path);
	SK_ASSERT(d->path != NULL);
	rc = sqlite3_open_v2(path, &d->w,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "monitor.history.path %s: cannot open: %s",
			 path, d->w ? sqlite3_errmsg(d->w) : sqlite3_errstr(rc));
		r = -EIO;
		goto fail;
	}
	sqlite3_busy_timeout(d->w, 5000);
	if ((r = check_schema(d, err, errlen)) != 0)
		goto fail;
	rc = sqlite3_prepare_v2(d->w, "PRAGMA journal_mode = WAL", -1, &st,
				NULL);
	if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		snprintf(err, errlen,
			 "monitor.history.path %s: cannot switch to WAL mode "
			 "(%s); a network file system cannot hold the history",
			 path, sqlite3_errmsg(d->w));
		r = -EIO;
		goto fail;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (exec(d->w,
		 "PRAGMA synchronous = NORMAL; "
		 "PRAGMA journal_size_limit = 4194304",
		 err, errlen, path, "setting up")) {
		r = -EIO;
		goto fail;
	}
	if ((r = prepare(d,
			 "INSERT OR IGNORE INTO series (metric, labels, kind) "
			 "VALUES (?1, ?2, ?3)",
			 &d->ins_series, err, errlen)) ||
	    (r = prepare(d,
			 "SELECT id FROM series WHERE metric = ?1 AND labels = "
			 "?2",
			 &d->get_series, err, errlen)))
		goto fail;
	for (int l = 0; l < 2; l++) {
		snprintf(sql, sizeof(sql), upsert_fmt, tables[l]);
		if ((r = prepare(d, sql, &d->upsert[l], err, errlen)))
			goto fail;
	}
	rc = sqlite3_open_v2(path, &d->r, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen,
			 "monitor.history.path %s: cannot open for reading: %s",
			 path, d->r ? sqlite3_errmsg(d->r) : sqlite3_errstr(rc));
		r = -EIO;
		goto fail;
	}
	sqlite3_busy_timeout(d->r, 250);
	*out = d;
	return 0;
fail:
	sqlite3_finalize(st);
	hdb_close(d);
	return r;
}

void hdb_close(struct hdb *d)
{
	if (!d)
		return;
	sqlite3_finalize(d->ins_series);
	sqlite3_finalize(d->get_series);
	for (int l = 0; l < 2; l++)
		sqlite3_finalize(d->upsert[l]);
	sqlite3_close(d->r);
	sqlite3_close(d->w);
	free(d->path);
	free(d);
}

/* --- the writer (pool thread) ---------------------------------------------- */

static int series_id(struct hdb *d, struct hseries *s, int64_t *id)
{
	int rc;

	if (s->db_id) {
		*id = s->db_id;
		return SQLITE_OK;
	}
	sqlite3_reset(d->ins_series);
	sqlite3_bind_text(d->ins_series, 1, s->metric, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->ins_series, 2, s->labels, -1, SQLITE_STATIC);
	sqlite3_bind_int(d->ins_series, 3, s->kind);
	rc = sqlite3_step(d->ins_series);
	if (rc != SQLITE_DONE)
		return rc;
	sqlite3_reset(d->get_series);
	sqlite3_bind_text(d->get_series, 1, s->metric, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->get_series, 2, s->labels, -1, SQLITE_STATIC);
	rc = sqlite3_step(d->get_series);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
	*id = sqlite3_column_int64(d->get_series, 0);
	sqlite3_reset(d->get_series);
	/* Only the writer reads or writes db_id. */
	s->db_id = *id;
	return SQLITE_OK;
}

static void fail(struct hbatch *b, sqlite3 *db, const char *what)
{
	if (b->err)
		return;
	b->err = -EIO;
	snprintf(b->errmsg, sizeof(b->errmsg), "%s: %s", what,
		 sqlite3_errmsg(db));
}

static void insert_rows(struct hdb *d, struct hbatch *b)
{
	int rc;

	if (b->n == 0)
		return;
	if (sqlite3_exec(d->w, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK) {
		fail(b, d->w, "beginning a write");
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		const struct hrow *r = &b->rows[i];
		sqlite3_stmt *st = d->upsert[r->level];
		int64_t id = 0;

		rc = series_id(d, r->s, &id);
		if (rc != SQLITE_OK)
			goto fail;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, r->ts);
		sqlite3_bind_double(st, 3, r->avg);
		sqlite3_bind_double(st, 4, r->min);
		sqlite3_bind_double(st, 5, r->max);
		sqlite3_bind_double(st, 6, r->last);
		sqlite3_bind_int64(st, 7, r->n);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			goto fail;
	}
	if (sqlite3_exec(d->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		fail(b, d->w, "committing");
		sqlite3_exec(d->w, "ROLLBACK", NULL, NULL, NULL);
		/* Series ids made in the lost transaction are not real. */
		for (size_t i = 0; i < b->n; i++)
			b->rows[i].s->db_id = 0;
	}
	return;
fail:
	fail(b, d->w, "writing rows");
	sqlite3_exec(d->w, "ROLLBACK", NULL, NULL, NULL);
	for (size_t i = 0; i < b->n; i++)
		b->rows[i].s->db_id = 0;
}

/* The series ids in the file. */
static int64_t *all_ids(struct hdb *d, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int64_t *ids = NULL;
	size_t cap = 0;

	*n = 0;
	if (sqlite3_prepare_v2(d->w, "SELECT id FROM series", -1, &st,
			       NULL) != SQLITE_OK)
		return NULL;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 256;
			ids = realloc(ids, cap * sizeof(*ids));
			SK_ASSERT(ids != NULL);
		}
		ids[(*n)++] = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return ids;
}

/* Deletes the rows of level older than cut, series by series. */
static int delete_before(struct hdb *d, int level, int64_t cut,
			 const int64_t *ids, size_t n, size_t *deleted)
{
	sqlite3_stmt *st = NULL;
	char sql[96];
	int rc;

	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE series = ?1 AND ts < ?2",
		 tables[level]);
	rc = sqlite3_prepare_v2(d->w, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_exec(d->w, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_int64(st, 2, cut);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			*deleted += (size_t)sqlite3_changes(d->w);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(d->w, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		sqlite3_exec(d->w, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Oldest and newest ts of level over all series; false when empty. */
static bool span(struct hdb *d, int level, const int64_t *ids, size_t n,
		 int64_t *lo, int64_t *hi)
{
	sqlite3_stmt *st = NULL;
	char sql[96];
	bool any = false;

	snprintf(sql, sizeof(sql),
		 "SELECT min(ts), max(ts) FROM %s WHERE series = ?1",
		 tables[level]);
	if (sqlite3_prepare_v2(d->w, sql, -1, &st, NULL) != SQLITE_OK)
		return false;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, ids[i]);
		if (sqlite3_step(st) != SQLITE_ROW ||
		    sqlite3_column_type(st, 0) == SQLITE_NULL)
			continue;
		if (!any || sqlite3_column_int64(st, 0) < *lo)
			*lo = sqlite3_column_int64(st, 0);
		if (!any || sqlite3_column_int64(st, 1) > *hi)
			*hi = sqlite3_column_int64(st, 1);
		any = true;
	}
	sqlite3_finalize(st);
	return any;
}

static double file_bytes(sqlite3 *db)
{
	int rc;
	int64_t pages = pragma_int(db, "PRAGMA page_count", &rc);
	int64_t size = pragma_int(db, "PRAGMA page_size", &rc);

	return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

static void shrink(struct hdb *d)
{
	sqlite3_exec(d->w, "PRAGMA incremental_vacuum", NULL, NULL, NULL);
	/* Copies the shrunken database back so the file itself shrinks;
	 * passive, so a query in progress is never waited for. */
	sqlite3_exec(d->w, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);
}

static void prune(struct hdb *d, struct hbatch *b)
{
	static const int64_t width[2] = {60, 3600};
	size_t n = 0;
	int64_t *ids = all_ids(d, &n);
	bool deleted = false;
	int rc;

	if (b->prune) {
		rc = delete_before(d, HL_MINUTE,
				   b->now_sec - (int64_t)b->minute_ret_s, ids, n,
				   &b->pruned);
		if (rc == SQLITE_OK)
			rc = delete_before(d, HL_HOUR,
					   b->now_sec - (int64_t)b->hour_ret_s,
					   ids, n, &b->pruned);
		if (rc != SQLITE_OK)
			fail(b, d->w, "pruning by retention");
		deleted = true;
	}
	/* Over budget: drop the oldest minute rows, then hour rows, down to
	 * 90% of max_bytes so that the next batches do not prune again at
	 * once. A few rounds, since the share of each table is a guess. */
	for (int round = 0; round < 16; round++) {
		double used = file_bytes(d->w), target = 0.9 * (double)b->max_bytes;
		int level = HL_MINUTE;
		int64_t lo = 0, hi = 0, cut;
		double f;

		if (used <= (double)b->max_bytes && !(round && used > target))
			break;
		if (!span(d, HL_MINUTE, ids, n, &lo, &hi)) {
			level = HL_HOUR;
			if (!span(d, HL_HOUR, ids, n, &lo, &hi))
				break;
		}
		f = (used - target) / used;
		if (f < 0.05)
			f = 0.05;
		cut = lo + (int64_t)((double)(hi + width[level] - lo) * f);
		if (cut <= lo)
			cut = lo + width[level];
		if (delete_before(d, level, cut, ids, n, &b->pruned) !=
		    SQLITE_OK) {
			fail(b, d->w, "pruning to max_bytes");
			break;
		}
		shrink(d);
		deleted = false;
	}
	if (deleted)
		shrink(d);
	free(ids);
}

void hdb_write(struct hdb *d, struct hbatch *b)
{
	uint64_t t0 = clock_mono_ns();

	insert_rows(d, b);
	prune(d, b);
	b->db_bytes = file_bytes(d->w);
	b->seconds = (double)(clock_mono_ns() - t0) / 1e9;
}

/* --- the reader (loop) --------------------------------------------------------- */

int hdb_read(struct hdb *d, int level, const char *metric, const char *labels,
	     int64_t from, int64_t to, hdb_row_cb cb, void *ud, char *err,
	     size_t errlen)
{
	sqlite3_stmt *st = NULL;
	char sql[256];
	int rc, r = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT s.labels, s.kind, t.ts, t.avg, t.min, t.max, t.last, "
		 "t.n FROM series s JOIN %s t ON t.series = s.id "
		 "WHERE s.metric = ?1 AND (?4 IS NULL OR s.labels = ?4) "
		 "AND t.ts BETWEEN ?2 AND ?3 "
		 "ORDER BY s.id, t.ts",
		 tables[level]);
	rc = sqlite3_prepare_v2(d->r, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, metric, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, to);
	if (labels)
		sqlite3_bind_text(st, 4, labels, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct hdb_row row = {
			.labels = (const char *)sqlite3_column_text(st, 0),
			.kind = sqlite3_column_int(st, 1),
			.ts = sqlite3_column_int64(st, 2),
			.avg = sqlite3_column_double(st, 3),
			.min = sqlite3_column_double(st, 4),
			.max = sqlite3_column_double(st, 5),
			.last = sqlite3_column_double(st, 6),
			.n = (uint32_t)sqlite3_column_int64(st, 7),
		};

		if (!row.labels)
			row.labels = "";
		if ((r = cb(ud, &row)) != 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	return r;
fail:
	snprintf(err, errlen, "reading the history: %s", sqlite3_errmsg(d->r));
	sqlite3_finalize(st);
	return -EIO;
}

int hdb_series(struct hdb *d, const char *metric,
	       int (*cb)(void *ud, const char *labels), void *ud, char *err,
	       size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(d->r, "SELECT labels FROM series WHERE metric = ?1",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, metric, -1, SQLITE_STATIC);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *l = (const char *)sqlite3_column_text(st, 0);

			if ((r = cb(ud, l ? l : "")) != 0)
				break;
		}
		if (r == 0 && rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (r == 0 && rc != SQLITE_OK) {
		snprintf(err, errlen, "reading the history: %s",
			 sqlite3_errmsg(d->r));
		r = -EIO;
	}
	sqlite3_finalize(st);
	return r;
}

double hdb_bytes(struct hdb *d)
{
	return file_bytes(d->r);
}
