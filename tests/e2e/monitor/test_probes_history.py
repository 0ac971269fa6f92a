"""Probes and history in the running daemon: probe results on /metrics,
state changes as the origin's health changes, GET /api/v1/query over the
in-memory hour and over the SQLite file after a restart, and a hung
plugin that neither delays the other probes nor the shutdown.

The unit tests (tests/unit/monitor/test_probe*.c,
test_history.c) cover the module itself against real servers.
"""
import os
import sqlite3
import time

import requests

from conftest import need, wait_until

PLUGINS = "/usr/lib/nagios/plugins"


def monitor_yaml(tmp_path, origin_port, probes_extra="", history=True):
    db = tmp_path / "shop.db"
    if not db.exists():
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE t(x)")
        con.commit()
        con.close()
    lines = ["monitor:"]
    if history:
        lines += ["  history:", f"    path: {tmp_path / 'history.db'}"]
    lines += [
        "  probes:",
        "    - name: web",
        "      type: http",
        f"      url: http://127.0.0.1:{origin_port}/healthz",
        "      body_contains: ok",
        "      interval: 200ms",
        "      timeout: 150ms",
        "    - name: port",
        "      type: tcp",
        f"      address: 127.0.0.1:{origin_port}",
        "      interval: 200ms",
        "      timeout: 150ms",
        "    - name: db",
        "      type: sqlite",
        f"      path: {db}",
        "      interval: 300ms",
        "      timeout: 250ms",
    ]
    return "\n".join(lines) + ("\n" + probes_extra if probes_extra else "")


def metrics(e):
    return requests.get(e.admin + "/metrics", timeout=5).text


def need_probes(e):
    wait_until(lambda: "storekeep_probe_up{" in metrics(e), timeout=5,
               what="probe metrics")


def need_query(e):
    r = e.api("GET", "/api/v1/query", params={"metric": "storekeep_probe_up"})
    assert r.status_code == 200, r.text
    return r


