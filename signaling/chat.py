"""Live chat at the edge: the chat:* events, and the feed that delivers each live's
stream to its Socket.IO room.

Order. python-socketio runs every event in its own task, so two messages
emitted right after their XADDs could reach the room in either order. Here
nothing is emitted by the task that wrote: the writer only wakes the feed. The
feed (one task per node, owned by LiveChat) reads each room's stream after the
id it delivered last (XREAD, many rooms in one call) and pushes what it finds,
so the room's order is the stream's order by construction, the same order
that history and catch-up read.

Batching. After a push the feed waits BATCH_WINDOW_S before its next read (one
cadence for all rooms of the node), so a busy room gets one `chat:messages`
push with a list every 25 ms instead of one push per line; a quiet room's line
goes out at once. Each push is encoded once and the same websocket frame
written to every member (signaling/frames.py), so a room of 1,000 costs at
most 40 x 1,000 frame writes a second whatever its message rate.

Measured on this 2-core host with a throwaway load script (bench/ is to
reproduce it): the server pinned to one core; 1,000 raw Engine.IO websocket
clients, their senders and Redis on the other; latency from send to receipt
as the clients saw it; one room of 1,000:
  20 lines/s  (20k deliveries/s):  23% of a core, p50 5 ms, p99 20 ms
  100 lines/s (100k deliveries/s): 40% of a core, p50 19 ms, p99 53 ms
  300 lines/s (308k deliveries/s): 52% of a core, p50 33 ms, p99 171 ms
  python-socketio's own room emit at 20 lines/s: 95% of a core, p50 45 ms,
  p99 172 ms (58 us per frame written, against ~9 us here).
  Memory: ~39 kB of server RSS per connected client.

Gaps. Each push carries `prev`, the id the feed delivered before this batch.
A client whose last id is older than `prev` (it was skipped as a slow reader,
or reconnected) asks chat:history {after: its last id} and gets exactly the
lines it missed; lines it already has (id <= its last) it drops.

Socket.IO rooms: live:{live_id} (LiveRooms puts the creator's publishing
connection and every viewer there; chat:history adds the caller's connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from engine.chat_rules import check_may_moderate
from engine.errors import not_found
from engine.lives import Live
from signaling.errors import UNAVAILABLE_CAUSES
from signaling.feature import Feature
from signaling.frames import Delivery, FrameWriter
from signaling.gateway import Connection, EventContext, Gateway, user_room
from signaling.live_rooms import LiveRooms, live_room
from signaling.push_bus import CHAT_WRITTEN, LEAVE_USER
from signaling.schemas import (
    ChatDelete,
    ChatHistory,
    ChatMute,
    ChatSend,
    ChatSettingsUpdate,
    ChatTarget,
    CreatorScope,
    ModeratorSet,
)
from signaling.services import Services
from signaling.tasks import OwnedTask

log = logging.getLogger("golive.chat")

# At most 40 pushes a second per room. 50 ms cost a 20-lines/s room 30 ms of p50
# for nothing; 0 (no window) let 100 lines/s become 28k frames/s and p99 530 ms.
BATCH_WINDOW_S = 0.025
POLL_S = 1.0            # also read every room this often: lines written by other nodes
BATCH_MAX = 500         # lines per room per push; more waits for the next window
# "NAME joined" lines reach a room at most 4 times a second: a storm of 50 joins/s into
# a room of 200 was ~40 pushes/s x 200 sockets (~9 us a frame written: ~7% of a core).
JOINED_WINDOW_S = 0.25


def joined_push_at(now: float, last_push: float | None, window_s: float) -> float:
    """When a room's "joined" lines written now go out: at once when the room's last
    such push is at least `window_s` old, else `window_s` after it (one push carries
    every line written meanwhile)."""
    return now if last_push is None else max(now, last_push + window_s)


class JoinedLines:
    """Coalesces the "joined" lines' pushes per room (JOINED_WINDOW_S); one owned task.

    `mark(live_id)` after a line is written; `push(live_id)` (LiveChat.written) runs at
    joined_push_at(). Lines written meanwhile by chat:send go out with that send's push."""

    def __init__(self, push: Callable[[str], Awaitable[None]],
                 window_s: float = JOINED_WINDOW_S) -> None:
        self.push = push
        self.window_s = window_s
        self._due: dict[str, float] = {}  # live id -> when its push goes out
        self._last: dict[str, float] = {}  # live id -> its last push (within window_s)
        self._wake = asyncio.Event()
        self._runner = OwnedTask(self._run, "chat-joined-lines")
        self.pushes = 0

    def open(self) -> None:
        self._runner.start()

    async def close(self) -> None:
        """Stop the task; idempotent. Pushes not made yet are left to the feed's poll."""
        await self._runner.stop()

    def mark(self, live_id: str) -> None:
        if live_id not in self._due:
            now = asyncio.get_running_loop().time()
            self._due[live_id] = joined_push_at(now, self._last.get(live_id), self.window_s)
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            for live_id in [k for k, t in self._last.items() if now - t >= self.window_s]:
                del self._last[live_id]  # bounded by the rooms pushed within the window
            due = [live_id for live_id, at in self._due.items() if at <= now]
            for live_id in due:
                del self._due[live_id]
                self._last[live_id] = now
                self.pushes += 1
                try:
                    await self.push(live_id)
                except Exception:
                    log.exception("joined line push failed")
            self._wake.clear()
            wait = min(self._due.values(), default=now + 3600) - loop.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()


