"""The audience of a live at the edge: likes (`live:like`, the coalesced `live:likes`
push) and the viewer list (`room:viewers`, top gifters first).

A like is a tap on the video; the browser sends its taps in batches (engine/likes.py
bounds a batch), and each connection may send LIKE events at `like_rate` a second
(burst 2x). The total is pushed to the live's room at most twice a second
(PUSH_PERIOD_S): a thousand viewers tapping make two pushes a second, not thousands.
Only signed-in viewers who joined the live count (anonymous sockets are refused at
the gateway: ANONYMOUS_EVENTS).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from engine import keys
from engine.audience import viewer_order
from engine.errors import not_found, rate_limited
from engine.likes import check_may_like, check_taps
from signaling.feature import Feature
from signaling.gateway import Connection, EventContext, Gateway
from signaling.live_rooms import LiveRooms
from signaling.ratelimit import TokenBucket
from signaling.room_pushes import PUSH_PERIOD_S, live_room
from signaling.schemas import LiveLike, RoomViewers
from signaling.services import Services
from signaling.tasks import OwnedTask, every

log = logging.getLogger("golive.audience")


class LiveAudience(Feature):
    """Likes and the viewer list of the lives this node serves."""

    def __init__(self, gateway: Gateway, services: Services, lives: LiveRooms,
                 like_rate: float) -> None:
        super().__init__(after=(lives,))
        self.gateway = gateway
        self.services = services
        self.lives = lives
        self.like_rate = like_rate
        self._buckets: dict[str, TokenBucket] = {}  # sid -> its like bucket
        self._dirty: set[str] = set()  # live ids whose like count changed
        self._runner = OwnedTask(
            functools.partial(every, PUSH_PERIOD_S, self.push_once, log, "like push failed"),
            "like-pushes")
        self._add_events()
        gateway.disconnect_listeners.append(self._forget)

    async def on_open(self) -> None:
        self._runner.start()

    async def on_close(self) -> None:
        await self._runner.stop()

    async def _forget(self, conn: Connection) -> None:
        self._buckets.pop(conn.sid, None)

    # --- likes -----------------------------------------------------------------------

    async def like(self, conn: Connection, live_id: str, taps: int) -> dict[str, Any]:
        """Count `taps` likes from a viewer of the live; the new total (pushed to the room
        within PUSH_PERIOD_S)."""
        taps = check_taps(taps)
        bucket = self._buckets.get(conn.sid)
        if bucket is None:
            bucket = self._buckets[conn.sid] = TokenBucket(self.like_rate,
                                                           max(1, int(self.like_rate * 2)))
        wait = bucket.take()
        if wait:
            raise rate_limited(wait)
        live = self.lives.member_live(live_id)
        if live is None:
            raise not_found("this live has ended (or is not on this server)")
        check_may_like(is_creator=conn.user_id == live.creator_id,
                       is_member=await self.services.likes.is_member(live_id, conn.user_id))
        total = await self.services.likes.add(live_id, taps)
        self._dirty.add(live_id)
        return {"likes": total}

    async def push_once(self) -> None:
        """`live:likes` {live_id, likes} to each live whose count changed."""
        dirty, self._dirty = self._dirty, set()
        for live_id in dirty:
            total = await self.services.likes.count(live_id)
            await self.gateway.push("live:likes", {"live_id": live_id, "likes": total},
                                    to=live_room(live_id))

    # --- the viewer list ---------------------------------------------------------------

    async def viewers(self, conn: Connection, live_id: str) -> dict[str, Any]:
        """The live's signed-in viewers, top gifters first, and how many are anonymous."""
        live = self.lives.member_live(live_id)
        if live is None:
            raise not_found("this live has ended (or is not on this server)")
        await self.services.chat.check_may_read(live, conn.user_id)
        redis = self.services.redis
        viewer_ids = [str(v) for v in await redis.hkeys(keys.live_viewers(live_id))]
        board = await self.services.gift_room.board(live_id, 100)
        gifted = {s.user_id: s.coins for s in board.top}
        ranked, anonymous = viewer_order(viewer_ids, gifted)
        accounts = await self.services.accounts.get_many([uid for uid, _ in ranked])
        return {"viewers": [{"user": accounts[uid].public(), "coins": coins}
                            for uid, coins in ranked if uid in accounts],
                "anonymous": anonymous, "count": len(viewer_ids)}

    def _add_events(self) -> None:
        @self.gateway.event("live:like", LiveLike)
        async def live_like(ctx: EventContext, p: LiveLike) -> dict[str, Any]:
            return await self.like(ctx.conn, p.live_id, p.count)

        @self.gateway.event("room:viewers", RoomViewers)
        async def room_viewers(ctx: EventContext, p: RoomViewers) -> dict[str, Any]:
            return await self.viewers(ctx.conn, p.live_id)


__all__ = ["LiveAudience"]
