"""The rendition ladder and per-viewer switching (media/renditions.py, media/abr.py, the
fan-out's switch): real aiortc viewers over loopback, and the rule called directly."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest

from media import MediaError, MediaErrorCode, Overlay
from media.abr import AbrConfig, AbrState, LinkReport, decide
from media.encoder import VIDEO_TIME_BASE, VideoEncoder
from media.overlay import overlay_layout
from media.renditions import Rendition, parse_ladder, rung_for, scaled_size
from tests.support.lossy import wrap_viewer_srtp

LADDER = parse_ladder("720:1800,360:600,180:200")
MAGENTA = (255, 0, 255)  # saturated: far from anything in the test pattern


# ---- the ladder --------------------------------------------------------------------------


def test_a_ladder_parses_best_first_and_bad_ones_are_invalid():
    assert parse_ladder("180:200,720:1800") == (Rendition(720, 1_800_000),
                                                Rendition(180, 200_000))
    assert parse_ladder("360", default_bitrate=800_000) == (Rendition(360, 800_000),)
    for bad in ("", "720:x", "720:1800,720:600", "10:100", "720:1", "360",
                "720:1,360:1,180:1,90:1,100:1"):
        with pytest.raises(MediaError) as caught:
            parse_ladder(bad)
        assert caught.value.code is MediaErrorCode.INVALID, bad


def test_sizes_keep_the_aspect_and_never_scale_up():
    assert scaled_size(1280, 720, 720) == (1280, 720)
    assert scaled_size(1920, 1080, 720) == (1280, 720)
    assert scaled_size(640, 360, 720) == (640, 360)  # a 360p creator's "720" is 360p
    assert scaled_size(640, 360, 180) == (320, 180)
    assert scaled_size(720, 1280, 360) == (202, 360)  # portrait phones: even widths


def test_a_pinned_quality_picks_the_tallest_rung_no_taller():
    assert rung_for(LADDER, "auto") is None
    assert [rung_for(LADDER, q) for q in ("720", "1080", "360", "480", "180", "90")] == [
        0, 0, 1, 1, 2, 2]
    for bad in ("", "hd", "-1", "7200000", None):
        with pytest.raises(MediaError):
            rung_for(LADDER, bad)  # type: ignore[arg-type]


# ---- the rule (media/abr.py) -------------------------------------------------------------

BITRATES = [1_800_000, 600_000, 200_000]
CONFIG = AbrConfig()
LOSSY = LinkReport(loss=0.10, rtt_s=0.05)
CLEAN = LinkReport(loss=0.0, rtt_s=0.05)


def run(state: AbrState, reports: list[tuple[float, LinkReport]],
        bitrates: list[int] = BITRATES) -> list[int]:
    rungs = []
    for at, report in reports:
        state = decide(state, report, at, bitrates, CONFIG)
        rungs.append(state.rung)
    return rungs


def test_loss_moves_down_after_two_seconds_not_on_one_bad_report():
    assert run(AbrState(0), [(0, LOSSY), (1, CLEAN), (2, LOSSY), (3, CLEAN)]) == [0] * 4
    assert run(AbrState(0), [(0, LOSSY), (1, LOSSY), (2, LOSSY)]) == [0, 0, 1]
    # and on down, two more seconds at each rung, to the lowest and no further
    assert run(AbrState(0), [(t, LOSSY) for t in range(9)]) == [0, 0, 1, 1, 1, 2, 2, 2, 2]


def test_an_estimate_under_the_bitrate_moves_straight_to_the_rung_it_carries():
    low = LinkReport(loss=0.0, rtt_s=0.05, estimate_bps=300_000)
    assert run(AbrState(0), [(0, low), (1, low), (2, low)]) == [0, 0, 2]
    enough = LinkReport(loss=0.0, estimate_bps=800_000)  # 600k x 1.2 = 720k fits
    assert run(AbrState(0), [(0, enough), (2, enough)]) == [0, 1]


def test_a_rising_rtt_is_congestion_too():
    reports = [(0, CLEAN)] + [(t, LinkReport(loss=0.0, rtt_s=0.5)) for t in (1, 2, 3)]
    assert run(AbrState(0), reports) == [0, 0, 0, 1]


def test_a_path_that_got_longer_for_good_stops_counting_as_congested():
    longer = LinkReport(loss=0.0, rtt_s=0.4)  # 350 ms more than before, from now on
    rungs = run(AbrState(0), [(0, CLEAN)] + [(t, longer) for t in range(1, 400)])
    assert rungs[3] == 1 and rungs[-1] == 0  # down at first, back up once the floor caught up


def test_up_only_after_six_clean_seconds_and_one_rung_at_a_time():
    clean = [(t, CLEAN) for t in range(0, 20)]
    rungs = run(AbrState(2), clean)
    assert rungs[:6] == [2] * 6 and rungs[6] == 1  # good since 0 s: up at 6 s
    # the climb holding, 4 s more for the next rung (good again from the next report, 7 s)
    assert rungs[7:11] == [1] * 4 and rungs[11] == 0
    slight = LinkReport(loss=0.03)  # between the thresholds: neither down nor up
    assert run(AbrState(1), [(t, slight) for t in range(20)]) == [1] * 20
    tight = LinkReport(loss=0.0, estimate_bps=550_000)  # under 600k, over 85% of it
    assert run(AbrState(1), [(t, tight) for t in range(20)]) == [1] * 20
    tracking = LinkReport(loss=0.0, estimate_bps=1_800_000)  # what a receiver reports at 720
    assert run(AbrState(0), [(t, tracking) for t in range(20)]) == [0] * 20


def test_heavy_loss_moves_straight_to_the_rung_what_got_through_carries():
    """No estimate from the receiver: 1.8 Mbit/s into a 300 kbit/s link loses ~83%, so
    ~300 kbit/s got through, and 360p (600k x 1.2) does not fit it: straight to 180."""
    cut = LinkReport(loss=0.83, rtt_s=0.05)  # a loss this heavy moves at once
    assert run(AbrState(0), [(0, CLEAN), (1, cut), (2, cut)]) == [0, 2, 2]
    half = LinkReport(loss=0.5, rtt_s=0.05)  # 900k got through: 360p fits; at 360p, 300k
    assert run(AbrState(0), [(0, half), (1, half), (2, half)]) == [1, 2, 2]
    assert run(AbrState(0), [(0, LOSSY), (1, LOSSY), (2, LOSSY)]) == [0, 0, 1]  # 10%: 2 s
    queued = LinkReport(loss=0.0, rtt_s=0.5)  # a queue filling says down, not how far
    assert run(AbrState(0), [(0, CLEAN)] + [(t, queued) for t in (1, 2, 3)]) == [0, 0, 0, 1]
    # the worst report of the congested span says how far: the queue filled, then dropped
    dropping = LinkReport(loss=0.20, rtt_s=0.5)  # under the heavy loss that moves at once
    assert run(AbrState(0), [(0, CLEAN), (1, queued), (2, dropping), (3, queued)]) == [0, 0, 0, 1]
    # 1.44M got through that report, under the middle rung's 1.5M x 1.2: past it
    assert run(AbrState(0), [(0, CLEAN), (1, queued), (2, dropping), (3, queued)],
               [1_800_000, 1_500_000, 200_000]) == [0, 0, 0, 2]


def test_a_failed_climb_step_doubles_from_the_first_steps_wait():
    state = AbrState(2)
    for t in range(12):
        state = decide(state, CLEAN, t, BITRATES, CONFIG)
    assert state.rung == 0 and state.last_up_at == 11  # 180 -> 360 at 6 s, 720 at 11 s
    for t in (12, 13, 14):
        state = decide(state, LOSSY, t, BITRATES, CONFIG)
    assert state.rung == 1 and state.up_wait_s == 12  # 6 x 2, not 4 x 2


def test_a_step_up_that_fails_doubles_the_wait_for_the_next():
    state = AbrState(1)
    for t in range(7):
        state = decide(state, CLEAN, t, BITRATES, CONFIG)
    assert state.rung == 0 and state.last_up_at == 6
    for t in (7, 8, 9):
        state = decide(state, LOSSY, t, BITRATES, CONFIG)
    assert state.rung == 1 and state.up_wait_s == 12
    rungs = run(state, [(t, CLEAN) for t in range(10, 30)])
    assert rungs.index(0) == 22 - 10  # 12 s after the clean run began, not 6


def test_no_step_up_while_the_viewer_nacks_what_its_reports_call_clean():
    """A link losing 2% whose resends get through: the receiver counts the resent packets
    as received and reports 0% loss, but it NACKed 2-3% of what was sent (bench abr on a
    300 kbit/s, 2%-loss link: stepped up to 360p 8-12 s after settling, froze 2-13 s)."""
    hidden = LinkReport(loss=0.0, rtt_s=0.05, nacked=0.03)
    assert run(AbrState(1), [(t, hidden) for t in range(30)]) == [1] * 30
    lifted = LinkReport(loss=0.0, rtt_s=0.05, nacked=0.0)  # the limit lifted: up at 6 s
    rungs = run(AbrState(1), [(t, hidden) for t in range(5)] + [(t, lifted) for t in range(5, 20)])
    assert rungs.index(0) == 11
    # what the viewer NACKs is not congestion: nacked alone never moves it down
    assert run(AbrState(0), [(t, hidden) for t in range(10)]) == [0] * 10


def test_the_nacked_fraction_is_of_the_packets_sent_in_the_window_without_our_jumps():
    from media.viewer import nacked_fraction

    assert nacked_fraction(3, (1000, 0), (1100, 0), []) == 0.03
    assert nacked_fraction(3, (1000, 0), (1612, 0), [(1020, 512)]) == 0.03
    assert nacked_fraction(3, None, (1100, 0), []) is None


# ---- real viewers ------------------------------------------------------------------------


def badge_share(frame, rect, source_size: tuple[int, int]) -> float:
    """The share of the badge's pixels (its rect in the source frame, scaled to this
    frame) within 40 of the badge colour in every channel."""
    sx, sy = frame.width / source_size[0], frame.height / source_size[1]
    x0, x1 = int(rect.x * sx) + 1, int((rect.x + rect.width) * sx) - 1
    y0, y1 = int(rect.y * sy) + 1, int((rect.y + rect.height) * sy) - 1
    rgb = frame.to_ndarray(format="rgb24").astype(int)[y0:y1, x0:x1]
    near = np.all(np.abs(rgb - np.array(MAGENTA)) < 40, axis=2)
    return float(near.mean()) if near.size else 0.0


async def test_two_pinned_viewers_decode_their_sizes_with_the_gift_in_both(harness, poll):
    room = harness.room(renditions=LADDER)
    await harness.publish(room, width=640, height=360)
    offer = await room.add_viewer("big", quality="720")
    big = harness.client("big")
    await room.accept_viewer_answer("big", await big.answer(offer))
    offer = await room.add_viewer("small", quality="180")
    small = harness.client("small")
    await room.accept_viewer_answer("small", await small.answer(offer))

    overlay = Overlay(text="ROSE X1", color=MAGENTA, position="top-right", duration_s=30,
                      size=3)
    room.add_overlay(overlay)
    [(_, rect)] = overlay_layout([overlay], 640, 360)

    def shows(viewer, size):
        frame = viewer.last_video
        if frame is None or (frame.width, frame.height) != size:
            return None
        share = badge_share(frame, rect, (640, 360))
        return share if share > 0.4 else None

    print("720 share", await poll(lambda: shows(big, (640, 360)), timeout=10,
                                  what="the badge at 640x360 (a 360p creator's 720)"))
    print("180 share", await poll(lambda: shows(small, (320, 180)), timeout=10,
                                  what="the badge at 320x180"))
    assert room.viewer_quality("small") == {"quality": "180", "rendition": "180",
                                            "switching_to": None}
    assert room.stats().rendition_frames["360"] == 0  # nobody takes it


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_a_viewer_moved_720_180_720_keeps_one_track_unbroken(harness, poll, fanout,
                                                                   codec, caplog):
    """Each move waits for the target's keyframe, and the viewer's sequence numbers run
    on through the switch: its receiver counts no packet lost and decodes every frame."""
    caplog.set_level(logging.WARNING, logger="aiortc")
    room = harness.room(renditions=LADDER, fanout=fanout, codec=codec)
    await harness.publish(room, width=640, height=360)
    viewer = await harness.join(room, "v")
    ssrc = viewer.video_ssrc()
    await poll(lambda: viewer.video_frames >= 10, what="video at the top rendition")
    assert (viewer.last_video.width, viewer.last_video.height) == (640, 360)

    for quality, size in (("180", (320, 180)), ("720", (640, 360))):
        assert room.set_quality("v", quality) == quality
        await poll(lambda s=size: viewer.last_video is not None
                   and (viewer.last_video.width, viewer.last_video.height) == s,
                   timeout=10, what=f"frames at {size}")
        frames = viewer.video_frames
        await poll(lambda f=frames: viewer.video_frames >= f + 10, what="decoding on")
    link = room._fanout._feeds["v"].video
    assert link.switches == 2 and link.ssrc == ssrc and link.seq_offset != 0
    if fanout == "native":  # the renumbered viewer is served by the C path, not Python
        plans = room._fanout._plans["video"].values()
        await poll(lambda: any(link in plan.links for plan in plans), what="a native plan")

    stats = await viewer.pc.getStats()
    inbound = [s for s in stats.values() if s.type == "inbound-rtp" and s.kind == "video"]
    assert [s.ssrc for s in inbound] == [ssrc]  # one track, the SSRC of the offer
    assert inbound[0].packetsLost == 0, "the numbering broke at a switch"
    assert not [r for r in caplog.records if "failed to decode" in r.getMessage()]


async def test_a_rendition_nobody_takes_is_not_encoded(harness, poll):
    room = harness.room(renditions=LADDER)
    await harness.publish(room, width=640, height=360)
    await harness.join(room, "v")
    await poll(lambda: room.stats().rendition_frames["720"] >= 20, what="the top rendition")
    frames = room.stats().rendition_frames
    assert frames["360"] == frames["180"] == 0

    room.set_quality("v", "180")
    await poll(lambda: room.viewer_quality("v")["rendition"] == "180", timeout=5,
               what="the move to 180")
    await poll(lambda: room.stats().rendition_frames["180"] >= frames["180"] + 2,
               what="180 encoded")
    top = room.stats().rendition_frames["720"]
    low = room.stats().rendition_frames["180"]
    await poll(lambda: room.stats().rendition_frames["180"] >= low + 20, what="180 going on")
    assert room.stats().rendition_frames["720"] == top  # nobody takes it any more
    assert room.stats().rendition_frames["360"] == 0
    # and its keyframe run is gone: the next viewer of 720 starts from a fresh keyframe,
    # not from frames of before the pause
    profile = room._fanout._feeds["v"].video.profile
    assert not room._fanout._video[0].has_run(profile)
    assert room._fanout._video[2].has_run(profile)


async def test_quality_asked_badly_is_invalid_and_an_unknown_viewer_not_found(harness):
    room = harness.room(renditions=LADDER)
    with pytest.raises(MediaError) as caught:
        await room.add_viewer("v", quality="hd")
    assert caught.value.code is MediaErrorCode.INVALID and room.viewer_ids == []
    with pytest.raises(MediaError) as caught:
        room.set_quality("nobody", "360")
    assert caught.value.code is MediaErrorCode.NOT_FOUND




async def test_an_auto_viewer_steps_down_on_reported_loss_and_back_up_when_clean(harness,
                                                                                 poll):
    """Through the viewer's own receiver reports (shortened clocks)."""
    room = harness.room(renditions=LADDER, abr=AbrConfig(down_after_s=0.5, up_after_s=1.5))
    await harness.publish(room, width=640, height=360)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 5, what="video")
    lossy = await wrap_viewer_srtp(viewer)
    await poll(lambda: room.viewer_quality("v")["rendition"] != "720", timeout=10,
               what="a step down on loss")
    lossy.dropping = False
    await poll(lambda: room.viewer_quality("v")["rendition"] == "720", timeout=15,
               what="back to the top once clean")
    assert room.viewer_quality("v")["quality"] == "auto"


