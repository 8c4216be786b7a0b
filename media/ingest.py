"""Ingest: the creator's peer connection and the two tasks that always drain its tracks.

aiortc decodes incoming video on a thread into an unbounded queue; a track nobody reads
grew a process from 100 MB to 255 MB in 15 s (measured). So both tracks get a reader from
the moment the answer is made until close(), whatever happens downstream. The readers
hand frames to sinks that never block (the room keeps only the newest video frame).
Frames leave the jitter buffer as soon as they are complete (media/jitter.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from media.aiortc_private import use_prompt_jitter_buffer
from media.errors import MediaError, invalid
from media.ice import IceServer, rtc_configuration
from media.negotiation import check_publisher_offer
from media.peers import GoneReason, PeerCloser

logger = logging.getLogger(__name__)


class Publisher:
    """The creator's RTCPeerConnection (recvonly) and its track readers."""

    def __init__(
        self,
        ice_servers: Sequence[IceServer],
        on_video: Callable[[VideoFrame], None],
        on_audio: Callable[[AudioFrame], None],
        on_gone: Callable[[GoneReason], None],
        connect_timeout_s: float,
        silence_timeout_s: float,
    ) -> None:
        self._ice_servers = ice_servers
        self._on_video = on_video
        self._on_audio = on_audio
        self._on_gone = on_gone
        self._connect_timeout_s = connect_timeout_s
        self._silence_timeout_s = silence_timeout_s
        self.pc: RTCPeerConnection | None = None
        self._closer: PeerCloser | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._gone = False
        self._closed = False
        self.frames_in = 0

    async def accept_offer(self, offer_sdp: object) -> str:
        """Check the offer, answer it and start the readers. On any failure the pc is closed."""
        check_publisher_offer(offer_sdp)
        assert isinstance(offer_sdp, str)
        pc = self.pc = RTCPeerConnection(rtc_configuration(self._ice_servers))
        self._closer = PeerCloser(pc)
        tracks: dict[str, MediaStreamTrack] = {}
        pc.on("track", lambda track: tracks.setdefault(track.kind, track))
        answered = False
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if set(tracks) != {"audio", "video"}:
                raise invalid(f"offer must carry an audio and a video track, got {sorted(tracks)}")
            for transceiver in pc.getTransceivers():
                use_prompt_jitter_buffer(transceiver.receiver, transceiver.kind)
            await pc.setLocalDescription(await pc.createAnswer())
            answer = pc.localDescription.sdp
            answered = True
        except MediaError:
            raise
        except Exception as exc:  # aiortc raises ValueError, OperationError, InvalidStateError...
            raise invalid(f"offer rejected: {exc}") from exc
        finally:
            if not answered:
                await self._closer.close()
        pc.on("connectionstatechange", self._on_connection_state)
        self._tasks = [
            asyncio.create_task(self._read_video(tracks["video"]), name="ingest-video"),
            asyncio.create_task(self._read_audio(tracks["audio"]), name="ingest-audio"),
        ]
        return answer

    async def close(self) -> None:
        """Stop the readers and close the pc. Idempotent."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, Exception):
                logger.error("ingest reader had failed", exc_info=result)
        if self._closer is not None:
            await self._closer.close()

    def _gone_once(self, reason: GoneReason) -> None:
        if not self._gone and not self._closed:
            self._gone = True
            self._on_gone(reason)

    def _on_connection_state(self) -> None:
        assert self.pc is not None
        state = self.pc.connectionState
        if state == "failed":
            self._gone_once(GoneReason.FAILED)
        elif state == "closed":
            self._gone_once(GoneReason.CLOSED)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        # The first frame may take a connection setup; after that a gap longer than the
        # silence timeout means the creator is gone even if ICE consent has not failed yet.
        timeout = self._connect_timeout_s
        try:
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for returns the result and
                    # swallows a cancel that lands as recv() completes (seen: close() hung).
                    async with asyncio.timeout(timeout):
                        frame = await track.recv()
                except TimeoutError:
                    self._gone_once(
                        GoneReason.CONNECT_TIMEOUT if self.frames_in == 0 else GoneReason.SILENT
                    )
                    break
                timeout = self._silence_timeout_s
                self.frames_in += 1
                assert isinstance(frame, VideoFrame)
                self._on_video(frame)
        except MediaStreamError:
            self._gone_once(GoneReason.ENDED)
        # Keep draining until close(): the receiver's decoder keeps filling the queue.
        await self._drain(track)

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame)
                self._on_audio(frame)
        except MediaStreamError:
            self._gone_once(GoneReason.ENDED)

    @staticmethod
    async def _drain(track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
