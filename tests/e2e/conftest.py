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


def need(ok, why):
    """Skips the test when a tool it needs is missing, with why; under CI
    (CI set, where scripts/deps.sh has installed everything) that is a
    failure, so a missing package cannot pass unnoticed."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def recv_all(s):
    """Everything the peer sends on socket s until it closes."""
    out = bytearray()
    while True:
        b = s.recv(1 << 20)
        if not b:
            return bytes(out)
        out += b


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0, host="127.0.0.1", proc=None):
    """Waits until port accepts; fails at once if proc (a Proc) exits."""
    def ready():
        if proc is not None and not proc.alive():
            raise AssertionError(
                f"process exited ({proc.p.returncode}) before port {port} "
                f"opened:\n{proc.log()[-3000:]}")
        return port_open(port, host)
    wait_until(ready, timeout, what=f"port {port}")


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


def _backend_lines(b, indent):
    """b: (name, port[, weight]) or a dict with name, port and any other
    backend keys (weight, backup, max_conns)."""
    sp = " " * indent
    if isinstance(b, dict):
        b = dict(b)
        lines = [f"{sp}- name: {b.pop('name')}",
                 f"{sp}  address: 127.0.0.1:{b.pop('port')}"]
        lines += [f"{sp}  {k}: {_yaml(v)}" for k, v in b.items()]
        return lines
    lines = [f"{sp}- name: {b[0]}", f"{sp}  address: 127.0.0.1:{b[1]}"]
    if len(b) > 2:
        lines += [f"{sp}  weight: {b[2]}"]
    return lines


def _yaml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml(x) for x in v) + "]"
    return str(v)


def _pool_lines(name, backends, health, pool_extra):
    h = {"interval": "300ms", "timeout": "200ms", "rise": 2, "fall": 2}
    h.update(health or {})
    lines = [f"  - name: {name}", "    health:"]
    lines += [f"      {k}: {_yaml(v)}" for k, v in h.items()]
    lines += [pool_extra] if pool_extra else []
    lines += ["    backends:"]
    for b in backends:
        lines += _backend_lines(b, 6)
    return lines


def write_config(directory, backends, port, admin_port=None, health=None,
                 extra="", pool_extra="", workers=2, pools=None, routes="",
                 filename="storekeep.yaml", listen_host="127.0.0.1"):
    """backends: list of (name, port[, weight]) or dicts (see
    _backend_lines) for the one pool "shop".

    pools: instead of that pool, a list of dicts {"name", "backends",
    "health" (dict, optional), "extra" (YAML lines under the pool,
    indented by 4, optional)}. routes: YAML text of the top-level
    `routes:` list. extra: any other top-level YAML. listen_host: the
    edge's listen address ("::1" for IPv6)."""
    listen = f'"[{listen_host}]:{port}"' if ":" in listen_host else \
        f"{listen_host}:{port}"
    lines = [f"workers: {workers}", f"listen: {listen}",
             "log:", "  level: debug"]
    if admin_port:
        tok, _ = make_token(directory)
        lines += ["admin:", f"  listen: 127.0.0.1:{admin_port}",
                  f"  token_file: {tok}"]
    lines += [extra] if extra else []
    lines += [routes] if routes else []
    lines += ["pools:"]
    if pools is None:
        lines += _pool_lines("shop", backends, health, pool_extra)
    else:
        for pl in pools:
            lines += _pool_lines(pl["name"], pl["backends"], pl.get("health"),
                                 pl.get("extra", ""))
    path = os.path.join(str(directory), filename)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class Edge:
    def __init__(self, proc, port, admin_port, token, directory=None,
                 cfg_path=None):
        self.proc = proc
        self.port = port
        self.admin_port = admin_port
        self.token = token
        self.url = f"http://127.0.0.1:{port}"
        self.admin = f"http://127.0.0.1:{admin_port}" if admin_port else None
        self.directory = directory
        self.cfg_path = cfg_path

    def status(self):
        import requests
        r = requests.get(self.admin + "/api/v1/status", timeout=5,
                         headers={"Authorization": "Bearer " + self.token})
        r.raise_for_status()
        return r.json()

    def pool(self, pool=0):
        pools = self.status()["pools"]
        if isinstance(pool, int):
            return pools[pool]
        return next(p for p in pools if p["name"] == pool)

    def backend(self, name, pool=0):
        for b in self.pool(pool)["backends"]:
            if b["name"] == name:
                return b
        raise KeyError(name)

    def backend_state(self, name, pool=0):
        return self.backend(name, pool)["state"]

    def api(self, method, path, **kw):
        """A call to the token-guarded admin API; returns the response."""
        import requests
        return requests.request(method, self.admin + path, timeout=10,
                                headers={"Authorization": "Bearer " + self.token},
                                **kw)

    def rewrite(self, backends, **kw):
        """Rewrites the config file in place (same ports) for a reload;
        takes write_config's keywords."""
        return write_config(self.directory, backends, self.port,
                            self.admin_port, **kw)

    def reload(self):
        """SIGHUP: reload the config file."""
        self.proc.send_signal(signal.SIGHUP)

    def log(self):
        return self.proc.log()


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
        host = kw.get("listen_host", "127.0.0.1")
        cfg = write_config(tmp_path, backends, port, admin_port, **kw)
        pr = procs([storekeep_bin, "run", "-c", cfg],
                   log_path=str(tmp_path / "storekeep.log"))
        wait_port(port, host=host)
        if admin_port:
            wait_port(admin_port)
        e = Edge(pr, port, admin_port, make_token.__defaults__[0],
                 directory=tmp_path, cfg_path=cfg)
        edges.append(e)
        return e

    yield start
    for e in edges:
        rc = e.proc.stop()
        assert rc == 0, f"storekeep exited {rc}\n{e.proc.log()[-4000:]}"