@pytest.mark.parametrize(("codec", "threads"), [("vp8", 1), ("h264", 2)])
def test_a_720p_rendition_encodes_vp8_on_one_thread(codec, threads):
    """libvpx's second thread cost 5-10x the CPU at 720p here (media/encoder.py)."""
    encoder = VideoEncoder(codec, 1_800_000, own_timeline=False)
    frame = av.VideoFrame(1280, 720, "yuv420p")
    frame.pts, frame.time_base = 0, VIDEO_TIME_BASE
    assert encoder.encode(frame, keyframe=True)[0].is_keyframe
    assert encoder._ctx.thread_count == threads and encoder.frames == 1


async def test_a_room_asking_for_remb_gets_the_viewers_estimate(harness, poll):
    """viewer_remb: the video section keeps goog-remb and abs-send-time (audio not), the
    aiortc viewer estimates and sends REMB, and the rule gets it with the next report."""
    room = harness.room(renditions=LADDER, viewer_remb=True)
    await harness.publish(room, width=640, height=360)
    offer = await room.add_viewer("v")
    video, audio = offer.split("m=audio")
    assert "goog-remb" in video and "abs-send-time" in video
    assert "goog-remb" not in audio and "abs-send-time" not in audio
    client = harness.client("v")
    await room.accept_viewer_answer("v", await client.answer(offer))
    peer = room._viewers["v"]
    estimate = await poll(lambda: peer.estimate_bps, timeout=10, what="a REMB from the viewer")
    print(f"the viewer's estimate: {estimate} bit/s")
    await poll(lambda: room._abr["v"].min_rtt_s is not None, what="a report through the rule")
    frames = client.video_frames
    await poll(lambda: client.video_frames >= frames + 90, what="3 s more of video")
    # the estimate tracks what arrives: loopback carries the top, and it stays there
    assert room.viewer_quality("v") == {"quality": "auto", "rendition": "720",
                                        "switching_to": None}


