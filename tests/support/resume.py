"""A viewer's socket that drops under it, a tab that records the pushes a resume must not
send, and the page's ICE restart over a socket (tests/test_viewer_resume*.py,
tests/test_network_restart.py)."""

from __future__ import annotations

from typing import Any

from media.ice_restart import IceRestart, read_ice, with_ice
from signaling.appkeys import GATEWAY
from tests.support.peers import SocketPeer
from tests.support.poll import poll
from tests.support.viewer import DecodingViewer


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


async def restart_ice(tab: SocketPeer, viewer: DecodingViewer, live_id: str) -> None:
    """The page's ICE restart over `tab`'s socket (what the watch page does after a network
    change or a resume): rtc:restart, the viewer's new ICE in its answer, connected."""
    restart = await tab.call("rtc:restart", {"live_id": live_id})
    assert restart["ok"], restart
    ice = IceRestart(viewer.pc.getTransceivers()[0].receiver.transport)
    answer = with_ice(viewer.pc.localDescription.sdp, await ice.gather())
    assert (await tab.call("rtc:answer", {"live_id": live_id, "sdp": answer}))["ok"]
    await ice.connect(read_ice(restart["offer"]))
