"""Ingest: the creator's peer connection, the two tasks that always drain its tracks, and
the watch that judges the creator silent (by packets on the transport, media/liveness.py).

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
import time
from collections.abc import Callable, Sequence

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from media.aiortc_private import receiver_streams, use_prompt_jitter_buffer
from media.errors import MediaError, conflict, invalid
from media.ice import IceServer, rtc_configuration
from media.ice_restart import CONNECT_TIMEOUT_S, IceDescription, IceRestart, read_ice, with_ice
from media.liveness import SilenceClock
from media.negotiation import check_publisher_offer
from media.peers import GoneReason, PeerCloser, new_peer_connection

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
        # Checked 4x per timeout (at most every 0.25 s); a late check adds at most two
        # intervals of silence (media/liveness.py: a starved loop is not a silent creator).
        self.check_interval_s = min(0.25, silence_timeout_s / 4, connect_timeout_s / 4)
        self.silence = SilenceClock(2 * self.check_interval_s)
        # ICE restarts (media/ice_restart.py): the one connecting, owned here
        self._restart: IceRestart | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self.restarts = 0
        self.restart_times_s: list[float] = []

    async def accept_offer(self, offer_sdp: object) -> str:
        """Check the offer, answer it and start the readers. On any failure the pc is closed."""
        check_publisher_offer(offer_sdp)
        assert isinstance(offer_sdp, str)
        pc = self.pc = new_peer_connection(rtc_configuration(self._ice_servers))
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
            asyncio.create_task(self._watch(), name="ingest-watch"),
        ]
        return answer

    async def restart_ice(self, offer_sdp: object) -> str:
        """Answer the creator's ICE-restart offer (new credentials and candidates, the same
        media sections) with the server's new ICE; connect on it in the background and
        move the DTLS session over once a pair is nominated. A newer restart replaces
        one still connecting. Raises MediaError invalid or conflict (not connected)."""
        check_publisher_offer(offer_sdp)
        assert isinstance(offer_sdp, str)
        remote = read_ice(offer_sdp, "offer")
        pc = self.pc
        if pc is None or self._closed or self._gone:
            raise conflict("no creator connection to restart")
        dtls = pc.getTransceivers()[0].receiver.transport
        if dtls.state != "connected":
            raise conflict("the creator's connection is not up yet: publish again")
        await self._drop_restart()
        restart = self._restart = IceRestart(dtls)
        restart.check(remote, pc.remoteDescription.sdp)
        try:
            answer = with_ice(pc.localDescription.sdp, await restart.gather())
        except BaseException:
            await restart.close()
            raise
        # its silence (no media on a dead path) counts from now: the restart gets the
        # whole timeout to connect
        self.silence = SilenceClock(2 * self.check_interval_s)
        self._restart_task = asyncio.create_task(self._connect_restart(restart, remote),
                                                 name="ingest-ice-restart")
        return answer

    async def _connect_restart(self, restart: IceRestart, remote: IceDescription) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await restart.connect(remote)
        except Exception as exc:  # ConnectionError, TimeoutError, OSError: the old path stays
            await restart.close()
            logger.info("creator ICE restart failed: %r", exc)
            return
        self.restarts += 1
        assert restart.took_s is not None
        self.restart_times_s.append(restart.took_s)

    async def _drop_restart(self) -> None:
        task, self._restart_task = self._restart_task, None
        restart, self._restart = self._restart, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if restart is not None:
            await restart.close()

    async def close(self) -> None:
        """Stop the readers and close the pc. Idempotent."""
        self._closed = True
        await self._drop_restart()
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

    def packets_received(self) -> int:
        """RTP packets the creator's tracks received on the transport (before the jitter
        buffer and the decoder thread), both tracks together."""
        if self.pc is None:
            return 0
        return sum(stream.packets_received
                   for transceiver in self.pc.getTransceivers()
                   for stream in receiver_streams(transceiver.receiver).values())

    async def _watch(self) -> None:
        # The first packet may take a connection setup; after that a silence longer than
        # the timeout, counted in the loop's awake time, means the creator is gone even
        # if ICE consent has not failed yet (it takes ~30 s).
        while not self._gone:
            await asyncio.sleep(self.check_interval_s)
            received = self.packets_received()
            silent = self.silence.check(time.monotonic(), received)
            if received == 0 and silent > self._connect_timeout_s:
                self._gone_once(GoneReason.CONNECT_TIMEOUT)
            elif received > 0 and silent > self._silence_timeout_s:
                self._gone_once(GoneReason.SILENT)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
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
