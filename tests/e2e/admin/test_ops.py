"""Operations through the admin API and `storekeep ctl`: drain, enable,
weight, reload, the audit log, and the errors an operator sees.

Every test runs a real `storekeep run` whose admin has an audit log
(admin.audit_log); like conftest's `edge`, the fixture stops it with
SIGTERM at the end and requires exit status 0 (under ASan a leak or a
memory error fails the test there).
"""
import json
import os
import re
import stat
import subprocess
import threading

import pytest
import requests

from conftest import free_port, make_token, wait_port, wait_until, write_config

API = "/api/v1"


class Ops:
    """A running storekeep with its config file, token and audit log."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.cfg = str(tmp_path / "storekeep.yaml")
        self.audit = str(tmp_path / "audit.jsonl")
        self.log_path = str(tmp_path / "storekeep.log")
        self.port = free_port()
        self.admin_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.token = make_token.__defaults__[0]
        self.proc = None

    def write(self, backends, audit=None, port=None, **kw):
        """(Re)writes the config file: same ports unless port is given."""
        path = write_config(self.dir, backends, port or self.port,
                            self.admin_port, **kw)
        text = open(path).read()
        tok_line = re.search(r"^  token_file: .*$", text, re.M).group(0)
        text = text.replace(tok_line,
                            f"{tok_line}\n  audit_log: {audit or self.audit}")
        with open(path, "w") as f:
            f.write(text)
        return path

    def api(self, method, path, token=True, **kw):
        headers = kw.pop("headers", {})
        if token is True:
            headers["Authorization"] = "Bearer " + self.token
        elif token:
            headers["Authorization"] = "Bearer " + token
        return requests.request(method, self.admin + API + path,
                                headers=headers, timeout=10, **kw)

    def backend(self, name, pool="shop"):
        r = self.api("GET", "/pools")
        assert r.status_code == 200, r.text
        for p in r.json()["pools"]:
            if p["name"] == pool:
                for b in p["backends"]:
                    if b["name"] == name:
                        return b
        raise KeyError(f"{pool}/{name}")

    def spread(self, n, path="/"):
        """Sends n GETs on one keep-alive connection; {backend: count}."""
        seen = {}
        with requests.Session() as s:
            for _ in range(n):
                r = s.get(self.url + path, timeout=10)
                assert r.status_code == 200, r.text
                b = r.headers["X-Backend"]
                seen[b] = seen.get(b, 0) + 1
        return seen

    def audit_lines(self, path=None):
        path = path or self.audit
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


@pytest.fixture
def ops(procs, tmp_path, storekeep_bin):
    """start(backends, **write_config kw) -> Ops running `storekeep run`."""
    started = []

    def start(backends, **kw):
        o = Ops(tmp_path)
        o.write(backends, **kw)
        o.proc = procs([storekeep_bin, "run", "-c", o.cfg],
                       log_path=o.log_path)
        wait_port(o.port)
        wait_port(o.admin_port)
        started.append(o)
        return o

    yield start
    for o in started:
        rc = o.proc.stop()
        assert rc == 0, f"storekeep exited {rc}\n{o.log()[-4000:]}"


@pytest.fixture
def ctl(storekeep_bin):
    """run(*args) -> CompletedProcess of `storekeep ctl ARGS`."""
    def run(*args):
        return subprocess.run([storekeep_bin, "ctl", *map(str, args)],
                              capture_output=True, text=True, timeout=30)
    return run


# --- the API --------------------------------------------------------------

def test_status_and_pools_show_operations_state(origin, ops):
    o = ops([("b0", origin("b0")), ("b1", origin("b1"))])
    st = o.api("GET", "/status").json()
    for k in ("retries", "retries_denied", "queued"):
        assert isinstance(st[k], int), k
    pool = st["pools"][0]
    assert pool["balance"] == "round_robin"
    b = pool["backends"][0]
    assert b["backup"] is False and b["draining"] is False
    assert b["ejected"] is False and b["ejections"] == 0
    pools = o.api("GET", "/pools").json()["pools"]
    assert [p["name"] for p in pools] == ["shop"]
    assert [b["name"] for b in pools[0]["backends"]] == ["b0", "b1"]
    assert set(pools[0]) == set(pool)
    # Reading changes nothing, so it is not audited.
    assert o.audit_lines() == []


def test_drain_stops_new_requests_and_lets_in_flight_ones_finish(origin, ops):
    o = ops([("b0", origin("b0")), ("b1", origin("b1"))])
    results = []

    def slow():
        r = requests.get(o.url + "/slow?ms=1500", timeout=10)
        results.append((r.status_code, r.headers.get("X-Backend")))

    # Four connections over two workers: some worker rotates onto b1.
    threads = [threading.Thread(target=slow) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: o.backend("b1")["in_flight"] >= 1, 5,
               what="a slow request in flight on b1")
    r = o.api("POST", "/pools/shop/backends/b1/drain")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["pool"] == "shop"
    assert body["backend"]["name"] == "b1" and body["backend"]["draining"] is True
    for t in threads:
        t.join()
    # The requests already on b1 finished normally.
    assert [s for s, _ in results] == [200] * 4
    assert "b1" in [b for _, b in results]

    assert o.spread(60) == {"b0": 60}
    assert o.backend("b1")["draining"] is True
    assert o.api("GET", "/status").json()["pools"][0]["backends"][1]["draining"]

    r = o.api("POST", "/pools/shop/backends/b1/enable")
    assert r.status_code == 200, r.text
    assert r.json()["backend"]["draining"] is False
    seen = o.spread(40)
    assert seen.get("b1", 0) >= 15, seen


def test_weight_change_moves_traffic(origin, ops):
    o = ops([("b0", origin("b0")), ("b1", origin("b1"))])
    r = o.api("PUT", "/pools/shop/backends/b1/weight", json={"weight": 3})
    assert r.status_code == 200, r.text
    assert r.json()["backend"]["weight"] == 3
    seen = o.spread(400)
    share = seen.get("b1", 0) / 400
    assert abs(share - 0.75) <= 0.05, seen

    # POST is accepted too; 0 goes back to the configured weight.
    r = o.api("POST", "/pools/shop/backends/b1/weight", json={"weight": 0})
    assert r.status_code == 200, r.text
    assert r.json()["backend"]["weight"] == 1
    seen = o.spread(200)
    assert abs(seen.get("b1", 0) / 200 - 0.5) <= 0.05, seen


def test_unknown_pool_or_backend_is_404_and_wrong_method_405(origin, ops):
    o = ops([("b0", origin("b0"))])
    r = o.api("POST", "/pools/shop/backends/nope/drain")
    assert r.status_code == 404
    assert r.json()["error"] == 'pool "shop" has no backend named "nope"'
    r = o.api("PUT", "/pools/cart/backends/b0/weight", json={"weight": 2})
    assert r.status_code == 404
    assert r.json()["error"] == 'there is no pool named "cart"'
    r = o.api("POST", "/pools/shop/backends/b%20x/enable")
    assert r.status_code == 404 and "b%20x" in r.json()["error"]

    r = o.api("GET", "/pools/shop/backends/b0/drain")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert "GET" in r.json()["error"]
    r = o.api("DELETE", "/pools/shop/backends/b0/weight")
    assert r.status_code == 405 and r.headers["Allow"] == "PUT, POST"
    r = o.api("GET", "/reload")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = o.api("POST", "/pools")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD"
    r = o.api("GET", "/pools/shop")
    assert r.status_code == 404 and r.json()["error"] == "no such endpoint"
    assert o.backend("b0")["draining"] is False


@pytest.mark.parametrize("body,reason", [
    ("", "no body"),
    ("{\"weight\": 3", "not valid JSON"),
    ("[3]", "not a JSON object"),
    ("{\"w\": 3}", 'unknown key "w"'),
    ("{}", '"weight" is missing'),
    ("{\"weight\": \"3\"}", "must be an integer from 0 to 1000"),
    ("{\"weight\": 2.5}", "must be an integer from 0 to 1000"),
    ("{\"weight\": 1001}", "1001 is out of range"),
    ("{\"weight\": -1}", "-1 is out of range"),
    ("{\"weight\": 2, \"weight\": 3}", "not valid JSON"),
])
def test_bad_weight_is_400_naming_the_problem(origin, ops, body, reason):
    o = ops([("b0", origin("b0"), 2)])
    r = o.api("PUT", "/pools/shop/backends/b0/weight", data=body,
              headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert reason in r.json()["error"], r.json()
    assert o.backend("b0")["weight"] == 2
    (line,) = o.audit_lines()
    assert line["action"] == "weight" and line["result"].startswith("error: ")


def test_actions_need_the_token(origin, ops):
    o = ops([("b0", origin("b0")), ("b1", origin("b1"))])
    for token in (None, o.token + "x"):
        r = o.api("POST", "/pools/shop/backends/b1/drain", token=token)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"] == "a valid bearer token is required"
    r = o.api("POST", "/reload", token=None)
    assert r.status_code == 401
    assert o.backend("b1")["draining"] is False
    lines = o.audit_lines()
    assert [(x["action"], x["target"]) for x in lines] == [
        ("drain", "shop/b1"), ("drain", "shop/b1"), ("reload", o.cfg)]
    assert all(x["result"] == "error: a valid bearer token is required"
               for x in lines)


def test_audit_log_records_every_action(origin, ops):
    o = ops([("b0", origin("b0")), ("b1", origin("b1"))])
    assert o.api("POST", "/pools/shop/backends/b1/drain").status_code == 200
    assert o.api("POST", "/pools/shop/backends/b1/enable").status_code == 200
    assert o.api("PUT", "/pools/shop/backends/b0/weight",
                 json={"weight": 4}).status_code == 200
    assert o.api("POST", "/pools/shop/backends/zz/drain").status_code == 404
    assert o.api("POST", "/reload").status_code == 200
    assert o.api("GET", "/status").status_code == 200   # not audited
    assert o.api("GET", "/pools").status_code == 200    # not audited

    mode = stat.S_IMODE(os.stat(o.audit).st_mode)
    assert mode == 0o600, oct(mode)
    lines = o.audit_lines()
    assert [(x["action"], x["target"], x["result"]) for x in lines] == [
        ("drain", "shop/b1", "ok"),
        ("enable", "shop/b1", "ok"),
        ("weight", "shop/b0", "ok"),
        ("drain", "shop/zz", 'error: pool "shop" has no backend named "zz"'),
        ("reload", o.cfg, "ok"),
    ]
    for x in lines:
        assert x["peer"] == "127.0.0.1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", x["ts"])
    assert lines[2]["weight"] == 4
    # The main log has the same records in logfmt.
    log = o.log()
    assert re.search(r"msg=audit peer=127\.0\.0\.1 action=drain "
                     r"target=shop/b1 result=ok", log), log[-2000:]
    assert len(re.findall(r"msg=audit ", log)) == 5


# --- reload ----------------------------------------------------------------
# These go through the reload hook that src/cli/serve.c sets with
# admin_set_reload_hook(); without it the API answers 503.

def test_reload_applies_a_valid_file(origin, ops):
    p0, p1, p2 = origin("b0"), origin("b1"), origin("b2")
    o = ops([("b0", p0), ("b1", p1)])
    o.write([("b0", p0), ("b1", p1), ("b2", p2)])
    r = o.api("POST", "/reload")
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True}
    names = [b["name"] for b in o.api("GET", "/pools").json()["pools"][0]["backends"]]
    assert names == ["b0", "b1", "b2"]
    wait_until(lambda: "b2" in o.spread(9), 10, what="traffic on b2")
    assert o.audit_lines()[-1]["result"] == "ok"


def test_reload_refuses_an_invalid_file_and_keeps_serving(origin, ops):
    p0, p1 = origin("b0"), origin("b1")
    o = ops([("b0", p0), ("b1", p1)])
    o.write([("b0", p0), ("b1", p1), ("b2", free_port(), "heavy")])
    r = o.api("POST", "/reload")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["ok"] is False
    assert re.match(r".*storekeep\.yaml:\d+: pools\[0\]\.backends\[2\]\.weight",
                    body["error"]), body
    names = [b["name"] for b in o.api("GET", "/pools").json()["pools"][0]["backends"]]
    assert names == ["b0", "b1"]
    assert set(o.spread(20)) == {"b0", "b1"}
    (line,) = o.audit_lines()
    assert line["action"] == "reload"
    assert line["result"] == "error: " + body["error"]


def test_reload_reads_a_new_token(origin, ops):
    p0 = origin("b0")
    o = ops([("b0", p0)])
    old = o.token
    make_token(o.dir, token="a-brand-new-token-after-rotation-42")
    assert o.api("POST", "/reload").status_code == 200
    assert o.api("GET", "/status", token=old).status_code == 401
    o.token = "a-brand-new-token-after-rotation-42"
    assert o.api("GET", "/status").status_code == 200


def test_reload_keeps_the_token_when_the_new_file_is_bad(origin, ops):
    o = ops([("b0", origin("b0"))])
    tok = os.path.join(str(o.dir), "admin.token")
    with open(tok, "w") as f:
        f.write("short\n")
    r = o.api("POST", "/reload")
    assert r.status_code == 422, r.text
    assert re.search(r"storekeep\.yaml:\d+: admin\.token_file", r.json()["error"])
    assert o.api("GET", "/status").status_code == 200


def test_reload_names_settings_that_need_a_restart(origin, ops):
    p0 = origin("b0")
    o = ops([("b0", p0)])
    o.write([("b0", p0)], port=free_port())
    r = o.api("POST", "/reload")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and "listen" in body["restart_needed"], body
    # The edge still listens where it did.
    assert o.spread(3) == {"b0": 3}
    assert o.audit_lines()[-1]["restart_needed"] == body["restart_needed"]


def test_reload_follows_a_new_audit_log_path(origin, ops):
    p0 = origin("b0")
    o = ops([("b0", p0)])
    assert o.api("POST", "/pools/shop/backends/b0/drain").status_code == 200
    new = str(o.dir / "audit-2.jsonl")
    o.write([("b0", p0)], audit=new)
    assert o.api("POST", "/reload").status_code == 200
    assert o.api("POST", "/pools/shop/backends/b0/enable").status_code == 200
    assert [x["action"] for x in o.audit_lines()] == ["drain"]
    assert [x["action"] for x in o.audit_lines(new)] == ["reload", "enable"]


# --- storekeep ctl --------------------------------------------------------

def test_ctl_pools_and_status(origin, ops, ctl):
    o = ops([("b0", origin("b0")), ("b1", origin("b1"), 2)])
    o.spread(6)
    p = ctl("-c", o.cfg, "pools")
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines()]
    assert rows[0][:5] == ["POOL", "BACKEND", "ADDRESS", "STATE", "WEIGHT"]
    assert "LAST CHECK" in p.stdout.splitlines()[0]
    by_name = {r[1]: r for r in rows[1:]}
    assert set(by_name) == {"b0", "b1"}
    assert by_name["b1"][0] == "shop" and by_name["b1"][3] == "up"
    assert by_name["b1"][2] == o.backend("b1")["address"]
    assert by_name["b1"][4] == "2"

    p = ctl("-c", o.cfg, "status")
    assert p.returncode == 0, p.stderr
    assert "pool shop (round_robin): 2 of 2 backends up" in p.stdout

    p = ctl("-c", o.cfg, "--json", "pools")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["pools"][0]["name"] == "shop"


def test_ctl_actions(origin, ops, ctl):
    o = ops([("b0", origin("b0")), ("b1", origin("b1"))])
    p = ctl("-c", o.cfg, "drain", "shop", "b1")
    assert p.returncode == 0, p.stderr
    assert "shop/b1: draining" in p.stdout
    assert o.backend("b1")["draining"] is True
    row = [line for line in ctl("-c", o.cfg, "pools").stdout.splitlines()
           if " b1 " in line][0]
    assert "draining" in row

    p = ctl("-c", o.cfg, "enable", "shop", "b1")
    assert p.returncode == 0, p.stderr
    assert o.backend("b1")["draining"] is False

    p = ctl("-c", o.cfg, "weight", "shop", "b1", "5")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "shop/b1: weight 5"
    assert o.backend("b1")["weight"] == 5

    # --admin and --token-file instead of the config file (pasted as a URL).
    p = ctl("--admin", f"http://127.0.0.1:{o.admin_port}/", "--token-file",
            o.dir / "admin.token", "reload")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "reloaded"

    assert [x["action"] for x in o.audit_lines()] == [
        "drain", "enable", "weight", "reload"]
    assert all(x["result"] == "ok" for x in o.audit_lines())


def test_ctl_api_errors_exit_1_with_the_servers_message(origin, ops, ctl):
    p0 = origin("b0")
    o = ops([("b0", p0)])
    p = ctl("-c", o.cfg, "drain", "shop", "nope")
    assert p.returncode == 1
    assert 'pool "shop" has no backend named "nope"' in p.stderr

    o.write([("b0", p0, "heavy")])
    p = ctl("-c", o.cfg, "reload")
    # The config file itself is now invalid, so ctl cannot read admin.listen
    # from it: it says so (exit 1). --admin/--token-file reach the API,
    # which refuses the reload with file:line.
    assert p.returncode == 1 and re.search(r"storekeep\.yaml:\d+:", p.stderr)
    p = ctl("--admin", f"127.0.0.1:{o.admin_port}", "--token-file",
            o.dir / "admin.token", "reload")
    assert p.returncode == 1
    assert re.search(r"storekeep\.yaml:\d+: pools\[0\]\.backends\[0\]\.weight",
                     p.stderr), p.stderr

    bad = o.dir / "other.token"
    bad.write_text("some-other-token-0123456789\n")
    os.chmod(bad, 0o600)
    p = ctl("--admin", f"127.0.0.1:{o.admin_port}", "--token-file", bad,
            "drain", "shop", "b0")
    assert p.returncode == 1 and "refused the token" in p.stderr
    assert o.backend("b0")["draining"] is False


def test_ctl_unreachable_admin(tmp_path, ctl):
    tok, _ = make_token(tmp_path)
    port = free_port()
    p = ctl("--admin", f"127.0.0.1:{port}", "--token-file", tok, "status")
    assert p.returncode == 1
    assert (f"cannot reach the admin API at 127.0.0.1:{port}: Connection "
            "refused — is storekeep running?") in p.stderr


@pytest.mark.parametrize("args,msg", [
    ([], "usage: storekeep ctl"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["drain", "shop"], "drain needs POOL BACKEND"),
    (["enable"], "enable needs POOL BACKEND"),
    (["weight", "shop", "b0"], "weight needs POOL BACKEND N"),
    (["weight", "shop", "b0", "lots"], "got 'lots'"),
    (["weight", "shop", "b0", "1001"], "from 0 to 1000"),
    (["status", "extra"], "status takes no arguments"),
    (["--frob", "status"], "unknown option '--frob'"),
    (["status", "--admin"], "option --admin needs a value"),
    (["--admin", "nonsense", "--token-file", "x", "status"],
     "expected an address such as 127.0.0.1:9901"),
])
def test_ctl_usage_errors_exit_2(tmp_path, ctl, args, msg):
    p = ctl(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert msg in p.stderr, p.stderr
