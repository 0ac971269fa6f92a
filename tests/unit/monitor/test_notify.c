/*
 * test_notify.c - monitor/notify.h against real receivers on loopback,
 * started by the test:
 *   - webhook_sink.py (python's http.server), which records every request
 *     and can fail, refuse or stall on purpose;
 *   - two SMTP sinks from Debian's python3-aiosmtpd, storing mail in
 *     maildirs: one plain, one that requires STARTTLS with a certificate
 *     made here by openssl;
 *   - a real Alertmanager (Debian's prometheus-alertmanager), whose v2
 *     API must list the alert storekeep posted;
 *   - commands (tee, sh, sleep) run by the command channel.
 * What is not installed is skipped with a message. Every wait has a
 * deadline; the receivers are killed at the end.
 *
 * The last tests wire the alert engine to a notifier: a rule fires
 * after its `for` and resolves, and the webhook gets both payloads in
 * that order.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "monitor/alert.h"
#include "monitor/notify.h"

/* A missing server or tool skips the test, except under CI, where
 * scripts/deps.sh has installed everything: there it fails. */
static void skip_or_fail(void)
{
	if (getenv("CI"))
		fail_msg("missing under CI: scripts/deps.sh installs it");
	skip();
}

#define PYTHON	     "/usr/bin/python3"
#define ALERTMANAGER "/usr/bin/prometheus-alertmanager"
#define OPENSSL	     "/usr/bin/openssl"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void nap(unsigned ms)
{
	struct timespec ts = {0, (long)ms * 1000000};

	nanosleep(&ts, NULL);
}

/* --- the receivers ------------------------------------------------------- */

struct env {
	char dir[64];
	pid_t hook_pid;
	int hook_port;
	char hook_log[128];
	pid_t smtp_pid;
	int smtp_port;
	char maildir[128];
	pid_t smtps_pid;
	int smtps_port;
	char maildir_tls[128];
	char cert[128];
	const char *tls_skip;
	pid_t am_pid;
	int am_port;
	const char *am_skip;
};

static struct env env;

/* Starts a receiver with its output in log. It gets SIGKILL when this
 * test process dies, so a crashed test leaves nothing running. */
static pid_t spawn(const char *const *argv, const char *log)
{
	pid_t parent = getpid(), pid = fork();

	if (pid != 0)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	{
		int in = open("/dev/null", O_RDONLY);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
		    dup2(out, 2) < 0)
			_exit(127);
	}
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static void stop_pid(pid_t *pid)
{
	uint64_t end;

	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	end = mono_ms() + 3000;
	while (waitpid(*pid, NULL, WNOHANG) == 0) {
		if (mono_ms() > end) {
			kill(*pid, SIGKILL);
			waitpid(*pid, NULL, 0);
			break;
		}
		nap(10);
	}
	*pid = 0;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* Waits for a server to accept connections; false at the deadline or
 * when the process died. */
static bool wait_port(pid_t pid, int port, unsigned ms)
{
	uint64_t end = mono_ms() + ms;

	while (mono_ms() < end) {
		if (port_open(port))
			return true;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return false;
		nap(20);
	}
	return false;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = calloc(1, (size_t)n + 1);
	if (fread(s, 1, (size_t)n, f) != (size_t)n) {
		free(s);
		s = NULL;
	}
	fclose(f);
	return s;
}

/* A blocking GET for the test's own checks. */
static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	FILE *f = ud;

	return fwrite(p, size, n, f);
}

static long http_get(const char *url, char **body)
{
	CURL *c = curl_easy_init();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	long code = 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	fclose(f);
	if (body)
		*body = buf;
	else
		free(buf);
	return code;
}

static void start_hook(void)
{
	char script[512], portfile[128], *s;
	const char *argv[] = {PYTHON, script, portfile, env.hook_log, NULL};
	char log[160];
	uint64_t end = mono_ms() + 10000;

	snprintf(script, sizeof(script),
		 "%s/tests/unit/monitor/webhook_sink.py", SK_SOURCE_DIR);
	snprintf(portfile, sizeof(portfile), "%s/hook.port", env.dir);
	snprintf(env.hook_log, sizeof(env.hook_log), "%s/hook.log", env.dir);
	snprintf(log, sizeof(log), "%s/hook.out", env.dir);
	env.hook_pid = spawn(argv, log);
	assert_true(env.hook_pid > 0);
	while ((s = slurp(portfile)) == NULL) {
		if (mono_ms() > end)
			fail_msg("webhook sink did not start (see %s)", log);
		nap(20);
	}
	env.hook_port = atoi(s);
	free(s);
	assert_true(wait_port(env.hook_pid, env.hook_port, 5000));
}

static pid_t start_smtp(int port, const char *maildir, const char *cert,
			const char *key)
{
	char listen[64], log[160];
	const char *argv[16];
	int n = 0;
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(log, sizeof(log), "%s/smtp-%d.out", env.dir, port);
	argv[n++] = PYTHON;
	argv[n++] = "-m";
	argv[n++] = "aiosmtpd";
	argv[n++] = "-n";
	argv[n++] = "-l";
	argv[n++] = listen;
	if (cert) {
		argv[n++] = "--tlscert";
		argv[n++] = cert;
		argv[n++] = "--tlskey";
		argv[n++] = key;
	}
	argv[n++] = "-c";
	argv[n++] = "aiosmtpd.handlers.Mailbox";
	argv[n++] = maildir;
	argv[n] = NULL;
	pid = spawn(argv, log);
	if (pid > 0 && !wait_port(pid, port, 10000)) {
		char *out = slurp(log);

		print_message("aiosmtpd did not start: %s\n", out ? out : "");
		free(out);
		stop_pid(&pid);
		return -1;
	}
	return pid;
}

