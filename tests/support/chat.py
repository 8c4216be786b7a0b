"""Live chat members for the tests: a Socket.IO client that keeps the chat as a page
would (in order by id, gaps filled with chat:history), and an in-process app for them."""

from __future__ import annotations

import functools
from typing import Any

import socketio

from engine import stream_ids
from tests.support.peers import SocketPeer, User, open_tab

PUSHES = ("chat:messages", "chat:settings", "chat:muted", "chat:banned", "room:left",
          "live:ended")


class Member(SocketPeer):
    """A signed-in Socket.IO client that keeps the live chat as a page would: items in
    order by id, gaps detected through `prev` and filled with chat:history."""

    PUSHES = PUSHES

    def __init__(self, sio: socketio.AsyncClient, user: User) -> None:
        self.items: list[dict[str, Any]] = []   # everything received, in arrival order
        self.last = stream_ids.ZERO
        self.gaps = 0
        # Pushes that came before the first chat:history answer: kept until it arrives.
        self.early: list[dict[str, Any]] | None = []
        super().__init__(sio, user)

    def on_push(self, name: str, data: Any) -> None:
        if name == "chat:messages":
            self.take(data)

    def take(self, batch: dict[str, Any]) -> None:
        if self.early is not None:
            self.early.append(batch)
            return
        if stream_ids.newer(batch["prev"], self.last):
            self.gaps += 1  # a page would ask chat:history {after: last} now
            return
        self.apply(batch["items"])

    def apply(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            if stream_ids.newer(item["id"], self.last):
                self.items.append(item)
                self.last = item["id"]

    def texts(self) -> list[str]:
        return [i["text"] for i in self.items if i["kind"] == "message"]

    async def open_chat(self, live_id: str) -> dict[str, Any]:
        """What a page does on join: the last lines, then the pushes that came meanwhile
        and later, from after the history's last id."""
        self.early = []
        ack = await self.call("chat:history", {"live_id": live_id})
        assert ack["ok"], ack
        early, self.early = self.early, None
        self.items, self.last = list(ack["items"]), ack["last"]
        for batch in early:
            self.take(batch)
        return ack

    async def catch_up(self, live_id: str) -> list[dict[str, Any]]:
        """What a page does after a gap or a reconnect: exactly what it missed."""
        missed: list[dict[str, Any]] = []
        while True:
            ack = await self.call("chat:history", {"live_id": live_id, "after": self.last})
            assert ack["ok"], ack
            missed += ack["items"]
            self.apply(ack["items"])
            if not ack["more"]:
                return missed


member = functools.partial(open_tab, peer=Member)


async def join(viewer: Member, creator: Member) -> None:
    ack = await viewer.call("room:join", {"user_id": creator.user.id})
    assert ack["ok"], ack
