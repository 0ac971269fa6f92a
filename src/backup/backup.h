/*
 * backup.h - encrypted, verified, scheduled backups.
 *
 * A backup job (config: backup.jobs[]) copies its sources - SQLite
 * databases through SQLite's online backup API, PostgreSQL databases
 * through pg_dump -Fc, file trees with their modes, owners and mtimes,
 * and always storekeep's own config file - into one archive file in the
 * job's repository directory. Each file in an archive is compressed with
 * zstd and encrypted with libsodium's secretstream (XChaCha20-Poly1305) in
 * chunks; an encrypted manifest lists every file with its size and
 * BLAKE2b hash. docs/backup-format.md describes the bytes.
 *
 * What this module guarantees:
 *   - an archive appears under its final name only once it is complete and
 *     fsync'd (temporary name, fsync, rename, fsync of the directory), so a
 *     crash or SIGKILL at any moment leaves the earlier archives intact and
 *     no partial archive that looks complete;
 *   - two runs of one job never overlap (an flock per job, which also
 *     covers a CLI run beside the daemon);
 *   - the key file never enters an archive, and is refused when group or
 *     others may access it;
 *   - every byte of an archive is covered by a checksum or an
 *     authentication tag, so verify notices any change and names the file.
 *
 * What it does not do: deduplicate between archives (each archive is
 * complete in itself), or talk to remote storage (a repository is a local
 * directory, which may be a mounted remote disk).
 *
 * Repository layout: <repository>/<job>/<id>.skb, where the id is
 * "<job>-<YYYYMMDD>T<HHMMSS>Z-<4 hex>". There is no catalog file: the
 * repository is the catalog, rebuilt by scanning on every list.
 *
 * The functions taking a config may run on any thread; the backup_sched_*
 * ones only on the control loop's thread.
 */
#ifndef SK_BACKUP_BACKUP_H
#define SK_BACKUP_BACKUP_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/config.h"

struct backup_key;

/* --- keys ------------------------------------------------------------- */

/*
 * Creates a new random key in path (mode 0600). An existing file is never
 * replaced unless force is set. Returns 0, or a negative errno with a
 * one-line message in err (-EEXIST: the key exists and force is not set).
 */
int backup_key_create(const char *path, int force, char *err, size_t errlen);

/*
 * Loads the key in path. Refuses (-EPERM) a key file that group or others
 * may access, and anything that is not a regular file holding a key.
 * Returns 0 and *out (free with backup_key_free), or a negative errno
 * with a message in err.
 */
int backup_key_load(const char *path, struct backup_key **out, char *err,
		    size_t errlen);
/* Wipes and frees k; NULL is fine. */
void backup_key_free(struct backup_key *k);
/* The key's public id, 16 hex digits and a NUL: it names the key in
 * archives and messages without revealing it. */
void backup_key_id(const struct backup_key *k, char out[17]);

/* --- operations ---------------------------------------------------------- */

/* Progress of a long operation: done and total in bytes of input (total
 * is an estimate and may be 0 when unknown). Called on the working thread
 * at most every few hundred kilobytes. */
typedef void (*backup_progress_fn)(void *ud, uint64_t done, uint64_t total);
/* One line of human-readable report (no trailing newline). */
typedef void (*backup_note_fn)(void *ud, const char *line);

struct backup_opts {
	/* Wall clock in Unix milliseconds; NULL = the real one. Tests inject
	 * a clock to lay archives out on a synthetic timeline. */
	int64_t (*now_ms)(void *ud);
	void *clock_ud;
	backup_progress_fn progress;
	void *progress_ud;
	backup_note_fn note; /* NULL = quiet */
	void *note_ud;
	/* When it becomes non-zero the operation stops soon with -ECANCELED
	 * and removes what it had half-written. NULL = never. */
	const atomic_int *cancel;
	int no_prune; /* run: skip the retention pass after the run */
};

struct backup_run_result {
	char id[96];
	char path[4096];
	int64_t created_ms;
	uint64_t duration_ms;
	uint64_t bytes_in;  /* bytes read from the sources */
	uint64_t bytes_out; /* size of the archive file */
	size_t files;	    /* entries in the manifest */
	size_t pruned;	    /* archives the retention pass removed */
	size_t archives;    /* archives of the job left in the repository */
};

/*
 * Runs job (an element of cfg->backup.jobs) once: snapshot every source
 * into a new archive, then apply the job's retention. cfg and key are
 * borrowed. Returns 0 and fills *res, -EBUSY when another run of the job
 * holds its lock, -ECANCELED, or another negative errno; err names what
 * failed ("source shopdb: ...").
 */
int backup_run(const struct config *cfg, const struct cfg_backup_job *job,
	       const struct backup_key *key, const struct backup_opts *o,
	       struct backup_run_result *res, char *err, size_t errlen);

/*
 * Lists the archives of job (NULL: every job) in every repository of cfg,
 * oldest first, as a JSON array (the caller owns it) of objects: id, job,
 * path, created_ms, bytes_in, bytes_out, files, sources (array of
 * {name, type, tables}) and, for an archive that cannot be read, error.
 * Verify results recorded in the repository come as verified_ms /
 * verify_ok. Returns 0, or a negative errno with err set.
 */
