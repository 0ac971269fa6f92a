/*
 * render.c - the shop's HTML pages, its stylesheet and product pictures.
 *
 * Everything that reaches a page from the database or the request goes
 * through shop_html_esc() (text and attribute values alike, so a quote
 * cannot end an attribute) or shop_url_esc() (query-string values). The
 * pages use no scripts; forms post to the same endpoints the JSON API
 * uses.
 *
 * The SVG pictures are a pure function of the product, so their ETag (a
 * hash of the bytes, computed by the caller) is stable across processes
 * and restarts.
 */
#include "shop/shop_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void shop_html_esc(struct buf *out, const char *s)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *rep;

		switch (*s) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			continue;
		}
		buf_append(out, run, (size_t)(s - run));
		buf_appends(out, rep);
		run = s + 1;
	}
	buf_append(out, run, (size_t)(s - run));
}

void shop_url_esc(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~') {
			buf_appendc(out, (char)ch);
		} else {
			buf_appendc(out, '%');
			buf_appendc(out, hex[ch >> 4]);
			buf_appendc(out, hex[ch & 15]);
		}
	}
}

void shop_render_price(struct buf *out, int64_t cents)
{
	buf_printf(out, "$%" PRId64 ".%02" PRId64, cents / 100, cents % 100);
}

void shop_page_begin(struct buf *out, const char *shop_name,
		     const char *title, const char *q)
{
	buf_appends(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
			 "<meta charset=\"utf-8\">\n"
			 "<meta name=\"viewport\" "
			 "content=\"width=device-width, initial-scale=1\">\n"
			 "<title>");
	shop_html_esc(out, title);
	buf_appends(out, " - Storekeep Shop</title>\n"
			 "<link rel=\"stylesheet\" href=\"/static/style.css\">\n"
			 "</head>\n<body>\n<header>\n"
			 "<a class=\"brand\" href=\"/\">Storekeep Shop</a>\n"
			 "<form class=\"search\" action=\"/products\" "
			 "method=\"get\">"
			 "<input type=\"search\" name=\"q\" "
			 "placeholder=\"Search products\" value=\"");
	shop_html_esc(out, q != NULL ? q : "");
	buf_appends(out, "\"><button type=\"submit\">Search</button></form>\n"
			 "<nav><a href=\"/products\">All products</a> "
			 "<a href=\"/cart\">Cart</a></nav>\n"
			 "</header>\n<main>\n");
	(void)shop_name;
}

void shop_page_end(struct buf *out, const char *shop_name)
{
	buf_appends(out, "</main>\n<footer>Served by backend <code>");
	shop_html_esc(out, shop_name);
	buf_appends(out, "</code>.</footer>\n</body>\n</html>\n");
}

static void product_card(struct buf *out, const struct shop_product *p)
{
	buf_printf(out,
		   "<li class=\"card\"><a href=\"/products/%" PRId64 "\">"
		   "<img src=\"/static/img/%" PRId64 ".svg\" alt=\"\" "
		   "width=\"160\" height=\"120\"><span class=\"name\">",
		   p->id, p->id);
	shop_html_esc(out, p->name);
	buf_appends(out, "</span></a><span class=\"cat\">");
	shop_html_esc(out, p->category);
	buf_appends(out, "</span><span class=\"price\">");
	shop_render_price(out, p->price_cents);
	buf_appends(out, "</span></li>\n");
}

void shop_render_home(struct buf *out, const char *shop_name,
		      const struct shop_product *featured, size_t n)
{
	size_t i;

	shop_page_begin(out, shop_name, "Home", NULL);
	buf_appends(out, "<section class=\"hero\"><h1>Things for a calm "
			 "home</h1><p>Lamps, furniture, kitchenware and more, "
			 "made to last.</p>"
			 "<p><a class=\"button\" href=\"/products\">Browse the "
			 "catalog</a></p></section>\n"
			 "<h2>Featured</h2>\n<ul class=\"grid\">\n");
	for (i = 0; i < n; i++)
		product_card(out, &featured[i]);
	buf_appends(out, "</ul>\n");
	shop_page_end(out, shop_name);
}

