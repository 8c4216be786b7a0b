"""Counting what a viewer receives, and the one patch the bench makes to aiortc.

aiortc's RTCRtpReceiver always depacketizes, reassembles (jitter buffer) and decodes on a
thread. A bench worker that did that for every viewer would measure its own decoder, not
the server: VP8 360p30 decode is ~1-2 ms a frame, i.e. 3-6% of a core per viewer, so one
core of decoding viewers saturates near 20-30 of them. Light viewers count instead of
decoding. Two functions install the behaviour on ONE receiver instance (never on the
class, so decoding probes in the same process are untouched):

- count_only(receiver, counters): after setRemoteDescription, before the connection is up.
  Its RTP handler feeds aiortc's own per-SSRC StreamStatistics (so the receiver's RTCP
  task keeps sending Receiver Reports with real loss/jitter: the server drops a viewer
  that goes silent for 5 s) and `counters`, and nothing else: no depacketizing, no jitter
  buffer, no NACK/PLI/REMB, no decode. Its receive() stops the decoder thread aiortc has
  just started (nothing will ever be queued to it).
- count_and_decode(receiver, counters): counts each packet, then hands it to aiortc's own
  handler (the probe viewers, and every viewer with --decode).

count_only also takes light viewers' SRTP off aiortc's receive loop: through it, a packet
costs a queue put, a task wake-up, RtpPacket.parse and routing, ~44 us of worker CPU
(measured: one worker at 77% of a core for ~17k packets/s), so one core of workers
could not absorb 200 viewers (29k packets/s) once the server could send them. The
sockets' datagram_received is shadowed for SRTP only (SRTCP, DTLS and STUN go the usual
way, through aioice's STUN parse): read the fixed header (SRTP is unprotected only where
a payload is read: see DirectRtp), count, all in the datagram callback.

Both reach into RTCRtpReceiver's private (name-mangled) attributes (__codecs,
__remote_streams, __stop_decoder, __timestamp_mapper) through media/aiortc_private.py,
which checks them at import, so an aiortc upgrade fails loudly at start instead of
measuring nothing.
"""

from __future__ import annotations

import struct
import time
import weakref
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import RtpPacket

from media import aioice_private, aiortc_private

RTP_HEADER_BYTES = 12  # counted per packet: bytes are payload + the fixed RTP header
VIDEO_CLOCK = 90000
ARRIVALS_KEPT = 256  # last-packet arrival times of recent frames, for the probes (~8 s)
DELAYS_KEPT = 30 * 600  # per-frame delay samples per window: 10 min at 30 fps

VIDEO, AUDIO, RTX = 1, 2, 3
_KINDS = {"video/vp8": VIDEO, "video/h264": VIDEO, "video/rtx": RTX, "audio/opus": AUDIO}
_kind_cache: dict[str, int] = {}

def kind_of(mime: str) -> int:
    kind = _kind_cache.get(mime)
    if kind is None:
        kind = _kind_cache[mime] = _KINDS.get(mime.lower(), 0)
    return kind


