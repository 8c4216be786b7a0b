"""Typed payloads of every client request, validated at the edge with msgspec.

msgspec because it is strict by default (no "1" -> 1 coercion), rejects
unknown fields when asked, reports the failing path ("at `$.user_id`"), and
converts a decoded msgpack dict into a typed value in about a microsecond, on
the hot path of every event.

Cursors are typed here, once for every schema: a message id becomes a StreamId
(engine/stream_ids.py; ASCII digits, each part at most 2**64-1) and a time cursor
is a finite float in a stated range, so no handler sees NaN, Infinity or an id
Redis would refuse.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta

from engine.errors import DomainError, invalid
from engine.nesting import MAX_DEPTH
from engine.stream_ids import StreamId


def whole(body: str) -> str:
    """A pattern matching the whole text: msgspec searches (re.search), where `$` also
    matches before a final newline, so "0123456789abcdef\n" passed as a user id and a
    transfer id could end in one (found by bench/fuzz.py). The lookahead refuses that and
    reads the same in the JSON Schema of /api/openapi.json (ECMA-262, where `$` is the end)."""
    return f"^{body}$(?!\\n)"


# Limits on raw fields; the engine's rules apply tighter ones where they exist.
Username = Annotated[str, Meta(min_length=1, max_length=64)]
UserId = Annotated[str, Meta(pattern=whole(r"[0-9a-f]{16}"))]
ShortText = Annotated[str, Meta(max_length=256)]
Password = Annotated[str, Meta(max_length=1024)]
Birthdate = Annotated[str, Meta(max_length=32)]
Bio = Annotated[str, Meta(max_length=2048)]
# A time cursor in seconds since 1970 (an `updated_at` from a previous page). The
# bounds refuse NaN and +-Infinity (msgpack and JSON can carry them; int(inf * 1000)
# raises) and keep seconds * 1000 an exact integer: 2**53 / 1000 s is year ~287,000.
TimeCursor = Annotated[float, Meta(ge=0, le=2**53 / 1000)]


class Payload(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Base of every request payload: unknown fields are an error."""


class Empty(Payload):
    pass


class Register(Payload):
    username: Username
    display_name: ShortText
    password: Password
    birthdate: Birthdate
    # The site's pages: keep the token in an HttpOnly cookie, not in the answer
    # (signaling/session_cookie.py).
    cookie: bool = False


class SignIn(Payload):
    username: Username
    password: Password
    cookie: bool = False


class ProfileGet(Payload):
    username: Username


class UserSearchQuery(Payload):
    """user:search: accounts whose username or display name starts with `q`."""

    q: Annotated[str, Meta(max_length=200)]
    limit: Annotated[int, Meta(ge=1, le=50)] = 20


class ProfileUpdate(Payload):
    display_name: ShortText | None = None
    bio: Bio | None = None


class UserTarget(Payload):
    user_id: UserId


class UserList(Payload):
    user_id: UserId
    kind: Literal["followers", "following", "friends"]
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


P = TypeVar("P", bound=Payload)


class OddKeyMap(tuple):  # type: ignore[type-arg]
    """A decoded msgpack map with a key that is not a string (an int, a list...), kept as
    its (key, value) pairs: no dict is built from keys an attacker chose (ints hash to
    themselves, so 2 MiB of colliding keys would cost quadratic time), and validation
    refuses it as `invalid` (signaling/gateway.py SafeMsgPackPacket)."""

    __slots__ = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[Any, Any]]) -> dict[str, Any] | OddKeyMap:
        """msgpack's object_pairs_hook: a dict when every key is a string."""
        if all(type(key) is str for key, _ in pairs):
            return dict(pairs)
        return cls(pairs)


ODD_KEYS = "object keys must be strings"


def first_bad_text(value: Any, depth: int = 0) -> str | None:
    """The first string holding a lone surrogate (non-UTF-8 bytes decoded with
    surrogateescape), or None. Nesting deeper than MAX_DEPTH (32) is refused outright."""
    if depth > MAX_DEPTH:
        return f"nesting too deep (more than {MAX_DEPTH} levels)"
    if isinstance(value, OddKeyMap):
        return ODD_KEYS
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "text is not valid UTF-8"
        return None
    if isinstance(value, dict):
        items: Any = (*value.keys(), *value.values())
    elif isinstance(value, list | tuple):
        items = value
    else:
        return None
    for item in items:
        problem = first_bad_text(item, depth + 1)
        if problem:
            return problem
    return None


def _typed(kind: type, value: Any) -> Any:
    """msgspec's hook for the field types it does not know: a StreamId from its text.
    A ValueError here becomes `invalid` with the field's path ("... - at `$.before`")."""
    if kind is StreamId:
        return StreamId.from_text(value)
    raise NotImplementedError(kind)