static void start_alertmanager(void)
{
	char cfg[128], storage[128], cfgarg[160], storarg[160], listen[64],
		log[128], url[96];
	const char *argv[] = {ALERTMANAGER,
			      cfgarg,
			      storarg,
			      listen,
			      "--cluster.listen-address=",
			      "--log.level=warn",
			      NULL};
	FILE *f;
	uint64_t end;

	if (access(ALERTMANAGER, X_OK) != 0) {
		env.am_skip = "prometheus-alertmanager is not installed "
			      "(apt-get install prometheus-alertmanager)";
		return;
	}
	snprintf(cfg, sizeof(cfg), "%s/am.yml", env.dir);
	snprintf(storage, sizeof(storage), "%s/am-data", env.dir);
	mkdir(storage, 0700);
	f = fopen(cfg, "w");
	fputs("route:\n  receiver: blackhole\nreceivers:\n  - name: "
	      "blackhole\n",
	      f);
	fclose(f);
	env.am_port = free_port();
	snprintf(cfgarg, sizeof(cfgarg), "--config.file=%s", cfg);
	snprintf(storarg, sizeof(storarg), "--storage.path=%s", storage);
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d",
		 env.am_port);
	snprintf(log, sizeof(log), "%s/am.out", env.dir);
	env.am_pid = spawn(argv, log);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/-/ready", env.am_port);
	end = mono_ms() + 15000;
	while (env.am_pid > 0 && http_get(url, NULL) != 200) {
		if (mono_ms() > end ||
		    waitpid(env.am_pid, NULL, WNOHANG) == env.am_pid) {
			env.am_skip = "alertmanager did not become ready";
			env.am_pid = 0;
			return;
		}
		nap(50);
	}
}

