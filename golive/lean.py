"""A lean Socket.IO connection for many per process: a raw Engine.IO v4 websocket speaking
Socket.IO with msgpack packets (what socket.io-client with the msgpack parser sends),
without python-socketio's machinery per connection. For load generators and crowds of
bots (the chat bench runs thousands in one process); GoliveClient is the full client.

It does not reconnect, and it decodes a push only when it has an `on_push` callback (or
an ack is awaited): the others are counted in `frames` and dropped unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgpack

from golive.errors import GoliveError, NoAnswer, NotSent

CALL_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 30.0

PushCallback = Callable[[str, Any, float], None]
"""Called with (event, payload, time.time() when the frame arrived)."""


class LeanSocket:
    """One signed-in Socket.IO connection; `state` is new, connected, closed or failed (the
    owner may set it further: the chat bench marks joined ones)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str, *,
                 on_push: PushCallback | None = None) -> None:
        self.session, self.url, self.token = session, url.rstrip("/"), token
        self.on_push = on_push
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 1
        self.state = "new"
        self.frames = 0

    async def connect(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Open the websocket and the Socket.IO session (GoliveError when refused)."""
        ws_url = self.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        async with asyncio.timeout(timeout):
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
                data = packet.get("data")
                details = data.get("data") if isinstance(data, dict) else None
                raise GoliveError.from_error({"code": "unavailable", "message": str(data),
                                              **(details or {})})
        self.state = "connected"
        self.reader = asyncio.create_task(self._read())

    async def call(self, event: str, data: dict[str, Any],
                   timeout: float = CALL_TIMEOUT_S) -> Any:
        """Send one event; its raw ack (NotSent without a connection, NoAnswer without an
        answer in `timeout` s or when the socket closes first)."""
        if self.ws is None or self.ws.closed:
            raise NotSent(f"{event}: not connected")
        i = self.next_id
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[i] = future
        try:
            await self.ws.send_bytes(msgpack.packb(
                {"type": 2, "nsp": "/", "id": i, "data": [event, data]}))
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise NoAnswer(f"{event}: no answer in {timeout:g} s") from None
        except ConnectionError as exc:
            raise NoAnswer(f"{event}: {exc}") from None
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
                    if self.on_push is None and not self.acks:
                        continue  # nobody reads it: counted, not decoded
                    now = time.time()
                    packet = unpack(msg.data)
                    kind = packet.get("type")
                    if kind == 3:
                        future = self.acks.pop(packet.get("id"), None)
                        if future is not None and not future.done():
                            data = packet.get("data") or [None]
                            future.set_result(data[0])
                    elif kind == 2 and self.on_push is not None:
                        data = packet.get("data") or []
                        if data:
                            self.on_push(data[0], data[1] if len(data) > 1 else None, now)
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
        """Stop reading and close the websocket (5 s at most). Safe twice."""
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


__all__ = ["LeanSocket", "PushCallback"]
