"""The notify bench end to end: a tiny real run (server, embedded Redis, online clients)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.servers import processes_mentioning

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 90


def test_notify_tiny_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["TMPDIR"] = str(tmp_path)  # the embedded Redis's folder: checked gone below
    proc = subprocess.run(
        [sys.executable, "-m", "bench.notify", "--followers", "1200", "--batch", "100",
         "--online", "3", "--baseline", "0.2", "--out", str(tmp_path / "out")],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (path,) = (tmp_path / "out").glob("notify-*/result.json")
    result = json.loads(path.read_text())
    assert result["errors"] == []
    assert result["written"] == result["held"] == 1200 and result["steps"] >= 12
    assert result["pushed"] == result["online"] == 3
    assert 0 < result["seconds"] < RUN_TIMEOUT_S
    assert result["stall"]["samples"] > 0 and result["stall"]["max_ms"] >= 0
    assert "longest event-loop stall" in proc.stdout
    assert processes_mentioning(str(tmp_path)) == []  # its redis-server is gone