void shop_render_products(struct buf *out, const char *shop_name,
			  const char *q, int64_t page, int64_t pages,
			  int64_t total, const struct shop_product *p,
			  size_t n)
{
	size_t i;

	shop_page_begin(out, shop_name, "Products", q);
	if (q[0] != '\0') {
		buf_appends(out, "<h1>Results for &ldquo;");
		shop_html_esc(out, q);
		buf_printf(out, "&rdquo;</h1>\n<p>%" PRId64 " products</p>\n",
			   total);
	} else {
		buf_printf(out, "<h1>All products</h1>\n<p>%" PRId64
				" products</p>\n",
			   total);
	}
	buf_appends(out, "<ul class=\"grid\">\n");
	for (i = 0; i < n; i++)
		product_card(out, &p[i]);
	buf_appends(out, "</ul>\n<nav class=\"pager\">");
	if (page > 1) {
		buf_appends(out, "<a rel=\"prev\" href=\"/products?q=");
		shop_url_esc(out, q);
		buf_printf(out, "&amp;page=%" PRId64 "\">Previous</a> ",
			   page - 1);
	}
	buf_printf(out, "<span>Page %" PRId64 " of %" PRId64 "</span>", page,
		   pages);
	if (page < pages) {
		buf_appends(out, " <a rel=\"next\" href=\"/products?q=");
		shop_url_esc(out, q);
		buf_printf(out, "&amp;page=%" PRId64 "\">Next</a>", page + 1);
	}
	buf_appends(out, "</nav>\n");
	shop_page_end(out, shop_name);
}

void shop_render_product(struct buf *out, const char *shop_name,
			 const struct shop_product *p)
{
	shop_page_begin(out, shop_name, p->name, NULL);
	buf_printf(out,
		   "<article class=\"product\">"
		   "<img src=\"/static/img/%" PRId64 ".svg\" alt=\"\" "
		   "width=\"320\" height=\"240\">\n<div><h1>",
		   p->id);
	shop_html_esc(out, p->name);
	buf_appends(out, "</h1>\n<p class=\"cat\">");
	shop_html_esc(out, p->category);
	buf_appends(out, "</p>\n<p>");
	shop_html_esc(out, p->description);
	buf_appends(out, "</p>\n<p class=\"price\">");
	shop_render_price(out, p->price_cents);
	buf_printf(out,
		   "</p>\n<p class=\"stock\">%" PRId64 " in stock</p>\n"
		   "<form method=\"post\" action=\"/cart/items\">"
		   "<input type=\"hidden\" name=\"product_id\" "
		   "value=\"%" PRId64 "\">"
		   "<label>Quantity <input type=\"number\" name=\"qty\" "
		   "value=\"1\" min=\"1\" max=\"%d\"></label> "
		   "<button type=\"submit\">Add to cart</button></form>\n"
		   "</div></article>\n",
		   p->stock, p->id, SHOP_MAX_QTY);
	shop_page_end(out, shop_name);
}

static void lines_table(struct buf *out, const struct shop_line *l,
			size_t n, int64_t total)
{
	size_t i;

	buf_appends(out, "<table class=\"lines\">\n<thead><tr><th>Product</th>"
			 "<th>Qty</th><th>Price</th></tr></thead>\n<tbody>\n");
	for (i = 0; i < n; i++) {
		buf_printf(out,
			   "<tr><td><a href=\"/products/%" PRId64 "\">",
			   l[i].product_id);
		shop_html_esc(out, l[i].name);
		buf_printf(out, "</a></td><td>%" PRId64 "</td><td>",
			   l[i].qty);
		shop_render_price(out, l[i].price_cents);
		buf_appends(out, "</td></tr>\n");
	}
	buf_appends(out, "</tbody>\n<tfoot><tr><th colspan=\"2\">Total</th>"
			 "<th>");
	shop_render_price(out, total);
	buf_appends(out, "</th></tr></tfoot>\n</table>\n");
}

void shop_render_cart(struct buf *out, const char *shop_name,
		      const struct shop_cart *cart)
{
	shop_page_begin(out, shop_name, "Cart", NULL);
	buf_appends(out, "<h1>Your cart</h1>\n");
	if (cart->n == 0) {
		buf_appends(out, "<p>Your cart is empty. "
				 "<a href=\"/products\">Find something "
				 "nice</a>.</p>\n");
	} else {
		lines_table(out, cart->lines, cart->n, cart->total_cents);
		buf_appends(out, "<form method=\"post\" action=\"/checkout\">"
				 "<button type=\"submit\">Place order"
				 "</button></form>\n");
	}
	shop_page_end(out, shop_name);
}

void shop_render_order(struct buf *out, const char *shop_name,
		       const struct shop_order *o)
{
	char title[48];

	snprintf(title, sizeof(title), "Order %" PRId64, o->id);
	shop_page_begin(out, shop_name, title, NULL);
	buf_printf(out, "<h1>Order %" PRId64 "</h1>\n<p>Thank you! Your "
			"order has been placed.</p>\n",
		   o->id);
	lines_table(out, o->lines, o->n, o->total_cents);
	shop_page_end(out, shop_name);
}

