/*
 * source_pg.c - PostgreSQL databases through pg_dump and pg_restore.
 *
 * A dump is consistent by construction: storekeep opens a REPEATABLE READ
 * transaction, exports its snapshot (pg_export_snapshot), counts the rows
 * of every table in it, and runs `pg_dump --format=custom
 * --snapshot=<that snapshot>`, so the counts written into the manifest are
 * exactly the rows in the dump, whatever the shop inserts meanwhile. The
 * dump streams from pg_dump's stdout straight into the archive.
 *
 * Verify restores a dump with pg_restore into a scratch database created
 * on the source's server (the role needs CREATEDB), counts the rows of
 * every table again, runs the job's assertions and drops the scratch
 * database.
 *
 * A password in the conninfo is handed to pg_dump and pg_restore in
 * PGPASSWORD (their environment is readable only by the same user), never
 * on their command line, where any user could read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backup/backup_int.h"

#define PIPE_BUF_SIZE (256 * 1024)
#define STDERR_TAIL 2048

static const char tables_sql[] =
	"SELECT n.nspname, c.relname FROM pg_class c "
	"JOIN pg_namespace n ON n.oid = c.relnamespace "
	"WHERE c.relkind IN ('r', 'p') "
	"AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' "
	"ORDER BY 1, 2";

/* libpq's messages end with a newline; drop it for one-line errors. */
static const char *pq_msg(PGconn *conn)
{
	static _Thread_local char m[512];
	size_t n;

	snprintf(m, sizeof(m), "%s", conn ? PQerrorMessage(conn) : "out of memory");
	n = strlen(m);
	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
		m[--n] = '\0';
	for (char *p = m; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return m;
}

static void append_quoted(struct buf *b, const char *v)
{
	buf_appendc(b, '\'');
	for (; *v; v++) {
		if (*v == '\'' || *v == '\\')
			buf_appendc(b, '\\');
		buf_appendc(b, *v);
	}
	buf_appendc(b, '\'');
}

/*
 * conninfo (key=value or URI form) as key='value' pairs, with dbname
 * replaced when dbname is set and, when password is not NULL, the password
 * moved out into *password (malloc'd; NULL when there is none). Returns a
 * malloc'd string or NULL with err set.
 */
static char *conninfo_rebuild(const char *conninfo, const char *dbname,
			      char **password, char *err, size_t errlen)
{
	PQconninfoOption *opts;
	char *perr = NULL;
	struct buf b;

	if (password)
		*password = NULL;
	opts = PQconninfoParse(conninfo, &perr);
	if (opts == NULL) {
		snprintf(err, errlen, "conninfo cannot be read: %s",
			 perr ? perr : "out of memory");
		if (perr)
			PQfreemem(perr);
		return NULL;
	}
	buf_init(&b);
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (dbname && strcmp(o->keyword, "dbname") == 0)
			continue;
		if (password && strcmp(o->keyword, "password") == 0) {
			*password = strdup(o->val);
			continue;
		}
		buf_printf(&b, "%s%s=", b.len ? " " : "", o->keyword);
		append_quoted(&b, o->val);
	}
	if (dbname) {
		buf_printf(&b, "%sdbname=", b.len ? " " : "");
		append_quoted(&b, dbname);
	}
	PQconninfoFree(opts);
	return buf_steal(&b, NULL);
}

