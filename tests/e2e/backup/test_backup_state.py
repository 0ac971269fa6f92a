"""storekeep's own state (the metrics history database) goes into every
archive, restores, and is verified without the job's SQL assertions."""
import sqlite3

from bkutil import archives, sk, source, write_config


def test_state_database_is_in_every_archive(storekeep_bin, tmp_path):
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO orders DEFAULT VALUES")
    # The history database where the daemon keeps it by default: next to
    # the config file.
    with sqlite3.connect(tmp_path / "storekeep-history.db") as db:
        db.execute("CREATE TABLE samples (t INTEGER, v REAL)")
        db.executemany("INSERT INTO samples VALUES (?, ?)",
                       [(i, i / 2) for i in range(100)])
    cfg = write_config(tmp_path, f"""    - name: shop
      interval: 1d
      sources:
        - type: sqlite
          path: {shop}
      verify:
        assertions: ["SELECT count(*) > 0 FROM orders"]
""")
    sk(storekeep_bin, cfg, "init", check=0)
    sk(storekeep_bin, cfg, "run", check=0)
    (a,) = archives(storekeep_bin, cfg)
    st = source(a, "_storekeep_state")
    assert st["type"] == "sqlite"
    # The job's assertion (orders) is not run against the state database,
    # so verify passes.
    sk(storekeep_bin, cfg, "verify", a["id"], check=0)
    out = tmp_path / "out"
    sk(storekeep_bin, cfg, "restore", a["id"], "--to", out, check=0)
    restored = list(out.glob("_storekeep_state/*"))
    assert [p.name for p in restored] == ["storekeep-history.db"]
    with sqlite3.connect(restored[0]) as db:
        assert db.execute("SELECT count(*) FROM samples").fetchone()[0] == 100
