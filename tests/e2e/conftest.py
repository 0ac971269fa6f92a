"""Shared fixtures for the end-to-end suites.

Everything runs the real binary (STOREKEEP_BIN, set by `make check`) on
free loopback ports in a temporary directory, and every process a test
starts is stopped by the test, by PID.
"""
import os
import signal
import socket
import subprocess
import time

import pytest

BIN = os.environ.get("STOREKEEP_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "storekeep")


def free_port():
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls pred() until it is truthy; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0):
    wait_until(lambda: port_open(port), timeout, what=f"port {port}")


class Proc:
    """A child process started by a test; stop() always reaps it."""

    def __init__(self, args, cwd=None, env=None, log_path=None):
        self.args = [str(a) for a in args]
        self.log_path = log_path
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.p = subprocess.Popen(self.args, cwd=cwd, env=env, stdout=out,
                                  stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        if log_path:
            out.close()

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig, waits, then SIGKILL. Returns the exit code."""
        if self.alive():
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode

    def log(self):
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


@pytest.fixture
def procs():
    """Collects processes and stops every one at the end of the test."""
    started = []

    def start(args, **kw):
        pr = Proc(args, **kw)
        started.append(pr)
        return pr

    yield start
    for pr in reversed(started):
        rc = pr.stop()
        # Under ASan a leak or error turns into a non-zero exit at shutdown.
        if rc not in (0, -signal.SIGTERM, -signal.SIGKILL, None):
            print(pr.log())


@pytest.fixture
def storekeep_bin():
    assert os.path.exists(BIN), f"storekeep binary not found at {BIN}"
    return BIN


# --- storekeep and origins -------------------------------------------------

PY = "/usr/bin/python3"
ORIGIN = os.path.join(os.path.dirname(__file__), "origin.py")


def make_token(directory, token="t0ken-for-the-e2e-tests-0123456789"):
    path = os.path.join(str(directory), "admin.token")
    with open(path, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path, token


def write_config(directory, backends, port, admin_port=None, health=None,
                 extra="", pool_extra="", workers=2):
    """backends: list of (name, port[, weight])."""
    h = {"interval": "300ms", "timeout": "200ms", "rise": 2, "fall": 2}
    h.update(health or {})
    lines = [f"workers: {workers}", f"listen: 127.0.0.1:{port}",
             "log:", "  level: debug"]
    if admin_port:
        tok, _ = make_token(directory)
        lines += ["admin:", f"  listen: 127.0.0.1:{admin_port}",
                  f"  token_file: {tok}"]
    lines += [extra] if extra else []
    lines += ["pools:", "  - name: shop", "    health:"]
    lines += [f"      {k}: {v}" for k, v in h.items()]
    lines += [pool_extra] if pool_extra else []
    lines += ["    backends:"]
    for b in backends:
        lines += [f"      - name: {b[0]}", f"        address: 127.0.0.1:{b[1]}"]
        if len(b) > 2:
            lines += [f"        weight: {b[2]}"]
    path = os.path.join(str(directory), "storekeep.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Edge:
    def __init__(self, proc, port, admin_port, token):
        self.proc = proc
        self.port = port
        self.admin_port = admin_port
        self.token = token
        self.url = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}" if admin_port else None

    def status(self):
        import requests
        r = requests.get(self.admin + "/api/v1/status", timeout=5,
                         headers={"Authorization": "Bearer " + self.token})
        r.raise_for_status()
        return r.json()

    def backend_state(self, name):
        for b in self.status()["pools"][0]["backends"]:
            if b["name"] == name:
                return b["state"]
        raise KeyError(name)


@pytest.fixture
def origin(procs, tmp_path):
    """start(name) -> port: a scriptable origin (origin.py) on a free port."""
    started = {}

    def start(name, port=None):
        port = port or free_port()
        pr = procs([PY, ORIGIN, port, name],
                   log_path=str(tmp_path / f"origin-{name}.log"))
        wait_port(port)
        started[name] = (pr, port)
        return port

    start.started = started
    return start


@pytest.fixture
def edge(procs, tmp_path, storekeep_bin):
    """start(backends, **config) -> Edge running `storekeep run`.

    At the end of the test storekeep gets SIGTERM and must exit 0: under
    ASan a leak or memory error makes that fail."""
    edges = []

    def start(backends, admin=True, **kw):
        port = free_port()
        admin_port = free_port() if admin else None
        cfg = write_config(tmp_path, backends, port, admin_port, **kw)
        pr = procs([storekeep_bin, "run", "-c", cfg],
                   log_path=str(tmp_path / "storekeep.log"))
        wait_port(port)
        if admin_port:
            wait_port(admin_port)
        e = Edge(pr, port, admin_port, make_token.__defaults__[0])
        edges.append(e)
        return e

    yield start
    for e in edges:
        rc = e.proc.stop()
        assert rc == 0, f"storekeep exited {rc}\n{e.proc.log()[-4000:]}"