static PGresult *exec_ok(PGconn *conn, const char *sql, ExecStatusType want)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != want) {
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Counts the rows of every table of conn into tables ("schema.table"). */
static int count_tables(PGconn *conn, json_t *tables, char *err,
			size_t errlen)
{
	PGresult *list, *cnt;
	struct buf q;
	int r = 0;

	list = exec_ok(conn, tables_sql, PGRES_TUPLES_OK);
	if (list == NULL) {
		snprintf(err, errlen, "cannot list the tables: %s", pq_msg(conn));
		return -EIO;
	}
	buf_init(&q);
	for (int i = 0; i < PQntuples(list) && r == 0; i++) {
		const char *nsp = PQgetvalue(list, i, 0);
		const char *rel = PQgetvalue(list, i, 1);
		char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
		char *qr = PQescapeIdentifier(conn, rel, strlen(rel));
		char key[512];

		buf_reset(&q);
		buf_printf(&q, "SELECT count(*) FROM %s.%s", qn, qr);
		PQfreemem(qn);
		PQfreemem(qr);
		cnt = exec_ok(conn, buf_cstr(&q), PGRES_TUPLES_OK);
		if (cnt == NULL) {
			snprintf(err, errlen, "cannot count the rows of %s.%s: %s",
				 nsp, rel, pq_msg(conn));
			r = -EIO;
			break;
		}
		snprintf(key, sizeof(key), "%s.%s", nsp, rel);
		json_object_set_new(tables, key,
				    json_integer(strtoll(PQgetvalue(cnt, 0, 0),
							 NULL, 10)));
		PQclear(cnt);
	}
	PQclear(list);
	buf_fini(&q);
	return r;
}

/* A database name as a file name: anything unusual becomes '_'. */
static void file_name(const char *db, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; db[i] && i + 1 < outlen; i++) {
		char ch = db[i];

		out[i] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
			  (ch == '.' && i > 0))
				 ? ch
				 : '_';
	}
	out[i] = '\0';
	if (i == 0)
		snprintf(out, outlen, "db");
}

/* Streams pg_dump's output into the run; collects its stderr. */
static int pump(struct run_ctx *c, pid_t pid, int out, int errfd,
		struct buf *errtail)
{
	struct pollfd p[2] = {{out, POLLIN, 0}, {errfd, POLLIN, 0}};
	char *io = malloc(PIPE_BUF_SIZE);
	int open_fds = 2, r = 0;

	SK_ASSERT(io != NULL);
	while (open_fds > 0) {
		int n = poll(p, 2, 500);

		if (run_cancelled(c)) {
			kill(pid, SIGTERM);
			r = run_fail(c, -ECANCELED, "cancelled");
			break;
		}
		if (n < 0 && errno != EINTR) {
			r = run_fail(c, -errno, "poll: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < 2 && n > 0; i++) {
			ssize_t got;

			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(p[i].fd, io, PIPE_BUF_SIZE);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				p[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0) {
				r = run_stream_write(c, io, (size_t)got);
				if (r < 0) {
					kill(pid, SIGTERM);
					goto out;
				}
			} else {
				buf_append(errtail, io, (size_t)got);
				if (errtail->len > STDERR_TAIL)
					buf_consume(errtail, errtail->len - STDERR_TAIL);
			}
		}
	}
out:
	free(io);
	return r;
}

static void trim(struct buf *b)
{
	while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == ' '))
		b->len--;
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == '\n')
			b->data[i] = ' ';
}

