"""Chat load worker: many light chat clients of one live in one process, driven by
bench.chat over stdin (bench.rpc).

    python -m bench.chat_clients --url http://127.0.0.1:8080 --creator-id U

Each client is a golive.lean.LeanSocket: a raw Engine.IO v4 websocket speaking Socket.IO
with msgpack (what socket.io-client with the msgpack parser sends), lean on purpose so the
load side is not the bottleneck: no python-socketio client per connection. Tokens arrive inside the
"connect" request, never on the command line.

Requests:
- connect {tokens, sample}: connect every client (50 at a time) and join the creator's
  live with `room:join {user_id, media: false}`; the first `sample` clients decode every
  push and time every line; the others only count frames.
- step {rate, senders, start_at, warmup, duration}: from start_at, the first `senders`
  clients send `chat:send` at `rate` lines/s in all, each line stamped with its send
  time (time.time(): every process on the machine shares that clock); after `warmup`
  seconds the sampled clients record, for `duration` seconds, send-to-receipt latency.
- status: clients by state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import sys
import time
from typing import Any

import aiohttp

from bench.rpc import serve_stdin, stop_on_signals
from golive.lean import LeanSocket

log = logging.getLogger("golive.bench.chat_clients")

CONNECT_BATCH = 50
CALL_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
SAMPLES_MAX = 50_000  # latency samples per step answer (reservoir beyond)
ERROR_SAMPLES = 5
STAMP = "t:"


class Client:
    """One chat client: a golive.lean.LeanSocket; a sampled one (`decode`) reads every push
    and times the stamped lines, the others only count frames."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str,
                 decode: bool) -> None:
        self.decode = decode
        self.socket = LeanSocket(session, url, token,
                                 on_push=self._on_push if decode else None)
        self.lines = 0
        self.sink: list[float] | None = None  # latency samples (s) while recording

    @property
    def state(self) -> str:
        return self.socket.state

    @state.setter
    def state(self, value: str) -> None:
        self.socket.state = value

    @property
    def frames(self) -> int:
        return self.socket.frames

    async def connect(self) -> None:
        await self.socket.connect(CONNECT_TIMEOUT_S)

    async def call(self, event: str, data: dict[str, Any]) -> Any:
        return await self.socket.call(event, data, CALL_TIMEOUT_S)

    def _on_push(self, event: str, data: Any, now: float) -> None:
        if event != "chat:messages" or not isinstance(data, dict):
            return
        for item in data.get("items", ()):
            self.lines += 1
            text = item.get("text") or ""
            if self.sink is not None and text.startswith(STAMP):
                with contextlib.suppress(ValueError, IndexError):
                    self.sink.append(now - float(text[2:].split()[0]))

    async def close(self) -> None:
        await self.socket.close()


class Worker:
    def __init__(self, url: str, creator_id: str) -> None:
        self.url = url.rstrip("/")
        self.creator_id = creator_id
        self.session: aiohttp.ClientSession | None = None
        self.clients: list[Client] = []
        self.live_id = ""

    async def connect(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        tokens: list[str] = request["tokens"]
        sample = int(request.get("sample", 0))
        fresh = [Client(self.session, self.url, t, decode=i < sample)
                 for i, t in enumerate(tokens)]
        self.clients.extend(fresh)
        errors: list[str] = []

        async def one(client: Client) -> None:
            try:
                await client.connect()
                ack = await client.call("room:join", {"user_id": self.creator_id,
                                                      "media": False})
                if not ack or not ack.get("ok"):
                    raise RuntimeError(f"room:join refused: {(ack or {}).get('error')}")
                self.live_id = ack["live"]["live_id"]
                client.state = "joined"
            except Exception as exc:
                client.state = "failed"
                if len(errors) < ERROR_SAMPLES:
                    errors.append(f"{type(exc).__name__}: {exc}")

        for i in range(0, len(fresh), CONNECT_BATCH):
            await asyncio.gather(*(one(c) for c in fresh[i:i + CONNECT_BATCH]))
        return {"joined": sum(c.state == "joined" for c in fresh),
                "failed": sum(c.state == "failed" for c in fresh),
                "live_id": self.live_id, "errors": errors}

    async def status(self, _: dict[str, Any]) -> dict[str, Any]:
        states: dict[str, int] = {}
        for c in self.clients:
            states[c.state] = states.get(c.state, 0) + 1
        return {"states": states}

    async def step(self, request: dict[str, Any]) -> dict[str, Any]:
        rate = float(request["rate"])
        senders = [c for c in self.clients if c.state == "joined"][: int(request["senders"])]
        warmup, duration = float(request["warmup"]), float(request["duration"])
        start_at = float(request["start_at"])
        sampled = [c for c in self.clients if c.decode and c.state == "joined"]
        sent = errors = 0
        sent_in_window = 0
        error_samples: list[str] = []
        recording = False
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_at - time.time()))
        t_start = loop.time()
        t_end = t_start + warmup + duration

        async def sender(client: Client, offset: float, interval: float) -> None:
            nonlocal sent, errors, sent_in_window
            next_at = t_start + offset
            while next_at < t_end:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                try:
                    ack = await client.call("chat:send", {
                        "live_id": self.live_id, "text": f"{STAMP}{time.time():.6f} hello"})
                    ok = bool(ack and ack.get("ok"))
                    problem = None if ok else (ack or {}).get("error")
                except Exception as exc:
                    ok, problem = False, f"{type(exc).__name__}: {exc}"
                if ok:
                    sent += 1
                    sent_in_window += recording
                else:
                    errors += 1
                    if len(error_samples) < ERROR_SAMPLES:
                        error_samples.append(str(problem))
                next_at += interval

        tasks = []
        if senders and rate > 0:
            interval = len(senders) / rate
            tasks = [asyncio.create_task(sender(c, k * interval / len(senders), interval))
                     for k, c in enumerate(senders)]
        samples: list[float] = []
        try:
            await asyncio.sleep(warmup)
            for c in sampled:
                c.sink = samples
            lines0 = sum(c.lines for c in sampled)
            frames0 = sum(c.frames for c in self.clients)
            w0 = loop.time()
            recording = True
            await asyncio.sleep(max(0.0, t_end - loop.time()))
            recording = False
            seconds = loop.time() - w0
            for c in sampled:
                c.sink = None
            lines = sum(c.lines for c in sampled) - lines0
            frames = sum(c.frames for c in self.clients) - frames0
            async with asyncio.timeout(CALL_TIMEOUT_S + 5):
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for c in sampled:
                c.sink = None
        if len(samples) > SAMPLES_MAX:
            samples = random.sample(samples, SAMPLES_MAX)
        return {"seconds": round(seconds, 4), "sent": sent, "sent_in_window": sent_in_window,
                "errors": errors, "error_samples": error_samples,
                "senders": len(senders), "sampled": len(sampled),
                "joined": sum(c.state == "joined" for c in self.clients),
                "sampled_lines": lines, "frames": frames,
                "latency_ms": [round(s * 1000, 3) for s in samples]}

    async def close(self) -> None:
        for i in range(0, len(self.clients), 200):
            await asyncio.gather(*(c.close() for c in self.clients[i:i + 200]))
        if self.session is not None:
            await self.session.close()


async def _main(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    stop_on_signals(stop)
    worker = Worker(args.url, args.creator_id)
    try:
        await serve_stdin({"connect": worker.connect, "status": worker.status,
                           "step": worker.step}, stop)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.close(), 20)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_clients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--creator-id", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s chat-clients %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
