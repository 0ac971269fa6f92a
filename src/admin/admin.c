/*
 * admin.c - admin API, Prometheus exposition and the token check.
 *
 * Everything here runs on the control loop and only reads: counters are
 * summed from the workers with relaxed loads, so a scrape never takes a
 * lock on the request path. The token is compared in constant time.
 */
#include "admin/admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/server.h"

#ifndef SK_VERSION
#define SK_VERSION "dev"
#endif

struct admin {
	struct http_server *srv;
	struct proxy *proxy;
	char *token;
	size_t token_len;
	uint64_t started_wall_ms;
	uint64_t started_mono_ms;
	admin_status_hook hook;
	void *hook_ud;
};

int admin_read_token(const char *path, char **token, char *err, size_t errlen)
{
	struct stat st;
	char buf[512];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "admin token file %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "admin token file %s: not a regular file",
			 path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "admin token file %s is accessible by others (mode %04o); "
			 "run chmod 600 %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -EPERM;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "admin token file %s: %s", path,
			 strerror(errno));
		return -EIO;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] <= 0x20 || buf[i] == 0x7f) {
			snprintf(err, errlen,
				 "admin token file %s: the token must be one line of "
				 "printable characters",
				 path);
			return -EINVAL;
		}
	}
	if (n < 16) {
		snprintf(err, errlen,
			 "admin token file %s: the token is shorter than 16 characters",
			 path);
		return -EINVAL;
	}
	*token = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *token ? 0 : -ENOMEM;
}

/* Constant-time: the time taken does not depend on where they differ. */
static int token_ok(const struct admin *a, const char *hdr)
{
	const char *t;
	size_t n;
	unsigned char diff = 0;

	if (hdr == NULL || strncasecmp(hdr, "Bearer ", 7) != 0)
		return 0;
	t = hdr + 7;
	n = strlen(t);
	diff = (unsigned char)(n != a->token_len);
	for (size_t i = 0; i < a->token_len; i++)
		diff |= (unsigned char)(a->token[i] ^ (i < n ? t[i] : 0));
	return diff == 0;
}

/* Prometheus label values escape backslash, double quote and newline. */
static void label_value(struct buf *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_appends(o, "\\\\");
		else if (*s == '"')
			buf_appends(o, "\\\"");
		else if (*s == '\n')
			buf_appends(o, "\\n");
		else
			buf_appendc(o, *s);
	}
}

