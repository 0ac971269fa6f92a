/*
 * restore.c - list, verify and restore archives.
 *
 * All three read archives the same way: the header (checksum, format
 * version, key id), the trailer, the manifest (decrypted, then checked
 * against the archive's layout: the file streams must tile the space
 * between header and manifest exactly, so no byte escapes verification),
 * then each stream, whose content must match the size and BLAKE2b hash in
 * the manifest. Every message names the archive, and the file when the
 * damage lies in a file's data.
 *
 * Restore writes each file under a temporary name next to its target,
 * checks it, then renames it into place: a damaged archive never leaves a
 * half-written file where a good one was, even with --force. Symlinks are
 * created after every file and directory (so none is followed while
 * restoring), directory modes and mtimes last (filling a directory changes
 * its mtime). Owners are restored when running as root.
 *
 * Verify restores databases into a scratch directory ($TMPDIR, default
 * /var/tmp) and checks them (source_sqlite_check, source_pg_check); its
 * results go to the job directory's .state.json for the RPO.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup_int.h"

struct op {
	const struct config *cfg;
	const struct backup_key *key;
	const struct backup_opts *o;
	uint64_t done;
	uint64_t total;
	uint64_t reported;
};

struct sink {
	struct op *op;
	int fd; /* -1: the content is only checked */
};

static int sink_cb(void *ud, const void *p, size_t n)
{
	struct sink *s = ud;
	struct op *op = s->op;

	if (op->o && op->o->cancel && atomic_load(op->o->cancel))
		return -ECANCELED;
	if (s->fd >= 0) {
		int r = repo_write_all(s->fd, p, n);

		if (r < 0)
			return r;
	}
	op->done += n;
	if (op->o && op->o->progress && op->done - op->reported >= 256 * 1024) {
		op->reported = op->done;
		op->o->progress(op->o->progress_ud, op->done, op->total);
	}
	return 0;
}

static void take(struct repo_list *from, size_t i, struct repo_list *to)
{
	to->a = realloc(to->a, (to->n + 1) * sizeof(*to->a));
	SK_ASSERT(to->a != NULL);
	to->a[to->n++] = from->a[i];
	memset(&from->a[i], 0, sizeof(from->a[i]));
}

/* The archives what names: NULL every one, an id, or a job's newest. */
static int resolve(const struct config *cfg, const char *what, const char *job,
		   struct repo_list *out, char *err, size_t errlen)
{
	struct repo_list all = {0};
	const char **repos;
	size_t nr = repo_all(cfg, &repos);
	ssize_t newest = -1;
	int r = 0;

	for (size_t i = 0; i < nr && r == 0; i++) {
		r = repo_scan(repos[i], job, &all);
		if (r < 0)
			snprintf(err, errlen, "cannot read repository %s: %s",
				 repos[i], strerror(-r));
	}
	free(repos);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < all.n; i++) {
		if (what == NULL) {
			take(&all, i, out);
			continue;
		}
		if (strcmp(all.a[i].id, what) == 0) {
			take(&all, i, out);
			goto out;
		}
		if (strcmp(all.a[i].job, what) == 0 && !all.a[i].damaged)
			newest = (ssize_t)i; /* sorted oldest first per job */
	}
	if (what && newest >= 0)
		take(&all, (size_t)newest, out);
	if (what && out->n == 0) {
		snprintf(err, errlen,
			 "no archive or job named \"%s\" (storekeep backup list "
			 "shows them)",
			 what);
		r = -ENOENT;
	}
out:
	repo_list_fini(&all);
	return r;
}

