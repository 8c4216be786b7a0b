"""The processes the bench starts, and what /proc says about them.

Every child runs in its own session (a terminal's Ctrl-C reaches only the bench, which then
stops the children in order: viewers, creator, server) and gets SIGTERM from the kernel if
the bench dies outright (PR_SET_PDEATHSIG), so a SIGKILLed bench leaves no orphans either.
stop() closes stdin, waits, sends SIGTERM to the child's process group, waits, then SIGKILL.
A child may be pinned to CPUs (sched_setaffinity), e.g. the server on one core and the load
on the others, so the load cannot steal the server's core.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.rpc import MAX_LINE_BYTES

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl  # resolved in the parent: the child only calls it between fork and exec


def die_with_parent() -> None:
    """SIGTERM this process when its parent dies (a preexec_fn: between fork and exec)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


_die_with_parent = die_with_parent


def _preexec(cpus: frozenset[int] | None) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec: syscalls only
        _die_with_parent()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


async def end_by_eof(proc: asyncio.subprocess.Process | None, grace: float = 5.0) -> None:
    """End a child whose stop is EOF on its stdin (bench/netns_viewer.py's viewer,
    tests/support/netns_creator.py's creator): close its stdin, wait up to `grace` s for it
    to exit, then SIGKILL and reap it. Nothing to do when it is None or already exited."""
    if proc is None or proc.returncode is not None:
        return
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()


class ChildError(RuntimeError):
    pass


class Child:
    """One process the bench started; optionally speaks bench.rpc on stdin/stdout."""

    def __init__(self, name: str, argv: list[str], log_path: Path, *, rpc: bool,
                 env: dict[str, str] | None = None, cpus: frozenset[int] | None = None) -> None:
        self.name = name
        self.cpus = cpus  # CPU affinity (None: any)
        self.argv = argv
        self.log_path = log_path
        self.rpc = rpc
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_rid = 0
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE if self.rpc else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if self.rpc else log_file,
                stderr=log_file, env=self.env, start_new_session=True,
                preexec_fn=_preexec(self.cpus), limit=MAX_LINE_BYTES)
        if self.rpc:
            self._reader = asyncio.create_task(self._read(), name=f"read-{self.name}")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # a stray print; the log has the child's stderr
                future = self._pending.pop(message.get("rid", -1), None)
                if future is not None:
                    if not future.done():
                        future.set_result(message)
                elif not self.events.full():
                    self.events.put_nowait(message)
        finally:
            await self.proc.wait()
            gone = ChildError(f"{self.name} {self.exit_status()}; see {self.log_path}")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(gone)
            self._pending.clear()

    def exit_status(self) -> str:
        code = None if self.proc is None else self.proc.returncode
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"

    async def call(self, op: str, timeout: float, **payload: Any) -> dict[str, Any]:
        """Send one request and wait for its answer; ChildError on refusal, exit or timeout."""
        if not self.running or self.proc is None or self.proc.stdin is None:
            raise ChildError(f"{self.name} is not running ({self.exit_status()}); "
                             f"see {self.log_path}")
        self._next_rid += 1
        rid = self._next_rid
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self.proc.stdin.write(json.dumps({"rid": rid, "op": op, **payload}).encode() + b"\n")
        try:
            await self.proc.stdin.drain()
            async with asyncio.timeout(timeout):
                answer = await future
        except TimeoutError:
            raise ChildError(f"{self.name}: no answer to {op} within {timeout:g} s") from None
        except (BrokenPipeError, ConnectionResetError):
            raise ChildError(f"{self.name} is gone; see {self.log_path}") from None
        finally:
            self._pending.pop(rid, None)
        if not answer.get("ok"):
            raise ChildError(f"{self.name}: {op} failed: {answer.get('error')}")
        return answer

    def drain_events(self) -> list[dict[str, Any]]:
        """Every event received and not yet consumed."""
        events = []
        while not self.events.empty():
            events.append(self.events.get_nowait())
        return events

    async def next_event(self, timeout: float) -> dict[str, Any]:
        """The next line without a rid (e.g. {"event": "ready"}); ChildError past timeout."""
        getter = asyncio.ensure_future(self.events.get())
        waiters: set[asyncio.Future[Any]] = {getter}
        if self._reader is not None:
            waiters.add(self._reader)
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if self._reader is not None and self._reader.done():
            raise ChildError(f"{self.name} exited before it was ready; see {self.log_path}")
        raise ChildError(f"{self.name}: not ready within {timeout:g} s; see {self.log_path}")

    async def stop(self, grace: float = 10.0, term_grace: float = 5.0) -> int | None:
        """Stop the child: EOF on stdin (rpc children) or SIGTERM, then SIGKILL. Idempotent."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            if self.rpc and proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()
            else:
                self.signal_group(signal.SIGTERM)
            if not await self._wait(grace):
                self.signal_group(signal.SIGTERM)
                if not await self._wait(term_grace):
                    self.signal_group(signal.SIGKILL)
                    await self._wait(5.0)
        # the whole group: anything the child started and left behind
        self.signal_group(signal.SIGKILL)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5.0)
        return proc.returncode

    async def _wait(self, timeout: float) -> bool:
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def signal_group(self, sig: int) -> None:
        """Signal the child's process group (its session leader's pid). Never raises."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


# --- /proc ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14, 15 of stat(5)


def rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return total - idle, total


@dataclass
class CpuMeter:
    """CPU used by named processes (in cores) and by the machine, between start and read."""

    pids: dict[str, int]
    clock: Callable[[], float] = field(default=lambda: asyncio.get_running_loop().time())
    _start: dict[str, float | None] = field(default_factory=dict)
    _host: tuple[float, float] = (0.0, 0.0)
    _t0: float = 0.0

    def start(self) -> None:
        self._t0 = self.clock()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._host = host_cpu()

    def read(self) -> dict[str, Any]:
        """{"seconds", "cores": {name: cores or None}, "host_busy": fraction of all cores,
        "others": cores used by processes not named here (other work on the machine)}."""
        seconds = max(1e-6, self.clock() - self._t0)
        cores: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            now, then = cpu_seconds(pid), self._start.get(name)
            cores[name] = None if now is None or then is None else round(
                (now - then) / seconds, 4)
        busy, total = host_cpu()
        host_busy = (busy - self._host[0]) / max(1.0, total - self._host[1])
        ours = sum(c for c in cores.values() if c is not None)
        return {"seconds": round(seconds, 3), "cores": cores,
                "host_busy": round(host_busy, 4),
                "others": round(max(0.0, host_busy * (os.cpu_count() or 1) - ours), 4)}
