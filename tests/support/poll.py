"""Waiting for a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

POLL_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.02


async def poll(condition: Callable[[], Any], timeout: float = POLL_TIMEOUT_S, what: str = "",
               *, interval: float = POLL_INTERVAL_S) -> Any:
    """Wait until condition() (sync or async) is truthy and return its value; fail with
    an AssertionError naming `what` (or the condition) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(interval)