/* A relative path without empty, "." or ".." components. */
static int path_ok(const char *p)
{
	const char *s = p;

	if (p[0] == '\0' || p[0] == '/' || strlen(p) > PATH_MAX - 64)
		return 0;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);

		if (n == 0 || (n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
		if (e && *s == '\0')
			return 0;
	}
	return 1;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static int64_t jint(json_t *o, const char *k)
{
	return (int64_t)json_integer_value(json_object_get(o, k));
}

/*
 * Opens a, reads its manifest and checks it against the archive's
 * layout. On success *rd and *man are the caller's.
 */
static int open_archive(struct op *op, const struct repo_archive *a,
			struct archive_reader **rd, json_t **man, char *err,
			size_t errlen)
{
	const struct archive_header *h;
	struct archive_reader *r = NULL;
	json_t *m = NULL, *entries, *e;
	json_error_t je;
	char why[512], *text = NULL;
	uint64_t pos;
	size_t len, i;
	int64_t want_stream = 0;
	int rc;

	if (a->damaged) {
		snprintf(err, errlen, "archive %s: %s", a->id, a->error);
		return -EBADMSG;
	}
	rc = archive_reader_open(a->path, op->key, &r, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "archive %s: %s", a->id, why);
		return rc;
	}
	rc = archive_reader_manifest(r, &text, &len, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "archive %s: %s", a->id, why);
		goto fail;
	}
	m = json_loadb(text, len, 0, &je);
	free(text);
	h = archive_reader_header(r);
	entries = m ? json_object_get(m, "entries") : NULL;
	if (m == NULL || !json_is_array(entries) || jint(m, "format") != 1 ||
	    strcmp(jstr(m, "id"), h->id) != 0 ||
	    strcmp(jstr(m, "job"), h->job) != 0) {
		snprintf(err, errlen,
			 "archive %s: the manifest does not belong to this archive "
			 "or cannot be read",
			 a->id);
		rc = -EBADMSG;
		goto fail;
	}
	pos = archive_reader_data_start(r);
	json_array_foreach(entries, i, e) {
		const char *p = jstr(e, "path");

		if (!json_is_object(e) || !path_ok(p)) {
			snprintf(err, errlen,
				 "archive %s: manifest entry %zu has a bad path", a->id,
				 i);
			rc = -EBADMSG;
			goto fail;
		}
		if (json_object_get(e, "stream") == NULL)
			continue;
		if (jint(e, "stream") != want_stream++ ||
		    (uint64_t)jint(e, "offset") != pos) {
			snprintf(err, errlen,
				 "archive %s: file %s: the manifest does not match the "
				 "archive's layout",
				 a->id, p);
			rc = -EBADMSG;
			goto fail;
		}
		op->total += (uint64_t)jint(e, "size");
		pos += (uint64_t)jint(e, "stored");
	}
	if (pos != archive_reader_manifest_offset(r)) {
		snprintf(err, errlen,
			 "archive %s: %llu bytes before the manifest belong to no "
			 "file",
			 a->id,
			 (unsigned long long)(archive_reader_manifest_offset(r) - pos));
		rc = -EBADMSG;
		goto fail;
	}
	*rd = r;
	*man = m;
	return 0;
fail:
	json_decref(m);
	archive_reader_free(r);
	return rc;
}

/* Reads entry e's stream into fd (-1: discard) and checks it. */
static int extract(struct op *op, const struct repo_archive *a,
		   struct archive_reader *r, json_t *e, int fd, char *err,
		   size_t errlen)
{
	unsigned char hash[BK_HASH_BYTES];
	char hex[2 * BK_HASH_BYTES + 1], why[512];
	struct sink s = {op, fd};
	uint64_t size;
	int rc;

	rc = archive_reader_stream(r, (uint32_t)jint(e, "stream"),
				   (uint64_t)jint(e, "offset"),
				   (uint64_t)jint(e, "stored"), sink_cb, &s, hash,
				   &size, why, sizeof(why));
	if (rc == -ECANCELED) {
		snprintf(err, errlen, "cancelled");
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "archive %s: file %s: %s", a->id,
			 jstr(e, "path"), why);
		return rc;
	}
	bk_hex(hash, sizeof(hash), hex);
	if (size != (uint64_t)jint(e, "size") ||
	    strcmp(hex, jstr(e, "blake2b")) != 0) {
		snprintf(err, errlen,
			 "archive %s: file %s: its content does not match the size "
			 "and BLAKE2b hash in the manifest",
			 a->id, jstr(e, "path"));
		return -EBADMSG;
	}
	return 0;
}

