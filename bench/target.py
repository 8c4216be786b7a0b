"""The server under test: a `golive serve` the bench starts itself, or one at --url; and the
accounts the bench uses on it (registered over the real HTTP API).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.processes import Child
from signaling.embedded_redis import redis_server_binary

START_TIMEOUT_S = 30.0
REGISTER_CONCURRENCY = 4  # the server hashes 2 passwords at a time (GOLIVE_HASH_CONCURRENCY)
REGISTER_ATTEMPTS = 20  # per account, on rate_limited / unavailable answers
PASSWORD = "bench-" + "p" * 12

# The server the bench starts: sign-ups from one address, far past the defaults, and quiet
# logs (a log line per join would be part of what we measure).
SERVER_ENV = {"GOLIVE_AUTH_RATE": "1000/s", "GOLIVE_AUTH_BURST": "5000",
              "GOLIVE_EVENT_RATE": "100/s", "GOLIVE_EVENT_BURST": "200",
              "GOLIVE_LOG_LEVEL": "warning"}


class TargetError(RuntimeError):
    pass


@dataclass(frozen=True)
class Account:
    id: str
    username: str
    token: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DATA_DIR_PREFIX = "golive-bench-"
STALE_AFTER_S = 600.0  # a data dir without a running redis this old is left over


def _parent_pid(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text[text.rindex(")") + 2 :].split()[1])
    return None


def reap_stale_servers() -> list[int]:
    """Stop embedded redis-servers of earlier bench runs whose golive serve is gone (a bench
    killed with SIGKILL: its server still gets SIGTERM and stops its Redis, but once a
    redis-server was seen orphaned), and remove their data dirs. Returns the pids stopped."""
    stopped = []
    for folder in Path(tempfile.gettempdir()).glob(DATA_DIR_PREFIX + "*"):
        try:
            pid = int((folder / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            # no pidfile: redis stopped cleanly, or a server is starting right now
            with contextlib.suppress(OSError):
                if time.time() - folder.stat().st_mtime > STALE_AFTER_S:
                    shutil.rmtree(folder, ignore_errors=True)
            continue
        parent = _parent_pid(pid)
        if parent == 1:  # orphaned: its golive serve is gone
            with contextlib.suppress(OSError):
                if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
                    stopped.append(pid)
                    parent = None
        if parent is None:  # nothing runs on this folder any more
            shutil.rmtree(folder, ignore_errors=True)
    return stopped


async def wait_healthy(url: str, child: Child, what: str,
                       timeout: float = START_TIMEOUT_S) -> None:
    """Poll url/healthz until it answers 200; TargetError if `child` exits or time runs out."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{url}/healthz",
                                    timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200:
                        return
            if not child.running:
                raise TargetError(f"{what} exited at start; see {child.log_path}")
            if time.monotonic() > deadline:
                raise TargetError(f"{what} did not answer /healthz within {timeout:g} s; "
                                  f"see {child.log_path}")
            await asyncio.sleep(0.1)


class LocalServer:
    """`golive serve` on a free loopback port with a throw-away data dir (embedded Redis)."""

    def __init__(self, log_dir: Path, extra_env: dict[str, str] | None = None,
                 cpus: frozenset[int] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix=DATA_DIR_PREFIX))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GOLIVE_") and k != "REDIS_URL"}
        env.update(SERVER_ENV)
        env.update(extra_env or {})
        # One process (--workers 1): the bench measures the server by its pid.
        self.child = Child("server", [sys.executable, "-m", "signaling.cli", "serve",
                                      "--workers", "1",
                                      "--port", str(self.port), "--data-dir", str(self.data_dir)],
                           log_dir / "server.log", rpc=False, env=env, cpus=cpus)

    @property
    def pid(self) -> int:
        return self.child.pid

    def redis_pid(self) -> int | None:
        """The embedded redis-server's pid (from its pidfile), if it runs."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.data_dir / "redis.pid").read_text().strip())
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        return None

    async def start(self) -> None:
        reap_stale_servers()
        await self.child.start()
        await wait_healthy(self.url, self.child, "golive serve")

    async def stop(self) -> None:
        """SIGTERM (the server ends the live and stops its Redis), SIGKILL past 15 s; then
        make sure the embedded redis-server (its own session) is gone. Idempotent."""
        await self.child.stop(grace=15.0)
        pid = self.redis_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill_now(self) -> None:
        self.child.signal_group(signal.SIGKILL)
        pid = self.redis_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST JSON; retry (bounded) while the server answers rate_limited or unavailable."""
    for _ in range(REGISTER_ATTEMPTS):
        async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            answer = await resp.json()
        if answer.get("ok"):
            return answer
        error = answer.get("error", {})
        if error.get("code") not in ("rate_limited", "unavailable"):
            raise TargetError(f"{url}: {error.get('code')}: {error.get('message')}")
        await asyncio.sleep(min(5.0, float(error.get("retry_after") or 0.5)))
    raise TargetError(f"{url}: still rate limited after {REGISTER_ATTEMPTS} attempts "
                      "(raise GOLIVE_AUTH_RATE/GOLIVE_AUTH_BURST on that server)")


