"""cancel_and_wait: the one way an owner ends its tasks."""

from __future__ import annotations

import asyncio
import logging

import pytest

from signaling.tasks import OwnedTask, cancel_and_wait


async def test_cancel_and_wait_returns_only_when_every_task_has_finished() -> None:
    cleaned: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # cleanup that takes a moment still runs to its end
            cleaned.append(name)

    tasks = [asyncio.create_task(worker(n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks[0], None, tasks[1])
    assert all(t.done() and t.cancelled() for t in tasks)
    assert sorted(cleaned) == ["a", "b"]
    await cancel_and_wait(*tasks)  # finished tasks: nothing to do


async def test_a_cancel_of_the_caller_is_not_swallowed() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(3600)  # shields nothing, but outlives the caller's wait

    inner = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    closer = asyncio.create_task(cancel_and_wait(inner))
    await asyncio.sleep(0.01)
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    inner.cancel()
    await asyncio.wait([inner])


async def test_a_timer_ending_itself_is_skipped() -> None:
    async def timer() -> str:
        await cancel_and_wait(asyncio.current_task())
        return "ended"

    assert await asyncio.create_task(timer()) == "ended"


async def test_a_task_that_failed_earlier_is_logged_not_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken(), name="broken-task")
    await asyncio.wait([task])
    with caplog.at_level(logging.ERROR, logger="golive.tasks"):
        await cancel_and_wait(task)
    assert [r.exc_info[1].args for r in caplog.records if r.exc_info] == [("boom",)]


async def test_an_owned_task_starts_once_and_stops_awaited() -> None:
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        await asyncio.Event().wait()

    owned = OwnedTask(work, "worker")
    owned.start()
    owned.start()  # already started: still one task
    await asyncio.sleep(0)
    assert owned.running and runs == [1]
    assert [t.get_name() for t in asyncio.all_tasks()].count("worker") == 1
    await owned.stop()
    assert not owned.running and "worker" not in {t.get_name() for t in asyncio.all_tasks()}
    await owned.stop()  # idempotent