def vp8_starts_keyframe(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe: the payload descriptor's S bit set with
    partition id 0, and the P (inverse keyframe) bit of the VP8 header clear (RFC 7741)."""
    if len(payload) < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x0F:
        return False
    i = 1
    if first & 0x80:  # X: extension octet follows
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= i:
                return False
            i += 2 if payload[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID/KEYIDX octet
            i += 1
    return len(payload) > i and not payload[i] & 0x01


def h264_has_idr(payload: bytes) -> bool:
    """True if the packet carries (the start of) an IDR slice: single NAL, STAP-A, FU-A."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == 5:
        return True
    if nal_type == 24:  # STAP-A: [size:16][nal]...
        i = 1
        while i + 2 < len(payload):
            size = int.from_bytes(payload[i : i + 2], "big")
            if payload[i + 2] & 0x1F == 5:
                return True
            i += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A: start bit and the fragmented NAL type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
    return False


class RtpCounters:
    """What one viewer received: cumulative counters plus a measurement window.

    Cheap on purpose (it runs for every packet of every light viewer): integer updates, a
    clock read per packet, a dict write per frame.
    """

    def __init__(self, codec: str = "vp8",
                 on_first_keyframe: Callable[[], None] | None = None) -> None:
        self.starts_keyframe = vp8_starts_keyframe if codec == "vp8" else h264_has_idr
        self.on_first_keyframe = on_first_keyframe
        self.video_packets = self.audio_packets = self.rtx_packets = 0
        self.video_bytes = self.audio_bytes = 0
        self.frames = self.keyframes = 0
        self.first_packet_at: float | None = None  # time.monotonic()
        self.first_frame_at: float | None = None
        self.first_keyframe_at: float | None = None
        self.base_seq: int | None = None  # extended sequence numbers (video)
        self.highest_seq = -1
        self._key_ts: int | None = None
        self._ext_ts = 0  # extended RTP timestamp of the last complete frame
        self.arrivals: dict[int, float] = {}  # RTP timestamp -> wall time of its last packet
        self.delays: list[float] = []  # wall arrival - media time, per frame in the window
        self._mark: dict[str, int] = {}
        self.mark()

    def on_rtp(self, packet: RtpPacket, mime: str, clear: bool = True) -> None:
        """Count one packet; `clear` False: its payload is still encrypted (its size is
        right, its bytes are not read: no keyframe detection)."""
        kind = kind_of(mime)
        if self.first_packet_at is None:
            self.first_packet_at = time.monotonic()
        if kind == AUDIO:
            self.audio_packets += 1
            self.audio_bytes += len(packet.payload) + RTP_HEADER_BYTES
            return
        if kind != VIDEO:
            self.rtx_packets += kind == RTX
            return
        self.video_packets += 1
        self.video_bytes += len(packet.payload) + RTP_HEADER_BYTES
        seq = packet.sequence_number
        if self.base_seq is None:
            self.base_seq = self.highest_seq = seq
        else:
            delta = (seq - self.highest_seq) & 0xFFFF
            if 0 < delta < 0x8000:  # newer; older ones are late arrivals, not news
                self.highest_seq += delta
        ts = packet.timestamp
        if clear and self.starts_keyframe(packet.payload):
            self._key_ts = ts
        if packet.marker:
            self._frame_done(ts)

    def _frame_done(self, ts: int) -> None:
        wall = time.time()
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
            self._ext_ts = ts
        else:
            delta = (ts - self._ext_ts) & 0xFFFFFFFF
            self._ext_ts += delta if delta < 0x80000000 else delta - 0x100000000
        if ts == self._key_ts:
            self.keyframes += 1
            if self.first_keyframe_at is None:
                self.first_keyframe_at = time.monotonic()
                if self.on_first_keyframe is not None:
                    self.on_first_keyframe()
        self.arrivals[ts] = wall
        if len(self.arrivals) > ARRIVALS_KEPT:
            del self.arrivals[next(iter(self.arrivals))]
        if len(self.delays) < DELAYS_KEPT:
            self.delays.append(wall - self._ext_ts / VIDEO_CLOCK)

    @property
    def video_expected(self) -> int:
        return 0 if self.base_seq is None else self.highest_seq - self.base_seq + 1

    def _totals(self) -> dict[str, int]:
        return {"video_packets": self.video_packets, "audio_packets": self.audio_packets,
                "rtx_packets": self.rtx_packets, "bytes": self.video_bytes + self.audio_bytes,
                "frames": self.frames, "keyframes": self.keyframes,
                "video_expected": self.video_expected}

    def mark(self) -> None:
        """Start a measurement window."""
        self._mark = self._totals()
        self.delays = []

    def window(self) -> dict[str, Any]:
        """Counts since mark(); `lost` is expected minus received video packets (RTX aside)."""
        now = self._totals()
        out: dict[str, Any] = {k: now[k] - self._mark[k] for k in now}
        out["lost"] = max(0, out["video_expected"] - out["video_packets"])
        return out


def count_only(receiver: RTCRtpReceiver, counters: RtpCounters) -> None:
    """Make `receiver` count packets instead of decoding them (see the module docstring)."""
    codecs = aiortc_private.receiver_codecs(receiver)
    streams: dict[int, StreamStatistics] = aiortc_private.receiver_streams(receiver)
    aiortc_receive = receiver.receive

    async def receive(parameters: Any) -> None:
        await aiortc_receive(parameters)
        # The thread just started idles on an empty queue; end it (it exits at once).
        aiortc_private.stop_decoder(receiver)

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)  # what the Receiver Reports are made of
        counters.on_rtp(packet, codec.mimeType)

    # An instance attribute shadows the method: pc.__connect calls receiver.receive(...)
    # on this very object.
    receiver.receive = receive  # type: ignore[method-assign]
    aiortc_private.intercept_receiver_rtp(receiver, lambda _aiortc: handle_rtp_packet)
    _direct_rtp(receiver, counters)


class LightPacket:
    """The fields RtpCounters and StreamStatistics read, from the fixed RTP header.

    SRTP leaves the header in the clear: `trailer` > 0 reads an undecrypted packet (its
    payload is ciphertext followed by that many bytes of auth tag; no padding is read)."""

    __slots__ = ("marker", "payload", "payload_type", "sequence_number", "ssrc", "timestamp")

    def __init__(self, data: bytes, trailer: int = 0) -> None:
        second, self.sequence_number, self.timestamp, self.ssrc = _RTP_FIXED.unpack_from(data, 1)
        self.marker = second >> 7
        self.payload_type = second & 0x7F
        offset = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # header extension: 4 bytes + its length in 32-bit words
            offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
        if trailer:
            end = len(data) - trailer
        else:
            end = len(data) - (data[-1] if data[0] & 0x20 else 0)  # padding
        self.payload = memoryview(data)[offset:end]


_RTP_FIXED = struct.Struct("!BHII")
# One DirectRtp per DTLS transport (its receivers share it); gone with the transport.
_direct_by_transport: weakref.WeakKeyDictionary[RTCDtlsTransport, DirectRtp] = (
    weakref.WeakKeyDictionary())


