/*
 * test_probe_pg.c - the postgresql probe against a real PostgreSQL
 * (Debian's postgresql: initdb in a temporary directory, the unix socket
 * there, free ports; run as the postgres user when the test runs as
 * root) with a streaming replica made by pg_basebackup -R.
 *
 * The probe must report connections and max_connections, a long-running
 * query's and transaction's age, one standby on the primary and the
 * replica role on the replica, a non-zero replication lag in bytes on
 * both sides (and in seconds on the replica) while the replica's replay
 * is paused, database sizes and the cache hit ratio; and turn critical
 * when the primary stops. A server that accepts the connection but
 * never answers is critical at the probe's timeout without holding up
 * the other probes. Skipped, with the reason, when the server binaries
 * or the postgres user are missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "monitor/probe.h"
#include "promparse.h"

/* A missing server or tool skips the test, except under CI, where
 * scripts/deps.sh has installed everything: there it fails. */
static void skip_or_fail(void)
{
	if (getenv("CI"))
		fail_msg("missing under CI: scripts/deps.sh installs it");
	skip();
}

extern char **environ;

struct pg {
	char bin[256];
	char dir[64];
	int port1, port2;
	bool primary_up, replica_up;
	pid_t sleeper;
	int blackhole_fd, blackhole_port;
};

static struct pg *live;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Runs a PostgreSQL tool (as postgres when we are root) through the
 * shell, its output into the test directory's log. Returns the exit
 * status. */
static int pg_run(struct pg *g, const char *fmt, ...)
{
	char cmd[2048], args[1536];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s%s/%s >>%s/tools.log 2>&1",
		 geteuid() == 0 ? "runuser -u postgres -- " : "", g->bin, args,
		 g->dir);
	r = system(cmd);
	return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static int psql(struct pg *g, int port, const char *sql)
{
	return pg_run(g,
		      "psql -X -q -v ON_ERROR_STOP=1 -h %s -p %d -U postgres "
		      "-d postgres -c \"%s\"",
		      g->dir, port, sql);
}

static void pg_stop(struct pg *g, const char *which, bool *up)
{
	if (*up)
		pg_run(g, "pg_ctl -D %s/%s -m immediate -w stop", g->dir, which);
	*up = false;
}

static void pg_cleanup(struct pg *g)
{
	char cmd[128];

	if (g->sleeper > 0) {
		kill(g->sleeper, SIGKILL);
		waitpid(g->sleeper, NULL, 0);
		g->sleeper = 0;
	}
	pg_stop(g, "primary", &g->primary_up);
	pg_stop(g, "replica", &g->replica_up);
	if (g->blackhole_fd > 0)
		close(g->blackhole_fd);
	g->blackhole_fd = -1;
	if (g->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", g->dir);
		if (system(cmd) != 0)
			print_message("cannot remove %s\n", g->dir);
		g->dir[0] = '\0';
	}
	live = NULL;
}

static int teardown(void **state)
{
	(void)state;
	if (live)
		pg_cleanup(live);
	return 0;
}

