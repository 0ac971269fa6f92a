"""SIGKILL during a run, at every step of writing an archive and at random
moments: the earlier archives stay verifiable, no partial archive is ever
listed, and the next run cleans up and succeeds.

Exact places come from failpoints: with STOREKEEP_BACKUP_FAILPOINT=<name>
a run stops at that place, says so on stderr and waits to be killed.
"""
import os
import random
import select
import signal
import sqlite3
import subprocess
import time

import pytest

from bkutil import archives, repo_files, sk, write_config

# In the order a run passes them.
POINTS = ["snapshot", "data", "manifest", "synced", "renamed", "prune"]


def make_job(binary, tmp_path, big=1 << 20):
    db = tmp_path / "shop.db"
    with sqlite3.connect(str(db)) as c:
        c.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, note TEXT)")
        c.executemany("INSERT INTO orders(note) VALUES (?)",
                      [("order %d" % i,) for i in range(2000)])
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(big))
    cfg = write_config(tmp_path, f"""    - name: k
      interval: 1h
      sources:
        - type: sqlite
          name: db
          path: {db}
        - type: files
          paths: [{data}]
      retention:
        keep_last: 2
        keep_daily: 0
        keep_weekly: 0
        keep_monthly: 0
""")
    sk(binary, cfg, "init", check=0)
    sk(binary, cfg, "run", check=0)
    return cfg


def run_until(binary, cfg, point):
    """Starts a run that stops at point; returns it once it got there."""
    env = dict(os.environ, STOREKEEP_BACKUP_FAILPOINT=point)
    p = subprocess.Popen([binary, "backup", "-c", cfg, "run"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    seen = b""
    while b"failpoint %s reached" % point.encode() not in seen:
        if time.monotonic() > deadline or p.poll() is not None:
            p.kill()
            p.wait()
            pytest.fail(f"run did not reach {point}: {seen.decode()}")
        r, _, _ = select.select([p.stderr], [], [], 0.5)
        if r:
            seen += os.read(p.stderr.fileno(), 4096)
    return p


def check_repo(binary, cfg, tmp_path):
    """Every listed archive is complete and verifies; returns the ids."""
    arcs = archives(binary, cfg)
    for a in arcs:
        assert "error" not in a, a
    on_disk = [f for f in repo_files(tmp_path / "repo", "k") if f.endswith(".skb")
               and not f.startswith(".")]
    assert sorted(on_disk) == sorted(a["id"] + ".skb" for a in arcs)
    sk(binary, cfg, "verify", check=0)
    return [a["id"] for a in arcs]


def test_sigkill_at_each_step_leaves_earlier_archives_intact(storekeep_bin,
                                                             tmp_path):
    cfg = make_job(storekeep_bin, tmp_path)
    before = check_repo(storekeep_bin, cfg, tmp_path)
    for point in POINTS:
        p = run_until(storekeep_bin, cfg, point)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stderr.close()
        after = check_repo(storekeep_bin, cfg, tmp_path)
        if point in ("renamed", "prune"):
            # The new archive was complete and in place before the kill.
            assert len(set(after) - set(before)) == 1, (point, before, after)
        else:
            assert after == before, point
        before = after
    # The next run cleans the leftovers and succeeds.
    sk(storekeep_bin, cfg, "run", check=0)
    after = check_repo(storekeep_bin, cfg, tmp_path)
    assert len(after) == 2
    left = [f for f in repo_files(tmp_path / "repo", "k")
            if not f.endswith(".skb")]
    assert left == [".lock", ".state.json"], left


def test_sigkill_at_random_moments(storekeep_bin, tmp_path):
    cfg = make_job(storekeep_bin, tmp_path, big=24 << 20)
    rnd = random.Random(1234)
    for _ in range(5):
        before = check_repo(storekeep_bin, cfg, tmp_path)
        p = subprocess.Popen([storekeep_bin, "backup", "-c", cfg, "run"],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.01, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait()
        after = check_repo(storekeep_bin, cfg, tmp_path)
        # Either nothing new, or one new complete archive (pruned to 2).
        assert len(set(after) - set(before)) <= 1
