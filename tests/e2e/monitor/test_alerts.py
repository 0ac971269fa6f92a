"""Alert rules in the running daemon, with real receivers on loopback.

A probe of the origin's /healthz feeds a rule; the origin is switched
down and up, and the test watches the alert go pending -> firing ->
resolved, and each notifier deliver it: a webhook receiver here, an SMTP
sink (aiosmtpd, Debian's python3-aiosmtpd), a command (the JSON on its
stdin) and a real Alertmanager (Debian's prometheus-alertmanager) through
its v2 API. Then: silences through the API and `storekeep ctl silence`,
alert state kept across a restart (no second page), a failing notifier
visible in /api/v1/alerts, a PostgreSQL probe's built-in alert when the
server stops, and config errors with file:line.
"""
import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import BIN, free_port, need, wait_port, wait_until

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


# --- receivers ---------------------------------------------------------------

class Hook:
    """A webhook receiver: keeps every JSON body POSTed to it."""

    def __init__(self, status=200):
        self.bodies = []
        self.status = status
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(n)
                hook.bodies.append(json.loads(data))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def alerts(self, status=None, name=None):
        out = []
        for b in list(self.bodies):
            for a in b.get("alerts", []):
                if (status is None or a["status"] == status) and \
                        (name is None or a["name"] == name):
                    out.append(a)
        return out

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.mails = []

        async def handle_DATA(self, server, session, envelope):
            self.mails.append((envelope.mail_from, envelope.rcpt_tos,
                               envelope.content.decode("utf-8", "replace")))
            return "250 OK"

    sink = Sink()
    port = free_port()
    c = Controller(sink, hostname="127.0.0.1", port=port)
    c.start()
    sink.port = port
    yield sink
    c.stop()


@pytest.fixture
def alertmanager(tmp_path):
    need(os.path.exists(ALERTMANAGER),
         "prometheus-alertmanager is not installed (scripts/deps.sh)")
    d = tmp_path / "am"
    d.mkdir()
    (d / "am.yml").write_text(
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port = free_port()
    p = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={d / 'am.yml'}",
         f"--storage.path={d / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", "--log.level=warn"],
        stdout=open(d / "am.log", "w"), stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def ready():
            assert p.poll() is None, (d / "am.log").read_text()
            try:
                return requests.get(url + "/-/ready", timeout=1).ok
            except requests.RequestException:
                return False
        wait_until(ready, timeout=20, what="alertmanager ready")
        yield url
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# --- config ------------------------------------------------------------------

def alerts_yaml(tmp_path, origin_port, notifiers="", rules=None,
                defaults=None, probes_extra=""):
    """monitor: with a 200 ms probe of the origin, 1 s evaluations, the
    noisy host rules off, and a rule WebDown on the probe."""
    d = {"HostCPUHigh": "{enabled: false}",
         "HostMemoryLow": "{enabled: false}",
         "DiskSpaceLow": "{enabled: false}",
         "DiskFullPredicted": "{enabled: false}",
         "ProbeCritical": "{enabled: false}"}
    d.update(defaults or {})
    if rules is None:
        rules = "\n".join([
            "      - name: WebDown",
            "        expr: 'storekeep_probe_up{probe=\"web\"}'",
            "        function: max",
            "        window: 1s",
            "        op: '=='",
            "        threshold: 0",
            "        for: 2s",
            "        severity: critical",
            "        summary: 'probe {{probe}} is down'",
        ])
    lines = [
        "monitor:",
        "  history:",
        f"    path: {tmp_path / 'history.db'}",
        "  probes:",
        "    - name: web",
        "      type: http",
        f"      url: http://127.0.0.1:{origin_port}/healthz",
        "      interval: 200ms",
        "      timeout: 150ms",
    ]
    if probes_extra:
        lines.append(probes_extra)
    lines += [
        "  alerts:",
        "    interval: 1s",
        f"    state_path: {tmp_path / 'alerts.json'}",
        "    defaults:",
    ]
    lines += [f"      {k}: {v}" for k, v in d.items()]
    lines += ["    rules:", rules]
    if notifiers:
        lines += ["    notifiers:", notifiers]
    return "\n".join(lines)


def webhook_yaml(name, url, extra=()):
    return "\n".join([f"      - name: {name}", "        type: webhook",
                      f"        url: {url}", "        backoff: 200ms"] +
                     [f"        {x}" for x in extra])


def alerts(e):
    r = e.api("GET", "/api/v1/alerts")
    assert r.status_code == 200, r.text
    return r.json()


