/*
 * sched.c - the daemon's backup scheduler, its status and its metrics.
 *
 * Lives on the control loop. Each job has a timer for its next run and,
 * when verify.schedule is set, one for its next restore drill; the work
 * itself (backup_run, backup_verify) goes to libuv's thread pool with
 * uv_queue_work, so the loop never blocks on a backup. A job has at most
 * one piece of work queued or running: a run or drill that comes due
 * meanwhile is remembered and started when the current one ends (several
 * missed slots make one run, not a burst). The job's flock (run.c) keeps
 * a CLI run beside the daemon from overlapping too; the daemon then skips
 * its run with a warning.
 *
 * Times: cron schedules are evaluated on the wall clock in UTC (cron.h);
 * timers are re-armed at most a minute ahead, so a wall-clock jump only
 * delays a run by that much. Interval jobs run every interval after the
 * previous start. At start a job whose slot passed while storekeep was
 * down runs at once (catch-up), and an interval job without any archive
 * too; a cron job without archives waits for its first slot.
 *
 * Alerts (until the alert engine exists they are log_error lines, and
 * flags in the status and metrics): a failed run, a failed verify, an
 * overdue job (no successful run for a minute past its expected slot),
 * and an RPO breach (the newest verified archive is older than rpo; with
 * rpo set but no verify.schedule, each new archive is verified right
 * after its run). Each is logged when it starts and when it ends, not on
 * every check.
 *
 * The repository (which may be a slow network mount) is read on the
 * work thread after each piece of work, never from a timer on the loop;
 * only adding a job (start, reload) scans it once on the loop, since the
 * catch-up decision needs its newest archive.
 *
 * Every field of struct sjob is read and written on the loop thread,
 * except the work's inputs and outputs, which the work thread owns
 * between uv_queue_work and the after-work callback.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup_int.h"
#include "core/clock.h"
#include "core/cron.h"
#include "core/log.h"

#define TICK_MS 5000
#define MAX_SLEEP_MS 60000
#define OVERDUE_GRACE_MS 60000

enum { WORK_RUN, WORK_VERIFY };

/* What the repository knows about a job: read on the work thread after
 * each piece of work (and once when the job is added), applied to the
 * status on the loop. */
struct repo_info {
	int valid;
	size_t archives;
	int64_t newest_ms;
	int64_t last_verify_ms;
	int last_verify_ok; /* -1 unknown */
	char verify_error[1024];
	int64_t verified_created_ms;
	int64_t verify_success_ms;
};

struct sjob {
	struct backup_sched *s;
	char *name;
	uv_timer_t run_timer;
	uv_timer_t verify_timer;
	uv_work_t work;
	int busy;
	int run_due;
	int verify_due;
	int removed;
	int closing; /* handles still closing */

	/* The work's inputs and outputs. */
	struct config *wcfg;
	int kind;
	int verify_after;
	int rc;
	char err[1024];
	struct backup_run_result rr;
	int did_verify;
	int vrc;
	char verr[1024];
	struct repo_info winfo;

	/* Status. */
	int64_t next_run_ms;
	int64_t next_verify_ms;
	int64_t last_start_ms;
	int64_t last_success_ms;
	uint64_t last_duration_ms;
	uint64_t bytes_in;
	uint64_t bytes_out;
	size_t archives;
	int last_run_failed;
	char last_error[1024];
	int64_t last_verify_ms;
	int last_verify_ok; /* -1 unknown */
	char verify_error[1024];
	int64_t verify_success_ms;
	int64_t verified_created_ms;
	int rpo_breached;
	int overdue;
	struct sjob *next;
};

struct backup_sched {
	uv_loop_t *loop;
	struct config *cfg;
	struct backup_key *key;
	uv_timer_t tick;
	int tick_closed;
	struct sjob *jobs;
	atomic_int cancel;
	int stopping;
	void (*done)(void *);
	void *done_ud;
	int64_t started_ms;
};

static void start_work(struct sjob *j, int kind);

