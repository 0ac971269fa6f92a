/*
 * probe_db.c - the postgresql and sqlite probes, run in the libuv thread
 * pool.
 *
 * A pool thread must never be held by a dead server for longer than the
 * probe's timeout, or hung probes would starve the pool (which DNS
 * lookups and the history writer share). So the worker keeps the
 * deadline itself: libpq's non-blocking API (PQconnectStartParams,
 * PQconnectPoll, PQsendQuery, PQconsumeInput) waits in poll() for at most
 * the time left, and SQLite's progress handler interrupts a quick_check
 * that runs past it, with the busy timeout set to the time left. The one
 * wait we cannot bound is a host name lookup inside libpq (getaddrinfo
 * has its own timeouts); use hostaddr= or an address to avoid it.
 *
 * PostgreSQL (10 or later) gets one connection per run and these
 * queries, each allowed to fail on its own (a missing privilege turns the
 * probe warning, not critical; grant the role pg_monitor to see every
 * session and the replication views):
 *   - server version, recovery (replica) state, max_connections, client
 *     backends, the age of the oldest running query and of the oldest
 *     open transaction (other sessions than ours);
 *   - replication: on a primary, the standbys in pg_stat_replication and
 *     the largest replay lag in bytes (pg_current_wal_lsn() - replay_lsn)
 *     and seconds (replay_lag); on a replica, received but not yet
 *     replayed WAL in bytes, and the time since the last replayed
 *     transaction when some WAL waits for replay (0 when all is
 *     replayed);
 *   - pg_stat_database sums: blocks hit and read (the cache hit ratio is
 *     hit / (hit + read) since the statistics were reset) and deadlocks;
 *   - the size of every database we may connect to.
 *
 * SQLite: the file's size and its -wal file's, and PRAGMA quick_check on
 * a read-only connection. quick_check holds a read transaction while it
 * runs: in WAL mode that only delays checkpoints, but in rollback-journal
 * mode writers wait for it, so give a large database a long interval.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/log.h"
#include "monitor/probe_int.h"

/* --- running in the pool ----------------------------------------------------- */

static void work_after_cb(uv_work_t *req, int status);

static void work_start(struct prun *r, uv_work_cb fn, const char *target)
{
	struct work_run *w = &r->u.work;
	int e;

	w->deadline_ns = r->start_ns + (uint64_t)r->p->timeout_ms * 1000000u;
	w->timeout_ms = r->p->timeout_ms;
	w->target = strdup(target);
	SK_ASSERT(w->target != NULL);
	w->state = PROBE_UNKNOWN;
	w->req.data = r;
	e = uv_queue_work(r->p->owner->loop, &w->req, fn, work_after_cb);
	if (e) {
		prun_finish(r, PROBE_UNKNOWN, NULL, "cannot queue the check: %s",
			    uv_strerror(e));
		return;
	}
	prun_hold(r);
}

static void work_abort(struct prun *r, struct buf *why)
{
	/* Cancelling works only while no thread has taken the job; once
	 * one has, it gives up at the same deadline on its own. */
	if (uv_cancel((uv_req_t *)&r->u.work.req) == 0)
		buf_appends(why, "(waiting for a thread of the pool)");
}

/* The first line of a libpq or SQLite message, without the trailing
 * newline, into out. */
static void first_line(char *out, size_t n, const char *prefix,
		       const char *msg)
{
	size_t l;

	if (!msg || !*msg)
		msg = "unknown error";
	l = strcspn(msg, "\n");
	snprintf(out, n, "%s%.*s", prefix, (int)l, msg);
}

/* --- postgresql -------------------------------------------------------------- */

/* Waits for the connection's socket until the deadline. 0, or -ETIMEDOUT
 * or another -errno. */
static int pg_wait(PGconn *c, bool rd, bool wr, uint64_t deadline)
{
	struct pollfd pfd = {.fd = PQsocket(c)};

	if (pfd.fd < 0)
		return -EBADF;
	pfd.events = (short)((rd ? POLLIN : 0) | (wr ? POLLOUT : 0));
	for (;;) {
		uint64_t now = clock_mono_ns();
		int k;

		if (now >= deadline)
			return -ETIMEDOUT;
		k = poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000));
		if (k > 0)
			return 0;
		if (k < 0 && errno != EINTR)
			return -errno;
	}
}

