/*
 * source_sqlite.c - SQLite databases: online snapshots and their checks.
 *
 * The snapshot is taken with SQLite's online backup API in one step
 * (sqlite3_backup_step(-1)), which copies every page inside one read
 * transaction: the copy is the database as of one instant, however busy
 * the shop is. In WAL mode writers carry on meanwhile; in rollback-journal
 * mode they wait (up to their busy timeout) while the pages are copied.
 * Copying in smaller steps would let writers restart the copy forever.
 *
 * The copy goes to the run's scratch directory, its tables are counted
 * (the counts go into the manifest, for verify and for the operator), and
 * it is streamed into the archive with the metadata of the original file.
 *
 * Checks (verify) run on a restored copy: PRAGMA integrity_check, the row
 * counts against the manifest, then the job's SQL assertions.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup_int.h"

#define BUSY_WAIT_MS 30000
/* The page cache of the connection that checks a restored copy, in KiB
 * (negative: SQLite's way of saying KiB rather than pages). */
#define CHECK_CACHE_KIB "-65536"

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Appends "name" quoted as an SQL identifier. */
static void quote_ident(struct buf *b, const char *name)
{
	buf_appendc(b, '"');
	for (const char *p = name; *p; p++) {
		if (*p == '"')
			buf_appendc(b, '"');
		buf_appendc(b, *p);
	}
	buf_appendc(b, '"');
}

/* Counts the rows of every table of db into tables. */
static int count_tables(sqlite3 *db, json_t *tables, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL, *cnt = NULL;
	struct buf q;
	int rc;

	buf_init(&q);
	rc = sqlite3_prepare_v2(db,
				"SELECT name FROM sqlite_master WHERE type = 'table' "
				"AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		buf_reset(&q);
		buf_appends(&q, "SELECT count(*) FROM ");
		quote_ident(&q, name);
		rc = sqlite3_prepare_v2(db, buf_cstr(&q), -1, &cnt, NULL);
		if (rc != SQLITE_OK)
			goto fail;
		rc = sqlite3_step(cnt);
		if (rc != SQLITE_ROW)
			goto fail;
		json_object_set_new(tables, name,
				    json_integer(sqlite3_column_int64(cnt, 0)));
		sqlite3_finalize(cnt);
		cnt = NULL;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	buf_fini(&q);
	return 0;
fail:
	snprintf(err, errlen, "cannot count rows: %s", sqlite3_errmsg(db));
	sqlite3_finalize(cnt);
	sqlite3_finalize(st);
	buf_fini(&q);
	return -EIO;
}

/* Copies src to the file dst in one read transaction of src. */
static int snapshot(struct run_ctx *c, const char *src, const char *dst)
{
	sqlite3 *from = NULL, *to = NULL;
	sqlite3_backup *b;
	int rc, waited = 0, r = 0;

	rc = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		r = run_fail(c, -EIO, "cannot open %s: %s", src,
			     from ? sqlite3_errmsg(from) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(from, 5000);
	rc = sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			     NULL);
	if (rc != SQLITE_OK) {
		r = run_fail(c, -EIO, "cannot create the snapshot %s: %s", dst,
			     to ? sqlite3_errmsg(to) : sqlite3_errstr(rc));
		goto out;
	}
	/* The copy is scratch, thrown away after the run: a crash loses
	 * nothing, so it needs no rollback journal and no fsync (which, for
	 * a large database, would cost a write of the whole copy to disk). */
	sqlite3_exec(to, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF",
		     NULL, NULL, NULL);
	b = sqlite3_backup_init(to, "main", from, "main");
	if (b == NULL) {
		r = run_fail(c, -EIO, "cannot start the backup of %s: %s", src,
			     sqlite3_errmsg(to));
		goto out;
	}
	for (;;) {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
		    waited < BUSY_WAIT_MS && !run_cancelled(c)) {
			sleep_ms(50);
			waited += 50;
			continue;
		}
		break;
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		r = run_fail(c, run_cancelled(c) ? -ECANCELED : -EIO,
			     "cannot copy %s: %s", src, sqlite3_errstr(rc));
		goto out;
	}
	if (sqlite3_errcode(to) != SQLITE_OK) {
		r = run_fail(c, -EIO, "cannot copy %s: %s", src,
			     sqlite3_errmsg(to));
		goto out;
	}
out:
	sqlite3_close(to);
	sqlite3_close(from);
	return r;
}