static int64_t now_ms(void)
{
	return (int64_t)clock_wall_ms();
}

static const struct cfg_backup_job *cfg_job(const struct config *cfg,
					    const char *name)
{
	return cfg->backup.enabled ? bk_find_job(cfg, name) : NULL;
}

/* The first slot of job strictly after ms; INT64_MAX when none. */
static int64_t next_after(const char *schedule, uint32_t interval_ms,
			  int64_t ms)
{
	struct cron c;
	char why[128];
	int64_t t;

	if (schedule == NULL)
		return ms + (int64_t)interval_ms;
	if (cron_parse(schedule, &c, why, sizeof(why)) < 0)
		return INT64_MAX; /* the loader validated it */
	t = cron_next(&c, ms / 1000);
	return t ? t * 1000 : INT64_MAX;
}

static void arm(uv_timer_t *t, uv_timer_cb cb, int64_t at)
{
	int64_t d = at - now_ms();

	if (at == INT64_MAX) {
		uv_timer_stop(t);
		return;
	}
	if (d < 0)
		d = 0;
	if (d > MAX_SLEEP_MS)
		d = MAX_SLEEP_MS;
	uv_timer_start(t, cb, (uint64_t)d, 0);
}

static void run_timer_cb(uv_timer_t *t)
{
	struct sjob *j = t->data;

	if (now_ms() + 20 < j->next_run_ms) {
		arm(t, run_timer_cb, j->next_run_ms); /* woke early */
		return;
	}
	start_work(j, WORK_RUN);
}

static void verify_timer_cb(uv_timer_t *t)
{
	struct sjob *j = t->data;

	if (now_ms() + 20 < j->next_verify_ms) {
		arm(t, verify_timer_cb, j->next_verify_ms);
		return;
	}
	start_work(j, WORK_VERIFY);
}

static void repo_info_load(const struct config *cfg, const char *name,
			   struct repo_info *ri)
{
	const struct cfg_backup_job *cj = cfg_job(cfg, name);
	struct repo_list l = {0};
	char dir[PATH_MAX];
	json_t *st, *lv, *ver;
	const char *e;

	memset(ri, 0, sizeof(*ri));
	ri->last_verify_ok = -1;
	if (cj == NULL)
		return;
	ri->valid = 1;
	snprintf(dir, sizeof(dir), "%s/%s", backup_job_repository(cfg, cj), name);
	(void)repo_scan(backup_job_repository(cfg, cj), name, &l);
	for (size_t i = 0; i < l.n; i++) {
		if (l.a[i].damaged)
			continue;
		ri->archives++;
		if (l.a[i].h.created_ms > ri->newest_ms)
			ri->newest_ms = l.a[i].h.created_ms;
	}
	repo_list_fini(&l);
	st = repo_state_load(dir);
	if (st == NULL)
		return;
	lv = json_object_get(st, "last_verify");
	if (lv) {
		ri->last_verify_ms = json_integer_value(json_object_get(lv, "time_ms"));
		ri->last_verify_ok = json_is_true(json_object_get(lv, "ok"));
		e = json_string_value(json_object_get(lv, "error"));
		snprintf(ri->verify_error, sizeof(ri->verify_error), "%s",
			 e ? e : "");
	}
	ver = json_object_get(st, "verified");
	if (ver) {
		ri->verified_created_ms =
			json_integer_value(json_object_get(ver, "archive_created_ms"));
		ri->verify_success_ms =
			json_integer_value(json_object_get(ver, "time_ms"));
	}
	json_decref(st);
}

static void repo_info_apply(struct sjob *j, const struct repo_info *ri)
{
	if (!ri->valid)
		return;
	j->archives = ri->archives;
	if (ri->newest_ms > j->last_success_ms)
		j->last_success_ms = ri->newest_ms;
	if (ri->last_verify_ms) {
		j->last_verify_ms = ri->last_verify_ms;
		j->last_verify_ok = ri->last_verify_ok;
		snprintf(j->verify_error, sizeof(j->verify_error), "%s",
			 ri->verify_error);
	}
	j->verified_created_ms = ri->verified_created_ms;
	j->verify_success_ms = ri->verify_success_ms;
}

