"""Shared fixtures: one real redis-server per test session, flushed between tests;
golive apps in-process (aiohttp test server) or as a real `golive serve` process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from signaling.app import create_app
from signaling.chat import CHAT
from signaling.config import Settings
from signaling.embedded_redis import redis_server_binary
from tests.support.servers import (
    TEST_SECRET,
    ServerProcess,
    processes_mentioning,
    start_server,
    stop_or_kill,
)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on its own unix socket for the whole session."""
    folder = Path(tempfile.mkdtemp(prefix="golive-test-redis-"))
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("test redis-server did not start")
        time.sleep(0.02)
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the session's Redis, flushed before each test."""
    client = Redis.from_url(redis_url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


# An in-process app's shutdown takes ~0.1-1.5 s; one hung once in a full run, until
# pytest-timeout's 180 s, with only the idle event loop in its stack.
APP_CLOSE_TIMEOUT_S = 60.0


class BoundedTestClient(TestClient):  # type: ignore[type-arg]
    """aiohttp's TestClient (pytest-aiohttp's aiohttp_client makes these) whose close
    gives up after APP_CLOSE_TIMEOUT_S, naming where every task waits: which step of
    the app's shutdown never ended."""

    async def close(self) -> None:
        closing = asyncio.create_task(super().close(), name="test-app-close")
        try:
            await asyncio.wait({closing}, timeout=APP_CLOSE_TIMEOUT_S)
        except asyncio.CancelledError:
            closing.cancel()
            raise
        if closing.done():
            return closing.result()
        for task in asyncio.all_tasks():
            print(f"--- {task.get_name()} waits at:", file=sys.stderr)
            print("\n".join(await_chain(task.get_coro())), file=sys.stderr)
        closing.cancel()
        raise AssertionError(f"the test app did not shut down in {APP_CLOSE_TIMEOUT_S} s; "
                             "where each task waited is in the captured stderr")


def await_chain(coro: Any) -> list[str]:
    """file:line function of each coroutine a suspended coroutine is awaiting, outermost
    first (Task.print_stack shows only the outermost)."""
    lines = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


@pytest.fixture
def aiohttp_client_cls() -> type[TestClient]:  # type: ignore[type-arg]
    return BoundedTestClient


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url, secret=TEST_SECRET, data_dir=tmp_path / "data",
                    event_rate=200.0, event_burst=200, auth_rate=100.0, auth_burst=200,
                    password_hash_concurrency=2)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, redis: Redis) -> Any:
    """An aiohttp test client on a full in-process app over the test Redis."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def closers() -> AsyncIterator[list[Any]]:
    """Things a test opened (Socket.IO clients, peers), closed in reverse at teardown;
    one whose server a test killed may fail to close, and the rest still close."""
    items: list[Any] = []
    yield items
    for item in reversed(items):
        try:
            if isinstance(item, socketio.AsyncClient):
                await item.disconnect()
            else:
                await item.close()
        except Exception:  # its node was killed (the cluster tests): nothing left to close
            pass


@pytest.fixture
async def app_client(aiohttp_client: Any, settings: Any, redis: Redis) -> Any:
    """An in-process app whose chat feed polls every 0.3 s (the chat tests)."""
    client = await aiohttp_client(create_app(settings))
    client.app[CHAT].feed.poll_s = 0.3
    return client


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """start_server, with every server (and its embedded redis) stopped at teardown even
    when the test failed half-way."""
    started: list[ServerProcess] = []

    def start(**kwargs: Any) -> ServerProcess:
        server = start_server(tmp_path, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_or_kill(server)
    for pid in processes_mentioning(str(tmp_path)):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def live_server_workers() -> str:
    """How many workers `live_server` runs: GOLIVE_TEST_WORKERS, else 1; a module
    overrides it (tests/test_browser_workers.py runs the live suite on 2)."""
    return os.environ.get("GOLIVE_TEST_WORKERS", "1")


@pytest.fixture
def live_server(server_factory: Any, redis_url: str, redis: Redis,
                live_server_workers: str) -> ServerProcess:
    """A real `golive serve` process on a free port over the test Redis; with more than
    one worker (live_server_workers), a supervisor and N workers (the browser suite
    against `--workers 2`: a viewer's page and the creator's may land on different
    workers)."""
    return server_factory(redis_url=redis_url, env={  # type: ignore[no-any-return]
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200",
        "GOLIVE_WORKERS": live_server_workers})