async def sign_in(url: str, username: str, password: str) -> Account:
    async with aiohttp.ClientSession() as http:
        answer = await _post(http, f"{url}/api/signin",
                             {"username": username, "password": password})
    return Account(answer["user"]["id"], answer["user"]["username"], answer["token"])


async def register_accounts(url: str, count: int, prefix: str | None = None,
                            on_progress: Any = None) -> list[Account]:
    """Register `count` fresh accounts named PREFIX_N (a random prefix by default)."""
    prefix = prefix or "b" + secrets.token_hex(4)
    gate = asyncio.Semaphore(REGISTER_CONCURRENCY)
    done = 0

    async def one(http: aiohttp.ClientSession, i: int) -> Account:
        nonlocal done
        async with gate:
            answer = await _post(http, f"{url}/api/register", {
                "username": f"{prefix}_{i}", "display_name": f"Bench {i}",
                "password": PASSWORD, "birthdate": "1990-01-01"})
        done += 1
        if on_progress is not None:
            on_progress(done, count)
        return Account(answer["user"]["id"], answer["user"]["username"], answer["token"])

    async with aiohttp.ClientSession() as http:
        return list(await asyncio.gather(*(one(http, i) for i in range(count))))


@contextlib.asynccontextmanager
async def nodes_on_one_redis(prefix: str, names: Sequence[str], env: dict[str, str] | None = None
                             ) -> AsyncIterator[list[tuple[str, Child]]]:
    """A redis-server and one `golive serve --workers 1` per name on it (node id = name,
    `env` added to each), each process's log under a temporary folder; yields
    [(url, child)] in the order of `names` once every node answers /healthz, then stops
    everything (SIGTERM, SIGKILL past the grace) and removes the folder."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}"
    children = [Child("redis", [redis_server_binary(), "--port", str(redis_port),
                                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(folder)], folder / "redis.log", rpc=False)]
    node_env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_")}
    node_env.update(SERVER_ENV, REDIS_URL=redis_url, GOLIVE_SECRET=secrets.token_urlsafe(48),
                    **(env or {}))
    nodes: list[tuple[str, Child]] = []
    try:
        await children[0].start()
        client = Redis.from_url(redis_url)
        try:
            for _ in range(200):  # 10 s
                if await _pong(client):
                    break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"redis-server did not answer; see {folder}/redis.log")
        finally:
            await client.aclose()
        for name in names:
            port = free_port()
            child = Child(name, [sys.executable, "-m", "signaling.cli", "serve", "--workers", "1",
                                 "--port", str(port), "--data-dir", str(folder / name)],
                          folder / f"{name}.log", rpc=False,
                          env={**node_env, "GOLIVE_NODE_ID": name})
            children.append(child)
            await child.start()
            url = f"http://127.0.0.1:{port}"
            await wait_healthy(url, child, name)
            nodes.append((url, child))
        yield nodes
    finally:
        for child in reversed(children):
            await child.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _pong(client: Redis) -> bool:
    with contextlib.suppress(OSError, RedisError):
        return bool(await client.ping())
    return False
