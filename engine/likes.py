"""Likes in a live: viewers tap hearts, the live keeps one count in Redis.

A browser coalesces a burst of taps into one `live:like` with a count (at most
MAX_TAPS_PER_EVENT); the edge rate-limits events per connection and pushes the
total to the room at most twice a second (signaling/likes.py). Only signed-in
viewers who joined the live count; the creator does not like their own live.
"""

from __future__ import annotations

from redis.asyncio import Redis

from engine import keys
from engine.errors import DomainError, ErrorCode, invalid

# A phone taps ~10 times a second at most; a client flushes its taps every ~0.3 s.
MAX_TAPS_PER_EVENT = 15
# The count outlives its live by a day (a replay or a late "this LIVE got N likes").
KEEP_AFTER_S = 24 * 3600


def check_taps(taps: int) -> int:
    """The taps of one `live:like`: 1..MAX_TAPS_PER_EVENT, else `invalid`."""
    if not 1 <= taps <= MAX_TAPS_PER_EVENT:
        raise invalid(f"count must be 1 to {MAX_TAPS_PER_EVENT}", field="count")
    return taps


def check_may_like(*, is_creator: bool, is_member: bool) -> None:
    """Viewers who joined the live like it; the creator does not like their own."""
    if is_creator:
        raise DomainError(ErrorCode.FORBIDDEN, "you cannot like your own LIVE", reason="creator")
    if not is_member:
        raise DomainError(ErrorCode.FORBIDDEN, "join the live to like it", reason="not_member")


class Likes:
    """The like counter of each live."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def is_member(self, live_id: str, user_id: str) -> bool:
        return bool(await self._redis.hexists(keys.live_viewers(live_id), user_id))

    async def add(self, live_id: str, taps: int) -> int:
        """Add `taps` likes; the new total."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(keys.live_likes(live_id), taps)
            pipe.expire(keys.live_likes(live_id), KEEP_AFTER_S)
            total, _ = await pipe.execute()
        return int(total)

    async def count(self, live_id: str) -> int:
        return int(await self._redis.get(keys.live_likes(live_id)) or 0)


__all__ = ["KEEP_AFTER_S", "MAX_TAPS_PER_EVENT", "Likes", "check_may_like", "check_taps"]