int backup_list(const struct config *cfg, const struct backup_key *key,
		const char *job, json_t **out, char *err, size_t errlen);

struct backup_verify_result {
	size_t archives; /* checked */
	size_t failed;	 /* of which failed */
};

/*
 * Verifies the archive named by what - an archive id, a job name (its
 * newest archive), or NULL (every archive of every job): decrypts every
 * file and checks its hash and size, restores each database into a
 * scratch place and checks it (SQLite: PRAGMA integrity_check; PostgreSQL:
 * pg_restore into a scratch database on the job's server), compares the
 * row counts per table with the manifest and runs the job's
 * verify.assertions. Each result is recorded in the repository
 * (.state.json) for the RPO. Progress and findings go to o->note.
 * Returns 0 when every archive passed, -EBADMSG when one failed (err holds
 * the first failure, naming the archive and the file), -ENOENT when what
 * names nothing, or another negative errno.
 */
int backup_verify(const struct config *cfg, const struct backup_key *key,
		  const char *what, const struct backup_opts *o,
		  struct backup_verify_result *res, char *err, size_t errlen);

/*
 * Restores the archive named by what (an id, or a job name for its newest
 * archive) into the directory to: files under <to>/<source>/..., SQLite
 * databases as files, PostgreSQL dumps as <to>/<source>/<db>.pgdump for
 * pg_restore. A to that exists and is not empty is refused (-EEXIST)
 * unless force is set; with force, restored files replace existing ones
 * (each one only once its content checked out). Returns 0 or a negative
 * errno with err set.
 */
int backup_restore(const struct config *cfg, const struct backup_key *key,
		   const char *what, const char *to, int force,
		   const struct backup_opts *o, char *err, size_t errlen);

struct backup_prune_result {
	size_t kept;
	size_t removed;
};

/*
 * Applies job's retention (restic's forget --keep-* rules, see
 * docs/backup.md) to its archives, removing the others. Takes the job's
 * lock (-EBUSY while a run holds it). The decisions go to o->note.
 * Returns 0 or a negative errno with err set.
 */
int backup_prune(const struct config *cfg, const struct cfg_backup_job *job,
		 const struct backup_opts *o, struct backup_prune_result *res,
		 char *err, size_t errlen);

/*
 * Creates the repository directory of every job of cfg (mode 0700) and
 * checks that it can be written to. Returns 0 or a negative errno with
 * err naming the directory.
 */
int backup_repo_init(const struct config *cfg, char *err, size_t errlen);

/* The repository directory of job under cfg (never NULL: the loader
 * makes sure one of the two is set). */
const char *backup_job_repository(const struct config *cfg,
				  const struct cfg_backup_job *job);

/* --- the daemon's scheduler ------------------------------------------------ */

struct backup_sched;

/*
 * Starts running the jobs of cfg (borrowed; the scheduler keeps its own
 * reference) on their schedules, on the control loop: timers on the loop,
 * the work itself on libuv's thread pool (uv_queue_work), never two runs
 * (or a run and a restore drill) of one job at once. A job that missed its
 * slot while storekeep was down runs soon after start. Loads the key now:
 * returns NULL with err set when backups are configured and the key
 * cannot be used. Without a backup section it returns an idle scheduler.
 */
struct backup_sched *backup_sched_start(uv_loop_t *control,
					const struct config *cfg, char *err,
					size_t errlen);

/* Takes the jobs of a new config (borrowed): new jobs start, removed ones
 * stop once idle, changed schedules take effect. A run in progress
 * finishes on the config it started with. */
void backup_sched_reload(struct backup_sched *s, const struct config *cfg);

/*
 * Starts a run (verify 0) or a restore drill of the newest archive
 * (verify 1) of job now, off the loop like a scheduled one; when the job
 * is busy it starts as soon as the current work ends. For the admin API.
 * Returns 0, -ENOENT (no such job), -ENOKEY (the key could not be
 * loaded) or -ESHUTDOWN (stopping).
 */
int backup_sched_trigger(struct backup_sched *s, const char *job, int verify);

/*
 * Stops: no new run starts, a run in progress is cancelled (it removes
 * its temporary files; earlier archives are untouched) and waited for,
 * then done(ud) is called on the loop and s is freed. done may be NULL.
 */
void backup_sched_stop(struct backup_sched *s, void (*done)(void *),
		       void *ud);

/*
 * Status for /api/v1/status: {"jobs": [{name, running, last_success,
 * last_duration_ms, bytes_in, bytes_out, archives, last_error,
 * last_verify, last_verify_ok, verify_error, rpo_breached, overdue,
 * next_run}, ...]}; times as ISO 8601 strings or null. The caller owns
 * the returned object.
 */
json_t *backup_status_json(struct backup_sched *s);

/* Appends the per-job metrics in Prometheus text format to out. */
void backup_metrics_write(struct backup_sched *s, struct buf *out);

#endif