def convert(schema: type[P], data: Any) -> P:
    """A raw decoded payload as a typed value; `invalid` with the failing path otherwise.

    The payload is exactly one object: None (or no payload at all) is refused like
    any other non-object, `{}` being the payload of an event with nothing to say."""
    if isinstance(data, OddKeyMap):
        raise invalid(ODD_KEYS)
    if not isinstance(data, dict):
        raise invalid(f"the payload must be an object, not {type(data).__name__}")
    problem = first_bad_text(data)
    if problem:
        raise invalid(problem)
    try:
        return msgspec.convert(data, schema, strict=True, dec_hook=_typed)
    except msgspec.ValidationError as exc:
        raise validation_error(str(exc), data) from None


_AT_FIELD = re.compile(r"- at `\$\.([A-Za-z_]\w*)`$")
_MISSING = re.compile(r"^Object missing required field `([A-Za-z_]\w*)`")


def validation_error(text: str, data: dict[str, Any]) -> DomainError:
    """msgspec's complaint as an `invalid` error naming its top-level field (details
    `field`, which forms use to mark the input); a required text field sent empty (a
    blank sign-up form) reads "Display name is required", not the validator's wording."""
    found = _AT_FIELD.search(text) or _MISSING.search(text)
    if found is None:
        return invalid(text)
    name = found.group(1)
    if "of length >= 1" in text and data.get(name) == "":
        return invalid(f"{name.replace('_', ' ').capitalize()} is required", field=name)
    return invalid(text, field=name)


# An SDP from Chromium is 4-7 KB; 32 KiB leaves room for many candidates.
Sdp = Annotated[str, Meta(min_length=1, max_length=32 * 1024)]
LiveId = Annotated[str, Meta(pattern=whole(r"[0-9a-f]{16}"))]


class LiveStart(Payload):
    offer: Sdp
    title: ShortText = ""
    # Only signed-in viewers may watch (anonymous visitors are refused).
    signed_in_only: bool = False
    # A resume: the live this tab was on. If it ended meanwhile (the grace period ran
    # out) the server answers not_found (reason live_ended) instead of a new live.
    resume_of: LiveId | None = None
    # Record the live for a replay (signaling/replays.py); a resume keeps its recording.
    record: bool = False


class LiveTitle(Payload):
    """live:title: a new title for the caller's running live."""

    title: ShortText


class UserSuggest(Payload):
    limit: Annotated[int, Meta(ge=1, le=50)] = 10


# A viewer's video quality: "auto" (its link decides) or a rendition's height ("360").
Quality = Annotated[str, Meta(pattern=r"^(auto|[0-9]{2,4})$")]


class RoomJoin(Payload):
    user_id: UserId
    media: bool = True  # False: join the room (count, chat, pushes) without a stream
    quality: Quality = "auto"


class RoomQuality(Payload):
    live_id: LiveId
    quality: Quality


class RtcAnswer(Payload):
    live_id: LiveId
    sdp: Sdp


class RtcRestart(Payload):
    """rtc:restart: a viewer's network changed; the ack carries an ICE-restart offer for
    the same peer connection, answered through rtc:answer."""

    live_id: LiveId


# signaling/viewer_hold.py: secrets.token_urlsafe(24), 32 URL-safe characters
ResumeToken = Annotated[str, Meta(pattern=whole(r"[A-Za-z0-9_-]{16,64}"))]


class RoomResume(Payload):
    """room:resume: a viewer's new socket takes back the media its dropped socket held
    (the `resume_token` of its room:join or last room:resume ack)."""

    live_id: LiveId
    token: ResumeToken


class LiveRestart(Payload):
    """live:restart: the creator's ICE-restart offer (createOffer({iceRestart: true}))
    for the peer connection it publishes on; the ack carries the answer."""

    offer: Sdp


class RoomLeave(Payload):
    live_id: LiveId


class LiveWatch(Payload):
    user_id: UserId


class LiveLike(Payload):
    live_id: LiveId
    count: int = 1  # taps coalesced by the browser; the engine bounds it (engine/likes.py)


class RoomViewers(Payload):
    live_id: LiveId


# --- live chat (signaling/chat.py) ---------------------------------------------------
# Raw bounds only; the engine's rules are tighter (chat lines <= 300 characters).
MessageId = StreamId  # "<ms>-<seq>" text, parsed by _typed
ChatText = Annotated[str, Meta(max_length=2000)]
FilterWord = Annotated[str, Meta(max_length=64)]


class ChatSend(Payload):
    live_id: LiveId
    text: ChatText


class ChatHistory(Payload):
    live_id: LiveId
    after: MessageId | None = None
    limit: Annotated[int, Meta(ge=1, le=200)] | None = None


