/*
 * run.c - one run of a backup job, and prune.
 *
 * A run, step by step:
 *
 *   1. take the job's lock (<repository>/<job>/.lock, flock) or give up
 *      with -EBUSY: two runs of one job never overlap, whoever started them;
 *   2. remove the leftovers of interrupted runs (.*.tmp, .*.work);
 *   3. write the archive under .<id>.skb.tmp: every source in config
 *      order, then storekeep's own config file, then the manifest;
 *   4. fsync the file, rename it to <id>.skb, fsync the directory;
 *   5. apply the job's retention.
 *
 * A crash or kill before the rename leaves only a dot-file, which is never
 * listed and is removed by the next run; after it, a complete archive.
 * Failpoints (backup_failpoint) mark the places the end-to-end tests kill
 * a run at.
 *
 * The key file and the repository itself are never archived, even when a
 * files source covers them.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup_int.h"
#include "core/clock.h"

#define IOBUF (1024 * 1024)
#define CONFIG_SOURCE "_storekeep"
/* storekeep's own state (the metrics history database), when it exists. */
#define STATE_SOURCE "_storekeep_state"

struct run_ctx {
	const struct config *cfg;
	const struct cfg_backup_job *job;
	const struct backup_opts *o;
	struct archive_writer *w;
	uint32_t next_index;
	json_t *entries;
	json_t *cur; /* the entry being streamed */
	uint64_t bytes_in;
	uint64_t total;
	uint64_t reported;
	char workdir[PATH_MAX];
	struct stat key_st;
	int have_key_st;
	struct stat repo_st;
	int have_repo_st;
	char *err;
	size_t errlen;
	unsigned char *io;
};

