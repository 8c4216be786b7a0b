"""The engine objects one server uses, built over one Redis connection pool."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from engine.accounts import Accounts
from engine.graph import Graph
from engine.lives import Lives
from engine.passwords import Passwords
from engine.sessions import Sessions
from signaling.config import Settings


@dataclass
class Services:
    redis: Redis
    accounts: Accounts
    sessions: Sessions
    graph: Graph
    lives: Lives

    @classmethod
    def build(cls, redis: Redis, settings: Settings) -> Services:
        passwords = Passwords(concurrency=settings.password_hash_concurrency)
        return cls(
            redis=redis,
            accounts=Accounts(redis, passwords, min_signup_age=settings.min_signup_age),
            sessions=Sessions(redis, settings.token_secret(), ttl_s=settings.token_ttl),
            graph=Graph(redis),
            lives=Lives(redis, settings.node_name()),
        )
