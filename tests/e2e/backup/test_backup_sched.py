"""The daemon's scheduler: `storekeep run` with backup jobs runs them on
their schedule, applies retention after each run, verifies each new
archive when an RPO is set without a drill schedule, reports through
/api/v1/status and logs a failing job as an error.
"""
import os
import sqlite3
import time


from bkutil import sk, write_config
from conftest import wait_until


def skb(repo, job):
    d = os.path.join(str(repo), job)
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f.endswith(".skb")
                  and not f.startswith("."))


def test_interval_job_runs_in_the_daemon(edge, storekeep_bin, tmp_path):
    db = tmp_path / "app.db"
    with sqlite3.connect(str(db)) as c:
        c.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY)")
        c.execute("INSERT INTO orders DEFAULT VALUES")
    repo = tmp_path / "repo"
    jobs = f"""    - name: often
      interval: 2s
      rpo: 1h
      sources:
        - type: sqlite
          path: {db}
      retention:
        keep_last: 3
        keep_daily: 0
        keep_weekly: 0
        keep_monthly: 0
    - name: broken
      interval: 2s
      sources:
        - type: sqlite
          path: {tmp_path / "missing.db"}
"""
    # The key first, through the CLI, with the same backup section.
    init_cfg = write_config(tmp_path, jobs, name="init.yaml")
    sk(storekeep_bin, init_cfg, "init", check=0)
    extra = ("backup:\n"
             f"  key_file: {tmp_path / 'backup.key'}\n"
             f"  repository: {repo}\n"
             "  jobs:\n" + jobs.rstrip("\n"))
    e = edge([("a", 9)], extra=extra)
    log = e.proc.log
    wait_until(lambda: "backup scheduler started" in log(), timeout=5,
               what="the backup scheduler")
    wait_until(lambda: len(skb(repo, "often")) >= 3, timeout=30,
               what="three archives from the scheduler")
    # Retention runs after each run: never more than keep_last for long.
    time.sleep(2.5)
    assert len(skb(repo, "often")) <= 3
    wait_until(lambda: 'msg="backup failed"' in log() and "job=broken" in log(),
               timeout=10, what="the failing job's error")
    assert "missing.db" in log()

    st = e.status()
    jobs = {j["name"]: j for j in st["backups"]["jobs"]}
    ok = jobs["often"]
    assert ok["last_success"] and ok["archives"] >= 1 and ok["bytes_out"] > 0
    assert ok["last_run_failed"] is False and ok["last_error"] is None
    wait_until(lambda: {j["name"]: j for j in e.status()["backups"]["jobs"]}
               ["often"]["last_verify_ok"] is True, timeout=10,
               what="a verified archive")
    assert not ok["rpo_breached"]
    bad = jobs["broken"]
    assert bad["last_run_failed"] is True and "missing.db" in bad["last_error"]
    assert bad["archives"] == 0
