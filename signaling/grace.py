"""Grace timers: a creator whose connection or media dropped has `seconds` to come back.

One timer per live. Unless cancelled first (the creator's `live:start` resumed the
live), `on_expiry(live_id)` runs when it fires (live rooms end the live). The timers
are owned here: `close` cancels and awaits every one still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.lives")


class GraceTimers:
    """The running grace timers of one node, by live id."""

    def __init__(self, seconds: float, on_expiry: Callable[[str], Awaitable[object]]) -> None:
        self.seconds = seconds
        self.on_expiry = on_expiry
        self._timers: dict[str, asyncio.Task[None]] = {}

    def running(self, live_id: str) -> bool:
        return live_id in self._timers

    def start(self, live_id: str) -> bool:
        """Start the live's timer; False (nothing changes) when one already runs."""
        if live_id in self._timers:
            return False

        async def expire() -> None:
            await asyncio.sleep(self.seconds)
            await self.on_expiry(live_id)

        task = asyncio.create_task(expire(), name=f"grace-{live_id}")
        self._timers[live_id] = task
        task.add_done_callback(lambda done: self._forget(live_id, done))
        return True

    async def cancel(self, live_id: str) -> None:
        """Stop the live's timer and wait for it (a timer ending its own live is left to
        finish: cancel_and_wait skips the calling task)."""
        await cancel_and_wait(self._timers.pop(live_id, None))

    async def close(self) -> None:
        """Cancel and await every timer still running; idempotent."""
        timers = list(self._timers.values())
        self._timers.clear()
        await cancel_and_wait(*timers)

    def _forget(self, live_id: str, task: asyncio.Task[None]) -> None:
        if self._timers.get(live_id) is task:
            del self._timers[live_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("live task failed", exc_info=task.exception())


__all__ = ["GraceTimers"]
