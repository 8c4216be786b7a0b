"""A Lua script called by EVALSHA with its command bytes packed here, over one pooled
connection of a redis-py asyncio client, many calls per write (the ledger's gift).

Why not redis-py's Script and pipeline: its asyncio `pack_command` encodes and joins
bytes per argument (~1 us each; ~15 us for a 19-argument EVALSHA), its pipeline sends
SCRIPT EXISTS before every batch, and each queued command costs a few more Python
calls. Here a call is one str join and one encode (the arguments are checked ASCII
once, as a whole), a batch one send and one read per reply, through the connection's
public `send_packed_command`/`read_response` (replies parsed by redis-py, with hiredis
when installed). Measured with `golive bench ledger` (see engine/ledger.py).

A script Redis does not hold (restart, SCRIPT FLUSH) answers NOSCRIPT: it is loaded and
those calls sent once more. A connection error or a cancellation mid-batch drops the
connection (never reused half-read) and raises; a caller may resend, when its script is
idempotent (the gift is, by transfer id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError


class PackedScript:
    """One Lua script: `pack` a call's keys and args to bytes, `run` packed calls."""

    def __init__(self, redis: Redis, source: str) -> None:
        self._redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def pack(self, keys: Sequence[str], args: Sequence[str]) -> bytes:
        """EVALSHA sha len(keys) *keys *args as RESP bytes (each str is one argument)."""
        numkeys = str(len(keys))
        parts = [f"*{3 + len(keys) + len(args)}\r\n$7\r\nEVALSHA\r\n$40\r\n{self.sha}\r\n"
                 f"${len(numkeys)}\r\n{numkeys}\r\n"]
        parts += [f"${len(a)}\r\n{a}\r\n" for a in keys]
        parts += [f"${len(a)}\r\n{a}\r\n" for a in args]
        text = "".join(parts)
        if text.isascii():  # one byte per character: the lengths above are byte lengths
            return text.encode()
        out = [f"*{3 + len(keys) + len(args)}\r\n".encode()]
        for word in ("EVALSHA", self.sha, numkeys, *keys, *args):
            data = word.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(out)

    async def run(self, calls: Sequence[bytes]) -> list[Any]:
        """Each packed call's reply (a ResponseError for a call Redis refused), in order."""
        replies = await self._send(calls)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            await self._redis.script_load(self.source)
            for i, reply in zip(missing, await self._send([calls[i] for i in missing]),
                                strict=True):
                replies[i] = reply
        return replies

    async def _send(self, calls: Sequence[bytes]) -> list[Any]:
        pool = self._redis.connection_pool
        conn = await pool.get_connection()
        try:
            await conn.send_packed_command(b"".join(calls))
            replies: list[Any] = []
            for _ in calls:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await conn.disconnect()  # replies may be left unread: never reuse it
            raise
        finally:
            await pool.release(conn)
        return replies
