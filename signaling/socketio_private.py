"""Every access golive makes to python-socketio's private hooks (>=5.11,<5.19).

GoliveSocketServer overrides two private methods of AsyncServer: the Engine.IO message
handler (so a packet that does not decode is logged in one line and dropped, the
connection kept) and the event dispatcher (so an event name a client may not use is
answered `invalid` by the catch-all handler with the caller's own identity).
Checked at import (media/library_privates.py); tests/test_library_privates.py checks
each on the installed class.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio

from media.library_privates import Private, require

log = logging.getLogger("golive.gateway")

SUPPORTED = ("5.11", "5.19")  # >=, < : keep in step with pyproject.toml

PRIVATES = (
    Private(socketio.AsyncServer, "_handle_eio_message", False,
            "signaling.socketio_private.GoliveSocketServer (undecodable packets)"),
    Private(socketio.AsyncServer, "_handle_event", False,
            "signaling.socketio_private.GoliveSocketServer (odd event names)"),
)
VERSION = require("python-socketio", *SUPPORTED, PRIVATES)

# python-socketio's catch-all handler name: an event a client calls "*" would reach the
# catch-all with the client's first argument in the place of its own connection id.
CATCH_ALL = "*"


class PacketDecodeError(ValueError):
    """A message that is not a Socket.IO packet at all: no id to ack, so it is logged
    in one line and dropped; the connection stays open."""


class OddEventName:
    """Stands in for an event name a client may not use: not a string, one of the
    server's reserved names, or "*". python-socketio looks a client's "connect" or
    "disconnect" event up among the lifecycle handlers and calls them (a client
    could drop its own registry entry while staying connected); it hands an event
    named "*" to the catch-all handler with the client's first argument in the place
    of the connection id (a client could spend another connection's rate limit); and
    an unhashable name raises inside its task with no ack. Wrapped, all of them reach
    the catch-all handler with the caller's own id and are answered `invalid`."""

    __slots__ = ("raw",)

    def __init__(self, raw: object) -> None:
        self.raw = raw

    def shown(self) -> str:
        return self.raw[:64] if isinstance(self.raw, str) else type(self.raw).__name__


def is_odd_event_name(name: object, reserved: list[str]) -> bool:
    """True for an event name a client may not use: not a string, one of the server's
    reserved names ("connect", "disconnect"), or the catch-all's own name "*"."""
    return not isinstance(name, str) or name in reserved or name == CATCH_ALL


class GoliveSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """AsyncServer that routes odd event names to the catch-all handler."""

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except PacketDecodeError as exc:
            log.warning("undecodable packet dropped",
                        extra={"fields": {"eio_sid": eio_sid, "cause": str(exc)}})

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any,
                            data: Any) -> None:
        if not isinstance(data, list) or not data:
            data = [OddEventName(data)]
        elif is_odd_event_name(data[0], self.reserved_events):
            data = [OddEventName(data[0]), *data[1:]]
        await super()._handle_event(eio_sid, namespace, id, data)