static bool pg_setup(struct pg *g)
{
	glob_t gl;
	struct passwd *pw = NULL;
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);

	memset(g, 0, sizeof(*g));
	if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &gl) != 0) {
		print_message("SKIP: the PostgreSQL server binaries are not "
			      "installed (Debian: postgresql)\n");
		return false;
	}
	snprintf(g->bin, sizeof(g->bin), "%s", gl.gl_pathv[gl.gl_pathc - 1]);
	*strrchr(g->bin, '/') = '\0';
	globfree(&gl);
	if (geteuid() == 0 && !(pw = getpwnam("postgres"))) {
		print_message("SKIP: running as root and there is no postgres "
			      "user to run the server as\n");
		return false;
	}
	snprintf(g->dir, sizeof(g->dir), "/tmp/sk-pgprobe-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	live = g;
	if (pw)
		assert_int_equal(chown(g->dir, pw->pw_uid, pw->pw_gid), 0);
	g->port1 = free_port();
	g->port2 = free_port();
	assert_int_equal(pg_run(g,
				"initdb -D %s/primary -U postgres --auth=trust "
				"--no-sync -E UTF8",
				g->dir),
			 0);
	assert_int_equal(pg_run(g,
				"pg_ctl -D %s/primary -w -t 30 -l %s/primary.log "
				"-o \"-p %d -k %s -c listen_addresses='' -c "
				"fsync=off\" start",
				g->dir, g->dir, g->port1, g->dir),
			 0);
	g->primary_up = true;
	assert_int_equal(pg_run(g,
				"pg_basebackup -h %s -p %d -U postgres -D "
				"%s/replica -R -X stream",
				g->dir, g->port1, g->dir),
			 0);
	assert_int_equal(pg_run(g,
				"pg_ctl -D %s/replica -w -t 30 -l %s/replica.log "
				"-o \"-p %d -k %s -c listen_addresses='' -c "
				"fsync=off\" start",
				g->dir, g->dir, g->port2, g->dir),
			 0);
	g->replica_up = true;
	/* A server that accepts connections and never says a word. */
	g->blackhole_fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(g->blackhole_fd, (struct sockaddr *)&a, sizeof(a)),
			 0);
	assert_int_equal(listen(g->blackhole_fd, 16), 0);
	assert_int_equal(getsockname(g->blackhole_fd, (struct sockaddr *)&a, &l),
			 0);
	g->blackhole_port = ntohs(a.sin_port);
	return true;
}

/* --- driving the loop --------------------------------------------------- */

static void wake_cb(uv_timer_t *t)
{
	(void)t;
}

struct ctx {
	uv_loop_t *loop;
	struct probes *ps;
	struct metrics *reg;
	struct pp_doc doc;
};

static void scrape(struct ctx *c)
{
	struct buf b;

	pp_free(&c->doc);
	memset(&c->doc, 0, sizeof(c->doc));
	buf_init(&b);
	metrics_write_prometheus(c->reg, &b);
	if (!pp_parse(buf_cstr(&b), &c->doc))
		fail_msg("exposition does not parse: %s", c->doc.err);
	buf_fini(&b);
}

/* storekeep_probe_up{probe,type="postgresql"} (NaN when absent). */
static double up(struct ctx *c, const char *probe)
{
	const struct pp_sample *s = pp_find(&c->doc, "storekeep_probe_up",
					    "probe", probe, "type",
					    "postgresql", NULL);

	return s ? s->value : NAN;
}

/* Value of name{probe=probe} (NaN when absent). */
static double val(struct ctx *c, const char *name, const char *probe)
{
	const struct pp_sample *s = pp_find(&c->doc, name, "probe", probe, NULL);

	return s ? s->value : NAN;
}

static json_t *status_of(struct ctx *c, const char *name)
{
	json_t *arr = probes_status_json(c->ps), *v, *found = NULL;
	size_t i;

	json_array_foreach (arr, i, v)
		if (strcmp(json_string_value(json_object_get(v, "name")),
			   name) == 0)
			found = json_incref(v);
	json_decref(arr);
	return found;
}

static const char *state(struct ctx *c, const char *name, char *msg,
			 size_t msglen)
{
	static char st[16];
	json_t *o = status_of(c, name);

	snprintf(st, sizeof(st), "%s",
		 json_string_value(json_object_get(o, "state")));
	if (msg)
		snprintf(msg, msglen, "%s",
			 json_string_value(json_object_get(o, "message")));
	json_decref(o);
	return st;
}

/* Runs the loop until cond(c) holds; fails after timeout_ms saying what
 * was awaited. */
