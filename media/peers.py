"""What the publisher and viewer peers share: why a peer went away, and closing a pc safely."""

from __future__ import annotations

import asyncio
import weakref
from enum import StrEnum

from aiortc import RTCConfiguration, RTCPeerConnection

# Every pc the node made (weakly held: tracking must not keep one alive), for /metrics
# and the soak (bench/soak.py): open ones must return to the idle count after load.
_PEERS: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()


def new_peer_connection(configuration: RTCConfiguration) -> RTCPeerConnection:
    """An RTCPeerConnection the node counts (peer_counts)."""
    pc = RTCPeerConnection(configuration)
    _PEERS.add(pc)
    return pc


def peer_counts() -> tuple[int, int]:
    """(open, alive): pcs not yet closed, and pc objects not yet freed (closed ones
    included; a closed pc lingers until the garbage collector breaks its cycles)."""
    peers = list(_PEERS)
    return sum(1 for pc in peers if pc.connectionState != "closed"), len(peers)


class GoneReason(StrEnum):
    """Why the room removed a peer it was not asked to remove (a closed set, for clients)."""

    FAILED = "failed"  # ICE or DTLS failed
    CLOSED = "closed"  # the peer closed its connection
    SILENT = "silent"  # no RTCP (viewer) or no media (publisher) within the timeout
    CONNECT_TIMEOUT = "connect_timeout"  # never connected within the timeout
    ENDED = "ended"  # the publisher's tracks ended


class PeerCloser:
    """Closes one RTCPeerConnection exactly once, even when the caller is cancelled.

    aiortc's close() marks the pc closed before it stops the transports; cancelled halfway,
    every later close() waits forever on a future nobody resolves. So the close runs in a
    task this object owns, and callers await it shielded.
    """

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self._task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self.pc.close())
        await asyncio.shield(self._task)