static int group_setup(void **state)
{
	char key[128], cmd[600];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	notify_global_init();
	snprintf(env.dir, sizeof(env.dir), "/tmp/sk-notify-XXXXXX");
	assert_non_null(mkdtemp(env.dir));
	start_hook();

	snprintf(env.maildir, sizeof(env.maildir), "%s/mail", env.dir);
	env.smtp_port = free_port();
	env.smtp_pid = start_smtp(env.smtp_port, env.maildir, NULL, NULL);

	/* A self-signed certificate for 127.0.0.1, for STARTTLS. */
	snprintf(env.cert, sizeof(env.cert), "%s/cert.pem", env.dir);
	snprintf(key, sizeof(key), "%s/key.pem", env.dir);
	snprintf(env.maildir_tls, sizeof(env.maildir_tls), "%s/mail-tls",
		 env.dir);
	if (access(OPENSSL, X_OK) != 0) {
		env.tls_skip = "openssl is not installed";
	} else {
		snprintf(cmd, sizeof(cmd),
			 OPENSSL
			 " req -x509 -newkey rsa:2048 -nodes -days 1 "
			 "-subj /CN=127.0.0.1 -addext "
			 "subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
			 ">/dev/null 2>&1",
			 key, env.cert);
		if (system(cmd) != 0) {
			env.tls_skip = "openssl could not make a certificate";
		} else {
			env.smtps_port = free_port();
			env.smtps_pid = start_smtp(
				env.smtps_port, env.maildir_tls, env.cert, key);
			if (env.smtps_pid <= 0)
				env.tls_skip = "aiosmtpd with STARTTLS did not "
					       "start";
		}
	}
	start_alertmanager();
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	stop_pid(&env.hook_pid);
	stop_pid(&env.smtp_pid);
	stop_pid(&env.smtps_pid);
	stop_pid(&env.am_pid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", env.dir);
	(void)system(cmd);
	return 0;
}

/* Requests the sink got on path, oldest first (JSON objects). */
static json_t *hook_requests(const char *path)
{
	char *s = slurp(env.hook_log), *line, *save = NULL;
	json_t *out = json_array();

	for (line = s ? strtok_r(s, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *r = json_loads(line, 0, NULL);

		if (r && strcmp(json_string_value(json_object_get(r, "path")),
				path) == 0)
			json_array_append(out, r);
		json_decref(r);
	}
	free(s);
	return out;
}

static json_t *hook_body(const char *path, size_t i)
{
	json_t *reqs = hook_requests(path);
	json_t *b = json_loads(json_string_value(json_object_get(
				       json_array_get(reqs, i), "body")),
			       0, NULL);

	json_decref(reqs);
	return b;
}

static size_t hook_count(const char *path)
{
	json_t *reqs = hook_requests(path);
	size_t n = json_array_size(reqs);

	json_decref(reqs);
	return n;
}

/* --- the loop ------------------------------------------------------------ */

struct fx {
	uv_loop_t loop;
	uv_timer_t tick;
	struct notify *n;
	bool stopped;
};

static void tick_cb(uv_timer_t *t)
{
	(void)t;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_timer_init(&f->loop, &f->tick);
	/* Wakes the loop often, so run_until() checks its condition. */
	uv_timer_start(&f->tick, tick_cb, 5, 5);
	*state = f;
	return 0;
}

static void stopped_cb(void *ud)
{
	struct fx *f = ud;

	f->stopped = true;
}

static bool run_until(struct fx *f, bool (*pred)(struct fx *, void *), void *ud,
		      unsigned ms)
{
	uint64_t end = mono_ms() + ms;

	while (!pred(f, ud)) {
		if (mono_ms() > end)
			return false;
		uv_run(&f->loop, UV_RUN_ONCE);
	}
	return true;
}

static bool is_stopped(struct fx *f, void *ud)
{
	(void)ud;
	return f->stopped;
}

static bool all_done(struct fx *f, void *ud)
{
	(void)ud;
	return notify_pending(f->n) == 0;
}

static void stop_notify(struct fx *f)
{
	if (f->n == NULL)
		return;
	f->stopped = false;
	notify_stop(f->n, stopped_cb, f);
	f->n = NULL;
	assert_true(run_until(f, is_stopped, NULL, 5000));
}

static void tick_closed(uv_handle_t *h)
{
	(void)h;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	stop_notify(f);
	uv_close((uv_handle_t *)&f->tick, tick_closed);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	/* Every handle notify opened is closed again. */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static void start(struct fx *f, const struct notify_channel *ch, size_t n)
{
	struct notify_conf c = {.channels = ch, .nchannels = n};
	char err[256] = "";

	if (notify_new(&f->loop, &c, &f->n, err, sizeof(err)) != 0)
		fail_msg("notify_new: %s", err);
}

/* One alert in the engine's format. */
static json_t *alert(const char *status, const char *name, const char *sev,
		     const char *summary, const char *fp)
{
	return json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s}, s:f, "
			 "s:s, s:o, s:s, s:s}",
			 "status", status, "name", name, "severity", sev,
			 "labels", "alertname", name, "severity", sev, "pool",
			 "shop", "annotations", "summary", summary, "value",
			 0.0, "startsAt", "2026-11-28T12:00:00.000Z", "endsAt",
			 strcmp(status, "resolved") == 0
				 ? json_string("2026-11-28T12:05:00.000Z")
				 : json_null(),
			 "generatorURL", "http://127.0.0.1:9/api/v1/alerts",
			 "fingerprint", fp);
}

static void send1(struct fx *f, json_t *a)
{
	json_t *batch = json_array();

	json_array_append_new(batch, a);
	notify_send(f->n, batch);
	json_decref(batch);
}

static json_t *channel_status(struct fx *f, const char *name)
{
	json_t *all = notify_status_json(f->n), *c, *hit = NULL;
	size_t i;

	json_array_foreach (all, i, c)
		if (strcmp(json_string_value(json_object_get(c, "name")),
			   name) == 0)
			hit = json_incref(c);
	json_decref(all);
	assert_non_null(hit);
	return hit;
}

static long long stat_int(struct fx *f, const char *ch, const char *key)
{
	json_t *s = channel_status(f, ch);
	long long v = json_integer_value(json_object_get(s, key));

	json_decref(s);
	return v;
}

static char *stat_str(struct fx *f, const char *ch, const char *key)
{
	json_t *s = channel_status(f, ch);
	const char *v = json_string_value(json_object_get(s, key));
	char *r = strdup(v ? v : "");

	json_decref(s);
	return r;
}

static void url(char *out, size_t n, const char *path)
{
	snprintf(out, n, "http://127.0.0.1:%d%s", env.hook_port, path);
}

/* --- webhooks ------------------------------------------------------------ */

static void test_webhook_formats(void **state)
{
	struct fx *f = *state;
	char u_gen[96], u_slack[96], u_am[96], u_crit[96], u_nores[96];
	static const char *const hdrs[] = {"X-Token: s3cret"};
	struct notify_channel ch[] = {
		{.name = "generic",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_gen,
		 .headers = hdrs,
		 .nheaders = 1},
		{.name = "slack",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_slack,
		 .format = NOTIFY_FORMAT_SLACK},
		{.name = "am",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_am,
		 .format = NOTIFY_FORMAT_ALERTMANAGER},
		{.name = "crit",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_crit,
		 .min_severity = "critical"},
		{.name = "nores",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_nores,
		 .skip_resolved = true},
	};
	json_t *b, *a, *reqs;

	url(u_gen, sizeof(u_gen), "/generic");
	url(u_slack, sizeof(u_slack), "/slack");
	url(u_am, sizeof(u_am), "/am/");
	url(u_crit, sizeof(u_crit), "/crit");
	url(u_nores, sizeof(u_nores), "/nores");
	start(f, ch, sizeof(ch) / sizeof(ch[0]));
	send1(f, alert("firing", "BackendDown", "warning",
		       "backend a of pool shop is down", "00000000000000aa"));
	send1(f, alert("resolved", "BackendDown", "warning",
		       "backend a of pool shop is down", "00000000000000aa"));
	assert_true(run_until(f, all_done, NULL, 5000));

	/* generic: firing, then resolved, with our header. */
	reqs = hook_requests("/generic");
	assert_int_equal(json_array_size(reqs), 2);
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_array_get(reqs, 0), "headers"),
			"X-Token")),
		"s3cret");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_array_get(reqs, 0), "headers"),
			"Content-Type")),
		"application/json");
	json_decref(reqs);
	b = hook_body("/generic", 0);
	assert_string_equal(json_string_value(json_object_get(b, "status")),
			    "firing");
	assert_string_equal(json_string_value(json_object_get(b, "receiver")),
			    "generic");
	a = json_array_get(json_object_get(b, "alerts"), 0);
	assert_string_equal(json_string_value(json_object_get(a, "name")),
			    "BackendDown");
	json_decref(b);
	b = hook_body("/generic", 1);
	assert_string_equal(json_string_value(json_object_get(b, "status")),
			    "resolved");
	json_decref(b);

	/* slack */
	b = hook_body("/slack", 0);
	assert_string_equal(json_string_value(json_object_get(b, "text")),
			    "*[FIRING:1]* storekeep\n• [warning] BackendDown: "
			    "backend a of pool shop is down");
	json_decref(b);
	b = hook_body("/slack", 1);
	assert_non_null(strstr(json_string_value(json_object_get(b, "text")),
			       "*[RESOLVED:1]*"));
	json_decref(b);

	/* alertmanager, to our sink: the v2 path and shape. */
	assert_int_equal(hook_count("/am/api/v2/alerts"), 2);
	b = hook_body("/am/api/v2/alerts", 0);
	assert_true(json_is_array(b));
	a = json_array_get(b, 0);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(a, "labels"), "alertname")),
			    "BackendDown");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(a, "annotations"), "summary")),
		"backend a of pool shop is down");
	assert_string_equal(json_string_value(json_object_get(a, "startsAt")),
			    "2026-11-28T12:00:00.000Z");
	assert_true(json_is_string(json_object_get(a, "endsAt")));
	assert_string_equal(
		json_string_value(json_object_get(a, "generatorURL")),
		"http://127.0.0.1:9/api/v1/alerts");
	json_decref(b);
	b = hook_body("/am/api/v2/alerts", 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(b, 0), "endsAt")),
			    "2026-11-28T12:05:00.000Z");
	json_decref(b);

	/* Filters: a warning does not reach a critical-only channel; a
	 * channel without resolved notifications gets the firing only. */
	assert_int_equal(hook_count("/crit"), 0);
	assert_int_equal(hook_count("/nores"), 1);
	assert_int_equal(stat_int(f, "generic", "sent"), 2);
	assert_int_equal(stat_int(f, "generic", "attempts"), 2);
	assert_int_equal(stat_int(f, "crit", "sent"), 0);
	{
		json_t *s = channel_status(f, "generic");

		assert_true(json_is_true(json_object_get(s, "healthy")));
		assert_true(
			json_is_string(json_object_get(s, "last_success_at")));
		assert_true(json_is_null(json_object_get(s, "last_error")));
		json_decref(s);
	}
}

