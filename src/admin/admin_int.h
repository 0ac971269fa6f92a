/*
 * admin_int.h - shared between the files of src/admin; not a public header.
 */
#ifndef SK_ADMIN_ADMIN_INT_H
#define SK_ADMIN_ADMIN_INT_H

#include <jansson.h>
#include <stddef.h>

/* A JSON string for s; bytes that are not UTF-8 become '?' (json_string
 * alone would return NULL). Returns a new reference. */
json_t *text_json(const char *s);

/* The audit log file (audit.c). fd is -1 and path NULL while it is off. */
struct audit {
	int fd;
	char *path;
};

/* Opens path for appending (created 0600); path NULL leaves it off.
 * Returns 0, or -errno with a one-line message in err. */
int audit_open(struct audit *au, const char *path, char *err, size_t errlen);

/* Follows a new admin.audit_log after a reload: nothing when the path is
 * the same; otherwise opens the new file and closes the old one. When the
 * new file cannot be opened the old one stays in use, the error is logged
 * and -errno returned. path NULL turns the file off. */
int audit_set_path(struct audit *au, const char *path);

/* Opens the same path again (after logrotate moved it). Returns 0 or
 * -errno (logged; the old descriptor stays in use). */
int audit_reopen(struct audit *au);

void audit_close(struct audit *au);

/*
 * Records one admin action: a logfmt "audit" line in the main log, and one
 * JSON line in the audit file when there is one. result is "ok" or
 * "error: <why>". extra (borrowed, may be NULL) holds further fields for
 * the JSON line, e.g. {"weight": 3}.
 */
void audit_record(struct audit *au, const char *peer, const char *action,
		  const char *target, const char *result, json_t *extra);

#endif
