"""The social graph: follows, friends (mutual follows) and blocks, over Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from engine import keys
from engine.errors import DomainError, forbidden, invalid, not_found


@dataclass(frozen=True, slots=True)
class Relation:
    """How `viewer` stands to `target`, as the viewer may know it."""

    following: bool = False     # viewer follows target
    followed_by: bool = False   # target follows viewer
    blocking: bool = False      # viewer blocked target
    blocked_by: bool = False    # target blocked viewer

    @property
    def friends(self) -> bool:
        return self.following and self.followed_by

    def as_dict(self) -> dict[str, bool]:
        return {"following": self.following, "followed_by": self.followed_by,
                "blocking": self.blocking, "blocked_by": self.blocked_by,
                "friends": self.friends}


# --- rules -------------------------------------------------------------------

def check_not_self(actor: str, target: str, verb: str) -> None:
    if actor == target:
        raise invalid(f"you cannot {verb} yourself")


def check_may_interact(relation: Relation, verb: str) -> None:
    """A block in either direction stops follows, messages, nudges and gifts."""
    if relation.blocked_by:
        raise forbidden(f"you cannot {verb} this account")
    if relation.blocking:
        raise forbidden(f"unblock this account before you {verb} it")


# Follow validates before it writes: the target exists and no block stands
# either way; then both sorted sets change together.
_FOLLOW = """
if redis.call('EXISTS', KEYS[5]) == 0 then return 'not_found' end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return 'blocked_by' end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return 'blocking' end
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return added
"""

_BLOCK = """
if redis.call('EXISTS', KEYS[7]) == 0 then return 'not_found' end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[2])
return 1
"""


class Graph:
    """Follow, unfollow, block, unblock; counts and relations."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._follow = redis.register_script(_FOLLOW)
        self._block = redis.register_script(_BLOCK)

    async def follow(self, actor: str, target: str, *, now: float | None = None) -> bool:
        """Follow target; True if this is a new follow. `forbidden` across a block."""
        check_not_self(actor, target, "follow")
        result = await self._follow(
            keys=[keys.following(actor), keys.followers(target), keys.blocks(actor),
                  keys.blocks(target), keys.user(target)],
            args=[actor, target, repr(now if now is not None else time.time())],
        )
        if result == "not_found":
            raise not_found("no such user")
        if result in ("blocked_by", "blocking"):
            check_may_interact(Relation(blocking=result == "blocking",
                                        blocked_by=result == "blocked_by"), "follow")
        return bool(result)

    async def unfollow(self, actor: str, target: str) -> bool:
        check_not_self(actor, target, "unfollow")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.following(actor), target)
            pipe.zrem(keys.followers(target), actor)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def block(self, actor: str, target: str) -> None:
        """Block target and drop follows both ways."""
        check_not_self(actor, target, "block")
        result = await self._block(
            keys=[keys.blocks(actor), keys.blocked_by(target),
                  keys.following(actor), keys.followers(target),
                  keys.following(target), keys.followers(actor), keys.user(target)],
            args=[actor, target],
        )
        if result == "not_found":
            raise not_found("no such user")

    async def unblock(self, actor: str, target: str) -> bool:
        check_not_self(actor, target, "unblock")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.blocks(actor), target)
            pipe.srem(keys.blocked_by(target), actor)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def relation(self, viewer: str, target: str) -> Relation:
        if viewer == target:
            return Relation()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zscore(keys.following(viewer), target)
            pipe.zscore(keys.following(target), viewer)
            pipe.sismember(keys.blocks(viewer), target)
            pipe.sismember(keys.blocks(target), viewer)
            following, followed_by, blocking, blocked_by = await pipe.execute()
        return Relation(following is not None, followed_by is not None,
                        bool(blocking), bool(blocked_by))

    async def check_may_interact(self, actor: str, target: str, verb: str) -> Relation:
        """The relation, after refusing with `forbidden` across a block."""
        relation = await self.relation(actor, target)
        check_may_interact(relation, verb)
        return relation

    async def counts(self, user_id: str) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.followers(user_id))
            pipe.zcard(keys.following(user_id))
            followers, following = await pipe.execute()
        return {"followers": followers, "following": following}

    async def are_friends(self, a: str, b: str) -> bool:
        return (await self.relation(a, b)).friends

    async def followers(self, user_id: str, *, limit: int = 50) -> list[str]:
        """Newest followers first."""
        return list(await self._redis.zrevrange(keys.followers(user_id), 0, limit - 1))

    async def following(self, user_id: str, *, limit: int = 50) -> list[str]:
        return list(await self._redis.zrevrange(keys.following(user_id), 0, limit - 1))

    async def hidden_from(self, viewer: str, others: list[str]) -> set[str]:
        """Those of `others` a block stands with, either way (search leaves them out)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.smismember(keys.blocks(viewer), others)
            pipe.smismember(keys.blocked_by(viewer), others)
            blocking, blocked_by = await pipe.execute()
        return {u for u, a, b in zip(others, blocking, blocked_by, strict=True) if a or b}

    async def suggested(self, user_id: str, *, limit: int = 10, fan: int = 50) -> list[str]:
        """People the user's follows follow, most shared first (then newest follow):
        at most `fan` follows are read, so the cost is bounded for anyone."""
        mine = await self._redis.zrevrange(keys.following(user_id), 0, fan - 1)
        if not mine:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for other in mine:
                pipe.zrevrange(keys.following(other), 0, fan - 1)
            theirs = await pipe.execute()
        counts: dict[str, int] = {}
        for ids in theirs:
            for uid in ids:
                counts[uid] = counts.get(uid, 0) + 1
        counts.pop(user_id, None)
        for uid in await self._redis.zrange(keys.following(user_id), 0, -1):
            counts.pop(uid, None)
        if not counts:
            return []
        hidden = await self.hidden_from(user_id, list(counts))
        ranked = sorted((u for u in counts if u not in hidden), key=lambda u: -counts[u])
        return ranked[:limit]

    async def friends(self, user_id: str, *, limit: int = 50) -> list[str]:
        """Mutual follows (those the user follows who follow back)."""
        following = await self._redis.zrevrange(keys.following(user_id), 0, -1)
        if not following:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for other in following:
                pipe.zscore(keys.followers(user_id), other)
            back = await pipe.execute()
        return [u for u, score in zip(following, back, strict=True) if score is not None][:limit]


__all__ = ["DomainError", "Graph", "Relation"]
