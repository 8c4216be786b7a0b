"""Chat load worker: many light chat clients of one live in one process, driven by
bench.chat over stdin (bench.rpc).

    python -m bench.chat_clients --url http://127.0.0.1:8080 --creator-id U

Each client is a raw Engine.IO v4 websocket speaking Socket.IO with msgpack (what
socket.io-client with the msgpack parser sends), lean on purpose so the load side is not
the bottleneck: no python-socketio client per connection. Tokens arrive inside the
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
import msgpack

from bench.rpc import serve_stdin, stop_on_signals

log = logging.getLogger("golive.bench.chat_clients")

CONNECT_BATCH = 50
CALL_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0
SAMPLES_MAX = 50_000  # latency samples per step answer (reservoir beyond)
ERROR_SAMPLES = 5
STAMP = "t:"


class Client:
    """One Socket.IO connection over a raw Engine.IO websocket (msgpack packets)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str,
                 decode: bool) -> None:
        self.session, self.url, self.token = session, url, token
        self.decode = decode
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 1
        self.state = "new"
        self.frames = 0
        self.lines = 0
        self.sink: list[float] | None = None  # latency samples (s) while recording

    async def connect(self) -> None:
        ws_url = self.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            self.ws = await self.session.ws_connect(ws_url, compress=0, max_msg_size=0,
                                                    autoping=True)
            opened = await self.ws.receive_str()
            if not opened.startswith("0"):
                raise RuntimeError(f"unexpected Engine.IO open: {opened[:80]!r}")
            await self.ws.send_bytes(msgpack.packb({"type": 0, "nsp": "/",
                                                    "data": {"token": self.token}}))
            msg = await self.ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY:
                raise RuntimeError(f"unexpected connect answer: {msg.type!r}")
            packet = msgpack.unpackb(msg.data)
            if packet.get("type") != 0:
                raise RuntimeError(f"connect refused: {packet.get('data')}")
        self.state = "connected"
        self.reader = asyncio.create_task(self._read())

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        i = self.next_id
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[i] = future
        try:
            await self.ws.send_bytes(msgpack.packb(
                {"type": 2, "nsp": "/", "id": i, "data": [event, data]}))
            return await asyncio.wait_for(future, CALL_TIMEOUT_S)
        finally:
            self.acks.pop(i, None)

    async def _read(self) -> None:
        ws = self.ws
        assert ws is not None
        unpack = msgpack.unpackb
        try:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self.frames += 1
                    if not self.decode and not self.acks:
                        continue
                    now = time.time()
                    packet = unpack(msg.data)
                    kind = packet.get("type")
                    if kind == 3:
                        future = self.acks.pop(packet.get("id"), None)
                        if future is not None and not future.done():
                            data = packet.get("data") or [None]
                            future.set_result(data[0])
                    elif kind == 2 and self.decode:
                        data = packet.get("data") or []
                        if data and data[0] == "chat:messages":
                            for item in data[1].get("items", ()):
                                self.lines += 1
                                text = item.get("text") or ""
                                if self.sink is not None and text.startswith(STAMP):
                                    with contextlib.suppress(ValueError, IndexError):
                                        self.sink.append(now - float(text[2:].split()[0]))
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    if msg.data == "2":  # Engine.IO ping
                        await ws.send_str("3")
                else:
                    return
        finally:
            self.state = "closed" if self.state != "failed" else "failed"
            for future in self.acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed"))

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


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
