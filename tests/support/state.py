"""Redis state, to prove that a refused request wrote nothing."""

from __future__ import annotations

from redis.asyncio import Redis


async def snapshot(redis_url: str, *, skip: tuple[str, ...] = ("session:",)) -> dict[bytes, bytes]:
    """Every key's DUMP (binary-safe), to prove that a refused request wrote nothing."""
    raw = Redis.from_url(redis_url)
    try:
        keys = sorted(k for k in await raw.keys("*")
                      if not k.decode(errors="replace").startswith(skip))
        return {k: await raw.dump(k) for k in keys}
    finally:
        await raw.aclose()