class DirectRtp:
    """One light viewer's RTP, handled in the datagram callback (see the module docstring)."""

    def __init__(self, dtls: RTCDtlsTransport, counters: RtpCounters) -> None:
        self.dtls = dtls
        self.counters = counters
        self.receivers: list[RTCRtpReceiver] = []
        self._by_type: dict[int, tuple[str, dict[int, StreamStatistics], int]] = {}
        # SRTP is decrypted only where a payload is read: every packet until the first
        # keyframe, then the first packet of each video frame (the keyframe bits); the
        # rest is counted from the header in the clear (libsrtp's unprotect was ~1/5 of
        # a light viewer's CPU per packet). The auth tag's size is learnt from the first.
        self._tag = 0
        self._frame_start_seq: int | None = None  # the packet after the last marker
        self._connection = connection = aiortc_private.ice_connection(dtls)
        self._queue_datagram = connection.data_received
        self._hooked: set[int] = set()
        # An instance attribute shadows the method: aioice's StunProtocol calls
        # receiver.data_received(data, component) on this very connection object.
        connection.data_received = self._data_received

    def _data_received(self, data: bytes, component: int) -> None:
        # The first datagrams come this way (after aioice tried to parse them as STUN and
        # raised). By now the sockets exist: from here on they bypass aioice for SRTP.
        self._hook_sockets()
        if not self._rtp(data):
            self._queue_datagram(data, component)

    def _hook_sockets(self) -> None:
        for protocol in aioice_private.socket_protocols(self._connection):
            if id(protocol) in self._hooked:
                continue
            self._hooked.add(id(protocol))
            stun_received = protocol.datagram_received

            def datagram_received(data: bytes, addr: Any, stun_received: Any = stun_received
                                  ) -> None:
                if not self._rtp(data):
                    stun_received(data, addr)

            # asyncio calls protocol.datagram_received(data, addr) on this object.
            protocol.datagram_received = datagram_received

    def _rtp(self, data: bytes) -> bool:
        """Count `data` if it is SRTP (not SRTCP, DTLS or STUN); False to pass it on."""
        srtp = aiortc_private.srtp_inbound(self.dtls)
        if srtp is None or not 127 < data[0] < 192 or 191 < data[1] < 209:  # 192-208: RTCP
            return False
        if len(data) < 12:
            return True
        route = self._by_type.get(data[1] & 0x7F) or self._route(data[1] & 0x7F)
        if route is None:
            return True
        mime, streams, clock_rate = route
        seq = (data[2] << 8) | data[3]
        video = kind_of(mime) == VIDEO
        clear = (not self._tag or self.counters.first_keyframe_at is None
                 or (video and seq == self._frame_start_seq))
        try:
            if clear:
                plain = srtp.unprotect(data)
                self._tag = self._tag or len(data) - len(plain)
                packet = LightPacket(plain)
            else:
                packet = LightPacket(data, self._tag)
        except (pylibsrtp.Error, struct.error, IndexError):
            return True  # what aiortc does with a packet that fails SRTP: drop it
        if video and packet.marker:
            self._frame_start_seq = (seq + 1) & 0xFFFF
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(clock_rate)
        stats.add(packet)  # type: ignore[arg-type]
        self.counters.on_rtp(packet, mime, clear)  # type: ignore[arg-type]
        return True

    def _route(self, payload_type: int) -> tuple[str, dict[int, StreamStatistics], int] | None:
        for receiver in self.receivers:
            codec = aiortc_private.receiver_codecs(receiver).get(payload_type)
            if codec is not None:
                streams = aiortc_private.receiver_streams(receiver)
                route = self._by_type[payload_type] = (codec.mimeType, streams, codec.clockRate)
                return route
        return None


def _direct_rtp(receiver: RTCRtpReceiver, counters: RtpCounters) -> None:
    dtls = receiver.transport
    direct = _direct_by_transport.get(dtls)
    if direct is None:
        direct = _direct_by_transport[dtls] = DirectRtp(dtls, counters)
    direct.receivers.append(receiver)


def count_and_decode(receiver: RTCRtpReceiver, counters: RtpCounters) -> None:
    """Count every packet, then let aiortc handle it as usual (jitter buffer, decode)."""
    codecs = aiortc_private.receiver_codecs(receiver)

    def make(aiortc_handle: aiortc_private.RtpHandler) -> aiortc_private.RtpHandler:
        async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
            codec = codecs.get(packet.payload_type)
            if codec is not None:
                counters.on_rtp(packet, codec.mimeType)
            await aiortc_handle(packet, arrival_time_ms)

        return handle_rtp_packet

    aiortc_private.intercept_receiver_rtp(receiver, make)


def rtp_timestamp_of(receiver: RTCRtpReceiver, pts: int) -> int | None:
    """The RTP timestamp a decoded frame came in with: aiortc rebases timestamps to start
    at 0 (its TimestampMapper), and the frame's pts is that rebased value."""
    origin = aiortc_private.timestamp_origin(receiver)
    return None if origin is None else (pts + origin) & 0xFFFFFFFF
