/*
 * backup_cmd.c - `storekeep backup`: the operator's side of src/backup.
 *
 *   storekeep backup [-c CONFIG] init [--force]
 *   storekeep backup [-c CONFIG] run [JOB]
 *   storekeep backup [-c CONFIG] list [JOB] [--json]
 *   storekeep backup [-c CONFIG] verify [ID|JOB]
 *   storekeep backup [-c CONFIG] restore ID|JOB --to PATH [--force]
 *   storekeep backup [-c CONFIG] prune [JOB]
 *
 * CONFIG defaults to ./storekeep.yaml. Exit status: 0 done, 1 failed (the
 * reason on stderr), 2 usage error. Where an ID is asked for, a job name
 * means that job's newest archive.
 *
 * On a terminal, long operations draw a progress line (bytes, rate, ETA)
 * on stdout; otherwise only the report lines are printed, so the output
 * can go to a log or a mail. Ctrl-C stops a run cleanly (its temporary
 * files are removed); a second one kills at once.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/backup.h"
#include "cli/cli.h"
#include "core/clock.h"
#include "core/config.h"

static atomic_int interrupted;

struct ui {
	int tty;
	int quiet;
	int bar_shown;
	uint64_t start_ms;
	uint64_t last_draw_ms;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: storekeep backup [-c CONFIG] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  init [--force]               create the key file and the "
		"repositories\n"
		"  run [JOB]                    run every job (or JOB) now\n"
		"  list [JOB] [--json]          list the archives\n"
		"  verify [ID|JOB]              decrypt and check every archive "
		"(or one),\n"
		"                               restoring databases into a scratch "
		"place\n"
		"  restore ID|JOB --to PATH [--force]\n"
		"                               restore an archive (a job name: its "
		"newest)\n"
		"  prune [JOB]                  apply the retention rules\n"
		"\n"
		"options:\n"
		"  -c, --config FILE            the config (default "
		"./storekeep.yaml)\n"
		"  -q, --quiet                  no progress line, only errors and "
		"results\n"
		"\n"
		"exit status: 0 done, 1 failed, 2 usage error\n");
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&interrupted, 1);
}

static void fmt_size(uint64_t n, char *out, size_t outlen)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, outlen, "%llu B", (unsigned long long)n);
	else
		snprintf(out, outlen, "%.1f %s", v, units[u]);
}

static void clear_bar(struct ui *ui)
{
	if (ui->bar_shown) {
		fputs("\r\033[K", stdout);
		ui->bar_shown = 0;
	}
}

static void note_cb(void *ud, const char *line)
{
	struct ui *ui = ud;

	clear_bar(ui);
	if (!ui->quiet || strncmp(line, "FAILED", 6) == 0)
		printf("%s\n", line);
	fflush(stdout);
}

/* bytes done / total, rate, ETA and a bar, at most ten times a second. */
static void progress_cb(void *ud, uint64_t done, uint64_t total)
{
	struct ui *ui = ud;
	uint64_t now = clock_mono_ms(), el = now - ui->start_ms;
	char d[32], t[32], rate[32], eta[32], bar[32];
	double bps;
	int fill = 0;

	if (!ui->tty || ui->quiet || now - ui->last_draw_ms < 100)
		return;
	ui->last_draw_ms = now;
	bps = el ? (double)done * 1000.0 / (double)el : 0;
	fmt_size(done, d, sizeof(d));
	fmt_size(total, t, sizeof(t));
	fmt_size((uint64_t)bps, rate, sizeof(rate));
	if (total > done && bps > 0) {
		uint64_t s = (uint64_t)((double)(total - done) / bps);

		snprintf(eta, sizeof(eta), "ETA %llu:%02llu",
			 (unsigned long long)(s / 60), (unsigned long long)(s % 60));
		fill = (int)(done * 24 / total);
	} else {
		snprintf(eta, sizeof(eta), "ETA  -:--");
		fill = total ? 24 : 0;
	}
	for (int i = 0; i < 24; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[24] = '\0';
	printf("\r\033[K[%s] %s / %s  %s/s  %s", bar, d, total ? t : "?", rate,
	       eta);
	fflush(stdout);
	ui->bar_shown = 1;
}

static void opts_init(struct backup_opts *o, struct ui *ui)
{
	memset(o, 0, sizeof(*o));
	o->note = note_cb;
	o->note_ud = ui;
	o->progress = progress_cb;
	o->progress_ud = ui;
	o->cancel = &interrupted;
	ui->start_ms = clock_mono_ms();
	ui->last_draw_ms = 0;
}

static int load(const char *path, struct config **cfg, struct backup_key **key,
		int need_key)
{
	char err[1024];
	int r;

	if (config_load(path, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "storekeep backup: %s\n", err);
		return -1;
	}
	if (!(*cfg)->backup.enabled) {
		fprintf(stderr,
			"storekeep backup: %s has no backup section (see "
			"docs/backup.md)\n",
			path);
		config_unref(*cfg);
		return -1;
	}
	if (key == NULL)
		return 0;
	r = backup_key_load((*cfg)->backup.key_file, key, err, sizeof(err));
	if (r < 0) {
		if (!need_key) {
			fprintf(stderr, "storekeep backup: warning: %s; listing "
					"without reading the archives\n",
				err);
			*key = NULL;
			return 0;
		}
		fprintf(stderr, "storekeep backup: %s\n", err);
		config_unref(*cfg);
		return -1;
	}
	return 0;
}

static const struct cfg_backup_job *job_arg(const struct config *cfg,
					    const char *name)
{
	for (size_t i = 0; i < cfg->backup.njobs; i++)
		if (strcmp(cfg->backup.jobs[i].name, name) == 0)
			return &cfg->backup.jobs[i];
	fprintf(stderr, "storekeep backup: no job named \"%s\" in the config\n",
		name);
	return NULL;
}

static int cmd_init(const char *path, int force)
{
	struct backup_key *key;
	struct config *cfg;
	char err[1024], id[17];
	int r;

	if (load(path, &cfg, NULL, 0) < 0)
		return 1;
	r = backup_key_create(cfg->backup.key_file, force, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "storekeep backup: %s\n", err);
		config_unref(cfg);
		return 1;
	}
	if (backup_key_load(cfg->backup.key_file, &key, err, sizeof(err)) < 0) {
		fprintf(stderr, "storekeep backup: %s\n", err);
		config_unref(cfg);
		return 1;
	}
	backup_key_id(key, id);
	backup_key_free(key);
	printf("created key file %s (key id %s)\n", cfg->backup.key_file, id);
	printf("Copy it somewhere safe, off this machine: without it no archive "
	       "can be restored.\n");
	r = backup_repo_init(cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "storekeep backup: %s\n", err);
		config_unref(cfg);
		return 1;
	}
	for (size_t i = 0; i < cfg->backup.njobs; i++)
		printf("job %s: repository %s/%s ready\n", cfg->backup.jobs[i].name,
		       backup_job_repository(cfg, &cfg->backup.jobs[i]),
		       cfg->backup.jobs[i].name);
	config_unref(cfg);
	return 0;
}

