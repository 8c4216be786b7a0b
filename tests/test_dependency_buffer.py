"""The bench viewer's keyframe-aware jitter buffer (bench/dependency_buffer.py), packet by
packet with its own clock: what a browser's receiver does that aiortc's does not."""

from __future__ import annotations

from aiortc.rtp import RtpPacket

from bench.dependency_buffer import HOLE_PLI_S, PLI_EVERY_S, DependencyBuffer, keyframe_start


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def vp8(seq: int, frame: int, key: bool, first: bool = True, last: bool = True) -> RtpPacket:
    """A VP8 packet of frame `frame` (timestamp), as aiortc's receiver hands it over."""
    data = bytes([0x10 if key else 0x11]) + b"x" * 20  # frame tag: bit 0 = not a keyframe
    packet = RtpPacket(payload_type=96, marker=int(last), sequence_number=seq & 0xFFFF,
                       timestamp=frame * 3000,
                       payload=bytes([0x10 if first else 0x00]) + data)
    packet._data = data if first else b"y" * 20  # type: ignore[attr-defined]
    return packet


def feed(buffer, packets):
    """[(pli, frame timestamp or None)] for each packet."""
    out = []
    for packet in packets:
        pli, frame = buffer.add(packet)
        out.append((pli, None if frame is None else frame.timestamp // 3000))
    return out


def test_a_vp8_packet_tells_a_keyframe_start_a_delta_start_and_a_continuation():
    assert keyframe_start(vp8(1, 1, key=True)) is True
    assert keyframe_start(vp8(1, 1, key=False)) is False
    assert keyframe_start(vp8(1, 1, key=True, first=False)) is None


def test_frames_in_order_are_handed_over_at_their_last_packet():
    buffer = DependencyBuffer(Clock())
    got = feed(buffer, [vp8(10, 1, True, last=False), vp8(11, 1, True, first=False),
                        vp8(12, 2, False), vp8(13, 3, False)])
    assert got == [(False, None), (False, 1), (False, 2), (False, 3)]
    assert (buffer.skips, buffer.dropped, buffer.plis) == (0, 0, 0)


def test_a_keyframe_past_a_hole_is_decoded_at_once():
    """aiortc's buffer would hold frame 3 and everything after until 512 packets on."""
    clock = Clock()
    buffer = DependencyBuffer(clock)
    assert feed(buffer, [vp8(1, 1, True), vp8(2, 2, False)]) == [(False, 1), (False, 2)]
    # packet 3 (frame 3) lost for good; frame 4 waits behind it
    assert feed(buffer, [vp8(4, 4, False)]) == [(False, None)]
    assert feed(buffer, [vp8(5, 5, True)]) == [(False, 5)]
    assert buffer.skips == 1
    # the late resend of 3 is older than what was decoded: ignored
    assert feed(buffer, [vp8(3, 3, False), vp8(6, 6, False)]) == [(False, None), (False, 6)]


def test_a_hole_that_stays_open_asks_for_a_keyframe_throttled():
    clock = Clock()
    buffer = DependencyBuffer(clock)
    feed(buffer, [vp8(1, 1, True)])
    assert feed(buffer, [vp8(3, 3, False)]) == [(False, None)]  # the hole is seen
    clock.now += HOLE_PLI_S
    assert feed(buffer, [vp8(4, 4, False)]) == [(True, None)]
    clock.now += PLI_EVERY_S / 2
    assert feed(buffer, [vp8(5, 5, False)]) == [(False, None)]  # throttled
    clock.now += PLI_EVERY_S / 2
    assert feed(buffer, [vp8(6, 6, False)]) == [(True, None)]
    assert buffer.plis == 2
    # the keyframe the PLI brought is decoded past the hole
    assert feed(buffer, [vp8(7, 7, True)]) == [(False, 7)]


def test_after_a_jump_deltas_wait_for_their_keyframe_and_ask_for_one():
    """A jump of 512 (the server's resync, media/viewer_link.py SEQ_JUMP) or a long loss:
    deltas whose keyframe was lost would decode on the wrong pictures."""
    clock = Clock()
    buffer = DependencyBuffer(clock)
    feed(buffer, [vp8(1, 1, True), vp8(2, 2, False)])
    # the keyframe after the jump (seq 515) was lost; deltas come
    assert feed(buffer, [vp8(516, 4, False)]) == [(True, None)]
    assert feed(buffer, [vp8(517, 5, False)]) == [(False, None)]
    assert buffer.dropped == 2 and buffer.need_keyframe
    assert feed(buffer, [vp8(518, 6, True)]) == [(False, 6)]
    assert not buffer.need_keyframe


def test_the_first_frame_decoded_is_a_keyframe():
    buffer = DependencyBuffer(Clock())
    assert feed(buffer, [vp8(1, 1, False), vp8(2, 2, True)]) == [(True, None), (False, 2)]


def test_a_frame_missing_a_later_packet_is_a_hole_too():
    """The next frame's first packet came, its second never will: a keyframe further on
    is decoded, and the hole asks for one meanwhile (a server that does not resend what
    was before a jump leaves such a hole; one bench round froze 13 s on it)."""
    clock = Clock()
    buffer = DependencyBuffer(clock)
    feed(buffer, [vp8(1, 1, True)])
    # frame 2: packets 2, 3 (lost), 4
    assert feed(buffer, [vp8(2, 2, False, last=False)]) == [(False, None)]
    assert feed(buffer, [vp8(4, 2, False, first=False)]) == [(False, None)]
    clock.now += HOLE_PLI_S
    assert feed(buffer, [vp8(5, 3, False)]) == [(True, None)]
    assert feed(buffer, [vp8(6, 4, True)]) == [(False, 4)]
    assert buffer.skips == 1
