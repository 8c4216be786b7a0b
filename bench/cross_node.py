"""Cross-node push latency: a DM and a chat line, recipient on the sender's node against
the other node.

    python -m bench.cross_node --rounds 200

Starts a redis-server and two `golive serve` processes on it (node-a, node-b), a creator
live on A, SENDERS senders on A and two tabs of one recipient, one on A and one on B;
then, --rounds times each, a DM (a sender -> the recipient) and a chat line in the live
(the senders and both recipient tabs are chat-only members), one at a time, and reports the time
from the send to each tab's push (p50/p99, ms). Bounded: one message in flight, a
--timeout per message; everything it started is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import socketio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.creator import start_live
from bench.processes import Child
from bench.target import SERVER_ENV, free_port, register_accounts, wait_healthy
from media.synthetic import HeadlessCreator
from signaling.embedded_redis import redis_server_binary

NODES = ("node-a", "node-b")


def quantiles(values: list[float]) -> dict[str, float | None]:
    """p50 and p99 (ms) of a list of seconds."""
    if not values:
        return {"p50_ms": None, "p99_ms": None, "n": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(p99 * 1000, 2), "n": len(ordered)}


async def _tab(url: str, token: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(serializer="msgpack", reconnection=False)
    await sio.connect(url, auth={"token": token}, transports=["websocket"])
    return sio


SENDERS = 12  # the server allows a sender 1 DM and 1 chat line a second: rotate


async def _send(sio: socketio.AsyncClient, event: str, payload: dict[str, Any]) -> float:
    """Send until accepted (waiting out rate limits); the perf_counter time it was sent."""
    while True:
        started = time.perf_counter()
        sent = await sio.call(event, payload)
        if sent["ok"]:
            return started
        assert sent["error"]["code"] == "rate_limited", sent
        await asyncio.sleep(float(sent["error"].get("retry_after", 1)))


async def measure(url_a: str, url_b: str, rounds: int, timeout: float) -> dict[str, Any]:
    creator_acct, recipient, *accounts = await register_accounts(url_a, SENDERS + 2)
    owner = await _tab(url_a, creator_acct.token)
    senders = [await _tab(url_a, a.token) for a in accounts]
    here = await _tab(url_a, recipient.token)
    there = await _tab(url_b, recipient.token)
    creator = HeadlessCreator.synthetic(160, 96, 10)
    arrived: dict[str, dict[str, float]] = {"here": {}, "there": {}}

    def recorder(where: str) -> Any:
        async def on_dm(data: dict[str, Any]) -> None:
            arrived[where].setdefault(data["message"].get("text", ""), time.perf_counter())

        async def on_chat(data: dict[str, Any]) -> None:
            now = time.perf_counter()
            for item in data["items"]:
                arrived[where].setdefault(item.get("text", ""), now)
        return on_dm, on_chat

    for where, sio in (("here", here), ("there", there)):
        on_dm, on_chat = recorder(where)
        sio.on("dm:message", on_dm)
        sio.on("chat:messages", on_chat)
    result: dict[str, Any] = {"rounds": rounds, "senders": SENDERS}
    try:
        live_id = (await start_live(owner, creator, "bench", timeout=20))["live_id"]
        for sio in (here, there, *senders):
            joined = await sio.call("room:join", {"user_id": creator_acct.id,
                                                  "media": False})
            assert joined["ok"], joined
        for account in accounts:  # the recipient follows them: DMs land in the inbox
            await here.call("user:follow", {"user_id": account.id})
        for kind in ("dm", "chat"):
            lat: dict[str, list[float]] = {"here": [], "there": []}
            for i in range(rounds):
                text = f"{kind}-{i}-{time.time_ns()}"
                sio = senders[i % SENDERS]
                if kind == "dm":
                    started = await _send(sio, "dm:send", {"to": recipient.id,
                                                           "text": text})
                else:
                    started = await _send(sio, "chat:send", {"live_id": live_id, "text": text})
                deadline = time.perf_counter() + timeout
                while not all(text in arrived[w] for w in lat):
                    if time.perf_counter() > deadline:
                        break
                    await asyncio.sleep(0.0005)
                for where in lat:
                    if text in arrived[where]:
                        lat[where].append(arrived[where][text] - started)
            result[kind] = {"same_node": quantiles(lat["here"]),
                            "cross_node": quantiles(lat["there"])}
    finally:
        for sio in (owner, here, there, *senders):
            with contextlib.suppress(Exception):
                await sio.disconnect()
        await creator.close()
    return result


async def run(rounds: int, timeout: float) -> dict[str, Any]:
    """A redis-server and two nodes on it (each process's log under a temporary folder),
    the measurement, then everything stopped (SIGTERM, SIGKILL past the grace)."""
    folder = Path(tempfile.mkdtemp(prefix="golive-cross-node-"))
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}"
    children = [Child("redis", [redis_server_binary(), "--port", str(redis_port),
                                "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(folder)], folder / "redis.log", rpc=False)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOLIVE_")}
    env.update(SERVER_ENV, REDIS_URL=redis_url, GOLIVE_SECRET=secrets.token_urlsafe(48))
    urls = []
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
        for name in NODES:
            port = free_port()
            child = Child(name, [sys.executable, "-m", "signaling.cli", "serve",
                                 "--workers", "1",
                                 "--port", str(port), "--data-dir", str(folder / name)],
                          folder / f"{name}.log", rpc=False,
                          env={**env, "GOLIVE_NODE_ID": name})
            children.append(child)
            await child.start()
            urls.append(f"http://127.0.0.1:{port}")
            await wait_healthy(urls[-1], child, name)
        return await measure(urls[0], urls[1], rounds, timeout)
    finally:
        for child in reversed(children):
            await child.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _pong(client: Redis) -> bool:
    with contextlib.suppress(OSError, RedisError):
        return bool(await client.ping())
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100, help="messages of each kind")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per message")
    args = parser.parse_args(argv)
    json.dump(asyncio.run(run(args.rounds, args.timeout)), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