static int cmd_run(const char *path, const char *job, struct ui *ui)
{
	const struct cfg_backup_job *only = NULL;
	struct backup_key *key;
	struct config *cfg;
	int failed = 0;

	if (load(path, &cfg, &key, 1) < 0)
		return 1;
	if (job && (only = job_arg(cfg, job)) == NULL) {
		failed = 1;
		goto out;
	}
	if (cfg->backup.njobs == 0)
		printf("no backup jobs in %s\n", path);
	for (size_t i = 0; i < cfg->backup.njobs && !atomic_load(&interrupted); i++) {
		const struct cfg_backup_job *j = &cfg->backup.jobs[i];
		struct backup_run_result res;
		struct backup_opts o;
		char err[2048], in[32], out[32];
		int r;

		if (only && only != j)
			continue;
		opts_init(&o, ui);
		r = backup_run(cfg, j, key, &o, &res, err, sizeof(err));
		clear_bar(ui);
		if (r < 0) {
			fprintf(stderr, "storekeep backup: job %s failed: %s\n", j->name,
				err);
			failed = 1;
			continue;
		}
		fmt_size(res.bytes_in, in, sizeof(in));
		fmt_size(res.bytes_out, out, sizeof(out));
		printf("job %s: archive %s written: %zu files, %s read, %s stored, "
		       "%.1f s; %zu pruned, %zu archives\n",
		       j->name, res.id, res.files, in, out,
		       (double)res.duration_ms / 1000.0, res.pruned, res.archives);
	}
out:
	backup_key_free(key);
	config_unref(cfg);
	return failed;
}

