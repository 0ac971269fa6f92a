/*
 * config.h - the configuration snapshot.
 *
 * One YAML file is parsed (libyaml) into a struct config: typed, validated,
 * immutable once returned. Every setting is described once, in the schema
 * tables of config.c (name, type, bounds, default, whether reload may
 * change it, one line of documentation); validation errors and
 * docs/config.md are both generated from those tables, so they cannot
 * disagree.
 *
 * Errors name the file, the line and the key, and say what was expected:
 *
 *   storekeep.yaml:12: pools[0].health.interval: expected a duration
 *   such as 500ms, 2s or 1m, got "fast"
 *
 * Unknown keys are errors. Durations are stored in milliseconds, sizes in
 * bytes. Addresses are resolved at load time (numeric or via getaddrinfo).
 *
 * A struct config is reference-counted: the loader returns it with one
 * reference; config_ref/config_unref let requests in flight keep the
 * snapshot they started on across a reload.
 */
#ifndef SK_CORE_CONFIG_H
#define SK_CORE_CONFIG_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct cfg_addr {
	char *text; /* as written: "127.0.0.1:8080", "[::1]:80", "app1:8080" */
	struct sockaddr_storage sa;
	socklen_t salen;
};

struct cfg_backend {
	char *name;
	struct cfg_addr addr;
	uint32_t weight;    /* 1..1000, default 1 */
	uint32_t max_conns; /* 0 = the pool's max_conns */
	int backup;	    /* used only while no primary is eligible */
	int line;	    /* where it was declared, for messages */
};

struct cfg_health {
	int method;	      /* 0 GET, 1 HEAD, 2 OPTIONS */
	char *path;	      /* default "/healthz" */
	uint32_t interval_ms; /* default 2000 */
	uint32_t timeout_ms;  /* default 1000 */
	uint32_t rise;	      /* default 2 */
	uint32_t fall;	      /* default 3 */
	uint32_t status_min;  /* default 200 */
	uint32_t status_max;  /* default 399 */
	int enabled;	      /* default 1 */
};

/* Passive ejection: a backend that fails `failures` requests in a row
 * (connect errors, resets, timeouts, 5xx) is out for eject_ms, doubling
 * on each new ejection up to max_eject_ms. */
struct cfg_passive {
	uint32_t failures; /* 0 = off; default 5 */
	uint32_t eject_ms; /* default 10000 */
	uint32_t max_eject_ms; /* default 300000 */
};

/* Index order of these names is enum balance_algo's (proxy/balance.h). */
enum cfg_balance {
	CFG_BALANCE_ROUND_ROBIN = 0,
	CFG_BALANCE_LEAST_CONN,
	CFG_BALANCE_P2C_EWMA,
	CFG_BALANCE_HASH,
	CFG_BALANCE_STICKY,
};

enum cfg_hash_on {
	CFG_HASH_CLIENT_IP = 0,
	CFG_HASH_PATH,
	CFG_HASH_HEADER,
	CFG_HASH_COOKIE,
};

struct cfg_pool {
	char *name;
	struct cfg_backend *backends;
	size_t nbackends;
	struct cfg_health health;
	uint32_t keepalive_idle;       /* idle conns kept per backend per worker, default 32 */
	uint32_t keepalive_timeout_ms; /* default 30000 */
	int balance;		       /* enum cfg_balance */
	int hash_on;		       /* enum cfg_hash_on */
	char *hash_name;	       /* header or cookie name for hash_on */
	char *sticky_cookie;	       /* default "sk_backend" */
	uint32_t slow_start_ms;	       /* default 0 (off) */
	uint32_t max_conns;	       /* per backend; 0 = unlimited */
	uint32_t queue_size;	       /* waiting requests per worker; default 100 */
	uint32_t queue_timeout_ms;     /* default 5000 */
	struct cfg_passive passive;
	int line;
};

struct cfg_method {
	int method; /* index into the method names of config.c */
};

struct cfg_status {
	uint32_t status;
};

struct cfg_host {
	char *pattern; /* "shop.example.com" or "*.example.com", lower case */
};

