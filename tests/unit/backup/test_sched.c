/*
 * test_sched.c - the daemon's scheduler on a real loop, through
 * backup/backup.h.
 *
 * An interval job runs on its own (with the work on the thread pool),
 * keeps its retention, and with an RPO but no drill schedule verifies
 * each new archive; status and metrics say so. A triggered drill runs, a
 * failing job is reported as failed, a job dropped by a reload goes away,
 * and stop waits for the work and calls back once, leaving nothing behind
 * (ASan checks the last part).
 */
#include <errno.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/backup_int.h"

static char dir[64];

static struct config *load(int with_broken)
{
	char path[256], err[512];
	struct config *cfg;
	FILE *f;

	snprintf(path, sizeof(path), "%s/storekeep%d.yaml", dir, with_broken);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"pools:\n"
		"  - name: shop\n"
		"    backends:\n"
		"      - name: a\n"
		"        address: 127.0.0.1:9\n"
		"backup:\n"
		"  key_file: %s/backup.key\n"
		"  repository: %s/repo\n"
		"  jobs:\n"
		"    - name: often\n"
		"      interval: 300ms\n"
		"      rpo: 1h\n"
		"      sources:\n"
		"        - type: sqlite\n"
		"          path: %s/app.db\n"
		"      retention:\n"
		"        keep_last: 2\n"
		"        keep_daily: 0\n"
		"        keep_weekly: 0\n"
		"        keep_monthly: 0\n",
		dir, dir, dir);
	if (with_broken)
		fprintf(f,
			"    - name: broken\n"
			"      interval: 1h\n"
			"      sources:\n"
			"        - type: sqlite\n"
			"          path: %s/missing.db\n",
			dir);
	fclose(f);
	if (config_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	return cfg;
}

static int setup(void **state)
{
	char p[128], err[256];
	sqlite3 *db;

	(void)state;
	strcpy(dir, "/tmp/sk-test-sched-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/app.db", dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t "
					  "VALUES (1);",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	snprintf(p, sizeof(p), "%s/backup.key", dir);
	assert_int_equal(backup_key_create(p, 0, err, sizeof(err)), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	repo_rm_tree(dir);
	return 0;
}

struct waiter {
	struct backup_sched *s;
	int (*done)(struct backup_sched *s);
	int ok;
};

static void poll_cb(uv_timer_t *t)
{
	struct waiter *w = t->data;

	if (w->done(w->s)) {
		w->ok = 1;
		uv_stop(t->loop);
	}
}

static void limit_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Runs loop until done(s) or ms passed; returns whether done. */
static int run_until(uv_loop_t *loop, struct backup_sched *s,
		     int (*done)(struct backup_sched *), uint64_t ms)
{
	struct waiter w = {s, done, 0};
	uv_timer_t poll, limit;

	uv_timer_init(loop, &poll);
	uv_timer_init(loop, &limit);
	poll.data = &w;
	uv_timer_start(&poll, poll_cb, 20, 20);
	uv_timer_start(&limit, limit_cb, ms, 0);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&poll, NULL);
	uv_close((uv_handle_t *)&limit, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return w.ok;
}

static json_t *job_status(struct backup_sched *s, const char *name,
			  json_t **root)
{
	json_t *j;
	size_t i;

	*root = backup_status_json(s);
	json_array_foreach(json_object_get(*root, "jobs"), i, j) {
		if (strcmp(json_string_value(json_object_get(j, "name")), name) == 0)
			return j;
	}
	return NULL;
}

static char first_id[BK_ID_MAX];

/* The first archive was pruned (so three runs happened), two are left,
 * and the newest was verified. */
static int pruned_and_verified(struct backup_sched *s)
{
	json_t *root, *j = job_status(s, "often", &root);
	int ok = j && json_integer_value(json_object_get(j, "archives")) == 2 &&
		 json_is_true(json_object_get(j, "last_verify_ok"));
	struct repo_list l = {0};
	char repo[128];

	json_decref(root);
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	repo_scan(repo, "often", &l);
	if (first_id[0] == '\0' && l.n > 0)
		snprintf(first_id, sizeof(first_id), "%s", l.a[0].id);
	ok = ok && l.n == 2 && first_id[0];
	for (size_t i = 0; i < l.n; i++)
		if (strcmp(l.a[i].id, first_id) == 0)
			ok = 0;
	repo_list_fini(&l);
	return ok;
}

static int broken_failed(struct backup_sched *s)
{
	json_t *root, *j = job_status(s, "broken", &root);
	int ok = j && json_is_true(json_object_get(j, "last_run_failed"));

	json_decref(root);
	return ok;
}

static int broken_gone(struct backup_sched *s)
{
	json_t *root, *j = job_status(s, "broken", &root);

	json_decref(root);
	return j == NULL;
}

static int stopped;

static void done_cb(void *ud)
{
	(void)ud;
	stopped++;
}

static void test_scheduler_runs_reports_and_stops(void **state)
{
	struct config *cfg = load(1), *cfg2;
	struct backup_sched *s;
	uv_loop_t loop;
	json_t *root, *j;
	struct buf m;
	char err[512];

	(void)state;
	uv_loop_init(&loop);
	s = backup_sched_start(&loop, cfg, err, sizeof(err));
	if (s == NULL)
		fail_msg("start: %s", err);
	config_unref(cfg); /* the scheduler holds its own reference */

	/* broken is an hourly job without archives: it runs at start. */
	assert_true(run_until(&loop, s, broken_failed, 10000));
	j = job_status(s, "broken", &root);
	assert_non_null(strstr(json_string_value(json_object_get(j, "last_error")),
			       "missing.db"));
	json_decref(root);
	assert_true(run_until(&loop, s, pruned_and_verified, 20000));

	j = job_status(s, "often", &root);
	assert_non_null(json_string_value(json_object_get(j, "last_success")));
	assert_true(json_integer_value(json_object_get(j, "bytes_out")) > 0);
	assert_false(json_is_true(json_object_get(j, "rpo_breached")));
	assert_false(json_is_true(json_object_get(j, "overdue")));
	json_decref(root);

	buf_init(&m);
	backup_metrics_write(s, &m);
	buf_cstr(&m);
	assert_non_null(strstr(m.data, "# TYPE storekeep_backup_last_success_"
					"timestamp_seconds gauge\n"));
	assert_non_null(strstr(m.data, "storekeep_backup_archives{job=\"often\"} 2\n"));
	assert_non_null(strstr(m.data,
			       "storekeep_backup_last_run_failed{job=\"broken\"} 1\n"));
	assert_non_null(strstr(m.data, "storekeep_backup_rpo_breached{job=\"often\"} 0\n"));
	buf_fini(&m);

	assert_int_equal(backup_sched_trigger(s, "nosuch", 0), -ENOENT);
	assert_int_equal(backup_sched_trigger(s, "broken", 1), 0);

	/* A reload without the broken job: it goes away. */
	cfg2 = load(0);
	backup_sched_reload(s, cfg2);
	config_unref(cfg2);
	assert_true(run_until(&loop, s, broken_gone, 10000));

	backup_sched_stop(s, done_cb, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(stopped, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scheduler_runs_reports_and_stops),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
