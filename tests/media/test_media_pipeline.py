"""The media path end to end over loopback: creator -> room (encode once) -> viewers (decode)."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import threading
import time

import av
import numpy as np
import pytest

from media import Overlay, RoomTimings, aiortc_private
from media.fastpath import resolve
from media.overlay import overlay_layout
from media.synthetic import HeadlessCreator, SyntheticVideoTrack


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_three_viewers_decode_video_and_audio(harness, poll, codec, fanout):
    room = harness.room(codec=codec, fanout=fanout)
    native = resolve("native")[1]
    syscalls_before = native_syscalls()
    await harness.publish(room, width=320, height=240)
    viewers = [await harness.join(room, f"v{i}") for i in range(3)]

    await poll(
        lambda: all(v.video_frames >= 10 and v.audio_frames >= 10 for v in viewers),
        timeout=15,
        what="10 decoded video and audio frames at every viewer",
    )
    for v in viewers:
        assert (v.last_video.width, v.last_video.height) == (320, 240)
        offered = v.pc.remoteDescription.sdp
        video_section = offered.split("m=audio")[0]
        # The server's offer carries only the room's codec (and RTX), so the viewer had no choice.
        assert ("VP8/90000" in video_section) == (codec == "vp8")
        assert ("H264/90000" in video_section) == (codec == "h264")
    stats = room.stats()
    assert stats.viewers == 3 and stats.publishing
    # One encode per room: frames encoded track frames in, not frames x viewers.
    assert stats.frames_encoded <= stats.frames_in
    assert stats.keyframes >= 1 and stats.audio_packets > 0
    assert set(stats.viewer_drops) == {"v0", "v1", "v2"}
    # The path asked for is the one that sent (one syscall per viewer and frame natively).
    sent_natively = native_syscalls() - syscalls_before
    if fanout == "native":
        assert native is not None and sent_natively >= 3 * 10
    else:
        assert sent_natively == 0


def native_syscalls() -> int:
    native = resolve("native")[1]
    if native is None:
        return 0
    counters = native.counters()
    return counters["gso_sends"] + counters["sendmmsg_sends"]


async def test_viewer_gets_sender_reports_and_nacked_packets_again(harness, poll, fanout):
    """The senders' own RTP path is idle (media/viewer_link.py): their RTCP sender reports
    must still carry what the room sent, and a NACK is answered from the room's history."""
    room = harness.room(fanout=fanout)
    await harness.publish(room)
    viewer = await harness.join(room, "v")
    receiver = next(r for r in viewer.pc.getReceivers() if r.track and r.track.kind == "video")

    async def sent_per_report() -> int:
        stats = await receiver.getStats()
        return max((s.packetsSent for s in stats.values() if s.type == "remote-outbound-rtp"),
                   default=0)

    reported = 0
    deadline = time.monotonic() + 10
    while reported < 30 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        reported = await sent_per_report()
    assert reported >= 30, "no RTCP sender report with the packets sent"
    received = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
    assert received and received[0].packetsReceived >= reported * 0.9

    link = room._fanout._feeds["v"].video
    # NACK the newest packets: the room still holds them and sends them again.
    newest = room._fanout._streams["video"]._seq
    lost = [(newest - i) & 0xFFFF for i in (3, 2, 1)]
    await aiortc_private.send_nack(receiver, viewer.video_ssrc(), lost)
    await poll(lambda: link.retransmitted >= 3, timeout=5, what="3 packets sent again")


async def test_late_joiner_decodes_quickly(harness, poll):
    # A GOP far longer than the test: only the join's keyframe request can start the viewer.
    room = harness.room(timings=RoomTimings(gop_s=60.0, keyframe_min_interval_s=0.5))
    await harness.publish(room)
    await poll(lambda: room.stats().frames_encoded >= 30, what="a second of encoded video")
    keyframes_before = room.stats().keyframes

    joined = time.monotonic()
    late = await harness.join(room, "late")
    await poll(lambda: late.first_video_at, timeout=5, what="the late joiner's first frame")
    print(f"late joiner: first decoded frame {late.first_video_at - joined:.3f} s after add_viewer")
    assert room.stats().keyframes > keyframes_before


async def test_late_joiner_starts_from_the_latest_keyframe_without_forcing_one(
        harness, poll, fanout):
    """The room's latest keyframe and the frames since (media/rtp_stream.py) start a
    joining viewer: it decodes at once and the encoder makes no keyframe for it."""
    room = harness.room(fanout=fanout, timings=RoomTimings(
        gop_s=60.0, keyframe_min_interval_s=0.5, catch_up_s=30.0))
    await harness.publish(room)
    first = await harness.join(room, "first")  # the first viewer forces the keyframe
    await poll(lambda: first.video_frames >= 10, what="video at the first viewer")
    keyframes = room.stats().keyframes

    late = await harness.join(room, "late")
    await poll(lambda: late.first_video_at, timeout=5, what="the late joiner's first frame")
    await poll(lambda: late.video_frames >= 10, what="the late joiner decoding on")
    assert room._fanout._feeds["late"].video.caught_up > 0
    assert room.stats().keyframes == keyframes, "a keyframe was forced for the late joiner"