@pytest.mark.parametrize("viewer_remb", [False, True])
async def test_a_viewers_remb_reaches_the_rule_only_when_the_room_asks_for_it(
        harness, poll, viewer_remb):
    """Chromium sends REMB to an answer without goog-remb: unasked, the rule ignores it."""
    from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

    room = harness.room(renditions=LADDER, viewer_remb=viewer_remb)
    await harness.publish(room, width=640, height=360)
    offer = await room.add_viewer("v")
    client = harness.client("v")
    await room.accept_viewer_answer("v", await client.answer(offer))
    peer = room._viewers["v"]
    remb = RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0,
                          fci=pack_remb_fci(123_000, [peer.feed.video.ssrc]))
    peer._report(remb)
    assert peer.estimate_bps == (123_000 if viewer_remb else None)


async def test_a_viewers_loss_is_read_over_a_window_not_per_report(harness):
    """Chromium sends a receiver report with every NACK: several a second, alternating 0
    and 80-96% lost. The rule gets one report per LOSS_WINDOW_S, with the window's loss
    from the cumulative counts (else each 0 restarts its 2 s of congestion)."""
    from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

    from media.viewer import LOSS_WINDOW_S

    room = harness.room(renditions=LADDER)
    await harness.publish(room, width=640, height=360)
    offer = await room.add_viewer("v")
    await room.accept_viewer_answer("v", await harness.client("v").answer(offer))
    peer = room._viewers["v"]
    got = []
    peer._on_report = got.append
    now = [1000.0]
    peer._clock = lambda: now[0]

    def report(highest: int, lost: int, fraction: int) -> None:
        block = RtcpReceiverInfo(ssrc=peer.feed.video.ssrc, fraction_lost=fraction,
                                 packets_lost=lost, highest_sequence=highest, jitter=0,
                                 lsr=0, dlsr=0)
        peer._report(RtcpRrPacket(ssrc=1, reports=[block]))

    report(1000, 0, 0)
    for step in range(1, 6):  # 5 reports 0.2 s apart: 10 of 50 packets lost in all
        now[0] += LOSS_WINDOW_S / 5
        report(1000 + 10 * step, 2 * step, 0 if step % 2 else 230)
    assert [round(r.loss, 3) for r in got] == [0.0, 0.2]


