"""A hole in the creator's video that NACK cannot fill (the packet and its retransmission
both lost on a lossy uplink) is given up after HOLE_GIVE_UP_S: the ingest asks for a
keyframe and drops frames until it comes, instead of aiortc's wait for 512 packets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pylibsrtp
from aiortc.rtp import RtpPacket

from media import aiortc_private
from media.aiortc_private import HOLE_GIVE_UP_S, PromptJitterBuffer, is_keyframe

KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01])  # VP8 key frame tag
DELTA = bytes([0x11, 0x02, 0x00, 0x55, 0x66])  # VP8 inter frame tag


def _rtp(seq: int, ts: int, data: bytes, marker: int = 1) -> RtpPacket:
    packet = RtpPacket(sequence_number=seq, timestamp=ts, marker=marker, payload=data)
    aiortc_private.set_depayloaded(packet, data)
    return packet


def test_keyframes_are_told_apart_for_vp8_and_h264() -> None:
    assert is_keyframe(KEY) and not is_keyframe(DELTA)
    assert not is_keyframe(b"") and not is_keyframe(KEY[3:])  # a frame's tail
    sps_idr = b"\x00\x00\x00\x01\x67\x42\x00\x1f" + b"\x00\x00\x00\x01\x65\x88"
    assert is_keyframe(sps_idr) and is_keyframe(b"\x00\x00\x00\x01\x65\x88")
    assert not is_keyframe(b"\x00\x00\x00\x01\x41\x9a\x00\x00\x00\x01\x41\x9b")  # non-IDR


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_hole_is_given_up_then_frames_wait_for_a_keyframe() -> None:
    clock = Clock()
    buffer = PromptJitterBuffer(capacity=512, is_video=True, clock=clock)
    assert buffer.add(_rtp(1, 1000, KEY))[1] is not None
    # 2 (the first half of frame 2) never comes, nor its retransmission
    assert buffer.add(_rtp(3, 2000, DELTA[2:]))[1] is None
    clock.now += HOLE_GIVE_UP_S / 2
    assert buffer.add(_rtp(4, 3000, DELTA)) == (False, None)  # still within NACK's time
    clock.now += HOLE_GIVE_UP_S
    pli, frame = buffer.add(_rtp(5, 4000, DELTA))
    assert (pli, frame, buffer.holes_given_up) == (True, None, 1)  # given up: a PLI
    clock.now += 0.1
    assert buffer.add(_rtp(6, 5000, DELTA)) == (False, None)  # inter frames dropped
    pli, frame = buffer.add(_rtp(7, 6000, KEY))
    assert frame is not None and frame.timestamp == 6000 and frame.data == KEY
    frame = buffer.add(_rtp(8, 7000, DELTA))[1]
    assert frame is not None and frame.data == DELTA  # flowing again


def test_no_keyframe_yet_repeats_the_pli_and_a_filled_hole_is_no_hole() -> None:
    clock = Clock()
    buffer = PromptJitterBuffer(capacity=512, is_video=True, clock=clock)
    buffer.add(_rtp(1, 1000, KEY))
    buffer.add(_rtp(3, 3000, DELTA))  # 2 missing
    clock.now += 0.3
    frame = buffer.add(_rtp(2, 2000, DELTA))[1]  # the retransmission came in time
    assert frame is not None and frame.timestamp == 2000
    assert buffer.add(_rtp(4, 4000, DELTA))[1] is not None  # 3 went out with it... then 4
    assert buffer.holes_given_up == 0
    buffer.add(_rtp(6, 6000, DELTA))  # 5 lost for good
    clock.now += HOLE_GIVE_UP_S
    assert buffer.add(_rtp(7, 7000, DELTA))[0] is True
    seq = 8
    plis = 0
    for _ in range(12):  # 1.2 s of inter frames, no keyframe: asked again every ~0.5 s
        clock.now += 0.1
        pli, frame = buffer.add(_rtp(seq, seq * 1000, DELTA))
        seq += 1
        plis += pli
        assert frame is None
    assert plis == 2


class UnrepairableLoss:
    """The server's inbound SRTP for the creator: loses every 150th packet of its video
    and every retransmission, so each loss is a hole NACK cannot fill."""

    def __init__(self, session: Any, video_ssrc: int, rtx_types: set[int]) -> None:
        self._session = session
        self._ssrc = video_ssrc
        self._rtx = rtx_types
        self.dropping = True
        self.lost = 0

    def unprotect(self, data: bytes) -> bytes:
        seq, ssrc = int.from_bytes(data[2:4], "big"), int.from_bytes(data[8:12], "big")
        if self.dropping and ((ssrc == self._ssrc and seq % 150 == 0)
                              or data[1] & 0x7F in self._rtx):
            self.lost += 1
            raise pylibsrtp.Error("lost on purpose")
        return self._session.unprotect(data)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._session.unprotect_rtcp(data)


async def test_a_creator_losing_packets_for_good_still_feeds_the_room(harness, poll) -> None:
    """A real aiortc creator (640x360, ~150 packets a second) whose lost packets never
    come back: the ingest gives each hole up, asks for a keyframe and goes on, so the
    room's picture freezes for about HOLE_GIVE_UP_S and a keyframe. aiortc's own rule
    held everything behind each hole until 512 packets had passed: 5.1-5.6 s here."""
    room = harness.room()
    await harness.publish(room, width=640, height=360)
    publisher = room._publisher
    await poll(lambda: publisher.frames_in >= 10, what="the creator's first frames")
    receiver = next(t.receiver for t in publisher.pc.getTransceivers() if t.kind == "video")
    rtx = {pt for pt, codec in aiortc_private.receiver_codecs(receiver).items()
           if codec.mimeType.lower() == "video/rtx"}
    session = aiortc_private.srtp_inbound(receiver.transport)
    lossy = UnrepairableLoss(session, publisher._video_ssrc, rtx)
    aiortc_private.set_srtp_inbound(receiver.transport, lossy)
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    start = publisher.frames_in
    frames, last_frame_at, longest = start, time.monotonic(), 0.0
    began = last_frame_at
    while time.monotonic() - began < 8:  # a fixed window: the freezes are the figure
        await asyncio.sleep(0.01)
        if publisher.frames_in != frames:
            now = time.monotonic()
            longest = max(longest, now - last_frame_at)
            frames, last_frame_at = publisher.frames_in, now
    print(f"lost {lossy.lost} packets, {buffer.holes_given_up} holes given up, "
          f"{frames - start} frames in 8 s, longest freeze {longest:.2f} s")
    assert lossy.lost >= 3 and buffer.holes_given_up >= 1
    assert longest < 3.0, f"a freeze of {longest:.2f} s"
