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
import statistics
import sys
import time
from typing import Any

import socketio

from bench.creator import start_live
from bench.target import nodes_on_one_redis, register_accounts
from golive.client import bare_socket, close_socket
from media.synthetic import HeadlessCreator

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
    sio = bare_socket()
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
    live_id: str | None = None
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
        for sio in (here, there, *senders):
            await close_socket(sio, live_id)
        with contextlib.suppress(Exception):
            await owner.disconnect()
        await creator.close()
    return result


async def run(rounds: int, timeout: float) -> dict[str, Any]:
    """A redis-server and two nodes on it (each process's log under a temporary folder),
    the measurement, then everything stopped (SIGTERM, SIGKILL past the grace)."""
    async with nodes_on_one_redis("golive-cross-node-", NODES) as nodes:
        (here, _), (there, _) = nodes
        return await measure(here, there, rounds, timeout)


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