# --- load and admin helpers for the proxy suites ------------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def backend(self):
        return self.headers.get("X-Backend")

    def json(self):
        import json
        return json.loads(self.body)


class Client:
    """One keep-alive HTTP/1.1 connection (http.client): cheap enough for
    thousands of requests in a test. After an error the next request
    opens a new connection."""

    def __init__(self, port, timeout=10.0, source=None, host="127.0.0.1"):
        import http.client
        self.conn = http.client.HTTPConnection(
            host, port, timeout=timeout,
            source_address=(source, 0) if source else None)

    def request(self, method, path, body=None, headers=None):
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            r = self.conn.getresponse()
            data = r.read()
            if r.will_close:
                self.conn.close()
            return Resp(r.status, r.headers, data)
        except Exception:
            self.conn.close()
            raise

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def close(self):
        self.conn.close()


class Load:
    """Steady load: n threads, each with its own keep-alive connection,
    sending requests back to back until stop(). Every request is recorded
    as (monotonic time, status or an exception's repr, X-Backend, the
    request tuple, the response body or None).

    make(i, k) -> (method, path, body, headers) builds request k of thread
    i; the default is GET /info. fresh_after: statuses after which the
    thread opens a new connection."""

    def __init__(self, port, n=4, make=None, timeout=10.0, ok=(200,),
                 fresh_after=()):
        import threading
        self.port = port
        self.n = n
        self.make = make or (lambda i, k: ("GET", f"/info?t={i}&k={k}", None, None))
        self.timeout = timeout
        self.ok = ok
        self.fresh_after = fresh_after  # statuses after which to reconnect
        self.results = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]

    def _run(self, i):
        c = Client(self.port, self.timeout)
        k = 0
        while not self.stop_ev.is_set():
            req = self.make(i, k)
            k += 1
            try:
                r = c.request(*req)
                rec = (time.monotonic(), r.status, r.backend, req, r.body)
                if r.status in self.fresh_after:
                    c.close()
            except Exception as ex:  # noqa: BLE001 - every failure counts
                rec = (time.monotonic(), repr(ex), None, req, None)
            with self.lock:
                self.results.append(rec)
        c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def count(self):
        with self.lock:
            return len(self.results)

    def wait_more(self, n, timeout=20.0):
        """Waits until n more requests than now have completed."""
        target = self.count() + n
        wait_until(lambda: self.count() >= target, timeout,
                   what=f"{n} more requests under load")

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a client hangs"
        return self.results

    def failures(self):
        with self.lock:
            return [r for r in self.results if r[1] not in self.ok]

    def by_backend(self, since=0.0):
        out = {}
        with self.lock:
            for t, st, b, _, _ in self.results:
                if t >= since and b:
                    out[b] = out.get(b, 0) + 1
        return out


class Blackhole:
    """A port that accepts TCP connections (the kernel completes the
    handshake) but never reads or answers: a hung backend. With
    no_connect, its accept queue is full, so a connection attempt is never
    answered at all (connect hangs until its timeout)."""

    def __init__(self, no_connect=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0 if no_connect else 128)
        self.port = self.sock.getsockname()[1]
        self.fill = []
        if no_connect:
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", self.port))
                except BlockingIOError:
                    pass
                self.fill.append(s)
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", self.port))
                raise AssertionError("the accept queue did not fill up")
            except socket.timeout:
                pass
            finally:
                probe.close()

    def close(self):
        for s in self.fill:
            s.close()
        self.sock.close()


@pytest.fixture
def blackhole():
    """make(no_connect=False) -> port of a Blackhole."""
    holes = []

    def make(no_connect=False):
        h = Blackhole(no_connect)
        holes.append(h)
        return h.port

    yield make
    for h in holes:
        h.close()


def origin_stats(port):
    import requests
    return requests.get(f"http://127.0.0.1:{port}/stats", timeout=5).json()


def origin_ctl(port, path):
    """POST a control path to an origin (/fail?mode=..., /health/down,
    /stats/reset)."""
    import requests
    r = requests.post(f"http://127.0.0.1:{port}{path}", timeout=5)
    r.raise_for_status()
    return r


def run_many(port, reqs, n=4, timeout=10.0):
    """Sends reqs [(method, path, body, headers)] over n keep-alive
    connections in parallel; returns the Resp (or the exception) of each,
    in the order of reqs."""
    import threading
    out = [None] * len(reqs)

    def work(i):
        c = Client(port, timeout)
        for k in range(i, len(reqs), n):
            m, p, b, h = reqs[k]
            try:
                out[k] = c.request(m, p, b, h)
            except Exception as ex:  # noqa: BLE001
                out[k] = ex
        c.close()

    ts = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return out