class ChatFeed:
    """Delivers each watched live's chat stream to its room, in order and in batches.

    A room is watched from the first chat:history, send or join on this node; its
    cursor is the id delivered last. Rooms with no local sockets are dropped at the
    next poll. One task (run) owns the reads and the pushes.
    """

    def __init__(self, gateway: Gateway, services: Services, writer: FrameWriter, *,
                 window_s: float = BATCH_WINDOW_S, poll_s: float = POLL_S,
                 batch_max: int = BATCH_MAX) -> None:
        self.gateway = gateway
        self.services = services
        self.writer = writer
        self.window_s = window_s
        self.poll_s = poll_s
        self.batch_max = batch_max
        self.cursors: dict[str, str] = {}
        self._starting: dict[str, asyncio.Future[None]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._runner = OwnedTask(self._run, "chat-feed")
        self.totals = Delivery()
        self.pushes = 0

    # --- lifetime ----------------------------------------------------------------

    def open(self) -> None:
        self._runner.start()

    async def close(self) -> None:
        """Stop the feed task; idempotent."""
        await self._runner.stop()

    # --- rooms ---------------------------------------------------------------------

    async def watch(self, live_id: str) -> None:
        """Start delivering a live's chat from its newest line, unless already watched.

        Callers watch before they write (a send, a system line), so no line of this
        node is ever written before its room has a cursor."""
        while live_id not in self.cursors:
            pending = self._starting.get(live_id)
            if pending is not None:
                await asyncio.shield(pending)
                continue
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._starting[live_id] = future
            try:
                newest = await self.services.chat.newest_id(live_id)
                self.cursors.setdefault(live_id, newest)
            finally:
                del self._starting[live_id]
                future.set_result(None)

    def poke(self, live_id: str) -> None:
        """A line was written: deliver it with the next batch."""
        if live_id in self.cursors:
            self._dirty.add(live_id)
            self._wake.set()

    def _prune(self) -> None:
        rooms = self.gateway.sio.manager.rooms.get("/", {})
        for live_id in list(self.cursors):
            if not rooms.get(live_room(live_id)):
                del self.cursors[live_id]
                self._dirty.discard(live_id)

    # --- the feed --------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + self.poll_s
        while True:
            # Woken by a local write, or at the poll time even under constant traffic.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                    await self._wake.wait()
            self._wake.clear()
            if loop.time() >= next_poll:
                self._prune()
                self._dirty.update(self.cursors)
                next_poll = loop.time() + self.poll_s
            try:
                await self.flush()
            except UNAVAILABLE_CAUSES as exc:
                # Redis restarting or paused (`golive chaos` does both): expected, retried,
                # so one line without a traceback. The cursors did not move: the next
                # poll reads the same lines again.
                log.warning("chat delivery waits for Redis; retrying", extra={"fields": {
                    "cause": f"{type(exc).__name__}: {exc}"[:200]}})
            except Exception:
                log.exception("chat delivery failed")
            await asyncio.sleep(self.window_s)

    async def flush(self) -> None:
        """Read every dirty room after its cursor and push what is new."""
        dirty, self._dirty = self._dirty, set()
        cursors = {live: self.cursors[live] for live in dirty if live in self.cursors}
        if not cursors:
            return
        found = await self.services.chat.read_many(cursors, self.batch_max)
        for live_id, items in found.items():
            if not items or self.cursors.get(live_id) != cursors[live_id]:
                continue  # dropped (or re-watched) while reading
            self.cursors[live_id] = items[-1].id
            if len(items) >= self.batch_max:
                self._dirty.add(live_id)
                self._wake.set()
            frame = self.writer.encode("chat:messages", {
                "live_id": live_id, "prev": cursors[live_id],
                "items": [item.as_dict() for item in items]})
            self.totals.add(await self.writer.send(live_room(live_id), frame))
            self.pushes += 1


class LiveChat(Feature):
    """The chat:* events over the engine's Chat, and the feed that delivers them.

    `writer` is the server's one FrameWriter (gifts push through it too)."""

    def __init__(self, gateway: Gateway, services: Services, lives: LiveRooms,
                 writer: FrameWriter) -> None:
        super().__init__(after=[lives])
        self.gateway = gateway
        self.services = services
        self.lives = lives
        self.feed = ChatFeed(gateway, services, writer)
        self.joined_lines = JoinedLines(self.written)
        self._add_events()

    async def on_open(self) -> None:
        self.feed.open()
        self.joined_lines.open()

    async def on_close(self) -> None:
        await self.joined_lines.close()
        await self.feed.close()

    async def written(self, live_id: str) -> None:
        """A line was written to the live's stream: this node's feed delivers it with its
        next batch, and every node with members in the room is told to read it too
        (each node reads the stream for its own sockets, so each socket gets each line
        once; without the word it would be read at the next poll, POLL_S)."""
        self.feed.poke(live_id)
        if self.gateway.bus is not None:
            await self.gateway.bus.control(live_room(live_id), CHAT_WRITTEN, live_id)

    def live(self, live_id: str) -> Live:
        live = self.lives.member_live(live_id)
        if live is None:
            raise not_found("this live has ended (or is not on this server)")
        return live

    async def on_viewer_joined(self, live: Live, conn: Connection) -> None:
        """A new viewer: the "NAME joined" line, once per user per few minutes; its push
        is coalesced with the room's other joins (JoinedLines)."""
        account = await self.services.accounts.get(conn.user_id)
        await self.feed.watch(live.live_id)
        if await self.services.chat.joined(live, account) is not None:
            self.joined_lines.mark(live.live_id)

    async def on_anonymous_joined(self, live: Live, conn: Connection) -> None:
        """A signed-out viewer: no "joined" line, but this node follows the live's chat."""
        await self.feed.watch(live.live_id)

    async def subscribe(self, conn: Connection, live: Live) -> None:
        """Put this connection in the live's room (viewers are there from room:join)."""
        await self.gateway.sio.enter_room(conn.sid, live_room(live.live_id))
        await self.feed.watch(live.live_id)

    async def kick(self, live_id: str, user_id: str, reason: str = "banned") -> None:
        """A ban or a block: every connection of the user, on every node, leaves the live
        and its chat (`room:left` with `reason`)."""
        if self.gateway.bus is not None:
            body = user_id if reason == "banned" else f"{user_id} {reason}"
            await self.gateway.bus.control(live_room(live_id), LEAVE_USER, body)
        else:
            await self.kick_local(live_room(live_id), user_id, reason)

    async def blocked(self, actor_id: str, target_id: str) -> None:
        """`actor_id` blocked `target_id`: neither stays in the other's live. room:join
        refuses a block either way; this removes who joined before it."""
        for creator_id, member_id in ((actor_id, target_id), (target_id, actor_id)):
            live = await self.services.lives.current(creator_id)
            if live is not None:
                await self.kick(live.live_id, member_id, "blocked")

    async def kick_local(self, room: str, user_id: str, reason: str = "banned") -> None:
        """The kick on this node: the user's connections leave the live `room`."""
        live_id = room.split(":", 1)[1]
        await self.lives.remove_user(live_id, user_id, reason)
        for sid, _ in list(self.gateway.sio.manager.get_participants("/", room)):
            conn = self.gateway.connections.get(sid)
            if conn is not None and conn.user_id == user_id:
                await self.gateway.sio.leave_room(sid, room)

    async def view(self, live: Live, user_id: str) -> dict[str, Any]:
        """Settings and the reader's own standing, for the chat panel."""
        chat = self.services.chat
        settings = await chat.settings(live.creator_id)
        is_creator = user_id == live.creator_id
        return {"settings": settings.as_dict() if is_creator else settings.public(),
                "you": {"creator": is_creator,
                        "moderator": not is_creator and await chat.is_moderator(
                            live.creator_id, user_id),
                        "muted_until": await chat.muted_until(live.creator_id, user_id)}}

    async def moderated(self, creator_id: str, actor_id: str, action: str,
                        user_id: str) -> None:
        """Tell the creator's tabs (their studio's lists) what was done in their chats,
        by them or by a moderator."""
        await self.gateway.push("chat:moderated", {
            "creator_id": creator_id, "action": action, "user_id": user_id, "by": actor_id},
            to=user_room(creator_id))

    async def users(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Public accounts by id ({id, username, display_name}), for the studio's lists."""
        found = await self.services.accounts.get_many(user_ids)
        return {uid: {"id": a.id, "username": a.username, "display_name": a.display_name}
                for uid, a in found.items()}

    # --- events ------------------------------------------------------------------------

    def _add_events(self) -> None:
        gateway = self.gateway
        self.lives.join_listeners.append(self.on_viewer_joined)
        self.lives.anonymous_join_listeners.append(self.on_anonymous_joined)

        @gateway.event("chat:send", ChatSend)
        async def chat_send(ctx: EventContext, p: ChatSend) -> dict[str, Any]:
            live = self.live(p.live_id)
            account = await ctx.services.accounts.get(ctx.user_id)
            await self.feed.watch(live.live_id)
            item = await ctx.services.chat.send(live, account, p.text)
            await self.written(live.live_id)
            return {"message": item.as_dict()}

        @gateway.event("chat:history", ChatHistory)
        async def chat_history(ctx: EventContext, p: ChatHistory) -> dict[str, Any]:
            live = self.live(p.live_id)
            await ctx.services.chat.check_may_read(live, ctx.user_id)
            await self.subscribe(ctx.conn, live)
            page = await ctx.services.chat.read(live.live_id, after=p.after, limit=p.limit)
            return {"live_id": live.live_id, **page.as_dict(),
                    **await self.view(live, ctx.user_id)}

        @gateway.event("chat:delete", ChatDelete)
        async def chat_delete(ctx: EventContext, p: ChatDelete) -> dict[str, Any]:
            live = self.live(p.live_id)
            await self.feed.watch(live.live_id)
            tomb = await ctx.services.chat.delete(live, ctx.user_id, p.message_id)
            await self.written(live.live_id)
            return {"deleted": str(p.message_id), "id": tomb.id}

        @gateway.event("chat:mute", ChatMute)
        async def chat_mute(ctx: EventContext, p: ChatMute) -> dict[str, Any]:
            creator = p.creator_id or ctx.user_id
            await ctx.services.accounts.get(p.user_id)
            until = await ctx.services.chat.mute(creator, p.user_id, p.seconds,
                                                 actor_id=ctx.user_id)
            await gateway.push("chat:muted", {"creator_id": creator, "until": until},
                               to=user_room(p.user_id))
            await self.moderated(creator, ctx.user_id, "mute", p.user_id)
            return {"user_id": p.user_id, "until": until}

        @gateway.event("chat:unmute", ChatTarget)
        async def chat_unmute(ctx: EventContext, p: ChatTarget) -> dict[str, Any]:
            creator = p.creator_id or ctx.user_id
            await ctx.services.accounts.get(p.user_id)
            await ctx.services.chat.unmute(creator, p.user_id, actor_id=ctx.user_id)
            await gateway.push("chat:muted", {"creator_id": creator, "until": 0},
                               to=user_room(p.user_id))
            await self.moderated(creator, ctx.user_id, "unmute", p.user_id)
            return {"user_id": p.user_id}

        @gateway.event("chat:ban", ChatTarget)
        async def chat_ban(ctx: EventContext, p: ChatTarget) -> dict[str, Any]:
            creator = p.creator_id or ctx.user_id
            await ctx.services.accounts.get(p.user_id)
            was_moderator = await ctx.services.chat.is_moderator(creator, p.user_id)
            await ctx.services.chat.ban(creator, p.user_id, actor_id=ctx.user_id)
            current = await ctx.services.lives.current(creator)
            if current is not None:
                await self.kick(current.live_id, p.user_id)
            await gateway.push("chat:banned", {
                "creator_id": creator,
                "live_id": current.live_id if current else None}, to=user_room(p.user_id))
            if was_moderator:  # only the creator bans a moderator, and it ends the role
                await gateway.push("chat:moderator", {"creator_id": creator,
                                                      "moderator": False},
                                   to=user_room(p.user_id))
            await self.moderated(creator, ctx.user_id, "ban", p.user_id)
            return {"user_id": p.user_id}

        @gateway.event("chat:unban", ChatTarget)
        async def chat_unban(ctx: EventContext, p: ChatTarget) -> dict[str, Any]:
            creator = p.creator_id or ctx.user_id
            await ctx.services.accounts.get(p.user_id)
            await ctx.services.chat.unban(creator, p.user_id, actor_id=ctx.user_id)
            await self.moderated(creator, ctx.user_id, "unban", p.user_id)
            return {"user_id": p.user_id}

        @gateway.event("chat:restricted", CreatorScope)
        async def chat_restricted(ctx: EventContext, p: CreatorScope) -> dict[str, Any]:
            """Who is banned or muted in a creator's chats (the creator and moderators)."""
            creator = p.creator_id or ctx.user_id
            chat = ctx.services.chat
            check_may_moderate(ctx.user_id, creator,
                               moderators=await chat.moderators(creator))
            standing = await chat.restricted(creator)
            users = await self.users([s.user_id for s in standing])
            return {"creator_id": creator, "users": [
                {"user": users[s.user_id], "banned": s.banned, "muted_until": s.muted_until}
                for s in standing if s.user_id in users]}

        @gateway.event("chat:moderators", CreatorScope)
        async def chat_moderators(ctx: EventContext, p: CreatorScope) -> dict[str, Any]:
            """A creator's moderators (the creator and the moderators may ask)."""
            creator = p.creator_id or ctx.user_id
            moderators = await ctx.services.chat.moderators(creator)
            check_may_moderate(ctx.user_id, creator, moderators=moderators)
            users = await self.users(sorted(moderators))
            return {"creator_id": creator,
                    "moderators": sorted(users.values(), key=lambda u: u["username"])}

        @gateway.event("chat:moderator", ModeratorSet)
        async def chat_moderator(ctx: EventContext, p: ModeratorSet) -> dict[str, Any]:
            """The creator appoints (on) or dismisses (off) a moderator of their chats."""
            await ctx.services.accounts.get(p.user_id)
            chat = ctx.services.chat
            if p.on:
                await chat.appoint(ctx.user_id, ctx.user_id, p.user_id)
            else:
                await chat.dismiss(ctx.user_id, ctx.user_id, p.user_id)
            await gateway.push("chat:moderator", {"creator_id": ctx.user_id,
                                                  "moderator": p.on},
                               to=user_room(p.user_id))
            return {"user_id": p.user_id, "moderator": p.on}

        @gateway.event("chat:settings", ChatSettingsUpdate)
        async def chat_settings(ctx: EventContext, p: ChatSettingsUpdate) -> dict[str, Any]:
            chat = ctx.services.chat
            before = await chat.settings(ctx.user_id)
            settings = await chat.update_settings(ctx.user_id, slow_mode_s=p.slow_mode,
                                                  filter_words=p.filter_words)
            current = await ctx.services.lives.current(ctx.user_id)
            if current is not None and settings.slow_mode_s != before.slow_mode_s:
                await gateway.push("chat:settings", {
                    "live_id": current.live_id, **settings.public()},
                    to=live_room(current.live_id))
            return {"settings": settings.as_dict()}


CHAT = web.AppKey("chat", LiveChat)

__all__ = ["CHAT", "ChatFeed", "LiveChat"]
