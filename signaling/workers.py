"""`golive serve --workers N`: N worker processes behind the one HTTP/WebSocket port.

A node is one process with one event loop (signaling, the packet fan-out and every
task run on it), so one node uses one core. With `--workers N` (default: one per core;
`--workers 1` is the single process, no supervisor) a supervisor process runs N
workers, each a whole node: its own event loop, its own node id (`NODE/wI`, NODE
being GOLIVE_NODE_ID or HOST:PORT), its own UDP ports for media (aioice binds port 0
for every peer connection, so the kernel hands each socket a port no one holds).

How one port serves N processes: SO_REUSEPORT. Every worker binds the same
host:port with SO_REUSEPORT and the kernel spreads new connections over the
listening sockets by a hash of the connection's addresses. An accept-and-hand-off
front (one process accepting and passing descriptors over a unix socket) would add
a process every connection goes through, a single point of failure, and a hop a
websocket keeps for its whole life; SO_REUSEPORT costs nothing per connection and a
worker that dies leaves the group (its accepted connections die with it; new ones go
to the others). Its limits: Linux (and BSD) only; any process of the same user may
join the group; and a connection is never moved once accepted.

Stickiness: none, so Engine.IO long-polling cannot work here: each HTTP request of a
polling session is a new connection the kernel may give another worker, which
answers 400 "Invalid session". The pages (web/static/socket.js), `golive broadcast`
and the bench connect with `transports: ['websocket']`: a session is one connection,
held by one worker. So the workers accept websocket only (GOLIVE_TRANSPORTS is set to
`websocket` for them): a polling client is refused at once and always ("Invalid
transport"), not at random. Long-polling clients need one process per port and a
sticky front (by sid or client address) over several such nodes.

What the supervisor does once for the whole machine:
- the token secret: created in DATA_DIR/secret before any worker starts
  (signaling/config.py `Settings.token_secret`, which also creates it atomically);
- the embedded Redis (when REDIS_URL is unset): started once, here; it holds the data
  dir's lock; its URL goes to the workers as REDIS_URL;
- the port: bound here too (SO_REUSEPORT, never listening), which fails the start at
  once when another program holds it, resolves `--port 0`, and keeps the port ours
  while a worker restarts.
What stays per worker, by node id: the lives it hosts and their recovery after a crash
(engine/lives.py `recover_node`), its alert fan-out jobs, its node record (engine/nodes.py).

Supervision: a worker that exits is logged and restarted after 0.5 s, 1 s, 2 s ... at
most 10 s apart (the count resets once a worker has served for 30 s); restarts are
counted in the log lines. SIGTERM or SIGINT to the supervisor: every worker gets
SIGTERM (each ends its lives, closes its sockets and Redis), gets STOP_TIMEOUT_S in
all, then SIGKILL; then the embedded Redis stops; exit 0. Workers run in their own
session (a terminal's Ctrl-C reaches the supervisor only, which stops them in order)
with a parent-death signal, so a SIGKILLed supervisor takes them along.

The worker process is `python -m signaling.workers --ready-fd FD`: its settings come
from the environment the supervisor gives it (`Settings.to_env`), and it writes
"ready" on FD once its server is open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from signaling import logs
from signaling.config import Settings, add_arguments, settings_from_args
from signaling.embedded_redis import EmbeddedRedis, EmbeddedRedisError, die_with_parent
from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.workers")

T = TypeVar("T")

# A worker's start: ~1 s of imports, Redis, every feature; generous for a loaded machine.
READY_TIMEOUT_S = 60.0
# SIGTERM to exit for a worker: aiohttp's shutdown_timeout (1 s), ending its lives and
# closing sockets (Gateway.close: 2 s at most), Redis: ~1.5 s measured with a few tabs.
STOP_TIMEOUT_S = 10.0
# Restarts back off 0.5 s, 1 s, 2 s ... at most 10 s apart; a worker that served for
# HEALTHY_S starts again from 0.5 s.
RESTART_BACKOFF_S = (0.5, 10.0)
HEALTHY_S = 30.0

READY_LINE = b"ready\n"
CODE_ROOT = Path(__file__).resolve().parent.parent


# --- rules ---------------------------------------------------------------------

def worker_node_id(base: str, index: int) -> str:
    """The node id of worker `index` of a node named `base`."""
    return f"{base}/w{index}"


def restart_delay(failures: int) -> float:
    """Seconds before restarting a worker that died `failures` times in a row (1+)."""
    first, most = RESTART_BACKOFF_S
    return float(min(first * 2 ** max(failures - 1, 0), most))


def worker_env(settings: Settings, *, index: int, port: int, redis_url: str,
               base: dict[str, str]) -> dict[str, str]:
    """The environment of worker `index`: `base` (the supervisor's) without any setting
    of its own, then the supervisor's settings with the worker's own values."""
    setting_vars = {f.metadata["env"] for f in fields(Settings)}
    env = {k: v for k, v in base.items() if k not in setting_vars}
    env.update(settings.to_env())
    env.update({
        "GOLIVE_PORT": str(port),
        "REDIS_URL": redis_url,
        "GOLIVE_NODE_ID": worker_node_id(settings.node_name(), index),
        "GOLIVE_NODE_ADDRESS": settings.advertised_address(),
        "GOLIVE_WORKERS": "1",
        "GOLIVE_TRANSPORTS": "websocket",
    })
    if settings.relay_port:  # each worker its own relay port (0: each picks a free one)
        env["GOLIVE_RELAY_PORT"] = str(settings.relay_port + index)
    # The worker runs this very code, wherever it was imported from (a checkout run
    # from another directory, an install).
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(CODE_ROOT), base.get("PYTHONPATH", "")) if p)
    return env


# --- the port ------------------------------------------------------------------

def reserve_port(host: str, port: int) -> list[socket.socket]:
    """Bind (never listen on) host:port with SO_REUSEPORT for every address `host`
    resolves to: workers may then bind it, no other program can, and `port` 0 becomes
    a real port (the same on every address). Raises OSError when it is taken."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    held: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:  # as asyncio's create_server does
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(held) > 1:
                address = (address[0], held[0].getsockname()[1], *address[2:])
            sock.bind(address)
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return held


# --- the supervisor --------------------------------------------------------------

@dataclass
class Worker:
    """One worker slot: its process comes and goes, its index and node id stay."""

    index: int
    node_id: str
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    failures: int = 0   # deaths in a row without HEALTHY_S of service
    restarts: int = 0


class Supervisor:
    """Runs, watches and stops the workers of one `golive serve --workers N`."""

    def __init__(self, settings: Settings, count: int | None = None, *,
                 stop_timeout: float = STOP_TIMEOUT_S) -> None:
        self.settings = settings
        self.count = count if count is not None else settings.worker_count()
        self.stop_timeout = stop_timeout
        self.embedded: EmbeddedRedis | None = None
        self.workers: list[Worker] = []
        self.restarts = 0
        self._stop = asyncio.Event()
        self._held: list[socket.socket] = []
        self._env = dict(os.environ)
        self._env_for: dict[int, dict[str, str]] = {}  # worker index -> its environment

    async def run(self) -> int:
        """Until SIGTERM/SIGINT; 0 after an orderly stop, 1 when the start failed."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        watches: list[asyncio.Task[None]] = []
        try:
            return await self._serve(watches)
        finally:
            await cancel_and_wait(*watches)
            await self.stop_workers()
            if self.embedded is not None:
                await self.embedded.stop()
            for sock in self._held:
                sock.close()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            log.info("golive stopped", extra={"fields": {"restarts": self.restarts}})

    async def _serve(self, watches: list[asyncio.Task[None]]) -> int:
        settings = self.settings
        try:
            self._held = reserve_port(settings.host, settings.port)
        except OSError as exc:
            log.error("golive cannot start", extra={"fields": {
                "error": f"cannot bind {settings.host}:{settings.port}: {exc.strerror or exc}"}})
            return 1
        port = self._held[0].getsockname()[1]
        if port != settings.port:
            settings.port = port  # --port 0: every worker takes the one we got
        redis_url = settings.redis_url
        if not redis_url:
            self.embedded = EmbeddedRedis(settings.data_dir, fsync=settings.redis_fsync)
            try:
                await self._unless_stopped(self.embedded.start())
            except EmbeddedRedisError as exc:  # e.g. the data dir is another golive's
                log.error("golive cannot start", extra={"fields": {"error": str(exc)}})
                return 1
            if self._stop.is_set():
                return 0
            redis_url = self.embedded.url
        if "polling" in settings.transport_list():
            log.info("long-polling is off with several workers: websocket only",
                     extra={"fields": {"workers": self.count}})
        self.workers = [Worker(i, worker_node_id(settings.node_name(), i))
                        for i in range(self.count)]
        self._env_for = {w.index: worker_env(settings, index=w.index, port=port,
                                             redis_url=redis_url, base=self._env)
                         for w in self.workers}
        started = await self._unless_stopped(
            asyncio.gather(*(self._start(w) for w in self.workers)))
        if self._stop.is_set():
            return 0
        if started is None or not all(started):
            log.error("golive cannot start: a worker failed to start", extra={"fields": {
                "failed": [w.node_id for w, ok in zip(self.workers, started or [], strict=False)
                           if not ok]}})
            return 1
        for worker in self.workers:
            watches.append(asyncio.create_task(self._watch(worker),
                                               name=f"worker-watch-{worker.index}"))
        log.info("golive serving", extra={"fields": {
            "url": f"http://{settings.host}:{port}", "workers": self.count,
            "nodes": [w.node_id for w in self.workers],
            "pids": [w.proc.pid for w in self.workers if w.proc is not None],
            "redis": "embedded" if self.embedded is not None else "external"}})
        await self._stop.wait()
        log.info("golive stopping", extra={"fields": {"workers": self.count}})
        return 0

    async def _unless_stopped(self, work: Awaitable[T]) -> T | None:
        """Await `work` unless a stop signal comes first (then it is cancelled: None)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(stop)
        if not task.done():
            await cancel_and_wait(task)
            return None
        return task.result()

    async def _start(self, worker: Worker) -> bool:
        """Start the worker's process and wait for its "ready"; False (and the process
        gone) when it exits or hangs first."""
        read_fd, write_fd = os.pipe()
        try:
            worker.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "signaling.workers", "--ready-fd", str(write_fd),
                env=self._env_for[worker.index], stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(write_fd,),
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
                preexec_fn=die_with_parent())
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        worker.started_at = time.monotonic()
        proc = worker.proc
        if await _read_ready(read_fd, READY_TIMEOUT_S):
            return True
        if proc.returncode is None:  # hung at start
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        code = await proc.wait()
        log.error("golive worker failed to start", extra={"fields": {
            "node": worker.node_id, "pid": proc.pid, "returncode": code}})
        return False

    async def _watch(self, worker: Worker) -> None:
        """Owned by run(): restart the worker whenever it exits, with backoff."""
        while True:
            proc = worker.proc
            assert proc is not None
            code = await proc.wait()
            served = time.monotonic() - worker.started_at
            worker.failures = 1 if served >= HEALTHY_S else worker.failures + 1
            delay = restart_delay(worker.failures)
            log.error("golive worker exited; restarting it", extra={"fields": {
                "node": worker.node_id, "pid": proc.pid, "returncode": code,
                "served_s": round(served, 1), "retry_s": delay}})
            await asyncio.sleep(delay)
            while not await self._start(worker):
                worker.failures += 1
                delay = restart_delay(worker.failures)
                log.error("golive worker restart failed; retrying", extra={"fields": {
                    "node": worker.node_id, "retry_s": delay}})
                await asyncio.sleep(delay)
            worker.restarts += 1
            self.restarts += 1
            log.warning("golive worker restarted", extra={"fields": {
                "node": worker.node_id, "pid": worker.proc.pid if worker.proc else None,
                "restarts": worker.restarts, "restarts_total": self.restarts}})

    async def stop_workers(self) -> None:
        """SIGTERM every running worker, STOP_TIMEOUT_S for all of them, then SIGKILL."""
        running = [w for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for worker in running:
            assert worker.proc is not None
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(w.proc.wait()) for w in running if w.proc is not None]
        if waits:
            await asyncio.wait(waits, timeout=self.stop_timeout)
        for worker in running:
            proc = worker.proc
            assert proc is not None
            if proc.returncode is None:
                log.warning("golive worker ignored SIGTERM; killing it", extra={"fields": {
                    "node": worker.node_id, "pid": proc.pid, "waited_s": self.stop_timeout}})
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            code = await proc.wait()
            log.info("golive worker stopped", extra={"fields": {
                "node": worker.node_id, "pid": proc.pid, "returncode": code}})
        await cancel_and_wait(*waits)


