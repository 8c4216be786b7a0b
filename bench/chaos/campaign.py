"""A chaos run: what its phases share (the Campaign), the rows they return, and the run of
them in order (run_phases).

A phase is an async callable taking the Campaign and returning rows of the table
(bench/chaos/report.py); bench/chaos/phases.py lists them. Each row says what ran, how
many operations, how many faults fell during it, what was acknowledged, lost and
duplicated, and whether its invariant held.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos import faults as F
from bench.chaos.cluster import Cluster
from bench.chaos.invariants import Check
from bench.target import Account, register_accounts


@dataclass
class Row:
    """One line of the table."""

    workload: str
    operations: int
    faults: int
    acknowledged: int
    lost: int
    duplicated: int
    ok: bool
    note: str = ""
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, check: Check, faults: int, note: str = "") -> Row:
        return cls(check.name, check.operations, faults, check.acknowledged, check.lost,
                   check.duplicated, check.ok, note, list(check.problems), dict(check.extra))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Campaign:
    """What every phase shares: the settings, the cluster, the fault log, the output."""

    args: Any
    run_dir: Path
    cluster: Cluster
    progress: Any
    faults: F.FaultLog = field(default_factory=F.FaultLog)
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    result: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.progress.note(text)

    async def accounts(self, count: int, prefix: str) -> list[Account]:
        return await register_accounts(self.cluster.urls[0], count, prefix=f"{prefix}{self.tag}")

    async def close_all(self) -> None:
        while self.closers:
            closer = self.closers.pop()
            try:
                await asyncio.wait_for(closer(), 30)
            except Exception as exc:  # closing must go on: every process is stopped later
                self.note(f"closing: {type(exc).__name__}: {exc}")


Phase = Callable[[Campaign], Awaitable[list[Row]]]


async def run_phases(c: Campaign, phases: list[Phase]) -> list[Row]:
    """Start the cluster, run each phase (closing its clients after it), and add the
    check of the server logs. The rows of every phase, in order."""
    c.progress.update(f"starting redis-server (appendfsync {c.args.redis_fsync}) and "
                      f"{c.args.nodes} golive nodes")
    await c.cluster.start()
    c.result["redis"] = await _redis_info(c.cluster)
    rows: list[Row] = []
    for phase in phases:
        c.progress.update(f"phase {phase.__name__}")
        try:
            rows += await phase(c)
        finally:
            await c.close_all()
    rows.append(logs_row(c.cluster, len(c.faults.faults)))
    return rows


async def _redis_info(cluster: Cluster) -> dict[str, Any]:
    redis = cluster.client()
    try:
        info = await redis.info("server")
        conf = await redis.config_get("appendfsync")
        return {"version": info.get("redis_version"), "appendfsync": conf.get("appendfsync"),
                "appendonly": (await redis.config_get("appendonly")).get("appendonly")}
    finally:
        await redis.aclose()


def logs_row(cluster: Cluster, faults: int) -> Row:
    """Tracebacks in the nodes' logs: a handled fault logs a line, never a traceback."""
    lines = tracebacks = 0
    samples: list[str] = []
    for node in cluster.nodes:
        text = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
        for line in text.splitlines():
            lines += 1
            if "Traceback" in line:
                tracebacks += 1
                if len(samples) < 3:
                    samples.append(f"{node.name}: {line[:300]}")
    return Row("server logs", lines, faults, lines - tracebacks, 0, 0, tracebacks == 0,
               f"{tracebacks} tracebacks", samples)


__all__ = ["Campaign", "Phase", "Row", "logs_row", "run_phases"]
