"""The processes a chaos run owns: one redis-server (append-only, the fsync policy under
test, on a loopback port) and `golive serve` nodes on it (REDIS_URL), each restartable
after a fault with the same port, node id and data.

Cluster.close() stops every one of them (SIGCONT first: a paused Redis ignores SIGTERM
until it runs again), kill_now() SIGKILLs them at once; both are safe to call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import BusyLoadingError, RedisError

from bench.processes import Child
from bench.target import SERVER_ENV, free_port
from signaling.embedded_redis import persistence_args, redis_server_binary

REDIS_START_S = 30.0
NODE_START_S = 60.0   # python start-up and imports, on 2 cores shared with the load
HEALTHY_S = 30.0      # a fault is survived when every node answers /healthz within this

# Each node: sign-ups from one address, events far past the defaults (the clients are
# few and busy), a grace long enough that no live ends during a run (its creator may be
# cut off by a kill), warnings and errors only in the logs.
NODE_ENV = {**SERVER_ENV, "GOLIVE_EVENT_RATE": "200/s", "GOLIVE_EVENT_BURST": "400",
            "GOLIVE_LIVE_GRACE": "600", "GOLIVE_LOG_LEVEL": "warning"}


class ChaosRedis:
    """A redis-server on 127.0.0.1:PORT with its AOF in `folder`."""

    def __init__(self, folder: Path, fsync: str) -> None:
        self.folder = folder
        self.fsync = fsync
        self.port = free_port()
        self.child: Child | None = None
        self.paused = False
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None and self.child.running else None

    async def start(self) -> None:
        """Start (loading the AOF if there is one) and wait until it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.child = Child("redis", [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.folder), *persistence_args(self.fsync), "--daemonize", "no"],
            self.folder / "redis.log", rpc=False)
        await self.child.start()
        self.starts += 1
        probe = Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
        deadline = time.monotonic() + REDIS_START_S
        try:
            while True:
                with contextlib.suppress(BusyLoadingError, RedisError, OSError):
                    if await probe.ping():
                        return
                if not self.child.running or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.folder}/redis.log")
                await asyncio.sleep(0.02)
        finally:
            await probe.aclose()

    async def crash(self, sig: int) -> None:
        """Send `sig` (SIGTERM: a clean stop that flushes the AOF; SIGKILL: a crash) and
        wait for the exit."""
        child = self.child
        if child is None or child.proc is None:
            return
        self.resume()
        child.signal_group(sig)
        await child.proc.wait()

    def pause(self) -> None:
        """SIGSTOP: Redis stops answering, every connection stays open."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.paused and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    async def stop(self) -> None:
        self.resume()
        if self.child is not None:
            await self.child.stop(grace=10.0)

    def kill_now(self) -> None:
        if self.child is not None:
            self.child.signal_group(signal.SIGKILL)


class ChaosNode:
    """`golive serve --workers 1` under a fixed node id and port, on the run's Redis."""

    def __init__(self, name: str, folder: Path, redis_url: str, secret: str,
                 webhook_secret: str) -> None:
        self.name = name
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GOLIVE_") and k != "REDIS_URL"}
        self.env = {**env, **NODE_ENV, "REDIS_URL": redis_url, "GOLIVE_SECRET": secret,
                    "GOLIVE_PAYMENT_WEBHOOK_SECRET": webhook_secret, "GOLIVE_NODE_ID": name}
        self.child: Child | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.name}.log"

    async def start(self) -> None:
        """Start and wait for /healthz (RuntimeError when it exits or takes too long)."""
        self.child = Child(self.name, [
            sys.executable, "-m", "signaling.cli", "serve", "--workers", "1",
            "--port", str(self.port), "--data-dir", str(self.folder / self.name)],
            self.log_path, rpc=False, env=self.env)
        await self.child.start()
        self.starts += 1
        if not await healthy(self.url, NODE_START_S, self.child):
            raise RuntimeError(f"{self.name} did not answer /healthz; see {self.log_path}")

    async def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, no goodbye to Redis; wait for the exit."""
        if self.child is not None and self.child.proc is not None:
            self.child.signal_group(signal.SIGKILL)
            await self.child.proc.wait()

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop(grace=15.0)

    def kill_now(self) -> None:
        if self.child is not None:
            self.child.signal_group(signal.SIGKILL)


async def healthy(url: str, timeout: float, child: Child | None = None) -> bool:
    """Poll url/healthz until 200 (True), the child exits or time runs out (False)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(f"{url}/healthz",
                                    timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return True
            if (child is not None and not child.running) or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)


class Cluster:
    """The run's Redis and nodes."""

    def __init__(self, folder: Path, *, nodes: int, fsync: str) -> None:
        self.folder = folder
        self.redis = ChaosRedis(folder / "redis", fsync)
        secret = secrets.token_urlsafe(48)
        self.webhook_secret = secrets.token_urlsafe(32)  # the fuzzer signs webhooks with it
        self.nodes = [ChaosNode(f"node-{chr(ord('a') + i)}", folder, self.redis.url, secret,
                                self.webhook_secret) for i in range(nodes)]
        self._closed = False

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> ChaosNode:
        return next(n for n in self.nodes if n.name == name)

    async def start(self) -> None:
        await self.redis.start()
        for node in self.nodes:  # one at a time: each start takes a core for a while
            await node.start()

    async def all_healthy(self, timeout: float = HEALTHY_S) -> bool:
        """Every node runs and answers /healthz within `timeout`."""
        if not all(n.running for n in self.nodes):
            return False
        checks = await asyncio.gather(*(healthy(n.url, timeout, n.child) for n in self.nodes))
        return all(checks)

    def client(self) -> Redis:
        """A Redis client for the checks (decoded strings)."""
        return Redis.from_url(self.redis.url, decode_responses=True, socket_timeout=30)

    def pids(self) -> dict[str, int | None]:
        return {"redis": self.redis.pid,
                **{n.name: n.child.pid if n.running and n.child else None for n in self.nodes}}

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.redis.resume()
        for node in self.nodes:
            await node.stop()
        await self.redis.stop()

    def kill_now(self) -> None:
        self.redis.resume()
        for node in self.nodes:
            node.kill_now()
        self.redis.kill_now()


__all__ = ["HEALTHY_S", "ChaosNode", "ChaosRedis", "Cluster", "healthy"]