/* Plans the next run and drill of j from what is known now. */
static void plan(struct sjob *j, int at_start)
{
	const struct cfg_backup_job *cj = cfg_job(j->s->cfg, j->name);
	int64_t now = now_ms();

	if (cj == NULL)
		return;
	if (j->last_start_ms) {
		j->next_run_ms = next_after(cj->schedule, cj->interval_ms,
					    j->last_start_ms);
	} else if (j->last_success_ms) {
		j->next_run_ms = next_after(cj->schedule, cj->interval_ms,
					    j->last_success_ms);
		if (at_start && j->next_run_ms <= now)
			log_warn("backup missed its slot while storekeep was down; "
				 "running it now",
				 "job=%s", j->name);
	} else {
		j->next_run_ms = cj->schedule ? next_after(cj->schedule, 0, now)
					      : now;
	}
	if (j->next_run_ms < now)
		j->next_run_ms = now;
	if (!j->busy)
		arm(&j->run_timer, run_timer_cb, j->next_run_ms);
	if (cj->verify.schedule) {
		j->next_verify_ms = next_after(cj->verify.schedule, 0, now);
		arm(&j->verify_timer, verify_timer_cb, j->next_verify_ms);
	} else {
		j->next_verify_ms = 0;
		uv_timer_stop(&j->verify_timer);
	}
}

static struct sjob *job_new(struct backup_sched *s, const char *name)
{
	struct sjob *j = calloc(1, sizeof(*j));

	SK_ASSERT(j != NULL);
	j->s = s;
	j->name = strdup(name);
	SK_ASSERT(j->name != NULL);
	j->last_verify_ok = -1;
	uv_timer_init(s->loop, &j->run_timer);
	uv_timer_init(s->loop, &j->verify_timer);
	j->run_timer.data = j;
	j->verify_timer.data = j;
	j->work.data = j;
	j->next = s->jobs;
	s->jobs = j;
	/* Once, on the loop: the plan depends on the newest archive. */
	repo_info_load(s->cfg, j->name, &j->winfo);
	repo_info_apply(j, &j->winfo);
	plan(j, 1);
	return j;
}

static void maybe_finish(struct backup_sched *s)
{
	if (!s->stopping || s->jobs != NULL || !s->tick_closed)
		return;
	log_info("backup scheduler stopped", "%s", "");
	if (s->done)
		s->done(s->done_ud);
	config_unref(s->cfg);
	backup_key_free(s->key);
	free(s);
}

