"""The rules of live chat as plain functions and values: text, keyword filters, who may
send and read, slow mode, mutes, bans, and who may moderate.

No I/O here: engine/chat.py reads the state from Redis and asks these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.errors import DomainError, ErrorCode, forbidden, invalid, rate_limited
from engine.text import has_control_chars
from engine.throttle import Window

TEXT_MAX = 300
SLOW_MODE_MAX_S = 3600
FILTER_MAX_WORDS = 200
FILTER_WORD_MAX = 40
MUTE_MAX_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class ChatLimits:
    """Every limit of live chat; the server builds one from module defaults."""

    text_max: int = TEXT_MAX
    history: int = 100             # messages shown on join
    history_max: int = 200         # most a chat:history page returns
    # Entries kept per live (XADD MAXLEN ~): bounds memory at ~300 B an entry,
    # ~300 KB a live, and is also how far back a reconnect can catch up.
    stream_max: int = 1000
    retention_s: int = 2 * 24 * 3600   # a live's chat expires this long after its last line
    rate: Window = field(default_factory=lambda: Window(5, 5.0))  # per user per live
    joined_every_s: int = 300      # one "X joined" line per user per live in this time
    mute_max_s: int = MUTE_MAX_S


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """A creator's chat settings: slow mode (0 = off) and keyword filter."""

    slow_mode_s: int = 0
    filter_words: tuple[str, ...] = ()

    def public(self) -> dict[str, object]:
        """What every viewer may see (the filter list is the creator's)."""
        return {"slow_mode": self.slow_mode_s}

    def as_dict(self) -> dict[str, object]:
        return {"slow_mode": self.slow_mode_s, "filter_words": list(self.filter_words)}


@dataclass(frozen=True, slots=True)
class SenderState:
    """What the rules need to know about one user in one live."""

    is_creator: bool
    is_member: bool            # the creator, or a viewer who joined (live_viewers)
    banned: bool = False
    blocked: bool = False      # a block stands between the user and the creator, either way
    muted_until: float = 0.0   # seconds since the epoch; 0 when not muted
    last_sent_at: float = 0.0  # their last message in this live; 0 when none


# --- text --------------------------------------------------------------------------

def clean_text(text: str, max_len: int = TEXT_MAX) -> str:
    """One line of chat: trimmed, 1-max_len characters, no control characters.

    HTML is not special: it is stored and shown as the text it is."""
    cleaned = text.strip()
    if not cleaned:
        raise invalid("a message cannot be empty", field="text")
    if len(cleaned) > max_len:
        raise invalid(f"a message must be at most {max_len} characters", field="text")
    if has_control_chars(cleaned):
        raise invalid("a message cannot hold control characters (line breaks included)",
                      field="text")
    return cleaned


def clean_filter_words(words: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """A creator's keyword list: each 1-40 characters, lower-cased, de-duplicated."""
    if len(words) > FILTER_MAX_WORDS:
        raise invalid(f"at most {FILTER_MAX_WORDS} filtered words", field="filter_words")
    cleaned: list[str] = []
    for word in words:
        w = " ".join(word.split()).casefold()
        if not w or len(w) > FILTER_WORD_MAX or has_control_chars(w):
            raise invalid(f"a filtered word must be 1-{FILTER_WORD_MAX} printable characters",
                          field="filter_words")
        if w not in cleaned:
            cleaned.append(w)
    return tuple(sorted(cleaned))


def filtered_word(text: str, words: tuple[str, ...] | list[str]) -> str | None:
    """The first filtered word or phrase `text` holds as a whole word (any case), or None.

    "ass" filters "ASS!" but not "class": a substring match would refuse
    ordinary words."""
    folded = text.casefold()
    for word in words:
        if re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", folded):
            return word
    return None


def check_filter(text: str, words: tuple[str, ...] | list[str]) -> None:
    """`invalid` with reason `filtered` when text holds one of the creator's keywords."""
    if filtered_word(text, words) is not None:
        raise invalid("this message holds a word the creator does not allow in their chat",
                      field="text", reason="filtered")


def clean_slow_mode(seconds: int) -> int:
    if not 0 <= seconds <= SLOW_MODE_MAX_S:
        raise invalid(f"slow mode must be 0-{SLOW_MODE_MAX_S} seconds", field="slow_mode")
    return seconds


def clean_mute_seconds(seconds: int, max_s: int = MUTE_MAX_S) -> int:
    if not 1 <= seconds <= max_s:
        raise invalid(f"a mute lasts 1-{max_s} seconds", field="seconds")
    return seconds


# --- who may do what --------------------------------------------------------------

def check_may_read(state: SenderState) -> None:
    """Members read the chat; a banned user does not, even as a member, nor anyone a
    block stands with (the join refuses them; one who joined before the block is
    removed, and this holds if the removal has not reached their node yet)."""
    if state.banned and not state.is_creator:
        raise DomainError(ErrorCode.FORBIDDEN, "you are banned from this creator's lives",
                          reason="banned")
    if state.blocked and not state.is_creator:
        raise DomainError(ErrorCode.FORBIDDEN, "you cannot read or write this creator's chat",
                          reason="blocked")
    if not state.is_member:
        raise forbidden("join the live to read its chat")


def check_may_send(state: SenderState, slow_mode_s: int, now: float) -> None:
    """Members send, unless banned or muted; slow mode spaces a viewer's messages
    (the creator is exempt). Refusals: forbidden (reason banned, muted, not_member)
    or rate_limited (reason slow_mode) with retry_after."""
    if state.is_creator:
        return
    check_may_read(state)
    if state.muted_until > now:
        raise DomainError(ErrorCode.FORBIDDEN, "the creator muted you in this chat",
                          reason="muted", until=round(state.muted_until, 3))
    if slow_mode_s and state.last_sent_at:
        wait = state.last_sent_at + slow_mode_s - now
        if wait > 0:
            error = rate_limited(wait)
            error.details["reason"] = "slow_mode"
            raise error


MODERATORS_MAX = 50     # a creator's moderators: a team, not an audience


def check_may_moderate(actor: str, creator: str, target: str | None = None, *,
                       moderators: frozenset[str] | set[str] = frozenset()) -> None:
    """The creator and the moderators they appointed moderate the creator's chat
    (delete, mute, ban, unmute, unban); nobody acts on themselves, and a moderator
    never acts on the creator or on another moderator (reason `moderator`)."""
    if actor != creator and actor not in moderators:
        raise forbidden("only the creator and their moderators can moderate this chat")
    if target is None:
        return
    if target == actor:
        raise invalid("you cannot mute or ban yourself")
    if actor != creator and (target == creator or target in moderators):
        raise DomainError(ErrorCode.FORBIDDEN,
                          "a moderator cannot mute or ban the creator or another moderator",
                          reason="moderator")


def check_may_appoint(actor: str, creator: str, target: str, count: int,
                      max_moderators: int = MODERATORS_MAX) -> None:
    """Only the creator appoints moderators: not themselves, at most `max_moderators`
    (`count`: how many they have, the target not among them)."""
    if actor != creator:
        raise forbidden("only the creator can appoint moderators")
    if target == creator:
        raise invalid("you already moderate your own chat", field="user_id")
    if count >= max_moderators:
        raise invalid(f"at most {max_moderators} moderators", field="user_id")
