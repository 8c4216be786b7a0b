"""`golive chaos`: the invariant checks as plain functions over made-up records, and a
short campaign on real processes (a redis-server with appendfsync always, two `golive
serve` nodes, real clients, real SIGKILL/SIGSTOP) whose table must show nothing
acknowledged lost or duplicated and every fault survived."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.chaos.campaign import Campaign, Row
from bench.chaos.faults import KINDS, REDIS_PAUSE, SERVER_KILL, Fault, FaultLog, plan
from bench.chaos.invariants import (
    ACKED,
    REFUSED,
    UNKNOWN,
    Operation,
    check_fanout,
    check_journal,
    check_lines,
    check_retried,
    check_views,
    view_gaps,
)
from bench.chaos.report import passed, render
from tests.support.servers import REPO, processes_mentioning

# --- the checks, as plain functions ----------------------------------------------------


def _ops(*specs: tuple[str, str, int]) -> list[Operation]:
    return [Operation(op_id, "gift", attempts, outcome) for op_id, outcome, attempts in specs]


def test_a_journal_holding_an_id_twice_is_a_duplicate() -> None:
    ops = _ops(("t1", ACKED, 1), ("t2", ACKED, 3))
    check = check_journal("gifts", ops, ["t1", "t2", "t2"])
    assert (check.acknowledged, check.lost, check.duplicated, check.ok) == (2, 0, 1, False)
    assert "t2" in check.problems[0]
    # an id nobody sent, twice, is a duplicate too
    assert check_journal("gifts", [], ["x", "x"]).duplicated == 1


def test_an_acknowledged_id_missing_from_the_journal_is_lost() -> None:
    check = check_journal("gifts", _ops(("t1", ACKED, 1), ("t2", ACKED, 1)), ["t1"])
    assert (check.lost, check.duplicated, check.ok) == (1, 0, False)


def test_unanswered_ids_may_be_applied_once_refused_ones_never() -> None:
    ops = _ops(("u1", UNKNOWN, 4), ("u2", UNKNOWN, 4), ("r1", REFUSED, 1), ("r2", REFUSED, 2))
    check = check_journal("gifts", ops, ["u1", "r2"])
    assert check.ok is True  # r2 was sent twice: its first attempt may have applied
    assert check.extra["unknown_applied"] == 1
    phantom = check_journal("gifts", ops, ["r1"])
    assert not phantom.ok and phantom.extra["refused_but_applied"] == 1


def test_every_retried_id_is_applied_once() -> None:
    ops = _ops(("a", ACKED, 1), ("b", ACKED, 3), ("c", ACKED, 2), ("d", UNKNOWN, 5))
    good = check_retried(ops, ["a", "b", "c"])
    assert (good.operations, good.acknowledged, good.ok) == (3, 2, True)
    twice = check_retried(ops, ["a", "b", "b", "c", "d", "d"])
    assert (twice.duplicated, twice.ok) == (2, False)
    lost = check_retried(ops, ["a", "b"])
    assert (lost.lost, lost.ok) == (1, False)


def test_chat_lines_lost_or_written_twice_are_reported() -> None:
    history = ["1-0", "2-0", "3-0"]
    assert check_lines("chat", 3, ["1-0", "3-0"], history, ["a", "b", "c"]).ok
    lost = check_lines("chat", 3, ["1-0", "4-0"], history)
    assert (lost.lost, lost.ok) == (1, False)
    twice = check_lines("chat", 3, ["1-0"], history, ["a", "a", "c"])
    assert (twice.duplicated, twice.ok) == (1, False)


def test_a_catch_up_by_id_must_leave_no_hole() -> None:
    history = ["1-0", "2-0", "2-1", "10-0"]
    assert view_gaps(["2-0", "2-1", "10-0"], history) == (0, 0)  # joined late: fine
    assert view_gaps(["1-0", "10-0"], history) == (2, 0)         # 2-0 and 2-1 skipped
    assert view_gaps(["1-0", "2-0", "2-1", "10-0", "11-0"], history) == (0, 1)  # vanished
    check = check_views("catch-up", {"m1": history, "m2": ["1-0", "10-0"]}, history)
    assert (check.acknowledged, check.lost, check.ok) == (1, 2, False)


def test_every_follower_told_once() -> None:
    assert check_fanout(3, {"a": 1, "b": 1, "c": 1}, {"a": 1}).ok
    missing = check_fanout(3, {"a": 1, "b": 0, "c": 1})
    assert (missing.lost, missing.ok) == (1, False)
    twice = check_fanout(2, {"a": 2, "b": 1}, {"b": 2})
    assert (twice.duplicated, twice.ok) == (2, False)
    # a push lost with its node is not a loss (the inbox has it); a missing inbox line is
    assert check_fanout(1, {"a": 1}, {"a": 0}).ok


def test_the_schedule_takes_every_kind_and_every_node_in_turn() -> None:
    steps = plan(KINDS, ["node-a", "node-b"])
    first = [next(steps) for _ in range(2 * len(KINDS))]
    assert {kind for kind, _ in first} == set(KINDS)
    assert [t for k, t in first if k == SERVER_KILL] == ["node-a", "node-b"]
    log = FaultLog([Fault(REDIS_PAUSE, "redis", 10.0, 13.0, True)])
    assert len(log.during(12.0, 20.0)) == 1 and not log.during(13.5, 20.0)


def test_a_run_passes_only_with_faults_all_survived_and_every_row_ok() -> None:
    row = Row("gifts", 10, 1, 10, 0, 0, True).as_dict()
    fault = Fault(REDIS_PAUSE, "redis", 1.0, 2.0, True).as_dict()
    assert passed({"rows": [row], "faults": [fault], "errors": []})
    assert not passed({"rows": [row], "faults": [], "errors": []})  # proves nothing
    assert not passed({"rows": [row], "faults": [{**fault, "survived": False}], "errors": []})
    assert not passed({"rows": [{**row, "lost": 1, "ok": False}], "faults": [fault],
                       "errors": []})
    assert "FAILED" in render({"rows": [{**row, "ok": False, "note": ""}], "faults": []})


# --- real processes ----------------------------------------------------------------------


def _result(out: Path) -> dict[str, Any]:
    (path,) = out.glob("chaos-*/result.json")
    return dict(json.loads(path.read_text()))


def test_a_short_campaign_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """~25 s of faults (every kind at least once: node kills, Redis restarts from the
    AOF, a SIGKILLed Redis, a paused Redis) under gifts, purchases, chat and DMs, then
    the fan-out with its node killed mid-job, then a few fuzz cases; exit 0, every row
    0 lost and 0 duplicated, every fault survived, and nothing it started left running."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--seconds", "16", "--fault-gap", "1",
         "--senders", "4", "--members", "3", "--dm-pairs", "1", "--followers", "5000",
         "--fuzz-cases", "150", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = _result(tmp_path)
    rows = {r["workload"]: r for r in result["rows"]}
    assert set(rows) >= {"gifts", "coin purchases", "retried ids", "golive ledger audit",
                         "chat lines", "chat catch-up by id", "direct messages",
                         "go-live fan-out", "fuzzing", "server logs"}
    for row in result["rows"]:
        assert (row["lost"], row["duplicated"], row["ok"]) == (0, 0, True), row
    assert rows["gifts"]["acknowledged"] > 0 and rows["chat lines"]["acknowledged"] > 0
    assert rows["go-live fan-out"]["faults"] >= 1  # its node was killed mid-job
    assert {f["kind"] for f in result["faults"]} == set(KINDS)
    assert all(f["survived"] for f in result["faults"])
    assert result["redis"]["appendfsync"] == "always"
    assert "CHAOS PASSED" in done.stdout
    for name in (b"redis-server", b"signaling.cli"):
        assert processes_mentioning(str(tmp_path), name) == []


async def test_a_failed_invariant_fails_the_run(tmp_path: Path) -> None:
    """A phase whose row reports a loss: the run exits 1, says FAILED, and stops its
    redis-server and node all the same."""
    from bench.chaos import faults
    from bench.chaos.cli import execute

    async def lossy(c: Campaign) -> list[Row]:
        c.faults.faults.append(await faults.inject(c.cluster, REDIS_PAUSE, "redis",
                                                   pause_s=0.2))
        return [Row("gifts", 2, 1, 2, 1, 0, False, problems=["acknowledged, not stored"])]

    args = argparse.Namespace(seconds=10.0, nodes=1, redis_fsync="always", out=tmp_path)
    assert await execute(args, phases=[lossy]) == 1
    result = _result(tmp_path)
    assert result["passed"] is False and result["faults"][0]["survived"] is True
    for name in (b"redis-server", b"signaling.cli"):
        assert processes_mentioning(str(tmp_path), name) == []
