"""Real aiortc peers over loopback: a headless creator, a MediaRoom, and decoding viewers.

Nothing is mocked. Timers are shortened through RoomTimings; tests poll for conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame

from media import MediaRoom, RoomTimings, aioice_private, aiortc_private, restrict_host_addresses
from media.ice import rtc_configuration
from media.synthetic import HeadlessCreator

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


async def poll(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Wait until condition() is truthy and return its value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(interval)


def vanish(pc: RTCPeerConnection) -> None:
    """Drop a peer's UDP sockets without a goodbye: no RTCP BYE, DTLS alert or ICE reply
    ever leaves it again (what a killed browser tab or a pulled cable looks like)."""
    ice = aiortc_private.ice_connection(pc.getTransceivers()[0].receiver.transport)
    for protocol in aioice_private.socket_protocols(ice):
        protocol.transport.abort()


class ViewerClient:
    """A viewer as a browser would be: answers the server's offer and decodes what arrives."""

    def __init__(self, viewer_id: str) -> None:
        self.viewer_id = viewer_id
        self.pc = RTCPeerConnection(rtc_configuration())
        self.created = time.monotonic()
        self.video_frames = 0
        self.audio_frames = 0
        self.first_video_at: float | None = None
        self.last_video: VideoFrame | None = None
        self.ended: set[str] = set()
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.create_task(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    assert isinstance(frame, VideoFrame)
                    if self.first_video_at is None:
                        self.first_video_at = time.monotonic()
                    self.video_frames += 1
                    self.last_video = frame
                else:
                    self.audio_frames += 1
        except MediaStreamError:
            self.ended.add(track.kind)

    async def answer(self, offer_sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    def video_ssrc(self) -> int:
        """The SSRC the server sends our video on (from its offer)."""
        for line in self.pc.remoteDescription.sdp.splitlines():
            if line.startswith("m=audio"):
                break
            if line.startswith("a=ssrc:"):
                return int(line.split()[0].split(":")[1])
        raise AssertionError("no video ssrc in the offer")

    async def send_pli(self) -> None:
        receiver = next(r for r in self.pc.getReceivers() if r.track and r.track.kind == "video")
        await aiortc_private.send_pli(receiver, self.video_ssrc())

    async def close(self) -> None:
        await self.pc.close()
        for task in self._readers:
            task.cancel()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Harness:
    """Creates rooms, creators and viewers, and closes every one of them at teardown."""

    def __init__(self) -> None:
        self.rooms: list[MediaRoom] = []
        self.creators: list[HeadlessCreator] = []
        self.viewers: list[ViewerClient] = []
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

    def client(self, viewer_id: str, keep: bool = True) -> ViewerClient:
        """A viewer-side peer; kept ones are closed at teardown, others are the test's to close."""
        client = ViewerClient(viewer_id)
        if keep:
            self.viewers.append(client)
        return client

    def creator(self, **kwargs: Any) -> HeadlessCreator:
        kwargs.setdefault("width", 320)
        kwargs.setdefault("height", 240)
        creator = HeadlessCreator.synthetic(**kwargs)
        self.creators.append(creator)
        return creator

    async def join(self, room: MediaRoom, viewer_id: str) -> ViewerClient:
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
