"""Sign-in sessions: signed, expiring tokens (JWT, HS256) backed by a Redis record.

The signature and expiry make a token unforgeable and short-lived; the Redis
record makes sign-out take effect at once (a revoked token fails even before
it expires).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt
from redis.asyncio import Redis

from engine import keys
from engine.accounts import UserId
from engine.errors import DomainError, unauthorized

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class Session:
    user_id: UserId
    session_id: str
    expires_at: int


class Sessions:
    """Issues, verifies and revokes sign-in tokens."""

    def __init__(self, redis: Redis, secret: bytes, *, ttl_s: int = 7 * 24 * 3600) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret must be at least {MIN_SECRET_BYTES} bytes")
        self._redis = redis
        self._secret = secret
        self.ttl_s = ttl_s

    async def issue(self, user_id: str, *, now: float | None = None) -> tuple[str, Session]:
        """A new session for user_id and its token."""
        issued = int(now if now is not None else time.time())
        session = Session(UserId(user_id), secrets.token_urlsafe(16), issued + self.ttl_s)
        token = jwt.encode(
            {"sub": user_id, "sid": session.session_id, "iat": issued, "exp": session.expires_at},
            self._secret, algorithm=ALGORITHM,
        )
        await self._redis.set(keys.session(session.session_id), user_id, exat=session.expires_at)
        return token, session

    async def verify(self, token: object) -> Session:
        """The session a token stands for; `unauthorized` with a reason otherwise.

        Reasons: missing, invalid (malformed or forged), expired, revoked.
        """
        if token is None or token == "":
            raise unauthorized("a token is required", "missing")
        if not isinstance(token, str) or len(token) > 2048:
            raise unauthorized("the token is malformed", "invalid")
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM],
                                options={"require": ["exp", "sub", "sid"]})
        except jwt.ExpiredSignatureError:
            raise unauthorized("the token has expired; sign in again", "expired") from None
        except jwt.InvalidTokenError:
            raise unauthorized("the token is not valid", "invalid") from None
        sub, sid = claims.get("sub"), claims.get("sid")
        if not isinstance(sub, str) or not isinstance(sid, str):
            raise unauthorized("the token is not valid", "invalid")
        if await self._redis.get(keys.session(sid)) != sub:
            raise unauthorized("the session has ended; sign in again", "revoked")
        return Session(UserId(sub), sid, int(claims["exp"]))

    async def revoke(self, session_id: str) -> None:
        await self._redis.delete(keys.session(session_id))

    async def ended(self, sessions: dict[str, str], batch: int = 1000) -> list[str]:
        """Of `sessions` (session id -> user id), those whose record is gone (signed out
        or expired) or names another user. GETs pipelined `batch` at a time, one key
        each (no MGET: session keys are spread over a cluster's slots)."""
        ids = list(sessions)
        ended: list[str] = []
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in chunk:
                    pipe.get(keys.session(session_id))
                owners = await pipe.execute()
            ended += [sid for sid, owner in zip(chunk, owners, strict=True)
                      if owner != sessions[sid]]
        return ended


__all__ = ["DomainError", "Session", "Sessions"]
