/*
 * backup_int.h - shared between the files of src/backup; not a public
 * interface (see backup.h for that).
 *
 *   key.c            key files, key ids, per-archive keys
 *   archive.c        the archive format: header, streams, manifest, trailer
 *   repo.c           repository directories, locks, scans, the state file
 *   retention.c      which archives a prune keeps
 *   run.c            one run of a job, and prune
 *   source_sqlite.c  online snapshot and checks of SQLite databases
 *   source_pg.c      pg_dump / pg_restore of PostgreSQL databases
 *   source_files.c   file trees
 *   restore.c        restore and verify
 *   sched.c          the daemon's scheduler, status and metrics
 *   util.c           names, times, child processes, failpoints
 */
#ifndef SK_BACKUP_BACKUP_INT_H
#define SK_BACKUP_BACKUP_INT_H

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "backup/backup.h"
#include "core/log.h"

#define BK_KEY_BYTES 32
#define BK_KEY_ID_BYTES 8
#define BK_HASH_BYTES 32 /* BLAKE2b-256 of each file's content */
#define BK_ID_MAX 96	 /* archive id, with its NUL */
#define BK_JOB_MAX 72	 /* job name, with its NUL */

/* The archive suffix and the prefix of temporary names in a job's
 * directory. Names beginning with '.' are never archives. */
#define BK_SUFFIX ".skb"
#define BK_STATE_FILE ".state.json"
#define BK_LOCK_FILE ".lock"

struct backup_key {
	unsigned char k[BK_KEY_BYTES];
	unsigned char id[BK_KEY_ID_BYTES];
};

/* key.c */

/* The per-archive key: BLAKE2b(key = master, "storekeep archive v1" ||
 * salt), so no two archives share a key. out is wiped by the caller. */
void key_derive_archive(const struct backup_key *k, const unsigned char salt[16],
			unsigned char out[BK_KEY_BYTES]);
void key_id_hex(const unsigned char id[BK_KEY_ID_BYTES], char out[17]);

/* --- archive.c ------------------------------------------------------------ */

#define ARCHIVE_VERSION 1
#define ARCHIVE_STREAM_MANIFEST 0xffffffffu

struct archive_header {
	uint32_t version;
	unsigned char key_id[BK_KEY_ID_BYTES];
	unsigned char salt[16];
	int64_t created_ms;
	char id[BK_ID_MAX];
	char job[BK_JOB_MAX];
};

/* Where one stream landed and what it held. */
struct archive_stream_info {
	uint64_t offset; /* of the stream's first byte in the file */
	uint64_t stored; /* bytes in the file */
	uint64_t size;	 /* bytes of plain content */
	unsigned char hash[BK_HASH_BYTES];
};

struct archive_writer;

/*
 * Starts an archive on fd (positioned at 0, owned by the caller) for
 * header h (version, key_id and salt are filled in here). Writes the
 * header. Returns 0 and *out, or a negative errno.
 */
int archive_writer_new(int fd, const struct backup_key *key,
		       struct archive_header *h, struct archive_writer **out);
/* Starts stream index (0, 1, 2 ... in order). */
int archive_stream_begin(struct archive_writer *w, uint32_t index);
/* Compresses, hashes and encrypts n bytes of the current stream. Returns 0
 * or a negative errno (write errors). */
int archive_stream_write(struct archive_writer *w, const void *p, size_t n);
/* Ends the current stream (its last chunk carries the final tag). */
int archive_stream_end(struct archive_writer *w,
		       struct archive_stream_info *info);
/* Writes the manifest stream and the trailer. The caller fsyncs. */
int archive_writer_finish(struct archive_writer *w, const void *manifest,
			  size_t len);
uint64_t archive_writer_offset(const struct archive_writer *w);
/* Wipes the keys and frees w (not the fd). NULL is fine. */
void archive_writer_free(struct archive_writer *w);

struct archive_reader;
typedef int (*archive_sink_fn)(void *ud, const void *p, size_t n);

/*
 * Reads only the header of the archive file path (checked against its
 * checksum). No key needed. Returns 0, or -EBADMSG (damaged, truncated,
 * not an archive), -ENOTSUP (a format version this build does not read)
 * or -errno, with the reason in err (without the archive's name).
 */
int archive_read_header(const char *path, struct archive_header *h,
			char *err, size_t errlen);

/*
 * Opens path: checks the header, that key is the archive's key
 * (-EKEYREJECTED otherwise) and the trailer. Returns 0 and *out, or a
 * negative errno with the reason in err (without the archive's name).
 */
int archive_reader_open(const char *path, const struct backup_key *key,
			struct archive_reader **out, char *err, size_t errlen);
const struct archive_header *archive_reader_header(const struct archive_reader *r);
/* First byte after the header, and where the manifest stream starts: the
 * file streams tile [data_start, manifest_offset) exactly. */
