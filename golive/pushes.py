"""Typed pushes (docs/protocol.md, the "Pushes" tables): what `GoliveClient.pushes()` yields.

Each known event decodes to its msgspec Struct (`event` names it); fields the server adds
later are ignored, so an older client keeps working. Any other event is a `RawPush`, and
the client's own `Reconnected` says the connection came back (rooms joined again, chat
caught up).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class UserRef(msgspec.Struct, kw_only=True):
    id: str
    username: str = ""
    display_name: str = ""


class Live(msgspec.Struct, kw_only=True):
    live_id: str
    creator_id: str
    title: str = ""
    started_at: float = 0.0
    signed_in_only: bool = False


class ChatItem(msgspec.Struct, kw_only=True):
    """A chat line: kind `message`, `system` (`event: "joined"`) or `delete` (`target`)."""
    id: str
    kind: str
    at: float = 0.0
    user: UserRef | None = None
    text: str = ""
    event: str | None = None
    target: str | None = None


class Push(msgspec.Struct, kw_only=True):
    """A push from the server; `event` is its Socket.IO event name."""
    event: ClassVar[str] = ""


class ChatMessages(Push, kw_only=True):
    event: ClassVar[str] = "chat:messages"
    live_id: str
    prev: str | None = None
    items: list[ChatItem] = []


class GiftRef(msgspec.Struct, kw_only=True):
    id: str
    name: str = ""
    coins: int = 0
    icon: str = ""


class GiftReceived(Push, kw_only=True):
    event: ClassVar[str] = "gift:received"
    live_id: str
    transfer_id: str
    sender: UserRef
    gift: GiftRef
    count: int = 1
    combo: int = 1
    streak: str = ""
    coins: int = 0
    diamonds: int = 0
    seq: int = 0


class DmItem(msgspec.Struct, kw_only=True, rename={"sender": "from"}):
    id: str
    sender: str
    at: float = 0.0
    text: str = ""
    card: dict[str, Any] | None = None


class DmMessage(Push, kw_only=True):
    event: ClassVar[str] = "dm:message"
    conversation: dict[str, Any]
    message: DmItem


class Notification(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    at: float = 0.0
    read: bool = False
    text: str = ""
    link: str | None = None
    data: dict[str, Any] = {}


class NotifyNew(Push, kw_only=True):
    event: ClassVar[str] = "notify:new"
    notification: Notification
    alert: str = ""
    merged: bool = False
    unread: int = 0


class NudgeWaiting(Push, kw_only=True):
    event: ClassVar[str] = "nudge:waiting"
    waiting: int


class LiveStarted(Push, kw_only=True):
    event: ClassVar[str] = "live:started"
    live: Live
    creator: UserRef


class LiveLeft(Push, kw_only=True):
    """A live is over for this client, with the server's `reason`: wholly (`LiveEnded`) or
    for this viewer's media only (`RoomLeft`); `isinstance(push, LiveLeft)` catches both."""
    live_id: str
    reason: str = ""


class LiveEnded(LiveLeft, kw_only=True):
    event: ClassVar[str] = "live:ended"
    creator_id: str = ""


class RoomState(Push, kw_only=True):
    event: ClassVar[str] = "room:state"
    live_id: str
    viewers: int


class RoomLeft(LiveLeft, kw_only=True):
    event: ClassVar[str] = "room:left"


class RawPush(Push, kw_only=True):
    """An event this client has no type for: its name and payload as sent."""
    name: str
    data: Any = None


class Reconnected(Push, kw_only=True):
    """The client's own: the connection dropped and is back on `url` (rooms joined again,
    chat caught up by id); `attempt` counts the reconnects."""
    event: ClassVar[str] = "golive:reconnected"
    url: str
    attempt: int


TYPED: dict[str, type[Push]] = {cls.event: cls for cls in (
    ChatMessages, GiftReceived, DmMessage, NotifyNew, NudgeWaiting, LiveStarted, LiveEnded,
    RoomState, RoomLeft)}


def decode(event: str, data: Any) -> Push:
    """The typed push of one event (a RawPush when unknown or not in the documented shape:
    a push is never dropped for its type)."""
    cls = TYPED.get(event)
    if cls is not None:
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError:
            pass
    return RawPush(name=event, data=data)


__all__ = ["TYPED", "ChatItem", "ChatMessages", "DmItem", "DmMessage", "GiftReceived",
           "Live", "LiveEnded", "LiveLeft", "LiveStarted", "Notification", "NotifyNew",
           "NudgeWaiting", "Push", "RawPush", "Reconnected", "RoomLeft", "RoomState", "UserRef",
           "decode"]
