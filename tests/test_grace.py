"""Grace timers (signaling/grace.py): owned, awaited when cancelled or closed."""

from __future__ import annotations

import asyncio

from signaling.grace import GraceTimers
from tests.support.poll import poll


async def test_a_timer_fires_once_unless_cancelled_first() -> None:
    expired: list[str] = []
    timers = GraceTimers(0.05, lambda live: _record(expired, live))
    assert timers.start("a") and timers.start("b")
    assert not timers.start("a")  # already waiting: nothing changes
    await timers.cancel("b")  # returns once the timer has finished
    assert not timers.running("b")
    await poll(lambda: expired == ["a"])
    await poll(lambda: not timers.running("a"))
    await asyncio.sleep(0.1)
    assert expired == ["a"]


async def test_a_timer_ending_its_own_live_cancels_itself_harmlessly() -> None:
    ended: list[str] = []

    async def end(live: str) -> None:
        await timers.cancel(live)  # what LiveRooms.end does: skipped for the timer itself
        ended.append(live)

    timers = GraceTimers(0.01, end)
    timers.start("a")
    await poll(lambda: ended == ["a"])


async def test_close_cancels_and_awaits_every_timer() -> None:
    expired: list[str] = []
    timers = GraceTimers(3600, lambda live: _record(expired, live))
    for live in "abc":
        timers.start(live)
    tasks = [t for t in asyncio.all_tasks() if t.get_name().startswith("grace-")]
    assert len(tasks) == 3
    await timers.close()
    assert all(t.done() for t in tasks) and expired == []
    assert not any(timers.running(live) for live in "abc")
    await timers.close()  # idempotent


async def _record(into: list[str], live: str) -> None:
    into.append(live)