struct cfg_retry {
	uint32_t attempts;	  /* retries after the first try; default 2 */
	struct cfg_method *methods; /* default GET HEAD OPTIONS PUT DELETE */
	size_t nmethods;
	int methods_set;	  /* the file listed methods */
	struct cfg_status *on_status; /* retry (idempotent only) on these */
	size_t non_status;
};

struct cfg_route_timeouts {
	uint32_t connect_ms;	      /* 0 = timeouts.connect */
	uint32_t backend_response_ms; /* 0 = timeouts.backend_response */
	uint32_t request_ms;	      /* 0 = timeouts.request */
};

struct cfg_idempotency {
	int enabled;	     /* default 0 */
	uint32_t ttl_ms;     /* default 24h */
	int on_inflight;     /* 0 wait, 1 reject (409) */
	uint32_t wait_ms;    /* longest wait for the first; default 30s */
	struct cfg_method *methods; /* default POST, PATCH */
	size_t nmethods;
	int methods_set;
};

struct cfg_idem_store {
	uint64_t max_bytes;	  /* default 64 MiB */
	uint64_t max_entry_bytes; /* default 1 MiB */
};

struct cfg_route {
	char *name;
	struct cfg_host *hosts; /* none = any host */
	size_t nhosts;
	char *path;		/* prefix; default "/" */
	char *pool;		/* required */
	size_t pool_index;	/* resolved at load */
	struct cfg_route_timeouts timeouts;
	struct cfg_retry retry;
	struct cfg_idempotency idempotency;
	int line;
};

/* --- monitoring (src/monitor) --- */

enum cfg_probe_type {
	CFG_PROBE_HTTP = 0,
	CFG_PROBE_TCP,
	CFG_PROBE_POSTGRESQL,
	CFG_PROBE_SQLITE,
	CFG_PROBE_NAGIOS,
};

struct cfg_arg {
	char *arg;
};

struct cfg_probe {
	char *name;
	int type;		/* enum cfg_probe_type */
	uint32_t interval_ms;	/* default 10000 */
	uint32_t timeout_ms;	/* default 5000; < interval */
	char *url;		/* http: "http://host:port/path" */
	uint32_t status_min;	/* http: default 200 */
	uint32_t status_max;	/* http: default 399 */
	char *body_contains;	/* http: optional */
	struct cfg_addr address; /* tcp */
	int has_address;
	char *conninfo;		/* postgresql */
	char *path;		/* sqlite: the database file */
	struct cfg_arg *command; /* nagios: argv, [0] the plugin */
	size_t ncommand;
	int line;
};

struct cfg_history {
	char *path;		  /* SQLite file; default "storekeep-history.db" */
	uint64_t minute_retention_ms; /* default 7d */
	uint64_t hour_retention_ms;   /* default 90d */
	uint64_t max_bytes;	  /* default 512 MiB */
};

struct cfg_monitor {
	int request_metrics;	/* per-route metrics recorded; default 1 */
	struct cfg_history history;
	struct cfg_probe *probes;
	size_t nprobes;
};

/* --- backups (src/backup) --- */

enum cfg_source_type {
	CFG_SRC_SQLITE = 0,
	CFG_SRC_POSTGRESQL,
	CFG_SRC_FILES,
};

struct cfg_path {
	char *path; /* absolute (relative ones resolved against the config) */
};

struct cfg_pattern {
	char *pattern; /* fnmatch(3) pattern */
};

struct cfg_backup_source {
	int type;		  /* enum cfg_source_type */
	char *name;		  /* unique in the job; default: the type */
	char *path;		  /* sqlite: the database file */
	char *conninfo;		  /* postgresql: libpq conninfo */
	struct cfg_path *paths;	  /* files: trees to copy */
	size_t npaths;
	struct cfg_pattern *exclude; /* files: patterns left out */
	size_t nexclude;
	int line;
};

struct cfg_retention {
	uint32_t keep_last;    /* default 7 */
	uint32_t keep_hourly;  /* default 0 */
	uint32_t keep_daily;   /* default 7 */
	uint32_t keep_weekly;  /* default 4 */
	uint32_t keep_monthly; /* default 6 */
};

struct cfg_sql {
	char *sql;
};

