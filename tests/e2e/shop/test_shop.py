"""End-to-end tests of the demo shop (`storekeep shop`) and, through it, of
the small HTTP server it runs on (src/http/server.c).

Every test starts real shop processes on free loopback ports with a
database in tmp_path; several instances share one database file the way
the demo and the benchmarks run them. Waits are on conditions with
deadlines, never bare sleeps. At the end each process must exit 0 on
SIGTERM, which under ASan also means no leak and no memory error.
"""
import concurrent.futures
import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
import requests

from conftest import free_port, recv_all, wait_port, wait_until

SEED_TOTAL = 240
JSON = {"Accept": "application/json"}


class Shop:
    def __init__(self, proc, port, name):
        self.proc = proc
        self.port = port
        self.name = name
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
def shops(procs, storekeep_bin, tmp_path):
    """start(n, db=None) starts n shop instances on one database file and
    waits until each answers /healthz. Teardown requires exit status 0."""
    started = []

    def start(n=1, db=None):
        db = db or tmp_path / "shop.db"
        group = []
        for _ in range(n):
            port = free_port()
            name = f"shop{len(started) + 1}"
            log = tmp_path / f"{name}.log"
            pr = procs([storekeep_bin, "shop", "--listen", f"127.0.0.1:{port}",
                        "--db", db, "--name", name], log_path=log)
            s = Shop(pr, port, name)
            started.append(s)
            group.append(s)
        for s in group:
            wait_port(s.port, timeout=30)
            wait_until(lambda s=s: healthy(s), timeout=30, what=f"{s.name} healthy")
        return group

    yield start
    for s in started:
        rc = s.proc.stop()
        assert rc == 0, f"{s.name} exited {rc}:\n{s.proc.log()}"


