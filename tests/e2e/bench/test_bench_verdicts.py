"""The goal verdicts of bench/run, on made-up runs: the ratio is paired by
round, and a goal above the bare origin's rate is told apart from a miss.
(The smoke run judges no speed, so these are the verdicts' only test.)"""
import importlib.machinery
import importlib.util
import os

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")


def load_bench():
    path = os.path.join(ROOT, "bench", "run")
    loader = importlib.machinery.SourceFileLoader("bench_run", path)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def run(rps, p99=1000.0):
    return {"rps": rps, "p50_us": 500.0, "p99_us": p99, "cpu_s": 1.0,
            "requests": int(rps), "duration_us": 1e6,
            "origin_requests": int(rps), "origin_conns": 0,
            "err_connect": 0, "err_read": 0, "err_write": 0,
            "err_status": 0, "err_timeout": 0}


def rounds(origin, sk, peer, name="nginx"):
    """Two rounds each: the bare origin, storekeep and one peer (whose p99
    is worse than storekeep's unless said)."""
    return {"origin": [run(origin)] * 2, "storekeep": [run(sk)] * 2,
            name: [run(peer, 2000.0)] * 2}


def verdict(b, runs):
    sc = next(s for s in b.SCENARIOS if s.key == "ka-13")
    sums = {n: b.summarize(r) for n, r in runs.items()}
    for s in sums.values():
        s["noise"] = 0.0
    return b.load_verdict(sc, sums, runs)


def test_paired_ratio_cancels_drift_between_rounds():
    b = load_bench()
    # Round 1 fast, round 2 slow, each 1.10x; round 3 1.03x. Paired: the
    # median round says 1.10x. The medians (66k vs 62k) would say 1.06x:
    # storekeep's slow run and nginx's fast one decide them.
    sk = [run(88000), run(66000), run(64000)]
    ng = [run(80000), run(60000), run(62000)]
    assert abs(b.paired_ratio(sk, ng) - 1.10) < 0.005
    assert b.summarize(sk)["rps"] / b.summarize(ng)["rps"] < 1.07
    v = verdict(b, {"origin": [run(200000)] * 3, "storekeep": sk,
                    "nginx": [run(r["rps"], 2000.0) for r in ng]})
    assert v.startswith("keep-alive, 13 B: met — storekeep 1.10× nginx"), v


def test_goal_above_the_origin_is_out_of_reach_not_missed():
    b = load_bench()
    v = verdict(b, rounds(88000, 86000, 82000))
    assert "out of reach on this machine" in v, v
    assert "missed" not in v, v
    assert "above the bare origin's 88,000" in v, v
    assert "0.98× the origin" in v, v


def test_a_miss_below_the_ceiling_is_missed():
    b = load_bench()
    runs = rounds(120000, 80000, 78000)
    v = verdict(b, runs)
    assert ": missed — storekeep 1.03× nginx" in v, v
    # A worse p99 is a miss even with the ceiling in the way.
    runs["origin"] = [run(84000)] * 2
    runs["storekeep"] = [run(80000, 3000.0)] * 2
    assert ": missed" in verdict(b, runs)
    # Behind the best peer is a miss even when 1.10x it is out of reach.
    runs["storekeep"] = [run(40000)] * 2
    v = verdict(b, runs)
    assert ": missed — storekeep 0.51× nginx" in v, v


def test_no_ceiling_where_the_proxy_outruns_the_origin():
    # New connection per request: the bare origin accepts wrk's
    # connections itself and is slower than a proxy in front of it.
    b = load_bench()
    v = verdict(b, rounds(16000, 22000, 20800, "haproxy"))
    assert ": missed — storekeep 1.06× haproxy" in v, v
