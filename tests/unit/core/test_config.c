/*
 * test_config.c - the configuration loader, through config.h only.
 *
 * Every error class is checked against its exact one-line message, file
 * and line included, since that line is the whole user interface of a bad
 * config. Token files live in a private temporary directory made by the
 * group setup; YAML that needs one gets its path through fmt().
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"

#define ERRLEN 1024

static char tmpdir[64];	 /* private directory for this run */
static char token[128];	 /* tmpdir/admin.token, mode 0600, valid */

/* A minimal valid file; MIN_POOLS is its pools section alone. */
#define MIN_POOLS                                                             \
	"pools:\n"                                                            \
	"  - name: shop\n"                                                    \
	"    backends:\n"                                                     \
	"      - name: shop1\n"                                               \
	"        address: 127.0.0.1:8081\n"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	assert_true(vasprintf(&s, f, ap) >= 0);
	va_end(ap);
	return s;
}

static void write_file(const char *path, const char *data, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(data, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Writes data to a new file in tmpdir made with mkstemp; returns its path. */
static char *temp_file(const char *data, mode_t mode)
{
	char *path = fmt("%s/fileXXXXXX", tmpdir);
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	write_file(path, data, mode);
	return path;
}

static struct config *load_ok(const char *yaml)
{
	struct config *c = NULL;
	char err[ERRLEN] = "";

	if (config_load_string(yaml, "storekeep.yaml", &c, err, sizeof err) !=
	    0)
		fail_msg("unexpected error: %s", err);
	assert_non_null(c);
	return c;
}

static void load_err(const char *yaml, const char *want)
{
	struct config *c = (struct config *)(uintptr_t)0x1;
	char err[ERRLEN] = "";

	assert_int_equal(config_load_string(yaml, "storekeep.yaml", &c, err,
					    sizeof err),
			 -1);
	/* On failure *out is untouched. */
	assert_ptr_equal(c, (struct config *)(uintptr_t)0x1);
	assert_string_equal(err, want);
}

/* The same with the file's own text owned by the caller's fmt(). */
static void load_err_free(char *yaml, const char *want)
{
	load_err(yaml, want);
	free(yaml);
}

/* Loads yaml (freed) and drops the snapshot: only success matters. */
static void load_ok_free(char *yaml)
{
	config_unref(load_ok(yaml));
	free(yaml);
}

static uint16_t port_of(const struct cfg_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

static void assert_ipv4(const struct cfg_addr *a, const char *ip,
			uint16_t port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->sa;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(a->sa.ss_family, AF_INET);
	assert_int_equal(a->salen, sizeof(struct sockaddr_in));
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
	assert_string_equal(buf, ip);
	assert_int_equal(port_of(a), port);
}

/* Reads a whole file into a new string; NULL if it cannot be opened. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t cap = 0, n = 0, r;

	if (f == NULL)
		return NULL;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 4096;
			data = realloc(data, cap + 1);
			assert_non_null(data);
		}
		r = fread(data + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	fclose(f);
	data[n] = '\0';
	*len = n;
	return data;
}

static char *reference(size_t *len)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);

	assert_non_null(f);
	config_write_reference(f);
	assert_int_equal(fclose(f), 0);
	return out;
}

/* Replaces the one occurrence of from in s (freed) by to. */
static char *replace(char *s, const char *from, const char *to)
{
	char *at = strstr(s, from), *r;

	assert_non_null(at);
	r = fmt("%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	free(s);
	return r;
}

/* ------------------------------------------------------------------ */
/* Fixture                                                             */
/* ------------------------------------------------------------------ */

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/sk-test-config-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(token, sizeof token, "%s/admin.token", tmpdir);
	write_file(token, "0123456789abcdef0123\n", 0600);
	return 0;
}

static int group_teardown(void **state)
{
	char *cmd = fmt("rm -rf '%s'", tmpdir);
	int rc = system(cmd);

	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */
/* ------------------------------------------------------------------ */

static void test_full_example(void **state)
{
	char *yaml = fmt(
		"workers: 4\n"
		"listen: 127.0.0.1:8080\n"
		"log:\n"
		"  level: debug\n"
		"  file: /var/log/storekeep.log\n"
		"admin:\n"
		"  listen: 127.0.0.1:9902\n"
		"  token_file: %s\n"
		"limits:\n"
		"  header_bytes: 32k\n"
		"  headers: 50\n"
		"  target_bytes: 4KiB\n"
		"  body_bytes: 1g\n"
		"  client_conns: 20000\n"
		"timeouts:\n"
		"  client_header: 5s\n"
		"  client_body: 500ms\n"
		"  keepalive: 2m\n"
		"  connect: 1s\n"
		"  backend_response: 1h\n"
		"  shutdown_grace: 0s\n"
		"pools:\n"
		"  - name: shop\n"
		"    keepalive_idle: 0\n"
		"    keepalive_timeout: 45s\n"
		"    health:\n"
		"      enabled: no\n"
		"      path: /ping?full=1\n"
		"      interval: 5s\n"
		"      timeout: 4999ms\n"
		"      rise: 1\n"
		"      fall: 100\n"
		"    backends:\n"
		"      - name: shop1\n"
		"        address: 127.0.0.1:8081\n"
		"        weight: 5\n"
		"      - name: shop-2.b_x\n"
		"        address: \"[::1]:8082\"\n"
		"      - address: localhost:8083\n"
		"        name: shop3\n"
		"        weight: 1000\n",
		token);
	struct config *c = load_ok(yaml);
	const struct cfg_pool *p;
	const struct sockaddr_in6 *sin6;

	assert_int_equal(atomic_load(&c->refs), 1);
	assert_string_equal(c->path, "storekeep.yaml");
	assert_int_equal(c->workers, 4);
	assert_string_equal(c->listen.text, "127.0.0.1:8080");
	assert_ipv4(&c->listen, "127.0.0.1", 8080);
	assert_int_equal(c->log.level, LOG_DEBUG);
	assert_string_equal(c->log.file, "/var/log/storekeep.log");
	assert_int_equal(c->admin.enabled, 1);
	assert_string_equal(c->admin.listen.text, "127.0.0.1:9902");
	assert_ipv4(&c->admin.listen, "127.0.0.1", 9902);
	assert_string_equal(c->admin.token_file, token);

	assert_int_equal(c->limits.header_bytes, 32 * 1024);
	assert_int_equal(c->limits.headers, 50);
	assert_int_equal(c->limits.target_bytes, 4096);
	assert_true(c->limits.body_bytes == 1024ull * 1024 * 1024);
	assert_int_equal(c->limits.client_conns, 20000);

	assert_int_equal(c->timeouts.client_header_ms, 5000);
	assert_int_equal(c->timeouts.client_body_ms, 500);
	assert_int_equal(c->timeouts.keepalive_ms, 120000);
	assert_int_equal(c->timeouts.connect_ms, 1000);
	assert_int_equal(c->timeouts.backend_response_ms, 3600000);
	assert_int_equal(c->timeouts.shutdown_grace_ms, 0);

	assert_int_equal(c->npools, 1);
	p = &c->pools[0];
	assert_string_equal(p->name, "shop");
	assert_int_equal(p->line, 23);
	assert_int_equal(p->keepalive_idle, 0);
	assert_int_equal(p->keepalive_timeout_ms, 45000);
	assert_int_equal(p->health.enabled, 0);
	assert_string_equal(p->health.path, "/ping?full=1");
	assert_int_equal(p->health.interval_ms, 5000);
	assert_int_equal(p->health.timeout_ms, 4999);
	assert_int_equal(p->health.rise, 1);
	assert_int_equal(p->health.fall, 100);

	assert_int_equal(p->nbackends, 3);
	assert_string_equal(p->backends[0].name, "shop1");
	assert_string_equal(p->backends[0].addr.text, "127.0.0.1:8081");
	assert_ipv4(&p->backends[0].addr, "127.0.0.1", 8081);
	assert_int_equal(p->backends[0].weight, 5);
	assert_int_equal(p->backends[0].line, 34);

	assert_string_equal(p->backends[1].name, "shop-2.b_x");
	assert_string_equal(p->backends[1].addr.text, "[::1]:8082");
	assert_int_equal(p->backends[1].addr.sa.ss_family, AF_INET6);
	assert_int_equal(p->backends[1].addr.salen,
			 sizeof(struct sockaddr_in6));
	sin6 = (const struct sockaddr_in6 *)&p->backends[1].addr.sa;
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	assert_int_equal(port_of(&p->backends[1].addr), 8082);
	assert_int_equal(p->backends[1].weight, 1);
	assert_int_equal(p->backends[1].line, 37);

	/* A host name is resolved at load (to 127.0.0.1 or ::1). */
	assert_string_equal(p->backends[2].name, "shop3");
	assert_string_equal(p->backends[2].addr.text, "localhost:8083");
	assert_true(p->backends[2].addr.sa.ss_family == AF_INET ||
		    p->backends[2].addr.sa.ss_family == AF_INET6);
	assert_int_equal(port_of(&p->backends[2].addr), 8083);
	assert_int_equal(p->backends[2].weight, 1000);
	assert_int_equal(p->backends[2].line, 39);

	config_unref(c);
	free(yaml);
}

static void test_defaults(void **state)
{
	struct config *c = load_ok(MIN_POOLS);
	const struct cfg_pool *p = &c->pools[0];

	assert_int_equal(c->workers, 0);
	assert_string_equal(c->listen.text, "127.0.0.1:8080");
	assert_ipv4(&c->listen, "127.0.0.1", 8080);
	assert_int_equal(c->log.level, LOG_INFO);
	assert_null(c->log.file);
	assert_int_equal(c->admin.enabled, 0);
	assert_null(c->admin.token_file);
	assert_null(c->admin.listen.text);

	assert_int_equal(c->limits.header_bytes, 16384);
	assert_int_equal(c->limits.headers, 100);
	assert_int_equal(c->limits.target_bytes, 8192);
	assert_true(c->limits.body_bytes == 64ull << 20);
	assert_int_equal(c->limits.client_conns, 10000);

	assert_int_equal(c->timeouts.client_header_ms, 10000);
	assert_int_equal(c->timeouts.client_body_ms, 30000);
	assert_int_equal(c->timeouts.keepalive_ms, 60000);
	assert_int_equal(c->timeouts.connect_ms, 3000);
	assert_int_equal(c->timeouts.backend_response_ms, 30000);
	assert_int_equal(c->timeouts.shutdown_grace_ms, 10000);

	assert_int_equal(c->npools, 1);
	assert_string_equal(p->name, "shop");
	assert_int_equal(p->line, 2);
	assert_int_equal(p->keepalive_idle, 32);
	assert_int_equal(p->keepalive_timeout_ms, 30000);
	assert_int_equal(p->health.enabled, 1);
	assert_string_equal(p->health.path, "/healthz");
	assert_int_equal(p->health.interval_ms, 2000);
	assert_int_equal(p->health.timeout_ms, 1000);
	assert_int_equal(p->health.rise, 2);
	assert_int_equal(p->health.fall, 3);
	assert_int_equal(p->nbackends, 1);
	assert_string_equal(p->backends[0].name, "shop1");
	assert_int_equal(p->backends[0].weight, 1);
	assert_int_equal(p->backends[0].line, 4);
	config_unref(c);
}

/* An admin map with only its token gets the default loopback listener. */
static void test_admin_defaults(void **state)
{
	char *yaml = fmt("admin:\n  token_file: %s\n" MIN_POOLS, token);
	struct config *c = load_ok(yaml);

	assert_int_equal(c->admin.enabled, 1);
	assert_string_equal(c->admin.listen.text, "127.0.0.1:9901");
	assert_ipv4(&c->admin.listen, "127.0.0.1", 9901);
	config_unref(c);
	free(yaml);
}

/* The example printed in docs/config.md must itself be a valid file. */
static void test_reference_example_loads(void **state)
{
	size_t len;
	char *ref = reference(&len), *start, *end, *yaml;
	struct config *c;

	start = strstr(ref, "```yaml\n");
	assert_non_null(start);
	start += strlen("```yaml\n");
	end = strstr(start, "```\n");
	assert_non_null(end);
	yaml = fmt("%.*s", (int)(end - start), start);
	yaml = replace(yaml, "/etc/storekeep/admin.token", token);
	c = load_ok(yaml);
	assert_int_equal(c->admin.enabled, 1);
	assert_string_equal(c->pools[0].backends[0].name, "shop1");
	config_unref(c);
	free(yaml);
	free(ref);
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

static uint32_t connect_ms(const char *v)
{
	char *yaml = fmt("timeouts:\n  connect: %s\n" MIN_POOLS, v);
	struct config *c = load_ok(yaml);
	uint32_t ms = c->timeouts.connect_ms;

	config_unref(c);
	free(yaml);
	return ms;
}

static void test_durations(void **state)
{
	assert_int_equal(connect_ms("1ms"), 1);
	assert_int_equal(connect_ms("500ms"), 500);
	assert_int_equal(connect_ms("2s"), 2000);
	assert_int_equal(connect_ms("\"3s\""), 3000);
	assert_int_equal(connect_ms("1m"), 60000);
	assert_int_equal(connect_ms("1h"), 3600000);
	assert_int_equal(connect_ms("1d"), 86400000);

	load_err("timeouts:\n  connect: 30\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.connect: expected a duration "
		 "such as 500ms, 2s or 1m, got \"30\"");
	load_err("timeouts:\n  connect: 1.5s\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.connect: expected a duration "
		 "such as 500ms, 2s or 1m, got \"1.5s\"");
	load_err("timeouts:\n  connect: 2S\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.connect: expected a duration "
		 "such as 500ms, 2s or 1m, got \"2S\"");
	load_err("timeouts:\n  connect: -1s\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.connect: expected a duration "
		 "such as 500ms, 2s or 1m, got \"-1s\"");
	load_err("timeouts:\n  connect: 0s\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.connect: expected a duration "
		 "from 1ms to 1d, got \"0s\"");
	load_err("timeouts:\n  connect: 25h\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.connect: expected a duration "
		 "from 1ms to 1d, got \"25h\"");
	load_err("timeouts:\n  connect: 99999999999999999999d\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.connect: expected a duration "
		 "from 1ms to 1d, got \"99999999999999999999d\"");
	load_err("timeouts:\n  shutdown_grace: 61m\n" MIN_POOLS,
		 "storekeep.yaml:2: timeouts.shutdown_grace: expected a "
		 "duration from 0s to 1h, got \"61m\"");
}

static uint64_t body_bytes(const char *v)
{
	char *yaml = fmt("limits:\n  body_bytes: %s\n" MIN_POOLS, v);
	struct config *c = load_ok(yaml);
	uint64_t n = c->limits.body_bytes;

	config_unref(c);
	free(yaml);
	return n;
}

static void test_sizes(void **state)
{
	assert_true(body_bytes("0") == 0);
	assert_true(body_bytes("512") == 512);
	assert_true(body_bytes("16k") == 16384);
	assert_true(body_bytes("16K") == 16384);
	assert_true(body_bytes("16KiB") == 16384);
	assert_true(body_bytes("10m") == 10ull << 20);
	assert_true(body_bytes("10MiB") == 10ull << 20);
	assert_true(body_bytes("1g") == 1ull << 30);
	assert_true(body_bytes("1t") == 1ull << 40);

	/* "16kb" could mean 16000 or 16384: refused, not guessed. */
	load_err("limits:\n  body_bytes: 16kb\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.body_bytes: expected a size such "
		 "as 512, 16k or 10m, got \"16kb\"");
	load_err("limits:\n  body_bytes: 2t\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.body_bytes: expected a size from "
		 "0 to 1t, got \"2t\"");
	load_err("limits:\n  body_bytes: 99999999999t\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.body_bytes: expected a size from "
		 "0 to 1t, got \"99999999999t\"");
	load_err("limits:\n  header_bytes: 1023\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.header_bytes: expected a size "
		 "from 1k to 1m, got \"1023\"");
	load_err("limits:\n  header_bytes: 1025k\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.header_bytes: expected a size "
		 "from 1k to 1m, got \"1025k\"");
	load_err("limits:\n  target_bytes: 255\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.target_bytes: expected a size "
		 "from 256 to 64k, got \"255\"");
	load_err("limits:\n  target_bytes: k\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.target_bytes: expected a size "
		 "such as 512, 16k or 10m, got \"k\"");
}

static int health_enabled(const char *v)
{
	char *yaml = fmt("pools:\n"
			 "  - name: shop\n"
			 "    health:\n"
			 "      enabled: %s\n"
			 "    backends:\n"
			 "      - name: shop1\n"
			 "        address: 127.0.0.1:8081\n",
			 v);
	struct config *c = load_ok(yaml);
	int on = c->pools[0].health.enabled;

	config_unref(c);
	free(yaml);
	return on;
}

static void test_bools(void **state)
{
	assert_int_equal(health_enabled("true"), 1);
	assert_int_equal(health_enabled("yes"), 1);
	assert_int_equal(health_enabled("on"), 1);
	assert_int_equal(health_enabled("True"), 1);
	assert_int_equal(health_enabled("false"), 0);
	assert_int_equal(health_enabled("no"), 0);
	assert_int_equal(health_enabled("off"), 0);
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      enabled: 1\n",
		 "storekeep.yaml:4: pools[0].health.enabled: expected true "
		 "or false, got \"1\"");
}

static void test_enums(void **state)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	struct config *c;
	char *yaml;
	int i;

	for (i = 0; i < 4; i++) {
		yaml = fmt("log:\n  level: %s\n" MIN_POOLS, names[i]);
		c = load_ok(yaml);
		assert_int_equal(c->log.level, i);
		config_unref(c);
		free(yaml);
	}
	load_err("log:\n  level: verbose\n" MIN_POOLS,
		 "storekeep.yaml:2: log.level: expected one of error, warn, "
		 "info, debug, got \"verbose\"");
	load_err("log:\n  level: INFO\n" MIN_POOLS,
		 "storekeep.yaml:2: log.level: expected one of error, warn, "
		 "info, debug, got \"INFO\"");
}

/* The example from the design brief, error on line 14. */
static void test_int_error_example(void **state)
{
	load_err("workers: 2\n"			  /* 1 */
		 "listen: 127.0.0.1:8080\n"	  /* 2 */
		 "limits:\n"			  /* 3 */
		 "  headers: 100\n"		  /* 4 */
		 "timeouts:\n"			  /* 5 */
		 "  connect: 3s\n"		  /* 6 */
		 "pools:\n"			  /* 7 */
		 "  - name: shop\n"		  /* 8 */
		 "    health:\n"		  /* 9 */
		 "      path: /healthz\n"	  /* 10 */
		 "    backends:\n"		  /* 11 */
		 "      - name: shop1\n"	  /* 12 */
		 "        address: 127.0.0.1:8081\n" /* 13 */
		 "        weight: heavy\n",	  /* 14 */
		 "storekeep.yaml:14: pools[0].backends[0].weight: expected "
		 "an integer from 1 to 1000, got \"heavy\"");
}

static void test_int_bounds(void **state)
{
	load_err("workers: 257\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got \"257\"");
	load_err("workers: -1\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got \"-1\"");
	load_err("workers: +1\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got \"+1\"");
	load_err("workers: 0x10\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got \"0x10\"");
	load_err("workers: 123456789012345678901234567890\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got \"123456789012345678901234567890\"");
	load_err("limits:\n  headers: 7\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.headers: expected an integer "
		 "from 8 to 1000, got \"7\"");
	load_err("limits:\n  client_conns: 1000001\n" MIN_POOLS,
		 "storekeep.yaml:2: limits.client_conns: expected an "
		 "integer from 1 to 1000000, got \"1000001\"");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    keepalive_idle: 10001\n",
		 "storekeep.yaml:3: pools[0].keepalive_idle: expected an "
		 "integer from 0 to 10000, got \"10001\"");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      rise: 0\n",
		 "storekeep.yaml:4: pools[0].health.rise: expected an "
		 "integer from 1 to 100, got \"0\"");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      fall: 101\n",
		 "storekeep.yaml:4: pools[0].health.fall: expected an "
		 "integer from 1 to 100, got \"101\"");
	load_err(MIN_POOLS "        weight: 0\n",
		 "storekeep.yaml:6: pools[0].backends[0].weight: expected "
		 "an integer from 1 to 1000, got \"0\"");
	load_err(MIN_POOLS "        weight: 1001\n",
		 "storekeep.yaml:6: pools[0].backends[0].weight: expected "
		 "an integer from 1 to 1000, got \"1001\"");
}

