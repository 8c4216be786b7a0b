"""Real aiortc peers over loopback: a headless creator, a MediaRoom, and decoding viewers.

Nothing is mocked. Timers are shortened through RoomTimings; tests poll for conditions.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from media import MediaRoom, RoomTimings, aioice_private, aiortc_private, restrict_host_addresses
from media.synthetic import HeadlessCreator
from tests.support.poll import poll
from tests.support.viewer import DecodingViewer

# The fan-out send path rooms use unless a test names one (GOLIVE_FANOUT=python runs the
# suite on the Python path); tests of the wire itself run both (the `fanout` fixture).
FANOUT = os.environ.get("GOLIVE_FANOUT", "native")
FANOUT_PATHS = ["native", "python"]

# This host may only use loopback; aioice skips 127.0.0.1 unless told otherwise.
LOOPBACK = ["127.0.0.1"]

FAST = RoomTimings(
    keyframe_min_interval_s=0.5,
    gop_s=2.0,
    viewer_silence_timeout_s=1.5,
    publisher_silence_timeout_s=1.5,
    connect_timeout_s=5.0,
)


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[None]:
    with restrict_host_addresses(LOOPBACK):
        yield


def vanish(pc: RTCPeerConnection) -> None:
    """Drop a peer's UDP sockets without a goodbye: no RTCP BYE, DTLS alert or ICE reply
    ever leaves it again (what a killed browser tab or a pulled cable looks like)."""
    ice = aiortc_private.ice_connection(pc.getTransceivers()[0].receiver.transport)
    for protocol in aioice_private.socket_protocols(ice):
        protocol.transport.abort()


class Harness:
    """Creates rooms, creators and viewers, and closes every one of them at teardown."""

    def __init__(self) -> None:
        self.rooms: list[MediaRoom] = []
        self.creators: list[HeadlessCreator] = []
        self.viewers: list[DecodingViewer] = []
        self.viewer_gone: list[tuple[str, str]] = []
        self.publisher_gone: list[str] = []

    def room(self, room_id: str = "room-1", **kwargs: Any) -> MediaRoom:
        kwargs.setdefault("timings", FAST)
        kwargs.setdefault("fanout", FANOUT)
        kwargs.setdefault("on_viewer_gone", lambda vid, why: self.viewer_gone.append((vid, why)))
        kwargs.setdefault("on_publisher_gone", self.publisher_gone.append)
        room = MediaRoom(room_id, **kwargs)
        self.rooms.append(room)
        # A native room that silently ran the Python path would test nothing new.
        assert room.fanout_path.name == kwargs["fanout"], room.fanout_path.reason
        return room

    async def publish(self, room: MediaRoom, **kwargs: Any) -> HeadlessCreator:
        creator = self.creator(**kwargs)
        answer = await room.publish(await creator.offer())
        await creator.accept_answer(answer)
        return creator

    def client(self, viewer_id: str, keep: bool = True) -> DecodingViewer:
        """A viewer-side peer; kept ones are closed at teardown, others are the test's to close."""
        client = DecodingViewer(viewer_id)
        if keep:
            self.viewers.append(client)
        return client

    def creator(self, **kwargs: Any) -> HeadlessCreator:
        kwargs.setdefault("width", 320)
        kwargs.setdefault("height", 240)
        creator = HeadlessCreator.synthetic(**kwargs)
        self.creators.append(creator)
        return creator

    async def join(self, room: MediaRoom, viewer_id: str) -> DecodingViewer:
        offer = await room.add_viewer(viewer_id)
        client = self.client(viewer_id)
        await room.accept_viewer_answer(viewer_id, await client.answer(offer))
        return client

    def server_open_pcs(self) -> list[RTCPeerConnection]:
        """Open peer connections that are not this harness's creators' or viewers' own."""
        gc.collect()
        ours = {id(c.pc) for c in self.creators} | {id(v.pc) for v in self.viewers}
        return [
            o
            for o in gc.get_objects()
            if isinstance(o, RTCPeerConnection)
            and o.signalingState != "closed"
            and id(o) not in ours
        ]

    async def close(self) -> None:
        for room in self.rooms:
            await room.close()
        for creator in self.creators:
            await creator.close()
        for client in self.viewers:
            await client.close()


@pytest.fixture(params=FANOUT_PATHS)
def fanout(request: pytest.FixtureRequest) -> str:
    """Each fan-out send path in turn (media/fastpath.py): `harness.room(fanout=fanout)`."""
    return str(request.param)


@pytest.fixture(name="vanish")
def vanish_fixture() -> Callable[[RTCPeerConnection], None]:
    return vanish


@pytest.fixture(name="poll")
def poll_fixture() -> Callable[..., Any]:
    """`await poll(condition, timeout=..., what=...)`: returns the condition's truthy value."""
    return poll


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        await h.close()
