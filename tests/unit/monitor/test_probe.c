/*
 * test_probe.c - monitor/probe.h: the Nagios output parser, and every
 * probe type but postgresql (test_probe_pg.c) against real things
 * started by the test on loopback: the e2e HTTP origin (origin.py), a TCP
 * listener, Nagios plugins from Debian's monitoring-plugins-basic
 * (check_dummy, check_tcp, check_disk; skipped with a message when not
 * installed) and shell-script plugins written here, SQLite files.
 *
 * Hung probes (an origin that answers after 5 s, a plugin that sleeps
 * and leaves a child sleeping) must be reported critical at their
 * timeout, have their process group killed, and never hold up the fast
 * probes that run beside them. Results are checked both in
 * probes_status_json() and in the registry's Prometheus exposition.
 */
#include <errno.h>
#include <math.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "monitor/probe.h"
#include "promparse.h"

#define PLUGINS "/usr/lib/nagios/plugins"

extern char **environ;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- the parser ---------------------------------------------------------- */

static void parse(const char *s, struct nagios_output *o)
{
	nagios_output_parse(s, strlen(s), o);
}

static void test_perf_basic(void **state)
{
	struct nagios_output *o = malloc(sizeof(*o));

	(void)state;
	parse("DISK OK - free space: / 3326 MB (56%); | "
	      "/=2643MB;5948;5958;0;5968\n",
	      o);
	assert_string_equal(o->text, "DISK OK - free space: / 3326 MB (56%);");
	assert_int_equal(o->nperf, 1);
	assert_string_equal(o->perf[0].label, "/");
	assert_true(o->perf[0].value == 2643);
	assert_string_equal(o->perf[0].uom, "MB");
	assert_string_equal(o->perf[0].warn, "5948");
	assert_string_equal(o->perf[0].crit, "5958");
	assert_true(o->perf[0].min == 0);
	assert_true(o->perf[0].max == 5968);
	assert_int_equal(o->bad, 0);

	/* check_load prints an empty max after a trailing ';'. */
	parse("OK - load average: 0.00, 0.01, 0.05|load1=0.000;15.000;30.000;0; "
	      "load5=0.010;10.000;25.000;0; load15=0.050;5.000;20.000;0; ",
	      o);
	assert_string_equal(o->text, "OK - load average: 0.00, 0.01, 0.05");
	assert_int_equal(o->nperf, 3);
	assert_string_equal(o->perf[2].label, "load15");
	assert_true(fabs(o->perf[2].value - 0.05) < 1e-12);
	assert_string_equal(o->perf[2].uom, "");
	assert_true(o->perf[2].min == 0);
	assert_true(isnan(o->perf[2].max));
	assert_int_equal(o->bad, 0);

	/* Ranges, negative values, exponents, units. */
	parse("T | temp=-5.5C;~:10;@20:30;-40;85 big=1.5e3B;;; pct=99.9%", o);
	assert_int_equal(o->nperf, 3);
	assert_true(o->perf[0].value == -5.5);
	assert_string_equal(o->perf[0].uom, "C");
	assert_string_equal(o->perf[0].warn, "~:10");
	assert_string_equal(o->perf[0].crit, "@20:30");
	assert_true(o->perf[0].min == -40);
	assert_true(o->perf[1].value == 1500);
	assert_string_equal(o->perf[1].uom, "B");
	assert_string_equal(o->perf[2].uom, "%");
	free(o);
}

static void test_perf_quoted_and_multiline(void **state)
{
	struct nagios_output *o = malloc(sizeof(*o));

	(void)state;
	parse("CRIT - two things\t | 'foo bar'=1s 'it''s'=2;;;; 'a=b'=3 x=U\n"
	      "long text line 2\n"
	      "long text line 3 | second=4ms\n"
	      "third=5c\n",
	      o);
	assert_string_equal(o->text, "CRIT - two things");
	assert_int_equal(o->bad, 0);
	assert_int_equal(o->nperf, 6);
	assert_string_equal(o->perf[0].label, "foo bar");
	assert_string_equal(o->perf[0].uom, "s");
	assert_string_equal(o->perf[1].label, "it's");
	assert_string_equal(o->perf[2].label, "a=b");
	assert_true(o->perf[2].value == 3);
	assert_string_equal(o->perf[3].label, "x");
	assert_true(isnan(o->perf[3].value));
	assert_string_equal(o->perf[4].label, "second");
	assert_string_equal(o->perf[4].uom, "ms");
	assert_string_equal(o->perf[5].label, "third");
	assert_string_equal(o->perf[5].uom, "c");

	/* No perf data at all; CRLF; a pipe only on a later line. */
	parse("OK\r\nmore | a=1\n", o);
	assert_string_equal(o->text, "OK");
	assert_int_equal(o->nperf, 1);
	parse("", o);
	assert_string_equal(o->text, "");
	assert_int_equal(o->nperf, 0);
	free(o);
}

