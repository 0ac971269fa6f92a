/*
 * admin.h - the admin listener: health, Prometheus metrics, JSON API.
 *
 * Runs on the control loop, on a loopback address only (the config loader
 * refuses anything else). /healthz and /metrics answer anyone who can
 * reach loopback; everything under /api/ needs
 * "Authorization: Bearer <token>", the token read from admin.token_file
 * (a file that must not be readable by group or others).
 *
 * Operations (drain, enable, weight, reload) are recorded in the main log
 * and, when admin.audit_log is set, as JSON lines in that file.
 *
 * The admin reads everything and nothing depends on it: it gets its data
 * through the proxy's read-side functions and an optional status hook.
 */
#ifndef SK_ADMIN_ADMIN_H
#define SK_ADMIN_ADMIN_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

#include "core/config.h"
#include "proxy/proxy.h"

struct admin;

/* Adds fields to the /api/v1/status object (e.g. supervised processes). */
typedef void (*admin_status_hook)(void *ud, json_t *status);

/*
 * Reloads the configuration file (the daemon's, on the control thread).
 * Returns 0 when the new file is in force; 1 when it is in force but some
 * settings need a restart (err lists them); -1 when the file is invalid
 * and nothing changed (err holds the loader's "file:line: key: ..."
 * message).
 */
typedef int (*admin_reload_hook)(void *ud, char *err, size_t errlen);

/*
 * Starts the admin listener of cfg on loop, reporting on p (borrowed; it
 * must outlive the admin). Returns 0 and *out, or a negative errno with a
 * one-line message in err.
 */
int admin_start(uv_loop_t *loop, const struct config *cfg, struct proxy *p,
		struct admin **out, char *err, size_t errlen);
void admin_set_status_hook(struct admin *a, admin_status_hook hook, void *ud);
void admin_set_reload_hook(struct admin *a, admin_reload_hook hook, void *ud);
struct backup_sched;
/* Serves the backup jobs: GET /api/v1/backups, POST
 * /api/v1/backups/{job}/run|verify, and their metrics. b is borrowed
 * (NULL: none); clear it before the scheduler is stopped. */
void admin_set_backup(struct admin *a, struct backup_sched *b);
struct probes;
struct history;
/* Serves GET /api/v1/probes and GET /api/v1/query, and adds "history" to
 * /api/v1/status. Both borrowed (NULL: none); clear them before they are
 * stopped or closed. */
void admin_set_monitor(struct admin *a, struct probes *p, struct history *h);
struct alert_engine;
/* Serves GET /api/v1/alerts and the silences (GET, POST /api/v1/silences,
 * DELETE /api/v1/silences/{id}). e borrowed (NULL: alerts disabled);
 * clear it before the engine is freed. */
void admin_set_alerts(struct admin *a, struct alert_engine *e);
int admin_port(struct admin *a);

/*
 * Follows the config now in force (proxy_config()) after a reload made
 * outside the API, e.g. on SIGHUP (the API's own reload calls it): reads
 * admin.token_file again (if that fails, the old token stays and the error
 * is logged) and switches to a new admin.audit_log path (if it cannot be
 * opened, the old file stays in use). admin.listen cannot change.
 */
void admin_config_changed(struct admin *a);

/* Reopens the audit log after rotation (SIGUSR1). Returns 0 or -errno,
 * already logged; the old file stays in use on error. */
int admin_reopen_audit(struct admin *a);

/* Records an admin action made outside the API (e.g. peer "signal",
 * action "reload", target the config path, result "ok" or "error: ...")
 * in the main log and the audit log. Strings are borrowed. */
void admin_audit(struct admin *a, const char *peer, const char *action,
		 const char *target, const char *result);
/* Closes the listener; memory goes when the loop has run the closes. */
void admin_stop(struct admin *a);

/* Reads and checks a token file: a regular file, not accessible by group
 * or others, holding at least 16 printable characters (a trailing newline
 * is dropped). Returns 0 and a malloc'd token, or -errno with err set. */
int admin_read_token(const char *path, char **token, char *err, size_t errlen);

#endif
