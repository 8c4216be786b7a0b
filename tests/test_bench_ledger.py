"""The ledger bench end to end: a tiny real run (100 operations per phase) through
`golive bench ledger`, its own redis-server stopped afterwards, the audit passing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.servers import assert_gone

REPO = Path(__file__).resolve().parent.parent


def test_ledger_tiny_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "signaling.cli", "bench", "ledger", "--ops", "100",
         "--rounds", "1", "--senders", "5", "--batch", "10", "--concurrency", "2",
         "--out", str(tmp_path)],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (path,) = tmp_path.glob("ledger-*/result.json")
    result = json.loads(path.read_text())
    assert result["errors"] == [] and not result["interrupted"]
    assert [(r["phase"], r["ops"], r["errors"]) for r in result["rounds"]] == [
        ("incrby", 100, 0), ("pipelined", 100, 0), ("single", 100, 0)]
    summary = result["summary"]
    assert summary["incrby_per_s"] > 0 and summary["gifts_pipelined_per_s"] > 0
    assert summary["ratio"] == round(summary["gifts_pipelined_per_s"]
                                     / summary["incrby_per_s"], 3)
    assert 0 < summary["single_latency_ms"]["p50"] <= summary["single_latency_ms"]["p99"]
    for row in result["rounds"]:
        assert row["redis_us_per_op"] > 0 and row["cpu"]["redis"] is not None
    # 5 purchases funding the senders + 200 gifts, every one of them proven
    assert result["audit"] == {"ok": True, "entries": 205, "seconds": result["audit"]["seconds"],
                               "mismatches": []}
    assert "ratio:" in proc.stdout and "JSON:" in proc.stdout
    assert_gone([result["processes"]["redis"]])


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "signaling.cli", "bench", "ledger", "--batch", "0",
         "--out", str(tmp_path)], cwd=REPO, text=True, capture_output=True, timeout=60)
    assert proc.returncode == 2 and "--batch" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_the_fsync_policies_interleave_and_each_gets_its_figures(tmp_path: Path) -> None:
    """`--fsync everysec,always`: each round runs once per policy on the same Redis (its
    CONFIG says which ran; every other round in the reverse order), and the summary has
    gifts/s per policy with median and spread, always's as a share of everysec's."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ledger", "--ops", "60", "--rounds", "2",
         "--senders", "4", "--batch", "10", "--concurrency", "2",
         "--fsync", "everysec,always", "--out", str(tmp_path)],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (path,) = tmp_path.glob("ledger-*/result.json")
    result = json.loads(path.read_text())
    assert [(r["round"], r["fsync"]) for r in result["rounds"] if r["phase"] == "single"] == [
        (1, "everysec"), (1, "always"), (2, "always"), (2, "everysec")]
    cost = result["summary"]["fsync_cost"]
    assert list(cost) == ["everysec", "always"]
    for figures in cost.values():
        f = figures["pipelined"]
        assert f["rounds"] == 2 and 0 < f["min"] <= f["median"] <= f["max"]
    assert cost["always"]["single"]["of_everysec"] > 0
    assert "durability (appendfsync)" in proc.stdout
    assert_gone([result["processes"]["redis"]])


def test_fsync_cost_is_median_and_spread_per_policy() -> None:
    from bench.ledger import fsync_cost

    rounds = [{"fsync": p, "phase": phase, "ops_per_s": v}
              for p, phase, v in [("everysec", "pipelined", 100.0), ("always", "pipelined", 50.0),
                                  ("everysec", "pipelined", 120.0), ("always", "pipelined", 70.0),
                                  ("everysec", "single", 10.0), ("always", "single", 5.0)]]
    cost = fsync_cost(rounds)
    assert cost["everysec"]["pipelined"] == {"median": 110.0, "min": 100.0, "max": 120.0,
                                             "rounds": 2}
    assert cost["always"]["pipelined"]["of_everysec"] == round(60 / 110, 3)
    assert cost["always"]["single"]["of_everysec"] == 0.5
