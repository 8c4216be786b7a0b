"""Every access golive makes to aioice's private attributes (aioice >=0.12,<0.14).

The lean fan-out sends on the ICE pair aioice nominated; tests and the bench's light
viewers reach the sockets under a connection. Checked at import
(media/library_privates.py); tests/test_library_privates.py checks each on real objects.
"""

from __future__ import annotations

from typing import Any

from aioice.ice import Connection

from media.library_privates import Private, require

SUPPORTED = ("0.12", "0.14")  # >=, < : keep in step with pyproject.toml

PRIVATES = (
    Private(Connection, "_nominated", True, "media.viewer_link (the pair to send on)"),
    Private(Connection, "_protocols", True, "bench.rtp_counting, tests (the UDP sockets)"),
)
VERSION = require("aioice", *SUPPORTED, PRIVATES)


def nominated_pair(connection: Connection, component: int) -> Any:
    """The candidate pair nominated for `component` (1 = RTP), or None before ICE completes."""
    return connection._nominated.get(component)


def socket_protocols(connection: Connection) -> list[Any]:
    """The connection's StunProtocol objects, one per local UDP socket."""
    return connection._protocols


def watch_send_errors(protocol: Any, callback: Any) -> None:
    """Call callback(exc) for each OSError asyncio reports on this StunProtocol's socket,
    then aioice's own error_received (which only logs it). asyncio's sendto() catches a
    failed send (EPIPE, EBADF, ...) and reports it there, so this is the only way the
    Python send path learns that a viewer's socket no longer sends. Not a private
    attribute: the public asyncio.DatagramProtocol method, shadowed on this instance."""
    original = protocol.error_received

    def error_received(exc: Exception) -> None:
        callback(exc)
        original(exc)

    protocol.error_received = error_received
