"""What the publisher and viewer peers share: why a peer went away, and closing a pc safely."""

from __future__ import annotations

import asyncio
from enum import StrEnum

from aiortc import RTCPeerConnection


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
