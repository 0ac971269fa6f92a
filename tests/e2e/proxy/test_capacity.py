"""Capacity end to end (issue 3): max_conns with a bounded queue and a
queue timeout (503 with Retry-After), and the backend keep-alive pool's
idle limit and idle timeout."""
import threading
import time

import pytest

from conftest import Client, origin_stats, run_many, wait_until


@pytest.mark.parametrize("where", ["pool", "backend"])
def test_max_conns_queue_all_succeed(origin, edge, where):
    p = origin("b0")
    if where == "pool":
        e = edge([("b0", p)], workers=1, health={"enabled": False},
                 pool_extra="    max_conns: 2\n    queue_timeout: 5s")
        limit = 2
    else:
        # A backend's own max_conns wins over the pool's.
        e = edge([{"name": "b0", "port": p, "max_conns": 1}], workers=1,
                 health={"enabled": False},
                 pool_extra="    max_conns: 4\n    queue_timeout: 5s")
        limit = 1
    n, ms = 20, 150 if limit == 2 else 80
    t0 = time.monotonic()
    rs = run_many(e.port, [("GET", f"/slow?ms={ms}", None, None)] * n, n=n,
                  timeout=20)
    took = time.monotonic() - t0
    st = origin_stats(p)
    codes = [r.status if not isinstance(r, Exception) else repr(r) for r in rs]
    print(f"\nmax_conns {limit} ({where}): {n} concurrent {ms} ms requests -> "
          f"{codes.count(200)} x 200 in {took:.2f}s; most at once on the "
          f"backend: {st['max_active']}")
    assert codes == [200] * n
    assert st["max_active"] == limit
    assert took >= n / limit * ms / 1000 * 0.9


def test_full_queue_answers_503_with_retry_after(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], workers=1, health={"enabled": False},
             pool_extra="    max_conns: 1\n    queue_size: 2\n    queue_timeout: 5s")
    out = {}

    def one(k):
        out[k] = Client(e.port, timeout=20).get(f"/slow?ms=500&k={k}")

    ts = []
    for k in range(3):  # one on the backend, two in the queue
        t = threading.Thread(target=one, args=(k,))
        t.start()
        ts.append(t)
        wait_until(lambda k=k: e.status()["in_flight"] == k + 1, 5,
                   what=f"{k + 1} requests in")
    t0 = time.monotonic()
    r = Client(e.port).get("/slow?ms=500&k=late")
    took = time.monotonic() - t0
    for t in ts:
        t.join(20)
    print(f"\nmax_conns 1, queue_size 2, 3 in: the 4th got {r.status} "
          f"Retry-After {r.headers.get('Retry-After')} in {took * 1000:.0f} ms; "
          f"the 3 others {[out[k].status for k in range(3)]}")
    assert r.status == 503
    assert r.headers.get("Retry-After", "").isdigit()
    assert "busy" in r.body.decode()
    assert took < 0.4
    assert [out[k].status for k in range(3)] == [200, 200, 200]
    assert origin_stats(p)["requests"] == 3


def test_queue_timeout_answers_503_with_retry_after(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], workers=1, health={"enabled": False},
             pool_extra="    max_conns: 1\n    queue_timeout: 300ms")
    first = {}
    t = threading.Thread(target=lambda: first.update(
        r=Client(e.port, timeout=20).get("/slow?ms=1500")))
    t.start()
    wait_until(lambda: e.status()["in_flight"] == 1, 5, what="first in flight")
    t0 = time.monotonic()
    r = Client(e.port).get("/info")
    took = time.monotonic() - t0
    t.join(20)
    print(f"\nqueue_timeout 300ms behind a 1.5 s request: {r.status} "
          f"Retry-After {r.headers.get('Retry-After')} after {took * 1000:.0f} ms")
    assert r.status == 503
    assert r.headers.get("Retry-After", "").isdigit()
    assert 0.25 <= took < 1.2
    assert first["r"].status == 200
    assert origin_stats(p)["paths"].get("/info", 0) == 0


def test_backend_keepalive_idle_limit_and_timeout(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], workers=1, health={"enabled": False},
             pool_extra="    keepalive_idle: 2\n    keepalive_timeout: 1500ms")
    # Five at once open five connections; two stay open after.
    rs = run_many(e.port, [("GET", "/slow?ms=200", None, None)] * 5, n=5)
    assert [r.status for r in rs] == [200] * 5
    # "open" counts the stats call's own connection too.
    wait_until(lambda: origin_stats(p)["open"] == 1 + 2, 5, what="two kept idle")
    conns = origin_stats(p)["connections"]
    c = Client(e.port)
    for i in range(10):
        assert c.get(f"/info?i={i}").status == 200
    t_last = time.monotonic()
    new = origin_stats(p)["connections"] - conns - 1
    # keepalive_timeout closes the idle ones.
    wait_until(lambda: origin_stats(p)["open"] == 1, 10, interval=0.05,
               what="idle backend connections closed")
    idle_for = time.monotonic() - t_last
    print(f"\nkeepalive_idle 2: after a burst of 5, 2 stayed open; 10 sequential "
          f"requests opened {new} new connections; the idle ones were closed "
          f"{idle_for:.2f}s after the last request (keepalive_timeout 1.5s)")
    assert new == 0
    assert 1.2 <= idle_for < 4


def test_keepalive_idle_zero_closes_each_connection(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], workers=1, health={"enabled": False},
             pool_extra="    keepalive_idle: 0")
    conns = origin_stats(p)["connections"]
    c = Client(e.port)
    for i in range(10):
        assert c.get(f"/info?i={i}").status == 200
    # Ten, and the second stats call's own.
    assert origin_stats(p)["connections"] - conns == 11
