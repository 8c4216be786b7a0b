"""The fan-out baseline: a naive aiortc relay, the way most aiortc apps relay a stream.

The creator's tracks are received and decoded by aiortc (as golive does), then handed to
every viewer through aiortc's MediaRelay; each viewer's pc has stock RTCRtpSenders, so
every viewer gets its OWN video and audio encoder. golive encodes once per room and fans
out packets; this baseline encodes once per viewer. Measured on this machine: ~10% of a
core per viewer at 640x360@30 VP8, so one core saturates near 10 viewers.

Plain aiortc objects and nothing else (no Socket.IO, no HTTP): bench.naive_server carries
the signaling. Ownership: NaiveRoom owns the publisher pc, every viewer pc, the relay
proxies and the sink tasks that keep the creator's decoded tracks consumed; close() stops
them all and is safe to call twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from media.errors import MediaError, MediaErrorCode, conflict, invalid, not_found
from media.ice import rtc_configuration
from media.negotiation import (
    audio_preferences,
    check_publisher_offer,
    check_viewer_answer,
    video_preferences,
)
from media.peers import PeerCloser
from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.bench.naive_relay")

# buffered=False: each proxy keeps only the latest decoded frame, so a viewer whose encoder
# falls behind skips frames (raw frames have no keyframe dependency) instead of queueing
# them without bound, which MediaRelay's default (buffered=True) would do.
BUFFERED = False


class NaiveViewer:
    """One viewer: its pc and the two relay proxies its stock senders encode from."""

    def __init__(self, viewer_id: str, pc: RTCPeerConnection,
                 tracks: list[MediaStreamTrack]) -> None:
        self.id = viewer_id
        self.pc = pc
        self.tracks = tracks
        self.answered = False
        self._closer = PeerCloser(pc)

    async def close(self) -> None:
        """Close the pc, then stop the proxies (aiortc's sender.stop() leaves them registered
        with the relay). Idempotent."""
        await self._closer.close()
        for track in self.tracks:
            track.stop()


class NaiveRoom:
    """One creator's live relayed as decoded frames to viewers with an encoder each."""

    def __init__(self, codec: str = "vp8",
                 on_publisher_gone: Callable[[str], None] | None = None) -> None:
        if codec not in ("vp8", "h264"):
            raise ValueError(f"codec must be vp8 or h264, not {codec!r}")
        self.codec = codec
        self.relay = MediaRelay()
        self.publisher: RTCPeerConnection | None = None
        self.sources: dict[str, MediaStreamTrack] = {}  # kind -> the creator's decoded track
        self.viewers: dict[str, NaiveViewer] = {}
        self._on_publisher_gone = on_publisher_gone
        self._sinks: list[asyncio.Task[None]] = []
        self._publisher_closer: PeerCloser | None = None
        self._closed = False

    async def publish(self, offer_sdp: str) -> str:
        """Accept the creator's offer; returns the answer (ICE gathered). MediaError
        (invalid) for an unusable offer, (conflict) for a second one."""
        if self.publisher is not None or self._closed:
            raise conflict("this room already has a publisher")
        check_publisher_offer(offer_sdp)
        pc = self.publisher = RTCPeerConnection(rtc_configuration())
        self._publisher_closer = PeerCloser(pc)
        pc.on("connectionstatechange", self._on_publisher_state)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            track = transceiver.receiver.track
            if track is not None and track.kind in ("audio", "video"):
                self.sources[track.kind] = track
                # One consumer per source from the start: aiortc decodes every incoming
                # frame into an unbounded queue, and nothing else reads it before the
                # first viewer (a process grew from 100 MB to 255 MB in 15 s, measured).
                self._sinks.append(asyncio.create_task(
                    self._drain(self.relay.subscribe(track, buffered=BUFFERED)),
                    name=f"naive-sink-{track.kind}"))
        if set(self.sources) != {"audio", "video"}:
            raise invalid(f"the offer gave tracks {sorted(self.sources)}, "
                          "not one audio and one video")
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    def _on_publisher_state(self) -> None:
        assert self.publisher is not None
        state = self.publisher.connectionState
        if state in ("failed", "closed") and not self._closed and self._on_publisher_gone:
            self._on_publisher_gone(state)

    @staticmethod
    async def _drain(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()

    async def add_viewer(self, viewer_id: str) -> str:
        """A new pc for `viewer_id` sending relayed copies of the creator's tracks through
        stock senders; returns the server's offer. Replaces the viewer's earlier pc.
        MediaError (unavailable) once the room is closed."""
        if not self.sources or self._closed:
            raise MediaError(MediaErrorCode.UNAVAILABLE, "the room has no stream")
        old = self.viewers.pop(viewer_id, None)
        if old is not None:
            await old.close()
        pc = RTCPeerConnection(rtc_configuration())
        video = self.relay.subscribe(self.sources["video"], buffered=BUFFERED)
        audio = self.relay.subscribe(self.sources["audio"], buffered=BUFFERED)
        viewer = NaiveViewer(viewer_id, pc, [video, audio])
        self.viewers[viewer_id] = viewer
        try:
            pc.addTransceiver(video, direction="sendonly").setCodecPreferences(
                video_preferences(self.codec))  # type: ignore[arg-type]
            pc.addTransceiver(audio, direction="sendonly").setCodecPreferences(
                audio_preferences())
            await pc.setLocalDescription(await pc.createOffer())
        except BaseException:
            self.viewers.pop(viewer_id, None)
            await viewer.close()
            raise
        return pc.localDescription.sdp

    async def accept_answer(self, viewer_id: str, answer_sdp: str) -> None:
        """The viewer's answer. MediaError: not_found (no offer was made to this viewer),
        conflict (answered already), invalid (unusable answer; the viewer is dropped)."""
        viewer = self.viewers.get(viewer_id)
        if viewer is None:
            raise not_found("no offer was made to this viewer")
        if viewer.answered:
            raise conflict("this viewer already answered")
        viewer.answered = True
        try:
            check_viewer_answer(answer_sdp, self.codec)  # type: ignore[arg-type]
            await viewer.pc.setRemoteDescription(
                RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except BaseException:
            await self.remove_viewer(viewer_id)
            raise

    async def remove_viewer(self, viewer_id: str) -> None:
        viewer = self.viewers.pop(viewer_id, None)
        if viewer is not None:
            await viewer.close()

    async def close(self) -> None:
        """Every viewer, the sinks, the publisher. Idempotent."""
        self._closed = True
        viewers = list(self.viewers.values())
        self.viewers.clear()
        await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
        await cancel_and_wait(*self._sinks)
        self._sinks = []
        if self._publisher_closer is not None:
            await self._publisher_closer.close()
        for track in self.sources.values():
            track.stop()