async def _read_ready(fd: int, timeout: float) -> bool:
    """Whether READY_LINE arrives on the pipe `fd` (closed here) within `timeout`; False
    at end of file (the worker exited) or past the timeout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    pipe = os.fdopen(fd, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        raise
    try:
        async with asyncio.timeout(timeout):
            return await reader.readline() == READY_LINE
    except TimeoutError:
        return False
    finally:
        transport.close()


def supervise(settings: Settings) -> int:
    """`golive serve` with more than one worker: run the supervisor until stopped."""
    return asyncio.run(Supervisor(settings).run())


# --- the worker process ------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """One worker: settings from the environment, the port shared (SO_REUSEPORT)."""
    from signaling.cli import run_node

    parser = argparse.ArgumentParser(prog="golive-worker")
    parser.add_argument("--ready-fd", type=int, required=True)
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    logs.configure(settings.log_level, node=settings.node_name())
    ready_fd: int | None = args.ready_fd
    os.set_inheritable(args.ready_fd, False)  # not for anything this worker starts

    def ready() -> None:
        nonlocal ready_fd
        if ready_fd is not None:
            os.write(ready_fd, READY_LINE)
            os.close(ready_fd)
            ready_fd = None

    return run_node(settings, reuse_port=True, on_ready=ready)


if __name__ == "__main__":
    sys.exit(main())
