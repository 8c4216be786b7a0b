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


async def test_a_task_that_swallows_its_cancel_is_cancelled_again(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from signaling import tasks

    monkeypatch.setattr(tasks, "RECANCEL_AFTER_S", 0.05)

    async def swallower() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass  # what a library that turns a cancel into an error, caught, amounts to
        await asyncio.Event().wait()  # and the loop goes on waiting

    task = asyncio.create_task(swallower(), name="swallower")
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.cancelled()
    assert any("cancelling it again" in r.getMessage() for r in caplog.records)


async def test_the_rtt_sampler_ends_when_redis_turns_its_cancel_into_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from signaling import app as app_module

    async def ping_cut_by_cancel(_app: object) -> float:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None
        return 0.0

    monkeypatch.setattr(app_module, "measure_rtt", ping_cut_by_cancel)
    sampler = asyncio.create_task(app_module._rtt_loop(object()))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    sampler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sampler, 2)


async def test_a_periodic_step_meeting_a_redis_away_logs_one_line_without_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """The push loops (signaling/room_pushes.py, signaling/audience.py) during a Redis
    restart or pause: a warning, no traceback (as the chat feed and the fan-out worker,
    where `golive chaos` found tracebacks); any other failure keeps its traceback."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from signaling.tasks import every
    from tests.support.poll import poll

    failures = [RedisTimeoutError("Timeout reading"), RedisConnectionError("refused"),
                ValueError("a bug")]

    async def step() -> None:
        if failures:
            raise failures.pop(0)

    logger = logging.getLogger("golive.test-every")
    caplog.set_level(logging.INFO, logger=logger.name)
    task = asyncio.create_task(every(0.001, step, logger, "room push failed"))
    try:
        await poll(lambda: len([r for r in caplog.records if r.name == logger.name]) == 3,
                   what="three passes logged")
    finally:
        await cancel_and_wait(task)
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None)
             for r in caplog.records if r.name == logger.name]
    assert lines == [
        ("WARNING", "room push failed: Redis away; the next pass tries again", False),
        ("WARNING", "room push failed: Redis away; the next pass tries again", False),
        ("ERROR", "room push failed", True)]
