"""The engine objects one server uses, built over one Redis connection pool."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from engine.accounts import Accounts
from engine.chat import Chat
from engine.gift_room import GiftRoom
from engine.graph import Graph
from engine.lives import Lives
from engine.messages import Messages
from engine.passwords import Passwords
from engine.reports import Reports
from engine.sessions import Sessions
from signaling.config import Settings


@dataclass
class Services:
    redis: Redis
    accounts: Accounts
    sessions: Sessions
    graph: Graph
    lives: Lives
    chat: Chat
    messages: Messages
    reports: Reports
    gift_room: GiftRoom

    @classmethod
    def build(cls, redis: Redis, settings: Settings) -> Services:
        passwords = Passwords(concurrency=settings.password_hash_concurrency)
        accounts = Accounts(redis, passwords, min_signup_age=settings.min_signup_age)
        graph = Graph(redis)
        lives = Lives(redis, settings.node_name())
        # Chat and message limits are the engine's module defaults (chat_rules.ChatLimits,
        # message_rules.MessageLimits); tests replace .limits on the built objects.
        return cls(
            redis=redis,
            accounts=accounts,
            sessions=Sessions(redis, settings.token_secret(), ttl_s=settings.token_ttl),
            graph=graph,
            lives=lives,
            chat=Chat(redis),
            messages=Messages(redis, accounts, graph, lives),
            reports=Reports(redis),
            gift_room=GiftRoom(redis),
        )