static void metric_head(struct buf *o, const char *name, const char *type,
			const char *help)
{
	buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends {pool="..",backend=".."[,extra]} */
static void backend_labels(struct buf *o, const char *pool, const char *be,
			   const char *extra)
{
	buf_appends(o, "{pool=\"");
	label_value(o, pool);
	buf_appends(o, "\",backend=\"");
	label_value(o, be);
	buf_appends(o, "\"");
	if (extra) {
		buf_appendc(o, ',');
		buf_appends(o, extra);
	}
	buf_appendc(o, '}');
}

static void write_metrics(struct admin *a, struct buf *o)
{
	struct proxy_stats st;
	static const char *const classes[6] = {"other", "1xx", "2xx",
					       "3xx",	"4xx", "5xx"};
	struct proxy_backend_info bi;
	size_t npools = proxy_pool_count(a->proxy);

	proxy_stats_read(a->proxy, &st);
	metric_head(o, "storekeep_build_info", "gauge",
		    "Version of the running storekeep.");
	buf_printf(o, "storekeep_build_info{version=\"%s\"} 1\n", SK_VERSION);
	metric_head(o, "storekeep_start_time_seconds", "gauge",
		    "Unix time at which storekeep started.");
	buf_printf(o, "storekeep_start_time_seconds %llu\n",
		   (unsigned long long)(a->started_wall_ms / 1000));
	metric_head(o, "storekeep_http_requests_total", "counter",
		    "Requests received from clients (complete heads).");
	buf_printf(o, "storekeep_http_requests_total %llu\n",
		   (unsigned long long)st.requests);
	metric_head(o, "storekeep_http_responses_total", "counter",
		    "Responses sent to clients, by status class.");
	for (int k = 1; k <= 5; k++)
		buf_printf(o, "storekeep_http_responses_total{class=\"%s\"} %llu\n",
			   classes[k], (unsigned long long)st.responses[k]);
	metric_head(o, "storekeep_http_requests_in_flight", "gauge",
		    "Requests being served right now.");
	buf_printf(o, "storekeep_http_requests_in_flight %lld\n",
		   (long long)st.in_flight);
	metric_head(o, "storekeep_client_connections", "gauge",
		    "Client connections open.");
	buf_printf(o, "storekeep_client_connections %lld\n",
		   (long long)st.connections);
	metric_head(o, "storekeep_client_connections_accepted_total", "counter",
		    "Client connections accepted.");
	buf_printf(o, "storekeep_client_connections_accepted_total %llu\n",
		   (unsigned long long)st.accepted);

	metric_head(o, "storekeep_backend_up", "gauge",
		    "1 when the backend is in service (health checks pass), else 0.");
	for (size_t pl = 0; pl < npools; pl++) {
		for (size_t i = 0; i < proxy_backend_count(a->proxy, pl); i++) {
			proxy_backend_info(a->proxy, pl, i, &bi);
			buf_appends(o, "storekeep_backend_up");
			backend_labels(o, proxy_pool_name(a->proxy, pl), bi.name, NULL);
			buf_printf(o, " %d\n", bi.state == PROXY_BACKEND_UP);
		}
	}
	metric_head(o, "storekeep_backend_requests_total", "counter",
		    "Requests sent to the backend (each attempt counts).");
	for (size_t pl = 0; pl < npools; pl++) {
		for (size_t i = 0; i < proxy_backend_count(a->proxy, pl); i++) {
			proxy_backend_info(a->proxy, pl, i, &bi);
			buf_appends(o, "storekeep_backend_requests_total");
			backend_labels(o, proxy_pool_name(a->proxy, pl), bi.name, NULL);
			buf_printf(o, " %llu\n", (unsigned long long)bi.requests);
		}
	}
	metric_head(o, "storekeep_backend_failures_total", "counter",
		    "Connect failures, resets, timeouts and bad responses from the backend.");
	for (size_t pl = 0; pl < npools; pl++) {
		for (size_t i = 0; i < proxy_backend_count(a->proxy, pl); i++) {
			proxy_backend_info(a->proxy, pl, i, &bi);
			buf_appends(o, "storekeep_backend_failures_total");
			backend_labels(o, proxy_pool_name(a->proxy, pl), bi.name, NULL);
			buf_printf(o, " %llu\n", (unsigned long long)bi.failures);
		}
	}
	metric_head(o, "storekeep_backend_requests_in_flight", "gauge",
		    "Requests in flight on the backend.");
	for (size_t pl = 0; pl < npools; pl++) {
		for (size_t i = 0; i < proxy_backend_count(a->proxy, pl); i++) {
			proxy_backend_info(a->proxy, pl, i, &bi);
			buf_appends(o, "storekeep_backend_requests_in_flight");
			backend_labels(o, proxy_pool_name(a->proxy, pl), bi.name, NULL);
			buf_printf(o, " %lld\n", (long long)bi.active);
		}
	}
	metric_head(o, "storekeep_health_checks_total", "counter",
		    "Active health checks run, by result.");
	for (size_t pl = 0; pl < npools; pl++) {
		for (size_t i = 0; i < proxy_backend_count(a->proxy, pl); i++) {
			proxy_backend_info(a->proxy, pl, i, &bi);
			buf_appends(o, "storekeep_health_checks_total");
			backend_labels(o, proxy_pool_name(a->proxy, pl), bi.name,
				       "result=\"ok\"");
			buf_printf(o, " %llu\n",
				   (unsigned long long)bi.checks_ok);
			buf_appends(o, "storekeep_health_checks_total");
			backend_labels(o, proxy_pool_name(a->proxy, pl), bi.name,
				       "result=\"fail\"");
			buf_printf(o, " %llu\n",
				   (unsigned long long)bi.checks_failed);
		}
	}
}

static json_t *status_json(struct admin *a)
{
	struct proxy_stats st;
	struct proxy_backend_info bi;
	json_t *root, *pools;
	char ts[32];

	proxy_stats_read(a->proxy, &st);
	clock_fmt_iso8601(ts, a->started_wall_ms);
	root = json_object();
	json_object_set_new(root, "version", json_string(SK_VERSION));
	json_object_set_new(root, "pid", json_integer(getpid()));
	json_object_set_new(root, "started", json_string(ts));
	json_object_set_new(root, "uptime_seconds",
			    json_integer((json_int_t)((clock_mono_ms() -
						       a->started_mono_ms) / 1000)));
	json_object_set_new(root, "requests", json_integer((json_int_t)st.requests));
	json_object_set_new(root, "in_flight", json_integer(st.in_flight));
	json_object_set_new(root, "connections", json_integer(st.connections));
	pools = json_array();
	for (size_t pl = 0; pl < proxy_pool_count(a->proxy); pl++) {
		json_t *pool = json_object(), *bes = json_array();
		size_t up = 0, n = proxy_backend_count(a->proxy, pl);

		json_object_set_new(pool, "name",
				    json_string(proxy_pool_name(a->proxy, pl)));
		for (size_t i = 0; i < n; i++) {
			json_t *be = json_object(), *ck = json_object();

			proxy_backend_info(a->proxy, pl, i, &bi);
			up += bi.state == PROXY_BACKEND_UP;
			json_object_set_new(be, "name", json_string(bi.name));
			json_object_set_new(be, "address", json_string(bi.address));
			json_object_set_new(be, "weight", json_integer(bi.weight));
			json_object_set_new(be, "state",
					    json_string(bi.state == PROXY_BACKEND_UP
								? "up"
								: "down"));
			json_object_set_new(be, "requests",
					    json_integer((json_int_t)bi.requests));
			json_object_set_new(be, "failures",
					    json_integer((json_int_t)bi.failures));
			json_object_set_new(be, "in_flight", json_integer(bi.active));
			json_object_set_new(ck, "ok",
					    json_integer((json_int_t)bi.checks_ok));
			json_object_set_new(ck, "failed",
					    json_integer((json_int_t)bi.checks_failed));
			json_object_set_new(ck, "last", json_string(bi.last_check));
			json_object_set_new(be, "checks", ck);
			json_array_append_new(bes, be);
		}
		json_object_set_new(pool, "backends_up", json_integer((json_int_t)up));
		json_object_set_new(pool, "backends", bes);
		json_array_append_new(pools, pool);
	}
	json_object_set_new(root, "pools", pools);
	if (a->hook)
		a->hook(a->hook_ud, root);
	return root;
}

static void reply_text(struct http_server_res *res, int status,
		       const char *ctype, const char *body)
{
	res->status = status;
	buf_printf(&res->headers, "Content-Type: %s\r\n", ctype);
	buf_appends(&res->body, body);
}

static void handler(void *ud, struct http_server_req *req,
		    struct http_server_res *res)
{
	struct admin *a = ud;
	enum http_method m = req->msg->method;

	buf_appends(&res->headers, "Cache-Control: no-store\r\n");
	if (strcmp(req->path, "/healthz") == 0) {
		if (m != HTTP_M_GET && m != HTTP_M_HEAD)
			goto not_allowed;
		reply_text(res, 200, "text/plain", "ok\n");
		return;
	}
	if (strcmp(req->path, "/metrics") == 0) {
		if (m != HTTP_M_GET && m != HTTP_M_HEAD)
			goto not_allowed;
		res->status = 200;
		buf_appends(&res->headers,
			    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
		write_metrics(a, &res->body);
		return;
	}
	if (strncmp(req->path, "/api/", 5) == 0) {
		if (!token_ok(a, http_server_req_header(req, "authorization"))) {
			log_warn("admin: unauthorized", "peer=%s path=%s", req->peer,
				 req->path);
			buf_appends(&res->headers,
				    "WWW-Authenticate: Bearer realm=\"storekeep\"\r\n");
			reply_text(res, 401, "application/json",
				   "{\"error\":\"a valid bearer token is required\"}\n");
			return;
		}
		if (strcmp(req->path, "/api/v1/status") == 0) {
			json_t *j;
			char *s;

			if (m != HTTP_M_GET && m != HTTP_M_HEAD)
				goto not_allowed;
			j = status_json(a);
			s = json_dumps(j, JSON_INDENT(2));
			json_decref(j);
			reply_text(res, 200, "application/json", s ? s : "{}");
			buf_appendc(&res->body, '\n');
			free(s);
			return;
		}
		reply_text(res, 404, "application/json",
			   "{\"error\":\"no such endpoint\"}\n");
		return;
	}
	reply_text(res, 404, "text/plain", "404 Not Found\n");
	return;
not_allowed:
	buf_appends(&res->headers, "Allow: GET, HEAD\r\n");
	reply_text(res, 405, "text/plain", "405 Method Not Allowed\n");
}

int admin_start(uv_loop_t *loop, const struct config *cfg, struct proxy *p,
		struct admin **out, char *err, size_t errlen)
{
	struct http_server_opts o;
	struct admin *a;
	int r;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	a->proxy = p;
	a->started_wall_ms = clock_wall_ms();
	a->started_mono_ms = clock_mono_ms();
	r = admin_read_token(cfg->admin.token_file, &a->token, err, errlen);
	if (r < 0)
		goto fail;
	a->token_len = strlen(a->token);
	memset(&o, 0, sizeof(o));
	o.listen = cfg->admin.listen.text;
	o.fd = -1;
	o.max_body_bytes = 1 << 20;
	r = http_server_start(loop, &o, handler, a, &a->srv, err, errlen);
	if (r < 0)
		goto fail;
	log_info("admin listening", "listen=%s", cfg->admin.listen.text);
	*out = a;
	return 0;
fail:
	if (a->token)
		explicit_bzero(a->token, strlen(a->token));
	free(a->token);
	free(a);
	return r;
}

void admin_set_status_hook(struct admin *a, admin_status_hook hook, void *ud)
{
	a->hook = hook;
	a->hook_ud = ud;
}

int admin_port(struct admin *a)
{
	return http_server_port(a->srv);
}

void admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	http_server_stop(a->srv);
	explicit_bzero(a->token, a->token_len);
	free(a->token);
	free(a);
}