/* Values that are not text where text is wanted, and text where a map is. */
static void test_type_mismatch(void **state)
{
	load_err("workers:\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got nothing");
	load_err("workers: ~\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got nothing");
	load_err("workers: [1, 2]\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: expected an integer from 0 to "
		 "256, got a list");
	load_err("workers:\n  count: 2\n" MIN_POOLS,
		 "storekeep.yaml:2: workers: expected an integer from 0 to "
		 "256, got a map");
	load_err("limits: 5\n" MIN_POOLS,
		 "storekeep.yaml:1: limits: expected a map, got \"5\"");
	load_err("limits:\n" MIN_POOLS,
		 "storekeep.yaml:1: limits: expected a map, got nothing");
	load_err("pools:\n  name: shop\n",
		 "storekeep.yaml:2: pools: expected a list of maps, got a "
		 "map");
	load_err("pools:\n  - shop\n",
		 "storekeep.yaml:2: pools[0]: expected a map, got "
		 "\"shop\"");
	load_err("- a\n- b\n",
		 "storekeep.yaml:1: expected a map of settings at the top "
		 "level");
	load_err("hello\n",
		 "storekeep.yaml:1: expected a map of settings at the top "
		 "level");
	load_err("? [a, b]\n: c\n",
		 "storekeep.yaml:1: expected a key, got a list");
	/* A NUL byte escaped into a quoted string must not cut it short. */
	load_err("log:\n  file: \"/tmp/a\\0b\"\n" MIN_POOLS,
		 "storekeep.yaml:2: log.file: expected a file path, got "
		 "\"/tmp/a\\x00b\"");
	/* Control characters in a value are escaped in the message. */
	load_err("log:\n  level: \"a\\tb\\\"c\"\n" MIN_POOLS,
		 "storekeep.yaml:2: log.level: expected one of error, warn, "
		 "info, debug, got \"a\\x09b\\\"c\"");
}

