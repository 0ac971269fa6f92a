/*
 * monitor_int.h - shared by the files of the monitor module only.
 *
 * Prometheus text exposition (format 0.0.4) pieces used by the registry
 * and the host collector's writer, and the name rules both enforce.
 */
#ifndef SK_MONITOR_MONITOR_INT_H
#define SK_MONITOR_MONITOR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define PROM_NAME_MAX 128 /* metric name */
#define PROM_LABEL_NAME_MAX 64
#define PROM_LABEL_VALUE_MAX 1024
#define PROM_HELP_MAX 1024

/* [a-zA-Z_:][a-zA-Z0-9_:]*, at most PROM_NAME_MAX bytes. */
bool prom_metric_name_ok(const char *s);
/* [a-zA-Z_][a-zA-Z0-9_]*, at most PROM_LABEL_NAME_MAX bytes, and not
 * starting with "__" (reserved by Prometheus). */
bool prom_label_name_ok(const char *s);
/* Well-formed UTF-8 (no overlong forms, no surrogates) of len bytes. */
bool prom_utf8_ok(const char *s, size_t len);
/* Replaces every byte of s that does not start a well-formed UTF-8
 * sequence with '?', in place. Returns how many it replaced. */
size_t prom_utf8_fix(char *s);

/* "# HELP name help\n# TYPE name type\n"; help escaped (\\ and \n). */
void prom_head(struct buf *o, const char *name, const char *type,
	       const char *help);
/* Appends s with \\, \" and \n escaped, as inside a label value. */
void prom_label_value(struct buf *o, const char *s);
/* A float the way Prometheus reads it: NaN, +Inf, -Inf, or the shortest
 * decimal that reads back as v. */
void prom_double(struct buf *o, double v);
/* v / 10^decimals as an exact decimal (decimals <= 9): 5000, 6 -> 0.005. */
void prom_decimal(struct buf *o, uint64_t v, unsigned decimals);

/* Compares like strcmp, but runs of digits by their numeric value, so
 * that "cpu2" < "cpu10". A total order; equal only when a == b. */
int prom_natcmp(const char *a, const char *b);

#endif
