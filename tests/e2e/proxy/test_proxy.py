"""The proxy's first slice, end to end: balancing, health, framing,
forwarded headers, error answers, smuggling, shutdown."""
import hashlib
import json
import os
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import free_port, recv_all, wait_until


def get(edge, path, **kw):
    return requests.get(edge.url + path, timeout=10, **kw)


def origin_stats(port):
    return requests.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()


def raw(port, data, timeout=5.0):
    """Sends data on a fresh connection; returns everything read until the
    peer closes or the timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            out += b
        return out
    finally:
        s.close()


def test_round_robin_spreads_evenly(origin, edge):
    ports = [origin(f"b{i}") for i in range(3)]
    e = edge([(f"b{i}", p) for i, p in enumerate(ports)])
    seen = {}
    with requests.Session() as s:
        for _ in range(300):
            r = s.get(e.url + "/", timeout=5)
            assert r.status_code == 200
            seen[r.headers["X-Backend"]] = seen.get(r.headers["X-Backend"], 0) + 1
    assert set(seen) == {"b0", "b1", "b2"}
    # Each worker rotates on its own, so allow a little slack.
    for n in seen.values():
        assert 80 <= n <= 120, seen


def test_weights_are_honoured(origin, edge):
    p1, p2 = origin("light"), origin("heavy")
    e = edge([("light", p1, 1), ("heavy", p2, 3)], workers=1)
    seen = {"light": 0, "heavy": 0}
    for _ in range(400):
        seen[get(e, "/").headers["X-Backend"]] += 1
    assert abs(seen["heavy"] / 400 - 0.75) < 0.05, seen


def test_forwarded_headers_and_hop_by_hop_removed(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)])
    r = get(e, "/info", headers={
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",  # a client's claim is not passed on
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "must not pass",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "X-Custom": "kept",
    })
    assert r.status_code == 200
    hdrs = {}
    for k, v in r.json()["headers"]:
        hdrs.setdefault(k.lower(), []).append(v)
    assert hdrs["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert hdrs["x-forwarded-proto"] == ["http"]
    assert hdrs["via"] == ["1.1 storekeep"]
    assert hdrs["x-custom"] == ["kept"]
    for hop in ("x-secret-hop", "keep-alive", "te", "connection"):
        assert hop not in hdrs, hop


def test_backend_connections_are_reused(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], workers=1, health={"enabled": "false"})
    with requests.Session() as s:
        for _ in range(50):
            assert s.get(e.url + "/", timeout=5).status_code == 200
    st = origin_stats(p)
    assert st["requests"] == 50
    # One pooled keep-alive connection serves them (stats has its own).
    assert st["connections"] <= 3, st


def test_large_request_body_arrives_intact(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)])
    body = os.urandom(6 * 1024 * 1024 + 123)
    r = requests.post(e.url + "/upload", data=body, timeout=30)
    assert r.status_code == 200
    assert r.json() == {"length": len(body),
                        "sha256": hashlib.sha256(body).hexdigest()}


def test_chunked_request_body_arrives_intact(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)])
    parts = [os.urandom(n) for n in (1, 1000, 65536, 300000, 7)]

    def gen():
        yield from parts

    r = requests.post(e.url + "/upload", data=gen(), timeout=30)
    whole = b"".join(parts)
    assert r.json() == {"length": len(whole),
                        "sha256": hashlib.sha256(whole).hexdigest()}


def test_chunked_response_arrives_intact(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)])
    r = get(e, "/chunked?n=200&size=5000")
    assert r.status_code == 200
    assert r.headers.get("Transfer-Encoding") == "chunked"
    expected = bytes(i % 251 for i in range(200 * 5000))
    assert r.content == expected


def test_http10_client_gets_chunked_response_decoded(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)])
    out = raw(e.port, b"GET /chunked?n=3&size=10 HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding" not in head.lower()
    assert body == bytes(i % 251 for i in range(30))


def test_smuggling_cl_te_rejected_and_nothing_reaches_backend(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], health={"enabled": "false"})
    before = origin_stats(p)["requests"]
    attack = (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /info HTTP/1.1\r\n"
              b"Host: x\r\n\r\n")
    out = raw(e.port, attack)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert b"connection: close" in out.lower()
    assert out.count(b"HTTP/1.1") == 1  # the smuggled request got nothing
    assert origin_stats(p)["requests"] == before


def test_bad_requests_get_clear_errors(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], health={"enabled": "false"})
    cases = [
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),                      # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"505"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", b"431"),
        (b"GET / HTTP/1.1\nHost: a\n\n", b"400"),                 # bare LF
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
         b"Content-Length: 2\r\n\r\nab", b"400"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         b"400"),
    ]
    for req, status in cases:
        out = raw(e.port, req)
        assert out.startswith(b"HTTP/1.1 " + status), (req[:60], out[:100])
    assert origin_stats(p)["requests"] == 0


def test_all_backends_down_is_503(origin, edge, procs):
    e = edge([("gone", free_port())], health={"interval": "200ms", "timeout": "100ms",
                                              "fall": 1})
    wait_until(lambda: e.backend_state("gone") == "down", 10, what="gone down")
    r = get(e, "/")
    assert r.status_code == 503
    assert "no backend" in r.text


def test_unreachable_backend_is_502_before_checks_notice(edge):
    e = edge([("gone", free_port())], health={"enabled": "false"})
    r = get(e, "/")
    assert r.status_code == 502
    assert "could be reached" in r.text


def test_connect_failure_retried_on_another_backend(origin, edge):
    p = origin("alive")
    e = edge([("dead", free_port()), ("alive", p)], health={"enabled": "false"})
    for _ in range(20):
        r = get(e, "/")
        assert r.status_code == 200
        assert r.headers["X-Backend"] == "alive"


def test_backend_timeout_is_504(origin, edge):
    p = origin("slow")
    e = edge([("slow", p)], health={"enabled": "false"},
             extra="timeouts:\n  backend_response: 300ms")
    t0 = time.monotonic()
    r = get(e, "/slow?ms=3000")
    assert r.status_code == 504
    assert time.monotonic() - t0 < 2.5


def test_killed_backend_taken_out_and_back(origin, edge, procs):
    ports = [origin(f"b{i}") for i in range(3)]
    e = edge([(f"b{i}", p) for i, p in enumerate(ports)])
    victim, vport = origin.started["b1"]
    victim.stop(signal.SIGKILL)
    wait_until(lambda: e.backend_state("b1") == "down", 10, what="b1 down")
    for _ in range(60):
        r = get(e, "/")
        assert r.status_code == 200
        assert r.headers["X-Backend"] != "b1"
    origin("b1", port=vport)
    wait_until(lambda: e.backend_state("b1") == "up", 10, what="b1 up")
    seen = {get(e, "/").headers["X-Backend"] for _ in range(60)}
    assert "b1" in seen


def test_failing_health_check_takes_backend_out(origin, edge):
    p0, p1 = origin("b0"), origin("b1")
    e = edge([("b0", p0), ("b1", p1)])
    requests.post(f"http://127.0.0.1:{p1}/health/down", timeout=5)
    wait_until(lambda: e.backend_state("b1") == "down", 10, what="b1 down")
    assert {get(e, "/").headers["X-Backend"] for _ in range(20)} == {"b0"}
    requests.post(f"http://127.0.0.1:{p1}/health/up", timeout=5)
    wait_until(lambda: e.backend_state("b1") == "up", 10, what="b1 up")


def test_pipelined_requests_answered_in_order(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)])
    reqs = b"".join(b"GET /info?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    s = socket.create_connection(("127.0.0.1", e.port), timeout=5)
    s.sendall(reqs + b"GET /info?n=last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = recv_all(s)
    s.close()
    bodies = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])
              for part in out.split(b"HTTP/1.1 200 OK")[1:]]
    assert [b["path"] for b in bodies] == [f"/info?n={i}" for i in range(5)] + ["/info?n=last"]


def test_slowloris_head_times_out(origin, edge):
    p = origin("b0")
    e = edge([("b0", p)], extra="timeouts:\n  client_header: 500ms")
    s = socket.create_connection(("127.0.0.1", e.port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    out = s.recv(4096)
    assert out.startswith(b"HTTP/1.1 408"), out
    assert time.monotonic() - t0 < 3
    s.close()


def test_silent_connection_takes_no_client_slot(origin, edge):
    """The listener defers accepting until a request's first bytes arrive
    (TCP_DEFER_ACCEPT): with one client slot, a connection that sends
    nothing does not take it, and still ends once the kernel hands it
    over (after about a second) and client_header runs out."""
    p = origin("b0")
    e = edge([("b0", p)], workers=1,
             extra="limits:\n  client_conns: 1\n"
                   "timeouts:\n  client_header: 300ms")

    def served(within):
        # With one slot, the connection wait_port() opened and closed may
        # still hold it for a moment: a refusal is retried, not a failure.
        end = time.monotonic() + within
        while True:
            try:
                return get(e, "/").status_code
            except requests.ConnectionError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)

    assert served(5) == 200
    silent = socket.create_connection(("127.0.0.1", e.port), timeout=10)
    try:
        t0 = time.monotonic()
        # Served before the kernel hands the silent one over (~1 s): it
        # never held the only slot.
        assert served(0.8) == 200
        assert time.monotonic() - t0 < 1.0
        out = recv_all(silent)
        waited = time.monotonic() - t0
        assert out == b"", out  # nothing was asked: closed, no 408
        assert waited < 9, f"silent connection still open after {waited:.1f}s"
    finally:
        silent.close()


def test_graceful_shutdown_finishes_in_flight_request(origin, edge):
    p = origin("slow")
    e = edge([("slow", p)], health={"enabled": "false"})
    result = {}

    def slow():
        result["r"] = requests.get(e.url + "/slow?ms=800", timeout=10)

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: e.status()["in_flight"] == 1, 5, what="request in flight")
    e.proc.send_signal(signal.SIGTERM)
    # New connections are refused at once...
    wait_until(lambda: _refused(e.port), 5, what="listener closed")
    t.join(10)
    # ...while the one in flight completes.
    assert result["r"].status_code == 200
    wait_until(lambda: not e.proc.alive(), 10, what="exit")
    assert e.proc.p.returncode == 0


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


def test_concurrent_load_no_errors(origin, edge):
    ports = [origin(f"b{i}") for i in range(2)]
    e = edge([(f"b{i}", p) for i, p in enumerate(ports)])
    errors = []

    def worker():
        with requests.Session() as s:
            for i in range(50):
                try:
                    r = s.get(e.url + f"/info?i={i}", timeout=10)
                    if r.status_code != 200:
                        errors.append(r.status_code)
                except Exception as ex:  # noqa: BLE001
                    errors.append(repr(ex))

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []
    assert e.status()["in_flight"] == 0


class CloseDelimited:
    """A backend whose responses have no length: the body ends when it
    closes the connection (HTTP/1.1 allows it). /healthz answers 200 with
    a Content-Length so the pool's checks pass."""

    def __init__(self, body):
        self.body = body
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _head(conn):
        """The request head read from conn, or None when it closed first."""
        head = b""
        while b"\r\n\r\n" not in head:
            d = conn.recv(4096)
            if not d:
                return None
            head += d
        return head

    def _one(self, conn):
        with conn:
            head = self._head(conn)
            if head is None:
                return
            if head.startswith(b"GET /healthz"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\nok")
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/"
                         b"octet-stream\r\n\r\n" + self.body)

    def close(self):
        self.sock.close()