static void jobdir_of(const struct repo_archive *a, char *out, size_t outlen)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", a->path);
	snprintf(out, outlen, "%s", dirname(tmp));
}

/* Records a verify result in the job directory (best effort). */
static void record(const struct repo_archive *a, int64_t now, int ok,
		   const char *error)
{
	char dir[PATH_MAX];
	json_t *st, *last, *ver;

	jobdir_of(a, dir, sizeof(dir));
	st = repo_state_load(dir);
	if (st == NULL)
		st = json_object();
	last = json_object();
	json_object_set_new(last, "archive", json_string(a->id));
	json_object_set_new(last, "archive_created_ms",
			    json_integer(a->h.created_ms));
	json_object_set_new(last, "time_ms", json_integer(now));
	json_object_set_new(last, "ok", json_boolean(ok));
	if (!ok)
		json_object_set_new(last, "error", json_string(error));
	json_object_set_new(st, "last_verify", last);
	ver = json_object_get(st, "verified");
	if (ok && !a->damaged &&
	    (ver == NULL || jint(ver, "archive_created_ms") <= a->h.created_ms)) {
		ver = json_object();
		json_object_set_new(ver, "archive", json_string(a->id));
		json_object_set_new(ver, "archive_created_ms",
				    json_integer(a->h.created_ms));
		json_object_set_new(ver, "time_ms", json_integer(now));
		json_object_set_new(st, "verified", ver);
	}
	(void)repo_state_save(dir, st);
	json_decref(st);
}

/* The conninfo of the postgresql source named by entry path p's first
 * component in job; NULL when there is none. */
static const char *pg_conninfo(const struct cfg_backup_job *job, const char *p)
{
	size_t n = strcspn(p, "/");

	for (size_t i = 0; job && i < job->nsources; i++) {
		const struct cfg_backup_source *s = &job->sources[i];

		if (s->type == CFG_SRC_POSTGRESQL && strlen(s->name) == n &&
		    strncmp(s->name, p, n) == 0)
			return s->conninfo;
	}
	return NULL;
}

static int verify_one(struct op *op, const struct repo_archive *a,
		      const char *scratch, char *err, size_t errlen)
{
	const struct cfg_backup_job *job;
	struct archive_reader *r = NULL;
	json_t *man = NULL, *entries, *e;
	char file[PATH_MAX], why[1024];
	size_t i, files = 0, dbs = 0;
	int rc;

	rc = open_archive(op, a, &r, &man, err, errlen);
	if (rc < 0)
		return rc;
	job = bk_find_job(op->cfg, archive_reader_header(r)->job);
	entries = json_object_get(man, "entries");
	json_array_foreach(entries, i, e) {
		const char *kind = jstr(e, "kind"), *p = jstr(e, "path");
		int db = strcmp(kind, "sqlite") == 0 || strcmp(kind, "pgdump") == 0;
		int fd = -1;

		if (json_object_get(e, "stream") == NULL)
			continue;
		files++;
		if (db) {
			if (bk_path(file, sizeof(file), "%s/%zu.%s", scratch, i,
				    kind) < 0)
				fd = -1, errno = ENAMETOOLONG;
			else
				fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
					  0600);
			if (fd < 0) {
				rc = -errno;
				bk_msg(err, errlen, "cannot create %s: %s", file,
				       strerror(errno));
				goto out;
			}
		}
		rc = extract(op, a, r, e, fd, err, errlen);
		if (fd >= 0)
			close(fd);
		if (rc < 0)
			goto out;
		if (!db)
			continue;
		dbs++;
		if (strcmp(kind, "sqlite") == 0) {
			/* The job's assertions are about its own databases,
			 * not storekeep's state. */
			int own = strncmp(p, "_storekeep_state/", 17) == 0;

			rc = source_sqlite_check(file, json_object_get(e, "tables"),
						 job && !own ? &job->verify : NULL,
						 why, sizeof(why));
		} else {
			const char *ci = pg_conninfo(job, p);

			if (ci == NULL)
				bk_note(op->o,
					"  %s: no postgresql source of that name in "
					"the config: only the dump's table of contents "
					"is checked",
					p);
			rc = source_pg_check(ci, file, json_object_get(e, "tables"),
					     job ? &job->verify : NULL, why,
					     sizeof(why));
		}
		unlink(file);
		if (rc < 0) {
			bk_msg(err, errlen, "archive %s: database %s: %s", a->id, p,
			       why);
			goto out;
		}
		bk_note(op->o, "  %s: restored and checked (%zu tables match the "
			       "manifest)",
			p, json_object_size(json_object_get(e, "tables")));
	}
	bk_note(op->o, "ok     %s: %zu files, %zu databases checked", a->id,
		files, dbs);
