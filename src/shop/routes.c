/*
 * routes.c - the shop's HTTP handler: routing, content negotiation, the
 * session cookie, form and JSON input, and mapping results to statuses.
 *
 * Each route answers HTML by default and JSON when the Accept header
 * names application/json (and Vary: Accept says so to caches). Input is
 * validated here, before the database sees it: ids are canonical decimal
 * numbers, quantities are 1..100, bodies are parsed strictly; anything
 * else is a 4xx with a one-line reason.
 *
 * What it deliberately does not do: authentication, CSRF tokens (the
 * cookie is SameSite=Lax and every state change is a POST), or keeping any
 * state in the process: carts and orders live in the shared database, so
 * any instance can serve any request.
 */
#include "shop/shop_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "core/log.h"
#include "http/server.h"

#define SESSION_COOKIE "sk_session"
#define MAX_QUERY_BYTES 200
#define MAX_PAGE 100000
#define MAX_IDEM_KEY 200
#define FEATURED 8

#define CC_CATALOG "Cache-Control: public, max-age=10\r\nVary: Accept\r\n"
#define CC_PRIVATE "Cache-Control: no-store\r\n"
#define CC_STATIC "Cache-Control: public, max-age=3600\r\n"

#define CT_HTML "text/html; charset=utf-8"
#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"

/* What a handler has to hand for one request. */
struct rq {
	struct shop_ctx *ctx;
	struct http_server_req *req;
	struct http_server_res *res;
	int json; /* the client asked for JSON */
	char session[SHOP_SESSION_HEX + 1];
	int new_session;
};

/* --- input ------------------------------------------------------------- */

/*
 * Finds name in an application/x-www-form-urlencoded string (a query or
 * a form body) and decodes its value into out. Returns 1 when found, 0
 * when absent, -EINVAL for a bad escape or an encoded NUL.
 */
static int form_get(const char *s, size_t len, const char *name,
		    struct buf *out)
{
	size_t nlen = strlen(name), i = 0;

	while (i < len) {
		size_t end = i, eq;

		while (end < len && s[end] != '&')
			end++;
		for (eq = i; eq < end && s[eq] != '='; eq++)
			;
		if (eq - i == nlen && memcmp(s + i, name, nlen) == 0)
			return http_form_decode(s + eq + (eq < end),
						end - eq - (eq < end), out) == 0
				       ? 1
				       : -EINVAL;
		i = end + 1;
	}
	return 0;
}

/* A canonical decimal number in [min, max]: digits only, no sign, no
 * leading zero. Returns 0 or -EINVAL. */