struct count_at_least {
	const char *path;
	size_t n;
};

static bool count_reached(struct fx *f, void *ud)
{
	struct count_at_least *c = ud;

	(void)f;
	return hook_count(c->path) >= c->n;
}

/* What fires is sent to Alertmanager again every resend interval, so
 * that it does not expire there; once resolved, it is not. */
static void test_alertmanager_resend(void **state)
{
	struct fx *f = *state;
	char u[96];
	struct notify_channel ch = {.name = "am",
				    .type = NOTIFY_WEBHOOK,
				    .url = u,
				    .resend_ms = 100,
				    .format = NOTIFY_FORMAT_ALERTMANAGER};
	struct count_at_least c = {"/resend/api/v2/alerts", 3};
	json_t *b, *s;
	size_t n;

	url(u, sizeof(u), "/resend");
	start(f, &ch, 1);
	send1(f,
	      alert("firing", "Resent", "info", "again", "00000000000000a1"));
	assert_true(run_until(f, count_reached, &c, 5000));
	b = hook_body(c.path, 2);
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_array_get(b, 0), "labels"),
			"alertname")),
		"Resent");
	json_decref(b);
	send1(f,
	      alert("resolved", "Resent", "info", "again", "00000000000000a1"));
	assert_true(run_until(f, all_done, NULL, 5000));
	n = hook_count(c.path);
	b = hook_body(c.path, n - 1);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(b, 0), "endsAt")),
			    "2026-11-28T12:05:00.000Z");
	json_decref(b);
	/* Three more resend periods: nothing more goes out. */
	c.n = n + 1;
	assert_false(run_until(f, count_reached, &c, 350));
	/* The status shows no path (it may hold a key). */
	s = channel_status(f, "am");
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/...", env.hook_port);
	assert_string_equal(json_string_value(json_object_get(s, "target")), u);
	json_decref(s);
}

