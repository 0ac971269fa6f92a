"""The access log end to end (issue 3): one line per request, JSON or
combined, with route, pool, backend, status, durations and retries;
anonymize_ip keeps only a prefix of the client address; SIGUSR1 reopens
the file after rotation."""
import json
import os
import re
import signal

import pytest

from conftest import Client, origin_ctl, wait_until

KEYS = ["ts", "client", "method", "target", "proto", "status", "bytes_sent",
        "bytes_received", "host", "referer", "user_agent", "route", "pool",
        "backend", "total_ms", "upstream_ms", "retries"]


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [ln for ln in f.read().decode().split("\n") if ln]


def wait_lines(path, n, timeout=10):
    """The log is written in batches (at the latest every second)."""
    return wait_until(lambda: len(read_lines(path)) >= n and read_lines(path),
                      timeout, what=f"{n} access log lines")


def two_pools(origin):
    pm, pok, pbad = origin("m1"), origin("ok2"), origin("bad2")
    origin_ctl(pbad, "/fail?mode=status&code=503")
    return [{"name": "main", "backends": [("m1", pm)]},
            {"name": "flaky", "backends": [("bad2", pbad), ("ok2", pok)],
             "health": {"enabled": False},
             "extra": "    passive:\n      failures: 0"}]


ROUTES = """routes:
  - name: retrying
    path: /r
    pool: flaky
    retry:
      on_status: [503]
  - name: web
    hosts: [www.example.com]
    pool: main"""


def test_json_lines_have_route_pool_backend_status_retries(origin, edge, tmp_path):
    log = tmp_path / "access.log"
    e = edge([], pools=two_pools(origin), routes=ROUTES, workers=1,
             extra="access_log:\n  path: access.log\n  format: json")
    c = Client(e.port)
    r = c.get("/info?a=1", headers={"Host": "www.example.com",
                                     "User-Agent": "e2e/1.0",
                                     "Referer": "http://www.example.com/"})
    assert r.status == 200
    assert c.get("/nowhere", headers={"Host": "other.org"}).status == 404
    assert c.get("/r/1").status == 200
    assert c.get("/r/2").status == 200
    lines = wait_lines(log, 4)
    recs = [json.loads(ln) for ln in lines]
    for rec in recs:
        assert list(rec) == KEYS, rec
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", rec["ts"])
        assert rec["client"] == "127.0.0.1"
        assert rec["proto"] == "HTTP/1.1"
        assert rec["total_ms"] >= 0
    web, miss, r1, r2 = recs
    assert (web["route"], web["pool"], web["backend"], web["status"], web["retries"]) \
        == ("web", "main", "m1", 200, 0)
    assert (web["method"], web["target"], web["host"], web["user_agent"],
            web["referer"]) == ("GET", "/info?a=1", "www.example.com", "e2e/1.0",
                                "http://www.example.com/")
    assert web["upstream_ms"] is not None and web["upstream_ms"] <= web["total_ms"]
    assert web["bytes_sent"] > len(r.body) and web["bytes_received"] > 0
    assert (miss["route"], miss["pool"], miss["backend"], miss["status"],
            miss["upstream_ms"]) == (None, None, None, 404, None)
    # One of the two went to the 503 backend first and was retried.
    assert sorted((x["route"], x["pool"], x["backend"], x["status"], x["retries"])
                  for x in (r1, r2)) == [("retrying", "flaky", "ok2", 200, 0),
                                         ("retrying", "flaky", "ok2", 200, 1)]
    print("\naccess log (json):\n  " + "\n  ".join(lines))


def test_combined_format(origin, edge, tmp_path):
    log = tmp_path / "access.log"
    e = edge([], pools=two_pools(origin), routes=ROUTES, workers=1,
             extra="access_log:\n  path: access.log\n  format: combined")
    c = Client(e.port)
    c.get("/info", headers={"Host": "www.example.com", "User-Agent": "e2e agent"})
    c.get("/x", headers={"Host": "other.org"})
    web, miss = wait_lines(log, 2)
    assert re.match(
        r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
        r'"GET /info HTTP/1\.1" 200 \d+ "-" "e2e agent" route=web pool=main '
        r'backend=m1 total_ms=\d+\.\d{3} upstream_ms=\d+\.\d{3} retries=0$', web), web
    assert re.match(r'^127\.0\.0\.1 - - \[.*\] "GET /x HTTP/1\.1" 404 \d+ "-" "[^"]*" '
                    r'route=- pool=- backend=- total_ms=\d+\.\d{3} upstream_ms=- '
                    r'retries=0$', miss), miss


@pytest.mark.parametrize("prefix,want", [(None, "127.1.2.0"), (16, "127.1.0.0"),
                                         (32, "127.1.2.3")])
def test_anonymize_ipv4(origin, edge, tmp_path, prefix, want):
    log = tmp_path / "access.log"
    extra = "access_log:\n  path: access.log\n  anonymize_ip: true"
    if prefix is not None:
        extra += f"\n  ipv4_prefix: {prefix}"
    e = edge([("b0", origin("b0"))], extra=extra)
    c = Client(e.port, source="127.1.2.3")
    assert c.get("/info").status == 200
    assert c.get("/info", headers={"User-Agent": "127.1.2.3"}).status == 200
    lines = wait_lines(log, 2)
    recs = [json.loads(ln) for ln in lines]
    assert [r["client"] for r in recs] == [want, want]
    if want != "127.1.2.3":
        # Nowhere in the line but where the client itself put it.
        assert "127.1.2.3" not in lines[0]


@pytest.mark.parametrize("prefix,want", [(None, "::"), (128, "::1")])
def test_anonymize_ipv6(origin, edge, tmp_path, prefix, want):
    log = tmp_path / "access.log"
    extra = "access_log:\n  path: access.log\n  anonymize_ip: true"
    if prefix is not None:
        extra += f"\n  ipv6_prefix: {prefix}"
    e = edge([("b0", origin("b0"))], extra=extra, listen_host="::1")
    c = Client(e.port, host="::1")
    assert c.get("/info").status == 200
    (line,) = wait_lines(log, 1)
    assert json.loads(line)["client"] == want


def test_sigusr1_reopens_the_access_log_after_rotation(origin, edge, tmp_path):
    log = tmp_path / "access.log"
    e = edge([("b0", origin("b0"))], workers=1,
             extra="access_log:\n  path: access.log")
    c = Client(e.port)
    c.get("/before")
    wait_lines(log, 1)
    os.rename(log, tmp_path / "access.log.1")
    e.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: "log reopened" in e.log(), 5, what="the reopen logged")
    c.get("/after")
    lines = wait_lines(log, 1, timeout=5)
    assert json.loads(lines[0])["target"] == "/after"
    assert len(read_lines(tmp_path / "access.log.1")) == 1