static int parse_num(const char *s, size_t len, int64_t min, int64_t max,
		     int64_t *out)
{
	int64_t v = 0;
	size_t i;

	if (len == 0 || len > 18 || (s[0] == '0' && len > 1))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* The id in "<prefix><digits><suffix>", or -EINVAL. */
static int path_id(const char *path, const char *prefix, const char *suffix,
		   int64_t *id)
{
	size_t pl = strlen(prefix), sl = strlen(suffix), len = strlen(path);

	if (len < pl + sl || strncmp(path, prefix, pl) != 0 ||
	    strcmp(path + len - sl, suffix) != 0)
		return -EINVAL;
	return parse_num(path + pl, len - pl - sl, 1, INT64_MAX / 2, id);
}

static int has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int content_type_is(struct rq *r, const char *type)
{
	const char *ct = http_server_req_header(r->req, "Content-Type");
	size_t n = strlen(type);

	return ct != NULL && strncasecmp(ct, type, n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int session_valid(const char *s, size_t len)
{
	size_t i;

	if (len != SHOP_SESSION_HEX)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Takes the session from the Cookie header when it is well formed. */
static void session_read(struct rq *r)
{
	const char *c = http_server_req_header(r->req, "Cookie");
	static const char name[] = SESSION_COOKIE "=";

	r->session[0] = '\0';
	while (c != NULL && *c != '\0') {
		const char *end = strchr(c, ';');
		size_t len = end != NULL ? (size_t)(end - c) : strlen(c);

		while (len > 0 && (*c == ' ' || *c == '\t')) {
			c++;
			len--;
		}
		if (len > sizeof(name) - 1 &&
		    memcmp(c, name, sizeof(name) - 1) == 0 &&
		    session_valid(c + sizeof(name) - 1,
				  len - (sizeof(name) - 1))) {
			memcpy(r->session, c + sizeof(name) - 1,
			       SHOP_SESSION_HEX);
			r->session[SHOP_SESSION_HEX] = '\0';
			return;
		}
		c = end != NULL ? end + 1 : NULL;
	}
}

/* Makes sure the request has a session, creating one (and its cookie)
 * when the client sent none. Returns 0 or a negative errno. */
static int session_ensure(struct rq *r)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[SHOP_SESSION_HEX / 2];
	size_t i;
	int e;

	if (r->session[0] != '\0')
		return 0;
	e = uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL);
	if (e < 0)
		return e;
	for (i = 0; i < sizeof(rnd); i++) {
		r->session[2 * i] = hex[rnd[i] >> 4];
		r->session[2 * i + 1] = hex[rnd[i] & 15];
	}
	r->session[SHOP_SESSION_HEX] = '\0';
	r->new_session = 1;
	buf_printf(&r->res->headers,
		   "Set-Cookie: " SESSION_COOKIE
		   "=%s; Path=/; HttpOnly; SameSite=Lax\r\n",
		   r->session);
	return 0;
}

/* --- output ------------------------------------------------------------ */

static void content_type(struct rq *r, const char *type)
{
	buf_printf(&r->res->headers, "Content-Type: %s\r\n", type);
}

/* Sends j (its reference is taken) as the body. */
static void reply_json(struct rq *r, int status, json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (s == NULL) {
		/* json_pack refuses strings that are not UTF-8; only a
		 * database edited by hand could hold one. */
		r->res->status = 500;
		content_type(r, CT_JSON);
		buf_appends(&r->res->body, "{\"error\":\"internal error\"}");
		return;
	}
	r->res->status = status;
	content_type(r, CT_JSON);
	buf_appends(&r->res->body, s);
	free(s);
}

static void reply_text(struct rq *r, int status, const char *text)
{
	r->res->status = status;
	content_type(r, CT_TEXT);
	buf_appends(&r->res->body, text);
}

/* An error in the form the client reads: {"error": msg} or a page. */
static void reply_error(struct rq *r, int status, const char *msg)
{
	buf_reset(&r->res->body);
	r->res->status = status;
	if (r->json) {
		reply_json(r, status, json_pack("{s:s}", "error", msg));
		return;
	}
	content_type(r, CT_HTML);
	shop_render_error(&r->res->body, r->ctx->name, status, msg);
}

/* Maps a database failure (-EBUSY: the lock was held past busy_timeout)
 * to a status. */
static void reply_db_error(struct rq *r, int e)
{
	if (e == -EBUSY) {
		buf_appends(&r->res->headers, "Retry-After: 1\r\n");
		reply_error(r, 503, "the database is busy, try again");
		return;
	}
	reply_error(r, 500, "internal error");
}

static void redirect(struct rq *r, const char *location)
{
	r->res->status = 303;
	buf_printf(&r->res->headers, "Location: %s\r\n", location);
	content_type(r, CT_TEXT);
	buf_printf(&r->res->body, "See %s\n", location);
}

static json_t *product_json(const struct shop_product *p, int detail)
{
	char img[48];
	json_t *j;

	snprintf(img, sizeof(img), "/static/img/%" PRId64 ".svg", p->id);
	j = json_pack("{s:I,s:s}", "id", (json_int_t)p->id, "name", p->name);
	if (detail)
		json_object_set_new(j, "description",
				    json_string(p->description));
	json_object_set_new(j, "price_cents", json_integer(p->price_cents));
	json_object_set_new(j, "category", json_string(p->category));
	json_object_set_new(j, "stock", json_integer(p->stock));
	json_object_set_new(j, "image", json_string(img));
	return j;
}

static json_t *lines_json(const struct shop_line *l, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(
			a, json_pack("{s:I,s:s,s:I,s:I}", "product_id",
				     (json_int_t)l[i].product_id, "name",
				     l[i].name, "qty", (json_int_t)l[i].qty,
				     "price_cents",
				     (json_int_t)l[i].price_cents));
	return a;
}

static json_t *order_json(const struct shop_order *o)
{
	return json_pack("{s:I,s:I,s:o}", "order_id", (json_int_t)o->id,
			 "total_cents", (json_int_t)o->total_cents, "items",
			 lines_json(o->lines, o->n));
}

/* FNV-1a, 64 bits: a strong validator for bytes we generate. */
static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;

	while (n-- > 0) {
		h ^= (unsigned char)*p++;
		h *= 1099511628211ull;
	}
	return h;
}

/* True when If-None-Match lists etag (weak comparison, RFC 9110 13.1.2)
 * or is "*". */
static int etag_matches(const char *inm, const char *etag)
{
	size_t elen = strlen(etag);

	while (inm != NULL && *inm != '\0') {
		const char *end;
		size_t len;

		while (*inm == ' ' || *inm == '\t' || *inm == ',')
			inm++;
		if (*inm == '*')
			return 1;
		if (strncmp(inm, "W/", 2) == 0)
			inm += 2;
		if (*inm != '"')
			return 0;
		end = strchr(inm + 1, '"');
		if (end == NULL)
			return 0;
		len = (size_t)(end - inm) + 1;
		if (len == elen && memcmp(inm, etag, len) == 0)
			return 1;
		inm = end + 1;
	}
	return 0;
}

/* Serves generated static bytes with a strong ETag and 304s. */
static void reply_static(struct rq *r, const char *type, const char *p,
			 size_t n)
{
	char etag[24];

	snprintf(etag, sizeof(etag), "\"%016" PRIx64 "\"", fnv1a(p, n));
	buf_printf(&r->res->headers, CC_STATIC "ETag: %s\r\n", etag);
	if (etag_matches(http_server_req_header(r->req, "If-None-Match"),
			 etag)) {
		r->res->status = 304;
		return;
	}
	content_type(r, type);
	buf_append(&r->res->body, p, n);
}

/* --- routes ------------------------------------------------------------ */

static void get_home(struct rq *r)
{
	struct shop_product feat[FEATURED];
	size_t n;
	int e;

	e = shop_db_featured(r->ctx->db, feat, FEATURED, &n);
	if (e < 0) {
		reply_db_error(r, e);
		return;
	}
	buf_appends(&r->res->headers, CC_CATALOG);
	if (r->json) {
		json_t *a = json_array();
		size_t i;

		for (i = 0; i < n; i++)
			json_array_append_new(a, product_json(&feat[i], 0));
		reply_json(r, 200, json_pack("{s:o}", "featured", a));
		return;
	}
	content_type(r, CT_HTML);
	shop_render_home(&r->res->body, r->ctx->name, feat, n);
}

static void get_products(struct rq *r)
{
	const char *qs = r->req->query;
	struct shop_product *p = NULL;
	struct buf q, v;
	int64_t page = 1, total = 0, pages;
	size_t n = 0, i;
	int e;

	buf_init(&q);
	buf_init(&v);
	e = form_get(qs, strlen(qs), "q", &q);
	if (e < 0) {
		reply_error(r, 400, "malformed query string");
		goto out;
	}
	buf_cstr(&q);
	if (q.len > MAX_QUERY_BYTES) {
		reply_error(r, 400, "search text too long");
		goto out;
	}
	e = form_get(qs, strlen(qs), "page", &v);
	if (e < 0 || (e == 1 && parse_num(v.data, v.len, 1, MAX_PAGE,
					  &page) < 0)) {
		reply_error(r, 400, "page must be a number from 1 to 100000");
		goto out;
	}
	p = calloc(SHOP_PER_PAGE, sizeof(*p));
	SK_ASSERT(p != NULL);
	e = shop_db_search(r->ctx->db, q.data, page, p, &n, &total);
	if (e < 0) {
		reply_db_error(r, e);
		goto out;
	}
	pages = total > 0 ? (total + SHOP_PER_PAGE - 1) / SHOP_PER_PAGE : 1;
	buf_appends(&r->res->headers, CC_CATALOG);
	if (r->json) {
		json_t *a = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(a, product_json(&p[i], 0));
		reply_json(r, 200,
			   json_pack("{s:o,s:I,s:I,s:I}", "products", a,
				     "page", (json_int_t)page, "pages",
				     (json_int_t)pages, "total",
				     (json_int_t)total));
		goto out;
	}
	content_type(r, CT_HTML);
	shop_render_products(&r->res->body, r->ctx->name, q.data, page, pages,
			     total, p, n);
out:
	free(p);
	buf_fini(&q);
	buf_fini(&v);
}

static void get_product(struct rq *r)
{
	struct shop_product p;
	int64_t id;
	int e;

	if (path_id(r->req->path, "/products/", "", &id) < 0) {
		reply_error(r, 404, "no such product");
		return;
	}
	e = shop_db_product(r->ctx->db, id, &p);
	if (e == -ENOENT) {
		reply_error(r, 404, "no such product");
		return;
	}
	if (e < 0) {
		reply_db_error(r, e);
		return;
	}
	buf_appends(&r->res->headers, CC_CATALOG);
	if (r->json) {
		reply_json(r, 200, product_json(&p, 1));
		return;
	}
	content_type(r, CT_HTML);
	shop_render_product(&r->res->body, r->ctx->name, &p);
}

static void get_static(struct rq *r)
{
	struct shop_product p;
	struct buf svg;
	int64_t id;
	size_t n;
	int e;

	if (strcmp(r->req->path, "/static/style.css") == 0) {
		const char *css = shop_css(&n);

		reply_static(r, "text/css; charset=utf-8", css, n);
		return;
	}
	if (path_id(r->req->path, "/static/img/", ".svg", &id) < 0) {
		reply_text(r, 404, "not found\n");
		return;
	}
	e = shop_db_product(r->ctx->db, id, &p);
	if (e == -ENOENT) {
		reply_text(r, 404, "not found\n");
		return;
	}
	if (e < 0) {
		reply_db_error(r, e);
		return;
	}
	buf_init(&svg);
	shop_render_svg(&svg, &p);
	reply_static(r, "image/svg+xml", svg.data, svg.len);
	buf_fini(&svg);
}

static void reply_cart(struct rq *r, int status)
{
	struct shop_cart *cart = calloc(1, sizeof(*cart));
	int e;

	SK_ASSERT(cart != NULL);
	e = shop_db_cart(r->ctx->db, r->session, cart);
	if (e < 0) {
		reply_db_error(r, e);
		goto out;
	}
	if (r->json) {
		reply_json(r, status,
			   json_pack("{s:o,s:I}", "items",
				     lines_json(cart->lines, cart->n),
				     "total_cents",
				     (json_int_t)cart->total_cents));
		goto out;
	}
	r->res->status = status;
	content_type(r, CT_HTML);
	shop_render_cart(&r->res->body, r->ctx->name, cart);
out:
	free(cart);
}

static void get_cart(struct rq *r)
{
	int e = session_ensure(r);

	if (e < 0) {
		reply_error(r, 500, "cannot create a session");
		return;
	}
	buf_appends(&r->res->headers, CC_PRIVATE);
	reply_cart(r, 200);
}

static void post_cart_items(struct rq *r)
{
	int64_t pid = 0, qty = 1;
	int form = 0, e;

	buf_appends(&r->res->headers, CC_PRIVATE);
	if (content_type_is(r, "application/json")) {
		json_t *j, *jp, *jq;
		json_error_t jerr;

		r->json = 1;
		j = json_loadb(r->req->body, r->req->body_len, 0, &jerr);
		if (j == NULL || !json_is_object(j)) {
			json_decref(j);
			reply_error(r, 400, "body must be a JSON object");
			return;
		}
		jp = json_object_get(j, "product_id");
		jq = json_object_get(j, "qty");
		if (!json_is_integer(jp) ||
		    (jq != NULL && !json_is_integer(jq))) {
			json_decref(j);
			reply_error(r, 400,
				    "product_id and qty must be integers");
			return;
		}
		pid = json_integer_value(jp);
		if (jq != NULL)
			qty = json_integer_value(jq);
		json_decref(j);
	} else if (content_type_is(r, "application/x-www-form-urlencoded")) {
		struct buf v;
		int bad = 0;

		form = 1;
		buf_init(&v);
		if (form_get(r->req->body, r->req->body_len, "product_id",
			     &v) != 1 ||
		    parse_num(v.data, v.len, 1, INT64_MAX / 2, &pid) < 0)
			bad = 1;
		e = form_get(r->req->body, r->req->body_len, "qty", &v);
		if (e < 0 || (e == 1 && parse_num(v.data, v.len, 0,
						  INT64_MAX / 2, &qty) < 0))
			bad = 1;
		buf_fini(&v);
		if (bad) {
			reply_error(r, 400,
				    "product_id and qty must be numbers");
			return;
		}
	} else {
		reply_error(r, 415, "send application/json or a form");
		return;
	}
	if (pid < 1) {
		reply_error(r, 400, "product_id must be positive");
		return;
	}
	if (qty < 1 || qty > SHOP_MAX_QTY) {
		reply_error(r, 400, "qty must be from 1 to 100");
		return;
	}
	if (session_ensure(r) < 0) {
		reply_error(r, 500, "cannot create a session");
		return;
	}
	e = shop_db_cart_add(r->ctx->db, r->session, pid, qty);
	switch (e) {
	case 0:
		break;
	case -ENOENT:
		reply_error(r, 404, "no such product");
		return;
	case -ERANGE:
		reply_error(r, 400, "at most 100 of one product per cart");
		return;
	case -ENOSPC:
		reply_error(r, 400, "the cart holds at most 50 products");
		return;
	default:
		reply_db_error(r, e);
		return;
	}
	if (form) {
		redirect(r, "/cart");
		return;
	}
	reply_cart(r, 201);
}

static int line_cmp(const void *a, const void *b)
{
	const struct shop_line *x = a, *y = b;

	return (x->product_id > y->product_id) -
	       (x->product_id < y->product_id);
}

/*
 * Reads {"items":[{"product_id":N,"qty":N},...]} into lines, sorted by
 * product and with repeats merged, so the same item set always reads the
 * same. Returns the count, or -EINVAL with *why set.
 */
static int items_parse(const char *body, size_t len, struct shop_line *lines,
		       const char **why)
{
	json_t *j, *items, *it;
	json_error_t jerr;
	size_t i, n = 0, k;

	j = json_loadb(body, len, 0, &jerr);
	items = json_is_object(j) ? json_object_get(j, "items") : NULL;
	if (!json_is_array(items)) {
		*why = "body must be {\"items\":[{\"product_id\":N,\"qty\":N}]}";
		goto fail;
	}
	if (json_array_size(items) > SHOP_MAX_LINES) {
		*why = "at most 50 items per order";
		goto fail;
	}
	json_array_foreach(items, i, it) {
		json_t *jp = json_object_get(it, "product_id");
		json_t *jq = json_object_get(it, "qty");

		if (!json_is_integer(jp) || !json_is_integer(jq) ||
		    json_integer_value(jp) < 1) {
			*why = "each item needs integer product_id and qty";
			goto fail;
		}
		if (json_integer_value(jq) < 1 ||
		    json_integer_value(jq) > SHOP_MAX_QTY) {
			*why = "qty must be from 1 to 100";
			goto fail;
		}
		memset(&lines[n], 0, sizeof(lines[n]));
		lines[n].product_id = json_integer_value(jp);
		lines[n].qty = json_integer_value(jq);
		n++;
	}
	json_decref(j);
	qsort(lines, n, sizeof(*lines), line_cmp);
	for (i = 0, k = 0; i < n; i++) {
		if (k > 0 && lines[k - 1].product_id == lines[i].product_id) {
			lines[k - 1].qty += lines[i].qty;
			if (lines[k - 1].qty > SHOP_MAX_QTY) {
				*why = "qty must be from 1 to 100";
				return -EINVAL;
			}
			continue;
		}
		lines[k++] = lines[i];
	}
	return (int)k;
fail:
	json_decref(j);
	return -EINVAL;
}

static int idem_key_valid(const char *k)
{
	size_t n = strlen(k), i;

	if (n == 0 || n > MAX_IDEM_KEY)
		return 0;
	for (i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return 0;
	return 1;
}

static void post_checkout(struct rq *r)
{
	struct shop_checkout co;
	struct shop_line *lines = NULL;
	struct shop_order *o = NULL;
	const char *why = NULL;
	int64_t oid = 0;
	char loc[48];
	int form, n, e;

	buf_appends(&r->res->headers, CC_PRIVATE);
	memset(&co, 0, sizeof(co));
	co.backend = r->ctx->name;
	co.idem_key = http_server_req_header(r->req, "Idempotency-Key");
	if (co.idem_key != NULL && !idem_key_valid(co.idem_key)) {
		reply_error(r, 400, "Idempotency-Key must be 1 to 200 "
				    "visible characters");
		return;
	}
	form = content_type_is(r, "application/x-www-form-urlencoded");
	if (!form)
		r->json = 1;
	if (content_type_is(r, "application/json") && r->req->body_len > 0) {
		lines = calloc(SHOP_MAX_LINES, sizeof(*lines));
		SK_ASSERT(lines != NULL);
		n = items_parse(r->req->body, r->req->body_len, lines, &why);
		if (n < 0) {
			reply_error(r, 400, why);
			goto out;
		}
		co.lines = lines;
		co.n = (size_t)n;
	} else if (!form && r->req->body_len > 0) {
		reply_error(r, 415, "send application/json, a form, or no "
				    "body");
		goto out;
	}
	co.session = r->session[0] != '\0' ? r->session : NULL;

	e = shop_db_checkout(r->ctx->db, &co, &oid);
	switch (e) {
	case SHOP_CO_CREATED:
	case SHOP_CO_REPLAY:
		break;
	case SHOP_CO_MISMATCH:
		reply_error(r, 422, "this Idempotency-Key was used for a "
				    "different order");
		goto out;
	case SHOP_CO_EMPTY:
		reply_error(r, 400, "nothing to order: the cart is empty");
		goto out;
	case SHOP_CO_NO_PRODUCT:
		reply_error(r, 404, "no such product");
		goto out;
	case SHOP_CO_NO_STOCK:
		reply_error(r, 409, "not enough stock");
		goto out;
	default:
		reply_db_error(r, e);
		goto out;
	}
	if (e == SHOP_CO_CREATED)
		log_info("order placed", "order=%" PRId64 " key=%s", oid,
			 co.idem_key != NULL ? "yes" : "no");
	snprintf(loc, sizeof(loc), "/orders/%" PRId64, oid);
	if (form) {
		redirect(r, loc);
		goto out;
	}
	/* A replay is answered from the database exactly as the first
	 * request was, so both bodies are the same bytes. */
	o = calloc(1, sizeof(*o));
	SK_ASSERT(o != NULL);
	n = shop_db_order(r->ctx->db, oid, o);
	if (n < 0) {
		reply_db_error(r, n == -ENOENT ? -EIO : n);
		goto out;
	}
	buf_printf(&r->res->headers, "Location: %s\r\n", loc);
	if (e == SHOP_CO_REPLAY)
		buf_appends(&r->res->headers, "Idempotent-Replay: true\r\n");
	reply_json(r, e == SHOP_CO_REPLAY ? 200 : 201, order_json(o));
out:
	free(o);
	free(lines);
}

static void get_order(struct rq *r)
{
	struct shop_order *o;
	int64_t id;
	int e;

	buf_appends(&r->res->headers, CC_PRIVATE);
	if (path_id(r->req->path, "/orders/", "", &id) < 0) {
		reply_error(r, 404, "no such order");
		return;
	}
	o = calloc(1, sizeof(*o));
	SK_ASSERT(o != NULL);
	e = shop_db_order(r->ctx->db, id, o);
	if (e == -ENOENT)
		reply_error(r, 404, "no such order");
	else if (e < 0)
		reply_db_error(r, e);
	else if (r->json)
		reply_json(r, 200, order_json(o));
	else {
		content_type(r, CT_HTML);
		shop_render_order(&r->res->body, r->ctx->name, o);
	}
	free(o);
}

static void get_healthz(struct rq *r)
{
	buf_appends(&r->res->headers, CC_PRIVATE);
	if (shop_db_health(r->ctx->db) < 0) {
		reply_text(r, 503, "database unavailable\n");
		return;
	}
	reply_text(r, 200, "ok\n");
}

typedef void (*route_cb)(struct rq *r);

struct route {
	const char *path;
	int prefix; /* path is a prefix ("/products/") */
	int post;   /* POST only; else GET and HEAD */
	route_cb cb;
};

static const struct route routes[] = {
	{"/", 0, 0, get_home},
	{"/products", 0, 0, get_products},
	{"/products/", 1, 0, get_product},
	{"/static/", 1, 0, get_static},
	{"/cart", 0, 0, get_cart},
	{"/cart/items", 0, 1, post_cart_items},
	{"/checkout", 0, 1, post_checkout},
	{"/orders/", 1, 0, get_order},
	{"/healthz", 0, 0, get_healthz},
};

void shop_handle(void *ud, struct http_server_req *req,
		 struct http_server_res *res)
{
	struct rq r;
	const struct route *rt = NULL;
	const char *accept;
	enum http_method m = req->msg->method;
	char qpath[128];
	size_t i;

	memset(&r, 0, sizeof(r));
	r.ctx = ud;
	r.req = req;
	r.res = res;
	accept = http_server_req_header(req, "Accept");
	r.json = accept != NULL && strcasestr(accept, "application/json");
	session_read(&r);

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (routes[i].prefix ? has_prefix(req->path, routes[i].path)
				     : strcmp(req->path, routes[i].path) == 0) {
			rt = &routes[i];
			break;
		}
	}
	if (rt == NULL) {
		reply_error(&r, 404, "not found");
	} else if (rt->post ? m != HTTP_M_POST
			    : (m != HTTP_M_GET && m != HTTP_M_HEAD)) {
		buf_appends(&res->headers,
			    rt->post ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n");
		reply_error(&r, 405, "method not allowed");
	} else {
		rt->cb(&r);
	}
	log_debug("request", "peer=%s method=%s path=%s status=%d", req->peer,
		  http_method_name(m), log_q(qpath, sizeof(qpath), req->path),
		  res->status);
}