int source_pg_backup(struct run_ctx *c, const struct cfg_backup_source *s,
		     json_t *info)
{
	char apath[PATH_MAX], fname[256], why[512], snapshot_arg[128];
	char *dbarg = NULL, *password = NULL, *pwenv = NULL;
	json_t *tables = json_object(), *entry = NULL;
	PGconn *conn = NULL;
	PGresult *res;
	struct buf errtail;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	pid_t pid = -1;
	int r = 0, st;

	buf_init(&errtail);
	conn = PQconnectdb(s->conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		r = run_fail(c, -EIO, "cannot connect: %s", pq_msg(conn));
		goto out;
	}
	json_object_set_new(info, "database", json_string(PQdb(conn)));
	json_object_set_new(info, "server_version",
			    json_integer(PQserverVersion(conn)));
	res = exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
		      PGRES_COMMAND_OK);
	if (res == NULL) {
		r = run_fail(c, -EIO, "cannot begin: %s", pq_msg(conn));
		goto out;
	}
	PQclear(res);
	res = exec_ok(conn, "SELECT pg_export_snapshot()", PGRES_TUPLES_OK);
	if (res == NULL) {
		r = run_fail(c, -EIO, "cannot export a snapshot: %s", pq_msg(conn));
		goto out;
	}
	snprintf(snapshot_arg, sizeof(snapshot_arg), "--snapshot=%s",
		 PQgetvalue(res, 0, 0));
	PQclear(res);
	res = exec_ok(conn, "SELECT pg_database_size(current_database())",
		      PGRES_TUPLES_OK);
	if (res) {
		run_progress_total(c, strtoull(PQgetvalue(res, 0, 0), NULL, 10));
		PQclear(res);
	}
	if (count_tables(conn, tables, why, sizeof(why)) < 0) {
		r = run_fail(c, -EIO, "%s", why);
		goto out;
	}
	json_object_set(info, "tables", tables);

	dbarg = conninfo_rebuild(s->conninfo, NULL, &password, why, sizeof(why));
	if (dbarg == NULL) {
		r = run_fail(c, -EINVAL, "%s", why);
		goto out;
	}
	if (password && asprintf(&pwenv, "PGPASSWORD=%s", password) < 0)
		SK_ASSERT(0);
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		r = run_fail(c, -errno, "pipe: %s", strerror(errno));
		goto out;
	}
	{
		char *argv[] = {"pg_dump", "--format=custom", snapshot_arg,
				"--no-password", "--dbname", dbarg, NULL};
		char *env[] = {pwenv, NULL};

		pid = bk_spawn(argv, pwenv ? env : NULL, -1, outp[1], errp[1]);
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	if (pid < 0) {
		r = run_fail(c, (int)pid, "cannot run pg_dump: %s (is "
					  "postgresql-client installed?)",
			     strerror((int)-pid));
		goto out;
	}
	file_name(PQdb(conn), fname, sizeof(fname));
	snprintf(apath, sizeof(apath), "%s/%s.pgdump", s->name, fname);
	r = run_stream_begin(c, apath, "pgdump");
	if (r == 0)
		r = pump(c, pid, outp[0], errp[0], &errtail);
	/* Nobody reads its pipes any more: a pg_dump still writing would
	 * block forever. */
	if (r < 0)
		kill(pid, SIGKILL);
	st = bk_wait(pid);
	pid = -1;
	if (r < 0)
		goto out;
	if (st != 0) {
		trim(&errtail);
		r = run_fail(c, -EIO, "pg_dump failed (%s %d): %s",
			     st > 128 ? "signal" : "exit", st > 128 ? st - 128 : st,
			     errtail.len ? buf_cstr(&errtail) : "no message");
		goto out;
	}
	r = run_stream_end(c, &entry);
	if (r < 0)
		goto out;
	json_object_set(entry, "tables", tables);
	json_object_set_new(entry, "database", json_string(PQdb(conn)));
	res = PQexec(conn, "COMMIT");
	PQclear(res);
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		bk_wait(pid);
	}
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (password) {
		sodium_memzero(password, strlen(password));
		free(password);
	}
	if (pwenv) {
		sodium_memzero(pwenv, strlen(pwenv));
		free(pwenv);
	}
	free(dbarg);
	PQfinish(conn);
	json_decref(tables);
	buf_fini(&errtail);
	return r;
}

/* Runs argv with PGPASSWORD pwenv (may be NULL); on failure err gets what
 * it wrote to stderr. Returns its exit status or a negative errno. */
static int run_tool(char **argv, char *pwenv, char *err, size_t errlen)
{
	char *env[] = {pwenv, NULL};
	char *tail;
	int errp[2];
	pid_t pid;
	int st;

	if (pipe2(errp, O_CLOEXEC) < 0)
		return -errno;
	pid = bk_spawn(argv, pwenv ? env : NULL, -1, -1, errp[1]);
	close(errp[1]);
	if (pid < 0) {
		close(errp[0]);
		snprintf(err, errlen, "cannot run %s: %s", argv[0],
			 strerror((int)-pid));
		return (int)pid;
	}
	tail = bk_read_tail(errp[0], STDERR_TAIL);
	close(errp[0]);
	st = bk_wait(pid);
	for (char *p = tail; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (st != 0)
		snprintf(err, errlen, "%s failed (%s %d): %s", argv[0],
			 st > 128 ? "signal" : "exit", st > 128 ? st - 128 : st,
			 tail[0] ? tail : "no message");
	free(tail);
	return st;
}

static int truthy(const char *v)
{
	return v[0] && strcmp(v, "0") != 0 && strcasecmp(v, "f") != 0 &&
	       strcasecmp(v, "false") != 0;
}

/* Compares the restored database with the manifest and runs assertions. */
static int check_restored(PGconn *conn, json_t *tables,
			  const struct cfg_backup_verify *v, char *err,
			  size_t errlen)
{
	json_t *have = json_object();
	int r = 0;

	if (tables) {
		r = count_tables(conn, have, err, errlen);
		if (r < 0)
			goto out;
		r = bk_counts_match(tables, have, err, errlen);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; v && i < v->nassertions; i++) {
		const char *sql = v->assertions[i].sql;
		PGresult *res = PQexec(conn, sql);

		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			snprintf(err, errlen, "assertion \"%s\" cannot run: %s", sql,
				 pq_msg(conn));
			PQclear(res);
			r = -EBADMSG;
			goto out;
		}
		if (PQntuples(res) < 1 || PQnfields(res) < 1 ||
		    PQgetisnull(res, 0, 0) || !truthy(PQgetvalue(res, 0, 0))) {
			snprintf(err, errlen, "assertion \"%s\" failed (%s)", sql,
				 PQntuples(res) < 1 ? "it returned no row"
						    : "its first column is not true");
			PQclear(res);
			r = -EBADMSG;
			goto out;
		}
		PQclear(res);
	}
out:
	json_decref(have);
	return r;
}

