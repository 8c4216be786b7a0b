"""Stream keys: the secret a creator's encoder (OBS, `golive whip`) sends as its WHIP
Bearer token (RFC 9725 section 4.5) instead of a sign-in session.

Only the key's SHA-256 is stored: a key is 32 random bytes (256 bits), so a fast hash is
enough (nothing to brute-force, unlike a password) and a copy of Redis gives no key
back. A user has at most one key; making a new one (a rotation) revokes the old one in
the same transaction, so an encoder holding the old key is refused from then on.
"""

from __future__ import annotations

import hashlib
import secrets

from redis.asyncio import Redis
from redis.exceptions import WatchError

from engine import keys

PREFIX = "gls_"  # tells a stream key from a session token (a JWT) at a glance
KEY_BYTES = 32
MAX_KEY_CHARS = 200  # a longer Bearer token is no stream key: not even hashed


def digest(key: str) -> str:
    """The stored form of a stream key: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_key(token: str) -> bool:
    """A cheap first check before any Redis round trip."""
    return token.startswith(PREFIX) and len(token) <= MAX_KEY_CHARS


class StreamKeys:
    """Makes, rotates and resolves stream keys."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def rotate(self, user_id: str) -> str:
        """A new key for `user_id` (returned once, never stored); the old one, if any,
        stops working at once."""
        key = PREFIX + secrets.token_urlsafe(KEY_BYTES)
        new = digest(key)
        mine = keys.stream_key(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(mine)
                    old = await pipe.get(mine)
                    pipe.multi()
                    if old:
                        pipe.delete(keys.stream_key_owner(
                            old.decode() if isinstance(old, bytes) else old))
                    pipe.set(keys.stream_key_owner(new), user_id)
                    pipe.set(mine, new)
                    await pipe.execute()
                    return key
                except WatchError:  # a rotation raced this one: read the new old key
                    continue

    async def owner(self, key: str) -> str | None:
        """The user id `key` belongs to; None for a revoked, unknown or malformed key."""
        if not looks_like_key(key):
            return None
        owner = await self._redis.get(keys.stream_key_owner(digest(key)))
        return str(owner) if owner else None

    async def has_key(self, user_id: str) -> bool:
        """Whether the user has made a key (the studio says so without showing it)."""
        return bool(await self._redis.exists(keys.stream_key(user_id)))