def test_an_older_native_build_without_sequence_offsets_falls_back_to_python(monkeypatch):
    """Switched viewers need the offset in C: a stale build is refused, with the reason."""
    import media._fastpath as built

    from media.fastpath import load_native

    assert built.SEQ_OFFSET == 1 and load_native()[0] is not None
    monkeypatch.delattr(built, "SEQ_OFFSET")
    sender, reason = load_native()
    assert sender is None and "rebuild" in reason


# ---- a viewer's numbering jumps where its receiver may hold a hole (media/viewer_link.py)

def test_the_numbering_jumps_only_after_a_recent_nack_or_a_resync():
    from media.viewer_link import JUMP_AFTER_NACK_S, SEQ_JUMP, renumber_jump
    assert renumber_jump(False, None, 100.0) == 0  # never NACKed: its statistics stay clean
    assert renumber_jump(False, 99.0, 100.0) == SEQ_JUMP
    assert renumber_jump(False, 100.0 - JUMP_AFTER_NACK_S, 100.0) == 0
    assert renumber_jump(True, None, 100.0) == SEQ_JUMP  # a hole it cannot fill
    assert SEQ_JUMP >= 512  # aiortc's jitter buffer capacity: it lets go of what it holds
    assert SEQ_JUMP - 1 <= 1000  # libwebrtc's NACK list: no "list full" keyframe request


