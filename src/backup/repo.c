/*
 * repo.c - repository directories.
 *
 *   <repository>/<job>/<id>.skb       complete archives, and nothing else
 *                                     under a name ending in .skb
 *   <repository>/<job>/.<id>.skb.tmp  an archive being written
 *   <repository>/<job>/.<id>.work/    scratch space of a run
 *   <repository>/<job>/.lock          flock'd by a run or prune
 *   <repository>/<job>/.state.json    results of the latest verify
 *
 * Everything that changes the repository goes through a temporary name,
 * fsync of the file, rename, fsync of the directory; deletions are
 * followed by an fsync of the directory too. Names starting with '.' are
 * never archives, so a half-written file can never be listed as one.
 *
 * There is no catalog: repo_scan() reads the plaintext header of every
 * archive, which is enough to list, order and prune them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup_int.h"

int repo_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int repo_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	close(fd);
	return r;
}

int repo_mkdirs(const char *dir, mode_t mode)
{
	char p[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, dir, len + 1);
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		{
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) == 0) {
				char *slash = strrchr(p, '/');

				/* Make the new entry durable in its parent. */
				if (slash == p)
					(void)repo_fsync_dir("/");
				else if (slash) {
					*slash = '\0';
					(void)repo_fsync_dir(p);
					*slash = '/';
				}
			} else if (errno != EEXIST) {
				return -errno;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

int repo_lock(const char *jobdir)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", jobdir, BK_LOCK_FILE);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		close(fd);
		return e == EWOULDBLOCK ? -EBUSY : -e;
	}
	return fd;
}

void repo_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void repo_rm_tree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

void repo_clean_stale(const char *jobdir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(jobdir);
	int removed = 0;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (!ends_with(de->d_name, ".tmp") && !ends_with(de->d_name, ".work"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", jobdir, de->d_name);
		repo_rm_tree(path);
		removed = 1;
	}
	closedir(d);
	if (removed)
		(void)repo_fsync_dir(jobdir);
}

static void add_archive(struct repo_list *l, const char *dir, const char *job,
			const char *file)
{
	struct repo_archive *a;
	char path[PATH_MAX], err[256];
	size_t idlen = strlen(file) - strlen(BK_SUFFIX);
	int r;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
		return;
	l->a = realloc(l->a, (l->n + 1) * sizeof(*l->a));
	SK_ASSERT(l->a != NULL);
	a = &l->a[l->n++];
	memset(a, 0, sizeof(*a));
	a->path = strdup(path);
	a->id = strndup(file, idlen);
	a->job = strdup(job);
	SK_ASSERT(a->path && a->id && a->job);
	r = archive_read_header(path, &a->h, err, sizeof(err));
	if (r < 0) {
		a->damaged = 1;
		a->error = strdup(err);
	} else if (strcmp(a->h.id, a->id) != 0 || strcmp(a->h.job, job) != 0) {
		a->damaged = 1;
		snprintf(err, sizeof(err),
			 "the file name does not match its header (archive %s of "
			 "job %s): was it renamed or moved?",
			 a->h.id, a->h.job);
		a->error = strdup(err);
	}
}

static int scan_job(const char *repo, const char *job, struct repo_list *l)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (snprintf(dir, sizeof(dir), "%s/%s", repo, job) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !ends_with(de->d_name, BK_SUFFIX) ||
		    strlen(de->d_name) == strlen(BK_SUFFIX))
			continue;
		add_archive(l, dir, job, de->d_name);
	}
	closedir(d);
	return 0;
}

static int by_job_time(const void *a, const void *b)
{
	const struct repo_archive *x = a, *y = b;
	int c = strcmp(x->job, y->job);

	if (c)
		return c;
	if (x->h.created_ms != y->h.created_ms)
		return x->h.created_ms < y->h.created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

int repo_scan(const char *repo, const char *job, struct repo_list *l)
{
	struct dirent *de;
	size_t first = l->n;
	DIR *d;
	int r = 0;

	if (job) {
		r = scan_job(repo, job, l);
	} else {
		d = opendir(repo);
		if (d == NULL)
			return errno == ENOENT ? 0 : -errno;
		while ((de = readdir(d)) != NULL && r == 0) {
			char path[PATH_MAX];
			struct stat st;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", repo, de->d_name);
			if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
				continue;
			r = scan_job(repo, de->d_name, l);
		}
		closedir(d);
	}
	if (l->n > first)
		qsort(l->a + first, l->n - first, sizeof(*l->a), by_job_time);
	return r;
}

void repo_list_fini(struct repo_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->a[i].path);
		free(l->a[i].id);
		free(l->a[i].job);
		free(l->a[i].error);
	}
	free(l->a);
	l->a = NULL;
	l->n = 0;
}

size_t repo_all(const struct config *cfg, const char ***out)
{
	const struct cfg_backup *b = &cfg->backup;
	const char **v = calloc(b->njobs + 1, sizeof(*v));
	size_t n = 0;

	SK_ASSERT(v != NULL);
	if (b->repository)
		v[n++] = b->repository;
	for (size_t i = 0; i < b->njobs; i++) {
		const char *r = backup_job_repository(cfg, &b->jobs[i]);
		size_t k;

		for (k = 0; k < n; k++)
			if (strcmp(v[k], r) == 0)
				break;
		if (k == n)
			v[n++] = r;
	}
	*out = v;
	return n;
}

json_t *repo_state_load(const char *jobdir)
{
	char path[PATH_MAX];
	json_error_t e;
	json_t *st;

	snprintf(path, sizeof(path), "%s/%s", jobdir, BK_STATE_FILE);
	st = json_load_file(path, 0, &e);
	if (st && !json_is_object(st)) {
		json_decref(st);
		st = NULL;
	}
	return st;
}

int repo_state_save(const char *jobdir, json_t *st)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	char *text;
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", jobdir, BK_STATE_FILE);
	snprintf(tmp, sizeof(tmp), "%s/.state-%ld-%lx.tmp", jobdir,
		 (long)getpid(), (unsigned long)randombytes_random());
	text = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text == NULL)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = repo_write_all(fd, text, strlen(text));
	if (r == 0)
		r = repo_write_all(fd, "\n", 1);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	else
		(void)repo_fsync_dir(jobdir);
out:
	free(text);
	return r;
}

int backup_repo_init(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->backup.njobs; i++) {
		const struct cfg_backup_job *j = &cfg->backup.jobs[i];
		char dir[PATH_MAX];
		int r;

		if (!bk_name_ok(j->name)) {
			snprintf(err, errlen,
				 "job name \"%s\" cannot be used as a directory name",
				 j->name);
			return -EINVAL;
		}
		snprintf(dir, sizeof(dir), "%s/%s", backup_job_repository(cfg, j),
			 j->name);
		r = repo_mkdirs(dir, 0700);
		if (r == 0 && access(dir, W_OK | X_OK) < 0)
			r = -errno;
		if (r < 0) {
			snprintf(err, errlen, "repository %s: %s", dir, strerror(-r));
			return r;
		}
	}
	return 0;
}
