/*
 * util.c - small helpers shared by the backup files: names, times, child
 * processes, failpoints.
 *
 * Child processes (pg_dump, pg_restore) are started with posix_spawn, so
 * nothing runs between fork and exec even when the caller is a thread of
 * the daemon; they get default signal dispositions and an empty signal
 * mask whatever the daemon set up for itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup_int.h"
#include "core/clock.h"

extern char **environ;

void bk_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

void bk_msg(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

int bk_path(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

void bk_fmt_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *backup_job_repository(const struct config *cfg,
				  const struct cfg_backup_job *job)
{
	return job->repository ? job->repository : cfg->backup.repository;
}

const struct cfg_backup_job *bk_find_job(const struct config *cfg,
					 const char *name)
{
	for (size_t i = 0; i < cfg->backup.njobs; i++)
		if (strcmp(cfg->backup.jobs[i].name, name) == 0)
			return &cfg->backup.jobs[i];
	return NULL;
}

int bk_counts_match(json_t *want, json_t *have, char *err, size_t errlen)
{
	const char *name;
	json_t *w;

	json_object_foreach(want, name, w) {
		json_t *got = json_object_get(have, name);

		if (got == NULL) {
			snprintf(err, errlen,
				 "table %s is missing (the manifest has it with "
				 "%lld rows)",
				 name, (long long)json_integer_value(w));
			return -EBADMSG;
		}
		if (json_integer_value(got) != json_integer_value(w)) {
			snprintf(err, errlen,
				 "table %s has %lld rows, the manifest says %lld",
				 name, (long long)json_integer_value(got),
				 (long long)json_integer_value(w));
			return -EBADMSG;
		}
	}
	return 0;
}

int bk_name_ok(const char *name)
{
	/* The loader allows A-Za-z0-9_.- ; "." and ".." and hidden names
	 * would be wrong as directories or archive paths. */
	return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

int64_t bk_now_ms(const struct backup_opts *o)
{
	if (o && o->now_ms)
		return o->now_ms(o->clock_ud);
	return (int64_t)clock_wall_ms();
}

void bk_note(const struct backup_opts *o, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (o == NULL || o->note == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	o->note(o->note_ud, line);
}

/* environ with the entries of extra added, replacing same-named ones. */
static char **merged_env(char *const extra[])
{
	size_t n = 0, m = 0, k = 0;
	char **v;

	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	v = calloc(n + m + 1, sizeof(*v));
	SK_ASSERT(v != NULL);
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
		int replaced = 0;

		for (size_t j = 0; j < m; j++)
			if (strncmp(environ[i], extra[j], len) == 0)
				replaced = 1;
		if (!replaced)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		v[k++] = extra[j];
	return v;
}

pid_t bk_spawn(char *const argv[], char *const env[], int in_fd, int out_fd,
	       int err_fd)
{
	static const int reset[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP,
				    SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	char **envp = merged_env(env);
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	if (in_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (err_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	else
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&def);
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		sigaddset(&def, reset[i]);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	r = posix_spawnp(&pid, argv[0], &fa, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	free(envp);
	return r == 0 ? pid : -r;
}

int bk_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

char *bk_read_tail(int fd, size_t max)
{
	struct buf b;
	char chunk[4096];
	ssize_t n;

	buf_init(&b);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_append(&b, chunk, (size_t)n);
		if (b.len > 2 * max)
			buf_consume(&b, b.len - max);
	}
	if (b.len > max)
		buf_consume(&b, b.len - max);
	while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
		b.len--;
	return buf_steal(&b, NULL);
}

void backup_failpoint(const char *point)
{
	const char *fp = getenv("STOREKEEP_BACKUP_FAILPOINT");

	if (fp == NULL || strcmp(fp, point) != 0)
		return;
	dprintf(2, "failpoint %s reached\n", point);
	for (;;)
		pause();
}
