/*
 * test_run.c - runs, prune, list, verify and restore on a real repository,
 * through backup/backup.h (and backup_int.h for the lock and failure
 * injection).
 *
 * A job with a SQLite source and a files source runs on a synthetic
 * timeline (an injected clock): the retention after each run must leave
 * exactly the archives the rules name. The newest archive must then
 * verify (integrity_check, row counts, the job's assertion) and restore
 * with contents, modes and mtimes intact, the exclude patterns honoured,
 * and neither the key file nor the repository inside the archive. A held
 * lock makes a run give up with -EBUSY, a cancelled run leaves nothing
 * behind, and a damaged file inside an archive makes verify fail naming
 * the archive and the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backup/backup_int.h"

#define DAY (86400 * 1000LL)

static char dir[64];
static char path[512];
static struct config *cfg;
static struct backup_key *key;
static int64_t fake_now;

static int64_t clock_cb(void *ud)
{
	(void)ud;
	return fake_now;
}

static void put(const char *rel, const char *content, mode_t mode,
		time_t mtime)
{
	struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	assert_int_equal(chmod(p, mode), 0);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void sql(const char *db, const char *q)
{
	sqlite3 *h;
	char *err = NULL;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	if (sqlite3_exec(h, q, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", q, err);
	sqlite3_close(h);
}

static int setup(void **state)
{
	char err[512], p[512];
	FILE *f;

	(void)state;
	strcpy(dir, "/tmp/sk-test-run-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/tree", dir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/tree/sub", dir);
	assert_int_equal(mkdir(p, 0750), 0);
	put("tree/a.txt", "alpha\n", 0644, 1700000000);
	put("tree/sub/b.sh", "#!/bin/sh\necho b\n", 0751, 1700000100);
	put("tree/sub/c.log", "noise\n", 0644, 1700000200);
	put("tree/skip.tmp", "temporary\n", 0600, 1700000300);
	snprintf(p, sizeof(p), "%s/tree/link", dir);
	assert_int_equal(symlink("a.txt", p), 0);
	snprintf(p, sizeof(p), "%s/shop.db", dir);
	sql(p, "PRAGMA journal_mode=WAL; CREATE TABLE orders(id INTEGER PRIMARY "
	       "KEY, total INTEGER); INSERT INTO orders(total) VALUES "
	       "(1),(2),(3),(4),(5);");

	snprintf(path, sizeof(path), "%s/storekeep.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"pools:\n"
		"  - name: shop\n"
		"    backends:\n"
		"      - name: a\n"
		"        address: 127.0.0.1:9\n"
		"backup:\n"
		/* The key lives inside the backed-up tree: it must stay out. */
		"  key_file: %s/tree/backup.key\n"
		"  repository: %s/repo\n"
		"  jobs:\n"
		"    - name: nightly\n"
		"      schedule: \"0 3 * * *\"\n"
		"      sources:\n"
		"        - type: sqlite\n"
		"          name: shopdb\n"
		"          path: %s/shop.db\n"
		"        - type: files\n"
		"          paths: [%s/tree]\n"
		"          exclude: [\"*.log\", \"skip.*\"]\n"
		"      retention:\n"
		"        keep_last: 2\n"
		"        keep_daily: 3\n"
		"        keep_weekly: 0\n"
		"        keep_monthly: 0\n"
		"      verify:\n"
		"        assertions:\n"
		"          - SELECT count(*) = 5 FROM orders\n",
		dir, dir, dir, dir);
	fclose(f);
	if (config_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	assert_int_equal(backup_key_create(cfg->backup.key_file, 0, err,
					   sizeof(err)),
			 0);
	assert_int_equal(backup_key_load(cfg->backup.key_file, &key, err,
					 sizeof(err)),
			 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	backup_key_free(key);
	config_unref(cfg);
	repo_rm_tree(dir);
	return 0;
}

static void run_at(int64_t ms, struct backup_run_result *res)
{
	struct backup_opts o;
	char err[1024];

	memset(&o, 0, sizeof(o));
	o.now_ms = clock_cb;
	fake_now = ms;
	if (backup_run(cfg, &cfg->backup.jobs[0], key, &o, res, err, sizeof(err)) != 0)
		fail_msg("run: %s", err);
}

/* The creation times of the job's archives, sorted; returns how many. */
static size_t archive_times(int64_t *out, size_t max)
{
	struct repo_list l = {0};
	size_t n = 0;
	char repo[512];

	snprintf(repo, sizeof(repo), "%s/repo", dir);
	assert_int_equal(repo_scan(repo, "nightly", &l), 0);
	for (size_t i = 0; i < l.n && n < max; i++) {
		assert_false(l.a[i].damaged);
		out[n++] = l.a[i].h.created_ms;
	}
	repo_list_fini(&l);
	return n;
}

static void test_runs_on_a_timeline_then_retention(void **state)
{
	/* 2026-03-01 03:00 UTC. */
	const int64_t d0 = 1772334000000LL;
	struct backup_run_result res;
	int64_t t[16];
	size_t n;

	(void)state;
	for (int d = 0; d < 6; d++)
		run_at(d0 + d * DAY, &res);
	run_at(d0 + 5 * DAY + 3600 * 1000, &res);
	assert_true(res.files >= 7);
	assert_true(res.bytes_in > 0 && res.bytes_out > 0);
	/* last 2: day 5 04:00 and 03:00; daily 3: days 5, 4, 3. */
	n = archive_times(t, 16);
	assert_int_equal(n, 4);
	assert_int_equal(res.archives, 4);
	assert_int_equal(t[0], d0 + 3 * DAY);
	assert_int_equal(t[1], d0 + 4 * DAY);
	assert_int_equal(t[2], d0 + 5 * DAY);
	assert_int_equal(t[3], d0 + 5 * DAY + 3600 * 1000);
}

static void test_list_shows_tables(void **state)
{
	json_t *arr, *a, *src;
	char err[512];
	size_t i, k;
	int found = 0;

	(void)state;
	assert_int_equal(backup_list(cfg, key, NULL, &arr, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(arr), 4);
	json_array_foreach(arr, i, a) {
		assert_null(json_object_get(a, "error"));
		json_array_foreach(json_object_get(a, "sources"), k, src) {
			json_t *tb = json_object_get(src, "tables");

			if (tb) {
				assert_int_equal(json_integer_value(
							 json_object_get(tb, "orders")),
						 5);
				found++;
			}
		}
	}
	assert_int_equal(found, 4);
	json_decref(arr);
	/* Without the key, the headers still list. */
	assert_int_equal(backup_list(cfg, NULL, "nightly", &arr, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(arr), 4);
	json_decref(arr);
}

static void test_verify_and_restore(void **state)
{
	struct backup_verify_result vr;
	char err[1024], to[512], p[600], buf[64];
	struct stat st;
	FILE *f;

	(void)state;
	assert_int_equal(backup_verify(cfg, key, NULL, NULL, &vr, err, sizeof(err)), 0);
	assert_int_equal(vr.archives, 4);
	assert_int_equal(vr.failed, 0);

	snprintf(to, sizeof(to), "%s/restored", dir);
	assert_int_equal(backup_restore(cfg, key, "nightly", to, 0, NULL, err,
					sizeof(err)),
			 0);
	snprintf(p, sizeof(p), "%s/files%s/tree/a.txt", to, dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_mtime, 1700000000);
	f = fopen(p, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "alpha\n");
	snprintf(p, sizeof(p), "%s/files%s/tree/sub/b.sh", to, dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	assert_int_equal(st.st_mtime, 1700000100);
	snprintf(p, sizeof(p), "%s/files%s/tree/sub", to, dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	snprintf(p, sizeof(p), "%s/files%s/tree/link", to, dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* Excluded by pattern, and never archived: the key. */
	snprintf(p, sizeof(p), "%s/files%s/tree/sub/c.log", to, dir);
	assert_int_equal(lstat(p, &st), -1);
	snprintf(p, sizeof(p), "%s/files%s/tree/skip.tmp", to, dir);
	assert_int_equal(lstat(p, &st), -1);
	snprintf(p, sizeof(p), "%s/files%s/tree/backup.key", to, dir);
	assert_int_equal(lstat(p, &st), -1);
	/* The config and the database. */
	snprintf(p, sizeof(p), "%s/_storekeep/storekeep.yaml", to);
	assert_int_equal(stat(p, &st), 0);
	snprintf(p, sizeof(p), "%s/shopdb/shop.db", to);
	assert_int_equal(source_sqlite_check(p, NULL, &cfg->backup.jobs[0].verify,
					     err, sizeof(err)),
			 0);

	/* Not again into a non-empty directory without force. */
	assert_int_equal(backup_restore(cfg, key, "nightly", to, 0, NULL, err,
					sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "--force"));
	assert_int_equal(backup_restore(cfg, key, "nightly", to, 1, NULL, err,
					sizeof(err)),
			 0);
	assert_int_equal(backup_restore(cfg, key, "nosuch", to, 1, NULL, err,
					sizeof(err)),
			 -ENOENT);
}

static void test_lock_and_cancel(void **state)
{
	struct backup_run_result res;
	struct backup_opts o;
	atomic_int cancel = 1;
	char err[512], jobdir[512];
	int64_t t[16];
	int lock;

	(void)state;
	snprintf(jobdir, sizeof(jobdir), "%s/repo/nightly", dir);
	lock = repo_lock(jobdir);
	assert_true(lock >= 0);
	memset(&o, 0, sizeof(o));
	assert_int_equal(backup_run(cfg, &cfg->backup.jobs[0], key, &o, &res, err,
				    sizeof(err)),
			 -EBUSY);
	assert_non_null(strstr(err, "already running"));
	repo_unlock(lock);

	o.cancel = &cancel;
	assert_int_equal(backup_run(cfg, &cfg->backup.jobs[0], key, &o, &res, err,
				    sizeof(err)),
			 -ECANCELED);
	assert_int_equal(archive_times(t, 16), 4);
	/* Nothing but archives, the lock and the state file is left. */
	{
		char cmd[700];

		snprintf(cmd, sizeof(cmd),
			 "test -z \"$(ls -A %s | grep -v -e '\\.skb$' -e '^\\.lock$' "
			 "-e '^\\.state\\.json$')\"",
			 jobdir);
		assert_int_equal(system(cmd), 0);
	}
}

static void test_damage_is_named(void **state)
{
	struct backup_verify_result vr;
	struct repo_list l = {0};
	struct archive_reader *r;
	json_t *man, *e;
	char err[1024], repo[512], *json;
	const char *victim = NULL;
	uint64_t pos = 0;
	unsigned char b;
	size_t len, i;
	int fd;

	(void)state;
	snprintf(repo, sizeof(repo), "%s/repo", dir);
	assert_int_equal(repo_scan(repo, "nightly", &l), 0);
	assert_int_equal(archive_reader_open(l.a[0].path, key, &r, err, sizeof(err)), 0);
	assert_int_equal(archive_reader_manifest(r, &json, &len, err, sizeof(err)), 0);
	man = json_loads(json, 0, NULL);
	free(json);
	archive_reader_free(r);
	json_array_foreach(json_object_get(man, "entries"), i, e) {
		if (strstr(json_string_value(json_object_get(e, "path")), "a.txt")) {
			victim = json_string_value(json_object_get(e, "path"));
			pos = (uint64_t)json_integer_value(json_object_get(e, "offset")) +
			      30;
		}
	}
	assert_non_null(victim);
	fd = open(l.a[0].path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)pos), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)pos), 1);
	close(fd);
	assert_int_equal(backup_verify(cfg, key, l.a[0].id, NULL, &vr, err,
				       sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, l.a[0].id));
	assert_non_null(strstr(err, victim));
	json_decref(man);
	repo_list_fini(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_on_a_timeline_then_retention),
		cmocka_unit_test(test_list_shows_tables),
		cmocka_unit_test(test_verify_and_restore),
		cmocka_unit_test(test_lock_and_cancel),
		cmocka_unit_test(test_damage_is_named),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
