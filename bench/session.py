"""One bench run's processes: the server (started here or at --url), the stamped creator and
the viewer workers; the accounts they use; and the requests that drive the workers.

The server is golive, or with `baseline="naive"` the naive aiortc relay (bench.baselines),
always started here; the creator and the viewer workers are the same for both.

Ownership: BenchSession owns every process it starts. close() stops them in order (viewer
workers, creator, server) and is safe to call twice; kill_now() is for a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.baselines import BaselineServer, local_accounts, naive_relay_server
from bench.processes import Child, ChildError, CpuMeter, rss_bytes
from bench.report import Progress, pct
from bench.target import Account, LocalServer, TargetError, register_accounts, sign_in
from signaling.tasks import cancel_and_wait

JOIN_TIMEOUT_S = 30.0  # per viewer: signaling, ICE, DTLS and the first keyframe
READY_TIMEOUT_S = 60.0
WORKER_CALL_TIMEOUT_S = 60.0
STATUS_PERIOD_S = 1.0


def default_workers(local_server: bool) -> int:
    """One worker per core, minus the one core the server's event loop uses; at least 1."""
    cores = os.cpu_count() or 1
    return max(1, cores - 1) if local_server else max(1, cores)


def placement(pin: bool) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """(server CPUs, load CPUs): with `pin` and 2+ CPUs, the server gets the first CPU of
    this process's affinity and the creator and viewer workers the rest."""
    allowed = sorted(os.sched_getaffinity(0))
    if not pin or len(allowed) < 2:
        return None, None
    return frozenset(allowed[:1]), frozenset(allowed[1:])


