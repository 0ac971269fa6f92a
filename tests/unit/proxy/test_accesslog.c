/*
 * test_accesslog.c - the access log, through accesslog.h only.
 *
 * Lines are checked the way an operator meets them: written to a real
 * file in a private temporary directory, flushed, read back. Formatting
 * cases compare whole lines (or exact fragments for escaping); the
 * batching cases look at the file size before and after a flush; the
 * thread case checks that 4 x 10,000 lines arrive whole and exactly once;
 * rotation renames the file and reopens it.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "proxy/accesslog.h"

#define ERRLEN 256
#define NTHREADS 4
#define NLINES 10000

static char tmpdir[64];
static unsigned path_seq;

/* 2026-11-28T12:00:00.123Z */
#define WALL_MS UINT64_C(1795867200123)

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* A file name in tmpdir not used before in this run. */
static void new_path(char *out, size_t outlen, const char *name)
{
	snprintf(out, outlen, "%s/%u-%s", tmpdir, ++path_seq, name);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t cap = 0, n = 0, r;

	assert_non_null(f);
	do {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 65536;
			data = realloc(data, cap + 1);
			assert_non_null(data);
		}
		r = fread(data + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	data[n] = '\0';
	if (len)
		*len = n;
	return data;
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static struct accesslog *open_log(const char *path, enum accesslog_format fmt,
				  int anon)
{
	struct accesslog_opts o = {
		.path = path,
		.format = fmt,
		.anonymize_ip = anon,
	};
	struct accesslog *l = NULL;
	char err[ERRLEN] = "";

	assert_int_equal(accesslog_open(&o, &l, err, sizeof(err)), 0);
	assert_non_null(l);
	return l;
}

static struct accesslog_entry base_entry(void)
{
	struct accesslog_entry e = {
		.wall_ms = WALL_MS,
		.client_ip = "203.0.113.7",
		.method = "GET",
		.method_len = 3,
		.target = "/x?a=1",
		.target_len = 6,
		.version_minor = 1,
		.status = 200,
		.bytes_sent = 1234,
		.bytes_received = 87,
		.host = "shop.example",
		.host_len = 12,
		.referer = "https://ref.example/",
		.referer_len = 20,
		.user_agent = "curl/8.5",
		.user_agent_len = 8,
		.route = "shop",
		.pool = "web",
		.backend = "web1",
		.total_ms = 12.345,
		.upstream_ms = 10.002,
		.retries = 1,
	};
	return e;
}

/* Writes the entries through one batch, closes the log and returns the
 * file's contents. */
static char *log_lines(enum accesslog_format fmt, int anon,
		       const struct accesslog_entry *e, size_t n)
{
	char path[128];
	struct accesslog *l;
	struct accesslog_batch *b;

	new_path(path, sizeof(path), "lines.log");
	l = open_log(path, fmt, anon);
	b = accesslog_batch_new(l);
	for (size_t i = 0; i < n; i++)
		accesslog_write(b, &e[i]);
	accesslog_batch_free(b);
	accesslog_close(l);
	return slurp(path, NULL);
}

static char *one_line(enum accesslog_format fmt, const struct accesslog_entry *e)
{
	return log_lines(fmt, 0, e, 1);
}

#define assert_contains(hay, needle)                                          \
	do {                                                                  \
		if (strstr((hay), (needle)) == NULL)                           \
			fail_msg("missing %s\n in %s", (needle), (hay));       \
	} while (0)

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

static void test_json_fields(void **state)
{
	struct accesslog_entry e = base_entry();
	char *s = one_line(ACCESSLOG_JSON, &e);

	assert_string_equal(
		s, "{\"ts\":\"2026-11-28T12:00:00.123Z\",\"client\":\"203.0.113.7\","
		   "\"method\":\"GET\",\"target\":\"/x?a=1\",\"proto\":\"HTTP/1.1\","
		   "\"status\":200,\"bytes_sent\":1234,\"bytes_received\":87,"
		   "\"host\":\"shop.example\",\"referer\":\"https://ref.example/\","
		   "\"user_agent\":\"curl/8.5\",\"route\":\"shop\",\"pool\":\"web\","
		   "\"backend\":\"web1\",\"total_ms\":12.345,\"upstream_ms\":10.002,"
		   "\"retries\":1}\n");
	free(s);
}

static void test_json_nulls(void **state)
{
	struct accesslog_entry e = base_entry();
	char *s;

	e.client_ip = NULL;
	e.method = NULL;
	e.target = NULL;
	e.host = NULL;
	e.referer = NULL;
	e.user_agent = NULL;
	e.route = NULL;
	e.pool = NULL;
	e.backend = NULL;
	e.upstream_ms = -1;
	e.retries = 0;
	e.status = 400;
	s = one_line(ACCESSLOG_JSON, &e);
	assert_string_equal(
		s, "{\"ts\":\"2026-11-28T12:00:00.123Z\",\"client\":null,"
		   "\"method\":null,\"target\":null,\"proto\":\"HTTP/1.1\","
		   "\"status\":400,\"bytes_sent\":1234,\"bytes_received\":87,"
		   "\"host\":null,\"referer\":null,\"user_agent\":null,"
		   "\"route\":null,\"pool\":null,\"backend\":null,"
		   "\"total_ms\":12.345,\"upstream_ms\":null,\"retries\":0}\n");
	free(s);
}

static void test_json_escapes_quotes_and_controls(void **state)
{
	static const char ua[] = "a\"b\\c\n\r\t\x01\x1f\x7f" "d\0e";
	struct accesslog_entry e = base_entry();
	char *s;

	e.user_agent = ua;
	e.user_agent_len = sizeof(ua) - 1; /* the NUL inside counts */
	e.host = "";
	e.host_len = 0;
	s = one_line(ACCESSLOG_JSON, &e);
	assert_contains(s, "\"user_agent\":\"a\\\"b\\\\c\\u000a\\u000d\\u0009"
			   "\\u0001\\u001f\\u007fd\\u0000e\",");
	assert_contains(s, "\"host\":\"\",");
	assert_int_equal(count_lines(s), 1);
	free(s);
}

static void test_json_utf8(void **state)
{
	/* Valid: é, €, U+1F600. Then the invalid forms, each becoming one
	 * U+FFFD per maximal subpart: a stray continuation, a lone lead
	 * byte, an overlong '/', a surrogate, a truncated 3-byte sequence
	 * followed by ASCII, a byte never valid, above U+10FFFF, and a
	 * sequence cut by the end of the field. */
	static const char target[] = "/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
				     "|\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xe2\x82"
				     "A|\xff|\xf4\x90\x80\x80|\xf0\x9f\x98";
	struct accesslog_entry e = base_entry();
	char *s;

	e.target = target;
	e.target_len = sizeof(target) - 1;
	s = one_line(ACCESSLOG_JSON, &e);
	assert_contains(s, "\"target\":\"/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
			   "|\\ufffd|\\ufffd|\\ufffd\\ufffd"
			   "|\\ufffd\\ufffd\\ufffd|\\ufffdA|\\ufffd"
			   "|\\ufffd\\ufffd\\ufffd\\ufffd|\\ufffd\",");
	free(s);
}

static void test_json_numbers(void **state)
{
	struct accesslog_entry e = base_entry();
	char *s;

	e.version_minor = 0;
	e.status = 0;
	e.bytes_sent = UINT64_MAX;
	e.bytes_received = 0;
	e.total_ms = 1500.25;
	e.upstream_ms = 0;
	e.retries = UINT32_MAX;
	s = one_line(ACCESSLOG_JSON, &e);
	assert_contains(s, "\"proto\":\"HTTP/1.0\",\"status\":0,"
			   "\"bytes_sent\":18446744073709551615,"
			   "\"bytes_received\":0,");
	assert_contains(s, "\"total_ms\":1500.250,\"upstream_ms\":0.000,"
			   "\"retries\":4294967295}\n");
	free(s);

	e.total_ms = NAN;
	e.upstream_ms = 0.0004;
	e.wall_ms = WALL_MS - 123 + 7;
	s = one_line(ACCESSLOG_JSON, &e);
	assert_contains(s, "{\"ts\":\"2026-11-28T12:00:00.007Z\",");
	assert_contains(s, "\"total_ms\":null,\"upstream_ms\":0.000,");
	free(s);
}

/* The timestamp text is cached per second: lines crossing a second, and
 * going back to an earlier one, must each carry their own time. */
static void test_json_timestamps_per_line(void **state)
{
	struct accesslog_entry e[4];
	char *s;

	for (size_t i = 0; i < 4; i++)
		e[i] = base_entry();
	e[0].wall_ms = WALL_MS;		/* 12:00:00.123 */
	e[1].wall_ms = WALL_MS + 876;	/* 12:00:00.999 */
	e[2].wall_ms = WALL_MS + 877;	/* 12:00:01.000 */
	e[3].wall_ms = WALL_MS - 86400000; /* the day before */
	s = log_lines(ACCESSLOG_JSON, 0, e, 4);
	assert_contains(s, "{\"ts\":\"2026-11-28T12:00:00.123Z\",");
	assert_contains(s, "{\"ts\":\"2026-11-28T12:00:00.999Z\",");
	assert_contains(s, "{\"ts\":\"2026-11-28T12:00:01.000Z\",");
	assert_contains(s, "{\"ts\":\"2026-11-27T12:00:00.123Z\",");
	free(s);
}

/* ------------------------------------------------------------------ */
/* Combined                                                            */
/* ------------------------------------------------------------------ */

static void test_combined_exact(void **state)
{
	struct accesslog_entry e = base_entry();
	char *s = one_line(ACCESSLOG_COMBINED, &e);

	assert_string_equal(
		s, "203.0.113.7 - - [28/Nov/2026:12:00:00 +0000] "
		   "\"GET /x?a=1 HTTP/1.1\" 200 1234 \"https://ref.example/\" "
		   "\"curl/8.5\" route=shop pool=web backend=web1 "
		   "total_ms=12.345 upstream_ms=10.002 retries=1\n");
	free(s);
}

static void test_combined_missing_fields(void **state)
{
	struct accesslog_entry e = base_entry();
	char *s;

	e.client_ip = NULL;
	e.method = NULL;
	e.target = NULL;
	e.referer = NULL;
	e.user_agent = NULL;
	e.route = NULL;
	e.pool = "";
	e.backend = NULL;
	e.upstream_ms = -1;
	e.total_ms = INFINITY;
	e.status = 408;
	e.bytes_sent = 0;
	e.retries = 0;
	s = one_line(ACCESSLOG_COMBINED, &e);
	assert_string_equal(s, "- - - [28/Nov/2026:12:00:00 +0000] \"-\" 408 0 "
			       "\"-\" \"-\" route=- pool=- backend=- "
			       "total_ms=- upstream_ms=- retries=0\n");
	free(s);
}

static void test_combined_escaping(void **state)
{
	static const char ua[] = "Moz \"x\" \\ \x1b[31m\n\xc3\xa9\x7f";
	struct accesslog_entry e = base_entry();
	char *s;

	e.user_agent = ua;
	e.user_agent_len = sizeof(ua) - 1;
	e.target = "/a b\"c";
	e.target_len = 6;
	e.route = "my route";
	e.backend = "b=\"1\"";
	s = one_line(ACCESSLOG_COMBINED, &e);
	assert_contains(s, "\"GET /a b\\x22c HTTP/1.1\"");
	assert_contains(s, "\"Moz \\x22x\\x22 \\x5C \\x1B[31m\\x0A\\xC3\\xA9\\x7F\"");
	assert_contains(s, " route=my\\x20route pool=web backend=b=\\x221\\x22 ");
	assert_int_equal(count_lines(s), 1);
	free(s);
}

/* ------------------------------------------------------------------ */
/* Anonymisation                                                       */
/* ------------------------------------------------------------------ */

static void check_anon(const char *ip, uint8_t v4, uint8_t v6, const char *want)
{
	char out[64];

	assert_int_equal(accesslog_anonymize(ip, v4, v6, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_anonymize_ipv4(void **state)
{
	check_anon("203.0.113.77", 24, 48, "203.0.113.0");
	check_anon("203.0.113.77", 16, 48, "203.0.0.0");
	check_anon("192.168.31.255", 20, 48, "192.168.16.0");
	check_anon("203.0.113.77", 32, 48, "203.0.113.77");
	check_anon("203.0.113.77", 0, 48, "0.0.0.0");
	check_anon("203.0.113.77", 200, 48, "203.0.113.77"); /* clamped */
	/* An IPv4 client on a dual-stack socket is cut as IPv4. */
	check_anon("::ffff:198.51.100.9", 24, 48, "::ffff:198.51.100.0");
}

static void test_anonymize_ipv6(void **state)
{
	check_anon("2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::");
	check_anon("2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::");
	check_anon("2001:db8:1:abcd::1", 24, 52, "2001:db8:1:a000::");
	check_anon("2001:db8:1:2:3:4:5:6", 24, 128, "2001:db8:1:2:3:4:5:6");
	check_anon("::1", 24, 48, "::");
	check_anon("2001:DB8::1", 24, 0, "::");
}

static void test_anonymize_invalid(void **state)
{
	static const char *const bad[] = {
		"", "foo", "1.2.3", "1.2.3.4:80", "256.1.1.1", " 1.2.3.4",
		"fe80::1%eth0", "[2001:db8::1]", "2001:db8::1::2", "-",
	};
	char out[64], tiny[8];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(out, 'x', sizeof(out));
		assert_int_equal(accesslog_anonymize(bad[i], 24, 48, out, sizeof(out)), -1);
		assert_string_equal(out, "-");
	}
	assert_int_equal(accesslog_anonymize(NULL, 24, 48, out, sizeof(out)), -1);
	assert_string_equal(out, "-");
	/* An address that does not fit is not half-written. */
	assert_int_equal(accesslog_anonymize("2001:db8:1:2::", 24, 64, tiny,
					     sizeof(tiny)), -1);
	assert_string_equal(tiny, "-");
}

/* With anonymisation on (default prefixes), no line of either format
 * carries a client's full address, and each carries its prefix. */
static void test_anonymize_every_line(void **state)
{
	static const struct {
		const char *ip, *full, *kept;
	} c[] = {
		{"203.0.113.77", "203.0.113.77", "203.0.113.0"},
		{"198.51.100.200", "198.51.100.200", "198.51.100.0"},
		{"2001:db8:aa:bb:cc:dd:ee:ff", "2001:db8:aa:bb", "2001:db8:aa::"},
		{"::ffff:192.0.2.55", "192.0.2.55", "::ffff:192.0.2.0"},
		{"not-an-ip", "not-an-ip", "-"},
	};
	const size_t n = sizeof(c) / sizeof(c[0]);
	struct accesslog_entry e[sizeof(c) / sizeof(c[0])];

	for (size_t i = 0; i < n; i++) {
		e[i] = base_entry();
		e[i].client_ip = c[i].ip;
	}
	for (int fmt = ACCESSLOG_JSON; fmt <= ACCESSLOG_COMBINED; fmt++) {
		char *s = log_lines((enum accesslog_format)fmt, 1, e, n);
		char *line = s, *nl;
		size_t i = 0;

		while ((nl = strchr(line, '\n')) != NULL) {
			char want[80];

			*nl = '\0';
			assert_true(i < n);
			for (size_t j = 0; j < n; j++) {
				if (strstr(line, c[j].full) != NULL)
					fail_msg("full address %s in: %s", c[j].full, line);
			}
			if (fmt == ACCESSLOG_JSON)
				snprintf(want, sizeof(want), "\"client\":\"%s\",", c[i].kept);
			else
				snprintf(want, sizeof(want), "%s - - [", c[i].kept);
			assert_contains(line, want);
			line = nl + 1;
			i++;
		}
		assert_int_equal(i, n);
		free(s);
	}
}

/* ------------------------------------------------------------------ */
/* Batching                                                            */
/* ------------------------------------------------------------------ */

static void test_batch_holds_lines_until_flush(void **state)
{
	char path[128];
	struct accesslog *l;
	struct accesslog_batch *b;
	struct accesslog_entry e = base_entry();
	char *s;

	new_path(path, sizeof(path), "batch.log");
	l = open_log(path, ACCESSLOG_JSON, 0);
	b = accesslog_batch_new(l);
	for (int i = 0; i < 50; i++)
		accesslog_write(b, &e);
	assert_int_equal(file_size(path), 0);
	accesslog_flush(b);
	s = slurp(path, NULL);
	assert_int_equal(count_lines(s), 50);
	free(s);
	/* A flush with nothing held writes nothing. */
	accesslog_flush(b);
	s = slurp(path, NULL);
	assert_int_equal(count_lines(s), 50);
	free(s);
	accesslog_batch_free(b);
	accesslog_close(l);
}

/* Past 32 KiB a batch flushes by itself, and only whole lines. */
static void test_batch_flushes_when_full(void **state)
{
	char path[128];
	struct accesslog *l;
	struct accesslog_batch *b;
	struct accesslog_entry e = base_entry();
	size_t written = 0, len;
	int lines = 0;
	char *s;

	new_path(path, sizeof(path), "full.log");
	l = open_log(path, ACCESSLOG_COMBINED, 0);
	b = accesslog_batch_new(l);
	while (file_size(path) == 0) {
		accesslog_write(b, &e);
		lines++;
		written += 170; /* about a line */
		assert_true(written < 64 * 1024);
	}
	s = slurp(path, &len);
	assert_true(len >= 32 * 1024);
	assert_int_equal(s[len - 1], '\n');
	assert_int_equal(count_lines(s), lines);
	free(s);
	accesslog_batch_free(b);
	accesslog_close(l);
}

struct worker_arg {
	struct accesslog *log;
	int id;
};

static void *writer_thread(void *p)
{
	struct worker_arg *a = p;
	struct accesslog_batch *b = accesslog_batch_new(a->log);
	struct accesslog_entry e = base_entry();
	char route[16];

	snprintf(route, sizeof(route), "t%d", a->id);
	e.route = route;
	for (uint32_t i = 0; i < NLINES; i++) {
		e.retries = i;
		e.wall_ms = WALL_MS + i;
		accesslog_write(b, &e);
		/* Some early, uneven flushes, as a worker's timer would do. */
		if (i % (997 + 100 * (uint32_t)a->id) == 0)
			accesslog_flush(b);
	}
	accesslog_batch_free(b);
	return NULL;
}

/* Parses the thread id and line number out of a line; the line must be
 * well-formed for its format. */
static void parse_line(enum accesslog_format fmt, const char *line, size_t len,
		       int *id, unsigned *seq)
{
	const char *p;

	if (fmt == ACCESSLOG_JSON) {
		assert_true(len > 8);
		assert_memory_equal(line, "{\"ts\":", 6);
		assert_int_equal(line[len - 1], '}');
		p = strstr(line, ",\"route\":\"t");
		assert_non_null(p);
		assert_int_equal(sscanf(p, ",\"route\":\"t%d\",", id), 1);
		p = strstr(line, ",\"retries\":");
		assert_non_null(p);
		assert_int_equal(sscanf(p, ",\"retries\":%u}", seq), 1);
	} else {
		assert_memory_equal(line, "203.0.113.7 - - [28/Nov/2026:12:0", 33);
		p = strstr(line, " route=t");
		assert_non_null(p);
		assert_int_equal(sscanf(p, " route=t%d pool=web ", id), 1);
		p = strstr(line, " retries=");
		assert_non_null(p);
		assert_int_equal(sscanf(p, " retries=%u", seq), 1);
		assert_true(strchr(p + 9, ' ') == NULL);
	}
}

static void run_threads(enum accesslog_format fmt)
{
	static unsigned char seen[NTHREADS][NLINES];
	char path[128];
	struct accesslog *l;
	pthread_t th[NTHREADS];
	struct worker_arg arg[NTHREADS];
	char *s, *line, *nl;
	size_t total = 0;

	memset(seen, 0, sizeof(seen));
	new_path(path, sizeof(path), "threads.log");
	l = open_log(path, fmt, 0);
	for (int i = 0; i < NTHREADS; i++) {
		arg[i].log = l;
		arg[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &arg[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	accesslog_close(l);

	s = slurp(path, NULL);
	for (line = s; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		int id = -1;
		unsigned seq = 0;

		*nl = '\0';
		parse_line(fmt, line, (size_t)(nl - line), &id, &seq);
		assert_in_range(id, 0, NTHREADS - 1);
		assert_in_range(seq, 0, NLINES - 1);
		assert_int_equal(seen[id][seq], 0);
		seen[id][seq] = 1;
		total++;
	}
	assert_int_equal(*line, '\0'); /* nothing after the last newline */
	assert_int_equal(total, NTHREADS * NLINES);
	free(s);
}

static void test_threads_json_lines_whole(void **state)
{
	run_threads(ACCESSLOG_JSON);
}

static void test_threads_combined_lines_whole(void **state)
{
	run_threads(ACCESSLOG_COMBINED);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

static void test_reopen_after_rename(void **state)
{
	char path[128], rotated[160];
	struct accesslog *l;
	struct accesslog_batch *b;
	struct accesslog_entry e = base_entry();
	char *s;

	new_path(path, sizeof(path), "rotate.log");
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	l = open_log(path, ACCESSLOG_JSON, 0);
	b = accesslog_batch_new(l);

	e.route = "before";
	for (int i = 0; i < 3; i++)
		accesslog_write(b, &e);
	accesslog_flush(b);
	assert_int_equal(rename(path, rotated), 0);
	/* Until the reopen, lines still go to the renamed file. */
	e.route = "between";
	accesslog_write(b, &e);
	accesslog_flush(b);
	assert_int_equal(accesslog_reopen(l), 0);
	e.route = "after";
	for (int i = 0; i < 5; i++)
		accesslog_write(b, &e);
	accesslog_batch_free(b);
	accesslog_close(l);

	s = slurp(rotated, NULL);
	assert_int_equal(count_lines(s), 4);
	assert_null(strstr(s, "\"after\""));
	assert_contains(s, "\"between\"");
	free(s);
	s = slurp(path, NULL);
	assert_int_equal(count_lines(s), 5);
	assert_null(strstr(s, "\"before\""));
	assert_null(strstr(s, "\"between\""));
	free(s);
}

/* A new log file is created 0640 (less the umask): readable by the log
 * group, never by everyone. */
static void test_new_file_mode(void **state)
{
	char path[128];
	struct accesslog *l;
	struct stat st;
	mode_t um = umask(022);

	umask(um);
	new_path(path, sizeof(path), "mode.log");
	l = open_log(path, ACCESSLOG_JSON, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640 & ~um);
	accesslog_close(l);
}

static void test_stdout_reopen_is_noop(void **state)
{
	struct accesslog *l = open_log("-", ACCESSLOG_COMBINED, 0);
	struct accesslog_batch *b = accesslog_batch_new(l);

	assert_int_equal(accesslog_reopen(l), 0);
	/* Nothing written, so nothing reaches the test's stdout. */
	accesslog_batch_free(b);
	accesslog_close(l);
}

static void test_open_errors(void **state)
{
	struct accesslog_opts o = {.format = ACCESSLOG_JSON};
	struct accesslog *l = (struct accesslog *)(uintptr_t)1; /* must be reset */
	char path[160], err[ERRLEN];

	o.path = NULL;
	assert_int_equal(accesslog_open(&o, &l, err, sizeof(err)), -EINVAL);
	assert_null(l);
	assert_true(err[0] != '\0');

	o.path = "";
	assert_int_equal(accesslog_open(&o, &l, err, sizeof(err)), -EINVAL);

	snprintf(path, sizeof(path), "%s/no/such/dir/access.log", tmpdir);
	o.path = path;
	assert_int_equal(accesslog_open(&o, &l, err, sizeof(err)), -ENOENT);
	assert_null(l);
	assert_contains(err, path);

	new_path(path, sizeof(path), "prefix.log");
	o.v4_prefix = 33;
	assert_int_equal(accesslog_open(&o, &l, err, sizeof(err)), -EINVAL);
	assert_contains(err, "prefix");
	o.v4_prefix = 32;
	o.v6_prefix = 129;
	assert_int_equal(accesslog_open(&o, &l, err, sizeof(err)), -EINVAL);
	o.v6_prefix = 128;
	o.format = (enum accesslog_format)7;
	assert_int_equal(accesslog_open(&o, &l, err, sizeof(err)), -EINVAL);
	o.format = ACCESSLOG_COMBINED;
	assert_int_equal(accesslog_open(&o, &l, NULL, 0), 0);
	accesslog_close(l);
	accesslog_close(NULL);
}

/* A FIFO whose reader goes away fails every write with EPIPE: the first
 * failed flush warns, later ones in the same burst do not, and the first
 * good flush after a reopen reports how many lines were lost. */
static void test_write_errors_warn_once_per_burst(void **state)
{
	char path[128], logpath[128];
	struct accesslog *l;
	struct accesslog_batch *b;
	struct accesslog_entry e = base_entry();
	int rd;
	char *s, *p;
	size_t warns = 0;
	struct sigaction sa = {.sa_handler = SIG_IGN}, old;

	assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
	new_path(path, sizeof(path), "fifo");
	new_path(logpath, sizeof(logpath), "storekeep.log");
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(log_open(LOG_INFO, logpath), 0);

	rd = open(path, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	l = open_log(path, ACCESSLOG_JSON, 0);
	b = accesslog_batch_new(l);
	accesslog_write(b, &e);
	accesslog_flush(b);
	close(rd);

	for (int round = 0; round < 3; round++) {
		accesslog_write(b, &e);
		accesslog_write(b, &e);
		accesslog_flush(b); /* EPIPE: 2 lines lost each round */
	}
	rd = open(path, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	assert_int_equal(accesslog_reopen(l), 0);
	accesslog_write(b, &e);
	accesslog_flush(b);
	accesslog_batch_free(b);
	accesslog_close(l);
	close(rd);
	assert_int_equal(log_open(LOG_WARN, NULL), 0);
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);

	s = slurp(logpath, NULL);
	for (p = s; (p = strstr(p, "access log write failed")) != NULL; p++)
		warns++;
	assert_int_equal(warns, 1);
	assert_contains(s, "err=\"Broken pipe\"");
	assert_contains(s, "msg=\"access log writable again\"");
	assert_contains(s, "lost=6");
	free(s);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sk-test-accesslog-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_fields),
		cmocka_unit_test(test_json_nulls),
		cmocka_unit_test(test_json_escapes_quotes_and_controls),
		cmocka_unit_test(test_json_utf8),
		cmocka_unit_test(test_json_numbers),
		cmocka_unit_test(test_json_timestamps_per_line),
		cmocka_unit_test(test_combined_exact),
		cmocka_unit_test(test_combined_missing_fields),
		cmocka_unit_test(test_combined_escaping),
		cmocka_unit_test(test_anonymize_ipv4),
		cmocka_unit_test(test_anonymize_ipv6),
		cmocka_unit_test(test_anonymize_invalid),
		cmocka_unit_test(test_anonymize_every_line),
		cmocka_unit_test(test_batch_holds_lines_until_flush),
		cmocka_unit_test(test_batch_flushes_when_full),
		cmocka_unit_test(test_threads_json_lines_whole),
		cmocka_unit_test(test_threads_combined_lines_whole),
		cmocka_unit_test(test_reopen_after_rename),
		cmocka_unit_test(test_new_file_mode),
		cmocka_unit_test(test_stdout_reopen_is_noop),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_write_errors_warn_once_per_burst),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
