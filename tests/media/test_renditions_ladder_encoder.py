"""The ladder's encode path (media/ladder_encoder.py): every rendition at its size, a
keyframe exactly where asked, the gifts burned into each, each rendition scaled from the
next taller, and two lanes giving the bytes one gives. Real libvpx/x264, no mocks."""

from __future__ import annotations

import threading

import av
import numpy as np
import pytest

from media import Overlay
from media.ladder_encoder import LadderEncoder
from media.overlay import overlay_layout
from media.renditions import parse_ladder
from media.synthetic import pattern_frames as pattern

LADDER = parse_ladder("720:1800,360:600,180:200")
MAGENTA = (255, 0, 255)  # saturated: far from anything in the test pattern
GIFT = Overlay(text="ROSE X1", color=MAGENTA, position="top-right", duration_s=30, size=3)


def badge_share(frame: av.VideoFrame, source_size: tuple[int, int]) -> float:
    """The share of the gift badge's pixels (its rect in the source frame, scaled to this
    frame) within 40 of the badge colour in every channel."""
    [(_, rect)] = overlay_layout([GIFT], *source_size)
    sx, sy = frame.width / source_size[0], frame.height / source_size[1]
    x0, x1 = int(rect.x * sx) + 1, int((rect.x + rect.width) * sx) - 1
    y0, y1 = int(rect.y * sy) + 1, int((rect.y + rect.height) * sy) - 1
    rgb = frame.to_ndarray(format="rgb24").astype(int)[y0:y1, x0:x1]
    return float(np.all(np.abs(rgb - np.array(MAGENTA)) < 40, axis=2).mean())


def run(encoder: LadderEncoder, source: list[av.VideoFrame], plans, overlays=(GIFT,)):
    """Each frame's packets by rendition: [{rendition: [packet, ...]}, ...]."""
    out = []
    for frame, plan in zip(source, plans, strict=True):
        by_rung: dict[int, list[av.Packet]] = {}
        for rendition, packet in encoder.encode(frame, list(overlays), plan):
            by_rung.setdefault(rendition, []).append(packet)
        out.append(by_rung)
    return out


@pytest.mark.parametrize(("codec", "lanes"), [("vp8", 2), ("vp8", 1), ("h264", 2)])
def test_every_rendition_at_its_size_with_keyframes_where_asked_and_the_gift_in_each(
        codec, lanes):
    source = pattern(1280, 720, 12)
    # all three from a keyframe; then the 360p alone asked for one at frame 6
    plans = [[(0, n == 0), (1, n in (0, 6)), (2, n == 0)] for n in range(12)]
    encoder = LadderEncoder(codec, LADDER, lanes=lanes)
    try:
        frames = run(encoder, source, plans)
    finally:
        encoder.close()
    for rendition, size in enumerate([(1280, 720), (640, 360), (320, 180)]):
        decoder = av.CodecContext.create(codec, "r")
        decoded = []
        for n, by_rung in enumerate(frames):
            [packet] = by_rung[rendition]  # one packet per frame in, on every rendition
            assert packet.is_keyframe == (n == 0 or (rendition == 1 and n == 6)), (rendition, n)
            assert packet.pts == n * 3000  # the room's one timeline, the same in each
            decoded.extend(decoder.decode(packet))
        decoded.extend(decoder.decode(None))
        assert len(decoded) == 12
        assert {(f.width, f.height) for f in decoded} == {size}
        assert badge_share(decoded[-1], (1280, 720)) > 0.6, f"no gift at {size}"
    assert encoder.encoders[1].frames == 12


def test_two_lanes_give_the_bytes_one_lane_gives():
    """The lanes share no frame: running the lower renditions beside the top one changes
    nothing in what comes out (libvpx on one thread is deterministic)."""
    source = pattern(1280, 720, 20)
    plans = [[(0, n % 10 == 0), (1, n % 10 == 0), (2, n % 7 == 0)] for n in range(20)]
    outputs = []
    for lanes in (1, 2):
        encoder = LadderEncoder("vp8", LADDER, lanes=lanes)
        try:
            outputs.append([{r: [bytes(p) for p in ps] for r, ps in f.items()}
                            for f in run(encoder, source, plans)])
        finally:
            encoder.close()
    assert outputs[0] == outputs[1]