int source_sqlite_backup(struct run_ctx *c, const struct cfg_backup_source *s,
			 json_t *info)
{
	char dst[PATH_MAX], base[PATH_MAX], apath[PATH_MAX], why[512];
	json_t *tables = json_object(), *entry = NULL;
	struct stat st;
	sqlite3 *db = NULL;
	int fd = -1, r;

	json_object_set_new(info, "path", json_string(s->path));
	if (stat(s->path, &st) < 0) {
		r = run_fail(c, -errno, "database %s: %s", s->path,
			     strerror(errno));
		goto out;
	}
	snprintf(dst, sizeof(dst), "%s/%s.db", run_workdir(c), s->name);
	r = snapshot(c, s->path, dst);
	if (r < 0)
		goto out;
	backup_failpoint("snapshot");
	if (sqlite3_open_v2(dst, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    count_tables(db, tables, why, sizeof(why)) < 0) {
		r = run_fail(c, -EIO, "snapshot of %s: %s", s->path,
			     db ? sqlite3_errmsg(db) : "cannot open");
		goto out;
	}
	/* Closing the last connection folds the copy's WAL back in, so the
	 * file alone is the whole snapshot. */
	sqlite3_close(db);
	db = NULL;
	fd = open(dst, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = run_fail(c, -errno, "cannot open the snapshot %s: %s", dst,
			     strerror(errno));
		goto out;
	}
	snprintf(base, sizeof(base), "%s", s->path);
	snprintf(apath, sizeof(apath), "%s/%s", s->name, basename(base));
	r = run_add_fd(c, apath, "sqlite", fd, &st, &entry);
	if (r < 0)
		goto out;
	json_object_set(entry, "tables", tables);
	json_object_set(info, "tables", tables);
out:
	if (fd >= 0)
		close(fd);
	sqlite3_close(db);
	unlink(dst);
	json_decref(tables);
	return r;
}

static int truthy(sqlite3_stmt *st)
{
	const char *t;

	switch (sqlite3_column_type(st, 0)) {
	case SQLITE_INTEGER:
		return sqlite3_column_int64(st, 0) != 0;
	case SQLITE_FLOAT:
		return sqlite3_column_double(st, 0) != 0.0;
	case SQLITE_TEXT:
		t = (const char *)sqlite3_column_text(st, 0);
		return t[0] && strcmp(t, "0") != 0 && strcasecmp(t, "f") != 0 &&
		       strcasecmp(t, "false") != 0;
	default:
		return 0;
	}
}

int source_sqlite_check(const char *path, json_t *tables,
			const struct cfg_backup_verify *v, char *err,
			size_t errlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	json_t *have = json_object();
	struct buf msg;
	int rc, r = 0;

	buf_init(&msg);
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the restored database: %s",
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		r = -EBADMSG;
		goto out;
	}
	/* integrity_check looks every row up in each of its table's indexes:
	 * with SQLite's default 2 MiB page cache most of those lookups are
	 * a read(2) of a page the kernel has cached anyway. */
	sqlite3_exec(db, "PRAGMA cache_size = " CHECK_CACHE_KIB, NULL, NULL,
		     NULL);
	rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(20)", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "integrity_check cannot run: %s",
			 sqlite3_errmsg(db));
		r = -EBADMSG;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		if (t && strcmp(t, "ok") == 0)
			continue;
		buf_printf(&msg, "%s%s", msg.len ? "; " : "", t ? t : "?");
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE || msg.len) {
		snprintf(err, errlen, "PRAGMA integrity_check failed: %s",
			 msg.len ? buf_cstr(&msg) : sqlite3_errmsg(db));
		r = -EBADMSG;
		goto out;
	}
	if (tables) {
		if (count_tables(db, have, err, errlen) < 0) {
			r = -EBADMSG;
			goto out;
		}
		r = bk_counts_match(tables, have, err, errlen);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; v && i < v->nassertions; i++) {
		const char *sql = v->assertions[i].sql;

		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "assertion \"%s\" cannot run: %s", sql,
				 sqlite3_errmsg(db));
			r = -EBADMSG;
			goto out;
		}
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW || !truthy(st)) {
			snprintf(err, errlen, "assertion \"%s\" failed (%s)", sql,
				 rc == SQLITE_ROW ? "its first column is not true"
						  : "it returned no row");
			r = -EBADMSG;
			goto out;
		}
		sqlite3_finalize(st);
		st = NULL;
	}
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	json_decref(have);
	buf_fini(&msg);
	return r;
}
