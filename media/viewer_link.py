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
from collections import deque
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


# Where a viewer's numbering jumps forward (at the keyframe it moves to), and why 512:
# aiortc 1.16's receiver holds video in a 512-packet jitter buffer and keeps everything
# behind a packet that never comes until a packet 512 numbers past its oldest arrives;
# then it drops what it holds and asks for a keyframe (jitterbuffer.py, capacity 512).
# Runs of packets a congested link lost and NACK could not bring back (the stream's
# history is gone, or they were before a switch) stall it for 512 packets: 17 s at
# 180p's ~30 a second. A jump of 512 empties its buffer at once, so the keyframe behind
# the jump decodes at once. libwebrtc (Chromium) takes it too: its NACK module adds the
# 511 skipped numbers (at most 1,000, or it clears its list and asks a keyframe) and
# clears them when the keyframe decodes (ClearUpTo); its packet buffer starts a frame
# at a keyframe whatever came before; its receive statistics count a jump over 450
# followed by the next number as a stream restart, not as loss.
SEQ_JUMP = 512
# A link that NACKed video this recently may have a hole its receiver still waits on: the
# rule steps down after 2 s of loss, NACKs all along. A link that did not moves without a
# jump (its receiver's statistics stay clean: a loopback viewer under load that lost and
# got back a packet a while ago is not jumped). A hole older than that which still holds
# a receiver up is caught by its NACKs (a resync, STUCK_AFTER_S).
JUMP_AFTER_NACK_S = 2.0


# A packet resent is not resent again within the link's round-trip time (this default
# until a receiver report gives one): a NACK that names it again sooner was sent before
# the resend could arrive. aiortc NACKs every missing packet of its last 128 at each new
# gap, so on a congested link each NACK named dozens again: measured 300 kbit/s with 2%
# loss, 600-1,000 resends a second, four times what the link carries, and the link never
# drained. libwebrtc's sender keeps the same rule (RtpPacketHistory, one resend per RTT).
RESEND_GAP_S = 0.1
RESENT_REMEMBERED = 1024  # past this many, forget those resent over a second ago
# A resent video packet goes out a second time once the viewer's NACKs have gone quiet
# for an RTT (at least AGAIN_AFTER_S) after it was due. aiortc NACKs only when a new gap
# appears, never on a timer: a resend the link lost, once the link is clean again, is
# asked for never more and its receiver waits for 512 packets (measured: 9.3 s frozen at
# 180p after a limit was lifted; the queue it flushed held the last resends). While NACKs
# keep coming a hole still open is named again in them: no second copy then (on a
# congested link those copies were a third of what it carried).
AGAIN_AFTER_S = 0.2
# ...and only while it is at most this many packets behind the newest sent: aiortc takes
# a packet 100 or more behind its jitter buffer's start for a restarted stream, drops
# everything it holds and waits from that old number on (jitterbuffer.py MAX_MISORDER):
# a second copy of a packet it already used must not reach it that late.
AGAIN_WITHIN = 64
# A packet still NACKed this long (or 3 RTTs, if longer) after its first NACK did not get
# through its resends (a congested link drops them too): the receiver is stuck on it.
# aiortc stops NACKing a hole 128 packets on (4 s at 180p) and then waits, silently,
# for 512.
STUCK_AFTER_S = 1.0
# A first NACK this old is of a number the stream used before it wrapped (65,536 packets:
# 4-5 minutes at 720p): a new hole, not the same one still open.
FIRST_NACK_FORGOTTEN_S = 10.0


def renumber_jump(resync: bool, nacked_at: float | None, now: float) -> int:
    """How far a viewer's numbering jumps at the keyframe it moves to (a switch, or a
    resync of its own rendition): SEQ_JUMP if its receiver may hold a hole it cannot
    fill (asked to resync, or a NACK in the last JUMP_AFTER_NACK_S), else 0."""
    if resync or (nacked_at is not None and now - nacked_at < JUMP_AFTER_NACK_S):
        return SEQ_JUMP
    return 0


def shift_seq(data: bytes, offset: int) -> bytes:
    """An RTP packet with its sequence number moved by `offset` (mod 2^16): a viewer that
    switched renditions gets the new one's packets continuing its own numbering."""
    if not offset:
        return data
    seq = (((data[2] << 8) | data[3]) + offset) & 0xFFFF
    return data[:2] + seq.to_bytes(2, "big") + data[4:]


def _bounded(times: dict[int, float], now: float) -> float:
    """`now`, after forgetting `times`' entries over 2 s old once it holds RESENT_REMEMBERED."""
    if len(times) >= RESENT_REMEMBERED:
        for seq in [seq for seq, at in times.items() if now - at >= 2.0]:
            del times[seq]
    return now


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
        self.switch_jumped = False  # the numbering jumped there (SEQ_JUMP, renumber_jump)
        self.switches = 0
        # A hole its receiver cannot fill (a NACK for a packet gone from the history, or
        # from before a switch that did not jump): jump at its rendition's next keyframe.
        self.resync = False
        self.resyncs = 0
        self.nacked_at: float | None = None  # its latest NACK of a packet after switch_seq
        # (first sequence number after a jump, its size), the latest few: its receiver
        # reports count the jump as lost packets (aiortc), which is not the link's loss.
        self.jumps: deque[tuple[int, int]] = deque(maxlen=4)
        self.rtt_s: float | None = None  # the latest its receiver reports gave
        self._resent: dict[int, float] = {}  # sequence number -> when it was last resent
        self._first_nack: dict[int, float] = {}  # sequence number -> its first NACK
        self._again: dict[int, float] = {}  # sequence number -> when its second copy is due

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

    def resend_due(self, seq: int, now: float) -> bool:
        """May this viewer's `seq` be resent now (not resent within its RTT)? Notes it."""
        last = self._resent.get(seq)
        if last is not None and now - last < max(self.rtt_s or 0.0, RESEND_GAP_S):
            return False
        self._resent[seq] = _bounded(self._resent, now)
        return True

    def send_again(self, seq: int, now: float) -> None:
        """`seq` was just resent: a second copy may follow (AGAIN_AFTER_S, again_due)."""
        if len(self._again) < RESENT_REMEMBERED:
            self._again[seq] = now + max(AGAIN_AFTER_S, 1.5 * (self.rtt_s or 0.0))

    def again_due(self, now: float) -> tuple[list[int], bool]:
        """(the sequence numbers whose second copy goes now, whether any wait still):
        those due, once no NACK came for an RTT; those returned are forgotten."""
        gap = max(AGAIN_AFTER_S, self.rtt_s or 0.0)
        if self.nacked_at is not None and now - self.nacked_at < gap:
            return [], True
        due = [seq for seq, at in self._again.items() if at <= now]
        for seq in due:
            del self._again[seq]
        return due, bool(self._again)

    def stuck_on(self, seq: int, now: float) -> bool:
        """Is this NACK of `seq` one more for a packet first NACKed STUCK_AFTER_S (or 3
        RTTs) ago?"""
        first = self._first_nack.get(seq)
        if first is None or now - first >= FIRST_NACK_FORGOTTEN_S:  # a number used again
            self._first_nack[seq] = _bounded(self._first_nack, now)
            return False
        return now - first >= max(STUCK_AFTER_S, 3 * (self.rtt_s or 0.0))

    def before_switch(self, seq: int) -> bool:
        """Was this viewer's `seq` sent before its latest switch (or jump)? Those are
        another rendition's (or skipped): never resent."""
        return self.switch_seq is not None and (seq - self.switch_seq) & 0xFFFF >= 0x8000

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

