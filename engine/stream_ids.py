"""Redis Stream ids ("<ms>-<seq>") as values: parse, order, step back, and the time they hold.

Chat and direct messages use the id XADD assigns as the message's id, its
place in the order and its time, so a client that knows its last id can ask
for exactly what came after it (XRANGE with an exclusive start).
"""

from __future__ import annotations

import re

from engine.errors import invalid

ZERO = "0-0"
SEQ_MAX = 2**64 - 1
_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


def parse(stream_id: str) -> tuple[int, int]:
    """(ms, seq) of an id; `invalid` for anything else."""
    match = _ID.fullmatch(stream_id)
    if not match:
        raise invalid(f"not a message id: {stream_id[:40]!r}")
    ms, seq = int(match[1]), int(match[2])
    if ms > SEQ_MAX or seq > SEQ_MAX:
        raise invalid(f"not a message id: {stream_id[:40]!r}")
    return ms, seq


def is_valid(stream_id: str) -> bool:
    try:
        parse(stream_id)
    except Exception:
        return False
    return True


def before(stream_id: str) -> str:
    """The greatest id smaller than stream_id ("0-0" stays "0-0")."""
    ms, seq = parse(stream_id)
    if seq:
        return f"{ms}-{seq - 1}"
    if ms:
        return f"{ms - 1}-{SEQ_MAX}"
    return ZERO


def newer(a: str, b: str) -> bool:
    """True when a comes after b in a stream."""
    return parse(a) > parse(b)


def seconds(stream_id: str) -> float:
    """The wall-clock time Redis stamped the entry with, in seconds."""
    return parse(stream_id)[0] / 1000