static void test_perf_malformed(void **state)
{
	struct nagios_output *o = malloc(sizeof(*o));
	char big[8192];
	size_t n;

	(void)state;
	/* =1 (no label), a= (no value), b=x, six fields, 1zz1, an
	 * unterminated quote eats the rest. */
	parse("X | =1 a= b=x c=1;2;3;4;5;6 d=1zz1 e=7 'f=8", o);
	assert_int_equal(o->nperf, 1);
	assert_string_equal(o->perf[0].label, "e");
	assert_true(o->perf[0].value == 7);
	assert_int_equal(o->bad, 6);

	/* A NUL ends the output. */
	nagios_output_parse("OK | a=1\0b=2", 13, o);
	assert_int_equal(o->nperf, 1);

	/* A label longer than the limit is refused, not cut. */
	n = (size_t)snprintf(big, sizeof(big), "X | ");
	memset(big + n, 'l', NAGIOS_LABEL_MAX + 1);
	n += NAGIOS_LABEL_MAX + 1;
	n += (size_t)snprintf(big + n, sizeof(big) - n, "=1 ok=2");
	nagios_output_parse(big, n, o);
	assert_int_equal(o->nperf, 1);
	assert_int_equal(o->bad, 1);

	/* More items than kept. */
	n = (size_t)snprintf(big, sizeof(big), "X |");
	for (int i = 0; i < NAGIOS_PERF_MAX + 6; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, " m%d=%d", i, i);
	nagios_output_parse(big, n, o);
	assert_int_equal(o->nperf, NAGIOS_PERF_MAX);
	assert_int_equal(o->dropped, 6);

	/* Invalid UTF-8 in a label becomes '?'. */
	parse("X | caf\xc3=1", o);
	assert_int_equal(o->nperf, 1);
	assert_string_equal(o->perf[0].label, "caf?");
	free(o);
}

/* --- real probes ------------------------------------------------------------- */

struct env {
	uv_loop_t loop;
	char dir[64];
	pid_t origin;
	int origin_port;
	int listen_fd, listen_port;
	int closed_port;
	struct metrics *reg;
};

/* The test's environment, for the teardown to clean up after a failed
 * assertion left the test early. */
static struct env *live_env;

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

