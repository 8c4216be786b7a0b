"""A viewer's peer connection as a browser's: it answers the server's offer and decodes
every frame that arrives. The one decoding viewer client of the bench and the tests
(tests/support/viewer.py); the bench's light viewers count RTP instead (bench.rtp_counting).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av.video.frame import VideoFrame

from bench.dependency_buffer import DependencyBuffer, install_buffer
from media import aiortc_private
from media.ice import IceServer, rtc_configuration
from signaling.tasks import cancel_and_wait


class DecodingViewer:
    """An aiortc peer connection that decodes each track it is sent, with its figures.

    It owns one reader task per track (close() cancels and awaits them). Audio is read
    too: aiortc queues decoded frames without bound until someone reads them.
    `on_video(frame)`, when given, runs for each decoded video frame, right after it is
    counted (at its arrival, for latency probes)."""

    def __init__(self, viewer_id: str = "", *,
                 on_video: Callable[[VideoFrame], None] | None = None,
                 ice_servers: Sequence[IceServer] = (), relay_only: bool = False,
                 dependencies: bool = False) -> None:
        self.viewer_id = viewer_id
        # dependencies: decode as a browser does, keyframe-aware (bench/dependency_buffer.py:
        # skip to a keyframe past a hole, drop deltas without their keyframe, PLI); else
        # aiortc's own buffer, which hands over every frame in sequence
        self._dependencies = dependencies
        self.buffer: DependencyBuffer | None = None
        # relay_only: a viewer behind a firewall that lets only TURN through (the ack's
        # ice_servers name the TURN server and this viewer's credential)
        self.pc = RTCPeerConnection(rtc_configuration(ice_servers, relay_only=relay_only))
        self.created = time.monotonic()
        self.video_frames = 0
        self.audio_frames = 0
        self.first_video_at: float | None = None
        self.last_video: VideoFrame | None = None
        self.ended: set[str] = set()  # kinds whose track ended
        self._on_video = on_video
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
                    if self._on_video is not None:
                        self._on_video(frame)
                else:
                    self.audio_frames += 1
        except MediaStreamError:
            self.ended.add(track.kind)

    async def answer(self, offer_sdp: str) -> str:
        """Take the server's offer; our answer's SDP."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        if self._dependencies and self.buffer is None:
            receiver = next(r for r in self.pc.getReceivers()
                            if r.track and r.track.kind == "video")
            self.buffer = DependencyBuffer()
            install_buffer(receiver, self.buffer)
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
        """Ask the server for a keyframe, as a browser's decoder does after loss."""
        receiver = next(r for r in self.pc.getReceivers() if r.track and r.track.kind == "video")
        await aiortc_private.send_pli(receiver, self.video_ssrc())

    async def close(self) -> None:
        """Close the peer connection, then cancel and await the readers (those even when
        the close is cut short: a caller may bound it with a timeout)."""
        try:
            await self.pc.close()
        finally:
            await cancel_and_wait(*self._readers)
            self._readers = []
