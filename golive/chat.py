"""Keeping a live's chat exact, as docs/protocol.md ("Keeping the chat exact") says and the
profile page does: hold `chat:messages` pushes while `chat:history` answers, apply each
batch whose `prev` we have shown, and on a gap (or after a reconnect) ask
`chat:history {after: last}` page by page. A line is shown once and none is skipped.

ChatCatchUp is the rule alone, over a `fetch(after)` that asks one history page: the
client (golive.client.LiveChat), the failover bench's viewers and the chaos run's members
all use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

# Batches held while a catch-up runs; past it they are dropped, and the next batch's `prev`
# shows the gap (a catch-up of 1,000 batches means the connection is far behind anyway).
HELD_BATCHES = 1000

Fetch = Callable[[str | None], Awaitable[dict[str, Any]]]
"""One `chat:history` page after an id (None: the newest page); its `{ok: true, ...}`
answer (an error raises)."""


def chat_id(item_id: str) -> tuple[int, int]:
    """A chat (or DM) id "ms-seq" as numbers, for ordering (web/static/chat-order.js)."""
    ms, _, seq = str(item_id).partition("-")
    return int(ms), int(seq or 0)


class ChatCatchUp:
    """The lines of one live shown so far (`items`, each once, in the room's order) and the
    counts a test reads: `duplicates` (lines delivered again, dropped), `caught_up` (lines
    that came through a catch-up after a gap), `catch_ups` (how many ran)."""

    def __init__(self, live_id: str | None = None, *, held_max: int = HELD_BATCHES) -> None:
        self.live_id = live_id
        self.items: list[dict[str, Any]] = []
        self.last: str | None = None
        self.duplicates = 0
        self.caught_up = 0
        self.catch_ups = 0
        self.held_max = held_max
        self._held: list[dict[str, Any]] | None = None

    def texts(self) -> list[str]:
        """The text of every message line shown (system lines left out)."""
        return [str(item.get("text")) for item in self.items if item.get("kind") == "message"]

    def is_new(self, item: dict[str, Any]) -> bool:
        return self.last is None or chat_id(item["id"]) > chat_id(self.last)

    def apply(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Show the items newer than `last`, in order; the ones shown."""
        shown = []
        for item in items:
            if not self.is_new(item):
                self.duplicates += 1
                continue
            self.last = item["id"]
            self.items.append(item)
            shown.append(item)
        return shown

    async def catch_up(self, fetch: Fetch) -> list[dict[str, Any]]:
        """`chat:history` after the last line shown until `more` is false, then the batches
        that arrived meanwhile; the lines shown."""
        self._held = []
        self.catch_ups += 1
        shown: list[dict[str, Any]] = []
        try:
            while True:
                before = self.last
                reply = await fetch(self.last)
                page = self.apply(list(reply.get("items", ())))
                if before is not None:
                    self.caught_up += len(page)
                shown += page
                if not reply.get("more") or not reply.get("items"):
                    break
        finally:
            held, self._held = self._held, None
        for batch in held:
            shown += await self.on_batch(batch, fetch)
        return shown

    async def on_batch(self, batch: dict[str, Any], fetch: Fetch) -> list[dict[str, Any]]:
        """A `chat:messages` push: held during a catch-up, a catch-up when its `prev` is
        past our last line, else applied. The lines shown."""
        if batch.get("live_id") != self.live_id:
            return []
        if self._held is not None:
            if len(self._held) < self.held_max:
                self._held.append(batch)
            return []
        prev = batch.get("prev")
        if prev and self.last is not None and chat_id(prev) > chat_id(self.last):
            return await self.catch_up(fetch)
        return self.apply(list(batch.get("items", ())))


__all__ = ["HELD_BATCHES", "ChatCatchUp", "Fetch", "chat_id"]