static bool port_open(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void env_start(struct env *e)
{
	char port[16], script[512];
	char *argv[] = {"python3", script, port, "probe-origin", NULL};
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof(a);
	uint64_t end;

	memset(e, 0, sizeof(*e));
	assert_int_equal(uv_loop_init(&e->loop), 0);
	snprintf(e->dir, sizeof(e->dir), "/tmp/sk-probe-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	e->origin_port = free_port();
	snprintf(port, sizeof(port), "%d", e->origin_port);
	snprintf(script, sizeof(script), "%s/tests/e2e/origin.py",
		 SK_SOURCE_DIR);
	assert_int_equal(posix_spawn(&e->origin, "/usr/bin/python3", NULL, NULL,
				     argv, environ),
			 0);
	e->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(e->listen_fd, (struct sockaddr *)&a, sizeof(a)),
			 0);
	assert_int_equal(listen(e->listen_fd, 64), 0);
	assert_int_equal(
		getsockname(e->listen_fd, (struct sockaddr *)&a, &l), 0);
	e->listen_port = ntohs(a.sin_port);
	e->closed_port = free_port();
	assert_int_equal(metrics_new(2, &e->reg), 0);
	live_env = e;
	end = now_ms() + 10000;
	while (!port_open(e->origin_port)) {
		assert_true(now_ms() < end);
		usleep(20000);
	}
}

/* Stops the origin and removes the directory; idempotent. */
static void env_kill(struct env *e)
{
	char cmd[128];

	if (e->origin > 0) {
		kill(e->origin, SIGTERM);
		waitpid(e->origin, NULL, 0);
		e->origin = 0;
	}
	if (e->listen_fd > 0) {
		close(e->listen_fd);
		e->listen_fd = -1;
	}
	if (e->dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", e->dir);
		if (system(cmd) != 0)
			print_message("cannot remove %s\n", e->dir);
		e->dir[0] = '\0';
	}
	live_env = NULL;
}

static void env_stop(struct env *e)
{
	env_kill(e);
	metrics_free(e->reg);
	assert_int_equal(uv_loop_close(&e->loop), 0);
}

static int teardown(void **state)
{
	(void)state;
	if (live_env)
		env_kill(live_env);
	return 0;
}

static void wake_cb(uv_timer_t *t)
{
	(void)t;
}

typedef bool (*pred_fn)(void *ud);

/* Runs the loop until pred holds or timeout_ms pass. */
static bool run_until(uv_loop_t *loop, pred_fn pred, void *ud, int timeout_ms)
{
	uv_timer_t t;
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	bool ok;

	uv_timer_init(loop, &t);
	uv_timer_start(&t, wake_cb, 10, 10);
	while (!(ok = pred(ud)) && now_ms() < end)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return ok;
}

/* The status object of probe name (a new reference), or NULL. */
static json_t *status_of(struct probes *ps, const char *name)
{
	json_t *arr = probes_status_json(ps), *v, *found = NULL;
	size_t i;

	json_array_foreach (arr, i, v)
		if (strcmp(json_string_value(json_object_get(v, "name")),
			   name) == 0)
			found = json_incref(v);
	json_decref(arr);
	return found;
}

static const char *state_of(json_t *o)
{
	return json_string_value(json_object_get(o, "state"));
}

static const char *message_of(json_t *o)
{
	return json_string_value(json_object_get(o, "message"));
}

/* The status of probe name, which must be in state st (a new
 * reference). */
static json_t *expect(struct probes *ps, const char *name, const char *st)
{
	json_t *o = status_of(ps, name);

	if (!o)
		fail_msg("no probe %s", name);
	if (strcmp(state_of(o), st) != 0)
		fail_msg("probe %s is %s, not %s: %s", name, state_of(o), st,
			 message_of(o));
	return o;
}

struct all_ran {
	struct probes *ps;
	int min_runs;
};

static bool all_ran_pred(void *ud)
{
	struct all_ran *a = ud;
	json_t *arr = probes_status_json(a->ps), *v;
	bool ok = true;
	size_t i;

	json_array_foreach (arr, i, v) {
		json_t *runs = json_object_get(v, "runs");
		json_int_t n = 0;
		const char *k;
		json_t *c;

		json_object_foreach (runs, k, c)
			if (strcmp(k, "skipped") != 0)
				n += json_integer_value(c);
		if (n < a->min_runs)
			ok = false;
	}
	json_decref(arr);
	return ok;
}

struct probe_list {
	struct cfg_probe p[32];
	size_t n;
};

static struct cfg_probe *add(struct probe_list *l, const char *name, int type,
			     uint32_t interval_ms, uint32_t timeout_ms)
{
	struct cfg_probe *p = &l->p[l->n++];

	assert_true(l->n <= 32);
	memset(p, 0, sizeof(*p));
	p->name = (char *)name;
	p->type = type;
	p->interval_ms = interval_ms;
	p->timeout_ms = timeout_ms;
	p->status_min = 200;
	p->status_max = 399;
	return p;
}

static void set_addr(struct cfg_probe *p, int port, char *text, size_t tlen)
{
	snprintf(text, tlen, "127.0.0.1:%d", port);
	assert_int_equal(uv_ip4_addr("127.0.0.1", port,
				     (struct sockaddr_in *)&p->address.sa),
			 0);
	p->address.salen = sizeof(struct sockaddr_in);
	p->address.text = text;
	p->has_address = 1;
}

static void set_cmd(struct cfg_probe *p, struct cfg_arg *args, size_t n, ...)
{
	va_list ap;

	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		args[i].arg = va_arg(ap, char *);
	va_end(ap);
	p->command = args;
	p->ncommand = n;
}

/* Makes a database at path; a WAL one stays open (returned) so its -wal
 * file stays. */
static sqlite3 *make_sqlite(const char *path, bool wal)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      wal ? "PRAGMA journal_mode=WAL;"
					    "CREATE TABLE t(x);"
					    "INSERT INTO t VALUES (1), (2);"
					  : "CREATE TABLE t(x);"
					    "INSERT INTO t VALUES (1);",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	if (wal)
		return db;
	sqlite3_close(db);
	return NULL;
}

