"""The one shape of a server feature: built with what it needs, then opened and closed.

A feature (live rooms, chat, gifts, direct messages...) is constructed with its
dependencies: the gateway, the engine's services and the other features it calls.
Its Socket.IO events are added to the gateway as it is built, so the event table is
complete before anything starts. signaling/server.py builds every feature once and
owns their lifetimes: it opens them in order once Redis answers and closes them in
reverse on shutdown.

`after` names the features this one needs open before it opens (the chat feed
delivers the rooms that live rooms hold; nudges wake the fan-out worker): opening it
earlier raises StartOrderError at start instead of running half-wired.
"""

from __future__ import annotations

from collections.abc import Iterable


class StartOrderError(RuntimeError):
    """A feature was opened before a feature it needs (a wiring bug in the server)."""


class Feature:
    """Base of every feature: `open()` and `close()` are owned by the Server.

    Subclasses put their owned work (tasks) in `on_open` and `on_close`; `on_close` must be
    idempotent, since a shutdown may close a feature early (live rooms end their lives
    while sockets are still open) and again when the server closes."""

    def __init__(self, *, after: Iterable[Feature] = ()) -> None:
        self.after = tuple(after)
        self.is_open = False

    async def open(self) -> None:
        """Start the feature's owned work; StartOrderError if a feature it needs is closed."""
        late = [type(f).__name__ for f in self.after if not f.is_open]
        if late:
            raise StartOrderError(
                f"{type(self).__name__} opened before {', '.join(late)}, which it needs")
        await self.on_open()
        self.is_open = True

    async def close(self) -> None:
        """Stop the feature's owned work; idempotent."""
        self.is_open = False
        await self.on_close()

    async def on_open(self) -> None:
        """Begin owned work (tasks); nothing by default."""

    async def on_close(self) -> None:
        """End owned work, awaiting every task; idempotent; nothing by default."""