static void wait_for(struct ctx *c, bool (*cond)(struct ctx *), int timeout_ms,
		     const char *what)
{
	uv_timer_t t;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	bool ok;

	uv_timer_init(c->loop, &t);
	uv_timer_start(&t, wake_cb, 20, 20);
	for (;;) {
		scrape(c);
		if ((ok = cond(c)) || now_ms() > end)
			break;
		uv_run(c->loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(c->loop, UV_RUN_NOWAIT);
	if (!ok) {
		char m1[512], m2[512];

		state(c, "pg_primary", m1, sizeof(m1));
		state(c, "pg_replica", m2, sizeof(m2));
		fail_msg("timed out waiting for %s (primary: %s; replica: %s)",
			 what, m1, m2);
	}
}

static bool both_up(struct ctx *c)
{
	return strcmp(state(c, "pg_primary", NULL, 0), "ok") == 0 &&
	       strcmp(state(c, "pg_replica", NULL, 0), "ok") == 0 &&
	       val(c, "storekeep_pg_replicas", "pg_primary") == 1;
}

static bool blackhole_done(struct ctx *c)
{
	return strcmp(state(c, "pg_blackhole", NULL, 0), "critical") == 0;
}

static bool long_query_seen(struct ctx *c)
{
	return val(c, "storekeep_pg_oldest_query_seconds", "pg_primary") >= 1 &&
	       val(c, "storekeep_pg_oldest_transaction_seconds",
		   "pg_primary") >= 1;
}

static bool lag_seen(struct ctx *c)
{
	return val(c, "storekeep_pg_replication_lag_bytes", "pg_replica") > 0 &&
	       val(c, "storekeep_pg_replication_lag_seconds", "pg_replica") >
		       0 &&
	       val(c, "storekeep_pg_replication_lag_bytes", "pg_primary") > 0;
}

static bool primary_down(struct ctx *c)
{
	return strcmp(state(c, "pg_primary", NULL, 0), "critical") == 0 &&
	       isnan(val(c, "storekeep_pg_connections", "pg_primary"));
}

static bool flag;

static void done_cb(void *ud)
{
	*(bool *)ud = true;
}

static bool stopped(struct ctx *c)
{
	(void)c;
	return flag;
}

/* Static, not on the stack: the teardown cleans up through live after a
 * failed assertion has left test_pg. */
static struct pg g;

static void test_pg(void **state_)
{
	struct ctx c;
	uv_loop_t loop;
	struct cfg_probe p[4];
	struct cfg_monitor cfg = {.probes = p, .nprobes = 4};
	char ci1[256], ci2[256], ci3[256], ci4[256], err[256], msg[512];
	char sql[64], conninfo[256];
	char *argv[] = {"psql", "-X", "-q", "-d", conninfo, "-c", sql, NULL};
	uint64_t t0 = now_ms();
	const struct pp_sample *s;

	(void)state_;
	if (!pg_setup(&g)) {
		skip_or_fail();
		return;
	}
	print_message("primary and replica up in %llu ms\n",
		      (unsigned long long)(now_ms() - t0));
	memset(p, 0, sizeof(p));
	snprintf(ci1, sizeof(ci1), "host=%s port=%d user=postgres dbname=postgres",
		 g.dir, g.port1);
	snprintf(ci2, sizeof(ci2), "host=%s port=%d user=postgres dbname=postgres",
		 g.dir, g.port2);
	snprintf(ci3, sizeof(ci3), "host=%s port=%d user=postgres", g.dir,
		 free_port());
	snprintf(ci4, sizeof(ci4), "hostaddr=127.0.0.1 port=%d user=postgres",
		 g.blackhole_port);
	p[0] = (struct cfg_probe){.name = "pg_primary",
				  .type = CFG_PROBE_POSTGRESQL,
				  .interval_ms = 250, .timeout_ms = 2000,
				  .conninfo = ci1};
	p[1] = p[0];
	p[1].name = "pg_replica";
	p[1].conninfo = ci2;
	p[2] = p[0];
	p[2].name = "pg_nothing";
	p[2].conninfo = ci3;
	p[3] = p[0];
	p[3].name = "pg_blackhole";
	p[3].conninfo = ci4;
	p[3].interval_ms = 1000;
	p[3].timeout_ms = 400;

	assert_int_equal(uv_loop_init(&loop), 0);
	memset(&c, 0, sizeof(c));
	c.loop = &loop;
	assert_int_equal(metrics_new(1, &c.reg), 0);
	c.ps = probes_start(&loop, &cfg, c.reg, 0, err, sizeof(err));
	assert_non_null(c.ps);

	t0 = now_ms();
	wait_for(&c, both_up, 10000, "both servers ok, one standby");
	print_message("probes ok after %llu ms: %s\n",
		      (unsigned long long)(now_ms() - t0),
		      (state(&c, "pg_primary", msg, sizeof(msg)), msg));
	assert_true(val(&c, "storekeep_pg_max_connections", "pg_primary") ==
		    100);
	assert_true(val(&c, "storekeep_pg_connections", "pg_primary") >= 1);
	assert_true(val(&c, "storekeep_pg_replica", "pg_primary") == 0);
	assert_true(val(&c, "storekeep_pg_replica", "pg_replica") == 1);
	assert_true(val(&c, "storekeep_pg_cache_hit_ratio", "pg_primary") > 0);
	assert_true(val(&c, "storekeep_pg_cache_hit_ratio", "pg_primary") <= 1);
	s = pp_find(&c.doc, "storekeep_pg_database_size_bytes", "probe",
		    "pg_primary", "database", "postgres", NULL);
	assert_non_null(s);
	assert_true(s->value > 1e6);
	assert_non_null(pp_find(&c.doc, "storekeep_pg_deadlocks_total", "probe",
				"pg_primary", NULL));
	assert_non_null(pp_find(&c.doc, "storekeep_pg_blocks_hit_total",
				"probe", "pg_primary", NULL));
	assert_string_equal(state(&c, "pg_nothing", msg, sizeof(msg)),
			    "critical");
	assert_non_null(strstr(msg, "cannot connect"));
	assert_true(up(&c, "pg_nothing") == 0);
	assert_true(up(&c, "pg_primary") == 1);

	/* A server that never answers: critical at the timeout, while the
	 * primary's probe goes on running every 250 ms. */
	{
		json_t *o = status_of(&c, "pg_primary");
		json_int_t before = json_integer_value(
			json_object_get(json_object_get(o, "runs"), "ok"));

		json_decref(o);
		wait_for(&c, blackhole_done, 5000, "the silent server's timeout");
		assert_non_null(strstr(
			(state(&c, "pg_blackhole", msg, sizeof(msg)), msg),
			"timed out"));
		o = status_of(&c, "pg_blackhole");
		assert_true(json_real_value(json_object_get(
				    o, "duration_seconds")) < 0.8);
		json_decref(o);
		o = status_of(&c, "pg_primary");
		print_message("primary ran %lld times meanwhile\n",
			      (long long)(json_integer_value(json_object_get(
						  json_object_get(o, "runs"),
						  "ok")) -
					  before));
		json_decref(o);
	}

	/* A query (and so a transaction) running for a while. */
	snprintf(conninfo, sizeof(conninfo),
		 "host=%s port=%d user=postgres dbname=postgres", g.dir,
		 g.port1);
	snprintf(sql, sizeof(sql), "SELECT pg_sleep(60)");
	{
		posix_spawn_file_actions_t fa;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
		assert_int_equal(posix_spawnp(&g.sleeper, "psql", &fa, NULL,
					      argv, environ),
				 0);
		posix_spawn_file_actions_destroy(&fa);
	}
	wait_for(&c, long_query_seen, 10000, "the long query's age");

	/* Replay paused on the replica while the primary writes. */
	assert_int_equal(psql(&g, g.port1, "CREATE TABLE t1 AS SELECT 1 AS x"),
			 0);
	usleep(300000);
	assert_int_equal(psql(&g, g.port2, "SELECT pg_wal_replay_pause()"), 0);
	usleep(1100000);
	assert_int_equal(psql(&g, g.port1,
			      "CREATE TABLE t2 AS SELECT generate_series(1, "
			      "20000) AS x"),
			 0);
	wait_for(&c, lag_seen, 10000, "a replication lag");
	print_message("lag: replica %.0f B %.2f s, primary %.0f B\n",
		      val(&c, "storekeep_pg_replication_lag_bytes", "pg_replica"),
		      val(&c, "storekeep_pg_replication_lag_seconds",
			  "pg_replica"),
		      val(&c, "storekeep_pg_replication_lag_bytes",
			  "pg_primary"));
	assert_int_equal(psql(&g, g.port2, "SELECT pg_wal_replay_resume()"), 0);

	/* The primary goes away. */
	pg_stop(&g, "primary", &g.primary_up);
	wait_for(&c, primary_down, 10000, "the primary critical");
	assert_true(up(&c, "pg_primary") == 0);

	flag = false;
	probes_stop(c.ps, done_cb, &flag);
	wait_for(&c, stopped, 5000, "the probes to stop");
	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	pp_free(&c.doc);
	metrics_free(c.reg);
	pg_cleanup(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pg, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
