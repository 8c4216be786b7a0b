"""Every access golive makes to python-engineio's private attributes (>=4.15,<4.16).

The room push (signaling/frames.py) writes one websocket frame to every socket of a
room, so it must know each Engine.IO socket's websocket: the server's driver table
(`_async`) gets a websocket class that records it, relying on the driver's handler being
the socket's bound `_websocket_handler` and on the aiohttp driver keeping its
WebSocketResponse in `_sock`. The same class drops text frames that are not Engine.IO
packets (engineio would raise on them and close the connection, 1006).
Checked at import (media/library_privates.py); tests/test_library_privates.py checks
each on real objects.
"""

from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from collections.abc import Callable
from typing import Any

import engineio
from engineio import base_server
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

from media.library_privates import Private, require

log = logging.getLogger("golive.engineio")

SUPPORTED = ("4.15", "4.16")  # >=, < : keep in step with pyproject.toml

PRIVATES = (
    Private(base_server.BaseServer, "_async", True, "signaling.frames (the driver table)"),
    Private(eio_aiohttp.WebSocket, "_sock", True, "signaling.frames (the socket's websocket)"),
    Private(AsyncSocket, "_websocket_handler", False, "signaling.frames (its owner socket)"),
)
VERSION = require("python-engineio", *SUPPORTED, PRIVATES)

_WS_KEY = "golive_ws"  # the attribute a recorded socket keeps its WebSocketResponse in
_PACKET_TYPES = frozenset("0123456")


def is_engineio_text(data: str) -> bool:
    """True if a websocket text frame can be an Engine.IO packet: a packet type digit,
    or 'b' and base64 (a binary message sent as text). engineio's own decoder raises on
    anything else (IndexError on '', ValueError on 'zzz') and closes the connection."""
    if not data:
        return False
    if data[0] == "b":
        try:
            b64decode(data[1:], validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    return data[0] in _PACKET_TYPES


def _recording(base: type[Any], on_dropped: Callable[[str], None]) -> type[Any]:
    """The driver's websocket class, made to remember each Engine.IO socket's websocket
    and to drop text frames that are not Engine.IO packets."""

    class RecordingWebSocket(base):  # type: ignore[misc, valid-type]
        golive_recording = True

        def __init__(self, handler: Any, server: Any) -> None:
            owner = getattr(handler, "__self__", None)  # the AsyncSocket (bound handler)

            async def run(ws: Any) -> Any:
                if owner is not None:
                    setattr(owner, _WS_KEY, ws._sock)
                try:
                    return await handler(ws)
                finally:
                    if owner is not None:
                        setattr(owner, _WS_KEY, None)

            super().__init__(run, server)

        async def wait(self) -> Any:
            while True:
                data = await super().wait()
                if not isinstance(data, str) or is_engineio_text(data):
                    return data
                on_dropped(data[:32])

    return RecordingWebSocket


def install_websocket_hooks(eio: engineio.AsyncServer,
                            on_dropped: Callable[[str], None]) -> bool:
    """Give this server (only: the driver table is copied) the recording websocket class.
    False if its async mode has no websocket driver (every push then takes the queue)."""
    drivers = eio._async
    if not isinstance(drivers, dict) or drivers.get("websocket") is None:
        return False
    if not getattr(drivers["websocket"], "golive_recording", False):
        # A copy: the module's dict is shared by every server in the process.
        eio._async = {**drivers, "websocket": _recording(drivers["websocket"], on_dropped)}
    return True


def websocket_hooks_installed(eio: engineio.AsyncServer) -> bool:
    """True once install_websocket_hooks() gave this server the recording class."""
    drivers = eio._async
    return isinstance(drivers, dict) and getattr(drivers.get("websocket"), "golive_recording",
                                                 False)


def socket_websocket(sock: AsyncSocket) -> Any:
    """The aiohttp WebSocketResponse recorded for an Engine.IO socket, or None."""
    return getattr(sock, _WS_KEY, None)
