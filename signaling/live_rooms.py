"""Live rooms at the edge: going live, watching, ending.

Owns the registry of lives hosted on this node (one MediaRoom each, by creator and
by live id), their grace timers (signaling/grace.py: a creator whose connection
dropped has `live_grace` seconds to come back), the coalesced viewer-count and
Discover pushes (signaling/room_pushes.py, which also names the Socket.IO rooms),
and the worker that handles media's "peer gone" reports.

The cascade (media/relay.py): a viewer whose socket is on this node watching a live
hosted on another node (its origin) is served here, by an edge room: the first such
viewer opens one relay from the origin for the live (the origin's relay address is in
its node record), the edge room fans it out to every viewer here (each at the rendition
its pin or ABR picks: the relay subscribes to those its viewers take), and the last
viewer's leave closes it. The origin relays its hosted lives (`relay`, opened by
signaling/cascade.py) and tells every edge when a live ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.accounts import utc_today
from engine.errors import DomainError, ErrorCode, conflict, not_found, unavailable
from engine.lives import Live, check_may_go_live, check_may_watch
from engine.nodes import Nodes
from engine.webhook_rules import LIVE_ENDED, LIVE_STARTED
from media.admission import JoinAdmission
from media.errors import MediaError, MediaErrorCode
from media.ice import IceServer
from media.overlay import Overlay
from media.peers import GoneReason
from media.relay import RelayClient, RelayError, RelayServer, relay_key
from media.renditions import parse_ladder
from media.room import MediaRoom
from signaling.config import Settings
from signaling.errors import from_media
from signaling.feature import Feature
from signaling.gateway import Connection, EventContext, Gateway, user_room
from signaling.grace import GraceTimers
from signaling.push_bus import ROOM_CLOSED, VIEWERS_CHANGED
from signaling.room_pushes import DISCOVER_ROOM, RoomPushes, live_room, watch_room
from signaling.schemas import (
    Empty,
    LiveRestart,
    LiveStart,
    LiveTitle,
    LiveWatch,
    RoomJoin,
    RoomLeave,
    RoomQuality,
    RoomResume,
    RtcAnswer,
    RtcRestart,
)
from signaling.services import Services
from signaling.tasks import OwnedTask, every
from signaling.viewer_hold import Hold, ViewerHolds
from signaling.webhooks import emit_safely

log = logging.getLogger("golive.lives")

GONE_QUEUE_BOUND = 10_000  # media "peer gone" reports waiting for the worker
UNLIMITED_HANDSHAKES = 1_000_000  # GOLIVE_JOIN_HANDSHAKES=0
# `live:uplink` to each creator: a window long enough to hold ~60 frames and a few
# hundred packets (a loss figure of 1% means something), short enough that the studio
# shows a drop within a few seconds. The pass costs ~20 us per live (a few reads).
UPLINK_PUSH_S = 2.0


class LiveRecorder(Protocol):
    """What records lives (signaling/replays.py LiveReplays)."""

    def start(self, live: Live, media: MediaRoom) -> None: ...
    def recording(self, live_id: str) -> bool: ...
    async def finish(self, live: Live) -> object: ...


@dataclass
class HostedLive:
    live: Live
    media: MediaRoom
    publisher_sid: str | None
    viewers: dict[str, str] = field(default_factory=dict)  # sid -> viewer user id
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # sid -> the viewer's id in the media room, where they differ: a socket that took
    # back (room:resume) the media a dropped socket held keeps that socket's media id.
    media_keys: dict[str, str] = field(default_factory=dict)

    def key(self, sid: str) -> str:
        """The media room's id of the viewer whose socket is `sid`."""
        return self.media_keys.get(sid, sid)

    def sid_of(self, key: str) -> str:
        """The socket (live or held) of the viewer the media room calls `key`."""
        return next((sid for sid, k in self.media_keys.items() if k == key), key)


@dataclass
class RemoteLive:
    """A live hosted on another node, as a node with members of it holds it: chat-only
    members, and viewers with media served by an edge room fed by a relay from the
    origin (open while this node has at least one of them)."""

    live: Live
    viewers: dict[str, str] = field(default_factory=dict)  # sid -> viewer user id
    media: MediaRoom | None = None  # the edge room
    relay: RelayClient | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # opening the edge room
    joining: int = 0  # media joins between opening the edge room and their add_viewer