static void test_names_and_paths(void **state)
{
	load_err("pools:\n  - name: my shop\n",
		 "storekeep.yaml:2: pools[0].name: expected a name of 1 to "
		 "64 characters from A-Z a-z 0-9 _ . -, got \"my shop\"");
	load_err("pools:\n  - name: \"\"\n",
		 "storekeep.yaml:2: pools[0].name: expected a name of 1 to "
		 "64 characters from A-Z a-z 0-9 _ . -, got \"\"");
	load_err("pools:\n  - name: "
		 "a234567890123456789012345678901234567890123456789012345678"
		 "9012345\n",
		 "storekeep.yaml:2: pools[0].name: expected a name of 1 to "
		 "64 characters from A-Z a-z 0-9 _ . -, got "
		 "\"a23456789012345678901234567890123456789012345678\"...");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    backends:\n"
		 "      - name: shop/1\n",
		 "storekeep.yaml:4: pools[0].backends[0].name: expected a "
		 "name of 1 to 64 characters from A-Z a-z 0-9 _ . -, got "
		 "\"shop/1\"");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      path: healthz\n",
		 "storekeep.yaml:4: pools[0].health.path: expected a path "
		 "starting with / without spaces or control characters, got "
		 "\"healthz\"");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      path: \"/health z\"\n",
		 "storekeep.yaml:4: pools[0].health.path: expected a path "
		 "starting with / without spaces or control characters, got "
		 "\"/health z\"");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      path: \"/health\\r\\n\"\n",
		 "storekeep.yaml:4: pools[0].health.path: expected a path "
		 "starting with / without spaces or control characters, got "
		 "\"/health\\x0d\\x0a\"");
}