out:
	json_decref(man);
	archive_reader_free(r);
	return rc;
}

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t && t[0] ? t : "/var/tmp";
}

int backup_verify(const struct config *cfg, const struct backup_key *key,
		  const char *what, const struct backup_opts *o,
		  struct backup_verify_result *res, char *err, size_t errlen)
{
	struct op op = {cfg, key, o, 0, 0, 0};
	struct repo_list l = {0};
	char scratch[PATH_MAX], why[1024];
	int r, failed = 0;

	memset(res, 0, sizeof(*res));
	r = resolve(cfg, what, NULL, &l, err, errlen);
	if (r < 0)
		return r;
	if (l.n == 0) {
		snprintf(err, errlen, "there are no archives to verify");
		return -ENOENT;
	}
	snprintf(scratch, sizeof(scratch), "%s/storekeep-verify-XXXXXX", tmpdir());
	if (mkdtemp(scratch) == NULL) {
		r = -errno;
		snprintf(err, errlen, "cannot create a scratch directory in %s: %s",
			 tmpdir(), strerror(errno));
		repo_list_fini(&l);
		return r;
	}
	for (size_t i = 0; i < l.n; i++) {
		r = verify_one(&op, &l.a[i], scratch, why, sizeof(why));
		if (r == -ECANCELED) {
			snprintf(err, errlen, "cancelled");
			break;
		}
		res->archives++;
		record(&l.a[i], bk_now_ms(o), r == 0, why);
		if (r < 0) {
			res->failed++;
			bk_note(o, "FAILED %s", why);
			if (!failed++)
				snprintf(err, errlen, "%s", why);
		}
	}
	if (o && o->progress)
		o->progress(o->progress_ud, op.done, op.total);
	repo_rm_tree(scratch);
	repo_list_fini(&l);
	if (r == -ECANCELED)
		return r;
	return failed ? -EBADMSG : 0;
}

/* --- restore ------------------------------------------------------------------ */

static int dir_empty(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int empty = 1;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

static int mkparents(const char *full)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", full);
	return repo_mkdirs(dirname(tmp), 0700);
}

static void set_times(int dirfd, const char *path, json_t *e, int flags)
{
	struct timespec ts[2];

	ts[0].tv_sec = ts[1].tv_sec = (time_t)jint(e, "mtime");
	ts[0].tv_nsec = ts[1].tv_nsec = (long)jint(e, "mtime_nsec");
	utimensat(dirfd, path, ts, flags);
}