static void print_table(json_t *arr)
{
	size_t i;
	json_t *a;

	if (json_array_size(arr) == 0) {
		printf("no archives\n");
		return;
	}
	printf("%-44s %-20s %7s %10s %10s  %s\n", "ID", "CREATED (UTC)", "FILES",
	       "READ", "STORED", "VERIFIED");
	json_array_foreach(arr, i, a) {
		const char *err = json_string_value(json_object_get(a, "error"));
		const char *created = json_string_value(json_object_get(a, "created"));
		json_t *ok = json_object_get(a, "verify_ok");
		char in[32] = "?", out[32] = "?";

		if (json_object_get(a, "bytes_in"))
			fmt_size((uint64_t)json_integer_value(json_object_get(a, "bytes_in")),
				 in, sizeof(in));
		if (json_object_get(a, "bytes_out"))
			fmt_size((uint64_t)json_integer_value(json_object_get(a, "bytes_out")),
				 out, sizeof(out));
		if (err) {
			printf("%-44s UNREADABLE: %s\n",
			       json_string_value(json_object_get(a, "id")), err);
			continue;
		}
		printf("%-44s %-20s %7lld %10s %10s  %s\n",
		       json_string_value(json_object_get(a, "id")),
		       created ? created : "?",
		       (long long)json_integer_value(json_object_get(a, "files")), in,
		       out, ok == NULL ? "-" : json_is_true(ok) ? "ok" : "FAILED");
	}
}

static int cmd_list(const char *path, const char *job, int as_json)
{
	struct backup_key *key;
	struct config *cfg;
	json_t *arr;
	char err[1024];
	int r;

	if (load(path, &cfg, &key, 0) < 0)
		return 1;
	r = backup_list(cfg, key, job, &arr, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "storekeep backup: %s\n", err);
	} else {
		if (as_json) {
			char *s = json_dumps(arr, JSON_INDENT(2));

			printf("%s\n", s);
			free(s);
		} else {
			print_table(arr);
		}
		json_decref(arr);
	}
	backup_key_free(key);
	config_unref(cfg);
	return r < 0;
}

static int cmd_verify(const char *path, const char *what, struct ui *ui)
{
	struct backup_verify_result res;
	struct backup_key *key;
	struct backup_opts o;
	struct config *cfg;
	char err[2048];
	int r;

	if (load(path, &cfg, &key, 1) < 0)
		return 1;
	opts_init(&o, ui);
	r = backup_verify(cfg, key, what, &o, &res, err, sizeof(err));
	clear_bar(ui);
	if (r < 0)
		fprintf(stderr, "storekeep backup: verify failed: %s\n", err);
	else
		printf("verify: %zu archive%s checked, all good\n", res.archives,
		       res.archives == 1 ? "" : "s");
	if (r == -EBADMSG && res.archives > 1)
		fprintf(stderr, "storekeep backup: %zu of %zu archives failed\n",
			res.failed, res.archives);
	backup_key_free(key);
	config_unref(cfg);
	return r < 0;
}

