"""The storekeep command: check, usage errors, and the demo."""
import os
import signal
import subprocess

import requests

from conftest import port_open, wait_port, wait_until


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=30, **kw)


def test_check_accepts_a_valid_file(tmp_path, storekeep_bin):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("pools:\n  - name: shop\n    backends:\n"
                   "      - name: a\n        address: 127.0.0.1:8081\n")
    p = run([storekeep_bin, "check", "-c", str(cfg)])
    assert p.returncode == 0, p.stderr
    # What it found: the built-in alert rules are on by default.
    assert "configuration is valid (1 pool, 1 backend, 0 routes, 9 alert " \
        "rules, 0 notifiers)" in p.stdout, p.stdout


def test_check_names_the_line_of_a_bad_key(tmp_path, storekeep_bin):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("listen: 127.0.0.1:8080\n"
                   "timeouts:\n"
                   "  connect: 3s\n"
                   "  conect_retry: 2s\n"
                   "pools:\n  - name: shop\n    backends:\n"
                   "      - name: a\n        address: 127.0.0.1:8081\n")
    p = run([storekeep_bin, "check", "-c", str(cfg)])
    assert p.returncode == 1
    assert f"{cfg}:4: timeouts.conect_retry: unknown key" in p.stderr, p.stderr


def test_check_names_the_line_of_a_bad_value(tmp_path, storekeep_bin):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pools:\n  - name: shop\n    backends:\n"
                   "      - name: a\n        address: 127.0.0.1:8081\n"
                   "        weight: heavy\n")
    p = run([storekeep_bin, "check", "-c", str(cfg)])
    assert p.returncode == 1
    assert f"{cfg}:6: pools[0].backends[0].weight:" in p.stderr, p.stderr


def test_check_missing_file(tmp_path, storekeep_bin):
    p = run([storekeep_bin, "check", "-c", str(tmp_path / "nope.yaml")])
    assert p.returncode == 1
    assert "nope.yaml" in p.stderr


def test_usage_errors(storekeep_bin):
    p = run([storekeep_bin, "frobnicate"])
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr
    p = run([storekeep_bin, "check"])
    assert p.returncode == 2 and "-c FILE" in p.stderr
    p = run([storekeep_bin])
    assert p.returncode == 2 and "usage" in p.stderr


def test_config_reference_matches_docs(storekeep_bin):
    p = run([storekeep_bin, "config-reference"])
    assert p.returncode == 0
    docs = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs",
                        "config.md")
    with open(docs) as f:
        assert f.read() == p.stdout, "docs/config.md is stale: run make docs"


def _free_block(n):
    """n consecutive free ports, below Linux's ephemeral range (32768+) so
    that no client connection of a parallel test takes one meanwhile."""
    import random
    for _ in range(200):
        base = random.randrange(20000, 32000 - n)
        if not any(port_open(base + i) for i in range(n)):
            return base
    raise RuntimeError("no block of free ports")


def _descendants_alive(pids):
    return [p for p in pids if os.path.exists(f"/proc/{p}")
            and open(f"/proc/{p}/stat").read().split()[2] != "Z"]


def test_demo_serves_the_shop_and_leaves_nothing_behind(tmp_path, procs, storekeep_bin):
    base = _free_block(5)
    listen, admin, shop = base, base + 1, base + 2
    state = tmp_path / "state"
    d = procs([storekeep_bin, "demo", "--state-dir", state,
               "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}",
               "--shop-port", shop, "--workers", "2"],
              log_path=str(tmp_path / "demo.log"))
    wait_port(listen, 20, proc=d)
    wait_port(admin, 20, proc=d)
    for p in (shop, shop + 1, shop + 2):
        wait_port(p, 30, proc=d)
    token = (state / "admin.token").read_text().strip()
    assert oct((state / "admin.token").stat().st_mode & 0o777) == "0o600"
    assert token in d.log()  # the banner shows it
    auth = {"Authorization": "Bearer " + token}

    def all_up():
        st = requests.get(f"http://127.0.0.1:{admin}/api/v1/status", timeout=5,
                          headers=auth).json()
        return st["pools"][0]["backends_up"] == 3
    # The shops may have failed a check while they were starting.
    wait_until(all_up, 20, what="three shops up")

    seen = set()
    for _ in range(30):
        r = requests.get(f"http://127.0.0.1:{listen}/", timeout=10)
        assert r.status_code == 200
        assert "text/html" in r.headers["Content-Type"]
        seen.add(r.headers["X-Backend"])
    assert seen == {"shop1", "shop2", "shop3"}

    st = requests.get(f"http://127.0.0.1:{admin}/api/v1/status", timeout=5,
                      headers={"Authorization": "Bearer " + token}).json()
    pids = [p["pid"] for p in st["processes"]]
    assert len(pids) == 3 and all(pids)

    # A crashed shop is restarted.
    os.kill(pids[0], signal.SIGKILL)

    def restarted():
        s = requests.get(f"http://127.0.0.1:{admin}/api/v1/status", timeout=5,
                         headers={"Authorization": "Bearer " + token}).json()
        p0 = s["processes"][0]
        return p0["pid"] and p0["pid"] != pids[0] and p0["restarts"] >= 1 and p0
    p0 = wait_until(restarted, 20, what="shop1 restarted")
    pids.append(p0["pid"])

    rc = d.stop(signal.SIGTERM)
    assert rc == 0, d.log()[-3000:]
    assert _descendants_alive(pids) == []
    for p in (listen, admin, shop, shop + 1, shop + 2):
        assert not port_open(p)