def alert_state(e, name):
    for a in alerts(e)["alerts"]:
        if a["name"] == name:
            return a["state"]
    return None


def down(port):
    requests.post(f"http://127.0.0.1:{port}/health/down", timeout=5)


def up(port):
    requests.post(f"http://127.0.0.1:{port}/health/up", timeout=5)


def ctl(e, *args):
    return subprocess.run([BIN, "ctl", "-c", e.cfg_path, *args],
                          capture_output=True, text=True, timeout=30)


# --- tests -------------------------------------------------------------------

def test_rule_fires_and_resolves_through_every_notifier(
        origin, edge, tmp_path, hook, smtp, alertmanager):
    op = origin("o1")
    outdir = tmp_path / "cmd-out"
    outdir.mkdir()
    notifiers = "\n".join([
        webhook_yaml("hook", hook.url),
        "      - name: mail",
        "        type: email",
        f"        url: smtp://127.0.0.1:{smtp.port}",
        "        tls: none",
        "        from: storekeep@shop.example",
        "        to: [ops@shop.example]",
        "      - name: cmd",
        "        type: command",
        "        command: [/bin/sh, -c, 'cat > \"$0/$(date +%s%N).json\"', "
        f"'{outdir}']",
        webhook_yaml("am", alertmanager, ["format: alertmanager"]),
    ])
    e = edge([("b0", op)], extra=alerts_yaml(tmp_path, op, notifiers))
    wait_until(lambda: alert_state(e, "WebDown") is None and
               any(r["name"] == "WebDown" and r["health"] == "ok"
                   for r in alerts(e)["rules"]),
               timeout=10, what="WebDown evaluated once")
    assert hook.bodies == []

    t0 = time.monotonic()
    down(op)
    wait_until(lambda: alert_state(e, "WebDown") == "pending", timeout=10,
               what="WebDown pending")
    wait_until(lambda: hook.alerts("firing", "WebDown"), timeout=15,
               what="the firing webhook")
    # for: 2s holds it back; the probe needs ~0.2 s, evaluations are 1 s.
    assert time.monotonic() - t0 >= 2.0
    a = hook.alerts("firing", "WebDown")[0]
    assert a["severity"] == "critical"
    assert a["labels"]["alertname"] == "WebDown"
    assert a["labels"]["probe"] == "web"
    assert a["annotations"]["summary"] == "probe web is down"
    assert hook.bodies[0]["status"] == "firing"
    assert alert_state(e, "WebDown") == "firing"

    # Email, command and Alertmanager got it too.
    wait_until(lambda: smtp.mails, timeout=15, what="the email")
    mail_from, rcpt, content = smtp.mails[0]
    assert mail_from == "storekeep@shop.example"
    assert rcpt == ["ops@shop.example"]
    assert "WebDown" in content and "probe web is down" in content
    wait_until(lambda: list(outdir.iterdir()), timeout=15,
               what="the command's output")
    body = json.loads(next(outdir.iterdir()).read_text())
    assert body["status"] == "firing"
    assert body["alerts"][0]["name"] == "WebDown"

    def am_alerts():
        r = requests.get(alertmanager + "/api/v2/alerts", timeout=5)
        return [x for x in r.json()
                if x["labels"].get("alertname") == "WebDown"]
    wait_until(am_alerts, timeout=15, what="the alert in Alertmanager")
    am = am_alerts()[0]
    assert am["labels"]["severity"] == "critical"
    assert am["status"]["state"] == "active"

    # ctl shows it.
    r = ctl(e, "alerts")
    assert r.returncode == 0, r.stderr
    assert "firing" in r.stdout and "WebDown" in r.stdout

    # Up again: resolved, once, to every receiver that got the firing.
    up(op)
    wait_until(lambda: hook.alerts("resolved", "WebDown"), timeout=15,
               what="the resolved webhook")
    assert alert_state(e, "WebDown") == "resolved"
    assert len(hook.alerts("firing", "WebDown")) == 1
    wait_until(lambda: len(smtp.mails) >= 2, timeout=15,
               what="the resolved email")
    wait_until(lambda: len(list(outdir.iterdir())) >= 2, timeout=15,
               what="the resolved command run")
    wait_until(lambda: not am_alerts() or
               am_alerts()[0]["status"]["state"] != "active" or
               am_alerts()[0]["endsAt"] < am_alerts()[0]["updatedAt"],
               timeout=15, what="the alert ended in Alertmanager")
    # Each notifier counts what it sent.
    nf = {n["name"]: n for n in alerts(e)["notifiers"]}
    for name in ("hook", "mail", "cmd"):
        assert nf[name]["sent"] >= 2 and nf[name]["healthy"], nf[name]


