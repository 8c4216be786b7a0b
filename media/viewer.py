"""One viewer's peer connection: the server's offer, the viewer's answer, and liveness.

Two aiortc hooks live here, both on this viewer's own RTCRtpSender instances:
- PLI/FIR: the sender's own RTP path is idle (media/viewer_link.py), so the viewer's
  request is routed to the room encoder; NACKs go to the room's stream history.
- Liveness: every RTCP packet the viewer sends (receiver reports every 0.5-1.5 s from
  aiortc, ~1 s from Chromium; NACK, PLI, REMB) marks it alive. A viewer killed with SIGKILL
  was otherwise served 25-35 s, until ICE consent expired (measured).
- Link reports: each receiver report on our video (loss since the last, RTT from its
  LSR/DLSR) and the latest REMB estimate, if the viewer sends one, go to `on_report` for
  the room's rendition rule (media/abr.py). aiortc's own handling still runs after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum

from aiortc import RTCSessionDescription, clock
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    unpack_remb_fci,
)

from media import aiortc_private
from media.abr import LinkReport
from media.admission import HandshakePlace
from media.encoder import VideoCodecName
from media.errors import conflict, invalid, unavailable
from media.fanout import ViewerFeed
from media.ice import IceServer, rtc_configuration
from media.ice_restart import CONNECT_TIMEOUT_S, IceDescription, IceRestart, read_ice, with_ice
from media.negotiation import (
    audio_preferences,
    check_player_offer,
    check_viewer_answer,
    offer_for_codec,
    video_preferences,
    without_bandwidth_feedback,
)
from media.peers import GoneReason, PeerCloser, new_peer_connection
from media.sender_reports import SenderReportGate

log = logging.getLogger(__name__)

# A viewer's transceivers are sendonly, yet each has a receiver: it builds its REMB
# estimator only if a packet ever comes (~0.13 ms and ~100 KB saved per join).
aiortc_private.build_bitrate_estimators_lazily()
# One DTLS certificate and SSL context for the node, not one per join (~1.2 ms of the
# loop a join; media/aiortc_private.py NodeCertificate).
aiortc_private.share_certificate()


class ViewerState(StrEnum):
    OFFERED = "offered"  # offer made, waiting for the answer
    ANSWERED = "answered"  # answer applied; connecting or connected
    CLOSED = "closed"


class ViewerPeer:
    """A viewer's RTCPeerConnection sending the room's packets (sendonly video + audio)."""

    def __init__(
        self,
        viewer_id: str,
        feed: ViewerFeed,
        codec: VideoCodecName,
        ice_servers: Sequence[IceServer],
        on_keyframe_request: Callable[[], None],
        on_nack: Callable[[str, list[int]], None],
        on_failed: Callable[[GoneReason], None],
        clock: Callable[[], float] = time.monotonic,
        handshake: HandshakePlace | None = None,
        on_report: Callable[[LinkReport], None] | None = None,
        bandwidth_feedback: bool = False,
        on_route_changed: Callable[[], None] | None = None,
    ) -> None:
        self.viewer_id = viewer_id
        # The join's place in the room's admission: given back once connected or gone.
        self.handshake = handshake
        self.feed = feed
        self.codec = codec
        self.state = ViewerState.OFFERED
        self._clock = clock
        self.created_at = clock()
        self.connected_at: float | None = None
        self.last_rtcp: float | None = None
        self._on_keyframe_request = on_keyframe_request
        self._on_nack = on_nack
        self._on_failed = on_failed
        self._on_report = on_report
        self._bandwidth_feedback = bandwidth_feedback  # ask for REMB on video (media/abr.py)
        self.estimate_bps: int | None = None  # the viewer's latest REMB, if it sends any
        # (when, (highest seq, cumulative lost)) at the start of the loss window
        self._window: tuple[float, tuple[int, int]] | None = None
        self._nacked_in_window = 0  # video numbers first NACKed in the current window
        self._nacked_seen: set[int] = set()  # bounded: NACKED_REMEMBERED
        self.sender_reports: dict[str, SenderReportGate] = {}  # by kind
        self.offer_sdp: str | None = None  # the latest offer (an ICE restart's, after one)
        # ICE restarts (media/ice_restart.py): the one offered and not yet answered, the
        # task connecting the answered one (owned here: close() cancels and awaits it).
        self._on_route_changed = on_route_changed
        self._restart: tuple[IceRestart, str] | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self.restarts = 0  # handed over
        self.restart_times_s: list[float] = []  # from the request to the hand-over
        self.pc = new_peer_connection(rtc_configuration(ice_servers))
        self.pc.on("connectionstatechange", self._on_connection_state)
        self._closer = PeerCloser(self.pc)

    async def create_offer(self) -> str:
        """Add the sendonly transceivers (room codec only) and return the offer SDP.

        ICE gathering finishes before this returns (aiortc does not trickle), so the offer
        carries its candidates.
        """
        video = self.pc.addTransceiver(self.feed.video.track, direction="sendonly")
        video.setCodecPreferences(video_preferences(self.codec))
        audio = self.pc.addTransceiver(self.feed.audio.track, direction="sendonly")
        audio.setCodecPreferences(audio_preferences())
        self._attach(video.sender, audio.sender)
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(RTCSessionDescription(
            sdp=without_bandwidth_feedback(offer.sdp, keep_video=self._bandwidth_feedback),
            type="offer"))
        self.offer_sdp = self.pc.localDescription.sdp
        return self.offer_sdp

    async def restart_ice(self) -> str:
        """An offer with new ICE credentials and candidates for this live connection (its
        network path changed); the viewer's answer goes to accept_answer(). The DTLS
        session, tracks and SSRCs stay. Raises MediaError conflict before the first
        answer (nothing to restart: join again) or once closed."""
        if self.state is not ViewerState.ANSWERED or self.offer_sdp is None:
            raise conflict(f"viewer {self.viewer_id!r} has no connection to restart")
        dtls = self.pc.getTransceivers()[0].sender.transport
        if dtls.state != "connected":
            raise conflict(f"viewer {self.viewer_id!r} is not connected yet: join again")
        await self._drop_restart()
        restart = IceRestart(dtls)
        try:
            offer = with_ice(self.offer_sdp, await restart.gather())
        except BaseException:
            await restart.close()
            raise
        if self.state is ViewerState.CLOSED:
            await restart.close()
            raise unavailable(f"viewer {self.viewer_id!r} closed during its ICE restart")
        self._restart = (restart, offer)
        # the viewer is speaking to us: its silence (no RTCP on a dead path) counts from
        # now, so the restart has the whole timeout to connect
        self.last_rtcp = self._clock()
        return offer

    async def answer_offer(self, offer_sdp: object) -> str:
        """The other way round, for a WHEP player: take the player's offer (recvonly
        video and audio; only the room's codecs are kept of it) and return our answer
        SDP, with its candidates. The viewer is answered (no accept_answer follows).
        Raises MediaError invalid for an offer that is not one."""
        if self.state is not ViewerState.OFFERED:
            raise conflict(f"viewer {self.viewer_id!r} has already negotiated")
        check_player_offer(offer_sdp)
        assert isinstance(offer_sdp, str)
        offer = offer_for_codec(offer_sdp, self.codec)
        self.state = ViewerState.ANSWERED
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            # each reuses the transceiver the offer made for its kind (sendonly now)
            video = self.pc.addTrack(self.feed.video.track)
            audio = self.pc.addTrack(self.feed.audio.track)
            self._attach(video, audio)
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(RTCSessionDescription(
                sdp=without_bandwidth_feedback(answer.sdp, keep_video=self._bandwidth_feedback),
                type="answer"))
        except Exception as exc:  # aiortc raises ValueError, OperationError, InvalidStateError...
            raise invalid(f"offer rejected: {exc}") from exc
        return self.pc.localDescription.sdp

    def _attach(self, video: RTCRtpSender, audio: RTCRtpSender) -> None:
        """The room's links on the two senders, before the SDP that names their SSRCs."""
        for link, sender in ((self.feed.video, video), (self.feed.audio, audio)):
            link.attach(sender)
            self._hook_rtcp(sender, link.kind)
            gate = self.sender_reports[link.kind] = SenderReportGate(link.kind)
            aiortc_private.gate_sender_reports(sender, gate.allow)

    async def accept_answer(self, answer_sdp: object) -> None:
        """Apply the viewer's answer (to the first offer or to an ICE restart's). Raises
        MediaError (conflict if already answered and no restart is offered)."""
        if self._restart is not None and self.state is ViewerState.ANSWERED:
            check_viewer_answer(answer_sdp, self.codec)
            remote = read_ice(answer_sdp, "answer")
            self._restart[0].check(remote, self.pc.remoteDescription.sdp)
            restart, offer = self._restart
            self._restart = None
            self.last_rtcp = self._clock()
            self._restart_task = asyncio.create_task(self._connect_restart(restart, offer,
                                                                           remote))
            return
        if self.state is not ViewerState.OFFERED:
            raise conflict(f"viewer {self.viewer_id!r} has already answered")
        check_viewer_answer(answer_sdp, self.codec)
        assert isinstance(answer_sdp, str)
        self.state = ViewerState.ANSWERED
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except Exception as exc:  # aiortc raises ValueError, OperationError, InvalidStateError...
            raise invalid(f"answer rejected: {exc}") from exc

    def silent_for(self, now: float) -> float | None:
        """Seconds since the viewer was last heard (RTCP) or connected; None before connecting."""
        if self.connected_at is None:
            return None
        return now - max(self.connected_at, self.last_rtcp or 0.0)

    async def _connect_restart(self, restart: IceRestart, offer: str,
                               remote: IceDescription) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await restart.connect(remote, self._on_route_changed)
        except Exception as exc:  # ConnectionError, TimeoutError, OSError: the old path stays
            await restart.close()
            log.info("ICE restart failed", extra={"fields": {"viewer": self.viewer_id,
                                                             "cause": repr(exc)}})
            return
        self.offer_sdp = offer
        self.restarts += 1
        assert restart.took_s is not None
        self.restart_times_s.append(restart.took_s)
        self.last_rtcp = self._clock()

    async def _drop_restart(self) -> None:
        """Forget a restart offered or connecting (a newer one replaces it)."""
        pending, self._restart = self._restart, None
        task, self._restart_task = self._restart_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if pending is not None:
            await pending[0].close()

    async def close(self) -> None:
        """Close the peer connection (idempotent). Ends the senders, hence the feed's tracks."""
        self.state = ViewerState.CLOSED
        self._handshake_over()
        await self._drop_restart()
        await self._closer.close()

    def _handshake_over(self) -> None:
        if self.handshake is not None:
            self.handshake.release()

    def _hook_rtcp(self, sender: RTCRtpSender, kind: str) -> None:
        def make(original: aiortc_private.RtcpHandler) -> aiortc_private.RtcpHandler:
            async def handle_rtcp_packet(packet: AnyRtcpPacket) -> None:
                self.last_rtcp = self._clock()
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI,
                                                                         RTCP_PSFB_FIR):
                    self._on_keyframe_request()
                    return
                if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                    if kind == "video":
                        self._count_nacked(packet.lost)
                    self._on_nack(kind, packet.lost)
                    return
                if kind == "video" and self._on_report is not None:
                    self._report(packet)
                await original(packet)

            return handle_rtcp_packet

        aiortc_private.intercept_sender_rtcp(sender, make)

    def _report(self, packet: AnyRtcpPacket) -> None:
        """Pass a receiver report on our video (and note a REMB) to on_report."""
        assert self._on_report is not None
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            # Only when asked for (GOLIVE_VIEWER_REMB): Chromium sends REMB even to an
            # answer without goog-remb, and a receiver's REMB follows what it receives, so
            # after a step up it reads as congestion and undoes the step (measured with a
            # Chromium viewer on a 300 kbit/s link: it never climbed back in 60 s, and a
            # loaded host's REMB dips moved an unlimited viewer with 0 loss).
            if self._bandwidth_feedback:
                try:
                    self.estimate_bps = unpack_remb_fci(packet.fci)[0]
                except ValueError:
                    pass  # another application feedback than REMB
            return
        if not isinstance(packet, RtcpRrPacket):
            return
        for block in packet.reports:
            if block.ssrc == self.feed.video.ssrc:
                rtt_s = round_trip_s(block)
                if rtt_s is not None:
                    self.feed.video.rtt_s = self.feed.audio.rtt_s = rtt_s
                now, current = self._clock(), (block.highest_sequence, block.packets_lost)
                if self._window is not None and now - self._window[0] < LOSS_WINDOW_S:
                    continue  # the loss is read over whole windows (LOSS_WINDOW_S)
                previous = None if self._window is None else self._window[1]
                self._window = (now, current)
                loss = loss_without_jumps(block.fraction_lost, previous, current,
                                          self.feed.video.jumps)
                nacked = nacked_fraction(self._nacked_in_window, previous, current,
                                         self.feed.video.jumps)
                self._nacked_in_window = 0
                self._on_report(LinkReport(loss=loss, rtt_s=rtt_s,
                                           estimate_bps=self.estimate_bps, nacked=nacked))

    def _count_nacked(self, seqs: Iterable[int]) -> None:
        """Count the video numbers a NACK names for the first time (aiortc names every
        hole of its last 128 packets at each new one, Chromium one hole again each RTT),
        but not those before the viewer's latest switch or jump: those are not the link's
        loss."""
        link = self.feed.video
        for seq in seqs:
            if seq in self._nacked_seen or link.before_switch(seq):
                continue
            if len(self._nacked_seen) >= NACKED_REMEMBERED:
                self._nacked_seen.clear()  # a number seen again after this: counted twice
            self._nacked_seen.add(seq)
            self._nacked_in_window += 1

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state in ("connected", "failed", "closed"):
            self._handshake_over()
        if state == "connected" and self.connected_at is None:
            self.connected_at = self._clock()
        elif state in ("failed", "closed") and self.state is not ViewerState.CLOSED:
            self.state = ViewerState.CLOSED  # report once
            self._on_failed(GoneReason.FAILED if state == "failed" else GoneReason.CLOSED)


