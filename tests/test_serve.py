"""`golive serve` as a user runs it: embedded Redis, restarts, signals, logs."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.http import post
from tests.support.peers import sio_connect
from tests.support.poll import poll
from tests.support.servers import ServerProcess, processes_mentioning, start_server, stop_server


def assert_clean_log(server: ServerProcess, *secrets: str) -> None:
    text = server.log()
    for bad in ("Traceback", "Task was destroyed", "Unclosed", "never retrieved"):
        assert bad not in text, text
    for secret in secrets:
        assert secret not in text
    for line in text.splitlines():
        json.loads(line)  # every line is structured


def redis_children(data_dir: Path) -> list[int]:
    return processes_mentioning(str(data_dir))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_embedded_redis_keeps_accounts_across_restarts(
        tmp_path: Path, sig: int, server_factory: Any) -> None:
    data = tmp_path / "golive-data"
    server = server_factory(redis_url=None, data_dir=data)
    password = "restart-pass-1"
    status, body = post(server.url + "/api/register", {
        "username": "keeper", "display_name": "Keeper", "password": password,
        "birthdate": "1990-01-01"})
    assert status == 201
    token = body["token"]
    sio = await sio_connect(server.url, token)
    assert redis_children(data), "no embedded redis-server under the data dir"
    started = time.monotonic()
    assert await asyncio.to_thread(stop_server, server, sig) == 0
    assert time.monotonic() - started < 5
    assert not redis_children(data), "embedded redis-server left running"
    await poll(lambda: not sio.connected)
    await sio.disconnect()
    assert (data / "appendonlydir").exists() or (data / "appendonly.aof").exists()
    assert_clean_log(server, password, token)

    again = server_factory(redis_url=None, data_dir=data)
    status, body = post(again.url + "/api/signin",
                        {"username": "keeper", "password": password})
    assert status == 200 and body["user"]["display_name"] == "Keeper"
    # the generated secret persisted too, so the old token still verifies
    req = urllib.request.Request(again.url + "/api/me",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
    assert stop_server(again) == 0
    assert_clean_log(again, password, token)


def test_external_redis_is_used_and_no_server_started(
        tmp_path: Path, redis_url: str, redis: Any, server_factory: Any) -> None:
    data = tmp_path / "unused"
    server = server_factory(redis_url=redis_url, data_dir=data,
                            env={"GOLIVE_SECRET": "s" * 40})
    status, _ = post(server.url + "/api/register", {
        "username": "outside", "display_name": "O", "password": "password-1",
        "birthdate": "1990-01-01"})
    assert status == 201
    assert not redis_children(data)
    assert not (data / "appendonly.aof").exists()
    assert stop_server(server) == 0
    assert_clean_log(server)


def test_production_refuses_to_start_without_a_secret(tmp_path: Path, redis_url: str) -> None:
    with pytest.raises(RuntimeError, match="GOLIVE_SECRET"):
        start_server(tmp_path, redis_url=redis_url, env={"GOLIVE_PRODUCTION": "1"}, timeout=10)
