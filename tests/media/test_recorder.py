"""Recording a room (media/recorder.py): the room's own encoded packets, gifts burnt in,
into a file PyAV decodes; a crash leaves a playable prefix; the byte cap stops it."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import av
import numpy as np
import pytest

from media.overlay import Overlay, overlay_layout
from media.recorder import Recorder, file_name, over_cap

COLOR = (255, 30, 80)  # the Rose's colour


def badge_in(frame: av.VideoFrame, rect) -> bool:  # type: ignore[no-untyped-def]
    rgb = frame.to_ndarray(format="rgb24").astype(int)
    pad = 3 * rect.scale
    patch = rgb[rect.y + 2: rect.y + rect.height - 2, rect.x + 2: rect.x + pad - 1]
    return bool(np.all(np.abs(patch.reshape(-1, 3).mean(axis=0) - COLOR) < 30))


def decoded(path: Path) -> list[tuple[float, av.VideoFrame]]:
    """(seconds, frame) for every frame PyAV decodes; a cut-off last packet ends it."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        try:
            for frame in container.decode(stream):
                frames.append((float(frame.pts * stream.time_base), frame))
        except av.FFmpegError:
            pass
    return frames


def test_rules_container_and_cap() -> None:
    assert file_name("h264") == "video.mp4" and file_name("vp8") == "video.webm"
    with pytest.raises(ValueError):
        file_name("av1")
    assert not over_cap(900, 100, 1000) and over_cap(901, 100, 1000)
    assert not over_cap(10**12, 10**6, 0)  # 0: no cap


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_a_recorded_room_decodes_with_its_gift_badge(harness, poll, tmp_path,
                                                           codec) -> None:
    room = harness.room(codec=codec)
    await harness.publish(room, width=640, height=360)
    recorder = Recorder(tmp_path / "live-1", codec)
    room.add_tap(recorder.tap)
    room.request_keyframe()
    await poll(lambda: recorder._started, timeout=10, what="the first keyframe recorded")
    frames_before = room.stats().frames_encoded
    await poll(lambda: room.stats().frames_encoded >= frames_before + 20, timeout=10,
               what="1 s of frames before the gift")
    overlay = Overlay(text="ann sent Rose x1", color=COLOR, position="left", size=1,
                      key="g", duration_s=30)
    room.add_overlay(overlay)
    before_gift = recorder._video_frames  # written before: cannot carry the badge
    await poll(lambda: room.stats().frames_encoded >= frames_before + 60, timeout=15,
               what="frames after the gift")
    room.remove_tap(recorder.tap)
    result = await asyncio.to_thread(recorder.finish)
    assert result.failed == "" and result.dropped == 0 and not result.capped
    assert result.path.exists() and result.path.stat().st_size >= result.bytes > 0
    assert result.audio_packets > 0

    frames = decoded(result.path)
    assert len(frames) == result.video_frames >= 50
    assert frames[0][0] == 0.0
    assert 1.0 < frames[-1][0] <= result.duration_s + 0.1
    [(_, rect)] = overlay_layout([overlay], 640, 360)
    assert not badge_in(frames[0][1], rect)
    with_badge = [index for index, (_, frame) in enumerate(frames) if badge_in(frame, rect)]
    assert with_badge and min(with_badge) >= before_gift
    with av.open(str(result.path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        assert container.streams.audio[0].codec_context.name == "opus"
        video = container.streams.video[0].codec_context
        assert (video.width, video.height) == (640, 360)  # the header states the real size
    assert result.thumbnail
    with av.open(str(result.path.parent / "thumb.jpg")) as thumb:
        picture = next(thumb.decode(video=0))
        assert (picture.width, picture.height) == (320, 180)
    # The cost (media/recorder.py's docstring): the writer thread's CPU a frame, and
    # the tap's own on the loop (a copy of one packet's bytes).
    packet = av.Packet(b"\x00" * 8000)
    packet.pts = 0
    timing = Recorder(tmp_path / "timing", codec, queue_packets=1)
    timing._started = True
    timing._video_base = 0
    tap_started = time.perf_counter()
    for _ in range(1000):
        timing.tap("video", packet, False)
    tap_ms = (time.perf_counter() - tap_started)
    timing.finish()
    print(f"{codec}: {result.video_frames} frames, {result.bytes} bytes, "
          f"{result.duration_s} s; writer {result.writer_cpu_s * 1000 / result.video_frames:.3f}"
          f" ms CPU a frame (audio included); tap {tap_ms:.4f} ms a packet")

    # A crash half-way: the first 60% of the file still plays from its start.
    cut = tmp_path / f"cut-{result.path.name}"
    with result.path.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(result.path.stat().st_size * 6 // 10))
    prefix = decoded(cut)
    assert len(prefix) >= len(frames) // 3 and prefix[0][0] == 0.0
    shutil.rmtree(tmp_path / "live-1")


async def test_the_byte_cap_stops_the_recording(harness, poll, tmp_path) -> None:
    room = harness.room(codec="vp8")
    await harness.publish(room, width=320, height=180)
    recorder = Recorder(tmp_path / "capped", "vp8", max_bytes=20_000)
    room.add_tap(recorder.tap)
    room.request_keyframe()
    await poll(lambda: recorder.capped, timeout=15, what="the cap reached")
    room.remove_tap(recorder.tap)
    result = await asyncio.to_thread(recorder.finish)
    assert result.capped and result.bytes <= 20_000
    assert decoded(result.path), "the capped file plays up to its cap"


async def test_a_full_queue_drops_and_counts_never_blocks(tmp_path) -> None:
    recorder = Recorder(tmp_path / "q", "vp8", queue_packets=2)
    packet = av.Packet(b"\x00" * 100)
    packet.pts = 0
    for i in range(2000):
        packet.pts = i * 3000
        recorder.tap("video", packet, i == 0)
    result = await asyncio.to_thread(recorder.finish)
    assert result.dropped + result.video_frames == 2000 or result.failed
    assert result.dropped > 0