# The rule (media/abr.py) reads a viewer's loss over windows of at least this long.
# Chromium sends a receiver report with every NACK (compound RTCP), so on a lossy link
# its reports come several times a second, each with the fraction lost since the one
# before: measured on a 300 kbit/s link with 2% loss, reports alternated 0 and 0.8-0.96,
# and each 0 restarted the rule's 2 s of congestion, so the viewer was never moved.
# Over a 1 s window the same link reads as the loss it has.
LOSS_WINDOW_S = 1.0


def loss_without_jumps(fraction_lost: int, previous: tuple[int, int] | None,
                       current: tuple[int, int],
                       jumps: Iterable[tuple[int, int]]) -> float:
    """The fraction of packets lost between two receiver reports, without the numbers our
    own forward jumps skipped (media/viewer_link.py SEQ_JUMP). `previous` and `current`
    are (extended highest sequence number, cumulative packets lost) of the reports at
    the two ends of the window (with no previous one: the report's own fraction),
    `jumps` (first number after a jump, its size). aiortc counts a jump's 512
    numbers as lost (a report of 94% loss the link never had); libwebrtc counts a jump
    over 450 as a stream restart, not as loss: a jump is taken out of the lost count
    only when the count holds it."""
    if previous is None:
        return fraction_lost / 256
    expected = current[0] - previous[0]
    if expected <= 0:
        return fraction_lost / 256
    jumped = sum(size for first, size in jumps
                 if 0 < (first - previous[0]) & 0xFFFF <= expected)
    lost = current[1] - previous[1]
    if jumped and lost >= jumped:
        lost -= jumped
    return min(1.0, max(0, lost) / max(1, expected - jumped))


