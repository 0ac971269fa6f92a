/*
 * admin.h - the admin listener: health, Prometheus metrics, JSON API.
 *
 * Runs on the control loop, on a loopback address only (the config loader
 * refuses anything else). /healthz and /metrics answer anyone who can
 * reach loopback; everything under /api/ needs
 * "Authorization: Bearer <token>", the token read from admin.token_file
 * (a file that must not be readable by group or others).
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
 * Starts the admin listener of cfg on loop, reporting on p (borrowed; it
 * must outlive the admin). Returns 0 and *out, or a negative errno with a
 * one-line message in err.
 */
int admin_start(uv_loop_t *loop, const struct config *cfg, struct proxy *p,
		struct admin **out, char *err, size_t errlen);
void admin_set_status_hook(struct admin *a, admin_status_hook hook, void *ud);
int admin_port(struct admin *a);
/* Closes the listener; memory goes when the loop has run the closes. */
void admin_stop(struct admin *a);

/* Reads and checks a token file: a regular file, not accessible by group
 * or others, holding at least 16 printable characters (a trailing newline
 * is dropped). Returns 0 and a malloc'd token, or -errno with err set. */
int admin_read_token(const char *path, char **token, char *err, size_t errlen);

#endif
