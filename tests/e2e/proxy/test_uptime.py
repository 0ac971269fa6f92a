"""Uptime end to end (issue 3): backends killed, hung, drained, backed up,
ramped back and reloaded while clients keep sending requests. Each test
prints what it measured (e.g. failed 0 of N)."""
import json
import signal
import sqlite3
import threading
import time

import pytest
import requests

from conftest import (Client, Load, free_port, origin_ctl, origin_stats,
                      wait_port, wait_until)


def kill(origin, name):
    pr, port = origin.started[name]
    pr.stop(signal.SIGKILL)
    return port


def test_sigkill_one_of_three_under_get_load_no_request_fails(origin, edge):
    names = ["b0", "b1", "b2"]
    e = edge([(n, origin(n)) for n in names])
    load = Load(e.port, n=6).start()
    try:
        load.wait_more(300)
        t_kill = time.monotonic()
        kill(origin, "b1")
        wait_until(lambda: e.backend_state("b1") == "down", 10, what="b1 down")
        t_down = time.monotonic()
        load.wait_more(300)
    finally:
        results = load.stop()
    failed = load.failures()
    print(f"\nSIGKILL of 1 of 3 backends under 6 keep-alive GET clients: "
          f"failed {len(failed)} of {len(results)} requests; b1 marked down "
          f"{t_down - t_kill:.2f}s after the kill")
    assert failed == [], failed[:5]
    before = load.by_backend()
    assert before.get("b1", 0) > 0
    assert "b1" not in load.by_backend(since=t_down + 0.5)


# --- the real shop ------------------------------------------------------------