static void test_addresses(void **state)
{
	char err[ERRLEN];
	struct config *c;
	const char *pre = "storekeep.yaml:1: listen: cannot resolve "
			  "\"nosuch.invalid\": ";

	c = load_ok("listen: \"[::1]:80\"\n" MIN_POOLS);
	assert_int_equal(c->listen.sa.ss_family, AF_INET6);
	assert_int_equal(port_of(&c->listen), 80);
	config_unref(c);
	c = load_ok("listen: 0.0.0.0:65535\n" MIN_POOLS);
	assert_ipv4(&c->listen, "0.0.0.0", 65535);
	config_unref(c);

#define BAD_ADDR(v)                                                            \
	"storekeep.yaml:1: listen: expected an address such as "              \
	"127.0.0.1:8080, [::1]:8080 or host:8080, got \"" v "\""
	load_err("listen: 8080\n" MIN_POOLS, BAD_ADDR("8080"));
	load_err("listen: :8080\n" MIN_POOLS, BAD_ADDR(":8080"));
	load_err("listen: \"127.0.0.1:\"\n" MIN_POOLS, BAD_ADDR("127.0.0.1:"));
	load_err("listen: 127.0.0.1:0\n" MIN_POOLS, BAD_ADDR("127.0.0.1:0"));
	load_err("listen: 127.0.0.1:65536\n" MIN_POOLS,
		 BAD_ADDR("127.0.0.1:65536"));
	load_err("listen: 127.0.0.1:http\n" MIN_POOLS,
		 BAD_ADDR("127.0.0.1:http"));
	load_err("listen: \"::1:80\"\n" MIN_POOLS, BAD_ADDR("::1:80"));
	load_err("listen: \"[::1]80\"\n" MIN_POOLS, BAD_ADDR("[::1]80"));
	load_err("listen: \"[localhost]:80\"\n" MIN_POOLS,
		 BAD_ADDR("[localhost]:80"));
	load_err("listen: \"a b:80\"\n" MIN_POOLS, BAD_ADDR("a b:80"));
#undef BAD_ADDR

	/* The resolver's own words vary (no name, no DNS): check the rest. */
	assert_int_equal(config_load_string("listen: nosuch.invalid:80\n"
					    MIN_POOLS,
					    "storekeep.yaml", &c, err,
					    sizeof err),
			 -1);
	assert_memory_equal(err, pre, strlen(pre));
	assert_true(strlen(err) > strlen(pre));
}

/* ------------------------------------------------------------------ */
/* Structure errors                                                    */
/* ------------------------------------------------------------------ */

static void test_unknown_key(void **state)
{
	load_err("workers: 1\n"
		 "limits:\n"
		 "  header_byte: 16k\n" MIN_POOLS,
		 "storekeep.yaml:3: limits.header_byte: unknown key "
		 "(expected one of: header_bytes, headers, target_bytes, "
		 "body_bytes, client_conns)");
	load_err("worker: 1\n" MIN_POOLS,
		 "storekeep.yaml:1: worker: unknown key (expected one of: "
		 "workers, listen, log, admin, limits, timeouts, pools, routes, retry_budget, access_log, idempotency, monitor, backup)");
	load_err(MIN_POOLS "        wieght: 2\n",
		 "storekeep.yaml:6: pools[0].backends[0].wieght: unknown "
		 "key (expected one of: name, address, weight, max_conns, backup)");
	load_err("\"bad key\": 1\n",
		 "storekeep.yaml:1: \"bad key\": unknown key (expected one "
		 "of: workers, listen, log, admin, limits, timeouts, pools, routes, retry_budget, access_log, idempotency, monitor, backup)");
}

static void test_duplicate_key(void **state)
{
	load_err("workers: 1\n"
		 "listen: 127.0.0.1:8080\n"
		 "workers: 2\n" MIN_POOLS,
		 "storekeep.yaml:3: workers: duplicate key (first on line 1)");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      rise: 2\n"
		 "      rise: 3\n",
		 "storekeep.yaml:5: pools[0].health.rise: duplicate key "
		 "(first on line 4)");
	load_err(MIN_POOLS "pools: []\n",
		 "storekeep.yaml:6: pools: duplicate key (first on line 1)");
}

static void test_required_keys(void **state)
{
	load_err("workers: 1\n",
		 "storekeep.yaml:1: pools: required key is missing");
	load_err("workers: 1\npools: []\n",
		 "storekeep.yaml:2: pools: expected at least 1 pool, got "
		 "none");
	load_err("pools:\n"
		 "  - backends:\n"
		 "      - name: shop1\n"
		 "        address: 127.0.0.1:8081\n",
		 "storekeep.yaml:2: pools[0].name: required key is missing");
	load_err("pools:\n"
		 "  - name: shop\n",
		 "storekeep.yaml:2: pools[0].backends: required key is "
		 "missing");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    backends: []\n",
		 "storekeep.yaml:3: pools[0].backends: expected at least 1 "
		 "backend, got none");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    backends:\n"
		 "      - name: shop1\n"
		 "      - name: shop2\n"
		 "        address: 127.0.0.1:8082\n",
		 "storekeep.yaml:4: pools[0].backends[0].address: required "
		 "key is missing");
	load_err("admin:\n"
		 "  listen: 127.0.0.1:9901\n" MIN_POOLS,
		 "storekeep.yaml:2: admin.token_file: required key is "
		 "missing");
}

static void test_routes(void **state)
{
	struct config *c;

	(void)state;
	c = load_ok("pools:\n"
		    "  - name: web\n"
		    "    backends: [{name: w1, address: 127.0.0.1:8081}]\n"
		    "  - name: pay\n"
		    "    balance: hash\n"
		    "    hash_on: cookie\n"
		    "    hash_name: sk_session\n"
		    "    backends:\n"
		    "      - {name: p1, address: 127.0.0.1:8082}\n"
		    "      - {name: p2, address: 127.0.0.1:8083, backup: true}\n"
		    "routes:\n"
		    "  - name: checkout\n"
		    "    hosts: [Shop.Example.com, '*.example.com']\n"
		    "    path: /checkout\n"
		    "    pool: pay\n"
		    "    retry:\n"
		    "      methods: []\n"
		    "      on_status: [502, 503]\n"
		    "  - name: rest\n"
		    "    pool: web\n");
	assert_int_equal(c->nroutes, 2);
	assert_int_equal(c->routes[0].pool_index, 1);
	assert_int_equal(c->routes[0].nhosts, 2);
	assert_string_equal(c->routes[0].hosts[0].pattern, "shop.example.com");
	assert_string_equal(c->routes[0].hosts[1].pattern, "*.example.com");
	assert_int_equal(c->routes[0].retry.nmethods, 0);
	assert_int_equal(c->routes[0].retry.methods_set, 1);
	assert_int_equal(c->routes[0].retry.non_status, 2);
	assert_int_equal(c->routes[0].retry.on_status[1].status, 503);
	assert_string_equal(c->routes[1].path, "/");
	assert_int_equal(c->routes[1].pool_index, 0);
	/* Default retry methods: the idempotent ones. */
	assert_int_equal(c->routes[1].retry.nmethods, 5);
	assert_int_equal(c->routes[1].retry.attempts, 2);
	assert_int_equal(c->pools[1].balance, CFG_BALANCE_HASH);
	assert_int_equal(c->pools[1].hash_on, CFG_HASH_COOKIE);
	assert_int_equal(c->pools[1].backends[1].backup, 1);
	config_unref(c);

	load_err("pools:\n"
		 "  - name: web\n"
		 "    backends: [{name: w1, address: 127.0.0.1:8081}]\n"
		 "routes:\n"
		 "  - name: r\n"
		 "    pool: nope\n",
		 "storekeep.yaml:5: routes[0].pool: no pool named \"nope\"");
	load_err("pools:\n"
		 "  - name: web\n"
		 "    balance: hash\n"
		 "    hash_on: header\n"
		 "    backends: [{name: w1, address: 127.0.0.1:8081}]\n",
		 "storekeep.yaml:4: pools[0].hash_on: hash_on: header needs "
		 "hash_name (the header to hash)");
	load_err("pools:\n"
		 "  - name: web\n"
		 "    backends: [{name: w1, address: 127.0.0.1:8081, backup: true}]\n",
		 "storekeep.yaml:3: pools[0].backends: needs at least one "
		 "backend that is not a backup");
	load_err("pools:\n"
		 "  - name: web\n"
		 "    backends: [{name: w1, address: 127.0.0.1:8081}]\n"
		 "routes:\n"
		 "  - name: r\n"
		 "    pool: web\n"
		 "    hosts: [bad_host]\n",
		 "storekeep.yaml:7: routes[0].hosts[0]: expected a host name "
		 "such as shop.example.com or *.example.com, got \"bad_host\"");
	load_err("pools:\n"
		 "  - name: web\n"
		 "    backends: [{name: w1, address: 127.0.0.1:8081}]\n"
		 "routes:\n"
		 "  - name: r\n"
		 "    pool: web\n"
		 "    retry: {methods: [GET, FETCH]}\n",
		 "storekeep.yaml:7: routes[0].retry.methods[1]: expected one of "
		 "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE, got "
		 "\"FETCH\"");
	load_err("pools:\n"
		 "  - name: web\n"
		 "    balance: fastest\n"
		 "    backends: [{name: w1, address: 127.0.0.1:8081}]\n",
		 "storekeep.yaml:3: pools[0].balance: expected one of "
		 "round_robin, least_conn, p2c_ewma, hash, sticky, got "
		 "\"fastest\"");
}

