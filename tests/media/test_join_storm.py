"""A join storm never hurts the viewers already watching, and a late loop is not a
silent creator (issue 14, item 5). Real aiortc peers over loopback."""

from __future__ import annotations

import time

from media.liveness import SilenceClock


def test_silence_clock_counts_a_late_check_as_one_step() -> None:
    clock = SilenceClock(max_step_s=0.5)
    assert clock.check(10.0, 0) == 0.0
    assert clock.check(10.25, 0) == 0.25
    assert clock.check(12.25, 0) == 0.75  # the loop was 2 s late: one step of 0.5 counted
    assert clock.lag_s == 1.5
    assert clock.check(12.5, 3) == 0.0  # packets arrived: silence over
    assert clock.check(12.75, 3) == 0.25


async def test_a_blocked_loop_does_not_make_the_creator_silent(harness, poll):
    """The loop blocked for longer than the publisher's silence timeout (1.5 s) twice:
    the creator kept its connection, so the live goes on (it ended as `creator_left`
    under CPU starvation before)."""
    room = harness.room()
    await harness.publish(room)
    viewer = await harness.join(room, "v")
    await poll(lambda: viewer.video_frames > 5, what="video at the viewer")
    assert room.timings.publisher_silence_timeout_s < 2.0
    for _ in range(2):
        time.sleep(2.0)  # a starved loop: nothing read, nothing sent, every timer late
        frames = viewer.video_frames
        await poll(lambda f=frames: viewer.video_frames > f + 10, what="video after the stall")
    assert harness.publisher_gone == []
    assert harness.viewer_gone == []
    assert room.has_publisher