uint64_t archive_reader_data_start(const struct archive_reader *r);
uint64_t archive_reader_manifest_offset(const struct archive_reader *r);
/* Decrypts the manifest; *json is malloc'd and NUL-terminated. */
int archive_reader_manifest(struct archive_reader *r, char **json,
			    size_t *len, char *err, size_t errlen);
/*
 * Decrypts and decompresses stream index stored at [off, off + stored),
 * handing the content to sink (which may return a negative errno to
 * stop); fills hash and *size. Returns 0, -EBADMSG when the bytes were
 * changed or cut short (err says which chunk), or what sink returned.
 */
int archive_reader_stream(struct archive_reader *r, uint32_t index,
			  uint64_t off, uint64_t stored, archive_sink_fn sink,
			  void *ud, unsigned char hash[BK_HASH_BYTES],
			  uint64_t *size, char *err, size_t errlen);
void archive_reader_free(struct archive_reader *r);

/* --- retention.c ------------------------------------------------------------ */

enum {
	KEEP_LAST = 1 << 0,
	KEEP_HOURLY = 1 << 1,
	KEEP_DAILY = 1 << 2,
	KEEP_WEEKLY = 1 << 3,
	KEEP_MONTHLY = 1 << 4,
	KEEP_ALL = 1 << 5, /* every count is 0: nothing is removed */
};

/*
 * Decides which of n archives, created at times_ms (any order), rule r
 * keeps: reasons[i] gets the KEEP_* bits that keep archive i, 0 when it
 * goes. Times are bucketed in UTC; weeks are ISO 8601 weeks.
 */
void retention_apply(const struct cfg_retention *r, const int64_t *times_ms,
		     size_t n, unsigned *reasons);
/* "last,daily" for the bits of reason; out holds at least 64 bytes. */
void retention_reason_str(unsigned reason, char *out, size_t outlen);

/* --- repo.c ------------------------------------------------------------------ */

struct repo_archive {
	char *path;
	char *id;  /* from the file name */
	char *job; /* directory name */
	struct archive_header h;
	int damaged;   /* the header could not be read */
	char *error;   /* why, when damaged */
};

struct repo_list {
	struct repo_archive *a;
	size_t n;
};

/* Creates dir and its missing parents with mode (existing ones are left
 * as they are); the new ones' parents are fsync'd. Returns 0 or -errno. */
int repo_mkdirs(const char *dir, mode_t mode);
/* fsyncs the directory path. Returns 0 or -errno. */
int repo_fsync_dir(const char *path);
/* Writes all of p, retrying on EINTR and short writes. Returns 0 or -errno. */
int repo_write_all(int fd, const void *p, size_t n);

/* Takes the job directory's lock without waiting: returns the lock fd, or
 * -EBUSY when another process or thread holds it, or -errno. */
int repo_lock(const char *jobdir);
void repo_unlock(int fd);
/* Removes the leftovers of interrupted runs (".*.tmp" files and ".*.work"
 * trees) in jobdir. Call with the lock held. */
void repo_clean_stale(const char *jobdir);

/*
 * Scans the archives of repository repo: every job directory, or only
 * job's when job is not NULL. Appends to l sorted by job then creation
 * time. Archives whose header cannot be read are listed as damaged.
 * Returns 0 or -errno (a missing repository is an empty one).
 */
int repo_scan(const char *repo, const char *job, struct repo_list *l);
void repo_list_fini(struct repo_list *l);

/*
 * The repositories of cfg, each once: *out is a malloc'd array of
 * borrowed strings.
 */
size_t repo_all(const struct config *cfg, const char ***out);

/* Reads jobdir/.state.json (NULL when absent or unreadable). */
json_t *repo_state_load(const char *jobdir);
/* Writes st as jobdir/.state.json atomically. Returns 0 or -errno. */
int repo_state_save(const char *jobdir, json_t *st);

/* Deletes the tree at path (files, symlinks, directories). Best effort. */
void repo_rm_tree(const char *path);

/* --- run.c: what sources write into ------------------------------------------ */

struct run_ctx;

/*
 * Adds the content read from fd (a file or a pipe) as entry path (relative,
 * "<source>/...") with the metadata of st (NULL for a pipe). kind is one of
 * "file", "sqlite", "pgdump", "config". On success *entry (borrowed, owned
 * by the manifest) may be extended by the caller. Returns 0 or a negative
 * errno with the context's error set.
 */
int run_add_fd(struct run_ctx *c, const char *path, const char *kind, int fd,
	       const struct stat *st, json_t **entry);
/* Adds a directory or symlink entry (no content). */
int run_add_meta(struct run_ctx *c, const char *path, const struct stat *st,
		 const char *target);
/* Feeds bytes of a streamed entry (pg_dump output) begun with
 * run_stream_begin; run_stream_end closes it. */
