/*
 * source_files.c - file trees.
 *
 * Each configured path P (absolute) lands in the archive under
 * "<source>/P" - the tree keeps its place, so several trees of one source
 * cannot collide. Walked depth first in name order (archives of unchanged
 * trees list files in the same order), without following symlinks:
 *
 *   regular files   content, mode, owner, group, mtime (ns)
 *   directories     mode, owner, group, mtime, before their contents
 *   symlinks        their target, owner, group, mtime
 *   anything else   (sockets, fifos, devices) skipped with a note
 *
 * A configured path that is itself a symlink is followed. Hard links are
 * stored as separate files. A file that vanishes between
 * the directory read and its open is skipped with a note (the shop deleted
 * it); any other read error fails the run, because a backup that silently
 * misses files is worse than one that fails loudly.
 *
 * Exclude patterns (fnmatch) are matched against an entry's base name and
 * against its path relative to the configured path (with FNM_PATHNAME, so
 * a '*' in "cache/tmp-*" does not match a '/'). An excluded directory is
 * not descended into. The configured paths themselves are never excluded.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup_int.h"

static int excluded(const struct cfg_backup_source *s, const char *rel)
{
	const char *base = strrchr(rel, '/');

	base = base ? base + 1 : rel;
	for (size_t i = 0; i < s->nexclude; i++) {
		const char *p = s->exclude[i].pattern;

		if (fnmatch(p, base, 0) == 0 || fnmatch(p, rel, FNM_PATHNAME) == 0)
			return 1;
	}
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir, sorted; *n of them. NULL with errno on failure. */
static char **read_names(const char *dir, size_t *n)
{
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;
	DIR *d = opendir(dir);

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 32;
			v = realloc(v, cap * sizeof(*v));
			SK_ASSERT(v != NULL);
		}
		v[*n] = strdup(de->d_name);
		SK_ASSERT(v[*n] != NULL);
		(*n)++;
	}
	closedir(d);
	if (v == NULL) {
		v = malloc(sizeof(*v));
		SK_ASSERT(v != NULL);
	}
	qsort(v, *n, sizeof(*v), by_name);
	return v;
}

static int walk(struct run_ctx *c, const struct cfg_backup_source *s,
		const char *abs, const char *rel, const char *apath);

static int add_file(struct run_ctx *c, const char *abs, const char *apath)
{
	struct stat st;
	int fd, r;

	fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT) {
			run_note(c, "note: %s vanished during the backup; skipped",
				 abs);
			return 0;
		}
		return run_fail(c, -errno, "cannot open %s: %s", abs,
				strerror(errno));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return run_fail(c, r, "cannot stat %s: %s", abs, strerror(-r));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		run_note(c, "note: %s changed type during the backup; skipped",
			 abs);
		return 0;
	}
	r = run_add_fd(c, apath, "file", fd, &st, NULL);
	close(fd);
	return r;
}

static int add_dir(struct run_ctx *c, const struct cfg_backup_source *s,
		   const char *abs, const char *rel, const char *apath,
		   const struct stat *st)
{
	char **names;
	size_t n;
	int r;

	r = run_add_meta(c, apath, st, NULL);
	if (r < 0)
		return r;
	names = read_names(abs, &n);
	if (names == NULL) {
		if (errno == ENOENT)
			return 0;
		return run_fail(c, -errno, "cannot read directory %s: %s", abs,
				strerror(errno));
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		char *cabs, *crel, *capath;

		if (asprintf(&cabs, "%s/%s", strcmp(abs, "/") ? abs : "",
			     names[i]) < 0 ||
		    asprintf(&crel, "%s%s%s", rel, rel[0] ? "/" : "", names[i]) < 0 ||
		    asprintf(&capath, "%s/%s", apath, names[i]) < 0)
			SK_ASSERT(0);
		r = walk(c, s, cabs, crel, capath);
		free(cabs);
		free(crel);
		free(capath);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

static int walk(struct run_ctx *c, const struct cfg_backup_source *s,
		const char *abs, const char *rel, const char *apath)
{
	struct stat st;
	char target[PATH_MAX];
	ssize_t n;

	if (run_cancelled(c))
		return run_fail(c, -ECANCELED, "cancelled");
	if (rel[0] && excluded(s, rel))
		return 0;
	/* A configured path that is a symlink is followed (backing up the
	 * link alone is never what was meant); nothing below it is. */
	if ((rel[0] ? lstat(abs, &st) : stat(abs, &st)) < 0) {
		if (errno == ENOENT && rel[0]) {
			run_note(c, "note: %s vanished during the backup; skipped",
				 abs);
			return 0;
		}
		return run_fail(c, -errno, "cannot stat %s: %s", abs,
				strerror(errno));
	}
	if (run_is_excluded_object(c, &st)) {
		run_note(c, "note: %s is the backup key or repository; never "
			    "archived",
			 abs);
		return 0;
	}
	if (S_ISREG(st.st_mode))
		return add_file(c, abs, apath);
	if (S_ISDIR(st.st_mode))
		return add_dir(c, s, abs, rel, apath, &st);
	if (S_ISLNK(st.st_mode)) {
		n = readlink(abs, target, sizeof(target) - 1);
		if (n < 0)
			return run_fail(c, -errno, "cannot read link %s: %s", abs,
					strerror(errno));
		target[n] = '\0';
		return run_add_meta(c, apath, &st, target);
	}
	run_note(c, "note: %s is not a file, directory or symlink; skipped", abs);
	return 0;
}

int source_files_backup(struct run_ctx *c, const struct cfg_backup_source *s,
			json_t *info)
{
	json_t *paths = json_array();
	int r = 0;

	json_object_set_new(info, "paths", paths);
	for (size_t i = 0; i < s->npaths && r == 0; i++) {
		const char *p = s->paths[i].path;
		char *apath;
		size_t len = strlen(p);

		/* "/srv/shop/" and "/srv/shop" are the same tree. */
		while (len > 1 && p[len - 1] == '/')
			len--;
		json_array_append_new(paths, json_stringn(p, len));
		if (asprintf(&apath, "%s%s%.*s", s->name, p[0] == '/' ? "" : "/",
			     (int)len, p) < 0)
			SK_ASSERT(0);
		if (len == 1 && p[0] == '/')
			apath[strlen(s->name)] = '\0';
		{
			char *abs = strndup(p, len);

			SK_ASSERT(abs != NULL);
			r = walk(c, s, abs, "", apath);
			free(abs);
		}
		free(apath);
	}
	return r;
}

/* nftw has no user pointer; a thread-local sum keeps concurrent runs of
 * different jobs apart. */
static _Thread_local uint64_t estimate_sum;

static int estimate_one(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F && S_ISREG(st->st_mode))
		estimate_sum += (uint64_t)st->st_size;
	return 0;
}

uint64_t source_files_estimate(const struct cfg_backup_source *s)
{
	uint64_t total = 0;

	for (size_t i = 0; i < s->npaths; i++) {
		estimate_sum = 0;
		nftw(s->paths[i].path, estimate_one, 16, FTW_PHYS);
		total += estimate_sum;
	}
	return total;
}