static void job_closed_cb(uv_handle_t *h)
{
	struct sjob *j = h->data;
	struct backup_sched *s = j->s;

	if (--j->closing > 0)
		return;
	for (struct sjob **p = &s->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	free(j->name);
	free(j);
	maybe_finish(s);
}

static void job_close(struct sjob *j)
{
	if (j->closing)
		return;
	j->closing = 2;
	uv_close((uv_handle_t *)&j->run_timer, job_closed_cb);
	uv_close((uv_handle_t *)&j->verify_timer, job_closed_cb);
}

/* What a run notes for the operator goes to the log: skipped files as
 * warnings, the rest (prune decisions) at debug level. */
static void note_cb(void *ud, const char *line)
{
	const struct sjob *j = ud;
	char q[1100];

	if (strncmp(line, "note:", 5) == 0 || strncmp(line, "left alone", 10) == 0)
		log_warn("backup note", "job=%s note=%s", j->name,
			 log_q(q, sizeof(q), line));
	else
		log_debug("backup note", "job=%s note=%s", j->name,
			  log_q(q, sizeof(q), line));
}

static void work_cb(uv_work_t *w)
{
	struct sjob *j = w->data;
	const struct cfg_backup_job *cj = cfg_job(j->wcfg, j->name);
	struct backup_verify_result vr;
	struct backup_opts o;

	memset(&o, 0, sizeof(o));
	o.cancel = &j->s->cancel;
	o.note = note_cb;
	o.note_ud = j;
	j->did_verify = 0;
	j->err[0] = j->verr[0] = '\0';
	j->winfo.valid = 0;
	if (cj == NULL) {
		j->rc = -ENOENT;
		snprintf(j->err, sizeof(j->err), "the job is gone from the config");
		return;
	}
	if (j->kind == WORK_RUN) {
		j->rc = backup_run(j->wcfg, cj, j->s->key, &o, &j->rr, j->err,
				   sizeof(j->err));
		if (j->rc == 0 && j->verify_after) {
			j->did_verify = 1;
			j->vrc = backup_verify(j->wcfg, j->s->key, j->rr.id, &o, &vr,
					       j->verr, sizeof(j->verr));
		}
	} else {
		j->did_verify = 1;
		j->vrc = backup_verify(j->wcfg, j->s->key, j->name, &o, &vr, j->verr,
				       sizeof(j->verr));
		j->rc = 0;
	}
	repo_info_load(j->wcfg, j->name, &j->winfo);
}

static void after_verify(struct sjob *j)
{
	j->last_verify_ms = now_ms();
	j->last_verify_ok = j->vrc == 0;
	if (j->vrc == 0) {
		j->verify_error[0] = '\0';
		log_info("backup verified", "job=%s", j->name);
	} else if (j->vrc != -ECANCELED) {
		char q[1100];

		snprintf(j->verify_error, sizeof(j->verify_error), "%s", j->verr);
		log_error("backup verify failed", "job=%s err=%s", j->name,
			  log_q(q, sizeof(q), j->verr));
	}
}

static void after_work_cb(uv_work_t *w, int status)
{
	struct sjob *j = w->data;
	struct backup_sched *s = j->s;
	char q[1100];

	(void)status;
	j->busy = 0;
	config_unref(j->wcfg);
	j->wcfg = NULL;
	if (j->kind == WORK_RUN) {
		if (j->rc == 0) {
			j->last_success_ms = j->rr.created_ms;
			j->last_duration_ms = j->rr.duration_ms;
			j->bytes_in = j->rr.bytes_in;
			j->bytes_out = j->rr.bytes_out;
			j->last_run_failed = 0;
			j->last_error[0] = '\0';
			log_info("backup done",
				 "job=%s id=%s bytes_in=%llu bytes_out=%llu "
				 "duration_ms=%llu pruned=%zu archives=%zu",
				 j->name, j->rr.id, (unsigned long long)j->rr.bytes_in,
				 (unsigned long long)j->rr.bytes_out,
				 (unsigned long long)j->rr.duration_ms, j->rr.pruned,
				 j->rr.archives);
		} else if (j->rc == -ECANCELED) {
			log_info("backup cancelled", "job=%s", j->name);
		} else if (j->rc == -EBUSY) {
			log_warn("backup skipped: another run of the job holds its lock",
				 "job=%s", j->name);
		} else {
			j->last_run_failed = 1;
			snprintf(j->last_error, sizeof(j->last_error), "%s", j->err);
			log_error("backup failed", "job=%s err=%s", j->name,
				  log_q(q, sizeof(q), j->err));
		}
	}
	repo_info_apply(j, &j->winfo);
	if (j->did_verify)
		after_verify(j);
	if (s->stopping || j->removed) {
		job_close(j);
		return;
	}
	if (j->run_due) {
		j->run_due = 0;
		start_work(j, WORK_RUN);
	} else if (j->verify_due) {
		j->verify_due = 0;
		start_work(j, WORK_VERIFY);
	} else {
		arm(&j->run_timer, run_timer_cb, j->next_run_ms);
	}
}

static void start_work(struct sjob *j, int kind)
{
	struct backup_sched *s = j->s;
	const struct cfg_backup_job *cj = cfg_job(s->cfg, j->name);
	int64_t now = now_ms();
	int r;

	if (s->stopping || j->removed || cj == NULL || s->key == NULL)
		return;
	if (kind == WORK_RUN) {
		j->next_run_ms = next_after(cj->schedule, cj->interval_ms, now);
		if (!j->busy)
			arm(&j->run_timer, run_timer_cb, j->next_run_ms);
	} else if (cj->verify.schedule) {
		j->next_verify_ms = next_after(cj->verify.schedule, 0, now);
		arm(&j->verify_timer, verify_timer_cb, j->next_verify_ms);
	}
	if (j->busy) {
		if (kind == WORK_RUN)
			j->run_due = 1;
		else
			j->verify_due = 1;
		return;
	}
	j->kind = kind;
	j->verify_after = kind == WORK_RUN && cj->rpo_ms && !cj->verify.schedule;
	if (kind == WORK_RUN)
		j->last_start_ms = now;
	j->wcfg = config_ref(s->cfg);
	r = uv_queue_work(s->loop, &j->work, work_cb, after_work_cb);
	if (r < 0) {
		config_unref(j->wcfg);
		j->wcfg = NULL;
		log_error("backup cannot start", "job=%s err=%s", j->name,
			  uv_strerror(r));
		return;
	}
	j->busy = 1;
	/* While busy the timer stays off; the after-work callback re-arms
	 * it. A slot that passes meanwhile is caught by run_due. */
	if (kind == WORK_RUN)
		uv_timer_stop(&j->run_timer);
	log_info(kind == WORK_RUN ? "backup started" : "backup verify started",
		 "job=%s", j->name);
}

static void check_alerts(struct sjob *j, int64_t now)
{
	const struct cfg_backup_job *cj = cfg_job(j->s->cfg, j->name);
	int64_t ref, expected;
	char when[32];
	int breached, overdue;

	if (cj == NULL)
		return;
	if (cj->rpo_ms) {
		ref = j->verified_created_ms;
		breached = ref ? now - ref > (int64_t)cj->rpo_ms
			       : now - j->s->started_ms > (int64_t)cj->rpo_ms;
		if (breached && !j->rpo_breached) {
			if (ref)
				bk_fmt_time(ref, when);
			log_error("backup rpo breached: the newest verified archive "
				  "is older than the recovery-point objective",
				  "job=%s rpo_ms=%u newest_verified=%s", j->name,
				  cj->rpo_ms, ref ? when : "none");
		} else if (!breached && j->rpo_breached) {
			log_info("backup rpo met again", "job=%s", j->name);
		}
		j->rpo_breached = breached;
	} else {
		j->rpo_breached = 0;
	}
	if (j->busy)
		return;
	ref = j->last_success_ms ? j->last_success_ms : j->s->started_ms;
	expected = next_after(cj->schedule, cj->interval_ms, ref);
	overdue = expected != INT64_MAX && now > expected + OVERDUE_GRACE_MS;
	if (overdue && !j->overdue) {
		if (j->last_success_ms)
			bk_fmt_time(j->last_success_ms, when);
		log_error("backup overdue: no successful run since its expected slot",
			  "job=%s last_success=%s last_error=%s", j->name,
			  j->last_success_ms ? when : "never",
			  j->last_error[0] ? "see status" : "none");
	} else if (!overdue && j->overdue) {
		log_info("backup no longer overdue", "job=%s", j->name);
	}
	j->overdue = overdue;
}

static void tick_cb(uv_timer_t *t)
{
	struct backup_sched *s = t->data;
	int64_t now = now_ms();

	for (struct sjob *j = s->jobs; j; j = j->next) {
		if (j->removed)
			continue;
		check_alerts(j, now);
	}
}

static void tick_closed_cb(uv_handle_t *h)
{
	struct backup_sched *s = h->data;

	s->tick_closed = 1;
	maybe_finish(s);
}

static int load_key(struct backup_sched *s, const struct config *cfg,
		    char *err, size_t errlen)
{
	if (s->key || !cfg->backup.enabled || cfg->backup.njobs == 0)
		return 0;
	return backup_key_load(cfg->backup.key_file, &s->key, err, errlen);
}

struct backup_sched *backup_sched_start(uv_loop_t *control,
					const struct config *cfg, char *err,
					size_t errlen)
{
	struct backup_sched *s = calloc(1, sizeof(*s));

	SK_ASSERT(s != NULL);
	s->loop = control;
	s->started_ms = now_ms();
	if (load_key(s, cfg, err, errlen) < 0) {
		free(s);
		return NULL;
	}
	/* The config is immutable apart from its reference count, which
	 * config_ref only touches atomically. */
	s->cfg = config_ref((struct config *)cfg);
	uv_timer_init(control, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, tick_cb, TICK_MS, TICK_MS);
	if (cfg->backup.enabled)
		for (size_t i = 0; i < cfg->backup.njobs; i++)
			job_new(s, cfg->backup.jobs[i].name);
	log_info("backup scheduler started", "jobs=%zu",
		 cfg->backup.enabled ? cfg->backup.njobs : (size_t)0);
	return s;
}

void backup_sched_reload(struct backup_sched *s, const struct config *cfg)
{
	struct config *old = s->cfg;
	char err[512];

	if (s->stopping)
		return;
	if (load_key(s, cfg, err, sizeof(err)) < 0)
		log_error("backup key cannot be loaded; backups stay off", "err=%s",
			  err);
	s->cfg = config_ref((struct config *)cfg);
	for (struct sjob *j = s->jobs; j; j = j->next) {
		if (j->removed || cfg_job(cfg, j->name))
			continue;
		j->removed = 1;
		log_info("backup job removed", "job=%s", j->name);
		if (!j->busy)
			job_close(j);
	}
	if (cfg->backup.enabled) {
		for (size_t i = 0; i < cfg->backup.njobs; i++) {
			const char *name = cfg->backup.jobs[i].name;
			struct sjob *j;

			for (j = s->jobs; j; j = j->next)
				if (!j->removed && strcmp(j->name, name) == 0)
					break;
			if (j)
				plan(j, 0);
			else
				job_new(s, name);
		}
	}
	config_unref(old);
}

int backup_sched_trigger(struct backup_sched *s, const char *job, int verify)
{
	struct sjob *j;

	if (s->stopping)
		return -ESHUTDOWN;
	for (j = s->jobs; j; j = j->next)
		if (!j->removed && strcmp(j->name, job) == 0)
			break;
	if (j == NULL || cfg_job(s->cfg, job) == NULL)
		return -ENOENT;
	if (s->key == NULL)
		return -ENOKEY;
	log_info("backup triggered", "job=%s what=%s", job,
		 verify ? "verify" : "run");
	start_work(j, verify ? WORK_VERIFY : WORK_RUN);
	return 0;
}

void backup_sched_stop(struct backup_sched *s, void (*done)(void *), void *ud)
{
	s->stopping = 1;
	s->done = done;
	s->done_ud = ud;
	atomic_store(&s->cancel, 1);
	uv_close((uv_handle_t *)&s->tick, tick_closed_cb);
	for (struct sjob *j = s->jobs; j; j = j->next)
		if (!j->busy)
			job_close(j);
	/* Busy jobs close from their after-work callback. */
}

static json_t *time_or_null(int64_t ms)
{
	char when[32];

	if (ms <= 0)
		return json_null();
	bk_fmt_time(ms, when);
	return json_string(when);
}

json_t *backup_status_json(struct backup_sched *s)
{
	json_t *root = json_object(), *arr = json_array();

	for (struct sjob *j = s->jobs; j; j = j->next) {
		json_t *o = json_object();

		if (j->removed)
			continue;
		json_object_set_new(o, "name", json_string(j->name));
		json_object_set_new(o, "running", json_boolean(j->busy));
		json_object_set_new(o, "last_success", time_or_null(j->last_success_ms));
		json_object_set_new(o, "last_duration_ms",
				    json_integer((json_int_t)j->last_duration_ms));
		json_object_set_new(o, "bytes_in", json_integer((json_int_t)j->bytes_in));
		json_object_set_new(o, "bytes_out",
				    json_integer((json_int_t)j->bytes_out));
		json_object_set_new(o, "archives", json_integer((json_int_t)j->archives));
		json_object_set_new(o, "last_run_failed",
				    json_boolean(j->last_run_failed));
		json_object_set_new(o, "last_error",
				    j->last_error[0] ? json_string(j->last_error)
						     : json_null());
		json_object_set_new(o, "last_verify", time_or_null(j->last_verify_ms));
		json_object_set_new(o, "last_verify_ok",
				    j->last_verify_ok < 0
					    ? json_null()
					    : json_boolean(j->last_verify_ok));
		json_object_set_new(o, "verify_error",
				    j->verify_error[0] ? json_string(j->verify_error)
						       : json_null());
		json_object_set_new(o, "newest_verified_archive",
				    time_or_null(j->verified_created_ms));
		json_object_set_new(o, "rpo_breached", json_boolean(j->rpo_breached));
		json_object_set_new(o, "overdue", json_boolean(j->overdue));
		json_object_set_new(o, "next_run",
				    j->busy ? json_null() : time_or_null(j->next_run_ms));
		json_object_set_new(o, "next_verify", time_or_null(j->next_verify_ms));
		json_array_append_new(arr, o);
	}
	json_object_set_new(root, "jobs", arr);
	return root;
}

static void metric(struct buf *out, struct backup_sched *s, const char *name,
		   const char *help, int which)
{
	buf_printf(out, "# HELP storekeep_backup_%s %s\n", name, help);
	buf_printf(out, "# TYPE storekeep_backup_%s gauge\n", name);
	for (struct sjob *j = s->jobs; j; j = j->next) {
		if (j->removed)
			continue;
		buf_printf(out, "storekeep_backup_%s{job=\"", name);
		for (const char *p = j->name; *p; p++) {
			if (*p == '\\' || *p == '"')
				buf_appendc(out, '\\');
			buf_appendc(out, *p);
		}
		buf_appends(out, "\"} ");
		switch (which) {
		case 0:
			buf_printf(out, "%.3f", (double)j->last_success_ms / 1000.0);
			break;
		case 1:
			buf_printf(out, "%.3f", (double)j->last_duration_ms / 1000.0);
			break;
		case 2:
			buf_printf(out, "%llu", (unsigned long long)j->bytes_in);
			break;
		case 3:
			buf_printf(out, "%llu", (unsigned long long)j->bytes_out);
			break;
		case 4:
			buf_printf(out, "%zu", j->archives);
			break;
		case 5:
			buf_printf(out, "%d", j->last_run_failed);
			break;
		case 6:
			buf_printf(out, "%.3f", (double)j->verify_success_ms / 1000.0);
			break;
		case 7:
			buf_printf(out, "%d", j->rpo_breached);
			break;
		default:
			buf_printf(out, "%d", j->overdue);
			break;
		}
		buf_appendc(out, '\n');
	}
}

void backup_metrics_write(struct backup_sched *s, struct buf *out)
{
	metric(out, s, "last_success_timestamp_seconds",
	       "Creation time of the job's newest archive (0: none).", 0);
	metric(out, s, "last_duration_seconds",
	       "How long the job's last successful run took.", 1);
	metric(out, s, "last_read_bytes",
	       "Bytes read from the sources by the last successful run.", 2);
	metric(out, s, "last_archive_bytes",
	       "Size of the archive written by the last successful run.", 3);
	metric(out, s, "archives", "Archives of the job in its repository.", 4);
	metric(out, s, "last_run_failed", "1 when the job's last run failed.", 5);
	metric(out, s, "last_verify_success_timestamp_seconds",
	       "When an archive of the job last passed verify (0: never).", 6);
	metric(out, s, "rpo_breached",
	       "1 when the newest verified archive is older than the job's rpo.",
	       7);
	metric(out, s, "overdue",
	       "1 when the job has had no successful run since a minute past "
	       "its expected slot.",
	       8);
}