class LiveRooms(Feature):
    """Every live hosted on this node, and the events that drive them."""

    def __init__(self, gateway: Gateway, services: Services, settings: Settings) -> None:
        super().__init__()
        self.gateway = gateway
        self.services = services
        self.settings = settings
        # The browsers' ICE servers, with a TURN credential made per user (signaling/turn.py).
        # The server's own peers get only the static list: on loopback, or on a host with a
        # public address, a relay-only client's relay candidate reaches the server's host
        # candidate directly, so the server needs no TURN allocation of its own.
        self.client_ice = settings.client_ice()
        self._media_ice = tuple(IceServer(s["urls"], s.get("username"), s.get("credential"))
                                for s in self.client_ice.static)
        # One for the node: joins' handshakes compete for the same CPU whatever their live.
        # 0 handshakes: no admission (every join starts at once, as before it existed).
        self.joins = (JoinAdmission(settings.join_handshakes, settings.join_queue)
                      if settings.join_handshakes else
                      JoinAdmission(UNLIMITED_HANDSHAKES, 0, max_lag_s=None))
        gateway.metrics.watch_joins(self.joins.stats)
        self.hosted: dict[str, HostedLive] = {}  # creator id -> live
        self._by_live: dict[str, HostedLive] = {}  # live id -> live
        self.remote: dict[str, RemoteLive] = {}  # live id -> members here, media or not
        # The cascade: this node relays its hosted lives to edges (opened by
        # signaling/cascade.py RelayListener) and opens relays from other origins.
        self.relay_key = relay_key(settings.token_secret())
        self.nodes = Nodes(services.redis)
        self.relay = RelayServer(self.relay_key, settings.node_name(), self.relay_source,
                                 known=self._is_node)
        self.edge_relays_opened = 0
        self.grace = GraceTimers(settings.live_grace, self._grace_over)
        # A viewer whose socket dropped keeps its media this long for its page's new
        # socket (room:resume; signaling/viewer_hold.py). Hosted lives only: an edge
        # room's viewer joins again.
        self.holds = ViewerHolds(settings.viewer_resume_grace, self._hold_over)
        gateway.metrics.watch_held_viewers(lambda: len(self.holds.held()))
        self.pushes = RoomPushes(gateway, services, self.hosted_live)
        # (live id, reason, the viewer's sid / None for the publisher / a RelayClient
        # whose stream ended)
        self._gone: asyncio.Queue[tuple[str, str, str | RelayClient | None]] = asyncio.Queue(
            GONE_QUEUE_BOUND)
        self._gone_worker_task = OwnedTask(self._gone_worker, "live-gone")
        self._uplink_task = OwnedTask(
            lambda: every(UPLINK_PUSH_S, self._push_uplink, log, "uplink push failed"),
            "live-uplink")
        self._start_lock = asyncio.Lock()
        # The sids of socketless publishers (WHIP sessions) while their session is open:
        # a live they publish is as taken as one a connected studio publishes.
        self.socketless_publishers: set[str] = set()
        # Awaited, in order, when a new viewer (not a renegotiation) joined a live here
        # (live chat writes its "NAME joined" line).
        self.join_listeners: list[Callable[[Live, Connection], Awaitable[None]]] = []
        # The same for a signed-out (anonymous) viewer: only those that need no account
        # (the gift board's catch-up push), not the chat's "NAME joined" line.
        self.anonymous_join_listeners: list[Callable[[Live, Connection], Awaitable[None]]] = []
        # Awaited, in order, when a new live started here (not a resume): nudges and
        # live alerts queue their go-live notifications.
        self.started_listeners: list[Callable[[Live], Awaitable[None]]] = []
        # Records the lives whose creators asked for it (signaling/replays.py): start()
        # taps a new live's room, finish() closes the recording as the live ends.
        self.recorder: LiveRecorder | None = None
        self._add_events()

    # --- lifetime ----------------------------------------------------------

    async def on_open(self) -> None:
        """Take back the lives this node hosted when it stopped without ending them (a
        crash): each waits a grace period (`live_grace`, counted from now) for its
        creator's `live:start`, which resumes it (same live id, chat and gift board);
        unclaimed, it ends. Then start the owned tasks."""
        for live in await self.services.lives.recover_node():
            hosted = HostedLive(live, self._media_room(live), None)
            self.hosted[live.creator_id] = hosted
            self._by_live[live.live_id] = hosted
            log.info("live left by a stopped server; waiting for its creator",
                     extra={"fields": {"live": live.live_id, "creator": live.creator_id}})
            self._begin_grace(hosted)
            self.pushes.discover_changed()
        self.pushes.open()
        self._gone_worker_task.start()
        self._uplink_task.start()

    async def on_close(self) -> None:
        """End every hosted live (viewers are told), then stop the owned tasks."""
        await asyncio.gather(*(self.end(h.live.creator_id, "server_shutdown")
                               for h in list(self.hosted.values())), return_exceptions=True)
        for room in list(self.remote.values()):
            await self._close_edge(room, "server_shutdown")
        await self._gone_worker_task.stop()
        await self._uplink_task.stop()
        self.joins.close()
        await self.grace.close()
        await self.holds.close()
        await self.pushes.close()

    # --- creator -----------------------------------------------------------

    async def start(self, conn: Connection, title: str, offer: str, *,
                    signed_in_only: bool = False, resume_of: str | None = None,
                    record: bool = False) -> dict[str, Any]:
        """Go live, or come back to a live in its grace period, with a new offer;
        `forbidden` (reason under_age) under GOLIVE_LIVE_MIN_AGE. With `resume_of` (the
        live the tab was on) only that live is resumed: if it ended meanwhile the answer
        is `not_found` (reason live_ended), never a silent new live. With `record` the
        live is recorded for a replay (signaling/replays.py; a resume keeps recording)."""
        creator = conn.user_id
        account = await self.services.accounts.get(creator)
        check_may_go_live(account.birthdate, utc_today(), self.settings.live_min_age)
        hosted = self.hosted.get(creator) or await self._adopt(creator)
        if hosted is None:
            await self._check_not_elsewhere(creator)
        if resume_of is not None and (hosted is None or hosted.live.live_id != resume_of):
            raise DomainError(ErrorCode.NOT_FOUND,
                              "your LIVE ended while you were away: the connection was lost "
                              f"for more than {self.settings.live_grace:g} s",
                              reason="live_ended", live_id=resume_of)
        if hosted is not None:
            return await self._resume(hosted, conn, offer)
        async with self._start_lock:
            live = await self.services.lives.start(  # conflict across nodes
                creator, title, signed_in_only=signed_in_only)
            media = self._media_room(live)
            hosted = HostedLive(live, media, conn.sid)
            self.hosted[creator] = hosted
            self._by_live[live.live_id] = hosted
            # Held through the first publish: a second offer racing it is a conflict.
            await hosted.lock.acquire()
        try:
            answer = await media.publish(offer)
        except BaseException as exc:
            hosted.lock.release()
            await self.end(creator, "publish_failed")
            if isinstance(exc, MediaError):
                raise from_media(exc) from None
            raise
        hosted.lock.release()
        recording = False
        if record and self.recorder is not None:
            try:
                self.recorder.start(live, media)
                recording = True
            except Exception:  # the live goes on unrecorded (a full disk, a bad data dir)
                log.exception("recording did not start", extra={"fields": {"live": live.live_id}})
        await self._enter(conn, live_room(live.live_id))
        await self.services.lives.mark_recent(live)
        await self.pushes.announce_start(live, "whip" if conn.socketless else "studio")
        for listener in self.started_listeners:
            try:
                await listener(live)
            except Exception:
                log.exception("start listener failed", extra={"fields": {"live": live.live_id}})
        await emit_safely(self.services.webhooks, LIVE_STARTED, creator, {"live": live.as_dict()},
                          key=live.live_id)
        log.info("live started", extra={"fields": {"live": live.live_id, "creator": creator}})
        return {"live": live.as_dict(), "answer": answer, "viewers": 0,
                "recording": recording, **self.client_ice.for_client(conn.user_id)}

    async def _check_not_elsewhere(self, creator_id: str) -> None:
        """`conflict` (reason `other_node`, with the node) when the creator's live runs on
        another node that is alive: a creator back after a reload or a network drop whose
        new connection reached another worker or machine. The studio then opens a new
        connection (with workers on one port the kernel hands it to a worker by a hash
        of its addresses) until it reaches the live's node, where the live resumes."""
        live = await self.services.lives.current(creator_id)
        if live is not None and live.node != self.settings.node_name():
            raise DomainError(ErrorCode.CONFLICT, "your LIVE is running on another server",
                              reason="other_node", node=live.node, live_id=live.live_id)

    async def _adopt(self, creator_id: str) -> HostedLive | None:
        """The creator's live when its node died (signaling/node_failure.py): hosted here
        from now on, resumed by the caller (same live id, chat and board); its chat-only
        members here become the hosted live's. None when there is none to adopt."""
        live = await self.services.lives.adopt(creator_id)
        if live is None:
            return None
        hosted = HostedLive(live, self._media_room(live), None)
        room = self.remote.pop(live.live_id, None)
        if room is not None:
            hosted.viewers.update(room.viewers)
            # an edge room here fed by the dead origin: its viewers stay members and are
            # told their media ended, so they join again with media from this node
            for sid in await self._close_edge(room, "origin_adopted"):
                await self.gateway.sio.emit("room:left", {"live_id": live.live_id,
                                                         "reason": "relay_lost"}, to=sid)
        self.hosted[creator_id] = hosted
        self._by_live[live.live_id] = hosted
        log.info("live adopted from a lost node", extra={"fields": {
            "live": live.live_id, "creator": creator_id}})
        self.pushes.discover_changed()
        return hosted

    def _media_room(self, live: Live, relay: RelayClient | None = None) -> MediaRoom:
        """The live's room: the origin's, or (with `relay`) an edge room it feeds."""
        return MediaRoom(
            live.live_id,
            codec=relay.codec if relay else self.settings.video_codec,  # type: ignore[arg-type]
            video_bitrate=self.settings.video_bitrate, ice_servers=self._media_ice,
            audio_bitrate=self.settings.audio_bitrate,
            # an edge room takes its origin's ladder (the relay's "stream" names it)
            renditions=(relay.ladder if relay else
                        parse_ladder(self.settings.renditions, self.settings.video_bitrate)),
            viewer_remb=self.settings.viewer_remb,
            max_viewers=self.settings.max_viewers, fanout=self.settings.fanout,
            admission=self.joins,
            upstream_keyframes=relay.request_keyframe if relay else None,
            on_viewer_gone=lambda sid, reason: self._report_gone(live.live_id, sid, reason),
            on_publisher_gone=lambda reason: self._report_gone(live.live_id, None, reason),
            on_viewer_rendition=lambda key, quality: self.pushes.rendition_changed(
                self._socket_of(live.live_id, key), live.live_id, quality))

    def _socket_of(self, live_id: str, key: str) -> str:
        """The socket of the viewer a media room calls `key` (its media id)."""
        hosted = self._by_live.get(live_id)
        return hosted.sid_of(key) if hosted is not None else key

    async def _is_node(self, node_id: str) -> bool:
        """An edge's relay comes from a node with a record in Redis (a live node)."""
        return await self.nodes.get(node_id) is not None

    def relay_source(self, live_id: str) -> MediaRoom | None:
        """The room an edge's relay subscribes to: a live hosted (and open) here."""
        hosted = self._by_live.get(live_id)
        return hosted.media if hosted is not None and not hosted.media.closed else None

    async def _resume(self, hosted: HostedLive, conn: Connection, offer: str) -> dict[str, Any]:
        if hosted.lock.locked():
            raise conflict("a publish for this live is already in progress")
        async with hosted.lock:
            # Another connection that is still up and publishing owns the live; the
            # publishing connection itself may re-offer (its media failed) at once.
            other_publisher = (hosted.publisher_sid not in (None, conn.sid)
                               and (hosted.publisher_sid in self.gateway.connections
                                    or hosted.publisher_sid in self.socketless_publishers))
            if other_publisher and hosted.media.has_publisher:
                raise conflict("you are already live (in another tab or device)")
            await self.grace.cancel(hosted.live.live_id)
            await hosted.media.unpublish()
            try:
                answer = await hosted.media.publish(offer)
            except MediaError as exc:
                self._begin_grace(hosted)
                raise from_media(exc) from None
            hosted.publisher_sid = conn.sid
        await self._enter(conn, live_room(hosted.live.live_id))
        log.info("live resumed", extra={"fields": {"live": hosted.live.live_id}})
        return {"live": hosted.live.as_dict(), "answer": answer, "resumed": True,
                "recording": self.recorder is not None
                and self.recorder.recording(hosted.live.live_id),
                "viewers": await self.services.lives.viewer_count(hosted.live),
                **self.client_ice.for_client(conn.user_id)}

    async def end(self, creator_id: str, reason: str) -> bool:
        """End the creator's live on this node: Redis, pushes, every peer connection."""
        hosted = self.hosted.pop(creator_id, None)
        if hosted is None:
            return False
        self._by_live.pop(hosted.live.live_id, None)
        live = hosted.live
        self.relay.end_live(live.live_id, reason)  # edges end their viewers' media
        self.holds.live_ended(live.live_id)
        await self.grace.cancel(live.live_id)  # skipped when the timer itself is ending it
        try:
            await self.services.lives.end(live)
            await emit_safely(self.services.webhooks, LIVE_ENDED, creator_id,
                              {"live": live.as_dict(), "reason": reason}, key=live.live_id)
            payload = {"live_id": live.live_id, "creator_id": creator_id, "reason": reason}
            await self.gateway.push("live:ended", payload, to=live_room(live.live_id))
            await self.gateway.push("live:ended", payload, to=watch_room(creator_id))
            if self.gateway.bus is not None:  # every node closes the room, drops its share
                await self.gateway.bus.control(live_room(live.live_id), ROOM_CLOSED,
                                               live.live_id)
            await self.gateway.sio.close_room(live_room(live.live_id))
        finally:
            if self.recorder is not None:
                try:  # before the room closes: the file ends where the live did
                    await self.recorder.finish(live)
                except Exception:
                    log.exception("replay not saved", extra={"fields": {"live": live.live_id}})
            await hosted.media.close()
            self.pushes.discover_changed()
        log.info("live ended", extra={"fields": {"live": live.live_id, "reason": reason}})
        return True

    def _begin_grace(self, hosted: HostedLive) -> None:
        """The creator's connection or media dropped: end the live unless they come back."""
        if not self.grace.start(hosted.live.live_id):
            return  # already waiting
        hosted.publisher_sid = None
        log.info("creator gone; grace period", extra={"fields": {
            "live": hosted.live.live_id, "seconds": self.settings.live_grace}})

    async def _grace_over(self, live_id: str) -> None:
        hosted = self._by_live.get(live_id)
        if hosted is not None:
            await self.end(hosted.live.creator_id, "creator_left")

    # --- viewers -----------------------------------------------------------

    async def join(self, conn: Connection, creator_id: str, *,
                   media: bool = True, quality: str = "auto",
                   offer: str | None = None) -> dict[str, Any]:
        """Join a live as a viewer: the server's offer comes back in the ack (None for a
        chat-only join, which counts as a viewer and gets the room's pushes and chat),
        with the renditions and the one it gets (`quality`: auto or a height). With the
        viewer's own `offer` (a WHEP player), the ack has the server's `answer` instead."""
        live = check_may_watch(conn.user_id, await self.services.lives.current(creator_id),
                               anonymous=conn.anonymous)
        if not conn.anonymous:  # an anonymous identity has no follows or blocks
            await self.services.graph.check_may_interact(conn.user_id, creator_id, "watch")
        if await self.services.chat.is_banned(creator_id, conn.user_id):
            raise DomainError(ErrorCode.FORBIDDEN, "the creator banned you from their lives",
                              reason="banned")
        hosted = self._by_live.get(live.live_id)
        if hosted is None:  # no holds for an edge room's viewers: they join again
            ack = await self._join_remote(conn, live, media, quality, offer)
            return _answered(ack | ({} if conn.socketless else {"resume_token": None}), offer)
        renegotiation = conn.sid in hosted.viewers
        if renegotiation:  # a fresh pc from the same tab
            await hosted.media.remove_viewer(hosted.key(conn.sid))
            hosted.media_keys.pop(conn.sid, None)
        else:
            count = await self.services.lives.viewer_joined(live, conn.user_id)
            if count < 0:
                raise not_found("this live has ended")
            hosted.viewers[conn.sid] = conn.user_id
        sdp = None
        try:
            if media:
                sdp = await hosted.media.add_viewer(conn.sid, quality, offer)
        except MediaError as exc:
            await self._forget_viewer(hosted, conn.sid)
            raise from_media(exc) from None
        await self._enter(conn, live_room(live.live_id))
        self.pushes.viewers_changed(live.live_id)
        ack = await self._joined(live, conn, renegotiation, sdp)
        if not conn.socketless:  # a socket that drops may take its media back (room:resume)
            ack["resume_token"] = self.holds.issue(conn.sid, live.live_id, conn.sid,
                                                   conn.user_id, conn.anonymous)
        return _answered(ack | (_quality(hosted.media, conn.sid) if sdp is not None else {}),
                         offer)

    async def _join_remote(self, conn: Connection, live: Live, media: bool,
                           quality: str = "auto", client_offer: str | None = None
                           ) -> dict[str, Any]:
        """A join of a live hosted on another node: counted (distinct users across nodes),
        in the live's room (its pushes and chat reach this node's socket through the push
        bus); with media, served by this node's edge room (opened on its first viewer)."""
        room = self.remote.setdefault(live.live_id, RemoteLive(live))
        renegotiation = conn.sid in room.viewers
        if not renegotiation:
            count = await self.services.lives.viewer_joined(live, conn.user_id)
            if count < 0:
                self._drop_remote_if_empty(live.live_id)
                raise not_found("this live has ended")
            room.viewers[conn.sid] = conn.user_id
        elif media and room.media is not None:  # a fresh pc from the same tab
            await room.media.remove_viewer(conn.sid)
        else:  # now chat-only: its pc (if any) closes, maybe the edge room with it
            await self._release_edge_viewer(room, conn.sid)
        offer = None
        if media:
            room.joining += 1  # the edge room stays open for this join meanwhile
            try:
                edge = await self._edge_room(room)
                offer = await edge.add_viewer(conn.sid, quality, client_offer)
            except (MediaError, DomainError) as exc:
                room.joining -= 1
                await self._forget_remote_viewer(room, conn.sid)
                raise from_media(exc) if isinstance(exc, MediaError) else exc from None
            except BaseException:
                room.joining -= 1
                raise
            room.joining -= 1
        await self._enter(conn, live_room(live.live_id))
        await self._viewers_changed(live.live_id)
        ack = await self._joined(live, conn, renegotiation, offer)
        return ack | (_quality(room.media, conn.sid)
                      if offer is not None and room.media is not None else {})

    async def _edge_room(self, room: RemoteLive) -> MediaRoom:
        """This node's edge room of a remote live, opening its relay from the origin on
        the first media viewer; `unavailable` when the origin cannot be reached."""
        async with room.lock:
            if room.media is not None and not room.media.closed:
                return room.media
            live = room.live
            record = await self.nodes.get(live.node)
            if record is None or not record.relay:
                raise unavailable("this live's origin node is not reachable")
            client = RelayClient(record.relay, self.relay_key, self.settings.node_name(),
                                 live.live_id)
            client.on_end = lambda reason: self._report_gone(live.live_id, client, reason)
            try:
                await client.open()
            except RelayError as exc:
                log.warning("relay not opened", extra={"fields": {
                    "live": live.live_id, "origin": live.node, "code": exc.code,
                    "cause": exc.message}})
                if exc.code == "not_found":
                    raise not_found("this live has ended") from None
                raise unavailable("this live's origin node is not reachable") from None
            media = self._media_room(live, client)
            client.sink = media  # before any await: the relay's frames feed it from now
            room.media, room.relay = media, client
            self.edge_relays_opened += 1
            log.info("relay opened", extra={"fields": {"live": live.live_id,
                                                       "origin": live.node}})
            return media

    async def _close_edge(self, room: RemoteLive, why: str) -> list[str]:
        """Close the edge room and its relay (the origin drops this edge); the sids whose
        media it ended."""
        media, relay = room.media, room.relay
        room.media = room.relay = None
        if media is None:
            return []
        sids = media.viewer_ids
        if relay is not None:
            await relay.close()
        await media.close()
        log.info("relay closed", extra={"fields": {"live": room.live.live_id, "reason": why}})
        return sids

    async def _release_edge_viewer(self, room: RemoteLive, sid: str) -> None:
        """A viewer here stops watching a remote live: its pc closed; the last one's leave
        closes the relay."""
        if room.media is None:
            return
        await room.media.remove_viewer(sid)
        if not room.media.viewer_ids and not room.joining:
            await self._close_edge(room, "last_viewer_left")

    async def _edge_ended(self, room: RemoteLive, relay: RelayClient, reason: str) -> None:
        """The origin ended the relay (the live ended, with `reason`) or it was lost: the
        edge's viewers' media ends with that reason."""
        if room.relay is not relay:
            return  # an older relay, already replaced or closed
        for sid in await self._close_edge(room, reason):
            if sid in room.viewers:
                await self._forget_remote_viewer(room, sid)
                await self.gateway.sio.emit("room:left", {"live_id": room.live.live_id,
                                                         "reason": reason}, to=sid)

    async def _joined(self, live: Live, conn: Connection, renegotiation: bool,
                      offer: str | None) -> dict[str, Any]:
        """The end of every join, with media here or chat-only for a live hosted
        elsewhere: the join listeners once per viewer (not on a renegotiation), the ack."""
        if not renegotiation and not conn.anonymous:  # no "joined" line for a visitor
            for listener in self.join_listeners:
                try:
                    await listener(live, conn)
                except Exception:
                    log.exception("join listener failed", extra={"fields": {"live": live.live_id}})
        if not renegotiation and conn.anonymous:  # the board still reaches a late joiner
            for listener in self.anonymous_join_listeners:
                try:
                    await listener(live, conn)
                except Exception:
                    log.exception("join listener failed", extra={"fields": {"live": live.live_id}})
        return {"live": live.as_dict(), "offer": offer,
                **self.client_ice.for_client(conn.user_id),
                "viewers": await self.services.lives.viewer_count(live),
                "likes": await self.services.likes.count(live.live_id)}

    async def _enter(self, conn: Connection, room: str) -> None:
        """Put a connection's socket in a Socket.IO room; a socketless one (WHIP, WHEP)
        has none."""
        if not conn.socketless:
            await self.gateway.sio.enter_room(conn.sid, room)

    async def _viewers_changed(self, live_id: str) -> None:
        if live_id in self._by_live:
            self.pushes.viewers_changed(live_id)
        elif self.gateway.bus is not None:  # the origin pushes the count
            await self.gateway.bus.control(live_room(live_id), VIEWERS_CHANGED, live_id)

    def _drop_remote_if_empty(self, live_id: str) -> None:
        room = self.remote.get(live_id)
        if room is not None and not room.viewers:
            del self.remote[live_id]

    async def _forget_remote_viewer(self, room: RemoteLive, sid: str) -> None:
        await self._release_edge_viewer(room, sid)
        user_id = room.viewers.pop(sid, None)
        if user_id is not None:
            await self.services.lives.viewer_left(room.live, user_id)
            await self._viewers_changed(room.live.live_id)
        self._drop_remote_if_empty(room.live.live_id)

    async def forget_remote(self, live_id: str) -> None:
        """The live ended (told by its origin): drop its members here, this node's share
        of its viewers and its room."""
        room = self.remote.pop(live_id, None)
        if room is not None:
            await self._close_edge(room, "live_ended")
        live = room.live if room is not None else None
        if live is None:
            hosted = self._by_live.get(live_id)
            live = hosted.live if hosted is not None else None
        await self.services.lives.reap_share(live_id, live.creator_id if live else "")
        await self.gateway.sio.close_room(live_room(live_id))

    def _viewer_media(self, conn: Connection, live_id: str,
                      missing: str) -> tuple[MediaRoom, str]:
        """The media room holding `conn`'s video of the live (hosted here, or an edge
        room of a live hosted elsewhere) and the viewer's id in it; not_found(`missing`)
        when it has none."""
        hosted = self._by_live.get(live_id)
        room = self.remote.get(live_id)
        media: MediaRoom | None = None
        key = conn.sid
        if hosted is not None and conn.sid in hosted.viewers:
            media, key = hosted.media, hosted.key(conn.sid)
        elif hosted is None and room is not None and conn.sid in room.viewers:
            media = room.media
        if media is None or key not in media.viewer_ids:
            raise not_found(missing)
        return media, key

    async def set_quality(self, conn: Connection, live_id: str, quality: str) -> dict[str, Any]:
        """A viewer pins its video to a rendition ("360") or gives it back to its link
        ("auto"); it moves at that rendition's next keyframe."""
        media, key = self._viewer_media(conn, live_id, "you are not watching this live's video")
        try:
            media.set_quality(key, quality)
        except MediaError as exc:
            raise from_media(exc) from None
        return _quality(media, key)

    async def restart_viewer(self, conn: Connection, live_id: str) -> dict[str, Any]:
        """A viewer whose network changed restarts ICE on its peer connection: the offer
        (new ICE) comes back; its answer goes through rtc:answer. The join stays as it
        is: no room:leave/room:join, no viewer-count change, the quality pin kept."""
        media, key = self._viewer_media(conn, live_id,
                                        "you have no peer connection in this live to restart")
        try:
            offer = await media.restart_viewer_ice(key)
        except MediaError as exc:
            raise from_media(exc) from None
        return {"offer": offer}

    async def resume(self, conn: Connection, live_id: str, token: str) -> dict[str, Any]:
        """A viewer's new socket takes back what its dropped socket held (its peer
        connection, its place in the count, its quality pin): no count change, no
        room:state push; the page then restarts ICE (rtc:restart) over this socket.
        not_found (reason unknown_token, expired or live_ended) or forbidden (reason
        other_user) otherwise: the page joins again. The ack has a new token (each is
        used once), the live, the count, and for a viewer with video its quality."""
        hosted = self._by_live.get(live_id)
        hold = await self.holds.take(token, live_id=live_id, sid=conn.sid,
                                     user_id=conn.user_id, anonymous=conn.anonymous,
                                     live_running=hosted is not None and not hosted.media.closed)
        assert hosted is not None  # take() refused otherwise (live_ended)
        if hold.sid not in hosted.viewers:  # its media ended meanwhile (the gone worker)
            raise DomainError(ErrorCode.NOT_FOUND, "the stream ended meanwhile: join again",
                              reason="expired")
        if conn.sid in hosted.viewers:  # this socket joined again meanwhile: that join wins
            await hosted.media.remove_viewer(hold.media_key)
            await self._forget_viewer(hosted, hold.sid)
            raise conflict("this connection has joined the live again since")
        # The same viewer under its new socket: its counted identity stays (a visitor's
        # new socket has a new made-up one, but the count holds the old one)
        hosted.viewers[conn.sid] = hosted.viewers.pop(hold.sid)
        hosted.media_keys.pop(hold.sid, None)
        if hold.media_key != conn.sid:
            hosted.media_keys[conn.sid] = hold.media_key
        if not hold.held:  # the old socket is still open here (its loss not yet seen):
            # it watches nothing now, and hears the room no more
            await self.gateway.sio.leave_room(hold.sid, live_room(live_id))
        await self._enter(conn, live_room(live_id))
        log.info("viewer resumed", extra={"fields": {"live": live_id, "sid": conn.sid}})
        ack: dict[str, Any] = {
            "live": hosted.live.as_dict(),
            "resume_token": self.holds.issue(conn.sid, live_id, hold.media_key,
                                             hold.user_id, hold.anonymous),
            "viewers": await self.services.lives.viewer_count(hosted.live),
            "likes": await self.services.likes.count(live_id),  # those sent while away
            **self.client_ice.for_client(conn.user_id)}
        if hold.media_key in hosted.media.viewer_ids:
            ack |= _quality(hosted.media, hold.media_key)
        return ack

    async def _hold_over(self, hold: Hold) -> None:
        """A held viewer's socket did not come back in time: its media and its place in
        the count end (one room:state push, as a leave)."""
        hosted = self._by_live.get(hold.live_id)
        if hosted is None or hold.sid not in hosted.viewers:
            return  # the live ended, or the media's own report came first
        await hosted.media.remove_viewer(hold.media_key)
        await self._forget_viewer(hosted, hold.sid)

    async def restart_publisher(self, conn: Connection, offer: str) -> dict[str, Any]:
        """The creator's ICE restart, from the publishing tab or from its new socket after
        a network change (within the grace period: this ends it). The offer must carry
        the publishing connection's DTLS fingerprint, so another tab cannot take it."""
        hosted = self.hosted.get(conn.user_id)
        if hosted is None:
            raise not_found("you are not live")
        if hosted.lock.locked():
            raise conflict("a publish for this live is already in progress")
        async with hosted.lock:
            try:
                answer = await hosted.media.restart_publisher_ice(offer)
            except MediaError as exc:
                raise from_media(exc) from None
            await self.grace.cancel(hosted.live.live_id)
            hosted.publisher_sid = conn.sid
        await self.gateway.sio.enter_room(conn.sid, live_room(hosted.live.live_id))
        log.info("live ICE restarted", extra={"fields": {"live": hosted.live.live_id}})
        return {"live": hosted.live.as_dict(), "answer": answer}

    async def answer(self, conn: Connection, live_id: str, sdp: str) -> dict[str, Any]:
        """A viewer's SDP answer to its join's or ICE restart's offer (in the hosted room or
        the edge room): media that fails on it (bar a conflict) forgets the viewer's peer."""
        hosted = self._by_live.get(live_id)
        room = self.remote.get(live_id)
        if hosted is not None and conn.sid in hosted.viewers:
            media: MediaRoom | None = hosted.media
        elif hosted is None and room is not None and conn.sid in room.viewers:
            media = room.media  # the edge room (None: a chat-only join here)
        else:
            raise not_found("join the live before answering")
        try:
            if media is None:
                raise not_found("no media for this join (chat-only)")
            key = hosted.key(conn.sid) if hosted is not None else conn.sid
            await media.accept_viewer_answer(key, sdp)
        except MediaError as exc:
            # not_found: a chat-only join, which has no peer connection to forget
            if exc.code not in (MediaErrorCode.CONFLICT, MediaErrorCode.NOT_FOUND):
                if hosted is not None:
                    await self._forget_viewer(hosted, conn.sid)
                elif room is not None:
                    await self._forget_remote_viewer(room, conn.sid)
            raise from_media(exc) from None
        return {}

    async def leave(self, conn: Connection, live_id: str) -> bool:
        hosted = self._by_live.get(live_id)
        room = self.remote.get(live_id)
        if hosted is None and room is not None and conn.sid in room.viewers:
            await self._forget_remote_viewer(room, conn.sid)
            await self.gateway.sio.leave_room(conn.sid, live_room(live_id))
            return True
        if hosted is None or conn.sid not in hosted.viewers:
            return False
        await hosted.media.remove_viewer(hosted.key(conn.sid))
        await self._forget_viewer(hosted, conn.sid)
        await self.gateway.sio.leave_room(conn.sid, live_room(live_id))
        return True

    async def retitle(self, creator_id: str, title: str) -> dict[str, Any]:
        """A new title for the creator's running live; `not_found` when not live."""
        live = await self.services.lives.current(creator_id)
        if live is None:
            raise not_found("you are not live")
        live = await self.services.lives.retitle(live, title)
        for holder in (self._by_live.get(live.live_id), self.remote.get(live.live_id)):
            if holder is not None:
                holder.live = live
        payload = {"live_id": live.live_id, "creator_id": creator_id, "title": live.title}
        await self.gateway.push("live:title", payload, to=live_room(live.live_id))
        await self.gateway.push("live:title", payload, to=watch_room(creator_id))
        self.pushes.discover_changed()
        return {"live": live.as_dict()}

    def is_viewing(self, live_id: str, sid: str) -> bool:
        """Whether the connection `sid` is a viewer of the live here (hosted or edge)."""
        hosted = self._by_live.get(live_id)
        room = self.remote.get(live_id)
        return ((hosted is not None and sid in hosted.viewers)
                or (room is not None and sid in room.viewers))

    def hosted_live(self, live_id: str) -> Live | None:
        """The live with this id if this node hosts it."""
        hosted = self._by_live.get(live_id)
        return hosted.live if hosted is not None else None

    def member_live(self, live_id: str) -> Live | None:
        """The live with this id if this node hosts it or has chat-only members of it
        (chat reads and writes go through here)."""
        room = self.remote.get(live_id)
        return room.live if room is not None else self.hosted_live(live_id)

    async def remove_user(self, live_id: str, user_id: str, reason: str) -> int:
        """Stop every connection of user_id watching this live (a ban): media closed,
        viewer count updated, `room:left` with `reason`. Returns the connections removed."""
        hosted = self._by_live.get(live_id)
        if hosted is None:
            room = self.remote.get(live_id)
            if room is None:
                return 0
            sids = [sid for sid, uid in room.viewers.items() if uid == user_id]
            for sid in sids:
                await self._forget_remote_viewer(room, sid)
                await self.gateway.sio.leave_room(sid, live_room(live_id))
                await self.gateway.sio.emit("room:left", {"live_id": live_id, "reason": reason},
                                            to=sid)
            return len(sids)
        sids = [sid for sid, uid in hosted.viewers.items() if uid == user_id]
        for sid in sids:
            await hosted.media.remove_viewer(hosted.key(sid))
            await self._forget_viewer(hosted, sid)
            await self.gateway.sio.leave_room(sid, live_room(live_id))
            await self.gateway.sio.emit("room:left", {"live_id": live_id, "reason": reason},
                                        to=sid)
        return len(sids)

    async def _forget_viewer(self, hosted: HostedLive, sid: str) -> None:
        hosted.media_keys.pop(sid, None)
        await self.holds.forget(sid, hosted.live.live_id)
        user_id = hosted.viewers.pop(sid, None)
        if user_id is not None:
            await self.services.lives.viewer_left(hosted.live, user_id)
            self.pushes.viewers_changed(hosted.live.live_id)

    # --- disconnects and media reports -------------------------------------

    async def on_disconnect(self, conn: Connection) -> None:
        """A socket closed: a viewer's media is held for its page's new socket
        (room:resume) when the connection was lost (not closed on purpose) and it has a
        resume token, else it stops watching; a creator's starts the grace period."""
        for hosted in list(self._by_live.values()):
            if conn.sid in hosted.viewers:
                if conn.dropped and self.holds.hold(conn.sid, hosted.live.live_id):
                    continue  # still counted, its media still running: see _hold_over
                await hosted.media.remove_viewer(hosted.key(conn.sid))
                await self._forget_viewer(hosted, conn.sid)
        for room in list(self.remote.values()):
            if conn.sid in room.viewers:
                await self._forget_remote_viewer(room, conn.sid)
        hosted = self.hosted.get(conn.user_id)
        if hosted is not None and hosted.publisher_sid == conn.sid:
            self._begin_grace(hosted)

    def _report_gone(self, live_id: str, sid: str | RelayClient | None,
                     reason: GoneReason | str) -> None:
        """Called by media on its own task: hand over to the worker, never block."""
        try:
            self._gone.put_nowait((live_id, str(reason), sid))
        except asyncio.QueueFull:
            log.error("gone queue full; report dropped", extra={"fields": {"live": live_id}})

    def publisher_via(self, creator_id: str) -> str | None:
        """What publishes the creator's live hosted here: "whip" (an encoder, no socket)
        or "studio"; None when not hosted here or in its grace period (unknown)."""
        hosted = self.hosted.get(creator_id)
        if hosted is None or hosted.publisher_sid is None:
            return None
        return "whip" if hosted.publisher_sid in self.socketless_publishers else "studio"

    async def _push_uplink(self) -> None:
        """`live:uplink` to each publishing creator here: the window since the last pass
        (media/uplink.py). The creator's socket is on this node: its live is hosted where
        its `live:start` came in."""
        for hosted in list(self.hosted.values()):
            sid = hosted.publisher_sid
            report = hosted.media.uplink_report()
            if report is None or sid is None:
                continue
            payload = {"live_id": hosted.live.live_id, **report.as_dict()}
            if sid in self.socketless_publishers:
                # a WHIP encoder has no socket: the creator's studio tabs show its uplink
                await self.gateway.push("live:uplink", payload,
                                        to=user_room(hosted.live.creator_id))
            elif sid in self.gateway.connections:
                await self.gateway.sio.emit("live:uplink", payload, to=sid)

    async def _gone_worker(self) -> None:
        while True:
            live_id, reason, sid = await self._gone.get()
            hosted = self._by_live.get(live_id)
            if hosted is None:
                room = self.remote.get(live_id)
                if room is not None:
                    await self._remote_gone(room, reason, sid)
                continue
            if not isinstance(sid, str | None):
                continue
            try:
                if sid is None:
                    self._begin_grace(hosted)
                    continue
                sid = hosted.sid_of(sid)  # the media room names the viewer by its media id
                if sid in hosted.viewers:
                    await self._forget_viewer(hosted, sid)
                    await self.gateway.sio.emit("room:left", {"live_id": live_id,
                                                             "reason": reason}, to=sid)
            except Exception:
                log.exception("handling a gone peer failed")

    async def _remote_gone(self, room: RemoteLive, reason: str,
                           what: str | RelayClient | None) -> None:
        """An edge room's report: its relay ended, or one of its viewers' media."""
        try:
            if isinstance(what, RelayClient):
                await self._edge_ended(room, what, reason)
            elif isinstance(what, str) and what in room.viewers:
                await self._forget_remote_viewer(room, what)
                await self.gateway.sio.emit("room:left", {"live_id": room.live.live_id,
                                                         "reason": reason}, to=what)
        except Exception:
            log.exception("handling a gone edge peer failed")

    # --- pushes and overlays ------------------------------------------------

    async def directory(self, limit: int = 50) -> list[dict[str, Any]]:
        """Discover: live rooms, most viewers first, with their creators."""
        return await self.pushes.directory(limit)

    def add_overlay(self, creator_id: str, overlay: Overlay) -> bool:
        """Burn an overlay into a hosted live's video (gifts use this)."""
        hosted = self.hosted.get(creator_id)
        if hosted is None:
            return False
        hosted.media.add_overlay(overlay)
        return True

    # --- events --------------------------------------------------------------

    def _add_events(self) -> None:
        gateway = self.gateway

        @gateway.event("live:start", LiveStart)
        async def live_start(ctx: EventContext, p: LiveStart) -> dict[str, Any]:
            return await self.start(ctx.conn, p.title, p.offer,
                                    signed_in_only=p.signed_in_only, resume_of=p.resume_of,
                                    record=p.record)

        @gateway.event("live:end", Empty)
        async def live_end(ctx: EventContext, _: Empty) -> dict[str, Any]:
            if not await self.end(ctx.user_id, "ended_by_creator"):
                raise not_found("you are not live")
            return {}

        @gateway.event("live:title", LiveTitle)
        async def live_title(ctx: EventContext, p: LiveTitle) -> dict[str, Any]:
            """The creator renames their running live: viewers, the profile page and
            Discover see the new title at once (live:title to the room and watchers)."""
            return await self.retitle(ctx.user_id, p.title)

        @gateway.event("rtc:config", Empty)
        async def rtc_config(ctx: EventContext, _: Empty) -> dict[str, Any]:
            """The ICE servers (a fresh TURN credential for this user) and transport policy,
            asked by the studio before its first offer: live:start's offer is made before
            its ack could name them. Signed-in users only (not in ANONYMOUS_EVENTS): a
            visitor's credential comes with the join that needs it."""
            return self.client_ice.for_client(ctx.user_id)

        @gateway.event("room:join", RoomJoin)
        async def room_join(ctx: EventContext, p: RoomJoin) -> dict[str, Any]:
            return await self.join(ctx.conn, p.user_id, media=p.media, quality=p.quality)

        # The events whose handler only hands the caller's socket and the payload's fields
        # to one method (its docstring says what the event does).
        for name, schema, method, fields in (
                ("room:quality", RoomQuality, self.set_quality, ("live_id", "quality")),
                ("rtc:answer", RtcAnswer, self.answer, ("live_id", "sdp")),
                ("rtc:restart", RtcRestart, self.restart_viewer, ("live_id",)),
                ("room:resume", RoomResume, self.resume, ("live_id", "token")),
                ("live:restart", LiveRestart, self.restart_publisher, ("offer",))):
            gateway.event(name, schema)(_with_socket(method, fields))

        @gateway.event("room:leave", RoomLeave)
        async def room_leave(ctx: EventContext, p: RoomLeave) -> dict[str, Any]:
            if not await self.leave(ctx.conn, p.live_id):
                raise not_found("you are not watching this live")
            return {}

        @gateway.event("live:watch", LiveWatch)
        async def live_watch(ctx: EventContext, p: LiveWatch) -> dict[str, Any]:
            """Follow one creator's live state (their profile page); answers the current one."""
            await self.services.accounts.get(p.user_id)
            if p.user_id != ctx.user_id and not ctx.conn.anonymous:
                await self.services.graph.check_may_interact(ctx.user_id, p.user_id, "watch")
            await gateway.sio.enter_room(ctx.conn.sid, watch_room(p.user_id))
            live = await self.services.lives.current(p.user_id)
            viewers = await self.services.lives.viewer_count(live) if live else 0
            if live is None:
                return {"live": None, "viewers": 0}
            # what publishes it: the creator's own studio runs an encoder's live
            return {"live": live.as_dict(), "viewers": viewers,
                    "via": self.publisher_via(p.user_id)}

        @gateway.event("discover:watch", Empty)
        async def discover_watch(ctx: EventContext, _: Empty) -> dict[str, Any]:
            await gateway.sio.enter_room(ctx.conn.sid, DISCOVER_ROOM)
            return {"lives": await self.directory()}

        gateway.disconnect_listeners.append(self.on_disconnect)



def _with_socket(method: Callable[..., Awaitable[dict[str, Any]]], fields: tuple[str, ...]
                 ) -> Callable[[EventContext, Any], Awaitable[dict[str, Any]]]:
    """An event handler that answers `method(caller's connection, *the payload's fields)`."""
    async def handler(ctx: EventContext, payload: Any) -> dict[str, Any]:
        return await method(ctx.conn, *(getattr(payload, name) for name in fields))
    return handler


def _answered(ack: dict[str, Any], client_offer: str | None) -> dict[str, Any]:
    """A join's ack; for a viewer that sent its own offer, its SDP is `answer`."""
    if client_offer is not None:
        ack["answer"] = ack.pop("offer")
    return ack


def _quality(media: MediaRoom, sid: str) -> dict[str, Any]:
    """What a viewer's join and room:quality acks say of its video: the room's renditions
    (best first), `quality` (auto or the pinned height), `rendition` (what it gets now)
    and `switching_to` (the rendition whose keyframe it waits for, or None)."""
    return {"renditions": [rung.name for rung in media.ladder], **media.viewer_quality(sid)}