def test_only_the_renditions_asked_for_and_a_small_creators_top_is_its_own_size():
    source = pattern(640, 360, 4)
    encoder = LadderEncoder("vp8", LADDER, lanes=2)
    try:
        # a 360p creator: "720" and "360" are both 640x360; nobody takes the 360
        frames = run(encoder, source, [[(0, n == 0), (2, n == 0)] for n in range(4)])
        assert all(set(f) == {0, 2} for f in frames)
        assert encoder.encoders[1].frames == 0
        # the lower ones alone (nobody on the top): 360 on the calling thread, 180 beside
        lower = run(encoder, pattern(640, 360, 2), [[(1, True), (2, False)]] * 2)
        assert all(set(f) == {1, 2} for f in lower)
        sizes = {}
        for rendition in (0, 1, 2):
            decoder = av.CodecContext.create("vp8", "r")
            packets = [p for f in (frames + lower) for p in f.get(rendition, [])]
            decoded = [d for p in packets for d in decoder.decode(p)]
            sizes[rendition] = {(d.width, d.height) for d in decoded}
        assert sizes == {0: {(640, 360)}, 1: {(640, 360)}, 2: {(320, 180)}}
        assert run(encoder, pattern(640, 360, 1), [[]]) == [{}]
    finally:
        encoder.close()


def test_the_180p_is_scaled_from_the_360p_and_the_second_lane_is_joined_at_close():
    """With the 360p in the frame the 180p's scaler reads the 360p picture (a quarter
    of the pixels); without it, the composed frame. close() ends the second lane."""
    source = pattern(1280, 720, 2)
    encoder = LadderEncoder("vp8", LADDER, lanes=2)
    seen: list[tuple[int, int]] = []
    scale = encoder._scale

    def spy(src, composed, rendition):  # records what each rung is scaled from
        if rendition == 2:
            seen.append((src.width, src.height))
        return scale(src, composed, rendition)

    encoder._scale = spy
    run(encoder, source, [[(0, True), (1, True), (2, True)], [(0, False), (2, False)]])
    # frame 1: from the 360p; frame 2 (no 360p): from the 720p (then a no-op at its size)
    assert seen == [(640, 360), (1280, 720), (320, 180)]
    assert any(t.name.startswith("encode-low-room") for t in threading.enumerate())
    encoder.close()
    assert not any(t.name.startswith("encode-low-room") for t in threading.enumerate())


def test_a_kept_scaler_follows_a_creator_who_changes_resolution():
    """A browser adapts its capture size mid-live: the kept scaler (swscale re-reads the
    source frame's size) gives what a fresh one does, and the encoders reopen."""
    from av.video.reformatter import VideoReformatter

    encoder = LadderEncoder("vp8", LADDER)
    try:
        frames = pattern(1280, 720, 2) + pattern(960, 540, 2) + pattern(1280, 720, 2)
        for n, frame in enumerate(frames):
            frame.pts = n * 3000
            picture = encoder._scale(frame, frame, 1)
            fresh = VideoReformatter().reformat(frame, width=640, height=360,
                                                format="yuv420p", interpolation="BILINEAR")
            assert (picture.width, picture.height) == (640, 360)
            assert np.array_equal(picture.to_ndarray(), fresh.to_ndarray()), n
        out = run(encoder, frames, [[(0, n == 0), (2, n == 0)] for n in range(6)])
        decoder = av.CodecContext.create("vp8", "r")
        sizes = [(f.width, f.height) for by_rung in out for p in by_rung[0]
                 for f in decoder.decode(p)]
        assert sizes == [(1280, 720)] * 2 + [(960, 540)] * 2 + [(1280, 720)] * 2
    finally:
        encoder.close()
