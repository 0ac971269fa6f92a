/*
 * config.c - the YAML configuration loader and its schema (see config.h).
 *
 * Every setting is one row of a schema table: key, type, bounds, default as
 * it would be written in the file, whether a reload may change it, and one
 * line of documentation. A section (one YAML map) is a table of such rows;
 * a row of type map or list-of-maps points at the section of its children.
 * Three generic walkers use the tables and nothing else:
 *
 *   - the loader pulls libyaml events and matches them against the tables:
 *     it applies the defaults, parses and bounds-checks each scalar,
 *     recurses into maps and lists, and when a map is complete runs its
 *     section's cross-field check (health timeout < interval, unique names,
 *     the admin address and token file);
 *   - the destructor frees every string, address and list the tables name,
 *     so a half-built snapshot on an error path is freed like a whole one;
 *   - the reference writer prints docs/config.md.
 *
 * What it deliberately does not do: YAML anchors, aliases, tags or more
 * than one document per file (each is an error, not a feature to half
 * support), repair of bad input, or any I/O besides reading the file, the
 * admin token file and resolving addresses. The first error ends the load;
 * it is one line "file:line: key.path: message".
 *
 * Invariants: an object under construction is always freeable (zeroed,
 * then filled; a list's count grows only after its new element is zeroed);
 * every default in the tables parses and lies within its bounds (asserted
 * each time it is applied, so any test run catches a bad table).
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "core/cron.h"
#include "core/log.h"

/* A configuration file larger than this is a mistake, not a config. */
#define CONFIG_FILE_MAX (4u << 20)
/* Admin token: at least this many visible characters, at most TOKEN_MAX. */
#define TOKEN_MIN 16
#define TOKEN_MAX 1024
/* Most keys in one section (the duplicate-key check uses a bit per key). */
#define SECTION_MAX_FIELDS 24

#define MS_SECOND 1000ull
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)
#define KIB 1024ull
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define TIB (1024 * GIB)

/* ------------------------------------------------------------------ */
/* Schema                                                              */
/* ------------------------------------------------------------------ */

enum ftype {
	T_INT,	    /* unsigned decimal into uint32_t or uint64_t */
	T_BOOL,	    /* true/false, yes/no, on/off into int */
	T_DURATION, /* "500ms", "2s", "1m", "1h", "1d" into uint32_t ms */
	T_SIZE,	    /* "512", "16k", "16KiB", "10m" into uint32_t/uint64_t */
	T_ENUM,	    /* one of names[], its index into int */
	T_NAME,	    /* char *: [A-Za-z0-9_.-], length min..max */
	T_URLPATH,  /* char *: "/...", visible ASCII only, length min..max */
	T_FILE,	    /* char *: relative to the config file's directory */
	T_ADDR,	    /* struct cfg_addr, resolved at load */
	T_TOKEN,    /* char *: an HTTP token (header or cookie name) */
	T_HOST,	    /* char *: host name or "*.suffix", stored lower case */
	T_STR,	    /* char *: printable text, length min..max */
	T_CRON,	    /* char *: a cron expression (core/cron.h) */
	T_MAP,	    /* embedded struct described by sub */
	T_LIST,	    /* array of structs described by sub, count at aux */
	T_FLOAT,    /* decimal number into double, fmin..fmax */
	/* a map whose keys name its entries: stored as T_LIST is; the key
	 * goes into the entry's fields[0], the value into fields[1] (sub
	 * scalar) or, as a map, into the other fields (sub keyed) */
	T_DICT,
};

#define F_RELOAD 0x1   /* a reload may change it */
#define F_REQUIRED 0x2 /* no default: the file must say it */
#define F_OPTIONAL 0x4 /* T_MAP: absent means off; int at sub-struct + aux */

struct loader;
struct mapinfo;

struct field {
	const char *name;
	enum ftype type;
	unsigned flags;
	size_t off;	    /* of the member in the enclosing struct */
	size_t size;	    /* sizeof that member */
	uint64_t min, max;  /* values; string lengths; list entries */
	const char *def;    /* default as written in a file, or NULL */
	const char *doc;    /* one line for the reference */
	const struct section *sub;  /* T_MAP, T_LIST, T_DICT */
	const char *const *names;   /* T_ENUM, NULL-terminated */
	size_t aux;	    /* T_LIST, T_DICT: count offset; T_MAP+F_OPTIONAL: flag */
	double fmin, fmax;  /* T_FLOAT bounds, inclusive */
};

/* Runs once a map is complete; returns 0 or -1 after calling fail(). */
typedef int (*section_check_fn)(struct loader *l, void *obj,
				const struct mapinfo *mi);

struct section {
	const char *doc;	  /* a sentence or two for the reference */
	int scalar;		  /* list entries are scalars for fields[0] */
	int keyed;		  /* T_DICT entries: fields[0] is the key */
	const char *noun;	  /* list entries: "pool" -> "at most 1 pool" */
	const struct field *fields;
	size_t nfields;
	size_t size;		  /* sizeof one element, for lists */
	size_t line_off;	  /* int that gets the map's line, or NO_LINE */
	section_check_fn check;
};

#define NO_LINE ((size_t)-1)
#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))
/* The three things every row says about its member. */
#define AT(key, st, member)                                                   \
	.name = key, .off = offsetof(st, member),                              \
	.size = sizeof(((st *)0)->member)

/*
 * A list of plain values (`hosts: [a, b]`): a section of one field, the
 * value itself, in a struct of its own. SCALAR_LIST(name, key, struct
 * type, member, field doc, section doc, noun, field attributes...)
 * defines name_fields and name_section.
 */
#define SCALAR_LIST(name, key, type, member, fdoc, doc_, noun_, ...)          \
	static const struct field name##_fields[] = {                          \
		{AT(key, type, member), .doc = fdoc, __VA_ARGS__},             \
	};                                                                     \
	static const struct section name##_section = {                         \
		.doc = doc_,                                                   \
		.scalar = 1,                                                   \
		.noun = noun_,                                                 \
		.fields = name##_fields,                                       \
		.nfields = NFIELDS(name##_fields),                             \
		.size = sizeof(type),                                          \
		.line_off = NO_LINE,                                           \
	}

static const struct section root_section;

/* Filled in by the loader for one map; the cross-field checks use it to
 * point their errors at the right line. */
struct mapinfo {
	const struct section *sec;
	int line;			  /* of the map itself */
	int lines[SECTION_MAX_FIELDS];	  /* of each key written, else 0 */
};

