"""JSON lines between the bench and its load processes (the creator, the viewer workers).

The parent writes one request per line to the child's stdin: {"rid": 7, "op": "join", ...};
the child answers each on stdout: {"rid": 7, "ok": true, ...} or {"rid": 7, "ok": false,
"error": "..."}. A child may also send lines without a rid (events: {"event": "ready"}).
Requests run concurrently in the child (a status request is answered during a long join).
End of stdin means the parent is gone or wants the child to stop: the child cleans up
and exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from signaling.tasks import cancel_and_wait

log = logging.getLogger("golive.bench")

# A worker's "collect" answer carries latency samples: ~0.5 MB at 200 viewers.
MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_CONCURRENT_REQUESTS = 64  # a parent sends a handful; this only bounds a runaway one

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set `stop` (a clean exit), and say so in the child's log: a load
    process that stops while the bench still needs it must leave a trace."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        log.warning("%s received: stopping", sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)


def emit(message: dict[str, Any]) -> None:
    """Write one JSON line to stdout (the parent reads it)."""
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve_stdin(handlers: dict[str, Handler], stop: asyncio.Event) -> None:
    """Answer requests from stdin until it closes, an "op": "stop" arrives or `stop` is set.

    Every request task is owned here and cancelled (and awaited) on the way out.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request: dict[str, Any]) -> None:
        rid = request.get("rid")
        handler = handlers.get(str(request.get("op")))
        try:
            if handler is None:
                raise ValueError(f"unknown op {request.get('op')!r}")
            emit({"rid": rid, "ok": True, **await handler(request)})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("request %s failed", request.get("op"))
            emit({"rid": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    stopper = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            reading = asyncio.ensure_future(reader.readline())
            await asyncio.wait({reading, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                break
            line = reading.result()
            if not line:
                break  # EOF: the parent closed our stdin or died
            request = json.loads(line)
            if request.get("op") == "stop":
                emit({"rid": request.get("rid"), "ok": True})
                break
            if len(tasks) >= MAX_CONCURRENT_REQUESTS:
                emit({"rid": request.get("rid"), "ok": False, "error": "too many requests"})
                continue
            task = asyncio.create_task(answer(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        stopper.cancel()
        await cancel_and_wait(*tasks)
        transport.close()