static int restore_file(struct op *op, const struct repo_archive *a,
			struct archive_reader *r, json_t *e, const char *full,
			int root, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *base;
	struct timespec ts[2];
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", full);
	base = strrchr(dir, '/');
	SK_ASSERT(base != NULL);
	*base++ = '\0';
	if (bk_path(tmp, sizeof(tmp), "%s/.%.100s.sk-restore-XXXXXX", dir,
		    base) < 0) {
		bk_msg(err, errlen, "path too long: %s", full);
		return -ENAMETOOLONG;
	}
	rc = mkparents(full);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create the directory of %s: %s", full,
			 strerror(-rc));
		return rc;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return rc;
	}
	rc = extract(op, a, r, e, fd, err, errlen);
	if (rc < 0)
		goto fail;
	if (fchmod(fd, (mode_t)jint(e, "mode") & 07777) < 0 ||
	    (root && fchown(fd, (uid_t)jint(e, "uid"), (gid_t)jint(e, "gid")) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "cannot set the owner or mode of %s: %s", full,
			 strerror(errno));
		goto fail;
	}
	/* chown may clear set-id bits: set the mode again. */
	if (root)
		(void)fchmod(fd, (mode_t)jint(e, "mode") & 07777);
	ts[0].tv_sec = ts[1].tv_sec = (time_t)jint(e, "mtime");
	ts[0].tv_nsec = ts[1].tv_nsec = (long)jint(e, "mtime_nsec");
	(void)futimens(fd, ts);
	close(fd);
	fd = -1;
	if (rename(tmp, full) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot put %s in place: %s", full,
			 strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

static int restore_symlink(json_t *e, const char *full, int root, char *err,
			   size_t errlen)
{
	struct stat st;
	int rc;

	rc = mkparents(full);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create the directory of %s: %s", full,
			 strerror(-rc));
		return rc;
	}
	if (lstat(full, &st) == 0 && !S_ISDIR(st.st_mode))
		unlink(full);
	if (symlink(jstr(e, "target"), full) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot create the symlink %s: %s", full,
			 strerror(errno));
		return rc;
	}
	if (root)
		(void)lchown(full, (uid_t)jint(e, "uid"), (gid_t)jint(e, "gid"));
	set_times(AT_FDCWD, full, e, AT_SYMLINK_NOFOLLOW);
	return 0;
}

int backup_restore(const struct config *cfg, const struct backup_key *key,
		   const char *what, const char *to, int force,
		   const struct backup_opts *o, char *err, size_t errlen)
{
	struct op op = {cfg, key, o, 0, 0, 0};
	struct repo_list l = {0};
	struct archive_reader *r = NULL;
	json_t *man = NULL, *entries, *e;
	const struct repo_archive *a;
	char full[PATH_MAX];
	struct stat st;
	int root = geteuid() == 0, rc, dfd;
	size_t i, n = 0;

	rc = resolve(cfg, what, NULL, &l, err, errlen);
	if (rc < 0)
		return rc;
	a = &l.a[0];
	if (lstat(to, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a directory", to);
			rc = -ENOTDIR;
			goto out;
		}
		if (!force && !dir_empty(to)) {
			snprintf(err, errlen,
				 "%s exists and is not empty: restore never "
				 "overwrites anything unless given --force",
				 to);
			rc = -EEXIST;
			goto out;
		}
	} else {
		rc = repo_mkdirs(to, 0700);
		if (rc < 0) {
			snprintf(err, errlen, "cannot create %s: %s", to,
				 strerror(-rc));
			goto out;
		}
	}
	rc = open_archive(&op, a, &r, &man, err, errlen);
	if (rc < 0)
		goto out;
	bk_note(o, "restoring %s (made %s) into %s", a->id,
		jstr(man, "created"), to);
	entries = json_object_get(man, "entries");
	/* Directories and files, in archive order (parents first). */
	json_array_foreach(entries, i, e) {
		const char *kind = jstr(e, "kind");

		snprintf(full, sizeof(full), "%s/%s", to, jstr(e, "path"));
		if (strcmp(kind, "dir") == 0) {
			rc = repo_mkdirs(full, 0700);
			if (rc == 0 && (lstat(full, &st) < 0 || !S_ISDIR(st.st_mode)))
				rc = -ENOTDIR;
			if (rc < 0) {
				snprintf(err, errlen, "cannot create directory %s: %s",
					 full, strerror(-rc));
				goto out;
			}
		} else if (json_object_get(e, "stream")) {
			rc = restore_file(&op, a, r, e, full, root, err, errlen);
			if (rc < 0)
				goto out;
			n++;
			if (strcmp(kind, "pgdump") == 0)
				bk_note(o,
					"  PostgreSQL dump of database %s: load it with "
					"pg_restore --no-owner --dbname=NEWDB %s",
					jstr(e, "database"), full);
			else if (strcmp(kind, "sqlite") == 0)
				bk_note(o,
					"  SQLite database: %s (stop the shop before "
					"copying it over the live one)",
					full);
		}
	}
	json_array_foreach(entries, i, e) {
		if (strcmp(jstr(e, "kind"), "symlink") != 0)
			continue;
		snprintf(full, sizeof(full), "%s/%s", to, jstr(e, "path"));
		rc = restore_symlink(e, full, root, err, errlen);
		if (rc < 0)
			goto out;
	}
	/* Directory metadata last, children before parents. */
	for (i = json_array_size(entries); i-- > 0;) {
		e = json_array_get(entries, i);
		if (strcmp(jstr(e, "kind"), "dir") != 0)
			continue;
		snprintf(full, sizeof(full), "%s/%s", to, jstr(e, "path"));
		if (root)
			(void)lchown(full, (uid_t)jint(e, "uid"), (gid_t)jint(e, "gid"));
		(void)chmod(full, (mode_t)jint(e, "mode") & 07777);
		set_times(AT_FDCWD, full, e, AT_SYMLINK_NOFOLLOW);
	}
	dfd = open(to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)syncfs(dfd);
		close(dfd);
	}
	if (o && o->progress)
		o->progress(o->progress_ud, op.done, op.total);
	bk_note(o, "restored %zu files of %s into %s", n, a->id, to);
	rc = 0;
