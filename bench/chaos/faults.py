"""The faults a chaos run injects, one at a time on a schedule, and their log.

- server_kill: `golive serve` gets SIGKILL (no shutdown: sockets cut, jobs claimed, lives
  hosted) and is started again under the same node id and port;
- redis_restart: SIGTERM to redis-server (it flushes the AOF and exits), started again:
  it reloads the AOF;
- redis_kill: SIGKILL to redis-server (a crash), started again from the AOF: with
  appendfsync always nothing acknowledged may be missing;
- redis_pause: SIGSTOP for a few seconds, then SIGCONT: connections stay open, every
  call waits (clients time out and retry meanwhile).

A fault counts as survived when, once it is over, every node runs and answers /healthz
within cluster.HEALTHY_S (30 s). Each record keeps when it began and ended, so a
workload can say how many faults fell during it.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.chaos.cluster import Cluster

SERVER_KILL, REDIS_RESTART, REDIS_KILL, REDIS_PAUSE = (
    "server_kill", "redis_restart", "redis_kill", "redis_pause")
# Quick ones first: a short run (CI) gets every kind before a node restart takes its seconds
KINDS = (REDIS_PAUSE, REDIS_RESTART, REDIS_KILL, SERVER_KILL)
DESCRIBED = {
    SERVER_KILL: "golive serve SIGKILLed, restarted (same node id and port)",
    REDIS_RESTART: "redis-server SIGTERM, restarted (AOF reload)",
    REDIS_KILL: "redis-server SIGKILL, restarted (AOF reload)",
    REDIS_PAUSE: "redis-server SIGSTOP for a few seconds, then SIGCONT",
}


@dataclass
class Fault:
    """One injected fault: what, on which process, when, and whether all came back."""

    kind: str
    target: str
    began: float                 # time.monotonic()
    ended: float = 0.0
    survived: bool = False
    recovery_s: float = 0.0      # from the end of the fault to every node healthy
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class FaultLog:
    """Every fault of a run, in order."""

    faults: list[Fault] = field(default_factory=list)

    def during(self, start: float, end: float) -> list[Fault]:
        """The faults that began or ended inside [start, end] (monotonic)."""
        return [f for f in self.faults if f.began <= end and (f.ended or f.began) >= start]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per kind: injected, survived, the longest fault (a kill: until the process
        answers again) and the slowest recovery after it (every node healthy)."""
        out: dict[str, dict[str, Any]] = {}
        for f in self.faults:
            row = out.setdefault(f.kind, {"injected": 0, "survived": 0, "longest_s": 0.0,
                                          "recovery_max_s": 0.0,
                                          "what": DESCRIBED.get(f.kind, f.kind)})
            row["injected"] += 1
            row["survived"] += f.survived
            row["longest_s"] = round(max(row["longest_s"], f.ended - f.began), 2)
            row["recovery_max_s"] = round(max(row["recovery_max_s"], f.recovery_s), 2)
        return out

    @property
    def all_survived(self) -> bool:
        return all(f.survived for f in self.faults)


def plan(kinds: tuple[str, ...], nodes: list[str]) -> Iterator[tuple[str, str]]:
    """The schedule: the kinds in turn, forever; server kills take the nodes in turn."""
    targets = itertools.cycle(nodes)
    for kind in itertools.cycle(kinds):
        yield kind, next(targets) if kind == SERVER_KILL else "redis"


async def inject(cluster: Cluster, kind: str, target: str, *, pause_s: float) -> Fault:
    """Inject one fault, restore the process, and wait for every node to answer."""
    fault = Fault(kind, target, time.monotonic())
    try:
        if kind == SERVER_KILL:
            node = cluster.node(target)
            await node.kill()
            await node.start()
        elif kind == REDIS_RESTART:
            await cluster.redis.crash(signal.SIGTERM)
            await cluster.redis.start()
        elif kind == REDIS_KILL:
            await cluster.redis.crash(signal.SIGKILL)
            await cluster.redis.start()
        elif kind == REDIS_PAUSE:
            cluster.redis.pause()
            try:
                await asyncio.sleep(pause_s)
            finally:
                cluster.redis.resume()
        else:
            raise ValueError(f"unknown fault {kind!r}")
    except RuntimeError as exc:  # a process that did not come back
        fault.note = str(exc)
    fault.ended = time.monotonic()
    fault.survived = not fault.note and await cluster.all_healthy()
    fault.recovery_s = time.monotonic() - fault.ended
    return fault


async def run_schedule(cluster: Cluster, log: FaultLog, *, until: float, gap_s: float,
                       pause_s: float, kinds: tuple[str, ...] = KINDS,
                       max_faults: int = 0, progress: Any = None) -> None:
    """Inject faults from `plan`, `gap_s` of normal running before each, until the
    monotonic time `until` (or `max_faults`); a fault not survived ends the schedule."""
    for kind, target in plan(kinds, [n.name for n in cluster.nodes]):
        if max_faults and len(log.faults) >= max_faults:
            return
        await asyncio.sleep(gap_s)
        if time.monotonic() >= until:
            return
        fault = await inject(cluster, kind, target, pause_s=pause_s)
        log.faults.append(fault)
        if progress is not None:
            progress.note(f"fault {len(log.faults)}: {kind} {target}: "
                          f"{'survived' if fault.survived else 'NOT SURVIVED'} "
                          f"({fault.ended - fault.began:.1f} s, back in "
                          f"{fault.recovery_s:.1f} s){' ' + fault.note if fault.note else ''}")
        if not fault.survived:
            return


__all__ = ["DESCRIBED", "KINDS", "REDIS_KILL", "REDIS_PAUSE", "REDIS_RESTART", "SERVER_KILL",
           "Fault", "FaultLog", "inject", "plan", "run_schedule"]
