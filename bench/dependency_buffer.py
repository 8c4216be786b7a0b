"""A video jitter buffer that knows which frames a decoder can use, for the bench's
aiortc viewers (bench/decoding_viewer.py installs it in place of aiortc's own).

aiortc 1.16's video jitter buffer hands the decoder every frame in sequence and nothing
else: a packet that never comes holds everything behind it until 512 packets later (17 s
at 180p), and after it lets go, or after a jump, it hands over delta frames whose
references are gone (a 180p delta decoded on the 360p picture still held: the bench
counted those as "360" frames, README "abr"). A browser's receiver does what this one
does instead (libwebrtc's packet buffer and frame buffer):

- a complete keyframe further on is decoded at once, whatever hole is before it: the
  frames before it are dropped (`skips`);
- after a hole it skipped, a restart or a jump, delta frames are dropped until a
  keyframe comes (`dropped`): they would decode against the wrong pictures;
- a hole still open HOLE_PLI_S after it was seen (its NACKs and their resends did not
  fill it), or a delta frame dropped for want of its keyframe, asks for a keyframe with a
  PLI, at most one per PLI_EVERY_S (`plis`). The server answers a PLI with a keyframe of
  the viewer's rendition within its 0.5 s throttle (media/keyframes.py).

Like aiortc's, add() returns at most one frame per packet (the receiver's interface):
frames that become complete together are handed over with the next packets.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.jitterbuffer import MAX_MISORDER, JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

CAPACITY = 512  # aiortc's, for video
# A hole NACK and the server's resends (one per RTT, a second copy 0.2 s later: media/
# viewer_link.py) did not fill in this long is taken as lost: ask for a keyframe. On a
# link that is not queueing (RTT ~10 ms) a resend lands in ~50 ms and its second copy by
# ~0.25 s; 0.5 s is past both.
HOLE_PLI_S = 0.5
# At most one PLI this often. 0.5 s (the server's own throttle) measured worse on an
# overfilled link: a keyframe every 0.5 s (3-4 KB against ~700 B a delta at 180p) added
# to the overfill, and one round froze 9.8 s (bench abr, 180:150 with 64 kbit/s Opus).
PLI_EVERY_S = 1.0


def vp8_keyframe_start(packet: RtpPacket) -> bool | None:
    """For a VP8 packet (its payload descriptor in `payload`, the depayloaded bytes in
    `_data` as aiortc's receiver sets them): None if it does not start a frame, else
    whether that frame is a keyframe (RFC 7741: S bit, partition 0; the frame tag's
    inverted key-frame bit)."""
    payload = packet.payload
    data: bytes = getattr(packet, "_data", b"")
    if not payload or not data or not payload[0] & 0x10 or payload[0] & 0x07:
        return None
    return not data[0] & 0x01


def h264_keyframe_start(packet: RtpPacket) -> bool | None:
    """The same for H.264 (Annex-B `_data`): a packet with an SPS or an IDR slice NAL
    starts a keyframe (x264 repeats SPS/PPS before each, media/encoder.py); others: None
    (their frame starts are found by timestamp)."""
    data: bytes = getattr(packet, "_data", b"")
    for part in data.split(b"\x00\x00\x00\x01")[1:]:
        if part and part[0] & 0x1F in (5, 7):
            return True
    return None


def keyframe_start(packet: RtpPacket) -> bool | None:
    """Whether `packet` starts a keyframe (True), a delta frame (False) or we cannot tell
    (None), for VP8 or H.264 (aiortc's H.264 depayload starts with a start code)."""
    data: bytes = getattr(packet, "_data", b"")
    if data.startswith(b"\x00\x00\x00\x01"):
        return h264_keyframe_start(packet)
    return vp8_keyframe_start(packet)


class DependencyBuffer(JitterBuffer):
    """aiortc's JitterBuffer interface (add() -> (send a PLI?, a frame or None)) with the
    frame-dependency rules of the module docstring. Plain state; `clock` for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(capacity=CAPACITY, is_video=True)
        self._clock = clock
        self.need_keyframe = True  # nothing decoded yet
        self._hole_since: float | None = None
        self._last_pli: float | None = None
        self.skips = 0  # keyframes decoded past a hole
        self.dropped = 0  # delta frames dropped for want of their keyframe
        self.plis = 0
        self.emitted = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._origin is None:
            self._origin = seq
        delta = (seq - self._origin) & 0xFFFF
        if delta >= 0x8000:  # before the next frame we want
            if (self._origin - seq) & 0xFFFF < MAX_MISORDER:
                return False, None  # late: a resend or a copy of what we have let go
            self._restart(seq)  # far behind: the stream restarted
        elif delta >= self.capacity:  # far ahead (a jump, or a long loss): start over
            self._restart(seq)
        self._packets[seq % self.capacity] = packet
        return self._next(self._clock())

    def _restart(self, seq: int) -> None:
        self.remove(self.capacity)
        self._origin = seq
        self.need_keyframe = True
        self._hole_since = None

    def _next(self, now: float) -> tuple[bool, JitterFrame | None]:
        want_pli = False
        while True:
            assert self._origin is not None
            frame = self._complete_at(self._origin)
            if frame is None:
                break
            count, jitter_frame, key = frame
            self._hole_since = None
            if self.need_keyframe and not key:
                self.remove(count)  # undecodable: its references are gone
                self.dropped += 1
                want_pli = True
                continue
            self.remove(count)
            self.need_keyframe = False
            self.emitted += 1
            return self._pli(want_pli, now), jitter_frame
        if self._holds_any():
            # a hole at the front (the next frame's first packet, or one of its others):
            # a complete keyframe further on is decoded now
            found = self._keyframe_ahead()
            if found is not None:
                offset, (count, jitter_frame, _key) = found
                self.remove(offset + count)
                self.skips += 1
                self.need_keyframe = False
                self._hole_since = None
                self.emitted += 1
                return self._pli(want_pli, now), jitter_frame
            if self._hole_since is None:
                self._hole_since = now
            elif now - self._hole_since >= HOLE_PLI_S:
                want_pli = True
        return self._pli(want_pli, now), None

    def _pli(self, wanted: bool, now: float) -> bool:
        if not wanted or (self._last_pli is not None and now - self._last_pli < PLI_EVERY_S):
            return False
        self._last_pli = now
        self.plis += 1
        return True

    def _holds_any(self) -> bool:
        return any(p is not None for p in self._packets)

    def _complete_at(self, start: int) -> tuple[int, JitterFrame, bool] | None:
        """(packets, frame, is a keyframe) of the frame starting at `start` when all its
        packets are here (up to the one with the marker bit, or the next timestamp)."""
        first = self._packets[start % self.capacity]
        if first is None:
            return None
        packets = []
        for count in range(self.capacity):
            packet = self._packets[(start + count) % self.capacity]
            if packet is None:
                return None
            if packet.timestamp != first.timestamp:
                break
            packets.append(packet)
            if packet.marker:
                break
        else:
            return None
        starts = keyframe_start(first)
        key = bool(starts)
        data = b"".join(p._data for p in packets)  # type: ignore[attr-defined]
        return len(packets), JitterFrame(data=data, timestamp=first.timestamp), key

    def _keyframe_ahead(self) -> tuple[int, tuple[int, JitterFrame, bool]] | None:
        """(offset from the origin, the frame) of the first complete keyframe held."""
        assert self._origin is not None
        for offset in range(1, self.capacity):
            packet = self._packets[(self._origin + offset) % self.capacity]
            if packet is None or not keyframe_start(packet):
                continue
            frame = self._complete_at((self._origin + offset) & 0xFFFF)
            if frame is not None:
                return offset, frame
        return None


def install_buffer(receiver: RTCRtpReceiver, buffer: DependencyBuffer) -> None:
    """Put `buffer` in place of a video receiver's own, before its first packet."""
    name = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, name, None)
    if not isinstance(current, JitterBuffer) or current.capacity != CAPACITY:
        raise RuntimeError("aiortc's RTCRtpReceiver has no video jitter buffer where "
                           "bench/dependency_buffer.py expects it (aiortc changed)")
    setattr(receiver, name, buffer)