static int cmd_restore(const char *path, const char *what, const char *to,
		       int force, struct ui *ui)
{
	struct backup_key *key;
	struct backup_opts o;
	struct config *cfg;
	char err[2048];
	int r;

	if (load(path, &cfg, &key, 1) < 0)
		return 1;
	opts_init(&o, ui);
	r = backup_restore(cfg, key, what, to, force, &o, err, sizeof(err));
	clear_bar(ui);
	if (r < 0)
		fprintf(stderr, "storekeep backup: restore failed: %s\n", err);
	backup_key_free(key);
	config_unref(cfg);
	return r < 0;
}

static int cmd_prune(const char *path, const char *job, struct ui *ui)
{
	const struct cfg_backup_job *only = NULL;
	struct config *cfg;
	int failed = 0;

	if (load(path, &cfg, NULL, 0) < 0)
		return 1;
	if (job && (only = job_arg(cfg, job)) == NULL) {
		config_unref(cfg);
		return 1;
	}
	for (size_t i = 0; i < cfg->backup.njobs; i++) {
		const struct cfg_backup_job *j = &cfg->backup.jobs[i];
		struct backup_prune_result res;
		struct backup_opts o;
		char err[1024];

		if (only && only != j)
			continue;
		opts_init(&o, ui);
		if (backup_prune(cfg, j, &o, &res, err, sizeof(err)) < 0) {
			fprintf(stderr, "storekeep backup: prune of %s failed: %s\n",
				j->name, err);
			failed = 1;
			continue;
		}
		printf("job %s: %zu kept, %zu removed\n", j->name, res.kept,
		       res.removed);
	}
	config_unref(cfg);
	return failed;
}

/* At most max positional arguments after the command. */
static int args_ok(const char *cmd, int n, int max)
{
	if (n <= max)
		return 1;
	fprintf(stderr, "storekeep backup %s: too many arguments\n", cmd);
	return 0;
}

int cli_backup(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"force", no_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *path = "storekeep.yaml", *to = NULL, *cmd, *arg;
	struct sigaction sa;
	struct ui ui;
	int force = 0, as_json = 0, ch, npos;

	memset(&ui, 0, sizeof(ui));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:fqh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			force = 1;
			break;
		case 't':
			to = optarg;
			break;
		case 'j':
			as_json = 1;
			break;
		case 'q':
			ui.quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	npos = argc - optind - 1;
	arg = npos > 0 ? argv[optind + 1] : NULL;
	ui.tty = isatty(STDOUT_FILENO);

	/* Ctrl-C or TERM: stop cleanly; a second one kills at once. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = (int)SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (strcmp(cmd, "init") == 0)
		return args_ok(cmd, npos, 0) ? cmd_init(path, force) : 2;
	if (strcmp(cmd, "run") == 0)
		return args_ok(cmd, npos, 1) ? cmd_run(path, arg, &ui) : 2;
	if (strcmp(cmd, "list") == 0)
		return args_ok(cmd, npos, 1) ? cmd_list(path, arg, as_json) : 2;
	if (strcmp(cmd, "verify") == 0)
		return args_ok(cmd, npos, 1) ? cmd_verify(path, arg, &ui) : 2;
	if (strcmp(cmd, "prune") == 0)
		return args_ok(cmd, npos, 1) ? cmd_prune(path, arg, &ui) : 2;
	if (strcmp(cmd, "restore") == 0) {
		if (arg == NULL || to == NULL || !args_ok(cmd, npos, 1)) {
			fprintf(stderr, "usage: storekeep backup restore ID|JOB --to "
					"PATH [--force]\n");
			return 2;
		}
		return cmd_restore(path, arg, to, force, &ui);
	}
	fprintf(stderr, "storekeep backup: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return 2;
}
