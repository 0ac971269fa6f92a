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

/*
 * monitor.alerts: plain data for monitor/alert_conf.c, which turns it into
 * alert rules and notifier channels (core does not link monitor, so
 * selectors and summary templates are checked there, not here). Enums
 * are indexes into the config_alert_*_names / config_notify_*_names
 * arrays below; the builder maps them by name, so their order need not
 * follow monitor's enums. `*_line` members are the lines of the keys
 * (the map's own line when a key was not written), for the builder's
 * errors.
 */
struct cfg_label {
	char *name;  /* Prometheus label name, not alertname or severity */
	char *value;
	int line;
};

struct cfg_alert_query {
	char *expr;	      /* selector text: metric{matchers} */
	int fn;		      /* config_alert_fn_names; default last */
	double q;	      /* quantile */
	double le;	      /* count_above */
	uint64_t horizon_ms;  /* predict_linear */
	uint64_t window_ms;   /* default 1m */
	int group;	      /* config_alert_group_names; default none */
	struct cfg_arg *by;
	size_t nby;
	int set;	      /* plus/over: the map was written */
	int line;	      /* of the map (plus/over) */
	int expr_line;
};

/* Which keys of a `defaults` entry were written (a bit each). */
enum {
	CFG_ALERT_SET_ENABLED = 1 << 0,
	CFG_ALERT_SET_THRESHOLD = 1 << 1,
	CFG_ALERT_SET_SEVERITY = 1 << 2,
	CFG_ALERT_SET_FOR = 1 << 3,
	CFG_ALERT_SET_KEEP_FIRING_FOR = 1 << 4,
	CFG_ALERT_SET_REPEAT = 1 << 5,
	CFG_ALERT_SET_LABELS = 1 << 6,
	CFG_ALERT_SET_SUMMARY = 1 << 7,
};

/* defaults.<BuiltInName>: only the keys written (see set) override. */
struct cfg_alert_default {
	char *name; /* the map's key; checked against the built-ins later */
	int enabled;
	double threshold;
	int severity;
	uint64_t for_ms;
	uint64_t keep_firing_for_ms;
	uint64_t repeat_ms;
	struct cfg_label *labels;
	size_t nlabels;
	char *summary;
	unsigned set; /* CFG_ALERT_SET_* */
	int line;
};

struct cfg_alert_rule {
	char *name;
	struct cfg_alert_query expr; /* the rule's own expr, function, ... */
	struct cfg_alert_query plus; /* plus.set 0: none */
	struct cfg_alert_query over; /* over.set 0: none */
	int op;			     /* config_alert_op_names */
	double threshold;
	uint64_t for_ms;
	uint64_t keep_firing_for_ms;
	uint64_t repeat_ms;
	int severity;		     /* config_alert_severity_names */
	struct cfg_label *labels;
	size_t nlabels;
	char *summary;
	int enabled;		     /* default 1 */
	int line;
	int summary_line;
};

struct cfg_slo_window {
	uint64_t long_ms;
	uint64_t short_ms;
	double factor;
	uint64_t for_ms;
	int severity;
	int line;
};

struct cfg_slo {
	char *name;
	char *route;
	double objective;    /* 0 < objective < 1 */
	uint64_t latency_ms; /* 0: latency not part of the objective */
	struct cfg_label *labels;
	size_t nlabels;
	struct cfg_slo_window *windows; /* none: the default pair */
	size_t nwindows;
	int line;
};

struct cfg_notifier {
	char *name;
	int type;	       /* config_notify_type_names */
	int format;	       /* config_notify_format_names; webhook */
	char *url;
	struct cfg_arg *headers; /* webhook: "Name: value" */
	size_t nheaders;
	char *ca_file;
	uint32_t resend_ms;    /* webhook alertmanager; default 1m */
	int min_severity;      /* config_alert_severity_names; default info */
	int send_resolved;     /* default 1 */
	uint32_t timeout_ms;   /* default 10s */
	uint32_t max_attempts; /* default 5 */
	uint32_t backoff_ms;   /* default 1s */
	uint32_t backoff_max_ms; /* default 5m */
	uint32_t queue;	       /* default 100 */
	int tls;	       /* config_notify_tls_names; email */
	char *username;	       /* email */
	char *password_file;   /* email; read by the builder */
	char *from;	       /* email */
	struct cfg_arg *to;    /* email */
	size_t nto;
	char *subject_prefix;  /* email */
	struct cfg_arg *command; /* command: argv, [0] absolute */
	size_t ncommand;
	int line;
	int password_file_line;
};

struct cfg_alerts {
	int enabled;		   /* default 1 */
	uint64_t interval_ms;	   /* default 5s */
	/* default "storekeep-alerts.json", relative to the config file's
	 * directory; a path the file wrote is already resolved as every
	 * T_FILE is (relative only when the config was loaded from a
	 * string whose name has a relative directory or none) */
	char *state_path;
	int state_path_set;	   /* the file wrote state_path */
	char *external_url;	   /* NULL: none */
	uint64_t resolved_keep_ms; /* default 15m */
	uint32_t max_inflight;	   /* default 4 */
	struct cfg_alert_default *defaults;
	size_t ndefaults;
	struct cfg_alert_rule *rules;
	size_t nrules;
	struct cfg_slo *slos;
	size_t nslos;
	struct cfg_notifier *notifiers;
	size_t nnotifiers;
	int line; /* of the alerts map; 0 when absent */
};

struct cfg_monitor {
	int request_metrics;	/* per-route metrics recorded; default 1 */
	struct cfg_history history;
	struct cfg_probe *probes;
	size_t nprobes;
	struct cfg_alerts alerts;
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
/* monitor.alerts enum names, NULL-terminated, in the order of the ints
 * stored in struct cfg_alert_* and struct cfg_notifier. */
extern const char *const config_alert_fn_names[];
extern const char *const config_alert_group_names[];
extern const char *const config_alert_op_names[];
extern const char *const config_alert_severity_names[];
extern const char *const config_notify_type_names[];
extern const char *const config_notify_format_names[];
extern const char *const config_notify_tls_names[];

/*
 * Reads a secret kept in a file (the admin token, a notifier's password):
 * a regular file that only its owner may read or write, at most max
 * bytes once one trailing newline (and CR) is dropped. O_NONBLOCK keeps
 * a FIFO from hanging the caller. Returns 0 with *out a malloc'd,
 * NUL-ended copy of *outlen bytes (free it with config_free_secret), or
 * a negative errno with why saying what to fix ("... run chmod 600
 * ..."). what names the secret in messages ("token", "password").
 */
int config_read_secret(const char *path, const char *what, size_t max,
		       char **out, size_t *outlen, char *why, size_t whylen);
/* Wipes and frees a secret. */
void config_free_secret(char *s, size_t len);
/* The admin token: a secret of 16 to 1024 visible characters. */
int config_read_token(const char *path, char **out, char *why,
		      size_t whylen);

/* A duration as the config file writes it ("500ms", "90s", "15m", "2h",
 * "1d") into milliseconds. Returns 0 or -EINVAL. */
int config_parse_duration(const char *s, uint64_t *ms);

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