def sample(text, name, **labels):
    """The value of name{labels} in an exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            lab, _, val = line.rpartition(" ")
            got = lab[len(name) + 1:-1].split(",")
            if sorted(got) == want.split(","):
                return float(val)
    return None


def test_probe_results_on_metrics(origin, edge, tmp_path):
    op = origin("o1")
    e = edge([("b0", op)], extra=monitor_yaml(tmp_path, op))
    need_probes(e)
    # Before its first run a probe is unknown (3), not ok.
    wait_until(lambda: all(
        sample(metrics(e), "storekeep_probe_runs_total", probe=p, type=t,
               result="ok") for p, t in (("web", "http"), ("port", "tcp"),
                                         ("db", "sqlite"))),
        what="a first run of each probe")
    text = metrics(e)
    assert sample(text, "storekeep_probe_up", probe="web", type="http") == 1
    assert sample(text, "storekeep_probe_up", probe="port", type="tcp") == 1
    assert sample(text, "storekeep_probe_state", probe="db", type="sqlite") == 0
    assert sample(text, "storekeep_sqlite_quick_check_ok", probe="db") == 1
    assert sample(text, "storekeep_probe_duration_seconds", probe="web",
                  type="http") < 0.15
    assert sample(text, "storekeep_probe_runs_total", probe="web",
                  type="http", result="ok") >= 1
    # The origin reports itself unhealthy: the probe turns critical,
    # then ok again.
    requests.post(f"http://127.0.0.1:{op}/health/down", timeout=5)
    wait_until(lambda: sample(metrics(e), "storekeep_probe_state",
                              probe="web", type="http") == 2,
               what="web critical")
    requests.post(f"http://127.0.0.1:{op}/health/up", timeout=5)
    wait_until(lambda: sample(metrics(e), "storekeep_probe_state",
                              probe="web", type="http") == 0, what="web ok")


def test_nagios_plugins_and_a_hung_one(origin, edge, tmp_path):
    need(os.path.exists(PLUGINS + "/check_dummy"),
         "monitoring-plugins-basic is not installed (scripts/deps.sh)")
    op = origin("o1")
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 60\n")
    hang.chmod(0o755)
    extra = "\n".join([
        "    - name: dummy",
        "      type: nagios",
        f"      command: [{PLUGINS}/check_dummy, '1', 'almost full']",
        "      interval: 300ms",
        "      timeout: 250ms",
        "    - name: tcpcheck",
        "      type: nagios",
        f"      command: [{PLUGINS}/check_tcp, -H, 127.0.0.1, -p, '{op}']",
        "      interval: 300ms",
        "      timeout: 250ms",
        "    - name: hung",
        "      type: nagios",
        f"      command: [{hang}]",
        "      interval: 2s",
        "      timeout: 500ms",
    ])
    e = edge([("b0", op)], extra=monitor_yaml(tmp_path, op, extra))
    need_probes(e)
    wait_until(lambda: sample(metrics(e), "storekeep_probe_state",
                              probe="hung", type="nagios") == 2,
               what="the hung plugin critical")
    text = metrics(e)
    assert sample(text, "storekeep_probe_state", probe="dummy",
                  type="nagios") == 1
    assert sample(text, "storekeep_probe_up", probe="tcpcheck",
                  type="nagios") == 1
    assert sample(text, "storekeep_nagios_perf", probe="tcpcheck",
                  label="time", uom="s") is not None
    # The fast probes kept running while the plugin hung.
    runs = sample(text, "storekeep_probe_runs_total", probe="port",
                  type="tcp", result="ok")
    time.sleep(1.0)
    assert sample(metrics(e), "storekeep_probe_runs_total", probe="port",
                  type="tcp", result="ok") >= runs + 3
    # A stop does not wait for the plugin (the fixture checks exit 0).
    t0 = time.monotonic()
    assert e.proc.stop() == 0
    assert time.monotonic() - t0 < 10


def test_query_memory_and_errors(origin, edge, tmp_path):
    op = origin("o1")
    e = edge([("b0", op)], extra=monitor_yaml(tmp_path, op))
    need_probes(e)
    need_query(e)
    time.sleep(4)
    # Within what memory holds since the start (a range reaching further
    # back would come from the minute rows).
    now = time.time()
    r = e.api("GET", "/api/v1/query", params={
        "metric": "storekeep_probe_up", "labels": "probe=web",
        "from": "-2", "to": f"{now:.3f}"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["source"] == "memory" and j["resolution"] == 1
    assert len(j["series"]) == 1
    s = j["series"][0]
    assert s["labels"] == {"probe": "web", "type": "http"}
    assert len(s["points"]) >= 2
    assert all(p[1] == 1 for p in s["points"])
    for bad in ({"metric": "no-such name"},
                {"metric": "storekeep_probe_up", "step": "1.5"},
                {"metric": "storekeep_probe_up", "labels": "a b=1"},
                {"metric": "storekeep_probe_up", "from": "2", "to": "1"}):
        r = e.api("GET", "/api/v1/query", params=bad)
        assert r.status_code == 400, (bad, r.text)
        assert "error" in r.json()


def test_history_survives_a_restart(origin, edge, tmp_path):
    op = origin("o1")
    e = edge([("b0", op)], extra=monitor_yaml(tmp_path, op))
    need_probes(e)
    need_query(e)
    time.sleep(3)
    before = time.time()
    assert e.proc.stop() == 0
    e2 = edge([("b0", op)], extra=monitor_yaml(tmp_path, op))
    need_probes(e2)
    # Older than what memory holds since the restart: minute rows from
    # the file, the minute of the restart included.
    r = e2.api("GET", "/api/v1/query", params={
        "metric": "storekeep_probe_up", "labels": "probe=port",
        "from": f"{before - 120:.0f}", "to": f"{time.time():.0f}"})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["source"] == "minute"
    pts = j["series"][0]["points"]
    assert pts and pts[0][0] <= before
    assert all(p[1] == 1 for p in pts)
    assert os.path.getsize(tmp_path / "history.db") > 0