static struct pp_doc *scrape(struct metrics *reg)
{
	struct pp_doc *d = calloc(1, sizeof(*d));
	struct buf b;

	buf_init(&b);
	metrics_write_prometheus(reg, &b);
	if (!pp_parse(buf_cstr(&b), d))
		fail_msg("exposition does not parse: %s", d->err);
	buf_fini(&b);
	return d;
}

static double metric(struct pp_doc *d, const char *name, const char *probe,
		     const char *type)
{
	const struct pp_sample *s =
		type ? pp_find(d, name, "probe", probe, "type", type, NULL)
		     : pp_find(d, name, "probe", probe, NULL);

	if (!s)
		fail_msg("no %s{probe=%s}", name, probe);
	return s->value;
}

static bool is_gone_or_zombie(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'Z';
}

static bool stopped;

static void stopped_cb(void *ud)
{
	*(bool *)ud = true;
}

static bool flag_pred(void *ud)
{
	return *(bool *)ud;
}

/* Static, not on the stack: the teardown cleans up through live_env after
 * a failed assertion has left the test. */
static struct env e;

static void test_probes_real(void **state)
{
	struct probe_list l = {.n = 0};
	struct cfg_monitor cfg;
	struct cfg_probe *p;
	struct probes *ps;
	char url_ok[128], url_body[128], url_miss[128], url_503[128],
		url_chunk[128], url_slow[128], url_refused[128];
	char tcp_ok_t[64], tcp_ref_t[64], port_s[16];
	char crit_sh[256], hang_sh[256], exit5_sh[256], stderr_sh[256],
		child_pid[256], db_ok[256], db_bad[256], db_missing[256];
	char text[1024];
	struct cfg_arg a_dummy[2], a_tcp[5], a_disk[7], a_crit[1], a_hang[1],
		a_exit5[1], a_missing[1], a_stderr[1];
	bool have_plugins = access(PLUGINS "/check_dummy", X_OK) == 0;
	struct all_ran ar;
	struct pp_doc *d;
	json_t *o;
	uint64_t t0;
	char err[256];
	sqlite3 *keep_wal = NULL;

	(void)state;
	env_start(&e);
	if (!have_plugins && getenv("CI"))
		fail_msg("monitoring-plugins-basic is missing under CI "
			 "(scripts/deps.sh installs it)");
	if (!have_plugins)
		print_message("monitoring-plugins-basic is not installed; the "
			      "check_dummy, check_tcp and check_disk probes "
			      "are skipped\n");
	snprintf(url_ok, sizeof(url_ok), "http://127.0.0.1:%d/healthz",
		 e.origin_port);
	snprintf(url_body, sizeof(url_body), "http://127.0.0.1:%d/hello?x=1",
		 e.origin_port);
	snprintf(url_miss, sizeof(url_miss), "http://localhost:%d/hello",
		 e.origin_port);
	snprintf(url_503, sizeof(url_503), "http://127.0.0.1:%d/status?code=503",
		 e.origin_port);
	snprintf(url_chunk, sizeof(url_chunk),
		 "http://127.0.0.1:%d/chunked?n=3&size=1000", e.origin_port);
	snprintf(url_slow, sizeof(url_slow), "http://127.0.0.1:%d/slow?ms=5000",
		 e.origin_port);
	snprintf(url_refused, sizeof(url_refused), "http://127.0.0.1:%d/",
		 e.closed_port);

	p = add(&l, "http_ok", CFG_PROBE_HTTP, 200, 150);
	p->url = url_ok;
	p = add(&l, "http_body", CFG_PROBE_HTTP, 200, 150);
	p->url = url_body;
	p->body_contains = "\"path\": \"/hello?x=1\"";
	p = add(&l, "http_body_missing", CFG_PROBE_HTTP, 200, 150);
	p->url = url_miss; /* a host name: resolved on each run */
	p->body_contains = "no such text";
	p = add(&l, "http_503", CFG_PROBE_HTTP, 200, 150);
	p->url = url_503;
	p = add(&l, "http_chunked", CFG_PROBE_HTTP, 200, 150);
	p->url = url_chunk;
	p = add(&l, "http_hang", CFG_PROBE_HTTP, 1000, 300);
	p->url = url_slow;
	p = add(&l, "http_refused", CFG_PROBE_HTTP, 200, 150);
	p->url = url_refused;
	p = add(&l, "tcp_ok", CFG_PROBE_TCP, 100, 90);
	set_addr(p, e.listen_port, tcp_ok_t, sizeof(tcp_ok_t));
	p = add(&l, "tcp_refused", CFG_PROBE_TCP, 200, 150);
	set_addr(p, e.closed_port, tcp_ref_t, sizeof(tcp_ref_t));

	snprintf(crit_sh, sizeof(crit_sh), "%s/crit.sh", e.dir);
	write_file(crit_sh,
		   "#!/bin/sh\n"
		   "echo \"CRIT - x is 5 | 'a b'=5ms;1;2;0;10 c=3\"\n"
		   "echo \"more text | d=4%\"\n"
		   "exit 2\n",
		   0755);
	snprintf(child_pid, sizeof(child_pid), "%s/child.pid", e.dir);
	snprintf(hang_sh, sizeof(hang_sh), "%s/hang.sh", e.dir);
	snprintf(text, sizeof(text),
		 "#!/bin/sh\nsleep 30 &\necho $! > %s\necho started\nsleep 30\n",
		 child_pid);
	write_file(hang_sh, text, 0755);
	snprintf(exit5_sh, sizeof(exit5_sh), "%s/exit5.sh", e.dir);
	write_file(exit5_sh, "#!/bin/sh\necho weird\nexit 5\n", 0755);
	snprintf(stderr_sh, sizeof(stderr_sh), "%s/stderr.sh", e.dir);
	write_file(stderr_sh, "#!/bin/sh\necho 'oops: broken' >&2\nexit 3\n",
		   0755);

	p = add(&l, "nagios_crit", CFG_PROBE_NAGIOS, 200, 150);
	set_cmd(p, a_crit, 1, crit_sh);
	p = add(&l, "nagios_hang", CFG_PROBE_NAGIOS, 1000, 300);
	set_cmd(p, a_hang, 1, hang_sh);
	p = add(&l, "nagios_exit5", CFG_PROBE_NAGIOS, 200, 150);
	set_cmd(p, a_exit5, 1, exit5_sh);
	p = add(&l, "nagios_missing", CFG_PROBE_NAGIOS, 200, 150);
	set_cmd(p, a_missing, 1, "/nonexistent/check_nothing");
	p = add(&l, "nagios_stderr", CFG_PROBE_NAGIOS, 200, 150);
	set_cmd(p, a_stderr, 1, stderr_sh);
	snprintf(port_s, sizeof(port_s), "%d", e.listen_port);
	if (have_plugins) {
		p = add(&l, "check_dummy", CFG_PROBE_NAGIOS, 200, 150);
		set_cmd(p, a_dummy, 2, PLUGINS "/check_dummy", "1");
		p = add(&l, "check_tcp", CFG_PROBE_NAGIOS, 200, 150);
		set_cmd(p, a_tcp, 5, PLUGINS "/check_tcp", "-H", "127.0.0.1",
			"-p", port_s);
		p = add(&l, "check_disk", CFG_PROBE_NAGIOS, 500, 400);
		set_cmd(p, a_disk, 7, PLUGINS "/check_disk", "-w", "0%", "-c",
			"0%", "-p", e.dir);
	}

	snprintf(db_ok, sizeof(db_ok), "%s/ok.db", e.dir);
	keep_wal = make_sqlite(db_ok, true);
	assert_int_equal(sqlite3_exec(keep_wal, "INSERT INTO t VALUES (3)", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	snprintf(db_bad, sizeof(db_bad), "%s/bad.db", e.dir);
	write_file(db_bad, "this is not a database, just some text that is "
			   "long enough to have a header of sorts............"
			   "...........................................\n",
		   0644);
	snprintf(db_missing, sizeof(db_missing), "%s/missing.db", e.dir);
	p = add(&l, "sqlite_ok", CFG_PROBE_SQLITE, 200, 150);
	p->path = db_ok;
	p = add(&l, "sqlite_bad", CFG_PROBE_SQLITE, 200, 150);
	p->path = db_bad;
	p = add(&l, "sqlite_missing", CFG_PROBE_SQLITE, 200, 150);
	p->path = db_missing;

	memset(&cfg, 0, sizeof(cfg));
	cfg.probes = l.p;
	cfg.nprobes = l.n;
	ps = probes_start(&e.loop, &cfg, e.reg, 1, err, sizeof(err));
	assert_non_null(ps);

	/* Nothing has run yet. */
	o = expect(ps, "http_ok", "unknown");
	assert_true(json_is_null(json_object_get(o, "last_run")));
	json_decref(o);

	/* Every probe runs at least twice (the hung ones once their
	 * timeout ended the first run and the next came). */
	t0 = now_ms();
	ar.ps = ps;
	ar.min_runs = 2;
	assert_true(run_until(&e.loop, all_ran_pred, &ar, 8000));
	print_message("all probes ran twice in %llu ms\n",
		      (unsigned long long)(now_ms() - t0));
	{
		json_t *arr = probes_status_json(ps), *v;
		size_t i;

		json_array_foreach (arr, i, v)
			print_message("  %-18s %-8s %s\n",
				      json_string_value(json_object_get(v, "name")),
				      state_of(v), message_of(v));
		json_decref(arr);
	}

	/* The fast tcp probe kept its pace beside the hung ones: about one
	 * run per 100 ms, never waiting for them. */
	o = expect(ps, "tcp_ok", "ok");
	{
		json_int_t ok = json_integer_value(
			json_object_get(json_object_get(o, "runs"), "ok"));
		uint64_t el = now_ms() - t0;

		print_message("tcp_ok: %lld runs in %llu ms\n", (long long)ok,
			      (unsigned long long)el);
		assert_true(ok >= (json_int_t)(el / 100) - 4);
	}
	json_decref(o);

	o = expect(ps, "http_ok", "ok");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(o, "details"), "status")),
			 200);
	assert_false(json_is_null(json_object_get(o, "last_run")));
	json_decref(o);
	o = expect(ps, "http_body", "ok");
	json_decref(o);
	o = expect(ps, "http_body_missing", "critical");
	assert_non_null(strstr(message_of(o), "does not contain"));
	json_decref(o);
	o = expect(ps, "http_503", "critical");
	assert_non_null(strstr(message_of(o), "HTTP 503"));
	json_decref(o);
	o = expect(ps, "http_chunked", "ok");
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(o, "details"), "bytes")),
			 3000);
	json_decref(o);
	o = expect(ps, "http_hang", "critical");
	assert_non_null(strstr(message_of(o), "timed out after 300 ms"));
	assert_true(json_real_value(json_object_get(o, "duration_seconds")) <
		    0.6);
	json_decref(o);
	o = expect(ps, "http_refused", "critical");
	assert_non_null(strstr(message_of(o), "refused"));
	json_decref(o);
	o = expect(ps, "tcp_refused", "critical");
	json_decref(o);

	o = expect(ps, "nagios_crit", "critical");
	assert_string_equal(message_of(o), "CRIT - x is 5");
	assert_int_equal(json_array_size(json_object_get(
				 json_object_get(o, "details"), "perf")),
			 3);
	json_decref(o);
	o = expect(ps, "nagios_hang", "critical");
	assert_non_null(strstr(message_of(o), "plugin killed"));
	json_decref(o);
	{
		/* The plugin's own child died with its process group. */
		FILE *f = fopen(child_pid, "r");
		int cp = 0;

		assert_non_null(f);
		assert_int_equal(fscanf(f, "%d", &cp), 1);
		fclose(f);
		t0 = now_ms();
		while (!is_gone_or_zombie(cp) && now_ms() - t0 < 2000)
			usleep(10000);
		assert_true(is_gone_or_zombie(cp));
	}
	o = expect(ps, "nagios_exit5", "unknown");
	assert_non_null(strstr(message_of(o), "exit status 5"));
	json_decref(o);
	o = expect(ps, "nagios_missing", "unknown");
	assert_non_null(strstr(message_of(o), "cannot run"));
	json_decref(o);
	o = expect(ps, "nagios_stderr", "unknown");
	assert_string_equal(message_of(o), "oops: broken");
	json_decref(o);
	if (have_plugins) {
		o = expect(ps, "check_dummy", "warning");
		json_decref(o);
		o = expect(ps, "check_tcp", "ok");
		assert_non_null(strstr(message_of(o), "TCP OK"));
		json_decref(o);
		o = status_of(ps, "check_disk");
		assert_true(json_array_size(json_object_get(
				    json_object_get(o, "details"), "perf")) >=
			    1);
		json_decref(o);
	}

	o = expect(ps, "sqlite_ok", "ok");
	assert_true(json_real_value(json_object_get(
			    json_object_get(o, "details"), "wal_bytes")) > 0);
	json_decref(o);
	o = expect(ps, "sqlite_bad", "critical");
	json_decref(o);
	o = expect(ps, "sqlite_missing", "critical");
	assert_non_null(strstr(message_of(o), "No such file"));
	json_decref(o);

	/* The same results on /metrics. */
	d = scrape(e.reg);
	assert_true(metric(d, "storekeep_probe_up", "http_ok", "http") == 1);
	assert_true(metric(d, "storekeep_probe_state", "http_ok", "http") == 0);
	assert_true(metric(d, "storekeep_probe_up", "http_hang", "http") == 0);
	assert_true(metric(d, "storekeep_probe_state", "http_hang", "http") ==
		    2);
	assert_true(metric(d, "storekeep_probe_duration_seconds", "tcp_ok",
			   "tcp") < 0.09);
	assert_true(metric(d, "storekeep_probe_state", "nagios_exit5",
			   "nagios") == 3);
	assert_true(metric(d, "storekeep_probe_http_status_code", "http_503",
			   NULL) == 503);
	assert_non_null(pp_find(d, "storekeep_probe_runs_total", "probe",
				"tcp_ok", "type", "tcp", "result", "ok", NULL));
	assert_true(pp_find(d, "storekeep_probe_runs_total", "probe",
			    "http_hang", "type", "http", "result", "critical",
			    NULL)
			    ->value >= 1);
	assert_true(pp_find(d, "storekeep_nagios_perf", "probe", "nagios_crit",
			    "label", "a b", "uom", "ms", NULL)
			    ->value == 5);
	assert_true(pp_find(d, "storekeep_nagios_perf", "probe", "nagios_crit",
			    "label", "d", "uom", "%", NULL)
			    ->value == 4);
	if (have_plugins)
		assert_non_null(pp_find(d, "storekeep_nagios_perf", "probe",
					"check_tcp", "label", "time", "uom",
					"s", NULL));
	assert_true(metric(d, "storekeep_sqlite_file_bytes", "sqlite_ok",
			   NULL) > 0);
	assert_true(metric(d, "storekeep_sqlite_wal_bytes", "sqlite_ok",
			   NULL) > 0);
	assert_true(metric(d, "storekeep_sqlite_quick_check_ok", "sqlite_ok",
			   NULL) == 1);
	assert_true(metric(d, "storekeep_sqlite_quick_check_ok", "sqlite_bad",
			   NULL) == 0);
	pp_free(d);
	free(d);

	/* Reload: drop most, change one, keep one, add one. */
	{
		struct probe_list l2 = {.n = 0};
		struct cfg_arg a2[2];

		l2.p[l2.n++] = l.p[0]; /* http_ok, unchanged */
		p = add(&l2, "tcp_ok", CFG_PROBE_TCP, 150, 90); /* changed */
		set_addr(p, e.listen_port, tcp_ok_t, sizeof(tcp_ok_t));
		p = add(&l2, "nagios_new", CFG_PROBE_NAGIOS, 200, 150);
		set_cmd(p, a2, 1, exit5_sh);
		cfg.probes = l2.p;
		cfg.nprobes = l2.n;
		probes_reload(ps, &cfg);
		o = expect(ps, "http_ok", "ok"); /* kept its state */
		json_decref(o);
		o = expect(ps, "tcp_ok", "unknown"); /* restarted */
		json_decref(o);
		assert_null(status_of(ps, "http_hang"));
		ar.min_runs = 1;
		assert_true(run_until(&e.loop, all_ran_pred, &ar, 3000));
		d = scrape(e.reg);
		assert_true(isnan(metric(d, "storekeep_probe_up", "http_hang",
					 "http")));
		assert_true(isnan(metric(d, "storekeep_sqlite_file_bytes",
					 "sqlite_ok", NULL)));
		assert_true(isnan(pp_find(d, "storekeep_nagios_perf", "probe",
					  "nagios_crit", "label", "a b", "uom",
					  "ms", NULL)
					  ->value));
		assert_true(metric(d, "storekeep_probe_up", "tcp_ok", "tcp") ==
			    1);
		pp_free(d);
		free(d);
	}

	stopped = false;
	probes_stop(ps, stopped_cb, &stopped);
	assert_true(run_until(&e.loop, flag_pred, &stopped, 3000));
	/* Nothing may be left on the loop. */
	assert_int_equal(uv_run(&e.loop, UV_RUN_NOWAIT), 0);
	sqlite3_close(keep_wal);
	env_stop(&e);
}

