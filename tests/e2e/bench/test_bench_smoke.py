"""A smoke run of the benchmark harness, so that it cannot rot.

bench/run with BENCH_SMOKE=1 gives each scenario one second, installs
nothing and judges no speed. Here it runs against storekeep and the bare
origin only (the peers are the harness's business, not `make check`'s),
with the binary under test (STOREKEEP_BIN), and the test checks that the
table came out with storekeep serving real traffic in every load scenario.
"""
import os
import re
import shutil
import subprocess

from conftest import need

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
RUN = os.path.join(ROOT, "bench", "run")

# The load scenarios storekeep can run today (the cache and TLS ones are
# n/a rows until those features land).
LOAD_SCENARIOS = ["keep-alive, 13 B", "keep-alive, 16 KiB",
                  "new connection per request",
                  "1,000 connections, keep-alive"]


def table_rows(out, system):
    """{scenario title: requests/s} for the rows of `system` that carry a
    figure; the scenario title is only on a scenario's first row."""
    rows, scenario = {}, None
    for line in out.splitlines():
        m = re.match(r"^(\S.{0,30}?)\s{2,}(\w+)\s+([\d,]+)\s", line)
        m2 = re.match(r"^\s+(\w+)\s+([\d,]+)\s", line)
        if m:
            scenario, name, rps = m.group(1).strip(), m.group(2), m.group(3)
        elif m2 and scenario:
            name, rps = m2.group(1), m2.group(2)
        else:
            if line and not line.startswith(" "):
                scenario = None
            continue
        if name == system:
            rows[scenario] = int(rps.replace(",", ""))
    return rows


def test_bench_smoke(storekeep_bin, tmp_path):
    need(shutil.which("wrk"), "wrk is not installed (scripts/deps.sh)")
    need(len(os.sched_getaffinity(0)) >= 2,
         "the bench pins the proxy and the load to two CPUs")

    env = dict(os.environ, BENCH_SMOKE="1", BENCH_SYSTEMS="origin storekeep",
               STOREKEEP_BIN=os.path.abspath(storekeep_bin),
               BENCH_JSON=str(tmp_path / "bench.json"))
    r = subprocess.run(["/usr/bin/python3", RUN], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=55)
    report = f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-4000:]}"
    assert r.returncode == 0, report
    assert "CRASHED" not in r.stdout, report
    # storekeep must stop cleanly on SIGTERM (under ASan a leak shows here).
    assert "storekeep exited" not in r.stdout, report

    sk = table_rows(r.stdout, "storekeep")
    for title in LOAD_SCENARIOS:
        assert sk.get(title, 0) > 0, f"no storekeep req/s for {title}\n" + report
    # The bare origin, the ceiling, was measured too.
    assert table_rows(r.stdout, "origin").get(LOAD_SCENARIOS[0], 0) > 0, report
    # The memory scenario measured storekeep.
    assert re.search(r"^\s+storekeep\s+[\d.]+ MiB\s+[\d.]+ MiB", r.stdout,
                     re.M), report
    assert (tmp_path / "bench.json").exists()