struct cfg_backup_verify {
	char *schedule;		     /* cron; NULL = no scheduled drill */
	struct cfg_sql *assertions;  /* each must return a true first column */
	size_t nassertions;
};

struct cfg_backup_job {
	char *name;
	char *schedule;	     /* cron expression; or */
	uint32_t interval_ms; /* an interval; one of the two is required */
	char *repository;    /* default: backup.repository */
	struct cfg_backup_source *sources;
	size_t nsources;
	struct cfg_retention retention;
	struct cfg_backup_verify verify;
	uint32_t rpo_ms;     /* alert when the newest verified backup is older; 0 = off */
	int line;
};

struct cfg_backup {
	char *key_file;	  /* required with backup */
	char *repository; /* default repository of the jobs */
	struct cfg_backup_job *jobs;
	size_t njobs;
	int enabled;
};

struct cfg_retry_budget {
	uint32_t percent;   /* retries at most this share of requests; default 20 */
	uint32_t window_ms; /* default 10000 */
	uint32_t min_retries; /* always allowed per window; default 10 */
};

struct cfg_access_log {
	char *path;	  /* "-" = stdout */
	int format;	  /* 0 json, 1 combined */
	int anonymize_ip; /* default 0 */
	uint32_t ipv4_prefix; /* default 24 */
	uint32_t ipv6_prefix; /* default 48 */
	int enabled;
};

struct cfg_limits {
	uint32_t header_bytes; /* whole request head; default 16 KiB -> 431 */
	uint32_t headers;      /* header count; default 100 -> 431 */
	uint32_t target_bytes; /* request target; default 8 KiB -> 414 */
	uint64_t body_bytes;   /* request body; default 64 MiB -> 413 */
	uint32_t client_conns; /* per worker; default 10000 */
};

struct cfg_timeouts {
	uint32_t client_header_ms;  /* default 10000 (slowloris) */
	uint32_t client_body_ms;    /* idle gap while reading a body; default 30000 */
	uint32_t keepalive_ms;	    /* client idle between requests; default 60000 */
	uint32_t connect_ms;	    /* backend connect; default 3000 */
	uint32_t backend_response_ms; /* backend first byte and idle gap; default 30000 */
	uint32_t shutdown_grace_ms; /* in-flight requests at exit; default 10000 */
	uint32_t request_ms;	    /* whole request, head to last byte; default 300000 */
};

struct cfg_admin {
	struct cfg_addr listen; /* default 127.0.0.1:9901; must be loopback */
	char *token_file;	/* required; must not be world-readable */
	char *audit_log;	/* JSON lines of admin actions; NULL = main log only */
	int enabled;		/* listen set */
};

struct cfg_log {
	int level;	/* enum log_level; default info */
	char *file;	/* NULL = stderr */
};

struct config {
	_Atomic unsigned refs;
	char *path;
	uint32_t workers; /* 0 = one per core (default) */
	struct cfg_log log;
	struct cfg_addr listen; /* default 127.0.0.1:8080 */
	struct cfg_admin admin;
	struct cfg_limits limits;
	struct cfg_timeouts timeouts;
	struct cfg_pool *pools;
	size_t npools;
	struct cfg_route *routes; /* none: everything goes to pools[0] */
	size_t nroutes;
	struct cfg_retry_budget retry_budget;
	struct cfg_access_log access_log;
	struct cfg_idem_store idempotency;
	struct cfg_backup backup;
	struct cfg_monitor monitor;
};

/* Method names in the order of struct cfg_method's index. */
extern const char *const config_method_names[];

/*
 * Parses and validates path. On success returns 0 and *out holds a
 * snapshot with one reference. On failure returns -1 and err holds one
 * line "file:line: key: what was expected" (no trailing newline); *out is
 * untouched.
 */
int config_load(const char *path, struct config **out, char *err,
		size_t errlen);
/* Same, from a string; name is used in messages in place of a file name. */
int config_load_string(const char *yaml, const char *name,
		       struct config **out, char *err, size_t errlen);
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* Writes the Markdown reference of every key (docs/config.md) to f. */
void config_write_reference(FILE *f);

#endif