def test_silence_mutes_and_its_end_sends(origin, edge, tmp_path, hook):
    op = origin("o1")
    e = edge([("b0", op)], extra=alerts_yaml(
        tmp_path, op, webhook_yaml("hook", hook.url)))
    # Bad requests first.
    r = e.api("POST", "/api/v1/silences",
              json={"matchers": "x=1", "duration": "soon"})
    assert r.status_code == 400 and "duration" in r.json()["error"]
    r = e.api("POST", "/api/v1/silences",
              json={"matchers": "x=~\"(\"", "duration": 60})
    assert r.status_code == 400 and "matchers" in r.json()["error"]
    r = e.api("POST", "/api/v1/silences", json={"duration": "1h"})
    assert r.status_code == 400 and "matchers" in r.json()["error"]
    r = e.api("DELETE", "/api/v1/silences/0123456789abcdef")
    assert r.status_code == 404
    r = ctl(e, "silence", "add", "alertname=WebDown", "--for", "soon")
    assert r.returncode == 2 and "--for" in r.stderr

    r = ctl(e, "silence", "add", "alertname=WebDown", "--for", "1h",
            "--comment", "deploy 42")
    assert r.returncode == 0, r.stderr
    sid = r.stdout.split()[1]
    r = ctl(e, "silence", "list")
    assert r.returncode == 0 and sid in r.stdout and "deploy 42" in r.stdout
    sil = e.api("GET", "/api/v1/silences").json()["silences"]
    assert sil[0]["id"] == sid and sil[0]["state"] == "active"

    down(op)
    wait_until(lambda: alert_state(e, "WebDown") == "firing", timeout=15,
               what="WebDown firing")
    a = next(x for x in alerts(e)["alerts"] if x["name"] == "WebDown")
    assert a["silenced"] and a["silenced_by"] == [sid]
    time.sleep(2.5)  # two more evaluations: still nothing may be sent
    assert hook.alerts("firing") == []

    r = ctl(e, "silence", "del", sid)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: hook.alerts("firing", "WebDown"), timeout=10,
               what="the firing sent once the silence ended")
    # Every silence action is in the audit trail.
    log = e.log()
    assert "silence-add" in log and "silence-delete" in log


def test_restart_keeps_state_and_does_not_page_again(
        origin, edge, tmp_path, hook, procs, storekeep_bin):
    op = origin("o1")
    e = edge([("b0", op)], extra=alerts_yaml(
        tmp_path, op, webhook_yaml("hook", hook.url)))
    down(op)
    wait_until(lambda: hook.alerts("firing", "WebDown"), timeout=15,
               what="firing")
    assert e.proc.stop() == 0
    state = json.loads((tmp_path / "alerts.json").read_text())
    assert "WebDown" in json.dumps(state)
    pr = procs([storekeep_bin, "run", "-c", e.cfg_path],
               log_path=str(tmp_path / "storekeep2.log"))
    wait_port(e.admin_port, proc=pr)
    wait_until(lambda: alert_state(e, "WebDown") == "firing", timeout=10,
               what="firing after the restart")
    time.sleep(2.5)
    assert len(hook.alerts("firing", "WebDown")) == 1
    up(op)
    wait_until(lambda: hook.alerts("resolved", "WebDown"), timeout=15,
               what="resolved after the restart")


def test_failing_notifier_is_visible(origin, edge, tmp_path):
    op = origin("o1")
    dead = free_port()
    e = edge([("b0", op)], extra=alerts_yaml(
        tmp_path, op, webhook_yaml("dead", f"http://127.0.0.1:{dead}/x",
                                   ["max_attempts: 2"])))
    down(op)

    def failed():
        nf = alerts(e)["notifiers"][0]
        return nf if nf["failed"] >= 1 else None
    nf = wait_until(failed, timeout=20, what="the delivery given up")
    assert nf["name"] == "dead" and not nf["healthy"]
    assert nf["last_error"]
    r = ctl(e, "alerts")
    assert "notifier dead" in r.stdout and "failing" in r.stdout


