"""A crashed server comes back clean: real `golive serve` processes on an embedded
Redis, killed with real SIGKILLs and started again on the same data dir."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from redis.asyncio import Redis

from media.ice import restrict_host_addresses
from media.synthetic import HeadlessCreator
from signaling import embedded_redis
from signaling.embedded_redis import EmbeddedRedis, redis_server_binary, server_args, socket_path
from tests.support.http import post
from tests.support.peers import go_live, sio_connect
from tests.support.poll import poll
from tests.support.servers import (
    REPO,
    ServerProcess,
    assert_gone,
    pid_alive,
    processes_mentioning,
    start_server,
)


@pytest.fixture
def loopback() -> Iterator[None]:
    """This process's peers gather on loopback only, like the server's (bound to 127.0.0.1)."""
    with restrict_host_addresses(["127.0.0.1"]):
        yield


def redis_pids(data: Path) -> list[int]:
    """The redis-servers serving data's socket (found by their command line)."""
    return processes_mentioning(str(socket_path(data.resolve())))


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """Every line of the server's log, each a JSON object."""
    return [json.loads(line) for line in server.log().splitlines()]


def logged(server: ServerProcess, msg: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(server) if line["msg"] == msg]


async def ping(sock: Path) -> bool:
    """A fresh connection to the socket answers PING."""
    client = Redis(unix_socket_path=str(sock), socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


def sign_up(server: ServerProcess, name: str) -> dict[str, Any]:
    status, body = post(server.url + "/api/register", {
        "username": name, "display_name": name.title(), "password": "crash-pass-1",
        "birthdate": "1990-01-01"})
    assert status == 201, body
    return body


# --- (a) the embedded Redis dies with golive -----------------------------------------

def test_sigkill_of_golive_takes_its_redis_server_along(tmp_path: Path,
                                                        server_factory: Any) -> None:
    data = tmp_path / "data"
    server = server_factory(redis_url=None, data_dir=data)
    pids = redis_pids(data)
    assert len(pids) == 1, pids
    server.proc.kill()
    server.proc.wait()
    assert_gone(pids)


# --- (b) one owner of a data dir; a stale server stopped and waited for ----------------

def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path,
                                                         server_factory: Any) -> None:
    data = tmp_path / "data"
    first = server_factory(redis_url=None, data_dir=data)
    sign_up(first, "owner")
    (pid,) = redis_pids(data)
    with pytest.raises(RuntimeError, match="in use by another golive") as refused:
        start_server(tmp_path, redis_url=None, data_dir=data, timeout=20)
    assert f"pid {first.proc.pid}" in str(refused.value)
    # the first one serves on, on its own redis-server
    assert redis_pids(data) == [pid]
    assert get(first.url + "/healthz")[0] == 200
    status, _ = post(first.url + "/api/signin", {"username": "owner",
                                                 "password": "crash-pass-1"})
    assert status == 200


def test_an_audit_while_golive_owns_the_dir_and_its_redis_is_stuck_says_so(
        tmp_path: Path, server_factory: Any) -> None:
    """The audit cannot reach the data dir's Redis (stopped), and may not start its own
    on a dir a golive owns: one clear line and exit 2, no traceback."""
    data = tmp_path / "data"
    server_factory(redis_url=None, data_dir=data)
    (pid,) = redis_pids(data)
    os.kill(pid, signal.SIGSTOP)
    try:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        done = subprocess.run([sys.executable, "-m", "signaling.cli", "ledger", "audit",
                               "--data-dir", str(data)],
                              capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "in use by another golive" in done.stderr and "Traceback" not in done.stderr


# Runs in the stale redis-server for BUSY_MS: it handles the SIGTERM only afterwards,
# as one busy with a burst or a slow fsync does (shutting down, it unlinks its socket).
BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) * 1000
return 1
"""
BUSY_MS = 2500  # well past a new redis-server's start (~0.1 s), below lua-time-limit (5 s)


def resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


@pytest.mark.parametrize("pidfile", [True, False], ids=["pidfile", "no-pidfile"])
async def test_a_stale_redis_server_is_stopped_and_waited_for(
        tmp_path: Path, server_factory: Any, pidfile: bool) -> None:
    """A redis-server left on the data dir (here: started by hand, then kept busy) is
    stopped and waited for before golive starts its own, found by its pid file or,
    without one, by its socket: the new server's socket still works after it is gone."""
    data = (tmp_path / "data").resolve()
    data.mkdir()
    sock = socket_path(data)
    extra = ["--pidfile", str(data / "redis.pid")] if pidfile else []
    stale = await asyncio.create_subprocess_exec(
        redis_server_binary(), *server_args(data, sock), *extra,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True)
    busy = socket.socket(socket.AF_UNIX)
    try:
        await poll(lambda: sock.exists(), timeout=10)
        await poll(lambda: ping(sock), timeout=10)
        busy.connect(str(sock))
        busy.sendall(resp("EVAL", BUSY_SCRIPT, "0", str(BUSY_MS)))
        server = await asyncio.to_thread(server_factory, redis_url=None, data_dir=data)
        assert not pid_alive(stale.pid), "golive started before the stale server was gone"
        (stopped,) = logged(server, "stopping a stale embedded redis-server")
        assert stopped["pids"] == [stale.pid]
        assert len(redis_pids(data)) == 1
        assert sock.exists() and await ping(sock)
        assert (data / "redis.pid").read_text().strip() == str(redis_pids(data)[0])
        sign_up(server, "after")
    finally:
        busy.close()
        if stale.returncode is None:
            stale.kill()
        await stale.wait()


