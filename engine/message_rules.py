"""The rules of direct messages as plain functions and values: who may message whom,
where a message lands (inbox or Message Requests), text, conversation ids, shares.

No I/O here: engine/messages.py reads the state from Redis and asks these.

Who may message a user is their setting: everyone, friends (mutual follows)
or no one; users under 18 start at friends. Sender and recipient must both be
16 or older. A block either way stops messages both ways. A message from
someone the recipient does not follow lands in their Message Requests, and
its sender cannot send more until the recipient accepts (or answers, or
follows them back).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from engine.errors import DomainError, ErrorCode, invalid, not_found
from engine.graph import Relation, check_may_interact
from engine.text import has_control_chars
from engine.throttle import Window

DM_MIN_AGE = 16
ADULT_AGE = 18
TEXT_MAX = 1000
PREVIEW_MAX = 120


class Policy(enum.StrEnum):
    """Who may message a user."""

    EVERYONE = "everyone"
    FRIENDS = "friends"
    NO_ONE = "none"


class State(enum.StrEnum):
    """A conversation's state; NEW before its first message."""

    NEW = "new"
    REQUESTED = "requested"    # waiting in the recipient's Message Requests
    ACCEPTED = "accepted"


class Route(enum.StrEnum):
    INBOX = "inbox"
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """Every limit of direct messages; the server builds one from module defaults."""

    text_max: int = TEXT_MAX
    page_max: int = 100             # messages per dm:history page
    list_max: int = 100             # conversations per dm:list page
    # Entries kept per conversation (XADD MAXLEN ~); older ones fall off.
    stream_max: int = 10_000
    rate: Window = field(default_factory=lambda: Window(10, 10.0))          # per sender
    new_conversations: Window = field(default_factory=lambda: Window(20, 3600.0))
    # The same text (any case and spacing) at most `limit` times in `seconds`, across
    # conversations: copy-paste spam to many people stops at the 4th.
    repeats: Window = field(default_factory=lambda: Window(3, 600.0))


def default_policy(age: int) -> Policy:
    """Adults start open to everyone; minors to friends only."""
    return Policy.EVERYONE if age >= ADULT_AGE else Policy.FRIENDS


def clean_policy(value: str) -> Policy:
    try:
        return Policy(value)
    except ValueError:
        raise invalid("who may message you is one of everyone, friends, none",
                      field="dm_policy") from None


def check_may_send_messages(sender_age: int) -> None:
    """`forbidden` (reason age) under DM_MIN_AGE: the first rule of every send, and what
    /api/me tells the Messages page so a minor is never offered a composer."""
    if sender_age < DM_MIN_AGE:
        raise DomainError(ErrorCode.FORBIDDEN,
                          f"you must be {DM_MIN_AGE} or older to send direct messages",
                          reason="age")


def check_may_message(*, sender_age: int, recipient_age: int, relation: Relation,
                      policy: Policy, state: State, requester_is_sender: bool) -> Route:
    """Whether the sender may send this message, and where it lands.

    relation: how the sender stands to the recipient (following = the sender
    follows the recipient; followed_by = the recipient follows the sender).
    state/requester_is_sender: the conversation so far.

    Refusals are `forbidden` with a reason: age, blocked, no_one, friends_only,
    request_pending.
    """
    check_may_send_messages(sender_age)
    if recipient_age < DM_MIN_AGE:
        raise DomainError(ErrorCode.FORBIDDEN, "this account cannot receive direct messages",
                          reason="age")
    try:
        check_may_interact(relation, "message")
    except DomainError as exc:
        exc.details["reason"] = "blocked"
        raise
    if policy is Policy.NO_ONE:
        raise DomainError(ErrorCode.FORBIDDEN, "this account does not accept messages",
                          reason="no_one")
    # The recipient opened this conversation (they started it, or accepted it): it
    # stays open under a friends-only setting.
    opened_by_recipient = (state is State.ACCEPTED
                           or (state is State.REQUESTED and not requester_is_sender))
    if policy is Policy.FRIENDS and not relation.friends and not opened_by_recipient:
        raise DomainError(ErrorCode.FORBIDDEN, "this account only accepts messages from friends",
                          reason="friends_only")
    if opened_by_recipient or relation.followed_by:
        return Route.INBOX
    if state is State.REQUESTED:  # the sender's own request, not yet accepted
        raise DomainError(ErrorCode.FORBIDDEN,
                          "wait until they accept your message request to send more",
                          reason="request_pending")
    return Route.REQUEST


def check_may_read_receipts(state: State, *, blocked: bool = False) -> bool:
    """Seen receipts and typing reach the other side only in an accepted conversation
    (a request's sender does not learn whether it was read), and not across a block
    either way (`blocked`): the history stays readable, the activity is no longer told."""
    return state is State.ACCEPTED and not blocked


# --- text and ids ---------------------------------------------------------------------

def clean_text(text: str, max_len: int = TEXT_MAX) -> str:
    """A message: trimmed, 1-max_len characters; line breaks allowed, other control
    characters not. HTML is text like any other."""
    cleaned = text.strip()
    if not cleaned:
        raise invalid("a message cannot be empty", field="text")
    if len(cleaned) > max_len:
        raise invalid(f"a message must be at most {max_len} characters", field="text")
    if has_control_chars(cleaned.replace("\n", " ")):
        raise invalid("a message cannot hold control characters", field="text")
    return cleaned


def preview(text: str) -> str:
    """One line for the conversation list."""
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_MAX else line[: PREVIEW_MAX - 1] + "…"


def repeat_digest(text: str) -> str:
    """The same text in any case and spacing has the same digest."""
    return hashlib.blake2b(" ".join(text.casefold().split()).encode(), digest_size=8).hexdigest()


def conversation_id(a: str, b: str) -> str:
    """The one conversation of two users: both ids, sorted (32 hex digits)."""
    if a == b:
        raise invalid("you cannot message yourself")
    return "".join(sorted((a, b)))


def other_party(conversation: str, me: str) -> str:
    """The other user of a conversation `me` is in; not_found when they are not in it
    (the same answer as for a conversation that does not exist)."""
    first, second = conversation[:16], conversation[16:]
    if len(conversation) != 32 or me not in (first, second) or first == second:
        raise not_found("no such conversation")
    return second if me == first else first


# --- shared cards ------------------------------------------------------------------------

class ShareKind(enum.StrEnum):
    LIVE = "live"
    PROFILE = "profile"


def check_may_share(kind: ShareKind, *, relation_to_sharer: Relation, live_running: bool) -> None:
    """A profile or live card: the shared account must exist (the caller checks), not be
    blocked either way with the sharer, and a live card needs a running live."""
    check_may_interact(relation_to_sharer, "share")
    if kind is ShareKind.LIVE and not live_running:
        raise not_found("this creator is not live")


__all__ = ["Policy", "Route", "State", "check_may_message"]
