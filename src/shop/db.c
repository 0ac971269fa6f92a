/*
 * db.c - the shop's SQLite database: schema, seeding, queries, checkout.
 *
 * Several shop processes share one database file, so everything that must
 * hold across them is done by SQLite, not in memory: WAL mode lets readers
 * run beside the one writer, busy_timeout makes a writer wait its turn,
 * and every read-modify-write runs in BEGIN IMMEDIATE, which takes the
 * write lock up front so two processes never interleave one (a deferred
 * transaction could read, then fail to upgrade with SQLITE_BUSY).
 *
 * Every statement is prepared once, in the table below, and only ever
 * gets values through bound parameters. Each function resets what it
 * stepped before returning, so no read transaction outlives a call.
 *
 * What it deliberately does not do: migrations (the schema is created if
 * missing, never altered), or waiting on the loop: a busy database blocks
 * this single-threaded process for up to busy_timeout, which for a demo
 * backend is the honest behaviour.
 */
#include "shop/shop_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"

#define BUSY_TIMEOUT_MS 5000
#define OPEN_DEADLINE_MS 20000 /* for the start-up steps that may see BUSY */
#define SEED_COUNT 240

enum st {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_HEALTH,
	ST_PRODUCT,
	ST_SEARCH_COUNT,
	ST_SEARCH,
	ST_FEATURED,
	ST_CART_OTHER_LINES,
	ST_CART_ADD,
	ST_CART_GET,
	ST_CART_CLEAR,
	ST_ORDER_BY_KEY,
	ST_ORDER_INSERT,
	ST_STOCK_TAKE,
	ST_ORDER_ITEM_INSERT,
	ST_ORDER_GET,
	ST_ORDER_ITEMS,
	ST_COUNT
};

static const char *const st_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_HEALTH] = "SELECT 1 FROM products LIMIT 1",
	[ST_PRODUCT] = "SELECT id, name, description, category, price_cents, "
		       "stock FROM products WHERE id = ?1",
	[ST_SEARCH_COUNT] = "SELECT count(*) FROM products "
			    "WHERE name LIKE ?1 ESCAPE '\\' "
			    "OR description LIKE ?1 ESCAPE '\\'",
	[ST_SEARCH] = "SELECT id, name, description, category, price_cents, "
		      "stock FROM products "
		      "WHERE name LIKE ?1 ESCAPE '\\' "
		      "OR description LIKE ?1 ESCAPE '\\' "
		      "ORDER BY id LIMIT ?2 OFFSET ?3",
	[ST_FEATURED] = "SELECT id, name, description, category, price_cents, "
			"stock FROM products WHERE id % 29 = 1 "
			"ORDER BY id LIMIT ?1",
	[ST_CART_OTHER_LINES] = "SELECT count(*) FROM cart_items "
				"WHERE session = ?1 AND product_id <> ?2",
	[ST_CART_ADD] = "INSERT INTO cart_items(session, product_id, qty, "
			"updated_ms) VALUES(?1, ?2, ?3, ?4) "
			"ON CONFLICT(session, product_id) DO UPDATE "
			"SET qty = qty + excluded.qty, "
			"updated_ms = excluded.updated_ms "
			"WHERE qty + excluded.qty <= ?5",
	[ST_CART_GET] = "SELECT c.product_id, p.name, c.qty, p.price_cents "
			"FROM cart_items c JOIN products p "
			"ON p.id = c.product_id WHERE c.session = ?1 "
			"ORDER BY c.product_id LIMIT ?2",
	[ST_CART_CLEAR] = "DELETE FROM cart_items WHERE session = ?1",
	[ST_ORDER_BY_KEY] = "SELECT id, request_sig FROM orders "
			    "WHERE idem_key = ?1",
	[ST_ORDER_INSERT] = "INSERT INTO orders(idem_key, request_sig, "
			    "session, total_cents, created_ms, backend) "
			    "VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
			    "ON CONFLICT(idem_key) DO NOTHING",
	[ST_STOCK_TAKE] = "UPDATE products SET stock = stock - ?1 "
			  "WHERE id = ?2 AND stock >= ?1",
	[ST_ORDER_ITEM_INSERT] = "INSERT INTO order_items(order_id, "
				 "product_id, name, qty, price_cents) "
				 "VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_ORDER_GET] = "SELECT id, total_cents, created_ms FROM orders "
			 "WHERE id = ?1",
	[ST_ORDER_ITEMS] = "SELECT product_id, name, qty, price_cents "
			   "FROM order_items WHERE order_id = ?1 "
			   "ORDER BY product_id LIMIT ?2",
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS products("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" description TEXT NOT NULL,"
	" category TEXT NOT NULL,"
	" price_cents INTEGER NOT NULL CHECK(price_cents >= 0),"
	" stock INTEGER NOT NULL CHECK(stock >= 0));"
	"CREATE TABLE IF NOT EXISTS cart_items("
	" session TEXT NOT NULL,"
	" product_id INTEGER NOT NULL REFERENCES products(id),"
	" qty INTEGER NOT NULL CHECK(qty BETWEEN 1 AND 100),"
	" updated_ms INTEGER NOT NULL,"
	" PRIMARY KEY(session, product_id));"
	"CREATE TABLE IF NOT EXISTS orders("
	" id INTEGER PRIMARY KEY,"
	" idem_key TEXT UNIQUE,"
	" request_sig TEXT NOT NULL,"
	" session TEXT,"
	" total_cents INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" backend TEXT);"
	"CREATE TABLE IF NOT EXISTS order_items("
	" order_id INTEGER NOT NULL REFERENCES orders(id),"
	" product_id INTEGER NOT NULL REFERENCES products(id),"
	" name TEXT NOT NULL,"
	" qty INTEGER NOT NULL,"
	" price_cents INTEGER NOT NULL,"
	" PRIMARY KEY(order_id, product_id));";