@pytest.fixture
def shop_procs(procs, storekeep_bin, tmp_path):
    """start(n) -> [(name, port)]: n `storekeep shop` instances on one
    database file (tmp_path/shop.db), each answering /healthz."""
    started = []

    def start(n):
        group = []
        for i in range(n):
            port = free_port()
            name = f"shop{i + 1}"
            pr = procs([storekeep_bin, "shop", "--listen", f"127.0.0.1:{port}",
                        "--db", tmp_path / "shop.db", "--name", name],
                       log_path=str(tmp_path / f"{name}.log"))
            group.append((name, port, pr))
        for name, port, pr in group:
            wait_port(port, timeout=30)
            wait_until(lambda port=port: requests.get(
                f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
                30, what=f"{name} healthy")
        started.extend(group)
        return group

    yield start
    for name, port, pr in started:
        if pr.alive():
            assert pr.stop() == 0, f"{name} did not exit 0:\n{pr.log()[-3000:]}"


def orders_by(db, column):
    with sqlite3.connect(str(db), timeout=30) as c:
        return dict(c.execute(f"SELECT {column}, count(*) FROM orders "
                              f"WHERE {column} IS NOT NULL GROUP BY {column}"))


def test_sigkill_shop_under_checkout_load_every_answer_definite_no_order_twice(
        shop_procs, edge, tmp_path):
    shops = shop_procs(3)
    e = edge([(name, port) for name, port, _ in shops])

    def make(i, k):
        # Half the checkouts carry an Idempotency-Key; the other half do
        # not, and are told apart by their own session cookie, so that an
        # order placed twice would show as two rows.
        body = json.dumps({"items": [{"product_id": (i * 37 + k) % 240 + 1,
                                      "qty": 1}]}).encode()
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if k % 2 == 0:
            h["Idempotency-Key"] = f"key-{i}-{k}"
        else:
            h["Cookie"] = f"sk_session={i:08x}{k:024x}"
        return ("POST", "/checkout", body, h)

    definite = (200, 201, 502, 503)
    load = Load(e.port, n=6, make=make, timeout=20, ok=definite).start()
    try:
        load.wait_more(100, timeout=60)
        victim = shops[1]
        victim[2].stop(signal.SIGKILL)
        wait_until(lambda: e.backend_state(victim[0]) == "down", 10,
                   what=f"{victim[0]} down")
        load.wait_more(100, timeout=60)
    finally:
        results = load.stop()
    statuses = {}
    for r in results:
        statuses[r[1]] = statuses.get(r[1], 0) + 1
    not_definite = load.failures()
    assert not_definite == [], not_definite[:5]

    # A client whose checkout got 502/503 tries again with the same key;
    # it must end with exactly one order.
    c = Client(e.port, timeout=20)
    retried = 0

    def placed(req):
        r = c.request(*req)
        assert r.status in (200, 201, 502, 503), (r.status, r.body)
        return r.status in (200, 201)

    for _, st, _, req, _ in results:
        if st in (502, 503) and "Idempotency-Key" in req[3]:
            retried += 1
            wait_until(lambda req=req: placed(req), 10, what="the retried order placed")

    by_key = orders_by(tmp_path / "shop.db", "idem_key")
    by_session = orders_by(tmp_path / "shop.db", "session")
    twice = {k: n for k, n in list(by_key.items()) + list(by_session.items()) if n > 1}
    keyed = [r for r in results if "Idempotency-Key" in r[3][3]]
    for _, st, _, req, _ in keyed:
        assert by_key.get(req[3]["Idempotency-Key"]) == 1, req
    for _, st, _, req, _ in results:
        if "Cookie" in req[3]:
            sess = req[3]["Cookie"].split("=", 1)[1]
            want = (1,) if st == 201 else (0, 1)
            assert by_session.get(sess, 0) in want, (st, sess)
    print(f"\nSIGKILL of 1 of 3 shops under 6 checkout clients: {len(results)} "
          f"checkouts, answers {statuses}, not definite {len(not_definite)}; "
          f"{retried} keyed retries all placed; orders existing twice: {len(twice)}")
    assert twice == {}


def test_idempotency_key_reaches_the_backend_once(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], health={"enabled": False}, routes="""routes:
  - name: checkout
    path: /checkout
    pool: shop
    idempotency:
      enabled: true
  - name: rest
    pool: shop""")
    body = b'{"items":[{"product_id":1,"qty":1}]}'

    def post(key):
        return Client(e.port, timeout=20).request(
            "POST", "/checkout", body,
            {"Idempotency-Key": key, "Content-Type": "application/json"})

    # Sequentially: the first is forwarded, the 4 repeats are replayed.
    seq = [post("pay-1") for _ in range(5)]
    assert [r.status for r in seq] == [200] * 5
    assert len({r.body for r in seq}) == 1  # the same order for all 5
    assert [r.headers.get("Idempotent-Replay") for r in seq] == [None] + ["true"] * 4
    assert origin_stats(p)["methods"].get("POST") == 1

    # Concurrently, while the first is still in flight (the backend takes
    # 400 ms): the others wait for its answer.
    origin_ctl(p, "/fail?mode=delay&ms=400")
    barrier = threading.Barrier(5)
    out = []

    def one():
        barrier.wait(10)
        out.append(post("pay-2"))

    ts = [threading.Thread(target=one) for _ in range(5)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    posts = origin_stats(p)["methods"].get("POST")
    print(f"\nidempotency at the edge: one key sent 5 times sequentially and 5 "
          f"times concurrently: answers {[r.status for r in seq + out]}, "
          f"{posts} POSTs reached the backend (one per key)")
    assert len(out) == 5 and [r.status for r in out] == [200] * 5
    # All 5 got the same order, another one than the first key's.
    assert len({r.body for r in out}) == 1 and out[0].body != seq[0].body
    assert sorted(r.headers.get("Idempotent-Replay") or "" for r in out) == \
        ["", "true", "true", "true", "true"]
    assert posts == 2


# --- a backend that hangs -------------------------------------------------------

def test_hung_backend_timed_out_ejected_and_its_gets_retried(origin, edge, blackhole):
    pa, pb = origin("a"), origin("b")
    hole = blackhole()
    e = edge([("a", pa), ("hole", hole), ("b", pb)], workers=1,
             health={"enabled": False},
             extra="timeouts:\n  backend_response: 300ms",
             pool_extra="    passive:\n      failures: 2\n      eject: 30s")
    c = Client(e.port)
    times = []
    for i in range(30):
        t0 = time.monotonic()
        r = c.get(f"/info?i={i}")
        times.append(time.monotonic() - t0)
        assert r.status == 200, (i, r.status, r.body)
        assert r.backend in ("a", "b")
    log = e.log()
    assert "backend ejected" in log and "backend=hole" in log
    slow = sum(1 for t in times if t >= 0.3)
    print(f"\nhung backend (accepts, never answers), backend_response 300ms, "
          f"passive.failures 2: 30 GETs all 200; {slow} waited for the timeout; "
          f"hole ejected; last 20 max latency {max(times[10:]) * 1000:.0f} ms")
    assert slow == 2
    assert max(times[10:]) < 0.3


def test_hung_backend_post_is_not_retried_and_gets_504(origin, edge, blackhole):
    pa = origin("a")
    hole = blackhole()
    e = edge([("a", pa), ("hole", hole)], workers=1, health={"enabled": False},
             extra="timeouts:\n  backend_response: 300ms",
             pool_extra="    passive:\n      failures: 0")
    statuses = []
    for i in range(4):
        r = Client(e.port).request("POST", f"/order?i={i}", b"{}",
                                   {"Content-Type": "application/json"})
        statuses.append((r.status, r.backend))
    got = sorted(s for s, _ in statuses)
    print(f"\nPOSTs over a good and a hung backend: {statuses}")
    assert got == [200, 200, 504, 504]
    assert origin_stats(pa)["methods"].get("POST") == 2


# --- passive ejection ---------------------------------------------------------

def test_passive_ejection_on_5xx_with_backoff(origin, edge):
    pg, pbad = origin("good"), origin("bad")
    origin_ctl(pbad, "/fail?mode=status&code=500")
    e = edge([("good", pg), ("bad", pbad)], workers=1, health={"enabled": False},
             pool_extra="    passive:\n      failures: 3\n      eject: 800ms\n"
                        "      max_eject: 5s")
    c = Client(e.port)
    first = [c.get(f"/info?i={i}") for i in range(30)]
    n500 = sum(1 for r in first if r.status == 500)
    assert n500 == 3, [(r.status, r.backend) for r in first]
    assert all(r.backend == "good" for r in first[10:])
    assert "eject_ms=800" in e.log()
    # The ejection ends; "bad" is tried again, fails 3 more times and goes
    # out for twice as long.
    wait_until(lambda: c.get("/info").backend == "bad", 5, what="bad tried again")

    def second_ejection():
        c.get("/info")
        return "eject_ms=1600" in e.log()

    wait_until(second_ejection, 5, what="second ejection, doubled")
    # Healthy again: it comes back and a success resets the backoff.
    origin_ctl(pbad, "/fail?mode=off")
    wait_until(lambda: c.get("/info").backend == "bad", 5, what="bad back")
    ejections = e.log().count("backend ejected")
    print(f"\npassive ejection: 3 of 30 requests saw the 500s before 'bad' went "
          f"out; {ejections} ejections (800 ms, then 1600 ms); back after recovery")
    assert ejections == 2


# --- active checks: method and status range ----------------------------------

def test_health_check_method_and_status_range(origin, edge):
    pa, pb = origin("a1"), origin("b1")
    check = {"method": "HEAD", "status_min": 200, "status_max": 204,
             "interval": "100ms", "timeout": "80ms"}
    e = edge([], pools=[
        {"name": "a", "backends": [("a1", pa)],
         "health": dict(check, path="/status?code=204")},
        {"name": "b", "backends": [("b1", pb)],
         "health": dict(check, path="/status?code=299")}])
    wait_until(lambda: e.backend_state("b1", "b") == "down", 10, what="b1 down")
    a1 = e.backend("a1", "a")
    assert a1["state"] == "up" and a1["checks"]["failed"] == 0, a1
    assert a1["checks"]["ok"] >= 2
    assert "299" in e.backend("b1", "b")["checks"]["last"]
    sa = origin_stats(pa)
    assert sa["methods"].get("HEAD", 0) >= 2 and "GET" not in sa["methods"], sa
    print(f"\nhealth HEAD, status 200..204: 204 passes ({a1['checks']['ok']} ok), "
          f"299 fails (b1 down)")


# --- drain, weight, backup, slow start -----------------------------------------

def test_drain_no_new_requests_in_flight_ones_finish(origin, edge):
    p0, p1 = origin("b0"), origin("b1")
    e = edge([("b0", p0), ("b1", p1)], workers=1)
    slow = []
    ts = [threading.Thread(target=lambda: slow.append(
        Client(e.port, timeout=20).get("/slow?ms=1500"))) for _ in range(2)]
    for k, t in enumerate(ts):
        t.start()
        wait_until(lambda k=k: e.status()["in_flight"] == k + 1, 5, what="in flight")
    assert e.backend("b0")["in_flight"] == 1
    r = e.api("POST", "/api/v1/pools/shop/backends/b0/drain")
    assert r.status_code == 200, r.text
    origin_ctl(p0, "/stats/reset")
    c = Client(e.port)
    seen = {}
    for i in range(30):
        r = c.get(f"/info?i={i}")
        assert r.status == 200
        seen[r.backend] = seen.get(r.backend, 0) + 1
    for t in ts:
        t.join(20)
    print(f"\ndrain b0 with 1 request in flight on it: 30 new requests went {seen}; "
          f"in-flight ones ended {[(r.status, r.backend) for r in slow]}")
    assert seen == {"b1": 30}
    assert origin_stats(p0)["paths"].get("/info", 0) == 0  # health checks go on
    assert sorted((r.status, r.backend) for r in slow) == [(200, "b0"), (200, "b1")]
    r = e.api("POST", "/api/v1/pools/shop/backends/b0/enable")
    assert r.status_code == 200, r.text
    assert {c.get("/info").backend for _ in range(10)} == {"b0", "b1"}


def test_set_weight_through_the_admin_api(origin, edge):
    e = edge([("b0", origin("b0")), ("b1", origin("b1"))], workers=1)
    r = e.api("PUT", "/api/v1/pools/shop/backends/b0/weight", json={"weight": 4})
    assert r.status_code == 200, r.text
    assert e.backend("b0")["weight"] == 4
    c = Client(e.port)
    seen = {}
    for i in range(100):
        b = c.get("/info").backend
        seen[b] = seen.get(b, 0) + 1
    print(f"\nweight of b0 set to 4 (b1 1): {seen}")
    assert seen == {"b0": 80, "b1": 20}
    r = e.api("PUT", "/api/v1/pools/shop/backends/b0/weight", json={"weight": 0})
    assert r.status_code in (200, 400), r.text
    r = e.api("PUT", "/api/v1/pools/shop/backends/nope/weight", json={"weight": 2})
    assert r.status_code == 404


def test_backup_used_only_when_all_primaries_are_down(origin, edge):
    p0, p1, pk = origin("p0"), origin("p1"), origin("spare")
    e = edge([("p0", p0), ("p1", p1), {"name": "spare", "port": pk, "backup": True}])
    c = Client(e.port)
    seen = {c.get("/info").backend for _ in range(40)}
    assert seen == {"p0", "p1"}
    origin_ctl(p0, "/health/down")
    wait_until(lambda: e.backend_state("p0") == "down", 10, what="p0 down")
    seen = {c.get("/info").backend for _ in range(20)}
    assert seen == {"p1"}, "the backup took traffic while a primary was up"
    origin_ctl(p1, "/health/down")
    wait_until(lambda: e.backend_state("p1") == "down", 10, what="p1 down")
    rs = [c.get("/info") for _ in range(20)]
    assert {(r.status, r.backend) for r in rs} == {(200, "spare")}
    origin_ctl(p1, "/health/up")
    wait_until(lambda: e.backend_state("p1") == "up", 10, what="p1 up")
    seen = {c.get("/info").backend for _ in range(20)}
    assert seen == {"p1"}
    print("\nbackup: 0 requests while a primary was up, all 20 while none was, "
          "0 again once p1 came back")


def test_slow_start_ramps_a_recovered_backend(origin, edge):
    p0, p1 = origin("b0"), origin("b1")
    window = 3.0
    e = edge([("b0", p0), ("b1", p1)], workers=1,
             pool_extra=f"    slow_start: {int(window * 1000)}ms")
    origin_ctl(p1, "/health/down")
    wait_until(lambda: e.backend_state("b1") == "down", 10, what="b1 down")
    origin_ctl(p1, "/health/up")
    wait_until(lambda: e.backend_state("b1") == "up", 10, interval=0.005,
               what="b1 up")
    t0 = time.monotonic()
    load = Load(e.port, n=2).start()
    try:
        wait_until(lambda: time.monotonic() - t0 > window + 0.5, window + 5,
                   what="the slow-start window")
    finally:
        load.stop()
    assert load.failures() == []
    thirds = []
    for lo, hi in ((0, 1), (1, 2), (2, 3)):
        part = [r for r in load.results
                if t0 + lo * window / 3 <= r[0] < t0 + hi * window / 3]
        thirds.append((sum(1 for r in part if r[2] == "b1") / max(1, len(part)),
                       len(part)))
    after = [r for r in load.results if r[0] >= t0 + window + 0.1]
    share_after = sum(1 for r in after if r[2] == "b1") / max(1, len(after))
    print(f"\nslow start {window:.0f}s: b1's share by third of the window "
          + ", ".join(f"{s:.0%} of {n}" for s, n in thirds)
          + f"; after it {share_after:.0%} of {len(after)}")
    assert all(n >= 30 for _, n in thirds), thirds
    assert thirds[0][0] < 0.3
    assert thirds[0][0] < thirds[2][0] - 0.1
    assert thirds[2][0] > 0.3


# --- reload ------------------------------------------------------------------------

def test_reload_under_load_zero_failures_and_invalid_reload_changes_nothing(
        origin, edge):
    ports = {n: origin(n) for n in ("b0", "b1", "b2", "b3")}
    e = edge([("b0", ports["b0"]), ("b1", ports["b1"]), ("b2", ports["b2"])])
    wait_until(lambda: e.backend("b0")["checks"]["ok"] >= 2, 10, what="checks")
    load = Load(e.port, n=4).start()
    try:
        load.wait_more(200)
        checks_before = e.backend("b0")["checks"]["ok"]
        # Weights changed, b3 added, b1 removed.
        e.rewrite([("b0", ports["b0"], 3), ("b2", ports["b2"], 1),
                   ("b3", ports["b3"], 1)])
        e.reload()
        wait_until(lambda: [b["name"] for b in e.pool()["backends"]] ==
                   ["b0", "b2", "b3"], 10, what="the new config in force")
        t_new = time.monotonic()
        wait_until(lambda: sum(load.by_backend(since=t_new + 0.2).values()) >= 500,
                   20, what="500 requests on the new config")
    finally:
        results = load.stop()
    failed = load.failures()
    after = load.by_backend(since=t_new + 0.2)
    n_after = sum(after.values())
    print(f"\nreload under 4 keep-alive clients (weights 1:1:1 -> 3:1:1, b3 added, "
          f"b1 removed): failed {len(failed)} of {len(results)}; after it {after}")
    assert failed == [], failed[:5]
    assert "b1" not in after
    assert abs(after.get("b0", 0) / n_after - 0.6) < 0.1, after
    assert after.get("b3", 0) > 0
    assert e.backend("b0")["weight"] == 3
    # The unchanged backend kept its health state and counters.
    assert e.backend("b0")["checks"]["ok"] >= checks_before

    # An invalid file changes nothing: the old config keeps serving.
    with open(e.cfg_path) as f:
        good = f.read()
    with open(e.cfg_path, "w") as f:
        f.write(good.replace("weight: 3", "weight: heavy"))
    e.reload()
    wait_until(lambda: "reload refused" in e.log(), 10, what="the refusal logged")
    pool = e.pool()
    assert [(b["name"], b["weight"]) for b in pool["backends"]] == \
        [("b0", 3), ("b2", 1), ("b3", 1)]
    c = Client(e.port)
    seen = {}
    for _ in range(50):
        r = c.get("/info")
        assert r.status == 200
        seen[r.backend] = seen.get(r.backend, 0) + 1
    assert seen == {"b0": 30, "b2": 10, "b3": 10}
    refusal = [ln for ln in e.log().splitlines() if "reload refused" in ln][-1]
    assert "storekeep.yaml:" in refusal and "weight" in refusal, refusal
    with open(e.cfg_path, "w") as f:
        f.write(good)


def test_reload_through_the_admin_api(origin, edge):
    p0, p1 = origin("b0"), origin("b1")
    e = edge([("b0", p0)])
    e.rewrite([("b0", p0), ("b1", p1)])
    with open(e.cfg_path) as f:
        good = f.read()
    with open(e.cfg_path, "w") as f:
        f.write(good.replace("    backends:", "    bogus: 1\n    backends:"))
    r = e.api("POST", "/api/v1/reload")
    assert r.status_code >= 400, r.text
    assert "bogus" in r.text
    assert [b["name"] for b in e.pool()["backends"]] == ["b0"]
    with open(e.cfg_path, "w") as f:
        f.write(good)
    r = e.api("POST", "/api/v1/reload")
    assert r.status_code == 200, r.text
    assert [b["name"] for b in e.pool()["backends"]] == ["b0", "b1"]
    c = Client(e.port)
    assert {c.get("/info").backend for _ in range(10)} == {"b0", "b1"}