int run_stream_begin(struct run_ctx *c, const char *path, const char *kind);
int run_stream_write(struct run_ctx *c, const void *p, size_t n);
int run_stream_end(struct run_ctx *c, json_t **entry);
/* Sets the context's error (printf-style) and returns rc. */
int run_fail(struct run_ctx *c, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Adds bytes to the progress total (estimates come in as they are known). */
void run_progress_total(struct run_ctx *c, uint64_t more);
/* Non-zero once the run should stop. */
int run_cancelled(const struct run_ctx *c);
/* Notes for the operator (warnings about skipped files, say). */
void run_note(struct run_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Whether st is a file the archive must never hold (the key, the
 * repository's own files). */
int run_is_excluded_object(const struct run_ctx *c, const struct stat *st);
/* The scratch directory of this run (inside the job directory). */
const char *run_workdir(const struct run_ctx *c);

/* --- sources ------------------------------------------------------------------ */

/* Snapshots the SQLite database of src into the archive as
 * "<name>/<basename>", recording its tables' row counts in info. */
int source_sqlite_backup(struct run_ctx *c, const struct cfg_backup_source *src,
			 json_t *info);
/*
 * Checks the SQLite database file db: PRAGMA integrity_check, row counts
 * against tables (an object table -> count; NULL = no comparison), and
 * each assertion. Returns 0 or -EBADMSG with the reason in err.
 */
int source_sqlite_check(const char *db, json_t *tables,
			const struct cfg_backup_verify *v, char *err,
			size_t errlen);
/* Dumps the PostgreSQL database of src with pg_dump -Fc into the archive
 * as "<name>/<db>.pgdump", with the row counts of every table taken in the
 * same snapshot. */
int source_pg_backup(struct run_ctx *c, const struct cfg_backup_source *src,
		     json_t *info);
/*
 * Restores the dump file into a scratch database created next to the
 * database of conninfo, compares the row counts with tables and runs the
 * assertions; drops the scratch database. Without conninfo only the dump's
 * table of contents is checked (pg_restore -l). Returns 0, -EBADMSG with
 * the reason in err, or another negative errno.
 */
int source_pg_check(const char *conninfo, const char *dump, json_t *tables,
		    const struct cfg_backup_verify *v, char *err,
		    size_t errlen);

/* Copies the trees of src into the archive under "<name>/...". */
int source_files_backup(struct run_ctx *c, const struct cfg_backup_source *src,
			json_t *info);
/* The bytes the trees of src hold (an estimate for progress). */
uint64_t source_files_estimate(const struct cfg_backup_source *src);

/* --- failpoints (tests only) --------------------------------------------------- */

/*
 * When the environment variable STOREKEEP_BACKUP_FAILPOINT names point,
 * writes "failpoint <point> reached" to stderr and waits to be killed: the
 * end-to-end tests SIGKILL a run at exact places this way. Without the
 * variable it does nothing.
 */
void backup_failpoint(const char *point);

/* --- misc -------------------------------------------------------------------- */

/* snprintf for messages, where cutting a long path short is fine. */
void bk_msg(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* snprintf for paths: returns 0, or -ENAMETOOLONG when it did not fit. */
int bk_path(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void bk_hex(const unsigned char *p, size_t n, char *out);
/* "2026-01-01T03:00:00Z" for t (Unix ms). */
void bk_fmt_time(int64_t ms, char out[32]);
/* Finds the job of cfg named name; NULL when none. */
const struct cfg_backup_job *bk_find_job(const struct config *cfg,
					 const char *name);
/* Checks that name is usable as a directory/path component. */
/* Compares row counts per table (want, from the manifest) with have.
 * Returns 0, or -EBADMSG with the first difference in err. */
int bk_counts_match(json_t *want, json_t *have, char *err, size_t errlen);
int bk_name_ok(const char *name);
/* Wall clock of o (the injected one, or the real one). */
int64_t bk_now_ms(const struct backup_opts *o);
/* Calls o->note with a formatted line, when set. */
void bk_note(const struct backup_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Spawns argv (argv[0] looked up in PATH) with stdin from /dev/null (or
 * the fd in_fd when >= 0), stdout to out_fd (-1: /dev/null) and stderr to
 * err_fd, adding the NULL-terminated extra environment entries env. Signal
 * dispositions and mask are reset. Returns the pid, or -errno. */
pid_t bk_spawn(char *const argv[], char *const env[], int in_fd, int out_fd,
	       int err_fd);
/* Reads what is left in fd (until EOF) into a string of at most max bytes
 * (the end is kept); returns a malloc'd string. */
char *bk_read_tail(int fd, size_t max);
/* Waits for pid; returns its exit status, or 128 + signal, or -errno. */
int bk_wait(pid_t pid);

#endif
