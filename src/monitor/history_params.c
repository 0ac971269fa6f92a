/*
 * history_params.c - the parameters of GET /api/v1/query, from a URL
 * query string to history_query_agg() (see history.h).
 *
 * Strict, like the rest of the admin API: an unknown or repeated
 * parameter, a bad escape, a time or step that does not parse are
 * errors that name the parameter, never silently ignored.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/history.h"

#include "core/buf.h"
#include "http/http.h"

#define PARAM_MAX 2048

enum { P_METRIC, P_LABELS, P_FROM, P_TO, P_STEP, P_AGG, P_N };

static const char *const names[P_N] = {"metric", "labels", "from",
				       "to",	 "step",   "agg"};

/* Decodes s[0..n) (%XX, '+' for space) into out (cap bytes). Returns 0,
 * or -1 for a bad escape, a NUL, or a value too long. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
	struct buf b;
	int r = -1;

	buf_init(&b);
	if (http_form_decode(s, n, &b) == 0 && b.len < cap) {
		memcpy(out, b.data, b.len + 1);
		r = 0;
	}
	buf_fini(&b);
	return r;
}

/* A number with an optional unit s, m, h, d, in seconds. */
static bool duration_s(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	double unit = 1;

	if (end == s || !isfinite(v) || v < 0 || (*s != '.' && (*s < '0' || *s > '9')))
		return false;
	switch (*end) {
	case '\0':
		break;
	case 's':
		end++;
		break;
	case 'm':
		unit = 60, end++;
		break;
	case 'h':
		unit = 3600, end++;
		break;
	case 'd':
		unit = 86400, end++;
		break;
	default:
		return false;
	}
	if (*end)
		return false;
	*out = v * unit;
	return true;
}

/* A time: Unix seconds, "now", or "-<duration>" before now. In ms. */
static bool time_ms(const char *s, uint64_t now_ms, uint64_t *out)
{
	double v;

	if (strcmp(s, "now") == 0) {
		*out = now_ms;
		return true;
	}
	if (s[0] == '-') {
		if (!duration_s(s + 1, &v) || v * 1000 > (double)now_ms)
			return false;
		*out = now_ms - (uint64_t)llround(v * 1000);
		return true;
	}
	if (!duration_s(s, &v) || strpbrk(s, "smhd") || v > 1e11)
		return false;
	*out = (uint64_t)llround(v * 1000);
	return true;
}

static json_t *error(const char *fmt, const char *what)
{
	char msg[256];
	json_t *o = json_object();

	snprintf(msg, sizeof(msg), fmt, what);
	json_object_set_new(o, "error", json_string(msg));
	return o;
}

int history_query_params(struct history *h, const char *qs, uint64_t now_ms,
			 json_t **out)
{
	char *val[P_N] = {NULL};
	uint64_t from, to, step = 0;
	const char *p = qs ? qs : "";
	int r = -EINVAL;

	*out = NULL;
	while (*p) {
		const char *amp = strchr(p, '&'), *eq;
		size_t n = amp ? (size_t)(amp - p) : strlen(p);
		char key[32];
		int k;

		eq = memchr(p, '=', n);
		if (n == 0) {
			p += 1;
			continue;
		}
		if (!eq || (size_t)(eq - p) >= sizeof(key) ||
		    decode(p, (size_t)(eq - p), key, sizeof(key)) != 0) {
			*out = error("malformed query parameter near \"%.40s\"", p);
			goto out;
		}
		for (k = 0; k < P_N && strcmp(key, names[k]) != 0; k++)
			;
		if (k == P_N) {
			*out = error("unknown parameter %s (metric, labels, from, "
				     "to, step, agg)",
				     key);
			goto out;
		}
		if (val[k]) {
			*out = error("%s: given twice", key);
			goto out;
		}
		val[k] = malloc(PARAM_MAX + 1);
		if (!val[k] || decode(eq + 1, n - (size_t)(eq + 1 - p), val[k],
				      PARAM_MAX + 1)) {
			*out = error("%s: bad percent-escape or too long", key);
			goto out;
		}
		p += n + (amp ? 1 : 0);
	}
	to = now_ms;
	if (val[P_TO] && !time_ms(val[P_TO], now_ms, &to)) {
		*out = error("to: Unix seconds, now, or -<duration> such as "
			     "-15m (%s)",
			     val[P_TO]);
		goto out;
	}
	from = to >= 3600000 ? to - 3600000 : 0;
	if (val[P_FROM] && !time_ms(val[P_FROM], now_ms, &from)) {
		*out = error("from: Unix seconds or -<duration> such as -1h (%s)",
			     val[P_FROM]);
		goto out;
	}
	if (val[P_STEP]) {
		double s;

		if (!duration_s(val[P_STEP], &s) || s != floor(s) ||
		    s > 366.0 * 86400) {
			*out = error("step: whole seconds, or a duration such as "
				     "5m (%s)",
				     val[P_STEP]);
			goto out;
		}
		step = (uint64_t)s * 1000;
	}
	r = history_query_agg(h, val[P_METRIC], val[P_LABELS], from, to, step,
			      val[P_AGG], out);
out:
	for (int k = 0; k < P_N; k++)
		free(val[k]);
	return r;
}
