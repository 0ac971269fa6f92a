"""Backups of the demo shop's SQLite database taken while checkouts are
being written.

Each archive's manifest records the row counts of the snapshot; a restored
copy must pass PRAGMA integrity_check and hold exactly those orders (and
their items), however many checkouts landed during the run.
"""
import sqlite3
import threading

import requests

from bkutil import archives, sk, source, write_config
from conftest import free_port, wait_port, wait_until


def start_shop(procs, binary, tmp_path):
    port = free_port()
    db = tmp_path / "shop.db"
    pr = procs([binary, "shop", "--listen", f"127.0.0.1:{port}", "--db", db,
                "--name", "s1"], log_path=str(tmp_path / "shop.log"))
    wait_port(port, timeout=30)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/healthz", timeout=2).ok,
               timeout=30, what="shop healthy")
    return pr, url, db


class Checkouts(threading.Thread):
    """Posts checkouts until stopped; counts the orders created."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.created = 0
        self.errors = []

    def run(self):
        s = requests.Session()
        i = 0
        while not self.stop.is_set():
            pid = 1 + i % 40
            i += 1
            try:
                r = s.post(self.url + "/checkout", timeout=10,
                           json={"items": [{"product_id": pid, "qty": 1}]})
            except requests.RequestException as e:
                self.errors.append(str(e))
                continue
            if r.status_code == 201:
                self.created += 1
            elif r.status_code != 409:  # out of stock is fine
                self.errors.append(f"{r.status_code} {r.text[:200]}")


def count(db, table):
    with sqlite3.connect(str(db), timeout=10) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_shop_backup_during_checkouts_restores_consistently(procs, storekeep_bin,
                                                            tmp_path):
    pr, url, db = start_shop(procs, storekeep_bin, tmp_path)
    cfg = write_config(tmp_path, f"""    - name: shop
      interval: 1h
      sources:
        - type: sqlite
          name: shopdb
          path: {db}
      retention:
        keep_last: 10
      verify:
        assertions:
          - SELECT count(*) > 0 FROM products
""")
    sk(storekeep_bin, cfg, "init", check=0)
    writer = Checkouts(url)
    writer.start()
    try:
        wait_until(lambda: writer.created >= 20, timeout=30, what="20 orders")
        bounds = []
        for _ in range(4):
            before = count(db, "orders")
            sk(storekeep_bin, cfg, "run", check=0)
            bounds.append((before, count(db, "orders")))
            n = writer.created
            wait_until(lambda: writer.created >= n + 5, timeout=30,
                       what="more orders")
    finally:
        writer.stop.set()
        writer.join(15)
    assert not writer.errors, writer.errors[:3]
    assert count(db, "orders") > bounds[0][1], "checkouts kept landing"

    arcs = archives(storekeep_bin, cfg)
    assert len(arcs) == 4
    seen = set()
    for k, a in enumerate(arcs):
        tables = source(a, "shopdb")["tables"]
        lo, hi = bounds[k]
        assert lo <= tables["orders"] <= hi, (k, tables, bounds[k])
        seen.add(tables["orders"])
        out = tmp_path / f"restored-{k}"
        sk(storekeep_bin, cfg, "restore", a["id"], "--to", out, check=0)
        rdb = out / "shopdb" / "shop.db"
        with sqlite3.connect(str(rdb)) as c:
            assert c.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert c.execute("SELECT count(*) FROM orders").fetchone()[0] == \
                tables["orders"]
            assert c.execute("SELECT count(*) FROM order_items").fetchone()[0] == \
                tables["order_items"]
            # Every order of the snapshot has its items: no torn checkout.
            assert c.execute("SELECT count(*) FROM orders o WHERE NOT EXISTS "
                             "(SELECT 1 FROM order_items i WHERE i.order_id = o.id)"
                             ).fetchone()[0] == 0
    assert len(seen) == 4, "each snapshot saw a different number of orders"

    r = sk(storekeep_bin, cfg, "verify", check=0)
    assert "4 archives checked" in r.stdout
    assert "shopdb/shop.db: restored and checked" in r.stdout
    assert pr.alive()