static PGconn *pg_connect(struct work_run *w)
{
	const char *kw[] = {"fallback_application_name", "dbname", NULL};
	const char *val[] = {"storekeep-probe", w->target, NULL};
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	PGconn *c;

	/* dbname comes last and is expanded: the user's conninfo wins over
	 * our defaults. */
	c = PQconnectStartParams(kw, val, 1);
	if (!c) {
		snprintf(w->msg, sizeof(w->msg), "out of memory");
		return NULL;
	}
	if (PQstatus(c) == CONNECTION_BAD) {
		first_line(w->msg, sizeof(w->msg), "cannot connect: ",
			   PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	while (ps != PGRES_POLLING_OK) {
		int e;

		if (ps == PGRES_POLLING_FAILED) {
			first_line(w->msg, sizeof(w->msg), "cannot connect: ",
				   PQerrorMessage(c));
			PQfinish(c);
			return NULL;
		}
		e = pg_wait(c, ps == PGRES_POLLING_READING,
			    ps == PGRES_POLLING_WRITING, w->deadline_ns);
		if (e) {
			snprintf(w->msg, sizeof(w->msg), "connecting: %s",
				 e == -ETIMEDOUT ? "timed out" : strerror(-e));
			PQfinish(c);
			return NULL;
		}
		ps = PQconnectPoll(c);
	}
	if (PQsetnonblocking(c, 1) != 0) {
		first_line(w->msg, sizeof(w->msg), "", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

/*
 * Runs sql and returns its (first) result set, or NULL with err set.
 * *timed_out tells a deadline apart from an SQL error (after which the
 * connection is still usable).
 */
static PGresult *pg_query(PGconn *c, const char *sql, uint64_t deadline,
			  char *err, size_t errlen, bool *timed_out)
{
	PGresult *res = NULL, *x;
	int f, e;

	*timed_out = false;
	if (!PQsendQuery(c, sql)) {
		first_line(err, errlen, "", PQerrorMessage(c));
		return NULL;
	}
	while ((f = PQflush(c)) != 0) {
		if (f < 0 || (e = pg_wait(c, true, true, deadline)) != 0 ||
		    !PQconsumeInput(c))
			goto io_error;
	}
	for (;;) {
		while (PQisBusy(c)) {
			if ((e = pg_wait(c, true, false, deadline)) != 0 ||
			    !PQconsumeInput(c))
				goto io_error;
		}
		x = PQgetResult(c);
		if (!x)
			break;
		if (!res)
			res = x;
		else
			PQclear(x);
	}
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		first_line(err, errlen, "",
			   res ? PQresultErrorMessage(res) : "no result");
		PQclear(res);
		return NULL;
	}
	return res;
io_error:
	PQclear(res);
	if (clock_mono_ns() >= deadline) {
		*timed_out = true;
		snprintf(err, errlen, "timed out");
	} else {
		first_line(err, errlen, "", PQerrorMessage(c));
	}
	return NULL;
}

static double num(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return NAN;
	return strtod(PQgetvalue(r, row, col), NULL);
}

static const char q_basic[] =
	"SELECT split_part(current_setting('server_version'), ' ', 1), "
	"pg_is_in_recovery(), "
	"current_setting('max_connections')::int, "
	"(SELECT count(*) FROM pg_stat_activity "
	" WHERE backend_type = 'client backend'), "
	"(SELECT coalesce(extract(epoch FROM "
	"  max(clock_timestamp() - query_start)), 0) FROM pg_stat_activity "
	" WHERE state = 'active' AND backend_type = 'client backend' "
	" AND pid <> pg_backend_pid()), "
	"(SELECT coalesce(extract(epoch FROM "
	"  max(clock_timestamp() - xact_start)), 0) FROM pg_stat_activity "
	" WHERE xact_start IS NOT NULL AND backend_type = 'client backend' "
	" AND pid <> pg_backend_pid())";

static const char q_repl_primary[] =
	"SELECT count(*), "
	"coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0), "
	"coalesce(extract(epoch FROM max(replay_lag)), 0) "
	"FROM pg_stat_replication";

static const char q_repl_replica[] =
	"SELECT 0, coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
	"pg_last_wal_replay_lsn()), 0), "
	"CASE WHEN pg_last_wal_receive_lsn() IS NULL OR "
	"pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
	"ELSE coalesce(extract(epoch FROM clock_timestamp() - "
	"pg_last_xact_replay_timestamp()), 0) END";

static const char q_dbstat[] =
	"SELECT coalesce(sum(blks_hit), 0)::float8, "
	"coalesce(sum(blks_read), 0)::float8, "
	"coalesce(sum(deadlocks), 0)::float8 FROM pg_stat_database";

static const char q_sizes[] =
	"SELECT datname, pg_database_size(oid) FROM pg_database "
	"WHERE datallowconn AND NOT datistemplate "
	"AND has_database_privilege(oid, 'CONNECT') ORDER BY datname "
	"LIMIT 256";

static void pg_work(uv_work_t *req)
{
	struct prun *r = req->data;
	struct work_run *w = &r->u.work;
	struct pg_stats *s = &w->pg;
	char err[256], failed[256] = "";
	bool to;
	PGresult *res;
	PGconn *c;

	w->state = PROBE_CRITICAL;
	c = pg_connect(w);
	if (!c)
		return;
	s->connected = true;
	res = pg_query(c, q_basic, w->deadline_ns, err, sizeof(err), &to);
	if (!res)
		goto failed;
	snprintf(s->version, sizeof(s->version), "%s", PQgetvalue(res, 0, 0));
	s->is_replica = PQgetvalue(res, 0, 1)[0] == 't';
	s->max_connections = num(res, 0, 2);
	s->connections = num(res, 0, 3);
	s->oldest_query_s = num(res, 0, 4);
	s->oldest_xact_s = num(res, 0, 5);
	s->have_conn = true;
	PQclear(res);

	res = pg_query(c, s->is_replica ? q_repl_replica : q_repl_primary,
		       w->deadline_ns, err, sizeof(err), &to);
	if (!res)
		goto failed;
	s->replicas = num(res, 0, 0);
	s->lag_bytes = num(res, 0, 1);
	s->lag_seconds = num(res, 0, 2);
	s->have_repl = true;
	PQclear(res);

	res = pg_query(c, q_dbstat, w->deadline_ns, err, sizeof(err), &to);
	if (!res)
		goto failed;
	s->blks_hit = num(res, 0, 0);
	s->blks_read = num(res, 0, 1);
	s->deadlocks = num(res, 0, 2);
	s->have_db = true;
	PQclear(res);

	res = pg_query(c, q_sizes, w->deadline_ns, err, sizeof(err), &to);
	if (!res)
		goto failed;
	s->ndbs = (size_t)PQntuples(res);
	if (s->ndbs > PROBE_PG_DBS_MAX)
		s->ndbs = PROBE_PG_DBS_MAX;
	s->dbs = calloc(s->ndbs ? s->ndbs : 1, sizeof(*s->dbs));
	SK_ASSERT(s->dbs != NULL);
	for (size_t i = 0; i < s->ndbs; i++) {
		snprintf(s->dbs[i].name, sizeof(s->dbs[i].name), "%s",
			 PQgetvalue(res, (int)i, 0));
		s->dbs[i].bytes = num(res, (int)i, 1);
	}
	PQclear(res);
	w->state = PROBE_OK;
	PQfinish(c);
	return;
failed:
	/* Up, but a query failed: warning, unless time ran out. */
	snprintf(failed, sizeof(failed), "%s", err);
	w->state = to ? PROBE_CRITICAL : PROBE_WARNING;
	snprintf(w->msg, sizeof(w->msg), "connected, but a query %s: %s",
		 to ? "timed out" : "failed", failed);
	PQfinish(c);
}

enum {
	PG_CONNECTIONS,
	PG_MAX_CONNECTIONS,
	PG_OLDEST_QUERY,
	PG_OLDEST_XACT,
	PG_LAG_BYTES,
	PG_LAG_SECONDS,
	PG_CACHE_HIT,
	PG_IS_REPLICA,
	PG_REPLICAS,
	PG_NGAUGES,
};

static const struct {
	const char *name, *help;
} pg_gauges[PG_NGAUGES] = {
	[PG_CONNECTIONS] = {"storekeep_pg_connections",
			    "Client connections to the PostgreSQL server."},
	[PG_MAX_CONNECTIONS] = {"storekeep_pg_max_connections",
				"The server's max_connections."},
	[PG_OLDEST_QUERY] = {"storekeep_pg_oldest_query_seconds",
			     "Age of the oldest running query (0: none)."},
	[PG_OLDEST_XACT] = {"storekeep_pg_oldest_transaction_seconds",
			    "Age of the oldest open transaction (0: none)."},
	[PG_LAG_BYTES] = {"storekeep_pg_replication_lag_bytes",
			  "Replication lag in bytes of WAL: the largest of the "
			  "standbys on a primary, received but not replayed on "
			  "a replica."},
	[PG_LAG_SECONDS] = {"storekeep_pg_replication_lag_seconds",
			    "Replication lag in seconds (replay_lag on a "
			    "primary, time since the last replay on a "
			    "replica with WAL waiting)."},
	[PG_CACHE_HIT] = {"storekeep_pg_cache_hit_ratio",
			  "Blocks found in shared buffers over blocks needed, "
			  "since the statistics were reset."},
	[PG_IS_REPLICA] = {"storekeep_pg_replica",
			   "1 when the server is a replica (in recovery)."},
	[PG_REPLICAS] = {"storekeep_pg_replicas",
			 "Standbys streaming from this primary."},
};

enum { PGC_DEADLOCKS, PGC_BLKS_HIT, PGC_BLKS_READ };

static const struct {
	const char *name, *help;
} pg_counters[3] = {
	[PGC_DEADLOCKS] = {"storekeep_pg_deadlocks_total",
			   "Deadlocks detected, all databases."},
	[PGC_BLKS_HIT] = {"storekeep_pg_blocks_hit_total",
			  "Blocks found in shared buffers, all databases."},
	[PGC_BLKS_READ] = {"storekeep_pg_blocks_read_total",
			   "Blocks read from disk or the OS cache, all "
			   "databases."},
};

static void pg_register(struct probe *p)
{
	if (p->m_pg[PG_CONNECTIONS].i)
		return;
	for (int i = 0; i < PG_NGAUGES; i++)
		p->m_pg[i] = probe_gauge(p, pg_gauges[i].name, pg_gauges[i].help,
					 NULL, NULL);
	for (int i = 0; i < 3; i++)
		p->m_pg_c[i] = probe_counter(p, pg_counters[i].name,
					     pg_counters[i].help);
}

static struct metrics_gauge *pg_db_gauge(struct probe *p, const char *db)
{
	struct pg_db_gauge *g;

	for (size_t i = 0; i < p->nm_pg_db; i++)
		if (strcmp(p->m_pg_db[i].name, db) == 0)
			return &p->m_pg_db[i].g;
	if (p->nm_pg_db >= PROBE_PG_DBS_MAX)
		return NULL;
	g = realloc(p->m_pg_db, (p->nm_pg_db + 1) * sizeof(*g));
	SK_ASSERT(g != NULL);
	p->m_pg_db = g;
	g = &p->m_pg_db[p->nm_pg_db++];
	g->name = strdup(db);
	SK_ASSERT(g->name != NULL);
	g->g = probe_gauge(p, "storekeep_pg_database_size_bytes",
			   "Size of a database on disk.", "database", db);
	return &g->g;
}

static void pg_clear(struct probe *p)
{
	for (int i = 0; i < PG_NGAUGES; i++)
		probe_set(p, p->m_pg[i], NAN);
	for (size_t i = 0; i < p->nm_pg_db; i++)
		probe_set(p, p->m_pg_db[i].g, NAN);
}

static void set_counter(struct probe *p, struct metrics_counter c, double v)
{
	if (!isnan(v) && v >= 0)
		metrics_counter_set(p->owner->reg, p->owner->shard, c,
				    (uint64_t)v);
}

static json_t *jnum(double v)
{
	return isnan(v) ? json_null() : json_real(v);
}

static void pg_done(struct prun *r)
{
	struct probe *p = r->p;
	struct work_run *w = &r->u.work;
	const struct pg_stats *s = &w->pg;
	double v[PG_NGAUGES], hit = NAN, total = s->blks_hit + s->blks_read;
	json_t *d = json_object(), *dbs = json_object();
	char lag[96] = "";

	pg_register(p);
	for (int i = 0; i < PG_NGAUGES; i++)
		v[i] = NAN;
	if (s->have_conn) {
		v[PG_CONNECTIONS] = s->connections;
		v[PG_MAX_CONNECTIONS] = s->max_connections;
		v[PG_OLDEST_QUERY] = s->oldest_query_s;
		v[PG_OLDEST_XACT] = s->oldest_xact_s;
		v[PG_IS_REPLICA] = s->is_replica;
	}
	if (s->have_repl) {
		v[PG_LAG_BYTES] = s->lag_bytes;
		v[PG_LAG_SECONDS] = s->lag_seconds;
		v[PG_REPLICAS] = s->is_replica ? NAN : s->replicas;
	}
	if (s->have_db) {
		if (total > 0)
			hit = s->blks_hit / total;
		v[PG_CACHE_HIT] = hit;
		set_counter(p, p->m_pg_c[PGC_DEADLOCKS], s->deadlocks);
		set_counter(p, p->m_pg_c[PGC_BLKS_HIT], s->blks_hit);
		set_counter(p, p->m_pg_c[PGC_BLKS_READ], s->blks_read);
	}
	for (int i = 0; i < PG_NGAUGES; i++)
		probe_set(p, p->m_pg[i], v[i]);
	for (size_t i = 0; i < s->ndbs; i++) {
		struct metrics_gauge *g = pg_db_gauge(p, s->dbs[i].name);

		if (g)
			probe_set(p, *g, s->dbs[i].bytes);
		json_object_set_new(dbs, s->dbs[i].name, jnum(s->dbs[i].bytes));
	}
	json_object_set_new(d, "connected", json_boolean(s->connected));
	if (s->have_conn) {
		json_object_set_new(d, "version", json_string(s->version));
		json_object_set_new(d, "role", json_string(s->is_replica
								   ? "replica"
								   : "primary"));
		json_object_set_new(d, "connections", jnum(s->connections));
		json_object_set_new(d, "max_connections",
				    jnum(s->max_connections));
		json_object_set_new(d, "oldest_query_seconds",
				    jnum(s->oldest_query_s));
		json_object_set_new(d, "oldest_transaction_seconds",
				    jnum(s->oldest_xact_s));
	}
	if (s->have_repl) {
		if (!s->is_replica)
			json_object_set_new(d, "replicas", jnum(s->replicas));
		json_object_set_new(d, "replication_lag_bytes",
				    jnum(s->lag_bytes));
		json_object_set_new(d, "replication_lag_seconds",
				    jnum(s->lag_seconds));
		snprintf(lag, sizeof(lag), ", %s%.0f B / %.1f s lag",
			 s->is_replica ? "" : "standbys: ", s->lag_bytes,
			 s->lag_seconds);
	}
	if (s->have_db) {
		json_object_set_new(d, "cache_hit_ratio", jnum(hit));
		json_object_set_new(d, "deadlocks", jnum(s->deadlocks));
	}
	json_object_set_new(d, "database_size_bytes", dbs);
	if (w->state == PROBE_OK)
		prun_finish(r, PROBE_OK, d,
			    "PostgreSQL %s %s, %.0f of %.0f connections%s",
			    s->version, s->is_replica ? "replica" : "primary",
			    s->connections, s->max_connections, lag);
	else
		prun_finish(r, (enum probe_state)w->state, d, "%s", w->msg);
}

static void pg_start(struct prun *r)
{
	work_start(r, pg_work, r->p->conninfo);
}

const struct probe_kind probe_kind_postgresql = {
	.name = "postgresql",
	.start = pg_start,
	.abort = work_abort,
	.clear = pg_clear,
};

/* --- sqlite -------------------------------------------------------------------- */

static int progress_cb(void *ud)
{
	const uint64_t *deadline = ud;

	return clock_mono_ns() >= *deadline;
}

static void sqlite_work(uv_work_t *req)
{
	struct prun *r = req->data;
	struct work_run *w = &r->u.work;
	struct sqlite_stats *s = &w->sq;
	char walpath[4200];
	struct stat st;
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	uint64_t now = clock_mono_ns();
	int rc, rows = 0;
	char first[256] = "";

	w->state = PROBE_CRITICAL;
	if (stat(w->target, &st) != 0) {
		snprintf(w->msg, sizeof(w->msg), "%s: %s", w->target,
			 strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(w->msg, sizeof(w->msg), "%s: not a regular file",
			 w->target);
		return;
	}
	s->have_file = true;
	s->file_bytes = (double)st.st_size;
	snprintf(walpath, sizeof(walpath), "%s-wal", w->target);
	s->wal_bytes = stat(walpath, &st) == 0 ? (double)st.st_size : 0;
	rc = sqlite3_open_v2(w->target, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		first_line(w->msg, sizeof(w->msg), "cannot open: ",
			   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, now < w->deadline_ns
					 ? (int)((w->deadline_ns - now) / 1000000)
					 : 0);
	sqlite3_progress_handler(db, 1000, progress_cb, &w->deadline_ns);
	rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &q, NULL);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(q)) == SQLITE_ROW)
			if (rows++ == 0)
				snprintf(first, sizeof(first), "%s",
					 (const char *)sqlite3_column_text(q,
									   0));
	}
	if (rc == SQLITE_INTERRUPT) {
		snprintf(w->msg, sizeof(w->msg), "quick_check timed out");
		goto out;
	}
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		w->state = PROBE_WARNING;
		first_line(w->msg, sizeof(w->msg), "quick_check could not run: ",
			   sqlite3_errmsg(db));
		goto out;
	}
	if (rc != SQLITE_DONE) {
		first_line(w->msg, sizeof(w->msg), "quick_check: ",
			   sqlite3_errmsg(db));
		s->checked = true; /* "file is not a database" and the like */
		goto out;
	}
	s->checked = true;
	s->check_ok = rows == 1 && strcmp(first, "ok") == 0;
	if (s->check_ok) {
		w->state = PROBE_OK;
		snprintf(w->msg, sizeof(w->msg), "quick_check ok");
	} else {
		snprintf(w->msg, sizeof(w->msg), "quick_check: %d problem%s: %s",
			 rows, rows == 1 ? "" : "s", first);
	}
out:
	sqlite3_finalize(q);
	sqlite3_close(db);
}

enum { SQ_FILE, SQ_WAL, SQ_CHECK };

static void sqlite_register(struct probe *p)
{
	if (p->m_sq[SQ_FILE].i)
		return;
	p->m_sq[SQ_FILE] = probe_gauge(p, "storekeep_sqlite_file_bytes",
				       "Size of the SQLite database file.",
				       NULL, NULL);
	p->m_sq[SQ_WAL] = probe_gauge(p, "storekeep_sqlite_wal_bytes",
				      "Size of its -wal file (0: none).", NULL,
				      NULL);
	p->m_sq[SQ_CHECK] = probe_gauge(
		p, "storekeep_sqlite_quick_check_ok",
		"1 when PRAGMA quick_check said ok, 0 when it found problems.",
		NULL, NULL);
}

static void sqlite_clear(struct probe *p)
{
	for (int i = 0; i < 3; i++)
		probe_set(p, p->m_sq[i], NAN);
}

static void sqlite_done(struct prun *r)
{
	struct probe *p = r->p;
	struct work_run *w = &r->u.work;
	const struct sqlite_stats *s = &w->sq;
	json_t *d = json_object();

	sqlite_register(p);
	probe_set(p, p->m_sq[SQ_FILE], s->have_file ? s->file_bytes : NAN);
	probe_set(p, p->m_sq[SQ_WAL], s->have_file ? s->wal_bytes : NAN);
	probe_set(p, p->m_sq[SQ_CHECK], s->checked ? s->check_ok : NAN);
	if (s->have_file) {
		json_object_set_new(d, "file_bytes", json_real(s->file_bytes));
		json_object_set_new(d, "wal_bytes", json_real(s->wal_bytes));
	}
	json_object_set_new(d, "quick_check",
			    s->checked ? json_boolean(s->check_ok)
				       : json_null());
	prun_finish(r, (enum probe_state)w->state, d, "%s", w->msg);
}

static void sqlite_start(struct prun *r)
{
	work_start(r, sqlite_work, r->p->path);
}

const struct probe_kind probe_kind_sqlite = {
	.name = "sqlite",
	.start = sqlite_start,
	.abort = work_abort,
	.clear = sqlite_clear,
};

/* --- back on the loop ----------------------------------------------------------- */

static void work_after_cb(uv_work_t *req, int status)
{
	struct prun *r = req->data;

	/* Cancelled: the deadline already reported. Otherwise the result
	 * counts unless the deadline came first. */
	if (status == 0 && !r->done) {
		if (r->p->type == CFG_PROBE_POSTGRESQL)
			pg_done(r);
		else
			sqlite_done(r);
	}
	prun_release(r);
}
