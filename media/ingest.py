"""Ingest: the creator's peer connection, the two tasks that always drain its tracks, and
the watch that judges the creator silent (by packets on the transport, media/liveness.py),
and the uplink's figures (media/uplink.py) from what its video receiver counts. When the
offer has transport-wide congestion control, the answer takes it (instead of REMB) and the
ingest sends its feedback every 100 ms (media/twcc.py): Chromium then estimates its
uplink itself, probing, as against any browser.

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
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from media.aiortc_private import (
    RtpHandler,
    intercept_receiver_rtp,
    parse_extension,
    receiver_codecs,
    receiver_rtcp_ssrc,
    receiver_streams,
    send_rtcp_bytes,
    use_prompt_jitter_buffer,
)
from media.errors import MediaError, conflict, invalid
from media.ice import IceServer, rtc_configuration
from media.ice_restart import CONNECT_TIMEOUT_S, IceDescription, IceRestart, read_ice, with_ice
from media.liveness import SilenceClock
from media.negotiation import (
    check_publisher_offer,
    offered_extension_id,
    with_transport_cc,
    without_bandwidth_feedback,
)
from media.peers import GoneReason, PeerCloser, new_peer_connection
from media.twcc import TWCC_URI, TwccRecorder
from media.uplink import UplinkCounters, UplinkReport, uplink_report

logger = logging.getLogger(__name__)

# Transport-cc feedback every 100 ms: what Chromium's own receivers send (libwebrtc's
# default interval), ~40 bytes each at 2.5 Mbit/s.
TWCC_INTERVAL_S = 0.1


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
        # the uplink (media/uplink.py): counted on the video receiver's RTP path
        self._video_receiver: RTCRtpReceiver | None = None
        self._video_bytes = 0
        self._video_ssrc: int | None = None  # the media stream's, not its RTX's
        self._frame_size = (0, 0)
        self._uplink_before: UplinkCounters | None = None
        # transport-wide congestion control feedback, when the offer has it (media/twcc.py)
        self._twcc: TwccRecorder | None = None
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
                if transceiver.kind == "video":
                    self._video_receiver = transceiver.receiver
                    intercept_receiver_rtp(transceiver.receiver, self._count_video)
            await pc.setLocalDescription(await pc.createAnswer())
            answer = pc.localDescription.sdp
            twcc_id = offered_extension_id(offer_sdp, "video", TWCC_URI)
            if twcc_id is not None and self._video_receiver is not None:
                # transport-cc replaces REMB: with aiortc's REMB kept beside it, Chromium's
                # target fell from 986 to 81 kbit/s on a clean link after a lossy spell;
                # without it, it climbed back to 2,500 (one run each, measured)
                answer = with_transport_cc(without_bandwidth_feedback(answer), twcc_id, TWCC_URI)
                parse_extension(self._video_receiver.transport, twcc_id, TWCC_URI)
                self._twcc = TwccRecorder(time.monotonic())
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
        if self._twcc is not None:
            self._tasks.append(asyncio.create_task(self._send_twcc(), name="ingest-twcc"))
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

    def _count_video(self, handle: RtpHandler) -> RtpHandler:
        # ~0.7 us a packet to count, ~2.6 us more with transport-cc (its share of the
        # feedback included; measured): a 2.5 Mbit/s camera sends ~250 packets a second,
        # so under 1 ms of the loop a second.
        assert self._video_receiver is not None
        codecs = receiver_codecs(self._video_receiver)

        async def counted(packet: RtpPacket, arrival_time_ms: int) -> None:
            self._video_bytes += len(packet.payload) + packet.padding_size
            sequence = packet.extensions.transport_sequence_number
            if sequence is not None and self._twcc is not None:
                self._twcc.record(sequence, time.monotonic())
            codec = codecs.get(packet.payload_type)
            if codec is not None and codec.mimeType.lower() != "video/rtx":
                self._video_ssrc = packet.ssrc
            await handle(packet, arrival_time_ms)

        return counted

    def uplink_counters(self, now: float) -> UplinkCounters:
        """The creator's video as received so far (media/uplink.py), read at `now`."""
        stream = None
        if self._video_receiver is not None and self._video_ssrc is not None:
            stream = receiver_streams(self._video_receiver).get(self._video_ssrc)
        width, height = self._frame_size
        if stream is None:
            return UplinkCounters(now, self._video_bytes, self.frames_in, width=width,
                                  height=height)
        # Read without touching aiortc's fraction_lost, whose every read starts a new
        # interval of the receiver reports it sends; jitter is in 90 kHz video units.
        return UplinkCounters(now, self._video_bytes, self.frames_in,
                              stream.packets_expected, stream.packets_received,
                              stream.jitter / 90, width, height)

    def uplink_report(self, now: float | None = None) -> UplinkReport | None:
        """The uplink since the previous call (None at the first: the window starts)."""
        counters = self.uplink_counters(time.monotonic() if now is None else now)
        before, self._uplink_before = self._uplink_before, counters
        return None if before is None else uplink_report(before, counters)

    async def _send_twcc(self) -> None:
        assert self._twcc is not None and self._video_receiver is not None
        receiver = self._video_receiver
        while True:
            await asyncio.sleep(TWCC_INTERVAL_S)
            sender_ssrc = receiver_rtcp_ssrc(receiver)
            if sender_ssrc is None or self._video_ssrc is None:
                continue  # not connected yet
            packet = self._twcc.feedback(sender_ssrc, self._video_ssrc)
            if packet is not None:
                await send_rtcp_bytes(receiver, packet)

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
                self._frame_size = (frame.width, frame.height)
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
