"""One viewer's end of a room stream: gating, SRTP and the datagram send.

The viewer's RTCPeerConnection still does everything but the media packets: SDP, ICE,
DTLS, RTCP (sender reports, receiver reports, PLI/NACK in). Its RTCRtpSender is given an
IdleTrack that never yields a frame, so the sender's own per-packet path never runs;
the room's fan-out sends the stream's shared RTP bytes through this link instead:

    stream bytes -> SRTP protect (this viewer's DTLS keys) -> UDP sendto (nominated pair)

This is the lean path. Through stock aiortc senders a viewer-packet cost
~31-38 us of CPU (py-spy, 200 viewers): a task wake-up per packet, RtpPacket objects,
serialize, packetize, two NTP clock reads, four awaits down to sendto. Here it is one
protect() and one sendto() per viewer-packet.

The aiortc/aioice internals this needs (the SRTP session, the nominated pair, the
sender's SSRC and RTCP counters) are reached through media/aiortc_private.py and
media/aioice_private.py, checked at import; tests/media exercise each through real peers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from enum import Enum
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpsender import RTCRtpSender

from media import aioice_private, aiortc_private
from media.fastpath import TRANSIENT, WOULD_BLOCK, NativeSender, Target
from media.rtp_stream import OutFrame, WireProfile

# A viewer whose socket has this much unsent data queued in asyncio is behind: its video
# waits for the next keyframe, its audio packets are dropped. Loopback never gets here;
# a congested uplink does, and then memory stays bounded per viewer.
MAX_BACKLOG_BYTES = 256 * 1024
_RTP_COMPONENT = 1


class IdleTrack(MediaStreamTrack):
    """The sender's track: recv() never yields. Its first call means DTLS is up."""

    def __init__(self, kind: str, on_first_recv: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._on_first_recv: Callable[[], None] | None = on_first_recv
        self._ended = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        if self._on_first_recv is not None:
            on_first_recv, self._on_first_recv = self._on_first_recv, None
            on_first_recv()
        if self.readyState == "live":
            await asyncio.shield(self._ended)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if not self._ended.done():
            self._ended.set_result(None)


class Verdict(Enum):
    SEND = "send"
    SKIP = "skip"  # not this frame (waiting for a keyframe, audio under backlog)
    FELL_BEHIND = "fell_behind"  # skip, and the viewer needs a keyframe


def admit_video(awaiting_keyframe: bool, keyframe: bool, backlogged: bool) -> Verdict:
    """May this video frame go to a viewer? Deltas are useless without their reference."""
    if backlogged:
        return Verdict.SKIP if awaiting_keyframe else Verdict.FELL_BEHIND
    if awaiting_keyframe and not keyframe:
        return Verdict.SKIP
    return Verdict.SEND


def shift_seq(data: bytes, offset: int) -> bytes:
    """An RTP packet with its sequence number moved by `offset` (mod 2^16): a viewer that
    switched renditions gets the new one's packets continuing its own numbering."""
    if not offset:
        return data
    seq = (((data[2] << 8) | data[3]) + offset) & 0xFFFF
    return data[:2] + seq.to_bytes(2, "big") + data[4:]


class ViewerLink:
    """A viewer's video or audio: configured by its sender's send(), active once DTLS is up."""

    def __init__(self, kind: str, ssrc: int, on_active: Callable[[ViewerLink], None],
                 on_failed: Callable[[ViewerLink], None] | None = None) -> None:
        self.kind = kind
        self.ssrc = ssrc
        self.started = False
        self.failed: str | None = None  # why its socket can no longer send, once it could
        self._watched: object | None = None  # the ICE protocol whose send errors reach us
        self._on_failed = on_failed
        self.track = IdleTrack(kind, lambda: self._start(on_active))
        self.profile: WireProfile | None = None
        self.sender: RTCRtpSender | None = None
        self.awaiting_keyframe = kind == "video"
        self.dropped = 0  # frames (video) or packets (audio) not sent to this viewer
        self.sent_packets = 0
        self.sent_octets = 0
        self.retransmitted = 0
        self.caught_up = 0  # packets of the room's latest keyframe run sent at its start
        # Video: the rendition it gets (0: the best), the one it switches to at that
        # rendition's next keyframe, and what turns the rendition's sequence numbers into
        # this viewer's own (media/fanout.py switches; one track, numbering unbroken).
        self.rendition = 0
        self.pending: int | None = None
        self.seq_offset = 0
        self.switch_seq: int | None = None  # this viewer's first sequence number after it
        self.switches = 0

    @property
    def active(self) -> bool:
        """Started by its sender (DTLS up, wire profile known), not closed, not failed."""
        return (self.started and self.profile is not None and self.failed is None
                and self.track.readyState == "live")

    def attach(self, sender: RTCRtpSender) -> None:
        """Give `sender` the stream's SSRC (before the offer is made) and learn its wire
        profile when the peer connection starts it."""
        self.sender = sender
        aiortc_private.set_sender_ssrc(sender, self.ssrc)
        original_send = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            self.profile = WireProfile.from_parameters(parameters)
            await original_send(parameters)

        # An instance attribute shadows the method: RTCPeerConnection calls
        # transceiver.sender.send(...) on this very object once DTLS is connected.
        sender.send = send  # type: ignore[method-assign]

    def deliver_video(self, frame: OutFrame, keyframe: bool) -> bool:
        """Send the frame if admitted; True if the viewer fell behind (wants a keyframe)."""
        route = self._route()
        if route is None:
            return False
        backlogged = route[1].get_write_buffer_size() > MAX_BACKLOG_BYTES
        verdict = admit_video(self.awaiting_keyframe, keyframe, backlogged)
        if verdict is not Verdict.SEND:
            self.dropped += 1
            self.awaiting_keyframe = True
            return verdict is Verdict.FELL_BEHIND
        self.awaiting_keyframe = False
        self._send(route, frame)
        return False

    def deliver_audio(self, frame: OutFrame) -> None:
        route = self._route()
        if route is None:
            return
        if route[1].get_write_buffer_size() > MAX_BACKLOG_BYTES:
            self.dropped += 1
            return
        self._send(route, frame)

    def start_from(self, packets: list[bytes]) -> bool:
        """A video link that just started: send it the room's latest keyframe and the
        frames since (`packets`, in sequence) so it decodes without a forced keyframe.
        False (nothing sent) if there are none or it cannot send yet."""
        route = self._route()
        if not packets or route is None or not self.awaiting_keyframe:
            return False
        protect, udp, addr = route
        for data in packets:
            udp.sendto(protect(shift_seq(data, self.seq_offset)), addr)
        self.awaiting_keyframe = False
        self.sent_packets += len(packets)
        self.sent_octets += sum(len(data) for data in packets)  # headers too: close enough
        self.caught_up = len(packets)
        return True

    def retransmit(self, packets: list[bytes]) -> None:
        """Resend packets a NACK named (already looked up in the stream's history)."""
        route = self._route()
        if route is None or self.awaiting_keyframe:
            return
        protect, udp, addr = route
        for data in packets:
            udp.sendto(protect(shift_seq(data, self.seq_offset)), addr)
        self.retransmitted += len(packets)

    def stream_seq(self, seq: int) -> int | None:
        """The rendition's sequence number of this viewer's `seq` (a NACK), or None if it
        was sent before the latest switch (another rendition's: not resent)."""
        if self.switch_seq is not None and (seq - self.switch_seq) & 0xFFFF >= 0x8000:
            return None
        return (seq - self.seq_offset) & 0xFFFF

    def close(self) -> None:
        self.track.stop()

    def fail(self, why: str) -> None:
        """Its socket errored: send nothing more and tell the fan-out (once)."""
        if self.failed is None and self.track.readyState == "live":
            self.failed = why
            if self._on_failed is not None:
                self._on_failed(self)

    # ---- the native path (media/fastpath.py) ------------------------------------------

    def native_target(self, native: NativeSender) -> tuple[Target, Any] | None:
        """((srtp_t, socket, sockaddr), the SRTP session to keep alive) while this link can
        take the native path's sends: route up, nothing waiting in asyncio's buffer (so
        order holds) and, for video, not waiting for a keyframe. Else None: the Python
        path serves it (gating, backlog) until it is ready."""
        if self.kind == "video" and self.awaiting_keyframe:
            return None
        route = self._route()
        if route is None:
            return None
        udp = route[1]
        if udp.get_write_buffer_size():
            return None
        assert self.sender is not None
        session = aiortc_private.srtp_outbound(self.sender.transport)
        sock = udp.get_extra_info("socket")
        if session is None or sock is None:
            return None
        return ((aiortc_private.srtp_context(session), sock, native.sockaddr(route[2]),
                 self.seq_offset), session)

    def send_rest(self, packets: list[bytes]) -> None:
        """The packets of a frame the kernel would not take natively (its buffer full):
        through asyncio's buffer, as the Python path sends (same SRTP session; aiortc's
        policy allows protecting a sequence number again)."""
        route = self._route()
        if route is None:
            return
        protect, udp, addr = route
        for data in packets:
            udp.sendto(protect(shift_seq(data, self.seq_offset)), addr)

    def count_sent(self, packets: int, octets: int, ntp_time: int, timestamp: int) -> None:
        """Bring the counters (and the sender's RTCP sender report) up to date with what
        the native path sent for this link."""
        self.sent_packets = packets
        self.sent_octets = octets
        assert self.sender is not None
        aiortc_private.record_sent(self.sender, ntp_time, timestamp, packets, octets)

    # ---- the wire ---------------------------------------------------------------------

    def _route(self) -> tuple[Callable[[bytes], bytes], asyncio.DatagramTransport, Any] | None:
        """(protect, udp transport, address) while DTLS is connected and a pair is nominated."""
        sender = self.sender
        if sender is None or self.profile is None or self.track.readyState != "live":
            return None
        dtls = sender.transport
        if dtls.state != "connected" or self.failed is not None:
            return None
        pair = aioice_private.nominated_pair(aiortc_private.ice_connection(dtls), _RTP_COMPONENT)
        if pair is None:
            return None
        if pair.protocol is not self._watched:  # once per nominated pair
            self._watched = pair.protocol
            aioice_private.watch_send_errors(pair.protocol, self._send_error)
        udp = pair.protocol.transport
        if udp is None or udp.is_closing():
            # DTLS is still up but the nominated pair's socket is gone (closed by an error,
            # or from under us): nothing will reach this viewer again.
            self.fail("socket closed")
            return None
        return aiortc_private.srtp_protect(dtls), udp, pair.remote_addr

    def _send_error(self, exc: Exception) -> None:
        """asyncio reported a failed send on this link's socket (the Python path)."""
        code = getattr(exc, "errno", None)
        if code not in TRANSIENT and code not in WOULD_BLOCK:
            self.fail(f"send failed: {exc}")

    def _start(self, on_active: Callable[[ViewerLink], None]) -> None:
        self.started = True
        on_active(self)

    def _send(self, route: tuple[Callable[[bytes], bytes], asyncio.DatagramTransport, Any],
              frame: OutFrame) -> None:
        protect, udp, addr = route
        assert self.profile is not None
        packets = frame.packets[self.profile]
        offset = self.seq_offset
        for data in packets:
            udp.sendto(protect(shift_seq(data, offset) if offset else data), addr)
        self.sent_packets += len(packets)
        self.sent_octets += frame.payload_octets
        assert self.sender is not None
        aiortc_private.record_sent(self.sender, frame.ntp_time, frame.timestamp,
                                   self.sent_packets, self.sent_octets)