class BenchSession:
    """Starts, drives and stops everything one run needs."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, progress: Progress,
                 baseline: str | None = None) -> None:
        self.args = args
        self.run_dir = run_dir
        self.progress = progress
        self.baseline = baseline  # None: golive; "naive": the baseline, always started here
        self.server: LocalServer | BaselineServer | None = None
        self.url: str = "" if baseline else (args.url or "").rstrip("/")
        self.server_pid: int | None = None if baseline else args.server_pid
        self.creator: Child | None = None
        self.workers: list[Child] = []
        self.creator_id = ""
        self.live_id = ""
        self.accounts: list[Account] = []
        self.viewers_started = 0  # global index of the next viewer
        self.local = not self.url  # the server is started here (golive serve or a baseline)
        self.server_cpus, self.load_cpus = placement(args.pin and self.local)
        self._closing: asyncio.Future[None] | None = None

    @property
    def worker_count(self) -> int:
        return self.args.workers or default_workers(self.local)

    def pids(self) -> dict[str, int]:
        """Processes whose CPU the bench reports, by name."""
        pids: dict[str, int] = {"bench": os.getpid()}  # this process: not "other" load
        if self.server_pid:
            pids["server"] = self.server_pid
        if self.server is not None and (redis := self.server.redis_pid()):
            pids["redis"] = redis
        if self.creator is not None:
            pids["creator"] = self.creator.pid
        for i, worker in enumerate(self.workers):
            pids[f"worker{i}"] = worker.pid
        return pids

    def describe(self) -> dict[str, Any]:
        """What the result JSON records about the run's processes."""
        return {"url": self.url, "live_id": self.live_id,
                "processes": self.pids(),  # name -> pid, for post-mortems
                "cpus": {"server": sorted(self.server_cpus or []) or "any",
                         "load": sorted(self.load_cpus or []) or "any"}}

    def server_rss(self) -> int | None:
        return rss_bytes(self.server_pid) if self.server_pid else None

    def meter(self) -> CpuMeter:
        return CpuMeter(self.pids())

    # --- start and stop ------------------------------------------------------

    async def open(self, viewer_count: int) -> None:
        """Server, accounts, the creator live, the idle workers."""
        if self.baseline:
            self.progress.update(f"starting the {self.baseline} baseline server")
            self.server = naive_relay_server(self.run_dir, self.server_cpus, self.args.codec,
                                             self.args.bitrate)
        elif not self.url:
            self.progress.update("starting golive serve")
            extra = dict(kv.split("=", 1) for kv in self.args.server_env)
            extra.setdefault("GOLIVE_VIDEO_CODEC", self.args.codec)
            extra.setdefault("GOLIVE_VIDEO_BITRATE", str(self.args.bitrate))
            # One rendition at that bitrate (every viewer the same stream), unless the
            # run asks for a ladder: the fan-out figures stay comparable across runs.
            extra.setdefault("GOLIVE_RENDITIONS", "720")
            self.server = LocalServer(self.run_dir, extra, self.server_cpus)
        if self.server is not None:
            await self.server.start()
            self.url = self.server.url
            self.server_pid = self.server.pid
        if self.baseline:  # no accounts there: any token is the user id
            creator, *self.accounts = local_accounts(viewer_count + 1)
        else:
            creator = await self._creator_account()
            self.progress.update(f"registering {viewer_count} viewer accounts")
            self.accounts = await register_accounts(
                self.url, viewer_count,
                on_progress=lambda done, n: self.progress.update(
                    f"registered {done}/{n} viewers"))
        await self._start_creator(creator)
        self.progress.update(f"starting {self.worker_count} viewer worker(s)")
        self.workers = [self._worker(i) for i in range(self.worker_count)]
        await asyncio.gather(*(w.start() for w in self.workers))
        # a status round trip: every worker imported aiortc and reads its stdin
        await asyncio.gather(*(w.call("status", READY_TIMEOUT_S) for w in self.workers))

    async def _creator_account(self) -> Account:
        if self.args.creator_user:
            if not self.args.creator_password:
                raise TargetError("--creator-user needs --creator-password")
            return await sign_in(self.url, self.args.creator_user, self.args.creator_password)
        return (await register_accounts(self.url, 1))[0]

    async def _start_creator(self, account: Account) -> None:
        size = f"{self.args.size[0]}x{self.args.size[1]}"
        self.progress.update(f"creator going live ({size}@{self.args.fps:g})")
        self.creator = Child(
            "creator", [sys.executable, "-m", "bench.creator", "--url", self.url,
                        "--size", size, "--fps", str(self.args.fps)],
            self.run_dir / "creator.log", rpc=True, cpus=self.load_cpus,
            env={**os.environ, "GOLIVE_BENCH_TOKEN": account.token})
        await self.creator.start()
        ready = await self.creator.next_event(READY_TIMEOUT_S)
        if ready.get("event") != "ready":
            raise ChildError(f"creator: {ready.get('error') or ready}")
        self.creator_id, self.live_id = ready["creator_id"], ready["live_id"]

    def _worker(self, index: int) -> Child:
        argv = [sys.executable, "-m", "bench.viewers", "--url", self.url,
                "--creator-id", self.creator_id, "--codec", self.args.codec]
        if self.args.decode:
            argv.append("--decode")
        return Child(f"worker{index}", argv, self.run_dir / f"worker{index}.log", rpc=True,
                     cpus=self.load_cpus)

    async def close(self) -> None:
        """Stop the workers (their viewers leave), the creator (ends the live), the server.
        Idempotent; the closing runs to the end even when a caller is cancelled (a Ctrl-C
        during it): a later call waits for the same one."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        await asyncio.gather(*(w.stop(grace=20.0) for w in self.workers),
                             return_exceptions=True)
        if self.creator is not None:
            await self.creator.stop()
        if self.server is not None:
            await self.server.stop()

    def kill_now(self) -> None:
        """SIGKILL every process group we started (a second Ctrl-C)."""
        for child in [*self.workers, self.creator]:
            if child is not None:
                child.signal_group(signal.SIGKILL)
        if self.server is not None:
            self.server.kill_now()

    # --- driving the workers ----------------------------------------------------

    async def add_viewers(self, count: int, rate: float, label: str,
                          probes_from: int = 0) -> list[dict[str, Any]]:
        """Join `count` more viewers at `rate` per second in all, spread over the workers
        round-robin (each worker's first viewers from number `probes_from` on are its
        probes). Returns join figures."""
        first = self.viewers_started
        if first + count > len(self.accounts):
            raise ValueError("more viewers than registered accounts")
        n_workers = len(self.workers)
        batches: list[list[dict[str, Any]]] = [[] for _ in range(n_workers)]
        for k in range(count):
            i = first + k
            account = self.accounts[i]
            batches[i % n_workers].append({
                "id": account.username, "token": account.token, "at": k / rate,
                "probe": 0 <= i - probes_from < n_workers * self.args.probes})
        self.viewers_started += count
        start_at = time.time() + 0.3  # every worker has the request by then
        timeout = JOIN_TIMEOUT_S
        budget = count / rate + timeout + 30
        calls = [asyncio.ensure_future(w.call("join", budget, viewers=batch,
                                              start_at=start_at, join_timeout=timeout))
                 for w, batch in zip(self.workers, batches, strict=True) if batch]
        watcher = asyncio.create_task(self._watch_joins(label, first + count))
        try:
            answers = await asyncio.gather(*calls)
        finally:
            await cancel_and_wait(watcher)
            for call in calls:
                call.cancel()
        return [figures for answer in answers for figures in answer["joined"]]

    async def _watch_joins(self, label: str, total: int) -> None:
        meter = self.meter()
        meter.start()
        while True:
            await asyncio.sleep(STATUS_PERIOD_S)
            states = await self.status()
            cpu = meter.read()["cores"].get("server")
            meter.start()
            watching = states.get("watching", 0)
            self.progress.update(
                f"{label}: joining {watching}/{total} watching, {states.get('joining', 0)} "
                f"joining, {states.get('failed', 0)} failed | server "
                f"{pct(cpu) or '?'} CPU")

    async def leave(self, ids: list[str]) -> int:
        """These viewers leave (the others stay); how many did."""
        answers = await asyncio.gather(*(w.call("leave", WORKER_CALL_TIMEOUT_S, ids=ids)
                                         for w in self.workers))
        return sum(int(a["left"]) for a in answers)

    async def status(self) -> dict[str, int]:
        states: dict[str, int] = {}
        for answer in await asyncio.gather(*(w.call("status", WORKER_CALL_TIMEOUT_S)
                                             for w in self.workers)):
            for state, n in answer["states"].items():
                states[state] = states.get(state, 0) + n
        return states

    async def mark(self) -> int:
        """Open a measurement window on every worker; returns the creator's frame count."""
        await asyncio.gather(*(w.call("mark", WORKER_CALL_TIMEOUT_S) for w in self.workers))
        return await self.creator_frames()

    async def collect(self) -> dict[str, Any]:
        """Every worker's window, merged."""
        answers = await asyncio.gather(*(w.call("collect", WORKER_CALL_TIMEOUT_S)
                                         for w in self.workers))
        merged: dict[str, Any] = {"seconds": max(a["seconds"] for a in answers),
                                  "viewers": []}
        for key in ("latency_arrival_ms", "latency_decoded_ms", "spread_ms",
                    "probe_spread_ms"):
            merged[key] = [x for a in answers for x in a[key]]
        for answer in answers:
            merged["viewers"].extend(answer["viewers"])
        return merged

    async def creator_frames(self) -> int:
        """Frames the creator has sent; ChildError (with the server's reason, when it ended
        the live) once the creator is no longer live."""
        assert self.creator is not None
        try:
            answer = await self.creator.call("stats", WORKER_CALL_TIMEOUT_S)
        except ChildError as exc:
            ended = [e for e in self.creator.drain_events() if e.get("event") == "ended"]
            if ended:
                raise ChildError(f"the server ended the live: {ended[-1].get('reason')} "
                                 f"({exc})") from None
            raise
        if not answer["live"]:
            raise ChildError("the creator's live has ended")
        return int(answer["frames_sent"])

