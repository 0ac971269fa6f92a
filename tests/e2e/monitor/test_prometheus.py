"""A real Prometheus (Debian's `prometheus` package) scrapes storekeep's
admin /metrics: the target is up, PromQL over the per-route latency
histogram and the request counters gives sane numbers, and `promtool
check metrics` accepts the exposition as it is.

Each test starts its own prometheus on a free loopback port with its
storage in tmp_path (never the packaged service) and stops it by PID.
Without the binary the tests skip, except under CI, where they fail.
"""
import math
import os
import shutil
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import Load, free_port, need, run_many, wait_port, wait_until

ROUTES = """routes:
  - name: shop
    path: /
    pool: shop"""

WARMUP = 300            # requests sent before prometheus starts
HIST = "storekeep_http_request_duration_seconds"
P99 = (f"histogram_quantile(0.99, sum by (le) "
       f"(rate({HIST}_bucket[15s])))")


def tool(name):
    """Path of a binary of the prometheus package; skip (fail under CI)
    when it is missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}"
                                  if os.path.exists(f"/usr/bin/{name}")
                                  else None)
    if path:
        return path
    need(False, f"{name} not found: install the Debian package "
         f"`prometheus` (scripts/deps.sh)")


def probes_yaml(tmp_path, origin_port):
    """A monitor section with one probe of each kind, so that their
    families are on /metrics too; the nagios plugin prints perf data with
    labels that need escaping."""
    db = tmp_path / "shop.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(x)")
    con.commit()
    con.close()
    plugin = tmp_path / "check_perf.sh"
    plugin.write_text("#!/bin/sh\n"
                      "echo \"WARNING - nearly full | 'used space'=81%;80;90;0;100 "
                      "'say \\\"hi\\\"'=3 time=0.25s;1;2 bytes=2048B\"\n"
                      "exit 1\n")
    plugin.chmod(0o755)
    lines = ["monitor:", "  probes:"]
    for name, kind, extra in (
            ("web", "http", [f"url: http://127.0.0.1:{origin_port}/healthz",
                             "body_contains: ok"]),
            ("port", "tcp", [f"address: 127.0.0.1:{origin_port}"]),
            ("db", "sqlite", [f"path: {db}"]),
            ("perf", "nagios", [f"command: [{plugin}]"])):
        lines += [f"    - name: {name}", f"      type: {kind}"]
        lines += [f"      {x}" for x in extra]
        lines += ["      interval: 200ms", "      timeout: 150ms"]
    return "\n".join(lines)


@pytest.fixture
def shop(origin, edge, tmp_path):
    """storekeep with an admin listener, one origin behind the route
    "shop", a probe of each kind, and WARMUP requests already through
    it."""
    op = origin("o1")
    e = edge([("b0", op)], routes=ROUTES, extra=probes_yaml(tmp_path, op))
    got = run_many(e.port, [("GET", f"/info?w={k}", None, None)
                            for k in range(WARMUP)], n=4)
    bad = [r for r in got if isinstance(r, Exception) or r.status != 200]
    assert not bad, bad[:3]
    return e


@pytest.fixture
def prometheus(procs, tmp_path):
    """start(admin_port) -> base URL of a prometheus scraping
    127.0.0.1:admin_port/metrics every second as job "storekeep"."""
    binary = tool("prometheus")

    def start(admin_port):
        port = free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text("\n".join([
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 1s",
            "  evaluation_interval: 1s",
            "scrape_configs:",
            "  - job_name: storekeep",
            "    metrics_path: /metrics",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{admin_port}']",
        ]) + "\n")
        pr = procs([binary, f"--config.file={cfg}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn"],
                   log_path=str(tmp_path / "prometheus.log"))
        wait_port(port, timeout=20, proc=pr)
        url = f"http://127.0.0.1:{port}"

        def ready():
            if not pr.alive():
                raise AssertionError(f"prometheus exited:\n{pr.log()[-3000:]}")
            try:
                return requests.get(url + "/-/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, timeout=20, interval=0.1, what="prometheus ready")
        return url

    return start


def query(url, expr):
    """The value of an instant query with one result, or None (no
    result yet, or several)."""
    r = requests.get(url + "/api/v1/query", params={"query": expr}, timeout=5)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    res = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        return float(res[1])
    if len(res) != 1:
        return None
    return float(res[0]["value"][1])


def storekeep_target(url):
    r = requests.get(url + "/api/v1/targets", timeout=5)
    r.raise_for_status()
    active = r.json()["data"]["activeTargets"]
    return next((t for t in active if t["labels"].get("job") == "storekeep"),
                None)


def sample(text, name, **labels):
    """The value of name{labels} in an exposition (labels in any order),
    or None."""
    want = sorted(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{"):
            lab, _, val = line.rpartition(" ")
            if sorted(lab[len(name) + 1:-1].split(",")) == want:
                return float(val)
    return None


def scraped(text, name):
    """An unlabelled sample's value in an exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_prometheus_scrapes_storekeep(shop, prometheus):
    e = shop
    t0 = time.monotonic()
    # Steady, modest traffic (a few hundred requests a second) so that
    # rate() over the histogram is not zero while prometheus warms up.
    load = Load(e.port, n=2)

    def paced(i, k):
        load.stop_ev.wait(0.005)
        return ("GET", f"/info?t={i}&k={k}", None, None)
    load.make = paced
    load.start()
    try:
        url = prometheus(e.admin_port)

        def target_up():
            t = storekeep_target(url)
            return t if t and t["health"] == "up" else None
        t = wait_until(target_up, timeout=15, interval=0.1,
                       what="the storekeep target up")
        assert t["lastError"] == "", t
        assert t["scrapeUrl"] == f"http://127.0.0.1:{e.admin_port}/metrics"

        def p99():
            v = query(url, P99)
            return v if v is not None and not math.isnan(v) else None
        v = wait_until(p99, timeout=15, interval=0.2,
                       what="a p99 of the route histogram from PromQL")
        assert math.isfinite(v) and 0 < v < 1.0, v

        assert query(url, 'up{job="storekeep"}') == 1
        # The per-route series carry the route and pool labels.
        assert query(url, f'sum(rate({HIST}_count{{route="shop",'
                          f'pool="shop"}}[15s]))') > 0

        # Counters: at least the warm-up, at most what storekeep counts now.
        reqs = query(url, "storekeep_http_requests_total")
        ok = query(url, 'storekeep_http_responses_total{class="2xx"}')
        hist_n = query(url, f'sum({HIST}_count{{route="shop"}})')
        now = scraped(requests.get(e.admin + "/metrics", timeout=5).text,
                      "storekeep_http_requests_total")
        for v in (reqs, ok, hist_n):
            assert v is not None and WARMUP <= v <= now, (v, WARMUP, now)
        # Same order of magnitude as the traffic the clients saw.
        sent = WARMUP + load.count()
        assert now <= sent + 2 * load.n, (now, sent)
        assert reqs >= now / 10, (reqs, now)
        assert not load.failures(), load.failures()[:3]
    finally:
        load.stop()
    assert time.monotonic() - t0 < 30


def test_metrics_pass_promtool(shop):
    promtool = tool("promtool")
    # Also some non-2xx responses, so every status class has a sample.
    run_many(shop.port, [("GET", "/status?code=404", None, None),
                         ("GET", "/status?code=503", None, None),
                         ("GET", "/status?code=302", None, None)], n=1)

    def metrics():
        return requests.get(shop.admin + "/metrics", timeout=5).text
    # Every probe has run (the nagios one with its perf data).
    wait_until(lambda: all(
        (sample(metrics(), "storekeep_probe_runs_total", probe=p, type=t,
                result=r) or 0) >= 1
        for p, t, r in (("web", "http", "ok"), ("port", "tcp", "ok"),
                        ("db", "sqlite", "ok"), ("perf", "nagios", "warning"))),
        timeout=10, interval=0.05, what="a run of every probe")
    body = metrics()
    assert f"{HIST}_bucket{{" in body
    assert 'storekeep_nagios_perf{' in body and r'label="say \"hi\""' in body
    p = subprocess.run([promtool, "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, (
        f"promtool check metrics exited {p.returncode}:\n"
        f"{p.stdout}{p.stderr}")
    assert p.stdout.strip() == "" and p.stderr.strip() == "", (
        p.stdout + p.stderr)