def healthy(s):
    try:
        return requests.get(s.url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def db_rows(path, sql, args=()):
    with sqlite3.connect(str(path), timeout=10) as c:
        return c.execute(sql, args).fetchall()


# --- raw sockets -----------------------------------------------------------

def raw_conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    return s


def read_response(sock, buf=b""):
    """Reads one response (Content-Length framed). Returns (status, headers,
    body, leftover bytes)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-head: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    if status in (100, 204, 304):
        n = 0
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed mid-body")
        rest += chunk
    return status, headers, rest[:n], rest[n:]


# --- seeding ---------------------------------------------------------------

def test_seeding_is_done_once_by_three_instances_starting_together(shops, tmp_path):
    group = shops(3)
    for s in group:
        r = requests.get(s.url + "/products", headers=JSON)
        assert r.status_code == 200
        assert r.json()["total"] == SEED_TOTAL
    assert db_rows(tmp_path / "shop.db", "SELECT count(*) FROM products") == [(SEED_TOTAL,)]
    seeders = [s.name for s in group if 'msg="seeded catalog"' in s.proc.log()]
    assert len(seeders) == 1, seeders
    mode = db_rows(tmp_path / "shop.db", "PRAGMA journal_mode")
    assert mode == [("wal",)]


def test_seeded_catalog_is_deterministic(shops, tmp_path):
    (s,) = shops(1, tmp_path / "a.db")
    (t,) = shops(1, tmp_path / "b.db")
    a = requests.get(s.url + "/products/1", headers=JSON).json()
    b = requests.get(t.url + "/products/1", headers=JSON).json()
    assert a == b
    assert a["name"] == "Walnut Desk Lamp"
    assert a["category"] == "Lighting"
    assert a["description"]
    names = {n for (n,) in db_rows(tmp_path / "a.db", "SELECT name FROM products")}
    assert len(names) == SEED_TOTAL
    cats = db_rows(tmp_path / "a.db", "SELECT count(DISTINCT category) FROM products")
    assert cats == [(8,)]


# --- catalog ---------------------------------------------------------------

def test_search_json_paging(shops):
    (s,) = shops(1)
    r = requests.get(s.url + "/products", params={"q": "lamp"}, headers=JSON)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert "Accept" in r.headers["Vary"]
    body = r.json()
    assert body["page"] == 1
    assert body["total"] == 12  # Desk Lamp and Floor Lamp in six materials
    assert body["pages"] == 1
    assert all("lamp" in p["name"].lower() for p in body["products"])
    p0 = body["products"][0]
    assert set(p0) == {"id", "name", "price_cents", "category", "stock", "image"}
    assert p0["image"] == f"/static/img/{p0['id']}.svg"

    all1 = requests.get(s.url + "/products", headers=JSON).json()
    assert all1["total"] == SEED_TOTAL and all1["pages"] == SEED_TOTAL // 20
    assert len(all1["products"]) == 20
    all2 = requests.get(s.url + "/products", params={"page": 2}, headers=JSON).json()
    assert all2["page"] == 2 and len(all2["products"]) == 20
    ids1 = {p["id"] for p in all1["products"]}
    ids2 = {p["id"] for p in all2["products"]}
    assert not ids1 & ids2
    last = requests.get(s.url + "/products", params={"page": 99}, headers=JSON).json()
    assert last["products"] == [] and last["total"] == SEED_TOTAL

    # LIKE metacharacters match themselves.
    none = requests.get(s.url + "/products", params={"q": "%"}, headers=JSON).json()
    assert none["total"] == 0

    for bad in ("0", "-1", "abc", "01"):
        r = requests.get(s.url + "/products", params={"page": bad}, headers=JSON)
        assert r.status_code == 400, bad


def test_search_html_escapes_the_query(shops):
    (s,) = shops(1)
    r = requests.get(s.url + "/products", params={"q": "oak"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert "Oak Desk Lamp" in r.text
    assert '/static/style.css' in r.text
    r = requests.get(s.url + "/products", params={"q": '<script>"x'})
    assert r.status_code == 200
    assert "<script>" not in r.text
    assert "&lt;script&gt;&quot;x" in r.text


def test_home_page(shops):
    (s,) = shops(1)
    r = requests.get(s.url + "/")
    assert r.status_code == 200
    assert 'href="/static/style.css"' in r.text
    assert 'action="/products"' in r.text
    assert 'href="/products/' in r.text
    assert 'href="/cart"' in r.text


def test_product_json_html_and_404(shops):
    (s,) = shops(1)
    r = requests.get(s.url + "/products/42", headers=JSON)
    assert r.status_code == 200
    p = r.json()
    assert p["id"] == 42 and p["price_cents"] > 0 and p["stock"] > 0
    r = requests.get(s.url + "/products/42")
    assert r.status_code == 200 and p["name"] in r.text
    assert 'action="/cart/items"' in r.text
    for bad in ("99999", "0", "abc", "01", "1x", "-3", "9999999999999999999999"):
        r = requests.get(s.url + "/products/" + bad)
        assert r.status_code == 404, bad
        assert len(r.content) < 4096
    r = requests.get(s.url + "/products/99999", headers=JSON)
    assert r.status_code == 404 and "error" in r.json()


def test_head_keeps_length_without_body(shops):
    (s,) = shops(1)
    get = requests.get(s.url + "/products/7")
    head = requests.head(s.url + "/products/7")
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["Content-Length"]) == len(get.content)


# --- static ----------------------------------------------------------------

def test_static_etag_304_and_cache_control(shops):
    (s,) = shops(1)
    for path, ctype in (("/static/style.css", "text/css"),
                        ("/static/img/17.svg", "image/svg+xml")):
        r = requests.get(s.url + path)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith(ctype)
        assert r.headers["Cache-Control"] == "public, max-age=3600"
        etag = r.headers["ETag"]
        assert etag.startswith('"') and etag.endswith('"')
        again = requests.get(s.url + path)
        assert again.headers["ETag"] == etag and again.content == r.content
        for inm in (etag, f'"nope", {etag}', "W/" + etag, "*"):
            r304 = requests.get(s.url + path, headers={"If-None-Match": inm})
            assert r304.status_code == 304, inm
            assert r304.content == b""
            assert r304.headers["ETag"] == etag
            assert r304.headers["X-Backend"] == s.name
        r = requests.get(s.url + path, headers={"If-None-Match": '"other"'})
        assert r.status_code == 200
    svg = requests.get(s.url + "/static/img/17.svg").text
    assert svg.startswith("<svg") and "</svg>" in svg
    assert requests.get(s.url + "/static/img/18.svg").headers["ETag"] != \
        requests.get(s.url + "/static/img/17.svg").headers["ETag"]
    for bad in ("/static/img/99999.svg", "/static/img/abc.svg", "/static/img/1.png",
                "/static/nope.css", "/static/"):
        assert requests.get(s.url + bad).status_code == 404, bad


# --- cart ------------------------------------------------------------------

def test_cart_cookie_is_shared_between_instances(shops):
    a, b = shops(2)
    sa = requests.Session()
    r = sa.post(a.url + "/cart/items", json={"product_id": 3, "qty": 2})
    assert r.status_code == 201
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("sk_session=")
    attrs = [x.strip() for x in cookie.split(";")]
    value = attrs[0].split("=", 1)[1]
    assert len(value) == 32 and all(c in "0123456789abcdef" for c in value)
    assert "HttpOnly" in attrs and "SameSite=Lax" in attrs and "Path=/" in attrs
    assert r.json()["items"][0]["qty"] == 2

    # The same cookie, another instance: the same cart; no new cookie.
    r = requests.get(b.url + "/cart", headers=JSON, cookies={"sk_session": value})
    assert r.status_code == 200
    assert "Set-Cookie" not in r.headers
    assert r.headers["X-Backend"] == b.name
    cart = r.json()
    price = requests.get(a.url + "/products/3", headers=JSON).json()["price_cents"]
    assert cart["items"] == [{"product_id": 3, "name": cart["items"][0]["name"],
                              "qty": 2, "price_cents": price}]
    assert cart["total_cents"] == 2 * price

    # A form post adds to the same line and redirects to the cart page.
    r = requests.post(b.url + "/cart/items", data={"product_id": "3", "qty": "1"},
                      cookies={"sk_session": value}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "/cart"
    r = requests.get(a.url + "/cart", cookies={"sk_session": value})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "Place order" in r.text
    assert requests.get(a.url + "/cart", headers=JSON,
                        cookies={"sk_session": value}).json()["items"][0]["qty"] == 3


def test_cart_validation(shops):
    (s,) = shops(1)
    url = s.url + "/cart/items"
    assert requests.post(url, json={"product_id": 99999, "qty": 1}).status_code == 404
    for body in ({"product_id": 1, "qty": 0}, {"product_id": 1, "qty": 101},
                 {"product_id": 1, "qty": "2"}, {"product_id": "x"}, [1, 2]):
        assert requests.post(url, json=body).status_code == 400, body
    assert requests.post(url, data=b"{nope", headers={
        "Content-Type": "application/json"}).status_code == 400
    assert requests.post(url, data={"product_id": "1", "qty": "0"}).status_code == 400
    assert requests.post(url, data={"qty": "1"}).status_code == 400
    assert requests.post(url, data=b"x", headers={
        "Content-Type": "text/plain"}).status_code == 415
    # A line may not grow past 100.
    sess = requests.Session()
    assert sess.post(url, json={"product_id": 1, "qty": 60}).status_code == 201
    assert sess.post(url, json={"product_id": 1, "qty": 60}).status_code == 400
    assert sess.get(s.url + "/cart", headers=JSON).json()["items"][0]["qty"] == 60


def test_new_visitor_gets_a_session_cookie_on_cart(shops):
    (s,) = shops(1)
    r = requests.get(s.url + "/cart", headers=JSON)
    assert r.status_code == 200
    assert r.json() == {"items": [], "total_cents": 0}
    assert r.headers["Set-Cookie"].startswith("sk_session=")
    # A malformed cookie is replaced, not trusted.
    r = requests.get(s.url + "/cart", cookies={"sk_session": "../../etc"})
    assert r.headers["Set-Cookie"].startswith("sk_session=")
    # Catalog pages stay cacheable: no cookie there.
    assert "Set-Cookie" not in requests.get(s.url + "/products").headers


# --- checkout --------------------------------------------------------------

def test_checkout_from_cart_creates_an_order(shops, tmp_path):
    a, b = shops(2)
    sess = requests.Session()
    stock_before = requests.get(a.url + "/products/11", headers=JSON).json()["stock"]
    assert sess.post(a.url + "/cart/items", json={"product_id": 11, "qty": 2}).status_code == 201
    assert sess.post(a.url + "/cart/items", json={"product_id": 12, "qty": 1}).status_code == 201
    cart = sess.get(a.url + "/cart", headers=JSON).json()

    r = sess.post(b.url + "/checkout")
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["total_cents"] == cart["total_cents"]
    assert [(i["product_id"], i["qty"]) for i in order["items"]] == [(11, 2), (12, 1)]
    assert r.headers["Location"] == f"/orders/{order['order_id']}"

    # The cart is cleared and the stock taken.
    assert sess.get(a.url + "/cart", headers=JSON).json()["items"] == []
    assert requests.get(b.url + "/products/11", headers=JSON).json()["stock"] == stock_before - 2

    # The order can be read from any instance, as JSON or HTML.
    r = requests.get(a.url + f"/orders/{order['order_id']}", headers=JSON)
    assert r.status_code == 200 and r.json() == order
    r = requests.get(a.url + f"/orders/{order['order_id']}")
    assert r.status_code == 200 and "Order" in r.text
    assert requests.get(a.url + "/orders/99999").status_code == 404
    assert requests.get(a.url + "/orders/x").status_code == 404

    # An empty cart has nothing to order.
    r = sess.post(b.url + "/checkout")
    assert r.status_code == 400
    assert requests.post(b.url + "/checkout").status_code == 400


def test_checkout_form_redirects_to_the_order(shops):
    (s,) = shops(1)
    sess = requests.Session()
    sess.post(s.url + "/cart/items", data={"product_id": "5", "qty": "1"},
              allow_redirects=False)
    r = sess.post(s.url + "/checkout", data={}, allow_redirects=False,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 303
    assert r.headers["Location"].startswith("/orders/")
    assert sess.get(s.url + r.headers["Location"]).status_code == 200


def test_idempotency_key_sequential_replay_and_mismatch(shops, tmp_path):
    a, b = shops(2)
    items = {"items": [{"product_id": 20, "qty": 1}, {"product_id": 7, "qty": 2}]}
    key = {"Idempotency-Key": "order-abc-123"}
    first = requests.post(a.url + "/checkout", json=items, headers=key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replay" not in first.headers
    second = requests.post(b.url + "/checkout", json=items, headers=key)
    assert second.status_code == 200
    assert second.headers["Idempotent-Replay"] == "true"
    assert second.content == first.content
    # The same items in another order and split differently are the same set.
    same = {"items": [{"product_id": 7, "qty": 1}, {"product_id": 20, "qty": 1},
                      {"product_id": 7, "qty": 1}]}
    r = requests.post(a.url + "/checkout", json=same, headers=key)
    assert r.status_code == 200 and r.json()["order_id"] == first.json()["order_id"]

    other = {"items": [{"product_id": 20, "qty": 2}]}
    r = requests.post(b.url + "/checkout", json=other, headers=key)
    assert r.status_code == 422
    n = db_rows(tmp_path / "shop.db", "SELECT count(*) FROM orders WHERE idem_key = ?",
                ("order-abc-123",))
    assert n == [(1,)]
    # Only one order's worth of stock was taken.
    qty = db_rows(tmp_path / "shop.db", "SELECT sum(qty) FROM order_items")
    assert qty == [(3,)]


def test_idempotency_key_concurrent_over_instances(shops, tmp_path):
    group = shops(3)
    items = {"items": [{"product_id": 33, "qty": 3}]}
    key = "concurrent-key-1"
    barrier = threading.Barrier(5)

    def attempt(i):
        s = group[i % len(group)]
        barrier.wait(10)
        return requests.post(s.url + "/checkout", json=items,
                             headers={"Idempotency-Key": key}, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(5) as ex:
        results = list(ex.map(attempt, range(5)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 200, 200, 201], [r.text for r in results]
    assert len({r.json()["order_id"] for r in results}) == 1
    assert db_rows(tmp_path / "shop.db", "SELECT count(*) FROM orders") == [(1,)]


def test_checkout_validation_and_insufficient_stock(shops, tmp_path):
    (s,) = shops(1)
    url = s.url + "/checkout"
    assert requests.post(url, json={"items": []}).status_code == 400
    assert requests.post(url, json={"items": [{"product_id": 1, "qty": 0}]}).status_code == 400
    assert requests.post(url, json={"nope": 1}).status_code == 400
    assert requests.post(url, json={"items": [{"product_id": 99999, "qty": 1}]}).status_code == 404
    assert requests.post(url, json={"items": [{"product_id": 1, "qty": 1}]},
                         headers={"Idempotency-Key": "x" * 201}).status_code == 400

    db_rows(tmp_path / "shop.db", "UPDATE products SET stock = 1 WHERE id = 9")
    r = requests.post(url, json={"items": [{"product_id": 8, "qty": 1},
                                           {"product_id": 9, "qty": 2}]},
                      headers={"Idempotency-Key": "short"})
    assert r.status_code == 409
    # Nothing of the failed order remains, and the key is still free.
    assert db_rows(tmp_path / "shop.db", "SELECT count(*) FROM orders") == [(0,)]
    assert db_rows(tmp_path / "shop.db", "SELECT stock FROM products WHERE id = 9") == [(1,)]
    r = requests.post(url, json={"items": [{"product_id": 9, "qty": 1}]},
                      headers={"Idempotency-Key": "short"})
    assert r.status_code == 201


# --- protocol --------------------------------------------------------------

def test_x_backend_on_every_response(shops):
    (s,) = shops(1)
    checks = [
        requests.get(s.url + "/"),
        requests.get(s.url + "/products", headers=JSON),
        requests.get(s.url + "/nope"),
        requests.get(s.url + "/products/0"),
        requests.delete(s.url + "/cart"),
        requests.post(s.url + "/cart/items", json={"product_id": 1, "qty": 0}),
        requests.get(s.url + "/healthz"),
        requests.get(s.url + "/static/style.css"),
    ]
    for r in checks:
        assert r.headers.get("X-Backend") == s.name, (r.url, r.status_code)
    sock = raw_conn(s.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
    status, headers, _, _ = read_response(sock)
    assert status == 400 and headers["x-backend"] == s.name
    sock.close()


def test_method_not_allowed_and_unknown_paths(shops):
    (s,) = shops(1)
    r = requests.post(s.url + "/products")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = requests.get(s.url + "/checkout")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.put(s.url + "/cart/items")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert requests.get(s.url + "/nowhere").status_code == 404
    assert requests.get(s.url + "/products/1/x").status_code == 404


def test_healthz(shops):
    (s,) = shops(1)
    r = requests.get(s.url + "/healthz")
    assert r.status_code == 200 and r.text == "ok\n"


def test_pipelined_requests_are_answered_in_order(shops):
    (s,) = shops(1)
    sock = raw_conn(s.port)
    sock.sendall(b"GET /products/1 HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n"
                 b"GET /products/2 HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n"
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st1, _, b1, rest = read_response(sock)
    st2, _, b2, rest = read_response(sock, rest)
    st3, h3, b3, rest = read_response(sock, rest)
    assert (st1, st2, st3) == (200, 200, 200)
    assert json.loads(b1)["id"] == 1 and json.loads(b2)["id"] == 2
    assert b3 == b"ok\n" and h3["connection"] == "close"
    assert rest == b"" and recv_all(sock) == b""
    sock.close()


def test_pipelining_client_that_does_not_read_is_throttled(shops):
    """Thousands of pipelined requests whose responses (megabytes) are read
    only after all were sent: the server stops reading while a response is
    pending instead of buffering, and answers every one, in order."""
    (s,) = shops(1)
    n = 2000
    names = {i: requests.get(f"{s.url}/products/{i}", headers=JSON).json()["name"]
             for i in range(1, 11)}
    sock = raw_conn(s.port)
    req = b"GET /static/img/%d.svg HTTP/1.1\r\nHost: x\r\n\r\n"
    payload = b"".join(req % (i % 10 + 1) for i in range(n))
    sender = threading.Thread(target=sock.sendall, args=(payload,))
    sender.start()
    rest = b""
    for i in range(n):
        status, _, body, rest = read_response(sock, rest)
        assert status == 200
        assert b">%s<" % names[i % 10 + 1].encode() in body, i
    sender.join(10)
    assert not sender.is_alive()
    sock.close()
    assert healthy(s)


def test_chunked_request_body(shops):
    (s,) = shops(1)
    body = json.dumps({"product_id": 4, "qty": 2}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 5]), body[i:i + 5])
                       for i in range(0, len(body), 5)) + b"0\r\n\r\n"
    sock = raw_conn(s.port)
    sock.sendall(b"POST /cart/items HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
                 b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + chunked +
                 b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, rbody, rest = read_response(sock)
    assert status == 201, rbody
    line = json.loads(rbody)["items"][0]
    assert (line["product_id"], line["qty"]) == (4, 2)
    status, _, rbody, _ = read_response(sock, rest)
    assert status == 200 and rbody == b"ok\n"
    sock.close()


def test_expect_100_continue(shops):
    (s,) = shops(1)
    body = json.dumps({"product_id": 4, "qty": 1}).encode()
    sock = raw_conn(s.port)
    sock.sendall(b"POST /cart/items HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
                 b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body))
    status, _, _, rest = read_response(sock)
    assert status == 100
    sock.sendall(body)
    status, _, _, _ = read_response(sock, rest)
    assert status == 201
    sock.close()


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"NOT A REQUEST\r\n\r\n",
    b"POST /cart/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["cl-and-te", "bare-lf", "no-host", "garbage", "bad-chunk"])
def test_malformed_request_gets_400_and_close(shops, raw):
    (s,) = shops(1)
    sock = raw_conn(s.port)
    sock.sendall(raw)
    status, headers, _, rest = read_response(sock)
    assert status == 400
    assert headers["connection"] == "close"
    assert rest + recv_all(sock) == b""
    sock.close()
    assert healthy(s)


def test_oversized_requests(shops):
    (s,) = shops(1)
    sock = raw_conn(s.port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    status, _, _, _ = read_response(sock)
    assert status == 431
    sock.close()
    sock = raw_conn(s.port)
    sock.sendall(b"POST /cart/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 999999999\r\n\r\n")
    status, headers, _, _ = read_response(sock)
    assert status == 413 and headers["connection"] == "close"
    sock.close()


def test_http10_and_keep_alive(shops):
    (s,) = shops(1)
    sock = raw_conn(s.port)
    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    status, headers, body, _ = read_response(sock)
    assert status == 200 and headers["connection"] == "close"
    assert recv_all(sock) == b""
    sock.close()
    # requests reuses one connection for all of these.
    sess = requests.Session()
    for _ in range(5):
        assert sess.get(s.url + "/healthz").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_sigterm_exits_zero_promptly(shops, sig):
    (s,) = shops(1)
    idle = raw_conn(s.port)  # an idle keep-alive connection must not delay exit
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(idle)
    t0 = time.monotonic()
    s.proc.p.send_signal(sig)
    wait_until(lambda: not s.proc.alive(), timeout=5, what="shop exit")
    assert s.proc.p.returncode == 0, s.proc.log()
    assert time.monotonic() - t0 < 5
    assert 'msg="shop stopped"' in s.proc.log()
    idle.close()


def test_slow_request_head_times_out(shops):
    """Slowloris: a head that never completes gets 408 at the header
    timeout (10 s by default), however the bytes trickle in."""
    (s,) = shops(1)
    sock = raw_conn(s.port)
    sock.settimeout(20)
    t0 = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    status, headers, _, rest = read_response(sock)
    took = time.monotonic() - t0
    assert status == 408 and headers["connection"] == "close"
    assert 8 < took < 15, took
    assert rest + recv_all(sock) == b""
    sock.close()
    assert healthy(s)


def test_unusable_database_fails_start(storekeep_bin, tmp_path):
    p = subprocess.run([storekeep_bin, "shop", "--listen", f"127.0.0.1:{free_port()}",
                        "--db", str(tmp_path / "missing" / "dir" / "x.db")],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stderr
    assert b"cannot open database" in p.stderr


def test_usage_errors_exit_2(storekeep_bin, tmp_path):
    cases = [
        ([], "--db"),
        (["--db"], "--db needs a value"),
        (["--db", str(tmp_path / "x.db"), "--bogus"], "--bogus"),
        (["--db", str(tmp_path / "x.db"), "--name", "a b"], "--name"),
        (["--db", str(tmp_path / "x.db"), "--listen", "nope"], None),
    ]
    for args, needle in cases:
        p = subprocess.run([storekeep_bin, "shop", *args], capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        if needle is None:
            # A bad address is not a usage error but a start-up failure.
            assert p.returncode == 1, (args, p.stderr)
            assert b"listen" in p.stderr
            continue
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert needle.encode() in p.stderr, (args, p.stderr)
