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
from media.errors import conflict, invalid
from media.fanout import ViewerFeed
from media.ice import IceServer, rtc_configuration
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
        self._last_block: tuple[int, int] | None = None  # (highest seq, lost) last reported
        self.sender_reports: dict[str, SenderReportGate] = {}  # by kind
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
        return self.pc.localDescription.sdp

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
        """Apply the viewer's answer. Raises MediaError (conflict if already answered)."""
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

    async def close(self) -> None:
        """Close the peer connection (idempotent). Ends the senders, hence the feed's tracks."""
        self.state = ViewerState.CLOSED
        self._handshake_over()
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
            try:
                self.estimate_bps = unpack_remb_fci(packet.fci)[0]
            except ValueError:
                pass  # another application feedback than REMB
            return
        if not isinstance(packet, RtcpRrPacket):
            return
        for block in packet.reports:
            if block.ssrc == self.feed.video.ssrc:
                previous, self._last_block = (self._last_block,
                                              (block.highest_sequence, block.packets_lost))
                loss = loss_without_jumps(block.fraction_lost, previous,
                                          self._last_block, self.feed.video.jumps)
                rtt_s = round_trip_s(block)
                if rtt_s is not None:
                    self.feed.video.rtt_s = self.feed.audio.rtt_s = rtt_s
                self._on_report(LinkReport(loss=loss, rtt_s=rtt_s,
                                           estimate_bps=self.estimate_bps))

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state in ("connected", "failed", "closed"):
            self._handshake_over()
        if state == "connected" and self.connected_at is None:
            self.connected_at = self._clock()
        elif state in ("failed", "closed") and self.state is not ViewerState.CLOSED:
            self.state = ViewerState.CLOSED  # report once
            self._on_failed(GoneReason.FAILED if state == "failed" else GoneReason.CLOSED)


def loss_without_jumps(fraction_lost: int, previous: tuple[int, int] | None,
                       current: tuple[int, int],
                       jumps: Iterable[tuple[int, int]]) -> float:
    """The fraction of packets a receiver report says were lost, without the numbers our
    own forward jumps skipped (media/viewer_link.py SEQ_JUMP). `previous` and `current`
    are (extended highest sequence number, cumulative packets lost) of the last two
    reports, `jumps` (first number after a jump, its size). aiortc counts a jump's 512
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
    if not jumped:
        return fraction_lost / 256
    lost = current[1] - previous[1]
    if lost >= jumped:
        lost -= jumped
    return min(1.0, max(0, lost) / max(1, expected - jumped))


def round_trip_s(block: RtcpReceiverInfo) -> float | None:
    """The RTT a report block gives (RFC 3550 6.4.1: now - LSR - DLSR, in 1/65536 s),
    or None before the viewer has had a sender report."""
    if not block.lsr:
        return None
    now = (clock.current_ntp_time() >> 16) & 0xFFFFFFFF
    rtt = (now - block.lsr - block.dlsr) & 0xFFFFFFFF
    return rtt / 65536 if rtt < 0x80000000 else 0.0
