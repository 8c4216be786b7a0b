"""Fixed-window counters in Redis: "at most `limit` in `seconds`", for spam control.

A window starts at the first hit and its key expires with it, so a quiet user
costs no memory. The check and the count are separate steps on purpose: the
scripts that use them check every rule first and count only an accepted
request, so a refused request writes nothing (tests snapshot Redis to prove it).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from engine.errors import DomainError, rate_limited


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` events in `seconds`."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.seconds <= 0:
            raise ValueError("a window needs limit >= 1 and seconds > 0")

    @property
    def ms(self) -> int:
        return int(self.seconds * 1000)


def check_window(count: int, window: Window, ttl_ms: int, **details: object) -> None:
    """`rate_limited` (retry after the window's rest) when `count` already reached the limit."""
    if count >= window.limit:
        retry = (ttl_ms if ttl_ms > 0 else window.ms) / 1000
        error = rate_limited(retry)
        error.details.update(details)
        raise error


# KEYS[1] the counter; ARGV limit, window ms. Returns {0, 0} when counted, else
# {1, ttl_ms}: the check and the count in one step for callers with no other rule.
_HIT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {1, redis.call('PTTL', KEYS[1])} end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {0, 0}
"""


class WindowCounter:
    """Counts hits of one kind per key; refuses past the window's limit."""

    def __init__(self, redis: Redis, window: Window) -> None:
        self.window = window
        self._hit = redis.register_script(_HIT)

    async def hit(self, key: str, **details: object) -> None:
        """Count one hit; `rate_limited` with retry_after once the limit is reached."""
        limited, ttl = await self._hit(keys=[key], args=[self.window.limit, self.window.ms])
        if limited:
            check_window(self.window.limit, self.window, int(ttl), **details)


__all__ = ["DomainError", "Window", "WindowCounter", "check_window"]
