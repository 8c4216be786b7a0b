"""Redis state, to prove that a refused request wrote nothing."""

from __future__ import annotations

from redis.asyncio import Redis

from engine import keys
from tests.support.poll import poll

# Keys a running node rewrites with no request made: its record and heartbeat (engine/nodes.py:
# `beats` +1 every HEARTBEAT_S, 2 s), so a before/after pair that spans a beat differs there.
# Every node of a cluster test has one; the nodes set itself ({core}nodes) moves only when a
# node starts or dies and stays compared.
BY_ITSELF: tuple[str, ...] = (keys.node(""),)
# What snapshot() leaves out unless told otherwise: sessions (touched on every request) and
# what moves by itself. A caller that skips more passes `skip=(*SKIP, ...)`.
SKIP: tuple[str, ...] = ("session:", *BY_ITSELF)


async def snapshot(redis_url: str, *, skip: tuple[str, ...] = SKIP) -> dict[bytes, bytes]:
    """Every key's DUMP (binary-safe) but those whose names start with one of `skip` (default
    SKIP: sessions and the node heartbeats), to prove that a refused request wrote nothing."""
    raw = Redis.from_url(redis_url)
    try:
        names = sorted(k for k in await raw.keys("*")
                       if not k.decode(errors="replace").startswith(skip))
        return {k: await raw.dump(k) for k in names}
    finally:
        await raw.aclose()


async def notify_jobs_done(redis_url: str) -> None:
    """Going live starts a background go-live notification job (signaling/nudges.py) that
    writes and then deletes its own keys ({core}notify_jobs, _active, notify_job:LIVE): wait
    for it, so a before/after snapshot sees only what the request wrote."""
    raw = Redis.from_url(redis_url)
    try:
        async def finished() -> bool:
            return not await raw.keys(keys.CORE + "notify_job*")

        await poll(finished, what="the go-live notification jobs")
    finally:
        await raw.aclose()
