"""`golive serve --workers N` as a user runs it: real processes on one port, one embedded
redis-server, real kills. The rules (backoff, the workers' environment, the secret)
are checked directly at the end."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from engine import keys
from engine.nodes import NODE_TTL_S, NodeRecord, Nodes
from media.ice import restrict_host_addresses
from signaling.app import NODE_HEADER
from signaling.config import Settings, add_arguments, settings_from_args
from signaling.embedded_redis import socket_path
from signaling.workers import (
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Supervisor,
    Worker,
    restart_delay,
    worker_env,
    worker_node_id,
)
from tests.support.http import post
from tests.support.peers import go_live, sio_connect
from tests.support.poll import poll
from tests.support.servers import (
    assert_gone,
    descendants,
    free_port,
    pid_alive,
    processes_mentioning,
    stop_server,
)
from tests.support.workers import logged, session_on, start_workers

PASSWORD = "workers-pass-1"


@pytest.fixture
def loopback() -> Iterator[None]:
    """This process's peers gather on loopback only, like the server's (bound to 127.0.0.1)."""
    with restrict_host_addresses(["127.0.0.1"]):
        yield


@pytest.fixture
async def data_redis(tmp_path: Path) -> AsyncIterator[Any]:
    """A client on the embedded redis-server of tmp_path/data, opened on first use."""
    clients: list[Redis] = []

    def open_client(data: Path) -> Redis:
        client = Redis(unix_socket_path=str(socket_path(data.resolve())), decode_responses=True)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.aclose()


async def answering_nodes(url: str, tries: int = 40) -> dict[str, str]:
    """node id -> /metrics text, over fresh connections, until every worker answered once
    or `tries` ran out."""
    seen: dict[str, str] = {}
    for _ in range(tries):
        async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
            seen.setdefault(resp.headers[NODE_HEADER], await resp.text())
    return seen


def sockets_connected(metrics: str) -> int:
    (line,) = [line for line in metrics.splitlines()
               if line.startswith("golive_sockets_connected ")]
    return int(float(line.split()[1]))


async def test_two_workers_serve_one_port_one_cluster(
        tmp_path: Path, server_factory: Any, data_redis: Any, loopback: None,
        closers: list[Any]) -> None:
    data = tmp_path / "data"
    server, serving = await asyncio.to_thread(start_workers, server_factory, data)
    port = int(server.url.rsplit(":", 1)[1])
    nodes = [worker_node_id(f"127.0.0.1:{port}", i) for i in range(2)]
    assert serving["nodes"] == nodes and serving["redis"] == "embedded"
    (redis_pid,) = processes_mentioning(str(data))
    assert set(serving["pids"]) | {redis_pid} == descendants(server.proc.pid)

    # An account made through one worker is usable through the other.
    first, second = await session_on(server.url, nodes[0]), await session_on(server.url, nodes[1])
    closers.extend([first, second])
    async with first.post(server.url + "/api/register", json={
            "username": "ann", "display_name": "Ann", "password": PASSWORD,
            "birthdate": "1990-01-01"}) as resp:
        assert resp.status == 201 and resp.headers[NODE_HEADER] == nodes[0]
        token = (await resp.json())["token"]
    async with second.post(server.url + "/api/signin",
                           json={"username": "ann", "password": PASSWORD}) as resp:
        assert resp.status == 200 and resp.headers[NODE_HEADER] == nodes[1]
    async with second.get(server.url + "/api/me",
                          headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200 and (await resp.json())["user"]["username"] == "ann"
    # ... signed with the one secret the supervisor made before the workers started
    assert len((data / "secret").read_text().strip()) >= 32
    assert not list(data.glob(".secret-*"))

    # Websocket connections are spread over both workers.
    for _ in range(20):
        closers.append(await sio_connect(server.url, token))
    metrics = await answering_nodes(server.url)
    assert sorted(metrics) == nodes, sorted(metrics)
    counts = {node: sockets_connected(text) for node, text in metrics.items()}
    assert sum(counts.values()) == 20 and min(counts.values()) > 0, counts

    # Long-polling would need every request of a session on one worker: refused, always.
    for session in (first, second):
        async with session.get(server.url + "/socket.io/?EIO=4&transport=polling") as resp:
            assert resp.status == 400, await resp.text()

    # Each worker is a node: its own record (address, pid), its own lives.
    redis = data_redis(data)
    for node, pid in zip(nodes, serving["pids"], strict=True):
        record = await redis.hgetall(keys.node(node))
        assert record["address"] == f"127.0.0.1:{port}" and int(record["pid"]) == pid, record
        assert 0 < await redis.ttl(keys.node(node)) <= NODE_TTL_S
    creator = closers[-1]
    on_air = await go_live(creator, closers, "two workers")
    user_id = await redis.get(keys.username("ann"))
    host = await redis.hget(keys.live(user_id), "node")
    assert host in nodes
    other = second if host == nodes[0] else first
    async with other.get(server.url + "/api/lives") as resp:
        assert resp.headers[NODE_HEADER] != host
        listed = (await resp.json())["lives"]
    assert [row["live_id"] for row in listed] == [on_air.live_id], listed


async def test_a_killed_worker_is_restarted_and_sigterm_stops_all_in_order(
        tmp_path: Path, server_factory: Any) -> None:
    data = tmp_path / "data"
    server, serving = await asyncio.to_thread(start_workers, server_factory, data)
    victim, survivor = serving["pids"]
    os.kill(victim, signal.SIGKILL)
    await poll(lambda: not pid_alive(victim), what="the killed worker gone")

    # Until the restart (0.5 s of backoff, then a whole start), the other worker answers.
    # (The new w0 may answer a moment before the supervisor logs its restart.)
    answered: list[str] = []
    while not logged(server, "golive worker restarted"):
        async with aiohttp.ClientSession() as session, \
                session.get(server.url + "/healthz") as resp:
            assert resp.status == 200
            answered.append(resp.headers[NODE_HEADER])
        assert server.proc.poll() is None
    assert answered and answered[0].endswith("/w1"), answered
    (exited,) = logged(server, "golive worker exited; restarting it")
    assert exited["pid"] == victim and exited["returncode"] == -signal.SIGKILL
    assert exited["node"].endswith("/w0") and exited["retry_s"] == 0.5
    (restarted,) = logged(server, "golive worker restarted")
    assert restarted["node"] == exited["node"] and restarted["restarts_total"] == 1
    new_pid = restarted["pid"]
    assert pid_alive(new_pid) and pid_alive(survivor)
    seen = await answering_nodes(server.url)
    assert sorted(seen) == sorted([exited["node"], exited["node"][:-1] + "1"])

    everything = descendants(server.proc.pid)
    assert {new_pid, survivor} < everything and len(everything) == 3  # and redis-server
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(server.proc.wait, STOP_TIMEOUT_S + 10)
    assert code == 0 and time.monotonic() - started < STOP_TIMEOUT_S + 5
    assert_gone(everything, timeout=1)
    stopped = logged(server, "golive worker stopped")
    assert sorted(line["returncode"] for line in stopped) == [0, 0]
    text = server.log()
    for bad in ("Traceback", "Task was destroyed", "Unclosed", "never retrieved"):
        assert bad not in text, text


def test_sigkill_of_the_supervisor_takes_workers_and_redis_along(
        tmp_path: Path, server_factory: Any) -> None:
    server, _ = start_workers(server_factory, tmp_path / "data")
    everything = descendants(server.proc.pid)
    assert len(everything) == 3
    server.proc.kill()
    server.proc.wait()
    assert_gone(everything, timeout=STOP_TIMEOUT_S + 5)


def test_a_worker_that_cannot_start_stops_the_start(tmp_path: Path) -> None:
    """An unreachable Redis: every worker fails its start, the supervisor says so and
    exits 1, leaving nothing behind."""
    server = subprocess.Popen(
        [sys.executable, "-m", "signaling.cli", "serve", "--workers", "2",
         "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        env={**os.environ, "REDIS_URL": f"unix://{tmp_path}/nothing.sock"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = server.communicate(timeout=READY_TIMEOUT_S)
    assert server.returncode == 1, out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "golive cannot start: a worker failed to start" for line in lines)


def test_a_taken_port_stops_the_start_before_any_worker(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "signaling.cli", "serve", "--workers", "2",
             "--port", str(port), "--data-dir", str(tmp_path / "data")],
            env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
            capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    (line,) = [json.loads(x) for x in done.stderr.splitlines()
               if json.loads(x)["msg"] == "golive cannot start"]
    assert f"cannot bind 127.0.0.1:{port}" in line["error"]
    assert not (tmp_path / "data" / "redis.sock").exists()


# --- the rules --------------------------------------------------------------------------

def test_restarts_back_off_to_ten_seconds() -> None:
    assert [restart_delay(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_workers_get_the_supervisors_settings_and_their_own_node() -> None:
    settings = Settings(port=9000, node_id="eu-1", secret="s" * 40, event_rate=1 / 3,
                        production=True, workers=4)
    base = {"PATH": "/bin", "GOLIVE_VIDEO_CODEC": "h264", "REDIS_URL": "redis://old",
            "GOLIVE_PAYMENT_WEBHOOK_SECRET": "stale"}
    env = worker_env(settings, index=2, port=9000, redis_url="unix:///r.sock", base=base)
    assert env["PATH"] == "/bin" and env["GOLIVE_VIDEO_CODEC"] == "vp8"  # the settings win
    assert env["REDIS_URL"] == "unix:///r.sock" and env["GOLIVE_NODE_ID"] == "eu-1/w2"
    assert env["GOLIVE_WORKERS"] == "1" and env["GOLIVE_TRANSPORTS"] == "websocket"
    assert env["GOLIVE_NODE_ADDRESS"] == "127.0.0.1:9000"
    assert "GOLIVE_PAYMENT_WEBHOOK_SECRET" not in env  # unset in the settings: unset

    parser = argparse.ArgumentParser()
    add_arguments_from(parser, env)
    child = settings_from_args(parser.parse_args([]))
    assert child.event_rate == settings.event_rate and child.production is True
    assert child.secret == settings.secret and child.node_name() == "eu-1/w2"
    assert child.worker_count() == 1 and child.transport_list() == ["websocket"]
    for name in ("token_ttl", "video_bitrate", "live_grace", "data_dir", "auth_rate"):
        assert getattr(child, name) == getattr(settings, name), name


def add_arguments_from(parser: argparse.ArgumentParser, env: dict[str, str]) -> None:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        add_arguments(parser)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_bad_worker_counts_and_transports_are_refused() -> None:
    from signaling.cli import build_parser

    for argv in (["--workers", "0"], ["--workers", "many"], ["--transports", "carrier-pigeon"]):
        with pytest.raises(SystemExit):
            build_parser("serve").parse_args(["serve", *argv])
    with pytest.raises(SystemExit, match="GOLIVE_WORKERS='0': --workers must be 1 or more"):
        add_arguments_from(argparse.ArgumentParser(), {"GOLIVE_WORKERS": "0"})
    assert Settings(workers=None).worker_count() == (os.cpu_count() or 1)


def test_the_node_address_defaults_to_where_it_listens() -> None:
    assert Settings(host="10.0.0.5", port=81).advertised_address() == "10.0.0.5:81"
    assert Settings(node_address="a.example:8080").advertised_address() == "a.example:8080"
    anywhere = Settings(host="0.0.0.0", port=8080)
    assert anywhere.advertised_address() == anywhere.node_name() == f"{socket.gethostname()}:8080"
    assert Settings(host="::1", port=81).node_name() == "::1:81"


def test_the_generated_secret_is_made_once_whoever_races_for_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    found: list[bytes] = []
    go = threading.Barrier(8)

    def read() -> None:
        go.wait()
        found.append(settings.token_secret())

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found[0]) >= 32
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret"]
    assert ((tmp_path / "data" / "secret").stat().st_mode & 0o777) == 0o600



IGNORES_SIGTERM = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(60)")
EXITS_ON_SIGTERM = "import sys, time; print('ready', flush=True); time.sleep(60)"


async def test_a_worker_that_ignores_sigterm_is_killed_past_the_bound(
        caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(Settings(), count=2, stop_timeout=0.5)
    for index, program in enumerate((IGNORES_SIGTERM, EXITS_ON_SIGTERM)):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", program,
                                                    stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None and await proc.stdout.readline() == b"ready\n"
        supervisor.workers.append(Worker(index, f"n/w{index}", proc=proc))
    started = time.monotonic()
    await supervisor.stop_workers()
    assert time.monotonic() - started < 5
    stubborn, polite = (w.proc for w in supervisor.workers)
    assert stubborn is not None and stubborn.returncode == -signal.SIGKILL
    assert polite is not None and polite.returncode == -signal.SIGTERM
    killed = [r for r in caplog.records
              if r.getMessage() == "golive worker ignored SIGTERM; killing it"]
    assert [r.fields["node"] for r in killed] == ["n/w0"]  # type: ignore[attr-defined]


async def test_two_machines_on_one_redis_each_advertise_their_address(
        server_factory: Any, redis_url: str, redis: Redis) -> None:
    """Two `golive serve` (as on two hosts) with one REDIS_URL: one cluster, each node's
    record says where the others reach it; a node stopped in order withdraws it."""
    env = {"GOLIVE_SECRET": "cluster-secret-" + "y" * 32, "GOLIVE_AUTH_RATE": "100/s"}
    a, b = await asyncio.gather(*(asyncio.to_thread(
        server_factory, redis_url=redis_url, env={
            **env, "GOLIVE_NODE_ID": name, "GOLIVE_NODE_ADDRESS": f"{name}.internal:8080"})
        for name in ("node-a", "node-b")))
    for name, server in (("node-a", a), ("node-b", b)):
        record = await redis.hgetall(keys.node(name))
        assert record["address"] == f"{name}.internal:8080", record
        assert int(record["pid"]) == server.proc.pid
    status, body = post(a.url + "/api/register", {
        "username": "ann", "display_name": "Ann", "password": PASSWORD,
        "birthdate": "1990-01-01"})
    assert status == 201, body
    status, _ = post(b.url + "/api/signin", {"username": "ann", "password": PASSWORD})
    assert status == 200
    async with aiohttp.ClientSession() as session, session.get(b.url + "/healthz") as resp:
        assert resp.headers[NODE_HEADER] == "node-b"
    assert await asyncio.to_thread(stop_server, a) == 0
    assert await redis.exists(keys.node("node-a")) == 0
    assert await redis.exists(keys.node("node-b")) == 1


async def test_a_node_record_expires_unless_refreshed_and_comes_back(redis: Redis) -> None:
    nodes = Nodes(redis, ttl=NODE_TTL_S)
    record = NodeRecord.mine("n1", "10.0.0.1:8080")
    await nodes.announce(record)
    assert await nodes.get("n1") == record and 0 < await redis.ttl(keys.node("n1")) <= NODE_TTL_S
    assert await nodes.beat(record) is True
    assert (await nodes.get("n1")).beats == 1  # type: ignore[union-attr]
    await redis.delete(keys.node("n1"))  # expired while Redis was away, say
    assert await nodes.beat(record) is False and await nodes.get("n1") is None
    assert await nodes.try_announce(record) == ("ok", "")  # the heartbeat announces again
    assert await nodes.get("n1") == record
    assert await nodes.withdraw(record) is True
    assert await redis.exists(keys.node("n1")) == 0
    assert "n1" not in await redis.smembers(keys.nodes())
