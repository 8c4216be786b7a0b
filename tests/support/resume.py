"""A viewer's socket that drops under it, and a tab that records the pushes a resume
must not send (tests/test_viewer_resume*.py)."""

from __future__ import annotations

from typing import Any

from signaling.appkeys import GATEWAY
from tests.support.peers import SocketPeer
from tests.support.poll import poll


class Recorder(SocketPeer):
    PUSHES = ("room:state", "room:left", "live:ended")


async def drop(client: Any, tab: SocketPeer) -> str:
    """The tab's Engine.IO transport closes under it (no Socket.IO disconnect packet: what
    a network that went away leaves); returns the old sid once the server let it go."""
    sid = tab.sio.get_sid()
    await tab.sio.eio.ws.close()
    gateway = client.app[GATEWAY]
    await poll(lambda: sid not in gateway.connections, timeout=10, what="the server saw the drop")
    return sid