static void test_webhook_retries_and_failures(void **state)
{
	struct fx *f = *state;
	char u_retry[96], u_reject[96], u_slow[96], u_refused[96];
	struct notify_channel ch[] = {
		{.name = "retry",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_retry,
		 .backoff_ms = 50},
		{.name = "reject",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_reject,
		 .backoff_ms = 50},
		{.name = "slow",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_slow,
		 .timeout_ms = 300,
		 .max_attempts = 2,
		 .backoff_ms = 50},
		{.name = "refused",
		 .type = NOTIFY_WEBHOOK,
		 .url = u_refused,
		 .max_attempts = 3,
		 .backoff_ms = 50},
	};
	uint64_t t0;
	char *e;

	url(u_retry, sizeof(u_retry), "/fail/2/x");
	url(u_reject, sizeof(u_reject), "/reject");
	url(u_slow, sizeof(u_slow), "/slow");
	snprintf(u_refused, sizeof(u_refused), "http://127.0.0.1:%d/",
		 free_port());
	start(f, ch, sizeof(ch) / sizeof(ch[0]));
	t0 = mono_ms();
	send1(f, alert("firing", "HighErrorRate", "critical", "5xx at 3%",
		       "00000000000000bb"));
	/* notify_send() only queues. */
	assert_true(mono_ms() - t0 < 100);
	assert_true(notify_pending(f->n) == 4);
	assert_true(run_until(f, all_done, NULL, 10000));
	/* The stalled receiver (3 s) cost two 300 ms timeouts, and held
	 * nobody else up. */
	assert_true(mono_ms() - t0 < 2500);

	/* 500, 500, then 200 */
	assert_int_equal(hook_count("/fail/2/x"), 3);
	assert_int_equal(stat_int(f, "retry", "sent"), 1);
	assert_int_equal(stat_int(f, "retry", "attempts"), 3);
	assert_int_equal(stat_int(f, "retry", "attempt_failures"), 2);
	assert_int_equal(stat_int(f, "retry", "failed"), 0);
	e = stat_str(f, "retry", "last_error");
	assert_string_equal(e, "HTTP 500: try again later");
	free(e);

	/* 400 is final: one attempt. */
	assert_int_equal(stat_int(f, "reject", "attempts"), 1);
	assert_int_equal(stat_int(f, "reject", "failed"), 1);
	e = stat_str(f, "reject", "last_error");
	assert_string_equal(e, "HTTP 400: no such hook");
	free(e);

	assert_int_equal(stat_int(f, "slow", "attempts"), 2);
	assert_int_equal(stat_int(f, "slow", "failed"), 1);
	e = stat_str(f, "slow", "last_error");
	assert_non_null(strstr(e, "timed out"));
	free(e);

	assert_int_equal(stat_int(f, "refused", "attempts"), 3);
	assert_int_equal(stat_int(f, "refused", "failed"), 1);
	{
		json_t *s = channel_status(f, "refused");

		assert_true(json_is_false(json_object_get(s, "healthy")));
		assert_true(
			json_is_string(json_object_get(s, "last_error_at")));
		json_decref(s);
	}
}

static void test_queue_bound(void **state)
{
	struct fx *f = *state;
	char u[96];
	struct notify_channel ch = {.name = "full",
				    .type = NOTIFY_WEBHOOK,
				    .url = u,
				    .queue_max = 2,
				    .backoff_ms = 60000};

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", free_port());
	start(f, &ch, 1);
	for (int i = 0; i < 5; i++) {
		char fp[17];

		snprintf(fp, sizeof(fp), "%016d", i);
		send1(f, alert("firing", "Q", "info", "queued", fp));
	}
	/* The queue holds 2: the delivery an attempt works on and the
	 * newest; the ones between were pushed out. */
	assert_int_equal(notify_pending(f->n), 2);
	assert_int_equal(stat_int(f, "full", "dropped"), 3);
}

static void test_channel_check(void **state)
{
	static const char *const to[] = {"not an address"};
	static const char *const rel[] = {"tee"};
	struct notify_channel bad[] = {
		{.name = "a", .type = NOTIFY_WEBHOOK, .url = "ftp://x/"},
		{.name = "b",
		 .type = NOTIFY_EMAIL,
		 .url = "smtp://x",
		 .from = "a@b"},
		{.name = "c",
		 .type = NOTIFY_EMAIL,
		 .url = "smtp://x",
		 .from = "a@b",
		 .to = to,
		 .nto = 1},
		{.name = "d", .type = NOTIFY_COMMAND, .argv = rel, .nargv = 1},
		{.name = "e",
		 .type = NOTIFY_WEBHOOK,
		 .url = "http://x/",
		 .min_severity = "loud"},
		{.name = "f\nx", .type = NOTIFY_WEBHOOK, .url = "http://x/"},
	};
	struct notify_channel twice[2] = {
		{.name = "t", .type = NOTIFY_WEBHOOK, .url = "http://x/"},
		{.name = "t", .type = NOTIFY_WEBHOOK, .url = "http://y/"},
	};
	struct notify_conf c = {.channels = twice, .nchannels = 2};
	struct notify *n = NULL;
	char err[256];
	uv_loop_t loop;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
			notify_channel_check(&bad[i], err, sizeof(err)),
			-EINVAL);
	uv_loop_init(&loop);
	assert_int_equal(notify_new(&loop, &c, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "twice"));
	assert_null(n);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_reload(void **state)
{
	struct fx *f = *state;
	char ua[96], ub[96], uc[96];
	struct notify_channel one = {
		.name = "a", .type = NOTIFY_WEBHOOK, .url = ua};
	struct notify_channel two[] = {
		{.name = "a", .type = NOTIFY_WEBHOOK, .url = ub},
		{.name = "c", .type = NOTIFY_WEBHOOK, .url = uc},
	};
	struct notify_conf c = {.channels = two, .nchannels = 2};
	char err[200];
	json_t *st;

	url(ua, sizeof(ua), "/reload/a");
	url(ub, sizeof(ub), "/reload/b");
	url(uc, sizeof(uc), "/reload/c");
	start(f, &one, 1);
	send1(f, alert("firing", "R", "info", "r", "00000000000000cc"));
	assert_true(run_until(f, all_done, NULL, 5000));
	assert_int_equal(notify_reload(f->n, &c, err, sizeof(err)), 0);
	send1(f, alert("firing", "R", "info", "r", "00000000000000cc"));
	assert_true(run_until(f, all_done, NULL, 5000));
	assert_int_equal(hook_count("/reload/a"), 1);
	assert_int_equal(hook_count("/reload/b"), 1);
	assert_int_equal(hook_count("/reload/c"), 1);
	assert_int_equal(stat_int(f, "a", "sent"), 2); /* counters kept */
	st = notify_status_json(f->n);
	assert_int_equal(json_array_size(st), 2);
	json_decref(st);
}

