"""Replays: recorded LIVEs, their metadata in Redis and the rules on keeping them.

A replay is written by signaling/replays.py (media/recorder.py makes its file) and
enters Redis only when finalized, in one MULTI: its hash, the creator's list and the
expiry index. A recording that never finished (a crash) has files and no metadata; the
sweep removes such a directory once it is older than the longest a live may record.

The rules are plain functions: which replays the creator's total cap evicts (oldest
first, never the newest), which are due to expire, the chat lines kept with a replay
and who may watch one (as who may watch the live: engine/lives.check_may_watch).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from engine import keys
from engine.errors import invalid, not_found, unauthorized

DAY_S = 86_400
LIST_LIMIT = 50  # replays a profile lists, newest first


@dataclass(frozen=True, slots=True)
class Replay:
    """One finalized replay."""

    replay_id: str         # the live's id: one recording per live
    creator_id: str
    title: str
    started_at: float      # wall clock of its first frame
    ended_at: float
    duration_s: float
    bytes: int
    file: str              # video.mp4 or video.webm, in the replay's directory
    signed_in_only: bool
    capped: bool           # the recording stopped at the per-replay cap
    expires_at: float
    chat_lines: int = 0
    thumbnail: bool = False  # thumb.jpg beside the video

    def as_dict(self) -> dict[str, Any]:
        """What the API answers (no file system path)."""
        view = asdict(self)
        view["video_url"] = f"/replays/{self.replay_id}/video"
        view["page_url"] = f"/replay/{self.replay_id}"
        view["thumbnail_url"] = (f"/replays/{self.replay_id}/thumb.jpg" if self.thumbnail
                                 else None)
        return view


def _from_hash(fields: dict[str, str]) -> Replay:
    return Replay(fields["replay_id"], fields["creator_id"], fields["title"],
                  float(fields["started_at"]), float(fields["ended_at"]),
                  float(fields["duration_s"]), int(fields["bytes"]), fields["file"],
                  fields["signed_in_only"] == "1", fields["capped"] == "1",
                  float(fields["expires_at"]), int(fields.get("chat_lines", "0")),
                  fields.get("thumbnail") == "1")


def _to_hash(replay: Replay) -> dict[str, str]:
    out = {}
    for name, value in asdict(replay).items():
        out[name] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return out


# --- rules -------------------------------------------------------------------

def expires_at(ended_at: float, ttl_days: float) -> float:
    """When a replay that ended at `ended_at` expires (ttl_days > 0)."""
    if not ttl_days > 0:
        raise invalid("a replay's lifetime must be more than 0 days")
    return ended_at + ttl_days * DAY_S


def over_total_cap(replays: Sequence[tuple[str, float, int]], cap: int) -> list[str]:
    """The ids the creator's total cap evicts from (id, ended_at, bytes): the oldest
    first until the rest fit in `cap` bytes; the newest is always kept (the per-replay
    cap bounds it). 0: no cap."""
    if cap <= 0:
        return []
    newest_first = sorted(replays, key=lambda r: -r[1])
    kept, evicted = 0, []
    for index, (replay_id, _, size) in enumerate(newest_first):
        if index == 0 or kept + size <= cap:
            kept += size
        else:
            evicted.append(replay_id)
    return evicted


def due(expiries: Iterable[tuple[str, float]], now: float) -> list[str]:
    """The ids whose expiry time has come."""
    return [replay_id for replay_id, at in expiries if at <= now]


def media_time(clock: Sequence[tuple[float, float]], wall: float) -> float:
    """Where the wall-clock moment `wall` is in the video, from `clock`: (wall clock,
    seconds into the video) pairs in order (the recorder's, one per keyframe). Between
    two pairs the video runs with the wall, but never past the next pair: while the
    creator was away (a reconnect) the video stood still and what happened then shows
    at the point it resumed. Before the first pair: 0."""
    if not clock or wall <= clock[0][0]:
        return 0.0
    index = bisect.bisect_right([at for at, _ in clock], wall) - 1
    at, seconds = clock[index]
    moved = seconds + (wall - at)
    if index + 1 < len(clock):
        moved = min(moved, clock[index + 1][1])
    return moved


def chat_for_replay(items: Iterable[dict[str, Any]],
                    clock: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """A live's chat (engine/chat.py ChatItem.as_dict, in stream order) as a replay keeps
    it: messages and system lines with `t`, their second in the video (media_time over
    the recorder's `clock`; lines before its first frame at 0), deleted messages left
    out."""
    lines: list[dict[str, Any]] = []
    deleted = set()
    for item in items:
        if item["kind"] == "delete":
            deleted.add(item["target"])
            continue
        line = {"id": item["id"], "kind": item["kind"],
                "t": round(media_time(clock, item["at"]), 3), "text": item["text"]}
        user = item.get("user")
        if user:
            line["user"] = {"username": user["username"],
                            "display_name": user["display_name"]}
        lines.append(line)
    return [line for line in lines if line["id"] not in deleted]


def check_may_watch_replay(replay: Replay, *, anonymous: bool) -> None:
    """`unauthorized` (reason signin_required) for a signed-out visitor of a replay whose
    live was for signed-in viewers; blocks and bans are the caller's to check (the
    graph and the chat hold them), as for watching the live."""
    if anonymous and replay.signed_in_only:
        raise unauthorized("this replay is for signed-in viewers: sign in to watch",
                           "signin_required")


# --- store -------------------------------------------------------------------

class Replays:
    """The replays' metadata in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def save(self, replay: Replay) -> None:
        """Record a finalized replay (the file is complete before this is called)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.replay(replay.replay_id), mapping=_to_hash(replay))
            pipe.zadd(keys.creator_replays(replay.creator_id), {replay.replay_id: replay.ended_at})
            pipe.zadd(keys.replays_expiry(), {replay.replay_id: replay.expires_at})
            await pipe.execute()

    async def get(self, replay_id: str) -> Replay:
        """The replay; `not_found` when there is none (never was, deleted or expired)."""
        fields = await self._redis.hgetall(keys.replay(replay_id))
        if not fields:
            raise not_found("no such replay")
        return _from_hash(fields)

    async def of_creator(self, creator_id: str, limit: int = LIST_LIMIT) -> list[Replay]:
        """A creator's replays, newest first."""
        ids = await self._redis.zrevrange(keys.creator_replays(creator_id), 0, limit - 1)
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for replay_id in ids:
                pipe.hgetall(keys.replay(replay_id))
            found = await pipe.execute()
        return [_from_hash(fields) for fields in found if fields]

    async def sizes(self, creator_id: str) -> list[tuple[str, float, int]]:
        """(id, ended_at, bytes) of every replay of the creator (the total cap's input)."""
        scored = await self._redis.zrange(keys.creator_replays(creator_id), 0, -1,
                                          withscores=True)
        async with self._redis.pipeline(transaction=False) as pipe:
            for replay_id, _ in scored:
                pipe.hget(keys.replay(replay_id), "bytes")
            sizes = await pipe.execute()
        return [(rid, at, int(size or 0)) for (rid, at), size in zip(scored, sizes, strict=True)]

    async def forget(self, replay: Replay) -> None:
        """Remove the replay's metadata (its files are the caller's to delete first)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.replay(replay.replay_id))
            pipe.zrem(keys.creator_replays(replay.creator_id), replay.replay_id)
            pipe.zrem(keys.replays_expiry(), replay.replay_id)
            await pipe.execute()

    async def expiries(self, until: float, limit: int = 100) -> list[tuple[str, float]]:
        """(id, expires_at) of up to `limit` replays expiring by `until`, soonest first."""
        found = await self._redis.zrangebyscore(keys.replays_expiry(), "-inf", until,
                                                start=0, num=limit, withscores=True)
        return [(rid, float(at)) for rid, at in found]

    async def known(self, replay_ids: Sequence[str]) -> set[str]:
        """Which of these ids have metadata (the sweep keeps their directories)."""
        if not replay_ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for replay_id in replay_ids:
                pipe.exists(keys.replay(replay_id))
            found = await pipe.execute()
        return {rid for rid, there in zip(replay_ids, found, strict=True) if there}