void shop_render_error(struct buf *out, const char *shop_name, int status,
		       const char *msg)
{
	char title[16];

	snprintf(title, sizeof(title), "Error %d", status);
	shop_page_begin(out, shop_name, title, NULL);
	buf_printf(out, "<h1>%d</h1>\n<p>", status);
	shop_html_esc(out, msg);
	buf_appends(out, "</p>\n<p><a href=\"/\">Back to the shop</a></p>\n");
	shop_page_end(out, shop_name);
}

static const char css[] =
	":root{--ink:#1d2327;--muted:#646970;--line:#dcdcde;--accent:#2c6e49;"
	"--bg:#faf9f6}\n"
	"*{box-sizing:border-box}\n"
	"body{margin:0;font:16px/1.5 system-ui,sans-serif;color:var(--ink);"
	"background:var(--bg)}\n"
	"header{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;"
	"padding:.75rem 1.5rem;background:#fff;border-bottom:1px solid "
	"var(--line)}\n"
	".brand{font-weight:700;font-size:1.2rem;color:var(--accent);"
	"text-decoration:none}\n"
	".search{flex:1;display:flex;gap:.5rem}\n"
	".search input{flex:1;padding:.4rem .6rem;border:1px solid "
	"var(--line);border-radius:4px}\n"
	"nav a{margin-left:1rem}\n"
	"main{max-width:1100px;margin:0 auto;padding:1.5rem}\n"
	"a{color:var(--accent)}\n"
	"button,.button{background:var(--accent);color:#fff;border:0;"
	"border-radius:4px;padding:.45rem .9rem;font:inherit;cursor:pointer;"
	"text-decoration:none}\n"
	".hero{padding:2rem;background:#fff;border:1px solid var(--line);"
	"border-radius:8px}\n"
	".grid{list-style:none;padding:0;display:grid;gap:1rem;"
	"grid-template-columns:repeat(auto-fill,minmax(180px,1fr))}\n"
	".card{background:#fff;border:1px solid var(--line);border-radius:8px;"
	"padding:.75rem;display:flex;flex-direction:column}\n"
	".card a{text-decoration:none;color:inherit}\n"
	".card img{width:100%;height:auto;border-radius:4px}\n"
	".name{display:block;font-weight:600}\n"
	".cat{color:var(--muted);font-size:.85rem}\n"
	".price{font-weight:700}\n"
	".product{display:flex;flex-wrap:wrap;gap:2rem}\n"
	".lines{border-collapse:collapse;min-width:50%}\n"
	".lines td,.lines th{border-bottom:1px solid var(--line);"
	"padding:.4rem .8rem;text-align:left}\n"
	".pager{margin-top:1rem;display:flex;gap:1rem}\n"
	"footer{text-align:center;color:var(--muted);padding:2rem}\n";

const char *shop_css(size_t *len)
{
	*len = sizeof(css) - 1;
	return css;
}

void shop_render_svg(struct buf *out, const struct shop_product *p)
{
	/* Colours from the id, so each product looks a little different
	 * and always the same. */
	uint32_t h = (uint32_t)p->id * 2654435761u;
	unsigned hue = (h >> 7) % 360, hue2 = (hue + 40) % 360;

	buf_printf(out,
		   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" "
		   "height=\"240\" viewBox=\"0 0 320 240\">"
		   "<rect width=\"320\" height=\"240\" "
		   "fill=\"hsl(%u,45%%,88%%)\"/>"
		   "<circle cx=\"%u\" cy=\"%u\" r=\"%u\" "
		   "fill=\"hsl(%u,40%%,55%%)\"/>"
		   "<rect x=\"%u\" y=\"150\" width=\"%u\" height=\"40\" "
		   "rx=\"6\" fill=\"hsl(%u,35%%,35%%)\"/>"
		   "<text x=\"160\" y=\"222\" font-family=\"sans-serif\" "
		   "font-size=\"16\" text-anchor=\"middle\" fill=\"#222\">",
		   hue, 90 + (h >> 3) % 140, 70 + (h >> 11) % 30,
		   35 + (h >> 17) % 25, hue2, 40 + (h >> 5) % 60,
		   120 + (h >> 13) % 100, hue);
	shop_html_esc(out, p->name);
	buf_appends(out, "</text></svg>\n");
}
