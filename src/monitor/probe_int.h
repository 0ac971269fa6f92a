/*
 * probe_int.h - shared by probe.c (scheduling, results, http, tcp),
 * probe_exec.c (nagios) and probe_db.c (postgresql, sqlite).
 *
 * A probe owns at most one run (struct prun) at a time. A run reports its
 * result once (prun_finish) and lives on until every handle and request
 * it started has come back (prun_hold/prun_release count them); only
 * then may the probe start another. The timeout is the run's deadline
 * timer: it calls the type's abort hook, which cuts the run short (close
 * the socket, kill the plugin, cancel or abandon the pool work), and
 * reports critical.
 *
 * Everything here runs on the control loop, except the *_work functions
 * of probe_db.c, which run in pool threads on data the loop does not
 * touch until their after-work callback.
 */
#ifndef SK_MONITOR_PROBE_INT_H
#define SK_MONITOR_PROBE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <netdb.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "http/http.h"
#include "monitor/probe.h"

#define PROBE_HTTP_BODY_MAX (1024 * 1024) /* body bytes searched */
#define PROBE_HTTP_HEADERS 100
#define PROBE_EXEC_OUT_MAX 65536	  /* plugin stdout kept */
#define PROBE_EXEC_ERR_MAX 4096		  /* plugin stderr kept */
#define PROBE_PG_DBS_MAX 256		  /* databases sized per run */
#define PROBE_PERF_SERIES_MAX 128	  /* perf series per probe */

enum { RUNS_OK, RUNS_WARNING, RUNS_CRITICAL, RUNS_UNKNOWN, RUNS_SKIPPED,
       RUNS_N };

struct probe;
struct prun;

/* --- what the pool threads gather ------------------------------------- */

struct pg_db_size {
	char name[64];
	double bytes;
};

struct pg_stats {
	bool connected;
	char version[32];
	bool is_replica;
	bool have_conn; /* connections, max, oldest query/xact */
	double connections, max_connections;
	double oldest_query_s, oldest_xact_s;
	bool have_repl;
	double replicas; /* standbys connected (primary) */
	double lag_bytes, lag_seconds;
	bool have_db; /* blocks, deadlocks */
	double blks_hit, blks_read, deadlocks;
	struct pg_db_size *dbs;
	size_t ndbs;
};

struct sqlite_stats {
	bool have_file;
	double file_bytes, wal_bytes;
	bool checked; /* quick_check ran to the end */
	bool check_ok;
};

/* A pool-thread run: inputs copied on the loop, outputs written by the
 * thread, read back on the loop in the after-work callback. */
struct work_run {
	uv_work_t req;
	uint64_t deadline_ns; /* clock_mono_ns() */
	uint32_t timeout_ms;
	char *target; /* conninfo or path (copied) */
	int state;    /* enum probe_state */
	char msg[512];
	struct pg_stats pg;
	struct sqlite_stats sq;
};

struct http_run {
	uv_getaddrinfo_t gai;
	struct addrinfo *ai;	 /* resolved addresses, tried in order */
	struct addrinfo *ai_next; /* the next one to try */
	bool retry;		 /* connect to ai_next once closed */
	uv_tcp_t tcp;
	uv_connect_t conn;
	uv_write_t wr;
	struct buf req;
	struct buf in;	 /* head and raw body as received */
	struct buf body; /* decoded body (chunked), up to the cap */
	struct http_parser parser;
	struct http_msg msg;
	struct http_header hdrs[PROBE_HTTP_HEADERS];
	struct http_chunked chunked;
	size_t body_seen; /* decoded bytes seen, kept or not */
	size_t fed;	  /* raw body bytes given to the chunked decoder */
	bool head_done;
	bool truncated;
	const char *phase; /* for a timeout's message */
	bool tcp_open;
};

struct exec_run {
	uv_process_t proc;
	uv_pipe_t out;
	uv_pipe_t err;
	struct buf obuf;
	struct buf ebuf;
	bool out_open, err_open;
	bool out_eof, err_eof;
	bool exited;
	bool killed; /* by our timeout */
	int64_t exit_status;
	int term_signal;
	int pid;
};

