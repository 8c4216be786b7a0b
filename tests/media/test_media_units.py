"""The plain parts, called directly: overlay drawing, compositor expiry, keyframe policy,
fan-out queue policy, timelines and ICE configuration."""

from __future__ import annotations

import fractions

import aioice.ice
import av
import numpy as np
import pytest

from media import IceServer, MediaError, Overlay, draw_overlays, restrict_host_addresses
from media.compositor import Compositor
from media.encoder import Timeline, VideoEncoder
from media.fanout import Fanout
from media.ice import rtc_configuration
from media.keyframes import KeyframePolicy
from media.overlay import badge_scale, overlay_layout
from media.synthetic import SyntheticVideoTrack


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    out = []
    for p in frame.planes:
        rows = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)
        out.append(rows[:, : p.width].copy())
    return out


def png(color: tuple[int, int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height = size
    ctx.pix_fmt = "rgba"
    frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 4), color, np.uint8), "rgba")
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


# ---- overlay drawing -------------------------------------------------------------------


def test_overlay_burns_its_colour_into_the_badge_and_nothing_else():
    frame = SyntheticVideoTrack(640, 360).make_frame(7)
    color = (20, 200, 60)
    overlays = [
        Overlay(text="Lion x2", color=color, position="bottom-left"),
        Overlay(text="Rose", color=(250, 250, 0), position="bottom-left"),  # stacks above
        Overlay(text="hi", color=(0, 0, 255), image=png((255, 0, 0, 255)), position="center"),
    ]
    out = draw_overlays(frame, overlays)
    assert out is not frame and (out.pts, out.time_base) == (frame.pts, frame.time_base)

    rects = [rect for _, rect in overlay_layout(overlays, 640, 360)]
    assert len(rects) == 3
    first, second, _ = rects
    assert second.y + second.height <= first.y  # bottom stacks grow upwards, no overlap

    rgb = out.to_ndarray(format="rgb24").astype(int)
    pad = 3 * badge_scale(360)
    padding = rgb[first.y : first.y + first.height, first.x : first.x + pad]
    assert np.abs(padding - color).max() <= 3  # exact up to YUV rounding

    # Everything outside the badges is byte-for-byte the input.
    before, after = planes(frame), planes(out)
    for index, (src, dst) in enumerate(zip(before, after, strict=True)):
        sub = 1 if index == 0 else 2
        mask = np.ones(src.shape, bool)
        for r in rects:
            mask[r.y // sub : (r.y + r.height) // sub, r.x // sub : (r.x + r.width) // sub] = False
        assert np.array_equal(src[mask], dst[mask])
        assert not np.array_equal(src, dst)


def test_overlay_image_and_text_are_drawn():
    overlay = Overlay(text="GG", color=(0, 0, 0), image=png((255, 0, 0, 255)))
    frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), np.uint8), format="rgb24")
    out = draw_overlays(frame, [overlay]).to_ndarray(format="rgb24").astype(int)
    [(_, rect)] = overlay_layout([overlay], 320, 240)
    badge = out[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
    assert (np.abs(badge - (255, 0, 0)).max(axis=2) < 30).any()  # the red icon
    assert (badge.min(axis=2) > 200).any()  # white text on a dark badge


def test_compositor_passes_frames_through_until_an_overlay_and_after_it_expires():
    clock = FakeClock()
    compositor = Compositor(clock=clock)
    frame = SyntheticVideoTrack(320, 240).make_frame(0)
    assert compositor.apply(frame) is frame

    compositor.add(Overlay(text="A", color=(255, 0, 0), duration_s=2))
    clock.now += 1
    compositor.add(Overlay(text="B", color=(0, 255, 0), duration_s=2))
    assert [o.text for o in compositor.active()] == ["A", "B"]
    assert compositor.apply(frame) is not frame
    clock.now += 1.5
    assert [o.text for o in compositor.active()] == ["B"]
    clock.now += 1
    assert compositor.active() == []
    assert compositor.apply(frame) is frame


def test_compositor_bounds_active_overlays():
    compositor = Compositor(clock=FakeClock(), max_active=3)
    for i in range(5):
        compositor.add(Overlay(text=str(i), color=(1, 2, 3)))
    assert [o.text for o in compositor.active()] == ["2", "3", "4"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"text": "x" * 65, "color": (1, 2, 3)},
        {"text": "", "color": (1, 2, 3)},
        {"text": "hi", "color": (1, 2)},
        {"text": "hi", "color": (1, 2, 256)},
        {"text": "hi", "color": "red"},
        {"text": "hi", "color": (1, 2, 3), "position": "middle"},
        {"text": "hi", "color": (1, 2, 3), "duration_s": 0},
        {"text": "hi", "color": (1, 2, 3), "duration_s": 3600},
        {"text": "hi", "color": (1, 2, 3), "image": b"GIF89a..."},
        {"text": "hi", "color": (1, 2, 3), "image": b"\x89PNG\r\n\x1a\ncorrupt"},
    ],
)
def test_bad_overlays_are_invalid(kwargs):
    with pytest.raises(MediaError) as info:
        Overlay(**kwargs)
    assert info.value.code == "invalid"