def test_backend_down_default_rule(origin, edge, tmp_path, hook):
    op = origin("o1")
    op2 = origin("o2")
    e = edge([("b0", op), ("b1", op2)], extra=alerts_yaml(
        tmp_path, op, webhook_yaml("hook", hook.url),
        defaults={"BackendDown": "{for: 1s}"}, rules="      []"))
    down(op2)
    wait_until(lambda: hook.alerts("firing", "BackendDown"), timeout=20,
               what="BackendDown")
    a = hook.alerts("firing", "BackendDown")[0]
    assert a["labels"]["backend"] == "b1" and a["labels"]["pool"] == "shop"
    assert not hook.alerts("firing", "PoolDown")
    assert alert_state(e, "BackendDown") == "firing"


def test_invalid_alerts_config_names_file_and_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("\n".join([
        "listen: 127.0.0.1:1",
        "pools:",
        "  - name: p",
        "    backends:",
        "      - {name: a, address: '127.0.0.1:2'}",
        "monitor:",
        "  alerts:",
        "    rules:",
        "      - name: Broken",
        "        expr: 'up{a=~\"(\"}'",
        "        op: '>'",
        "        threshold: 1",
    ]) + "\n")
    r = subprocess.run([BIN, "check", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert f"{cfg}:" in r.stderr and "rules[0]" in r.stderr, r.stderr
    r = subprocess.run([BIN, "run", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1 and "rules[0]" in r.stderr


# --- PostgreSQL --------------------------------------------------------------

PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def as_pg(args):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + args
    return args


@pytest.fixture
def pg():
    need(PGBIN and os.path.exists(os.path.join(PGBIN[-1], "initdb")),
         "PostgreSQL server binaries are not installed (scripts/deps.sh)")
    if os.geteuid() == 0:
        pwd.getpwnam("postgres")
    d = tempfile.mkdtemp(prefix="sk-pga-", dir="/tmp")
    if os.geteuid() == 0:
        shutil.chown(d, "postgres", "postgres")
    port = free_port()
    data = os.path.join(d, "data")

    def run(tool, *args, check=True):
        r = subprocess.run(as_pg([os.path.join(PGBIN[-1], tool)] + list(args)),
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"{tool}: {r.stdout}{r.stderr}")

    class S:
        pass
    s = S()
    s.conninfo = f"host={d} port={port} user=postgres dbname=postgres"
    s.stop = lambda: run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop",
                         check=False)
    run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
    run("pg_ctl", "-D", data, "-w", "-t", "60", "-l", os.path.join(d, "log"),
        "-o", f"-p {port} -k {d} -c listen_addresses='' -c fsync=off",
        "start")
    try:
        yield s
    finally:
        run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop",
            check=False)
        shutil.rmtree(d, ignore_errors=True)


def test_stopping_postgresql_raises_the_probe_alert(
        origin, edge, tmp_path, hook, pg):
    op = origin("o1")
    probe = "\n".join([
        "    - name: db",
        "      type: postgresql",
        f"      conninfo: '{pg.conninfo}'",
        "      interval: 500ms",
        "      timeout: 400ms",
    ])
    e = edge([("b0", op)], extra=alerts_yaml(
        tmp_path, op, webhook_yaml("hook", hook.url), rules="      []",
        defaults={"ProbeCritical": "{for: 1s}"}, probes_extra=probe))
    wait_until(lambda: any(r["name"] == "ProbeCritical" and
                           r["health"] == "ok" for r in alerts(e)["rules"]),
               timeout=10, what="ProbeCritical evaluated")
    assert not hook.alerts("firing")
    pg.stop()
    wait_until(lambda: hook.alerts("firing", "ProbeCritical"), timeout=20,
               what="ProbeCritical for the stopped server")
    a = hook.alerts("firing", "ProbeCritical")[0]
    assert a["labels"]["probe"] == "db"
    assert a["labels"]["type"] == "postgresql"


def test_error_rate_latency_and_slo_burn_from_real_traffic(
        origin, edge, tmp_path, hook):
    """The built-in error-rate and latency rules and an SLO's burn-rate
    rule, over the route's real counters and latency histogram."""
    op = origin("o1")
    slo = "\n".join([
        "    slos:",
        "      - name: checkout",
        "        route: checkout",
        "        objective: 0.99",
        "        latency: 2s",
        "        windows:",
        "          - {long: 1m, short: 10s, factor: 2, for: 0s, "
        "severity: critical}",
    ])
    extra = alerts_yaml(
        tmp_path, op, webhook_yaml("hook", hook.url), rules="      []",
        defaults={"HighErrorRate": "{for: 0s}",
                  "HighLatency": "{for: 0s, threshold: 0.05}"})
    extra = extra.replace("    notifiers:", slo + "\n    notifiers:")
    routes = "\n".join(["routes:", "  - name: checkout", "    path: /",
                        "    pool: shop", "    retry:", "      attempts: 0"])
    e = edge([("b0", op)], extra=extra, routes=routes,
             pool_extra="    passive:\n      failures: 0")
    s = requests.Session()
    for _ in range(100):
        assert s.get(e.url + "/info", timeout=5).status_code == 200
    time.sleep(2.5)  # two evaluations of healthy traffic
    assert hook.alerts("firing") == []

    for _ in range(30):
        assert s.get(e.url + "/status?code=500", timeout=5).status_code == 500
    wait_until(lambda: hook.alerts("firing", "HighErrorRate"), timeout=15,
               what="HighErrorRate")
    a = hook.alerts("firing", "HighErrorRate")[0]
    assert a["labels"]["route"] == "checkout"
    assert 0.2 < a["value"] < 0.3  # 30 of 130
    wait_until(lambda: [x for x in hook.alerts("firing")
                        if x["name"].startswith("SLOBurnRate:checkout:")],
               timeout=15, what="the SLO burn-rate alert")
    b = [x for x in hook.alerts("firing")
         if x["name"].startswith("SLOBurnRate:checkout:")][0]
    assert b["labels"]["slo"] == "checkout"
    assert b["value"] > 2

    for _ in range(20):
        assert s.get(e.url + "/slow?ms=120", timeout=5).status_code == 200
    wait_until(lambda: hook.alerts("firing", "HighLatency"), timeout=15,
               what="HighLatency")
    v = hook.alerts("firing", "HighLatency")[0]["value"]
    assert 0.11 < v < 0.14, v  # p99 of the window: a 120 ms request
    src = e.status()["alert_source"]
    assert src["histogram_series"] >= 1 and src["snapshot_bytes"] > 0


def test_reload_changes_rules_and_refuses_bad_ones(origin, edge, tmp_path,
                                                   hook):
    op = origin("o1")
    extra = alerts_yaml(tmp_path, op, webhook_yaml("hook", hook.url))
    e = edge([("b0", op)], extra=extra)
    down(op)
    wait_until(lambda: hook.alerts("firing", "WebDown"), timeout=15,
               what="firing")

    orig = open(e.cfg_path).read()

    def reload(text):
        with open(e.cfg_path, "w") as f:
            f.write(orig.replace(extra, text))
        r = e.api("POST", "/api/v1/reload")
        return r

    # A rule that does not parse: refused with file:line, nothing changes.
    bad = extra.replace("function: max", "function: maximum")
    r = reload(bad)
    assert r.status_code in (400, 422, 500), r.text
    assert "rules[0].function" in r.text and e.cfg_path in r.text
    assert alert_state(e, "WebDown") == "firing"
    # The rule removed: its firing alert is resolved at once.
    r = reload(extra.replace("WebDown", "WebIsDown").replace(
        "threshold: 0", "threshold: -1"))
    assert r.status_code == 200, r.text
    wait_until(lambda: hook.alerts("resolved", "WebDown"), timeout=10,
               what="the removed rule's alert resolved")
    assert any(x["name"] == "WebIsDown" for x in alerts(e)["rules"])
    # Alerts off: the API says so; on again: evaluating again.
    r = reload(extra.replace("  alerts:\n", "  alerts:\n    enabled: false\n"))
    assert r.status_code == 200, r.text
    assert alerts(e)["enabled"] is False
    r = e.api("POST", "/api/v1/silences",
              json={"matchers": "a=b", "duration": "1h"})
    assert r.status_code == 409
    r = reload(extra)
    assert r.status_code == 200, r.text
    wait_until(lambda: alert_state(e, "WebDown") == "firing", timeout=15,
               what="WebDown firing again after alerts came back")
    # external_url (taken by the engine at its start) changed by a reload:
    # the engine restarts with it, keeps the firing state (no new page),
    # and the resolution carries the new link.
    sent = len(hook.alerts("firing", "WebDown"))
    r = reload(extra.replace(
        "  alerts:\n", "  alerts:\n    external_url: http://ops.test/al\n"))
    assert r.status_code == 200, r.text
    assert alert_state(e, "WebDown") == "firing"
    up(op)
    wait_until(lambda: [a for a in hook.alerts("resolved", "WebDown")
                        if a.get("generatorURL") == "http://ops.test/al"],
               timeout=15, what="the resolution with the new external_url")
    assert len(hook.alerts("firing", "WebDown")) == sent