struct prun {
	struct probe *p;
	uint64_t start_ns;
	bool done; /* result reported */
	int pending;
	uv_timer_t deadline;
	union {
		struct http_run http;
		struct exec_run exec;
		struct work_run work;
	} u;
};

struct probe_kind {
	const char *name;
	/* Starts r (its deadline already runs). Reports its result with
	 * prun_finish, now or later. */
	void (*start)(struct prun *r);
	/* The deadline passed, or the probe stops: cut r short. The caller
	 * reports the result. Appends what the run was doing to why. */
	void (*abort)(struct prun *r, struct buf *why);
	/* The probe is being removed: set its type's gauges to NaN. */
	void (*clear)(struct probe *p);
};

/* A probe: a copy of its config, its schedule, its last result and its
 * metric handles. */
struct probe {
	struct probe *next;
	struct probes *owner;
	const struct probe_kind *kind;

	char *name;
	int type; /* enum cfg_probe_type */
	uint32_t interval_ms, timeout_ms;
	/* http */
	char *url, *body_contains;
	uint32_t status_min, status_max;
	char *host, *host_hdr, *target;
	uint16_t port;
	char *url_error; /* set when url does not parse */
	/* tcp */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	char *addr_text;
	/* postgresql, sqlite */
	char *conninfo, *path;
	/* nagios */
	char **argv; /* NULL-terminated */
	size_t argc;

	uv_timer_t timer;
	struct prun *run;
	bool removed;
	bool stopping_cb; /* counted in owner->closing */

	/* the last result */
	bool ran;
	int state;
	char *message;
	uint64_t last_wall_ms;
	double duration_s;
	uint64_t runs[RUNS_N];
	json_t *details;

	/* metrics */
	struct metrics_gauge m_up, m_state, m_duration;
	struct metrics_counter m_runs[RUNS_N];
	struct metrics_gauge m_http_status;
	struct metrics_gauge m_pg[10];
	struct metrics_counter m_pg_c[3];
	struct pg_db_gauge {
		char *name;
		struct metrics_gauge g;
	} *m_pg_db;
	size_t nm_pg_db;
	struct metrics_gauge m_sq[3];
	struct perf_gauge {
		char *label, *uom;
		struct metrics_gauge g;
	} *m_perf;
	size_t nm_perf;
	bool perf_full_logged;
};

struct probes {
	uv_loop_t *loop;
	struct metrics *reg;
	unsigned shard;
	struct probe *head; /* live probes, in config order */
	unsigned closing;   /* removed probes not yet freed */
	bool stopping;
	void (*done)(void *ud);
	void *done_ud;
};

/* --- probe.c ------------------------------------------------------------ */

void prun_hold(struct prun *r);
void prun_release(struct prun *r);
/* Reports the result of r (once; later calls are ignored). details: a
 * JSON object for probes_status_json (reference taken), or NULL. */
void prun_finish(struct prun *r, enum probe_state st, json_t *details,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Registers (once) and returns a gauge {probe=<name>} plus the extra
 * label, if extra_name is not NULL. A failed registration is logged and
 * gives the zeroed handle. */
struct metrics_gauge probe_gauge(struct probe *p, const char *name,
				 const char *help, const char *extra_name,
				 const char *extra_value);
struct metrics_counter probe_counter(struct probe *p, const char *name,
				     const char *help);
/* Sets g on the probes' shard. */
void probe_set(struct probe *p, struct metrics_gauge g, double v);
/* A libuv (negative) or errno (positive) code as text. */
const char *probe_strerror(int r);

/* --- probe_exec.c -------------------------------------------------------- */

extern const struct probe_kind probe_kind_nagios;

/* --- probe_db.c ----------------------------------------------------------- */

extern const struct probe_kind probe_kind_postgresql;
extern const struct probe_kind probe_kind_sqlite;

#endif