static void test_list_counts(void **state)
{
	struct config *c;
	char *yaml, *more;
	int i;

	c = load_ok(MIN_POOLS
		    "  - name: cart\n"
		    "    backends:\n"
		    "      - name: cart1\n"
		    "        address: 127.0.0.1:8091\n");
	assert_int_equal(c->npools, 2);
	assert_string_equal(c->pools[1].name, "cart");
	config_unref(c);

	/* 1000 backends load; the 1001st is refused on its own line. */
	yaml = fmt("pools:\n  - name: shop\n    backends:\n");
	for (i = 0; i < 1000; i++) {
		more = fmt("%s      - {name: b%d, address: 127.0.0.1:%d}\n",
			   yaml, i, 10000 + i);
		free(yaml);
		yaml = more;
	}
	c = load_ok(yaml);
	assert_int_equal(c->pools[0].nbackends, 1000);
	assert_string_equal(c->pools[0].backends[999].name, "b999");
	assert_int_equal(port_of(&c->pools[0].backends[999].addr), 10999);
	assert_int_equal(c->pools[0].backends[999].line, 1003);
	config_unref(c);
	more = fmt("%s      - {name: b1000, address: 127.0.0.1:9999}\n", yaml);
	load_err(more, "storekeep.yaml:1004: pools[0].backends: expected at "
		       "most 1000 backends");
	free(more);
	free(yaml);
}

static void test_unique_names(void **state)
{
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    backends:\n"
		 "      - name: shop1\n"
		 "        address: 127.0.0.1:8081\n"
		 "      - name: shop2\n"
		 "        address: 127.0.0.1:8082\n"
		 "      - name: shop1\n"
		 "        address: 127.0.0.1:8083\n",
		 "storekeep.yaml:8: pools[0].backends[2].name: duplicate "
		 "backend name \"shop1\" (first on line 4)");
}

static void test_health_timeout(void **state)
{
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      interval: 2s\n"
		 "      timeout: 2s\n",
		 "storekeep.yaml:5: pools[0].health.timeout: must be shorter "
		 "than interval (2s), got 2s");
	/* Only interval written: the default timeout is not the mistake. */
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      interval: 500ms\n",
		 "storekeep.yaml:4: pools[0].health.interval: must be longer "
		 "than timeout (1s), got 500ms");
	load_err("pools:\n"
		 "  - name: shop\n"
		 "    health:\n"
		 "      timeout: 3s\n",
		 "storekeep.yaml:4: pools[0].health.timeout: must be shorter "
		 "than interval (2s), got 3s");
}

static void test_yaml_syntax(void **state)
{
	load_err("workers: 1\n"
		 "limits:\n"
		 "  headers: 100\n"
		 " target_bytes: 8k\n",
		 "storekeep.yaml:4: invalid YAML: did not find expected key "
		 "(while parsing a block mapping on line 1)");
	load_err("workers: 1\n"
		 "listen: \"127.0.0.1:8080\n",
		 "storekeep.yaml:3: invalid YAML: found unexpected end of "
		 "stream (while scanning a quoted scalar on line 2)");
	/* Syntax first: the bad listen value on line 2 is not the news. */
	load_err("workers: 1\n"
		 "listen: [127.0.0.1\n",
		 "storekeep.yaml:3: invalid YAML: did not find expected ',' "
		 "or ']' (while parsing a flow sequence on line 2)");
	load_err("workers: 1\n"
		 "log: level: info\n",
		 "storekeep.yaml:2: invalid YAML: mapping values are not "
		 "allowed in this context");
	load_err("workers: 1\n"
		 "listen: \"\xff\"\n",
		 "storekeep.yaml:2: invalid YAML: invalid leading UTF-8 "
		 "octet (byte 20)");
}

static void test_yaml_features_refused(void **state)
{
	load_err("timeouts: &t\n"
		 "  connect: 1s\n" MIN_POOLS,
		 "storekeep.yaml:1: timeouts: YAML anchors (&t) are not "
		 "supported");
	load_err("workers: 2\n"
		 "limits:\n"
		 "  headers: *w\n",
		 "storekeep.yaml:3: limits.headers: YAML aliases (*w) are "
		 "not supported; write the value out");
	load_err("workers: !!int 2\n" MIN_POOLS,
		 "storekeep.yaml:1: workers: YAML tags "
		 "(tag:yaml.org,2002:int) are not supported");
	load_err(MIN_POOLS "---\nworkers: 1\n",
		 "storekeep.yaml:6: only one YAML document per file is "
		 "supported");
}

static void test_empty_file(void **state)
{
	load_err("", "storekeep.yaml:1: pools: required key is missing");
	load_err("# nothing yet\n\n",
		 "storekeep.yaml:1: pools: required key is missing");
	load_err("---\n", "storekeep.yaml:1: pools: required key is missing");
	load_err("{}\n", "storekeep.yaml:1: pools: required key is missing");
}

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

