/*
 * audit.c - the audit trail of admin actions.
 *
 * Every action taken through the admin (drain, enable, weight, reload),
 * refused and failed attempts included, is recorded twice: an "audit" line
 * in the main log, and, when admin.audit_log is set, one JSON object per
 * line appended to that file:
 *
 *   {"ts":"2026-11-28T12:00:00.123Z","peer":"127.0.0.1","action":"drain",
 *    "target":"shop/shop2","result":"ok"}
 *
 * The file is opened once, at start (before any privilege drop, like every
 * other file the daemon writes), in append mode and mode 0600; each record
 * is a single write(2), so records never interleave. It is not fsync'd:
 * the trail is as durable as the main log. Read-only requests are not
 * recorded here. Control thread only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "core/clock.h"
#include "core/log.h"

json_t *text_json(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j)
		return j;
	/* Not UTF-8 (a config file's bytes quoted in a loader message, say):
	 * keep the ASCII and mark the rest rather than drop the text. */
	copy = strdup(s);
	SK_ASSERT(copy != NULL);
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	SK_ASSERT(j != NULL);
	return j;
}

static int open_file(const char *path, int *fd)
{
	*fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	return *fd < 0 ? -errno : 0;
}

int audit_open(struct audit *au, const char *path, char *err, size_t errlen)
{
	int r;

	au->fd = -1;
	au->path = NULL;
	if (path == NULL)
		return 0;
	r = open_file(path, &au->fd);
	if (r < 0) {
		snprintf(err, errlen, "admin audit log %s: %s", path,
			 strerror(-r));
		return r;
	}
	au->path = strdup(path);
	if (au->path == NULL) {
		close(au->fd);
		au->fd = -1;
		snprintf(err, errlen, "admin audit log %s: out of memory", path);
		return -ENOMEM;
	}
	return 0;
}

int audit_set_path(struct audit *au, const char *path)
{
	char *copy;
	int fd, r;

	if (path == NULL && au->path == NULL)
		return 0;
	if (path && au->path && strcmp(path, au->path) == 0)
		return 0;
	if (path == NULL) {
		log_info("admin audit log off", "was=%s", au->path);
		audit_close(au);
		return 0;
	}
	r = open_file(path, &fd);
	if (r < 0) {
		log_error("cannot open the new admin audit log; the old one stays "
			  "in use",
			  "file=%s err=\"%s\" old=%s", path, strerror(-r),
			  au->path ? au->path : "-");
		return r;
	}
	copy = strdup(path);
	SK_ASSERT(copy != NULL);
	audit_close(au);
	au->fd = fd;
	au->path = copy;
	log_info("admin audit log opened", "file=%s", path);
	return 0;
}

int audit_reopen(struct audit *au)
{
	int fd, r;

	if (au->path == NULL)
		return 0;
	r = open_file(au->path, &fd);
	if (r < 0) {
		log_error("cannot reopen the admin audit log; writing to the old "
			  "file",
			  "file=%s err=\"%s\"", au->path, strerror(-r));
		return r;
	}
	close(au->fd);
	au->fd = fd;
	return 0;
}

void audit_close(struct audit *au)
{
	if (au->fd >= 0)
		close(au->fd);
	au->fd = -1;
	free(au->path);
	au->path = NULL;
}

void audit_record(struct audit *au, const char *peer, const char *action,
		  const char *target, const char *result, json_t *extra)
{
	char qp[80], qa[40], qt[1024], qr[2600], ts[32];
	json_t *o;
	char *line;
	size_t n;
	ssize_t w;

	log_info("audit", "peer=%s action=%s target=%s result=%s",
		 log_q(qp, sizeof(qp), peer), log_q(qa, sizeof(qa), action),
		 log_q(qt, sizeof(qt), target), log_q(qr, sizeof(qr), result));
	if (au->fd < 0)
		return;
	clock_fmt_iso8601(ts, clock_wall_ms());
	o = json_object();
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "peer", text_json(peer));
	json_object_set_new(o, "action", text_json(action));
	json_object_set_new(o, "target", text_json(target));
	json_object_set_new(o, "result", text_json(result));
	if (extra)
		json_object_update_missing(o, extra);
	line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	SK_ASSERT(line != NULL);
	/* One write(2) for the whole line, newline included, so that two
	 * records can never mix even if something else appends to the file.
	 * The newline takes the place of the terminating NUL. */
	n = strlen(line);
	line[n] = '\n';
	w = write(au->fd, line, n + 1);
	if (w != (ssize_t)(n + 1))
		log_error("admin audit log write failed", "file=%s err=\"%s\"",
			  au->path, w < 0 ? strerror(errno) : "short write");
	free(line);
}