# --- (c) start-up waits for a Redis loading its dataset --------------------------------

def test_the_start_limit_grows_with_the_aof() -> None:
    limit = embedded_redis.start_timeout
    assert limit(0) == embedded_redis.START_BASE_S == 10.0
    assert limit(100_000_000) == 20.0
    assert limit(1_000_000_000) == 110.0
    assert limit(500, base=1.0, per_100mb=0.0) == 1.0


def write_aof(path: Path, megabytes: int) -> int:
    """An AOF of plain SET commands (the slowest to write by hand, quick to load:
    ~74 MB/s here); returns the number of keys."""
    value = "v" * 200
    n = 0
    with path.open("wb") as out:
        out.write(resp("SELECT", "0"))
        while out.tell() < megabytes * 1_000_000:
            out.write(b"".join(resp("SET", f"key:{n + i}", value) for i in range(1000)))
            n += 1000
    return n


async def test_a_start_waits_for_redis_to_load_a_large_aof(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """With a base of 0.2 s the AOF's share of the limit is what lets the start
    through: a fixed limit that ignores the AOF would give up while Redis is LOADING."""
    data = tmp_path / "data"
    data.mkdir()
    keys = write_aof(data / "appendonly.aof", 60)
    monkeypatch.setattr(embedded_redis, "START_BASE_S", 0.2)
    caplog.set_level(logging.INFO, logger="golive.redis")
    embedded = EmbeddedRedis(data)
    try:
        await embedded.start()
        client = Redis.from_url(embedded.url)
        try:
            assert await client.dbsize() == keys
        finally:
            await client.aclose()
    finally:
        await embedded.stop()
    (loading,) = [r.fields for r in caplog.records  # type: ignore[attr-defined]
                  if r.getMessage() == "embedded redis loading its dataset"]
    assert loading["aof_mb"] >= 60 and loading["limit_s"] > 6


# --- (d) a dead embedded Redis is restarted -------------------------------------------

def test_a_killed_redis_server_is_restarted_under_a_running_server(
        tmp_path: Path, server_factory: Any) -> None:
    data = tmp_path / "data"
    server = server_factory(redis_url=None, data_dir=data)
    token = sign_up(server, "survivor")["token"]
    (old,) = redis_pids(data)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while get(server.url + "/healthz")[0] != 200 or redis_pids(data) in ([], [old]):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    (new,) = redis_pids(data)
    assert new != old and server.proc.poll() is None
    status, body = post(server.url + "/api/signin", {"username": "survivor",
                                                     "password": "crash-pass-1"})
    assert status == 200, body
    assert get(server.url + "/api/me", token)[0] == 200
    _, metrics = get(server.url + "/metrics")
    assert b"golive_embedded_redis_restarts_total 1.0" in metrics
    (exited,) = logged(server, "embedded redis-server exited; restarting it")
    assert exited["pid"] == old and exited["returncode"] == -signal.SIGKILL
    (restarted,) = logged(server, "embedded redis restarted")
    assert restarted["pid"] == new and restarted["restarts"] == 1


# --- (e) a creator resumes the same live after a server crash --------------------------

async def test_a_creator_resumes_the_same_live_after_a_server_crash(
        tmp_path: Path, server_factory: Any, loopback: None, closers: list[Any]) -> None:
    data = tmp_path / "data"
    # the node keeps its name across the restart (it is HOST:PORT by default)
    env = {"GOLIVE_NODE_ID": "crash-node", "GOLIVE_LIVE_GRACE": "60"}
    server = await asyncio.to_thread(server_factory, redis_url=None, data_dir=data, env=env)
    token = sign_up(server, "ann")["token"]

    async def connect(url: str) -> socketio.AsyncClient:
        sio = await sio_connect(url, token)
        closers.append(sio)
        return sio

    sio = await connect(server.url)
    first = (await go_live(sio, closers, "before")).ack
    live_id = first["live"]["live_id"]
    sent = await sio.call("chat:send", {"live_id": live_id, "text": "said before the crash"})
    assert sent["ok"], sent

    server.proc.kill()
    server.proc.wait()
    again = await asyncio.to_thread(server_factory, redis_url=None, data_dir=data, env=env)
    status, listed = get(again.url + "/api/lives")
    assert status == 200 and [row["live_id"] for row in json.loads(listed)["lives"]] == [live_id]
    back = await connect(again.url)
    resumed = (await go_live(back, closers, "before")).ack
    assert resumed.get("resumed") is True, resumed
    assert resumed["live"]["live_id"] == live_id
    history = await back.call("chat:history", {"live_id": live_id})
    assert history["ok"], history
    assert "said before the crash" in [item["text"] for item in history["items"]], history


# --- extra: a gift burst across a crash --------------------------------------------------

def audit(data: Path) -> dict[str, Any]:
    """`golive ledger audit --data-dir DATA --json` as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run([sys.executable, "-m", "signaling.cli", "ledger", "audit",
                           "--data-dir", str(data), "--json"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


async def test_a_gift_burst_across_a_crash_lands_each_gift_once(
        tmp_path: Path, server_factory: Any, loopback: None, closers: list[Any]) -> None:
    """Gifts acknowledged before a SIGKILL are all there after the restart, once: a
    retry of each (same transfer id) is a replay that moves nothing; the one in flight
    lands once; the live keeps its gift board; the audit proves the ledger."""
    data = tmp_path / "data"
    env = {"GOLIVE_NODE_ID": "crash-node", "GOLIVE_LIVE_GRACE": "60"}
    server = await asyncio.to_thread(server_factory, redis_url=None, data_dir=data, env=env)
    ann, bob = sign_up(server, "ann"), sign_up(server, "bob")
    status, bought = post(server.url + "/api/coins/checkout",
                               {"package_id": "coins_1400"}, bob["token"])
    assert status == 200, bought

    async def connect(url: str, token: str) -> socketio.AsyncClient:
        sio = await sio_connect(url, token)
        closers.append(sio)
        return sio

    creator = HeadlessCreator.synthetic(320, 180, 30)
    closers.append(creator)
    ann_sio = await connect(server.url, ann["token"])
    started = await ann_sio.call("live:start", {"offer": await creator.offer()}, timeout=20)
    assert started["ok"], started
    await creator.accept_answer(started["answer"])
    live_id = started["live"]["live_id"]

    bob_sio = await connect(server.url, bob["token"])
    acked: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []  # sent, no answer: the crash came first

    async def burst() -> None:
        while True:
            tid = uuid.uuid4().hex
            try:
                ack = await bob_sio.call("gift:send", {"transfer_id": tid, "creator": "ann",
                                                       "gift_id": "rose"}, timeout=3)
            except socketio.exceptions.SocketIOError:
                unknown.append(tid)
                return
            assert ack["ok"], ack
            acked[tid] = ack["receipt"]

    sending = asyncio.create_task(burst())
    try:
        await poll(lambda: len(acked) >= 30 or sending.done(), timeout=30)
        server.proc.kill()
        await asyncio.to_thread(server.proc.wait)
        await asyncio.wait_for(sending, timeout=10)
    finally:
        sending.cancel()
    assert len(acked) >= 30

    again = await asyncio.to_thread(server_factory, redis_url=None, data_dir=data, env=env)
    bob_sio = await connect(again.url, bob["token"])
    for tid, receipt in acked.items():
        replay = await bob_sio.call("gift:send", {"transfer_id": tid, "creator": "ann",
                                                  "gift_id": "rose"})
        assert replay["ok"] and replay["receipt"]["replayed"] is True, replay
        assert {k: v for k, v in replay["receipt"].items() if k != "replayed"} == \
            {k: v for k, v in receipt.items() if k != "replayed"}
        assert receipt["live_id"] == live_id
    for tid in unknown:  # landed before the crash (a replay) or now: once either way
        retry = await bob_sio.call("gift:send", {"transfer_id": tid, "creator": "ann",
                                                 "gift_id": "rose"})
        assert retry["ok"], retry
    gifts = len(acked) + len(unknown)
    _, wallet = get(again.url + "/api/wallet", bob["token"])
    assert json.loads(wallet)["balances"]["coins"] == 1400 - gifts
    report = await asyncio.to_thread(audit, data)  # the running server's Redis
    assert report["ok"] and report["totals"]["coins_spent"] == gifts, report
    joined = await bob_sio.call("room:join", {"user_id": ann["user"]["id"], "media": False})
    assert joined["ok"] and joined["live"]["live_id"] == live_id, joined
    board = await bob_sio.call("gift:board", {"live_id": live_id})
    assert board["ok"] and board["board"]["leaderboard"][0]["coins"] == gifts, board