static int check_root(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_admin(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_pool(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_health(struct loader *l, void *obj,
			const struct mapinfo *mi);
static int check_route(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_retry(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_idem(struct loader *l, void *obj, const struct mapinfo *mi);

const char *const config_method_names[] = {
	"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE",
	NULL,
};
static const char *const balance_names[] = {
	"round_robin", "least_conn", "p2c_ewma", "hash", "sticky", NULL,
};
static const char *const hash_on_names[] = {
	"client_ip", "path", "header", "cookie", NULL,
};
static const char *const access_format_names[] = {"json", "combined", NULL};
static const char *const check_method_names[] = {"GET", "HEAD", "OPTIONS",
						 NULL};

static const char *const log_level_names[] = {"error", "warn", "info",
					      "debug", NULL};
_Static_assert(LOG_ERROR == 0 && LOG_WARN == 1 && LOG_INFO == 2 &&
		       LOG_DEBUG == 3,
	       "log_level_names[] is indexed by enum log_level");

static const struct field log_fields[] = {
	{AT("level", struct cfg_log, level), .type = T_ENUM,
	 .names = log_level_names, .def = "info", .flags = F_RELOAD,
	 .doc = "least severe level that is written"},
	{AT("file", struct cfg_log, file), .type = T_FILE, .min = 1,
	 .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "file the log is appended to; absent: standard error"},
};

static const struct section log_section = {
	.doc = "Where the daemon logs (logfmt, one line per event) and how much.",
	.fields = log_fields,
	.nfields = NFIELDS(log_fields),
	.line_off = NO_LINE,
};

static const struct field admin_fields[] = {
	{AT("listen", struct cfg_admin, listen), .type = T_ADDR,
	 .def = "127.0.0.1:9901",
	 .doc = "address of the admin API; must be a loopback address "
		"(127.0.0.0/8 or ::1)"},
	{AT("token_file", struct cfg_admin, token_file), .type = T_FILE,
	 .min = 1, .max = PATH_MAX - 1, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "file holding the API token (at least 16 visible characters); "
		"must not be readable or writable by group or others"},
	{AT("audit_log", struct cfg_admin, audit_log), .type = T_FILE,
	 .min = 1, .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "file that gets one JSON line per admin action (who, what, "
		"result); every action is also in the main log"},
};

static const struct section admin_section = {
	.doc = "The admin API. Without this map there is no admin listener.",
	.fields = admin_fields,
	.nfields = NFIELDS(admin_fields),
	.line_off = NO_LINE,
	.check = check_admin,
};

static const struct field limits_fields[] = {
	{AT("header_bytes", struct cfg_limits, header_bytes), .type = T_SIZE,
	 .min = KIB, .max = MIB, .def = "16k",
	 .doc = "largest request head (request line and headers); larger "
		"gets 431"},
	{AT("headers", struct cfg_limits, headers), .type = T_INT, .min = 8,
	 .max = 1000, .def = "100",
	 .doc = "most header fields in one request; more gets 431"},
	{AT("target_bytes", struct cfg_limits, target_bytes), .type = T_SIZE,
	 .min = 256, .max = 64 * KIB, .def = "8k",
	 .doc = "longest request target (path and query); longer gets 414"},
	{AT("body_bytes", struct cfg_limits, body_bytes), .type = T_SIZE,
	 .min = 0, .max = TIB, .def = "64m", .flags = F_RELOAD,
	 .doc = "largest request body; larger gets 413; 0 refuses every "
		"request that has a body"},
	{AT("client_conns", struct cfg_limits, client_conns), .type = T_INT,
	 .min = 1, .max = 1000000, .def = "10000",
	 .doc = "most open client connections per worker thread"},
};

static const struct section limits_section = {
	.doc = "Hard limits on what one client may send.",
	.fields = limits_fields,
	.nfields = NFIELDS(limits_fields),
	.line_off = NO_LINE,
};

static const struct field timeouts_fields[] = {
	{AT("client_header", struct cfg_timeouts, client_header_ms),
	 .type = T_DURATION, .min = 1, .max = MS_DAY, .def = "10s",
	 .flags = F_RELOAD,
	 .doc = "time a client has to send a whole request head, the first one counted from the connection's start (slowloris)"},
	{AT("client_body", struct cfg_timeouts, client_body_ms),
	 .type = T_DURATION, .min = 1, .max = MS_DAY, .def = "30s",
	 .flags = F_RELOAD,
	 .doc = "longest idle gap while a request body is read"},
	{AT("keepalive", struct cfg_timeouts, keepalive_ms),
	 .type = T_DURATION, .min = 1, .max = MS_DAY, .def = "60s",
	 .flags = F_RELOAD,
	 .doc = "how long an idle client connection is kept between requests"},
	{AT("connect", struct cfg_timeouts, connect_ms), .type = T_DURATION,
	 .min = 1, .max = MS_DAY, .def = "3s", .flags = F_RELOAD,
	 .doc = "time to open a connection to a backend"},
	{AT("backend_response", struct cfg_timeouts, backend_response_ms),
	 .type = T_DURATION, .min = 1, .max = MS_DAY, .def = "30s",
	 .flags = F_RELOAD,
	 .doc = "time to the first byte of a backend response, and longest "
		"idle gap after it (not counted while the client reads "
		"slower than the backend sends)"},
	{AT("shutdown_grace", struct cfg_timeouts, shutdown_grace_ms),
	 .type = T_DURATION, .min = 0, .max = MS_HOUR, .def = "10s",
	 .flags = F_RELOAD,
	 .doc = "how long requests in flight may run on at shutdown; 0s "
		"closes them at once"},
	{AT("request", struct cfg_timeouts, request_ms), .type = T_DURATION,
	 .min = 1, .max = MS_DAY, .def = "5m", .flags = F_RELOAD,
	 .doc = "a whole request, from its first byte to the last byte of "
		"the response; over it: 504, or the connection is cut"},
};

static const struct section timeouts_section = {
	.doc = "Every wait has a limit.",
	.fields = timeouts_fields,
	.nfields = NFIELDS(timeouts_fields),
	.line_off = NO_LINE,
};

static const struct field health_fields[] = {
	{AT("enabled", struct cfg_health, enabled), .type = T_BOOL,
	 .def = "true", .flags = F_RELOAD,
	 .doc = "whether backends are checked actively"},
	{AT("method", struct cfg_health, method), .type = T_ENUM,
	 .names = check_method_names, .def = "GET", .flags = F_RELOAD,
	 .doc = "request method of the check"},
	{AT("path", struct cfg_health, path), .type = T_URLPATH, .min = 1,
	 .max = 1024, .def = "/healthz", .flags = F_RELOAD,
	 .doc = "request target of the check, starting with `/`"},
	{AT("interval", struct cfg_health, interval_ms), .type = T_DURATION,
	 .min = 10, .max = MS_HOUR, .def = "2s", .flags = F_RELOAD,
	 .doc = "time between two checks of one backend"},
	{AT("timeout", struct cfg_health, timeout_ms), .type = T_DURATION,
	 .min = 1, .max = MS_HOUR, .def = "1s", .flags = F_RELOAD,
	 .doc = "time one check may take; must be shorter than interval"},
	{AT("rise", struct cfg_health, rise), .type = T_INT, .min = 1,
	 .max = 100, .def = "2", .flags = F_RELOAD,
	 .doc = "consecutive successes that mark a down backend up"},
	{AT("fall", struct cfg_health, fall), .type = T_INT, .min = 1,
	 .max = 100, .def = "3", .flags = F_RELOAD,
	 .doc = "consecutive failures that mark an up backend down"},
	{AT("status_min", struct cfg_health, status_min), .type = T_INT,
	 .min = 100, .max = 599, .def = "200", .flags = F_RELOAD,
	 .doc = "lowest response status that passes"},
	{AT("status_max", struct cfg_health, status_max), .type = T_INT,
	 .min = 100, .max = 599, .def = "399", .flags = F_RELOAD,
	 .doc = "highest response status that passes"},
};

static const struct section health_section = {
	.doc = "Active health checks of the backends of one pool.",
	.fields = health_fields,
	.nfields = NFIELDS(health_fields),
	.line_off = NO_LINE,
	.check = check_health,
};

static const struct field passive_fields[] = {
	{AT("failures", struct cfg_passive, failures), .type = T_INT,
	 .min = 0, .max = 1000, .def = "5", .flags = F_RELOAD,
	 .doc = "consecutive failed requests (connect errors, resets, "
		"timeouts, 5xx) that take a backend out; 0 turns passive "
		"ejection off"},
	{AT("eject", struct cfg_passive, eject_ms), .type = T_DURATION,
	 .min = 1, .max = MS_DAY, .def = "10s", .flags = F_RELOAD,
	 .doc = "how long a first ejection lasts; each new one in a row "
		"doubles it"},
	{AT("max_eject", struct cfg_passive, max_eject_ms),
	 .type = T_DURATION, .min = 1, .max = MS_DAY, .def = "5m",
	 .flags = F_RELOAD, .doc = "the longest an ejection lasts"},
};

static const struct section passive_section = {
	.doc = "Passive ejection: backends that fail real requests are taken "
	       "out without waiting for the health checks.",
	.fields = passive_fields,
	.nfields = NFIELDS(passive_fields),
	.line_off = NO_LINE,
};

static const struct field backend_fields[] = {
	{AT("name", struct cfg_backend, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "backend name, unique in its pool"},
	{AT("address", struct cfg_backend, addr), .type = T_ADDR,
	 .flags = F_REQUIRED | F_RELOAD,
	 .doc = "where the backend listens; a host name is resolved when the "
		"file is loaded"},
	{AT("weight", struct cfg_backend, weight), .type = T_INT, .min = 1,
	 .max = 1000, .def = "1", .flags = F_RELOAD,
	 .doc = "share of the pool's traffic, relative to the other backends"},
	{AT("max_conns", struct cfg_backend, max_conns), .type = T_INT,
	 .min = 0, .max = 1000000, .def = "0", .flags = F_RELOAD,
	 .doc = "requests in flight on this backend per worker; 0 takes the "
		"pool's max_conns"},
	{AT("backup", struct cfg_backend, backup), .type = T_BOOL,
	 .def = "false", .flags = F_RELOAD,
	 .doc = "a backup gets traffic only while no primary backend can "
		"take it"},
};

static const struct section backend_section = {
	.doc = "The servers of one pool.",
	.noun = "backend",
	.fields = backend_fields,
	.nfields = NFIELDS(backend_fields),
	.size = sizeof(struct cfg_backend),
	.line_off = offsetof(struct cfg_backend, line),
};

static const struct field pool_fields[] = {
	{AT("name", struct cfg_pool, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "pool name, unique; used in logs, metrics and the admin API"},
	{AT("keepalive_idle", struct cfg_pool, keepalive_idle), .type = T_INT,
	 .min = 0, .max = 10000, .def = "32", .flags = F_RELOAD,
	 .doc = "idle connections kept per backend and worker; 0 closes each "
		"after its response"},
	{AT("keepalive_timeout", struct cfg_pool, keepalive_timeout_ms),
	 .type = T_DURATION, .min = 1, .max = MS_DAY, .def = "30s",
	 .flags = F_RELOAD,
	 .doc = "how long an idle backend connection is kept"},
	{AT("balance", struct cfg_pool, balance), .type = T_ENUM,
	 .names = balance_names, .def = "round_robin", .flags = F_RELOAD,
	 .doc = "how a backend is chosen: smooth weighted round robin, "
		"fewest requests in flight, power of two choices on latency, "
		"consistent hash of hash_on, or a sticky cookie"},
	{AT("hash_on", struct cfg_pool, hash_on), .type = T_ENUM,
	 .names = hash_on_names, .def = "client_ip", .flags = F_RELOAD,
	 .doc = "what balance: hash hashes; header and cookie need "
		"hash_name"},
	{AT("hash_name", struct cfg_pool, hash_name), .type = T_TOKEN,
	 .min = 1, .max = 128, .flags = F_RELOAD,
	 .doc = "the header or cookie hashed by hash_on: header or cookie"},
	{AT("sticky_cookie", struct cfg_pool, sticky_cookie), .type = T_TOKEN,
	 .min = 1, .max = 128, .def = "sk_backend", .flags = F_RELOAD,
	 .doc = "cookie that pins a client to a backend with balance: "
		"sticky"},
	{AT("slow_start", struct cfg_pool, slow_start_ms), .type = T_DURATION,
	 .min = 0, .max = MS_HOUR, .def = "0s", .flags = F_RELOAD,
	 .doc = "a backend that comes back ramps its weight up from 0 over "
		"this time; 0s: at once"},
	{AT("max_conns", struct cfg_pool, max_conns), .type = T_INT, .min = 0,
	 .max = 1000000, .def = "0", .flags = F_RELOAD,
	 .doc = "requests in flight per backend and worker; over it, "
		"requests queue; 0: no limit"},
	{AT("queue_size", struct cfg_pool, queue_size), .type = T_INT,
	 .min = 0, .max = 1000000, .def = "100", .flags = F_RELOAD,
	 .doc = "requests that may wait for a free backend per worker; a "
		"full queue answers 503 with Retry-After"},
	{AT("queue_timeout", struct cfg_pool, queue_timeout_ms),
	 .type = T_DURATION, .min = 1, .max = MS_HOUR, .def = "5s",
	 .flags = F_RELOAD,
	 .doc = "longest wait in the queue, then 503 with Retry-After"},
	{AT("passive", struct cfg_pool, passive), .type = T_MAP,
	 .sub = &passive_section, .doc = "passive ejection"},
	{AT("health", struct cfg_pool, health), .type = T_MAP,
	 .sub = &health_section, .doc = "active health checks"},
	{AT("backends", struct cfg_pool, backends), .type = T_LIST, .min = 1,
	 .max = 1000, .aux = offsetof(struct cfg_pool, nbackends),
	 .sub = &backend_section, .flags = F_REQUIRED,
	 .doc = "the servers that share the pool's traffic"},
};

static const struct section pool_section = {
	.doc = "A pool is a set of interchangeable backends.",
	.noun = "pool",
	.fields = pool_fields,
	.nfields = NFIELDS(pool_fields),
	.size = sizeof(struct cfg_pool),
	.line_off = offsetof(struct cfg_pool, line),
	.check = check_pool,
};

SCALAR_LIST(host, "host", struct cfg_host, pattern, "host",
	    "host patterns", "host",
	    .type = T_HOST, .min = 1, .max = 253);

SCALAR_LIST(method, "method", struct cfg_method, method, "method",
	    "methods", "method",
	    .type = T_ENUM, .names = config_method_names);

SCALAR_LIST(status, "status", struct cfg_status, status, "status",
	    "statuses", "status",
	    .type = T_INT, .min = 500, .max = 599);

static const struct field retry_fields[] = {
	{AT("attempts", struct cfg_retry, attempts), .type = T_INT, .min = 0,
	 .max = 10, .def = "2", .flags = F_RELOAD,
	 .doc = "retries after the first try, each on another backend"},
	{AT("methods", struct cfg_retry, methods), .type = T_LIST, .min = 0,
	 .max = 8, .aux = offsetof(struct cfg_retry, nmethods),
	 .sub = &method_section, .flags = F_RELOAD,
	 .def = "[GET, HEAD, OPTIONS, PUT, DELETE]",
	 .doc = "methods retried after a failure that may have reached the "
		"backend (reset before a response, on_status); any request "
		"is retried when it could not reach one"},
	{AT("on_status", struct cfg_retry, on_status), .type = T_LIST,
	 .min = 0, .max = 16, .aux = offsetof(struct cfg_retry, non_status),
	 .sub = &status_section, .flags = F_RELOAD, .def = "[]",
	 .doc = "response statuses (500..599) after which a request of "
		"methods is retried, e.g. [502, 503]"},
};

static const struct section retry_section = {
	.doc = "When a request is tried again on another backend.",
	.fields = retry_fields,
	.nfields = NFIELDS(retry_fields),
	.line_off = NO_LINE,
	.check = check_retry,
};

static const struct field route_timeouts_fields[] = {
	{AT("connect", struct cfg_route_timeouts, connect_ms),
	 .type = T_DURATION, .min = 0, .max = MS_DAY, .def = "0s",
	 .flags = F_RELOAD, .doc = "0s: timeouts.connect"},
	{AT("backend_response", struct cfg_route_timeouts, backend_response_ms),
	 .type = T_DURATION, .min = 0, .max = MS_DAY, .def = "0s",
	 .flags = F_RELOAD, .doc = "0s: timeouts.backend_response"},
	{AT("request", struct cfg_route_timeouts, request_ms),
	 .type = T_DURATION, .min = 0, .max = MS_DAY, .def = "0s",
	 .flags = F_RELOAD, .doc = "0s: timeouts.request"},
};

static const struct section route_timeouts_section = {
	.doc = "Timeouts of one route; 0s takes the global value.",
	.fields = route_timeouts_fields,
	.nfields = NFIELDS(route_timeouts_fields),
	.line_off = NO_LINE,
};

static const char *const inflight_names[] = {"wait", "reject", NULL};

static const struct field idem_fields[] = {
	{AT("enabled", struct cfg_idempotency, enabled), .type = T_BOOL,
	 .def = "false", .flags = F_RELOAD,
	 .doc = "answer a repeated Idempotency-Key with the first response "
		"instead of forwarding it again"},
	{AT("ttl", struct cfg_idempotency, ttl_ms), .type = T_DURATION,
	 .min = 1000, .max = 7 * MS_DAY, .def = "24h", .flags = F_RELOAD,
	 .doc = "how long a key and its response are remembered"},
	{AT("on_inflight", struct cfg_idempotency, on_inflight),
	 .type = T_ENUM, .names = inflight_names, .def = "wait",
	 .flags = F_RELOAD,
	 .doc = "a repeat that arrives while the first is in flight waits for "
		"its response, or gets 409"},
	{AT("wait", struct cfg_idempotency, wait_ms), .type = T_DURATION,
	 .min = 1, .max = MS_HOUR, .def = "30s", .flags = F_RELOAD,
	 .doc = "longest wait for the first response; then 409"},
	{AT("methods", struct cfg_idempotency, methods), .type = T_LIST,
	 .min = 0, .max = 8, .aux = offsetof(struct cfg_idempotency, nmethods),
	 .sub = &method_section, .flags = F_RELOAD,
	 .def = "[POST, PATCH]",
	 .doc = "methods whose Idempotency-Key is honoured"},
};

static const struct section idem_section = {
	.doc = "Idempotency at the edge for one route (checkout, payment).",
	.fields = idem_fields,
	.nfields = NFIELDS(idem_fields),
	.line_off = NO_LINE,
	.check = check_idem,
};

static const struct field route_fields[] = {
	{AT("name", struct cfg_route, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "route name, unique; used in logs and metrics"},
	{AT("hosts", struct cfg_route, hosts), .type = T_LIST, .min = 0,
	 .max = 64, .aux = offsetof(struct cfg_route, nhosts),
	 .sub = &host_section, .flags = F_RELOAD, .def = "[] (any host)",
	 .doc = "Host header values that match, exact (`shop.example.com`) "
		"or by suffix (`*.example.com`); the port is ignored"},
	{AT("path", struct cfg_route, path), .type = T_URLPATH, .min = 1,
	 .max = 1024, .def = "/", .flags = F_RELOAD,
	 .doc = "path prefix that matches (`/checkout` matches "
		"`/checkout/pay`)"},
	{AT("pool", struct cfg_route, pool), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "the pool that serves the route"},
	{AT("timeouts", struct cfg_route, timeouts), .type = T_MAP,
	 .sub = &route_timeouts_section, .doc = "per-route timeouts"},
	{AT("retry", struct cfg_route, retry), .type = T_MAP,
	 .sub = &retry_section, .doc = "per-route retry policy"},
	{AT("idempotency", struct cfg_route, idempotency), .type = T_MAP,
	 .sub = &idem_section, .doc = "idempotency keys"},
};

static const struct section route_section = {
	.doc = "Routes send requests to pools by Host and path prefix. They "
	       "are tried in the order of the file and the first match wins; "
	       "a request no route matches gets 404. Without routes every "
	       "request goes to the first pool with the default retry policy.",
	.noun = "route",
	.fields = route_fields,
	.nfields = NFIELDS(route_fields),
	.size = sizeof(struct cfg_route),
	.line_off = offsetof(struct cfg_route, line),
	.check = check_route,
};

static const struct field budget_fields[] = {
	{AT("percent", struct cfg_retry_budget, percent), .type = T_INT,
	 .min = 0, .max = 100, .def = "20", .flags = F_RELOAD,
	 .doc = "retries allowed as a share of requests over the window"},
	{AT("window", struct cfg_retry_budget, window_ms), .type = T_DURATION,
	 .min = 100, .max = MS_HOUR, .def = "10s", .flags = F_RELOAD,
	 .doc = "the window the share is counted over"},
	{AT("min_retries", struct cfg_retry_budget, min_retries),
	 .type = T_INT, .min = 0, .max = 1000000, .def = "10",
	 .flags = F_RELOAD,
	 .doc = "retries always allowed per window and worker, so a quiet "
		"shop can still retry"},
};

static const struct section budget_section = {
	.doc = "The retry budget keeps retries from multiplying an outage: "
	       "once retries reach the share, failures are answered instead "
	       "of retried.",
	.fields = budget_fields,
	.nfields = NFIELDS(budget_fields),
	.line_off = NO_LINE,
};

static const struct field access_fields[] = {
	{AT("path", struct cfg_access_log, path), .type = T_FILE, .min = 1,
	 .max = PATH_MAX - 1, .flags = F_REQUIRED,
	 .doc = "file the access log is appended to; `-` is standard output"},
	{AT("format", struct cfg_access_log, format), .type = T_ENUM,
	 .names = access_format_names, .def = "json",
	 .doc = "one JSON object per line, or the combined format with "
		"storekeep's fields appended"},
	{AT("anonymize_ip", struct cfg_access_log, anonymize_ip),
	 .type = T_BOOL, .def = "false",
	 .doc = "keep only a prefix of client addresses (GDPR)"},
	{AT("ipv4_prefix", struct cfg_access_log, ipv4_prefix), .type = T_INT,
	 .min = 0, .max = 32, .def = "24",
	 .doc = "bits of an IPv4 address kept when anonymising"},
	{AT("ipv6_prefix", struct cfg_access_log, ipv6_prefix), .type = T_INT,
	 .min = 0, .max = 128, .def = "48",
	 .doc = "bits of an IPv6 address kept when anonymising"},
};

static const struct section access_section = {
	.doc = "One line per request. Without this map there is no access "
	       "log. SIGUSR1 reopens the file after rotation.",
	.fields = access_fields,
	.nfields = NFIELDS(access_fields),
	.line_off = NO_LINE,
};

static const struct field idem_store_fields[] = {
	{AT("max_bytes", struct cfg_idem_store, max_bytes), .type = T_SIZE,
	 .min = 64 * KIB, .max = 64 * GIB, .def = "64m",
	 .doc = "memory for remembered responses; the oldest completed ones "
		"go first"},
	{AT("max_entry_bytes", struct cfg_idem_store, max_entry_bytes),
	 .type = T_SIZE, .min = KIB, .max = GIB, .def = "1m",
	 .doc = "a larger response is not remembered (a repeat is forwarded "
		"again)"},
};

static const struct section idem_store_section = {
	.doc = "The store behind routes[].idempotency, shared by all workers.",
	.fields = idem_store_fields,
	.nfields = NFIELDS(idem_store_fields),
	.line_off = NO_LINE,
};

static const char *const source_type_names[] = {"sqlite", "postgresql",
						 "files", NULL};

SCALAR_LIST(path, "path", struct cfg_path, path, "path",
	    "paths", "path",
	    .type = T_FILE, .min = 1, .max = PATH_MAX - 1);

SCALAR_LIST(pattern, "pattern", struct cfg_pattern, pattern, "pattern",
	    "patterns", "pattern",
	    .type = T_STR, .min = 1, .max = 1024);

SCALAR_LIST(sql, "sql", struct cfg_sql, sql, "sql",
	    "SQL", "assertion",
	    .type = T_STR, .min = 1, .max = 4096);

static int check_source(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_monitor(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_job(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_backup(struct loader *l, void *obj, const struct mapinfo *mi);

static const struct field source_fields[] = {
	{AT("type", struct cfg_backup_source, type), .type = T_ENUM,
	 .names = source_type_names, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "what is backed up"},
	{AT("name", struct cfg_backup_source, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_RELOAD,
	 .doc = "name of the source in archives; default: the type, unique "
		"in the job"},
	{AT("path", struct cfg_backup_source, path), .type = T_FILE, .min = 1,
	 .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "sqlite: the database file (copied with SQLite's online "
		"backup API)"},
	{AT("conninfo", struct cfg_backup_source, conninfo), .type = T_STR,
	 .min = 1, .max = 4096, .flags = F_RELOAD,
	 .doc = "postgresql: a libpq connection string (dumped with pg_dump "
		"-Fc)"},
	{AT("paths", struct cfg_backup_source, paths), .type = T_LIST,
	 .min = 0, .max = 256, .aux = offsetof(struct cfg_backup_source, npaths),
	 .sub = &path_section, .flags = F_RELOAD,
	 .doc = "files: the files and trees to copy (modes, owners and mtimes "
		"kept)"},
	{AT("exclude", struct cfg_backup_source, exclude), .type = T_LIST,
	 .min = 0, .max = 256,
	 .aux = offsetof(struct cfg_backup_source, nexclude),
	 .sub = &pattern_section, .flags = F_RELOAD,
	 .doc = "files: fnmatch patterns left out, matched against the base "
		"name and the path relative to its tree"},
};

static const struct section source_section = {
	.doc = "One thing a job backs up.",
	.noun = "source",
	.fields = source_fields,
	.nfields = NFIELDS(source_fields),
	.size = sizeof(struct cfg_backup_source),
	.line_off = offsetof(struct cfg_backup_source, line),
	.check = check_source,
};

static const struct field retention_fields[] = {
	{AT("keep_last", struct cfg_retention, keep_last), .type = T_INT,
	 .min = 0, .max = 100000, .def = "7", .flags = F_RELOAD,
	 .doc = "the newest archives kept"},
	{AT("keep_hourly", struct cfg_retention, keep_hourly), .type = T_INT,
	 .min = 0, .max = 100000, .def = "0", .flags = F_RELOAD,
	 .doc = "hours for which the newest archive is kept"},
	{AT("keep_daily", struct cfg_retention, keep_daily), .type = T_INT,
	 .min = 0, .max = 100000, .def = "7", .flags = F_RELOAD,
	 .doc = "days (UTC) for which the newest archive is kept"},
	{AT("keep_weekly", struct cfg_retention, keep_weekly), .type = T_INT,
	 .min = 0, .max = 100000, .def = "4", .flags = F_RELOAD,
	 .doc = "ISO weeks for which the newest archive is kept"},
	{AT("keep_monthly", struct cfg_retention, keep_monthly), .type = T_INT,
	 .min = 0, .max = 100000, .def = "6", .flags = F_RELOAD,
	 .doc = "months for which the newest archive is kept"},
};

static const struct section retention_section = {
	.doc = "Which archives a prune keeps (as restic's forget --keep-*): an "
	       "archive is kept when any rule keeps it.",
	.fields = retention_fields,
	.nfields = NFIELDS(retention_fields),
	.line_off = NO_LINE,
};

static const struct field verify_fields[] = {
	{AT("schedule", struct cfg_backup_verify, schedule), .type = T_CRON,
	 .flags = F_RELOAD,
	 .doc = "when to run a restore drill of the newest archive; absent: "
		"never on a schedule"},
	{AT("assertions", struct cfg_backup_verify, assertions),
	 .type = T_LIST, .min = 0, .max = 64,
	 .aux = offsetof(struct cfg_backup_verify, nassertions),
	 .sub = &sql_section, .flags = F_RELOAD,
	 .doc = "SQL run against each restored database; the first column of "
		"the first row must be true (non-zero), e.g. `SELECT count(*) > "
		"0 FROM orders`"},
};

static const struct section verify_section = {
	.doc = "Restore drills: the newest archive is restored into a scratch "
	       "place and checked.",
	.fields = verify_fields,
	.nfields = NFIELDS(verify_fields),
	.line_off = NO_LINE,
};

static const struct field job_fields[] = {
	{AT("name", struct cfg_backup_job, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "job name, unique; archives are named after it"},
	{AT("schedule", struct cfg_backup_job, schedule), .type = T_CRON,
	 .flags = F_RELOAD,
	 .doc = "when the job runs; this or interval is required"},
	{AT("interval", struct cfg_backup_job, interval_ms),
	 .type = T_DURATION, .min = 0, .max = 365ull * MS_DAY, .def = "0s",
	 .flags = F_RELOAD,
	 .doc = "run every interval instead of on a schedule"},
	{AT("repository", struct cfg_backup_job, repository), .type = T_FILE,
	 .min = 1, .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "directory the archives go to; default: backup.repository"},
	{AT("sources", struct cfg_backup_job, sources), .type = T_LIST,
	 .min = 1, .max = 64, .aux = offsetof(struct cfg_backup_job, nsources),
	 .sub = &source_section, .flags = F_REQUIRED,
	 .doc = "what the job backs up; storekeep's own config and state "
		"are always added"},
	{AT("retention", struct cfg_backup_job, retention), .type = T_MAP,
	 .sub = &retention_section, .doc = "which archives prune keeps"},
	{AT("verify", struct cfg_backup_job, verify), .type = T_MAP,
	 .sub = &verify_section, .doc = "restore drills"},
	{AT("rpo", struct cfg_backup_job, rpo_ms), .type = T_DURATION,
	 .min = 0, .max = 365ull * MS_DAY, .def = "0s", .flags = F_RELOAD,
	 .doc = "recovery-point objective: alert when the newest verified "
		"archive is older; 0s: off"},
};

static const struct section job_section = {
	.doc = "A backup job: sources, where they go, when, and how long they "
	       "are kept.",
	.noun = "job",
	.fields = job_fields,
	.nfields = NFIELDS(job_fields),
	.size = sizeof(struct cfg_backup_job),
	.line_off = offsetof(struct cfg_backup_job, line),
	.check = check_job,
};

static const struct field backup_fields[] = {
	{AT("key_file", struct cfg_backup, key_file), .type = T_FILE, .min = 1,
	 .max = PATH_MAX - 1, .flags = F_REQUIRED,
	 .doc = "the encryption key, made by `storekeep backup init`; must "
		"not be readable by group or others"},
	{AT("repository", struct cfg_backup, repository), .type = T_FILE,
	 .min = 1, .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "default directory of the jobs' archives"},
	{AT("jobs", struct cfg_backup, jobs), .type = T_LIST, .min = 0,
	 .max = 256, .aux = offsetof(struct cfg_backup, njobs),
	 .sub = &job_section, .doc = "the backup jobs"},
};

static const struct section backup_section = {
	.doc = "Encrypted, verified backups. Without this map there are none.",
	.fields = backup_fields,
	.nfields = NFIELDS(backup_fields),
	.line_off = NO_LINE,
	.check = check_backup,
};

static const char *const probe_type_names[] = {"http", "tcp", "postgresql",
						"sqlite", "nagios", NULL};

SCALAR_LIST(arg, "arg", struct cfg_arg, arg, "argument",
	    "arguments", "argument",
	    .type = T_STR, .min = 0, .max = 4096);

static int check_probe(struct loader *l, void *obj, const struct mapinfo *mi);

static const struct field probe_fields[] = {
	{AT("name", struct cfg_probe, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "probe name, unique; the `probe` label of its metrics"},
	{AT("type", struct cfg_probe, type), .type = T_ENUM,
	 .names = probe_type_names, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "what is checked"},
	{AT("interval", struct cfg_probe, interval_ms), .type = T_DURATION,
	 .min = 100, .max = MS_DAY, .def = "10s", .flags = F_RELOAD,
	 .doc = "time between two runs"},
	{AT("timeout", struct cfg_probe, timeout_ms), .type = T_DURATION,
	 .min = 1, .max = MS_HOUR, .def = "5s", .flags = F_RELOAD,
	 .doc = "a run that takes longer is critical; must be shorter than "
		"interval"},
	{AT("url", struct cfg_probe, url), .type = T_STR, .min = 8,
	 .max = 4096, .flags = F_RELOAD,
	 .doc = "http: the URL fetched (`http://host:port/path`)"},
	{AT("status_min", struct cfg_probe, status_min), .type = T_INT,
	 .min = 100, .max = 599, .def = "200", .flags = F_RELOAD,
	 .doc = "http: lowest status that is ok"},
	{AT("status_max", struct cfg_probe, status_max), .type = T_INT,
	 .min = 100, .max = 599, .def = "399", .flags = F_RELOAD,
	 .doc = "http: highest status that is ok"},
	{AT("body_contains", struct cfg_probe, body_contains), .type = T_STR,
	 .min = 1, .max = 4096, .flags = F_RELOAD,
	 .doc = "http: text the body must contain"},
	{AT("address", struct cfg_probe, address), .type = T_ADDR,
	 .flags = F_RELOAD, .doc = "tcp: the address connected to"},
	{AT("conninfo", struct cfg_probe, conninfo), .type = T_STR, .min = 1,
	 .max = 4096, .flags = F_RELOAD,
	 .doc = "postgresql: a libpq connection string"},
	{AT("path", struct cfg_probe, path), .type = T_FILE, .min = 1,
	 .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "sqlite: the database file"},
	{AT("command", struct cfg_probe, command), .type = T_LIST, .min = 0,
	 .max = 64, .aux = offsetof(struct cfg_probe, ncommand),
	 .sub = &arg_section, .flags = F_RELOAD,
	 .doc = "nagios: the plugin and its arguments, e.g. "
		"`[/usr/lib/nagios/plugins/check_disk, -w, 20%, -p, /]`"},
};

static const struct section probe_section = {
	.doc = "A probe checks something from outside the request path on a "
	       "schedule; a hung probe never delays another or the proxy.",
	.noun = "probe",
	.fields = probe_fields,
	.nfields = NFIELDS(probe_fields),
	.size = sizeof(struct cfg_probe),
	.line_off = offsetof(struct cfg_probe, line),
	.check = check_probe,
};

/* --- monitor.alerts ----------------------------------------------------
 * Plain data for monitor/alert_conf.c. The names are monitor's (alert.h,
 * notify.h); the builder maps the stored indexes back by name. */

const char *const config_alert_fn_names[] = {
	"last", "avg", "min", "max", "increase", "rate", "quantile",
	"predict_linear", "time_to_zero", "count_above", NULL,
};
/* Indexes of config_alert_fn_names[] that the checks below name. */
enum { AFN_QUANTILE = 6, AFN_PREDICT_LINEAR = 7, AFN_COUNT_ABOVE = 9 };
const char *const config_alert_group_names[] = {
	"none", "sum", "avg", "min", "max", "count", NULL,
};
const char *const config_alert_op_names[] = {
	">", ">=", "<", "<=", "==", "!=", NULL,
};
const char *const config_alert_severity_names[] = {
	"info", "warning", "critical", NULL,
};
const char *const config_notify_type_names[] = {
	"webhook", "email", "command", NULL,
};
enum { NT_WEBHOOK = 0, NT_EMAIL, NT_COMMAND };
const char *const config_notify_format_names[] = {
	"generic", "slack", "alertmanager", NULL,
};
const char *const config_notify_tls_names[] = {"try", "all", "none", NULL};

/* Any finite number. */
#define ANY_NUMBER .fmin = -DBL_MAX, .fmax = DBL_MAX

static int check_label(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_alert_query(struct loader *l, void *obj,
			     const struct mapinfo *mi);
static int check_alert_default(struct loader *l, void *obj,
			       const struct mapinfo *mi);
static int check_alert_rule(struct loader *l, void *obj,
			    const struct mapinfo *mi);
static int check_slo(struct loader *l, void *obj, const struct mapinfo *mi);
static int check_slo_window(struct loader *l, void *obj,
			    const struct mapinfo *mi);
static int check_notifier(struct loader *l, void *obj,
			  const struct mapinfo *mi);
static int check_alerts(struct loader *l, void *obj, const struct mapinfo *mi);

static const struct field label_fields[] = {
	{AT("name", struct cfg_label, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_RELOAD, .doc = "label name"},
	{AT("value", struct cfg_label, value), .type = T_STR, .min = 0,
	 .max = 1024, .flags = F_RELOAD, .doc = "label value"},
};

static const struct section label_section = {
	.doc = "labels", .scalar = 1, .noun = "label",
	.fields = label_fields, .nfields = NFIELDS(label_fields),
	.size = sizeof(struct cfg_label),
	.line_off = offsetof(struct cfg_label, line),
	.check = check_label,
};

SCALAR_LIST(label_name, "label", struct cfg_arg, arg, "label name",
	    "label names", "label",
	    .type = T_NAME, .min = 1, .max = 64, .flags = F_RELOAD);

/* The keys of a query, in a rule (st, pfx: struct cfg_alert_rule, expr.)
 * and in its plus and over maps (struct cfg_alert_query, nothing). */
#define QUERY_FIELDS(st, pfx)                                                 \
	{AT("expr", st, pfx expr), .type = T_STR, .min = 1, .max = 4096,      \
	 .flags = F_REQUIRED | F_RELOAD,                                      \
	 .doc = "the series read: a selector such as "                       \
		"`metric{label=\"x\", other=~\"re.*\"}` (matchers =, !=, "    \
		"=~, !~)"},                                                   \
	{AT("function", st, pfx fn), .type = T_ENUM,                          \
	 .names = config_alert_fn_names, .def = "last", .flags = F_RELOAD,    \
	 .doc = "what reduces each series over window to one number"},       \
	{AT("q", st, pfx q), .type = T_FLOAT, .fmin = 0, .fmax = 1,           \
	 .flags = F_RELOAD,                                                   \
	 .doc = "function: quantile: the quantile, e.g. 0.99; required "      \
		"there"},                                                     \
	{AT("le", st, pfx le), .type = T_FLOAT, ANY_NUMBER, .flags = F_RELOAD, \
	 .doc = "function: count_above: the bound, in the metric's unit "     \
		"(seconds); required there"},                                 \
	{AT("horizon", st, pfx horizon_ms), .type = T_DURATION, .min = 0,     \
	 .max = 365ull * MS_DAY, .def = "0s", .flags = F_RELOAD,              \
	 .doc = "function: predict_linear: how far ahead the fitted line is " \
		"read"},                                                      \
	{AT("window", st, pfx window_ms), .type = T_DURATION,                 \
	 .min = MS_SECOND, .max = 90ull * MS_DAY, .def = "1m",                \
	 .flags = F_RELOAD, .doc = "the time the function looks back over"}, \
	{AT("group", st, pfx group), .type = T_ENUM,                          \
	 .names = config_alert_group_names, .def = "none", .flags = F_RELOAD, \
	 .doc = "how series are combined, per value of by; none: each "       \
		"series is its own alert"},                                   \
	{AT("by", st, pfx by), .type = T_LIST, .min = 0, .max = 8,            \
	 .aux = offsetof(st, pfx nby), .sub = &label_name_section,            \
	 .flags = F_RELOAD, .def = "[]",                                      \
	 .doc = "labels kept by group, e.g. `[route]`"}

static const struct field query_fields[] = {
	QUERY_FIELDS(struct cfg_alert_query, ),
};

static const struct section query_section = {
	.doc = "A second query of a rule, with the keys of the rule's own: "
	       "the rule's value is (expr + plus) / over, joined on identical "
	       "label sets.",
	.fields = query_fields,
	.nfields = NFIELDS(query_fields),
	.line_off = offsetof(struct cfg_alert_query, line),
	.check = check_alert_query,
};

static const struct field alert_default_fields[] = {
	{AT("name", struct cfg_alert_default, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_RELOAD, .doc = "a built-in rule's name"},
	{AT("enabled", struct cfg_alert_default, enabled), .type = T_BOOL,
	 .def = "true", .flags = F_RELOAD,
	 .doc = "false turns the rule off"},
	{AT("threshold", struct cfg_alert_default, threshold),
	 .type = T_FLOAT, ANY_NUMBER, .flags = F_RELOAD,
	 .doc = "replaces the rule's threshold"},
	{AT("severity", struct cfg_alert_default, severity), .type = T_ENUM,
	 .names = config_alert_severity_names, .flags = F_RELOAD,
	 .doc = "replaces the rule's severity"},
	{AT("for", struct cfg_alert_default, for_ms), .type = T_DURATION,
	 .min = 0, .max = 30ull * MS_DAY, .flags = F_RELOAD,
	 .doc = "replaces the rule's for"},
	{AT("keep_firing_for", struct cfg_alert_default, keep_firing_for_ms),
	 .type = T_DURATION, .min = 0, .max = 30ull * MS_DAY,
	 .flags = F_RELOAD, .doc = "replaces the rule's keep_firing_for (0s)"},
	{AT("repeat", struct cfg_alert_default, repeat_ms), .type = T_DURATION,
	 .min = 0, .max = 30ull * MS_DAY, .flags = F_RELOAD,
	 .doc = "replaces the rule's repeat (0s: sent once)"},
	{AT("labels", struct cfg_alert_default, labels), .type = T_DICT,
	 .min = 0, .max = 16,
	 .aux = offsetof(struct cfg_alert_default, nlabels),
	 .sub = &label_section, .flags = F_RELOAD,
	 .doc = "extra labels of the rule's alerts, e.g. `{team: ops}`"},
	{AT("summary", struct cfg_alert_default, summary), .type = T_STR,
	 .min = 1, .max = 1024, .flags = F_RELOAD,
	 .doc = "replaces the rule's summary"},
};

static const struct section alert_default_section = {
	.doc = "A built-in rule, by name (`HostCPUHigh: {enabled: false}`); "
	       "only the keys written change it.",
	.keyed = 1,
	.noun = "rule",
	.fields = alert_default_fields,
	.nfields = NFIELDS(alert_default_fields),
	.size = sizeof(struct cfg_alert_default),
	.line_off = offsetof(struct cfg_alert_default, line),
	.check = check_alert_default,
};

static const struct field alert_rule_fields[] = {
	{AT("name", struct cfg_alert_rule, name), .type = T_NAME, .min = 1,
	 .max = 100, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "rule name, unique, not a built-in rule's; the alertname "
		"label"},
	QUERY_FIELDS(struct cfg_alert_rule, expr.),
	{AT("plus", struct cfg_alert_rule, plus), .type = T_MAP,
	 .flags = F_OPTIONAL | F_RELOAD,
	 .aux = offsetof(struct cfg_alert_query, set), .sub = &query_section,
	 .doc = "a query added to expr; absent: none"},
	{AT("over", struct cfg_alert_rule, over), .type = T_MAP,
	 .flags = F_OPTIONAL | F_RELOAD,
	 .aux = offsetof(struct cfg_alert_query, set), .sub = &query_section,
	 .doc = "a query (expr + plus) is divided by; absent: none"},
	{AT("op", struct cfg_alert_rule, op), .type = T_ENUM,
	 .names = config_alert_op_names, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "how the value is compared with threshold (quote it in "
		"YAML: `\">\"`)"},
	{AT("threshold", struct cfg_alert_rule, threshold), .type = T_FLOAT,
	 ANY_NUMBER, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "what the value is compared with"},
	{AT("for", struct cfg_alert_rule, for_ms), .type = T_DURATION,
	 .min = 0, .max = 30ull * MS_DAY, .def = "0s", .flags = F_RELOAD,
	 .doc = "how long the condition must hold before the alert fires"},
	{AT("keep_firing_for", struct cfg_alert_rule, keep_firing_for_ms),
	 .type = T_DURATION, .min = 0, .max = 30ull * MS_DAY, .def = "0s",
	 .flags = F_RELOAD,
	 .doc = "a firing alert resolves only after its condition has failed "
		"this long"},
	{AT("repeat", struct cfg_alert_rule, repeat_ms), .type = T_DURATION,
	 .min = 0, .max = 30ull * MS_DAY, .def = "0s", .flags = F_RELOAD,
	 .doc = "how often a firing alert is sent again; 0s: once"},
	{AT("severity", struct cfg_alert_rule, severity), .type = T_ENUM,
	 .names = config_alert_severity_names, .def = "warning",
	 .flags = F_RELOAD, .doc = "the severity label"},
	{AT("labels", struct cfg_alert_rule, labels), .type = T_DICT,
	 .min = 0, .max = 16, .aux = offsetof(struct cfg_alert_rule, nlabels),
	 .sub = &label_section, .flags = F_RELOAD, .def = "{}",
	 .doc = "extra labels of its alerts, e.g. `{team: shop}`; not "
		"alertname or severity"},
	{AT("summary", struct cfg_alert_rule, summary), .type = T_STR,
	 .min = 1, .max = 1024, .flags = F_RELOAD,
	 .doc = "one line for people: `{{label}}` and `{{value}}`, which "
		"may take a filter: pct, bytes or duration (see "
		"docs/monitoring.md); absent: `<name> <op> <threshold>`"},
	{AT("enabled", struct cfg_alert_rule, enabled), .type = T_BOOL,
	 .def = "true", .flags = F_RELOAD,
	 .doc = "false keeps the rule listed but never evaluated"},
};

static const struct section alert_rule_section = {
	.doc = "A rule: a query (expr, function over window, group by), "
	       "optional plus and over queries, and a comparison. See "
	       "docs/monitoring.md.",
	.noun = "rule",
	.fields = alert_rule_fields,
	.nfields = NFIELDS(alert_rule_fields),
	.size = sizeof(struct cfg_alert_rule),
	.line_off = offsetof(struct cfg_alert_rule, line),
	.check = check_alert_rule,
};

static const struct field slo_window_fields[] = {
	{AT("long", struct cfg_slo_window, long_ms), .type = T_DURATION,
	 .min = MS_MINUTE, .max = 90ull * MS_DAY,
	 .flags = F_REQUIRED | F_RELOAD,
	 .doc = "the long window: the problem is real"},
	{AT("short", struct cfg_slo_window, short_ms), .type = T_DURATION,
	 .min = MS_SECOND, .max = 90ull * MS_DAY,
	 .flags = F_REQUIRED | F_RELOAD,
	 .doc = "the short window, at most long: it is still happening"},
	{AT("factor", struct cfg_slo_window, factor), .type = T_FLOAT,
	 .fmin = 0, .fmax = 10000, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "burn rate over both windows that fires, > 0, e.g. 14.4"},
	{AT("for", struct cfg_slo_window, for_ms), .type = T_DURATION,
	 .min = 0, .max = 30ull * MS_DAY, .def = "0s", .flags = F_RELOAD,
	 .doc = "how long it must hold before the alert fires"},
	{AT("severity", struct cfg_slo_window, severity), .type = T_ENUM,
	 .names = config_alert_severity_names, .def = "warning",
	 .flags = F_RELOAD, .doc = "the severity label"},
};

static const struct section slo_window_section = {
	.doc = "One burn-rate alert of an SLO: a window pair and a factor.",
	.noun = "window",
	.fields = slo_window_fields,
	.nfields = NFIELDS(slo_window_fields),
	.size = sizeof(struct cfg_slo_window),
	.line_off = offsetof(struct cfg_slo_window, line),
	.check = check_slo_window,
};

static const struct field slo_fields[] = {
	{AT("name", struct cfg_slo, name), .type = T_NAME, .min = 1, .max = 64,
	 .flags = F_REQUIRED | F_RELOAD,
	 .doc = "SLO name, unique; its rules are named "
		"`SLOBurnRate:<name>:<long><short>`"},
	{AT("route", struct cfg_slo, route), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "the route label of the requests it covers"},
	{AT("objective", struct cfg_slo, objective), .type = T_FLOAT,
	 .fmin = 0, .fmax = 1, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "share of requests that must succeed, between 0 and 1 "
		"(exclusive), e.g. 0.999"},
	{AT("latency", struct cfg_slo, latency_ms), .type = T_DURATION,
	 .min = 0, .max = MS_HOUR, .def = "0s", .flags = F_RELOAD,
	 .doc = "a success also took at most this long; 0s: latency is not "
		"part of the objective"},
	{AT("labels", struct cfg_slo, labels), .type = T_DICT, .min = 0,
	 .max = 12, .aux = offsetof(struct cfg_slo, nlabels),
	 .sub = &label_section, .flags = F_RELOAD, .def = "{}",
	 .doc = "extra labels of its alerts"},
	{AT("windows", struct cfg_slo, windows), .type = T_LIST, .min = 1,
	 .max = 4, .aux = offsetof(struct cfg_slo, nwindows),
	 .sub = &slo_window_section, .flags = F_RELOAD,
	 .def = "1h & 5m > 14.4 critical, 6h & 30m > 6 warning",
	 .doc = "the burn-rate alerts"},
};

static const struct section slo_section = {
	.doc = "A service-level objective of one route, alerted on by burn "
	       "rate over pairs of windows.",
	.noun = "slo",
	.fields = slo_fields,
	.nfields = NFIELDS(slo_fields),
	.size = sizeof(struct cfg_slo),
	.line_off = offsetof(struct cfg_slo, line),
	.check = check_slo,
};

SCALAR_LIST(header, "header", struct cfg_arg, arg, "header",
	    "headers", "header",
	    .type = T_STR, .min = 3, .max = 4096, .flags = F_RELOAD);

SCALAR_LIST(address, "address", struct cfg_arg, arg, "address",
	    "addresses", "address",
	    .type = T_STR, .min = 3, .max = 254, .flags = F_RELOAD);

static const struct field notifier_fields[] = {
	{AT("name", struct cfg_notifier, name), .type = T_NAME, .min = 1,
	 .max = 64, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "notifier name, unique"},
	{AT("type", struct cfg_notifier, type), .type = T_ENUM,
	 .names = config_notify_type_names, .flags = F_REQUIRED | F_RELOAD,
	 .doc = "how alerts are sent"},
	{AT("format", struct cfg_notifier, format), .type = T_ENUM,
	 .names = config_notify_format_names, .def = "generic",
	 .flags = F_RELOAD,
	 .doc = "webhook: the body: storekeep's JSON, Slack's, or "
		"Alertmanager's v2 API"},
	{AT("url", struct cfg_notifier, url), .type = T_STR, .min = 8,
	 .max = 4096, .flags = F_RELOAD,
	 .doc = "webhook: `http://` or `https://` URL (alertmanager: its base "
		"URL); email: `smtp://host[:port]` or `smtps://...`"},
	{AT("headers", struct cfg_notifier, headers), .type = T_LIST,
	 .min = 0, .max = 32, .aux = offsetof(struct cfg_notifier, nheaders),
	 .sub = &header_section, .flags = F_RELOAD, .def = "[]",
	 .doc = "webhook: extra request headers, `\"Name: value\"`"},
	{AT("ca_file", struct cfg_notifier, ca_file), .type = T_FILE, .min = 1,
	 .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "webhook, email: PEM CA bundle trusted instead of the "
		"system's"},
	{AT("resend", struct cfg_notifier, resend_ms), .type = T_DURATION,
	 .min = MS_SECOND, .max = MS_DAY, .def = "1m", .flags = F_RELOAD,
	 .doc = "webhook alertmanager: firing alerts are sent again this "
		"often"},
	{AT("min_severity", struct cfg_notifier, min_severity),
	 .type = T_ENUM, .names = config_alert_severity_names, .def = "info",
	 .flags = F_RELOAD, .doc = "alerts of a lower severity are not sent "
				  "here"},
	{AT("send_resolved", struct cfg_notifier, send_resolved),
	 .type = T_BOOL, .def = "true", .flags = F_RELOAD,
	 .doc = "false sends firing alerts only"},
	{AT("timeout", struct cfg_notifier, timeout_ms), .type = T_DURATION,
	 .min = 100, .max = 10 * MS_MINUTE, .def = "10s", .flags = F_RELOAD,
	 .doc = "one attempt; a command gets SIGKILL"},
	{AT("max_attempts", struct cfg_notifier, max_attempts), .type = T_INT,
	 .min = 1, .max = 100, .def = "5", .flags = F_RELOAD,
	 .doc = "attempts per delivery before it is given up"},
	{AT("backoff", struct cfg_notifier, backoff_ms), .type = T_DURATION,
	 .min = 10, .max = MS_HOUR, .def = "1s", .flags = F_RELOAD,
	 .doc = "wait before the second attempt, doubled each time"},
	{AT("backoff_max", struct cfg_notifier, backoff_max_ms),
	 .type = T_DURATION, .min = 10, .max = MS_DAY, .def = "5m",
	 .flags = F_RELOAD, .doc = "the longest wait between attempts"},
	{AT("queue", struct cfg_notifier, queue), .type = T_INT, .min = 1,
	 .max = 100000, .def = "100", .flags = F_RELOAD,
	 .doc = "deliveries that may wait; a full queue drops the oldest"},
	{AT("tls", struct cfg_notifier, tls), .type = T_ENUM,
	 .names = config_notify_tls_names, .def = "try", .flags = F_RELOAD,
	 .doc = "email: STARTTLS when offered, required, or never"},
	{AT("username", struct cfg_notifier, username), .type = T_STR,
	 .min = 1, .max = 256, .flags = F_RELOAD,
	 .doc = "email: SMTP AUTH user; absent: no AUTH"},
	{AT("password_file", struct cfg_notifier, password_file),
	 .type = T_FILE, .min = 1, .max = PATH_MAX - 1, .flags = F_RELOAD,
	 .doc = "email: file holding the SMTP password, read at start and "
		"reload; must not be readable by group or others"},
	{AT("from", struct cfg_notifier, from), .type = T_STR, .min = 3,
	 .max = 254, .flags = F_RELOAD,
	 .doc = "email: sender address; required there"},
	{AT("to", struct cfg_notifier, to), .type = T_LIST, .min = 0,
	 .max = 64, .aux = offsetof(struct cfg_notifier, nto),
	 .sub = &address_section, .flags = F_RELOAD, .def = "[]",
	 .doc = "email: recipient addresses; at least one there"},
	{AT("subject_prefix", struct cfg_notifier, subject_prefix),
	 .type = T_STR, .min = 1, .max = 128, .flags = F_RELOAD,
	 .doc = "email: start of the Subject; absent: `[storekeep]`"},
	{AT("command", struct cfg_notifier, command), .type = T_LIST,
	 .min = 0, .max = 64, .aux = offsetof(struct cfg_notifier, ncommand),
	 .sub = &arg_section, .flags = F_RELOAD, .def = "[]",
	 .doc = "command: the program (absolute path) and its arguments, run "
		"without a shell; the alerts come as JSON on its standard "
		"input"},
};

static const struct section notifier_section = {
	.doc = "Where alerts are sent. Each notifier sends one delivery at a "
	       "time, in order, retrying with backoff.",
	.noun = "notifier",
	.fields = notifier_fields,
	.nfields = NFIELDS(notifier_fields),
	.size = sizeof(struct cfg_notifier),
	.line_off = offsetof(struct cfg_notifier, line),
	.check = check_notifier,
};

static const struct field alerts_fields[] = {
	{AT("enabled", struct cfg_alerts, enabled), .type = T_BOOL,
	 .def = "true", .flags = F_RELOAD,
	 .doc = "false: no rule is evaluated and nothing is sent"},
	{AT("interval", struct cfg_alerts, interval_ms), .type = T_DURATION,
	 .min = MS_SECOND, .max = MS_HOUR, .def = "5s", .flags = F_RELOAD,
	 .doc = "time between two evaluations of every rule"},
	{AT("state_path", struct cfg_alerts, state_path), .type = T_FILE,
	 .min = 1, .max = PATH_MAX - 1, .def = "storekeep-alerts.json",
	 .flags = F_RELOAD,
	 .doc = "JSON file of alert states and silences, kept across "
		"restarts"},
	{AT("external_url", struct cfg_alerts, external_url), .type = T_STR,
	 .min = 8, .max = 4096, .flags = F_RELOAD,
	 .doc = "`http://` or `https://` base URL of this storekeep, the "
		"generatorURL of notifications; absent: none"},
	{AT("resolved_keep", struct cfg_alerts, resolved_keep_ms),
	 .type = T_DURATION, .min = MS_SECOND, .max = 30ull * MS_DAY,
	 .def = "15m", .flags = F_RELOAD,
	 .doc = "how long a resolved alert stays listed"},
	{AT("max_inflight", struct cfg_alerts, max_inflight), .type = T_INT,
	 .min = 1, .max = 64, .def = "4", .flags = F_RELOAD,
	 .doc = "deliveries running at once over all notifiers"},
	{AT("defaults", struct cfg_alerts, defaults), .type = T_DICT, .min = 0,
	 .max = 64, .aux = offsetof(struct cfg_alerts, ndefaults),
	 .sub = &alert_default_section, .flags = F_RELOAD, .def = "{}",
	 .doc = "the built-in rules turned off or retuned, by name"},
	{AT("rules", struct cfg_alerts, rules), .type = T_LIST, .min = 0,
	 .max = 1000, .aux = offsetof(struct cfg_alerts, nrules),
	 .sub = &alert_rule_section, .flags = F_RELOAD,
	 .doc = "the operator's rules"},
	{AT("slos", struct cfg_alerts, slos), .type = T_LIST, .min = 0,
	 .max = 100, .aux = offsetof(struct cfg_alerts, nslos),
	 .sub = &slo_section, .flags = F_RELOAD,
	 .doc = "service-level objectives, alerted on by burn rate"},
	{AT("notifiers", struct cfg_alerts, notifiers), .type = T_LIST,
	 .min = 0, .max = 64, .aux = offsetof(struct cfg_alerts, nnotifiers),
	 .sub = &notifier_section, .flags = F_RELOAD,
	 .doc = "where alerts are sent; none: they are only listed"},
};

static const struct section alerts_section = {
	.doc = "Alert rules over storekeep's metrics and the notifiers that "
	       "send them. Absent: the built-in rules, no notifier. Selectors "
	       "and summaries are checked when the rules are built "
	       "(`storekeep check` does).",
	.fields = alerts_fields,
	.nfields = NFIELDS(alerts_fields),
	.line_off = offsetof(struct cfg_alerts, line),
	.check = check_alerts,
};

static const struct field history_fields[] = {
	{AT("path", struct cfg_history, path), .type = T_FILE, .min = 1,
	 .max = PATH_MAX - 1, .def = "storekeep-history.db",
	 .doc = "SQLite file of the downsampled history"},
	{AT("minute_retention", struct cfg_history, minute_retention_ms),
	 .type = T_DURATION, .min = MS_HOUR, .max = 3650ull * MS_DAY,
	 .def = "7d", .flags = F_RELOAD,
	 .doc = "how long 1-minute samples are kept"},
	{AT("hour_retention", struct cfg_history, hour_retention_ms),
	 .type = T_DURATION, .min = MS_DAY, .max = 3650ull * MS_DAY, .def = "90d",
	 .flags = F_RELOAD,
	 .doc = "how long 1-hour samples are kept"},
	{AT("max_bytes", struct cfg_history, max_bytes), .type = T_SIZE,
	 .min = MIB, .max = 64 * GIB, .def = "512m", .flags = F_RELOAD,
	 .doc = "the file is kept under this size by dropping the oldest "
		"samples first"},
};

static const struct section history_section = {
	.doc = "History: the last hour at 1 s resolution in memory, older "
	       "samples downsampled into SQLite.",
	.fields = history_fields,
	.nfields = NFIELDS(history_fields),
	.line_off = NO_LINE,
};

static const struct field monitor_fields[] = {
	{AT("request_metrics", struct cfg_monitor, request_metrics),
	 .type = T_BOOL, .def = "true", .flags = F_RELOAD,
	 .doc = "record per-route request metrics (latency histograms, "
		"responses by class); false only to measure their cost"},
	{AT("history", struct cfg_monitor, history), .type = T_MAP,
	 .sub = &history_section, .doc = "metric history"},
	{AT("probes", struct cfg_monitor, probes), .type = T_LIST, .min = 0,
	 .max = 1000, .aux = offsetof(struct cfg_monitor, nprobes),
	 .sub = &probe_section, .doc = "the probes"},
	{AT("alerts", struct cfg_monitor, alerts), .type = T_MAP,
	 .sub = &alerts_section, .doc = "alert rules and notifiers"},
};

static const struct section monitor_section = {
	.doc = "Monitoring: probes, history and alerts.",
	.fields = monitor_fields,
	.nfields = NFIELDS(monitor_fields),
	.line_off = NO_LINE,
	.check = check_monitor,
};

static const struct field root_fields[] = {
	{AT("workers", struct config, workers), .type = T_INT, .min = 0,
	 .max = 256, .def = "0",
	 .doc = "worker threads, each with its own event loop and listeners; "
		"0 is one per CPU core"},
	{AT("listen", struct config, listen), .type = T_ADDR,
	 .def = "127.0.0.1:8080",
	 .doc = "address of the edge listener that clients connect to"},
	{AT("log", struct config, log), .type = T_MAP, .sub = &log_section,
	 .doc = "logging"},
	{AT("admin", struct config, admin), .type = T_MAP,
	 .flags = F_OPTIONAL, .aux = offsetof(struct cfg_admin, enabled),
	 .sub = &admin_section, .doc = "the admin API; absent: none"},
	{AT("limits", struct config, limits), .type = T_MAP,
	 .sub = &limits_section, .doc = "request size and connection limits"},
	{AT("timeouts", struct config, timeouts), .type = T_MAP,
	 .sub = &timeouts_section, .doc = "client and backend timeouts"},
	{AT("pools", struct config, pools), .type = T_LIST, .min = 1,
	 .max = 256, .aux = offsetof(struct config, npools),
	 .sub = &pool_section, .flags = F_REQUIRED,
	 .doc = "backend pools"},
	{AT("routes", struct config, routes), .type = T_LIST, .min = 0,
	 .max = 1000, .aux = offsetof(struct config, nroutes),
	 .sub = &route_section,
	 .doc = "which pool serves a request; none: the first pool serves "
		"all"},
	{AT("retry_budget", struct config, retry_budget), .type = T_MAP,
	 .sub = &budget_section, .doc = "the share of requests that may be "
					"retries"},
	{AT("access_log", struct config, access_log), .type = T_MAP,
	 .flags = F_OPTIONAL, .aux = offsetof(struct cfg_access_log, enabled),
	 .sub = &access_section, .doc = "the access log; absent: none"},
	{AT("idempotency", struct config, idempotency), .type = T_MAP,
	 .sub = &idem_store_section, .doc = "the idempotency store"},
	{AT("monitor", struct config, monitor), .type = T_MAP,
	 .sub = &monitor_section, .doc = "probes, history and alerts"},
	{AT("backup", struct config, backup), .type = T_MAP,
	 .flags = F_OPTIONAL, .aux = offsetof(struct cfg_backup, enabled),
	 .sub = &backup_section, .doc = "backups; absent: none"},
};

static const struct section root_section = {
	.doc = "Keys at the top of the file.",
	.fields = root_fields,
	.nfields = NFIELDS(root_fields),
	.line_off = NO_LINE,
	.check = check_root,
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* Config objects are small and their sizes bounded by the schema, so an
 * allocation failure here is not something to recover from. */
static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	SK_ASSERT(p != NULL);
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	SK_ASSERT(p != NULL);
	return p;
}

/* List members are typed struct pointers; move them as bytes. */
static void *get_ptr(const void *slot)
{
	void *p;

	memcpy(&p, slot, sizeof p);
	return p;
}

static void set_ptr(void *slot, void *p)
{
	memcpy(slot, &p, sizeof p);
}

static void store_uint(void *dst, size_t size, uint64_t v)
{
	if (size == sizeof(uint64_t)) {
		uint64_t u = v;
		memcpy(dst, &u, sizeof u);
	} else {
		uint32_t u = (uint32_t)v;
		SK_ASSERT(size == sizeof(uint32_t) && v <= UINT32_MAX);
		memcpy(dst, &u, sizeof u);
	}
}

static void store_int(void *dst, size_t size, int v)
{
	SK_ASSERT(size == sizeof(int));
	memcpy(dst, &v, sizeof v);
}

static void store_str(void *dst, char *s)
{
	free(get_ptr(dst));
	set_ptr(dst, s);
}

/* Formats a size with the largest unit that divides it: 16384 -> "16k". */
static const char *fmt_size(uint64_t v, char *out, size_t outlen)
{
	if (v != 0 && v % TIB == 0)
		snprintf(out, outlen, "%llut", (unsigned long long)(v / TIB));
	else if (v != 0 && v % GIB == 0)
		snprintf(out, outlen, "%llug", (unsigned long long)(v / GIB));
	else if (v != 0 && v % MIB == 0)
		snprintf(out, outlen, "%llum", (unsigned long long)(v / MIB));
	else if (v != 0 && v % KIB == 0)
		snprintf(out, outlen, "%lluk", (unsigned long long)(v / KIB));
	else
		snprintf(out, outlen, "%llu", (unsigned long long)v);
	return out;
}

/* Same for milliseconds: 120000 -> "2m", 1500 -> "1500ms", 0 -> "0s". */
static const char *fmt_duration(uint64_t ms, char *out, size_t outlen)
{
	if (ms == 0)
		snprintf(out, outlen, "0s");
	else if (ms % MS_DAY == 0)
		snprintf(out, outlen, "%llud", (unsigned long long)(ms / MS_DAY));
	else if (ms % MS_HOUR == 0)
		snprintf(out, outlen, "%lluh", (unsigned long long)(ms / MS_HOUR));
	else if (ms % MS_MINUTE == 0)
		snprintf(out, outlen, "%llum",
			 (unsigned long long)(ms / MS_MINUTE));
	else if (ms % MS_SECOND == 0)
		snprintf(out, outlen, "%llus",
			 (unsigned long long)(ms / MS_SECOND));
	else
		snprintf(out, outlen, "%llums", (unsigned long long)ms);
	return out;
}

/*
 * Quotes an untrusted value for a message: at most 48 bytes of it, with
 * quotes and backslashes escaped and anything outside visible ASCII as
 * \xHH, so one bad byte cannot break the one-line error format.
 */
static const char *quote(const char *s, size_t len, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0, shown = len > 48 ? 48 : len;

	SK_ASSERT(outlen >= 4 * 48 + 8);
	out[o++] = '"';
	for (i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c > 0x7e) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	if (shown < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

#define QUOTE_MAX (4 * 48 + 8)

/* ------------------------------------------------------------------ */
/* Scalar conversion                                                   */
/* ------------------------------------------------------------------ */

enum conv {
	CONV_OK,
	CONV_SYNTAX, /* not of the type: "expected a duration such as ..." */
	CONV_RANGE,  /* of the type, out of bounds: "expected ... from to" */
	CONV_WHY,    /* something else went wrong; why says what */
};

/* Leading decimal digits of s; CONV_RANGE on overflow. *used is set to
 * the count consumed, 0 meaning there were none. */
static enum conv parse_digits(const char *s, size_t len, uint64_t *v,
			      size_t *used)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (n > (UINT64_MAX - d) / 10)
			return CONV_RANGE;
		n = n * 10 + d;
	}
	*v = n;
	*used = i;
	return i > 0 ? CONV_OK : CONV_SYNTAX;
}

static enum conv parse_uint(const char *s, size_t len, uint64_t *v)
{
	size_t used;
	enum conv rc = parse_digits(s, len, v, &used);

	if (rc != CONV_OK)
		return rc;
	return used == len ? CONV_OK : CONV_SYNTAX;
}

struct unit {
	const char *name;
	uint64_t mult;
};

/* Digits followed by one of units (compared case-insensitively when
 * nocase), scaled; a value that would overflow is out of range. */
static enum conv parse_scaled(const char *s, size_t len,
			      const struct unit *units, size_t nunits,
			      bool nocase, uint64_t *v)
{
	size_t used, i, ulen;
	uint64_t n;
	enum conv rc = parse_digits(s, len, &n, &used);

	if (rc != CONV_OK)
		return rc;
	ulen = len - used;
	for (i = 0; i < nunits; i++) {
		if (strlen(units[i].name) != ulen ||
		    (nocase ? strncasecmp(s + used, units[i].name, ulen)
			    : memcmp(s + used, units[i].name, ulen)) != 0)
			continue;
		if (n > UINT64_MAX / units[i].mult)
			return CONV_RANGE;
		*v = n * units[i].mult;
		return CONV_OK;
	}
	return CONV_SYNTAX;
}

/* "16k" and "16KiB" are both 16384; "16kb" is refused rather than guessed
 * to be 16000 or 16384. */
static enum conv parse_size(const char *s, size_t len, uint64_t *v)
{
	static const struct unit units[] = {
		{"", 1},      {"k", KIB}, {"kib", KIB}, {"m", MIB}, {"mib", MIB},
		{"g", GIB},   {"gib", GIB}, {"t", TIB}, {"tib", TIB},
	};

	return parse_scaled(s, len, units, NFIELDS(units), true, v);
}

/* A duration always has a unit: a bare "30" is refused, since whether it
 * meant seconds or milliseconds is exactly the mistake to catch. */
static enum conv parse_duration(const char *s, size_t len, uint64_t *v)
{
	static const struct unit units[] = {
		{"ms", 1},	   {"s", MS_SECOND}, {"m", MS_MINUTE},
		{"h", MS_HOUR}, {"d", MS_DAY},
	};

	return parse_scaled(s, len, units, NFIELDS(units), false, v);
}

int config_parse_duration(const char *s, uint64_t *ms)
{
	return parse_duration(s, strlen(s), ms) == CONV_OK ? 0 : -EINVAL;
}

static enum conv parse_bool(const char *s, size_t len, int *v)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};
	size_t i;

	for (i = 0; i < 3; i++) {
		if (strlen(yes[i]) == len && strncasecmp(s, yes[i], len) == 0) {
			*v = 1;
			return CONV_OK;
		}
		if (strlen(no[i]) == len && strncasecmp(s, no[i], len) == 0) {
			*v = 0;
			return CONV_OK;
		}
	}
	return CONV_SYNTAX;
}

/*
 * [+-]digits[.digits][e[+-]digits], or .digits: plain decimal only. Hex,
 * "inf" and "nan", which strtod() would take, are refused, and so is a
 * value too large for a double.
 */
static enum conv parse_float(const char *s, size_t len, double *v)
{
	char buf[64], *end;
	bool digits = false;
	size_t i = 0;
	double d;

	if (len == 0 || len >= sizeof buf)
		return CONV_SYNTAX;
	if (s[i] == '+' || s[i] == '-')
		i++;
	for (; i < len && isdigit((unsigned char)s[i]); i++)
		digits = true;
	if (i < len && s[i] == '.')
		for (i++; i < len && isdigit((unsigned char)s[i]); i++)
			digits = true;
	if (!digits)
		return CONV_SYNTAX;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i == len || !isdigit((unsigned char)s[i]))
			return CONV_SYNTAX;
		while (i < len && isdigit((unsigned char)s[i]))
			i++;
	}
	if (i != len)
		return CONV_SYNTAX;
	memcpy(buf, s, len);
	buf[len] = '\0';
	d = strtod(buf, &end);
	if (!isfinite(d))
		return CONV_RANGE;
	*v = d;
	return CONV_OK;
}

static bool is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static bool is_visible(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* RFC 9110 tchar. */
static bool is_token_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/*
 * "ip:port", "[v6]:port" or "host:port". Numeric hosts are taken as they
 * are; a name goes through getaddrinfo() and its first answer is kept, so
 * a name that does not resolve fails the load instead of the first
 * request. An IPv6 address must be bracketed: "::1:80" is ambiguous.
 */
static enum conv parse_addr(const char *s, size_t len, struct cfg_addr *out,
			    char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL;
	const char *host, *colon;
	char hbuf[256], pbuf[8];
	size_t hlen, plen, i;
	uint64_t port;
	bool v6 = false;
	int rc;

	if (len > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', len);

		if (rb == NULL || rb + 1 == s + len || rb[1] != ':')
			return CONV_SYNTAX;
		host = s + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
		v6 = true;
	} else {
		colon = memrchr(s, ':', len);
		if (colon == NULL)
			return CONV_SYNTAX;
		host = s;
		hlen = (size_t)(colon - s);
		if (memchr(host, ':', hlen) != NULL)
			return CONV_SYNTAX;
		for (i = 0; i < hlen; i++)
			if (!is_host_char((unsigned char)host[i]))
				return CONV_SYNTAX;
	}
	plen = len - (size_t)(colon + 1 - s);
	if (hlen == 0 || hlen >= sizeof hbuf || plen == 0 || plen > 5 ||
	    parse_uint(colon + 1, plen, &port) != CONV_OK || port == 0 ||
	    port > 65535)
		return CONV_SYNTAX;
	memcpy(hbuf, host, hlen);
	hbuf[hlen] = '\0';
	snprintf(pbuf, sizeof pbuf, "%u", (unsigned)port);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
	rc = getaddrinfo(hbuf, pbuf, &hints, &res);
	if (rc != 0 && v6)
		return CONV_SYNTAX;
	if (rc != 0) {
		hints.ai_flags = AI_NUMERICSERV;
		rc = getaddrinfo(hbuf, pbuf, &hints, &res);
	}
	if (rc != 0) {
		snprintf(why, whylen, "cannot resolve \"%s\": %s", hbuf,
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return CONV_WHY;
	}
	SK_ASSERT(res->ai_addrlen <= sizeof out->sa);
	free(out->text);
	memset(out, 0, sizeof *out);
	memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
	out->salen = res->ai_addrlen;
	out->text = xstrndup(s, len);
	freeaddrinfo(res);
	return CONV_OK;
}

/*
 * Converts the text s (len bytes, no NUL inside) for f and stores it at
 * dst, replacing (and freeing) what was there. dir, when not NULL, is the
 * base of relative T_FILE paths. On CONV_WHY, why holds the message.
 */
static enum conv convert(const struct field *f, const char *s, size_t len,
			 void *dst, const char *dir, char *why, size_t whylen)
{
	enum conv rc;
	uint64_t v = 0;
	size_t i;
	int b;

	switch (f->type) {
	case T_INT:
		rc = parse_uint(s, len, &v);
		goto bounded;
	case T_SIZE:
		rc = parse_size(s, len, &v);
		goto bounded;
	case T_DURATION:
		rc = parse_duration(s, len, &v);
	bounded:
		if (rc != CONV_OK)
			return rc;
		if (v < f->min || v > f->max)
			return CONV_RANGE;
		store_uint(dst, f->size, v);
		return CONV_OK;
	case T_BOOL:
		if (parse_bool(s, len, &b) != CONV_OK)
			return CONV_SYNTAX;
		store_int(dst, f->size, b);
		return CONV_OK;
	case T_ENUM:
		for (i = 0; f->names[i] != NULL; i++) {
			if (strlen(f->names[i]) == len &&
			    memcmp(f->names[i], s, len) == 0) {
				store_int(dst, f->size, (int)i);
				return CONV_OK;
			}
		}
		return CONV_SYNTAX;
	case T_NAME:
		if (len < f->min || len > f->max)
			return CONV_SYNTAX;
		for (i = 0; i < len; i++)
			if (!is_name_char((unsigned char)s[i]))
				return CONV_SYNTAX;
		store_str(dst, xstrndup(s, len));
		return CONV_OK;
	case T_URLPATH:
		if (len < f->min || len > f->max || s[0] != '/')
			return CONV_SYNTAX;
		for (i = 0; i < len; i++)
			if (!is_visible((unsigned char)s[i]))
				return CONV_SYNTAX;
		store_str(dst, xstrndup(s, len));
		return CONV_OK;
	case T_FILE: {
		char *p;
		size_t dlen;

		if (len < f->min || len > f->max)
			return CONV_SYNTAX;
		if (s[0] == '/' || dir == NULL) {
			store_str(dst, xstrndup(s, len));
			return CONV_OK;
		}
		dlen = strlen(dir);
		p = xrealloc(NULL, dlen + 1 + len + 1);
		memcpy(p, dir, dlen);
		p[dlen] = '/';
		memcpy(p + dlen + 1, s, len);
		p[dlen + 1 + len] = '\0';
		store_str(dst, p);
		return CONV_OK;
	}
	case T_ADDR:
		return parse_addr(s, len, dst, why, whylen);
	case T_STR:
		if (len < f->min || len > f->max)
			return CONV_SYNTAX;
		for (i = 0; i < len; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				return CONV_SYNTAX;
		store_str(dst, xstrndup(s, len));
		return CONV_OK;
	case T_FLOAT: {
		double d;

		rc = parse_float(s, len, &d);
		if (rc != CONV_OK)
			return rc;
		if (!(d >= f->fmin && d <= f->fmax))
			return CONV_RANGE;
		SK_ASSERT(f->size == sizeof(double));
		memcpy(dst, &d, sizeof d);
		return CONV_OK;
	}
	case T_CRON: {
		struct cron cr;
		char *e = xstrndup(s, len);

		if (cron_parse(e, &cr, why, whylen) != 0) {
			free(e);
			return CONV_WHY;
		}
		store_str(dst, e);
		return CONV_OK;
	}
	case T_TOKEN:
		if (len < f->min || len > f->max)
			return CONV_SYNTAX;
		for (i = 0; i < len; i++)
			if (!is_token_char((unsigned char)s[i]))
				return CONV_SYNTAX;
		store_str(dst, xstrndup(s, len));
		return CONV_OK;
	case T_HOST: {
		char *h;
		size_t start = 0;

		if (len < f->min || len > f->max)
			return CONV_SYNTAX;
		if (len > 2 && s[0] == '*' && s[1] == '.')
			start = 2;
		for (i = start; i < len; i++)
			if (!is_host_char((unsigned char)s[i]) || s[i] == '_')
				return CONV_SYNTAX;
		if (s[len - 1] == '.' || s[start] == '.')
			return CONV_SYNTAX;
		h = xstrndup(s, len);
		for (i = 0; i < len; i++)
			h[i] = (char)tolower((unsigned char)h[i]);
		store_str(dst, h);
		return CONV_OK;
	}
	case T_MAP:
	case T_LIST:
	case T_DICT:
		break;
	}
	SK_ASSERT(!"convert() called on a map or a list");
	return CONV_SYNTAX;
}

/*
 * What f accepts, as the object of "expected ...". range selects the
 * bounds wording for types whose syntax and bounds are worth telling
 * apart ("a duration such as 2s" versus "a duration from 1ms to 1d").
 */
static const char *expectation(const struct field *f, bool range, char *out,
			       size_t outlen)
{
	char lo[32], hi[32];
	size_t i, o;

	switch (f->type) {
	case T_INT:
		snprintf(out, outlen, "an integer from %llu to %llu",
			 (unsigned long long)f->min,
			 (unsigned long long)f->max);
		break;
	case T_SIZE:
		if (range)
			snprintf(out, outlen, "a size from %s to %s",
				 fmt_size(f->min, lo, sizeof lo),
				 fmt_size(f->max, hi, sizeof hi));
		else
			snprintf(out, outlen, "a size such as 512, 16k or 10m");
		break;
	case T_DURATION:
		if (range)
			snprintf(out, outlen, "a duration from %s to %s",
				 fmt_duration(f->min, lo, sizeof lo),
				 fmt_duration(f->max, hi, sizeof hi));
		else
			snprintf(out, outlen,
				 "a duration such as 500ms, 2s or 1m");
		break;
	case T_BOOL:
		snprintf(out, outlen, "true or false");
		break;
	case T_ENUM:
		o = (size_t)snprintf(out, outlen, "one of");
		for (i = 0; f->names[i] != NULL && o < outlen; i++)
			o += (size_t)snprintf(out + o, outlen - o, "%s %s",
					      i ? "," : "", f->names[i]);
		break;
	case T_NAME:
		snprintf(out, outlen,
			 "a name of %llu to %llu characters from A-Z a-z 0-9 "
			 "_ . -",
			 (unsigned long long)f->min,
			 (unsigned long long)f->max);
		break;
	case T_URLPATH:
		snprintf(out, outlen,
			 "a path starting with / without spaces or control "
			 "characters");
		break;
	case T_FILE:
		snprintf(out, outlen, "a file path");
		break;
	case T_ADDR:
		snprintf(out, outlen,
			 "an address such as 127.0.0.1:8080, [::1]:8080 or "
			 "host:8080");
		break;
	case T_TOKEN:
		snprintf(out, outlen,
			 "a header or cookie name (letters, digits and "
			 "!#$%%&'*+-.^_`|~)");
		break;
	case T_HOST:
		snprintf(out, outlen,
			 "a host name such as shop.example.com or "
			 "*.example.com");
		break;
	case T_STR:
		snprintf(out, outlen, "text of %llu to %llu characters",
			 (unsigned long long)f->min, (unsigned long long)f->max);
		break;
	case T_CRON:
		snprintf(out, outlen, "a cron expression such as \"0 3 * * *\"");
		break;
	case T_FLOAT:
		if (f->fmin == -DBL_MAX && f->fmax == DBL_MAX)
			snprintf(out, outlen, range ? "a finite number"
						    : "a number such as 0.5 or 2");
		else
			snprintf(out, outlen, "a number from %g to %g",
				 f->fmin, f->fmax);
		break;
	case T_MAP:
	case T_DICT:
		snprintf(out, outlen, "a map");
		break;
	case T_LIST:
		snprintf(out, outlen, f->sub && f->sub->scalar ? "a list"
							       : "a list of maps");
		break;
	}
	return out;
}

/* ------------------------------------------------------------------ */
/* Objects: defaults and destruction                                   */
/* ------------------------------------------------------------------ */

/* Applies every default of sec to the zeroed obj, recursing into maps
 * that are always there. Optional maps and list entries get theirs when
 * they appear in the file. */
static void init_obj(const struct section *sec, void *obj)
{
	char why[256];
	enum conv rc;
	size_t i;

	SK_ASSERT(sec->nfields <= SECTION_MAX_FIELDS);
	for (i = 0; i < sec->nfields; i++) {
		const struct field *f = &sec->fields[i];
		void *dst = (char *)obj + f->off;

		if (f->type == T_MAP && !(f->flags & F_OPTIONAL))
			init_obj(f->sub, dst);
		if (f->type == T_MAP || f->type == T_LIST ||
		    f->type == T_DICT || f->def == NULL)
			continue;
		rc = convert(f, f->def, strlen(f->def), dst, NULL, why,
			     sizeof why);
		SK_ASSERT(rc == CONV_OK);
	}
}

/* Frees what obj owns according to sec; obj itself stays. */
static void free_obj(const struct section *sec, void *obj)
{
	size_t i, j, n;

	for (i = 0; i < sec->nfields; i++) {
		const struct field *f = &sec->fields[i];
		void *dst = (char *)obj + f->off;
		struct cfg_addr *a;
		char *arr;

		switch (f->type) {
		case T_NAME:
		case T_URLPATH:
		case T_FILE:
		case T_TOKEN:
		case T_HOST:
		case T_STR:
		case T_CRON:
			store_str(dst, NULL);
			break;
		case T_ADDR:
			a = dst;
			free(a->text);
			a->text = NULL;
			break;
		case T_MAP:
			free_obj(f->sub, dst);
			break;
		case T_LIST:
		case T_DICT:
			arr = get_ptr(dst);
			memcpy(&n, (char *)obj + f->aux, sizeof n);
			for (j = 0; j < n; j++)
				free_obj(f->sub, arr + j * f->sub->size);
			free(arr);
			set_ptr(dst, NULL);
			n = 0;
			memcpy((char *)obj + f->aux, &n, sizeof n);
			break;
		default:
			break;
		}
	}
}

static void config_free(struct config *c)
{
	free_obj(&root_section, c);
	free(c->path);
	c->path = NULL;
	free(c);
}

/* ------------------------------------------------------------------ */
/* Loader                                                              */
/* ------------------------------------------------------------------ */

struct loader {
	yaml_parser_t parser;
	yaml_event_t ev;    /* the current event, valid when have_ev */
	bool have_ev;
	const char *input;  /* the YAML text, for reader-error line numbers */
	size_t inputlen;
	const char *name;   /* file name in messages */
	const char *dir;    /* base of relative paths, or NULL */
	char path[256];	    /* key path of what is being read */
	size_t pathlen;
	char *err;
	size_t errlen;
};

/* Writes "name:line: path: message" to the caller's buffer; returns -1 so
 * that callers can "return fail(...)". line 0 leaves the line out. */
__attribute__((format(printf, 3, 4))) static int
fail(struct loader *l, int line, const char *fmt, ...)
{
	char msg[768], where[32] = "";
	va_list ap;

	if (l->err == NULL || l->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof where, ":%d", line);
	snprintf(l->err, l->errlen, "%s%s: %s%s%s", l->name, where, l->path,
		 l->pathlen ? ": " : "", msg);
	return -1;
}

static size_t path_push(struct loader *l, const char *name, size_t len)
{
	size_t old = l->pathlen;
	int n;

	n = snprintf(l->path + old, sizeof l->path - old, "%s%.*s",
		     old ? "." : "", (int)len, name);
	if (n > 0)
		l->pathlen += (size_t)n;
	if (l->pathlen >= sizeof l->path)
		l->pathlen = sizeof l->path - 1;
	return old;
}

static size_t path_push_index(struct loader *l, size_t i)
{
	size_t old = l->pathlen;
	int n;

	n = snprintf(l->path + old, sizeof l->path - old, "[%zu]", i);
	if (n > 0)
		l->pathlen += (size_t)n;
	if (l->pathlen >= sizeof l->path)
		l->pathlen = sizeof l->path - 1;
	return old;
}

static void path_pop(struct loader *l, size_t old)
{
	l->pathlen = old;
	l->path[old] = '\0';
}

/* An odd key goes into the path quoted, so the line stays one line. */
static size_t path_push_key(struct loader *l, const char *key, size_t len)
{
	char shown[QUOTE_MAX];
	size_t i;

	for (i = 0; i < len; i++)
		if (!is_name_char((unsigned char)key[i]))
			break;
	if (i == len && len > 0 && len <= 64)
		return path_push(l, key, len);
	return path_push(l, shown, strlen(quote(key, len, shown, sizeof shown)));
}

static int ev_line(const struct loader *l)
{
	return (int)l->ev.start_mark.line + 1;
}

static int syntax_error(struct loader *l)
{
	const yaml_parser_t *p = &l->parser;
	const char *problem = p->problem ? p->problem : "cannot parse";
	size_t old = l->pathlen, i, off;
	int line;

	/* The path of a syntax error would only mislead: the parser is
	 * ahead of the walker. */
	path_pop(l, 0);
	if (p->error == YAML_READER_ERROR) {
		/* Reader errors (bad UTF-8, NUL bytes) carry only an offset. */
		off = p->problem_offset < l->inputlen ? p->problem_offset
						       : l->inputlen;
		for (line = 1, i = 0; i < off; i++)
			line += l->input[i] == '\n';
		fail(l, line, "invalid YAML: %s (byte %zu)", problem,
		     p->problem_offset);
	} else if (p->error == YAML_MEMORY_ERROR) {
		fail(l, 0, "out of memory while parsing");
	} else if (p->context != NULL) {
		fail(l, (int)p->problem_mark.line + 1,
		     "invalid YAML: %s (%s on line %d)", problem, p->context,
		     (int)p->context_mark.line + 1);
	} else {
		fail(l, (int)p->problem_mark.line + 1, "invalid YAML: %s",
		     problem);
	}
	l->pathlen = old;
	return -1;
}

/* Moves to the next event, refusing the YAML features the format does
 * not use: a config must read the same to a person as to the loader. */
static int next(struct loader *l)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;

	if (l->have_ev) {
		yaml_event_delete(&l->ev);
		l->have_ev = false;
	}
	if (!yaml_parser_parse(&l->parser, &l->ev))
		return syntax_error(l);
	l->have_ev = true;
	switch (l->ev.type) {
	case YAML_ALIAS_EVENT:
		return fail(l, ev_line(l),
			    "YAML aliases (*%s) are not supported; write the "
			    "value out",
			    (const char *)l->ev.data.alias.anchor);
	case YAML_SCALAR_EVENT:
		anchor = l->ev.data.scalar.anchor;
		tag = l->ev.data.scalar.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = l->ev.data.mapping_start.anchor;
		tag = l->ev.data.mapping_start.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = l->ev.data.sequence_start.anchor;
		tag = l->ev.data.sequence_start.tag;
		break;
	default:
		break;
	}
	if (anchor != NULL)
		return fail(l, ev_line(l),
			    "YAML anchors (&%s) are not supported",
			    (const char *)anchor);
	if (tag != NULL)
		return fail(l, ev_line(l), "YAML tags (%s) are not supported",
			    (const char *)tag);
	return 0;
}

/* "", "~" and "null" written plainly are YAML's null: "key:" with nothing
 * after it. A quoted "" is a string, and fails like any other bad text. */
static bool is_null(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return len == 0 || (len == 1 && v[0] == '~') ||
	       (len == 4 && strncasecmp(v, "null", 4) == 0);
}

/* The current event is not what f wants: say what it is instead. */
static int mismatch(struct loader *l, const struct field *f)
{
	char exp[256], got[QUOTE_MAX];
	const char *what = got;

	expectation(f, false, exp, sizeof exp);
	if (l->ev.type == YAML_MAPPING_START_EVENT)
		what = "a map";
	else if (l->ev.type == YAML_SEQUENCE_START_EVENT)
		what = "a list";
	else if (l->ev.type == YAML_SCALAR_EVENT && is_null(&l->ev))
		what = "nothing";
	else if (l->ev.type == YAML_SCALAR_EVENT)
		quote((const char *)l->ev.data.scalar.value,
		      l->ev.data.scalar.length, got, sizeof got);
	else
		what = "something else";
	return fail(l, ev_line(l), "expected %s, got %s", exp, what);
}

static int set_scalar(struct loader *l, const struct field *f, void *dst)
{
	const char *v = (const char *)l->ev.data.scalar.value;
	size_t len = l->ev.data.scalar.length;
	char exp[256], got[QUOTE_MAX], why[512];
	enum conv rc;

	if (is_null(&l->ev) || memchr(v, '\0', len) != NULL)
		return mismatch(l, f);
	rc = convert(f, v, len, dst, l->dir, why, sizeof why);
	switch (rc) {
	case CONV_OK:
		return 0;
	case CONV_WHY:
		return fail(l, ev_line(l), "%s", why);
	case CONV_SYNTAX:
	case CONV_RANGE:
		break;
	}
	return fail(l, ev_line(l), "expected %s, got %s",
		    expectation(f, rc == CONV_RANGE, exp, sizeof exp),
		    quote(v, len, got, sizeof got));
}

static int walk_map(struct loader *l, const struct section *sec, void *obj);

static int finish_map(struct loader *l, const struct section *sec, void *obj,
		      const struct mapinfo *mi);

/* The current event starts f's list; its entries are maps of f->sub. */
static int walk_list(struct loader *l, const struct field *f, void *obj)
{
	const struct section *sub = f->sub;
	void *slot = (char *)obj + f->off;
	size_t n, old;
	int line = ev_line(l);
	char *arr;

	if (l->ev.type != YAML_SEQUENCE_START_EVENT)
		return mismatch(l, f);
	for (;;) {
		if (next(l) < 0)
			return -1;
		if (l->ev.type == YAML_SEQUENCE_END_EVENT)
			break;
		memcpy(&n, (char *)obj + f->aux, sizeof n);
		if (n == f->max)
			return fail(l, ev_line(l), "expected at most %llu %s%s",
				    (unsigned long long)f->max, sub->noun,
				    f->max == 1 ? "" : "s");
		old = path_push_index(l, n);
		if (sub->scalar) {
			if (l->ev.type != YAML_SCALAR_EVENT)
				return mismatch(l, &sub->fields[0]);
		} else if (l->ev.type != YAML_MAPPING_START_EVENT) {
			static const struct field entry = {.type = T_MAP};

			return mismatch(l, &entry);
		}
		/* Zero and default the new entry before it is counted, so
		 * an error inside it leaves a list free_obj() can walk. */
		arr = xrealloc(get_ptr(slot), (n + 1) * sub->size);
		set_ptr(slot, arr);
		memset(arr + n * sub->size, 0, sub->size);
		init_obj(sub, arr + n * sub->size);
		n++;
		memcpy((char *)obj + f->aux, &n, sizeof n);
		if (sub->scalar) {
			if (set_scalar(l, &sub->fields[0],
				       arr + (n - 1) * sub->size +
					       sub->fields[0].off) < 0)
				return -1;
		} else if (walk_map(l, sub, arr + (n - 1) * sub->size) < 0) {
			return -1;
		}
		path_pop(l, old);
	}
	memcpy(&n, (char *)obj + f->aux, sizeof n);
	if (n < f->min)
		return fail(l, line, "expected at least %llu %s%s, got none",
			    (unsigned long long)f->min, sub->noun,
			    f->min == 1 ? "" : "s");
	return 0;
}

/*
 * The current event starts f's map of named entries (T_DICT): each key
 * becomes an entry of f->sub, in the order of the file, with the key in
 * fields[0] (a string type) and the value in fields[1] (a scalar
 * section, whose check, if any, runs on each entry) or, as a map, in
 * the section's other fields.
 */
static int walk_dict(struct loader *l, const struct field *f, void *obj)
{
	const struct section *sub = f->sub;
	const struct field *kf = &sub->fields[0];
	void *slot = (char *)obj + f->off;
	const char *key, *other;
	size_t n, len, i, old;
	char *arr, *ent;
	int line, first;

	SK_ASSERT(sub->scalar ? sub->nfields == 2 : sub->keyed);
	SK_ASSERT(sub->line_off != NO_LINE);
	if (l->ev.type != YAML_MAPPING_START_EVENT)
		return mismatch(l, f);
	for (;;) {
		if (next(l) < 0)
			return -1;
		if (l->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (l->ev.type != YAML_SCALAR_EVENT)
			return fail(l, ev_line(l), "expected a key, got a %s",
				    l->ev.type == YAML_SEQUENCE_START_EVENT
					    ? "list"
					    : "map");
		key = (const char *)l->ev.data.scalar.value;
		len = l->ev.data.scalar.length;
		line = ev_line(l);
		old = path_push_key(l, key, len);
		memcpy(&n, (char *)obj + f->aux, sizeof n);
		arr = get_ptr(slot);
		for (i = 0; i < n; i++) {
			other = get_ptr(arr + i * sub->size + kf->off);
			if (other == NULL || strlen(other) != len ||
			    memcmp(other, key, len) != 0)
				continue;
			memcpy(&first, arr + i * sub->size + sub->line_off,
			       sizeof first);
			return fail(l, line, "duplicate key (first on line %d)",
				    first);
		}
		if (n == f->max)
			return fail(l, line, "expected at most %llu %s%s",
				    (unsigned long long)f->max, sub->noun,
				    f->max == 1 ? "" : "s");
		/* As in walk_list: zeroed and defaulted before counted. */
		arr = xrealloc(arr, (n + 1) * sub->size);
		set_ptr(slot, arr);
		ent = arr + n * sub->size;
		memset(ent, 0, sub->size);
		init_obj(sub, ent);
		n++;
		memcpy((char *)obj + f->aux, &n, sizeof n);
		store_int(ent + sub->line_off, sizeof(int), line);
		if (set_scalar(l, kf, ent + kf->off) < 0 || next(l) < 0)
			return -1;
		if (sub->scalar) {
			struct mapinfo mi = {.sec = sub, .line = line};

			if (l->ev.type != YAML_SCALAR_EVENT)
				return mismatch(l, &sub->fields[1]);
			if (set_scalar(l, &sub->fields[1],
				       ent + sub->fields[1].off) < 0)
				return -1;
			if (sub->check && sub->check(l, ent, &mi) < 0)
				return -1;
		} else {
			static const struct field entry = {.type = T_MAP};

			if (l->ev.type != YAML_MAPPING_START_EVENT)
				return mismatch(l, &entry);
			if (walk_map(l, sub, ent) < 0)
				return -1;
			/* The entry is where its key is, not its value. */
			store_int(ent + sub->line_off, sizeof(int), line);
		}
		path_pop(l, old);
	}
	return 0;
}

/* The current event is f's value, which goes into obj. */
static int walk_value(struct loader *l, const struct field *f, void *obj)
{
	void *dst = (char *)obj + f->off;

	switch (f->type) {
	case T_MAP:
		if (l->ev.type != YAML_MAPPING_START_EVENT)
			return mismatch(l, f);
		if (f->flags & F_OPTIONAL) {
			init_obj(f->sub, dst);
			store_int((char *)dst + f->aux, sizeof(int), 1);
		}
		return walk_map(l, f->sub, dst);
	case T_LIST:
		return walk_list(l, f, obj);
	case T_DICT:
		return walk_dict(l, f, obj);
	default:
		if (l->ev.type != YAML_SCALAR_EVENT)
			return mismatch(l, f);
		return set_scalar(l, f, dst);
	}
}

static const struct field *lookup(const struct section *sec, const char *key,
				  size_t len)
{
	size_t i;

	/* A keyed section's fields[0] is its entry's key in the enclosing
	 * map, never a key of its own. */
	for (i = sec->keyed ? 1 : 0; i < sec->nfields; i++)
		if (strlen(sec->fields[i].name) == len &&
		    memcmp(sec->fields[i].name, key, len) == 0)
			return &sec->fields[i];
	return NULL;
}

static int unknown_key(struct loader *l, const struct section *sec,
		       const char *key, size_t len)
{
	char keys[512];
	size_t i, o = 0;

	path_push_key(l, key, len);
	keys[0] = '\0';
	for (i = sec->keyed ? 1 : 0; i < sec->nfields && o < sizeof keys; i++)
		o += (size_t)snprintf(keys + o, sizeof keys - o, "%s%s",
				      o ? ", " : "", sec->fields[i].name);
	return fail(l, ev_line(l), "unknown key (expected one of: %s)", keys);
}

/* The current event starts a map described by sec, to be read into obj
 * (already defaulted). Reads through the matching end event. */
static int walk_map(struct loader *l, const struct section *sec, void *obj)
{
	struct mapinfo mi;
	const struct field *f;
	const char *key;
	size_t len, idx, old;

	memset(&mi, 0, sizeof mi);
	mi.sec = sec;
	mi.line = ev_line(l);
	for (;;) {
		if (next(l) < 0)
			return -1;
		if (l->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (l->ev.type != YAML_SCALAR_EVENT)
			return fail(l, ev_line(l),
				    "expected a key, got a %s",
				    l->ev.type == YAML_SEQUENCE_START_EVENT
					    ? "list"
					    : "map");
		key = (const char *)l->ev.data.scalar.value;
		len = l->ev.data.scalar.length;
		f = lookup(sec, key, len);
		if (f == NULL)
			return unknown_key(l, sec, key, len);
		idx = (size_t)(f - sec->fields);
		old = path_push(l, f->name, strlen(f->name));
		if (mi.lines[idx] != 0)
			return fail(l, ev_line(l),
				    "duplicate key (first on line %d)",
				    mi.lines[idx]);
		mi.lines[idx] = ev_line(l);
		if (next(l) < 0 || walk_value(l, f, obj) < 0)
			return -1;
		path_pop(l, old);
	}
	return finish_map(l, sec, obj, &mi);
}

/* Required keys, the map's line, then the section's own checks. */
static int finish_map(struct loader *l, const struct section *sec, void *obj,
		      const struct mapinfo *mi)
{
	size_t i, old;

	for (i = 0; i < sec->nfields; i++) {
		if (!(sec->fields[i].flags & F_REQUIRED) || mi->lines[i] != 0)
			continue;
		old = path_push(l, sec->fields[i].name,
				strlen(sec->fields[i].name));
		fail(l, mi->line, "required key is missing");
		path_pop(l, old);
		return -1;
	}
	if (sec->line_off != NO_LINE)
		store_int((char *)obj + sec->line_off, sizeof(int), mi->line);
	return sec->check ? sec->check(l, obj, mi) : 0;
}

/* ------------------------------------------------------------------ */
/* Cross-field checks                                                  */
/* ------------------------------------------------------------------ */

/* Line of key in the map mi describes, 0 if the file did not write it. */
static int key_written(const struct mapinfo *mi, const char *key)
{
	const struct field *f = lookup(mi->sec, key, strlen(key));

	SK_ASSERT(f != NULL);
	return mi->lines[f - mi->sec->fields];
}

/* Same, falling back to the map's own line for a default. */
static int key_line(const struct mapinfo *mi, const char *key)
{
	int line = key_written(mi, key);

	return line ? line : mi->line;
}

/* Fails at a key of the current map: "path.key: message". */
__attribute__((format(printf, 4, 5))) static int
fail_at(struct loader *l, const struct mapinfo *mi, const char *key,
	const char *fmt, ...)
{
	char msg[768];
	size_t old;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	old = path_push(l, key, strlen(key));
	fail(l, key_line(mi, key), "%s", msg);
	path_pop(l, old);
	return -1;
}

/*
 * Names in a list must be unique: they key logs, metrics and the admin
 * API. arr holds n entries of sec; each has a char *name at name_off and
 * its line at sec->line_off. Quadratic, which is nothing at 1000 entries.
 */
static int unique_names(struct loader *l, const char *list, const char *arr,
			size_t n, const struct section *sec, size_t name_off)
{
	const char *a, *b;
	size_t i, j, old;
	int line, first;

	for (i = 1; i < n; i++) {
		a = get_ptr(arr + i * sec->size + name_off);
		for (j = 0; j < i; j++) {
			b = get_ptr(arr + j * sec->size + name_off);
			if (strcmp(a, b) != 0)
				continue;
			memcpy(&line, arr + i * sec->size + sec->line_off,
			       sizeof line);
			memcpy(&first, arr + j * sec->size + sec->line_off,
			       sizeof first);
			old = path_push(l, list, strlen(list));
			path_push_index(l, i);
			path_push(l, "name", 4);
			fail(l, line, "duplicate %s name \"%s\" (first on line %d)",
			     sec->noun, a, first);
			path_pop(l, old);
			return -1;
		}
	}
	return 0;
}

static int check_root(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct config *c = obj;
	size_t i, j, old;

	if (unique_names(l, "pools", (const char *)c->pools, c->npools,
			 &pool_section, offsetof(struct cfg_pool, name)) < 0 ||
	    unique_names(l, "routes", (const char *)c->routes, c->nroutes,
			 &route_section, offsetof(struct cfg_route, name)) < 0)
		return -1;
	/* Routes name pools, which may come later in the file. */
	for (i = 0; i < c->nroutes; i++) {
		struct cfg_route *r = &c->routes[i];

		for (j = 0; j < c->npools; j++)
			if (strcmp(c->pools[j].name, r->pool) == 0)
				break;
		if (j < c->npools) {
			r->pool_index = j;
			continue;
		}
		old = path_push(l, "routes", 6);
		path_push_index(l, i);
		path_push(l, "pool", 4);
		fail(l, r->line, "no pool named \"%s\"", r->pool);
		path_pop(l, old);
		return -1;
	}
	return 0;
}

static int check_pool(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_pool *p = obj;
	size_t i, primaries = 0;

	if (unique_names(l, "backends", (const char *)p->backends,
			 p->nbackends, &backend_section,
			 offsetof(struct cfg_backend, name)) < 0)
		return -1;
	for (i = 0; i < p->nbackends; i++)
		primaries += !p->backends[i].backup;
	if (primaries == 0)
		return fail_at(l, mi, "backends",
			       "needs at least one backend that is not a backup");
	if (p->balance == CFG_BALANCE_HASH &&
	    (p->hash_on == CFG_HASH_HEADER || p->hash_on == CFG_HASH_COOKIE) &&
	    p->hash_name == NULL)
		return fail_at(l, mi, "hash_on",
			       "hash_on: %s needs hash_name (the %s to hash)",
			       hash_on_names[p->hash_on],
			       hash_on_names[p->hash_on]);
	if (p->passive.eject_ms > p->passive.max_eject_ms)
		return fail_at(l, mi, "passive",
			       "passive.eject must not be longer than "
			       "passive.max_eject");
	return 0;
}

static int check_retry(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_retry *r = obj;

	(void)l;
	/* An explicit `methods: []` means: never retry what may have
	 * reached a backend. */
	r->methods_set = key_written(mi, "methods") != 0;
	return 0;
}

static int check_probe(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_probe *p = obj;

	p->has_address = key_written(mi, "address") != 0;
	if (p->timeout_ms >= p->interval_ms)
		return fail_at(l, mi, key_written(mi, "timeout") ? "timeout" : "interval",
			       "timeout must be shorter than interval");
	if (p->status_min > p->status_max)
		return fail_at(l, mi, "status_max",
			       "must not be lower than status_min (%u)",
			       p->status_min);
	switch (p->type) {
	case CFG_PROBE_HTTP:
		if (p->url == NULL || strncmp(p->url, "http://", 7) != 0)
			return fail_at(l, mi, p->url ? "url" : "type",
				       "an http probe needs url: http://host:port/path "
				       "(https is not supported yet)");
		break;
	case CFG_PROBE_TCP:
		if (!p->has_address)
			return fail_at(l, mi, "type", "a tcp probe needs address");
		break;
	case CFG_PROBE_POSTGRESQL:
		if (p->conninfo == NULL)
			return fail_at(l, mi, "type",
				       "a postgresql probe needs conninfo");
		break;
	case CFG_PROBE_SQLITE:
		if (p->path == NULL)
			return fail_at(l, mi, "type", "a sqlite probe needs path");
		break;
	case CFG_PROBE_NAGIOS:
		if (p->ncommand == 0 || p->command[0].arg[0] != '/')
			return fail_at(l, mi, p->ncommand ? "command" : "type",
				       "a nagios probe needs command, starting with "
				       "the plugin's absolute path");
		break;
	}
	return 0;
}

static int check_monitor(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_monitor *m = obj;

	(void)mi;
	return unique_names(l, "probes", (const char *)m->probes, m->nprobes,
			    &probe_section, offsetof(struct cfg_probe, name));
}

/* A Prometheus label name the rule may set: [A-Za-z_][A-Za-z0-9_]*, not
 * reserved ("__...") and not one the engine sets itself. */
static int check_label(struct loader *l, void *obj, const struct mapinfo *mi)
{
	const struct cfg_label *lb = obj;
	const char *n = lb->name;
	size_t i;

	for (i = 0; n[i] != '\0'; i++)
		if (!(isalpha((unsigned char)n[i]) || n[i] == '_' ||
		      (i > 0 && isdigit((unsigned char)n[i]))))
			return fail(l, mi->line,
				    "a label name is letters, digits and _, "
				    "not starting with a digit");
	if (strncmp(n, "__", 2) == 0)
		return fail(l, mi->line, "label names starting with __ are "
					 "reserved");
	if (strcmp(n, "alertname") == 0 || strcmp(n, "severity") == 0)
		return fail(l, mi->line, "%s is set by the rule itself", n);
	return 0;
}

/* The keys of a query that only some functions use: required by theirs,
 * refused with the others (a q on a rate is a mistake, not a no-op). */
static int check_query_keys(struct loader *l, const struct mapinfo *mi,
			    struct cfg_alert_query *q)
{
	static const struct {
		const char *key;
		int fn;
		bool required;
	} only[] = {
		{"q", AFN_QUANTILE, true},
		{"le", AFN_COUNT_ABOVE, true},
		{"horizon", AFN_PREDICT_LINEAR, false},
	};
	size_t i;

	for (i = 0; i < NFIELDS(only); i++) {
		bool written = key_written(mi, only[i].key) != 0;

		if (q->fn == only[i].fn && only[i].required && !written)
			return fail_at(l, mi, "function",
				       "function %s needs %s",
				       config_alert_fn_names[q->fn], only[i].key);
		if (q->fn != only[i].fn && written)
			return fail_at(l, mi, only[i].key,
				       "only used by function: %s",
				       config_alert_fn_names[only[i].fn]);
	}
	if (q->nby > 0 && q->group == 0)
		return fail_at(l, mi, "by",
			       "by needs group (sum, avg, min, max or count)");
	q->expr_line = key_line(mi, "expr");
	return 0;
}

static int check_alert_query(struct loader *l, void *obj,
			     const struct mapinfo *mi)
{
	return check_query_keys(l, mi, obj);
}

static int check_alert_default(struct loader *l, void *obj,
			       const struct mapinfo *mi)
{
	static const struct {
		const char *key;
		unsigned bit;
	} keys[] = {
		{"enabled", CFG_ALERT_SET_ENABLED},
		{"threshold", CFG_ALERT_SET_THRESHOLD},
		{"severity", CFG_ALERT_SET_SEVERITY},
		{"for", CFG_ALERT_SET_FOR},
		{"keep_firing_for", CFG_ALERT_SET_KEEP_FIRING_FOR},
		{"repeat", CFG_ALERT_SET_REPEAT},
		{"labels", CFG_ALERT_SET_LABELS},
		{"summary", CFG_ALERT_SET_SUMMARY},
	};
	struct cfg_alert_default *d = obj;
	size_t i;

	(void)l;
	d->set = 0;
	for (i = 0; i < NFIELDS(keys); i++)
		if (key_written(mi, keys[i].key))
			d->set |= keys[i].bit;
	return 0;
}

static int check_alert_rule(struct loader *l, void *obj,
			    const struct mapinfo *mi)
{
	struct cfg_alert_rule *r = obj;

	r->summary_line = key_line(mi, "summary");
	return check_query_keys(l, mi, &r->expr);
}

static int check_slo_window(struct loader *l, void *obj,
			    const struct mapinfo *mi)
{
	struct cfg_slo_window *w = obj;
	char a[32], b[32];

	if (w->short_ms > w->long_ms)
		return fail_at(l, mi, "short",
			       "must not be longer than long (%s), got %s",
			       fmt_duration(w->long_ms, a, sizeof a),
			       fmt_duration(w->short_ms, b, sizeof b));
	if (!(w->factor > 0))
		return fail_at(l, mi, "factor", "must be greater than 0");
	return 0;
}

static int check_slo(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_slo *s = obj;

	if (!(s->objective > 0 && s->objective < 1))
		return fail_at(l, mi, "objective",
			       "must be between 0 and 1, exclusive (0.999 for "
			       "99.9%%), got %g",
			       s->objective);
	return 0;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int check_notifier(struct loader *l, void *obj,
			  const struct mapinfo *mi)
{
	/* Keys that belong to some types only (a bit per type). */
	static const struct {
		const char *key;
		unsigned types;
	} only[] = {
		{"format", 1u << NT_WEBHOOK},
		{"headers", 1u << NT_WEBHOOK},
		{"resend", 1u << NT_WEBHOOK},
		{"url", 1u << NT_WEBHOOK | 1u << NT_EMAIL},
		{"ca_file", 1u << NT_WEBHOOK | 1u << NT_EMAIL},
		{"tls", 1u << NT_EMAIL},
		{"username", 1u << NT_EMAIL},
		{"password_file", 1u << NT_EMAIL},
		{"from", 1u << NT_EMAIL},
		{"to", 1u << NT_EMAIL},
		{"subject_prefix", 1u << NT_EMAIL},
		{"command", 1u << NT_COMMAND},
	};
	struct cfg_notifier *n = obj;
	const char *type = config_notify_type_names[n->type];
	char a[32], b[32];
	size_t i;

	for (i = 0; i < NFIELDS(only); i++)
		if (!(only[i].types & (1u << n->type)) &&
		    key_written(mi, only[i].key))
			return fail_at(l, mi, only[i].key,
				       "not used by type: %s", type);
	n->password_file_line = key_line(mi, "password_file");
	switch (n->type) {
	case NT_WEBHOOK:
		if (!has_prefix(n->url, "http://") &&
		    !has_prefix(n->url, "https://"))
			return fail_at(l, mi, n->url ? "url" : "type",
				       "a webhook needs url: http://... or "
				       "https://...");
		break;
	case NT_EMAIL:
		if (!has_prefix(n->url, "smtp://") &&
		    !has_prefix(n->url, "smtps://"))
			return fail_at(l, mi, n->url ? "url" : "type",
				       "an email notifier needs url: "
				       "smtp://host[:port] or smtps://...");
		if (n->from == NULL)
			return fail_at(l, mi, "type",
				       "an email notifier needs from");
		if (n->nto == 0)
			return fail_at(l, mi, key_written(mi, "to") ? "to" : "type",
				       "an email notifier needs to (at least "
				       "one address)");
		if (n->password_file != NULL && n->username == NULL)
			return fail_at(l, mi, "password_file",
				       "needs username");
		break;
	case NT_COMMAND:
		if (n->ncommand == 0 || n->command[0].arg[0] != '/')
			return fail_at(l, mi, n->ncommand ? "command" : "type",
				       "a command notifier needs command, "
				       "starting with the program's absolute "
				       "path");
		break;
	}
	if (n->backoff_ms > n->backoff_max_ms)
		return fail_at(l, mi, key_written(mi, "backoff") ? "backoff"
								  : "backoff_max",
			       "backoff (%s) must not be longer than "
			       "backoff_max (%s)",
			       fmt_duration(n->backoff_ms, a, sizeof a),
			       fmt_duration(n->backoff_max_ms, b, sizeof b));
	return 0;
}

static int check_alerts(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_alerts *a = obj;

	a->state_path_set = key_written(mi, "state_path") != 0;
	if (a->external_url != NULL && !has_prefix(a->external_url, "http://") &&
	    !has_prefix(a->external_url, "https://"))
		return fail_at(l, mi, "external_url",
			       "expected an http:// or https:// URL");
	if (unique_names(l, "rules", (const char *)a->rules, a->nrules,
			 &alert_rule_section,
			 offsetof(struct cfg_alert_rule, name)) < 0 ||
	    unique_names(l, "slos", (const char *)a->slos, a->nslos,
			 &slo_section, offsetof(struct cfg_slo, name)) < 0)
		return -1;
	return unique_names(l, "notifiers", (const char *)a->notifiers,
			    a->nnotifiers, &notifier_section,
			    offsetof(struct cfg_notifier, name));
}

static int check_source(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_backup_source *src = obj;

	switch (src->type) {
	case CFG_SRC_SQLITE:
		if (src->path == NULL)
			return fail_at(l, mi, "type",
				       "a sqlite source needs path (the database "
				       "file)");
		break;
	case CFG_SRC_POSTGRESQL:
		if (src->conninfo == NULL)
			return fail_at(l, mi, "type",
				       "a postgresql source needs conninfo");
		break;
	case CFG_SRC_FILES:
		if (src->npaths == 0)
			return fail_at(l, mi, "type",
				       "a files source needs paths");
		break;
	}
	if (src->name == NULL)
		src->name = xstrndup(source_type_names[src->type],
				     strlen(source_type_names[src->type]));
	return 0;
}

static int check_job(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_backup_job *j = obj;

	if ((j->schedule != NULL) == (j->interval_ms != 0))
		return fail_at(l, mi, j->schedule ? "interval" : "name",
			       "a job needs exactly one of schedule and interval");
	return unique_names(l, "sources", (const char *)j->sources, j->nsources,
			    &source_section,
			    offsetof(struct cfg_backup_source, name));
}

static int check_backup(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_backup *b = obj;

	for (size_t i = 0; i < b->njobs; i++) {
		if (b->jobs[i].repository || b->repository)
			continue;
		return fail_at(l, mi, "jobs",
			       "job \"%s\" has no repository and backup.repository "
			       "is not set",
			       b->jobs[i].name);
	}
	return unique_names(l, "jobs", (const char *)b->jobs, b->njobs,
			    &job_section, offsetof(struct cfg_backup_job, name));
}

static int check_idem(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_idempotency *r = obj;

	(void)l;
	r->methods_set = key_written(mi, "methods") != 0;
	return 0;
}

static int check_route(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_route *r = obj;
	static const int idempotent[] = {0 /* GET */, 1 /* HEAD */,
					 5 /* OPTIONS */, 3 /* PUT */,
					 4 /* DELETE */};

	/* The methods default is a list, which the tables cannot apply. */
	if (r->retry.nmethods == 0 && !r->retry.methods_set) {
		r->retry.methods = xrealloc(NULL, sizeof(idempotent) /
							  sizeof(idempotent[0]) *
							  sizeof(*r->retry.methods));
		for (size_t i = 0; i < NFIELDS(idempotent); i++)
			r->retry.methods[i].method = idempotent[i];
		r->retry.nmethods = NFIELDS(idempotent);
	}
	if (r->idempotency.nmethods == 0 && !r->idempotency.methods_set) {
		r->idempotency.methods =
			xrealloc(NULL, 2 * sizeof(*r->idempotency.methods));
		r->idempotency.methods[0].method = 2; /* POST */
		r->idempotency.methods[1].method = 6; /* PATCH */
		r->idempotency.nmethods = 2;
	}
	return 0;
}

static int check_health(struct loader *l, void *obj,
			const struct mapinfo *mi)
{
	struct cfg_health *h = obj;
	char a[32], b[32];

	if (h->status_min > h->status_max)
		return fail_at(l, mi, "status_max",
			       "must not be lower than status_min (%u)",
			       h->status_min);
	if (h->timeout_ms < h->interval_ms)
		return 0;
	/* Blame the key the file wrote: a default is never the mistake. */
	if (key_written(mi, "timeout") || !key_written(mi, "interval"))
		return fail_at(l, mi, "timeout",
			       "must be shorter than interval (%s), got %s",
			       fmt_duration(h->interval_ms, a, sizeof a),
			       fmt_duration(h->timeout_ms, b, sizeof b));
	return fail_at(l, mi, "interval",
		       "must be longer than timeout (%s), got %s",
		       fmt_duration(h->timeout_ms, a, sizeof a),
		       fmt_duration(h->interval_ms, b, sizeof b));
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	const uint8_t *b;

	if (ss->ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family != AF_INET6)
		return false;
	if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
		return true;
	b = sin6->sin6_addr.s6_addr;
	return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && b[12] == 127;
}

int config_read_secret(const char *path, const char *what, size_t max,
		       char **out, size_t *outlen, char *why, size_t whylen)
{
	size_t cap = max + 3, n = 0;
	const char *who;
	struct stat st;
	char *buf;
	ssize_t r;
	int fd, rc = -EINVAL;

	*out = NULL;
	fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot open %s: %s", path,
			 strerror(errno));
		return rc;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(why, whylen, "cannot stat %s: %s", path,
			 strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		goto fail;
	}
	if (st.st_mode & 077) {
		if (st.st_mode & 044)
			who = "readable";
		else if (st.st_mode & 022)
			who = "writable";
		else
			who = "accessible";
		snprintf(why, whylen,
			 "%s is %s by others (mode %04o); run chmod 600 %s",
			 path, who, (unsigned)(st.st_mode & 07777), path);
		rc = -EPERM;
		goto fail;
	}
	while (n < cap - 1) {
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(why, whylen, "cannot read %s: %s", path,
				 strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n > max) {
		snprintf(why, whylen, "the %s in %s is longer than %zu %s", what,
			 path, max, strcmp(what, "token") == 0 ? "characters"
							       : "bytes");
		goto fail;
	}
	buf[n] = '\0';
	close(fd);
	*out = buf;
	*outlen = n;
	return 0;
fail:
	explicit_bzero(buf, cap);
	free(buf);
	close(fd);
	return rc;
}

void config_free_secret(char *s, size_t len)
{
	if (s == NULL)
		return;
	explicit_bzero(s, len);
	free(s);
}

int config_read_token(const char *path, char **out, char *why,
		      size_t whylen)
{
	char *buf;
	size_t n, i;
	int rc;

	rc = config_read_secret(path, "token", TOKEN_MAX, &buf, &n, why,
				whylen);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++) {
		if (!is_visible((unsigned char)buf[i])) {
			snprintf(why, whylen, "the token in %s holds a space "
				 "or a control character (byte %zu)", path, i);
			goto fail;
		}
	}
	if (n < TOKEN_MIN) {
		snprintf(why, whylen, "the token in %s is too short (%zu "
			 "characters, need at least %d)", path, n, TOKEN_MIN);
		goto fail;
	}
	*out = buf;
	return 0;
fail:
	config_free_secret(buf, n);
	return -EINVAL;
}

/*
 * The token file must be a regular file that only its owner can read or
 * write, holding one token of TOKEN_MIN..TOKEN_MAX visible characters and
 * an optional trailing newline. The token itself is not kept: the admin
 * module reads it when it starts; this only refuses a config that would
 * leave the API open or unusable.
 */
static int check_token_file(const char *path, char *why, size_t whylen)
{
	char *tok;

	if (config_read_token(path, &tok, why, whylen) < 0)
		return -1;
	config_free_secret(tok, strlen(tok));
	return 0;
}

static int check_admin(struct loader *l, void *obj, const struct mapinfo *mi)
{
	struct cfg_admin *a = obj;
	char why[PATH_MAX * 2 + 128];

	if (!is_loopback(&a->listen.sa))
		return fail_at(l, mi, "listen",
			       "must be a loopback address (127.0.0.0/8 or "
			       "::1), got \"%s\"",
			       a->listen.text);
	if (check_token_file(a->token_file, why, sizeof why) < 0)
		return fail_at(l, mi, "token_file", "%s", why);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

/* The whole stream: one document whose top is a map, or nothing. */
static int walk_stream(struct loader *l, struct config *c)
{
	struct mapinfo mi;

	if (next(l) < 0)
		return -1;
	SK_ASSERT(l->ev.type == YAML_STREAM_START_EVENT);
	if (next(l) < 0)
		return -1;
	if (l->ev.type == YAML_STREAM_END_EVENT)
		goto empty;
	SK_ASSERT(l->ev.type == YAML_DOCUMENT_START_EVENT);
	if (next(l) < 0)
		return -1;
	if (l->ev.type == YAML_MAPPING_START_EVENT) {
		if (walk_map(l, &root_section, c) < 0)
			return -1;
	} else if (l->ev.type == YAML_SCALAR_EVENT && is_null(&l->ev)) {
		/* "---" alone: a document with nothing in it. */
		goto empty;
	} else {
		return fail(l, ev_line(l),
			    "expected a map of settings at the top level");
	}
	if (next(l) < 0)
		return -1;
	SK_ASSERT(l->ev.type == YAML_DOCUMENT_END_EVENT);
	if (next(l) < 0)
		return -1;
	if (l->ev.type != YAML_STREAM_END_EVENT)
		return fail(l, ev_line(l),
			    "only one YAML document per file is supported");
	return 0;

empty:
	/* Treated as an empty map, so it fails on the first required key. */
	memset(&mi, 0, sizeof mi);
	mi.sec = &root_section;
	mi.line = 1;
	return finish_map(l, &root_section, c, &mi);
}

/*
 * A first pass over the whole text with nothing but the parser, so that a
 * syntax error is reported as one even when the walker, one event behind
 * the scanner, would have tripped over its fallout first ("log: level: x"
 * yields the scalar "level" before libyaml notices the second colon).
 */
static int check_syntax(struct loader *l)
{
	yaml_event_t ev;
	bool end = false;
	int rc = 0;

	if (!yaml_parser_initialize(&l->parser))
		return fail(l, 0, "out of memory");
	yaml_parser_set_input_string(&l->parser, (const unsigned char *)l->input,
				     l->inputlen);
	while (!end) {
		if (!yaml_parser_parse(&l->parser, &ev)) {
			rc = syntax_error(l);
			break;
		}
		end = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&l->parser);
	return rc;
}

/* Loads yaml[0..len) under name; dir is the base of relative paths. */
static int load(const char *yaml, size_t len, const char *name,
		const char *dir, struct config **out, char *err, size_t errlen)
{
	struct loader l;
	struct config *c;

	memset(&l, 0, sizeof l);
	l.input = yaml;
	l.inputlen = len;
	l.name = name;
	l.dir = dir;
	l.err = err;
	l.errlen = errlen;

	if (check_syntax(&l) < 0)
		return -1;
	c = xrealloc(NULL, sizeof *c);
	memset(c, 0, sizeof *c);
	c->path = xstrndup(name, strlen(name));
	init_obj(&root_section, c);
	if (!yaml_parser_initialize(&l.parser)) {
		fail(&l, 0, "out of memory");
		goto fail_config;
	}
	yaml_parser_set_input_string(&l.parser, (const unsigned char *)yaml,
				     len);
	if (walk_stream(&l, c) < 0)
		goto fail_parser;
	if (l.have_ev)
		yaml_event_delete(&l.ev);
	yaml_parser_delete(&l.parser);
	atomic_init(&c->refs, 1);
	*out = c;
	return 0;

fail_parser:
	if (l.have_ev)
		yaml_event_delete(&l.ev);
	yaml_parser_delete(&l.parser);
fail_config:
	config_free(c);
	return -1;
}

/* The directory part of path ("." if none), as a new string. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrndup(".", 1);
	if (slash == path)
		return xstrndup("/", 1);
	return xstrndup(path, (size_t)(slash - path));
}

int config_load(const char *path, struct config **out, char *err,
		size_t errlen)
{
	struct loader msg = {.name = path, .err = err, .errlen = errlen};
	char *text = NULL, *cwd = NULL, *rel = NULL, *dir = NULL;
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return fail(&msg, 0, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) < 0) {
		fail(&msg, 0, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		fail(&msg, 0, "cannot open: %s", strerror(EISDIR));
		goto fail;
	}
	/* st_size is only a hint (the file may be a pipe or be growing);
	 * read to end of file, stopping past the limit. */
	text = xrealloc(NULL, CONFIG_FILE_MAX + 1);
	while (n <= CONFIG_FILE_MAX) {
		r = read(fd, text + n, CONFIG_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail(&msg, 0, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > CONFIG_FILE_MAX) {
		fail(&msg, 0, "larger than %u MiB; is this the right file?",
		     CONFIG_FILE_MAX >> 20);
		goto fail;
	}
	/* Relative paths in the file are relative to the file, wherever
	 * the daemon was started from and wherever it chdirs later. The
	 * directory is the one the path names, not a symlink's target. */
	if (path[0] == '/') {
		dir = dir_of(path);
	} else {
		cwd = getcwd(NULL, 0);
		if (cwd == NULL) {
			fail(&msg, 0, "cannot get the current directory: %s",
			     strerror(errno));
			goto fail;
		}
		rel = dir_of(path);
		dir = xrealloc(NULL, strlen(cwd) + 1 + strlen(rel) + 1);
		if (strcmp(rel, ".") == 0)
			strcpy(dir, cwd);
		else
			sprintf(dir, "%s/%s", cwd, rel);
	}
	rc = load(text, n, path, dir, out, err, errlen);
fail:
	free(dir);
	free(rel);
	free(cwd);
	free(text);
	close(fd);
	return rc;
}

int config_load_string(const char *yaml, const char *name,
		       struct config **out, char *err, size_t errlen)
{
	char *dir = dir_of(name);
	int rc;

	rc = load(yaml, strlen(yaml), name, strcmp(dir, ".") ? dir : NULL, out,
		  err, errlen);
	free(dir);
	return rc;
}

struct config *config_ref(struct config *c)
{
	unsigned prev = atomic_fetch_add_explicit(&c->refs, 1,
						  memory_order_relaxed);

	SK_ASSERT(prev > 0);
	return c;
}

void config_unref(struct config *c)
{
	unsigned prev;

	if (c == NULL)
		return;
	prev = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
	SK_ASSERT(prev > 0);
	if (prev == 1)
		config_free(c);
}

/* ------------------------------------------------------------------ */
/* Reference                                                           */
/* ------------------------------------------------------------------ */

static const char reference_intro[] =
	"# Configuration reference\n"
	"\n"
	"<!-- Generated by `storekeep config-reference` from the schema "
	"tables in\n"
	"     src/core/config.c. Edit those tables, then run `make docs`. "
	"-->\n"
	"\n"
	"storekeep reads one YAML file. Every key is optional unless its "
	"default\n"
	"says *required*. Durations carry a unit: `500ms`, `2s`, `1m`, "
	"`1h`, `1d`\n"
	"(a bare number is an error). Sizes are bytes, with an optional "
	"binary suffix:\n"
	"`512`, `16k` or `16KiB` (16384), `10m`, `1g`, `1t`. Booleans are "
	"`true`/`false`,\n"
	"`yes`/`no` or `on`/`off`. Relative file paths are relative to the "
	"directory of\n"
	"the configuration file. Unknown keys, duplicate keys, YAML "
	"anchors, aliases\n"
	"and tags are errors. Check a file without starting anything with\n"
	"`storekeep check -c FILE`; an error names the file, the line and "
	"the key:\n"
	"\n"
	"    storekeep.yaml:14: pools[0].backends[0].weight: expected an "
	"integer from 1 to 1000, got \"heavy\"\n"
	"\n"
	"The reloadable column says which keys a reload (`SIGHUP`, `storekeep "
	"ctl reload`\n"
	"or `POST /api/v1/reload`) changes without a restart; a reload that "
	"changes\n"
	"another key keeps its old value and says so (docs/operations.md).\n"
	"\n"
	"## Example\n"
	"\n"
	"```yaml\n"
	"workers: 0                 # one worker thread per core\n"
	"listen: 127.0.0.1:8080\n"
	"log:\n"
	"  level: info\n"
	"  file: /var/log/storekeep.log\n"
	"admin:\n"
	"  listen: 127.0.0.1:9901\n"
	"  token_file: /etc/storekeep/admin.token\n"
	"limits:\n"
	"  header_bytes: 16k\n"
	"  headers: 100\n"
	"  target_bytes: 8k\n"
	"  body_bytes: 64m\n"
	"  client_conns: 10000\n"
	"timeouts:\n"
	"  client_header: 10s\n"
	"  client_body: 30s\n"
	"  keepalive: 60s\n"
	"  connect: 3s\n"
	"  backend_response: 30s\n"
	"  shutdown_grace: 10s\n"
	"pools:\n"
	"  - name: shop\n"
	"    keepalive_idle: 32\n"
	"    keepalive_timeout: 30s\n"
	"    health:\n"
	"      enabled: true\n"
	"      path: /healthz\n"
	"      interval: 2s\n"
	"      timeout: 1s\n"
	"      rise: 2\n"
	"      fall: 3\n"
	"    backends:\n"
	"      - name: shop1\n"
	"        address: 127.0.0.1:8081\n"
	"        weight: 1\n"
	"```\n";

static void write_type(FILE *f, const struct field *fl)
{
	char lo[32], hi[32];
	size_t i;

	switch (fl->type) {
	case T_INT:
		fprintf(f, "integer, %llu..%llu", (unsigned long long)fl->min,
			(unsigned long long)fl->max);
		break;
	case T_SIZE:
		fprintf(f, "size, %s..%s", fmt_size(fl->min, lo, sizeof lo),
			fmt_size(fl->max, hi, sizeof hi));
		break;
	case T_DURATION:
		fprintf(f, "duration, %s..%s",
			fmt_duration(fl->min, lo, sizeof lo),
			fmt_duration(fl->max, hi, sizeof hi));
		break;
	case T_BOOL:
		fputs("boolean", f);
		break;
	case T_ENUM:
		fputs("one of", f);
		for (i = 0; fl->names[i] != NULL; i++)
			fprintf(f, "%s `%s`", i ? "," : "", fl->names[i]);
		break;
	case T_NAME:
		fprintf(f, "name, %llu..%llu of `A-Za-z0-9_.-`",
			(unsigned long long)fl->min,
			(unsigned long long)fl->max);
		break;
	case T_URLPATH:
		fprintf(f, "URL path, %llu..%llu visible characters",
			(unsigned long long)fl->min,
			(unsigned long long)fl->max);
		break;
	case T_FILE:
		fputs("file path", f);
		break;
	case T_ADDR:
		fputs("address: `ip:port`, `[v6]:port` or `host:port`", f);
		break;
	case T_TOKEN:
		fputs("header or cookie name", f);
		break;
	case T_HOST:
		fputs("host name or `*.suffix`", f);
		break;
	case T_STR:
		fputs("text", f);
		break;
	case T_CRON:
		fputs("cron expression (UTC)", f);
		break;
	case T_FLOAT:
		if (fl->fmin == -DBL_MAX && fl->fmax == DBL_MAX)
			fputs("number", f);
		else
			fprintf(f, "number, %g..%g", fl->fmin, fl->fmax);
		break;
	case T_MAP:
		fputs("map", f);
		break;
	case T_DICT:
		fprintf(f, "map of up to %llu: %s to ",
			(unsigned long long)fl->max, fl->sub->fields[0].doc);
		if (fl->sub->scalar)
			write_type(f, &fl->sub->fields[1]);
		else
			fputs("map", f);
		break;
	case T_LIST:
		if (fl->sub->scalar) {
			fprintf(f, "list of up to %llu: ",
				(unsigned long long)fl->max);
			write_type(f, &fl->sub->fields[0]);
		} else if (fl->min == fl->max)
			fprintf(f, "list of exactly %llu map%s",
				(unsigned long long)fl->min,
				fl->min == 1 ? "" : "s");
		else
			fprintf(f, "list of %llu..%llu maps",
				(unsigned long long)fl->min,
				(unsigned long long)fl->max);
		break;
	}
}

/* Whether the reference gives fl's entries a section of their own. */
static bool is_nested(const struct field *fl)
{
	return fl->type == T_MAP ||
	       ((fl->type == T_LIST || fl->type == T_DICT) && !fl->sub->scalar);
}

/* "yes", "no" or "partly" for a whole section, from its rows. */
static const char *section_reload(const struct section *sec)
{
	bool any = false, all = true;
	const char *sub;
	size_t i;

	for (i = sec->keyed ? 1 : 0; i < sec->nfields; i++) {
		const struct field *fl = &sec->fields[i];

		if (is_nested(fl)) {
			sub = section_reload(fl->sub);
			any |= strcmp(sub, "no") != 0;
			all &= strcmp(sub, "yes") == 0;
		} else {
			any |= (fl->flags & F_RELOAD) != 0;
			all &= (fl->flags & F_RELOAD) != 0;
		}
	}
	return all ? "yes" : any ? "partly" : "no";
}

static void write_section(FILE *f, const struct section *sec,
			  const char *path)
{
	char child[128];
	size_t i;

	if (path[0] == '\0')
		fputs("\n## Top level\n\n", f);
	else
		fprintf(f, "\n## `%s`\n\n", path);
	fprintf(f, "%s\n\n", sec->doc);
	fputs("| key | type | default | reloadable | description |\n", f);
	fputs("| --- | --- | --- | --- | --- |\n", f);
	for (i = sec->keyed ? 1 : 0; i < sec->nfields; i++) {
		const struct field *fl = &sec->fields[i];
		bool nested = is_nested(fl);

		fprintf(f, "| `%s` | ", fl->name);
		write_type(f, fl);
		if (fl->def != NULL)
			fprintf(f, " | `%s`", fl->def);
		else if (fl->flags & F_REQUIRED)
			fputs(" | required", f);
		else
			fputs(" | -", f);
		fprintf(f, " | %s | %s |\n",
			nested ? section_reload(fl->sub)
			       : (fl->flags & F_RELOAD) ? "yes" : "no",
			fl->doc);
	}
	for (i = sec->keyed ? 1 : 0; i < sec->nfields; i++) {
		const struct field *fl = &sec->fields[i];

		if (!is_nested(fl))
			continue;
		snprintf(child, sizeof child, "%s%s%s%s", path,
			 path[0] ? "." : "", fl->name,
			 fl->type == T_LIST   ? "[]"
			 : fl->type == T_DICT ? ".<name>"
					      : "");
		write_section(f, fl->sub, child);
	}
}

void config_write_reference(FILE *f)
{
	fputs(reference_intro, f);
	write_section(f, &root_section, "");
}
