"""The engine objects one server uses, built over one Redis connection pool."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from engine.accounts import Accounts
from engine.anonymous import AnonymousSockets
from engine.avatars import Avatars
from engine.catalog import load_catalog
from engine.chat import Chat
from engine.gift_room import GiftRoom
from engine.graph import Graph
from engine.ledger import Ledger
from engine.ledger_rules import LedgerRules
from engine.likes import Likes
from engine.live_alerts import LiveAlerts
from engine.lives import Lives
from engine.messages import Messages
from engine.notifications import Notifications
from engine.nudge_rules import NudgeLimits
from engine.nudges import Nudges
from engine.passwords import Passwords
from engine.payments import Payments
from engine.reports import Reports
from engine.sessions import Sessions
from engine.stream_keys import StreamKeys
from engine.webhook_rules import parse_operator_endpoints
from engine.webhooks import Webhooks
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
    notifications: Notifications
    nudges: Nudges
    live_alerts: LiveAlerts
    gift_room: GiftRoom
    ledger: Ledger
    payments: Payments
    avatars: Avatars
    likes: Likes
    anonymous: AnonymousSockets
    webhooks: Webhooks
    stream_keys: StreamKeys

    @classmethod
    def build(cls, redis: Redis, settings: Settings) -> Services:
        passwords = Passwords(concurrency=settings.password_hash_concurrency)
        accounts = Accounts(redis, passwords, min_signup_age=settings.min_signup_age)
        graph = Graph(redis)
        lives = Lives(redis, settings.node_name())
        notifications = Notifications(redis)
        nudges = Nudges(redis, accounts, graph, lives, notifications,
                        NudgeLimits.configured(settings.nudge_window, settings.nudge_hourly,
                                               settings.live_min_age))
        catalog = load_catalog(settings.gift_catalog)  # a bad file stops the start here
        ledger = Ledger(redis, catalog, ledger_rules(settings))
        try:
            operator_hooks = parse_operator_endpoints(settings.webhooks)
        except ValueError as exc:
            raise SystemExit(f"golive: {exc}") from None
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
            notifications=notifications,
            nudges=nudges,
            live_alerts=LiveAlerts(redis, notifications, settings.node_name(),
                                   retention_s=nudges.retention_s,
                                   alert_window_s=settings.live_alert_window),
            gift_room=GiftRoom(redis),
            ledger=ledger,
            payments=Payments(ledger, catalog, accounts, production=settings.production,
                              webhook_secret=settings.payment_webhook_secret,
                              tolerance=settings.payment_webhook_tolerance),
            avatars=Avatars(redis),
            likes=Likes(redis),
            anonymous=AnonymousSockets(redis),
            webhooks=Webhooks(redis, operator=operator_hooks,
                              allow_private=settings.webhook_allow_private),
            stream_keys=StreamKeys(redis),
        )


def ledger_rules(settings: Settings) -> LedgerRules:
    """The money rules from the settings; ValueError names a bad combination."""
    return LedgerRules(coins_per_diamond=settings.coins_per_diamond,
                       commission_pct=settings.gift_commission,
                       min_followers=settings.gift_min_followers,
                       max_count=settings.gift_max_count,
                       cashout_min=settings.cashout_min,
                       cashout_daily_cap=settings.cashout_daily_cap)
