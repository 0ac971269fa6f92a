"""The admin listener: health, Prometheus metrics, the token-guarded API."""
import os
import re
import subprocess

import requests

from conftest import free_port, make_token, write_config


def test_healthz_is_open(origin, edge):
    e = edge([("b0", origin("b0"))])
    r = requests.get(e.admin + "/healthz", timeout=5)
    assert r.status_code == 200 and r.text == "ok\n"


def test_api_needs_the_token(origin, edge):
    e = edge([("b0", origin("b0"))])
    r = requests.get(e.admin + "/api/v1/status", timeout=5)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = requests.get(e.admin + "/api/v1/status", timeout=5,
                     headers={"Authorization": "Bearer " + e.token + "x"})
    assert r.status_code == 401
    r = requests.get(e.admin + "/api/v1/status", timeout=5,
                     headers={"Authorization": "Basic " + e.token})
    assert r.status_code == 401
    st = e.status()
    pool = st["pools"][0]
    assert pool["name"] == "shop"
    assert pool["backends"][0]["name"] == "b0"
    assert pool["backends"][0]["state"] == "up"
    assert pool["backends"][0]["address"].startswith("127.0.0.1:")


def test_metrics_exposition(origin, edge):
    e = edge([("b0", origin("b0")), ("b1", origin("b1"))])
    for _ in range(10):
        requests.get(e.url + "/", timeout=5)
    requests.get(e.url + "/status?code=404", timeout=5)
    text = requests.get(e.admin + "/metrics", timeout=5).text
    # Every sample belongs to a family announced with HELP and TYPE.
    families = dict(re.findall(r"^# TYPE (\S+) (counter|gauge|histogram)$", text, re.M))
    assert families
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    assert set(families) == helps
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                        r'(\{[a-z_]+="(?:[^"\\]|\\.)*"(,[a-z_]+="(?:[^"\\]|\\.)*")*\})?'
                        r' (-?[0-9.]+(e[-+]?[0-9]+)?|\+Inf|NaN)$')
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = sample.match(line)
        assert m, line
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in families or families.get(base) == "histogram", line
    assert re.search(r'^storekeep_http_responses_total\{class="2xx"\} (\d+)$', text, re.M)
    n2 = int(re.search(r'responses_total\{class="2xx"\} (\d+)', text).group(1))
    n4 = int(re.search(r'responses_total\{class="4xx"\} (\d+)', text).group(1))
    assert n2 >= 10 and n4 == 1
    assert 'storekeep_backend_up{pool="shop",backend="b0"} 1' in text
    assert 'storekeep_backend_up{pool="shop",backend="b1"} 1' in text
    assert re.search(r"^storekeep_http_requests_in_flight 0$", text, re.M)


def test_request_metrics_can_be_turned_off(origin, edge):
    """monitor.request_metrics: false (for measuring their cost) stops the
    per-route histogram and classes; the totals still count."""
    routes = "routes:\n  - name: all\n    path: /\n    pool: shop"

    def route_count(text):
        m = re.search(r'^storekeep_http_request_duration_seconds_count'
                      r'\{[^}]*route="all"[^}]*\} (\d+)$', text, re.M)
        return int(m.group(1)) if m else 0

    for on in (True, False):
        e = edge([("b0", origin("on" if on else "off"))], routes=routes,
                 extra=f"monitor:\n  request_metrics: {str(on).lower()}")
        for _ in range(20):
            assert requests.get(e.url + "/", timeout=5).status_code == 200
        text = requests.get(e.admin + "/metrics", timeout=5).text
        assert route_count(text) == (20 if on else 0), on
        assert re.search(r'^storekeep_http_requests_total 20$', text, re.M)
        assert e.proc.stop() == 0


def test_world_readable_token_is_refused(tmp_path, storekeep_bin):
    port, aport = free_port(), free_port()
    cfg = write_config(tmp_path, [("b0", free_port())], port, aport)
    tok, _ = make_token(tmp_path)
    os.chmod(tok, 0o644)
    p = subprocess.run([storekeep_bin, "run", "-c", cfg], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 1
    assert "admin.token" in p.stderr and "chmod 600" in p.stderr, p.stderr


def test_admin_must_be_loopback(tmp_path, storekeep_bin):
    tok, _ = make_token(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("admin:\n  listen: 0.0.0.0:9901\n"
                   f"  token_file: {tok}\n"
                   "pools:\n  - name: p\n    backends:\n"
                   "      - name: a\n        address: 127.0.0.1:1\n")
    p = subprocess.run([storekeep_bin, "check", "-c", str(cfg)],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1
    assert re.search(r"c\.yaml:2: admin\.listen", p.stderr), p.stderr
