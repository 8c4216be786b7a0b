"""The composition root: the one place that builds a golive server and owns its lifetimes.

Reading order for a newcomer: everything the server is made of is built here, in
`Server.__init__`, each part handed what it needs by constructor:

    Redis client (embedded redis-server when no URL) -> Services (engine objects)
    -> Gateway (Socket.IO) -> one FrameWriter and one Notifier, shared
    -> the features, in start order (signaling/feature.py is their one shape)

`open()` (once, when the aiohttp app starts) starts the embedded Redis if any and
waits for Redis to answer, then opens every feature in order and lets sockets in;
`close()` undoes it in reverse. A feature opened before one it needs raises
StartOrderError; features never see a server without Redis. signaling/app.py puts
the Server into an aiohttp Application (routes, cleanup contexts, shutdown hooks).
"""

from __future__ import annotations

import logging
import os
import signal

from redis.asyncio import BlockingConnectionPool, Redis

from engine.key_migration import migrate_keys
from engine.nodes import NodeRecord, Nodes
from media.ice import HostAddressRestriction, restrict_host_addresses
from signaling.audience import LiveAudience
from signaling.cascade import RelayListener
from signaling.chat import LiveChat
from signaling.config import Settings
from signaling.embedded_redis import EmbeddedRedis
from signaling.feature import Feature, StartOrderError
from signaling.frames import FrameWriter
from signaling.gateway import Gateway
from signaling.gifts import LiveGifts
from signaling.live_rooms import LiveRooms
from signaling.messages import DirectMessages
from signaling.metrics import Metrics
from signaling.node_failure import NodeFailover
from signaling.notifications import AlertFanout, NotificationEvents, Notifier
from signaling.nudges import NudgeEdge
from signaling.presence import NodePresence
from signaling.profiles import ProfileEvents
from signaling.push_bus import (
    CHAT_WRITTEN,
    END_SESSION,
    GIFT_SHOWN,
    LEAVE_USER,
    ROOM_CLOSED,
    VIEWERS_CHANGED,
    PushBus,
)
from signaling.replays import LiveReplays
from signaling.reports import ReportEvents
from signaling.services import Services
from signaling.session_sweep import SessionSweep
from signaling.webhooks import WebhookDelivery

log = logging.getLogger("golive.app")


def redis_client(url: str) -> Redis:
    """A client on a blocking pool: at the cap a caller waits instead of failing
    (redis-py's plain pool raises MaxConnectionsError). It connects on first use."""
    pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=5,
                                           decode_responses=True)
    return Redis(connection_pool=pool)


def _stop_this_process(node_id: str) -> None:
    """Another process holds this node's id now: stop in order, as on SIGTERM."""
    os.kill(os.getpid(), signal.SIGTERM)


