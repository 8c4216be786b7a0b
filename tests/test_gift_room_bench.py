"""bench/gift_latency.py end to end, tiny: its own `golive serve`, a creator, a decoding
viewer that buys coins and sends Roses; every send is seen in the video. Figures are
printed, never asserted (they depend on the machine's load)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_gift_latency_bench_sees_every_gift(tmp_path: Path) -> None:
    out = tmp_path / "gift.json"
    done = subprocess.run([sys.executable, "-m", "bench.gift_latency", "--samples", "4",
                           "--combo", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["samples"] == 4 and result["missed"] == 0
    assert result["first"]["n"] == 2 and result["combo"]["n"] == 2
    assert 0 < result["all"]["p50_ms"] <= result["all"]["p95_ms"]
    print(done.stderr.strip().splitlines()[-1])