struct shop_db {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	int seeded;
};

/* --- plumbing ---------------------------------------------------------- */

static int is_busy(int rc)
{
	rc &= 0xff;
	return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

/* Logs a failed step once, here, and maps it to -EBUSY or -EIO. */
static int db_fail(struct shop_db *db, int rc, const char *what)
{
	log_error("database error", "op=%s rc=%d err=\"%s\"", what, rc,
		  sqlite3_errmsg(db->db));
	return is_busy(rc) ? -EBUSY : -EIO;
}

static sqlite3_stmt *st(struct shop_db *db, enum st i)
{
	return db->st[i];
}

static void st_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows. Returns 0 or -EBUSY / -EIO. */
static int st_exec(struct shop_db *db, enum st i)
{
	sqlite3_stmt *s = st(db, i);
	int rc = sqlite3_step(s);

	st_done(s);
	if (rc != SQLITE_DONE)
		return db_fail(db, rc, st_sql[i]);
	return 0;
}

static int tx_begin(struct shop_db *db)
{
	return st_exec(db, ST_BEGIN);
}

static int tx_commit(struct shop_db *db)
{
	return st_exec(db, ST_COMMIT);
}

static void tx_rollback(struct shop_db *db)
{
	if (!sqlite3_get_autocommit(db->db))
		st_exec(db, ST_ROLLBACK);
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

static void row_product(sqlite3_stmt *s, struct shop_product *p)
{
	p->id = sqlite3_column_int64(s, 0);
	copy_col(p->name, sizeof(p->name), s, 1);
	copy_col(p->description, sizeof(p->description), s, 2);
	copy_col(p->category, sizeof(p->category), s, 3);
	p->price_cents = sqlite3_column_int64(s, 4);
	p->stock = sqlite3_column_int64(s, 5);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Runs sql (no rows wanted) and retries while the database is busy: at
 * start-up another process may be creating the file or switching it to
 * WAL, which can report SQLITE_BUSY without consulting the busy handler. */
static int exec_retry(sqlite3 *db, const char *sql, uint64_t deadline)
{
	int rc;

	for (;;) {
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (!is_busy(rc) || clock_mono_ms() > deadline)
			return rc;
		sleep_ms(10);
	}
}

/* --- the catalog ------------------------------------------------------- */

static const char *const categories[8] = {
	"Lighting", "Furniture", "Kitchen", "Textiles",
	"Office",   "Garden",	 "Bath",    "Decor",
};

static const char *const nouns[8][5] = {
	{"Desk Lamp", "Floor Lamp", "Pendant Light", "Wall Sconce",
	 "Lantern"},
	{"Side Table", "Bookshelf", "Stool", "Armchair", "Coffee Table"},
	{"Cutting Board", "Serving Bowl", "Pepper Mill", "Spice Rack",
	 "Salad Servers"},
	{"Throw Blanket", "Cushion Cover", "Table Runner", "Rug",
	 "Tea Towel"},
	{"Pen Holder", "Monitor Stand", "Desk Organizer", "Letter Tray",
	 "Notebook Cover"},
	{"Planter", "Watering Can", "Bird Feeder", "Garden Bench",
	 "Plant Stand"},
	{"Soap Dish", "Towel Rack", "Bath Mat", "Toothbrush Holder",
	 "Mirror"},
	{"Picture Frame", "Vase", "Candle Holder", "Wall Clock", "Bookends"},
};

static const char *const materials[6] = {
	"Walnut", "Oak", "Brass", "Ceramic", "Bamboo", "Marble",
};

static const char *const adjectives[7] = {
	"sturdy", "minimal", "handmade", "compact",
	"generous", "timeless", "lightweight",
};

static const char *const finishes[5] = {
	"matte", "oiled", "brushed", "natural", "hand-polished",
};

/*
 * Product i of the seed, 0 <= i < 240: every (category, noun, material)
 * combination once, interleaved so neighbouring ids differ. Prices and
 * stock come from a fixed integer hash, so every fresh database is the
 * same catalog.
 */
static void seed_product(unsigned i, struct shop_product *p)
{
	unsigned cat = i % 8, noun = (i / 8) % 5, mat = (i / 40) % 6;
	uint32_t h = (i + 1) * 2654435761u;
	char lower[64];
	size_t k;

	h ^= h >> 15;
	snprintf(p->name, sizeof(p->name), "%s %s", materials[mat],
		 nouns[cat][noun]);
	snprintf(lower, sizeof(lower), "%s", nouns[cat][noun]);
	for (k = 0; lower[k] != '\0'; k++)
		if (lower[k] >= 'A' && lower[k] <= 'Z')
			lower[k] = (char)(lower[k] - 'A' + 'a');
	snprintf(p->description, sizeof(p->description),
		 "A %s %s in %s with a %s finish. Part of our %s collection; "
		 "made to last and shipped within two working days.",
		 adjectives[h % 7], lower, materials[mat],
		 finishes[(h >> 8) % 5], categories[cat]);
	snprintf(p->category, sizeof(p->category), "%s", categories[cat]);
	p->price_cents = (int64_t)((900 + (h >> 4) % 24000) / 100) * 100 + 99;
	p->stock = 200 + (int64_t)((h >> 12) % 800);
}

static int seed(sqlite3 *db, int *inserted)
{
	static const char sql[] =
		"INSERT INTO products(id, name, description, category, "
		"price_cents, stock) VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
	struct shop_product p;
	sqlite3_stmt *s = NULL;
	unsigned i;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return rc;
	for (i = 0; i < SEED_COUNT; i++) {
		seed_product(i, &p);
		sqlite3_bind_int64(s, 1, (int64_t)i + 1);
		sqlite3_bind_text(s, 2, p.name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 3, p.description, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(s, 4, p.category, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(s, 5, p.price_cents);
		sqlite3_bind_int64(s, 6, p.stock);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			break;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	*inserted = rc == SQLITE_OK ? SEED_COUNT : 0;
	return rc;
}

/*
 * Creates the schema and seeds the catalog when it is empty, in one
 * BEGIN IMMEDIATE transaction: of several processes starting together,
 * the first to get the write lock seeds and the others then find the
 * products there.
 */
static int schema_and_seed(struct shop_db *db, uint64_t deadline,
			   const char **what)
{
	sqlite3_stmt *s = NULL;
	int rc, count = -1;

	*what = "begin";
	rc = exec_retry(db->db, "BEGIN IMMEDIATE", deadline);
	if (rc != SQLITE_OK)
		return rc;
	*what = "schema";
	rc = sqlite3_exec(db->db, schema_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	*what = "count";
	rc = sqlite3_prepare_v2(db->db, "SELECT count(*) FROM products", -1,
				&s, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		count = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (count < 0)
		goto fail;
	if (count == 0) {
		*what = "seed";
		rc = seed(db->db, &db->seeded);
		if (rc != SQLITE_OK)
			goto fail;
	}
	*what = "commit";
	rc = sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	return SQLITE_OK;

fail:
	if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_ERROR;
	sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
	db->seeded = 0;
	return rc;
}

/* Switches to WAL; the answer is the mode now in force. */
static int set_wal(sqlite3 *db, uint64_t deadline)
{
	sqlite3_stmt *s = NULL;
	int rc;

	for (;;) {
		rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &s,
					NULL);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(s);
			if (rc == SQLITE_ROW) {
				const unsigned char *m =
					sqlite3_column_text(s, 0);

				rc = m != NULL &&
						     strcmp((const char *)m,
							    "wal") == 0
					     ? SQLITE_OK
					     : SQLITE_ERROR;
			}
			sqlite3_finalize(s);
			s = NULL;
		}
		if (!is_busy(rc) || clock_mono_ms() > deadline)
			return rc;
		sleep_ms(10);
	}
}

int shop_db_open(const char *path, struct shop_db **out, char *err,
		 size_t errlen)
{
	struct shop_db *db;
	uint64_t deadline = clock_mono_ms() + OPEN_DEADLINE_MS;
	const char *what = "open";
	int rc, i;

	*out = NULL;
	db = calloc(1, sizeof(*db));
	if (db == NULL)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &db->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(db->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db->db, 1);
	what = "journal_mode";
	rc = set_wal(db->db, deadline);
	if (rc != SQLITE_OK)
		goto fail;
	what = "pragmas";
	rc = exec_retry(db->db,
			"PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
			deadline);
	if (rc != SQLITE_OK)
		goto fail;
	rc = schema_and_seed(db, deadline, &what);
	if (rc != SQLITE_OK)
		goto fail;
	what = "prepare";
	for (i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(db->db, st_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &db->st[i],
					NULL);
		if (rc != SQLITE_OK)
			goto fail;
	}
	*out = db;
	return 0;

fail:
	snprintf(err, errlen, "%s: %s: %s", path, what,
		 db->db != NULL ? sqlite3_errmsg(db->db) : sqlite3_errstr(rc));
	shop_db_close(db);
	return is_busy(rc) ? -EBUSY : -EIO;
}

void shop_db_close(struct shop_db *db)
{
	int i;

	if (db == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(db->st[i]);
		db->st[i] = NULL;
	}
	if (db->db != NULL && sqlite3_close(db->db) != SQLITE_OK)
		log_warn("database close", "err=\"%s\"", sqlite3_errmsg(db->db));
	db->db = NULL;
	free(db);
}

int shop_db_seeded(const struct shop_db *db)
{
	return db->seeded;
}

/* --- queries ----------------------------------------------------------- */

int shop_db_health(struct shop_db *db)
{
	sqlite3_stmt *s = st(db, ST_HEALTH);
	int rc = sqlite3_step(s);

	st_done(s);
	if (rc != SQLITE_ROW)
		return db_fail(db, rc, "health");
	return 0;
}

int shop_db_product(struct shop_db *db, int64_t id, struct shop_product *p)
{
	sqlite3_stmt *s = st(db, ST_PRODUCT);
	int rc;

	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		row_product(s, p);
	st_done(s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return db_fail(db, rc, "product");
}

/* Reads up to max product rows of s (bound by the caller). */
static int read_products(struct shop_db *db, sqlite3_stmt *s,
			 struct shop_product *out, size_t max, size_t *n)
{
	int rc;

	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
		row_product(s, &out[(*n)++]);
	st_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, rc, "products");
	return 0;
}

int shop_db_search(struct shop_db *db, const char *q, int64_t page,
		   struct shop_product *out, size_t *n, int64_t *total)
{
	struct buf pat;
	sqlite3_stmt *s;
	int rc, r;

	/* LIKE with our own escape character, so that %, _ and \ in the
	 * query match themselves. */
	buf_init(&pat);
	buf_appendc(&pat, '%');
	for (; *q != '\0'; q++) {
		if (*q == '%' || *q == '_' || *q == '\\')
			buf_appendc(&pat, '\\');
		buf_appendc(&pat, *q);
	}
	buf_appendc(&pat, '%');

	s = st(db, ST_SEARCH_COUNT);
	sqlite3_bind_text(s, 1, pat.data, (int)pat.len, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	*total = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	st_done(s);
	if (rc != SQLITE_ROW) {
		buf_fini(&pat);
		*n = 0;
		return db_fail(db, rc, "search count");
	}
	s = st(db, ST_SEARCH);
	sqlite3_bind_text(s, 1, pat.data, (int)pat.len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, SHOP_PER_PAGE);
	sqlite3_bind_int64(s, 3, (page - 1) * SHOP_PER_PAGE);
	r = read_products(db, s, out, SHOP_PER_PAGE, n);
	buf_fini(&pat);
	return r;
}

int shop_db_featured(struct shop_db *db, struct shop_product *out,
		     size_t max, size_t *n)
{
	sqlite3_stmt *s = st(db, ST_FEATURED);

	sqlite3_bind_int64(s, 1, (int64_t)max);
	return read_products(db, s, out, max, n);
}

/* --- the cart ---------------------------------------------------------- */

int shop_db_cart_add(struct shop_db *db, const char *session,
		     int64_t product_id, int64_t qty)
{
	struct shop_product p;
	sqlite3_stmt *s;
	int64_t others = 0;
	int rc, r;

	r = tx_begin(db);
	if (r < 0)
		return r;
	r = shop_db_product(db, product_id, &p);
	if (r < 0)
		goto out;

	s = st(db, ST_CART_OTHER_LINES);
	sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, product_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		others = sqlite3_column_int64(s, 0);
	st_done(s);
	if (rc != SQLITE_ROW) {
		r = db_fail(db, rc, "cart lines");
		goto out;
	}
	if (others >= SHOP_MAX_LINES) {
		r = -ENOSPC;
		goto out;
	}

	s = st(db, ST_CART_ADD);
	sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, product_id);
	sqlite3_bind_int64(s, 3, qty);
	sqlite3_bind_int64(s, 4, (int64_t)clock_wall_ms());
	sqlite3_bind_int64(s, 5, SHOP_MAX_QTY);
	rc = sqlite3_step(s);
	st_done(s);
	if (rc != SQLITE_DONE) {
		r = db_fail(db, rc, "cart add");
		goto out;
	}
	/* The upsert's WHERE refused to grow the line past the limit. */
	if (sqlite3_changes(db->db) == 0) {
		r = -ERANGE;
		goto out;
	}
	return tx_commit(db);

out:
	tx_rollback(db);
	return r;
}

/* Reads the session's cart lines (inside or outside a transaction). */
static int cart_read(struct shop_db *db, const char *session,
		     struct shop_line *lines, size_t *n, int64_t *total)
{
	sqlite3_stmt *s = st(db, ST_CART_GET);
	int rc;

	*n = 0;
	*total = 0;
	sqlite3_bind_text(s, 1, session, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, SHOP_MAX_LINES);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < SHOP_MAX_LINES) {
		struct shop_line *l = &lines[(*n)++];

		l->product_id = sqlite3_column_int64(s, 0);
		copy_col(l->name, sizeof(l->name), s, 1);
		l->qty = sqlite3_column_int64(s, 2);
		l->price_cents = sqlite3_column_int64(s, 3);
		*total += l->qty * l->price_cents;
	}
	st_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, rc, "cart");
	return 0;
}

int shop_db_cart(struct shop_db *db, const char *session,
		 struct shop_cart *cart)
{
	return cart_read(db, session, cart->lines, &cart->n,
			 &cart->total_cents);
}

/* --- orders ------------------------------------------------------------ */

/* What identifies a checkout request for Idempotency-Key: the item set
 * when it is given, else the cart of the session it came from. */
static void request_sig(const struct shop_checkout *co, struct buf *sig)
{
	size_t i;

	if (co->lines == NULL) {
		buf_printf(sig, "cart:%s", co->session ? co->session : "");
		return;
	}
	buf_appends(sig, "items:");
	for (i = 0; i < co->n; i++)
		buf_printf(sig, "%s%lld*%lld", i ? "," : "",
			   (long long)co->lines[i].product_id,
			   (long long)co->lines[i].qty);
}

/* Looks up the order made with key. Returns 1 (found, *id and the match
 * against sig in *same), 0 (none) or a negative errno. */
static int order_by_key(struct shop_db *db, const char *key,
			const char *sig, int64_t *id, int *same)
{
	sqlite3_stmt *s = st(db, ST_ORDER_BY_KEY);
	int rc;

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 1);

		*id = sqlite3_column_int64(s, 0);
		*same = t != NULL && strcmp((const char *)t, sig) == 0;
	}
	st_done(s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return db_fail(db, rc, "order by key");
}

int shop_db_checkout(struct shop_db *db, const struct shop_checkout *co,
		     int64_t *order_id)
{
	struct shop_line *lines;
	struct shop_product p;
	struct buf sig;
	sqlite3_stmt *s;
	size_t n = 0, i;
	int64_t total = 0, oid;
	int rc, r, same = 0;

	lines = calloc(SHOP_MAX_LINES, sizeof(*lines));
	if (lines == NULL)
		return -ENOMEM;
	buf_init(&sig);
	request_sig(co, &sig);

	r = tx_begin(db);
	if (r < 0)
		goto out;

	/* A key seen before answers with its order, whatever the cart or
	 * the stock say now. */
	if (co->idem_key != NULL) {
		r = order_by_key(db, co->idem_key, buf_cstr(&sig), order_id,
				 &same);
		if (r < 0)
			goto fail;
		if (r == 1) {
			r = same ? SHOP_CO_REPLAY : SHOP_CO_MISMATCH;
			goto fail; /* nothing was written: roll back */
		}
	}

	if (co->lines == NULL) {
		if (co->session == NULL) {
			r = SHOP_CO_EMPTY;
			goto fail;
		}
		r = cart_read(db, co->session, lines, &n, &total);
		if (r < 0)
			goto fail;
	} else {
		for (i = 0; i < co->n && i < SHOP_MAX_LINES; i++) {
			r = shop_db_product(db, co->lines[i].product_id, &p);
			if (r == -ENOENT) {
				r = SHOP_CO_NO_PRODUCT;
				goto fail;
			}
			if (r < 0)
				goto fail;
			lines[n].product_id = p.id;
			memcpy(lines[n].name, p.name, sizeof(p.name));
			lines[n].qty = co->lines[i].qty;
			lines[n].price_cents = p.price_cents;
			total += lines[n].qty * p.price_cents;
			n++;
		}
	}
	if (n == 0) {
		r = SHOP_CO_EMPTY;
		goto fail;
	}

	/* The UNIQUE idem_key is what makes "one key, one order" hold even
	 * if two writers ever got here together: the second insert does
	 * nothing, and it then answers with the first one's order. */
	s = st(db, ST_ORDER_INSERT);
	if (co->idem_key != NULL)
		sqlite3_bind_text(s, 1, co->idem_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, sig.data, (int)sig.len, SQLITE_STATIC);
	if (co->session != NULL)
		sqlite3_bind_text(s, 3, co->session, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, total);
	sqlite3_bind_int64(s, 5, (int64_t)clock_wall_ms());
	sqlite3_bind_text(s, 6, co->backend, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	st_done(s);
	if (rc != SQLITE_DONE) {
		r = db_fail(db, rc, "order insert");
		goto fail;
	}
	if (sqlite3_changes(db->db) == 0) {
		r = order_by_key(db, co->idem_key, sig.data, order_id, &same);
		if (r == 1)
			r = same ? SHOP_CO_REPLAY : SHOP_CO_MISMATCH;
		else if (r == 0)
			r = -EIO;
		goto fail;
	}
	oid = sqlite3_last_insert_rowid(db->db);

	for (i = 0; i < n; i++) {
		s = st(db, ST_STOCK_TAKE);
		sqlite3_bind_int64(s, 1, lines[i].qty);
		sqlite3_bind_int64(s, 2, lines[i].product_id);
		rc = sqlite3_step(s);
		st_done(s);
		if (rc != SQLITE_DONE) {
			r = db_fail(db, rc, "stock");
			goto fail;
		}
		if (sqlite3_changes(db->db) == 0) {
			r = SHOP_CO_NO_STOCK;
			goto fail;
		}
		s = st(db, ST_ORDER_ITEM_INSERT);
		sqlite3_bind_int64(s, 1, oid);
		sqlite3_bind_int64(s, 2, lines[i].product_id);
		sqlite3_bind_text(s, 3, lines[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, lines[i].qty);
		sqlite3_bind_int64(s, 5, lines[i].price_cents);
		rc = sqlite3_step(s);
		st_done(s);
		if (rc != SQLITE_DONE) {
			r = db_fail(db, rc, "order item");
			goto fail;
		}
	}
	if (co->lines == NULL) {
		s = st(db, ST_CART_CLEAR);
		sqlite3_bind_text(s, 1, co->session, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		st_done(s);
		if (rc != SQLITE_DONE) {
			r = db_fail(db, rc, "cart clear");
			goto fail;
		}
	}
	r = tx_commit(db);
	if (r < 0)
		goto fail;
	*order_id = oid;
	r = SHOP_CO_CREATED;
	goto out;

fail:
	tx_rollback(db);
out:
	buf_fini(&sig);
	free(lines);
	return r;
}

int shop_db_order(struct shop_db *db, int64_t id, struct shop_order *o)
{
	sqlite3_stmt *s = st(db, ST_ORDER_GET);
	int rc;

	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		o->id = sqlite3_column_int64(s, 0);
		o->total_cents = sqlite3_column_int64(s, 1);
		o->created_ms = sqlite3_column_int64(s, 2);
	}
	st_done(s);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return db_fail(db, rc, "order");

	s = st(db, ST_ORDER_ITEMS);
	o->n = 0;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, SHOP_MAX_LINES);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && o->n < SHOP_MAX_LINES) {
		struct shop_line *l = &o->lines[o->n++];

		l->product_id = sqlite3_column_int64(s, 0);
		copy_col(l->name, sizeof(l->name), s, 1);
		l->qty = sqlite3_column_int64(s, 2);
		l->price_cents = sqlite3_column_int64(s, 3);
	}
	st_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_fail(db, rc, "order items");
	return 0;
}