# ---- keyframe policy ---------------------------------------------------------------------


def test_keyframe_policy_throttles_requests_and_bounds_the_gop():
    clock = FakeClock()
    policy = KeyframePolicy(min_interval_s=0.5, gop_s=2.0, clock=clock)
    assert policy.should_force()  # first frame
    policy.produced()

    clock.now += 0.1
    for _ in range(5):  # a burst of PLIs
        policy.request()
    assert not policy.should_force()  # inside the window: deferred, not dropped
    clock.now += 0.4
    assert policy.should_force()
    policy.produced()
    assert not policy.should_force()  # the burst was served once

    clock.now += 1.99
    assert not policy.should_force()
    clock.now += 0.01
    assert policy.should_force()  # the GOP bound
    assert policy.requests == 5


# ---- fan-out queue policy -----------------------------------------------------------------


def packet(i: int) -> av.Packet:
    p = av.Packet(bytes([i % 256]) * 10)
    p.pts = i
    p.time_base = fractions.Fraction(1, 90000)
    return p


async def test_slow_viewer_drops_to_the_next_keyframe_without_touching_others():
    wanted: list[int] = []
    fanout = Fanout(lambda: wanted.append(1), video_queue_packets=4, audio_queue_packets=3)
    slow, fast = fanout.add_viewer("slow"), fanout.add_viewer("fast")

    fanout.push_video(packet(0), keyframe=True)
    assert not slow.video._queue  # idle until its sender first asks for a packet
    for feed in (slow, fast):
        feed.video.active = feed.audio.active = True
    fanout.push_video(packet(1), keyframe=False)
    assert not slow.video._queue  # a delta first would not decode: wait for a keyframe

    fanout.push_video(packet(2), keyframe=True)
    for i in range(3, 8):
        fanout.push_video(packet(i), keyframe=False)
        assert (await fast.video.recv()).pts == (2 if i == 3 else i - 1)
    # slow never read: its bounded queue (1 dropped delta, then 2-5) overflowed at packet 6,
    # was emptied and drops deltas (7) until the next keyframe, which was requested.
    assert len(slow.video._queue) == 0 and slow.video.awaiting_keyframe
    assert wanted and slow.dropped_video == 7 and fast.dropped_video == 1
    fanout.push_video(packet(8), keyframe=True)
    assert (await slow.video.recv()).pts == 8

    for i in range(5):
        fanout.push_audio(packet(i))
    assert [p.pts for p in slow.audio._queue] == [2, 3, 4]  # audio drops the oldest
    assert slow.dropped_audio == 2
    assert fanout.drops() == {"slow": 7, "fast": 1}

    fanout.remove_viewer("slow")
    assert slow.video.readyState == "ended"
    fanout.close()
    assert len(fanout) == 0


# ---- encoder timeline ----------------------------------------------------------------------


def test_timeline_stays_monotonic_across_a_new_source():
    tl = Timeline(fractions.Fraction(1, 90000), step=3000)
    tb = fractions.Fraction(1, 90000)
    assert [tl.map(p, tb) for p in (500, 3500, 6500)] == [0, 3000, 6000]
    assert tl.map(0, tb) == 9000  # reconnecting creator starts again at 0
    assert tl.map(3000, tb) == 12000
    assert tl.map(None, None) == 15000


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_encoder_forces_keyframes_and_sets_timing(codec):
    encoder = VideoEncoder(codec)
    track = SyntheticVideoTrack(320, 240)
    keyframes = []
    for n in range(6):
        for p in encoder.encode(track.make_frame(n), keyframe=n == 4):
            assert p.pts is not None and p.time_base == fractions.Fraction(1, 90000)
            keyframes.append(p.is_keyframe)
            if codec == "h264":
                assert bytes(p).startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01"))  # Annex-B
    assert keyframes == [True, False, False, False, True, False]


# ---- ICE ------------------------------------------------------------------------------------


def test_ice_configuration_is_explicit_and_validated():
    assert rtc_configuration().iceServers == []
    config = rtc_configuration([IceServer("turn:turn.example:3478", "u", "p")])
    assert config.iceServers[0].urls == ["turn:turn.example:3478"]
    with pytest.raises(MediaError):
        IceServer("http://example.com")


def test_restrict_host_addresses_nests_and_restores():
    # The session fixture already restricts to loopback; this one nests inside it.
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    with restrict_host_addresses(["::1", "127.0.0.1"]) as inner:
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    inner.restore()  # twice is harmless
    assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    with pytest.raises(MediaError):
        restrict_host_addresses(["localhost"])
