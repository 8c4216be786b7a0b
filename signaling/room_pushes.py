"""Coalesced pushes about a node's live rooms: viewer counts and the Discover list.

A join or leave marks its live (`viewers_changed`); a start or end marks Discover
(`discover_changed`); a viewer's video moving to another rendition marks that viewer
(`rendition_changed`). One owned task pushes what was marked every PUSH_PERIOD_S, so a
live gets at most 2 `room:state` pushes a second however fast viewers come and go, the
Discover page one `discover:update` for all lives, and a viewer at most 2
`room:rendition` (the latest). Socket.IO rooms used:
  live:{live_id}      the creator and every viewer (room:state, live:ended)
  watch:{creator_id}  pages showing that creator (live:started, live:ended)
  discover            the Discover page (discover:update)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from engine.lives import Live
from signaling.gateway import Gateway
from signaling.services import Services
from signaling.tasks import OwnedTask, every

log = logging.getLogger("golive.lives")

PUSH_PERIOD_S = 0.5  # viewer counts and Discover are coalesced: at most 2 pushes/s per live
DISCOVER_ROOM = "discover"


def live_room(live_id: str) -> str:
    return f"live:{live_id}"


def watch_room(creator_id: str) -> str:
    return f"watch:{creator_id}"


class RoomPushes:
    """The marks and the one task that pushes them; `live_of` finds a live hosted here."""

    def __init__(self, gateway: Gateway, services: Services,
                 live_of: Callable[[str], Live | None]) -> None:
        self.gateway = gateway
        self.services = services
        self.live_of = live_of
        self._dirty: set[str] = set()  # live ids whose viewer count changed
        self._discover_dirty = False
        # sid -> its latest `room:rendition` payload (one per viewer connection: bounded
        # by the viewers of this node's lives)
        self._renditions: dict[str, dict[str, Any]] = {}
        self._runner = OwnedTask(
            functools.partial(every, PUSH_PERIOD_S, self.push_once, log, "room state push failed"),
            "live-pushes")

    def open(self) -> None:
        self._runner.start()

    async def close(self) -> None:
        """Stop the task; idempotent. Marks not pushed yet are dropped."""
        await self._runner.stop()

    def viewers_changed(self, live_id: str) -> None:
        """A viewer joined or left: push the live's count, and Discover, next period."""
        self._dirty.add(live_id)
        self._discover_dirty = True

    def rendition_changed(self, sid: str, live_id: str, quality: dict[str, Any]) -> None:
        """A viewer's video now comes at another rendition (media's on_viewer_rendition):
        `room:rendition {live_id, quality, rendition, height}` to that connection, next
        period."""
        self._renditions[sid] = {"live_id": live_id, "quality": quality.get("quality"),
                                 "rendition": quality.get("rendition"),
                                 "height": quality.get("height")}

    def discover_changed(self) -> None:
        """A live started or ended here: push Discover next period."""
        self._discover_dirty = True

    async def announce_start(self, live: Live, via: str = "studio") -> None:
        """`live:started` to the pages watching the creator, at once; `via` says what
        publishes it ("studio" or "whip": the creator's studio shows a WHIP live)."""
        account = await self.services.accounts.get(live.creator_id)
        await self.gateway.push("live:started", {"live": live.as_dict(),
                                                     "creator": account.public(), "via": via},
                                    to=watch_room(live.creator_id))
        self.discover_changed()

    async def directory(self, limit: int = 50) -> list[dict[str, Any]]:
        """Discover: live rooms, most viewers first, with their creators."""
        lives = await self.services.lives.directory(limit=limit)
        creators = await self.services.accounts.get_many([live.creator_id for live, _ in lives])
        return [{**live.as_dict(), "viewers": viewers,
                 "creator": creators[live.creator_id].public()}
                for live, viewers in lives if live.creator_id in creators]

    async def push_once(self) -> None:
        """Push every marked live's count, each marked viewer's rendition, then Discover
        if marked."""
        renditions, self._renditions = self._renditions, {}
        for sid, payload in renditions.items():
            # the viewer's socket is on this node (its media is): no bus needed
            await self.gateway.sio.emit("room:rendition", payload, to=sid)
        dirty, self._dirty = self._dirty, set()
        for live_id in dirty:
            live = self.live_of(live_id)
            if live is None:
                continue
            count = await self.services.lives.viewer_count(live)
            await self.gateway.push("room:state", {"live_id": live_id, "viewers": count},
                                        to=live_room(live_id))
        if self._discover_dirty:
            self._discover_dirty = False
            await self.gateway.push("discover:update", {"lives": await self.directory()},
                                        to=DISCOVER_ROOM)


__all__ = ["DISCOVER_ROOM", "PUSH_PERIOD_S", "RoomPushes", "live_room", "watch_room"]
