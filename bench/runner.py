"""One benchmark run from start to clean exit, shared by every mode.

`run_dir` names the run's output folder; `guarded` runs the measurement with
Ctrl-C/SIGTERM handling: the first signal cancels the work and lets `close`
stop every process in order, a second one kills them at once. The result dict
gets `interrupted`, `errors` and `finished_at` whatever happens.
"""

from __future__ import annotations

import asyncio
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def run_dir(out: Path, mode: str) -> Path:
    """A new folder OUT/<mode>-<date>-<time>[-n] for one run."""
    # absolute: child processes (redis-server --dir) resolve it from their own cwd
    base = out.resolve() / f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


async def guarded(result: dict[str, Any], progress: Any, *,
                  work: Callable[[], Awaitable[None]],
                  close: Callable[[], Awaitable[None]],
                  kill_now: Callable[[], None],
                  finish: Callable[[], None],
                  what: str,
                  expected: Callable[[Exception], bool] = lambda exc: False) -> int:
    """Run `work`, then always `close`, then always `finish` (write the figures, even
    when closing failed); the exit status (0, 1 on an error, 130 when interrupted).
    `what` names what closing stops, for the progress line."""
    task = asyncio.current_task()
    assert task is not None
    stopping = False

    def on_signal() -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl-C, or one during the clean-up: no more waiting
            progress.note("killing every process the bench started")
            kill_now()
            return
        stopping = True
        progress.note(f"interrupted: stopping {what} (Ctrl-C again to kill them)")
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    status = 0
    try:
        await work()
    except asyncio.CancelledError:
        task.uncancel()
        result["interrupted"] = True
        status = 130
    except Exception as exc:
        result["errors"].append(f"{type(exc).__name__}: {exc}")
        if not expected(exc):
            traceback.print_exc()
        status = 1
    finally:
        stopping = True
        progress.update(f"stopping {what}")
        try:
            await close()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            finish()
    return status