class ChatDelete(Payload):
    live_id: LiveId
    message_id: MessageId


class ChatMute(Payload):
    user_id: UserId
    seconds: Annotated[int, Meta(ge=1, le=7 * 24 * 3600)]
    creator_id: UserId | None = None    # whose chats; the caller's own when absent


class ChatTarget(Payload):
    """chat:unmute, chat:ban, chat:unban: a user in a creator's chats (the caller's own
    when creator_id is absent; a moderator names the creator they moderate for)."""

    user_id: UserId
    creator_id: UserId | None = None


class CreatorScope(Payload):
    """chat:restricted, chat:moderators: a creator's chats (the caller's own if absent)."""

    creator_id: UserId | None = None


class ModeratorSet(Payload):
    """chat:moderator: the creator appoints (on) or dismisses (off) a moderator."""

    user_id: UserId
    on: bool = True


class ChatSettingsUpdate(Payload):
    slow_mode: Annotated[int, Meta(ge=0, le=3600)] | None = None
    filter_words: Annotated[list[FilterWord], Meta(max_length=200)] | None = None


# --- gifts in the live room (signaling/gifts.py) -----------------------------------------
# Raw bounds only; the ledger's rules are tighter (count 1..max_count). No price or balance
# field exists: the server's catalog decides what a gift costs (an extra field is invalid).
TransferId = Annotated[str, Meta(pattern=whole(r"[A-Za-z0-9_-]{8,64}"))]
GiftId = Annotated[str, Meta(pattern=whole(r"[a-z0-9_]{1,32}"))]


class GiftSend(Payload):
    transfer_id: TransferId   # client-generated; a retry sends the same one
    creator: Username         # the creator's username or user id
    gift_id: GiftId
    count: Annotated[int, Meta(ge=1, le=1_000_000)] = 1


class GiftBoardGet(Payload):
    live_id: LiveId


class GiftStatusGet(Payload):
    creator: Username         # the creator's username or user id


# --- direct messages (signaling/messages.py) -------------------------------------------
ConversationId = Annotated[str, Meta(pattern=whole(r"[0-9a-f]{32}"))]
DmText = Annotated[str, Meta(max_length=4000)]


class Share(Payload):
    kind: Literal["live", "profile"]
    user_id: UserId


class DmSend(Payload):
    to: UserId
    text: DmText | None = None
    share: Share | None = None


class DmList(Payload):
    before: TimeCursor | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 30


class DmHistory(Payload):
    conversation_id: ConversationId
    before: MessageId | None = None
    after: MessageId | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 30


class DmRead(Payload):
    conversation_id: ConversationId
    message_id: MessageId


class DmConversation(Payload):
    conversation_id: ConversationId


class SettingsUpdate(Payload):
    dm_policy: Literal["everyone", "friends", "none"] | None = None


class ReportCreate(Payload):
    kind: Literal["user", "message", "chat"]
    reason: Annotated[str, Meta(max_length=32)]
    user_id: UserId | None = None
    conversation_id: ConversationId | None = None
    live_id: LiveId | None = None
    message_id: MessageId | None = None
    note: Annotated[str, Meta(max_length=2000)] = ""


# --- nudges and notifications (signaling/nudges.py, signaling/notifications.py) ----------
NotificationId = Annotated[str, Meta(pattern=whole(r"[0-9A-Za-z_-]{1,64}"))]
NotificationCursor = Annotated[str, Meta(pattern=whole(r"[0-9]{1,15}:[0-9A-Za-z_-]{1,64}"))]


class NudgeSettingsUpdate(Payload):
    allow: bool | None = None
    dm: bool | None = None


class AlertsSet(Payload):
    user_id: UserId
    on: bool


class NotifyList(Payload):
    before: NotificationCursor | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 30


class NotifyRead(Payload):
    id: NotificationId


# --- wallet (signaling/wallet_http.py) ---------------------------------------------------

class CoinCheckout(Payload):
    package_id: GiftId
    checkout_id: TransferId | None = None   # a retried checkout sends the same one
    # A price or coin count from the client is accepted and ignored: the catalog decides.
    coins: Any = None
    price_cents: Any = None


class CashoutRequest(Payload):
    request_id: TransferId                  # a retried request sends the same one
    diamonds: Annotated[int, Meta(ge=1, le=1_000_000_000)]


# --- webhooks (signaling/webhooks_http.py) -------------------------------------------------

class WebhookCreate(Payload):
    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    # None or []: every event (engine/webhook_rules.py EVENTS)
    events: Annotated[list[Annotated[str, Meta(max_length=40)]], Meta(max_length=10)] | None = None
    enabled: bool = True
