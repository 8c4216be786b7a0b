"""Shared fixtures: one real redis-server per test session, flushed between tests;
golive apps in-process (aiohttp test server) or as a real `golive serve` process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from signaling.app import create_app
from signaling.config import Settings
from signaling.embedded_redis import redis_server_binary

REPO = Path(__file__).resolve().parent.parent

TEST_SECRET = "test-secret-" + "x" * 40


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


@dataclass
class User:
    id: str
    username: str
    token: str


async def register(client: Any, username: str, *, birthdate: str = "1990-01-01",
                   password: str = "correct-horse-1") -> User:
    resp = await client.post("/api/register", json={
        "username": username, "display_name": username.title(), "password": password,
        "birthdate": birthdate})
    body = await resp.json()
    assert resp.status == 201, body
    return User(body["user"]["id"], body["user"]["username"], body["token"])


async def sio_connect(client: Any, token: str | None, **kw: Any) -> socketio.AsyncClient:
    """A real Socket.IO client (msgpack, websocket) connected to the test server."""
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    url = str(client.make_url("/"))
    await sio.connect(url, auth={"token": token} if token is not None else None,
                      transports=["websocket"], wait_timeout=5, **kw)
    return sio


async def poll(condition: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Wait until condition() (sync or async) is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


class SocketPeer:
    """A signed-in Socket.IO client (one browser tab) that records the pushes it is sent.

    Subclasses name the pushes to record in PUSHES and may react in on_push()."""

    PUSHES: tuple[str, ...] = ()

    def __init__(self, sio: socketio.AsyncClient, user: User) -> None:
        self.sio = sio
        self.user = user
        self.pushes: list[tuple[str, Any]] = []
        for name in self.PUSHES:
            sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        async def record(data: Any) -> None:
            self.pushes.append((name, data))
            self.on_push(name, data)
        return record

    def on_push(self, name: str, data: Any) -> None:
        """Called after a push is recorded."""

    def got(self, name: str) -> list[Any]:
        return [data for event, data in self.pushes if event == name]

    async def call(self, event: str, payload: Any, timeout: float = 20) -> dict[str, Any]:
        return await self.sio.call(event, payload, timeout=timeout)  # type: ignore[no-any-return]


@pytest.fixture
async def closers() -> AsyncIterator[list[Any]]:
    """Things a test opened (Socket.IO clients, peers), closed in reverse at teardown."""
    items: list[Any] = []
    yield items
    for item in reversed(items):
        if isinstance(item, socketio.AsyncClient):
            await item.disconnect()
        else:
            await item.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp_path: Path, *, redis_url: str | None, env: dict[str, str] | None = None,
                 data_dir: Path | None = None, timeout: float = 20.0) -> ServerProcess:
    """Run `golive serve` as a user would and wait for /healthz."""
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    full_env = {**os.environ, "GOLIVE_PORT": str(port),
                "GOLIVE_DATA_DIR": str(data_dir or tmp_path / "data"), **(env or {})}
    full_env.pop("REDIS_URL", None)
    if redis_url:
        full_env["REDIS_URL"] = redis_url
    proc = subprocess.Popen([sys.executable, "-m", "signaling.cli", "serve"], env=full_env,
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return ServerProcess(proc, url, log_path)
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("golive serve did not start:\n" + log_path.read_text())
        time.sleep(0.05)


def stop_server(server: ServerProcess, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(sig)
    return server.proc.wait(timeout=timeout)


def processes_mentioning(text: str, name: bytes = b"redis-server") -> list[int]:
    """Pids of `name` processes whose command line mentions text (e.g. a data dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if name in cmd and text.encode() in cmd:
                pids.append(int(proc.name))
    return pids



def run_bench(*argv: str, **popen: Any) -> subprocess.Popen[str]:
    """`python -m bench ARGV` from the repo, on its own embedded Redis (no REDIS_URL)."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    return subprocess.Popen([sys.executable, "-m", "bench", *argv], cwd=REPO, env=env,
                            text=True, **popen)


def bench_result(out: Path) -> dict[str, Any]:
    """The result.json of the one run written under `out`."""
    (path,) = out.glob("*/result.json")
    return json.loads(path.read_text())


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found

def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_gone(pids: set[int] | list[int], timeout: float = 10) -> None:
    """Wait up to timeout for every pid to exit; fail naming those left behind."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if pid_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"


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
        if server.proc.poll() is None:
            try:
                stop_server(server, timeout=10)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
    for pid in processes_mentioning(str(tmp_path)):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def live_server(server_factory: Any, redis_url: str, redis: Redis) -> ServerProcess:
    """A real `golive serve` process on a free port over the test Redis."""
    return server_factory(redis_url=redis_url, env={  # type: ignore[no-any-return]
        "GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200"})


async def snapshot(redis_url: str, *, skip: tuple[str, ...] = ("session:",)) -> dict[bytes, bytes]:
    """Every key's DUMP (binary-safe), to prove that a refused request wrote nothing."""
    raw = Redis.from_url(redis_url)
    try:
        keys = sorted(k for k in await raw.keys("*")
                      if not k.decode(errors="replace").startswith(skip))
        return {k: await raw.dump(k) for k in keys}
    finally:
        await raw.aclose()
