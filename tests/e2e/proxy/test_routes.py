"""Routes end to end (issue 3): Host (exact and wildcard) and path prefix
to pools, first match wins, no match is 404; per-route timeouts."""
import socket
import time

from conftest import Client, origin_stats, recv_all

ROUTES = """routes:
  - name: api
    hosts: [api.example.com]
    pool: api
  - name: tenants
    hosts: ["*.shop.test"]
    pool: tenant
  - name: checkout
    path: /checkout
    pool: checkout
  - name: web
    hosts: [www.example.com, example.com]
    pool: web"""


def test_routes_by_host_and_path_first_match_wins(origin, edge):
    pools = ["web", "api", "checkout", "tenant"]
    ports = {p: origin(p + "1") for p in pools}
    e = edge([], pools=[{"name": p, "backends": [(p + "1", ports[p])],
                         "health": {"enabled": False}} for p in pools],
             routes=ROUTES)
    cases = [
        ("api.example.com", "/x", "api1"),
        ("API.Example.COM:8080", "/x", "api1"),      # case and port ignored
        ("api.example.com", "/checkout", "api1"),    # first match wins
        ("a.shop.test", "/", "tenant1"),
        ("a.b.shop.test", "/cart", "tenant1"),
        ("shop.test", "/", 404),                     # *.x needs a label before
        ("xshop.test", "/", 404),
        ("shop.test", "/checkout", "checkout1"),
        ("anything.org", "/checkout/pay", "checkout1"),
        ("anything.org", "/checkout?step=2", "checkout1"),
        ("anything.org", "/checkouts", 404),         # prefix on segments
        ("www.example.com", "/checkouts", "web1"),
        ("www.example.com", "/checkout", "checkout1"),
        ("example.com", "/", "web1"),
        ("other.org", "/", 404),
    ]
    c = Client(e.port)
    for host, path, want in cases:
        r = c.get(path, headers={"Host": host})
        got = r.status if r.status == 404 else r.backend
        assert got == want, (host, path, r.status, r.body[:100])
        if r.status == 404:
            assert r.backend is None and b"no route" in r.body
    routed = sum(origin_stats(p)["requests"] for p in ports.values())
    assert routed == sum(1 for *_, w in cases if w != 404)
    # The pools show up in the status, each with its backend.
    assert [p["name"] for p in e.status()["pools"]] == pools
    # An absolute-form target is routed on its path.
    s = socket.create_connection(("127.0.0.1", e.port), timeout=5)
    s.sendall(b"GET http://shop.test/checkout/x HTTP/1.1\r\nHost: shop.test\r\n"
              b"Connection: close\r\n\r\n")
    out = recv_all(s)
    s.close()
    assert out.startswith(b"HTTP/1.1 200") and b"X-Backend: checkout1" in out, out[:300]


def test_per_route_backend_response_and_request_timeouts(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], workers=1, health={"enabled": False},
             pool_extra="    passive:\n      failures: 0",
             extra="timeouts:\n  backend_response: 5s", routes="""routes:
  - name: quick
    path: /quick
    pool: shop
    retry:
      attempts: 0
    timeouts:
      backend_response: 200ms
  - name: bounded
    path: /bounded
    pool: shop
    retry:
      attempts: 0
    timeouts:
      request: 400ms
  - name: rest
    pool: shop""")
    c = Client(e.port)
    t0 = time.monotonic()
    r = c.get("/quick/slow?ms=1500")
    t_quick = time.monotonic() - t0
    assert r.status == 504 and b"did not answer in time" in r.body, r.body
    t0 = time.monotonic()
    r = Client(e.port).get("/bounded/slow?ms=1500")
    t_bounded = time.monotonic() - t0
    assert r.status == 504 and b"took too long" in r.body, r.body
    assert r.headers.get("Connection") == "close"
    t0 = time.monotonic()
    r = Client(e.port).get("/other/slow?ms=600")
    t_rest = time.monotonic() - t0
    print(f"\nper-route timeouts: backend_response 200ms -> 504 after "
          f"{t_quick * 1000:.0f} ms; request 400ms -> 504 after "
          f"{t_bounded * 1000:.0f} ms; a 600 ms answer on the default route: 200")
    assert r.status == 200
    assert 0.18 <= t_quick < 1.0
    assert 0.38 <= t_bounded < 1.2
    assert t_rest >= 0.55


def test_per_route_connect_timeout_then_retry_elsewhere(origin, edge, blackhole):
    pok = origin("ok")
    hang = blackhole(no_connect=True)
    e = edge([("hang", hang), ("ok", pok)], workers=1, health={"enabled": False},
             pool_extra="    passive:\n      failures: 0",
             extra="timeouts:\n  connect: 5s", routes="""routes:
  - name: fast
    pool: shop
    timeouts:
      connect: 200ms""")
    c = Client(e.port)
    times = []
    for i in range(4):
        t0 = time.monotonic()
        r = c.request("POST", f"/checkout?i={i}", b"{}")
        times.append(time.monotonic() - t0)
        assert (r.status, r.backend) == (200, "ok")
    print(f"\nroute connect timeout 200ms, one backend never completes the "
          f"handshake: 4 POSTs all 200 from the other, latencies "
          f"{[round(t * 1000) for t in times]} ms")
    assert sum(1 for t in times if t >= 0.18) == 2
    assert max(times) < 1.5
    assert origin_stats(pok)["methods"].get("POST") == 4