static void test_missing_file(void **state)
{
	struct config *c = NULL;
	char err[ERRLEN];
	char *path = fmt("%s/none.yaml", tmpdir), *want;

	assert_int_equal(config_load(path, &c, err, sizeof err), -1);
	assert_null(c);
	want = fmt("%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
	free(want);
	assert_int_equal(config_load(tmpdir, &c, err, sizeof err), -1);
	want = fmt("%s: cannot open: Is a directory", tmpdir);
	assert_string_equal(err, want);
	free(want);
	free(path);
}

/* config_load: messages carry the path; relative paths follow the file. */
static void test_load_file(void **state)
{
	char *dir = fmt("%s/etc", tmpdir);
	char *path = fmt("%s/storekeep.yaml", dir);
	char *tok = fmt("%s/admin.token", dir);
	char *want, *cwd, err[ERRLEN];
	struct config *c = NULL, *c2 = NULL;
	int rc, rc2;

	assert_int_equal(mkdir(dir, 0700), 0);
	write_file(tok, "abcdefghijklmnopqrstuvwxyz\n", 0600);
	write_file(path,
		   "log:\n"
		   "  file: logs/storekeep.log\n"
		   "admin:\n"
		   "  token_file: admin.token\n" MIN_POOLS,
		   0644);
	assert_int_equal(config_load(path, &c, err, sizeof err), 0);
	assert_string_equal(c->path, path);
	want = fmt("%s/logs/storekeep.log", dir);
	assert_string_equal(c->log.file, want);
	free(want);
	assert_string_equal(c->admin.token_file, tok);
	config_unref(c);

	/* A relative config path is resolved against the current directory
	 * once, at load: the snapshot holds absolute paths. */
	cwd = getcwd(NULL, 0);
	assert_non_null(cwd);
	assert_int_equal(chdir(tmpdir), 0);
	rc = config_load("etc/storekeep.yaml", &c, err, sizeof err);
	assert_int_equal(chdir(dir), 0);
	rc2 = config_load("storekeep.yaml", &c2, err, sizeof err);
	assert_int_equal(chdir(cwd), 0);
	free(cwd);
	assert_int_equal(rc, 0);
	assert_int_equal(rc2, 0);
	assert_string_equal(c->path, "etc/storekeep.yaml");
	assert_string_equal(c->admin.token_file, tok);
	assert_string_equal(c2->admin.token_file, tok);
	config_unref(c2);
	config_unref(c);

	write_file(path, "workers: many\n", 0644);
	assert_int_equal(config_load(path, &c, err, sizeof err), -1);
	want = fmt("%s:1: workers: expected an integer from 0 to 256, got "
		   "\"many\"",
		   path);
	assert_string_equal(err, want);
	free(want);
	free(tok);
	free(path);
	free(dir);
}

static char *admin_yaml(const char *tokpath)
{
	return fmt("admin:\n"
		   "  listen: 127.0.0.1:9901\n"
		   "  token_file: %s\n" MIN_POOLS,
		   tokpath);
}

static void test_token_file(void **state)
{
	char *path, *want, *dir;

	/* Group or other access, in any bit, is refused. */
	path = temp_file("0123456789abcdef0123\n", 0644);
	want = fmt("storekeep.yaml:3: admin.token_file: %s is readable by "
		   "others (mode 0644); run chmod 600 %s",
		   path, path);
	load_err_free(admin_yaml(path), want);
	free(want);
	assert_int_equal(chmod(path, 0640), 0);
	want = fmt("storekeep.yaml:3: admin.token_file: %s is readable by "
		   "others (mode 0640); run chmod 600 %s",
		   path, path);
	load_err_free(admin_yaml(path), want);
	free(want);
	assert_int_equal(chmod(path, 0620), 0);
	want = fmt("storekeep.yaml:3: admin.token_file: %s is writable by "
		   "others (mode 0620); run chmod 600 %s",
		   path, path);
	load_err_free(admin_yaml(path), want);
	free(want);
	assert_int_equal(chmod(path, 0400), 0);
	load_ok_free(admin_yaml(path));
	free(path);

	/* Exactly 16 characters, no trailing newline, is enough. */
	path = temp_file("0123456789abcdef", 0600);
	load_ok_free(admin_yaml(path));
	free(path);

	/* A CRLF line end is trimmed like a LF. */
	path = temp_file("0123456789abcdef\r\n", 0600);
	load_ok_free(admin_yaml(path));
	free(path);

	path = temp_file("0123456789abcde\n", 0600);
	want = fmt("storekeep.yaml:3: admin.token_file: the token in %s is "
		   "too short (15 characters, need at least 16)",
		   path);
	load_err_free(admin_yaml(path), want);
	free(want);
	free(path);

	path = temp_file("", 0600);
	want = fmt("storekeep.yaml:3: admin.token_file: the token in %s is "
		   "too short (0 characters, need at least 16)",
		   path);
	load_err_free(admin_yaml(path), want);
	free(want);
	free(path);

	path = temp_file("0123456789 abcdef\n", 0600);
	want = fmt("storekeep.yaml:3: admin.token_file: the token in %s "
		   "holds a space or a control character (byte 10)",
		   path);
	load_err_free(admin_yaml(path), want);
	free(want);
	free(path);

	path = temp_file("0123456789abcdef\n\n", 0600);
	want = fmt("storekeep.yaml:3: admin.token_file: the token in %s "
		   "holds a space or a control character (byte 16)",
		   path);
	load_err_free(admin_yaml(path), want);
	free(want);
	free(path);

	want = fmt("%02000d\n", 0);
	path = temp_file(want, 0600);
	free(want);
	want = fmt("storekeep.yaml:3: admin.token_file: the token in %s is "
		   "longer than 1024 characters",
		   path);
	load_err_free(admin_yaml(path), want);
	free(want);
	free(path);

	path = fmt("%s/absent.token", tmpdir);
	want = fmt("storekeep.yaml:3: admin.token_file: cannot open %s: No "
		   "such file or directory",
		   path);
	load_err_free(admin_yaml(path), want);
	free(want);
	free(path);

	dir = fmt("%s/tokdir", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	want = fmt("storekeep.yaml:3: admin.token_file: %s is not a regular "
		   "file",
		   dir);
	load_err_free(admin_yaml(dir), want);
	free(want);
	free(dir);
}

static void test_admin_loopback(void **state)
{
	static const char *const ok[] = {"127.0.0.1:9901", "127.1.2.3:9901",
					 "\"[::1]:9901\"", "localhost:9901"};
	struct config *c;
	char *yaml;
	size_t i;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		yaml = fmt("admin:\n  listen: %s\n  token_file: %s\n" MIN_POOLS,
			   ok[i], token);
		c = load_ok(yaml);
		assert_int_equal(c->admin.enabled, 1);
		config_unref(c);
		free(yaml);
	}
	load_err_free(fmt("admin:\n"
			  "  token_file: %s\n"
			  "  listen: 0.0.0.0:9901\n" MIN_POOLS,
			  token),
		      "storekeep.yaml:3: admin.listen: must be a loopback "
		      "address (127.0.0.0/8 or ::1), got \"0.0.0.0:9901\"");
	load_err_free(fmt("admin:\n"
			  "  token_file: %s\n"
			  "  listen: \"[::]:9901\"\n" MIN_POOLS,
			  token),
		      "storekeep.yaml:3: admin.listen: must be a loopback "
		      "address (127.0.0.0/8 or ::1), got \"[::]:9901\"");
	load_err_free(fmt("admin:\n"
			  "  token_file: %s\n"
			  "  listen: 10.0.0.1:9901\n" MIN_POOLS,
			  token),
		      "storekeep.yaml:3: admin.listen: must be a loopback "
		      "address (127.0.0.0/8 or ::1), got \"10.0.0.1:9901\"");
}

/* ------------------------------------------------------------------ */
/* Lifetime and API edges                                              */
/* ------------------------------------------------------------------ */

static void test_ref_unref(void **state)
{
	struct config *c = load_ok(MIN_POOLS);

	assert_int_equal(atomic_load(&c->refs), 1);
	assert_ptr_equal(config_ref(c), c);
	assert_ptr_equal(config_ref(c), c);
	assert_int_equal(atomic_load(&c->refs), 3);
	config_unref(c);
	config_unref(c);
	assert_int_equal(atomic_load(&c->refs), 1);
	/* Still whole: the snapshot lives until its last reference. */
	assert_string_equal(c->pools[0].backends[0].name, "shop1");
	config_unref(c); /* frees; ASan reports any leak or reuse */
	config_unref(NULL);
}

/* Errors deep in a half-built snapshot free everything built so far (the
 * ASan build turns any leak here into a failure). */
static void test_error_frees_partial_state(void **state)
{
	char *yaml = fmt("log:\n"
			 "  file: /tmp/x.log\n"
			 "admin:\n"
			 "  token_file: %s\n"
			 "pools:\n"
			 "  - name: shop\n"
			 "    health:\n"
			 "      path: /up\n"
			 "    backends:\n"
			 "      - name: shop1\n"
			 "        address: localhost:8081\n"
			 "      - name: shop2\n"
			 "        address: 127.0.0.1:8082\n"
			 "        weight: lots\n",
			 token);

	load_err_free(yaml, "storekeep.yaml:14: pools[0].backends[1].weight: "
			    "expected an integer from 1 to 1000, got \"lots\"");
}

/* A short or absent error buffer truncates or drops the message, never
 * overflows. */
static void test_error_buffer(void **state)
{
	struct config *c = NULL;
	char err[16];

	memset(err, 'x', sizeof err);
	assert_int_equal(config_load_string("workers: x\n", "storekeep.yaml",
					    &c, err, sizeof err),
			 -1);
	assert_string_equal(err, "storekeep.yaml:");
	assert_int_equal(config_load_string("workers: x\n", "storekeep.yaml",
					    &c, NULL, 0),
			 -1);
	assert_null(c);
}

/* ------------------------------------------------------------------ */
/* monitor.alerts                                                      */
/* ------------------------------------------------------------------ */

/* MIN_POOLS followed by "monitor:\n  alerts:\n" and the caller's text:
 * the caller's first line is line 8. */
#define ALERTS MIN_POOLS "monitor:\n  alerts:\n"

static void test_alerts_defaults(void **state)
{
	struct config *c = load_ok(MIN_POOLS);
	const struct cfg_alerts *a = &c->monitor.alerts;

	assert_int_equal(a->enabled, 1);
	assert_int_equal(a->interval_ms, 5000);
	assert_string_equal(a->state_path, "storekeep-alerts.json");
	assert_null(a->external_url);
	assert_int_equal(a->resolved_keep_ms, 15 * 60 * 1000);
	assert_int_equal(a->max_inflight, 4);
	assert_int_equal(a->ndefaults, 0);
	assert_int_equal(a->nrules, 0);
	assert_int_equal(a->nslos, 0);
	assert_int_equal(a->nnotifiers, 0);
	config_unref(c);
}

static void test_alerts_full(void **state)
{
	struct config *c = load_ok(
		ALERTS
		"    enabled: false\n"
		"    interval: 10s\n"
		"    state_path: /var/lib/storekeep/alerts.json\n"
		"    external_url: http://shop.example:9090\n"
		"    resolved_keep: 1h\n"
		"    max_inflight: 8\n"
		"    defaults:\n"
		"      HostCPUHigh: {enabled: false}\n"
		"      DiskSpaceLow: {threshold: 0.85, severity: critical, for: 10m}\n"
		"      BackendDown:\n"
		"        keep_firing_for: 2m\n"
		"        repeat: 4h\n"
		"        labels: {team: ops}\n"
		"    rules:\n"
		"      - name: CheckoutSlow\n"
		"        expr: 'lat{route=\"checkout\"}'\n"
		"        function: quantile\n"
		"        q: 0.99\n"
		"        window: 5m\n"
		"        group: max\n"
		"        by: [route, pool]\n"
		"        over: {expr: other, function: count_above, le: -2.5e-1}\n"
		"        op: \">=\"\n"
		"        threshold: -3\n"
		"        for: 5m\n"
		"        keep_firing_for: 10m\n"
		"        repeat: 4h\n"
		"        severity: critical\n"
		"        labels: {team: shop, tier: \"1\"}\n"
		"        summary: \"p99 {{value|duration}}\"\n"
		"        enabled: false\n"
		"    slos:\n"
		"      - name: checkout\n"
		"        route: checkout\n"
		"        objective: 0.999\n"
		"        latency: 2s\n"
		"        windows:\n"
		"          - {long: 1h, short: 5m, factor: 14.4, for: 2m, severity: critical}\n"
		"    notifiers:\n"
		"      - name: mail\n"
		"        type: email\n"
		"        url: smtp://mail.example:587\n"
		"        tls: all\n"
		"        username: sk\n"
		"        password_file: /etc/storekeep/smtp-password\n"
		"        from: sk@shop.example\n"
		"        to: [ops@shop.example, dev@shop.example]\n"
		"        send_resolved: false\n"
		"        min_severity: critical\n"
		"        backoff: 2s\n");
	const struct cfg_alerts *a = &c->monitor.alerts;
	const struct cfg_alert_rule *r;
	const struct cfg_notifier *n;

	assert_int_equal(a->enabled, 0);
	assert_int_equal(a->interval_ms, 10000);
	assert_string_equal(a->state_path, "/var/lib/storekeep/alerts.json");
	assert_string_equal(a->external_url, "http://shop.example:9090");
	assert_int_equal(a->resolved_keep_ms, 3600000);
	assert_int_equal(a->max_inflight, 8);

	assert_int_equal(a->ndefaults, 3);
	assert_string_equal(a->defaults[0].name, "HostCPUHigh");
	assert_int_equal(a->defaults[0].set, CFG_ALERT_SET_ENABLED);
	assert_int_equal(a->defaults[0].enabled, 0);
	assert_int_equal(a->defaults[0].line, 15);
	assert_string_equal(a->defaults[1].name, "DiskSpaceLow");
	assert_int_equal(a->defaults[1].set, CFG_ALERT_SET_THRESHOLD |
						     CFG_ALERT_SET_SEVERITY |
						     CFG_ALERT_SET_FOR);
	assert_true(a->defaults[1].threshold == 0.85);
	assert_string_equal(config_alert_severity_names[a->defaults[1].severity],
			    "critical");
	assert_int_equal(a->defaults[1].for_ms, 600000);
	assert_string_equal(a->defaults[2].name, "BackendDown");
	assert_int_equal(a->defaults[2].line, 17);
	assert_int_equal(a->defaults[2].set,
			 CFG_ALERT_SET_KEEP_FIRING_FOR | CFG_ALERT_SET_REPEAT |
				 CFG_ALERT_SET_LABELS);
	assert_int_equal(a->defaults[2].nlabels, 1);
	assert_string_equal(a->defaults[2].labels[0].name, "team");
	assert_string_equal(a->defaults[2].labels[0].value, "ops");

	assert_int_equal(a->nrules, 1);
	r = &a->rules[0];
	assert_string_equal(r->name, "CheckoutSlow");
	assert_int_equal(r->line, 22);
	assert_string_equal(r->expr.expr, "lat{route=\"checkout\"}");
	assert_int_equal(r->expr.expr_line, 23);
	assert_string_equal(config_alert_fn_names[r->expr.fn], "quantile");
	assert_true(r->expr.q == 0.99);
	assert_int_equal(r->expr.window_ms, 300000);
	assert_string_equal(config_alert_group_names[r->expr.group], "max");
	assert_int_equal(r->expr.nby, 2);
	assert_string_equal(r->expr.by[1].arg, "pool");
	assert_int_equal(r->plus.set, 0);
	assert_int_equal(r->over.set, 1);
	assert_string_equal(r->over.expr, "other");
	assert_string_equal(config_alert_fn_names[r->over.fn], "count_above");
	assert_true(r->over.le == -0.25);
	assert_int_equal(r->over.window_ms, 60000);
	assert_int_equal(r->over.expr_line, 29);
	assert_string_equal(config_alert_op_names[r->op], ">=");
	assert_true(r->threshold == -3);
	assert_int_equal(r->for_ms, 300000);
	assert_int_equal(r->keep_firing_for_ms, 600000);
	assert_int_equal(r->repeat_ms, 4 * 3600000);
	assert_string_equal(config_alert_severity_names[r->severity],
			    "critical");
	assert_int_equal(r->nlabels, 2);
	assert_string_equal(r->labels[1].name, "tier");
	assert_string_equal(r->labels[1].value, "1");
	assert_string_equal(r->summary, "p99 {{value|duration}}");
	assert_int_equal(r->summary_line, 37);
	assert_int_equal(r->enabled, 0);

	assert_int_equal(a->nslos, 1);
	assert_string_equal(a->slos[0].route, "checkout");
	assert_true(a->slos[0].objective == 0.999);
	assert_int_equal(a->slos[0].latency_ms, 2000);
	assert_int_equal(a->slos[0].nwindows, 1);
	assert_true(a->slos[0].windows[0].factor == 14.4);
	assert_int_equal(a->slos[0].windows[0].short_ms, 300000);

	assert_int_equal(a->nnotifiers, 1);
	n = &a->notifiers[0];
	assert_string_equal(config_notify_type_names[n->type], "email");
	assert_string_equal(config_notify_tls_names[n->tls], "all");
	assert_string_equal(n->password_file, "/etc/storekeep/smtp-password");
	assert_int_equal(n->password_file_line, 52);
	assert_int_equal(n->nto, 2);
	assert_string_equal(n->to[1].arg, "dev@shop.example");
	assert_int_equal(n->send_resolved, 0);
	assert_int_equal(n->backoff_ms, 2000);
	assert_int_equal(n->timeout_ms, 10000);
	assert_int_equal(n->queue, 100);
	config_unref(c);
}

static void test_alerts_errors(void **state)
{
	/* A bad enum, a missing threshold, a duplicate rule name. */
	load_err(ALERTS "    rules:\n"
			"      - name: A\n"
			"        expr: up\n"
			"        function: median\n"
			"        op: \">\"\n"
			"        threshold: 1\n",
		 "storekeep.yaml:11: monitor.alerts.rules[0].function: "
		 "expected one of last, avg, min, max, increase, rate, "
		 "quantile, predict_linear, time_to_zero, count_above, got "
		 "\"median\"");
	load_err(ALERTS "    rules:\n"
			"      - name: A\n"
			"        expr: up\n"
			"        op: \">\"\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].threshold: "
		 "required key is missing");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, op: \">\", threshold: 1}\n"
			"      - {name: B, expr: up, op: \">\", threshold: 1}\n"
			"      - {name: A, expr: up, op: \">\", threshold: 2}\n",
		 "storekeep.yaml:11: monitor.alerts.rules[2].name: duplicate "
		 "rule name \"A\" (first on line 9)");
	load_err(ALERTS "    severity: loud\n",
		 "storekeep.yaml:8: monitor.alerts.severity: unknown key "
		 "(expected one of: enabled, interval, state_path, "
		 "external_url, resolved_keep, max_inflight, defaults, rules, "
		 "slos, notifiers)");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, op: \">\", threshold: 1, "
			"severity: loud}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].severity: "
		 "expected one of info, warning, critical, got \"loud\"");
	/* Numbers: plain decimal, finite. */
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, op: \">\", threshold: 0x10}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].threshold: "
		 "expected a number such as 0.5 or 2, got \"0x10\"");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, op: \">\", threshold: 1e999}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].threshold: "
		 "expected a finite number, got \"1e999\"");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, function: quantile, q: 1.5, "
			"op: \">\", threshold: 1}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].q: expected a "
		 "number from 0 to 1, got \"1.5\"");
	/* Keys a function needs, and keys it does not use. */
	load_err(ALERTS "    rules:\n"
			"      - name: A\n"
			"        expr: up\n"
			"        function: quantile\n"
			"        op: \">\"\n"
			"        threshold: 1\n",
		 "storekeep.yaml:11: monitor.alerts.rules[0].function: "
		 "function quantile needs q");
	load_err(ALERTS "    rules:\n"
			"      - name: A\n"
			"        expr: up\n"
			"        op: \">\"\n"
			"        threshold: 1\n"
			"        over: {expr: x, le: 2}\n",
		 "storekeep.yaml:13: monitor.alerts.rules[0].over.le: only "
		 "used by function: count_above");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, by: [x], op: \">\", "
			"threshold: 1}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].by: by needs group "
		 "(sum, avg, min, max or count)");
	/* Label maps. */
	load_err(ALERTS "    rules:\n"
			"      - name: A\n"
			"        expr: up\n"
			"        op: \">\"\n"
			"        threshold: 1\n"
			"        labels:\n"
			"          team: a\n"
			"          team: b\n",
		 "storekeep.yaml:15: monitor.alerts.rules[0].labels.team: "
		 "duplicate key (first on line 14)");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, op: \">\", threshold: 1, "
			"labels: {severity: x}}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].labels.severity: "
		 "severity is set by the rule itself");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, op: \">\", threshold: 1, "
			"labels: {1team: x}}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].labels.1team: a "
		 "label name is letters, digits and _, not starting with a "
		 "digit");
	load_err(ALERTS "    rules:\n"
			"      - {name: A, expr: up, op: \">\", threshold: 1, "
			"labels: [team]}\n",
		 "storekeep.yaml:9: monitor.alerts.rules[0].labels: expected "
		 "a map, got a list");
	/* defaults: a map of maps keyed by rule name. */
	load_err(ALERTS "    defaults:\n"
			"      HostCPUHigh: {enabled: false}\n"
			"      HostCPUHigh: {for: 1m}\n",
		 "storekeep.yaml:10: monitor.alerts.defaults.HostCPUHigh: "
		 "duplicate key (first on line 9)");
	load_err(ALERTS "    defaults:\n"
			"      HostCPUHigh: {op: \"<\"}\n",
		 "storekeep.yaml:9: monitor.alerts.defaults.HostCPUHigh.op: "
		 "unknown key (expected one of: enabled, threshold, severity, "
		 "for, keep_firing_for, repeat, labels, summary)");
	load_err(ALERTS "    defaults:\n"
			"      HostCPUHigh: false\n",
		 "storekeep.yaml:9: monitor.alerts.defaults.HostCPUHigh: "
		 "expected a map, got \"false\"");
	/* SLOs. */
	load_err(ALERTS "    slos:\n"
			"      - {name: c, route: c, objective: 1}\n",
		 "storekeep.yaml:9: monitor.alerts.slos[0].objective: must be "
		 "between 0 and 1, exclusive (0.999 for 99.9%), got 1");
	load_err(ALERTS "    slos:\n"
			"      - name: c\n"
			"        route: c\n"
			"        objective: 0.99\n"
			"        windows:\n"
			"          - {long: 5m, short: 1h, factor: 2}\n",
		 "storekeep.yaml:13: monitor.alerts.slos[0].windows[0].short: "
		 "must not be longer than long (5m), got 1h");
	/* Notifiers: what each type needs, and keys of other types. */
	load_err(ALERTS "    notifiers:\n"
			"      - {name: n, type: webhook, url: \"http://x/\", "
			"tls: all}\n",
		 "storekeep.yaml:9: monitor.alerts.notifiers[0].tls: not used "
		 "by type: webhook");
	load_err(ALERTS "    notifiers:\n"
			"      - {name: n, type: webhook, url: \"ftp://x/\"}\n",
		 "storekeep.yaml:9: monitor.alerts.notifiers[0].url: a webhook "
		 "needs url: http://... or https://...");
	load_err(ALERTS "    notifiers:\n"
			"      - name: n\n"
			"        type: email\n"
			"        url: smtp://x\n"
			"        from: a@b\n",
		 "storekeep.yaml:10: monitor.alerts.notifiers[0].type: an "
		 "email notifier needs to (at least one address)");
	load_err(ALERTS "    notifiers:\n"
			"      - {name: n, type: command, command: [page]}\n",
		 "storekeep.yaml:9: monitor.alerts.notifiers[0].command: a "
		 "command notifier needs command, starting with the program's "
		 "absolute path");
	load_err(ALERTS "    notifiers:\n"
			"      - {name: n, type: command, command: [/bin/true]}\n"
			"      - {name: n, type: command, command: [/bin/true]}\n",
		 "storekeep.yaml:10: monitor.alerts.notifiers[1].name: "
		 "duplicate notifier name \"n\" (first on line 9)");
	load_err(ALERTS "    external_url: shop.example\n",
		 "storekeep.yaml:8: monitor.alerts.external_url: expected an "
		 "http:// or https:// URL");
}