/* --- Alertmanager -------------------------------------------------------- */

struct am_wait {
	const char *name;
	bool want;
};

/* Whether Alertmanager lists an active alert named w->name. */
static bool am_lists(const char *name)
{
	char u[128], *body = NULL;
	json_t *arr, *a;
	size_t i;
	bool found = false;

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/api/v2/alerts",
		 env.am_port);
	if (http_get(u, &body) != 200) {
		free(body);
		return false;
	}
	arr = json_loads(body, 0, NULL);
	json_array_foreach (arr, i, a) {
		const char *n = json_string_value(json_object_get(
			json_object_get(a, "labels"), "alertname"));
		const char *st = json_string_value(
			json_object_get(json_object_get(a, "status"), "state"));

		if (n && strcmp(n, name) == 0 && st &&
		    strcmp(st, "active") == 0)
			found = true;
	}
	json_decref(arr);
	free(body);
	return found;
}

static bool am_is(struct fx *f, void *ud)
{
	struct am_wait *w = ud;

	(void)f;
	return am_lists(w->name) == w->want;
}

static void test_alertmanager(void **state)
{
	struct fx *f = *state;
	char u[96];
	struct notify_channel ch = {.name = "alertmanager",
				    .type = NOTIFY_WEBHOOK,
				    .url = u,
				    .format = NOTIFY_FORMAT_ALERTMANAGER};
	struct am_wait w = {"StorekeepAMTest", true};

	if (env.am_skip) {
		print_message("skipped: %s\n", env.am_skip);
		skip_or_fail();
	}
	snprintf(u, sizeof(u), "http://127.0.0.1:%d", env.am_port);
	start(f, &ch, 1);
	send1(f, alert("firing", "StorekeepAMTest", "critical", "via storekeep",
		       "00000000000000dd"));
	assert_true(run_until(f, all_done, NULL, 5000));
	assert_int_equal(stat_int(f, "alertmanager", "sent"), 1);
	assert_true(run_until(f, am_is, &w, 5000));
	/* Resolved: Alertmanager stops listing it as active. */
	send1(f, alert("resolved", "StorekeepAMTest", "critical",
		       "via storekeep", "00000000000000dd"));
	assert_true(run_until(f, all_done, NULL, 5000));
	assert_int_equal(stat_int(f, "alertmanager", "sent"), 2);
	w.want = false;
	assert_true(run_until(f, am_is, &w, 5000));
}

/* --- email --------------------------------------------------------------- */

/* The mail files in maildir/new, concatenated. */
static char *mails(const char *maildir)
{
	char dir[256], p[512];
	DIR *d;
	struct dirent *de;
	char *all = strdup("");

	snprintf(dir, sizeof(dir), "%s/new", maildir);
	d = opendir(dir);
	while (d && (de = readdir(d)) != NULL) {
		char *s, *n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		s = slurp(p);
		if (s == NULL)
			continue;
		n = malloc(strlen(all) + strlen(s) + 2);
		sprintf(n, "%s%s\n", all, s);
		free(all);
		free(s);
		all = n;
	}
	if (d)
		closedir(d);
	return all;
}

static void test_email(void **state)
{
	struct fx *f = *state;
	char u[96];
	static const char *const to[] = {"ops@shop.test", "admin@shop.test"};
	struct notify_channel ch[] = {
		{.name = "mail",
		 .type = NOTIFY_EMAIL,
		 .url = u,
		 .from = "storekeep@shop.test",
		 .to = to,
		 .nto = 2},
		{.name = "mail-tls-required",
		 .type = NOTIFY_EMAIL,
		 .url = u,
		 .tls = NOTIFY_TLS_ALL,
		 .from = "storekeep@shop.test",
		 .to = to,
		 .nto = 1},
	};
	char *m;

	if (env.smtp_pid <= 0) {
		print_message("skipped: python3-aiosmtpd is not installed "
			      "(apt-get install python3-aiosmtpd)\n");
		skip_or_fail();
	}
	snprintf(u, sizeof(u), "smtp://127.0.0.1:%d", env.smtp_port);
	start(f, ch, 2);
	send1(f, alert("firing", "DiskSpaceLow", "warning",
		       "filesystem / is 95% full", "00000000000000ee"));
	send1(f, alert("firing", "HostMemoryLow", "warning",
		       "Größe: only 4% of memory is available",
		       "00000000000000ef"));
	send1(f, alert("firing", "Inject", "warning", "disk\r\nBcc: evil@x",
		       "00000000000000f3"));
	assert_true(run_until(f, all_done, NULL, 10000));
	assert_int_equal(stat_int(f, "mail", "sent"), 3);
	m = mails(env.maildir);
	assert_non_null(strstr(m, "Subject: [storekeep] FIRING: DiskSpaceLow - "
				  "filesystem / is 95% full"));
	assert_non_null(strstr(m, "From: storekeep@shop.test"));
	assert_non_null(strstr(m, "To: ops@shop.test, admin@shop.test"));
	assert_non_null(strstr(m, "Date: "));
	assert_non_null(strstr(m, "[warning] DiskSpaceLow: filesystem / is 95% "
				  "full"));
	assert_non_null(strstr(m, "labels: alertname=DiskSpaceLow"));
	/* A non-ASCII subject is an encoded word, and a line break in a
	 * summary cannot start a header of its own. */
	assert_non_null(strstr(m, "Subject: =?UTF-8?B?"));
	assert_non_null(strstr(m, "Subject: [storekeep] FIRING: Inject - disk  "
				  "Bcc: evil@x"));
	free(m);

	/* TLS required but the server offers no STARTTLS: each mail is
	 * refused at once, not retried. */
	assert_int_equal(stat_int(f, "mail-tls-required", "attempts"), 3);
	assert_int_equal(stat_int(f, "mail-tls-required", "failed"), 3);
	assert_int_equal(stat_int(f, "mail-tls-required", "sent"), 0);
}

