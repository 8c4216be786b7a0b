"""The people-search bench end to end: a tiny real run through `golive bench search`,
its own redis-server stopped afterwards, every answer a real prefix match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.search import make_name, percentile
from engine.search import fold
from tests.support.servers import assert_gone

REPO = Path(__file__).resolve().parent.parent


def test_names_are_unique_and_some_carry_accents() -> None:
    import random

    rng = random.Random(1)
    names = [make_name(rng, n) for n in range(2_000)]
    assert len({u for u, _ in names}) == len(names)
    assert any(fold(d) != d.lower() for _, d in names)       # accented display names
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) in (2.0, 3.0)
    assert percentile([], 99) == 0.0


def test_search_tiny_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "signaling.cli", "bench", "search", "--users", "3000",
         "--queries", "300", "--batch", "500", "--out", str(tmp_path)],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (path,) = tmp_path.glob("search-*/result.json")
    result = json.loads(path.read_text())
    assert result["errors"] == [] and not result["interrupted"]
    assert result["users_written"] == 3000 and result["index_members"] == 9000
    overall = result["overall"]
    assert overall["count"] == 300
    assert 0 < overall["p50_ms"] <= overall["p99_ms"] <= overall["max_ms"]
    assert result["redis_usec_per_call"]["zrange"] > 0
    assert "people search at 3,000 users" in proc.stdout and "JSON:" in proc.stdout
    assert_gone([result["processes"]["redis"]])


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "signaling.cli", "bench", "search", "--users", "0",
         "--out", str(tmp_path)], cwd=REPO, text=True, capture_output=True, timeout=60)
    assert proc.returncode == 2 and "--users" in proc.stderr
    assert not list(tmp_path.iterdir())
