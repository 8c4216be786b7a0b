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
    Private(Connection, "_use_ipv4", True, "media.ice_restart (a sibling connection)"),
    Private(Connection, "_use_ipv6", True, "media.ice_restart (a sibling connection)"),
    Private(Connection, "_transport_policy", True, "media.ice_restart (a sibling connection)"),
    Private(Connection, "_queue", True, "media.aiortc_private (wake the old connection's reader)"),
)
VERSION = require("aioice", *SUPPORTED, PRIVATES)


def nominated_pair(connection: Connection, component: int) -> Any:
    """The candidate pair nominated for `component` (1 = RTP), or None before ICE completes."""
    return connection._nominated.get(component)


def sibling_connection(connection: Connection) -> Connection:
    """A new, ungathered Connection like `connection` (role, STUN/TURN servers, address
    families, transport policy) with fresh ICE credentials: an ICE restart's."""
    return Connection(
        ice_controlling=connection.ice_controlling,
        stun_server=connection.stun_server,
        turn_server=connection.turn_server,
        turn_username=connection.turn_username,
        turn_password=connection.turn_password,
        turn_ssl=connection.turn_ssl,
        turn_transport=connection.turn_transport,
        use_ipv4=connection._use_ipv4,
        use_ipv6=connection._use_ipv6,
        transport_policy=connection._transport_policy,
    )


def wake_reader(connection: Connection) -> None:
    """Hand whoever awaits connection.recv() one empty-looking datagram (a zero byte:
    neither DTLS, 20-63, nor SRTP, 128-191, so aiortc's DTLS reader ignores it) so it
    returns and next reads from wherever its transport now points."""
    connection._queue.put_nowait((b"\x00", 1))


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
