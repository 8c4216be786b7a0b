"""Redis Stream ids ("<ms>-<seq>") as values: parse, order, step, and the time they hold.

Chat and direct messages use the id XADD assigns as the message's id, its
place in the order and its time, so a client that knows its last id can ask
for exactly what came after it.

A cursor from a client is parsed into a StreamId at the edge (signaling/schemas.py,
the HTTP query parsers) and every XRANGE/XREVRANGE bound is computed from it here:
Redis refuses an exclusive bound that cannot move ("(0-0" as an XREVRANGE end,
"(18446744073709551615-18446744073709551615" as an XRANGE start: "ERR invalid end ID
for the interval"), so the bounds are inclusive ids one step away, or None when there
is nothing on that side and the page is empty without asking Redis.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from engine.errors import invalid

ZERO = "0-0"
SEQ_MAX = 2**64 - 1  # both halves are unsigned 64-bit in Redis
# ASCII digits only: \d would take "\u0661-\u0661" (Arabic-Indic digits), which int()
# reads but Redis refuses.
_ID = re.compile(r"^([0-9]{1,20})-([0-9]{1,20})$")


class BadStreamId(ValueError):
    """Text that is not a stream id (a ValueError, so msgspec reports it with its path)."""


class StreamId:
    """A parsed stream id: ms and seq, each 0..2**64-1, ordered as Redis orders them.

    str() is the canonical text ("5-1" for "0005-01"); (ms, seq) unpack like a pair."""

    __slots__ = ("ms", "seq")

    ms: int
    seq: int

    def __init__(self, ms: int, seq: int) -> None:
        if not (0 <= ms <= SEQ_MAX and 0 <= seq <= SEQ_MAX):
            raise BadStreamId(f"a stream id's parts are 0..{SEQ_MAX}, not {ms}-{seq}")
        object.__setattr__(self, "ms", ms)
        object.__setattr__(self, "seq", seq)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a StreamId is immutable")

    @classmethod
    def from_text(cls, text: object) -> StreamId:
        """The id `text` names; BadStreamId with a short reason otherwise."""
        # The wording follows msgspec's, which the protocol shows for every other field.
        if not isinstance(text, str):
            raise BadStreamId(f"Expected `str`, got `{type(text).__name__}`")
        match = _ID.fullmatch(text)
        if not match:
            raise BadStreamId(f"Expected `str` matching regex '{_ID.pattern}' (<ms>-<seq>)")
        ms, seq = int(match[1]), int(match[2])
        if ms > SEQ_MAX or seq > SEQ_MAX:
            raise BadStreamId(f"Expected a message id whose parts are <= {SEQ_MAX}")
        return cls(ms, seq)

    def next(self) -> StreamId | None:
        """The smallest id after this one; None after the greatest id there is."""
        if self.seq < SEQ_MAX:
            return StreamId(self.ms, self.seq + 1)
        if self.ms < SEQ_MAX:
            return StreamId(self.ms + 1, 0)
        return None

    def prev(self) -> StreamId | None:
        """The greatest id before this one; None before 0-0."""
        if self.seq:
            return StreamId(self.ms, self.seq - 1)
        if self.ms:
            return StreamId(self.ms - 1, SEQ_MAX)
        return None

    def _key(self) -> tuple[int, int]:
        return (self.ms, self.seq)

    def __iter__(self) -> Iterator[int]:
        return iter(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamId) and self._key() == other._key()

    def __lt__(self, other: StreamId) -> bool:
        return self._key() < other._key()

    def __le__(self, other: StreamId) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: StreamId) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: StreamId) -> bool:
        return self._key() >= other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    def __repr__(self) -> str:
        return f"StreamId({self.ms}, {self.seq})"


def parse(stream_id: str | StreamId) -> StreamId:
    """The id as a value (a StreamId is returned as is); `invalid` for anything else."""
    if isinstance(stream_id, StreamId):
        return stream_id
    try:
        return StreamId.from_text(stream_id)
    except BadStreamId as exc:
        raise invalid(str(exc)) from None


def is_valid(stream_id: str) -> bool:
    try:
        parse(stream_id)
    except Exception:
        return False
    return True


def after_bound(stream_id: str | StreamId) -> str | None:
    """The inclusive XRANGE start for "strictly after stream_id"; None when no id
    can follow it (the page is empty)."""
    found = parse(stream_id).next()
    return None if found is None else str(found)


def before_bound(stream_id: str | StreamId) -> str | None:
    """The inclusive XRANGE/XREVRANGE end for "strictly before stream_id"; None
    before 0-0 (the page is empty)."""
    found = parse(stream_id).prev()
    return None if found is None else str(found)


def before(stream_id: str | StreamId) -> str:
    """The greatest id smaller than stream_id ("0-0" stays "0-0")."""
    return before_bound(stream_id) or ZERO


def newer(a: str | StreamId, b: str | StreamId) -> bool:
    """True when a comes after b in a stream."""
    return parse(a) > parse(b)


def seconds(stream_id: str | StreamId) -> float:
    """The wall-clock time Redis stamped the entry with, in seconds."""
    return parse(stream_id).ms / 1000