out:
	json_decref(man);
	archive_reader_free(r);
	repo_list_fini(&l);
	return rc;
}

/* --- list -------------------------------------------------------------------- */

int backup_list(const struct config *cfg, const struct backup_key *key,
		const char *job, json_t **out, char *err, size_t errlen)
{
	struct op op = {cfg, key, NULL, 0, 0, 0};
	struct repo_list l = {0};
	json_t *arr = json_array();
	int r;

	r = resolve(cfg, NULL, job, &l, err, errlen);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct repo_archive *a = &l.a[i];
		json_t *o = json_object(), *man = NULL, *st, *lv;
		struct archive_reader *rd = NULL;
		char when[32], why[1024], dir[PATH_MAX];
		struct stat sb;

		json_object_set_new(o, "id", json_string(a->id));
		json_object_set_new(o, "job", json_string(a->job));
		json_object_set_new(o, "path", json_string(a->path));
		if (stat(a->path, &sb) == 0)
			json_object_set_new(o, "bytes_out",
					    json_integer((json_int_t)sb.st_size));
		if (!a->damaged) {
			bk_fmt_time(a->h.created_ms, when);
			json_object_set_new(o, "created_ms",
					    json_integer(a->h.created_ms));
			json_object_set_new(o, "created", json_string(when));
		}
		if (a->damaged || key == NULL) {
			if (a->damaged)
				json_object_set_new(o, "error", json_string(a->error));
		} else if (open_archive(&op, a, &rd, &man, why, sizeof(why)) < 0) {
			json_object_set_new(o, "error", json_string(why));
		} else {
			json_t *srcs = json_array(), *s;
			size_t k;

			json_object_set(o, "bytes_in", json_object_get(man, "bytes_in"));
			json_object_set_new(o, "files",
					    json_integer((json_int_t)json_array_size(
						    json_object_get(man, "entries"))));
			json_array_foreach(json_object_get(man, "sources"), k, s) {
				json_t *c = json_object();

				json_object_set(c, "name", json_object_get(s, "name"));
				json_object_set(c, "type", json_object_get(s, "type"));
				if (json_object_get(s, "tables"))
					json_object_set(c, "tables",
							json_object_get(s, "tables"));
				json_array_append_new(srcs, c);
			}
			json_object_set_new(o, "sources", srcs);
			json_decref(man);
			archive_reader_free(rd);
		}
		jobdir_of(a, dir, sizeof(dir));
		st = repo_state_load(dir);
		lv = st ? json_object_get(st, "last_verify") : NULL;
		if (lv && strcmp(jstr(lv, "archive"), a->id) == 0) {
			json_object_set(o, "verified_ms", json_object_get(lv, "time_ms"));
			json_object_set(o, "verify_ok", json_object_get(lv, "ok"));
		}
		json_decref(st);
		json_array_append_new(arr, o);
	}
	repo_list_fini(&l);
	*out = arr;
	return 0;
}
