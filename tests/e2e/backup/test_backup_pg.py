"""PostgreSQL round trip with a real server (Debian's postgresql: initdb in
a temporary directory, a free port, the unix socket in that directory; run
as the postgres user when the tests run as root), while orders and their
items are being inserted.

The manifest's row counts come from the dump's own snapshot, so a restore
(pg_restore into a new database) holds exactly those rows, and every
order has its items. verify does the same in a scratch database it
creates and drops.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from bkutil import archives, sk, source, write_config
from conftest import free_port, need

BINDIR = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def as_pg(args):
    """argv that runs args as the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + args
    return args


class Server:
    def __init__(self):
        if not BINDIR or not os.path.exists(os.path.join(BINDIR[-1], "initdb")):
            need(False, "PostgreSQL server binaries are not installed "
                 "(scripts/deps.sh)")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                need(False, "no postgres user to run the server as "
                     "(the postgresql package makes it)")
        self.bin = BINDIR[-1]
        self.dir = tempfile.mkdtemp(prefix="sk-pg-", dir="/tmp")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        self.started = False

    def run(self, tool, *args, check=True, **kw):
        r = subprocess.run(as_pg([os.path.join(self.bin, tool)] + list(args)),
                           capture_output=True, text=True, timeout=120, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{tool} {args}: {r.stdout}{r.stderr}")
        return r

    def start(self):
        self.run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                 "--no-sync", "-E", "UTF8")
        self.run("pg_ctl", "-D", self.data, "-w", "-t", "60", "-l",
                 os.path.join(self.dir, "log"), "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses='' "
                 "-c fsync=off", "start")
        self.started = True

    def stop(self):
        if self.started:
            self.run("pg_ctl", "-D", self.data, "-m", "immediate", "-w",
                     "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def conninfo(self, db):
        return f"host={self.dir} port={self.port} user=postgres dbname={db}"

    def psql(self, db, sql):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                            "-d", self.conninfo(db), "-c", sql],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()


@pytest.fixture
def pg():
    s = Server()
    try:
        s.start()
        yield s
    finally:
        s.stop()


class Inserter(threading.Thread):
    """Feeds one psql session with transactions of an order and its three
    items until stopped."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.p = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
             server.conninfo("shop")], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.sent = 0

    def run(self):
        while not self.stop.is_set():
            self.p.stdin.write(
                "BEGIN;\n"
                "INSERT INTO orders(total) VALUES (30) RETURNING id \\gset\n"
                "INSERT INTO order_items(order_id, qty) VALUES "
                "(:id, 1), (:id, 2), (:id, 3);\n"
                "COMMIT;\n")
            self.p.stdin.flush()
            self.sent += 1
            time.sleep(0.002)

    def finish(self):
        self.stop.set()
        self.join(10)
        self.p.stdin.close()
        assert self.p.wait(30) == 0, self.p.stderr.read()


def test_postgresql_round_trip_while_inserting(pg, storekeep_bin, tmp_path):
    pg.psql("postgres", "CREATE DATABASE shop")
    pg.psql("shop", "CREATE TABLE orders(id serial PRIMARY KEY, total int NOT NULL);"
                    "CREATE TABLE order_items(order_id int NOT NULL REFERENCES "
                    "orders(id), qty int NOT NULL);"
                    "CREATE SCHEMA audit; CREATE TABLE audit.log(msg text);"
                    "INSERT INTO audit.log VALUES ('a'), ('b');")
    cfg = write_config(tmp_path, f"""    - name: pgjob
      interval: 1h
      sources:
        - type: postgresql
          name: pg
          conninfo: "{pg.conninfo('shop')}"
      verify:
        assertions:
          - SELECT count(*) > 0 FROM orders
          - SELECT count(*) = 2 FROM audit.log
""")
    sk(storekeep_bin, cfg, "init", check=0)
    ins = Inserter(pg)
    ins.start()
    try:
        deadline = time.monotonic() + 30
        while int(pg.psql("shop", "SELECT count(*) FROM orders")) < 50:
            assert time.monotonic() < deadline, "inserts do not land"
            time.sleep(0.05)
        r = sk(storekeep_bin, cfg, "run", check=0)
        sk(storekeep_bin, cfg, "run", check=0)
    finally:
        ins.finish()
    total = int(pg.psql("shop", "SELECT count(*) FROM orders"))

    arcs = archives(storekeep_bin, cfg)
    assert len(arcs) == 2
    counts = []
    for a in arcs:
        t = source(a, "pg")["tables"]
        assert t["public.order_items"] == 3 * t["public.orders"], t
        assert t["audit.log"] == 2
        counts.append(t["public.orders"])
    assert 50 <= counts[0] <= counts[1] <= total

    # Restore the newest and load it as an operator would.
    out = tmp_path / "out"
    r = sk(storekeep_bin, cfg, "restore", "pgjob", "--to", out, check=0)
    dump = out / "pg" / "shop.pgdump"
    assert dump.exists() and "pg_restore" in r.stdout
    pg.psql("postgres", "CREATE DATABASE restored")
    rr = subprocess.run(["pg_restore", "--no-owner", "-d", pg.conninfo("restored"),
                         str(dump)], capture_output=True, text=True, timeout=120)
    assert rr.returncode == 0, rr.stderr
    assert int(pg.psql("restored", "SELECT count(*) FROM orders")) == counts[1]
    assert int(pg.psql("restored", "SELECT count(*) FROM order_items")) == \
        3 * counts[1]
    assert pg.psql("restored", "SELECT count(*) FROM orders o WHERE NOT EXISTS "
                               "(SELECT 1 FROM order_items i WHERE "
                               "i.order_id = o.id)") == "0"

    # verify restores each dump into a scratch database and compares.
    r = sk(storekeep_bin, cfg, "verify", check=0)
    assert "pg/shop.pgdump: restored and checked (3 tables" in r.stdout
    assert pg.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname "
                               "LIKE 'storekeep_verify_%'") == "0"

    # A failing assertion fails verify, naming archive and database.
    pg.psql("shop", "INSERT INTO audit.log VALUES ('c')")
    sk(storekeep_bin, cfg, "run", check=0)
    r = sk(storekeep_bin, cfg, "verify", "pgjob", check=1)
    assert "count(*) = 2 FROM audit.log" in r.stderr
    assert "pg/shop.pgdump" in r.stderr


def test_postgresql_unreachable_fails_the_run(storekeep_bin, tmp_path):
    port = free_port()
    cfg = write_config(tmp_path, f"""    - name: pgjob
      interval: 1h
      sources:
        - type: postgresql
          name: pg
          conninfo: "host=127.0.0.1 port={port} user=nobody dbname=x connect_timeout=2"
""")
    sk(storekeep_bin, cfg, "init", check=0)
    r = sk(storekeep_bin, cfg, "run", check=1)
    assert "source pg: cannot connect" in r.stderr
    assert archives(storekeep_bin, cfg) == []