int run_fail(struct run_ctx *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

void run_note(struct run_ctx *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	bk_note(c->o, "%s", line);
}

int run_cancelled(const struct run_ctx *c)
{
	return c->o && c->o->cancel && atomic_load(c->o->cancel);
}

const char *run_workdir(const struct run_ctx *c)
{
	return c->workdir;
}

void run_progress_total(struct run_ctx *c, uint64_t more)
{
	c->total += more;
}

int run_is_excluded_object(const struct run_ctx *c, const struct stat *st)
{
	if (c->have_key_st && st->st_dev == c->key_st.st_dev &&
	    st->st_ino == c->key_st.st_ino)
		return 1;
	if (c->have_repo_st && st->st_dev == c->repo_st.st_dev &&
	    st->st_ino == c->repo_st.st_ino)
		return 1;
	return 0;
}

static void progress(struct run_ctx *c, int force)
{
	if (c->o == NULL || c->o->progress == NULL)
		return;
	if (!force && c->bytes_in - c->reported < 256 * 1024)
		return;
	c->reported = c->bytes_in;
	c->o->progress(c->o->progress_ud, c->bytes_in, c->total);
}

static json_t *meta_entry(const char *path, const char *kind,
			  const struct stat *st)
{
	json_t *e = json_object();

	json_object_set_new(e, "path", json_string(path));
	json_object_set_new(e, "kind", json_string(kind));
	if (st) {
		json_object_set_new(e, "mode", json_integer(st->st_mode & 07777));
		json_object_set_new(e, "uid", json_integer(st->st_uid));
		json_object_set_new(e, "gid", json_integer(st->st_gid));
		json_object_set_new(e, "mtime", json_integer(st->st_mtim.tv_sec));
		json_object_set_new(e, "mtime_nsec",
				    json_integer(st->st_mtim.tv_nsec));
	} else {
		json_object_set_new(e, "mode", json_integer(0600));
		json_object_set_new(e, "uid", json_integer(geteuid()));
		json_object_set_new(e, "gid", json_integer(getegid()));
		json_object_set_new(e, "mtime", json_integer(time(NULL)));
		json_object_set_new(e, "mtime_nsec", json_integer(0));
	}
	return e;
}

int run_stream_begin(struct run_ctx *c, const char *path, const char *kind)
{
	int r;

	SK_ASSERT(c->cur == NULL);
	r = archive_stream_begin(c->w, c->next_index);
	if (r < 0)
		return run_fail(c, r, "cannot write the archive: %s", strerror(-r));
	c->cur = meta_entry(path, kind, NULL);
	json_object_set_new(c->cur, "stream", json_integer(c->next_index));
	c->next_index++;
	return 0;
}

int run_stream_write(struct run_ctx *c, const void *p, size_t n)
{
	int r;

	if (run_cancelled(c))
		return run_fail(c, -ECANCELED, "cancelled");
	r = archive_stream_write(c->w, p, n);
	if (r < 0)
		return run_fail(c, r, "cannot write the archive: %s", strerror(-r));
	c->bytes_in += n;
	progress(c, 0);
	return 0;
}

int run_stream_end(struct run_ctx *c, json_t **entry)
{
	struct archive_stream_info info;
	char hex[2 * BK_HASH_BYTES + 1];
	int r;

	r = archive_stream_end(c->w, &info);
	if (r < 0)
		return run_fail(c, r, "cannot write the archive: %s", strerror(-r));
	bk_hex(info.hash, sizeof(info.hash), hex);
	json_object_set_new(c->cur, "size", json_integer((json_int_t)info.size));
	json_object_set_new(c->cur, "blake2b", json_string(hex));
	json_object_set_new(c->cur, "offset", json_integer((json_int_t)info.offset));
	json_object_set_new(c->cur, "stored", json_integer((json_int_t)info.stored));
	json_array_append_new(c->entries, c->cur);
	if (entry)
		*entry = c->cur;
	c->cur = NULL;
	return 0;
}

int run_add_fd(struct run_ctx *c, const char *path, const char *kind, int fd,
	       const struct stat *st, json_t **entry)
{
	json_t *e;
	ssize_t n;
	int r;

	r = run_stream_begin(c, path, kind);
	if (r < 0)
		return r;
	if (st) {
		/* The stream's entry was made without metadata. */
		json_t *m = meta_entry(path, kind, st);

		json_object_update(c->cur, m);
		json_decref(m);
	}
	for (;;) {
		n = read(fd, c->io, IOBUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			/* Close the stream so the writer stays consistent. */
			(void)archive_stream_end(c->w, NULL);
			json_decref(c->cur);
			c->cur = NULL;
			return run_fail(c, r, "cannot read %s: %s", path,
					strerror(-r));
		}
		if (n == 0)
			break;
		r = run_stream_write(c, c->io, (size_t)n);
		if (r < 0) {
			json_decref(c->cur);
			c->cur = NULL;
			return r;
		}
	}
	r = run_stream_end(c, &e);
	if (r == 0 && entry)
		*entry = e;
	return r;
}

int run_add_meta(struct run_ctx *c, const char *path, const struct stat *st,
		 const char *target)
{
	json_t *e = meta_entry(path, target ? "symlink" : "dir", st);

	if (target)
		json_object_set_new(e, "target", json_string(target));
	json_array_append_new(c->entries, e);
	return 0;
}

static int add_config(struct run_ctx *c)
{
	char path[PATH_MAX], apath[PATH_MAX];
	struct stat st;
	int fd, r;

	if (c->cfg->path == NULL)
		return 0;
	fd = open(c->cfg->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return run_fail(c, -errno, "cannot read the config file %s: %s",
				c->cfg->path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return run_fail(c, r, "config file %s: %s", c->cfg->path,
				strerror(-r));
	}
	snprintf(path, sizeof(path), "%s", c->cfg->path);
	snprintf(apath, sizeof(apath), "%s/%s", CONFIG_SOURCE, basename(path));
	r = run_add_fd(c, apath, "config", fd, &st, NULL);
	close(fd);
	return r;
}

static const char *const type_names[] = {"sqlite", "postgresql", "files"};

/* The history database as the daemon opens it: monitor.history.path,
 * relative to the config file's directory. NULL when unknown. */
static const char *state_db(const struct config *cfg, char *buf, size_t n)
{
	const char *p = cfg->monitor.history.path ? cfg->monitor.history.path
						   : "storekeep-history.db";
	const char *slash;

	if (p[0] == '/')
		return p;
	if (cfg->path == NULL)
		return NULL;
	slash = strrchr(cfg->path, '/');
	snprintf(buf, n, "%.*s%s%s", slash ? (int)(slash - cfg->path) : 0,
		 cfg->path, slash ? "/" : "", p);
	return buf;
}

static int run_sources(struct run_ctx *c, json_t *sources)
{
	const struct cfg_backup_job *job = c->job;
	json_t *info;
	int r = 0;

	for (size_t i = 0; i < job->nsources; i++) {
		const struct cfg_backup_source *s = &job->sources[i];

		if (s->type == CFG_SRC_SQLITE) {
			struct stat st;

			if (stat(s->path, &st) == 0)
				c->total += (uint64_t)st.st_size;
		} else if (s->type == CFG_SRC_FILES) {
			c->total += source_files_estimate(s);
		}
	}
	for (size_t i = 0; i < job->nsources && r == 0; i++) {
		const struct cfg_backup_source *s = &job->sources[i];
		char why[1024];

		info = json_object();
		json_object_set_new(info, "name", json_string(s->name));
		json_object_set_new(info, "type", json_string(type_names[s->type]));
		json_array_append_new(sources, info);
		switch (s->type) {
		case CFG_SRC_SQLITE:
			r = source_sqlite_backup(c, s, info);
			break;
		case CFG_SRC_POSTGRESQL:
			r = source_pg_backup(c, s, info);
			break;
		default:
			r = source_files_backup(c, s, info);
			break;
		}
		if (r < 0 && r != -ECANCELED) {
			snprintf(why, sizeof(why), "%s", c->err);
			run_fail(c, r, "source %s: %s", s->name, why);
		}
		if (r == 0 && i == 0)
			backup_failpoint("data");
	}
	if (r == 0) {
		char sbuf[PATH_MAX];
		const char *sp = state_db(c->cfg, sbuf, sizeof(sbuf));
		struct stat st;

		/* storekeep's own state goes with every job, copied like any
		 * SQLite source (consistent while the daemon writes it). */
		if (sp && stat(sp, &st) == 0 && S_ISREG(st.st_mode)) {
			struct cfg_backup_source state = {
				.type = CFG_SRC_SQLITE,
				.name = (char *)STATE_SOURCE,
				.path = (char *)sp,
			};

			info = json_object();
			json_object_set_new(info, "name", json_string(STATE_SOURCE));
			json_object_set_new(info, "type", json_string("sqlite"));
			json_array_append_new(sources, info);
			r = source_sqlite_backup(c, &state, info);
			if (r < 0 && r != -ECANCELED) {
				char why[1024];

				snprintf(why, sizeof(why), "%s", c->err);
				run_fail(c, r, "storekeep state %s: %s", sp, why);
			}
		}
	}
	if (r == 0) {
		info = json_object();
		json_object_set_new(info, "name", json_string(CONFIG_SOURCE));
		json_object_set_new(info, "type", json_string("config"));
		json_array_append_new(sources, info);
		r = add_config(c);
	}
	return r;
}

static int check_names(const struct cfg_backup_job *job, char *err,
		       size_t errlen)
{
	if (!bk_name_ok(job->name)) {
		snprintf(err, errlen,
			 "job name \"%s\" cannot be used as a directory name",
			 job->name);
		return -EINVAL;
	}
	for (size_t i = 0; i < job->nsources; i++) {
		const char *n = job->sources[i].name;

		if (!bk_name_ok(n) || strcmp(n, CONFIG_SOURCE) == 0 ||
		    strcmp(n, STATE_SOURCE) == 0) {
			snprintf(err, errlen,
				 "job %s: source name \"%s\" is reserved or cannot "
				 "be used as a directory name",
				 job->name, n);
			return -EINVAL;
		}
	}
	return 0;
}

/* Applies the retention of job with its lock held. verbose: also note
 * the archives kept, with the rules that keep them. */
static int prune_locked(const struct cfg_backup_job *job, const char *repo,
			const struct backup_opts *o, int verbose,
			struct backup_prune_result *res, char *err,
			size_t errlen)
{
	struct repo_list l = {0};
	int64_t *times;
	size_t *idx, n = 0;
	unsigned *why;
	int removed = 0, r;

	memset(res, 0, sizeof(*res));
	r = repo_scan(repo, job->name, &l);
	if (r < 0) {
		snprintf(err, errlen, "cannot scan %s/%s: %s", repo, job->name,
			 strerror(-r));
		return r;
	}
	times = calloc(l.n + 1, sizeof(*times));
	idx = calloc(l.n + 1, sizeof(*idx));
	why = calloc(l.n + 1, sizeof(*why));
	SK_ASSERT(times && idx && why);
	for (size_t i = 0; i < l.n; i++) {
		if (l.a[i].damaged) {
			bk_note(o, "left alone: %s cannot be read (%s)", l.a[i].id,
				l.a[i].error);
			res->kept++;
			continue;
		}
		times[n] = l.a[i].h.created_ms;
		idx[n++] = i;
	}
	retention_apply(&job->retention, times, n, why);
	for (size_t k = 0; k < n; k++) {
		const struct repo_archive *a = &l.a[idx[k]];
		char reasons[64];

		if (why[k]) {
			retention_reason_str(why[k], reasons, sizeof(reasons));
			if (verbose)
				bk_note(o, "keep   %s (%s)", a->id, reasons);
			res->kept++;
			continue;
		}
		if (unlink(a->path) < 0 && errno != ENOENT) {
			r = -errno;
			snprintf(err, errlen, "cannot remove %s: %s", a->path,
				 strerror(errno));
			break;
		}
		bk_note(o, "remove %s", a->id);
		res->removed++;
		if (removed++ == 0)
			backup_failpoint("prune");
	}
	if (removed) {
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s/%s", repo, job->name);
		(void)repo_fsync_dir(dir);
	}
	free(times);
	free(idx);
	free(why);
	repo_list_fini(&l);
	return r;
}

int backup_prune(const struct config *cfg, const struct cfg_backup_job *job,
		 const struct backup_opts *o, struct backup_prune_result *res,
		 char *err, size_t errlen)
{
	const char *repo = backup_job_repository(cfg, job);
	char dir[PATH_MAX];
	int lock, r;

	r = check_names(job, err, errlen);
	if (r < 0)
		return r;
	snprintf(dir, sizeof(dir), "%s/%s", repo, job->name);
	if (access(dir, F_OK) < 0) {
		memset(res, 0, sizeof(*res));
		return 0; /* nothing was ever written */
	}
	lock = repo_lock(dir);
	if (lock < 0) {
		snprintf(err, errlen,
			 lock == -EBUSY ? "job %s is running (%s/.lock is held); try "
					  "again when it is done"
					: "job %s: cannot lock %s/.lock",
			 job->name, dir);
		return lock;
	}
	r = prune_locked(job, repo, o, 1, res, err, errlen);
	repo_unlock(lock);
	return r;
}

static size_t count_archives(const char *repo, const char *job)
{
	struct repo_list l = {0};
	size_t n;

	(void)repo_scan(repo, job, &l);
	n = l.n;
	repo_list_fini(&l);
	return n;
}

static void make_id(const struct cfg_backup_job *job, int64_t ms, char *id,
		    size_t idlen)
{
	time_t t = (time_t)(ms / 1000);
	char stamp[32];
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(id, idlen, "%s-%s-%04x", job->name, stamp,
		 (unsigned)(randombytes_random() & 0xffff));
}

static json_t *manifest_new(const struct run_ctx *c,
			    const struct archive_header *h, json_t *sources,
			    uint64_t duration_ms)
{
	json_t *m = json_object();
	char host[256], when[32];

	if (gethostname(host, sizeof(host)) < 0)
		strcpy(host, "?");
	host[sizeof(host) - 1] = '\0';
	bk_fmt_time(h->created_ms, when);
	json_object_set_new(m, "format", json_integer(ARCHIVE_VERSION));
	json_object_set_new(m, "id", json_string(h->id));
	json_object_set_new(m, "job", json_string(h->job));
	json_object_set_new(m, "created_ms", json_integer(h->created_ms));
	json_object_set_new(m, "created", json_string(when));
	json_object_set_new(m, "host", json_string(host));
	if (c->cfg->path)
		json_object_set_new(m, "config", json_string(c->cfg->path));
	json_object_set_new(m, "bytes_in", json_integer((json_int_t)c->bytes_in));
	json_object_set_new(m, "duration_ms", json_integer((json_int_t)duration_ms));
	json_object_set(m, "sources", sources);
	json_object_set(m, "entries", c->entries);
	return m;
}

int backup_run(const struct config *cfg, const struct cfg_backup_job *job,
	       const struct backup_key *key, const struct backup_opts *o,
	       struct backup_run_result *res, char *err, size_t errlen)
{
	const char *repo = backup_job_repository(cfg, job);
	struct run_ctx c;
	struct archive_header h;
	char dir[PATH_MAX], tmp[PATH_MAX], final[PATH_MAX];
	json_t *sources = NULL, *man = NULL;
	char *text = NULL;
	uint64_t t0 = clock_mono_ms();
	int fd = -1, lock = -1, r;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	memset(&h, 0, sizeof(h));
	c.cfg = cfg;
	c.job = job;
	c.o = o;
	c.err = err;
	c.errlen = errlen;
	r = check_names(job, err, errlen);
	if (r < 0)
		return r;
	if (snprintf(dir, sizeof(dir), "%s/%s", repo, job->name) >=
	    (int)sizeof(dir) - 128) {
		snprintf(err, errlen, "repository path %s is too long", repo);
		return -ENAMETOOLONG;
	}
	r = repo_mkdirs(dir, 0700);
	if (r < 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-r));
		return r;
	}
	lock = repo_lock(dir);
	if (lock < 0) {
		r = lock;
		snprintf(err, errlen,
			 r == -EBUSY ? "job %s is already running (%s/.lock is held "
				       "by another run)"
				     : "job %s: cannot lock %s/.lock",
			 job->name, dir);
		return r;
	}
	repo_clean_stale(dir);

	c.have_key_st = stat(cfg->backup.key_file, &c.key_st) == 0;
	c.have_repo_st = stat(repo, &c.repo_st) == 0;
	c.io = malloc(IOBUF);
	c.entries = json_array();
	sources = json_array();
	SK_ASSERT(c.io != NULL);

	h.created_ms = bk_now_ms(o);
	make_id(job, h.created_ms, h.id, sizeof(h.id));
	snprintf(h.job, sizeof(h.job), "%s", job->name);
	/* dir left room for these (checked above). */
	SK_ASSERT(bk_path(tmp, sizeof(tmp), "%s/.%s%s.tmp", dir, h.id,
			  BK_SUFFIX) == 0);
	SK_ASSERT(bk_path(final, sizeof(final), "%s/%s%s", dir, h.id,
			  BK_SUFFIX) == 0);
	SK_ASSERT(bk_path(c.workdir, sizeof(c.workdir), "%s/.%s.work", dir,
			  h.id) == 0);
	if (mkdir(c.workdir, 0700) < 0) {
		r = run_fail(&c, -errno, "cannot create %s: %s", c.workdir,
			     strerror(errno));
		goto fail;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = run_fail(&c, -errno, "cannot create %s: %s", tmp,
			     strerror(errno));
		goto fail;
	}
	r = archive_writer_new(fd, key, &h, &c.w);
	if (r < 0) {
		r = run_fail(&c, r, "cannot write %s: %s", tmp, strerror(-r));
		goto fail;
	}
	bk_note(o, "archive %s: writing", h.id);
	r = run_sources(&c, sources);
	if (r < 0)
		goto fail;
	backup_failpoint("manifest");
	man = manifest_new(&c, &h, sources, clock_mono_ms() - t0);
	text = json_dumps(man, JSON_COMPACT);
	SK_ASSERT(text != NULL);
	r = archive_writer_finish(c.w, text, strlen(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		r = run_fail(&c, r, "cannot write %s: %s", tmp, strerror(-r));
		goto fail;
	}
	res->bytes_out = archive_writer_offset(c.w);
	close(fd);
	fd = -1;
	backup_failpoint("synced");
	if (rename(tmp, final) < 0) {
		r = run_fail(&c, -errno, "cannot rename %s: %s", tmp,
			     strerror(errno));
		goto fail;
	}
	backup_failpoint("renamed");
	r = repo_fsync_dir(dir);
	if (r < 0) {
		r = run_fail(&c, r, "cannot fsync %s: %s", dir, strerror(-r));
		goto fail;
	}
	repo_rm_tree(c.workdir);
	progress(&c, 1);

	snprintf(res->id, sizeof(res->id), "%s", h.id);
	snprintf(res->path, sizeof(res->path), "%s", final);
	res->created_ms = h.created_ms;
	res->bytes_in = c.bytes_in;
	res->files = json_array_size(c.entries);
	res->duration_ms = clock_mono_ms() - t0;
	if (!o || !o->no_prune) {
		struct backup_prune_result pr;
		char why[512];

		r = prune_locked(job, repo, o, 0, &pr, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "archive %s written, but prune failed: %s",
				 h.id, why);
			goto out;
		}
		res->pruned = pr.removed;
	}
	r = 0;
out:
	res->archives = count_archives(repo, job->name);
	archive_writer_free(c.w);
	free(text);
	json_decref(man);
	json_decref(sources);
	json_decref(c.entries);
	free(c.io);
	repo_unlock(lock);
	return r;
fail:
	if (c.cur) {
		json_decref(c.cur);
		c.cur = NULL;
	}
	archive_writer_free(c.w);
	c.w = NULL;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	repo_rm_tree(c.workdir);
	free(text);
	json_decref(man);
	json_decref(sources);
	json_decref(c.entries);
	free(c.io);
	repo_unlock(lock);
	return r;
}