def test_close_delimited_body_reaches_a_slow_client_whole(edge):
    """A body that ends with the backend's close, larger than the socket
    buffers, to a client that starts reading late (longer than
    backend_response): everything arrives. Reading from the backend
    pauses while the client is slow, and so does the backend's deadline;
    bytes read before the close go out after it."""
    body = os.urandom(24 << 20)
    be = CloseDelimited(body)
    try:
        e = edge([("cd", be.port)],
                 extra="timeouts:\n  backend_response: 1s")
        s = socket.create_connection(("127.0.0.1", e.port))
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(2.5)  # the proxy's writes back up; 1 s deadline passes
        s.settimeout(10)
        got = recv_all(s)
        s.close()
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        assert len(rest) == len(body)
        assert hashlib.sha256(rest).digest() == hashlib.sha256(body).digest()
    finally:
        be.close()


class RawHealth(CloseDelimited):
    """Answers /healthz with the given bytes, as they are."""

    def __init__(self, reply):
        self.reply = reply
        super().__init__(b"")

    def _one(self, conn):
        with conn:
            if self._head(conn) is not None:
                conn.sendall(self.reply)


@pytest.mark.parametrize("reply,up", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "up"),
    # An interim response is passed over: the final status counts.
    (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "up"),
    # Not a status line: a four-digit code, a missing reason separator.
    (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "down"),
    (b"HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n", "down"),
])
def test_health_check_reads_the_status_with_the_parser(edge, reply, up):
    be = RawHealth(reply)
    try:
        e = edge([("raw", be.port)])
        # Backends start up: the verdict is the checks' own, not the
        # state (a check that failed to parse would say "fail").
        want = "ok " if up == "up" else "fail "
        wait_until(lambda: e.backend("raw")["checks"]["last"].startswith(
            want), timeout=10, what=f"a check saying {want.strip()}")
        wait_until(lambda: e.backend_state("raw") == up, timeout=10,
                   what=f"backend {up}")
    finally:
        be.close()