# The video numbers NACKed lately that a repeat NACK is not counted again for: 1,024 is
# 30 s of 180p's ~35 packets a second, 6 s of 360p's ~170.
NACKED_REMEMBERED = 1024


def nacked_fraction(nacked: int, previous: tuple[int, int] | None, current: tuple[int, int],
                    jumps: Iterable[tuple[int, int]]) -> float | None:
    """The fraction of the packets sent between two receiver reports that the viewer
    NACKed (`nacked` numbers, each once), our own jumps taken out; None without a
    previous report."""
    if previous is None:
        return None
    expected = current[0] - previous[0]
    if expected <= 0:
        return None
    jumped = sum(size for first, size in jumps
                 if 0 < (first - previous[0]) & 0xFFFF <= expected)
    return min(1.0, nacked / max(1, expected - jumped))


def round_trip_s(block: RtcpReceiverInfo) -> float | None:
    """The RTT a report block gives (RFC 3550 6.4.1: now - LSR - DLSR, in 1/65536 s),
    or None before the viewer has had a sender report."""
    if not block.lsr:
        return None
    now = (clock.current_ntp_time() >> 16) & 0xFFFFFFFF
    rtt = (now - block.lsr - block.dlsr) & 0xFFFFFFFF
    return rtt / 65536 if rtt < 0x80000000 else 0.0
