"""The chat bench end to end: a tiny real run (server, live, chat-only clients, senders)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.servers import assert_gone, interrupt_run, run_bench

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 90


def test_chat_tiny_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chat", "--clients", "5", "--rates", "5",
         "--duration", "3", "--warmup", "1", "--out", str(tmp_path)],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (path,) = tmp_path.glob("chat-*/result.json")
    result = json.loads(path.read_text())
    assert result["errors"] == [] and not result["interrupted"]
    assert result["clients_joined"] == 5 and result["clients_failed"] == 0
    (step,) = result["steps"]
    assert step["errors"] == 0 and step["sent"] > 0
    assert step["deliveries_per_s"] > 0
    assert 0 < step["latency_ms"]["p50"] <= step["latency_ms"]["p99"] < 5000
    assert step["cpu"]["server"] > 0 and step["server_rss_mb"] > 0
    assert "deliv/s" in proc.stdout and "JSON:" in proc.stdout
    pids = [pid for name, pid in result["processes"].items() if name != "bench"]
    assert {"server", "worker0"} <= set(result["processes"])
    assert_gone(pids)


def test_ctrl_c_mid_run_stops_cleanly_through_the_runner(tmp_path: Path) -> None:
    """The creator's socket (a GoliveClient) connects in the bench's own process: it must
    leave SIGINT to bench/runner.py's handler (python-socketio's default took it, cancelled
    every task and stopped the loop; a second Ctrl-C could no longer kill)."""
    proc = run_bench("chat", "--clients", "3", "--rates", "3", "--duration", "120",
                     "--warmup", "1", "--out", str(tmp_path),
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    result, _ = interrupt_run(proc, "clients joined", tmp_path, RUN_TIMEOUT_S)
    assert result["errors"] == [] and {"server", "worker0"} <= set(result["processes"])
