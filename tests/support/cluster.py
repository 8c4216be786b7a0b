"""Real golive nodes on one Redis, for the cluster tests: a restartable redis-server,
the nodes' environment, signed-in tabs (Socket.IO clients) and their chat lines."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from signaling.embedded_redis import redis_server_binary
from tests.support.peers import SocketPeer, User, sio_connect
from tests.support.servers import TEST_SECRET, ServerProcess, free_port, start_server, stop_or_kill


class RedisProcess:
    """A redis-server on a TCP port with an AOF, that a test can restart (same data)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        import socket
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)


NODE_ENV = {"GOLIVE_SECRET": TEST_SECRET, "GOLIVE_AUTH_RATE": "100/s",
            "GOLIVE_AUTH_BURST": "200", "GOLIVE_LIVE_GRACE": "1"}


@contextlib.contextmanager
def nodes_on_one_redis(tmp: Path, names: Sequence[str], env: dict[str, str] = NODE_ENV
                       ) -> Iterator[tuple[RedisProcess, list[ServerProcess]]]:
    """A real redis-server and a `golive serve` on it for each name (its GOLIVE_NODE_ID,
    its own data folder under `tmp`), in that order; every node stopped (killed if it
    will not stop) and the Redis stopped on the way out."""
    redis = RedisProcess(tmp)
    redis.start()
    servers: list[ServerProcess] = []
    try:
        for name in names:
            servers.append(start_server(tmp, redis_url=redis.url, data_dir=tmp / name,
                                        env={**env, "GOLIVE_NODE_ID": name}))
        yield redis, servers
    finally:
        for server in servers:
            stop_or_kill(server)
        redis.stop()


class Tab(SocketPeer):
    PUSHES = ("dm:message", "dm:typing", "dm:seen", "dm:unread", "notify:new",
              "nudge:waiting", "chat:messages", "room:state", "live:started", "live:ended",
              "discover:update", "gift:received", "chat:banned", "room:left")


async def register(url: str, name: str) -> User:
    async with aiohttp.ClientSession() as http:
        resp = await http.post(url + "/api/register", json={
            "username": name, "display_name": name.title(), "password": "correct-horse-1",
            "birthdate": "1990-01-01"})
        body = await resp.json()
        assert resp.status == 201, body
        return User(body["user"]["id"], body["user"]["username"], body["token"])


async def tab(url: str, user: User, closers: list[Any]) -> Tab:
    sio = await sio_connect(url, user.token)
    closers.append(sio)
    return Tab(sio, user)


def lines(peer: Tab) -> list[str]:
    return [item["text"] for push in peer.got("chat:messages") for item in push["items"]
            if item.get("kind") == "message"]
