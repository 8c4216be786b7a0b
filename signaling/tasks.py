"""Ending owned asyncio tasks: one way, used by every owner in signaling/.

Every task the server starts has an owner that cancels it and waits until it has
finished: no task outlives its owner. `cancel_and_wait` is that idiom once;
`OwnedTask` is the one long-running task most owners hold.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from signaling.errors import UNAVAILABLE_CAUSES

log = logging.getLogger("golive.tasks")

# A cancelled task still running this long is cancelled again (see cancel_and_wait).
# Owned tasks here finish within ~1.5 s of a cancel (an app's whole shutdown), so a
# second cancel never cuts an orderly cleanup short.
RECANCEL_AFTER_S = 5.0


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel the tasks and wait until each has finished.

    None and finished tasks are skipped, and so is the calling task itself (a timer
    that ends its own live). Unlike `with suppress(CancelledError): await task`, a
    cancel of the caller while it waits is not swallowed: it propagates (the tasks
    were already told to stop). A task that had failed before it was cancelled is
    logged, not raised: the owner is closing, and the failure would otherwise go
    unreported. A task still running RECANCEL_AFTER_S after its cancel (it swallowed
    it) is logged and cancelled again, until it ends."""
    current = asyncio.current_task()
    pending = [t for t in tasks if t is not None and t is not current]
    waiting = {t for t in pending if not t.done()}
    while waiting:
        for task in waiting:
            task.cancel()
        _, waiting = await asyncio.wait(waiting, timeout=RECANCEL_AFTER_S)
        for task in waiting:
            # A cancel that lands inside a library call can be turned into an error the
            # task's loop then swallows (seen: the Redis RTT sampler kept sleeping and an
            # app's shutdown hung for good); cancelled again, it stops at its next await.
            log.warning("task still running after its cancel; cancelling it again",
                        extra={"fields": {"task": _name(task)}})
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed before it was cancelled",
                      extra={"fields": {"task": _name(task)}}, exc_info=task.exception())


def _name(task: asyncio.Future[Any]) -> str:
    return task.get_name() if isinstance(task, asyncio.Task) else repr(task)


async def every(period_s: float, step: Callable[[], Awaitable[None]],
                logger: logging.Logger, failed: str) -> None:
    """Run `step` every `period_s` seconds until cancelled (an OwnedTask's work). A step
    that fails is logged (`failed`, with its traceback, on the owner's `logger`) and the
    next period tries again: a push loop outlives one bad pass. Redis away (restarting,
    paused: signaling.errors.UNAVAILABLE_CAUSES) is expected: one warning line, no
    traceback, as the chat feed and the fan-out worker log it."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await step()
        except UNAVAILABLE_CAUSES as exc:
            logger.warning(f"{failed}: Redis away; the next pass tries again", extra={
                "fields": {"cause": f"{type(exc).__name__}: {exc}"[:200]}})
        except Exception:
            logger.exception(failed)


class OwnedTask:
    """The one long-running task of an owner (a feed, a worker, a push loop): `start`
    runs `work()` as a named task, `stop` cancels and awaits it; both idempotent."""

    def __init__(self, work: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self.work = work
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.work(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