/* Stopping while a plugin and a request hang: both are cut at once. */
static void test_stop_while_hung(void **state)
{
	struct probe_list l = {.n = 0};
	struct cfg_monitor cfg = {0};
	struct cfg_probe *p;
	struct cfg_arg a[2];
	struct probes *ps;
	char url[128], err[256];
	uint64_t t0;
	bool done = false;

	(void)state;
	env_start(&e);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow?ms=5000",
		 e.origin_port);
	p = add(&l, "slow_http", CFG_PROBE_HTTP, 60000, 30000);
	p->url = url;
	p = add(&l, "slow_plugin", CFG_PROBE_NAGIOS, 60000, 30000);
	set_cmd(p, a, 2, "/bin/sleep", "30");
	cfg.probes = l.p;
	cfg.nprobes = l.n;
	ps = probes_start(&e.loop, &cfg, e.reg, 0, err, sizeof(err));
	assert_non_null(ps);
	/* Let both start (first runs come within a second). */
	t0 = now_ms();
	while (now_ms() - t0 < 1200)
		uv_run(&e.loop, UV_RUN_NOWAIT), usleep(5000);
	t0 = now_ms();
	probes_stop(ps, stopped_cb, &done);
	assert_true(run_until(&e.loop, flag_pred, &done, 3000));
	assert_true(now_ms() - t0 < 1000);
	assert_int_equal(uv_run(&e.loop, UV_RUN_NOWAIT), 0);
	env_stop(&e);
}

