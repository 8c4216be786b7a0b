"""The plain parts, called directly: overlay drawing, compositor expiry, keyframe policy,
fan-out admission and the shared RTP stream, timelines and ICE configuration."""

from __future__ import annotations

import fractions

import aioice.ice
import av
import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from media import (
    IceServer,
    MediaError,
    Overlay,
    aiortc_private,
    draw_overlays,
    restrict_host_addresses,
)
from media.aiortc_private import PromptJitterBuffer
from media.compositor import Compositor
from media.encoder import Timeline, VideoEncoder
from media.fanout import PacketFanout, make_packer
from media.ice import rtc_configuration
from media.keyframes import KeyframePolicy
from media.overlay import badge_scale, overlay_layout
from media.rtp_stream import RtpStream, WireProfile
from media.synthetic import SyntheticVideoTrack
from media.viewer_link import Verdict, admit_video


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


# ---- fan-out: admission, the shared RTP stream ---------------------------------------------


def packet(i: int, size: int = 10) -> av.Packet:
    p = av.Packet(bytes([i % 256]) * size)
    p.pts = i * 3000
    p.time_base = fractions.Fraction(1, 90000)
    return p


@pytest.mark.parametrize(("awaiting", "keyframe", "backlogged", "verdict"), [
    (False, False, False, Verdict.SEND),
    (False, True, False, Verdict.SEND),
    (True, True, False, Verdict.SEND),
    (True, False, False, Verdict.SKIP),  # a delta without its reference would not decode
    (False, False, True, Verdict.FELL_BEHIND),  # behind: skip and ask for a keyframe
    (False, True, True, Verdict.FELL_BEHIND),
    (True, True, True, Verdict.SKIP),  # already waiting: asked once
])
def test_video_admission(awaiting, keyframe, backlogged, verdict):
    assert admit_video(awaiting, keyframe, backlogged) is verdict


def _profile(pt: int, mid: str, mid_id: int) -> WireProfile:
    return WireProfile(pt, mid, tuple(sorted([
        ("urn:ietf:params:rtp-hdrext:sdes:mid", mid_id),
        ("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", mid_id + 1),
    ])))


def test_rtp_stream_builds_each_packet_once_per_profile_and_keeps_history():
    stream = RtpStream(make_packer("vp8"), history=8)
    a, b = _profile(96, "0", 1), _profile(97, "v", 4)
    # 3,000 bytes: aiortc's VP8 packetizer makes 3 payloads of at most 1,300 bytes.
    frame = stream.frame(packet(1, size=3000), [a, b])
    assert set(frame.packets) == {a, b} and len(frame.packets[a]) == 3
    parsed = {p: [RtpPacket.parse(d, p.extensions_map()) for d in frame.packets[p]] for p in (a, b)}
    for profile, packets in parsed.items():
        seqs = [x.sequence_number for x in packets]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(3)]
        assert [x.marker for x in packets] == [0, 0, 1]
        assert {x.ssrc for x in packets} == {stream.ssrc}
        assert {x.payload_type for x in packets} == {profile.payload_type}
        assert {x.extensions.mid for x in packets} == {profile.mid}
        assert {x.timestamp for x in packets} == {frame.timestamp}
    # the same sequence numbers and payloads for both profiles: one stream, two wire forms
    assert [x.sequence_number for x in parsed[a]] == [x.sequence_number for x in parsed[b]]
    assert [x.payload for x in parsed[a]] == [x.payload for x in parsed[b]]

    first = parsed[a][0].sequence_number
    assert stream.lookup(first, a) == frame.packets[a][0]
    assert stream.lookup(first, _profile(98, "x", 9)) is None  # never built for that profile
    later = stream.frame(packet(2), [a])
    assert later.timestamp - frame.timestamp == 3000  # 90 kHz, one 30 fps frame
    for i in range(3, 12):
        stream.frame(packet(i), [a])
    assert stream.lookup(first, a) is None  # rolled out of the 8-packet history


def test_rtp_stream_keeps_the_run_from_the_latest_keyframe_for_late_joiners():
    stream = RtpStream(make_packer("vp8"), catch_up_ticks=3000 * 5)  # 5 frames at 30 fps
    a, b = _profile(96, "0", 1), _profile(97, "v", 4)
    stream.frame(packet(0), [a])
    assert stream.since_keyframe(a) == []  # no keyframe yet
    key = stream.frame(packet(1, size=3000), [a, b], keyframe=True)
    delta = stream.frame(packet(2), [a])
    assert stream.since_keyframe(a) == key.packets[a] + delta.packets[a]
    assert stream.since_keyframe(b) == []  # b missed a frame: its run has a gap
    for i in range(3, 7):
        stream.frame(packet(i), [a])
    assert len(stream.since_keyframe(a)) == 3 + 5  # 5 frames after the keyframe: still kept
    stream.frame(packet(7), [a])
    assert stream.since_keyframe(a) == []  # too long a run: a joiner gets a forced keyframe


async def test_fanout_sends_nothing_to_viewers_not_yet_started():
    wanted: list[int] = []
    fanout = PacketFanout(wanted.append)
    feed = fanout.add_viewer("v")
    assert feed.video.track.kind == "video" and not feed.video.active
    fanout.push_video(packet(0), keyframe=True)
    fanout.push_audio(packet(0))
    assert fanout._streams["video"].packets == 0  # nobody to build for
    assert fanout.retransmit("v", "video", [1, 2]) == 0
    assert fanout.retransmit("nobody", "video", [1]) == 0
    with pytest.raises(KeyError):
        fanout.add_viewer("v")
    fanout.remove_viewer("v")
    assert feed.video.track.readyState == "ended" and len(fanout) == 0


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


# ---- ingest jitter buffer --------------------------------------------------------------------


def _rtp(seq: int, ts: int, marker: int = 0) -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=ts, marker=marker, payload=bytes([seq % 256]))
    aiortc_private.set_depayloaded(p, bytes([seq % 256]))
    return p


def test_prompt_jitter_buffer_emits_a_video_frame_at_its_marker():
    buffer = PromptJitterBuffer(capacity=64, is_video=True)
    assert buffer.add(_rtp(10, 1000))[1] is None
    assert buffer.add(_rtp(12, 1000, marker=1))[1] is None  # 11 missing: not complete
    frame = buffer.add(_rtp(11, 1000))[1]
    assert frame is not None and frame.timestamp == 1000 and frame.data == bytes([10, 11, 12])
    frame = buffer.add(_rtp(13, 4000, marker=1))[1]  # a one-packet frame: out at once
    assert frame is not None and frame.timestamp == 4000
    # a frame whose marker was lost still comes out when the next frame starts (aiortc's rule)
    assert buffer.add(_rtp(14, 7000))[1] is None
    frame = buffer.add(_rtp(15, 10000))[1]
    assert frame is not None and frame.timestamp == 7000


def test_prompt_jitter_buffer_passes_each_opus_packet_on_arrival():
    buffer = PromptJitterBuffer(capacity=16, is_video=False)
    for seq in range(5):
        frame = buffer.add(_rtp(100 + seq, 960 * seq))[1]
        assert frame is not None and frame.timestamp == 960 * seq
