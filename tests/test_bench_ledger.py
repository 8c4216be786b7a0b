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