/* docs/config.md is generated; a table change without `make docs` fails. */
static void test_docs_up_to_date(void **state)
{
	size_t reflen, doclen = 0;
	char *ref = reference(&reflen);
	char *doc = slurp(SK_SOURCE_DIR "/docs/config.md", &doclen);

	if (doc == NULL)
		fail_msg("cannot read %s: %s; run `make docs`",
			 SK_SOURCE_DIR "/docs/config.md", strerror(errno));
	if (reflen != doclen || memcmp(ref, doc, reflen) != 0)
		fail_msg("docs/config.md differs from config_write_reference() "
			 "output; run `make docs`");
	free(doc);
	free(ref);
}

/* The reference covers every section, and bounds come from the tables. */
static void test_reference_content(void **state)
{
	size_t len;
	char *ref = reference(&len);

	assert_non_null(strstr(ref, "\n## Top level\n"));
	assert_non_null(strstr(ref, "\n## `log`\n"));
	assert_non_null(strstr(ref, "\n## `admin`\n"));
	assert_non_null(strstr(ref, "\n## `limits`\n"));
	assert_non_null(strstr(ref, "\n## `timeouts`\n"));
	assert_non_null(strstr(ref, "\n## `pools[]`\n"));
	assert_non_null(strstr(ref, "\n## `pools[].health`\n"));
	assert_non_null(strstr(ref, "\n## `pools[].backends[]`\n"));
	assert_non_null(strstr(ref, "| `weight` | integer, 1..1000 | `1` | "
				    "yes |"));
	/* The proxy keeps the old header limits on a reload. */
	assert_non_null(strstr(ref, "| `header_bytes` | size, 1k..1m | `16k` "
				    "| no |"));
	assert_non_null(strstr(ref, "| `workers` | integer, 0..256 | `0` | "
				    "no |"));
	assert_non_null(strstr(ref, "| `token_file` | file path | required "
				    "| yes |"));
	assert_non_null(strstr(ref, "storekeep check -c FILE"));
	free(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_admin_defaults),
		cmocka_unit_test(test_reference_example_loads),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_int_error_example),
		cmocka_unit_test(test_int_bounds),
		cmocka_unit_test(test_type_mismatch),
		cmocka_unit_test(test_names_and_paths),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_required_keys),
		cmocka_unit_test(test_list_counts),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_unique_names),
		cmocka_unit_test(test_health_timeout),
		cmocka_unit_test(test_yaml_syntax),
		cmocka_unit_test(test_yaml_features_refused),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_token_file),
		cmocka_unit_test(test_admin_loopback),
		cmocka_unit_test(test_ref_unref),
		cmocka_unit_test(test_error_frees_partial_state),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_alerts_defaults),
		cmocka_unit_test(test_alerts_full),
		cmocka_unit_test(test_alerts_errors),
		cmocka_unit_test(test_docs_up_to_date),
		cmocka_unit_test(test_reference_content),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
