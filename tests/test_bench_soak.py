"""The soak bench: its baseline-comparison rules as plain functions, the figures /metrics
gives it, and a short real run (redis-server, golive serve, a live, viewers churning with
and without media, chat, DMs and gifts) that must end where it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import soak_checks as checks
from tests.support.servers import assert_gone, interrupt_run, run_bench

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 85


# --- the rules ---------------------------------------------------------------------------


def test_returned_allows_the_slack_and_any_drop() -> None:
    assert checks.returned("tasks", 50, 53, 3).ok
    assert checks.returned("tasks", 50, 41, 3).ok  # an idle task ended since: no leak
    leak = checks.returned("tasks", 50, 54, 3)
    assert not leak.ok and leak.as_dict()["allowed"] == 3
    assert not checks.returned("peers", 1, 2, 0).ok


def test_fds_may_keep_the_redis_connections_the_pool_opened() -> None:
    assert checks.fd_allowance(10, 14) == 4
    assert checks.fd_allowance(10, 9) == 0  # fewer clients: no allowance, not a negative one


@pytest.mark.parametrize(("key", "family"), [
    ("{core}ledger_op:gift:u1:t9", "ledger_op"),
    ("{core}ledger:journal", "ledger:journal"),
    ("{core}lives", "lives"),
    ("{dm}dm:c1", "dm"),
    ("{dm}dm_meta:c1", "dm_meta"),
    ("gift_board:{L1}", "gift_board"),
    ("gift_combo:{L1}:u1:rose", "gift_combo"),
    ("session:abc", "session"),
    ("recent_creators", "recent_creators"),
])
def test_key_family(key: str, family: str) -> None:
    assert checks.key_family(key) == family


def test_family_counts_split_persistent_from_expiring() -> None:
    persistent, volatile = checks.family_counts([
        ("{core}ledger_op:gift:a:1", -1), ("{core}ledger_op:gift:a:2", -1),
        ("session:x", 86400), ("{dm}dm_rate:a", 0), ("{core}chat_rate:L:a", -2)])
    assert persistent == {"ledger_op": 2}
    assert volatile == {"session": 1, "dm_rate": 1}  # -2: gone between SCAN and TTL


def test_expected_growth_is_computed_from_acknowledged_operations() -> None:
    assert checks.expected_key_growth(gifts_acked=7, new_conversations=0) == {"ledger_op": 7}
    assert checks.expected_key_growth(0, 2) == {"dm": 2, "dm_meta": 2}
    assert checks.expected_key_growth(0, 0) == {}


def test_key_verdicts_are_exact_per_family() -> None:
    base = {"ledger_op": 20, "user": 7, "dm": 6}
    expected = {"ledger_op": 30}
    ok = checks.key_verdicts(base, {"ledger_op": 50, "user": 7, "dm": 6}, expected)
    assert [(v.measure, v.ok) for v in ok] == [("keys ledger_op", True)]  # unchanged: left out
    # one key too many in a family nothing should touch, one gift record missing
    bad = checks.key_verdicts(base, {"ledger_op": 49, "user": 7, "dm": 6, "live_viewers": 1},
                              expected)
    verdicts = {v.measure: v for v in bad}
    assert not verdicts["keys ledger_op"].ok and verdicts["keys ledger_op"].note == "-1 unexpected"
    assert not verdicts["keys live_viewers"].ok
    assert checks.leaked(bad) == ["keys ledger_op", "keys live_viewers"]
    # a family that went away entirely is growth too (negative): not what was expected
    assert not checks.key_verdicts({"dm": 6}, {}, {})[0].ok


def test_entries_verdict_bounds_by_acknowledged_and_unanswered() -> None:
    assert checks.entries_verdict("journal", 20, 50, acked=30).ok
    assert not checks.entries_verdict("journal", 20, 49, acked=30).ok  # one acked gift lost
    assert not checks.entries_verdict("journal", 20, 51, acked=30).ok  # one applied twice
    assert checks.entries_verdict("journal", 20, 51, acked=30, unknown=1).ok


def test_slope_per_minute_and_the_steady_half() -> None:
    times = [0.0, 30.0, 60.0, 90.0, 120.0]
    assert checks.slope_per_minute(times, [100, 100.5, 101, 101.5, 102]) == pytest.approx(1.0)
    assert checks.slope_per_minute(times, [5, 5, 5, 5, 5]) == 0
    assert checks.slope_per_minute(times[:2], [1, 2]) is None
    assert checks.slope_per_minute([3.0, 3.0, 3.0], [1, 2, 3]) is None
    samples = [{"t": t} for t in (5, 10, 20, 30, 40, 50)]
    assert [s["t"] for s in checks.steady_half(samples, 10, 40)] == [30, 40]


# --- /metrics ------------------------------------------------------------------------------


async def test_metrics_show_what_a_leak_shows_in(client: Any) -> None:
    text = await (await client.get("/metrics")).text()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["golive_asyncio_tasks"] >= 1  # this request's own task at least
    assert values["golive_peer_connections"] == 0
    assert values["golive_peer_connections_alive"] >= 0
    if sys.platform == "linux":
        assert values["process_open_fds"] > 0 and values["process_resident_memory_bytes"] > 0


# --- a short real run ----------------------------------------------------------------------


def test_short_soak_returns_to_baseline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--minutes", "0.2", "--viewers", "5",
         "--warmup", "4", "--dwell", "4", "--every", "1", "--settle", "20", "--quiet", "2",
         "--media-share", "0.5", "--chat-rate", "2/s", "--dm-rate", "1/s",
         "--gift-rate", "1/s", "--out", str(tmp_path)],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (path,) = tmp_path.glob("soak-*/result.json")
    result = json.loads(path.read_text())
    assert result["errors"] == [] and not result["interrupted"] and result["leaks"] == []
    verdicts = {v["measure"]: v for v in result["verdicts"]}
    for measure in ("sockets", "peers", "tasks", "fds", "journal entries", "dm entries"):
        assert verdicts[measure]["ok"], verdicts[measure]
    assert result["end"]["sockets"] == result["baseline"]["sockets"] == 1  # the creator
    assert result["end"]["peers"] == result["baseline"]["peers"] == 1
    load = result["load"]
    assert load["gift"]["ok"] > 0 and load["dm"]["ok"] > 0 and load["chat"]["ok"] > 0
    assert load["joins"]["media"]["ok"] + load["joins"]["socket"]["ok"] > 0
    # each acknowledged gift left exactly its ledger_op record, nothing else grew
    assert verdicts["keys ledger_op"]["allowed"] == load["gift"]["ok"]
    assert {p["phase"] for p in result["phases"]} >= {"warm-up", "baseline", "load", "settle"}
    assert len(result["samples"]) >= 10 and "rss_slope_mib_per_min" in result["memory"]
    assert (path.parent / "soak.png").stat().st_size > 10_000
    assert "verdict" in proc.stdout and "no leak" in proc.stdout
    assert_gone(list(result["processes"].values()))


def test_ctrl_c_mid_load_stops_cleanly_through_the_runner(tmp_path: Path) -> None:
    """The creator's socket and the viewers' connect in the bench's own process: they must
    leave SIGINT to bench/runner.py's handler (python-socketio's default took it, cancelled
    every task and stopped the loop; a second Ctrl-C could no longer kill)."""
    proc = run_bench("soak", "--minutes", "2", "--viewers", "3", "--warmup", "2",
                     "--dwell", "4", "--every", "1", "--settle", "5", "--quiet", "1",
                     "--out", str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    result, _ = interrupt_run(proc, "baseline:", tmp_path, RUN_TIMEOUT_S)
    assert result["errors"] == [] and {"server", "redis"} <= set(result["processes"])
