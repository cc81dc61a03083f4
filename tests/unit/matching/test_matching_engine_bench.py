"""Smoke test of the benchmark command: small run, JSON shape, peer handling."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from typing import Any

from apps.matching.benchmarks import engine_bench
from apps.matching.benchmarks.workload import generate


def _run(*argv: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert engine_bench.main(list(argv)) == 0
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_benchmark_prints_one_json_object() -> None:
    res = _run("--ops", "3000", "--repeat", "1", "--peer-repeat", "1")
    assert res["ops"] == 3000
    assert res["ops_per_s"] > 0
    assert set(res["latency_ns"]) == {"p50", "p99", "p999", "max"}
    assert res["latency_ns"]["p50"] <= res["latency_ns"]["p99"] <= res["latency_ns"]["max"]
    assert res["workload"]["seeded_resting_orders"] == 1000
    assert res["python"]["version"].startswith("3.")
    assert "mode" in res["gc"]
    if importlib.util.find_spec("orderbook") is None:
        assert res["peer"] is None
        assert "not installed" in res["peer_reason"]
    else:
        peer = res["peer"]
        assert peer["name"] == "akhil4n-orderbook"
        assert peer["ops_per_s"] > 0
        assert peer["ratio"] > 0
        assert peer["same_trades_as_engine"] is True


def test_benchmark_without_peer() -> None:
    res = _run("--ops", "500", "--repeat", "1", "--no-peer", "--gc", "on")
    assert res["peer"] is None
    assert res["peer_reason"]


def test_workload_mix_and_determinism() -> None:
    a = generate(20_000, seed=3)
    b = generate(20_000, seed=3)
    assert a.ops == b.ops
    assert a.seed_orders == b.seed_orders
    n = len(a.ops)
    assert abs(a.counts["passive_limit"] / n - 0.60) < 0.02
    assert abs(a.counts["cancel"] / n - 0.25) < 0.02
    assert abs((a.counts["marketable_limit"] + a.counts["market"]) / n - 0.15) < 0.02
    assert a.counts["cancel_of_open_order"] == a.counts["cancel"]
    assert a.trades > 0
