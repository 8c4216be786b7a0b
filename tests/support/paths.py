"""A peer's network path dying under it, as a test makes it happen in-process."""

from __future__ import annotations

from typing import Any

from media import aioice_private, aiortc_private


def cut(pc: Any) -> None:
    """The pc's path dies without closing: nothing arrives on its sockets, nothing they
    send leaves (what an address that went away looks like from the peer)."""
    ice = aiortc_private.ice_connection(pc.getTransceivers()[0].receiver.transport)
    for protocol in aioice_private.socket_protocols(ice):
        protocol.transport.pause_reading()
        protocol.transport.sendto = lambda data, addr=None: None
