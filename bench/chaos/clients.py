"""Signed-in Socket.IO clients that come back by themselves: when a connection drops (its
node was killed) a Peer connects again to the next node that answers and runs its
`on_connected` hook (join the live, catch up by id), as the pages do.

A Peer owns its socket and its reconnect task; close() ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import socketio

from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.chaos")

RETRY_S = 0.2
CONNECT_WAIT_S = 5.0
NOT_SENT = object()   # call(): no connection, nothing was sent

Hook = Callable[[socketio.AsyncClient], Awaitable[None]]


class Peer:
    """One tab: a Socket.IO client (msgpack, websocket) with its pushes and reconnects."""

    def __init__(self, name: str, token: str, urls: list[str], *,
                 pushes: dict[str, Callable[[Any], Awaitable[None]]] | None = None,
                 on_connected: Hook | None = None) -> None:
        self.name = name
        self.token = token
        self.urls = list(urls)
        self.pushes = pushes or {}
        self.on_connected = on_connected
        self.sio: socketio.AsyncClient | None = None
        self.url_index = 0
        self.reconnects = 0
        self._lost = asyncio.Event()
        self._closing = False
        self._keeper: asyncio.Task[None] | None = None
        # One HTTP session for every socket this peer opens, owned and closed here
        # (engine.io leaves its own open when a connect is cut short).
        self._http: aiohttp.ClientSession | None = None

    @property
    def connected(self) -> bool:
        return self.sio is not None and self.sio.connected and not self._lost.is_set()

    async def start(self, timeout: float = 60.0) -> None:
        """Connect (and run the hook) once, then keep the connection up."""
        async with asyncio.timeout(timeout):
            while True:
                if await self._connect_once():
                    break
                await asyncio.sleep(RETRY_S)
        self._keeper = asyncio.create_task(self._keep(), name=f"peer-{self.name}")

    async def _connect_once(self) -> bool:
        url = self.urls[self.url_index % len(self.urls)]
        if self._http is None:
            self._http = aiohttp.ClientSession()
        sio = socketio.AsyncClient(serializer="msgpack", reconnection=False,
                                   http_session=self._http)
        for event, handler in self.pushes.items():
            sio.on(event, handler)
        sio.on("disconnect", self._on_disconnect)
        try:
            await sio.connect(url, auth={"token": self.token}, transports=["websocket"],
                              wait_timeout=CONNECT_WAIT_S)
            self.sio = sio
            self._lost.clear()
            if self.on_connected is not None:
                await self.on_connected(sio)
            return True
        except asyncio.CancelledError:
            await _quietly(sio.disconnect())
            raise
        except Exception as exc:  # refused, node down, Redis away: the next node
            log.debug("%s: connect to %s failed: %s", self.name, url, exc)
            self.url_index += 1
            await _quietly(sio.disconnect())
            return False

    async def _on_disconnect(self, *_: Any) -> None:
        self._lost.set()

    async def _keep(self) -> None:
        while not self._closing:
            await self._lost.wait()
            if self._closing:
                return
            old, self.sio = self.sio, None
            if old is not None:
                await _quietly(old.disconnect())
            self.url_index += 1  # the node we were on is likely down: the next first
            while not self._closing:
                if await self._connect_once():
                    break
                await asyncio.sleep(RETRY_S)
            self.reconnects += 1

    async def call(self, event: str, payload: dict[str, Any], timeout: float) -> Any:
        """The ack, None when no answer came in time (or the connection dropped while
        waiting), NOT_SENT when there is no connection to send on."""
        sio = self.sio
        if sio is None or not self.connected:
            return NOT_SENT
        try:
            return await sio.call(event, payload, timeout=timeout)
        except socketio.exceptions.TimeoutError:
            return None
        except (socketio.exceptions.SocketIOError, ConnectionError, OSError):
            return None

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        await cancel_and_wait(self._keeper)
        if self.sio is not None:
            await _quietly(self.sio.disconnect())
        if self._http is not None:
            await self._http.close()


async def _quietly(aw: Awaitable[Any], timeout: float = 5.0) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(aw, timeout)


__all__ = ["NOT_SENT", "Peer"]