static void test_bad_url(void **state)
{
	struct metrics *reg;
	struct cfg_probe p = {.name = "x", .type = CFG_PROBE_HTTP,
			      .interval_ms = 1000, .timeout_ms = 500,
			      .status_min = 200, .status_max = 399};
	struct cfg_monitor cfg = {.probes = &p, .nprobes = 1};
	static const char *const bad[] = {
		"http://", "http://:80/", "http://h:0/", "http://h:99999/",
		"http://u@h/", "http://h/a b", "http://[::1/", "http://h:x/",
	};
	uv_loop_t loop;
	char err[256];

	(void)state;
	assert_int_equal(metrics_new(1, &reg), 0);
	uv_loop_init(&loop);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.url = (char *)bad[i];
		err[0] = '\0';
		assert_null(probes_start(&loop, &cfg, reg, 0, err, sizeof(err)));
		assert_non_null(strstr(err, "monitor.probes[x]: url"));
	}
	/* A shard the registry does not have. */
	p.url = "http://[::1]:8080/x";
	assert_null(probes_start(&loop, &cfg, reg, 1, err, sizeof(err)));
	assert_int_equal(uv_loop_close(&loop), 0);
	metrics_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_perf_basic),
		cmocka_unit_test(test_perf_quoted_and_multiline),
		cmocka_unit_test(test_perf_malformed),
		cmocka_unit_test(test_bad_url),
		cmocka_unit_test_teardown(test_probes_real, teardown),
		cmocka_unit_test_teardown(test_stop_while_hung, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