def test_report_loss_leaves_out_our_own_jumps():
    from media.viewer import loss_without_jumps
    # aiortc counts the 512 skipped numbers lost: 40 packets sent, 2 lost, 1 jump
    assert loss_without_jumps(240, (1000, 10), (1552, 524), [(1020, 512)]) == 2 / 40
    # libwebrtc takes a jump over 450 for a stream restart: not counted
    assert loss_without_jumps(3, (1000, 10), (1552, 12), [(1020, 512)]) == 2 / 40
    # no jump in the interval, or no previous report: the report's own fraction
    assert loss_without_jumps(64, (1000, 10), (1040, 20), [(900, 512)]) == 0.25
    assert loss_without_jumps(64, None, (1040, 20), [(1020, 512)]) == 0.25
    # across the 16-bit wrap of the jump's number
    assert loss_without_jumps(240, (65530, 10), (65530 + 552, 522), [(10, 512)]) == 0


async def test_a_viewer_that_nacked_jumps_at_its_switch_and_resends_still_map(
        harness, poll, fanout):
    """A NACK, then a move: the viewer's numbering jumps SEQ_JUMP at the new rendition's
    keyframe (aiortc counts them lost; it decodes on at once); a NACK of a number from
    before the jump resends nothing, one after it the right packet, on either send path."""
    from media.viewer_link import SEQ_JUMP
    room = harness.room(renditions=LADDER, fanout=fanout)
    await harness.publish(room, width=640, height=360)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames >= 10, what="video at the top rendition")
    link = room._fanout._feeds["v"].video
    stream = room._fanout._video[0]
    before = (stream.next_seq - 2 + link.seq_offset) & 0xFFFF  # sent, still in the history
    assert room._fanout.retransmit("v", "video", [before]) == 1  # as a NACK would
    assert room.set_quality("v", "180") == "180"
    await poll(lambda: viewer.last_video is not None
               and (viewer.last_video.width, viewer.last_video.height) == (320, 180),
               timeout=10, what="frames at 180p after the jump")
    frames = viewer.video_frames
    await poll(lambda: viewer.video_frames >= frames + 10, what="decoding on")
    assert [size for _first, size in link.jumps] == [SEQ_JUMP]
    assert room._fanout.retransmit("v", "video", [before]) == 0  # before the jump
    low = room._fanout._video[2]
    after = (low.next_seq - 1 + link.seq_offset) & 0xFFFF
    assert room._fanout.retransmit("v", "video", [after]) == 1
    assert not link.resync  # a NACK from before a jump is no hole: nothing to resync
    stats = await viewer.pc.getStats()
    inbound = [s for s in stats.values() if s.type == "inbound-rtp" and s.kind == "video"]
    assert inbound[0].packetsLost >= SEQ_JUMP - 5  # aiortc counts the jump: ours, not the link's