static void test_email_starttls(void **state)
{
	struct fx *f = *state;
	char u[96];
	static const char *const to[] = {"ops@shop.test"};
	struct notify_channel ch = {.name = "mail-tls",
				    .type = NOTIFY_EMAIL,
				    .url = u,
				    .tls = NOTIFY_TLS_ALL,
				    .ca_file = env.cert,
				    .from = "storekeep@shop.test",
				    .to = to,
				    .nto = 1,
				    .subject_prefix = "[shop]"};
	char *m;

	if (env.smtp_pid <= 0 || env.tls_skip) {
		print_message("skipped: %s\n",
			      env.tls_skip
				      ? env.tls_skip
				      : "python3-aiosmtpd is not installed");
		skip_or_fail();
	}
	snprintf(u, sizeof(u), "smtp://127.0.0.1:%d", env.smtps_port);
	start(f, &ch, 1);
	send1(f,
	      alert("resolved", "ProbeCritical", "critical",
		    "probe db (postgresql) is critical", "00000000000000f0"));
	assert_true(run_until(f, all_done, NULL, 10000));
	assert_int_equal(stat_int(f, "mail-tls", "sent"), 1);
	m = mails(env.maildir_tls);
	assert_non_null(strstr(m, "Subject: [shop] RESOLVED: ProbeCritical - "
				  "probe db (postgresql) is critical"));
	assert_non_null(strstr(m, "ended:  2026-11-28T12:05:00.000Z"));
	free(m);
}

/* --- commands ------------------------------------------------------------ */

struct pid_gone {
	pid_t pid;
};

static bool gone(struct fx *f, void *ud)
{
	struct pid_gone *g = ud;

	(void)f;
	return kill(g->pid, 0) < 0 && errno == ESRCH;
}

static void test_command(void **state)
{
	struct fx *f = *state;
	char out[128], pidfile[128], script[300];
	const char *tee[] = {"/usr/bin/tee", out};
	const char *boom[] = {"/bin/sh", "-c", "echo boom >&2; exit 3"};
	const char *hang[] = {"/bin/sh", "-c", script};
	const char *none[] = {"/nonexistent/notifier"};
	const char *deaf[] = {"/bin/true"};
	struct notify_channel ch[] = {
		{.name = "tee",
		 .type = NOTIFY_COMMAND,
		 .argv = tee,
		 .nargv = 2},
		{.name = "boom",
		 .type = NOTIFY_COMMAND,
		 .argv = boom,
		 .nargv = 3,
		 .max_attempts = 2,
		 .backoff_ms = 20},
		{.name = "hang",
		 .type = NOTIFY_COMMAND,
		 .argv = hang,
		 .nargv = 3,
		 .max_attempts = 1,
		 .timeout_ms = 300},
		{.name = "none",
		 .type = NOTIFY_COMMAND,
		 .argv = none,
		 .nargv = 1},
		{.name = "deaf",
		 .type = NOTIFY_COMMAND,
		 .argv = deaf,
		 .nargv = 1},
	};
	struct pid_gone g;
	json_t *body;
	char *s, *e;

	snprintf(out, sizeof(out), "%s/cmd.json", env.dir);
	snprintf(pidfile, sizeof(pidfile), "%s/hang.pid", env.dir);
	snprintf(script, sizeof(script), "echo $$ > %s; exec /bin/sleep 30",
		 pidfile);
	start(f, ch, sizeof(ch) / sizeof(ch[0]));
	send1(f, alert("firing", "CmdTest", "critical", "run the command",
		       "00000000000000f1"));
	assert_true(run_until(f, all_done, NULL, 10000));

	/* tee got the generic body on stdin. */
	s = slurp(out);
	assert_non_null(s);
	body = json_loads(s, 0, NULL);
	assert_non_null(body);
	assert_string_equal(json_string_value(json_object_get(body, "status")),
			    "firing");
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(body, "alerts"), 0),
			"name")),
		"CmdTest");
	json_decref(body);
	free(s);
	assert_int_equal(stat_int(f, "tee", "sent"), 1);
	assert_int_equal(stat_int(f, "deaf", "sent"), 1);

	assert_int_equal(stat_int(f, "boom", "attempts"), 2);
	assert_int_equal(stat_int(f, "boom", "failed"), 1);
	e = stat_str(f, "boom", "last_error");
	assert_string_equal(e, "exit status 3: boom");
	free(e);

	e = stat_str(f, "hang", "last_error");
	assert_string_equal(e, "timed out after 300 ms, killed");
	free(e);
	/* The hung program was killed, not left behind. */
	s = slurp(pidfile);
	assert_non_null(s);
	g.pid = atoi(s);
	free(s);
	assert_true(g.pid > 0);
	assert_true(run_until(f, gone, &g, 3000));

	assert_int_equal(stat_int(f, "none", "attempts"), 1);
	e = stat_str(f, "none", "last_error");
	assert_non_null(strstr(e, "cannot run /nonexistent/notifier"));
	free(e);
}

