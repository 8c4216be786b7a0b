"""The Socket.IO edge: authenticate on connect, validate, rate-limit and dispatch events.

Every client event answers through its ack with {ok: true, ...} or
{ok: false, error: {code, message}}; nothing a client sends can crash the
server or reach the engine untyped. The user id always comes from the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import socketio
from socketio import packet as socketio_packet
from socketio.msgpack_packet import MsgPackPacket

from engine.accounts import UserId
from engine.anonymous import new_anonymous_id
from engine.errors import DomainError, ErrorCode, invalid, rate_limited, unauthorized
from engine.sessions import Session
from signaling import engineio_private, session_cookie
from signaling.config import Settings
from signaling.errors import as_domain_error
from signaling.metrics import UNKNOWN_EVENT, Metrics
from signaling.push_bus import END_SESSION, BusManager, PushBus
from signaling.ratelimit import TokenBucket
from signaling.schemas import OddKeyMap, P, convert
from signaling.services import Services
from signaling.socketio_private import GoliveSocketServer, OddEventName, PacketDecodeError

log = logging.getLogger("golive.gateway")


# The packet types a msgpack client sends: its binary travels inline, so BINARY_EVENT and
# BINARY_ACK never come from one. python-socketio would hold a BINARY_EVENT for
# attachments that msgpack packets do not count, then raise on every later message of the
# connection ("Unexpected binary attachment", a traceback each): one packet of type 5
# bricked the socket and flooded the log (found by bench/fuzz.py).
ACCEPTED_PACKET_TYPES = frozenset({socketio_packet.CONNECT, socketio_packet.DISCONNECT,
                                   socketio_packet.EVENT, socketio_packet.ACK})
ACK_ID_MAX = 2**53  # a JavaScript client's ids are integers below this


def check_packet_type(value: object) -> int:
    """The packet type of a decoded msgpack packet: an int in ACCEPTED_PACKET_TYPES
    (not "2", 2.0 or True, which int() would read); ValueError otherwise."""
    if type(value) is not int or value not in ACCEPTED_PACKET_TYPES:
        raise ValueError(f"packet type {str(value)[:20]!r} is not accepted")
    return value


def check_packet_id(value: object) -> int | None:
    """The ack id of a decoded msgpack packet: None or an int from 0 to ACK_ID_MAX."""
    if value is None or (type(value) is int and 0 <= value <= ACK_ID_MAX):
        return value
    raise ValueError(f"packet id {str(value)[:20]!r} is not a whole number")


class SafeMsgPackPacket(MsgPackPacket):
    """msgpack packets whose non-UTF-8 strings decode with surrogateescape.

    The stock decoder raises on invalid UTF-8 and the packet is dropped with no
    ack; decoded this way the event reaches validation, which answers
    `invalid` to the client.
    """

    def decode(self, encoded_packet: bytes) -> None:
        try:
            try:
                decoded = msgpack.loads(encoded_packet, ext_hook=self.__class__.ext_hook,
                                        unicode_errors="surrogateescape")
            except ValueError:
                # strict_map_key refuses a map with a non-string key ({1: 2}: valid msgpack
                # a client may send); the packet was dropped unacked and the caller waited
                # out its timeout. Read again with such maps kept as pairs (OddKeyMap):
                # the event is answered `invalid`. Garbage fails here again and is dropped.
                decoded = msgpack.loads(encoded_packet, ext_hook=self.__class__.ext_hook,
                                        unicode_errors="surrogateescape",
                                        strict_map_key=False,
                                        object_pairs_hook=OddKeyMap.from_pairs)
                if not isinstance(decoded, dict):
                    raise ValueError("the packet is not a map with string keys") from None
            self.packet_type = check_packet_type(decoded.get("type"))
            self.data = decoded.get("data")
            self.id = check_packet_id(decoded.get("id"))
            self.namespace = decoded.get("nsp")
            if type(self.namespace) is not str:
                raise ValueError(f"the namespace is a {type(self.namespace).__name__}")
        except Exception as exc:
            raise PacketDecodeError(f"{type(exc).__name__}: {exc}"[:200]) from None


# What a signed-out (anonymous) socket may do: watch and read. Everything else answers
# `unauthorized` (reason "anonymous"): chat, likes, gifts, nudges, follows need a sign-in.
ANONYMOUS_EVENTS = frozenset({
    "live:watch", "room:join", "rtc:answer", "rtc:restart", "room:leave", "discover:watch",
    "room:resume",
    "chat:history", "gift:board", "room:viewers", "room:quality",
})


# Engine.IO's disconnect reasons for a connection that was lost rather than closed
_REASON = socketio.AsyncServer.reason
DROPPED_REASONS = frozenset({_REASON.PING_TIMEOUT, _REASON.TRANSPORT_CLOSE,
                             _REASON.TRANSPORT_ERROR})


def user_room(user_id: str) -> str:
    """The Socket.IO room holding every open tab of one user."""
    return f"user:{user_id}"


@dataclass(slots=True)
class Connection:
    sid: str
    user_id: UserId
    session: Session
    bucket: TokenBucket
    connected_at: float = field(default_factory=time.time)
    # A signed-out visitor: user_id is a server-made `anon-...` identity, session a stand-in.
    anonymous: bool = False
    address: str = ""
    # A WHIP publisher or WHEP player (signaling/whip_http.py): an HTTP session, no socket,
    # so it is in no Socket.IO room and gets no pushes.
    socketless: bool = False
    # Set as it closes: the connection was lost (Engine.IO ping timeout, transport closed
    # or failed), not closed on purpose by the client or the server. A viewer's media is
    # then held for its page's new socket (signaling/viewer_hold.py).
    dropped: bool = False


@dataclass(frozen=True, slots=True)
class EventContext:
    """What a handler gets besides its payload."""

    conn: Connection
    services: Services
    gateway: Gateway

    @property
    def user_id(self) -> UserId:
        return self.conn.user_id


Handler = Callable[[EventContext, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    schema: type[Any]
    handler: Handler


def error_ack(error: DomainError) -> dict[str, Any]:
    return {"ok": False, "error": error.to_payload()}


def client_address(environ: dict[str, Any]) -> str:
    """The client's address as aiohttp saw it (its `remote`, which honours a configured
    forwarded-for middleware), else the WSGI-style REMOTE_ADDR."""
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None) if request is not None else None
    return str(remote or environ.get("REMOTE_ADDR") or "?")


class Gateway:
    """Owns the Socket.IO server, the registered events and the open connections."""

    def __init__(self, settings: Settings, metrics: Metrics, services: Services) -> None:
        self.settings = settings
        self.metrics = metrics
        self.services = services
        # False until the server has opened Redis and every feature (signaling/server.py):
        # until then connects are refused with `unavailable` (reason "starting").
        self.ready = False
        # The room bookkeeping tells the push bus which channels this node needs.
        self.rooms = BusManager()
        # Set by the server (signaling/server.py): pushes cross nodes through it. Without
        # one (a gateway alone), pushes reach this node's sockets only.
        self.bus: PushBus | None = None
        self.sio = GoliveSocketServer(
            client_manager=self.rooms,
            async_mode="aiohttp",
            serializer=SafeMsgPackPacket,
            max_http_buffer_size=settings.max_message_bytes,
            # websocket only under `--workers N` (signaling/workers.py): a long-polling
            # session's requests may reach another worker, which does not know it.
            transports=settings.transport_list(),
            logger=False,
            engineio_logger=False,
        )
        engineio_private.install_websocket_hooks(self.sio.eio, self._undecodable_frame)
        self.connections: dict[str, Connection] = {}
        self._by_session: dict[str, set[str]] = {}
        self._events: dict[str, EventSpec] = {}
        # Awaited, in order, when a signed-in socket closes (live rooms, presence).
        self.disconnect_listeners: list[Callable[[Connection], Awaitable[None]]] = []
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("*", self._on_event)

    def _undecodable_frame(self, head: str) -> None:
        # A text frame that is no Engine.IO packet: engineio would raise and close the
        # connection (1006); protocol.md says undecodable input is dropped, the socket kept.
        log.warning("undecodable websocket frame dropped", extra={"fields": {"head": head}})
        self.metrics.frames_dropped.inc()

    # --- registration ------------------------------------------------------

    def event(self, name: str, schema: type[P]) -> Callable[[Handler], Handler]:
        """Register a handler for `name`; its payload is validated into `schema` first."""
        if ":" not in name:
            raise ValueError(f"event names are area:verb, not {name!r}")

        def register(handler: Handler) -> Handler:
            if name in self._events:
                raise ValueError(f"event {name!r} is registered twice")
            self._events[name] = EventSpec(name, schema, handler)
            return handler

        return register

    @property
    def event_names(self) -> list[str]:
        return sorted(self._events)

    @property
    def event_schemas(self) -> dict[str, type[Any]]:
        """Every registered event's payload schema, by name (the fuzzer's targets)."""
        return {name: spec.schema for name, spec in sorted(self._events.items())}

    # --- connection lifecycle ----------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        if not self.ready:
            raise socketio.exceptions.ConnectionRefusedError(
                "the server is starting",
                {"code": str(ErrorCode.UNAVAILABLE), "reason": "starting", "retryable": True})
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None and isinstance(auth, dict) and auth.get("anonymous") is True:
            await self._connect_anonymous(sid, environ)
            return
        if token is None:
            # The site's pages sign in with the HttpOnly cookie (signaling/session_cookie.py);
            # Engine.IO has refused the handshake already if its Origin is another site's.
            token = session_cookie.environ_token(environ)
        try:
            session = await self.services.sessions.verify(token)
        except DomainError as exc:
            reason = str(exc.details.get("reason", "invalid"))
            self.metrics.connects_refused.labels(reason).inc()
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": str(exc.code), "reason": reason}) from None
        conn = Connection(sid, session.user_id, session,
                          TokenBucket(self.settings.event_rate, self.settings.event_burst))
        self.connections[sid] = conn
        self._by_session.setdefault(session.session_id, set()).add(sid)
        await self.sio.enter_room(sid, user_room(session.user_id))
        self.metrics.sockets.set(len(self.connections))
        log.info("socket connected", extra={"fields": {"sid": sid, "user": session.user_id}})

    async def _connect_anonymous(self, sid: str, environ: dict[str, Any]) -> None:
        """A signed-out visitor's socket: a server-made identity, read-only events, its own
        (lower) rate, at most `anonymous_per_address` open per client address."""
        if not self.settings.anonymous_viewers:
            self.metrics.connects_refused.labels("anonymous_off").inc()
            raise socketio.exceptions.ConnectionRefusedError(
                "sign in to watch", {"code": str(ErrorCode.UNAUTHORIZED), "reason": "missing"})
        address = client_address(environ)
        if not await self.services.anonymous.admit(address, self.settings.anonymous_per_address):
            self.metrics.connects_refused.labels("anonymous_cap").inc()
            raise socketio.exceptions.ConnectionRefusedError(
                "too many signed-out connections from this address; sign in",
                {"code": str(ErrorCode.RATE_LIMITED), "reason": "anonymous_cap",
                 "retry_after": 60})
        user_id = UserId(new_anonymous_id())
        # A stand-in session: never stored, never revoked; it lasts as long as the socket.
        session = Session(user_id, f"anon:{sid}", int(time.time()) + 10 * 365 * 24 * 3600)
        conn = Connection(sid, user_id, session,
                          TokenBucket(self.settings.anonymous_event_rate,
                                      self.settings.anonymous_event_burst),
                          anonymous=True, address=address)
        self.connections[sid] = conn
        self.metrics.sockets.set(len(self.connections))
        log.info("anonymous socket connected", extra={"fields": {"sid": sid, "user": user_id}})

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        sids = self._by_session.get(conn.session.session_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._by_session[conn.session.session_id]
        self.metrics.sockets.set(len(self.connections))
        if conn.anonymous:
            try:
                await self.services.anonymous.release(conn.address)
            except Exception:
                log.exception("anonymous count release failed", extra={"fields": {"sid": sid}})
        conn.dropped = reason in DROPPED_REASONS
        for listener in self.disconnect_listeners:
            try:
                await listener(conn)
            except Exception:
                log.exception("disconnect listener failed", extra={"fields": {"sid": sid}})
        log.info("socket disconnected",
                 extra={"fields": {"sid": sid, "user": conn.user_id, "reason": str(reason)}})

    async def push(self, event: str, data: Any, *, to: str) -> None:
        """A client push to a Socket.IO room (`user:`, `live:`, `watch:`, `discover`),
        delivered to its sockets on every node; a sid reaches this node's socket."""
        if self.bus is not None:
            await self.bus.push(event, data, to=to)
        else:
            await self.sio.emit(event, data, to=to)

    async def end_session(self, session_id: str, user_id: str | None = None) -> None:
        """Disconnect every socket opened with a session that was signed out: on every
        node when `user_id` is given (its tabs' channel), else on this one."""
        if self.bus is not None and user_id is not None:
            await self.bus.control(user_room(user_id), END_SESSION, session_id)
        else:
            await self.end_local_session(session_id)

    async def end_local_session(self, session_id: str) -> None:
        for sid in list(self._by_session.get(session_id, ())):
            await self.sio.disconnect(sid)

    async def close(self, timeout: float = 2.0) -> None:
        """Disconnect every client and stop Socket.IO's background work.

        A client that does not answer the close handshake is given `timeout`
        seconds in all, so a dead peer cannot hold up a shutdown."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(
                    *(self.sio.disconnect(sid) for sid in list(self.connections)),
                    return_exceptions=True)
        await self.sio.shutdown()

    # --- dispatch ----------------------------------------------------------

    async def _on_event(self, event: Any, sid: str, *args: Any) -> dict[str, Any]:
        started = time.perf_counter()
        spec = self._events.get(event) if isinstance(event, str) else None
        label = spec.name if spec else UNKNOWN_EVENT
        try:
            result = await self._dispatch(spec, event, sid, args)
            outcome = "ok"
            return {"ok": True, **result}
        except Exception as exc:
            error = as_domain_error(exc, log, "event handler failed", event=label, sid=sid)
            outcome = str(error.code)
            return error_ack(error)
        finally:
            self.metrics.events.labels(label, outcome).inc()
            self.metrics.event_seconds.labels(label).observe(time.perf_counter() - started)

    async def _dispatch(self, spec: EventSpec | None, event: Any, sid: str,
                        args: tuple[Any, ...]) -> dict[str, Any]:
        conn = self.connections.get(sid)
        if conn is None or not self.ready:
            raise unauthorized("this connection is not signed in", "missing")
        # The bucket comes first so floods of unknown or malformed events are
        # limited too.
        wait = conn.bucket.take()
        if wait:
            raise rate_limited(wait)
        if conn.session.expires_at <= time.time():
            raise unauthorized("the token has expired; sign in again", "expired")
        if conn.anonymous and (spec is None or spec.name not in ANONYMOUS_EVENTS):
            raise unauthorized("sign in to do that: signed-out visitors can only watch",
                               "anonymous")
        if spec is None:
            shown = event.shown() if isinstance(event, OddEventName) else event[:64]
            raise invalid(f"unknown event {shown!r}")
        if len(args) > 1:
            raise invalid("an event takes one payload object")
        if not args:  # emit("live:end") with no payload: refused, not read as {}
            raise invalid("the payload must be an object: send {} when there is nothing "
                          "to say")
        payload = convert(spec.schema, args[0])
        return await spec.handler(EventContext(conn, self.services, self), payload)