async def test_a_viewer_into_a_room_nobody_watches_starts_from_a_current_keyframe_run(
        harness, poll, fanout):
    """The room went quiet (its only viewer left) and its encoder went on: frames are still
    built for the profile served last, so the next viewer starts from the latest keyframe
    and EVERY frame since, with no forced keyframe. Before (issue 14), nothing was built
    while nobody watched: the next viewer got the run as it was when the last one left,
    then live deltas whose reference frames it never saw (a hole of the quiet time in its
    frame sequence, under contiguous sequence numbers)."""
    room = harness.room(fanout=fanout, timings=RoomTimings(
        gop_s=60.0, keyframe_min_interval_s=0.5, catch_up_s=30.0))
    await harness.publish(room)
    first = await harness.join(room, "first")
    await poll(lambda: first.video_frames >= 10, what="video at the first viewer")
    assert await room.remove_viewer("first")
    await asyncio.sleep(1.0)  # 30 frames encoded with nobody watching
    keyframes = room.stats().keyframes

    pts: list[int] = []
    late = harness.client("late")
    late._on_video = lambda frame: pts.append(frame.pts)
    offer = await room.add_viewer("late")
    await room.accept_viewer_answer("late", await late.answer(offer))
    await poll(lambda: len(pts) >= 60, what="the next viewer decoding")
    assert room._fanout._feeds["late"].video.caught_up > 0
    assert room.stats().keyframes == keyframes, "a keyframe was forced for the next viewer"
    largest_gap = max((b - a) / 3000 for a, b in itertools.pairwise(pts))  # 30 fps frames
    assert largest_gap <= 10, f"a hole of {largest_gap:.0f} frames in what it decoded"


async def test_pli_burst_gives_one_keyframe(harness, poll):
    window = 1.0
    room = harness.room(timings=RoomTimings(gop_s=60.0, keyframe_min_interval_s=window))
    await harness.publish(room)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 3, what="video at the viewer")
    await asyncio.sleep(window + 0.1)  # let the join's request window pass
    before = room.stats()

    for _ in range(5):
        await viewer.send_pli()
    await poll(
        lambda: room.stats().keyframe_requests >= before.keyframe_requests + 5,
        what="the five PLIs to reach the room",
    )
    await poll(lambda: room.stats().keyframes > before.keyframes, timeout=3, what="a keyframe")
    # Inside the throttle window no second keyframe can be forced.
    await asyncio.sleep(window / 2)
    assert room.stats().keyframes == before.keyframes + 1
    # PLIs that straddled the first keyframe are served at most once, when the window ends.
    await asyncio.sleep(window)
    assert room.stats().keyframes <= before.keyframes + 2


async def test_creator_leaving_ends_the_room(harness, poll):
    room = harness.room()
    creator = await harness.publish(room)
    viewers = [await harness.join(room, f"v{i}") for i in range(2)]
    await poll(lambda: all(v.video_frames > 0 for v in viewers), what="video at both viewers")

    await creator.close()
    reason = await poll(lambda: harness.publisher_gone, timeout=5, what="on_publisher_gone")
    assert reason[0] in ("ended", "closed")
    assert not room.has_publisher

    await room.close()
    await room.close()  # idempotent
    assert room.closed and room.stats().viewers == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("encode-room-1")]
    assert not [t for t in asyncio.all_tasks() if t.get_name().endswith("room-1")]
    await poll(
        lambda: all(v.pc.connectionState == "closed" for v in viewers),
        timeout=5,
        what="every viewer's connection to close",
    )
    assert all("video" in v.ended for v in viewers)
    assert harness.viewer_gone == []  # close() ends viewers without reporting them as gone


async def test_viewer_decodes_the_overlay(harness, poll):
    room = harness.room()
    await harness.publish(room, width=640, height=360)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 3, what="video at the viewer")

    color = (255, 0, 255)  # saturated magenta: far from anything in the test pattern
    overlay = Overlay(text="ROSE X1", color=color, position="top-right", duration_s=30)
    room.add_overlay(overlay)
    [(_, rect)] = overlay_layout([overlay], 640, 360)
    pad = 6  # 3 font pixels at scale 2 (360p)

    def badge_padding_color() -> tuple[float, ...] | None:
        frame = viewer.last_video
        if frame is None:
            return None
        rgb = frame.to_ndarray(format="rgb24").astype(int)
        # The badge's left padding, away from its edges (VP8 rings a pixel or two at edges).
        patch = rgb[rect.y + 2 : rect.y + rect.height - 2, rect.x + 2 : rect.x + pad - 1]
        mean = patch.reshape(-1, 3).mean(axis=0)
        return tuple(mean.round(1)) if np.all(np.abs(mean - color) < 30) else None

    mean = await poll(badge_padding_color, timeout=5, what="the overlay colour at the viewer")
    print(f"overlay colour at the viewer: {mean} (drawn {color})")


def write_clip(path: str, seconds: float = 2.0) -> None:
    """A short WebM (VP8 + Opus) made from the synthetic sources."""
    video_src = SyntheticVideoTrack(320, 240)
    with av.open(path, "w") as container:
        video = container.add_stream("libvpx", rate=30)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        audio = container.add_stream("libopus", rate=48000)
        for n in range(int(seconds * 30)):
            frame = video_src.make_frame(n)
            frame.pts, frame.time_base = n, fractions.Fraction(1, 30)
            container.mux(video.encode(frame))
        samples = np.zeros((1, 960), np.int16)
        for n in range(int(seconds * 50)):
            chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, n * 960
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


async def test_creator_plays_a_file(harness, poll, tmp_path):
    clip = str(tmp_path / "clip.webm")
    write_clip(clip)
    room = harness.room()
    creator = HeadlessCreator.from_file(clip, loop=True)
    harness.creators.append(creator)
    await creator.accept_answer(await room.publish(await creator.offer()))
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 10 and viewer.audio_frames >= 10, timeout=10)
    assert (viewer.last_video.width, viewer.last_video.height) == (320, 240)
