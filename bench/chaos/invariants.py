"""What must hold after the faults, as plain functions over plain data: the clients'
records on one side, what Redis (or the server's history) holds on the other.

Each check returns a Check: counts (acknowledged, lost, duplicated, ...) and `ok`. None
of them does I/O; bench/chaos/workloads.py gathers the inputs, tests call them directly
with made-up records (a journal holding an id twice must be reported).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from golive.chat import chat_id as id_key

ACKED, REFUSED, UNKNOWN = "acked", "refused", "unknown"


@dataclass
class Operation:
    """One client operation with an idempotency id (a gift's transfer id, a purchase's
    checkout id): every attempt sent the same id; `outcome` is the definite answer
    (acked or refused) or unknown when the client gave up."""

    op_id: str
    kind: str                  # "gift" or "purchase"
    attempts: int = 0
    outcome: str = UNKNOWN
    code: str = ""             # the refusal's error code
    replayed: bool = False     # the ack said replayed: an earlier attempt had applied it


@dataclass
class Check:
    """One invariant's verdict and the counts behind it."""

    name: str
    operations: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and not self.problems


def _sample(items: Iterable[str], n: int = 5) -> str:
    items = sorted(items)
    return ", ".join(items[:n]) + (" ..." if len(items) > n else "")


def check_journal(name: str, operations: Sequence[Operation],
                  journal_ops: Iterable[str]) -> Check:
    """Every acknowledged operation in the journal exactly once; no id there twice; a
    refused one (answered on its first attempt) not there at all.

    `journal_ops`: the op id of every journal entry of this kind, as the journal holds
    them (one per entry, repeats included)."""
    counts = Counter(journal_ops)
    check = Check(name, operations=len(operations))
    lost, twice, phantom = [], [], []
    for op in operations:
        n = counts.get(op.op_id, 0)
        if op.outcome == ACKED:
            check.acknowledged += 1
            if n == 0:
                lost.append(op.op_id)
        elif op.outcome == REFUSED and op.attempts == 1 and n:
            phantom.append(op.op_id)  # told "no" while the money moved
        if n > 1:
            twice.append(op.op_id)
    mine = {op.op_id for op in operations}
    twice += [op_id for op_id, n in counts.items() if n > 1 and op_id not in mine]
    check.lost, check.duplicated = len(lost), len(twice)
    check.extra = {"refused": sum(op.outcome == REFUSED for op in operations),
                   "unknown": sum(op.outcome == UNKNOWN for op in operations),
                   "unknown_applied": sum(op.outcome == UNKNOWN and counts.get(op.op_id, 0) > 0
                                          for op in operations),
                   "refused_but_applied": len(phantom)}
    if lost:
        check.problems.append(f"acknowledged but not in the journal: {_sample(lost)}")
    if twice:
        check.problems.append(f"in the journal more than once: {_sample(twice)}")
    if phantom:
        check.problems.append(f"refused but in the journal: {_sample(phantom)}")
    return check


def check_retried(operations: Sequence[Operation], journal_ops: Iterable[str]) -> Check:
    """Every id sent more than once (a timeout, `unavailable`, a dropped connection)
    applied once: once when acknowledged, at most once otherwise."""
    counts = Counter(journal_ops)
    retried = [op for op in operations if op.attempts > 1]
    check = Check("retried ids", operations=len(retried))
    lost = [op.op_id for op in retried if op.outcome == ACKED and counts.get(op.op_id, 0) == 0]
    twice = [op.op_id for op in retried if counts.get(op.op_id, 0) > 1]
    check.acknowledged = sum(op.outcome == ACKED for op in retried)
    check.lost, check.duplicated = len(lost), len(twice)
    check.extra = {"replayed_acks": sum(op.replayed for op in retried),
                   "attempts": sum(op.attempts for op in retried)}
    if lost:
        check.problems.append(f"retried, acknowledged, not applied: {_sample(lost)}")
    if twice:
        check.problems.append(f"retried and applied more than once: {_sample(twice)}")
    return check


def check_lines(name: str, sent: int, acked_ids: Iterable[str],
                server_ids: Sequence[str], server_texts: Sequence[str] = ()) -> Check:
    """Chat lines or DMs: every acknowledged id in the server's final history, no id and
    no text (each send's text is unique) there twice."""
    acked = list(acked_ids)
    held = Counter(server_ids)
    check = Check(name, operations=sent, acknowledged=len(acked))
    lost = [i for i in acked if i not in held]
    twice = [i for i, n in held.items() if n > 1]
    twice += [f"text {t!r}" for t, n in Counter(server_texts).items() if n > 1]
    check.lost, check.duplicated = len(lost), len(twice)
    if lost:
        check.problems.append(f"acknowledged, not in the history: {_sample(lost)}")
    if twice:
        check.problems.append(f"in the history more than once: {_sample(twice)}")
    return check


def view_gaps(view: Iterable[str], server_ids: Sequence[str]) -> tuple[int, int]:
    """A client's view (the ids it showed, pushes and catch-ups together) against the
    server's order: (missing, foreign). The view must hold every id of the history from
    its first one on (a catch-up by id leaves no hole) and nothing the history lacks."""
    seen = set(view)
    if not seen:
        return 0, 0
    first = min(seen, key=id_key)
    tail = [i for i in server_ids if id_key(i) >= id_key(first)]
    missing = sum(1 for i in tail if i not in seen)
    foreign = len(seen - set(server_ids))
    return missing, foreign


def check_views(name: str, views: Mapping[str, Iterable[str]],
                server_ids: Sequence[str]) -> Check:
    """Catch-up by id is exact for every client: nothing missing, nothing foreign."""
    check = Check(name, operations=len(views))
    for who, view in views.items():
        missing, foreign = view_gaps(view, server_ids)
        check.lost += missing
        check.duplicated += foreign
        if missing or foreign:
            check.problems.append(f"{who}: {missing} missing, {foreign} not in the history")
        else:
            check.acknowledged += 1
    return check


def check_fanout(followers: int, notified: Mapping[str, int],
                 pushes: Mapping[str, int] | None = None) -> Check:
    """Every follower told once: `notified` maps each follower to how many notifications
    of the live their inbox holds (1 each); `pushes` maps the online ones to the
    `notify:new` pushes of it they got (at most 1 each: a push sent by a node killed
    between the write and the push is lost, the inbox line is not)."""
    check = Check("go-live fan-out", operations=followers)
    check.acknowledged = sum(1 for n in notified.values() if n >= 1)
    check.lost = followers - check.acknowledged
    check.duplicated = sum(1 for n in notified.values() if n > 1)
    pushed_twice = sum(1 for n in (pushes or {}).values() if n > 1)
    check.duplicated += pushed_twice
    check.extra = {"online": len(pushes or {}),
                   "pushed": sum(1 for n in (pushes or {}).values() if n >= 1)}
    if check.lost:
        check.problems.append(f"{check.lost} followers not told")
    if check.duplicated:
        check.problems.append(f"{check.duplicated} told more than once")
    return check


__all__ = ["ACKED", "REFUSED", "UNKNOWN", "Check", "Operation", "check_fanout",
           "check_journal", "check_lines", "check_retried", "check_views", "id_key",
           "view_gaps"]
