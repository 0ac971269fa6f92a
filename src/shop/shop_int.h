/*
 * shop_int.h - what the files of the demo shop share.
 *
 *   shop.c    the subcommand: options, signals, the loop
 *   db.c      SQLite: schema, seeding, prepared statements, transactions
 *   routes.c  the HTTP handler: routing, negotiation, cookies, forms
 *   render.c  HTML pages, the stylesheet, product images, escaping
 *
 * The database layer copies rows into the small fixed structs below, so
 * no statement stays open across a call and no SQLite memory escapes it.
 */
#ifndef SK_SHOP_SHOP_INT_H
#define SK_SHOP_SHOP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define SHOP_PER_PAGE 20
#define SHOP_MAX_LINES 50  /* distinct products in a cart or an order */
#define SHOP_MAX_QTY 100   /* per line */
#define SHOP_SESSION_HEX 32 /* 128 bits */

struct shop_db;

struct shop_product {
	int64_t id;
	char name[96];
	char description[384];
	char category[32];
	int64_t price_cents;
	int64_t stock;
};

struct shop_line {
	int64_t product_id;
	char name[96];
	int64_t qty;
	int64_t price_cents;
};

struct shop_cart {
	struct shop_line lines[SHOP_MAX_LINES];
	size_t n;
	int64_t total_cents;
};

struct shop_order {
	int64_t id;
	int64_t total_cents;
	int64_t created_ms;
	struct shop_line lines[SHOP_MAX_LINES];
	size_t n;
};

/* Results of shop_db_checkout() besides negative errnos. */
enum shop_checkout_result {
	SHOP_CO_CREATED = 0,
	SHOP_CO_REPLAY,	    /* this Idempotency-Key already made the order */
	SHOP_CO_MISMATCH,   /* the key was used for a different request */
	SHOP_CO_EMPTY,	    /* nothing to order */
	SHOP_CO_NO_PRODUCT, /* an item names a product that does not exist */
	SHOP_CO_NO_STOCK,   /* not enough stock for an item */
};

struct shop_checkout {
	const char *idem_key;		/* may be NULL */
	const char *session;		/* may be NULL when lines are given */
	const struct shop_line *lines;	/* NULL: order the session's cart */
	size_t n;			/* sorted by product_id, distinct */
	const char *backend;
};

/* --- db.c -------------------------------------------------------------- */

/*
 * Opens (creating if needed) the database at path in WAL mode, creates the
 * schema and seeds the catalog once, even when several processes start on
 * a fresh file together. Returns 0 and *out, or a negative errno with a
 * message in err.
 */
int shop_db_open(const char *path, struct shop_db **out, char *err,
		 size_t errlen);
void shop_db_close(struct shop_db *db);
/* Number of products this process inserted while seeding (0 if another
 * one had seeded the file already). */
int shop_db_seeded(const struct shop_db *db);

/* 0 when the database answers a query, else -EIO. */
int shop_db_health(struct shop_db *db);

/* Fills *p. Returns 0, -ENOENT, or -EIO / -EBUSY. */
int shop_db_product(struct shop_db *db, int64_t id, struct shop_product *p);

/* Products whose name or description contain q (any when q is ""), in id
 * order, page 1-based: up to SHOP_PER_PAGE into out, the count in *n and
 * the number of matches in *total. Returns 0 or -EIO / -EBUSY. */
int shop_db_search(struct shop_db *db, const char *q, int64_t page,
		   struct shop_product *out, size_t *n, int64_t *total);

/* A few products for the home page; same contract as shop_db_search. */
int shop_db_featured(struct shop_db *db, struct shop_product *out,
		     size_t max, size_t *n);

/*
 * Adds qty of product to the session's cart. Returns 0, -ENOENT for an
 * unknown product, -ERANGE when the line would exceed SHOP_MAX_QTY,
 * -ENOSPC when the cart already has SHOP_MAX_LINES other products, or
 * -EIO / -EBUSY.
 */
int shop_db_cart_add(struct shop_db *db, const char *session,
		     int64_t product_id, int64_t qty);
int shop_db_cart(struct shop_db *db, const char *session,
		 struct shop_cart *cart);

/*
 * Places an order in one write transaction (BEGIN IMMEDIATE), so it holds
 * across processes: resolves the lines (given, or the session's cart),
 * claims the Idempotency-Key with INSERT ... ON CONFLICT DO NOTHING on a
 * UNIQUE column, takes the stock, records the items, clears the cart.
 * Returns a shop_checkout_result with *order_id set for CREATED and
 * REPLAY, or -EIO / -EBUSY.
 */
int shop_db_checkout(struct shop_db *db, const struct shop_checkout *co,
		     int64_t *order_id);

/* Returns 0, -ENOENT, or -EIO / -EBUSY. */
int shop_db_order(struct shop_db *db, int64_t id, struct shop_order *o);

/* --- render.c ---------------------------------------------------------- */

/* Appends s with &, <, >, " and ' escaped (for text and attributes). */
void shop_html_esc(struct buf *out, const char *s);
/* Appends s percent-encoded for a query-string value. */
void shop_url_esc(struct buf *out, const char *s);

void shop_page_begin(struct buf *out, const char *shop_name,
		     const char *title, const char *q);
void shop_page_end(struct buf *out, const char *shop_name);
void shop_render_price(struct buf *out, int64_t cents);
void shop_render_home(struct buf *out, const char *shop_name,
		      const struct shop_product *featured, size_t n);
void shop_render_products(struct buf *out, const char *shop_name,
			  const char *q, int64_t page, int64_t pages,
			  int64_t total, const struct shop_product *p,
			  size_t n);
void shop_render_product(struct buf *out, const char *shop_name,
			 const struct shop_product *p);
void shop_render_cart(struct buf *out, const char *shop_name,
		      const struct shop_cart *cart);
void shop_render_order(struct buf *out, const char *shop_name,
		       const struct shop_order *o);
/* A short page for errors: status, and a sentence. */
void shop_render_error(struct buf *out, const char *shop_name, int status,
		       const char *msg);

/* The stylesheet, a static string. */
const char *shop_css(size_t *len);
/* Appends the generated SVG picture of product p. */
void shop_render_svg(struct buf *out, const struct shop_product *p);

/* --- routes.c ---------------------------------------------------------- */

struct http_server_req;
struct http_server_res;

struct shop_ctx {
	struct shop_db *db;
	const char *name;
};

void shop_handle(void *ud, struct http_server_req *req,
		 struct http_server_res *res);

#endif
