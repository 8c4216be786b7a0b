"""Anonymous viewers: signed-out visitors who watch a public LIVE.

Every socket authenticates: a signed-out browser asks for an anonymous identity,
which the server makes up (`anon-` + 12 hex digits, never a valid user id, so no
payload can name one) and ties to that socket alone. Anonymous sockets may only
read (watch, the chat history, the gift board); they are capped per client
address across nodes (a Redis counter).
"""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from engine import keys

ANON_PREFIX = "anon-"
# A crashed node never decrements: the counter forgets its sockets an hour after the
# last connect from that address.
COUNTER_TTL_S = 3600


def new_anonymous_id() -> str:
    """A fresh anonymous identity (12 hex digits: 2^48, no clash among live viewers)."""
    return ANON_PREFIX + secrets.token_hex(6)


def is_anonymous(user_id: str) -> bool:
    return user_id.startswith(ANON_PREFIX)


# INCR unless at the cap; answers the count after, or -1 when full.
_ADMIT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return -1 end
n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return n
"""

_RELEASE = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"""


class AnonymousSockets:
    """The per-address count of open anonymous sockets."""

    def __init__(self, redis: Redis) -> None:
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)

    async def admit(self, address: str, cap: int) -> bool:
        """One more anonymous socket from `address`, unless `cap` are open already."""
        return int(await self._admit(keys=[keys.anonymous_sockets(address)],
                                     args=[cap, COUNTER_TTL_S])) >= 0

    async def release(self, address: str) -> None:
        await self._release(keys=[keys.anonymous_sockets(address)])


__all__ = ["ANON_PREFIX", "AnonymousSockets", "is_anonymous", "new_anonymous_id"]
