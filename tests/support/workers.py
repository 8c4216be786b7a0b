"""`golive serve --workers N` for the tests: start it, read its log, reach one worker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from signaling.app import NODE_HEADER
from signaling.workers import READY_TIMEOUT_S
from tests.support.servers import ServerProcess


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log().splitlines()]


def logged(server: ServerProcess, msg: str, logger: str = "golive.workers") -> list[dict[str, Any]]:
    return [line for line in log_lines(server) if line["msg"] == msg and line["logger"] == logger]


def start_workers(server_factory: Any, data: Path, count: int = 2) -> tuple[ServerProcess,
                                                                            dict[str, Any]]:
    """`golive serve --workers COUNT` on an embedded Redis (and a generated secret), and
    the supervisor's "golive serving" line once every worker is up."""
    server: ServerProcess = server_factory(redis_url=None, data_dir=data, timeout=60, env={
        "GOLIVE_WORKERS": str(count), "GOLIVE_AUTH_RATE": "100/s", "GOLIVE_AUTH_BURST": "200"})
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not (serving := logged(server, "golive serving")):
        assert server.proc.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    return server, serving[0]


async def session_on(url: str, node: str, *, tries: int = 200) -> aiohttp.ClientSession:
    """An HTTP session whose one kept-alive connection is served by worker `node`: a
    fresh connection until the kernel hands one to that worker (SO_REUSEPORT spreads
    them by a hash of the addresses), then every request rides on it."""
    for _ in range(tries):
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with session.get(url + "/healthz") as resp:
            assert resp.status == 200
            if resp.headers[NODE_HEADER] == node:
                return session
        await session.close()
    raise AssertionError(f"no connection reached {node} in {tries} tries")