static bool request_seen(struct fx *f, void *ud)
{
	(void)f;
	return hook_count(ud) > 0;
}

static void test_stop_in_flight(void **state)
{
	struct fx *f = *state;
	char u[96];
	const char *sleeper[] = {"/bin/sleep", "30"};
	struct notify_channel ch[] = {
		{.name = "slow",
		 .type = NOTIFY_WEBHOOK,
		 .url = u,
		 .timeout_ms = 10000},
		{.name = "sleeper",
		 .type = NOTIFY_COMMAND,
		 .argv = sleeper,
		 .nargv = 2,
		 .timeout_ms = 10000},
	};
	uint64_t t0;

	url(u, sizeof(u), "/slow");
	start(f, ch, 2);
	send1(f, alert("firing", "Stop", "info", "stop", "00000000000000f2"));
	assert_true(run_until(f, request_seen, "/slow", 5000));
	t0 = mono_ms();
	stop_notify(f); /* the teardown checks that the loop is empty */
	assert_true(mono_ms() - t0 < 1000);
}

/* --- the engine and a notifier together --------------------------------- */

static void test_rule_to_webhook(void **state)
{
	struct fx *f = *state;
	char u[96];
	struct notify_channel ch = {
		.name = "hook", .type = NOTIFY_WEBHOOK, .url = u};
	struct alert_rule r = {
		.name = "QueueBacklog",
		.expr = {.metric = "storekeep_queue_length",
			 .fn = ALERT_FN_MAX,
			 .window_ms = 30000},
		.op = ALERT_OP_GT,
		.threshold = 100,
		.for_ms = 30000,
		.severity = ALERT_SEV_WARNING,
		.summary = "{{pool}} queue at {{value}}",
	};
	struct alert_mem *mem = alert_mem_new();
	struct alert_source src = alert_mem_source(mem);
	struct alert_engine *e = NULL;
	const struct metrics_label lab[] = {{"pool", "shop"}};
	const uint64_t t0 = UINT64_C(1800000000000);
	struct alert_engine_conf c = {.rules = &r, .nrules = 1};
	char err[200];
	json_t *b, *root, *nf;

	url(u, sizeof(u), "/rule");
	start(f, &ch, 1);
	c.notify = f->n;
	assert_int_equal(alert_engine_new(&c, &src, &e, err, sizeof(err)), 0);
	/* 5 s evaluations on an injected clock; the notifier runs on the
	 * real loop in between. */
	for (uint64_t t = t0; t <= t0 + 60000; t += 5000) {
		alert_mem_add(mem, "storekeep_queue_length", lab, 1, t,
			      t >= t0 + 10000 ? 250 : 3);
		alert_engine_eval(e, t);
		uv_run(&f->loop, UV_RUN_NOWAIT);
		/* pending from 10 s, firing at 40 s, and not before */
		if (t < t0 + 40000)
			assert_int_equal(hook_count("/rule"), 0);
	}
	assert_true(run_until(f, request_seen, "/rule", 5000));
	for (uint64_t t = t0 + 65000; t <= t0 + 100000; t += 5000) {
		alert_mem_add(mem, "storekeep_queue_length", lab, 1, t, 1);
		alert_engine_eval(e, t);
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
	assert_true(run_until(f, all_done, NULL, 5000));
	assert_int_equal(hook_count("/rule"), 2);
	b = hook_body("/rule", 0);
	assert_string_equal(json_string_value(json_object_get(b, "status")),
			    "firing");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(
				json_array_get(json_object_get(b, "alerts"), 0),
				"annotations"),
			"summary")),
		"shop queue at 250");
	json_decref(b);
	b = hook_body("/rule", 1);
	assert_string_equal(json_string_value(json_object_get(b, "status")),
			    "resolved");
	json_decref(b);
	/* The channel's health shows in the engine's JSON. */
	root = alert_engine_json(e);
	nf = json_array_get(json_object_get(root, "notifiers"), 0);
	assert_string_equal(json_string_value(json_object_get(nf, "name")),
			    "hook");
	assert_int_equal(json_integer_value(json_object_get(nf, "sent")), 2);
	json_decref(root);
	alert_engine_free(e);
	alert_mem_free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_channel_check),
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_webhook_formats),
		T(test_alertmanager_resend),
		T(test_webhook_retries_and_failures),
		T(test_queue_bound),
		T(test_reload),
		T(test_alertmanager),
		T(test_email),
		T(test_email_starttls),
		T(test_command),
		T(test_stop_in_flight),
		T(test_rule_to_webhook),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