class Server:
    """Redis, the services, the gateway and every feature of one golive node."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.embedded: EmbeddedRedis | None = None
        url = settings.redis_url
        if not url:
            self.embedded = EmbeddedRedis(
                settings.data_dir, on_restart=self.metrics.embedded_redis_restarts.inc,
                fsync=settings.redis_fsync)
            url = self.embedded.url
        self.redis = redis_client(url)
        self.services = Services.build(self.redis, settings)  # a bad catalog stops here
        self.gateway = Gateway(settings, self.metrics, self.services)
        # One FrameWriter per server, shared by chat and gifts (the gateway installed the
        # Engine.IO websocket hooks it relies on).
        self.writer = FrameWriter(self.gateway.sio, metrics=self.metrics)
        # Every client push crosses nodes through it (signaling/push_bus.py).
        self.bus = PushBus(url, settings.node_name(), self.writer, self.gateway.rooms,
                           metrics=self.metrics)
        self.gateway.bus = self.bus
        # One record and heartbeat per node (engine/nodes.py): a start under a running
        # node's id fails (NodeIdTaken); a node that lost its id while cut off stops.
        self.nodes = Nodes(self.redis)
        self.presence = NodePresence(
            self.nodes, self.services,
            NodeRecord.mine(settings.node_name(), settings.advertised_address()),
            self.bus, on_lost=_stop_this_process)
        self.notifier = Notifier(self.gateway, self.services)

        gateway, services = self.gateway, self.services
        self.lives = LiveRooms(gateway, services, settings)
        self.replays = LiveReplays(gateway, services, settings)
        self.lives.recorder = self.replays
        self.chat = LiveChat(gateway, services, self.lives, self.writer)
        self.gifts = LiveGifts(gateway, services, self.lives, self.writer)
        self.gifts.confirm_above = settings.gift_confirm_coins
        self.fanout = AlertFanout(self.notifier)
        # What the live nodes do when another dies (its viewers, lives and jobs).
        self.failover = NodeFailover(self.nodes, services, gateway, self.lives, self.fanout,
                                     settings.node_name(), grace_s=settings.live_grace)
        # The cascade's relay listener opens before the node announces itself: the node
        # record carries its address (open_redis).
        self.relay = RelayListener(self.lives, self.presence, settings, self.metrics)
        # Opened in this order, closed in reverse. Join listeners run in the order the
        # features were built: chat's "NAME joined" line, the gift board, nudge insights.
        self.features: tuple[Feature, ...] = (
            ProfileEvents(gateway, services, self.notifier, on_block=self.chat.blocked),
            self.replays,  # before the lives: their close finalizes its recordings
            self.lives,
            self.chat,
            self.gifts,
            LiveAudience(gateway, services, self.lives, settings.like_rate),
            DirectMessages(gateway, self.notifier),
            ReportEvents(gateway),
            NotificationEvents(gateway, services, self.notifier),
            self.fanout,
            NudgeEdge(gateway, services, self.lives, self.notifier, self.fanout),
            self.failover,
            SessionSweep(gateway, services),
            WebhookDelivery(services.webhooks, timeout_s=settings.webhook_timeout,
                            ca_file=settings.webhook_ca_file, node=settings.node_name(),
                            metrics=self.metrics),
        )
        self._wire_bus()
        self._redis_up = False
        self._ice_restore: HostAddressRestriction | None = None

    def _wire_bus(self) -> None:
        """What other nodes may ask of this one, by control kind (signaling/push_bus.py)."""
        bus, gateway, lives, chat = self.bus, self.gateway, self.lives, self.chat

        async def end_session(_room: str, session_id: str) -> None:
            await gateway.end_local_session(session_id)

        async def chat_written(_room: str, live_id: str) -> None:
            chat.feed.poke(live_id)

        async def viewers_changed(_room: str, live_id: str) -> None:
            if lives.hosted_live(live_id) is not None:  # the origin pushes the count
                lives.pushes.viewers_changed(live_id)

        async def room_closed(room: str, live_id: str) -> None:
            await lives.forget_remote(live_id)

        async def leave_user(room: str, body: str) -> None:
            user_id, _, reason = body.partition(" ")  # "ID" (a ban) or "ID REASON"
            await chat.kick_local(room, user_id, reason or "banned")

        bus.on(END_SESSION, end_session)
        bus.on(CHAT_WRITTEN, chat_written)
        bus.on(VIEWERS_CHANGED, viewers_changed)
        bus.on(ROOM_CLOSED, room_closed)
        bus.on(LEAVE_USER, leave_user)
        bus.on(GIFT_SHOWN, self.gifts.show_from_node)

    async def open(self) -> None:
        """Redis first (an embedded redis-server is started), then every feature in order;
        sockets are let in last. On a failure what was opened is closed again."""
        try:
            await self.open_redis()
            await self.open_features()
        except BaseException:
            await self.close()
            raise
        self.gateway.ready = True

    async def open_redis(self) -> None:
        if self.embedded is not None:
            await self.embedded.start()
        await self.redis.ping()
        await migrate_keys(self.redis)  # an install from before the hash tags keeps its data
        self._redis_up = True
        await self.bus.open()
        await self.relay.open()
        await self.presence.open()
        log.info("redis ready", extra={"fields": {"embedded": self.embedded is not None}})

    async def open_features(self) -> None:
        """Open every feature in order; StartOrderError before Redis answers."""
        if not self._redis_up:
            raise StartOrderError("features opened before Redis answered (open_redis)")
        addresses = self.settings.ice_host_addresses()
        if addresses:
            self._ice_restore = restrict_host_addresses(addresses)
        for feature in self.features:
            await feature.open()

    async def close(self) -> None:
        """Refuse new sockets, close the features in reverse, then Redis. Idempotent."""
        self.gateway.ready = False
        for feature in reversed(self.features):
            try:
                await feature.close()
            except Exception:
                log.exception("closing a feature failed",
                              extra={"fields": {"feature": type(feature).__name__}})
        restriction, self._ice_restore = self._ice_restore, None
        if restriction is not None:
            restriction.restore()
        self._redis_up = False
        await self.presence.close()
        try:
            await self.relay.close()
        except Exception:
            log.exception("closing the relay listener failed")
        await self.bus.close()
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()
        if self.embedded is not None:
            await self.embedded.stop()


__all__ = ["Server", "redis_client"]