int source_pg_check(const char *conninfo, const char *dump, json_t *tables,
		    const struct cfg_backup_verify *v, char *err,
		    size_t errlen)
{
	char scratch[64], sql[160], why[1024];
	char *target = NULL, *target_pw = NULL, *password = NULL, *pwenv = NULL;
	char *qname = NULL;
	PGconn *conn = NULL, *sconn = NULL;
	PGresult *res;
	int created = 0, r = 0, st;

	if (conninfo == NULL) {
		char *argv[] = {"pg_restore", "--list", (char *)dump, NULL};

		st = run_tool(argv, NULL, why, sizeof(why));
		if (st != 0) {
			snprintf(err, errlen, "the dump cannot be read: %s", why);
			return -EBADMSG;
		}
		return 0;
	}
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen,
			 "cannot connect to the server to create a scratch database: "
			 "%s",
			 pq_msg(conn));
		r = -EIO;
		goto out;
	}
	snprintf(scratch, sizeof(scratch), "storekeep_verify_%ld_%08x",
		 (long)getpid(), (unsigned)randombytes_random());
	qname = PQescapeIdentifier(conn, scratch, strlen(scratch));
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0", qname);
	res = exec_ok(conn, sql, PGRES_COMMAND_OK);
	if (res == NULL) {
		snprintf(err, errlen,
			 "cannot create the scratch database %s (the role needs "
			 "CREATEDB): %s",
			 scratch, pq_msg(conn));
		r = -EIO;
		goto out;
	}
	PQclear(res);
	created = 1;
	target = conninfo_rebuild(conninfo, scratch, &password, why, sizeof(why));
	target_pw = conninfo_rebuild(conninfo, scratch, NULL, why, sizeof(why));
	if (target == NULL || target_pw == NULL) {
		snprintf(err, errlen, "%s", why);
		r = -EINVAL;
		goto out;
	}
	if (password && asprintf(&pwenv, "PGPASSWORD=%s", password) < 0)
		SK_ASSERT(0);
	{
		char *argv[] = {"pg_restore", "--no-owner", "--no-privileges",
				"--no-password", "--dbname", target, (char *)dump,
				NULL};

		st = run_tool(argv, pwenv, why, sizeof(why));
	}
	if (st != 0) {
		snprintf(err, errlen, "restore into a scratch database failed: %s",
			 why);
		r = -EBADMSG;
		goto out;
	}
	sconn = PQconnectdb(target_pw);
	if (PQstatus(sconn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to the scratch database: %s",
			 pq_msg(sconn));
		r = -EIO;
		goto out;
	}
	r = check_restored(sconn, tables, v, err, errlen);
out:
	PQfinish(sconn);
	if (created) {
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s%s", qname,
			 PQserverVersion(conn) >= 130000 ? " WITH (FORCE)" : "");
		PQclear(PQexec(conn, sql));
	}
	if (qname)
		PQfreemem(qname);
	PQfinish(conn);
	if (password) {
		sodium_memzero(password, strlen(password));
		free(password);
	}
	if (pwenv) {
		sodium_memzero(pwenv, strlen(pwenv));
		free(pwenv);
	}
	if (target_pw) {
		sodium_memzero(target_pw, strlen(target_pw));
		free(target_pw);
	}
	free(target);
	return r;
}
