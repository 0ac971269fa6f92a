/*
 * prom.c - pieces of the Prometheus text exposition format 0.0.4.
 *
 * The format: "# HELP name text" (text with backslash and newline
 * escaped), "# TYPE name counter|gauge|histogram|...", then one sample per
 * line, "name{label=\"value\",...} value", label values with backslash,
 * double quote and newline escaped, floats as Go prints them (NaN, +Inf,
 * -Inf). Every line ends with \n.
 *
 * Nothing here allocates beyond the output buffer or keeps state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/monitor_int.h"

static bool name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (colon && c == ':')
		return true;
	return !first && c >= '0' && c <= '9';
}

bool prom_metric_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PROM_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i], i == 0, true))
			return false;
	return true;
}

bool prom_label_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PROM_LABEL_NAME_MAX)
		return false;
	if (s[0] == '_' && s[1] == '_')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i], i == 0, false))
			return false;
	return true;
}

/* Length of the well-formed UTF-8 sequence at s (left bytes available),
 * or 0 when there is none: no overlong forms, surrogates or code points
 * past U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	unsigned c = s[0], need;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left <= need)
		return 0;
	for (unsigned k = 1; k <= need; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[k] & 0x3f);
	}
	if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return need + 1;
}

bool prom_utf8_ok(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(s + i, len - i);

		if (!n)
			return false;
		i += n;
	}
	return true;
}

size_t prom_utf8_fix(char *str)
{
	unsigned char *s = (unsigned char *)str;
	size_t len = strlen(str), i = 0, fixed = 0;

	while (i < len) {
		size_t n = utf8_seq(s + i, len - i);

		if (!n) {
			s[i] = '?';
			fixed++;
			n = 1;
		}
		i += n;
	}
	return fixed;
}

void prom_head(struct buf *o, const char *name, const char *type,
	       const char *help)
{
	buf_appends(o, "# HELP ");
	buf_appends(o, name);
	buf_appendc(o, ' ');
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			buf_appends(o, "\\\\");
		else if (*p == '\n')
			buf_appends(o, "\\n");
		else
			buf_appendc(o, *p);
	}
	buf_appends(o, "\n# TYPE ");
	buf_appends(o, name);
	buf_appendc(o, ' ');
	buf_appends(o, type);
	buf_appendc(o, '\n');
}

void prom_label_value(struct buf *o, const char *s)
{
	const char *run = s;

	/* Copy the runs between special bytes in one append each. */
	for (; *s; s++) {
		const char *esc = NULL;

		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '"')
			esc = "\\\"";
		else if (*s == '\n')
			esc = "\\n";
		if (!esc)
			continue;
		buf_append(o, run, (size_t)(s - run));
		buf_appends(o, esc);
		run = s + 1;
	}
	buf_append(o, run, (size_t)(s - run));
}

void prom_double(struct buf *o, double v)
{
	char tmp[40];

	if (isnan(v)) {
		buf_appends(o, "NaN");
		return;
	}
	if (isinf(v)) {
		buf_appends(o, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* Integers print as such; others with the fewest digits that read
	 * back as the same double (15 digits nearly always do). */
	if (v > -9e15 && v < 9e15 && v == (double)(int64_t)v) {
		buf_printf(o, "%lld", (long long)v);
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (prec == 17 || strtod(tmp, NULL) == v)
			break;
	}
	buf_appends(o, tmp);
}

void prom_decimal(struct buf *o, uint64_t v, unsigned decimals)
{
	static const uint64_t p10[10] = {
		1,	10,	 100,	   1000,      10000,
		100000, 1000000, 10000000, 100000000, 1000000000};
	uint64_t ip, fp, div;
	char frac[16];
	int n;

	if (decimals > 9)
		decimals = 9;
	div = p10[decimals];
	ip = v / div;
	fp = v % div;
	buf_printf(o, "%llu", (unsigned long long)ip);
	if (fp == 0)
		return;
	n = snprintf(frac, sizeof(frac), "%0*llu", (int)decimals,
		     (unsigned long long)fp);
	while (n > 0 && frac[n - 1] == '0')
		n--;
	buf_appendc(o, '.');
	buf_append(o, frac, (size_t)n);
}

int prom_natcmp(const char *a, const char *b)
{
	const char *a0 = a, *b0 = b;
	int c;

	while (*a && *b) {
		if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
			const char *sa = a, *sb = b;
			size_t la, lb;

			/* Compare digit runs by length without their leading
			 * zeros, then digit by digit. */
			while (*sa == '0')
				sa++;
			while (*sb == '0')
				sb++;
			for (a = sa; *a >= '0' && *a <= '9'; a++)
				;
			for (b = sb; *b >= '0' && *b <= '9'; b++)
				;
			la = (size_t)(a - sa);
			lb = (size_t)(b - sb);
			if (la != lb)
				return la < lb ? -1 : 1;
			c = memcmp(sa, sb, la);
			if (c)
				return c < 0 ? -1 : 1;
			continue;
		}
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		a++;
		b++;
	}
	if (*a || *b)
		return *a ? 1 : -1;
	/* Equal but for leading zeros ("a01" and "a1"): any fixed order. */
	c = strcmp(a0, b0);
	return c < 0 ? -1 : c > 0;
}
