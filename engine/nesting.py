"""How deep a request may nest: one bound for every edge that decodes client data.

Python's json and msgspec recurse once per level of `[` or `{`: 64 KiB of `[`
(the HTTP body limit) is 65,536 levels and raises RecursionError from inside the
decoder (a 503 and a traceback per request, unauthenticated on /api/register).
No request golive understands nests deeper than 3 levels; 32 leaves room and is
also the bound on a decoded Socket.IO payload (signaling/schemas.py). msgpack's
decoder stops on its own at 1,024 levels (StackError): such a packet is dropped
as undecodable.
"""

from __future__ import annotations

import re

MAX_DEPTH = 32

# A JSON string, escapes included ("unrolled" so it runs in linear time); the brackets
# inside strings are text, not structure.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Keep only brackets, with { } read as [ ]: depth is all that is measured here.
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text `raw` nests arrays/objects more than `limit` levels.

    A pre-scan before decoding, in C-speed byte operations: each pass removes the
    innermost "[]" pairs, so a pair left after `limit` passes sits deeper than
    `limit` (64 KiB of brackets: 32 passes, ~1 ms). Brackets that never close
    (`[` x 30,000) make no pair, but the decoder descends into each before it finds
    the text cut short: more than `limit` of them is too deep as well. Exact for
    well-formed JSON; for malformed text (refused by the decoder anyway) at most
    2 x `limit` levels get through, and an unterminated string may count its
    brackets."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # the common case: a flat object is a single {
    brackets = _STRING.sub(b"", raw).translate(_SQUARE, _NOT_BRACKETS)
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
    return b"[]" in brackets or brackets.count(b"[") > limit
